/*
 * RFC 6455 as pure functions over byte buffers: the handshake's accept key,
 * an incremental reader of client frames, the server's frame and close
 * payload writers, strict UTF-8 and base64.  No sockets and no event loop,
 * so every byte path can be unit tested and fuzzed.
 *
 * The reader takes whatever bytes have arrived and returns one event at a
 * time.  It never allocates: a frame header (at most 14 bytes) and a
 * control frame's payload (at most 125) are kept in the reader until
 * complete, while data is unmasked into a fixed chunk and delivered as it
 * arrives, so a console sees keystrokes at once and a large message never
 * needs a large buffer.
 *
 * The price of streaming is that a message can fail after some of it was
 * delivered.  A text message is validated as UTF-8 byte by byte, across
 * frames and feeds: every byte before the first bad one (a byte that cannot
 * be UTF-8, or the message's last byte when it leaves a character open) is
 * handed on, then the reader fails with 1007.  The message limit is
 * checked against each frame header, before the frame's payload is read,
 * so 1009 may also come after earlier fragments were delivered.  For a
 * console that is harmless: those bytes were valid input.  What the reader
 * delivers never depends on how the input was split into feeds, which the
 * tests and the fuzzer check.
 */
#include <limits.h>
#include <stdint.h>
#include <string.h>

#include <openssl/evp.h>

#include "virtconsoled.h"

#define WS_RD_HEADER	0	/* reading a frame header */
#define WS_RD_PAYLOAD	1	/* reading its payload */
#define WS_RD_CLOSED	2	/* got a close frame: the rest is ignored */
#define WS_RD_FAILED	3	/* protocol error: sticky */

#define WS_UTF8_BAD	0xff	/* ws_utf8 need: an invalid sequence was seen */

static const char ws_b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

void
ws_utf8_init(struct ws_utf8 *u)
{
	u->need = 0;
	u->lo = 0x80;
	u->hi = 0xbf;
}

/*
 * Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above
 * U+10FFFF.  The ranges allowed for the byte after a lead byte rule those
 * out as soon as the offending byte arrives, which is what RFC 6455 8.1
 * asks for ("fail fast").  Returns how many bytes were accepted: len, or
 * the index of the first byte that cannot be valid (and then fails for
 * good).
 */
static size_t
ws_utf8_scan(struct ws_utf8 *u, const uint8_t *p, size_t len)
{
	size_t	i;
	uint8_t	c;

	if (u->need == WS_UTF8_BAD)
		return 0;
	for (i = 0; i < len; i++) {
		c = p[i];
		if (u->need > 0) {
			if (c < u->lo || c > u->hi)
				goto bad;
			u->need--;
			u->lo = 0x80;
			u->hi = 0xbf;
			continue;
		}
		if (c < 0x80)
			continue;
		if (c < 0xc2 || c > 0xf4)
			goto bad;	/* a continuation, overlong or too big */
		if (c < 0xe0)
			u->need = 1;
		else if (c < 0xf0) {
			u->need = 2;
			if (c == 0xe0)
				u->lo = 0xa0;	/* overlong */
			else if (c == 0xed)
				u->hi = 0x9f;	/* surrogates */
		} else {
			u->need = 3;
			if (c == 0xf0)
				u->lo = 0x90;	/* overlong */
			else if (c == 0xf4)
				u->hi = 0x8f;	/* above U+10FFFF */
		}
	}
	return len;

bad:
	u->need = WS_UTF8_BAD;
	return i;
}

/* Returns 0 while the bytes so far can still be valid, else -1. */
int
ws_utf8_feed(struct ws_utf8 *u, const uint8_t *p, size_t len)
{
	return ws_utf8_scan(u, p, len) == len ? 0 : -1;
}

/* Whether the bytes fed so far end on a character boundary. */
int
ws_utf8_done(const struct ws_utf8 *u)
{
	return u->need == 0;
}

int
ws_utf8_valid(const void *p, size_t len)
{
	struct ws_utf8	u;

	ws_utf8_init(&u);
	return ws_utf8_feed(&u, p, len) == 0 && ws_utf8_done(&u);
}

/* RFC 6455 7.4: the codes a peer may put in a close frame. */
int
ws_close_code_ok(unsigned int code)
{
	return (code >= 1000 && code <= 1003) ||
	    (code >= 1007 && code <= 1011) ||
	    (code >= 3000 && code <= 4999);
}

/* Returns the encoded length; out gets a NUL too (WS_B64_SIZE(len)). */
size_t
ws_b64_encode(const uint8_t *in, size_t len, char *out)
{
	size_t		i, n = 0;
	uint32_t	v;

	for (i = 0; i + 3 <= len; i += 3) {
		v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		out[n++] = ws_b64_alphabet[v >> 18];
		out[n++] = ws_b64_alphabet[(v >> 12) & 0x3f];
		out[n++] = ws_b64_alphabet[(v >> 6) & 0x3f];
		out[n++] = ws_b64_alphabet[v & 0x3f];
	}
	if (len - i == 1) {
		v = (uint32_t)in[i] << 16;
		out[n++] = ws_b64_alphabet[v >> 18];
		out[n++] = ws_b64_alphabet[(v >> 12) & 0x3f];
		out[n++] = '=';
		out[n++] = '=';
	} else if (len - i == 2) {
		v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
		out[n++] = ws_b64_alphabet[v >> 18];
		out[n++] = ws_b64_alphabet[(v >> 12) & 0x3f];
		out[n++] = ws_b64_alphabet[(v >> 6) & 0x3f];
		out[n++] = '=';
	}
	out[n] = '\0';
	return n;
}

static int
ws_b64_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/*
 * Decode canonical base64: padded to a multiple of 4, '=' only at the end,
 * unused bits zero, no blanks.  Every encoder a client uses (btoa, Python)
 * writes exactly that, and one spelling per byte string keeps it simple to
 * reason about.  Returns the decoded length, or -1 for bad input or when
 * the result would not fit outlen.
 */
ssize_t
ws_b64_decode(const char *in, size_t len, uint8_t *out, size_t outlen)
{
	size_t		i, n = 0, k;
	int		a, b, c, d;
	uint32_t	v;

	if (len % 4 != 0 || len / 4 * 3 > (size_t)SSIZE_MAX)
		return -1;
	for (i = 0; i < len; i += 4) {
		a = ws_b64_value(in[i]);
		b = ws_b64_value(in[i + 1]);
		c = ws_b64_value(in[i + 2]);
		d = ws_b64_value(in[i + 3]);
		if (a == -1 || b == -1)
			return -1;
		k = 3;
		if (i + 4 == len && in[i + 3] == '=') {
			if (in[i + 2] == '=') {
				if (b & 0x0f)
					return -1;
				c = d = 0;
				k = 1;
			} else {
				if (c == -1 || (c & 0x03))
					return -1;
				d = 0;
				k = 2;
			}
		} else if (c == -1 || d == -1)
			return -1;
		if (k > outlen - n)
			return -1;
		v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 |
		    (uint32_t)d;
		out[n++] = (uint8_t)(v >> 16);
		if (k > 1)
			out[n++] = (uint8_t)(v >> 8);
		if (k > 2)
			out[n++] = (uint8_t)v;
	}
	return (ssize_t)n;
}

/*
 * The handshake: the key must be base64 of exactly 16 bytes (RFC 6455
 * 4.2.1), and the answer is base64(SHA-1(key GUID)).  out gets 28
 * characters and a NUL.  Returns 0, or -1 for a bad key.
 */
int
ws_accept_key(const char *key, char out[WS_ACCEPT_LEN])
{
	uint8_t		raw[16], md[EVP_MAX_MD_SIZE];
	char		buf[24 + sizeof ws_guid];
	unsigned int	mdlen;

	if (strnlen(key, 25) != 24 ||
	    ws_b64_decode(key, 24, raw, sizeof raw) != (ssize_t)sizeof raw)
		return -1;
	memcpy(buf, key, 24);
	memcpy(buf + 24, ws_guid, sizeof ws_guid - 1);
	if (EVP_Digest(buf, 24 + sizeof ws_guid - 1, md, &mdlen, EVP_sha1(),
	    NULL) != 1 || mdlen != 20)
		return -1;
	if (EVP_EncodeBlock((unsigned char *)out, md, 20) != WS_ACCEPT_LEN - 1)
		return -1;
	return 0;
}

/*
 * A server frame header (never masked).  len must be below 2^63; the
 * shortest length form is used, as RFC 6455 5.2 requires.
 */
size_t
ws_frame_header(uint8_t out[WS_HEADER_MAX], int opcode, int fin,
    uint64_t len)
{
	int	i;

	out[0] = (uint8_t)((fin ? 0x80 : 0) | (opcode & 0x0f));
	if (len <= 125) {
		out[1] = (uint8_t)len;
		return 2;
	}
	if (len <= 0xffff) {
		out[1] = 126;
		out[2] = (uint8_t)(len >> 8);
		out[3] = (uint8_t)len;
		return 4;
	}
	out[1] = 127;
	for (i = 0; i < 8; i++)
		out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
	return 10;
}

/*
 * A close frame's payload: the code, then as much of reason as fits in 123
 * bytes, cut on a character boundary (and before anything that is not
 * UTF-8, which the peer would have to fail with 1007).  Code 0 means no
 * code and no reason: an empty payload.  The caller must not send the
 * codes that never go on the wire (1005, 1006, 1015).
 */
size_t
ws_close_payload(uint8_t out[WS_CONTROL_MAX], uint16_t code,
    const char *reason)
{
	struct ws_utf8	u;
	size_t		i, len, keep = 0;

	if (code == 0)
		return 0;
	out[0] = (uint8_t)(code >> 8);
	out[1] = (uint8_t)code;
	if (reason == NULL)
		return 2;
	len = strnlen(reason, WS_CONTROL_MAX - 2);
	ws_utf8_init(&u);
	for (i = 0; i < len; i++) {
		if (ws_utf8_feed(&u, (const uint8_t *)reason + i, 1) == -1)
			break;
		if (ws_utf8_done(&u))
			keep = i + 1;
	}
	memcpy(out + 2, reason, keep);
	return 2 + keep;
}

void
ws_reader_init(struct ws_reader *r, size_t max_message)
{
	memset(r, 0, sizeof *r);
	r->state = WS_RD_HEADER;
	r->hdr_need = 2;
	r->max_message = max_message == 0 ? UINT64_MAX : max_message;
	ws_utf8_init(&r->utf8);
}

/*
 * The same reader for a client (bench/vcdload): a server's frames must not
 * be masked (RFC 6455 5.1), and their payload is taken as it is.
 */
void
ws_reader_init_client(struct ws_reader *r, size_t max_message)
{
	ws_reader_init(r, max_message);
	r->client = 1;
}

static int
ws_reader_fail(struct ws_reader *r, uint16_t code, const char *why)
{
	r->state = WS_RD_FAILED;
	r->err_code = code;
	r->err_why = why;
	return -1;
}

static int
ws_reader_error(const struct ws_reader *r, struct ws_event *ev)
{
	ev->type = WS_EV_ERROR;
	ev->code = r->err_code;
	ev->reason = r->err_why;
	ev->reason_len = strlen(r->err_why);
	return WS_EV_ERROR;
}

/* Ready for the next frame header. */
static void
ws_reader_next(struct ws_reader *r)
{
	r->state = WS_RD_HEADER;
	r->hdr_have = 0;
	r->hdr_need = 2;
}

/*
 * Check the first header bytes as they arrive, so a bad frame is refused
 * before the client sends (or we wait for) anything more.
 */
static int
ws_reader_check(struct ws_reader *r)
{
	uint8_t	b;
	int	op;

	if (r->hdr_have == 3) {
		if ((r->hdr[1] & 0x7f) == 127 && (r->hdr[2] & 0x80))
			return ws_reader_fail(r, 1002,
			    "64-bit length with the top bit set");
		return 0;
	}
	if (r->hdr_have == 1) {
		b = r->hdr[0];
		if (b & 0x70)
			return ws_reader_fail(r, 1002, "reserved bits set");
		op = b & 0x0f;
		switch (op) {
		case WS_OP_CONT:
		case WS_OP_TEXT:
		case WS_OP_BINARY:
		case WS_OP_CLOSE:
		case WS_OP_PING:
		case WS_OP_PONG:
			break;
		default:
			return ws_reader_fail(r, 1002, "unknown opcode");
		}
		r->fin = (b & 0x80) != 0;
		r->opcode = op;
		if ((op & 0x08) && !r->fin)
			return ws_reader_fail(r, 1002,
			    "fragmented control frame");
		if (op == WS_OP_CONT && r->msg_opcode == 0)
			return ws_reader_fail(r, 1002,
			    "continuation without a message");
		if (op != WS_OP_CONT && !(op & 0x08) && r->msg_opcode != 0)
			return ws_reader_fail(r, 1002,
			    "new message inside a fragmented one");
		return 0;
	}
	b = r->hdr[1];
	if (r->client && (b & 0x80))
		return ws_reader_fail(r, 1002, "masked server frame");
	if (!r->client && !(b & 0x80))
		return ws_reader_fail(r, 1002, "unmasked client frame");
	b &= 0x7f;
	if ((r->opcode & 0x08) && b > WS_CONTROL_MAX)
		return ws_reader_fail(r, 1002, "control frame over 125 bytes");
	r->hdr_need = 2 + (b == 126 ? 2 : b == 127 ? 8 : 0) +
	    (r->client ? 0 : 4);
	return 0;
}

/*
 * The whole header is in: take the length and the mask, and count the
 * frame against the message limit before reading any of its payload.
 * Lengths in a longer form than needed are accepted: harmless, and the
 * MUST in RFC 6455 5.2 binds the sender.
 */
static int
ws_reader_header(struct ws_reader *r)
{
	const uint8_t	*p = r->hdr + 2;
	uint64_t	 len;
	uint8_t		 l = r->hdr[1] & 0x7f;
	int		 i;

	if (l == 126) {
		len = (uint64_t)p[0] << 8 | p[1];
		p += 2;
	} else if (l == 127) {
		/* Below 2^63: the top bit was refused as it arrived. */
		len = 0;
		for (i = 0; i < 8; i++)
			len = len << 8 | p[i];
		p += 8;
	} else
		len = l;
	if (r->client)
		memset(r->mask, 0, sizeof r->mask);	/* unmasking copies */
	else
		memcpy(r->mask, p, sizeof r->mask);
	r->mask_off = 0;
	r->remain = len;
	r->ctl_len = 0;
	if (!(r->opcode & 0x08)) {
		if (r->opcode != WS_OP_CONT) {
			r->msg_opcode = r->opcode;
			r->msg_len = 0;
			ws_utf8_init(&r->utf8);
		}
		if (len > r->max_message - r->msg_len)
			return ws_reader_fail(r, 1009, "message too big");
		r->msg_len += len;
	}
	r->state = WS_RD_PAYLOAD;
	return 0;
}

static void
ws_reader_unmask(struct ws_reader *r, uint8_t *dst, const uint8_t *src,
    size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++)
		dst[i] = src[i] ^ r->mask[(r->mask_off + i) & 3];
	r->mask_off = (r->mask_off + n) & 3;
}

/* A whole control frame is in: hand it on, a close frame checked. */
static int
ws_reader_control(struct ws_reader *r, struct ws_event *ev)
{
	size_t	n;

	switch (r->opcode) {
	case WS_OP_PING:
	case WS_OP_PONG:
		ev->type = r->opcode == WS_OP_PING ? WS_EV_PING : WS_EV_PONG;
		ev->data = r->ctl;
		ev->len = r->ctl_len;
		return ev->type;
	}
	if (r->ctl_len == 1) {
		ws_reader_fail(r, 1002, "close frame with a 1-byte payload");
		return ws_reader_error(r, ev);
	}
	r->close_reason[0] = '\0';
	if (r->ctl_len >= 2) {
		ev->code = (uint16_t)(r->ctl[0] << 8 | r->ctl[1]);
		if (!ws_close_code_ok(ev->code)) {
			ws_reader_fail(r, 1002, "invalid close code");
			return ws_reader_error(r, ev);
		}
		n = r->ctl_len - 2;
		if (!ws_utf8_valid(r->ctl + 2, n)) {
			ws_reader_fail(r, 1007, "invalid UTF-8 in close reason");
			return ws_reader_error(r, ev);
		}
		memcpy(r->close_reason, r->ctl + 2, n);
		r->close_reason[n] = '\0';
		ev->reason_len = n;
	}
	ev->type = WS_EV_CLOSE;
	ev->reason = r->close_reason;
	r->state = WS_RD_CLOSED;
	return WS_EV_CLOSE;
}

/*
 * Validate n bytes of text in the chunk.  Returns n, or the index of the
 * first bad byte with the reader failed: a byte that cannot be UTF-8, or
 * the message's last byte when it leaves a character open.
 */
static size_t
ws_reader_text(struct ws_reader *r, size_t n, int last)
{
	size_t	k;

	if ((k = ws_utf8_scan(&r->utf8, r->chunk, n)) < n) {
		ws_reader_fail(r, 1007, "invalid UTF-8 in text");
		return k;
	}
	if (n > 0 && last && !ws_utf8_done(&r->utf8)) {
		ws_reader_fail(r, 1007, "text ends inside a character");
		return n - 1;
	}
	return n;
}

/*
 * Feed bytes from the client; returns the next event (also in ev->type).
 * *consumed says how many bytes of buf were used: all of them for
 * WS_EV_NEED_MORE (partial headers and control payloads are kept here), so
 * the caller drains that many and calls again with the rest until it gets
 * WS_EV_NEED_MORE.  ev->data and ev->reason point into the reader and stay
 * valid until the next call.
 *
 * A text message's bytes before an invalid one come as WS_EV_DATA that
 * leaves the bad byte unconsumed, so the next call (which the caller makes
 * as input remains) reports the error.  After a close frame the reader
 * ignores everything (WS_EV_NEED_MORE); after an error it keeps returning
 * the same WS_EV_ERROR, swallowing all input, so a careless loop cannot
 * spin.
 */
int
ws_reader_feed(struct ws_reader *r, const uint8_t *buf, size_t len,
    size_t *consumed, struct ws_event *ev)
{
	size_t	off = 0, n, k;
	int	last;

	memset(ev, 0, sizeof *ev);
	ev->type = WS_EV_NEED_MORE;
	ev->reason = "";
	*consumed = 0;
	if (r->state == WS_RD_FAILED) {
		*consumed = len;
		return ws_reader_error(r, ev);
	}
	if (r->state == WS_RD_CLOSED) {
		*consumed = len;
		return WS_EV_NEED_MORE;
	}

	for (;;) {
		if (r->state == WS_RD_HEADER) {
			while (r->hdr_have < r->hdr_need) {
				if (off == len)
					goto more;
				r->hdr[r->hdr_have++] = buf[off++];
				if (r->hdr_have <= 3 &&
				    ws_reader_check(r) == -1)
					goto error;
			}
			if (ws_reader_header(r) == -1)
				goto error;
		}

		n = len - off;
		if (n > r->remain)
			n = (size_t)r->remain;
		if (r->opcode & 0x08) {
			/* Control payloads are kept whole: at most 125. */
			ws_reader_unmask(r, r->ctl + r->ctl_len, buf + off, n);
			off += n;
			r->ctl_len += n;
			r->remain -= n;
			if (r->remain > 0)
				goto more;
			ws_reader_next(r);
			*consumed = off;
			return ws_reader_control(r, ev);
		}

		if (n == 0 && r->remain > 0)
			goto more;
		if (n > sizeof r->chunk)
			n = sizeof r->chunk;
		ws_reader_unmask(r, r->chunk, buf + off, n);
		r->remain -= n;
		last = r->remain == 0 && r->fin;
		if (r->msg_opcode == WS_OP_TEXT &&
		    (k = ws_reader_text(r, n, last)) < n) {
			/*
			 * Hand on the bytes before the bad one and leave that
			 * one unconsumed, so the caller calls again and gets
			 * the error: what is delivered does not depend on how
			 * the input was split.
			 */
			if (k == 0) {
				off += n;
				goto error;
			}
			n = k;
			last = 0;
		} else if (r->remain == 0) {
			ws_reader_next(r);
			if (last && r->msg_opcode == WS_OP_TEXT &&
			    !ws_utf8_done(&r->utf8)) {
				/* An empty final frame after an open one. */
				ws_reader_fail(r, 1007,
				    "text ends inside a character");
				goto error;
			}
		}
		off += n;
		/* An empty fragment that ends nothing is not worth a call. */
		if (n == 0 && !last)
			continue;
		ev->type = WS_EV_DATA;
		ev->opcode = r->msg_opcode;
		ev->fin = last;
		ev->data = r->chunk;
		ev->len = n;
		if (last) {
			r->msg_opcode = 0;
			r->msg_len = 0;
		}
		*consumed = off;
		return WS_EV_DATA;
	}

more:
	*consumed = off;
	return WS_EV_NEED_MORE;

error:
	*consumed = off;
	return ws_reader_error(r, ev);
}
