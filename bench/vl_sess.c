/*
 * A vcdload session, whatever its transport: its log lines, its end (the
 * first reason is kept), the console bytes it writes (queued, flushed to
 * the socket, TLS or stream) and receives, and its timer.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libvirt/virterror.h>
#include <openssl/err.h>

#include "vcdload.h"

const char *const end_by_names[] = { "none", "client", "server", "error" };

void
sess_log(struct sess *s, const char *fmt, ...)
{
	va_list	 ap;
	char	*msg;

	if (!cfg.verbose)
		return;
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) == -1)
		msg = NULL;
	va_end(ap);
	fprintf(stderr, "vcdload: %.3f session %u %s: %s\n",
	    (double)(now_ns() - run.t0) / NS, s->id, s->t.shown,
	    msg ? msg : fmt);
	free(msg);
}

/* Keep the last max bytes of a stream in buf. */
void
keep_last(uint8_t *buf, size_t *len, size_t max, const uint8_t *p, size_t n)
{
	if (n >= max) {
		memcpy(buf, p + n - max, max);
		*len = max;
		return;
	}
	if (*len + n > max) {
		memmove(buf, buf + (*len + n - max), max - n);
		*len = max - n;
	}
	memcpy(buf + *len, p, n);
	*len += n;
}

int
scan_has(struct sess *s, const char *text)
{
	return memmem(s->scan, s->scanlen, text, strlen(text)) != NULL;
}

/*
 * How a server said goodbye: virtconsoled's notice line, or the old
 * design's "Client disconnected", found in the last bytes received.
 * Returns how many of those bytes the goodbye took (with the CRLFs before
 * it), so that an echo test does not count them as stray.
 */
static size_t
sess_find_notice(struct sess *s)
{
	static const char	 tag[] = "[virtconsoled] ", old[] =
				     "Client disconnected";
	const uint8_t		*start, *p, *end = s->tail + s->taillen;
	const uint8_t		*colon, *eol;
	size_t			 k;

	if ((start = memmem(s->tail, s->taillen, tag, sizeof tag - 1)) !=
	    NULL) {
		p = start + sizeof tag - 1;
		if ((colon = memchr(p, ':', (size_t)(end - p))) == NULL)
			return 0;
		k = (size_t)(colon - p);
		if (k >= sizeof s->notice_kind)
			k = sizeof s->notice_kind - 1;
		memcpy(s->notice_kind, p, k);
		s->notice_kind[k] = '\0';
		p = colon + 1;
		while (p < end && *p == ' ')
			p++;
		eol = memchr(p, '\r', (size_t)(end - p));
		s->notice_reason = xstrndup((const char *)p,
		    (size_t)((eol ? eol : end) - p));
		if (strcmp(s->notice_kind, "refused") == 0)
			s->refused = 1;
	} else if ((start = memmem(s->tail, s->taillen, old, sizeof old -
	    1)) != NULL) {
		snprintf(s->notice_kind, sizeof s->notice_kind, "goodbye");
		s->notice_reason = xstrdup(old);
	} else
		return 0;
	while (start > s->tail && (start[-1] == '\r' || start[-1] == '\n'))
		start--;
	return (size_t)(end - start);
}

/* Release the transport: the fd, TLS, the stream. */
static void
sess_release(struct sess *s)
{
	if (s->watch != -1) {
		virEventRemoveHandle(s->watch);
		s->watch = -1;
	}
	if (s->ssl != NULL) {
		SSL_free(s->ssl);
		s->ssl = NULL;
	}
	if (s->fd != -1) {
		close(s->fd);
		s->fd = -1;
	}
	if (s->st != NULL) {
		if (s->st_cb)
			virStreamEventRemoveCallback(s->st);
		s->st_cb = 0;
		virStreamAbort(s->st);
		virResetLastError();
		loop_bury(s->st);
		s->st = NULL;
	}
	free(s->wr);
	s->wr = NULL;
	free(s->head);
	s->head = NULL;
	s->outlen = 0;
}

/* The session is over; the first reason is kept. */
void
sess_end(struct sess *s, enum end_by by, const char *what, const char *fmt,
    ...)
{
	va_list		ap;
	enum sess_state	was = s->state;
	size_t		k;

	if (s->state == ST_DONE)
		return;
	s->state = ST_DONE;
	s->due = 0;
	s->end_by = by;
	s->end_phase = run.phase;
	snprintf(s->end_what, sizeof s->end_what, "%s", what);
	va_start(ap, fmt);
	if (vasprintf(&s->end_detail, fmt, ap) == -1)
		s->end_detail = NULL;
	va_end(ap);
	k = sess_find_notice(s);
	/* The goodbye is not stray echo, nor the keystroke it cut short. */
	if (s->ready && (run.phase == PH_TEST || run.phase == PH_DRAIN) &&
	    cfg.test == TEST_ECHO)
		s->stray -= k < s->stray ? k : s->stray;
	s->waiting = 0;
	sess_release(s);
	if (by != END_CLIENT)
		sess_log(s, "ended in %s: %s %s: %s", phase_names[run.phase],
		    end_by_names[by], what, s->end_detail ? s->end_detail : "");
	if (was > ST_WAIT && was < ST_OPEN) {
		run.connecting--;
		attach_more();
	}
}

void
out_append(struct sess *s, const void *p, size_t n)
{
	if (s->outlen + n > s->outsize) {
		s->outsize = (s->outlen + n) * 2;
		s->out = xrealloc(s->out, s->outsize);
	}
	memcpy(s->out + s->outlen, p, n);
	s->outlen += n;
}

static void
out_consume(struct sess *s, size_t n)
{
	memmove(s->out, s->out + n, s->outlen - n);
	s->outlen -= n;
}

void
watch_update(struct sess *s, int want_write)
{
	if (s->watch == -1 || s->want_write == want_write)
		return;
	s->want_write = want_write;
	virEventUpdateHandle(s->watch, VIR_EVENT_HANDLE_READABLE |
	    (want_write ? VIR_EVENT_HANDLE_WRITABLE : 0));
}

/* Write what is queued; returns -1 if the session ended. */
int
sess_flush(struct sess *s)
{
	ssize_t	n;
	int	rc, err;

	if (s->state == ST_DONE)
		return -1;
	if (cfg.mode == MODE_LIBVIRT) {
		while (s->outlen > 0) {
			rc = virStreamSend(s->st, (const char *)s->out,
			    s->outlen);
			if (rc == -2)
				break;
			if (rc < 0) {
				s->io_err = 1;
				sess_end(s, END_ERROR, "stream error",
				    "virStreamSend: %s",
				    virGetLastErrorMessage());
				return -1;
			}
			out_consume(s, (size_t)rc);
		}
		virStreamEventUpdateCallback(s->st,
		    VIR_STREAM_EVENT_READABLE | VIR_STREAM_EVENT_ERROR |
		    VIR_STREAM_EVENT_HANGUP |
		    (s->outlen > 0 ? VIR_STREAM_EVENT_WRITABLE : 0));
		return 0;
	}
	while (s->outlen > 0) {
		if (s->ssl != NULL) {
			ERR_clear_error();
			rc = SSL_write(s->ssl, s->out, (int)s->outlen);
			if (rc <= 0) {
				err = SSL_get_error(s->ssl, rc);
				if (err == SSL_ERROR_WANT_WRITE ||
				    err == SSL_ERROR_WANT_READ)
					break;
				s->io_err = 1;
				sess_end(s, END_ERROR, "tls error",
				    "SSL_write: %s", tls_error_text());
				return -1;
			}
			n = rc;
		} else {
			n = write(s->fd, s->out, s->outlen);
			if (n == -1) {
				if (errno == EAGAIN || errno == EINTR)
					break;
				if (errno == EPIPE || errno == ECONNRESET) {
					sess_end(s, END_SERVER, "reset",
					    "connection closed by the server "
					    "(write: %s)", strerror(errno));
					return -1;
				}
				s->io_err = 1;
				sess_end(s, END_ERROR, "io error", "write: %s",
				    strerror(errno));
				return -1;
			}
		}
		out_consume(s, (size_t)n);
	}
	watch_update(s, s->outlen > 0);
	return 0;
}

/* Console bytes to the guest. */
void
sess_write(struct sess *s, const void *p, size_t n)
{
	if (s->state != ST_OPEN)
		return;
	s->bytes_out += n;
	if (cfg.mode == MODE_WS || cfg.mode == MODE_WSS)
		ws_send_frame(s, WS_OP_BINARY, p, n);
	else
		out_append(s, p, n);
	sess_flush(s);
}

void
sess_type(struct sess *s, const char *text)
{
	sess_write(s, text, strlen(text));
}

void
sess_attached(struct sess *s)
{
	int64_t	now = now_ns();

	s->state = ST_OPEN;
	s->attached = 1;
	s->t_attached = now;
	s->due = 0;
	run.connecting--;
	sess_log(s, "attached after %.1f ms", (double)(now - s->t_start) / MS);
	if (run.phase == PH_PREPARE || run.phase == PH_ATTACH)
		prep_start(s, now);
	attach_more();
}

/* Console bytes from the guest. */
void
sess_data(struct sess *s, const uint8_t *p, size_t n)
{
	int64_t	now;

	if (n == 0 || s->state == ST_DONE)
		return;
	now = now_ns();
	s->bytes_in += n;
	keep_last(s->tail, &s->taillen, TAIL_MAX, p, n);
	if (run.phase == PH_TEST && s->ready) {
		if (cfg.test == TEST_ECHO)
			echo_data(s, p, n, now);
		return;
	}
	if (run.phase == PH_DRAIN && cfg.test == TEST_ECHO && s->ready) {
		echo_data(s, p, n, now);
		return;
	}
	switch (s->pr) {
	case PR_PROMPT:
	case PR_SYNC:
		keep_last(s->scan, &s->scanlen, SCAN_MAX, p, n);
		prep_step(s, now);
		break;
	case PR_QUIET:
		s->pr_next = now + QUIET;
		s->due = s->pr_next;
		break;
	default:
		break;
	}
}

void
sess_timer(struct sess *s, int64_t now)
{
	s->due = 0;
	switch (s->state) {
	case ST_WAIT:
	case ST_DONE:
		return;
	case ST_CONNECT:
	case ST_TLS:
	case ST_UPGRADE:
		if (now - s->t_start > (int64_t)(cfg.attach_timeout * NS)) {
			s->io_err = 1;
			sess_end(s, END_ERROR, "attach timeout",
			    "not attached after %.0f s", cfg.attach_timeout);
			return;
		}
		if (s->state == ST_CONNECT && s->fd == -1) {
			/* The listen backlog was full: try again. */
			sock_connect(s);
			return;
		}
		s->due = s->t_start + (int64_t)(cfg.attach_timeout * NS) + MS;
		return;
	case ST_CLOSING:
		sess_end(s, END_CLIENT, "closed", "no close frame from the "
		    "server after %d s", (int)(CLOSE_WAIT / NS));
		return;
	case ST_OPEN:
		break;
	}
	if (s->pr != PR_READY && s->pr != PR_NONE) {
		prep_step(s, now);
		return;
	}
	if (run.phase != PH_TEST && run.phase != PH_DRAIN)
		return;
	if (cfg.test != TEST_ECHO || !s->ready)
		return;
	if (s->waiting) {
		if (now - s->t_sent >= (int64_t)(cfg.echo_timeout * NS)) {
			s->waiting = 0;
			s->timeouts++;
			echo_next(s, now);
		} else
			s->due = s->t_sent + (int64_t)(cfg.echo_timeout * NS);
		return;
	}
	echo_next(s, now);
}
