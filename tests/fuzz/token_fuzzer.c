/*
 * libFuzzer target for the token and session-cookie checks (format
 * version 2).  Each input is tried three ways:
 * - as text, the way it arrives in ?token= or the session cookie: verified
 *   as a token and as a session with a fixed key and audience (only the
 *   seeds minted with them pass, and a text that passes must be exactly
 *   what minting its token gives), checked against a scope, and fed to the
 *   Set-Cookie builder;
 * - as the body of a token, signed here with the fixed key, so the parser
 *   of the fields behind the MAC is reached too.  Whatever it accepts must
 *   be well-formed and mint back to exactly the same text;
 * - as claims (fuzz_claims() says how the bytes are read): whatever
 *   token_new() accepts token_mint() must accept, and whatever token_mint()
 *   accepts token_verify() must read back claim for claim.
 *
 * The seeds in tests/fuzz/corpus/token are written by this file built
 * without libFuzzer, from the top of the tree (the same bytes each time):
 *	cc -DFUZZ_WRITE_SEEDS -D_GNU_SOURCE -Iinclude -o /tmp/seeds
 *	    tests/fuzz/token_fuzzer.c src/token.c src/util.c src/lat.c src/log.c
 *	    $(pkg-config --cflags --libs libvirt libevent libevent_pthreads
 *	    libcrypto)
 *	/tmp/seeds tests/fuzz/corpus/token
 * (one command line, then the run); cookie, empty, padding, std-b64,
 * uuid and ws are hand-written non-tokens.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "virtconsoled.h"

#define FUZZ_NOW	1700000000
#define FUZZ_SKEW	300	/* token.c's TOKEN_IAT_SKEW */
#define FUZZ_UUID	"6f1c2a9e-3b4d-4e5f-8a7b-1c2d3e4f5a6b"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static const uint8_t fuzz_key[TOKEN_KEY_LEN] =
    "virtconsoled-fuzz-key-0123456789";
static const uint8_t fuzz_aud[TOKEN_AUD_LEN] = "vcd-fuzz-aud-01";

static const char *fuzz_whys[] = { "malformed", "bad signature",
    "version 1 (no longer accepted)", "wrong kind", "wrong audience",
    "expired", "expiry too far ahead", "issued in the future" };

static int
fuzz_same(const struct token *a, const struct token *b)
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

/* Each byte of s is a letter, a digit or one of extra; 1..max bytes. */
static int
fuzz_chars_ok(const char *s, size_t max, const char *extra)
{
	size_t	i, len = strlen(s);

	if (len == 0 || len > max)
		return 0;
	for (i = 0; i < len; i++) {
		if (strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		    "0123456789", s[i]) == NULL && strchr(extra, s[i]) == NULL)
			return 0;
	}
	return 1;
}

/* A token verified at now, of kind: every claim as documented. */
static void
fuzz_check(const struct token *t, int kind, int64_t now)
{
	size_t	i;

	if (t->kind != kind || t->expires <= now || t->iat < 0 ||
	    t->iat > t->expires)
		abort();
	if (now < INT64_MAX - TOKEN_MAX_LIFETIME &&
	    (t->expires > now + TOKEN_MAX_LIFETIME || t->iat > now + FUZZ_SKEW))
		abort();
	if (memcmp(t->aud, fuzz_aud, TOKEN_AUD_LEN) != 0)
		abort();
	if (!fuzz_chars_ok(t->alias, TOKEN_ALIAS_MAX, "._-") ||
	    !fuzz_chars_ok(t->hv, TOKEN_HV_MAX, "_-"))
		abort();
	if (strlen(t->label) > TOKEN_LABEL_MAX || !token_label_ok(t->label))
		abort();
	for (i = 0; t->label[i] != '\0'; i++) {
		if ((unsigned char)t->label[i] < 0x20 ||
		    (unsigned char)t->label[i] == 0x7f)
			abort();
	}
	if ((t->role != TOKEN_ROLE_WRITER && t->role != TOKEN_ROLE_VIEWER) ||
	    (t->history != 0 && t->history != 1) ||
	    (t->checked != 0 && t->checked != 1) ||
	    (t->checked && kind != TOKEN_KIND_SESSION))
		abort();
	if (t->all_guests) {
		if (t->all_guests != 1 || t->uuid[0] != '\0')
			abort();
	} else {
		if (strcmp(t->hv, TOKEN_ANY) == 0 || strlen(t->uuid) != 36)
			abort();
		for (i = 0; i < 36; i++) {
			if (i == 8 || i == 13 || i == 18 || i == 23) {
				if (t->uuid[i] != '-')
					abort();
			} else if (strchr("0123456789abcdef", t->uuid[i]) ==
			    NULL || t->uuid[i] == '\0')
				abort();
		}
		/* A verified token opens its own guest on its hypervisor. */
		if (!token_allows(t, t->hv, t->uuid, t->alias))
			abort();
	}
}

static void
fuzz_text(const char *text)
{
	struct token	 t;
	const char	*why;
	char		 out[1024];
	size_t		 i;
	int		 kind;

	for (kind = 0; kind <= TOKEN_KIND_SESSION; kind++) {
		why = NULL;
		if (token_verify(fuzz_key, fuzz_aud, text, FUZZ_NOW, kind, &t,
		    &why) == -1) {
			if (why == NULL)
				abort();
			for (i = 0; i < sizeof fuzz_whys / sizeof *fuzz_whys;
			    i++) {
				if (strcmp(why, fuzz_whys[i]) == 0)
					break;
			}
			if (i == sizeof fuzz_whys / sizeof *fuzz_whys)
				abort();
			continue;
		}
		/*
		 * Only a seed minted with the key gets here; a mutation that
		 * also did would be a second text for one token, or a forgery.
		 */
		fuzz_check(&t, kind, FUZZ_NOW);
		if (token_mint(fuzz_key, &t, out, sizeof out) != 0 ||
		    strcmp(out, text) != 0)
			abort();
	}

	memset(&t, 0, sizeof t);
	t.all_guests = 0;
	memcpy(t.uuid, FUZZ_UUID, sizeof FUZZ_UUID);
	memcpy(t.alias, "serial0", sizeof "serial0");
	memcpy(t.hv, "default", sizeof "default");
	(void)token_allows(&t, text, text, text);
	(void)token_allows(&t, "default", FUZZ_UUID, text);
	(void)token_label_ok(text);

	if (token_cookie_header(out, sizeof out, "vcd_session", text, 60, 1,
	    NULL) == 0 || token_cookie_header(out, sizeof out, text, "v", 60,
	    0, text) == 0) {
		if (strncmp(out, "Set-Cookie: ", 12) != 0 ||
		    strpbrk(out, "\r\n") != NULL)
			abort();
	}
}

/* Sign body with the key: the text token_verify() would get. */
static void
fuzz_sign(const uint8_t *body, size_t size, char *text)
{
	uint8_t		 raw[512];
	unsigned int	 maclen = 0;
	char		*p;
	int		 n;

	memcpy(raw, body, size);
	if (HMAC(EVP_sha256(), fuzz_key, TOKEN_KEY_LEN, raw, size, raw + size,
	    &maclen) == NULL)
		abort();
	n = EVP_EncodeBlock((unsigned char *)text, raw, (int)(size + maclen));
	while (n > 0 && text[n - 1] == '=')
		n--;
	text[n] = '\0';
	for (p = text; *p != '\0'; p++)
		*p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
}

static void
fuzz_body(const uint8_t *data, size_t size)
{
	struct token	 t;
	const char	*why;
	char		 text[1024], again[TOKEN_TEXT_MAX];
	int		 kind;

	if (size > 512 - 32)
		return;
	fuzz_sign(data, size, text);
	for (kind = TOKEN_KIND_TOKEN; kind <= TOKEN_KIND_SESSION; kind++) {
		if (token_verify(fuzz_key, fuzz_aud, text, FUZZ_NOW, kind, &t,
		    &why) != 0)
			continue;
		fuzz_check(&t, kind, FUZZ_NOW);
		/* One token, one text: minting it again gives the input. */
		if (token_mint(fuzz_key, &t, again, sizeof again) != 0 ||
		    strcmp(again, text) != 0)
			abort();
	}
}

static int64_t
fuzz_get64(const uint8_t *p)
{
	uint64_t	u = 0;
	int		i;

	for (i = 0; i < 8; i++)
		u = u << 8 | p[i];
	return (int64_t)u;
}

/*
 * The input as claims: byte 0 the kind (mod 4), byte 1 role, history,
 * checked and all_guests (2 bits each, so 2 and 3 are tried too), bytes
 * 2..9 iat and 10..17 the expiry (big-endian), then hv, UUID, alias and
 * label separated by NULs (each cut to its field).
 */
static void
fuzz_claims(const uint8_t *data, size_t size)
{
	struct token	 t, v;
	const char	*why, *s[4] = { "", "", "", "" };
	char		 buf[512], text[TOKEN_TEXT_MAX], again[TOKEN_TEXT_MAX];
	size_t		 i, n = 0;
	int		 minted;

	if (size < 18 || size - 18 >= sizeof buf)
		return;
	memcpy(buf, data + 18, size - 18);
	buf[size - 18] = '\0';
	s[n++] = buf;
	for (i = 0; i < size - 18 && n < 4; i++) {
		if (buf[i] == '\0')
			s[n++] = buf + i + 1;
	}

	/* token_new() accepts only what token_mint() does. */
	if (token_new(&t, data[0] % 4, fuzz_aud, s[0][0] == '\0' ? NULL : s[0],
	    s[1][0] == '\0' ? NULL : s[1], s[2][0] == '\0' ? NULL : s[2],
	    fuzz_get64(data + 2), fuzz_get64(data + 10)) == 0 &&
	    token_mint(fuzz_key, &t, text, sizeof text) != 0)
		abort();

	memset(&t, 0, sizeof t);
	t.kind = data[0] % 4;
	memset(t.id, 0x5a, sizeof t.id);
	memcpy(t.aud, fuzz_aud, TOKEN_AUD_LEN);
	t.role = data[1] & 3;
	t.history = (data[1] >> 2) & 3;
	t.checked = (data[1] >> 4) & 3;
	t.all_guests = (data[1] >> 6) & 3;
	t.iat = fuzz_get64(data + 2);
	t.expires = fuzz_get64(data + 10);
	snprintf(t.hv, sizeof t.hv, "%s", s[0]);
	snprintf(t.uuid, sizeof t.uuid, "%s", s[1]);
	snprintf(t.alias, sizeof t.alias, "%s", s[2]);
	snprintf(t.label, sizeof t.label, "%s", s[3]);
	minted = token_mint(fuzz_key, &t, text, sizeof text) == 0;
	if (!minted)
		return;
	/* Just before it expires, it must verify, whatever the times. */
	if (token_verify(fuzz_key, fuzz_aud, text, (time_t)(t.expires - 1),
	    t.kind, &v, &why) != 0 || !fuzz_same(&t, &v))
		abort();
	fuzz_check(&v, t.kind, t.expires - 1);
	if (token_mint(fuzz_key, &v, again, sizeof again) != 0 ||
	    strcmp(again, text) != 0)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	*text;

	text = malloc(size + 1);
	if (text == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	fuzz_text(text);
	free(text);
	fuzz_body(data, size);
	fuzz_claims(data, size);
	return 0;
}

#ifdef FUZZ_WRITE_SEEDS
/*
 * The seed corpus: texts minted with the key (valid, and each refusal
 * after the MAC), version-1 texts, bodies for fuzz_body() and claims for
 * fuzz_claims(), and text that is no token at all.  Ids are fixed so the
 * seeds are the same at each run.
 */
#define FUZZ_LABEL_64 \
    "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9" \
    "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9" \
    "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9" \
    "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
#define FUZZ_NAME_32	"abcdefghijklmnopqrstuvwxyz012345"

static const char	*seed_dir;
static int		 seed_n;

static void
seed_write(const char *name, const void *p, size_t len)
{
	char	 path[1024];
	FILE	*f;

	snprintf(path, sizeof path, "%s/%s", seed_dir, name);
	if ((f = fopen(path, "wb")) == NULL || fwrite(p, 1, len, f) != len ||
	    fclose(f) != 0) {
		perror(path);
		exit(1);
	}
}

/* A token with a fixed id, or exit. */
static void
seed_new(struct token *t, int kind, const uint8_t *aud, const char *hv,
    const char *uuid, const char *alias, int64_t iat, int64_t expires)
{
	if (token_new(t, kind, aud, hv, uuid, alias, iat, expires) == -1) {
		fprintf(stderr, "token_new failed\n");
		exit(1);
	}
	memset(t->id, 0x10 + seed_n++, sizeof t->id);
}

/* Mint t; write the text as name, and its body as body-NAME if asked. */
static void
seed_mint(const char *name, const struct token *t, const char *body)
{
	uint8_t	raw[512];
	char	text[TOKEN_TEXT_MAX], std[TOKEN_TEXT_MAX + 4], *p;
	size_t	len;
	int	n;

	if (token_mint(fuzz_key, t, text, sizeof text) == -1) {
		fprintf(stderr, "%s: token_mint failed\n", name);
		exit(1);
	}
	seed_write(name, text, strlen(text));
	if (body == NULL)
		return;
	snprintf(std, sizeof std, "%s", text);
	for (p = std; *p != '\0'; p++)
		*p = *p == '-' ? '+' : *p == '_' ? '/' : *p;
	len = strlen(std);
	while (len % 4 != 0)
		std[len++] = '=';
	std[len] = '\0';
	n = EVP_DecodeBlock(raw, (unsigned char *)std, (int)len);
	n -= (int)(len - strlen(text));
	seed_write(body, raw, (size_t)n - 32);
}

/* A version-1 body (the old layout): guest scope, the given alias. */
static size_t
seed_v1(uint8_t *raw, int kind, const char *alias)
{
	size_t	i;

	memset(raw, 0, 64);
	raw[0] = 1;
	raw[1] = (uint8_t)kind;
	memset(raw + 2, 0x77, 16);
	for (i = 0; i < 16; i++)
		raw[19 + i] = (uint8_t)(0x60 + i);
	for (i = 0; i < 8; i++)
		raw[35 + i] = (uint8_t)((uint64_t)(FUZZ_NOW + 60) >>
		    (56 - 8 * i));
	raw[43] = (uint8_t)strlen(alias);
	memcpy(raw + 44, alias, strlen(alias));
	return 44 + strlen(alias);
}

/* Claims for fuzz_claims(): kind, flags, iat, expiry, then strings. */
static void
seed_claims(const char *name, int kind, int flags, int64_t iat,
    int64_t expires, const char *strings, size_t slen)
{
	uint8_t	buf[256];
	int	i;

	buf[0] = (uint8_t)kind;
	buf[1] = (uint8_t)flags;
	for (i = 0; i < 8; i++) {
		buf[2 + i] = (uint8_t)((uint64_t)iat >> (56 - 8 * i));
		buf[10 + i] = (uint8_t)((uint64_t)expires >> (56 - 8 * i));
	}
	memcpy(buf + 18, strings, slen);
	seed_write(name, buf, 18 + slen);
}

int
main(int argc, char **argv)
{
	static const uint8_t	other_aud[TOKEN_AUD_LEN] = "another-aud-001";
	static const char	guest[] = "default\0" FUZZ_UUID "\0serial0\0"
	    "alice";
	static const char	all[] = "any\0\0any\0ops \xe2\x98\x83";
	struct token		t;
	uint8_t			raw[512];
	char			text[1024], fill[TOKEN_TEXT_MAX];
	size_t			len;

	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	seed_dir = argv[1];

	seed_new(&t, TOKEN_KIND_TOKEN, fuzz_aud, NULL, FUZZ_UUID, "serial0",
	    FUZZ_NOW, FUZZ_NOW + 60);
	seed_mint("token-guest", &t, "body-guest");
	seed_new(&t, TOKEN_KIND_TOKEN, fuzz_aud, NULL, NULL, NULL, FUZZ_NOW,
	    FUZZ_NOW + 60);
	seed_mint("token-all", &t, "body-all");
	seed_new(&t, TOKEN_KIND_TOKEN, fuzz_aud, NULL, FUZZ_UUID, NULL,
	    FUZZ_NOW, FUZZ_NOW + 3600);
	t.role = TOKEN_ROLE_VIEWER;
	t.history = 0;
	snprintf(t.label, sizeof t.label, "alice@example.org");
	seed_mint("token-viewer", &t, "body-viewer");
	seed_new(&t, TOKEN_KIND_TOKEN, fuzz_aud, "kvm-2", NULL, "console1",
	    FUZZ_NOW - 10, FUZZ_NOW + 60);
	t.role = TOKEN_ROLE_VIEWER;
	snprintf(t.label, sizeof t.label, "J\xc3\xbcrgen \xe2\x98\x83 (ops)");
	seed_mint("token-label-utf8", &t, "body-label-utf8");
	seed_new(&t, TOKEN_KIND_TOKEN, fuzz_aud, FUZZ_NAME_32, FUZZ_UUID,
	    FUZZ_NAME_32, FUZZ_NOW, FUZZ_NOW + 60);
	snprintf(t.label, sizeof t.label, "%s", FUZZ_LABEL_64);
	seed_mint("token-longest", &t, "body-longest");
	seed_new(&t, TOKEN_KIND_TOKEN, fuzz_aud, "a", FUZZ_UUID, "x",
	    FUZZ_NOW, FUZZ_NOW + 1);
	seed_mint("token-shortest", &t, NULL);
	seed_new(&t, TOKEN_KIND_TOKEN, fuzz_aud, NULL, FUZZ_UUID, "serial0",
	    FUZZ_NOW - 120, FUZZ_NOW - 60);
	seed_mint("token-expired", &t, NULL);
	seed_new(&t, TOKEN_KIND_TOKEN, fuzz_aud, NULL, FUZZ_UUID, NULL,
	    FUZZ_NOW + 301, FUZZ_NOW + 600);
	seed_mint("token-future", &t, "body-future");
	seed_new(&t, TOKEN_KIND_TOKEN, fuzz_aud, NULL, NULL, NULL, FUZZ_NOW,
	    FUZZ_NOW + TOKEN_MAX_LIFETIME + 1);
	seed_mint("token-far", &t, "body-far");
	seed_new(&t, TOKEN_KIND_TOKEN, other_aud, NULL, FUZZ_UUID, NULL,
	    FUZZ_NOW, FUZZ_NOW + 60);
	seed_mint("token-other-audience", &t, NULL);
	seed_new(&t, TOKEN_KIND_SESSION, fuzz_aud, NULL, FUZZ_UUID, NULL,
	    FUZZ_NOW - 3600, FUZZ_NOW + 3600);
	t.checked = 1;
	seed_mint("session-guest", &t, "body-session");
	seed_new(&t, TOKEN_KIND_SESSION, fuzz_aud, NULL, NULL, "serial0",
	    FUZZ_NOW, FUZZ_NOW + 28800);
	t.role = TOKEN_ROLE_VIEWER;
	snprintf(t.label, sizeof t.label, "bob");
	seed_mint("session-all", &t, "body-session-all");

	len = seed_v1(raw, TOKEN_KIND_TOKEN, "serial0");
	seed_write("body-v1-guest", raw, len);
	fuzz_sign(raw, len, text);
	seed_write("v1-token-guest", text, strlen(text));
	len = seed_v1(raw, TOKEN_KIND_SESSION, "any");
	fuzz_sign(raw, len, text);
	seed_write("v1-session-guest", text, strlen(text));

	seed_claims("claims-guest", TOKEN_KIND_TOKEN, 0x04, FUZZ_NOW,
	    FUZZ_NOW + 60, guest, sizeof guest - 1);
	seed_claims("claims-all-session", TOKEN_KIND_SESSION, 0x51,
	    FUZZ_NOW, FUZZ_NOW + 60, all, sizeof all - 1);
	seed_claims("claims-role-2", TOKEN_KIND_TOKEN, 0x02, 0, 1, guest,
	    sizeof guest - 1);
	seed_claims("claims-far-times", TOKEN_KIND_TOKEN, 0x45, 0, INT64_MAX,
	    all, sizeof all - 1);

	memset(fill, 'A', TOKEN_TEXT_MAX - 1);
	seed_write("zeros-307", fill, TOKEN_TEXT_MAX - 1);
	memset(fill, '_', TOKEN_TEXT_MAX - 3);
	seed_write("len-4n1", fill, TOKEN_TEXT_MAX - 3);
	return 0;
}
#endif
