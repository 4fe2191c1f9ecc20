/*
 * Small helpers shared by every object: allocation that cannot fail silently
 * and strict number parsing.
 */
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <ctype.h>

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "virtconsoled.h"

void *
xmalloc(size_t size)
{
	void	*p;

	if (size == 0)
		fatalx("xmalloc: zero size");
	if ((p = malloc(size)) == NULL)
		fatal("xmalloc: allocating %zu bytes", size);
	return p;
}

void *
xcalloc(size_t nmemb, size_t size)
{
	void	*p;

	if (nmemb == 0 || size == 0)
		fatalx("xcalloc: zero size");
	if ((p = calloc(nmemb, size)) == NULL)
		fatal("xcalloc: allocating %zu * %zu bytes", nmemb, size);
	return p;
}

void *
xrealloc(void *ptr, size_t size)
{
	void	*p;

	if (size == 0)
		fatalx("xrealloc: zero size");
	if ((p = realloc(ptr, size)) == NULL)
		fatal("xrealloc: allocating %zu bytes", size);
	return p;
}

char *
xstrdup(const char *s)
{
	char	*p;

	if ((p = strdup(s)) == NULL)
		fatal("xstrdup");
	return p;
}

char *
xstrndup(const char *s, size_t n)
{
	char	*p;

	if ((p = strndup(s, n)) == NULL)
		fatal("xstrndup");
	return p;
}

int
xasprintf(char **ret, const char *fmt, ...)
{
	va_list	 ap;
	int	 n;

	va_start(ap, fmt);
	n = vasprintf(ret, fmt, ap);
	va_end(ap);
	if (n < 0)
		fatal("xasprintf");
	return n;
}

/*
 * Parse a decimal unsigned number no larger than max.  Unlike strtoull this
 * rejects signs, blanks, empty strings and trailing garbage.  Returns 0, or
 * -1 with errno EINVAL or ERANGE.
 */
int
parse_uint(const char *s, unsigned long long max, unsigned long long *out)
{
	unsigned long long	 v = 0;
	unsigned int		 d;
	const char		*p;

	if (*s == '\0') {
		errno = EINVAL;
		return -1;
	}
	for (p = s; *p != '\0'; p++) {
		if (*p < '0' || *p > '9') {
			errno = EINVAL;
			return -1;
		}
		d = (unsigned int)(*p - '0');
		if (v > max / 10 || (v == max / 10 && d > max % 10)) {
			errno = ERANGE;
			return -1;
		}
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

/*
 * A history position as readers name it, RUN:OFFSET[:1]: the run id in hex,
 * the offset in decimal, exactly (no sign, blank or trailing garbage), and
 * ":1" when the unknown gap at that offset was already told (the control
 * command's NEXT, the web's X-Virtconsole-Next).  Returns 0, or -1.
 */
int
parse_history_pos(const char *s, struct history_pos *pos)
{
	char	*end;
	size_t	 n = strspn(s, "0123456789abcdefABCDEF");

	/* Hex digits only: strtoull alone would take "0x" and blanks. */
	if (n == 0 || s[n] != ':' || !isdigit((unsigned char)s[n + 1]))
		return -1;
	errno = 0;
	pos->run = strtoull(s, &end, 16);
	if (errno != 0 || end != s + n)
		return -1;
	pos->offset = strtoull(end + 1, &end, 10);
	if (errno != 0)
		return -1;
	pos->gap_told = strcmp(end, ":1") == 0;
	return pos->gap_told || *end == '\0' ? 0 : -1;
}

/* Arm a one-shot timer for a whole number of seconds. */
void
timer_arm(struct event *ev, unsigned int seconds)
{
	struct timeval	tv = { (time_t)seconds, 0 };

	evtimer_add(ev, &tv);
}

/*
 * bufferevent_write() to a plain socket bufferevent, writing to the socket
 * at once when nothing is queued there.  bufferevent_write() alone would
 * arm the write event and send on the next loop pass, after another
 * epoll_wait() and two epoll_ctl() calls; a keystroke's echo usually fits
 * the socket's buffer whole, so it leaves now and the write event is never
 * armed.  What the socket does not take, and any error, goes to the
 * bufferevent as before, which sends it or reports the error as usual; it
 * copies into its last chain, so a client that does not read costs what it
 * did (moving chains instead would keep each small write's slack).  The
 * output being empty keeps the order of bytes, and the callbacks
 * (watermarks, drained output) see no difference except that data the
 * bufferevent never held does not trigger them.  Only for a bufferevent of
 * bufferevent_socket_new(): the fd of a TLS bufferevent carries records,
 * and a pair has none (fd -1: plain bufferevent_write()).  Returns the
 * bytes the socket took at once (the rest is in the bufferevent).
 */
size_t
bev_write_now(struct bufferevent *bev, const void *data, size_t len)
{
	union {
		const void	*c;
		void		*v;
	}		u = { .c = data };	/* iovec is not const */
	struct iovec	iov;

	iov.iov_base = u.v;
	iov.iov_len = len;
	return bev_writev_now(bev, &iov, 1);
}

/* bev_write_now() of several pieces: one send, in order. */
size_t
bev_writev_now(struct bufferevent *bev, struct iovec *iov, int cnt)
{
	evutil_socket_t	 fd = bufferevent_getfd(bev);
	struct msghdr	 mh;
	size_t		 len = 0, sent = 0, left;
	ssize_t		 n;
	int		 i;

	for (i = 0; i < cnt; i++)
		len += iov[i].iov_len;
	if (len > 0 && fd >= 0 && (bufferevent_get_enabled(bev) & EV_WRITE) &&
	    evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
		memset(&mh, 0, sizeof mh);
		mh.msg_iov = iov;
		mh.msg_iovlen = (size_t)cnt;
		if ((n = sendmsg(fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL)) > 0)
			sent = (size_t)n;
	}
	left = sent;
	for (i = 0; i < cnt; i++) {
		if (left >= iov[i].iov_len) {
			left -= iov[i].iov_len;
			continue;
		}
		bufferevent_write(bev, (const char *)iov[i].iov_base + left,
		    iov[i].iov_len - left);
		left = 0;
	}
	return sent;
}

/* bev's output drained to the socket: a lat_stream's bytes gone. */
static void
bev_lat_cb(struct evbuffer *b, const struct evbuffer_cb_info *info, void *arg)
{
	(void)b;
	lat_stream_gone(arg, (uint64_t)info->n_deleted);
}

/*
 * Time the chunks of ls as bev's output lets them go to the socket (bytes
 * bev_write_now() wrote at once are the caller's to count).
 */
struct evbuffer_cb_entry *
bev_lat_watch(struct bufferevent *bev, struct lat_stream *ls)
{
	return evbuffer_add_cb(bufferevent_get_output(bev), bev_lat_cb, ls);
}

/* Stop (bev may be NULL: gone already); the chunks in flight are dropped. */
void
bev_lat_unwatch(struct bufferevent *bev, struct evbuffer_cb_entry **cbe,
    struct lat_stream *ls)
{
	if (*cbe != NULL && bev != NULL)
		(void)evbuffer_remove_cb_entry(bufferevent_get_output(bev),
		    *cbe);
	*cbe = NULL;
	lat_clear(&ls->q);
}

/*
 * The rule for a guest's unix socket name: [A-Za-z0-9._+-], not starting
 * with a dot, and DIR/NAME short enough for sun_path.  libvirt itself
 * rejects '/' and newlines in names; this also keeps out "..", hidden
 * files, spaces, escape sequences and anything a shell would need quoted.
 * Returns 0, SOCKET_NAME_BAD or SOCKET_NAME_LONG.
 */
int
socket_name_check(const char *dir, const char *name)
{
	struct sockaddr_un	 sun;
	const char		*p;

	if (name == NULL || *name == '\0' || *name == '.')
		return SOCKET_NAME_BAD;
	for (p = name; *p != '\0'; p++) {
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' ||
		    *p == '+' || *p == '-'))
			return SOCKET_NAME_BAD;
	}
	if (strlen(dir) + 1 + strlen(name) >= sizeof sun.sun_path)
		return SOCKET_NAME_LONG;
	return 0;
}

/*
 * Whether a unix socket at path has a listener: a crashed run's socket
 * refuses connections, a live daemon's accepts them.  Used before
 * replacing a "stale" socket, so that a second daemon with another pid
 * file never steals a running one's sockets.
 */
int
socket_in_use(const char *path)
{
	struct sockaddr_un	sun;
	int			fd, rc, e;

	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof sun.sun_path)
		return 0;
	memcpy(sun.sun_path, path, strlen(path));
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) == -1)
		return 0;
	rc = connect(fd, (struct sockaddr *)&sun, sizeof sun);
	e = errno;
	close(fd);
	return rc == 0 || e == EAGAIN || e == EINPROGRESS;
}

/*
 * An O_PATH descriptor of the socket called name in the directory dfd,
 * never through a symbolic link, with its stat in st: what the caller
 * checks (which inode it is) is then what fchownat(fd, "", ...,
 * AT_EMPTY_PATH) changes, even in a directory someone else can write.
 * Returns the descriptor, or -1 with errno set (ENOTSOCK for anything but
 * a socket).
 */
int
socket_path_at(int dfd, const char *name, struct stat *st)
{
	int	fd, e;

	if ((fd = openat(dfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC)) == -1)
		return -1;
	if (fstat(fd, st) == -1) {
		e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	if (!S_ISSOCK(st->st_mode)) {
		close(fd);
		errno = ENOTSOCK;
		return -1;
	}
	return fd;
}

/*
 * The length (1 to 4) of the well-formed UTF-8 sequence at p, which has
 * left bytes, or 0: a stray or missing continuation byte, an overlong
 * form, a surrogate or a code point past U+10FFFF.
 */
size_t
utf8_len(const unsigned char *p, size_t left)
{
	unsigned int	c, min;
	size_t		n, i;

	if (left == 0)
		return 0;
	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		n = 2;
		c = p[0] & 0x1fU;
		min = 0x80;
	} else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		n = 3;
		c = p[0] & 0x0fU;
		min = 0x800;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		n = 4;
		c = p[0] & 0x07U;
		min = 0x10000;
	} else
		return 0;
	if (left < n)
		return 0;
	for (i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		c = c << 6 | (p[i] & 0x3fU);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	return n;
}

/* Directories that other things live in: never handed to the daemon. */
static const char *const shared_dirs[] = {
	"/", "/run", "/var/run", "/tmp", "/var/tmp", "/dev", "/dev/shm",
	"/etc", "/var", "/var/lib", "/usr", "/home", "/root", "/run/user",
	"/run/libvirt", "/var/lib/libvirt",
};

int
shared_dir(const char *dir)
{
	size_t	i, len = strlen(dir);

	while (len > 1 && dir[len - 1] == '/')
		len--;
	for (i = 0; i < sizeof shared_dirs / sizeof shared_dirs[0];
	    i++) {
		if (strlen(shared_dirs[i]) == len &&
		    strncmp(dir, shared_dirs[i], len) == 0)
			return 1;
	}
	return 0;
}

/*
 * Open a directory the daemon works in, for the *at() calls: every later
 * operation inside it goes through this descriptor, so renaming or
 * replacing the path meanwhile changes nothing.  The last component is
 * never a symbolic link, except for a well-known shared directory such as
 * /var/run (a link to /run on many systems), which only root can change.
 * Returns the descriptor or -1 with errno set (ELOOP for a link).
 */
int
dir_open(const char *path)
{
	struct stat	st;
	int		fd, flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC;

	if (!shared_dir(path))
		flags |= O_NOFOLLOW;
	fd = open(path, flags);
	/* O_DIRECTORY may win over O_NOFOLLOW: say which it was. */
	if (fd == -1 && errno == ENOTDIR && (flags & O_NOFOLLOW))
		errno = lstat(path, &st) == 0 && S_ISLNK(st.st_mode) ?
		    ELOOP : ENOTDIR;
	return fd;
}

/* Random bytes from the kernel (getrandom(2) blocks only before the pool
 * is first seeded, long before a daemon runs). */
void
random_bytes(void *buf, size_t len)
{
	char	*p = buf;
	ssize_t	 n;

	while (len > 0) {
		if ((n = getrandom(p, len, 0)) == -1) {
			if (errno == EINTR)
				continue;
			fatal("getrandom");
		}
		p += n;
		len -= (size_t)n;
	}
}
