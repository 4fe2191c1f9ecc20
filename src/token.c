/*
 * Access tokens, browser-session cookies, the replay cache and the secret
 * that signs them.  Pure: no sockets, no event loop, no logging; the
 * caller logs the reason a check gives and the token's id, never its text.
 *
 * A token (kind TOKEN_KIND_TOKEN, printed by `virtconsolectl token`) and a
 * session cookie (kind TOKEN_KIND_SESSION, minted by the daemon when a
 * token is consumed at /?token=) share one binary layout, big-endian:
 *
 *	off  len
 *	  0    1	version (1)
 *	  1    1	kind: 1 token, 2 session; inside the MAC, so a cookie
 *			is never accepted as a token nor the reverse
 *	  2   16	id: random, loggable, the replay cache's key
 *	 18    1	scope: 0 one guest, 1 all guests
 *	 19   16	the guest's UUID, raw (zero for all guests); the UUID,
 *			not the name, so a re-created guest with the same
 *			name is not opened by an old token
 *	 35    8	expiry, unix seconds, signed
 *	 43    1	alias length L, 1..32
 *	 44    L	console alias, [A-Za-z0-9._-], or "any"
 *	44+L  32	HMAC-SHA256 of everything before it
 *
 * encoded as base64url without padding: 77 to 108 bytes, 103 to 144
 * characters.  The MAC is kept whole (32 bytes): the 22 characters a
 * truncation would save do not matter in a URL, and nothing has to be
 * argued about forgery odds.
 *
 * token_verify() checks only the length and the encoding before the MAC
 * (compared with CRYPTO_memcmp); every other field is read only from bytes
 * the MAC vouched for.  The decoder is strict: the base64url alphabet only,
 * no padding, no whitespace, and unused trailing bits must be zero, so one
 * token has exactly one text.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "virtconsoled.h"

#define TOKEN_VERSION		1
#define TOKEN_SCOPE_GUEST	0
#define TOKEN_SCOPE_ALL		1

#define TOKEN_OFF_VERSION	0
#define TOKEN_OFF_KIND		1
#define TOKEN_OFF_ID		2
#define TOKEN_OFF_SCOPE		18
#define TOKEN_OFF_UUID		19
#define TOKEN_OFF_EXPIRES	35
#define TOKEN_OFF_ALEN		43
#define TOKEN_OFF_ALIAS		44
#define TOKEN_MAC_LEN		32
#define TOKEN_RAW_MIN		(TOKEN_OFF_ALIAS + 1 + TOKEN_MAC_LEN)
#define TOKEN_RAW_MAX		(TOKEN_OFF_ALIAS + TOKEN_ALIAS_MAX + \
				    TOKEN_MAC_LEN)

/* Characters of n bytes in base64url without padding. */
#define TOKEN_B64_LEN(n)	(((n) * 4 + 2) / 3)
_Static_assert(TOKEN_B64_LEN(TOKEN_RAW_MAX) + 1 == TOKEN_TEXT_MAX,
    "TOKEN_TEXT_MAX must fit the longest token");

/*
 * The replay cache: open addressing with linear probing, keyed by the id.
 * Ids are random and only verified tokens reach the cache, so the id's
 * bytes are a good hash already.  At most half the slots are used.
 */
#define TOKEN_CACHE_MIN_SLOTS	64
struct token_cache_slot {
	uint8_t		 id[TOKEN_ID_LEN];
	int64_t		 expires;
	int		 used;
};

static int	token_alias_ok(const char *, size_t);
static int	token_uuid_parse(const char *, uint8_t *);
static void	token_uuid_format(const uint8_t *, char *);

/* Secret file. */

static int
token_secret_read(int fd, const char *path, uint8_t *key, char *err,
    size_t errlen)
{
	struct stat	 st;
	uint8_t		 buf[TOKEN_KEY_LEN + 1];
	size_t		 got = 0;
	ssize_t		 n;

	if (fstat(fd, &st) == -1) {
		snprintf(err, errlen, "token secret %s: %s", path,
		    strerror(errno));
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "token secret %s: not a regular file",
		    path);
		return -1;
	}
	if ((st.st_mode & 077) != 0) {
		snprintf(err, errlen, "token secret %s: mode %04o gives "
		    "group or others access; chmod 600 it", path,
		    (unsigned int)(st.st_mode & 07777));
		return -1;
	}
	if (st.st_uid != geteuid() && st.st_uid != 0) {
		snprintf(err, errlen, "token secret %s: owned by uid %lu, "
		    "neither root nor us", path, (unsigned long)st.st_uid);
		return -1;
	}
	if (st.st_size != TOKEN_KEY_LEN) {
		snprintf(err, errlen, "token secret %s: must hold exactly %d "
		    "bytes, not %lld", path, TOKEN_KEY_LEN,
		    (long long)st.st_size);
		return -1;
	}
	while (got < sizeof buf) {
		n = read(fd, buf + got, sizeof buf - got);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			snprintf(err, errlen, "token secret %s: %s", path,
			    strerror(errno));
			explicit_bzero(buf, sizeof buf);
			return -1;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	if (got != TOKEN_KEY_LEN) {
		snprintf(err, errlen, "token secret %s: must hold exactly %d "
		    "bytes, read %zu", path, TOKEN_KEY_LEN, got);
		explicit_bzero(buf, sizeof buf);
		return -1;
	}
	memcpy(key, buf, TOKEN_KEY_LEN);
	explicit_bzero(buf, sizeof buf);
	return 0;
}

static int
token_write_all(int fd, const uint8_t *p, size_t len)
{
	ssize_t	n;

	while (len > 0) {
		if ((n = write(fd, p, len)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * Create the secret: 32 random bytes written to a temporary file (O_EXCL,
 * O_NOFOLLOW, mode 0600) that is then linked into place.  link(), unlike
 * rename(), never replaces a file: when two processes (the daemon and
 * virtconsolectl) create it at once, the loser reads the winner's secret
 * instead of signing with a key that is no longer on disk.  Returns 0 with
 * key set, 1 if another process created the file first, or -1.
 */
static int
token_secret_create(const char *path, uint8_t *key, char *err,
    size_t errlen)
{
	uint8_t	 rnd[6];
	char	*tmp = NULL, *dir, *copy;
	int	 fd = -1, tries, dfd, ret = -1;

	copy = xstrdup(path);
	dir = dirname(copy);
	if (mkdir(dir, 0700) == -1 && errno != EEXIST) {
		snprintf(err, errlen, "token secret %s: cannot create its "
		    "directory: %s", path, strerror(errno));
		free(copy);
		return -1;
	}
	for (tries = 0; tries < 10 && fd == -1; tries++) {
		free(tmp);
		tmp = NULL;
		if (RAND_bytes(rnd, sizeof rnd) != 1)
			break;
		xasprintf(&tmp, "%s.%02x%02x%02x%02x%02x%02x", path, rnd[0],
		    rnd[1], rnd[2], rnd[3], rnd[4], rnd[5]);
		fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
		    O_CLOEXEC | O_NOCTTY, 0600);
		if (fd == -1 && errno != EEXIST)
			break;
	}
	if (fd == -1) {
		snprintf(err, errlen, "token secret %s: cannot create it: %s",
		    path, tmp == NULL ? "no random bytes" : strerror(errno));
		goto out;
	}
	if (RAND_bytes(key, TOKEN_KEY_LEN) != 1) {
		snprintf(err, errlen, "token secret %s: cannot get random "
		    "bytes", path);
		goto fail;
	}
	if (fchmod(fd, 0600) == -1 ||
	    token_write_all(fd, key, TOKEN_KEY_LEN) == -1 ||
	    fsync(fd) == -1) {
		snprintf(err, errlen, "token secret %s: cannot write it: %s",
		    path, strerror(errno));
		goto fail;
	}
	close(fd);
	fd = -1;
	if (link(tmp, path) == -1) {
		if (errno == EEXIST)
			ret = 1;
		else
			snprintf(err, errlen, "token secret %s: cannot create "
			    "it: %s", path, strerror(errno));
		goto fail;
	}
	unlink(tmp);
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) != -1) {
		fsync(dfd);
		close(dfd);
	}
	ret = 0;
	goto out;

fail:
	if (fd != -1)
		close(fd);
	unlink(tmp);
	if (ret != 0)
		explicit_bzero(key, TOKEN_KEY_LEN);
out:
	free(tmp);
	free(copy);
	return ret;
}

/*
 * Load the 32-byte secret from path; with create, make it first if it is
 * missing.  The file holds exactly 32 raw bytes (no encoding, no newline).
 * Refused: a symbolic link (as the last component), anything but a regular
 * file, any permission bit for group or others, an owner other than root
 * or the effective user (who could rewrite the key), another size.
 * Returns 0, or -1 with a one-line message naming the path in err.
 */
int
token_secret_load(const char *path, uint8_t key[TOKEN_KEY_LEN], int create,
    char *err, size_t errlen)
{
	int	fd, r, tries;

	for (tries = 0; tries < 2; tries++) {
		fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY |
		    O_NONBLOCK);
		if (fd != -1) {
			r = token_secret_read(fd, path, key, err, errlen);
			close(fd);
			return r;
		}
		if (errno != ENOENT || !create)
			break;
		if ((r = token_secret_create(path, key, err, errlen)) != 1)
			return r;
		/* Another process won the race: read its secret. */
	}
	snprintf(err, errlen, "token secret %s: %s", path, errno == ELOOP ?
	    "is a symbolic link" : strerror(errno));
	return -1;
}

/* base64url, no padding. */

static const char token_b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static int
token_b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

/* Encode len bytes into out, which has room for TOKEN_B64_LEN(len) + 1. */
static void
token_b64_encode(const uint8_t *in, size_t len, char *out)
{
	uint32_t	v;
	size_t		i, o = 0;

	for (i = 0; i + 3 <= len; i += 3) {
		v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 |
		    in[i + 2];
		out[o++] = token_b64[(v >> 18) & 63];
		out[o++] = token_b64[(v >> 12) & 63];
		out[o++] = token_b64[(v >> 6) & 63];
		out[o++] = token_b64[v & 63];
	}
	if (len - i == 1) {
		v = (uint32_t)in[i] << 16;
		out[o++] = token_b64[(v >> 18) & 63];
		out[o++] = token_b64[(v >> 12) & 63];
	} else if (len - i == 2) {
		v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
		out[o++] = token_b64[(v >> 18) & 63];
		out[o++] = token_b64[(v >> 12) & 63];
		out[o++] = token_b64[(v >> 6) & 63];
	}
	out[o] = '\0';
}

/*
 * Decode len characters into out (outlen bytes).  Returns the byte count,
 * or -1 for a character outside the alphabet, an impossible length, set
 * unused trailing bits, or too little room.
 */
static ssize_t
token_b64_decode(const char *in, size_t len, uint8_t *out, size_t outlen)
{
	uint32_t	acc = 0;
	size_t		i, o = 0, need;
	int		bits = 0, v;

	if (len % 4 == 1)
		return -1;
	need = len / 4 * 3 + (len % 4 == 0 ? 0 : len % 4 - 1);
	if (need > outlen)
		return -1;
	for (i = 0; i < len; i++) {
		if ((v = token_b64_value((unsigned char)in[i])) == -1)
			return -1;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (uint8_t)(acc >> bits);
			acc &= (1U << bits) - 1;
		}
	}
	if (acc != 0)
		return -1;
	return (ssize_t)o;
}

/* Fields. */

/* An alias: 1..32 bytes of [A-Za-z0-9._-]. */
static int
token_alias_ok(const char *s, size_t len)
{
	size_t	i;

	if (len == 0 || len > TOKEN_ALIAS_MAX)
		return 0;
	for (i = 0; i < len; i++) {
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= 'A' && s[i] <= 'Z') ||
		    (s[i] >= '0' && s[i] <= '9') ||
		    s[i] == '.' || s[i] == '_' || s[i] == '-'))
			return 0;
	}
	return 1;
}

/* A UUID in its 36-character form, either case, to 16 bytes. */
static int
token_uuid_parse(const char *s, uint8_t *out)
{
	size_t	i, o = 0;
	int	hi, lo;

	if (s == NULL || strnlen(s, 37) != 36)
		return -1;
	for (i = 0; i < 36;) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i++] != '-')
				return -1;
			continue;
		}
		if ((hi = OPENSSL_hexchar2int((unsigned char)s[i])) == -1 ||
		    (lo = OPENSSL_hexchar2int((unsigned char)s[i + 1])) == -1)
			return -1;
		out[o++] = (uint8_t)(hi << 4 | lo);
		i += 2;
	}
	return 0;
}

static void
token_uuid_format(const uint8_t *u, char *out)
{
	snprintf(out, GUEST_UUID_LEN, "%02x%02x%02x%02x-%02x%02x-%02x%02x-"
	    "%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1], u[2], u[3], u[4],
	    u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14],
	    u[15]);
}

static int
token_hmac(const uint8_t *key, const uint8_t *data, size_t len,
    uint8_t *mac)
{
	unsigned int	maclen = 0;

	if (HMAC(EVP_sha256(), key, TOKEN_KEY_LEN, data, len, mac,
	    &maclen) == NULL || maclen != TOKEN_MAC_LEN)
		return -1;
	return 0;
}

/*
 * Fill in a new token or session: a fresh random id, the scope (uuid NULL
 * for all guests, alias NULL for any console) and the expiry.  Returns 0,
 * or -1 for a malformed UUID or alias, an unknown kind, or no randomness.
 */
int
token_new(struct token *t, int kind, const char *uuid, const char *alias,
    int64_t expires)
{
	uint8_t	u[16];

	memset(t, 0, sizeof *t);
	if (kind != TOKEN_KIND_TOKEN && kind != TOKEN_KIND_SESSION)
		return -1;
	if (alias == NULL)
		alias = TOKEN_ANY;
	if (!token_alias_ok(alias, strlen(alias)))
		return -1;
	if (uuid == NULL)
		t->all_guests = 1;
	else {
		if (token_uuid_parse(uuid, u) == -1)
			return -1;
		token_uuid_format(u, t->uuid);
	}
	if (RAND_bytes(t->id, sizeof t->id) != 1) {
		memset(t, 0, sizeof *t);
		return -1;
	}
	t->kind = kind;
	snprintf(t->alias, sizeof t->alias, "%s", alias);
	t->expires = expires;
	return 0;
}

/*
 * Sign and encode t into out.  Returns 0, or -1 if a field is invalid
 * (kind, UUID, alias, expiry not positive) or out is shorter than the
 * text and its NUL (TOKEN_TEXT_MAX always suffices).
 */
int
token_mint(const uint8_t key[TOKEN_KEY_LEN], const struct token *t,
    char *out, size_t outlen)
{
	uint8_t		raw[TOKEN_RAW_MAX];
	uint64_t	e;
	size_t		alen, len;
	int		i;

	if (t->kind != TOKEN_KIND_TOKEN && t->kind != TOKEN_KIND_SESSION)
		return -1;
	alen = strnlen(t->alias, sizeof t->alias);
	if (!token_alias_ok(t->alias, alen) || t->expires <= 0)
		return -1;
	memset(raw, 0, sizeof raw);
	raw[TOKEN_OFF_VERSION] = TOKEN_VERSION;
	raw[TOKEN_OFF_KIND] = (uint8_t)t->kind;
	memcpy(raw + TOKEN_OFF_ID, t->id, TOKEN_ID_LEN);
	if (t->all_guests)
		raw[TOKEN_OFF_SCOPE] = TOKEN_SCOPE_ALL;
	else {
		raw[TOKEN_OFF_SCOPE] = TOKEN_SCOPE_GUEST;
		if (token_uuid_parse(t->uuid, raw + TOKEN_OFF_UUID) == -1)
			return -1;
	}
	e = (uint64_t)t->expires;
	for (i = 0; i < 8; i++)
		raw[TOKEN_OFF_EXPIRES + i] = (uint8_t)(e >> (56 - 8 * i));
	raw[TOKEN_OFF_ALEN] = (uint8_t)alen;
	memcpy(raw + TOKEN_OFF_ALIAS, t->alias, alen);
	len = TOKEN_OFF_ALIAS + alen;
	if (token_hmac(key, raw, len, raw + len) == -1)
		return -1;
	len += TOKEN_MAC_LEN;
	if (outlen < TOKEN_B64_LEN(len) + 1)
		return -1;
	token_b64_encode(raw, len, out);
	return 0;
}

static int
token_fail(const char **why, const char *reason)
{
	if (why != NULL)
		*why = reason;
	return -1;
}

/*
 * Check text as a token of the given kind at time now.  Returns 0 with
 * out filled in, or -1 with out zeroed and *why one of "malformed", "bad
 * signature", "wrong kind", "expired" or "expiry too far ahead" (more
 * than TOKEN_MAX_LIFETIME away: it would hold a replay-cache slot for
 * ever).  A token is valid while now < expires.
 */
int
token_verify(const uint8_t key[TOKEN_KEY_LEN], const char *text, time_t now,
    int kind, struct token *out, const char **why)
{
	uint8_t		raw[TOKEN_RAW_MAX], mac[TOKEN_MAC_LEN];
	struct token	t;
	uint64_t	e = 0;
	size_t		tlen, body, alen;
	ssize_t		n;
	int		i, r;

	memset(out, 0, sizeof *out);
	if (why != NULL)
		*why = NULL;
	if (text == NULL)
		return token_fail(why, "malformed");
	tlen = strnlen(text, TOKEN_B64_LEN(TOKEN_RAW_MAX) + 1);
	if (tlen < TOKEN_B64_LEN(TOKEN_RAW_MIN) ||
	    tlen > TOKEN_B64_LEN(TOKEN_RAW_MAX))
		return token_fail(why, "malformed");
	n = token_b64_decode(text, tlen, raw, sizeof raw);
	if (n < TOKEN_RAW_MIN || n > TOKEN_RAW_MAX)
		return token_fail(why, "malformed");
	body = (size_t)n - TOKEN_MAC_LEN;

	/* The MAC first, in constant time; nothing else is trusted before. */
	r = token_hmac(key, raw, body, mac);
	if (r == -1 || CRYPTO_memcmp(mac, raw + body, TOKEN_MAC_LEN) != 0) {
		explicit_bzero(mac, sizeof mac);
		return token_fail(why, "bad signature");
	}
	explicit_bzero(mac, sizeof mac);

	memset(&t, 0, sizeof t);
	if (raw[TOKEN_OFF_VERSION] != TOKEN_VERSION)
		return token_fail(why, "malformed");
	if (raw[TOKEN_OFF_KIND] != TOKEN_KIND_TOKEN &&
	    raw[TOKEN_OFF_KIND] != TOKEN_KIND_SESSION)
		return token_fail(why, "malformed");
	if (raw[TOKEN_OFF_KIND] != kind)
		return token_fail(why, "wrong kind");
	t.kind = kind;
	memcpy(t.id, raw + TOKEN_OFF_ID, TOKEN_ID_LEN);
	switch (raw[TOKEN_OFF_SCOPE]) {
	case TOKEN_SCOPE_GUEST:
		token_uuid_format(raw + TOKEN_OFF_UUID, t.uuid);
		break;
	case TOKEN_SCOPE_ALL:
		for (i = 0; i < 16; i++) {
			if (raw[TOKEN_OFF_UUID + i] != 0)
				return token_fail(why, "malformed");
		}
		t.all_guests = 1;
		break;
	default:
		return token_fail(why, "malformed");
	}
	alen = raw[TOKEN_OFF_ALEN];
	if (TOKEN_OFF_ALIAS + alen != body ||
	    !token_alias_ok((const char *)raw + TOKEN_OFF_ALIAS, alen))
		return token_fail(why, "malformed");
	memcpy(t.alias, raw + TOKEN_OFF_ALIAS, alen);
	t.alias[alen] = '\0';
	for (i = 0; i < 8; i++)
		e = e << 8 | raw[TOKEN_OFF_EXPIRES + i];
	t.expires = (int64_t)e;

	if (t.expires <= (int64_t)now)
		return token_fail(why, "expired");
	if ((int64_t)now < INT64_MAX - TOKEN_MAX_LIFETIME &&
	    t.expires > (int64_t)now + TOKEN_MAX_LIFETIME)
		return token_fail(why, "expiry too far ahead");
	*out = t;
	return 0;
}

/*
 * Does t open guest uuid's console alias?  The all-guests scope opens any
 * guest, a guest scope only the guest with that UUID (compared as bytes,
 * so case does not matter; a malformed UUID matches nothing).  Alias "any"
 * opens any console, another alias exactly that one; alias NULL asks
 * about the guest only (is it listed?).
 */
int
token_allows(const struct token *t, const char *uuid, const char *alias)
{
	uint8_t	mine[16], theirs[16];

	if (t == NULL || token_uuid_parse(uuid, theirs) == -1)
		return 0;
	if (!t->all_guests) {
		if (token_uuid_parse(t->uuid, mine) == -1 ||
		    memcmp(mine, theirs, sizeof mine) != 0)
			return 0;
	}
	if (alias == NULL || strcmp(t->alias, TOKEN_ANY) == 0)
		return 1;
	return strcmp(t->alias, alias) == 0;
}

/* The id in hex, for logs: it names a token without being one. */
void
token_id_hex(const struct token *t, char out[TOKEN_ID_HEX_LEN])
{
	static const char	hex[] = "0123456789abcdef";
	int			i;

	for (i = 0; i < TOKEN_ID_LEN; i++) {
		out[2 * i] = hex[t->id[i] >> 4];
		out[2 * i + 1] = hex[t->id[i] & 15];
	}
	out[2 * TOKEN_ID_LEN] = '\0';
}

/* Cookies (RFC 6265 section 4.1.1). */

static int
token_cookie_name_ok(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s != '\0'; s++) {
		if ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		    (*s >= '0' && *s <= '9'))
			continue;
		if (strchr("!#$%&'*+-.^_`|~", *s) == NULL)
			return 0;
	}
	return 1;
}

static int
token_cookie_value_ok(const char *s)
{
	unsigned char	c;

	for (; *s != '\0'; s++) {
		c = (unsigned char)*s;
		if (c < 0x21 || c > 0x7e || c == '"' || c == ',' || c == ';' ||
		    c == '\\')
			return 0;
	}
	return 1;
}

static int
token_cookie_path_ok(const char *s)
{
	if (*s != '/')
		return 0;
	for (; *s != '\0'; s++) {
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f ||
		    *s == ';')
			return 0;
	}
	return 1;
}

/*
 * Build "Set-Cookie: NAME=VALUE; Path=P; Max-Age=N; HttpOnly;
 * SameSite=Strict[; Secure]" without CRLF.  path NULL leaves Path out: the
 * browser then scopes the cookie to the directory of the request's URL,
 * which is what a deployment under a reverse-proxy sub-path needs.
 * max_age 0 deletes the cookie.  Returns 0, or -1 for a name, value or path
 * a header cannot carry as is, a negative max_age, or too little room.
 */
int
token_cookie_header(char *out, size_t outlen, const char *name,
    const char *value, int max_age, int secure, const char *path)
{
	int	n;

	if (outlen > 0)
		out[0] = '\0';
	if (!token_cookie_name_ok(name) || !token_cookie_value_ok(value) ||
	    (path != NULL && !token_cookie_path_ok(path)) || max_age < 0)
		return -1;
	n = snprintf(out, outlen, "Set-Cookie: %s=%s%s%s; Max-Age=%d; "
	    "HttpOnly; SameSite=Strict%s", name, value,
	    path != NULL ? "; Path=" : "", path != NULL ? path : "", max_age,
	    secure ? "; Secure" : "");
	if (n < 0 || (size_t)n >= outlen) {
		if (outlen > 0)
			out[0] = '\0';
		return -1;
	}
	return 0;
}

/*
 * The replay cache.  token_cache_use() is O(1) expected; the table grows
 * by doubling up to 2 * TOKEN_CACHE_MAX slots (32 bytes each: 4 MiB at
 * most).  token_cache_expire() rebuilds the table from the live entries,
 * O(slots); the daemon calls it from a timer.  When TOKEN_CACHE_MAX
 * unexpired ids are held, new tokens are refused rather than an entry
 * evicted: eviction would let that token be replayed.
 *
 * The cache also remembers the latest time it expired entries at (its
 * horizon) and refuses a token that expires at or before it: such a token
 * may have been used and forgotten, and only a clock stepped backwards
 * would let token_verify() pass it again.
 */
void
token_cache_init(struct token_cache *tc)
{
	memset(tc, 0, sizeof *tc);
}

void
token_cache_free(struct token_cache *tc)
{
	if (tc->slots != NULL) {
		explicit_bzero(tc->slots, tc->nslots * sizeof *tc->slots);
		free(tc->slots);
	}
	memset(tc, 0, sizeof *tc);
}

size_t
token_cache_count(const struct token_cache *tc)
{
	return tc->count;
}

static size_t
token_cache_hash(const uint8_t *id, size_t nslots)
{
	uint64_t	h;

	memcpy(&h, id, sizeof h);
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	return (size_t)(h & (nslots - 1));
}

/* The slot holding id, or the empty slot where it would go. */
static struct token_cache_slot *
token_cache_find(struct token_cache_slot *slots, size_t nslots,
    const uint8_t *id)
{
	size_t	i;

	i = token_cache_hash(id, nslots);
	/*
	 * slots is NULL only with nslots 0, which callers pass only for an
	 * empty table; the analyzer assumes tc->nslots * 2 may wrap to 0.
	 */
	/* NOLINTNEXTLINE(clang-analyzer-core.NullDereference) */
	while (slots[i].used &&
	    memcmp(slots[i].id, id, TOKEN_ID_LEN) != 0)
		i = (i + 1) & (nslots - 1);
	return &slots[i];
}

/* Move the entries that expire after horizon into a table of nslots. */
static void
token_cache_rebuild(struct token_cache *tc, size_t nslots, int64_t horizon)
{
	struct token_cache_slot	*slots = NULL, *s;
	size_t			 i, count = 0;

	if (nslots > 0)
		slots = xcalloc(nslots, sizeof *slots);
	for (i = 0; i < tc->nslots; i++) {
		if (!tc->slots[i].used || tc->slots[i].expires <= horizon)
			continue;
		s = token_cache_find(slots, nslots, tc->slots[i].id);
		*s = tc->slots[i];
		count++;
	}
	if (tc->slots != NULL) {
		explicit_bzero(tc->slots, tc->nslots * sizeof *tc->slots);
		free(tc->slots);
	}
	tc->slots = slots;
	tc->nslots = nslots;
	tc->count = count;
}

/* Drop the entries of tokens expired at now and shrink the table. */
void
token_cache_expire(struct token_cache *tc, time_t now)
{
	size_t	i, live = 0, nslots;

	if ((int64_t)now > tc->horizon)
		tc->horizon = (int64_t)now;
	for (i = 0; i < tc->nslots; i++) {
		if (tc->slots[i].used && tc->slots[i].expires > tc->horizon)
			live++;
	}
	nslots = 0;
	if (live > 0) {
		nslots = TOKEN_CACHE_MIN_SLOTS;
		while (nslots / 2 < live)
			nslots *= 2;
	}
	token_cache_rebuild(tc, nslots, tc->horizon);
}

/*
 * Record t's id.  Returns 0 on its first use, or -1 with errno EEXIST (a
 * replay), ESTALE (it expired by the cache's clock) or ENOSPC (the cache
 * holds TOKEN_CACHE_MAX live ids).
 */
int
token_cache_use(struct token_cache *tc, const struct token *t, time_t now)
{
	struct token_cache_slot	*s;
	size_t			 nslots;

	if (tc->nslots > 0) {
		s = token_cache_find(tc->slots, tc->nslots, t->id);
		if (s->used) {
			errno = EEXIST;
			return -1;
		}
	}
	if (t->expires <= tc->horizon) {
		errno = ESTALE;
		return -1;
	}
	if (tc->count >= TOKEN_CACHE_MAX) {
		token_cache_expire(tc, now);
		if (tc->count >= TOKEN_CACHE_MAX) {
			errno = ENOSPC;
			return -1;
		}
	}
	if (tc->count + 1 > tc->nslots / 2) {
		nslots = tc->nslots == 0 ? TOKEN_CACHE_MIN_SLOTS :
		    tc->nslots * 2;
		token_cache_rebuild(tc, nslots, INT64_MIN);
	}
	s = token_cache_find(tc->slots, tc->nslots, t->id);
	memcpy(s->id, t->id, TOKEN_ID_LEN);
	s->expires = t->expires;
	s->used = 1;
	tc->count++;
	return 0;
}
