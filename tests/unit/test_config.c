/*
 * Unit tests of the configuration parser: defaults, every key's values and
 * edges, every kind of error with its exact "name:line:" prefix, the file
 * loader, and the documented etc/virtconsoled.conf.
 */
#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "virtconsoled.h"
#include "tap.h"

#define NAME "test.conf"

static char err[512];

/* Every key, as documented; the table in config.c must match. */
static const char *const keys[] = {
	"uri", "log_file", "log_level", "pid_file", "socket_dir",
	"socket_group", "policy", "force", "start_wait", "idle_timeout",
	"idle_output_resets", "escape", "max_buffer", "listen", "tls_cert",
	"tls_key", "token_secret_file", "token_ttl", "session_ttl",
	"allowed_origins", "ping_interval", "max_clients",
	"max_clients_per_address", "ipv6_prefix", "handshake_timeout",
	"web_root",
	"server_name", "cookie_name", "state_dir",
	"control_socket", "user", "group",
	"metrics_listen", "metrics_guest_labels", "hypervisor",
	"console_log_dir", "console_log_timestamps", "console_log_max",
	"console_log_keep", "record_dir", "record_input", "record_required",
};
#define NKEYS (sizeof keys / sizeof keys[0])

static struct config *
parse(const char *text)
{
	return config_parse(NAME, text, strlen(text), err, sizeof err);
}

/* Parse text that must fail with exactly want as the message. */
static void
fails(const char *text, const char *want, const char *what)
{
	struct config	*cfg;

	err[0] = '\0';
	cfg = parse(text);
	ok(cfg == NULL, "%s: rejected", what);
	is_str(err, want, "%s: message", what);
	config_free(cfg);
}

/* Parse "key = value" that must fail as a bad value on line 1. */
static void
bad_value(const char *key, const char *value)
{
	struct config	*cfg;
	char		 text[256], want[64];

	snprintf(text, sizeof text, "%s = %s\n", key, value);
	snprintf(want, sizeof want, NAME ":1: bad value for '%s': ", key);
	cfg = parse(text);
	ok(cfg == NULL && strncmp(err, want, strlen(want)) == 0 &&
	    strstr(err, "(expected ") != NULL,
	    "%s = %s: bad value (%s)", key, value, err);
	config_free(cfg);
}

static struct config *
good(const char *text, const char *what)
{
	struct config	*cfg;

	err[0] = '\0';
	cfg = parse(text);
	if (!ok(cfg != NULL, "%s: accepted", what))
		printf("#   error: %s\n", err);
	return cfg;
}

static int
str_eq(const char *a, const char *b)
{
	return (a == NULL && b == NULL) ||
	    (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* Compare every setting (not path); print the first difference. */
static int
config_same(const struct config *a, const struct config *b)
{
	const struct config_listen	*la, *lb;
	const struct config_origin	*oa, *ob;

#define S(f) if (!str_eq(a->f, b->f)) { printf("#   differs: " #f "\n"); \
	return 0; }
#define N(f) if (a->f != b->f) { printf("#   differs: " #f "\n"); \
	return 0; }
	S(uri) S(log_file) N(log_level) S(pid_file)
	S(socket_dir) S(socket_group) N(policy) N(force) N(start_wait)
	N(idle_timeout) N(idle_output_resets) N(escape) N(max_buffer)
	S(tls_cert) S(tls_key) S(token_secret_file) N(token_ttl)
	N(session_ttl) N(ping_interval) N(max_clients)
	N(max_clients_per_address) N(ipv6_prefix) N(handshake_timeout)
	S(web_root)
	S(cookie_name) S(state_dir)
	S(control_socket) S(user) S(group)
	N(metrics_guest_labels)
	S(console_log_dir) N(console_log_timestamps) N(console_log_max)
	N(console_log_keep) S(record_dir) N(record_input) N(record_required)
	if (TAILQ_EMPTY(&a->metrics_listens) !=
	    TAILQ_EMPTY(&b->metrics_listens)) {
		printf("#   differs: metrics_listen\n");
		return 0;
	}
#undef S
#undef N
	la = TAILQ_FIRST(&a->listens);
	lb = TAILQ_FIRST(&b->listens);
	while (la != NULL && lb != NULL) {
		if (!str_eq(la->address, lb->address) ||
		    la->family != lb->family || la->port != lb->port ||
		    la->tls != lb->tls || la->auth_none != lb->auth_none) {
			printf("#   differs: listens\n");
			return 0;
		}
		la = TAILQ_NEXT(la, entry);
		lb = TAILQ_NEXT(lb, entry);
	}
	if (la != NULL || lb != NULL) {
		printf("#   differs: number of listens\n");
		return 0;
	}
	oa = TAILQ_FIRST(&a->allowed_origins);
	ob = TAILQ_FIRST(&b->allowed_origins);
	while (oa != NULL && ob != NULL) {
		if (!str_eq(oa->origin, ob->origin)) {
			printf("#   differs: allowed_origins\n");
			return 0;
		}
		oa = TAILQ_NEXT(oa, entry);
		ob = TAILQ_NEXT(ob, entry);
	}
	if (oa != NULL || ob != NULL) {
		printf("#   differs: number of allowed_origins\n");
		return 0;
	}
	oa = TAILQ_FIRST(&a->server_names);
	ob = TAILQ_FIRST(&b->server_names);
	while (oa != NULL && ob != NULL && str_eq(oa->origin, ob->origin)) {
		oa = TAILQ_NEXT(oa, entry);
		ob = TAILQ_NEXT(ob, entry);
	}
	if (oa != NULL || ob != NULL) {
		printf("#   differs: server_names\n");
		return 0;
	}
	return 1;
}

static int
is_default(const struct config *cfg)
{
	struct config	*def = config_new();
	int		 same = config_same(cfg, def);

	config_free(def);
	return same;
}

static int
count_listens(const struct config *cfg)
{
	const struct config_listen	*l;
	int				 n = 0;

	TAILQ_FOREACH(l, &cfg->listens, entry)
		n++;
	return n;
}

static int
count_origins(const struct config *cfg)
{
	const struct config_origin	*o;
	int				 n = 0;

	TAILQ_FOREACH(o, &cfg->allowed_origins, entry)
		n++;
	return n;
}

static const struct config_origin *
nth_origin(const struct config *cfg, int n)
{
	const struct config_origin	*o;

	TAILQ_FOREACH(o, &cfg->allowed_origins, entry) {
		if (n-- == 0)
			return o;
	}
	return NULL;
}

static void
test_defaults(void)
{
	struct config	*cfg = config_new();

	is_str(cfg->path, NULL, "default path");
	is_str(cfg->uri, "qemu:///system", "default uri");
	is_str(cfg->log_file, NULL, "default log_file");
	is_int(cfg->log_level, LOG_LEVEL_INFO, "default log_level");
	is_str(cfg->pid_file, "/run/virtconsoled/virtconsoled.pid",
	    "default pid_file");
	is_str(cfg->socket_dir, "/run/virtconsoled/guests",
	    "default socket_dir");
	is_str(cfg->socket_group, NULL, "default socket_group");
	is_int(cfg->policy, POLICY_REFUSE, "default policy");
	is_int(cfg->force, 1, "default force");
	is_int(cfg->start_wait, 10, "default start_wait");
	is_int(cfg->idle_timeout, 120, "default idle_timeout");
	is_int(cfg->idle_output_resets, 0, "default idle_output_resets");
	is_int(cfg->escape, 0x11, "default escape is ^Q");
	is_int(cfg->max_buffer, 1024 * 1024, "default max_buffer");
	ok(TAILQ_EMPTY(&cfg->listens), "default: no listeners");
	is_str(cfg->tls_cert, NULL, "default tls_cert");
	is_str(cfg->tls_key, NULL, "default tls_key");
	ok(cfg->token_secret_file != NULL && cfg->token_secret_file[0] == '/'
	    && strlen(cfg->token_secret_file) > strlen("/virtconsoled/secret")
	    && strcmp(cfg->token_secret_file + strlen(cfg->token_secret_file) -
	    strlen("/virtconsoled/secret"), "/virtconsoled/secret") == 0,
	    "default token_secret_file is SYSCONFDIR/virtconsoled/secret (%s)",
	    cfg->token_secret_file);
	is_int(cfg->token_ttl, 60, "default token_ttl");
	is_int(cfg->session_ttl, 28800, "default session_ttl");
	ok(TAILQ_EMPTY(&cfg->allowed_origins), "default: no allowed_origins");
	is_int(cfg->ping_interval, 30, "default ping_interval");
	is_int(cfg->max_clients, 1024, "default max_clients");
	is_int(cfg->max_clients_per_address, 32,
	    "default max_clients_per_address");
	is_int(cfg->ipv6_prefix, 64, "default ipv6_prefix");
	is_int(cfg->handshake_timeout, 10, "default handshake_timeout");
	ok(cfg->web_root != NULL && cfg->web_root[0] == '/' &&
	    strstr(cfg->web_root, "/virtconsoled/web") != NULL &&
	    strcmp(cfg->web_root + strlen(cfg->web_root) -
	    strlen("/virtconsoled/web"), "/virtconsoled/web") == 0,
	    "default web_root is DATADIR/virtconsoled/web (%s)", cfg->web_root);
	ok(TAILQ_EMPTY(&cfg->server_names), "default: no server_name");
	is_str(cfg->cookie_name, "vcd_session", "default cookie_name");
	is_str(cfg->state_dir, "/var/lib/virtconsoled", "default state_dir");
	is_str(cfg->control_socket, "/run/virtconsoled/control",
	    "default control_socket");
	is_str(cfg->user, NULL, "default user");
	is_str(cfg->group, NULL, "default group");
	config_free(cfg);
	config_free(NULL);	/* must not crash: no ok line, a crash fails */
}

static void
test_empty_and_comments(void)
{
	struct config	*cfg;

	cfg = config_parse(NAME, "", 0, err, sizeof err);
	ok(cfg != NULL && is_default(cfg), "empty buffer: defaults");
	config_free(cfg);
	cfg = config_parse(NAME, NULL, 0, err, sizeof err);
	ok(cfg != NULL && is_default(cfg), "NULL buffer, length 0: defaults");
	config_free(cfg);
	cfg = good("\n\n   \n\t\n# comment\n   # indented comment\n"
	    "\t#tab comment\n#uri = nothing\n#=\n#\n", "only comments");
	ok(cfg != NULL && is_default(cfg), "only comments: defaults");
	config_free(cfg);
	cfg = good("   uri   =   qemu:///session   \n", "blanks around");
	is_str(cfg ? cfg->uri : NULL, "qemu:///session", "blanks trimmed");
	config_free(cfg);
	cfg = good("uri=qemu:///session", "no blanks, no newline");
	is_str(cfg ? cfg->uri : NULL, "qemu:///session", "no blanks");
	config_free(cfg);
	cfg = good("\turi\t=\tqemu:///session\t\n", "tabs");
	is_str(cfg ? cfg->uri : NULL, "qemu:///session", "tabs trimmed");
	config_free(cfg);
}

static void
test_trailing_comments_and_quotes(void)
{
	struct config	*cfg;

	cfg = good("uri = test:///default # the test driver\n",
	    "trailing comment");
	is_str(cfg ? cfg->uri : NULL, "test:///default", "comment stripped");
	config_free(cfg);
	cfg = good("uri = test:///default\t#tab comment\n", "tab comment");
	is_str(cfg ? cfg->uri : NULL, "test:///default",
	    "comment after tab stripped");
	config_free(cfg);
	cfg = good("uri = qemu:///system#frag\n", "# without blank");
	is_str(cfg ? cfg->uri : NULL, "qemu:///system#frag",
	    "# not preceded by a blank is part of the value");
	config_free(cfg);
	cfg = good("uri=#x\n", "# right after =");
	is_str(cfg ? cfg->uri : NULL, "#x", "# right after = is a value");
	config_free(cfg);
	fails("uri = # nothing\n", NAME ":1: missing value for 'uri'",
	    "comment as the whole value");

	cfg = good("uri = \"  spaced value  \"\n", "quoted");
	is_str(cfg ? cfg->uri : NULL, "  spaced value  ",
	    "quotes stripped, inner blanks kept");
	config_free(cfg);
	cfg = good("uri = \"a # b\" # comment\n", "quoted # and comment");
	is_str(cfg ? cfg->uri : NULL, "a # b", "# inside quotes kept");
	config_free(cfg);
	cfg = good("uri = \"a\"# comment\n", "comment right after quote");
	is_str(cfg ? cfg->uri : NULL, "a", "comment after quote");
	config_free(cfg);
	cfg = good("uri = a\"b\"\n", "inner quotes");
	is_str(cfg ? cfg->uri : NULL, "a\"b\"",
	    "quotes not around the whole value are kept");
	config_free(cfg);
	cfg = good("log_level = \"debug\"\n", "quoted keyword");
	is_int(cfg ? (int)cfg->log_level : -1, LOG_LEVEL_DEBUG,
	    "quoted keyword");
	config_free(cfg);
	cfg = good("idle_timeout = \"5\"\n", "quoted number");
	is_int(cfg ? cfg->idle_timeout : 0, 5, "quoted number");
	config_free(cfg);
	fails("uri = \"unterminated\n",
	    NAME ":1: missing closing quote for 'uri'", "missing quote");
	fails("uri = \"a\" b\n",
	    NAME ":1: unexpected text after closing quote for 'uri'",
	    "text after quote");
	fails("uri = \"\"\n", NAME ":1: bad value for 'uri': '' "
	    "(expected a non-empty string)", "empty quoted uri");
	fails("listen = \"\"\n", NAME ":1: bad value for 'listen': '' "
	    "(expected ADDRESS:PORT)", "empty quoted listen");
	fails("allowed_origins = \" \"\n", NAME ":1: bad value for "
	    "'allowed_origins': ' ' (expected at least one origin)",
	    "blank quoted allowed_origins");
}

static void
test_line_errors(void)
{
	struct config	*cfg;
	char		*big;
	size_t		 n;

	fails("uri = x\n\n# c\nfoo = bar\n", NAME ":4: unknown key 'foo'",
	    "unknown key on line 4");
	fails("URI = x\n", NAME ":1: unknown key 'URI'",
	    "keys are case-sensitive");
	fails("uri x\n", NAME ":1: expected 'key = value', got 'uri x'",
	    "missing =");
	fails("\n= x\n", NAME ":2: missing key before '='", "missing key");
	fails("uri =\n", NAME ":1: missing value for 'uri'", "missing value");
	fails("uri =   \t\n", NAME ":1: missing value for 'uri'",
	    "blank value");
	fails("\n\nuri = a\nlog_level = warn\nuri = b\n",
	    NAME ":5: duplicate key 'uri' (first set at line 3)",
	    "duplicate key");
	fails("idle_timeout = 1\nidle_timeout = 1\n",
	    NAME ":2: duplicate key 'idle_timeout' (first set at line 1)",
	    "duplicate key with the same value");
	fails("uri = a\n\n\nidle_timeout = abc\n", NAME ":4: bad value for "
	    "'idle_timeout': 'abc' (expected seconds 0..31536000)",
	    "bad value on line 4");
	fails("uri = x\n\xc3\xa9t\xc3\xa9 = 1\n",
	    NAME ":2: unknown key '\\xc3\\xa9t\\xc3\\xa9'",
	    "non-ASCII key escaped");
	fails("uri = x\nlog_level = \"a\\b\"\n", NAME ":2: bad value for "
	    "'log_level': 'a\\x5cb' (expected error, warn, info or debug)",
	    "backslash escaped");
	fails("log_level = \"\"\n", NAME ":1: bad value for 'log_level': '' "
	    "(expected error, warn, info or debug)", "empty level");

	/* NUL bytes, anywhere, even in a comment. */
	cfg = config_parse(NAME, "uri = a\nuri\0 = b\n", 17, err, sizeof err);
	ok(cfg == NULL, "NUL byte rejected");
	is_str(err, NAME ":2: NUL byte in line", "NUL byte message");
	config_free(cfg);
	cfg = config_parse(NAME, "# a\0b\n", 6, err, sizeof err);
	ok(cfg == NULL, "NUL byte in a comment rejected");
	is_str(err, NAME ":1: NUL byte in line", "NUL in comment message");
	config_free(cfg);
	cfg = config_parse(NAME, "\0", 1, err, sizeof err);
	ok(cfg == NULL, "a lone NUL byte rejected");
	config_free(cfg);
	/* Bytes after len are never looked at. */
	cfg = config_parse(NAME, "uri = a\0garbage", 7, err, sizeof err);
	is_str(cfg ? cfg->uri : NULL, "a", "parse stops at len");
	config_free(cfg);

	fails("uri = a\x1b[31m\n",
	    NAME ":1: control character \\x1b in line", "escape byte");
	fails("\n\nuri = a\x7f\n",
	    NAME ":3: control character \\x7f in line", "DEL byte");
	fails("uri = a\rb\n", NAME ":1: control character \\x0d in line",
	    "CR inside a line");

	/* CRLF line endings. */
	cfg = good("uri = test:///default\r\n\r\n# c\r\nforce = no\r\n",
	    "CRLF");
	is_str(cfg ? cfg->uri : NULL, "test:///default", "CR stripped");
	is_int(cfg ? cfg->force : -1, 0, "CRLF second key");
	config_free(cfg);
	cfg = good("uri = x\r", "CR at the very end");
	is_str(cfg ? cfg->uri : NULL, "x", "final CR stripped");
	config_free(cfg);
	fails("uri = a\r\nfoo = b\r\n", NAME ":2: unknown key 'foo'",
	    "CRLF line numbers");

	/* Truncated last line, no newline. */
	cfg = good("uri = a\nlog_level = debug", "no final newline");
	is_int(cfg ? (int)cfg->log_level : -1, LOG_LEVEL_DEBUG,
	    "last line without newline is parsed");
	config_free(cfg);
	fails("uri = a\nfoo = b", NAME ":2: unknown key 'foo'",
	    "error on a last line without newline");

	/* Line length: 4096 bytes is the most. */
	big = malloc(10000);
	n = (size_t)snprintf(big, 10000, "uri = a\n#");
	memset(big + n, 'x', 4095);
	strcpy(big + n + 4095, "\n");
	cfg = good(big, "4096-byte comment line");
	config_free(cfg);
	strcpy(big + n + 4095, "\r\n");
	cfg = good(big, "4096-byte line plus CRLF");
	config_free(cfg);
	strcpy(big + n + 4095, "x\n");
	fails(big, NAME ":2: line too long (more than 4096 bytes)",
	    "4097-byte line");
	big[strlen(big) - 1] = '\0';
	fails(big, NAME ":2: line too long (more than 4096 bytes)",
	    "4097-byte last line without newline");
	n = (size_t)snprintf(big, 10000, "uri = ");
	memset(big + n, 'u', 4096 - n);
	big[4096] = '\0';
	cfg = good(big, "4096-byte value line");
	ok(cfg != NULL && strlen(cfg->uri) == 4090, "long value kept whole");
	config_free(cfg);
	free(big);
}

static void
test_error_buffer(void)
{
	struct config	*cfg;
	char		 small[12], longval[300];
	size_t		 i;

	memset(small, 'Z', sizeof small);
	cfg = config_parse(NAME, "foo = 1\n", 8, small, sizeof small);
	ok(cfg == NULL, "small error buffer: rejected");
	is_str(small, NAME ":1", "small error buffer: truncated, terminated");
	cfg = config_parse(NAME, "foo = 1\n", 8, NULL, 0);
	ok(cfg == NULL, "NULL error buffer: rejected without a crash");
	cfg = config_parse(NAME, "foo = 1\n", 8, small, 0);
	ok(cfg == NULL, "zero-length error buffer: rejected");
	cfg = config_parse("other/name.conf", "foo = 1\n", 8, err,
	    sizeof err);
	is_str(err, "other/name.conf:1: unknown key 'foo'",
	    "name used as the prefix");
	cfg = parse("uri = ok\n");
	is_str(err, "", "error buffer cleared on success");
	config_free(cfg);

	/* Long untrusted values are cut, with "...". */
	strcpy(longval, "log_level = ");
	for (i = strlen(longval); i < 250; i++)
		longval[i] = 'v';
	longval[i] = '\0';
	cfg = parse(longval);
	ok(cfg == NULL, "long bad value rejected");
	ok(strstr(err, "...' (expected") != NULL &&
	    strlen(err) < strlen(NAME ":1: bad value for 'log_level': '") +
	    70 + strlen("' (expected error, warn, info or debug)"),
	    "long bad value truncated: %s", err);
	strcpy(longval, "k");
	for (i = 1; i < 200; i++)
		longval[i] = 'k';
	strcpy(longval + i, " = 1\n");
	cfg = parse(longval);
	ok(cfg == NULL && strstr(err, "kkk...'") != NULL &&
	    strlen(err) < 100, "long unknown key truncated: %s", err);
}

static void
test_strings_and_paths(void)
{
	static const char *const paths[] = {
		"pid_file", "socket_dir", "token_secret_file", "web_root",
		"control_socket",
	};
	static const char *const nullable_paths[] = {
		"log_file", "tls_cert", "tls_key",
	};
	static const char *const ids[] = { "socket_group", "user", "group" };
	struct config	*cfg;
	char		 text[256];
	size_t		 i;

	cfg = good("uri = qemu+ssh://root@host/system?keyfile=/k\n",
	    "uri with = and ?");
	is_str(cfg ? cfg->uri : NULL, "qemu+ssh://root@host/system?keyfile=/k",
	    "uri kept as written");
	config_free(cfg);

	for (i = 0; i < sizeof paths / sizeof paths[0]; i++) {
		snprintf(text, sizeof text, "%s = /srv/x/%s\n", paths[i],
		    paths[i]);
		cfg = good(text, paths[i]);
		config_free(cfg);
		bad_value(paths[i], "relative/path");
		bad_value(paths[i], "none");
		bad_value(paths[i], "~/x");
	}
	cfg = good("pid_file = /p\nsocket_dir = /s/guests\n"
	    "token_secret_file = /t\nweb_root = /w\ncontrol_socket = /c\n",
	    "all paths");
	if (cfg != NULL) {
		is_str(cfg->pid_file, "/p", "pid_file set");
		is_str(cfg->socket_dir, "/s/guests", "socket_dir set");
		is_str(cfg->token_secret_file, "/t", "token_secret_file set");
		is_str(cfg->web_root, "/w", "web_root set");
		is_str(cfg->control_socket, "/c", "control_socket set");
	}
	config_free(cfg);

	for (i = 0; i < sizeof nullable_paths / sizeof nullable_paths[0];
	    i++) {
		bad_value(nullable_paths[i], "var/log/x");
		bad_value(nullable_paths[i], "-");
	}
	cfg = good("log_file = /var/log/virtconsoled.log\n", "log_file");
	is_str(cfg ? cfg->log_file : NULL, "/var/log/virtconsoled.log",
	    "log_file set");
	config_free(cfg);
	cfg = good("log_file = none\n", "log_file none");
	ok(cfg != NULL && cfg->log_file == NULL, "log_file none is NULL");
	config_free(cfg);
	cfg = good("log_file = NONE\n", "log_file NONE");
	ok(cfg != NULL && cfg->log_file == NULL, "none ignores case");
	config_free(cfg);
	cfg = good("log_file = \"/var/log/with space.log\"\n",
	    "quoted path with a space");
	is_str(cfg ? cfg->log_file : NULL, "/var/log/with space.log",
	    "path with a space");
	config_free(cfg);
	cfg = good("tls_cert = none\ntls_key = none\n", "tls none");
	ok(cfg != NULL && cfg->tls_cert == NULL && cfg->tls_key == NULL,
	    "tls_cert and tls_key none");
	config_free(cfg);

	for (i = 0; i < sizeof ids / sizeof ids[0]; i++) {
		snprintf(text, sizeof text, "%s = libvirt-qemu\n", ids[i]);
		cfg = good(text, ids[i]);
		config_free(cfg);
		snprintf(text, sizeof text, "%s = 4294967294\n", ids[i]);
		cfg = good(text, "largest numeric id");
		config_free(cfg);
		snprintf(text, sizeof text, "%s = none\n", ids[i]);
		cfg = good(text, "id none");
		config_free(cfg);
		bad_value(ids[i], "4294967295");
		bad_value(ids[i], "-staff");
		bad_value(ids[i], "two words");
		bad_value(ids[i], "a:b");
		bad_value(ids[i], "a/b");
		bad_value(ids[i], "$");
		bad_value(ids[i], "\"\"");
		bad_value(ids[i], "\xc3\xa9");
	}
	cfg = good("socket_group = kvm\nuser = 1000\ngroup = host$\n",
	    "ids");
	if (cfg != NULL) {
		is_str(cfg->socket_group, "kvm", "socket_group name");
		is_str(cfg->user, "1000", "numeric user kept as a string");
		is_str(cfg->group, "host$", "name ending in $");
	}
	config_free(cfg);
	cfg = good("user = _virtconsoled.x-1\ngroup = 0\n", "more ids");
	if (cfg != NULL) {
		is_str(cfg->user, "_virtconsoled.x-1", "user with . _ -");
		is_str(cfg->group, "0", "group 0");
	}
	config_free(cfg);
}

static void
test_keywords(void)
{
	static const struct {
		const char	*text;
		int		 value;
	} bools[] = {
		{ "yes", 1 }, { "no", 0 }, { "true", 1 }, { "false", 0 },
		{ "on", 1 }, { "off", 0 }, { "1", 1 }, { "0", 0 },
		{ "YES", 1 }, { "Off", 0 },
	};
	static const struct {
		const char	*text;
		enum log_level	 value;
	} levels[] = {
		{ "error", LOG_LEVEL_ERROR }, { "warn", LOG_LEVEL_WARN },
		{ "info", LOG_LEVEL_INFO }, { "debug", LOG_LEVEL_DEBUG },
		{ "DEBUG", LOG_LEVEL_DEBUG },
	};
	struct config	*cfg;
	char		 text[128];
	size_t		 i;

	for (i = 0; i < sizeof bools / sizeof bools[0]; i++) {
		snprintf(text, sizeof text, "force = %s\n"
		    "idle_output_resets = %s\n", bools[i].text, bools[i].text);
		cfg = good(text, bools[i].text);
		is_int(cfg ? cfg->force : -1, bools[i].value,
		    "force = %s", bools[i].text);
		is_int(cfg ? cfg->idle_output_resets : -1, bools[i].value,
		    "idle_output_resets = %s", bools[i].text);
		config_free(cfg);
	}
	bad_value("force", "2");
	bad_value("force", "maybe");
	bad_value("force", "y");
	bad_value("idle_output_resets", "yess");
	fails("force = 01\n", NAME ":1: bad value for 'force': '01' "
	    "(expected yes or no)", "bool message");

	for (i = 0; i < sizeof levels / sizeof levels[0]; i++) {
		snprintf(text, sizeof text, "log_level = %s\n",
		    levels[i].text);
		cfg = good(text, levels[i].text);
		is_int(cfg ? (int)cfg->log_level : -1, levels[i].value,
		    "log_level = %s", levels[i].text);
		config_free(cfg);
	}
	bad_value("log_level", "verbose");
	bad_value("log_level", "warning");
	bad_value("log_level", "debugdebugdebugdebugdebug");

	cfg = good("policy = takeover\n", "policy takeover");
	is_int(cfg ? (int)cfg->policy : -1, POLICY_TAKEOVER, "policy takeover");
	config_free(cfg);
	cfg = good("policy = refuse\n", "policy refuse");
	is_int(cfg ? (int)cfg->policy : -1, POLICY_REFUSE, "policy refuse");
	config_free(cfg);
	fails("policy = share\n", NAME ":1: bad value for 'policy': 'share' "
	    "(expected refuse or takeover)", "bad policy");
	is_str(config_policy_name(POLICY_REFUSE), "refuse", "policy name 0");
	is_str(config_policy_name(POLICY_TAKEOVER), "takeover",
	    "policy name 1");
	is_str(config_policy_name((enum config_policy)7), "unknown",
	    "policy name out of range");
}

static void
test_numbers(void)
{
	static const struct {
		const char		*key;
		unsigned long long	 min, max;
		size_t			 offset;
	} nums[] = {
		{ "start_wait", 0, 86400,
		    offsetof(struct config, start_wait) },
		{ "idle_timeout", 0, 31536000,
		    offsetof(struct config, idle_timeout) },
		{ "token_ttl", 1, 86400, offsetof(struct config, token_ttl) },
		{ "session_ttl", 60, 2592000,
		    offsetof(struct config, session_ttl) },
		{ "ping_interval", 0, 3600,
		    offsetof(struct config, ping_interval) },
		{ "max_clients", 1, 1000000,
		    offsetof(struct config, max_clients) },
		{ "max_clients_per_address", 1, 1000000,
		    offsetof(struct config, max_clients_per_address) },
		{ "ipv6_prefix", 32, 128,
		    offsetof(struct config, ipv6_prefix) },
		{ "handshake_timeout", 1, 3600,
		    offsetof(struct config, handshake_timeout) },
	};
	struct config	*cfg;
	char		 text[128], v[32], want[160];
	size_t		 i;
	unsigned int	 got;

	for (i = 0; i < sizeof nums / sizeof nums[0]; i++) {
		snprintf(text, sizeof text, "%s = %llu\n", nums[i].key,
		    nums[i].min);
		cfg = good(text, "minimum");
		got = cfg ? *(unsigned int *)((char *)cfg + nums[i].offset) :
		    12345;
		is_int(got, nums[i].min, "%s minimum %llu", nums[i].key,
		    nums[i].min);
		config_free(cfg);

		snprintf(text, sizeof text, "%s = %llu\n", nums[i].key,
		    nums[i].max);
		cfg = good(text, "maximum");
		got = cfg ? *(unsigned int *)((char *)cfg + nums[i].offset) :
		    12345;
		is_int(got, nums[i].max, "%s maximum %llu", nums[i].key,
		    nums[i].max);
		config_free(cfg);

		snprintf(v, sizeof v, "%llu", nums[i].max + 1);
		bad_value(nums[i].key, v);
		if (nums[i].min > 0) {
			snprintf(v, sizeof v, "%llu", nums[i].min - 1);
			bad_value(nums[i].key, v);
		}
		bad_value(nums[i].key, "abc");
		bad_value(nums[i].key, "-1");
		bad_value(nums[i].key, "+5");
		bad_value(nums[i].key, "1.5");
		bad_value(nums[i].key, "10s");
		bad_value(nums[i].key, "0x10");
		bad_value(nums[i].key, "99999999999999999999999999");

		snprintf(text, sizeof text, "%s = x\n", nums[i].key);
		snprintf(want, sizeof want, NAME ":1: bad value for '%s': "
		    "'x' (expected %s %llu..%llu)", nums[i].key,
		    strncmp(nums[i].key, "max_clients", 11) == 0 ||
		    strcmp(nums[i].key, "ipv6_prefix") == 0 ?
		    "a number" : "seconds", nums[i].min, nums[i].max);
		fails(text, want, "range in the message");
	}
	cfg = good("idle_timeout = 0\nping_interval = 0\n", "0 = off");
	ok(cfg && cfg->idle_timeout == 0 && cfg->ping_interval == 0,
	    "idle_timeout and ping_interval 0");
	config_free(cfg);
	cfg = good("start_wait = 007\n", "leading zeros");
	is_int(cfg ? cfg->start_wait : 0, 7, "leading zeros are decimal");
	config_free(cfg);
}

static void
test_sizes(void)
{
	static const struct {
		const char	*text;
		size_t		 value;
	} sizes[] = {
		{ "4096", 4096 }, { "4K", 4096 }, { "4k", 4096 },
		{ "64K", 65536 }, { "1M", 1 << 20 }, { "1m", 1 << 20 },
		{ "1024M", 1 << 30 }, { "1G", 1 << 30 }, { "1g", 1 << 30 },
		{ "1048576", 1 << 20 }, { "1073741824", 1 << 30 },
		{ "1048576K", 1 << 30 }, { "0001M", 1 << 20 },
	};
	static const char *const bad[] = {
		"4095", "3K", "0", "0K", "1025M", "1073741825", "2G",
		"1048577K", "K", "M", "1T", "1KB", "1 K", "-1M", "+1M", "1.5M",
		"99999999999999999999G", "18014398509481984K", "0x1000",
		"1M1",
	};
	struct config	*cfg;
	char		 text[128];
	size_t		 i;

	for (i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		snprintf(text, sizeof text, "max_buffer = %s\n",
		    sizes[i].text);
		cfg = good(text, sizes[i].text);
		is_int(cfg ? cfg->max_buffer : 0, sizes[i].value,
		    "max_buffer = %s", sizes[i].text);
		config_free(cfg);
	}
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
		bad_value("max_buffer", bad[i]);
	fails("max_buffer = 2K\n", NAME ":1: bad value for 'max_buffer': "
	    "'2K' (expected a size 4K..1G, with an optional K, M or G "
	    "suffix)", "size message");
}

static void
test_escape(void)
{
	static const struct {
		const char	*text;
		int		 value;
	} good_escapes[] = {
		{ "^Q", 0x11 }, { "^q", 0x11 }, { "^]", 0x1d }, { "^@", 0 },
		{ "^A", 1 }, { "^a", 1 }, { "^Z", 0x1a }, { "^z", 0x1a },
		{ "^[", 0x1b }, { "^\\", 0x1c }, { "^^", 0x1e },
		{ "^_", 0x1f }, { "none", ESCAPE_NONE },
		{ "None", ESCAPE_NONE }, { "\"^]\"", 0x1d },
	};
	static const char *const bad[] = {
		"^", "Q", "^1", "^?", "^QQ", "^`", "^{", "^ ", "ctrl-q",
		"0x11", "17", "\"\"", "^\xc3\xa9", "nothing",
	};
	struct config	*cfg;
	char		 text[128];
	size_t		 i;
	int		 c;

	for (i = 0; i < sizeof good_escapes / sizeof good_escapes[0]; i++) {
		snprintf(text, sizeof text, "escape = %s\n",
		    good_escapes[i].text);
		cfg = good(text, good_escapes[i].text);
		is_int(cfg ? cfg->escape : -2, good_escapes[i].value,
		    "escape = %s", good_escapes[i].text);
		config_free(cfg);
	}
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
		bad_value("escape", bad[i]);

	is_str(config_escape_name(0x11), "^Q", "escape name ^Q");
	is_str(config_escape_name(0x1d), "^]", "escape name ^]");
	is_str(config_escape_name(ESCAPE_NONE), "none", "escape name none");
	is_str(config_escape_name(0), "^@", "escape name ^@");
	is_str(config_escape_name(0x1c), "^\\", "escape name ^\\");
	is_str(config_escape_name(0x7f), "^?", "escape name DEL");
	is_str(config_escape_name(0x41), "unknown", "escape name 'A'");
	is_str(config_escape_name(-7), "unknown", "escape name -7");
	/* Every name parses back to its byte. */
	for (c = 0; c < 0x20; c++) {
		snprintf(text, sizeof text, "escape = \"%s\"\n",
		    config_escape_name(c));
		cfg = parse(text);
		if (cfg == NULL || cfg->escape != c)
			break;
		config_free(cfg);
	}
	ok(c == 0x20, "every escape name parses back (stopped at %d)", c);
	if (c != 0x20)
		config_free(cfg);
}

/* metrics_listen: a listener of its own list, no options, once. */
static void
test_metrics(void)
{
	struct config		*cfg;
	struct config_listen	*l;

	cfg = good("metrics_listen = 127.0.0.1:9101\n", "metrics_listen");
	l = cfg ? TAILQ_FIRST(&cfg->metrics_listens) : NULL;
	ok(l != NULL && l->metrics && l->port == 9101 &&
	    strcmp(l->address, "127.0.0.1") == 0 && !l->tls,
	    "metrics_listen: its own list, marked metrics, port 9101");
	ok(cfg != NULL && count_listens(cfg) == 0,
	    "metrics_listen: not a web listener");
	is_int(cfg != NULL ? cfg->metrics_guest_labels : -1, 0,
	    "metrics_guest_labels: no by default");
	config_free(cfg);
	cfg = good("metrics_listen = [::1]:0\nmetrics_guest_labels = yes\n",
	    "metrics_listen on IPv6, port 0; guest labels");
	l = cfg ? TAILQ_FIRST(&cfg->metrics_listens) : NULL;
	ok(l != NULL && l->family == AF_INET6 && l->port == 0,
	    "metrics_listen [::1]:0");
	is_int(cfg != NULL ? cfg->metrics_guest_labels : -1, 1,
	    "metrics_guest_labels = yes");
	config_free(cfg);
	fails("metrics_listen = 127.0.0.1:9101 tls\n",
	    NAME ":1: unknown option for 'metrics_listen': 'tls' (it takes "
	    "none: plain HTTP, no token)", "metrics_listen takes no tls");
	fails("metrics_listen = 127.0.0.1:9101 auth=none\n",
	    NAME ":1: unknown option for 'metrics_listen': 'auth=none' (it "
	    "takes none: plain HTTP, no token)",
	    "metrics_listen takes no auth=none");
	fails("metrics_listen = 127.0.0.1:1\nmetrics_listen = 127.0.0.1:2\n",
	    NAME ":2: duplicate key 'metrics_listen' (first set at line 1)",
	    "metrics_listen is not repeatable");
	fails("listen = 127.0.0.1:8080\nmetrics_listen = 127.0.0.1:8080\n",
	    NAME ":2: metrics_listen is the address of the 'listen' at "
	    "line 1", "metrics_listen on a web listener's address");
	cfg = good("listen = 127.0.0.1:0\nmetrics_listen = 127.0.0.1:0\n",
	    "port 0 on both: each picks its own");
	config_free(cfg);
	bad_value("metrics_listen", "localhost:9101");
	bad_value("metrics_guest_labels", "maybe");
}

/* Console logs and recordings (the logs-recordings issue). */
static void
test_logs(void)
{
	struct config	*cfg;

	cfg = good("", "no console log keys");
	ok(cfg != NULL && cfg->console_log_dir == NULL &&
	    cfg->console_log_timestamps == 0 &&
	    cfg->console_log_max == 10 * 1024 * 1024 &&
	    cfg->console_log_keep == 5 && cfg->record_dir == NULL &&
	    cfg->record_input == 0 && cfg->record_required == 0,
	    "defaults: no console logs (10M, keep 5, timestamps none), no "
	    "recordings, input not recorded, not required");
	config_free(cfg);
	cfg = good("console_log_dir = /var/log/virtconsoled/consoles\n"
	    "console_log_timestamps = line\nconsole_log_max = 0\n"
	    "console_log_keep = 0\nrecord_dir = /var/log/virtconsoled/rec\n"
	    "record_input = yes\nrecord_required = yes\n", "every key set");
	ok(cfg != NULL && cfg->console_log_dir != NULL &&
	    strcmp(cfg->console_log_dir, "/var/log/virtconsoled/consoles") ==
	    0 && cfg->console_log_timestamps == 1 &&
	    cfg->console_log_max == 0 && cfg->console_log_keep == 0 &&
	    cfg->record_dir != NULL && cfg->record_input == 1 &&
	    cfg->record_required == 1, "every key read");
	config_free(cfg);
	cfg = good("console_log_max = 1M\nconsole_log_keep = 100\n"
	    "console_log_dir = none\nrecord_dir = none\n", "1M, keep 100");
	ok(cfg != NULL && cfg->console_log_max == 1024 * 1024 &&
	    cfg->console_log_keep == 100 && cfg->console_log_dir == NULL,
	    "console_log_max = 1M, console_log_keep = 100, none");
	config_free(cfg);
	bad_value("console_log_timestamps", "iso");
	bad_value("console_log_max", "-1");
	bad_value("console_log_max", "2T");
	bad_value("console_log_keep", "101");
	bad_value("console_log_dir", "relative/dir");
	bad_value("record_dir", "logs");
	bad_value("record_input", "maybe");
	bad_value("record_required", "perhaps");
	fails("record_required = yes\n",
	    NAME ":1: record_required = yes needs record_dir",
	    "record_required without record_dir");
	fails("console_log_dir = /var/\n",
	    NAME ":1: console_log_dir must be a directory of its own, not "
	    "/var/", "console_log_dir = /var/");
	fails("socket_dir = /run/x\nrecord_dir = /tmp\n",
	    NAME ":2: record_dir must be a directory of its own, not /tmp",
	    "record_dir = /tmp");
}

static int
count_hvs(const struct config *cfg)
{
	const struct config_hv	*h;
	int			 n = 0;

	TAILQ_FOREACH(h, &cfg->hvs, entry)
		n++;
	return n;
}

/* hypervisor = NAME URI, and uri = URI as the hypervisor default. */
static void
test_hypervisors(void)
{
	struct config		*cfg;
	const struct config_hv	*h;
	char			 text[256];

	cfg = config_new();
	h = TAILQ_FIRST(&cfg->hvs);
	ok(count_hvs(cfg) == 1 && strcmp(h->name, "default") == 0 &&
	    strcmp(h->uri, "qemu:///system") == 0 && !cfg->hv_form,
	    "default: one hypervisor, default, at qemu:///system");
	config_free(cfg);
	cfg = good("uri = test:///default\n", "uri form");
	h = cfg != NULL ? TAILQ_FIRST(&cfg->hvs) : NULL;
	ok(h != NULL && count_hvs(cfg) == 1 && strcmp(h->name, "default") ==
	    0 && strcmp(h->uri, "test:///default") == 0 && !cfg->hv_form,
	    "uri = U: the hypervisor default at U");
	config_free(cfg);
	cfg = good("hypervisor = a test:///default\n# b\n"
	    "hypervisor = B_2-x  qemu+tcp://127.0.0.1:16509/system\n",
	    "two hypervisors");
	h = cfg != NULL ? TAILQ_FIRST(&cfg->hvs) : NULL;
	ok(h != NULL && count_hvs(cfg) == 2 && cfg->hv_form &&
	    strcmp(h->name, "a") == 0 && strcmp(h->uri, "test:///default") ==
	    0 && h->line == 1, "the first: a, its URI, line 1");
	h = h != NULL ? TAILQ_NEXT(h, entry) : NULL;
	ok(h != NULL && strcmp(h->name, "B_2-x") == 0 &&
	    strcmp(h->uri, "qemu+tcp://127.0.0.1:16509/system") == 0 &&
	    h->line == 3, "the second: B_2-x, its URI, line 3");
	config_free(cfg);
	cfg = good("hypervisor = default qemu:///system\n",
	    "hypervisor = default U");
	h = cfg != NULL ? TAILQ_FIRST(&cfg->hvs) : NULL;
	ok(h != NULL && count_hvs(cfg) == 1 && cfg->hv_form &&
	    strcmp(h->name, "default") == 0,
	    "hypervisor = default U: one, the hypervisor form");
	config_free(cfg);

	fails("uri = test:///default\nhypervisor = a test:///x\n",
	    NAME ":2: 'uri' and 'hypervisor' together (use 'hypervisor = "
	    "default URI' beside others)", "uri then hypervisor");
	fails("hypervisor = a test:///x\n\nuri = test:///default\n",
	    NAME ":3: 'uri' and 'hypervisor' together (use 'hypervisor = "
	    "default URI' beside others)", "hypervisor then uri");
	fails("hypervisor = a test:///x\nhypervisor = a test:///y\n",
	    NAME ":2: duplicate hypervisor 'a' (first at line 1)",
	    "a name twice");
	fails("hypervisor = a test:///x\nhypervisor = b test:///x\n",
	    NAME ":2: hypervisor 'b' has the URI of 'a' (line 1)",
	    "a URI twice");
	fails("hypervisor = a\n", NAME ":1: bad value for 'hypervisor' "
	    "(expected NAME URI)", "no URI");
	fails("hypervisor = a test:///x extra\n", NAME ":1: bad value for "
	    "'hypervisor' (expected NAME URI)", "a third word");
	fails("hypervisor = a/b test:///x\n", NAME ":1: bad hypervisor name "
	    "'a/b' (expected 1 to 32 of A-Z a-z 0-9 _ -)", "a slash");
	fails("hypervisor = a.b test:///x\n", NAME ":1: bad hypervisor name "
	    "'a.b' (expected 1 to 32 of A-Z a-z 0-9 _ -)", "a dot");
	(void)snprintf(text, sizeof text, "hypervisor = %.33s test:///x\n",
	    "abcdefghijklmnopqrstuvwxyz0123456789");
	cfg = parse(text);
	ok(cfg == NULL && strstr(err, "bad hypervisor name") != NULL,
	    "a name of 33 bytes: %s", err);
	config_free(cfg);
	(void)snprintf(text, sizeof text, "hypervisor = %.32s test:///x\n",
	    "abcdefghijklmnopqrstuvwxyz0123456789");
	cfg = good(text, "a name of 32 bytes");
	config_free(cfg);
	ok(config_hv_name_ok("g1") && !config_hv_name_ok("") &&
	    !config_hv_name_ok("a b") && !config_hv_name_ok("é"),
	    "config_hv_name_ok: g1 yes; empty, a space, UTF-8 no");
}

static void
test_listen(void)
{
	struct config		*cfg;
	struct config_listen	*l;

	cfg = good("listen = 127.0.0.1:8080\n", "IPv4");
	l = cfg ? TAILQ_FIRST(&cfg->listens) : NULL;
	ok(l != NULL, "one listener");
	if (l != NULL) {
		is_str(l->address, "127.0.0.1", "IPv4 address");
		is_int(l->family, AF_INET, "IPv4 family");
		is_int(l->port, 8080, "IPv4 port");
		is_int(l->tls, 0, "no tls");
		is_int(l->auth_none, 0, "auth by default");
		is_int(l->line, 1, "listen line");
	}
	config_free(cfg);

	cfg = good("# web\n\nlisten = [::1]:0 auth=none\n"
	    "allowed_origins = http://a.example\n", "IPv6 port 0");
	l = cfg ? TAILQ_FIRST(&cfg->listens) : NULL;
	if (ok(l != NULL, "IPv6 listener")) {
		is_str(l->address, "::1", "IPv6 address without brackets");
		is_int(l->family, AF_INET6, "IPv6 family");
		is_int(l->port, 0, "port 0");
		is_int(l->auth_none, 1, "auth=none");
		is_int(l->line, 3, "IPv6 listen line");
	}
	config_free(cfg);

	cfg = good("tls_cert = /c.pem\ntls_key = /k.pem\n"
	    "listen = *:443 tls\nlisten = [::]:65535 auth=none tls\n"
	    "listen = 10.0.0.1:1   tls    auth=none  # both\n"
	    "listen = \"[2001:db8::1]:80\"\n"
	    "allowed_origins = http://a.example\n", "four listeners");
	is_int(cfg ? count_listens(cfg) : 0, 4, "four listeners, in order");
	l = cfg ? TAILQ_FIRST(&cfg->listens) : NULL;
	if (l != NULL) {
		is_str(l->address, "0.0.0.0", "* is 0.0.0.0");
		is_int(l->family, AF_INET, "* is IPv4");
		is_int(l->port, 443, "port 443");
		is_int(l->tls, 1, "tls");
		is_int(l->auth_none, 0, "tls only");
		is_int(l->line, 3, "first listen on line 3");
		l = TAILQ_NEXT(l, entry);
	}
	if (l != NULL) {
		is_str(l->address, "::", "[::]");
		is_int(l->family, AF_INET6, "[::] is IPv6");
		is_int(l->port, 65535, "port 65535");
		ok(l->tls && l->auth_none, "options in any order");
		is_int(l->line, 4, "second listen on line 4");
		l = TAILQ_NEXT(l, entry);
	}
	if (l != NULL) {
		is_str(l->address, "10.0.0.1", "third address");
		is_int(l->port, 1, "port 1");
		ok(l->tls && l->auth_none, "extra blanks and a comment");
		l = TAILQ_NEXT(l, entry);
	}
	if (l != NULL) {
		is_str(l->address, "2001:db8::1", "quoted IPv6");
		is_int(l->port, 80, "quoted port");
	}
	config_free(cfg);

	cfg = good("listen = 127.0.0.1:0\nlisten = 127.0.0.1:0\n",
	    "port 0 twice");
	is_int(cfg ? count_listens(cfg) : 0, 2, "port 0 may repeat");
	config_free(cfg);

	fails("listen = 127.0.0.1:80\nlisten = 127.0.0.1:80\n",
	    NAME ":2: duplicate listen '127.0.0.1:80' (first at line 1)",
	    "duplicate listener");
	fails("listen = [::1]:80\n\nlisten = [0:0::1]:80\n",
	    NAME ":3: duplicate listen '[0:0::1]:80' (first at line 1)",
	    "duplicate listener, other spelling");
	cfg = good("listen = 127.0.0.1:80\nlisten = 127.0.0.1:81\n"
	    "listen = [::1]:80\n", "same address, other port or family");
	config_free(cfg);

	fails("uri = x\nlisten = 1.2.3:80\n", NAME ":2: bad value for "
	    "'listen': '1.2.3:80' (expected IPV4:PORT, [IPV6]:PORT or "
	    "*:PORT)", "bad IPv4");
	fails("listen = localhost:80\n", NAME ":1: bad value for 'listen': "
	    "'localhost:80' (expected IPV4:PORT, [IPV6]:PORT or *:PORT)",
	    "host names are not resolved");
	fails("listen = ::1:80\n", NAME ":1: bad value for 'listen': "
	    "'::1:80' (expected IPV4:PORT, [IPV6]:PORT or *:PORT)",
	    "IPv6 without brackets");
	fails("listen = 127.0.0.1\n", NAME ":1: bad value for 'listen': "
	    "'127.0.0.1' (expected IPV4:PORT, [IPV6]:PORT or *:PORT)",
	    "missing port");
	fails("listen = [::1]\n", NAME ":1: bad value for 'listen': "
	    "'[::1]' (expected IPV4:PORT, [IPV6]:PORT or *:PORT)",
	    "IPv6 missing port");
	fails("listen = [::1:80\n", NAME ":1: bad value for 'listen': "
	    "'[::1:80' (expected IPV4:PORT, [IPV6]:PORT or *:PORT)",
	    "missing ]");
	fails("listen = [127.0.0.1]:80\n", NAME ":1: bad value for "
	    "'listen': '[127.0.0.1]:80' (expected IPV4:PORT, [IPV6]:PORT or "
	    "*:PORT)", "IPv4 in brackets");
	fails("listen = [fe80::1%eth0]:80\n", NAME ":1: bad value for "
	    "'listen': '[fe80::1%eth0]:80' (expected IPV4:PORT, [IPV6]:PORT "
	    "or *:PORT)", "scoped IPv6");
	fails("listen = :80\n", NAME ":1: bad value for 'listen': ':80' "
	    "(expected IPV4:PORT, [IPV6]:PORT or *:PORT)", "empty address");
	fails("listen = 127.0.0.1:65536\n", NAME ":1: bad port for "
	    "'listen': '127.0.0.1:65536' (expected 0..65535)", "port 65536");
	fails("listen = 127.0.0.1:\n", NAME ":1: bad port for 'listen': "
	    "'127.0.0.1:' (expected 0..65535)", "empty port");
	fails("listen = 127.0.0.1:http\n", NAME ":1: bad port for 'listen': "
	    "'127.0.0.1:http' (expected 0..65535)", "named port");
	fails("listen = 127.0.0.1:-1\n", NAME ":1: bad port for 'listen': "
	    "'127.0.0.1:-1' (expected 0..65535)", "negative port");
	fails("listen = [::1]:99999\n", NAME ":1: bad port for 'listen': "
	    "'[::1]:99999' (expected 0..65535)", "IPv6 bad port");
	fails("listen = 127.0.0.1:80 ssl\n", NAME ":1: unknown option for "
	    "'listen': 'ssl' (expected tls or auth=none)", "unknown option");
	fails("listen = 127.0.0.1:80 auth=token\n", NAME ":1: unknown "
	    "option for 'listen': 'auth=token' (expected tls or auth=none)",
	    "auth=token");
	fails("listen = 127.0.0.1:80 TLS\n", NAME ":1: unknown option for "
	    "'listen': 'TLS' (expected tls or auth=none)", "options are "
	    "case-sensitive");
	fails("tls_cert = /c\ntls_key = /k\nlisten = 127.0.0.1:80 tls tls\n",
	    NAME ":3: option 'tls' given twice for 'listen'", "tls twice");
	fails("listen = 127.0.0.1:80 auth=none tls auth=none\n",
	    NAME ":1: option 'auth=none' given twice for 'listen'",
	    "auth=none twice");

	/* tls needs both files, reported at the listen line. */
	fails("uri = x\nlisten = 127.0.0.1:80\nlisten = 127.0.0.1:443 tls\n"
	    "idle_timeout = 5\n",
	    NAME ":3: 'listen' with tls needs tls_cert and tls_key",
	    "tls without cert or key");
	fails("listen = 127.0.0.1:443 tls\ntls_cert = /c\n",
	    NAME ":1: 'listen' with tls needs tls_cert and tls_key",
	    "tls without key");
	fails("tls_key = /k\nlisten = 127.0.0.1:443 tls\n",
	    NAME ":2: 'listen' with tls needs tls_cert and tls_key",
	    "tls without cert");
	cfg = good("listen = 127.0.0.1:443 tls\ntls_cert = /c\n"
	    "tls_key = /k\n", "tls files set after the listen line");
	config_free(cfg);
	fails("uri = x\ntls_cert = /c\n",
	    NAME ":2: tls_cert is set but tls_key is not", "cert alone");
	fails("tls_key = /k\n",
	    NAME ":1: tls_key is set but tls_cert is not", "key alone");
}

static void
test_origins(void)
{
	static const char *const bad[] = {
		"ftp://example.com", "example.com", "//example.com",
		"https://", "http://", "https://example.com/",
		"https://example.com/path", "https://example.com?q",
		"https://example.com#f", "https://user@example.com",
		"https://example.com:", "https://example.com:0",
		"https://example.com:65536", "https://example.com:080",
		"https://example.com:123456", "https://example.com:8x",
		"https://[::1", "https://[]", "https://[zz]:80",
		"https://[::1]x", "https://ex\xc3\xa4mple.com", "*", "null",
		"https:/example.com", "https//example.com",
	};
	struct config	*cfg;
	size_t		 i;

	cfg = good("allowed_origins = https://console.example.com\n",
	    "one origin");
	is_int(cfg ? count_origins(cfg) : 0, 1, "one origin");
	is_str(cfg ? nth_origin(cfg, 0)->origin : NULL,
	    "https://console.example.com", "origin kept");
	config_free(cfg);

	cfg = good("allowed_origins = HTTPS://Console.Example.COM:8443 "
	    "http://10.0.0.1:80\tHttp://[2001:DB8::1]:8080\n"
	    "allowed_origins = http://localhost\n", "several origins");
	is_int(cfg ? count_origins(cfg) : 0, 4, "four origins in order");
	if (cfg != NULL && count_origins(cfg) == 4) {
		is_str(nth_origin(cfg, 0)->origin,
		    "https://console.example.com:8443",
		    "scheme and host lowercased, port kept");
		is_str(nth_origin(cfg, 1)->origin, "http://10.0.0.1:80",
		    "IPv4 origin with port");
		is_str(nth_origin(cfg, 2)->origin,
		    "http://[2001:db8::1]:8080", "IPv6 origin");
		is_str(nth_origin(cfg, 3)->origin, "http://localhost",
		    "second line appends");
	}
	config_free(cfg);

	cfg = good("allowed_origins = \"https://a.example  "
	    "https://b.example\" # two\n", "quoted list");
	is_int(cfg ? count_origins(cfg) : 0, 2, "quoted list of two");
	config_free(cfg);
	cfg = good("allowed_origins = https://my_host.example:65535\n",
	    "underscore and port 65535");
	config_free(cfg);

	for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
		bad_value("allowed_origins", bad[i]);
	fails("allowed_origins = https://a.example https://a.example/x\n",
	    NAME ":1: bad value for 'allowed_origins': 'https://a.example/x' "
	    "(expected http://HOST[:PORT] or https://HOST[:PORT], without a "
	    "path)", "second origin bad, named in the message");
	fails("allowed_origins = https://a.example\n\n"
	    "allowed_origins = HTTPS://A.example\n",
	    NAME ":3: duplicate origin 'HTTPS://A.example'",
	    "duplicate origin after lowercasing");
}

/* server_name, cookie_name, and auth=none's need of allowed_origins. */
static void
test_web_names(void)
{
	static const char *const bad_names[] = {
		"http://a.example", "a.example/", "a,example", ".a.example",
		"a..example", "a.example:", "a.example:0", "a.example:65536",
		"a.example:080", "[::1", "[zz]", "[::1]x", "a.example:8x",
		"ex\xc3\xa4mple.com", "*", ".",
	};
	static const char *const bad_cookies[] = {
		"__Host-x", "__secure-x", "a b", "a;b", "a=b", "\xc3\xa4",
		"x123456789012345678901234567890123456789012345678901234567890"
		"1234",
	};
	struct config		*cfg;
	struct config_origin	*o;
	const char		*want[] = { "console.example.com",
	    "a.example:8443", "10.0.0.1", "[2001:db8::1]:443" };
	size_t			 i;

	cfg = good("server_name = Console.Example.COM. A.example:8443\n"
	    "server_name = 10.0.0.1 [2001:DB8::1]:443\n", "server names");
	i = 0;
	if (cfg != NULL) {
		TAILQ_FOREACH(o, &cfg->server_names, entry) {
			if (i < 4)
				is_str(o->origin, want[i], "server_name %zu "
				    "lowercased, trailing dot dropped", i);
			i++;
		}
	}
	is_int((int)i, 4, "four server names, two lines, in order");
	config_free(cfg);
	for (i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++)
		bad_value("server_name", bad_names[i]);
	fails("server_name = a.example\nserver_name = A.EXAMPLE.\n",
	    NAME ":2: duplicate server_name 'A.EXAMPLE.'",
	    "duplicate server_name after normalizing");

	cfg = good("cookie_name = vcd_a-1\n", "cookie_name");
	is_str(cfg ? cfg->cookie_name : NULL, "vcd_a-1", "cookie_name kept");
	config_free(cfg);
	for (i = 0; i < sizeof bad_cookies / sizeof bad_cookies[0]; i++)
		bad_value("cookie_name", bad_cookies[i]);
	cfg = good("state_dir = /srv/vcd/state\n", "state_dir");
	is_str(cfg ? cfg->state_dir : NULL, "/srv/vcd/state", "state_dir kept");
	config_free(cfg);
	bad_value("state_dir", "relative/dir");

	fails("listen = 127.0.0.1:80\n\nlisten = 127.0.0.1:81 auth=none\n",
	    NAME ":3: 'listen' with auth=none needs allowed_origins",
	    "auth=none without allowed_origins: an error at its line");
	cfg = good("listen = 127.0.0.1:81 auth=none\n"
	    "allowed_origins = https://mgmt.example\n",
	    "auth=none with allowed_origins");
	config_free(cfg);
}

static void
test_control_socket(void)
{
	struct config	*cfg;

	fails("uri = x\ncontrol_socket = /run/virtconsoled/guests/ctl\n",
	    NAME ":2: control_socket must not be inside socket_dir",
	    "control_socket inside the default socket_dir");
	fails("socket_dir = /run/virtconsoled\n",
	    NAME ":1: control_socket must not be inside socket_dir",
	    "socket_dir around the default control_socket");
	fails("control_socket = /srv/s/c\nuri = x\nsocket_dir = /srv/s\n",
	    NAME ":1: control_socket must not be inside socket_dir",
	    "reported at the control_socket line");
	fails("socket_dir = /srv/s/\ncontrol_socket = /srv//s/./c\n",
	    NAME ":2: control_socket must not be inside socket_dir",
	    "// and /./ do not hide it");
	fails("socket_dir = /srv/s\ncontrol_socket = /srv/s\n",
	    NAME ":2: control_socket must not be inside socket_dir",
	    "control_socket equal to socket_dir");
	fails("socket_dir = /\n",
	    NAME ":1: control_socket must not be inside socket_dir",
	    "socket_dir /");
	cfg = good("socket_dir = /srv/s\ncontrol_socket = /srv/s2/c\n",
	    "sibling with a common prefix");
	config_free(cfg);
	cfg = good("socket_dir = /srv/s/guests\ncontrol_socket = /srv/s/c\n",
	    "control_socket next to socket_dir");
	config_free(cfg);
}

/* A scratch directory for the loader tests. */
static char tmpdir[PATH_MAX];

static char *
tmp_file(const char *name, const void *data, size_t len)
{
	char	*path;
	FILE	*f;

	xasprintf(&path, "%s/%s", tmpdir, name);
	if ((f = fopen(path, "w")) == NULL) {
		free(path);
		return NULL;
	}
	fwrite(data, 1, len, f);
	fclose(f);
	return path;
}

/*
 * config_load(path) in a child that runs as nobody (uid and gid 65534):
 * 1 when a config came back, 0 when refused (the message in err), -1 when
 * the child could not become nobody or died.
 */
static int
load_as_nobody(const char *path, char *msg, size_t msglen)
{
	struct config	*cfg;
	char		 buf[512];
	ssize_t		 n;
	size_t		 got = 0;
	int		 fds[2], status;
	pid_t		 pid;

	msg[0] = '\0';
	if (pipe(fds) == -1)
		return -1;
	if ((pid = fork()) == -1) {
		close(fds[0]);
		close(fds[1]);
		return -1;
	}
	if (pid == 0) {
		close(fds[0]);
		if (setgroups(0, NULL) == -1 || setgid(65534) == -1 ||
		    setuid(65534) == -1 || getuid() != 65534 ||
		    geteuid() != 65534)
			_exit(2);
		buf[0] = '\0';
		cfg = config_load(path, buf + 1, sizeof buf - 1);
		buf[0] = cfg != NULL ? '1' : '0';
		config_free(cfg);
		if (write(fds[1], buf, strlen(buf)) == -1)
			_exit(3);
		_exit(0);
	}
	close(fds[1]);
	while (got < sizeof buf - 1 &&
	    (n = read(fds[0], buf + got, sizeof buf - 1 - got)) > 0)
		got += (size_t)n;
	close(fds[0]);
	buf[got] = '\0';
	if (waitpid(pid, &status, 0) == -1 || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0 || got == 0) {
		printf("# the child as uid 65534 failed (status %d)\n", status);
		return -1;
	}
	snprintf(msg, msglen, "%s", buf + 1);
	return buf[0] == '1';
}

static void
test_load(void)
{
	struct config	*cfg;
	char		*path, *big, want[PATH_MAX + 64];
	const char	*t;
	size_t		 n, i;

	t = getenv("TMPDIR");
	snprintf(tmpdir, sizeof tmpdir, "%s/test_config.XXXXXX",
	    t != NULL && *t != '\0' ? t : "/tmp");
	if (!ok(mkdtemp(tmpdir) != NULL, "scratch directory"))
		return;

	path = tmp_file("good.conf", "uri = test:///default\n", 22);
	cfg = config_load(path, err, sizeof err);
	ok(cfg != NULL, "load a good file");
	is_str(cfg ? cfg->path : NULL, path, "path recorded");
	is_str(cfg ? cfg->uri : NULL, "test:///default", "loaded value");
	config_free(cfg);
	unlink(path);
	free(path);

	path = tmp_file("bad.conf", "uri = x\n\nfoo = 1\n", 17);
	cfg = config_load(path, err, sizeof err);
	ok(cfg == NULL, "load a bad file");
	snprintf(want, sizeof want, "%s:3: unknown key 'foo'", path);
	is_str(err, want, "parse errors name the path");
	unlink(path);
	free(path);

	path = tmp_file("empty.conf", "", 0);
	cfg = config_load(path, err, sizeof err);
	ok(cfg != NULL && is_default(cfg), "empty file: defaults");
	config_free(cfg);
	unlink(path);
	free(path);

	xasprintf(&path, "%s/missing.conf", tmpdir);
	cfg = config_load(path, err, sizeof err);
	ok(cfg == NULL, "missing file");
	snprintf(want, sizeof want, "%s: %s", path, strerror(ENOENT));
	is_str(err, want, "missing file message");
	free(path);

	cfg = config_load(tmpdir, err, sizeof err);
	ok(cfg == NULL, "a directory");
	snprintf(want, sizeof want, "%s: not a regular file", tmpdir);
	is_str(err, want, "directory message");

	xasprintf(&path, "%s/fifo", tmpdir);
	if (ok(mkfifo(path, 0600) == 0, "make a FIFO")) {
		cfg = config_load(path, err, sizeof err);
		ok(cfg == NULL, "a FIFO, without hanging");
		snprintf(want, sizeof want, "%s: not a regular file", path);
		is_str(err, want, "FIFO message");
		unlink(path);
	}
	free(path);

	/* 1 MiB is the most: full lines of comments. */
	n = 1024 * 1024;
	big = malloc(n + 1);
	memset(big, '#', n + 1);
	for (i = 1000; i < n + 1; i += 1000)
		big[i] = '\n';
	path = tmp_file("max.conf", big, n);
	cfg = config_load(path, err, sizeof err);
	ok(cfg != NULL && is_default(cfg), "1 MiB file loads");
	config_free(cfg);
	unlink(path);
	free(path);
	path = tmp_file("huge.conf", big, n + 1);
	cfg = config_load(path, err, sizeof err);
	ok(cfg == NULL, "1 MiB + 1 byte refused");
	snprintf(want, sizeof want, "%s: file too large (more than 1 MiB)",
	    path);
	is_str(err, want, "too large message");
	unlink(path);
	free(path);
	free(big);

	/*
	 * As root every file is readable: the check then runs in a child
	 * that has become nobody (uid and gid 65534), with the scratch
	 * directory searchable by it.  A control load of the same file at
	 * mode 0644 shows that the child can reach and read it, so the
	 * refusal is the file's mode.
	 */
	path = tmp_file("unreadable.conf", "uri = x\n", 8);
	if (geteuid() == 0) {
		chmod(tmpdir, 0711);
		chmod(path, 0644);
		is_int(load_as_nobody(path, err, sizeof err), 1,
		    "as uid 65534: the file at mode 0644 is read (control)");
	}
	chmod(path, 0);
	if (geteuid() == 0) {
		is_int(load_as_nobody(path, err, sizeof err), 0,
		    "unreadable file (as uid 65534)");
	} else {
		cfg = config_load(path, err, sizeof err);
		ok(cfg == NULL, "unreadable file");
		config_free(cfg);
	}
	snprintf(want, sizeof want, "%s: %s", path, strerror(EACCES));
	is_str(err, want, "unreadable message");
	unlink(path);
	free(path);
	rmdir(tmpdir);
}

static char *
read_all(const char *path, size_t *lenp)
{
	FILE	*f;
	char	*buf;
	size_t	 len;

	if ((f = fopen(path, "r")) == NULL)
		return NULL;
	buf = malloc(1024 * 1024 + 1);
	len = fread(buf, 1, 1024 * 1024, f);
	fclose(f);
	buf[len] = '\0';
	*lenp = len;
	return buf;
}

/* Does "#key = " start the line at s, for a key other than the lists? */
static int
doc_default_line(const char *s)
{
	size_t	i, n;

	if (s[0] != '#')
		return 0;
	for (i = 0; i < NKEYS; i++) {
		n = strlen(keys[i]);
		if (strncmp(s + 1, keys[i], n) == 0 &&
		    strncmp(s + 1 + n, " = ", 3) == 0)
			return strcmp(keys[i], "listen") != 0 &&
			    strcmp(keys[i], "metrics_listen") != 0 &&
			    strcmp(keys[i], "hypervisor") != 0 &&
			    strcmp(keys[i], "allowed_origins") != 0 &&
			    strcmp(keys[i], "server_name") != 0;
	}
	return 0;
}

static int
ends_with(const char *s, const char *suffix)
{
	size_t	ls = strlen(s), lx = strlen(suffix);

	return ls >= lx && strcmp(s + ls - lx, suffix) == 0;
}

static void
test_documented_file(void)
{
	struct config	*cfg, *def;
	const char	*dir;
	char		*path, *buf, *s, *line, *out, *o, key[64];
	size_t		 len, i;
	int		 listed;

	if ((dir = getenv("VCD_SRCDIR")) == NULL &&
	    (dir = getenv("srcdir")) == NULL)
		dir = ".";
	xasprintf(&path, "%s/etc/virtconsoled.conf", dir);
	cfg = config_load(path, err, sizeof err);
	if (!ok(cfg != NULL, "%s loads", path))
		printf("#   error: %s\n", err);
	ok(cfg != NULL && is_default(cfg), "documented file: defaults");
	config_free(cfg);

	if ((buf = read_all(path, &len)) == NULL) {
		ok(0, "read %s", path);
		free(path);
		return;
	}
	/* Every key is documented with a commented-out line. */
	for (i = 0; i < NKEYS; i++) {
		snprintf(key, sizeof key, "\n#%s = ", keys[i]);
		ok(strstr(buf, key) != NULL, "documented: %s", keys[i]);
	}
	/* Uncommenting the shown defaults changes nothing. */
	out = malloc(len + 1);
	o = out;
	for (line = buf; *line != '\0'; line = s) {
		s = strchr(line, '\n');
		s = s != NULL ? s + 1 : line + strlen(line);
		if (doc_default_line(line))
			line++;
		memcpy(o, line, (size_t)(s - line));
		o += s - line;
	}
	*o = '\0';
	cfg = config_parse(path, out, (size_t)(o - out), err, sizeof err);
	if (!ok(cfg != NULL, "documented defaults, uncommented, parse"))
		printf("#   error: %s\n", err);
	if (cfg != NULL) {
		/* These two depend on configure's directories. */
		ok(ends_with(cfg->token_secret_file, "/virtconsoled/secret"),
		    "documented token_secret_file: %s",
		    cfg->token_secret_file);
		ok(ends_with(cfg->web_root, "/virtconsoled/web"),
		    "documented web_root: %s", cfg->web_root);
		def = config_new();
		free(cfg->token_secret_file);
		cfg->token_secret_file = xstrdup(def->token_secret_file);
		free(cfg->web_root);
		cfg->web_root = xstrdup(def->web_root);
		ok(config_same(cfg, def),
		    "documented defaults match config_new()");
		config_free(def);
	}
	config_free(cfg);
	listed = 0;
	for (i = 0; out[i] != '\0'; i++) {
		if ((i == 0 || out[i - 1] == '\n') && out[i] != '#' &&
		    out[i] != '\n')
			listed++;
	}
	/*
	 * All but listen, metrics_listen (no default), hypervisor (beside
	 * uri, an error) and the two lists.
	 */
	is_int(listed, NKEYS - 5, "one uncommented line per scalar key");

	/*
	 * The examples for the lists, metrics_listen and hypervisor (no uri
	 * here: the two keys together are an error) are valid too.
	 */
	o = out + sprintf(out, "tls_cert = /c\ntls_key = /k\n");
	for (line = buf; *line != '\0'; line = s) {
		s = strchr(line, '\n');
		s = s != NULL ? s + 1 : line + strlen(line);
		if (strncmp(line, "#listen = ", 10) == 0 ||
		    strncmp(line, "#metrics_listen = ", 18) == 0 ||
		    strncmp(line, "#hypervisor = ", 14) == 0 ||
		    strncmp(line, "#allowed_origins = ", 19) == 0) {
			memcpy(o, line + 1, (size_t)(s - line - 1));
			o += s - line - 1;
		}
	}
	*o = '\0';
	cfg = config_parse(path, out, (size_t)(o - out), err, sizeof err);
	if (!ok(cfg != NULL, "documented examples parse"))
		printf("#   error: %s\n", err);
	ok(cfg != NULL && count_listens(cfg) > 0 && count_origins(cfg) > 0,
	    "documented examples give listeners and origins");
	ok(cfg != NULL && cfg->hv_form && count_hvs(cfg) >= 2,
	    "documented examples give several hypervisors (%d)",
	    cfg != NULL ? count_hvs(cfg) : -1);
	config_free(cfg);
	free(out);
	free(buf);
	free(path);
}

/*
 * A cheap in-tree fuzz: random and mutated inputs must never crash (ASan
 * builds catch overreads) and must fail with a "name:line:" message.
 */
static unsigned long long rnd_state = 88172645463325252ULL;

static unsigned int
rnd(void)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 7;
	rnd_state ^= rnd_state << 17;
	return (unsigned int)rnd_state;
}

static void
test_random(void)
{
	static const char *const pieces[] = {
		"uri", "listen", "allowed_origins", "escape", "max_buffer",
		" = ", "=", "\"", "#", " #", "\n", "\r\n", "\r", "^", "[", "]",
		":", "::1", "127.0.0.1", "*", "tls", "auth=none", "none",
		"https://", "1G", "4K", "\t", " ", "/run/virtconsoled/guests",
		"socket_dir", "control_socket", "tls_cert", "/x", "0", "65535",
		"\xff", "\0", "idle_timeout", "99999999999999999999",
	};
	char		 buf[512];
	struct config	*cfg;
	size_t		 len, n, k;
	int		 i, badmsg = 0, accepted = 0, refused = 0, undefined = 0;

	for (i = 0; i < 20000; i++) {
		len = 0;
		n = rnd() % 40;
		for (k = 0; k < n; k++) {
			const char *p = pieces[rnd() %
			    (sizeof pieces / sizeof pieces[0])];
			size_t pl = *p == '\0' ? 1 : strlen(p);

			if (rnd() % 8 == 0) {
				buf[len++] = (char)rnd();
				pl = 0;
			}
			if (len + pl > sizeof buf)
				break;
			memcpy(buf + len, p, pl);
			len += pl;
		}
		err[0] = '\0';
		cfg = config_parse(NAME, buf, len, err, sizeof err);
		if (cfg != NULL)
			accepted++;
		else if (err[0] != '\0')
			refused++;
		else
			undefined++;	/* NULL without a message */
		if (cfg == NULL && (strncmp(err, NAME ":", 10) != 0 ||
		    strchr(err, '\n') != NULL))
			badmsg++;
		config_free(cfg);
	}
	printf("# random inputs: %d accepted, %d refused, %d NULL without "
	    "a message\n", accepted, refused, undefined);
	ok(accepted + refused == 20000 && undefined == 0,
	    "20000 random inputs parsed, each to a config or to a refusal "
	    "with a message");
	ok(accepted > 0 && refused > 0,
	    "the random inputs reach both outcomes (accepted and refused)");
	ok(badmsg == 0, "every failure has a one-line name:line: message");
}

int
main(void)
{
	test_defaults();
	test_web_names();
	test_empty_and_comments();
	test_trailing_comments_and_quotes();
	test_line_errors();
	test_error_buffer();
	test_strings_and_paths();
	test_keywords();
	test_numbers();
	test_sizes();
	test_escape();
	test_hypervisors();
	test_listen();
	test_metrics();
	test_logs();
	test_origins();
	test_control_socket();
	test_load();
	test_documented_file();
	test_random();
	return tap_done();
}
