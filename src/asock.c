/*
 * The attach socket: one unix socket (attach_socket) for every console of
 * every guest.  A client sends one request line,
 *
 *   ATTACH GUEST [ALIAS] [hv=NAME] [view] [replay=BYTES] [from=RUN:OFFSET]
 *
 * then bytes flow raw both ways, as on a guest's own socket (usock.c).
 * Bytes sent after the line, even in the same packet, are console input.
 * A request the door cannot serve gets the guest sockets' notice,
 * "\r\n[virtconsoled] refused: REASON\r\n", and the door closes
 * (docs/SESSIONS.md lists the reasons).  Mode and group as the guest
 * sockets (0660 and socket_group, else 0600); the socket belongs to the
 * daemon's user.  Waiting for a line is bounded: ASOCK_LINE_MAX bytes,
 * ASOCK_TIMEOUT seconds, ASOCK_WAITING_MAX connections at once.
 */
#include <sys/socket.h>
#include <sys/types.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "virtconsoled.h"

#define ASOCK_LINE_MAX		1024	/* bytes of the request line */
#define ASOCK_TIMEOUT		10	/* seconds to send it */
#define ASOCK_LINGER		2	/* seconds to read a refusal */
#define ASOCK_WAITING_MAX	64	/* connections without a session */
#define ASOCK_BACKLOG		16
#define ASOCK_WORDS_MAX		8

enum asock_state {
	ASOCK_WAITING = 0,	/* for the request line */
	ASOCK_REFUSING,		/* the refusal goes out, then close */
};

struct asock_client {
	enum asock_state	 state;
	struct bufferevent	*bev;
	struct event		*ev_timeout;
	char			 peer[64];
	TAILQ_ENTRY(asock_client) entry;
};
TAILQ_HEAD(asock_clients, asock_client);

/* Raw bytes: the session writes its notices itself. */
static const struct session_door asock_door = {
	.name = "attach",
	.kind = SESSION_DOOR_ATTACH,
};

static struct {
	struct event_base	*base;
	struct listen_path	 lp;
	struct listener		*lst;
	struct asock_clients	 clients;
	unsigned int		 nclients;
} as = { .lp.dfd = -1, .clients = TAILQ_HEAD_INITIALIZER(as.clients) };

/* Refusals, which any local user can cause: 20 lines per 10 s at most. */
static struct log_limit	asock_refusal_log =
    LOG_LIMIT_INIT("asock: refusal", 10, 20);

static void
asock_client_free(struct asock_client *c)
{
	TAILQ_REMOVE(&as.clients, c, entry);
	as.nclients--;
	if (c->bev != NULL)
		bufferevent_free(c->bev);
	event_free(c->ev_timeout);
	free(c);
}

/* Say why, then close once it is out (or after ASOCK_LINGER seconds). */
static void
asock_refuse(struct asock_client *c, const char *reason)
{
	if (log_limit_allow(&asock_refusal_log))
		log_info("asock: peer=%s refused: %s", c->peer, reason);
	c->state = ASOCK_REFUSING;
	bufferevent_disable(c->bev, EV_READ);
	evbuffer_add_printf(bufferevent_get_output(c->bev),
	    "\r\n[virtconsoled] refused: %s\r\n", reason);
	bufferevent_enable(c->bev, EV_WRITE);
	timer_arm(c->ev_timeout, ASOCK_LINGER);
}

/*
 * Read the request line's words into start, *guest, *alias and *hv (NULL
 * without hv=): NULL, or the refusal's reason.  The words point into
 * line, which is cut up.  Pure (tests/unit/test_asock.c).
 */
const char *
asock_parse(char *line, const char **guest, const char **alias,
    const char **hvname, struct session_start *start)
{
	struct history_pos	 pos;
	char			*w[ASOCK_WORDS_MAX], *p;
	size_t			 bytes;
	int			 n = 0, i, view = 0, hv = 0;

	for (p = strtok(line, " \t"); p != NULL; p = strtok(NULL, " \t")) {
		if (n == ASOCK_WORDS_MAX)
			return "bad request: too many words";
		w[n++] = p;
	}
	if (n < 2 || strcmp(w[0], "ATTACH") != 0)
		return "bad request: want ATTACH GUEST [ALIAS] [hv=NAME] "
		    "[view] [replay=BYTES] [from=RUN:OFFSET]";
	*guest = w[1];
	*alias = NULL;
	*hvname = NULL;
	memset(start, 0, sizeof *start);
	start->from = SESSION_FROM_DEFAULT;
	for (i = 2; i < n; i++) {
		if (strcmp(w[i], "view") == 0) {
			if (view++)
				return "bad request: view twice";
		} else if (strncmp(w[i], "hv=", 3) == 0) {
			if (hv++)
				return "bad request: hv= twice";
			if (!config_hv_name_ok(w[i] + 3))
				return "unknown hypervisor";
			*hvname = w[i] + 3;
		} else if (strncmp(w[i], "replay=", 7) == 0) {
			if (start->from != SESSION_FROM_DEFAULT)
				return "bad request: one replay= or from= only";
			if (config_parse_size(w[i] + 7, 0, 1ULL << 30,
			    &bytes) == -1)
				return "bad request: replay= wants BYTES (K, M "
				    "or G suffix, at most 1G)";
			start->from = SESSION_FROM_TAIL;
			start->bytes = bytes;
		} else if (strncmp(w[i], "from=", 5) == 0) {
			if (start->from != SESSION_FROM_DEFAULT)
				return "bad request: one replay= or from= only";
			if (parse_history_pos(w[i] + 5, &pos) == -1)
				return "bad request: from= wants RUN:OFFSET "
				    "(RUN in hex)";
			start->from = SESSION_FROM_POS;
			start->run = pos.run;
			start->offset = pos.offset;
		} else if (i == 2 && strchr(w[i], '=') == NULL)
			*alias = w[i];
		else
			return "bad request: unknown word";
	}
	start->role = view ? SESSION_VIEWER : SESSION_WRITER;
	return NULL;
}

/* A full request line: the session takes the client, or it is refused. */
static void
asock_request(struct asock_client *c, char *line)
{
	struct session_start	 start;
	struct bufferevent	*bev;
	struct guest		*g;
	const char		*guest, *alias, *hvname, *why;
	char			 peer[sizeof c->peer], hvs[256], text[320];
	int			 several;

	if ((why = asock_parse(line, &guest, &alias, &hvname,
	    &start)) != NULL) {
		asock_refuse(c, why);
		return;
	}
	if (hvname != NULL && hv_find(hvname) == NULL) {
		asock_refuse(c, "unknown hypervisor");
		return;
	}
	if ((g = guest_lookup(hvname, guest, &several)) == NULL &&
	    several) {
		/* Never a refusal of the session table: say where it is. */
		guest_lookup_hvs(hvname, guest, hvs, sizeof hvs);
		snprintf(text, sizeof text, "ambiguous guest: on hypervisors "
		    "%s; add hv=NAME", hvs);
		asock_refuse(c, text);
		return;
	}
	if (g == NULL) {
		session_count_refusal(REASON_UNKNOWN_GUEST);
		asock_refuse(c, session_reason_text(REASON_UNKNOWN_GUEST));
		return;
	}
	/* The session owns bev from here on; the rest of its input too. */
	bev = c->bev;
	c->bev = NULL;
	memcpy(peer, c->peer, sizeof peer);
	asock_client_free(c);
	(void)session_open(g, alias, bev, peer, &asock_door, NULL, &start);
}

static void
asock_read_cb(struct bufferevent *bev, void *arg)
{
	struct asock_client	*c = arg;
	struct evbuffer		*in = bufferevent_get_input(bev);
	char			*line;
	size_t			 len;

	if (c->state != ASOCK_WAITING)
		return;
	line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF);
	if (line == NULL) {
		if (evbuffer_get_length(in) > ASOCK_LINE_MAX)
			asock_refuse(c, "bad request: line too long");
		return;
	}
	if (len > ASOCK_LINE_MAX)
		asock_refuse(c, "bad request: line too long");
	else if (strlen(line) != len)
		asock_refuse(c, "bad request: NUL in the line");
	else
		asock_request(c, line);
	free(line);
}

static void
asock_write_cb(struct bufferevent *bev, void *arg)
{
	struct asock_client	*c = arg;

	if (c->state == ASOCK_REFUSING &&
	    evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		asock_client_free(c);
}

/* The client left or broke before it had a session: nothing to say. */
static void
asock_event_cb(struct bufferevent *bev, short what, void *arg)
{
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		asock_client_free(arg);
}

static void
asock_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct asock_client	*c = arg;

	if (c->state == ASOCK_WAITING)
		asock_refuse(c, "bad request: no request line within 10 s");
	else
		asock_client_free(c);
}

static void
asock_accept_cb(int fd, void *arg)
{
	static const char	 busy[] = "\r\n[virtconsoled] refused: too many "
				    "clients\r\n";
	struct asock_client	*c;
	struct ucred		 cred;
	socklen_t		 len = sizeof cred;
	char			 peer[sizeof c->peer];

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0)
		snprintf(peer, sizeof peer, "attach:pid=%ld,uid=%u",
		    (long)cred.pid, (unsigned)cred.uid);
	else
		snprintf(peer, sizeof peer, "attach");
	if (as.nclients >= ASOCK_WAITING_MAX) {
		if (log_limit_allow(&asock_refusal_log))
			log_warnx("asock: peer=%s refused: %u connections "
			    "waiting for their request line", peer,
			    as.nclients);
		/* A fresh socket's buffer takes the line without blocking. */
		(void)send(fd, busy, sizeof busy - 1, MSG_NOSIGNAL);
		close(fd);
		return;
	}
	c = xcalloc(1, sizeof *c);
	memcpy(c->peer, peer, sizeof peer);
	c->bev = bufferevent_socket_new(as.base, fd, BEV_OPT_CLOSE_ON_FREE);
	c->ev_timeout = evtimer_new(as.base, asock_timeout_cb, c);
	if (c->bev == NULL || c->ev_timeout == NULL)
		fatalx("asock: out of memory");
	TAILQ_INSERT_TAIL(&as.clients, c, entry);
	as.nclients++;
	bufferevent_setcb(c->bev, asock_read_cb, asock_write_cb,
	    asock_event_cb, c);
	/* The line and its end, and no more until it is read. */
	bufferevent_setwatermark(c->bev, EV_READ, 0, ASOCK_LINE_MAX + 2);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	timer_arm(c->ev_timeout, ASOCK_TIMEOUT);
}

/*
 * Bind attach_socket (none: no attach socket).  Runs as the control
 * socket's init does, after the pid file lock is held and before the
 * privilege drop: a socket left at the path is a crashed run's and is
 * replaced; anything else there is refused.
 */
int
asock_init(struct event_base *base, const struct config *conf, char *err,
    size_t errlen)
{
	uid_t		 owner = priv_owner(conf);
	gid_t		 gid = 0;
	char		*what;
	int		 have_gid, fd;

	as.base = base;
	if (conf->attach_socket == NULL) {
		log_info("asock: no attach socket (attach_socket none)");
		return 0;
	}
	/* The daemon's user owns it, as it owns the guest sockets. */
	if (listen_group(conf, &gid, &have_gid, err, errlen) == -1 ||
	    (fd = listen_path_open(&as.lp, "attach_socket",
	    conf->attach_socket, owner, have_gid, gid, owner != geteuid() ?
	    owner : (uid_t)-1, ASOCK_BACKLOG, err, errlen)) == -1)
		return -1;
	xasprintf(&what, "asock: accept on %s", log_esc(as.lp.path));
	as.lst = listener_new(base, fd, asock_accept_cb, NULL, what);
	free(what);
	if (as.lst == NULL)
		fatalx("asock: cannot create a listener");
	log_info("asock: listening on %s", log_esc(as.lp.path));
	return 0;
}

void
asock_shutdown(void)
{
	struct asock_client	*c;

	/* NOLINTBEGIN(clang-analyzer-unix.Malloc): TAILQ, see .clang-tidy */
	while ((c = TAILQ_FIRST(&as.clients)) != NULL)
		asock_client_free(c);
	/* NOLINTEND(clang-analyzer-unix.Malloc) */
	listener_free(as.lst);
	as.lst = NULL;
	listen_path_close(&as.lp);
}
