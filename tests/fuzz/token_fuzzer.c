/*
 * libFuzzer target for the token and session-cookie checks.  Each input is
 * tried twice:
 * - as text, the way it arrives in ?token= or the session cookie: verified
 *   as a token and as a session with a fixed key (only the seeds minted
 *   with that key pass, and a text that passes must be exactly what
 *   minting its token gives), checked against a scope, and fed to the
 *   Set-Cookie builder;
 * - as the body of a token, signed here with the fixed key, so the parser
 *   of the fields behind the MAC is reached too.  Whatever it accepts must
 *   be well-formed and mint back to exactly the same text.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "virtconsoled.h"

#define FUZZ_NOW	1700000000
#define FUZZ_UUID	"6f1c2a9e-3b4d-4e5f-8a7b-1c2d3e4f5a6b"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static const uint8_t fuzz_key[TOKEN_KEY_LEN] =
    "virtconsoled-fuzz-key-0123456789";

static void
fuzz_check(const struct token *t, int kind)
{
	size_t	i, len;

	if (t->kind != kind || t->expires <= FUZZ_NOW ||
	    t->expires > FUZZ_NOW + TOKEN_MAX_LIFETIME)
		abort();
	len = strlen(t->alias);
	if (len == 0 || len > TOKEN_ALIAS_MAX ||
	    strspn(t->alias, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRST"
	    "UVWXYZ0123456789._-") != len)
		abort();
	if (t->all_guests) {
		if (t->uuid[0] != '\0')
			abort();
	} else {
		if (strlen(t->uuid) != 36)
			abort();
		for (i = 0; i < 36; i++) {
			if (i == 8 || i == 13 || i == 18 || i == 23) {
				if (t->uuid[i] != '-')
					abort();
			} else if (strchr("0123456789abcdef", t->uuid[i]) ==
			    NULL || t->uuid[i] == '\0')
				abort();
		}
		if (!token_allows(t, t->uuid, t->alias))
			abort();
	}
}

static void
fuzz_text(const char *text)
{
	struct token	 t;
	const char	*why;
	char		 out[1024];
	int		 kind;

	for (kind = 0; kind <= TOKEN_KIND_SESSION; kind++) {
		why = NULL;
		if (token_verify(fuzz_key, text, FUZZ_NOW, kind, &t, &why) ==
		    -1) {
			if (why == NULL)
				abort();
			continue;
		}
		/*
		 * Only a seed minted with the key gets here; a mutation that
		 * also did would be a second text for one token, or a forgery.
		 */
		fuzz_check(&t, kind);
		if (token_mint(fuzz_key, &t, out, sizeof out) != 0 ||
		    strcmp(out, text) != 0)
			abort();
	}

	memset(&t, 0, sizeof t);
	t.all_guests = 0;
	memcpy(t.uuid, FUZZ_UUID, sizeof FUZZ_UUID);
	memcpy(t.alias, "serial0", sizeof "serial0");
	(void)token_allows(&t, text, text);
	(void)token_allows(&t, FUZZ_UUID, text);

	if (token_cookie_header(out, sizeof out, "vcd_session", text, 60, 1,
	    NULL) == 0 || token_cookie_header(out, sizeof out, text, "v", 60,
	    0, text) == 0) {
		if (strncmp(out, "Set-Cookie: ", 12) != 0 ||
		    strpbrk(out, "\r\n") != NULL)
			abort();
	}
}

static void
fuzz_body(const uint8_t *data, size_t size)
{
	struct token	 t;
	const char	*why;
	uint8_t		 raw[256];
	unsigned int	 maclen = 0;
	char		 text[512], again[TOKEN_TEXT_MAX], *p;
	int		 n, kind;

	if (size > sizeof raw - 32)
		return;
	memcpy(raw, data, size);
	if (HMAC(EVP_sha256(), fuzz_key, TOKEN_KEY_LEN, raw, size, raw + size,
	    &maclen) == NULL)
		abort();
	n = EVP_EncodeBlock((unsigned char *)text, raw, (int)(size + maclen));
	while (n > 0 && text[n - 1] == '=')
		n--;
	text[n] = '\0';
	for (p = text; *p != '\0'; p++)
		*p = *p == '+' ? '-' : *p == '/' ? '_' : *p;

	for (kind = TOKEN_KIND_TOKEN; kind <= TOKEN_KIND_SESSION; kind++) {
		if (token_verify(fuzz_key, text, FUZZ_NOW, kind, &t, &why) != 0)
			continue;
		fuzz_check(&t, kind);
		/* One token, one text: minting it again gives the input. */
		if (token_mint(fuzz_key, &t, again, sizeof again) != 0 ||
		    strcmp(again, text) != 0)
			abort();
	}
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
	return 0;
}
