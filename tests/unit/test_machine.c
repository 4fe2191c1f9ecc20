/*
 * The session machine without QEMU: real sessions on a real event loop,
 * a real client socket (a socketpair), and the fake console stream of
 * fake_stream.c in place of libvirt's (stream_ops).  Each case drives
 * events through the loop, as the daemon's own callbacks do.
 */
#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "virtconsoled.h"
#include "tap.h"
#include "fake_stream.h"

static struct event_base	*base;
static struct guest		 g;
static char			*aliases[] = { "serial0", "console1" };

/* A client: the test's end of a socketpair, and what it has received. */
struct client {
	int		 fd;
	char		 got[8192];
	size_t		 len;
	int		 eof;
};

static void
configure(const char *text)
{
	static int	 inited;
	struct config	*conf;
	char		 err[256];

	if ((conf = config_parse("test.conf", text, strlen(text), err,
	    sizeof err)) == NULL) {
		fprintf(stderr, "config: %s\n", err);
		exit(1);
	}
	if (!inited)
		session_init(base, conf);
	else
		session_reconfigure(conf);
	inited = 1;
	config_free(conf);
}

static void
client_poll(struct client *c)
{
	ssize_t	n;

	while (!c->eof && c->len < sizeof c->got - 1) {
		n = recv(c->fd, c->got + c->len, sizeof c->got - 1 - c->len,
		    MSG_DONTWAIT);
		if (n > 0)
			c->len += (size_t)n;
		else if (n == 0 || (errno != EAGAIN && errno != EINTR))
			c->eof = 1;
		else
			break;
	}
	c->got[c->len] = '\0';
}

/* Run the loop until cond holds (1) or about ms milliseconds pass (0). */
static int
run_until(int (*cond)(struct client *), struct client *c, int ms)
{
	struct timespec	ts = { 0, 1000000 };
	int		i;

	for (i = 0; i < ms; i++) {
		event_base_loop(base, EVLOOP_NONBLOCK);
		if (c != NULL)
			client_poll(c);
		if (cond(c))
			return 1;
		nanosleep(&ts, NULL);
	}
	return 0;
}

static const char	*want;

static int
got_want(struct client *c)
{
	return strstr(c->got, want) != NULL;
}

static int
got_eof(struct client *c)
{
	return c->eof;
}

static int
expect(struct client *c, const char *text, int ms)
{
	want = text;
	return run_until(got_want, c, ms);
}

static struct session *
connect_client(struct client *c)
{
	struct bufferevent	*bev;
	int			 sv[2];

	memset(c, 0, sizeof *c);
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1)
		abort();
	evutil_make_socket_nonblocking(sv[0]);
	c->fd = sv[1];
	bev = bufferevent_socket_new(base, sv[0], BEV_OPT_CLOSE_ON_FREE);
	return session_open(&g, NULL, bev, "test", NULL, NULL);
}

static void
client_send(struct client *c, const char *s)
{
	if (write(c->fd, s, strlen(s)) != (ssize_t)strlen(s))
		abort();
}

static int
fake_got(const char *s)
{
	struct evbuffer_ptr	p;

	if (fake_last == NULL)
		return 0;
	p = evbuffer_search(fake_last->in, s, strlen(s), NULL);
	return p.pos != -1;
}

static const char	*fake_want;

static int
cond_fake_got(struct client *c)
{
	return fake_got(fake_want);
}

static void
test_attach_and_echo(void)
{
	struct client	 c;
	struct session	*s;

	configure("uri = test:///default\n");
	s = connect_client(&c);
	ok(s != NULL && fake_opened == 1 && session_count() == 1,
	    "a client of a running guest's console is attached (%d opened)",
	    fake_opened);
	fake_stream_print(fake_last, "login: ");
	ok(expect(&c, "login: ", 500), "guest output reaches the client (%s)",
	    c.got);
	client_send(&c, "root\r");
	fake_want = "root\r";
	ok(run_until(cond_fake_got, &c, 500), "client input reaches the guest");
	client_send(&c, "x\x11more");
	ok(expect(&c, "[virtconsoled] disconnected: escape key", 500),
	    "the escape byte ends the session with its notice");
	ok(run_until(got_eof, &c, 2500), "and the client's connection closes");
	ok(fake_closed == 1 && session_count() == 0,
	    "the stream is closed (%d) and the table is empty (%u)",
	    fake_closed, session_count());
	close(c.fd);
}

static void
test_policy(void)
{
	struct client	 a, b;

	configure("uri = test:///default\npolicy = refuse\n");
	ok(connect_client(&a) != NULL, "refuse: the first client attaches");
	ok(connect_client(&b) == NULL &&
	    expect(&b, "[virtconsoled] refused: console busy", 500),
	    "refuse: a second client of the same console is refused busy");
	configure("uri = test:///default\npolicy = takeover\n");
	close(b.fd);
	ok(connect_client(&b) != NULL &&
	    expect(&a, "disconnected: taken over by a new client", 500),
	    "takeover: the first client is told it was taken over");
	ok(session_count() == 1, "one session in the table (%u)",
	    session_count());
	session_end_all(REASON_SHUTDOWN);
	ok(expect(&b, "disconnected: daemon shutting down", 500),
	    "shutdown ends the last one with its notice");
	close(a.fd);
	close(b.fd);
}

static void
test_open_failures(void)
{
	static const struct {
		enum stream_open_result	 result;
		const char		*notice;
	} cases[] = {
		{ STREAM_BUSY, "refused: console busy" },
		{ STREAM_NOT_RUNNING, "refused: guest not running" },
		{ STREAM_NO_GUEST, "refused: unknown guest" },
	};
	struct client	c;
	size_t		i;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		fake_open_result = cases[i].result;
		ok(connect_client(&c) == NULL && expect(&c, cases[i].notice,
		    500), "an open that fails (%d): '%s'", cases[i].result,
		    cases[i].notice);
		close(c.fd);
	}
	fake_open_result = STREAM_OPENED;
}

static void
test_guest_eof(void)
{
	struct client	c;

	configure("uri = test:///default\n");
	ok(connect_client(&c) != NULL, "attached again");
	fake_stream_print(fake_last, "bye\r\n");
	fake_stream_end(fake_last);
	ok(expect(&c, "bye\r\n\r\n[virtconsoled] disconnected: guest stopped",
	    500), "the guest's last output, then 'guest stopped'");
	close(c.fd);
}

static int
sent_has(const char *s)
{
	struct evbuffer_ptr	p;

	p = evbuffer_search(fake_sent, s, strlen(s), NULL);
	return p.pos != -1;
}

static int
cond_table_empty(struct client *c)
{
	return session_count() == 0;
}

static int	closed0;

static int
cond_drained(struct client *c)
{
	return sent_has("drained-input") && fake_closed == closed0 + 1;
}

/*
 * A client that writes and leaves at once (echo cmd | socat - UNIX:...)
 * while the console takes nothing: the session leaves the table at once
 * (the console is free for the next client), and its input still goes
 * to the guest once the console takes it; then the stream is closed.
 */
static void
test_drain_after_leaving(void)
{
	struct client		 c;
	struct fake_stream	*f;

	configure("uri = test:///default\n");
	ok(connect_client(&c) != NULL, "drain: attached");
	f = fake_last;
	f->full = 1;
	closed0 = fake_closed;
	client_send(&c, "drained-input\r");
	close(c.fd);
	ok(run_until(cond_table_empty, NULL, 500),
	    "drain: the client left, the console is free (table empty)");
	ok(!sent_has("drained-input") && fake_closed == closed0,
	    "drain: its input waits, the stream stays open");
	f->full = 0;
	ok(run_until(cond_drained, NULL, 1000),
	    "drain: once the console takes input, it gets it, then the "
	    "stream is closed");
}

/* idle_timeout: a silent client is told and closed after it. */
static void
test_idle(void)
{
	struct client	c;
	struct timespec	t0, t1;
	double		el;

	configure("uri = test:///default\nidle_timeout = 1\n");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ok(connect_client(&c) != NULL, "idle: attached with idle_timeout = 1");
	ok(expect(&c, "[virtconsoled] disconnected: idle timeout", 4000),
	    "idle: 'idle timeout' after it");
	clock_gettime(CLOCK_MONOTONIC, &t1);
	el = (double)(t1.tv_sec - t0.tv_sec) +
	    (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	ok(el >= 0.95 && el < 3.0, "idle: after %.2f s (1 s set; not before it)", el);
	close(c.fd);
	configure("uri = test:///default\n");
}

int
main(void)
{
	base = event_base_new();
	log_init(LOG_TARGET_STDERR, LOG_LEVEL_ERROR, NULL);
	fake_stream_init(base);
	stream_ops = &fake_stream_ops;
	memcpy(g.uuid, "6e3b8a2c-0000-4000-8000-000000000001",
	    sizeof g.uuid);
	g.name = "fake";
	g.active = 1;
	g.aliases = aliases;
	g.naliases = 2;
	test_attach_and_echo();
	test_policy();
	test_open_failures();
	test_guest_eof();
	test_drain_after_leaving();
	test_idle();
	return tap_done();
}
