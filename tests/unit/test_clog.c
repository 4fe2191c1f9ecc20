/*
 * Unit tests of the console log files (src/clog.c), in a mkdtemp directory
 * under /tmp, removed at the end: the layout and the modes (umask 022, so
 * that 0700 and 0600 are seen to be explicit), the first line, markers on
 * lines of their own, timestamps at each line start and only there,
 * rotation with keep=3 over ~10 KB in odd-sized pieces (the kept files
 * minus their markers are the newest bytes written, byte-exact) and with
 * keep=0, a reopen after the file was renamed away, symbolic links at the
 * file and at the guest directory (never followed, counted as errors),
 * bad names, logs off, a new directory, a file continued after a restart,
 * the refusals of clog_configure, and short and failed writes (through
 * RLIMIT_FSIZE, raw and cut inside a timestamp) and the marker that then
 * counts the bytes not logged.
 * No event loop: milliseconds.
 */
#include <sys/resource.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "virtconsoled.h"
#include "tap.h"

static char	top[64];	/* the mkdtemp directory */
static char	logs[128];	/* console_log_dir */

/* ------------------------------------------------------------ helpers */

static const char *
pathf(const char *fmt, ...) VCD_PRINTF(1, 2);

/* A path in one of a few rotating buffers. */
static const char *
pathf(const char *fmt, ...)
{
	static char	 bufs[32][512];
	static unsigned	 slot;
	char		*b = bufs[slot++ % 32];
	va_list		 ap;

	va_start(ap, fmt);
	vsnprintf(b, sizeof bufs[0], fmt, ap);
	va_end(ap);
	return b;
}

/* The whole file, NUL-terminated (it may hold other NULs); NULL if none. */
static char *
slurp(const char *path, size_t *lenp)
{
	char	*buf = NULL;
	size_t	 len = 0, size = 0;
	ssize_t	 n;
	int	 fd;

	*lenp = 0;
	if ((fd = open(path, O_RDONLY | O_NOFOLLOW)) == -1)
		return NULL;
	for (;;) {
		if (size - len < 4097) {
			size = size == 0 ? 8192 : size * 2;
			buf = xrealloc(buf, size);
		}
		n = read(fd, buf + len, size - len - 1);
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	buf[len] = '\0';
	*lenp = len;
	return buf;
}

static void
spew(const char *path, const char *s)
{
	int	fd;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd == -1 || write(fd, s, strlen(s)) != (ssize_t)strlen(s))
		fatal("spew %s", path);
	close(fd);
}

/* A time where "@T" stands in the pattern: YYYY-MM-DDTHH:MM:SSZ. */
static int
is_stamp(const char *s)
{
	static const char	shape[] = "dddd-dd-ddTdd:dd:ddZ";
	size_t			i;

	for (i = 0; shape[i] != '\0'; i++) {
		if (shape[i] == 'd' ? s[i] < '0' || s[i] > '9' :
		    s[i] != shape[i])
			return 0;
	}
	return 1;
}

/* The first 4 bytes of a time: the year, all a cut may leave of it. */
static int
is_stamp_prefix(const char *s)
{
	return s[0] >= '0' && s[0] <= '9' && s[1] >= '0' && s[1] <= '9' &&
	    s[2] >= '0' && s[2] <= '9' && s[3] >= '0' && s[3] <= '9';
}

/*
 * 1 if the file's bytes are the pattern, each "@T" in it one UTC time;
 * otherwise the file is printed as a diagnostic.
 */
static int
matches(const char *path, const char *pat)
{
	char	*got;
	size_t	 len, g = 0, p = 0;
	int	 same = 1;

	if ((got = slurp(path, &len)) == NULL) {
		printf("# %s: %s\n", path, strerror(errno));
		return 0;
	}
	while (pat[p] != '\0' && same) {
		if (pat[p] == '@' && pat[p + 1] == 'T') {
			if (len - g < 20 || !is_stamp(got + g))
				same = 0;
			g += 20;
			p += 2;
		} else if (g < len && got[g] == pat[p]) {
			g++;
			p++;
		} else
			same = 0;
	}
	if (g != len)
		same = 0;
	if (!same)
		printf("# %s holds \"%s\"\n", path, log_esc_len(got, len));
	free(got);
	return same;
}

static int
mode_of(const char *path, mode_t *mode)
{
	struct stat	st;

	if (fstatat(AT_FDCWD, path, &st, AT_SYMLINK_NOFOLLOW) == -1)
		return -1;
	*mode = st.st_mode;
	return 0;
}

static int
exists(const char *path)
{
	struct stat	st;

	return fstatat(AT_FDCWD, path, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

static long long
size_of(const char *path)
{
	struct stat	st;

	if (fstatat(AT_FDCWD, path, &st, AT_SYMLINK_NOFOLLOW) == -1)
		return -1;
	return (long long)st.st_size;
}

static void
configure(const char *dir, int timestamps, uint64_t max, unsigned int keep)
{
	struct clog_config	cfg = { dir, timestamps, max, keep };
	char			err[256];

	if (clog_configure(&cfg, err, sizeof err) == -1)
		fatalx("clog_configure: %s", err);
}

static void
put(struct clog *c, const char *s)
{
	clog_write(c, s, strlen(s));
}

#define OPENED(name, alias) \
	"[-- virtconsoled @T log opened name=" name " hypervisor=qemu " \
	"uuid=u1 console=" alias " --]\n"

/* -------------------------------------------------------------- tests */

static void
test_layout(void)
{
	struct clog	*c;
	mode_t		 m;

	configure(logs, 0, 0, 0);
	ok(mode_of(logs, &m) == 0 && S_ISDIR(m) && (m & 07777) == 0700,
	    "layout: clog_configure creates DIR 0700 (umask 022)");
	c = clog_new("qemu", "u1", "serial0", "web\x01 \"1\"");
	ok(c != NULL, "layout: clog_new");
	ok(!exists(pathf("%s/qemu", logs)),
	    "layout: nothing is created before the first write");
	put(c, "hello\n");
	ok(mode_of(pathf("%s/qemu", logs), &m) == 0 && S_ISDIR(m) &&
	    (m & 07777) == 0700, "layout: DIR/HYPERVISOR is 0700");
	ok(mode_of(pathf("%s/qemu/u1", logs), &m) == 0 && S_ISDIR(m) &&
	    (m & 07777) == 0700, "layout: DIR/HYPERVISOR/UUID is 0700");
	ok(mode_of(pathf("%s/qemu/u1/serial0.log", logs), &m) == 0 &&
	    S_ISREG(m) && (m & 07777) == 0600,
	    "layout: DIR/HYPERVISOR/UUID/ALIAS.log is a regular file 0600");
	ok(matches(pathf("%s/qemu/u1/serial0.log", logs),
	    OPENED("web\\x01 \\x221\\x22", "serial0") "hello\n"),
	    "first line: the log opened marker, the name escaped, then the "
	    "guest's bytes as they are");
	clog_free(c);
}

static void
test_markers(void)
{
	struct clog	*c;

	configure(logs, 0, 0, 0);
	c = clog_new("qemu", "u1", "mark", "g");
	put(c, "abc");
	clog_mark(c, "x %d", 1);
	put(c, "def\n");
	clog_mark(c, "y");
	put(c, "\x1b[0m\r\n");
	clog_mark(c, "two\nlines\x7f");
	ok(matches(pathf("%s/qemu/u1/mark.log", logs),
	    OPENED("g", "mark") "abc\n[-- virtconsoled @T x 1 --]\n"
	    "def\n[-- virtconsoled @T y --]\n\x1b[0m\r\n"
	    "[-- virtconsoled @T two\\x0alines\\x7f --]\n"),
	    "markers: on lines of their own, a \\n first only mid-line; "
	    "guest bytes raw; control bytes in a marker escaped");
	clog_free(c);
}

static void
test_timestamps(void)
{
	struct clog	*c;

	configure(logs, 1, 0, 0);
	c = clog_new("qemu", "u1", "ts", "g");
	put(c, "ab");
	put(c, "c\nd");
	put(c, "\n");
	put(c, "e");
	clog_mark(c, "m");
	put(c, "f\n\ng");
	ok(matches(pathf("%s/qemu/u1/ts.log", logs),
	    OPENED("g", "ts") "@T abc\n@T d\n@T e\n[-- virtconsoled @T m --]\n"
	    "@T f\n@T \n@T g"),
	    "timestamps: one at each line start (file start, after a marker, "
	    "an empty line), none inside a line split over writes");
	clog_free(c);
	configure(logs, 0, 0, 0);
}

/* Guest bytes for rotation: printable, a newline now and then. */
static char
rot_byte(size_t o)
{
	return o % 37 == 36 ? '\n' : (char)('a' + (o * 7) % 26);
}

/* The file minus its first line, which must be the log opened marker. */
static char *
body(const char *path, const char *alias, size_t *lenp)
{
	char	*got, *nl, want[128];
	size_t	 len, skip;

	*lenp = 0;
	if ((got = slurp(path, &len)) == NULL)
		return NULL;
	snprintf(want, sizeof want, " log opened name=g hypervisor=qemu "
	    "uuid=u1 console=%s --]", alias);
	nl = memchr(got, '\n', len);
	if (strncmp(got, "[-- virtconsoled ", 17) != 0 || len < 37 ||
	    !is_stamp(got + 17) || nl == NULL ||
	    (size_t)(nl - got) != 37 + strlen(want) ||
	    memcmp(got + 37, want, strlen(want)) != 0) {
		printf("# %s does not start with its marker\n", path);
		free(got);
		return NULL;
	}
	skip = (size_t)(nl - got) + 1;
	/* No other marker line may be in there. */
	if (memmem(got + skip, len - skip, "[-- virtconsoled", 16) != NULL) {
		printf("# %s holds another marker\n", path);
		free(got);
		return NULL;
	}
	memmove(got, got + skip, len - skip);
	*lenp = len - skip;
	return got;
}

static void
test_rotation(void)
{
	struct clog	*c;
	char		*all, *joined, *b;
	size_t		 total = 0, n, piece = 1, i, jlen = 0, blen;
	int		 k, good = 1, sizes = 1;
	long long	 sz;

	configure(logs, 0, 1000, 3);
	c = clog_new("qemu", "u1", "rot", "g");
	all = xmalloc(12000);
	while (total < 10000) {
		n = piece;
		for (i = 0; i < n; i++)
			all[total + i] = rot_byte(total + i);
		clog_write(c, all + total, n);
		total += n;
		piece = piece * 5 % 97 + 1;	/* 1..97, odd sizes mostly */
	}
	ok(exists(pathf("%s/qemu/u1/rot.log", logs)) &&
	    exists(pathf("%s/qemu/u1/rot.log.1", logs)) &&
	    exists(pathf("%s/qemu/u1/rot.log.2", logs)) &&
	    exists(pathf("%s/qemu/u1/rot.log.3", logs)),
	    "rotation: ALIAS.log and ALIAS.log.1 .. .3 exist");
	ok(!exists(pathf("%s/qemu/u1/rot.log.4", logs)),
	    "rotation: keep=3 keeps no ALIAS.log.4");
	for (k = 1; k <= 3; k++) {
		sz = size_of(pathf("%s/qemu/u1/rot.log.%d", logs, k));
		if (sz < 1000 || sz >= 1000 + 97)
			sizes = 0;
	}
	ok(sizes, "rotation: each rotated file reached max=1000 and went "
	    "past it by less than one write");
	ok(size_of(pathf("%s/qemu/u1/rot.log", logs)) < 1000 + 97,
	    "rotation: the current file is below max plus one write");

	joined = xmalloc(12000);
	for (k = 3; k >= 0 && good; k--) {
		b = body(k == 0 ? pathf("%s/qemu/u1/rot.log", logs) :
		    pathf("%s/qemu/u1/rot.log.%d", logs, k), "rot", &blen);
		if (b == NULL || jlen + blen > 12000) {
			good = 0;
			free(b);
			break;
		}
		memcpy(joined + jlen, b, blen);
		jlen += blen;
		free(b);
	}
	ok(good, "rotation: every file starts with its own log opened "
	    "marker and has no other");
	ok(good && jlen > 3000 && jlen <= total &&
	    memcmp(joined, all + total - jlen, jlen) == 0,
	    "rotation: the kept files oldest to newest, minus markers, are "
	    "the newest %zu of %zu bytes written, byte-exact", jlen, total);
	free(joined);
	free(all);
	clog_free(c);

	/* keep = 0: the full file is removed. */
	configure(logs, 0, 200, 0);
	c = clog_new("qemu", "u1", "k0", "g");
	all = xmalloc(1000);
	for (i = 0; i < 1000; i++)
		all[i] = rot_byte(i);
	for (i = 0; i < 1000; i += 50)
		clog_write(c, all + i, 50);
	ok(exists(pathf("%s/qemu/u1/k0.log", logs)) &&
	    !exists(pathf("%s/qemu/u1/k0.log.1", logs)),
	    "rotation: keep=0 keeps ALIAS.log alone");
	b = body(pathf("%s/qemu/u1/k0.log", logs), "k0", &blen);
	ok(b != NULL && blen > 0 && blen < 200 && blen % 50 == 0 &&
	    memcmp(b, all + 1000 - blen, blen) == 0,
	    "rotation: keep=0: the file holds the newest bytes (%zu)", blen);
	free(b);
	free(all);
	clog_free(c);

	/* Timestamps across rotation: a new file's first line is stamped. */
	configure(logs, 1, 60, 1);
	c = clog_new("qemu", "u1", "tr", "g");
	put(c, "0123456789abcdefghijklmnopqrstuvwxyz0123456789");
	put(c, "ABCDEFGHIJ\nKL");
	ok(matches(pathf("%s/qemu/u1/tr.log.1", logs), OPENED("g", "tr")
	    "@T 0123456789abcdefghijklmnopqrstuvwxyz0123456789") &&
	    matches(pathf("%s/qemu/u1/tr.log", logs), OPENED("g", "tr")
	    "@T ABCDEFGHIJ\n@T KL"),
	    "rotation with timestamps: the continued line is stamped again "
	    "after the new file's marker");
	clog_free(c);
	configure(logs, 0, 0, 0);
}

static void
test_reopen(void)
{
	struct clog	*c;
	const char	*cur = pathf("%s/qemu/u1/ro.log", logs);
	const char	*moved = pathf("%s/qemu/u1/ro.log.moved", logs);

	configure(logs, 0, 0, 0);
	c = clog_new("qemu", "u1", "ro", "g");
	put(c, "one\n");
	ok(rename(cur, moved) == 0, "reopen: the log is renamed away");
	put(c, "two\n");
	clog_reopen();
	put(c, "three\n");
	ok(matches(moved, OPENED("g", "ro") "one\ntwo\n"),
	    "reopen: the renamed file got the writes before the reopen only");
	ok(matches(cur, OPENED("g", "ro") "three\n"),
	    "reopen: a new ALIAS.log, with its first line");

	/* clog_close: nothing written, the next write opens it again. */
	clog_close(c);
	put(c, "four");
	clog_close(c);
	clog_mark(c, "after");
	ok(matches(cur, OPENED("g", "ro") "three\nfour\n"
	    "[-- virtconsoled @T after --]\n"),
	    "close: writes nothing; the next write continues the file and "
	    "knows from its last byte that it ended mid-line");
	clog_free(c);
}

static void
test_symlinks(void)
{
	struct clog	*c;
	const char	*outside = pathf("%s/outside", top);
	const char	*elsewhere = pathf("%s/elsewhere", top);
	char		*got;
	size_t		 len;
	uint64_t	 e0;
	mode_t		 m;

	configure(logs, 0, 0, 0);
	spew(outside, "secret\n");
	ok(symlink(outside, pathf("%s/qemu/u1/evil.log", logs)) == 0,
	    "symlink: planted at ALIAS.log");
	e0 = clog_errors();
	c = clog_new("qemu", "u1", "evil", "g");
	put(c, "x");
	clog_mark(c, "m");
	got = slurp(outside, &len);
	ok(got != NULL && len == 7 && memcmp(got, "secret\n", 7) == 0,
	    "symlink: the target outside is untouched");
	free(got);
	ok(mode_of(pathf("%s/qemu/u1/evil.log", logs), &m) == 0 &&
	    S_ISLNK(m), "symlink: the link is left as it is");
	ok(clog_errors() > e0, "symlink: clog_errors() grows (%llu -> %llu)",
	    (unsigned long long)e0, (unsigned long long)clog_errors());

	/* The link removed and a reopen asked: the missed byte is told. */
	unlink(pathf("%s/qemu/u1/evil.log", logs));
	clog_reopen();
	put(c, "yz\n");
	ok(matches(pathf("%s/qemu/u1/evil.log", logs), OPENED("g", "evil")
	    "[-- virtconsoled @T 1 bytes not logged --]\nyz\n"),
	    "lost: the next good write first says 1 bytes not logged");
	clog_free(c);

	/* A link as the guest's directory. */
	ok(mkdir(elsewhere, 0700) == 0 &&
	    symlink(elsewhere, pathf("%s/qemu/ulink", logs)) == 0,
	    "symlink: planted as DIR/HYPERVISOR/UUID");
	e0 = clog_errors();
	c = clog_new("qemu", "ulink", "serial0", "g");
	put(c, "x\n");
	ok(!exists(pathf("%s/serial0.log", elsewhere)),
	    "symlink: a UUID directory that is a link is not followed");
	ok(clog_errors() == e0 + 1,
	    "symlink: one error for it (the retry waits a second)");
	clog_free(c);
}

static void
test_names(void)
{
	static const char *const bad[] = { "../x", "", ".", "..", "a/b" };
	size_t			 i;
	int			 refused = 1;

	configure(logs, 0, 0, 0);
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		if (clog_new("qemu", "u1", bad[i], "g") != NULL ||
		    clog_new("qemu", bad[i], "serial0", "g") != NULL ||
		    clog_new(bad[i], "u1", "serial0", "g") != NULL)
			refused = 0;
	}
	ok(refused, "names: \"../x\", \"\", \".\", \"..\" and \"a/b\" are "
	    "refused as hypervisor, uuid and alias");
	ok(!exists(pathf("%s/qemu/x.log", logs)) &&
	    !exists(pathf("%s/x.log", logs)), "names: nothing was created");
}

static void
test_off_and_move(void)
{
	struct clog	*c;
	const char	*logs2 = pathf("%s/logs2", top);
	const char	*f1 = pathf("%s/qemu/u1/mv.log", logs);
	const char	*f2 = pathf("%s/qemu/u1/mv.log", logs2);
	uint64_t	 e0;

	configure(logs, 0, 0, 0);
	c = clog_new("qemu", "u1", "mv", "g");
	put(c, "a\n");
	e0 = clog_errors();
	configure(NULL, 0, 0, 0);
	put(c, "lost in the void\n");
	clog_mark(c, "nothing");
	ok(matches(f1, OPENED("g", "mv") "a\n") && clog_errors() == e0,
	    "off: with dir NULL writes and marks are no-ops, not errors");
	configure(logs, 0, 0, 0);
	put(c, "b\n");
	ok(matches(f1, OPENED("g", "mv") "a\nb\n"),
	    "off: logs on again: the same file continues, nothing owed");
	configure(logs2, 0, 0, 0);
	put(c, "c\n");
	ok(matches(f2, OPENED("g", "mv") "c\n") &&
	    matches(f1, OPENED("g", "mv") "a\nb\n"),
	    "move: a new dir takes the next write; the old file is left");
	clog_free(c);
}

static void
test_append(void)
{
	struct clog	*c;
	const char	*f = pathf("%s/qemu/u1/ap.log", logs);

	configure(logs, 0, 0, 0);
	c = clog_new("qemu", "u1", "ap", "g");
	put(c, "first\n");
	clog_free(c);
	c = clog_new("qemu", "u1", "ap", "g");
	put(c, "second");
	clog_free(c);
	c = clog_new("qemu", "u1", "ap", "g");
	clog_mark(c, "restart");
	clog_free(c);
	ok(matches(f, OPENED("g", "ap") "first\nsecond\n"
	    "[-- virtconsoled @T restart --]\n"),
	    "append: a new object continues an existing file (no second "
	    "first line), and its last byte says whether a line is open");
}

static void
test_configure(void)
{
	struct clog_config	 cfg = { NULL, 0, 0, 0 };
	struct clog		*c;
	char			 err[256];
	const char		*lnk = pathf("%s/loglink", top);
	const char		*reg = pathf("%s/regular", top);

	configure(logs, 0, 0, 0);
	c = clog_new("qemu", "u1", "cf", "g");
	ok(symlink(logs, lnk) == 0, "configure: a link to DIR");
	cfg.dir = lnk;
	err[0] = '\0';
	ok(clog_configure(&cfg, err, sizeof err) == -1 &&
	    strstr(err, "symbolic link") != NULL,
	    "configure: DIR a symbolic link is refused: %s", err);
	spew(reg, "");
	cfg.dir = reg;
	err[0] = '\0';
	ok(clog_configure(&cfg, err, sizeof err) == -1 &&
	    strstr(err, "not a directory") != NULL,
	    "configure: DIR a file is refused: %s", err);
	cfg.dir = logs;
	cfg.keep = CLOG_KEEP_MAX + 1;
	err[0] = '\0';
	ok(clog_configure(&cfg, err, sizeof err) == -1 && err[0] != '\0',
	    "configure: keep above CLOG_KEEP_MAX is refused: %s", err);
	put(c, "still\n");
	ok(matches(pathf("%s/qemu/u1/cf.log", logs), OPENED("g", "cf")
	    "still\n"), "configure: after refusals the old one holds");
	clog_free(c);
}

/*
 * Short and failed writes, made by RLIMIT_FSIZE: a write that crosses the
 * limit is cut at it, one past it fails with EFBIG (SIGXFSZ ignored).  The
 * limit is far above what this test's own output reaches.
 */
#define FSIZE	200000
static void
test_short(void)
{
	struct clog	*c;
	struct rlimit	 old, lim;
	const char	*want = "\n[-- virtconsoled 2026-12-04T17:13:02Z "
			    "8 bytes not logged --]\nok\n";
	char		*big, *got;
	size_t		 head, len, wl;
	uint64_t	 e0;
	int		 okay;

	configure(logs, 0, 0, 0);
	c = clog_new("qemu", "u1", "sw", "g");
	put(c, "x");	/* the first line */
	head = (size_t)size_of(pathf("%s/qemu/u1/sw.log", logs));
	big = xmalloc(FSIZE);
	memset(big, 'b', FSIZE);
	if (getrlimit(RLIMIT_FSIZE, &old) == -1) {
		tap_skip("short writes: getrlimit: %s", strerror(errno));
		free(big);
		clog_free(c);
		return;
	}
	signal(SIGXFSZ, SIG_IGN);
	lim = old;
	lim.rlim_cur = FSIZE;
	if (setrlimit(RLIMIT_FSIZE, &lim) == -1) {
		tap_skip("short writes: setrlimit: %s", strerror(errno));
		free(big);
		clog_free(c);
		return;
	}
	e0 = clog_errors();
	/* Room for 10 bytes is left: of the next 15, 5 are cut. */
	clog_write(c, big, FSIZE - head - 10);
	clog_write(c, "0123456789\n1234", 15);
	clog_write(c, "zzz", 3);
	setrlimit(RLIMIT_FSIZE, &old);
	ok(clog_errors() == e0 + 2,
	    "short: a short write and a failed one are 2 errors");
	clog_write(c, "ok\n", 3);
	got = slurp(pathf("%s/qemu/u1/sw.log", logs), &len);
	wl = strlen(want);
	okay = got != NULL && len == FSIZE + wl &&
	    memcmp(got + FSIZE - 10, "0123456789", 10) == 0 &&
	    memcmp(got + FSIZE, "\n[-- virtconsoled ", 18) == 0 &&
	    is_stamp(got + FSIZE + 18) &&
	    memcmp(got + FSIZE + 38, want + 38, wl - 38) == 0;
	ok(okay, "short: the cut write's tail (5) and the failed write (3) "
	    "are told as 8 bytes not logged, on a line of their own");
	if (!okay && got != NULL && len >= FSIZE - 10)
		printf("# tail \"%s\"\n", log_esc_len(got + FSIZE - 10,
		    len - (FSIZE - 10)));
	free(got);
	clog_free(c);

	/*
	 * Stamped: the cut falls inside the timestamp of the second line,
	 * so of "01234\n6789abc" 6 bytes are written and 7 lost, then "zz".
	 */
	configure(logs, 1, 0, 0);
	c = clog_new("qemu", "u1", "st", "g");
	put(c, "x\n");
	head = (size_t)size_of(pathf("%s/qemu/u1/st.log", logs));
	setrlimit(RLIMIT_FSIZE, &lim);
	clog_write(c, big, FSIZE - head - 21 - 10);
	put(c, "01234\n6789abc");
	put(c, "zz");
	setrlimit(RLIMIT_FSIZE, &old);
	put(c, "ok\n");
	got = slurp(pathf("%s/qemu/u1/st.log", logs), &len);
	want = " 9 bytes not logged --]\n";
	wl = strlen(want);
	okay = got != NULL && len == FSIZE + 1 + 37 + wl + 24 &&
	    memcmp(got + FSIZE - 10, "01234\n", 6) == 0 &&
	    is_stamp_prefix(got + FSIZE - 4) &&
	    memcmp(got + FSIZE, "\n[-- virtconsoled ", 18) == 0 &&
	    is_stamp(got + FSIZE + 18) &&
	    memcmp(got + FSIZE + 38, want, wl) == 0 &&
	    is_stamp(got + FSIZE + 38 + wl) &&
	    memcmp(got + FSIZE + 38 + wl + 20, " ok\n", 4) == 0;
	ok(okay, "short, stamped: a cut inside a timestamp counts the guest "
	    "bytes only (7 + 2 = 9 not logged); the next line is stamped");
	if (!okay && got != NULL && len >= FSIZE - 10)
		printf("# tail \"%s\"\n", log_esc_len(got + FSIZE - 10,
		    len - (FSIZE - 10)));
	free(got);
	free(big);
	clog_free(c);
	configure(logs, 0, 0, 0);
}

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

int
main(void)
{
	log_init(LOG_TARGET_STDERR, LOG_LEVEL_INFO, NULL);
	umask(022);
	snprintf(top, sizeof top, "/tmp/test_clog.XXXXXX");
	if (mkdtemp(top) == NULL)
		fatal("mkdtemp");
	snprintf(logs, sizeof logs, "%s/logs", top);
	test_layout();
	test_markers();
	test_timestamps();
	test_rotation();
	test_reopen();
	test_symlinks();
	test_names();
	test_off_and_move();
	test_append();
	test_configure();
	test_short();
	configure(NULL, 0, 0, 0);
	nftw(top, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	ok(!exists(top), "the temporary directory is removed");
	return tap_done();
}
