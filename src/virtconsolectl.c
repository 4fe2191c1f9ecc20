/*
 * virtconsolectl: the operator's command-line client.  One program, one
 * table of subcommands; each subcommand is a function of its own.
 *
 * usage: virtconsolectl [-f config] [-s socket] command [args]
 *
 * attach [--view] [--replay BYTES] GUEST [ALIAS]
 *	Connect this terminal to GUEST's console ALIAS (default: its first)
 *	through the daemon's attach socket (attach_socket from the config
 *	file): one request line, ATTACH GUEST [ALIAS] [view] [replay=BYTES],
 *	then raw bytes.  --replay first shows the last BYTES of the
 *	console's history; --view asks for a viewer, whose typing the
 *	daemon drops (it says so once) but whose escape key ends it.  -s
 *	names a guest's own socket instead, spoken to raw with no request
 *	line: GUEST is then optional and only labels the session, and an
 *	ALIAS, --view or --replay is a usage error; so it is when
 *	attach_socket is none, where SOCKET_DIR/GUEST is used.  A terminal
 *	on stdin is put in raw mode and restored on every exit; otherwise
 *	bytes are relayed as they are, for scripts.  The escape key
 *	(escape in the config, ^Q by default) ends the session: the bytes
 *	typed before it and the key itself go to the daemon, which answers
 *	with its "disconnected: escape key" notice; the client waits at
 *	most 1 s for the daemon to close, then exits even if it did not.
 *	When stdin reaches end of file, the client keeps printing the
 *	guest's output until the daemon closes or 2 s pass without any,
 *	then exits.  The socket is never half-closed: the daemon ends a
 *	session whose client closes its side.
 *
 * token GUEST [ALIAS] [--ttl SECONDS] [--view] [--history] [--label TEXT]
 * token --all [--ttl SECONDS] [--view] [--history] [--label TEXT]
 *	Print one line: a token for the web front door, valid once, for
 *	token_ttl seconds (or --ttl), for GUEST (by UUID when it has the
 *	form of one, else by name; the token carries the UUID) and ALIAS
 *	(default: any console of it), or for every guest with --all.  It
 *	gives a writer with history, or with --view a viewer, who reads the
 *	history only with --history too.  --label names who it is for (at
 *	most 64 bytes, no control characters), shown in list and the logs.
 *	It is signed with the key in token_secret_file and names this
 *	daemon by state_dir/audience (each created, mode 0600, if missing).
 *	The guest is looked up read-only through libvirt at uri.
 *
 * status, list, kick [--revoke] [--viewers] GUEST [ALIAS], reload  [--json]
 *	Ask the daemon through its control socket (control_socket from the
 *	config, or -s SOCKET): status (version, uptime, libvirt connection,
 *	counts), list (every session: guest, console, state, client, bytes
 *	each way, idle seconds, role, label), kick (end a guest's sessions,
 *	or one console's, writer and viewers, with "kicked by
 *	administrator"; --viewers only the viewers; --revoke also revokes
 *	the browser sessions behind the web clients it ends, so that their
 *	cookies cannot reconnect), reload (as SIGHUP; a
 *	config with errors is refused and reported).  Human output, or JSON
 *	with --json.  Exit 1 with the daemon's error on stderr.
 *
 * history [--from RUN:OFFSET] [--follow] [--raw] GUEST [ALIAS]
 *	Print what the daemon kept of a console's output (control.c's
 *	history command, asked page by page).  On a terminal, control bytes
 *	are shown as cat -v does and the losses are told in line; otherwise,
 *	or with --raw, the bytes go out unchanged and the losses to stderr.
 *	--follow then prints the live output, like tail -f: a viewer through
 *	the attach socket from the position right after the history's last
 *	byte (ATTACH GUEST [ALIAS] view from=RUN:OFFSET), shown the same way,
 *	until the daemon closes (its notice ends the output, as for attach)
 *	or a signal.  That part is the attach socket's raw stream: a loss in
 *	it, or a new run, is not told.  stdin is never read.
 *
 * Exit status
 *	0	the session ended: escape key, the daemon closed (with a
 *		"disconnected:" notice or none), stdin at end of file and
 *		the console quiet, or stdout closed by its reader (attach,
 *		history --follow)
 *	1	an error: bad configuration, unusable guest name, cannot
 *		connect, I/O error, or the daemon's last line was a
 *		"refused:" notice (console busy, guest not running, ...)
 *	2	bad command line: unknown command or option, missing or
 *		extra argument, or an option that needs the attach socket
 *		when there is none
 *	SIGINT, SIGTERM and SIGHUP restore the terminal, then end the
 *	client by the same signal (128 + N in a shell); so they end
 *	history --follow, as they end tail -f.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "virtconsoled.h"

#ifndef SYSCONFDIR
#define SYSCONFDIR "/usr/local/etc"
#endif
#define CTL_DEFAULT_CONFIG SYSCONFDIR "/virtconsoled/virtconsoled.conf"

#define CTL_ESCAPE_WAIT_MS	1000	/* after the escape key */
#define CTL_QUIET_WAIT_MS	2000	/* quiet after stdin EOF */
#define CTL_NOTICE_TAIL		256	/* kept to read the notice */
#define CTL_REFUSED		"[virtconsoled] refused: "

struct ctl {
	const char		*conf_path;	/* -f, or the default */
	int			 conf_given;	/* -f was used */
	const char		*socket;	/* -s */
	const char		*hv;		/* -H */
	struct config		*conf;
};

struct ctl_command {
	const char		*name;
	const char		*args;
	const char		*help;
	int			(*exec)(struct ctl *, int, char **);
};

enum attach_state {
	ATTACH_RELAY = 0,	/* bytes flow both ways */
	ATTACH_INPUT_EOF,	/* stdin ended: output until quiet */
	ATTACH_ESCAPED,		/* escape typed: wait for the daemon */
	ATTACH_CLOSED,		/* the daemon closed: flushing stdout */
	ATTACH_DONE,		/* leave the loop with status */
};

struct attach {
	enum attach_state	 state;
	int			 status;
	int			 sock;
	int			 sock_wr_closed; /* daemon stopped reading */
	int			 escape;
	int			 follow;	/* history --follow: no stdin */
	int			 vis;		/* show bytes as cat -v */
	int			 vis_cr;	/* CR held back by ctl_vis() */
	int64_t			 since;	/* ms: state entered, activity */
	unsigned char		 in[4096];	/* stdin -> socket */
	size_t			 in_off, in_len;
	unsigned char		 out[16384];	/* socket -> stdout */
	size_t			 out_off, out_len;
	char			 tail[CTL_NOTICE_TAIL];
	size_t			 tail_len;
};

static int	ctl_attach(struct ctl *, int, char **);
static int	ctl_token(struct ctl *, int, char **);
static int	ctl_control(struct ctl *, int, char **);
static int	ctl_history(struct ctl *, int, char **);
static int	ctl_follow(struct ctl *, const char *, const char *,
		    const char *, int);

static const struct ctl_command ctl_commands[] = {
	{ "attach", "[--view] [--replay BYTES] GUEST [ALIAS]", "connect this "
	    "terminal to a guest console (GUEST optional with -s)",
	    ctl_attach },
	{ "token", "GUEST [ALIAS] | --all [OPTIONS]", "print a single-use "
	    "web access token; OPTIONS: --ttl S, --view, --history, "
	    "--label TEXT", ctl_token },
	{ "status", "[--json]", "the daemon's version, uptime, libvirt "
	    "connection, counts", ctl_control },
	{ "list", "[--json]", "the sessions: guest, console, state, client, "
	    "bytes, idle, role, label", ctl_control },
	{ "kick", "[--revoke] [--viewers] GUEST [ALIAS] [--json]", "end a "
	    "guest's sessions (\"kicked by administrator\"); --viewers: only "
	    "the viewers; --revoke: their browser sessions too", ctl_control },
	{ "reload", "[--json]", "reload the configuration, like SIGHUP",
	    ctl_control },
	{ "metrics", "", "the daemon's metrics, in Prometheus's text format "
	    "(as metrics_listen serves them)", ctl_control },
	{ "stats", "[--json]", "residence time of console bytes in the "
	    "daemon, by door and direction: p50, p99, mean", ctl_control },
	{ "history", "[--from RUN:OFFSET] [--follow] [--raw] GUEST [ALIAS]",
	    "print what the daemon kept of a console's output; --follow: "
	    "then its live output, as a viewer", ctl_history },
};
#define CTL_NCOMMANDS (sizeof ctl_commands / sizeof ctl_commands[0])

/* The terminal, as found, while it is in raw mode. */
static struct termios		 ctl_tio;
static int			 ctl_tio_raw;

/* Set by the signal handlers, which also wake poll through a pipe. */
static volatile sig_atomic_t	 ctl_signal;
static int			 ctl_sigpipe[2] = { -1, -1 };

static void	ctl_vwarn(int, const char *, va_list) VCD_PRINTF(2, 0);
static void	ctl_warn(const char *, ...) VCD_PRINTF(1, 2);
static void	ctl_warnx(const char *, ...) VCD_PRINTF(1, 2);
static void	ctl_usage(void) VCD_NORETURN;

/* Put the terminal back; safe to call any number of times. */
static void
ctl_tty_restore(void)
{
	if (!ctl_tio_raw)
		return;
	ctl_tio_raw = 0;
	tcsetattr(STDIN_FILENO, TCSANOW, &ctl_tio);
}

static int
ctl_tty_raw(void)
{
	struct termios	tio;

	if (tcgetattr(STDIN_FILENO, &ctl_tio) == -1)
		return -1;
	tio = ctl_tio;
	cfmakeraw(&tio);
	ctl_tio_raw = 1;
	if (tcsetattr(STDIN_FILENO, TCSANOW, &tio) == -1) {
		ctl_tio_raw = 0;
		return -1;
	}
	return 0;
}

/* Messages go to a restored terminal, where newlines work again. */
static void
ctl_vwarn(int errnum, const char *fmt, va_list ap)
{
	ctl_tty_restore();
	fputs("virtconsolectl: ", stderr);
	vfprintf(stderr, fmt, ap);
	if (errnum != 0)
		fprintf(stderr, ": %s", strerror(errnum));
	fputc('\n', stderr);
}

static void
ctl_warn(const char *fmt, ...)
{
	va_list	ap;
	int	e = errno;

	va_start(ap, fmt);
	ctl_vwarn(e, fmt, ap);
	va_end(ap);
	errno = e;
}

static void
ctl_warnx(const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	ctl_vwarn(0, fmt, ap);
	va_end(ap);
}

static void
ctl_usage(void)
{
	size_t	i;

	fprintf(stderr, "usage: virtconsolectl [-f config] [-s socket] "
	    "[-H hypervisor] command [args]\ncommands:\n");
	for (i = 0; i < CTL_NCOMMANDS; i++) {
		fprintf(stderr, "  %-6s %-38s %s\n", ctl_commands[i].name,
		    ctl_commands[i].args, ctl_commands[i].help);
	}
	fprintf(stderr, "-s names the socket itself (attach: a guest's own "
	    "socket, raw, instead of\n   attach_socket; status, list, kick, "
	    "reload, history: the control socket)\n-H names the hypervisor "
	    "a guest is on, with the `hypervisor` keys (token --all: only "
	    "its guests)\n");
	exit(2);
}

static void
ctl_signal_handler(int sig)
{
	int	e = errno;

	ctl_signal = sig;
	/* A full pipe already holds a wake-up. */
	if (ctl_sigpipe[1] != -1 && write(ctl_sigpipe[1], "", 1) == -1)
		ctl_signal = sig;
	errno = e;
}

/*
 * The handlers only record the signal; the loop restores the terminal and
 * then dies of the same signal, so the caller sees what happened.  No
 * SA_RESTART: a blocked write to stdout must return to the loop too.
 */
static int
ctl_signals_init(void)
{
	struct sigaction	sa;
	int			i;

	if (pipe2(ctl_sigpipe, O_CLOEXEC | O_NONBLOCK) == -1)
		return -1;
	memset(&sa, 0, sizeof sa);
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	sa.sa_handler = ctl_signal_handler;
	for (i = 0; i < 3; i++) {
		if (sigaction(i == 0 ? SIGINT : i == 1 ? SIGTERM : SIGHUP,
		    &sa, NULL) == -1)
			return -1;
	}
	return 0;
}

static VCD_NORETURN void
ctl_signal_exit(int sig)
{
	struct sigaction	sa;

	ctl_tty_restore();
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = SIG_DFL;
	sigaction(sig, &sa, NULL);
	raise(sig);
	_exit(128 + sig);
}

/*
 * The configuration, loaded on first use.  Without -f, a missing default
 * file means the built-in defaults, as for a daemon run without one.
 */
static int
ctl_config(struct ctl *ctl)
{
	char	err[1024];

	if (ctl->conf != NULL)
		return 0;
	if (!ctl->conf_given && access(ctl->conf_path, F_OK) == -1 &&
	    errno == ENOENT) {
		ctl->conf = config_new();
		return 0;
	}
	if ((ctl->conf = config_load(ctl->conf_path, err, sizeof err)) ==
	    NULL) {
		ctl_warnx("%s", err);
		return -1;
	}
	return 0;
}

static int64_t
ctl_now_ms(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The address of the unix socket at path; -1 (said why) if too long. */
static int
ctl_sun(const char *path, struct sockaddr_un *sun)
{
	memset(sun, 0, sizeof *sun);
	sun->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof sun->sun_path) {
		ctl_warnx("socket path too long: %s", log_esc(path));
		return -1;
	}
	memcpy(sun->sun_path, path, strlen(path));
	return 0;
}

/*
 * Connect to the control socket (-s, or control_socket from the config)
 * and send one command line: the socket, or -1 (said why).
 */
static int
ctl_send(struct ctl *ctl, const char *line, size_t len, const char **pathp)
{
	struct sockaddr_un	 sun;
	const char		*path;
	char			 scoped[2048];
	int			 fd, n;

	if (ctl->socket != NULL)
		path = ctl->socket;
	else {
		/* A config with errors cannot name the socket: say so. */
		if (ctl_config(ctl) == -1) {
			ctl_warnx("the daemon keeps its running configuration; "
			    "-s SOCKET reaches it without reading the file");
			return -1;
		}
		path = ctl->conf->control_socket;
	}
	*pathp = path;
	if (ctl_sun(path, &sun) == -1)
		return -1;
	/* -H: the command's scope, as a word the daemon reads first. */
	if (ctl->hv != NULL) {
		n = snprintf(scoped, sizeof scoped, "hv=%s %.*s", ctl->hv,
		    (int)len, line);
		if (n < 0 || (size_t)n >= sizeof scoped) {
			ctl_warnx("command line too long");
			return -1;
		}
		line = scoped;
		len = (size_t)n;
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1 ||
	    connect(fd, (struct sockaddr *)&sun, sizeof sun) == -1) {
		ctl_warn("cannot connect to the control socket %s%s",
		    log_esc(path), errno == ENOENT || errno == ECONNREFUSED ?
		    " (is virtconsoled running?)" : "");
		if (fd != -1)
			close(fd);
		return -1;
	}
	/*
	 * A daemon at its limit of control clients answers ERR and closes,
	 * maybe before the command is written: read its answer all the same.
	 */
	if (send(fd, line, len, MSG_NOSIGNAL) != (ssize_t)len &&
	    errno != EPIPE && errno != ECONNRESET) {
		ctl_warn("write to %s", log_esc(path));
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * A GUEST [ALIAS] word of cmd's arguments: an option cmd does not know,
 * or a third word, is a usage error.
 */
static void
ctl_guest_arg(const char *cmd, const char *arg, const char **guest,
    const char **alias)
{
	if (arg[0] == '-') {
		ctl_warnx("unknown %s option %s", cmd, log_esc(arg));
		ctl_usage();
	}
	if (*guest == NULL)
		*guest = arg;
	else if (*alias == NULL)
		*alias = arg;
	else
		ctl_usage();
}

/* kick's own options, passed on as they are: control.c reads them. */
static int
ctl_kick_option(const char *arg)
{
	return strcmp(arg, "--revoke") == 0 || strcmp(arg, "--viewers") == 0;
}

/*
 * status, list, kick [--revoke] [--viewers] GUEST [ALIAS], reload
 * [--json]: one command line to the daemon's control socket (-s, or
 * control_socket from the config); the daemon answers OK or ERR on the
 * first line, then the body.
 */
static int
ctl_control(struct ctl *ctl, int argc, char **argv)
{
	char			 line[1024], buf[4096], *nl;
	const char		*path;
	size_t			 len = 0, have = 0;
	ssize_t			 n;
	int			 fd, i, status = 1, first = 1, kick;

	kick = strcmp(argv[0], "kick") == 0;
	if (strcmp(argv[0], "metrics") == 0 && argc != 1)
		ctl_usage();
	for (i = 1, n = 0; i < argc; i++)
		n += strcmp(argv[i], "--json") != 0 &&
		    !(kick && ctl_kick_option(argv[i]));
	if (kick ? n < 1 || n > 2 : n != 0)
		ctl_usage();
	for (i = 0; i < argc; i++) {
		if (i > 0 && strcmp(argv[i], "--json") != 0 &&
		    !(kick && ctl_kick_option(argv[i])) &&
		    argv[i][0] == '-') {
			ctl_warnx("unknown %s option %s", argv[0],
			    log_esc(argv[i]));
			ctl_usage();
		}
		n = snprintf(line + len, sizeof line - len, "%s%s",
		    i ? " " : "", argv[i]);
		if (n < 0 || (size_t)n >= sizeof line - len) {
			ctl_warnx("command line too long");
			return 2;
		}
		len += (size_t)n;
	}
	if (len + 1 >= sizeof line)
		return 2;
	line[len++] = '\n';
	if ((fd = ctl_send(ctl, line, len, &path)) == -1)
		return 1;
	/* The first line says OK or ERR; the rest is the answer. */
	for (;;) {
		n = read(fd, buf + have, sizeof buf - have - 1);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		have += (size_t)n;
		buf[have] = '\0';
		if (first) {
			if ((nl = strchr(buf, '\n')) == NULL) {
				if (have < sizeof buf - 1)
					continue;
				break;
			}
			*nl = '\0';
			first = 0;
			if (strcmp(buf, "OK") == 0)
				status = 0;
			else {
				fprintf(stderr, "virtconsolectl: %s\n",
				    strncmp(buf, "ERR ", 4) == 0 ? buf + 4 :
				    buf);
				status = 1;
			}
			have -= (size_t)(nl + 1 - buf);
			memmove(buf, nl + 1, have);
		}
		if (fwrite(buf, 1, have, stdout) != have)
			break;
		have = 0;
	}
	close(fd);
	if (first) {
		ctl_warnx("no answer from the daemon on %s", log_esc(path));
		return 1;
	}
	return status;
}

#define CTL_HISTORY_ANSWER_MAX	(2 * 1024 * 1024)

/* The whole answer to one command line: 0 OK (body in *bodyp), 1 ERR. */
static int
ctl_ask(struct ctl *ctl, const char *line, char **bodyp, size_t *lenp)
{
	const char	*path;
	char		*buf, *nl;
	size_t		 have = 0, size = 65536;
	ssize_t		 n;
	int		 fd;

	if ((fd = ctl_send(ctl, line, strlen(line), &path)) == -1)
		return 1;
	buf = xmalloc(size + 1);
	for (;;) {
		if (have == size) {
			if (size >= CTL_HISTORY_ANSWER_MAX) {
				ctl_warnx("answer too long from %s",
				    log_esc(path));
				goto fail;
			}
			size *= 2;
			buf = xrealloc(buf, size + 1);
		}
		n = read(fd, buf + have, size - have);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			ctl_warn("read from %s", log_esc(path));
			goto fail;
		}
		if (n == 0)
			break;
		have += (size_t)n;
	}
	close(fd);
	buf[have] = '\0';
	if ((nl = memchr(buf, '\n', have)) == NULL) {
		ctl_warnx("no answer from the daemon on %s", log_esc(path));
		free(buf);
		return 1;
	}
	*nl = '\0';
	if (strcmp(buf, "OK") != 0) {
		fprintf(stderr, "virtconsolectl: %s\n",
		    strncmp(buf, "ERR ", 4) == 0 ? buf + 4 : buf);
		free(buf);
		return 1;
	}
	have -= (size_t)(nl + 1 - buf);
	memmove(buf, nl + 1, have);
	buf[have] = '\0';
	*bodyp = buf;
	*lenp = have;
	return 0;
fail:
	close(fd);
	free(buf);
	return 1;
}

/*
 * Guest output for a terminal: control bytes as cat -v shows them (^[ for
 * ESC, ^? for DEL), so that history cannot drive the terminal; newlines
 * and tabs stay, a carriage return before a newline goes.  A CR at the
 * end of p is held back in *cr, as the next byte decides: so a CRLF split
 * across two reads (or between the history and the live output of
 * --follow) reads the same as one that is not.  dst takes 2 * len + 2
 * bytes; returns how many it got.
 */
static size_t
ctl_vis(const unsigned char *p, size_t len, char *dst, int *cr)
{
	size_t		 i, o = 0;
	unsigned char	 c;

	for (i = 0; i < len; i++) {
		c = p[i];
		if (*cr) {
			*cr = 0;
			if (c != '\n') {
				dst[o++] = '^';
				dst[o++] = 'M';
			}
		}
		if (c == '\r')
			*cr = 1;
		else if (c == '\n' || c == '\t' || (c >= 0x20 && c != 0x7f))
			dst[o++] = (char)c;
		else {
			dst[o++] = '^';
			dst[o++] = (char)(c == 0x7f ? '?' : c + '@');
		}
	}
	return o;
}

/* The CR ctl_vis() holds back, for history's printing. */
static int	ctl_history_cr;

static void
ctl_history_print(const char *p, size_t len, int escape)
{
	char	buf[2 * 4096 + 2];
	size_t	n, k;

	if (!escape) {
		(void)fwrite(p, 1, len, stdout);
		return;
	}
	while (len > 0) {
		n = len < 4096 ? len : 4096;
		k = ctl_vis((const unsigned char *)p, n, buf, &ctl_history_cr);
		(void)fwrite(buf, 1, k, stdout);
		p += n;
		len -= n;
	}
}

/* A CR held back with nothing after it: shown as it is. */
static void
ctl_history_print_cr(void)
{
	if (ctl_history_cr)
		(void)fputs("^M", stdout);
	ctl_history_cr = 0;
}

static void	ctl_history_mark(int, const char *, ...) VCD_PRINTF(2, 3);

/* A line about the history itself: on stdout with escaping, else stderr. */
static void
ctl_history_mark(int escape, const char *fmt, ...)
{
	va_list	ap;
	FILE	*fp = escape ? stdout : stderr;

	if (escape)
		ctl_history_print_cr();
	(void)fflush(stdout);
	fputs(escape ? "\n[virtconsoled] " : "virtconsolectl: ", fp);
	va_start(ap, fmt);
	vfprintf(fp, fmt, ap);
	va_end(ap);
	fputc('\n', fp);
}

/*
 * One record line of a history answer: its word and up to 3 fields (the
 * run, then decimal numbers); -1 unless it is exactly that.
 */
static int
ctl_history_record(char *line, char **word, char **run,
    unsigned long long num[2])
{
	char	*f[4], *p, *end;
	int	 n = 0, i;

	for (p = strtok(line, " "); p != NULL; p = strtok(NULL, " ")) {
		if (n == 4)
			return -1;
		f[n++] = p;
	}
	if (n < 2)
		return -1;
	*word = f[0];
	*run = f[1];
	for (i = 2; i < n; i++) {
		if (!isdigit((unsigned char)f[i][0]))
			return -1;
		errno = 0;
		num[i - 2] = strtoull(f[i], &end, 10);
		if (errno != 0 || *end != '\0')
			return -1;
	}
	return n;
}

/*
 * history [--from RUN:OFFSET] [--follow] [--raw] GUEST [ALIAS]: what the
 * daemon kept of the console, asked for in pages (control.c's history
 * command says the records); with --follow, then the live output from
 * where the history ended (ctl_follow()).
 */
static int
ctl_history(struct ctl *ctl, int argc, char **argv)
{
	const char	*guest = NULL, *alias = NULL;
	char		 from[80] = "", line[1200], *body, *p, *end, *nl;
	char		*word, *run, last[80] = "";
	unsigned long long num[2];
	size_t		 len;
	int		 i, raw = 0, escape, done = 0, k, nf, follow = 0;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--raw") == 0)
			raw = 1;
		else if (strcmp(argv[i], "--follow") == 0)
			follow = 1;
		else if (strcmp(argv[i], "--from") == 0 && i + 1 < argc) {
			if (strlen(argv[++i]) >= sizeof from - 8 ||
			    strchr(argv[i], ' ') != NULL) {
				ctl_warnx("--from wants RUN:OFFSET");
				return 2;
			}
			(void)snprintf(from, sizeof from, "%s", argv[i]);
		} else
			ctl_guest_arg("history", argv[i], &guest, &alias);
	}
	if (guest == NULL)
		ctl_usage();
	/* Before any output: --follow cannot work without the attach socket. */
	if (follow) {
		if (ctl_config(ctl) == -1)
			return 1;
		if (ctl->conf->attach_socket == NULL) {
			ctl_warnx("history --follow needs the attach socket "
			    "(attach_socket is none)");
			return 2;
		}
	}
	escape = !raw && isatty(STDOUT_FILENO);
	while (!done) {
		k = snprintf(line, sizeof line, "history %s%s%s%s%s\n", guest,
		    alias != NULL ? " " : "", alias != NULL ? alias : "",
		    from[0] != '\0' ? " from=" : "", from);
		if (k < 0 || (size_t)k >= sizeof line ||
		    strpbrk(guest, " \t\n") != NULL ||
		    (alias != NULL && strpbrk(alias, " \t\n") != NULL)) {
			ctl_warnx("bad guest or console name");
			return 2;
		}
		if (ctl_ask(ctl, line, &body, &len) != 0)
			return 1;
		p = body;
		end = body + len;
		done = 1;
		while (p < end) {
			if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
				goto bad;
			*nl = '\0';
			nf = ctl_history_record(p, &word, &run, num);
			if (nf == 4 && strcmp(word, "BYTES") == 0) {
				if (num[1] > (unsigned long long)(end - nl - 1))
					goto bad;
				ctl_history_print(nl + 1, (size_t)num[1],
				    escape);
				p = nl + 1 + num[1];
				continue;
			}
			if (nf == 4 && strcmp(word, "GAP") == 0)
				ctl_history_mark(escape, "bytes %llu to %llu "
				    "of run %s are no longer kept", num[0],
				    num[1], run);
			else if (nf == 4 && strcmp(word, "LOST") == 0)
				ctl_history_mark(escape, "output the daemon "
				    "did not read (at %llu%s, run %s)", num[0],
				    num[0] == num[1] ? "" : ", and what follows "
				    "up to a later loss", run);
			else if (nf == 2 && strcmp(word, "RUN") == 0)
				ctl_history_mark(escape, "run %s: the guest "
				    "started again", run);
			else if (nf == 2 && strcmp(word, "NEXT") == 0 &&
			    strlen(run) < sizeof from) {
				(void)snprintf(from, sizeof from, "%s", run);
				done = 0;
			} else if (nf == 2 && strcmp(word, "END") == 0 &&
			    strlen(run) < sizeof last)
				(void)snprintf(last, sizeof last, "%s", run);
			else
				goto bad;
			p = nl + 1;
		}
		free(body);
	}
	if (follow && last[0] == '\0') {
		ctl_warnx("bad history answer from the daemon (no end)");
		return 1;
	}
	/* --follow goes on from the held CR: the next byte decides. */
	if (!follow)
		ctl_history_print_cr();
	if (fflush(stdout) == EOF) {
		ctl_warn("stdout");
		return 1;
	}
	if (follow)
		return ctl_follow(ctl, guest, alias, last, escape);
	return 0;
bad:
	free(body);
	ctl_warnx("bad history answer from the daemon");
	return 1;
}

/* libvirt prints its errors to stderr unless told otherwise. */
static void
ctl_libvirt_silent(void *opaque, virErrorPtr err)
{
}

/*
 * The UUID of a guest given by UUID (36 characters, 8-4-4-4-12 hex digits)
 * or else by name, and a check that the alias (if any) is one of its
 * consoles.
 */
static int
ctl_guest_uuid_at(const char *uri, const char *guest, const char *alias,
    char uuid[GUEST_UUID_LEN], int quiet_absent)
{
	virConnectPtr	 conn;
	virDomainPtr	 dom;
	char		*xml, **aliases;
	size_t		 n, i;
	int		 rc = -1, found = alias == NULL;

	virSetErrorFunc(NULL, ctl_libvirt_silent);
	if ((conn = virConnectOpenReadOnly(uri)) == NULL) {
		ctl_warnx("cannot connect to libvirt at %s: %s",
		    log_esc(uri), virGetLastErrorMessage());
		return -1;
	}
	/*
	 * An argument with the form of a UUID is looked up as a UUID only:
	 * a guest whose name looks like another guest's UUID must not
	 * shadow that guest, and get the token meant for it.
	 */
	for (i = 0; i < 36 && guest[i] != '\0'; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23 ?
		    guest[i] != '-' : strchr("0123456789abcdefABCDEF",
		    guest[i]) == NULL)
			break;
	}
	if (i == 36 && guest[i] == '\0')
		dom = virDomainLookupByUUIDString(conn, guest);
	else
		dom = virDomainLookupByName(conn, guest);
	if (dom == NULL) {
		if (!quiet_absent)
			ctl_warnx("no guest %s", log_esc(guest));
		virConnectClose(conn);
		return -2;
	}
	if (virDomainGetUUIDString(dom, uuid) == -1)
		ctl_warnx("cannot read the UUID of %s", log_esc(guest));
	else if (alias != NULL) {
		if ((xml = virDomainGetXMLDesc(dom, 0)) != NULL &&
		    guest_parse_consoles(xml, strlen(xml),
		    virDomainIsActive(dom) == 1, &aliases, &n) == 0) {
			for (i = 0; i < n; i++)
				found |= strcmp(aliases[i], alias) == 0;
			guest_free_aliases(aliases, n);
		}
		free(xml);
		if (!found)
			ctl_warnx("guest %s has no console %s",
			    log_esc(guest), log_esc(alias));
		else
			rc = 0;
	} else
		rc = 0;
	virDomainFree(dom);
	virConnectClose(conn);
	return rc;
}

/* -H's hypervisor in the configuration, or NULL. */
static struct config_hv *
ctl_hv_config(struct ctl *ctl)
{
	struct config_hv	*h;

	TAILQ_FOREACH(h, &ctl->conf->hvs, entry) {
		if (strcmp(h->name, ctl->hv) == 0)
			return h;
	}
	return NULL;
}

/*
 * The hypervisor (its name into hv) and UUID of a guest: on -H's
 * hypervisor, or looked for on every configured one (a name found on
 * several is an error that names them).  0, or -1 (said why).
 */
static int
ctl_guest_uuid(struct ctl *ctl, const char *guest, const char *alias,
    char uuid[GUEST_UUID_LEN], char hv[CONFIG_HV_NAME_MAX + 1])
{
	struct config_hv	*h;
	char			 u[GUEST_UUID_LEN], where[256];
	size_t			 len = 0;
	int			 rc, n = 0;

	where[0] = '\0';
	TAILQ_FOREACH(h, &ctl->conf->hvs, entry) {
		if (ctl->hv != NULL && strcmp(h->name, ctl->hv) != 0)
			continue;
		rc = ctl_guest_uuid_at(h->uri, guest, alias, u,
		    ctl->hv == NULL);
		if (rc == -2)
			continue;
		if (rc == -1)
			return -1;
		if (n++ == 0) {
			memcpy(uuid, u, GUEST_UUID_LEN);
			(void)snprintf(hv, CONFIG_HV_NAME_MAX + 1, "%s",
			    h->name);
		}
		if (len < sizeof where)
			len += (size_t)snprintf(where + len, sizeof where -
			    len, "%s%s", len > 0 ? ", " : "", h->name);
	}
	if (ctl->hv != NULL && n == 0 && ctl_hv_config(ctl) == NULL) {
		ctl_warnx("no hypervisor %s in %s", log_esc(ctl->hv),
		    log_esc(ctl->conf_path));
		return -1;
	}
	if (n > 1) {
		ctl_warnx("guest %s is on several hypervisors: %s; name one "
		    "with -H NAME", log_esc(guest), where);
		return -1;
	}
	if (n == 0) {
		if (ctl->hv == NULL)
			ctl_warnx("no guest %s", log_esc(guest));
		return -1;
	}
	return 0;
}

/*
 * token GUEST [ALIAS] | token --all, with [--ttl S] [--view] [--history]
 * [--label TEXT]
 */
static int
ctl_token(struct ctl *ctl, int argc, char **argv)
{
	struct token		 t;
	unsigned long long	 ttl = 0;
	uint8_t			 key[TOKEN_KEY_LEN], aud[TOKEN_AUD_LEN];
	char			 uuid[GUEST_UUID_LEN], out[TOKEN_TEXT_MAX];
	char			 err[1024], hv[CONFIG_HV_NAME_MAX + 1];
	const char		*guest = NULL, *alias = NULL, *label = "";
	const char		*state_dir;
	int64_t			 now;
	int			 i, all = 0, have_ttl = 0, view = 0;
	int			 history = 0;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--all") == 0)
			all = 1;
		else if (strcmp(argv[i], "--view") == 0)
			view = 1;
		else if (strcmp(argv[i], "--history") == 0)
			history = 1;
		else if (strcmp(argv[i], "--ttl") == 0) {
			if (++i == argc || parse_uint(argv[i], 86400 * 366,
			    &ttl) == -1 || ttl == 0) {
				ctl_warnx("--ttl needs a number of seconds "
				    "(1 to 31622400)");
				return 2;
			}
			have_ttl = 1;
		} else if (strcmp(argv[i], "--label") == 0) {
			if (++i == argc || !token_label_ok(argv[i])) {
				ctl_warnx("--label needs a text of at most %d "
				    "bytes without control characters",
				    TOKEN_LABEL_MAX);
				return 2;
			}
			label = argv[i];
		} else if (argv[i][0] == '-') {
			ctl_warnx("unknown token option %s", log_esc(argv[i]));
			ctl_usage();
		} else if (guest == NULL)
			guest = argv[i];
		else if (alias == NULL)
			alias = argv[i];
		else
			ctl_usage();
	}
	if (all == (guest != NULL))
		ctl_usage();
	if (ctl_config(ctl) == -1)
		return 1;
	if (!have_ttl)
		ttl = ctl->conf->token_ttl;
	if (!all && ctl_guest_uuid(ctl, guest, alias, uuid, hv) == -1)
		return 1;
	/* --all: -H's hypervisor, or every one. */
	if (all && ctl->hv != NULL && ctl_hv_config(ctl) == NULL) {
		ctl_warnx("no hypervisor %s in %s", log_esc(ctl->hv),
		    log_esc(ctl->conf_path));
		return 1;
	}
	if (all)
		(void)snprintf(hv, sizeof hv, "%s", ctl->hv != NULL ?
		    ctl->hv : TOKEN_ANY);
	/* The daemon's default until its config sets state_dir. */
	state_dir = ctl->conf->state_dir != NULL ? ctl->conf->state_dir :
	    "/var/lib/virtconsoled";
	if (token_audience_load(state_dir, aud, 1, err, sizeof err) == -1 ||
	    token_secret_load(ctl->conf->token_secret_file, key, 1, err,
	    sizeof err) == -1) {
		ctl_warnx("%s", err);
		return 1;
	}
	now = (int64_t)time(NULL);
	if (token_new(&t, TOKEN_KIND_TOKEN, aud, hv, all ? NULL : uuid,
	    alias, now,
	    now + (int64_t)ttl) == -1) {
		explicit_bzero(key, sizeof key);
		ctl_warnx("cannot make a token%s", alias != NULL ?
		    " (is the alias valid?)" : "");
		return 1;
	}
	/* A viewer reads the history only when asked; a writer always. */
	t.role = view ? TOKEN_ROLE_VIEWER : TOKEN_ROLE_WRITER;
	t.history = view ? history : 1;
	memcpy(t.label, label, strlen(label) + 1);
	if (token_mint(key, &t, out, sizeof out) == -1) {
		explicit_bzero(key, sizeof key);
		ctl_warnx("cannot make a token");
		return 1;
	}
	explicit_bzero(key, sizeof key);
	printf("%s\n", out);
	return 0;
}

/* The daemon's rule for guest socket names (socket_name_check, util.c). */
static int
ctl_name_ok(const char *dir, const char *name, const char **why)
{
	switch (socket_name_check(dir, name)) {
	case 0:
		return 1;
	case SOCKET_NAME_LONG:
		*why = "too long for a unix socket path in socket_dir";
		return 0;
	default:
		*why = "use letters, digits and . _ + - only, not starting "
		    "with '.'";
		return 0;
	}
}

static int
ctl_connect(const char *path)
{
	struct sockaddr_un	 sun;
	const char		*hint;
	int			 fd, e;

	if (ctl_sun(path, &sun) == -1)
		return -1;
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1) {
		ctl_warn("socket");
		return -1;
	}
	while (connect(fd, (struct sockaddr *)&sun, sizeof sun) == -1) {
		if (errno == EINTR && !ctl_signal)
			continue;
		e = errno;
		close(fd);
		if (e == EINTR)
			return -1;	/* a signal: the caller exits by it */
		switch (e) {
		case ENOENT:
		case ECONNREFUSED:
			hint = " (is virtconsoled running, and is the guest "
			    "defined?)";
			break;
		case EACCES:
			hint = " (is this user in the daemon's socket_group?)";
			break;
		default:
			hint = "";
			break;
		}
		ctl_warnx("cannot connect to %s: %s%s", log_esc(path),
		    strerror(e), hint);
		return -1;
	}
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == -1) {
		ctl_warn("fcntl");
		close(fd);
		return -1;
	}
	return fd;
}

/* Keep the end of the output: the daemon's notice is its last line. */
static void
attach_tail(struct attach *a, const unsigned char *buf, size_t len)
{
	size_t	keep;

	if (len >= sizeof a->tail) {
		memcpy(a->tail, buf + len - sizeof a->tail, sizeof a->tail);
		a->tail_len = sizeof a->tail;
		return;
	}
	keep = sizeof a->tail - len;
	if (a->tail_len > keep) {
		memmove(a->tail, a->tail + a->tail_len - keep, keep);
		a->tail_len = keep;
	}
	memcpy(a->tail + a->tail_len, buf, len);
	a->tail_len += len;
}

/*
 * Whether the output ended with a "refused:" notice: a whole line, after a
 * line break, and followed by one (the notice is "\r\n[...]\r\n").
 */
static int
attach_refused(const struct attach *a)
{
	const char	*start = a->tail, *end = a->tail + a->tail_len;
	const char	*line;
	size_t		 plen = sizeof CTL_REFUSED - 1;

	if (a->tail_len < 2 || end[-1] != '\n')
		return 0;
	while (end > start && (end[-1] == '\n' || end[-1] == '\r'))
		end--;
	line = end;
	while (line > start && line[-1] != '\n' && line[-1] != '\r')
		line--;
	if (line == start)
		return 0;
	return (size_t)(end - line) > plen && memcmp(line, CTL_REFUSED,
	    plen) == 0;
}

static void
attach_set_state(struct attach *a, enum attach_state state)
{
	a->state = state;
	a->since = ctl_now_ms();
}

/* The daemon closed: the status comes from its last line. */
static void
attach_closed(struct attach *a)
{
	if (a->state != ATTACH_ESCAPED)
		a->status = attach_refused(a) ? 1 : 0;
	/* Read only when a->out was empty: room for a CR held back. */
	if (a->vis && a->vis_cr) {
		memcpy(a->out, "^M", 2);
		a->out_off = 0;
		a->out_len = 2;
		a->vis_cr = 0;
	}
	a->in_len = a->in_off = 0;
	attach_set_state(a, ATTACH_CLOSED);
}

static void
attach_fail(struct attach *a, const char *what)
{
	ctl_warn("%s", what);
	a->status = 1;
	a->state = ATTACH_DONE;
}

static void
attach_stdin(struct attach *a)
{
	unsigned char	*esc;
	ssize_t		 n;

	n = read(STDIN_FILENO, a->in, sizeof a->in);
	if (n == -1 && (errno == EINTR || errno == EAGAIN))
		return;
	/* EIO: the terminal hung up. */
	if (n == 0 || (n == -1 && errno == EIO)) {
		attach_set_state(a, ATTACH_INPUT_EOF);
		return;
	}
	if (n == -1) {
		attach_fail(a, "read stdin");
		return;
	}
	a->in_off = 0;
	a->in_len = (size_t)n;
	if (a->escape != ESCAPE_NONE &&
	    (esc = memchr(a->in, a->escape, a->in_len)) != NULL) {
		/* The daemon sees the key too, and says goodbye. */
		a->in_len = (size_t)(esc - a->in) + 1;
		a->status = 0;
		attach_set_state(a, ATTACH_ESCAPED);
	}
	if (a->sock_wr_closed)
		a->in_len = 0;
}

static void
attach_sock_read(struct attach *a)
{
	unsigned char	 raw[(sizeof a->out - 2) / 2];
	ssize_t		 n;

	/* Shown as cat -v does: read what fits in a->out once escaped. */
	if (a->vis) {
		n = read(a->sock, raw, sizeof raw);
		if (n > 0) {
			attach_tail(a, raw, (size_t)n);
			a->out_off = 0;
			a->out_len = ctl_vis(raw, (size_t)n, (char *)a->out,
			    &a->vis_cr);
			return;
		}
	} else
		n = read(a->sock, a->out, sizeof a->out);
	if (n == -1 && (errno == EINTR || errno == EAGAIN))
		return;
	/* ECONNRESET: the daemon closed with our input unread. */
	if (n == 0 || (n == -1 && errno == ECONNRESET)) {
		attach_closed(a);
		return;
	}
	if (n == -1) {
		attach_fail(a, "read from the daemon");
		return;
	}
	a->out_off = 0;
	a->out_len = (size_t)n;
	attach_tail(a, a->out, a->out_len);
	if (a->state == ATTACH_INPUT_EOF)
		a->since = ctl_now_ms();
}

static void
attach_sock_write(struct attach *a)
{
	ssize_t	n;

	n = write(a->sock, a->in + a->in_off, a->in_len - a->in_off);
	if (n == -1 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n == -1 && (errno == EPIPE || errno == ECONNRESET)) {
		/* Closing: what it said last is still to be read. */
		a->sock_wr_closed = 1;
		a->in_len = a->in_off = 0;
		return;
	}
	if (n == -1) {
		attach_fail(a, "write to the daemon");
		return;
	}
	a->in_off += (size_t)n;
	if (a->in_off == a->in_len)
		a->in_len = a->in_off = 0;
	if (a->state == ATTACH_INPUT_EOF)
		a->since = ctl_now_ms();
}

static void
attach_stdout(struct attach *a)
{
	ssize_t	n;

	n = write(STDOUT_FILENO, a->out + a->out_off, a->out_len - a->out_off);
	if (n == -1 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n == -1 && errno == EPIPE) {
		/* Whoever read the output has what it wanted. */
		a->status = 0;
		a->state = ATTACH_DONE;
		return;
	}
	if (n == -1) {
		attach_fail(a, "write stdout");
		return;
	}
	a->out_off += (size_t)n;
	if (a->out_off == a->out_len)
		a->out_len = a->out_off = 0;
}

/* Milliseconds until the state's deadline, or -1 for none. */
static int
attach_timeout(struct attach *a)
{
	int64_t	left;

	switch (a->state) {
	case ATTACH_ESCAPED:
		left = a->since + CTL_ESCAPE_WAIT_MS - ctl_now_ms();
		break;
	case ATTACH_INPUT_EOF:
		/* Input still queued is not silence. */
		if (a->in_len > 0)
			return -1;
		left = a->since + CTL_QUIET_WAIT_MS - ctl_now_ms();
		break;
	default:
		return -1;
	}
	if (left <= 0) {
		if (a->state == ATTACH_ESCAPED)
			ctl_warnx("no answer from the daemon; detached");
		a->status = 0;
		a->state = ATTACH_DONE;
		return 0;
	}
	return (int)left;
}

/*
 * The relay: one poll over the signal pipe, stdin, the socket and stdout.
 * Each direction holds one chunk; a side is read only once its last chunk
 * is written, so a slow side slows the other instead of growing a buffer.
 */
static int
attach_loop(struct attach *a)
{
	struct pollfd	pfd[4];
	char		drain[64];
	int		timeout;

	while (a->state != ATTACH_DONE) {
		if (ctl_signal)
			ctl_signal_exit(ctl_signal);
		if (a->state == ATTACH_CLOSED && a->out_len == 0)
			break;
		if ((timeout = attach_timeout(a)) == 0)
			break;

		memset(pfd, 0, sizeof pfd);
		pfd[0].fd = ctl_sigpipe[0];
		pfd[0].events = POLLIN;
		pfd[1].fd = STDIN_FILENO;
		if (a->state == ATTACH_RELAY && a->in_len == 0 && !a->follow)
			pfd[1].events = POLLIN;
		pfd[2].fd = a->sock;
		if (a->state != ATTACH_CLOSED && a->out_len == 0)
			pfd[2].events |= POLLIN;
		if (a->in_len > 0)
			pfd[2].events |= POLLOUT;
		pfd[3].fd = STDOUT_FILENO;
		if (a->out_len > 0)
			pfd[3].events = POLLOUT;
		/* A negative fd is skipped, with its revents. */
		if (pfd[1].events == 0)
			pfd[1].fd = -1;
		if (pfd[2].events == 0)
			pfd[2].fd = -1;
		if (pfd[3].events == 0)
			pfd[3].fd = -1;

		if (poll(pfd, 4, timeout) == -1) {
			if (errno == EINTR)
				continue;
			attach_fail(a, "poll");
			break;
		}
		if (pfd[0].revents != 0) {
			while (read(ctl_sigpipe[0], drain, sizeof drain) > 0)
				;
		}
		if (pfd[3].revents != 0)
			attach_stdout(a);
		if (a->state == ATTACH_DONE)
			break;
		if ((pfd[2].revents & POLLOUT) ||
		    ((pfd[2].revents & (POLLHUP | POLLERR)) &&
		    a->in_len > 0))
			attach_sock_write(a);
		if (a->state == ATTACH_DONE)
			break;
		if (pfd[2].revents != 0 && a->out_len == 0 &&
		    a->state != ATTACH_CLOSED)
			attach_sock_read(a);
		if (a->state == ATTACH_DONE)
			break;
		if (pfd[1].revents != 0 && a->state == ATTACH_RELAY)
			attach_stdin(a);
	}
	return a->status;
}

/*
 * The request line for the attach socket (asock.c) into a->in, so that it
 * is the first thing written: 0, or -1 (said why) for names it cannot
 * carry.  from is RUN:OFFSET or NULL; replay and from are not both given.
 */
static int
attach_request(struct attach *a, const char *guest, const char *alias,
    const char *hv, int view, const char *replay, const char *from)
{
	const char	*p;
	int		 n;

	for (p = guest; *p != '\0'; p++) {
		if (*p <= ' ' || *p == 0x7f)
			break;
	}
	if (*p != '\0' || *guest == '\0' || strchr(guest, '=') != NULL ||
	    (alias != NULL && (strpbrk(alias, " \t\r\n=") != NULL ||
	    *alias == '\0'))) {
		ctl_warnx("bad guest or console name");
		return -1;
	}
	n = snprintf((char *)a->in, sizeof a->in,
	    "ATTACH %s%s%s%s%s%s%s%s%s%s\n", guest, alias != NULL ? " " : "",
	    alias != NULL ? alias : "", hv != NULL ? " hv=" : "",
	    hv != NULL ? hv : "", view ? " view" : "",
	    replay != NULL ? " replay=" : "",
	    replay != NULL ? replay : "", from != NULL ? " from=" : "",
	    from != NULL ? from : "");
	if (n < 0 || n > 1024) {
		ctl_warnx("guest or console name too long");
		return -1;
	}
	a->in_len = (size_t)n;
	return 0;
}

/*
 * Signals, then the connection to path (attach and history --follow):
 * 0, or -1 said why (a signal that came meanwhile ends the client by it).
 */
static int
attach_connect(struct attach *a, const char *path)
{
	if (ctl_signals_init() == -1) {
		ctl_warn("signals");
		return -1;
	}
	if ((a->sock = ctl_connect(path)) == -1) {
		if (ctl_signal)
			ctl_signal_exit(ctl_signal);
		return -1;
	}
	return 0;
}

/* Relay until the session ends, then close: the exit status. */
static int
attach_relay(struct attach *a)
{
	int	status;

	attach_set_state(a, ATTACH_RELAY);
	status = attach_loop(a);
	close(a->sock);
	return status;
}

/*
 * attach [--view] [--replay BYTES] GUEST [ALIAS]: through the attach
 * socket (attach_socket), which takes a request line first; with -s, or
 * when attach_socket is none, raw to a guest's own socket, which serves
 * its first console live: ALIAS, --view and --replay are then a usage
 * error.
 */
static int
ctl_attach(struct ctl *ctl, int argc, char **argv)
{
	struct attach	*a;
	const char	*guest = NULL, *alias = NULL, *replay = NULL;
	const char	*label, *why, *hvname;
	char		*path = NULL, *dir;
	size_t		 bytes;
	int		 i, view = 0, status, request;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--view") == 0)
			view = 1;
		else if (strcmp(argv[i], "--replay") == 0 && i + 1 < argc) {
			replay = argv[++i];
			if (config_parse_size(replay, 0, 1ULL << 30,
			    &bytes) == -1) {
				ctl_warnx("--replay wants BYTES (K, M or G "
				    "suffix, at most 1G)");
				return 2;
			}
		} else
			ctl_guest_arg("attach", argv[i], &guest, &alias);
	}
	if (guest == NULL && ctl->socket == NULL)
		ctl_usage();

	if (ctl_config(ctl) == -1)
		return 1;
	request = ctl->socket == NULL && ctl->conf->attach_socket != NULL;
	if (!request && (alias != NULL || view || replay != NULL)) {
		ctl_warnx("attach: ALIAS, --view and --replay need the attach "
		    "socket (%s)", ctl->socket != NULL ? "not with -s" :
		    "attach_socket is none");
		return 2;
	}
	if (ctl->socket != NULL)
		path = xstrdup(ctl->socket);
	else if (request)
		path = xstrdup(ctl->conf->attach_socket);
	else {
		/*
		 * The guest's own socket: socket_dir/GUEST, or with the
		 * `hypervisor` keys socket_dir/NAME/GUEST (NAME: -H's, or the
		 * only hypervisor).
		 */
		if (ctl->conf->hv_form) {
			hvname = ctl->hv;
			if (hvname == NULL && TAILQ_FIRST(&ctl->conf->hvs) ==
			    TAILQ_LAST(&ctl->conf->hvs, config_hvs))
				hvname = TAILQ_FIRST(&ctl->conf->hvs)->name;
			if (hvname == NULL) {
				ctl_warnx("attach: several hypervisors and no "
				    "attach socket: name one with -H NAME");
				return 2;
			}
			xasprintf(&dir, "%s/%s", ctl->conf->socket_dir, hvname);
		} else
			dir = xstrdup(ctl->conf->socket_dir);
		if (!ctl_name_ok(dir, guest, &why)) {
			ctl_warnx("invalid guest name '%s': %s",
			    log_esc(guest), why);
			free(dir);
			return 1;
		}
		xasprintf(&path, "%s/%s", dir, guest);
		free(dir);
	}
	label = guest != NULL ? guest : path;

	a = xcalloc(1, sizeof *a);
	a->escape = ctl->conf->escape;
	if (request && attach_request(a, guest, alias, ctl->hv, view, replay,
	    NULL) == -1) {
		free(path);
		free(a);
		return 1;
	}
	if (attach_connect(a, path) == -1) {
		free(path);
		free(a);
		return 1;
	}
	if (isatty(STDIN_FILENO)) {
		fprintf(stderr, "Connected to %s%s%s (escape: %s)\n",
		    log_esc(label), alias != NULL ? " " : "",
		    alias != NULL ? log_esc(alias) : "",
		    config_escape_name(a->escape));
		if (ctl_tty_raw() == -1) {
			ctl_warn("cannot put the terminal in raw mode");
			close(a->sock);
			free(path);
			free(a);
			return 1;
		}
	}
	status = attach_relay(a);
	ctl_tty_restore();
	free(path);
	free(a);
	return status;
}

/*
 * history --follow, after the history: a viewer through the attach socket
 * from RUN:OFFSET `from`, the position right after the history's last
 * byte, so that the daemon sends on from exactly there (from its history
 * first if the console printed meanwhile).  Output only: stdin is never
 * read, and the terminal stays as it is, so ^C ends it by SIGINT.  The
 * end and the status are attach's: the daemon's closing notice.
 */
static int
ctl_follow(struct ctl *ctl, const char *guest, const char *alias,
    const char *from, int vis)
{
	struct attach	*a;
	int		 status;

	a = xcalloc(1, sizeof *a);
	a->escape = ESCAPE_NONE;
	a->follow = 1;
	a->vis = vis;
	/* The history's CR held back: the first live byte decides. */
	a->vis_cr = ctl_history_cr;
	ctl_history_cr = 0;
	if (attach_request(a, guest, alias, ctl->hv, 1, NULL, from) == -1 ||
	    attach_connect(a, ctl->conf->attach_socket) == -1) {
		free(a);
		return 1;
	}
	status = attach_relay(a);
	free(a);
	return status;
}

int
main(int argc, char **argv)
{
	struct ctl	 ctl;
	size_t		 i;
	int		 ch, status;

	memset(&ctl, 0, sizeof ctl);
	ctl.conf_path = CTL_DEFAULT_CONFIG;
	/* Also covers exit() from fatal() deep inside a helper. */
	atexit(ctl_tty_restore);
	log_init(LOG_TARGET_STDERR, LOG_LEVEL_WARN, NULL);

	/* "+": options stop at the command, which has its own. */
	opterr = 0;
	while ((ch = getopt(argc, argv, "+f:s:H:")) != -1) {
		switch (ch) {
		case 'f':
			ctl.conf_path = optarg;
			ctl.conf_given = 1;
			break;
		case 's':
			ctl.socket = optarg;
			break;
		case 'H':
			if (!config_hv_name_ok(optarg)) {
				ctl_warnx("-H wants a hypervisor name "
				    "([A-Za-z0-9_-], 1 to %d)",
				    CONFIG_HV_NAME_MAX);
				ctl_usage();
			}
			ctl.hv = optarg;
			break;
		default:
			if (optopt == 'f' || optopt == 's')
				ctl_warnx("option -%c needs an argument",
				    optopt);
			else
				ctl_warnx("unknown option -%c", optopt);
			ctl_usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc == 0)
		ctl_usage();

	for (i = 0; i < CTL_NCOMMANDS; i++) {
		if (strcmp(argv[0], ctl_commands[i].name) == 0)
			break;
	}
	if (i == CTL_NCOMMANDS) {
		ctl_warnx("unknown command '%s'", log_esc(argv[0]));
		ctl_usage();
	}
	status = ctl_commands[i].exec(&ctl, argc, argv);
	config_free(ctl.conf);
	return status;
}
