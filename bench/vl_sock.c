/*
 * vcdload's sockets: the unix mode's, and the TCP connections under ws and
 * wss; connect (retried on a full listen backlog), read, and the watch.
 */
#include <sys/socket.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>

#include "vcdload.h"

static void
sock_read(struct sess *s)
{
	static uint8_t	buf[READ_CHUNK];
	ssize_t		n;
	int		rc, err;

	for (;;) {
		if (s->state == ST_DONE)
			return;
		if (s->ssl != NULL) {
			ERR_clear_error();
			rc = SSL_read(s->ssl, buf, sizeof buf);
			if (rc <= 0) {
				err = SSL_get_error(s->ssl, rc);
				if (err == SSL_ERROR_WANT_READ ||
				    err == SSL_ERROR_WANT_WRITE)
					return;
				/* EOF, with or without close_notify */
				if (err == SSL_ERROR_ZERO_RETURN ||
				    (err == SSL_ERROR_SYSCALL &&
				    ERR_peek_error() == 0 && rc == 0))
					n = 0;
				else {
					s->io_err = 1;
					sess_end(s, END_ERROR, "tls error",
					    "SSL_read: %s", tls_error_text());
					return;
				}
			} else
				n = rc;
		} else {
			n = read(s->fd, buf, sizeof buf);
			if (n == -1) {
				if (errno == EAGAIN || errno == EINTR)
					return;
				if (errno == ECONNRESET) {
					/* It closed while we were typing. */
					sess_end(s, END_SERVER, "reset",
					    "connection reset by the server");
					return;
				}
				s->io_err = 1;
				sess_end(s, END_ERROR, "io error", "read: %s",
				    strerror(errno));
				return;
			}
		}
		if (n == 0) {
			if (s->state == ST_CLOSING)
				sess_end(s, END_CLIENT, "closed",
				    "server closed after our close frame");
			else
				sess_end(s, END_SERVER, "eof",
				    "server closed the connection");
			return;
		}
		switch (s->state) {
		case ST_UPGRADE:
			ws_upgrade_input(s, buf, (size_t)n);
			break;
		case ST_OPEN:
		case ST_CLOSING:
			if (s->wr != NULL)
				ws_input(s, buf, (size_t)n);
			else
				sess_data(s, buf, (size_t)n);
			break;
		default:
			return;
		}
	}
}

static void
sock_connected(struct sess *s)
{
	int	one = 1;

	if (cfg.mode == MODE_UNIX) {
		sess_attached(s);
		return;
	}
	setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (cfg.mode == MODE_WS) {
		ws_request(s);
		return;
	}
	tls_start(s);
}

static void
sock_cb(int watch, int fd, int events, void *opaque)
{
	struct sess	*s = opaque;
	int		 err = 0;
	socklen_t	 len = sizeof err;

	switch (s->state) {
	case ST_CONNECT:
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
			err = errno;
		if (err != 0) {
			s->io_err = 1;
			s->refused = err == ECONNREFUSED;
			sess_end(s, END_ERROR, "connect failed", "%s",
			    strerror(err));
			return;
		}
		watch_update(s, 0);
		sock_connected(s);
		return;
	case ST_TLS:
		tls_step(s);
		return;
	case ST_DONE:
	case ST_WAIT:
		return;
	default:
		break;
	}
	if (events & VIR_EVENT_HANDLE_WRITABLE) {
		if (sess_flush(s) == -1)
			return;
	}
	if (events & (VIR_EVENT_HANDLE_READABLE | VIR_EVENT_HANDLE_ERROR |
	    VIR_EVENT_HANDLE_HANGUP))
		sock_read(s);
}

/* Start (or retry) a socket connection. */
void
sock_connect(struct sess *s)
{
	const struct sockaddr	*sa;
	socklen_t		 salen;
	int			 fd, family;

	if (cfg.mode == MODE_UNIX) {
		sa = (const struct sockaddr *)&s->t.sun;
		salen = sizeof s->t.sun;
		family = AF_UNIX;
	} else {
		sa = (const struct sockaddr *)&s->t.ss;
		salen = s->t.sslen;
		family = s->t.ss.ss_family;
	}
	fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		fatal("socket");
	if (connect(fd, sa, salen) == -1 && errno != EINPROGRESS) {
		if (errno == EAGAIN && cfg.mode == MODE_UNIX) {
			/* A full listen backlog: a retry is due. */
			close(fd);
			s->due = now_ns() + CONNECT_RETRY;
			return;
		}
		close(fd);
		s->io_err = 1;
		s->refused = errno == ECONNREFUSED || errno == ENOENT;
		sess_end(s, END_ERROR, "connect failed", "%s",
		    strerror(errno));
		return;
	}
	s->fd = fd;
	s->want_write = 1;
	s->watch = virEventAddHandle(fd, VIR_EVENT_HANDLE_READABLE |
	    VIR_EVENT_HANDLE_WRITABLE, sock_cb, s, NULL);
	if (s->watch == -1)
		fatalx("virEventAddHandle failed");
	s->due = s->t_start + (int64_t)(cfg.attach_timeout * NS) + MS;
}
