/*
 * Session recordings: one asciicast v2 file per writer session, in
 * record_dir, so that what a client saw (and, with record_input, what it
 * typed) can be played back with asciinema.
 *
 * Files.  DIR/YYYYmmddTHHMMSSZ-UUID-ALIAS-SESSION-RANDOM.cast, created
 * with O_EXCL | O_NOFOLLOW, mode 0600 whatever the umask, through a
 * descriptor of DIR kept since rec_configure(): a file is never
 * overwritten, never reached through a link, and renaming the path of DIR
 * meanwhile changes nothing.  RANDOM (8 hex digits) keeps two sessions of
 * the same console opened in the same second apart.  A reconfiguration
 * closes the old descriptor only: live recordings keep their files.
 *
 * Format.  The first line is the header, a JSON object; every other line
 * an event [t, "o" | "i" | "r", "DATA"], t the seconds since the
 * recording was created on CLOCK_MONOTONIC, so that a change of the wall
 * clock never makes time go backwards.  The header is written lazily, with
 * the first event or at rec_close(), so that the size a client sends
 * straight after it connects, before any output, becomes the header's
 * width and height rather than an "r" event at 0.0.
 *
 * UTF-8.  asciinema, and every JSON parser, wants valid UTF-8; a guest
 * prints bytes.  Each direction has a streaming decoder (struct rec_utf8):
 * a valid sequence split across two reads is kept whole (its beginning
 * waits in the decoder), and ill-formed bytes become U+FFFD, one per
 * "maximal subpart" as Unicode recommends (section 3.9, U+FFFD
 * substitution), which is what Python's errors='replace' does, so that a
 * recording shows the same replacement characters as tools built on it.
 *
 * Writes.  Each line is built in a buffer the recording keeps (no
 * allocation per event once it has grown) and written with one write(2)
 * on a local disk: the loop never waits on anything else.  A write that
 * fails or is short breaks the recording: nothing more is written to it
 * (a line cut in the middle could not be followed by valid lines anyway;
 * the piece of it written is cut off again), the error is counted
 * (rec_errors()) and logged once per recording.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "virtconsoled.h"

#define REC_SIZE_MAX	1000		/* columns or rows */
#define REC_COLS	80		/* until a client says */
#define REC_ROWS	24
/* A line buffer larger than this is freed once written: a burst of output
 * should not cost its size for the rest of the session.  console.c reads
 * 64 KiB at a time, at most 6 bytes each once escaped. */
#define REC_BUF_KEEP	(512 * 1024)

/* U+FFFD REPLACEMENT CHARACTER, as UTF-8. */
static const char rec_replacement[] = "\xef\xbf\xbd";
static const char rec_header_end[] =
    "\", \"env\": {\"TERM\": \"xterm-256color\"}}\n";

struct rec {
	char		*path;
	int		 fd;
	int		 broken;	/* a write failed: no more */
	int		 input;		/* "i" events, as configured at open */
	int		 header;	/* written */
	time_t		 created;	/* the header's timestamp */
	struct timespec	 start;		/* CLOCK_MONOTONIC */
	char		*title;		/* raw; escaped in the header */
	unsigned int	 cols, rows;
	struct rec_utf8	 out, in;	/* one decoder per direction */
	char		*buf;		/* the line being built */
	size_t		 len, size;
	off_t		 written;	/* bytes in the file */
};

/* Where escaped text goes: an evbuffer (rec_json_utf8()) or a line. */
struct rec_sink {
	struct evbuffer	*evb;
	struct rec	*r;
};

static struct {
	char		*dir;		/* NULL: off */
	int		 dfd;
	int		 input;
	uint64_t	 errors;
} rec = { .dfd = -1 };

/* A recording that broke, logged at most 10 times per 60 s in all. */
static struct log_limit	rec_write_log =
    LOG_LIMIT_INIT("rec: write", 60, 10);

static void
rec_put(struct rec_sink *s, const void *p, size_t n)
{
	struct rec	*r = s->r;
	size_t		 size;

	if (s->evb != NULL) {
		evbuffer_add(s->evb, p, n);
		return;
	}
	if (r->size - r->len < n) {
		size = r->size < 4096 ? 4096 : r->size;
		while (size - r->len < n)
			size *= 2;
		r->buf = xrealloc(r->buf, size);
		r->size = size;
	}
	memcpy(r->buf + r->len, p, n);
	r->len += n;
}

/* The length of the sequence c starts, 1 for ASCII, 0 if none can. */
static size_t
rec_utf8_need(unsigned char c)
{
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		return 2;
	if (c >= 0xe0 && c <= 0xef)
		return 3;
	if (c >= 0xf0 && c <= 0xf4)
		return 4;
	return 0;
}

/*
 * Whether c can be byte i (1..3) of a sequence that lead starts.  The
 * second byte's range excludes overlong forms (E0, F0), surrogates (ED)
 * and code points past U+10FFFF (F4): a sequence that could only be one
 * of those is ill-formed from its second byte, so its lead alone is a
 * maximal subpart (Unicode 15, table 3-7).
 */
static int
rec_utf8_next_ok(unsigned char lead, size_t i, unsigned char c)
{
	if (i == 1) {
		switch (lead) {
		case 0xe0:
			return c >= 0xa0 && c <= 0xbf;
		case 0xed:
			return c >= 0x80 && c <= 0x9f;
		case 0xf0:
			return c >= 0x90 && c <= 0xbf;
		case 0xf4:
			return c >= 0x80 && c <= 0x8f;
		}
	}
	return c >= 0x80 && c <= 0xbf;
}

/* An ASCII byte that JSON wants escaped. */
static void
rec_escape(struct rec_sink *s, unsigned char c)
{
	char	e[8];

	switch (c) {
	case '"':
		rec_put(s, "\\\"", 2);
		break;
	case '\\':
		rec_put(s, "\\\\", 2);
		break;
	case '\n':
		rec_put(s, "\\n", 2);
		break;
	case '\r':
		rec_put(s, "\\r", 2);
		break;
	case '\t':
		rec_put(s, "\\t", 2);
		break;
	case '\b':
		rec_put(s, "\\b", 2);
		break;
	case '\f':
		rec_put(s, "\\f", 2);
		break;
	default:
		snprintf(e, sizeof e, "\\u%04x", c);
		rec_put(s, e, 6);
		break;
	}
}

static void
rec_utf8_run(struct rec_utf8 *st, struct rec_sink *s, const char *in,
    size_t len, int final)
{
	const unsigned char	*p = (const unsigned char *)in;
	const unsigned char	*end = p + len, *q;
	size_t			 need, i;

	/* First the sequence the last call left unfinished. */
	while (st->len > 0 && p < end) {
		need = rec_utf8_need(st->part[0]);
		if (!rec_utf8_next_ok(st->part[0], st->len, *p)) {
			/* Its bytes so far are a maximal subpart; *p is
			 * looked at again below as the start of something
			 * new. */
			rec_put(s, rec_replacement, 3);
			st->len = 0;
			break;
		}
		st->part[st->len++] = *p++;
		if (st->len == need) {
			rec_put(s, st->part, need);
			st->len = 0;
		}
	}

	while (p < end) {
		/* Most output is printable ASCII: copy a run of it at once. */
		for (q = p; q < end && *q >= 0x20 && *q < 0x7f && *q != '"' &&
		    *q != '\\'; q++)
			;
		if (q > p) {
			rec_put(s, p, (size_t)(q - p));
			p = q;
			continue;
		}
		if (*p < 0x80) {
			rec_escape(s, *p++);
			continue;
		}
		if ((need = rec_utf8_need(*p)) == 0) {
			rec_put(s, rec_replacement, 3);
			p++;
			continue;
		}
		for (i = 1; i < need && p + i < end &&
		    rec_utf8_next_ok(*p, i, p[i]); i++)
			;
		if (i == need) {
			rec_put(s, p, need);
			p += need;
		} else if (p + i == end) {
			/* Valid so far but cut by the end of this call: it
			 * waits for the next one. */
			memcpy(st->part, p, i);
			st->len = i;
			p = end;
		} else {
			rec_put(s, rec_replacement, 3);
			p += i;
		}
	}

	if (final && st->len > 0) {
		rec_put(s, rec_replacement, 3);
		st->len = 0;
	}
}

/*
 * Append in[0..len) to out as the inside of a JSON string, decoding UTF-8
 * as a stream (see the top of this file); final: the stream ends here, so
 * a sequence left incomplete becomes U+FFFD.
 */
void
rec_json_utf8(struct rec_utf8 *st, struct evbuffer *out, const char *in,
    size_t len, int final)
{
	struct rec_sink	s = { out, NULL };

	rec_utf8_run(st, &s, in, len, final);
}

uint64_t
rec_errors(void)
{
	return rec.errors;
}

int
rec_enabled(void)
{
	return rec.dir != NULL;
}

static void
rec_seterr(char *err, size_t errlen, const char *fmt, ...)
    VCD_PRINTF(3, 4);

static void
rec_seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list	ap;

	if (errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/*
 * Use c->dir from now on, creating it (0700) if it does not exist.  A
 * link or anything but a directory is refused, and the configuration
 * stays what it was.
 */
int
rec_configure(const struct rec_config *c, char *err, size_t errlen)
{
	struct stat	st;
	int		fd, flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
			    O_CLOEXEC;

	rec_seterr(err, errlen, "%s", "");
	if (c->dir == NULL) {
		if (rec.dfd != -1)
			close(rec.dfd);
		free(rec.dir);
		rec.dir = NULL;
		rec.dfd = -1;
		rec.input = c->input;
		return 0;
	}

	if ((fd = open(c->dir, flags)) == -1 && errno == ENOENT) {
		if (mkdir(c->dir, 0700) == -1 && errno != EEXIST) {
			rec_seterr(err, errlen, "cannot create %s: %s",
			    c->dir, strerror(errno));
			return -1;
		}
		fd = open(c->dir, flags);
	}
	if (fd == -1) {
		/* O_DIRECTORY may win over O_NOFOLLOW: say which it was. */
		if ((errno == ENOTDIR || errno == ELOOP) &&
		    lstat(c->dir, &st) == 0) {
			rec_seterr(err, errlen, "%s: %s", c->dir,
			    S_ISLNK(st.st_mode) ? "is a symbolic link" :
			    "is not a directory");
		} else {
			rec_seterr(err, errlen, "cannot open %s: %s", c->dir,
			    strerror(errno));
		}
		return -1;
	}

	if (rec.dfd != -1)
		close(rec.dfd);
	free(rec.dir);
	rec.dir = xstrdup(c->dir);
	rec.dfd = fd;
	rec.input = c->input;
	return 0;
}

/* Bytes of a name that are safe in a file name; others become '_'. */
static void
rec_name_part(char *s)
{
	for (; *s != '\0'; s++) {
		if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') ||
		    (*s >= '0' && *s <= '9') || *s == '_' || *s == '.' ||
		    *s == '-'))
			*s = '_';
	}
}

static const char *
rec_str(const char *s)
{
	return s != NULL ? s : "";
}

struct rec *
rec_open(const struct rec_info *info, char *err, size_t errlen)
{
	struct rec	*r;
	struct tm	 tm;
	char		 when[32], *uuid, *alias, *name;
	uint32_t	 rnd;
	int		 fd;
	time_t		 now;

	rec_seterr(err, errlen, "%s", "");
	if (rec.dir == NULL)
		return NULL;

	now = time(NULL);
	gmtime_r(&now, &tm);
	strftime(when, sizeof when, "%Y%m%dT%H%M%SZ", &tm);
	random_bytes(&rnd, sizeof rnd);
	/* The UUID comes from libvirt, but a file name takes no chance. */
	uuid = xstrdup(rec_str(info->uuid));
	rec_name_part(uuid);
	alias = xstrdup(rec_str(info->alias));
	rec_name_part(alias);
	xasprintf(&name, "%s-%s-%s-%u-%08x.cast", when, uuid, alias,
	    info->session, (unsigned int)rnd);
	free(uuid);
	free(alias);

	fd = openat(rec.dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
	    O_CLOEXEC, 0600);
	if (fd == -1) {
		rec_seterr(err, errlen, "cannot create %s/%s: %s", rec.dir,
		    name, strerror(errno));
		rec.errors++;
		free(name);
		return NULL;
	}
	/* The mode given to openat() passed through the umask, which can
	 * only take bits away from 0600: nothing to fix. */

	r = xcalloc(1, sizeof *r);
	r->fd = fd;
	r->input = rec.input;
	r->created = now;
	clock_gettime(CLOCK_MONOTONIC, &r->start);
	r->cols = REC_COLS;
	r->rows = REC_ROWS;
	xasprintf(&r->path, "%s/%s", rec.dir, name);
	free(name);
	if (info->label != NULL && *info->label != '\0')
		xasprintf(&r->title, "%s console %s door %s label %s",
		    rec_str(info->guest), rec_str(info->alias),
		    rec_str(info->door), info->label);
	else
		xasprintf(&r->title, "%s console %s door %s",
		    rec_str(info->guest), rec_str(info->alias),
		    rec_str(info->door));
	return r;
}

const char *
rec_path(const struct rec *r)
{
	return r->path;
}

/* Start a line with the header if it has not been written yet. */
static void
rec_header(struct rec *r)
{
	struct rec_sink	s = { NULL, r };
	struct rec_utf8	st = { { 0 }, 0 };
	char		num[128];
	int		n;

	if (r->header)
		return;
	r->header = 1;
	n = snprintf(num, sizeof num,
	    "{\"version\": 2, \"width\": %u, \"height\": %u, "
	    "\"timestamp\": %lld, \"title\": \"", r->cols, r->rows,
	    (long long)r->created);
	rec_put(&s, num, (size_t)n);
	/* A guest's name or a label may be anything: the title goes through
	 * the same decoder as the data, so it is valid UTF-8 too. */
	rec_utf8_run(&st, &s, r->title, strlen(r->title), 1);
	rec_put(&s, rec_header_end, sizeof rec_header_end - 1);
}

/* Write the line built, with one write(2); a failure breaks r. */
static void
rec_flush(struct rec *r)
{
	ssize_t	n;

	if (r->len == 0)
		return;
	n = write(r->fd, r->buf, r->len);
	if (n == (ssize_t)r->len)
		r->written += (off_t)r->len;
	else {
		r->broken = 1;
		rec.errors++;
		/* Cut the piece of a line a short write left, so that the
		 * file stays valid up to its last whole event (a player
		 * stops at a line that does not parse).  Best effort: one
		 * call, on a local file. */
		if (n > 0 && ftruncate(r->fd, r->written) == -1)
			log_debug("rec: %s: ftruncate: %s", log_esc(r->path),
			    strerror(errno));
		if (log_limit_allow(&rec_write_log)) {
			if (n == -1)
				log_warn("rec: %s: write, recording stopped",
				    log_esc(r->path));
			else
				log_warnx("rec: %s: short write (%zd of %zu "
				    "bytes), recording stopped",
				    log_esc(r->path), n, r->len);
		}
	}
	r->len = 0;
	if (r->size > REC_BUF_KEEP) {
		free(r->buf);
		r->buf = NULL;
		r->size = 0;
	}
}

/* The start of an event line, after the header if it is due. */
static void
rec_event_start(struct rec *r, const char *type)
{
	struct rec_sink	s = { NULL, r };
	struct timespec	now;
	double		t;
	char		pre[64];
	int		n;

	rec_header(r);
	clock_gettime(CLOCK_MONOTONIC, &now);
	t = (double)(now.tv_sec - r->start.tv_sec) +
	    (double)(now.tv_nsec - r->start.tv_nsec) / 1e9;
	if (t < 0)
		t = 0;
	n = snprintf(pre, sizeof pre, "[%.6f, \"%s\", \"", t, type);
	rec_put(&s, pre, (size_t)n);
}

/* An "o" or "i" event of data, unless it decodes to nothing yet. */
static void
rec_data(struct rec *r, const char *type, struct rec_utf8 *st,
    const char *data, size_t len, int final)
{
	struct rec_sink	s = { NULL, r };
	size_t		before, mark;
	int		header = r->header;

	if (r->broken || (len == 0 && !(final && st->len > 0)))
		return;
	before = r->len;
	rec_event_start(r, type);
	mark = r->len;
	rec_utf8_run(st, &s, data, len, final);
	if (r->len == mark) {
		/* Only the start of a sequence, kept for the next call: no
		 * event, and the header still waits for one. */
		r->len = before;
		r->header = header;
		return;
	}
	rec_put(&s, "\"]\n", 3);
	rec_flush(r);
}

void
rec_output(struct rec *r, const char *data, size_t len)
{
	if (r != NULL)
		rec_data(r, "o", &r->out, data, len, 0);
}

/*
 * What the client typed, when record_input was on both when the recording
 * began and now: turning it off takes effect at once (it may be turned off
 * because of what it records), turning it on only for new recordings.
 */
void
rec_input(struct rec *r, const char *data, size_t len)
{
	if (r != NULL && r->input && rec.input)
		rec_data(r, "i", &r->in, data, len, 0);
}

/*
 * A new terminal size, each clamped to 1..REC_SIZE_MAX.  A size of 0 is a
 * client that does not know its size: ignored.
 */
void
rec_resize(struct rec *r, unsigned int cols, unsigned int rows)
{
	struct rec_sink	s = { NULL, r };
	char		e[32];
	int		n;

	if (r == NULL || r->broken || cols == 0 || rows == 0)
		return;
	if (cols > REC_SIZE_MAX)
		cols = REC_SIZE_MAX;
	if (rows > REC_SIZE_MAX)
		rows = REC_SIZE_MAX;
	if (cols == r->cols && rows == r->rows)
		return;
	r->cols = cols;
	r->rows = rows;
	if (!r->header)
		return;		/* the header will say */
	rec_event_start(r, "r");
	n = snprintf(e, sizeof e, "%ux%u\"]\n", cols, rows);
	rec_put(&s, e, (size_t)n);
	rec_flush(r);
}

void
rec_close(struct rec *r)
{
	if (r == NULL)
		return;
	rec_data(r, "o", &r->out, "", 0, 1);
	if (r->input && rec.input)
		rec_data(r, "i", &r->in, "", 0, 1);
	if (!r->broken && !r->header) {
		rec_header(r);
		rec_flush(r);
	}
	if (close(r->fd) == -1 && !r->broken) {
		rec.errors++;
		if (log_limit_allow(&rec_write_log))
			log_warn("rec: %s: close", log_esc(r->path));
	}
	free(r->buf);
	free(r->title);
	free(r->path);
	free(r);
}
