/*
 * Unit tests of the console history (src/history.c): appends across chunk
 * boundaries, the head, the tail and the hole between them, readers behind
 * the oldest byte, gaps of unknown length in order with the bytes, the
 * bound on gaps (the two neighbours hiding the fewest kept bytes merged,
 * the oldest of equals, their bytes never joined across a loss; the boot
 * log kept through many attaches), runs and their ids, limits of 0,
 * tail=BYTES, new limits, the memory bound over 50 MB of output, and
 * random sequences of operations checked against a reference model that
 * keeps every byte and every loss.  No event loop: milliseconds.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "virtconsoled.h"
#include "tap.h"

#define CHUNK	HISTORY_CHUNK

/* ------------------------------------------------------------ helpers */

static uint64_t rng = 0x2545f4914f6cdd1dULL;

static uint64_t
rnd(void)
{
	return tap_xorshift(&rng);
}

static uint64_t
rnd_below(uint64_t n)
{
	return n == 0 ? 0 : rnd() % n;
}

/* The byte at offset o of the test pattern. */
static char
pat(uint64_t o)
{
	return (char)('a' + o % 26);
}

static void
append_pat(struct history *h, uint64_t from, size_t n)
{
	char	buf[4096];
	size_t	i, k;

	while (n > 0) {
		k = n < sizeof buf ? n : sizeof buf;
		for (i = 0; i < k; i++)
			buf[i] = pat(from + i);
		history_append(h, buf, k);
		from += k;
		n -= k;
	}
}

/* A string builder for the expected transcripts. */
static char	expbuf[65536];
static size_t	explen;

static void
exp_reset(void)
{
	explen = 0;
	expbuf[0] = '\0';
}

static void
exp_add(const char *s)
{
	size_t	n = strlen(s);

	if (explen + n < sizeof expbuf) {
		memcpy(expbuf + explen, s, n + 1);
		explen += n;
	}
}

static void
exp_pat(uint64_t from, uint64_t to)
{
	for (; from < to && explen + 1 < sizeof expbuf; from++)
		expbuf[explen++] = pat(from);
	expbuf[explen] = '\0';
}

static void
exp_gap(uint64_t from, uint64_t to)
{
	char	s[64];

	snprintf(s, sizeof s, "[gap %llu-%llu]", (unsigned long long)from,
	    (unsigned long long)to);
	exp_add(s);
}

/*
 * What a reader from (run, off) gets until the end of the run, as text:
 * the bytes, "[gap F-T]", "[?O]" for an unknown gap at O, "[?F-T]" for one
 * from F to T (gaps merged), "[end]", "[no run]", "[beyond]".  nread
 * counts the items.
 */
static char	walkbuf[65536];
static int	nread;

static const char *
walk(const struct history *h, uint64_t run, uint64_t off, int told,
    size_t max)
{
	struct history_pos	at = { run, off, told };
	struct history_read	rd;
	size_t			len = 0;
	int			steps;
	char			s[64];

	walkbuf[0] = '\0';
	nread = 0;
	for (steps = 0; steps < 100000; steps++) {
		nread++;
		s[0] = '\0';
		switch (history_read(h, &at, max, &rd)) {
		case HISTORY_BYTES:
			if (len + rd.len < sizeof walkbuf) {
				memcpy(walkbuf + len, rd.data, rd.len);
				len += rd.len;
				walkbuf[len] = '\0';
			}
			break;
		case HISTORY_GAP:
			snprintf(s, sizeof s, "[gap %llu-%llu]",
			    (unsigned long long)rd.from,
			    (unsigned long long)rd.to);
			break;
		case HISTORY_GAP_UNKNOWN:
			if (rd.to == rd.from)
				snprintf(s, sizeof s, "[?%llu]",
				    (unsigned long long)rd.from);
			else
				snprintf(s, sizeof s, "[?%llu-%llu]",
				    (unsigned long long)rd.from,
				    (unsigned long long)rd.to);
			break;
		case HISTORY_END:
			snprintf(s, sizeof s, "[end]");
			break;
		case HISTORY_NO_RUN:
			snprintf(s, sizeof s, "[no run]");
			break;
		case HISTORY_BEYOND:
			snprintf(s, sizeof s, "[beyond]");
			break;
		}
		if (len + strlen(s) < sizeof walkbuf) {
			memcpy(walkbuf + len, s, strlen(s) + 1);
			len += strlen(s);
		}
		if (rd.item != HISTORY_BYTES && rd.item != HISTORY_GAP &&
		    rd.item != HISTORY_GAP_UNKNOWN)
			break;
		at = rd.next;
	}
	return walkbuf;
}

static struct history_run_info
info_of(const struct history *h, uint64_t id)
{
	struct history_run_info	info[HISTORY_RUNS_MAX], none;
	size_t			n, i;

	memset(&none, 0, sizeof none);
	n = history_runs(h, info, HISTORY_RUNS_MAX);
	for (i = 0; i < n && i < HISTORY_RUNS_MAX; i++)
		if (info[i].id == id)
			return info[i];
	return none;
}

static struct history_run_info
info_now(const struct history *h)
{
	return info_of(h, history_run(h));
}

/* ------------------------------------------------------------ tests */

static void
test_chunks(void)
{
	struct history		*h;
	struct history_pos	 at;
	struct history_read	 rd;
	size_t			 lens[8], n;
	int			 same = 1, bounded = 1;
	uint64_t		 o;

	/* The head alone, appended in pieces that straddle chunks. */
	h = history_new(0, 40000, 1);
	for (o = 0; o < 30000; o += 7001)
		append_pat(h, o, o + 7001 <= 30000 ? 7001 : 30000 - o);
	is_int(history_held(h), 2 * CHUNK,
	    "chunks: 30000 bytes of head hold two chunks");
	at.run = history_run(h);
	at.offset = 0;
	at.gap_told = 0;
	n = 0;
	while (history_read(h, &at, 0, &rd) == HISTORY_BYTES && n < 8) {
		lens[n++] = rd.len;
		for (o = rd.from; o < rd.to; o++)
			if (rd.data[o - rd.from] != pat(o))
				same = 0;
		at = rd.next;
	}
	ok(n == 2 && lens[0] == CHUNK && lens[1] == 30000 - CHUNK,
	    "chunks: a read stops at a chunk's end (%zu reads)", n);
	ok(same, "chunks: the bytes read back are the bytes appended");
	append_pat(h, 30000, 20000);
	is_int(info_now(h).head_end, 40000, "chunks: the head stops at 40000");
	is_int(history_held(h), 40000,
	    "chunks: the head's last chunk is cut to history_head");
	history_free(h);

	/* The tail: a ring of 40000 bytes, 60000 bytes ago to now. */
	h = history_new(40000, 0, 1);
	for (o = 0; o < 100000; o += 9999)
		append_pat(h, o, o + 9999 <= 100000 ? 9999 : 100000 - o);
	is_int(history_held(h), 40000, "chunks: the ring holds its size");
	at.run = history_run(h);
	at.offset = 60000;
	at.gap_told = 0;
	n = 0;
	same = 1;
	while (history_read(h, &at, 0, &rd) == HISTORY_BYTES && n < 8) {
		lens[n++] = rd.len;
		if (rd.len > CHUNK)
			bounded = 0;
		for (o = rd.from; o < rd.to; o++)
			if (rd.data[o - rd.from] != pat(o))
				same = 0;
		at = rd.next;
	}
	ok(n == 4 && lens[0] == 12768 && lens[1] == 7232 &&
	    lens[2] == CHUNK && lens[3] == 3616,
	    "chunks: reads of the ring follow its chunks and wrap");
	ok(same && bounded && at.offset == 100000,
	    "chunks: the ring's bytes are the last 40000 appended");
	exp_reset();
	exp_gap(0, 60000);
	exp_pat(60000, 60100);
	ok(strncmp(walk(h, history_run(h), 0, 0, 100), expbuf, explen) == 0,
	    "chunks: a reader from 0 is told 0-60000 are gone");
	history_free(h);
}

static void
test_hole(void)
{
	struct history		*h;
	struct history_pos	 at;
	struct history_read	 rd;
	struct history_run_info	 ri;
	uint64_t		 id;

	h = history_new(200, 100, 1);
	id = history_run(h);
	append_pat(h, 0, 1000);
	ri = info_now(h);
	ok(ri.total == 1000 && ri.head_end == 100 && ri.tail_start == 800,
	    "hole: head [0,100), tail [800,1000) of 1000 bytes");
	exp_reset();
	exp_pat(0, 100);
	exp_gap(100, 800);
	exp_pat(800, 1000);
	exp_add("[end]");
	is_str(walk(h, id, 0, 0, 0), expbuf,
	    "hole: head, a known gap 100-800, tail, end");
	at.run = id;
	at.offset = 500;
	at.gap_told = 0;
	ok(history_read(h, &at, 0, &rd) == HISTORY_GAP && rd.from == 500 &&
	    rd.to == 800 && rd.next.offset == 800,
	    "hole: a reader at 500 is told 500-800 and moves to 800");
	at.offset = 1000;
	ok(history_read(h, &at, 0, &rd) == HISTORY_END && rd.from == 1000 &&
	    rd.next_run == 0, "hole: at 1000, the end of the current run");
	at.offset = 1001;
	ok(history_read(h, &at, 0, &rd) == HISTORY_BEYOND,
	    "hole: at 1001, beyond the end");
	at.run = id + 1;
	at.offset = 0;
	ok(history_read(h, &at, 0, &rd) == HISTORY_NO_RUN,
	    "hole: another run id: no such run");
	is_int(history_oldest(h), 0, "hole: the oldest byte is the head's");
	is_int(history_offset(h), 1000, "hole: the next offset");
	history_free(h);
}

static void
test_touch(void)
{
	struct history		*h;
	struct history_pos	 at;
	struct history_read	 rd;
	struct history_run_info	 ri;
	uint64_t		 id;

	h = history_new(200, 100, 1);
	id = history_run(h);
	append_pat(h, 0, 300);
	ri = info_now(h);
	ok(ri.head_end == 100 && ri.tail_start == 100,
	    "touch: 300 bytes: the head and the tail touch at 100");
	exp_reset();
	exp_pat(0, 300);
	exp_add("[end]");
	is_str(walk(h, id, 0, 0, 0), expbuf,
	    "touch: a reader goes from the head to the tail with no gap");
	at.run = id;
	at.offset = 90;
	at.gap_told = 0;
	ok(history_read(h, &at, 50, &rd) == HISTORY_BYTES && rd.len == 10 &&
	    rd.next.offset == 100, "touch: a read stops at the head's end");
	ok(history_read(h, &rd.next, 50, &rd) == HISTORY_BYTES &&
	    rd.from == 100 && rd.len == 50 && memcmp(rd.data, "wxyz", 4) == 0,
	    "touch: and the next goes on in the tail");
	append_pat(h, 300, 1);
	at.offset = 100;
	ok(history_read(h, &at, 0, &rd) == HISTORY_GAP && rd.from == 100 &&
	    rd.to == 101, "touch: one byte more opens a hole 100-101");
	history_free(h);
}

static void
test_behind(void)
{
	struct history	*h;
	uint64_t	 id;

	h = history_new(100, 0, 1);
	id = history_run(h);
	append_pat(h, 0, 250);
	is_int(history_oldest(h), 150, "behind: the oldest byte kept is 150");
	exp_reset();
	exp_gap(0, 150);
	exp_pat(150, 250);
	exp_add("[end]");
	is_str(walk(h, id, 0, 0, 0), expbuf,
	    "behind: a reader at 0 is told 0-150, then gets 150 on");
	exp_reset();
	exp_gap(149, 150);
	exp_pat(150, 250);
	exp_add("[end]");
	is_str(walk(h, id, 149, 0, 7), expbuf,
	    "behind: a reader at 149 is told 149-150, then gets 150 on");
	exp_reset();
	exp_pat(150, 250);
	exp_add("[end]");
	is_str(walk(h, id, 150, 0, 0), expbuf,
	    "behind: a reader at 150 gets the bytes");
	history_free(h);
}

static void
test_unknown(void)
{
	struct history		*h;
	struct history_run_info	 ri;
	uint64_t		 id;
	int			 i, unknown;
	const char		*s, *q;

	h = history_new(1000, 0, 1);
	id = history_run(h);
	history_gap(h);
	is_str(walk(h, id, 0, 0, 0), "[?0][end]",
	    "unknown: a gap at 0 is told before the end");
	is_int(history_offset(h), 0, "unknown: a gap moves no offset");
	history_append(h, "abc", 3);
	history_gap(h);
	history_gap(h);
	history_append(h, "def", 3);
	history_gap(h);
	is_str(walk(h, id, 0, 0, 0), "[?0]abc[?3]def[?6][end]",
	    "unknown: gaps come in order with the bytes");
	is_str(walk(h, id, 0, 0, 2), "[?0]abc[?3]def[?6][end]",
	    "unknown: and so with reads of 2 bytes");
	is_int(info_now(h).gaps, 3, "unknown: two gaps with nothing between "
	    "are one");
	is_str(walk(h, id, 3, 0, 0), "[?3]def[?6][end]",
	    "unknown: a reader at a gap is told it first");
	is_str(walk(h, id, 3, 1, 0), "def[?6][end]",
	    "unknown: not when it was told already");
	is_str(walk(h, id, 1, 0, 0), "bc[?3]def[?6][end]",
	    "unknown: bytes stop before a gap");
	history_free(h);

	/* In the head; forgotten in the hole. */
	h = history_new(0, 10, 1);
	id = history_run(h);
	history_append(h, "ab", 2);
	history_gap(h);
	history_append(h, "cdefghijklmn", 12);
	is_str(walk(h, id, 0, 0, 0), "ab[?2]cdefghij[gap 10-14][end]",
	    "unknown: a gap in the head is kept with it");
	history_gap(h);
	history_append(h, "o", 1);
	ri = info_now(h);
	is_int(ri.gaps, 1, "unknown: a gap in the hole is forgotten");
	history_free(h);

	/* Past the tail; at the tail's first byte. */
	h = history_new(10, 0, 1);
	id = history_run(h);
	append_pat(h, 0, 5);
	history_gap(h);
	append_pat(h, 5, 10);
	exp_reset();
	exp_gap(0, 5);
	exp_add("[?5]");
	exp_pat(5, 15);
	exp_add("[end]");
	is_str(walk(h, id, 0, 0, 0), expbuf,
	    "unknown: a gap at the oldest byte kept is still told");
	append_pat(h, 15, 1);
	is_int(info_now(h).gaps, 0,
	    "unknown: a gap older than the oldest byte is forgotten");
	history_free(h);

	/*
	 * The bound: 70 gaps, the oldest 7 merged into one by 6 merges (all
	 * spans 1 byte: the oldest pair of equals each time).
	 */
	h = history_new(1000, 0, 1);
	id = history_run(h);
	for (i = 0; i < 70; i++) {
		history_gap(h);
		history_append(h, "x", 1);
	}
	ri = info_now(h);
	ok(ri.gaps == HISTORY_GAPS_MAX && ri.gaps_merged == 6,
	    "unknown: 70 gaps keep 64 records, 6 merges (%zu, %llu)", ri.gaps,
	    (unsigned long long)ri.gaps_merged);
	s = walk(h, id, 0, 0, 0);
	for (unknown = 0, q = s; (q = strstr(q, "[?")) != NULL; q++)
		unknown++;
	ok(unknown == 64 && strncmp(s, "[?0-6]x[?7]x", 12) == 0,
	    "unknown: a reader from 0 is told the 7 oldest as one, 0-6, "
	    "and the newest 63");
	history_free(h);
}

/*
 * What a reader from (run, 0) gets, checked against the losses recorded,
 * loss[o] != 0 for a loss at offset o (total + 1 entries), the bytes being
 * pat(): the bytes of each item follow the last with no loss between
 * them, a byte just after a loss comes right after an unknown gap, and
 * every unknown gap told has a loss in it (from <= o <= to).  hidden
 * counts the bytes read in [hide_from, hide_to).
 */
struct joins {
	unsigned long	 bytes, unknown, joined, untrue, wrong, hidden;
};

static struct joins
check_joins(const struct history *h, uint64_t run, const char *loss,
    uint64_t total, size_t max, uint64_t hide_from, uint64_t hide_to)
{
	struct history_pos	 at = { run, 0, 0 };
	struct history_read	 rd;
	struct joins		 j;
	enum history_item	 prev = HISTORY_END;	/* none yet */
	uint64_t		 o, end = 0;
	int			 steps;

	memset(&j, 0, sizeof j);
	for (steps = 0; steps < 1000000; steps++) {
		switch (history_read(h, &at, max, &rd)) {
		case HISTORY_BYTES:
			j.bytes += rd.len;
			if (loss[rd.from] && prev != HISTORY_GAP_UNKNOWN)
				j.joined++;
			if (prev == HISTORY_BYTES && rd.from != end)
				j.wrong++;
			for (o = rd.from; o < rd.to; o++) {
				if (o > rd.from && loss[o])
					j.joined++;
				if (rd.data[o - rd.from] != pat(o))
					j.wrong++;
				if (o >= hide_from && o < hide_to)
					j.hidden++;
			}
			end = rd.to;
			break;
		case HISTORY_GAP_UNKNOWN:
			j.unknown++;
			if (rd.to > total || rd.from > rd.to ||
			    memchr(loss + rd.from, 1,
			    (size_t)(rd.to - rd.from + 1)) == NULL)
				j.untrue++;
			break;
		case HISTORY_GAP:
			break;
		case HISTORY_END:
			if (rd.from != total)
				j.wrong++;
			return j;
		default:
			j.wrong++;
			return j;
		}
		prev = rd.item;
		at = rd.next;
	}
	j.wrong++;
	return j;
}

/*
 * n gaps at offsets from, from + k, from + 2k...  (from is the current
 * offset), each followed by k bytes of pat(); loss[] marks them.
 */
static void
gaps_and_bytes(struct history *h, char *loss, uint64_t from, unsigned int n,
    size_t k)
{
	uint64_t	o;
	unsigned int	i;

	for (i = 0; i < n; i++) {
		o = from + (uint64_t)i * k;
		history_gap(h);
		loss[o] = 1;
		append_pat(h, o, k);
	}
}

static void
exp_unknown(uint64_t from, uint64_t to)
{
	char	s[64];

	if (from == to)
		snprintf(s, sizeof s, "[?%llu]", (unsigned long long)from);
	else
		snprintf(s, sizeof s, "[?%llu-%llu]",
		    (unsigned long long)from, (unsigned long long)to);
	exp_add(s);
}

static void
test_merge(void)
{
	static char		 loss[70001];
	struct history		*h;
	struct history_run_info	 ri;
	struct history_pos	 a, b, c;
	struct history_read	 rd;
	struct joins		 j;
	uint64_t		 id;
	size_t			 m, most, maxgaps;
	unsigned int		 k;
	int			 fine;

	/* 100 gaps with 3 bytes after each: 36 merges, 0-108 one gap. */
	memset(loss, 0, sizeof loss);
	h = history_new(100000, 0, 1);
	id = history_run(h);
	gaps_and_bytes(h, loss, 0, 100, 3);
	ri = info_now(h);
	ok(ri.gaps == HISTORY_GAPS_MAX && ri.gaps_merged == 36 &&
	    ri.total == 300, "merge: 100 gaps keep 64 records, 36 merges "
	    "(%zu, %llu)", ri.gaps, (unsigned long long)ri.gaps_merged);
	exp_reset();
	exp_unknown(0, 108);
	exp_pat(108, 111);
	for (k = 37; k < 100; k++) {
		exp_unknown(3 * k, 3 * k);
		exp_pat(3 * k, 3 * k + 3);
	}
	exp_add("[end]");
	is_str(walk(h, id, 0, 0, 0), expbuf,
	    "merge: a reader from 0 is told 0-108 as one unknown gap, then "
	    "each loss before the bytes after it");
	fine = 1;
	for (m = 0; m < 3; m++) {
		j = check_joins(h, id, loss, 300, m, 0, 108);
		if (j.joined || j.untrue || j.wrong || j.hidden ||
		    j.unknown != 64 || j.bytes != 192)
			fine = 0;
	}
	ok(fine, "merge: in reads of any size, every byte after a loss "
	    "comes just after an unknown gap, none of 0-108 comes, and "
	    "every unknown gap told holds a loss");
	is_int(history_held(h), CHUNK, "merge: 300 bytes hold one chunk");
	exp_reset();
	exp_unknown(50, 108);
	exp_pat(108, 111);
	exp_unknown(111, 111);
	ok(strncmp(walk(h, id, 50, 0, 0), expbuf, explen) == 0 &&
	    strncmp(walk(h, id, 50, 1, 0), expbuf, explen) == 0,
	    "merge: a reader inside the range is told its offset to the "
	    "range's end, gap_told or not");
	ok(strncmp(walk(h, id, 0, 1, 0), "[?0-108]", 8) == 0,
	    "merge: and so at the range's start");
	exp_reset();
	exp_unknown(108, 108);
	exp_pat(108, 111);
	exp_unknown(111, 111);
	ok(strncmp(walk(h, id, 108, 0, 0), expbuf, explen) == 0,
	    "merge: a reader at the range's end, not told, is told the loss "
	    "there");
	ok(strncmp(walk(h, id, 108, 1, 0), expbuf + 6, explen - 6) == 0,
	    "merge: and not again once told");
	is_int(history_oldest(h), 0,
	    "merge: the oldest byte stored is still 0");
	history_free(h);

	/* Readers that stood among the oldest gaps when they merged. */
	memset(loss, 0, sizeof loss);
	h = history_new(100000, 0, 1);
	id = history_run(h);
	gaps_and_bytes(h, loss, 0, 64, 3);
	a.run = b.run = c.run = id;
	a.offset = 3;		/* told the loss at 3, byte 3 next */
	a.gap_told = 1;
	b.offset = 4;		/* read byte 3 */
	b.gap_told = 0;
	c.offset = 6;		/* read 3-5, the loss at 6 not yet told */
	c.gap_told = 0;
	ok(history_read(h, &a, 0, &rd) == HISTORY_BYTES && rd.from == 3 &&
	    rd.len == 3 && history_read(h, &c, 0, &rd) ==
	    HISTORY_GAP_UNKNOWN && rd.from == 6 && rd.to == 6,
	    "merge: 64 gaps: 3-5 are read, and the loss at 6 told");
	history_gap(h);
	append_pat(h, 192, 3);
	history_gap(h);
	append_pat(h, 195, 3);
	is_int(info_now(h).gaps_merged, 2, "merge: two more: 0, 3, 6 merge "
	    "into 0-6");
	ok(history_read(h, &a, 0, &rd) == HISTORY_GAP_UNKNOWN &&
	    rd.from == 3 && rd.to == 6 && rd.next.offset == 6 &&
	    rd.next.gap_told, "merge: the reader told the loss at 3 is told "
	    "3-6 and moves to 6");
	ok(history_read(h, &b, 0, &rd) == HISTORY_GAP_UNKNOWN &&
	    rd.from == 4 && rd.to == 6, "merge: the reader at 4 is told 4-6");
	ok(history_read(h, &c, 0, &rd) == HISTORY_GAP_UNKNOWN &&
	    rd.from == 6 && rd.to == 6 && rd.next.offset == 6 &&
	    rd.next.gap_told, "merge: the reader at 6 is told the loss at 6");
	ok(history_read(h, &rd.next, 0, &rd) == HISTORY_BYTES &&
	    rd.from == 6 && rd.len == 3,
	    "merge: then reads 6-8, up to the loss at 9");
	history_free(h);

	/* 10000 gaps with 7 bytes after each, a head, a hole, a tail. */
	memset(loss, 0, sizeof loss);
	h = history_new(65536, 4096, 1);
	id = history_run(h);
	most = maxgaps = 0;
	for (k = 0; k < 10000; k++) {
		gaps_and_bytes(h, loss, 7 * (uint64_t)k, 1, 7);
		if (history_held(h) > most)
			most = history_held(h);
		if (info_now(h).gaps > maxgaps)
			maxgaps = info_now(h).gaps;
	}
	ri = info_now(h);
	ok(most <= 65536 + 4096 && maxgaps == HISTORY_GAPS_MAX &&
	    ri.gaps_merged == 10000 - HISTORY_GAPS_MAX,
	    "merge: 10000 gaps: at most %zu bytes held (bound %d), %zu "
	    "gap records, %llu merges", most, 65536 + 4096, maxgaps,
	    (unsigned long long)ri.gaps_merged);
	j = check_joins(h, id, loss, 70000, 0, 0, 69552);
	ok(!j.joined && !j.untrue && !j.wrong && !j.hidden &&
	    j.unknown == 64 && j.bytes == 70000 - 69552,
	    "merge: a reader from 0 is told 0-69552 (head, hole and tail) "
	    "as one unknown gap, then 63 losses, each before its bytes "
	    "(%lu unknown, %lu bytes)", j.unknown, j.bytes);
	history_free(h);

	/* No head: the tail moves past the range, which is cut to follow. */
	memset(loss, 0, sizeof loss);
	h = history_new(700, 0, 1);
	id = history_run(h);
	most = maxgaps = 0;
	for (k = 0; k < 10000; k++) {
		gaps_and_bytes(h, loss, 7 * (uint64_t)k, 1, 7);
		if (history_held(h) > most)
			most = history_held(h);
		if (info_now(h).gaps > maxgaps)
			maxgaps = info_now(h).gaps;
	}
	ri = info_now(h);
	j = check_joins(h, id, loss, 70000, 0, 0, 69552);
	ok(most <= 700 && maxgaps == HISTORY_GAPS_MAX && ri.gaps_merged > 0,
	    "merge: a 700-byte tail: at most %zu bytes held, %zu gap "
	    "records, %llu merges", most, maxgaps,
	    (unsigned long long)ri.gaps_merged);
	exp_reset();
	exp_gap(0, 69300);
	exp_unknown(69300, 69552);
	exp_pat(69552, 69559);
	exp_unknown(69559, 69559);
	ok(strncmp(walk(h, id, 0, 0, 0), expbuf, explen) == 0 &&
	    !j.joined && !j.untrue && !j.wrong && !j.hidden &&
	    j.unknown == 64, "merge: a reader from 0 is told the known gap, "
	    "then the range from tail_start, then each loss (%lu unknown)",
	    j.unknown);
	history_free(h);

	/* New limits put a range's start in the hole. */
	memset(loss, 0, sizeof loss);
	h = history_new(1000, 0, 1);
	id = history_run(h);
	gaps_and_bytes(h, loss, 0, 66, 3);
	history_set_limits(h, 195, 0, 1);
	exp_reset();
	exp_gap(0, 3);
	exp_unknown(3, 6);
	exp_pat(6, 9);
	exp_unknown(9, 9);
	ok(strncmp(walk(h, id, 0, 0, 0), expbuf, explen) == 0 &&
	    info_now(h).gaps == 64, "merge: a range 0-6 starting in the new "
	    "hole 0-3 starts at 3");
	history_set_limits(h, 192, 0, 1);
	exp_reset();
	exp_gap(0, 6);
	exp_unknown(6, 6);
	exp_pat(6, 9);
	ok(strncmp(walk(h, id, 0, 0, 0), expbuf, explen) == 0 &&
	    info_now(h).gaps == 64,
	    "merge: one ending at the hole's end is the loss there");
	history_set_limits(h, 189, 0, 1);
	exp_reset();
	exp_gap(0, 9);
	exp_unknown(9, 9);
	exp_pat(9, 12);
	ok(strncmp(walk(h, id, 0, 0, 0), expbuf, explen) == 0 &&
	    info_now(h).gaps == 63, "merge: and one before it is forgotten");
	history_free(h);

	/* tail=BYTES neither starts inside a range nor crosses one. */
	h = history_new(100000, 0, 1);
	for (k = 0; k < 65; k++) {
		history_gap(h);
		history_append(h, "a\n", 2);
	}
	is_int(history_tail_start(h, 1000), 4,
	    "merge: tail=1000 starts after the range 0-2, after a newline");
	is_int(history_tail_start(h, 129), 4,
	    "merge: tail=129 starts inside it: cut to its end, likewise");
	is_int(history_tail_start(h, 126), 4,
	    "merge: a window after it is not moved");
	history_free(h);
}


/*
 * The pair merged is the one hiding the fewest kept bytes, the oldest of
 * equals: the boot log outlives many attaches (a loss at each), a short
 * span goes before longer ones, and one all in the hole before any.
 */
static void
test_cheapest(void)
{
	static char		 loss[204097];
	struct history		*h;
	struct history_run_info	 ri;
	struct joins		 j;
	const char		*s, *q;
	uint64_t		 id, o, merged;
	size_t			 most, maxgaps;
	unsigned int		 k, at0, unknown;
	int			 fine;

	/*
	 * A 4 KiB boot log, then 200 attaches with 10 bytes each, head
	 * 64 KiB: with a loss at 0 (the console came to a running guest)
	 * and without.
	 */
	for (at0 = 0; at0 < 2; at0++) {
		memset(loss, 0, sizeof loss);
		h = history_new(65536, 65536, 1);
		id = history_run(h);
		if (at0) {
			history_gap(h);
			loss[0] = 1;
		}
		append_pat(h, 0, 4096);
		gaps_and_bytes(h, loss, 4096, 200, 10);
		ri = info_now(h);
		merged = 200 + at0 - HISTORY_GAPS_MAX;
		ok(ri.gaps == HISTORY_GAPS_MAX && ri.gaps_merged == merged &&
		    ri.total == 6096, "cheapest: %s4 KiB boot log and 200 "
		    "attaches keep 64 records, %llu merges (%zu, %llu)",
		    at0 ? "a loss at 0, " : "", (unsigned long long)merged,
		    ri.gaps, (unsigned long long)ri.gaps_merged);
		exp_reset();
		if (at0)
			exp_unknown(0, 0);
		exp_pat(0, 4096);
		exp_unknown(4096, 4096 + 10 * merged);
		for (o = 4096 + 10 * merged; o < 6096; o += 10) {
			exp_pat(o, o + 10);
			if (o + 10 < 6096)
				exp_unknown(o + 10, o + 10);
		}
		exp_add("[end]");
		is_str(walk(h, id, 0, 0, 0), expbuf, "cheapest: %sa reader "
		    "from 0 gets the boot log 0-4095 whole, then the oldest "
		    "attaches as one unknown gap, then each loss before its "
		    "bytes", at0 ? "after the loss at 0, " : "");
		j = check_joins(h, id, loss, 6096, 0, 0, 4096);
		ok(!j.joined && !j.untrue && !j.wrong && j.hidden == 4096 &&
		    j.unknown == HISTORY_GAPS_MAX,
		    "cheapest: %sall 4096 bytes of the boot log read, no "
		    "join, every unknown gap holds a loss (%lu boot bytes, %lu "
		    "unknown)", at0 ? "a loss at 0: " : "", j.hidden,
		    j.unknown);
		history_free(h);
	}

	/* One span of 1 byte among spans of 10: it goes first. */
	memset(loss, 0, sizeof loss);
	h = history_new(100000, 0, 1);
	id = history_run(h);
	gaps_and_bytes(h, loss, 0, 31, 10);		/* 0, 10 ... 300 */
	gaps_and_bytes(h, loss, 310, 1, 1);		/* 310 */
	gaps_and_bytes(h, loss, 311, 32, 10);		/* 311 ... 621 */
	history_gap(h);					/* the 65th */
	loss[631] = 1;
	s = walk(h, id, 0, 0, 0);
	for (unknown = 0, q = s; (q = strstr(q, "[?")) != NULL; q++)
		unknown++;
	ok(info_now(h).gaps == HISTORY_GAPS_MAX &&
	    info_now(h).gaps_merged == 1 && strstr(s, "[?310-311]") != NULL &&
	    strncmp(s, "[?0]", 4) == 0 && unknown == HISTORY_GAPS_MAX,
	    "cheapest: the 65th loss merges the two around the 1-byte span, "
	    "not the oldest two");
	j = check_joins(h, id, loss, 631, 0, 310, 311);
	ok(!j.joined && !j.untrue && !j.wrong && j.hidden == 0 &&
	    j.bytes == 630, "cheapest: only that byte is hidden (%lu bytes "
	    "read)", j.bytes);
	history_free(h);

	/*
	 * A span all in the hole goes before any: head 100, a range 95-105
	 * across its end, a range cut to start at tail_start, the hole
	 * between them.
	 */
	memset(loss, 0, sizeof loss);
	h = history_new(100000, 100, 1);
	id = history_run(h);
	append_pat(h, 0, 95);
	gaps_and_bytes(h, loss, 95, 1, 10);		/* 95 */
	gaps_and_bytes(h, loss, 105, 1, 20);		/* 105 */
	gaps_and_bytes(h, loss, 125, 62, 20);		/* 125 ... 1345 */
	gaps_and_bytes(h, loss, 1365, 1, 5);		/* 95 and 105 merge */
	ri = info_now(h);
	fine = ri.gaps == HISTORY_GAPS_MAX && ri.gaps_merged == 1 &&
	    strstr(walk(h, id, 0, 0, 0), "[?95-105]") != NULL;
	gaps_and_bytes(h, loss, 1370, 1, 7);		/* 1365 and 1370 */
	ri = info_now(h);
	ok(fine && ri.gaps == HISTORY_GAPS_MAX && ri.gaps_merged == 2 &&
	    strstr(walk(h, id, 0, 0, 0), "[?95-105]") != NULL &&
	    strstr(walk(h, id, 0, 0, 0), "[?1365-1370]") != NULL,
	    "cheapest: a 10-byte span merges before 20-byte ones, then the "
	    "newest, 5 bytes, whatever their age");
	history_set_limits(h, 10, 100, 1);	/* the tail 1367-1377 */
	history_set_limits(h, 100000, 100, 1);	/* the hole 100-1367 stays */
	exp_reset();
	exp_pat(0, 95);
	exp_unknown(95, 105);
	exp_gap(105, 1367);
	exp_unknown(1367, 1370);
	exp_pat(1370, 1377);
	exp_add("[end]");
	ri = info_now(h);
	ok(ri.gaps == 2 && ri.head_end == 100 && ri.tail_start == 1367 &&
	    strcmp(walk(h, id, 0, 0, 0), expbuf) == 0, "cheapest: the hole "
	    "forgets the losses in it and cuts 1365-1370 to 1367-1370");
	gaps_and_bytes(h, loss, 1377, 63, 20);		/* 1377 ... 2617 */
	ri = info_now(h);
	exp_reset();
	exp_pat(0, 95);
	exp_unknown(95, 1370);
	exp_pat(1370, 1377);
	for (o = 1377; o < 2637; o += 20) {
		exp_unknown(o, o);
		exp_pat(o, o + 20);
	}
	exp_add("[end]");
	ok(ri.gaps == HISTORY_GAPS_MAX && ri.gaps_merged == 3 &&
	    strcmp(walk(h, id, 0, 0, 0), expbuf) == 0,
	    "cheapest: the two ranges with only the hole between them merge "
	    "first, 95-1370, the head's 0-94 still read");
	history_free(h);

	/*
	 * Bounded: 20000 attaches of 10 bytes after the boot log, head and
	 * tail 64 KiB: the head fills, a hole opens, and still 64 records,
	 * at most history + history_head held, the boot log whole.
	 */
	memset(loss, 0, sizeof loss);
	h = history_new(65536, 65536, 1);
	id = history_run(h);
	history_gap(h);
	loss[0] = 1;
	append_pat(h, 0, 4096);
	most = maxgaps = 0;
	for (k = 0; k < 20000; k++) {
		gaps_and_bytes(h, loss, 4096 + 10 * (uint64_t)k, 1, 10);
		if (history_held(h) > most)
			most = history_held(h);
		if (info_now(h).gaps > maxgaps)
			maxgaps = info_now(h).gaps;
	}
	ri = info_now(h);
	ok(most <= 65536 + 65536 && maxgaps == HISTORY_GAPS_MAX &&
	    ri.gaps_merged > 0 && ri.tail_start > ri.head_end,
	    "cheapest: 20000 attaches: at most %zu bytes held (bound %d), "
	    "%zu gap records, %llu merges", most,
	    65536 + 65536, maxgaps, (unsigned long long)ri.gaps_merged);
	j = check_joins(h, id, loss, 204096, 0, 0, 4096);
	exp_reset();
	exp_unknown(0, 0);
	exp_pat(0, 4096);
	exp_unknown(4096, 4096);
	ok(!j.joined && !j.untrue && !j.wrong && j.hidden == 4096 &&
	    j.unknown <= HISTORY_GAPS_MAX && strncmp(walk(h, id, 0, 0, 0),
	    expbuf, explen - 1) == 0, "cheapest: and the boot log 0-4095 "
	    "read whole after the loss at 0 (%lu boot bytes, %lu unknown "
	    "gaps, %lu bytes)", j.hidden, j.unknown, j.bytes);
	history_free(h);
}


static void
test_runs(void)
{
	struct history		*h;
	struct history_run_info	 info[HISTORY_RUNS_MAX];
	struct history_pos	 at;
	struct history_read	 rd;
	uint64_t		 id[6], ids[1000], ones = 0, zeros = ~0ULL, t;
	size_t			 n, held_before, i, j;
	int			 distinct = 1, nonzero = 1;

	h = history_new(10, 10, 3);
	id[0] = history_run(h);
	append_pat(h, 0, 50);
	id[1] = history_run_start(h);
	ok(id[0] != 0 && id[1] != 0 && id[1] != id[0] &&
	    history_run(h) == id[1], "runs: a new run has a new id");
	is_int(history_offset(h), 0, "runs: offsets start again at 0");
	history_append(h, "new", 3);
	at.run = id[0];
	at.offset = 50;
	at.gap_told = 0;
	ok(history_read(h, &at, 0, &rd) == HISTORY_END &&
	    rd.next_run == id[1],
	    "runs: the end of a run names the run after it");
	exp_reset();
	exp_pat(0, 10);
	exp_gap(10, 40);
	exp_pat(40, 50);
	exp_add("[end]");
	is_str(walk(h, id[0], 0, 0, 0), expbuf,
	    "runs: the previous run is still read whole");
	is_str(walk(h, id[1], 0, 0, 0), "new[end]", "runs: and the new one");
	held_before = history_held(h);
	id[2] = history_run_start(h);
	id[3] = history_run_start(h);
	id[4] = history_run_start(h);
	n = history_runs(h, info, HISTORY_RUNS_MAX);
	ok(n == 3 && info[0].id == id[2] && info[1].id == id[3] &&
	    info[2].id == id[4], "runs: three kept, oldest first");
	is_str(walk(h, id[0], 0, 0, 0), "[no run]",
	    "runs: the oldest run is gone");
	is_str(walk(h, id[1], 0, 0, 0), "[no run]", "runs: and the next");
	ok(held_before > 0 && history_held(h) == 0,
	    "runs: their memory is freed (%zu, then %zu)", held_before,
	    history_held(h));
	history_free(h);

	h = history_new(0, 0, 1);
	for (i = 0; i < 1000; i++) {
		ids[i] = i == 0 ? history_run(h) : history_run_start(h);
		if (ids[i] == 0)
			nonzero = 0;
		ones |= ids[i];
		zeros &= ids[i];
	}
	for (i = 1; i < 1000; i++) {
		t = ids[i];
		for (j = i; j > 0 && ids[j - 1] > t; j--)
			ids[j] = ids[j - 1];
		ids[j] = t;
	}
	for (i = 1; i < 1000; i++)
		if (ids[i] == ids[i - 1])
			distinct = 0;
	ok(nonzero && distinct, "runs: 1000 ids, none 0, all distinct");
	ok(ones == ~0ULL && zeros == 0,
	    "runs: every bit of the ids is seen set and clear (random)");
	is_int(history_runs(h, info, 0), 1, "runs: one run kept");
	history_free(h);
}

static void
test_zero(void)
{
	struct history	*h;
	uint64_t	 id;

	h = history_new(0, 0, 1);
	id = history_run(h);
	append_pat(h, 0, 700);
	append_pat(h, 700, 300);
	is_int(history_held(h), 0, "zero: history 0, head 0 hold nothing");
	is_int(history_offset(h), 1000, "zero: offsets still count");
	is_int(history_oldest(h), 1000, "zero: the oldest is the next");
	is_str(walk(h, id, 0, 0, 0), "[gap 0-1000][end]",
	    "zero: a reader at 0 is told 0-1000");
	is_str(walk(h, id, 1000, 0, 0), "[end]", "zero: at 1000, the end");
	is_int(history_tail_start(h, 100), 1000, "zero: tail=100 starts "
	    "at the end");
	history_gap(h);
	is_str(walk(h, id, 1000, 0, 0), "[?1000][end]",
	    "zero: a gap at the end is told");
	append_pat(h, 1000, 1);
	is_int(info_now(h).gaps, 0, "zero: and forgotten a byte later");
	history_free(h);
}

static void
test_tail_start(void)
{
	struct history	*h;

	h = history_new(1000, 0, 1);
	history_append(h, "one\ntwo\nthree\nfour", 18);
	is_int(history_tail_start(h, 0), 18, "tail: 0 bytes: the end");
	is_int(history_tail_start(h, 100), 0,
	    "tail: more than the run: from 0, a line's start");
	is_int(history_tail_start(h, 18), 0, "tail: the whole run: from 0");
	is_int(history_tail_start(h, 12), 8,
	    "tail: 12 bytes start mid-line: after its first newline");
	is_int(history_tail_start(h, 10), 8,
	    "tail: 10 bytes start a line: not moved");
	is_int(history_tail_start(h, 3), 15,
	    "tail: 3 bytes with no newline: not moved");
	is_int(history_tail_start(h, 4), 14,
	    "tail: 4 bytes, just after a newline: not moved");
	history_append(h, "\n", 1);
	is_int(history_tail_start(h, 3), 19,
	    "tail: the only newline is the last byte: the end");
	history_free(h);

	/* Bytes dropped: the window is cut to what is kept. */
	h = history_new(10, 0, 1);
	history_append(h, "aaaaaaaaaa\nbbbbbbbbb\ncc", 23);
	is_int(history_tail_start(h, 100), 21,
	    "tail: the window is cut to the oldest byte, then the newline");
	is_int(history_tail_start(h, 5), 21, "tail: 5 bytes: after 20's "
	    "newline");
	history_free(h);
	h = history_new(5, 0, 1);
	history_append(h, "xxxxxxxxxx", 10);
	is_int(history_tail_start(h, 100), 5,
	    "tail: no newline in what is kept: the oldest byte");
	history_free(h);

	/* The head: across the hole, and touching the tail. */
	h = history_new(6, 4, 1);
	history_append(h, "ab\ncdefgh\nij", 12);
	is_int(history_tail_start(h, 100), 10,
	    "tail: a hole: the window stops at the tail");
	history_free(h);
	h = history_new(100, 4, 1);
	history_append(h, "ab\ncdefgh\nij", 12);
	is_int(history_tail_start(h, 100), 0,
	    "tail: head and tail touching are one window");
	is_int(history_tail_start(h, 11), 3,
	    "tail: a newline in the head");
	is_int(history_tail_start(h, 8), 10,
	    "tail: a window from the tail's first byte looks back into "
	    "the head");
	history_free(h);
}

static void
test_limits(void)
{
	struct history		*h;
	struct history_run_info	 ri;
	uint64_t		 id, id0;

	h = history_new(1000, 0, 2);
	id = history_run(h);
	append_pat(h, 0, 1000);
	is_int(history_set_limits(h, 300, 0, 2), 0, "limits: shrink history");
	ri = info_now(h);
	ok(ri.tail_start == 700 && ri.held == 300,
	    "limits: 300 bytes kept, and held");
	exp_reset();
	exp_gap(0, 700);
	exp_pat(700, 1000);
	exp_add("[end]");
	is_str(walk(h, id, 0, 0, 0), expbuf,
	    "limits: a reader behind is told the bytes dropped");
	history_gap(h);
	is_int(history_set_limits(h, 2000, 0, 2), 0, "limits: grow history");
	append_pat(h, 1000, 500);
	exp_reset();
	exp_gap(0, 700);
	exp_pat(700, 1000);
	exp_add("[?1000]");
	exp_pat(1000, 1500);
	exp_add("[end]");
	is_str(walk(h, id, 0, 0, 0), expbuf,
	    "limits: growing keeps everything, the gap included");
	append_pat(h, 1500, 2000);
	is_int(info_now(h).tail_start, 1500,
	    "limits: then the window is the new size");
	history_free(h);

	h = history_new(1000, 100, 1);
	id = history_run(h);
	append_pat(h, 0, 50);
	history_set_limits(h, 1000, 20, 1);
	ri = info_now(h);
	ok(ri.head_end == 20 && ri.tail_start == 20 && ri.total == 50,
	    "limits: a smaller head gives its bytes to the tail");
	append_pat(h, 50, 100);
	exp_reset();
	exp_pat(0, 150);
	exp_add("[end]");
	is_str(walk(h, id, 0, 0, 0), expbuf, "limits: nothing is lost");
	history_free(h);

	h = history_new(10, 100, 1);
	id = history_run(h);
	append_pat(h, 0, 200);
	history_set_limits(h, 10, 30, 1);
	exp_reset();
	exp_pat(0, 30);
	exp_gap(30, 190);
	exp_pat(190, 200);
	exp_add("[end]");
	is_str(walk(h, id, 0, 0, 0), expbuf,
	    "limits: a smaller head beside a hole is trimmed");
	history_set_limits(h, 10, 150, 1);
	is_int(info_now(h).head_end, 30,
	    "limits: a head beside a hole cannot grow back");
	history_free(h);

	h = history_new(1000, 100, 1);
	id = history_run(h);
	append_pat(h, 0, 300);
	history_set_limits(h, 1000, 200, 1);
	append_pat(h, 300, 2000);
	ri = info_now(h);
	ok(ri.head_end == 200 && ri.tail_start == 1300,
	    "limits: a head touching the tail grows to its new size");
	exp_reset();
	exp_pat(0, 200);
	exp_gap(200, 1300);
	exp_pat(1300, 2300);
	exp_add("[end]");
	is_str(walk(h, id, 0, 0, 0), expbuf,
	    "limits: and keeps those bytes as the run goes on");
	history_free(h);

	h = history_new(100, 0, 3);
	id0 = history_run(h);
	history_run_start(h);
	id = history_run_start(h);
	history_set_limits(h, 100, 0, 1);
	ok(history_runs(h, NULL, 0) == 1 && history_run(h) == id,
	    "limits: fewer runs drop the oldest");
	is_str(walk(h, id0, 0, 0, 0), "[no run]", "limits: gone");
	errno = 0;
	ok(history_set_limits(h, HISTORY_MAX + 1, 0, 1) == -1 &&
	    errno == EINVAL, "limits: history over 1G refused");
	ok(history_set_limits(h, 0, HISTORY_MAX + 1, 1) == -1,
	    "limits: history_head over 1G refused");
	ok(history_set_limits(h, 0, 0, 0) == -1 &&
	    history_set_limits(h, 0, 0, HISTORY_RUNS_MAX + 1) == -1,
	    "limits: history_runs 0 and 17 refused");
	ok(history_new(0, 0, 0) == NULL, "limits: history_new checks too");
	ok(history_set_limits(h, HISTORY_MAX, HISTORY_MAX,
	    HISTORY_RUNS_MAX) == 0 && history_held(h) == 0,
	    "limits: 1G, 1G, 16 accepted; nothing held before output");
	append_pat(h, 0, 10);
	is_int(history_held(h), CHUNK,
	    "limits: 10 bytes of a 1G head hold one chunk");
	history_set_limits(h, 0, 0, 1);
	is_int(history_held(h), 0, "limits: down to 0 frees everything");
	is_str(walk(h, id, 0, 0, 0), "[gap 0-10][end]",
	    "limits: and a reader is told so");
	history_free(h);
}

/* The byte at offset o of the memory test's output. */
static unsigned char
noise(uint64_t o)
{
	return (unsigned char)((o * 0x9e3779b1u) >> 11);
}

static void
test_memory(void)
{
	struct history		*h;
	struct history_pos	 at;
	struct history_read	 rd;
	static char		 buf[128 * 1024];
	const size_t		 limit = 256 * 1024, head = 64 * 1024;
	uint64_t		 total = 0, o, target = 50ULL << 20;
	size_t			 n, i, most = 0, appends = 0;
	int			 same = 1;

	h = history_new(limit, head, 1);
	while (total < target) {
		n = rnd_below(4) == 0 ? 1 + rnd_below(200) :
		    1 + rnd_below(sizeof buf);
		if (n > target - total)
			n = target - total;
		for (i = 0; i < n; i++)
			buf[i] = (char)noise(total + i);
		history_append(h, buf, n);
		total += n;
		appends++;
		if (history_held(h) > most)
			most = history_held(h);
	}
	ok(most <= limit + head + CHUNK,
	    "memory: 50 MB in %zu pieces, at most %zu bytes held (bound "
	    "%zu)", appends, most, limit + head + CHUNK);
	is_int(most, limit + head,
	    "memory: exactly history + history_head once full");
	at.run = history_run(h);
	at.gap_told = 0;
	for (at.offset = 0; history_read(h, &at, 0, &rd) == HISTORY_BYTES;
	    at = rd.next)
		for (o = rd.from; o < rd.to; o++)
			if ((unsigned char)rd.data[o - rd.from] != noise(o))
				same = 0;
	ok(rd.item == HISTORY_GAP && rd.from == head &&
	    rd.to == total - limit, "memory: the hole is %llu-%llu",
	    (unsigned long long)rd.from, (unsigned long long)rd.to);
	for (at = rd.next; history_read(h, &at, 0, &rd) == HISTORY_BYTES;
	    at = rd.next)
		for (o = rd.from; o < rd.to; o++)
			if ((unsigned char)rd.data[o - rd.from] != noise(o))
				same = 0;
	ok(same && rd.item == HISTORY_END && rd.from == total,
	    "memory: the head and the tail hold the bytes appended");
	history_free(h);
}

/* ------------------------------------------------------------ the model */

/*
 * The reference model: every byte of every run in one buffer, and what
 * should be kept computed from the rules of history.c's comment, not from
 * its data structure.  Every loss is remembered too (loss[o] != 0: a gap
 * was recorded at offset o), so that each read is also checked against
 * the promise itself: no byte after a loss comes but just after an
 * unknown gap, and every unknown gap told holds a loss.
 */
struct mgap {
	uint64_t	 from, to;	/* from == to: one loss */
};
struct mrun {
	uint64_t	 id;
	char		*buf;
	char		*loss;		/* cap + 1 entries */
	size_t		 len, cap;
	uint64_t	 head_end, tail_start;
	struct mgap	 gaps[HISTORY_GAPS_MAX];
	size_t		 ngaps;
	uint64_t	 merged;
};
struct model {
	size_t		 limit, head;
	unsigned int	 maxruns, n;
	struct mrun	 run[HISTORY_RUNS_MAX + 1];
};
struct coverage {
	unsigned long	 bytes, gap, unknown, end_next, beyond, no_run;
	unsigned long	 holes, rebuilds, dropped_runs, wraps, tails;
	unsigned long	 merges, merges_inside, merges_free;
	unsigned long	 ranges, range_ends, cuts, after_loss;
	unsigned long	 checks, failed;
};
static struct coverage	cov;

static uint64_t
max64(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

static uint64_t
min64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

/*
 * A gap in the hole is forgotten; one that starts in it and ends at its
 * end or past it starts at tail_start.
 */
static void
model_prune(struct mrun *r)
{
	size_t	i, j;

	for (i = j = 0; i < r->ngaps; i++) {
		if (r->head_end < r->tail_start &&
		    r->gaps[i].from >= r->head_end &&
		    r->gaps[i].from < r->tail_start) {
			if (r->gaps[i].to < r->tail_start)
				continue;
			r->gaps[i].from = r->tail_start;
			cov.cuts++;
		}
		r->gaps[j++] = r->gaps[i];
	}
	r->ngaps = j;
}

/* Room for need bytes in r->buf, need + 1 entries in r->loss. */
static void
model_reserve(struct mrun *r, size_t need)
{
	size_t	cap;

	if (need <= r->cap && r->loss != NULL)
		return;
	cap = need * 2 + 16;
	r->buf = realloc(r->buf, cap);
	r->loss = realloc(r->loss, cap + 1);
	if (r->buf == NULL || r->loss == NULL)
		abort();
	memset(r->loss + r->len + 1, 0, cap - r->len);
	if (r->cap == 0)
		r->loss[0] = 0;
	r->cap = cap;
}

static void
model_append(struct model *m, const char *p, size_t n)
{
	struct mrun	*r = &m->run[m->n - 1];
	uint64_t	 t = r->len, nt = r->len + n;

	model_reserve(r, r->len + n);
	memcpy(r->buf + r->len, p, n);
	r->len += n;
	if (r->head_end == t && t < m->head)
		r->head_end = min64(nt, m->head);
	r->tail_start = max64(max64(r->tail_start, r->head_end),
	    nt > m->limit ? nt - m->limit : 0);
	model_prune(r);
}

/*
 * The bytes [a, b) of r a reader could still get: all of them but those
 * in the hole (or dropped before the tail, a hole from 0).
 */
static uint64_t
model_kept(const struct mrun *r, uint64_t a, uint64_t b)
{
	uint64_t	ha = max64(a, r->head_end), hb = min64(b, r->tail_start);

	return (b - a) - (ha < hb ? hb - ha : 0);
}

static void
model_gap(struct model *m)
{
	struct mrun	*r = &m->run[m->n - 1];
	struct mgap	 all[HISTORY_GAPS_MAX + 1];
	uint64_t	 cost, least;
	size_t		 i, best;

	model_reserve(r, r->len);
	r->loss[r->len] = 1;
	if (r->ngaps > 0 && r->gaps[r->ngaps - 1].to == r->len)
		return;		/* within the last gap already */
	memcpy(all, r->gaps, r->ngaps * sizeof all[0]);
	all[r->ngaps].from = all[r->ngaps].to = r->len;
	if (r->ngaps < HISTORY_GAPS_MAX) {
		r->gaps[r->ngaps] = all[r->ngaps];
		r->ngaps++;
		return;
	}
	/* 65 records: the neighbours hiding the fewest kept bytes, the
	   oldest such, become one. */
	best = 0;
	least = model_kept(r, all[0].to, all[1].from);
	for (i = 1; i < HISTORY_GAPS_MAX; i++) {
		cost = model_kept(r, all[i].to, all[i + 1].from);
		if (cost < least) {
			least = cost;
			best = i;
		}
	}
	all[best].to = all[best + 1].to;
	memmove(all + best + 1, all + best + 2,
	    (HISTORY_GAPS_MAX - 1 - best) * sizeof all[0]);
	memcpy(r->gaps, all, sizeof r->gaps);
	r->merged++;
	cov.merges++;
	if (best > 0)
		cov.merges_inside++;
	if (least == 0)
		cov.merges_free++;
}

static void
model_trim(struct model *m)
{
	while (m->n > m->maxruns) {
		free(m->run[0].buf);
		free(m->run[0].loss);
		memmove(m->run, m->run + 1, (m->n - 1) * sizeof m->run[0]);
		m->n--;
		cov.dropped_runs++;
	}
}

static void
model_run_start(struct model *m, uint64_t id)
{
	memset(&m->run[m->n], 0, sizeof m->run[0]);
	m->run[m->n++].id = id;
	model_trim(m);
}

static void
model_set_limits(struct model *m, size_t limit, size_t head,
    unsigned int runs)
{
	struct mrun	*r;
	unsigned int	 i;
	int		 changed = limit != m->limit || head != m->head;
	uint64_t	 t;

	m->limit = limit;
	m->head = head;
	m->maxruns = runs;
	model_trim(m);
	if (!changed)
		return;
	cov.rebuilds++;
	for (i = 0; i < m->n; i++) {
		r = &m->run[i];
		t = r->len;
		if (r->tail_start > r->head_end) {	/* a hole stays */
			r->head_end = min64(r->head_end, head);
			r->tail_start = max64(r->tail_start,
			    t > limit ? t - limit : 0);
		} else {			/* all contiguous from 0 */
			r->head_end = min64(t, head);
			r->tail_start = max64(r->head_end,
			    t > limit ? t - limit : 0);
		}
		model_prune(r);
	}
}

static uint64_t
model_tail_start(const struct model *m, uint64_t bytes)
{
	const struct mrun	*r = &m->run[m->n - 1];
	uint64_t		 first, start, o;
	size_t			 i;

	first = r->tail_start > r->head_end ? r->tail_start : 0;
	for (i = 0; i < r->ngaps; i++)	/* no window over a range */
		if (r->gaps[i].from < r->gaps[i].to)
			first = max64(first, r->gaps[i].to);
	start = r->len - first > bytes ? r->len - bytes : first;
	if (start == r->len || start == 0)
		return start;
	if (start > first && r->buf[start - 1] == '\n')
		return start;
	for (o = start; o < r->len; o++)
		if (r->buf[o] == '\n')
			return o + 1;
	return start;
}

static const struct mrun *
model_find(const struct model *m, uint64_t id, unsigned int *idx)
{
	unsigned int	i;

	for (i = 0; i < m->n; i++)
		if (m->run[i].id == id) {
			*idx = i;
			return &m->run[i];
		}
	return NULL;
}

static void
fail(const char *what, unsigned long seq, int op)
{
	cov.failed++;
	if (cov.failed <= 5)
		printf("# model: sequence %lu, operation %d: %s\n", seq, op,
		    what);
}

/*
 * One step of a reader: compare what history_read() says with what the
 * model says it must.  *prev is the item the reader got before
 * (HISTORY_GAP_UNKNOWN for one that starts with gap_told, HISTORY_END for
 * none).  Returns 0 when the reader must stop.
 */
static int
model_step(const struct history *h, const struct model *m,
    struct history_pos *at, size_t max, enum history_item *prev,
    unsigned long seq, int op)
{
	const struct mrun	*r;
	struct history_read	 rd;
	enum history_item	 item;
	unsigned int		 idx = 0;
	uint64_t		 o = at->offset, end;
	size_t			 i;
	int			 joined = 0;

	item = history_read(h, at, max, &rd);
	cov.checks++;
	if ((r = model_find(m, at->run, &idx)) == NULL) {
		cov.no_run++;
		if (item != HISTORY_NO_RUN)
			fail("unknown run not refused", seq, op);
		return 0;
	}
	if (o > r->len) {
		cov.beyond++;
		if (item != HISTORY_BEYOND)
			fail("offset beyond not refused", seq, op);
		return 0;
	}
	if (item == HISTORY_GAP_UNKNOWN && (rd.from > rd.to ||
	    rd.to > r->len || r->loss == NULL || memchr(r->loss + rd.from, 1,
	    (size_t)(rd.to - rd.from + 1)) == NULL))
		fail("unknown gap told where nothing was lost", seq, op);
	for (i = 0; i < r->ngaps && r->gaps[i].from <= o; i++) {
		if (o < r->gaps[i].to) {
			/* Inside a range: told, gap_told or not. */
			cov.ranges++;
			if (item != HISTORY_GAP_UNKNOWN || rd.from != o ||
			    rd.to != r->gaps[i].to ||
			    rd.next.offset != r->gaps[i].to ||
			    !rd.next.gap_told)
				fail("merged gap not told", seq, op);
			*prev = item;
			*at = rd.next;
			return 1;
		}
		if (o == r->gaps[i].to && !at->gap_told) {
			if (r->gaps[i].from < o)
				cov.range_ends++;
			cov.unknown++;
			if (item != HISTORY_GAP_UNKNOWN || rd.from != o ||
			    rd.to != o || rd.next.offset != o ||
			    !rd.next.gap_told)
				fail("unknown gap not told", seq, op);
			*prev = item;
			*at = rd.next;
			return 1;
		}
	}
	if (o == r->len) {
		if (idx + 1 < m->n)
			cov.end_next++;
		if (item != HISTORY_END || rd.from != o ||
		    rd.next_run != (idx + 1 < m->n ? m->run[idx + 1].id : 0))
			fail("end not told", seq, op);
		return 0;
	}
	if (o >= r->head_end && o < r->tail_start) {
		cov.gap++;
		if (r->head_end > 0 && o == r->head_end)
			cov.holes++;
		if (item != HISTORY_GAP || rd.from != o ||
		    rd.to != r->tail_start || rd.next.offset != r->tail_start ||
		    rd.next.gap_told)
			fail("known gap wrong", seq, op);
		*prev = item;
		*at = rd.next;
		return 1;
	}
	end = o < r->head_end ? r->head_end : r->len;
	if (i < r->ngaps)	/* the first gap past o */
		end = min64(end, r->gaps[i].from);
	if (max > 0)
		end = min64(end, o + max);
	cov.bytes++;
	if (item != HISTORY_BYTES || rd.from != o || rd.len == 0 ||
	    rd.len > CHUNK || o + rd.len > end || rd.to != o + rd.len ||
	    rd.next.offset != rd.to || rd.next.gap_told ||
	    memcmp(rd.data, r->buf + o, rd.len) != 0) {
		fail("bytes wrong", seq, op);
		return 0;
	}
	/* The promise: never two bytes from either side of a loss. */
	if (r->loss[o]) {
		cov.after_loss++;
		if (*prev != HISTORY_GAP_UNKNOWN)
			joined = 1;
	}
	if (rd.len > 1 && memchr(r->loss + o + 1, 1, rd.len - 1) != NULL)
		joined = 1;
	if (joined)
		fail("bytes joined across a loss", seq, op);
	*prev = item;
	*at = rd.next;
	return 1;
}

static void
model_check(const struct history *h, const struct model *m,
    unsigned long seq, int op)
{
	struct history_run_info	 info[HISTORY_RUNS_MAX];
	const struct mrun	*r, *cur = &m->run[m->n - 1];
	struct history_pos	 at;
	enum history_item	 prev;
	size_t			 n, i, held = 0, max;
	uint64_t		 bytes;
	int			 w, steps;
	const struct mgap	*g;

	n = history_runs(h, info, HISTORY_RUNS_MAX);
	if (n != m->n) {
		fail("run count", seq, op);
		return;
	}
	for (i = 0; i < n; i++) {
		r = &m->run[i];
		if (info[i].id != r->id || info[i].total != r->len ||
		    info[i].head_end != r->head_end ||
		    info[i].tail_start != r->tail_start ||
		    info[i].gaps != r->ngaps ||
		    info[i].gaps_merged != r->merged)
			fail("run info", seq, op);
		if (info[i].held > m->limit + m->head)
			fail("run holds more than history + history_head",
			    seq, op);
		if (r->len > m->limit + m->head + CHUNK && m->limit > CHUNK)
			cov.wraps++;
		held += info[i].held;
	}
	if (history_held(h) != held)
		fail("held is not the sum of the runs'", seq, op);
	if (history_run(h) != cur->id || history_offset(h) != cur->len ||
	    history_oldest(h) != (cur->head_end > 0 ? 0 : cur->tail_start))
		fail("current run's id, offset or oldest", seq, op);
	for (w = 0; w < 3; w++) {
		bytes = rnd_below(4) == 0 ? rnd_below(cur->len + 2) :
		    rnd_below(200);
		if (history_tail_start(h, bytes) != model_tail_start(m, bytes))
			fail("tail start", seq, op);
		cov.tails++;
	}
	for (w = 0; w < 3; w++) {
		r = &m->run[rnd_below(m->n)];
		at.run = r->id;
		switch (rnd_below(8)) {
		case 0:
			at.offset = 0;
			break;
		case 1:
			at.offset = r->len + 1 + rnd_below(3);
			break;
		case 2:		/* at, in or at the end of a gap */
			g = r->ngaps > 0 ? &r->gaps[rnd_below(r->ngaps)] :
			    NULL;
			if (g == NULL)
				at.offset = r->head_end;
			else if (rnd_below(2) == 0)
				at.offset = g->to;
			else
				at.offset = g->from +
				    rnd_below(g->to - g->from + 1);
			break;
		case 3:
			at.run = r->id ^ 1;	/* most likely no such run */
			at.offset = 0;
			break;
		default:
			at.offset = rnd_below(r->len + 1);
			break;
		}
		at.gap_told = rnd_below(4) == 0;
		max = rnd_below(3) == 0 ? 0 : 1 + rnd_below(rnd_below(2) ?
		    100 : 3 * CHUNK);
		prev = at.gap_told ? HISTORY_GAP_UNKNOWN : HISTORY_END;
		for (steps = 0; steps < 200; steps++)
			if (!model_step(h, m, &at, max, &prev, seq, op))
				break;
	}
}

static size_t
pick_limit(void)
{
	static const size_t	 sizes[] = { 0, 1, 2, 7, 100, CHUNK - 1,
	    CHUNK, CHUNK + 1, 2 * CHUNK + 3 };

	if (rnd_below(3) == 0)
		return 1 + rnd_below(3 * CHUNK);
	return sizes[rnd_below(sizeof sizes / sizeof sizes[0])];
}

static void
test_random_bytes(char *p, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++)
		p[i] = rnd_below(40) == 0 ? '\n' : (char)rnd();
}

static void
test_model(void)
{
	struct history	*h;
	struct model	 m;
	static char	 buf[3 * CHUNK + 100];
	unsigned long	 seq, nseq = 300;
	int		 op, nop = 60;
	unsigned int	 i;
	size_t		 n, limit, head;
	uint64_t	 r, id, k;

	memset(&cov, 0, sizeof cov);
	for (seq = 0; seq < nseq; seq++) {
		memset(&m, 0, sizeof m);
		m.limit = pick_limit();
		m.head = pick_limit();
		m.maxruns = 1 + (unsigned int)rnd_below(4);
		h = history_new(m.limit, m.head, m.maxruns);
		model_run_start(&m, history_run(h));
		for (op = 0; op < nop; op++) {
			r = rnd_below(100);
			if (r < 62) {
				switch (rnd_below(4)) {
				case 0:
					n = 1 + rnd_below(10);
					break;
				case 1:
					n = 1 + rnd_below(2000);
					break;
				case 2:
					n = 1 + rnd_below(sizeof buf);
					break;
				default:
					n = CHUNK - 2 + rnd_below(5);
					break;
				}
				test_random_bytes(buf, n);
				history_append(h, buf, n);
				model_append(&m, buf, n);
			} else if (r < 82) {
				history_gap(h);
				model_gap(&m);
			} else if (r < 90) {
				id = history_run_start(h);
				model_run_start(&m, id);
			} else if (r < 96) {
				limit = rnd_below(3) == 0 ? m.limit :
				    pick_limit();
				head = rnd_below(3) == 0 ? m.head :
				    pick_limit();
				i = 1 + (unsigned int)rnd_below(4);
				if (history_set_limits(h, limit, head, i) != 0)
					fail("set_limits refused", seq, op);
				model_set_limits(&m, limit, head, i);
			} else {
				/*
				 * Many gaps in a row, to reach the bound:
				 * one byte after each, or a few bytes, or
				 * up to 400, so that merges choose.
				 */
				k = rnd_below(3);
				for (i = 0; i < 70; i++) {
					history_gap(h);
					model_gap(&m);
					n = k == 0 ? 1 : 1 + rnd_below(k == 1 ?
					    4 : 400);
					test_random_bytes(buf, n);
					history_append(h, buf, n);
					model_append(&m, buf, n);
				}
			}
			model_check(h, &m, seq, op);
		}
		history_free(h);
		for (i = 0; i < m.n; i++) {
			free(m.run[i].buf);
			free(m.run[i].loss);
		}
	}
	ok(cov.failed == 0, "model: %lu sequences of %d operations, %lu "
	    "reads and checks agree with the model (%lu differ)", nseq, nop,
	    cov.checks, cov.failed);
	ok(cov.bytes > 0 && cov.gap > 0 && cov.unknown > 0 &&
	    cov.end_next > 0 && cov.beyond > 0 && cov.no_run > 0,
	    "model: every kind of answer was checked (bytes %lu, gaps %lu, "
	    "unknown gaps %lu, ends naming the next run %lu, beyond %lu, "
	    "no run %lu)", cov.bytes, cov.gap, cov.unknown, cov.end_next,
	    cov.beyond, cov.no_run);
	ok(cov.holes > 0 && cov.rebuilds > 0 && cov.dropped_runs > 0 &&
	    cov.wraps > 0 && cov.tails > 0,
	    "model: holes after a head (%lu), new limits (%lu), runs dropped "
	    "(%lu), rings wrapped (%lu), tail starts (%lu) were checked",
	    cov.holes, cov.rebuilds, cov.dropped_runs, cov.wraps, cov.tails);
	ok(cov.merges > 0 && cov.merges_inside > 0 && cov.ranges > 0 &&
	    cov.range_ends > 0 && cov.cuts > 0 && cov.after_loss > 0,
	    "model: gaps merged (%lu; of them past the oldest pair %lu, "
	    "hiding nothing kept %lu, see test_cheapest), readers in a "
	    "range (%lu) and at its end (%lu), ranges cut by the hole "
	    "(%lu), bytes just after a loss (%lu) were checked", cov.merges,
	    cov.merges_inside, cov.merges_free, cov.ranges, cov.range_ends,
	    cov.cuts, cov.after_loss);
}

/*
 * parse_history_pos() (util.c): the from= of the control command and of
 * the web's /api/history, so exact: a run in hex, an offset in decimal,
 * ":1" or nothing after it.
 */
static void
test_parse_pos(void)
{
	static const char *const bad[] = {
		"", ":0", "12", "12:", "12:x", "12:-1", "12: 3", " 12:3",
		"-12:3", "+12:3", "12:3:", "12:3:0", "12:3:2", "12:3:11",
		"12:3x", "g1:0", "0x1f:0", "10000000000000000:0",
		"1:18446744073709551616",
	};
	struct history_pos	p;
	size_t			i;

	ok(parse_history_pos("9f32581ccebb438f:123", &p) == 0 &&
	    p.run == 0x9f32581ccebb438fULL && p.offset == 123 && !p.gap_told,
	    "parse_history_pos: RUN:OFFSET");
	ok(parse_history_pos("A:0:1", &p) == 0 && p.run == 0xa &&
	    p.offset == 0 && p.gap_told,
	    "parse_history_pos: RUN:OFFSET:1 (the gap there was told)");
	ok(parse_history_pos("ffffffffffffffff:18446744073709551615", &p) ==
	    0 && p.run == UINT64_MAX && p.offset == UINT64_MAX,
	    "parse_history_pos: the largest run and offset");
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
		ok(parse_history_pos(bad[i], &p) == -1,
		    "parse_history_pos refuses \"%s\"", bad[i]);
}

int
main(void)
{
	log_init(LOG_TARGET_STDERR, LOG_LEVEL_INFO, NULL);
	printf("# random seed %#llx\n", (unsigned long long)rng);
	test_chunks();
	test_hole();
	test_touch();
	test_behind();
	test_unknown();
	test_merge();
	test_cheapest();
	test_runs();
	test_zero();
	test_tail_start();
	test_limits();
	test_memory();
	test_model();
	test_parse_pos();
	return tap_done();
}
