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
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/random.h>
#include <sys/resource.h>

#include <libvirt/virterror.h>

#include "vcdload.h"

/*
 * The guest side of --echo: the tty echoes each typed byte (in the guest
 * kernel, as it arrives) and a shell loop reads and drops them, until a
 * '~'.  Not `cat` ended by ^C: the lab's virtio console shells start with
 * SIGINT ignored, which their children inherit.
 */
#define ECHO_SETUP	"stty -icanon; while read -rn1 c && [ \"$c\" != '~' ]; " \
			"do :; done"
#define ECHO_END	"~"

const char *const mode_names[] = { "libvirt", "unix", "ws", "wss" };
const char *const test_names[] = { "echo", "sink", "idle" };
const char *const prep_names[] = { "none", "prompt", "echo" };

struct vl_config	cfg;
struct vl_run		run;

void VCD_NORETURN
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
	cfg.mode = (enum mode)i;
	cfg.prep = PREP_DEFAULT;
	cfg.echo_timeout = 5;
	cfg.prepare_timeout = 60;
	cfg.attach_timeout = 30;
	cfg.settle = 1;
	cfg.parallel = 16;
	cfg.prompt = "# ";
	cfg.echo_setup = ECHO_SETUP;
	cfg.echo_end = ECHO_END;
	cfg.subprotocol = "binary";
	cfg.per_session = 1;
	cfg.restore = 1;
	argc--;
	argv++;
	while ((c = getopt_long(argc, argv, "v", opts, NULL)) != -1) {
		switch (c) {
		case O_ECHO:
		case O_SINK:
		case O_IDLE:
			cfg.test = c == O_ECHO ? TEST_ECHO : c == O_SINK ?
			    TEST_SINK : TEST_IDLE;
			cfg.seconds = parse_seconds(argv[optind - 2], optarg);
			ntests++;
			break;
		case O_URI:
			cfg.uri = optarg;
			break;
		case O_FORCE:
			cfg.force = 1;
			break;
		case O_RATE:
			cfg.rate = parse_seconds("--rate", optarg);
			break;
		case O_ECHO_TIMEOUT:
			cfg.echo_timeout = parse_seconds("--echo-timeout",
			    optarg);
			break;
		case O_SINK_CMD:
			cfg.sink_cmd = optarg;
			break;
		case O_PROMPT:
			cfg.prompt = optarg;
			break;
		case O_PREPARE:
			for (i = 0; i < 3; i++)
				if (strcmp(optarg, prep_names[i]) == 0)
					break;
			if (i == 3)
				usage("--prepare none|prompt|echo");
			cfg.prep = (enum prep)i;
			break;
		case O_PREPARE_TIMEOUT:
			cfg.prepare_timeout = parse_seconds("--prepare-timeout",
			    optarg);
			break;
		case O_ATTACH_TIMEOUT:
			cfg.attach_timeout = parse_seconds("--attach-timeout",
			    optarg);
			break;
		case O_PARALLEL:
			v = parse_seconds("--parallel", optarg);
			if (v < 1)
				usage("--parallel must be at least 1");
			cfg.parallel = (unsigned int)v;
			break;
		case O_SETTLE:
			cfg.settle = parse_seconds("--settle", optarg);
			break;
		case O_SUBPROTOCOL:
			cfg.subprotocol = strcmp(optarg, "none") == 0 ? NULL :
			    optarg;
			break;
		case O_ORIGIN:
			cfg.origin = optarg;
			break;
		case O_INSECURE:
			cfg.insecure = 1;
			break;
		case O_CAFILE:
			cfg.cafile = optarg;
			break;
		case O_TARGETS:
			targets_file = optarg;
			break;
		case O_READY:
			cfg.ready_file = optarg;
			break;
		case O_DONE:
			cfg.done_file = optarg;
			break;
		case O_HOLD:
			cfg.hold = 1;
			break;
		case O_PER_SESSION:
			cfg.per_session = strcmp(optarg, "0") != 0;
			break;
		case O_NO_RESTORE:
			cfg.restore = 0;
			break;
		case O_ECHO_SETUP:
			cfg.echo_setup = optarg;
			break;
		case O_ECHO_END:
			cfg.echo_end = optarg;
			break;
		case 'v':
			cfg.verbose = 1;
			break;
		default:
			usage(NULL);
		}
	}
	if (ntests != 1)
		usage("give exactly one of --echo, --sink, --idle");
	if (cfg.prep == PREP_DEFAULT)
		cfg.prep = cfg.test == TEST_ECHO ? PREP_ECHO : cfg.test ==
		    TEST_SINK ? PREP_PROMPT : PREP_NONE;
	if (cfg.test == TEST_ECHO && cfg.prep != PREP_ECHO)
		fprintf(stderr, "vcdload: warning: --echo without --prepare "
		    "echo: the guest must already echo each byte once\n");
	rng_seed();
	for (; optind < argc; optind++)
		target_add(argv[optind]);
	if (targets_file != NULL)
		targets_read(targets_file);
	if (run.n == 0)
		usage("no TARGET");

	raise_nofile();
	if (virEventRegisterDefaultImpl() == -1)
		fatalx("virEventRegisterDefaultImpl failed");
	virSetErrorFunc(NULL, silence_libvirt);
	loop_init();
	if (cfg.mode == MODE_WSS)
		tls_setup();
	run.t0 = now_ns();
	if (cfg.mode == MODE_LIBVIRT) {
		virt_connect();
		/* One console open at a time: the call is synchronous. */
		cfg.parallel = 1;
	}

	phase_attach();
	phase_prepare();
	if (run.got_term) {
		/* Stopped before the test: report what was there. */
		run.interrupted = 1;
		run.t_test0 = run.t_test1 = now_ns();
		phase_restore();
	} else {
		write_state_file(cfg.ready_file, "ready");
		phase_test();
		phase_restore();
		write_state_file(cfg.done_file, "done");
	}
	if (cfg.hold && !run.got_term)
		phase_hold();
	phase_close();
	rc = report();

	virt_close();
	tls_free();
	for (i = 0; i < run.n; i++) {
		struct sess	*s = &run.s[i];

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
	loop_free();
	free(run.s);
	return rc;
}
