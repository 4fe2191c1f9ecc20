/*
 * The unix-socket front door: one listening socket per guest in
 * socket_dir, named exactly after the guest, for every defined guest and
 * every running transient guest.  A connection gets the guest's first
 * console as raw bytes both ways.  websockify (TokenFile line
 * `TOKEN: unix_socket:SOCKET_DIR/GUEST`) can sit in front.  With the
 * `hypervisor` keys (even one), each hypervisor's guests have theirs in
 * socket_dir/NAME/, a directory checked like socket_dir; the layout is
 * the one of the start (a reload that switches forms says it needs a
 * restart): in the flat layout, only the hypervisor `default` has
 * sockets.
 *
 * socket_dir belongs to the daemon alone: it is created 0750 if missing,
 * and the daemon refuses a world-writable one, one owned by someone else,
 * a well-known shared directory such as /run, or one holding anything but
 * sockets.  Sockets left by a crashed run are removed at start, which runs
 * only once the pid file lock is held.  Paths are never followed through
 * symlinks, and only a socket this daemon bound is ever unlinked by it.
 * After a first run the directory is the user's, who may swap anything in
 * it for a link: so everything in it but bind() and connect() goes
 * through a descriptor of it held for the daemon's life (fstatat,
 * unlinkat, fchownat), and nothing is ever chmod'ed or chown'ed by path.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/bufferevent.h>
#include <event2/event.h>

#include "virtconsoled.h"

#define USOCK_BACKLOG		16

/*
 * A guest's socket, kept in the door's own table by the guest's UUID (the
 * guest table knows nothing of it): path and listener while it has one;
 * refused when its name cannot be a socket name (said once).
 */
struct usock_dir;
struct usock {
	struct usock_dir	*dir;		/* where its socket is */
	char			 hv[CONFIG_HV_NAME_MAX + 1];
	char			 uuid[GUEST_UUID_LEN];
	char			*name;		/* the guest's, for the log */
	char			*path;		/* NULL: no socket now */
	struct listener		*lst;
	dev_t			 dev;
	ino_t			 ino;
	int			 refused;	/* name unusable, logged */
	TAILQ_ENTRY(usock)	 entry;
};
TAILQ_HEAD(usocks, usock);

/* socket_dir, or a hypervisor's socket_dir/NAME: held open. */
struct usock_dir {
	char			*hv;		/* NULL: socket_dir itself */
	char			*path;
	int			 dfd;		/* for the *at() calls */
	TAILQ_ENTRY(usock_dir)	 entry;
};
TAILQ_HEAD(usock_dirs, usock_dir);

static void	usock_guest_event(struct guest *, enum guest_event, void *);

static struct {
	struct event_base	*base;
	char			*dir;
	int			 dfd;		/* of dir, for the *at() calls */
	int			 hv_form;	/* at start: socket_dir/NAME/ */
	int			 have_gid;
	gid_t			 gid;
	uid_t			 owner;		/* `user`, or ours */
	struct usocks		 socks;
	struct usock_dirs	 dirs;		/* the hypervisors' */
} us = {
	.dfd = -1,
	.socks = TAILQ_HEAD_INITIALIZER(us.socks),
	.dirs = TAILQ_HEAD_INITIALIZER(us.dirs),
};
static struct usock_dir	 usock_top;	/* the flat layout's */

/* Whether a guest gets a socket: see socket_name_check() in util.c. */
int
usock_name_ok(const char *dir, const char *name)
{
	return socket_name_check(dir, name) == 0;
}

/*
 * A socket directory opened as dfd (named dir in messages): ours (root's,
 * or the user the daemon drops to), not world-writable, given to
 * socket_group, and holding only sockets (and, for socket_dir in the
 * hypervisor form, the hypervisors' directories): a crashed run's sockets
 * are removed, one something still listens on is an error.
 */
static int
usock_dir_checks(int dfd, const char *dir, int allow_dirs, char *err,
    size_t errlen)
{
	struct stat	 st;
	struct dirent	*de;
	DIR		*d;
	char		 path[4096];
	int		 fd;

	if (fstat(dfd, &st) == -1) {
		snprintf(err, errlen, "socket_dir %s: %s", dir,
		    strerror(errno));
		return -1;
	}
	if (st.st_uid != geteuid() && st.st_uid != us.owner) {
		snprintf(err, errlen, "socket_dir %s is owned by uid %u, not "
		    "by the daemon", dir, (unsigned)st.st_uid);
		return -1;
	}
	if (st.st_mode & S_IWOTH) {
		snprintf(err, errlen, "socket_dir %s is world-writable", dir);
		return -1;
	}
	if (us.have_gid && (fchown(dfd, (uid_t)-1, us.gid) == -1 ||
	    fchmod(dfd, 0750) == -1)) {
		snprintf(err, errlen, "cannot give socket_dir %s to its "
		    "group: %s", dir, strerror(errno));
		return -1;
	}

	if ((fd = dup(dfd)) == -1 || (d = fdopendir(fd)) == NULL) {
		snprintf(err, errlen, "cannot read socket_dir %s: %s", dir,
		    strerror(errno));
		if (fd != -1)
			close(fd);
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
		if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == -1)
			continue;
		/* A hypervisor's directory: checked when it is used. */
		if (allow_dirs && S_ISDIR(st.st_mode) &&
		    config_hv_name_ok(de->d_name))
			continue;
		if (!S_ISSOCK(st.st_mode)) {
			snprintf(err, errlen, "socket_dir %s holds %s, which "
			    "is not a socket; give the daemon a directory of "
			    "its own", dir, log_esc(de->d_name));
			closedir(d);
			return -1;
		}
		/*
		 * A crashed run's socket (we hold the pid file lock), unless
		 * something still listens: another daemon with another pid
		 * file but this socket_dir.
		 */
		if (socket_in_use(path)) {
			snprintf(err, errlen, "socket_dir %s is in use by a "
			    "running process (%s accepts connections)", dir,
			    log_esc(de->d_name));
			closedir(d);
			return -1;
		}
		if (unlinkat(dfd, de->d_name, 0) == 0)
			log_info("usock: removed stale socket %s",
			    log_esc(path));
	}
	closedir(d);
	return 0;
}

static int
usock_check_dir(const char *dir, char *err, size_t errlen)
{
	char		 parent[4096], *slash;

	if (shared_dir(dir)) {
		snprintf(err, errlen, "socket_dir %s is a shared directory; "
		    "give the daemon one of its own", dir);
		return -1;
	}
	/* Create the parent (e.g. /run/virtconsoled) and the directory. */
	snprintf(parent, sizeof parent, "%s", dir);
	if ((slash = strrchr(parent, '/')) != NULL && slash != parent) {
		*slash = '\0';
		if (mkdir(parent, 0755) == -1 && errno != EEXIST) {
			snprintf(err, errlen, "cannot create %s: %s", parent,
			    strerror(errno));
			return -1;
		}
	}
	if (mkdir(dir, 0750) == -1 && errno != EEXIST) {
		snprintf(err, errlen, "cannot create socket_dir %s: %s", dir,
		    strerror(errno));
		return -1;
	}
	/*
	 * From here on only through this descriptor: after a first run the
	 * directory is the user's, who can swap anything in it for a link.
	 */
	if ((us.dfd = dir_open(dir)) == -1) {
		if (errno == ELOOP || errno == ENOTDIR)
			snprintf(err, errlen, "socket_dir %s is not a "
			    "directory%s", dir, errno == ELOOP ?
			    " (a symbolic link)" : "");
		else
			snprintf(err, errlen, "socket_dir %s: %s", dir,
			    strerror(errno));
		return -1;
	}
	return usock_dir_checks(us.dfd, dir, us.hv_form, err, errlen);
}

/*
 * The directory of hypervisor hv's sockets: socket_dir itself in the flat
 * layout (the hypervisor `default` only: NULL for the others), else
 * socket_dir/NAME, created 0750 and checked like socket_dir the first time
 * (through socket_dir's descriptor: never a path that may be a link).
 */
static struct usock_dir *
usock_dir(const char *hv)
{
	struct usock_dir	*ud;
	char			 err[512], *path;
	int			 dfd;

	if (!us.hv_form)
		return strcmp(hv, TOKEN_HV_DEFAULT) == 0 ? &usock_top : NULL;
	TAILQ_FOREACH(ud, &us.dirs, entry) {
		if (strcmp(ud->hv, hv) == 0)
			return ud;
	}
	xasprintf(&path, "%s/%s", us.dir, hv);
	if ((mkdirat(us.dfd, hv, 0750) == -1 && errno != EEXIST) ||
	    (dfd = openat(us.dfd, hv, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC)) == -1) {
		log_warn("usock: hypervisor=%s: %s; no sockets for its guests",
		    hv, path);
		free(path);
		return NULL;
	}
	if (usock_dir_checks(dfd, path, 0, err, sizeof err) == -1) {
		log_warnx("usock: hypervisor=%s: %s; no sockets for its "
		    "guests", hv, err);
		close(dfd);
		free(path);
		return NULL;
	}
	ud = xcalloc(1, sizeof *ud);
	ud->hv = xstrdup(hv);
	ud->path = path;
	ud->dfd = dfd;
	TAILQ_INSERT_TAIL(&us.dirs, ud, entry);
	return ud;
}

int
usock_init(struct event_base *base, const struct config *conf, char *err,
    size_t errlen)
{
	us.base = base;
	us.dir = xstrdup(conf->socket_dir);
	us.hv_form = conf->hv_form;
	us.owner = priv_owner(conf);
	if (listen_group(conf, &us.gid, &us.have_gid, err, errlen) == -1)
		return -1;
	if (usock_check_dir(us.dir, err, errlen) == -1)
		return -1;
	usock_top.path = us.dir;
	usock_top.dfd = us.dfd;
	guest_subscribe(usock_guest_event, NULL);
	return 0;
}

static void
usock_accept_cb(int fd, void *arg)
{
	struct usock		*u = arg;
	struct bufferevent	*bev;
	struct ucred		 cred;
	struct guest		*g;
	socklen_t		 len = sizeof cred;
	char			 peer[64];

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0)
		snprintf(peer, sizeof peer, "unix:pid=%ld,uid=%u",
		    (long)cred.pid, (unsigned)cred.uid);
	else
		snprintf(peer, sizeof peer, "unix");
	bev = bufferevent_socket_new(us.base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL) {
		log_warnx("usock: out of memory for a client");
		close(fd);
		return;
	}
	if ((g = guest_find(u->hv, u->uuid)) == NULL) {
		bufferevent_free(bev);	/* its socket is on its way out */
		return;
	}
	session_open(g, NULL, bev, peer, NULL, NULL, NULL);
}

/* The socket's name in socket_dir: the guest's name when it was made. */
static const char *
usock_name(const struct usock *u)
{
	return strrchr(u->path, '/') + 1;
}

/* Close a guest's socket; the record stays (usock_forget()). */
static void
usock_close(struct usock *u)
{
	if (u->path == NULL)
		return;
	listener_free(u->lst);
	u->lst = NULL;
	/* Unlink only the socket we bound, not one that replaced it. */
	listen_unlink(u->dir->dfd, usock_name(u), u->dev, u->ino);
	log_info("usock: guest=%s socket %s closed", log_esc(u->name),
	    log_esc(u->path));
	free(u->path);
	u->path = NULL;
}

static void
usock_forget(struct usock *u)
{
	usock_close(u);
	TAILQ_REMOVE(&us.socks, u, entry);
	free(u->name);
	free(u);
}

static struct usock *
usock_find(const char *hv, const char *uuid)
{
	struct usock	*u;

	TAILQ_FOREACH(u, &us.socks, entry) {
		if (strcmp(u->uuid, uuid) == 0 && strcmp(u->hv, hv) == 0)
			return u;
	}
	return NULL;
}

/* Bind and listen on the socket of u's guest, named g's name: 0 or -1. */
static int
usock_open(struct usock *u, const struct guest *g)
{
	struct usock		*other;
	struct stat		 st;
	const char		*name = g->name;
	char			*what;
	int			 fd;

	xasprintf(&u->path, "%s/%s", u->dir->path, name);
	/*
	 * Ours, under a guest of the same name that is on its way out (a
	 * resync adds guests before it drops the gone ones): that guest
	 * gives it up.  A stale socket goes.  One that another process
	 * listens on stays, and so does anything but a socket.
	 */
	if (fstatat(u->dir->dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISSOCK(st.st_mode)) {
		TAILQ_FOREACH(other, &us.socks, entry) {
			if (other != u && other->path != NULL &&
			    other->dev == st.st_dev && other->ino == st.st_ino)
				usock_close(other);
		}
	}
	if (listen_stale(u->dir->dfd, name, u->path) == -1) {
		log_warnx("usock: guest=%s: %s %s; no socket for this guest",
		    log_esc(g->name), log_esc(u->path), errno == ENOTSOCK ?
		    "exists and is not a socket" :
		    "is in use by another process");
		goto fail;
	}
	fd = listen_unix(u->dir->dfd, name, u->path, us.have_gid, us.gid,
	    (uid_t)-1, USOCK_BACKLOG, &st);
	if (fd == -1) {
		log_warn("usock: guest=%s: cannot listen on %s",
		    log_esc(g->name), log_esc(u->path));
		goto fail;
	}
	u->dev = st.st_dev;
	u->ino = st.st_ino;
	xasprintf(&what, "usock: accept on %s", log_esc(u->path));
	u->lst = listener_new(us.base, fd, usock_accept_cb, u, what);
	free(what);
	if (u->lst == NULL) {
		usock_close(u);
		return -1;
	}
	log_info("usock: guest=%s socket=%s", log_esc(g->name),
	    log_esc(u->path));
	return 0;

fail:
	free(u->path);
	u->path = NULL;
	return -1;
}

/*
 * Bring a guest's socket in line with the guest: one exists while the
 * guest is defined or running, under its current name.
 */
static void
usock_guest_changed(struct guest *g, int removed)
{
	struct usock_dir	*ud;
	struct usock		*u = usock_find(guest_hv_name(g), g->uuid);
	int			 want = !removed && (g->persistent || g->active);

	if (us.dir == NULL)
		return;
	if (u != NULL && !want) {
		usock_forget(u);
		return;
	}
	if (!want)
		return;
	if (u == NULL) {
		/* The flat layout has room for `default` only. */
		if ((ud = usock_dir(guest_hv_name(g))) == NULL)
			return;
		u = xcalloc(1, sizeof *u);
		u->dir = ud;
		(void)snprintf(u->hv, sizeof u->hv, "%s", guest_hv_name(g));
		(void)snprintf(u->uuid, sizeof u->uuid, "%s", g->uuid);
		u->name = xstrdup(g->name);
		TAILQ_INSERT_TAIL(&us.socks, u, entry);
	}
	if (u->path != NULL && strcmp(usock_name(u), g->name) == 0)
		return;
	usock_close(u);		/* renamed */
	free(u->name);
	u->name = xstrdup(g->name);
	if (!usock_name_ok(u->dir->path, g->name)) {
		if (!u->refused)
			log_warnx("usock: guest=%s: name not usable as a "
			    "socket name; served by other front doors only",
			    log_esc(g->name));
		u->refused = 1;
		return;
	}
	(void)usock_open(u, g);
}

/* The guest table's changes that concern the door. */
static void
usock_guest_event(struct guest *g, enum guest_event ev, void *arg)
{
	if (ev == GUEST_EV_CHANGED || ev == GUEST_EV_REMOVED)
		usock_guest_changed(g, ev == GUEST_EV_REMOVED);
}

void
usock_shutdown(void)
{
	struct usock		*u;
	struct usock_dir	*ud;

	/* NOLINTBEGIN(clang-analyzer-unix.Malloc): TAILQ, see .clang-tidy */
	while ((u = TAILQ_FIRST(&us.socks)) != NULL)
		usock_forget(u);
	while ((ud = TAILQ_FIRST(&us.dirs)) != NULL) {
		TAILQ_REMOVE(&us.dirs, ud, entry);
		close(ud->dfd);
		free(ud->hv);
		free(ud->path);
		free(ud);
	}
	/* NOLINTEND(clang-analyzer-unix.Malloc) */
	free(us.dir);
	us.dir = NULL;
	if (us.dfd != -1)
		close(us.dfd);
	us.dfd = -1;
}
