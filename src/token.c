/*
 * Access tokens, browser-session cookies, the replay cache, the secret
 * that signs them and the audience that names this daemon.  Pure: no
 * sockets, no event loop, no logging; the caller logs the reason a check
 * gives and the token's id, never its text.
 *
 * A token (kind TOKEN_KIND_TOKEN, printed by `virtconsolectl token`) and a
 * session cookie (kind TOKEN_KIND_SESSION, minted by the daemon when a
 * token is consumed at /?token=) share one binary layout, format version
 * 2, big-endian:
 *
 *	off  len
 *	  0    1	version (2)
 *	  1    1	kind: 1 token, 2 session; inside the MAC, so a cookie
 *			is never accepted as a token nor the reverse
 *	  2   16	id: random, loggable, the replay cache's key
 *	 18   16	aud: the audience, the daemon's identity (the 16 raw
 *			bytes of state_dir/audience), so that daemons that
 *			share a secret do not accept each other's tokens
 *	 34    1	flags: bit 0 all guests, bit 1 role viewer (clear:
 *			writer), bit 2 may read history, bit 3 checked (a
 *			session whose listener checked a token; never set in
 *			a token); the other bits are 0
 *	 35   16	the guest's UUID, raw (zero for all guests); the UUID,
 *			not the name, so a re-created guest with the same
 *			name is not opened by an old token
 *	 51    8	iat: issued at, unix seconds, signed (a session: the
 *			login time, which never moves); 0 <= iat <= exp
 *	 59    8	exp: expiry, unix seconds, signed, > 0
 *	 67    1	hv length H, 1..32
 *	 68    H	hypervisor, [A-Za-z0-9_-] ("default" for the uri key's),
 *			or "any", which only an all-guests token may carry
 *	68+H   1	alias length A, 1..32
 *	69+H   A	console alias, [A-Za-z0-9._-], or "any"
 *	69+H+A 1	label length L, 0..64
 *	70+H+A L	label: who it was issued to, free text (UTF-8 or not),
 *			no byte below 0x20 nor 0x7f
 *	70+H+A+L 32	HMAC-SHA256 of everything before it
 *
 * encoded as base64url without padding: 104 to 230 bytes, 139 to 307
 * characters (TOKEN_TEXT_MAX is the longest and its NUL).  The MAC is kept
 * whole (32 bytes): the 22 characters a truncation would save do not
 * matter in a URL, and nothing has to be argued about forgery odds.
 *
 * token_verify() checks only the length and the encoding before the MAC
 * (compared with CRYPTO_memcmp); every other field is read only from bytes
 * the MAC vouched for.  The decoder is strict: the base64url alphabet only,
 * no padding, no whitespace, and unused trailing bits must be zero; the
 * fields are strict too (flags, UUID of an all-guests token, lengths that
 * add up), so one token has exactly one text, and what token_mint() makes
 * token_verify() reads back identically.
 *
 * Version 1 (no aud, hv, role, history, label, iat; 77 to 108 bytes) is
 * refused since version 2.  Its lengths are still let through to the MAC
 * so that a genuine version-1 text gets its own reason rather than
 * "malformed"; a forged one is a bad signature like any other.
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

#define TOKEN_VERSION		2
#define TOKEN_VERSION_1		1	/* refused, with its own reason */

#define TOKEN_FLAG_ALL		0x01
#define TOKEN_FLAG_VIEWER	0x02
#define TOKEN_FLAG_HISTORY	0x04
#define TOKEN_FLAG_CHECKED	0x08
#define TOKEN_FLAGS_KNOWN	0x0f

#define TOKEN_OFF_VERSION	0
#define TOKEN_OFF_KIND		1
#define TOKEN_OFF_ID		2
#define TOKEN_OFF_AUD		18
#define TOKEN_OFF_FLAGS		34
#define TOKEN_OFF_UUID		35
#define TOKEN_OFF_IAT		51
#define TOKEN_OFF_EXPIRES	59
#define TOKEN_OFF_STRINGS	67	/* hv, alias, label: length, bytes */
#define TOKEN_UUID_RAW		16
#define TOKEN_MAC_LEN		32
/* The shortest: 1-byte hv and alias, empty label; the longest: all full. */
#define TOKEN_RAW_MIN		(TOKEN_OFF_STRINGS + 3 + 1 + 1 + TOKEN_MAC_LEN)
#define TOKEN_RAW_MAX		(TOKEN_OFF_STRINGS + 3 + TOKEN_HV_MAX + \
				    TOKEN_ALIAS_MAX + TOKEN_LABEL_MAX + \
				    TOKEN_MAC_LEN)
#define TOKEN_V1_RAW_MIN	77	/* the shortest version-1 token */

/* How far ahead of our clock a token's iat may be (the issuer's clock). */
#define TOKEN_IAT_SKEW		300

/* Characters of n bytes in base64url without padding. */
#define TOKEN_B64_LEN(n)	(((n) * 4 + 2) / 3)
_Static_assert(TOKEN_B64_LEN(TOKEN_RAW_MAX) + 1 == TOKEN_TEXT_MAX,
    "TOKEN_TEXT_MAX must fit the longest token, exactly");
_Static_assert(TOKEN_V1_RAW_MIN < TOKEN_RAW_MIN,
    "the length bounds must let version-1 texts reach the MAC");

/* The secret and the audience files: raw bytes, at most this many. */
#define TOKEN_FILE_MAX		TOKEN_KEY_LEN
_Static_assert(TOKEN_AUD_LEN <= TOKEN_FILE_MAX, "audience too long");

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

static int	token_uuid_parse(const char *, uint8_t *);
static void	token_uuid_format(const uint8_t *, char *);

/*
 * The secret and the audience files.  Both hold exactly len raw bytes (no
 * encoding, no newline) and are read and created the same way; what names
 * the file in messages.
 */

static int
token_file_read(int fd, const char *what, const char *path, uint8_t *out,
    size_t len, char *err, size_t errlen)
{
	struct stat	 st;
	uint8_t		 buf[TOKEN_FILE_MAX + 1];
	size_t		 got = 0;
	ssize_t		 n;

	if (fstat(fd, &st) == -1) {
		snprintf(err, errlen, "%s %s: %s", what, path,
		    strerror(errno));
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s %s: not a regular file", what, path);
		return -1;
	}
	if ((st.st_mode & 077) != 0) {
		snprintf(err, errlen, "%s %s: mode %04o gives group or others "
		    "access; chmod 600 it", what, path,
		    (unsigned int)(st.st_mode & 07777));
		return -1;
	}
	if (st.st_uid != geteuid() && st.st_uid != 0) {
		snprintf(err, errlen, "%s %s: owned by uid %lu, neither root "
		    "nor us", what, path, (unsigned long)st.st_uid);
		return -1;
	}
	if (st.st_size != (off_t)len) {
		snprintf(err, errlen, "%s %s: must hold exactly %zu bytes, "
		    "not %lld", what, path, len, (long long)st.st_size);
		return -1;
	}
	/* One byte more than wanted: a file that grew meanwhile is seen. */
	while (got < len + 1) {
		n = read(fd, buf + got, len + 1 - got);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			snprintf(err, errlen, "%s %s: %s", what, path,
			    strerror(errno));
			explicit_bzero(buf, sizeof buf);
			return -1;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	if (got != len) {
		snprintf(err, errlen, "%s %s: must hold exactly %zu bytes, "
		    "read %zu", what, path, len, got);
		explicit_bzero(buf, sizeof buf);
		return -1;
	}
	memcpy(out, buf, len);
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
 * Create the file: len random bytes written to a temporary file (O_EXCL,
 * O_NOFOLLOW, mode 0600) that is then linked into place; its directory is
 * made (mode 0700) if missing, one level only.  link(), unlike rename(),
 * never replaces a file: when two processes (the daemon and
 * virtconsolectl) create it at once, the loser reads the winner's bytes
 * instead of signing with a key, or naming itself by an audience, that is
 * no longer on disk.  Returns 0 with out set, 1 if another process
 * created the file first, or -1.
 */
static int
token_file_create(const char *what, const char *path, uint8_t *out,
    size_t len, char *err, size_t errlen)
{
	uint8_t	 rnd[6];
	char	*tmp = NULL, *dir, *copy, *name;
	int	 fd = -1, tries, dfd, ret = -1;

	copy = xstrdup(path);
	dir = dirname(copy);
	if (mkdir(dir, 0700) == -1 && errno != EEXIST) {
		snprintf(err, errlen, "%s %s: cannot create its directory: %s",
		    what, path, strerror(errno));
		free(copy);
		return -1;
	}
	/* Everything in the directory goes through this descriptor. */
	if ((dfd = dir_open(dir)) == -1) {
		snprintf(err, errlen, "%s %s: its directory: %s", what, path,
		    errno == ELOOP ? "is a symbolic link" : strerror(errno));
		free(copy);
		return -1;
	}
	free(copy);
	copy = xstrdup(path);
	name = basename(copy);
	for (tries = 0; tries < 10 && fd == -1; tries++) {
		free(tmp);
		tmp = NULL;
		if (RAND_bytes(rnd, sizeof rnd) != 1)
			break;
		xasprintf(&tmp, "%s.%02x%02x%02x%02x%02x%02x", name, rnd[0],
		    rnd[1], rnd[2], rnd[3], rnd[4], rnd[5]);
		fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
		    O_CLOEXEC | O_NOCTTY, 0600);
		if (fd == -1 && errno != EEXIST)
			break;
	}
	if (fd == -1) {
		snprintf(err, errlen, "%s %s: cannot create it: %s", what,
		    path, tmp == NULL ? "no random bytes" : strerror(errno));
		goto out;
	}
	if (RAND_bytes(out, (int)len) != 1) {
		snprintf(err, errlen, "%s %s: cannot get random bytes", what,
		    path);
		goto fail;
	}
	if (fchmod(fd, 0600) == -1 || token_write_all(fd, out, len) == -1 ||
	    fsync(fd) == -1) {
		snprintf(err, errlen, "%s %s: cannot write it: %s", what, path,
		    strerror(errno));
		goto fail;
	}
	close(fd);
	fd = -1;
	if (linkat(dfd, tmp, dfd, name, 0) == -1) {
		if (errno == EEXIST)
			ret = 1;
		else
			snprintf(err, errlen, "%s %s: cannot create it: %s",
			    what, path, strerror(errno));
		goto fail;
	}
	unlinkat(dfd, tmp, 0);
	fsync(dfd);
	ret = 0;
	goto out;

fail:
	if (fd != -1)
		close(fd);
	unlinkat(dfd, tmp, 0);
	if (ret != 0)
		explicit_bzero(out, len);
out:
	close(dfd);
	free(tmp);
	free(copy);
	return ret;
}

/*
 * Load len bytes from path; with create, make the file first if it is
 * missing.  Refused: a symbolic link (as the last component), anything but
 * a regular file, any permission bit for group or others, an owner other
 * than root or the effective user (who could rewrite it), another size.
 * Returns 0, or -1 with a one-line message naming the path in err.
 */
static int
token_file_load(const char *what, const char *path, uint8_t *out,
    size_t len, int create, char *err, size_t errlen)
{
	int	fd, r, tries;

	for (tries = 0; tries < 2; tries++) {
		fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY |
		    O_NONBLOCK);
		if (fd != -1) {
			r = token_file_read(fd, what, path, out, len, err,
			    errlen);
			close(fd);
			return r;
		}
		if (errno != ENOENT || !create)
			break;
		if ((r = token_file_create(what, path, out, len, err,
		    errlen)) != 1)
			return r;
		/* Another process won the race: read what it wrote. */
	}
	snprintf(err, errlen, "%s %s: %s", what, path, errno == ELOOP ?
	    "is a symbolic link" : strerror(errno));
	return -1;
}

/* The 32-byte signing secret, as token_file_load() says. */
int
token_secret_load(const char *path, uint8_t key[TOKEN_KEY_LEN], int create,
    char *err, size_t errlen)
{
	return token_file_load("token secret", path, key, TOKEN_KEY_LEN,
	    create, err, errlen);
}

/*
 * The daemon's audience: the 16 random bytes of state_dir/audience,
 * created (and state_dir with it, mode 0700) with create by whichever of
 * the daemon and `virtconsolectl token` comes first.  Not a secret, but
 * held to the same rules as the secret: whoever could rewrite it could
 * make this daemon accept another's tokens.
 */
int
token_audience_load(const char *state_dir, uint8_t aud[TOKEN_AUD_LEN],
    int create, char *err, size_t errlen)
{
	char	*path;
	int	 r;

	if (state_dir == NULL || *state_dir == '\0') {
		snprintf(err, errlen, "token audience: no state_dir");
		return -1;
	}
	xasprintf(&path, "%s/audience", state_dir);
	r = token_file_load("token audience", path, aud, TOKEN_AUD_LEN, create,
	    err, errlen);
	free(path);
	return r;
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

/*
 * A name: 1..max bytes of letters, digits and the punctuation in extra.
 * Aliases allow "._-", hypervisor names "_-"; "any" is one of each.
 */
static int
token_name_ok(const char *s, size_t len, size_t max, const char *extra)
{
	size_t	i;

	if (len == 0 || len > max)
		return 0;
	for (i = 0; i < len; i++) {
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= 'A' && s[i] <= 'Z') ||
		    (s[i] >= '0' && s[i] <= '9') ||
		    (s[i] != '\0' && strchr(extra, s[i]) != NULL)))
			return 0;
	}
	return 1;
}

/*
 * A label: at most TOKEN_LABEL_MAX bytes, none a control character (below
 * 0x20, or 0x7f) so it cannot break a log line or a terminal; the empty
 * label is allowed.  Bytes from 0x80 up pass as they are, for UTF-8: the
 * places that show a label (JSON, logs) escape what they must.
 */
int
token_label_ok(const char *s)
{
	size_t	len, i;

	if (s == NULL || (len = strnlen(s, TOKEN_LABEL_MAX + 1)) >
	    TOKEN_LABEL_MAX)
		return 0;
	for (i = 0; i < len; i++) {
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] == 0x7f)
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

/*
 * Are t's claims valid?  The one check behind token_new(), token_mint()
 * and token_verify(), so that what one makes the others accept.  Sets
 * uuid to the guest's UUID as raw bytes (zero for all guests).  The
 * booleans must be 0 or 1, role one of TOKEN_ROLE_* and the UUID in lower
 * case, so that a struct has one text and reads back the same; checked is
 * for sessions only (a token is checked by whoever consumes it); an
 * unterminated string is refused, not cut.
 */
static int
token_claims_ok(const struct token *t, uint8_t uuid[TOKEN_UUID_RAW])
{
	char	canon[GUEST_UUID_LEN];

	memset(uuid, 0, TOKEN_UUID_RAW);
	if (t->kind != TOKEN_KIND_TOKEN && t->kind != TOKEN_KIND_SESSION)
		return -1;
	if ((t->all_guests != 0 && t->all_guests != 1) ||
	    (t->history != 0 && t->history != 1) ||
	    (t->checked != 0 && t->checked != 1) ||
	    (t->role != TOKEN_ROLE_WRITER && t->role != TOKEN_ROLE_VIEWER))
		return -1;
	if (t->checked && t->kind != TOKEN_KIND_SESSION)
		return -1;

	if (!token_name_ok(t->hv, strnlen(t->hv, sizeof t->hv), TOKEN_HV_MAX,
	    "_-"))
		return -1;
	/* "any" hypervisor with one guest: a UUID is per hypervisor. */
	if (!t->all_guests && strcmp(t->hv, TOKEN_ANY) == 0)
		return -1;
	if (!token_name_ok(t->alias, strnlen(t->alias, sizeof t->alias),
	    TOKEN_ALIAS_MAX, "._-"))
		return -1;
	/* token_label_ok() reads at most sizeof t->label bytes. */
	if (!token_label_ok(t->label))
		return -1;

	if (t->all_guests) {
		if (t->uuid[0] != '\0')
			return -1;
	} else {
		if (token_uuid_parse(t->uuid, uuid) == -1)
			return -1;
		/* In lower case, as token_new() and token_verify() give. */
		token_uuid_format(uuid, canon);
		if (strcmp(canon, t->uuid) != 0)
			return -1;
	}

	if (t->iat < 0 || t->expires <= 0 || t->iat > t->expires)
		return -1;
	return 0;
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
 * Fill in a new token or session: a fresh random id, the audience, the
 * hypervisor (NULL: "default" for one guest, "any" for all guests), the
 * scope (uuid NULL for all guests, alias NULL for any console), the issue
 * time and the expiry.  The role is writer with history, the label empty,
 * checked 0: the caller changes those after.  Returns 0, or -1 for a
 * claim token_mint() would refuse (unknown kind, malformed UUID, alias or
 * hypervisor, hypervisor "any" for one guest, iat < 0, iat > expires,
 * expires <= 0), a NULL aud, or no randomness.
 */
int
token_new(struct token *t, int kind, const uint8_t aud[TOKEN_AUD_LEN],
    const char *hv, const char *uuid, const char *alias, int64_t iat,
    int64_t expires)
{
	uint8_t	u[TOKEN_UUID_RAW];

	memset(t, 0, sizeof *t);
	if (aud == NULL)
		return -1;
	if (hv == NULL)
		hv = uuid == NULL ? TOKEN_ANY : TOKEN_HV_DEFAULT;
	if (alias == NULL)
		alias = TOKEN_ANY;
	if (strnlen(hv, sizeof t->hv) == sizeof t->hv ||
	    strnlen(alias, sizeof t->alias) == sizeof t->alias)
		return -1;
	if (uuid == NULL)
		t->all_guests = 1;
	else {
		if (token_uuid_parse(uuid, u) == -1)
			return -1;
		token_uuid_format(u, t->uuid);
	}
	t->kind = kind;
	memcpy(t->aud, aud, TOKEN_AUD_LEN);
	memcpy(t->hv, hv, strlen(hv) + 1);
	memcpy(t->alias, alias, strlen(alias) + 1);
	t->role = TOKEN_ROLE_WRITER;
	t->history = 1;
	t->iat = iat;
	t->expires = expires;
	if (token_claims_ok(t, u) == -1 ||
	    RAND_bytes(t->id, sizeof t->id) != 1) {
		memset(t, 0, sizeof *t);
		return -1;
	}
	return 0;
}

static void
token_put64(uint8_t *p, int64_t v)
{
	uint64_t	u = (uint64_t)v;
	int		i;

	for (i = 0; i < 8; i++)
		p[i] = (uint8_t)(u >> (56 - 8 * i));
}

static int64_t
token_get64(const uint8_t *p)
{
	uint64_t	u = 0;
	int		i;

	for (i = 0; i < 8; i++)
		u = u << 8 | p[i];
	return (int64_t)u;
}

/* Append a length byte and s (size bytes at most) at *off, without NUL. */
static void
token_put_string(uint8_t *raw, size_t *off, const char *s, size_t size)
{
	size_t	len = strnlen(s, size);

	raw[(*off)++] = (uint8_t)len;
	memcpy(raw + *off, s, len);
	*off += len;
}

/*
 * Read a length byte and that many bytes at *off, before end, into out
 * (size bytes with its NUL).  A NUL inside would make the claim another
 * string than the bytes signed: refused, as is a string too long for out.
 */
static int
token_get_string(const uint8_t *raw, size_t end, size_t *off, char *out,
    size_t size)
{
	size_t	len;

	if (*off >= end)
		return -1;
	len = raw[*off];
	if (len >= size || len > end - *off - 1 ||
	    memchr(raw + *off + 1, '\0', len) != NULL)
		return -1;
	memcpy(out, raw + *off + 1, len);
	out[len] = '\0';
	*off += 1 + len;
	return 0;
}

/*
 * Sign and encode t into out.  Returns 0, or -1 if a claim is invalid (as
 * token_new() lists, plus: role, booleans other than 0 or 1, checked in a
 * token, a bad or unterminated label, hv or alias, a UUID with all guests
 * or in upper case) or out is shorter than the text and its NUL
 * (TOKEN_TEXT_MAX always suffices).  What it accepts, token_verify()
 * reads back claim for claim.
 */
int
token_mint(const uint8_t key[TOKEN_KEY_LEN], const struct token *t,
    char *out, size_t outlen)
{
	uint8_t		raw[TOKEN_RAW_MAX];
	size_t		len;

	memset(raw, 0, sizeof raw);
	if (token_claims_ok(t, raw + TOKEN_OFF_UUID) == -1)
		return -1;
	raw[TOKEN_OFF_VERSION] = TOKEN_VERSION;
	raw[TOKEN_OFF_KIND] = (uint8_t)t->kind;
	memcpy(raw + TOKEN_OFF_ID, t->id, TOKEN_ID_LEN);
	memcpy(raw + TOKEN_OFF_AUD, t->aud, TOKEN_AUD_LEN);
	raw[TOKEN_OFF_FLAGS] = (uint8_t)(
	    (t->all_guests ? TOKEN_FLAG_ALL : 0) |
	    (t->role == TOKEN_ROLE_VIEWER ? TOKEN_FLAG_VIEWER : 0) |
	    (t->history ? TOKEN_FLAG_HISTORY : 0) |
	    (t->checked ? TOKEN_FLAG_CHECKED : 0));
	token_put64(raw + TOKEN_OFF_IAT, t->iat);
	token_put64(raw + TOKEN_OFF_EXPIRES, t->expires);
	len = TOKEN_OFF_STRINGS;
	token_put_string(raw, &len, t->hv, sizeof t->hv);
	token_put_string(raw, &len, t->alias, sizeof t->alias);
	token_put_string(raw, &len, t->label, sizeof t->label);
	if (token_hmac(key, raw, len, raw + len) == -1)
		return -1;
	len += TOKEN_MAC_LEN;
	if (outlen < TOKEN_B64_LEN(len) + 1)
		return -1;
	token_b64_encode(raw, len, out);
	return 0;
}

/*
 * The claims of a version-2 body (MAC stripped, body bytes) whose MAC was
 * checked.  Returns 0, or -1 if a field is malformed or not the way
 * token_mint() writes it.
 */
static int
token_decode(const uint8_t *raw, size_t body, struct token *t)
{
	uint8_t	uuid[TOKEN_UUID_RAW], flags;
	size_t	off = TOKEN_OFF_STRINGS;

	memset(t, 0, sizeof *t);
	flags = raw[TOKEN_OFF_FLAGS];
	if ((flags & ~TOKEN_FLAGS_KNOWN) != 0)
		return -1;
	t->kind = raw[TOKEN_OFF_KIND];
	memcpy(t->id, raw + TOKEN_OFF_ID, TOKEN_ID_LEN);
	memcpy(t->aud, raw + TOKEN_OFF_AUD, TOKEN_AUD_LEN);
	t->all_guests = (flags & TOKEN_FLAG_ALL) != 0;
	t->role = (flags & TOKEN_FLAG_VIEWER) ? TOKEN_ROLE_VIEWER :
	    TOKEN_ROLE_WRITER;
	t->history = (flags & TOKEN_FLAG_HISTORY) != 0;
	t->checked = (flags & TOKEN_FLAG_CHECKED) != 0;
	if (!t->all_guests)
		token_uuid_format(raw + TOKEN_OFF_UUID, t->uuid);
	t->iat = token_get64(raw + TOKEN_OFF_IAT);
	t->expires = token_get64(raw + TOKEN_OFF_EXPIRES);
	if (token_get_string(raw, body, &off, t->hv, sizeof t->hv) == -1 ||
	    token_get_string(raw, body, &off, t->alias, sizeof t->alias) ==
	    -1 ||
	    token_get_string(raw, body, &off, t->label, sizeof t->label) ==
	    -1 || off != body)
		return -1;
	if (token_claims_ok(t, uuid) == -1)
		return -1;
	/* All guests: the UUID bytes are zero, as minting writes them. */
	if (memcmp(uuid, raw + TOKEN_OFF_UUID, sizeof uuid) != 0)
		return -1;
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
 * Check text as a token of the given kind for audience aud at time now.
 * Returns 0 with out filled in, or -1 with out zeroed and *why one of, in
 * the order checked:
 *	"malformed"		not base64url as minted, a length no token
 *				of either version has, or (after the MAC)
 *				an unknown version or kind, unknown flags, a
 *				field token_mint() would not write
 *	"bad signature"		the MAC does not match (another secret, or a
 *				forgery; also a version-1 text so made)
 *	"version 1 (no longer accepted)"	a genuine version-1 text
 *	"wrong kind"		a cookie as a token, or the reverse
 *	"wrong audience"	made for another daemon sharing the secret
 *	"expired"		expires <= now: valid while now < expires
 *	"expiry too far ahead"	more than TOKEN_MAX_LIFETIME away: it would
 *				hold a replay-cache slot for ever
 *	"issued in the future"	iat more than TOKEN_IAT_SKEW (300 s) after
 *				now: the issuer's clock may be a little
 *				ahead of ours, not more
 * The audience is compared with CRYPTO_memcmp, like the MAC, though it is
 * not a secret.
 */
int
token_verify(const uint8_t key[TOKEN_KEY_LEN],
    const uint8_t aud[TOKEN_AUD_LEN], const char *text, time_t now,
    int kind, struct token *out, const char **why)
{
	uint8_t		raw[TOKEN_RAW_MAX], mac[TOKEN_MAC_LEN];
	struct token	t;
	size_t		tlen, body;
	ssize_t		n;
	int		r;

	memset(out, 0, sizeof *out);
	if (why != NULL)
		*why = NULL;
	if (text == NULL)
		return token_fail(why, "malformed");
	tlen = strnlen(text, TOKEN_B64_LEN(TOKEN_RAW_MAX) + 1);
	if (tlen < TOKEN_B64_LEN(TOKEN_V1_RAW_MIN) ||
	    tlen > TOKEN_B64_LEN(TOKEN_RAW_MAX))
		return token_fail(why, "malformed");
	n = token_b64_decode(text, tlen, raw, sizeof raw);
	if (n < TOKEN_V1_RAW_MIN || n > TOKEN_RAW_MAX)
		return token_fail(why, "malformed");
	body = (size_t)n - TOKEN_MAC_LEN;

	/* The MAC first, in constant time; nothing else is trusted before. */
	r = token_hmac(key, raw, body, mac);
	if (r == -1 || CRYPTO_memcmp(mac, raw + body, TOKEN_MAC_LEN) != 0) {
		explicit_bzero(mac, sizeof mac);
		return token_fail(why, "bad signature");
	}
	explicit_bzero(mac, sizeof mac);

	if (raw[TOKEN_OFF_VERSION] == TOKEN_VERSION_1)
		return token_fail(why, "version 1 (no longer accepted)");
	if (raw[TOKEN_OFF_VERSION] != TOKEN_VERSION || n < TOKEN_RAW_MIN)
		return token_fail(why, "malformed");
	if (raw[TOKEN_OFF_KIND] != TOKEN_KIND_TOKEN &&
	    raw[TOKEN_OFF_KIND] != TOKEN_KIND_SESSION)
		return token_fail(why, "malformed");
	if (raw[TOKEN_OFF_KIND] != kind)
		return token_fail(why, "wrong kind");
	if (CRYPTO_memcmp(raw + TOKEN_OFF_AUD, aud, TOKEN_AUD_LEN) != 0)
		return token_fail(why, "wrong audience");
	if (token_decode(raw, body, &t) == -1)
		return token_fail(why, "malformed");

	if (t.expires <= (int64_t)now)
		return token_fail(why, "expired");
	if ((int64_t)now < INT64_MAX - TOKEN_MAX_LIFETIME &&
	    t.expires > (int64_t)now + TOKEN_MAX_LIFETIME)
		return token_fail(why, "expiry too far ahead");
	if ((int64_t)now < INT64_MAX - TOKEN_IAT_SKEW &&
	    t.iat > (int64_t)now + TOKEN_IAT_SKEW)
		return token_fail(why, "issued in the future");
	*out = t;
	return 0;
}

/*
 * Does t open guest uuid's console alias?  The all-guests scope opens any
 * guest, a guest scope only the guest with that UUID (compared as bytes,
 * so case does not matter; a malformed UUID matches nothing).  Alias "any"
 * opens any console, another alias exactly that one; alias NULL asks
 * about the guest only (is it listed?).  The hypervisor, role and history
 * are the caller's to check.
 */
int
token_allows(const struct token *t, const char *hv, const char *uuid,
    const char *alias)
{
	uint8_t	mine[TOKEN_UUID_RAW], theirs[TOKEN_UUID_RAW];

	if (t == NULL || token_uuid_parse(uuid, theirs) == -1)
		return 0;
	if (strcmp(t->hv, TOKEN_ANY) != 0 && strcmp(t->hv, hv) != 0)
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
 * Does the cache hold id (used, and not yet dropped by
 * token_cache_expire())?  For statedb.c, which keeps its dead ids here.
 */
int
token_cache_has(const struct token_cache *tc, const uint8_t *id)
{
	if (tc->nslots == 0)
		return 0;
	return token_cache_find(tc->slots, tc->nslots, id)->used;
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
