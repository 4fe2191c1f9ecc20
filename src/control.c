/*
 * The control socket: a unix socket (mode 0600) for virtconsolectl's
 * status, list, kick, reload and history.  Only root and the daemon's own
 * user may use it (checked with SO_PEERCRED too, in case the file mode is
 * changed).  It administers sessions; it never hands out consoles or
 * tokens, so it cannot bypass the web front door's authentication.
 *
 * Protocol: the client sends one line, `COMMAND [ARGS...] [--json]`; the
 * daemon answers `OK` or `ERR message` on the first line, then the body
 * (human text, or JSON with --json), and closes.  kick takes --revoke and
 * --viewers the way every command takes --json: anywhere on the line.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "virtconsoled.h"

#define CONTROL_LINE_MAX	1024
#define CONTROL_TIMEOUT		5	/* seconds to send a command */
#define CONTROL_CLIENTS_MAX	16
#define CONTROL_ARGS_MAX	8
#define CONTROL_HISTORY_CHUNK	(16 * 1024)	/* bytes per record */
#define CONTROL_HISTORY_MAX	(256 * 1024)	/* bytes per answer */

struct control_client {
	struct bufferevent	*bev;
	struct event		*ev_timeout;
	int			 done;
	TAILQ_ENTRY(control_client) entry;
};
TAILQ_HEAD(control_clients, control_client);

static struct {
	struct event_base	*base;
	struct listen_path	 lp;
	struct evconnlistener	*lev;
	control_reload_fn	 reload;
	struct timespec		 started;
	struct control_clients	 clients;
	unsigned int		 nclients;
} ctl = { .lp.dfd = -1, .clients = TAILQ_HEAD_INITIALIZER(ctl.clients) };

static void
control_client_free(struct control_client *c)
{
	TAILQ_REMOVE(&ctl.clients, c, entry);
	ctl.nclients--;
	bufferevent_free(c->bev);
	event_free(c->ev_timeout);
	free(c);
}

static void
control_status(struct evbuffer *b, int json)
{
	struct timespec	 now;
	struct guest	*g;
	struct hv	*hv;
	unsigned int	 guests = 0, running = 0;
	long		 uptime;

	clock_gettime(CLOCK_MONOTONIC, &now);
	uptime = (long)(now.tv_sec - ctl.started.tv_sec);
	TAILQ_FOREACH(g, guest_list(), entry) {
		guests++;
		running += g->active != 0;
	}
	/* hypervisor: connected only when every one is. */
	if (json) {
		evbuffer_add_printf(b, "{\"version\":\"%s\",\"pid\":%ld,"
		    "\"uptime\":%ld,\"hypervisor\":\"%s\",\"guests\":%u,"
		    "\"running\":%u,\"sessions\":%u,\"web_clients\":%u,"
		    "\"state_errors\":%llu,\"hypervisors\":[",
		    PACKAGE_VERSION, (long)getpid(), uptime,
		    hv_state_name(hv_get_state()), guests, running,
		    session_count(), wsock_count(), fsm_state_errors());
		for (hv = hv_next(NULL); hv != NULL; hv = hv_next(hv))
			evbuffer_add_printf(b, "%s{\"name\":\"%s\",\"state\":"
			    "\"%s\"}", hv != hv_next(NULL) ? "," : "",
			    hv_name(hv), hv_state_name(hv_state(hv)));
		evbuffer_add(b, "]}\n", 3);
		return;
	}
	evbuffer_add_printf(b, "virtconsoled %s, pid %ld, up %ld s\n"
	    "hypervisor: %s\nguests: %u (%u running)\n"
	    "sessions: %u (%u over WebSocket)\nstate_errors: %llu\n",
	    PACKAGE_VERSION, (long)getpid(), uptime,
	    hv_state_name(hv_get_state()), guests, running,
	    session_count(), wsock_count(), fsm_state_errors());
	evbuffer_add_printf(b, "hypervisors:");
	for (hv = hv_next(NULL); hv != NULL; hv = hv_next(hv))
		evbuffer_add_printf(b, " %s %s%s", hv_name(hv),
		    hv_state_name(hv_state(hv)), hv_next(hv) != NULL ? "," : "");
	evbuffer_add_printf(b, "\n");
}

struct control_list {
	struct evbuffer	*b;
	int		 json;
	int		 n;
	int		 hv_column;	/* more than one hypervisor */
	const char	*hv;		/* only its sessions, or NULL */
};

static void
control_list_one(const struct session_info *si, void *arg)
{
	struct control_list	*l = arg;

	if (l->hv != NULL && strcmp(si->hypervisor, l->hv) != 0)
		return;
	if (l->json) {
		evbuffer_add_printf(l->b, "%s{\"id\":%u,\"guest\":",
		    l->n ? "," : "", si->id);
		json_add_string(l->b, si->guest);
		evbuffer_add_printf(l->b, ",\"uuid\":\"%s\",\"console\":",
		    si->uuid);
		json_add_string(l->b, si->alias);
		evbuffer_add_printf(l->b, ",\"state\":\"%s\",\"client\":",
		    si->state);
		json_add_string(l->b, si->peer);
		evbuffer_add_printf(l->b, ",\"bytes_in\":%llu,"
		    "\"bytes_out\":%llu,\"idle\":%.0f,\"age\":%.0f,"
		    "\"role\":\"%s\",\"label\":",
		    (unsigned long long)si->bytes_in,
		    (unsigned long long)si->bytes_out, si->idle, si->age,
		    si->role);
		json_add_string(l->b, si->label);
		evbuffer_add_printf(l->b, ",\"hypervisor\":\"%s\","
		    "\"bytes_ignored\":%llu,\"bytes_dropped\":%llu,"
		    "\"recording\":", si->hypervisor,
		    (unsigned long long)si->bytes_ignored,
		    (unsigned long long)si->bytes_dropped);
		if (si->recording != NULL)
			json_add_string(l->b, si->recording);
		else
			evbuffer_add(l->b, "null", 4);
		evbuffer_add(l->b, "}", 1);
	} else
		/* A label is free text from a token: escaped, as in the log. */
		evbuffer_add_printf(l->b, "%-5u %-20s %-9s %-9s %8llu %9llu "
		    "%5.0f  %-22s %-6s %-12s %s%s%s\n", si->id,
		    log_esc(si->guest), log_esc(si->alias), si->state,
		    (unsigned long long)si->bytes_in,
		    (unsigned long long)si->bytes_out, si->idle,
		    log_esc(si->peer), si->role, si->label[0] != '\0' ?
		    log_esc(si->label) : "-", si->recording != NULL ?
		    log_esc(si->recording) : "-", l->hv_column ? " " : "",
		    l->hv_column ? si->hypervisor : "");
	l->n++;
}

static void
control_list(struct evbuffer *b, int json, const char *hv)
{
	struct control_list	l = { b, json, 0, 0, hv };

	/* HV, last, only when there is more than one hypervisor. */
	l.hv_column = hv_next(NULL) != NULL && hv_next(hv_next(NULL)) != NULL;
	if (json)
		evbuffer_add(b, "[", 1);
	else
		evbuffer_add_printf(b, "%-5s %-20s %-9s %-9s %8s %9s %5s  "
		    "%-22s %-6s %-12s %s%s\n", "ID", "GUEST", "CONSOLE",
		    "STATE", "BYTES_IN", "BYTES_OUT", "IDLE", "CLIENT", "ROLE",
		    "LABEL", "REC", l.hv_column ? " HV" : "");
	session_foreach(control_list_one, &l);
	if (json)
		evbuffer_add(b, "]\n", 2);
}

/*
 * history GUEST [ALIAS] [from=RUN:OFFSET[:1]]: what the console kept,
 * from there (by default from the start of the oldest run kept), as
 * records, at most CONTROL_HISTORY_MAX bytes of output per request:
 *
 *   BYTES RUN OFFSET LEN\n  then LEN raw bytes
 *   GAP RUN FROM TO\n        bytes FROM to TO are no longer kept
 *   LOST RUN FROM TO\n       bytes the daemon did not read (unknown
 *                            length at FROM, or FROM to TO after merges)
 *   RUN RUN\n                the next run starts (offsets from 0)
 *   NEXT RUN:OFFSET[:1]\n    more: ask again with from= this (last line)
 *   END RUN:OFFSET\n         nothing more now (last line)
 *
 * RUN is the run id in hex; from= is read by parse_history_pos() (util.c),
 * as the web's /api/history reads it.  virtconsolectl history pages
 * through it.
 */
/*
 * The guest a command names, among hypervisor hv's (NULL: all): -1 with
 * err when unknown, or when the name is on several hypervisors.
 */
static int
control_guest(const char *hv, const char *name, struct guest **g, char *err,
    size_t errlen)
{
	char	hvs[256];
	int	several;

	if ((*g = guest_lookup(hv, name, &several)) != NULL)
		return 0;
	if (several) {
		guest_lookup_hvs(hv, name, hvs, sizeof hvs);
		(void)snprintf(err, errlen, "ambiguous guest %s: on "
		    "hypervisors %s (virtconsolectl -H NAME)", log_esc(name),
		    hvs);
	} else
		(void)snprintf(err, errlen, "unknown guest %s",
		    log_esc(name));
	return -1;
}

static int
control_history(struct evbuffer *out, int argc, char **argv,
    const char *hv, char *err, size_t errlen)
{
	const struct history	*h;
	struct history_run_info	 first;
	struct history_pos	 pos;
	struct history_read	 rd;
	struct guest		*g;
	const char		*alias = NULL, *from = NULL;
	unsigned long long	 run, off;
	size_t			 sent = 0;
	int			 i;

	for (i = 2; i < argc; i++) {
		if (strncmp(argv[i], "from=", 5) == 0 && from == NULL)
			from = argv[i] + 5;
		else if (alias == NULL && i == 2)
			alias = argv[i];
		else {
			(void)snprintf(err, errlen, "usage: history GUEST "
			    "[ALIAS] [from=RUN:OFFSET]");
			return -1;
		}
	}
	if (control_guest(hv, argv[1], &g, err, errlen) == -1)
		return -1;
	if (alias == NULL)
		alias = guest_default_alias(g);
	if (alias == NULL || (h = console_history(g, alias)) == NULL) {
		(void)snprintf(err, errlen, "no history for %s%s%s",
		    log_esc(argv[1]), alias != NULL ? " " : "",
		    alias != NULL ? log_esc(alias) : "");
		return -1;
	}
	if (from != NULL) {
		if (parse_history_pos(from, &pos) == -1) {
			(void)snprintf(err, errlen, "from= wants RUN:OFFSET "
			    "(RUN in hex)");
			return -1;
		}
	} else {
		(void)history_runs(h, &first, 1);
		pos.run = first.id;
		pos.offset = 0;
		pos.gap_told = 0;
	}
	run = pos.run;
	off = pos.offset;
	for (;;) {
		switch (history_read(h, &pos, CONTROL_HISTORY_CHUNK, &rd)) {
		case HISTORY_NO_RUN:
			(void)snprintf(err, errlen, "run %llx is not kept", run);
			return -1;
		case HISTORY_BEYOND:
			(void)snprintf(err, errlen, "offset %llu is past the "
			    "end of run %llx", off, run);
			return -1;
		case HISTORY_BYTES:
			evbuffer_add_printf(out, "BYTES %llx %llu %zu\n",
			    (unsigned long long)pos.run,
			    (unsigned long long)rd.from, rd.len);
			evbuffer_add(out, rd.data, rd.len);
			sent += rd.len;
			break;
		case HISTORY_GAP:
		case HISTORY_GAP_UNKNOWN:
			evbuffer_add_printf(out, "%s %llx %llu %llu\n",
			    rd.item == HISTORY_GAP ? "GAP" : "LOST",
			    (unsigned long long)pos.run,
			    (unsigned long long)rd.from,
			    (unsigned long long)rd.to);
			break;
		case HISTORY_END:
			if (rd.next_run == 0) {
				evbuffer_add_printf(out, "END %llx:%llu\n",
				    (unsigned long long)pos.run,
				    (unsigned long long)rd.from);
				return 0;
			}
			evbuffer_add_printf(out, "RUN %llx\n",
			    (unsigned long long)rd.next_run);
			rd.next.run = rd.next_run;
			rd.next.offset = 0;
			rd.next.gap_told = 0;
			break;
		}
		if (rd.item != HISTORY_END && rd.next.run == pos.run &&
		    rd.next.offset == pos.offset &&
		    rd.next.gap_told == pos.gap_told) {
			(void)snprintf(err, errlen, "BUG: history read did "
			    "not move at %llx:%llu", (unsigned long long)pos.run,
			    (unsigned long long)pos.offset);
			log_warnx("control: %s", err);
			return -1;
		}
		pos = rd.next;
		if (sent >= CONTROL_HISTORY_MAX) {
			evbuffer_add_printf(out, "NEXT %llx:%llu%s\n",
			    (unsigned long long)pos.run,
			    (unsigned long long)pos.offset,
			    pos.gap_told ? ":1" : "");
			return 0;
		}
	}
}

/* Run one command line; the answer goes to out. */
static void
control_run(char *line, struct evbuffer *out)
{
	struct evbuffer	*body = evbuffer_new();
	struct guest	*g;
	char		*argv[CONTROL_ARGS_MAX], *p, err[1024];
	const char	*hv = NULL;
	int		 argc = 0, json = 0, revoke = 0, viewers = 0, i;
	unsigned int	 n, revoked = 0;

	for (p = strtok(line, " \t"); p != NULL; p = strtok(NULL, " \t")) {
		if (strcmp(p, "--json") == 0)
			json = 1;
		else if (strncmp(p, "hv=", 3) == 0 && hv == NULL)
			hv = p + 3;	/* virtconsolectl -H NAME */
		else if (strcmp(p, "--revoke") == 0)
			revoke = 1;
		else if (strcmp(p, "--viewers") == 0)
			viewers = 1;
		else if (argc < CONTROL_ARGS_MAX)
			argv[argc++] = p;
		else {
			evbuffer_add_printf(out, "ERR too many arguments\n");
			goto done;
		}
	}
	if (argc == 0) {
		evbuffer_add_printf(out, "ERR empty command\n");
		goto done;
	}
	if (hv != NULL && hv_find(hv) == NULL) {
		evbuffer_add_printf(out, "ERR unknown hypervisor %s\n",
		    log_esc(hv));
		goto done;
	}
	if (strcmp(argv[0], "status") == 0 && argc == 1)
		control_status(body, json);
	else if (strcmp(argv[0], "list") == 0 && argc == 1)
		control_list(body, json, hv);
	else if (strcmp(argv[0], "metrics") == 0 && argc == 1 && !json)
		metrics_render(body);
	else if (strcmp(argv[0], "stats") == 0 && argc == 1)
		metrics_stats(body, json);
	else if (strcmp(argv[0], "kick") == 0 && (argc == 2 || argc == 3)) {
		/*
		 * A name on several hypervisors names none of them; one the
		 * table no longer has may still have sessions to end.
		 */
		if (control_guest(hv, argv[1], &g, err, sizeof err) == -1 &&
		    strncmp(err, "ambiguous", 9) == 0) {
			evbuffer_add_printf(out, "ERR %s\n", err);
			goto done;
		}
		if (g != NULL)
			hv = guest_hv_name(g);
		/* Before the kick, while the web clients are still there. */
		if (revoke)
			revoked = web_revoke_guest(hv, argv[1], argc == 3 ?
			    argv[2] : NULL, viewers);
		n = session_kick_guest(hv, argv[1], argc == 3 ? argv[2] :
		    NULL, REASON_KICKED, viewers);
		if (n == 0) {
			evbuffer_add_printf(out, "ERR no %s for %s%s%s\n",
			    viewers ? "viewer" : "session", log_esc(argv[1]),
			    argc == 3 ? " " : "", argc == 3 ?
			    log_esc(argv[2]) : "");
			goto done;
		}
		log_info("control: kicked %u %s of %s%s", n, viewers ?
		    "viewer(s)" : "session(s)", log_esc(argv[1]), revoke ?
		    ", revoked their browser sessions" : "");
		if (json && revoke)
			evbuffer_add_printf(body, "{\"kicked\":%u,"
			    "\"revoked\":%u}\n", n, revoked);
		else if (json)
			evbuffer_add_printf(body, "{\"kicked\":%u}\n", n);
		else if (revoke)
			evbuffer_add_printf(body, "kicked %u session%s, revoked "
			    "%u browser session%s\n", n, n == 1 ? "" : "s",
			    revoked, revoked == 1 ? "" : "s");
		else
			evbuffer_add_printf(body, "kicked %u session%s\n", n,
			    n == 1 ? "" : "s");
	} else if (strcmp(argv[0], "history") == 0 && argc >= 2 &&
	    argc <= 4) {
		if (control_history(body, argc, argv, hv, err,
		    sizeof err) == -1) {
			evbuffer_add_printf(out, "ERR %s\n", err);
			goto done;
		}
	} else if (strcmp(argv[0], "reload") == 0 && argc == 1) {
		if (ctl.reload(err, sizeof err) == -1) {
			evbuffer_add_printf(out, "ERR config has errors, not "
			    "reloading: %s\n", err);
			goto done;
		}
		if (json)
			evbuffer_add_printf(body, "{\"reloaded\":true}\n");
		else
			evbuffer_add_printf(body, "configuration reloaded\n");
	} else {
		for (i = 0; i < argc; i++)
			argv[i] = (char *)log_esc(argv[i]);
		evbuffer_add_printf(out, "ERR unknown command or arguments: "
		    "%s (commands: status, list, kick [--revoke] [--viewers] "
		    "GUEST [ALIAS], history GUEST [ALIAS] [from=RUN:OFFSET], "
		    "metrics, reload; --json)\n", argv[0]);
		goto done;
	}
	evbuffer_add_printf(out, "OK\n");
	evbuffer_add_buffer(out, body);
done:
	evbuffer_free(body);
}

static void
control_read_cb(struct bufferevent *bev, void *arg)
{
	struct control_client	*c = arg;
	struct evbuffer		*in = bufferevent_get_input(bev);
	char			*line;
	size_t			 len;

	if (c->done)
		return;
	line = evbuffer_readln(in, &len, EVBUFFER_EOL_LF);
	if (line == NULL) {
		if (evbuffer_get_length(in) > CONTROL_LINE_MAX) {
			c->done = 1;
			evbuffer_add_printf(bufferevent_get_output(bev),
			    "ERR command line too long\n");
		}
		return;
	}
	c->done = 1;
	if (len > CONTROL_LINE_MAX || strlen(line) != len)
		evbuffer_add_printf(bufferevent_get_output(bev),
		    "ERR bad command line\n");
	else
		control_run(line, bufferevent_get_output(bev));
	free(line);
	bufferevent_disable(bev, EV_READ);
}

static void
control_write_cb(struct bufferevent *bev, void *arg)
{
	struct control_client	*c = arg;

	if (c->done && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		control_client_free(c);
}

static void
control_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct control_client	*c = arg;
	struct evbuffer		*out = bufferevent_get_output(bev);

	/*
	 * A client that half-closes can still read: one that did so before
	 * its newline is told why nothing ran, and an answer already queued
	 * still goes out.  The write callback frees the client once sent.
	 */
	if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR)) {
		if (!c->done) {
			c->done = 1;
			evbuffer_add_printf(out, "ERR incomplete command line "
			    "(end of input before a newline)\n");
		}
		if (evbuffer_get_length(out) > 0) {
			bufferevent_disable(bev, EV_READ);
			return;
		}
	}
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		control_client_free(c);
}

static void
control_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	control_client_free(arg);
}

/* Refusals, which any local user can cause: 20 lines per 10 s at most. */
static struct log_limit	control_refusal_log =
    LOG_LIMIT_INIT("control: refusal", 10, 20);

static void
control_accept_cb(struct evconnlistener *lev, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	static const char	 busy[] = "ERR too many control clients at once; "
				    "try again\n";
	struct control_client	*c;
	struct ucred		 cred;
	socklen_t		 len = sizeof cred;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == -1 ||
	    (cred.uid != 0 && cred.uid != geteuid())) {
		if (log_limit_allow(&control_refusal_log))
			log_warnx("control: refused a client (uid %ld)",
			    len == sizeof cred ? (long)cred.uid : -1L);
		close(fd);
		return;
	}
	if (ctl.nclients >= CONTROL_CLIENTS_MAX) {
		if (log_limit_allow(&control_refusal_log))
			log_warnx("control: refused a client (uid %ld): %u "
			    "clients already", (long)cred.uid, ctl.nclients);
		/* A fresh socket's buffer takes the line without blocking. */
		(void)send(fd, busy, sizeof busy - 1, MSG_NOSIGNAL);
		close(fd);
		return;
	}
	c = xcalloc(1, sizeof *c);
	c->bev = bufferevent_socket_new(ctl.base, fd, BEV_OPT_CLOSE_ON_FREE);
	c->ev_timeout = evtimer_new(ctl.base, control_timeout_cb, c);
	if (c->bev == NULL || c->ev_timeout == NULL)
		fatalx("control: out of memory");
	TAILQ_INSERT_TAIL(&ctl.clients, c, entry);
	ctl.nclients++;
	bufferevent_setcb(c->bev, control_read_cb, control_write_cb,
	    control_event_cb, c);
	bufferevent_setwatermark(c->bev, EV_READ, 0, CONTROL_LINE_MAX + 2);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	timer_arm(c->ev_timeout, CONTROL_TIMEOUT);
}

/*
 * Bind the control socket.  Runs after the pid file lock is held, so a
 * socket left at the path is a crashed run's: it is replaced.  Anything
 * else at the path is refused.  Its directory is held open (listen_dir():
 * not a symbolic link, not writable by everyone, owned by root, by us or
 * by `user`); a first run gives a directory of its own to the user, so
 * everything in it but bind() and connect() goes through that
 * descriptor, never a path.
 */
int
control_init(struct event_base *base, const struct config *conf,
    control_reload_fn reload, char *err, size_t errlen)
{
	int	fd;

	ctl.base = base;
	ctl.reload = reload;
	clock_gettime(CLOCK_MONOTONIC, &ctl.started);
	/* Mode 0600: root and the daemon's user (control_give()). */
	if ((fd = listen_path_open(&ctl.lp, "control_socket",
	    conf->control_socket, priv_owner(conf), 0, 0, (uid_t)-1, 8, err,
	    errlen)) == -1)
		return -1;
	ctl.lev = evconnlistener_new(base, control_accept_cb, NULL,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, fd);
	if (ctl.lev == NULL)
		fatalx("control: cannot create a listener");
	log_info("control: listening on %s", log_esc(ctl.lp.path));
	return 0;
}

/*
 * Give the control socket to uid before the privilege drop, so that the
 * user may use it.  Only the socket this daemon bound, checked and changed
 * through one descriptor of it; one that is gone is left gone.
 */
int
control_give(uid_t uid, char *err, size_t errlen)
{
	struct stat	st;
	int		fd;

	if (ctl.lp.name == NULL)
		return 0;
	if ((fd = socket_path_at(ctl.lp.dfd, ctl.lp.name, &st)) == -1) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "cannot give %s to uid %u: %s", ctl.lp.path,
		    (unsigned)uid, strerror(errno));
		return -1;
	}
	if (st.st_dev != ctl.lp.dev || st.st_ino != ctl.lp.ino) {
		snprintf(err, errlen, "cannot give %s to uid %u: it is no "
		    "longer the socket the daemon bound", ctl.lp.path,
		    (unsigned)uid);
		close(fd);
		return -1;
	}
	if (fchownat(fd, "", uid, (gid_t)-1, AT_EMPTY_PATH) == -1) {
		snprintf(err, errlen, "cannot give %s to uid %u: %s", ctl.lp.path,
		    (unsigned)uid, strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

void
control_shutdown(void)
{
	struct control_client	*c;

	/* NOLINTBEGIN(clang-analyzer-unix.Malloc): TAILQ, see .clang-tidy */
	while ((c = TAILQ_FIRST(&ctl.clients)) != NULL)
		control_client_free(c);
	/* NOLINTEND(clang-analyzer-unix.Malloc) */
	if (ctl.lev != NULL)
		evconnlistener_free(ctl.lev);
	ctl.lev = NULL;
	listen_path_close(&ctl.lp);
}
