/*
 * vcdload's prepare step (--prepare prompt|echo): get the guest's prompt,
 * then start its echo loop and wait until a marker comes back.
 */
#include <string.h>

#include "vcdload.h"

void
prep_ready(struct sess *s, int64_t now)
{
	s->pr = PR_READY;
	s->ready = 1;
	s->t_ready = now;
	s->due = 0;
	sess_log(s, "ready after %.1f ms", (double)(now - s->t_start) / MS);
}

static void
prep_fail(struct sess *s, const char *why)
{
	s->pr = PR_FAILED;
	sess_end(s, END_ERROR, "prepare failed", "%s; last bytes: %s", why,
	    log_esc_len(s->tail, s->taillen));
}

static void
prep_marker(struct sess *s, int64_t now)
{
	static const char	alpha[] = "ABCDEFGHJKLMNPQRSTUVWXYZ";
	size_t			i;

	s->marker[0] = '@';
	for (i = 1; i < 9; i++)
		s->marker[i] = alpha[rng_next() % (sizeof alpha - 1)];
	s->marker[9] = '@';
	s->marker[10] = '\0';
	s->pr_next = now + SYNC_EVERY;
	sess_type(s, s->marker);
}

/* The prepare step's progress, on data and on timers. */
void
prep_step(struct sess *s, int64_t now)
{
	if (s->state != ST_OPEN)
		return;
	switch (s->pr) {
	case PR_INTR:
		if (now < s->pr_next)
			break;
		s->pr = PR_PROMPT;
		s->scanlen = 0;
		s->pr_next = now + PROMPT_EVERY;
		sess_type(s, "\r");
		break;
	case PR_PROMPT:
		if (scan_has(s, cfg.prompt)) {
			if (cfg.prep == PREP_PROMPT) {
				s->pr = PR_QUIET;
				s->pr_next = now + QUIET;
				break;
			}
			s->pr = PR_SYNC;
			s->scanlen = 0;
			sess_type(s, cfg.echo_setup);
			sess_type(s, "\r");
			prep_marker(s, now);
		} else if (now >= s->pr_next) {
			s->pr_next = now + PROMPT_EVERY;
			sess_type(s, "\r");
		}
		break;
	case PR_SYNC:
		if (scan_has(s, s->marker)) {
			s->pr = PR_QUIET;
			s->pr_next = now + QUIET;
		} else if (now >= s->pr_next)
			prep_marker(s, now);
		break;
	case PR_QUIET:
		if (now >= s->pr_next)
			prep_ready(s, now);
		break;
	default:
		break;
	}
	if (s->state != ST_OPEN || s->pr == PR_READY)
		return;
	s->due = s->pr_next;
	if (now - s->t_attached > (int64_t)(cfg.prepare_timeout * NS))
		prep_fail(s, "prepare timeout");
}

void
prep_start(struct sess *s, int64_t now)
{
	if (cfg.prep == PREP_NONE || s->state != ST_OPEN)
		return;
	s->prepared = 1;
	s->pr = PR_INTR;
	s->pr_next = now + INTR_WAIT;
	s->due = s->pr_next;
	/* End an echo loop an earlier run left, and clear the line. */
	sess_type(s, cfg.echo_end);
	sess_type(s, "\025");
}
