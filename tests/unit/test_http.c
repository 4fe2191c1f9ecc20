/*
 * Unit tests of the HTTP request-head parser and its helpers: a good head
 * whole and byte by byte, every class of error with its status, the limits
 * enforced before a line ends, line-end policy, versions and Host, header
 * token lists, path decoding, query parameters, cookies and reasons.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "virtconsoled.h"
#include "tap.h"

static struct http_request	req;
static size_t			used;
static int			status;

/* Parse the first len bytes of s; status is 0 unless -1 is returned. */
static int
parse_len(const char *s, size_t len)
{
	int	rc;

	http_request_free(&req);
	status = 0;
	used = 12345;
	rc = http_parse(s, len, &req, &used, &status);
	return rc;
}

static int
parse(const char *s)
{
	return parse_len(s, strlen(s));
}

/* s must be refused with want, whole and also with a byte more. */
static void
fails(const char *s, int want, const char *what)
{
	char	*more;
	size_t	 len = strlen(s);

	is_int(parse(s), -1, "%s: refused", what);
	is_int(status, want, "%s: status %d", what, want);
	ok(req.method == NULL && req.nfields == 0 && used == 0,
	    "%s: nothing returned", what);
	more = malloc(len + 2);
	memcpy(more, s, len);
	memcpy(more + len, "x", 2);
	ok(parse(more) == -1 && status == want, "%s: still %d with more bytes",
	    what, want);
	free(more);
}

/* A string of n copies of c. */
static char *
repeat(int c, size_t n)
{
	char	*s = malloc(n + 1);

	memset(s, c, n);
	s[n] = '\0';
	return s;
}

#define GOOD								\
	"GET /console/web1/serial0?token=abc&x=1 HTTP/1.1\r\n"		\
	"Host: vcd.example:8443\r\n"					\
	"Upgrade:websocket\r\n"						\
	"Connection: \t keep-alive, Upgrade \t\r\n"			\
	"X-Empty:\r\n"							\
	"User-Agent: caf\xc3\xa9\tbrowser\r\n"				\
	"\r\n"

static void
check_good(const char *what)
{
	is_str(req.method, "GET", "%s: method", what);
	is_str(req.target, "/console/web1/serial0?token=abc&x=1",
	    "%s: target", what);
	is_str(req.path, "/console/web1/serial0", "%s: path", what);
	is_str(req.query, "token=abc&x=1", "%s: query", what);
	is_int(req.minor, 1, "%s: minor", what);
	is_int(req.nfields, 5, "%s: five headers", what);
	if (req.nfields != 5)
		return;
	is_str(req.fields[0].name, "Host", "%s: name as sent", what);
	is_str(req.fields[0].value, "vcd.example:8443", "%s: Host", what);
	is_str(req.fields[1].value, "websocket", "%s: no OWS needed", what);
	is_str(req.fields[2].value, "keep-alive, Upgrade",
	    "%s: OWS trimmed both sides", what);
	is_str(req.fields[3].value, "", "%s: empty value", what);
	is_str(req.fields[4].value, "caf\xc3\xa9\tbrowser",
	    "%s: HTAB and obs-text kept", what);
}

static void
test_good(void)
{
	char	 buf[1024];
	size_t	 len = strlen(GOOD), k;
	int	 early = 0, rc;

	is_int(parse(GOOD), 1, "good head complete");
	is_int(used, len, "consumed is the whole head");
	check_good("good");
	is_str(http_header(&req, "connection"), "keep-alive, Upgrade",
	    "http_header ignores case");
	is_str(http_header(&req, "Missing"), NULL, "absent header is NULL");
	is_int(http_header_count(&req, "HOST"), 1, "one Host");
	is_int(http_header_count(&req, "Missing"), 0, "no Missing");

	/* Bytes after the head (a WebSocket frame) are not consumed. */
	snprintf(buf, sizeof buf, "%s\x81\x85\x01\x02\x03\x04hello", GOOD);
	is_int(parse(buf), 1, "head followed by frame bytes");
	is_int(used, len, "consumed stops at the blank line");

	/* Fed byte by byte: 0 until the last byte, then the same request. */
	for (k = 0; k < len; k++) {
		if ((rc = parse_len(GOOD, k)) != 0) {
			printf("# prefix %zu returned %d status %d\n", k, rc,
			    status);
			early++;
		}
	}
	is_int(early, 0, "every proper prefix needs more bytes");
	is_int(parse_len(GOOD, len), 1, "last byte completes it");
	is_int(used, len, "same consumed byte by byte");
	check_good("byte by byte");

	is_int(parse_len(NULL, 0), 0, "no bytes yet: need more");
	is_int(parse_len("", 0), 0, "empty buffer: need more");

	is_int(parse("get /x HTTP/1.1\r\nHost: h\r\n\r\n"), 1,
	    "any token method is accepted (the router answers 405)");
	is_str(req.method, "get", "method as sent");
	is_int(parse("M-SEARCH /x HTTP/1.1\r\nHost: h\r\n\r\n"), 1,
	    "token method with '-'");
	is_int(parse("GET /x? HTTP/1.1\r\nHost: h\r\n\r\n"), 1,
	    "target ending in '?'");
	is_str(req.query, "", "empty query is \"\"");
	is_int(parse("GET / HTTP/1.1\r\nHost: h\r\n\r\n"), 1, "no query");
	is_str(req.query, NULL, "no query is NULL");
	is_int(parse("GET /a|b^c[d] HTTP/1.1\r\nHost: h\r\n\r\n"), 1,
	    "unescaped chars browsers send are accepted");
	is_int(parse("GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n"), 1,
	    "IPv6 Host");

	http_request_free(&req);
	http_request_free(&req);
	ok(req.method == NULL, "http_request_free twice is harmless");
}

static void
test_line_ends(void)
{
	const char	*lf = "GET /a HTTP/1.1\nHost: h\nX: 1\n\n";
	const char	*mixed = "GET /a HTTP/1.1\r\nHost: h\nX: 1\r\n\n";

	is_int(parse(lf), 1, "LF-only line ends accepted");
	is_int(used, strlen(lf), "LF-only consumed");
	is_str(http_header(&req, "X"), "1", "LF-only header value");
	is_int(parse(mixed), 1, "mixed CRLF and LF accepted");
	is_int(used, strlen(mixed), "mixed consumed");
	is_int(parse("GET /a HTTP/1.1\r\nHost: h\r\n\r"), 0,
	    "CR of the blank line waits for its LF");
	fails("GET /a HTTP/1.1\r\nHost: h\r\n\rX\r\n", 400,
	    "bare CR as a line");
	fails("GET /a HTTP/1.1\r\nHost: h\rX: 1\r\n\r\n", 400,
	    "bare CR inside a header line");
	fails("GET /a HTTP/1.1\r\r\nHost: h\r\n\r\n", 400,
	    "CR CR LF after the request line");
	fails("GET /a\r HTTP/1.1\r\nHost: h\r\n\r\n", 400,
	    "bare CR in the request line");
	fails("\r\nGET /a HTTP/1.1\r\nHost: h\r\n\r\n", 400,
	    "empty line before the request line");
}

static void
test_versions(void)
{
	is_int(parse("GET / HTTP/1.0\r\n\r\n"), 1, "HTTP/1.0 without Host");
	is_int(req.minor, 0, "minor 0");
	is_int(req.nfields, 0, "no headers");
	is_int(parse("GET / HTTP/1.0\r\nHost: h\r\n\r\n"), 1,
	    "HTTP/1.0 with Host");
	fails("GET / HTTP/1.1\r\n\r\n", 400, "HTTP/1.1 without Host");
	fails("GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\nhost: b\r\n\r\n", 400,
	    "duplicate Host");
	fails("GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n", 400,
	    "duplicate Host on HTTP/1.0");
	fails("GET / HTTP/1.1\r\nHost:\r\n\r\n", 400, "empty Host");
	fails("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400, "Host with a path");
	fails("GET / HTTP/1.1\r\nHost: u@h\r\n\r\n", 400,
	    "Host with userinfo");
	fails("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400, "Host with a space");
	fails("GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505, "HTTP/2.0");
	fails("GET / HTTP/1.2\r\nHost: h\r\n\r\n", 505, "HTTP/1.2");
	fails("GET / HTTP/0.9\r\nHost: h\r\n\r\n", 505, "HTTP/0.9");
	fails("GET / HTTP/3.1\r\nHost: h\r\n\r\n", 505, "HTTP/3.1");
	fails("GET / http/1.1\r\nHost: h\r\n\r\n", 400, "lowercase version");
	fails("GET / HTTP/1.10\r\nHost: h\r\n\r\n", 400, "HTTP/1.10");
	fails("GET / HTTP/1\r\nHost: h\r\n\r\n", 400, "HTTP/1");
	fails("GET / HTTP/1.1 \r\nHost: h\r\n\r\n", 400,
	    "space after the version");
	fails("GET / HTTP/a.b\r\nHost: h\r\n\r\n", 400, "letters as version");
	fails("GET /\r\nHost: h\r\n\r\n", 400, "HTTP/0.9 style, no version");
}

static void
test_request_line(void)
{
	fails("GET http://x/ HTTP/1.1\r\nHost: x\r\n\r\n", 400,
	    "absolute-form");
	fails("OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", 400, "asterisk-form");
	fails("CONNECT x:443 HTTP/1.1\r\nHost: x\r\n\r\n", 400,
	    "authority-form");
	fails("GET  / HTTP/1.1\r\nHost: x\r\n\r\n", 400, "two spaces");
	fails("GET /  HTTP/1.1\r\nHost: x\r\n\r\n", 400,
	    "two spaces after the target");
	fails("GET\t/ HTTP/1.1\r\nHost: x\r\n\r\n", 400, "HTAB separator");
	fails(" GET / HTTP/1.1\r\nHost: x\r\n\r\n", 400, "leading space");
	fails("G(T / HTTP/1.1\r\nHost: x\r\n\r\n", 400, "bad method token");
	fails("G\xc3\xa9T / HTTP/1.1\r\nHost: x\r\n\r\n", 400,
	    "non-ASCII method");
	fails("GET /a#b HTTP/1.1\r\nHost: x\r\n\r\n", 400, "fragment");
	fails("GET /caf\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n", 400,
	    "raw non-ASCII target");
	fails("GET /a\x1b[2J HTTP/1.1\r\nHost: x\r\n\r\n", 400,
	    "ESC in the target");
	fails("GET /a\x7f HTTP/1.1\r\nHost: x\r\n\r\n", 400, "DEL in target");
	fails("GET HTTP/1.1\r\nHost: x\r\n\r\n", 400, "no target");
	fails("GET\r\nHost: x\r\n\r\n", 400, "method alone");
	fails("hello\r\n\r\n", 400, "not a request line");
	is_int(parse_len("GET /a\0b HTTP/1.1\r\nHost: x\r\n\r\n", 30), -1,
	    "NUL in the target");
	is_int(status, 400, "NUL in the target: 400");
}

/* A request line of exactly n bytes: "GET /aaa... HTTP/1.1". */
static char *
request_line(size_t n)
{
	char	*s = repeat('a', n);

	memcpy(s, "GET /", 5);
	memcpy(s + n - 9, " HTTP/1.1", 9);
	return s;
}

static void
test_headers(void)
{
	fails("GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n  folded\r\n\r\n", 400,
	    "obs-fold with spaces");
	fails("GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n\tfolded\r\n\r\n", 400,
	    "obs-fold with HTAB");
	fails("GET / HTTP/1.1\r\n Host: h\r\n\r\n", 400,
	    "first header line starts with a space");
	fails("GET / HTTP/1.1\r\nHost : h\r\n\r\n", 400,
	    "space before the colon");
	fails("GET / HTTP/1.1\r\nHost\t: h\r\n\r\n", 400,
	    "HTAB before the colon");
	fails("GET / HTTP/1.1\r\nHost: h\r\n: x\r\n\r\n", 400, "empty name");
	fails("GET / HTTP/1.1\r\nHost: h\r\nNoColon\r\n\r\n", 400,
	    "no colon");
	fails("GET / HTTP/1.1\r\nHost: h\r\nX(1): y\r\n\r\n", 400,
	    "bad name token");
	fails("GET / HTTP/1.1\r\nHost: h\r\nX: a\x1b[2Jb\r\n\r\n", 400,
	    "ESC in a value");
	fails("GET / HTTP/1.1\r\nHost: h\r\nX: a\x7f\r\n\r\n", 400,
	    "DEL in a value");
	fails("GET / HTTP/1.1\r\nHost: h\r\nX: a\x01\r\n\r\n", 400,
	    "SOH in a value");
	is_int(parse_len("GET / HTTP/1.1\r\nHost: h\r\nX: a\0b\r\n\r\n", 36),
	    -1, "NUL in a value");
	is_int(status, 400, "NUL in a value: 400");
	is_int(parse_len("GET / HTTP/1.1\r\nHost: h\r\nX\0: ab\r\n\r\n", 36),
	    -1, "NUL in a name");
	is_int(status, 400, "NUL in a name: 400");
	is_int(parse("GET / HTTP/1.1\r\nHost: h\r\nX: a:b: c\r\n\r\n"), 1,
	    "colons in a value");
	is_str(http_header(&req, "x"), "a:b: c", "value after the first colon");
	is_int(parse("GET / HTTP/1.1\r\nHost: h\r\nX:   \t  \r\n\r\n"), 1,
	    "whitespace-only value");
	is_str(http_header(&req, "x"), "", "whitespace-only value is empty");
}

static void
test_limits(void)
{
	char	*line, *big, *s;
	size_t	 k, n, pre;
	int	 i, early;

	/* Request line: 8192 bytes pass, 8193 are 414 even unfinished. */
	line = request_line(HTTP_MAX_LINE);
	xasprintf(&s, "%s\r\nHost: h\r\n\r\n", line);
	is_int(parse(s), 1, "request line of HTTP_MAX_LINE bytes");
	is_int(parse_len(s, HTTP_MAX_LINE + 1), 0,
	    "request line at the limit waits for its LF after CR");
	free(s);
	free(line);
	line = request_line(HTTP_MAX_LINE + 1);
	xasprintf(&s, "%s\r\nHost: h\r\n\r\n", line);
	fails(s, 414, "request line of HTTP_MAX_LINE + 1 bytes");
	is_int(parse_len(s, HTTP_MAX_LINE + 1), -1,
	    "overlong request line refused before it ends");
	is_int(status, 414, "overlong request line: 414");
	free(s);
	free(line);

	/* A 10,000-byte header line: 431 as soon as it passes 8192. */
	big = repeat('a', 10000);
	memcpy(big, "X-Long: ", 8);
	xasprintf(&s, "GET / HTTP/1.1\r\nHost: h\r\n%s\r\n\r\n", big);
	pre = strlen("GET / HTTP/1.1\r\nHost: h\r\n");
	early = 0;
	for (k = pre; k <= pre + HTTP_MAX_FIELD; k += 512)
		if (parse_len(s, k) != 0)
			early++;
	is_int(early, 0, "unfinished header line under the limit: need more");
	is_int(parse_len(s, pre + HTTP_MAX_FIELD), 0,
	    "header line of exactly HTTP_MAX_FIELD bytes so far: need more");
	is_int(parse_len(s, pre + HTTP_MAX_FIELD + 1), -1,
	    "one byte past HTTP_MAX_FIELD: refused before the line ends");
	is_int(status, 431, "10,000-byte header line: 431");
	fails(s, 431, "10,000-byte header line, whole");
	free(s);

	/* Exactly HTTP_MAX_FIELD is fine, with CRLF or LF. */
	big[HTTP_MAX_FIELD] = '\0';
	xasprintf(&s, "GET / HTTP/1.1\r\nHost: h\r\n%s\r\n\r\n", big);
	is_int(parse(s), 1, "header line of HTTP_MAX_FIELD bytes with CRLF");
	is_int(parse_len(s, pre + HTTP_MAX_FIELD + 1), 0,
	    "CR at the limit waits for its LF");
	free(s);
	xasprintf(&s, "GET / HTTP/1.1\nHost: h\n%s\n\n", big);
	is_int(parse(s), 1, "header line of HTTP_MAX_FIELD bytes with LF");
	free(s);
	big[HTTP_MAX_FIELD - 1] = '\0';
	xasprintf(&s, "GET / HTTP/1.1\r\nHost: h\r\n%s\r\r\n", big);
	fails(s, 400, "CR CR at the end of a header line");
	free(s);
	free(big);

	/* 64 headers (Host included) pass; a 65th is 431, even unfinished. */
	s = xstrdup("GET / HTTP/1.1\r\nHost: h\r\n");
	for (i = 1; i < HTTP_MAX_HEADERS; i++) {
		line = s;
		xasprintf(&s, "%sX-%d: %d\r\n", line, i, i);
		free(line);
	}
	xasprintf(&line, "%s\r\n", s);
	is_int(parse(line), 1, "64 headers");
	is_int(req.nfields, HTTP_MAX_HEADERS, "64 headers kept");
	is_str(req.fields[63].name, "X-63", "last header name");
	free(line);
	is_int(parse(s), 0, "64 headers, no blank line yet: need more");
	xasprintf(&line, "%s\r", s);
	is_int(parse(line), 0, "64 headers and a CR: need more");
	free(line);
	xasprintf(&line, "%sX", s);
	is_int(parse(line), -1, "65th header refused at its first byte");
	is_int(status, 431, "65th header: 431");
	free(line);
	xasprintf(&line, "%sX-65: 65\r\n\r\n", s);
	fails(line, 431, "65 headers");
	free(line);
	free(s);

	/* The whole head: at most HTTP_MAX_HEAD bytes. */
	big = repeat('b', 4000);
	memcpy(big, "X: ", 3);
	s = xstrdup("GET / HTTP/1.1\r\nHost: h\r\n");
	for (i = 0; i < 5; i++) {
		line = s;
		xasprintf(&s, "%s%s\r\n", line, big);
		free(line);
	}
	n = strlen(s);
	ok(n > HTTP_MAX_HEAD, "test head is over HTTP_MAX_HEAD");
	is_int(parse_len(s, HTTP_MAX_HEAD), 0,
	    "HTTP_MAX_HEAD bytes, unfinished: need more");
	is_int(parse_len(s, HTTP_MAX_HEAD + 1), -1,
	    "HTTP_MAX_HEAD + 1 bytes, unfinished: refused");
	is_int(status, 431, "head too long: 431");
	free(s);
	free(big);

	/* A complete head of exactly HTTP_MAX_HEAD bytes, then more. */
	pre = strlen("GET / HTTP/1.1\r\nHost: h\r\n") + 2;
	n = HTTP_MAX_HEAD - pre;	/* bytes of header lines with CRLF */
	s = xstrdup("GET / HTTP/1.1\r\nHost: h\r\n");
	while (n > 0) {
		k = n > 4002 ? 4002 : n;
		if (n - k > 0 && n - k < 6)
			k -= 6;
		big = repeat('c', k - 2);
		memcpy(big, "X:", 2);
		line = s;
		xasprintf(&s, "%s%s\r\n", line, big);
		free(line);
		free(big);
		n -= k;
	}
	line = s;
	xasprintf(&s, "%s\r\nGET / HTTP/1.1\r\n", line);
	free(line);
	is_int(parse(s), 1, "head of exactly HTTP_MAX_HEAD bytes, more after");
	is_int(used, HTTP_MAX_HEAD, "consumed HTTP_MAX_HEAD");
	s[HTTP_MAX_HEAD - 1] = 'x';
	is_int(parse(s), -1, "no blank line within HTTP_MAX_HEAD");
	is_int(status, 431, "no blank line within HTTP_MAX_HEAD: 431");
	free(s);

	is_int(parse("GET / HTTP/1.1\r\nHost: h\r\nX: 1\r\n"), 0,
	    "no blank line, under the limits: need more");
}

static void
test_tokens(void)
{
	is_int(parse("GET / HTTP/1.1\r\nHost: h\r\n"
	    "Connection: keep-alive\r\n"
	    "connection:  ,UPGRADE ,\t close\r\n"
	    "Upgrade: WebSocket\r\n"
	    "Sec-WebSocket-Protocol: binary,base64\r\n"
	    "Sec-WebSocket-Protocol: chat, superchat\r\n"
	    "X: upgradex, xupgrade, up grade\r\n\r\n"), 1, "token head");
	ok(http_header_has_token(&req, "Connection", "upgrade"),
	    "token in a repeated header, other case, odd spacing");
	ok(http_header_has_token(&req, "CONNECTION", "Keep-Alive"),
	    "token in the first header");
	ok(http_header_has_token(&req, "connection", "close"),
	    "last token after HTAB");
	ok(http_header_has_token(&req, "Upgrade", "websocket"),
	    "Upgrade: WebSocket");
	ok(http_header_has_token(&req, "Sec-WebSocket-Protocol", "binary"),
	    "first protocol");
	ok(http_header_has_token(&req, "Sec-WebSocket-Protocol", "base64"),
	    "second protocol, no space");
	ok(http_header_has_token(&req, "Sec-WebSocket-Protocol", "superchat"),
	    "protocol in the second header");
	ok(!http_header_has_token(&req, "Sec-WebSocket-Protocol", "chat,"),
	    "comma is not part of a token");
	ok(!http_header_has_token(&req, "X", "upgrade"),
	    "no prefix or suffix or inner-space match");
	ok(!http_header_has_token(&req, "X", "up"), "no partial match");
	ok(!http_header_has_token(&req, "Connection", ""), "empty token");
	ok(!http_header_has_token(&req, "Missing", "upgrade"),
	    "absent header");
	is_int(http_header_count(&req, "sec-websocket-protocol"), 2,
	    "two Sec-WebSocket-Protocol headers");
	is_str(http_header(&req, "Sec-WebSocket-Protocol"), "binary,base64",
	    "http_header gives the first");
}

static void
path_ok(const char *raw, const char *want)
{
	char	out[256];

	memset(out, 'z', sizeof out);
	is_int(http_path_decode(raw, out, sizeof out), 0, "path %s accepted",
	    raw);
	is_str(out, want, "path %s decodes", raw);
}

static void
path_bad(const char *raw, const char *what)
{
	char	out[256];

	memset(out, 'z', sizeof out);
	is_int(http_path_decode(raw, out, sizeof out), -1,
	    "path refused: %s", what);
	is_str(out, "", "refused path leaves out empty: %s", what);
}

static void
test_paths(void)
{
	char	out[8];

	path_ok("/", "/");
	path_ok("/console/web1/serial0", "/console/web1/serial0");
	path_ok("/console/web%2B1", "/console/web+1");
	path_ok("/console/web%2b1", "/console/web+1");
	path_ok("/a/%41%42c", "/a/ABc");
	path_ok("/a/b%20c", "/a/b c");
	path_ok("/a/.b/..c/...", "/a/.b/..c/...");
	path_ok("/caf%C3%A9", "/caf\xc3\xa9");
	path_ok("/a+b", "/a+b");
	path_bad("/console/..", "dot-dot segment");
	path_bad("/console/../etc", "dot-dot in the middle");
	path_bad("/console/%2e%2e", "encoded dot-dot");
	path_bad("/console/.%2E", "half-encoded dot-dot");
	path_bad("/console/./x", "dot segment");
	path_bad("/%2e", "encoded dot segment");
	path_bad("/..", "dot-dot at the root");
	path_bad("/a//b", "empty segment");
	path_bad("//", "double slash");
	path_bad("/a/", "trailing slash");
	path_bad("/a%2fb", "encoded slash");
	path_bad("/a%2Fb", "encoded slash, upper case");
	path_bad("/%00", "encoded NUL");
	path_bad("/a%00b", "encoded NUL inside");
	path_bad("/%zz", "bad escape");
	path_bad("/%4", "truncated escape");
	path_bad("/a%", "lone percent");
	path_bad("/%g0", "bad first hex digit");
	path_bad("/a%1b[2J", "encoded ESC");
	path_bad("/a%7f", "encoded DEL");
	path_bad("/a%0d%0aX", "encoded CRLF");
	path_bad("/a\x1b[2J", "raw ESC");
	path_bad("/a b", "raw space");
	path_bad("/caf\xc3\xa9", "raw non-ASCII");
	path_bad("", "empty");
	path_bad("a/b", "relative");
	path_bad(NULL, "NULL");

	is_int(http_path_decode("/abcdef", out, sizeof out), 0,
	    "path that just fits");
	is_str(out, "/abcdef", "path that just fits decodes");
	is_int(http_path_decode("/abcdefg", out, sizeof out), -1,
	    "path one byte too long");
	is_int(http_path_decode("/ab/c/e", out, sizeof out), 0,
	    "segments that just fit");
	is_int(http_path_decode("/ab/cd/ef", out, sizeof out), -1,
	    "segments one byte too long");
	is_int(http_path_decode("/%41%41%41%41%41%41", out, sizeof out), 0,
	    "escapes count decoded");
	is_int(http_path_decode("/", out, 1), -1, "root in one byte");
	is_int(http_path_decode("/", out, 0), -1, "zero-size out");
}

static void
test_query(void)
{
	char	out[16];
	char	*q;

	is_int(http_query_get("token=abc-_9&x=1", "token", out, sizeof out),
	    0, "first parameter");
	is_str(out, "abc-_9", "first parameter value");
	is_int(http_query_get("x=1&token=T%2Bk+z&y", "token", out,
	    sizeof out), 0, "middle parameter");
	is_str(out, "T+k+z", "%%2B decodes, '+' stays '+'");
	is_int(http_query_get("token=first&token=second", "token", out,
	    sizeof out), 0, "duplicate parameter");
	is_str(out, "first", "first one wins");
	is_int(http_query_get("token=%zz&token=good", "token", out,
	    sizeof out), -1, "first duplicate badly escaped: no fallback");
	is_str(out, "", "refused value leaves out empty");
	is_int(http_query_get("tokens=1&xtoken=2&Token=3", "token", out,
	    sizeof out), -1, "no prefix, suffix or case match");
	is_int(http_query_get("a=1", "token", out, sizeof out), -1,
	    "missing parameter");
	is_int(http_query_get(NULL, "token", out, sizeof out), -1,
	    "no query at all");
	is_int(http_query_get("", "token", out, sizeof out), -1,
	    "empty query");
	is_int(http_query_get("token", "token", out, sizeof out), 0,
	    "parameter without '='");
	is_str(out, "", "parameter without '=' is empty");
	is_int(http_query_get("token=", "token", out, sizeof out), 0,
	    "empty value");
	is_str(out, "", "empty value is empty");
	is_int(http_query_get("&&token=a=b&", "token", out, sizeof out), 0,
	    "empty pairs and '=' in the value");
	is_str(out, "a=b", "value after the first '='");
	is_int(http_query_get("token=%00", "token", out, sizeof out), -1,
	    "encoded NUL");
	is_int(http_query_get("token=a%1b", "token", out, sizeof out), -1,
	    "encoded ESC");
	is_int(http_query_get("token=a%", "token", out, sizeof out), -1,
	    "lone percent");
	is_int(http_query_get("token=123456789012345", "token", out,
	    sizeof out), 0, "value that just fits");
	is_int(http_query_get("token=1234567890123456", "token", out,
	    sizeof out), -1, "value one byte too long");
	is_str(out, "", "overlong value leaves out empty");
	q = repeat('t', 5000);
	memcpy(q, "token=", 6);
	is_int(http_query_get(q, "token", out, sizeof out), -1,
	    "5000-byte value");
	free(q);
	is_int(http_query_get("token=a", "", out, sizeof out), -1,
	    "empty name");
	is_int(http_query_get("token=a", "token", out, 0), -1,
	    "zero-size out");

	/* Straight from a parsed request. */
	is_int(parse("GET /?token=T0k%2Den HTTP/1.1\r\nHost: h\r\n\r\n"), 1,
	    "request with a token");
	is_int(http_query_get(req.query, "token", out, sizeof out), 0,
	    "token from the request");
	is_str(out, "T0k-en", "token decoded");
}

static void
test_cookies(void)
{
	char	out[16];

	is_int(parse("GET / HTTP/1.1\r\nHost: h\r\n"
	    "Cookie: a=1; vcd_session=S1.sig;b=2\r\n"
	    "X: y\r\n"
	    "cookie: broken; =novalue; c d=3; bad=x\\y; e=\"quoted\"; f=\r\n"
	    "Cookie: vcd_session=second; g =4; h= 5; dup=x y; dup=ok\r\n"
	    "\r\n"), 1, "cookie head");
	is_int(http_cookie_get(&req, "vcd_session", out, sizeof out), 0,
	    "cookie between others");
	is_str(out, "S1.sig", "first header's cookie wins");
	is_int(http_cookie_get(&req, "a", out, sizeof out), 0, "first pair");
	is_str(out, "1", "first pair value");
	is_int(http_cookie_get(&req, "b", out, sizeof out), 0,
	    "pair after ';' without a space");
	is_str(out, "2", "b value");
	is_int(http_cookie_get(&req, "e", out, sizeof out), 0,
	    "quoted value, after malformed pairs in the same header");
	is_str(out, "quoted", "quotes removed");
	is_int(http_cookie_get(&req, "f", out, sizeof out), 0, "empty value");
	is_str(out, "", "empty value is empty");
	is_int(http_cookie_get(&req, "bad", out, sizeof out), -1,
	    "value with a backslash skipped");
	is_int(http_cookie_get(&req, "broken", out, sizeof out), -1,
	    "pair without '=' skipped");
	is_int(http_cookie_get(&req, "c d", out, sizeof out), -1,
	    "name with a space never matches");
	is_int(http_cookie_get(&req, "g", out, sizeof out), -1,
	    "space before '=' is malformed");
	is_int(http_cookie_get(&req, "h", out, sizeof out), -1,
	    "space after '=' is malformed");
	is_int(http_cookie_get(&req, "dup", out, sizeof out), 0,
	    "malformed pair skipped, later one used");
	is_str(out, "ok", "later well-formed pair");
	is_int(http_cookie_get(&req, "VCD_SESSION", out, sizeof out), -1,
	    "names are case-sensitive");
	is_int(http_cookie_get(&req, "missing", out, sizeof out), -1,
	    "absent cookie");
	is_str(out, "", "absent cookie leaves out empty");
	is_int(http_cookie_get(&req, "a", out, 1), -1, "too long for out");
	is_int(http_cookie_get(&req, "a", out, 2), 0, "just fits");
	is_int(http_cookie_get(&req, "", out, sizeof out), -1, "empty name");
	is_int(http_cookie_get(&req, "a", out, 0), -1, "zero-size out");

	is_int(parse("GET / HTTP/1.1\r\nHost: h\r\n"
	    "Cookie: \ta=1 \t;b=2;  ;;c=3  \r\n\r\n"), 1,
	    "cookies with odd spacing");
	is_int(http_cookie_get(&req, "a", out, sizeof out), 0,
	    "OWS around a pair is dropped");
	is_str(out, "1", "a without its OWS");
	is_int(http_cookie_get(&req, "c", out, sizeof out), 0,
	    "after empty pairs");
	is_str(out, "3", "c without its OWS");

	is_int(parse("GET / HTTP/1.1\r\nHost: h\r\nCookie: x=1\r\n"
	    "Cookie: vcd_session=only\r\n\r\n"), 1, "two Cookie headers");
	is_int(http_cookie_get(&req, "vcd_session", out, sizeof out), 0,
	    "cookie in the second header");
	is_str(out, "only", "second header's value");
	is_int(parse("GET / HTTP/1.1\r\nHost: h\r\n\r\n"), 1, "no cookies");
	is_int(http_cookie_get(&req, "vcd_session", out, sizeof out), -1,
	    "no Cookie header");
}

static void
test_reasons(void)
{
	static const struct {
		int		 code;
		const char	*reason;
	} t[] = {
		{ 101, "Switching Protocols" }, { 200, "OK" },
		{ 204, "No Content" }, { 302, "Found" },
		{ 400, "Bad Request" }, { 401, "Unauthorized" },
		{ 403, "Forbidden" }, { 404, "Not Found" },
		{ 405, "Method Not Allowed" }, { 413, "Content Too Large" },
		{ 414, "URI Too Long" }, { 426, "Upgrade Required" },
		{ 429, "Too Many Requests" },
		{ 431, "Request Header Fields Too Large" },
		{ 500, "Internal Server Error" },
		{ 503, "Service Unavailable" },
		{ 505, "HTTP Version Not Supported" },
	};
	size_t	i;

	for (i = 0; i < sizeof t / sizeof t[0]; i++)
		is_str(http_reason(t[i].code), t[i].reason, "reason %d",
		    t[i].code);
	is_str(http_reason(299), "Unknown", "unknown code");
}

/* Good and bad heads that prefix and scan tests cut up. */
static const char *const heads[] = {
	GOOD,
	"GET / HTTP/1.0\n\n",
	"GET / HTTP/2.0\r\nHost: h\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: h\r\nHost: h\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: h\r\n x\r\n\r\n",
	"GET /a HTTP/1.1\r\nHost: h\r\rX: 1\r\n\r\n",
	"\r\nGET / HTTP/1.1\r\n\r\n",
	"GET  / HTTP/1.1\r\nHost: h\r\n\r\n",
};

/*
 * Parsing is stateless, so a prefix must never disagree with the whole:
 * a prefix that completes completes the same way, one that fails fails
 * with the same status.
 */
static void
test_prefixes(void)
{
	size_t	 i, k, len, wused;
	int	 bad = 0, whole, wstatus, rc;

	for (i = 0; i < sizeof heads / sizeof heads[0]; i++) {
		len = strlen(heads[i]);
		whole = parse(heads[i]);
		wused = used;
		wstatus = status;
		for (k = 0; k < len; k++) {
			rc = parse_len(heads[i], k);
			if ((rc == 1 && (whole != 1 || used != wused)) ||
			    (rc == -1 && (whole != -1 || status != wstatus)))
				bad++;
		}
	}
	is_int(bad, 0, "no prefix disagrees with its whole head");
}

/*
 * http_scan() fed a byte at a time, then http_parse() once it says the
 * head is complete, agrees with http_parse() at every prefix, and looks
 * at each byte at most twice (once for its LF, once in its line's check).
 */
static int
scan_agrees(const char *head, size_t len, size_t *examined)
{
	struct http_scan	sc;
	size_t			k;
	int			rc, sstatus, whole, bad = 0;

	memset(&sc, 0, sizeof sc);
	for (k = 1; k <= len; k++) {
		sstatus = 0;
		rc = http_scan(&sc, head, k, &sstatus);
		if (rc == 1)
			rc = http_parse(head, k, &req, &used, &sstatus);
		http_request_free(&req);
		whole = parse_len(head, k);
		if (rc != whole || (rc == -1 && sstatus != status))
			bad++;
		if (rc != 0)
			break;
	}
	*examined = sc.examined;
	return bad;
}

static void
test_scan(void)
{
	struct http_scan	 sc;
	char			*big, *line;
	size_t			 i, len, off, examined;
	int			 bad = 0, rc, st;

	for (i = 0; i < sizeof heads / sizeof heads[0]; i++) {
		len = strlen(heads[i]);
		bad += scan_agrees(heads[i], len, &examined);
		if (examined > 2 * len)
			bad++;
	}
	is_int(bad, 0, "scan then parse agrees with parse at every prefix");

	/* The largest head there is, 64 headers, a byte at a time. */
	big = malloc(HTTP_MAX_HEAD + 1);
	off = (size_t)snprintf(big, HTTP_MAX_HEAD, "GET / HTTP/1.1\r\n"
	    "Host: h\r\n");
	line = repeat('a', 240);
	for (i = 1; i < HTTP_MAX_HEADERS; i++)
		off += (size_t)snprintf(big + off, HTTP_MAX_HEAD + 1 - off,
		    "X-%02zu: %s\r\n", i, line);
	off += (size_t)snprintf(big + off, HTTP_MAX_HEAD + 1 - off, "\r\n");
	ok(off > HTTP_MAX_HEAD - 1024 && off <= HTTP_MAX_HEAD,
	    "a head of %zu bytes (the limit is %d)", off, HTTP_MAX_HEAD);
	is_int(scan_agrees(big, off, &examined), 0,
	    "byte by byte: the same request as whole");
	ok(examined <= 2 * off, "byte by byte: %zu bytes looked at for %zu "
	    "(re-parsing every read would look at about %zu)", examined, off,
	    off * off / 2);
	is_int(parse_len(big, off), 1, "and it parses, %zu headers",
	    req.nfields);

	/* A bad line is refused as soon as its LF comes, not at the end. */
	memset(&sc, 0, sizeof sc);
	st = 0;
	rc = http_scan(&sc, "GET / HTTP/1.1\r\nBad Name: x\r\n", 31, &st);
	ok(rc == -1 && st == 400, "a bad header line: 400 at its LF (%d %d)",
	    rc, st);
	/* A line over its limit is refused before it ends. */
	memset(&sc, 0, sizeof sc);
	st = 0;
	memcpy(big, "GET /", 5);
	memset(big + 5, 'a', HTTP_MAX_LINE + 10);
	rc = 0;
	for (len = 1; len <= HTTP_MAX_LINE + 15 && rc == 0; len++)
		rc = http_scan(&sc, big, len, &st);
	ok(rc == -1 && st == 414 && len - 1 == HTTP_MAX_LINE + 1,
	    "a long request line: 414 at byte %zu, before its end", len - 1);
	free(line);
	free(big);
}

int
main(void)
{
	test_good();
	test_line_ends();
	test_versions();
	test_request_line();
	test_headers();
	test_limits();
	test_tokens();
	test_paths();
	test_query();
	test_cookies();
	test_reasons();
	test_prefixes();
	test_scan();
	http_request_free(&req);
	return tap_done();
}
