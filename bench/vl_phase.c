/*
 * vcdload's phases, in order: attach (--parallel sessions connecting at
 * once), prepare, the test window, drain, restore, hold, close.
 */
#include <stdint.h>

#include "vcdload.h"

const char *const phase_names[] = { "attach", "prepare", "test", "drain",
    "restore", "hold", "close" };

/* Start sessions until --parallel are connecting (libvirt: in turn). */
void
attach_more(void)
{
	static int	 busy;
	struct sess	*s;

	/* Called again as sessions attach or fail: no recursion. */
	if (busy || run.phase > PH_PREPARE || run.got_term)
		return;
	busy = 1;
	while (run.next_start < run.n && run.connecting < cfg.parallel) {
		s = &run.s[run.next_start++];
		s->t_start = now_ns();
		if (cfg.mode == MODE_LIBVIRT) {
			/* A synchronous call: the loop turns after it. */
			virt_open_console(s);
			continue;
		}
		s->state = ST_CONNECT;
		run.connecting++;
		sock_connect(s);
	}
	busy = 0;
}

/* What run_until waits for, session by session. */
static int
is_attached(const struct sess *s)
{
	return s->state >= ST_OPEN;
}

static int
is_prepared(const struct sess *s)
{
	return s->state != ST_OPEN || s->pr == PR_READY;
}

static int
is_not_waiting(const struct sess *s)
{
	return s->state != ST_OPEN || !s->waiting;
}

static int
is_done(const struct sess *s)
{
	return s->state == ST_DONE;
}

static int
is_flushed(const struct sess *s)
{
	return s->state != ST_OPEN || s->outlen == 0;
}

void
phase_attach(void)
{
	run.phase = PH_ATTACH;
	attach_more();
	run_until(is_attached, 0, 1);
	run.t_attach_end = now_ns();
}

void
phase_prepare(void)
{
	int64_t	end;
	size_t	i;

	run.phase = PH_PREPARE;
	if (cfg.prep != PREP_NONE) {
		run_until(is_prepared, 0, 1);
	} else {
		/* Refusals come right after the connection: give them time. */
		end = now_ns() + (int64_t)(cfg.settle * NS);
		run_until(is_done, end, 1);
		for (i = 0; i < run.n && !run.got_term; i++)
			if (run.s[i].state == ST_OPEN)
				prep_ready(&run.s[i], now_ns());
	}
	run.t_prep_end = now_ns();
}

void
phase_test(void)
{
	int64_t	now, end;
	size_t	i;
	struct sess	*s;

	run.phase = PH_TEST;
	now = now_ns();
	run.t_test0 = now;
	end = now + (int64_t)(cfg.seconds * NS);
	for (i = 0; i < run.n; i++) {
		s = &run.s[i];
		if (s->state != ST_OPEN || !s->ready)
			continue;
		s->in_test_start = s->bytes_in;
		if (cfg.test == TEST_ECHO) {
			/* A random phase, so paced sessions do not march. */
			s->next_send = now;
			if (cfg.rate > 0 && (int64_t)(NS / cfg.rate) > 0)
				s->next_send += (int64_t)(rng_next() %
				    (uint64_t)(NS / cfg.rate));
			s->due = s->next_send;
		} else if (cfg.test == TEST_SINK && cfg.sink_cmd != NULL) {
			sess_type(s, cfg.sink_cmd);
			sess_type(s, "\r");
		}
	}
	run_until(is_done, end, 1);
	if (run.got_term)
		run.interrupted = 1;
	run.t_test1 = now_ns();
	for (i = 0; i < run.n; i++)
		if (run.s[i].ready)
			run.s[i].in_test = run.s[i].bytes_in -
			    run.s[i].in_test_start;

	/* Echoes still in flight are waited for, not typed anew. */
	run.phase = PH_DRAIN;
	if (cfg.test == TEST_ECHO)
		run_until(is_not_waiting, now_ns() +
		    (int64_t)(cfg.echo_timeout * NS), 0);
	for (i = 0; i < run.n; i++)
		if (run.s[i].waiting) {
			run.s[i].waiting = 0;
			run.s[i].timeouts++;
		}
}

void
phase_restore(void)
{
	size_t	i;
	int	any = 0;

	run.phase = PH_RESTORE;
	for (i = 0; i < run.n; i++)
		run.s[i].due = 0;
	if (!cfg.restore)
		return;
	for (i = 0; i < run.n; i++) {
		if (run.s[i].state == ST_OPEN && run.s[i].prepared &&
		    cfg.prep == PREP_ECHO) {
			sess_type(&run.s[i], cfg.echo_end);
			any = 1;
		}
	}
	if (!any)
		return;
	run_until(NULL, now_ns() + RESTORE_WAIT, 0);
	for (i = 0; i < run.n; i++)
		if (run.s[i].state == ST_OPEN && run.s[i].prepared)
			sess_type(&run.s[i], "\025stty sane\r");
	run_until(is_flushed, now_ns() + RESTORE_WAIT, 0);
}

/* --hold-until-signal: until SIGUSR1, SIGTERM or SIGINT. */
void
phase_hold(void)
{
	run.phase = PH_HOLD;
	run_until(is_done, 0, 2);
}

void
phase_close(void)
{
	uint8_t		payload[WS_CONTROL_MAX];
	size_t		i, plen;
	struct sess	*s;

	run.phase = PH_CLOSE;
	for (i = 0; i < run.n; i++) {
		s = &run.s[i];
		if (s->state != ST_OPEN)
			continue;
		if (s->wr != NULL) {
			plen = ws_close_payload(payload, 1000, "done");
			ws_send_frame(s, WS_OP_CLOSE, payload, plen);
			s->state = ST_CLOSING;
			s->due = now_ns() + CLOSE_WAIT;
			sess_flush(s);
		} else
			sess_end(s, END_CLIENT, "closed", "closed by vcdload");
	}
	run_until(is_done, now_ns() + CLOSE_WAIT + NS, 0);
	for (i = 0; i < run.n; i++)
		sess_end(&run.s[i], END_CLIENT, "closed", "closed by vcdload");
	graveyard_empty();
}
