/*
 * Unit tests of the residence histograms and stamp queues (src/lat.c):
 * every bucket edge (2^k us and one nanosecond past it), the overflow, the
 * sum and count, merging, quantiles against a sorted reference, and the
 * stamp queue: chunks recorded when their last byte is out, in order, a
 * full queue extending its newest chunk (never recording one faster than
 * it was), hand-over between queues (lat_take), clearing; the stream
 * (lat_stream): chunks marked by queued bytes, timed when the bytes gone
 * pass their end, written at once, dropped untimed.  Milliseconds.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "virtconsoled.h"
#include "tap.h"

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void
test_edges(void)
{
	unsigned int	k, bad = 0, bad_next = 0;
	uint64_t	edge;

	is_int(lat_bucket(0), 0, "0 ns: the first bucket (le 1 us)");
	is_int(lat_bucket(1000), 0, "1000 ns: le 1 us");
	is_int(lat_bucket(1001), 1, "1001 ns: past 1 us, le 2 us");
	for (k = 0; k < LAT_BUCKETS; k++) {
		edge = (1ULL << k) * 1000ULL;
		if (lat_bucket(edge) != k)
			bad++;
		if (lat_bucket(edge + 1) != k + 1)
			bad_next++;
	}
	is_int(bad, 0, "2^k us exactly is in bucket k, k = 0..24");
	is_int(bad_next, 0, "2^k us + 1 ns is in bucket k + 1 (24: overflow)");
	is_int(lat_bucket(16777216000ULL), LAT_BUCKETS - 1,
	    "16.777216 s: the last bounded bucket");
	is_int(lat_bucket(16777216001ULL), LAT_BUCKETS,
	    "16.777216001 s: overflow");
	is_int(lat_bucket(UINT64_MAX), LAT_BUCKETS, "UINT64_MAX ns: overflow");
	ok(lat_bound(0) == 0.000001, "bound 0 is 0.000001 s");
	ok(lat_bound(24) == 16.777216, "bound 24 is 16.777216 s");
	ok(isinf(lat_bound(LAT_BUCKETS)), "the overflow's bound is +Inf");
}

static void
test_add_merge(void)
{
	struct lat_hist	a, b;
	unsigned int	k;
	uint64_t	total = 0;

	memset(&a, 0, sizeof a);
	memset(&b, 0, sizeof b);
	lat_add(&a, 500);
	lat_add(&a, 3000);
	lat_add(&a, 20000000000ULL);
	is_int(a.count, 3, "count");
	is_int(a.sum_ns, 500 + 3000 + 20000000000ULL, "sum in ns");
	is_int(a.bucket[0], 1, "500 ns in bucket 0");
	is_int(a.bucket[2], 1, "3 us in bucket 2 (le 4 us)");
	is_int(a.bucket[LAT_BUCKETS], 1, "20 s in the overflow");
	lat_add(&b, 3000);
	lat_add(&b, 7000);
	lat_merge(&b, &a);
	is_int(b.count, 5, "merged count");
	is_int(b.bucket[2], 2, "merged bucket 2");
	is_int(b.bucket[3], 1, "merged bucket 3 (7 us)");
	for (k = 0; k <= LAT_BUCKETS; k++)
		total += b.bucket[k];
	is_int(total, b.count, "buckets add up to the count");
	is_int(b.sum_ns, 3000 + 7000 + a.sum_ns, "merged sum");
}

static void
test_quantiles(void)
{
	struct lat_hist	h;
	uint64_t	v[1000], rng = 0x9e3779b97f4a7c15ULL;
	unsigned int	i, bad = 0;
	double		qs[] = { 0.01, 0.5, 0.9, 0.99, 1.0 }, got;
	size_t		j, rank;

	memset(&h, 0, sizeof h);
	ok(isnan(lat_quantile(&h, 0.5)), "an empty histogram has no p50");
	for (i = 0; i < 1000; i++) {
		v[i] = tap_xorshift(&rng) % 50000000ULL;	/* < 50 ms */
		lat_add(&h, v[i]);
	}
	qsort(v, 1000, sizeof v[0], cmp_u64);
	for (j = 0; j < sizeof qs / sizeof qs[0]; j++) {
		rank = (size_t)ceil(qs[j] * 1000);
		got = lat_quantile(&h, qs[j]);
		/* The bound of the bucket holding the rank-th value. */
		if (got != lat_bound(lat_bucket(v[rank - 1])))
			bad++;
	}
	is_int(bad, 0, "p1 p50 p90 p99 p100: the bound of the bucket of the "
	    "rank-th smallest of 1000 random values (seed 0x9e3779b97f4a7c15)");
	memset(&h, 0, sizeof h);
	lat_add(&h, 30000000000ULL);
	ok(isinf(lat_quantile(&h, 0.5)), "a quantile in the overflow is +Inf");
}

static void
test_fifo(void)
{
	struct lat_fifo	f, g;
	struct lat_hist	h;
	uint64_t	t0, now;
	unsigned int	i;

	memset(&f, 0, sizeof f);
	memset(&g, 0, sizeof g);
	memset(&h, 0, sizeof h);
	now = lat_now();
	ok(now > 0, "the monotonic clock reads");
	lat_mark(&f, 100, now - 1000000);	/* 1 ms ago */
	lat_mark(&f, 250, now);
	is_int(lat_done(&f, 99, &h), 0, "byte 99 out: no chunk done");
	is_int(lat_done(&f, 100, &h), 1, "byte 100 out: the first chunk done");
	is_int(h.count, 1, "one recorded");
	ok(h.sum_ns >= 1000000, "it took at least the 1 ms since its read");
	is_int(lat_done(&f, 400, &h), 1, "past the end: the second done");
	is_int(f.n, 0, "queue empty");

	/* A full queue extends its newest chunk, keeping the older t0. */
	for (i = 0; i < LAT_STAMPS; i++)
		lat_mark(&f, 10 * (i + 1), now - 5000000);
	lat_mark(&f, 1000, now);
	is_int(f.n, LAT_STAMPS, "a full queue takes no more stamps");
	memset(&h, 0, sizeof h);
	is_int(lat_done(&f, 10 * LAT_STAMPS, &h), LAT_STAMPS - 1,
	    "the extended chunk is not out with its old end");
	is_int(lat_done(&f, 999, &h), 0, "nor before the new end");
	is_int(lat_done(&f, 1000, &h), 1, "it is out with the new end");
	ok(h.sum_ns >= (uint64_t)LAT_STAMPS * 5000000,
	    "every chunk counted from its own (older) read: never faster");

	/* Hand-over: payload offsets to wire offsets. */
	lat_mark(&f, 5, 111);
	lat_mark(&f, 9, 222);
	ok(lat_take(&f, 4, &t0) == 0, "take: nothing before its end");
	ok(lat_take(&f, 7, &t0) == 1 && t0 == 111, "take: the first, its t0");
	lat_mark(&g, 64, t0);
	ok(lat_take(&f, 7, &t0) == 0, "take: the second not yet");
	ok(lat_take(&f, 9, &t0) == 1 && t0 == 222, "take: the second");
	ok(lat_take(&f, 100, &t0) == 0, "take: empty");
	lat_clear(&g);
	is_int(lat_done(&g, 1000, &h), 0, "a cleared queue records nothing");
	lat_mark(&g, 3, now);
	is_int(lat_done(&g, 3, NULL), 1, "done with no histogram just pops");
}

static void
test_stream(void)
{
	struct lat_stream	ls;
	struct lat_hist		h;
	uint64_t		now = lat_now();

	memset(&h, 0, sizeof h);
	lat_stream_init(&ls, &h);
	lat_stream_mark(&ls, 0, now - 2000000);
	is_int(h.count, 1, "stream: a chunk with nothing queued is out at once");
	ok(h.sum_ns >= 2000000, "stream: timed from its read");
	lat_stream_gone(&ls, 10);		/* written at once */
	lat_stream_mark(&ls, 30, now);		/* 30 bytes queued */
	lat_stream_mark(&ls, 50, now);		/* 20 more */
	lat_stream_gone(&ls, 29);
	is_int(h.count, 1, "stream: 29 of 30 bytes gone: not out");
	lat_stream_gone(&ls, 1);
	is_int(h.count, 2, "stream: the 30th gone: the first out");
	lat_stream_gone(&ls, 0);
	is_int(h.count, 2, "stream: nothing gone: nothing timed");
	lat_stream_drop(&ls, 20);
	is_int(ls.q.n, 0, "stream: dropped bytes forget their chunks");
	is_int(h.count, 2, "stream: dropped chunks are not timed");
	lat_stream_mark(&ls, 5, now);
	lat_stream_gone(&ls, 5);
	is_int(h.count, 3, "stream: offsets stay right after a drop");
	is_int(ls.gone, 10 + 30 + 20 + 5, "stream: every byte counted gone");
}

int
main(void)
{
	test_edges();
	test_add_merge();
	test_quantiles();
	test_fifo();
	test_stream();
	return tap_done();
}
