/*
 * libFuzzer target for the HTTP request-head parser and every helper that
 * reads a parsed request.  Besides "no crash, no leak, no read past len",
 * it checks what web.c relies on: a refusal carries a known status and
 * leaves nothing allocated; a parsed head holds no control bytes; a prefix
 * of the input never disagrees with the whole (the parser is stateless
 * and is called again as bytes arrive); a decoded path holds no '.', '..'
 * or empty segment and no control byte.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "virtconsoled.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
fuzz_no_ctl(const char *s, int tab_ok)
{
	const unsigned char	*u;

	for (u = (const unsigned char *)s; *u != '\0'; u++) {
		if ((*u < 0x20 && !(tab_ok && *u == '\t')) || *u == 0x7f)
			abort();
	}
}

/* A decoded path as web.c may use it for a file name or a guest name. */
static void
fuzz_path(const char *raw)
{
	char	 big[HTTP_MAX_LINE + 1], small[16];
	size_t	 n;
	int	 rbig, rsmall;

	rbig = http_path_decode(raw, big, sizeof big);
	rsmall = http_path_decode(raw, small, sizeof small);
	if ((rbig != 0 && rbig != -1) || (rsmall != 0 && rsmall != -1))
		abort();
	if (rbig == -1 && (rsmall == 0 || big[0] != '\0'))
		abort();
	if (rsmall == 0 && strcmp(small, big) != 0)
		abort();
	if (rbig == -1)
		return;
	n = strlen(big);
	if (big[0] != '/' || strstr(big, "//") != NULL ||
	    strstr(big, "/./") != NULL || strstr(big, "/../") != NULL ||
	    (n >= 2 && strcmp(big + n - 2, "/.") == 0) ||
	    (n >= 3 && strcmp(big + n - 3, "/..") == 0) ||
	    (n > 1 && big[n - 1] == '/'))
		abort();
	fuzz_no_ctl(big, 0);
}

static void
fuzz_query(const char *query, const char *name)
{
	char	out[64];

	if (http_query_get(query, name, out, sizeof out) == 0)
		fuzz_no_ctl(out, 0);
	else if (out[0] != '\0')
		abort();
}

static void
fuzz_request(const struct http_request *req, size_t consumed)
{
	static const char *const tokens[] = {
		"upgrade", "websocket", "keep-alive", "binary", "base64", "",
	};
	char		 out[256], name[64];
	const char	*v;
	size_t		 i, j, n;

	if (req->method == NULL || req->method[0] == '\0' ||
	    req->target == NULL || req->path == NULL ||
	    req->path[0] != '/' || (req->minor != 0 && req->minor != 1) ||
	    (req->minor == 1 && http_header(req, "Host") == NULL) ||
	    http_header_count(req, "Host") > 1 ||
	    req->nfields > HTTP_MAX_HEADERS || consumed > HTTP_MAX_HEAD ||
	    strlen(req->target) > HTTP_MAX_LINE)
		abort();
	fuzz_no_ctl(req->method, 0);
	fuzz_no_ctl(req->target, 0);
	if (strchr(req->target, ' ') != NULL)
		abort();
	for (i = 0; i < req->nfields; i++) {
		if (req->fields[i].name[0] == '\0')
			abort();
		fuzz_no_ctl(req->fields[i].name, 0);
		fuzz_no_ctl(req->fields[i].value, 1);
		n = strlen(req->fields[i].value);
		if (n > 0 && (req->fields[i].value[0] == ' ' ||
		    req->fields[i].value[0] == '\t' ||
		    req->fields[i].value[n - 1] == ' ' ||
		    req->fields[i].value[n - 1] == '\t'))
			abort();
		if ((v = http_header(req, req->fields[i].name)) == NULL ||
		    http_header_count(req, req->fields[i].name) < 1)
			abort();
		for (j = 0; j < sizeof tokens / sizeof tokens[0]; j++)
			(void)http_header_has_token(req, req->fields[i].name,
			    tokens[j]);
		/* Its own value is a token list of one, unless it has ','. */
		if (v[0] != '\0' && strchr(v, ',') == NULL &&
		    !http_header_has_token(req, req->fields[i].name, v))
			abort();
		/* Ask for a cookie named like each header value's start. */
		snprintf(name, sizeof name, "%.*s",
		    (int)strcspn(req->fields[i].value, "=; "),
		    req->fields[i].value);
		if (http_cookie_get(req, name, out, sizeof out) == 0)
			fuzz_no_ctl(out, 0);
		else if (out[0] != '\0')
			abort();
		(void)http_cookie_get(req, name, out, 2);
	}
	if (http_cookie_get(req, "vcd_session", out, sizeof out) == 0)
		fuzz_no_ctl(out, 0);
	fuzz_path(req->path);
	fuzz_query(req->query, "token");
	if (req->query != NULL) {
		snprintf(name, sizeof name, "%.*s",
		    (int)strcspn(req->query, "=&"), req->query);
		if (name[0] != '\0')
			fuzz_query(req->query, name);
	}
	if (http_reason(400) == NULL)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct http_request	 req, again;
	struct http_scan	 sc;
	const char		*buf = (const char *)data;
	char			*s;
	size_t			 used, used2, half;
	int			 rc, rc2, status = 0, status2 = 0;

	rc = http_parse(buf, size, &req, &used, &status);
	switch (rc) {
	case 1:
		if (used == 0 || used > size || buf[used - 1] != '\n')
			abort();
		fuzz_request(&req, used);
		/* The head alone parses the same; one byte less needs more. */
		if (http_parse(buf, used, &again, &used2, &status2) != 1 ||
		    used2 != used || strcmp(again.target, req.target) != 0 ||
		    again.nfields != req.nfields)
			abort();
		http_request_free(&again);
		if (http_parse(buf, used - 1, &again, &used2, &status2) != 0)
			abort();
		break;
	case 0:
		if (size > HTTP_MAX_HEAD || req.method != NULL || used != 0)
			abort();
		break;
	case -1:
		if ((status != 400 && status != 414 && status != 431 &&
		    status != 505) || req.method != NULL || req.fields != NULL)
			abort();
		break;
	default:
		abort();
	}

	/* A prefix never disagrees with the whole. */
	half = size / 2;
	rc2 = http_parse(buf, half, &again, &used2, &status2);
	if ((rc2 == 1 && (rc != 1 || used2 != used)) ||
	    (rc2 == -1 && (rc != -1 || status2 != status)))
		abort();
	http_request_free(&again);

	/*
	 * The scan a connection runs, fed in three pieces (none, half, all)
	 * and followed by one parse, agrees with the parse of the whole, and
	 * looks at each byte at most twice.
	 */
	memset(&sc, 0, sizeof sc);
	status2 = 0;
	if ((rc2 = http_scan(&sc, buf, 0, &status2)) == 0 &&
	    (rc2 = http_scan(&sc, buf, half, &status2)) == 0)
		rc2 = http_scan(&sc, buf, size, &status2);
	if (rc2 == 1)
		rc2 = http_parse(buf, size, &again, &used2, &status2);
	if (rc2 != rc || (rc == 1 && used2 != used) ||
	    (rc == -1 && status2 != status) || sc.examined > 2 * size)
		abort();
	http_request_free(&again);
	http_request_free(&req);

	/* The helpers on raw bytes, as a string up to the first NUL. */
	if (size > 0) {
		s = malloc(size + 1);
		memcpy(s, data, size);
		s[size] = '\0';
		fuzz_path(s);
		fuzz_query(s, "token");
		free(s);
	}
	return 0;
}
