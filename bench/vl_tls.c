/* vcdload's TLS for wss: TLS 1.2+, verified unless --insecure. */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "vcdload.h"

static SSL_CTX	*tls_ctx;

const char *
tls_error_text(void)
{
	static char	buf[256];
	unsigned long	e = ERR_get_error();

	if (e == 0)
		return errno ? strerror(errno) : "connection closed";
	ERR_error_string_n(e, buf, sizeof buf);
	ERR_clear_error();
	return buf;
}

void
tls_setup(void)
{
	if ((tls_ctx = SSL_CTX_new(TLS_client_method())) == NULL)
		fatalx("SSL_CTX_new: %s", tls_error_text());
	SSL_CTX_set_min_proto_version(tls_ctx, TLS1_2_VERSION);
	/* A server that just closes is an EOF, not a TLS error. */
	SSL_CTX_set_options(tls_ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
	if (cfg.insecure) {
		SSL_CTX_set_verify(tls_ctx, SSL_VERIFY_NONE, NULL);
		return;
	}
	SSL_CTX_set_verify(tls_ctx, SSL_VERIFY_PEER, NULL);
	if (cfg.cafile != NULL) {
		if (SSL_CTX_load_verify_locations(tls_ctx, cfg.cafile,
		    NULL) != 1)
			fatalx("%s: %s", cfg.cafile, tls_error_text());
	} else if (SSL_CTX_set_default_verify_paths(tls_ctx) != 1)
		fatalx("default CA paths: %s", tls_error_text());
}

void
tls_step(struct sess *s)
{
	int	rc, err;

	ERR_clear_error();
	rc = SSL_connect(s->ssl);
	if (rc == 1) {
		ws_request(s);
		return;
	}
	err = SSL_get_error(s->ssl, rc);
	if (err == SSL_ERROR_WANT_READ)
		watch_update(s, 0);
	else if (err == SSL_ERROR_WANT_WRITE)
		watch_update(s, 1);
	else {
		s->io_err = 1;
		sess_end(s, END_ERROR, "tls error", "handshake: %s",
		    tls_error_text());
	}
}

/* A TCP connection is up: start TLS on it. */
void
tls_start(struct sess *s)
{
	X509_VERIFY_PARAM	*vp;
	struct in6_addr		 a6;

	s->state = ST_TLS;
	if ((s->ssl = SSL_new(tls_ctx)) == NULL)
		fatalx("SSL_new: %s", tls_error_text());
	SSL_set_fd(s->ssl, s->fd);
	SSL_set_mode(s->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (!cfg.insecure) {
		vp = SSL_get0_param(s->ssl);
		if (X509_VERIFY_PARAM_set1_ip_asc(vp, s->t.host) != 1)
			SSL_set1_host(s->ssl, s->t.host);
	}
	/* SNI names a host, never an address. */
	if (inet_pton(AF_INET, s->t.host, &a6) != 1 &&
	    inet_pton(AF_INET6, s->t.host, &a6) != 1)
		SSL_set_tlsext_host_name(s->ssl, s->t.host);
	tls_step(s);
}

void
tls_free(void)
{
	if (tls_ctx != NULL)
		SSL_CTX_free(tls_ctx);
}
