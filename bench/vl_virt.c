/*
 * vcdload's libvirt mode, the floor: consoles opened with
 * virDomainOpenConsole on non-blocking streams over one connection.
 */
#include <libvirt/virterror.h>

#include "vcdload.h"

static virConnectPtr	virt_conn;

static void
stream_cb(virStreamPtr st, int events, void *opaque)
{
	static char	 buf[READ_CHUNK];
	struct sess	*s = opaque;
	int		 n;

	if (s->state == ST_DONE)
		return;		/* a late event */
	if (events & VIR_STREAM_EVENT_WRITABLE) {
		if (sess_flush(s) == -1)
			return;
	}
	for (;;) {
		n = virStreamRecv(st, buf, sizeof buf);
		if (n == -2)
			break;
		if (n == 0) {
			sess_end(s, END_SERVER, "eof", "stream ended");
			return;
		}
		if (n < 0) {
			s->io_err = 1;
			sess_end(s, END_ERROR, "stream error", "%s",
			    virGetLastErrorMessage());
			return;
		}
		sess_data(s, (const uint8_t *)buf, (size_t)n);
		if (s->state == ST_DONE)
			return;
	}
	if (events & (VIR_STREAM_EVENT_ERROR | VIR_STREAM_EVENT_HANGUP)) {
		s->io_err = 1;
		sess_end(s, END_ERROR, "stream error", "stream %s",
		    events & VIR_STREAM_EVENT_ERROR ? "error" : "hangup");
	}
}

static void
conn_close_cb(virConnectPtr c, int reason, void *opaque)
{
	size_t	i;

	run.hv_lost = 1;
	for (i = 0; i < run.n; i++) {
		if (run.s[i].state == ST_DONE)
			continue;
		run.s[i].hv_lost = 1;
		sess_end(&run.s[i], END_ERROR, "hypervisor lost",
		    "libvirt connection closed (reason %d)", reason);
	}
}

void
virt_open_console(struct sess *s)
{
	virDomainPtr	dom;
	unsigned int	flags = VIR_DOMAIN_CONSOLE_SAFE;

	s->state = ST_CONNECT;
	run.connecting++;
	dom = virDomainLookupByName(virt_conn, s->t.guest);
	if (dom == NULL)
		dom = virDomainLookupByUUIDString(virt_conn, s->t.guest);
	if (dom == NULL) {
		s->refused = 1;
		sess_end(s, END_ERROR, "open failed", "no guest %s",
		    s->t.guest);
		virResetLastError();
		return;
	}
	if (cfg.force)
		flags |= VIR_DOMAIN_CONSOLE_FORCE;
	if ((s->st = virStreamNew(virt_conn, VIR_STREAM_NONBLOCK)) == NULL)
		fatalx("virStreamNew: %s", virGetLastErrorMessage());
	if (virDomainOpenConsole(dom, s->t.alias, s->st, flags) == -1) {
		s->refused = 1;
		sess_end(s, END_ERROR, "open failed", "%s",
		    virGetLastErrorMessage());
		virResetLastError();
		virDomainFree(dom);
		return;
	}
	virDomainFree(dom);
	if (virStreamEventAddCallback(s->st, VIR_STREAM_EVENT_READABLE |
	    VIR_STREAM_EVENT_ERROR | VIR_STREAM_EVENT_HANGUP, stream_cb, s,
	    NULL) == -1) {
		s->io_err = 1;
		sess_end(s, END_ERROR, "open failed", "stream callback: %s",
		    virGetLastErrorMessage());
		return;
	}
	s->st_cb = 1;
	sess_attached(s);
}

/* The one connection every console is opened on. */
void
virt_connect(void)
{
	if ((virt_conn = virConnectOpen(cfg.uri)) == NULL)
		fatalx("cannot connect to %s: %s", cfg.uri ? cfg.uri :
		    "the default URI", virGetLastErrorMessage());
	virConnectRegisterCloseCallback(virt_conn, conn_close_cb, NULL,
	    NULL);
}

void
virt_close(void)
{
	if (virt_conn != NULL) {
		virConnectUnregisterCloseCallback(virt_conn, conn_close_cb);
		virConnectClose(virt_conn);
	}
}
