/*
 * Console sessions: one object per client of a guest console, an explicit
 * state machine, and the table that enforces one client per console.
 *
 *   NEW -> WAITING -> OPENING -> ATTACHED -> CLOSING -> DEAD
 *            (guest       (stream     (bytes      (notice
 *          not running)   opening)    flowing)    draining)
 *
 * session_set_state() is the only place a state changes, and it logs every
 * transition with its reason.  session_end() is the one way out: it takes
 * the session out of the table at once (so the console is free for the
 * next client), tears the stream down, sends the notice, and lets it drain.
 * session_destroy() then releases the client and every event; the memory is
 * freed later, from the loop (event_base_once), so no callback still on the
 * stack can touch freed memory.
 *
 * Keys are the guest's UUID plus the console alias; "no alias" is resolved
 * to the guest's first console before the table is consulted.
 *
 * Memory is bounded per session by max_buffer in each direction:
 * - guest to client: guest output is always read from the stream (libvirt
 *   would otherwise queue it without limit), and goes to the client only
 *   while its pending output is under max_buffer.  Once that reaches
 *   max_buffer, further output is dropped (and counted) and a
 *   SESSION_SLOW_GRACE timer starts; if the client has not drained to half
 *   of max_buffer by then, it is disconnected with "client too slow".
 * - client to guest: input is read only while less than max_buffer waits
 *   for the console; reading resumes below half of it.
 *
 * Input goes to the guests through one send queue, never straight from a
 * client's callback.  libvirt's remote virStreamSend() does not return
 * until the packet is written to the libvirt socket, and libvirtd stops
 * reading a connection while max_client_requests (5) stream packets wait
 * for consoles that have not taken them: a paste into a slow console would
 * otherwise block the whole loop.  So session_pump() sends only while the
 * libvirt socket holds less than SESSION_SEND_WINDOW unread bytes
 * (evglue_write_backlog()), in SESSION_SEND_CHUNK packets, one per session
 * in turn, and retries every SESSION_SEND_RETRY ms while it cannot.  A
 * keystroke of another console then waits for one small packet to drain,
 * not for the paste.  The stream's WRITABLE event is not used: a remote
 * stream reports it on every loop pass and it says nothing about libvirtd.
 */
#include <sys/time.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/event_struct.h>

#include "virtconsoled.h"

#define SESSION_CHUNK		(64 * 1024)	/* virStream read unit */
#define SESSION_SEND_CHUNK	1024	/* bytes per packet to a guest */
#define SESSION_SEND_WINDOW	4096	/* unread bytes on the libvirt socket */
#define SESSION_SEND_RETRY	5	/* ms between tries while it is full */
#define SESSION_BUDGET		4	/* chunks per stream event */
#define SESSION_SLOW_GRACE	5	/* seconds at the cap */
#define SESSION_LINGER		2	/* seconds to drain a notice */
#define SESSION_STOP_GRACE	10	/* parked stream: after the stop event */
#define SESSION_DRAIN		30	/* seconds for input left by a client */

struct session {
	unsigned int		 id;
	enum session_state	 state;
	enum session_reason	 reason;
	char			 uuid[GUEST_UUID_LEN];
	char			*guest;
	char			*alias;
	char			*peer;
	struct bufferevent	*bev;		/* the client */
	struct stream		*st;		/* the console */
	int			 st_events;
	int			 st_eof;
	int			 out_paused;	/* client output at the cap */
	int			 in_paused;	/* to_guest at the cap */
	struct evbuffer		*to_guest;
	struct event		*ev_wait;	/* start_wait */
	struct event		*ev_idle;	/* idle_timeout */
	struct event		*ev_slow;	/* client too slow */
	struct event		*ev_linger;	/* notice drain deadline */
	struct timespec		 started;
	struct timespec		 active;	/* last activity */
	uint64_t		 bytes_in;	/* client to guest */
	uint64_t		 bytes_out;	/* guest to client */
	uint64_t		 bytes_dropped;	/* output past max_buffer */
	const struct session_door *door;	/* the front door's hooks */
	void			*door_arg;
	int			 in_table;
	int			 in_sendq;
	int			 draining;	/* the client left input behind */
	TAILQ_ENTRY(session)	 entry;
	TAILQ_ENTRY(session)	 sendq_entry;	/* input waiting to go out */
};
TAILQ_HEAD(sessions, session);

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
 * So such a stream is parked, with no timer of its own, and finished (or
 * aborted) SESSION_STOP_GRACE seconds after the guest's stop (or removal)
 * event, or when the connection ends.  Found by tests/integration/t-load.py
 * (24 guests destroyed at once under 216 sessions): libvirtd hung with the
 * streams closed at their end of file, and again with a 1 s grace and a
 * 30 s fallback timer (our abort met a free still in progress).
 */
struct parked {
	struct stream		*st;
	int			 eof;
	char			 uuid[GUEST_UUID_LEN];
	struct event		*ev;
	TAILQ_ENTRY(parked)	 entry;
};
TAILQ_HEAD(parked_streams, parked);

static struct {
	struct event_base	*base;
	struct sessions		 table;
	struct sessions		 sendq;
	struct event		 ev_pump;	/* retry the send queue */
	struct timespec		 blocked;	/* since when it waits */
	int			 pump_blocked;
	struct parked_streams	 parked;
	unsigned int		 next_id;
	unsigned int		 live;		/* not yet destroyed */
	enum config_policy	 policy;
	int			 force;
	unsigned int		 start_wait;
	unsigned int		 idle_timeout;
	int			 idle_output_resets;
	int			 escape;
	size_t			 max_buffer;
} sess = {
	.table = TAILQ_HEAD_INITIALIZER(sess.table),
	.sendq = TAILQ_HEAD_INITIALIZER(sess.sendq),
	.parked = TAILQ_HEAD_INITIALIZER(sess.parked),
};

static const char *const session_state_names[] = {
	[SESSION_NEW] = "NEW",
	[SESSION_WAITING] = "WAITING",
	[SESSION_OPENING] = "OPENING",
	[SESSION_ATTACHED] = "ATTACHED",
	[SESSION_CLOSING] = "CLOSING",
	[SESSION_DEAD] = "DEAD",
};

/* The notice texts are a contract with clients (docs/SESSIONS.md). */
static const struct {
	const char	*text;
	int		 refused;	/* 1 refused, 0 disconnected, -1 none */
} session_reasons[REASON_MAX] = {
	[REASON_NONE] = { "none", -1 },
	[REASON_ESCAPE] = { "escape key", 0 },
	[REASON_IDLE] = { "idle timeout", 0 },
	[REASON_GUEST_STOPPED] = { "guest stopped", 0 },
	[REASON_GUEST_MIGRATED] = { "guest migrated", 0 },
	[REASON_CONSOLE_TAKEN] = { "console taken by another client", 0 },
	[REASON_TAKEN_OVER] = { "taken over by a new client", 0 },
	[REASON_HV_LOST] = { "hypervisor connection lost", 0 },
	[REASON_SHUTDOWN] = { "daemon shutting down", 0 },
	[REASON_TOO_SLOW] = { "client too slow", 0 },
	[REASON_KICKED] = { "kicked by administrator", 0 },
	[REASON_LISTENER_REMOVED] = { "listener removed", 0 },
	[REASON_EXPIRED] = { "session expired", 0 },
	[REASON_BUSY] = { "console busy", 1 },
	[REASON_NOT_RUNNING] = { "guest not running", 1 },
	[REASON_UNKNOWN_GUEST] = { "unknown guest", 1 },
	[REASON_TOO_MANY] = { "too many clients", 1 },
	[REASON_CLIENT_CLOSED] = { "client closed", -1 },
	[REASON_CLIENT_ERROR] = { "client error", -1 },
	[REASON_CONSOLE_ERROR] = { "console error", -1 },
};

static void	session_destroy(struct session *);
static void	session_attach(struct session *);
static void	session_stream_update(struct session *);
static void	session_pump(void);
static void	session_unqueue(struct session *);
static void	session_send_last(struct session *);
static int	session_take_input(struct session *);

const char *
session_state_name(enum session_state state)
{
	if ((unsigned)state > SESSION_DEAD)
		return "UNKNOWN";
	return session_state_names[state];
}

const char *
session_reason_text(enum session_reason reason)
{
	if ((unsigned)reason >= REASON_MAX)
		return "unknown";
	return session_reasons[reason].text;
}

/* 1: a refusal, 0: a disconnection, -1: no notice (the client left). */
int
session_reason_refused(enum session_reason reason)
{
	if ((unsigned)reason >= REASON_MAX)
		return -1;
	return session_reasons[reason].refused;
}

/* The one line a client reads before the daemon closes it. */
size_t
session_notice(enum session_reason reason, char *buf, size_t len)
{
	int	refused = session_reason_refused(reason), n;

	if (refused == -1 || len == 0)
		return 0;
	n = snprintf(buf, len, "\r\n[virtconsoled] %s: %s\r\n",
	    refused ? "refused" : "disconnected", session_reason_text(reason));
	return n < 0 || (size_t)n >= len ? 0 : (size_t)n;
}

/* Where the escape byte is in a chunk of client input, or NULL. */
const char *
session_find_escape(const char *buf, size_t len, int escape)
{
	if (escape == ESCAPE_NONE || len == 0)
		return NULL;
	return memchr(buf, escape, len);
}

static double
session_elapsed(const struct timespec *since)
{
	struct timespec	now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - since->tv_sec) +
	    (double)(now.tv_nsec - since->tv_nsec) / 1e9;
}

static void
session_touch(struct session *s)
{
	clock_gettime(CLOCK_MONOTONIC, &s->active);
}

/* The only place a session changes state. */
static void
session_set_state(struct session *s, enum session_state next,
    const char *why)
{
	log_info("session %u guest=%s dev=%s: %s -> %s (%s)", s->id,
	    log_esc(s->guest), log_esc(s->alias), session_state_name(s->state),
	    session_state_name(next), why);
	s->state = next;
}

static void
session_free(evutil_socket_t fd, short what, void *arg)
{
	struct session	*s = arg;

	evbuffer_free(s->to_guest);
	free(s->guest);
	free(s->alias);
	free(s->peer);
	free(s);
}

static void
session_free_later(struct session *s)
{
	struct timeval	now = { 0, 0 };

	/* Never free inside a callback that may still be on the stack. */
	if (event_base_once(sess.base, -1, EV_TIMEOUT, session_free, s,
	    &now) == -1)
		log_warnx("session %u: cannot defer its free", s->id);
}

static struct session *
session_lookup(const char *uuid, const char *alias)
{
	struct session	*s;

	TAILQ_FOREACH(s, &sess.table, entry) {
		if (strcmp(s->uuid, uuid) == 0 && strcmp(s->alias, alias) == 0)
			return s;
	}
	return NULL;
}

static void
session_unlink(struct session *s)
{
	if (s->in_table) {
		TAILQ_REMOVE(&sess.table, s, entry);
		s->in_table = 0;
	}
}

static void
session_stream_release(struct stream *st, int eof)
{
	stream_ops->close(st, eof);
}

static void
session_unpark(struct parked *p)
{
	TAILQ_REMOVE(&sess.parked, p, entry);
	session_stream_release(p->st, p->eof);
	event_free(p->ev);
	free(p);
}

static void
session_park_cb(evutil_socket_t fd, short what, void *arg)
{
	session_unpark(arg);
}

/* Close the parked streams of a guest soon: its stop event has come. */
static void
session_unpark_guest(const char *uuid)
{
	struct parked	*p;

	TAILQ_FOREACH(p, &sess.parked, entry) {
		if (strcmp(p->uuid, uuid) == 0)
			timer_arm(p->ev, SESSION_STOP_GRACE);
	}
}

static void
session_unpark_all(void)
{
	struct parked	*p;

	/* NOLINTBEGIN(clang-analyzer-unix.Malloc): TAILQ, see .clang-tidy */
	while ((p = TAILQ_FIRST(&sess.parked)) != NULL)
		session_unpark(p);
	/* NOLINTEND(clang-analyzer-unix.Malloc) */
}

static void
session_stream_close(struct session *s)
{
	struct parked	*p;

	if (s->st == NULL)
		return;
	stream_ops->unwatch(s->st);
	if (s->reason == REASON_GUEST_STOPPED ||
	    s->reason == REASON_GUEST_MIGRATED) {
		p = xcalloc(1, sizeof *p);
		p->st = s->st;
		p->eof = s->st_eof;
		memcpy(p->uuid, s->uuid, sizeof p->uuid);
		if ((p->ev = evtimer_new(sess.base, session_park_cb, p)) == NULL)
			fatalx("session: out of memory");
		TAILQ_INSERT_TAIL(&sess.parked, p, entry);
	} else
		session_stream_release(s->st, s->st_eof);
	s->st = NULL;
}

/*
 * Whether the input a client left behind still goes to the guest: when the
 * client itself ended the session (`echo cmd | socat - UNIX:...` writes
 * and closes at once), not when something else took the console away.
 */
static int
session_drains(enum session_reason reason)
{
	return reason == REASON_CLIENT_CLOSED ||
	    reason == REASON_CLIENT_ERROR || reason == REASON_ESCAPE;
}

/*
 * End a session for a reason.  Idempotent: the first reason wins.  It
 * leaves the table at once; input the client typed before its end keeps
 * going to the console (session_drains(), up to SESSION_DRAIN seconds)
 * before the stream goes.
 */
static void
session_end(struct session *s, enum session_reason reason)
{
	char	notice[128];
	size_t	n;

	if (s->state >= SESSION_CLOSING)
		return;
	s->reason = reason;
	session_unlink(s);
	if (s->state == SESSION_ATTACHED && session_drains(reason) &&
	    s->bev != NULL)
		session_take_input(s);
	if (s->state == SESSION_ATTACHED &&
	    evbuffer_get_length(s->to_guest) > 0 && session_drains(reason))
		s->draining = 1;
	else {
		session_unqueue(s);
		if (s->state == SESSION_ATTACHED &&
		    evbuffer_get_length(s->to_guest) > 0)
			session_send_last(s);
		session_stream_close(s);
	}
	evtimer_del(s->ev_wait);
	evtimer_del(s->ev_idle);
	evtimer_del(s->ev_slow);

	n = session_notice(reason, notice, sizeof notice);
	session_set_state(s, SESSION_CLOSING, session_reason_text(reason));
	if (s->door != NULL && s->bev != NULL) {
		/* The front door says goodbye in its own protocol. */
		s->door->close(s->bev, reason, s->door_arg);
		s->bev = NULL;
	}
	if (n == 0 || s->bev == NULL) {
		session_destroy(s);
		return;
	}
	/* Send the notice after any pending output, then close. */
	bufferevent_disable(s->bev, EV_READ);
	bufferevent_write(s->bev, notice, n);
	bufferevent_setwatermark(s->bev, EV_WRITE, 0, 0);
	bufferevent_enable(s->bev, EV_WRITE);
	timer_arm(s->ev_linger, SESSION_LINGER);
}

/*
 * Release the client and the events now; the memory on a later pass.  A
 * session still draining its input to the console releases only the
 * client: session_pump() destroys it when the input is out, its linger
 * timer after SESSION_DRAIN seconds.
 */
static void
session_destroy(struct session *s)
{
	if (s->state == SESSION_DEAD)
		return;
	if (s->draining && s->st != NULL &&
	    evbuffer_get_length(s->to_guest) > 0) {
		if (s->bev != NULL) {
			bufferevent_free(s->bev);
			s->bev = NULL;
		}
		timer_arm(s->ev_linger, SESSION_DRAIN);
		if (!s->in_sendq) {
			TAILQ_INSERT_TAIL(&sess.sendq, s, sendq_entry);
			s->in_sendq = 1;
		}
		if (!sess.pump_blocked)
			session_pump();
		return;
	}
	s->draining = 0;
	session_unlink(s);
	session_unqueue(s);
	if (s->st != NULL && evbuffer_get_length(s->to_guest) > 0)
		session_send_last(s);
	session_stream_close(s);
	log_info("session %u guest=%s dev=%s: ended reason=\"%s\" peer=%s "
	    "duration=%.1fs bytes_in=%llu bytes_out=%llu bytes_dropped=%llu",
	    s->id, log_esc(s->guest), log_esc(s->alias),
	    session_reason_text(s->reason), log_esc(s->peer),
	    session_elapsed(&s->started), (unsigned long long)s->bytes_in,
	    (unsigned long long)s->bytes_out,
	    (unsigned long long)s->bytes_dropped);
	session_set_state(s, SESSION_DEAD, "destroyed");
	if (s->bev != NULL) {
		bufferevent_free(s->bev);
		s->bev = NULL;
	}
	event_free(s->ev_wait);
	event_free(s->ev_idle);
	event_free(s->ev_slow);
	event_free(s->ev_linger);
	s->ev_wait = s->ev_idle = s->ev_slow = s->ev_linger = NULL;
	sess.live--;
	session_free_later(s);
}

/* Request exactly the stream events the session needs now. */
static void
session_stream_update(struct session *s)
{
	int	events = STREAM_EV_ERROR | STREAM_EV_HANGUP;

	if (s->st == NULL)
		return;
	/* Always readable: see the max_buffer rule at the top. */
	events |= STREAM_EV_READABLE;
	if (events != s->st_events) {
		stream_ops->update(s->st, events);
		s->st_events = events;
	}
}

static enum session_reason
session_stream_failure(void)
{
	/* A dead connection takes every stream with it. */
	return hv_get_state() == HV_CONNECTED ? REASON_CONSOLE_TAKEN :
	    REASON_HV_LOST;
}

/*
 * Send one packet of a session's input.  1: sent, or nothing to send;
 * 0: the stream cannot take it now; -1: the stream failed (the session is
 * ended unless it is already ending).
 */
static int
session_send_chunk(struct session *s)
{
	unsigned char	*p;
	size_t		 len;
	int		 n;

	if ((len = evbuffer_get_length(s->to_guest)) == 0)
		return 1;
	if (len > SESSION_SEND_CHUNK)
		len = SESSION_SEND_CHUNK;
	p = evbuffer_pullup(s->to_guest, (ssize_t)len);
	n = stream_ops->send(s->st, (const char *)p, len);
	if (n == -2)
		return 0;	/* a local stream that is full */
	if (n < 0) {
		log_debug("session %u: send: %s", s->id,
		    log_esc(stream_ops->error()));
		if (s->state == SESSION_ATTACHED && s->reason == REASON_NONE)
			session_end(s, session_stream_failure());
		return -1;
	}
	evbuffer_drain(s->to_guest, (size_t)n);
	s->bytes_in += (uint64_t)n;
	if (s->in_paused && s->bev != NULL &&
	    evbuffer_get_length(s->to_guest) < sess.max_buffer / 2) {
		s->in_paused = 0;
		bufferevent_enable(s->bev, EV_READ);
	}
	return 1;
}

/* 1 when a packet can be written to libvirt now without blocking. */
static int
session_can_send(void)
{
	return evglue_write_backlog() + SESSION_SEND_CHUNK <=
	    SESSION_SEND_WINDOW;
}

/*
 * The bytes typed before the escape key go out as the session ends, as far
 * as libvirt takes them without blocking; the rest is counted as dropped.
 */
static void
session_send_last(struct session *s)
{
	size_t	left;

	while (evbuffer_get_length(s->to_guest) > 0 && session_can_send())
		if (session_send_chunk(s) <= 0)
			break;
	if ((left = evbuffer_get_length(s->to_guest)) > 0) {
		log_info("session %u: %zu bytes of input not delivered "
		    "(the console is not taking input)", s->id, left);
		evbuffer_drain(s->to_guest, left);
	}
}

static void
session_unqueue(struct session *s)
{
	if (s->in_sendq) {
		TAILQ_REMOVE(&sess.sendq, s, sendq_entry);
		s->in_sendq = 0;
	}
}

/* Queue a session's input for the guest and try to send it. */
static void
session_queue_input(struct session *s)
{
	if (s->state != SESSION_ATTACHED ||
	    evbuffer_get_length(s->to_guest) == 0)
		return;
	if (!s->in_sendq) {
		TAILQ_INSERT_TAIL(&sess.sendq, s, sendq_entry);
		s->in_sendq = 1;
	}
	if (!sess.pump_blocked)
		session_pump();
}

static void
session_pump_cb(evutil_socket_t fd, short what, void *arg)
{
	session_pump();
}

/* One packet per waiting session in turn, while libvirt takes them. */
static void
session_pump(void)
{
	struct timeval	 tv = { 0, SESSION_SEND_RETRY * 1000 };
	struct session	*s;
	int		 r;

	while ((s = TAILQ_FIRST(&sess.sendq)) != NULL) {
		if (!session_can_send())
			break;
		session_unqueue(s);
		r = session_send_chunk(s);
		if (s->draining && (r < 0 ||
		    evbuffer_get_length(s->to_guest) == 0)) {
			s->draining = 0;
			if (s->bev == NULL)
				session_destroy(s);	/* its input is out */
			continue;
		}
		if (r < 0)
			continue;	/* ended, or ending */
		if (evbuffer_get_length(s->to_guest) > 0) {
			TAILQ_INSERT_TAIL(&sess.sendq, s, sendq_entry);
			s->in_sendq = 1;
		}
		if (r == 0)
			break;
	}
	if (TAILQ_EMPTY(&sess.sendq)) {
		if (sess.pump_blocked)
			log_debug("session: input to the consoles flows again "
			    "after %.2fs", session_elapsed(&sess.blocked));
		sess.pump_blocked = 0;
		return;
	}
	if (!sess.pump_blocked) {
		sess.pump_blocked = 1;
		clock_gettime(CLOCK_MONOTONIC, &sess.blocked);
	}
	evtimer_add(&sess.ev_pump, &tv);
}

static void
session_stream_cb(struct stream *st, int events, void *opaque)
{
	struct session	*s = opaque;
	struct evbuffer	*out;
	char		 buf[SESSION_CHUNK];
	size_t		 room, pending;
	int		 n, budget = SESSION_BUDGET;

	if (s->state != SESSION_ATTACHED || s->st != st)
		return;		/* a late event */
	out = bufferevent_get_output(s->bev);
	if (events & (STREAM_EV_READABLE | STREAM_EV_ERROR |
	    STREAM_EV_HANGUP)) {
		while (budget-- > 0) {
			/*
			 * At the cap, output is still read, or libvirt would
			 * queue it without limit, but dropped: the client
			 * has the grace period to catch up or be closed.
			 */
			pending = evbuffer_get_length(out);
			room = pending < sess.max_buffer ?
			    sess.max_buffer - pending : 0;
			n = stream_ops->recv(st, buf, room > 0 && room <
			    sizeof buf ? room : sizeof buf);
			if (n == -2)
				break;
			if (n == 0) {
				s->st_eof = 1;
				session_end(s, REASON_GUEST_STOPPED);
				return;
			}
			if (n < 0) {
				log_info("session %u: console stream failed: "
				    "%s", s->id,
				    log_esc(stream_ops->error()));
				session_end(s, session_stream_failure());
				return;
			}
			if (room == 0) {
				s->bytes_dropped += (uint64_t)n;
				continue;
			}
			bev_write_now(s->bev, buf, (size_t)n);
			s->bytes_out += (uint64_t)n;
			if (sess.idle_output_resets)
				session_touch(s);
		}
		if (evbuffer_get_length(out) >= sess.max_buffer &&
		    !s->out_paused) {
			s->out_paused = 1;
			timer_arm(s->ev_slow, SESSION_SLOW_GRACE);
			log_debug("session %u: client output at max_buffer, "
			    "dropping output for up to %ds", s->id,
			    SESSION_SLOW_GRACE);
		}
	}
	session_stream_update(s);
}

/*
 * Move the client's input to the guest's queue, up to the escape byte.
 * 1 if the escape byte came: it and everything after it are dropped.
 */
static int
session_take_input(struct session *s)
{
	struct evbuffer	*in = bufferevent_get_input(s->bev);
	const char	*data, *esc;
	size_t		 len, n;

	len = evbuffer_get_length(in);
	data = (const char *)evbuffer_pullup(in, (ssize_t)len);
	esc = session_find_escape(data, len, sess.escape);
	n = esc != NULL ? (size_t)(esc - data) : len;
	evbuffer_remove_buffer(in, s->to_guest, n);
	if (esc == NULL)
		return 0;
	evbuffer_drain(in, evbuffer_get_length(in));
	return 1;
}

/* Client input: everything before the escape byte goes to the guest. */
static void
session_read_cb(struct bufferevent *bev, void *arg)
{
	struct session	*s = arg;
	struct evbuffer	*in = bufferevent_get_input(bev);

	if (s->state >= SESSION_CLOSING) {
		evbuffer_drain(in, evbuffer_get_length(in));
		return;
	}
	session_touch(s);
	if (session_take_input(s)) {
		session_end(s, REASON_ESCAPE);
		return;
	}
	if (evbuffer_get_length(s->to_guest) >= sess.max_buffer) {
		s->in_paused = 1;
		bufferevent_disable(bev, EV_READ);
	}
	session_queue_input(s);
}

/* Client output drained: resume the console, or finish closing. */
static void
session_write_cb(struct bufferevent *bev, void *arg)
{
	struct session	*s = arg;

	if (s->state == SESSION_CLOSING) {
		if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
			session_destroy(s);
		return;
	}
	if (s->out_paused) {
		s->out_paused = 0;
		evtimer_del(s->ev_slow);
		session_stream_update(s);
	}
}

static void
session_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct session	*s = arg;

	if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
		return;
	if (s->state == SESSION_CLOSING) {
		session_destroy(s);
		return;
	}
	session_end(s, (what & BEV_EVENT_EOF) ? REASON_CLIENT_CLOSED :
	    REASON_CLIENT_ERROR);
}

static void
session_wait_cb(evutil_socket_t fd, short what, void *arg)
{
	session_end(arg, REASON_NOT_RUNNING);
}

static void
session_slow_cb(evutil_socket_t fd, short what, void *arg)
{
	session_end(arg, REASON_TOO_SLOW);
}

static void
session_linger_cb(evutil_socket_t fd, short what, void *arg)
{
	struct session	*s = arg;

	if (s->bev == NULL)
		s->draining = 0;	/* SESSION_DRAIN is over */
	session_destroy(s);
}

static void
session_idle_arm(struct session *s, double remaining)
{
	struct timeval	tv;

	if (sess.idle_timeout == 0 || s->state != SESSION_ATTACHED) {
		evtimer_del(s->ev_idle);
		return;
	}
	if (remaining < 0.05)
		remaining = 0.05;
	tv.tv_sec = (time_t)remaining;
	tv.tv_usec = (suseconds_t)((remaining - (double)tv.tv_sec) * 1e6);
	evtimer_add(s->ev_idle, &tv);
}

/*
 * The idle timer is not re-armed on every keystroke: it fires, looks at
 * the time of the last activity, and sleeps again for what is left.
 */
static void
session_idle_cb(evutil_socket_t fd, short what, void *arg)
{
	struct session	*s = arg;
	double		 idle;

	/* Input held back for a slow console is activity. */
	if (s->in_paused)
		session_touch(s);
	idle = session_elapsed(&s->active);

	if (idle >= (double)sess.idle_timeout)
		session_end(s, REASON_IDLE);
	else
		session_idle_arm(s, (double)sess.idle_timeout - idle);
}

/* Open the console stream of a running guest. */
static void
session_attach(struct session *s)
{
	enum stream_open_result	result;
	static const enum session_reason reasons[] = {
		[STREAM_NO_GUEST] = REASON_UNKNOWN_GUEST,
		[STREAM_NOT_RUNNING] = REASON_NOT_RUNNING,
		[STREAM_BUSY] = REASON_BUSY,
	};

	session_set_state(s, SESSION_OPENING, "guest running");
	if ((s->st = stream_ops->open(s->uuid, s->alias, sess.force,
	    &result)) == NULL) {
		session_end(s, result > STREAM_OPENED && result <= STREAM_BUSY ?
		    reasons[result] : REASON_BUSY);
		return;
	}
	s->st_events = STREAM_EV_READABLE | STREAM_EV_ERROR | STREAM_EV_HANGUP;
	if (stream_ops->watch(s->st, s->st_events, session_stream_cb,
	    s) == -1) {
		log_warnx("session %u: cannot watch the console stream: %s",
		    s->id, log_esc(stream_ops->error()));
		stream_ops->close(s->st, 0);
		s->st = NULL;
		session_end(s, REASON_BUSY);
		return;
	}
	session_set_state(s, SESSION_ATTACHED, "console opened");
	session_touch(s);
	session_idle_arm(s, (double)sess.idle_timeout);
	/* Input typed while waiting goes out now. */
	session_queue_input(s);
}

/*
 * A client arrives for a guest's console (alias NULL: the first console).
 * The session owns bev from here on, whatever happens.  A front door that
 * speaks a protocol of its own passes a door: at the end the session hands
 * bev back to door->close(), which sends the notice its own way and frees
 * bev; without one, the notice is written as raw bytes.
 */
struct session *
session_open(struct guest *g, const char *alias, struct bufferevent *bev,
    const char *peer, const struct session_door *door, void *door_arg)
{
	struct session	*s, *old;

	s = xcalloc(1, sizeof *s);
	s->id = ++sess.next_id;
	s->state = SESSION_NEW;
	memcpy(s->uuid, g->uuid, sizeof s->uuid);
	s->guest = xstrdup(g->name);
	if (alias == NULL)
		alias = guest_default_alias(g);
	s->alias = xstrdup(alias != NULL ? alias : "-");
	s->peer = xstrdup(peer != NULL ? peer : "-");
	s->bev = bev;
	s->door = door;
	s->door_arg = door_arg;
	s->to_guest = evbuffer_new();
	s->ev_wait = evtimer_new(sess.base, session_wait_cb, s);
	s->ev_idle = evtimer_new(sess.base, session_idle_cb, s);
	s->ev_slow = evtimer_new(sess.base, session_slow_cb, s);
	s->ev_linger = evtimer_new(sess.base, session_linger_cb, s);
	if (s->to_guest == NULL || s->ev_wait == NULL || s->ev_idle == NULL ||
	    s->ev_slow == NULL || s->ev_linger == NULL)
		fatalx("session: out of memory");
	clock_gettime(CLOCK_MONOTONIC, &s->started);
	s->active = s->started;
	sess.live++;

	bufferevent_setcb(bev, session_read_cb, session_write_cb,
	    session_event_cb, s);
	/* Read at most one chunk at a time; the rest waits in the kernel. */
	bufferevent_setwatermark(bev, EV_READ, 0, SESSION_CHUNK);
	/* Wake the write callback once output drains to half the cap. */
	bufferevent_setwatermark(bev, EV_WRITE, sess.max_buffer / 2, 0);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	log_info("session %u guest=%s dev=%s: client peer=%s", s->id,
	    log_esc(s->guest), log_esc(s->alias), log_esc(s->peer));

	if (alias == NULL || !guest_has_alias(g, alias)) {
		log_info("session %u guest=%s: no console %s", s->id,
		    log_esc(s->guest), log_esc(s->alias));
		session_end(s, REASON_UNKNOWN_GUEST);
		return NULL;
	}
	if ((old = session_lookup(s->uuid, s->alias)) != NULL) {
		if (sess.policy == POLICY_REFUSE) {
			session_end(s, REASON_BUSY);
			return NULL;
		}
		session_end(old, REASON_TAKEN_OVER);
	}
	TAILQ_INSERT_TAIL(&sess.table, s, entry);
	s->in_table = 1;

	if (!g->active) {
		if (sess.start_wait == 0) {
			session_end(s, REASON_NOT_RUNNING);
			return NULL;
		}
		session_set_state(s, SESSION_WAITING, "guest not running");
		timer_arm(s->ev_wait, sess.start_wait);
		return s;
	}
	session_attach(s);
	return s->state == SESSION_ATTACHED ? s : NULL;
}

void
session_guest_started(struct guest *g)
{
	struct session	*s, *next;

	TAILQ_FOREACH_SAFE(s, &sess.table, entry, next) {
		if (s->state == SESSION_WAITING &&
		    strcmp(s->uuid, g->uuid) == 0) {
			evtimer_del(s->ev_wait);
			session_attach(s);
		}
	}
}

/* The guest stopped: attached sessions end; waiting ones keep waiting. */
void
session_guest_stopped(struct guest *g, enum session_reason reason)
{
	struct session	*s, *next;

	TAILQ_FOREACH_SAFE(s, &sess.table, entry, next) {
		if (s->state != SESSION_WAITING &&
		    strcmp(s->uuid, g->uuid) == 0)
			session_end(s, reason);
	}
	session_unpark_guest(g->uuid);
}

/* The guest is gone for good (undefined, or a transient guest stopped). */
void
session_guest_removed(struct guest *g)
{
	struct session	*s, *next;

	TAILQ_FOREACH_SAFE(s, &sess.table, entry, next) {
		if (strcmp(s->uuid, g->uuid) == 0)
			session_end(s, s->state == SESSION_WAITING ?
			    REASON_UNKNOWN_GUEST : REASON_GUEST_STOPPED);
	}
	session_unpark_guest(g->uuid);
}

/* Every session in the table, for the control socket's list. */
void
session_foreach(void (*fn)(const struct session_info *, void *), void *arg)
{
	struct session		*s;
	struct session_info	 si;

	TAILQ_FOREACH(s, &sess.table, entry) {
		si.id = s->id;
		si.guest = s->guest;
		si.uuid = s->uuid;
		si.alias = s->alias;
		si.state = session_state_name(s->state);
		si.peer = s->peer;
		si.bytes_in = s->bytes_in;
		si.bytes_out = s->bytes_out;
		si.idle = session_elapsed(&s->active);
		si.age = session_elapsed(&s->started);
		fn(&si, arg);
	}
}

/* End the sessions of a guest (by name or UUID), one console or all. */
unsigned int
session_kick_guest(const char *guest, const char *alias,
    enum session_reason reason)
{
	struct session	*s, *next;
	unsigned int	 n = 0;

	TAILQ_FOREACH_SAFE(s, &sess.table, entry, next) {
		/* As guest_lookup(): a UUID-shaped name is a UUID only. */
		if ((guest_uuid_shaped(guest) ? strcasecmp(s->uuid,
		    guest) == 0 : strcmp(s->guest, guest) == 0) &&
		    (alias == NULL || strcmp(s->alias, alias) == 0)) {
			session_end(s, reason);
			n++;
		}
	}
	return n;
}

/* Whether a console has a client now. */
int
session_busy(const char *uuid, const char *alias)
{
	return session_lookup(uuid, alias) != NULL;
}

/* End one session from outside (administrator, reload). */
void
session_kick(struct session *s, enum session_reason reason)
{
	session_end(s, reason);
}

void
session_end_all(enum session_reason reason)
{
	struct session	*s, *next;

	while ((s = TAILQ_FIRST(&sess.table)) != NULL)
		session_end(s, reason);
	/* Input left by clients that are gone: not for this connection. */
	for (s = TAILQ_FIRST(&sess.sendq); s != NULL; s = next) {
		next = TAILQ_NEXT(s, sendq_entry);
		if (s->draining && s->bev == NULL) {
			s->draining = 0;
			session_destroy(s);
		}
	}
	/* Shutdown, or the connection is gone: no stop event will come. */
	session_unpark_all();
}

unsigned int
session_count(void)
{
	struct session	*s;
	unsigned int	 n = 0;

	TAILQ_FOREACH(s, &sess.table, entry)
		n++;
	return n;
}

/* Sessions not yet destroyed: in the table, or draining a notice. */
unsigned int
session_live(void)
{
	return sess.live;
}

void
session_reconfigure(const struct config *conf)
{
	struct session	*s;
	unsigned int	 old_idle = sess.idle_timeout;

	sess.policy = conf->policy;
	sess.force = conf->force;
	sess.start_wait = conf->start_wait;
	sess.idle_timeout = conf->idle_timeout;
	sess.idle_output_resets = conf->idle_output_resets;
	sess.escape = conf->escape;
	sess.max_buffer = conf->max_buffer;
	if (old_idle == sess.idle_timeout)
		return;
	/* A changed idle_timeout applies to live sessions at once. */
	TAILQ_FOREACH(s, &sess.table, entry) {
		if (s->state == SESSION_ATTACHED)
			session_idle_arm(s, (double)sess.idle_timeout -
			    session_elapsed(&s->active));
	}
}

void
session_init(struct event_base *base, const struct config *conf)
{
	sess.base = base;
	evtimer_assign(&sess.ev_pump, base, session_pump_cb, NULL);
	session_reconfigure(conf);
}
