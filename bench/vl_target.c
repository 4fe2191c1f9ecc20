/* vcdload's TARGETs: a guest, a socket path or a WebSocket URL. */
#include <sys/socket.h>

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vcdload.h"

static void
target_parse_ws(struct target *t, const char *spec)
{
	const char	*p = spec, *slash, *q;
	char		*auth, *host, *port, *colon;
	struct addrinfo	 hints, *res;
	int		 tls = cfg.mode == MODE_WSS, rc;

	if (strncmp(p, "ws://", 5) == 0) {
		if (tls)
			usage("a ws:// URL in wss mode");
		p += 5;
	} else if (strncmp(p, "wss://", 6) == 0) {
		if (!tls)
			usage("a wss:// URL in ws mode");
		p += 6;
	}
	slash = strchr(p, '/');
	auth = slash ? xstrndup(p, (size_t)(slash - p)) : xstrdup(p);
	t->path = xstrdup(slash ? slash : "/");
	if (auth[0] == '[') {
		if ((colon = strchr(auth, ']')) == NULL)
			usage("bad IPv6 address in a URL");
		host = xstrndup(auth + 1, (size_t)(colon - auth - 1));
		port = xstrdup(colon[1] == ':' ? colon + 2 : tls ? "443" :
		    "80");
	} else if ((colon = strrchr(auth, ':')) != NULL) {
		host = xstrndup(auth, (size_t)(colon - auth));
		port = xstrdup(colon + 1);
	} else {
		host = xstrdup(auth);
		port = xstrdup(tls ? "443" : "80");
	}
	memset(&hints, 0, sizeof hints);
	hints.ai_socktype = SOCK_STREAM;
	if ((rc = getaddrinfo(host, port, &hints, &res)) != 0) {
		fprintf(stderr, "vcdload: %s: %s\n", host, gai_strerror(rc));
		exit(2);
	}
	memcpy(&t->ss, res->ai_addr, res->ai_addrlen);
	t->sslen = res->ai_addrlen;
	freeaddrinfo(res);
	t->host = host;
	t->hostport = auth;
	free(port);
	q = strchr(t->path, '?');
	if (q != NULL)
		xasprintf(&t->shown, "%s%.*s?...", auth, (int)(q - t->path),
		    t->path);
	else
		xasprintf(&t->shown, "%s%s", auth, t->path);
}

static void
target_parse(struct target *t, const char *spec)
{
	const char	*colon;

	memset(t, 0, sizeof *t);
	t->spec = xstrdup(spec);
	switch (cfg.mode) {
	case MODE_LIBVIRT:
		if ((colon = strchr(spec, ':')) != NULL) {
			t->guest = xstrndup(spec, (size_t)(colon - spec));
			t->alias = xstrdup(colon + 1);
		} else
			t->guest = xstrdup(spec);
		t->shown = xstrdup(spec);
		break;
	case MODE_UNIX:
		if (strlen(spec) >= sizeof t->sun.sun_path)
			usage("socket path too long");
		t->sun.sun_family = AF_UNIX;
		memcpy(t->sun.sun_path, spec, strlen(spec) + 1);
		t->shown = xstrdup(spec);
		break;
	case MODE_WS:
	case MODE_WSS:
		target_parse_ws(t, spec);
		break;
	}
}

void
target_add(const char *spec)
{
	if (run.n % 64 == 0)
		run.s = xrealloc(run.s, (run.n + 64) * sizeof *run.s);
	memset(&run.s[run.n], 0, sizeof run.s[run.n]);
	run.s[run.n].id = (unsigned int)run.n;
	run.s[run.n].fd = -1;
	run.s[run.n].watch = -1;
	target_parse(&run.s[run.n].t, spec);
	run.n++;
}

void
targets_read(const char *path)
{
	FILE	*fp;
	char	*line = NULL;
	size_t	 size = 0;
	ssize_t	 len;

	fp = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
	if (fp == NULL) {
		fprintf(stderr, "vcdload: %s: %s\n", path, strerror(errno));
		exit(2);
	}
	while ((len = getline(&line, &size, fp)) != -1) {
		while (len > 0 && (line[len - 1] == '\n' ||
		    line[len - 1] == '\r' || line[len - 1] == ' '))
			line[--len] = '\0';
		if (len > 0 && line[0] != '#')
			target_add(line);
	}
	free(line);
	if (fp != stdin)
		fclose(fp);
}
