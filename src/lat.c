/*
 * Residence time: how long a chunk stays in the daemon between the read
 * that brought it and the write that let its last byte go.  Pure: no
 * libvirt, no libevent, no logging, no allocation.
 *
 * A histogram (struct lat_hist) has LAT_BUCKETS buckets of upper bound
 * 2^k microseconds, k = 0 .. LAT_BUCKETS - 1 (1 us .. 16.777216 s), and one
 * more for anything longer; a value goes into the first bucket whose bound
 * it does not exceed, as Prometheus' `le` says.  The bounds are fixed once:
 * histograms of different runs, doors and daemons merge by adding buckets.
 *
 * A stamp queue (struct lat_fifo) follows chunks through a byte stream
 * whose writes and drains are counted: lat_mark() says that the bytes up
 * to offset `end` hold a chunk read at t0; lat_done() says that the stream
 * let go of everything up to offset `reached`, and records the chunks that
 * are out.  It holds LAT_STAMPS chunks; one more extends the newest to its
 * end, keeping the older read time, so a full queue never makes a chunk
 * look faster than it was (it may make a few look slower, never faster).
 *
 * A stream (struct lat_stream) is the usual use of a queue: the stream's
 * own count of bytes gone, and the histogram its chunks go to.
 */
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "virtconsoled.h"

/* Nanoseconds on the monotonic clock. */
uint64_t
lat_now(void)
{
	struct timespec	ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* The bucket of a value: LAT_BUCKETS is the overflow. */
unsigned int
lat_bucket(uint64_t ns)
{
	uint64_t	us;
	unsigned int	k;

	if (ns > UINT64_MAX - 999)
		return LAT_BUCKETS;
	us = (ns + 999) / 1000;		/* 1001 ns is more than 1 us */
	if (us <= 1)
		return 0;
	k = 64U - (unsigned int)__builtin_clzll(us - 1);
	return k < LAT_BUCKETS ? k : LAT_BUCKETS;
}

/* Bucket k's upper bound in seconds (the overflow's is infinite). */
double
lat_bound(unsigned int k)
{
	if (k >= LAT_BUCKETS)
		return INFINITY;
	return (double)(1ULL << k) / 1e6;
}

void
lat_add(struct lat_hist *h, uint64_t ns)
{
	h->bucket[lat_bucket(ns)]++;
	h->count++;
	h->sum_ns += ns;
}

void
lat_merge(struct lat_hist *dst, const struct lat_hist *src)
{
	unsigned int	k;

	for (k = 0; k <= LAT_BUCKETS; k++)
		dst->bucket[k] += src->bucket[k];
	dst->count += src->count;
	dst->sum_ns += src->sum_ns;
}

/*
 * The q-quantile (0 < q <= 1) as the upper bound of the bucket that holds
 * it: a value the quantile does not exceed.  NAN when empty.
 */
double
lat_quantile(const struct lat_hist *h, double q)
{
	uint64_t	rank, seen = 0;
	unsigned int	k;

	if (h->count == 0)
		return NAN;
	rank = (uint64_t)(q * (double)h->count);
	if ((double)rank < q * (double)h->count)
		rank++;		/* rounded up: the rank-th smallest */
	if (rank < 1)
		rank = 1;
	for (k = 0; k <= LAT_BUCKETS; k++) {
		seen += h->bucket[k];
		if (seen >= rank)
			return lat_bound(k);
	}
	return INFINITY;
}

/* The bytes up to end hold a chunk read at t0 (ns). */
void
lat_mark(struct lat_fifo *f, uint64_t end, uint64_t t0)
{
	struct lat_stamp	*last;

	if (f->n == LAT_STAMPS) {
		last = &f->s[(f->head + f->n - 1) % LAT_STAMPS];
		if (end > last->end)
			last->end = end;
		return;
	}
	last = &f->s[(f->head + f->n) % LAT_STAMPS];
	last->end = end;
	last->t0 = t0;
	f->n++;
}

/*
 * Everything up to offset reached has gone: record the chunks that are
 * out into h (the clock is read once, and only when one is).  Returns how
 * many were recorded.
 */
unsigned int
lat_done(struct lat_fifo *f, uint64_t reached, struct lat_hist *h)
{
	const struct lat_stamp	*st;
	uint64_t		 now = 0;
	unsigned int		 done = 0;

	while (f->n > 0 && (st = &f->s[f->head])->end <= reached) {
		if (now == 0)
			now = lat_now();
		if (h != NULL)
			lat_add(h, now > st->t0 ? now - st->t0 : 0);
		f->head = (f->head + 1) % LAT_STAMPS;
		f->n--;
		done++;
	}
	return done;
}

/*
 * Take the oldest chunk if everything up to its end is past reached: 1
 * and its read time in *t0 (for a queue that hands chunks on to another,
 * lat_mark()ed at their offsets there), 0 if none is.
 */
int
lat_take(struct lat_fifo *f, uint64_t reached, uint64_t *t0)
{
	if (f->n == 0 || f->s[f->head].end > reached)
		return 0;
	*t0 = f->s[f->head].t0;
	f->head = (f->head + 1) % LAT_STAMPS;
	f->n--;
	return 1;
}

/* Forget the chunks (their bytes were dropped). */
void
lat_clear(struct lat_fifo *f)
{
	f->head = 0;
	f->n = 0;
}

void
lat_stream_init(struct lat_stream *ls, struct lat_hist *h)
{
	lat_clear(&ls->q);
	ls->gone = 0;
	ls->h = h;
}

/*
 * A chunk read at t0 ends where the queue holds `queued` bytes: timed at
 * once if none are (the queue's earlier chunks too, if they left).
 */
void
lat_stream_mark(struct lat_stream *ls, uint64_t queued, uint64_t t0)
{
	lat_mark(&ls->q, ls->gone + queued, t0);
	(void)lat_done(&ls->q, ls->gone, ls->h);
}

/* n more bytes left the stream: the chunks now out are timed. */
void
lat_stream_gone(struct lat_stream *ls, uint64_t n)
{
	if (n == 0)
		return;
	ls->gone += n;
	(void)lat_done(&ls->q, ls->gone, ls->h);
}

/* The n bytes queued were dropped: their chunks are forgotten, untimed. */
void
lat_stream_drop(struct lat_stream *ls, uint64_t n)
{
	ls->gone += n;
	lat_clear(&ls->q);
}
