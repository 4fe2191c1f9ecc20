/*
 * Unit tests of the libvirt event glue against a bare event_base: the
 * checklist items 1-4 of LIBVIRT-EVENTS.md (ff deferred, update after
 * remove, unknown ids, disabled timers, ids never reused, 0 ms timers once
 * per iteration without starving I/O, -1, periodic timers, updates from a
 * callback, handles with events 0), and evglue_fd_backlog() with the fds
 * of one connection, which the consoles' send window relies on.  Run under ASan by tests/run.sh.
 */
#include <sys/socket.h>
#include <sys/time.h>

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>
#include <libvirt/libvirt.h>

#include "virtconsoled.h"
#include "tap.h"

static struct event_base *base;

struct probe {
	int	id;
	int	calls;
	int	frees;
	int	last_events;
	int	last_fd;
	int	frees_seen_in_remove;	/* ff count right after remove */
	int	remove_rc;
	int	action;			/* what the callback does */
	int	limit;			/* for actions that stop after N */
	int	other_id;
};

enum {
	ACT_NONE,
	ACT_REMOVE_SELF,
	ACT_DISABLE_AT_LIMIT,
	ACT_REARM_ZERO,
	ACT_SLOW_DOWN,
	ACT_REMOVE_OTHER,
	ACT_ZERO_OTHER,		/* set the other_id timer to 0 ms */
};

static void
probe_free(void *opaque)
{
	struct probe *p = opaque;

	p->frees++;
}

static void
handle_cb(int watch, int fd, int events, void *opaque)
{
	struct probe *p = opaque;

	p->calls++;
	p->last_events = events;
	p->last_fd = fd;
	if (p->action == ACT_REMOVE_SELF) {
		p->remove_rc = evglue_remove_handle(watch);
		p->frees_seen_in_remove = p->frees;
	} else if (p->action == ACT_REMOVE_OTHER)
		p->remove_rc = evglue_remove_handle(p->other_id);
	else if (p->action == ACT_ZERO_OTHER) {
		evglue_update_timeout(p->other_id, 0);
		p->action = ACT_NONE;
	}
}

static void
timeout_cb(int timer, void *opaque)
{
	struct probe *p = opaque;

	p->calls++;
	switch (p->action) {
	case ACT_REMOVE_SELF:
		p->remove_rc = evglue_remove_timeout(timer);
		p->frees_seen_in_remove = p->frees;
		break;
	case ACT_DISABLE_AT_LIMIT:
		if (p->calls == p->limit)
			evglue_update_timeout(timer, -1);
		break;
	case ACT_REARM_ZERO:
		/* libvirt's keepalive re-arms its timer from inside it. */
		evglue_update_timeout(timer, 0);
		break;
	case ACT_SLOW_DOWN:
		evglue_update_timeout(timer, 10000);
		break;
	case ACT_ZERO_OTHER:
		evglue_update_timeout(p->other_id, 0);
		p->action = ACT_NONE;
		break;
	}
}

static void
iterate(int n)
{
	int i;

	for (i = 0; i < n; i++)
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
}

/* Run the loop for ms milliseconds of wall time. */
static void
run_for(int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	event_base_loopexit(base, &tv);
	event_base_loop(base, 0);
}

static void
make_pair(int sv[2], int readable)
{
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1) {
		perror("socketpair");
		exit(1);
	}
	if (readable && write(sv[1], "x", 1) != 1) {
		perror("write");
		exit(1);
	}
}

static void
test_ids(void)
{
	struct probe	p = { 0 };
	int		sv[2], a, b, c, d, t1, t2, t3;

	make_pair(sv, 0);
	a = evglue_add_handle(sv[0], 0, handle_cb, &p, NULL);
	b = evglue_add_handle(sv[0], 0, handle_cb, &p, NULL);
	is_int(a, 1, "first handle id is 1");
	is_int(b, 2, "second handle id is 2");
	ok(evglue_remove_handle(b) == 0, "remove the newest handle");
	c = evglue_add_handle(sv[0], 0, handle_cb, &p, NULL);
	ok(c > b, "a handle id is never reused (got %d after %d)", c, b);
	ok(evglue_remove_handle(a) == 0 && evglue_remove_handle(c) == 0,
	    "remove the others");
	d = evglue_add_handle(sv[0], 0, handle_cb, &p, NULL);
	ok(d > c, "ids keep growing after the table is empty");
	evglue_remove_handle(d);

	t1 = evglue_add_timeout(-1, timeout_cb, &p, NULL);
	t2 = evglue_add_timeout(-1, timeout_cb, &p, NULL);
	is_int(t1, 1, "first timer id is 1");
	evglue_remove_timeout(t2);
	t3 = evglue_add_timeout(-1, timeout_cb, &p, NULL);
	ok(t3 > t2, "a timer id is never reused");
	evglue_remove_timeout(t1);
	evglue_remove_timeout(t3);
	iterate(2);
	is_int(evglue_pending_frees(), 0, "all deferred frees ran");
	close(sv[0]);
	close(sv[1]);
}

static void
test_remove_handle_in_callback(void)
{
	struct probe	p = { 0 };
	int		sv[2];

	make_pair(sv, 1);
	p.action = ACT_REMOVE_SELF;
	p.id = evglue_add_handle(sv[0], VIR_EVENT_HANDLE_READABLE, handle_cb,
	    &p, probe_free);
	ok(p.id > 0, "add a readable handle");
	iterate(1);
	is_int(p.calls, 1, "handle callback ran");
	is_int(p.remove_rc, 0, "remove from inside its callback returns 0");
	is_int(p.frees_seen_in_remove, 0, "ff did not run inside remove");
	iterate(3);
	is_int(p.frees, 1, "ff ran exactly once, later");
	is_int(p.calls, 1, "no callback after remove, though still readable");
	is_int(evglue_remove_handle(p.id), -1, "second remove returns -1");
	iterate(2);
	is_int(p.frees, 1, "ff still ran only once");
	close(sv[0]);
	close(sv[1]);
}

static void
test_remove_timeout_in_callback(void)
{
	struct probe	p = { 0 };

	p.action = ACT_REMOVE_SELF;
	p.id = evglue_add_timeout(0, timeout_cb, &p, probe_free);
	iterate(1);
	is_int(p.calls, 1, "timer callback ran");
	is_int(p.remove_rc, 0, "timer remove from its callback returns 0");
	is_int(p.frees_seen_in_remove, 0, "timer ff did not run inside remove");
	iterate(3);
	is_int(p.frees, 1, "timer ff ran exactly once, later");
	is_int(p.calls, 1, "removed 0 ms timer fires no more");
}

static void
test_remove_outside_callback(void)
{
	struct probe	p = { 0 }, q = { 0 };
	int		sv[2];

	make_pair(sv, 1);
	p.id = evglue_add_handle(sv[0], VIR_EVENT_HANDLE_READABLE, handle_cb,
	    &p, probe_free);
	q.id = evglue_add_timeout(5, timeout_cb, &q, probe_free);
	is_int(evglue_remove_handle(p.id), 0, "remove a handle from outside");
	is_int(evglue_remove_timeout(q.id), 0, "remove a timer from outside");
	ok(p.frees == 0 && q.frees == 0, "no ff inside remove from outside");
	is_int(evglue_pending_frees(), 2, "two frees pending");
	iterate(1);
	ok(p.frees == 1 && q.frees == 1, "both ff ran at the next iteration");
	ok(p.calls == 0 && q.calls == 0, "neither callback ran");
	is_int(evglue_pending_frees(), 0, "nothing pending any more");
	close(sv[0]);
	close(sv[1]);
}

static void
test_update_after_remove(void)
{
	struct probe	p = { 0 }, q = { 0 };
	int		sv[2];

	make_pair(sv, 1);
	p.id = evglue_add_handle(sv[0], 0, handle_cb, &p, probe_free);
	evglue_remove_handle(p.id);
	evglue_update_handle(p.id, VIR_EVENT_HANDLE_READABLE);
	q.id = evglue_add_timeout(-1, timeout_cb, &q, probe_free);
	evglue_remove_timeout(q.id);
	evglue_update_timeout(q.id, 0);
	iterate(3);
	is_int(p.calls, 0, "update of a removed handle is ignored");
	is_int(q.calls, 0, "update of a removed timer is ignored");
	ok(p.frees == 1 && q.frees == 1, "their ff ran once each");
	evglue_update_handle(12345, VIR_EVENT_HANDLE_READABLE);
	evglue_update_timeout(12345, 0);
	/* updates of a never-used id: a crash fails the binary, no ok line */
	is_int(evglue_remove_handle(12345), -1, "remove unknown handle -> -1");
	is_int(evglue_remove_timeout(12345), -1, "remove unknown timer -> -1");
	is_int(evglue_remove_handle(0), -1, "remove handle 0 -> -1");
	is_int(evglue_remove_timeout(-3), -1, "remove timer -3 -> -1");
	close(sv[0]);
	close(sv[1]);
}

static void
test_disabled_timer(void)
{
	struct probe	p = { 0 };

	p.id = evglue_add_timeout(-1, timeout_cb, &p, probe_free);
	ok(p.id > 0, "add a disabled timer");
	iterate(3);
	is_int(p.calls, 0, "a disabled timer does not fire");
	is_int(evglue_remove_timeout(p.id), 0, "removing a disabled timer works");
	iterate(1);
	is_int(p.frees, 1, "its ff ran");
}

static void
test_zero_timer(void)
{
	struct probe	t = { 0 }, h = { 0 };
	int		sv[2];

	make_pair(sv, 1);
	t.id = evglue_add_timeout(0, timeout_cb, &t, probe_free);
	h.id = evglue_add_handle(sv[0], VIR_EVENT_HANDLE_READABLE, handle_cb,
	    &h, probe_free);
	iterate(10);
	is_int(t.calls, 10, "a 0 ms timer fires once per loop iteration");
	is_int(h.calls, 10, "and I/O is served on every iteration too");
	is_int(h.last_events, VIR_EVENT_HANDLE_READABLE, "events = READABLE");
	is_int(h.last_fd, sv[0], "the callback gets the fd");

	evglue_update_timeout(t.id, -1);
	iterate(5);
	is_int(t.calls, 10, "-1 stops a 0 ms timer");
	evglue_update_timeout(t.id, 0);
	iterate(4);
	is_int(t.calls, 14, "0 enables it again, once per iteration");

	evglue_remove_timeout(t.id);
	evglue_remove_handle(h.id);
	iterate(1);
	close(sv[0]);
	close(sv[1]);
}

/*
 * A 0 ms timer set from a handle callback (libvirt's remote client, on a
 * stream packet) runs in the same pass; set from a timer it waits for the
 * next pass, so timers cannot chain without serving I/O.
 */
static void
test_zero_timer_from_handle(void)
{
	struct probe	h = { 0 }, t = { 0 }, a = { 0 }, b = { 0 };
	int		sv[2];

	make_pair(sv, 1);
	t.id = evglue_add_timeout(-1, timeout_cb, &t, probe_free);
	t.action = ACT_DISABLE_AT_LIMIT;
	t.limit = 3;
	h.id = evglue_add_handle(sv[0], VIR_EVENT_HANDLE_READABLE, handle_cb,
	    &h, probe_free);
	h.action = ACT_ZERO_OTHER;
	h.other_id = t.id;
	iterate(1);
	ok(h.calls == 1 && t.calls == 1, "0 ms set in a handle callback: "
	    "the timer ran in the same pass (handle %d, timer %d)", h.calls,
	    t.calls);
	iterate(1);
	is_int(t.calls, 2, "then once per iteration");
	iterate(3);
	is_int(t.calls, 3, "-1 from its callback stops it");

	a.id = evglue_add_timeout(0, timeout_cb, &a, probe_free);
	b.id = evglue_add_timeout(-1, timeout_cb, &b, probe_free);
	a.action = ACT_ZERO_OTHER;
	a.other_id = b.id;
	b.action = ACT_DISABLE_AT_LIMIT;
	b.limit = 1;
	iterate(1);
	ok(a.calls == 1 && b.calls == 0, "0 ms set in a timer callback: "
	    "not in the same pass");
	iterate(1);
	is_int(b.calls, 1, "but in the next one");
	evglue_remove_handle(h.id);
	evglue_remove_timeout(t.id);
	evglue_remove_timeout(a.id);
	evglue_remove_timeout(b.id);
	iterate(1);
	ok(h.frees == 1 && t.frees == 1 && a.frees == 1 && b.frees == 1,
	    "their ff ran");
	close(sv[0]);
	close(sv[1]);
}

static void
test_update_in_callback(void)
{
	struct probe	p = { 0 }, k = { 0 }, s = { 0 };

	p.action = ACT_DISABLE_AT_LIMIT;
	p.limit = 3;
	p.id = evglue_add_timeout(0, timeout_cb, &p, probe_free);
	iterate(8);
	is_int(p.calls, 3, "-1 from inside its own callback stops the timer");

	k.action = ACT_REARM_ZERO;
	k.id = evglue_add_timeout(0, timeout_cb, &k, probe_free);
	iterate(6);
	is_int(k.calls, 6, "re-arming 0 from inside the callback: once per "
	    "iteration, not more");

	s.action = ACT_SLOW_DOWN;
	s.id = evglue_add_timeout(0, timeout_cb, &s, probe_free);
	iterate(5);
	is_int(s.calls, 1, "a longer period set from inside takes effect");

	evglue_remove_timeout(p.id);
	evglue_remove_timeout(k.id);
	evglue_remove_timeout(s.id);
	iterate(1);
	ok(p.frees == 1 && k.frees == 1 && s.frees == 1, "ff ran for all");
}

static void
test_periodic_timer(void)
{
	struct probe	p = { 0 };

	p.id = evglue_add_timeout(20, timeout_cb, &p, probe_free);
	run_for(210);
	/* At most one fire per 20 ms; on a loaded machine maybe fewer. */
	ok(p.calls >= 3 && p.calls <= 11, "a 20 ms timer is periodic over "
	    "210 ms (fired %d times)", p.calls);
	evglue_update_timeout(p.id, 100000);
	p.calls = 0;
	run_for(60);
	is_int(p.calls, 0, "update restarts the period");
	evglue_remove_timeout(p.id);
	iterate(1);
}

static void
test_events_zero_handle(void)
{
	struct probe	p = { 0 };
	int		sv[2];

	make_pair(sv, 1);
	p.id = evglue_add_handle(sv[0], 0, handle_cb, &p, probe_free);
	ok(p.id > 0, "add a handle with events 0");
	iterate(3);
	is_int(p.calls, 0, "events 0: registered but quiet");
	evglue_update_handle(p.id, VIR_EVENT_HANDLE_READABLE);
	iterate(1);
	is_int(p.calls, 1, "enabled later, it fires");
	evglue_update_handle(p.id, 0);
	iterate(3);
	is_int(p.calls, 1, "back to 0, it stops");
	evglue_update_handle(p.id, VIR_EVENT_HANDLE_WRITABLE);
	iterate(1);
	is_int(p.last_events, VIR_EVENT_HANDLE_WRITABLE, "WRITABLE reported");
	evglue_update_handle(p.id, VIR_EVENT_HANDLE_READABLE |
	    VIR_EVENT_HANDLE_WRITABLE);
	iterate(1);
	is_int(p.last_events, VIR_EVENT_HANDLE_READABLE |
	    VIR_EVENT_HANDLE_WRITABLE, "READABLE|WRITABLE reported together");
	evglue_remove_handle(p.id);
	iterate(1);
	close(sv[0]);
	close(sv[1]);
}

/*
 * libvirt turns its socket's handle off and on around each call it makes
 * itself: the registration with libevent stays (no epoll_ctl pair), no
 * callback is delivered while off, and an fd that turns ready while off is
 * unregistered after one pass, so the loop never spins on it.
 */
static void
test_lazy_disable(void)
{
	struct probe	p = { 0 };
	int		sv[2], added;
	char		c;

	make_pair(sv, 0);
	p.id = evglue_add_handle(sv[0], VIR_EVENT_HANDLE_READABLE, handle_cb,
	    &p, probe_free);
	added = event_base_get_num_events(base, EVENT_BASE_COUNT_ADDED);
	evglue_update_handle(p.id, 0);
	evglue_update_handle(p.id, VIR_EVENT_HANDLE_READABLE);
	is_int(event_base_get_num_events(base, EVENT_BASE_COUNT_ADDED), added,
	    "off and on again: the libevent registration is kept");
	evglue_update_handle(p.id, 0);
	is_int(event_base_get_num_events(base, EVENT_BASE_COUNT_ADDED), added,
	    "off: still registered until the fd turns ready");
	if (write(sv[1], "x", 1) != 1)
		ok(0, "write");
	iterate(1);
	is_int(p.calls, 0, "ready while off: no callback");
	is_int(event_base_get_num_events(base, EVENT_BASE_COUNT_ADDED),
	    added - 1, "and after that pass it is no longer registered");
	iterate(3);
	is_int(p.calls, 0, "still no callback");
	evglue_update_handle(p.id, VIR_EVENT_HANDLE_READABLE);
	iterate(1);
	ok(p.calls == 1 && p.last_events == VIR_EVENT_HANDLE_READABLE,
	    "on again: the pending input is reported");
	if (read(sv[0], &c, 1) != 1)
		ok(0, "read");

	/* READ|WRITE down to READ: WRITE is dropped the first time it fires. */
	p.calls = 0;
	evglue_update_handle(p.id, VIR_EVENT_HANDLE_READABLE |
	    VIR_EVENT_HANDLE_WRITABLE);
	iterate(1);
	ok(p.calls == 1 && p.last_events == VIR_EVENT_HANDLE_WRITABLE,
	    "READABLE|WRITABLE on a writable socket: WRITABLE reported");
	evglue_update_handle(p.id, VIR_EVENT_HANDLE_READABLE);
	iterate(3);
	is_int(p.calls, 1, "WRITABLE off: never reported again");
	if (write(sv[1], "y", 1) != 1)
		ok(0, "write");
	iterate(1);
	ok(p.calls == 2 && p.last_events == VIR_EVENT_HANDLE_READABLE,
	    "READABLE still reported alone");
	evglue_remove_handle(p.id);
	iterate(1);
	is_int(p.frees, 1, "its ff ran");
	close(sv[0]);
	close(sv[1]);
}

static void
test_same_fd_twice(void)
{
	struct probe	a = { 0 }, b = { 0 };
	int		sv[2];

	make_pair(sv, 1);
	a.id = evglue_add_handle(sv[0], VIR_EVENT_HANDLE_READABLE, handle_cb,
	    &a, probe_free);
	b.id = evglue_add_handle(sv[0], VIR_EVENT_HANDLE_READABLE, handle_cb,
	    &b, probe_free);
	iterate(1);
	ok(a.calls == 1 && b.calls == 1, "one fd registered twice: both fire");

	/* Whichever fires first removes the other in the same pass. */
	a.action = ACT_REMOVE_OTHER;
	a.other_id = b.id;
	b.action = ACT_REMOVE_OTHER;
	b.other_id = a.id;
	a.calls = b.calls = 0;
	iterate(1);
	is_int(a.calls + b.calls, 1, "a handle removed by another's callback "
	    "in the same pass does not fire");
	iterate(2);
	is_int(a.frees + b.frees, 1, "and its ff ran once");
	a.action = b.action = ACT_NONE;
	evglue_remove_handle(a.calls ? a.id : b.id);
	iterate(1);
	close(sv[0]);
	close(sv[1]);
}

static void
test_many(void)
{
	struct probe	p[200];
	int		sv[2], i, ok_all = 1;

	memset(p, 0, sizeof p);
	make_pair(sv, 1);
	for (i = 0; i < 200; i++) {
		if (i % 2)
			p[i].id = evglue_add_timeout(0, timeout_cb, &p[i],
			    probe_free);
		else
			p[i].id = evglue_add_handle(sv[0],
			    VIR_EVENT_HANDLE_READABLE, handle_cb, &p[i],
			    probe_free);
	}
	iterate(2);
	for (i = 0; i < 200; i++)
		ok_all &= p[i].calls == 2;
	ok(ok_all, "200 handles and timers all fire once per iteration");
	for (i = 199; i >= 0; i -= 3) {
		if (i % 2)
			evglue_remove_timeout(p[i].id);
		else
			evglue_remove_handle(p[i].id);
	}
	for (i = 0; i < 200; i++) {
		if ((199 - i) % 3 == 0)
			continue;
		if (i % 2)
			evglue_update_timeout(p[i].id, 0);
		else
			evglue_update_handle(p[i].id,
			    VIR_EVENT_HANDLE_READABLE);
	}
	iterate(1);
	ok_all = 1;
	for (i = 0; i < 200; i++)
		ok_all &= p[i].calls == ((199 - i) % 3 == 0 ? 2 : 3);
	ok(ok_all, "removing every third leaves the others working");
	is_int(evglue_handle_count() + evglue_timeout_count(), 133,
	    "tables hold the survivors");
	for (i = 0; i < 200; i++) {
		if ((199 - i) % 3 == 0)
			continue;
		if (i % 2)
			evglue_remove_timeout(p[i].id);
		else
			evglue_remove_handle(p[i].id);
	}
	iterate(1);
	ok_all = 1;
	for (i = 0; i < 200; i++)
		ok_all &= p[i].frees == 1;
	ok(ok_all, "every ff ran exactly once");
	close(sv[0]);
	close(sv[1]);
}

/*
 * What libvirt wrote to its socket and libvirtd has not read: the largest
 * backlog of the watched fds, back to 0 once the peer reads.
 */
static void
test_write_backlog(void)
{
	char	buf[8192];
	int	sv[2], sv2[2], pfd[2], a, b, c;
	ssize_t	n;
	size_t	bl;

	memset(buf, 'x', sizeof buf);
	make_pair(sv, 0);
	make_pair(sv2, 0);
	is_int((int)evglue_fd_backlog(sv[0]), 0,
	    "backlog: 0 for an fd no handle watches");
	a = evglue_add_handle(sv[0], VIR_EVENT_HANDLE_READABLE, handle_cb,
	    NULL, NULL);
	b = evglue_add_handle(sv2[0], 0, handle_cb, NULL, NULL);
	is_int((int)(evglue_fd_backlog(sv[0]) + evglue_fd_backlog(sv2[0])),
	    0, "backlog: 0 on idle sockets");
	n = write(sv[0], buf, 3000);
	bl = evglue_fd_backlog(sv[0]);
	ok(n == 3000 && bl >= 3000,
	    "backlog: unread bytes on a watched socket count (%zu)", bl);
	n = write(sv2[0], buf, 6000);
	bl = evglue_fd_backlog(sv2[0]);
	ok(n == 6000 && bl >= 6000,
	    "backlog: each watched socket has its own (%zu)", bl);
	n = read(sv2[1], buf, sizeof buf);
	bl = evglue_fd_backlog(sv2[0]);
	ok(n == 6000 && bl == 0, "backlog: drops when the peer reads (%zu)",
	    bl);
	n = read(sv[1], buf, sizeof buf);
	bl = evglue_fd_backlog(sv[0]);
	ok(n == 3000 && bl == 0, "backlog: 0 once all is read (%zu)", bl);
	if (pipe(pfd) == -1) {
		perror("pipe");
		exit(1);
	}
	c = evglue_add_handle(pfd[1], 0, handle_cb, NULL, NULL);
	n = write(pfd[1], buf, 500);
	is_int(n == 500 ? (int)evglue_fd_backlog(pfd[1]) : -1, 500,
	    "backlog: a pipe (ssh transport) counts what it holds");
	evglue_remove_handle(c);
	is_int((int)evglue_fd_backlog(pfd[1]), 0,
	    "backlog: a removed handle no longer counts");
	evglue_remove_handle(a);
	evglue_remove_handle(b);
	iterate(2);
	close(sv[0]);
	close(sv[1]);
	close(sv2[0]);
	close(sv2[1]);
	close(pfd[0]);
	close(pfd[1]);
}

/* A thread that adds a handle under its own tag, as an open would. */
struct tagger {
	int	fd;
	int	tag;
	int	id;
};

static void *
tagger_run(void *arg)
{
	struct tagger	*tg = arg;

	evglue_tag_set(tg->tag);
	tg->id = evglue_add_handle(tg->fd, VIR_EVENT_HANDLE_READABLE,
	    handle_cb, NULL, NULL);
	evglue_tag_set(0);
	return NULL;
}

/*
 * One connection's fds: those added under its tag by the thread that
 * opens it, and each fd's own backlog (the send window per connection).
 */
static void
test_connection_fds(void)
{
	char		 buf[4096];
	int		 sv[2], sv2[2], sv3[2], fds[4], tag, a, b, c;
	size_t		 n, before;
	ssize_t		 wr;
	struct tagger	 tg;
	pthread_t	 th;

	memset(buf, 'y', sizeof buf);
	make_pair(sv, 0);
	make_pair(sv2, 0);
	make_pair(sv3, 0);
	a = evglue_add_handle(sv[0], 0, handle_cb, NULL, NULL);
	tag = evglue_tag_new();
	n = evglue_fds_tagged(tag, fds, 4);
	is_int((int)n, 0, "mapping: nothing added with a new tag");
	ok(evglue_fds_tagged(0, fds, 4) == 0,
	    "mapping: tag 0 (none) names no connection");
	evglue_tag_set(tag);
	b = evglue_add_handle(sv2[0], VIR_EVENT_HANDLE_READABLE, handle_cb,
	    NULL, NULL);
	evglue_tag_set(0);
	/* Another open on another thread, at the same time. */
	tg.fd = sv3[0];
	tg.tag = evglue_tag_new();
	tg.id = -1;
	ok(tg.tag != tag && pthread_create(&th, NULL, tagger_run, &tg) == 0 &&
	    pthread_join(th, NULL) == 0 && tg.id > 0,
	    "tags: a handle added on another thread under another tag");
	c = evglue_add_handle(sv3[1], VIR_EVENT_HANDLE_READABLE, handle_cb,
	    NULL, NULL);
	n = evglue_fds_tagged(tag, fds, 4);
	ok(n == 1 && fds[0] == sv2[0],
	    "mapping: the handle added under the tag is the connection's "
	    "(fd %d, %zu found)", n > 0 ? fds[0] : -1, n);
	n = evglue_fds_tagged(tg.tag, fds, 4);
	ok(n == 1 && fds[0] == sv3[0], "tags: the other thread's handle is "
	    "its connection's only (fd %d, %zu found); the loop's untagged "
	    "one is nobody's", n > 0 ? fds[0] : -1, n);
	evglue_remove_handle(c);
	evglue_remove_handle(tg.id);
	ok(write(sv2[0], buf, 2500) == 2500 && evglue_fd_backlog(sv2[0]) >=
	    2500 && evglue_fd_backlog(sv[0]) == 0,
	    "mapping: one fd's backlog counts for it, not for the other");
	before = evglue_fd_backlog(sv2[0]);
	wr = write(sv[0], buf, 4000);
	ok(wr == 4000 && evglue_fd_backlog(sv[0]) >= 4000 &&
	    evglue_fd_backlog(sv2[0]) == before,
	    "mapping: and the other way round (%zu; the other stays %zu)",
	    evglue_fd_backlog(sv[0]), before);
	is_int((int)evglue_fd_backlog(-5), 0, "mapping: an unknown fd: 0");
	evglue_remove_handle(b);
	is_int((int)evglue_fds_tagged(tag, fds, 4), 0,
	    "mapping: a removed handle is no longer the connection's");
	is_int((int)evglue_fd_backlog(sv2[0]), 0,
	    "mapping: nor is its backlog counted");
	evglue_remove_handle(a);
	iterate(2);
	ok(!evglue_fd_ended(sv[0]), "ended: not while the peer is there");
	close(sv[1]);
	ok(evglue_fd_ended(sv[0]), "ended: once the peer has closed");
	close(sv[0]);
	close(sv2[0]);
	close(sv2[1]);
	close(sv3[0]);
	close(sv3[1]);
}

int
main(void)
{
	log_init(LOG_TARGET_STDERR, LOG_LEVEL_WARN, NULL);
	/* As the daemon: a thread may add handles (an open off the loop). */
	if (evthread_use_pthreads() == -1)
		abort();
	base = event_base_new();
	ok(base != NULL, "event base");
	ok(evglue_register(base) == 0, "register the glue");
	is_int(evglue_add_handle(-1, 0, handle_cb, NULL, NULL), -1,
	    "a negative fd is refused");

	test_ids();
	test_remove_handle_in_callback();
	test_remove_timeout_in_callback();
	test_remove_outside_callback();
	test_update_after_remove();
	test_disabled_timer();
	test_zero_timer();
	test_update_in_callback();
	test_periodic_timer();
	test_events_zero_handle();
	test_lazy_disable();
	test_zero_timer_from_handle();
	test_same_fd_twice();
	test_many();
	test_write_backlog();
	test_connection_fds();

	is_int(evglue_handle_count(), 0, "no handle left");
	is_int(evglue_timeout_count(), 0, "no timer left");
	is_int(evglue_pending_frees(), 0, "no deferred free left");
	evglue_unregister();
	event_base_free(base);
	libevent_global_shutdown();
	return tap_done();
}
