/*
 * The pid file: written atomically (a temporary file renamed into place)
 * and held with an fcntl write lock for the daemon's whole life.  The lock,
 * not the pid inside, says whether a daemon runs: a file nobody holds is
 * stale and is replaced with a warning, never a refusal.
 *
 * The lock is an open-file-description lock (F_OFD_SETLK): a classic
 * process-wide fcntl lock is silently dropped when the process closes ANY
 * descriptor of the file, which any code reading the pid file would do.
 * It is taken after daemon_detach(), in the process that keeps it.  To close the race between two starting
 * daemons, the old file stays locked until the new one has been renamed
 * over it, and a lock on a file that is no longer the one at the path (it
 * was renamed over meanwhile) is dropped and the whole step retried.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "virtconsoled.h"

struct pidfile {
	char	*path;
	char	*name;		/* in dfd */
	int	 dfd;		/* of path's directory */
	int	 fd;
	pid_t	 pid;
	dev_t	 dev;
	ino_t	 ino;
};

static int
pidfile_lock(int fd)
{
	struct flock	fl;

	memset(&fl, 0, sizeof fl);
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	if (fcntl(fd, F_OFD_SETLK, &fl) == 0)
		return 0;
	if (errno == EACCES)
		errno = EAGAIN;
	return -1;
}

/* The pid written in the file, or 0.  OFD locks do not name a holder. */
static long
pidfile_read(int fd, char *buf, size_t len)
{
	ssize_t			n;
	unsigned long long	pid;

	if ((n = pread(fd, buf, len - 1, 0)) <= 0) {
		buf[0] = '\0';
		return 0;
	}
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	if (parse_uint(buf, INT32_MAX, &pid) == -1 || pid == 0)
		return -1;
	return (long)pid;
}

/* Open and lock the file currently at name in dfd.  Returns the fd or -1. */
static int
pidfile_open_locked(int dfd, const char *name, const char *path, char *err,
    size_t errlen)
{
	struct stat	 fst, pst;
	char		 buf[32];
	int		 fd, tries;

	for (tries = 0; tries < 10; tries++) {
		fd = openat(dfd, name, O_RDWR | O_CREAT | O_CLOEXEC |
		    O_NOFOLLOW | O_NOCTTY, 0644);
		if (fd == -1) {
			snprintf(err, errlen, "cannot open pid file %s: %s",
			    path, errno == ELOOP ? "it is a symbolic link" :
			    strerror(errno));
			return -1;
		}
		if (fstat(fd, &fst) == -1 || !S_ISREG(fst.st_mode)) {
			snprintf(err, errlen, "pid file %s is not a regular "
			    "file", path);
			close(fd);
			return -1;
		}
		if (pidfile_lock(fd) == -1) {
			if (errno == EAGAIN)
				snprintf(err, errlen, "already running "
				    "(pid %ld holds the pid file %s)",
				    pidfile_read(fd, buf, sizeof buf), path);
			else
				snprintf(err, errlen, "cannot lock pid file "
				    "%s: %s", path, strerror(errno));
			close(fd);
			return -1;
		}
		/* Still the file at path?  If not, someone renamed over it. */
		if (fstatat(dfd, name, &pst, AT_SYMLINK_NOFOLLOW) == 0 &&
		    pst.st_dev == fst.st_dev && pst.st_ino == fst.st_ino)
			return fd;
		close(fd);
	}
	snprintf(err, errlen, "pid file %s keeps changing under us", path);
	return -1;
}

static void
pidfile_check_stale(int fd, const char *path)
{
	char	buf[32];
	long	pid;

	if ((pid = pidfile_read(fd, buf, sizeof buf)) == 0 && buf[0] == '\0')
		return;
	if (pid > 0)
		log_warnx("replacing stale pid file %s (pid %ld no longer "
		    "holds it)", path, pid);
	else
		log_warnx("replacing stale pid file %s (unreadable content "
		    "\"%s\")", path, log_esc(buf));
}

/* A new file name.XXXXXXXXXXXX in dfd, made O_EXCL; its name in tmp. */
static int
pidfile_tmp(int dfd, const char *name, char **tmp)
{
	unsigned char	rnd[6];
	int		fd = -1, tries;

	*tmp = NULL;
	for (tries = 0; tries < 10 && fd == -1; tries++) {
		free(*tmp);
		*tmp = NULL;
		if (getentropy(rnd, sizeof rnd) == -1)
			return -1;
		xasprintf(tmp, "%s.%02x%02x%02x%02x%02x%02x", name, rnd[0],
		    rnd[1], rnd[2], rnd[3], rnd[4], rnd[5]);
		fd = openat(dfd, *tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW |
		    O_CLOEXEC | O_NOCTTY, 0600);
		if (fd == -1 && errno != EEXIST)
			break;
	}
	return fd;
}

/*
 * The directory of the pid file is held open and everything in it goes
 * through that descriptor: after a first run it is the user's, who can
 * swap anything in it for a link.
 */
struct pidfile *
pidfile_acquire(const char *path, char *err, size_t errlen)
{
	struct pidfile	*pf;
	struct stat	 st;
	char		*tmp = NULL, *copy, *dir, *name, buf[32];
	int		 dfd, oldfd, fd, len;

	/* The runtime directory (/run/virtconsoled) may not exist yet. */
	copy = xstrdup(path);
	dir = dirname(copy);
	if (mkdir(dir, 0755) == -1 && errno != EEXIST) {
		snprintf(err, errlen, "cannot create directory for pid file "
		    "%s: %s", path, strerror(errno));
		free(copy);
		return NULL;
	}
	if ((dfd = dir_open(dir)) == -1) {
		snprintf(err, errlen, "cannot open the directory of pid file "
		    "%s: %s", path, errno == ELOOP ? "it is a symbolic link" :
		    strerror(errno));
		free(copy);
		return NULL;
	}
	free(copy);
	copy = xstrdup(path);
	name = xstrdup(basename(copy));
	free(copy);

	if ((oldfd = pidfile_open_locked(dfd, name, path, err, errlen)) == -1)
		goto fail;
	pidfile_check_stale(oldfd, path);

	if ((fd = pidfile_tmp(dfd, name, &tmp)) == -1) {
		snprintf(err, errlen, "cannot create a temporary file beside "
		    "pid file %s: %s", path, strerror(errno));
		goto fail;
	}
	len = snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
	if (fchmod(fd, 0644) == -1 ||
	    write(fd, buf, (size_t)len) != len ||
	    fsync(fd) == -1 ||
	    pidfile_lock(fd) == -1 ||
	    fstat(fd, &st) == -1 ||
	    renameat(dfd, tmp, dfd, name) == -1) {
		snprintf(err, errlen, "cannot write pid file %s: %s", path,
		    strerror(errno));
		unlinkat(dfd, tmp, 0);
		close(fd);
		goto fail;
	}
	free(tmp);
	close(oldfd);

	pf = xcalloc(1, sizeof *pf);
	pf->path = xstrdup(path);
	pf->name = name;
	pf->dfd = dfd;
	pf->fd = fd;
	pf->pid = getpid();
	pf->dev = st.st_dev;
	pf->ino = st.st_ino;
	return pf;

fail:
	free(tmp);
	free(name);
	if (oldfd != -1)
		close(oldfd);
	close(dfd);
	return NULL;
}

/* Remove the file, but only from the process that wrote it. */
void
pidfile_release(struct pidfile *pf)
{
	struct stat	st;

	if (pf == NULL)
		return;
	if (pf->pid == getpid() && fstatat(pf->dfd, pf->name, &st,
	    AT_SYMLINK_NOFOLLOW) == 0 && st.st_dev == pf->dev &&
	    st.st_ino == pf->ino)
		unlinkat(pf->dfd, pf->name, 0);
	close(pf->fd);
	close(pf->dfd);
	free(pf->name);
	free(pf->path);
	free(pf);
}

const char *
pidfile_path(const struct pidfile *pf)
{
	return pf->path;
}
