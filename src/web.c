/*
 * The web front door: TCP listeners (plain or TLS), HTTP/1.1 request heads
 * parsed on bufferevents with strict limits, the routes, and the upgrade
 * of /console/GUEST[/ALIAS] to a WebSocket session (src/wsock.c).
 *
 * One request per connection (every response says Connection: close):
 * the page, its files and the guest list are small, and a console lives
 * on its own upgraded connection.  Query strings never reach a log line,
 * since they may carry tokens.
 *
 * Every request first passes the Host check: Host must name a
 * server_name entry or the address the connection reached (plus localhost
 * on loopback), else 421, so that a DNS-rebound name never reaches a
 * route.  Authentication: a listener without auth=none requires either a
 * valid session cookie (minted when a person opens /?token=T) or a token
 * in ?token=, verified first and consumed (in state_dir, fsync'd) only when
 * the response that uses it is committed, after every other check.  An
 * auth=none listener mints nothing.  Browsers send Origin on WebSocket and
 * cross-origin requests: it must be listed in allowed_origins, or, when
 * that is empty, be the request's own scheme://Host (Host was checked).
 * A request without Origin needs a token, unless it is a same-origin GET
 * that says so in Sec-Fetch-Site (the page's own guest list).
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "virtconsoled.h"

#define WEB_ACCEPT_PAUSE	1	/* seconds after an accept error */
#define WEB_MAX_FILE		(8 * 1024 * 1024)
#define WEB_TOKEN_MAX		512
#define WEB_HSTS		"Strict-Transport-Security: max-age=31536000\r\n"
#define WEB_NO_CONSOLE		"no such console"	/* the one answer */
#define WEB_HISTORY_DEFAULT	(64 * 1024)	/* /api/history's max= */
#define WEB_HISTORY_MAX		(1024 * 1024)	/* and its cap, whatever
						   history is */
/*
 * TLS 1.2: ECDHE key exchange and AEAD ciphers only (Mozilla's
 * "intermediate" set without DHE); TLS 1.3 keeps OpenSSL's defaults.
 */
#define WEB_TLS12_CIPHERS						\
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"	\
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"	\
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define WEB_SECURITY_HEADERS						\
	"Content-Security-Policy: default-src 'self'; "			\
	"connect-src 'self'; style-src 'self' 'unsafe-inline'; "		\
	"img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; "	\
	"form-action 'none'\r\n"						\
	"Referrer-Policy: no-referrer\r\n"					\
	"Cache-Control: no-store\r\n"					\
	"X-Content-Type-Options: nosniff\r\n"				\
	"X-Frame-Options: DENY\r\n"

struct web_listener {
	char			*name;		/* ADDR:PORT as configured */
	char			*bound;		/* ADDR:PORT as bound */
	char			*address;
	int			 port;
	int			 tls;
	int			 auth_none;
	int			 metrics;	/* metrics_listen: /metrics only */
	int			 any;		/* on every address (* or [::]) */
	int			 seen;		/* mark for a reload */
	struct evconnlistener	*lev;
	struct event		*ev_resume;
	TAILQ_ENTRY(web_listener) entry;
};
TAILQ_HEAD(web_listeners, web_listener);

struct web_conn {
	struct bufferevent	*bev;
	struct web_listener	*listener;
	char			 addr[INET6_ADDRSTRLEN + 8];	/* client key */
	char			 peer[INET6_ADDRSTRLEN + 8];
	struct sockaddr_storage	 local;		/* the address dialled */
	int			 local_port;
	int			 writing;	/* response queued */
	struct http_scan	 scan;		/* of the head so far */
	struct timespec		 born;		/* accepted (monotonic) */
	struct event		*ev_timeout;	/* request, then life */
	TAILQ_ENTRY(web_conn)	 entry;
};
TAILQ_HEAD(web_conns, web_conn);

/* What a request proved about its client. */
struct web_auth {
	int		 ok;
	int		 by_token;	/* a token (not a cookie): consume it */
	int		 by_cookie;	/* a session cookie */
	struct token	 tok;		/* its claims */
	char		 subject[48];	/* for logs: token id or "auth=none" */
};

static struct {
	struct event_base	*base;
	struct web_listeners	 listeners;
	struct web_conns	 conns;		/* before the upgrade */
	SSL_CTX			*ssl;
	uint8_t			 key[32];
	int			 have_key;
	uint8_t			 aud[TOKEN_AUD_LEN];
	struct statedb		*db;		/* used tokens, revocations */
	char			*state_dir;	/* db's, as opened */
	struct event		*ev_expire;
	const struct config	*conf;
} web = {
	.listeners = TAILQ_HEAD_INITIALIZER(web.listeners),
	.conns = TAILQ_HEAD_INITIALIZER(web.conns),
};

static void	web_conn_free(struct web_conn *);

/*
 * What per-address limits count by: an IPv4 address, or an IPv6 address's
 * first ipv6_prefix bits ("2001:db8:1:2::/64"): one host holds a whole
 * /64, so counting single IPv6 addresses would bound nothing.
 */
static void
web_client_key(const struct sockaddr *sa, char *out, size_t len)
{
	struct in6_addr	 a;
	char		 buf[INET6_ADDRSTRLEN];
	unsigned int	 bits = web.conf->ipv6_prefix, i;

	out[0] = '\0';
	if (sa->sa_family == AF_INET) {
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr,
		    out, (socklen_t)len);
		return;
	}
	if (sa->sa_family != AF_INET6)
		return;
	a = ((const struct sockaddr_in6 *)sa)->sin6_addr;
	for (i = 0; i < 16; i++) {
		if (bits >= 8)
			bits -= 8;
		else {
			a.s6_addr[i] &= (uint8_t)(0xff << (8 - bits));
			bits = 0;
		}
	}
	inet_ntop(AF_INET6, &a, buf, sizeof buf);
	snprintf(out, len, "%s/%u", buf, web.conf->ipv6_prefix);
}

static unsigned int
web_count_address(const char *addr)
{
	struct web_conn	*c;
	unsigned int	 n = wsock_count_address(addr);

	TAILQ_FOREACH(c, &web.conns, entry) {
		if (strcmp(c->addr, addr) == 0)
			n++;
	}
	return n;
}

/* Connections that have not upgraded (nor been handed over). */
static unsigned int
web_count_pending(void)
{
	struct web_conn	*c;
	unsigned int	 n = 0;

	TAILQ_FOREACH(c, &web.conns, entry)
		n++;
	return n;
}

/*
 * At most three quarters of max_clients (at least one) may be connections
 * that have not upgraded, so that clients that never authenticate cannot
 * hold every slot.
 */
static unsigned int
web_pending_max(void)
{
	unsigned int	n = web.conf->max_clients * 3 / 4;	/* <= 10^6 */

	return n > 0 ? n : 1;
}

/*
 * A response is being written: it must make progress at least every
 * handshake_timeout (a client that never reads would hold its slot), and
 * the connection ends at most twice handshake_timeout after its accept,
 * however slowly the client keeps reading.
 */
static void
web_deadlines(struct web_conn *c)
{
	struct timespec	now;
	struct timeval	tv, wtv = { (time_t)web.conf->handshake_timeout, 0 };
	long long	left;

	bufferevent_set_timeouts(c->bev, NULL, &wtv);
	clock_gettime(CLOCK_MONOTONIC, &now);
	left = (2LL * web.conf->handshake_timeout) * 1000000 -
	    ((long long)(now.tv_sec - c->born.tv_sec) * 1000000 +
	    (now.tv_nsec - c->born.tv_nsec) / 1000);
	if (left < 0)
		left = 0;
	tv.tv_sec = (time_t)(left / 1000000);
	tv.tv_usec = (suseconds_t)(left % 1000000);
	evtimer_add(c->ev_timeout, &tv);
}

/* The response head; the body (if any) follows. */
static void
web_head(struct web_conn *c, int status, const char *type,
    const char *extra, long long len)
{
	evbuffer_add_printf(bufferevent_get_output(c->bev),
	    "HTTP/1.1 %d %s\r\n"
	    "Content-Type: %s\r\n"
	    "Content-Length: %lld\r\n"
	    "Connection: close\r\n"
	    WEB_SECURITY_HEADERS
	    "%s%s\r\n", status, http_reason(status), type, len,
	    c->listener->tls ? WEB_HSTS : "", extra != NULL ? extra : "");
	metrics_count_response(status);
	c->writing = 1;
	bufferevent_disable(c->bev, EV_READ);
	bufferevent_enable(c->bev, EV_WRITE);
	web_deadlines(c);
}

static void
web_respond(struct web_conn *c, int status, const char *type,
    const char *extra, const void *body, size_t len, int head_only)
{
	web_head(c, status, type, extra, (long long)len);
	if (len > 0 && !head_only)
		evbuffer_add(bufferevent_get_output(c->bev), body, len);
}

/*
 * Refusals of authentication and limits are logged, but at most 20 lines
 * per 10 seconds, so that a flood of bad tokens cannot flood the log; the
 * count of the lines left out is logged when the window ends.
 */
static struct log_limit	web_refusal_log = LOG_LIMIT_INIT("web: refusal", 10, 20);

static void
web_error(struct web_conn *c, int status, const char *why)
{
	char	body[256];
	int	n, refusal;

	n = snprintf(body, sizeof body, "%d %s%s%s\n", status,
	    http_reason(status), why != NULL ? ": " : "",
	    why != NULL ? why : "");
	refusal = status == 401 || status == 403 || status == 421 ||
	    status == 429 || status == 503;
	if (!refusal || log_limit_allow(&web_refusal_log))
		log_info("web: peer=%s listener=%s status=%d%s%s", c->peer,
		    c->listener->bound, status, why != NULL ? " why=" : "",
		    why != NULL ? log_esc(why) : "");
	web_respond(c, status, "text/plain; charset=utf-8",
	    status == 405 ? "Allow: GET, HEAD\r\n" : NULL, body,
	    n > 0 ? (size_t)n : 0, 0);
}

static const char *
web_content_type(const char *path)
{
	static const struct {
		const char	*ext;
		const char	*type;
	} types[] = {
		{ ".html", "text/html; charset=utf-8" },
		{ ".js", "text/javascript; charset=utf-8" },
		{ ".mjs", "text/javascript; charset=utf-8" },
		{ ".css", "text/css; charset=utf-8" },
		{ ".json", "application/json" },
		{ ".map", "application/json" },
		{ ".svg", "image/svg+xml" },
		{ ".png", "image/png" },
		{ ".ico", "image/x-icon" },
		{ ".txt", "text/plain; charset=utf-8" },
	};
	const char	*dot = strrchr(path, '.');
	size_t		 i;

	for (i = 0; dot != NULL && i < sizeof types / sizeof types[0]; i++) {
		if (strcmp(dot, types[i].ext) == 0)
			return types[i].type;
	}
	return "application/octet-stream";
}

/*
 * Open a static file under web_root.  path is decoded (http_path_decode:
 * no empty, "." or ".." segment, no NUL), "/" already made "/index.html".  Each name is looked up from the
 * directory before it without following a symbolic link, so only real
 * directories and files under web_root are reached, and a name starting
 * with '.' is never served.  Returns an fd of a regular file, or -1.
 */
static int
web_file_open(const char *path, struct stat *st)
{
	char	 rel[1024], *name, *slash;
	int	 dfd, fd = -1;

	if (snprintf(rel, sizeof rel, "%s", path) >= (int)sizeof rel)
		return -1;
	if ((dfd = open(web.conf->web_root, O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC)) == -1)
		return -1;
	for (name = rel + 1; dfd != -1; name = slash + 1) {
		if (name[0] == '.' || name[0] == '\0')
			break;
		if ((slash = strchr(name, '/')) == NULL) {
			fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW |
			    O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
			break;
		}
		*slash = '\0';
		fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
		    O_CLOEXEC);
		close(dfd);
		dfd = fd;
		fd = -1;
	}
	if (dfd != -1)
		close(dfd);
	if (fd != -1 && (fstat(fd, st) == -1 || !S_ISREG(st->st_mode) ||
	    st->st_size > WEB_MAX_FILE)) {
		close(fd);
		fd = -1;
	}
	return fd;
}

static void
web_file(struct web_conn *c, const char *path, int head_only)
{
	struct stat	 st;
	int		 fd;

	if (strcmp(path, "/") == 0)
		path = "/index.html";
	if ((fd = web_file_open(path, &st)) == -1) {
		web_error(c, 404, "no such file");
		return;
	}
	web_head(c, 200, web_content_type(path), NULL, (long long)st.st_size);
	if (!head_only && st.st_size > 0)
		evbuffer_add_file(bufferevent_get_output(c->bev), fd, 0,
		    st.st_size);
	else
		close(fd);
}

/*
 * Split a Host value (or a server_name entry) into a lowercased name
 * without brackets or a trailing dot, and a port: the one given, else
 * defport (-1 for an entry, where no port means any).  Returns 0, or -1
 * for a value that is not HOST[:PORT].
 */
static int
web_host_split(const char *v, char *name, size_t namelen, int *port,
    int defport)
{
	const char	*end, *colon;
	size_t		 n, i;
	unsigned long	 p;
	char		*ep;

	if (*v == '[') {
		if ((end = strchr(v, ']')) == NULL)
			return -1;
		v++;
		colon = end[1] == ':' ? end + 1 : NULL;
		if (end[1] != '\0' && colon == NULL)
			return -1;
	} else {
		colon = strchr(v, ':');
		end = colon != NULL ? colon : v + strlen(v);
	}
	n = (size_t)(end - v);
	if (n > 0 && v[n - 1] == '.')
		n--;
	if (n == 0 || n >= namelen)
		return -1;
	for (i = 0; i < n; i++)
		name[i] = (char)(v[i] >= 'A' && v[i] <= 'Z' ? v[i] - 'A' + 'a' :
		    v[i]);
	name[n] = '\0';
	*port = defport;
	if (colon != NULL) {
		if (colon[1] < '0' || colon[1] > '9')
			return -1;
		errno = 0;
		p = strtoul(colon + 1, &ep, 10);
		if (errno != 0 || *ep != '\0' || p == 0 || p > 65535)
			return -1;
		*port = (int)p;
	}
	return 0;
}

/* Does name (from Host, lowercased) spell the address a? */
static int
web_host_is_address(const char *name, const struct sockaddr_storage *a)
{
	struct in6_addr	 in6;
	struct in_addr	 in4;

	if (a->ss_family == AF_INET)
		return inet_pton(AF_INET, name, &in4) == 1 &&
		    memcmp(&in4, &((const struct sockaddr_in *)a)->sin_addr,
		    sizeof in4) == 0;
	if (a->ss_family == AF_INET6)
		return inet_pton(AF_INET6, name, &in6) == 1 &&
		    memcmp(&in6, &((const struct sockaddr_in6 *)a)->sin6_addr,
		    sizeof in6) == 0;
	return 0;
}

static int
web_local_loopback(const struct sockaddr_storage *a)
{
	if (a->ss_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)a)->sin_addr.s_addr)
		    >> 24) == 127;
	if (a->ss_family == AF_INET6)
		return IN6_IS_ADDR_LOOPBACK(
		    &((const struct sockaddr_in6 *)a)->sin6_addr);
	return 0;
}

/*
 * The Host check, before anything else: Host names a server_name entry
 * (one without a port matches any port), or the address the connection
 * reached with its port, or localhost when that address is loopback.
 * Case, a trailing dot and the scheme's default port do not matter.
 */
static int
web_host_ok(struct web_conn *c, const struct http_request *req)
{
	struct config_origin	*o;
	const char		*host;
	char			 name[300], ename[300];
	int			 port, eport;

	if ((host = http_header(req, "Host")) == NULL ||
	    http_header_count(req, "Host") != 1 ||
	    web_host_split(host, name, sizeof name, &port,
	    c->listener->tls ? 443 : 80) == -1)
		return 0;
	TAILQ_FOREACH(o, &web.conf->server_names, entry) {
		if (web_host_split(o->origin, ename, sizeof ename, &eport,
		    -1) == 0 && strcmp(ename, name) == 0 &&
		    (eport == -1 || eport == port))
			return 1;
	}
	if (port != c->local_port)
		return 0;
	if (web_host_is_address(name, &c->local))
		return 1;
	return strcmp(name, "localhost") == 0 &&
	    web_local_loopback(&c->local);
}

/*
 * Is this Origin allowed?  With allowed_origins empty, only the request's
 * own origin: the listener's scheme and the Host header (which passed the
 * Host check).  Browsers leave default ports out of Origin, and so do they
 * out of Host.
 */
static int
web_origin_ok(struct web_conn *c, const struct http_request *req,
    const char *origin)
{
	struct config_origin	*o;
	const char		*host;
	char			 own[512];

	if (!TAILQ_EMPTY(&web.conf->allowed_origins)) {
		TAILQ_FOREACH(o, &web.conf->allowed_origins, entry) {
			if (strcasecmp(o->origin, origin) == 0)
				return 1;
		}
		return 0;
	}
	if ((host = http_header(req, "Host")) == NULL)
		return 0;
	snprintf(own, sizeof own, "%s://%s", c->listener->tls ? "https" :
	    "http", host);
	return strcasecmp(own, origin) == 0;
}

/* The session cookie's name on this listener. */
static void
web_cookie_name(const struct web_conn *c, char *out, size_t len)
{
	snprintf(out, len, "%s%s", c->listener->tls ? "__Host-" : "",
	    web.conf->cookie_name);
}

/*
 * Authenticate a request: a token in ?token= (verified here, consumed by
 * web_consume() once the response is certain) or the session cookie.  A
 * ?token= that does not verify, whatever its length, is refused: it never
 * falls back to the cookie.  Returns 0, or the HTTP status to refuse with.
 */
static int
web_authenticate(struct web_conn *c, const struct http_request *req,
    struct web_auth *auth, const char **why)
{
	char	 text[WEB_TOKEN_MAX], name[96];
	time_t	 now = time(NULL);

	memset(auth, 0, sizeof *auth);
	if (c->listener->auth_none) {
		auth->ok = 1;
		auth->tok.all_guests = 1;
		auth->tok.role = TOKEN_ROLE_WRITER;
		auth->tok.history = 1;	/* a writer of any console */
		snprintf(auth->tok.alias, sizeof auth->tok.alias, TOKEN_ANY);
		snprintf(auth->tok.hv, sizeof auth->tok.hv, TOKEN_ANY);
		snprintf(auth->subject, sizeof auth->subject, "auth=none");
		return 0;
	}
	/* Without its key or its store, no credential can be checked. */
	if (!web.have_key || web.db == NULL) {
		*why = "state_dir or token secret unavailable";
		return 503;
	}
	if (http_query_has(req->query, "token")) {
		if (http_query_get(req->query, "token", text,
		    sizeof text) == -1) {
			*why = "malformed";
			return 403;
		}
		if (token_verify(web.key, web.aud, text, now,
		    TOKEN_KIND_TOKEN, &auth->tok, why) == -1)
			return 403;
		if (statedb_dead(web.db, auth->tok.id)) {
			*why = "token already used";
			return 403;
		}
		auth->by_token = 1;
	} else {
		web_cookie_name(c, name, sizeof name);
		if (http_cookie_get(req, name, text, sizeof text) == -1) {
			*why = "no token or session cookie";
			return 401;
		}
		if (token_verify(web.key, web.aud, text, now,
		    TOKEN_KIND_SESSION, &auth->tok, why) == -1)
			return 401;
		/*
		 * Only a login through a verified token mints sessions; the
		 * checked claim says so, in case another issuer shares the
		 * secret and the audience.
		 */
		if (!auth->tok.checked) {
			*why = "session not from a token login";
			return 401;
		}
		if (statedb_dead(web.db, auth->tok.id)) {
			*why = "session revoked";
			return 401;
		}
		/* A maximum, even when session_ttl was lowered since. */
		if ((int64_t)now >= auth->tok.iat +
		    (int64_t)web.conf->session_ttl) {
			*why = "expired";
			return 401;
		}
		auth->by_cookie = 1;
	}
	/* A credential for a hypervisor this daemon does not serve. */
	if (strcmp(auth->tok.hv, TOKEN_ANY) != 0 &&
	    hv_find(auth->tok.hv) == NULL) {
		*why = "not for this hypervisor";
		return 403;
	}
	auth->ok = 1;
	token_id_hex(&auth->tok, auth->subject);
	return 0;
}

/*
 * Consume the request's token, if it came with one: the last step before
 * a 302, 200 or 101 is committed.  The id is on disk (fsync'd) before this
 * returns 0.  Returns 0, or the status to refuse with.
 */
static int
web_consume(const struct web_auth *auth, const char **why)
{
	if (!auth->by_token)
		return 0;
	if (statedb_use(web.db, auth->tok.id, auth->tok.expires,
	    time(NULL)) == 0)
		return 0;
	switch (errno) {
	case ENOSPC:
		/* Full: refuse rather than evict, which would let a token
		 * be replayed. */
		*why = "replay cache full";
		return 503;
	case EIO:
		*why = "cannot record the token";
		return 503;
	default:
		*why = "token already used";
		return 403;
	}
}

/*
 * The Origin rule for requests that act with the client's credentials.
 * Returns 0, or 403.
 */
static int
web_check_origin(struct web_conn *c, const struct http_request *req,
    const struct web_auth *auth, const char **why)
{
	const char	*origin = http_header(req, "Origin"), *sfs;

	if (origin != NULL) {
		if (!web_origin_ok(c, req, origin)) {
			*why = "origin not allowed";
			return 403;
		}
		return 0;
	}
	/* No Origin: not a browser.  Only a token (or auth=none) will do. */
	if (auth->by_token || c->listener->auth_none)
		return 0;
	/*
	 * Except the page's own guest list: browsers send no Origin on a
	 * same-origin GET fetch(), but do say Sec-Fetch-Site: same-origin
	 * (a header scripts cannot set).  WebSocket handshakes always carry
	 * Origin, so consoles keep the strict rule.
	 */
	if (!http_header_has_token(req, "Upgrade", "websocket") &&
	    (sfs = http_header(req, "Sec-Fetch-Site")) != NULL &&
	    strcmp(sfs, "same-origin") == 0)
		return 0;
	*why = "no Origin and no token";
	return 403;
}

/* The Set-Cookie header of this listener's session cookie. */
static int
web_cookie_header(struct web_conn *c, char *out, size_t len,
    const char *value, int max_age)
{
	char	name[96];

	web_cookie_name(c, name, sizeof name);
	/*
	 * TLS: a __Host- cookie (Secure, Path=/, no Domain), which nothing
	 * on a plain connection or a sibling host can set or shadow.
	 * Plain: no Path, so that the browser scopes the cookie to the
	 * directory of the page, which keeps a deployment under a reverse
	 * proxy prefix working.
	 */
	return token_cookie_header(out, len, name, value, max_age,
	    c->listener->tls, c->listener->tls ? "/" : NULL);
}

/*
 * GET /?token=T: trade the verified token for a session cookie and drop it
 * from the URL.  Only a top-level navigation may do it, whenever the
 * browser says what the request is (Sec-Fetch-*): an image, a frame or a
 * script on another site then cannot burn a token or swap the session.
 */
static void
web_login(struct web_conn *c, const struct http_request *req,
    int head_only)
{
	struct web_auth	 auth;
	struct token	 s;
	const char	*why = NULL, *mode, *dest;
	char		 cookie[WEB_TOKEN_MAX], header[WEB_TOKEN_MAX + 256];
	char		 sid[TOKEN_ID_HEX_LEN];
	time_t		 now = time(NULL);
	size_t		 n;
	int		 status;
	static const char body[] = "signed in\n";

	if (c->listener->auth_none) {
		/* Nothing to sign in to: credentials come from tokens. */
		web_error(c, 404, "no such path");
		return;
	}
	/* A browser that sends any Sec-Fetch header sends them all. */
	mode = http_header(req, "Sec-Fetch-Mode");
	dest = http_header(req, "Sec-Fetch-Dest");
	if ((mode != NULL || dest != NULL ||
	    http_header(req, "Sec-Fetch-Site") != NULL) &&
	    (mode == NULL || strcmp(mode, "navigate") != 0 ||
	    dest == NULL || strcmp(dest, "document") != 0)) {
		web_error(c, 403, "a token link must be opened as a page");
		return;
	}
	if ((status = web_authenticate(c, req, &auth, &why)) != 0) {
		web_error(c, status == 401 ? 403 : status, why);
		return;
	}
	if (head_only) {
		/* HEAD never consumes: it gets the page's head, no cookie. */
		web_file(c, "/", 1);
		return;
	}
	if (token_new(&s, TOKEN_KIND_SESSION, web.aud, auth.tok.hv,
	    auth.tok.all_guests ? NULL : auth.tok.uuid, auth.tok.alias,
	    (int64_t)now, (int64_t)now + web.conf->session_ttl) == -1) {
		web_error(c, 500, "cannot mint a session");
		return;
	}
	s.role = auth.tok.role;
	s.history = auth.tok.history;
	s.checked = 1;
	memcpy(s.label, auth.tok.label, sizeof s.label);
	if (token_mint(web.key, &s, cookie, sizeof cookie) == -1 ||
	    web_cookie_header(c, header, sizeof header, cookie,
	    (int)web.conf->session_ttl) == -1) {
		web_error(c, 500, "cannot mint a session");
		return;
	}
	if ((status = web_consume(&auth, &why)) != 0) {
		web_error(c, status, why);
		return;
	}
	/* A relative Location keeps a sub-path deployment working. */
	n = strlen(header);
	snprintf(header + n, sizeof header - n, "\r\nLocation: ./\r\n");
	token_id_hex(&s, sid);
	log_info("web: peer=%s login token=%s session=%s%s%s%s", c->peer,
	    auth.subject, sid, s.label[0] != '\0' ? " label=\"" : "",
	    s.label[0] != '\0' ? log_esc(s.label) : "",
	    s.label[0] != '\0' ? "\"" : "");
	web_respond(c, 302, "text/plain; charset=utf-8", header, body,
	    sizeof body - 1, 0);
	explicit_bzero(cookie, sizeof cookie);
}

/*
 * GET /logout: revoke the browser's session (in state_dir, so that the
 * cookie stays dead across restarts), clear the cookie, back to the page.
 */
static void
web_logout(struct web_conn *c, const struct http_request *req,
    int head_only)
{
	struct token	 t;
	char		 text[WEB_TOKEN_MAX], name[96], header[256];
	char		 sid[TOKEN_ID_HEX_LEN];
	size_t		 n;
	static const char body[] = "signed out\n";

	web_cookie_name(c, name, sizeof name);
	if (!head_only && !c->listener->auth_none && web.have_key &&
	    web.db != NULL &&
	    http_cookie_get(req, name, text, sizeof text) == 0 &&
	    token_verify(web.key, web.aud, text, time(NULL),
	    TOKEN_KIND_SESSION, &t, NULL) == 0) {
		token_id_hex(&t, sid);
		if (statedb_revoke(web.db, t.id, t.expires, time(NULL)) == -1) {
			log_warn("web: peer=%s logout session=%s: cannot "
			    "record the revocation", c->peer, sid);
			web_error(c, 503, "cannot record the logout");
			return;
		}
		log_info("web: peer=%s logout session=%s", c->peer, sid);
	}
	if (web_cookie_header(c, header, sizeof header, "x", 0) == -1) {
		web_error(c, 500, "cannot build the cookie");
		return;
	}
	n = strlen(header);
	snprintf(header + n, sizeof header - n, "\r\nLocation: ./\r\n");
	web_respond(c, 302, "text/plain; charset=utf-8", header, body,
	    sizeof body - 1, head_only);
}

/* GET /api/guests: from the guest table, no libvirt call per request. */
static void
web_guests(struct web_conn *c, const struct web_auth *auth, int head_only)
{
	struct evbuffer	*b = evbuffer_new();
	struct guest	*g;
	struct hv	*hv;
	size_t		 i, len;
	int		 first = 1;
	char		*body;

	if (b == NULL) {
		web_error(c, 500, "out of memory");
		return;
	}
	/*
	 * role: the credential's, so that a page offers only what it can.
	 * The hypervisors in its scope, by name and state: never a URI.
	 */
	evbuffer_add_printf(b, "{\"hypervisor\":\"%s\",\"role\":\"%s\","
	    "\"hypervisors\":[", hv_state_name(hv_get_state()),
	    auth->tok.role == TOKEN_ROLE_VIEWER ? "viewer" : "writer");
	for (hv = hv_next(NULL); hv != NULL; hv = hv_next(hv)) {
		if (strcmp(auth->tok.hv, TOKEN_ANY) != 0 &&
		    strcmp(auth->tok.hv, hv_name(hv)) != 0)
			continue;
		evbuffer_add_printf(b, "%s{\"name\":\"%s\",\"state\":\"%s\"}",
		    first ? "" : ",", hv_name(hv), hv_state_name(hv_state(hv)));
		first = 0;
	}
	evbuffer_add(b, "],\"guests\":[", 12);
	first = 1;
	TAILQ_FOREACH(g, guest_list(), entry) {
		if (!token_allows(&auth->tok, guest_hv_name(g), g->uuid, NULL))
			continue;
		evbuffer_add_printf(b, "%s{\"name\":", first ? "" : ",");
		first = 0;
		json_add_string(b, g->name);
		evbuffer_add_printf(b, ",\"hypervisor\":\"%s\"",
		    guest_hv_name(g));
		evbuffer_add_printf(b, ",\"uuid\":\"%s\",\"state\":\"%s\","
		    "\"persistent\":%s,\"consoles\":[", g->uuid,
		    g->active ? "running" : "shut off",
		    g->persistent ? "true" : "false");
		for (i = 0; i < g->naliases; i++) {
			evbuffer_add_printf(b, "%s{\"alias\":", i ? "," : "");
			json_add_string(b, g->aliases[i]);
			/* busy: a writer; viewers never make it busy. */
			evbuffer_add_printf(b, ",\"busy\":%s,\"viewers\":%u}",
			    session_busy(g, g->aliases[i]) ?
			    "true" : "false",
			    session_viewers(g, g->aliases[i]));
		}
		evbuffer_add(b, "]}", 2);
	}
	evbuffer_add(b, "]}\n", 3);
	len = evbuffer_get_length(b);
	body = (char *)evbuffer_pullup(b, -1);
	web_respond(c, 200, "application/json", NULL, body, len, head_only);
	evbuffer_free(b);
}

/*
 * GUEST[/ALIAS] (after /console/ or /api/console/) to a guest and alias the
 * credential reaches.  A guest that does not exist, a console it does not
 * have and one outside the credential's scope are one answer (404, the
 * same body), so that a scoped credential learns nothing about others.
 */
static struct guest *
web_find_console(const char *segs, const char *query,
    const struct web_auth *auth, char *alias, size_t aliaslen, int *status,
    char *why, size_t whylen)
{
	char		 name[1024], hv[CONFIG_HV_NAME_MAX + 1], hvs[256];
	char		*slash;
	const char	*scope = NULL;
	struct guest	*g;
	int		 several;

	*status = 404;
	snprintf(why, whylen, "%s", WEB_NO_CONSOLE);
	snprintf(name, sizeof name, "%s", segs);
	alias[0] = '\0';
	if ((slash = strchr(name, '/')) != NULL) {
		*slash = '\0';
		if (snprintf(alias, aliaslen, "%s", slash + 1) >=
		    (int)aliaslen)
			return NULL;
	}
	/* The scope: the credential's hypervisor, narrowed by ?hv=. */
	if (strcmp(auth->tok.hv, TOKEN_ANY) != 0)
		scope = auth->tok.hv;
	if (http_query_has(query, "hv")) {
		if (http_query_get(query, "hv", hv, sizeof hv) == -1 ||
		    !config_hv_name_ok(hv)) {
			*status = 400;
			snprintf(why, whylen, "hv= wants a hypervisor name");
			return NULL;
		}
		if (scope != NULL && strcmp(scope, hv) != 0)
			return NULL;	/* outside the credential: 404 */
		scope = hv;
	}
	if (name[0] == '\0')
		return NULL;
	if ((g = guest_lookup(scope, name, &several)) == NULL) {
		/* Only hypervisors in the credential's scope are named. */
		if (several) {
			guest_lookup_hvs(scope, name, hvs, sizeof hvs);
			*status = 409;
			snprintf(why, whylen, "the guest is on several "
			    "hypervisors: %s; add ?hv=NAME", hvs);
		}
		return NULL;
	}
	if (alias[0] != '\0' && !guest_has_alias(g, alias))
		return NULL;
	if (!token_allows(&auth->tok, guest_hv_name(g), g->uuid,
	    alias[0] != '\0' ? alias : guest_default_alias(g)))
		return NULL;
	return g;
}

/*
 * GET /api/history/GUEST[/ALIAS]?from=RUN:OFFSET[:1]&max=BYTES: what the
 * console kept, as raw bytes, one stretch of one run per answer, so that
 * the body is exactly the bytes [Offset, Offset + length) and a client
 * can write it where X-Virtconsole-Offset says.  docs/WEB.md has the
 * headers and how a client pages through gaps and runs.
 */
struct web_history {
	struct history_pos	 pos;		/* where the reader stands */
	uint64_t		 first;		/* offset of the body's start */
	uint64_t		 next_run;	/* the run ended: the one after */
	int			 lost;		/* stopped at a loss, told */
	struct evbuffer		*body;
};

/*
 * The query: from=RUN:OFFSET[:1] (*fresh when absent: the caller starts
 * at the oldest byte kept of the current run) and max=BYTES (64 KiB when
 * absent), cut to what one run keeps (history + history_head) and to
 * WEB_HISTORY_MAX, so that no request makes the daemon build a large
 * answer.  Returns 0, or -1 with why (a 400).
 */
static int
web_history_query(const char *query, struct history_pos *pos, int *fresh,
    size_t *max, const char **why)
{
	char			 text[64];
	unsigned long long	 n;
	size_t			 cap;

	*max = WEB_HISTORY_DEFAULT;
	if (http_query_has(query, "max")) {
		if (http_query_get(query, "max", text, sizeof text) == -1 ||
		    parse_uint(text, ULLONG_MAX, &n) == -1 || n == 0) {
			*why = "max= wants a number of bytes, 1 or more";
			return -1;
		}
		*max = n < SIZE_MAX ? (size_t)n : SIZE_MAX;
	}
	cap = web.conf->history + web.conf->history_head;
	if (cap > WEB_HISTORY_MAX)
		cap = WEB_HISTORY_MAX;
	/* history_read() takes 0 for "no limit"; nothing is kept anyway. */
	if (cap == 0)
		cap = 1;
	if (*max > cap)
		*max = cap;
	if ((*fresh = !http_query_has(query, "from")))
		return 0;
	if (http_query_get(query, "from", text, sizeof text) == -1 ||
	    parse_history_pos(text, pos) == -1) {
		*why = "from= wants RUN:OFFSET (RUN in hex), as "
		    "X-Virtconsole-Run and X-Virtconsole-Next name them";
		return -1;
	}
	return 0;
}

/*
 * Read one answer into a->body from a->pos, at most max bytes.  A gap of
 * known length before the first byte is passed over (the body starts at
 * the next byte kept, and a->first says where); so is a loss, for a fresh
 * reader, which has nothing before it to be joined to.  The answer stops
 * at max, before a gap of known length (the next request passes over
 * it), at the end of the run (a->next_run when another followed it), and
 * at a loss: then the loss is told (a->lost) and a->pos is past it, so
 * that bytes from either side of a loss never share an answer.  Returns
 * 0, or the status to refuse with.
 */
static int
web_history_read(const struct history *h, struct web_history *a, int fresh,
    size_t max, const char **why)
{
	struct history_read	rd;
	size_t			len = 0;

	for (;;) {
		(void)history_read(h, &a->pos, max - len, &rd);
		if (len == 0)
			a->first = rd.from;
		switch (rd.item) {
		case HISTORY_NO_RUN:
			*why = "that run is not kept (the guest has run "
			    "again since, or the daemon restarted)";
			return 410;
		case HISTORY_BEYOND:
			*why = "offset past the end of the run";
			return 400;
		case HISTORY_BYTES:
			evbuffer_add(a->body, rd.data, rd.len);
			len += rd.len;
			break;
		case HISTORY_GAP:
			if (len > 0)
				return 0;
			break;
		case HISTORY_GAP_UNKNOWN:
			if (len > 0 || !fresh) {
				a->lost = 1;
				a->pos = rd.next;
				return 0;
			}
			break;
		case HISTORY_END:
			a->next_run = rd.next_run;
			return 0;
		}
		if (rd.next.offset == a->pos.offset &&
		    rd.next.gap_told == a->pos.gap_told) {
			log_warnx("web: BUG: history read did not move at "
			    "%llx:%llu", (unsigned long long)a->pos.run,
			    (unsigned long long)a->pos.offset);
			*why = "history read did not move";
			return 500;
		}
		a->pos = rd.next;
		if (len >= max)
			return 0;
	}
}

/*
 * The headers of an answer.  Content-Disposition names the guest by UUID
 * (never by name, which is the guest owner's free text) and the alias
 * with anything but [A-Za-z0-9._-] made '_'.  Returns 0, or -1.
 */
static int
web_history_headers(char *out, size_t len, const struct guest *g,
    const char *alias, const struct web_history *a)
{
	char	 name[64], next_run[64] = "";	/* name: as alias[] */
	size_t	 i;
	int	 n;

	for (i = 0; i < sizeof name - 1 && alias[i] != '\0'; i++)
		name[i] = (char)(isalnum((unsigned char)alias[i]) ||
		    strchr("._-", alias[i]) != NULL ? alias[i] : '_');
	name[i] = '\0';
	if (a->next_run != 0)
		(void)snprintf(next_run, sizeof next_run,
		    "X-Virtconsole-Next-Run: %llx\r\n",
		    (unsigned long long)a->next_run);
	n = snprintf(out, len,
	    "Content-Security-Policy: sandbox\r\n"
	    "Content-Disposition: attachment; filename=\"%s-%s-%llx.log\"\r\n"
	    "X-Virtconsole-Run: %llx\r\n"
	    "X-Virtconsole-Offset: %llu\r\n"
	    "X-Virtconsole-Next: %llu%s\r\n"
	    "%s%s", g->uuid, name, (unsigned long long)a->pos.run,
	    (unsigned long long)a->pos.run, (unsigned long long)a->first,
	    (unsigned long long)a->pos.offset, a->pos.gap_told ? ":1" : "",
	    a->lost ? "X-Virtconsole-Gap: unknown\r\n" : "", next_run);
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

static void
web_history(struct web_conn *c, const struct http_request *req,
    const char *segs, const struct web_auth *auth, int head_only)
{
	struct web_history	 a;
	const struct history	*h;
	struct guest		*g;
	char			 alias[64], extra[512], text[320];
	const char		*why = NULL;
	size_t			 max;
	int			 fresh, status;

	/* Before the console: without the claim, nothing is learnt here. */
	if (!auth->tok.history) {
		web_error(c, 403, "this credential may not read history");
		return;
	}
	if ((g = web_find_console(segs, req->query, auth, alias,
	    sizeof alias, &status, text, sizeof text)) == NULL) {
		web_error(c, status, text);
		return;
	}
	if (alias[0] == '\0' && guest_default_alias(g) == NULL) {
		web_error(c, 404, WEB_NO_CONSOLE);
		return;
	}
	if (alias[0] == '\0')
		(void)snprintf(alias, sizeof alias, "%s",
		    guest_default_alias(g));
	memset(&a, 0, sizeof a);
	if (web_history_query(req->query, &a.pos, &fresh, &max, &why) == -1) {
		web_error(c, 400, why);
		return;
	}
	/* A console no client has opened since the daemon started. */
	if ((h = console_history(g, alias)) == NULL) {
		web_error(c, 404, "nothing kept of this console");
		return;
	}
	if (fresh) {
		a.pos.run = history_run(h);
		a.pos.offset = history_oldest(h);
	}
	if ((a.body = evbuffer_new()) == NULL) {
		web_error(c, 500, "out of memory");
		return;
	}
	if ((status = web_history_read(h, &a, fresh, max, &why)) != 0 ||
	    web_history_headers(extra, sizeof extra, g, alias, &a) == -1 ||
	    (!head_only && (status = web_consume(auth, &why)) != 0)) {
		web_error(c, status != 0 ? status : 500,
		    status != 0 ? why : "cannot build the headers");
		evbuffer_free(a.body);
		return;
	}
	log_info("web: peer=%s history guest=%s console=%s run=%llx "
	    "offset=%llu next=%llu%s bytes=%zu%s", c->peer, log_esc(g->name),
	    log_esc(alias), (unsigned long long)a.pos.run,
	    (unsigned long long)a.first, (unsigned long long)a.pos.offset,
	    a.pos.gap_told ? ":1" : "", evbuffer_get_length(a.body),
	    a.lost ? " gap=unknown" : "");
	web_head(c, 200, "application/octet-stream", extra,
	    (long long)evbuffer_get_length(a.body));
	if (!head_only)
		evbuffer_add_buffer(bufferevent_get_output(c->bev), a.body);
	evbuffer_free(a.body);
}

/*
 * GET /api/console/GUEST[/ALIAS]: what opening that console would meet,
 * short of opening it, so that the page can say why an upgrade failed.
 */
static void
web_console_state(struct web_conn *c, const char *segs, const char *query,
    const struct web_auth *auth, int head_only)
{
	struct evbuffer	*b;
	struct guest	*g;
	char		 alias[64], text[320];
	const char	*a, *why = NULL;
	int		 status;

	if ((g = web_find_console(segs, query, auth, alias, sizeof alias,
	    &status, text, sizeof text)) == NULL) {
		web_error(c, status, text);
		return;
	}
	if (!head_only && (status = web_consume(auth, &why)) != 0) {
		web_error(c, status, why);
		return;
	}
	if ((b = evbuffer_new()) == NULL) {
		web_error(c, 500, "out of memory");
		return;
	}
	a = alias[0] != '\0' ? alias : guest_default_alias(g);
	evbuffer_add(b, "{\"guest\":", 9);
	json_add_string(b, g->name);
	evbuffer_add(b, ",\"console\":", 11);
	json_add_string(b, a != NULL ? a : "");
	evbuffer_add_printf(b,
	    ",\"state\":\"%s\",\"busy\":%s,\"viewers\":%u}\n",
	    g->active ? "running" : "shut off",
	    a != NULL && session_busy(g, a) ? "true" : "false",
	    a != NULL ? session_viewers(g, a) : 0);
	web_respond(c, 200, "application/json", NULL,
	    evbuffer_pullup(b, -1), evbuffer_get_length(b), head_only);
	evbuffer_free(b);
}

/*
 * Where a console's output starts, from the query of its URL: from=RUN:
 * OFFSET, tail=BYTES (not both), resume=ID.  -1 with a 400's text.
 */
static int
web_console_start(const char *query, const struct token *tok,
    struct session_start *st, char *resume, size_t resumelen,
    const char **why)
{
	struct history_pos	 pos;
	unsigned long long	 n;
	char			 val[64];

	memset(st, 0, sizeof *st);
	st->no_history = !tok->history;
	st->role = SESSION_WRITER;
	if (http_query_has(query, "mode")) {
		if (http_query_get(query, "mode", val, sizeof val) == -1 ||
		    strcmp(val, "view") != 0) {
			*why = "mode= is view (or absent, to write)";
			return -1;
		}
		st->role = SESSION_VIEWER;
	}
	if (tok->label[0] != '\0')
		st->label = tok->label;
	if (http_query_has(query, "from") && http_query_has(query, "tail")) {
		*why = "from= and tail= together";
		return -1;
	}
	if (http_query_has(query, "from")) {
		if (http_query_get(query, "from", val, sizeof val) == -1 ||
		    parse_history_pos(val, &pos) == -1) {
			*why = "from= is RUN:OFFSET (the run in hex)";
			return -1;
		}
		st->from = SESSION_FROM_POS;
		st->run = pos.run;
		st->offset = pos.offset;
	} else if (http_query_has(query, "tail")) {
		if (http_query_get(query, "tail", val, sizeof val) == -1 ||
		    parse_uint(val, HISTORY_MAX * 2, &n) == -1) {
			*why = "tail= is a number of bytes";
			return -1;
		}
		st->from = SESSION_FROM_TAIL;
		st->bytes = n;
	} else
		st->from = SESSION_FROM_LIVE;
	if (http_query_has(query, "resume")) {
		if (http_query_get(query, "resume", resume, resumelen) == -1 ||
		    strlen(resume) != SESSION_RESUME_LEN) {
			*why = "resume= is the resume id of a hello";
			return -1;
		}
		st->resume = resume;
	}
	return 0;
}

/* /console/GUEST[/ALIAS] with Upgrade: websocket. */
static void
web_console(struct web_conn *c, const struct http_request *req,
    const char *path, const struct web_auth *auth)
{
	char		 alias[64], accept[WS_ACCEPT_LEN], text[320];
	char		 resume[SESSION_RESUME_LEN + 2];
	const char	*key, *proto = NULL, *why;
	struct guest	*g;
	struct bufferevent *bev;
	struct session_start start;
	struct wsock_open o;
	int		 mode, status;

	if (!http_header_has_token(req, "Upgrade", "websocket") ||
	    !http_header_has_token(req, "Connection", "upgrade")) {
		web_error(c, 426, "this is a WebSocket endpoint");
		return;
	}
	if ((key = http_header(req, "Sec-WebSocket-Key")) == NULL ||
	    http_header_count(req, "Sec-WebSocket-Key") != 1 ||
	    ws_accept_key(key, accept) == -1) {
		web_error(c, 400, "bad or missing Sec-WebSocket-Key");
		return;
	}
	if ((why = http_header(req, "Sec-WebSocket-Version")) == NULL ||
	    strcmp(why, "13") != 0) {
		web_respond(c, 426, "text/plain; charset=utf-8",
		    "Sec-WebSocket-Version: 13\r\n", "426 version 13 only\n",
		    20, 0);
		return;
	}
	/*
	 * virtconsole.v1 first (bytes and messages), then binary (websockify,
	 * xterm.js) or none: raw; base64 for old pages.
	 */
	if (http_header_has_token(req, "Sec-WebSocket-Protocol",
	    "virtconsole.v1")) {
		proto = "virtconsole.v1";
		mode = WSOCK_V1;
	} else if (http_header_has_token(req, "Sec-WebSocket-Protocol",
	    "binary")) {
		proto = "binary";
		mode = WSOCK_RAW;
	} else if (http_header_has_token(req, "Sec-WebSocket-Protocol",
	    "base64")) {
		proto = "base64";
		mode = WSOCK_BASE64;
	} else if (http_header(req, "Sec-WebSocket-Protocol") != NULL) {
		web_error(c, 400, "subprotocols offered: virtconsole.v1, "
		    "binary, base64");
		return;
	} else
		mode = WSOCK_RAW;
	if (web_console_start(req->query, &auth->tok, &start, resume,
	    sizeof resume, &why) == -1) {
		web_error(c, 400, why);
		return;
	}

	if ((g = web_find_console(path + strlen("/console/"), req->query,
	    auth, alias, sizeof alias, &status, text, sizeof text)) == NULL) {
		web_error(c, status, text);
		return;
	}
	/*
	 * A view-only credential opens viewers only; asking to write is
	 * refused before the upgrade, so that the client learns why.
	 */
	if (auth->tok.role == TOKEN_ROLE_VIEWER &&
	    start.role != SESSION_VIEWER) {
		web_error(c, 403, "a view-only credential cannot write");
		return;
	}
	/* Every check passed: the token is spent now, not before. */
	if ((status = web_consume(auth, &why)) != 0) {
		web_error(c, status, why);
		return;
	}

	evbuffer_add_printf(bufferevent_get_output(c->bev),
	    "HTTP/1.1 101 Switching Protocols\r\n"
	    "Upgrade: websocket\r\n"
	    "Connection: Upgrade\r\n"
	    "Sec-WebSocket-Accept: %s\r\n"
	    "%s%s%s"
	    WEB_SECURITY_HEADERS
	    "%s"
	    "\r\n", accept, proto != NULL ? "Sec-WebSocket-Protocol: " : "",
	    proto != NULL ? proto : "", proto != NULL ? "\r\n" : "",
	    c->listener->tls ? WEB_HSTS : "");
	metrics_count_response(101);
	/* The connection leaves the HTTP side; wsock owns it from here. */
	bev = c->bev;
	c->bev = NULL;
	memset(&o, 0, sizeof o);
	o.addr = c->addr;
	o.peer = c->peer;
	o.listener = c->listener->bound;
	o.guest = g;
	o.alias = alias[0] != '\0' ? alias : NULL;
	o.mode = mode;
	o.subject = auth->subject;
	o.ping_interval = web.conf->ping_interval;
	if (auth->by_cookie) {
		o.expires = auth->tok.iat + (int64_t)web.conf->session_ttl;
		o.session_id = auth->tok.id;
		o.session_exp = auth->tok.expires;
	}
	o.start = &start;
	wsock_start(web.base, bev, &o);
	web_conn_free(c);
}

/*
 * The metrics door: /metrics and nothing else, no credential (it shows no
 * console content, and no guest names unless metrics_guest_labels).
 * Scrapes are logged at debug level: one a second would drown the log.
 */
static void
web_metrics(struct web_conn *c, const char *path, int head_only)
{
	struct evbuffer	*b;

	log_debug("metrics: peer=%s listener=%s %s %s", c->peer,
	    c->listener->bound, head_only ? "HEAD" : "GET", log_esc(path));
	if (strcmp(path, "/metrics") != 0) {
		web_error(c, 404, "the metrics door serves /metrics only");
		return;
	}
	if ((b = evbuffer_new()) == NULL)
		fatalx("web: out of memory");
	metrics_render(b);
	web_head(c, 200, "text/plain; version=0.0.4; charset=utf-8", NULL,
	    (long long)evbuffer_get_length(b));
	if (!head_only)
		evbuffer_add_buffer(bufferevent_get_output(c->bev), b);
	evbuffer_free(b);
}

static void
web_route(struct web_conn *c, struct http_request *req)
{
	struct web_auth	 auth;
	char		 path[1024];
	const char	*why = NULL;
	int		 head_only, status;

	if (!web_host_ok(c, req)) {
		web_error(c, 421, "misdirected request");
		return;
	}
	head_only = strcmp(req->method, "HEAD") == 0;
	if (!head_only && strcmp(req->method, "GET") != 0) {
		web_error(c, 405, NULL);
		return;
	}
	if (http_path_decode(req->path, path, sizeof path) == -1) {
		web_error(c, 400, "bad path");
		return;
	}
	if (c->listener->metrics) {
		web_metrics(c, path, head_only);
		return;
	}
	log_info("web: peer=%s listener=%s %s %s", c->peer,
	    c->listener->bound, req->method, log_esc(path));

	if (strcmp(path, "/logout") == 0) {
		web_logout(c, req, head_only);
		return;
	}
	/* The page and its files are public; what they reach is not. */
	if (strncmp(path, "/api/", 5) != 0 &&
	    strncmp(path, "/console/", 9) != 0) {
		if (strcmp(path, "/") == 0 &&
		    http_query_has(req->query, "token"))
			web_login(c, req, head_only);
		else
			web_file(c, path, head_only);
		return;
	}
	if ((status = web_authenticate(c, req, &auth, &why)) != 0 ||
	    (status = web_check_origin(c, req, &auth, &why)) != 0) {
		web_error(c, status, why);
		return;
	}
	if (strcmp(path, "/api/guests") == 0) {
		/* HEAD never consumes a token. */
		if (!head_only && (status = web_consume(&auth, &why)) != 0) {
			web_error(c, status, why);
			return;
		}
		web_guests(c, &auth, head_only);
	} else if (strncmp(path, "/api/console/", 13) == 0)
		web_console_state(c, path + 13, req->query, &auth, head_only);
	else if (strncmp(path, "/api/history/", 13) == 0)
		web_history(c, req, path + 13, &auth, head_only);
	else if (strncmp(path, "/console/", 9) == 0 && path[9] != '\0' &&
	    !head_only)
		web_console(c, req, path, &auth);
	else
		web_error(c, 404, "no such path");
}

static void
web_read_cb(struct bufferevent *bev, void *arg)
{
	struct web_conn		*c = arg;
	struct evbuffer		*in = bufferevent_get_input(bev);
	struct http_request	 req;
	const char		*buf;
	size_t			 len = evbuffer_get_length(in), used;
	int			 rc, status = 400;

	if (c->writing) {
		evbuffer_drain(in, len);
		return;
	}
	/*
	 * Only the bytes not seen before are looked at; the whole head is
	 * parsed once, when its blank line has come.
	 */
	buf = (const char *)evbuffer_pullup(in, -1);
	if ((rc = http_scan(&c->scan, buf, len, &status)) == 0)
		return;
	if (rc == 1)
		rc = http_parse(buf, len, &req, &used, &status);
	if (rc != 1) {
		web_error(c, status, "malformed request");
		return;
	}
	evbuffer_drain(in, used);
	web_route(c, &req);
	http_request_free(&req);
}

static void
web_write_cb(struct bufferevent *bev, void *arg)
{
	struct web_conn	*c = arg;

	if (c->writing &&
	    evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		web_conn_free(c);
}

static void
web_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct web_conn	*c = arg;

	if (what & BEV_EVENT_TIMEOUT) {
		log_info("web: peer=%s: response made no progress in %us, "
		    "closing", c->peer, web.conf->handshake_timeout);
		web_conn_free(c);
		return;
	}
	/* An abrupt TLS close is reported as an error: a plain disconnect. */
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		web_conn_free(c);
}

static void
web_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct web_conn	*c = arg;

	if (c->writing)
		log_info("web: peer=%s: response not taken in %us, closing",
		    c->peer, 2 * web.conf->handshake_timeout);
	else
		log_info("web: peer=%s: no complete request in %us, closing",
		    c->peer, web.conf->handshake_timeout);
	web_conn_free(c);
}

static void
web_conn_free(struct web_conn *c)
{
	TAILQ_REMOVE(&web.conns, c, entry);
	if (c->bev != NULL)
		bufferevent_free(c->bev);
	event_free(c->ev_timeout);
	free(c);
}

static void
web_accept_cb(struct evconnlistener *lev, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct web_listener	*l = arg;
	struct web_conn		*c;
	struct bufferevent	*bev;
	char			 addr[INET6_ADDRSTRLEN], key[INET6_ADDRSTRLEN + 8];
	socklen_t		 slen;
	SSL			*ssl;
	unsigned int		 pending;
	int			 port = 0, over;

	addr[0] = '\0';
	if (sa->sa_family == AF_INET) {
		inet_ntop(AF_INET, &((struct sockaddr_in *)sa)->sin_addr,
		    addr, sizeof addr);
		port = ntohs(((struct sockaddr_in *)sa)->sin_port);
	} else if (sa->sa_family == AF_INET6) {
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)sa)->sin6_addr,
		    addr, sizeof addr);
		port = ntohs(((struct sockaddr_in6 *)sa)->sin6_port);
	}
	web_client_key(sa, key, sizeof key);
	pending = web_count_pending();
	over = wsock_count() + pending + 1 > web.conf->max_clients ||
	    pending + 1 > web_pending_max() ? 503 :
	    web_count_address(key) + 1 > web.conf->max_clients_per_address ?
	    429 : 0;
	/*
	 * Over a limit on a TLS listener: closed before any TLS byte, so
	 * that refusing costs no handshake.  A plain client gets its 503 or
	 * 429 below.
	 */
	if (over != 0 && l->tls) {
		if (log_limit_allow(&web_refusal_log))
			log_info("web: peer=%s listener=%s status=%d why=%s "
			    "(closed before TLS)", addr, l->bound, over,
			    over == 503 ? "too many clients" :
			    "too many clients from this address");
		close(fd);
		return;
	}
	ssl = NULL;
	if (l->tls && (web.ssl == NULL || (ssl = SSL_new(web.ssl)) == NULL)) {
		log_warnx("web: listener %s: no TLS context for a client",
		    l->bound);
		close(fd);
		return;
	}
	if (l->tls)
		bev = bufferevent_openssl_socket_new(web.base, fd, ssl,
		    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	else
		bev = bufferevent_socket_new(web.base, fd,
		    BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL) {
		if (ssl != NULL)
			SSL_free(ssl);
		close(fd);
		return;
	}
	c = xcalloc(1, sizeof *c);
	c->bev = bev;
	c->listener = l;
	/* The address this client dialled: on a * or [::] listener, the
	 * one interface address its Host may name. */
	slen = sizeof c->local;
	if (getsockname(fd, (struct sockaddr *)&c->local, &slen) == 0)
		c->local_port = ntohs(c->local.ss_family == AF_INET6 ?
		    ((struct sockaddr_in6 *)&c->local)->sin6_port :
		    ((struct sockaddr_in *)&c->local)->sin_port);
	snprintf(c->addr, sizeof c->addr, "%s", key);
	snprintf(c->peer, sizeof c->peer, sa->sa_family == AF_INET6 ?
	    "[%s]:%d" : "%s:%d", addr, port);
	clock_gettime(CLOCK_MONOTONIC, &c->born);
	c->ev_timeout = evtimer_new(web.base, web_timeout_cb, c);
	TAILQ_INSERT_TAIL(&web.conns, c, entry);
	bufferevent_setcb(bev, web_read_cb, web_write_cb, web_event_cb, c);
	/* Stop reading past the largest head the parser accepts. */
	bufferevent_setwatermark(bev, EV_READ, 0, HTTP_MAX_HEAD + 1);
	bufferevent_enable(bev, EV_READ);
	timer_arm(c->ev_timeout, web.conf->handshake_timeout);

	/* Limits (counted before this one was added): refuse politely. */
	if (over != 0)
		web_error(c, over, over == 503 ? "too many clients" :
		    "too many clients from this address");
}

static void
web_resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct web_listener	*l = arg;

	evconnlistener_enable(l->lev);
}

/* Out of descriptors, most likely: pause this listener for a moment. */
static void
web_error_cb(struct evconnlistener *lev, void *arg)
{
	struct web_listener	*l = arg;

	log_warn("web: accept on %s", l->bound);
	evconnlistener_disable(lev);
	timer_arm(l->ev_resume, WEB_ACCEPT_PAUSE);
}

/* Say at start which Host values a listener accepts. */
static void
web_log_names(const struct web_listener *l)
{
	struct config_origin	*o;
	char			 names[1024];
	size_t			 n = 0;

	names[0] = '\0';
	TAILQ_FOREACH(o, &web.conf->server_names, entry) {
		if (n < sizeof names)
			n += (size_t)snprintf(names + n, sizeof names - n,
			    " %s", o->origin);
	}
	log_info("%s: listener %s accepts Host: %s%s%s",
	    l->metrics ? "metrics" : "web", l->bound,
	    l->any ? "any local address as dialled" : l->bound,
	    " (and localhost on loopback)", names);
}

static struct web_listener *
web_listen(const struct config_listen *cl, char *err, size_t errlen)
{
	struct web_listener	*l;
	struct sockaddr_storage	 ss;
	struct sockaddr_in	*sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)&ss;
	socklen_t		 sslen;
	char			 addr[INET6_ADDRSTRLEN];
	int			 fd, on = 1, port;

	memset(&ss, 0, sizeof ss);
	if (cl->family == AF_INET6) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)cl->port);
		inet_pton(AF_INET6, cl->address, &sin6->sin6_addr);
		sslen = sizeof *sin6;
	} else {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)cl->port);
		inet_pton(AF_INET, cl->address, &sin->sin_addr);
		sslen = sizeof *sin;
	}
	fd = socket(cl->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fd == -1 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) == -1 ||
	    (cl->family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6,
	    IPV6_V6ONLY, &on, sizeof on) == -1) ||
	    bind(fd, (struct sockaddr *)&ss, sslen) == -1 ||
	    listen(fd, 128) == -1 ||
	    getsockname(fd, (struct sockaddr *)&ss, &sslen) == -1) {
		snprintf(err, errlen, "cannot listen on %s%s%s:%d: %s",
		    cl->family == AF_INET6 ? "[" : "", cl->address,
		    cl->family == AF_INET6 ? "]" : "", cl->port,
		    strerror(errno));
		if (fd != -1)
			close(fd);
		return NULL;
	}
	port = ntohs(cl->family == AF_INET6 ? sin6->sin6_port :
	    sin->sin_port);
	l = xcalloc(1, sizeof *l);
	l->address = xstrdup(cl->address);
	l->port = cl->port;
	l->tls = cl->tls;
	l->auth_none = cl->auth_none;
	l->metrics = cl->metrics;
	snprintf(addr, sizeof addr, "%s", cl->address);
	xasprintf(&l->name, cl->family == AF_INET6 ? "[%s]:%d" : "%s:%d",
	    addr, cl->port);
	xasprintf(&l->bound, cl->family == AF_INET6 ? "[%s]:%d" : "%s:%d",
	    addr, port);
	l->ev_resume = evtimer_new(web.base, web_resume_cb, l);
	l->lev = evconnlistener_new(web.base, web_accept_cb, l,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, fd);
	if (l->lev == NULL)
		fatalx("web: cannot create a listener");
	evconnlistener_set_error_cb(l->lev, web_error_cb);
	if (l->metrics)
		log_info("metrics: listening on %s", l->bound);
	else
		log_info("web: listening on %s%s%s", l->bound,
		    l->tls ? " tls" : "", l->auth_none ? " auth=none" : "");
	if (l->auth_none)
		log_warnx("web: listener %s has auth=none: anyone who reaches "
		    "it gets every console", l->bound);
	l->any = cl->family == AF_INET6 ? IN6_IS_ADDR_UNSPECIFIED(
	    &sin6->sin6_addr) : sin->sin_addr.s_addr == htonl(INADDR_ANY);
	web_log_names(l);
	return l;
}

static void
web_listener_free(struct web_listener *l)
{
	struct web_conn	*c, *next;

	/* Handshakes in progress on it go too: they point at it. */
	TAILQ_FOREACH_SAFE(c, &web.conns, entry, next) {
		if (c->listener == l)
			web_conn_free(c);
	}
	wsock_listener_removed(l->bound);
	evconnlistener_free(l->lev);
	event_free(l->ev_resume);
	log_info("%s: stopped listening on %s", l->metrics ? "metrics" :
	    "web", l->bound);
	free(l->name);
	free(l->bound);
	free(l->address);
	free(l);
}

/* A new SSL context from conf's certificate and key; NULL with err. */
static SSL_CTX *
web_tls_load(const struct config *conf, char *err, size_t errlen)
{
	SSL_CTX	*ctx;

	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL ||
	    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_use_certificate_chain_file(ctx, conf->tls_cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, conf->tls_key,
	    SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
		snprintf(err, errlen, "TLS: cannot load %s and %s: %s",
		    conf->tls_cert, conf->tls_key,
		    ERR_reason_error_string(ERR_get_error()));
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (SSL_CTX_set_cipher_list(ctx, WEB_TLS12_CIPHERS) != 1) {
		snprintf(err, errlen, "TLS: cannot set the cipher list: %s",
		    ERR_reason_error_string(ERR_get_error()));
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION |
	    SSL_OP_CIPHER_SERVER_PREFERENCE);
	return ctx;
}

static int
web_tls_init(const struct config *conf, char *err, size_t errlen)
{
	SSL_CTX	*ctx;

	if (conf->tls_cert == NULL || conf->tls_key == NULL)
		return 0;
	if ((ctx = web_tls_load(conf, err, errlen)) == NULL)
		return -1;
	if (web.ssl != NULL)
		SSL_CTX_free(web.ssl);
	web.ssl = ctx;
	return 0;
}

/*
 * Before a reload is applied: a tls listener needs an SSL context.  When
 * none was ever loaded, the new certificate and key must load, or the
 * whole reload is refused (a listener without a context would crash at its
 * first client).  With an old context, a pair that cannot be read (a
 * root-only key after the privilege drop) keeps the old one, as before.
 */
int
web_reload_check(const struct config *conf, char *err, size_t errlen)
{
	struct config_listen	*cl;
	SSL_CTX			*ctx;

	TAILQ_FOREACH(cl, &conf->listens, entry) {
		if (cl->tls)
			break;
	}
	if (cl == NULL || web.ssl != NULL)
		return 0;
	if ((ctx = web_tls_load(conf, err, errlen)) == NULL)
		return -1;
	SSL_CTX_free(ctx);
	return 0;
}

static void
web_expire_cb(evutil_socket_t fd, short what, void *arg)
{
	if (web.db != NULL)
		statedb_expire(web.db, time(NULL));
	timer_arm(web.ev_expire, 60);
}

/*
 * state_dir: the audience id and the store of used tokens and revoked
 * sessions.  Created (0700) if missing; opened once, at start: a reload
 * that changes state_dir says it takes effect at the next start.
 */
static int
web_state_init(const struct config *conf, char *err, size_t errlen)
{
	if (mkdir(conf->state_dir, 0700) == -1 && errno != EEXIST) {
		snprintf(err, errlen, "state_dir %s: %s", conf->state_dir,
		    strerror(errno));
		return -1;
	}
	if (token_audience_load(conf->state_dir, web.aud, 1, err,
	    errlen) == -1)
		return -1;
	if ((web.db = statedb_open(conf->state_dir, time(NULL), err,
	    errlen)) == NULL)
		return -1;
	web.state_dir = xstrdup(conf->state_dir);
	log_info("web: state_dir %s: %zu used token(s) and revoked "
	    "session(s) remembered", conf->state_dir, statedb_count(web.db));
	return 0;
}

/* The revocation of one web client's session, for web_revoke_guest(). */
static void
web_revoke_cb(const uint8_t *id, int64_t expires, void *arg)
{
	unsigned int	*n = arg;

	if (web.db != NULL && statedb_revoke(web.db, id, expires,
	    time(NULL)) == 0)
		(*n)++;
}

/*
 * `kick --revoke`: revoke the browser sessions behind the web clients of
 * guest (and alias), so that they cannot reconnect with their cookie;
 * with viewers_only (`kick --revoke --viewers`), those of its viewers.
 * Returns how many were revoked; the caller kicks the sessions.
 */
unsigned int
web_revoke_guest(const char *hv, const char *guest, const char *alias,
    int viewers_only)
{
	unsigned int	n = 0;

	wsock_credentials(hv, guest, alias, viewers_only, web_revoke_cb, &n);
	return n;
}

/*
 * Open the configured listeners and load the key and certificate.  At
 * start any failure is fatal; at reload (web_reconfigure) it is logged and
 * the old listener set stays.
 */
int
web_init(struct event_base *base, const struct config *conf, char *err,
    size_t errlen)
{
	struct config_listen	*cl;
	struct web_listener	*l;

	web.base = base;
	web.conf = conf;
	web.ev_expire = evtimer_new(base, web_expire_cb, NULL);
	timer_arm(web.ev_expire, 60);
	/*
	 * state_dir with a listener, and also without one when privileges
	 * will be dropped: a reload that adds a listener then could no longer
	 * create or read it.  A daemon with neither needs no state_dir.
	 */
	if ((!TAILQ_EMPTY(&conf->listens) || conf->user != NULL) &&
	    web_state_init(conf, err, errlen) == -1)
		return -1;
	/* The metrics door needs no secret, no certificate, no state. */
	TAILQ_FOREACH(cl, &conf->metrics_listens, entry) {
		if ((l = web_listen(cl, err, errlen)) == NULL)
			return -1;
		TAILQ_INSERT_TAIL(&web.listeners, l, entry);
	}
	if (TAILQ_EMPTY(&conf->listens))
		return 0;
	if (token_secret_load(conf->token_secret_file, web.key, 1, err,
	    errlen) == -1)
		return -1;
	web.have_key = 1;
	if (web_tls_init(conf, err, errlen) == -1)
		return -1;
	TAILQ_FOREACH(cl, &conf->listens, entry) {
		if ((l = web_listen(cl, err, errlen)) == NULL)
			return -1;
		TAILQ_INSERT_TAIL(&web.listeners, l, entry);
	}
	return 0;
}

/* The open listener for cl whose seen mark is `seen`, or NULL. */
static struct web_listener *
web_find(const struct config_listen *cl, int seen)
{
	struct web_listener	*l;
	char			 name[INET6_ADDRSTRLEN + 8];

	snprintf(name, sizeof name, cl->family == AF_INET6 ? "[%s]:%d" :
	    "%s:%d", cl->address, cl->port);
	TAILQ_FOREACH(l, &web.listeners, entry) {
		if (l->seen == seen && strcmp(l->name, name) == 0 &&
		    l->tls == cl->tls && l->auth_none == cl->auth_none &&
		    l->metrics == cl->metrics)
			return l;
	}
	return NULL;
}

/* Mark (seen = 1) the listeners a reload keeps. */
static void
web_keep(const struct config_listens *list)
{
	struct config_listen	*cl;
	struct web_listener	*l;

	TAILQ_FOREACH(cl, list, entry) {
		if ((l = web_find(cl, 0)) != NULL)
			l->seen = 1;
	}
}

/* Match each kept listener once (seen = 2); open the new ones. */
static void
web_open_new(const struct config_listens *list)
{
	struct config_listen	*cl;
	struct web_listener	*l;
	char			 err[512];

	TAILQ_FOREACH(cl, list, entry) {
		if ((l = web_find(cl, 1)) != NULL) {
			l->seen = 2;	/* kept, and matched once */
			web_log_names(l);	/* server_name may change */
			continue;
		}
		if ((l = web_listen(cl, err, sizeof err)) == NULL) {
			log_warnx("%s: %s", cl->metrics ? "metrics" : "web",
			    err);
			continue;
		}
		l->seen = 2;
		TAILQ_INSERT_TAIL(&web.listeners, l, entry);
	}
}

/*
 * A reload: keep listeners whose ADDRESS:PORT and options are unchanged
 * (their sessions too), open new ones, close removed ones (their sessions
 * end with "listener removed"), re-read the secret and the certificate.
 */
void
web_reconfigure(const struct config *conf)
{
	struct web_listener	*l, *next;
	char			 err[512];
	uint8_t			 key[32];

	if (web.db != NULL && strcmp(web.state_dir, conf->state_dir) != 0)
		log_warnx("web: state_dir changes take effect at the next "
		    "start; still using the old one");
	web.conf = conf;
	if (!TAILQ_EMPTY(&conf->listens)) {
		if (web.db == NULL && web_state_init(conf, err,
		    sizeof err) == -1)
			log_warnx("web: %s; credentials are refused (503) "
			    "until a reload can open it", err);
		if (token_secret_load(conf->token_secret_file, key, 1, err,
		    sizeof err) == -1)
			log_warnx("web: %s; keeping the old secret", err);
		else {
			memcpy(web.key, key, sizeof key);
			web.have_key = 1;
		}
		if (web_tls_init(conf, err, sizeof err) == -1)
			log_warnx("web: %s; keeping the old certificate",
			    err);
	}
	/*
	 * Mark the listeners that stay, close the others first (so a listener
	 * whose options changed can be bound again at the same address), then
	 * open the new ones.
	 */
	TAILQ_FOREACH(l, &web.listeners, entry)
		l->seen = 0;
	web_keep(&conf->listens);
	web_keep(&conf->metrics_listens);
	TAILQ_FOREACH_SAFE(l, &web.listeners, entry, next) {
		if (!l->seen) {
			TAILQ_REMOVE(&web.listeners, l, entry);
			web_listener_free(l);
		}
	}
	web_open_new(&conf->metrics_listens);
	web_open_new(&conf->listens);
}

void
web_shutdown(void)
{
	struct web_listener	*l;
	struct web_conn		*c;

	/* NOLINTBEGIN(clang-analyzer-unix.Malloc): TAILQ, see .clang-tidy */
	while ((c = TAILQ_FIRST(&web.conns)) != NULL)
		web_conn_free(c);
	/* NOLINTEND(clang-analyzer-unix.Malloc) */
	while ((l = TAILQ_FIRST(&web.listeners)) != NULL) {
		TAILQ_REMOVE(&web.listeners, l, entry);
		evconnlistener_free(l->lev);
		event_free(l->ev_resume);
		free(l->name);
		free(l->bound);
		free(l->address);
		free(l);
	}
	if (web.ev_expire != NULL)
		event_free(web.ev_expire);
	web.ev_expire = NULL;
	if (web.db != NULL)
		statedb_close(web.db);
	web.db = NULL;
	free(web.state_dir);
	web.state_dir = NULL;
	if (web.ssl != NULL)
		SSL_CTX_free(web.ssl);
	web.ssl = NULL;
	explicit_bzero(web.key, sizeof web.key);
}
