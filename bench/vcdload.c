/*
 * vcdload: the benchmark's console client.  One process drives N console
 * sessions from one event loop, libvirt's default event implementation
 * (virEventRegisterDefaultImpl + virEventRunDefaultImpl, a poll loop),
 * which also drives the streams of the `libvirt` mode: every mode pays the
 * same client-side costs, and the `libvirt` mode, with no daemon at all,
 * is the floor.
 *
 * usage: vcdload MODE TEST [options] TARGET...
 *
 * MODE and TARGET (each TARGET is one session; repeat it for more):
 *   libvirt   GUEST[:ALIAS]  (name or UUID; no alias: the first console),
 *             opened with virDomainOpenConsole on a VIR_STREAM_NONBLOCK
 *             stream over one connection (--uri), one open at a time (the
 *             call is synchronous).
 *   unix      a socket path (virtconsoled's socket_dir/GUEST, which is the
 *             guest's first console; oldconsole.py's GUEST or GUEST:ALIAS).
 *             A full listen backlog (EAGAIN) is retried every 10 ms.
 *   ws, wss   a WebSocket URL: [ws[s]://]HOST:PORT/PATH[?QUERY], e.g.
 *             127.0.0.1:8080/console/web1?token=T (one token per session:
 *             virtconsoled accepts a token once) or websockify's
 *             127.0.0.1:6080/.  IPv6 hosts in brackets.  Masked binary
 *             frames, subprotocol `binary` (--subprotocol); text and binary
 *             frames from the server are both console bytes; pings are
 *             answered.  wss: TLS 1.2+, verified unless --insecure.
 *
 * TEST (exactly one):
 *   --echo SECONDS  each session types one byte, waits for its echo,
 *             records the round trip, and types the next (at once, or
 *             paced by --rate R per second per session, with a random
 *             phase per session; a late echo is never caught up with a
 *             burst).  The bytes are a..z in turn; any other byte received
 *             is stray.  After the window, echoes in flight are awaited up
 *             to --echo-timeout and still timed.
 *   --sink SECONDS  reads and counts everything for SECONDS (after typing
 *             --sink-cmd and Enter, if given; see below).
 *   --idle SECONDS  attaches and holds, silent.
 *
 * Preparing the guest (--prepare none|prompt|echo; the default is echo for
 * --echo, prompt for --sink, none for --idle):
 *   prompt    type '~' and ^U (ends the echo loop an earlier run may have
 *             left, clears the line), then Enter every 0.5 s until
 *             --prompt (default "# ") comes back.
 *   echo      prompt, then type (and Enter)
 *                 stty -icanon; while read -rn1 c && [ "$c" != '~' ]; do :; done
 *             The guest's tty now echoes each typed byte at once, in the
 *             guest kernel (one printable byte in, exactly that byte out),
 *             and the shell loop reads and drops the input until a '~', so
 *             nothing grows in the guest however long the test runs.  Then
 *             a random marker (@ and capitals) is typed until its echo is
 *             seen (bytes typed while the shell still owns the tty are not
 *             echoed), and the session waits for 0.3 s of silence.  Not
 *             `cat` ended by ^C: the lab's virtio console shells run with
 *             SIGINT ignored, inherited by their children, and a ^C at
 *             their prompt ends the shell.
 *   After the test (unless --no-restore) an echo session types '~' (the
 *   loop ends), and every prepared session then types ^U `stty sane` Enter.
 *   No ^C is ever typed, so a --sink-cmd must end by itself, e.g.
 *   'timeout 20 yes 0123456789abcdef' or 'yes | head -c 4000000'.
 *   Without a prepare step a session counts as attached once it has
 *   survived --settle seconds (default 1) after connecting, so refusals
 *   sent right after the connection are caught.
 *
 * Other options:
 *   --uri URI             libvirt mode: the connection (default: libvirt's)
 *   --force               libvirt mode: VIR_DOMAIN_CONSOLE_FORCE
 *   --rate R              echo: keystrokes per second per session (0: back
 *                         to back, the default)
 *   --echo-timeout S      echo: a keystroke whose echo takes longer is a
 *                         timeout, and the next is typed (default 5)
 *   --sink-cmd CMD        sink: typed (and Enter) at the start of the test
 *   --echo-setup CMD      echo: the guest command of --prepare echo (default
 *                         the read loop above; it must echo each typed
 *                         byte once and end on --echo-end)
 *   --echo-end STR        echo: what ends it (default "~")
 *   --no-restore          leave the guest as the test left it
 *   --prompt STR          prepare: the prompt text (default "# ")
 *   --prepare-timeout S   a session not prepared by then fails (default 60)
 *   --attach-timeout S    a session not connected by then fails (default 30)
 *   --parallel N          sessions connecting at once (default 16)
 *   --settle S            see above (default 1)
 *   --subprotocol P|none  ws/wss: Sec-WebSocket-Protocol (default binary)
 *   --origin O            ws/wss: send Origin: O
 *   --insecure            wss: do not verify the server's certificate
 *   --cafile F            wss: trust the certificates in F
 *   --targets-file F      more targets, one a line ('-': stdin; keeps
 *                         tokens out of the process list)
 *   --ready-file F        written (atomically) once every session is
 *                         attached and prepared (or has failed), before
 *                         the test starts: {"pid","state":"ready",
 *                         "sessions","open"}
 *   --done-file F         the same, "state":"done", when the test (and
 *                         restore) is over
 *   --hold-until-signal   after the test, keep every session open until
 *                         SIGUSR1, SIGTERM or SIGINT (a SIGUSR1 that came
 *                         earlier counts), then close and report
 *   --per-session 0|1     include the per_session array (default 1)
 *   -v                    log each session's attach and end on stderr
 * SIGTERM or SIGINT during the test ends it early ("interrupted": true,
 * test_s is the real window).  Before the test (attach, prepare) it stops
 * there: prepared sessions are restored, none counts as ready, no ready
 * file, status 1.  SIGPIPE is ignored.
 *
 * Output: one JSON object on stdout (all times in microseconds unless the
 * name says _s; a percentile object is {"count","min","p50","p90","p99",
 * "max","mean"}, with nulls when count is 0; percentiles are nearest-rank):
 *   tool "vcdload", schema 1, mode, test, seconds, rate, prepare,
 *   sessions          how many targets
 *   attached          sessions whose transport attached (libvirt: console
 *                     opened; unix: connected; ws: 101 received)
 *   ready             sessions attached and prepared (or settled): the
 *                     ones that took part in the test
 *   failed            sessions - ready
 *   interrupted       the test was cut short by a signal
 *   ok                no session failed, none was disconnected, no echo
 *                     timed out, no stray byte, no protocol or I/O error
 *   times             {attach_s, prepare_s, test_s, wall_s}: phase lengths
 *   attach_us         percentiles of connect-to-attached over sessions
 *   ready_us          percentiles of connect-to-ready
 *   rtt_us            echo: percentiles over every keystroke of every
 *                     session
 *   echo              {sent, echoed, timeouts, stray_bytes}
 *   bytes             {in, out, in_test}: console bytes (not frames)
 *                     received and sent over the whole run, received
 *                     during the test window
 *   throughput        {test_s, total_Bps, per_session_Bps (percentiles of
 *                     in_test/test_s over ready sessions)}
 *   errors            every one counted:
 *                     attach_failed  sessions not ready (= failed)
 *                     refused        a "refused" notice, a close code
 *                                    41xx, an HTTP status other than 101,
 *                                    ECONNREFUSED/ENOENT, a console libvirt
 *                                    would not open
 *                     disconnects    ready sessions that the server or an
 *                                    error ended (not vcdload)
 *                     notices        sessions that got a goodbye:
 *                                    virtconsoled's "[virtconsoled] KIND:
 *                                    REASON" line or the old design's
 *                                    "Client disconnected" (its bytes are
 *                                    not stray; the keystroke it cut short
 *                                    is not a timeout)
 *                     echo_timeouts, stray_bytes  as in "echo"
 *                     protocol       bad handshake or server frames
 *                     io             socket, TLS or stream errors
 *                     hypervisor_lost  the libvirt connection closed
 *   ends              {"by/what": count}: how sessions ended; by is
 *                     client, server or error; what is one of closed,
 *                     eof, reset, close frame, http refused, connect
 *                     failed, open failed, attach timeout, tls error, io
 *                     error, protocol error, stream error, prepare failed,
 *                     hypervisor lost
 *   client            {user_s, sys_s, max_rss_kib} of vcdload itself
 *   per_session       [{id, target (query hidden), attached, ready,
 *                     attach_us, ready_us, rtt_us, sent, echoed, timeouts,
 *                     stray, bytes_in, bytes_out, in_test, Bps, pings,
 *                     end: {by: client|server|error, phase, what, detail,
 *                     notice: {kind, reason}|null, close_code, http_status},
 *                     tail (last bytes received, escaped, when the server
 *                     or an error ended it)}]
 * Exit status: 0 if every session attached and was prepared, 1 if any did
 * not, 2 for a usage error.  Errors during the test are in "errors" and
 * "ok", not in the status.
 */
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "virtconsoled.h"

#define NS		1000000000LL
#define MS		1000000LL
#define READ_CHUNK	65536
#define SCAN_MAX	4096	/* prepare: bytes kept to look for a text */
#define TAIL_MAX	160	/* last bytes kept for the report */
#define HEAD_MAX	8192	/* a WebSocket handshake answer */
#define PROMPT_EVERY	(500 * MS)
#define SYNC_EVERY	(2 * NS)	/* above QEMU's 1 s pty poll */
#define QUIET		(300 * MS)
#define INTR_WAIT	(300 * MS)
#define CONNECT_RETRY	(10 * MS)
#define CLOSE_WAIT	(2 * NS)
#define RESTORE_WAIT	(300 * MS)

/*
 * The guest side of --echo: the tty echoes each typed byte (in the guest
 * kernel, as it arrives) and a shell loop reads and drops them, until a
 * '~'.  Not `cat` ended by ^C: the lab's virtio console shells start with
 * SIGINT ignored, which their children inherit.
 */
#define ECHO_SETUP	"stty -icanon; while read -rn1 c && [ \"$c\" != '~' ]; " \
			"do :; done"
#define ECHO_END	"~"

enum mode { MODE_LIBVIRT, MODE_UNIX, MODE_WS, MODE_WSS };
static const char *mode_names[] = { "libvirt", "unix", "ws", "wss" };

enum test { TEST_ECHO, TEST_SINK, TEST_IDLE };
static const char *test_names[] = { "echo", "sink", "idle" };

enum prep { PREP_NONE, PREP_PROMPT, PREP_ECHO, PREP_DEFAULT };
static const char *prep_names[] = { "none", "prompt", "echo" };

enum phase {
	PH_ATTACH = 0,
	PH_PREPARE,
	PH_TEST,
	PH_DRAIN,
	PH_RESTORE,
	PH_HOLD,
	PH_CLOSE,
};
static const char *phase_names[] = { "attach", "prepare", "test", "drain",
    "restore", "hold", "close" };

enum sess_state {
	ST_WAIT = 0,	/* not started */
	ST_CONNECT,	/* connect in progress, or retrying */
	ST_TLS,		/* TLS handshake */
	ST_UPGRADE,	/* WebSocket request sent, reading the answer */
	ST_OPEN,	/* attached: console bytes flow */
	ST_CLOSING,	/* our close frame sent: waiting for the server's */
	ST_DONE,	/* ended, transport released */
};

/* The prepare step of a session. */
enum pr_state {
	PR_NONE = 0,	/* nothing to do (yet) */
	PR_INTR,	/* ^C typed, waiting a moment */
	PR_PROMPT,	/* Enter every 0.5 s until the prompt */
	PR_SYNC,	/* setup typed; marker typed until it echoes */
	PR_QUIET,	/* waiting for silence */
	PR_READY,
	PR_FAILED,
};

enum end_by { END_NONE = 0, END_CLIENT, END_SERVER, END_ERROR };
static const char *end_by_names[] = { "none", "client", "server", "error" };

struct target {
	char			*spec;		/* as given */
	char			*shown;		/* for the report: no query */
	/* libvirt */
	char			*guest, *alias;
	/* unix */
	struct sockaddr_un	 sun;
	/* ws, wss */
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;
	char			*host;		/* for SNI and verification */
	char			*hostport;	/* Host: */
	char			*path;		/* with the query */
};

struct sess {
	unsigned int		 id;
	struct target		 t;
	enum sess_state		 state;
	int64_t			 due;		/* next timer work, 0: none */

	/* transport */
	int			 fd;
	int			 watch;
	int			 want_write;
	SSL			*ssl;
	virStreamPtr		 st;
	int			 st_cb;
	uint8_t			*out;		/* bytes not yet written */
	size_t			 outlen, outsize;
	/* WebSocket */
	struct ws_reader	*wr;
	char			 key[WS_B64_SIZE(16)];
	char			*head;
	size_t			 headlen;
	int			 http_status;
	int			 close_code;	/* from the server, 0: none */
	uint64_t		 pings;

	/* times (ns, monotonic) */
	int64_t			 t_start, t_attached, t_ready, t_state;
	int			 attached, ready, counted;

	/* prepare */
	enum pr_state		 pr;
	int64_t			 pr_next;
	char			 marker[16];
	uint8_t			 scan[SCAN_MAX];
	size_t			 scanlen;
	int			 prepared;	/* typed something: restore */

	/* echo */
	int			 waiting;
	uint8_t			 expect;
	unsigned int		 nkey;
	int64_t			 t_sent, next_send;
	uint32_t		*rtt;
	size_t			 nrtt, rttsize;
	uint64_t		 sent, echoed, timeouts, stray;

	/* counts */
	uint64_t		 bytes_in, bytes_out, in_test_start, in_test;
	uint8_t			 tail[TAIL_MAX];
	size_t			 taillen;

	/* end */
	enum end_by		 end_by;
	enum phase		 end_phase;
	char			 end_what[32];
	char			*end_detail;
	char			 notice_kind[16];
	char			*notice_reason;
	int			 refused, protocol_err, io_err, hv_lost;
};

static struct {
	enum mode		 mode;
	enum test		 test;
	enum prep		 prep;
	double			 seconds;
	double			 rate;
	double			 echo_timeout;
	double			 prepare_timeout;
	double			 attach_timeout;
	double			 settle;
	unsigned int		 parallel;
	const char		*uri;
	int			 force;
	const char		*sink_cmd;
	const char		*prompt;
	const char		*echo_setup;
	const char		*echo_end;
	const char		*subprotocol;	/* NULL: none */
	const char		*origin;
	int			 insecure;
	const char		*cafile;
	const char		*ready_file;
	const char		*done_file;
	int			 hold;
	int			 per_session;
	int			 restore;
	int			 verbose;

	struct sess		*s;
	size_t			 n;
	virConnectPtr		 conn;
	SSL_CTX			*ctx;
	enum phase		 phase;
	int			 timer;
	int64_t			 timer_due;
	size_t			 next_start;	/* attach: next session */
	unsigned int		 connecting;
	int			 sigpipe[2];
	volatile sig_atomic_t	 got_term, got_usr1;
	int			 interrupted;
	int			 hv_lost;
	uint64_t		 rng;
	virStreamPtr		*graveyard;	/* streams to free after dispatch */
	size_t			 ngrave, gravesize;
	int64_t			 t0, t_attach_end, t_prep_end, t_test0,
				 t_test1;
} g;

static void	sess_end(struct sess *, enum end_by, const char *,
		    const char *, ...) VCD_PRINTF(4, 5);
static void	sess_write(struct sess *, const void *, size_t);
static void	sess_attached(struct sess *);
static void	attach_more(void);
static void	sess_connect(struct sess *);
static void	sess_timer(struct sess *, int64_t);

/* ------------------------------------------------------------ helpers */

static int64_t
now_ns(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * NS + ts.tv_nsec;
}

static uint64_t
rng_next(void)
{
	/* xorshift64*: masks and phases, nothing secret. */
	g.rng ^= g.rng >> 12;
	g.rng ^= g.rng << 25;
	g.rng ^= g.rng >> 27;
	return g.rng * 2685821657736338717ULL;
}

static void VCD_NORETURN
usage(const char *why)
{
	if (why != NULL)
		fprintf(stderr, "vcdload: %s\n", why);
	fprintf(stderr, "usage: vcdload libvirt|unix|ws|wss "
	    "--echo|--sink|--idle SECONDS [options] TARGET...\n"
	    "(options and output: see the top of bench/vcdload.c)\n");
	exit(2);
}

static double
parse_seconds(const char *opt, const char *v)
{
	char	*end;
	double	 d;

	errno = 0;
	d = strtod(v, &end);
	if (errno != 0 || end == v || *end != '\0' || d < 0 || d > 1e7) {
		fprintf(stderr, "vcdload: %s: bad number '%s'\n", opt, v);
		exit(2);
	}
	return d;
}

/* The percentiles of n sorted values, as a JSON object. */
static void
json_pct(struct evbuffer *b, const uint32_t *v, size_t n)
{
	static const size_t	 ps[] = { 50, 90, 99 };
	static const char	*names[] = { "p50", "p90", "p99" };
	double			 sum = 0;
	size_t			 i, k;

	if (n == 0) {
		evbuffer_add_printf(b, "{\"count\":0,\"min\":null,\"p50\":null,"
		    "\"p90\":null,\"p99\":null,\"max\":null,\"mean\":null}");
		return;
	}
	for (i = 0; i < n; i++)
		sum += v[i];
	evbuffer_add_printf(b, "{\"count\":%zu,\"min\":%u", n, v[0]);
	for (i = 0; i < 3; i++) {
		/* Nearest rank: the smallest value with p% at or below it. */
		k = (ps[i] * n + 99) / 100;
		evbuffer_add_printf(b, ",\"%s\":%u", names[i], v[k - 1]);
	}
	evbuffer_add_printf(b, ",\"max\":%u,\"mean\":%.1f}", v[n - 1],
	    sum / (double)n);
}

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t	x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static void
u32_sort(uint32_t *v, size_t n)
{
	if (n > 1)
		qsort(v, n, sizeof *v, cmp_u32);
}

static void
u32_push(uint32_t **v, size_t *n, size_t *size, uint32_t x)
{
	if (*n == *size) {
		*size = *size ? *size * 2 : 64;
		*v = xrealloc(*v, *size * sizeof **v);
	}
	(*v)[(*n)++] = x;
}

static uint32_t
us_between(int64_t a, int64_t b)
{
	int64_t	d = (b - a) / 1000;

	if (d < 0)
		return 0;
	return d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
}

static void
write_file(const char *path, const char *text)
{
	char	*tmp;
	FILE	*fp;

	xasprintf(&tmp, "%s.tmp%ld", path, (long)getpid());
	if ((fp = fopen(tmp, "w")) == NULL) {
		log_warn("cannot write %s", tmp);
		free(tmp);
		return;
	}
	fputs(text, fp);
	if (fclose(fp) != 0 || rename(tmp, path) == -1)
		log_warn("cannot write %s", path);
	free(tmp);
}

static void
write_state_file(const char *path, const char *what)
{
	char	*text;
	size_t	 i, ready = 0;

	if (path == NULL)
		return;
	for (i = 0; i < g.n; i++)
		ready += g.s[i].ready && g.s[i].state != ST_DONE;
	xasprintf(&text, "{\"pid\":%ld,\"state\":\"%s\",\"sessions\":%zu,"
	    "\"open\":%zu}\n", (long)getpid(), what, g.n, ready);
	write_file(path, text);
	free(text);
}

/* ------------------------------------------------------------ the loop */

static void
sig_handler(int sig)
{
	int	e = errno;
	char	c = (char)sig;

	if (sig == SIGUSR1)
		g.got_usr1 = 1;
	else
		g.got_term = 1;
	if (write(g.sigpipe[1], &c, 1) == -1) {
		/* Full pipe: a wakeup is pending anyway. */
	}
	errno = e;
}

static void
sigpipe_cb(int watch, int fd, int events, void *opaque)
{
	char	buf[64];

	while (read(fd, buf, sizeof buf) > 0)
		;
}

static void
timer_cb(int timer, void *opaque)
{
	int64_t	now = now_ns();
	size_t	i;

	g.timer_due = 0;
	for (i = 0; i < g.n; i++)
		if (g.s[i].due != 0 && g.s[i].due <= now)
			sess_timer(&g.s[i], now);
}

/* Program the one timer for the earliest due session or phase end. */
static void
timer_program(int64_t phase_due)
{
	int64_t	due = phase_due, now;
	size_t	i;
	long	ms;

	for (i = 0; i < g.n; i++)
		if (g.s[i].due != 0 && (due == 0 || g.s[i].due < due))
			due = g.s[i].due;
	if (due == g.timer_due)
		return;
	g.timer_due = due;
	if (due == 0) {
		virEventUpdateTimeout(g.timer, -1);
		return;
	}
	now = now_ns();
	ms = due <= now ? 0 : (long)((due - now + MS - 1) / MS);
	virEventUpdateTimeout(g.timer, (int)(ms > 86400000 ? 86400000 : ms));
}

/* Free the streams ended in callbacks, now that none is dispatching. */
static void
graveyard_empty(void)
{
	size_t	i;

	for (i = 0; i < g.ngrave; i++)
		virStreamFree(g.graveyard[i]);
	g.ngrave = 0;
}

/* One turn of the loop; phase_due wakes it for the caller's deadline. */
static void
loop_once(int64_t phase_due)
{
	timer_program(phase_due);
	if (virEventRunDefaultImpl() == -1)
		fatalx("event loop: %s", virGetLastErrorMessage());
	graveyard_empty();
}

/* ------------------------------------------------------------ targets */

static void
target_parse_ws(struct target *t, const char *spec)
{
	const char	*p = spec, *slash, *q;
	char		*auth, *host, *port, *colon;
	struct addrinfo	 hints, *res;
	int		 tls = g.mode == MODE_WSS, rc;

	if (strncmp(p, "ws://", 5) == 0) {
		if (tls)
			usage("a ws:// URL in wss mode");
		p += 5;
	} else if (strncmp(p, "wss://", 6) == 0) {
		if (!tls)
			usage("a wss:// URL in ws mode");
		p += 6;
	}
	slash = strchr(p, '/');
	auth = slash ? xstrndup(p, (size_t)(slash - p)) : xstrdup(p);
	t->path = xstrdup(slash ? slash : "/");
	if (auth[0] == '[') {
		if ((colon = strchr(auth, ']')) == NULL)
			usage("bad IPv6 address in a URL");
		host = xstrndup(auth + 1, (size_t)(colon - auth - 1));
		port = xstrdup(colon[1] == ':' ? colon + 2 : tls ? "443" :
		    "80");
	} else if ((colon = strrchr(auth, ':')) != NULL) {
		host = xstrndup(auth, (size_t)(colon - auth));
		port = xstrdup(colon + 1);
	} else {
		host = xstrdup(auth);
		port = xstrdup(tls ? "443" : "80");
	}
	memset(&hints, 0, sizeof hints);
	hints.ai_socktype = SOCK_STREAM;
	if ((rc = getaddrinfo(host, port, &hints, &res)) != 0) {
		fprintf(stderr, "vcdload: %s: %s\n", host, gai_strerror(rc));
		exit(2);
	}
	memcpy(&t->ss, res->ai_addr, res->ai_addrlen);
	t->sslen = res->ai_addrlen;
	freeaddrinfo(res);
	t->host = host;
	t->hostport = auth;
	free(port);
	q = strchr(t->path, '?');
	if (q != NULL)
		xasprintf(&t->shown, "%s%.*s?...", auth, (int)(q - t->path),
		    t->path);
	else
		xasprintf(&t->shown, "%s%s", auth, t->path);
}

static void
target_parse(struct target *t, const char *spec)
{
	const char	*colon;

	memset(t, 0, sizeof *t);
	t->spec = xstrdup(spec);
	switch (g.mode) {
	case MODE_LIBVIRT:
		if ((colon = strchr(spec, ':')) != NULL) {
			t->guest = xstrndup(spec, (size_t)(colon - spec));
			t->alias = xstrdup(colon + 1);
		} else
			t->guest = xstrdup(spec);
		t->shown = xstrdup(spec);
		break;
	case MODE_UNIX:
		if (strlen(spec) >= sizeof t->sun.sun_path)
			usage("socket path too long");
		t->sun.sun_family = AF_UNIX;
		memcpy(t->sun.sun_path, spec, strlen(spec) + 1);
		t->shown = xstrdup(spec);
		break;
	case MODE_WS:
	case MODE_WSS:
		target_parse_ws(t, spec);
		break;
	}
}

static void
target_add(const char *spec)
{
	if (g.n % 64 == 0)
		g.s = xrealloc(g.s, (g.n + 64) * sizeof *g.s);
	memset(&g.s[g.n], 0, sizeof g.s[g.n]);
	g.s[g.n].id = (unsigned int)g.n;
	g.s[g.n].fd = -1;
	g.s[g.n].watch = -1;
	target_parse(&g.s[g.n].t, spec);
	g.n++;
}

static void
targets_read(const char *path)
{
	FILE	*fp;
	char	*line = NULL;
	size_t	 size = 0;
	ssize_t	 len;

	fp = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
	if (fp == NULL) {
		fprintf(stderr, "vcdload: %s: %s\n", path, strerror(errno));
		exit(2);
	}
	while ((len = getline(&line, &size, fp)) != -1) {
		while (len > 0 && (line[len - 1] == '\n' ||
		    line[len - 1] == '\r' || line[len - 1] == ' '))
			line[--len] = '\0';
		if (len > 0 && line[0] != '#')
			target_add(line);
	}
	free(line);
	if (fp != stdin)
		fclose(fp);
}

/* ------------------------------------------------------------ sessions */

static void
sess_log(struct sess *s, const char *fmt, ...) VCD_PRINTF(2, 3);

static void
sess_log(struct sess *s, const char *fmt, ...)
{
	va_list	 ap;
	char	*msg;

	if (!g.verbose)
		return;
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) == -1)
		msg = NULL;
	va_end(ap);
	fprintf(stderr, "vcdload: %.3f session %u %s: %s\n",
	    (double)(now_ns() - g.t0) / NS, s->id, s->t.shown, msg ? msg : fmt);
	free(msg);
}

/* Keep the last max bytes of a stream in buf. */
static void
keep_last(uint8_t *buf, size_t *len, size_t max, const uint8_t *p, size_t n)
{
	if (n >= max) {
		memcpy(buf, p + n - max, max);
		*len = max;
		return;
	}
	if (*len + n > max) {
		memmove(buf, buf + (*len + n - max), max - n);
		*len = max - n;
	}
	memcpy(buf + *len, p, n);
	*len += n;
}

static int
scan_has(struct sess *s, const char *text)
{
	return memmem(s->scan, s->scanlen, text, strlen(text)) != NULL;
}

/*
 * How a server said goodbye: virtconsoled's notice line, or the old
 * design's "Client disconnected", found in the last bytes received.
 * Returns how many of those bytes the goodbye took (with the CRLFs before
 * it), so that an echo test does not count them as stray.
 */
static size_t
sess_find_notice(struct sess *s)
{
	static const char	 tag[] = "[virtconsoled] ", old[] =
				     "Client disconnected";
	const uint8_t		*start, *p, *end = s->tail + s->taillen;
	const uint8_t		*colon, *eol;
	size_t			 k;

	if ((start = memmem(s->tail, s->taillen, tag, sizeof tag - 1)) !=
	    NULL) {
		p = start + sizeof tag - 1;
		if ((colon = memchr(p, ':', (size_t)(end - p))) == NULL)
			return 0;
		k = (size_t)(colon - p);
		if (k >= sizeof s->notice_kind)
			k = sizeof s->notice_kind - 1;
		memcpy(s->notice_kind, p, k);
		s->notice_kind[k] = '\0';
		p = colon + 1;
		while (p < end && *p == ' ')
			p++;
		eol = memchr(p, '\r', (size_t)(end - p));
		s->notice_reason = xstrndup((const char *)p,
		    (size_t)((eol ? eol : end) - p));
		if (strcmp(s->notice_kind, "refused") == 0)
			s->refused = 1;
	} else if ((start = memmem(s->tail, s->taillen, old, sizeof old -
	    1)) != NULL) {
		snprintf(s->notice_kind, sizeof s->notice_kind, "goodbye");
		s->notice_reason = xstrdup(old);
	} else
		return 0;
	while (start > s->tail && (start[-1] == '\r' || start[-1] == '\n'))
		start--;
	return (size_t)(end - start);
}

/* Release the transport: the fd, TLS, the stream. */
static void
sess_release(struct sess *s)
{
	if (s->watch != -1) {
		virEventRemoveHandle(s->watch);
		s->watch = -1;
	}
	if (s->ssl != NULL) {
		SSL_free(s->ssl);
		s->ssl = NULL;
	}
	if (s->fd != -1) {
		close(s->fd);
		s->fd = -1;
	}
	if (s->st != NULL) {
		if (s->st_cb)
			virStreamEventRemoveCallback(s->st);
		s->st_cb = 0;
		virStreamAbort(s->st);
		virResetLastError();
		if (g.ngrave == g.gravesize) {
			g.gravesize = g.gravesize ? g.gravesize * 2 : 16;
			g.graveyard = xrealloc(g.graveyard, g.gravesize *
			    sizeof(virStreamPtr));
		}
		g.graveyard[g.ngrave++] = s->st;
		s->st = NULL;
	}
	free(s->wr);
	s->wr = NULL;
	free(s->head);
	s->head = NULL;
	s->outlen = 0;
}

/* The session is over; the first reason is kept. */
static void
sess_end(struct sess *s, enum end_by by, const char *what, const char *fmt,
    ...)
{
	va_list		ap;
	enum sess_state	was = s->state;
	size_t		k;

	if (s->state == ST_DONE)
		return;
	s->state = ST_DONE;
	s->due = 0;
	s->end_by = by;
	s->end_phase = g.phase;
	snprintf(s->end_what, sizeof s->end_what, "%s", what);
	va_start(ap, fmt);
	if (vasprintf(&s->end_detail, fmt, ap) == -1)
		s->end_detail = NULL;
	va_end(ap);
	k = sess_find_notice(s);
	/* The goodbye is not stray echo, nor the keystroke it cut short. */
	if (s->ready && (g.phase == PH_TEST || g.phase == PH_DRAIN) &&
	    g.test == TEST_ECHO)
		s->stray -= k < s->stray ? k : s->stray;
	s->waiting = 0;
	sess_release(s);
	if (by != END_CLIENT)
		sess_log(s, "ended in %s: %s %s: %s", phase_names[g.phase],
		    end_by_names[by], what, s->end_detail ? s->end_detail : "");
	if (was > ST_WAIT && was < ST_OPEN) {
		g.connecting--;
		attach_more();
	}
}

/* ------------------------------------------------------------ writing */

static void
out_append(struct sess *s, const void *p, size_t n)
{
	if (s->outlen + n > s->outsize) {
		s->outsize = (s->outlen + n) * 2;
		s->out = xrealloc(s->out, s->outsize);
	}
	memcpy(s->out + s->outlen, p, n);
	s->outlen += n;
}

static void
out_consume(struct sess *s, size_t n)
{
	memmove(s->out, s->out + n, s->outlen - n);
	s->outlen -= n;
}

static void
watch_update(struct sess *s, int want_write)
{
	if (s->watch == -1 || s->want_write == want_write)
		return;
	s->want_write = want_write;
	virEventUpdateHandle(s->watch, VIR_EVENT_HANDLE_READABLE |
	    (want_write ? VIR_EVENT_HANDLE_WRITABLE : 0));
}

static const char *
ssl_error_text(void)
{
	static char	buf[256];
	unsigned long	e = ERR_get_error();

	if (e == 0)
		return errno ? strerror(errno) : "connection closed";
	ERR_error_string_n(e, buf, sizeof buf);
	ERR_clear_error();
	return buf;
}

/* Write what is queued; returns -1 if the session ended. */
static int
sess_flush(struct sess *s)
{
	ssize_t	n;
	int	rc, err;

	if (s->state == ST_DONE)
		return -1;
	if (g.mode == MODE_LIBVIRT) {
		while (s->outlen > 0) {
			rc = virStreamSend(s->st, (const char *)s->out,
			    s->outlen);
			if (rc == -2)
				break;
			if (rc < 0) {
				s->io_err = 1;
				sess_end(s, END_ERROR, "stream error",
				    "virStreamSend: %s",
				    virGetLastErrorMessage());
				return -1;
			}
			out_consume(s, (size_t)rc);
		}
		virStreamEventUpdateCallback(s->st,
		    VIR_STREAM_EVENT_READABLE | VIR_STREAM_EVENT_ERROR |
		    VIR_STREAM_EVENT_HANGUP |
		    (s->outlen > 0 ? VIR_STREAM_EVENT_WRITABLE : 0));
		return 0;
	}
	while (s->outlen > 0) {
		if (s->ssl != NULL) {
			ERR_clear_error();
			rc = SSL_write(s->ssl, s->out, (int)s->outlen);
			if (rc <= 0) {
				err = SSL_get_error(s->ssl, rc);
				if (err == SSL_ERROR_WANT_WRITE ||
				    err == SSL_ERROR_WANT_READ)
					break;
				s->io_err = 1;
				sess_end(s, END_ERROR, "tls error",
				    "SSL_write: %s", ssl_error_text());
				return -1;
			}
			n = rc;
		} else {
			n = write(s->fd, s->out, s->outlen);
			if (n == -1) {
				if (errno == EAGAIN || errno == EINTR)
					break;
				if (errno == EPIPE || errno == ECONNRESET) {
					sess_end(s, END_SERVER, "reset",
					    "connection closed by the server "
					    "(write: %s)", strerror(errno));
					return -1;
				}
				s->io_err = 1;
				sess_end(s, END_ERROR, "io error", "write: %s",
				    strerror(errno));
				return -1;
			}
		}
		out_consume(s, (size_t)n);
	}
	watch_update(s, s->outlen > 0);
	return 0;
}

/* A client frame: masked, as RFC 6455 5.3 requires. */
static void
ws_send_frame(struct sess *s, int opcode, const void *p, size_t n)
{
	uint8_t		hdr[WS_HEADER_MAX + 4], *dst;
	uint32_t	key = (uint32_t)rng_next();
	size_t		h, i;

	h = ws_frame_header(hdr, opcode, 1, n);
	hdr[1] |= 0x80;
	memcpy(hdr + h, &key, 4);
	out_append(s, hdr, h + 4);
	out_append(s, p, n);
	dst = s->out + s->outlen - n;
	for (i = 0; i < n; i++)
		dst[i] ^= hdr[h + (i & 3)];
}

/* Console bytes to the guest. */
static void
sess_write(struct sess *s, const void *p, size_t n)
{
	if (s->state != ST_OPEN)
		return;
	s->bytes_out += n;
	if (g.mode == MODE_WS || g.mode == MODE_WSS)
		ws_send_frame(s, WS_OP_BINARY, p, n);
	else
		out_append(s, p, n);
	sess_flush(s);
}

static void
sess_type(struct sess *s, const char *text)
{
	sess_write(s, text, strlen(text));
}

/* ------------------------------------------------------------ tests */

static void
echo_send(struct sess *s, int64_t now)
{
	s->expect = (uint8_t)('a' + s->nkey++ % 26);
	s->waiting = 1;
	s->t_sent = now;
	s->sent++;
	s->due = now + (int64_t)(g.echo_timeout * NS);
	sess_write(s, &s->expect, 1);
}

/* After an echo (or a timeout): type the next key now or when due. */
static void
echo_next(struct sess *s, int64_t now)
{
	if (g.phase != PH_TEST) {
		s->due = 0;
		return;
	}
	if (g.rate <= 0 || now >= s->next_send) {
		if (g.rate > 0)
			s->next_send += (int64_t)(NS / g.rate);
		if (s->next_send < now)
			s->next_send = now;
		echo_send(s, now);
	} else
		s->due = s->next_send;
}

static void
echo_data(struct sess *s, const uint8_t *p, size_t n, int64_t now)
{
	size_t	i;

	for (i = 0; i < n; i++) {
		if (s->waiting && p[i] == s->expect) {
			s->waiting = 0;
			s->echoed++;
			u32_push(&s->rtt, &s->nrtt, &s->rttsize,
			    us_between(s->t_sent, now));
			echo_next(s, now);
		} else
			s->stray++;
	}
}

/* ------------------------------------------------------------ prepare */

static void
sess_ready(struct sess *s, int64_t now)
{
	s->pr = PR_READY;
	s->ready = 1;
	s->t_ready = now;
	s->due = 0;
	sess_log(s, "ready after %.1f ms", (double)(now - s->t_start) / MS);
}

static void
prep_fail(struct sess *s, const char *why)
{
	s->pr = PR_FAILED;
	sess_end(s, END_ERROR, "prepare failed", "%s; last bytes: %s", why,
	    log_esc_len(s->tail, s->taillen));
}

static void
prep_marker(struct sess *s, int64_t now)
{
	static const char	alpha[] = "ABCDEFGHJKLMNPQRSTUVWXYZ";
	size_t			i;

	s->marker[0] = '@';
	for (i = 1; i < 9; i++)
		s->marker[i] = alpha[rng_next() % (sizeof alpha - 1)];
	s->marker[9] = '@';
	s->marker[10] = '\0';
	s->pr_next = now + SYNC_EVERY;
	sess_type(s, s->marker);
}

/* The prepare step's progress, on data and on timers. */
static void
prep_step(struct sess *s, int64_t now)
{
	if (s->state != ST_OPEN)
		return;
	switch (s->pr) {
	case PR_INTR:
		if (now < s->pr_next)
			break;
		s->pr = PR_PROMPT;
		s->scanlen = 0;
		s->pr_next = now + PROMPT_EVERY;
		sess_type(s, "\r");
		break;
	case PR_PROMPT:
		if (scan_has(s, g.prompt)) {
			if (g.prep == PREP_PROMPT) {
				s->pr = PR_QUIET;
				s->pr_next = now + QUIET;
				break;
			}
			s->pr = PR_SYNC;
			s->scanlen = 0;
			sess_type(s, g.echo_setup);
			sess_type(s, "\r");
			prep_marker(s, now);
		} else if (now >= s->pr_next) {
			s->pr_next = now + PROMPT_EVERY;
			sess_type(s, "\r");
		}
		break;
	case PR_SYNC:
		if (scan_has(s, s->marker)) {
			s->pr = PR_QUIET;
			s->pr_next = now + QUIET;
		} else if (now >= s->pr_next)
			prep_marker(s, now);
		break;
	case PR_QUIET:
		if (now >= s->pr_next)
			sess_ready(s, now);
		break;
	default:
		break;
	}
	if (s->state != ST_OPEN || s->pr == PR_READY)
		return;
	s->due = s->pr_next;
	if (now - s->t_attached > (int64_t)(g.prepare_timeout * NS))
		prep_fail(s, "prepare timeout");
}

static void
prep_start(struct sess *s, int64_t now)
{
	if (g.prep == PREP_NONE || s->state != ST_OPEN)
		return;
	s->prepared = 1;
	s->pr = PR_INTR;
	s->pr_next = now + INTR_WAIT;
	s->due = s->pr_next;
	/* End an echo loop an earlier run left, and clear the line. */
	sess_type(s, g.echo_end);
	sess_type(s, "\025");
}

/* ------------------------------------------------------------ data in */

/* Console bytes from the guest. */
static void
sess_data(struct sess *s, const uint8_t *p, size_t n)
{
	int64_t	now;

	if (n == 0 || s->state == ST_DONE)
		return;
	now = now_ns();
	s->bytes_in += n;
	keep_last(s->tail, &s->taillen, TAIL_MAX, p, n);
	if (g.phase == PH_TEST && s->ready) {
		if (g.test == TEST_ECHO)
			echo_data(s, p, n, now);
		return;
	}
	if (g.phase == PH_DRAIN && g.test == TEST_ECHO && s->ready) {
		echo_data(s, p, n, now);
		return;
	}
	switch (s->pr) {
	case PR_PROMPT:
	case PR_SYNC:
		keep_last(s->scan, &s->scanlen, SCAN_MAX, p, n);
		prep_step(s, now);
		break;
	case PR_QUIET:
		s->pr_next = now + QUIET;
		s->due = s->pr_next;
		break;
	default:
		break;
	}
}

static void
sess_timer(struct sess *s, int64_t now)
{
	s->due = 0;
	switch (s->state) {
	case ST_WAIT:
	case ST_DONE:
		return;
	case ST_CONNECT:
	case ST_TLS:
	case ST_UPGRADE:
		if (now - s->t_start > (int64_t)(g.attach_timeout * NS)) {
			s->io_err = 1;
			sess_end(s, END_ERROR, "attach timeout",
			    "not attached after %.0f s", g.attach_timeout);
			return;
		}
		if (s->state == ST_CONNECT && s->fd == -1) {
			/* The listen backlog was full: try again. */
			sess_connect(s);
			return;
		}
		s->due = s->t_start + (int64_t)(g.attach_timeout * NS) + MS;
		return;
	case ST_CLOSING:
		sess_end(s, END_CLIENT, "closed", "no close frame from the "
		    "server after %d s", (int)(CLOSE_WAIT / NS));
		return;
	case ST_OPEN:
		break;
	}
	if (s->pr != PR_READY && s->pr != PR_NONE) {
		prep_step(s, now);
		return;
	}
	if (g.phase != PH_TEST && g.phase != PH_DRAIN)
		return;
	if (g.test != TEST_ECHO || !s->ready)
		return;
	if (s->waiting) {
		if (now - s->t_sent >= (int64_t)(g.echo_timeout * NS)) {
			s->waiting = 0;
			s->timeouts++;
			echo_next(s, now);
		} else
			s->due = s->t_sent + (int64_t)(g.echo_timeout * NS);
		return;
	}
	echo_next(s, now);
}

/* ------------------------------------------------------------ WebSocket */

static void
ws_request(struct sess *s)
{
	uint8_t	 raw[16];
	char	*req;

	if (getrandom(raw, sizeof raw, 0) != sizeof raw)
		fatal("getrandom");
	ws_b64_encode(raw, sizeof raw, s->key);
	xasprintf(&req, "GET %s HTTP/1.1\r\nHost: %s\r\n"
	    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
	    "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
	    "%s%s%s%s%s%s\r\n", s->t.path, s->t.hostport, s->key,
	    g.subprotocol ? "Sec-WebSocket-Protocol: " : "",
	    g.subprotocol ? g.subprotocol : "", g.subprotocol ? "\r\n" : "",
	    g.origin ? "Origin: " : "", g.origin ? g.origin : "",
	    g.origin ? "\r\n" : "");
	s->state = ST_UPGRADE;
	out_append(s, req, strlen(req));
	free(req);
	sess_flush(s);
}

/* The value of a header in a response head, or NULL. */
static char *
head_field(char *head, const char *name, char *buf, size_t len)
{
	char	*line, *v, *eol;
	size_t	 k = strlen(name);

	for (line = strstr(head, "\r\n"); line != NULL;
	    line = strstr(line, "\r\n")) {
		line += 2;
		if (strncasecmp(line, name, k) != 0 || line[k] != ':')
			continue;
		v = line + k + 1;
		while (*v == ' ' || *v == '\t')
			v++;
		eol = strstr(v, "\r\n");
		k = eol ? (size_t)(eol - v) : strlen(v);
		while (k > 0 && (v[k - 1] == ' ' || v[k - 1] == '\t'))
			k--;
		snprintf(buf, len, "%.*s", (int)k, v);
		return buf;
	}
	return NULL;
}

static void ws_input(struct sess *, const uint8_t *, size_t);

/* The status of "HTTP/1.x NNN ...", or -1. */
static int
http_status(const char *head)
{
	char	*end;
	long	 v;

	if (strncmp(head, "HTTP/1.", 7) != 0 || head[7] < '0' ||
	    head[7] > '9' || head[8] != ' ')
		return -1;
	errno = 0;
	v = strtol(head + 9, &end, 10);
	if (errno != 0 || end != head + 12 || v < 100 || v > 599 ||
	    (*end != ' ' && *end != '\r'))
		return -1;
	return (int)v;
}

/* Bytes of the handshake answer; the rest are frames. */
static void
ws_upgrade_input(struct sess *s, const uint8_t *p, size_t n)
{
	char		*end, want[WS_ACCEPT_LEN], got[128], proto[128];
	size_t		 hlen, rest;

	if (s->head == NULL)
		s->head = xmalloc(HEAD_MAX + 1);
	if (s->headlen + n > HEAD_MAX) {
		s->protocol_err = 1;
		sess_end(s, END_ERROR, "protocol error",
		    "handshake answer over %d bytes", HEAD_MAX);
		return;
	}
	memcpy(s->head + s->headlen, p, n);
	s->headlen += n;
	s->head[s->headlen] = '\0';
	if ((end = strstr(s->head, "\r\n\r\n")) == NULL)
		return;
	hlen = (size_t)(end - s->head) + 4;
	rest = s->headlen - hlen;
	end[2] = '\0';
	if ((s->http_status = http_status(s->head)) == -1) {
		s->protocol_err = 1;
		sess_end(s, END_ERROR, "protocol error", "bad status line");
		return;
	}
	if (s->http_status != 101) {
		keep_last(s->tail, &s->taillen, TAIL_MAX, (uint8_t *)s->head,
		    s->headlen);
		s->refused = 1;
		sess_end(s, END_SERVER, "http refused", "HTTP %d",
		    s->http_status);
		return;
	}
	if (ws_accept_key(s->key, want) == -1 ||
	    head_field(s->head, "Sec-WebSocket-Accept", got, sizeof got) ==
	    NULL || strcmp(got, want) != 0) {
		s->protocol_err = 1;
		sess_end(s, END_ERROR, "protocol error",
		    "bad Sec-WebSocket-Accept");
		return;
	}
	if (head_field(s->head, "Sec-WebSocket-Protocol", proto,
	    sizeof proto) != NULL && (g.subprotocol == NULL ||
	    strcmp(proto, g.subprotocol) != 0)) {
		s->protocol_err = 1;
		sess_end(s, END_ERROR, "protocol error",
		    "server chose subprotocol %s", log_esc(proto));
		return;
	}
	s->wr = xmalloc(sizeof *s->wr);
	ws_reader_init_client(s->wr, 0);
	memmove(s->head, s->head + hlen, rest);
	sess_attached(s);
	if (rest > 0 && s->state == ST_OPEN)
		ws_input(s, (uint8_t *)s->head, rest);
	free(s->head);
	s->head = NULL;
}

static void
ws_input(struct sess *s, const uint8_t *p, size_t n)
{
	struct ws_event	ev;
	uint8_t		payload[WS_CONTROL_MAX];
	size_t		used, plen;
	int		rc;

	for (;;) {
		if (s->state != ST_OPEN && s->state != ST_CLOSING)
			return;
		rc = ws_reader_feed(s->wr, p, n, &used, &ev);
		p += used;
		n -= used;
		switch (rc) {
		case WS_EV_NEED_MORE:
			return;
		case WS_EV_DATA:
			sess_data(s, ev.data, ev.len);
			break;
		case WS_EV_PING:
			s->pings++;
			ws_send_frame(s, WS_OP_PONG, ev.data, ev.len);
			sess_flush(s);
			break;
		case WS_EV_PONG:
			break;
		case WS_EV_CLOSE:
			s->close_code = ev.code;
			if (s->state == ST_CLOSING) {
				sess_end(s, END_CLIENT, "closed",
				    "close frames exchanged");
				return;
			}
			/* Answer with the same code, then wait for EOF. */
			plen = ws_close_payload(payload, ev.code, NULL);
			ws_send_frame(s, WS_OP_CLOSE, payload, plen);
			sess_flush(s);
			sess_end(s, END_SERVER, "close frame", "%u %s",
			    ev.code, log_esc_len(ev.reason, ev.reason_len));
			if (ev.code >= 4100 && ev.code < 4200)
				s->refused = 1;
			return;
		case WS_EV_ERROR:
			s->protocol_err = 1;
			sess_end(s, END_ERROR, "protocol error",
			    "server frames: %u %s", ev.code, ev.reason);
			return;
		}
	}
}

/* ------------------------------------------------------------ sockets */

static void
sess_attached(struct sess *s)
{
	int64_t	now = now_ns();

	s->state = ST_OPEN;
	s->attached = 1;
	s->t_attached = now;
	s->due = 0;
	g.connecting--;
	sess_log(s, "attached after %.1f ms", (double)(now - s->t_start) / MS);
	if (g.phase == PH_PREPARE || g.phase == PH_ATTACH)
		prep_start(s, now);
	attach_more();
}

static void
sess_read(struct sess *s)
{
	static uint8_t	buf[READ_CHUNK];
	ssize_t		n;
	int		rc, err;

	for (;;) {
		if (s->state == ST_DONE)
			return;
		if (s->ssl != NULL) {
			ERR_clear_error();
			rc = SSL_read(s->ssl, buf, sizeof buf);
			if (rc <= 0) {
				err = SSL_get_error(s->ssl, rc);
				if (err == SSL_ERROR_WANT_READ ||
				    err == SSL_ERROR_WANT_WRITE)
					return;
				/* EOF, with or without close_notify */
				if (err == SSL_ERROR_ZERO_RETURN ||
				    (err == SSL_ERROR_SYSCALL &&
				    ERR_peek_error() == 0 && rc == 0))
					n = 0;
				else {
					s->io_err = 1;
					sess_end(s, END_ERROR, "tls error",
					    "SSL_read: %s", ssl_error_text());
					return;
				}
			} else
				n = rc;
		} else {
			n = read(s->fd, buf, sizeof buf);
			if (n == -1) {
				if (errno == EAGAIN || errno == EINTR)
					return;
				if (errno == ECONNRESET) {
					/* It closed while we were typing. */
					sess_end(s, END_SERVER, "reset",
					    "connection reset by the server");
					return;
				}
				s->io_err = 1;
				sess_end(s, END_ERROR, "io error", "read: %s",
				    strerror(errno));
				return;
			}
		}
		if (n == 0) {
			if (s->state == ST_CLOSING)
				sess_end(s, END_CLIENT, "closed",
				    "server closed after our close frame");
			else
				sess_end(s, END_SERVER, "eof",
				    "server closed the connection");
			return;
		}
		switch (s->state) {
		case ST_UPGRADE:
			ws_upgrade_input(s, buf, (size_t)n);
			break;
		case ST_OPEN:
		case ST_CLOSING:
			if (s->wr != NULL)
				ws_input(s, buf, (size_t)n);
			else
				sess_data(s, buf, (size_t)n);
			break;
		default:
			return;
		}
	}
}

static void
sess_tls_step(struct sess *s)
{
	int	rc, err;

	ERR_clear_error();
	rc = SSL_connect(s->ssl);
	if (rc == 1) {
		ws_request(s);
		return;
	}
	err = SSL_get_error(s->ssl, rc);
	if (err == SSL_ERROR_WANT_READ)
		watch_update(s, 0);
	else if (err == SSL_ERROR_WANT_WRITE)
		watch_update(s, 1);
	else {
		s->io_err = 1;
		sess_end(s, END_ERROR, "tls error", "handshake: %s",
		    ssl_error_text());
	}
}

static void
sess_connected(struct sess *s)
{
	X509_VERIFY_PARAM	*vp;
	struct in6_addr		 a6;
	int			 one = 1;

	if (g.mode == MODE_UNIX) {
		sess_attached(s);
		return;
	}
	setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (g.mode == MODE_WS) {
		ws_request(s);
		return;
	}
	s->state = ST_TLS;
	if ((s->ssl = SSL_new(g.ctx)) == NULL)
		fatalx("SSL_new: %s", ssl_error_text());
	SSL_set_fd(s->ssl, s->fd);
	SSL_set_mode(s->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (!g.insecure) {
		vp = SSL_get0_param(s->ssl);
		if (X509_VERIFY_PARAM_set1_ip_asc(vp, s->t.host) != 1)
			SSL_set1_host(s->ssl, s->t.host);
	}
	/* SNI names a host, never an address. */
	if (inet_pton(AF_INET, s->t.host, &a6) != 1 &&
	    inet_pton(AF_INET6, s->t.host, &a6) != 1)
		SSL_set_tlsext_host_name(s->ssl, s->t.host);
	sess_tls_step(s);
}

static void
sock_cb(int watch, int fd, int events, void *opaque)
{
	struct sess	*s = opaque;
	int		 err = 0;
	socklen_t	 len = sizeof err;

	switch (s->state) {
	case ST_CONNECT:
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
			err = errno;
		if (err != 0) {
			s->io_err = 1;
			s->refused = err == ECONNREFUSED;
			sess_end(s, END_ERROR, "connect failed", "%s",
			    strerror(err));
			return;
		}
		watch_update(s, 0);
		sess_connected(s);
		return;
	case ST_TLS:
		sess_tls_step(s);
		return;
	case ST_DONE:
	case ST_WAIT:
		return;
	default:
		break;
	}
	if (events & VIR_EVENT_HANDLE_WRITABLE) {
		if (sess_flush(s) == -1)
			return;
	}
	if (events & (VIR_EVENT_HANDLE_READABLE | VIR_EVENT_HANDLE_ERROR |
	    VIR_EVENT_HANDLE_HANGUP))
		sess_read(s);
}

/* Start (or retry) a socket connection. */
static void
sess_connect(struct sess *s)
{
	const struct sockaddr	*sa;
	socklen_t		 salen;
	int			 fd, family;

	if (g.mode == MODE_UNIX) {
		sa = (const struct sockaddr *)&s->t.sun;
		salen = sizeof s->t.sun;
		family = AF_UNIX;
	} else {
		sa = (const struct sockaddr *)&s->t.ss;
		salen = s->t.sslen;
		family = s->t.ss.ss_family;
	}
	fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		fatal("socket");
	if (connect(fd, sa, salen) == -1 && errno != EINPROGRESS) {
		if (errno == EAGAIN && g.mode == MODE_UNIX) {
			/* A full listen backlog: a retry is due. */
			close(fd);
			s->due = now_ns() + CONNECT_RETRY;
			return;
		}
		close(fd);
		s->io_err = 1;
		s->refused = errno == ECONNREFUSED || errno == ENOENT;
		sess_end(s, END_ERROR, "connect failed", "%s",
		    strerror(errno));
		return;
	}
	s->fd = fd;
	s->want_write = 1;
	s->watch = virEventAddHandle(fd, VIR_EVENT_HANDLE_READABLE |
	    VIR_EVENT_HANDLE_WRITABLE, sock_cb, s, NULL);
	if (s->watch == -1)
		fatalx("virEventAddHandle failed");
	s->due = s->t_start + (int64_t)(g.attach_timeout * NS) + MS;
}

/* ------------------------------------------------------------ libvirt */

static void
stream_cb(virStreamPtr st, int events, void *opaque)
{
	static char	 buf[READ_CHUNK];
	struct sess	*s = opaque;
	int		 n;

	if (s->state == ST_DONE)
		return;		/* a late event */
	if (events & VIR_STREAM_EVENT_WRITABLE) {
		if (sess_flush(s) == -1)
			return;
	}
	for (;;) {
		n = virStreamRecv(st, buf, sizeof buf);
		if (n == -2)
			break;
		if (n == 0) {
			sess_end(s, END_SERVER, "eof", "stream ended");
			return;
		}
		if (n < 0) {
			s->io_err = 1;
			sess_end(s, END_ERROR, "stream error", "%s",
			    virGetLastErrorMessage());
			return;
		}
		sess_data(s, (const uint8_t *)buf, (size_t)n);
		if (s->state == ST_DONE)
			return;
	}
	if (events & (VIR_STREAM_EVENT_ERROR | VIR_STREAM_EVENT_HANGUP)) {
		s->io_err = 1;
		sess_end(s, END_ERROR, "stream error", "stream %s",
		    events & VIR_STREAM_EVENT_ERROR ? "error" : "hangup");
	}
}

static void
conn_close_cb(virConnectPtr c, int reason, void *opaque)
{
	size_t	i;

	g.hv_lost = 1;
	for (i = 0; i < g.n; i++) {
		if (g.s[i].state == ST_DONE)
			continue;
		g.s[i].hv_lost = 1;
		sess_end(&g.s[i], END_ERROR, "hypervisor lost",
		    "libvirt connection closed (reason %d)", reason);
	}
}

static void
sess_open_console(struct sess *s)
{
	virDomainPtr	dom;
	unsigned int	flags = VIR_DOMAIN_CONSOLE_SAFE;

	s->state = ST_CONNECT;
	g.connecting++;
	dom = virDomainLookupByName(g.conn, s->t.guest);
	if (dom == NULL)
		dom = virDomainLookupByUUIDString(g.conn, s->t.guest);
	if (dom == NULL) {
		s->refused = 1;
		sess_end(s, END_ERROR, "open failed", "no guest %s",
		    s->t.guest);
		virResetLastError();
		return;
	}
	if (g.force)
		flags |= VIR_DOMAIN_CONSOLE_FORCE;
	if ((s->st = virStreamNew(g.conn, VIR_STREAM_NONBLOCK)) == NULL)
		fatalx("virStreamNew: %s", virGetLastErrorMessage());
	if (virDomainOpenConsole(dom, s->t.alias, s->st, flags) == -1) {
		s->refused = 1;
		sess_end(s, END_ERROR, "open failed", "%s",
		    virGetLastErrorMessage());
		virResetLastError();
		virDomainFree(dom);
		return;
	}
	virDomainFree(dom);
	if (virStreamEventAddCallback(s->st, VIR_STREAM_EVENT_READABLE |
	    VIR_STREAM_EVENT_ERROR | VIR_STREAM_EVENT_HANGUP, stream_cb, s,
	    NULL) == -1) {
		s->io_err = 1;
		sess_end(s, END_ERROR, "open failed", "stream callback: %s",
		    virGetLastErrorMessage());
		return;
	}
	s->st_cb = 1;
	sess_attached(s);
}

/* ------------------------------------------------------------ phases */

/* Start sessions until --parallel are connecting (libvirt: in turn). */
static void
attach_more(void)
{
	static int	 busy;
	struct sess	*s;

	/* Called again as sessions attach or fail: no recursion. */
	if (busy || g.phase > PH_PREPARE || g.got_term)
		return;
	busy = 1;
	while (g.next_start < g.n && g.connecting < g.parallel) {
		s = &g.s[g.next_start++];
		s->t_start = now_ns();
		if (g.mode == MODE_LIBVIRT) {
			/* A synchronous call: the loop turns after it. */
			sess_open_console(s);
			continue;
		}
		s->state = ST_CONNECT;
		g.connecting++;
		sess_connect(s);
	}
	busy = 0;
}

/* What run_until waits for, session by session. */
static int
is_attached(const struct sess *s)
{
	return s->state >= ST_OPEN;
}

static int
is_prepared(const struct sess *s)
{
	return s->state != ST_OPEN || s->pr == PR_READY;
}

static int
is_not_waiting(const struct sess *s)
{
	return s->state != ST_OPEN || !s->waiting;
}

static int
is_done(const struct sess *s)
{
	return s->state == ST_DONE;
}

static int
is_flushed(const struct sess *s)
{
	return s->state != ST_OPEN || s->outlen == 0;
}

static int
every(int (*pred)(const struct sess *))
{
	size_t	i;

	for (i = 0; i < g.n; i++)
		if (!pred(&g.s[i]))
			return 0;
	return 1;
}

/*
 * Run the loop until every session is pred (NULL: never), the deadline
 * (0: none) passes, or, with stop_on_term, a SIGTERM or SIGINT comes (2:
 * or a SIGUSR1).
 */
static void
run_until(int (*pred)(const struct sess *), int64_t deadline,
    int stop_on_term)
{
	while (!(pred != NULL && every(pred))) {
		if (deadline != 0 && now_ns() >= deadline)
			return;
		if (stop_on_term && (g.got_term || (stop_on_term == 2 &&
		    g.got_usr1)))
			return;
		loop_once(deadline);
	}
}

static void
phase_attach(void)
{
	g.phase = PH_ATTACH;
	attach_more();
	run_until(is_attached, 0, 1);
	g.t_attach_end = now_ns();
}

static void
phase_prepare(void)
{
	int64_t	end;
	size_t	i;

	g.phase = PH_PREPARE;
	if (g.prep != PREP_NONE) {
		run_until(is_prepared, 0, 1);
	} else {
		/* Refusals come right after the connection: give them time. */
		end = now_ns() + (int64_t)(g.settle * NS);
		run_until(is_done, end, 1);
		for (i = 0; i < g.n && !g.got_term; i++)
			if (g.s[i].state == ST_OPEN)
				sess_ready(&g.s[i], now_ns());
	}
	g.t_prep_end = now_ns();
}

static void
phase_test(void)
{
	int64_t	now, end;
	size_t	i;
	struct sess	*s;

	g.phase = PH_TEST;
	now = now_ns();
	g.t_test0 = now;
	end = now + (int64_t)(g.seconds * NS);
	for (i = 0; i < g.n; i++) {
		s = &g.s[i];
		if (s->state != ST_OPEN || !s->ready)
			continue;
		s->in_test_start = s->bytes_in;
		if (g.test == TEST_ECHO) {
			/* A random phase, so paced sessions do not march. */
			s->next_send = now;
			if (g.rate > 0 && (int64_t)(NS / g.rate) > 0)
				s->next_send += (int64_t)(rng_next() %
				    (uint64_t)(NS / g.rate));
			s->due = s->next_send;
		} else if (g.test == TEST_SINK && g.sink_cmd != NULL) {
			sess_type(s, g.sink_cmd);
			sess_type(s, "\r");
		}
	}
	run_until(is_done, end, 1);
	if (g.got_term)
		g.interrupted = 1;
	g.t_test1 = now_ns();
	for (i = 0; i < g.n; i++)
		if (g.s[i].ready)
			g.s[i].in_test = g.s[i].bytes_in -
			    g.s[i].in_test_start;

	/* Echoes still in flight are waited for, not typed anew. */
	g.phase = PH_DRAIN;
	if (g.test == TEST_ECHO)
		run_until(is_not_waiting, now_ns() +
		    (int64_t)(g.echo_timeout * NS), 0);
	for (i = 0; i < g.n; i++)
		if (g.s[i].waiting) {
			g.s[i].waiting = 0;
			g.s[i].timeouts++;
		}
}

static void
phase_restore(void)
{
	size_t	i;
	int	any = 0;

	g.phase = PH_RESTORE;
	for (i = 0; i < g.n; i++)
		g.s[i].due = 0;
	if (!g.restore)
		return;
	for (i = 0; i < g.n; i++) {
		if (g.s[i].state == ST_OPEN && g.s[i].prepared &&
		    g.prep == PREP_ECHO) {
			sess_type(&g.s[i], g.echo_end);
			any = 1;
		}
	}
	if (!any)
		return;
	run_until(NULL, now_ns() + RESTORE_WAIT, 0);
	for (i = 0; i < g.n; i++)
		if (g.s[i].state == ST_OPEN && g.s[i].prepared)
			sess_type(&g.s[i], "\025stty sane\r");
	run_until(is_flushed, now_ns() + RESTORE_WAIT, 0);
}

static void
phase_close(void)
{
	uint8_t		payload[WS_CONTROL_MAX];
	size_t		i, plen;
	struct sess	*s;

	g.phase = PH_CLOSE;
	for (i = 0; i < g.n; i++) {
		s = &g.s[i];
		if (s->state != ST_OPEN)
			continue;
		if (s->wr != NULL) {
			plen = ws_close_payload(payload, 1000, "done");
			ws_send_frame(s, WS_OP_CLOSE, payload, plen);
			s->state = ST_CLOSING;
			s->due = now_ns() + CLOSE_WAIT;
			sess_flush(s);
		} else
			sess_end(s, END_CLIENT, "closed", "closed by vcdload");
	}
	run_until(is_done, now_ns() + CLOSE_WAIT + NS, 0);
	for (i = 0; i < g.n; i++)
		sess_end(&g.s[i], END_CLIENT, "closed", "closed by vcdload");
	graveyard_empty();
}

/* ------------------------------------------------------------ report */

static void
json_key(struct evbuffer *b, const char *k)
{
	json_add_string(b, k);
	evbuffer_add(b, ":", 1);
}

static void
json_str_or_null(struct evbuffer *b, const char *v)
{
	if (v == NULL)
		evbuffer_add_printf(b, "null");
	else
		json_add_string(b, v);
}

static void
report_session(struct evbuffer *b, struct sess *s)
{
	uint32_t	*v;
	double		 test_s = (double)(g.t_test1 - g.t_test0) / NS;

	evbuffer_add_printf(b, "{\"id\":%u,", s->id);
	json_key(b, "target");
	json_add_string(b, s->t.shown);
	evbuffer_add_printf(b, ",\"attached\":%s,\"ready\":%s,",
	    s->attached ? "true" : "false", s->ready ? "true" : "false");
	if (s->attached)
		evbuffer_add_printf(b, "\"attach_us\":%u,",
		    us_between(s->t_start, s->t_attached));
	else
		evbuffer_add_printf(b, "\"attach_us\":null,");
	if (s->ready)
		evbuffer_add_printf(b, "\"ready_us\":%u,",
		    us_between(s->t_start, s->t_ready));
	else
		evbuffer_add_printf(b, "\"ready_us\":null,");
	v = xmalloc((s->nrtt ? s->nrtt : 1) * sizeof *v);
	if (s->nrtt)
		memcpy(v, s->rtt, s->nrtt * sizeof *v);
	u32_sort(v, s->nrtt);
	evbuffer_add_printf(b, "\"rtt_us\":");
	json_pct(b, v, s->nrtt);
	free(v);
	evbuffer_add_printf(b, ",\"sent\":%llu,\"echoed\":%llu,"
	    "\"timeouts\":%llu,\"stray\":%llu,\"bytes_in\":%llu,"
	    "\"bytes_out\":%llu,\"in_test\":%llu,\"Bps\":%.1f,\"pings\":%llu,",
	    (unsigned long long)s->sent, (unsigned long long)s->echoed,
	    (unsigned long long)s->timeouts, (unsigned long long)s->stray,
	    (unsigned long long)s->bytes_in, (unsigned long long)s->bytes_out,
	    (unsigned long long)s->in_test,
	    test_s > 0 ? (double)s->in_test / test_s : 0.0,
	    (unsigned long long)s->pings);
	evbuffer_add_printf(b, "\"end\":{\"by\":\"%s\",\"phase\":\"%s\",",
	    end_by_names[s->end_by], phase_names[s->end_phase]);
	json_key(b, "what");
	json_add_string(b, s->end_what);
	evbuffer_add(b, ",", 1);
	json_key(b, "detail");
	json_str_or_null(b, s->end_detail);
	evbuffer_add_printf(b, ",\"notice\":");
	if (s->notice_reason != NULL) {
		evbuffer_add_printf(b, "{\"kind\":");
		json_add_string(b, s->notice_kind);
		evbuffer_add_printf(b, ",\"reason\":");
		json_add_string(b, log_esc(s->notice_reason));
		evbuffer_add_printf(b, "}");
	} else
		evbuffer_add_printf(b, "null");
	evbuffer_add_printf(b, ",\"close_code\":");
	if (s->close_code)
		evbuffer_add_printf(b, "%d", s->close_code);
	else
		evbuffer_add_printf(b, "null");
	evbuffer_add_printf(b, ",\"http_status\":");
	if (s->http_status)
		evbuffer_add_printf(b, "%d}", s->http_status);
	else
		evbuffer_add_printf(b, "null}");
	if (s->end_by == END_SERVER || s->end_by == END_ERROR) {
		evbuffer_add_printf(b, ",\"tail\":");
		json_add_string(b, log_esc_len(s->tail, s->taillen));
	}
	evbuffer_add_printf(b, "}");
}

struct ends {
	char	 key[64];
	size_t	 count;
};

static int
report(void)
{
	struct evbuffer	*b = evbuffer_new();
	struct rusage	 ru;
	uint32_t	*all = NULL, *att = NULL, *rdy = NULL, *bps = NULL;
	size_t		 nall = 0, sall = 0, natt = 0, satt = 0, nrdy = 0;
	size_t		 srdy = 0, nbps = 0, sbps = 0, i, j, nends = 0;
	uint64_t	 sent = 0, echoed = 0, timeouts = 0, stray = 0;
	uint64_t	 in = 0, out = 0, in_test = 0;
	unsigned int	 attached = 0, ready = 0, refused = 0, disc = 0;
	unsigned int	 notices = 0, proto = 0, io = 0, hv = 0;
	struct ends	 ends[32];
	struct sess	*s;
	double		 test_s = (double)(g.t_test1 - g.t_test0) / NS;
	char		 key[64];
	int		 ok;

	for (i = 0; i < g.n; i++) {
		s = &g.s[i];
		attached += s->attached;
		ready += s->ready;
		if (s->attached)
			u32_push(&att, &natt, &satt,
			    us_between(s->t_start, s->t_attached));
		if (s->ready) {
			u32_push(&rdy, &nrdy, &srdy,
			    us_between(s->t_start, s->t_ready));
			u32_push(&bps, &nbps, &sbps, (uint32_t)(test_s > 0 ?
			    (double)s->in_test / test_s : 0));
		}
		for (j = 0; j < s->nrtt; j++)
			u32_push(&all, &nall, &sall, s->rtt[j]);
		sent += s->sent;
		echoed += s->echoed;
		timeouts += s->timeouts;
		stray += s->stray;
		in += s->bytes_in;
		out += s->bytes_out;
		in_test += s->in_test;
		refused += s->refused;
		notices += s->notice_reason != NULL;
		proto += s->protocol_err;
		io += s->io_err && !s->hv_lost;
		hv += s->hv_lost;
		if (s->ready && s->end_by != END_CLIENT)
			disc++;
		snprintf(key, sizeof key, "%s/%s", end_by_names[s->end_by],
		    s->end_what);
		for (j = 0; j < nends; j++)
			if (strcmp(ends[j].key, key) == 0)
				break;
		if (j == nends && nends < 32) {
			memcpy(ends[nends].key, key, sizeof key);
			ends[nends++].count = 0;
		}
		if (j < nends)
			ends[j].count++;
	}
	u32_sort(all, nall);
	u32_sort(att, natt);
	u32_sort(rdy, nrdy);
	u32_sort(bps, nbps);
	ok = ready == g.n && disc == 0 && timeouts == 0 && stray == 0 &&
	    proto == 0 && io == 0 && hv == 0;

	evbuffer_add_printf(b, "{\"tool\":\"vcdload\",\"schema\":1,"
	    "\"mode\":\"%s\",\"test\":\"%s\",\"seconds\":%g,\"rate\":%g,"
	    "\"prepare\":\"%s\",\"sessions\":%zu,\"attached\":%u,"
	    "\"ready\":%u,\"failed\":%zu,\"interrupted\":%s,\"ok\":%s,",
	    mode_names[g.mode], test_names[g.test], g.seconds, g.rate,
	    prep_names[g.prep], g.n, attached, ready, g.n - ready,
	    g.interrupted ? "true" : "false", ok ? "true" : "false");
	evbuffer_add_printf(b, "\"times\":{\"attach_s\":%.3f,\"prepare_s\":"
	    "%.3f,\"test_s\":%.3f,\"wall_s\":%.3f},",
	    (double)(g.t_attach_end - g.t0) / NS,
	    (double)(g.t_prep_end - g.t_attach_end) / NS, test_s,
	    (double)(now_ns() - g.t0) / NS);
	evbuffer_add_printf(b, "\"attach_us\":");
	json_pct(b, att, natt);
	evbuffer_add_printf(b, ",\"ready_us\":");
	json_pct(b, rdy, nrdy);
	evbuffer_add_printf(b, ",\"rtt_us\":");
	json_pct(b, all, nall);
	evbuffer_add_printf(b, ",\"echo\":{\"sent\":%llu,\"echoed\":%llu,"
	    "\"timeouts\":%llu,\"stray_bytes\":%llu},",
	    (unsigned long long)sent, (unsigned long long)echoed,
	    (unsigned long long)timeouts, (unsigned long long)stray);
	evbuffer_add_printf(b, "\"bytes\":{\"in\":%llu,\"out\":%llu,"
	    "\"in_test\":%llu},", (unsigned long long)in,
	    (unsigned long long)out, (unsigned long long)in_test);
	evbuffer_add_printf(b, "\"throughput\":{\"test_s\":%.3f,"
	    "\"total_Bps\":%.1f,\"per_session_Bps\":", test_s,
	    test_s > 0 ? (double)in_test / test_s : 0.0);
	json_pct(b, bps, nbps);
	evbuffer_add_printf(b, "},\"errors\":{\"attach_failed\":%zu,"
	    "\"refused\":%u,\"disconnects\":%u,\"notices\":%u,"
	    "\"echo_timeouts\":%llu,\"stray_bytes\":%llu,\"protocol\":%u,"
	    "\"io\":%u,\"hypervisor_lost\":%u},", g.n - ready, refused, disc,
	    notices, (unsigned long long)timeouts, (unsigned long long)stray,
	    proto, io, hv);
	evbuffer_add_printf(b, "\"ends\":{");
	for (j = 0; j < nends; j++) {
		if (j > 0)
			evbuffer_add(b, ",", 1);
		json_key(b, ends[j].key);
		evbuffer_add_printf(b, "%zu", ends[j].count);
	}
	getrusage(RUSAGE_SELF, &ru);
	evbuffer_add_printf(b, "},\"client\":{\"user_s\":%.3f,\"sys_s\":%.3f,"
	    "\"max_rss_kib\":%ld}",
	    (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6,
	    (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6,
	    ru.ru_maxrss);
	if (g.per_session) {
		evbuffer_add_printf(b, ",\"per_session\":[");
		for (i = 0; i < g.n; i++) {
			if (i > 0)
				evbuffer_add(b, ",", 1);
			report_session(b, &g.s[i]);
		}
		evbuffer_add_printf(b, "]");
	}
	evbuffer_add_printf(b, "}\n");
	while (evbuffer_get_length(b) > 0)
		if (evbuffer_write(b, STDOUT_FILENO) <= 0)
			break;
	evbuffer_free(b);
	free(all);
	free(att);
	free(rdy);
	free(bps);
	return ready == g.n ? 0 : 1;
}

/* ------------------------------------------------------------ main */

static void
setup_tls(void)
{
	if ((g.ctx = SSL_CTX_new(TLS_client_method())) == NULL)
		fatalx("SSL_CTX_new: %s", ssl_error_text());
	SSL_CTX_set_min_proto_version(g.ctx, TLS1_2_VERSION);
	/* A server that just closes is an EOF, not a TLS error. */
	SSL_CTX_set_options(g.ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
	if (g.insecure) {
		SSL_CTX_set_verify(g.ctx, SSL_VERIFY_NONE, NULL);
		return;
	}
	SSL_CTX_set_verify(g.ctx, SSL_VERIFY_PEER, NULL);
	if (g.cafile != NULL) {
		if (SSL_CTX_load_verify_locations(g.ctx, g.cafile, NULL) != 1)
			fatalx("%s: %s", g.cafile, ssl_error_text());
	} else if (SSL_CTX_set_default_verify_paths(g.ctx) != 1)
		fatalx("default CA paths: %s", ssl_error_text());
}

static void
setup_signals(void)
{
	struct sigaction	sa;

	if (pipe2(g.sigpipe, O_NONBLOCK | O_CLOEXEC) == -1)
		fatal("pipe2");
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = sig_handler;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (virEventAddHandle(g.sigpipe[0], VIR_EVENT_HANDLE_READABLE,
	    sigpipe_cb, NULL, NULL) == -1)
		fatalx("virEventAddHandle failed");
}

static void
silence_libvirt(void *opaque, virErrorPtr err)
{
	/* Errors are reported per session, not printed by libvirt. */
}

static void
raise_nofile(void)
{
	struct rlimit	rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int
main(int argc, char **argv)
{
	enum {
		O_ECHO = 256, O_SINK, O_IDLE, O_URI, O_FORCE, O_RATE,
		O_ECHO_TIMEOUT, O_SINK_CMD, O_PROMPT, O_PREPARE,
		O_PREPARE_TIMEOUT, O_ATTACH_TIMEOUT, O_PARALLEL, O_SETTLE,
		O_SUBPROTOCOL, O_ORIGIN, O_INSECURE, O_CAFILE, O_TARGETS,
		O_READY, O_DONE, O_HOLD, O_PER_SESSION, O_NO_RESTORE,
		O_ECHO_SETUP, O_ECHO_END,
	};
	static const struct option	opts[] = {
		{ "echo", required_argument, NULL, O_ECHO },
		{ "sink", required_argument, NULL, O_SINK },
		{ "idle", required_argument, NULL, O_IDLE },
		{ "uri", required_argument, NULL, O_URI },
		{ "force", no_argument, NULL, O_FORCE },
		{ "rate", required_argument, NULL, O_RATE },
		{ "echo-timeout", required_argument, NULL, O_ECHO_TIMEOUT },
		{ "sink-cmd", required_argument, NULL, O_SINK_CMD },
		{ "prompt", required_argument, NULL, O_PROMPT },
		{ "prepare", required_argument, NULL, O_PREPARE },
		{ "prepare-timeout", required_argument, NULL,
		    O_PREPARE_TIMEOUT },
		{ "attach-timeout", required_argument, NULL,
		    O_ATTACH_TIMEOUT },
		{ "parallel", required_argument, NULL, O_PARALLEL },
		{ "settle", required_argument, NULL, O_SETTLE },
		{ "subprotocol", required_argument, NULL, O_SUBPROTOCOL },
		{ "origin", required_argument, NULL, O_ORIGIN },
		{ "insecure", no_argument, NULL, O_INSECURE },
		{ "cafile", required_argument, NULL, O_CAFILE },
		{ "targets-file", required_argument, NULL, O_TARGETS },
		{ "ready-file", required_argument, NULL, O_READY },
		{ "done-file", required_argument, NULL, O_DONE },
		{ "hold-until-signal", no_argument, NULL, O_HOLD },
		{ "per-session", required_argument, NULL, O_PER_SESSION },
		{ "no-restore", no_argument, NULL, O_NO_RESTORE },
		{ "echo-setup", required_argument, NULL, O_ECHO_SETUP },
		{ "echo-end", required_argument, NULL, O_ECHO_END },
		{ NULL, 0, NULL, 0 },
	};
	const char	*targets_file = NULL;
	int		 c, ntests = 0, rc;
	size_t		 i;
	double		 v;

	log_init(LOG_TARGET_STDERR, LOG_LEVEL_INFO, NULL);
	if (argc < 2)
		usage(NULL);
	for (i = 0; i < 4; i++)
		if (strcmp(argv[1], mode_names[i]) == 0)
			break;
	if (i == 4)
		usage("MODE must be libvirt, unix, ws or wss");
	g.mode = (enum mode)i;
	g.prep = PREP_DEFAULT;
	g.echo_timeout = 5;
	g.prepare_timeout = 60;
	g.attach_timeout = 30;
	g.settle = 1;
	g.parallel = 16;
	g.prompt = "# ";
	g.echo_setup = ECHO_SETUP;
	g.echo_end = ECHO_END;
	g.subprotocol = "binary";
	g.per_session = 1;
	g.restore = 1;
	argc--;
	argv++;
	while ((c = getopt_long(argc, argv, "v", opts, NULL)) != -1) {
		switch (c) {
		case O_ECHO:
		case O_SINK:
		case O_IDLE:
			g.test = c == O_ECHO ? TEST_ECHO : c == O_SINK ?
			    TEST_SINK : TEST_IDLE;
			g.seconds = parse_seconds(argv[optind - 2], optarg);
			ntests++;
			break;
		case O_URI:
			g.uri = optarg;
			break;
		case O_FORCE:
			g.force = 1;
			break;
		case O_RATE:
			g.rate = parse_seconds("--rate", optarg);
			break;
		case O_ECHO_TIMEOUT:
			g.echo_timeout = parse_seconds("--echo-timeout",
			    optarg);
			break;
		case O_SINK_CMD:
			g.sink_cmd = optarg;
			break;
		case O_PROMPT:
			g.prompt = optarg;
			break;
		case O_PREPARE:
			for (i = 0; i < 3; i++)
				if (strcmp(optarg, prep_names[i]) == 0)
					break;
			if (i == 3)
				usage("--prepare none|prompt|echo");
			g.prep = (enum prep)i;
			break;
		case O_PREPARE_TIMEOUT:
			g.prepare_timeout = parse_seconds("--prepare-timeout",
			    optarg);
			break;
		case O_ATTACH_TIMEOUT:
			g.attach_timeout = parse_seconds("--attach-timeout",
			    optarg);
			break;
		case O_PARALLEL:
			v = parse_seconds("--parallel", optarg);
			if (v < 1)
				usage("--parallel must be at least 1");
			g.parallel = (unsigned int)v;
			break;
		case O_SETTLE:
			g.settle = parse_seconds("--settle", optarg);
			break;
		case O_SUBPROTOCOL:
			g.subprotocol = strcmp(optarg, "none") == 0 ? NULL :
			    optarg;
			break;
		case O_ORIGIN:
			g.origin = optarg;
			break;
		case O_INSECURE:
			g.insecure = 1;
			break;
		case O_CAFILE:
			g.cafile = optarg;
			break;
		case O_TARGETS:
			targets_file = optarg;
			break;
		case O_READY:
			g.ready_file = optarg;
			break;
		case O_DONE:
			g.done_file = optarg;
			break;
		case O_HOLD:
			g.hold = 1;
			break;
		case O_PER_SESSION:
			g.per_session = strcmp(optarg, "0") != 0;
			break;
		case O_NO_RESTORE:
			g.restore = 0;
			break;
		case O_ECHO_SETUP:
			g.echo_setup = optarg;
			break;
		case O_ECHO_END:
			g.echo_end = optarg;
			break;
		case 'v':
			g.verbose = 1;
			break;
		default:
			usage(NULL);
		}
	}
	if (ntests != 1)
		usage("give exactly one of --echo, --sink, --idle");
	if (g.prep == PREP_DEFAULT)
		g.prep = g.test == TEST_ECHO ? PREP_ECHO : g.test ==
		    TEST_SINK ? PREP_PROMPT : PREP_NONE;
	if (g.test == TEST_ECHO && g.prep != PREP_ECHO)
		fprintf(stderr, "vcdload: warning: --echo without --prepare "
		    "echo: the guest must already echo each byte once\n");
	if (getrandom(&g.rng, sizeof g.rng, 0) != sizeof g.rng)
		fatal("getrandom");
	g.rng |= 1;
	for (; optind < argc; optind++)
		target_add(argv[optind]);
	if (targets_file != NULL)
		targets_read(targets_file);
	if (g.n == 0)
		usage("no TARGET");

	raise_nofile();
	if (virEventRegisterDefaultImpl() == -1)
		fatalx("virEventRegisterDefaultImpl failed");
	virSetErrorFunc(NULL, silence_libvirt);
	setup_signals();
	g.timer = virEventAddTimeout(-1, timer_cb, NULL, NULL);
	if (g.timer == -1)
		fatalx("virEventAddTimeout failed");
	if (g.mode == MODE_WSS)
		setup_tls();
	g.t0 = now_ns();
	if (g.mode == MODE_LIBVIRT) {
		if ((g.conn = virConnectOpen(g.uri)) == NULL)
			fatalx("cannot connect to %s: %s", g.uri ? g.uri :
			    "the default URI", virGetLastErrorMessage());
		virConnectRegisterCloseCallback(g.conn, conn_close_cb, NULL,
		    NULL);
		/* One console open at a time: the call is synchronous. */
		g.parallel = 1;
	}

	phase_attach();
	phase_prepare();
	if (g.got_term) {
		/* Stopped before the test: report what was there. */
		g.interrupted = 1;
		g.t_test0 = g.t_test1 = now_ns();
		phase_restore();
	} else {
		write_state_file(g.ready_file, "ready");
		phase_test();
		phase_restore();
		write_state_file(g.done_file, "done");
	}
	if (g.hold && !g.got_term) {
		g.phase = PH_HOLD;
		run_until(is_done, 0, 2);
	}
	phase_close();
	rc = report();

	if (g.conn != NULL) {
		virConnectUnregisterCloseCallback(g.conn, conn_close_cb);
		virConnectClose(g.conn);
	}
	if (g.ctx != NULL)
		SSL_CTX_free(g.ctx);
	for (i = 0; i < g.n; i++) {
		struct sess	*s = &g.s[i];

		free(s->out);
		free(s->rtt);
		free(s->end_detail);
		free(s->notice_reason);
		free(s->t.spec);
		free(s->t.shown);
		free(s->t.guest);
		free(s->t.alias);
		free(s->t.host);
		free(s->t.hostport);
		free(s->t.path);
	}
	free(g.graveyard);
	free(g.s);
	return rc;
}
