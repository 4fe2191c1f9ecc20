/*
 * vcdload's event loop: libvirt's default implementation (a poll loop),
 * one timer for every session's next due work, a self-pipe for signals,
 * and the streams ended inside callbacks, freed once none is dispatching.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/random.h>

#include <libvirt/virterror.h>

#include "vcdload.h"

static struct {
	int			 timer;
	int64_t			 timer_due;
	int			 sigpipe[2];
	virStreamPtr		*graveyard;	/* to free after dispatch */
	size_t			 ngrave, gravesize;
} loop;

static uint64_t	rng;

int64_t
now_ns(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * NS + ts.tv_nsec;
}

void
rng_seed(void)
{
	if (getrandom(&rng, sizeof rng, 0) != sizeof rng)
		fatal("getrandom");
	rng |= 1;
}

uint64_t
rng_next(void)
{
	/* xorshift64*: masks and phases, nothing secret. */
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return rng * 2685821657736338717ULL;
}

static void
sig_handler(int sig)
{
	int	e = errno;
	char	c = (char)sig;

	if (sig == SIGUSR1)
		run.got_usr1 = 1;
	else
		run.got_term = 1;
	if (write(loop.sigpipe[1], &c, 1) == -1) {
		/* Full pipe: a wakeup is pending anyway. */
	}
	errno = e;
}

static void
sigpipe_cb(int watch, int fd, int events, void *opaque)
{
	char	buf[64];

	while (read(fd, buf, sizeof buf) > 0)
		;
}

static void
setup_signals(void)
{
	struct sigaction	sa;

	if (pipe2(loop.sigpipe, O_NONBLOCK | O_CLOEXEC) == -1)
		fatal("pipe2");
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = sig_handler;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (virEventAddHandle(loop.sigpipe[0], VIR_EVENT_HANDLE_READABLE,
	    sigpipe_cb, NULL, NULL) == -1)
		fatalx("virEventAddHandle failed");
}

static void
timer_cb(int timer, void *opaque)
{
	int64_t	now = now_ns();
	size_t	i;

	loop.timer_due = 0;
	for (i = 0; i < run.n; i++)
		if (run.s[i].due != 0 && run.s[i].due <= now)
			sess_timer(&run.s[i], now);
}

/* Program the one timer for the earliest due session or phase end. */
static void
timer_program(int64_t phase_due)
{
	int64_t	due = phase_due, now;
	size_t	i;
	long	ms;

	for (i = 0; i < run.n; i++)
		if (run.s[i].due != 0 && (due == 0 || run.s[i].due < due))
			due = run.s[i].due;
	if (due == loop.timer_due)
		return;
	loop.timer_due = due;
	if (due == 0) {
		virEventUpdateTimeout(loop.timer, -1);
		return;
	}
	now = now_ns();
	ms = due <= now ? 0 : (long)((due - now + MS - 1) / MS);
	virEventUpdateTimeout(loop.timer, (int)(ms > 86400000 ? 86400000 : ms));
}

/* The signals and the timer, once libvirt's event loop is registered. */
void
loop_init(void)
{
	setup_signals();
	loop.timer = virEventAddTimeout(-1, timer_cb, NULL, NULL);
	if (loop.timer == -1)
		fatalx("virEventAddTimeout failed");
}

/* A stream ended in a callback: freed once that callback has returned. */
void
loop_bury(virStreamPtr st)
{
	if (loop.ngrave == loop.gravesize) {
		loop.gravesize = loop.gravesize ? loop.gravesize * 2 : 16;
		loop.graveyard = xrealloc(loop.graveyard, loop.gravesize *
		    sizeof(virStreamPtr));
	}
	loop.graveyard[loop.ngrave++] = st;
}

/* Free the streams ended in callbacks, now that none is dispatching. */
void
graveyard_empty(void)
{
	size_t	i;

	for (i = 0; i < loop.ngrave; i++)
		virStreamFree(loop.graveyard[i]);
	loop.ngrave = 0;
}

void
loop_free(void)
{
	free(loop.graveyard);
}

/* One turn of the loop; phase_due wakes it for the caller's deadline. */
static void
loop_once(int64_t phase_due)
{
	timer_program(phase_due);
	if (virEventRunDefaultImpl() == -1)
		fatalx("event loop: %s", virGetLastErrorMessage());
	graveyard_empty();
}

static int
every(int (*pred)(const struct sess *))
{
	size_t	i;

	for (i = 0; i < run.n; i++)
		if (!pred(&run.s[i]))
			return 0;
	return 1;
}

/*
 * Run the loop until every session is pred (NULL: never), the deadline
 * (0: none) passes, or, with stop_on_term, a SIGTERM or SIGINT comes (2:
 * or a SIGUSR1).
 */
void
run_until(int (*pred)(const struct sess *), int64_t deadline,
    int stop_on_term)
{
	while (!(pred != NULL && every(pred))) {
		if (deadline != 0 && now_ns() >= deadline)
			return;
		if (stop_on_term && (run.got_term || (stop_on_term == 2 &&
		    run.got_usr1)))
			return;
		loop_once(deadline);
	}
}
