/*
 * JSON, the little the daemon speaks: strings written into answers
 * (json_add_string), and the check that a client's text message under the
 * virtconsole.v1 subprotocol is one JSON object (json_object_valid), as
 * RFC 8259 has it, nested at most JSON_DEPTH_MAX deep so that a hostile
 * message cannot exhaust the stack.  Nothing here allocates.
 */
#include <string.h>

#include <event2/buffer.h>

#include "virtconsoled.h"

#define JSON_DEPTH_MAX	32

/*
 * Append s to b as a JSON string: quoted, with C0 and C1 controls and DEL
 * escaped, and bytes that are not UTF-8 (a guest name may hold any) as
 * U+FFFD, so that the result is always valid JSON.
 */
void
json_add_string(struct evbuffer *b, const char *s)
{
	const unsigned char	*p = (const unsigned char *)s;
	const unsigned char	*end = p + strlen(s);
	size_t			 n;

	evbuffer_add(b, "\"", 1);
	for (; p < end; p += n) {
		if ((n = utf8_len(p, (size_t)(end - p))) == 0) {
			evbuffer_add(b, "\\ufffd", 6);
			n = 1;
		} else if (*p == '"' || *p == '\\')
			evbuffer_add_printf(b, "\\%c", *p);
		else if (*p < 0x20 || *p == 0x7f)
			evbuffer_add_printf(b, "\\u%04x", *p);
		else if (n == 2 && p[0] == 0xc2 && p[1] < 0xa0)
			evbuffer_add_printf(b, "\\u%04x", p[1]);
		else
			evbuffer_add(b, p, n);
	}
	evbuffer_add(b, "\"", 1);
}

struct json_parser {
	const unsigned char	*p, *end;
	int			 depth;
};

static int	json_value(struct json_parser *);

static void
json_space(struct json_parser *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' ||
	    *j->p == '\n' || *j->p == '\r'))
		j->p++;
}

/* Whether the next byte is c; if so, it is taken. */
static int
json_take(struct json_parser *j, unsigned char c)
{
	if (j->p < j->end && *j->p == c) {
		j->p++;
		return 1;
	}
	return 0;
}

static int
json_digits(struct json_parser *j)
{
	const unsigned char	*start = j->p;

	while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
		j->p++;
	return j->p > start;
}

static int
json_number(struct json_parser *j)
{
	(void)json_take(j, '-');
	if (!json_take(j, '0') && !json_digits(j))
		return 0;
	if (json_take(j, '.') && !json_digits(j))
		return 0;
	if (json_take(j, 'e') || json_take(j, 'E')) {
		if (!json_take(j, '+'))
			(void)json_take(j, '-');
		if (!json_digits(j))
			return 0;
	}
	return 1;
}

/* A string; the caller made sure the text is UTF-8. */
static int
json_string(struct json_parser *j)
{
	static const char	 escapes[] = "\"\\/bfnrt";
	int			 i;

	if (!json_take(j, '"'))
		return 0;
	while (j->p < j->end) {
		if (*j->p == '"') {
			j->p++;
			return 1;
		}
		if (*j->p < 0x20)
			return 0;
		if (*j->p++ != '\\')
			continue;
		if (j->p == j->end)
			return 0;
		if (*j->p != 'u') {
			if (*j->p == '\0' || strchr(escapes, *j->p) == NULL)
				return 0;
			j->p++;
			continue;
		}
		j->p++;
		for (i = 0; i < 4; i++, j->p++)
			if (j->p == j->end || strchr("0123456789abcdefABCDEF",
			    *j->p) == NULL || *j->p == '\0')
				return 0;
	}
	return 0;
}

static int
json_word(struct json_parser *j, const char *w)
{
	size_t	len = strlen(w);

	if ((size_t)(j->end - j->p) < len || memcmp(j->p, w, len) != 0)
		return 0;
	j->p += len;
	return 1;
}

/* An object or an array, the opening byte taken. */
static int
json_container(struct json_parser *j, unsigned char close, int object)
{
	int	ok = 1;

	if (++j->depth > JSON_DEPTH_MAX)
		return 0;
	json_space(j);
	if (!json_take(j, close)) {
		do {
			json_space(j);
			if (object) {
				if (!json_string(j))
					return 0;
				json_space(j);
				if (!json_take(j, ':'))
					return 0;
			}
			if (!json_value(j))
				return 0;
			json_space(j);
		} while (json_take(j, ','));
		ok = json_take(j, close);
	}
	j->depth--;
	return ok;
}

static int
json_value(struct json_parser *j)
{
	json_space(j);
	if (j->p == j->end)
		return 0;
	switch (*j->p) {
	case '{':
		j->p++;
		return json_container(j, '}', 1);
	case '[':
		j->p++;
		return json_container(j, ']', 0);
	case '"':
		return json_string(j);
	case 't':
		return json_word(j, "true");
	case 'f':
		return json_word(j, "false");
	case 'n':
		return json_word(j, "null");
	default:
		return json_number(j);
	}
}

/*
 * Whether the UTF-8 text [p, p + len) is exactly one JSON object, with
 * white space around it at most.
 */
int
json_object_valid(const char *p, size_t len)
{
	struct json_parser	j;

	j.p = (const unsigned char *)p;
	j.end = j.p + len;
	j.depth = 0;
	json_space(&j);
	if (j.p == j.end || *j.p != '{' || !json_value(&j))
		return 0;
	json_space(&j);
	return j.p == j.end;
}

/*
 * The raw text of member key's value in the JSON object [p, p + len)
 * (valid: json_object_valid() said so), at its top level: *val and *vlen.
 * Keys are compared as written (a key spelled with escapes is not found).
 * 1 if found, 0 if not.
 */
int
json_object_member(const char *p, size_t len, const char *key,
    const char **val, size_t *vlen)
{
	struct json_parser	 j;
	const unsigned char	*k, *kend, *v;
	size_t			 klen = strlen(key);

	j.p = (const unsigned char *)p;
	j.end = j.p + len;
	j.depth = 1;
	json_space(&j);
	if (!json_take(&j, '{'))
		return 0;
	json_space(&j);
	if (json_take(&j, '}'))
		return 0;
	do {
		json_space(&j);
		k = j.p;
		if (!json_string(&j))
			return 0;
		kend = j.p;
		json_space(&j);
		if (!json_take(&j, ':'))
			return 0;
		json_space(&j);
		v = j.p;
		if (!json_value(&j))
			return 0;
		if ((size_t)(kend - k) == klen + 2 &&
		    memcmp(k + 1, key, klen) == 0) {
			*val = (const char *)v;
			*vlen = (size_t)(j.p - v);
			return 1;
		}
		json_space(&j);
	} while (json_take(&j, ','));
	return 0;
}
