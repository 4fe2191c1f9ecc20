/*
 * The listener module: what the unix-socket doors (the per-guest sockets
 * of usock.c, the attach socket of asock.c) share to listen on a path.
 * A socket is born with its final mode and group, only a socket this
 * daemon bound is ever unlinked by it, everything but bind() and
 * connect() goes through a descriptor of its directory, and a listener
 * that cannot accept (out of descriptors, most likely) pauses for a
 * moment instead of spinning.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "virtconsoled.h"

#define LISTEN_ACCEPT_PAUSE	1	/* seconds after an accept error */

struct listener {
	struct evconnlistener	*lev;
	struct event		*ev_resume;
	char			*what;		/* "usock: accept on PATH" */
	listener_cb		 cb;
	void			*arg;
};

/* socket_group as a gid: *have 0 when unset; -1 (err) if unknown. */
int
listen_group(const struct config *conf, gid_t *gid, int *have, char *err,
    size_t errlen)
{
	struct group		*gr;
	unsigned long long	 id;

	*have = 0;
	if (conf->socket_group == NULL)
		return 0;
	if (parse_uint(conf->socket_group, UINT32_MAX - 1, &id) == 0)
		*gid = (gid_t)id;
	else if ((gr = getgrnam(conf->socket_group)) != NULL)
		*gid = gr->gr_gid;
	else {
		snprintf(err, errlen, "socket_group %s: no such group",
		    conf->socket_group);
		return -1;
	}
	*have = 1;
	return 0;
}

/*
 * The directory of a socket path (created 0755 if missing), held open:
 * not a symbolic link, not writable by everyone, owned by root, by us or
 * by owner.  *dfd and *name (the socket's name in it, allocated) are set
 * on success; key names the setting in the error.
 */
int
listen_dir(const char *key, const char *path, uid_t owner, int *dfd,
    char **name, char *err, size_t errlen)
{
	struct stat	 st;
	char		*copy, *dir;
	int		 rc = -1;

	copy = xstrdup(path);
	dir = dirname(copy);
	if (mkdir(dir, 0755) == -1 && errno != EEXIST)
		snprintf(err, errlen, "cannot create the directory of %s %s: "
		    "%s", key, path, strerror(errno));
	else if ((*dfd = dir_open(dir)) == -1 || fstat(*dfd, &st) == -1)
		snprintf(err, errlen, "the directory of %s %s: %s", key, path,
		    errno == ELOOP ? "it is a symbolic link" : strerror(errno));
	else if (st.st_uid != 0 && st.st_uid != geteuid() &&
	    st.st_uid != owner)
		snprintf(err, errlen, "the directory of %s %s is owned by uid "
		    "%u, not by root or the daemon", key, path,
		    (unsigned)st.st_uid);
	else if (st.st_mode & S_IWOTH)
		snprintf(err, errlen, "the directory of %s %s is "
		    "world-writable", key, path);
	else
		rc = 0;
	free(copy);
	if (rc == 0) {
		copy = xstrdup(path);
		*name = xstrdup(basename(copy));
		free(copy);
	}
	return rc;
}

/*
 * What is at name in dfd before a bind: nothing, or a stale socket (a
 * crashed run's, removed): 0.  -1 with errno ENOTSOCK when it is not a
 * socket, EADDRINUSE when a running process listens on it.
 */
int
listen_stale(int dfd, const char *name, const char *path)
{
	struct stat	st;

	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == -1)
		return 0;
	if (!S_ISSOCK(st.st_mode)) {
		errno = ENOTSOCK;
		return -1;
	}
	if (socket_in_use(path)) {
		errno = EADDRINUSE;
		return -1;
	}
	(void)unlinkat(dfd, name, 0);
	return 0;
}

/*
 * Bind and listen on path (called name in dfd): the listening descriptor,
 * with the socket's stat in st, or -1 (errno set; the socket bound, if
 * any, is removed).  Born with its final mode (0660 with a group, else
 * 0600), as a mode can only be changed by path; others cannot connect
 * before listen(), which comes once the group (and the owner, when not
 * (uid_t)-1) is right, changed through a descriptor of the very socket
 * checked.
 */
int
listen_unix(int dfd, const char *name, const char *path, int have_gid,
    gid_t gid, uid_t owner, int backlog, struct stat *st)
{
	struct sockaddr_un	 sun;
	struct stat		 now;
	mode_t			 old;
	int			 fd, sfd = -1, rc, e;

	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof sun.sun_path) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(sun.sun_path, path, strlen(path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -1;
	old = umask(have_gid ? 0117 : 0177);
	rc = bind(fd, (struct sockaddr *)&sun, sizeof sun);
	umask(old);
	if (rc == 0 && (sfd = socket_path_at(dfd, name, st)) != -1 &&
	    (!have_gid || st->st_gid == gid || fchownat(sfd, "", (uid_t)-1,
	    gid, AT_EMPTY_PATH) == 0) &&
	    (owner == (uid_t)-1 || st->st_uid == owner || fchownat(sfd, "",
	    owner, (gid_t)-1, AT_EMPTY_PATH) == 0) &&
	    listen(fd, backlog) == 0) {
		close(sfd);
		return fd;
	}
	e = errno;
	close(fd);
	/* The socket we bound, not one that replaced it. */
	if (sfd != -1 && fstatat(dfd, name, &now, AT_SYMLINK_NOFOLLOW) == 0 &&
	    now.st_dev == st->st_dev && now.st_ino == st->st_ino)
		unlinkat(dfd, name, 0);
	if (sfd != -1)
		close(sfd);
	errno = e;
	return -1;
}

/*
 * A socket at a path of its own (control_socket, attach_socket), key
 * naming it in errors: its directory checked and held (listen_dir(), its
 * owner may be dir_owner), a crashed run's socket replaced, anything else
 * there refused, then bound and listening (listen_unix()).  The
 * listening descriptor, or -1 with the error; lp is filled either way
 * and released by listen_path_close().
 */
int
listen_path_open(struct listen_path *lp, const char *key, const char *path,
    uid_t dir_owner, int have_gid, gid_t gid, uid_t owner, int backlog,
    char *err, size_t errlen)
{
	struct sockaddr_un	 sun;
	struct stat		 st;
	int			 fd;

	lp->path = xstrdup(path);
	lp->name = NULL;
	lp->dfd = -1;
	if (strlen(path) >= sizeof sun.sun_path) {
		snprintf(err, errlen, "%s %s: path too long", key, path);
		return -1;
	}
	if (listen_dir(key, path, dir_owner, &lp->dfd, &lp->name, err,
	    errlen) == -1)
		return -1;
	if (listen_stale(lp->dfd, lp->name, path) == -1) {
		snprintf(err, errlen, "%s %s %s", key, path,
		    errno == ENOTSOCK ? "exists and is not a socket" :
		    "is in use by another running daemon");
		return -1;
	}
	if ((fd = listen_unix(lp->dfd, lp->name, path, have_gid, gid, owner,
	    backlog, &st)) == -1) {
		snprintf(err, errlen, "cannot listen on %s %s: %s", key, path,
		    strerror(errno));
		return -1;
	}
	lp->dev = st.st_dev;
	lp->ino = st.st_ino;
	return fd;
}

/* Unlink the socket if it is still the one bound; release lp. */
void
listen_path_close(struct listen_path *lp)
{
	if (lp->name != NULL)
		listen_unlink(lp->dfd, lp->name, lp->dev, lp->ino);
	if (lp->dfd != -1)
		close(lp->dfd);
	lp->dfd = -1;
	free(lp->name);
	lp->name = NULL;
	free(lp->path);
	lp->path = NULL;
}

/* Unlink name in dfd if it is still the socket bound (dev, ino). */
void
listen_unlink(int dfd, const char *name, dev_t dev, ino_t ino)
{
	struct stat	st;

	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    st.st_dev == dev && st.st_ino == ino)
		unlinkat(dfd, name, 0);
}

/* libevent gives the error callback the accept callback's argument. */
static void
listener_accept_cb(struct evconnlistener *lev, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct listener	*l = arg;

	l->cb(fd, l->arg);
}

static void
listener_resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct listener	*l = arg;

	evconnlistener_enable(l->lev);
}

/* Out of descriptors, most likely: pause this listener for a moment. */
static void
listener_error_cb(struct evconnlistener *lev, void *arg)
{
	struct listener	*l = arg;

	log_warn("%s", l->what);
	evconnlistener_disable(lev);
	timer_arm(l->ev_resume, LISTEN_ACCEPT_PAUSE);
}

/*
 * Accept on fd (a listening socket, taken) with cb(arg); what names it in
 * the log line of an accept error.  NULL (fd closed) if out of memory.
 */
struct listener *
listener_new(struct event_base *base, int fd, listener_cb cb,
    void *arg, const char *what)
{
	struct listener	*l = xcalloc(1, sizeof *l);

	l->what = xstrdup(what);
	l->cb = cb;
	l->arg = arg;
	l->ev_resume = evtimer_new(base, listener_resume_cb, l);
	l->lev = evconnlistener_new(base, listener_accept_cb, l,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, fd);
	if (l->lev == NULL || l->ev_resume == NULL) {
		if (l->lev == NULL)
			close(fd);
		listener_free(l);
		return NULL;
	}
	evconnlistener_set_error_cb(l->lev, listener_error_cb);
	return l;
}

void
listener_free(struct listener *l)
{
	if (l == NULL)
		return;
	if (l->lev != NULL)
		evconnlistener_free(l->lev);
	if (l->ev_resume != NULL)
		event_free(l->ev_resume);
	free(l->what);
	free(l);
}
