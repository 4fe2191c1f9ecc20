/*
 * The one log module.  In the foreground (-d) lines go to stderr; a daemon
 * logs to syslog, or to log_file when one is configured.  Messages are a
 * short object id followed by key=value fields; anything that came from a
 * client, a guest or a file goes through log_esc() first, so that terminal
 * escapes and newlines never reach a log line raw.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "virtconsoled.h"

static enum log_target	 log_target = LOG_TARGET_STDERR;
static enum log_level	 log_level = LOG_LEVEL_INFO;
static char		*log_path;
static FILE		*log_fp;
static int		 log_echo;	/* warnings to stderr too */

static const char *const log_level_names[] = {
	[LOG_LEVEL_ERROR] = "error",
	[LOG_LEVEL_WARN] = "warn",
	[LOG_LEVEL_INFO] = "info",
	[LOG_LEVEL_DEBUG] = "debug",
};

static const int log_syslog_prio[] = {
	[LOG_LEVEL_ERROR] = LOG_ERR,
	[LOG_LEVEL_WARN] = LOG_WARNING,
	[LOG_LEVEL_INFO] = LOG_INFO,
	[LOG_LEVEL_DEBUG] = LOG_DEBUG,
};

const char *
log_level_name(enum log_level level)
{
	if ((unsigned)level > LOG_LEVEL_DEBUG)
		return "unknown";
	return log_level_names[level];
}

int
log_level_parse(const char *s, enum log_level *out)
{
	unsigned int	i;

	for (i = 0; i <= LOG_LEVEL_DEBUG; i++) {
		if (strcmp(s, log_level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

/*
 * Switch the log target.  For LOG_TARGET_FILE the file is opened in append
 * mode; if that fails, -1 comes back and logging stays where it was.
 */
int
log_init(enum log_target target, enum log_level level, const char *path)
{
	char	*old_path = log_path;

	if (target == LOG_TARGET_FILE && path == NULL)
		return -1;
	if (target == LOG_TARGET_FILE) {
		log_path = xstrdup(path);
		if (log_reopen() == -1) {
			free(log_path);
			log_path = old_path;
			return -1;
		}
		free(old_path);
	} else {
		if (log_fp != NULL) {
			fclose(log_fp);
			log_fp = NULL;
		}
		free(log_path);
		log_path = NULL;
	}
	log_level = level;
	if (target == LOG_TARGET_SYSLOG)
		openlog("virtconsoled", LOG_PID | LOG_NDELAY, LOG_DAEMON);
	log_target = target;
	return 0;
}

/* Reopen log_file, for logrotate.  Keeps the old stream on failure. */
int
log_reopen(void)
{
	FILE	*fp;
	int	 fd;

	if (log_path == NULL)
		return 0;
	/* Never through a link: a log directory may be writable by others. */
	fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC |
	    O_NOFOLLOW | O_NOCTTY, 0640);
	if (fd == -1)
		return -1;
	if ((fp = fdopen(fd, "a")) == NULL) {
		close(fd);
		return -1;
	}
	setvbuf(fp, NULL, _IOLBF, 0);
	if (log_fp != NULL)
		fclose(log_fp);
	log_fp = fp;
	return 0;
}

/*
 * While a daemon starts, its warnings and errors also go to the terminal
 * that started it, so that a refusal is seen where the command was typed.
 */
void
log_stderr_echo(int on)
{
	log_echo = on;
}

void
log_set_level(enum log_level level)
{
	log_level = level;
}

enum log_level
log_get_level(void)
{
	return log_level;
}

/*
 * Escape untrusted bytes into dst (always NUL-terminated): printable ASCII
 * except backslash and double quote is kept, the rest becomes \xNN, and
 * output is cut with "..." when it does not fit.  Returns the length.
 */
size_t
log_escape(char *dst, size_t dstlen, const void *src, size_t len)
{
	const unsigned char	*p = src;
	size_t			 i, o = 0, need;
	int			 plain;

	if (dstlen == 0)
		return 0;
	for (i = 0; i < len; i++) {
		plain = p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\\' &&
		    p[i] != '"';
		need = plain ? 1 : 4;
		/* Always keep room for "..." and the terminating NUL. */
		if (o + need + 3 + 1 > dstlen)
			break;
		if (plain)
			dst[o++] = (char)p[i];
		else
			o += (size_t)snprintf(dst + o, dstlen - o, "\\x%02x",
			    p[i]);
	}
	if (i < len && o + 3 + 1 <= dstlen) {
		memcpy(dst + o, "...", 3);
		o += 3;
	}
	dst[o] = '\0';
	return o;
}

/*
 * log_esc() returns one of a few rotating static buffers so that several
 * escaped values can appear in one log call.  The loop's thread only: code
 * that may run on a guest connection's thread (hv.c) escapes into its own
 * buffer with log_escape().
 */
#define LOG_ESC_SLOTS 8
const char *
log_esc_len(const void *src, size_t len)
{
	static char	 bufs[LOG_ESC_SLOTS][LOG_ESC_MAX];
	static unsigned	 slot;
	char		*b;

	if (src == NULL)
		return "(null)";
	b = bufs[slot++ % LOG_ESC_SLOTS];
	log_escape(b, LOG_ESC_MAX, src, len);
	return b;
}

/*
 * 1 if a rate-limited line may be logged now.  When a window ends with
 * lines left out, their count is logged first.
 */
int
log_limit_allow(struct log_limit *l)
{
	time_t	now = time(NULL);

	if (now - l->start >= l->window) {
		if (l->dropped > 0)
			log_warnx("%s: %u lines left out in the last %ds",
			    l->what, l->dropped, l->window);
		l->start = now;
		l->count = l->dropped = 0;
	}
	if (l->count++ < l->burst)
		return 1;
	l->dropped++;
	return 0;
}

const char *
log_esc(const char *s)
{
	if (s == NULL)
		return "(null)";
	return log_esc_len(s, strlen(s));
}

void
log_vmsg(enum log_level level, int errnum, const char *fmt, va_list ap)
{
	char		 msg[2048], ts[64];
	struct timespec	 now;
	struct tm	 tm;
	int		 saved = errno;
	size_t		 n;

	if (level > log_level)
		return;
	vsnprintf(msg, sizeof msg, fmt, ap);
	if (errnum != 0) {
		n = strlen(msg);
		snprintf(msg + n, sizeof msg - n, ": %s", strerror(errnum));
	}
	switch (log_target) {
	case LOG_TARGET_SYSLOG:
		syslog(log_syslog_prio[level], "%s", msg);
		break;
	case LOG_TARGET_FILE:
	case LOG_TARGET_STDERR:
		clock_gettime(CLOCK_REALTIME, &now);
		gmtime_r(&now.tv_sec, &tm);
		n = strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
		snprintf(ts + n, sizeof ts - n, ".%03ldZ",
		    now.tv_nsec / 1000000);
		fprintf(log_target == LOG_TARGET_FILE && log_fp != NULL ?
		    log_fp : stderr, "%s virtconsoled[%ld]: %s: %s\n", ts,
		    (long)getpid(), log_level_names[level], msg);
		break;
	}
	if (log_echo && log_target != LOG_TARGET_STDERR &&
	    level <= LOG_LEVEL_WARN)
		fprintf(stderr, "virtconsoled: %s\n", msg);
	errno = saved;
}

#define LOG_FN(name, level, errnum)				\
void								\
name(const char *fmt, ...)					\
{								\
	va_list	ap;						\
	int	e = errno;					\
								\
	va_start(ap, fmt);					\
	log_vmsg(level, errnum, fmt, ap);			\
	va_end(ap);						\
	errno = e;						\
}
LOG_FN(log_error, LOG_LEVEL_ERROR, 0)
LOG_FN(log_warn, LOG_LEVEL_WARN, e)
LOG_FN(log_warnx, LOG_LEVEL_WARN, 0)
LOG_FN(log_info, LOG_LEVEL_INFO, 0)
LOG_FN(log_debug, LOG_LEVEL_DEBUG, 0)

/* fatal() and fatalx() are for start-up errors and broken invariants only. */
void
fatal(const char *fmt, ...)
{
	va_list	ap;
	int	e = errno;

	va_start(ap, fmt);
	log_vmsg(LOG_LEVEL_ERROR, e, fmt, ap);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	log_vmsg(LOG_LEVEL_ERROR, 0, fmt, ap);
	va_end(ap);
	exit(1);
}
