/*
 * The session machine without QEMU: real sessions on a real event loop,
 * a real client socket (a socketpair), and the fake console stream of
 * fake_stream.c in place of libvirt's (stream_ops).  Each case drives
 * events through the loop, as the daemon's own callbacks do.
 */
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
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

static int
never(struct client *c)
{
	return 0;
}

/* Run the loop for about ms milliseconds. */
static void
spin(int ms)
{
	(void)run_until(never, NULL, ms);
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

static struct session	*connect_alias(struct client *, const char *);
static unsigned int	 opening_id;
static struct session_info info_of;	/* session_info_of()'s */
static int		 info_of_found;

static void
info_id_one(const struct session_info *si, void *arg)
{
	if (si->id == *(unsigned int *)arg) {
		info_of = *si;
		info_of_found = 1;
	}
}

/* Whether session id is in the table; its list entry in info_of. */
static int
session_info_of(unsigned int id)
{
	info_of_found = 0;
	session_foreach(info_id_one, &id);
	return info_of_found;
}

/* Whether session id is in the table; its state in *state. */
static int
session_state_of(unsigned int id, const char **state)
{
	if (!session_info_of(id))
		return 0;
	if (state != NULL)
		*state = info_of.state;
	return 1;
}

static int
cond_not_opening(struct client *c)
{
	const char	*state;

	return !session_state_of(opening_id, &state) ||
	    strcmp(state, "OPENING") != 0;
}

static struct session *
connect_client(struct client *c)
{
	return connect_alias(c, NULL);
}

/* A socketpair: the test's end in c, the daemon's end as a bufferevent. */
static struct bufferevent *
client_pair(struct client *c)
{
	int	sv[2];

	memset(c, 0, sizeof *c);
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1)
		abort();
	evutil_make_socket_nonblocking(sv[0]);
	c->fd = sv[1];
	return bufferevent_socket_new(base, sv[0], BEV_OPT_CLOSE_ON_FREE);
}

static struct session *
connect_alias(struct client *c, const char *alias)
{
	struct bufferevent	*bev;
	struct session		*s;

	bev = client_pair(c);
	if ((s = session_open(&g, alias, bev, "test", NULL, NULL, NULL)) == NULL)
		return NULL;
	/* The console's open comes back from the loop. */
	opening_id = session_id(s);
	(void)run_until(cond_not_opening, NULL, 500);
	return session_state_of(opening_id, NULL) ? s : NULL;
}

/* A client with a role and a door (NULL: raw bytes). */
static struct session *
connect_as(struct client *c, enum session_role role,
    const struct session_door *door, void *door_arg)
{
	struct session_start	 start;
	struct session		*s;

	memset(&start, 0, sizeof start);
	start.role = role;
	start.label = role == SESSION_VIEWER ? "auditor" : NULL;
	if ((s = session_open(&g, NULL, client_pair(c), "test", door,
	    door_arg, &start)) == NULL)
		return NULL;
	opening_id = session_id(s);
	(void)run_until(cond_not_opening, NULL, 500);
	return session_state_of(opening_id, NULL) ? s : NULL;
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

/* The first session of the table, as `virtconsolectl list` sees it. */
static struct session_info	info;
static int			info_found;

static void
info_one(const struct session_info *si, void *arg)
{
	if (!info_found)
		info = *si;
	info_found = 1;
}

static int
session_info_get(void)
{
	info_found = 0;
	session_foreach(info_one, NULL);
	return info_found;
}

static int
cond_sent(struct client *c)
{
	return sent_has(fake_want);
}

/* A guest not running: the client waits, its input and escape too. */
static void
test_waiting(void)
{
	struct client	c, d;
	int		opened0 = fake_opened;

	configure("uri = test:///default\nstart_wait = 30\n");
	g.active = 0;
	ok(connect_client(&c) != NULL && session_info_get() &&
	    strcmp(info.state, "WAITING") == 0 && fake_opened == opened0,
	    "wait: a client of a stopped guest waits, nothing opened");
	client_send(&c, "typed-early\r");
	run_until(got_eof, &c, 20);
	g.active = 1;
	session_guest_started(&g);
	fake_want = "typed-early\r";
	ok(run_until(cond_sent, &c, 500) && session_info_get() &&
	    strcmp(info.state, "ATTACHED") == 0,
	    "wait: the guest starts, the console opens, what was typed "
	    "while waiting reaches it");
	session_end_all(REASON_SHUTDOWN);
	close(c.fd);

	g.active = 0;
	ok(connect_client(&d) != NULL, "wait: waiting again");
	client_send(&d, "abc\x11");
	ok(expect(&d, "disconnected: escape key", 500),
	    "wait: the escape byte ends a waiting session too");
	close(d.fd);
	ok(connect_client(&d) != NULL, "wait: and again");
	session_guest_removed(&g);
	ok(expect(&d, "refused: unknown guest", 500),
	    "wait: the guest is removed: 'unknown guest'");
	close(d.fd);
	g.active = 1;
	configure("uri = test:///default\n");
}

/* The escape byte in a later read than the input before it. */
static void
test_escape_split(void)
{
	struct client	c;

	ok(connect_client(&c) != NULL, "escape split: attached");
	client_send(&c, "before-");
	fake_want = "before-";
	ok(run_until(cond_sent, &c, 500), "escape split: the first read "
	    "reaches the guest");
	client_send(&c, "tail");
	fake_want = "before-tail";
	run_until(cond_sent, &c, 500);
	client_send(&c, "\x11" "after");
	ok(expect(&c, "disconnected: escape key", 500) &&
	    sent_has("before-tail") && !sent_has("after"),
	    "escape split: the escape byte alone ends it; nothing after it "
	    "is sent");
	close(c.fd);
}

static size_t	 out_total;

/*
 * Output at the max_buffer edge: a client that does not read keeps
 * exactly max_buffer in the daemon beyond what the kernel holds; the rest
 * is dropped and counted; once it reads, output flows again.
 */
static void
test_backpressure_out(void)
{
	struct client	 c;
	char		 chunk[4096];
	int		 i, sz = 4096, k = 0;
	size_t		 got = 0;
	ssize_t		 n;

	configure("uri = test:///default\nmax_buffer = 8K\n");
	ok(connect_client(&c) != NULL, "output cap: attached, max_buffer 8K");
	(void)setsockopt(c.fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
	memset(chunk, 'o', sizeof chunk - 1);
	chunk[sizeof chunk - 1] = '\0';
	out_total = 0;
	for (i = 0; i < 64; i++) {
		fake_stream_print(fake_last, chunk);
		out_total += sizeof chunk - 1;
		spin(2);
	}
	(void)ioctl(c.fd, FIONREAD, &k);
	(void)session_info_get();
	ok(info_found && info.pending_out == 8192 &&
	    info.bytes_dropped > 0 &&
	    info.bytes_out + info.bytes_dropped == out_total,
	    "output cap: %zu bytes wait in the daemon (max_buffer 8192), "
	    "%llu dropped, %llu + %llu = %zu printed", info.pending_out,
	    (unsigned long long)info.bytes_dropped,
	    (unsigned long long)info.bytes_out,
	    (unsigned long long)info.bytes_dropped, out_total);
	for (i = 0; i < 200; i++) {
		while ((n = recv(c.fd, chunk, sizeof chunk, MSG_DONTWAIT)) > 0)
			got += (size_t)n;
		event_base_loop(base, EVLOOP_NONBLOCK);
	}
	ok(got == (size_t)k + 8192 && got == info.bytes_out,
	    "output cap: the client reads the kernel's %d bytes and the "
	    "daemon's 8192 (%zu), nothing more", k, got);
	fake_stream_print(fake_last, "flows-again");
	ok(expect(&c, "flows-again", 500) && session_info_get() &&
	    strcmp(info.state, "ATTACHED") == 0,
	    "output cap: drained, output flows again and the session goes on");
	session_end_all(REASON_SHUTDOWN);
	close(c.fd);
	configure("uri = test:///default\n");
}

/*
 * Input at the max_buffer edge: while the console takes nothing, the
 * session stops reading once max_buffer waits; when it takes input again,
 * reading resumes and every byte arrives once, in order.
 */
static char	 big[64 * 1024];
static size_t	 big_off, big_sent0;
static int	 big_fd;

/* Push what the socket takes of big; done when all of it has arrived. */
static int
cond_big_arrived(struct client *c)
{
	ssize_t	n;

	if (big_off < sizeof big && (n = send(big_fd, big + big_off,
	    sizeof big - big_off, MSG_DONTWAIT)) > 0)
		big_off += (size_t)n;
	return evbuffer_get_length(fake_sent) - big_sent0 >= sizeof big;
}

static void
test_backpressure_in(void)
{
	struct client	 c;
	size_t		 i, pending;
	int		 sz = 4096;

	configure("uri = test:///default\nmax_buffer = 8K\nescape = none\n");
	ok(connect_client(&c) != NULL, "input cap: attached, max_buffer 8K");
	(void)setsockopt(c.fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
	fake_last->full = 1;
	for (i = 0; i < sizeof big; i++)
		big[i] = (char)('a' + i % 26);
	big_sent0 = evbuffer_get_length(fake_sent);
	big_off = 0;
	big_fd = c.fd;
	(void)run_until(cond_big_arrived, NULL, 300);
	pending = session_info_get() ? info.pending_in : 0;
	ok(pending >= 8192 && pending < 8192 + 64 * 1024 &&
	    big_off < sizeof big,
	    "input cap: reading stops at max_buffer (%zu wait, %zu of %zu "
	    "written)", pending, big_off, sizeof big);
	fake_last->full = 0;
	ok(run_until(cond_big_arrived, NULL, 3000) &&
	    evbuffer_get_length(fake_sent) - big_sent0 == sizeof big &&
	    memcmp(evbuffer_pullup(fake_sent, -1) + big_sent0, big,
	    sizeof big) == 0,
	    "input cap: reading resumes, all %zu bytes arrive once, in order",
	    sizeof big);
	ok(session_info_get() && info.bytes_in == sizeof big,
	    "input cap: bytes_in counts them");
	session_end_all(REASON_SHUTDOWN);
	close(c.fd);
	configure("uri = test:///default\n");
}

/* A writer leaves input behind; what becomes of the console. */
static void
drain_start(struct client *c, const char *input)
{
	ok(connect_client(c) != NULL, "leaves input: attached");
	fake_last->full = 1;
	client_send(c, input);
	close(c->fd);
	run_until(cond_table_empty, NULL, 500);
}

static void
test_drain_cases(void)
{
	struct client		 a, b;
	struct fake_stream	*f;
	int			 opened0, closed0b;
	unsigned int		 live0;

	/* A new writer takes the draining console back. */
	drain_start(&a, "first;");
	f = fake_last;
	opened0 = fake_opened;
	ok(connect_client(&b) != NULL && fake_opened == opened0,
	    "new writer: a new client gets the console whose last client's "
	    "input still goes out (no new stream)");
	client_send(&b, "second;");
	spin(20);
	f->full = 0;
	fake_want = "first;second;";
	ok(run_until(cond_sent, &b, 500),
	    "new writer: the input left, then the new writer's, in order");
	session_end_all(REASON_SHUTDOWN);
	close(b.fd);

	/* The stream fails while draining. */
	drain_start(&a, "lost;");
	closed0b = fake_closed;
	live0 = session_live();
	fake_stream_fail(fake_last);
	spin(50);
	ok(fake_closed == closed0b + 1 && !sent_has("lost;") &&
	    session_live() == live0 - 1,
	    "drain fails: the stream fails, the console closes, the draining "
	    "session is gone");

	/* The guest ends while draining: parked until the connection ends. */
	drain_start(&a, "eof;");
	closed0b = fake_closed;
	fake_stream_end(fake_last);
	spin(50);
	ok(fake_closed == closed0b, "drain eof: parked at the guest's end of "
	    "file, not closed");
	session_end_all(REASON_HV_LOST);
	ok(fake_closed == closed0b + 1,
	    "drain eof: released when the connection ends");

	/* The guest stops while draining. */
	drain_start(&a, "stop;");
	closed0b = fake_closed;
	session_guest_stopped(&g, REASON_GUEST_STOPPED);
	ok(fake_closed == closed0b, "drain stop: parked at the stop event");
	session_end_all(REASON_SHUTDOWN);
	ok(fake_closed == closed0b + 1, "drain stop: released at shutdown");
}

/* The guest stops, or the stream fails, under an attached client. */
static void
test_console_ends(void)
{
	struct client	c;
	int		closed0b;

	ok(connect_client(&c) != NULL, "stop: attached");
	closed0b = fake_closed;
	session_guest_stopped(&g, REASON_GUEST_MIGRATED);
	ok(expect(&c, "disconnected: guest migrated", 500) &&
	    fake_closed == closed0b && session_count() == 0,
	    "stop: the client is told, the stream is parked");
	session_end_all(REASON_SHUTDOWN);
	ok(fake_closed == closed0b + 1, "stop: the parked stream is released");
	close(c.fd);

	ok(connect_client(&c) != NULL, "failure: attached");
	fake_stream_fail(fake_last);
	ok(expect(&c, "disconnected: hypervisor connection lost", 500),
	    "failure: a stream that fails with no hypervisor connection: "
	    "'hypervisor connection lost'");
	close(c.fd);

	ok(connect_client(&c) != NULL, "send failure: attached");
	fake_last->fail = 1;
	client_send(&c, "x");
	ok(expect(&c, "disconnected: hypervisor connection lost", 500),
	    "send failure: the session ends too");
	close(c.fd);
}

/*
 * A console whose connection takes nothing (a stuck guest) holds up no
 * other console: its input waits, the other's goes at once; and the
 * kinds of stream failure give their notices.
 */
static void
test_stuck_and_failures(void)
{
	struct client		 a, b, c;
	struct fake_stream	*fa;

	ok(connect_alias(&a, "serial0") != NULL, "stuck: serial0 attached");
	fa = fake_last;
	ok(connect_alias(&b, "console1") != NULL, "stuck: console1 attached");
	fa->stuck = 1;
	client_send(&a, "held-back;");
	spin(30);
	client_send(&b, "goes-through;");
	fake_want = "goes-through;";
	ok(run_until(cond_sent, &b, 500) && !sent_has("held-back;"),
	    "stuck: console1's input goes at once, serial0's waits");
	fa->stuck = 0;
	fake_want = "held-back;";
	ok(run_until(cond_sent, &a, 500),
	    "stuck: once serial0's connection takes input, its input goes");
	session_end_all(REASON_SHUTDOWN);
	close(a.fd);
	close(b.fd);

	fake_failure = STREAM_FAIL_LINK_LOST;
	ok(connect_client(&c) != NULL, "link lost: attached");
	fake_stream_fail(fake_last);
	ok(expect(&c, "disconnected: console connection lost", 500),
	    "link lost: 'console connection lost'");
	close(c.fd);
	fake_failure = STREAM_FAIL_TAKEN;
	ok(connect_client(&c) != NULL, "taken: attached");
	fake_stream_fail(fake_last);
	ok(expect(&c, "disconnected: console taken by another client", 500),
	    "taken: 'console taken by another client'");
	close(c.fd);
	fake_failure = STREAM_FAIL_HV_LOST;
}

/*
 * The console's open comes back from the loop: a client that leaves
 * before it cancels the open (its result is never told); an open that
 * cannot even start is refused at once.
 */
static void
test_async_open(void)
{
	struct client		 c;
	struct bufferevent	*bev;
	int			 sv[2], opened0 = fake_opened;
	int			 closed0b = fake_closed;

	bev = client_pair(&c);
	ok(session_open(&g, NULL, bev, "test", NULL, NULL, NULL) != NULL &&
	    session_info_get() && strcmp(info.state, "OPENING") == 0,
	    "async open: the session is OPENING until the open comes back");
	session_end_all(REASON_SHUTDOWN);
	spin(20);
	ok(fake_opened == opened0 && fake_closed == closed0b + 1 &&
	    session_count() == 0 && console_count() == 0,
	    "async open: ended while opening, the open is cancelled (never "
	    "told), the console freed");
	close(c.fd);

	/* A client that writes and leaves while its console opens. */
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1)
		abort();
	evutil_make_socket_nonblocking(sv[0]);
	bev = bufferevent_socket_new(base, sv[0], BEV_OPT_CLOSE_ON_FREE);
	if (write(sv[1], "left-early\r", 11) != 11)
		abort();
	close(sv[1]);
	fake_open_delay = 1;	/* the open comes back on a later pass */
	ok(session_open(&g, NULL, bev, "test", NULL, NULL, NULL) != NULL,
	    "left: a client writes and closes while its console opens");
	spin(5);
	ok(session_info_get() && strcmp(info.state, "LEFT") == 0,
	    "left: the session waits for its console (LEFT)");
	fake_open_delay = 0;
	fake_want = "left-early\r";
	ok(run_until(cond_sent, NULL, 500) && session_live() == 0,
	    "left: once the console opens, what it wrote reaches the guest, "
	    "and the session ends");

	/* The same, but the console cannot be opened: it ends there. */
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1)
		abort();
	evutil_make_socket_nonblocking(sv[0]);
	bev = bufferevent_socket_new(base, sv[0], BEV_OPT_CLOSE_ON_FREE);
	if (write(sv[1], "never-sent\r", 11) != 11)
		abort();
	close(sv[1]);
	fake_open_delay = 1;
	fake_open_result = STREAM_BUSY;
	(void)session_open(&g, NULL, bev, "test", NULL, NULL, NULL);
	spin(5);
	ok(session_info_get() && strcmp(info.state, "LEFT") == 0,
	    "left, refused: LEFT while the console opens");
	fake_open_delay = 0;
	spin(30);
	ok(session_live() == 0 && !sent_has("never-sent"),
	    "left, refused: the open fails, the session ends, nothing sent");
	fake_open_result = STREAM_OPENED;
	fake_open_null = 1;
	ok(connect_client(&c) == NULL &&
	    expect(&c, "refused: guest not running", 500),
	    "async open: an open that cannot start: 'guest not running'");
	fake_open_null = 0;
	close(c.fd);
}

/* capture = always: the console of the test's guest, as the tests see it. */
static const char	*cap_alias = "serial0";
static int		 cap_want;

static int
cond_cap_state(struct client *c)
{
	return console_state_of(&g, cap_alias) == cap_want;
}

/* Run the loop until the captured console is in state (1), or ms pass. */
static int
cap_until(int state, int ms)
{
	cap_want = state;
	return run_until(cond_cap_state, NULL, ms);
}

static int	cap_calls;

static int
cond_open_called(struct client *c)
{
	return fake_open_calls > cap_calls;
}

/* The stream fails under client c, a failure of kind: it is told notice. */
static int
cap_fail_under(struct client *c, enum stream_failure kind, const char *notice)
{
	fake_failure = kind;
	cap_calls = fake_open_calls;
	fake_stream_fail(fake_last);
	return expect(c, notice, 500);
}

/* Whether the history holds text; the losses it records in *gaps. */
static int
cap_history(const char *alias, const char *text, unsigned int *gaps)
{
	const struct history	*h = console_history(&g, alias);
	struct history_pos	 pos = { 0, 0, 0 };
	struct history_read	 rd;
	struct evbuffer		*all;
	struct evbuffer_ptr	 p;
	unsigned int		 n = 0;

	if (h == NULL || (all = evbuffer_new()) == NULL)
		return 0;
	pos.run = history_run(h);
	while (history_read(h, &pos, 0, &rd) != HISTORY_END) {
		if (rd.item == HISTORY_BYTES)
			evbuffer_add(all, rd.data, rd.len);
		else if (rd.item == HISTORY_GAP_UNKNOWN)
			n++;
		else if (rd.item != HISTORY_GAP)
			break;
		pos = rd.next;
	}
	p = evbuffer_search(all, text, strlen(text), NULL);
	evbuffer_free(all);
	if (gaps != NULL)
		*gaps = n;
	return p.pos != -1;
}

/* The capture's key and its backoff. */
static void
test_capture_config(void)
{
	struct config	*conf;
	char		 err[256];
	unsigned int	 b, i, seq[8];

	conf = config_new();
	ok(conf->capture == CAPTURE_ATTACHED &&
	    strcmp(config_capture_name(conf->capture), "attached") == 0,
	    "capture: the default is attached");
	config_free(conf);
	conf = config_parse("t.conf", "capture = always\n", 17, err,
	    sizeof err);
	ok(conf != NULL && conf->capture == CAPTURE_ALWAYS &&
	    strcmp(config_capture_name(conf->capture), "always") == 0,
	    "capture: always is read");
	config_free(conf);
	conf = config_parse("t.conf", "capture = sometimes\n", 20, err,
	    sizeof err);
	ok(conf == NULL && strstr(err, "attached or always") != NULL,
	    "capture: another value is refused (%s)", err);
	config_free(conf);
	for (b = 0, i = 0; i < 8; i++)
		seq[i] = b = console_backoff_next(b);
	ok(seq[0] == 1 && seq[1] == 2 && seq[2] == 4 && seq[5] == 32 &&
	    seq[6] == 60 && seq[7] == 60,
	    "capture: backoff 1 s doubling to 60 s (%u %u %u .. %u %u %u)",
	    seq[0], seq[1], seq[2], seq[5], seq[6], seq[7]);
}

/*
 * capture = always: the daemon holds every console of a running guest
 * with nobody attached, never with force; a console taken from it is
 * STOLEN and taken back without force once it is free; a reload turns it
 * on and off under a live session; the capture is not a session.  The
 * backoff's unit is 10 ms here (1 s in the daemon).
 */
static void
test_capture(void)
{
	struct client		 c;
	struct bufferevent	*bev;
	struct fake_stream	*f;
	unsigned int		 gaps0 = 0, gaps1 = 0;
	int			 forced0, closed0c, opened0;

	configure("uri = test:///default\n");
	console_test_backoff_unit(10);
	g.naliases = 1;
	TAILQ_INSERT_TAIL(guest_list(), &g, entry);
	cap_calls = fake_open_calls;
	forced0 = fake_open_forced;
	configure("uri = test:///default\ncapture = always\n");
	ok(cap_until(CONSOLE_OPEN, 500) && console_captured() == 1 &&
	    fake_open_calls == cap_calls + 1 && fake_open_forced == forced0,
	    "capture: a reload to always opens the running guest's console, "
	    "without force");
	ok(session_count() == 0 && !session_info_get() &&
	    !session_busy(&g, "serial0"),
	    "capture: it is not a session: none listed, the console not busy");
	f = fake_last;
	fake_stream_print(f, "boot-line\r\n");
	spin(10);
	ok(cap_history("serial0", "boot-line", &gaps0),
	    "capture: output with nobody attached goes into the history");

	/* A session joins the open stream; when it leaves, it stays open. */
	opened0 = fake_opened;
	closed0c = fake_closed;
	ok(connect_client(&c) != NULL && fake_opened == opened0 &&
	    session_count() == 1 && session_busy(&g, "serial0"),
	    "capture: a client joins the open stream (no new open), busy");
	fake_stream_print(f, "joined\r\n");
	ok(expect(&c, "joined", 500), "capture: the client gets its output");
	client_send(&c, "\x11");
	ok(expect(&c, "disconnected: escape key", 500) &&
	    run_until(cond_table_empty, NULL, 500) &&
	    fake_closed == closed0c &&
	    console_state_of(&g, "serial0") == CONSOLE_OPEN,
	    "capture: the client leaves, the stream stays open");
	close(c.fd);

	/*
	 * Stolen (virsh console --force): the client is told, a loss is
	 * recorded, and opens without force are refused while the other
	 * holder stays; once it leaves, the console is captured again.
	 */
	ok(connect_client(&c) != NULL && fake_last == f,
	    "steal: a client attached");
	fake_held = 1;
	forced0 = fake_open_forced;
	ok(cap_fail_under(&c, STREAM_FAIL_TAKEN,
	    "disconnected: console taken by another client"),
	    "steal: the client gets 'console taken by another client'");
	close(c.fd);
	ok(console_state_of(&g, "serial0") == CONSOLE_STOLEN ||
	    console_state_of(&g, "serial0") == CONSOLE_OPENING,
	    "steal: the console is STOLEN");
	ok(run_until(cond_open_called, NULL, 500) &&
	    cap_until(CONSOLE_STOLEN, 500) && (cap_calls = fake_open_calls,
	    run_until(cond_open_called, NULL, 500)) &&
	    fake_open_forced == forced0,
	    "steal: tried again after its backoff, never with force, refused "
	    "while the other holds it");
	fake_held = 0;
	fake_failure = STREAM_FAIL_HV_LOST;
	ok(cap_until(CONSOLE_OPEN, 1000) && fake_open_forced == forced0,
	    "steal: the other holder leaves: captured again, without force");
	f = fake_last;
	fake_stream_print(f, "after-steal\r\n");
	spin(10);
	ok(cap_history("serial0", "after-steal", &gaps1) && gaps1 > gaps0,
	    "steal: the output after it is in the history, a loss between "
	    "(%u losses, %u before)", gaps1, gaps0);

	/* Stolen, with a long backoff: clients open on their own terms. */
	console_test_backoff_unit(60000);
	fake_failure = STREAM_FAIL_TAKEN;
	fake_held = 1;
	fake_stream_fail(f);
	ok(cap_until(CONSOLE_STOLEN, 500), "stolen again (backoff 60 s)");
	configure("uri = test:///default\ncapture = always\nforce = no\n");
	ok(connect_client(&c) == NULL &&
	    expect(&c, "refused: console busy", 500) &&
	    console_state_of(&g, "serial0") == CONSOLE_STOLEN,
	    "stolen, force = no: a client is refused 'console busy', the "
	    "console stays STOLEN");
	close(c.fd);
	configure("uri = test:///default\ncapture = always\n");
	forced0 = fake_open_forced;
	ok(connect_client(&c) != NULL && fake_open_forced == forced0 + 1 &&
	    console_state_of(&g, "serial0") == CONSOLE_OPEN,
	    "stolen, force = yes: a client's own open forces, as without "
	    "capture, and it attaches");
	client_send(&c, "\x11");
	ok(expect(&c, "disconnected: escape key", 500) &&
	    cap_until(CONSOLE_OPEN, 100) && console_captured() == 1,
	    "stolen, force = yes: the client leaves, the capture keeps it");
	close(c.fd);

	/* A lifecycle event of the guest tries a stolen console at once. */
	f = fake_last;
	fake_stream_fail(f);
	ok(cap_until(CONSOLE_STOLEN, 500), "stolen once more (backoff 60 s)");
	fake_held = 0;
	console_capture_guest(&g);
	ok(cap_until(CONSOLE_OPEN, 500),
	    "a lifecycle event of the guest: tried at once, captured");

	/*
	 * A client with force comes while the capture's own open (no force)
	 * is under way and finds the console held: it is opened again with
	 * force for the client.
	 */
	f = fake_last;
	fake_stream_fail(f);
	ok(cap_until(CONSOLE_STOLEN, 500), "stolen, before a client comes");
	fake_held = 1;
	fake_open_delay = 1;
	forced0 = fake_open_forced;
	console_capture_guest(&g);
	bev = client_pair(&c);
	ok(console_state_of(&g, "serial0") == CONSOLE_OPENING &&
	    session_open(&g, NULL, bev, "test", NULL, NULL, NULL) != NULL,
	    "a client comes while the capture opens");
	fake_open_delay = 0;
	ok(cap_until(CONSOLE_OPEN, 500) && fake_open_forced == forced0 + 1 &&
	    session_info_get() && strcmp(info.state, "ATTACHED") == 0,
	    "held elsewhere: opened again with force for the client, which "
	    "attaches");
	fake_held = 0;

	/* Its connection drops: BACKOFF, then captured again. */
	console_test_backoff_unit(10);
	fake_open_result = STREAM_LINK_LOST;
	ok(cap_fail_under(&c, STREAM_FAIL_LINK_LOST,
	    "disconnected: console connection lost"),
	    "link lost: the client is told");
	close(c.fd);
	ok(run_until(cond_open_called, NULL, 500) &&
	    cap_until(CONSOLE_BACKOFF, 500),
	    "link lost: BACKOFF, tried again, still lost");
	fake_open_result = STREAM_OPENED;
	ok(cap_until(CONSOLE_OPEN, 500), "link lost: captured again");
	fake_failure = STREAM_FAIL_HV_LOST;

	/* A reload to attached under a live session drops nothing. */
	ok(connect_client(&c) != NULL, "reload: a client attached");
	closed0c = fake_closed;
	configure("uri = test:///default\nhistory = 64K\n");
	fake_stream_print(fake_last, "still-here\r\n");
	ok(expect(&c, "still-here", 500) && console_captured() == 0 &&
	    fake_closed == closed0c && session_count() == 1,
	    "reload to attached (and history changed): the session goes on, "
	    "the capture is gone");
	configure("uri = test:///default\ncapture = always\n");
	fake_stream_print(fake_last, "again-here\r\n");
	ok(expect(&c, "again-here", 500) && console_captured() == 1 &&
	    fake_closed == closed0c && session_count() == 1,
	    "reload to always: the session goes on, captured again");
	client_send(&c, "\x11");
	(void)expect(&c, "escape key", 500);
	close(c.fd);
	ok(run_until(cond_table_empty, NULL, 500) && fake_closed == closed0c,
	    "reload: the client leaves, the capture keeps the stream");
	configure("uri = test:///default\n");
	ok(fake_closed == closed0c + 1 && console_count() == 0 &&
	    cap_history("serial0", "again-here", NULL),
	    "reload to attached, no client: the stream is closed, the "
	    "history stays");

	/* A stolen console at a reload to attached: closed, freed. */
	configure("uri = test:///default\ncapture = always\n");
	ok(cap_until(CONSOLE_OPEN, 500), "captured");
	console_test_backoff_unit(60000);
	fake_failure = STREAM_FAIL_TAKEN;
	fake_stream_fail(fake_last);
	ok(cap_until(CONSOLE_STOLEN, 500), "stolen");
	configure("uri = test:///default\n");
	spin(5);
	ok(console_count() == 0 && console_captured() == 0,
	    "a stolen console at a reload to attached: let go, freed");

	/* The guest stops: the capture lets go of every console state. */
	g.naliases = 2;
	configure("uri = test:///default\ncapture = always\n");
	ok(cap_until(CONSOLE_OPEN, 500) && console_captured() == 2,
	    "every console of the guest captured (two)");
	fake_failure = STREAM_FAIL_LINK_LOST;
	fake_stream_fail(fake_last);	/* console1 */
	cap_alias = "console1";
	ok(cap_until(CONSOLE_BACKOFF, 500), "console1 in BACKOFF");
	closed0c = fake_closed;
	session_guest_stopped(&g, REASON_GUEST_STOPPED);
	spin(5);
	ok(console_captured() == 0 && console_count() == 1 &&
	    console_state_of(&g, "serial0") == -1,
	    "the guest stops: serial0 parked, console1 closed, no capture");
	session_end_all(REASON_HV_LOST);
	ok(fake_closed == closed0c + 1 && console_count() == 0,
	    "the parked stream released");

	/* BACKOFF at the connection's end. */
	console_capture_guest(&g);
	ok(cap_until(CONSOLE_OPEN, 500), "captured again");
	fake_stream_fail(fake_last);
	ok(cap_until(CONSOLE_BACKOFF, 500), "console1 in BACKOFF");
	session_end_all(REASON_HV_LOST);
	spin(5);
	ok(console_captured() == 0 && console_count() == 0,
	    "the connection ends: every captured console closed");
	fake_failure = STREAM_FAIL_HV_LOST;
	cap_alias = "serial0";

	/* One libvirt cannot open at all: left until the next run. */
	fake_open_result = STREAM_NO_CONSOLE;
	g.naliases = 1;
	cap_calls = fake_open_calls;
	console_capture_guest(&g);
	spin(10);
	ok(fake_open_calls == cap_calls + 1 && console_count() == 0 &&
	    console_captured() == 0, "no such console: tried once, let go");
	console_capture_guest(&g);
	spin(10);
	ok(fake_open_calls == cap_calls + 1,
	    "no such console: not tried again in the same run");
	fake_open_result = STREAM_OPENED;
	g.domid++;
	console_capture_guest(&g);
	ok(cap_until(CONSOLE_OPEN, 500) && fake_open_calls == cap_calls + 2,
	    "the guest's next run: tried, and captured");
	session_end_all(REASON_SHUTDOWN);
	spin(5);
	ok(console_count() == 0 && console_captured() == 0,
	    "the daemon stops: the capture lets go");
	console_capture_guest(&g);
	spin(5);
	ok(console_count() == 0,
	    "and captures nothing more while the daemon drains its clients");
	configure("uri = test:///default\n");
	TAILQ_REMOVE(guest_list(), &g, entry);
	g.naliases = 2;
	console_test_backoff_unit(1000);
	spin(5);
	ok(console_count() == 0 && session_count() == 0,
	    "capture: nothing left");
}

/* Every legal transition taken; every illegal one refused and counted. */

/* How many times needle is in hay. */
static int
count_in(const char *hay, const char *needle)
{
	const char	*p = hay;
	int		 n = 0;

	while ((p = strstr(p, needle)) != NULL) {
		n++;
		p += strlen(needle);
	}
	return n;
}

/* The list's entry of session s, in info_of. */
static int
info_get(struct session *s)
{
	return session_info_of(session_id(s));
}

#define VIEW_ONLY "\r\n[virtconsoled] view only: input is not sent to the guest\r\n"

/*
 * Viewers beside the writer: they see its output, their input goes
 * nowhere (told once), they do not count against the writer rule, the
 * writer comes and goes without them, max_viewers bounds them (a lowered
 * max_viewers keeps those there), kick can take only them.
 */
static void
test_viewers(void)
{
	struct client	 w, v1, v2, v3, x, w2;
	struct session	*sw, *sv1;
	size_t		 sent0;
	unsigned int	 n;
	int		 vopened0, vclosed0, k;

	configure("uri = test:///default\npolicy = refuse\nmax_viewers = 2\n");
	vopened0 = fake_opened;
	vclosed0 = fake_closed;
	sw = connect_as(&w, SESSION_WRITER, NULL, NULL);
	sv1 = connect_as(&v1, SESSION_VIEWER, NULL, NULL);
	n = connect_as(&v2, SESSION_VIEWER, NULL, NULL) != NULL ?
	    session_count() : 0;
	ok(sw != NULL && sv1 != NULL && n == 3 && fake_opened ==
	    vopened0 + 1, "viewers: a writer and two viewers attach to one "
	    "console, opened once (%u sessions)", n);
	ok(session_busy(&g, "serial0") &&
	    session_viewers(&g, "serial0") == 2 &&
	    session_viewers(&g, "console1") == 0,
	    "viewers: the console is busy (a writer) with 2 viewers");
	ok(info_get(sv1) && strcmp(info_of.role, "viewer") == 0 &&
	    strcmp(info_of.label, "auditor") == 0 && info_get(sw) &&
	    strcmp(info_of.role, "writer") == 0 && info_of.label[0] == '\0',
	    "viewers: the list says each role and label");
	ok(connect_as(&v3, SESSION_VIEWER, NULL, NULL) == NULL &&
	    expect(&v3, "[virtconsoled] refused: too many clients", 500),
	    "viewers: a third is refused 'too many clients' (max_viewers 2)");
	close(v3.fd);
	ok(connect_as(&x, SESSION_WRITER, NULL, NULL) == NULL &&
	    expect(&x, "[virtconsoled] refused: console busy", 500),
	    "viewers: a second writer is still refused 'console busy'");
	close(x.fd);

	fake_stream_print(fake_last, "out-1\r\n");
	ok(expect(&w, "out-1", 500) && expect(&v1, "out-1", 500) &&
	    expect(&v2, "out-1", 500),
	    "viewers: the guest's output reaches the writer and both viewers");
	sent0 = evbuffer_get_length(fake_sent);
	client_send(&v1, "touch /tmp/viewer-wrote\r");
	ok(expect(&v1, VIEW_ONLY, 500),
	    "viewers: a viewer that types is told its input is not sent");
	client_send(&v1, "more\r");
	client_send(&w, "from-writer\r");
	fake_want = "from-writer\r";
	k = run_until(cond_fake_got, &w, 500);
	sent0 = evbuffer_get_length(fake_sent) - sent0;
	ok(k && sent0 == strlen("from-writer\r"), "viewers: only the "
	    "writer's input reaches the guest (%zu bytes)", sent0);
	spin(20);
	ok(count_in(v1.got, "view only") == 1 &&
	    count_in(v2.got, "view only") == 0 &&
	    count_in(w.got, "view only") == 0,
	    "viewers: told once, and only the viewer that typed");
	k = info_get(sv1);
	ok(k && info_of.bytes_ignored == strlen("touch /tmp/viewer-wrote\r"
	    "more\r") && info_of.bytes_in == 0, "viewers: its input is "
	    "counted as ignored (%llu bytes)",
	    (unsigned long long)info_of.bytes_ignored);

	/* The writer leaves: the viewers stay; a new writer comes. */
	close(w.fd);
	spin(50);
	ok(!session_busy(&g, "serial0") &&
	    session_viewers(&g, "serial0") == 2 &&
	    fake_closed == vclosed0 && info_get(sv1) &&
	    strcmp(info_of.state, "ATTACHED") == 0,
	    "viewers: the writer leaves, the viewers stay, the console open");
	ok(connect_as(&w2, SESSION_WRITER, NULL, NULL) != NULL &&
	    fake_opened == vopened0 + 1,
	    "viewers: a new writer attaches to the open console");
	fake_stream_print(fake_last, "out-2\r\n");
	ok(expect(&w2, "out-2", 500) && expect(&v1, "out-2", 500) &&
	    expect(&v2, "out-2", 500), "viewers: and they see its output");

	/* A lowered max_viewers keeps those there. */
	configure("uri = test:///default\npolicy = refuse\nmax_viewers = 0\n");
	ok(session_viewers(&g, "serial0") == 2 &&
	    connect_as(&v3, SESSION_VIEWER, NULL, NULL) == NULL &&
	    expect(&v3, "refused: too many clients", 500),
	    "viewers: max_viewers lowered to 0 by reload: the two stay, a "
	    "new one is refused");
	close(v3.fd);
	ok(session_kick_guest(NULL, "fake", NULL, REASON_KICKED, 1) == 2 &&
	    expect(&v1, "disconnected: kicked by administrator", 500) &&
	    expect(&v2, "disconnected: kicked by administrator", 500) &&
	    session_busy(&g, "serial0") && session_count() == 1,
	    "viewers: kick of the viewers only: both end, the writer stays");
	close(v1.fd);
	close(v2.fd);

	configure("uri = test:///default\npolicy = refuse\n");
	ok(connect_as(&v1, SESSION_VIEWER, NULL, NULL) != NULL,
	    "viewers: a viewer again (max_viewers 8)");
	client_send(&v1, "abc\x11zz");
	ok(expect(&v1, VIEW_ONLY, 500) &&
	    expect(&v1, "disconnected: escape key", 500),
	    "viewers: the escape byte ends a viewer, 'escape key'");
	close(v1.fd);
	ok(connect_as(&v1, SESSION_VIEWER, NULL, NULL) != NULL &&
	    session_kick_guest(NULL, "fake", "serial0", REASON_KICKED, 0) == 2 &&
	    expect(&w2, "kicked by administrator", 500) &&
	    expect(&v1, "kicked by administrator", 500) &&
	    session_count() == 0,
	    "viewers: kick of the console ends the writer and its viewers");
	close(v1.fd);
	close(w2.fd);
	spin(20);

	/* A viewer never takes a console held elsewhere (force = yes). */
	fake_held = 1;
	k = fake_open_forced;
	ok(connect_as(&v1, SESSION_VIEWER, NULL, NULL) == NULL &&
	    expect(&v1, "refused: console busy", 500) &&
	    fake_open_forced == k, "viewers: a console held elsewhere: the "
	    "viewer's open does not force, refused 'console busy'");
	close(v1.fd);
	ok(connect_as(&w, SESSION_WRITER, NULL, NULL) != NULL &&
	    fake_open_forced == k + 1, "viewers: the writer's open forces");
	fake_held = 0;

	/* Output is a viewer's activity; a writer's only if configured. */
	configure("uri = test:///default\nidle_timeout = 1\n");
	ok(connect_as(&v1, SESSION_VIEWER, NULL, NULL) != NULL,
	    "viewers: idle_timeout 1 s, a viewer beside the writer");
	for (k = 0; k < 6; k++) {
		fake_stream_print(fake_last, "tick\r\n");
		spin(250);
	}
	ok(expect(&w, "disconnected: idle timeout", 10) && session_count() ==
	    1 && !v1.eof, "viewers: after 1.5 s of output, the writer that "
	    "did not type is idle, the viewer is not");
	ok(expect(&v1, "disconnected: idle timeout", 1500),
	    "viewers: without output, the viewer ends idle too");
	close(v1.fd);
	close(w.fd);
	spin(20);
	configure("uri = test:///default\n");
}

/* A door that frames messages: the JSON objects, in order. */
static char	door_msgs[4096];

static int
door_message(void *arg, const char *json, size_t len, uint64_t at)
{
	size_t	used = strlen(door_msgs);

	if (used + len + 2 < sizeof door_msgs) {
		memcpy(door_msgs + used, json, len);
		door_msgs[used + len] = '\n';
		door_msgs[used + len + 1] = '\0';
	}
	return 0;
}

static void
door_close(struct bufferevent *bev, enum session_reason reason, void *arg)
{
	bufferevent_free(bev);
}

static const struct session_door door_v1 = {
	.name = "test-v1",
	.kind = SESSION_DOOR_WS,
	.close = door_close,
	.message = door_message,
};

static const char	*msg_want;

static int
cond_msg(struct client *c)
{
	return strstr(door_msgs, msg_want) != NULL;
}

static int
expect_msg(const char *text, int ms)
{
	msg_want = text;
	return run_until(cond_msg, NULL, ms);
}

/*
 * A client whose door frames messages: hello says its role, `clients`
 * follows every change of the console's writer and viewer count, and a
 * viewer that types gets one `notice`.
 */
static void
test_viewer_messages(void)
{
	struct client	 v, w, v2;

	configure("uri = test:///default\n");
	door_msgs[0] = '\0';
	ok(connect_as(&v, SESSION_VIEWER, &door_v1, NULL) != NULL &&
	    expect_msg("\"role\":\"viewer\"", 200) &&
	    expect_msg("{\"type\":\"clients\",\"writer\":false,"
	    "\"viewers\":1}", 200),
	    "clients: a viewer alone: hello with role viewer, then no writer "
	    "and one viewer: %s", door_msgs);
	ok(connect_as(&w, SESSION_WRITER, NULL, NULL) != NULL &&
	    expect_msg("{\"type\":\"clients\",\"writer\":true,"
	    "\"viewers\":1}", 200), "clients: a writer comes: told");
	ok(connect_as(&v2, SESSION_VIEWER, NULL, NULL) != NULL &&
	    expect_msg("{\"type\":\"clients\",\"writer\":true,"
	    "\"viewers\":2}", 200), "clients: a second viewer comes: told");
	close(w.fd);
	ok(expect_msg("{\"type\":\"clients\",\"writer\":false,"
	    "\"viewers\":2}", 500), "clients: the writer leaves: told");
	client_send(&v, "typed");
	ok(expect_msg("{\"type\":\"notice\",\"text\":\"view only: input is "
	    "not sent to the guest\"}", 500) && strstr(v.got, "view only") ==
	    NULL, "clients: a framed viewer that types gets a notice "
	    "message, no bytes");
	close(v2.fd);
	ok(expect_msg("{\"type\":\"clients\",\"writer\":false,"
	    "\"viewers\":1}\n", 500), "clients: the other viewer leaves: told");
	ok(count_in(door_msgs, "\"type\":\"clients\"") == 5,
	    "clients: sent on change only (5): %s", door_msgs);
	session_end_all(REASON_SHUTDOWN);
	close(v.fd);
	spin(20);
}

/* A line of the metrics text, or NULL. */
static int
metrics_has(const char *line)
{
	struct evbuffer		*b = evbuffer_new();
	struct evbuffer_ptr	 p;

	metrics_render(b);
	p = evbuffer_search(b, line, strlen(line), NULL);
	evbuffer_free(b);
	return p.pos != -1;
}

/*
 * The counters behind metrics: sessions by door and role, started, ended
 * by reason, refused by reason, bytes by door and direction; and the
 * lines metrics_render() makes of them.
 */
static void
test_counters(void)
{
	struct session_counters	 c0, c1;
	struct client		 a, b, v;
	char			 line[128];

	configure("uri = test:///default\npolicy = refuse\n");
	session_counters(&c0);
	ok(connect_client(&a) != NULL, "counters: a unix client attaches");
	ok(connect_as(&v, SESSION_VIEWER, &door_v1, NULL) != NULL,
	    "counters: a ws viewer attaches");
	session_counters(&c1);
	ok(c1.live[SESSION_DOOR_UNIX][0] == 1 &&
	    c1.live[SESSION_DOOR_WS][1] == 1 &&
	    c1.started[SESSION_DOOR_UNIX] == c0.started[SESSION_DOOR_UNIX] + 1 &&
	    c1.started[SESSION_DOOR_WS] == c0.started[SESSION_DOOR_WS] + 1,
	    "counters: one unix writer and one ws viewer live, each started");
	ok(metrics_has("virtconsoled_sessions{door=\"unix\",role=\"writer\"} "
	    "1\n") && metrics_has("virtconsoled_sessions{door=\"ws\","
	    "role=\"viewer\"} 1\n") && metrics_has("virtconsoled_sessions{"
	    "door=\"attach\",role=\"writer\"} 0\n"),
	    "counters: metrics show them, and the doors without sessions");
	fake_stream_print(fake_last, "login: ");
	ok(expect(&a, "login: ", 500), "counters: output reaches the writer");
	client_send(&a, "root\r");
	fake_want = "root\r";
	ok(run_until(cond_fake_got, &a, 500), "counters: input reaches the "
	    "guest");
	session_counters(&c1);
	ok(c1.to_guest[SESSION_DOOR_UNIX] == c0.to_guest[SESSION_DOOR_UNIX] +
	    5 && c1.to_client[SESSION_DOOR_UNIX] >=
	    c0.to_client[SESSION_DOOR_UNIX] + 7 &&
	    c1.to_guest[SESSION_DOOR_WS] == c0.to_guest[SESSION_DOOR_WS],
	    "counters: 5 bytes to the guest and 7 to the client by the unix "
	    "door, none to the guest by ws");
	ok(c1.send_call[SESSION_DOOR_UNIX].count >
	    c0.send_call[SESSION_DOOR_UNIX].count &&
	    c1.send_call[SESSION_DOOR_WS].count ==
	    c0.send_call[SESSION_DOOR_WS].count &&
	    c1.forward[SESSION_DOOR_UNIX][SESSION_TO_GUEST].count >
	    c0.forward[SESSION_DOOR_UNIX][SESSION_TO_GUEST].count,
	    "counters: the unix door's input is timed, residence and "
	    "virStreamSend() call; no call timed for ws");
	ok(c1.send_call[SESSION_DOOR_UNIX].sum_ns -
	    c0.send_call[SESSION_DOOR_UNIX].sum_ns <=
	    c1.forward[SESSION_DOOR_UNIX][SESSION_TO_GUEST].sum_ns -
	    c0.forward[SESSION_DOOR_UNIX][SESSION_TO_GUEST].sum_ns,
	    "counters: the calls took no longer than the input's residence "
	    "(they are part of it)");
	ok(connect_client(&b) == NULL &&
	    expect(&b, "refused: console busy", 500),
	    "counters: a second writer is refused busy");
	client_send(&a, "\x11");
	ok(run_until(got_eof, &a, 2500), "counters: the escape key ends the "
	    "writer");
	session_end_all(REASON_SHUTDOWN);
	spin(20);
	session_counters(&c1);
	ok(c1.refused[REASON_BUSY] == c0.refused[REASON_BUSY] + 1 &&
	    c1.ended[REASON_ESCAPE] == c0.ended[REASON_ESCAPE] + 1 &&
	    c1.ended[REASON_SHUTDOWN] == c0.ended[REASON_SHUTDOWN] + 1 &&
	    c1.ended[REASON_BUSY] == c0.ended[REASON_BUSY],
	    "counters: one refused busy (not counted as ended), one ended by "
	    "the escape key, one by the shutdown");
	ok(c1.live[SESSION_DOOR_UNIX][0] == 0 &&
	    c1.live[SESSION_DOOR_WS][1] == 0, "counters: none live now");
	snprintf(line, sizeof line, "virtconsoled_sessions_ended_total{"
	    "reason=\"escape_key\"} %llu\n",
	    (unsigned long long)c1.ended[REASON_ESCAPE]);
	ok(metrics_has(line), "counters: metrics: %s", line);
	snprintf(line, sizeof line, "virtconsoled_refusals_total{"
	    "reason=\"console_busy\"} %llu\n",
	    (unsigned long long)c1.refused[REASON_BUSY]);
	ok(metrics_has(line) && !metrics_has("_total{reason=\"none\"}") &&
	    !metrics_has("virtconsoled_sessions_ended_total{reason=\"console_"
	    "busy\"}"), "counters: metrics: %s (a refusal only)", line);
	close(a.fd);
	close(b.fd);
	close(v.fd);
}

static void
test_tables(void)
{
	struct fsm	*machines[] = { &session_fsm, &console_fsm };
	unsigned int	 legal, taken, s, e, refused, tried;
	unsigned long long errors0;
	size_t		 i;
	int		 state;

	ok(fsm_state_errors() == 0, "no illegal transition was attempted "
	    "by the cases above (%llu)", fsm_state_errors());
	for (i = 0; i < sizeof machines / sizeof machines[0]; i++) {
		fsm_coverage(machines[i], &legal, &taken);
		printf("# %s: %u/%u transitions taken\n", machines[i]->name,
		    taken, legal);
		fsm_untaken(machines[i], stdout);
		ok(taken == legal, "%s: every legal transition was taken "
		    "(%u/%u)", machines[i]->name, taken, legal);
	}
	log_set_level(LOG_LEVEL_ERROR);
	for (i = 0; i < sizeof machines / sizeof machines[0]; i++) {
		refused = tried = 0;
		errors0 = fsm_state_errors();
		for (s = 0; s < machines[i]->nstates; s++)
			for (e = 0; e < machines[i]->nevents; e++) {
				if (fsm_next(machines[i], (int)s, (int)e) !=
				    FSM_ILLEGAL)
					continue;
				state = (int)s;
				tried++;
				if (fsm_step(machines[i], &state, (int)e,
				    "test", "test") == -1 && state == (int)s)
					refused++;
			}
		ok(tried > 0 && refused == tried &&
		    fsm_state_errors() - errors0 == tried,
		    "%s: each of the %u illegal (state, event) pairs is "
		    "refused, left the state alone, and was counted",
		    machines[i]->name, tried);
	}
}

int
main(void)
{
	signal(SIGPIPE, SIG_IGN);	/* as the daemon: clients that left */
	base = event_base_new();
	log_init(LOG_TARGET_STDERR, getenv("TM_DEBUG") ? LOG_LEVEL_DEBUG : LOG_LEVEL_ERROR, NULL);
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
	test_waiting();
	test_escape_split();
	test_backpressure_out();
	test_backpressure_in();
	test_drain_cases();
	test_console_ends();
	test_stuck_and_failures();
	test_async_open();
	test_capture_config();
	test_capture();
	test_viewers();
	test_viewer_messages();
	test_counters();
	test_tables();
	return tap_done();
}
