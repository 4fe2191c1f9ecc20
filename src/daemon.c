/*
 * Daemon plumbing: detach from the terminal, and tell the waiting parent
 * when start-up is over.
 *
 * The parent does not exit at fork time: it waits on a pipe until the
 * daemon has its pid file, its event base and its signals (daemon_ready()
 * writes one byte), or dies trying (the pipe closes without a byte).  So
 * `virtconsoled` in a shell or an init script exits 0 only for a daemon
 * that is really up, and a refusal such as "already running" reaches the
 * terminal, because the daemon keeps stderr until it is ready.
 */
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "virtconsoled.h"

static int	daemon_ready_fd = -1;

static void
daemon_null_fd(int target)
{
	int	fd;

	if ((fd = open("/dev/null", O_RDWR)) == -1)
		fatal("open /dev/null");
	if (fd != target) {
		if (dup2(fd, target) == -1)
			fatal("dup2");
		close(fd);
	}
}

/* Fork twice and setsid, so the daemon is no session leader. */
int
daemon_detach(void)
{
	int	p[2];
	pid_t	pid;
	char	c;
	ssize_t	n;

	if (pipe2(p, O_CLOEXEC) == -1)
		fatal("pipe");
	switch ((pid = fork())) {
	case -1:
		fatal("fork");
	case 0:
		break;
	default:
		close(p[1]);
		/* Reap the intermediate child; the daemon is its child. */
		while (waitpid(pid, NULL, 0) == -1 && errno == EINTR)
			;
		do {
			n = read(p[0], &c, 1);
		} while (n == -1 && errno == EINTR);
		_exit(n == 1 ? 0 : 1);
	}
	close(p[0]);
	if (setsid() == -1)
		fatal("setsid");
	switch (fork()) {
	case -1:
		fatal("fork");
	case 0:
		break;
	default:
		_exit(0);
	}
	if (chdir("/") == -1)
		fatal("chdir /");
	daemon_null_fd(STDIN_FILENO);
	daemon_null_fd(STDOUT_FILENO);
	daemon_ready_fd = p[1];
	return 0;
}

/* Start-up is over: release the parent, and let go of the terminal. */
void
daemon_ready(void)
{
	char	c = 0;

	if (daemon_ready_fd == -1)
		return;
	if (write(daemon_ready_fd, &c, 1) != 1)
		log_warn("cannot tell the parent we are ready");
	close(daemon_ready_fd);
	daemon_ready_fd = -1;
	log_stderr_echo(0);
	daemon_null_fd(STDERR_FILENO);
}
