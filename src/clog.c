/*
 * Console log files: everything a guest console prints, appended to
 * DIR/HYPERVISOR/UUID/ALIAS.log (console_log_dir).  One struct clog per
 * console, kept by console.c; the file is opened at the first write or
 * marker and stays open until clog_close(), a reopen (SIGUSR1, after
 * logrotate has moved the file away) or a new directory.
 *
 * Guest bytes are written as they come, never escaped: the file is what
 * the console printed.  The daemon's own lines are markers, always on a
 * line of their own:
 *
 *	[-- virtconsoled 2026-12-04T17:13:02Z TEXT --]
 *
 * and a marker that falls in the middle of a guest line is preceded by a
 * "\n" of its own.  With timestamps, each guest line starts with its UTC
 * time and one space.  So the guest's bytes are the file minus its marker
 * lines (with the "\n" a mid-line marker added) and minus the timestamps.
 *
 * Paths: the directory is held open (clog_dfd) and every file below it is
 * reached with *at() calls, one component at a time, never following a
 * symbolic link: the daemon may run as root and the directory tree could
 * be writable by someone else.  HYPERVISOR, UUID and ALIAS are file name
 * components, checked once in clog_new(): ALIAS comes from libvirt XML.
 *
 * Rotation (max > 0): before a write or a marker, a file that has reached
 * max bytes is renamed to ALIAS.log.1 (the older ones shifting up to keep,
 * the oldest dropping out), or removed when keep is 0, and a new file is
 * started.  So a file can exceed max by one write.  Without max, logrotate
 * moves files away and sends SIGUSR1 (clog_reopen()).
 *
 * Failures never stall the loop and are never retried in a loop: bytes
 * that could not be written are counted (lost, and clog_errors()), the
 * failure is logged with a rate limit, a file that could not be opened is
 * tried again at most once a second, and the next write that succeeds is
 * preceded by a marker that says how many bytes are missing.
 */
#include <sys/stat.h>
#include <sys/uio.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "virtconsoled.h"

#define CLOG_STAMP_LEN		20	/* 2026-12-04T17:13:02Z */
#define CLOG_PIECE		65536	/* guest bytes stamped per write */
#define CLOG_SCRATCH_KEEP	262144	/* a larger scratch is freed */

struct clog {
	TAILQ_ENTRY(clog)	 entry;
	char			*hv;
	char			*uuid;
	char			*alias;
	char			*file;		/* ALIAS.log */
	char			*opened;	/* the first line's text */
	int			 fd;		/* -1: closed */
	uint64_t		 size;		/* of the open file */
	int			 bol;		/* the file ends a line */
	int			 fresh;		/* the file is empty: the
						   first line is owed */
	uint64_t		 lost;		/* guest bytes not written
						   since the last success */
	time_t			 open_failed;	/* last failed open, or 0 */
	time_t			 rotate_failed;	/* last failed rotation */
};
TAILQ_HEAD(clog_list, clog);

static struct clog_list	 clog_all = TAILQ_HEAD_INITIALIZER(clog_all);
static int		 clog_dfd = -1;	/* -1: console logs are off */
static char		*clog_dir;
static int		 clog_timestamps;
static uint64_t		 clog_max;
static unsigned int	 clog_keep;
static uint64_t		 clog_nerrors;
static struct log_limit	 clog_log = LOG_LIMIT_INIT("console log", 60, 5);

/*
 * One scratch buffer for all objects: the loop is single-threaded and the
 * output of one call is written before the next call starts.
 */
static char		*clog_buf;
static size_t		 clog_bufsize;
static size_t		 clog_buflen;

static void
clog_reserve(size_t n)
{
	size_t	size;

	if (clog_bufsize - clog_buflen >= n)
		return;
	if (n > SIZE_MAX / 2 - clog_buflen)
		fatalx("clog: %zu bytes of output", n);
	size = clog_bufsize == 0 ? 4096 : clog_bufsize;
	while (size - clog_buflen < n)
		size *= 2;
	clog_buf = xrealloc(clog_buf, size);
	clog_bufsize = size;
}

static void
clog_add(const void *p, size_t n)
{
	clog_reserve(n);
	memcpy(clog_buf + clog_buflen, p, n);
	clog_buflen += n;
}

/* A scratch grown by a huge write does not stay around. */
static void
clog_scratch_done(void)
{
	clog_buflen = 0;
	if (clog_bufsize > CLOG_SCRATCH_KEEP) {
		free(clog_buf);
		clog_buf = NULL;
		clog_bufsize = 0;
	}
}

/* A component of a file name: nothing that leaves its directory. */
static int
clog_name_ok(const char *s)
{
	return s != NULL && *s != '\0' && strcmp(s, ".") != 0 &&
	    strcmp(s, "..") != 0 && strchr(s, '/') == NULL;
}

static void
clog_stamp(char *out, size_t len)
{
	struct tm	tm;
	time_t		now = time(NULL);

	gmtime_r(&now, &tm);
	if (strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm) != CLOG_STAMP_LEN)
		snprintf(out, len, "%s", "0000-00-00T00:00:00Z");
}

/*
 * A failure (errnum 0: what says it all): counted, and logged with the path and the error through the
 * one rate limit, so that a full disk under a chatty guest costs a few
 * lines a minute.
 */
static void
clog_fail(const struct clog *c, const char *what, int errnum)
{
	clog_nerrors++;
	if (!log_limit_allow(&clog_log))
		return;
	log_warnx("console log %s/%s/%s/%s: %s%s%s", log_esc(clog_dir),
	    log_esc(c->hv), log_esc(c->uuid), log_esc(c->file), what,
	    errnum != 0 ? ": " : "", errnum != 0 ? strerror(errnum) : "");
}

static void
clog_close_fd(struct clog *c)
{
	if (c->fd != -1)
		close(c->fd);
	c->fd = -1;
}

/*
 * Create (0700) and open a directory below parent, refusing a symbolic
 * link: O_NOFOLLOW refuses it, but O_DIRECTORY may say ENOTDIR first, so
 * the name is looked at to say ELOOP.
 */
static int
clog_subdir(int parent, const char *name)
{
	struct stat	st;
	int		fd, made;

	made = mkdirat(parent, name, 0700) == 0;
	if (!made && errno != EEXIST)
		return -1;
	fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC);
	if (fd == -1) {
		if (errno == ENOTDIR)
			errno = fstatat(parent, name, &st,
			    AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode) ?
			    ELOOP : ENOTDIR;
		return -1;
	}
	/* The mode is ours whatever the umask says. */
	if (made)
		(void)fchmod(fd, 0700);
	return fd;
}

/* The UUID directory, created as needed; -1 after logging why. */
static int
clog_open_dir(struct clog *c)
{
	int	hfd, ufd, saved;

	if ((hfd = clog_subdir(clog_dfd, c->hv)) == -1) {
		clog_fail(c, "hypervisor directory", errno);
		return -1;
	}
	ufd = clog_subdir(hfd, c->uuid);
	saved = errno;
	close(hfd);
	if (ufd == -1)
		clog_fail(c, "guest directory", saved);
	return ufd;
}

/*
 * Open ALIAS.log in dfd.  An existing file is appended to (a restart
 * continues it); it is opened read-write so that its last byte can be
 * read, to know whether it ends a line.  O_NONBLOCK and O_NOCTTY: a FIFO
 * or a terminal planted there must neither block the loop nor become our
 * terminal; it is then refused as not a regular file.
 */
static int
clog_open_file(struct clog *c, int dfd)
{
	struct stat	st;
	unsigned char	last;
	int		fd, created = 0, saved;

	fd = openat(dfd, c->file, O_RDWR | O_APPEND | O_NOFOLLOW |
	    O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd == -1 && errno == ENOENT) {
		fd = openat(dfd, c->file, O_WRONLY | O_APPEND | O_CREAT |
		    O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600);
		created = 1;
	}
	if (fd == -1) {
		clog_fail(c, "open", errno);
		return -1;
	}
	if (fstat(fd, &st) == -1) {
		saved = errno;
		close(fd);
		clog_fail(c, "fstat", saved);
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		clog_fail(c, "not a regular file", 0);
		return -1;
	}
	if (created)
		(void)fchmod(fd, 0600);
	c->fd = fd;
	c->size = (uint64_t)st.st_size;
	c->fresh = st.st_size == 0;
	c->bol = 1;
	if (st.st_size > 0)
		c->bol = pread(fd, &last, 1, st.st_size - 1) == 1 &&
		    last == '\n';
	c->open_failed = 0;
	return 0;
}

static int
clog_open(struct clog *c)
{
	time_t	now = time(NULL);
	int	dfd, rc;

	/* A failed open is tried again at most once a second. */
	if (c->open_failed != 0 && now - c->open_failed < 1)
		return -1;
	if ((dfd = clog_open_dir(c)) == -1) {
		c->open_failed = now;
		return -1;
	}
	rc = clog_open_file(c, dfd);
	close(dfd);
	if (rc == -1)
		c->open_failed = now;
	return rc;
}

/*
 * Move the full file away and start a new one.  The renames go oldest
 * first, so that each target is free or is the oldest file, which a
 * rename over it drops.  The current file is closed only once it has
 * been moved: if a rename fails, writing goes on in the file it has and
 * rotation is tried again a second later.
 */
static void
clog_rotate(struct clog *c)
{
	time_t		 now = time(NULL);
	size_t		 len = strlen(c->file) + 16;
	char		*from, *to;
	unsigned int	 i;
	int		 dfd, failed = 0;

	if (c->rotate_failed != 0 && now - c->rotate_failed < 1)
		return;
	if ((dfd = clog_open_dir(c)) == -1) {
		c->rotate_failed = now;
		return;
	}
	from = xmalloc(len);
	to = xmalloc(len);
	for (i = clog_keep; i > 1 && !failed; i--) {
		snprintf(from, len, "%s.%u", c->file, i - 1);
		snprintf(to, len, "%s.%u", c->file, i);
		if (renameat(dfd, from, dfd, to) == -1 && errno != ENOENT) {
			clog_fail(c, "rotate", errno);
			failed = 1;
		}
	}
	if (!failed && clog_keep > 0) {
		snprintf(to, len, "%s.1", c->file);
		if (renameat(dfd, c->file, dfd, to) == -1 &&
		    errno != ENOENT) {
			clog_fail(c, "rotate", errno);
			failed = 1;
		}
	} else if (!failed && unlinkat(dfd, c->file, 0) == -1 &&
	    errno != ENOENT) {
		clog_fail(c, "remove", errno);
		failed = 1;
	}
	free(from);
	free(to);
	if (failed) {
		c->rotate_failed = now;
		close(dfd);
		return;
	}
	c->rotate_failed = 0;
	clog_close_fd(c);
	if (clog_open_file(c, dfd) == -1)
		c->open_failed = now;
	close(dfd);
}

/* Ready to write: the file open and not full.  -1 if it cannot be. */
static int
clog_ready(struct clog *c)
{
	if (c->fd == -1 && clog_open(c) == -1)
		return -1;
	if (clog_max > 0 && c->size >= clog_max)
		clog_rotate(c);
	return c->fd == -1 ? -1 : 0;
}

/*
 * Append a marker line to the scratch: a "\n" first unless at a line
 * start, then "[-- virtconsoled TIME TEXT --]\n".  Control bytes in the
 * text are written \xNN so that a marker is always one line.
 */
static void
clog_add_marker(int bol, const char *stamp, const char *text)
{
	const unsigned char	*p;
	char			 hex[5];

	clog_reserve(strlen(text) * 4 + CLOG_STAMP_LEN + 32);
	if (!bol)
		clog_add("\n", 1);
	clog_add("[-- virtconsoled ", 17);
	clog_add(stamp, CLOG_STAMP_LEN);
	clog_add(" ", 1);
	for (p = (const unsigned char *)text; *p != '\0'; p++) {
		if (*p < 0x20 || *p == 0x7f) {
			snprintf(hex, sizeof hex, "\\x%02x", *p);
			clog_add(hex, 4);
		} else
			clog_add(p, 1);
	}
	clog_add(" --]\n", 5);
}

/*
 * The daemon's lines owed before anything else: the first line of a new
 * file and the count of bytes lost.  Returns where each ends in the
 * scratch (0 when there is none), for a short write to tell which were
 * written.
 */
static void
clog_add_owed(struct clog *c, const char *stamp, size_t *fresh_end,
    size_t *lost_end)
{
	char	text[64];
	int	bol = c->bol;

	*fresh_end = *lost_end = 0;
	if (c->fresh) {
		clog_add_marker(1, stamp, c->opened);
		*fresh_end = clog_buflen;
		bol = 1;
	}
	if (c->lost > 0) {
		snprintf(text, sizeof text, "%llu bytes not logged",
		    (unsigned long long)c->lost);
		clog_add_marker(bol, stamp, text);
		*lost_end = clog_buflen;
	}
}

/* Guest bytes among the first n bytes of their stamped output. */
static size_t
clog_guest_written(const char *buf, size_t len, int bol, size_t stamp,
    size_t n)
{
	size_t	i, o = 0;

	for (i = 0; i < len; i++) {
		if (bol)
			o += stamp;
		if (o >= n)
			return i;
		o++;
		bol = buf[i] == '\n';
	}
	return len;
}

/*
 * One write(2) of the scratch, then the guest bytes data (raw, when they
 * were not copied into the scratch).  The scratch holds owed lines up to
 * owed, then, when stamped, the guest's glen bytes from gbuf with their
 * timestamps.  After a short or failed write, whatever was not written is
 * lost: counted, never retried.
 */
static void
clog_emit(struct clog *c, size_t fresh_end, size_t lost_end, size_t owed,
    const char *gbuf, size_t glen, const char *raw, size_t stamp, int gbol)
{
	struct iovec	iov[2];
	/* writev() only reads; struct iovec has no const member. */
	union {
		const char	*in;
		void		*base;
	}		guest = { raw };
	ssize_t		n;
	size_t		total, done, g;
	int		iovcnt = 0;

	if (clog_buflen > 0) {
		iov[iovcnt].iov_base = clog_buf;
		iov[iovcnt++].iov_len = clog_buflen;
	}
	if (raw != NULL && glen > 0) {
		iov[iovcnt].iov_base = guest.base;
		iov[iovcnt++].iov_len = glen;
	}
	total = clog_buflen + (raw != NULL ? glen : 0);
	if (total == 0)
		return;
	do
		n = writev(c->fd, iov, iovcnt);
	while (n == -1 && errno == EINTR);
	if (n == -1) {
		clog_fail(c, "write", errno);
		c->lost += glen;
		return;
	}
	done = (size_t)n;
	c->size += done;
	if (done > clog_buflen && raw != NULL)
		c->bol = raw[done - clog_buflen - 1] == '\n';
	else if (done > 0)
		c->bol = clog_buf[done - 1] == '\n';
	/* Even a piece of the first line means the file is not empty. */
	if (fresh_end > 0 && done > 0)
		c->fresh = 0;
	if (done == total) {
		if (lost_end > 0)
			c->lost = 0;
		return;
	}
	clog_fail(c, "short write", 0);
	if (lost_end > 0 && done >= lost_end)
		c->lost = 0;
	if (done <= owed)
		g = 0;
	else if (raw != NULL)
		g = done - owed;
	else
		g = clog_guest_written(gbuf, glen, gbol, stamp, done - owed);
	c->lost += glen - g;
}

int
clog_configure(const struct clog_config *cfg, char *err, size_t errlen)
{
	struct clog	*c;
	struct stat	 st;
	int		 fd, same;

	if (cfg == NULL || cfg->dir == NULL) {
		TAILQ_FOREACH(c, &clog_all, entry)
			clog_close_fd(c);
		if (clog_dfd != -1)
			close(clog_dfd);
		clog_dfd = -1;
		free(clog_dir);
		clog_dir = NULL;
		clog_scratch_done();
		free(clog_buf);
		clog_buf = NULL;
		clog_bufsize = 0;
		if (cfg != NULL) {
			clog_timestamps = cfg->timestamps;
			clog_max = cfg->max;
			clog_keep = cfg->keep;
		}
		return 0;
	}
	if (cfg->keep > CLOG_KEEP_MAX) {
		snprintf(err, errlen, "console_log_keep %u: at most %u",
		    cfg->keep, (unsigned int)CLOG_KEEP_MAX);
		return -1;
	}
	if (mkdir(cfg->dir, 0700) == -1 && errno != EEXIST) {
		snprintf(err, errlen, "console_log_dir %s: cannot create: %s",
		    cfg->dir, strerror(errno));
		return -1;
	}
	fd = open(cfg->dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd == -1) {
		if (lstat(cfg->dir, &st) == 0 && S_ISLNK(st.st_mode))
			snprintf(err, errlen, "console_log_dir %s: is a "
			    "symbolic link", cfg->dir);
		else if (errno == ENOTDIR)
			snprintf(err, errlen, "console_log_dir %s: not a "
			    "directory", cfg->dir);
		else
			snprintf(err, errlen, "console_log_dir %s: %s",
			    cfg->dir, strerror(errno));
		return -1;
	}

	/* Files open in another directory are closed: the next write
	 * opens them in the new one. */
	same = clog_dir != NULL && strcmp(clog_dir, cfg->dir) == 0;
	TAILQ_FOREACH(c, &clog_all, entry) {
		if (!same)
			clog_close_fd(c);
		c->open_failed = c->rotate_failed = 0;
	}
	if (clog_dfd != -1)
		close(clog_dfd);
	clog_dfd = fd;
	if (!same) {
		free(clog_dir);
		clog_dir = xstrdup(cfg->dir);
	}
	clog_timestamps = cfg->timestamps;
	clog_max = cfg->max;
	clog_keep = cfg->keep;
	return 0;
}

struct clog *
clog_new(const char *hv, const char *uuid, const char *alias,
    const char *name)
{
	struct clog	*c;
	char		*esc[4];
	const char	*src[4];
	size_t		 i, len;

	if (!clog_name_ok(hv) || !clog_name_ok(uuid) ||
	    !clog_name_ok(alias)) {
		if (log_limit_allow(&clog_log))
			log_warnx("clog: hypervisor=%s uuid=%s console=%s: "
			    "not a file name, no console log", log_esc(hv),
			    log_esc(uuid), log_esc(alias));
		return NULL;
	}
	c = xcalloc(1, sizeof *c);
	c->fd = -1;
	c->bol = 1;
	c->hv = xstrdup(hv);
	c->uuid = xstrdup(uuid);
	c->alias = xstrdup(alias);
	xasprintf(&c->file, "%s.log", alias);

	/* Every value escaped in full: the first line is one line. */
	src[0] = name != NULL ? name : "";
	src[1] = hv;
	src[2] = uuid;
	src[3] = alias;
	for (i = 0; i < 4; i++) {
		len = strlen(src[i]) * 4 + 4;
		esc[i] = xmalloc(len);
		log_escape(esc[i], len, src[i], strlen(src[i]));
	}
	xasprintf(&c->opened, "log opened name=%s hypervisor=%s uuid=%s "
	    "console=%s", esc[0], esc[1], esc[2], esc[3]);
	for (i = 0; i < 4; i++)
		free(esc[i]);
	TAILQ_INSERT_TAIL(&clog_all, c, entry);
	return c;
}

void
clog_write(struct clog *c, const char *buf, size_t len)
{
	char		 stamp[32];
	size_t		 fresh_end, lost_end, owed, piece, i, nl;
	const char	*p;
	int		 bol;

	if (clog_dfd == -1 || c == NULL || len == 0)
		return;
	if (clog_ready(c) == -1) {
		c->lost += len;
		return;
	}
	clog_stamp(stamp, sizeof stamp);
	clog_buflen = 0;
	clog_add_owed(c, stamp, &fresh_end, &lost_end);
	owed = clog_buflen;
	if (!clog_timestamps) {
		clog_emit(c, fresh_end, lost_end, owed, buf, len, buf, 0, 0);
		clog_scratch_done();
		return;
	}

	/*
	 * Stamped: a piece of the guest's bytes at a time, so that the
	 * scratch stays bounded whatever the guest prints.  A piece that
	 * failed ends the call: the rest is lost, not retried.
	 */
	p = buf;
	while (len > 0) {
		piece = len < CLOG_PIECE ? len : CLOG_PIECE;
		bol = owed > 0 ? 1 : c->bol;
		for (i = nl = 0; i < piece; i++)
			nl += p[i] == '\n';
		clog_reserve(piece + (nl + 1) * (CLOG_STAMP_LEN + 1));
		for (i = 0; i < piece; i++) {
			if (bol) {
				memcpy(clog_buf + clog_buflen, stamp,
				    CLOG_STAMP_LEN);
				clog_buf[clog_buflen + CLOG_STAMP_LEN] = ' ';
				clog_buflen += CLOG_STAMP_LEN + 1;
			}
			clog_buf[clog_buflen++] = p[i];
			bol = p[i] == '\n';
		}
		bol = owed > 0 ? 1 : c->bol;
		clog_emit(c, fresh_end, lost_end, owed, p, piece, NULL,
		    CLOG_STAMP_LEN + 1, bol);
		clog_buflen = 0;
		p += piece;
		len -= piece;
		if (c->lost > 0) {
			c->lost += len;
			break;
		}
		fresh_end = lost_end = owed = 0;
	}
	clog_scratch_done();
}

void
clog_mark(struct clog *c, const char *fmt, ...)
{
	va_list	 ap;
	char	 stamp[32], *text;
	size_t	 fresh_end, lost_end;
	int	 n;

	if (clog_dfd == -1 || c == NULL)
		return;
	if (clog_ready(c) == -1)
		return;
	va_start(ap, fmt);
	n = vasprintf(&text, fmt, ap);
	va_end(ap);
	if (n == -1)
		fatal("clog: vasprintf");
	clog_stamp(stamp, sizeof stamp);
	clog_buflen = 0;
	clog_add_owed(c, stamp, &fresh_end, &lost_end);
	clog_add_marker(clog_buflen > 0 ? 1 : c->bol, stamp, text);
	free(text);
	clog_emit(c, fresh_end, lost_end, clog_buflen, NULL, 0, NULL, 0, 1);
	clog_scratch_done();
}

void
clog_close(struct clog *c)
{
	if (c != NULL)
		clog_close_fd(c);
}

void
clog_free(struct clog *c)
{
	if (c == NULL)
		return;
	clog_close_fd(c);
	TAILQ_REMOVE(&clog_all, c, entry);
	free(c->hv);
	free(c->uuid);
	free(c->alias);
	free(c->file);
	free(c->opened);
	free(c);
}

/*
 * SIGUSR1: every file is closed, to be opened again by its next write,
 * a new one when logrotate has moved it away.  A file that failed to open
 * is tried at once: a reopen is a person asking.
 */
void
clog_reopen(void)
{
	struct clog	*c;

	TAILQ_FOREACH(c, &clog_all, entry) {
		clog_close_fd(c);
		c->open_failed = c->rotate_failed = 0;
	}
}

uint64_t
clog_errors(void)
{
	return clog_nerrors;
}
