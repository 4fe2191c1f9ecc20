/*
 * Unit tests of the log module: escaping of untrusted bytes, levels, the
 * line format in a log file, reopening for logrotate, and the rate limit
 * of lines that peers can trigger.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "virtconsoled.h"
#include "tap.h"

static char *
slurp(const char *path)
{
	static char	buf[16384];
	FILE		*fp;
	size_t		n;

	buf[0] = '\0';
	if ((fp = fopen(path, "r")) == NULL)
		return buf;
	n = fread(buf, 1, sizeof buf - 1, fp);
	buf[n] = '\0';
	fclose(fp);
	return buf;
}

static void
test_escape(void)
{
	char		buf[32], big[600];
	enum log_level	l;

	log_escape(buf, sizeof buf, "web1", 4);
	is_str(buf, "web1", "plain text is kept");
	log_escape(buf, sizeof buf, "a\033[31mb", 7);
	is_str(buf, "a\\x1b[31mb", "ESC becomes \\x1b");
	log_escape(buf, sizeof buf, "q\"\\\n\r", 5);
	is_str(buf, "q\\x22\\x5c\\x0a\\x0d", "quote, backslash, newlines");
	log_escape(buf, sizeof buf, "a\0b", 3);
	is_str(buf, "a\\x00b", "NUL inside is escaped");
	log_escape(buf, sizeof buf, "\xff\xfe", 2);
	is_str(buf, "\\xff\\xfe", "high bytes are escaped");
	log_escape(buf, 8, "abcdefghijkl", 12);
	is_str(buf, "abcd...", "long input is cut with ...");
	log_escape(buf, 8, "abcdefg", 7);
	ok(strlen(buf) < 8, "never overflows the buffer");
	log_escape(buf, 8, "\x01\x02\x03", 3);
	is_str(buf, "\\x01...", "escapes that do not fit are cut whole");
	memset(big, 'x', sizeof big);
	big[sizeof big - 1] = '\0';
	ok(strlen(log_esc(big)) < LOG_ESC_MAX, "log_esc bounds its output");
	is_str(log_esc(NULL), "(null)", "log_esc(NULL)");
	ok(strcmp(log_esc("one"), log_esc("two")) != 0,
	    "two log_esc values in one call do not clobber each other");

	ok(log_level_parse("debug", &l) == 0 && l == LOG_LEVEL_DEBUG,
	    "parse debug");
	ok(log_level_parse("warn", &l) == 0 && l == LOG_LEVEL_WARN,
	    "parse warn");
	ok(log_level_parse("verbose", &l) == -1, "unknown level refused");
	is_str(log_level_name(LOG_LEVEL_ERROR), "error", "level name");
}

static void
test_file(void)
{
	char	dir[] = "/tmp/vcd-test-log.XXXXXX", path[256], rotated[256];
	char	*s;

	if (mkdtemp(dir) == NULL)
		return;
	snprintf(path, sizeof path, "%s/vcd.log", dir);
	snprintf(rotated, sizeof rotated, "%s/vcd.log.1", dir);
	log_init(LOG_TARGET_FILE, LOG_LEVEL_INFO, path);
	log_info("session 7 guest=%s: hello", log_esc("we\033b1"));
	log_debug("hidden debug line");
	errno = ENOENT;
	log_warn("cannot open %s", "x");
	s = slurp(path);
	ok(strstr(s, "info: session 7 guest=we\\x1bb1: hello\n") != NULL,
	    "info line with escaped field");
	ok(strstr(s, "virtconsoled[") != NULL, "line names the program");
	ok(strstr(s, "hidden debug line") == NULL, "debug filtered at info");
	ok(strstr(s, "warn: cannot open x: No such file or directory") != NULL,
	    "log_warn appends strerror");
	ok(s[0] >= '2' && s[4] == '-' && strchr(s, 'Z') != NULL,
	    "UTC timestamp first");

	log_set_level(LOG_LEVEL_DEBUG);
	log_debug("visible debug line");
	ok(strstr(slurp(path), "debug: visible debug line") != NULL,
	    "level change applies");

	ok(rename(path, rotated) == 0, "rotate the file away");
	ok(log_reopen() == 0, "reopen");
	log_info("after rotation");
	ok(strstr(slurp(path), "after rotation") != NULL,
	    "new lines go to the new file");
	ok(strstr(slurp(rotated), "after rotation") == NULL,
	    "not to the rotated one");
	log_init(LOG_TARGET_STDERR, LOG_LEVEL_INFO, NULL);
	unlink(path);
	unlink(rotated);
	rmdir(dir);
}

static void
test_limit(void)
{
	char			 dir[] = "/tmp/vcd-test-log.XXXXXX", path[256];
	struct log_limit	 l = LOG_LIMIT_INIT("test: refusal", 10, 3);
	int			 i, allowed = 0;

	if (mkdtemp(dir) == NULL)
		return;
	snprintf(path, sizeof path, "%s/vcd.log", dir);
	log_init(LOG_TARGET_FILE, LOG_LEVEL_INFO, path);
	for (i = 0; i < 10; i++)
		allowed += log_limit_allow(&l);
	is_int(allowed, 3, "limit: 3 of 10 lines in one window");
	is_int((int)l.dropped, 7, "limit: 7 counted as left out");
	ok(strstr(slurp(path), "left out") == NULL,
	    "limit: nothing said about them while the window lasts");
	l.start -= 10;		/* the window is over */
	ok(log_limit_allow(&l) == 1, "limit: a new window allows again");
	ok(strstr(slurp(path),
	    "warn: test: refusal: 7 lines left out in the last 10s\n") != NULL,
	    "limit: the count is logged when the window ends");
	is_int((int)l.dropped, 0, "limit: the count starts again");
	l.start -= 10;
	log_limit_allow(&l);
	ok(strstr(strstr(slurp(path), "left out") + 1, "left out") == NULL,
	    "limit: no count line for a window without drops");
	log_init(LOG_TARGET_STDERR, LOG_LEVEL_INFO, NULL);
	unlink(path);
	rmdir(dir);
}

int
main(void)
{
	log_init(LOG_TARGET_STDERR, LOG_LEVEL_INFO, NULL);
	test_escape();
	test_file();
	test_limit();
	return tap_done();
}
