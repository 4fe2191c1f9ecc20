/* The fake console stream of tests/unit/fake_stream.h. */
#include <sys/time.h>

#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "virtconsoled.h"
#include "fake_stream.h"

struct fake_stream		*fake_last;
enum stream_open_result		 fake_open_result = STREAM_OPENED;
int				 fake_opened, fake_closed;
int				 fake_open_null;
int				 fake_open_delay;
int				 fake_held;
int				 fake_open_calls, fake_open_forced;
enum stream_failure		 fake_failure = STREAM_FAIL_HV_LOST;
struct evbuffer			*fake_sent;
static struct event_base	*fake_base;

void
fake_stream_init(struct event_base *base)
{
	fake_base = base;
	if (fake_sent == NULL)
		fake_sent = evbuffer_new();
	fake_open_result = STREAM_OPENED;
	fake_last = NULL;
}

static void
fake_fire(evutil_socket_t fd, short what, void *arg)
{
	struct fake_stream	*f = arg;
	int			 ev = 0;

	if (f->opening && fake_open_delay) {
		struct timeval	ms = { 0, 1000 };

		event_add(f->ev, &ms);	/* not yet: try again soon */
		return;
	}
	if (f->opening) {
		/* As libvirt's: the open's result comes from the loop. */
		enum stream_open_result	r = fake_held && !f->force ?
					    STREAM_BUSY : fake_open_result;

		f->opening = 0;
		if (r == STREAM_OPENED) {
			fake_last = f;
			fake_opened++;
		}
		f->open_cb((struct stream *)f, r, f->open_arg);
		return;
	}

	if ((f->events & STREAM_EV_READABLE) &&
	    (evbuffer_get_length(f->out) > 0 || f->eof || f->fail))
		ev |= STREAM_EV_READABLE;
	if (ev != 0 && f->cb != NULL)
		f->cb((struct stream *)f, ev, f->arg);
}

static void
fake_announce(struct fake_stream *f)
{
	if (f->cb != NULL)
		event_active(f->ev, EV_TIMEOUT, 0);
}

void
fake_stream_print(struct fake_stream *f, const char *s)
{
	evbuffer_add(f->out, s, strlen(s));
	fake_announce(f);
}

/* From now on, every send and recv fails, as a broken stream's do. */
void
fake_stream_fail(struct fake_stream *f)
{
	f->fail = 1;
	fake_announce(f);
}

void
fake_stream_end(struct fake_stream *f)
{
	f->eof = 1;
	fake_announce(f);
}

static struct stream *
fake_open(const char *hv, const char *uuid, const char *alias, int force,
    stream_open_cb cb, void *arg, enum stream_open_result *result)
{
	struct fake_stream	*f;

	if (fake_open_null) {
		/* It cannot even start: no hypervisor connection. */
		*result = STREAM_NOT_RUNNING;
		return NULL;
	}
	f = xcalloc(1, sizeof *f);
	f->in = evbuffer_new();
	f->out = evbuffer_new();
	f->ev = event_new(fake_base, -1, 0, fake_fire, f);
	f->opening = 1;
	f->force = force;
	fake_open_calls++;
	fake_open_forced += force != 0;
	f->open_cb = cb;
	f->open_arg = arg;
	event_active(f->ev, EV_TIMEOUT, 0);
	*result = STREAM_OPENED;
	return (struct stream *)f;
}

static int
fake_send(struct stream *st, const char *buf, size_t len)
{
	struct fake_stream	*f = (struct fake_stream *)st;

	if (f->fail)
		return -1;
	if (f->full)
		return -2;
	evbuffer_add(f->in, buf, len);
	evbuffer_add(fake_sent, buf, len);
	return (int)len;
}

static int
fake_recv(struct stream *st, char *buf, size_t len)
{
	struct fake_stream	*f = (struct fake_stream *)st;
	int			 n;

	if (f->fail)
		return -1;
	if (evbuffer_get_length(f->out) == 0)
		return f->eof ? 0 : -2;
	if (f->packet > 0 && len > f->packet)
		len = f->packet;
	n = evbuffer_remove(f->out, buf, len);
	/* As libvirt's: readable again while packets wait. */
	if (f->packet > 0 && evbuffer_get_length(f->out) > 0)
		fake_announce(f);
	return n;
}

static int
fake_watch(struct stream *st, int events, stream_event_cb cb, void *arg)
{
	struct fake_stream	*f = (struct fake_stream *)st;

	f->events = events;
	f->cb = cb;
	f->arg = arg;
	return 0;
}

static void
fake_unwatch(struct stream *st)
{
	struct fake_stream	*f = (struct fake_stream *)st;

	f->cb = NULL;
	f->events = 0;
	event_del(f->ev);
}

static void
fake_close(struct stream *st, int eof)
{
	struct fake_stream	*f = (struct fake_stream *)st;

	if (fake_last == f)
		fake_last = NULL;
	event_free(f->ev);	/* an open not yet told is never told */
	evbuffer_free(f->in);
	evbuffer_free(f->out);
	free(f);
	(void)eof;
	fake_closed++;
}

static int
fake_can_send(struct stream *st, size_t len)
{
	return !((struct fake_stream *)st)->stuck;
}

static enum stream_failure
fake_failure_kind(struct stream *st)
{
	return fake_failure;
}

static const char *
fake_error(void)
{
	return "fake stream error";
}

const struct stream_ops fake_stream_ops = {
	.open = fake_open,
	.send = fake_send,
	.recv = fake_recv,
	.watch = fake_watch,
	.unwatch = fake_unwatch,
	.close = fake_close,
	.can_send = fake_can_send,
	.failure = fake_failure_kind,
	.error = fake_error,
};
