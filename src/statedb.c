/*
 * The replay cache and the revocations, kept in state_dir so that they
 * survive restarts.  Pure: no event loop, no logging; failures come back as
 * return values and, from statedb_open(), a one-line message.
 *
 * One set of dead ids: a token's id once it is used (statedb_use), a
 * session's id once it is revoked (statedb_revoke).  An id stays dead until
 * its expiry, after which the token or session is refused as expired
 * anyway and the id is forgotten.  The in-memory index is token.c's replay
 * cache, with its bound (TOKEN_CACHE_MAX live ids, then refusal: evicting
 * an id would let it be used again) and its horizon (an id expiring at or
 * before the latest time ids were expired at, statedb_open's time at
 * least, is stale: it may have been used and forgotten).
 *
 * The file, state_dir/tokens, is a log that is only appended to, each
 * record fsync'd before the caller acts on it (a token is used only once
 * its use is on disk), and rewritten whole now and then to drop expired
 * records.  All integers big-endian:
 *
 *	header, 8 bytes:
 *	  off  len
 *	    0    7	magic "VCDST" and two NULs
 *	    7    1	format version (1)
 *	then records, 32 bytes each:
 *	    0   16	id
 *	   16    8	expiry, unix seconds, signed
 *	   24    1	type: 1 a used token, 2 a revoked session; both are
 *			dead ids alike, the type says why for a reader
 *	   25    3	zero
 *	   28    4	CRC-32 (ISO-HDLC, as zlib's crc32) of bytes 0..27
 *
 * A record is written by one pwrite() at the end of the last good record
 * and then fsync'd, so after a crash only the last record can be damaged:
 * a short tail, or a whole record whose CRC, type or zero bytes are wrong.
 * statedb_open() truncates that away.  A damaged record anywhere else is not
 * a crash's doing and the file is refused (moving it away would make every
 * id it holds usable again, so that is left to a person).  A file shorter
 * than the header is accepted only if it is empty or a prefix of the header
 * (a crash while it was being created) and is then written afresh.
 *
 * Compaction writes the live records (unexpired, deduplicated) to
 * state_dir/tokens.tmp, fsyncs it, renames it over the log and fsyncs the
 * directory; it runs when more than half of the log's records are dead
 * (at open and from statedb_expire()), so the log holds at most about
 * 2 * TOKEN_CACHE_MAX records plus those appended since the last one.
 *
 * The log is held with an exclusive flock() for as long as it is open (the
 * lock follows the open file, so it survives the daemon's fork and is not
 * dropped by another descriptor being closed): a second process appending
 * to it would interleave records.  Files are reached through a descriptor
 * of state_dir, so the directory is resolved once.
 */
#include <sys/file.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "virtconsoled.h"


#define STATEDB_FILE		"tokens"
#define STATEDB_TMP		"tokens.tmp"
#define STATEDB_MAGIC		"VCDST\0"	/* and the literal's NUL */
#define STATEDB_MAGIC_LEN	7
#define STATEDB_VERSION		1
#define STATEDB_HEADER_LEN	8
#define STATEDB_REC_LEN		32
#define STATEDB_OFF_ID		0
#define STATEDB_OFF_EXPIRES	16
#define STATEDB_OFF_TYPE	24
#define STATEDB_OFF_ZERO	25
#define STATEDB_OFF_CRC		28
#define STATEDB_TYPE_USED	1
#define STATEDB_TYPE_REVOKED	2
#define STATEDB_CHUNK		128	/* records read or written at once */

_Static_assert(sizeof STATEDB_MAGIC == STATEDB_MAGIC_LEN,
    "the magic is 5 letters and two NULs");

struct statedb {
	struct token_cache	 tc;
	char			*path;		/* for messages */
	int			 dfd;		/* state_dir */
	int			 fd;		/* the log, locked */
	uint64_t		 nrec;		/* good records in the log */
	int			 dirsync;	/* a rename awaits fsync(dfd) */
};

static int	statedb_compact(struct statedb *, char *, size_t);

/* CRC-32, reflected polynomial 0xedb88320, four bits at a time. */
static uint32_t
statedb_crc32(const uint8_t *p, size_t len)
{
	static const uint32_t	t[16] = {
		0x00000000, 0x1db71064, 0x3b6e20c8, 0x26d930ac,
		0x76dc4190, 0x6b6b51f4, 0x4db26158, 0x5005713c,
		0xedb88320, 0xf00f9344, 0xd6d6a3e8, 0xcb61b38c,
		0x9b64c2b0, 0x86d3d2d4, 0xa00ae278, 0xbdbdf21c,
	};
	uint32_t		crc = 0xffffffff;

	while (len-- > 0) {
		crc ^= *p++;
		crc = (crc >> 4) ^ t[crc & 15];
		crc = (crc >> 4) ^ t[crc & 15];
	}
	return ~crc;
}

static void
statedb_encode(uint8_t *rec, const uint8_t *id, int64_t expires, int type)
{
	uint64_t	e = (uint64_t)expires;
	uint32_t	crc;
	int		i;

	memset(rec, 0, STATEDB_REC_LEN);
	memcpy(rec + STATEDB_OFF_ID, id, TOKEN_ID_LEN);
	for (i = 0; i < 8; i++)
		rec[STATEDB_OFF_EXPIRES + i] = (uint8_t)(e >> (56 - 8 * i));
	rec[STATEDB_OFF_TYPE] = (uint8_t)type;
	crc = statedb_crc32(rec, STATEDB_OFF_CRC);
	for (i = 0; i < 4; i++)
		rec[STATEDB_OFF_CRC + i] = (uint8_t)(crc >> (24 - 8 * i));
}

/* Check a record and fill t's id and expiry from it; -1 if damaged. */
static int
statedb_decode(const uint8_t *rec, struct token *t)
{
	uint64_t	e = 0;
	uint32_t	crc = 0;
	int		i;

	for (i = 0; i < 4; i++)
		crc = crc << 8 | rec[STATEDB_OFF_CRC + i];
	if (crc != statedb_crc32(rec, STATEDB_OFF_CRC))
		return -1;
	if (rec[STATEDB_OFF_TYPE] != STATEDB_TYPE_USED &&
	    rec[STATEDB_OFF_TYPE] != STATEDB_TYPE_REVOKED)
		return -1;
	for (i = STATEDB_OFF_ZERO; i < STATEDB_OFF_CRC; i++) {
		if (rec[i] != 0)
			return -1;
	}
	memset(t, 0, sizeof *t);
	memcpy(t->id, rec + STATEDB_OFF_ID, TOKEN_ID_LEN);
	for (i = 0; i < 8; i++)
		e = e << 8 | rec[STATEDB_OFF_EXPIRES + i];
	t->expires = (int64_t)e;
	return 0;
}

static void
statedb_header(uint8_t *h)
{
	memcpy(h, STATEDB_MAGIC, STATEDB_MAGIC_LEN);
	h[STATEDB_MAGIC_LEN] = STATEDB_VERSION;
}

/* Read up to len bytes at off; fewer only at the end of the file. */
static ssize_t
statedb_pread(int fd, uint8_t *p, size_t len, off_t off)
{
	size_t	got = 0;
	ssize_t	n;

	while (got < len) {
		n = pread(fd, p + got, len - got, off + (off_t)got);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return -1;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

static int
statedb_pwrite(int fd, const uint8_t *p, size_t len, off_t off)
{
	ssize_t	n;

	while (len > 0) {
		n = pwrite(fd, p, len, off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return -1;
		p += n;
		off += n;
		len -= (size_t)n;
	}
	return 0;
}

static off_t
statedb_offset(uint64_t rec)
{
	return (off_t)(STATEDB_HEADER_LEN + rec * STATEDB_REC_LEN);
}

/*
 * Check and read the header of a file of size bytes.  A file shorter than
 * the header that is empty or a prefix of it was cut short while being
 * created: write the header (and make the new name durable).
 */
static int
statedb_read_header(struct statedb *db, off_t size, char *err, size_t errlen)
{
	uint8_t	want[STATEDB_HEADER_LEN], h[STATEDB_HEADER_LEN];
	ssize_t	n;

	statedb_header(want);
	n = statedb_pread(db->fd, h, sizeof h, 0);
	if (n == -1) {
		snprintf(err, errlen, "state file %s: %s", db->path,
		    strerror(errno));
		return -1;
	}
	if (size < STATEDB_HEADER_LEN && n == size &&
	    memcmp(h, want, (size_t)n) == 0) {
		if (fchmod(db->fd, 0600) == -1 ||
		    statedb_pwrite(db->fd, want, sizeof want, 0) == -1 ||
		    fsync(db->fd) == -1 || fsync(db->dfd) == -1) {
			snprintf(err, errlen, "state file %s: cannot write "
			    "it: %s", db->path, strerror(errno));
			return -1;
		}
		return 0;
	}
	if (n != sizeof h || memcmp(h, want, STATEDB_MAGIC_LEN) != 0) {
		snprintf(err, errlen, "state file %s: not a virtconsoled "
		    "state file", db->path);
		return -1;
	}
	if (h[STATEDB_MAGIC_LEN] != STATEDB_VERSION) {
		snprintf(err, errlen, "state file %s: format version %u, not "
		    "%d", db->path, h[STATEDB_MAGIC_LEN], STATEDB_VERSION);
		return -1;
	}
	return 0;
}

/*
 * Load the records of a file of size bytes into the cache, skipping those
 * expired at now, and cut off a damaged last record.
 */
static int
statedb_load(struct statedb *db, off_t size, time_t now, char *err,
    size_t errlen)
{
	uint8_t		buf[STATEDB_CHUNK * STATEDB_REC_LEN];
	struct token	t;
	uint64_t	n, i, j, k;
	int		torn;
	ssize_t		got;

	n = (uint64_t)(size - STATEDB_HEADER_LEN) / STATEDB_REC_LEN;
	torn = (size - STATEDB_HEADER_LEN) % STATEDB_REC_LEN != 0;
	if (!torn && n > 0) {
		got = statedb_pread(db->fd, buf, STATEDB_REC_LEN,
		    statedb_offset(n - 1));
		if (got == -1)
			goto readerr;
		if (got != STATEDB_REC_LEN)
			goto changed;
		if (statedb_decode(buf, &t) == -1) {
			n--;
			torn = 1;
		}
	}

	for (i = 0; i < n; i += k) {
		k = n - i < STATEDB_CHUNK ? n - i : STATEDB_CHUNK;
		got = statedb_pread(db->fd, buf, k * STATEDB_REC_LEN,
		    statedb_offset(i));
		if (got == -1)
			goto readerr;
		if ((uint64_t)got != k * STATEDB_REC_LEN)
			goto changed;
		for (j = 0; j < k; j++) {
			if (statedb_decode(buf + j * STATEDB_REC_LEN,
			    &t) == -1) {
				snprintf(err, errlen, "state file %s: record "
				    "%llu of %llu is damaged", db->path,
				    (unsigned long long)i + j + 1,
				    (unsigned long long)n);
				return -1;
			}
			if (t.expires <= (int64_t)now)
				continue;
			if (token_cache_use(&db->tc, &t, now) == 0)
				continue;
			if (errno == ENOSPC) {
				snprintf(err, errlen, "state file %s: more "
				    "than %d live ids", db->path,
				    TOKEN_CACHE_MAX);
				return -1;
			}
			/* A duplicate (EEXIST) is dead already. */
		}
	}
	db->nrec = n;

	if (torn && (ftruncate(db->fd, statedb_offset(n)) == -1 ||
	    fsync(db->fd) == -1)) {
		snprintf(err, errlen, "state file %s: cannot cut off a damaged "
		    "last record: %s", db->path, strerror(errno));
		return -1;
	}
	return 0;

readerr:
	snprintf(err, errlen, "state file %s: %s", db->path, strerror(errno));
	return -1;
changed:
	snprintf(err, errlen, "state file %s: changed while being read",
	    db->path);
	return -1;
}

/*
 * Open or create dir/tokens and load it; dir must exist.  Refused: a
 * symbolic link, anything but a regular file, any permission bit for
 * group or others, an owner other than root, the effective user or the
 * owner of dir (when only that owner may write dir), a file
 * another process holds, another format, a damaged record other than the
 * last one, more than TOKEN_CACHE_MAX live ids.  Returns NULL with a
 * one-line message naming the path in err.
 */
struct statedb *
statedb_open(const char *dir, time_t now, char *err, size_t errlen)
{
	struct statedb	*db;
	struct stat	 st, dst;
	size_t		 live;

	db = xcalloc(1, sizeof *db);
	token_cache_init(&db->tc);
	/* What expired by now was dropped from the file: it is stale. */
	token_cache_expire(&db->tc, now);
	db->fd = -1;
	xasprintf(&db->path, "%s/%s", dir, STATEDB_FILE);

	db->dfd = dir_open(dir);
	if (db->dfd == -1) {
		snprintf(err, errlen, "state directory %s: %s", dir,
		    errno == ELOOP ? "is a symbolic link" : strerror(errno));
		goto fail;
	}
	db->fd = openat(db->dfd, STATEDB_FILE, O_RDWR | O_CREAT | O_NOFOLLOW |
	    O_CLOEXEC | O_NOCTTY | O_NONBLOCK, 0600);
	if (db->fd == -1) {
		snprintf(err, errlen, "state file %s: %s", db->path,
		    errno == ELOOP ? "is a symbolic link" : strerror(errno));
		goto fail;
	}
	if (fstat(db->fd, &st) == -1) {
		snprintf(err, errlen, "state file %s: %s", db->path,
		    strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "state file %s: not a regular file",
		    db->path);
		goto fail;
	}
	if ((st.st_mode & 077) != 0) {
		snprintf(err, errlen, "state file %s: mode %04o gives group or "
		    "others access; chmod 600 it", db->path,
		    (unsigned int)(st.st_mode & 07777));
		goto fail;
	}
	/*
	 * The directory's owner may own it too: a daemon that dropped
	 * privileges (state_dir is given to its user) writes it by
	 * compaction, and starts as root the next time.
	 */
	if (st.st_uid != geteuid() && st.st_uid != 0 &&
	    (fstat(db->dfd, &dst) == -1 || dst.st_uid != st.st_uid ||
	    (dst.st_mode & 022) != 0)) {
		snprintf(err, errlen, "state file %s: owned by uid %lu, "
		    "neither root, us nor the owner of a directory only its "
		    "owner writes", db->path, (unsigned long)st.st_uid);
		goto fail;
	}
	if (flock(db->fd, LOCK_EX | LOCK_NB) == -1) {
		snprintf(err, errlen, "state file %s: %s", db->path,
		    errno == EWOULDBLOCK ? "in use by another process" :
		    strerror(errno));
		goto fail;
	}

	if (statedb_read_header(db, st.st_size, err, errlen) == -1)
		goto fail;
	if (st.st_size > STATEDB_HEADER_LEN &&
	    statedb_load(db, st.st_size, now, err, errlen) == -1)
		goto fail;

	live = token_cache_count(&db->tc);
	if (db->nrec > 2 * (uint64_t)live &&
	    statedb_compact(db, err, errlen) == -1)
		goto fail;
	if (db->dirsync && fsync(db->dfd) == -1) {
		snprintf(err, errlen, "state file %s: cannot sync its "
		    "directory: %s", db->path, strerror(errno));
		goto fail;
	}
	db->dirsync = 0;
	return db;

fail:
	statedb_close(db);
	return NULL;
}

void
statedb_close(struct statedb *db)
{
	if (db == NULL)
		return;
	if (db->fd != -1)
		close(db->fd);
	if (db->dfd != -1)
		close(db->dfd);
	token_cache_free(&db->tc);
	free(db->path);
	free(db);
}

/*
 * Rewrite the log with its live records only: those in the cache and
 * unexpired by its horizon, each once.  The new file is locked before it
 * takes the log's name, so no other process can take the lock between.
 * On failure the old log stays as it was, in use.
 */
static int
statedb_compact(struct statedb *db, char *err, size_t errlen)
{
	uint8_t			 in[STATEDB_CHUNK * STATEDB_REC_LEN];
	uint8_t			 out[STATEDB_CHUNK * STATEDB_REC_LEN];
	struct token_cache	 seen;
	struct token		 t;
	uint64_t		 i, j, k, kept = 0;
	size_t			 o;
	ssize_t			 got;
	off_t			 woff;
	int			 tfd = -1, saved;
	const char		*what = NULL;

	/* A leftover of a crash, or an attacker's link: never opened. */
	if (unlinkat(db->dfd, STATEDB_TMP, 0) == -1 && errno != ENOENT)
		goto fail;
	tfd = openat(db->dfd, STATEDB_TMP, O_RDWR | O_CREAT | O_EXCL |
	    O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600);
	if (tfd == -1)
		goto fail;
	if (fchmod(tfd, 0600) == -1 || flock(tfd, LOCK_EX | LOCK_NB) == -1)
		goto fail;

	/* The cache says which are live; seen drops duplicates. */
	token_cache_init(&seen);
	statedb_header(out);
	if (statedb_pwrite(tfd, out, STATEDB_HEADER_LEN, 0) == -1)
		goto failseen;
	woff = STATEDB_HEADER_LEN;
	for (i = 0; i < db->nrec; i += k) {
		k = db->nrec - i < STATEDB_CHUNK ? db->nrec - i :
		    STATEDB_CHUNK;
		got = statedb_pread(db->fd, in, k * STATEDB_REC_LEN,
		    statedb_offset(i));
		if (got == -1)
			goto failseen;
		o = 0;
		for (j = 0; j < k; j++) {
			if ((uint64_t)got < (j + 1) * STATEDB_REC_LEN ||
			    statedb_decode(in + j * STATEDB_REC_LEN,
			    &t) == -1) {
				what = "a record changed or was damaged";
				goto failseen;
			}
			if (t.expires <= db->tc.horizon ||
			    !token_cache_has(&db->tc, t.id) ||
			    token_cache_use(&seen, &t, 0) == -1)
				continue;
			memcpy(out + o, in + j * STATEDB_REC_LEN,
			    STATEDB_REC_LEN);
			o += STATEDB_REC_LEN;
			kept++;
		}
		if (statedb_pwrite(tfd, out, o, woff) == -1)
			goto failseen;
		woff += (off_t)o;
	}
	token_cache_free(&seen);
	if (fsync(tfd) == -1 ||
	    renameat(db->dfd, STATEDB_TMP, db->dfd, STATEDB_FILE) == -1)
		goto fail;

	/* The name is the new file's now, synced or not. */
	close(db->fd);
	db->fd = tfd;
	db->nrec = kept;
	db->dirsync = fsync(db->dfd) == -1;
	return 0;

failseen:
	saved = errno;
	token_cache_free(&seen);
	errno = saved;
fail:
	saved = errno;
	if (tfd != -1) {
		close(tfd);
		unlinkat(db->dfd, STATEDB_TMP, 0);
	}
	if (err != NULL) {
		snprintf(err, errlen, "state file %s: cannot compact it: %s",
		    db->path, what != NULL ? what : strerror(saved));
	}
	errno = saved;
	return -1;
}

/*
 * Append a record and make it durable.  On failure the record is cut off
 * again (best effort: the next append writes over it anyway), so that the
 * file does not call an id dead that the cache does not.
 */
static int
statedb_append(struct statedb *db, const uint8_t *id, int64_t expires,
    int type)
{
	uint8_t	rec[STATEDB_REC_LEN];
	off_t	off = statedb_offset(db->nrec);

	statedb_encode(rec, id, expires, type);
	if (statedb_pwrite(db->fd, rec, sizeof rec, off) == -1 ||
	    fsync(db->fd) == -1 || (db->dirsync && fsync(db->dfd) == -1)) {
		if (ftruncate(db->fd, off) == -1) {
			/* Nothing more to do: pwrite() at off again. */
		}
		return -1;
	}
	db->dirsync = 0;
	db->nrec++;
	return 0;
}

/*
 * Mark id dead: checked like token_cache_use(), then written and synced,
 * and only then entered in the cache.
 */
static int
statedb_add(struct statedb *db, const uint8_t *id, int64_t expires,
    time_t now, int type)
{
	struct token	t;

	if (token_cache_has(&db->tc, id)) {
		errno = EEXIST;
		return -1;
	}
	if (token_cache_count(&db->tc) >= TOKEN_CACHE_MAX)
		token_cache_expire(&db->tc, now);
	if (expires <= db->tc.horizon) {
		errno = ESTALE;
		return -1;
	}
	if (token_cache_count(&db->tc) >= TOKEN_CACHE_MAX) {
		errno = ENOSPC;
		return -1;
	}
	if (statedb_append(db, id, expires, type) == -1) {
		errno = EIO;
		return -1;
	}
	memset(&t, 0, sizeof t);
	memcpy(t.id, id, TOKEN_ID_LEN);
	t.expires = expires;
	/* Cannot fail after the checks above; if it did, disk says dead. */
	return token_cache_use(&db->tc, &t, now);
}

/*
 * Use a token's id, expiring at expires.  Returns 0 once its use is on
 * disk, or -1 with errno EEXIST (used or revoked already), ESTALE (it
 * expires at or before the cache's horizon), ENOSPC (TOKEN_CACHE_MAX live
 * ids are held) or EIO (it could not be written and synced: it is not
 * dead, and the token must be refused).
 */
int
statedb_use(struct statedb *db, const uint8_t id[TOKEN_ID_LEN],
    int64_t expires, time_t now)
{
	return statedb_add(db, id, expires, now, STATEDB_TYPE_USED);
}

/* Revoke a session's id: as statedb_use(), but a dead id gives 0. */
int
statedb_revoke(struct statedb *db, const uint8_t id[TOKEN_ID_LEN],
    int64_t expires, time_t now)
{
	if (token_cache_has(&db->tc, id))
		return 0;
	return statedb_add(db, id, expires, now, STATEDB_TYPE_REVOKED);
}

/* Is id used or revoked (and not yet forgotten by statedb_expire())? */
int
statedb_dead(const struct statedb *db, const uint8_t id[TOKEN_ID_LEN])
{
	return token_cache_has(&db->tc, id);
}

/*
 * Forget the ids expired at now, and rewrite the log when more than half
 * of its records are dead.  A failed rewrite leaves the log as it was and
 * is tried again next time.
 */
void
statedb_expire(struct statedb *db, time_t now)
{
	token_cache_expire(&db->tc, now);
	if (db->nrec > 2 * (uint64_t)token_cache_count(&db->tc))
		statedb_compact(db, NULL, 0);
}

size_t
statedb_count(const struct statedb *db)
{
	return token_cache_count(&db->tc);
}
