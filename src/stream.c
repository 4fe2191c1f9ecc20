/*
 * Console streams: every call the daemon makes on a libvirt console stream
 * goes through one table of operations (struct stream_ops), so that unit
 * tests can give sessions a fake stream and drive them without QEMU.
 * stream_libvirt_ops is the real table; stream_ops points at the one in
 * use.  Nothing else in the daemon calls virStream*() or
 * virDomainOpenConsole().
 *
 * A struct stream wraps one virStreamPtr with the callback its owner
 * registered; the libvirt callback is a trampoline to it, so owners never
 * see libvirt types.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "virtconsoled.h"

/* Unread bytes on a connection's socket below which a packet may go. */
#define STREAM_SEND_WINDOW	4096

struct stream {
	virStreamPtr	 st;
	struct hv_link	*link;		/* the guest's own connection */
	stream_event_cb	 cb;
	void		*arg;
	/* opening, on the link's thread */
	char		 uuid[GUEST_UUID_LEN];
	char		*alias;
	int		 force;
	int		 opening;
	int		 canceled;	/* closed while opening */
	int		 close_eof;
	int		 failed;	/* a send or receive failed */
	enum stream_open_result result;
	int		 log_err;
	int		 err_code;	/* virErrorNumber */
	char		 err[256];
	stream_open_cb	 open_cb;
	void		*open_arg;
	int		 lost_told;	/* stream_link_lost() called it */
	TAILQ_ENTRY(stream) entry;	/* stream_lv_all */
};
TAILQ_HEAD(stream_lv_list, stream);

/* Every libvirt stream, opening or open: a lost link fails its own. */
static struct stream_lv_list	stream_lv_all =
    TAILQ_HEAD_INITIALIZER(stream_lv_all);
/* The last recv failed for its lost link: libvirt set no error then. */
static int			stream_lv_link_gone;

static void	stream_link_lost(struct hv_link *);

static int
stream_to_virt(int events)
{
	return ((events & STREAM_EV_READABLE) ? VIR_STREAM_EVENT_READABLE : 0) |
	    ((events & STREAM_EV_ERROR) ? VIR_STREAM_EVENT_ERROR : 0) |
	    ((events & STREAM_EV_HANGUP) ? VIR_STREAM_EVENT_HANGUP : 0);
}

static int
stream_from_virt(int events)
{
	return ((events & VIR_STREAM_EVENT_READABLE) ? STREAM_EV_READABLE : 0) |
	    ((events & VIR_STREAM_EVENT_ERROR) ? STREAM_EV_ERROR : 0) |
	    ((events & VIR_STREAM_EVENT_HANGUP) ? STREAM_EV_HANGUP : 0);
}

static const char *
stream_lv_error(void)
{
	const char	*msg;

	if (stream_lv_link_gone && virGetLastError() == NULL)
		return "the guest's libvirt connection is closed";
	msg = virGetLastErrorMessage();

	return msg != NULL ? msg : "unknown error";
}

/*
 * Why a console could not be opened: a guest that is not running, a
 * console another client holds (most often), or one libvirt cannot open
 * at all, from the error in s->err and s->err_code (copied by the caller before any
 * other libvirt call: each resets the thread's last error, and
 * virConnectIsAlive() did, so that a console held elsewhere was logged as
 * "unknown error").  On the link's thread: the loop logs.
 */
static enum stream_open_result
stream_lv_open_failure(struct stream *s, virDomainPtr dom)
{
	enum stream_open_result	 result = STREAM_BUSY;

	if (dom != NULL && virDomainIsActive(dom) == 0)
		return STREAM_NOT_RUNNING;
	/* "Active console session exists for this domain" (qemu driver). */
	if (s->err_code == VIR_ERR_OPERATION_FAILED ||
	    strstr(s->err, "Active console session") != NULL)
		return STREAM_BUSY;
	s->log_err = 1;
	switch (s->err_code) {
	case VIR_ERR_INTERNAL_ERROR:	/* no such device, not a pty */
	case VIR_ERR_NO_SUPPORT:
	case VIR_ERR_OPERATION_UNSUPPORTED:
	case VIR_ERR_ARGUMENT_UNSUPPORTED:
	case VIR_ERR_CONFIG_UNSUPPORTED:
		/* It cannot be opened at all until the guest changes. */
		result = STREAM_NO_CONSOLE;
		break;
	default:
		break;
	}
	return result;
}

/* On the link's thread: the round trips of an open. */
static void
stream_lv_open_run(void *arg)
{
	struct stream	*s = arg;
	virConnectPtr	 conn = hv_link_conn(s->link);
	virDomainPtr	 dom = NULL;
	virStreamPtr	 st = NULL;
	virErrorPtr	 err;
	unsigned int	 flags = VIR_DOMAIN_CONSOLE_SAFE;

	if (conn == NULL) {
		/* The link's open (its first job) failed; it said why. */
		(void)snprintf(s->err, sizeof s->err, "no guest connection");
		s->result = STREAM_LINK_LOST;
		return;
	}
	if (s->force)
		flags |= VIR_DOMAIN_CONSOLE_FORCE;
	if ((dom = virDomainLookupByUUIDString(conn, s->uuid)) == NULL ||
	    (st = virStreamNew(conn, VIR_STREAM_NONBLOCK)) == NULL ||
	    virDomainOpenConsole(dom, s->alias, st, flags) == -1) {
		/* Copied now: the next libvirt call resets the last error. */
		err = virGetLastError();
		(void)snprintf(s->err, sizeof s->err, "%s", err != NULL &&
		    err->message != NULL ? err->message : "unknown error");
		s->err_code = err != NULL ? err->code : VIR_ERR_OK;
		if (virConnectIsAlive(conn) != 1)
			s->result = STREAM_LINK_LOST;
		else
			s->result = dom == NULL ? STREAM_NO_GUEST :
			    stream_lv_open_failure(s, dom);
		if (st != NULL)
			virStreamFree(st);
	} else {
		s->st = st;
		s->result = STREAM_OPENED;
	}
	if (dom != NULL)
		virDomainFree(dom);
}

static void	stream_lv_close(struct stream *, int);

/* Back on the loop: the owner learns the result, unless it left. */
static void
stream_lv_open_done(void *arg)
{
	struct stream	*s = arg;

	s->opening = 0;
	if (s->log_err)
		log_warnx("console open failed: %s", log_esc(s->err));
	/* Opened, but libvirt closed its connection since: no event comes. */
	if (s->result == STREAM_OPENED && hv_link_is_lost(s->link)) {
		s->result = STREAM_LINK_LOST;
		s->failed = 1;
	}
	if (s->canceled) {
		stream_lv_close(s, 0);
		return;
	}
	s->open_cb(s, s->result, s->open_arg);
}

/*
 * Start opening guest uuid's console alias on the guest's own connection
 * (opened here if it is not).  The round trips run on the connection's
 * thread, so the loop never waits for libvirtd; cb gets the result from
 * the loop.  NULL with *result when it cannot even start.
 */
static struct stream *
stream_lv_open(const char *hvname, const char *uuid, const char *alias,
    int force, stream_open_cb cb, void *arg,
    enum stream_open_result *result)
{
	struct hv_link	*link;
	struct hv	*hv;
	struct stream	*s;

	if ((hv = hv_find(hvname)) == NULL ||
	    (link = hv_link_get(hv, uuid)) == NULL) {
		*result = STREAM_NOT_RUNNING;
		return NULL;
	}
	s = xcalloc(1, sizeof *s);
	s->link = link;
	(void)snprintf(s->uuid, sizeof s->uuid, "%s", uuid);
	s->alias = xstrdup(alias);
	s->force = force;
	s->open_cb = cb;
	s->open_arg = arg;
	s->opening = 1;
	TAILQ_INSERT_TAIL(&stream_lv_all, s, entry);
	hv_link_on_lost(stream_link_lost);	/* hv.c tells us, from below */
	*result = STREAM_OPENED;
	hv_link_call(link, stream_lv_open_run, stream_lv_open_done, s);
	return s;
}

static int
stream_lv_send(struct stream *s, const char *buf, size_t len)
{
	int	n;

	stream_lv_link_gone = 0;
	if ((n = virStreamSend(s->st, buf, len)) == -1)
		s->failed = 1;
	return n;
}

static int
stream_lv_recv(struct stream *s, char *buf, size_t len)
{
	int	n;

	stream_lv_link_gone = 0;
	/* What libvirt still holds is read first: nothing more comes. */
	if ((n = virStreamRecv(s->st, buf, len)) == -2 &&
	    hv_link_is_lost(s->link)) {
		virResetLastError();
		stream_lv_link_gone = 1;
		n = -1;
	}
	if (n == -1)
		s->failed = 1;
	return n;
}

static void
stream_lv_event(virStreamPtr st, int events, void *opaque)
{
	struct stream	*s = opaque;

	if (s->cb != NULL)
		s->cb(s, stream_from_virt(events), s->arg);
}

/*
 * No free callback: libvirt 9.0's remote driver never calls it
 * (remoteStreamCallbackFree only does when its cb is NULL, which it never
 * is), so an owner cannot wait for it.  It does not need to: removing the
 * callback is synchronous in this single-threaded process, and owners are
 * freed only on a later loop pass.
 */
static int
stream_lv_watch(struct stream *s, int events, stream_event_cb cb, void *arg)
{
	s->cb = cb;
	s->arg = arg;
	if (virStreamEventAddCallback(s->st, stream_to_virt(events),
	    stream_lv_event, s, NULL) == -1) {
		s->cb = NULL;
		return -1;
	}
	return 0;
}

static void
stream_lv_unwatch(struct stream *s)
{
	if (s->cb != NULL)
		virStreamEventRemoveCallback(s->st);
	s->cb = NULL;
	s->arg = NULL;
}

/* On the link's thread: finishing or aborting waits for libvirtd. */
static void
stream_lv_close_run(void *arg)
{
	struct stream	*s = arg;

	if (s->st == NULL)
		return;
	if (s->close_eof)
		(void)virStreamFinish(s->st);
	else
		(void)virStreamAbort(s->st);
	virStreamFree(s->st);
}

static void
stream_lv_free(void *arg)
{
	struct stream	*s = arg;

	TAILQ_REMOVE(&stream_lv_all, s, entry);
	hv_link_put(s->link);
	free(s->alias);
	free(s);
}

/*
 * Finish a stream at its end of file, abort it otherwise; then free it.
 * The owner is done with it at once.  A stream that failed (libvirtd
 * dropped it, or its connection is gone) is aborted and freed here, on
 * the loop, as virsh console does: its abort sends nothing and waits for
 * nothing, and no other thread then holds the stream while libvirt may
 * still be dispatching its event on the loop's stack.  Any other close is
 * a round trip and runs on the link's thread (a stuck guest's connection
 * may keep it waiting); a stream still opening is closed once its open
 * comes back.
 */
static void
stream_lv_close(struct stream *s, int eof)
{
	s->close_eof = eof;
	if (s->opening) {
		s->canceled = 1;
		return;
	}
	if (s->cb != NULL)
		virStreamEventRemoveCallback(s->st);
	s->cb = NULL;
	if (s->failed && !eof) {
		stream_lv_close_run(s);
		virResetLastError();
		stream_lv_free(s);
		return;
	}
	hv_link_call(s->link, stream_lv_close_run, stream_lv_free, s);
}

/*
 * Whether len more bytes can go to this stream's connection now without
 * blocking the loop: libvirt's remote virStreamSend() returns only once
 * the packet is written, and libvirtd stops reading a connection while
 * max_client_requests (5) of its stream packets wait for a console that
 * does not take them.  Each guest has its connection, so a stuck console
 * holds up only its own guest.
 */
static int
stream_lv_can_send(struct stream *s, size_t len)
{
	return hv_link_backlog(s->link) + len <= STREAM_SEND_WINDOW;
}

/* Why it failed: see enum stream_failure. */
static enum stream_failure
stream_lv_failure(struct stream *s)
{
	if (hv_state(hv_link_hv(s->link)) != HV_CONNECTED)
		return STREAM_FAIL_HV_LOST;
	if (hv_link_lost_alone(s->link))
		return STREAM_FAIL_LINK_LOST;
	return virConnectIsAlive(hv_link_conn(s->link)) == 1 ?
	    STREAM_FAIL_TAKEN : STREAM_FAIL_HV_LOST;
}

/*
 * libvirt closed the connection of link l (hv.c): each of its open streams
 * that is watched gets an error event, once, from the loop; its recv then
 * fails once libvirt holds nothing more (libvirt itself raises no event,
 * and its recv would say -2 for ever).  An owner's callback may close any
 * stream, so the walk starts again after each.
 */
static void
stream_link_lost(struct hv_link *l)
{
	struct stream	*s;

again:
	TAILQ_FOREACH(s, &stream_lv_all, entry) {
		if (s->link != l || s->opening || s->st == NULL ||
		    s->cb == NULL || s->lost_told)
			continue;
		s->lost_told = 1;
		s->cb(s, STREAM_EV_ERROR | STREAM_EV_HANGUP, s->arg);
		goto again;
	}
}

const struct stream_ops stream_libvirt_ops = {
	.open = stream_lv_open,
	.send = stream_lv_send,
	.recv = stream_lv_recv,
	.watch = stream_lv_watch,
	.unwatch = stream_lv_unwatch,
	.close = stream_lv_close,
	.can_send = stream_lv_can_send,
	.failure = stream_lv_failure,
	.error = stream_lv_error,
};

const struct stream_ops *stream_ops = &stream_libvirt_ops;
