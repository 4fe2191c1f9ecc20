/*
 * bench/malloccount.so: an LD_PRELOAD allocation counter for the
 * benchmark (issue 22: "no allocation per chunk on the hot path").
 *
 *     LD_PRELOAD=build/bench/malloccount.so MALLOCCOUNT_FILE=/tmp/mc \
 *         virtconsoled -d -f CONF
 *
 * It interposes malloc, calloc, realloc, free and the memalign family
 * and passes each call on to glibc's own (__libc_malloc and friends,
 * exported by glibc for exactly this: no dlsym(RTLD_NEXT) bootstrap).
 * Without MALLOCCOUNT_FILE in the environment it counts nothing: each
 * call costs one branch more.
 *
 * With it, the constructor maps that file (created if need be, sized to
 * struct mc_shared) MAP_SHARED, and every call that allocates (malloc,
 * calloc, the memalign family, realloc of NULL or past the block's usable
 * size) adds one to the counter of the shared object that called it,
 * told by __builtin_return_address(0) against the address ranges of the
 * loaded objects (dl_iterate_phdr, walked at start and again when a
 * caller is in no known range).  A reader reads the file at any time,
 * the process need not cooperate: bench/malloccount.py.  The counters are
 * relaxed atomics: libvirt's threads may allocate too.  Nothing here
 * allocates while counting.
 *
 * The attribution is the direct caller's: glib's g_malloc is counted as
 * glib (libvirt allocates through it), a strdup() or asprintf() as libc
 * whoever called it.  MALLOCCOUNT_TRACE=PATH finds the rest: a reader
 * sets trace_left (and trace_mask, buckets by bit, 0 for all) in the
 * file, and the next trace_left allocations of those buckets each append
 * a backtrace (backtrace_symbols_fd; without -rdynamic the daemon's own
 * frames read `virtconsoled(+0x1234)`: addr2line -f -e virtconsoled 0x1234)
 * to PATH.
 *
 * The file's layout (native byte order, x86-64: little-endian), version 1:
 *
 *   offset  size  field
 *        0     8  magic "MALLOCC1"
 *        8     4  version (1)
 *       12     4  nbuckets: buckets in use (<= MC_MAXBUCKETS, 16)
 *       16     8  pid of the last process that mapped it
 *       24     8  frees: free() and realloc(p, 0) of a block
 *       32     8  refreshes: walks of the loaded objects
 *       40     8  trace_left (signed), written by a reader
 *       48     8  trace_mask, written by a reader
 *       56    72  reserved (0)
 *      128   256  names: 16 bytes each, NUL-padded, MC_MAXBUCKETS of them
 *      384   128  allocs: u64 per bucket, allocations
 *      512   128  bytes: u64 per bucket, bytes asked for
 *      640        end
 *
 * Buckets: main (the executable), libevent (libevent*), openssl (libssl,
 * libcrypto), libvirt, glib (libglib, libgobject, libgio), libxml2, libc,
 * other (any other object, ld.so included), unknown (no object).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <link.h>
#include <malloc.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define MC_EXPORT	__attribute__((visibility("default")))
#define MC_MAXBUCKETS	16
#define MC_NAMELEN	16
#define MC_MAXRANGES	256
#define MC_TRACEDEPTH	24

/* glibc's allocator under its own names (glibc 2.36 exports them). */
extern void	*__libc_malloc(size_t);
extern void	*__libc_calloc(size_t, size_t);
extern void	*__libc_realloc(void *, size_t);
extern void	*__libc_memalign(size_t, size_t);
extern void	*__libc_valloc(size_t);
extern void	*__libc_pvalloc(size_t);
extern void	 __libc_free(void *);

enum mc_bucket {
	MC_MAIN,
	MC_LIBEVENT,
	MC_OPENSSL,
	MC_LIBVIRT,
	MC_GLIB,
	MC_LIBXML2,
	MC_LIBC,
	MC_OTHER,
	MC_UNKNOWN,
	MC_NBUCKETS
};

static const char *const mc_names[MC_NBUCKETS] = {
	[MC_MAIN] = "main",
	[MC_LIBEVENT] = "libevent",
	[MC_OPENSSL] = "openssl",
	[MC_LIBVIRT] = "libvirt",
	[MC_GLIB] = "glib",
	[MC_LIBXML2] = "libxml2",
	[MC_LIBC] = "libc",
	[MC_OTHER] = "other",
	[MC_UNKNOWN] = "unknown",
};

/* The file, as the comment at the top lays it out. */
struct mc_shared {
	char		magic[8];
	uint32_t	version;
	uint32_t	nbuckets;
	uint64_t	pid;
	uint64_t	frees;
	uint64_t	refreshes;
	int64_t		trace_left;
	uint64_t	trace_mask;
	uint64_t	reserved[9];
	char		names[MC_MAXBUCKETS][MC_NAMELEN];
	uint64_t	allocs[MC_MAXBUCKETS];
	uint64_t	bytes[MC_MAXBUCKETS];
};

_Static_assert(MC_NBUCKETS <= MC_MAXBUCKETS, "too many buckets");
_Static_assert(offsetof(struct mc_shared, names) == 128, "layout");
_Static_assert(offsetof(struct mc_shared, allocs) == 384, "layout");
_Static_assert(sizeof(struct mc_shared) == 640, "layout");

/* One loaded object's span, from its lowest to its highest PT_LOAD. */
struct mc_range {
	uintptr_t	lo;
	uintptr_t	hi;
	int		bucket;
};

static struct mc_shared	*mc;		/* set once, before main() */
static int		 mc_trace_fd = -1;
/* Append-only: an entry is written before mc_nranges counts it. */
static struct mc_range	 mc_ranges[MC_MAXRANGES];
static unsigned int	 mc_nranges;
static int		 mc_walking;	/* one walker at a time */
static int		 mc_tracing;	/* one backtrace at a time */
static unsigned long long mc_adds;	/* dlpi_adds at the last walk */
/* Set while this thread counts: what the counting calls is not counted. */
static __thread int	 mc_busy __attribute__((tls_model("initial-exec")));

static int
mc_classify(const char *path, int first)
{
	const char	*base;

	if (first)
		return MC_MAIN;		/* dl_iterate_phdr gives it first */
	base = strrchr(path, '/');
	base = base != NULL ? base + 1 : path;
	if (strncmp(base, "libevent", 8) == 0)
		return MC_LIBEVENT;
	if (strncmp(base, "libssl.", 7) == 0 ||
	    strncmp(base, "libcrypto.", 10) == 0)
		return MC_OPENSSL;
	if (strncmp(base, "libvirt", 7) == 0)
		return MC_LIBVIRT;
	if (strncmp(base, "libglib-", 8) == 0 ||
	    strncmp(base, "libgobject-", 11) == 0 ||
	    strncmp(base, "libgio-", 7) == 0)
		return MC_GLIB;
	if (strncmp(base, "libxml2.", 8) == 0)
		return MC_LIBXML2;
	if (strncmp(base, "libc.", 5) == 0)
		return MC_LIBC;
	return MC_OTHER;
}

static int
mc_walk_one(struct dl_phdr_info *info, size_t size, void *arg)
{
	int		*first = arg;
	uintptr_t	 lo = UINTPTR_MAX, hi = 0, a;
	unsigned int	 i, n;
	int		 was_first = *first;

	*first = 0;
	if (was_first && size >= offsetof(struct dl_phdr_info, dlpi_subs) &&
	    info->dlpi_adds == mc_adds && mc_nranges > 0)
		return 1;	/* nothing loaded since the last walk */
	if (was_first && size >= offsetof(struct dl_phdr_info, dlpi_subs))
		mc_adds = info->dlpi_adds;
	for (i = 0; i < info->dlpi_phnum; i++) {
		if (info->dlpi_phdr[i].p_type != PT_LOAD)
			continue;
		a = info->dlpi_addr + info->dlpi_phdr[i].p_vaddr;
		if (a < lo)
			lo = a;
		if (a + info->dlpi_phdr[i].p_memsz > hi)
			hi = a + info->dlpi_phdr[i].p_memsz;
	}
	if (hi == 0)
		return 0;
	n = __atomic_load_n(&mc_nranges, __ATOMIC_ACQUIRE);
	for (i = 0; i < n; i++)
		if (mc_ranges[i].lo == lo && mc_ranges[i].hi == hi)
			return 0;
	if (n == MC_MAXRANGES)
		return 1;
	mc_ranges[n].lo = lo;
	mc_ranges[n].hi = hi;
	mc_ranges[n].bucket = mc_classify(info->dlpi_name, was_first);
	__atomic_store_n(&mc_nranges, n + 1, __ATOMIC_RELEASE);
	return 0;
}

/* Walk the loaded objects, unless another thread is at it. */
static void
mc_walk(void)
{
	int	first = 1;

	if (__atomic_exchange_n(&mc_walking, 1, __ATOMIC_ACQUIRE))
		return;
	(void)dl_iterate_phdr(mc_walk_one, &first);
	__atomic_fetch_add(&mc->refreshes, 1, __ATOMIC_RELAXED);
	__atomic_store_n(&mc_walking, 0, __ATOMIC_RELEASE);
}

static int
mc_lookup(uintptr_t pc)
{
	unsigned int	i, n;

	n = __atomic_load_n(&mc_nranges, __ATOMIC_ACQUIRE);
	for (i = 0; i < n; i++)
		if (pc >= mc_ranges[i].lo && pc < mc_ranges[i].hi)
			return mc_ranges[i].bucket;
	return -1;
}

/*
 * Append a backtrace of this allocation to the trace file, from the
 * interposed function on (not inlined: the two frames skipped are this
 * one and mc_count()'s).
 */
static __attribute__((noinline)) void
mc_trace(const char *fn, size_t n, int b)
{
	void	*frames[MC_TRACEDEPTH];
	char	 line[96];
	int	 depth, len;
	ssize_t	 w = 0;

	if (__atomic_exchange_n(&mc_tracing, 1, __ATOMIC_ACQUIRE))
		return;
	depth = backtrace(frames, MC_TRACEDEPTH);
	len = snprintf(line, sizeof(line), "malloccount: %s(%zu) by %s\n",
	    fn, n, mc_names[b]);
	if (len > 0)
		w = write(mc_trace_fd, line, (size_t)len);
	(void)w;	/* a lost trace line is no reason to stop */
	if (depth > 2)
		backtrace_symbols_fd(frames + 2, depth - 2, mc_trace_fd);
	__atomic_store_n(&mc_tracing, 0, __ATOMIC_RELEASE);
}

static __attribute__((noinline)) void
mc_count(const void *caller, const char *fn, size_t n)
{
	int		b;
	uint64_t	mask;

	if (mc_busy)
		return;
	mc_busy = 1;
	b = mc_lookup((uintptr_t)caller);
	if (b < 0) {
		mc_walk();
		b = mc_lookup((uintptr_t)caller);
		if (b < 0)
			b = MC_UNKNOWN;
	}
	__atomic_fetch_add(&mc->allocs[b], 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&mc->bytes[b], (uint64_t)n, __ATOMIC_RELAXED);
	if (mc_trace_fd != -1 &&
	    __atomic_load_n(&mc->trace_left, __ATOMIC_RELAXED) > 0) {
		mask = __atomic_load_n(&mc->trace_mask, __ATOMIC_RELAXED);
		if ((mask == 0 || (mask & (1ULL << b)) != 0) &&
		    __atomic_fetch_sub(&mc->trace_left, 1, __ATOMIC_RELAXED) > 0)
			mc_trace(fn, n, b);
	}
	mc_busy = 0;
}

/* Map MALLOCCOUNT_FILE; leave mc NULL (count nothing) on any failure. */
__attribute__((constructor)) static void
mc_init(void)
{
	struct mc_shared	*m;
	const char		*path, *trace;
	void			*frames[2];
	unsigned int		 i;
	int			 fd;

	path = getenv("MALLOCCOUNT_FILE");
	if (path == NULL || *path == '\0')
		return;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd == -1)
		return;
	if (ftruncate(fd, (off_t)sizeof(*m)) == -1) {
		close(fd);
		return;
	}
	m = mmap(NULL, sizeof(*m), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (m == MAP_FAILED)
		return;
	if (memcmp(m->magic, "MALLOCC1", 8) != 0) {
		memset(m, 0, sizeof(*m));
		m->version = 1;
		m->nbuckets = MC_NBUCKETS;
		for (i = 0; i < MC_NBUCKETS; i++)
			(void)snprintf(m->names[i], MC_NAMELEN, "%s",
			    mc_names[i]);
		memcpy(m->magic, "MALLOCC1", 8);
	}
	m->pid = (uint64_t)getpid();
	trace = getenv("MALLOCCOUNT_TRACE");
	if (trace != NULL && *trace != '\0') {
		mc_trace_fd = open(trace, O_WRONLY | O_CREAT | O_APPEND |
		    O_CLOEXEC, 0644);
		/* backtrace() loads libgcc_s, allocating, on its first use. */
		if (mc_trace_fd != -1)
			(void)backtrace(frames, 2);
	}
	mc = m;
	mc_busy = 1;
	mc_walk();
	mc_busy = 0;
}

/*
 * The body of an interposer that returns a block: glibc's call, then the
 * count, by the caller of the function it expands in.
 */
#define MC_ALLOC(call, fn, n) do {					\
	void	*p_ = (call);						\
									\
	if (__builtin_expect(mc != NULL, 0) && p_ != NULL)		\
		mc_count(__builtin_return_address(0), (fn), (n));	\
	return p_;							\
} while (0)

MC_EXPORT void *
malloc(size_t n)
{
	MC_ALLOC(__libc_malloc(n), "malloc", n);
}

MC_EXPORT void *
calloc(size_t k, size_t n)
{
	MC_ALLOC(__libc_calloc(k, n), "calloc", k * n);
}

/* An allocation when it makes a block or outgrows the one it has. */
MC_EXPORT void *
realloc(void *old, size_t n)
{
	size_t	 had;
	void	*p;

	if (__builtin_expect(mc == NULL, 1))
		return __libc_realloc(old, n);
	had = old != NULL ? malloc_usable_size(old) : 0;
	p = __libc_realloc(old, n);
	if (old != NULL && n == 0)
		__atomic_fetch_add(&mc->frees, 1, __ATOMIC_RELAXED);
	else if (p != NULL && (old == NULL || n > had))
		mc_count(__builtin_return_address(0), "realloc", n);
	return p;
}

MC_EXPORT void
free(void *p)
{
	if (__builtin_expect(mc != NULL, 0) && p != NULL)
		__atomic_fetch_add(&mc->frees, 1, __ATOMIC_RELAXED);
	__libc_free(p);
}

MC_EXPORT void *
memalign(size_t align, size_t n)
{
	MC_ALLOC(__libc_memalign(align, n), "memalign", n);
}

MC_EXPORT void *
aligned_alloc(size_t align, size_t n)
{
	MC_ALLOC(__libc_memalign(align, n), "aligned_alloc", n);
}

MC_EXPORT int
posix_memalign(void **out, size_t align, size_t n)
{
	void	*p;

	/* A power of two, and a multiple of sizeof(void *). */
	if (align % sizeof(void *) != 0 || (align & (align - 1)) != 0 ||
	    align == 0)
		return EINVAL;
	p = __libc_memalign(align, n);
	if (p == NULL)
		return ENOMEM;
	if (__builtin_expect(mc != NULL, 0))
		mc_count(__builtin_return_address(0), "posix_memalign", n);
	*out = p;
	return 0;
}

MC_EXPORT void *
valloc(size_t n)
{
	MC_ALLOC(__libc_valloc(n), "valloc", n);
}

MC_EXPORT void *
pvalloc(size_t n)
{
	MC_ALLOC(__libc_pvalloc(n), "pvalloc", n);
}
