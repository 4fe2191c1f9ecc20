/*
 * Guest consoles: one object per console of a guest (guest UUID and
 * console alias) that a client uses.  A console owns the libvirt stream
 * (through stream_ops), the input waiting to go to the guest, and the list
 * of clients attached to it; it reads the guest's output and hands it to
 * every client through one function, console_deliver().  Clients are the
 * sessions of session.c: they hear from the console only through the
 * callbacks they registered (struct console_client_ops).
 *
 *   CLOSED --open--> OPENING --opened--> OPEN --eof/stopped--> PARKED
 *      ^                |                 | ^                     |
 *      +-----failed-----+     writer_left | | writer_back         |
 *      +-----close/failed------ OPEN / DRAINING <----------+      |
 *      +----------------------------release--------------------------+
 *   CLOSED --free--> DEAD  (no client left: freed from the loop)
 *
 * DRAINING: the writer left on its own (it closed, or typed the escape
 * key) with input not yet sent; the input keeps going out, up to
 * CONSOLE_DRAIN seconds, and a new writer may take the console back.
 * PARKED: the guest is stopping, and the stream must not be closed yet
 * (see console_park()).  docs/SESSIONS.md has the diagram, checked against
 * console_table by tests/unit/test_fsmdoc.
 *
 * Input goes to the guests through one send queue of consoles, never
 * straight from a client's callback.  libvirt's remote virStreamSend() does
 * not return until the packet is written to the libvirt socket, and
 * libvirtd stops reading a connection while max_client_requests (5) stream
 * packets wait for consoles that have not taken them: a paste into a slow
 * console would otherwise block the whole loop.  So console_pump() sends
 * only while the libvirt socket holds less than CONSOLE_SEND_WINDOW unread
 * bytes (evglue_write_backlog()), in CONSOLE_SEND_CHUNK packets, one per
 * console in turn, and retries every CONSOLE_SEND_RETRY ms while it
 * cannot.  A keystroke of another console then waits for one small packet
 * to drain, not for the paste.  The stream's WRITABLE event is not used: a
 * remote stream reports it on every loop pass and it says nothing about
 * libvirtd.
 *
 * Output is always read from the stream (libvirt would otherwise queue it
 * without limit); each client decides what it keeps (session.c's
 * max_buffer rule).
 */
#include <sys/time.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/event_struct.h>

#include "virtconsoled.h"

#define CONSOLE_CHUNK		(64 * 1024)	/* virStream read unit */
#define CONSOLE_BUDGET		4	/* chunks per stream event */
#define CONSOLE_SEND_CHUNK	1024	/* bytes per packet to a guest */
#define CONSOLE_SEND_WINDOW	4096	/* unread bytes on the libvirt socket */
#define CONSOLE_SEND_RETRY	5	/* ms between tries while it is full */
#define CONSOLE_STOP_GRACE	10	/* parked stream: after the stop event */
#define CONSOLE_DRAIN		30	/* seconds for input left by a writer */

enum console_event {
	CONSOLE_EV_OPEN = 0,
	CONSOLE_EV_OPENED,
	CONSOLE_EV_FAILED,
	CONSOLE_EV_EOF,
	CONSOLE_EV_STOPPED,
	CONSOLE_EV_WRITER_LEFT,
	CONSOLE_EV_WRITER_BACK,
	CONSOLE_EV_CLOSE,
	CONSOLE_EV_RELEASE,
	CONSOLE_EV_FREE,
	CONSOLE_NEVENTS
};

static const char *const console_state_names[CONSOLE_NSTATES] = {
	[CONSOLE_CLOSED] = "CLOSED",
	[CONSOLE_OPENING] = "OPENING",
	[CONSOLE_OPEN] = "OPEN",
	[CONSOLE_DRAINING] = "DRAINING",
	[CONSOLE_PARKED] = "PARKED",
	[CONSOLE_DEAD] = "DEAD",
};

static const char *const console_event_names[CONSOLE_NEVENTS] = {
	[CONSOLE_EV_OPEN] = "open",
	[CONSOLE_EV_OPENED] = "opened",
	[CONSOLE_EV_FAILED] = "failed",
	[CONSOLE_EV_EOF] = "eof",
	[CONSOLE_EV_STOPPED] = "stopped",
	[CONSOLE_EV_WRITER_LEFT] = "writer_left",
	[CONSOLE_EV_WRITER_BACK] = "writer_back",
	[CONSOLE_EV_CLOSE] = "close",
	[CONSOLE_EV_RELEASE] = "release",
	[CONSOLE_EV_FREE] = "free",
};

/* The legal transitions; every other (state, event) is a bug. */
static const signed char console_table[CONSOLE_NSTATES][CONSOLE_NEVENTS] = {
	[CONSOLE_CLOSED] = {
		[CONSOLE_EV_OPEN] = FSM_TO(CONSOLE_OPENING),
		[CONSOLE_EV_FREE] = FSM_TO(CONSOLE_DEAD),
	},
	[CONSOLE_OPENING] = {
		[CONSOLE_EV_OPENED] = FSM_TO(CONSOLE_OPEN),
		[CONSOLE_EV_FAILED] = FSM_TO(CONSOLE_CLOSED),
	},
	[CONSOLE_OPEN] = {
		[CONSOLE_EV_FAILED] = FSM_TO(CONSOLE_CLOSED),
		[CONSOLE_EV_EOF] = FSM_TO(CONSOLE_PARKED),
		[CONSOLE_EV_STOPPED] = FSM_TO(CONSOLE_PARKED),
		[CONSOLE_EV_WRITER_LEFT] = FSM_TO(CONSOLE_DRAINING),
		[CONSOLE_EV_CLOSE] = FSM_TO(CONSOLE_CLOSED),
	},
	[CONSOLE_DRAINING] = {
		[CONSOLE_EV_FAILED] = FSM_TO(CONSOLE_CLOSED),
		[CONSOLE_EV_EOF] = FSM_TO(CONSOLE_PARKED),
		[CONSOLE_EV_STOPPED] = FSM_TO(CONSOLE_PARKED),
		[CONSOLE_EV_WRITER_BACK] = FSM_TO(CONSOLE_OPEN),
		[CONSOLE_EV_CLOSE] = FSM_TO(CONSOLE_CLOSED),
	},
	[CONSOLE_PARKED] = {
		[CONSOLE_EV_RELEASE] = FSM_TO(CONSOLE_CLOSED),
	},
};

static uint32_t	console_taken[CONSOLE_NSTATES * CONSOLE_NEVENTS];

struct fsm console_fsm = {
	"console", LOG_LEVEL_DEBUG, CONSOLE_NSTATES, CONSOLE_NEVENTS,
	console_state_names, console_event_names, &console_table[0][0],
	console_taken,
};

struct console_client {
	struct console			*console;
	const struct console_client_ops	*ops;
	void				*arg;
	char				*who;	/* "session 4", for the log */
	TAILQ_ENTRY(console_client)	 entry;
};
TAILQ_HEAD(console_clients, console_client);

struct console {
	unsigned int		 id;
	int			 state;		/* enum console_state */
	char			 uuid[GUEST_UUID_LEN];
	char			*alias;
	char			*guest;		/* the name, for the log */
	struct stream		*st;
	int			 eof;		/* seen: finish, not abort */
	struct evbuffer		*to_guest;	/* input not yet sent */
	struct console_client	*writer;	/* whose input that is */
	char			*writer_who;	/* the last writer, for the log */
	struct console_clients	 clients;
	struct event		*ev_timer;	/* drain deadline, park grace */
	TAILQ_ENTRY(console)	 entry;
	TAILQ_ENTRY(console)	 sendq_entry;	/* tqe_prev NULL: not queued */
};
TAILQ_HEAD(consoles, console);

static struct {
	struct event_base	*base;
	struct consoles		 all;		/* every console not DEAD */
	struct consoles		 sendq;		/* input waiting to go out */
	struct event		 ev_pump;	/* retry the send queue */
	struct timespec		 blocked;	/* since when it waits */
	int			 pump_blocked;
	unsigned int		 next_id;
} cons = {
	.all = TAILQ_HEAD_INITIALIZER(cons.all),
	.sendq = TAILQ_HEAD_INITIALIZER(cons.sendq),
};

static void	console_pump(void);
static void	console_maybe_free(struct console *);

static int
console_step(struct console *c, enum console_event ev, const char *why)
{
	return fsm_step(&console_fsm, &c->state, (int)ev, why,
	    "console %u guest=%s dev=%s", c->id, log_esc(c->guest),
	    log_esc(c->alias));
}

const char *
console_state_name(const struct console *c)
{
	return fsm_state_name(&console_fsm, c->state);
}

static double
console_elapsed(const struct timespec *since)
{
	struct timespec	now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - since->tv_sec) +
	    (double)(now.tv_nsec - since->tv_nsec) / 1e9;
}

static int
console_queued(const struct console *c)
{
	return c->sendq_entry.tqe_prev != NULL;
}

static void
console_unqueue(struct console *c)
{
	if (console_queued(c)) {
		TAILQ_REMOVE(&cons.sendq, c, sendq_entry);
		c->sendq_entry.tqe_prev = NULL;
	}
}

static void
console_enqueue(struct console *c)
{
	if (!console_queued(c))
		TAILQ_INSERT_TAIL(&cons.sendq, c, sendq_entry);
}

/* Stop watching the stream and let it go: finish at end of file. */
static void
console_release_stream(struct console *c)
{
	if (c->st == NULL)
		return;
	stream_ops->unwatch(c->st);
	stream_ops->close(c->st, c->eof);
	c->st = NULL;
	c->eof = 0;
}

/* Input that can no longer go out: counted in the log, dropped. */
static void
console_drop_input(struct console *c)
{
	size_t	left;

	console_unqueue(c);
	if ((left = evbuffer_get_length(c->to_guest)) == 0)
		return;
	log_info("%s: %zu bytes of input not delivered (the console is not "
	    "taking input)", c->writer_who != NULL ? c->writer_who :
	    "console", left);
	evbuffer_drain(c->to_guest, left);
}

/* Tell every client the console ended under it; they detach. */
static void
console_end_clients(struct console *c, enum session_reason reason)
{
	struct console_client	*cl, *next;

	TAILQ_FOREACH_SAFE(cl, &c->clients, entry, next)
		cl->ops->ended(cl->arg, reason);
}

static enum session_reason
console_failure_reason(void)
{
	/* A dead connection takes every stream with it. */
	return hv_get_state() == HV_CONNECTED ? REASON_CONSOLE_TAKEN :
	    REASON_HV_LOST;
}

/* The stream failed (read or send): the console closes, clients end. */
static void
console_fail(struct console *c, const char *what)
{
	log_info("console %u guest=%s dev=%s: console stream failed: %s: %s",
	    c->id, log_esc(c->guest), log_esc(c->alias), what,
	    log_esc(stream_ops->error()));
	if (console_step(c, CONSOLE_EV_FAILED, "stream failed") == -1)
		return;
	evtimer_del(c->ev_timer);
	console_drop_input(c);
	console_release_stream(c);
	console_end_clients(c, console_failure_reason());
	console_maybe_free(c);
}

static void
console_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct console	*c = arg;

	if (c->state == CONSOLE_DRAINING) {
		if (console_step(c, CONSOLE_EV_CLOSE, "input not taken in "
		    "time") == 0) {
			console_drop_input(c);
			console_release_stream(c);
			console_maybe_free(c);
		}
	} else if (c->state == CONSOLE_PARKED) {
		if (console_step(c, CONSOLE_EV_RELEASE, "stop grace over") == 0) {
			console_release_stream(c);
			console_maybe_free(c);
		}
	}
}

/*
 * A console stream whose guest is stopping is not closed at once.  libvirtd
 * (9.0, and upstream since) deadlocks when a client finishes or aborts a
 * console stream while the guest's domain object is being freed (a
 * transient guest destroyed, a guest undefined): virChrdevFree() holds the
 * guest's device lock and takes each stream's lock, while closing a stream
 * holds the stream's lock and takes the device lock
 * (virChrdevFDStreamCloseCb).  The end of file reaches us as QEMU exits,
 * before that free, which can come much later when many guests stop at
 * once and their stop jobs queue; virDomainDestroy queues the STOPPED
 * event after the free, the monitor's end-of-file path just before it.
 * So such a stream is parked, with no timer running, and finished (or
 * aborted) CONSOLE_STOP_GRACE seconds after the guest's stop (or removal)
 * event, or when the connection ends.  Found by tests/integration/t-load.py
 * (24 guests destroyed at once under 216 sessions): libvirtd hung with the
 * streams closed at their end of file, and again with a 1 s grace and a
 * 30 s fallback timer (our abort met a free still in progress).
 *
 * A parked console is out of the lookup: a client that comes for the same
 * console after the guest restarts gets a new console object.
 */
static void
console_park(struct console *c, enum console_event ev,
    enum session_reason reason)
{
	if (console_step(c, ev, session_reason_text(reason)) == -1)
		return;
	evtimer_del(c->ev_timer);
	console_drop_input(c);
	stream_ops->unwatch(c->st);
	console_end_clients(c, reason);
}

/* Guest output for every client: the one way out of the console. */
static void
console_deliver(struct console *c, const char *buf, size_t len)
{
	struct console_client	*cl, *next;

	TAILQ_FOREACH_SAFE(cl, &c->clients, entry, next)
		cl->ops->output(cl->arg, buf, len);
}

static void
console_stream_cb(struct stream *st, int events, void *arg)
{
	struct console	*c = arg;
	char		 buf[CONSOLE_CHUNK];
	int		 n, budget = CONSOLE_BUDGET;

	if (c->st != st || (c->state != CONSOLE_OPEN &&
	    c->state != CONSOLE_DRAINING))
		return;		/* a late event */
	if (!(events & (STREAM_EV_READABLE | STREAM_EV_ERROR |
	    STREAM_EV_HANGUP)))
		return;
	while (budget-- > 0) {
		n = stream_ops->recv(st, buf, sizeof buf);
		if (n == -2)
			break;
		if (n == 0) {
			c->eof = 1;
			console_park(c, CONSOLE_EV_EOF, REASON_GUEST_STOPPED);
			return;
		}
		if (n < 0) {
			console_fail(c, "read");
			return;
		}
		console_deliver(c, buf, (size_t)n);
	}
}

/* 1 when a packet can be written to libvirt now without blocking. */
static int
console_can_send(void)
{
	return evglue_write_backlog() + CONSOLE_SEND_CHUNK <=
	    CONSOLE_SEND_WINDOW;
}

/*
 * Send one packet of a console's input.  1: sent, or nothing to send;
 * 0: the stream cannot take it now; -1: the stream failed (the console is
 * closed).
 */
static int
console_send_chunk(struct console *c)
{
	unsigned char	*p;
	size_t		 len;
	int		 n;

	if ((len = evbuffer_get_length(c->to_guest)) == 0)
		return 1;
	if (len > CONSOLE_SEND_CHUNK)
		len = CONSOLE_SEND_CHUNK;
	p = evbuffer_pullup(c->to_guest, (ssize_t)len);
	n = stream_ops->send(c->st, (const char *)p, len);
	if (n == -2)
		return 0;	/* a local stream that is full */
	if (n < 0) {
		console_fail(c, "send");
		return -1;
	}
	evbuffer_drain(c->to_guest, (size_t)n);
	if (c->writer != NULL)
		c->writer->ops->input_sent(c->writer->arg, (size_t)n,
		    evbuffer_get_length(c->to_guest));
	return 1;
}

static void
console_pump_cb(evutil_socket_t fd, short what, void *arg)
{
	console_pump();
}

/* The input of a writer that left is out: the stream goes. */
static void
console_drained(struct console *c)
{
	if (console_step(c, CONSOLE_EV_CLOSE, "input delivered") == -1)
		return;
	evtimer_del(c->ev_timer);
	console_release_stream(c);
	console_maybe_free(c);
}

/* One packet per waiting console in turn, while libvirt takes them. */
static void
console_pump(void)
{
	struct timeval	 tv = { 0, CONSOLE_SEND_RETRY * 1000 };
	struct console	*c;
	int		 r;

	while ((c = TAILQ_FIRST(&cons.sendq)) != NULL) {
		if (!console_can_send())
			break;
		console_unqueue(c);
		if ((r = console_send_chunk(c)) < 0)
			continue;	/* closed */
		if (evbuffer_get_length(c->to_guest) > 0)
			console_enqueue(c);
		else if (c->state == CONSOLE_DRAINING)
			console_drained(c);
		if (r == 0)
			break;
	}
	if (TAILQ_EMPTY(&cons.sendq)) {
		if (cons.pump_blocked)
			log_debug("console: input to the consoles flows again "
			    "after %.2fs", console_elapsed(&cons.blocked));
		cons.pump_blocked = 0;
		return;
	}
	if (!cons.pump_blocked) {
		cons.pump_blocked = 1;
		clock_gettime(CLOCK_MONOTONIC, &cons.blocked);
	}
	evtimer_add(&cons.ev_pump, &tv);
}

/* Queue the console's input and try to send it. */
static void
console_kick_pump(struct console *c)
{
	if ((c->state != CONSOLE_OPEN && c->state != CONSOLE_DRAINING) ||
	    evbuffer_get_length(c->to_guest) == 0)
		return;
	console_enqueue(c);
	if (!cons.pump_blocked)
		console_pump();
}

/*
 * The console of guest uuid, alias (name for the log), found or created
 * CLOSED.  Parked and dead consoles are not found.
 */
struct console *
console_get(const char *uuid, const char *alias, const char *name)
{
	struct console	*c;

	TAILQ_FOREACH(c, &cons.all, entry) {
		if (c->state != CONSOLE_PARKED && strcmp(c->uuid, uuid) == 0 &&
		    strcmp(c->alias, alias) == 0)
			return c;
	}
	c = xcalloc(1, sizeof *c);
	c->id = ++cons.next_id;
	c->state = CONSOLE_CLOSED;
	(void)snprintf(c->uuid, sizeof c->uuid, "%s", uuid);
	c->alias = xstrdup(alias);
	c->guest = xstrdup(name);
	TAILQ_INIT(&c->clients);
	if ((c->to_guest = evbuffer_new()) == NULL ||
	    (c->ev_timer = evtimer_new(cons.base, console_timer_cb, c)) ==
	    NULL)
		fatalx("console: out of memory");
	TAILQ_INSERT_TAIL(&cons.all, c, entry);
	return c;
}

static void
console_free_cb(evutil_socket_t fd, short what, void *arg)
{
	struct console	*c = arg;

	evbuffer_free(c->to_guest);
	free(c->alias);
	free(c->guest);
	free(c->writer_who);
	free(c);
}

/* Destroy now, free later: a closed console nobody uses. */
static void
console_maybe_free(struct console *c)
{
	struct timeval	now = { 0, 0 };

	if (c->state != CONSOLE_CLOSED || !TAILQ_EMPTY(&c->clients))
		return;
	if (console_step(c, CONSOLE_EV_FREE, "unused") == -1)
		return;
	TAILQ_REMOVE(&cons.all, c, entry);
	event_free(c->ev_timer);
	c->ev_timer = NULL;
	if (event_base_once(cons.base, -1, EV_TIMEOUT, console_free_cb, c,
	    &now) == -1)
		log_warnx("console %u: cannot defer its free", c->id);
}

/* A client of the console: it hears from it through ops, with arg. */
struct console_client *
console_attach(struct console *c, const struct console_client_ops *ops,
    void *arg, const char *who)
{
	struct console_client	*cl;

	cl = xcalloc(1, sizeof *cl);
	cl->console = c;
	cl->ops = ops;
	cl->arg = arg;
	cl->who = xstrdup(who);
	TAILQ_INSERT_TAIL(&c->clients, cl, entry);
	return cl;
}

/*
 * Open the console's stream for a client (force: take it from another
 * holder).  0: open (or already open); -1 with *reason: refused.
 */
int
console_open(struct console_client *cl, int force,
    enum session_reason *reason)
{
	struct console		*c = cl->console;
	enum stream_open_result	 result;
	static const enum session_reason reasons[] = {
		[STREAM_NO_GUEST] = REASON_UNKNOWN_GUEST,
		[STREAM_NOT_RUNNING] = REASON_NOT_RUNNING,
		[STREAM_BUSY] = REASON_BUSY,
	};

	if (c->state == CONSOLE_OPEN)
		return 0;
	if (c->state == CONSOLE_DRAINING) {
		if (console_step(c, CONSOLE_EV_WRITER_BACK, cl->who) == -1) {
			*reason = REASON_BUSY;
			return -1;
		}
		evtimer_del(c->ev_timer);
		return 0;
	}
	if (console_step(c, CONSOLE_EV_OPEN, cl->who) == -1) {
		*reason = REASON_BUSY;
		return -1;
	}
	if ((c->st = stream_ops->open(c->uuid, c->alias, force,
	    &result)) == NULL) {
		*reason = result > STREAM_OPENED && result <= STREAM_BUSY ?
		    reasons[result] : REASON_BUSY;
		(void)console_step(c, CONSOLE_EV_FAILED, "open refused");
		return -1;
	}
	if (stream_ops->watch(c->st, STREAM_EV_READABLE | STREAM_EV_ERROR |
	    STREAM_EV_HANGUP, console_stream_cb, c) == -1) {
		log_warnx("console %u guest=%s dev=%s: cannot watch the "
		    "console stream: %s", c->id, log_esc(c->guest),
		    log_esc(c->alias), log_esc(stream_ops->error()));
		stream_ops->close(c->st, 0);
		c->st = NULL;
		*reason = REASON_BUSY;
		(void)console_step(c, CONSOLE_EV_FAILED, "cannot watch");
		return -1;
	}
	(void)console_step(c, CONSOLE_EV_OPENED, "stream open");
	return 0;
}

/* The client's input: n bytes from buf join the console's queue. */
void
console_input(struct console_client *cl, struct evbuffer *buf, size_t n)
{
	struct console	*c = cl->console;

	if (c->writer != cl) {
		c->writer = cl;
		free(c->writer_who);
		c->writer_who = xstrdup(cl->who);
	}
	evbuffer_remove_buffer(buf, c->to_guest, n);
	console_kick_pump(c);
}

/* Input of this console not yet sent to the guest. */
size_t
console_input_pending(const struct console_client *cl)
{
	return evbuffer_get_length(cl->console->to_guest);
}

/*
 * A client leaves.  With drain (it left on its own), its input not yet
 * sent keeps going to the guest; otherwise what libvirt takes at once goes
 * out and the rest is dropped.  The last client out closes the stream.
 */
void
console_detach(struct console_client *cl, int drain)
{
	struct console	*c = cl->console;

	TAILQ_REMOVE(&c->clients, cl, entry);
	if (c->writer == cl)
		c->writer = NULL;
	free(cl->who);
	free(cl);
	if (c->state != CONSOLE_OPEN || !TAILQ_EMPTY(&c->clients)) {
		console_maybe_free(c);
		return;
	}
	if (drain && evbuffer_get_length(c->to_guest) > 0) {
		if (console_step(c, CONSOLE_EV_WRITER_LEFT, "input left to "
		    "send") == 0) {
			timer_arm(c->ev_timer, CONSOLE_DRAIN);
			console_kick_pump(c);
		}
		return;
	}
	/* The bytes typed before the end go out as far as libvirt takes
	 * them without blocking. */
	console_unqueue(c);
	while (evbuffer_get_length(c->to_guest) > 0 && console_can_send())
		if (console_send_chunk(c) <= 0)
			break;
	if (c->state != CONSOLE_OPEN)
		return;		/* failed while sending: already closed */
	if (console_step(c, CONSOLE_EV_CLOSE, "no client left") == -1)
		return;
	console_drop_input(c);
	console_release_stream(c);
	console_maybe_free(c);
}

/*
 * The guest stopped (or went away, or migrated): its open consoles park
 * their streams and end their clients with reason; every parked stream of
 * the guest goes CONSOLE_STOP_GRACE seconds from now.
 */
void
console_guest_stopped(const char *uuid, enum session_reason reason)
{
	struct console	*c, *next;

	TAILQ_FOREACH_SAFE(c, &cons.all, entry, next) {
		if (strcmp(c->uuid, uuid) != 0)
			continue;
		if (c->state == CONSOLE_OPEN || c->state == CONSOLE_DRAINING)
			console_park(c, CONSOLE_EV_STOPPED, reason);
		if (c->state == CONSOLE_PARKED)
			timer_arm(c->ev_timer, CONSOLE_STOP_GRACE);
	}
}

/*
 * The connection is gone, or the daemon stops: clients have been ended;
 * input left by writers that are gone is not for this connection, and no
 * stop event will come for the parked streams.
 */
void
console_close_all(void)
{
	struct console	*c, *next;

	TAILQ_FOREACH_SAFE(c, &cons.all, entry, next) {
		if (c->state == CONSOLE_DRAINING) {
			if (console_step(c, CONSOLE_EV_CLOSE, "connection "
			    "ended") == -1)
				continue;
			console_drop_input(c);
		} else if (c->state == CONSOLE_PARKED) {
			if (console_step(c, CONSOLE_EV_RELEASE, "connection "
			    "ended") == -1)
				continue;
		} else
			continue;
		evtimer_del(c->ev_timer);
		console_release_stream(c);
		console_maybe_free(c);
	}
}

/* Consoles not yet freed, in any state. */
unsigned int
console_count(void)
{
	struct console	*c;
	unsigned int	 n = 0;

	TAILQ_FOREACH(c, &cons.all, entry)
		n++;
	return n;
}

void
console_init(struct event_base *base)
{
	cons.base = base;
	evtimer_assign(&cons.ev_pump, base, console_pump_cb, NULL);
}
