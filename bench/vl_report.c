/*
 * vcdload's output: the ready and done files, and the JSON report on
 * stdout with the statistics it is made of.
 */
#include <sys/resource.h>
#include <sys/time.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vcdload.h"

/* The percentiles of n sorted values, as a JSON object. */
static void
json_pct(struct evbuffer *b, const uint32_t *v, size_t n)
{
	static const size_t	 ps[] = { 50, 90, 99 };
	static const char	*names[] = { "p50", "p90", "p99" };
	double			 sum = 0;
	size_t			 i, k;

	if (n == 0) {
		evbuffer_add_printf(b, "{\"count\":0,\"min\":null,\"p50\":null,"
		    "\"p90\":null,\"p99\":null,\"max\":null,\"mean\":null}");
		return;
	}
	for (i = 0; i < n; i++)
		sum += v[i];
	evbuffer_add_printf(b, "{\"count\":%zu,\"min\":%u", n, v[0]);
	for (i = 0; i < 3; i++) {
		/* Nearest rank: the smallest value with p% at or below it. */
		k = (ps[i] * n + 99) / 100;
		evbuffer_add_printf(b, ",\"%s\":%u", names[i], v[k - 1]);
	}
	evbuffer_add_printf(b, ",\"max\":%u,\"mean\":%.1f}", v[n - 1],
	    sum / (double)n);
}

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t	x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static void
u32_sort(uint32_t *v, size_t n)
{
	if (n > 1)
		qsort(v, n, sizeof *v, cmp_u32);
}

void
u32_push(uint32_t **v, size_t *n, size_t *size, uint32_t x)
{
	if (*n == *size) {
		*size = *size ? *size * 2 : 64;
		*v = xrealloc(*v, *size * sizeof **v);
	}
	(*v)[(*n)++] = x;
}

uint32_t
us_between(int64_t a, int64_t b)
{
	int64_t	d = (b - a) / 1000;

	if (d < 0)
		return 0;
	return d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
}

static void
write_file(const char *path, const char *text)
{
	char	*tmp;
	FILE	*fp;

	xasprintf(&tmp, "%s.tmp%ld", path, (long)getpid());
	if ((fp = fopen(tmp, "w")) == NULL) {
		log_warn("cannot write %s", tmp);
		free(tmp);
		return;
	}
	fputs(text, fp);
	if (fclose(fp) != 0 || rename(tmp, path) == -1)
		log_warn("cannot write %s", path);
	free(tmp);
}

void
write_state_file(const char *path, const char *what)
{
	char	*text;
	size_t	 i, ready = 0;

	if (path == NULL)
		return;
	for (i = 0; i < run.n; i++)
		ready += run.s[i].ready && run.s[i].state != ST_DONE;
	xasprintf(&text, "{\"pid\":%ld,\"state\":\"%s\",\"sessions\":%zu,"
	    "\"open\":%zu}\n", (long)getpid(), what, run.n, ready);
	write_file(path, text);
	free(text);
}

static void
json_key(struct evbuffer *b, const char *k)
{
	json_add_string(b, k);
	evbuffer_add(b, ":", 1);
}

static void
json_str_or_null(struct evbuffer *b, const char *v)
{
	if (v == NULL)
		evbuffer_add_printf(b, "null");
	else
		json_add_string(b, v);
}

static void
report_session(struct evbuffer *b, struct sess *s)
{
	uint32_t	*v;
	double		 test_s = (double)(run.t_test1 - run.t_test0) / NS;

	evbuffer_add_printf(b, "{\"id\":%u,", s->id);
	json_key(b, "target");
	json_add_string(b, s->t.shown);
	evbuffer_add_printf(b, ",\"attached\":%s,\"ready\":%s,",
	    s->attached ? "true" : "false", s->ready ? "true" : "false");
	if (s->attached)
		evbuffer_add_printf(b, "\"attach_us\":%u,",
		    us_between(s->t_start, s->t_attached));
	else
		evbuffer_add_printf(b, "\"attach_us\":null,");
	if (s->ready)
		evbuffer_add_printf(b, "\"ready_us\":%u,",
		    us_between(s->t_start, s->t_ready));
	else
		evbuffer_add_printf(b, "\"ready_us\":null,");
	v = xmalloc((s->nrtt ? s->nrtt : 1) * sizeof *v);
	if (s->nrtt)
		memcpy(v, s->rtt, s->nrtt * sizeof *v);
	u32_sort(v, s->nrtt);
	evbuffer_add_printf(b, "\"rtt_us\":");
	json_pct(b, v, s->nrtt);
	free(v);
	evbuffer_add_printf(b, ",\"sent\":%llu,\"echoed\":%llu,"
	    "\"timeouts\":%llu,\"stray\":%llu,\"bytes_in\":%llu,"
	    "\"bytes_out\":%llu,\"in_test\":%llu,\"Bps\":%.1f,\"pings\":%llu,",
	    (unsigned long long)s->sent, (unsigned long long)s->echoed,
	    (unsigned long long)s->timeouts, (unsigned long long)s->stray,
	    (unsigned long long)s->bytes_in, (unsigned long long)s->bytes_out,
	    (unsigned long long)s->in_test,
	    test_s > 0 ? (double)s->in_test / test_s : 0.0,
	    (unsigned long long)s->pings);
	evbuffer_add_printf(b, "\"end\":{\"by\":\"%s\",\"phase\":\"%s\",",
	    end_by_names[s->end_by], phase_names[s->end_phase]);
	json_key(b, "what");
	json_add_string(b, s->end_what);
	evbuffer_add(b, ",", 1);
	json_key(b, "detail");
	json_str_or_null(b, s->end_detail);
	evbuffer_add_printf(b, ",\"notice\":");
	if (s->notice_reason != NULL) {
		evbuffer_add_printf(b, "{\"kind\":");
		json_add_string(b, s->notice_kind);
		evbuffer_add_printf(b, ",\"reason\":");
		json_add_string(b, log_esc(s->notice_reason));
		evbuffer_add_printf(b, "}");
	} else
		evbuffer_add_printf(b, "null");
	evbuffer_add_printf(b, ",\"close_code\":");
	if (s->close_code)
		evbuffer_add_printf(b, "%d", s->close_code);
	else
		evbuffer_add_printf(b, "null");
	evbuffer_add_printf(b, ",\"http_status\":");
	if (s->http_status)
		evbuffer_add_printf(b, "%d}", s->http_status);
	else
		evbuffer_add_printf(b, "null}");
	if (s->end_by == END_SERVER || s->end_by == END_ERROR) {
		evbuffer_add_printf(b, ",\"tail\":");
		json_add_string(b, log_esc_len(s->tail, s->taillen));
	}
	evbuffer_add_printf(b, "}");
}

struct ends {
	char	 key[64];
	size_t	 count;
};

int
report(void)
{
	struct evbuffer	*b = evbuffer_new();
	struct rusage	 ru;
	uint32_t	*all = NULL, *att = NULL, *rdy = NULL, *bps = NULL;
	size_t		 nall = 0, sall = 0, natt = 0, satt = 0, nrdy = 0;
	size_t		 srdy = 0, nbps = 0, sbps = 0, i, j, nends = 0;
	uint64_t	 sent = 0, echoed = 0, timeouts = 0, stray = 0;
	uint64_t	 in = 0, out = 0, in_test = 0;
	unsigned int	 attached = 0, ready = 0, refused = 0, disc = 0;
	unsigned int	 notices = 0, proto = 0, io = 0, hv = 0;
	struct ends	 ends[32];
	struct sess	*s;
	double		 test_s = (double)(run.t_test1 - run.t_test0) / NS;
	char		 key[64];
	int		 ok;

	for (i = 0; i < run.n; i++) {
		s = &run.s[i];
		attached += s->attached;
		ready += s->ready;
		if (s->attached)
			u32_push(&att, &natt, &satt,
			    us_between(s->t_start, s->t_attached));
		if (s->ready) {
			u32_push(&rdy, &nrdy, &srdy,
			    us_between(s->t_start, s->t_ready));
			u32_push(&bps, &nbps, &sbps, (uint32_t)(test_s > 0 ?
			    (double)s->in_test / test_s : 0));
		}
		for (j = 0; j < s->nrtt; j++)
			u32_push(&all, &nall, &sall, s->rtt[j]);
		sent += s->sent;
		echoed += s->echoed;
		timeouts += s->timeouts;
		stray += s->stray;
		in += s->bytes_in;
		out += s->bytes_out;
		in_test += s->in_test;
		refused += s->refused;
		notices += s->notice_reason != NULL;
		proto += s->protocol_err;
		io += s->io_err && !s->hv_lost;
		hv += s->hv_lost;
		if (s->ready && s->end_by != END_CLIENT)
			disc++;
		snprintf(key, sizeof key, "%s/%s", end_by_names[s->end_by],
		    s->end_what);
		for (j = 0; j < nends; j++)
			if (strcmp(ends[j].key, key) == 0)
				break;
		if (j == nends && nends < 32) {
			memcpy(ends[nends].key, key, sizeof key);
			ends[nends++].count = 0;
		}
		if (j < nends)
			ends[j].count++;
	}
	u32_sort(all, nall);
	u32_sort(att, natt);
	u32_sort(rdy, nrdy);
	u32_sort(bps, nbps);
	ok = ready == run.n && disc == 0 && timeouts == 0 && stray == 0 &&
	    proto == 0 && io == 0 && hv == 0;

	evbuffer_add_printf(b, "{\"tool\":\"vcdload\",\"schema\":1,"
	    "\"mode\":\"%s\",\"test\":\"%s\",\"seconds\":%g,\"rate\":%g,"
	    "\"prepare\":\"%s\",\"sessions\":%zu,\"attached\":%u,"
	    "\"ready\":%u,\"failed\":%zu,\"interrupted\":%s,\"ok\":%s,",
	    mode_names[cfg.mode], test_names[cfg.test], cfg.seconds, cfg.rate,
	    prep_names[cfg.prep], run.n, attached, ready, run.n - ready,
	    run.interrupted ? "true" : "false", ok ? "true" : "false");
	evbuffer_add_printf(b, "\"times\":{\"attach_s\":%.3f,\"prepare_s\":"
	    "%.3f,\"test_s\":%.3f,\"wall_s\":%.3f},",
	    (double)(run.t_attach_end - run.t0) / NS,
	    (double)(run.t_prep_end - run.t_attach_end) / NS, test_s,
	    (double)(now_ns() - run.t0) / NS);
	evbuffer_add_printf(b, "\"attach_us\":");
	json_pct(b, att, natt);
	evbuffer_add_printf(b, ",\"ready_us\":");
	json_pct(b, rdy, nrdy);
	evbuffer_add_printf(b, ",\"rtt_us\":");
	json_pct(b, all, nall);
	evbuffer_add_printf(b, ",\"echo\":{\"sent\":%llu,\"echoed\":%llu,"
	    "\"timeouts\":%llu,\"stray_bytes\":%llu},",
	    (unsigned long long)sent, (unsigned long long)echoed,
	    (unsigned long long)timeouts, (unsigned long long)stray);
	evbuffer_add_printf(b, "\"bytes\":{\"in\":%llu,\"out\":%llu,"
	    "\"in_test\":%llu},", (unsigned long long)in,
	    (unsigned long long)out, (unsigned long long)in_test);
	evbuffer_add_printf(b, "\"throughput\":{\"test_s\":%.3f,"
	    "\"total_Bps\":%.1f,\"per_session_Bps\":", test_s,
	    test_s > 0 ? (double)in_test / test_s : 0.0);
	json_pct(b, bps, nbps);
	evbuffer_add_printf(b, "},\"errors\":{\"attach_failed\":%zu,"
	    "\"refused\":%u,\"disconnects\":%u,\"notices\":%u,"
	    "\"echo_timeouts\":%llu,\"stray_bytes\":%llu,\"protocol\":%u,"
	    "\"io\":%u,\"hypervisor_lost\":%u},", run.n - ready, refused, disc,
	    notices, (unsigned long long)timeouts, (unsigned long long)stray,
	    proto, io, hv);
	evbuffer_add_printf(b, "\"ends\":{");
	for (j = 0; j < nends; j++) {
		if (j > 0)
			evbuffer_add(b, ",", 1);
		json_key(b, ends[j].key);
		evbuffer_add_printf(b, "%zu", ends[j].count);
	}
	getrusage(RUSAGE_SELF, &ru);
	evbuffer_add_printf(b, "},\"client\":{\"user_s\":%.3f,\"sys_s\":%.3f,"
	    "\"max_rss_kib\":%ld}",
	    (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6,
	    (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6,
	    ru.ru_maxrss);
	if (cfg.per_session) {
		evbuffer_add_printf(b, ",\"per_session\":[");
		for (i = 0; i < run.n; i++) {
			if (i > 0)
				evbuffer_add(b, ",", 1);
			report_session(b, &run.s[i]);
		}
		evbuffer_add_printf(b, "]");
	}
	evbuffer_add_printf(b, "}\n");
	while (evbuffer_get_length(b) > 0)
		if (evbuffer_write(b, STDOUT_FILENO) <= 0)
			break;
	evbuffer_free(b);
	free(all);
	free(att);
	free(rdy);
	free(bps);
	return ready == run.n ? 0 : 1;
}
