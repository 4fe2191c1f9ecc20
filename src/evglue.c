/*
 * libevent as libvirt's event implementation: the six callbacks of
 * virEventRegisterImpl() on one event_base.
 *
 * The contract (docs/ARCHITECTURE.md has the long form):
 * - ids start at 1 and are never reused; an update of an unknown or removed
 *   id is ignored, a remove of one returns -1;
 * - the free callback (ff) never runs inside remove: libvirt calls remove
 *   with an object lock held and its ff takes the same lock, so ff runs
 *   later from the loop, and the wrapper stays allocated until then because
 *   a dispatch in progress may still hold it;
 * - a 0 ms timer fires once per loop iteration: it is re-added with a zero
 *   timeout after each call, never made active from its own callback, which
 *   would re-run it in the same pass and starve I/O;
 * - -1 disables a timer; a handle with events 0 stays registered but quiet.
 *
 * The loop runs in one thread, but libvirt calls these callbacks from any
 * thread, and does from a guest connection's thread (hv.c), with that
 * connection's lock held.  So the tables are guarded by a mutex that is
 * never held while calling out to libvirt, and an event is taken out of
 * libevent with event_del_noblock(): event_del() from another thread waits
 * for the event's callback if the loop is running it, and that callback
 * (libvirt's, for the same connection) waits for the lock the caller holds.
 * A callback that runs on after its handle was removed finds it removed.
 */
#include <sys/types.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <linux/sockios.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <event2/event_struct.h>
#include <libvirt/libvirt.h>

#include "virtconsoled.h"

struct evglue_handle {
	int			 id;
	int			 fd;
	int			 events;	/* VIR_EVENT_HANDLE_* */
	int			 backlog_ioctl;	/* SIOCOUTQ, FIONREAD or 0 */
	int			 tag;		/* the adding thread's, or 0 */
	short			 armed;		/* what libevent watches */
	evglue_handle_cb	 cb;
	void			*opaque;
	evglue_free_cb		 ff;
	int			 removed;
	struct event		 ev;
};

struct evglue_timeout {
	int			 id;
	int			 ms;		/* -1 off, 0 every pass, N ms */
	unsigned int		 gen;		/* bumped by every update */
	evglue_timeout_cb	 cb;
	void			*opaque;
	evglue_free_cb		 ff;
	int			 removed;
	struct event		 ev;
};

/* An id-sorted array: ids only grow, so adding appends. */
struct evglue_table {
	void		**items;
	size_t		  n;
	size_t		  cap;
};

static struct event_base	*evglue_base;
static pthread_mutex_t		 evglue_lock = PTHREAD_MUTEX_INITIALIZER;
static struct evglue_table	 evglue_handles;
static struct evglue_table	 evglue_timeouts;
static int			 evglue_next_handle = 1;
static int			 evglue_next_timeout = 1;
static unsigned int		 evglue_frees;	/* deferred frees pending */
static int			 evglue_in_handle; /* in a handle callback */
static int			 evglue_next_tag = 1;
/* The tag of the connection this thread is opening (evglue_tag_set()). */
static __thread int		 evglue_tag_current;

static void	evglue_handle_fire(evutil_socket_t, short, void *);
static void	evglue_timeout_fire(evutil_socket_t, short, void *);

/* The id is the first member of both wrapper types. */
static int
evglue_item_id(const void *item)
{
	return *(const int *)item;
}

static void
evglue_table_add(struct evglue_table *t, void *item)
{
	if (t->n == t->cap) {
		t->cap = t->cap == 0 ? 16 : t->cap * 2;
		t->items = xrealloc(t->items, t->cap * sizeof *t->items);
	}
	t->items[t->n++] = item;
}

static ssize_t
evglue_table_index(const struct evglue_table *t, int id)
{
	size_t	lo = 0, hi = t->n, mid;
	int	mid_id;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		mid_id = evglue_item_id(t->items[mid]);
		if (mid_id == id)
			return (ssize_t)mid;
		if (mid_id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

static void *
evglue_table_find(const struct evglue_table *t, int id)
{
	ssize_t	i = evglue_table_index(t, id);

	return i < 0 ? NULL : t->items[i];
}

static void *
evglue_table_take(struct evglue_table *t, int id)
{
	ssize_t	 i = evglue_table_index(t, id);
	void	*item;

	if (i < 0)
		return NULL;
	item = t->items[i];
	memmove(&t->items[i], &t->items[i + 1],
	    (t->n - (size_t)i - 1) * sizeof *t->items);
	t->n--;
	return item;
}

/*
 * The deferred part of a remove: run the free callback on a clean stack,
 * then free the wrapper.
 */
static void
evglue_handle_free(evutil_socket_t fd, short what, void *arg)
{
	struct evglue_handle	*h = arg;

	if (h->ff != NULL)
		h->ff(h->opaque);
	free(h);
	pthread_mutex_lock(&evglue_lock);
	evglue_frees--;
	pthread_mutex_unlock(&evglue_lock);
}

static void
evglue_timeout_free(evutil_socket_t fd, short what, void *arg)
{
	struct evglue_timeout	*t = arg;

	if (t->ff != NULL)
		t->ff(t->opaque);
	free(t);
	pthread_mutex_lock(&evglue_lock);
	evglue_frees--;
	pthread_mutex_unlock(&evglue_lock);
}

/* Called with evglue_lock held. */
static void
evglue_defer_free(event_callback_fn fn, void *arg)
{
	struct timeval	now = { 0, 0 };

	evglue_frees++;
	if (event_base_once(evglue_base, -1, EV_TIMEOUT, fn, arg,
	    &now) == -1) {
		/*
		 * Out of memory: leaking one wrapper is better than running
		 * ff inside remove and deadlocking libvirt.
		 */
		evglue_frees--;
		log_warnx("evglue: cannot defer a free callback, leaking it");
	}
}

static short
evglue_to_libevent(int events)
{
	short	what = 0;

	if (events & VIR_EVENT_HANDLE_READABLE)
		what |= EV_READ;
	if (events & VIR_EVENT_HANDLE_WRITABLE)
		what |= EV_WRITE;
	return what;
}

/*
 * Register a handle with libevent for exactly its current events.  Called
 * with the lock held.
 */
static void
evglue_handle_set(struct evglue_handle *h)
{
	short	what = evglue_to_libevent(h->events);

	event_del_noblock(&h->ev);
	event_assign(&h->ev, evglue_base, h->fd, (short)(what | EV_PERSIST),
	    evglue_handle_fire, h);
	if (what != 0)
		event_add(&h->ev, NULL);
	h->armed = what;
}

/*
 * (Re)arm a handle for its current events.  Called with the lock held.
 * Fewer events than libevent watches are applied lazily: libvirt's remote
 * client turns its socket's handle off and on again around every call it
 * makes itself (each virStreamSend of a keystroke), which would cost an
 * epoll_ctl() pair each time.  The registration stays, evglue_handle_fire()
 * delivers only the events libvirt wants, and the first time an unwanted
 * event fires it narrows the registration: one extra loop pass at most,
 * never a busy loop, never a callback libvirt did not ask for.
 */
static void
evglue_handle_arm(struct evglue_handle *h)
{
	short	what = evglue_to_libevent(h->events);

	if (h->armed != 0 && (what & ~h->armed) == 0)
		return;
	evglue_handle_set(h);
}

/* (Re)arm a timer for its interval; restarts the period. Lock held. */
static void
evglue_timeout_arm(struct evglue_timeout *t)
{
	struct timeval	tv;

	if (t->ms < 0) {
		event_del_noblock(&t->ev);
		return;
	}
	tv.tv_sec = t->ms / 1000;
	tv.tv_usec = (t->ms % 1000) * 1000;
	event_add(&t->ev, &tv);
}

static void
evglue_handle_fire(evutil_socket_t fd, short what, void *arg)
{
	struct evglue_handle	*h = arg;
	evglue_handle_cb	 cb;
	void			*opaque;
	int			 events = 0, id;

	pthread_mutex_lock(&evglue_lock);
	if (h->removed) {
		pthread_mutex_unlock(&evglue_lock);
		return;
	}
	/*
	 * libevent folds HUP and ERR into read and write readiness; libvirt
	 * finds EOF or the error on its next read or write.
	 */
	if (what & EV_READ)
		events |= VIR_EVENT_HANDLE_READABLE;
	if (what & EV_WRITE)
		events |= VIR_EVENT_HANDLE_WRITABLE;
	if (events & ~h->events)	/* an event turned off lazily */
		evglue_handle_set(h);
	events &= h->events;
	cb = h->cb;
	opaque = h->opaque;
	id = h->id;
	pthread_mutex_unlock(&evglue_lock);
	if (events != 0) {
		evglue_in_handle++;
		cb(id, (int)fd, events, opaque);
		evglue_in_handle--;
	}
}

static void
evglue_timeout_fire(evutil_socket_t fd, short what, void *arg)
{
	struct evglue_timeout	*t = arg;
	evglue_timeout_cb	 cb;
	void			*opaque;
	unsigned int		 gen;
	int			 id;

	pthread_mutex_lock(&evglue_lock);
	if (t->removed || t->ms < 0) {
		pthread_mutex_unlock(&evglue_lock);
		return;
	}
	cb = t->cb;
	opaque = t->opaque;
	id = t->id;
	gen = t->gen;
	pthread_mutex_unlock(&evglue_lock);

	cb(id, opaque);

	/*
	 * Re-arm for the next period unless the callback removed or updated
	 * the timer (an update has armed it already).  For 0 ms this adds a
	 * zero timeout, which fires on the next loop iteration, after I/O.
	 */
	pthread_mutex_lock(&evglue_lock);
	if (!t->removed && t->gen == gen)
		evglue_timeout_arm(t);
	pthread_mutex_unlock(&evglue_lock);
}

/*
 * How to ask the kernel for the bytes written to fd and not yet read by the
 * other end (evglue_fd_backlog): for a socket its send queue (SIOCOUTQ:
 * what the peer has not consumed, for a unix socket — libvirtd's, or the
 * socketpair libvirt gives ssh for qemu+ssh://, so what ssh has not read —
 * or not acknowledged, for TCP: qemu+tcp://, qemu+tls://), for a pipe what
 * it holds (FIONREAD); 0 when it cannot tell.
 * Asked once, when libvirt adds the handle: an fd does not change its kind
 * while it is watched, and the send queue check then costs one ioctl.
 */
static int
evglue_backlog_ioctl(int fd)
{
	struct stat	st;

	if (fstat(fd, &st) == -1)
		return 0;
	if (S_ISSOCK(st.st_mode))
		return SIOCOUTQ;
	if (S_ISFIFO(st.st_mode))
		return FIONREAD;
	return 0;
}

int
evglue_add_handle(int fd, int events, evglue_handle_cb cb, void *opaque,
    evglue_free_cb ff)
{
	struct evglue_handle	*h;
	int			 id;

	if (fd < 0 || cb == NULL || evglue_base == NULL)
		return -1;
	h = xcalloc(1, sizeof *h);
	h->fd = fd;
	h->tag = evglue_tag_current;
	h->backlog_ioctl = evglue_backlog_ioctl(fd);
	h->cb = cb;
	h->opaque = opaque;
	h->ff = ff;

	pthread_mutex_lock(&evglue_lock);
	if (evglue_next_handle == INT32_MAX) {
		pthread_mutex_unlock(&evglue_lock);
		free(h);
		return -1;
	}
	id = h->id = evglue_next_handle++;
	h->events = events;
	event_assign(&h->ev, evglue_base, fd, 0, evglue_handle_fire, h);
	evglue_handle_arm(h);
	evglue_table_add(&evglue_handles, h);
	pthread_mutex_unlock(&evglue_lock);
	log_debug("evglue: add handle %d fd=%d events=%d", id, fd, events);
	return id;
}

void
evglue_update_handle(int id, int events)
{
	struct evglue_handle	*h;

	pthread_mutex_lock(&evglue_lock);
	/* libvirt does update after remove: that is a no-op, not an error. */
	if ((h = evglue_table_find(&evglue_handles, id)) != NULL &&
	    h->events != events) {
		h->events = events;
		evglue_handle_arm(h);
	}
	pthread_mutex_unlock(&evglue_lock);
}

int
evglue_remove_handle(int id)
{
	struct evglue_handle	*h;

	pthread_mutex_lock(&evglue_lock);
	if ((h = evglue_table_take(&evglue_handles, id)) == NULL) {
		pthread_mutex_unlock(&evglue_lock);
		return -1;
	}
	event_del_noblock(&h->ev);
	h->removed = 1;
	evglue_defer_free(evglue_handle_free, h);
	pthread_mutex_unlock(&evglue_lock);
	log_debug("evglue: remove handle %d", id);
	return 0;
}

int
evglue_add_timeout(int ms, evglue_timeout_cb cb, void *opaque,
    evglue_free_cb ff)
{
	struct evglue_timeout	*t;
	int			 id;

	if (cb == NULL || evglue_base == NULL)
		return -1;
	t = xcalloc(1, sizeof *t);
	t->cb = cb;
	t->opaque = opaque;
	t->ff = ff;

	pthread_mutex_lock(&evglue_lock);
	if (evglue_next_timeout == INT32_MAX) {
		pthread_mutex_unlock(&evglue_lock);
		free(t);
		return -1;
	}
	id = t->id = evglue_next_timeout++;
	t->ms = ms < 0 ? -1 : ms;
	evtimer_assign(&t->ev, evglue_base, evglue_timeout_fire, t);
	evglue_timeout_arm(t);
	evglue_table_add(&evglue_timeouts, t);
	pthread_mutex_unlock(&evglue_lock);
	log_debug("evglue: add timeout %d ms=%d", id, ms);
	return id;
}

void
evglue_update_timeout(int id, int ms)
{
	struct evglue_timeout	*t;
	int			 was;

	pthread_mutex_lock(&evglue_lock);
	if ((t = evglue_table_find(&evglue_timeouts, id)) != NULL) {
		was = t->ms;
		t->ms = ms < 0 ? -1 : ms;
		t->gen++;
		/*
		 * libvirt's remote client reads a stream packet in its socket's
		 * handle callback and asks for the stream's events with a 0 ms
		 * timer: run that in this loop pass, not after one more
		 * epoll_wait(), and the console's output leaves at once.  Only
		 * from a handle callback, which I/O readiness bounds: a timer
		 * never starts a timer in the same pass, so nothing can loop
		 * without serving I/O.  Later passes re-add it as a zero
		 * timeout (evglue_timeout_fire), once per iteration.
		 */
		if (t->ms == 0 && was != 0 && evglue_in_handle > 0) {
			event_del_noblock(&t->ev);
			event_active(&t->ev, EV_TIMEOUT, 1);
		} else
			evglue_timeout_arm(t);
	}
	pthread_mutex_unlock(&evglue_lock);
}

int
evglue_remove_timeout(int id)
{
	struct evglue_timeout	*t;

	pthread_mutex_lock(&evglue_lock);
	if ((t = evglue_table_take(&evglue_timeouts, id)) == NULL) {
		pthread_mutex_unlock(&evglue_lock);
		return -1;
	}
	event_del_noblock(&t->ev);
	t->removed = 1;
	evglue_defer_free(evglue_timeout_free, t);
	pthread_mutex_unlock(&evglue_lock);
	log_debug("evglue: remove timeout %d", id);
	return 0;
}

/*
 * Make base libvirt's event loop.  Must run before any virConnectOpen:
 * a connection opened earlier silently loses keepalive and events.
 */
int
evglue_register(struct event_base *base)
{
	if (evglue_base != NULL && evglue_base != base)
		return -1;
	evglue_base = base;
	virEventRegisterImpl(evglue_add_handle, evglue_update_handle,
	    evglue_remove_handle, evglue_add_timeout, evglue_update_timeout,
	    evglue_remove_timeout);
	return 0;
}

/*
 * Forget the tables at exit, after the loop has drained the deferred frees.
 * Whatever libvirt still has registered is released without its ff, since
 * libvirt itself is being torn down.
 */
void
evglue_unregister(void)
{
	size_t	i;

	pthread_mutex_lock(&evglue_lock);
	for (i = 0; i < evglue_handles.n; i++) {
		struct evglue_handle *h = evglue_handles.items[i];

		event_del_noblock(&h->ev);
		free(h);
	}
	for (i = 0; i < evglue_timeouts.n; i++) {
		struct evglue_timeout *t = evglue_timeouts.items[i];

		event_del_noblock(&t->ev);
		free(t);
	}
	free(evglue_handles.items);
	free(evglue_timeouts.items);
	memset(&evglue_handles, 0, sizeof evglue_handles);
	memset(&evglue_timeouts, 0, sizeof evglue_timeouts);
	evglue_base = NULL;
	pthread_mutex_unlock(&evglue_lock);
}

unsigned int
evglue_pending_frees(void)
{
	unsigned int	n;

	pthread_mutex_lock(&evglue_lock);
	n = evglue_frees;
	pthread_mutex_unlock(&evglue_lock);
	return n;
}

/*
 * Which fds belong to one libvirt connection.  libvirt does not say, but
 * virConnectOpen() adds the watch of the connection's socket (for ssh, its
 * end of the socketpair to ssh) before it returns, on the thread that runs it: the opener
 * takes a fresh tag (evglue_tag_new()), sets it for its own thread
 * (evglue_tag_set()) around the open, and asks for the fds with that tag
 * (evglue_fds_tagged()).  Opens on several threads at once, and handles
 * the loop adds meanwhile, do not mix.  A connection keeps its fd for its
 * whole life.
 */
int
evglue_tag_new(void)
{
	int	tag;

	pthread_mutex_lock(&evglue_lock);
	tag = evglue_next_tag++;
	if (evglue_next_tag == INT32_MAX)
		evglue_next_tag = 1;	/* tags of live opens are few */
	pthread_mutex_unlock(&evglue_lock);
	return tag;
}

/* The tag of what this thread adds from now on; 0: none. */
void
evglue_tag_set(int tag)
{
	evglue_tag_current = tag;
}

/* The fds of the live handles with tag, at most max of them. */
size_t
evglue_fds_tagged(int tag, int *fds, size_t max)
{
	const struct evglue_handle	*h;
	size_t				 i, n = 0;

	if (tag == 0)
		return 0;
	pthread_mutex_lock(&evglue_lock);
	for (i = 0; i < evglue_handles.n && n < max; i++) {
		h = evglue_handles.items[i];
		if (h->tag == tag && !h->removed)
			fds[n++] = h->fd;
	}
	pthread_mutex_unlock(&evglue_lock);
	return n;
}

/*
 * The bytes written to one watched fd that its peer has not read yet, for
 * the send window of one connection (libvirt's remote virStreamSend()
 * blocks until its whole packet is written, and libvirtd stops reading a
 * connection while max_client_requests stream packets wait for a console
 * that does not take them); 0 when no live handle has the fd.
 */
size_t
evglue_fd_backlog(int fd)
{
	const struct evglue_handle	*h;
	size_t				 i, most = 0;
	int				 n;

	pthread_mutex_lock(&evglue_lock);
	for (i = 0; i < evglue_handles.n; i++) {
		h = evglue_handles.items[i];
		if (h->fd == fd && !h->removed && h->backlog_ioctl != 0 &&
		    ioctl(h->fd, (unsigned long)h->backlog_ioctl, &n) != -1 &&
		    n > 0 && (size_t)n > most)
			most = (size_t)n;
	}
	pthread_mutex_unlock(&evglue_lock);
	return most;
}

/*
 * Whether the peer of a watched socket has closed it (what is left to
 * read ends there) or reset it: a peek that takes nothing.
 */
int
evglue_fd_ended(int fd)
{
	char	c;
	ssize_t	n;

	n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
	return n == 0 || (n == -1 && (errno == ECONNRESET || errno == EPIPE ||
	    errno == ENOTCONN));
}

unsigned int
evglue_handle_count(void)
{
	unsigned int	n;

	pthread_mutex_lock(&evglue_lock);
	n = (unsigned int)evglue_handles.n;
	pthread_mutex_unlock(&evglue_lock);
	return n;
}

unsigned int
evglue_timeout_count(void)
{
	unsigned int	n;

	pthread_mutex_lock(&evglue_lock);
	n = (unsigned int)evglue_timeouts.n;
	pthread_mutex_unlock(&evglue_lock);
	return n;
}
