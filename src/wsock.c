/*
 * An upgraded WebSocket connection carrying one console session.
 *
 * The session layer speaks raw bytes on a bufferevent.  A WebSocket client's
 * session gets one end of a bufferevent pair; this file holds the other end
 * and the client's socket (or TLS) bufferevent, and translates: client
 * frames are decoded into raw bytes (answering pings, validating UTF-8 in
 * text frames, enforcing the message limit), guest output is framed as
 * binary frames (or base64 text frames for the `base64` subprotocol).
 * Output is taken from the pair only while the socket's queue is under
 * WSOCK_UNDER_HIGH, so a client that does not read leaves it in the
 * session's buffer, where the session's max_buffer rule sees it.  (A
 * libevent filter bufferevent would fit too, but 2.1's filters finalize
 * their underlying bufferevent late, which tripped refcount assertions.)
 *
 * When the session ends, it hands the bufferevent back through the door
 * (wsock_door_close): the notice goes out as terminal text and as the
 * close frame's reason, with one close code per reason (docs/WEB.md), and
 * the connection is dropped once the client answers the close or after
 * WSOCK_LINGER seconds.  Server pings every ping_interval keep proxies
 * from dropping idle consoles, and a client that answers nothing for two
 * intervals is dropped (half-open TCP).
 *
 * What is queued for one client is bounded, control frames included: the
 * socket's queue takes data frames while under WSOCK_UNDER_HIGH (so it
 * holds at most that plus one frame), and a pong is queued only under that
 * mark too; above it, the latest ping's pong waits in one slot (RFC 6455
 * lets a server answer only the latest ping), the client is no longer
 * read, and if the queue has not drained to half the mark (where reading
 * resumes) WSOCK_SLOW_SECS later, the session ends with "client too
 * slow".  So a client that sends pings and
 * never reads costs at most WSOCK_QUEUE_BOUND bytes, and its send() blocks.
 *
 * The connection's state is one enum changed only by wsock_step(), along
 * wsock_table (fsm.c logs each change and refuses, as a bug, one the table
 * does not hold).  While the session holds its end of the pair:
 *
 *   OPEN		frames flow both ways.
 *   GONE_PENDING	the client's connection ended (EOF or error) with
 *			what it sent still in the pair: the session is told
 *			(an EOF on its end, so that it ends and calls the
 *			door) once it has taken all of it, at once when the
 *			pair is empty ("taken").
 *   GONE		the client's connection ended, the session is told.
 *   CLOSE_SENT_PENDING	we sent a close frame (the client broke the protocol,
 *			sent bad base64 or stopped answering pings); the
 *			session is told as above.
 *   CLOSE_SENT		we sent a close frame, the session is told.
 *   CLOSED_PENDING	the close handshake is done: the client closed and
 *			we answered, or it answered our close (after a
 *			protocol error, any byte it sends counts); the
 *			session is told as above.
 *   CLOSED		the close handshake is done, the session is told.
 *
 * The client is not read once gone (nothing more comes), nor once the
 * session is told: the door comes next, and the client's next frame, an
 * answer to our close, is read after it.  The door (wsock_door_close) sends
 * what the session wrote last, the notice and our close frame, as far as
 * they are not out yet, and then:
 *
 *   ENDED		the session let go, our close frame is out: waiting
 *			for the client's answer, or WSOCK_LINGER.
 *   ENDED_CLOSED	the session let go, the close handshake is done:
 *			freed once our output is out.
 *
 * Callbacks that come late are ignored without a transition: the socket's
 * end after the client closed or broke the protocol, the client's second
 * close or bytes after an error, a ping timer after our close.
 */
#include <sys/uio.h>

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "virtconsoled.h"

#define WSOCK_FRAME_MAX		(64 * 1024)	/* payload per frame out */
#define WSOCK_UNDER_HIGH	(64 * 1024)	/* socket-side queue */
#define WSOCK_TLS_RECORD	16384		/* TLS plaintext per record */
#define WSOCK_NOW_B64		4096	/* base64 payload encoded on the stack */
#define WSOCK_LINGER		2	/* seconds for the close handshake */
#define WSOCK_MESSAGE_MAX	(1024 * 1024)	/* one client message */
#define WSOCK_SLOW_SECS		5	/* above the mark this long: too slow */
/* The most queued for one client: the mark, one frame, one pong. */
#define WSOCK_QUEUE_BOUND	(WSOCK_UNDER_HIGH + WSOCK_FRAME_MAX + \
				    WS_HEADER_MAX + 2 + 125)
#define WSOCK_MESSAGES_MAX	1024	/* v1 messages waiting for bytes */

/*
 * A virtconsole.v1 message from the session, waiting until the bytes the
 * session wrote before it (`at` of them) are framed.
 */
struct wsock_msg {
	uint64_t		 at;
	size_t			 len;
	TAILQ_ENTRY(wsock_msg)	 entry;
	char			 json[];
};
TAILQ_HEAD(wsock_msgs, wsock_msg);

struct wsock {
	struct bufferevent	*under;		/* socket or TLS */
	int			 plain;		/* under is a plain socket */
	struct evbuffer		*out;		/* frames written at once */
	struct bufferevent	*mine;		/* our end of the pair */
	struct bufferevent	*theirs;	/* the session's end */
	struct ws_reader	 rd;
	int			 mode;		/* WSOCK_RAW, _BASE64, _V1 */
	struct evbuffer		*b64;		/* a base64 or v1 text
						   message so far */
	struct wsock_msgs	 msgs;		/* v1: from the session */
	size_t			 nmsgs;
	uint64_t		 taken;		/* bytes framed from the pair */
	/*
	 * Residence to the client: the session's chunks by their end in the
	 * pair (`taken` counts), then, once framed, in the stream of bytes
	 * to the socket (gone: written, or taken by SSL_write()).
	 */
	struct lat_fifo		 lat_pair;
	struct lat_stream	 lat_wire;
	struct evbuffer_cb_entry *wire_cbe;
	uint64_t		 rx_at;		/* the client's last read */
	char			 addr[64];
	char			*peer;
	char			*listener;
	struct session		*session;
	int			 state;		/* enum wsock_state */
	unsigned int		 ping_interval;
	struct timespec		 last_rx;
	struct event		*ev_ping;
	struct event		*ev_expire;	/* browser session's end */
	struct event		*ev_done;	/* free, from the loop */
	struct event		*ev_slow;	/* queue above the mark too long */
	uint8_t			 pong[125];	/* the latest ping's, unsent */
	size_t			 pong_len;
	int			 pong_pending;
	char			 uuid[GUEST_UUID_LEN];
	char			 hv[CONFIG_HV_NAME_MAX + 1];	/* its name */
	char			*name;		/* the guest's, at start */
	char			*alias;		/* the console's */
	enum session_role	 role;		/* mode=view or not */
	int			 has_session;	/* opened with a cookie: */
	uint8_t			 session_id[TOKEN_ID_LEN];	/* its id */
	int64_t			 session_expires;
	TAILQ_ENTRY(wsock)	 entry;
};
TAILQ_HEAD(wsocks, wsock);

static struct wsocks	wsocks = TAILQ_HEAD_INITIALIZER(wsocks);

/* The states and events of the top comment. */
enum wsock_state {
	WSOCK_OPEN = 0,
	WSOCK_GONE_PENDING,
	WSOCK_GONE,
	WSOCK_CLOSE_SENT_PENDING,
	WSOCK_CLOSE_SENT,
	WSOCK_CLOSED_PENDING,
	WSOCK_CLOSED,
	WSOCK_ENDED,
	WSOCK_ENDED_CLOSED,
	WSOCK_NSTATES
};
enum wsock_event {
	WSOCK_EV_EOF = 0,	/* the client's connection ended */
	WSOCK_EV_CLOSE,		/* we close it: protocol, base64, pings */
	WSOCK_EV_CLOSE_RCVD,	/* its close frame (after an error: any) */
	WSOCK_EV_TAKEN,		/* the pair holds none of its input */
	WSOCK_EV_END,		/* the session let go: the door */
	WSOCK_NEVENTS
};

static const char *const wsock_state_names[WSOCK_NSTATES] = {
	[WSOCK_OPEN] = "OPEN",
	[WSOCK_GONE_PENDING] = "GONE_PENDING",
	[WSOCK_GONE] = "GONE",
	[WSOCK_CLOSE_SENT_PENDING] = "CLOSE_SENT_PENDING",
	[WSOCK_CLOSE_SENT] = "CLOSE_SENT",
	[WSOCK_CLOSED_PENDING] = "CLOSED_PENDING",
	[WSOCK_CLOSED] = "CLOSED",
	[WSOCK_ENDED] = "ENDED",
	[WSOCK_ENDED_CLOSED] = "ENDED_CLOSED",
};
static const char *const wsock_event_names[WSOCK_NEVENTS] = {
	[WSOCK_EV_EOF] = "eof",
	[WSOCK_EV_CLOSE] = "close",
	[WSOCK_EV_CLOSE_RCVD] = "close_rcvd",
	[WSOCK_EV_TAKEN] = "taken",
	[WSOCK_EV_END] = "end",
};

/*
 * The legal transitions; every other pair is a bug.  Nothing leaves the
 * told states (GONE, CLOSE_SENT, CLOSED) but the door, which the session
 * calls as it takes the EOF: the client is not read meanwhile.
 */
static const signed char wsock_table[WSOCK_NSTATES][WSOCK_NEVENTS] = {
	[WSOCK_OPEN][WSOCK_EV_EOF] = FSM_TO(WSOCK_GONE_PENDING),
	[WSOCK_OPEN][WSOCK_EV_CLOSE] = FSM_TO(WSOCK_CLOSE_SENT_PENDING),
	[WSOCK_OPEN][WSOCK_EV_CLOSE_RCVD] = FSM_TO(WSOCK_CLOSED_PENDING),
	[WSOCK_OPEN][WSOCK_EV_END] = FSM_TO(WSOCK_ENDED),
	[WSOCK_GONE_PENDING][WSOCK_EV_TAKEN] = FSM_TO(WSOCK_GONE),
	[WSOCK_GONE_PENDING][WSOCK_EV_END] = FSM_TO(WSOCK_ENDED),
	[WSOCK_GONE][WSOCK_EV_END] = FSM_TO(WSOCK_ENDED),
	[WSOCK_CLOSE_SENT_PENDING][WSOCK_EV_CLOSE_RCVD] =
	    FSM_TO(WSOCK_CLOSED_PENDING),
	[WSOCK_CLOSE_SENT_PENDING][WSOCK_EV_TAKEN] = FSM_TO(WSOCK_CLOSE_SENT),
	[WSOCK_CLOSE_SENT_PENDING][WSOCK_EV_END] = FSM_TO(WSOCK_ENDED),
	[WSOCK_CLOSE_SENT][WSOCK_EV_END] = FSM_TO(WSOCK_ENDED),
	[WSOCK_CLOSED_PENDING][WSOCK_EV_TAKEN] = FSM_TO(WSOCK_CLOSED),
	[WSOCK_CLOSED_PENDING][WSOCK_EV_END] = FSM_TO(WSOCK_ENDED_CLOSED),
	[WSOCK_CLOSED][WSOCK_EV_END] = FSM_TO(WSOCK_ENDED_CLOSED),
	[WSOCK_ENDED][WSOCK_EV_CLOSE_RCVD] = FSM_TO(WSOCK_ENDED_CLOSED),
};
static uint32_t		wsock_taken[WSOCK_NSTATES * WSOCK_NEVENTS];

struct fsm wsock_fsm = {
	"wsock", LOG_LEVEL_DEBUG, WSOCK_NSTATES, WSOCK_NEVENTS,
	wsock_state_names, wsock_event_names, &wsock_table[0][0], wsock_taken
};

/* WSOCK_LINGER, or shorter for the unit tests (wsock_test_linger). */
static struct timeval	wsock_linger = { WSOCK_LINGER, 0 };

/* For the unit tests only: see wsock_test_inject(), wsock_writev_now(). */
void		(*wsock_test_observer)(struct wsock *, int);
unsigned long	wsock_test_tls_now, wsock_test_tls_requeued;

/* One close code per reason: the contract in docs/WEB.md. */
static const uint16_t wsock_close_codes[REASON_MAX] = {
	[REASON_NONE] = 1000,
	[REASON_ESCAPE] = 1000,
	[REASON_SHUTDOWN] = 1001,
	[REASON_LISTENER_REMOVED] = 1001,
	[REASON_KICKED] = 1008,
	[REASON_EXPIRED] = 1008,
	[REASON_HV_LOST] = 1011,
	[REASON_HV_REMOVED] = 1001,
	[REASON_CONSOLE_LOST] = 1011,
	[REASON_IDLE] = 4000,
	[REASON_GUEST_STOPPED] = 4001,
	[REASON_GUEST_MIGRATED] = 4002,
	[REASON_CONSOLE_TAKEN] = 4003,
	[REASON_TAKEN_OVER] = 4004,
	[REASON_TOO_SLOW] = 4005,
	[REASON_BUSY] = 4100,
	[REASON_NOT_RUNNING] = 4101,
	[REASON_UNKNOWN_GUEST] = 4102,
	[REASON_TOO_MANY] = 4103,
	[REASON_RECORDING_FAILED] = 4104,
	[REASON_CLIENT_CLOSED] = 1000,
	[REASON_CLIENT_ERROR] = 1002,
};

uint16_t
wsock_close_code(enum session_reason reason)
{
	if ((unsigned)reason >= REASON_MAX)
		return 1011;
	return wsock_close_codes[reason];
}

unsigned int
wsock_count(void)
{
	struct wsock	*w;
	unsigned int	 n = 0;

	TAILQ_FOREACH(w, &wsocks, entry)
		n++;
	return n;
}

unsigned int
wsock_count_address(const char *addr)
{
	struct wsock	*w;
	unsigned int	 n = 0;

	TAILQ_FOREACH(w, &wsocks, entry) {
		if (strcmp(w->addr, addr) == 0)
			n++;
	}
	return n;
}

/*
 * The only place a connection changes state.  0: done; -1: the table
 * refuses the event in this state, a bug logged and counted by fsm_step(),
 * and the caller does nothing of what goes with it.
 */
static int
wsock_step(struct wsock *w, enum wsock_event ev, const char *why)
{
	if (fsm_step(&wsock_fsm, &w->state, (int)ev, why,
	    "wsock peer=%s guest=%s dev=%s", w->peer, log_esc(w->name),
	    log_esc(w->alias)) == -1)
		return -1;
	if (wsock_test_observer != NULL)
		wsock_test_observer(w, w->state);
	return 0;
}

/* Our close frame is out. */
static int
wsock_close_sent(const struct wsock *w)
{
	return w->state != WSOCK_OPEN && w->state != WSOCK_GONE_PENDING &&
	    w->state != WSOCK_GONE;
}

/* The client's close frame (or, after a protocol error, anything) came. */
static int
wsock_close_rcvd(const struct wsock *w)
{
	return w->state == WSOCK_CLOSED_PENDING || w->state == WSOCK_CLOSED ||
	    w->state == WSOCK_ENDED_CLOSED;
}

/* The session has let go: its end of the pair is freed. */
static int
wsock_ended(const struct wsock *w)
{
	return w->state == WSOCK_ENDED || w->state == WSOCK_ENDED_CLOSED;
}

/* The client is gone or closing, its input still in the pair. */
static int
wsock_pending(const struct wsock *w)
{
	return w->state == WSOCK_GONE_PENDING ||
	    w->state == WSOCK_CLOSE_SENT_PENDING ||
	    w->state == WSOCK_CLOSED_PENDING;
}

static void
wsock_send_frame(struct wsock *w, int opcode, const void *payload,
    size_t len)
{
	uint8_t	hdr[10];
	size_t	n = ws_frame_header(hdr, opcode, 1, len);

	bufferevent_write(w->under, hdr, n);
	if (len > 0)
		bufferevent_write(w->under, payload, len);
}

/* Once per connection: the callers go by the state. */
static void
wsock_send_close(struct wsock *w, uint16_t code, const char *reason)
{
	uint8_t	payload[125];
	size_t	n;

	n = ws_close_payload(payload, code, reason);
	wsock_send_frame(w, WS_OP_CLOSE, payload, n);
}

/* Free from the loop, never from inside a filter or a session call. */
static void
wsock_done_later(struct wsock *w)
{
	event_active(w->ev_done, EV_TIMEOUT, 0);
}

/*
 * The client is gone or closing: once the pair holds none of its input
 * (what it sent before is the session's then), tell the session, which
 * ends and calls the door.  Until then wsock_mine_write_cb calls again as
 * the pair drains.  The client is not read from here on: see the table.
 */
static void
wsock_tell(struct wsock *w)
{
	if (!wsock_pending(w) ||
	    evbuffer_get_length(bufferevent_get_output(w->mine)) > 0)
		return;
	if (wsock_step(w, WSOCK_EV_TAKEN, "the session has its input") == -1)
		return;
	bufferevent_disable(w->under, EV_READ);
	bufferevent_trigger_event(w->theirs, BEV_EVENT_EOF, 0);
}

/* We close: the client broke the protocol or stopped answering pings. */
static void
wsock_close(struct wsock *w, uint16_t code, const char *reason)
{
	if (wsock_step(w, WSOCK_EV_CLOSE, reason) == -1)
		return;
	wsock_send_close(w, code, reason);
	wsock_tell(w);
}

/* At or above the mark: nothing more is queued for the client. */
static int
wsock_queue_full(const struct wsock *w)
{
	return evbuffer_get_length(bufferevent_get_output(w->under)) >=
	    WSOCK_UNDER_HIGH;
}

/* Answer a ping now, or keep its pong (the latest only) for later. */
static void
wsock_pong(struct wsock *w, const void *data, size_t len)
{
	if (len > sizeof w->pong)
		len = sizeof w->pong;	/* the codec refuses longer ones */
	if (!wsock_queue_full(w)) {
		wsock_send_frame(w, WS_OP_PONG, data, len);
		w->pong_pending = 0;
		return;
	}
	memcpy(w->pong, data, len);
	w->pong_len = len;
	w->pong_pending = 1;
}

/* A JSON number member that is a whole number in 1..max, or 0. */
static unsigned int
wsock_json_uint(const char *msg, size_t len, const char *key,
    unsigned int max)
{
	const char		*v;
	size_t			 vlen;
	char			 num[16];
	unsigned long long	 n;

	if (!json_object_member(msg, len, key, &v, &vlen) ||
	    vlen >= sizeof num)
		return 0;
	memcpy(num, v, vlen);
	num[vlen] = '\0';
	if (parse_uint(num, max, &n) == -1 || n == 0)
		return 0;
	return (unsigned int)n;
}

/*
 * A `resize` message ({"type":"resize","cols":C,"rows":R}): the session
 * records it (record_dir); sizes out of 1..1000 are ignored.
 */
static void
wsock_v1_message(struct wsock *w, const char *msg, size_t len)
{
	const char	*v;
	size_t		 vlen;
	unsigned int	 cols, rows;

	if (!json_object_member(msg, len, "type", &v, &vlen) ||
	    vlen != 8 || memcmp(v, "\"resize\"", 8) != 0)
		return;
	cols = wsock_json_uint(msg, len, "cols", 1000);
	rows = wsock_json_uint(msg, len, "rows", 1000);
	if (cols > 0 && rows > 0 && w->session != NULL)
		session_resize(w->session, cols, rows);
}

/*
 * A text message under virtconsole.v1: one JSON object, whose `type` the
 * daemon may know (`resize`: recorded, see record_dir) or not (ignored);
 * anything else closes with 1007.
 */
static int
wsock_v1_text(struct wsock *w, const struct ws_event *ev)
{
	size_t	len;
	int	ok;

	if (evbuffer_get_length(w->b64) + ev->len > WSOCK_MESSAGE_MAX) {
		wsock_close(w, 1009, "message too big");
		return -1;
	}
	evbuffer_add(w->b64, ev->data, ev->len);
	if (!ev->fin)
		return 0;
	len = evbuffer_get_length(w->b64);
	ok = json_object_valid((const char *)evbuffer_pullup(w->b64, -1),
	    len);
	if (ok)
		wsock_v1_message(w, (const char *)evbuffer_pullup(w->b64, -1),
		    len);
	evbuffer_drain(w->b64, len);
	if (!ok) {
		log_info("wsock: peer=%s: a text message that is not a JSON "
		    "object, close 1007", w->peer);
		wsock_close(w, 1007, "not a JSON object");
		return -1;
	}
	return 0;
}

/*
 * Decode client frames; data goes to the session through the pair.
 * Control frames are answered here; a protocol error closes with its
 * code.  Returns -1 once the connection is closing.
 */
static int
wsock_decode(struct wsock *w)
{
	struct evbuffer	*in = bufferevent_get_input(w->under);
	struct ws_event	 ev;
	uint8_t		*buf, *out;
	size_t		 len, used, blen;
	ssize_t		 n;
	int		 rc;

	while ((len = evbuffer_get_length(in)) > 0) {
		buf = evbuffer_pullup(in, (ev_ssize_t)len);
		rc = ws_reader_feed(&w->rd, buf, len, &used, &ev);
		evbuffer_drain(in, used);
		if (rc == WS_EV_NEED_MORE)
			break;
		clock_gettime(CLOCK_MONOTONIC, &w->last_rx);
		if (wsock_close_sent(w)) {
			/*
			 * Closing: only the peer's close frame matters (after
			 * a protocol error, the reader reports an error for
			 * anything); a second one changes nothing.
			 */
			if (rc == WS_EV_CLOSE || rc == WS_EV_ERROR) {
				if (!wsock_close_rcvd(w))
					(void)wsock_step(w, WSOCK_EV_CLOSE_RCVD,
					    "client answered the close");
				wsock_done_later(w);
				return -1;
			}
			continue;
		}
		switch (rc) {
		case WS_EV_DATA:
			if (w->mode == WSOCK_RAW || (w->mode == WSOCK_V1 &&
			    ev.opcode == WS_OP_BINARY)) {
				bufferevent_write(w->mine, ev.data, ev.len);
				break;
			}
			if (w->mode == WSOCK_V1) {
				if (wsock_v1_text(w, &ev) == -1)
					return -1;
				break;
			}
			if (evbuffer_get_length(w->b64) + ev.len >
			    WSOCK_MESSAGE_MAX) {
				wsock_close(w, 1009, "message too big");
				return -1;
			}
			evbuffer_add(w->b64, ev.data, ev.len);
			if (!ev.fin)
				break;
			blen = evbuffer_get_length(w->b64);
			out = xmalloc(blen / 4 * 3 + 3);
			n = ws_b64_decode((const char *)evbuffer_pullup(w->b64,
			    -1), blen, out, blen / 4 * 3 + 3);
			evbuffer_drain(w->b64, blen);
			if (n >= 0)
				bufferevent_write(w->mine, out, (size_t)n);
			free(out);
			if (n < 0) {
				wsock_close(w, 1007, "invalid base64");
				return -1;
			}
			break;
		case WS_EV_PING:
			wsock_pong(w, ev.data, ev.len);
			break;
		case WS_EV_PONG:
			break;
		case WS_EV_CLOSE:
			/* Answered with its code (RFC 6455 5.5.1). */
			if (wsock_step(w, WSOCK_EV_CLOSE_RCVD,
			    "client closed") == 0) {
				wsock_send_close(w, ev.code == 0 ? 1000 :
				    ev.code, "");
				wsock_tell(w);
			}
			return -1;
		case WS_EV_ERROR:
		default:
			log_info("wsock: peer=%s: protocol error, close %u "
			    "(%s)", w->peer, ev.code, ev.reason);
			wsock_close(w, ev.code, ev.reason);
			return -1;
		}
		/* The session is not keeping up: stop reading the client. */
		if (evbuffer_get_length(bufferevent_get_output(w->mine)) >=
		    WSOCK_UNDER_HIGH) {
			bufferevent_disable(w->under, EV_READ);
			break;
		}
		/* The client is not reading: stop reading it too. */
		if (wsock_queue_full(w)) {
			bufferevent_disable(w->under, EV_READ);
					if (!evtimer_pending(w->ev_slow, NULL))
				timer_arm(w->ev_slow, WSOCK_SLOW_SECS);
			break;
		}
	}
	return 0;
}

/* Frame a text message into dst. */
static void
wsock_frame_text(struct evbuffer *dst, const char *text, size_t len)
{
	uint8_t	hdr[WS_HEADER_MAX];

	evbuffer_add(dst, hdr, ws_frame_header(hdr, WS_OP_TEXT, 1, len));
	evbuffer_add(dst, text, len);
}

/* One data frame of the guest's bytes p[0 .. len) into dst. */
static void
wsock_frame_data(const struct wsock *w, struct evbuffer *dst,
    const uint8_t *p, size_t len)
{
	uint8_t			hdr[WS_HEADER_MAX];
	struct evbuffer_iovec	iov;

	if (w->mode == WSOCK_BASE64) {
		/* Encoded in place in the queue: no copy, no malloc. */
		evbuffer_add(dst, hdr, ws_frame_header(hdr, WS_OP_TEXT, 1,
		    WS_B64_SIZE(len) - 1));
		if (evbuffer_reserve_space(dst, (ev_ssize_t)WS_B64_SIZE(len),
		    &iov, 1) != 1)
			fatalx("wsock: out of memory");
		iov.iov_len = ws_b64_encode(p, len, iov.iov_base);
		if (evbuffer_commit_space(dst, &iov, 1) == -1)
			fatalx("wsock: evbuffer_commit_space");
	} else {
		evbuffer_add(dst, hdr, ws_frame_header(hdr, WS_OP_BINARY, 1,
		    len));
		evbuffer_add(dst, p, len);
	}
}

/*
 * Frame raw bytes from src into dst, with the session's messages where
 * they belong among them; stop early at the socket's cap.
 */
static void
wsock_frame_out(struct wsock *w, struct evbuffer *src, struct evbuffer *dst,
    int all)
{
	struct wsock_msg	*m;
	size_t			 len;

	for (;;) {
		/*
		 * NOLINTBEGIN(clang-analyzer-unix.Malloc):
		 * TAILQ, see .clang-tidy
		 */
		while ((m = TAILQ_FIRST(&w->msgs)) != NULL &&
		    m->at <= w->taken) {
			if (!all && evbuffer_get_length(dst) >=
			    WSOCK_UNDER_HIGH)
				return;
			wsock_frame_text(dst, m->json, m->len);
			TAILQ_REMOVE(&w->msgs, m, entry);
			w->nmsgs--;
			free(m);
		}
		/* NOLINTEND(clang-analyzer-unix.Malloc) */
		if ((len = evbuffer_get_length(src)) == 0)
			break;
		if (!all && evbuffer_get_length(dst) >= WSOCK_UNDER_HIGH)
			break;
		if (len > WSOCK_FRAME_MAX)
			len = WSOCK_FRAME_MAX;
		if (m != NULL && len > m->at - w->taken)
			len = (size_t)(m->at - w->taken);
		wsock_frame_data(w, dst, evbuffer_pullup(src, (ev_ssize_t)len),
		    len);
		evbuffer_drain(src, len);
		w->taken += (uint64_t)len;
	}
}

/* Whether a message waits for no more bytes. */
static int
wsock_msg_due(const struct wsock *w)
{
	const struct wsock_msg	*m = TAILQ_FIRST(&w->msgs);

	return m != NULL && m->at <= w->taken;
}

/*
 * Chunks now framed move to the socket's queue, at its end; those whose
 * last byte the socket took are timed.
 */
static void
wsock_lat_framed(struct wsock *w)
{
	uint64_t	t0;

	while (lat_take(&w->lat_pair, w->taken, &t0))
		lat_stream_mark(&w->lat_wire,
		    evbuffer_get_length(bufferevent_get_output(w->under)), t0);
}

/*
 * TLS: libevent hands each chain of the queue to its own SSL_write(), one
 * record and one write(2) each, and a frame's header often ends one chain
 * and its payload starts the next.  What is queued (up to a record's
 * worth) is made contiguous: one record per write.  Nothing waits for
 * more.
 */
static void
wsock_tls_record(const struct wsock *w, struct evbuffer *out)
{
	size_t	len;

	if (!w->plain && (len = evbuffer_get_length(out)) > 0)
		(void)evbuffer_pullup(out, (ev_ssize_t)(len < WSOCK_TLS_RECORD ?
		    len : WSOCK_TLS_RECORD));
}

/*
 * Bytes to the client at once, in order, while nothing is queued for it; a
 * count of those gone (written, or taken by SSL_write()), the rest queued.
 * A plain socket: one sendmsg() (util.c).  TLS: one SSL_write() of the
 * pieces gathered on the stack, one record up to WSOCK_TLS_RECORD bytes,
 * without the queue's chain allocations and without waiting for the
 * loop's next pass (libevent writes its queue only on the socket's write
 * event).  If the socket takes only part of the record, OpenSSL keeps the
 * rest and must be called again with the same bytes first: they are queued
 * whole, in one chain of a queue that was empty, so libevent's next
 * SSL_write() starts with them (SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER, which
 * libevent sets, allows the new address); an error surfaces there too, on
 * the bufferevent's error path.  Skipped, all queued, while OpenSSL has
 * a write of its own pending or the handshake is not done.
 */
static size_t
wsock_writev_now(struct wsock *w, struct iovec *iov, int cnt)
{
	struct evbuffer	*out = bufferevent_get_output(w->under);
	SSL		*ssl;
	uint8_t		 rec[WSOCK_TLS_RECORD];
	const uint8_t	*p;
	size_t		 len = 0, at = 0;
	int		 i;

	if (w->plain)
		return bev_writev_now(w->under, iov, cnt);
	for (i = 0; i < cnt; i++)
		len += iov[i].iov_len;
	ssl = bufferevent_openssl_get_ssl(w->under);
	if (len == 0 || len > INT_MAX || ssl == NULL ||
	    evbuffer_get_length(out) > 0 ||
	    !(bufferevent_get_enabled(w->under) & EV_WRITE) ||
	    !SSL_is_init_finished(ssl) || SSL_want_write(ssl) ||
	    (cnt > 1 && len > sizeof rec)) {
		for (i = 0; i < cnt; i++)
			evbuffer_add(out, iov[i].iov_base, iov[i].iov_len);
		return 0;
	}
	if (cnt == 1)
		p = iov[0].iov_base;
	else {
		for (i = 0; i < cnt; i++) {
			memcpy(rec + at, iov[i].iov_base, iov[i].iov_len);
			at += iov[i].iov_len;
		}
		p = rec;
	}
	ERR_clear_error();
	wsock_test_tls_now++;
	if (SSL_write(ssl, p, (int)len) == (int)len)
		return len;
	ERR_clear_error();	/* libevent's SSL_write() tells, if it fails */
	wsock_test_tls_requeued++;
	evbuffer_add(out, p, len);
	return 0;
}

/*
 * One data frame to a socket whose queue is empty, sent at once from the
 * stack (header, payload or its base64), wsock_writev_now(): no queue, no
 * allocation.  0 when a base64 payload is too long for the stack.
 */
static int
wsock_send_now(struct wsock *w, const uint8_t *p, size_t len)
{
	union {
		const uint8_t	*c;
		void		*v;
	}		u = { .c = p };		/* iovec is not const */
	uint8_t		hdr[WS_HEADER_MAX];
	char		b64[WS_B64_SIZE(WSOCK_NOW_B64)];
	struct iovec	iov[2];

	if (w->mode == WSOCK_BASE64) {
		if (len > WSOCK_NOW_B64)
			return 0;
		iov[1].iov_base = b64;
		iov[1].iov_len = ws_b64_encode(p, len, b64);
		iov[0].iov_len = ws_frame_header(hdr, WS_OP_TEXT, 1,
		    iov[1].iov_len);
	} else {
		iov[1].iov_base = u.v;
		iov[1].iov_len = len;
		iov[0].iov_len = ws_frame_header(hdr, WS_OP_BINARY, 1, len);
	}
	iov[0].iov_base = hdr;
	lat_stream_gone(&w->lat_wire, (uint64_t)wsock_writev_now(w, iov, 2));
	return 1;
}

/* Guest output from the session: frame it while the socket has room. */
static void
wsock_mine_read_cb(struct bufferevent *bev, void *arg)
{
	struct wsock	*w = arg;
	struct evbuffer	*in = bufferevent_get_input(bev);
	struct evbuffer	*out = bufferevent_get_output(w->under);
	struct iovec	 iov;

	/*
	 * While nothing is queued for the client, frames are written at once
	 * (wsock_writev_now()), most often a keystroke's echo in one frame.
	 */
	while (evbuffer_get_length(out) == 0 &&
	    (evbuffer_get_length(in) > 0 || wsock_msg_due(w))) {
		wsock_frame_out(w, in, w->out, 0);
		iov.iov_len = evbuffer_get_length(w->out);
		iov.iov_base = evbuffer_pullup(w->out, -1);
		lat_stream_gone(&w->lat_wire, (uint64_t)wsock_writev_now(w,
		    &iov, 1));
		evbuffer_drain(w->out, iov.iov_len);
		wsock_lat_framed(w);
	}
	wsock_frame_out(w, in, out, 0);
	wsock_tls_record(w, out);
	wsock_lat_framed(w);
	/*
	 * At the cap, stop taking from the pair: output then stays in the
	 * session's buffer, where its max_buffer rule sees it.
	 */
	if (evbuffer_get_length(out) >= WSOCK_UNDER_HIGH)
		bufferevent_disable(bev, EV_READ);
}

/*
 * The session took our input: read the client again, or, once it is gone
 * or closing, tell the session if that was the last of it.
 */
static void
wsock_mine_write_cb(struct bufferevent *bev, void *arg)
{
	struct wsock	*w = arg;

	if (wsock_pending(w))
		wsock_tell(w);
	else if (w->state == WSOCK_OPEN)
		bufferevent_enable(w->under, EV_READ);
}

static void
wsock_under_read_cb(struct bufferevent *bev, void *arg)
{
	struct wsock	*w = arg;

	w->rx_at = lat_now();
	wsock_decode(w);
}

/* The client drained: its pong, its input, more output from the session. */
static void
wsock_under_write_cb(struct bufferevent *bev, void *arg)
{
	struct wsock	*w = arg;

	if (w->mine == NULL)
		return;
	evtimer_del(w->ev_slow);
	if (w->pong_pending)
		wsock_pong(w, w->pong, w->pong_len);
	if (w->state == WSOCK_OPEN &&
	    evbuffer_get_length(bufferevent_get_output(w->mine)) <
	    WSOCK_UNDER_HIGH)
		bufferevent_enable(w->under, EV_READ);
	bufferevent_enable(w->mine, EV_READ);
	wsock_mine_read_cb(w->mine, w);
}

/*
 * The queue reached the mark and has not drained to the write watermark
 * (half of it, where wsock_under_write_cb resumes reading and deletes this
 * timer) since: the client does not read.  The queue may be a little under
 * the mark by now; the client is still not being read, so it is still too
 * slow.
 */
static void
wsock_slow_cb(evutil_socket_t fd, short what, void *arg)
{
	struct wsock	*w = arg;

	if (wsock_ended(w) || w->session == NULL)
		return;
	log_info("wsock: peer=%s: %zu bytes queued, not drained for %d s",
	    w->peer, evbuffer_get_length(bufferevent_get_output(w->under)),
	    WSOCK_SLOW_SECS);
	session_kick(w->session, REASON_TOO_SLOW);
}

/*
 * An abrupt TLS close is reported as an error: a plain disconnect.  Once
 * the client is gone or closing, the session is told already (or will be
 * once it has the input): a late end of the socket changes nothing.
 */
static void
wsock_under_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct wsock	*w = arg;

	if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) ||
	    w->state != WSOCK_OPEN)
		return;
	if (wsock_step(w, WSOCK_EV_EOF, (what & BEV_EVENT_EOF) ?
	    "client left" : "connection error") == -1)
		return;
	/*
	 * Nothing more comes from it: libevent stops reading at EOF, not
	 * after a write error.
	 */
	bufferevent_disable(w->under, EV_READ);
	wsock_tell(w);
}

static void
wsock_free(struct wsock *w)
{
	struct wsock_msg	*m;

	while ((m = TAILQ_FIRST(&w->msgs)) != NULL) {
		TAILQ_REMOVE(&w->msgs, m, entry);
		free(m);
	}
	TAILQ_REMOVE(&wsocks, w, entry);
	bev_lat_unwatch(w->under, &w->wire_cbe, &w->lat_wire);
	if (w->mine != NULL)
		bufferevent_free(w->mine);
	if (w->theirs != NULL)
		bufferevent_free(w->theirs);
	bufferevent_free(w->under);
	event_free(w->ev_ping);
	event_free(w->ev_expire);
	event_free(w->ev_done);
	event_free(w->ev_slow);
	evbuffer_free(w->b64);
	evbuffer_free(w->out);
	free(w->peer);
	free(w->name);
	free(w->alias);
	free(w->listener);
	free(w);
}

static void
wsock_done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct wsock	*w = arg;

	/* The session still holds its end: it will call the door. */
	if (!wsock_ended(w))
		return;
	wsock_free(w);
}

/* After the door closed: only wait for the close reply or the deadline. */
static void
wsock_closing_read_cb(struct bufferevent *bev, void *arg)
{
	struct wsock	*w = arg;

	if (wsock_decode(w) == 0)
		evbuffer_drain(bufferevent_get_input(bev),
		    evbuffer_get_length(bufferevent_get_input(bev)));
}

/*
 * Our output is out.  When the client closed first, that includes our
 * close frame in reply (RFC 6455 5.5.1), so the connection can go now;
 * freeing it before would drop the reply unsent.
 */
static void
wsock_closing_write_cb(struct bufferevent *bev, void *arg)
{
	struct wsock	*w = arg;

	if (wsock_close_rcvd(w))
		wsock_done_later(w);
}

static void
wsock_closing_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct wsock	*w = arg;

	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		wsock_done_later(w);
}

/*
 * Under virtconsole.v1 the notice is an `end` message, never bytes, so
 * that offsets stay exact (refused: no `hello` came before it).
 */
static void
wsock_end_message(struct wsock *w, enum session_reason reason)
{
	struct evbuffer	*b;

	if ((b = evbuffer_new()) == NULL)
		return;
	evbuffer_add_printf(b, "{\"type\":\"end\",\"kind\":\"%s\","
	    "\"reason\":", session_reason_refused(reason) ? "refused" :
	    "disconnected");
	json_add_string(b, session_reason_text(reason));
	evbuffer_add_printf(b, ",\"code\":%u}",
	    (unsigned)wsock_close_code(reason));
	wsock_frame_text(bufferevent_get_output(w->under),
	    (const char *)evbuffer_pullup(b, -1), evbuffer_get_length(b));
	evbuffer_free(b);
}

/*
 * A message from the session (virtconsole.v1): it goes once the bytes
 * before it are framed, at once if they are.
 */
static int
wsock_door_message(void *arg, const char *json, size_t len, uint64_t at)
{
	struct wsock		*w = arg;
	struct wsock_msg	*m;

	if (w->mine == NULL)	/* the session let go: nothing after */
		return 0;
	if (w->nmsgs >= WSOCK_MESSAGES_MAX)
		return -1;
	m = xmalloc(sizeof *m + len);
	m->at = at;
	m->len = len;
	memcpy(m->json, json, len);
	TAILQ_INSERT_TAIL(&w->msgs, m, entry);
	w->nmsgs++;
	if (wsock_msg_due(w) &&
	    (bufferevent_get_enabled(w->mine) & EV_READ))
		wsock_mine_read_cb(w->mine, w);
	return 0;
}

/*
 * The session ends and hands its end of the pair back: what it wrote last
 * and the notice go out as terminal text (so a person sees it in the
 * terminal), then the close frame carries the reason and its code.
 */
static void
wsock_door_close(struct bufferevent *bev, enum session_reason reason,
    void *arg)
{
	struct wsock	*w = arg;
	struct evbuffer	*out = bufferevent_get_output(w->under), *tmp;
	char		 notice[128];
	size_t		 n;
	int		 close_sent = wsock_close_sent(w);

	if (wsock_step(w, WSOCK_EV_END, session_reason_text(reason)) == -1) {
		/* Called twice: bev is not our pair's; it is ours to free. */
		bufferevent_free(bev);
		return;
	}
	w->session = NULL;
	evtimer_del(w->ev_ping);
	evtimer_del(w->ev_expire);
	evtimer_del(w->ev_slow);
	if (!close_sent) {
		wsock_frame_out(w, bufferevent_get_input(w->mine), out, 1);
		/*
		 * A pair keeps the front of an output buffer frozen (only the
		 * pair moves data out of it); this end is about to go.
		 */
		evbuffer_unfreeze(bufferevent_get_output(bev), 1);
		wsock_frame_out(w, bufferevent_get_output(bev), out, 1);
		if (w->mode == WSOCK_V1)
			wsock_end_message(w, reason);
		else if ((n = session_notice(reason, notice,
		    sizeof notice)) > 0 && (tmp = evbuffer_new()) != NULL) {
			evbuffer_add(tmp, notice, n);
			wsock_frame_out(w, tmp, out, 1);
			evbuffer_free(tmp);
		}
		wsock_send_close(w, wsock_close_code(reason),
		    session_reason_text(reason));
	}
	bufferevent_free(w->mine);
	bufferevent_free(w->theirs);
	w->mine = w->theirs = NULL;
	bufferevent_setcb(w->under, wsock_closing_read_cb,
	    wsock_closing_write_cb, wsock_closing_event_cb, w);
	bufferevent_enable(w->under, EV_READ | EV_WRITE);
	if (wsock_close_rcvd(w) && evbuffer_get_length(out) == 0)
		wsock_done_later(w);
	else
		evtimer_add(w->ev_done, &wsock_linger);
}

/* The session wrote guest output read at t0 up to pair offset at. */
static void
wsock_door_stamp(void *arg, uint64_t at, uint64_t t0)
{
	struct wsock	*w = arg;

	lat_mark(&w->lat_pair, at, t0);
	wsock_lat_framed(w);	/* sent already by wsock_door_write() */
}

/*
 * Guest output straight from the session, past the pair: framed, and with
 * nothing queued for the client sent at once (wsock_send_now()).  No
 * copy into the pair, and no wait for its deferred callback, which runs
 * only after every other event of the loop's pass.  Only while nothing is
 * ahead of it (in the pair, or a message) and the socket's queue is under
 * its cap; else 0, and the session writes it to the pair as before.
 */
static size_t
wsock_door_write(void *arg, const char *buf, size_t n)
{
	struct wsock	*w = arg;
	struct evbuffer	*out;
	const uint8_t	*p = (const uint8_t *)buf;

	if (w->mine == NULL || n == 0 || n > WSOCK_FRAME_MAX ||
	    !TAILQ_EMPTY(&w->msgs) ||
	    evbuffer_get_length(bufferevent_get_input(w->mine)) > 0)
		return 0;
	out = bufferevent_get_output(w->under);
	if (evbuffer_get_length(out) >= WSOCK_UNDER_HIGH)
		return 0;
	if (evbuffer_get_length(out) > 0 || !wsock_send_now(w, p, n)) {
		wsock_frame_data(w, out, p, n);
		wsock_tls_record(w, out);
	}
	w->taken += (uint64_t)n;
	return n;
}

/* The client's bytes the session reads now came in this read. */
static uint64_t
wsock_door_read_at(void *arg)
{
	const struct wsock	*w = arg;

	return w->rx_at;
}

/*
 * Two doors: only virtconsole.v1 frames messages, so only its sessions
 * are told gaps and runs, and fall behind into the history rather than
 * drop output (binary and base64 clients could not be told a gap).
 */
static const struct session_door wsock_doors[2][2] = {
	{	/* plain: ws */
		{ .name = "websocket", .kind = SESSION_DOOR_WS,
		    .close = wsock_door_close,
		    .write = wsock_door_write, .stamp = wsock_door_stamp,
		    .read_at = wsock_door_read_at },
		{ .name = "websocket", .kind = SESSION_DOOR_WS,
		    .close = wsock_door_close,
		    .message = wsock_door_message,
		    .write = wsock_door_write, .stamp = wsock_door_stamp,
		    .read_at = wsock_door_read_at },
	}, {	/* over TLS: wss */
		{ .name = "websocket", .kind = SESSION_DOOR_WSS,
		    .close = wsock_door_close,
		    .write = wsock_door_write, .stamp = wsock_door_stamp,
		    .read_at = wsock_door_read_at },
		{ .name = "websocket", .kind = SESSION_DOOR_WSS,
		    .close = wsock_door_close,
		    .message = wsock_door_message,
		    .write = wsock_door_write, .stamp = wsock_door_stamp,
		    .read_at = wsock_door_read_at },
	},
};

/* Ping; drop a client that has answered nothing for two intervals. */
static void
wsock_ping_cb(evutil_socket_t fd, short what, void *arg)
{
	struct wsock	*w = arg;
	struct timespec	 now;

	/*
	 * Whole seconds would round: a client that came at x.99 s would be
	 * two "seconds" old one second later.  50 ms of slack for timers.
	 */
	clock_gettime(CLOCK_MONOTONIC, &now);
	/*
	 * Not reading the client (its input waits for a slow console): its
	 * pongs wait behind that input, so its silence is ours.
	 */
	if (!(bufferevent_get_enabled(w->under) & EV_READ))
		w->last_rx = now;
	if ((double)(now.tv_sec - w->last_rx.tv_sec) +
	    (double)(now.tv_nsec - w->last_rx.tv_nsec) / 1e9 + 0.05 >=
	    2.0 * w->ping_interval) {
		log_info("wsock: peer=%s: no answer to pings, dropping",
		    w->peer);
		/* Closing already: our close is out, the session told. */
		if (w->state == WSOCK_OPEN)
			wsock_close(w, 1008, "no answer to pings");
		return;
	}
	wsock_send_frame(w, WS_OP_PING, "vcd", 3);
	timer_arm(w->ev_ping, w->ping_interval);
}

/* The browser session (cookie) this console was opened with has ended. */
static void
wsock_expire_cb(evutil_socket_t fd, short what, void *arg)
{
	struct wsock	*w = arg;

	if (!wsock_ended(w) && w->session != NULL)
		session_kick(w->session, REASON_EXPIRED);
}

/*
 * Take over an upgraded connection (the 101 response is already queued on
 * bev) and start its session on one end of a bufferevent pair.
 */
void
wsock_start(struct event_base *base, struct bufferevent *bev,
    const struct wsock_open *o)
{
	struct bufferevent	*pair[2];
	struct wsock		*w;
	struct guest		*g = o->guest;
	const char		*alias = o->alias;
	char			 who[256];

	if (bufferevent_pair_new(base, 0, pair) == -1)
		fatalx("wsock: out of memory");
	w = xcalloc(1, sizeof *w);
	w->state = WSOCK_OPEN;
	w->under = bev;
	w->theirs = pair[0];
	w->mine = pair[1];
	w->mode = o->mode;
	TAILQ_INIT(&w->msgs);
	snprintf(w->addr, sizeof w->addr, "%s", o->addr);
	w->peer = xstrdup(o->peer);
	w->listener = xstrdup(o->listener);
	w->ping_interval = o->ping_interval;
	snprintf(w->uuid, sizeof w->uuid, "%s", g->uuid);
	snprintf(w->hv, sizeof w->hv, "%s", guest_hv_name(g));
	w->name = xstrdup(g->name);
	w->alias = xstrdup(alias != NULL ? alias : guest_default_alias(g) !=
	    NULL ? guest_default_alias(g) : "");
	/* Kept for a revocation of the viewers only. */
	w->role = o->start != NULL ? o->start->role : SESSION_WRITER;
	if (o->session_id != NULL) {
		w->has_session = 1;
		memcpy(w->session_id, o->session_id, TOKEN_ID_LEN);
		/* The cookie's own expiry: a revocation must outlive it. */
		w->session_expires = o->session_exp;
	}
	w->plain = bufferevent_openssl_get_ssl(bev) == NULL;
	lat_stream_init(&w->lat_wire, session_forward_hist(w->plain ?
	    SESSION_DOOR_WS : SESSION_DOOR_WSS, SESSION_TO_CLIENT));
	if ((w->wire_cbe = bev_lat_watch(bev, &w->lat_wire)) == NULL)
		fatalx("wsock: out of memory");
	w->b64 = evbuffer_new();
	w->out = evbuffer_new();
	w->ev_ping = evtimer_new(base, wsock_ping_cb, w);
	w->ev_done = evtimer_new(base, wsock_done_cb, w);
	w->ev_expire = evtimer_new(base, wsock_expire_cb, w);
	w->ev_slow = evtimer_new(base, wsock_slow_cb, w);
	if (w->b64 == NULL || w->out == NULL || w->ev_ping == NULL ||
	    w->ev_done == NULL || w->ev_expire == NULL || w->ev_slow == NULL)
		fatalx("wsock: out of memory");
	ws_reader_init(&w->rd, WSOCK_MESSAGE_MAX);
	clock_gettime(CLOCK_MONOTONIC, &w->last_rx);
	TAILQ_INSERT_TAIL(&wsocks, w, entry);

	bufferevent_setcb(bev, wsock_under_read_cb, wsock_under_write_cb,
	    wsock_under_event_cb, w);
	bufferevent_setwatermark(bev, EV_WRITE, WSOCK_UNDER_HIGH / 2, 0);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	bufferevent_setcb(w->mine, wsock_mine_read_cb, wsock_mine_write_cb,
	    NULL, w);
	bufferevent_enable(w->mine, EV_READ | EV_WRITE);
	if (o->ping_interval > 0)
		timer_arm(w->ev_ping, o->ping_interval);
	/* A console opened with a session cookie ends with that session. */
	if (o->expires > 0)
		timer_arm(w->ev_expire, o->expires > time(NULL) ?
		    (unsigned int)(o->expires - time(NULL)) : 0);
	snprintf(who, sizeof who, "%s ws token=%s", o->peer, o->subject);
	if (wsock_test_observer != NULL)
		wsock_test_observer(w, w->state);
	/* A refusal calls the door before session_open() returns. */
	w->session = session_open(g, alias, w->theirs, who,
	    &wsock_doors[!w->plain][w->mode == WSOCK_V1], w,
	    o->start);
	/* Frames that came with the upgrade request. */
	if (!wsock_ended(w))
		wsock_decode(w);
}

/*
 * The browser sessions behind the live web clients of guest (a UUID-shaped
 * name is a UUID only, as guest_lookup() has it) of hypervisor hv (NULL:
 * any) and alias (NULL: any); with viewers_only, those of its viewers.
 */
void
wsock_credentials(const char *hv, const char *guest, const char *alias,
    int viewers_only, wsock_credential_cb cb, void *arg)
{
	struct wsock	*w;

	TAILQ_FOREACH(w, &wsocks, entry) {
		if (wsock_ended(w) || !w->has_session)
			continue;
		if (hv != NULL && strcmp(w->hv, hv) != 0)
			continue;
		if (guest_uuid_shaped(guest) ? strcasecmp(w->uuid,
		    guest) != 0 : strcmp(w->name, guest) != 0)
			continue;
		if (alias != NULL && strcmp(w->alias, alias) != 0)
			continue;
		if (viewers_only && w->role != SESSION_VIEWER)
			continue;
		cb(w->session_id, w->session_expires, arg);
	}
}

/* A reload removed a listener: its sessions end. */
void
wsock_listener_removed(const char *listener)
{
	struct wsock	*w, *next;

	TAILQ_FOREACH_SAFE(w, &wsocks, entry, next) {
		if (!wsock_ended(w) && w->session != NULL &&
		    strcmp(w->listener, listener) == 0)
			session_kick(w->session, REASON_LISTENER_REMOVED);
	}
}

void
wsock_shutdown(void)
{
	struct wsock	*w;

	/* NOLINTBEGIN(clang-analyzer-unix.Malloc): TAILQ, see .clang-tidy */
	while ((w = TAILQ_FIRST(&wsocks)) != NULL)
		wsock_free(w);
	/* NOLINTEND(clang-analyzer-unix.Malloc) */
}

/*
 * For the unit tests only (tests/unit/test_wsock.c), beside
 * wsock_test_observer, told of every state a connection enters (OPEN at
 * its start included).  Inject into w an event its state refuses: -1 as
 * fsm_step() returns, the bug logged and counted, nothing done.  A legal
 * event is not injected (1): it would change the state without what goes
 * with it.  *state: w's state after.
 */
int
wsock_test_inject(struct wsock *w, int event, int *state)
{
	int	r = 1;

	if (fsm_next(&wsock_fsm, w->state, event) == FSM_ILLEGAL)
		r = wsock_step(w, (enum wsock_event)event,
		    "injected by a test");
	*state = w->state;
	return r;
}

/* For the unit tests only: a linger of ms milliseconds. */
void
wsock_test_linger(unsigned int ms)
{
	wsock_linger.tv_sec = (time_t)(ms / 1000);
	wsock_linger.tv_usec = (suseconds_t)(ms % 1000) * 1000;
}
