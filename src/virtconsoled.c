/*
 * virtconsoled: the daemon's entry point.  Options, configuration, detach,
 * pid file, then ONE libevent loop that is also libvirt's event loop and
 * runs everything, signals included.
 */
#include <sys/resource.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>
#include <libvirt/libvirt.h>

#include "virtconsoled.h"

#ifndef SYSCONFDIR
#define SYSCONFDIR "/usr/local/etc"
#endif
#define VCD_DEFAULT_CONFIG SYSCONFDIR "/virtconsoled/virtconsoled.conf"

/* How long shutdown may wait for libvirt's deferred free callbacks. */
#define VCD_DRAIN_PASSES 1000
/* How long shutdown waits for clients to read their notice. */
#define VCD_LINGER_SECONDS 2
#define VCD_SETTLE 5		/* seconds the start waits for hypervisors */

struct vcd {
	struct event_base	*base;
	struct config		*conf;
	const char		*pid_override;	/* -p */
	int			 foreground;	/* -d */
	struct event		*sig_term;
	struct event		*sig_int;
	struct event		*sig_hup;
	struct event		*sig_usr1;
	int			 exit_signal;
};

/*
 * Every client is a descriptor: raise the soft limit to the hard one, as
 * a daemon that holds hundreds of consoles needs.
 */
static void
vcd_raise_nofile(void)
{
	struct rlimit	rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1 || rl.rlim_cur >= rl.rlim_max)
		return;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
		log_warn("cannot raise the open files limit");
}

/* A fatal error after the pid file was taken still removes it. */
static struct pidfile	*vcd_pidfile;

static void
vcd_release_pidfile(void)
{
	pidfile_release(vcd_pidfile);
	vcd_pidfile = NULL;
}

static void
usage(void)
{
	fprintf(stderr, "usage: virtconsoled [-dnV] [-f config] "
	    "[-p pidfile]\n");
	exit(2);
}

static enum log_target
vcd_log_target(const struct vcd *v)
{
	if (v->foreground)
		return LOG_TARGET_STDERR;
	return v->conf->log_file != NULL ? LOG_TARGET_FILE :
	    LOG_TARGET_SYSLOG;
}

static void
vcd_apply_overrides(struct vcd *v, struct config *conf)
{
	if (v->pid_override != NULL) {
		free(conf->pid_file);
		conf->pid_file = xstrdup(v->pid_override);
	}
}

/*
 * Console logs and recordings: their directories are opened (made if
 * missing) as the user the daemon runs as, so the files are its own.  At
 * start a directory that cannot be used stops the daemon; a reload that
 * names one keeps the previous setting of that key and says so.
 */
static int
vcd_outputs(const struct config *conf, int starting)
{
	struct clog_config	lc;
	struct rec_config	rc;
	char			err[1024];
	int			rv = 0;

	lc.dir = conf->console_log_dir;
	lc.timestamps = conf->console_log_timestamps;
	lc.max = conf->console_log_max;
	lc.keep = conf->console_log_keep;
	if (clog_configure(&lc, err, sizeof err) == -1) {
		if (starting)
			fatalx("console_log_dir: %s", err);
		log_warnx("console_log_dir: %s; console logs stay as they were",
		    err);
		rv = -1;
	}
	rc.dir = conf->record_dir;
	rc.input = conf->record_input;
	if (rec_configure(&rc, err, sizeof err) == -1) {
		if (starting)
			fatalx("record_dir: %s", err);
		log_warnx("record_dir: %s; recordings stay as they were", err);
		rv = -1;
	}
	return rv;
}

/* At exit, once no console or session holds a log or a recording. */
static void
vcd_outputs_off(void)
{
	struct clog_config	lc = { NULL, 0, 0, 0 };
	struct rec_config	rc = { NULL, 0 };
	char			err[256];

	(void)clog_configure(&lc, err, sizeof err);
	(void)rec_configure(&rc, err, sizeof err);
}

/*
 * SIGHUP (or virtconsolectl reload): parse-then-swap.  The new file is
 * parsed into a fresh struct; if it has errors, the running configuration
 * stays, untouched, and -1 comes back with the error.
 */
static int
vcd_reload(struct vcd *v, char *err, size_t errlen)
{
	struct config	*conf, *old = v->conf;
	int		 log_changed;

	notify_reloading();
	log_info("reloading configuration from %s", log_esc(old->path));
	if ((conf = config_load(old->path, err, errlen)) == NULL) {
		log_warnx("config has errors, not reloading: %s",
		    log_esc(err));
		notify_ready("config has errors, not reloaded");
		return -1;
	}
	vcd_apply_overrides(v, conf);
	if (web_reload_check(conf, err, errlen) == -1) {
		log_warnx("config has errors, not reloading: %s: %s",
		    log_esc(conf->path), log_esc(err));
		notify_ready("config has errors, not reloaded");
		config_free(conf);
		return -1;
	}
	if (strcmp(conf->pid_file, old->pid_file) != 0)
		log_warnx("pid_file changed; it takes effect at the next "
		    "start");
	if (strcmp(conf->socket_dir, old->socket_dir) != 0 ||
	    strcmp(conf->control_socket, old->control_socket) != 0)
		log_warnx("socket_dir and control_socket changes take effect "
		    "at the next start");
	if (conf->hv_form != old->hv_form)
		log_warnx("the guest sockets keep their layout (%s) until the "
		    "next start: the %s form's layout (%s) needs a restart",
		    old->hv_form ? "socket_dir/NAME/GUEST" : "socket_dir/GUEST",
		    conf->hv_form ? "hypervisor" : "uri", conf->hv_form ?
		    "socket_dir/NAME/GUEST" : "socket_dir/GUEST");
	if ((conf->attach_socket == NULL) != (old->attach_socket == NULL) ||
	    (conf->attach_socket != NULL &&
	    strcmp(conf->attach_socket, old->attach_socket) != 0))
		log_warnx("attach_socket changes take effect at the next "
		    "start");
	v->conf = conf;
	log_changed = (old->log_file == NULL) != (conf->log_file == NULL) ||
	    (old->log_file != NULL &&
	    strcmp(old->log_file, conf->log_file) != 0);
	if (!log_changed)
		log_set_level(conf->log_level);
	else if (log_init(vcd_log_target(v), conf->log_level,
	    conf->log_file) == -1) {
		/* A log file that cannot be opened is no reason to stop. */
		log_warn("cannot open log_file %s; logging stays where it was",
		    log_esc(conf->log_file));
		log_set_level(conf->log_level);
	}
	session_reconfigure(conf);
	(void)vcd_outputs(conf, 0);
	metrics_reconfigure(conf);
	web_reconfigure(conf);
	hv_reconfigure(conf);
	config_free(old);
	log_info("configuration reloaded");
	notify_ready("configuration reloaded");
	return 0;
}

/* The control socket's reload: the same as SIGHUP. */
static struct vcd	*vcd_self;

static int
vcd_control_reload(char *err, size_t errlen)
{
	return vcd_reload(vcd_self, err, errlen);
}

static void
vcd_signal(evutil_socket_t sig, short what, void *arg)
{
	struct vcd	*v = arg;
	char		 err[1024];

	switch (sig) {
	case SIGHUP:
		vcd_reload(v, err, sizeof err);
		break;
	case SIGUSR1:
		if (log_reopen() == -1)
			log_warn("cannot reopen log file");
		else
			log_info("log file reopened");
		clog_reopen();
		break;
	case SIGTERM:
	case SIGINT:
		log_info("received %s, shutting down",
		    sig == SIGTERM ? "SIGTERM" : "SIGINT");
		notify_stopping();
		v->exit_signal = (int)sig;
		event_base_loopbreak(v->base);
		break;
	}
}

static struct event *
vcd_signal_add(struct vcd *v, int sig)
{
	struct event	*ev;

	if ((ev = evsignal_new(v->base, sig, vcd_signal, v)) == NULL ||
	    evsignal_add(ev, NULL) == -1)
		fatalx("cannot install handler for signal %d", sig);
	return ev;
}

/*
 * libvirt hands removed handles and timers back through deferred free
 * callbacks; run the loop until they have all run, so nothing of libvirt's
 * is left half-released at exit.
 */
/*
 * End every session with "daemon shutting down" and give the clients a
 * moment to read it, without waiting on one that does not read.
 */
static void
vcd_settle_cb(evutil_socket_t fd, short what, void *arg)
{
	*(int *)arg = 1;
}

/*
 * Before the daemon says it is ready: each hypervisor's first open is
 * waited for (they run on threads; the loop turns meanwhile), at most
 * VCD_SETTLE seconds, so that a local libvirtd's guests have their
 * sockets when the start returns, and a remote that does not answer
 * delays the start that long only (it goes on connecting, and says so).
 */
static void
vcd_settle(struct vcd *v)
{
	struct event	*ev;
	int		 over = 0;

	if ((ev = evtimer_new(v->base, vcd_settle_cb, &over)) == NULL)
		fatalx("out of memory");
	timer_arm(ev, VCD_SETTLE);
	/* SIGTERM meanwhile: stop waiting (v->exit_signal, main). */
	while (!over && !hv_settled() && v->exit_signal == 0)
		event_base_loop(v->base, EVLOOP_ONCE);
	event_free(ev);
	if (!hv_settled() && v->exit_signal == 0)
		log_warnx("hv: not every hypervisor answered in %d s; starting "
		    "anyway, they go on connecting", VCD_SETTLE);
}

static void
vcd_end_sessions(struct vcd *v)
{
	struct timespec	start, now;

	session_end_all(REASON_SHUTDOWN);
	clock_gettime(CLOCK_MONOTONIC, &start);
	/* Guest connections close on their threads once their streams go. */
	while (session_live() > 0 || wsock_count() > 0 ||
	    hv_link_count() > 0) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec - start.tv_sec >= VCD_LINGER_SECONDS)
			break;
		event_base_loop(v->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		usleep(1000);
	}
	if (hv_link_count() > 0)
		log_warnx("exiting with %u guest connection(s) still closing "
		    "(libvirtd is not answering them)", hv_link_count());
}

static void
vcd_drain(struct vcd *v)
{
	int	passes = 0;

	while (evglue_pending_frees() > 0 && passes++ < VCD_DRAIN_PASSES)
		event_base_loop(v->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	if (evglue_pending_frees() > 0)
		log_warnx("exiting with %u libvirt free callbacks pending",
		    evglue_pending_frees());
}

int
main(int argc, char **argv)
{
	struct vcd	 v;
	struct sigaction sa;
	const char	*path = VCD_DEFAULT_CONFIG;
	char		 err[1024];
	char		*abspath;
	int		 ch, checkonly = 0;

	/* libvirt and libevent write without MSG_NOSIGNAL. */
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);

	memset(&v, 0, sizeof v);
	while ((ch = getopt(argc, argv, "df:np:V")) != -1) {
		switch (ch) {
		case 'd':
			v.foreground = 1;
			break;
		case 'f':
			path = optarg;
			break;
		case 'n':
			checkonly = 1;
			break;
		case 'p':
			v.pid_override = optarg;
			break;
		case 'V':
			printf("virtconsoled %s\n", PACKAGE_VERSION);
			return 0;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();

	log_init(LOG_TARGET_STDERR, LOG_LEVEL_INFO, NULL);
	/* The daemon runs in /, so reloads need an absolute path. */
	if ((abspath = realpath(path, NULL)) != NULL)
		path = abspath;
	if ((v.conf = config_load(path, err, sizeof err)) == NULL) {
		fprintf(stderr, "virtconsoled: %s\n", err);
		free(abspath);
		return 1;
	}
	if (checkonly) {
		printf("configuration OK\n");
		config_free(v.conf);
		free(abspath);
		return 0;
	}
	vcd_apply_overrides(&v, v.conf);
	/* Before detaching: the daemon inherits the socket. */
	notify_init();

	/* Detach before the event base and the libvirt connection exist. */
	if (!v.foreground) {
		daemon_detach();
		log_stderr_echo(1);
	}
	if (log_init(vcd_log_target(&v), v.conf->log_level,
	    v.conf->log_file) == -1)
		fatal("cannot open log_file %s", log_esc(v.conf->log_file));

	if ((vcd_pidfile = pidfile_acquire(v.conf->pid_file, err,
	    sizeof err)) == NULL)
		fatalx("%s", err);
	atexit(vcd_release_pidfile);

	vcd_raise_nofile();
	if (virInitialize() == -1)
		fatalx("cannot initialize libvirt");
	if (evthread_use_pthreads() == -1)
		fatalx("cannot enable libevent thread support");
	if ((v.base = event_base_new()) == NULL)
		fatalx("cannot create event base");
	if (evglue_register(v.base) == -1)
		fatalx("cannot register the libvirt event implementation");

	v.sig_term = vcd_signal_add(&v, SIGTERM);
	v.sig_int = vcd_signal_add(&v, SIGINT);
	v.sig_hup = vcd_signal_add(&v, SIGHUP);
	v.sig_usr1 = vcd_signal_add(&v, SIGUSR1);

	session_init(v.base, v.conf);
	metrics_reconfigure(v.conf);
	/* Stale sockets are reclaimed only now that the pid file is ours. */
	if (usock_init(v.base, v.conf, err, sizeof err) == -1)
		fatalx("%s", err);
	if (web_init(v.base, v.conf, err, sizeof err) == -1)
		fatalx("%s", err);
	vcd_self = &v;
	if (control_init(v.base, v.conf, vcd_control_reload, err,
	    sizeof err) == -1)
		fatalx("%s", err);
	if (asock_init(v.base, v.conf, err, sizeof err) == -1)
		fatalx("%s", err);
	/* Everything that needs root is done: become user, if set. */
	if (priv_drop(v.conf, err, sizeof err) == -1)
		fatalx("%s", err);
	(void)vcd_outputs(v.conf, 1);
	if (hv_init(v.base, v.conf, &guest_hv_cbs, NULL) == -1)
		fatalx("cannot set up the libvirt connection");
	vcd_settle(&v);

	log_info("virtconsoled %s started pid=%ld config=%s libevent=%s "
	    "backend=%s", PACKAGE_VERSION, (long)getpid(), log_esc(path),
	    event_get_version(), event_base_get_method(v.base));
	daemon_ready();
	notify_ready("serving consoles");

	if (v.exit_signal == 0)
		event_base_loop(v.base, EVLOOP_NO_EXIT_ON_EMPTY);

	vcd_end_sessions(&v);
	control_shutdown();
	asock_shutdown();
	web_shutdown();
	wsock_shutdown();
	usock_shutdown();
	/* The guests before their hypervisors: each names its own. */
	guest_shutdown();
	hv_shutdown();
	vcd_drain(&v);
	console_shutdown();
	/* Every console log went with its history: the directories now. */
	vcd_outputs_off();
	event_free(v.sig_term);
	event_free(v.sig_int);
	event_free(v.sig_hup);
	event_free(v.sig_usr1);
	evglue_unregister();
	event_base_free(v.base);
	libevent_global_shutdown();
	log_info("virtconsoled exiting");
	vcd_release_pidfile();
	config_free(v.conf);
	free(abspath);
	return 0;
}
