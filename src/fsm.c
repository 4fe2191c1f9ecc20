/*
 * State machines driven by a table.  Each machine of the daemon (console,
 * session, WebSocket connection) describes its legal transitions once, as a
 * table of (state, event) -> next state, and changes state only through
 * fsm_step(), which looks the pair up, logs the transition with its reason,
 * and performs it.  A pair the table does not hold is a bug in the daemon:
 * it is logged with "BUG:", counted (fsm_state_errors(), shown as
 * state_errors by `virtconsolectl status`), and not performed.  The tests
 * fail on any such line.
 *
 * Each table also counts the transitions taken, so that the unit tests can
 * show that every legal transition was driven at least once, and the state
 * diagrams of docs/SESSIONS.md are checked against the tables
 * (tests/unit/test_fsmdoc, through fsm_next()).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "virtconsoled.h"

static unsigned long long	fsm_errors;

const char *
fsm_state_name(const struct fsm *m, int state)
{
	if (state < 0 || (unsigned)state >= m->nstates)
		return "UNKNOWN";
	return m->states[state];
}

const char *
fsm_event_name(const struct fsm *m, int event)
{
	if (event < 0 || (unsigned)event >= m->nevents)
		return "unknown";
	return m->events[event];
}

/* The next state for (state, event), or FSM_ILLEGAL. */
int
fsm_next(const struct fsm *m, int state, int event)
{
	if (state < 0 || (unsigned)state >= m->nstates || event < 0 ||
	    (unsigned)event >= m->nevents)
		return FSM_ILLEGAL;
	return m->table[(unsigned)state * m->nevents + (unsigned)event] - 1;
}

/*
 * Apply event to *state.  who names the object in the log ("session 4
 * guest=web1 dev=serial0"), why says what happened.  0: done; -1: illegal,
 * logged as a bug, counted, *state unchanged.
 */
int
fsm_step(struct fsm *m, int *state, int event, const char *why,
    const char *fmt, ...)
{
	char	who[512];
	va_list	ap;
	int	next;

	va_start(ap, fmt);
	(void)vsnprintf(who, sizeof who, fmt, ap);
	va_end(ap);
	if ((next = fsm_next(m, *state, event)) == FSM_ILLEGAL) {
		fsm_errors++;
		log_warnx("BUG: %s: %s event %s in state %s refused (%s)",
		    who, m->name, fsm_event_name(m, event),
		    fsm_state_name(m, *state), why);
		return -1;
	}
	if (m->taken != NULL && m->taken[(unsigned)*state * m->nevents +
	    (unsigned)event] < UINT32_MAX)
		m->taken[(unsigned)*state * m->nevents + (unsigned)event]++;
	if (m->level == LOG_LEVEL_INFO)
		log_info("%s: %s -> %s (%s)", who, fsm_state_name(m, *state),
		    fsm_state_name(m, next), why);
	else
		log_debug("%s: %s -> %s (%s)", who, fsm_state_name(m, *state),
		    fsm_state_name(m, next), why);
	*state = next;
	return 0;
}

unsigned long long
fsm_state_errors(void)
{
	return fsm_errors;
}

/* Legal transitions, and how many of them were taken at least once. */
void
fsm_coverage(const struct fsm *m, unsigned int *legal, unsigned int *taken)
{
	unsigned int	i;

	*legal = *taken = 0;
	for (i = 0; i < m->nstates * m->nevents; i++) {
		if (m->table[i] == 0)
			continue;
		(*legal)++;
		if (m->taken != NULL && m->taken[i] > 0)
			(*taken)++;
	}
}

/* The legal transitions never taken, one per line, for a test's report. */
void
fsm_untaken(const struct fsm *m, FILE *fp)
{
	unsigned int	s, e;

	for (s = 0; s < m->nstates; s++)
		for (e = 0; e < m->nevents; e++)
			if (fsm_next(m, (int)s, (int)e) != FSM_ILLEGAL &&
			    (m->taken == NULL || m->taken[s * m->nevents + e] ==
			    0))
				fprintf(fp, "%s: %s --%s--> %s never taken\n",
				    m->name, m->states[s], m->events[e],
				    fsm_state_name(m, fsm_next(m, (int)s,
				    (int)e)));
}

