/*
 * The configuration file: "key = value" lines parsed into a fresh struct
 * config, so that a reload can parse first and swap only on success.  The
 * parser reads bytes that an administrator may have mangled (and that a
 * fuzzer feeds it), so it checks every length, never relies on a NUL
 * terminator in the input, and escapes what it quotes back in messages.
 */
#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "virtconsoled.h"

#ifndef SYSCONFDIR
#define SYSCONFDIR "/usr/local/etc"
#endif
#ifndef DATADIR
#define DATADIR "/usr/local/share"
#endif
/*
 * RUNSTATEDIR is deliberately not used: with a default prefix it would be
 * /usr/local/var/run, while systemd and the FHS put run-time state in /run.
 */

#define CONFIG_MAX_FILE		(1024 * 1024)
#define CONFIG_MAX_LINE		4096
#define CONFIG_MAX_PATH		4096
#define CONFIG_MAX_NAME		256
/* Room for about 64 escaped bytes, "..." and the NUL. */
#define CONFIG_ESC_LEN		68
#define CONFIG_MAX_ID		4294967294ULL	/* (uid_t)-1 is not an id */

#define nitems(a) (sizeof (a) / sizeof (a)[0])

enum config_type {
	CONFIG_STRING,		/* non-empty string */
	CONFIG_PATH,		/* absolute path */
	CONFIG_PATH_NONE,	/* absolute path, or none for NULL */
	CONFIG_ID_NONE,		/* user or group name or number, or none */
	CONFIG_LEVEL,		/* enum log_level */
	CONFIG_POLICY,		/* enum config_policy */
	CONFIG_CAPTURE,		/* enum config_capture */
	CONFIG_BOOL,		/* int 0 or 1 */
	CONFIG_SECONDS,		/* unsigned int in min..max */
	CONFIG_COUNT,		/* unsigned int in min..max */
	CONFIG_SIZE,		/* size_t in min..max, with K/M/G suffixes */
	CONFIG_ESCAPE,		/* int byte or ESCAPE_NONE */
	CONFIG_LISTEN,		/* appends to listens */
	CONFIG_ORIGINS,		/* appends to allowed_origins */
	CONFIG_NAMES,		/* appends to server_names */
	CONFIG_COOKIE,		/* a cookie name */
	CONFIG_HV,		/* appends to hvs: NAME URI */
	CONFIG_STAMPS,		/* int: none 0, line 1 */
};

struct config_key {
	const char		*name;
	enum config_type	 type;
	size_t			 offset;
	unsigned long long	 min;
	unsigned long long	 max;
	int			 repeatable;
};

#define CONFIG_OFF(f) offsetof(struct config, f)
static const struct config_key config_keys[] = {
	/* libvirt and logging */
	{ "uri", CONFIG_STRING, CONFIG_OFF(uri), 0, 0, 0 },
	{ "hypervisor", CONFIG_HV, CONFIG_OFF(hvs), 0, 0, 1 },
	{ "log_file", CONFIG_PATH_NONE, CONFIG_OFF(log_file), 0, 0, 0 },
	{ "log_level", CONFIG_LEVEL, CONFIG_OFF(log_level), 0, 0, 0 },
	{ "pid_file", CONFIG_PATH, CONFIG_OFF(pid_file), 0, 0, 0 },
	/* console sessions */
	{ "socket_dir", CONFIG_PATH, CONFIG_OFF(socket_dir), 0, 0, 0 },
	{ "socket_group", CONFIG_ID_NONE, CONFIG_OFF(socket_group), 0, 0, 0 },
	{ "policy", CONFIG_POLICY, CONFIG_OFF(policy), 0, 0, 0 },
	{ "force", CONFIG_BOOL, CONFIG_OFF(force), 0, 0, 0 },
	{ "start_wait", CONFIG_SECONDS, CONFIG_OFF(start_wait), 0, 86400, 0 },
	{ "idle_timeout", CONFIG_SECONDS, CONFIG_OFF(idle_timeout),
	    0, 31536000, 0 },
	{ "idle_output_resets", CONFIG_BOOL, CONFIG_OFF(idle_output_resets),
	    0, 0, 0 },
	{ "escape", CONFIG_ESCAPE, CONFIG_OFF(escape), 0, 0, 0 },
	{ "max_buffer", CONFIG_SIZE, CONFIG_OFF(max_buffer),
	    4ULL << 10, 1ULL << 30, 0 },
	{ "max_viewers", CONFIG_COUNT, CONFIG_OFF(max_viewers), 0, 1024, 0 },
	{ "history", CONFIG_SIZE, CONFIG_OFF(history), 0, 1ULL << 30, 0 },
	{ "history_head", CONFIG_SIZE, CONFIG_OFF(history_head),
	    0, 1ULL << 30, 0 },
	{ "history_runs", CONFIG_COUNT, CONFIG_OFF(history_runs), 1, 16, 0 },
	{ "capture", CONFIG_CAPTURE, CONFIG_OFF(capture), 0, 0, 0 },
	{ "attach_replay", CONFIG_SIZE, CONFIG_OFF(attach_replay),
	    0, 1ULL << 30, 0 },
	/* web front door */
	{ "listen", CONFIG_LISTEN, CONFIG_OFF(listens), 0, 0, 1 },
	{ "tls_cert", CONFIG_PATH_NONE, CONFIG_OFF(tls_cert), 0, 0, 0 },
	{ "tls_key", CONFIG_PATH_NONE, CONFIG_OFF(tls_key), 0, 0, 0 },
	{ "token_secret_file", CONFIG_PATH, CONFIG_OFF(token_secret_file),
	    0, 0, 0 },
	{ "token_ttl", CONFIG_SECONDS, CONFIG_OFF(token_ttl), 1, 86400, 0 },
	{ "session_ttl", CONFIG_SECONDS, CONFIG_OFF(session_ttl),
	    60, 2592000, 0 },
	{ "allowed_origins", CONFIG_ORIGINS, CONFIG_OFF(allowed_origins),
	    0, 0, 1 },
	{ "ping_interval", CONFIG_SECONDS, CONFIG_OFF(ping_interval),
	    0, 3600, 0 },
	{ "max_clients", CONFIG_COUNT, CONFIG_OFF(max_clients), 1, 1000000, 0 },
	{ "max_clients_per_address", CONFIG_COUNT,
	    CONFIG_OFF(max_clients_per_address), 1, 1000000, 0 },
	{ "ipv6_prefix", CONFIG_COUNT, CONFIG_OFF(ipv6_prefix), 32, 128, 0 },
	{ "handshake_timeout", CONFIG_SECONDS, CONFIG_OFF(handshake_timeout),
	    1, 3600, 0 },
	{ "web_root", CONFIG_PATH, CONFIG_OFF(web_root), 0, 0, 0 },
	{ "server_name", CONFIG_NAMES, CONFIG_OFF(server_names), 0, 0, 1 },
	{ "cookie_name", CONFIG_COOKIE, CONFIG_OFF(cookie_name), 0, 0, 0 },
	{ "state_dir", CONFIG_PATH, CONFIG_OFF(state_dir), 0, 0, 0 },
	/* metrics */
	{ "metrics_listen", CONFIG_LISTEN, CONFIG_OFF(metrics_listens),
	    0, 0, 0 },
	{ "metrics_guest_labels", CONFIG_BOOL,
	    CONFIG_OFF(metrics_guest_labels), 0, 0, 0 },
	/* console logs and recordings */
	{ "console_log_dir", CONFIG_PATH_NONE, CONFIG_OFF(console_log_dir),
	    0, 0, 0 },
	{ "console_log_timestamps", CONFIG_STAMPS,
	    CONFIG_OFF(console_log_timestamps), 0, 0, 0 },
	{ "console_log_max", CONFIG_SIZE, CONFIG_OFF(console_log_max),
	    0, 1ULL << 40, 0 },
	/* 100: CLOG_KEEP_MAX (t-man.sh reads the number here) */
	{ "console_log_keep", CONFIG_COUNT, CONFIG_OFF(console_log_keep),
	    0, 100, 0 },
	{ "record_dir", CONFIG_PATH_NONE, CONFIG_OFF(record_dir), 0, 0, 0 },
	{ "record_input", CONFIG_BOOL, CONFIG_OFF(record_input), 0, 0, 0 },
	{ "record_required", CONFIG_BOOL, CONFIG_OFF(record_required),
	    0, 0, 0 },
	/* operations */
	{ "control_socket", CONFIG_PATH, CONFIG_OFF(control_socket), 0, 0, 0 },
	{ "attach_socket", CONFIG_PATH_NONE, CONFIG_OFF(attach_socket),
	    0, 0, 0 },
	{ "user", CONFIG_ID_NONE, CONFIG_OFF(user), 0, 0, 0 },
	{ "group", CONFIG_ID_NONE, CONFIG_OFF(group), 0, 0, 0 },
};

struct config_parser {
	const char	*name;
	unsigned int	 line;
	unsigned int	 seen[nitems(config_keys)];	/* first line, or 0 */
	char		*err;
	size_t		 errlen;
};

static unsigned int	config_seen(const struct config_parser *, const char *);

static const char *const config_escape_names[32] = {
	"^@", "^A", "^B", "^C", "^D", "^E", "^F", "^G",
	"^H", "^I", "^J", "^K", "^L", "^M", "^N", "^O",
	"^P", "^Q", "^R", "^S", "^T", "^U", "^V", "^W",
	"^X", "^Y", "^Z", "^[", "^\\", "^]", "^^", "^_",
};

static void	config_errorf(char *, size_t, const char *, ...)
		    VCD_PRINTF(3, 4);
static int	config_error(struct config_parser *, unsigned int,
		    const char *, ...) VCD_PRINTF(3, 4);

static void
config_errorf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list	ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* Format "NAME:LINE: message" into the caller's buffer; returns -1. */
static int
config_error(struct config_parser *p, unsigned int line, const char *fmt,
    ...)
{
	va_list	ap;
	int	n;

	if (p->err == NULL || p->errlen == 0)
		return -1;
	n = snprintf(p->err, p->errlen, "%s:%u: ", p->name, line);
	if (n < 0 || (size_t)n >= p->errlen)
		return -1;
	va_start(ap, fmt);
	vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return -1;
}

/* Escape an untrusted string for a message, cut to about 64 bytes. */
static const char *
config_esc(char *buf, size_t len, const char *s)
{
	log_escape(buf, len, s, strlen(s));
	return buf;
}

static int
config_bad_value(struct config_parser *p, const struct config_key *k,
    const char *value, const char *expected)
{
	char	v[CONFIG_ESC_LEN];

	return config_error(p, p->line, "bad value for '%s': '%s' "
	    "(expected %s)", k->name, config_esc(v, sizeof v, value),
	    expected);
}

static void *
config_field(struct config *cfg, const struct config_key *k)
{
	return (char *)cfg + k->offset;
}

static int
config_is_blank(int c)
{
	return c == ' ' || c == '\t';
}

/* Keywords are matched without regard to ASCII case, whatever the locale. */
static int
config_keyword(const char *value, const char *word)
{
	return strcasecmp(value, word) == 0;
}

/* Split off the next blank-separated word of *sp, or return NULL. */
static char *
config_word(char **sp)
{
	char	*s = *sp, *start;

	while (config_is_blank(*s))
		s++;
	if (*s == '\0') {
		*sp = s;
		return NULL;
	}
	start = s;
	while (*s != '\0' && !config_is_blank(*s))
		s++;
	if (*s != '\0')
		*s++ = '\0';
	*sp = s;
	return start;
}

static void
config_set_string(char **field, const char *value)
{
	free(*field);
	*field = value == NULL ? NULL : xstrdup(value);
}

static int
config_path_ok(const char *value)
{
	return value[0] == '/' && strlen(value) < CONFIG_MAX_PATH;
}

/*
 * parse_uint() with both bounds.  The maximum is checked again here: the
 * parse_uint() of this tree lets a single digit above a small maximum
 * through ("2" with a maximum of 1, as for "2G").
 */
static int
config_uint(const char *s, unsigned long long min, unsigned long long max,
    unsigned long long *out)
{
	unsigned long long	v;

	if (parse_uint(s, max, &v) == -1 || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

/*
 * A user or group is kept as written and resolved by whoever drops
 * privileges, which may happen after a chroot or once NSS is up.  Here it
 * only has to look like a portable name or a numeric id.
 */
static int
config_id_ok(const char *value)
{
	unsigned long long	 id;
	size_t			 i, len = strlen(value);
	unsigned char		 c;

	if (len == 0 || len > CONFIG_MAX_NAME)
		return 0;
	if (strspn(value, "0123456789") == len)
		return config_uint(value, 0, CONFIG_MAX_ID, &id) == 0;
	if (value[0] == '-')
		return 0;
	for (i = 0; i < len; i++) {
		c = (unsigned char)value[i];
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-')
			continue;
		/* Samba machine accounts end in '$'. */
		if (c == '$' && i == len - 1 && i > 0)
			continue;
		return 0;
	}
	return 1;
}

static int
config_parse_escape(const char *value, int *out)
{
	int	c;

	if (config_keyword(value, "none")) {
		*out = ESCAPE_NONE;
		return 0;
	}
	if (value[0] != '^' || value[1] == '\0' || value[2] != '\0')
		return -1;
	c = (unsigned char)value[1];
	if (c >= 'a' && c <= 'z')
		c -= 'a' - 'A';
	if (c < '@' || c > '_')
		return -1;
	*out = c & 0x1f;
	return 0;
}

static int
config_parse_level(const char *value, enum log_level *out)
{
	char	lower[16];
	size_t	i;

	/* log_level_parse() wants lowercase; keywords here ignore case. */
	for (i = 0; value[i] != '\0'; i++) {
		if (i == sizeof lower - 1)
			return -1;
		lower[i] = value[i];
		if (lower[i] >= 'A' && lower[i] <= 'Z')
			lower[i] = (char)(lower[i] - 'A' + 'a');
	}
	lower[i] = '\0';
	return log_level_parse(lower, out) == 0 ? 0 : -1;
}

int
config_parse_size(const char *value, unsigned long long min,
    unsigned long long max, size_t *out)
{
	char			 digits[32];
	size_t			 len = strlen(value);
	unsigned long long	 mult = 1, v;

	if (len == 0 || len >= sizeof digits)
		return -1;
	switch (value[len - 1]) {
	case 'k':
	case 'K':
		mult = 1ULL << 10;
		break;
	case 'm':
	case 'M':
		mult = 1ULL << 20;
		break;
	case 'g':
	case 'G':
		mult = 1ULL << 30;
		break;
	}
	if (mult != 1)
		len--;
	memcpy(digits, value, len);
	digits[len] = '\0';
	/* Bounding before multiplying keeps the product from overflowing. */
	if (config_uint(digits, 0, max / mult, &v) == -1)
		return -1;
	v *= mult;
	if (v < min || v > SIZE_MAX)
		return -1;
	*out = (size_t)v;
	return 0;
}

static const char *
config_size_name(char *buf, size_t len, unsigned long long v)
{
	if (v != 0 && v % (1ULL << 30) == 0)
		snprintf(buf, len, "%lluG", v >> 30);
	else if (v != 0 && v % (1ULL << 20) == 0)
		snprintf(buf, len, "%lluM", v >> 20);
	else if (v != 0 && v % (1ULL << 10) == 0)
		snprintf(buf, len, "%lluK", v >> 10);
	else
		snprintf(buf, len, "%llu", v);
	return buf;
}

/*
 * Compare paths a component at a time, skipping empty and "." components,
 * so that "/run//x/./y" is seen inside "/run/x".  ".." is not resolved: a
 * path that climbs out with it is still treated as inside, which errs on
 * the side of refusing.
 */
static const char *
config_path_component(const char *s, size_t *len)
{
	for (;;) {
		while (*s == '/')
			s++;
		if (s[0] == '.' && (s[1] == '/' || s[1] == '\0')) {
			s++;
			continue;
		}
		break;
	}
	*len = strcspn(s, "/");
	return s;
}

static int
config_path_inside(const char *path, const char *dir)
{
	size_t	plen, dlen;

	for (;;) {
		dir = config_path_component(dir, &dlen);
		if (dlen == 0)
			return 1;
		path = config_path_component(path, &plen);
		if (plen != dlen || memcmp(path, dir, dlen) != 0)
			return 0;
		path += plen;
		dir += dlen;
	}
}

static int
config_listen_same(const struct config_listen *a,
    const struct config_listen *b)
{
	unsigned char	aa[sizeof (struct in6_addr)];
	unsigned char	ba[sizeof (struct in6_addr)];

	if (a->family != b->family || a->port != b->port)
		return 0;
	if (inet_pton(a->family, a->address, aa) != 1 ||
	    inet_pton(b->family, b->address, ba) != 1)
		return 0;
	return memcmp(aa, ba, a->family == AF_INET6 ?
	    sizeof (struct in6_addr) : sizeof (struct in_addr)) == 0;
}

/* A hypervisor's name: [A-Za-z0-9_-]{1,32} (in paths, URLs, labels). */
int
config_hv_name_ok(const char *s)
{
	size_t	n;

	for (n = 0; s[n] != '\0'; n++) {
		if (n == CONFIG_HV_NAME_MAX || !((s[n] >= 'a' && s[n] <= 'z') ||
		    (s[n] >= 'A' && s[n] <= 'Z') || (s[n] >= '0' &&
		    s[n] <= '9') || s[n] == '_' || s[n] == '-'))
			return 0;
	}
	return n > 0;
}

static void
config_hv_free(struct config_hv *h)
{
	free(h->name);
	free(h->uri);
	free(h);
}

static struct config_hv *
config_hv_new(struct config *cfg, const char *name, const char *uri,
    int line)
{
	struct config_hv	*h;

	h = xcalloc(1, sizeof *h);
	h->name = xstrdup(name);
	h->uri = xstrdup(uri);
	h->line = line;
	TAILQ_INSERT_TAIL(&cfg->hvs, h, entry);
	return h;
}

/*
 * hypervisor = NAME URI: one of several.  Neither a name nor a URI twice
 * (two names for one hypervisor would show its guests twice).
 */
static int
config_add_hv(struct config_parser *p, struct config *cfg,
    const struct config_key *k, char *value)
{
	struct config_hv	*h;
	char			 v[CONFIG_ESC_LEN];
	char			*name, *uri;

	if ((name = config_word(&value)) == NULL ||
	    (uri = config_word(&value)) == NULL ||
	    config_word(&value) != NULL)
		return config_error(p, p->line, "bad value for '%s' (expected "
		    "NAME URI)", k->name);
	if (!config_hv_name_ok(name))
		return config_error(p, p->line, "bad hypervisor name '%s' "
		    "(expected 1 to %d of A-Z a-z 0-9 _ -)",
		    config_esc(v, sizeof v, name), CONFIG_HV_NAME_MAX);
	TAILQ_FOREACH(h, &cfg->hvs, entry) {
		if (h->line == 0)
			continue;	/* the implicit default */
		if (strcmp(h->name, name) == 0)
			return config_error(p, p->line, "duplicate hypervisor "
			    "'%s' (first at line %d)", name, h->line);
		if (strcmp(h->uri, uri) == 0)
			return config_error(p, p->line, "hypervisor '%s' has "
			    "the URI of '%s' (line %d)", name, h->name,
			    h->line);
	}
	/* The first replaces the implicit default (config_new()). */
	if ((h = TAILQ_FIRST(&cfg->hvs)) != NULL && h->line == 0) {
		TAILQ_REMOVE(&cfg->hvs, h, entry);
		config_hv_free(h);
	}
	(void)config_hv_new(cfg, name, uri, (int)p->line);
	return 0;
}

/*
 * listen = ADDRESS:PORT [tls] [auth=none]; metrics_listen = ADDRESS:PORT
 * (no options), into the list at k->offset.
 */
static int
config_add_listen(struct config_parser *p, struct config *cfg,
    const struct config_key *k, char *value)
{
	struct config_listens	*list;
	struct config_listen	*l, *old;
	unsigned char		 addr[sizeof (struct in6_addr)];
	unsigned long long	 port;
	char			 v[CONFIG_ESC_LEN], o[CONFIG_ESC_LEN];
	char			*word, *host, *portstr, *end;
	int			 family, tls = 0, auth_none = 0, metrics;

	list = (struct config_listens *)(void *)((char *)cfg + k->offset);
	metrics = list == &cfg->metrics_listens;
	/* Only a quoted value can still be empty here. */
	if ((word = config_word(&value)) == NULL)
		return config_bad_value(p, k, "", "ADDRESS:PORT");
	config_esc(v, sizeof v, word);
	if (word[0] == '[') {
		if ((end = strchr(word, ']')) == NULL || end[1] != ':')
			goto bad_address;
		*end = '\0';
		host = word + 1;
		portstr = end + 2;
		family = AF_INET6;
	} else {
		if ((portstr = strrchr(word, ':')) == NULL)
			goto bad_address;
		*portstr++ = '\0';
		host = word;
		if (strcmp(host, "*") == 0)
			host = "0.0.0.0";
		family = AF_INET;
	}
	if (inet_pton(family, host, addr) != 1)
		goto bad_address;
	if (config_uint(portstr, 0, 65535, &port) == -1) {
		return config_error(p, p->line, "bad port for '%s': '%s' "
		    "(expected 0..65535)", k->name, v);
	}

	while ((word = config_word(&value)) != NULL) {
		if (metrics) {
			return config_error(p, p->line, "unknown option for "
			    "'%s': '%s' (it takes none: plain HTTP, no token)",
			    k->name, config_esc(o, sizeof o, word));
		}
		if (strcmp(word, "tls") == 0) {
			if (tls++)
				goto twice;
		} else if (strcmp(word, "auth=none") == 0) {
			if (auth_none++)
				goto twice;
		} else {
			return config_error(p, p->line, "unknown option for "
			    "'%s': '%s' (expected tls or auth=none)", k->name,
			    config_esc(o, sizeof o, word));
		}
	}

	l = xcalloc(1, sizeof *l);
	l->address = xstrdup(host);
	l->family = family;
	l->port = (int)port;
	l->tls = tls;
	l->auth_none = auth_none;
	l->metrics = metrics;
	l->line = (int)p->line;
	/* Port 0 picks a fresh port each time, so it cannot clash. */
	TAILQ_FOREACH(old, list, entry) {
		if (port != 0 && config_listen_same(l, old)) {
			free(l->address);
			free(l);
			return config_error(p, p->line, "duplicate %s '%s' "
			    "(first at line %d)", k->name, v, old->line);
		}
	}
	TAILQ_INSERT_TAIL(list, l, entry);
	return 0;

bad_address:
	return config_error(p, p->line, "bad value for '%s': '%s' (expected "
	    "IPV4:PORT, [IPV6]:PORT or *:PORT)", k->name, v);
twice:
	return config_error(p, p->line, "option '%s' given twice for '%s'",
	    config_esc(o, sizeof o, word), k->name);
}

/*
 * What may follow a host at end: nothing or ":PORT" (1..65535, no leading
 * zero, as browsers write it).  On success the text from s to end is
 * lowercased in place.
 */
static int
config_port_tail(char *s, const char *end)
{
	size_t	n;

	if (*end == ':') {
		n = strspn(end + 1, "0123456789");
		if (n == 0 || n > 5 || end[1] == '0' || end[1 + n] != '\0' ||
		    strtoul(end + 1, NULL, 10) > 65535)
			return 0;
	} else if (*end != '\0')
		return 0;
	for (; s < end; s++) {
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
	}
	return 1;
}

/*
 * An origin as a browser sends it: scheme://host[:port], nothing more.  The
 * scheme and host are lowercased in place so that a later comparison with
 * the Origin header can be exact apart from that.
 */
static int
config_origin_ok(char *s)
{
	unsigned char	 addr[sizeof (struct in6_addr)];
	char		*host, *end;
	size_t		 n;

	if (strncasecmp(s, "http://", 7) == 0)
		host = s + 7;
	else if (strncasecmp(s, "https://", 8) == 0)
		host = s + 8;
	else
		return 0;
	if (*host == '[') {
		if ((end = strchr(host, ']')) == NULL)
			return 0;
		*end = '\0';
		n = strlen(host + 1);
		if (n == 0 || inet_pton(AF_INET6, host + 1, addr) != 1)
			n = 0;
		*end = ']';
		if (n == 0)
			return 0;
		end++;
	} else {
		n = strspn(host, "abcdefghijklmnopqrstuvwxyz"
		    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_");
		if (n == 0)
			return 0;
		end = host + n;
	}
	return config_port_tail(s, end);
}

/*
 * A name the Host header may carry: HOST or HOST:PORT, HOST a DNS name, an
 * IPv4 address or a bracketed IPv6 address.  Lowercased, a trailing dot
 * dropped, so that the comparison with Host (normalized the same way) is
 * exact.
 */
static int
config_server_name_ok(char *s)
{
	unsigned char	 addr[sizeof (struct in6_addr)];
	char		*end;
	size_t		 n;

	if (*s == '[') {
		if ((end = strchr(s, ']')) == NULL)
			return 0;
		*end = '\0';
		n = strlen(s + 1);
		if (n == 0 || inet_pton(AF_INET6, s + 1, addr) != 1)
			n = 0;
		*end = ']';
		if (n == 0)
			return 0;
		end++;
	} else {
		n = strspn(s, "abcdefghijklmnopqrstuvwxyz"
		    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_");
		if (n == 0 || s[0] == '.' || strstr(s, "..") != NULL)
			return 0;
		end = s + n;
		if (end[-1] == '.') {
			memmove(end - 1, end, strlen(end) + 1);
			end--;
			if (end == s)
				return 0;
		}
	}
	return config_port_tail(s, end);
}

/*
 * A list key (allowed_origins, server_name): one or more words, each
 * checked (and normalized in place) by ok, no duplicates.
 */
static int
config_add_words(struct config_parser *p, struct config_origins *list,
    const struct config_key *k, char *value, int (*ok)(char *),
    const char *what, const char *expected)
{
	char			 least[64];

	struct config_origin	*o;
	char			 v[CONFIG_ESC_LEN];
	char			*word;

	if (value[strspn(value, " \t")] == '\0') {
		snprintf(least, sizeof least, "at least one %s", what);
		return config_bad_value(p, k, value, least);
	}
	while ((word = config_word(&value)) != NULL) {
		config_esc(v, sizeof v, word);
		if (!ok(word)) {
			return config_error(p, p->line, "bad value for '%s': "
			    "'%s' (expected %s)", k->name, v, expected);
		}
		TAILQ_FOREACH(o, list, entry) {
			if (strcmp(o->origin, word) == 0) {
				return config_error(p, p->line,
				    "duplicate %s '%s'", what, v);
			}
		}
		o = xcalloc(1, sizeof *o);
		o->origin = xstrdup(word);
		TAILQ_INSERT_TAIL(list, o, entry);
	}
	return 0;
}

/*
 * A cookie name: letters, digits, '_' and '-' (a subset of RFC 6265's
 * token), at most 64 bytes, without the "__Host-" or "__Secure-" prefix
 * (the daemon adds "__Host-" on TLS listeners itself).
 */
static int
config_cookie_ok(const char *s)
{
	size_t	n = strspn(s, "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-");

	return n > 0 && n <= 64 && s[n] == '\0' &&
	    strncasecmp(s, "__host-", 7) != 0 &&
	    strncasecmp(s, "__secure-", 9) != 0;
}

/* Check value for key k and store it in cfg. */
static int
config_set(struct config_parser *p, struct config *cfg,
    const struct config_key *k, char *value)
{
	void			*field = config_field(cfg, k);
	unsigned long long	 v;
	char			 lo[32], hi[32], expected[96];
	int			 b;

	switch (k->type) {
	case CONFIG_STRING:
		if (*value == '\0')
			return config_bad_value(p, k, value,
			    "a non-empty string");
		config_set_string(field, value);
		return 0;
	case CONFIG_PATH:
		if (!config_path_ok(value))
			return config_bad_value(p, k, value,
			    "an absolute path");
		config_set_string(field, value);
		return 0;
	case CONFIG_PATH_NONE:
		if (config_keyword(value, "none")) {
			config_set_string(field, NULL);
			return 0;
		}
		if (!config_path_ok(value))
			return config_bad_value(p, k, value,
			    "an absolute path or none");
		config_set_string(field, value);
		return 0;
	case CONFIG_ID_NONE:
		if (config_keyword(value, "none")) {
			config_set_string(field, NULL);
			return 0;
		}
		if (!config_id_ok(value))
			return config_bad_value(p, k, value,
			    "a name, a numeric id or none");
		config_set_string(field, value);
		return 0;
	case CONFIG_LEVEL:
		if (config_parse_level(value, field) == -1)
			return config_bad_value(p, k, value,
			    "error, warn, info or debug");
		return 0;
	case CONFIG_POLICY:
		if (config_keyword(value, "refuse"))
			*(enum config_policy *)field = POLICY_REFUSE;
		else if (config_keyword(value, "takeover"))
			*(enum config_policy *)field = POLICY_TAKEOVER;
		else
			return config_bad_value(p, k, value,
			    "refuse or takeover");
		return 0;
	case CONFIG_CAPTURE:
		if (config_keyword(value, "attached"))
			*(enum config_capture *)field = CAPTURE_ATTACHED;
		else if (config_keyword(value, "always"))
			*(enum config_capture *)field = CAPTURE_ALWAYS;
		else
			return config_bad_value(p, k, value,
			    "attached or always");
		return 0;
	case CONFIG_STAMPS:
		if (config_keyword(value, "none"))
			*(int *)field = 0;
		else if (config_keyword(value, "line"))
			*(int *)field = 1;
		else
			return config_bad_value(p, k, value, "none or line");
		return 0;
	case CONFIG_BOOL:
		if (config_keyword(value, "yes") ||
		    config_keyword(value, "true") ||
		    config_keyword(value, "on") || strcmp(value, "1") == 0)
			b = 1;
		else if (config_keyword(value, "no") ||
		    config_keyword(value, "false") ||
		    config_keyword(value, "off") || strcmp(value, "0") == 0)
			b = 0;
		else
			return config_bad_value(p, k, value, "yes or no");
		*(int *)field = b;
		return 0;
	case CONFIG_SECONDS:
	case CONFIG_COUNT:
		if (config_uint(value, k->min, k->max, &v) == -1) {
			snprintf(expected, sizeof expected, "%s %llu..%llu",
			    k->type == CONFIG_SECONDS ? "seconds" :
			    "a number", k->min, k->max);
			return config_bad_value(p, k, value, expected);
		}
		*(unsigned int *)field = (unsigned int)v;
		return 0;
	case CONFIG_SIZE:
		if (config_parse_size(value, k->min, k->max, field) == -1) {
			snprintf(expected, sizeof expected,
			    "a size %s..%s, with an optional K, M or G suffix",
			    config_size_name(lo, sizeof lo, k->min),
			    config_size_name(hi, sizeof hi, k->max));
			return config_bad_value(p, k, value, expected);
		}
		return 0;
	case CONFIG_ESCAPE:
		if (config_parse_escape(value, field) == -1)
			return config_bad_value(p, k, value,
			    "^Q, ^], another ^X control key or none");
		return 0;
	case CONFIG_LISTEN:
		return config_add_listen(p, cfg, k, value);
	case CONFIG_HV:
		return config_add_hv(p, cfg, k, value);
	case CONFIG_ORIGINS:
		return config_add_words(p, &cfg->allowed_origins, k, value,
		    config_origin_ok, "origin", "http://HOST[:PORT] or "
		    "https://HOST[:PORT], without a path");
	case CONFIG_NAMES:
		return config_add_words(p, &cfg->server_names, k, value,
		    config_server_name_ok, "server_name", "HOST or HOST:PORT");
	case CONFIG_COOKIE:
		if (!config_cookie_ok(value))
			return config_bad_value(p, k, value, "1 to 64 letters, "
			    "digits, _ or -, not starting with __Host- or "
			    "__Secure-");
		config_set_string(field, value);
		return 0;
	}
	fatalx("config_set: key %s has no type %d", k->name, (int)k->type);
}

/* Parse one line, NUL-terminated and already checked for bad bytes. */
static int
config_line(struct config_parser *p, struct config *cfg, char *s)
{
	const struct config_key	*k;
	char			 v[CONFIG_ESC_LEN];
	char			*key, *eq, *value, *end, *q;
	size_t			 i;

	while (config_is_blank(*s))
		s++;
	if (*s == '\0' || *s == '#')
		return 0;

	if ((eq = strchr(s, '=')) == NULL) {
		return config_error(p, p->line, "expected 'key = value', "
		    "got '%s'", config_esc(v, sizeof v, s));
	}
	key = s;
	end = eq;
	while (end > key && config_is_blank(end[-1]))
		end--;
	*end = '\0';
	if (*key == '\0')
		return config_error(p, p->line, "missing key before '='");
	k = NULL;
	for (i = 0; i < nitems(config_keys); i++) {
		if (strcmp(config_keys[i].name, key) == 0) {
			k = &config_keys[i];
			break;
		}
	}
	if (k == NULL) {
		return config_error(p, p->line, "unknown key '%s'",
		    config_esc(v, sizeof v, key));
	}
	if (p->seen[i] != 0 && !k->repeatable) {
		return config_error(p, p->line, "duplicate key '%s' (first set "
		    "at line %u)", k->name, p->seen[i]);
	}
	if (p->seen[i] == 0)
		p->seen[i] = p->line;
	/* One form or the other: the second one's line is the error. */
	if ((strcmp(k->name, "uri") == 0 && config_seen(p, "hypervisor")) ||
	    (strcmp(k->name, "hypervisor") == 0 && config_seen(p, "uri")))
		return config_error(p, p->line, "'uri' and 'hypervisor' "
		    "together (use 'hypervisor = default URI' beside others)");

	value = eq + 1;
	while (config_is_blank(*value))
		value++;
	if (*value == '"') {
		/*
		 * Quotes allow spaces at either end and a " #" inside; what
		 * follows the closing quote may only be a comment.
		 */
		value++;
		if ((q = strchr(value, '"')) == NULL) {
			return config_error(p, p->line, "missing closing quote "
			    "for '%s'", k->name);
		}
		*q++ = '\0';
		while (config_is_blank(*q))
			q++;
		if (*q != '\0' && *q != '#') {
			return config_error(p, p->line, "unexpected text after "
			    "closing quote for '%s'", k->name);
		}
	} else {
		/* value[-1] is '=' or a blank, so q[-1] is always valid. */
		for (q = value; *q != '\0'; q++) {
			if (*q == '#' && config_is_blank(q[-1])) {
				*q = '\0';
				break;
			}
		}
		end = value + strlen(value);
		while (end > value && config_is_blank(end[-1]))
			end--;
		*end = '\0';
		if (*value == '\0') {
			return config_error(p, p->line, "missing value for "
			    "'%s'", k->name);
		}
	}
	return config_set(p, cfg, k, value);
}

static unsigned int
config_seen(const struct config_parser *p, const char *name)
{
	size_t	i;

	for (i = 0; i < nitems(config_keys); i++) {
		if (strcmp(config_keys[i].name, name) == 0)
			return p->seen[i];
	}
	return 0;
}

/* Checks that need the whole file, reported at the line that caused them. */
static int
config_check(struct config_parser *p, struct config *cfg)
{
	struct config_listen	*l, *m;
	struct config_hv	*h = TAILQ_FIRST(&cfg->hvs);
	unsigned int		 line;

	/* The uri form: one hypervisor, default, at uri. */
	cfg->hv_form = h->line != 0;
	if (!cfg->hv_form) {
		free(h->uri);
		h->uri = xstrdup(cfg->uri);
	}

	TAILQ_FOREACH(l, &cfg->listens, entry) {
		TAILQ_FOREACH(m, &cfg->metrics_listens, entry) {
			if (m->port != 0 && config_listen_same(l, m))
				return config_error(p, (unsigned int)m->line,
				    "metrics_listen is the address of the "
				    "'listen' at line %d", l->line);
		}
		if (l->tls && (cfg->tls_cert == NULL || cfg->tls_key == NULL)) {
			return config_error(p, (unsigned int)l->line,
			    "'listen' with tls needs tls_cert and tls_key");
		}
		/*
		 * Without a token, the Origin rule is all that stands between
		 * a web page the operator visits and every console: it must
		 * be explicit, never derived from the request.
		 */
		if (l->auth_none && TAILQ_EMPTY(&cfg->allowed_origins)) {
			return config_error(p, (unsigned int)l->line,
			    "'listen' with auth=none needs allowed_origins");
		}
	}
	/* Half a key pair is always a mistake, even with no tls listener. */
	if (cfg->tls_cert != NULL && cfg->tls_key == NULL) {
		return config_error(p, config_seen(p, "tls_cert"),
		    "tls_cert is set but tls_key is not");
	}
	if (cfg->tls_key != NULL && cfg->tls_cert == NULL) {
		return config_error(p, config_seen(p, "tls_key"),
		    "tls_key is set but tls_cert is not");
	}
	/*
	 * Whatever cleans stale guest sockets out of socket_dir must never
	 * find the control socket there.
	 */
	if (config_path_inside(cfg->control_socket, cfg->socket_dir)) {
		line = config_seen(p, "control_socket");
		if (line == 0)
			line = config_seen(p, "socket_dir");
		return config_error(p, line,
		    "control_socket must not be inside socket_dir");
	}
	if (cfg->attach_socket != NULL &&
	    (config_path_inside(cfg->attach_socket, cfg->socket_dir) ||
	    strcmp(cfg->attach_socket, cfg->control_socket) == 0)) {
		return config_error(p, config_seen(p, "attach_socket"),
		    "attach_socket must not be inside socket_dir nor be "
		    "control_socket");
	}
	/* Whole directories of their own: they are created and written. */
	if (cfg->console_log_dir != NULL && shared_dir(cfg->console_log_dir))
		return config_error(p, config_seen(p, "console_log_dir"),
		    "console_log_dir must be a directory of its own, not %s",
		    cfg->console_log_dir);
	if (cfg->record_dir != NULL && shared_dir(cfg->record_dir))
		return config_error(p, config_seen(p, "record_dir"),
		    "record_dir must be a directory of its own, not %s",
		    cfg->record_dir);
	if (cfg->record_required && cfg->record_dir == NULL)
		return config_error(p, config_seen(p, "record_required"),
		    "record_required = yes needs record_dir");
	return 0;
}

struct config *
config_new(void)
{
	struct config	*cfg;

	cfg = xcalloc(1, sizeof *cfg);
	cfg->uri = xstrdup("qemu:///system");
	cfg->log_file = NULL;
	cfg->log_level = LOG_LEVEL_INFO;
	cfg->pid_file = xstrdup("/run/virtconsoled/virtconsoled.pid");

	cfg->socket_dir = xstrdup("/run/virtconsoled/guests");
	cfg->socket_group = NULL;
	cfg->policy = POLICY_REFUSE;
	cfg->force = 1;
	cfg->start_wait = 10;
	cfg->idle_timeout = 120;
	cfg->idle_output_resets = 0;
	cfg->escape = 0x11;	/* ^Q */
	cfg->max_buffer = 1024 * 1024;
	cfg->max_viewers = 8;
	cfg->history = 256 * 1024;
	cfg->history_head = 64 * 1024;
	cfg->history_runs = 2;
	cfg->capture = CAPTURE_ATTACHED;
	cfg->attach_replay = 0;

	TAILQ_INIT(&cfg->listens);
	TAILQ_INIT(&cfg->hvs);
	(void)config_hv_new(cfg, "default", cfg->uri, 0);
	cfg->tls_cert = NULL;
	cfg->tls_key = NULL;
	cfg->token_secret_file = xstrdup(SYSCONFDIR "/virtconsoled/secret");
	cfg->token_ttl = 60;
	cfg->session_ttl = 28800;
	TAILQ_INIT(&cfg->allowed_origins);
	TAILQ_INIT(&cfg->server_names);
	cfg->cookie_name = xstrdup("vcd_session");
	cfg->state_dir = xstrdup("/var/lib/virtconsoled");
	cfg->ping_interval = 30;
	cfg->max_clients = 1024;
	cfg->max_clients_per_address = 32;
	cfg->ipv6_prefix = 64;
	cfg->handshake_timeout = 10;
	TAILQ_INIT(&cfg->metrics_listens);
	cfg->metrics_guest_labels = 0;
	cfg->console_log_dir = NULL;
	cfg->console_log_timestamps = 0;
	cfg->console_log_max = 10 * 1024 * 1024;
	cfg->console_log_keep = 5;
	cfg->record_dir = NULL;
	cfg->record_input = 0;
	cfg->record_required = 0;
	cfg->web_root = xstrdup(DATADIR "/virtconsoled/web");

	cfg->control_socket = xstrdup("/run/virtconsoled/control");
	cfg->attach_socket = xstrdup("/run/virtconsoled/attach");
	cfg->user = NULL;
	cfg->group = NULL;
	return cfg;
}

struct config *
config_parse(const char *name, const char *buf, size_t len, char *err,
    size_t errlen)
{
	struct config_parser	 p;
	struct config		*cfg;
	char			 line[CONFIG_MAX_LINE + 1];
	const char		*start, *nl;
	size_t			 left, n, i;
	unsigned char		 c;

	memset(&p, 0, sizeof p);
	p.name = name != NULL ? name : "config";
	p.err = err;
	p.errlen = errlen;
	if (err != NULL && errlen > 0)
		err[0] = '\0';

	cfg = config_new();
	start = buf;
	left = buf != NULL ? len : 0;
	while (left > 0) {
		p.line++;
		nl = memchr(start, '\n', left);
		n = nl != NULL ? (size_t)(nl - start) : left;
		if (n > 0 && start[n - 1] == '\r')
			n--;
		if (n > CONFIG_MAX_LINE) {
			config_error(&p, p.line, "line too long (more than %d "
			    "bytes)", CONFIG_MAX_LINE);
			goto fail;
		}
		/* Control bytes have no place in a value and hide in logs. */
		for (i = 0; i < n; i++) {
			c = (unsigned char)start[i];
			if (c == '\0') {
				config_error(&p, p.line, "NUL byte in line");
				goto fail;
			}
			if ((c < 0x20 && c != '\t') || c == 0x7f) {
				config_error(&p, p.line, "control character "
				    "\\x%02x in line", c);
				goto fail;
			}
		}
		memcpy(line, start, n);
		line[n] = '\0';
		if (config_line(&p, cfg, line) == -1)
			goto fail;
		if (nl == NULL)
			break;
		left -= (size_t)(nl - start) + 1;
		start = nl + 1;
	}
	if (config_check(&p, cfg) == -1)
		goto fail;
	return cfg;

fail:
	config_free(cfg);
	return NULL;
}

struct config *
config_load(const char *path, char *err, size_t errlen)
{
	struct config	*cfg = NULL;
	struct stat	 st;
	char		*buf = NULL;
	size_t		 len = 0;
	ssize_t		 n;
	int		 fd;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	/* O_NONBLOCK: a FIFO in place of the file must not hang start-up. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd == -1) {
		config_errorf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) == -1) {
		config_errorf(err, errlen, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		config_errorf(err, errlen, "%s: not a regular file", path);
		goto out;
	}
	if (st.st_size > CONFIG_MAX_FILE)
		goto too_large;

	/* Read one byte past the limit to notice a file that grew. */
	buf = xmalloc(CONFIG_MAX_FILE + 1);
	for (;;) {
		n = read(fd, buf + len, CONFIG_MAX_FILE + 1 - len);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			config_errorf(err, errlen, "%s: %s", path,
			    strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > CONFIG_MAX_FILE)
			goto too_large;
	}
	if ((cfg = config_parse(path, buf, len, err, errlen)) != NULL)
		cfg->path = xstrdup(path);
	goto out;

too_large:
	config_errorf(err, errlen, "%s: file too large (more than 1 MiB)",
	    path);
out:
	free(buf);
	close(fd);
	return cfg;
}

void
config_free(struct config *cfg)
{
	struct config_listen	*l;
	struct config_origin	*o;
	struct config_hv	*h;

	if (cfg == NULL)
		return;
	while ((l = TAILQ_FIRST(&cfg->listens)) != NULL) {
		TAILQ_REMOVE(&cfg->listens, l, entry);
		free(l->address);
		free(l);
	}
	while ((l = TAILQ_FIRST(&cfg->metrics_listens)) != NULL) {
		TAILQ_REMOVE(&cfg->metrics_listens, l, entry);
		free(l->address);
		free(l);
	}
	while ((h = TAILQ_FIRST(&cfg->hvs)) != NULL) {
		TAILQ_REMOVE(&cfg->hvs, h, entry);
		config_hv_free(h);
	}
	while ((o = TAILQ_FIRST(&cfg->allowed_origins)) != NULL) {
		TAILQ_REMOVE(&cfg->allowed_origins, o, entry);
		free(o->origin);
		free(o);
	}
	while ((o = TAILQ_FIRST(&cfg->server_names)) != NULL) {
		TAILQ_REMOVE(&cfg->server_names, o, entry);
		free(o->origin);
		free(o);
	}
	free(cfg->cookie_name);
	free(cfg->state_dir);
	free(cfg->console_log_dir);
	free(cfg->record_dir);
	free(cfg->path);
	free(cfg->uri);
	free(cfg->log_file);
	free(cfg->pid_file);
	free(cfg->socket_dir);
	free(cfg->socket_group);
	free(cfg->tls_cert);
	free(cfg->tls_key);
	free(cfg->token_secret_file);
	free(cfg->web_root);
	free(cfg->control_socket);
	free(cfg->attach_socket);
	free(cfg->user);
	free(cfg->group);
	free(cfg);
}

const char *
config_policy_name(enum config_policy policy)
{
	switch (policy) {
	case POLICY_REFUSE:
		return "refuse";
	case POLICY_TAKEOVER:
		return "takeover";
	}
	return "unknown";
}

const char *
config_capture_name(enum config_capture capture)
{
	switch (capture) {
	case CAPTURE_ATTACHED:
		return "attached";
	case CAPTURE_ALWAYS:
		return "always";
	}
	return "unknown";
}

const char *
config_escape_name(int escape)
{
	if (escape == ESCAPE_NONE)
		return "none";
	if (escape >= 0 && escape < (int)nitems(config_escape_names))
		return config_escape_names[escape];
	if (escape == 0x7f)
		return "^?";
	return "unknown";
}
