/*
 * Unit tests of tokens and session cookies (format version 2): mint and
 * verify with every claim, expiry and issue time, forgeries (any bit
 * flipped, truncated, extended, another key), the audience, version-1
 * texts, a cookie used as a token and the reverse, scopes, the replay
 * cache and its bound, strict base64url, the secret and audience files and
 * the Set-Cookie builder.  The layout documented in token.c is rebuilt
 * here independently (craft()), so the tests also pin the format.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "virtconsoled.h"
#include "tap.h"

#define UUID_A	"6f1c2a9e-3b4d-4e5f-8a7b-1c2d3e4f5a6b"
#define UUID_B	"0b5e7c11-9d2a-4c3e-b1f0-aa55cc77ee99"
#define NOW	1700000000

/* 64 bytes of UTF-8: 32 two-byte characters. */
#define LABEL_64 \
    "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9" \
    "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9" \
    "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9" \
    "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
#define NAME_32	"abcdefghijklmnopqrstuvwxyz012345"
#define NAME_33	"abcdefghijklmnopqrstuvwxyz0123456"

static const uint8_t key1[TOKEN_KEY_LEN] = "0123456789abcdef0123456789abcde";
static const uint8_t key2[TOKEN_KEY_LEN] = "0123456789abcdef0123456789abcdX";
static const uint8_t aud1[TOKEN_AUD_LEN] = "audience-one-01";
static const uint8_t aud2[TOKEN_AUD_LEN] = "audience-two-02";
static char dir[] = "/tmp/vcd-test-token.XXXXXX";

/* An independent base64url codec, on top of OpenSSL's base64. */
static void
b64url_encode(const uint8_t *in, size_t len, char *out)
{
	char	*p;
	int	 n;

	n = EVP_EncodeBlock((unsigned char *)out, in, (int)len);
	while (n > 0 && out[n - 1] == '=')
		n--;
	out[n] = '\0';
	for (p = out; *p != '\0'; p++) {
		if (*p == '+')
			*p = '-';
		else if (*p == '/')
			*p = '_';
	}
}

static int
b64url_decode(const char *in, uint8_t *out)
{
	char	buf[1024];
	size_t	len = strlen(in), i;
	int	n, pad = 0;

	if (len + 4 > sizeof buf)
		return -1;
	for (i = 0; i < len; i++)
		buf[i] = in[i] == '-' ? '+' : in[i] == '_' ? '/' : in[i];
	while ((len + (size_t)pad) % 4 != 0) {
		buf[len + (size_t)pad] = '=';
		pad++;
	}
	buf[len + (size_t)pad] = '\0';
	n = EVP_DecodeBlock(out, (unsigned char *)buf,
	    (int)(len + (size_t)pad));
	return n < 0 ? -1 : n - pad;
}

static size_t
put_uuid(uint8_t *raw, const char *uuid)
{
	size_t	i, n = 0;

	for (i = 0; uuid != NULL && uuid[i] != '\0'; i++) {
		if (uuid[i] == '-')
			continue;
		sscanf(uuid + i, "%2hhx", &raw[n++]);
		i++;
	}
	return n;
}

static void
put64(uint8_t *p, int64_t v)
{
	int	i;

	for (i = 0; i < 8; i++)
		p[i] = (uint8_t)((uint64_t)v >> (56 - 8 * i));
}

static void
sign(const uint8_t *key, uint8_t *raw, size_t len, char *out)
{
	unsigned int	maclen;

	HMAC(EVP_sha256(), key, TOKEN_KEY_LEN, raw, len, raw + len, &maclen);
	b64url_encode(raw, len + maclen, out);
}

/*
 * The version-2 layout, field by field.  A length of -1 is the string's
 * own; lbytes 0 copies strlen(label) bytes (more to copy a NUL).
 */
struct layout {
	int		 version, kind, flags;
	const uint8_t	*aud;
	const char	*uuid;		/* NULL: zero */
	int64_t		 iat, exp;
	int		 hlen, alen, llen;
	const char	*hv, *alias, *label;
	size_t		 lbytes;
	int		 no_label;	/* stop after the alias */
	size_t		 extra;		/* zero bytes after the label */
};

/* A valid writer token for guest A, any console. */
static void
layout_init(struct layout *l)
{
	memset(l, 0, sizeof *l);
	l->version = 2;
	l->kind = TOKEN_KIND_TOKEN;
	l->flags = 0x04;
	l->aud = aud1;
	l->uuid = UUID_A;
	l->iat = NOW;
	l->exp = NOW + 60;
	l->hlen = l->alen = l->llen = -1;
	l->hv = "default";
	l->alias = "any";
	l->label = "";
}

static void
put_string(uint8_t *raw, size_t *off, int len, const char *s, size_t bytes)
{
	if (bytes == 0)
		bytes = strlen(s);
	raw[(*off)++] = (uint8_t)(len < 0 ? (int)strlen(s) : len);
	memcpy(raw + *off, s, bytes);
	*off += bytes;
}

/* Build a token from the documented layout, signed with key. */
static size_t
craft(const uint8_t *key, const struct layout *l, char *out)
{
	uint8_t	raw[512];
	size_t	len, i;

	memset(raw, 0, sizeof raw);
	raw[0] = (uint8_t)l->version;
	raw[1] = (uint8_t)l->kind;
	for (i = 0; i < 16; i++)
		raw[2 + i] = (uint8_t)(0xa0 + i);
	memcpy(raw + 18, l->aud, 16);
	raw[34] = (uint8_t)l->flags;
	put_uuid(raw + 35, l->uuid);
	put64(raw + 51, l->iat);
	put64(raw + 59, l->exp);
	len = 67;
	put_string(raw, &len, l->hlen, l->hv, 0);
	put_string(raw, &len, l->alen, l->alias, 0);
	if (!l->no_label)
		put_string(raw, &len, l->llen, l->label, l->lbytes);
	len += l->extra;
	sign(key, raw, len, out);
	return len + 32;
}

/* The version-1 layout (77 to 108 bytes), for the refusal. */
static void
craft_v1(const uint8_t *key, const char *alias, char *out)
{
	uint8_t	raw[256];
	size_t	len, i;

	memset(raw, 0, sizeof raw);
	raw[0] = 1;
	raw[1] = TOKEN_KIND_TOKEN;
	for (i = 0; i < 16; i++)
		raw[2 + i] = (uint8_t)(0xa0 + i);
	put_uuid(raw + 19, UUID_A);
	put64(raw + 35, NOW + 60);
	raw[43] = (uint8_t)strlen(alias);
	memcpy(raw + 44, alias, strlen(alias));
	len = 44 + strlen(alias);
	sign(key, raw, len, out);
}

static int
verify(const uint8_t *key, const char *text, int kind, const char **why)
{
	struct token	t;

	return token_verify(key, aud1, text, NOW, kind, &t, why);
}

/* verify() refuses text for that reason. */
static int
refused(const char *text, int kind, const char *reason)
{
	const char	*why = NULL;

	return verify(key1, text, kind, &why) == -1 && why != NULL &&
	    strcmp(why, reason) == 0;
}

/* Every claim the same. */
static int
same_claims(const struct token *a, const struct token *b)
{
	return a->kind == b->kind &&
	    memcmp(a->id, b->id, TOKEN_ID_LEN) == 0 &&
	    memcmp(a->aud, b->aud, TOKEN_AUD_LEN) == 0 &&
	    strcmp(a->hv, b->hv) == 0 && a->all_guests == b->all_guests &&
	    strcmp(a->uuid, b->uuid) == 0 && strcmp(a->alias, b->alias) == 0 &&
	    a->role == b->role && a->history == b->history &&
	    strcmp(a->label, b->label) == 0 && a->iat == b->iat &&
	    a->expires == b->expires && a->checked == b->checked;
}

/* token_new() for a token of guest A issued at NOW. */
static void
new_a(struct token *t, const char *alias, int64_t expires)
{
	if (token_new(t, TOKEN_KIND_TOKEN, aud1, NULL, UUID_A, alias, NOW,
	    expires) == -1)
		printf("# token_new failed\n");
}

static void
test_round_trip(void)
{
	struct token	 t, v;
	char		 text[TOKEN_TEXT_MAX], text2[TOKEN_TEXT_MAX];
	const char	*why;
	uint8_t		 zero[TOKEN_ID_LEN];

	ok(token_new(&t, TOKEN_KIND_TOKEN, aud1, NULL, UUID_A, "serial0", NOW,
	    NOW + 60) == 0, "token_new for one guest and alias");
	memset(zero, 0, sizeof zero);
	ok(memcmp(t.id, zero, sizeof zero) != 0, "the id is filled in");
	ok(memcmp(t.aud, aud1, TOKEN_AUD_LEN) == 0, "the audience is copied");
	is_str(t.hv, "default", "hv NULL for one guest means default");
	ok(t.role == TOKEN_ROLE_WRITER && t.history == 1 &&
	    t.label[0] == '\0' && t.checked == 0 && t.iat == NOW,
	    "writer with history, no label, not checked, iat kept");
	ok(token_mint(key1, &t, text, sizeof text) == 0, "mint");
	ok(strspn(text, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	    "0123456789-_") == strlen(text), "text is base64url, unpadded");
	is_int(token_verify(key1, aud1, text, NOW, TOKEN_KIND_TOKEN, &v, &why),
	    0, "verify");
	ok(why == NULL, "no reason on success");
	is_int(v.kind, TOKEN_KIND_TOKEN, "kind kept");
	ok(memcmp(v.id, t.id, TOKEN_ID_LEN) == 0, "id kept");
	ok(memcmp(v.aud, aud1, TOKEN_AUD_LEN) == 0, "aud kept");
	is_str(v.hv, "default", "hv kept");
	is_int(v.all_guests, 0, "guest scope kept");
	is_str(v.uuid, UUID_A, "uuid kept");
	is_str(v.alias, "serial0", "alias kept");
	is_int(v.role, TOKEN_ROLE_WRITER, "role kept");
	is_int(v.history, 1, "history kept");
	is_str(v.label, "", "empty label kept");
	is_int(v.iat, NOW, "iat kept");
	is_int(v.expires, NOW + 60, "expiry kept");
	is_int(v.checked, 0, "checked kept");
	ok(same_claims(&t, &v), "every claim kept");

	ok(token_new(&t, TOKEN_KIND_TOKEN, aud1, NULL,
	    "6F1C2A9E-3B4D-4E5F-8A7B-1C2D3E4F5A6B", NULL, NOW, NOW + 60) == 0,
	    "token_new with an upper-case UUID");
	is_str(t.uuid, UUID_A, "the UUID is kept in lower case");
	is_str(t.alias, "any", "alias NULL means any");

	ok(token_new(&t, TOKEN_KIND_SESSION, aud1, NULL, NULL, NULL, NOW - 100,
	    NOW + 28800) == 0, "an all-guests session");
	is_str(t.hv, "any", "hv NULL for all guests means any");
	t.checked = 1;
	ok(token_mint(key1, &t, text, sizeof text) == 0 &&
	    token_verify(key1, aud1, text, NOW, TOKEN_KIND_SESSION, &v,
	    &why) == 0, "an all-guests, checked session round trip");
	ok(v.all_guests == 1 && v.uuid[0] == '\0' &&
	    strcmp(v.alias, "any") == 0 && strcmp(v.hv, "any") == 0 &&
	    v.kind == TOKEN_KIND_SESSION && v.checked == 1 &&
	    v.iat == NOW - 100, "all-guests scope, hv any, checked, iat kept");
	ok(same_claims(&t, &v), "every claim kept");

	ok(token_new(&t, TOKEN_KIND_TOKEN, aud1, "kvm_2-b", NULL, NULL, NOW,
	    NOW + 60) == 0 && token_mint(key1, &t, text, sizeof text) == 0 &&
	    verify(key1, text, TOKEN_KIND_TOKEN, &why) == 0,
	    "a named hypervisor, all its guests");
	token_verify(key1, aud1, text, NOW, TOKEN_KIND_TOKEN, &v, &why);
	is_str(v.hv, "kvm_2-b", "... hv kept");

	ok(token_new(&t, TOKEN_KIND_TOKEN, aud1, NULL, UUID_A, "serial0", NOW,
	    NOW + 60) == 0 && token_mint(key1, &t, text, sizeof text) == 0 &&
	    token_new(&v, TOKEN_KIND_TOKEN, aud1, NULL, UUID_A, "serial0", NOW,
	    NOW + 60) == 0 && token_mint(key1, &v, text2, sizeof text2) == 0,
	    "two tokens minted in a row");
	ok(memcmp(t.id, v.id, TOKEN_ID_LEN) != 0, "their ids differ");
	ok(strcmp(text, text2) != 0, "their texts differ");
}

/* Every combination of role, history, label, checked, scope and kind. */
static void
test_claims(void)
{
	static const char	*labels[] = { "", "alice", "Ops: \xc3\xa5lice "
	    "\xe2\x98\x83 (pager)", LABEL_64, "\x80\xff odd bytes" };
	static const char	*hvs[] = { NULL, "default", "any", "b" };
	struct token		 t, v;
	char			 text[TOKEN_TEXT_MAX];
	const char		*why;
	size_t			 l, h;
	int			 kind, role, history, checked, all, n = 0, bad;

	bad = 0;
	for (kind = TOKEN_KIND_TOKEN; kind <= TOKEN_KIND_SESSION; kind++)
	for (all = 0; all <= 1; all++)
	for (h = 0; h < sizeof hvs / sizeof hvs[0]; h++)
	for (role = TOKEN_ROLE_WRITER; role <= TOKEN_ROLE_VIEWER; role++)
	for (history = 0; history <= 1; history++)
	for (checked = 0; checked <= kind - 1; checked++)
	for (l = 0; l < sizeof labels / sizeof labels[0]; l++) {
		if (!all && hvs[h] != NULL && strcmp(hvs[h], "any") == 0)
			continue;
		n++;
		if (token_new(&t, kind, aud1, hvs[h], all ? NULL : UUID_B,
		    all ? NULL : "console1", NOW - 5, NOW + 5) == -1) {
			bad++;
			continue;
		}
		t.role = role;
		t.history = history;
		t.checked = checked;
		snprintf(t.label, sizeof t.label, "%s", labels[l]);
		if (token_mint(key1, &t, text, sizeof text) == -1 ||
		    token_verify(key1, aud1, text, NOW, kind, &v, &why) == -1 ||
		    !same_claims(&t, &v))
			bad++;
	}
	is_int(bad, 0, "%d combinations of the claims round trip", n);

	ok(token_label_ok(LABEL_64), "a 64-byte UTF-8 label is a label");
	new_a(&t, NULL, NOW + 60);
	memcpy(t.label, LABEL_64, sizeof LABEL_64);
	ok(token_mint(key1, &t, text, sizeof text) == 0 &&
	    token_verify(key1, aud1, text, NOW, TOKEN_KIND_TOKEN, &v,
	    &why) == 0 && strcmp(v.label, LABEL_64) == 0,
	    "the 64-byte label is kept byte for byte");
	new_a(&t, NULL, NOW + 60);
	t.role = TOKEN_ROLE_VIEWER;
	t.history = 0;
	ok(token_mint(key1, &t, text, sizeof text) == 0 &&
	    token_verify(key1, aud1, text, NOW, TOKEN_KIND_TOKEN, &v,
	    &why) == 0 && v.role == TOKEN_ROLE_VIEWER && v.history == 0,
	    "a viewer without history stays so");
}

/* The longest token fills TOKEN_TEXT_MAX exactly. */
static void
test_text_max(void)
{
	struct token	 t;
	char		 text[TOKEN_TEXT_MAX], small[TOKEN_TEXT_MAX];
	const char	*why;
	int		 kind;

	for (kind = TOKEN_KIND_TOKEN; kind <= TOKEN_KIND_SESSION; kind++) {
		ok(token_new(&t, kind, aud1, NAME_32, UUID_B, NAME_32, NOW,
		    NOW + 1) == 0, "token_new with a 32-byte hv and alias");
		memcpy(t.label, LABEL_64, sizeof LABEL_64);
		t.role = TOKEN_ROLE_VIEWER;
		t.checked = kind == TOKEN_KIND_SESSION;
		ok(token_mint(key1, &t, text, sizeof text) == 0,
		    "mint with every string at its longest");
		is_int(strlen(text), TOKEN_TEXT_MAX - 1, "the longest text is "
		    "%d characters, TOKEN_TEXT_MAX - 1", TOKEN_TEXT_MAX - 1);
		ok(verify(key1, text, kind, &why) == 0,
		    "the longest token verifies");
		is_int(token_mint(key1, &t, small, TOKEN_TEXT_MAX - 1), -1,
		    "mint refuses a buffer without room for the NUL");
	}
	ok(token_new(&t, TOKEN_KIND_TOKEN, aud1, "a", UUID_B, "x", NOW,
	    NOW + 1) == 0 && token_mint(key1, &t, text, sizeof text) == 0,
	    "mint the shortest token");
	is_int(strlen(text), 139, "1-byte hv and alias, no label: 139 "
	    "characters");
	ok(verify(key1, text, TOKEN_KIND_TOKEN, &why) == 0,
	    "the shortest token verifies");
}

static void
test_label(void)
{
	char	buf[80];

	ok(token_label_ok(""), "empty label");
	ok(token_label_ok("alice@example.org (on call)"), "ASCII label");
	ok(token_label_ok("J\xc3\xbcrgen \xe2\x98\x83"), "UTF-8 label");
	ok(token_label_ok(LABEL_64), "64 bytes");
	snprintf(buf, sizeof buf, "%sx", LABEL_64);
	ok(!token_label_ok(buf), "65 bytes refused");
	memset(buf, 'a', 64);
	buf[64] = '\0';
	ok(token_label_ok(buf), "64 ASCII bytes");
	ok(!token_label_ok("a\tb"), "tab refused");
	ok(!token_label_ok("a\nb"), "LF refused");
	ok(!token_label_ok("a\rb"), "CR refused");
	ok(!token_label_ok("\x1b[31mred"), "ESC refused");
	ok(!token_label_ok("a\x7f"), "DEL refused");
	ok(!token_label_ok("\x01"), "SOH refused");
	ok(token_label_ok(" ~"), "space and tilde allowed");
	ok(!token_label_ok(NULL), "NULL refused");
}

static void
test_bad_fields(void)
{
	struct token	t;
	char		text[TOKEN_TEXT_MAX];

#define NEW(kind, hv, uuid, alias, iat, exp)				\
	token_new(&t, kind, aud1, hv, uuid, alias, iat, exp)
	is_int(NEW(0, NULL, UUID_A, NULL, NOW, NOW), -1, "unknown kind");
	is_int(NEW(3, NULL, UUID_A, NULL, NOW, NOW), -1, "kind 3");
	is_int(token_new(&t, TOKEN_KIND_TOKEN, NULL, NULL, UUID_A, NULL, NOW,
	    NOW + 1), -1, "no audience");
	is_int(NEW(TOKEN_KIND_TOKEN, NULL, "not-a-uuid", NULL, NOW, NOW), -1,
	    "malformed UUID");
	is_int(NEW(TOKEN_KIND_TOKEN, NULL,
	    "6f1c2a9e3b4d-4e5f-8a7b-1c2d3e4f5a6b0", NULL, NOW, NOW), -1,
	    "UUID with a misplaced dash");
	is_int(NEW(TOKEN_KIND_TOKEN, NULL,
	    "6f1c2a9e-3b4d-4e5f-8a7b-1c2d3e4f5a6g", NULL, NOW, NOW), -1,
	    "UUID with a non-hex digit");
	is_int(NEW(TOKEN_KIND_TOKEN, NULL, UUID_A, NAME_33, NOW, NOW), -1,
	    "33-byte alias");
	is_int(NEW(TOKEN_KIND_TOKEN, NULL, UUID_A, "", NOW, NOW), -1,
	    "empty alias");
	is_int(NEW(TOKEN_KIND_TOKEN, NULL, UUID_A, "../x", NOW, NOW), -1,
	    "alias with a slash");
	is_int(NEW(TOKEN_KIND_TOKEN, NULL, UUID_A, "a b", NOW, NOW), -1,
	    "alias with a space");
	is_int(NEW(TOKEN_KIND_TOKEN, "any", UUID_A, NULL, NOW, NOW + 1), -1,
	    "hv any with one guest");
	is_int(NEW(TOKEN_KIND_TOKEN, "any", NULL, NULL, NOW, NOW + 1), 0,
	    "hv any with all guests");
	is_int(NEW(TOKEN_KIND_TOKEN, "kvm.1", NULL, NULL, NOW, NOW + 1), -1,
	    "hv with a dot");
	is_int(NEW(TOKEN_KIND_TOKEN, "a b", UUID_A, NULL, NOW, NOW + 1), -1,
	    "hv with a space");
	is_int(NEW(TOKEN_KIND_TOKEN, "", UUID_A, NULL, NOW, NOW + 1), -1,
	    "empty hv");
	is_int(NEW(TOKEN_KIND_TOKEN, NAME_32, UUID_A, NULL, NOW, NOW + 1), 0,
	    "32-byte hv");
	is_int(NEW(TOKEN_KIND_TOKEN, NAME_33, UUID_A, NULL, NOW, NOW + 1), -1,
	    "33-byte hv");
	is_int(NEW(TOKEN_KIND_TOKEN, NULL, UUID_A, NULL, -1, NOW), -1,
	    "negative iat");
	is_int(NEW(TOKEN_KIND_TOKEN, NULL, UUID_A, NULL, NOW + 1, NOW), -1,
	    "iat after the expiry");
	is_int(NEW(TOKEN_KIND_TOKEN, NULL, UUID_A, NULL, NOW, NOW), 0,
	    "iat at the expiry");
	is_int(NEW(TOKEN_KIND_TOKEN, NULL, UUID_A, NULL, 0, 0), -1,
	    "expiry 0");
#undef NEW

#define MINT_REFUSES(change, what) do {					\
	new_a(&t, NULL, NOW + 60);					\
	change;								\
	is_int(token_mint(key1, &t, text, sizeof text), -1,		\
	    "mint refuses " what);					\
} while (0)
	MINT_REFUSES(t.kind = 3, "an unknown kind");
	MINT_REFUSES(t.expires = 0, "expiry 0");
	MINT_REFUSES(t.iat = -1, "a negative iat");
	MINT_REFUSES(t.iat = NOW + 61, "iat after the expiry");
	MINT_REFUSES(snprintf(t.uuid, sizeof t.uuid, "web1"),
	    "a guest name in place of a UUID");
	MINT_REFUSES(t.uuid[0] = 'F', "a UUID not in lower case");
	MINT_REFUSES(memset(t.uuid, 'a', sizeof t.uuid),
	    "an unterminated UUID");
	MINT_REFUSES(memset(t.alias, 'a', sizeof t.alias),
	    "an unterminated alias");
	MINT_REFUSES(memset(t.hv, 'a', sizeof t.hv), "an unterminated hv");
	MINT_REFUSES(memset(t.label, 'a', sizeof t.label),
	    "an unterminated label");
	MINT_REFUSES(snprintf(t.hv, sizeof t.hv, "any"),
	    "hv any with one guest");
	MINT_REFUSES(snprintf(t.label, sizeof t.label, "a\nb"),
	    "a label with LF");
	MINT_REFUSES(snprintf(t.label, sizeof t.label, "\x7f"),
	    "a label with DEL");
	MINT_REFUSES(t.role = 2, "role 2");
	MINT_REFUSES(t.role = -1, "role -1");
	MINT_REFUSES(t.history = 2, "history 2");
	MINT_REFUSES(t.all_guests = 2, "all_guests 2");
	MINT_REFUSES(t.checked = 1, "checked in a token");
	MINT_REFUSES(t.all_guests = 1, "all guests with a UUID");
	MINT_REFUSES(t.all_guests = 0; t.uuid[0] = '\0',
	    "one guest without a UUID");
#undef MINT_REFUSES
	token_new(&t, TOKEN_KIND_SESSION, aud1, NULL, UUID_A, NULL, NOW,
	    NOW + 60);
	t.checked = 2;
	is_int(token_mint(key1, &t, text, sizeof text), -1,
	    "mint refuses checked 2");
	t.checked = 1;
	is_int(token_mint(key1, &t, text, sizeof text), 0,
	    "... and accepts checked 1 in a session");
}

static void
test_expiry(void)
{
	struct token	 t;
	char		 text[TOKEN_TEXT_MAX];
	const char	*why;

	new_a(&t, NULL, NOW);
	token_mint(key1, &t, text, sizeof text);
	is_int(verify(key1, text, TOKEN_KIND_TOKEN, &why), -1,
	    "a token expiring now is refused");
	is_str(why, "expired", "reason: expired");
	new_a(&t, NULL, NOW + 1);
	token_mint(key1, &t, text, sizeof text);
	is_int(verify(key1, text, TOKEN_KIND_TOKEN, &why), 0,
	    "a token expiring in one second is accepted");
	token_new(&t, TOKEN_KIND_TOKEN, aud1, NULL, UUID_A, NULL, 0, 1);
	token_mint(key1, &t, text, sizeof text);
	ok(refused(text, TOKEN_KIND_TOKEN, "expired"),
	    "a token from 1970 is expired");
	token_new(&t, TOKEN_KIND_SESSION, aud1, NULL, NULL, NULL, NOW - 10,
	    NOW - 1);
	token_mint(key1, &t, text, sizeof text);
	ok(refused(text, TOKEN_KIND_SESSION, "expired"),
	    "an expired session is refused");

	new_a(&t, NULL, NOW + TOKEN_MAX_LIFETIME);
	token_mint(key1, &t, text, sizeof text);
	is_int(verify(key1, text, TOKEN_KIND_TOKEN, &why), 0,
	    "expiry TOKEN_MAX_LIFETIME ahead is accepted");
	new_a(&t, NULL, NOW + TOKEN_MAX_LIFETIME + 1);
	token_mint(key1, &t, text, sizeof text);
	is_int(verify(key1, text, TOKEN_KIND_TOKEN, &why), -1,
	    "one second more is refused");
	is_str(why, "expiry too far ahead", "reason: expiry too far ahead");
	new_a(&t, NULL, INT64_MAX);
	token_mint(key1, &t, text, sizeof text);
	ok(refused(text, TOKEN_KIND_TOKEN, "expiry too far ahead"),
	    "expiry INT64_MAX is refused");

	token_new(&t, TOKEN_KIND_TOKEN, aud1, NULL, UUID_A, NULL, NOW + 300,
	    NOW + 600);
	token_mint(key1, &t, text, sizeof text);
	is_int(verify(key1, text, TOKEN_KIND_TOKEN, &why), 0,
	    "issued 300 s in the future (clock skew): accepted");
	token_new(&t, TOKEN_KIND_TOKEN, aud1, NULL, UUID_A, NULL, NOW + 301,
	    NOW + 600);
	token_mint(key1, &t, text, sizeof text);
	is_int(verify(key1, text, TOKEN_KIND_TOKEN, &why), -1,
	    "issued 301 s in the future: refused");
	is_str(why, "issued in the future", "reason: issued in the future");
	token_new(&t, TOKEN_KIND_SESSION, aud1, NULL, UUID_A, NULL, 0,
	    NOW + 60);
	token_mint(key1, &t, text, sizeof text);
	is_int(verify(key1, text, TOKEN_KIND_SESSION, &why), 0,
	    "a session with a login time of 0 is accepted");
	{
		struct token	v;

		is_int(token_verify(key1, aud1, text, INT64_MAX,
		    TOKEN_KIND_SESSION, &v, &why), -1,
		    "a clock at INT64_MAX: no overflow, expired");
		is_str(why, "expired", "... reason: expired");
	}
}

static void
test_forged(void)
{
	struct token	 t;
	struct layout	 l;
	char		 text[TOKEN_TEXT_MAX], buf[512];
	const char	*why, *alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "abcdefghijklmnopqrstuvwxyz0123456789-_";
	uint8_t		 raw[256];
	size_t		 len, i, j;
	int		 n, bit, bad, badwhy;

	new_a(&t, "serial0", NOW + 60);
	snprintf(t.label, sizeof t.label, "bob");
	token_mint(key1, &t, text, sizeof text);
	len = strlen(text);

	n = b64url_decode(text, raw);
	is_int(n, 70 + 7 + 7 + 3 + 32, "decoded length is 70 + hv + alias + "
	    "label + 32");
	bad = badwhy = 0;
	for (i = 0; i < (size_t)n; i++) {
		for (bit = 0; bit < 8; bit++) {
			raw[i] ^= (uint8_t)(1 << bit);
			b64url_encode(raw, (size_t)n, buf);
			if (verify(key1, buf, TOKEN_KIND_TOKEN, &why) != -1)
				bad++;
			else if (strcmp(why, "bad signature") != 0)
				badwhy++;
			raw[i] ^= (uint8_t)(1 << bit);
		}
	}
	is_int(bad, 0, "each of the %d bits flipped: refused", n * 8);
	is_int(badwhy, 0, "... as a bad signature");

	bad = 0;
	for (i = 0; i < len; i++) {
		for (j = 0; alpha[j] != '\0'; j++) {
			if (alpha[j] == text[i])
				continue;
			memcpy(buf, text, len + 1);
			buf[i] = alpha[j];
			if (verify(key1, buf, TOKEN_KIND_TOKEN, &why) != -1)
				bad++;
		}
	}
	is_int(bad, 0, "every character replaced by every other: refused");

	bad = 0;
	for (i = 0; i < len; i++) {
		memcpy(buf, text, i);
		buf[i] = '\0';
		if (verify(key1, buf, TOKEN_KIND_TOKEN, &why) != -1)
			bad++;
	}
	is_int(bad, 0, "every truncation refused");
	bad = 0;
	for (i = 1; i <= 8; i++) {
		for (j = 0; alpha[j] != '\0'; j++) {
			memcpy(buf, text, len);
			memset(buf + len, alpha[j], i);
			buf[len + i] = '\0';
			if (verify(key1, buf, TOKEN_KIND_TOKEN, &why) != -1)
				bad++;
		}
	}
	is_int(bad, 0, "every extension by 1..8 characters refused");

	/* A longer label with the MAC of the shorter one. */
	n = b64url_decode(text, raw);
	memmove(raw + n - 31, raw + n - 32, 32);
	raw[70 + 7 + 7 - 1] = 4;
	raw[n - 32] = 'y';
	b64url_encode(raw, (size_t)n + 1, buf);
	ok(refused(buf, TOKEN_KIND_TOKEN, "bad signature"),
	    "a stretched label is refused");

	is_int(verify(key2, text, TOKEN_KIND_TOKEN, &why), -1,
	    "a token from another key is refused");
	is_str(why, "bad signature", "reason: bad signature");

	token_new(&t, TOKEN_KIND_SESSION, aud1, NULL, UUID_A, NULL, NOW,
	    NOW + 3600);
	token_mint(key2, &t, text, sizeof text);
	is_int(verify(key1, text, TOKEN_KIND_SESSION, &why), -1,
	    "a cookie from another secret is refused");
	is_str(why, "bad signature", "reason: bad signature");

	layout_init(&l);
	is_int(craft(key1, &l, buf), 70 + 7 + 3 + 32,
	    "the documented layout: 70 + hv + alias + label + 32 bytes");
	is_int(verify(key1, buf, TOKEN_KIND_TOKEN, &why), 0,
	    "a token built from the documented layout verifies");
	craft(key2, &l, buf);
	is_int(verify(key1, buf, TOKEN_KIND_TOKEN, &why), -1,
	    "the same with another key does not");
	{
		struct token	v;

		layout_init(&l);
		l.flags = 0x01 | 0x02 | 0x04 | 0x08;
		l.kind = TOKEN_KIND_SESSION;
		l.uuid = NULL;
		l.hv = "any";
		l.alias = "serial1";
		l.label = "carol";
		l.iat = NOW - 7;
		l.exp = NOW + 7;
		craft(key1, &l, buf);
		is_int(token_verify(key1, aud1, buf, NOW, TOKEN_KIND_SESSION,
		    &v, &why), 0, "every flag set, from the layout: valid");
		ok(v.all_guests == 1 && v.role == TOKEN_ROLE_VIEWER &&
		    v.history == 1 && v.checked == 1 && v.iat == NOW - 7 &&
		    v.expires == NOW + 7 && strcmp(v.hv, "any") == 0 &&
		    strcmp(v.alias, "serial1") == 0 &&
		    strcmp(v.label, "carol") == 0 && v.id[0] == 0xa0 &&
		    v.id[15] == 0xaf, "... each field where documented");
	}
}

/* Signed with the right key, but not as token_mint() writes. */
static void
test_signed_but_malformed(void)
{
	struct layout	 l;
	char		 buf[512], label[80];
	const char	*why;
	int		 bit, bad;

#define MALFORMED(change, what) do {					\
	layout_init(&l);						\
	change;								\
	craft(key1, &l, buf);						\
	ok(refused(buf, l.kind == TOKEN_KIND_SESSION ?			\
	    TOKEN_KIND_SESSION : TOKEN_KIND_TOKEN, "malformed"),	\
	    "signed, " what ": malformed");				\
} while (0)
#define VALID(change, what) do {					\
	layout_init(&l);						\
	change;								\
	craft(key1, &l, buf);						\
	is_int(verify(key1, buf, l.kind, &why), 0,			\
	    "signed, " what ": valid");					\
} while (0)
	MALFORMED(l.version = 3, "version 3");
	MALFORMED(l.version = 0, "version 0");
	MALFORMED(l.version = 0x82, "version 0x82");
	MALFORMED(l.kind = 3, "kind 3");
	MALFORMED(l.kind = 0, "kind 0");
	bad = 0;
	for (bit = 4; bit < 8; bit++) {
		layout_init(&l);
		l.flags |= 1 << bit;
		craft(key1, &l, buf);
		if (!refused(buf, TOKEN_KIND_TOKEN, "malformed"))
			bad++;
	}
	is_int(bad, 0, "signed, an unknown flag bit (4 to 7): malformed");
	MALFORMED(l.flags = 0x08, "checked in a token");
	VALID(l.flags = 0x08; l.kind = TOKEN_KIND_SESSION,
	    "checked in a session");
	MALFORMED(l.flags = 0x01, "all guests but a UUID");
	VALID(l.flags = 0x01; l.uuid = NULL, "all guests, zero UUID");
	VALID(l.uuid = "00000000-0000-0000-0000-000000000000",
	    "one guest, zero UUID");
	MALFORMED(l.hv = "any", "hv any with one guest");
	VALID(l.flags = 0x01; l.uuid = NULL; l.hv = "any",
	    "hv any with all guests");
	MALFORMED(l.hv = "", "empty hv");
	MALFORMED(l.hv = "kvm.1", "hv with a dot");
	MALFORMED(l.hv = "a/b", "hv with a slash");
	MALFORMED(l.hv = NAME_33, "33-byte hv");
	VALID(l.hv = NAME_32, "32-byte hv");
	MALFORMED(l.hlen = 8, "hv length beyond the hv");
	MALFORMED(l.hlen = 6, "hv length short of the hv");
	MALFORMED(l.alen = 4, "alias length beyond the alias");
	MALFORMED(l.alen = 2, "alias length short of the alias");
	MALFORMED(l.alias = "a/b", "alias a/b");
	MALFORMED(l.alias = "a\nb", "alias with LF");
	MALFORMED(l.alias = "", "empty alias");
	MALFORMED(l.alias = NAME_33, "33-byte alias");
	MALFORMED(l.label = "a\nb", "label with LF");
	MALFORMED(l.label = "a\x7f", "label with DEL");
	MALFORMED(l.label = "a\0b"; l.lbytes = 3, "label with NUL");
	MALFORMED(l.label = "ab"; l.llen = 3, "label length beyond it");
	MALFORMED(l.label = "ab"; l.llen = 1, "label length short of it");
	snprintf(label, sizeof label, "%sx", LABEL_64);
	MALFORMED(l.label = label, "65-byte label");
	VALID(l.label = LABEL_64, "64-byte label");
	MALFORMED(l.no_label = 1, "no label length");
	MALFORMED(l.extra = 1, "a byte after the label");
	MALFORMED(l.iat = -1, "negative iat");
	MALFORMED(l.iat = INT64_MIN, "iat INT64_MIN");
	MALFORMED(l.iat = l.exp + 1, "iat after the expiry");
	MALFORMED(l.iat = 0; l.exp = 0, "expiry 0");
	MALFORMED(l.iat = 0; l.exp = -5, "negative expiry");
	/* 103 bytes: long enough for version 1, short for version 2. */
	MALFORMED(l.hv = "d"; l.alias = "a"; l.no_label = 1,
	    "a version-2 token of 103 bytes");
#undef MALFORMED
#undef VALID
}

static void
test_version1(void)
{
	char	buf[512];

	craft_v1(key1, "any", buf);
	is_int(strlen(buf), 106, "a version-1 token of 79 bytes");
	ok(refused(buf, TOKEN_KIND_TOKEN, "version 1 (no longer accepted)"),
	    "refused: version 1 (no longer accepted)");
	ok(refused(buf, TOKEN_KIND_SESSION, "version 1 (no longer accepted)"),
	    "... whatever kind is asked for");
	craft_v1(key1, "x", buf);
	is_int(strlen(buf), 103, "the shortest version-1 token");
	ok(refused(buf, TOKEN_KIND_TOKEN, "version 1 (no longer accepted)"),
	    "... is refused as version 1");
	craft_v1(key1, NAME_32, buf);
	is_int(strlen(buf), 144, "the longest version-1 token");
	ok(refused(buf, TOKEN_KIND_TOKEN, "version 1 (no longer accepted)"),
	    "... is refused as version 1");
	craft_v1(key2, "any", buf);
	ok(refused(buf, TOKEN_KIND_TOKEN, "bad signature"),
	    "a version-1 token of another key: bad signature");
	ok(refused("AQGBnYcpa2-005xNNSp-7U6_AG8cKp47TU5finscLT5PWmsAAAAAZVPxPA"
	    "dzZXJpYWww0ISCAnDMgnMdBNYED8NFGB7vUUpjenN1Q0ouPHVh6iw",
	    TOKEN_KIND_TOKEN, "bad signature"),
	    "a version-1 seed of another key: bad signature");
}

static void
test_audience(void)
{
	struct token	 t;
	struct layout	 l;
	uint8_t		 aud[TOKEN_AUD_LEN];
	char		 text[TOKEN_TEXT_MAX];
	const char	*why;
	struct token	 v;
	int		 i, bad;

	token_new(&t, TOKEN_KIND_TOKEN, aud2, NULL, UUID_A, NULL, NOW,
	    NOW + 60);
	token_mint(key1, &t, text, sizeof text);
	is_int(verify(key1, text, TOKEN_KIND_TOKEN, &why), -1,
	    "a token for another audience is refused");
	is_str(why, "wrong audience", "reason: wrong audience");
	is_int(token_verify(key1, aud2, text, NOW, TOKEN_KIND_TOKEN, &v, &why),
	    0, "... and accepted by its own");
	bad = 0;
	for (i = 0; i < TOKEN_AUD_LEN * 8; i++) {
		memcpy(aud, aud1, sizeof aud);
		aud[i / 8] ^= (uint8_t)(1 << (i % 8));
		token_new(&t, TOKEN_KIND_SESSION, aud, NULL, NULL, NULL, NOW,
		    NOW + 60);
		token_mint(key1, &t, text, sizeof text);
		if (!refused(text, TOKEN_KIND_SESSION, "wrong audience"))
			bad++;
	}
	is_int(bad, 0, "an audience one bit off (each of 128): refused");
	layout_init(&l);
	l.aud = aud2;
	craft(key1, &l, text);
	ok(refused(text, TOKEN_KIND_TOKEN, "wrong audience"),
	    "from the layout, another audience: refused");
	layout_init(&l);
	l.aud = aud2;
	l.kind = TOKEN_KIND_SESSION;
	craft(key1, &l, text);
	ok(refused(text, TOKEN_KIND_TOKEN, "wrong kind"),
	    "the kind is checked before the audience");
	layout_init(&l);
	l.aud = aud2;
	l.flags = 0x80;
	craft(key1, &l, text);
	ok(refused(text, TOKEN_KIND_TOKEN, "wrong audience"),
	    "the audience before the other fields");
}

static void
test_kind(void)
{
	struct token	 t;
	char		 text[TOKEN_TEXT_MAX];
	const char	*why;

	token_new(&t, TOKEN_KIND_SESSION, aud1, NULL, UUID_A, NULL, NOW,
	    NOW + 3600);
	token_mint(key1, &t, text, sizeof text);
	is_int(verify(key1, text, TOKEN_KIND_TOKEN, &why), -1,
	    "a session cookie is not a token");
	is_str(why, "wrong kind", "reason: wrong kind");
	is_int(verify(key1, text, TOKEN_KIND_SESSION, &why), 0,
	    "... but is a session");
	new_a(&t, NULL, NOW + 60);
	token_mint(key1, &t, text, sizeof text);
	is_int(verify(key1, text, TOKEN_KIND_SESSION, &why), -1,
	    "a token is not a session cookie");
	is_str(why, "wrong kind", "reason: wrong kind");
	is_int(verify(key1, text, 0, &why), -1, "nor anything of kind 0");
}

static void
test_scope(void)
{
	struct token	 t, v;
	char		 text[TOKEN_TEXT_MAX];
	const char	*why;

	new_a(&t, NULL, NOW + 60);
	token_mint(key1, &t, text, sizeof text);
	token_verify(key1, aud1, text, NOW, TOKEN_KIND_TOKEN, &v, &why);
	is_int(token_allows(&v, "default", UUID_A, "serial0"), 1,
	    "a token for guest A opens A");
	is_int(token_allows(&v, "default", UUID_B, "serial0"), 0,
	    "a token for guest A never opens guest B");
	is_int(token_allows(&v, "default", UUID_B, NULL), 0,
	    "... nor lists guest B");
	is_int(token_allows(&v, "default", "6F1C2A9E-3B4D-4E5F-8A7B-1C2D3E4F5A6B",
	    "serial0"), 1, "A's UUID in upper case is A");
	is_int(token_allows(&v, "default", "6f1c2a9e-3b4d-4e5f-8a7b-1c2d3e4f5a6", NULL),
	    0, "a UUID one digit short matches nothing");
	is_int(token_allows(&v, "default", "6f1c2a9e-3b4d-4e5f-8a7b-1c2d3e4f5a6b ",
	    NULL), 0, "a UUID with a trailing blank matches nothing");
	is_int(token_allows(&v, "default", "", NULL), 0, "an empty UUID matches nothing");
	is_int(token_allows(&v, "default", NULL, NULL), 0, "a NULL UUID matches nothing");
	is_int(token_allows(&v, "default", "web1", NULL), 0,
	    "a guest name matches nothing");

	new_a(&t, "serial0", NOW + 60);
	token_mint(key1, &t, text, sizeof text);
	token_verify(key1, aud1, text, NOW, TOKEN_KIND_TOKEN, &v, &why);
	is_int(token_allows(&v, "default", UUID_A, "serial0"), 1,
	    "alias-scoped token opens its alias");
	is_int(token_allows(&v, "default", UUID_A, "serial1"), 0,
	    "... not another alias");
	is_int(token_allows(&v, "default", UUID_A, "any"), 0,
	    "... not an alias literally named any");
	is_int(token_allows(&v, "default", UUID_A, "Serial0"), 0,
	    "... aliases compare exactly");
	is_int(token_allows(&v, "default", UUID_A, ""), 0, "... not an empty alias");
	is_int(token_allows(&v, "default", UUID_A, NULL), 1, "... and lists its guest");
	is_int(token_allows(&v, "default", UUID_B, "serial0"), 0,
	    "... and never guest B's serial0");

	token_new(&t, TOKEN_KIND_TOKEN, aud1, NULL, NULL, NULL, NOW,
	    NOW + 60);
	token_mint(key1, &t, text, sizeof text);
	token_verify(key1, aud1, text, NOW, TOKEN_KIND_TOKEN, &v, &why);
	ok(token_allows(&v, "default", UUID_A, "serial0") &&
	    token_allows(&v, "default", UUID_B, "console1") &&
	    token_allows(&v, "default", UUID_B, NULL),
	    "all guests: any guest and console");
	is_int(token_allows(&v, "default", "nope", NULL), 0,
	    "all guests: still not a malformed UUID");
	token_new(&t, TOKEN_KIND_TOKEN, aud1, NULL, NULL, "serial0", NOW,
	    NOW + 60);
	token_mint(key1, &t, text, sizeof text);
	token_verify(key1, aud1, text, NOW, TOKEN_KIND_TOKEN, &v, &why);
	ok(token_allows(&v, "default", UUID_A, "serial0") &&
	    !token_allows(&v, "default", UUID_B, "serial1"),
	    "all guests, one alias: that alias only");

	/* The hypervisor claim (several-hypervisors). */
	new_a(&t, NULL, NOW + 60);
	token_mint(key1, &t, text, sizeof text);
	token_verify(key1, aud1, text, NOW, TOKEN_KIND_TOKEN, &v, &why);
	ok(token_allows(&v, "default", UUID_A, NULL) &&
	    !token_allows(&v, "kvm2", UUID_A, NULL),
	    "a token for guest A of default: not the same UUID on kvm2");
	token_new(&t, TOKEN_KIND_TOKEN, aud1, "kvm2", NULL, NULL, NOW,
	    NOW + 60);
	token_mint(key1, &t, text, sizeof text);
	token_verify(key1, aud1, text, NOW, TOKEN_KIND_TOKEN, &v, &why);
	ok(token_allows(&v, "kvm2", UUID_A, "serial0") &&
	    token_allows(&v, "kvm2", UUID_B, NULL) &&
	    !token_allows(&v, "default", UUID_A, NULL) &&
	    !token_allows(&v, "kvm", UUID_A, NULL),
	    "all guests of kvm2: every guest of kvm2, none of another");
	token_new(&t, TOKEN_KIND_TOKEN, aud1, NULL, NULL, NULL, NOW,
	    NOW + 60);
	token_mint(key1, &t, text, sizeof text);
	token_verify(key1, aud1, text, NOW, TOKEN_KIND_TOKEN, &v, &why);
	ok(token_allows(&v, "kvm2", UUID_A, NULL) &&
	    token_allows(&v, "default", UUID_A, NULL),
	    "all guests of any hypervisor: both");
}

static void
test_garbage(void)
{
	struct token	 t;
	char		 text[TOKEN_TEXT_MAX], buf[512], *huge;
	const char	*why;
	size_t		 len, i;
	int		 bad;

	new_a(&t, "serial0", NOW + 60);
	token_mint(key1, &t, text, sizeof text);
	len = strlen(text);

	ok(verify(key1, "", TOKEN_KIND_TOKEN, &why) == -1 &&
	    strcmp(why, "malformed") == 0, "empty: malformed");
	ok(verify(key1, NULL, TOKEN_KIND_TOKEN, &why) == -1 &&
	    strcmp(why, "malformed") == 0, "NULL: malformed");
	is_int(verify(key1, "x", TOKEN_KIND_TOKEN, NULL), -1,
	    "a NULL why is allowed");
	huge = malloc(1 << 20);
	memset(huge, 'A', (1 << 20) - 1);
	huge[(1 << 20) - 1] = '\0';
	ok(verify(key1, huge, TOKEN_KIND_TOKEN, &why) == -1 &&
	    strcmp(why, "malformed") == 0, "1 MiB of A: malformed");
	memcpy(huge, text, len);
	ok(verify(key1, huge, TOKEN_KIND_TOKEN, &why) == -1,
	    "a valid token followed by 1 MiB: refused");
	free(huge);

	memset(buf, 'A', 308);
	buf[308] = '\0';
	ok(refused(buf, TOKEN_KIND_TOKEN, "malformed"),
	    "308 characters: too long, malformed");
	buf[307] = '\0';
	ok(refused(buf, TOKEN_KIND_TOKEN, "bad signature"),
	    "307 A's decode to zeros: bad signature");
	buf[305] = '\0';
	ok(refused(buf, TOKEN_KIND_TOKEN, "malformed"),
	    "305 characters (4n+1): malformed");
	buf[103] = '\0';
	ok(refused(buf, TOKEN_KIND_TOKEN, "bad signature"),
	    "103 characters (as short as version 1): bad signature");
	buf[102] = '\0';
	ok(refused(buf, TOKEN_KIND_TOKEN, "malformed"),
	    "102 characters: too short, malformed");

	snprintf(buf, sizeof buf, "%s=", text);
	ok(verify(key1, buf, TOKEN_KIND_TOKEN, &why) == -1 &&
	    strcmp(why, "malformed") == 0, "trailing padding: malformed");
	snprintf(buf, sizeof buf, "%.*s==", (int)len - 2, text);
	ok(verify(key1, buf, TOKEN_KIND_TOKEN, &why) == -1 &&
	    strcmp(why, "malformed") == 0,
	    "padding in place of data: malformed");
	snprintf(buf, sizeof buf, " %s", text);
	ok(verify(key1, buf, TOKEN_KIND_TOKEN, &why) == -1 &&
	    strcmp(why, "malformed") == 0, "leading blank: malformed");
	snprintf(buf, sizeof buf, "%s\n", text);
	ok(verify(key1, buf, TOKEN_KIND_TOKEN, &why) == -1 &&
	    strcmp(why, "malformed") == 0, "trailing newline: malformed");
	snprintf(buf, sizeof buf, "%.40s\t%s", text, text + 40);
	ok(verify(key1, buf, TOKEN_KIND_TOKEN, &why) == -1 &&
	    strcmp(why, "malformed") == 0, "embedded tab: malformed");
	snprintf(buf, sizeof buf, "%.40s%%2D%s", text, text + 41);
	ok(verify(key1, buf, TOKEN_KIND_TOKEN, &why) == -1,
	    "percent-encoding: refused");

	bad = 0;
	for (i = 0; i < len; i++) {
		const char	*odd = "+/=.!~ \"\\\r\n\x7f\x80\xff";
		size_t		 j;

		for (j = 0; odd[j] != '\0'; j++) {
			memcpy(buf, text, len + 1);
			buf[i] = odd[j];
			if (verify(key1, buf, TOKEN_KIND_TOKEN, &why) != -1 ||
			    strcmp(why, "malformed") != 0)
				bad++;
		}
	}
	is_int(bad, 0, "a non-base64url byte anywhere: malformed");

	/*
	 * 116 bytes leave 2 bits unused in the last character: setting them
	 * gives a second text for the same bytes, which is refused.
	 */
	{
		static const char	alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
		    "abcdefghijklmnopqrstuvwxyz0123456789-_";
		const char		*p;
		int			 v;

		is_int(len, 155, "a 116-byte token is 155 characters");
		p = strchr(alpha, text[len - 1]);
		v = (int)(p - alpha);
		memcpy(buf, text, len + 1);
		buf[len - 1] = alpha[v | 1];
		ok(buf[len - 1] != text[len - 1] &&
		    verify(key1, buf, TOKEN_KIND_TOKEN, &why) == -1 &&
		    strcmp(why, "malformed") == 0,
		    "non-zero unused bits: malformed");
		buf[len - 1] = alpha[v | 2];
		ok(buf[len - 1] != text[len - 1] &&
		    verify(key1, buf, TOKEN_KIND_TOKEN, &why) == -1 &&
		    strcmp(why, "malformed") == 0,
		    "the other unused bit: malformed");
	}
}

static void
test_cache(void)
{
	struct token_cache	 tc;
	struct token		 t, u;
	int			 bad, i;
	uint32_t		 n;

	token_cache_init(&tc);
	new_a(&t, NULL, NOW + 60);
	new_a(&u, NULL, NOW + 60);
	is_int(token_cache_use(&tc, &t, NOW), 0, "first use accepted");
	errno = 0;
	is_int(token_cache_use(&tc, &t, NOW), -1, "replay refused");
	is_int(errno, EEXIST, "errno EEXIST");
	is_int(token_cache_use(&tc, &t, NOW + 30), -1,
	    "replay later refused");
	is_int(token_cache_has(&tc, t.id), 1, "token_cache_has: the used id");
	is_int(token_cache_has(&tc, u.id), 0, "... not another");
	is_int(token_cache_use(&tc, &u, NOW), 0, "another token accepted");
	is_int(token_cache_count(&tc), 2, "two ids held");
	token_cache_expire(&tc, NOW + 59);
	is_int(token_cache_count(&tc), 2, "still held a second before expiry");
	is_int(token_cache_use(&tc, &t, NOW + 59), -1, "still refused");
	token_cache_expire(&tc, NOW + 60);
	is_int(token_cache_count(&tc), 0, "dropped once expired");
	ok(tc.slots == NULL && tc.nslots == 0, "an empty cache holds no table");
	is_int(token_cache_has(&tc, t.id), 0,
	    "token_cache_has: an expired id is gone, an empty table is fine");
	errno = 0;
	is_int(token_cache_use(&tc, &t, NOW + 10), -1,
	    "with the clock stepped back, a forgotten token is still refused");
	is_int(errno, ESTALE, "errno ESTALE");
	token_cache_free(&tc);

	/* The bound: TOKEN_CACHE_MAX live ids, then refusal, no eviction. */
	token_cache_init(&tc);
	memset(&t, 0, sizeof t);
	t.kind = TOKEN_KIND_TOKEN;
	t.all_guests = 1;
	bad = 0;
	for (n = 0; n < TOKEN_CACHE_MAX; n++) {
		memcpy(t.id, &n, sizeof n);
		t.expires = n % 2 == 0 ? NOW + 60 : NOW + 600;
		if (token_cache_use(&tc, &t, NOW) != 0)
			bad++;
	}
	is_int(bad, 0, "%d distinct ids accepted", TOKEN_CACHE_MAX);
	is_int(token_cache_count(&tc), TOKEN_CACHE_MAX, "all held");
	ok(tc.nslots <= 2 * TOKEN_CACHE_MAX, "table of %zu slots", tc.nslots);
	n = TOKEN_CACHE_MAX;
	memcpy(t.id, &n, sizeof n);
	t.expires = NOW + 600;
	errno = 0;
	is_int(token_cache_use(&tc, &t, NOW), -1, "one more is refused");
	is_int(errno, ENOSPC, "errno ENOSPC");
	n = 12345;
	memcpy(t.id, &n, sizeof n);
	errno = 0;
	ok(token_cache_use(&tc, &t, NOW) == -1 && errno == EEXIST,
	    "a replay in a full cache is still a replay");
	bad = 0;
	for (i = 0; i < 1000; i++) {
		n = (uint32_t)i * 7;
		memcpy(t.id, &n, sizeof n);
		if (token_cache_use(&tc, &t, NOW) != -1)
			bad++;
	}
	is_int(bad, 0, "no id was evicted");
	n = TOKEN_CACHE_MAX;
	memcpy(t.id, &n, sizeof n);
	is_int(token_cache_use(&tc, &t, NOW + 60), 0,
	    "once half have expired, a new one is accepted");
	is_int(token_cache_count(&tc), TOKEN_CACHE_MAX / 2 + 1,
	    "the expired half was dropped");
	n = 1;
	memcpy(t.id, &n, sizeof n);
	is_int(token_cache_use(&tc, &t, NOW + 60), -1,
	    "a live id is still refused after the purge");
	token_cache_expire(&tc, NOW + 600);
	is_int(token_cache_count(&tc), 0, "all dropped at the end");
	token_cache_free(&tc);
	is_int(token_cache_count(&tc), 0, "a freed cache is empty");
	token_cache_free(&tc);	/* twice: must not crash, no ok line */
	is_int(token_cache_count(&tc), 0, "and still empty after a second free");
}

static void
test_id_hex(void)
{
	struct token	t;
	char		hex[TOKEN_ID_HEX_LEN];
	int		i;

	memset(&t, 0, sizeof t);
	for (i = 0; i < TOKEN_ID_LEN; i++)
		t.id[i] = (uint8_t)(i * 17);
	token_id_hex(&t, hex);
	is_str(hex, "00112233445566778899aabbccddeeff", "id in hex");
}

static void
test_cookie(void)
{
	struct token	 t;
	char		 out[512], text[TOKEN_TEXT_MAX];

	is_int(token_cookie_header(out, sizeof out, "vcd_session", "abc-_1",
	    28800, 0, NULL), 0, "cookie header without path");
	is_str(out, "Set-Cookie: vcd_session=abc-_1; Max-Age=28800; HttpOnly; "
	    "SameSite=Strict", "... as expected");
	is_int(token_cookie_header(out, sizeof out, "vcd_session", "abc", 60,
	    1, "/consoles/"), 0, "cookie header with path, secure");
	is_str(out, "Set-Cookie: vcd_session=abc; Path=/consoles/; Max-Age=60; "
	    "HttpOnly; SameSite=Strict; Secure", "... as expected");
	is_int(token_cookie_header(out, sizeof out, "s", "", 0, 0, "/"), 0,
	    "a deleting cookie");
	is_str(out, "Set-Cookie: s=; Path=/; Max-Age=0; HttpOnly; "
	    "SameSite=Strict", "... as expected");

	token_new(&t, TOKEN_KIND_SESSION, aud1, NULL, UUID_A, NULL, NOW,
	    NOW + 60);
	token_mint(key1, &t, text, sizeof text);
	is_int(token_cookie_header(out, sizeof out, "vcd_session", text, 60,
	    1, NULL), 0, "a minted session is a valid cookie value");

	is_int(token_cookie_header(out, sizeof out, "a", "x;y", 1, 0, NULL),
	    -1, "value with ; refused");
	ok(out[0] == '\0', "... and out is empty");
	is_int(token_cookie_header(out, sizeof out, "a", "x y", 1, 0, NULL),
	    -1, "value with a blank refused");
	is_int(token_cookie_header(out, sizeof out, "a", "x\r\nSet-Cookie: b=1",
	    1, 0, NULL), -1, "value with CRLF refused");
	is_int(token_cookie_header(out, sizeof out, "a", "\"x\"", 1, 0, NULL),
	    -1, "value with quotes refused");
	is_int(token_cookie_header(out, sizeof out, "", "x", 1, 0, NULL), -1,
	    "empty name refused");
	is_int(token_cookie_header(out, sizeof out, "a=b", "x", 1, 0, NULL), -1,
	    "name with = refused");
	is_int(token_cookie_header(out, sizeof out, "a", "x", 1, 0, "rel"), -1,
	    "relative path refused");
	is_int(token_cookie_header(out, sizeof out, "a", "x", 1, 0, "/a;b"), -1,
	    "path with ; refused");
	is_int(token_cookie_header(out, sizeof out, "a", "x", 1, 0, "/a\nb"),
	    -1, "path with LF refused");
	is_int(token_cookie_header(out, sizeof out, "a", "x", -1, 0, NULL), -1,
	    "negative Max-Age refused");
	is_int(token_cookie_header(out, 20, "vcd_session", "abc", 60, 1, NULL),
	    -1, "too small a buffer refused");
	ok(out[0] == '\0', "... and out is empty");
}

static int
secret(const char *path, uint8_t *key, int create, char *err, size_t len)
{
	err[0] = '\0';
	return token_secret_load(path, key, create, err, len);
}

static int
err_ok(const char *err, const char *path, const char *what)
{
	return strstr(err, path) != NULL && strchr(err, '\n') == NULL &&
	    strstr(err, what) != NULL;
}

static void
write_file(const char *path, const void *p, size_t len, mode_t mode)
{
	int	fd;

	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	if (fd == -1 || write(fd, p, len) != (ssize_t)len)
		perror(path);
	fchmod(fd, mode);
	close(fd);
}

static void
test_secret(void)
{
	struct stat	 st;
	uint8_t		 key[TOKEN_KEY_LEN], again[TOKEN_KEY_LEN];
	uint8_t		 file[64];
	char		 path[512], link_path[512], sub[512], err[512];
	int		 fd, n;
	mode_t		 old;

	snprintf(path, sizeof path, "%s/secret", dir);
	is_int(secret(path, key, 0, err, sizeof err), -1,
	    "missing, not creating: refused");
	ok(err_ok(err, path, "No such file"), "... one line with the path: %s",
	    err);

	old = umask(0);
	is_int(secret(path, key, 1, err, sizeof err), 0,
	    "missing, creating: created (umask 0)");
	umask(old);
	ok(stat(path, &st) == 0 && S_ISREG(st.st_mode) &&
	    (st.st_mode & 07777) == 0600, "mode 0600");
	is_int(st.st_size, TOKEN_KEY_LEN, "32 bytes");
	fd = open(path, O_RDONLY);
	n = (int)read(fd, file, sizeof file);
	close(fd);
	ok(n == TOKEN_KEY_LEN && memcmp(file, key, TOKEN_KEY_LEN) == 0,
	    "the key returned is the key written");
	is_int(secret(path, again, 1, err, sizeof err), 0, "loaded again");
	ok(memcmp(key, again, sizeof key) == 0, "the same key");
	{
		FILE	*fp;
		char	 cmd[600], line[256];

		snprintf(cmd, sizeof cmd, "ls -A %s", dir);
		fp = popen(cmd, "r");
		n = 0;
		while (fp != NULL && fgets(line, sizeof line, fp) != NULL)
			n++;
		if (fp != NULL)
			pclose(fp);
		is_int(n, 1, "no temporary file left behind");
	}

	chmod(path, 0640);
	is_int(secret(path, key, 1, err, sizeof err), -1, "mode 0640 refused");
	ok(err_ok(err, path, "0640"), "... %s", err);
	chmod(path, 0604);
	is_int(secret(path, key, 1, err, sizeof err), -1, "mode 0604 refused");
	ok(err_ok(err, path, "0604"), "... %s", err);
	chmod(path, 0620);
	is_int(secret(path, key, 1, err, sizeof err), -1, "mode 0620 refused");
	chmod(path, 0602);
	is_int(secret(path, key, 1, err, sizeof err), -1, "mode 0602 refused");
	chmod(path, 0400);
	is_int(secret(path, key, 0, err, sizeof err), 0, "mode 0400 accepted");
	chmod(path, 0600);

	snprintf(link_path, sizeof link_path, "%s/link", dir);
	snprintf(sub, sizeof sub, "%s/target", dir);
	ok(symlink(path, link_path) == 0, "made a symbolic link");
	is_int(secret(link_path, key, 1, err, sizeof err), -1,
	    "a symbolic link to a good secret refused");
	ok(err_ok(err, link_path, "symbolic link"), "... %s", err);
	unlink(link_path);
	ok(symlink(sub, link_path) == 0, "made a dangling symbolic link");
	is_int(secret(link_path, key, 1, err, sizeof err), -1,
	    "a dangling symbolic link refused, not followed to create");
	ok(access(sub, F_OK) == -1 && errno == ENOENT,
	    "... nothing created at its target");
	unlink(link_path);

	snprintf(sub, sizeof sub, "%s/dir", dir);
	mkdir(sub, 0700);
	is_int(secret(sub, key, 1, err, sizeof err), -1, "a directory refused");
	ok(err_ok(err, sub, "regular"), "... %s", err);
	rmdir(sub);
	snprintf(sub, sizeof sub, "%s/fifo", dir);
	mkfifo(sub, 0600);
	is_int(secret(sub, key, 1, err, sizeof err), -1,
	    "a FIFO refused without blocking");
	unlink(sub);

	memset(file, 7, sizeof file);
	write_file(path, file, 31, 0600);
	is_int(secret(path, key, 1, err, sizeof err), -1, "31 bytes refused");
	ok(err_ok(err, path, "32"), "... %s", err);
	write_file(path, file, 33, 0600);
	is_int(secret(path, key, 1, err, sizeof err), -1, "33 bytes refused");
	write_file(path, file, 64, 0600);
	is_int(secret(path, key, 1, err, sizeof err), -1,
	    "64 bytes (hex text) refused");
	write_file(path, file, 0, 0600);
	is_int(secret(path, key, 1, err, sizeof err), -1,
	    "an empty file refused, not filled in");
	write_file(path, file, 32, 0600);
	ok(secret(path, key, 1, err, sizeof err) == 0 &&
	    memcmp(key, file, 32) == 0, "32 bytes of our own accepted");
	unlink(path);

	snprintf(sub, sizeof sub, "%s/new/secret", dir);
	is_int(secret(sub, key, 1, err, sizeof err), 0,
	    "a missing parent directory is created");
	snprintf(sub, sizeof sub, "%s/new", dir);
	ok(stat(sub, &st) == 0 && (st.st_mode & 07777) == 0700,
	    "... with mode 0700");
	snprintf(sub, sizeof sub, "%s/new/secret", dir);
	unlink(sub);
	snprintf(sub, sizeof sub, "%s/new", dir);
	rmdir(sub);
	snprintf(sub, sizeof sub, "%s/a/b/secret", dir);
	is_int(secret(sub, key, 1, err, sizeof err), -1,
	    "two missing levels: refused");
	ok(err_ok(err, sub, "directory"), "... %s", err);
}

static int
audience(const char *state, uint8_t *aud, int create, char *err, size_t len)
{
	err[0] = '\0';
	return token_audience_load(state, aud, create, err, len);
}

static int
count_entries(const char *path)
{
	FILE	*fp;
	char	 cmd[600], line[256];
	int	 n = 0;

	snprintf(cmd, sizeof cmd, "ls -A %s", path);
	fp = popen(cmd, "r");
	while (fp != NULL && fgets(line, sizeof line, fp) != NULL)
		n++;
	if (fp != NULL)
		pclose(fp);
	return n;
}

static void
test_audience_file(void)
{
	struct stat	 st;
	uint8_t		 aud[TOKEN_AUD_LEN], again[TOKEN_AUD_LEN];
	uint8_t		 other[TOKEN_AUD_LEN], file[64];
	char		 state[256], path[512], real[512], sub[512];
	char		 err[512];
	int		 fd, n;
	mode_t		 old;

	snprintf(state, sizeof state, "%s/state", dir);
	snprintf(path, sizeof path, "%s/audience", state);
	is_int(audience(state, aud, 0, err, sizeof err), -1,
	    "audience missing, not creating: refused");
	ok(err_ok(err, path, "No such file"), "... %s", err);
	ok(access(state, F_OK) == -1, "... and state_dir not created");

	old = umask(0);
	is_int(audience(state, aud, 1, err, sizeof err), 0,
	    "audience and state_dir missing, creating: created (umask 0)");
	umask(old);
	ok(stat(state, &st) == 0 && S_ISDIR(st.st_mode) &&
	    (st.st_mode & 07777) == 0700, "state_dir made with mode 0700");
	ok(stat(path, &st) == 0 && S_ISREG(st.st_mode) &&
	    (st.st_mode & 07777) == 0600, "audience made with mode 0600");
	is_int(st.st_size, TOKEN_AUD_LEN, "16 bytes");
	fd = open(path, O_RDONLY);
	n = (int)read(fd, file, sizeof file);
	close(fd);
	ok(n == TOKEN_AUD_LEN && memcmp(file, aud, TOKEN_AUD_LEN) == 0,
	    "the audience returned is the one written");
	is_int(count_entries(state), 1, "no temporary file left behind");
	ok(audience(state, again, 0, err, sizeof err) == 0 &&
	    memcmp(aud, again, sizeof aud) == 0, "loaded again: the same");
	ok(audience(state, again, 1, err, sizeof err) == 0 &&
	    memcmp(aud, again, sizeof aud) == 0,
	    "with create, an existing one is kept");

	snprintf(sub, sizeof sub, "%s/state2/", dir);
	ok(audience(sub, other, 1, err, sizeof err) == 0 &&
	    memcmp(aud, other, sizeof aud) != 0,
	    "another state_dir (with a trailing slash): another audience");
	snprintf(sub, sizeof sub, "%s/state2/audience", dir);
	unlink(sub);
	snprintf(sub, sizeof sub, "%s/state2", dir);
	rmdir(sub);

	chmod(path, 0640);
	is_int(audience(state, aud, 1, err, sizeof err), -1,
	    "audience mode 0640 refused");
	ok(err_ok(err, path, "0640"), "... %s", err);
	chmod(path, 0604);
	is_int(audience(state, aud, 1, err, sizeof err), -1,
	    "audience mode 0604 refused");
	chmod(path, 0400);
	is_int(audience(state, aud, 0, err, sizeof err), 0,
	    "audience mode 0400 accepted");
	chmod(path, 0600);
	if (geteuid() == 0) {
		if (chown(path, 12345, 12345) == -1)
			perror("chown");
		is_int(audience(state, aud, 1, err, sizeof err), -1,
		    "audience owned by another user refused");
		ok(err_ok(err, path, "uid 12345"), "... %s", err);
		if (chown(path, 0, 0) == -1)
			perror("chown");
	} else {
		tap_skip("not root: cannot give the file away");
		tap_skip("not root: the refusal message is not tested");
	}
	is_int(audience(state, aud, 0, err, sizeof err), 0,
	    "owned by root or us: accepted");

	snprintf(real, sizeof real, "%s/real", state);
	rename(path, real);
	ok(symlink(real, path) == 0, "audience made a symbolic link");
	is_int(audience(state, aud, 1, err, sizeof err), -1,
	    "a symbolic link to a good audience refused");
	ok(err_ok(err, path, "symbolic link"), "... %s", err);
	unlink(path);
	ok(symlink(sub, path) == 0, "audience made a dangling link");
	is_int(audience(state, aud, 1, err, sizeof err), -1,
	    "a dangling symbolic link refused, not followed to create");
	ok(access(sub, F_OK) == -1, "... nothing created at its target");
	unlink(path);
	unlink(real);

	memset(file, 7, sizeof file);
	write_file(path, file, 15, 0600);
	is_int(audience(state, aud, 1, err, sizeof err), -1,
	    "15 bytes refused");
	ok(err_ok(err, path, "16"), "... %s", err);
	write_file(path, file, 17, 0600);
	is_int(audience(state, aud, 1, err, sizeof err), -1,
	    "17 bytes refused");
	write_file(path, file, 32, 0600);
	is_int(audience(state, aud, 1, err, sizeof err), -1,
	    "32 bytes (hex text) refused");
	write_file(path, file, 0, 0600);
	is_int(audience(state, aud, 1, err, sizeof err), -1,
	    "an empty audience refused, not filled in");
	write_file(path, file, 16, 0600);
	ok(audience(state, aud, 1, err, sizeof err) == 0 &&
	    memcmp(aud, file, 16) == 0, "16 bytes of our own accepted");
	unlink(path);
	mkdir(path, 0700);
	is_int(audience(state, aud, 1, err, sizeof err), -1,
	    "a directory refused");
	ok(err_ok(err, path, "regular"), "... %s", err);
	rmdir(path);
	rmdir(state);

	is_int(audience(NULL, aud, 1, err, sizeof err), -1,
	    "no state_dir refused");
	ok(err[0] != '\0' && strchr(err, '\n') == NULL, "... %s", err);
	is_int(audience("", aud, 1, err, sizeof err), -1,
	    "an empty state_dir refused");
	snprintf(sub, sizeof sub, "%s/a/b", dir);
	is_int(audience(sub, aud, 1, err, sizeof err), -1,
	    "a state_dir two levels missing: refused");
	ok(err_ok(err, sub, "directory"), "... %s", err);
}

int
main(void)
{
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	test_round_trip();
	test_claims();
	test_text_max();
	test_label();
	test_bad_fields();
	test_expiry();
	test_forged();
	test_signed_but_malformed();
	test_version1();
	test_audience();
	test_kind();
	test_scope();
	test_garbage();
	test_cache();
	test_id_hex();
	test_cookie();
	test_secret();
	test_audience_file();
	rmdir(dir);
	return tap_done();
}
