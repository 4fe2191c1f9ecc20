/*
 * Unit tests of the pid file: written with our pid, refused while another
 * process holds it, a stale file replaced with a warning, symlinks refused,
 * removed at release by the writer only.
 */
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "virtconsoled.h"
#include "tap.h"

static char dir[] = "/tmp/vcd-test-pidfile.XXXXXX";

/*
 * Read the pid file as another program would.  A classic fcntl lock would
 * be dropped by this process opening and closing the file; the pid file
 * uses an open-file-description lock, and this checks that too.
 */
static long
read_pid(const char *path)
{
	char	buf[64];
	FILE	*fp;
	long	pid = -1;

	if ((fp = fopen(path, "r")) == NULL)
		return -1;
	if (fgets(buf, sizeof buf, fp) != NULL)
		pid = strtol(buf, NULL, 10);
	fclose(fp);
	return pid;
}

static int
file_contains(const char *path, const char *needle)
{
	char	buf[8192];
	FILE	*fp;
	size_t	n;

	if ((fp = fopen(path, "r")) == NULL)
		return 0;
	n = fread(buf, 1, sizeof buf - 1, fp);
	buf[n] = '\0';
	fclose(fp);
	return strstr(buf, needle) != NULL;
}

/* Try to acquire in a child; returns the child's exit code. */
static int
child_acquire(const char *path, const char *errlog)
{
	struct pidfile	*pf;
	char		 err[512];
	pid_t		 pid;
	int		 status;
	FILE		*fp;

	if ((pid = fork()) == 0) {
		pf = pidfile_acquire(path, err, sizeof err);
		if (pf != NULL)
			_exit(0);
		if ((fp = fopen(errlog, "w")) != NULL) {
			fputs(err, fp);
			fclose(fp);
		}
		_exit(3);
	}
	waitpid(pid, &status, 0);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int
main(void)
{
	struct pidfile	*pf;
	char		 path[256], errlog[256], logpath[256], sub[256];
	char		 want[512], err[512];
	struct stat	 st;
	pid_t		 pid;
	int		 status, fd;

	if (mkdtemp(dir) == NULL)
		return 1;
	snprintf(path, sizeof path, "%s/vcd.pid", dir);
	snprintf(errlog, sizeof errlog, "%s/err", dir);
	snprintf(logpath, sizeof logpath, "%s/log", dir);
	log_init(LOG_TARGET_FILE, LOG_LEVEL_DEBUG, logpath);

	pf = pidfile_acquire(path, err, sizeof err);
	ok(pf != NULL, "acquire a fresh pid file");
	is_int(read_pid(path), getpid(), "it holds our pid");
	ok(stat(path, &st) == 0 && (st.st_mode & 0777) == 0644,
	    "mode 0644");
	ok(!file_contains(logpath, "stale"), "no stale warning for a new file");

	is_int(child_acquire(path, errlog), 3, "a second instance is refused");
	snprintf(want, sizeof want, "already running (pid %ld holds the pid "
	    "file %s)", (long)getpid(), path);
	ok(file_contains(errlog, want), "with a clear message naming the pid");
	is_int(read_pid(path), getpid(), "the file is untouched");

	/* The copy a forked child inherits must not remove the file. */
	if ((pid = fork()) == 0) {
		pidfile_release(pf);
		_exit(0);
	}
	waitpid(pid, &status, 0);
	ok(access(path, F_OK) == 0, "a child's release leaves the file alone");
	is_int(child_acquire(path, errlog), 3,
	    "and the lock is still held after the child closed its copy");

	pidfile_release(pf);
	ok(access(path, F_OK) == -1 && errno == ENOENT,
	    "release removes the file");

	/* A stale file: content but no lock holder. */
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	ok(fd != -1 && write(fd, "99999\n", 6) == 6, "plant a stale pid file");
	close(fd);
	pf = pidfile_acquire(path, err, sizeof err);
	ok(pf != NULL, "a stale pid file is replaced, not refused");
	is_int(read_pid(path), getpid(), "it now holds our pid");
	ok(file_contains(logpath, "replacing stale pid file"),
	    "with a warning");
	is_int(child_acquire(path, errlog), 3, "the new file is locked");
	pidfile_release(pf);

	/* Garbage content is stale too. */
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	ok(fd != -1 && write(fd, "\033[2Jjunk", 8) == 8, "plant garbage");
	close(fd);
	pf = pidfile_acquire(path, err, sizeof err);
	ok(pf != NULL, "a garbage pid file is replaced");
	ok(file_contains(logpath, "\\x1b[2Jjunk"), "its content is escaped "
	    "in the log");
	pidfile_release(pf);

	/* A symlink is never followed. */
	ok(symlink("/etc/passwd", path) == 0, "plant a symlink");
	pf = pidfile_acquire(path, err, sizeof err);
	ok(pf == NULL, "a symlinked pid file is refused");
	ok(strstr(err, "symbolic link") != NULL, "saying why: %s", err);
	unlink(path);

	/* A missing runtime directory is created. */
	snprintf(sub, sizeof sub, "%s/run/vcd.pid", dir);
	pf = pidfile_acquire(sub, err, sizeof err);
	ok(pf != NULL, "the pid file's directory is created if missing");
	pidfile_release(pf);
	snprintf(sub, sizeof sub, "%s/run", dir);
	rmdir(sub);

	/* A directory in the way. */
	ok(mkdir(path, 0755) == 0, "plant a directory");
	pf = pidfile_acquire(path, err, sizeof err);
	ok(pf == NULL, "a directory at the path is refused (%s)", err);
	rmdir(path);

	unlink(errlog);
	unlink(logpath);
	rmdir(dir);
	return tap_done();
}
