/*
 * Unit tests of the sd_notify client against a fake $NOTIFY_SOCKET: a
 * datagram socket this test binds, as systemd would, at a path and in the
 * abstract namespace.  Checks the exact messages, that the variable leaves
 * the environment, that nothing is sent without it, and that a receiver
 * that is gone or does not read never blocks the sender.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "virtconsoled.h"
#include "tap.h"

static char dir[] = "/tmp/vcd-test-notify.XXXXXX";

/* Bind a datagram receiver; name starting with '@' is abstract. */
static int
receiver(const char *name)
{
	struct sockaddr_un	sun;
	socklen_t		len;
	int			fd;

	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	strncpy(sun.sun_path, name, sizeof sun.sun_path - 1);
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
	    strlen(name));
	if (name[0] == '@')
		sun.sun_path[0] = '\0';
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) == -1 ||
	    bind(fd, (struct sockaddr *)&sun, len) == -1) {
		printf("# cannot bind %s: %s\n", name, strerror(errno));
		exit(1);
	}
	return fd;
}

/* One datagram, or "" after timeout_ms without one. */
static const char *
receive(int fd, int timeout_ms)
{
	static char	buf[8192];
	struct pollfd	pfd;
	ssize_t		n;

	buf[0] = '\0';
	pfd.fd = fd;
	pfd.events = POLLIN;
	if (poll(&pfd, 1, timeout_ms) != 1)
		return buf;
	if ((n = recv(fd, buf, sizeof buf - 1, MSG_DONTWAIT)) < 0)
		n = 0;
	buf[n] = '\0';
	return buf;
}

static unsigned long long
now_usec(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000000ULL +
	    (unsigned long long)ts.tv_nsec / 1000ULL;
}

static int
open_fds(void)
{
	int	fd, n = 0;

	for (fd = 0; fd < 1024; fd++)
		if (fcntl(fd, F_GETFD) != -1)
			n++;
	return n;
}

static void
test_unset(void)
{
	char	path[256];
	int	fd, before;

	snprintf(path, sizeof path, "%s/unset", dir);
	fd = receiver(path);
	unsetenv("NOTIFY_SOCKET");
	before = open_fds();
	is_int(notify_init(), 0, "no NOTIFY_SOCKET: notify_init returns 0");
	is_int(open_fds(), before, "and opens no socket");
	notify_ready("up");
	notify_reloading();
	notify_stopping();
	notify_send("READY=1");
	is_str(receive(fd, 200), "", "and every send is a no-op");
	setenv("NOTIFY_SOCKET", "", 1);
	is_int(notify_init(), 0, "an empty NOTIFY_SOCKET is not set either");
	ok(getenv("NOTIFY_SOCKET") == NULL, "and is removed");
	notify_send("READY=1");
	is_str(receive(fd, 200), "", "nothing is sent");
	close(fd);
}

static void
test_path(void)
{
	char			 path[256], want[256];
	const char		*got;
	unsigned long long	 t0, t1, usec = 0;
	int			 fd, flags, n = 0;

	snprintf(path, sizeof path, "%s/notify", dir);
	fd = receiver(path);
	setenv("NOTIFY_SOCKET", path, 1);
	is_int(notify_init(), 0, "NOTIFY_SOCKET=%s: notify_init returns 0",
	    path);
	ok(getenv("NOTIFY_SOCKET") == NULL,
	    "NOTIFY_SOCKET is removed from the environment");

	notify_send("READY=1\nSTATUS=%s", "serving");
	is_str(receive(fd, 1000), "READY=1\nSTATUS=serving",
	    "notify_send: one datagram, exactly the message");

	notify_ready("listening\non 2 ports\033");
	snprintf(want, sizeof want, "READY=1\nMAINPID=%ld\nSTATUS=listening "
	    "on 2 ports ", (long)getpid());
	is_str(receive(fd, 1000), want,
	    "notify_ready: READY=1, MAINPID, a one-line STATUS");

	t0 = now_usec();
	notify_reloading();
	t1 = now_usec();
	got = receive(fd, 1000);
	ok(sscanf(got, "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading "
	    "configuration%n", &usec, &n) == 1 && got[n] == '\0',
	    "notify_reloading: RELOADING=1, MONOTONIC_USEC, STATUS (%s)",
	    log_esc(got));
	ok(usec >= t0 && usec <= t1,
	    "MONOTONIC_USEC is CLOCK_MONOTONIC in microseconds");

	notify_ready("configuration reloaded");
	snprintf(want, sizeof want, "READY=1\nMAINPID=%ld\nSTATUS="
	    "configuration reloaded", (long)getpid());
	is_str(receive(fd, 1000), want, "READY=1 again after a reload");

	notify_stopping();
	is_str(receive(fd, 1000), "STOPPING=1\nSTATUS=shutting down",
	    "notify_stopping: STOPPING=1");

	/* A receiver that does not read: the sender must not block. */
	flags = 0;
	t0 = now_usec();
	for (n = 0; n < 5000; n++)
		notify_send("STATUS=%d", n);
	t1 = now_usec();
	ok(t1 - t0 < 2000000ULL, "5000 sends to a full queue do not block "
	    "(%llu ms)", (t1 - t0) / 1000);
	while (receive(fd, 0)[0] != '\0')
		flags++;
	ok(flags > 0 && flags < 5000,
	    "the queue took %d, the rest were dropped", flags);

	/* A message that does not fit is dropped, not cut. */
	{
		static char	big[5000];

		memset(big, 'x', sizeof big - 1);
		notify_send("STATUS=%s", big);
		is_str(receive(fd, 200), "", "an oversized message is not sent");
	}

	/* The receiver goes away: sends fail quietly, errno is kept. */
	close(fd);
	unlink(path);
	errno = 1234;
	notify_send("READY=1");
	is_int(errno, 1234, "a send to a vanished socket keeps errno");
	fd = receiver(path);
	notify_send("READY=1");
	is_str(receive(fd, 1000), "READY=1",
	    "a recreated receiver at the same path gets the next message");
	close(fd);
	unlink(path);
}

static void
test_abstract(void)
{
	char	name[108];
	int	fd;

	snprintf(name, sizeof name, "@vcd-test-notify/%ld", (long)getpid());
	fd = receiver(name);
	setenv("NOTIFY_SOCKET", name, 1);
	is_int(notify_init(), 0, "abstract NOTIFY_SOCKET=%s", name);
	ok(getenv("NOTIFY_SOCKET") == NULL, "is removed from the environment");
	notify_stopping();
	is_str(receive(fd, 1000), "STOPPING=1\nSTATUS=shutting down",
	    "the abstract socket receives the message");
	close(fd);
}

static void
test_bad(void)
{
	char	path[256], longname[200];
	int	fd;

	snprintf(path, sizeof path, "%s/bad", dir);
	fd = receiver(path);

	setenv("NOTIFY_SOCKET", "relative/notify", 1);
	is_int(notify_init(), -1, "a relative NOTIFY_SOCKET is refused");
	ok(getenv("NOTIFY_SOCKET") == NULL, "and removed");
	setenv("NOTIFY_SOCKET", "vsock:2:1234", 1);
	is_int(notify_init(), -1, "a vsock NOTIFY_SOCKET is refused");
	memset(longname, 'a', sizeof longname - 1);
	longname[0] = '/';
	longname[sizeof longname - 1] = '\0';
	setenv("NOTIFY_SOCKET", longname, 1);
	is_int(notify_init(), -1, "a path too long for sun_path is refused");
	setenv("NOTIFY_SOCKET", "@", 1);
	is_int(notify_init(), -1, "an empty abstract name is refused");
	notify_send("READY=1");
	is_str(receive(fd, 200), "", "after a refusal, sends are no-ops");

	/* A refused value also forgets an earlier good one. */
	setenv("NOTIFY_SOCKET", path, 1);
	is_int(notify_init(), 0, "a good value again");
	notify_send("READY=1");
	is_str(receive(fd, 1000), "READY=1", "is used");
	setenv("NOTIFY_SOCKET", "relative", 1);
	notify_init();
	notify_send("READY=1");
	is_str(receive(fd, 200), "", "and forgotten after a bad one");
	close(fd);
	unlink(path);
}

int
main(void)
{
	char	path[256];

	/* Debug would log each of the 5000 dropped sends below. */
	log_init(LOG_TARGET_STDERR, LOG_LEVEL_INFO, NULL);
	if (mkdtemp(dir) == NULL) {
		printf("# mkdtemp: %s\n", strerror(errno));
		return 1;
	}
	test_unset();
	test_path();
	test_abstract();
	test_bad();
	unsetenv("NOTIFY_SOCKET");
	notify_init();
	snprintf(path, sizeof path, "%s/unset", dir);
	unlink(path);
	rmdir(dir);
	return tap_done();
}
