/*
 * The daemon's counters and gauges in Prometheus's text exposition format
 * (0.0.4), for the metrics door (web.c, metrics_listen) and the control
 * socket's `metrics` command (control.c).  This module only reads: the
 * modules below keep their own counts (session_counters(),
 * console_states(), guest_list(), ...).  The one count kept here is the
 * web door's responses by status code, because web.c sits above.
 *
 * No label takes an unbounded value: doors, roles, directions, reasons
 * and states are fixed sets, status codes are the few the daemon sends.
 * Guest and console names appear only with metrics_guest_labels = yes.
 * docs/OPERATIONS.md lists every family.
 */
#include <sys/resource.h>
#include <sys/types.h>

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "virtconsoled.h"

#define METRICS_CODE_MIN	100
#define METRICS_CODE_MAX	599

static struct {
	int		 guest_labels;
	uint64_t	 responses[METRICS_CODE_MAX - METRICS_CODE_MIN + 1];
} met;

void
metrics_reconfigure(const struct config *conf)
{
	met.guest_labels = conf->metrics_guest_labels;
}

/* The web door answered with this status code (web.c, every response). */
void
metrics_count_response(int code)
{
	if (code >= METRICS_CODE_MIN && code <= METRICS_CODE_MAX)
		met.responses[code - METRICS_CODE_MIN]++;
}

/*
 * A notice text as a label value: "client too slow" -> client_too_slow
 * (lower case letters and digits, one '_' for each run of anything else).
 */
size_t
metrics_snake(const char *text, char *out, size_t len)
{
	size_t	n = 0;
	int	gap = 0;

	if (len == 0)
		return 0;
	for (; *text != '\0' && n + 1 < len; text++) {
		if (isalnum((unsigned char)*text)) {
			if (gap && n > 0) {
				if (n + 2 >= len)
					break;	/* no room for '_' and more */
				out[n++] = '_';
			}
			gap = 0;
			out[n++] = (char)tolower((unsigned char)*text);
		} else
			gap = 1;
	}
	out[n] = '\0';
	return n;
}

/* A label value, quoted, with \\, \" and \n escaped as the format asks. */
void
metrics_add_value(struct evbuffer *b, const char *v)
{
	const char	*p;

	evbuffer_add(b, "\"", 1);
	for (p = v; *p != '\0'; p++) {
		if (*p == '\\')
			evbuffer_add(b, "\\\\", 2);
		else if (*p == '"')
			evbuffer_add(b, "\\\"", 2);
		else if (*p == '\n')
			evbuffer_add(b, "\\n", 2);
		else
			evbuffer_add(b, p, 1);
	}
	evbuffer_add(b, "\"", 1);
}

static void
metrics_family(struct evbuffer *b, const char *name, const char *type,
    const char *help)
{
	evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help,
	    name, type);
}

static void
metrics_u64(struct evbuffer *b, const char *name, uint64_t v)
{
	evbuffer_add_printf(b, "%s %llu\n", name, (unsigned long long)v);
}

/* name{label="value"} v */
static void
metrics_u64_1(struct evbuffer *b, const char *name, const char *label,
    const char *value, uint64_t v)
{
	evbuffer_add_printf(b, "%s{%s=", name, label);
	metrics_add_value(b, value);
	evbuffer_add_printf(b, "} %llu\n", (unsigned long long)v);
}

/* name{l1="v1",l2="v2"} v */
static void
metrics_u64_2(struct evbuffer *b, const char *name, const char *l1,
    const char *v1, const char *l2, const char *v2, uint64_t v)
{
	evbuffer_add_printf(b, "%s{%s=", name, l1);
	metrics_add_value(b, v1);
	evbuffer_add_printf(b, ",%s=", l2);
	metrics_add_value(b, v2);
	evbuffer_add_printf(b, "} %llu\n", (unsigned long long)v);
}

/*
 * The fields of /proc/self/stat after the command name (which may hold
 * spaces and parentheses: the last ')' ends it).  0 on success.
 */
int
metrics_parse_stat(const char *line, struct metrics_proc *p)
{
	const char		*s;
	char			*end;
	unsigned long long	 v[22];
	int			 i;

	if ((s = strrchr(line, ')')) == NULL)
		return -1;
	/*
	 * Fields 3 on: state ppid pgrp session tty_nr tpgid flags minflt
	 * cminflt majflt cmajflt utime(14) stime(15) cutime cstime priority
	 * nice num_threads itrealvalue starttime(22) vsize(23) rss(24).
	 * The state is a letter; tty_nr, cutime... may be negative: only
	 * the ones kept must be numbers >= 0.
	 */
	s++;
	for (i = 0; i < 22; i++) {
		while (*s == ' ')
			s++;
		if (*s == '\0' || *s == '\n')
			return -1;
		v[i] = 0;
		if (i > 0) {
			errno = 0;
			if (*s == '-')
				(void)strtoll(s, &end, 10);
			else
				v[i] = strtoull(s, &end, 10);
			if (end == s || errno != 0 || (*end != ' ' &&
			    *end != '\n' && *end != '\0'))
				return -1;
			s = end;
		} else
			while (*s != ' ' && *s != '\0')
				s++;
	}
	p->cpu_ticks = v[11] + v[12];
	p->start_ticks = v[19];
	p->vsize = v[20];
	p->rss_pages = v[21];
	return 0;
}

/* The boot time, from /proc/stat's btime; 0 if unknown. */
static unsigned long long
metrics_boot_time(void)
{
	FILE			*f;
	char			 line[256];
	unsigned long long	 btime = 0;

	if ((f = fopen("/proc/stat", "re")) == NULL)
		return 0;
	while (fgets(line, sizeof line, f) != NULL) {
		if (strncmp(line, "btime ", 6) == 0) {
			btime = strtoull(line + 6, NULL, 10);
			break;
		}
	}
	fclose(f);
	return btime;
}

/* Descriptors open now, not counting the one that reads the list. */
static long
metrics_open_fds(void)
{
	DIR		*d;
	struct dirent	*e;
	long		 n = 0;
	int		 self;

	if ((d = opendir("/proc/self/fd")) == NULL)
		return -1;
	self = dirfd(d);
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.' || strtol(e->d_name, NULL, 10) == self)
			continue;
		n++;
	}
	closedir(d);
	return n;
}

/* The standard process_* families, as Prometheus's client libraries. */
static void
metrics_process(struct evbuffer *b)
{
	struct metrics_proc	 p = { 0, 0, 0, 0 };
	struct rlimit		 rl;
	FILE			*f;
	char			 line[1024];
	long			 hz = sysconf(_SC_CLK_TCK);
	long			 page = sysconf(_SC_PAGESIZE);
	long			 fds;
	int			 ok = 0;

	if ((f = fopen("/proc/self/stat", "re")) != NULL) {
		ok = fgets(line, sizeof line, f) != NULL &&
		    metrics_parse_stat(line, &p) == 0;
		fclose(f);
	}
	if (ok && hz > 0 && page > 0) {
		metrics_family(b, "process_cpu_seconds_total", "counter",
		    "User and system CPU time spent in seconds.");
		evbuffer_add_printf(b, "process_cpu_seconds_total %.2f\n",
		    (double)p.cpu_ticks / (double)hz);
		metrics_family(b, "process_resident_memory_bytes", "gauge",
		    "Resident memory size in bytes.");
		metrics_u64(b, "process_resident_memory_bytes",
		    (uint64_t)p.rss_pages * (uint64_t)page);
		metrics_family(b, "process_virtual_memory_bytes", "gauge",
		    "Virtual memory size in bytes.");
		metrics_u64(b, "process_virtual_memory_bytes", p.vsize);
		metrics_family(b, "process_start_time_seconds", "gauge",
		    "Start time of the process since the Unix epoch in "
		    "seconds.");
		evbuffer_add_printf(b, "process_start_time_seconds %.2f\n",
		    (double)metrics_boot_time() +
		    (double)p.start_ticks / (double)hz);
	}
	if ((fds = metrics_open_fds()) >= 0) {
		metrics_family(b, "process_open_fds", "gauge",
		    "Number of open file descriptors.");
		metrics_u64(b, "process_open_fds", (uint64_t)fds);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		metrics_family(b, "process_max_fds", "gauge",
		    "Maximum number of open file descriptors.");
		metrics_u64(b, "process_max_fds", rl.rlim_cur ==
		    RLIM_INFINITY ? UINT64_MAX : (uint64_t)rl.rlim_cur);
	}
}

/* Sessions and history per guest console: metrics_guest_labels only. */
static void
metrics_guests(struct evbuffer *b)
{
	struct guest		*g;
	const struct history	*h;
	size_t			 i;
	int			 role;
	unsigned int		 n;

	metrics_family(b, "virtconsoled_console_sessions", "gauge",
	    "Sessions in the table by guest console and role.");
	TAILQ_FOREACH(g, guest_list(), entry) {
		for (i = 0; i < g->naliases; i++) {
			for (role = 0; role < 2; role++) {
				n = role == 0 ? (unsigned int)session_busy(
				    g, g->aliases[i]) :
				    session_viewers(g, g->aliases[i]);
				evbuffer_add_printf(b, "virtconsoled_console_"
				    "sessions{hypervisor=\"%s\",guest=",
				    guest_hv_name(g));
				metrics_add_value(b, g->name);
				evbuffer_add_printf(b, ",console=");
				metrics_add_value(b, g->aliases[i]);
				evbuffer_add_printf(b, ",role=\"%s\"} %u\n",
				    session_role_name(role == 0 ?
				    SESSION_WRITER : SESSION_VIEWER), n);
			}
		}
	}
	metrics_family(b, "virtconsoled_console_history_bytes", "gauge",
	    "Bytes of output held in the history by guest console.");
	TAILQ_FOREACH(g, guest_list(), entry) {
		for (i = 0; i < g->naliases; i++) {
			if ((h = console_history(g,
			    g->aliases[i])) == NULL)
				continue;
			evbuffer_add_printf(b, "virtconsoled_console_history_"
			    "bytes{hypervisor=\"%s\",guest=", guest_hv_name(g));
			metrics_add_value(b, g->name);
			evbuffer_add_printf(b, ",console=");
			metrics_add_value(b, g->aliases[i]);
			evbuffer_add_printf(b, "} %zu\n", history_held(h));
		}
	}
}

/*
 * `NAME_SUFFIX{door="..",direction=".."` (no direction when dir is NULL):
 * the caller ends the labels.
 */
static void
metrics_series(struct evbuffer *b, const char *name, const char *suffix,
    const char *door, const char *dir)
{
	evbuffer_add_printf(b, "%s%s{door=", name, suffix);
	metrics_add_value(b, door);
	if (dir == NULL)
		return;
	evbuffer_add_printf(b, ",direction=");
	metrics_add_value(b, dir);
}

/*
 * One histogram of times, labelled door and direction (dir NULL: door
 * alone): cumulative buckets
 * `le` = 2^k us in seconds ("0.000001" .. "16.777216"), "+Inf", then
 * _sum in seconds and _count.
 */
void
metrics_histogram(struct evbuffer *b, const char *name, const char *door,
    const char *dir, const struct lat_hist *h)
{
	uint64_t	cum = 0;
	unsigned int	k;

	for (k = 0; k <= LAT_BUCKETS; k++) {
		cum += h->bucket[k];
		metrics_series(b, name, "_bucket", door, dir);
		if (k < LAT_BUCKETS)
			evbuffer_add_printf(b, ",le=\"%.6f\"} %llu\n",
			    lat_bound(k), (unsigned long long)cum);
		else
			evbuffer_add_printf(b, ",le=\"+Inf\"} %llu\n",
			    (unsigned long long)cum);
	}
	metrics_series(b, name, "_sum", door, dir);
	evbuffer_add_printf(b, "} %.9f\n", (double)h->sum_ns / 1e9);
	metrics_series(b, name, "_count", door, dir);
	evbuffer_add_printf(b, "} %llu\n", (unsigned long long)h->count);
}

static const char *const metrics_dirs[SESSION_NDIRS] = {
	[SESSION_TO_CLIENT] = "to_client",
	[SESSION_TO_GUEST] = "to_guest",
};

/* A quantile for `stats`: seconds, or null/"-" while there is none. */
static void
metrics_stats_q(struct evbuffer *b, double q, int json)
{
	if (isnan(q))
		evbuffer_add_printf(b, json ? "null" : "%10s", "-");
	else if (isinf(q))
		evbuffer_add_printf(b, json ? "null" : "%10s", "+Inf");
	else
		evbuffer_add_printf(b, json ? "%.6f" : "%10.6f", q);
}

/*
 * One histogram of `stats`: its row (door, then the direction or the call
 * it times), or with json its object, with the buckets (not cumulative,
 * the last one past 16.777216 s).
 */
static void
metrics_stats_hist(struct evbuffer *b, int json, int first, const char *door,
    const char *key, const char *what, const struct lat_hist *h)
{
	unsigned int	k;

	if (json)
		evbuffer_add_printf(b, "%s{\"door\":\"%s\",\"%s\":\"%s\","
		    "\"count\":%llu,\"sum_seconds\":%.9f,\"p50_seconds\":",
		    first ? "" : ",", door, key, what,
		    (unsigned long long)h->count,
		    (double)h->sum_ns / 1e9);
	else
		evbuffer_add_printf(b, "%-7s %-13s %10llu ", door, what,
		    (unsigned long long)h->count);
	metrics_stats_q(b, lat_quantile(h, 0.5), json);
	evbuffer_add_printf(b, json ? ",\"p99_seconds\":" : " ");
	metrics_stats_q(b, lat_quantile(h, 0.99), json);
	if (!json) {
		evbuffer_add_printf(b, " ");
		metrics_stats_q(b, h->count == 0 ? NAN :
		    (double)h->sum_ns / 1e9 / (double)h->count, 0);
		evbuffer_add_printf(b, "\n");
		return;
	}
	evbuffer_add_printf(b, ",\"buckets\":[");
	for (k = 0; k <= LAT_BUCKETS; k++)
		evbuffer_add_printf(b, "%s%llu", k > 0 ? "," : "",
		    (unsigned long long)h->bucket[k]);
	evbuffer_add_printf(b, "]}");
}

/* A table's header line (after sep), or with json the array's opening. */
static void
metrics_stats_head(struct evbuffer *b, int json, const char *open,
    const char *sep, const char *what, const char *count)
{
	if (json)
		evbuffer_add_printf(b, "%s", open);
	else
		evbuffer_add_printf(b, "%s%-7s %-13s %10s %10s %10s %10s\n",
		    sep, "DOOR", what, count, "P50_S", "P99_S", "MEAN_S");
}

/*
 * `virtconsolectl stats`: residence time by door and direction, p50 and
 * p99 (the upper bound of the bucket holding them: the time is at most
 * that), the mean; then, by door, the part of to_guest that is the
 * virStreamSend() calls alone (each packet's call).  Percentiles are per
 * direction, never summed.
 */
void
metrics_stats(struct evbuffer *b, int json)
{
	struct session_counters	 sc;
	unsigned int		 d, r;

	session_counters(&sc);
	metrics_stats_head(b, json, "{\"forward\":[", "", "DIRECTION",
	    "CHUNKS");
	for (d = 0; d < SESSION_NDOORS; d++)
		for (r = 0; r < SESSION_NDIRS; r++)
			metrics_stats_hist(b, json, d + r == 0,
			    session_door_name(d), "direction",
			    metrics_dirs[r], &sc.forward[d][r]);
	metrics_stats_head(b, json, "],\"send_call\":[", "\n", "CALL",
	    "CALLS");
	for (d = 0; d < SESSION_NDOORS; d++)
		metrics_stats_hist(b, json, d == 0, session_door_name(d),
		    "call", "virStreamSend", &sc.send_call[d]);
	if (json)
		evbuffer_add_printf(b, "],\"bucket_bounds_seconds\":"
		    "\"2^k us, k = 0..%d, then +Inf\"}\n", LAT_BUCKETS - 1);
}

/* The whole exposition, appended to b. */
void
metrics_render(struct evbuffer *b)
{
	struct session_counters	 sc;
	struct guest		*g;
	struct hv		*hv;
	unsigned int		 cs[CONSOLE_NSTATES], running, stopped;
	char			 name[64], code[8];
	int			 i, d, r;

	session_counters(&sc);

	metrics_family(b, "virtconsoled_build_info", "gauge",
	    "The daemon's version; always 1.");
	metrics_u64_1(b, "virtconsoled_build_info", "version",
	    PACKAGE_VERSION, 1);

	metrics_family(b, "virtconsoled_hypervisor_up", "gauge",
	    "1 when the libvirt connection to the hypervisor is up.");
	for (hv = hv_next(NULL); hv != NULL; hv = hv_next(hv))
		metrics_u64_1(b, "virtconsoled_hypervisor_up", "hypervisor",
		    hv_name(hv), hv_state(hv) == HV_CONNECTED);

	metrics_family(b, "virtconsoled_guests", "gauge",
	    "Guests known, running (or paused) or stopped.");
	for (hv = hv_next(NULL); hv != NULL; hv = hv_next(hv)) {
		running = stopped = 0;
		TAILQ_FOREACH(g, guest_list(), entry) {
			if (g->hv != hv)
				continue;
			if (g->active)
				running++;
			else
				stopped++;
		}
		metrics_u64_2(b, "virtconsoled_guests", "hypervisor",
		    hv_name(hv), "state", "running", running);
		metrics_u64_2(b, "virtconsoled_guests", "hypervisor",
		    hv_name(hv), "state", "stopped", stopped);
	}

	metrics_family(b, "virtconsoled_consoles", "gauge",
	    "Console objects (held for a client or captured) by state.");
	for (hv = hv_next(NULL); hv != NULL; hv = hv_next(hv)) {
		console_states(hv_name(hv), cs);
		for (i = 0; i < CONSOLE_DEAD; i++) {
			(void)metrics_snake(fsm_state_name(&console_fsm, i),
			    name, sizeof name);
			metrics_u64_2(b, "virtconsoled_consoles", "hypervisor",
			    hv_name(hv), "state", name, cs[i]);
		}
	}

	metrics_family(b, "virtconsoled_sessions", "gauge",
	    "Sessions in the table now, by front door and role.");
	for (d = 0; d < SESSION_NDOORS; d++)
		for (r = 0; r < 2; r++)
			metrics_u64_2(b, "virtconsoled_sessions", "door",
			    session_door_name(d), "role", session_role_name(
			    r == 0 ? SESSION_WRITER : SESSION_VIEWER),
			    sc.live[d][r]);

	metrics_family(b, "virtconsoled_sessions_started_total", "counter",
	    "Sessions started, by front door.");
	for (d = 0; d < SESSION_NDOORS; d++)
		metrics_u64_1(b, "virtconsoled_sessions_started_total",
		    "door", session_door_name(d), sc.started[d]);

	metrics_family(b, "virtconsoled_sessions_ended_total", "counter",
	    "Sessions ended (not refused), by reason.");
	for (i = REASON_NONE + 1; i < REASON_MAX; i++) {
		if (session_reason_refused(i) == 1)
			continue;
		(void)metrics_snake(session_reason_text(i), name,
		    sizeof name);
		metrics_u64_1(b, "virtconsoled_sessions_ended_total",
		    "reason", name, sc.ended[i]);
	}

	metrics_family(b, "virtconsoled_refusals_total", "counter",
	    "Clients refused a console, by reason.");
	for (i = REASON_NONE + 1; i < REASON_MAX; i++) {
		if (session_reason_refused(i) != 1)
			continue;
		(void)metrics_snake(session_reason_text(i), name,
		    sizeof name);
		metrics_u64_1(b, "virtconsoled_refusals_total", "reason",
		    name, sc.refused[i]);
	}

	metrics_family(b, "virtconsoled_bytes_total", "counter",
	    "Console bytes moved, by front door and direction.");
	for (d = 0; d < SESSION_NDOORS; d++) {
		metrics_u64_2(b, "virtconsoled_bytes_total", "door",
		    session_door_name(d), "direction", "to_guest",
		    sc.to_guest[d]);
		metrics_u64_2(b, "virtconsoled_bytes_total", "door",
		    session_door_name(d), "direction", "to_client",
		    sc.to_client[d]);
	}

	metrics_family(b, "virtconsoled_forward_seconds", "histogram",
	    "Residence time of console bytes in the daemon, by front door "
	    "and direction: to_client from the stream read to the client "
	    "socket's write, to_guest from the client read to "
	    "virStreamSend().");
	for (d = 0; d < SESSION_NDOORS; d++)
		for (r = 0; r < SESSION_NDIRS; r++)
			metrics_histogram(b, "virtconsoled_forward_seconds",
			    session_door_name(d), metrics_dirs[r],
			    &sc.forward[d][r]);
	metrics_family(b, "virtconsoled_stream_send_seconds", "histogram",
	    "Time libvirt's virStreamSend() took per packet to a guest, by "
	    "front door of the client whose input it carried: the part of "
	    "virtconsoled_forward_seconds{direction=\"to_guest\"} spent in "
	    "libvirt's client.");
	for (d = 0; d < SESSION_NDOORS; d++)
		metrics_histogram(b, "virtconsoled_stream_send_seconds",
		    session_door_name(d), NULL, &sc.send_call[d]);

	metrics_family(b, "virtconsoled_bytes_dropped_total", "counter",
	    "Guest output dropped for clients too slow to read it.");
	for (d = 0; d < SESSION_NDOORS; d++)
		metrics_u64_1(b, "virtconsoled_bytes_dropped_total", "door",
		    session_door_name(d), sc.dropped[d]);

	metrics_family(b, "virtconsoled_web_requests_total", "counter",
	    "HTTP responses of the web and metrics doors, by status code.");
	for (i = METRICS_CODE_MIN; i <= METRICS_CODE_MAX; i++) {
		if (met.responses[i - METRICS_CODE_MIN] == 0)
			continue;
		snprintf(code, sizeof code, "%d", i);
		metrics_u64_1(b, "virtconsoled_web_requests_total", "code",
		    code, met.responses[i - METRICS_CODE_MIN]);
	}

	metrics_family(b, "virtconsoled_history_bytes", "gauge",
	    "Bytes of console output held in the histories.");
	metrics_u64(b, "virtconsoled_history_bytes", console_history_held());

	metrics_family(b, "virtconsoled_state_errors_total", "counter",
	    "Illegal state transitions refused; anything but 0 is a bug.");
	metrics_u64(b, "virtconsoled_state_errors_total", fsm_state_errors());

	metrics_family(b, "virtconsoled_console_log_errors_total", "counter",
	    "Console log writes, opens and rotations that failed.");
	metrics_u64(b, "virtconsoled_console_log_errors_total", clog_errors());
	metrics_family(b, "virtconsoled_recording_errors_total", "counter",
	    "Recordings that could not be created or stopped on a failed write.");
	metrics_u64(b, "virtconsoled_recording_errors_total", rec_errors());

	if (met.guest_labels)
		metrics_guests(b);
	metrics_process(b);
}
