/*
 * The HTTP/1.1 request-head parser of the web front door, and the helpers
 * the router reads a parsed request with: headers, token lists, the path,
 * the query string and cookies.  Pure: no sockets, no event loop.
 *
 * Debian 12's evhttp cannot hand a connection over after a 101 reply, so
 * web.c parses heads itself.  http_parse() keeps no state between calls:
 * it is given every byte received so far and parses from the start.  A
 * connection receiving a head runs http_scan() on each read instead: it
 * remembers how far it has looked, checks each line once as it ends, and
 * enforces every limit as soon as it is passed rather than when a line
 * finally ends; http_parse() then runs once, on the whole head.  A head
 * that arrives a byte at a time thus costs linear work, not quadratic.
 *
 * The policy is strict, as RFC 9112 allows a server to be:
 * - a line ends in CRLF or in a bare LF (9112 section 2.2 permits the
 *   latter); a bare CR anywhere, or an empty line before the request
 *   line, is an error;
 * - exactly one SP between the three parts of the request line;
 * - origin-form targets only ("/path?query"): this is not a proxy, and
 *   absolute-form, authority-form and "*" are refused;
 * - obs-fold, whitespace before a colon and control bytes other than HTAB
 *   in a value are errors, never repaired;
 * - HTTP/1.1 needs exactly one valid Host; HTTP/1.0 may have none.
 * Line limits count the line without its CRLF or LF.  A body is not this
 * module's business: the router serves GET and HEAD only, reads one head
 * per connection and answers with Connection: close.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "virtconsoled.h"

/* Where a line of the head lies in the caller's buffer. */
struct http_line {
	size_t	off;
	size_t	len;		/* without CRLF or LF */
	size_t	namelen;	/* header lines: bytes before the colon */
};

static int	http_is_tchar(unsigned char);
static int	http_is_ows(char);
static int	http_check_request_line(const char *, size_t, int *);
static int	http_check_field(const char *, size_t, size_t *);
static int	http_check_host(const char *, size_t);
static void	http_field_value(const char *, const struct http_line *,
		    const char **, size_t *);
static int	http_hex(unsigned char);
static int	http_pct_decode(const char *, size_t, char *, size_t,
		    size_t *);
static int	http_is_cookie_octet(unsigned char);

/* RFC 9110 tchar: what a method or a header name is made of. */
static int
http_is_tchar(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9'))
		return 1;
	return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int
http_is_ows(char c)
{
	return c == ' ' || c == '\t';
}

/*
 * "METHOD SP /target SP HTTP/1.x".  The target may hold any visible ASCII
 * but '#': browsers send '|', '^' or '[' unescaped, and http_path_decode()
 * is where the path is judged.  Returns 0 and the minor version, or an
 * HTTP status.
 */
static int
http_check_request_line(const char *s, size_t n, int *minor)
{
	const unsigned char	*u = (const unsigned char *)s;
	size_t			 i = 0, t;

	while (i < n && http_is_tchar(u[i]))
		i++;
	if (i == 0 || i == n || u[i] != ' ')
		return 400;
	t = ++i;
	while (i < n && u[i] > 0x20 && u[i] < 0x7f && u[i] != '#')
		i++;
	if (i == t || i == n || u[i] != ' ' || u[t] != '/')
		return 400;
	i++;
	if (n - i != 8 || memcmp(s + i, "HTTP/", 5) != 0 ||
	    u[i + 5] < '0' || u[i + 5] > '9' || u[i + 6] != '.' ||
	    u[i + 7] < '0' || u[i + 7] > '9')
		return 400;
	if (u[i + 5] != '1' || u[i + 7] > '1')
		return 505;
	*minor = u[i + 7] - '0';
	return 0;
}

/*
 * "name:value".  A line starting with whitespace is obs-fold, which RFC
 * 9112 lets a server refuse; so is whitespace before the colon, which
 * has been used to smuggle headers past proxies.  Values may hold HTAB,
 * SP, visible ASCII and obs-text, never another control byte.
 */
static int
http_check_field(const char *s, size_t n, size_t *namelen)
{
	const unsigned char	*u = (const unsigned char *)s;
	size_t			 i = 0;

	while (i < n && http_is_tchar(u[i]))
		i++;
	if (i == 0 || i == n || u[i] != ':')
		return 400;
	*namelen = i;
	for (i++; i < n; i++) {
		if (u[i] != '\t' && (u[i] < 0x20 || u[i] == 0x7f))
			return 400;
	}
	return 0;
}

/*
 * RFC 9112 section 3.2 requires a 400 for an invalid Host.  web.c builds
 * the request's own origin from it, so only uri-host [":" port]
 * characters get through: no userinfo, path or whitespace.
 */
static int
http_check_host(const char *s, size_t n)
{
	const unsigned char	*u = (const unsigned char *)s;
	size_t			 i;

	if (n == 0)
		return -1;
	for (i = 0; i < n; i++) {
		if ((u[i] >= 'a' && u[i] <= 'z') ||
		    (u[i] >= 'A' && u[i] <= 'Z') ||
		    (u[i] >= '0' && u[i] <= '9'))
			continue;
		if (strchr("-._~!$&'()*+,;=:[]%", u[i]) == NULL)
			return -1;
	}
	return 0;
}

/* A header line's value, without the OWS around it. */
static void
http_field_value(const char *buf, const struct http_line *l,
    const char **value, size_t *len)
{
	const char	*s = buf + l->off + l->namelen + 1;
	const char	*e = buf + l->off + l->len;

	while (s < e && http_is_ows(*s))
		s++;
	while (e > s && http_is_ows(e[-1]))
		e--;
	*value = s;
	*len = (size_t)(e - s);
}

/*
 * Check the lines of a head that have ended since the last call: buf holds
 * every byte received so far (the same bytes again, and maybe more), and
 * only bytes past sc->seen are looked at, so a head that arrives a byte at
 * a time costs linear work.  Each complete line is checked once; with
 * lines != NULL their places are recorded.  Returns 1 when the blank line
 * that ends the head has arrived (sc->pos is then just past it), 0 when
 * more bytes are needed and no limit is passed yet, -1 with *status 400,
 * 414, 431 or 505.
 */
static int
http_scan_lines(struct http_scan *sc, const char *buf, size_t len,
    struct http_line *lines, int *status)
{
	const char	*lf;
	size_t		 end, n, max, namelen = 0;
	int		 error;

	/* Nothing past the largest head can belong to it. */
	end = len < HTTP_MAX_HEAD ? len : HTTP_MAX_HEAD;
	for (;;) {
		/* NOLINTNEXTLINE(bugprone-branch-clone): equal limits today */
		max = sc->nlines == 0 ? HTTP_MAX_LINE : HTTP_MAX_FIELD;
		lf = sc->seen < end ? memchr(buf + sc->seen, '\n',
		    end - sc->seen) : NULL;
		if (sc->seen < end)
			sc->examined += (lf != NULL ? (size_t)(lf - buf) + 1 :
			    end) - sc->seen;
		if (lf == NULL) {
			sc->seen = end;
			/*
			 * An unfinished line: refuse it now if it is already
			 * too long (a CR may still wait for its LF), or if it
			 * would be one header too many.
			 */
			n = end - sc->pos;
			if (n > max + 1 ||
			    (n == max + 1 && buf[end - 1] != '\r'))
				error = sc->nlines == 0 ? 414 : 431;
			else if ((n > 0 && sc->nlines == 1 + HTTP_MAX_HEADERS &&
			    buf[sc->pos] != '\r') || len > HTTP_MAX_HEAD)
				error = 431;
			else
				return 0;
			goto fail;
		}
		sc->seen = (size_t)(lf - buf) + 1;
		n = (size_t)(lf - (buf + sc->pos));
		if (n > 0 && buf[sc->pos + n - 1] == '\r')
			n--;
		if (n > max) {
			error = sc->nlines == 0 ? 414 : 431;
			goto fail;
		}
		if (n == 0) {
			if (sc->nlines == 0) {
				error = 400;
				goto fail;
			}
			sc->pos = sc->seen;
			return 1;
		}
		if (sc->nlines == 1 + HTTP_MAX_HEADERS) {
			error = 431;
			goto fail;
		}
		sc->examined += n;
		if (sc->nlines == 0)
			error = http_check_request_line(buf + sc->pos, n,
			    &sc->minor);
		else
			error = http_check_field(buf + sc->pos, n, &namelen);
		if (error != 0)
			goto fail;
		if (lines != NULL) {
			lines[sc->nlines].off = sc->pos;
			lines[sc->nlines].len = n;
			lines[sc->nlines].namelen = namelen;
		}
		sc->nlines++;
		sc->pos = sc->seen;
	}

fail:
	*status = error;
	return -1;
}

/*
 * For a connection that receives its head in pieces: call with every byte
 * received so far, and call http_parse() once this returns 1.  sc starts
 * zeroed.  Returns as http_scan_lines() does.
 */
int
http_scan(struct http_scan *sc, const char *buf, size_t len, int *status)
{
	return http_scan_lines(sc, buf, len, NULL, status);
}

/*
 * Parse a request head from the start of buf, which holds every byte
 * received so far.  Returns 1 with the request and the bytes up to and
 * including the blank line in *consumed; 0 when more bytes are needed and
 * no limit is passed yet; -1 with *status 400, 414, 431 or 505.  req is
 * overwritten; unless 1 is returned it holds nothing to free.
 */
int
http_parse(const char *buf, size_t len, struct http_request *req,
    size_t *consumed, int *status)
{
	struct http_scan	 sc;
	struct http_line	 lines[1 + HTTP_MAX_HEADERS], *l;
	const char		*value, *q;
	size_t			 n, nlines, i, vlen;
	int			 error, nhost, minor, rc;

	memset(req, 0, sizeof *req);
	*consumed = 0;
	memset(&sc, 0, sizeof sc);
	if ((rc = http_scan_lines(&sc, buf, len, lines, status)) != 1)
		return rc;
	nlines = sc.nlines;
	minor = sc.minor;

	nhost = 0;
	for (i = 1; i < nlines; i++) {
		l = &lines[i];
		if (l->namelen != 4 ||
		    strncasecmp(buf + l->off, "Host", 4) != 0)
			continue;
		http_field_value(buf, l, &value, &vlen);
		if (++nhost > 1 || http_check_host(value, vlen) != 0) {
			error = 400;
			goto fail;
		}
	}
	if (nhost == 0 && minor == 1) {
		error = 400;
		goto fail;
	}

	/* The head is good: copy it out. */
	l = &lines[0];
	n = (size_t)((const char *)memchr(buf + l->off, ' ', l->len) -
	    (buf + l->off));
	req->method = xstrndup(buf + l->off, n);
	req->target = xstrndup(buf + l->off + n + 1, l->len - n - 1 - 9);
	if ((q = strchr(req->target, '?')) != NULL) {
		req->path = xstrndup(req->target, (size_t)(q - req->target));
		req->query = xstrdup(q + 1);
	} else
		req->path = xstrdup(req->target);
	req->minor = minor;
	if (nlines > 1) {
		req->fields = xcalloc(nlines - 1, sizeof *req->fields);
		for (i = 1; i < nlines; i++) {
			l = &lines[i];
			http_field_value(buf, l, &value, &vlen);
			req->fields[i - 1].name = xstrndup(buf + l->off,
			    l->namelen);
			req->fields[i - 1].value = xstrndup(value, vlen);
		}
		req->nfields = nlines - 1;
	}
	*consumed = sc.pos;
	return 1;

fail:
	*status = error;
	return -1;
}

/* Free what http_parse() allocated; the request is left empty. */
void
http_request_free(struct http_request *req)
{
	size_t	i;

	free(req->method);
	free(req->target);
	free(req->path);
	free(req->query);
	for (i = 0; i < req->nfields; i++) {
		free(req->fields[i].name);
		free(req->fields[i].value);
	}
	free(req->fields);
	memset(req, 0, sizeof *req);
}

/* The first header called name, in any case, or NULL. */
const char *
http_header(const struct http_request *req, const char *name)
{
	size_t	i;

	for (i = 0; i < req->nfields; i++) {
		if (strcasecmp(req->fields[i].name, name) == 0)
			return req->fields[i].value;
	}
	return NULL;
}

int
http_header_count(const struct http_request *req, const char *name)
{
	size_t	i;
	int	n = 0;

	for (i = 0; i < req->nfields; i++) {
		if (strcasecmp(req->fields[i].name, name) == 0)
			n++;
	}
	return n;
}

/*
 * One item of a header list separated by sep, optional whitespace around
 * it trimmed: [*s, *t).  Returns where the next item starts, or NULL
 * after the last one.
 */
static const char *
http_list_item(const char *p, int sep, const char **s, const char **t)
{
	const char	*e;

	if ((e = strchr(p, sep)) == NULL)
		e = p + strlen(p);
	*s = p;
	*t = e;
	while (*s < *t && http_is_ows(**s))
		(*s)++;
	while (*t > *s && http_is_ows((*t)[-1]))
		(*t)--;
	return *e == '\0' ? NULL : e + 1;
}

/*
 * Does any header called name list token in its comma-separated value?
 * Clients split lists across repeated headers and vary case and spacing
 * ("Connection: keep-alive, Upgrade"), so all of that is accepted.
 */
int
http_header_has_token(const struct http_request *req, const char *name,
    const char *token)
{
	const char	*p, *s, *t;
	size_t		 i, tlen = strlen(token);

	if (tlen == 0)
		return 0;
	for (i = 0; i < req->nfields; i++) {
		if (strcasecmp(req->fields[i].name, name) != 0)
			continue;
		for (p = req->fields[i].value; p != NULL;) {
			p = http_list_item(p, ',', &s, &t);
			if ((size_t)(t - s) == tlen &&
			    strncasecmp(s, token, tlen) == 0)
				return 1;
		}
	}
	return 0;
}

static int
http_hex(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * Percent-decode s[0..n) into out, NUL-terminated, and refuse what no
 * path segment or query value here may hold: a bad escape, NUL and other
 * control bytes (escaped or not), raw bytes a URI never carries.  The
 * decoded length goes to *outn.  Returns 0, or -1 (also when out is too
 * small).
 */
static int
http_pct_decode(const char *s, size_t n, char *out, size_t outlen,
    size_t *outn)
{
	const unsigned char	*u = (const unsigned char *)s;
	size_t			 i, o = 0;
	int			 c, hi, lo;

	for (i = 0; i < n; i++) {
		if (u[i] == '%') {
			if (n - i < 3 || (hi = http_hex(u[i + 1])) == -1 ||
			    (lo = http_hex(u[i + 2])) == -1)
				return -1;
			c = hi * 16 + lo;
			i += 2;
			if (c < 0x20 || c == 0x7f)
				return -1;
		} else if (u[i] <= 0x20 || u[i] >= 0x7f)
			return -1;
		else
			c = u[i];
		if (o + 1 >= outlen)
			return -1;
		out[o++] = (char)c;
	}
	if (o >= outlen)
		return -1;
	out[o] = '\0';
	*outn = o;
	return 0;
}

/*
 * Percent-decode a raw path ("/console/web%2B1") into out.  Refused, so
 * that no caller has to think about them: a bad escape, NUL or any
 * control byte (terminal escapes in a guest name), an encoded '/', '.' and
 * '..' segments however spelled, and empty segments ("//" or a trailing
 * '/'), except for "/" itself.  Returns 0, or -1 (also when out is too
 * small).
 */
int
http_path_decode(const char *raw, char *out, size_t outlen)
{
	const char	*seg, *slash;
	size_t		 o = 0, n, dn;

	if (outlen == 0)
		return -1;
	out[0] = '\0';
	if (raw == NULL || raw[0] != '/')
		return -1;
	if (raw[1] == '\0') {
		if (outlen < 2)
			return -1;
		memcpy(out, "/", 2);
		return 0;
	}
	for (seg = raw + 1;; seg = slash + 1) {
		slash = strchr(seg, '/');
		n = slash != NULL ? (size_t)(slash - seg) : strlen(seg);
		if (n == 0 || o + 1 >= outlen)
			goto bad;
		out[o++] = '/';
		if (http_pct_decode(seg, n, out + o, outlen - o, &dn) == -1 ||
		    memchr(out + o, '/', dn) != NULL ||
		    (dn == 1 && out[o] == '.') ||
		    (dn == 2 && out[o] == '.' && out[o + 1] == '.'))
			goto bad;
		o += dn;
		if (slash == NULL)
			break;
	}
	out[o] = '\0';
	return 0;

bad:
	out[0] = '\0';
	return -1;
}

/*
 * The percent-decoded value of the first parameter called name in a raw
 * query string ("a=1&token=T").  Names are matched as sent, undecoded.
 * '+' stays '+': tokens are base64url and never contain one, and form
 * encoding is not spoken here.  A parameter without '=' has an empty
 * value.  Only the first match counts, so that a second one cannot be
 * slipped past a proxy that checked the first.  Returns 0, or -1 when
 * absent, badly escaped or too long for out.
 */
int
http_query_get(const char *query, const char *name, char *out,
    size_t outlen)
{
	const char	*p, *e, *eq, *kend;
	size_t		 nlen = strlen(name), dn;

	if (outlen == 0)
		return -1;
	out[0] = '\0';
	if (query == NULL || nlen == 0)
		return -1;
	for (p = query;; p = e + 1) {
		if ((e = strchr(p, '&')) == NULL)
			e = p + strlen(p);
		eq = memchr(p, '=', (size_t)(e - p));
		kend = eq != NULL ? eq : e;
		if ((size_t)(kend - p) == nlen && memcmp(p, name, nlen) == 0) {
			if (eq == NULL)
				return 0;
			if (http_pct_decode(eq + 1, (size_t)(e - eq - 1), out,
			    outlen, &dn) == -1) {
				out[0] = '\0';
				return -1;
			}
			return 0;
		}
		if (*e == '\0')
			break;
	}
	return -1;
}

/* Whether the raw query string has a parameter called name, whatever its
 * value (http_query_get fails for one too long or badly escaped, and such
 * a parameter must not count as absent). */
int
http_query_has(const char *query, const char *name)
{
	const char	*p, *e, *kend;
	size_t		 nlen = strlen(name);

	if (query == NULL || nlen == 0)
		return 0;
	for (p = query;; p = e + 1) {
		if ((e = strchr(p, '&')) == NULL)
			e = p + strlen(p);
		if ((kend = memchr(p, '=', (size_t)(e - p))) == NULL)
			kend = e;
		if ((size_t)(kend - p) == nlen && memcmp(p, name, nlen) == 0)
			return 1;
		if (*e == '\0')
			return 0;
	}
}

/* RFC 6265 cookie-octet: no whitespace, DQUOTE, comma, semicolon or '\'. */
static int
http_is_cookie_octet(unsigned char c)
{
	return c >= 0x21 && c <= 0x7e && c != '"' && c != ',' && c != ';' &&
	    c != '\\';
}

/*
 * The value of the cookie called name (case-sensitive, as RFC 6265 has
 * it), from any Cookie header, in order.  A pair that is malformed (no
 * '=', a name that is not a token, a value outside cookie-octet) is
 * skipped rather than fatal: browsers keep sending cookies other sites
 * on the same host set, and one bad neighbour must not lock a person out.
 * A value in double quotes loses them.  Returns 0, or -1 when absent or
 * too long for out.
 */
int
http_cookie_get(const struct http_request *req, const char *name, char *out,
    size_t outlen)
{
	const char	*p, *s, *t, *eq;
	size_t		 i, j, nlen = strlen(name), vlen;

	if (outlen == 0)
		return -1;
	out[0] = '\0';
	if (nlen == 0)
		return -1;
	for (i = 0; i < req->nfields; i++) {
		if (strcasecmp(req->fields[i].name, "Cookie") != 0)
			continue;
		for (p = req->fields[i].value; p != NULL;) {
			p = http_list_item(p, ';', &s, &t);
			eq = memchr(s, '=', (size_t)(t - s));
			for (j = 0; eq != NULL && s + j < eq; j++) {
				if (!http_is_tchar((unsigned char)s[j]))
					break;
			}
			if (eq != NULL && s + j == eq && j == nlen &&
			    memcmp(s, name, nlen) == 0) {
				s = eq + 1;
				vlen = (size_t)(t - s);
				if (vlen >= 2 && s[0] == '"' &&
				    s[vlen - 1] == '"') {
					s++;
					vlen -= 2;
				}
				for (j = 0; j < vlen; j++) {
					if (!http_is_cookie_octet(
					    (unsigned char)s[j]))
						break;
				}
				if (j == vlen) {
					if (vlen >= outlen)
						return -1;
					memcpy(out, s, vlen);
					out[vlen] = '\0';
					return 0;
				}
			}
		}
	}
	return -1;
}

/* The reason phrase for a status line; the codes this daemon answers. */
const char *
http_reason(int code)
{
	switch (code) {
	case 101:
		return "Switching Protocols";
	case 200:
		return "OK";
	case 204:
		return "No Content";
	case 302:
		return "Found";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 409:
		return "Conflict";
	case 410:
		return "Gone";
	case 413:
		return "Content Too Large";
	case 414:
		return "URI Too Long";
	case 421:
		return "Misdirected Request";
	case 426:
		return "Upgrade Required";
	case 429:
		return "Too Many Requests";
	case 431:
		return "Request Header Fields Too Large";
	case 500:
		return "Internal Server Error";
	case 503:
		return "Service Unavailable";
	case 505:
		return "HTTP Version Not Supported";
	}
	return "Unknown";
}
