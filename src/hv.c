/*
 * The hypervisor side: one libvirt connection, kept up for the daemon's
 * whole life.  When libvirt is unreachable at start or goes away later
 * (close callback: EOF, error, keepalive), the daemon stays up, logs it and
 * reconnects with capped exponential backoff, registering its callbacks
 * again.  It never exits for that, and it never starts a libvirt daemon.
 *
 * virConnectOpen() blocks for one round trip; that is acceptable here
 * because it only runs at start, on reconnect and on a changed uri.
 */
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

static struct {
	struct event_base	*base;
	char			*uri;
	virConnectPtr		 conn;
	enum hv_state		 state;
	int			 lifecycle_id;
	unsigned int		 backoff_ms;
	unsigned int		 failures;
	struct event		*retry_ev;	/* next connection attempt */
	struct event		*lost_ev;	/* close callback, deferred */
	int			 lost_reason;
	unsigned int		 nlinks;	/* guest connections */
	int			 fds[2];	/* the connection's socket */
	size_t			 nfds;
	const struct hv_cbs	*cbs;		/* who hears from it */
	void			*cbs_arg;
} hv;

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
	char			 uuid[GUEST_UUID_LEN];
	virConnectPtr		 conn;
	int			 fds[2];	/* its socket (or ssh pipe) */
	size_t			 nfds;
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
	TAILQ_ENTRY(hv_link)	 entry;
};
TAILQ_HEAD(hv_links, hv_link);

static struct hv_links	hv_links = TAILQ_HEAD_INITIALIZER(hv_links);

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

static void	hv_connect(void);
static void	hv_disconnect(void);

const char *
hv_state_name(enum hv_state state)
{
	if ((unsigned)state > HV_SHUTDOWN)
		return "unknown";
	return hv_state_names[state];
}

enum hv_state
hv_get_state(void)
{
	return hv.state;
}

static const char *
hv_event_name(int event)
{
	if (event < 0 || (size_t)event >= sizeof hv_event_names /
	    sizeof hv_event_names[0] || hv_event_names[event] == NULL)
		return "UNKNOWN";
	return hv_event_names[event];
}

static const char *
hv_last_error(void)
{
	const char	*msg = virGetLastErrorMessage();

	return msg != NULL ? msg : "unknown error";
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
hv_schedule_retry(void)
{
	struct timeval	tv;

	if (hv.state == HV_SHUTDOWN)
		return;
	if (hv.backoff_ms == 0)
		hv.backoff_ms = HV_BACKOFF_MIN_MS;
	log_debug("hv: next attempt in %u ms uri=%s", hv.backoff_ms,
	    log_esc(hv.uri));
	tv.tv_sec = hv.backoff_ms / 1000;
	tv.tv_usec = (hv.backoff_ms % 1000) * 1000;
	evtimer_add(hv.retry_ev, &tv);
	hv.backoff_ms *= 2;
	if (hv.backoff_ms > HV_BACKOFF_MAX_MS)
		hv.backoff_ms = HV_BACKOFF_MAX_MS;
}

static void
hv_retry(evutil_socket_t fd, short what, void *arg)
{
	hv_connect();
}

static void
hv_lifecycle(virConnectPtr conn, virDomainPtr dom, int event, int detail,
    void *opaque)
{
	char	uuid[VIR_UUID_STRING_BUFLEN];

	if (virDomainGetUUIDString(dom, uuid) == -1)
		strcpy(uuid, "?");
	log_info("hv: guest event guest=%s uuid=%s event=%s detail=%d",
	    log_esc(virDomainGetName(dom)), uuid, hv_event_name(event),
	    detail);
	hv.cbs->lifecycle(dom, event, detail, hv.cbs_arg);
}

/*
 * The close callback runs inside libvirt's I/O path: only note the reason
 * here and do the teardown from the loop, on a clean stack.
 */
static void
hv_close(virConnectPtr conn, int reason, void *opaque)
{
	if (conn != hv.conn)
		return;
	hv.lost_reason = reason;
	event_active(hv.lost_ev, EV_TIMEOUT, 0);
}

static void
hv_lost(evutil_socket_t fd, short what, void *arg)
{
	const char	*reason = "unknown";

	if (hv.conn == NULL || hv.state == HV_SHUTDOWN)
		return;
	if (hv.lost_reason >= 0 && (size_t)hv.lost_reason <
	    sizeof hv_close_reasons / sizeof hv_close_reasons[0])
		reason = hv_close_reasons[hv.lost_reason];
	log_warnx("hv: connection lost uri=%s reason=%s", log_esc(hv.uri),
	    reason);
	hv_disconnect();
	hv.backoff_ms = HV_BACKOFF_MIN_MS;
	hv_schedule_retry();
}

static void
hv_connect(void)
{
	virConnectPtr	conn;
	int		tag;

	if (hv.conn != NULL || hv.state == HV_SHUTDOWN)
		return;
	tag = evglue_tag_new();
	evglue_tag_set(tag);
	conn = virConnectOpen(hv.uri);
	evglue_tag_set(0);
	if (conn == NULL) {
		/* Say it once, then once every ten attempts. */
		if (hv.failures++ % 10 == 0)
			log_warnx("hv: cannot connect uri=%s error=\"%s\" "
			    "retry_ms=%u", log_esc(hv.uri),
			    log_esc(hv_last_error()), hv.backoff_ms == 0 ?
			    HV_BACKOFF_MIN_MS : hv.backoff_ms);
		hv_schedule_retry();
		return;
	}
	hv.conn = conn;
	hv.nfds = evglue_fds_tagged(tag, hv.fds, sizeof hv.fds /
	    sizeof hv.fds[0]);
	if (virConnectRegisterCloseCallback(conn, hv_close, NULL,
	    NULL) == -1)
		log_warnx("hv: cannot register close callback: %s",
		    log_esc(hv_last_error()));
	hv.lifecycle_id = virConnectDomainEventRegisterAny(conn, NULL,
	    VIR_DOMAIN_EVENT_ID_LIFECYCLE,
	    VIR_DOMAIN_EVENT_CALLBACK(hv_lifecycle), NULL, NULL);
	if (hv.lifecycle_id == -1) {
		/* Without lifecycle events the daemon is blind: retry. */
		log_warnx("hv: cannot register lifecycle events uri=%s "
		    "error=\"%s\"", log_esc(hv.uri),
		    log_esc(hv_last_error()));
		hv_disconnect();
		hv_schedule_retry();
		return;
	}
	if (virConnectSetKeepAlive(conn, HV_KEEPALIVE_INTERVAL,
	    HV_KEEPALIVE_COUNT) != 0)
		log_warnx("hv: keepalive not available uri=%s",
		    log_esc(hv.uri));
	hv.state = HV_CONNECTED;
	hv.backoff_ms = 0;
	log_info("hv: connected uri=%s after_failures=%u", log_esc(hv.uri),
	    hv.failures);
	hv.failures = 0;
	hv.cbs->connected(conn, hv.cbs_arg);
}

/* Drop the connection: callbacks first, so none fires on a dying one. */
static void
hv_disconnect(void)
{
	virConnectPtr	conn = hv.conn;

	if (conn == NULL)
		return;
	/* Sessions end first: their streams belong to this connection. */
	hv.state = HV_DISCONNECTED;
	hv.cbs->disconnected(hv.cbs_arg);
	if (hv.lifecycle_id != -1)
		virConnectDomainEventDeregisterAny(conn, hv.lifecycle_id);
	hv.lifecycle_id = -1;
	virConnectUnregisterCloseCallback(conn, hv_close);
	hv.conn = NULL;
	if (virConnectClose(conn) < 0)
		log_debug("hv: close: %s", log_esc(hv_last_error()));
	virResetLastError();
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
	/* Its streams fail on their own; this is for the log. */
	log_info("hv: guest connection lost uuid=%s reason=%s", l->uuid, why);
}

/*
 * The connection of guest uuid's consoles, opened if it is not: NULL while
 * the hypervisor is down or when it cannot be opened.  Each stream on it
 * holds a reference (hv_link_put()).  The open itself runs on the loop: it
 * is one round trip on a new connection that carries nothing yet, one at a
 * time (docs/ARCHITECTURE.md, "Connections").
 */
struct hv_link *
hv_link_get(const char *uuid)
{
	struct hv_link	*l;
	virConnectPtr	 conn;
	int		 tag;

	if (hv.state != HV_CONNECTED)
		return NULL;
	TAILQ_FOREACH(l, &hv_links, entry) {
		if (!l->closing && strcmp(l->uuid, uuid) == 0 &&
		    virConnectIsAlive(l->conn) == 1) {
			l->refs++;
			return l;
		}
	}
	tag = evglue_tag_new();
	evglue_tag_set(tag);
	conn = virConnectOpen(hv.uri);
	evglue_tag_set(0);
	if (conn == NULL) {
		log_warnx("hv: cannot open a guest connection uuid=%s "
		    "error=\"%s\"", uuid, log_esc(hv_last_error()));
		return NULL;
	}
	l = xcalloc(1, sizeof *l);
	(void)snprintf(l->uuid, sizeof l->uuid, "%s", uuid);
	l->conn = conn;
	l->nfds = evglue_fds_tagged(tag, l->fds, sizeof l->fds /
	    sizeof l->fds[0]);
	l->refs = 1;
	pthread_mutex_init(&l->lock, NULL);
	TAILQ_INIT(&l->todo);
	TAILQ_INIT(&l->done);
	if ((l->ev_done = event_new(hv.base, -1, 0, hv_link_done_cb, l)) ==
	    NULL)
		fatalx("hv: out of memory");
	if (virConnectRegisterCloseCallback(conn, hv_link_close_cb, l,
	    NULL) == -1)
		log_debug("hv: guest connection: no close callback: %s",
		    log_esc(hv_last_error()));
	if (virConnectSetKeepAlive(conn, HV_KEEPALIVE_INTERVAL,
	    HV_KEEPALIVE_COUNT) != 0)
		log_debug("hv: guest connection: no keepalive");
	TAILQ_INSERT_TAIL(&hv_links, l, entry);
	hv.nlinks++;
	log_debug("hv: guest connection opened uuid=%s fds=%zu", uuid,
	    l->nfds);
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
	hv.nlinks--;
	event_free(l->ev_done);
	pthread_mutex_destroy(&l->lock);
	log_debug("hv: guest connection closed uuid=%s", l->uuid);
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
	if (event_base_once(hv.base, -1, EV_TIMEOUT, hv_link_call_cb, c,
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
	size_t	i;

	if (virConnectIsAlive(l->conn) == 1)
		return 0;
	if (hv.state != HV_CONNECTED || hv.conn == NULL ||
	    virConnectIsAlive(hv.conn) != 1)
		return 0;
	/*
	 * libvirtd killed: every socket ends at once, but libvirt may not
	 * have read the hypervisor connection's end yet.  Its socket says.
	 */
	for (i = 0; i < hv.nfds; i++)
		if (evglue_fd_ended(hv.fds[i]))
			return 0;
	return 1;
}

/* Guest connections open or closing now, for the status and the tests. */
unsigned int
hv_link_count(void)
{
	return hv.nlinks;
}

int
hv_init(struct event_base *base, const struct config *cfg,
    const struct hv_cbs *cbs, void *arg)
{
	hv.cbs = cbs;
	hv.cbs_arg = arg;
	virSetErrorFunc(NULL, hv_libvirt_error);
	hv.base = base;
	hv.uri = xstrdup(cfg->uri);
	hv.state = HV_DISCONNECTED;
	hv.lifecycle_id = -1;
	hv.retry_ev = evtimer_new(base, hv_retry, NULL);
	hv.lost_ev = event_new(base, -1, 0, hv_lost, NULL);
	if (hv.retry_ev == NULL || hv.lost_ev == NULL)
		return -1;
	hv_connect();
	return 0;
}

/* A changed uri reconnects at once; everything else needs nothing here. */
void
hv_reconfigure(const struct config *cfg)
{
	if (strcmp(cfg->uri, hv.uri) == 0)
		return;
	log_info("hv: uri changed from %s to %s, reconnecting",
	    log_esc(hv.uri), log_esc(cfg->uri));
	hv_disconnect();
	free(hv.uri);
	hv.uri = xstrdup(cfg->uri);
	evtimer_del(hv.retry_ev);
	hv.backoff_ms = 0;
	hv.failures = 0;
	hv_connect();
}

void
hv_shutdown(void)
{
	hv_disconnect();
	hv.state = HV_SHUTDOWN;
	if (hv.retry_ev != NULL)
		event_free(hv.retry_ev);
	if (hv.lost_ev != NULL)
		event_free(hv.lost_ev);
	hv.retry_ev = hv.lost_ev = NULL;
	free(hv.uri);
	hv.uri = NULL;
}
