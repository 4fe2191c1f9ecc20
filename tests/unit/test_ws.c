/*
 * Unit tests of the RFC 6455 module: the handshake key, the frame reader
 * (RFC examples, every frame-level bad input of the WebSocket issue, split
 * feeds), close payloads, frame headers, UTF-8 and base64.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "virtconsoled.h"
#include "tap.h"

static const uint8_t	mask_key[4] = { 0x37, 0xfa, 0x21, 0x3d };

/* What a reader made of a byte stream, as one comparable string. */
struct transcript {
	char	*buf;
	size_t	 len, size;
	int	 last;		/* last event type */
	int	 code;		/* its close or error code */
	size_t	 events;
};

static void
tr_add(struct transcript *t, const void *p, size_t len)
{
	if (t->len + len + 1 > t->size) {
		t->size = (t->len + len + 1) * 2;
		t->buf = xrealloc(t->buf, t->size);
	}
	memcpy(t->buf + t->len, p, len);
	t->len += len;
	t->buf[t->len] = '\0';
}

static void
tr_str(struct transcript *t, const char *s)
{
	tr_add(t, s, strlen(s));
}

static void
tr_free(struct transcript *t)
{
	free(t->buf);
	memset(t, 0, sizeof *t);
}

/* Record one event; returns 1 when the stream is over. */
static int
tr_event(struct transcript *t, const struct ws_event *ev)
{
	char	tmp[64];

	if (ev->type == WS_EV_NEED_MORE)
		return 0;
	t->last = ev->type;
	switch (ev->type) {
	case WS_EV_NEED_MORE:
		return 0;
	case WS_EV_DATA:
		t->events++;
		tr_add(t, ev->data, ev->len);
		if (ev->fin)
			tr_str(t, ev->opcode == WS_OP_TEXT ? "|T" : "|B");
		return 0;
	case WS_EV_PING:
	case WS_EV_PONG:
		t->events++;
		tr_str(t, ev->type == WS_EV_PING ? "<ping:" : "<pong:");
		tr_add(t, ev->data, ev->len);
		tr_str(t, ">");
		return 0;
	case WS_EV_CLOSE:
		t->events++;
		t->code = ev->code;
		snprintf(tmp, sizeof tmp, "<close:%u:", ev->code);
		tr_str(t, tmp);
		tr_add(t, ev->reason, ev->reason_len);
		tr_str(t, ">");
		return 1;
	case WS_EV_ERROR:
		t->events++;
		t->code = ev->code;
		snprintf(tmp, sizeof tmp, "<error:%u>", ev->code);
		tr_str(t, tmp);
		return 1;
	}
	tr_str(t, "<bogus>");
	return 1;
}

/*
 * Feed in in pieces of step bytes (0: all at once) the way a caller
 * does: call again with what is left until WS_EV_NEED_MORE.
 */
static void
run(const uint8_t *in, size_t len, size_t step, size_t max,
    struct transcript *t)
{
	struct ws_reader	*r;
	struct ws_event		 ev;
	size_t			 off = 0, end, used;
	int			 rc;

	memset(t, 0, sizeof *t);
	tr_str(t, "");
	r = xmalloc(sizeof *r);
	ws_reader_init(r, max);
	while (off < len || (off == 0 && len == 0)) {
		end = step == 0 || len - off < step ? len : off + step;
		for (;;) {
			rc = ws_reader_feed(r, in + off, end - off, &used, &ev);
			if (used > end - off || rc != (int)ev.type) {
				tr_str(t, "<broken>");
				goto out;
			}
			off += used;
			if (tr_event(t, &ev))
				goto out;
			if (rc == WS_EV_NEED_MORE)
				break;
		}
		if (len == 0)
			break;
	}
out:
	free(r);
}

/* Run and compare the transcript as a string. */
static void
expect(const uint8_t *in, size_t len, size_t max, const char *want,
    const char *what)
{
	struct transcript	t;

	run(in, len, 0, max, &t);
	is_str(t.buf, want, "%s", what);
	tr_free(&t);
	run(in, len, 1, max, &t);
	is_str(t.buf, want, "%s (byte by byte)", what);
	tr_free(&t);
}

/* Append a masked client frame with the first byte b0. */
static size_t
frame(uint8_t *out, int b0, const void *payload, size_t len)
{
	size_t		n, i;
	const uint8_t	*p = payload;

	n = ws_frame_header(out, 0, 0, len);
	out[0] = (uint8_t)b0;
	out[1] |= 0x80;
	memcpy(out + n, mask_key, 4);
	n += 4;
	for (i = 0; i < len; i++)
		out[n + i] = p[i] ^ mask_key[i & 3];
	return n + len;
}

static void
test_accept_key(void)
{
	char	out[WS_ACCEPT_LEN];

	is_int(ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", out), 0,
	    "RFC 6455 example key accepted");
	is_str(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", "RFC 6455 accept value");
	is_int(ws_accept_key("", out), -1, "empty key refused");
	is_int(ws_accept_key("dGhlIHNhbXBsZSBub25jZQ=", out), -1,
	    "23-character key refused");
	is_int(ws_accept_key("dGhlIHNhbXBsZSBub25jZQ===", out), -1,
	    "25-character key refused");
	is_int(ws_accept_key("AAAAAAAAAAAAAAAAAAAAAAAA", out), -1,
	    "key of 18 bytes refused");
	is_int(ws_accept_key("AAAAAAAAAAAAAAAAAAAAAAA=", out), -1,
	    "key of 17 bytes refused");
	is_int(ws_accept_key("dGhlIHNhbXBsZSBub25jZR==", out), -1,
	    "non-canonical key refused");
	is_int(ws_accept_key("dGhlIHNhbXBsZSBub25j ==", out), -1,
	    "key with a blank refused");
	is_int(ws_accept_key("dGhlIHNhbXBsZSBub2=jZQ==", out), -1,
	    "key with '=' inside refused");
}

static void
test_rfc_examples(void)
{
	static const uint8_t	masked_hello[] = { 0x81, 0x85, 0x37, 0xfa,
	    0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58 };
	static const uint8_t	unmasked_hello[] = { 0x81, 0x05, 0x48, 0x65,
	    0x6c, 0x6c, 0x6f };
	static const uint8_t	unmasked_frag[] = { 0x01, 0x03, 0x48, 0x65,
	    0x6c, 0x80, 0x02, 0x6c, 0x6f };
	static const uint8_t	unmasked_ping[] = { 0x89, 0x05, 0x48, 0x65,
	    0x6c, 0x6c, 0x6f };
	static const uint8_t	masked_pong[] = { 0x8a, 0x85, 0x37, 0xfa,
	    0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58 };
	uint8_t			buf[256];
	size_t			n;

	expect(masked_hello, sizeof masked_hello, 0, "Hello|T",
	    "RFC 5.7: masked \"Hello\"");
	expect(unmasked_hello, sizeof unmasked_hello, 0, "<error:1002>",
	    "RFC 5.7: unmasked \"Hello\" is a protocol error");
	expect(unmasked_frag, sizeof unmasked_frag, 0, "<error:1002>",
	    "RFC 5.7: unmasked fragments are a protocol error");
	expect(unmasked_ping, sizeof unmasked_ping, 0, "<error:1002>",
	    "RFC 5.7: unmasked ping is a protocol error");
	expect(masked_pong, sizeof masked_pong, 0, "<pong:Hello>",
	    "RFC 5.7: masked pong");
	n = frame(buf, 0x01, "Hel", 3);
	n += frame(buf + n, 0x80, "lo", 2);
	expect(buf, n, 0, "Hello|T", "RFC 5.7: fragmented \"Hello\", masked");
	n = frame(buf, 0x89, "Hello", 5);
	expect(buf, n, 0, "<ping:Hello>", "masked ping");
}

static void
test_bad_frames(void)
{
	uint8_t	buf[512];
	char	what[64];
	size_t	n;
	int	i, op;

	for (i = 0; i < 3; i++) {
		n = frame(buf, 0x81 | (0x40 >> i), "x", 1);
		snprintf(what, sizeof what, "RSV%d set: 1002", i + 1);
		expect(buf, n, 0, "<error:1002>", what);
	}
	n = frame(buf, 0x81 | 0x70, "x", 1);
	expect(buf, n, 0, "<error:1002>", "RSV bits on a ping: 1002");
	for (op = 3; op <= 15; op++) {
		if (op >= 8 && op <= 10)
			continue;
		n = frame(buf, 0x80 | op, "x", 1);
		snprintf(what, sizeof what, "opcode %#x: 1002", op);
		expect(buf, n, 0, "<error:1002>", what);
	}
	memset(buf + 300, 'p', 126);
	n = frame(buf, 0x89, buf + 300, 126);
	expect(buf, n, 0, "<error:1002>", "ping of 126 bytes: 1002");
	n = frame(buf, 0x89, buf + 300, 125);
	ok(n == 131, "ping of 125 bytes framed");
	{
		struct transcript	t;

		run(buf, n, 0, 0, &t);
		is_int(t.last, WS_EV_PING, "ping of 125 bytes accepted");
		tr_free(&t);
	}
	/* A 126-byte close frame is refused on its length byte alone. */
	buf[0] = 0x88;
	buf[1] = 0x80 | 126;
	expect(buf, 2, 0, "<error:1002>",
	    "close frame over 125 bytes: 1002 at once");
	n = frame(buf, 0x09, "p", 1);
	expect(buf, n, 0, "<error:1002>", "fragmented ping: 1002");
	n = frame(buf, 0x08, "", 0);
	expect(buf, n, 0, "<error:1002>", "fragmented close: 1002");
	n = frame(buf, 0x0a, "", 0);
	expect(buf, n, 0, "<error:1002>", "fragmented pong: 1002");
	n = frame(buf, 0x80, "x", 1);
	expect(buf, n, 0, "<error:1002>", "continuation without a message");
	n = frame(buf, 0x01, "a", 1);
	n += frame(buf + n, 0x81, "b", 1);
	expect(buf, n, 0, "a<error:1002>",
	    "new text frame inside a fragmented message");
	n = frame(buf, 0x02, "a", 1);
	n += frame(buf + n, 0x02, "b", 1);
	expect(buf, n, 0, "a<error:1002>",
	    "new binary frame inside a fragmented message");

	/* 2^63 and beyond: refused on the header, nothing else needed. */
	memset(buf, 0, 14);
	buf[0] = 0x82;
	buf[1] = 0x80 | 127;
	buf[2] = 0x80;
	expect(buf, 10, 0, "<error:1002>", "2^63-length header: 1002");
	expect(buf, 3, 0, "<error:1002>",
	    "2^63-length header: 1002 on its first length byte");
	memset(buf + 2, 0xff, 8);
	expect(buf, 10, 0, "<error:1002>", "2^64-1-length header: 1002");
	buf[2] = 0x7f;
	expect(buf, 14, 0, "",
	    "2^63-1-length header, no limit: waits for the payload");
	expect(buf, 14, 1 << 20, "<error:1009>",
	    "2^63-1-length header: 1009 before any payload");
}

static void
test_utf8_frames(void)
{
	uint8_t	buf[512];
	size_t	n;

	n = frame(buf, 0x81, "\xc0\x80", 2);
	expect(buf, n, 0, "<error:1007>", "overlong NUL in text: 1007");
	/* The bytes before the bad one are delivered, however split. */
	n = frame(buf, 0x81, "\xed\xa0\x80", 3);
	expect(buf, n, 0, "\xed<error:1007>", "surrogate in text: 1007");
	n = frame(buf, 0x81, "\xf4\x90\x80\x80", 4);
	expect(buf, n, 0, "\xf4<error:1007>", "above U+10FFFF in text: 1007");
	n = frame(buf, 0x81, "a\xff", 2);
	expect(buf, n, 0, "a<error:1007>", "0xff in text: 1007");
	n = frame(buf, 0x81, "a\xe2\x82", 3);
	expect(buf, n, 0, "a\xe2<error:1007>",
	    "text ending inside a character: 1007");
	n = frame(buf, 0x82, "a\xff", 2);
	expect(buf, n, 0, "a\xff|B", "binary is not UTF-8 checked");

	n = frame(buf, 0x01, "\xe2", 1);
	n += frame(buf + n, 0x00, "\x82", 1);
	n += frame(buf + n, 0x80, "\xac!", 2);
	expect(buf, n, 0, "\xe2\x82\xac!|T",
	    "a character split across three fragments");
	n = frame(buf, 0x01, "\xe2", 1);
	n += frame(buf + n, 0x89, "", 0);
	n += frame(buf + n, 0x80, "\x82\xac", 2);
	expect(buf, n, 0, "\xe2<ping:>\x82\xac|T",
	    "a character split around a ping");
	n = frame(buf, 0x01, "ok\xe2", 3);
	n += frame(buf + n, 0x80, "(", 1);
	expect(buf, n, 0, "ok\xe2<error:1007>",
	    "invalid sequence split across fragments: 1007 after delivery");
	n = frame(buf, 0x01, "ok\xe2\x82", 4);
	n += frame(buf + n, 0x80, "", 0);
	expect(buf, n, 0, "ok\xe2\x82<error:1007>",
	    "message ending inside a character across fragments: 1007");
	n = frame(buf, 0x01, "\xe2\x82", 2);
	n += frame(buf + n, 0x80, "\xac", 1);
	n += frame(buf + n, 0x81, "\xac", 1);
	expect(buf, n, 0, "\xe2\x82\xac|T<error:1007>",
	    "UTF-8 state resets with each message");

	/* Fail fast: the rest of a long frame is not awaited. */
	memset(buf + 300, 'a', 200);
	buf[301] = 0xc1;
	n = frame(buf, 0x81, buf + 300, 200);
	{
		struct ws_reader	*r = xmalloc(sizeof *r);
		struct ws_event		 ev;
		size_t			 used;

		ws_reader_init(r, 0);
		is_int(ws_reader_feed(r, buf, 4 + 4 + 2, &used, &ev),
		    WS_EV_DATA, "the byte before a bad one is delivered");
		ok(ev.len == 1 && ev.data[0] == 'a' && !ev.fin && used == 9,
		    "just that byte, the bad one left unconsumed");
		is_int(ws_reader_feed(r, buf + used, 1, &used, &ev),
		    WS_EV_ERROR, "invalid text fails before the frame ends");
		is_int(ev.code, 1007, "with 1007");
		is_int(ws_reader_feed(r, buf, n, &used, &ev), WS_EV_ERROR,
		    "errors are sticky");
		is_int(used, n, "and swallow the input");
		is_int(ev.code, 1007, "with the same code");
		free(r);
	}
}

static void
test_lengths(void)
{
	static uint8_t	buf[140000], payload[70000];
	struct transcript t;
	size_t		n, sizes[] = { 125, 126, 65535, 65536, 70000 };
	size_t		i, steps[] = { 0, 1, 7, 8192, 9000 }, s;
	char		want[80000];

	for (i = 0; i < sizeof payload; i++)
		payload[i] = (uint8_t)('a' + i % 26);
	for (i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		n = frame(buf, 0x82, payload, sizes[i]);
		is_int(n - sizes[i], sizes[i] <= 125 ? 6 :
		    sizes[i] <= 65535 ? 8 : 14, "header size for %zu bytes",
		    sizes[i]);
		memcpy(want, payload, sizes[i]);
		memcpy(want + sizes[i], "|B", 3);
		for (s = 0; s < sizeof steps / sizeof steps[0]; s++) {
			run(buf, n, steps[s], 0, &t);
			ok(t.len == sizes[i] + 2 &&
			    memcmp(t.buf, want, t.len) == 0,
			    "%zu-byte frame fed %zu at a time", sizes[i],
			    steps[s]);
			tr_free(&t);
		}
	}

	/* Longer length forms than needed are accepted. */
	buf[0] = 0x81;
	buf[1] = 0x80 | 126;
	buf[2] = 0;
	buf[3] = 2;
	memcpy(buf + 4, mask_key, 4);
	buf[8] = 'h' ^ mask_key[0];
	buf[9] = 'i' ^ mask_key[1];
	expect(buf, 10, 0, "hi|T", "2 bytes in the 16-bit length form");
	memset(buf, 0, 16);
	buf[0] = 0x81;
	buf[1] = 0x80 | 127;
	buf[9] = 2;
	memcpy(buf + 10, mask_key, 4);
	buf[14] = 'h' ^ mask_key[0];
	buf[15] = 'i' ^ mask_key[1];
	expect(buf, 16, 0, "hi|T", "2 bytes in the 64-bit length form");

	/* Big frames come in chunks, fin only on the last. */
	n = frame(buf, 0x82, payload, 20000);
	{
		struct ws_reader	*r = xmalloc(sizeof *r);
		struct ws_event		 ev;
		size_t			 used, off = 0, got = 0, nev = 0;
		int			 fins = 0, good = 1;

		ws_reader_init(r, 0);
		while (ws_reader_feed(r, buf + off, n - off, &used, &ev) ==
		    WS_EV_DATA) {
			if (ev.len > WS_CHUNK || ev.opcode != WS_OP_BINARY ||
			    memcmp(ev.data, payload + got, ev.len) != 0)
				good = 0;
			off += used;
			got += ev.len;
			fins += ev.fin;
			nev++;
		}
		ok(good && got == 20000 && off == n && nev == 3 &&
		    fins == 1 && ev.fin == 0, "20000 bytes in 3 chunks");
		free(r);
	}
}

static void
test_stream(void)
{
	uint8_t			buf[4096], big[300];
	struct transcript	all, t;
	size_t			n, i, steps[] = { 1, 2, 3, 5, 7, 13, 100 };

	for (i = 0; i < sizeof big; i++)
		big[i] = (uint8_t)i;
	n = frame(buf, 0x01, "caf", 3);
	n += frame(buf + n, 0x89, "p1", 2);
	n += frame(buf + n, 0x00, "\xc3", 1);
	n += frame(buf + n, 0x8a, "", 0);
	n += frame(buf + n, 0x80, "\xa9 ok", 4);
	n += frame(buf + n, 0x82, big, sizeof big);
	n += frame(buf + n, 0x81, "", 0);
	n += frame(buf + n, 0x02, "", 0);
	n += frame(buf + n, 0x00, "", 0);
	n += frame(buf + n, 0x80, "z", 1);
	n += frame(buf + n, 0x88, "\x03\xe8" "bye", 5);
	n += frame(buf + n, 0x81, "after", 5);
	run(buf, n, 0, 0, &all);
	ok(all.last == WS_EV_CLOSE && all.code == 1000,
	    "stream ends with the close frame");
	ok(strncmp(all.buf, "caf<ping:p1>\xc3<pong:>\xa9 ok|T", 26) == 0,
	    "ping and pong interleaved in a fragmented message");
	ok(all.len > 300 && memcmp(all.buf + 26, big, 300) == 0 &&
	    strcmp(all.buf + 326, "|B|Tz|B<close:1000:bye>") == 0,
	    "binary, empty text, empty fragments and close");
	for (i = 0; i < sizeof steps / sizeof steps[0]; i++) {
		run(buf, n, steps[i], 0, &t);
		ok(t.len == all.len && memcmp(t.buf, all.buf, t.len) == 0,
		    "fed %zu at a time: same as all at once", steps[i]);
		tr_free(&t);
	}
	tr_free(&all);
}

static void
test_close(void)
{
	static const struct {
		unsigned int	code;
		const char	*want;
	} codes[] = {
		{ 0, "<error:1002>" }, { 999, "<error:1002>" },
		{ 1000, "<close:1000:>" }, { 1001, "<close:1001:>" },
		{ 1002, "<close:1002:>" }, { 1003, "<close:1003:>" },
		{ 1004, "<error:1002>" }, { 1005, "<error:1002>" },
		{ 1006, "<error:1002>" }, { 1007, "<close:1007:>" },
		{ 1011, "<close:1011:>" }, { 1012, "<error:1002>" },
		{ 1015, "<error:1002>" }, { 2999, "<error:1002>" },
		{ 3000, "<close:3000:>" }, { 4999, "<close:4999:>" },
		{ 5000, "<error:1002>" }, { 65535, "<error:1002>" },
	};
	uint8_t			buf[512], p[200];
	char			what[64], want[200];
	size_t			i, n;

	for (i = 0; i < sizeof codes / sizeof codes[0]; i++) {
		p[0] = (uint8_t)(codes[i].code >> 8);
		p[1] = (uint8_t)codes[i].code;
		n = frame(buf, 0x88, p, 2);
		snprintf(what, sizeof what, "close code %u", codes[i].code);
		expect(buf, n, 0, codes[i].want, what);
	}
	n = frame(buf, 0x88, "", 0);
	expect(buf, n, 0, "<close:0:>", "empty close: no code");
	n = frame(buf, 0x88, "\x03", 1);
	expect(buf, n, 0, "<error:1002>", "1-byte close payload: 1002");
	n = frame(buf, 0x88, "\x03\xe8" "caf\xc3\xa9", 7);
	expect(buf, n, 0, "<close:1000:caf\xc3\xa9>", "UTF-8 close reason");
	n = frame(buf, 0x88, "\x03\xe8" "caf\xc3", 6);
	expect(buf, n, 0, "<error:1007>", "truncated UTF-8 reason: 1007");
	n = frame(buf, 0x88, "\x0f\xa0" "\xed\xa0\x80", 5);
	expect(buf, n, 0, "<error:1007>", "surrogate in reason: 1007");
	p[0] = 0x0f;
	p[1] = 0xa0;
	memset(p + 2, 'r', 123);
	n = frame(buf, 0x88, p, 125);
	snprintf(want, sizeof want, "<close:4000:%.123s>", p + 2);
	expect(buf, n, 0, want, "123-byte reason");
	n = frame(buf, 0x88, "\x03\xe8", 2);
	n += frame(buf + n, 0x81, "ignored", 7);
	buf[n++] = 0xff;	/* garbage, too */
	expect(buf, n, 0, "<close:1000:>", "after a close, nothing counts");
	{
		struct ws_reader	*r = xmalloc(sizeof *r);
		struct ws_event		 ev;
		size_t			 used;

		ws_reader_init(r, 0);
		n = frame(buf, 0x88, "\x03\xe8", 2);
		ws_reader_feed(r, buf, n, &used, &ev);
		is_int(ws_reader_feed(r, buf, n, &used, &ev), WS_EV_NEED_MORE,
		    "a closed reader reports nothing more");
		is_int(used, n, "and swallows its input");
		free(r);
	}
	n = frame(buf, 0x01, "a", 1);
	n += frame(buf + n, 0x88, "\x03\xe8", 2);
	expect(buf, n, 0, "a<close:1000:>", "close inside a fragmented message");
}

static void
test_max_message(void)
{
	uint8_t	buf[512];
	size_t	n;

	n = frame(buf, 0x82, "0123456789", 10);
	expect(buf, n, 10, "0123456789|B", "message of exactly the limit");
	n = frame(buf, 0x82, "0123456789a", 11);
	expect(buf, n, 10, "<error:1009>", "one byte over the limit: 1009");
	expect(buf, 6, 10, "<error:1009>",
	    "1009 from the header, before the payload");
	n = frame(buf, 0x01, "01234", 5);
	n += frame(buf + n, 0x80, "56789", 5);
	n += frame(buf + n, 0x81, "0123456789", 10);
	expect(buf, n, 10, "0123456789|T0123456789|T",
	    "fragments summing to the limit; the count resets per message");
	n = frame(buf, 0x01, "012345", 6);
	n += frame(buf + n, 0x89, "ping", 4);
	n += frame(buf + n, 0x00, "6789", 4);
	n += frame(buf + n, 0x80, "a", 1);
	expect(buf, n, 10, "012345<ping:ping>6789<error:1009>",
	    "fragments over the limit: 1009 after delivery; pings not counted");
	n = frame(buf, 0x81, "", 0);
	expect(buf, n, 1, "|T", "empty message within a 1-byte limit");
}

static void
test_frame_header(void)
{
	uint8_t	h[WS_HEADER_MAX];
	size_t	n;

	n = ws_frame_header(h, WS_OP_BINARY, 1, 0);
	ok(n == 2 && h[0] == 0x82 && h[1] == 0, "header for 0 bytes");
	n = ws_frame_header(h, WS_OP_TEXT, 0, 125);
	ok(n == 2 && h[0] == 0x01 && h[1] == 125, "header for 125 bytes");
	n = ws_frame_header(h, WS_OP_BINARY, 1, 126);
	ok(n == 4 && h[1] == 126 && h[2] == 0 && h[3] == 126,
	    "header for 126 bytes");
	n = ws_frame_header(h, WS_OP_BINARY, 1, 65535);
	ok(n == 4 && h[1] == 126 && h[2] == 0xff && h[3] == 0xff,
	    "header for 65535 bytes");
	n = ws_frame_header(h, WS_OP_BINARY, 1, 65536);
	ok(n == 10 && h[1] == 127 && memcmp(h + 2,
	    "\x00\x00\x00\x00\x00\x01\x00\x00", 8) == 0,
	    "header for 65536 bytes");
	n = ws_frame_header(h, WS_OP_CLOSE, 1, 2);
	ok(n == 2 && h[0] == 0x88 && h[1] == 2, "close frame header");
}

static void
test_close_payload(void)
{
	uint8_t	p[WS_CONTROL_MAX];
	char	reason[300];
	size_t	n;

	n = ws_close_payload(p, 1000, "bye");
	ok(n == 5 && memcmp(p, "\x03\xe8" "bye", 5) == 0, "1000 \"bye\"");
	is_int(ws_close_payload(p, 0, "ignored"), 0, "code 0: empty payload");
	n = ws_close_payload(p, 4001, NULL);
	ok(n == 2 && p[0] == 0x0f && p[1] == 0xa1, "no reason");
	memset(reason, 'x', 200);
	reason[200] = '\0';
	is_int(ws_close_payload(p, 1000, reason), 125,
	    "long reason cut to 123 bytes");
	memset(reason, 'x', 121);
	strcpy(reason + 121, "\xe2\x82\xac");
	n = ws_close_payload(p, 1000, reason);
	is_int(n, 2 + 121, "cut before a character that does not fit");
	strcpy(reason + 120, "\xe2\x82\xac");
	is_int(ws_close_payload(p, 1000, reason), 125,
	    "a character that just fits is kept");
	n = ws_close_payload(p, 1000, "ok\xffno");
	ok(n == 4 && memcmp(p + 2, "ok", 2) == 0,
	    "invalid UTF-8 in a reason is cut off");
	ok(ws_utf8_valid(p + 2, n - 2), "the reason sent is valid UTF-8");
}

static void
test_utf8(void)
{
	static const char *good[] = {
		"", "a", "\xc2\x80", "\xdf\xbf", "\xe0\xa0\x80", "\xed\x9f\xbf",
		"\xee\x80\x80", "\xef\xbf\xbf", "\xf0\x90\x80\x80",
		"\xf4\x8f\xbf\xbf", "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5",
	};
	static const char *bad[] = {
		"\x80", "\xbf", "\xc0\x80", "\xc1\xbf", "\xe0\x9f\xbf",
		"\xed\xa0\x80", "\xed\xbf\xbf", "\xf0\x8f\xbf\xbf",
		"\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "\xfe", "\xff",
		"\xe2\x82", "\xc2", "\xc2\xc2\x80", "a\xe2\x82z",
	};
	struct ws_utf8	u;
	const uint8_t	*s;
	size_t		i;

	for (i = 0; i < sizeof good / sizeof good[0]; i++)
		ok(ws_utf8_valid(good[i], strlen(good[i])), "valid UTF-8 %zu",
		    i);
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
		ok(!ws_utf8_valid(bad[i], strlen(bad[i])),
		    "invalid UTF-8 %zu", i);
	/* Fail fast: at the 0x90 after 0xf4, not at the end. */
	s = (const uint8_t *)"\xce\xba\xf4\x90\x80\x80";
	ws_utf8_init(&u);
	for (i = 0; i < 6; i++)
		if (ws_utf8_feed(&u, s + i, 1) == -1)
			break;
	is_int(i, 3, "fails at the first impossible byte");
	is_int(ws_utf8_feed(&u, (const uint8_t *)"a", 1), -1,
	    "and stays failed");
}

static void
test_base64(void)
{
	static const char *vec[][2] = {
		{ "", "" }, { "f", "Zg==" }, { "fo", "Zm8=" }, { "foo", "Zm9v" },
		{ "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" },
		{ "foobar", "Zm9vYmFy" },
	};
	static const char *bad[] = {
		"Zg=", "Z===", "====", "Zg=a", "Zh==", "Zm9=", "Zm 9v",
		"Zm9v====", "=Zm9", "Zg==Zg==", "Zm9v\n", "Zm-v", "Zm_v",
		"Zm9\xc3",
	};
	char		enc[WS_B64_SIZE(64)];
	uint8_t		raw[64], dec[64];
	size_t		i, len, n;
	ssize_t		r;
	int		good = 1;

	for (i = 0; i < sizeof vec / sizeof vec[0]; i++) {
		n = ws_b64_encode((const uint8_t *)vec[i][0],
		    strlen(vec[i][0]), enc);
		ok(n == strlen(vec[i][1]) && strcmp(enc, vec[i][1]) == 0,
		    "encode \"%s\"", vec[i][0]);
		r = ws_b64_decode(vec[i][1], strlen(vec[i][1]), dec,
		    sizeof dec);
		ok(r == (ssize_t)strlen(vec[i][0]) &&
		    memcmp(dec, vec[i][0], (size_t)r) == 0,
		    "decode \"%s\"", vec[i][1]);
	}
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
		is_int(ws_b64_decode(bad[i], strlen(bad[i]), dec, sizeof dec),
		    -1, "bad base64 %zu refused", i);
	srandom(6455);
	for (len = 0; len <= 64; len++) {
		for (i = 0; i < len; i++)
			raw[i] = (uint8_t)random();
		n = ws_b64_encode(raw, len, enc);
		if (n != WS_B64_SIZE(len) - 1 || enc[n] != '\0' ||
		    ws_b64_decode(enc, n, dec, sizeof dec) != (ssize_t)len ||
		    memcmp(dec, raw, len) != 0)
			good = 0;
	}
	ok(good, "round trips of 0 to 64 random bytes");
	is_int(ws_b64_decode("Zm9vYmFy", 8, dec, 6), 6, "output that just fits");
	is_int(ws_b64_decode("Zm9vYmFy", 8, dec, 5), -1, "output too small");
	is_int(ws_b64_decode("Zm9vYg==", 8, dec, 4), 4,
	    "padding needs no room");
}

/* The client side (bench/vcdload): server frames come unmasked. */
static void
test_client_reader(void)
{
	static const uint8_t	unmasked_hello[] = { 0x81, 0x05, 0x48, 0x65,
	    0x6c, 0x6c, 0x6f };
	static const uint8_t	unmasked_ping[] = { 0x89, 0x02, 0x48, 0x69 };
	static const uint8_t	masked_hello[] = { 0x81, 0x85, 0x37, 0xfa,
	    0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58 };
	struct ws_reader	*r;
	struct ws_event		 ev;
	size_t			 used;

	r = xmalloc(sizeof *r);
	ws_reader_init_client(r, 0);
	is_int(ws_reader_feed(r, unmasked_hello, sizeof unmasked_hello, &used,
	    &ev), WS_EV_DATA, "client: an unmasked server frame is data");
	ok(used == sizeof unmasked_hello && ev.fin && ev.len == 5 &&
	    memcmp(ev.data, "Hello", 5) == 0, "client: its payload as sent");
	is_int(ws_reader_feed(r, unmasked_ping, sizeof unmasked_ping, &used,
	    &ev), WS_EV_PING, "client: an unmasked ping");
	ok(ev.len == 2 && memcmp(ev.data, "Hi", 2) == 0,
	    "client: the ping's payload");
	ws_reader_init_client(r, 0);
	is_int(ws_reader_feed(r, masked_hello, sizeof masked_hello, &used,
	    &ev), WS_EV_ERROR, "client: a masked server frame is refused");
	is_int(ev.code, 1002, "client: with 1002");
	free(r);
}

/* json_object_member(): the `resize` message's fields, at the top level. */
static int
member_is(const char *msg, const char *key, const char *want)
{
	const char	*v;
	size_t		 vlen;

	if (!json_object_member(msg, strlen(msg), key, &v, &vlen))
		return want == NULL;
	return want != NULL && vlen == strlen(want) &&
	    memcmp(v, want, vlen) == 0;
}

static void
test_json_member(void)
{
	static const char	msg[] =
	    "{ \"type\" : \"resize\", \"cols\":120 ,\"rows\":40,"
	    "\"nested\":{\"cols\":1},\"s\":\"a\\\"b\"}";

	ok(member_is(msg, "type", "\"resize\""), "json member: type, its "
	    "raw text with the quotes");
	ok(member_is(msg, "cols", "120") && member_is(msg, "rows", "40"),
	    "json member: cols and rows, white space around them skipped");
	ok(member_is(msg, "nested", "{\"cols\":1}"),
	    "json member: an object value whole");
	ok(member_is(msg, "s", "\"a\\\"b\""),
	    "json member: a string with an escaped quote");
	ok(member_is(msg, "col", NULL) && member_is(msg, "colsx", NULL) &&
	    member_is(msg, "", NULL), "json member: no prefix or longer key "
	    "matches");
	ok(member_is("{\"a\":{\"rows\":3}}", "rows", NULL),
	    "json member: a key inside a nested object is not at the top");
	ok(member_is("{}", "type", NULL), "json member: none in {}");
	ok(member_is("{\"k\":1,\"k\":2}", "k", "1"),
	    "json member: the first of two");
}

/* json_object_valid(): a client's text message under virtconsole.v1. */
static void
test_json(void)
{
	static const char *const good[] = {
		"{}", " {} ", "{\"type\":\"resize\",\"cols\":80,\"rows\":24}",
		"{\"a\":[1,-2,3.5e-3,0,true,false,null,{},[]],\"b\":\"\\u00e9\\n\"}",
		"\r\n\t{\"k\" : \"v\" }\n", "{\"\":\"\\\"\\\\\\/\\b\\f\\r\\t\"}",
		"{\"e\":1E+2,\"f\":-0.0}",
	};
	static const char *const bad[] = {
		"", " ", "[]", "\"x\"", "1", "null", "{", "}", "{,}",
		"{\"a\":1,}", "{\"a\"}", "{\"a\" 1}", "{a:1}", "{'a':1}",
		"{\"a\":01}", "{\"a\":1.}", "{\"a\":.5}", "{\"a\":1e}",
		"{\"a\":+1}", "{\"a\":tru}", "{\"a\":\"\\x\"}",
		"{\"a\":\"\\u12\"}", "{\"a\":\"\t\"}", "{} {}", "{}x",
		"{\"a\":[1,]}", "{\"a\":\"unterminated}", "{\"a\":NaN}",
	};
	char	deep[200];
	size_t	i;

	for (i = 0; i < sizeof good / sizeof good[0]; i++)
		ok(json_object_valid(good[i], strlen(good[i])),
		    "json: a JSON object: %s", good[i]);
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
		ok(!json_object_valid(bad[i], strlen(bad[i])),
		    "json: not one JSON object: '%s'", bad[i]);
	ok(!json_object_valid("{\"a\":1}\0", 9),
	    "json: a NUL after the object");
	/* 32 levels deep are taken, 33 are not. */
	memset(deep, 0, sizeof deep);
	for (i = 0; i < 31; i++)
		strcat(deep, "[");
	memmove(deep + 5, deep, strlen(deep) + 1);
	memcpy(deep, "{\"a\":", 5);
	for (i = 0; i < 31; i++)
		strcat(deep, "]");
	strcat(deep, "}");
	ok(json_object_valid(deep, strlen(deep)), "json: 32 levels deep");
	memmove(deep + 6, deep + 5, strlen(deep + 5) + 1);
	deep[5] = '[';
	strcat(deep, "]");
	memmove(deep + strlen(deep) - 2, "]}", 3);
	ok(!json_object_valid(deep, strlen(deep)),
	    "json: 33 levels deep are refused (the stack stays bounded)");
}

int
main(void)
{
	test_json();
	test_json_member();
	test_accept_key();
	test_rfc_examples();
	test_bad_frames();
	test_utf8_frames();
	test_lengths();
	test_stream();
	test_close();
	test_max_message();
	test_frame_header();
	test_close_payload();
	test_utf8();
	test_base64();
	test_client_reader();
	return tap_done();
}
