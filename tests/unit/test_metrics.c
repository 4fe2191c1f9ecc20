/*
 * Unit tests of metrics.c's pure parts: notice texts as label values,
 * label value escapes, the parse of /proc/self/stat (command names with
 * spaces and parentheses), and the rendered text's shape: every sample
 * follows its family's HELP and TYPE lines, each family once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "virtconsoled.h"
#include "tap.h"

static void
test_snake(void)
{
	char	out[64];

	metrics_snake("client too slow", out, sizeof out);
	is_str(out, "client_too_slow", "spaces become one '_'");
	metrics_snake("console taken by another client", out, sizeof out);
	is_str(out, "console_taken_by_another_client", "a long reason");
	metrics_snake("CLOSED", out, sizeof out);
	is_str(out, "closed", "upper case becomes lower case");
	metrics_snake("  a -- b  ", out, sizeof out);
	is_str(out, "a_b", "runs of other bytes: one '_', none at the ends");
	metrics_snake("abcdef", out, 4);
	is_str(out, "abc", "cut to the buffer, terminated");
	metrics_snake("ab cd", out, 4);
	is_str(out, "ab", "never a trailing '_' when cut");
	is_int((int)metrics_snake("x", out, 0), 0, "an empty buffer: nothing");
}

static void
test_value(void)
{
	struct evbuffer	*b = evbuffer_new();
	char		 out[64];
	size_t		 n;

	metrics_add_value(b, "a\"b\\c\nd");
	n = evbuffer_remove(b, out, sizeof out - 1);
	out[n] = '\0';
	is_str(out, "\"a\\\"b\\\\c\\nd\"", "quote, backslash and newline "
	    "escaped, value quoted");
	evbuffer_free(b);
}

static void
test_stat(void)
{
	struct metrics_proc	p;
	const char		*line = "4242 (virt ) console(d)) S 1 4242 "
	    "4242 0 -1 4194560 1200 0 3 0 150 75 0 0 20 0 1 0 123456 "
	    "70656000 2048 18446744073709551615 1 1 0 0 0 0 0 4096 0\n";

	ok(metrics_parse_stat(line, &p) == 0, "a command name with spaces "
	    "and parentheses parses");
	ok(p.cpu_ticks == 225 && p.start_ticks == 123456 &&
	    p.vsize == 70656000 && p.rss_pages == 2048,
	    "utime+stime 225, starttime 123456, vsize, rss 2048 pages "
	    "(%llu %llu %llu %llu)", p.cpu_ticks, p.start_ticks, p.vsize,
	    p.rss_pages);
	ok(metrics_parse_stat("4242 no parenthesis S 1", &p) == -1,
	    "no command name: refused");
	ok(metrics_parse_stat("4242 (x) S 1 2", &p) == -1,
	    "cut short: refused");
}

/* Each family once, its HELP then TYPE, then only its own samples. */
static void
test_shape(void)
{
	struct evbuffer	*b = evbuffer_new();
	char		*text, *line, *next, family[128] = "", seen[8192] = " ";
	const char	*sfx;
	size_t		 len;
	int		 bad = 0, families = 0, samples = 0, histogram = 0;

	metrics_count_response(200);
	metrics_count_response(404);
	metrics_count_response(42);	/* not a status code: ignored */
	metrics_render(b);
	len = evbuffer_get_length(b);
	text = malloc(len + 1);
	evbuffer_remove(b, text, len);
	text[len] = '\0';
	ok(strstr(text, "virtconsoled_web_requests_total{code=\"404\"} 1\n")
	    != NULL && strstr(text, "code=\"42\"") == NULL,
	    "responses counted by code; a code out of range is not");
	ok(strstr(text, "guest=") == NULL, "no guest label by default");
	/* Then line by line (each '\n' becomes a '\0'). */
	for (line = text; *line != '\0'; line = next) {
		next = strchr(line, '\n');
		if (next == NULL) {
			bad++;		/* the last line ends too */
			break;
		}
		*next++ = '\0';
		if (strncmp(line, "# HELP ", 7) == 0) {
			sscanf(line + 7, "%127s", family);
			if (strstr(seen, family) != NULL &&
			    strstr(seen, family)[-1] == ' ' &&
			    strstr(seen, family)[strlen(family)] == ' ')
				bad++;
			strncat(seen, family, sizeof seen - strlen(seen) - 2);
			strcat(seen, " ");
			families++;
		} else if (strncmp(line, "# TYPE ", 7) == 0) {
			if (strncmp(line + 7, family, strlen(family)) != 0)
				bad++;
			histogram = strcmp(line + 7 + strlen(family),
			    " histogram") == 0;
		} else {
			/* A histogram's samples: _bucket, _sum, _count. */
			sfx = line + strlen(family);
			if (strncmp(line, family, strlen(family)) == 0 &&
			    histogram && (strncmp(sfx, "_bucket{", 8) == 0 ||
			    strncmp(sfx, "_sum{", 5) == 0 ||
			    strncmp(sfx, "_count{", 7) == 0))
				sfx = strchr(sfx, '{');
			if (strncmp(line, family, strlen(family)) != 0 ||
			    (*sfx != ' ' && *sfx != '{'))
				bad++;
			samples++;
		}
	}
	ok(bad == 0, "every sample under its family's HELP and TYPE, each "
	    "family once (%d bad lines)", bad);
	ok(families >= 18 && samples > families, "%d families, %d samples",
	    families, samples);
	free(text);
	evbuffer_free(b);
}

/* One histogram: cumulative buckets at 2^k us, +Inf the count, the sum. */
static void
test_histogram(void)
{
	struct evbuffer	*b = evbuffer_new();
	struct lat_hist	 h;
	char		*text, want[256];
	const char	*p;
	size_t		 len;
	int		 nb = 0;

	memset(&h, 0, sizeof h);
	lat_add(&h, 900);		/* le 1 us */
	lat_add(&h, 1500);		/* le 2 us */
	lat_add(&h, 1500);
	lat_add(&h, 30000000000ULL);	/* past 16.777216 s */
	metrics_histogram(b, "x_seconds", "wss", "to_client", &h);
	len = evbuffer_get_length(b);
	text = malloc(len + 1);
	evbuffer_remove(b, text, len);
	text[len] = '\0';
	ok(strstr(text, "x_seconds_bucket{door=\"wss\",direction="
	    "\"to_client\",le=\"0.000001\"} 1\n") != NULL,
	    "le=\"0.000001\": 1");
	ok(strstr(text, ",le=\"0.000002\"} 3\n") != NULL,
	    "le=\"0.000002\": 3 (cumulative)");
	ok(strstr(text, ",le=\"16.777216\"} 3\n") != NULL,
	    "le=\"16.777216\": 3");
	ok(strstr(text, ",le=\"+Inf\"} 4\n") != NULL, "le=\"+Inf\": 4");
	(void)snprintf(want, sizeof want, "x_seconds_sum{door=\"wss\","
	    "direction=\"to_client\"} %.9f\n", 30.0000039);
	ok(strstr(text, want) != NULL, "the sum in seconds (%s)", want);
	ok(strstr(text, "x_seconds_count{door=\"wss\",direction="
	    "\"to_client\"} 4\n") != NULL, "the count");
	ok(strstr(text, "_sum{") != NULL && strstr(text, "le=\"+Inf\"") != NULL &&
	    strstr(text, "_sum{") > strstr(text, "le=\"+Inf\""),
	    "_sum and _count follow the buckets");
	for (p = text; (p = strstr(p, "x_seconds_bucket{")) != NULL; p++)
		nb++;
	is_int(nb, LAT_BUCKETS + 1, "26 buckets: 25 bounds and +Inf");
	free(text);
	/* The door alone (virtconsoled_stream_send_seconds). */
	metrics_histogram(b, "y_seconds", "attach", NULL, &h);
	len = evbuffer_get_length(b);
	text = malloc(len + 1);
	evbuffer_remove(b, text, len);
	text[len] = '\0';
	ok(strstr(text, "y_seconds_bucket{door=\"attach\",le=\"0.000001\"} "
	    "1\n") != NULL && strstr(text, "y_seconds_bucket{door=\"attach\","
	    "le=\"+Inf\"} 4\n") != NULL, "door alone: its buckets");
	ok(strstr(text, "y_seconds_count{door=\"attach\"} 4\n") != NULL &&
	    strstr(text, "y_seconds_sum{door=\"attach\"} ") != NULL &&
	    strstr(text, "direction") == NULL,
	    "door alone: _sum and _count, no direction label");
	free(text);
	evbuffer_free(b);
}

int
main(void)
{
	log_init(LOG_TARGET_STDERR, LOG_LEVEL_ERROR, NULL);
	test_snake();
	test_value();
	test_stat();
	test_shape();
	test_histogram();
	return tap_done();
}
