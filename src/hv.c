/*
 * The hypervisors: one object per `hypervisor = NAME URI` (or the one
 * `uri`, named default), each with its libvirt connection for lifecycle
 * events, kept up for the daemon's whole life.  When libvirt is
 * unreachable at start or goes away later (close callback: EOF, error,
 * keepalive), the daemon stays up, logs it and reconnects that hypervisor
 * with capped exponential backoff, registering its callbacks again; the
 * others are not touched.  It never exits for that, and it never starts a
 * libvirt daemon.  A reload adds, removes and re-points hypervisors by
 * name (hv_reconfigure()).
 *
 * Nothing here waits for a hypervisor on the loop (docs/ARCHITECTURE.md,
 * "Threads"): a connection is opened, and its callbacks registered, on a
 * thread of its own that hands it to the loop (struct hv_conn), and a
 * dropped one is closed on a thread too, so that a remote that does not
 * answer (a TCP connect alone can take two minutes) holds up nobody.  Only
 * the daemon's exit closes connections on the loop.
 */
#include <sys/socket.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "virtconsoled.h"

#define HV_BACKOFF_MIN_MS	500
#define HV_BACKOFF_MAX_MS	10000
#define HV_KEEPALIVE_INTERVAL	5	/* seconds between probes */
#define HV_KEEPALIVE_COUNT	5	/* unanswered probes before close */
#define HV_LINK_STACK		(256 * 1024)	/* a link thread's stack */
#define HV_OPEN_SLOW		10	/* seconds: say an open is slow */

/*
 * One attempt at a hypervisor's lifecycle connection, then that
 * connection's life.  Its thread opens it and registers the callbacks
 * (whose opaque is this, never the hypervisor: it may be gone when they
 * fire), then hands it to the loop through ev_opened.  A hypervisor that
 * no longer wants it (removed, re-pointed, the daemon exits) abandons it:
 * while the thread still opens, the thread frees it; once handed over, it
 * is closed on a thread of its own and freed on the loop.
 */
struct hv_conn {
	struct hv		*hv;		/* NULL: abandoned */
	char			*uri;		/* as it was when it began */
	virConnectPtr		 conn;
	int			 lifecycle_id;
	int			 fds[2];	/* its socket (ssh: socketpair) */
	size_t			 nfds;
	int			 keepalive;	/* set */
	char			 err[256];	/* why the open failed */
	int			 abandoned;	/* under hvg.lock: the thread's */
	int			 handed;	/* under hvg.lock: the loop's */
	int			 lost_reason;
	struct event		*ev_opened;	/* its thread is done */
	struct event		*ev_lost;	/* close callback, deferred */
};

struct hv {
	char			*name;
	char			*uri;
	struct hv_conn		*cur;		/* opening, or open */
	int			 opening;	/* cur's thread still opens */
	virConnectPtr		 conn;		/* cur's, once it is open */
	enum hv_state		 state;
	unsigned int		 backoff_ms;
	unsigned int		 failures;
	int			 answered;	/* an open has returned */
	struct event		*retry_ev;	/* next connection attempt */
	struct event		*slow_ev;	/* the open takes long */
	unsigned int		 nlinks;	/* its guest connections */
	int			 removed;	/* by a reload: freed with its
						   last link */
	TAILQ_ENTRY(hv)		 entry;
};
TAILQ_HEAD(hvs, hv);

static struct {
	struct event_base	*base;
	struct hvs		 list;
	unsigned int		 nlinks;	/* guest connections, all */
	int			 shutdown;
	const struct hv_cbs	*cbs;		/* who hears from them */
	void			*cbs_arg;
	pthread_mutex_t		 lock;		/* hv_conn.abandoned */
	unsigned int		 closing;	/* connections closing now */
	void			(*on_lost)(struct hv_link *); /* stream.c */
} hvg = {
	.list = TAILQ_HEAD_INITIALIZER(hvg.list),
	.lock = PTHREAD_MUTEX_INITIALIZER,
};

/*
 * A libvirt connection of its own for each guest with an open console
 * (docs/ARCHITECTURE.md, "Connections"): libvirtd stops reading a client
 * connection while stream packets wait for a console that does not take
 * them, so a console that is stuck must hold up no other guest.  A link is
 * opened by the first console of its guest and closed when the last stream
 * on it is gone.
 */
struct hv_job {
	void			(*run)(void *);	/* on the link's thread */
	void			(*done)(void *);	/* then on the loop */
	void			*arg;
	TAILQ_ENTRY(hv_job)	 entry;
};
TAILQ_HEAD(hv_jobs, hv_job);

struct hv_link {
	struct hv		*hv;
	char			 uuid[GUEST_UUID_LEN];
	char			*uri;		/* the hypervisor's, at start */
	virConnectPtr		 conn;		/* its thread's until ready */
	int			 ready;		/* the open job is back */
	int			 fds[2];	/* its socket (ssh: socketpair) */
	size_t			 nfds;
	char			 err[256];	/* why it could not open */
	int			 no_close_cb, keepalive;
	unsigned int		 refs;		/* streams on it */
	int			 closing;	/* no stream left: closing */
	unsigned int		 handing;	/* calls not yet handed over */
	/* The calls that wait for libvirtd run on the link's own thread. */
	pthread_mutex_t		 lock;
	pthread_t		 thread;
	int			 running;	/* thread started, not joined */
	int			 busy;		/* it is taking jobs */
	struct hv_jobs		 todo;
	struct hv_jobs		 done;
	struct event		*ev_done;	/* done jobs, to the loop */
	struct event		*ev_lost;	/* the close callback, to the loop */
	int			 lost;		/* libvirt closed it */
	TAILQ_ENTRY(hv_link)	 entry;
};
TAILQ_HEAD(hv_links, hv_link);


static struct hv_links	hv_links = TAILQ_HEAD_INITIALIZER(hv_links);
/* From a guest connection's loss to failing its streams (hv_link_lost_cb). */
static const struct timeval hv_link_lost_grace = { 0, 500000 };

static const char *const hv_state_names[] = {
	[HV_DISCONNECTED] = "disconnected",
	[HV_CONNECTED] = "connected",
	[HV_SHUTDOWN] = "shutdown",
};

static const char *const hv_event_names[] = {
	[VIR_DOMAIN_EVENT_DEFINED] = "DEFINED",
	[VIR_DOMAIN_EVENT_UNDEFINED] = "UNDEFINED",
	[VIR_DOMAIN_EVENT_STARTED] = "STARTED",
	[VIR_DOMAIN_EVENT_SUSPENDED] = "SUSPENDED",
	[VIR_DOMAIN_EVENT_RESUMED] = "RESUMED",
	[VIR_DOMAIN_EVENT_STOPPED] = "STOPPED",
	[VIR_DOMAIN_EVENT_SHUTDOWN] = "SHUTDOWN",
	[VIR_DOMAIN_EVENT_PMSUSPENDED] = "PMSUSPENDED",
	[VIR_DOMAIN_EVENT_CRASHED] = "CRASHED",
};

static const char *const hv_close_reasons[] = {
	[VIR_CONNECT_CLOSE_REASON_ERROR] = "error",
	[VIR_CONNECT_CLOSE_REASON_EOF] = "eof",
	[VIR_CONNECT_CLOSE_REASON_KEEPALIVE] = "keepalive",
	[VIR_CONNECT_CLOSE_REASON_CLIENT] = "client",
};

static void	hv_connect(struct hv *);
static void	hv_disconnect(struct hv *);
static void	hv_free(struct hv *);

const char *
hv_state_name(enum hv_state state)
{
	if ((unsigned)state > HV_SHUTDOWN)
		return "unknown";
	return hv_state_names[state];
}

/* Connected only when every hypervisor is (status, /api/guests). */
enum hv_state
hv_get_state(void)
{
	struct hv	*h;

	if (hvg.shutdown)
		return HV_SHUTDOWN;
	TAILQ_FOREACH(h, &hvg.list, entry) {
		if (h->state != HV_CONNECTED)
			return HV_DISCONNECTED;
	}
	return HV_CONNECTED;
}

enum hv_state
hv_state(const struct hv *h)
{
	return h->state;
}

const char *
hv_name(const struct hv *h)
{
	return h->name;
}

/* The hypervisor of that name, or NULL. */
struct hv *
hv_find(const char *name)
{
	struct hv	*h;

	TAILQ_FOREACH(h, &hvg.list, entry) {
		if (strcmp(h->name, name) == 0)
			return h;
	}
	return NULL;
}

/*
 * Whether every hypervisor's first open has returned (connected or
 * failed): the daemon's start waits for that, a bounded time (main).
 */
int
hv_settled(void)
{
	struct hv	*h;

	TAILQ_FOREACH(h, &hvg.list, entry) {
		if (!h->answered && h->opening)
			return 0;
	}
	return 1;
}

/*
 * The hypervisors in the configuration's order: hv_next(NULL) is the
 * first, NULL after the last (status, metrics, /api/guests).
 */
struct hv *
hv_next(const struct hv *h)
{
	return h == NULL ? TAILQ_FIRST(&hvg.list) : TAILQ_NEXT(h, entry);
}

static const char *
hv_event_name(int event)
{
	if (event < 0 || (size_t)event >= sizeof hv_event_names /
	    sizeof hv_event_names[0] || hv_event_names[event] == NULL)
		return "UNKNOWN";
	return hv_event_names[event];
}

/*
 * libvirt prints every error to stderr unless told otherwise.  The daemon
 * reports the errors it cares about itself; the rest are debug noise.
 */
static void
hv_libvirt_error(void *opaque, virErrorPtr err)
{
	char	msg[LOG_ESC_MAX];

	/* Any thread: a guest connection's too, so not log_esc(). */
	if (err != NULL && err->message != NULL &&
	    log_get_level() >= LOG_LEVEL_DEBUG) {
		(void)log_escape(msg, sizeof msg, err->message,
		    strlen(err->message));
		log_debug("libvirt: %s", msg);
	}
}

static void
hv_schedule_retry(struct hv *h)
{
	struct timeval	tv;

	if (hvg.shutdown || h->removed)
		return;
	if (h->backoff_ms == 0)
		h->backoff_ms = HV_BACKOFF_MIN_MS;
	log_debug("hv: next attempt in %u ms uri=%s hypervisor=%s",
	    h->backoff_ms, log_esc(h->uri), h->name);
	tv.tv_sec = h->backoff_ms / 1000;
	tv.tv_usec = (h->backoff_ms % 1000) * 1000;
	evtimer_add(h->retry_ev, &tv);
	h->backoff_ms *= 2;
	if (h->backoff_ms > HV_BACKOFF_MAX_MS)
		h->backoff_ms = HV_BACKOFF_MAX_MS;
}

static void
hv_retry(evutil_socket_t fd, short what, void *arg)
{
	hv_connect(arg);
}

/* Dispatched on the loop; only for the connection its hypervisor uses. */
static void
hv_lifecycle(virConnectPtr conn, virDomainPtr dom, int event, int detail,
    void *opaque)
{
	struct hv_conn	*c = opaque;
	struct hv	*h = c->hv;
	char		 uuid[VIR_UUID_STRING_BUFLEN];

	/* Before the hand-over the connect's resync says it all. */
	if (h == NULL || h->cur != c || h->state != HV_CONNECTED)
		return;
	if (virDomainGetUUIDString(dom, uuid) == -1)
		strcpy(uuid, "?");
	log_info("hv: guest event guest=%s uuid=%s event=%s detail=%d "
	    "hypervisor=%s", log_esc(virDomainGetName(dom)), uuid,
	    hv_event_name(event), detail, h->name);
	hvg.cbs->lifecycle(h, dom, event, detail, hvg.cbs_arg);
}

/*
 * The close callback runs inside libvirt's I/O path, on any thread: only
 * note the reason here and do the teardown from the loop.
 */
static void
hv_close(virConnectPtr conn, int reason, void *opaque)
{
	struct hv_conn	*c = opaque;

	c->lost_reason = reason;
	event_active(c->ev_lost, EV_TIMEOUT, 0);
}

static void
hv_lost(evutil_socket_t fd, short what, void *arg)
{
	struct hv_conn	*c = arg;
	struct hv	*h = c->hv;
	const char	*reason = "unknown";

	if (h == NULL || h->cur != c || h->opening || hvg.shutdown)
		return;
	if (c->lost_reason >= 0 && (size_t)c->lost_reason <
	    sizeof hv_close_reasons / sizeof hv_close_reasons[0])
		reason = hv_close_reasons[c->lost_reason];
	log_warnx("hv: connection lost uri=%s reason=%s hypervisor=%s",
	    log_esc(h->uri), reason, h->name);
	hv_disconnect(h);
	h->backoff_ms = HV_BACKOFF_MIN_MS;
	hv_schedule_retry(h);
}

static void
hv_conn_free(struct hv_conn *c)
{
	if (c->ev_opened != NULL)
		event_free(c->ev_opened);
	if (c->ev_lost != NULL)
		event_free(c->ev_lost);
	free(c->uri);
	free(c);
}

/* Deregister and close: round trips (any thread). */
static void
hv_conn_close(struct hv_conn *c)
{
	if (c->conn == NULL)
		return;
	/* Local in libvirt: no round trip, and no close callback after. */
	virConnectUnregisterCloseCallback(c->conn, hv_close);
	if (c->lifecycle_id != -1)
		(void)virConnectDomainEventDeregisterAny(c->conn,
		    c->lifecycle_id);
	c->lifecycle_id = -1;
	(void)virConnectClose(c->conn);
	c->conn = NULL;
	virResetLastError();
}

/* The hypervisor's connection, on its own thread: see struct hv_conn. */
static void *
hv_open_thread(void *arg)
{
	struct hv_conn	*c = arg;
	const char	*msg;
	int		 tag, abandoned;

	tag = evglue_tag_new();
	evglue_tag_set(tag);
	c->conn = virConnectOpen(c->uri);
	evglue_tag_set(0);
	/*
	 * No callback is registered here: a connection abandoned meanwhile
	 * is freed by this thread, and nothing of libvirt's may point at it
	 * then.  The keepalive bounds every call on it from here on.
	 */
	if (c->conn != NULL) {
		c->nfds = evglue_fds_tagged(tag, c->fds, sizeof c->fds /
		    sizeof c->fds[0]);
		c->keepalive = virConnectSetKeepAlive(c->conn,
		    HV_KEEPALIVE_INTERVAL, HV_KEEPALIVE_COUNT) == 0;
	} else {
		msg = virGetLastErrorMessage();
		(void)snprintf(c->err, sizeof c->err, "%s", msg != NULL ?
		    msg : "unknown error");
	}
	virResetLastError();
	pthread_mutex_lock(&hvg.lock);
	abandoned = c->abandoned;
	if (!abandoned) {
		c->handed = 1;
		event_active(c->ev_opened, EV_TIMEOUT, 0);
	}
	pthread_mutex_unlock(&hvg.lock);
	if (abandoned) {
		/* Nobody on the loop knows it any more. */
		hv_conn_close(c);
		free(c->uri);
		free(c);
	}
	return NULL;
}

/* Start a detached thread that runs fn(arg). */
static void
hv_thread(void *(*fn)(void *), void *arg)
{
	pthread_attr_t	 attr;
	pthread_t	 t;
	int		 rc;

	pthread_attr_init(&attr);
	(void)pthread_attr_setstacksize(&attr, HV_LINK_STACK);
	(void)pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	rc = pthread_create(&t, &attr, fn, arg);
	pthread_attr_destroy(&attr);
	if (rc != 0)
		fatalx("hv: cannot start a thread: %s", strerror(rc));
}

static void	hv_opened(evutil_socket_t, short, void *);

/* Start opening the hypervisor's connection (it is not open nor opening). */
static void
hv_connect(struct hv *h)
{
	struct hv_conn	*c;

	if (h->cur != NULL || hvg.shutdown || h->removed)
		return;
	c = xcalloc(1, sizeof *c);
	c->hv = h;
	c->uri = xstrdup(h->uri);
	c->lifecycle_id = -1;
	c->ev_opened = event_new(hvg.base, -1, 0, hv_opened, c);
	c->ev_lost = event_new(hvg.base, -1, 0, hv_lost, c);
	if (c->ev_opened == NULL || c->ev_lost == NULL)
		fatalx("hv: out of memory");
	h->cur = c;
	h->opening = 1;
	log_debug("hv: connecting uri=%s hypervisor=%s", log_esc(h->uri),
	    h->name);
	timer_arm(h->slow_ev, HV_OPEN_SLOW);
	hv_thread(hv_open_thread, c);
}

/*
 * An open that does not return (a remote that accepts and never answers:
 * libvirt has no timeout for it) holds its own thread only: said once, and
 * no other attempt starts while it waits, so that threads never pile up.
 */
static void
hv_slow(evutil_socket_t fd, short what, void *arg)
{
	struct hv	*h = arg;

	if (h->opening)
		log_warnx("hv: still connecting after %d s uri=%s (no answer; "
		    "the other hypervisors are not held up) hypervisor=%s",
		    HV_OPEN_SLOW, log_esc(h->uri), h->name);
}

/* The opening thread is done (it has left hvg.lock): on the loop. */
static void
hv_opened(evutil_socket_t fd, short what, void *arg)
{
	struct hv_conn	*c = arg;
	struct hv	*h = c->hv;

	h->opening = 0;
	h->answered = 1;
	evtimer_del(h->slow_ev);
	if (c->conn == NULL) {
		/* Say it once, then once every ten attempts. */
		if (h->failures++ % 10 == 0)
			log_warnx("hv: cannot connect uri=%s error=\"%s\" "
			    "retry_ms=%u hypervisor=%s", log_esc(h->uri),
			    log_esc(c->err), h->backoff_ms == 0 ?
			    HV_BACKOFF_MIN_MS : h->backoff_ms, h->name);
		h->cur = NULL;
		hv_conn_free(c);
		hv_schedule_retry(h);
		return;
	}
	/*
	 * The close callback is local to libvirt; the lifecycle events' is a
	 * round trip, on a connection that answered its open and has its
	 * keepalive (docs/ARCHITECTURE.md, "Threads").
	 */
	if (virConnectRegisterCloseCallback(c->conn, hv_close, c, NULL) == -1)
		log_warnx("hv: cannot register close callback: %s "
		    "hypervisor=%s", log_esc(virGetLastErrorMessage()),
		    h->name);
	c->lifecycle_id = virConnectDomainEventRegisterAny(c->conn, NULL,
	    VIR_DOMAIN_EVENT_ID_LIFECYCLE,
	    VIR_DOMAIN_EVENT_CALLBACK(hv_lifecycle), c, NULL);
	if (c->lifecycle_id == -1) {
		/* Without lifecycle events the daemon is blind: retry. */
		log_warnx("hv: cannot register lifecycle events uri=%s "
		    "error=\"%s\" hypervisor=%s", log_esc(h->uri),
		    log_esc(virGetLastErrorMessage()), h->name);
		hv_disconnect(h);
		hv_schedule_retry(h);
		return;
	}
	if (!c->keepalive)
		log_warnx("hv: keepalive not available uri=%s hypervisor=%s",
		    log_esc(h->uri), h->name);
	h->conn = c->conn;
	h->state = HV_CONNECTED;
	h->backoff_ms = 0;
	log_info("hv: connected uri=%s after_failures=%u hypervisor=%s",
	    log_esc(h->uri), h->failures, h->name);
	h->failures = 0;
	hvg.cbs->connected(h, c->conn, hvg.cbs_arg);
	/* Dropped while it was handed over: the callback's event says. */
}

/* A dropped connection, closed on its own thread, then freed on the loop. */
static void *
hv_close_thread(void *arg)
{
	struct hv_conn	*c = arg;

	hv_conn_close(c);
	/* The loop outlives this thread: hv_shutdown() waits for it. */
	event_active(c->ev_opened, EV_TIMEOUT, 0);
	return NULL;
}

static void
hv_closed(evutil_socket_t fd, short what, void *arg)
{
	hvg.closing--;
	hv_conn_free(arg);
}

/*
 * Let go of the hypervisor's connection (or of its open under way):
 * sessions end first, then the callbacks go, so that none fires on a
 * dying connection; the round trips of the close run on a thread, except
 * at the daemon's exit.
 */
static void
hv_disconnect(struct hv *h)
{
	struct hv_conn	*c = h->cur;
	int		 handed;

	if (c == NULL)
		return;
	h->cur = NULL;
	c->hv = NULL;
	if (h->opening) {
		h->opening = 0;
		evtimer_del(h->slow_ev);
		pthread_mutex_lock(&hvg.lock);
		if (!(handed = c->handed))
			c->abandoned = 1;
		pthread_mutex_unlock(&hvg.lock);
		if (!handed) {
			/* Its thread frees it when the open returns. */
			event_free(c->ev_opened);
			event_free(c->ev_lost);
			c->ev_opened = c->ev_lost = NULL;
			return;
		}
		/* Open, not yet taken over by the loop: closed as below. */
	} else {
		/* Sessions end first: their streams are this hypervisor's. */
		h->state = HV_DISCONNECTED;
		h->conn = NULL;
		hvg.cbs->disconnected(h, hvg.cbs_arg);
	}
	/* No close callback from here on (local in libvirt). */
	if (c->conn != NULL)
		virConnectUnregisterCloseCallback(c->conn, hv_close);
	if (hvg.shutdown) {
		hv_conn_close(c);
		hv_conn_free(c);
		return;
	}
	event_free(c->ev_opened);
	c->ev_opened = event_new(hvg.base, -1, 0, hv_closed, c);
	if (c->ev_opened == NULL)
		fatalx("hv: out of memory");
	hvg.closing++;
	hv_thread(hv_close_thread, c);
}

/*
 * The link's thread: it runs the jobs in order and hands each back to the
 * loop.  It exits when there is none left; the loop joins it before it
 * starts the next one.  A job stuck in libvirt (a call on a connection that
 * libvirtd no longer reads) holds up this guest's jobs only, until
 * libvirtd or the keepalive drops the connection and the call fails.
 */
static void *
hv_link_thread(void *arg)
{
	struct hv_link	*l = arg;
	struct hv_job	*j;

	pthread_mutex_lock(&l->lock);
	while ((j = TAILQ_FIRST(&l->todo)) != NULL) {
		TAILQ_REMOVE(&l->todo, j, entry);
		pthread_mutex_unlock(&l->lock);
		j->run(j->arg);
		virResetLastError();
		pthread_mutex_lock(&l->lock);
		TAILQ_INSERT_TAIL(&l->done, j, entry);
		event_active(l->ev_done, EV_TIMEOUT, 0);
	}
	l->busy = 0;
	pthread_mutex_unlock(&l->lock);
	return NULL;
}

static void	hv_link_free(struct hv_link *);

/* Done jobs, on the loop, in the order they ran. */
static void
hv_link_done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct hv_link	*l = arg;
	struct hv_jobs	 done = TAILQ_HEAD_INITIALIZER(done);
	struct hv_job	*j;
	int		 last;

	pthread_mutex_lock(&l->lock);
	while ((j = TAILQ_FIRST(&l->done)) != NULL) {
		TAILQ_REMOVE(&l->done, j, entry);
		TAILQ_INSERT_TAIL(&done, j, entry);
	}
	/* The close job, once it is handed over, is the last. */
	last = l->closing && l->handing == 0 && !l->busy &&
	    TAILQ_EMPTY(&l->todo);
	pthread_mutex_unlock(&l->lock);
	/* NOLINTBEGIN(clang-analyzer-unix.Malloc): TAILQ, see .clang-tidy */
	while ((j = TAILQ_FIRST(&done)) != NULL) {
		TAILQ_REMOVE(&done, j, entry);
		if (j->done != NULL)
			j->done(j->arg);
		free(j);
	}
	/* NOLINTEND(clang-analyzer-unix.Malloc) */
	if (last)
		hv_link_free(l);
}

/* Run fn on the link's thread, then done on the loop. */
static void
hv_link_job(struct hv_link *l, void (*run)(void *), void (*done)(void *),
    void *arg)
{
	struct hv_job	*j;
	pthread_attr_t	 attr;
	int		 rc;

	j = xcalloc(1, sizeof *j);
	j->run = run;
	j->done = done;
	j->arg = arg;
	pthread_mutex_lock(&l->lock);
	TAILQ_INSERT_TAIL(&l->todo, j, entry);
	if (l->busy) {
		pthread_mutex_unlock(&l->lock);
		return;
	}
	if (l->running) {
		/* The last one has left the loop above: it only returns. */
		pthread_join(l->thread, NULL);
		l->running = 0;
	}
	l->busy = 1;
	pthread_mutex_unlock(&l->lock);
	pthread_attr_init(&attr);
	(void)pthread_attr_setstacksize(&attr, HV_LINK_STACK);
	rc = pthread_create(&l->thread, &attr, hv_link_thread, l);
	pthread_attr_destroy(&attr);
	if (rc != 0)
		fatalx("hv: cannot start a guest connection's thread: %s",
		    strerror(rc));
	l->running = 1;
}

static void
hv_link_close_cb(virConnectPtr conn, int reason, void *opaque)
{
	struct hv_link	*l = opaque;
	const char	*why = "unknown";

	if (reason >= 0 && (size_t)reason < sizeof hv_close_reasons /
	    sizeof hv_close_reasons[0])
		why = hv_close_reasons[reason];
	log_info("hv: guest connection lost uuid=%s reason=%s hypervisor=%s",
	    l->uuid, why, l->hv->name);
	/*
	 * It may come on the link's thread, inside a call: the loop says,
	 * hv_link_lost_grace later.  When libvirtd itself went away, the
	 * hypervisor connection's own loss comes in that time and its
	 * sessions end with 'hypervisor connection lost', not each guest's
	 * 'console connection lost' (t-faults case 1.4).
	 */
	event_add(l->ev_lost, &hv_link_lost_grace);
}

/*
 * On the loop: libvirt closed the link's connection.  Its streams do not
 * fail on their own: libvirt 9.0 raises no stream event when a connection
 * closes (virNetClientCloseLocked() leaves its streams alone, and a stream
 * event is a timer armed only by data, an end of file or an error that
 * came from libvirtd), and a non-blocking virStreamRecv() on such a stream
 * says -2, nothing yet, forever.  So the streams are told here.
 */
static void
hv_link_lost_cb(evutil_socket_t fd, short what, void *arg)
{
	struct hv_link	*l = arg;

	if (l->lost)
		return;
	l->lost = 1;
	log_debug("hv: guest connection uuid=%s: failing its streams",
	    l->uuid);
	if (hvg.on_lost != NULL)
		hvg.on_lost(l);		/* stream.c fails the link's streams */
}

/*
 * On the link's thread, its first job: open the connection.  The jobs
 * after it (a stream's open) run on the same thread, after it: they find
 * the connection, or NULL when it could not be opened.
 */
static void
hv_link_open_run(void *arg)
{
	struct hv_link	*l = arg;
	const char	*msg;
	int		 tag;

	tag = evglue_tag_new();
	evglue_tag_set(tag);
	l->conn = virConnectOpen(l->uri);
	evglue_tag_set(0);
	if (l->conn == NULL) {
		msg = virGetLastErrorMessage();
		(void)snprintf(l->err, sizeof l->err, "%s", msg != NULL ? msg :
		    "unknown error");
		return;
	}
	l->nfds = evglue_fds_tagged(tag, l->fds, sizeof l->fds /
	    sizeof l->fds[0]);
	/*
	 * No small send buffer (as 2026-12-05's code had, so that the socket
	 * polled writable exactly when the send window opened): a unix socket
	 * polls writable only while what waits in it is at most a quarter of
	 * its buffer, and libvirt 9.0 writes its own messages (keepalives and
	 * their answers, "non-blocking" ones too) by polling for that with
	 * no timeout.  With a buffer that small, a stuck guest's few packets
	 * kept the socket unwritable, so libvirt's next keepalive held the
	 * loop in its poll() until libvirtd's next message, up to a keepalive
	 * interval (t-clients case 5; strace -k: evglue_timeout_fire ->
	 * virNetClientSendNonBlock -> poll(POLLOUT, -1)).  The kernel's
	 * default buffer keeps that mark far above the send window; consoles
	 * poll the window, backing off (console.c).
	 */
	if (virConnectRegisterCloseCallback(l->conn, hv_link_close_cb, l,
	    NULL) == -1)
		l->no_close_cb = 1;
	l->keepalive = virConnectSetKeepAlive(l->conn,
	    HV_KEEPALIVE_INTERVAL, HV_KEEPALIVE_COUNT) == 0;
}

/* Back on the loop: the link's connection is the loop's to look at too. */
static void
hv_link_open_done(void *arg)
{
	struct hv_link	*l = arg;

	l->ready = 1;
	if (l->conn == NULL) {
		log_warnx("hv: cannot open a guest connection uuid=%s "
		    "error=\"%s\" hypervisor=%s", l->uuid, log_esc(l->err),
		    l->hv->name);
		return;
	}
	if (l->no_close_cb)
		log_debug("hv: guest connection: no close callback");
	if (!l->keepalive)
		log_debug("hv: guest connection: no keepalive");
	log_debug("hv: guest connection opened uuid=%s fds=%zu "
	    "hypervisor=%s", l->uuid, l->nfds, l->hv->name);
}

/*
 * The connection of guest uuid's consoles: NULL while the hypervisor is
 * down.  Made with the first console of the guest, opened by its thread's
 * first job (a remote that does not answer holds up that guest only, never
 * the loop); each stream on it holds a reference (hv_link_put()).
 */
struct hv_link *
hv_link_get(struct hv *h, const char *uuid)
{
	struct hv_link	*l;

	if (h->state != HV_CONNECTED)
		return NULL;
	TAILQ_FOREACH(l, &hv_links, entry) {
		/* One still opening is taken: its open job goes first. */
		if (l->hv == h && !l->closing && strcmp(l->uuid, uuid) == 0 &&
		    (!l->ready || (l->conn != NULL &&
		    virConnectIsAlive(l->conn) == 1))) {
			l->refs++;
			return l;
		}
	}
	l = xcalloc(1, sizeof *l);
	l->hv = h;
	(void)snprintf(l->uuid, sizeof l->uuid, "%s", uuid);
	l->uri = xstrdup(h->uri);
	l->refs = 1;
	pthread_mutex_init(&l->lock, NULL);
	TAILQ_INIT(&l->todo);
	TAILQ_INIT(&l->done);
	if ((l->ev_done = event_new(hvg.base, -1, 0, hv_link_done_cb, l)) ==
	    NULL || (l->ev_lost = event_new(hvg.base, -1, 0, hv_link_lost_cb,
	    l)) == NULL)
		fatalx("hv: out of memory");
	TAILQ_INSERT_TAIL(&hv_links, l, entry);
	h->nlinks++;
	hvg.nlinks++;
	/* First in its queue: nothing of it is in libvirt yet. */
	hv_link_job(l, hv_link_open_run, hv_link_open_done, l);
	return l;
}

/*
 * On the link's thread: both are round trips.  The close callback goes
 * first, on the same thread: it holds a reference to the connection, and
 * libvirt must never drop the last one from inside the unregister.
 */
static void
hv_link_close_run(void *arg)
{
	struct hv_link	*l = arg;

	if (l->conn == NULL)
		return;
	(void)virConnectUnregisterCloseCallback(l->conn, hv_link_close_cb);
	(void)virConnectClose(l->conn);
}

static void
hv_link_free(struct hv_link *l)
{
	pthread_mutex_lock(&l->lock);
	if (l->running) {
		pthread_join(l->thread, NULL);
		l->running = 0;
	}
	pthread_mutex_unlock(&l->lock);
	TAILQ_REMOVE(&hv_links, l, entry);
	l->hv->nlinks--;
	hvg.nlinks--;
	event_free(l->ev_done);
	event_free(l->ev_lost);
	pthread_mutex_destroy(&l->lock);
	free(l->uri);
	log_debug("hv: guest connection closed uuid=%s hypervisor=%s",
	    l->uuid, l->hv->name);
	/* A hypervisor removed by a reload goes with its last link. */
	if (l->hv->removed && l->hv->nlinks == 0)
		hv_free(l->hv);
	free(l);
}


struct hv_call {
	struct hv_link	*link;
	void		(*run)(void *);
	void		(*done)(void *);
	void		*arg;
};

static void
hv_link_call_cb(evutil_socket_t fd, short what, void *arg)
{
	struct hv_call	*c = arg;

	c->link->handing--;
	hv_link_job(c->link, c->run, c->done, c->arg);
	free(c);
}

/*
 * Run run(arg) on the thread of the stream's link, then done(arg) on the
 * loop.  The job is handed to the thread from a later loop pass, never
 * from here: the caller may be inside libvirt's own dispatch of an event
 * of the same stream or connection (a stream that failed is closed from
 * its event callback), and the thread must not call into that stream
 * while libvirt is still on the loop's stack with it.
 */
void
hv_link_call(struct hv_link *l, void (*run)(void *), void (*done)(void *),
    void *arg)
{
	struct hv_call	*c;
	struct timeval	 now = { 0, 0 };

	c = xcalloc(1, sizeof *c);
	c->link = l;
	c->run = run;
	c->done = done;
	c->arg = arg;
	l->handing++;
	if (event_base_once(hvg.base, -1, EV_TIMEOUT, hv_link_call_cb, c,
	    &now) == -1)
		fatalx("hv: cannot schedule a guest connection's call");
}

/*
 * A stream is gone from the link.  The last one closes the connection, on
 * the link's thread after whatever it still has to do there (a stream's
 * abort may wait for libvirtd), and from a later loop pass: a failed
 * stream is freed from inside libvirt's dispatch of its own event, which
 * still holds the stream (and through it the connection) until it returns.
 */
void
hv_link_put(struct hv_link *l)
{
	if (l == NULL || --l->refs > 0)
		return;
	l->closing = 1;
	hv_link_call(l, hv_link_close_run, NULL, l);
}

virConnectPtr
hv_link_conn(const struct hv_link *l)
{
	return l->conn;
}

struct hv *
hv_link_hv(const struct hv_link *l)
{
	return l->hv;
}

/* Bytes libvirtd has not read from this connection. */
size_t
hv_link_backlog(const struct hv_link *l)
{
	size_t	i, n, most = 0;

	for (i = 0; i < l->nfds; i++)
		if ((n = evglue_fd_backlog(l->fds[i])) > most)
			most = n;
	return most;
}

/*
 * Whether this link was dropped alone: the hypervisor's own connection is
 * up, and its socket has not ended (no call on it: libvirtd may be stopped
 * rather than gone, and the loop must not wait for it).
 */
int
hv_link_lost_alone(const struct hv_link *l)
{
	const struct hv	*h = l->hv;
	size_t		 i;

	if (virConnectIsAlive(l->conn) == 1)
		return 0;
	if (h->state != HV_CONNECTED || h->cur == NULL || h->conn == NULL ||
	    virConnectIsAlive(h->conn) != 1)
		return 0;
	/*
	 * libvirtd killed: every socket ends at once, but libvirt may not
	 * have read the hypervisor connection's end yet.  Its socket says.
	 */
	for (i = 0; i < h->cur->nfds; i++)
		if (evglue_fd_ended(h->cur->fds[i]))
			return 0;
	return 1;
}

/*
 * Who hears that libvirt closed a link's connection, from the loop (the
 * layer above, stream.c, which fails the link's streams): one listener.
 */
void
hv_link_on_lost(void (*fn)(struct hv_link *))
{
	hvg.on_lost = fn;
}

/* Whether libvirt has closed the link's connection (hv_link_lost_cb()). */
int
hv_link_is_lost(const struct hv_link *l)
{
	return l->lost;
}

/* Guest connections open or closing now, for the status and the tests. */
unsigned int
hv_link_count(void)
{
	return hvg.nlinks;
}

static struct hv *
hv_new(const char *name, const char *uri)
{
	struct hv	*h;

	h = xcalloc(1, sizeof *h);
	h->name = xstrdup(name);
	h->uri = xstrdup(uri);
	h->state = HV_DISCONNECTED;
	h->retry_ev = evtimer_new(hvg.base, hv_retry, h);
	h->slow_ev = evtimer_new(hvg.base, hv_slow, h);
	if (h->retry_ev == NULL || h->slow_ev == NULL)
		fatalx("hv: out of memory");
	TAILQ_INSERT_TAIL(&hvg.list, h, entry);
	return h;
}

/*
 * Out of the list at once; the memory once no link holds it.  Its guests
 * go first, their sessions ended `hypervisor removed`, then its
 * connection (whose drop then ends nothing more).
 */
static void
hv_remove(struct hv *h)
{
	evtimer_del(h->retry_ev);
	h->removed = 1;
	hvg.cbs->removed(h, hvg.cbs_arg);
	hv_disconnect(h);
	TAILQ_REMOVE(&hvg.list, h, entry);
	if (h->nlinks == 0)
		hv_free(h);
}

static void
hv_free(struct hv *h)
{
	event_free(h->retry_ev);
	event_free(h->slow_ev);
	free(h->name);
	free(h->uri);
	free(h);
}

int
hv_init(struct event_base *base, const struct config *cfg,
    const struct hv_cbs *cbs, void *arg)
{
	const struct config_hv	*c;
	struct hv		*h;

	hvg.cbs = cbs;
	hvg.cbs_arg = arg;
	virSetErrorFunc(NULL, hv_libvirt_error);
	hvg.base = base;
	TAILQ_FOREACH(c, &cfg->hvs, entry)
		(void)hv_new(c->name, c->uri);
	TAILQ_FOREACH(h, &hvg.list, entry)
		hv_connect(h);
	return 0;
}

/*
 * By name: a new hypervisor connects, a removed one lets go of its
 * guests and sessions, a new URI under the same name reconnects (`uri =
 * U` is `hypervisor = default U`: the same one).  The others are not
 * touched.
 */
void
hv_reconfigure(const struct config *cfg)
{
	const struct config_hv	*c;
	struct hv		*h, *next;
	int			 found;

	TAILQ_FOREACH_SAFE(h, &hvg.list, entry, next) {
		found = 0;
		TAILQ_FOREACH(c, &cfg->hvs, entry)
			found |= strcmp(c->name, h->name) == 0;
		if (!found) {
			log_info("hv: removed uri=%s hypervisor=%s",
			    log_esc(h->uri), h->name);
			hv_remove(h);
		}
	}
	TAILQ_FOREACH(c, &cfg->hvs, entry) {
		if ((h = hv_find(c->name)) == NULL) {
			log_info("hv: added uri=%s hypervisor=%s",
			    log_esc(c->uri), c->name);
			hv_connect(hv_new(c->name, c->uri));
			continue;
		}
		if (strcmp(c->uri, h->uri) == 0)
			continue;
		log_info("hv: uri changed from %s to %s, reconnecting "
		    "hypervisor=%s", log_esc(h->uri), log_esc(c->uri),
		    h->name);
		hv_disconnect(h);
		free(h->uri);
		h->uri = xstrdup(c->uri);
		evtimer_del(h->retry_ev);
		h->backoff_ms = 0;
		h->failures = 0;
		hv_connect(h);
	}
}

void
hv_shutdown(void)
{
	struct hv	*h;

	/* From here on connections close on the loop (hv_disconnect()). */
	hvg.shutdown = 1;
	/* NOLINTBEGIN(clang-analyzer-unix.Malloc): TAILQ, see .clang-tidy */
	while ((h = TAILQ_FIRST(&hvg.list)) != NULL) {
		hv_disconnect(h);
		TAILQ_REMOVE(&hvg.list, h, entry);
		/* Links still closing keep it until they are freed. */
		h->removed = 1;
		if (h->nlinks == 0)
			hv_free(h);
	}
	/* NOLINTEND(clang-analyzer-unix.Malloc) */
	/*
	 * Connections dropped before the exit close on their threads, which
	 * hand them back to the loop: it must outlive them.  (An open still
	 * under way was abandoned: its thread touches nothing of the loop.)
	 */
	while (hvg.closing > 0)
		event_base_loop(hvg.base, EVLOOP_ONCE);
}
