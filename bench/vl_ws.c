/*
 * vcdload's WebSocket client: the upgrade request and its answer, masked
 * frames out, frames in (pings answered, close frames exchanged).
 */
#include <sys/random.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "vcdload.h"

/* A client frame: masked, as RFC 6455 5.3 requires. */
void
ws_send_frame(struct sess *s, int opcode, const void *p, size_t n)
{
	uint8_t		hdr[WS_HEADER_MAX + 4], *dst;
	uint32_t	key = (uint32_t)rng_next();
	size_t		h, i;

	h = ws_frame_header(hdr, opcode, 1, n);
	hdr[1] |= 0x80;
	memcpy(hdr + h, &key, 4);
	out_append(s, hdr, h + 4);
	out_append(s, p, n);
	dst = s->out + s->outlen - n;
	for (i = 0; i < n; i++)
		dst[i] ^= hdr[h + (i & 3)];
}

void
ws_request(struct sess *s)
{
	uint8_t	 raw[16];
	char	*req;

	if (getrandom(raw, sizeof raw, 0) != sizeof raw)
		fatal("getrandom");
	ws_b64_encode(raw, sizeof raw, s->key);
	xasprintf(&req, "GET %s HTTP/1.1\r\nHost: %s\r\n"
	    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
	    "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
	    "%s%s%s%s%s%s\r\n", s->t.path, s->t.hostport, s->key,
	    cfg.subprotocol ? "Sec-WebSocket-Protocol: " : "",
	    cfg.subprotocol ? cfg.subprotocol : "",
	    cfg.subprotocol ? "\r\n" : "",
	    cfg.origin ? "Origin: " : "", cfg.origin ? cfg.origin : "",
	    cfg.origin ? "\r\n" : "");
	s->state = ST_UPGRADE;
	out_append(s, req, strlen(req));
	free(req);
	sess_flush(s);
}

/* The value of a header in a response head, or NULL. */
static char *
head_field(char *head, const char *name, char *buf, size_t len)
{
	char	*line, *v, *eol;
	size_t	 k = strlen(name);

	for (line = strstr(head, "\r\n"); line != NULL;
	    line = strstr(line, "\r\n")) {
		line += 2;
		if (strncasecmp(line, name, k) != 0 || line[k] != ':')
			continue;
		v = line + k + 1;
		while (*v == ' ' || *v == '\t')
			v++;
		eol = strstr(v, "\r\n");
		k = eol ? (size_t)(eol - v) : strlen(v);
		while (k > 0 && (v[k - 1] == ' ' || v[k - 1] == '\t'))
			k--;
		snprintf(buf, len, "%.*s", (int)k, v);
		return buf;
	}
	return NULL;
}

/* The status of "HTTP/1.x NNN ...", or -1. */
static int
http_status(const char *head)
{
	char	*end;
	long	 v;

	if (strncmp(head, "HTTP/1.", 7) != 0 || head[7] < '0' ||
	    head[7] > '9' || head[8] != ' ')
		return -1;
	errno = 0;
	v = strtol(head + 9, &end, 10);
	if (errno != 0 || end != head + 12 || v < 100 || v > 599 ||
	    (*end != ' ' && *end != '\r'))
		return -1;
	return (int)v;
}

/* Bytes of the handshake answer; the rest are frames. */
void
ws_upgrade_input(struct sess *s, const uint8_t *p, size_t n)
{
	char		*end, want[WS_ACCEPT_LEN], got[128], proto[128];
	size_t		 hlen, rest;

	if (s->head == NULL)
		s->head = xmalloc(HEAD_MAX + 1);
	if (s->headlen + n > HEAD_MAX) {
		s->protocol_err = 1;
		sess_end(s, END_ERROR, "protocol error",
		    "handshake answer over %d bytes", HEAD_MAX);
		return;
	}
	memcpy(s->head + s->headlen, p, n);
	s->headlen += n;
	s->head[s->headlen] = '\0';
	if ((end = strstr(s->head, "\r\n\r\n")) == NULL)
		return;
	hlen = (size_t)(end - s->head) + 4;
	rest = s->headlen - hlen;
	end[2] = '\0';
	if ((s->http_status = http_status(s->head)) == -1) {
		s->protocol_err = 1;
		sess_end(s, END_ERROR, "protocol error", "bad status line");
		return;
	}
	if (s->http_status != 101) {
		keep_last(s->tail, &s->taillen, TAIL_MAX, (uint8_t *)s->head,
		    s->headlen);
		s->refused = 1;
		sess_end(s, END_SERVER, "http refused", "HTTP %d",
		    s->http_status);
		return;
	}
	if (ws_accept_key(s->key, want) == -1 ||
	    head_field(s->head, "Sec-WebSocket-Accept", got, sizeof got) ==
	    NULL || strcmp(got, want) != 0) {
		s->protocol_err = 1;
		sess_end(s, END_ERROR, "protocol error",
		    "bad Sec-WebSocket-Accept");
		return;
	}
	if (head_field(s->head, "Sec-WebSocket-Protocol", proto,
	    sizeof proto) != NULL && (cfg.subprotocol == NULL ||
	    strcmp(proto, cfg.subprotocol) != 0)) {
		s->protocol_err = 1;
		sess_end(s, END_ERROR, "protocol error",
		    "server chose subprotocol %s", log_esc(proto));
		return;
	}
	s->wr = xmalloc(sizeof *s->wr);
	ws_reader_init_client(s->wr, 0);
	memmove(s->head, s->head + hlen, rest);
	sess_attached(s);
	if (rest > 0 && s->state == ST_OPEN)
		ws_input(s, (uint8_t *)s->head, rest);
	free(s->head);
	s->head = NULL;
}

void
ws_input(struct sess *s, const uint8_t *p, size_t n)
{
	struct ws_event	ev;
	uint8_t		payload[WS_CONTROL_MAX];
	size_t		used, plen;
	int		rc;

	for (;;) {
		if (s->state != ST_OPEN && s->state != ST_CLOSING)
			return;
		rc = ws_reader_feed(s->wr, p, n, &used, &ev);
		p += used;
		n -= used;
		switch (rc) {
		case WS_EV_NEED_MORE:
			return;
		case WS_EV_DATA:
			sess_data(s, ev.data, ev.len);
			break;
		case WS_EV_PING:
			s->pings++;
			ws_send_frame(s, WS_OP_PONG, ev.data, ev.len);
			sess_flush(s);
			break;
		case WS_EV_PONG:
			break;
		case WS_EV_CLOSE:
			s->close_code = ev.code;
			if (s->state == ST_CLOSING) {
				sess_end(s, END_CLIENT, "closed",
				    "close frames exchanged");
				return;
			}
			/* Answer with the same code, then wait for EOF. */
			plen = ws_close_payload(payload, ev.code, NULL);
			ws_send_frame(s, WS_OP_CLOSE, payload, plen);
			sess_flush(s);
			sess_end(s, END_SERVER, "close frame", "%u %s",
			    ev.code, log_esc_len(ev.reason, ev.reason_len));
			if (ev.code >= 4100 && ev.code < 4200)
				s->refused = 1;
			return;
		case WS_EV_ERROR:
			s->protocol_err = 1;
			sess_end(s, END_ERROR, "protocol error",
			    "server frames: %u %s", ev.code, ev.reason);
			return;
		}
	}
}
