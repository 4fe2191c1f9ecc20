/*
 * Unit tests of tokens and session cookies: mint and verify, expiry,
 * forgeries (any bit flipped, truncated, extended, another key), a cookie
 * used as a token and the reverse, scopes, the replay cache and its bound,
 * strict base64url, the secret file and the Set-Cookie builder.  The
 * layout documented in token.c is rebuilt here independently, so the tests
 * also pin the format.
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

static const uint8_t key1[TOKEN_KEY_LEN] = "0123456789abcdef0123456789abcde";
static const uint8_t key2[TOKEN_KEY_LEN] = "0123456789abcdef0123456789abcdX";
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

/* Build a token from the documented layout, signed with key. */
static void
craft(const uint8_t *key, int version, int kind, int scope, const char *uuid,
    int alen, const char *alias, int64_t expires, char *out)
{
	uint8_t		raw[256];
	unsigned int	maclen;
	size_t		len, i;
	int		n;

	memset(raw, 0, sizeof raw);
	raw[0] = (uint8_t)version;
	raw[1] = (uint8_t)kind;
	for (i = 0; i < 16; i++)
		raw[2 + i] = (uint8_t)(0xa0 + i);
	raw[18] = (uint8_t)scope;
	if (uuid != NULL) {
		for (i = 0, n = 19; uuid[i] != '\0'; i++) {
			if (uuid[i] == '-')
				continue;
			sscanf(uuid + i, "%2hhx", &raw[n++]);
			i++;
		}
	}
	for (i = 0; i < 8; i++)
		raw[35 + i] = (uint8_t)((uint64_t)expires >> (56 - 8 * i));
	raw[43] = (uint8_t)alen;
	memcpy(raw + 44, alias, strlen(alias));
	len = 44 + strlen(alias);
	HMAC(EVP_sha256(), key, TOKEN_KEY_LEN, raw, len, raw + len, &maclen);
	b64url_encode(raw, len + maclen, out);
}

static int
verify(const uint8_t *key, const char *text, int kind, const char **why)
{
	struct token	t;

	return token_verify(key, text, NOW, kind, &t, why);
}

static void
test_round_trip(void)
{
	struct token	 t, v;
	char		 text[TOKEN_TEXT_MAX], text2[TOKEN_TEXT_MAX];
	char		 small[TOKEN_TEXT_MAX];
	const char	*why;
	uint8_t		 zero[TOKEN_ID_LEN];

	ok(token_new(&t, TOKEN_KIND_TOKEN, UUID_A, "serial0", NOW + 60) == 0,
	    "token_new for one guest and alias");
	memset(zero, 0, sizeof zero);
	ok(memcmp(t.id, zero, sizeof zero) != 0, "the id is filled in");
	ok(token_mint(key1, &t, text, sizeof text) == 0, "mint");
	ok(strspn(text, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	    "0123456789-_") == strlen(text), "text is base64url, unpadded");
	is_int(token_verify(key1, text, NOW, TOKEN_KIND_TOKEN, &v, &why), 0,
	    "verify");
	ok(why == NULL, "no reason on success");
	is_int(v.kind, TOKEN_KIND_TOKEN, "kind kept");
	ok(memcmp(v.id, t.id, TOKEN_ID_LEN) == 0, "id kept");
	is_int(v.all_guests, 0, "guest scope kept");
	is_str(v.uuid, UUID_A, "uuid kept");
	is_str(v.alias, "serial0", "alias kept");
	is_int(v.expires, NOW + 60, "expiry kept");

	ok(token_new(&t, TOKEN_KIND_TOKEN,
	    "6F1C2A9E-3B4D-4E5F-8A7B-1C2D3E4F5A6B", NULL, NOW + 60) == 0,
	    "token_new with an upper-case UUID");
	is_str(t.uuid, UUID_A, "the UUID is kept in lower case");
	is_str(t.alias, "any", "alias NULL means any");

	ok(token_new(&t, TOKEN_KIND_SESSION, NULL, NULL, NOW + 28800) == 0 &&
	    token_mint(key1, &t, text, sizeof text) == 0 &&
	    token_verify(key1, text, NOW, TOKEN_KIND_SESSION, &v, &why) == 0,
	    "an all-guests session round trip");
	ok(v.all_guests == 1 && v.uuid[0] == '\0' && strcmp(v.alias, "any") ==
	    0 && v.kind == TOKEN_KIND_SESSION, "all-guests scope kept");

	ok(token_new(&t, TOKEN_KIND_TOKEN, UUID_B,
	    "abcdefghijklmnopqrstuvwxyz012345", NOW + 1) == 0 &&
	    token_mint(key1, &t, text, sizeof text) == 0,
	    "mint with a 32-byte alias");
	is_int(strlen(text), TOKEN_TEXT_MAX - 1, "the longest text is %d "
	    "characters", TOKEN_TEXT_MAX - 1);
	ok(verify(key1, text, TOKEN_KIND_TOKEN, &why) == 0,
	    "the longest token verifies");
	is_int(token_mint(key1, &t, small, strlen(text)), -1,
	    "mint refuses a buffer without room for the NUL");
	ok(token_new(&t, TOKEN_KIND_TOKEN, UUID_B, "x", NOW + 1) == 0 &&
	    token_mint(key1, &t, text, sizeof text) == 0 &&
	    strlen(text) == 103, "a 1-byte alias gives 103 characters");
	ok(verify(key1, text, TOKEN_KIND_TOKEN, &why) == 0,
	    "the shortest token verifies");

	ok(token_new(&t, TOKEN_KIND_TOKEN, UUID_A, NULL, NOW + 60) == 0 &&
	    token_mint(key1, &t, text, sizeof text) == 0 &&
	    token_new(&v, TOKEN_KIND_TOKEN, UUID_A, NULL, NOW + 60) == 0 &&
	    token_mint(key1, &v, text2, sizeof text2) == 0,
	    "two tokens minted in a row");
	ok(memcmp(t.id, v.id, TOKEN_ID_LEN) != 0, "their ids differ");
	ok(strcmp(text, text2) != 0, "their texts differ");
}

static void
test_bad_fields(void)
{
	struct token	t;
	char		text[TOKEN_TEXT_MAX];

	is_int(token_new(&t, 0, UUID_A, NULL, NOW), -1, "unknown kind");
	is_int(token_new(&t, TOKEN_KIND_TOKEN, "not-a-uuid", NULL, NOW), -1,
	    "malformed UUID");
	is_int(token_new(&t, TOKEN_KIND_TOKEN,
	    "6f1c2a9e3b4d-4e5f-8a7b-1c2d3e4f5a6b0", NULL, NOW), -1,
	    "UUID with a misplaced dash");
	is_int(token_new(&t, TOKEN_KIND_TOKEN,
	    "6f1c2a9e-3b4d-4e5f-8a7b-1c2d3e4f5a6g", NULL, NOW), -1,
	    "UUID with a non-hex digit");
	is_int(token_new(&t, TOKEN_KIND_TOKEN, UUID_A,
	    "abcdefghijklmnopqrstuvwxyz0123456", NOW), -1, "33-byte alias");
	is_int(token_new(&t, TOKEN_KIND_TOKEN, UUID_A, "", NOW), -1,
	    "empty alias");
	is_int(token_new(&t, TOKEN_KIND_TOKEN, UUID_A, "../x", NOW), -1,
	    "alias with a slash");
	is_int(token_new(&t, TOKEN_KIND_TOKEN, UUID_A, "a b", NOW), -1,
	    "alias with a space");

	token_new(&t, TOKEN_KIND_TOKEN, UUID_A, NULL, NOW + 60);
	t.kind = 3;
	is_int(token_mint(key1, &t, text, sizeof text), -1,
	    "mint refuses an unknown kind");
	token_new(&t, TOKEN_KIND_TOKEN, UUID_A, NULL, NOW + 60);
	t.expires = 0;
	is_int(token_mint(key1, &t, text, sizeof text), -1,
	    "mint refuses expiry 0");
	token_new(&t, TOKEN_KIND_TOKEN, UUID_A, NULL, NOW + 60);
	snprintf(t.uuid, sizeof t.uuid, "web1");
	is_int(token_mint(key1, &t, text, sizeof text), -1,
	    "mint refuses a guest name in place of a UUID");
	token_new(&t, TOKEN_KIND_TOKEN, UUID_A, NULL, NOW + 60);
	memset(t.alias, 'a', sizeof t.alias);
	is_int(token_mint(key1, &t, text, sizeof text), -1,
	    "mint refuses an unterminated alias");
}

static void
test_expiry(void)
{
	struct token	 t;
	char		 text[TOKEN_TEXT_MAX];
	const char	*why;

	token_new(&t, TOKEN_KIND_TOKEN, UUID_A, NULL, NOW);
	token_mint(key1, &t, text, sizeof text);
	is_int(verify(key1, text, TOKEN_KIND_TOKEN, &why), -1,
	    "a token expiring now is refused");
	is_str(why, "expired", "reason: expired");
	token_new(&t, TOKEN_KIND_TOKEN, UUID_A, NULL, NOW + 1);
	token_mint(key1, &t, text, sizeof text);
	is_int(verify(key1, text, TOKEN_KIND_TOKEN, &why), 0,
	    "a token expiring in one second is accepted");
	token_new(&t, TOKEN_KIND_TOKEN, UUID_A, NULL, 1);
	token_mint(key1, &t, text, sizeof text);
	ok(verify(key1, text, TOKEN_KIND_TOKEN, &why) == -1 &&
	    strcmp(why, "expired") == 0, "a token from 1970 is expired");
	token_new(&t, TOKEN_KIND_SESSION, NULL, NULL, NOW - 1);
	token_mint(key1, &t, text, sizeof text);
	ok(verify(key1, text, TOKEN_KIND_SESSION, &why) == -1 &&
	    strcmp(why, "expired") == 0, "an expired session is refused");

	token_new(&t, TOKEN_KIND_TOKEN, UUID_A, NULL, NOW + TOKEN_MAX_LIFETIME);
	token_mint(key1, &t, text, sizeof text);
	is_int(verify(key1, text, TOKEN_KIND_TOKEN, &why), 0,
	    "expiry TOKEN_MAX_LIFETIME ahead is accepted");
	token_new(&t, TOKEN_KIND_TOKEN, UUID_A, NULL,
	    NOW + TOKEN_MAX_LIFETIME + 1);
	token_mint(key1, &t, text, sizeof text);
	is_int(verify(key1, text, TOKEN_KIND_TOKEN, &why), -1,
	    "one second more is refused");
	is_str(why, "expiry too far ahead", "reason: expiry too far ahead");
	token_new(&t, TOKEN_KIND_TOKEN, UUID_A, NULL, INT64_MAX);
	token_mint(key1, &t, text, sizeof text);
	ok(verify(key1, text, TOKEN_KIND_TOKEN, &why) == -1 &&
	    strcmp(why, "expiry too far ahead") == 0,
	    "expiry INT64_MAX is refused");
}

static void
test_forged(void)
{
	struct token	 t;
	char		 text[TOKEN_TEXT_MAX], buf[512];
	const char	*why, *alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "abcdefghijklmnopqrstuvwxyz0123456789-_";
	uint8_t		 raw[256];
	size_t		 len, i, j;
	int		 n, bit, bad, badwhy;

	token_new(&t, TOKEN_KIND_TOKEN, UUID_A, "serial0", NOW + 60);
	token_mint(key1, &t, text, sizeof text);
	len = strlen(text);

	n = b64url_decode(text, raw);
	ok(n == 44 + 7 + 32, "decoded length is 44 + alias + 32 (%d)", n);
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

	/* A longer alias with the MAC of the shorter one. */
	n = b64url_decode(text, raw);
	memmove(raw + 52, raw + 51, 32);
	raw[43] = 8;
	raw[51] = '0';
	b64url_encode(raw, (size_t)n + 1, buf);
	ok(verify(key1, buf, TOKEN_KIND_TOKEN, &why) == -1 &&
	    strcmp(why, "bad signature") == 0, "a stretched alias is refused");

	is_int(verify(key2, text, TOKEN_KIND_TOKEN, &why), -1,
	    "a token from another key is refused");
	is_str(why, "bad signature", "reason: bad signature");

	token_new(&t, TOKEN_KIND_SESSION, UUID_A, NULL, NOW + 3600);
	token_mint(key2, &t, text, sizeof text);
	is_int(verify(key1, text, TOKEN_KIND_SESSION, &why), -1,
	    "a cookie from another secret is refused");
	is_str(why, "bad signature", "reason: bad signature");

	craft(key1, 1, TOKEN_KIND_TOKEN, 0, UUID_A, 3, "any", NOW + 60, buf);
	is_int(verify(key1, buf, TOKEN_KIND_TOKEN, &why), 0,
	    "a token built from the documented layout verifies");
	craft(key2, 1, TOKEN_KIND_TOKEN, 0, UUID_A, 3, "any", NOW + 60, buf);
	is_int(verify(key1, buf, TOKEN_KIND_TOKEN, &why), -1,
	    "the same with another key does not");
}

static void
test_signed_but_malformed(void)
{
	char		 buf[512];
	const char	*why;

	craft(key1, 2, TOKEN_KIND_TOKEN, 0, UUID_A, 3, "any", NOW + 60, buf);
	ok(verify(key1, buf, TOKEN_KIND_TOKEN, &why) == -1 &&
	    strcmp(why, "malformed") == 0, "signed, version 2: malformed");
	craft(key1, 1, 3, 0, UUID_A, 3, "any", NOW + 60, buf);
	ok(verify(key1, buf, TOKEN_KIND_TOKEN, &why) == -1 &&
	    strcmp(why, "malformed") == 0, "signed, kind 3: malformed");
	craft(key1, 1, 0, 0, UUID_A, 3, "any", NOW + 60, buf);
	ok(verify(key1, buf, TOKEN_KIND_TOKEN, &why) == -1 &&
	    strcmp(why, "malformed") == 0, "signed, kind 0: malformed");
	craft(key1, 1, TOKEN_KIND_TOKEN, 2, UUID_A, 3, "any", NOW + 60, buf);
	ok(verify(key1, buf, TOKEN_KIND_TOKEN, &why) == -1 &&
	    strcmp(why, "malformed") == 0, "signed, scope 2: malformed");
	craft(key1, 1, TOKEN_KIND_TOKEN, 1, UUID_A, 3, "any", NOW + 60, buf);
	ok(verify(key1, buf, TOKEN_KIND_TOKEN, &why) == -1 &&
	    strcmp(why, "malformed") == 0,
	    "signed, all guests but a UUID: malformed");
	craft(key1, 1, TOKEN_KIND_TOKEN, 1, NULL, 3, "any", NOW + 60, buf);
	is_int(verify(key1, buf, TOKEN_KIND_TOKEN, &why), 0,
	    "signed, all guests, zero UUID: valid");
	craft(key1, 1, TOKEN_KIND_TOKEN, 0, UUID_A, 4, "any", NOW + 60, buf);
	ok(verify(key1, buf, TOKEN_KIND_TOKEN, &why) == -1 &&
	    strcmp(why, "malformed") == 0,
	    "signed, alias length beyond the alias: malformed");
	craft(key1, 1, TOKEN_KIND_TOKEN, 0, UUID_A, 2, "any", NOW + 60, buf);
	ok(verify(key1, buf, TOKEN_KIND_TOKEN, &why) == -1 &&
	    strcmp(why, "malformed") == 0,
	    "signed, alias length short of the alias: malformed");
	craft(key1, 1, TOKEN_KIND_TOKEN, 0, UUID_A, 3, "a/b", NOW + 60, buf);
	ok(verify(key1, buf, TOKEN_KIND_TOKEN, &why) == -1 &&
	    strcmp(why, "malformed") == 0, "signed, alias a/b: malformed");
	craft(key1, 1, TOKEN_KIND_TOKEN, 0, UUID_A, 3, "a\nb", NOW + 60, buf);
	ok(verify(key1, buf, TOKEN_KIND_TOKEN, &why) == -1 &&
	    strcmp(why, "malformed") == 0, "signed, alias with LF: malformed");
	craft(key1, 1, TOKEN_KIND_TOKEN, 0, UUID_A, 0, "", NOW + 60, buf);
	ok(verify(key1, buf, TOKEN_KIND_TOKEN, &why) == -1 &&
	    strcmp(why, "malformed") == 0, "signed, empty alias: malformed");
	craft(key1, 1, TOKEN_KIND_TOKEN, 0, UUID_A, 33,
	    "abcdefghijklmnopqrstuvwxyz0123456", NOW + 60, buf);
	ok(verify(key1, buf, TOKEN_KIND_TOKEN, &why) == -1 &&
	    strcmp(why, "malformed") == 0, "signed, 33-byte alias: malformed");
	craft(key1, 1, TOKEN_KIND_TOKEN, 0, UUID_A, 3, "any", -5, buf);
	ok(verify(key1, buf, TOKEN_KIND_TOKEN, &why) == -1 &&
	    strcmp(why, "expired") == 0, "signed, negative expiry: expired");
}

static void
test_kind(void)
{
	struct token	 t;
	char		 text[TOKEN_TEXT_MAX];
	const char	*why;

	token_new(&t, TOKEN_KIND_SESSION, UUID_A, NULL, NOW + 3600);
	token_mint(key1, &t, text, sizeof text);
	is_int(verify(key1, text, TOKEN_KIND_TOKEN, &why), -1,
	    "a session cookie is not a token");
	is_str(why, "wrong kind", "reason: wrong kind");
	is_int(verify(key1, text, TOKEN_KIND_SESSION, &why), 0,
	    "... but is a session");
	token_new(&t, TOKEN_KIND_TOKEN, UUID_A, NULL, NOW + 60);
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

	token_new(&t, TOKEN_KIND_TOKEN, UUID_A, NULL, NOW + 60);
	token_mint(key1, &t, text, sizeof text);
	token_verify(key1, text, NOW, TOKEN_KIND_TOKEN, &v, &why);
	is_int(token_allows(&v, UUID_A, "serial0"), 1,
	    "a token for guest A opens A");
	is_int(token_allows(&v, UUID_B, "serial0"), 0,
	    "a token for guest A never opens guest B");
	is_int(token_allows(&v, UUID_B, NULL), 0,
	    "... nor lists guest B");
	is_int(token_allows(&v, "6F1C2A9E-3B4D-4E5F-8A7B-1C2D3E4F5A6B",
	    "serial0"), 1, "A's UUID in upper case is A");
	is_int(token_allows(&v, "6f1c2a9e-3b4d-4e5f-8a7b-1c2d3e4f5a6", NULL),
	    0, "a UUID one digit short matches nothing");
	is_int(token_allows(&v, "6f1c2a9e-3b4d-4e5f-8a7b-1c2d3e4f5a6b ",
	    NULL), 0, "a UUID with a trailing blank matches nothing");
	is_int(token_allows(&v, "", NULL), 0, "an empty UUID matches nothing");
	is_int(token_allows(&v, NULL, NULL), 0, "a NULL UUID matches nothing");
	is_int(token_allows(&v, "web1", NULL), 0,
	    "a guest name matches nothing");

	token_new(&t, TOKEN_KIND_TOKEN, UUID_A, "serial0", NOW + 60);
	token_mint(key1, &t, text, sizeof text);
	token_verify(key1, text, NOW, TOKEN_KIND_TOKEN, &v, &why);
	is_int(token_allows(&v, UUID_A, "serial0"), 1,
	    "alias-scoped token opens its alias");
	is_int(token_allows(&v, UUID_A, "serial1"), 0,
	    "... not another alias");
	is_int(token_allows(&v, UUID_A, "any"), 0,
	    "... not an alias literally named any");
	is_int(token_allows(&v, UUID_A, "Serial0"), 0,
	    "... aliases compare exactly");
	is_int(token_allows(&v, UUID_A, ""), 0, "... not an empty alias");
	is_int(token_allows(&v, UUID_A, NULL), 1, "... and lists its guest");
	is_int(token_allows(&v, UUID_B, "serial0"), 0,
	    "... and never guest B's serial0");

	token_new(&t, TOKEN_KIND_TOKEN, NULL, NULL, NOW + 60);
	token_mint(key1, &t, text, sizeof text);
	token_verify(key1, text, NOW, TOKEN_KIND_TOKEN, &v, &why);
	ok(token_allows(&v, UUID_A, "serial0") &&
	    token_allows(&v, UUID_B, "console1") &&
	    token_allows(&v, UUID_B, NULL),
	    "all guests: any guest and console");
	is_int(token_allows(&v, "nope", NULL), 0,
	    "all guests: still not a malformed UUID");
	token_new(&t, TOKEN_KIND_TOKEN, NULL, "serial0", NOW + 60);
	token_mint(key1, &t, text, sizeof text);
	token_verify(key1, text, NOW, TOKEN_KIND_TOKEN, &v, &why);
	ok(token_allows(&v, UUID_A, "serial0") &&
	    !token_allows(&v, UUID_B, "serial1"),
	    "all guests, one alias: that alias only");
}

static void
test_garbage(void)
{
	struct token	 t;
	char		 text[TOKEN_TEXT_MAX], buf[512], *huge;
	const char	*why;
	size_t		 len, i;
	int		 bad;

	token_new(&t, TOKEN_KIND_TOKEN, UUID_A, "serial0", NOW + 60);
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

	memset(buf, 'A', 144);
	buf[144] = '\0';
	ok(verify(key1, buf, TOKEN_KIND_TOKEN, &why) == -1 &&
	    strcmp(why, "bad signature") == 0,
	    "144 A's decode to zeros: bad signature");
	buf[141] = '\0';
	ok(verify(key1, buf, TOKEN_KIND_TOKEN, &why) == -1 &&
	    strcmp(why, "malformed") == 0, "141 characters (4n+1): malformed");
	buf[102] = '\0';
	ok(verify(key1, buf, TOKEN_KIND_TOKEN, &why) == -1 &&
	    strcmp(why, "malformed") == 0, "102 characters: too short");

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
	 * 83 bytes leave 2 bits unused in the last character: setting them
	 * gives a second text for the same bytes, which is refused.
	 */
	{
		static const char	alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
		    "abcdefghijklmnopqrstuvwxyz0123456789-_";
		const char		*p;
		int			 v;

		is_int(len, 111, "an 83-byte token is 111 characters");
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
	token_new(&t, TOKEN_KIND_TOKEN, UUID_A, NULL, NOW + 60);
	token_new(&u, TOKEN_KIND_TOKEN, UUID_A, NULL, NOW + 60);
	is_int(token_cache_use(&tc, &t, NOW), 0, "first use accepted");
	errno = 0;
	is_int(token_cache_use(&tc, &t, NOW), -1, "replay refused");
	is_int(errno, EEXIST, "errno EEXIST");
	is_int(token_cache_use(&tc, &t, NOW + 30), -1,
	    "replay later refused");
	is_int(token_cache_use(&tc, &u, NOW), 0, "another token accepted");
	is_int(token_cache_count(&tc), 2, "two ids held");
	token_cache_expire(&tc, NOW + 59);
	is_int(token_cache_count(&tc), 2, "still held a second before expiry");
	is_int(token_cache_use(&tc, &t, NOW + 59), -1, "still refused");
	token_cache_expire(&tc, NOW + 60);
	is_int(token_cache_count(&tc), 0, "dropped once expired");
	ok(tc.slots == NULL && tc.nslots == 0, "an empty cache holds no table");
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
	token_cache_free(&tc);
	ok(1, "token_cache_free twice is harmless");
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

	token_new(&t, TOKEN_KIND_SESSION, UUID_A, NULL, NOW + 60);
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

int
main(void)
{
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	test_round_trip();
	test_bad_fields();
	test_expiry();
	test_forged();
	test_signed_but_malformed();
	test_kind();
	test_scope();
	test_garbage();
	test_cache();
	test_id_hex();
	test_cookie();
	test_secret();
	rmdir(dir);
	return tap_done();
}
