/*
 * Console sessions: one object per client of a guest console, an explicit
 * state machine driven by a table, and the table of sessions that enforces
 * one client (the writer) per console.
 *
 *   NEW -> WAITING -> OPENING -> ATTACHED -> CLOSING -> DEAD
 *            (guest       (console    (bytes      (notice
 *          not running)   opening)    flowing)    draining)
 *
 * session_table below holds the legal transitions (docs/SESSIONS.md has
 * the diagram, checked against it by tests/unit/test_fsmdoc);
 * session_step() is the only place a state changes, through fsm_step(),
 * which logs every transition with its reason.  session_end() is the one
 * way out: it takes the session out of the table at once (so the console
 * is free for the next client), lets go of the console, sends the notice,
 * and lets it drain.  session_destroy() then releases the client and every
 * event; the memory is freed later, from the loop (event_base_once), so no
 * callback still on the stack can touch freed memory.  A session is in the
 * table exactly while it is WAITING, OPENING or ATTACHED.
 *
 * Keys are the guest's UUID plus the console alias; "no alias" is resolved
 * to the guest's first console before the table is consulted.  Each
 * console has at most one writer (the rule above, with `policy`) and up to
 * max_viewers viewers beside it, in the same table: a viewer is a session
 * whose input never reaches the guest (dropped, counted, and the client
 * told once), whose escape byte still ends it, and that never counts
 * against the writer rule; it comes and goes without touching the writer,
 * and the writer without touching it.  Clients whose door frames messages
 * hear `clients` (is there a writer, how many viewers) when that changes.
 * The console itself (its stream, the input on its way to the guest, the
 * parking of streams of stopping guests) is console.c's; a session is one
 * client attached to it, hearing from it through session_console_ops.
 *
 * Memory is bounded per session by max_buffer in each direction:
 * - guest to client: the console reads guest output whatever happens
 *   (libvirt would otherwise queue it without limit), and a session keeps
 *   it only while its client's pending output is under max_buffer.  Past
 *   that, output is dropped (and counted) and a SESSION_SLOW_GRACE timer
 *   starts; if the client has not drained to half of max_buffer by then,
 *   it is disconnected with "client too slow".
 * - client to guest: input is read only while less than max_buffer waits
 *   in the console; reading resumes below half of it.
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

#include "virtconsoled.h"

#define SESSION_CHUNK		(64 * 1024)	/* client read unit */
#define SESSION_SLOW_GRACE	5	/* seconds at the cap */
#define SESSION_LINGER		2	/* seconds to drain a notice */
#define SESSION_DRAIN		30	/* seconds for input left by a client */
/* Told once to a viewer that types (docs/SESSIONS.md, a contract). */
#define VIEW_ONLY_TEXT		"view only: input is not sent to the guest"

enum session_event {
	SESSION_EV_WAIT = 0,	/* the guest is not running */
	SESSION_EV_OPEN,	/* the guest runs: open its console */
	SESSION_EV_OPENED,	/* the console is open */
	SESSION_EV_LEFT,	/* the client closed, its input not yet sent */
	SESSION_EV_END,		/* any reason: session_end() */
	SESSION_EV_DONE,	/* the notice is out, or cannot go */
	SESSION_EV_DRAIN,	/* the client is gone, its input is not */
	SESSION_EV_DRAINED,	/* the input is out, or never will be */
	SESSION_NEVENTS
};

static const char *const session_state_names[] = {
	[SESSION_NEW] = "NEW",
	[SESSION_WAITING] = "WAITING",
	[SESSION_OPENING] = "OPENING",
	[SESSION_ATTACHED] = "ATTACHED",
	[SESSION_LEFT] = "LEFT",
	[SESSION_CLOSING] = "CLOSING",
	[SESSION_DRAINING] = "DRAINING",
	[SESSION_DEAD] = "DEAD",
};

static const char *const session_event_names[SESSION_NEVENTS] = {
	[SESSION_EV_WAIT] = "wait",
	[SESSION_EV_OPEN] = "open",
	[SESSION_EV_OPENED] = "opened",
	[SESSION_EV_LEFT] = "left",
	[SESSION_EV_END] = "end",
	[SESSION_EV_DONE] = "done",
	[SESSION_EV_DRAIN] = "drain",
	[SESSION_EV_DRAINED] = "drained",
};

/* The legal transitions; every other (state, event) is a bug. */
static const signed char session_table[SESSION_DEAD + 1][SESSION_NEVENTS] = {
	[SESSION_NEW] = {
		[SESSION_EV_WAIT] = FSM_TO(SESSION_WAITING),
		[SESSION_EV_OPEN] = FSM_TO(SESSION_OPENING),
		[SESSION_EV_END] = FSM_TO(SESSION_CLOSING),
	},
	[SESSION_WAITING] = {
		[SESSION_EV_OPEN] = FSM_TO(SESSION_OPENING),
		[SESSION_EV_END] = FSM_TO(SESSION_CLOSING),
	},
	[SESSION_OPENING] = {
		[SESSION_EV_OPENED] = FSM_TO(SESSION_ATTACHED),
		[SESSION_EV_LEFT] = FSM_TO(SESSION_LEFT),
		[SESSION_EV_END] = FSM_TO(SESSION_CLOSING),
	},
	[SESSION_LEFT] = {
		[SESSION_EV_OPENED] = FSM_TO(SESSION_ATTACHED),
		[SESSION_EV_END] = FSM_TO(SESSION_CLOSING),
	},
	[SESSION_ATTACHED] = {
		[SESSION_EV_END] = FSM_TO(SESSION_CLOSING),
	},
	[SESSION_CLOSING] = {
		[SESSION_EV_DONE] = FSM_TO(SESSION_DEAD),
		[SESSION_EV_DRAIN] = FSM_TO(SESSION_DRAINING),
	},
	[SESSION_DRAINING] = {
		[SESSION_EV_DRAINED] = FSM_TO(SESSION_DEAD),
	},
};

static uint32_t	session_taken[(SESSION_DEAD + 1) * SESSION_NEVENTS];

struct fsm session_fsm = {
	"session", LOG_LEVEL_INFO, SESSION_DEAD + 1, SESSION_NEVENTS,
	session_state_names, session_event_names, &session_table[0][0],
	session_taken,
};

struct session {
	unsigned int		 id;
	int			 state;		/* enum session_state */
	enum session_reason	 reason;	/* why it ended, for the log */
	char			 hv[CONFIG_HV_NAME_MAX + 1];	/* its name */
	char			 uuid[GUEST_UUID_LEN];
	char			*guest;
	char			*alias;
	char			*peer;
	char			*label;		/* the credential's, or "" */
	enum session_role	 role;
	struct rec		*rec;		/* record_dir: a writer's */
	struct bufferevent	*bev;		/* the client */
	struct console_client	*console;	/* OPENING to DRAINING */
	struct event		*ev_wait;	/* start_wait */
	struct event		*ev_idle;	/* idle_timeout */
	struct event		*ev_slow;	/* client too slow */
	struct event		*ev_linger;	/* notice, input drain deadline */
	struct timespec		 started;
	struct timespec		 active;	/* last activity */
	uint64_t		 bytes_in;	/* client to guest */
	uint64_t		 bytes_out;	/* guest to client */
	uint64_t		 bytes_dropped;	/* output past max_buffer */
	uint64_t		 bytes_ignored;	/* a viewer's input */
	int			 told_view_only;
	int			 told_writer;	/* the last `clients` sent */
	unsigned int		 told_viewers;
	const struct session_door *door;	/* the front door's hooks */
	void			*door_arg;
	enum session_door_kind	 door_kind;
	struct session_start	 start;		/* where output starts */
	struct history_pos	 pos;		/* the client's next byte */
	int			 behind;	/* output from the history */
	int			 overflow;	/* the door took no more
						   messages: ends soon */
	int			 replaying;	/* the first catch-up */
	uint64_t		 replayed;	/* bytes of it */
	uint64_t		 written;	/* to bev, for door messages */
	/*
	 * Residence to the client, when the door does not time it: bytes
	 * of bev's output gone to the socket, and the chunks not yet out.
	 */
	struct evbuffer_cb_entry *out_cbe;
	struct lat_stream	 out_lat;
	uint64_t		 read_at;	/* the client's last read */
	char			 resume[SESSION_RESUME_LEN + 1];
	TAILQ_ENTRY(session)	 entry;
};
TAILQ_HEAD(sessions, session);

static struct {
	struct event_base	*base;
	struct sessions		 table;
	unsigned int		 next_id;
	unsigned int		 live;		/* not yet destroyed */
	enum config_policy	 policy;
	int			 force;
	unsigned int		 start_wait;
	unsigned int		 idle_timeout;
	int			 idle_output_resets;
	int			 escape;
	size_t			 max_buffer;
	unsigned int		 max_viewers;
	size_t			 attach_replay;	/* history to unix clients */
	int			 record_required;
	struct session_counters	 count;		/* live unused here */
} sess = {
	.table = TAILQ_HEAD_INITIALIZER(sess.table),
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
	[REASON_HV_REMOVED] = { "hypervisor removed", 0 },
	[REASON_SHUTDOWN] = { "daemon shutting down", 0 },
	[REASON_TOO_SLOW] = { "client too slow", 0 },
	[REASON_KICKED] = { "kicked by administrator", 0 },
	[REASON_LISTENER_REMOVED] = { "listener removed", 0 },
	[REASON_EXPIRED] = { "session expired", 0 },
	[REASON_CONSOLE_LOST] = { "console connection lost", 0 },
	[REASON_BUSY] = { "console busy", 1 },
	[REASON_NOT_RUNNING] = { "guest not running", 1 },
	[REASON_UNKNOWN_GUEST] = { "unknown guest", 1 },
	[REASON_TOO_MANY] = { "too many clients", 1 },
	[REASON_RECORDING_FAILED] = { "recording failed", 1 },
	[REASON_CLIENT_CLOSED] = { "client closed", -1 },
	[REASON_CLIENT_ERROR] = { "client error", -1 },
};

static void	session_destroy(struct session *);
static void	session_done(struct session *);
static void	session_opened(struct session *);
static void	session_attach(struct session *);
static void	session_end(struct session *, enum session_reason);
static void	session_tell_clients_all(const char *, const char *,
		    const char *);

const char *
session_state_name(enum session_state state)
{
	return fsm_state_name(&session_fsm, (int)state);
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

/* The only place a session changes state: 0 done, -1 a bug (refused). */
static int
session_step(struct session *s, enum session_event ev, const char *why)
{
	return fsm_step(&session_fsm, &s->state, (int)ev, why,
	    "session %u guest=%s dev=%s", s->id, log_esc(s->guest),
	    log_esc(s->alias));
}

/* Whether the session holds its console in the table. */
static int
session_in_table(const struct session *s)
{
	return s->state == SESSION_WAITING || s->state == SESSION_OPENING ||
	    s->state == SESSION_ATTACHED || s->state == SESSION_LEFT;
}

/* Client input held back because the console has max_buffer waiting. */
static int
session_input_held(const struct session *s)
{
	return s->state == SESSION_ATTACHED && s->bev != NULL &&
	    !(bufferevent_get_enabled(s->bev) & EV_READ);
}

static void
session_free(evutil_socket_t fd, short what, void *arg)
{
	struct session	*s = arg;

	free(s->guest);
	free(s->alias);
	free(s->peer);
	free(s->label);
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

const char *
session_role_name(enum session_role role)
{
	return role == SESSION_VIEWER ? "viewer" : "writer";
}

static int
session_of(const struct session *s, const char *hv, const char *uuid,
    const char *alias)
{
	return strcmp(s->uuid, uuid) == 0 && strcmp(s->hv, hv) == 0 &&
	    strcmp(s->alias, alias) == 0;
}

/* Whether the session is a client of one of guest g's consoles. */
static int
session_of_guest(const struct session *s, const struct guest *g)
{
	return strcmp(s->uuid, g->uuid) == 0 &&
	    strcmp(s->hv, guest_hv_name(g)) == 0;
}

/* The console's writer, or NULL. */
static struct session *
session_lookup(const char *hv, const char *uuid, const char *alias)
{
	struct session	*s;

	TAILQ_FOREACH(s, &sess.table, entry) {
		if (s->role == SESSION_WRITER && session_of(s, hv, uuid, alias))
			return s;
	}
	return NULL;
}

/* Whether the console has a writer (*writer), and its viewers. */
static unsigned int
session_tally(const char *hv, const char *uuid, const char *alias,
    int *writer)
{
	struct session	*s;
	unsigned int	 viewers = 0;

	*writer = 0;
	TAILQ_FOREACH(s, &sess.table, entry) {
		if (!session_of(s, hv, uuid, alias))
			continue;
		if (s->role == SESSION_VIEWER)
			viewers++;
		else
			*writer = 1;
	}
	return viewers;
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

static void	session_view_only(struct session *);

/*
 * Move the client's input to the console, up to the escape byte.  1 if
 * the escape byte came: it and everything after it are dropped.  A
 * viewer's input goes nowhere: counted, and the client told once.
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
	if (n > 0 && s->role == SESSION_VIEWER) {
		evbuffer_drain(in, n);
		s->bytes_ignored += (uint64_t)n;
		session_view_only(s);
	} else if (n > 0) {
		rec_input(s->rec, data, n);
		console_input(s->console, in, n, s->read_at);
	}
	if (esc == NULL)
		return 0;
	evbuffer_drain(in, evbuffer_get_length(in));
	return 1;
}

/* Let go of the console: input not yet sent is dropped (and logged). */
static void
session_detach(struct session *s)
{
	struct console_client	*cl = s->console;

	if (cl != NULL) {
		s->console = NULL;
		console_detach(cl);
	}
}

/* Stop timing bev's output: it is handed to the door, or freed. */
static void
session_out_unwatch(struct session *s)
{
	bev_lat_unwatch(s->bev, &s->out_cbe, &s->out_lat);
}

/*
 * End a session for a reason.  Idempotent: the first reason wins.  It
 * leaves the table at once (the console is free for the next client).
 * When the client itself left (session_drains()), the input it typed
 * before its end still goes to the console: the session stays the
 * console's client, through CLOSING and DRAINING, until it is out.
 */
static void
session_end(struct session *s, enum session_reason reason)
{
	char	notice[128];
	size_t	n;
	int	drains = s->state == SESSION_ATTACHED && session_drains(reason);

	if (s->state >= SESSION_CLOSING)
		return;
	if (session_in_table(s)) {
		TAILQ_REMOVE(&sess.table, s, entry);
		session_tell_clients_all(s->hv, s->uuid, s->alias);
	}
	s->reason = reason;
	if (session_step(s, SESSION_EV_END, session_reason_text(reason)) == -1)
		return;
	evtimer_del(s->ev_wait);
	evtimer_del(s->ev_idle);
	evtimer_del(s->ev_slow);
	/* The console may call back: this session is CLOSING now. */
	if (drains && s->bev != NULL)
		(void)session_take_input(s);
	if (!drains)
		session_detach(s);

	n = session_notice(reason, notice, sizeof notice);
	if (s->door != NULL && s->door->close != NULL && s->bev != NULL) {
		/* The front door says goodbye in its own protocol. */
		session_out_unwatch(s);
		s->door->close(s->bev, reason, s->door_arg);
		s->bev = NULL;
	}
	if (n == 0 || s->bev == NULL) {
		session_done(s);
		return;
	}
	/* Send the notice after any pending output, then close. */
	bufferevent_disable(s->bev, EV_READ);
	bufferevent_write(s->bev, notice, n);
	rec_output(s->rec, notice, n);
	bufferevent_setwatermark(s->bev, EV_WRITE, 0, 0);
	bufferevent_enable(s->bev, EV_WRITE);
	timer_arm(s->ev_linger, SESSION_LINGER);
}

/*
 * The notice is out (or cannot go): the client goes now.  Input it left
 * keeps going to the console, for up to SESSION_DRAIN seconds (DRAINING).
 */
static void
session_done(struct session *s)
{
	if (s->bev != NULL) {
		session_out_unwatch(s);
		bufferevent_free(s->bev);
		s->bev = NULL;
	}
	if (s->console != NULL && console_input_pending(s->console) > 0) {
		if (session_step(s, SESSION_EV_DRAIN, "input left to send") ==
		    0)
			timer_arm(s->ev_linger, SESSION_DRAIN);
		return;
	}
	session_detach(s);
	if (session_step(s, SESSION_EV_DONE, "destroyed") == 0)
		session_destroy(s);
}

/* The input a client left is out, or never will be. */
static void
session_drained(struct session *s, const char *why)
{
	session_detach(s);
	if (session_step(s, SESSION_EV_DRAINED, why) == 0)
		session_destroy(s);
}

/* DEAD: release the events now; the memory on a later pass. */
static void
session_destroy(struct session *s)
{
	log_info("session %u guest=%s dev=%s: ended reason=\"%s\" peer=%s "
	    "role=%s duration=%.1fs bytes_in=%llu bytes_out=%llu "
	    "bytes_dropped=%llu bytes_ignored=%llu", s->id, log_esc(s->guest),
	    log_esc(s->alias), session_reason_text(s->reason),
	    log_esc(s->peer), session_role_name(s->role),
	    session_elapsed(&s->started), (unsigned long long)s->bytes_in,
	    (unsigned long long)s->bytes_out,
	    (unsigned long long)s->bytes_dropped,
	    (unsigned long long)s->bytes_ignored);
	if (session_reason_refused(s->reason) == 1)
		sess.count.refused[s->reason]++;
	else if (s->reason != REASON_NONE && s->reason < REASON_MAX)
		sess.count.ended[s->reason]++;
	event_free(s->ev_wait);
	event_free(s->ev_idle);
	event_free(s->ev_slow);
	event_free(s->ev_linger);
	s->ev_wait = s->ev_idle = s->ev_slow = s->ev_linger = NULL;
	rec_close(s->rec);
	s->rec = NULL;
	sess.live--;
	session_free_later(s);
}

/* The console this session is opening is open. */
static void
session_console_opened(void *arg)
{
	struct session	*s = arg;

	if (s->state == SESSION_OPENING || s->state == SESSION_LEFT)
		session_opened(s);
}

/* Whether the session's door frames messages beside the bytes. */
static int
session_frames(const struct session *s)
{
	return s->door != NULL && s->door->message != NULL;
}

/*
 * Hand the door a message (one JSON object in b, freed here), after the
 * bytes written so far.  0 when taken or when the door frames none.  A
 * door that holds too many: the session sends nothing more and ends
 * "client too slow" from the loop (not here: this may run inside the
 * console's delivery of output, which must not see its client go).
 */
static int
session_message(struct session *s, struct evbuffer *b)
{
	int	rc = 0;

	if (s->overflow)
		rc = -1;
	else if (session_frames(s) && s->bev != NULL)
		rc = s->door->message(s->door_arg,
		    (const char *)evbuffer_pullup(b, -1),
		    evbuffer_get_length(b), s->written);
	evbuffer_free(b);
	if (rc == -1 && !s->overflow) {
		s->overflow = s->behind = 1;
		timer_arm(s->ev_slow, 0);
		log_info("session %u guest=%s dev=%s: too many messages "
		    "queued for the client", s->id, log_esc(s->guest),
		    log_esc(s->alias));
	}
	return rc;
}

static int	session_tell_clients(struct session *, int, unsigned int);

static struct evbuffer *
session_json(const char *type)
{
	struct evbuffer	*b;

	if ((b = evbuffer_new()) == NULL)
		fatalx("session: out of memory");
	evbuffer_add_printf(b, "{\"type\":\"%s\"", type);
	return b;
}

/* Bytes [from, to) are not sent (unknown: lost, length not known). */
static int
session_tell_gap(struct session *s, uint64_t from, uint64_t to, int unknown)
{
	struct evbuffer	*b;

	if (!session_frames(s))
		return 0;
	b = session_json("gap");
	evbuffer_add_printf(b, ",\"from\":%llu,\"to\":%llu%s}",
	    (unsigned long long)from, (unsigned long long)to,
	    unknown ? ",\"unknown\":true" : "");
	return session_message(s, b);
}

/* The bytes that follow are of another run, from its offset 0. */
static int
session_tell_run(struct session *s, uint64_t run)
{
	struct evbuffer	*b;

	if (!session_frames(s))
		return 0;
	b = session_json("run");
	evbuffer_add_printf(b, ",\"run\":\"%llx\"}",
	    (unsigned long long)run);
	return session_message(s, b);
}

/* The first message of an accepted session, and who is attached. */
static int
session_tell_hello(struct session *s)
{
	struct evbuffer	*b;
	unsigned int	 viewers;
	int		 writer;

	if (!session_frames(s))
		return 0;
	b = session_json("hello");
	evbuffer_add(b, ",\"guest\":", 9);
	json_add_string(b, s->guest);
	evbuffer_add_printf(b, ",\"uuid\":\"%s\",\"hypervisor\":\"%s\","
	    "\"console\":", s->uuid, s->hv);
	json_add_string(b, s->alias);
	evbuffer_add_printf(b, ",\"role\":\"%s\",\"run\":\"%llx\","
	    "\"offset\":%llu,\"resume\":\"%s\"}", session_role_name(s->role),
	    (unsigned long long)s->pos.run, (unsigned long long)s->pos.offset,
	    s->resume);
	if (session_message(s, b) == -1)
		return -1;
	s->told_writer = -1;	/* whatever it is, it is news */
	viewers = session_tally(s->hv, s->uuid, s->alias, &writer);
	return session_tell_clients(s, writer, viewers);
}

/*
 * Who is attached to the session's console: whether there is a writer,
 * how many viewers (never who).  Only when it changed since the last.
 */
static int
session_tell_clients(struct session *s, int writer, unsigned int viewers)
{
	struct evbuffer	*b;

	if (!session_frames(s) || s->state != SESSION_ATTACHED ||
	    (writer == s->told_writer && viewers == s->told_viewers))
		return 0;
	s->told_writer = writer;
	s->told_viewers = viewers;
	b = session_json("clients");
	evbuffer_add_printf(b, ",\"writer\":%s,\"viewers\":%u}",
	    writer ? "true" : "false", viewers);
	return session_message(s, b);
}

/*
 * A client came to or left a console: tell its attached clients (the
 * count once: a console's clients come and go in linear time).
 */
static void
session_tell_clients_all(const char *hv, const char *uuid,
    const char *alias)
{
	struct session	*s;
	unsigned int	 viewers;
	int		 writer;

	viewers = session_tally(hv, uuid, alias, &writer);
	TAILQ_FOREACH(s, &sess.table, entry) {
		if (session_of(s, hv, uuid, alias))
			(void)session_tell_clients(s, writer, viewers);
	}
}

/*
 * Bytes to the client: to the door's own write while nothing waits in
 * bev, else to bev (what a socket takes at once counts as sent).
 */
static void
session_write(struct session *s, const char *buf, size_t n)
{
	if (s->door != NULL && s->door->write != NULL &&
	    evbuffer_get_length(bufferevent_get_output(s->bev)) == 0 &&
	    s->door->write(s->door_arg, buf, n) == n)
		return;
	lat_stream_gone(&s->out_lat, (uint64_t)bev_write_now(s->bev, buf, n));
}

/*
 * A viewer typed: it is told once that its input goes nowhere, as a
 * `notice` message, or as a line among the bytes for a raw client.
 */
static void
session_view_only(struct session *s)
{
	static const char	 line[] = "\r\n[virtconsoled] " VIEW_ONLY_TEXT
	    "\r\n";
	struct evbuffer		*b;

	if (s->told_view_only || s->bev == NULL)
		return;
	s->told_view_only = 1;
	log_info("session %u guest=%s dev=%s: a viewer typed: its input is "
	    "dropped", s->id, log_esc(s->guest), log_esc(s->alias));
	if (session_frames(s)) {
		b = session_json("notice");
		evbuffer_add_printf(b, ",\"text\":\"%s\"}", VIEW_ONLY_TEXT);
		(void)session_message(s, b);
		return;
	}
	session_write(s, line, sizeof line - 1);
	s->written += sizeof line - 1;
}

/*
 * Guest output read at t0 (0: from the history, not timed) is in bev up to
 * s->written: time it to the client's socket, or have the door do it.
 */
static void
session_stamp(struct session *s, uint64_t t0)
{
	struct evbuffer	*out;

	if (t0 == 0)
		return;
	if (s->door != NULL && s->door->stamp != NULL) {
		s->door->stamp(s->door_arg, s->written, t0);
		return;
	}
	if (s->out_cbe == NULL)
		return;
	out = bufferevent_get_output(s->bev);
	lat_stream_mark(&s->out_lat, evbuffer_get_length(out), t0);
}

/* Write guest output to the client (read at t0, or 0: not timed). */
static void
session_send(struct session *s, const char *buf, size_t n, uint64_t t0)
{
	session_write(s, buf, n);
	rec_output(s->rec, buf, n);
	s->written += (uint64_t)n;
	session_stamp(s, t0);
	s->bytes_out += (uint64_t)n;
	sess.count.to_client[s->door_kind] += (uint64_t)n;
	/* A viewer never types: what it watches is its activity. */
	if (sess.idle_output_resets || s->role == SESSION_VIEWER)
		session_touch(s);
}

/*
 * Behind the console: send from the history at s->pos while the client's
 * pending output is under max_buffer (session_write_cb calls again when it
 * drains to half), telling gaps and runs to a door that frames them, until
 * the reader reaches the end of the current run: live from there.
 */
static void
session_pump(struct session *s)
{
	const struct history	*h;
	struct history_run_info	 oldest;
	struct history_read	 rd;
	size_t			 pending;
	int			 rc = 0;

	while (rc == 0 && s->behind && !s->overflow &&
	    s->state == SESSION_ATTACHED) {
		h = console_client_history(s->console);
		pending = evbuffer_get_length(bufferevent_get_output(s->bev));
		if (pending >= sess.max_buffer)
			return;
		switch (history_read(h, &s->pos, sess.max_buffer - pending,
		    &rd)) {
		case HISTORY_BYTES:
			session_send(s, rd.data, rd.len, 0);
			if (s->replaying)
				s->replayed += (uint64_t)rd.len;
			break;
		case HISTORY_GAP:
			rc = session_tell_gap(s, rd.from, rd.to, 0);
			break;
		case HISTORY_GAP_UNKNOWN:
			rc = session_tell_gap(s, rd.from, rd.to, 1);
			break;
		case HISTORY_END:
			if (rd.next_run != 0) {
				rc = session_tell_run(s, rd.next_run);
				rd.next.run = rd.next_run;
				rd.next.offset = 0;
				rd.next.gap_told = 0;
				break;
			}
			s->behind = 0;
			if (s->replaying && s->replayed > 0)
				log_info("session %u guest=%s dev=%s: %llu bytes "
				    "of history replayed", s->id,
				    log_esc(s->guest), log_esc(s->alias),
				    (unsigned long long)s->replayed);
			s->replaying = 0;
			break;
		case HISTORY_NO_RUN:
		case HISTORY_BEYOND:
			/* The run was dropped under the reader: a loss. */
			(void)history_runs(h, &oldest, 1);
			rc = session_tell_gap(s, s->pos.offset, s->pos.offset,
			    1);
			if (rc == 0)
				rc = session_tell_run(s, oldest.id);
			rd.next.run = oldest.id;
			rd.next.offset = 0;
			rd.next.gap_told = 0;
			break;
		}
		s->pos = rd.next;
	}
}

/*
 * Guest output from the console, kept up to max_buffer.  Past it, a
 * session whose door frames messages falls behind and reads the rest from
 * the history as its client drains (a gap only if the history lost it
 * meanwhile); a raw one drops it.
 */
static void
session_console_output(void *arg, const char *buf, size_t len,
    uint64_t t0)
{
	struct session		*s = arg;
	const struct history	*h;
	struct evbuffer		*out;
	size_t			 pending, room, n;

	if (s->state != SESSION_ATTACHED || s->behind)
		return;		/* behind: the history has it */
	h = console_client_history(s->console);
	if (history_run(h) != s->pos.run ||
	    history_offset(h) - len != s->pos.offset) {
		/* Not where the client stands: the history tells how. */
		s->behind = 1;
		session_pump(s);
		return;
	}
	out = bufferevent_get_output(s->bev);
	pending = evbuffer_get_length(out);
	room = pending < sess.max_buffer ? sess.max_buffer - pending : 0;
	n = len < room ? len : room;
	if (n > 0) {
		session_send(s, buf, n, t0);
		s->pos.offset += (uint64_t)n;
		s->pos.gap_told = 0;
	}
	if (n < len) {
		if (session_frames(s))
			s->behind = 1;
		else {
			s->bytes_dropped += (uint64_t)(len - n);
			sess.count.dropped[s->door_kind] += (uint64_t)(len - n);
			s->pos.offset += (uint64_t)(len - n);
			s->pos.gap_told = 0;
		}
	}
	/* The door's own write took it all: bev's drain will not call. */
	if (s->behind && evbuffer_get_length(out) == 0) {
		session_pump(s);
		if (s->bev == NULL)
			return;
	}
	if (evbuffer_get_length(out) >= sess.max_buffer &&
	    !evtimer_pending(s->ev_slow, NULL)) {
		timer_arm(s->ev_slow, SESSION_SLOW_GRACE);
		log_debug("session %u: client output at max_buffer, "
		    "%s output for up to %ds", s->id, s->behind ?
		    "holding back" : "dropping", SESSION_SLOW_GRACE);
	}
}

/* The console ended under the session (guest stopped, stream failed). */
static void
session_console_ended(void *arg, enum session_reason reason)
{
	struct session	*s = arg;

	if (s->state == SESSION_DRAINING)
		session_drained(s, session_reason_text(reason));
	else if (s->state == SESSION_CLOSING)
		session_detach(s);	/* the notice goes on */
	else
		session_end(s, reason);
}

/* Some of the input went to the guest: read again below half the cap. */
static void
session_console_input_sent(void *arg, size_t n, size_t pending)
{
	struct session	*s = arg;

	s->bytes_in += (uint64_t)n;
	sess.count.to_guest[s->door_kind] += (uint64_t)n;
	if (s->state == SESSION_DRAINING && pending == 0)
		session_drained(s, "input delivered");
	else if (session_input_held(s) && pending < sess.max_buffer / 2)
		bufferevent_enable(s->bev, EV_READ);
}

static const struct console_client_ops session_console_ops = {
	session_console_opened,
	session_console_output,
	session_console_ended,
	session_console_input_sent,
};

/*
 * Client input: everything before the escape byte goes to the console.
 * Before the console is open, input waits in the client's buffer (at most
 * SESSION_CHUNK, then the kernel holds the rest), and only the escape byte
 * is looked for.
 */
static void
session_read_cb(struct bufferevent *bev, void *arg)
{
	struct session	*s = arg;
	struct evbuffer	*in = bufferevent_get_input(bev);
	size_t		 len;

	if (s->state >= SESSION_CLOSING) {
		evbuffer_drain(in, evbuffer_get_length(in));
		return;
	}
	/* Where the input's residence starts: the door's read, or ours. */
	s->read_at = s->door != NULL && s->door->read_at != NULL ?
	    s->door->read_at(s->door_arg) : 0;
	if (s->read_at == 0)
		s->read_at = lat_now();
	session_touch(s);
	if (s->state != SESSION_ATTACHED) {
		len = evbuffer_get_length(in);
		if (session_find_escape((const char *)evbuffer_pullup(in,
		    (ssize_t)len), len, sess.escape) != NULL)
			session_end(s, REASON_ESCAPE);
		return;
	}
	if (session_take_input(s)) {
		session_end(s, REASON_ESCAPE);
		return;
	}
	if (s->state == SESSION_ATTACHED &&
	    console_input_pending(s->console) >= sess.max_buffer)
		bufferevent_disable(bev, EV_READ);
}

/* Client output drained: stop the slow timer, or finish closing. */
static void
session_write_cb(struct bufferevent *bev, void *arg)
{
	struct session	*s = arg;

	if (s->state == SESSION_CLOSING) {
		if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
			session_done(s);
		return;
	}
	if (!s->overflow)
		evtimer_del(s->ev_slow);
	session_pump(s);
}

static void
session_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct session	*s = arg;

	if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
		return;
	if (s->state == SESSION_CLOSING) {
		session_done(s);
		return;
	}
	if (s->state == SESSION_LEFT)
		return;
	/*
	 * A client that writes and closes at once (`echo cmd | socat -
	 * UNIX:...`) while its console opens: what it wrote goes once the
	 * console is open, as it would have if the open had been quick.
	 */
	if (s->state == SESSION_OPENING && (what & BEV_EVENT_EOF) &&
	    evbuffer_get_length(bufferevent_get_input(bev)) > 0) {
		if (session_step(s, SESSION_EV_LEFT, "client closed, input "
		    "waits for the console") == 0)
			bufferevent_disable(bev, EV_READ);
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

	if (s->state == SESSION_DRAINING)
		session_drained(s, "input not taken in time");
	else
		session_done(s);
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
	if (session_input_held(s))
		session_touch(s);
	idle = session_elapsed(&s->active);

	if (idle >= (double)sess.idle_timeout)
		session_end(s, REASON_IDLE);
	else
		session_idle_arm(s, (double)sess.idle_timeout - idle);
}

/* Whether id is s's resume id (in constant time: it is a secret). */
static int
session_resume_match(const struct session *s, const char *id)
{
	size_t		i;
	unsigned char	diff = 0;

	if (strlen(id) != SESSION_RESUME_LEN)
		return 0;
	for (i = 0; i < SESSION_RESUME_LEN; i++)
		diff |= (unsigned char)(s->resume[i] ^ id[i]);
	return diff == 0;
}

/* Open the console of a running guest. */
static void
session_attach(struct session *s)
{
	struct guest		*g;
	enum session_reason	 reason;
	char			 who[32], *mark;

	if (session_step(s, SESSION_EV_OPEN, "guest running") == -1)
		return;
	(void)snprintf(who, sizeof who, "session %u", s->id);
	/* Who, in the console log (docs/OPERATIONS.md, "Console logs"). */
	xasprintf(&mark, "session=%u role=%s door=%s%s%s%s", s->id,
	    session_role_name(s->role), session_door_name(s->door_kind),
	    s->label[0] != '\0' ? " label=\"" : "", s->label[0] != '\0' ?
	    log_esc(s->label) : "", s->label[0] != '\0' ? "\"" : "");
	g = guest_find(s->hv, s->uuid);
	s->console = console_attach(console_get(s->hv, s->uuid, s->alias,
	    s->guest, g != NULL ? g->domid : 0), &session_console_ops, s,
	    who, mark, &sess.count.forward[s->door_kind][SESSION_TO_GUEST],
	    &sess.count.send_call[s->door_kind]);
	free(mark);
	/* A viewer never takes a console from another holder. */
	switch (console_open(s->console, s->role == SESSION_WRITER ?
	    sess.force : 0, &reason)) {
	case -1:
		session_end(s, reason);
		return;
	case 1:
		return;		/* session_console_opened() comes */
	default:
		session_opened(s);
	}
}

/*
 * Where the last `bytes` of the current run start for a client: at a line
 * (history_tail_start()); for a raw client, which cannot be told a loss,
 * after the last loss inside the window, so that bytes from both sides of
 * one are never joined (a loss at the very end, the open now, is not
 * inside).
 */
static struct history_pos
session_tail(const struct history *h, uint64_t bytes, int raw)
{
	struct history_pos	 pos, start;
	struct history_read	 rd;
	uint64_t		 end = history_offset(h);

	pos.run = history_run(h);
	pos.offset = history_tail_start(h, bytes);
	pos.gap_told = 0;
	start = pos;
	while (raw && history_read(h, &pos, 0, &rd) != HISTORY_END) {
		if (rd.item == HISTORY_GAP || (rd.item ==
		    HISTORY_GAP_UNKNOWN && rd.from < end))
			start = rd.next;
		else if (rd.item != HISTORY_BYTES &&
		    rd.item != HISTORY_GAP_UNKNOWN)
			break;		/* cannot be: the current run */
		pos = rd.next;
	}
	return start;
}

/*
 * Where the client starts (s->start): live, the last bytes, or a position
 * it names.  Returns 1 if an unknown gap is to be told first.
 */
static int
session_start_pos(struct session *s)
{
	const struct history	*h = console_client_history(s->console);
	struct history_read	 rd;
	struct history_pos	 live;
	enum session_from	 from = s->start.from;
	uint64_t		 bytes = s->start.bytes;
	int			 lost = 0;

	live.run = history_run(h);
	live.offset = history_offset(h);
	live.gap_told = 1;	/* the open's loss: before this client */
	s->pos = live;
	if (from == SESSION_FROM_DEFAULT && !session_frames(s) &&
	    sess.attach_replay > 0) {
		from = SESSION_FROM_TAIL;
		bytes = sess.attach_replay;
	}
	if (s->start.no_history) {
		/* Live output only; a position asked for is a loss. */
		return from == SESSION_FROM_POS;
	}
	switch (from) {
	case SESSION_FROM_TAIL:
		s->pos = session_tail(h, bytes, !session_frames(s));
		break;
	case SESSION_FROM_POS:
		s->pos.run = s->start.run;
		s->pos.offset = s->start.offset;
		s->pos.gap_told = 0;
		switch (history_read(h, &s->pos, 1, &rd)) {
		case HISTORY_NO_RUN:
			/* Another run, or before a daemon restart. */
			s->pos.run = history_run(h);
			s->pos.offset = 0;
			lost = 1;
			break;
		case HISTORY_BEYOND:
			s->pos = live;
			lost = 1;
			break;
		default:
			break;
		}
		break;
	default:
		break;
	}
	/* Even at the end: a loss there may be the client's to be told. */
	s->behind = s->replaying = from == SESSION_FROM_TAIL ||
	    from == SESSION_FROM_POS;
	return lost;
}

/* The console is open: bytes flow. */
static void
session_opened(struct session *s)
{
	int	left = s->state == SESSION_LEFT, lost;

	if (session_step(s, SESSION_EV_OPENED, "console opened") == -1)
		return;
	session_touch(s);
	session_idle_arm(s, (double)sess.idle_timeout);
	lost = session_start_pos(s);
	if (session_tell_hello(s) == -1 || (lost && session_tell_gap(s,
	    s->pos.offset, s->pos.offset, 1) == -1))
		return;
	if (lost)
		s->pos.gap_told = 1;
	if (!left)
		session_pump(s);
	else
		s->behind = 0;
	/* Input typed while waiting goes out now. */
	if (evbuffer_get_length(bufferevent_get_input(s->bev)) > 0)
		session_read_cb(s->bev, s);
	/* A client that left meanwhile: it ends as if it had just left. */
	if (left && s->state == SESSION_ATTACHED)
		session_end(s, REASON_CLIENT_CLOSED);
}

/*
 * A writer's recording (record_dir), created before anything flows.  -1
 * when it cannot be and record_required says to refuse the session.
 */
static int
session_record(struct session *s)
{
	struct rec_info	ri;
	char		err[512];

	if (!rec_enabled())
		return 0;
	ri.hv = s->hv;
	ri.uuid = s->uuid;
	ri.alias = s->alias;
	ri.guest = s->guest;
	ri.door = session_door_name(s->door_kind);
	ri.label = s->label;
	ri.session = s->id;
	if ((s->rec = rec_open(&ri, err, sizeof err)) != NULL) {
		log_info("session %u guest=%s dev=%s: recorded in %s", s->id,
		    log_esc(s->guest), log_esc(s->alias),
		    log_esc(rec_path(s->rec)));
		return 0;
	}
	log_warnx("session %u guest=%s dev=%s: no recording: %s%s", s->id,
	    log_esc(s->guest), log_esc(s->alias), log_esc(err),
	    sess.record_required ? " (record_required: refused)" : "");
	return sess.record_required ? -1 : 0;
}

/* The client's terminal size (a `resize` message): for the recording. */
void
session_resize(struct session *s, unsigned int cols, unsigned int rows)
{
	if (s != NULL && s->rec != NULL)
		rec_resize(s->rec, cols, rows);
}

/*
 * A viewer arrives: the viewer it resumes (its old connection not yet
 * dead), or NULL; s itself when it is refused (max_viewers reached, the
 * one it resumes not counted).
 */
static struct session *
session_admit_viewer(struct session *s, const struct session_start *start)
{
	struct session	*v, *old = NULL;
	unsigned int	 viewers = 0;

	TAILQ_FOREACH(v, &sess.table, entry) {
		if (v->role != SESSION_VIEWER || !session_of(v, s->hv, s->uuid,
		    s->alias))
			continue;
		if (old == NULL && start != NULL &&
		    start->resume != NULL &&
		    session_resume_match(v, start->resume))
			old = v;
		else
			viewers++;
	}
	if (viewers >= sess.max_viewers) {
		log_info("session %u guest=%s dev=%s: %u viewer(s), "
		    "max_viewers is %u", s->id, log_esc(s->guest),
		    log_esc(s->alias), viewers, sess.max_viewers);
		session_end(s, REASON_TOO_MANY);
		return s;
	}
	if (old != NULL)
		log_info("session %u guest=%s dev=%s: resumes session %u",
		    s->id, log_esc(s->guest), log_esc(s->alias), old->id);
	return old;
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
    const char *peer, const struct session_door *door, void *door_arg,
    const struct session_start *start)
{
	struct session	*s, *old;
	uint8_t		 rnd[SESSION_RESUME_LEN / 2];
	size_t		 i;

	s = xcalloc(1, sizeof *s);
	s->id = ++sess.next_id;
	s->state = SESSION_NEW;
	memcpy(s->uuid, g->uuid, sizeof s->uuid);
	(void)snprintf(s->hv, sizeof s->hv, "%s", guest_hv_name(g));
	s->guest = xstrdup(g->name);
	if (alias == NULL)
		alias = guest_default_alias(g);
	s->alias = xstrdup(alias != NULL ? alias : "-");
	s->peer = xstrdup(peer != NULL ? peer : "-");
	s->bev = bev;
	s->door = door;
	s->door_arg = door_arg;
	s->door_kind = door != NULL && door->kind < SESSION_NDOORS ?
	    door->kind : SESSION_DOOR_UNIX;
	sess.count.started[s->door_kind]++;
	if (start != NULL)
		s->start = *start;
	s->start.resume = NULL;		/* the caller's */
	s->start.label = NULL;
	s->role = s->start.role;
	s->label = xstrdup(start != NULL && start->label != NULL ?
	    start->label : "");
	random_bytes(rnd, sizeof rnd);
	for (i = 0; i < sizeof rnd; i++)
		(void)snprintf(s->resume + 2 * i, 3, "%02x", rnd[i]);
	s->ev_wait = evtimer_new(sess.base, session_wait_cb, s);
	s->ev_idle = evtimer_new(sess.base, session_idle_cb, s);
	s->ev_slow = evtimer_new(sess.base, session_slow_cb, s);
	s->ev_linger = evtimer_new(sess.base, session_linger_cb, s);
	if (s->ev_wait == NULL || s->ev_idle == NULL || s->ev_slow == NULL ||
	    s->ev_linger == NULL)
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
	if (door == NULL || door->stamp == NULL) {
		lat_stream_init(&s->out_lat,
		    &sess.count.forward[s->door_kind][SESSION_TO_CLIENT]);
		if ((s->out_cbe = bev_lat_watch(bev, &s->out_lat)) == NULL)
			fatalx("session: out of memory");
	}
	log_info("session %u guest=%s dev=%s: client peer=%s role=%s%s%s%s",
	    s->id, log_esc(s->guest), log_esc(s->alias), log_esc(s->peer),
	    session_role_name(s->role), s->label[0] != '\0' ? " label=\"" :
	    "", s->label[0] != '\0' ? log_esc(s->label) : "",
	    s->label[0] != '\0' ? "\"" : "");

	if (alias == NULL || !guest_has_alias(g, alias)) {
		log_info("session %u guest=%s: no console %s", s->id,
		    log_esc(s->guest), log_esc(s->alias));
		session_end(s, REASON_UNKNOWN_GUEST);
		return NULL;
	}
	if (s->role == SESSION_VIEWER) {
		if ((old = session_admit_viewer(s, start)) == s)
			return NULL;
	} else if ((old = session_lookup(s->hv, s->uuid, s->alias)) != NULL) {
		/* The same client again, its old connection not yet dead. */
		if (start != NULL && start->resume != NULL &&
		    session_resume_match(old, start->resume))
			log_info("session %u guest=%s dev=%s: resumes session "
			    "%u", s->id, log_esc(s->guest), log_esc(s->alias),
			    old->id);
		else if (sess.policy == POLICY_REFUSE) {
			session_end(s, REASON_BUSY);
			return NULL;
		}
	}

	if (s->role == SESSION_WRITER && session_record(s) == -1) {
		session_end(s, REASON_RECORDING_FAILED);
		return NULL;
	}
	if (!g->active && sess.start_wait == 0) {
		if (old != NULL)
			session_end(old, REASON_TAKEN_OVER);
		session_end(s, REASON_NOT_RUNNING);
		return NULL;
	}
	TAILQ_INSERT_TAIL(&sess.table, s, entry);
	session_tell_clients_all(s->hv, s->uuid, s->alias);
	if (!g->active) {
		if (old != NULL)
			session_end(old, REASON_TAKEN_OVER);
		if (session_step(s, SESSION_EV_WAIT, "guest not running") == 0)
			timer_arm(s->ev_wait, sess.start_wait);
		return s;
	}
	/*
	 * The session taken over ends once this one holds the console: with
	 * no client left the console would close, and what the guest printed
	 * until it reopened would be lost to the client that came back.
	 * (Its memory is freed from the loop, so old is still there.)
	 */
	session_attach(s);
	if (old != NULL)
		session_end(old, REASON_TAKEN_OVER);
	return s->state < SESSION_CLOSING ? s : NULL;
}

void
session_guest_started(struct guest *g)
{
	struct session	*s, *next;

	TAILQ_FOREACH_SAFE(s, &sess.table, entry, next) {
		if (s->state == SESSION_WAITING && session_of_guest(s, g)) {
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

	/* Its consoles park their streams and end their sessions. */
	console_guest_stopped(g, reason);
	TAILQ_FOREACH_SAFE(s, &sess.table, entry, next) {
		if (s->state != SESSION_WAITING && session_of_guest(s, g))
			session_end(s, reason);
	}
}

/* The guest is gone for good (undefined, or a transient guest stopped). */
void
session_guest_removed(struct guest *g)
{
	struct session	*s, *next;

	console_guest_stopped(g, REASON_GUEST_STOPPED);
	console_guest_removed(g);
	TAILQ_FOREACH_SAFE(s, &sess.table, entry, next) {
		if (session_of_guest(s, g))
			session_end(s, s->state == SESSION_WAITING ?
			    REASON_UNKNOWN_GUEST : REASON_GUEST_STOPPED);
	}
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
		si.hypervisor = s->hv;
		si.alias = s->alias;
		si.state = session_state_name(s->state);
		si.peer = s->peer;
		si.bytes_in = s->bytes_in;
		si.bytes_out = s->bytes_out;
		si.bytes_dropped = s->bytes_dropped;
		si.pending_in = s->console != NULL ?
		    console_input_pending(s->console) : 0;
		si.pending_out = s->bev != NULL ?
		    evbuffer_get_length(bufferevent_get_output(s->bev)) : 0;
		si.idle = session_elapsed(&s->active);
		si.age = session_elapsed(&s->started);
		si.role = session_role_name(s->role);
		si.label = s->label;
		si.bytes_ignored = s->bytes_ignored;
		si.recording = s->rec != NULL ? rec_path(s->rec) : NULL;
		fn(&si, arg);
	}
}

/*
 * End the sessions of a guest (by name or UUID) of hypervisor hv (NULL:
 * any), one console or all: the writer and its viewers, or only the
 * viewers.
 */
unsigned int
session_kick_guest(const char *hv, const char *guest, const char *alias,
    enum session_reason reason, int viewers_only)
{
	struct session	*s, *next;
	unsigned int	 n = 0;

	TAILQ_FOREACH_SAFE(s, &sess.table, entry, next) {
		if (hv != NULL && strcmp(s->hv, hv) != 0)
			continue;
		/* As guest_lookup(): a UUID-shaped name is a UUID only. */
		if ((guest_uuid_shaped(guest) ? strcasecmp(s->uuid,
		    guest) == 0 : strcmp(s->guest, guest) == 0) &&
		    (alias == NULL || strcmp(s->alias, alias) == 0) &&
		    (!viewers_only || s->role == SESSION_VIEWER)) {
			session_end(s, reason);
			n++;
		}
	}
	return n;
}

unsigned int
session_id(const struct session *s)
{
	return s->id;
}

/* Whether a console has a writer now. */
int
session_busy(const struct guest *g, const char *alias)
{
	return session_lookup(guest_hv_name(g), g->uuid, alias) != NULL;
}

/* How many viewers a console has now. */
unsigned int
session_viewers(const struct guest *g, const char *alias)
{
	int	writer;

	return session_tally(guest_hv_name(g), g->uuid, alias, &writer);
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
	struct session	*s;

	while ((s = TAILQ_FIRST(&sess.table)) != NULL)
		session_end(s, reason);
	/* Input left by clients that are gone is not for this connection;
	 * parked streams go: no stop event will come. */
	console_close_all(reason);
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

/*
 * The counters since start, and the sessions in the table now by door and
 * role (what `list` shows).
 */
void
session_counters(struct session_counters *c)
{
	struct session	*s;

	*c = sess.count;
	memset(c->live, 0, sizeof c->live);
	TAILQ_FOREACH(s, &sess.table, entry)
		c->live[s->door_kind][s->role == SESSION_VIEWER]++;
}

/* A door refused a client before it became a session (asock.c). */
void
session_count_refusal(enum session_reason reason)
{
	if (session_reason_refused(reason) == 1)
		sess.count.refused[reason]++;
}

/* Where a door records residence times (the counters' own). */
struct lat_hist *
session_forward_hist(enum session_door_kind kind, enum session_dir dir)
{
	return &sess.count.forward[kind][dir];
}

const char *
session_door_name(enum session_door_kind kind)
{
	static const char *const names[SESSION_NDOORS] = {
		[SESSION_DOOR_UNIX] = "unix",
		[SESSION_DOOR_ATTACH] = "attach",
		[SESSION_DOOR_WS] = "ws",
		[SESSION_DOOR_WSS] = "wss",
	};

	return (unsigned)kind < SESSION_NDOORS ? names[kind] : "unknown";
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
	/* Lowered: the viewers already there stay; new ones wait for room. */
	sess.max_viewers = conf->max_viewers;
	sess.attach_replay = conf->attach_replay;
	sess.record_required = conf->record_required;
	console_reconfigure(conf);
	if (old_idle == sess.idle_timeout)
		return;
	/* A changed idle_timeout applies to live sessions at once. */
	TAILQ_FOREACH(s, &sess.table, entry) {
		if (s->state == SESSION_ATTACHED)
			session_idle_arm(s, (double)sess.idle_timeout -
			    session_elapsed(&s->active));
	}
}

/*
 * The guest's hypervisor is gone (its connection dropped, or a reload
 * removed it): its sessions end, waiting ones too, and its consoles close
 * (input left by clients that are gone is not for the next connection).
 */
static void
session_guest_lost(struct guest *g, enum session_reason reason)
{
	struct session	*s, *next;

	TAILQ_FOREACH_SAFE(s, &sess.table, entry, next) {
		if (session_of_guest(s, g))
			session_end(s, reason);
	}
	console_close_guest(g, reason);
}

/* The guest table's changes that concern sessions. */
static void
session_guest_event(struct guest *g, enum guest_event ev, void *arg)
{
	switch (ev) {
	case GUEST_EV_STARTED:
		session_guest_started(g);
		break;
	case GUEST_EV_STOPPED:
		session_guest_stopped(g, REASON_GUEST_STOPPED);
		break;
	case GUEST_EV_MIGRATED:
		session_guest_stopped(g, REASON_GUEST_MIGRATED);
		break;
	case GUEST_EV_REMOVED:
		session_guest_removed(g);
		break;
	case GUEST_EV_LOST:
		session_guest_lost(g, REASON_HV_LOST);
		break;
	case GUEST_EV_HV_REMOVED:
		session_guest_lost(g, REASON_HV_REMOVED);
		break;
	case GUEST_EV_CHANGED:
		break;
	}
}

void
session_init(struct event_base *base, const struct config *conf)
{
	sess.base = base;
	console_init(base);
	session_reconfigure(conf);
	guest_subscribe(session_guest_event, NULL);
}
