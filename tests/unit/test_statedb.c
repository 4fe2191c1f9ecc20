/*
 * Unit tests of the state file: used and revoked ids survive a reopen (a
 * restart), expired ones are dropped, a torn last record is cut off, other
 * damage, another format, loose permissions, another owner, a symbolic
 * link and a second opener are refused, the bound of TOKEN_CACHE_MAX live
 * ids, compaction, and a failed write (EIO) that leaves the id usable.
 * Records are built here from the layout documented in statedb.c, with an
 * independent CRC-32, so the tests also pin the format.
 *
 * The files live in /dev/shm when it is there (tmpfs: an fsync costs
 * nothing, and the bound test writes TOKEN_CACHE_MAX records), else /tmp.
 */
#include <sys/resource.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "virtconsoled.h"
#include "tap.h"

#define NOW		1700000000
#define HEADER_LEN	8
#define REC_LEN		32

static char	dir[64];
static char	file[128];
static char	tmpname[128];
static char	err[512];

static double
ms(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* CRC-32 (ISO-HDLC), bit by bit. */
static uint32_t
crc32_bits(const uint8_t *p, size_t len)
{
	uint32_t	crc = 0xffffffff;
	int		k;

	while (len-- > 0) {
		crc ^= *p++;
		for (k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0xedb88320 & (0U - (crc & 1)));
	}
	return ~crc;
}

static void
mkid(uint8_t *id, uint32_t n)
{
	memset(id, 0xa5, TOKEN_ID_LEN);
	id[0] = (uint8_t)(n >> 24);
	id[1] = (uint8_t)(n >> 16);
	id[2] = (uint8_t)(n >> 8);
	id[3] = (uint8_t)n;
}

/* Set a record's CRC: of its first 28 bytes, in its last 4. */
static void
recrc(uint8_t *rec)
{
	uint32_t	crc;
	int		i;

	crc = crc32_bits(rec, 28);
	for (i = 0; i < 4; i++)
		rec[28 + i] = (uint8_t)(crc >> (24 - 8 * i));
}

/* A record as documented: id, expiry, type, three zeros, CRC. */
static void
mkrec(uint8_t *rec, uint32_t n, int64_t expires, int type)
{
	uint64_t	e = (uint64_t)expires;
	int		i;

	memset(rec, 0, REC_LEN);
	mkid(rec, n);
	for (i = 0; i < 8; i++)
		rec[16 + i] = (uint8_t)(e >> (56 - 8 * i));
	rec[24] = (uint8_t)type;
	recrc(rec);
}

static const uint8_t	header[HEADER_LEN] = { 'V', 'C', 'D', 'S', 'T', 0, 0,
			    1 };

static void
rm_state(void)
{
	unlink(file);
	unlink(tmpname);
	rmdir(file);
}

static void
put(const void *p, size_t len, mode_t mode)
{
	int	fd;

	rm_state();
	if ((fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, mode)) == -1 ||
	    fchmod(fd, mode) == -1 ||
	    (len > 0 && write(fd, p, len) != (ssize_t)len)) {
		perror(file);
		exit(1);
	}
	close(fd);
}

/* A state file of header and the records of ids 1..n, expiring at e[i]. */
static size_t
build(uint8_t *buf, const int64_t *e, int n)
{
	int	i;

	memcpy(buf, header, HEADER_LEN);
	for (i = 0; i < n; i++)
		mkrec(buf + HEADER_LEN + i * REC_LEN, (uint32_t)i + 1, e[i], 1);
	return HEADER_LEN + (size_t)n * REC_LEN;
}

static long long
fsize(const char *path)
{
	struct stat	st;

	return stat(path, &st) == -1 ? -1 : (long long)st.st_size;
}

static int
dead(struct statedb *db, uint32_t n)
{
	uint8_t	id[TOKEN_ID_LEN];

	mkid(id, n);
	return statedb_dead(db, id);
}

static int
use(struct statedb *db, uint32_t n, int64_t expires, time_t now)
{
	uint8_t	id[TOKEN_ID_LEN];

	mkid(id, n);
	errno = 0;
	return statedb_use(db, id, expires, now);
}

static int
revoke_id(struct statedb *db, uint32_t n, int64_t expires, time_t now)
{
	uint8_t	id[TOKEN_ID_LEN];

	mkid(id, n);
	errno = 0;
	return statedb_revoke(db, id, expires, now);
}

static int
has_text(const char *s, const char *want)
{
	return strstr(s, want) != NULL;
}

static int
refused(const char *want)
{
	struct statedb	*db;

	err[0] = '\0';
	if ((db = statedb_open(dir, NOW, err, sizeof err)) != NULL) {
		statedb_close(db);
		printf("#   opened\n");
		return 0;
	}
	if (!has_text(err, file) || !has_text(err, want) ||
	    strchr(err, '\n') != NULL) {
		printf("#   err \"%s\"\n", err);
		return 0;
	}
	return 1;
}

static void
test_format(void)
{
	struct statedb	*db;
	struct stat	 st;
	uint8_t		 buf[256], rec[REC_LEN];
	int		 fd;

	is_int(crc32_bits((const uint8_t *)"123456789", 9), 0xcbf43926,
	    "the test's CRC-32 is the standard one");

	rm_state();
	db = statedb_open(dir, NOW, err, sizeof err);
	ok(db != NULL, "a missing file is created");
	ok(stat(file, &st) == 0 && S_ISREG(st.st_mode) &&
	    (st.st_mode & 07777) == 0600, "mode 0600");
	is_int(fsize(file), HEADER_LEN, "it holds the header only");
	fd = open(file, O_RDONLY);
	ok(fd != -1 && read(fd, buf, sizeof buf) == HEADER_LEN &&
	    memcmp(buf, header, HEADER_LEN) == 0,
	    "the header is as documented");
	if (fd != -1)
		close(fd);
	is_int(statedb_count(db), 0, "no ids");

	is_int(use(db, 1, NOW + 60, NOW), 0, "a use is accepted");
	is_int(fsize(file), HEADER_LEN + REC_LEN, "and appended");
	mkrec(rec, 1, NOW + 60, 1);
	fd = open(file, O_RDONLY);
	ok(fd != -1 && pread(fd, buf, REC_LEN, HEADER_LEN) == REC_LEN &&
	    memcmp(buf, rec, REC_LEN) == 0, "a used token's record is as "
	    "documented");
	is_int(revoke_id(db, 2, NOW + 3600, NOW), 0,
	    "a revocation is accepted");
	mkrec(rec, 2, NOW + 3600, 2);
	ok(fd != -1 && pread(fd, buf, REC_LEN, HEADER_LEN + REC_LEN) ==
	    REC_LEN && memcmp(buf, rec, REC_LEN) == 0, "a revoked session's "
	    "record is as documented");
	if (fd != -1)
		close(fd);
	statedb_close(db);
	statedb_close(NULL);	/* must not crash: no ok line */
}

static void
test_restart(void)
{
	struct statedb	*db;
	long long	 size;

	rm_state();
	db = statedb_open(dir, NOW, err, sizeof err);
	is_int(use(db, 1, NOW + 60, NOW), 0, "first use accepted");
	is_int(statedb_dead(db, (uint8_t[TOKEN_ID_LEN]){ 0 }), 0,
	    "an unknown id is not dead");
	is_int(dead(db, 1), 1, "a used id is dead");
	is_int(use(db, 1, NOW + 60, NOW), -1, "a replay is refused");
	is_int(errno, EEXIST, "errno EEXIST");
	is_int(revoke_id(db, 2, NOW + 600, NOW), 0, "a session revoked");
	is_int(dead(db, 2), 1, "a revoked id is dead");
	size = fsize(file);
	is_int(revoke_id(db, 2, NOW + 600, NOW), 0, "revoking it again: 0");
	is_int(revoke_id(db, 1, NOW + 60, NOW), 0, "revoking a used id: 0");
	is_int(fsize(file), size, "and nothing more was written");
	is_int(use(db, 2, NOW + 600, NOW), -1, "a revoked id cannot be used");
	is_int(errno, EEXIST, "errno EEXIST");
	is_int(use(db, 3, NOW, NOW), -1, "an id expiring at open time: "
	    "refused");
	is_int(errno, ESTALE, "errno ESTALE");
	is_int(revoke_id(db, 3, NOW - 1, NOW), -1, "a revocation too");
	is_int(errno, ESTALE, "errno ESTALE");
	is_int(dead(db, 3), 0, "and it is not dead");
	is_int(statedb_count(db), 2, "two ids held");
	statedb_close(db);

	db = statedb_open(dir, NOW + 30, err, sizeof err);
	ok(db != NULL, "reopened (a restart)");
	is_int(statedb_count(db), 2, "two ids held still");
	is_int(dead(db, 1), 1, "the used id is still dead");
	is_int(dead(db, 2), 1, "the revoked id is still dead");
	is_int(use(db, 1, NOW + 60, NOW + 30), -1, "a replay after a "
	    "restart is refused");
	is_int(errno, EEXIST, "errno EEXIST");
	statedb_expire(db, NOW + 60);
	is_int(statedb_count(db), 1, "expired at its time");
	is_int(dead(db, 1), 0, "and forgotten");
	is_int(use(db, 1, NOW + 60, NOW + 60), -1, "but still refused by "
	    "the horizon");
	is_int(errno, ESTALE, "errno ESTALE");
	is_int(use(db, 4, NOW + 120, NOW + 60), 0, "a new id accepted");
	statedb_close(db);

	db = statedb_open(dir, NOW + 60, err, sizeof err);
	is_int(statedb_count(db), 2, "after another restart: two ids");
	ok(dead(db, 2) && dead(db, 4) && !dead(db, 1), "the right two");
	statedb_close(db);
}

static void
test_expired(void)
{
	struct statedb	*db;
	uint8_t		 buf[1024];
	size_t		 len;
	int64_t		 e1[] = { NOW - 1000, NOW + 10, NOW, NOW + 20,
			    NOW - 1, NOW + 30 };
	int64_t		 e2[] = { NOW - 1000, NOW + 10, NOW, NOW + 20,
			    NOW - 1, NOW + 30, NOW - 5 };

	len = build(buf, e1, 6);
	put(buf, len, 0600);
	db = statedb_open(dir, NOW, err, sizeof err);
	ok(db != NULL, "a file with expired records opens");
	is_int(statedb_count(db), 3, "the expired records were skipped");
	ok(!dead(db, 1) && dead(db, 2) && !dead(db, 3) && dead(db, 4) &&
	    !dead(db, 5) && dead(db, 6), "the live ones are dead ids");
	is_int(fsize(file), (long long)len, "as many dead as live: not "
	    "rewritten");
	statedb_close(db);

	len = build(buf, e2, 7);
	put(buf, len, 0600);
	db = statedb_open(dir, NOW, err, sizeof err);
	is_int(statedb_count(db), 3, "four expired, three live");
	is_int(fsize(file), HEADER_LEN + 3 * REC_LEN, "more dead than live: "
	    "compacted at open");
	is_int(fsize(tmpname), -1, "no temporary file is left");
	statedb_close(db);
	db = statedb_open(dir, NOW, err, sizeof err);
	ok(db != NULL && statedb_count(db) == 3 && dead(db, 2) &&
	    dead(db, 4) && dead(db, 6), "the compacted file holds them");
	statedb_close(db);

	/* The same id twice (a record written but not known to be). */
	len = build(buf, e1, 6);
	memcpy(buf + len, buf + HEADER_LEN + REC_LEN, REC_LEN);
	memcpy(buf + len + REC_LEN, buf + HEADER_LEN + REC_LEN, REC_LEN);
	put(buf, len + 2 * REC_LEN, 0600);
	db = statedb_open(dir, NOW, err, sizeof err);
	is_int(statedb_count(db), 3, "duplicates are one id");
	is_int(fsize(file), HEADER_LEN + 3 * REC_LEN, "and compacted away");
	statedb_close(db);
}

static void
test_torn(void)
{
	struct statedb	*db;
	uint8_t		 buf[1024];
	size_t		 len;
	int64_t		 e[] = { NOW + 10, NOW + 20, NOW + 30 };

	len = build(buf, e, 3);
	put(buf, len + 10, 0600);
	db = statedb_open(dir, NOW, err, sizeof err);
	ok(db != NULL, "a file with a short last record opens");
	is_int(statedb_count(db), 3, "the whole records are kept");
	is_int(fsize(file), (long long)len, "the short one was cut off");
	is_int(use(db, 9, NOW + 60, NOW), 0, "a use is appended after them");
	is_int(fsize(file), (long long)len + REC_LEN, "at the right place");
	statedb_close(db);
	db = statedb_open(dir, NOW, err, sizeof err);
	is_int(statedb_count(db), 4, "and read back");
	statedb_close(db);

	len = build(buf, e, 3);
	buf[len - 20] ^= 0x10;
	put(buf, len, 0600);
	db = statedb_open(dir, NOW, err, sizeof err);
	ok(db != NULL, "a file with a damaged last record opens");
	is_int(statedb_count(db), 2, "the good records are kept");
	ok(dead(db, 1) && dead(db, 2) && !dead(db, 3), "the right ones");
	is_int(fsize(file), (long long)len - REC_LEN,
	    "the damaged one was cut off");
	statedb_close(db);

	len = build(buf, e, 3);
	memset(buf + len - REC_LEN, 0, REC_LEN);
	put(buf, len, 0600);
	db = statedb_open(dir, NOW, err, sizeof err);
	ok(db != NULL && statedb_count(db) == 2 &&
	    fsize(file) == (long long)len - REC_LEN,
	    "a last record of zeros (size grown, data lost) is cut off");
	statedb_close(db);

	build(buf, e, 1);
	put(buf, HEADER_LEN + 5, 0600);
	db = statedb_open(dir, NOW, err, sizeof err);
	ok(db != NULL && statedb_count(db) == 0 &&
	    fsize(file) == HEADER_LEN, "a lone short record is cut off");
	statedb_close(db);

	len = build(buf, e, 3);
	buf[HEADER_LEN + REC_LEN + 3] ^= 1;
	put(buf, len, 0600);
	ok(refused("record 2 of 3 is damaged"), "a damaged record before the "
	    "last is refused: %s", err);
	is_int(fsize(file), (long long)len, "and the file is left alone");

	len = build(buf, e, 3);
	buf[len - 1] ^= 1;
	put(buf, len + 7, 0600);
	ok(refused("damaged"), "a damaged record before a short one is "
	    "refused");

	len = build(buf, e, 2);
	buf[HEADER_LEN + 25] = 1;
	recrc(buf + HEADER_LEN);
	memcpy(buf + len, buf + HEADER_LEN + REC_LEN, REC_LEN);
	put(buf, len + REC_LEN, 0600);
	ok(refused("damaged"), "a record with a set zero byte is damaged");
	len = build(buf, e, 2);
	mkrec(buf + HEADER_LEN, 1, NOW + 10, 3);
	memcpy(buf + len, buf + HEADER_LEN + REC_LEN, REC_LEN);
	put(buf, len + REC_LEN, 0600);
	ok(refused("damaged"), "a record of an unknown type is damaged");
}

static void
test_refused(void)
{
	struct statedb	*db, *db2;
	uint8_t		 buf[64];
	char		 other[160], missing[160];
	int64_t		 e[] = { NOW + 10 };

	put("this is not a virtconsoled state file at all", 44, 0600);
	ok(refused("not a virtconsoled state file"), "garbage is refused: %s",
	    err);
	put("VCDSX\0\0\1", 8, 0600);
	ok(refused("not a virtconsoled state file"), "a wrong magic is "
	    "refused");
	memcpy(buf, header, HEADER_LEN);
	buf[7] = 2;
	put(buf, HEADER_LEN, 0600);
	ok(refused("format version 2, not 1"), "another version is refused: "
	    "%s", err);
	put("VCX", 3, 0600);
	ok(refused("not a virtconsoled state file"), "a short file that is "
	    "not a header's start is refused");

	put("VCD", 3, 0600);
	db = statedb_open(dir, NOW, err, sizeof err);
	ok(db != NULL && fsize(file) == HEADER_LEN, "a header cut short "
	    "(a crash at creation) is written afresh");
	statedb_close(db);
	put("", 0, 0600);
	db = statedb_open(dir, NOW, err, sizeof err);
	ok(db != NULL && fsize(file) == HEADER_LEN, "so is an empty file");
	statedb_close(db);

	build(buf, e, 1);
	put(buf, HEADER_LEN + REC_LEN, 0644);
	ok(refused("mode 0644 gives group or others access; chmod 600 it"),
	    "mode 0644 is refused: %s", err);
	put(buf, HEADER_LEN + REC_LEN, 0604);
	ok(refused("mode 0604"), "mode 0604 is refused");
	put(buf, HEADER_LEN + REC_LEN, 0600);
	if (geteuid() == 0) {
		ok(chown(file, 12345, 0) == 0 && refused("owned by uid 12345"),
		    "another user's file is refused: %s", err);
		/* The daemon's user after a privilege drop: it owns dir. */
		ok(chown(dir, 12345, 0) == 0 && chmod(dir, 0700) == 0 &&
		    (db = statedb_open(dir, NOW, err, sizeof err)) != NULL,
		    "the file of the user who owns the directory is taken");
		statedb_close(db);
		ok(chmod(dir, 0770) == 0 && refused("owned by uid 12345"),
		    "not when the directory's group may write it too");
		if (chown(dir, 0, 0) == -1 || chmod(dir, 0700) == -1)
			perror("chown");
	} else {
		tap_skip("not root: another user's file is not tested");
		tap_skip("not root: the directory owner's file is not tested");
		tap_skip("not root: a group-writable directory is not tested");
	}

	rm_state();
	snprintf(other, sizeof other, "%s/other", dir);
	put(buf, 0, 0600);
	rename(file, other);
	if (symlink("other", file) == -1)
		perror("symlink");
	ok(refused("is a symbolic link"), "a symbolic link is refused: %s",
	    err);
	is_int(fsize(other), 0, "and its target is left alone");
	unlink(file);
	unlink(other);
	if (symlink("nowhere", file) == -1)
		perror("symlink");
	ok(refused("is a symbolic link"), "a dangling one too");
	unlink(file);

	if (mkdir(file, 0700) == -1)
		perror("mkdir");
	ok(refused(""), "a directory is refused: %s", err);
	rmdir(file);
	if (mkfifo(file, 0600) == -1)
		perror("mkfifo");
	ok(refused("not a regular file"), "a FIFO is refused: %s", err);
	unlink(file);

	snprintf(missing, sizeof missing, "%s/missing", dir);
	err[0] = '\0';
	db = statedb_open(missing, NOW, err, sizeof err);
	ok(db == NULL && has_text(err, missing), "a missing directory is "
	    "refused: %s", err);

	rm_state();
	db = statedb_open(dir, NOW, err, sizeof err);
	ok(db != NULL, "opened");
	ok(refused("in use by another process"), "a second opener is "
	    "refused: %s", err);
	is_int(use(db, 1, NOW + 10, NOW), 0, "one use");
	is_int(use(db, 2, NOW + 10, NOW), 0, "another");
	statedb_expire(db, NOW + 10);
	is_int(fsize(file), HEADER_LEN, "compacted to the header");
	ok(refused("in use by another process"), "the compacted file is "
	    "locked too");
	statedb_close(db);
	db2 = statedb_open(dir, NOW, err, sizeof err);
	ok(db2 != NULL, "after the close, it opens");
	statedb_close(db2);
}

static void
test_compact(void)
{
	struct statedb	*db;
	struct stat	 st;
	ino_t		 ino;
	uint32_t	 n;

	rm_state();
	db = statedb_open(dir, NOW, err, sizeof err);
	for (n = 1; n <= 10; n++)
		use(db, n, NOW + 10, NOW);
	for (n = 11; n <= 15; n++)
		revoke_id(db, n, NOW + 100, NOW);
	is_int(fsize(file), HEADER_LEN + 15 * REC_LEN, "15 records");
	stat(file, &st);
	ino = st.st_ino;
	statedb_expire(db, NOW + 9);
	stat(file, &st);
	ok(st.st_ino == ino && fsize(file) == HEADER_LEN + 15 * REC_LEN,
	    "nothing expired: not rewritten");
	statedb_expire(db, NOW + 50);
	is_int(statedb_count(db), 5, "ten expired");
	is_int(fsize(file), HEADER_LEN + 5 * REC_LEN, "compaction shrank the "
	    "file");
	is_int(fsize(tmpname), -1, "no temporary file is left");
	stat(file, &st);
	ok(st.st_ino != ino, "a new file took the name");
	is_int(use(db, 16, NOW + 100, NOW + 50), 0, "a use after compaction");
	is_int(fsize(file), HEADER_LEN + 6 * REC_LEN, "is appended to the new "
	    "file");
	statedb_close(db);
	db = statedb_open(dir, NOW + 50, err, sizeof err);
	is_int(statedb_count(db), 6, "reopened: six ids");
	ok(!dead(db, 1) && dead(db, 11) && dead(db, 15) && dead(db, 16),
	    "the right ones");
	statedb_expire(db, NOW + 100);
	is_int(statedb_count(db), 0, "all expired");
	is_int(fsize(file), HEADER_LEN, "the file is back to its header");
	statedb_close(db);
}

static void
test_full(void)
{
	struct statedb	*db;
	double		 t0, t1, t2, t3;
	uint32_t	 n;
	long long	 size;
	int		 bad = 0;

	rm_state();
	db = statedb_open(dir, NOW, err, sizeof err);
	t0 = ms();
	for (n = 0; n < TOKEN_CACHE_MAX; n++) {
		if (use(db, n, n % 4 == 0 ? NOW + 600 : NOW + 60, NOW) != 0)
			bad++;
	}
	t1 = ms();
	printf("# %d uses, each written and synced, in %.0f ms\n",
	    TOKEN_CACHE_MAX, t1 - t0);
	is_int(bad, 0, "%d distinct ids accepted", TOKEN_CACHE_MAX);
	size = fsize(file);
	is_int(use(db, TOKEN_CACHE_MAX, NOW + 600, NOW), -1, "one more is "
	    "refused");
	is_int(errno, ENOSPC, "errno ENOSPC");
	is_int(revoke_id(db, TOKEN_CACHE_MAX, NOW + 600, NOW), -1,
	    "a revocation too");
	is_int(errno, ENOSPC, "errno ENOSPC");
	is_int(fsize(file), size, "nothing was written");
	is_int(use(db, 7, NOW + 600, NOW), -1, "a replay in a full cache");
	is_int(errno, EEXIST, "is still a replay");
	is_int(revoke_id(db, 7, NOW + 600, NOW), 0, "revoking a dead id in a "
	    "full cache: 0");
	statedb_close(db);

	t1 = ms();
	db = statedb_open(dir, NOW + 1, err, sizeof err);
	t2 = ms();
	printf("# reopened with %d live ids in %.0f ms\n", TOKEN_CACHE_MAX,
	    t2 - t1);
	is_int(statedb_count(db), TOKEN_CACHE_MAX, "all held after a restart");
	is_int(use(db, TOKEN_CACHE_MAX, NOW + 600, NOW + 1), -1, "still full");
	is_int(errno, ENOSPC, "errno ENOSPC");
	is_int(use(db, TOKEN_CACHE_MAX, NOW + 600, NOW + 60), 0, "once some "
	    "have expired, a new one is accepted");
	is_int(statedb_count(db), TOKEN_CACHE_MAX / 4 + 1, "the expired ones "
	    "were dropped");
	is_int(use(db, 4, NOW + 600, NOW + 60), -1, "a live id is still "
	    "refused");
	is_int(errno, EEXIST, "errno EEXIST");
	t2 = ms();
	statedb_expire(db, NOW + 61);
	t3 = ms();
	printf("# expire and compact %d records in %.0f ms\n",
	    TOKEN_CACHE_MAX + 1, t3 - t2);
	is_int(fsize(file), HEADER_LEN + (TOKEN_CACHE_MAX / 4 + 1) * REC_LEN,
	    "compacted to the live quarter");
	statedb_close(db);
	db = statedb_open(dir, NOW + 61, err, sizeof err);
	is_int(statedb_count(db), TOKEN_CACHE_MAX / 4 + 1, "reopened: the "
	    "live quarter");
	statedb_expire(db, NOW + 600);
	is_int(statedb_count(db), 0, "all dropped at the end");
	is_int(fsize(file), HEADER_LEN, "and the file is back to its header");
	statedb_close(db);
}

static void
test_eio(void)
{
	struct statedb	*db;
	struct rlimit	 old, rl;
	struct stat	 st;
	ino_t		 ino;
	long long	 size;
	int		 r1, r2, e1, e2, d1, d2;

	/* Files may not grow past RLIMIT_FSIZE: writes fail with EFBIG. */
	signal(SIGXFSZ, SIG_IGN);
	rm_state();
	db = statedb_open(dir, NOW, err, sizeof err);
	is_int(use(db, 1, NOW + 60, NOW), 0, "a use");
	size = fsize(file);
	getrlimit(RLIMIT_FSIZE, &old);
	rl = old;
	rl.rlim_cur = (rlim_t)size;
	/* Nothing is printed meanwhile: the limit applies to stdout too. */
	setrlimit(RLIMIT_FSIZE, &rl);
	r1 = use(db, 2, NOW + 60, NOW);
	e1 = errno;
	d1 = dead(db, 2);
	r2 = revoke_id(db, 3, NOW + 60, NOW);
	e2 = errno;
	d2 = dead(db, 3);
	setrlimit(RLIMIT_FSIZE, &old);
	is_int(r1, -1, "a use that cannot be written fails");
	is_int(e1, EIO, "errno EIO");
	is_int(d1, 0, "and the id is not dead");
	is_int(r2, -1, "a revocation too");
	is_int(e2, EIO, "errno EIO");
	is_int(d2, 0, "not dead either");
	is_int(statedb_count(db), 1, "one id held still");
	is_int(fsize(file), size, "the file did not grow");
	is_int(use(db, 2, NOW + 60, NOW), 0, "once it can be written, the id "
	    "is accepted");
	is_int(use(db, 4, NOW + 10, NOW), 0, "another");
	is_int(use(db, 5, NOW + 10, NOW), 0, "and another");
	is_int(use(db, 6, NOW + 10, NOW), 0, "and another");
	is_int(use(db, 8, NOW + 10, NOW), 0, "and another");

	stat(file, &st);
	ino = st.st_ino;
	size = fsize(file);
	rl.rlim_cur = HEADER_LEN;
	setrlimit(RLIMIT_FSIZE, &rl);
	statedb_expire(db, NOW + 10);
	setrlimit(RLIMIT_FSIZE, &old);
	stat(file, &st);
	ok(st.st_ino == ino && fsize(file) == size, "a failed compaction "
	    "leaves the file as it was");
	is_int(fsize(tmpname), -1, "and no temporary file");
	is_int(use(db, 7, NOW + 60, NOW + 10), 0, "the old file is still "
	    "appended to");
	statedb_expire(db, NOW + 10);
	is_int(fsize(file), HEADER_LEN + 3 * REC_LEN, "the next expiry "
	    "compacts it");
	statedb_close(db);
	db = statedb_open(dir, NOW + 10, err, sizeof err);
	ok(db != NULL && statedb_count(db) == 3 && dead(db, 1) &&
	    dead(db, 2) && dead(db, 7) && !dead(db, 3), "reopened: the right "
	    "ids");
	statedb_close(db);
}

int
main(void)
{
	struct stat	st;
	double		t0;
	const char	*base = "/dev/shm";

	if (stat(base, &st) == -1 || !S_ISDIR(st.st_mode) ||
	    access(base, W_OK) == -1)
		base = "/tmp";
	snprintf(dir, sizeof dir, "%s/vcd-test-statedb.XXXXXX", base);
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(file, sizeof file, "%s/tokens", dir);
	snprintf(tmpname, sizeof tmpname, "%s/tokens.tmp", dir);
	umask(022);
	t0 = ms();

	test_format();
	test_restart();
	test_expired();
	test_torn();
	test_refused();
	test_compact();
	test_full();
	test_eio();

	printf("# in %s, %.0f ms\n", dir, ms() - t0);
	rm_state();
	rmdir(dir);
	return tap_done();
}
