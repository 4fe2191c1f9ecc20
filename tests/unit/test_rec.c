/*
 * Unit tests of session recordings (src/rec.c): the streaming UTF-8
 * decoder against fixed cases byte for byte and against a whole-buffer
 * reference decoder (maximal subparts, as Python's errors='replace') over
 * random bytes split at random points, the reference itself against
 * Python; file names, mode 0600 under umask 022, O_EXCL; the lazy header
 * and its size; "r" events only on a change; "o" and "i" events; every
 * line of the files parsed by Python's json module and the "o" data
 * compared with the reference; directories refused (a link, a file);
 * creation and write failures counted; reconfiguration leaking no
 * descriptor.  No event loop: milliseconds.
 */
#include <sys/resource.h>
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "virtconsoled.h"
#include "tap.h"

/* ------------------------------------------------------------ helpers */

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint64_t
rnd(void)
{
	return tap_xorshift(&rng);
}

static size_t
rnd_below(size_t n)
{
	return n == 0 ? 0 : (size_t)(rnd() % n);
}

/* Random bytes, mostly from the ranges that make UTF-8 interesting. */
static void
rnd_bytes(unsigned char *p, size_t n)
{
	static const unsigned char leads[] = {
		0xc2, 0xdf, 0xe0, 0xe2, 0xed, 0xef, 0xf0, 0xf4, 0xf5, 0xc0,
		0xc1, 0xff, 0xfe,
	};
	size_t	i;

	for (i = 0; i < n; i++) {
		switch (rnd_below(6)) {
		case 0:
			p[i] = (unsigned char)rnd_below(0x80);
			break;
		case 1:
		case 2:
			p[i] = (unsigned char)(0x80 + rnd_below(0x40));
			break;
		case 3:
			p[i] = leads[rnd_below(sizeof leads)];
			break;
		default:
			p[i] = (unsigned char)(0x80 + rnd_below(0x80));
			break;
		}
	}
}

static char	tmp[] = "/tmp/test_rec.XXXXXX";

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	return remove(path);
}

/* A growable byte string. */
struct str {
	unsigned char	*p;
	size_t		 len, size;
};

static void
str_add(struct str *s, const void *p, size_t n)
{
	if (s->size - s->len < n) {
		s->size = (s->len + n) * 2 + 16;
		s->p = xrealloc(s->p, s->size);
	}
	memcpy(s->p + s->len, p, n);
	s->len += n;
}

static int
str_eq(const struct str *a, const struct str *b)
{
	return a->len == b->len && (a->len == 0 ||
	    memcmp(a->p, b->p, a->len) == 0);
}

/*
 * The reference: the whole of in decoded at once, written as UTF-8 with
 * U+FFFD for each maximal subpart of an ill-formed sequence, from the
 * table of well-formed sequences (Unicode 15, table 3-7), written apart
 * from rec.c's decoder on purpose.
 */
static void
ref_decode(const unsigned char *in, size_t len, struct str *out)
{
	static const struct {
		unsigned char	lo, hi;		/* first byte */
		unsigned char	r[3][2];	/* the ranges of the others */
		size_t		n;
	} t[] = {
		{ 0xc2, 0xdf, { { 0x80, 0xbf } }, 2 },
		{ 0xe0, 0xe0, { { 0xa0, 0xbf }, { 0x80, 0xbf } }, 3 },
		{ 0xe1, 0xec, { { 0x80, 0xbf }, { 0x80, 0xbf } }, 3 },
		{ 0xed, 0xed, { { 0x80, 0x9f }, { 0x80, 0xbf } }, 3 },
		{ 0xee, 0xef, { { 0x80, 0xbf }, { 0x80, 0xbf } }, 3 },
		{ 0xf0, 0xf0, { { 0x90, 0xbf }, { 0x80, 0xbf },
		    { 0x80, 0xbf } }, 4 },
		{ 0xf1, 0xf3, { { 0x80, 0xbf }, { 0x80, 0xbf },
		    { 0x80, 0xbf } }, 4 },
		{ 0xf4, 0xf4, { { 0x80, 0x8f }, { 0x80, 0xbf },
		    { 0x80, 0xbf } }, 4 },
	};
	size_t	i = 0, k, j;

	while (i < len) {
		if (in[i] < 0x80) {
			str_add(out, in + i, 1);
			i++;
			continue;
		}
		for (k = 0; k < sizeof t / sizeof t[0]; k++)
			if (in[i] >= t[k].lo && in[i] <= t[k].hi)
				break;
		if (k == sizeof t / sizeof t[0]) {
			str_add(out, "\xef\xbf\xbd", 3);
			i++;
			continue;
		}
		for (j = 1; j < t[k].n && i + j < len &&
		    in[i + j] >= t[k].r[j - 1][0] &&
		    in[i + j] <= t[k].r[j - 1][1]; j++)
			;
		if (j == t[k].n)
			str_add(out, in + i, j);
		else
			str_add(out, "\xef\xbf\xbd", 3);
		i += j;
	}
}

/*
 * Undo JSON string escaping (the inside of a string); -1 if it is not a
 * valid JSON string body: a raw control byte, a lone '"' or '\', or an
 * unknown escape.
 */
static int
json_unescape(const unsigned char *p, size_t len, struct str *out)
{
	size_t		i, k;
	unsigned int	u;
	unsigned char	c, h;

	for (i = 0; i < len; i++) {
		if (p[i] < 0x20 || p[i] == '"')
			return -1;
		if (p[i] != '\\') {
			str_add(out, p + i, 1);
			continue;
		}
		if (++i == len)
			return -1;
		switch (p[i]) {
		case '"': c = '"'; break;
		case '\\': c = '\\'; break;
		case '/': c = '/'; break;
		case 'n': c = '\n'; break;
		case 'r': c = '\r'; break;
		case 't': c = '\t'; break;
		case 'b': c = '\b'; break;
		case 'f': c = '\f'; break;
		case 'u':
			/* rec.c only writes \u00XX. */
			if (i + 4 >= len)
				return -1;
			for (u = 0, k = 1; k <= 4; k++) {
				h = p[i + k];
				if (h >= '0' && h <= '9')
					u = u * 16 + (unsigned int)(h - '0');
				else if (h >= 'a' && h <= 'f')
					u = u * 16 +
					    (unsigned int)(h - 'a' + 10);
				else
					return -1;
			}
			if (u > 0x7f)
				return -1;
			c = (unsigned char)u;
			i += 4;
			break;
		default:
			return -1;
		}
		str_add(out, &c, 1);
	}
	return 0;
}

/* Whether p is valid UTF-8: the reference decodes it to itself. */
static int
utf8_valid(const unsigned char *p, size_t len)
{
	struct str	d = { NULL, 0, 0 };
	int		same;

	ref_decode(p, len, &d);
	same = d.len == len && (len == 0 || memcmp(d.p, p, len) == 0);
	free(d.p);
	return same;
}

static void
buf_str(struct evbuffer *b, struct str *s)
{
	size_t	n = evbuffer_get_length(b);

	s->len = 0;
	if (n > 0)
		str_add(s, evbuffer_pullup(b, -1), n);
}

/* ------------------------------------------------------------ decoder */

static void
fixed(const char *what, const char *in, size_t len, const char *want,
    size_t wantlen)
{
	struct rec_utf8	 st = { { 0 }, 0 };
	struct evbuffer	*b = evbuffer_new();
	size_t		 got;

	rec_json_utf8(&st, b, in, len, 1);
	got = evbuffer_get_length(b);
	ok(got == wantlen && memcmp(evbuffer_pullup(b, -1), want, got) == 0,
	    "decoder: %s", what);
	evbuffer_free(b);
}

#define FIXED(what, in, want) \
	fixed(what, in, sizeof in - 1, want, sizeof want - 1)
#define FFFD "\xef\xbf\xbd"

static void
test_fixed(void)
{
	struct rec_utf8	 st = { { 0 }, 0 };
	struct evbuffer	*b = evbuffer_new();

	FIXED("E2 82 then A: one U+FFFD then A", "\xe2\x82" "A", FFFD "A");
	FIXED("F0 80: two U+FFFD (not a valid prefix)", "\xf0\x80",
	    FFFD FFFD);
	FIXED("ED A0 80 (a surrogate): three U+FFFD", "\xed\xa0\x80",
	    FFFD FFFD FFFD);
	FIXED("C0 AF (overlong): two U+FFFD", "\xc0\xaf", FFFD FFFD);
	FIXED("FF: one U+FFFD", "\xff", FFFD);
	FIXED("E0 80 80 (overlong): three U+FFFD", "\xe0\x80\x80",
	    FFFD FFFD FFFD);
	FIXED("F4 90 80 80 (past U+10FFFF): four U+FFFD",
	    "\xf4\x90\x80\x80", FFFD FFFD FFFD FFFD);
	FIXED("F5: one U+FFFD", "\xf5" "a", FFFD "a");
	FIXED("F0 9F 98 then x: one U+FFFD then x", "\xf0\x9f\x98" "x",
	    FFFD "x");
	FIXED("valid: U+0080, U+20AC, U+FFFF, U+1F600, U+10FFFF raw",
	    "\xc2\x80\xe2\x82\xac\xef\xbf\xbf\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf",
	    "\xc2\x80\xe2\x82\xac\xef\xbf\xbf\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf");
	FIXED("escapes: quote, backslash, short ones, \\u00XX, DEL",
	    "\"\\\n\r\t\b\f\x01\x1b\x1f\x7f/ ~",
	    "\\\"\\\\\\n\\r\\t\\b\\f\\u0001\\u001b\\u001f\\u007f/ ~");
	fixed("a NUL byte is \\u0000", "a\0b", 3, "a\\u0000b", 8);
	FIXED("incomplete at the end, final: one U+FFFD", "ab\xf0\x9f\x98",
	    "ab" FFFD);

	/* A sequence split across calls waits until it is complete. */
	rec_json_utf8(&st, b, "x\xe2", 2, 0);
	ok(evbuffer_get_length(b) == 1 && st.len == 1,
	    "decoder: E2 at the end of a call waits (1 byte out, 1 kept)");
	rec_json_utf8(&st, b, "\x82", 1, 0);
	ok(evbuffer_get_length(b) == 1 && st.len == 2,
	    "decoder: E2 82 still waits");
	rec_json_utf8(&st, b, "", 0, 0);
	ok(evbuffer_get_length(b) == 1 && st.len == 2,
	    "decoder: an empty call keeps what waits");
	rec_json_utf8(&st, b, "\xac" "y", 2, 0);
	ok(evbuffer_get_length(b) == 5 &&
	    memcmp(evbuffer_pullup(b, -1), "x\xe2\x82\xacy", 5) == 0 &&
	    st.len == 0, "decoder: E2 | 82 | AC y is one U+20AC");
	evbuffer_drain(b, evbuffer_get_length(b));
	rec_json_utf8(&st, b, "\xe2\x82", 2, 0);
	rec_json_utf8(&st, b, "A", 1, 0);
	ok(evbuffer_get_length(b) == 4 &&
	    memcmp(evbuffer_pullup(b, -1), FFFD "A", 4) == 0,
	    "decoder: E2 82 | A across calls is U+FFFD A");
	evbuffer_drain(b, evbuffer_get_length(b));
	rec_json_utf8(&st, b, "\xf0", 1, 0);
	rec_json_utf8(&st, b, "\x80", 1, 0);
	ok(evbuffer_get_length(b) == 6 && st.len == 0,
	    "decoder: F0 | 80 across calls is two U+FFFD");
	evbuffer_drain(b, evbuffer_get_length(b));
	rec_json_utf8(&st, b, "\xf0\x9f", 2, 0);
	rec_json_utf8(&st, b, "", 0, 1);
	ok(evbuffer_get_length(b) == 3 &&
	    memcmp(evbuffer_pullup(b, -1), FFFD, 3) == 0 && st.len == 0,
	    "decoder: final with F0 9F waiting gives one U+FFFD");
	evbuffer_free(b);
}

/* The reference against Python, on random strings, one python3 run. */
static void
test_reference_python(void)
{
	char		 in[300], out[300], cmd[1024], line[8192];
	FILE		*fp;
	unsigned char	 buf[256];
	struct str	 ref = { NULL, 0, 0 }, hex = { NULL, 0, 0 };
	size_t		 i, n, k, bad = 0, count = 0;
	uint64_t	 seed = rng;

	if (access("/usr/bin/python3", X_OK) != 0) {
		tap_skip("python3 is not installed");
		return;
	}
	snprintf(in, sizeof in, "%s/py.in", tmp);
	snprintf(out, sizeof out, "%s/py.out", tmp);
	if ((fp = fopen(in, "w")) == NULL)
		return;
	for (k = 0; k < 500; k++) {
		n = 1 + rnd_below(40);
		rnd_bytes(buf, n);
		for (i = 0; i < n; i++)
			fprintf(fp, "%02x", buf[i]);
		fprintf(fp, "\n");
	}
	fclose(fp);
	snprintf(cmd, sizeof cmd, "/usr/bin/python3 -c 'import sys\n"
	    "o = open(sys.argv[2], \"w\")\n"
	    "for l in open(sys.argv[1]):\n"
	    "  o.write(bytes.fromhex(l.strip()).decode(\"utf-8\", "
	    "errors=\"replace\").encode().hex() + \"\\n\")' %s %s",
	    in, out);
	ok(system(cmd) == 0, "python3 decoded the random strings");
	if ((fp = fopen(out, "r")) == NULL)
		return;
	rng = seed;
	for (k = 0; k < 500 && fgets(line, sizeof line, fp) != NULL; k++) {
		n = 1 + rnd_below(40);
		rnd_bytes(buf, n);
		ref.len = hex.len = 0;
		ref_decode(buf, n, &ref);
		for (i = 0; i < ref.len; i++) {
			char	h[3];

			snprintf(h, sizeof h, "%02x", ref.p[i]);
			str_add(&hex, h, 2);
		}
		str_add(&hex, "\n", 1);
		count++;
		if (hex.len != strlen(line) || memcmp(hex.p, line,
		    hex.len) != 0)
			bad++;
	}
	fclose(fp);
	ok(count == 500 && bad == 0, "the test's reference decoder equals "
	    "Python's errors='replace' on %zu random strings (%zu differ)",
	    count, bad);
	free(ref.p);
	free(hex.p);
}

/*
 * The streaming decoder against the reference: each random string cut
 * into random pieces, every cut giving the same bytes, which are valid
 * UTF-8, escaped JSON, and decode to the reference.
 */
static void
test_random(void)
{
	unsigned char	 in[600];
	struct evbuffer	*b = evbuffer_new();
	struct rec_utf8	 st;
	struct str	 whole = { NULL, 0, 0 }, got = { NULL, 0, 0 };
	struct str	 ref = { NULL, 0, 0 }, dec = { NULL, 0, 0 };
	size_t		 k, cut, n, at, piece, runs = 0;
	size_t		 differ = 0, invalid = 0, wrong = 0;

	for (k = 0; k < 2000; k++) {
		n = rnd_below(sizeof in);
		rnd_bytes(in, n);
		ref.len = dec.len = 0;
		ref_decode(in, n, &ref);

		memset(&st, 0, sizeof st);
		rec_json_utf8(&st, b, (const char *)in, n, 1);
		buf_str(b, &whole);
		evbuffer_drain(b, evbuffer_get_length(b));
		if (!utf8_valid(whole.p, whole.len))
			invalid++;
		if (json_unescape(whole.p, whole.len, &dec) != 0 ||
		    !str_eq(&dec, &ref))
			wrong++;

		for (cut = 0; cut < 10; cut++) {
			memset(&st, 0, sizeof st);
			for (at = 0; at < n; at += piece) {
				piece = rnd_below(cut < 5 ? 5 : n - at + 1);
				if (piece > n - at)
					piece = n - at;
				rec_json_utf8(&st, b, (const char *)in + at,
				    piece, 0);
				if (st.len > 3)
					invalid++;
			}
			rec_json_utf8(&st, b, "", 0, 1);
			buf_str(b, &got);
			evbuffer_drain(b, evbuffer_get_length(b));
			runs++;
			if (!str_eq(&got, &whole))
				differ++;
		}
	}
	ok(wrong == 0, "decoder: 2000 random strings (0-599 bytes, mostly "
	    "0x80-0xff) unescape to the reference decoding (%zu wrong)",
	    wrong);
	ok(invalid == 0, "decoder: its output is always valid UTF-8 (%zu "
	    "invalid)", invalid);
	ok(differ == 0, "decoder: %zu random splits into pieces give the "
	    "bytes of one call (%zu differ)", runs, differ);
	evbuffer_free(b);
	free(whole.p);
	free(got.p);
	free(ref.p);
	free(dec.p);
}

/* ------------------------------------------------------------ files */

static struct str
slurp(const char *path)
{
	struct str	 s = { NULL, 0, 0 };
	char		 buf[65536];
	size_t		 n;
	FILE		*fp;

	if ((fp = fopen(path, "rb")) == NULL)
		return s;
	while ((n = fread(buf, 1, sizeof buf, fp)) > 0)
		str_add(&s, buf, n);
	fclose(fp);
	str_add(&s, "", 1);	/* a NUL after, not counted */
	s.len--;
	return s;
}

/* The lines of a file, at most max, each NUL-terminated in place. */
static size_t
lines(struct str *s, char **l, size_t max)
{
	size_t	n = 0;
	char	*p = (char *)s->p, *nl;

	while (p != NULL && *p != '\0' && n < max) {
		l[n++] = p;
		if ((nl = strchr(p, '\n')) == NULL)
			break;
		*nl = '\0';
		p = nl + 1;
	}
	return n;
}

/*
 * An event line: [T, "X", "DATA"] with T as %.6f; its type and unescaped
 * data.  -1 if it is not one.
 */
static int
event(const char *l, double *t, char *type, struct str *data)
{
	const char	*p = l, *q;
	size_t		 d = 0;

	if (*p++ != '[')
		return -1;
	for (q = p; *q >= '0' && *q <= '9'; q++)
		;
	if (q == p || *q != '.')
		return -1;
	for (p = ++q; *q >= '0' && *q <= '9'; q++)
		d++;
	if (d != 6)
		return -1;
	*t = strtod(l + 1, NULL);
	if (strncmp(q, ", \"", 3) != 0 || q[3] == '\0' ||
	    strncmp(q + 4, "\", \"", 4) != 0)
		return -1;
	*type = q[3];
	p = q + 8;
	q = p + strlen(p);
	if (q - p < 2 || strcmp(q - 2, "\"]") != 0)
		return -1;
	data->len = 0;
	return json_unescape((const unsigned char *)p, (size_t)(q - 2 - p),
	    data);
}

static int
python_lines_ok(const char *path)
{
	char	cmd[1024];

	snprintf(cmd, sizeof cmd, "/usr/bin/python3 -c 'import json,sys\n"
	    "[json.loads(l) for l in open(sys.argv[1], \"rb\")]' %s", path);
	return system(cmd) == 0;
}

static const struct rec_info info = {
	"qemu", "0b5d7a3c-1e2f-4a5b-8c9d-0e1f2a3b4c5d", "serial0/x y",
	"web\"1", "ws", "", 42
};

/* The name: YYYYmmddTHHMMSSZ-UUID-serial0_x_y-42-XXXXXXXX.cast. */
static int
name_ok(const char *path, const char *dir, time_t lo, time_t hi,
    time_t *when)
{
	const char	*b = path + strlen(dir) + 1;
	char		 want[256];
	struct tm	 tm;
	size_t		 i;

	if (strncmp(path, dir, strlen(dir)) != 0 || path[strlen(dir)] != '/')
		return 0;
	for (i = 0; i < 16; i++) {
		if (i == 8 ? b[i] != 'T' : i == 15 ? b[i] != 'Z' :
		    (b[i] < '0' || b[i] > '9'))
			return 0;
	}
	memset(&tm, 0, sizeof tm);
	if (strptime(b, "%Y%m%dT%H%M%SZ", &tm) == NULL)
		return 0;
	*when = timegm(&tm);
	if (*when < lo || *when > hi)
		return 0;
	snprintf(want, sizeof want, "-%s-serial0_x_y-42-", info.uuid);
	if (strncmp(b + 16, want, strlen(want)) != 0)
		return 0;
	b += 16 + strlen(want);
	for (i = 0; i < 8; i++)
		if (!((b[i] >= '0' && b[i] <= '9') ||
		    (b[i] >= 'a' && b[i] <= 'f')))
			return 0;
	return strcmp(b + 8, ".cast") == 0;
}

static void
test_files(void)
{
	struct rec_config	 c = { NULL, 0 };
	struct rec		*r, *r2;
	char			 dir[300], err[512], hdr[512], *l[16];
	char			 path[300], path2[300], type;
	struct stat		 st;
	struct str		 f, data = { NULL, 0, 0 };
	time_t			 lo, hi, when = 0;
	double			 t, last = 0;
	size_t			 n, i;
	int			 good;

	strcpy(err, "x");
	ok(!rec_enabled() && rec_open(&info, err, sizeof err) == NULL &&
	    err[0] == '\0', "off: rec_open gives NULL and no error");

	snprintf(dir, sizeof dir, "%s/rec", tmp);
	c.dir = dir;
	ok(rec_configure(&c, err, sizeof err) == 0 && rec_enabled(),
	    "rec_configure creates the directory");
	ok(stat(dir, &st) == 0 && S_ISDIR(st.st_mode) &&
	    (st.st_mode & 07777) == 0700, "the directory is 0700");

	lo = time(NULL);
	r = rec_open(&info, err, sizeof err);
	r2 = rec_open(&info, err, sizeof err);
	hi = time(NULL);
	ok(r != NULL && r2 != NULL, "rec_open");
	if (r == NULL || r2 == NULL)
		return;
	snprintf(path, sizeof path, "%s", rec_path(r));
	snprintf(path2, sizeof path2, "%s", rec_path(r2));
	ok(name_ok(path, dir, lo, hi, &when), "name: %s", path);
	ok(strcmp(path, path2) != 0 && access(path, F_OK) == 0 &&
	    access(path2, F_OK) == 0, "two opens at once make two files "
	    "(in the same second: %s)", strncmp(path, path2, strlen(dir) +
	    17) == 0 ? "yes" : "no, the clock turned");
	ok(stat(path, &st) == 0 && S_ISREG(st.st_mode) &&
	    (st.st_mode & 07777) == 0600 && st.st_size == 0,
	    "the file is 0600 under umask 022, and empty (lazy header)");
	rec_close(r2);
	f = slurp(path2);
	n = lines(&f, l, 16);
	ok(n == 1 && strstr(l[0], "\"width\": 80, \"height\": 24,") != NULL,
	    "a recording with no event has the header only, 80x24");
	free(f.p);

	/* Lazy size, "r" on a change only, input off by default. */
	rec_resize(r, 132, 43);
	rec_resize(r, 132, 43);
	rec_output(r, "", 0);
	rec_output(r, "\xe2", 1);
	ok(stat(path, &st) == 0 && st.st_size == 0,
	    "empty data and an incomplete sequence write nothing yet");
	rec_output(r, "\x82\xac hi\r\n", 7);
	rec_resize(r, 132, 43);
	rec_resize(r, 0, 50);
	rec_resize(r, 100, 0);
	rec_input(r, "ls\r", 3);
	rec_resize(r, 100, 30);
	rec_output(r, "\"q\"\x1b[0m", 7);
	rec_resize(r, 5000, 2000);
	rec_output(r, "\xf0\x9f", 2);
	rec_close(r);

	f = slurp(path);
	n = lines(&f, l, 16);
	snprintf(hdr, sizeof hdr, "{\"version\": 2, \"width\": 132, "
	    "\"height\": 43, \"timestamp\": %lld, \"title\": \"web\\\"1 "
	    "console serial0/x y door ws\", \"env\": {\"TERM\": "
	    "\"xterm-256color\"}}", (long long)when);
	ok(n == 6, "6 lines: the header, 3 \"o\", 2 \"r\" (got %zu)", n);
	if (n != 6) {
		free(f.p);
		return;
	}
	is_str(l[0], hdr, "the header: size set before output, the name's "
	    "time, the title escaped, no label");
	good = 1;
	for (i = 1; i < n; i++) {
		if (event(l[i], &t, &type, &data) != 0 || t < last)
			good = 0;
		last = t;
	}
	ok(good, "every event is [T, \"X\", \"DATA\"], T with 6 decimals, "
	    "not decreasing");
	ok(event(l[1], &t, &type, &data) == 0 && type == 'o' &&
	    data.len == 8 && memcmp(data.p, "\xe2\x82\xac hi\r\n", 8) == 0,
	    "o: the split U+20AC whole, then \" hi\\r\\n\"");
	ok(event(l[2], &t, &type, &data) == 0 && type == 'r' &&
	    data.len == 6 && memcmp(data.p, "100x30", 6) == 0,
	    "r: 100x30 (the same size and sizes of 0 wrote nothing)");
	ok(event(l[3], &t, &type, &data) == 0 && type == 'o' &&
	    data.len == 7 && memcmp(data.p, "\"q\"\x1b[0m", 7) == 0,
	    "o: quotes and ESC; no \"i\" event (input off)");
	ok(event(l[4], &t, &type, &data) == 0 && type == 'r' &&
	    data.len == 9 && memcmp(data.p, "1000x1000", 9) == 0,
	    "r: 5000x2000 clamped to 1000x1000");
	ok(event(l[5], &t, &type, &data) == 0 && type == 'o' &&
	    data.len == 3 && memcmp(data.p, FFFD, 3) == 0,
	    "o: rec_close turns the pending F0 9F into one U+FFFD");
	ok(python_lines_ok(path), "python3's json.loads takes every line");
	free(f.p);
	free(data.p);
}

static void
test_input_label(void)
{
	struct rec_config	 c = { NULL, 1 };
	struct rec_info		 in = info;
	struct rec		*r;
	char			 dir[300], err[512], *l[16], type, p[600];
	struct str		 f, data = { NULL, 0, 0 };
	double			 t;
	size_t			 n;

	snprintf(dir, sizeof dir, "%s/rec", tmp);
	c.dir = dir;
	rec_configure(&c, err, sizeof err);
	in.label = "ops \xff\xfe";
	in.guest = "g\xe2\x82";
	if ((r = rec_open(&in, err, sizeof err)) == NULL) {
		ok(0, "rec_open: %s", err);
		return;
	}
	snprintf(p, sizeof p, "%s", rec_path(r));
	rec_input(r, "ls\r", 3);
	rec_output(r, "x", 1);
	rec_input(r, "\xc3", 1);
	rec_close(r);
	f = slurp(p);
	ok(python_lines_ok(p), "python3's json.loads takes every line "
	    "(input, label)");
	n = lines(&f, l, 16);
	ok(n == 4 && strstr(l[0], "\"title\": \"g" FFFD " console serial0/x "
	    "y door ws label ops " FFFD FFFD "\"") != NULL,
	    "the title: label said, invalid bytes as U+FFFD");
	ok(n == 4 && event(l[1], &t, &type, &data) == 0 && type == 'i' &&
	    data.len == 3 && memcmp(data.p, "ls\r", 3) == 0,
	    "input=1: an \"i\" event");
	ok(n == 4 && event(l[2], &t, &type, &data) == 0 && type == 'o' &&
	    data.len == 1, "then the \"o\" event");
	ok(n == 4 && event(l[3], &t, &type, &data) == 0 && type == 'i' &&
	    data.len == 3 && memcmp(data.p, FFFD, 3) == 0,
	    "rec_close flushes the pending input as an \"i\" U+FFFD");
	free(f.p);
	free(data.p);
	c.input = 0;
	rec_configure(&c, err, sizeof err);
}

/* Random output in random pieces, then 1 MB in one call. */
static void
test_big(void)
{
	struct rec		*r;
	static unsigned char	 in[1 << 20];
	char			 p[300], cmd[1024], out[300], *l[4], type;
	struct str		 ref = { NULL, 0, 0 }, py, f;
	struct str		 data = { NULL, 0, 0 };
	size_t			 at, piece, n, total = 150000;
	double			 t;
	char			 err[512];

	if ((r = rec_open(&info, err, sizeof err)) == NULL) {
		ok(0, "rec_open: %s", err);
		return;
	}
	snprintf(p, sizeof p, "%s", rec_path(r));
	rnd_bytes(in, total);
	for (at = 0; at < total; at += piece) {
		piece = rnd_below(64);
		if (piece > total - at)
			piece = total - at;
		rec_output(r, (const char *)in + at, piece);
	}
	rec_close(r);
	ref_decode(in, total, &ref);
	snprintf(out, sizeof out, "%s/o.out", tmp);
	snprintf(cmd, sizeof cmd, "/usr/bin/python3 -c 'import json,sys\n"
	    "ev = [json.loads(l) for l in open(sys.argv[1], \"rb\")][1:]\n"
	    "assert all(e[1] == \"o\" for e in ev)\n"
	    "open(sys.argv[2], \"wb\").write(\"\".join(e[2] for e in ev)"
	    ".encode())' %s %s", p, out);
	ok(system(cmd) == 0, "python3 reads every line of a recording of "
	    "%zu random bytes in random pieces", total);
	py = slurp(out);
	ok(str_eq(&py, &ref), "its \"o\" data, joined, is the reference "
	    "decoding of the bytes (%zu bytes, want %zu)", py.len, ref.len);
	free(py.p);

	/* 1 MB in one call: one event. */
	if ((r = rec_open(&info, err, sizeof err)) == NULL)
		return;
	snprintf(p, sizeof p, "%s", rec_path(r));
	rnd_bytes(in, sizeof in);
	rec_output(r, (const char *)in, sizeof in);
	rec_close(r);
	ref.len = 0;
	ref_decode(in, sizeof in, &ref);
	f = slurp(p);
	n = lines(&f, l, 4);
	ok(n == 2 && event(l[1], &t, &type, &data) == 0 && type == 'o' &&
	    str_eq(&data, &ref), "1 MB in one call: one event, the "
	    "reference decoding (%zu bytes)", data.len);
	free(f.p);
	free(ref.p);
	free(data.p);
}

/* Directories refused, failures counted, descriptors not leaked. */
static void
test_errors(void)
{
	struct rec_config	 c = { NULL, 0 };
	struct rec_info		 in = info;
	struct rec		*r;
	char			 dir[300], other[300], bad[300], err[512];
	char			 want[600], longalias[300], p[300], p2[300];
	uint64_t		 e0;
	struct stat		 st;
	struct rlimit		 rl, old;
	int			 fd, fds0, fds1;
	size_t			 i;
	off_t			 size, before, after;
	uint64_t		 e1, e2;
	char			 big[3000];

	snprintf(dir, sizeof dir, "%s/rec", tmp);
	snprintf(other, sizeof other, "%s/link", tmp);
	if (symlink(dir, other) != 0)
		return;
	c.dir = other;
	ok(rec_configure(&c, err, sizeof err) == -1 &&
	    strstr(err, "symbolic link") != NULL, "a link is refused: %s",
	    err);
	snprintf(bad, sizeof bad, "%s/file", tmp);
	fd = open(bad, O_WRONLY | O_CREAT, 0600);
	close(fd);
	c.dir = bad;
	ok(rec_configure(&c, err, sizeof err) == -1 &&
	    strstr(err, "not a directory") != NULL,
	    "a regular file is refused: %s", err);
	snprintf(bad, sizeof bad, "%s/file/sub", tmp);
	c.dir = bad;
	ok(rec_configure(&c, err, sizeof err) == -1 && err[0] != '\0',
	    "a path under a regular file is refused: %s", err);
	r = rec_open(&info, err, sizeof err);
	ok(rec_enabled() && r != NULL && strncmp(rec_path(r), dir,
	    strlen(dir)) == 0 && rec_path(r)[strlen(dir)] == '/',
	    "after refusals, the previous directory is still used");

	/* Reconfiguring leaks no descriptor; a live recording keeps its
	 * file, even with recordings off. */
	fds0 = fds1 = 0;
	for (i = 0; i < 50; i++) {
		c.dir = i % 2 ? dir : tmp;
		rec_configure(&c, err, sizeof err);
	}
	c.dir = NULL;
	rec_configure(&c, err, sizeof err);
	{
		DIR		*d = opendir("/proc/self/fd");
		struct dirent	*e;

		while (d != NULL && (e = readdir(d)) != NULL)
			fds0++;
		if (d != NULL)
			closedir(d);
		c.dir = dir;
		for (i = 0; i < 50; i++)
			rec_configure(&c, err, sizeof err);
		c.dir = NULL;
		rec_configure(&c, err, sizeof err);
		d = opendir("/proc/self/fd");
		while (d != NULL && (e = readdir(d)) != NULL)
			fds1++;
		if (d != NULL)
			closedir(d);
	}
	ok(fds0 > 0 && fds0 == fds1, "50 reconfigurations leak no "
	    "descriptor (%d, then %d)", fds0, fds1);
	strcpy(err, "x");
	ok(!rec_enabled() && rec_open(&info, err, sizeof err) == NULL &&
	    err[0] == '\0', "configured off: rec_open gives NULL, no error");
	if (r != NULL) {
		snprintf(p, sizeof p, "%s", rec_path(r));
		rec_output(r, "still", 5);
		rec_close(r);
		ok(stat(p, &st) == 0 && st.st_size > 0,
		    "a live recording kept writing through reconfigurations");
	}

	/* Creation fails: the directory is gone, or the name too long. */
	snprintf(bad, sizeof bad, "%s/gone", tmp);
	c.dir = bad;
	rec_configure(&c, err, sizeof err);
	rmdir(bad);
	e0 = rec_errors();
	r = rec_open(&info, err, sizeof err);
	snprintf(want, sizeof want, "cannot create %s/", bad);
	ok(r == NULL && strncmp(err, want, strlen(want)) == 0 &&
	    strstr(err, ".cast: ") != NULL &&
	    strstr(err, strerror(ENOENT)) != NULL && rec_errors() == e0 + 1,
	    "rec_open in a removed directory fails, counted: %s", err);
	c.dir = dir;
	rec_configure(&c, err, sizeof err);
	memset(longalias, 'a', 299);
	longalias[299] = '\0';
	in.alias = longalias;
	r = rec_open(&in, err, sizeof err);
	ok(r == NULL && strstr(err, strerror(ENAMETOOLONG)) != NULL &&
	    rec_errors() == e0 + 2, "a name too long fails, counted");

	/* A write fails (a file size limit, as a full disk): the recording
	 * breaks, counted once, and writes no more.  Nothing is printed
	 * while the limit holds: it would apply to our output too. */
	if ((r = rec_open(&info, err, sizeof err)) == NULL)
		return;
	snprintf(p, sizeof p, "%s", rec_path(r));
	signal(SIGXFSZ, SIG_IGN);
	getrlimit(RLIMIT_FSIZE, &old);
	rl = old;
	rl.rlim_cur = 2000;
	setrlimit(RLIMIT_FSIZE, &rl);
	e0 = rec_errors();
	rec_output(r, "first", 5);
	before = stat(p, &st) == 0 ? st.st_size : -1;
	for (i = 0; i < sizeof big; i++)
		big[i] = (char)('a' + i % 26);
	rec_output(r, big, sizeof big);
	e1 = rec_errors();
	size = stat(p, &st) == 0 ? st.st_size : -1;
	rec_output(r, "more", 4);
	rec_resize(r, 10, 10);
	rec_close(r);
	after = stat(p, &st) == 0 ? st.st_size : -1;
	e2 = rec_errors();
	setrlimit(RLIMIT_FSIZE, &old);
	ok(e1 == e0 + 1, "a short write is counted");
	ok(before > 0 && before < 2000 && size == before,
	    "the piece of the line it wrote is cut off (%lld bytes, "
	    "then %lld)", (long long)before, (long long)size);
	ok(e2 == e1 && after == size, "then nothing more is written or "
	    "counted (size %lld)", (long long)after);
	ok(python_lines_ok(p), "python3's json.loads takes every line of "
	    "the broken recording");

	if ((r = rec_open(&info, err, sizeof err)) == NULL)
		return;
	snprintf(p2, sizeof p2, "%s", rec_path(r));
	/* The limit at the file's size, above the log's, so that the log
	 * can still say it. */
	rec_output(r, big, sizeof big);
	rl.rlim_cur = stat(p2, &st) == 0 ? (rlim_t)st.st_size : 0;
	setrlimit(RLIMIT_FSIZE, &rl);
	rec_output(r, "b", 1);
	e1 = rec_errors();
	setrlimit(RLIMIT_FSIZE, &old);
	ok(e1 == e2 + 1, "a failed write (EFBIG) is counted");
	rec_close(r);
	signal(SIGXFSZ, SIG_DFL);
}

int
main(void)
{
	char	log[300], *l;
	struct str	f;
	size_t	warns = 0;

	umask(022);
	if (mkdtemp(tmp) == NULL) {
		ok(0, "mkdtemp");
		return tap_done();
	}
	snprintf(log, sizeof log, "%s/log", tmp);
	log_init(LOG_TARGET_FILE, LOG_LEVEL_INFO, log);
	printf("# random seed %#llx\n", (unsigned long long)rng);
	test_fixed();
	test_reference_python();
	test_random();
	test_files();
	test_input_label();
	test_big();
	test_errors();

	log_init(LOG_TARGET_STDERR, LOG_LEVEL_INFO, NULL);
	f = slurp(log);
	for (l = (char *)f.p; l != NULL && (l = strstr(l, "recording "
	    "stopped")) != NULL; l++)
		warns++;
	ok(warns == 2, "each broken recording was logged once (%zu lines)",
	    warns);
	free(f.p);
	if (getenv("TEST_REC_KEEP") == NULL)
		nftw(tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	else
		printf("# kept %s\n", tmp);
	return tap_done();
}
