/*
 * vcdload's --echo test: one keystroke in flight per session, its round
 * trip timed, the next typed at once or paced by --rate.
 */
#include <stdint.h>

#include "vcdload.h"

static void
echo_send(struct sess *s, int64_t now)
{
	s->expect = (uint8_t)('a' + s->nkey++ % 26);
	s->waiting = 1;
	s->t_sent = now;
	s->sent++;
	s->due = now + (int64_t)(cfg.echo_timeout * NS);
	sess_write(s, &s->expect, 1);
}

/* After an echo (or a timeout): type the next key now or when due. */
void
echo_next(struct sess *s, int64_t now)
{
	if (run.phase != PH_TEST) {
		s->due = 0;
		return;
	}
	if (cfg.rate <= 0 || now >= s->next_send) {
		if (cfg.rate > 0)
			s->next_send += (int64_t)(NS / cfg.rate);
		if (s->next_send < now)
			s->next_send = now;
		echo_send(s, now);
	} else
		s->due = s->next_send;
}

void
echo_data(struct sess *s, const uint8_t *p, size_t n, int64_t now)
{
	size_t	i;

	for (i = 0; i < n; i++) {
		if (s->waiting && p[i] == s->expect) {
			s->waiting = 0;
			s->echoed++;
			u32_push(&s->rtt, &s->nrtt, &s->rttsize,
			    us_between(s->t_sent, now));
			echo_next(s, now);
		} else
			s->stray++;
	}
}
