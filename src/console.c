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
 *     ^  ^                |                 |                       |
 *     |  +-----failed-----+                 |                       |
 *     +------------------close/failed-------+                       |
 *     +-----------------------------release-------------------------+
 *   CLOSED --free--> DEAD  (no client left: freed from the loop)
 *
 *   captured (capture = always):
 *   OPENING/OPEN --taken--> STOLEN --retry--> OPENING  (held elsewhere)
 *   OPENING/OPEN --lost--> BACKOFF --retry--> OPENING  (connection lost)
 *   STOLEN/BACKOFF --close--> CLOSED  (the capture ends)
 *
 * The stream is open while the console has a client, or while the daemon
 * captures it (capture = always: every console of every running guest is
 * held and read into its history with nobody attached).  The capture is
 * not a client: it is the flag `captured`, so the session table, `list`
 * and `busy` know nothing of it.  Its opens never use force: a console
 * held elsewhere (virsh console, or taken from us with --force) is
 * STOLEN, and tried again without force after 1 s, doubling to
 * CONSOLE_BACKOFF_MAX, and at once on the guest's next lifecycle event.
 * A console libvirt cannot open at all is left until the guest's next
 * run (logged once).  Each client's input
 * waits in its own buffer, and the clients' buffers go out in the order
 * the clients came: a writer that left with input not yet sent (a session
 * DRAINING) stays a client until it is out, and a client that comes
 * meanwhile is served after it.  PARKED: the guest is stopping, and the
 * stream must not be closed yet (see console_park()).  docs/SESSIONS.md
 * has the diagram, checked against console_table by tests/unit/test_fsmdoc.
 *
 * Input goes to the guests through one send queue of consoles, never
 * straight from a client's callback.  libvirt's remote virStreamSend() does
 * not return until the packet is written to the libvirt socket, and
 * libvirtd stops reading a connection while max_client_requests (5) stream
 * packets wait for consoles that have not taken them: a paste into a slow
 * console would otherwise block the whole loop.  So console_pump() sends
 * to a console only while its guest's connection takes a packet without
 * blocking (stream_ops->can_send(): its socket holds less than a few KiB
 * that libvirtd has not read), in CONSOLE_SEND_CHUNK packets, one per
 * console in turn; a console that cannot holds up no other.  A keystroke
 * of another console then waits for one small packet to drain, not for the
 * paste.  Consoles that cannot send are asked again after
 * CONSOLE_SEND_RETRY ms, the wait doubling while no input moves anywhere,
 * up to CONSOLE_SEND_RETRY_MAX.  No event says that the window opened: the
 * stream's WRITABLE event comes on every loop pass and says nothing about
 * libvirtd, and a send buffer small enough that the socket's writability
 * would say it stalls libvirt's own writes (hv.c, hv_link_open_run()).
 *
 * Output is always read from the stream (libvirt would otherwise queue it
 * without limit); each client decides what it keeps (session.c's
 * max_buffer rule).
 */
#include <sys/param.h>
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
#define CONSOLE_BUDGET		4	/* reads per stream event */
#define CONSOLE_SEND_CHUNK	1024	/* bytes per packet to a guest */
#define CONSOLE_SEND_RETRY	5	/* ms between tries while it is full */
#define CONSOLE_SEND_RETRY_MAX	200	/* ms: doubled up to this while
					   nothing moves */
#define CONSOLE_STOP_GRACE	10	/* parked stream: after the stop event */
#define CONSOLE_RUN_NONE	(~0ULL)	/* a history that saw no run yet */

enum console_event {
	CONSOLE_EV_OPEN = 0,
	CONSOLE_EV_OPENED,
	CONSOLE_EV_FAILED,
	CONSOLE_EV_EOF,
	CONSOLE_EV_STOPPED,
	CONSOLE_EV_CLOSE,
	CONSOLE_EV_RELEASE,
	CONSOLE_EV_FREE,
	CONSOLE_EV_TAKEN,	/* captured: another client holds it */
	CONSOLE_EV_LOST,	/* captured: its connection dropped */
	CONSOLE_EV_RETRY,	/* try a captured console again */
	CONSOLE_NEVENTS
};

static const char *const console_state_names[CONSOLE_NSTATES] = {
	[CONSOLE_CLOSED] = "CLOSED",
	[CONSOLE_OPENING] = "OPENING",
	[CONSOLE_OPEN] = "OPEN",
	[CONSOLE_PARKED] = "PARKED",
	[CONSOLE_STOLEN] = "STOLEN",
	[CONSOLE_BACKOFF] = "BACKOFF",
	[CONSOLE_DEAD] = "DEAD",
};

static const char *const console_event_names[CONSOLE_NEVENTS] = {
	[CONSOLE_EV_OPEN] = "open",
	[CONSOLE_EV_OPENED] = "opened",
	[CONSOLE_EV_FAILED] = "failed",
	[CONSOLE_EV_EOF] = "eof",
	[CONSOLE_EV_STOPPED] = "stopped",
	[CONSOLE_EV_CLOSE] = "close",
	[CONSOLE_EV_RELEASE] = "release",
	[CONSOLE_EV_FREE] = "free",
	[CONSOLE_EV_TAKEN] = "taken",
	[CONSOLE_EV_LOST] = "lost",
	[CONSOLE_EV_RETRY] = "retry",
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
		[CONSOLE_EV_CLOSE] = FSM_TO(CONSOLE_CLOSED),
		[CONSOLE_EV_TAKEN] = FSM_TO(CONSOLE_STOLEN),
		[CONSOLE_EV_LOST] = FSM_TO(CONSOLE_BACKOFF),
	},
	[CONSOLE_OPEN] = {
		[CONSOLE_EV_FAILED] = FSM_TO(CONSOLE_CLOSED),
		[CONSOLE_EV_EOF] = FSM_TO(CONSOLE_PARKED),
		[CONSOLE_EV_STOPPED] = FSM_TO(CONSOLE_PARKED),
		[CONSOLE_EV_CLOSE] = FSM_TO(CONSOLE_CLOSED),
		[CONSOLE_EV_TAKEN] = FSM_TO(CONSOLE_STOLEN),
		[CONSOLE_EV_LOST] = FSM_TO(CONSOLE_BACKOFF),
	},
	[CONSOLE_PARKED] = {
		[CONSOLE_EV_RELEASE] = FSM_TO(CONSOLE_CLOSED),
	},
	[CONSOLE_STOLEN] = {
		[CONSOLE_EV_RETRY] = FSM_TO(CONSOLE_OPENING),
		[CONSOLE_EV_CLOSE] = FSM_TO(CONSOLE_CLOSED),
	},
	[CONSOLE_BACKOFF] = {
		[CONSOLE_EV_RETRY] = FSM_TO(CONSOLE_OPENING),
		[CONSOLE_EV_CLOSE] = FSM_TO(CONSOLE_CLOSED),
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
	char				*mark;	/* who, for console log markers */
	int				 marked; /* "client attached" written */
	struct evbuffer			*input;	/* not yet sent to the guest */
	struct lat_stream		 in_lat;	/* its chunks, timed
							   to_guest */
	struct lat_hist			*send_h; /* its virStreamSend()s */
	TAILQ_ENTRY(console_client)	 entry;
};
TAILQ_HEAD(console_clients, console_client);

struct console {
	unsigned int		 id;
	int			 state;		/* enum console_state */
	char			 hv[CONFIG_HV_NAME_MAX + 1];	/* its name */
	char			 uuid[GUEST_UUID_LEN];
	char			*alias;
	char			*guest;		/* the name, for the log */
	struct stream		*st;
	int			 eof;		/* seen: finish, not abort */
	int			 logged;	/* its log said it opened */
	struct console_history	*hist;		/* what it printed */
	unsigned long long	 run;		/* the guest's domain id */
	struct console_clients	 clients;	/* in the order they came */
	int			 captured;	/* capture = always holds it */
	int			 open_force;	/* the open under way forces */
	int			 force_wanted;	/* a client asked force since */
	unsigned int		 backoff;	/* last capture wait, units */
	struct event		*ev_timer;	/* park grace, capture retry */
	TAILQ_ENTRY(console)	 entry;
	TAILQ_ENTRY(console)	 sendq_entry;	/* tqe_prev NULL: not queued */
};
TAILQ_HEAD(consoles, console);

/*
 * A console's history outlives the console object (which exists only
 * while a client uses it): one per guest console, found by UUID and
 * alias, freed when the guest is gone for good.  A console object holds
 * one reference while it exists.
 */
struct console_history {
	char				 hv[CONFIG_HV_NAME_MAX + 1];
	char				 uuid[GUEST_UUID_LEN];
	char				*alias;
	struct history			*h;
	struct clog			*log;	/* console_log_dir's file */
	unsigned long long		 run;	/* domain id of its current run */
	unsigned long long		 no_capture; /* run libvirt cannot
						   open it in (capture) */
	unsigned int			 refs;	/* console objects */
	int				 gone;	/* out of the table */
	TAILQ_ENTRY(console_history)	 entry;
};
TAILQ_HEAD(console_histories, console_history);

static struct {
	struct event_base	*base;
	struct consoles		 all;		/* every console not DEAD */
	struct consoles		 sendq;		/* input waiting to go out */
	struct event		 ev_pump;	/* retry the send queue */
	struct timespec		 blocked;	/* since when it waits */
	int			 pump_blocked;	/* some console waits */
	unsigned int		 retry_ms;	/* the pump's next poll */
	unsigned int		 next_id;
	struct console_histories histories;
	size_t			 history;	/* limits from the config */
	size_t			 history_head;
	unsigned int		 history_runs;
	enum config_capture	 capture;
	unsigned int		 backoff_unit;	/* ms: 1000 but in tests */
} cons = {
	.backoff_unit = 1000,
	.histories = TAILQ_HEAD_INITIALIZER(cons.histories),
	.history = 256 * 1024,
	.history_head = 64 * 1024,
	.history_runs = 2,
	.all = TAILQ_HEAD_INITIALIZER(cons.all),
	.sendq = TAILQ_HEAD_INITIALIZER(cons.sendq),
};

static void	console_pump(void);
static void	console_maybe_free(struct console *);
static void	console_opened(struct stream *, enum stream_open_result,
		    void *);
static void	console_capture_open(struct console *, enum console_event,
		    const char *);

static int
console_step(struct console *c, enum console_event ev, const char *why)
{
	return fsm_step(&console_fsm, &c->state, (int)ev, why,
	    "console %u guest=%s dev=%s", c->id, log_esc(c->guest),
	    log_esc(c->alias));
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

/* The console log says a client came (once it has the console open). */
static void
console_mark_attached(struct console_client *cl)
{
	if (cl->marked)
		return;
	cl->marked = 1;
	clog_mark(cl->console->hist->log, "client attached %s", cl->mark);
}

static void
console_mark_detached(struct console_client *cl)
{
	if (!cl->marked)
		return;
	cl->marked = 0;
	clog_mark(cl->console->hist->log, "client detached %s", cl->mark);
}

/*
 * Stop watching the stream and let it go: finish at end of file.  The
 * console log ends here too, until the next open: its clients' detach
 * markers first, then `console closed`.
 */
static void
console_release_stream(struct console *c)
{
	struct console_client	*cl;

	if (c->st == NULL)
		return;
	TAILQ_FOREACH(cl, &c->clients, entry)
		console_mark_detached(cl);
	if (c->logged) {
		clog_mark(c->hist->log, "console closed");
		clog_close(c->hist->log);
		c->logged = 0;
	}
	stream_ops->unwatch(c->st);
	stream_ops->close(c->st, c->eof);
	c->st = NULL;
	c->eof = 0;
}

/* A client's input that can no longer go out: counted in the log. */
static void
console_drop_input(struct console_client *cl)
{
	size_t	left;

	if ((left = evbuffer_get_length(cl->input)) == 0)
		return;
	log_info("%s: %zu bytes of input not delivered (the console is not "
	    "taking input)", cl->who, left);
	evbuffer_drain(cl->input, left);
	lat_stream_drop(&cl->in_lat, left);	/* never sent: not timed */
}

static void
console_drop_all_input(struct console *c)
{
	struct console_client	*cl;

	console_unqueue(c);
	TAILQ_FOREACH(cl, &c->clients, entry)
		console_drop_input(cl);
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
console_failure_reason(struct console *c)
{
	static const enum session_reason reasons[] = {
		[STREAM_FAIL_TAKEN] = REASON_CONSOLE_TAKEN,
		[STREAM_FAIL_LINK_LOST] = REASON_CONSOLE_LOST,
		[STREAM_FAIL_HV_LOST] = REASON_HV_LOST,
	};
	enum stream_failure	f = stream_ops->failure(c->st);

	return (unsigned)f < sizeof reasons / sizeof reasons[0] ?
	    reasons[f] : REASON_CONSOLE_TAKEN;
}

/* The capture lets go of the console; its state is the caller's. */
static void
console_capture_drop(struct console *c, const char *why)
{
	if (!c->captured)
		return;
	c->captured = 0;
	c->backoff = 0;
	log_info("console %u guest=%s dev=%s: capture ends (%s)", c->id,
	    log_esc(c->guest), log_esc(c->alias), why);
}

/* Seconds before the next capture retry: 1, doubling to the max. */
unsigned int
console_backoff_next(unsigned int prev)
{
	if (prev == 0)
		return 1;
	return prev >= CONSOLE_BACKOFF_MAX / 2 ? CONSOLE_BACKOFF_MAX :
	    prev * 2;
}

/* A captured console that is not open: try again later, never forced. */
static void
console_backoff_arm(struct console *c, const char *why)
{
	struct timeval		tv;
	unsigned long long	ms;

	c->backoff = console_backoff_next(c->backoff);
	ms = (unsigned long long)c->backoff * cons.backoff_unit;
	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)(ms % 1000 * 1000);
	evtimer_add(c->ev_timer, &tv);
	log_info("console %u guest=%s dev=%s: capture: %s; trying again "
	    "without force in %u s", c->id, log_esc(c->guest),
	    log_esc(c->alias), why, c->backoff);
}

/*
 * The stream failed (read or send): the clients end.  A captured console
 * taken by another client (virsh console --force) is STOLEN, one whose own
 * connection dropped waits in BACKOFF: either is tried again later, and
 * the loss is recorded in its history.  Any other failure closes it.
 */
static void
console_fail(struct console *c, const char *what)
{
	enum session_reason	reason;
	enum console_event	ev = CONSOLE_EV_FAILED;

	log_info("console %u guest=%s dev=%s: console stream failed: %s: %s",
	    c->id, log_esc(c->guest), log_esc(c->alias), what,
	    log_esc(stream_ops->error()));
	reason = console_failure_reason(c);
	if (c->captured && reason == REASON_CONSOLE_TAKEN)
		ev = CONSOLE_EV_TAKEN;
	else if (c->captured && reason == REASON_CONSOLE_LOST)
		ev = CONSOLE_EV_LOST;
	if (console_step(c, ev, "stream failed") == -1)
		return;
	console_drop_all_input(c);
	console_release_stream(c);
	if (ev == CONSOLE_EV_FAILED)
		console_capture_drop(c, "the hypervisor connection is gone");
	else {
		history_gap(c->hist->h);
		console_backoff_arm(c, ev == CONSOLE_EV_TAKEN ?
		    "taken by another client" : "its connection dropped");
	}
	console_end_clients(c, reason);
	console_maybe_free(c);
}

static void
console_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct console	*c = arg;

	if (c->state == CONSOLE_STOLEN || c->state == CONSOLE_BACKOFF) {
		console_capture_open(c, CONSOLE_EV_RETRY, "backoff over");
		return;
	}
	if (console_step(c, CONSOLE_EV_RELEASE, "stop grace over") == 0) {
		console_release_stream(c);
		console_maybe_free(c);
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
	if (console_step(c, ev, ev == CONSOLE_EV_EOF ? "end of file" :
	    "the guest stops") == -1)
		return;
	clog_mark(c->hist->log, "guest stopped run=%llx",
	    (unsigned long long)history_run(c->hist->h));
	/* The guest's next run is captured by a console object of its own. */
	console_capture_drop(c, "the guest stops");
	console_drop_all_input(c);
	stream_ops->unwatch(c->st);
	console_end_clients(c, reason);
}

/* Guest output for every client: the one way out of the console. */
static void
console_deliver(struct console *c, const char *buf, size_t len, uint64_t t0)
{
	struct console_client	*cl, *next;

	history_append(c->hist->h, buf, len);
	clog_write(c->hist->log, buf, len);
	TAILQ_FOREACH_SAFE(cl, &c->clients, entry, next)
		cl->ops->output(cl->arg, buf, len, t0);
}

static void
console_stream_cb(struct stream *st, int events, void *arg)
{
	struct console	*c = arg;
	char		 buf[CONSOLE_CHUNK];
	size_t		 have = 0;
	uint64_t	 t0 = 0;
	int		 n, budget = CONSOLE_BUDGET;

	if (c->st != st || c->state != CONSOLE_OPEN)
		return;		/* a late event */
	if (!(events & (STREAM_EV_READABLE | STREAM_EV_ERROR |
	    STREAM_EV_HANGUP)))
		return;
	/*
	 * What libvirt holds already (a packet per recv) is taken in one go
	 * and delivered as one chunk: one frame, one write for each client
	 * (a serial port's packets are often a few bytes each).  Nothing is
	 * waited for.  Its residence starts at the first read.
	 */
	while (budget-- > 0 && have < sizeof buf) {
		n = stream_ops->recv(st, buf + have, sizeof buf - have);
		if (n == -2)
			break;
		if (n <= 0) {
			if (have > 0)
				console_deliver(c, buf, have, t0);
			if (c->st != st || c->state != CONSOLE_OPEN)
				return;		/* a client's callback closed it */
			if (n == 0) {
				c->eof = 1;
				console_park(c, CONSOLE_EV_EOF,
				    REASON_GUEST_STOPPED);
			} else
				console_fail(c, "read");
			return;
		}
		if (have == 0)
			t0 = lat_now();
		have += (size_t)n;
	}
	if (have > 0)
		console_deliver(c, buf, have, t0);
}

/* 1 when a packet can go to this console's guest now without blocking. */
static int
console_can_send(struct console *c)
{
	return c->st != NULL && stream_ops->can_send(c->st,
	    CONSOLE_SEND_CHUNK);
}

/* The first client, in the order they came, with input to send. */
static struct console_client *
console_next_input(const struct console *c)
{
	struct console_client	*cl;

	TAILQ_FOREACH(cl, &c->clients, entry)
		if (evbuffer_get_length(cl->input) > 0)
			return cl;
	return NULL;
}

/*
 * Send one packet of a client's input: *sent bytes of it.  1: sent, or
 * nothing to send; 0: the stream cannot take it now; -1: the stream failed
 * (the console is closed, its clients ended).
 */
static int
console_send_packet(struct console *c, struct console_client *cl,
    size_t *sent)
{
	unsigned char	*p;
	size_t		 len;
	uint64_t	 t;
	int		 n;

	*sent = 0;
	if ((len = evbuffer_get_length(cl->input)) == 0)
		return 1;
	if (len > CONSOLE_SEND_CHUNK)
		len = CONSOLE_SEND_CHUNK;
	p = evbuffer_pullup(cl->input, (ssize_t)len);
	/*
	 * The call alone is timed too: the part of the to_guest residence
	 * that is libvirt's client sending the packet (send_h).
	 */
	t = lat_now();
	n = stream_ops->send(c->st, (const char *)p, len);
	if (n >= 0 && cl->send_h != NULL)
		lat_add(cl->send_h, lat_now() - t);
	if (n == -2)
		return 0;	/* a local stream that is full */
	if (n < 0) {
		console_fail(c, "send");
		return -1;
	}
	evbuffer_drain(cl->input, (size_t)n);
	*sent = (size_t)n;
	/* virStreamSend() returned: the input in this packet is out. */
	lat_stream_gone(&cl->in_lat, (uint64_t)n);
	return 1;
}

/* One packet of the console's input, from the first client that has some. */
static int
console_send_chunk(struct console *c)
{
	struct console_client	*cl;
	size_t			 sent;
	int			 r;

	if ((cl = console_next_input(c)) == NULL)
		return 1;
	if ((r = console_send_packet(c, cl, &sent)) == 1 && sent > 0)
		/* The client may detach here (its input is out). */
		cl->ops->input_sent(cl->arg, sent,
		    evbuffer_get_length(cl->input));
	return r;
}

static void
console_pump_cb(evutil_socket_t fd, short what, void *arg)
{
	console_pump();
}

/*
 * One packet per waiting console in turn, while their connections take
 * them; a console whose connection does not (a stuck guest) waits and
 * holds up no other.
 */
static void
console_pump(void)
{
	struct timeval	 tv;
	struct console	*c;
	unsigned int	 n, sent, moved = 0;
	int		 r;

	do {
		sent = 0;
		n = 0;
		TAILQ_FOREACH(c, &cons.sendq, sendq_entry)
			n++;
		while (n-- > 0 && (c = TAILQ_FIRST(&cons.sendq)) != NULL) {
			console_unqueue(c);
			if (!console_can_send(c)) {
				console_enqueue(c);	/* asked again */
				continue;
			}
			if ((r = console_send_chunk(c)) < 0)
				continue;	/* closed */
			if (r == 1)
				sent++;		/* else a local stream, full */
			if (c->state == CONSOLE_OPEN &&
			    console_next_input(c) != NULL)
				console_enqueue(c);
		}
		moved += sent;
	} while (sent > 0 && !TAILQ_EMPTY(&cons.sendq));
	/*
	 * Polled every CONSOLE_SEND_RETRY ms while input moves, the wait
	 * doubles while none does, up to CONSOLE_SEND_RETRY_MAX: a console
	 * stuck for long costs a few wake-ups a second (t-metrics case 9).
	 */
	if (moved > 0 || cons.retry_ms == 0)
		cons.retry_ms = CONSOLE_SEND_RETRY;
	else
		cons.retry_ms = MIN(cons.retry_ms * 2, CONSOLE_SEND_RETRY_MAX);
	if (TAILQ_EMPTY(&cons.sendq)) {
		cons.retry_ms = CONSOLE_SEND_RETRY;
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
	tv.tv_sec = 0;
	tv.tv_usec = (suseconds_t)cons.retry_ms * 1000;
	evtimer_add(&cons.ev_pump, &tv);
}

/*
 * The console of guest uuid, alias (name for the log), found or created
 * CLOSED.  Parked and dead consoles are not found.
 */
static struct console_history *
console_history_lookup(const char *hv, const char *uuid, const char *alias)
{
	struct console_history	*ch;

	TAILQ_FOREACH(ch, &cons.histories, entry) {
		if (strcmp(ch->uuid, uuid) == 0 && strcmp(ch->hv, hv) == 0 &&
		    strcmp(ch->alias, alias) == 0)
			return ch;
	}
	return NULL;
}

static struct console_history *
console_history_get(const char *hv, const char *uuid, const char *alias,
    const char *name)
{
	struct console_history	*ch;

	if ((ch = console_history_lookup(hv, uuid, alias)) != NULL)
		return ch;
	ch = xcalloc(1, sizeof *ch);
	(void)snprintf(ch->hv, sizeof ch->hv, "%s", hv);
	(void)snprintf(ch->uuid, sizeof ch->uuid, "%s", uuid);
	ch->alias = xstrdup(alias);
	if ((ch->h = history_new(cons.history, cons.history_head,
	    cons.history_runs)) == NULL)
		fatal("console: history_new");
	ch->log = clog_new(hv, uuid, alias, name);
	ch->run = CONSOLE_RUN_NONE;
	ch->no_capture = CONSOLE_RUN_NONE;
	TAILQ_INSERT_TAIL(&cons.histories, ch, entry);
	return ch;
}

static void
console_history_put(struct console_history *ch)
{
	if (--ch->refs > 0 || !ch->gone)
		return;
	history_free(ch->h);
	clog_free(ch->log);
	free(ch->alias);
	free(ch);
}

/* Whether c is guest (hv, uuid)'s console alias. */
static int
console_is(const struct console *c, const char *hv, const char *uuid,
    const char *alias)
{
	return strcmp(c->uuid, uuid) == 0 && strcmp(c->hv, hv) == 0 &&
	    (alias == NULL || strcmp(c->alias, alias) == 0);
}

/*
 * The console of guest (hypervisor hv, uuid), alias (name for the log) in
 * the guest's run `run` (its domain id), found or created CLOSED.  Parked
 * and dead consoles are not found.
 */
struct console *
console_get(const char *hv, const char *uuid, const char *alias,
    const char *name, unsigned long long run)
{
	struct console	*c;

	TAILQ_FOREACH(c, &cons.all, entry) {
		if (c->state != CONSOLE_PARKED &&
		    console_is(c, hv, uuid, alias)) {
			c->run = run;
			return c;
		}
	}
	c = xcalloc(1, sizeof *c);
	c->id = ++cons.next_id;
	c->state = CONSOLE_CLOSED;
	(void)snprintf(c->hv, sizeof c->hv, "%s", hv);
	(void)snprintf(c->uuid, sizeof c->uuid, "%s", uuid);
	c->alias = xstrdup(alias);
	c->guest = xstrdup(name);
	c->run = run;
	c->hist = console_history_get(hv, uuid, alias, name);
	c->hist->refs++;
	TAILQ_INIT(&c->clients);
	if ((c->ev_timer = evtimer_new(cons.base, console_timer_cb, c)) ==
	    NULL)
		fatalx("console: out of memory");
	TAILQ_INSERT_TAIL(&cons.all, c, entry);
	return c;
}

static void
console_free_cb(evutil_socket_t fd, short what, void *arg)
{
	struct console	*c = arg;

	console_history_put(c->hist);
	free(c->alias);
	free(c->guest);
	free(c);
}

/* Destroy now, free later: a closed console nobody uses. */
static void
console_maybe_free(struct console *c)
{
	struct timeval	now = { 0, 0 };

	if (c->state != CONSOLE_CLOSED || !TAILQ_EMPTY(&c->clients) ||
	    c->captured)
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

/*
 * A client of the console: it hears from it through ops, with arg.  Its
 * input's residence goes into to_guest, the time of the virStreamSend()
 * calls that carry it into send_call (either NULL: not timed).
 */
struct console_client *
console_attach(struct console *c, const struct console_client_ops *ops,
    void *arg, const char *who, const char *mark, struct lat_hist *to_guest,
    struct lat_hist *send_call)
{
	struct console_client	*cl;

	cl = xcalloc(1, sizeof *cl);
	cl->console = c;
	cl->ops = ops;
	cl->arg = arg;
	cl->who = xstrdup(who);
	cl->mark = xstrdup(mark);
	lat_stream_init(&cl->in_lat, to_guest);
	cl->send_h = send_call;
	if ((cl->input = evbuffer_new()) == NULL)
		fatalx("console: out of memory");
	TAILQ_INSERT_TAIL(&c->clients, cl, entry);
	return cl;
}

static enum session_reason
console_open_reason(enum stream_open_result result)
{
	static const enum session_reason reasons[] = {
		[STREAM_NO_GUEST] = REASON_UNKNOWN_GUEST,
		[STREAM_NOT_RUNNING] = REASON_NOT_RUNNING,
		[STREAM_BUSY] = REASON_BUSY,
		[STREAM_LINK_LOST] = REASON_CONSOLE_LOST,
	};

	/* STREAM_NO_CONSOLE: "console busy", as before it was told apart. */
	return result > STREAM_OPENED && result <= STREAM_LINK_LOST ?
	    reasons[result] : REASON_BUSY;
}

/*
 * An open failed (the console is OPENING).  A captured console held
 * elsewhere is STOLEN, one whose connection dropped waits in BACKOFF:
 * both are tried again later.  Anything else closes it, and the capture
 * lets go: of a guest not running (its next start captures it again), and
 * of a console libvirt cannot open at all, until the guest's next run.
 * 0, or -1 on a bug.
 */
static int
console_open_failed(struct console *c, enum stream_open_result result,
    const char *why)
{
	enum console_event	ev = CONSOLE_EV_FAILED;

	if (c->captured && result == STREAM_BUSY)
		ev = CONSOLE_EV_TAKEN;
	else if (c->captured && result == STREAM_LINK_LOST)
		ev = CONSOLE_EV_LOST;
	if (console_step(c, ev, why) == -1)
		return -1;
	if (ev != CONSOLE_EV_FAILED) {
		console_backoff_arm(c, ev == CONSOLE_EV_TAKEN ?
		    "held by another client" : "its connection dropped");
		return 0;
	}
	if (c->captured && result == STREAM_NO_CONSOLE) {
		c->hist->no_capture = c->run;
		log_warnx("console %u guest=%s dev=%s: libvirt cannot open "
		    "it; not captured until the guest starts again", c->id,
		    log_esc(c->guest), log_esc(c->alias));
	}
	console_capture_drop(c, why);
	return 0;
}

/*
 * The stream is open: a guest run the history has not seen starts a new
 * run; and whatever the guest printed while the daemon did not hold the
 * console is a gap of unknown length (never joined silently).  The console
 * log says which, with the run's id (the one clients resume by).
 */
static void
console_history_opened(struct console *c)
{
	struct console_history	*ch = c->hist;
	int			 new_run = c->run != ch->run;

	if (new_run) {
		if (ch->run != CONSOLE_RUN_NONE ||
		    history_offset(ch->h) != 0)
			(void)history_run_start(ch->h);
		ch->run = c->run;
	}
	history_gap(ch->h);
	clog_mark(ch->log, "%s run=%llx name=%s", new_run ? "guest started" :
	    "console opened", (unsigned long long)history_run(ch->h),
	    log_esc(c->guest));
	c->logged = 1;
}

/* The open came back: the clients attach, or are refused. */
static void
console_opened(struct stream *st, enum stream_open_result result, void *arg)
{
	struct console		*c = arg;
	struct console_client	*cl, *next;
	enum session_reason	 reason;

	if (c->st != st || c->state != CONSOLE_OPENING)
		return;		/* cannot be: a closed stream is not told */
	if (result == STREAM_OPENED && stream_ops->watch(st,
	    STREAM_EV_READABLE | STREAM_EV_ERROR | STREAM_EV_HANGUP,
	    console_stream_cb, c) == -1) {
		log_warnx("console %u guest=%s dev=%s: cannot watch the "
		    "console stream: %s", c->id, log_esc(c->guest),
		    log_esc(c->alias), log_esc(stream_ops->error()));
		result = STREAM_BUSY;
	}
	if (result != STREAM_OPENED) {
		stream_ops->close(st, 0);
		c->st = NULL;
		if (result == STREAM_BUSY && c->force_wanted && !c->open_force) {
			/*
			 * The capture's open (never forced) found the console
			 * held elsewhere, and a client came meanwhile whose own
			 * open would have forced: it does, as without capture.
			 */
			log_info("console %u guest=%s dev=%s: held elsewhere; "
			    "opening it again with force for a client", c->id,
			    log_esc(c->guest), log_esc(c->alias));
			c->open_force = 1;
			c->force_wanted = 0;
			if ((c->st = stream_ops->open(c->hv, c->uuid, c->alias, 1,
			    console_opened, c, &result)) != NULL)
				return;
		}
		reason = console_open_reason(result);
		if (console_open_failed(c, result, "open refused") == -1)
			return;
		console_end_clients(c, reason);
		console_maybe_free(c);
		return;
	}
	if (console_step(c, CONSOLE_EV_OPENED, "stream open") == -1)
		return;
	if (c->captured)
		log_info("console %u guest=%s dev=%s: captured%s", c->id,
		    log_esc(c->guest), log_esc(c->alias), c->backoff > 0 ?
		    " again" : "");
	c->backoff = 0;
	console_history_opened(c);
	TAILQ_FOREACH(cl, &c->clients, entry)
		console_mark_attached(cl);
	TAILQ_FOREACH_SAFE(cl, &c->clients, entry, next)
		cl->ops->opened(cl->arg);
	if (c->state == CONSOLE_OPEN && console_next_input(c) != NULL) {
		console_enqueue(c);
		console_pump();
	}
}

/*
 * Open the console's stream for a client (force: take it from another
 * holder).  0: open already; 1: opening, the client hears opened() or
 * ended(); -1 with *reason: refused now.
 */
int
console_open(struct console_client *cl, int force,
    enum session_reason *reason)
{
	struct console		*c = cl->console;
	enum stream_open_result	 result;
	enum console_event	 ev = CONSOLE_EV_OPEN;

	if (c->state == CONSOLE_OPEN) {
		console_mark_attached(cl);
		return 0;
	}
	if (c->state == CONSOLE_OPENING) {
		/* A capture's open does not force; this client's would. */
		if (force && !c->open_force)
			c->force_wanted = 1;
		return 1;
	}
	if (c->state == CONSOLE_STOLEN || c->state == CONSOLE_BACKOFF) {
		/*
		 * A client does not wait for the capture's backoff: its
		 * open is its own, forced as the configuration says.
		 */
		evtimer_del(c->ev_timer);
		ev = CONSOLE_EV_RETRY;
	}
	if (console_step(c, ev, cl->who) == -1) {
		*reason = REASON_BUSY;
		return -1;
	}
	c->open_force = force;
	c->force_wanted = 0;
	if ((c->st = stream_ops->open(c->hv, c->uuid, c->alias, force,
	    console_opened, c, &result)) == NULL) {
		*reason = console_open_reason(result);
		(void)console_open_failed(c, result, "cannot open");
		return -1;
	}
	return 1;
}

/* Open a captured console's stream: never forced. */
static void
console_capture_open(struct console *c, enum console_event ev,
    const char *why)
{
	enum stream_open_result	result;

	if (console_step(c, ev, why) == -1)
		return;
	c->open_force = 0;
	c->force_wanted = 0;
	if ((c->st = stream_ops->open(c->hv, c->uuid, c->alias, 0, console_opened,
	    c, &result)) != NULL)
		return;
	if (console_open_failed(c, result, "cannot open") == -1)
		return;
	console_end_clients(c, console_open_reason(result));
	console_maybe_free(c);
}

/* The client's input: n bytes from buf join its queue for the guest. */
void
console_input(struct console_client *cl, struct evbuffer *buf, size_t n,
    uint64_t t0)
{
	struct console	*c = cl->console;
	int		 moved;

	/* Its last byte's residence ends when the packet holding it is sent. */
	moved = evbuffer_remove_buffer(buf, cl->input, n);
	if (moved > 0 && t0 != 0)	/* 0: no read time, not timed */
		lat_stream_mark(&cl->in_lat, evbuffer_get_length(cl->input),
		    t0);
	if (c->state != CONSOLE_OPEN || evbuffer_get_length(cl->input) == 0)
		return;
	/* At once: a stuck console waiting in the queue holds up no other. */
	console_enqueue(c);
	console_pump();
}

/* The client's input not yet sent to the guest. */
size_t
console_input_pending(const struct console_client *cl)
{
	return evbuffer_get_length(cl->input);
}

/*
 * A client leaves.  Its input that libvirt takes at once goes out, the
 * rest is dropped (a client that wants its input delivered stays until
 * input_sent() says it is out).  The last client out closes the stream.
 */
void
console_detach(struct console_client *cl)
{
	struct console	*c = cl->console;
	size_t		 sent;

	console_mark_detached(cl);
	TAILQ_REMOVE(&c->clients, cl, entry);
	while (c->state == CONSOLE_OPEN &&
	    evbuffer_get_length(cl->input) > 0 && console_can_send(c))
		if (console_send_packet(c, cl, &sent) <= 0)
			break;
	console_drop_input(cl);
	evbuffer_free(cl->input);
	free(cl->who);
	free(cl->mark);
	free(cl);
	if ((c->state == CONSOLE_OPEN || c->state == CONSOLE_OPENING) &&
	    TAILQ_EMPTY(&c->clients) && !c->captured &&
	    console_step(c, CONSOLE_EV_CLOSE, "no client left") == 0) {
		console_unqueue(c);
		console_release_stream(c);
	}
	console_maybe_free(c);
}

/*
 * The capture lets go of a console: one not open closes, one open with no
 * client closes its stream; one with clients stays theirs.
 */
static void
console_uncapture(struct console *c, const char *why)
{
	if (!c->captured)
		return;
	console_capture_drop(c, why);
	if (c->state == CONSOLE_STOLEN || c->state == CONSOLE_BACKOFF) {
		evtimer_del(c->ev_timer);
		(void)console_step(c, CONSOLE_EV_CLOSE, why);
	} else if ((c->state == CONSOLE_OPEN || c->state == CONSOLE_OPENING) &&
	    TAILQ_EMPTY(&c->clients) &&
	    console_step(c, CONSOLE_EV_CLOSE, why) == 0) {
		console_unqueue(c);
		console_release_stream(c);
	}
	console_maybe_free(c);
}

/*
 * The guest stopped (or went away, or migrated): its open consoles park
 * their streams and end their clients with reason; every parked stream of
 * the guest goes CONSOLE_STOP_GRACE seconds from now; the capture lets go
 * of the others (the guest's next start captures them again).
 */
void
console_guest_stopped(const struct guest *g, enum session_reason reason)
{
	struct console	*c, *next;

	TAILQ_FOREACH_SAFE(c, &cons.all, entry, next) {
		if (!console_is(c, guest_hv_name(g), g->uuid, NULL))
			continue;
		if (c->state == CONSOLE_OPEN)
			console_park(c, CONSOLE_EV_STOPPED, reason);
		if (c->state == CONSOLE_PARKED)
			timer_arm(c->ev_timer, CONSOLE_STOP_GRACE);
		else
			console_uncapture(c, "the guest stops");
	}
}

/*
 * The connection is gone, or the daemon stops, and the sessions in the
 * table have been ended: the consoles still open (their clients are
 * writers whose input was still going out) close with reason, and the
 * parked streams go (no stop event will come for them).  Those of guest g
 * only (its hypervisor's connection dropped, or a reload removed it), or
 * all (g NULL).
 */
void
console_close_guest(const struct guest *g, enum session_reason reason)
{
	struct console	*c, *next;

	/*
	 * The daemon stops: lifecycle events still come while it drains its
	 * clients, and must capture nothing more.
	 */
	if (reason == REASON_SHUTDOWN)
		cons.capture = CAPTURE_ATTACHED;
	TAILQ_FOREACH_SAFE(c, &cons.all, entry, next) {
		if (g != NULL && !console_is(c, guest_hv_name(g), g->uuid,
		    NULL))
			continue;
		/* The next connection captures them again. */
		console_capture_drop(c, "the connection ended, or the daemon "
		    "stops");
		if (c->state == CONSOLE_OPEN || c->state == CONSOLE_OPENING) {
			if (console_step(c, CONSOLE_EV_CLOSE, "the "
			    "connection ended, or the daemon stops") == -1)
				continue;
			console_drop_all_input(c);
			console_end_clients(c, reason);
		} else if (c->state == CONSOLE_PARKED) {
			if (console_step(c, CONSOLE_EV_RELEASE, "the "
			    "connection ended, or the daemon stops") == -1)
				continue;
			evtimer_del(c->ev_timer);
		} else if (c->state == CONSOLE_STOLEN ||
		    c->state == CONSOLE_BACKOFF) {
			evtimer_del(c->ev_timer);
			if (console_step(c, CONSOLE_EV_CLOSE, "the connection "
			    "ended, or the daemon stops") == -1)
				continue;
		} else
			continue;
		console_release_stream(c);
		console_maybe_free(c);
	}
}

void
console_close_all(enum session_reason reason)
{
	console_close_guest(NULL, reason);
}

static unsigned int
console_tally(int captured_only)
{
	struct console	*c;
	unsigned int	 n = 0;

	TAILQ_FOREACH(c, &cons.all, entry)
		if (!captured_only || c->captured)
			n++;
	return n;
}

/* Hypervisor hv's console objects by state now (metrics). */
void
console_states(const char *hv, unsigned int n[CONSOLE_NSTATES])
{
	struct console	*c;

	memset(n, 0, CONSOLE_NSTATES * sizeof n[0]);
	TAILQ_FOREACH(c, &cons.all, entry)
		if ((unsigned)c->state < CONSOLE_NSTATES &&
		    strcmp(c->hv, hv) == 0)
			n[c->state]++;
}

/* Consoles not yet freed, in any state (the unit tests' leak check). */
unsigned int
console_count(void)
{
	return console_tally(0);
}

/* The history of guest g's console alias, or NULL if it has none. */
const struct history *
console_history(const struct guest *g, const char *alias)
{
	struct console_history	*ch = console_history_lookup(
	    guest_hv_name(g), g->uuid, alias);

	return ch != NULL ? ch->h : NULL;
}

/* The guest is gone for good: its consoles' histories go too. */
void
console_guest_removed(const struct guest *g)
{
	struct console_history	*ch, *next;

	TAILQ_FOREACH_SAFE(ch, &cons.histories, entry, next) {
		if (strcmp(ch->uuid, g->uuid) != 0 ||
		    strcmp(ch->hv, guest_hv_name(g)) != 0)
			continue;
		TAILQ_REMOVE(&cons.histories, ch, entry);
		ch->gone = 1;
		ch->refs++;
		console_history_put(ch);
	}
}

/* The daemon exits: the histories no console holds are freed. */
void
console_shutdown(void)
{
	struct console_history	*ch;

	while ((ch = TAILQ_FIRST(&cons.histories)) != NULL) {
		TAILQ_REMOVE(&cons.histories, ch, entry);
		ch->gone = 1;
		ch->refs++;
		console_history_put(ch);
	}
}

/*
 * capture = always: hold every console of guest g if it runs, and try a
 * console held elsewhere again at once (a lifecycle event of the guest).
 * One libvirt cannot open is left until the guest's next run.
 */
void
console_capture_guest(const struct guest *g)
{
	struct console_history	*ch;
	struct console		*c;
	size_t			 i;

	if (cons.capture != CAPTURE_ALWAYS || !g->active)
		return;
	for (i = 0; i < g->naliases; i++) {
		ch = console_history_lookup(guest_hv_name(g), g->uuid,
		    g->aliases[i]);
		if (ch != NULL && ch->no_capture == g->domid)
			continue;
		c = console_get(guest_hv_name(g), g->uuid, g->aliases[i],
		    g->name, g->domid);
		c->captured = 1;
		if (c->state == CONSOLE_CLOSED)
			console_capture_open(c, CONSOLE_EV_OPEN, "capture");
		else if (c->state == CONSOLE_STOLEN ||
		    c->state == CONSOLE_BACKOFF) {
			evtimer_del(c->ev_timer);
			console_capture_open(c, CONSOLE_EV_RETRY,
			    "guest lifecycle event");
		}
	}
}

/* The guest table's changes: a guest that runs is captured. */
static void
console_guest_event(struct guest *g, enum guest_event ev, void *arg)
{
	/* Stops, removals and disconnections come through session.c. */
	if ((ev == GUEST_EV_CHANGED || ev == GUEST_EV_STARTED) && g != NULL)
		console_capture_guest(g);
}

/* Consoles the capture holds, in any state (tests, status). */
unsigned int
console_captured(void)
{
	return console_tally(1);
}

/* The state of guest g's console alias (not parked), or -1: none. */
int
console_state_of(const struct guest *g, const char *alias)
{
	struct console	*c;

	TAILQ_FOREACH(c, &cons.all, entry)
		if (c->state != CONSOLE_PARKED &&
		    console_is(c, guest_hv_name(g), g->uuid, alias))
			return c->state;
	return -1;
}

void
console_test_backoff_unit(unsigned int ms)
{
	cons.backoff_unit = ms;
}

/*
 * A reload: new history limits apply to every history now; a new capture
 * opens the consoles of running guests (always) or lets go of those with
 * no client (attached; their histories stay).
 */
void
console_reconfigure(const struct config *cfg)
{
	struct console_history	*ch;
	struct console		*c, *next;
	struct guest		*g;
	enum config_capture	 old = cons.capture;

	cons.history = cfg->history;
	cons.history_head = cfg->history_head;
	cons.history_runs = cfg->history_runs;
	TAILQ_FOREACH(ch, &cons.histories, entry)
		if (history_set_limits(ch->h, cfg->history, cfg->history_head,
		    cfg->history_runs) == -1)
			log_warn("console: history limits");
	cons.capture = cfg->capture;
	if (old == cons.capture)
		return;
	log_info("console: capture = %s", config_capture_name(cons.capture));
	if (cons.capture == CAPTURE_ALWAYS) {
		TAILQ_FOREACH(g, guest_list(), entry)
			console_capture_guest(g);
		return;
	}
	TAILQ_FOREACH_SAFE(c, &cons.all, entry, next)
		console_uncapture(c, "capture = attached");
}

/* The history of the console a client is attached to. */
const struct history *
console_client_history(const struct console_client *cl)
{
	return cl->console->hist->h;
}

/* Bytes held by every console's history. */
size_t
console_history_held(void)
{
	struct console_history	*ch;
	size_t			 n = 0;

	TAILQ_FOREACH(ch, &cons.histories, entry)
		n += history_held(ch->h);
	return n;
}

void
console_init(struct event_base *base)
{
	cons.base = base;
	evtimer_assign(&cons.ev_pump, base, console_pump_cb, NULL);
	guest_subscribe(console_guest_event, NULL);
}
