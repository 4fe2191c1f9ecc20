/*
 * Least privilege: with `user` (and optionally `group`) set, the daemon
 * does everything that needs root first (the pid file, socket_dir, the
 * control socket, the web listeners, the TLS key and the token secret),
 * then gives the runtime directories it owns to that user and becomes it
 * for good: supplementary groups from /etc/group (so a member of the
 * `libvirt` group reaches libvirt's socket), then the group, then the
 * user.  A daemon that could get root back refuses to run.
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <libgen.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "virtconsoled.h"



/* The uid the daemon's files belong to after the drop: `user`'s, or ours. */
uid_t
priv_owner(const struct config *conf)
{
	struct passwd		*pw;
	unsigned long long	 id;

	if (conf->user == NULL)
		return geteuid();
	if (parse_uint(conf->user, UINT32_MAX - 1, &id) == 0)
		return (uid_t)id;
	if ((pw = getpwnam(conf->user)) != NULL)
		return pw->pw_uid;
	return geteuid();
}

/* user and group as names or numbers. */
static int
priv_resolve(const struct config *conf, uid_t *uid, gid_t *gid,
    const char **name, char *err, size_t errlen)
{
	struct passwd		*pw = NULL;
	struct group		*gr;
	unsigned long long	 id;

	if (parse_uint(conf->user, UINT32_MAX - 1, &id) == 0) {
		*uid = (uid_t)id;
		pw = getpwuid(*uid);
	} else if ((pw = getpwnam(conf->user)) != NULL)
		*uid = pw->pw_uid;
	else {
		snprintf(err, errlen, "user %s: no such user", conf->user);
		return -1;
	}
	*name = pw != NULL ? pw->pw_name : NULL;
	if (conf->group == NULL) {
		if (pw == NULL) {
			snprintf(err, errlen, "user %s has no passwd entry: "
			    "set group too", conf->user);
			return -1;
		}
		*gid = pw->pw_gid;
	} else if (parse_uint(conf->group, UINT32_MAX - 1, &id) == 0)
		*gid = (gid_t)id;
	else if ((gr = getgrnam(conf->group)) != NULL)
		*gid = gr->gr_gid;
	else {
		snprintf(err, errlen, "group %s: no such group", conf->group);
		return -1;
	}
	if (*uid == 0) {
		snprintf(err, errlen, "user %s is root: leave user unset to "
		    "stay root", conf->user);
		return -1;
	}
	return 0;
}

/*
 * Give a directory of the daemon's own to the user; never a shared one,
 * and never through a symbolic link: the directory may already be the
 * user's (a restart), so it is changed through a descriptor of it.
 */
static int
priv_give_dir(const char *path, uid_t uid, gid_t gid, char *err,
    size_t errlen)
{
	int	fd;

	if (shared_dir(path))
		return 0;
	if ((fd = dir_open(path)) == -1)
		return 0;
	if (fchown(fd, uid, (gid_t)-1) == -1) {
		snprintf(err, errlen, "cannot give %s to uid %u: %s", path,
		    (unsigned)uid, strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	(void)gid;
	return 0;
}

/*
 * console_log_dir and record_dir: made (0700) while still root when they
 * do not exist, so that their parent may stay root's (/var/log), then
 * given to the user, who writes every file and subdirectory in them.
 */
static int
priv_give_output_dir(const char *path, uid_t uid, gid_t gid, char *err,
    size_t errlen)
{
	if (path == NULL)
		return 0;
	if (mkdir(path, 0700) == -1 && errno != EEXIST) {
		snprintf(err, errlen, "cannot create %s: %s", path,
		    strerror(errno));
		return -1;
	}
	return priv_give_dir(path, uid, gid, err, errlen);
}

static int
priv_give_parent(const char *file, uid_t uid, gid_t gid, char *err,
    size_t errlen)
{
	char	*dup = xstrdup(file);
	int	 rc;

	rc = priv_give_dir(dirname(dup), uid, gid, err, errlen);
	free(dup);
	return rc;
}

/*
 * Drop to conf->user/group, if set.  The directories holding the pid
 * file, the guest sockets, the control socket and state_dir (whose store
 * of used tokens is compacted by rewriting it), console_log_dir and
 * record_dir are handed over first
 * (unless shared), so the daemon can still create guest sockets and
 * remove its files at exit.
 */
int
priv_drop(const struct config *conf, char *err, size_t errlen)
{
	const char	*name;
	uid_t		 uid;
	gid_t		 gid;

	if (conf->user == NULL)
		return 0;
	if (geteuid() != 0) {
		snprintf(err, errlen, "user %s is set, but the daemon is not "
		    "started as root", conf->user);
		return -1;
	}
	if (priv_resolve(conf, &uid, &gid, &name, err, errlen) == -1)
		return -1;
	if (priv_give_parent(conf->pid_file, uid, gid, err, errlen) == -1 ||
	    priv_give_dir(conf->socket_dir, uid, gid, err, errlen) == -1 ||
	    priv_give_dir(conf->state_dir, uid, gid, err, errlen) == -1 ||
	    priv_give_parent(conf->control_socket, uid, gid, err,
	    errlen) == -1 ||
	    priv_give_output_dir(conf->console_log_dir, uid, gid, err,
	    errlen) == -1 ||
	    priv_give_output_dir(conf->record_dir, uid, gid, err,
	    errlen) == -1)
		return -1;
	if (control_give(uid, err, errlen) == -1)
		return -1;
	if ((name != NULL ? initgroups(name, gid) : setgroups(1, &gid)) == -1 ||
	    setresgid(gid, gid, gid) == -1 || setresuid(uid, uid, uid) == -1) {
		snprintf(err, errlen, "cannot become uid %u gid %u: %s",
		    (unsigned)uid, (unsigned)gid, strerror(errno));
		return -1;
	}
	if (setuid(0) != -1 || seteuid(0) != -1) {
		snprintf(err, errlen, "could get root back after dropping "
		    "privileges");
		return -1;
	}
	log_info("dropped privileges to user=%s uid=%u gid=%u",
	    log_esc(name != NULL ? name : conf->user), (unsigned)uid,
	    (unsigned)gid);
	return 0;
}
