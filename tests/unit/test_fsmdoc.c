/*
 * The state diagrams of docs/SESSIONS.md say exactly what the tables in
 * the code say.  Each diagram is a mermaid stateDiagram-v2 block that
 * names its machine on a "%% machine: NAME" line and holds one
 * "FROM --> TO : event" line per legal transition ("[*]" lines are the
 * diagram's start and end, not transitions).  Every transition of the
 * table must be in the diagram and every line of the diagram in the table.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "virtconsoled.h"
#include "tap.h"

#define MAX_LINES	256

struct lines {
	char	*line[MAX_LINES];
	size_t	 n;
};

static void
lines_add(struct lines *l, const char *s)
{
	if (l->n < MAX_LINES)
		l->line[l->n++] = xstrdup(s);
}

static int
lines_has(const struct lines *l, const char *s)
{
	size_t	i;

	for (i = 0; i < l->n; i++)
		if (strcmp(l->line[i], s) == 0)
			return 1;
	return 0;
}

static void
lines_free(struct lines *l)
{
	size_t	i;

	for (i = 0; i < l->n; i++)
		free(l->line[i]);
	l->n = 0;
}

/* The table, as "FROM --> TO : event" lines. */
static void
table_lines(const struct fsm *m, struct lines *l)
{
	char	buf[256];
	int	s, e, next;

	for (s = 0; s < (int)m->nstates; s++)
		for (e = 0; e < (int)m->nevents; e++)
			if ((next = fsm_next(m, s, e)) != FSM_ILLEGAL) {
				(void)snprintf(buf, sizeof buf, "%s --> %s : %s",
				    fsm_state_name(m, s),
				    fsm_state_name(m, next),
				    fsm_event_name(m, e));
				lines_add(l, buf);
			}
}

/* The diagram of machine name in the doc; 0 if there is none. */
static int
doc_lines(const char *path, const char *name, struct lines *l)
{
	FILE	*fp;
	char	 buf[512], want[64], *p;
	size_t	 len;
	int	 in = 0, found = 0;

	if ((fp = fopen(path, "r")) == NULL)
		return 0;
	(void)snprintf(want, sizeof want, "%%%% machine: %s", name);
	while (fgets(buf, sizeof buf, fp) != NULL) {
		len = strlen(buf);
		while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == ' '))
			buf[--len] = '\0';
		for (p = buf; *p == ' '; p++)
			;
		if (!in) {
			if (strcmp(p, want) == 0)
				in = found = 1;
			continue;
		}
		if (strncmp(p, "```", 3) == 0)
			break;
		if (*p == '\0' || strncmp(p, "%%", 2) == 0 ||
		    strstr(p, "[*]") != NULL)
			continue;
		lines_add(l, p);
	}
	fclose(fp);
	return found;
}

int
main(void)
{
	struct fsm	*machines[] = { &session_fsm, &console_fsm, &wsock_fsm };
	struct lines	 code = { { NULL }, 0 }, doc = { { NULL }, 0 };
	const char	*srcdir = getenv("VCD_SRCDIR");
	char		 path[4096];
	size_t		 i, j, missing, extra;

	(void)snprintf(path, sizeof path, "%s/docs/SESSIONS.md",
	    srcdir != NULL ? srcdir : ".");
	for (i = 0; i < sizeof machines / sizeof machines[0]; i++) {
		table_lines(machines[i], &code);
		ok(doc_lines(path, machines[i]->name, &doc),
		    "%s: docs/SESSIONS.md has its diagram", machines[i]->name);
		for (missing = 0, j = 0; j < code.n; j++)
			if (!lines_has(&doc, code.line[j])) {
				printf("# in the table, not in the diagram: "
				    "%s\n", code.line[j]);
				missing++;
			}
		for (extra = 0, j = 0; j < doc.n; j++)
			if (!lines_has(&code, doc.line[j])) {
				printf("# in the diagram, not in the table: "
				    "%s\n", doc.line[j]);
				extra++;
			}
		ok(missing == 0 && extra == 0 && code.n == doc.n,
		    "%s: the diagram holds the table's %zu transitions and "
		    "nothing else (%zu missing, %zu extra)", machines[i]->name,
		    code.n, missing, extra);
		lines_free(&code);
		lines_free(&doc);
	}
	return tap_done();
}
