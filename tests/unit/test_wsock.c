/*
 * The WebSocket connection machine (src/wsock.c) on a real event loop: the
 * test is the client, speaking WebSocket frames over a socketpair whose
 * other end is the connection's socket; a real session runs behind it, on
 * the fake console stream of fake_stream.c.  Every legal transition of
 * wsock_fsm is driven by real events, and the run fails below 100%.  The
 * events each state refuses are injected (wsock_test_inject) the first
 * time a connection enters it, and must be refused, counted and harmless.
 * VCD_TEST_DEBUG=1 in the environment shows the transitions (and the
 * injected BUG lines) on stderr.
 */
#include <sys/socket.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "virtconsoled.h"
#include "tap.h"
#include "fake_stream.h"

#define LINGER_MS	2000	/* WSOCK_LINGER, but for the linger case */

static struct event_base	*base;
static struct guest		 g;
static char			*aliases[] = { "serial0", "console1" };

/* What the observer saw: the states of the current connection, in turn. */
static char		 path[256];
static int		 checked[32];	/* states whose refusals were checked */
static unsigned int	 injected;	/* illegal events injected, in all */

/* The test's end: frames sent, frames received and decoded. */
struct client {
	int		 fd;
	int		 mode;		/* WSOCK_RAW, _BASE64, _V1 */
	struct ws_reader rd;		/* the server's frames */
	struct evbuffer	*raw;		/* received, not yet parsed */
	struct evbuffer	*msg;		/* a data message so far */
	char		 data[16384];	/* guest output and notices (v1:
					   and the messages, as they are) */
	struct evbuffer	*bytes;		/* every binary byte, unbounded */
	size_t		 len;
	int		 binary, text;	/* data messages by opcode */
	int		 pongs;
	char		 pong[WS_CONTROL_MAX + 1];
	int		 closes;	/* close frames */
	unsigned int	 code;		/* of the first */
	char		 reason[WS_CONTROL_MAX];
	int		 after_close;	/* data messages after it */
	int		 broken;	/* a frame the client reader refused */
	int		 eof;
	SSL		*ssl;		/* over TLS: the client's end */
};

/* The events each state refuses must be refused, counted, and harmless. */
static void
check_refusals(struct wsock *w, int state)
{
	unsigned long long	 before;
	unsigned int		 e, n = 0, bad = 0;
	int			 r, after;

	for (e = 0; e <= wsock_fsm.nevents; e++) {
		/* nevents itself: an event the machine does not know. */
		if (fsm_next(&wsock_fsm, state, (int)e) != FSM_ILLEGAL)
			continue;
		before = fsm_state_errors();
		r = wsock_test_inject(w, (int)e, &after);
		n++;
		injected++;
		if (r != -1 || fsm_state_errors() != before + 1 ||
		    after != state)
			bad++;
	}
	ok(n > 0 && bad == 0, "%s: the %u events it refuses are refused, "
	    "counted, and leave it there (%u wrong)",
	    fsm_state_name(&wsock_fsm, state), n, bad);
}

/* wsock_test_observer: every state a connection enters. */
static void
observe(struct wsock *w, int state)
{
	size_t	len = strlen(path);

	snprintf(path + len, sizeof path - len, "%s%s", len > 0 ? " " : "",
	    fsm_state_name(&wsock_fsm, state));
	if (state >= 0 && (size_t)state < sizeof checked / sizeof checked[0] &&
	    !checked[state]) {
		checked[state] = 1;
		check_refusals(w, state);
	}
}

/* The first configuration starts the session layer; later ones reload. */
static void
configure(const char *text)
{
	static int	 started;
	struct config	*conf;
	char		 err[256];

	if ((conf = config_parse("test.conf", text, strlen(text), err,
	    sizeof err)) == NULL) {
		fprintf(stderr, "config: %s\n", err);
		exit(1);
	}
	if (started++ == 0)
		session_init(base, conf);
	else
		session_reconfigure(conf);
	config_free(conf);
}

/* One server frame, decoded. */
static void
client_event(struct client *c, int rc, const struct ws_event *ev)
{
	uint8_t	*p, out[sizeof c->data];
	size_t	 n;
	ssize_t	 d;

	switch (rc) {
	case WS_EV_DATA:
		evbuffer_add(c->msg, ev->data, ev->len);
		if (!ev->fin)
			break;
		n = evbuffer_get_length(c->msg);
		p = evbuffer_pullup(c->msg, -1);
		if (ev->opcode == WS_OP_TEXT) {
			c->text++;
			if (c->mode == WSOCK_BASE64 && (d = ws_b64_decode(
			    (const char *)p, n, out, sizeof out)) >= 0) {
				p = out;
				n = (size_t)d;
			} else if (c->mode == WSOCK_BASE64)
				c->broken++;
		} else {
			c->binary++;
			evbuffer_add(c->bytes, p, n);
		}
		if (n > sizeof c->data - 1 - c->len)
			n = sizeof c->data - 1 - c->len;
		memcpy(c->data + c->len, p, n);
		c->len += n;
		c->data[c->len] = '\0';
		evbuffer_drain(c->msg, evbuffer_get_length(c->msg));
		if (c->closes > 0)
			c->after_close++;
		break;
	case WS_EV_PONG:
		c->pongs++;
		memcpy(c->pong, ev->data, ev->len);
		c->pong[ev->len] = '\0';
		break;
	case WS_EV_CLOSE:
		if (c->closes++ == 0) {
			c->code = ev->code;
			snprintf(c->reason, sizeof c->reason, "%s", ev->reason);
		}
		/* The reader stops at a close: go on, to see what follows. */
		ws_reader_init_client(&c->rd, 0);
		break;
	case WS_EV_ERROR:
		c->broken++;
		break;
	default:
		break;
	}
}

static void
client_poll(struct client *c)
{
	struct ws_event	 ev;
	uint8_t		 buf[8192];
	size_t		 len, used;
	ssize_t		 n;
	int		 rc;

	while (!c->eof) {
		if (c->ssl != NULL) {
			ERR_clear_error();
			if ((n = SSL_read(c->ssl, buf, sizeof buf)) <= 0) {
				if (SSL_get_error(c->ssl, (int)n) !=
				    SSL_ERROR_WANT_READ)
					c->eof = 1;
				break;
			}
		} else
			n = recv(c->fd, buf, sizeof buf, MSG_DONTWAIT);
		if (n > 0)
			evbuffer_add(c->raw, buf, (size_t)n);
		else if (n == 0 || (errno != EAGAIN && errno != EINTR))
			c->eof = 1;
		else
			break;
	}
	while ((len = evbuffer_get_length(c->raw)) > 0) {
		rc = ws_reader_feed(&c->rd, evbuffer_pullup(c->raw, -1), len,
		    &used, &ev);
		evbuffer_drain(c->raw, used);
		if (rc == WS_EV_NEED_MORE)
			break;
		client_event(c, rc, &ev);
		if (rc == WS_EV_ERROR)
			break;
	}
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
		if (cond != NULL && cond(c))
			return 1;
		nanosleep(&ts, NULL);
	}
	return 0;
}

static void
run_for(struct client *c, int ms)
{
	(void)run_until(NULL, c, ms);
}

static const char	*want;

static int
cond_data(struct client *c)
{
	return strstr(c->data, want) != NULL;
}

static size_t	want_bytes;

static int
cond_bytes(struct client *c)
{
	return evbuffer_get_length(c->bytes) >= want_bytes;
}

static int
cond_close(struct client *c)
{
	return c->closes > 0;
}

static int
cond_pong(struct client *c)
{
	return c->pongs > 0;
}

static int
cond_path(struct client *c)
{
	return strstr(path, want) != NULL;
}

static int
cond_freed(struct client *c)
{
	return wsock_count() == 0 && (c == NULL || c->eof);
}

static int
sent_has(const char *s)
{
	struct evbuffer_ptr	p;

	p = evbuffer_search(fake_sent, s, strlen(s), NULL);
	return p.pos != -1;
}

static int
cond_sent(struct client *c)
{
	return sent_has(want);
}

static int
wait_data(struct client *c, const char *s)
{
	want = s;
	return run_until(cond_data, c, 500);
}

static int
wait_path(struct client *c, const char *s)
{
	want = s;
	return run_until(cond_path, c, 500);
}

static int
wait_sent(struct client *c, const char *s)
{
	want = s;
	return run_until(cond_sent, c, 500);
}

static const struct session_start *open_start;	/* the next client's */
static const uint8_t	*open_session;	/* its cookie id */

static SSL_CTX	*tls_server, *tls_client;

/* TLS contexts: the server's with a throwaway self-signed P-256 cert. */
static void
tls_init(void)
{
	EVP_PKEY	*key = EVP_EC_gen("P-256");
	X509		*x = X509_new();

	tls_server = SSL_CTX_new(TLS_server_method());
	tls_client = SSL_CTX_new(TLS_client_method());
	if (key == NULL || x == NULL || tls_server == NULL ||
	    tls_client == NULL)
		abort();
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_pubkey(x, key);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN",
	    MBSTRING_ASC, (const unsigned char *)"test", -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(x));
	if (X509_sign(x, key, EVP_sha256()) == 0 ||
	    SSL_CTX_use_certificate(tls_server, x) != 1 ||
	    SSL_CTX_use_PrivateKey(tls_server, key) != 1)
		abort();
	X509_free(x);
	EVP_PKEY_free(key);
}

/*
 * The socket's bufferevent: plain, or (tls) over TLS with the handshake
 * done here, both ends non-blocking, as web.c hands it over after its
 * own.  sndbuf: a small send buffer, so that records go out in part (the
 * peer's SO_RCVBUF would change nothing: unix(7) says it has no effect
 * on unix domain sockets).
 */
static struct bufferevent *
client_socket(struct client *c, int sv[2], int tls, int sndbuf)
{
	struct bufferevent	*bev;
	SSL			*ssl;
	int			 i, a = 0, b = 0;

	evutil_make_socket_nonblocking(sv[0]);
	if (sndbuf > 0 && setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf,
	    sizeof sndbuf) == -1)
		abort();
	if (!tls)
		return bufferevent_socket_new(base, sv[0],
		    BEV_OPT_CLOSE_ON_FREE);
	evutil_make_socket_nonblocking(sv[1]);
	ssl = SSL_new(tls_server);
	c->ssl = SSL_new(tls_client);
	SSL_set_fd(ssl, sv[0]);
	SSL_set_fd(c->ssl, sv[1]);
	SSL_set_accept_state(ssl);
	SSL_set_connect_state(c->ssl);
	for (i = 0; i < 1000 && (a != 1 || b != 1); i++) {
		if (b != 1)
			b = SSL_do_handshake(c->ssl);
		if (a != 1)
			a = SSL_do_handshake(ssl);
	}
	if (a != 1 || b != 1)
		abort();
	if ((bev = bufferevent_openssl_socket_new(base, sv[0], ssl,
	    BUFFEREVENT_SSL_OPEN, BEV_OPT_CLOSE_ON_FREE)) == NULL)
		abort();
	return bev;
}

/* A connection, upgraded, as web.c hands it over. */
static void
client_open_tls(struct client *c, int mode, int tls, int sndbuf)
{
	struct bufferevent	*bev;
	struct wsock_open	 o = { .addr = "192.0.2.1",
	    .peer = "192.0.2.1:4242", .listener = "test", .guest = &g,
	    .subject = "test" };
	int			 sv[2];

	memset(c, 0, sizeof *c);
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1)
		abort();
	c->fd = sv[1];
	c->mode = mode;
	c->raw = evbuffer_new();
	c->msg = evbuffer_new();
	c->bytes = evbuffer_new();
	ws_reader_init_client(&c->rd, 0);
	if ((bev = client_socket(c, sv, tls, sndbuf)) == NULL)
		abort();
	path[0] = '\0';
	o.mode = mode;
	o.start = open_start;
	if (open_session != NULL) {
		o.session_id = open_session;
		o.session_exp = time(NULL) + 3600;
	}
	wsock_start(base, bev, &o);
	/* The console's open comes back from the loop. */
	run_for(c, 10);
}

static void
client_open(struct client *c, int mode)
{
	client_open_tls(c, mode, 0, 0);
}

static void
client_free(struct client *c)
{
	SSL_free(c->ssl);
	close(c->fd);
	evbuffer_free(c->raw);
	evbuffer_free(c->msg);
	evbuffer_free(c->bytes);
}

static void
client_raw(struct client *c, const void *p, size_t len)
{
	int	i, r;

	if (c->ssl == NULL) {
		if (write(c->fd, p, len) != (ssize_t)len)
			abort();
		return;
	}
	/* Small frames: the socket takes them, given the loop's turns. */
	for (i = 0; i < 1000; i++) {
		ERR_clear_error();
		if ((r = SSL_write(c->ssl, p, (int)len)) == (int)len)
			return;
		if (SSL_get_error(c->ssl, r) != SSL_ERROR_WANT_WRITE)
			abort();
		event_base_loop(base, EVLOOP_NONBLOCK);
	}
	abort();
}

/* A client frame: masked (RFC 6455 5.3). */
static void
client_frame(struct client *c, int opcode, int fin, const void *payload,
    size_t len)
{
	static const uint8_t	 mask[4] = { 0x37, 0xfa, 0x21, 0x3d };
	const uint8_t		*p = payload;
	uint8_t			*buf;
	size_t			 n = 0, i;

	buf = xmalloc(14 + len);
	buf[n++] = (uint8_t)((fin ? 0x80 : 0) | opcode);
	if (len < 126)
		buf[n++] = (uint8_t)(0x80 | len);
	else {
		buf[n++] = 0x80 | 126;
		buf[n++] = (uint8_t)(len >> 8);
		buf[n++] = (uint8_t)len;
	}
	memcpy(buf + n, mask, 4);
	n += 4;
	for (i = 0; i < len; i++)
		buf[n + i] = p[i] ^ mask[i & 3];
	client_raw(c, buf, n + len);
	free(buf);
}

static void
client_text(struct client *c, int opcode, const char *s)
{
	client_frame(c, opcode, 1, s, strlen(s));
}

static void
client_close(struct client *c, uint16_t code, const char *reason)
{
	uint8_t	payload[WS_CONTROL_MAX];

	client_frame(c, WS_OP_CLOSE, 1, payload, ws_close_payload(payload,
	    code, reason));
}

/*
 * Input left in the pair: the console takes nothing (the session holds
 * max_buffer, stops reading its end), so what the client sends next stays
 * on our side of the pair.
 */
static struct fake_stream *
hold_input(struct client *c, const char *tail)
{
	struct fake_stream	*f = fake_last;
	char			 fill[8000];

	f->full = 1;
	memset(fill, 'a', sizeof fill);
	client_frame(c, WS_OP_BINARY, 1, fill, sizeof fill);
	run_for(c, 20);
	client_text(c, WS_OP_BINARY, tail);
	run_for(c, 20);
	return f;
}

static void
test_binary(void)
{
	struct client	c;
	int		r;

	client_open(&c, WSOCK_RAW);
	ok(fake_last != NULL && strcmp(path, "OPEN") == 0 &&
	    wsock_count() == 1, "binary: the session attaches (%s)", path);
	fake_stream_print(fake_last, "login: ");
	ok(wait_data(&c, "login: ") && c.binary == 1 && c.text == 0,
	    "binary: guest output comes in a binary frame");
	client_text(&c, WS_OP_BINARY, "root\r");
	ok(wait_sent(&c, "root\r"), "binary: a binary frame reaches the guest");
	client_text(&c, WS_OP_TEXT, "ls\r");
	ok(wait_sent(&c, "ls\r"), "binary: a text frame reaches it as is");
	client_text(&c, WS_OP_PONG, "unasked");
	client_text(&c, WS_OP_PING, "p1");
	r = run_until(cond_pong, &c, 500);
	ok(r && c.pongs == 1 &&
	    strcmp(c.pong, "p1") == 0 && c.closes == 0,
	    "binary: a ping is answered with its pong ('%s'), an unasked "
	    "pong ignored", c.pong);
	client_close(&c, 1000, "bye");
	r = run_until(cond_freed, &c, 500);
	ok(r && c.closes == 1 &&
	    c.code == 1000 && c.reason[0] == '\0' && c.after_close == 0,
	    "binary: the client's close is answered (%u '%s'), the "
	    "connection dropped", c.code, c.reason);
	is_str(path, "OPEN CLOSED_PENDING CLOSED ENDED_CLOSED",
	    "binary: its path");
	ok(c.broken == 0 && strstr(c.data, "[virtconsoled]") == NULL,
	    "binary: no notice when the client closed");
	client_free(&c);
}

static void
test_base64(void)
{
	struct client	c;
	int		r;

	client_open(&c, WSOCK_BASE64);
	fake_stream_print(fake_last, "hello base64");
	ok(wait_data(&c, "hello base64") && c.text == 1 && c.binary == 0,
	    "base64: guest output comes base64 in a text frame");
	client_text(&c, WS_OP_TEXT, "ZWNobyBoaQ0=");
	ok(wait_sent(&c, "echo hi\r"), "base64: a message is decoded");
	client_frame(&c, WS_OP_TEXT, 0, "ZWNoby", 6);
	client_frame(&c, WS_OP_CONT, 1, "Bvaw0=", 6);
	ok(wait_sent(&c, "echo ok\r"),
	    "base64: a message in two fragments is decoded whole");
	client_text(&c, WS_OP_TEXT, "!!!!");
	r = run_until(cond_close, &c, 500);
	ok(r && c.code == 1007 &&
	    strcmp(c.reason, "invalid base64") == 0,
	    "base64: bad base64 is closed with 1007 (%u '%s')", c.code,
	    c.reason);
	run_for(&c, 10);
	ok(wsock_count() == 1 && !c.eof && c.closes == 1 &&
	    strcmp(path, "OPEN CLOSE_SENT_PENDING CLOSE_SENT ENDED") == 0,
	    "base64: the session let go, no second close; the connection "
	    "waits for the answer (%s)", path);
	client_close(&c, 1000, "");
	ok(run_until(cond_freed, &c, 500),
	    "base64: the answer comes, the connection is dropped at once");
	is_str(path, "OPEN CLOSE_SENT_PENDING CLOSE_SENT ENDED ENDED_CLOSED",
	    "base64: its path");
	ok(c.broken == 0 && strstr(c.data, "[virtconsoled]") == NULL &&
	    c.after_close == 0, "base64: no notice after our close");
	client_free(&c);
}

/* The session ends first: its last output, the notice, the close. */
/*
 * Guest output in packets of every size from 1 byte to all of it, in
 * binary and base64 frames: what libvirt holds when the stream says
 * readable is read in one go (up to the console's budget of 4 reads) and
 * sent as one frame; more packets than that take at most a frame per 4
 * (output that waits for the socket merges further).  Whatever the
 * split, the client decodes the same bytes.
 */
static void
test_coalescing(void)
{
	static const char	 msg[] = "0123456789abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKL\r\n";
	const size_t		 len = sizeof msg - 1;
	struct client		 c;
	size_t			 p, frames, expect, bad_bytes = 0, bad_frames = 0;
	size_t			 bad_chunks = 0;
	uint64_t		 chunks;
	const struct lat_hist	*timed = session_forward_hist(SESSION_DOOR_WS,
				    SESSION_TO_CLIENT);
	int			 m, modes[] = { WSOCK_RAW, WSOCK_BASE64 };

	for (m = 0; m < 2; m++) {
		client_open(&c, modes[m]);
		for (p = 1; p <= len; p++) {
			c.len = 0;
			c.data[0] = '\0';
			frames = (size_t)(c.binary + c.text);
			chunks = timed->count;
			fake_last->packet = p;
			fake_stream_print(fake_last, msg);
			if (!wait_data(&c, msg) || c.len != len) {
				bad_bytes++;
				continue;
			}
			frames = (size_t)(c.binary + c.text) - frames;
			/*
			 * One frame when one stream event's 4 reads take it
			 * all; never more frames than events.
			 */
			expect = ((len + p - 1) / p + 3) / 4;
			/* One chunk per stream event, timed to the socket. */
			if (timed->count - chunks != expect) {
				bad_chunks++;
				printf("# packets of %zu bytes: %llu chunks, "
				    "want %zu\n", p, (unsigned long long)
				    (timed->count - chunks), expect);
			}
			if (expect == 1 ? frames != 1 : frames < 1 ||
			    frames > expect) {
				bad_frames++;
				printf("# packets of %zu bytes: %zu frames, "
				    "want %s%zu\n", p, frames, expect == 1 ?
				    "" : "1 to ", expect);
			}
		}
		fake_last->packet = 0;
		is_int(bad_bytes, 0, "coalescing %s: packets of 1..%zu bytes "
		    "all decode to the guest's %zu bytes", m == 0 ? "binary" :
		    "base64", len, len);
		is_int(bad_chunks, 0, "coalescing %s: each stream event's "
		    "reads (up to 4 packets) make one chunk, timed once",
		    m == 0 ? "binary" : "base64");
		is_int(bad_frames, 0, "coalescing %s: up to 4 packets go in "
		    "one frame, more in at most one frame per 4",
		    m == 0 ? "binary" : "base64");
		client_close(&c, 1000, "bye");
		(void)run_until(cond_freed, &c, 500);
		client_free(&c);
	}
}

/*
 * Over TLS (wss), guest output with nothing queued goes out at once: one
 * SSL_write() of the frame gathered on the stack, not the queue (which
 * libevent writes only on the socket's next write event).  When the
 * socket takes only part of a record, the record is queued whole and
 * libevent's next SSL_write() finishes it: the client decodes every byte,
 * in order, and each chunk is timed once (wsock_writev_now()).
 */
static void
test_tls(void)
{
	static char		 big[12 * 4000 + 1];
	const size_t		 len = sizeof big - 1;
	const struct lat_hist	*timed = session_forward_hist(
				    SESSION_DOOR_WSS, SESSION_TO_CLIENT);
	struct client		 c;
	unsigned long		 now, requeued;
	uint64_t		 chunks;
	size_t			 i;
	int			 m, r, modes[] = { WSOCK_RAW, WSOCK_BASE64 };

	for (m = 0; m < 2; m++) {
		client_open_tls(&c, modes[m], 1, 0);
		ok(fake_last != NULL && strcmp(path, "OPEN") == 0,
		    "tls %s: the session attaches (%s)", m == 0 ? "binary" :
		    "base64", path);
		now = wsock_test_tls_now;
		requeued = wsock_test_tls_requeued;
		chunks = timed->count;
		fake_stream_print(fake_last, "login: ");
		r = wait_data(&c, "login: ");
		ok(r && c.binary + c.text == 1 && wsock_test_tls_now ==
		    now + 1 && wsock_test_tls_requeued == requeued &&
		    timed->count == chunks + 1, "tls %s: a chunk with nothing "
		    "queued goes out in one SSL_write() at once (%lu), timed "
		    "once as wss (%llu)", m == 0 ? "binary" : "base64",
		    wsock_test_tls_now - now,
		    (unsigned long long)(timed->count - chunks));
		if (m == 0)
			client_text(&c, WS_OP_BINARY, "tls-bin\r");
		else
			client_text(&c, WS_OP_TEXT, "dGxzLWI2NA0=");
		ok(wait_sent(&c, m == 0 ? "tls-bin\r" : "tls-b64\r") &&
		    c.closes == 0, "tls %s: the client's frame reaches the "
		    "guest", m == 0 ? "binary" : "base64");
		client_close(&c, 1000, "bye");
		ok(run_until(cond_freed, &c, 500) && c.closes == 1 &&
		    c.broken == 0, "tls %s: closed cleanly",
		    m == 0 ? "binary" : "base64");
		client_free(&c);
	}

	/* Not periodic, so that a lost or repeated piece shows. */
	for (i = 0; i < len; i++)
		big[i] = "abcdefghijklmnopqrstuvwxyz0123456789"
		    [((i * 2654435761u) >> 13) % 36];
	client_open_tls(&c, WSOCK_RAW, 1, 4096);
	now = wsock_test_tls_now;
	requeued = wsock_test_tls_requeued;
	chunks = timed->count;
	/* 4 reads an event: 4000 a chunk, under this test's max_buffer. */
	fake_last->packet = 1000;
	fake_stream_print(fake_last, big);
	run_for(NULL, 50);		/* the client reads nothing yet */
	want_bytes = len;
	r = run_until(cond_bytes, &c, 3000);
	ok(r && evbuffer_get_length(c.bytes) == len &&
	    memcmp(evbuffer_pullup(c.bytes, -1), big, len) == 0 &&
	    c.broken == 0, "tls: %zu bytes through a small socket buffer "
	    "arrive whole and in order (%zu)", len,
	    evbuffer_get_length(c.bytes));
	ok(wsock_test_tls_now > now && wsock_test_tls_requeued > requeued,
	    "tls: a record the socket took in part is queued whole and "
	    "finished by libevent (%lu at once, %lu of them requeued)",
	    wsock_test_tls_now - now, wsock_test_tls_requeued - requeued);
	ok(timed->count - chunks >= wsock_test_tls_now - now &&
	    timed->count - chunks <= 12, "tls: of its 12 chunks, each written "
	    "at once is timed, none twice (past LAT_STAMPS queued, the "
	    "newest share a stamp): %llu",
	    (unsigned long long)(timed->count - chunks));
	fake_last->packet = 0;
	client_close(&c, 1000, "bye");
	(void)run_until(cond_freed, &c, 500);
	client_free(&c);
}

static void
test_session_ends(void)
{
	struct client	c;
	int		r;

	client_open(&c, WSOCK_RAW);
	fake_stream_print(fake_last, "bye\r\n");
	fake_stream_end(fake_last);
	r = run_until(cond_close, &c, 500);
	ok(r && c.code == 4001 &&
	    strcmp(c.reason, "guest stopped") == 0,
	    "ends: the guest stopped: close 4001 '%s'", c.reason);
	ok(strstr(c.data, "bye\r\n\r\n[virtconsoled] disconnected: guest "
	    "stopped\r\n") != NULL && c.after_close == 0,
	    "ends: the guest's last output, then the notice, before it");
	is_str(path, "OPEN ENDED", "ends: its path so far");
	client_close(&c, 4001, "");
	r = run_until(cond_freed, &c, 500);
	ok(r && strcmp(path, "OPEN ENDED ENDED_CLOSED") == 0,
	    "ends: the client answers, the connection is dropped (%s)",
	    path);
	client_free(&c);

	/* Refused: the door is called before session_open() returns. */
	fake_open_result = STREAM_BUSY;
	client_open(&c, WSOCK_RAW);
	fake_open_result = STREAM_OPENED;
	is_str(path, "OPEN ENDED", "refused: its path");
	r = run_until(cond_close, &c, 500);
	ok(r && c.code == 4100 && strcmp(c.reason, "console busy") == 0 &&
	    strstr(c.data, "[virtconsoled] refused: console busy") != NULL,
	    "refused: the notice, then close 4100 '%s'", c.reason);
	shutdown(c.fd, SHUT_WR);
	ok(run_until(cond_freed, &c, 500) && strcmp(path, "OPEN ENDED") == 0,
	    "refused: the client leaves without an answer, dropped");
	client_free(&c);
}

/* No answer to our close: dropped after the linger. */
static void
test_linger(void)
{
	struct client	c;
	struct timespec	t0, t1;
	double		el;
	int		r;

	wsock_test_linger(150);
	client_open(&c, WSOCK_RAW);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	r = session_kick_guest(NULL, "fake", NULL, REASON_KICKED, 0) == 1 &&
	    run_until(cond_close, &c, 500);
	ok(r && c.code == 1008 &&
	    strstr(c.data, "disconnected: kicked by administrator") != NULL,
	    "linger: kicked: the notice, close 1008 '%s'", c.reason);
	run_for(&c, 50);
	ok(wsock_count() == 1 && !c.eof,
	    "linger: the connection waits for an answer");
	ok(run_until(cond_freed, &c, 1000),
	    "linger: none comes: the connection is dropped");
	clock_gettime(CLOCK_MONOTONIC, &t1);
	el = (double)(t1.tv_sec - t0.tv_sec) +
	    (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	ok(el >= 0.14 && el < 0.6 && strcmp(path, "OPEN ENDED") == 0,
	    "linger: after %.3f s (150 ms set) (%s)", el, path);
	client_free(&c);
	wsock_test_linger(LINGER_MS);
}

/* The client leaves with input in the pair: it still reaches the guest. */
static void
test_gone_pending(void)
{
	struct client		 c;
	struct fake_stream	*f;
	int			 r;

	client_open(&c, WSOCK_RAW);
	f = hold_input(&c, "tail-marker\r");
	shutdown(c.fd, SHUT_WR);
	r = wait_path(&c, "GONE_PENDING");
	ok(r && strcmp(path, "OPEN GONE_PENDING") == 0,
	    "gone: the client left, its input still in the pair (%s)", path);
	run_for(&c, 20);
	ok(strcmp(path, "OPEN GONE_PENDING") == 0 &&
	    !sent_has("tail-marker") && c.closes == 0,
	    "gone: the session is not told while the console takes nothing");
	f->full = 0;
	ok(wait_sent(&c, "tail-marker\r"),
	    "gone: once the console takes input, the last of it arrives");
	r = run_until(cond_freed, &c, 500);
	ok(r && c.closes == 1 &&
	    c.code == 1000 && strcmp(c.reason, "client closed") == 0 &&
	    strstr(c.data, "[virtconsoled]") == NULL,
	    "gone: then the session ends: close 1000 '%s', no notice",
	    c.reason);
	is_str(path, "OPEN GONE_PENDING GONE ENDED", "gone: its path");
	client_free(&c);

	/* Nothing in the pair: told at once. */
	client_open(&c, WSOCK_RAW);
	close(c.fd);
	c.fd = -1;
	r = run_until(cond_freed, NULL, 500);
	ok(r && strcmp(path, "OPEN GONE_PENDING GONE ENDED") == 0,
	    "gone: a client that just leaves is dropped (%s)", path);
	evbuffer_free(c.raw);
	evbuffer_free(c.msg);
	evbuffer_free(c.bytes);
}

/* The session ends (kicked) while the client's input waits in the pair. */
static void
test_gone_pending_ends(void)
{
	struct client	c;

	client_open(&c, WSOCK_RAW);
	(void)hold_input(&c, "lost-marker\r");
	shutdown(c.fd, SHUT_WR);
	ok(wait_path(&c, "GONE_PENDING"), "gone, kicked: input in the pair");
	ok(session_kick_guest(NULL, "fake", NULL, REASON_KICKED, 0) == 1 &&
	    run_until(cond_freed, &c, 500) && c.code == 1008 &&
	    strstr(c.data, "disconnected: kicked by administrator") != NULL,
	    "gone, kicked: a client that still reads gets the notice and "
	    "close 1008");
	is_str(path, "OPEN GONE_PENDING ENDED", "gone, kicked: its path");
	ok(!sent_has("lost-marker"),
	    "gone, kicked: its input is not the guest's (not drained)");
	client_free(&c);
}

/* A protocol error with input in the pair; the client answers our close. */
static void
test_close_sent_pending(void)
{
	static const uint8_t	 rsv[] = { 0xc2, 0x80, 1, 2, 3, 4 };
	struct client		 c;
	struct fake_stream	*f;
	int			 r;

	client_open(&c, WSOCK_RAW);
	f = hold_input(&c, "kept-marker\r");
	client_raw(&c, rsv, sizeof rsv);
	r = run_until(cond_close, &c, 500);
	ok(r && c.code == 1002 &&
	    strcmp(c.reason, "reserved bits set") == 0 &&
	    strcmp(path, "OPEN CLOSE_SENT_PENDING") == 0,
	    "error: close 1002 '%s' (%s)", c.reason, path);
	client_close(&c, 1002, "");
	r = wait_path(&c, "CLOSED_PENDING");
	ok(r && strcmp(path, "OPEN CLOSE_SENT_PENDING CLOSED_PENDING") == 0,
	    "error: the client answers while its input waits (%s)", path);
	f->full = 0;
	ok(wait_sent(&c, "kept-marker\r") && run_until(cond_freed, &c, 500),
	    "error: its input reaches the guest, then it is dropped");
	is_str(path, "OPEN CLOSE_SENT_PENDING CLOSED_PENDING CLOSED "
	    "ENDED_CLOSED", "error: its path");
	ok(c.closes == 1 && strstr(c.data, "[virtconsoled]") == NULL,
	    "error: one close frame, no notice");
	client_free(&c);
}

/* A protocol error with input in the pair; the session ends first. */
static void
test_close_sent_pending_ends(void)
{
	/* A ping with 126 bytes: over the control frame limit. */
	static const uint8_t	 big[] = { 0x89, 0x80 | 126, 0, 126 };
	struct client		 c;
	int			 r;

	client_open(&c, WSOCK_RAW);
	(void)hold_input(&c, "x\r");
	client_raw(&c, big, sizeof big);
	r = run_until(cond_close, &c, 500);
	ok(r && c.code == 1002 &&
	    strcmp(path, "OPEN CLOSE_SENT_PENDING") == 0,
	    "error, kicked: close 1002 '%s'", c.reason);
	ok(session_kick_guest(NULL, "fake", NULL, REASON_KICKED, 0) == 1 &&
	    wait_path(&c, "ENDED"), "error, kicked: the session lets go");
	run_for(&c, 10);
	ok(c.closes == 1 && strstr(c.data, "[virtconsoled]") == NULL &&
	    wsock_count() == 1, "error, kicked: no notice, no second close");
	client_close(&c, 1002, "");
	ok(run_until(cond_freed, &c, 500), "error, kicked: the answer comes, "
	    "dropped");
	is_str(path, "OPEN CLOSE_SENT_PENDING ENDED ENDED_CLOSED",
	    "error, kicked: its path");
	client_free(&c);
}

/* The client closes with input in the pair; the session ends first. */
static void
test_closed_pending_ends(void)
{
	struct client	c;
	int		r;

	client_open(&c, WSOCK_RAW);
	(void)hold_input(&c, "y\r");
	client_close(&c, 1001, "going away");
	r = run_until(cond_close, &c, 500);
	ok(r && c.code == 1001 &&
	    strcmp(path, "OPEN CLOSED_PENDING") == 0,
	    "closed, kicked: the close is answered with its code (%u)",
	    c.code);
	ok(session_kick_guest(NULL, "fake", NULL, REASON_KICKED, 0) == 1 &&
	    run_until(cond_freed, &c, 500),
	    "closed, kicked: the session lets go, the connection is dropped");
	is_str(path, "OPEN CLOSED_PENDING ENDED_CLOSED",
	    "closed, kicked: its path");
	ok(c.closes == 1 && strstr(c.data, "[virtconsoled]") == NULL,
	    "closed, kicked: one close frame, no notice");
	client_free(&c);
}

/* A message's field, as its text: "x" of "key":"x" or "key":x. */
static int
msg_field(const char *msg, const char *key, char *out, size_t outlen)
{
	char		 pat[64];
	const char	*p;
	size_t		 n;

	snprintf(pat, sizeof pat, "\"%s\":", key);
	if ((p = strstr(msg, pat)) == NULL)
		return -1;
	p += strlen(pat);
	if (*p == '"')
		p++;
	n = strcspn(p, "\",}");
	if (n >= outlen)
		return -1;
	memcpy(out, p, n);
	out[n] = '\0';
	return 0;
}

/* virtconsole.v1: hello first, bytes, messages in order, end, 1007. */
static void
test_v1(void)
{
	struct client		 c, d;
	struct session_start	 st;
	char			 run[32], resume[64], off[32], wanted[256];
	const char		*hello;
	unsigned long long	 base_off;
	int			 r, opens;

	configure("uri = test:///default\nmax_buffer = 4096\n"
	    "history = 64K\nhistory_head = 0\n");
	client_open(&c, WSOCK_V1);
	fake_stream_print(fake_last, "one\r\ntwo\r\n");
	ok(wait_data(&c, "two\r\n"), "v1: guest output comes");
	hello = c.data;
	if (msg_field(hello, "run", run, sizeof run) == -1 ||
	    msg_field(hello, "resume", resume, sizeof resume) == -1 ||
	    msg_field(hello, "offset", off, sizeof off) == -1)
		run[0] = resume[0] = off[0] = '\0';
	base_off = strtoull(off, NULL, 10);
	ok(strncmp(hello, "{\"type\":\"hello\",\"guest\":\"fake\",\"uuid\":"
	    "\"6e3b8a2c-0000-4000-8000-000000000002\",\"hypervisor\":"
	    "\"default\",\"console\":\"serial0\",\"role\":\"writer\","
	    "\"run\":\"", strlen("{\"type\":\"hello\",\"guest\":\"fake\","
	    "\"uuid\":\"6e3b8a2c-0000-4000-8000-000000000002\","
	    "\"hypervisor\":\"default\",\"console\":\"serial0\","
	    "\"role\":\"writer\",\"run\":\"")) == 0 && strlen(run) >= 1 &&
	    strlen(run) <= 16 &&
	    strlen(resume) == 32 && off[0] != '\0',
	    "v1: hello comes first, with the run (%s), the offset (%s) and a "
	    "resume id: %.*s", run, off, (int)strcspn(hello, "}") + 1, hello);
	ok(strstr(c.data, "}{\"type\":\"clients\",\"writer\":true,"
	    "\"viewers\":0}one\r\ntwo\r\n") != NULL && c.binary == 1 &&
	    evbuffer_get_length(c.bytes) == 10,
	    "v1: then clients, then the bytes alone in binary frames");
	client_text(&c, WS_OP_BINARY, "ls\r");
	ok(wait_sent(&c, "ls\r"), "v1: a binary frame reaches the guest");
	client_text(&c, WS_OP_TEXT, " {\"type\":\"resize\",\"cols\":80,"
	    "\"rows\":24,\"x\":[1,2.5e3,{\"y\":null}]} ");
	client_text(&c, WS_OP_TEXT, "{\"type\":\"nonesuch\"}");
	run_for(&c, 20);
	ok(c.closes == 0 && !sent_has("resize") && !sent_has("nonesuch"),
	    "v1: JSON objects (resize, an unknown type) are taken, never "
	    "sent to the guest");

	/* A second client with the first one's resume id replaces it. */
	memset(&st, 0, sizeof st);
	st.from = SESSION_FROM_LIVE;
	st.resume = resume;
	open_start = &st;
	opens = fake_opened;
	client_open(&d, WSOCK_V1);
	open_start = NULL;
	ok(fake_opened == opens, "v1: the resumed session takes the open "
	    "console over: not closed and reopened (%d opens)",
	    fake_opened - opens);
	r = run_until(cond_close, &c, 500);
	ok(r && c.code == 4004 && strstr(c.data, "{\"type\":\"end\","
	    "\"kind\":\"disconnected\",\"reason\":\"taken over by a new "
	    "client\",\"code\":4004}") != NULL &&
	    strstr(c.data, "[virtconsoled]") == NULL,
	    "v1: resume= replaces the stale session under policy = refuse: "
	    "end, then close %u, no notice bytes", c.code);
	snprintf(wanted, sizeof wanted, "\"offset\":%llu,", base_off + 10);
	ok(strstr(d.data, "{\"type\":\"hello\"") == d.data &&
	    strstr(d.data, wanted) != NULL &&
	    strstr(d.data, resume) == NULL,
	    "v1: the new session says hello at offset +10, with a new "
	    "resume id");
	client_close(&c, 1000, "");
	run_until(cond_freed, &c, 100);
	client_free(&c);

	/* A client that does not read falls behind, loses nothing. */
	{
		char	*big = xmalloc(40001), line[16];
		size_t	 i;

		for (i = 0; i < 4000; i++) {
			snprintf(line, sizeof line, "%09zu\n", i);
			memcpy(big + i * 10, line, 10);
		}
		big[40000] = '\0';
		fake_stream_print(fake_last, big);
		/* The loop alone: the client reads nothing. */
		run_for(NULL, 50);
		fake_stream_print(fake_last, "after\r\n");
		run_for(NULL, 20);
		want_bytes = 40007;
		r = run_until(cond_bytes, &d, 2000);
		ok(r && evbuffer_get_length(d.bytes) == 40007 &&
		    memcmp(evbuffer_pullup(d.bytes, -1), big, 40000) == 0 &&
		    memcmp(evbuffer_pullup(d.bytes, -1) + 40000, "after\r\n",
		    7) == 0 && strstr(d.data, "\"type\":\"gap\"") == NULL,
		    "v1: 40 KB past max_buffer (4 KB) while the client did "
		    "not read: every byte comes, in order, no gap (%zu)",
		    evbuffer_get_length(d.bytes));
		free(big);
	}
	client_close(&d, 1000, "");
	run_until(cond_freed, &d, 100);
	client_free(&d);

	/* tail=: the last bytes from a line start, the reopen's loss. */
	memset(&st, 0, sizeof st);
	st.from = SESSION_FROM_TAIL;
	st.bytes = 12;
	open_start = &st;
	client_open(&c, WSOCK_V1);
	open_start = NULL;
	snprintf(wanted, sizeof wanted, "}after\r\n{\"type\":\"gap\","
	    "\"from\":%llu,\"to\":%llu,\"unknown\":true}",
	    base_off + 40017, base_off + 40017);
	snprintf(off, sizeof off, "\"offset\":%llu,", base_off + 40010);
	ok(wait_data(&c, "\"unknown\":true}") &&
	    strstr(c.data, off) != NULL && strstr(c.data, wanted) != NULL,
	    "v1: tail=12 starts at the last line start in the window "
	    "(+40010), then the loss at the reopen: %s",
	    strstr(c.data, "}") + 1);
	client_close(&c, 1000, "");
	run_until(cond_freed, &c, 100);
	client_free(&c);

	/* from=RUN:OFFSET: from there; an unknown run: a loss, then all. */
	memset(&st, 0, sizeof st);
	st.from = SESSION_FROM_POS;
	st.run = strtoull(run, NULL, 16);
	st.offset = base_off + 3;
	open_start = &st;
	client_open(&c, WSOCK_V1);
	snprintf(off, sizeof off, "\"offset\":%llu,", base_off + 3);
	want_bytes = 40014;
	ok(run_until(cond_bytes, &c, 2000) && evbuffer_get_length(c.bytes) ==
	    40014 && strstr(c.data, off) != NULL && strncmp((const char *)evbuffer_pullup(c.bytes, -1),
	    "\r\ntwo\r\n000000000\n", 17) == 0,
	    "v1: from=RUN:3 gets the bytes from offset 3");
	client_close(&c, 1000, "");
	run_until(cond_freed, &c, 100);
	client_free(&c);
	st.run ^= 1;
	client_open(&c, WSOCK_V1);
	snprintf(wanted, sizeof wanted, "\"offset\":0,");
	ok(wait_data(&c, "one\r\n") && strstr(c.data, wanted) != NULL &&
	    strstr(c.data, "{\"type\":\"gap\",\"from\":0,\"to\":0,"
	    "\"unknown\":true}") != NULL && strstr(strstr(c.data,
	    "\"unknown\":true}") + 1, "\"from\":0,") == NULL,
	    "v1: from= a run not kept: hello at the current run's offset 0, "
	    "an unknown gap, the run's bytes: %.900s", c.data + 200);
	client_close(&c, 1000, "");
	run_until(cond_freed, &c, 100);
	client_free(&c);
	/* Without the history claim: a position is a loss, then live. */
	st.no_history = 1;
	client_open(&c, WSOCK_V1);
	open_start = NULL;
	fake_stream_print(fake_last, "live\r\n");
	snprintf(off, sizeof off, "\"offset\":%llu,", base_off + 40017);
	ok(wait_data(&c, "live\r\n") && strstr(c.data, off) != NULL && strstr(c.data, "after") == NULL &&
	    strstr(c.data, "\"unknown\":true}live\r\n") != NULL,
	    "v1: no history claim: from= gets an unknown gap, then live "
	    "output only");

	/* Not a JSON object: 1007. */
	client_text(&c, WS_OP_TEXT, "{\"type\":\"resize\",}");
	r = run_until(cond_close, &c, 500);
	ok(r && c.code == 1007 && strcmp(c.reason, "not a JSON object") == 0,
	    "v1: a text frame that is not a JSON object closes with 1007 "
	    "(%u '%s')", c.code, c.reason);
	client_close(&c, 1007, "");
	run_until(cond_freed, &c, 500);
	client_free(&c);

	/* Refused: end, no hello. */
	fake_open_result = STREAM_BUSY;
	client_open(&c, WSOCK_V1);
	fake_open_result = STREAM_OPENED;
	r = run_until(cond_close, &c, 500);
	ok(r && c.code == 4100 && strcmp(c.data, "{\"type\":\"end\","
	    "\"kind\":\"refused\",\"reason\":\"console busy\",\"code\":4100}")
	    == 0, "v1: refused: end alone, then close 4100: %s", c.data);
	shutdown(c.fd, SHUT_WR);
	run_until(cond_freed, &c, 500);
	client_free(&c);

	/* A binary client cannot be told a gap: past max_buffer it loses
	 * output, as before virtconsole.v1, and is never sent a message. */
	client_open(&c, WSOCK_RAW);
	{
		char	*big = xmalloc(40001);

		memset(big, 'x', 40000);
		big[40000] = '\0';
		fake_stream_print(fake_last, big);
		run_for(NULL, 50);
		fake_stream_print(fake_last, "tail\r\n");
		want = "tail\r\n";
		r = run_until(cond_data, &c, 2000);
		ok(r && evbuffer_get_length(c.bytes) < 40006 &&
		    strstr(c.data, "{\"type\"") == NULL,
		    "binary: 40 KB past max_buffer while the client did not "
		    "read: output is dropped (%zu of 40006 bytes came), no "
		    "message", evbuffer_get_length(c.bytes));
		free(big);
	}
	client_close(&c, 1000, "");
	run_until(cond_freed, &c, 100);
	client_free(&c);
	configure("uri = test:///default\nmax_buffer = 4096\n");
}

/* What wsock_credentials() reported: the first byte of each id. */
static char	credentials[16];

static void
credential_cb(const uint8_t *id, int64_t expires, void *arg)
{
	size_t	n = strlen(credentials);

	(void)expires;
	(void)arg;
	if (n < sizeof credentials - 1)
		credentials[n] = (char)id[0];
}

/*
 * `kick --revoke --viewers` revokes the cookies behind the viewers only:
 * each connection keeps the role it was opened with.
 */
static void
test_credentials(void)
{
	struct client		 c, d;
	struct session_start	 st;
	uint8_t			 wid[TOKEN_ID_LEN], vid[TOKEN_ID_LEN];

	memset(wid, 'W', sizeof wid);
	memset(vid, 'V', sizeof vid);
	open_session = wid;
	client_open(&c, WSOCK_V1);
	memset(&st, 0, sizeof st);
	st.role = SESSION_VIEWER;
	st.from = SESSION_FROM_LIVE;
	open_start = &st;
	open_session = vid;
	client_open(&d, WSOCK_V1);
	open_start = NULL;
	open_session = NULL;
	ok(wait_data(&c, "\"role\":\"writer\"") &&
	    wait_data(&d, "\"role\":\"viewer\""),
	    "credentials: a writer and a viewer with cookies are attached");

	memset(credentials, 0, sizeof credentials);
	wsock_credentials(NULL, "fake", NULL, 0, credential_cb, NULL);
	ok(strcmp(credentials, "WV") == 0,
	    "credentials: all clients: the writer's and the viewer's (%s)",
	    credentials);
	memset(credentials, 0, sizeof credentials);
	wsock_credentials(NULL, "fake", NULL, 1, credential_cb, NULL);
	ok(strcmp(credentials, "V") == 0,
	    "credentials: viewers only: the viewer's alone (%s)",
	    credentials);
	memset(credentials, 0, sizeof credentials);
	wsock_credentials(NULL, g.uuid, "serial0", 1, credential_cb, NULL);
	ok(strcmp(credentials, "V") == 0,
	    "credentials: by UUID and alias, viewers only (%s)",
	    credentials);
	memset(credentials, 0, sizeof credentials);
	wsock_credentials(NULL, "fake", "console1", 0, credential_cb, NULL);
	ok(credentials[0] == '\0',
	    "credentials: another console has none (%s)", credentials);

	client_close(&d, 1000, "");
	client_close(&c, 1000, "");
	run_until(cond_freed, &c, 500);
	client_free(&d);
	client_free(&c);
}

static void
coverage(void)
{
	unsigned int	 legal, taken, s, n = 0;
	char		*text = NULL, *line, *next;
	size_t		 len = 0;
	FILE		*fp;

	fsm_coverage(&wsock_fsm, &legal, &taken);
	printf("# wsock: %u/%u transitions taken\n", taken, legal);
	if ((fp = open_memstream(&text, &len)) != NULL) {
		fsm_untaken(&wsock_fsm, fp);
		fclose(fp);
		for (line = text; line != NULL && *line != '\0'; line = next) {
			if ((next = strchr(line, '\n')) != NULL)
				*next++ = '\0';
			printf("# %s\n", line);
		}
		free(text);
	}
	ok(legal > 0 && taken == legal,
	    "every legal transition of wsock_fsm was taken (%u/%u)", taken,
	    legal);
	for (s = 0; s < wsock_fsm.nstates; s++)
		n += checked[s] != 0;
	ok(n == wsock_fsm.nstates,
	    "the refused events of all %u states were checked (%u)",
	    wsock_fsm.nstates, n);
	ok(fsm_state_errors() == injected,
	    "no BUG but the %u injected (%llu)", injected,
	    fsm_state_errors());
}

int
main(void)
{
	struct timespec	t0, t1;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	signal(SIGPIPE, SIG_IGN);
	base = event_base_new();
	log_init(LOG_TARGET_STDERR, getenv("VCD_TEST_DEBUG") != NULL ?
	    LOG_LEVEL_DEBUG : LOG_LEVEL_ERROR, NULL);
	fake_stream_init(base);
	stream_ops = &fake_stream_ops;
	tls_init();
	memcpy(g.uuid, "6e3b8a2c-0000-4000-8000-000000000002",
	    sizeof g.uuid);
	g.name = "fake";
	g.active = 1;
	g.aliases = aliases;
	g.naliases = 2;
	/*
	 * With 4 KiB waiting for a console that takes nothing, the session
	 * stops reading its end of the pair (hold_input).
	 */
	configure("uri = test:///default\nmax_buffer = 4096\n");
	wsock_test_observer = observe;

	test_binary();
	test_base64();
	test_coalescing();
	test_session_ends();
	test_linger();
	test_gone_pending();
	test_gone_pending_ends();
	test_close_sent_pending();
	test_close_sent_pending_ends();
	test_closed_pending_ends();
	test_v1();
	test_credentials();
	test_tls();		/* last: its 48 KB pass v1's history window */
	coverage();

	wsock_test_observer = NULL;
	session_end_all(REASON_SHUTDOWN);
	wsock_shutdown();
	run_for(NULL, 5);
	event_base_free(base);
	SSL_CTX_free(tls_server);
	SSL_CTX_free(tls_client);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("# ran in %.2f s\n", (double)(t1.tv_sec - t0.tv_sec) +
	    (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	return tap_done();
}
