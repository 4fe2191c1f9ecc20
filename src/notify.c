/*
 * The sd_notify protocol, spoken directly rather than through libsystemd.
 * A unit with Type=notify gets a datagram socket in $NOTIFY_SOCKET (a path,
 * or "@name" in the abstract namespace); the daemon tells the service
 * manager how it is doing by sending it newline-separated assignments:
 * READY=1 once its listeners are up, RELOADING=1 and READY=1 around a
 * reload, STOPPING=1 on its way out.
 *
 * Outside systemd $NOTIFY_SOCKET is not set and every call is a no-op.
 * Nothing here may hold the loop up or stop the daemon: a message is one
 * non-blocking sendto(), and a failure is only logged at debug level.
 */
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "virtconsoled.h"

/* systemd reads up to its pipe buffer; ours are a few dozen bytes. */
#define NOTIFY_MAX	4096
#define NOTIFY_STATUS_MAX 256

static int			notify_fd = -1;
static struct sockaddr_un	notify_addr;
static socklen_t		notify_addrlen;

/*
 * Read $NOTIFY_SOCKET once and open a socket to it.  The variable is
 * removed from the environment, so that nothing the daemon runs (libvirt
 * may spawn ssh for a remote URI) can talk to the service manager in its
 * name.  Returns 0, also when the variable is not set, or -1 when it names
 * an address this daemon cannot use.
 */
int
notify_init(void)
{
	const char	*path;
	size_t		 len;

	if (notify_fd != -1) {
		close(notify_fd);
		notify_fd = -1;
	}
	if ((path = getenv("NOTIFY_SOCKET")) == NULL || *path == '\0') {
		unsetenv("NOTIFY_SOCKET");
		return 0;
	}
	len = strlen(path);
	/* Only unix sockets: no vsock (and the unit does not allow it). */
	if ((path[0] != '/' && path[0] != '@') || len < 2 ||
	    len >= sizeof notify_addr.sun_path) {
		log_warnx("notify: ignoring NOTIFY_SOCKET=%s: not a unix "
		    "socket address", log_esc(path));
		unsetenv("NOTIFY_SOCKET");
		return -1;
	}
	memset(&notify_addr, 0, sizeof notify_addr);
	notify_addr.sun_family = AF_UNIX;
	memcpy(notify_addr.sun_path, path, len);
	/* "@name": the abstract name, whose length is the address length. */
	if (path[0] == '@')
		notify_addr.sun_path[0] = '\0';
	notify_addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
	    len);
	unsetenv("NOTIFY_SOCKET");	/* path points into it: not used again */

	if ((notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) == -1) {
		log_warn("notify: socket");
		return -1;
	}
	return 0;
}

/*
 * Send one message, such as "READY=1\nSTATUS=...".  The address is given
 * at every send, as libsystemd does, rather than connected once: a
 * connected datagram socket would break if the receiver were recreated.
 */
void
notify_send(const char *fmt, ...)
{
	char	buf[NOTIFY_MAX];
	va_list	ap;
	int	n, saved = errno;

	if (notify_fd == -1)
		return;
	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof buf) {
		log_debug("notify: message too long, not sent");
		errno = saved;
		return;
	}
	if (sendto(notify_fd, buf, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL,
	    (struct sockaddr *)&notify_addr, notify_addrlen) == -1)
		log_debug("notify: cannot send %s: %s", log_esc_len(buf,
		    (size_t)n), strerror(errno));
	errno = saved;
}

/* A STATUS= value is one line: control bytes become spaces. */
static const char *
notify_status(char *dst, size_t dstlen, const char *src)
{
	size_t	i;

	for (i = 0; i < dstlen - 1 && src[i] != '\0'; i++) {
		if ((unsigned char)src[i] < 0x20 || src[i] == 0x7f)
			dst[i] = ' ';
		else
			dst[i] = src[i];
	}
	dst[i] = '\0';
	return dst;
}

/*
 * Start-up or a reload is over.  MAINPID names this process even when the
 * daemon forked: a manager that started a detaching daemon learns which
 * process to watch.
 */
void
notify_ready(const char *status)
{
	char	st[NOTIFY_STATUS_MAX];

	notify_send("READY=1\nMAINPID=%ld\nSTATUS=%s", (long)getpid(),
	    notify_status(st, sizeof st, status));
}

/*
 * A reload starts.  systemd 253 and later want the CLOCK_MONOTONIC time
 * with RELOADING=1, to tell this reload from an earlier one; older ones
 * ignore the field.
 */
void
notify_reloading(void)
{
	struct timespec		ts;
	unsigned long long	usec;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	usec = (unsigned long long)ts.tv_sec * 1000000ULL +
	    (unsigned long long)ts.tv_nsec / 1000ULL;
	notify_send("RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading "
	    "configuration", usec);
}

void
notify_stopping(void)
{
	notify_send("STOPPING=1\nSTATUS=shutting down");
}
