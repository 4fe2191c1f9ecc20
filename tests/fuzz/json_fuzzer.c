/*
 * libFuzzer target for json_object_valid(), the check of a client's text
 * message under virtconsole.v1 (src/json.c).  Beyond "no crash, no read
 * past the input" (ASan), the answer must keep the grammar's promises:
 * white space around a valid object keeps it valid; a valid object starts
 * with '{' and ends with '}' once the white space is trimmed; one more
 * byte that is not white space after it makes it invalid; the object as
 * the value of a member of another object stays valid unless that makes
 * it one level too deep; and the same text in a longer buffer, read with
 * its length, gets the same answer (nothing past len is looked at).
 * json_object_member() on a valid object finds values inside the text
 * that are themselves valid values (as a member of another object).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "virtconsoled.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define CHECK(x) do { if (!(x)) abort(); } while (0)

static int
fz_space(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* The deepest nesting of [ and { outside strings: valid texts only. */
static int
fz_depth(const uint8_t *p, size_t len)
{
	int	d = 0, max = 0, in = 0;
	size_t	i;

	for (i = 0; i < len; i++) {
		if (in) {
			if (p[i] == '\\')
				i++;
			else if (p[i] == '"')
				in = 0;
		} else if (p[i] == '"')
			in = 1;
		else if (p[i] == '{' || p[i] == '[') {
			if (++d > max)
				max = d;
		} else if (p[i] == '}' || p[i] == ']')
			d--;
	}
	return max;
}

/* Each key a virtconsole.v1 message may carry: a value that is valid. */
static void
fz_members(const char *s, size_t len)
{
	static const char *const keys[] = { "type", "cols", "rows", "" };
	const char	*v;
	size_t		 vlen, i;
	char		*obj;

	for (i = 0; i < sizeof keys / sizeof keys[0]; i++) {
		if (!json_object_member(s, len, keys[i], &v, &vlen))
			continue;
		CHECK(v > s && vlen > 0 && v + vlen <= s + len);
		obj = malloc(vlen + 8);
		CHECK(obj != NULL);
		memcpy(obj, "{\"k\":", 5);
		memcpy(obj + 5, v, vlen);
		obj[vlen + 5] = '}';
		CHECK(json_object_valid(obj, vlen + 6));
		free(obj);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	const char	*s = (const char *)data;
	uint8_t		*buf;
	size_t		 a = 0, b = len;
	int		 v;

	v = json_object_valid(s, len);
	if (v)
		fz_members(s, len);
	buf = malloc(len + 16);
	CHECK(buf != NULL);
	memcpy(buf, data, len);
	memcpy(buf + len, "}}]]\"x", 6);
	CHECK(json_object_valid((const char *)buf, len) == v);
	if (v) {
		while (a < b && fz_space(data[a]))
			a++;
		while (b > a && fz_space(data[b - 1]))
			b--;
		CHECK(b - a >= 2 && data[a] == '{' && data[b - 1] == '}');
		buf[0] = ' ';
		memcpy(buf + 1, data, len);
		buf[len + 1] = '\n';
		CHECK(json_object_valid((const char *)buf, len + 2));
		memcpy(buf, data, len);
		buf[len] = 'x';
		CHECK(!json_object_valid((const char *)buf, len + 1));
		free(buf);
		buf = malloc(len + 8);
		CHECK(buf != NULL);
		memcpy(buf, "{\"k\":", 5);
		memcpy(buf + 5, data, len);
		buf[len + 5] = '}';
		CHECK(json_object_valid((const char *)buf, len + 6) ==
		    (fz_depth(data, len) < 32));
	}
	free(buf);
	return 0;
}
