/*
 * libFuzzer target for the WebSocket module.  The input is a client byte
 * stream, read three times: all at once, one byte at a time, and in pieces
 * whose sizes (and the message limit) come from a generator seeded by the
 * input itself.  Every event must keep the reader's promises (data never
 * more than the input, only whole valid text messages, close and error
 * codes that may go on the wire, progress on every call), and the three
 * readings must deliver exactly the same thing: what the reader hands on
 * may not depend on how the network split the bytes.  The same input then
 * goes through base64 (against OpenSSL's encoder), UTF-8 (against a
 * second, naive decoder), the close payload writer and the accept key, and
 * a frame header built from its hash is read back.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "virtconsoled.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define CHECK(x) do { if (!(x)) abort(); } while (0)

struct fz_buf {
	uint8_t	*p;
	size_t	 len, size;
};

/* What one reading delivered. */
struct fz_reading {
	struct fz_buf	 data;		/* every DATA byte, in order */
	struct fz_buf	 log;		/* other events, fins, positions */
	size_t		 msg_start;	/* data offset of the message */
	int		 msg_opcode;	/* 0: between messages */
	int		 end;		/* WS_EV_CLOSE, WS_EV_ERROR or 0 */
	uint16_t	 code;
};

static uint64_t
fz_rand(uint64_t *s)
{
	/* xorshift64: cheap, and the same input always splits the same. */
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void
fz_add(struct fz_buf *b, const void *p, size_t len)
{
	if (b->len + len > b->size) {
		b->size = (b->len + len) * 2 + 64;
		if ((b->p = realloc(b->p, b->size)) == NULL)
			abort();
	}
	if (len > 0)
		memcpy(b->p + b->len, p, len);
	b->len += len;
}

static void
fz_record(struct fz_reading *rd, uint8_t type, uint16_t code,
    const void *p, size_t len)
{
	uint64_t	pos = rd->data.len;

	fz_add(&rd->log, &type, 1);
	fz_add(&rd->log, &pos, sizeof pos);
	fz_add(&rd->log, &code, sizeof code);
	fz_add(&rd->log, &len, sizeof len);
	fz_add(&rd->log, p, len);
}

/* A second, naive UTF-8 check: decode code points, then judge them. */
static int
fz_utf8_ref(const uint8_t *p, size_t n)
{
	size_t		i = 0, j, len;
	uint32_t	cp, min;

	while (i < n) {
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		if ((p[i] & 0xe0) == 0xc0) {
			len = 2;
			cp = p[i] & 0x1f;
			min = 0x80;
		} else if ((p[i] & 0xf0) == 0xe0) {
			len = 3;
			cp = p[i] & 0x0f;
			min = 0x800;
		} else if ((p[i] & 0xf8) == 0xf0) {
			len = 4;
			cp = p[i] & 0x07;
			min = 0x10000;
		} else
			return 0;
		if (len > n - i)
			return 0;
		for (j = 1; j < len; j++) {
			if ((p[i + j] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (p[i + j] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += len;
	}
	return 1;
}

/* Check one event and record it; returns 1 when the stream is over. */
static int
fz_event(struct fz_reading *rd, int rc, const struct ws_event *ev,
    size_t avail, size_t used)
{
	CHECK(rc == (int)ev->type);
	CHECK(used <= avail);
	CHECK(ev->reason != NULL && ev->reason[ev->reason_len] == '\0');
	switch (ev->type) {
	case WS_EV_NEED_MORE:
		CHECK(used == avail);
		return 0;
	case WS_EV_DATA:
		/* Data comes from this call's bytes and nowhere else. */
		CHECK(used > 0 && ev->len <= used && ev->len <= WS_CHUNK);
		CHECK(ev->opcode == WS_OP_TEXT || ev->opcode == WS_OP_BINARY);
		CHECK(ev->len == 0 || ev->data != NULL);
		if (rd->msg_opcode == 0) {
			rd->msg_opcode = ev->opcode;
			rd->msg_start = rd->data.len;
		}
		CHECK(ev->opcode == rd->msg_opcode);
		fz_add(&rd->data, ev->data, ev->len);
		if (ev->fin) {
			if (ev->opcode == WS_OP_TEXT && rd->data.len > 0)
				CHECK(fz_utf8_ref(rd->data.p + rd->msg_start,
				    rd->data.len - rd->msg_start));
			fz_record(rd, 'F', (uint16_t)ev->opcode, NULL, 0);
			rd->msg_opcode = 0;
		}
		return 0;
	case WS_EV_PING:
	case WS_EV_PONG:
		CHECK(used > 0 && ev->len <= WS_CONTROL_MAX);
		CHECK(ev->len == 0 || ev->data != NULL);
		fz_record(rd, ev->type == WS_EV_PING ? 'I' : 'O', 0, ev->data,
		    ev->len);
		return 0;
	case WS_EV_CLOSE:
		CHECK(used > 0);
		CHECK(ev->code == 0 || ws_close_code_ok(ev->code));
		CHECK(ev->code != 0 || ev->reason_len == 0);
		CHECK(ev->reason_len <= WS_CONTROL_MAX - 2);
		CHECK(fz_utf8_ref((const uint8_t *)ev->reason,
		    ev->reason_len));
		fz_record(rd, 'C', ev->code, ev->reason, ev->reason_len);
		break;
	case WS_EV_ERROR:
		CHECK(used > 0);
		CHECK(ev->code == 1002 || ev->code == 1007 ||
		    ev->code == 1009);
		CHECK(ev->reason_len > 0 && ev->reason_len < 64);
		fz_record(rd, 'E', ev->code, &rd->msg_opcode,
		    sizeof rd->msg_opcode);
		break;
	default:
		abort();
	}
	rd->end = ev->type;
	rd->code = ev->code;
	return 1;
}

/* Read data in pieces: step 0 all at once, 1 byte by byte, else random. */
static void
fz_read(const uint8_t *data, size_t size, size_t max, int step,
    uint64_t seed, struct fz_reading *rd)
{
	struct ws_reader	*r;
	struct ws_event		 ev;
	size_t			 off = 0, end, used, piece, big;
	int			 rc;

	memset(rd, 0, sizeof *rd);
	if ((r = malloc(sizeof *r)) == NULL)
		abort();
	ws_reader_init(r, max);
	big = (size_t[]){ 2, 3, 8, 64, 9000 }[seed % 5];
	while (off < size) {
		if (step == 0)
			piece = size - off;
		else if (step == 1)
			piece = 1;
		else
			piece = 1 + fz_rand(&seed) % big;
		end = piece > size - off ? size : off + piece;
		/* As a caller does: again with the rest, until NEED_MORE. */
		for (;;) {
			rc = ws_reader_feed(r, data + off, end - off, &used,
			    &ev);
			if (fz_event(rd, rc, &ev, end - off, used))
				goto over;
			off += used;
			if (rc == WS_EV_NEED_MORE)
				break;
		}
	}
	/* No input, no event. */
	rc = ws_reader_feed(r, data + size, 0, &used, &ev);
	CHECK(rc == WS_EV_NEED_MORE && used == 0);
	CHECK(rd->data.len <= size);
	free(r);
	return;

over:
	off += used;
	CHECK(rd->data.len <= off && off <= size);
	/* After a close, nothing; after an error, the same error. */
	rc = ws_reader_feed(r, data + off, size - off, &used, &ev);
	CHECK(used == size - off);
	if (rd->end == WS_EV_CLOSE)
		CHECK(rc == WS_EV_NEED_MORE);
	else
		CHECK(rc == WS_EV_ERROR && ev.code == rd->code);
	free(r);
}

static void
fz_same(const struct fz_reading *a, const struct fz_reading *b)
{
	CHECK(a->end == b->end && a->code == b->code);
	CHECK(a->data.len == b->data.len);
	CHECK(a->data.len == 0 || memcmp(a->data.p, b->data.p,
	    a->data.len) == 0);
	CHECK(a->log.len == b->log.len);
	CHECK(a->log.len == 0 || memcmp(a->log.p, b->log.p, a->log.len) == 0);
}

static void
fz_free(struct fz_reading *rd)
{
	free(rd->data.p);
	free(rd->log.p);
}

static void
fz_base64(const uint8_t *data, size_t size)
{
	char		*enc, *ref;
	uint8_t		*dec;
	size_t		 n;
	ssize_t		 r;

	enc = malloc(WS_B64_SIZE(size));
	ref = malloc(WS_B64_SIZE(size));
	dec = malloc(size + 1);
	if (enc == NULL || ref == NULL || dec == NULL)
		abort();

	/* Encode: the same as OpenSSL, and back again. */
	n = ws_b64_encode(data, size, enc);
	CHECK(n == WS_B64_SIZE(size) - 1 && enc[n] == '\0');
	CHECK(EVP_EncodeBlock((unsigned char *)ref, data, (int)size) ==
	    (int)n && memcmp(enc, ref, n) == 0);
	r = ws_b64_decode(enc, n, dec, size);
	CHECK(r == (ssize_t)size && memcmp(dec, data, size) == 0);
	if (size > 0)
		CHECK(ws_b64_decode(enc, n, dec, size - 1) == -1);

	/* Decode the input as text: accepted only if canonical. */
	r = ws_b64_decode((const char *)data, size, dec, size);
	if (r >= 0) {
		CHECK((size_t)r <= size / 4 * 3);
		n = ws_b64_encode(dec, (size_t)r, enc);
		CHECK(n == size && memcmp(enc, data, size) == 0);
	}
	free(enc);
	free(ref);
	free(dec);
}

static void
fz_text(const uint8_t *data, size_t size, uint64_t seed)
{
	struct ws_utf8	 u;
	char		*s, acc[WS_ACCEPT_LEN];
	uint8_t		 p[WS_CONTROL_MAX], raw[16];
	uint16_t	 code;
	size_t		 i, n, keep, len, j;
	int		 rc;

	/* Strict UTF-8 agrees with the naive decoder, however fed. */
	rc = ws_utf8_valid(data, size);
	CHECK(rc == fz_utf8_ref(data, size));
	ws_utf8_init(&u);
	for (i = 0; i < size && ws_utf8_feed(&u, data + i, 1) == 0; i++)
		;
	CHECK(rc == (i == size && ws_utf8_done(&u)));

	if ((s = malloc(size + 1)) == NULL)
		abort();
	memcpy(s, data, size);
	s[size] = '\0';
	len = strlen(s);

	/* The longest valid prefix that fits, cut on a boundary. */
	code = (uint16_t)(seed % 5000);
	n = ws_close_payload(p, code, s);
	if (code == 0)
		CHECK(n == 0);
	else {
		CHECK(n >= 2 && n <= WS_CONTROL_MAX);
		CHECK(p[0] == code >> 8 && p[1] == (code & 0xff));
		keep = n - 2;
		CHECK(keep <= len && memcmp(p + 2, s, keep) == 0);
		CHECK(fz_utf8_ref(p + 2, keep));
		for (j = 1; j <= 4; j++)
			if (keep + j <= len && keep + j <= WS_CONTROL_MAX - 2)
				CHECK(!fz_utf8_ref(data, keep + j));
	}

	rc = ws_accept_key(s, acc);
	if (len == 24 && ws_b64_decode(s, 24, raw, sizeof raw) == 16)
		CHECK(rc == 0 && strlen(acc) == WS_ACCEPT_LEN - 1);
	else
		CHECK(rc == -1);
	free(s);
}

/* The server's header, masked as a client would, reads back the same. */
static void
fz_header(uint64_t seed)
{
	struct ws_reader	*r;
	struct ws_event		 ev;
	uint8_t			 h[WS_HEADER_MAX + 4];
	uint64_t		 len;
	size_t			 n, used;
	int			 op;

	/* Mostly short lengths, sometimes any below 2^63. */
	len = seed >> (1 + (seed & 0x3f) % 63);
	op = (seed & 0x100) ? WS_OP_BINARY : WS_OP_TEXT;
	n = ws_frame_header(h, op, 1, len);
	CHECK(n == (len <= 125 ? 2 : len <= 0xffff ? 4 : 10));
	CHECK(h[0] == (0x80 | op) && !(h[1] & 0x80));
	h[1] |= 0x80;
	memset(h + n, 0, 4);
	if ((r = malloc(sizeof *r)) == NULL)
		abort();
	ws_reader_init(r, 0);
	CHECK(ws_reader_feed(r, h, n + 4, &used, &ev) ==
	    (len == 0 ? WS_EV_DATA : WS_EV_NEED_MORE));
	CHECK(used == n + 4 && (len == 0 ? ev.fin : r->remain == len));
	free(r);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_reading	 all, one, some;
	uint64_t		 seed = 0xcbf29ce484222325ULL;
	size_t			 i, max;

	/* FNV-1a: the input picks its own split and limit. */
	for (i = 0; i < size; i++)
		seed = (seed ^ data[i]) * 0x100000001b3ULL;
	if (seed == 0)
		seed = 1;
	max = (size_t[]){ 0, 1, 10, 125, 126, 65536 }[(seed >> 32) % 6];

	fz_read(data, size, max, 0, seed, &all);
	fz_read(data, size, max, 1, seed, &one);
	fz_read(data, size, max, 2, seed, &some);
	fz_same(&all, &one);
	fz_same(&all, &some);
	fz_free(&all);
	fz_free(&one);
	fz_free(&some);

	fz_base64(data, size);
	fz_text(data, size, seed);
	fz_header(seed);
	return 0;
}
