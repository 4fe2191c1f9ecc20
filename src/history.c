/*
 * Console history: what one console printed, kept per guest run, so that a
 * client can read it from the start of a run or resume at the byte offset
 * where it left off.  Pure: no libvirt, no libevent, no logging; the
 * console object feeds it and the doors read it.  One struct history per
 * console.
 *
 * Runs.  A run is one life of the guest: history_run_start() begins one
 * when the guest starts again.  Its id is a random 64-bit value from
 * getrandom(2), never 0 and never the id of another run kept here, so that
 * an offset from another run, or from before a daemon restart, cannot land
 * in this one.  Offsets count every byte read in the run from 0, kept or
 * not.  The current run and the history_runs - 1 runs before it are kept;
 * older ones are freed.  A history starts with one empty run: a caller that
 * comes to a guest already running records a gap at offset 0.
 *
 * What a run keeps.  Two windows, as Propolis does (CONSOLE-SERVERS.md,
 * section 1): the head, bytes [0, head_end), the first history_head bytes
 * of the run (the boot log), and the tail, bytes [tail_start, total), the
 * last `history` bytes.  A byte goes to the head while the head has room
 * and holds every byte before it, and to the tail otherwise: no byte is
 * kept twice.  Once the run has printed more than both, the hole
 * [head_end, tail_start) lies between them; a reader in it, or behind the
 * oldest byte kept, is told a gap of known length and moves to tail_start.
 * When the head and the tail touch, a reader goes from one to the other
 * with no gap.
 *
 * Memory.  Both windows are made of chunks of HISTORY_CHUNK bytes, each
 * allocated when the first byte is written into it, so a console costs
 * what it printed, rounded up to a chunk per window.  The head's last
 * chunk is cut to history_head; the tail is a ring of exactly `history`
 * bytes whose last chunk is cut the same way.  So a run never holds more
 * than history + history_head bytes of chunks (the issue allows one chunk
 * more), and a chunk is never moved or resized: the only reallocation is
 * of a window's array of chunk pointers, 8 bytes per chunk (512 KiB for a
 * 1 GiB window), doubled as chunks come.
 *
 * Why 16 KiB chunks: a console that printed a few lines costs 16 KiB;
 * console.c reads the stream 64 KiB at a time, so a busy console takes a
 * few chunks per read; a chunk is below glibc's mmap threshold (128 KiB),
 * so it comes from the heap without a system call; a 1 GiB window is
 * 65536 of them; and one read hands out at most one chunk, a good size for
 * a WebSocket frame or a write (Propolis answers 16 KiB by default).
 *
 * Gaps of unknown length.  history_gap() records that bytes were lost at
 * the current offset (the daemon restarted, the hypervisor reconnected,
 * the console was stolen); offsets do not move, since nobody knows how
 * much was lost.  Two gaps with no byte between them are one.  A gap is
 * kept as a range of offsets [from, to): a loss is recorded as the point
 * from == to, and a reader there is told the gap before the bytes after
 * it.  A run keeps HISTORY_GAPS_MAX (64) records at most, in offset order,
 * so that memory stays bounded whatever a guest, or a peer that steals
 * the console over and over, does.  One more loss merges two neighbours
 * among the 65 records (the new loss is the newest) into one, [from of
 * the first, to of the second) (counted in gaps_merged): the bytes between
 * them become part of the unknown gap and are never read again, so that
 * no two bytes from either side of a loss are ever joined.  That is the
 * price of the bound: bytes, not a silent join.  The pair merged is the
 * one whose merge hides the fewest bytes still kept, those between the
 * first's `to` and the second's `from` that are in the head or the tail
 * (bytes in the hole, or dropped before the tail, cost nothing); of equal
 * pairs, the oldest.  A scan of 64 pairs per loss past the bound.  Why
 * not the oldest pair: under capture = attached the console records a
 * loss at every attach, often the first at offset 0, so 64 attaches in a
 * run would have merged the boot log (the head) into one unknown gap, and
 * the boot log is what a reader most wants; now merging it costs its
 * length, and the shorter spans between attaches go first (only spans
 * all longer than the boot log would take it).  Any record can so become
 * a range, and ranges grow where losses are dense.
 *
 * A reader at or inside a range (from <= offset < to) is told an unknown
 * gap from its offset to `to`, and moves to `to`, the gap told.  It is
 * told a range even when it was told a gap at its offset already
 * (gap_told): that gap may since have been merged into a longer one, whose
 * bytes it must not get.  A gap's `to` is always the offset of a loss, so
 * a reader at `to` that was not told the gap there is told it as at a
 * point (`from` == `to`): it may have read up to `to` before the merge.
 * Bytes stop before a range as before a point.  The hole swallows what
 * falls in it: a gap that starts in the hole is forgotten if it ends there
 * too, and otherwise starts again at tail_start (a reader in the hole is
 * told the known gap first, then the unknown one at tail_start); a range
 * that starts in the head and ends in or past the hole is kept whole, and
 * a reader in the hole before its end is told the unknown gap, which
 * covers the hole.
 *
 * Reading.  history_read() changes nothing: given a position (run, offset,
 * and whether the unknown gap at that offset was already reported), it
 * says what comes next and where the reader then stands.  Bytes come as a
 * pointer into one chunk and a length, not copied: every caller copies
 * them once anyway (into an evbuffer, a write), and the pointer stays
 * valid until the history next changes, which in one event loop is after
 * the caller has copied them.  Bytes stop at a chunk's end, at a window's
 * end and before an unknown gap.  history_oldest() still names the oldest
 * byte stored, even inside a merged range: a reader from there is told
 * the unknown gap first.
 *
 * New limits (a reload: history_set_limits()).  Each run is rebuilt as if
 * its kept bytes were appended again under the new limits, the hole kept
 * a hole, the gaps kept and then forgotten or cut as above where the hole
 * now lies.  A smaller `history` drops the oldest tail bytes (readers
 * behind get a known gap); a smaller history_head trims the head, and the
 * bytes it gives up stay in the tail if nothing was lost between them and
 * the tail and they are among the last `history`; larger limits keep
 * everything, and a head that still touches the tail takes back the bytes
 * its new size covers.  While one run is rebuilt it is held twice.
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "virtconsoled.h"

/* One window: chunks of HISTORY_CHUNK bytes, the last cut to cap. */
struct history_buf {
	char			**chunk;	/* NULL until written */
	size_t			  nslot;	/* entries of chunk[] */
	size_t			  cap;		/* bytes it may hold */
};

/* An unknown gap: [from, to), from == to for a loss that was not merged. */
struct history_range {
	uint64_t		 from;
	uint64_t		 to;
};
_Static_assert(HISTORY_GAPS_MAX >= 2, "a merge takes two gap records");

struct history_run {
	uint64_t		 id;
	uint64_t		 total;		/* bytes read: next offset */
	uint64_t		 head_end;	/* head: [0, head_end) */
	uint64_t		 tail_start;	/* tail: [tail_start, total) */
	uint64_t		 tail_base;	/* offset at ring position 0 */
	struct history_buf	 head;
	struct history_buf	 tail;		/* a ring of tail.cap bytes */
	struct history_range	*gaps;		/* ascending, apart: each
						   .to < the next .from */
	size_t			 ngaps;
	uint64_t		 gaps_merged;
	size_t			 held;		/* chunk bytes allocated */
	TAILQ_ENTRY(history_run) entry;
};
TAILQ_HEAD(history_runlist, history_run);

struct history {
	size_t			 limit;		/* history */
	size_t			 head;		/* history_head */
	unsigned int		 maxruns;	/* history_runs */
	struct history_runlist	 runs;		/* oldest first, current last */
	unsigned int		 nruns;
};

static int
history_limits_ok(size_t limit, size_t head, unsigned int runs)
{
	return limit <= HISTORY_MAX && head <= HISTORY_MAX && runs >= 1 &&
	    runs <= HISTORY_RUNS_MAX;
}

/* The size of chunk i of b. */
static size_t
history_chunk_cap(const struct history_buf *b, size_t i)
{
	size_t	left = b->cap - i * HISTORY_CHUNK;

	return left < HISTORY_CHUNK ? left : HISTORY_CHUNK;
}

/*
 * Write up to n bytes at position pos of b, no further than the end of the
 * chunk pos is in; returns how many were written.
 */
static size_t
history_buf_write(struct history_run *r, struct history_buf *b, size_t pos,
    const char *p, size_t n)
{
	size_t	i = pos / HISTORY_CHUNK, at = pos % HISTORY_CHUNK;
	size_t	cap, nslot, most;

	if (i >= b->nslot) {
		most = (b->cap + HISTORY_CHUNK - 1) / HISTORY_CHUNK;
		nslot = b->nslot > 0 ? b->nslot : 1;
		while (nslot <= i)
			nslot *= 2;
		if (nslot > most)
			nslot = most;
		b->chunk = xrealloc(b->chunk, nslot * sizeof *b->chunk);
		memset(b->chunk + b->nslot, 0,
		    (nslot - b->nslot) * sizeof *b->chunk);
		b->nslot = nslot;
	}
	cap = history_chunk_cap(b, i);
	if (b->chunk[i] == NULL) {
		b->chunk[i] = xmalloc(cap);
		r->held += cap;
	}
	if (n > cap - at)
		n = cap - at;
	memcpy(b->chunk[i] + at, p, n);
	return n;
}

/* The bytes at position pos of b, to the end of their chunk. */
static const char *
history_buf_at(const struct history_buf *b, size_t pos, size_t *len)
{
	size_t	i = pos / HISTORY_CHUNK, at = pos % HISTORY_CHUNK;

	*len = history_chunk_cap(b, i) - at;
	return b->chunk[i] + at;
}

static void
history_buf_free(struct history_buf *b)
{
	size_t	i;

	for (i = 0; i < b->nslot; i++)
		free(b->chunk[i]);
	free(b->chunk);
	b->chunk = NULL;
	b->nslot = 0;
}

/*
 * The kept bytes from offset o on, as far as they are contiguous in memory
 * and kept (to the end of a chunk, of the head, of the run).
 */
static const char *
history_run_at(const struct history_run *r, uint64_t o, size_t *len)
{
	const char	*p;
	uint64_t	 end;

	if (o < r->head_end) {
		p = history_buf_at(&r->head, (size_t)o, len);
		end = r->head_end;
	} else {
		p = history_buf_at(&r->tail,
		    (size_t)((o - r->tail_base) % r->tail.cap), len);
		end = r->total;
	}
	if (*len > end - o)
		*len = (size_t)(end - o);
	return p;
}

/*
 * Forget the unknown gaps that lie in the hole, and start at tail_start
 * those that start in the hole and end at or past it: a reader there is
 * told the known gap first.
 */
static void
history_run_prune(struct history_run *r)
{
	struct history_range	g;
	size_t			i, j;

	for (i = j = 0; i < r->ngaps; i++) {
		g = r->gaps[i];
		if (g.from >= r->head_end && g.from < r->tail_start) {
			if (g.to < r->tail_start)
				continue;
			g.from = r->tail_start;
		}
		r->gaps[j++] = g;
	}
	r->ngaps = j;
}

static void
history_run_append(struct history_run *r, const char *p, size_t n)
{
	size_t	k, pos;

	while (n > 0) {
		if (r->head_end == r->total && r->total < r->head.cap) {
			/* The head is still every byte so far. */
			k = r->head.cap - (size_t)r->total;
			k = history_buf_write(r, &r->head, (size_t)r->total, p,
			    n < k ? n : k);
			r->head_end += k;
			r->total += k;
			r->tail_start = r->total;
		} else if (r->tail.cap == 0) {
			k = n;
			r->total += k;
			r->tail_start = r->total;
		} else if (n > r->tail.cap) {
			/* These would be overwritten by the rest. */
			k = n - r->tail.cap;
			r->total += k;
			r->tail_start = r->total;
		} else {
			if (r->tail_start == r->total)
				r->tail_base = r->total;	/* empty */
			pos = (size_t)((r->total - r->tail_base) % r->tail.cap);
			k = history_buf_write(r, &r->tail, pos, p, n);
			r->total += k;
			if (r->total - r->tail_start > r->tail.cap)
				r->tail_start = r->total - r->tail.cap;
		}
		p += k;
		n -= k;
	}
	history_run_prune(r);
}

static struct history_run *
history_current(const struct history *h)
{
	return TAILQ_LAST(&h->runs, history_runlist);
}

static struct history_run *
history_find(const struct history *h, uint64_t id)
{
	struct history_run	*r;

	TAILQ_FOREACH(r, &h->runs, entry)
		if (r->id == id)
			return r;
	return NULL;
}

static void
history_run_free(struct history_run *r)
{
	history_buf_free(&r->head);
	history_buf_free(&r->tail);
	free(r->gaps);
	free(r);
}

/*
 * Rebuild run r under h's limits: its kept bytes appended again to an
 * empty run, the hole skipped, its gaps carried over.
 */
static void
history_run_rebuild(const struct history *h, struct history_run *r)
{
	struct history_run	 n;
	const char		*p;
	uint64_t		 o;
	size_t			 len;

	memset(&n, 0, sizeof n);
	n.id = r->id;
	n.head.cap = h->head;
	n.tail.cap = h->limit;
	for (o = 0; o < r->head_end; o += len) {
		p = history_run_at(r, o, &len);
		history_run_append(&n, p, len);
	}
	if (r->tail_start > n.total) {
		n.total = r->tail_start;
		n.tail_start = n.total;
	}
	for (o = r->tail_start; o < r->total; o += len) {
		p = history_run_at(r, o, &len);
		history_run_append(&n, p, len);
	}
	n.gaps = r->gaps;
	n.ngaps = r->ngaps;
	n.gaps_merged = r->gaps_merged;
	history_run_prune(&n);
	history_buf_free(&r->head);
	history_buf_free(&r->tail);
	n.entry = r->entry;
	*r = n;
}

static uint64_t
history_new_id(const struct history *h)
{
	uint64_t	id;

	do
		random_bytes(&id, sizeof id);
	while (id == 0 || history_find(h, id) != NULL);
	return id;
}

/* Free the oldest runs beyond h->maxruns. */
static void
history_trim(struct history *h)
{
	struct history_run	*r;

	while (h->nruns > h->maxruns) {
		r = TAILQ_FIRST(&h->runs);
		TAILQ_REMOVE(&h->runs, r, entry);
		history_run_free(r);
		h->nruns--;
	}
}

/*
 * A history keeping the last limit bytes and the first head bytes of
 * each run, for runs runs; NULL (errno EINVAL) for limits out of range.
 * It begins with one run, empty.
 */
struct history *
history_new(size_t limit, size_t head, unsigned int runs)
{
	struct history	*h;

	if (!history_limits_ok(limit, head, runs)) {
		errno = EINVAL;
		return NULL;
	}
	h = xcalloc(1, sizeof *h);
	h->limit = limit;
	h->head = head;
	h->maxruns = runs;
	TAILQ_INIT(&h->runs);
	history_run_start(h);
	return h;
}

void
history_free(struct history *h)
{
	struct history_run	*r;

	if (h == NULL)
		return;
	while ((r = TAILQ_FIRST(&h->runs)) != NULL) {
		TAILQ_REMOVE(&h->runs, r, entry);
		history_run_free(r);
	}
	free(h);
}

/* New limits (see the top of the file); -1 (errno EINVAL) out of range. */
int
history_set_limits(struct history *h, size_t limit, size_t head,
    unsigned int runs)
{
	struct history_run	*r;
	int			 rebuild;

	if (!history_limits_ok(limit, head, runs)) {
		errno = EINVAL;
		return -1;
	}
	rebuild = limit != h->limit || head != h->head;
	h->limit = limit;
	h->head = head;
	h->maxruns = runs;
	history_trim(h);
	if (!rebuild)
		return 0;
	/*
	 * NOLINTBEGIN(clang-analyzer-unix.Malloc): TAILQ, see .clang-tidy
	 * (history_trim() freed the first runs; the analyzer takes the new
	 * first for one of them).
	 */
	TAILQ_FOREACH(r, &h->runs, entry)
		history_run_rebuild(h, r);
	/* NOLINTEND(clang-analyzer-unix.Malloc) */
	return 0;
}

/* Bytes read from the console, in the current run. */
void
history_append(struct history *h, const void *p, size_t n)
{
	history_run_append(history_current(h), p, n);
}

/* How many of the bytes [from, to) of r are kept, in the head or the tail. */
static uint64_t
history_run_kept(const struct history_run *r, uint64_t from, uint64_t to)
{
	uint64_t	kept = 0, a, b;

	a = from;
	b = to < r->head_end ? to : r->head_end;
	if (a < b)
		kept += b - a;
	a = from > r->tail_start ? from : r->tail_start;
	if (a < r->head_end)
		a = r->head_end;
	b = to < r->total ? to : r->total;
	if (a < b)
		kept += b - a;
	return kept;
}

/*
 * With HISTORY_GAPS_MAX records and a new loss at r->total (record
 * HISTORY_GAPS_MAX, not stored), the first i whose merge with record
 * i + 1 hides the fewest kept bytes: those between record i's end and
 * record i + 1's start.
 */
static size_t
history_gaps_cheapest(const struct history_run *r)
{
	uint64_t	cost, least = UINT64_MAX, next;
	size_t		i, best = 0;

	for (i = 0; i < HISTORY_GAPS_MAX; i++) {
		next = i + 1 < HISTORY_GAPS_MAX ? r->gaps[i + 1].from :
		    r->total;
		cost = history_run_kept(r, r->gaps[i].to, next);
		if (cost < least) {
			least = cost;
			best = i;
			if (cost == 0)
				break;
		}
	}
	return best;
}

/* Bytes of unknown length were lost here, in the current run. */
void
history_gap(struct history *h)
{
	struct history_run	*r = history_current(h);
	size_t			 i;

	/* A loss where the last gap ends is in that gap already. */
	if (r->ngaps > 0 && r->gaps[r->ngaps - 1].to == r->total)
		return;
	if (r->gaps == NULL)
		r->gaps = xcalloc(HISTORY_GAPS_MAX, sizeof *r->gaps);
	if (r->ngaps == HISTORY_GAPS_MAX) {
		r->gaps_merged++;
		i = history_gaps_cheapest(r);
		if (i == HISTORY_GAPS_MAX - 1) {
			/* The newest record and this loss: one. */
			r->gaps[i].to = r->total;
			return;
		}
		/* Records i and i + 1 become one; what was between is lost. */
		r->gaps[i].to = r->gaps[i + 1].to;
		memmove(r->gaps + i + 1, r->gaps + i + 2,
		    (HISTORY_GAPS_MAX - i - 2) * sizeof *r->gaps);
		r->ngaps--;
	}
	r->gaps[r->ngaps].from = r->gaps[r->ngaps].to = r->total;
	r->ngaps++;
}

/* The guest started again: a new run, whose id is returned. */
uint64_t
history_run_start(struct history *h)
{
	struct history_run	*r;
	uint64_t		 id;

	r = xcalloc(1, sizeof *r);
	r->id = id = history_new_id(h);
	r->head.cap = h->head;
	r->tail.cap = h->limit;
	TAILQ_INSERT_TAIL(&h->runs, r, entry);
	h->nruns++;
	history_trim(h);	/* the oldest: never r, as maxruns >= 1 */
	return id;
}

/*
 * What comes next for a reader at *at: at most max bytes (0: as many as
 * one chunk holds), or a gap, or the end of the run; or an error (the run
 * is not kept, the offset is past the end).  rd->next is where the reader
 * stands after it; at may be &rd->next, so that a reader steps with
 * history_read(h, &rd.next, max, &rd).  Returns rd->item.
 */
enum history_item
history_read(const struct history *h, const struct history_pos *at,
    size_t max, struct history_read *rd)
{
	const struct history_run	*r, *after;
	const struct history_range	*g;
	struct history_pos		 pos = *at;
	uint64_t			 o = pos.offset, end;
	size_t				 i, len;

	memset(rd, 0, sizeof *rd);
	rd->next = pos;
	rd->from = rd->to = o;
	if ((r = history_find(h, pos.run)) == NULL)
		return rd->item = HISTORY_NO_RUN;
	if (o > r->total)
		return rd->item = HISTORY_BEYOND;
	/* i: the first gap after o, once none holds o. */
	for (i = 0; i < r->ngaps && r->gaps[i].from <= o; i++) {
		g = &r->gaps[i];
		if (o < g->to) {
			/* Inside a merged range: told whatever gap_told. */
			rd->to = rd->next.offset = g->to;
			rd->next.gap_told = 1;
			return rd->item = HISTORY_GAP_UNKNOWN;
		}
		if (g->to == o && !pos.gap_told) {	/* a loss at o */
			rd->next.gap_told = 1;
			return rd->item = HISTORY_GAP_UNKNOWN;
		}
	}
	if (o == r->total) {
		if ((after = TAILQ_NEXT(r, entry)) != NULL)
			rd->next_run = after->id;
		return rd->item = HISTORY_END;
	}
	rd->next.gap_told = 0;
	if (o >= r->head_end && o < r->tail_start) {
		rd->to = rd->next.offset = r->tail_start;
		return rd->item = HISTORY_GAP;
	}
	end = o < r->head_end ? r->head_end : r->total;
	if (i < r->ngaps && r->gaps[i].from < end)
		end = r->gaps[i].from;
	rd->data = history_run_at(r, o, &len);
	if (len > end - o)
		len = (size_t)(end - o);
	if (max > 0 && len > max)
		len = max;
	rd->len = len;
	rd->to = rd->next.offset = o + len;
	return rd->item = HISTORY_BYTES;
}

/*
 * Where a reader of the last `bytes` bytes of the current run starts (the
 * tail=BYTES query): the window is cut to the kept bytes that run without
 * a hole or a merged range of unknown gap to the end (it never starts
 * inside a range nor crosses one: a range's end is treated as the hole's
 * end, the bytes before it unknown), then starts just after its first
 * newline, if it has one, so that the reader begins at the start of a
 * line.  A window that already starts a line (at offset 0, or just after a
 * kept newline) is not moved.  Losses at a point are not cut: a reader is
 * told them as it goes.
 */
uint64_t
history_tail_start(const struct history *h, uint64_t bytes)
{
	const struct history_run	*r = history_current(h);
	const char			*p, *nl;
	uint64_t			 first, start, o;
	size_t				 len, i;

	first = r->tail_start > r->head_end ? r->tail_start : 0;
	for (i = r->ngaps; i-- > 0;)
		if (r->gaps[i].from < r->gaps[i].to) {
			if (r->gaps[i].to > first)
				first = r->gaps[i].to;
			break;
		}
	start = bytes < r->total - first ? r->total - bytes : first;
	if (start == r->total || start == 0)
		return start;
	if (start > first) {
		p = history_run_at(r, start - 1, &len);
		if (*p == '\n')
			return start;
	}
	for (o = start; o < r->total; o += len) {
		p = history_run_at(r, o, &len);
		if ((nl = memchr(p, '\n', len)) != NULL)
			return o + (uint64_t)(nl - p) + 1;
	}
	return start;
}

/* The current run's id. */
uint64_t
history_run(const struct history *h)
{
	return history_current(h)->id;
}

/* The offset the next byte of the current run will have. */
uint64_t
history_offset(const struct history *h)
{
	return history_current(h)->total;
}

/* The offset of the oldest byte kept of the current run (the next if none). */
uint64_t
history_oldest(const struct history *h)
{
	const struct history_run	*r = history_current(h);

	return r->head_end > 0 ? 0 : r->tail_start;
}

/* Chunk bytes allocated, all runs together. */
size_t
history_held(const struct history *h)
{
	const struct history_run	*r;
	size_t				 held = 0;

	TAILQ_FOREACH(r, &h->runs, entry)
		held += r->held;
	return held;
}

/*
 * The runs kept, oldest first, the current one last: at most max of them
 * in info; returns how many there are.
 */
size_t
history_runs(const struct history *h, struct history_run_info *info,
    size_t max)
{
	const struct history_run	*r;
	size_t				 n = 0;

	TAILQ_FOREACH(r, &h->runs, entry) {
		if (n < max) {
			info[n].id = r->id;
			info[n].total = r->total;
			info[n].head_end = r->head_end;
			info[n].tail_start = r->tail_start;
			info[n].gaps = r->ngaps;
			info[n].gaps_merged = r->gaps_merged;
			info[n].held = r->held;
		}
		n++;
	}
	return n;
}
