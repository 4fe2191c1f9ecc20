/*
 * Unit tests of the attach socket's request line (asock_parse(), the
 * grammar of docs/SESSIONS.md "The attach socket"): what each accepted
 * line asks for, and the refusal of each bad one.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "virtconsoled.h"
#include "tap.h"

#define WANT	"bad request: want ATTACH GUEST [ALIAS] [hv=NAME] [view] " \
		"[replay=BYTES] [from=RUN:OFFSET]"
#define BYTES	"bad request: replay= wants BYTES (K, M or G suffix, at " \
		"most 1G)"
#define POS	"bad request: from= wants RUN:OFFSET (RUN in hex)"
#define ONE	"bad request: one replay= or from= only"

struct want {
	const char		*line;
	const char		*reason;	/* NULL: accepted */
	const char		*guest, *alias;
	enum session_from	 from;
	unsigned long long	 bytes, run, offset;
	enum session_role	 role;
};

static const struct want cases[] = {
	{ "ATTACH web1", NULL, "web1", NULL, SESSION_FROM_DEFAULT, 0, 0, 0,
	    SESSION_WRITER },
	{ "ATTACH web1 console3", NULL, "web1", "console3",
	    SESSION_FROM_DEFAULT, 0, 0, 0, SESSION_WRITER },
	{ "ATTACH\tweb1  serial0 ", NULL, "web1", "serial0",
	    SESSION_FROM_DEFAULT, 0, 0, 0, SESSION_WRITER },
	{ "ATTACH 6f1c2a9e-3b4d-4e5f-8a7b-1c2d3e4f5a6b hv=default", NULL,
	    "6f1c2a9e-3b4d-4e5f-8a7b-1c2d3e4f5a6b", NULL,
	    SESSION_FROM_DEFAULT, 0, 0, 0, SESSION_WRITER },
	{ "ATTACH web1 replay=4K", NULL, "web1", NULL, SESSION_FROM_TAIL,
	    4096, 0, 0, SESSION_WRITER },
	{ "ATTACH web1 serial0 replay=0", NULL, "web1", "serial0",
	    SESSION_FROM_TAIL, 0, 0, 0, SESSION_WRITER },
	{ "ATTACH web1 replay=1G", NULL, "web1", NULL, SESSION_FROM_TAIL,
	    1ULL << 30, 0, 0, SESSION_WRITER },
	{ "ATTACH web1 console1 from=a1b2:345", NULL, "web1", "console1",
	    SESSION_FROM_POS, 0, 0xa1b2, 345, SESSION_WRITER },
	{ "ATTACH web1 from=ffffffffffffffff:0:1", NULL, "web1", NULL,
	    SESSION_FROM_POS, 0, 0xffffffffffffffffULL, 0, SESSION_WRITER },
	{ "ATTACH web1 view", NULL, "web1", NULL, SESSION_FROM_DEFAULT,
	    0, 0, 0, SESSION_VIEWER },
	{ "ATTACH web1 serial0 view replay=1K", NULL, "web1", "serial0",
	    SESSION_FROM_TAIL, 1024, 0, 0, SESSION_VIEWER },
	{ "ATTACH web1 view from=a:7", NULL, "web1", NULL, SESSION_FROM_POS,
	    0, 0xa, 7, SESSION_VIEWER },
	{ "ATTACH web1 view serial0", "bad request: unknown word",
	    NULL, NULL, 0, 0, 0, 0, 0 },
	{ "", WANT, NULL, NULL, 0, 0, 0, 0, SESSION_WRITER },
	{ "ATTACH", WANT, NULL, NULL, 0, 0, 0, 0, SESSION_WRITER },
	{ "attach web1", WANT, NULL, NULL, 0, 0, 0, 0, SESSION_WRITER },
	{ "HELLO web1", WANT, NULL, NULL, 0, 0, 0, 0, SESSION_WRITER },
	{ "ATTACH web1 serial0 console1", "bad request: unknown word",
	    NULL, NULL, 0, 0, 0, 0, SESSION_WRITER },
	{ "ATTACH web1 bogus=1", "bad request: unknown word",
	    NULL, NULL, 0, 0, 0, 0, SESSION_WRITER },
	{ "ATTACH web1 replay=1K serial0", "bad request: unknown word",
	    NULL, NULL, 0, 0, 0, 0, SESSION_WRITER },
	{ "ATTACH a b c d e f g h", "bad request: too many words",
	    NULL, NULL, 0, 0, 0, 0, SESSION_WRITER },
	{ "ATTACH web1 view view", "bad request: view twice",
	    NULL, NULL, 0, 0, 0, 0, SESSION_WRITER },
	{ "ATTACH web1 hv=default hv=default", "bad request: hv= twice",
	    NULL, NULL, 0, 0, 0, 0, SESSION_WRITER },
	{ "ATTACH web1 hv=other", NULL, "web1", NULL, SESSION_FROM_DEFAULT,
	    0, 0, 0, SESSION_WRITER },
	{ "ATTACH web1 hv=a.b", "unknown hypervisor",
	    NULL, NULL, 0, 0, 0, 0, SESSION_WRITER },
	{ "ATTACH web1 hv=", "unknown hypervisor", NULL, NULL, 0, 0, 0, 0,
	    SESSION_WRITER },
	{ "ATTACH web1 replay=", BYTES, NULL, NULL, 0, 0, 0, 0,
	    SESSION_WRITER },
	{ "ATTACH web1 replay=12Q", BYTES, NULL, NULL, 0, 0, 0, 0,
	    SESSION_WRITER },
	{ "ATTACH web1 replay=-1", BYTES, NULL, NULL, 0, 0, 0, 0,
	    SESSION_WRITER },
	{ "ATTACH web1 replay=2G", BYTES, NULL, NULL, 0, 0, 0, 0,
	    SESSION_WRITER },
	{ "ATTACH web1 replay=99999999999999999999", BYTES,
	    NULL, NULL, 0, 0, 0, 0, SESSION_WRITER },
	{ "ATTACH web1 from=", POS, NULL, NULL, 0, 0, 0, 0, SESSION_WRITER },
	{ "ATTACH web1 from=zz", POS, NULL, NULL, 0, 0, 0, 0, SESSION_WRITER },
	{ "ATTACH web1 from=12", POS, NULL, NULL, 0, 0, 0, 0, SESSION_WRITER },
	{ "ATTACH web1 from=12:", POS, NULL, NULL, 0, 0, 0, 0,
	    SESSION_WRITER },
	{ "ATTACH web1 from=12:3x", POS, NULL, NULL, 0, 0, 0, 0,
	    SESSION_WRITER },
	{ "ATTACH web1 from=12:3:2", POS, NULL, NULL, 0, 0, 0, 0,
	    SESSION_WRITER },
	{ "ATTACH web1 from=10000000000000000:0", POS,
	    NULL, NULL, 0, 0, 0, 0, SESSION_WRITER },
	{ "ATTACH web1 replay=1K from=1:0", ONE, NULL, NULL, 0, 0, 0, 0,
	    SESSION_WRITER },
	{ "ATTACH web1 from=1:0 replay=1K", ONE, NULL, NULL, 0, 0, 0, 0,
	    SESSION_WRITER },
	{ "ATTACH web1 replay=1K replay=2K", ONE, NULL, NULL, 0, 0, 0, 0,
	    SESSION_WRITER },
};

int
main(void)
{
	struct session_start	 start;
	const char		*guest, *alias, *hv, *why;
	char			 line[256];
	size_t			 i;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const struct want	*w = &cases[i];

		(void)snprintf(line, sizeof line, "%s", w->line);
		guest = alias = NULL;
		memset(&start, 0xa5, sizeof start);
		why = asock_parse(line, &guest, &alias, &hv, &start);
		is_str(why, w->reason, "'%s': %s", w->line,
		    w->reason != NULL ? w->reason : "accepted");
		if (w->reason != NULL || why != NULL)
			continue;
		is_str(alias, w->alias, "'%s': alias", w->line);
		is_str(guest, w->guest, "'%s': guest", w->line);
		is_int(start.from, w->from, "'%s': from", w->line);
		is_str(session_role_name(start.role),
		    session_role_name(w->role), "'%s': role", w->line);
		if (w->from == SESSION_FROM_TAIL)
			ok(start.bytes == w->bytes, "'%s': %llu bytes",
			    w->line, w->bytes);
		if (w->from == SESSION_FROM_POS)
			ok(start.run == w->run && start.offset == w->offset,
			    "'%s': run %llx offset %llu", w->line, w->run,
			    w->offset);
		ok(start.resume == NULL && start.label == NULL &&
		    start.no_history == 0,
		    "'%s': no resume id, history claim as any raw door",
		    w->line);
	}
	(void)snprintf(line, sizeof line, "ATTACH g1 hv=kvm-2 view");
	why = asock_parse(line, &guest, &alias, &hv, &start);
	ok(why == NULL && hv != NULL && strcmp(hv, "kvm-2") == 0,
	    "hv=kvm-2: the hypervisor's name is handed back");
	(void)snprintf(line, sizeof line, "ATTACH g1");
	why = asock_parse(line, &guest, &alias, &hv, &start);
	ok(why == NULL && hv == NULL, "no hv=: none (every hypervisor)");
	return tap_done();
}
