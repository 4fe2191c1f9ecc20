/*
 * Unit tests of the pure parts of sessions, guests and the unix front
 * door: notice texts (a contract with clients), the escape scan, the
 * socket name rule, console aliases from domain XML, and the write-now
 * path of guest output to a client (bev_write_now).
 */
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "virtconsoled.h"
#include "tap.h"

static void
test_notices(void)
{
	static const struct {
		enum session_reason	 reason;
		const char		*line;
	} want[] = {
		{ REASON_ESCAPE, "disconnected: escape key" },
		{ REASON_IDLE, "disconnected: idle timeout" },
		{ REASON_GUEST_STOPPED, "disconnected: guest stopped" },
		{ REASON_GUEST_MIGRATED, "disconnected: guest migrated" },
		{ REASON_CONSOLE_TAKEN,
		    "disconnected: console taken by another client" },
		{ REASON_TAKEN_OVER,
		    "disconnected: taken over by a new client" },
		{ REASON_HV_LOST, "disconnected: hypervisor connection lost" },
		{ REASON_HV_REMOVED, "disconnected: hypervisor removed" },
		{ REASON_SHUTDOWN, "disconnected: daemon shutting down" },
		{ REASON_TOO_SLOW, "disconnected: client too slow" },
		{ REASON_KICKED, "disconnected: kicked by administrator" },
		{ REASON_LISTENER_REMOVED, "disconnected: listener removed" },
		{ REASON_EXPIRED, "disconnected: session expired" },
		{ REASON_BUSY, "refused: console busy" },
		{ REASON_NOT_RUNNING, "refused: guest not running" },
		{ REASON_UNKNOWN_GUEST, "refused: unknown guest" },
		{ REASON_TOO_MANY, "refused: too many clients" },
		{ REASON_RECORDING_FAILED, "refused: recording failed" },
	};
	char	buf[128], exp[128];
	size_t	i, n;

	for (i = 0; i < sizeof want / sizeof want[0]; i++) {
		snprintf(exp, sizeof exp, "\r\n[virtconsoled] %s\r\n",
		    want[i].line);
		n = session_notice(want[i].reason, buf, sizeof buf);
		ok(n == strlen(exp) && strcmp(buf, exp) == 0,
		    "notice: %s", want[i].line);
	}
	is_int(session_notice(REASON_CLIENT_CLOSED, buf, sizeof buf), 0,
	    "a client that left gets no notice");
	is_int(session_notice(REASON_NONE, buf, sizeof buf), 0,
	    "no reason, no notice");
	is_int(session_notice(REASON_ESCAPE, buf, 10), 0,
	    "a buffer too small gives no half notice");
	is_int(session_reason_refused(REASON_BUSY), 1, "busy is a refusal");
	is_int(session_reason_refused(REASON_IDLE), 0,
	    "idle is a disconnection");
	is_str(session_reason_text(REASON_MAX), "unknown", "out of range");
	is_str(session_state_name(SESSION_ATTACHED), "ATTACHED", "state name");
	is_str(session_state_name((enum session_state)99), "UNKNOWN",
	    "unknown state name");
}

static void
test_escape(void)
{
	const char	*in = "abc\x11" "def\x11";

	ok(session_find_escape(in, 8, 0x11) == in + 3,
	    "^Q found in the middle of a chunk");
	ok(session_find_escape(in, 3, 0x11) == NULL,
	    "not found outside the length");
	ok(session_find_escape("\x11", 1, 0x11) != NULL,
	    "a chunk of just ^Q");
	ok(session_find_escape(in, 8, ESCAPE_NONE) == NULL,
	    "escape none never matches");
	ok(session_find_escape("a\x1d", 2, 0x1d) != NULL, "^] matches");
	ok(session_find_escape("a\x1d", 2, 0x11) == NULL,
	    "^] is not ^Q");
	ok(session_find_escape("", 0, 0x11) == NULL, "empty input");
	ok(session_find_escape("\0\x11", 2, 0x11) != NULL,
	    "found after a NUL byte");
}

static void
test_names(void)
{
	char	longname[200];

	ok(usock_name_ok("/run/virtconsoled/guests", "web1"), "web1");
	ok(usock_name_ok("/d", "a.b_c+d-E9"), "all allowed characters");
	ok(!usock_name_ok("/d", ""), "empty name");
	ok(!usock_name_ok("/d", ".hidden"), "leading dot");
	ok(!usock_name_ok("/d", ".."), "..");
	ok(!usock_name_ok("/d", "a/b"), "slash");
	ok(!usock_name_ok("/d", "../etc"), "traversal");
	ok(!usock_name_ok("/d", "a b"), "space");
	ok(!usock_name_ok("/d", "a\nb"), "newline");
	ok(!usock_name_ok("/d", "a\033[2Jb"), "escape sequence");
	ok(!usock_name_ok("/d", "caf\xc3\xa9"), "non-ASCII");
	ok(!usock_name_ok("/d", "a:b"), "colon");
	ok(usock_name_ok("/d", "x."), "a trailing dot is fine");
	ok(usock_name_ok("/d", "a..b"), "\"..\" inside a name is fine");
	/* libvirt's domrename takes all of these (t-hostile.py). */
	ok(!usock_name_ok("/d", "."), ".");
	ok(!usock_name_ok("/d", "a\rb"), "carriage return");
	ok(!usock_name_ok("/d", "a\tb"), "tab");
	ok(!usock_name_ok("/d", "a\x7f"), "DEL");
	ok(!usock_name_ok("/d", "a\x9b" "31m"), "a raw C1 byte (CSI)");
	ok(!usock_name_ok("/d", "a\xc2\x9b" "31m"), "C1 CSI as UTF-8");
	ok(!usock_name_ok("/d", "a\xff"), "invalid UTF-8");
	memset(longname, 'a', sizeof longname - 1);
	longname[sizeof longname - 1] = '\0';
	ok(!usock_name_ok("/d", longname), "199 characters do not fit");
	/* /d/ + name + NUL must fit in sun_path (108 bytes). */
	longname[sizeof(((struct sockaddr_un *)0)->sun_path) - 4] = '\0';
	ok(usock_name_ok("/d", longname), "the longest name that fits (%zu)",
	    strlen(longname));
	longname[strlen(longname)] = 'a';
	ok(!usock_name_ok("/d", longname), "one more does not");
}

static char got[256];

static void
check_aliases(const char *xml, int active, const char *want, const char *what)
{
	char	**a;
	size_t	  n, i;
	int	  rc;

	got[0] = '\0';
	rc = guest_parse_consoles(xml, strlen(xml), active, &a, &n);
	if (rc == 0) {
		for (i = 0; i < n; i++) {
			if (i > 0)
				strcat(got, " ");
			strcat(got, a[i]);
		}
		guest_free_aliases(a, n);
	} else
		strcpy(got, "ERROR");
	if (want != NULL)
		is_str(got, want, "%s", what);
}

static void
test_aliases(void)
{
	check_aliases("<domain><devices>"
	    "<serial type='pty'><target port='0'/><alias name='serial0'/>"
	    "</serial>"
	    "<console type='pty'><target type='serial' port='0'/>"
	    "<alias name='serial0'/></console>"
	    "<console type='pty'><target type='virtio' port='1'/>"
	    "<alias name='console1'/></console>"
	    "</devices></domain>", 1, "serial0 console1",
	    "running: a console mirroring serial0 is one key");
	check_aliases("<domain><devices>"
	    "<serial type='pty'><target port='0'/></serial>"
	    "<console type='pty'><target type='serial' port='0'/></console>"
	    "<console type='pty'><target type='virtio' port='1'/></console>"
	    "<console type='pty'><target type='virtio' port='2'/></console>"
	    "</devices></domain>", 0, "serial0 console1 console2",
	    "inactive: aliases derived the way libvirt assigns them");
	check_aliases("<domain><devices>"
	    "<console type='pty'><target type='virtio' port='0'/></console>"
	    "</devices></domain>", 0, "console0",
	    "only a virtio console");
	check_aliases("<domain><devices>"
	    "<serial type='pty'><target port='0'/></serial>"
	    "<serial type='pty'><target port='1'/></serial>"
	    "</devices></domain>", 0, "serial0 serial1",
	    "serial ports only");
	check_aliases("<domain><devices/></domain>", 0, "", "no console");
	check_aliases("<domain/>", 0, "", "no devices");
	check_aliases("<domain><devices>"
	    "<console type='pty'><target type='serial' port='0'/>"
	    "<alias name='ua-mine'/></console>"
	    "</devices></domain>", 1, "ua-mine", "user alias kept");
	check_aliases("<domain><devices><console", 0, "ERROR",
	    "truncated XML is an error");
	/* Names libvirt writes raw although XML forbids them. */
	check_aliases("<domain><name>esc\033[2J\033]0;t\007</name><devices>"
	    "<console type='pty'><target type='serial' port='0'/></console>"
	    "</devices></domain>", 0, "serial0",
	    "a name with control bytes does not lose the consoles");
	check_aliases("<domain><name>raw\x9b\xff</name><devices>"
	    "<console type='pty'><target type='serial' port='0'/></console>"
	    "</devices></domain>", 0, "serial0",
	    "nor one with invalid UTF-8");
	check_aliases("<domain><name>\033</name><devices><console", 0,
	    "ERROR", "truncated XML with a control byte is still an error");
	check_aliases("<network/>", 0, "ERROR", "not a domain");
	check_aliases("", 0, "ERROR", "empty");
	check_aliases("<!DOCTYPE d [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>"
	    "<domain><devices><console><alias name='&x;'/></console>"
	    "</devices></domain>", 1, NULL, NULL);
	ok(strstr(got, "root") == NULL, "external entities are not loaded "
	    "(got \"%s\")", got);
}

/* Everything the peer end of a socketpair holds now, without waiting. */
static size_t
drain_peer(int fd, char *buf, size_t len)
{
	size_t	have = 0;
	ssize_t	n;

	while (have < len && (n = recv(fd, buf + have, len - have,
	    MSG_DONTWAIT)) > 0)
		have += (size_t)n;
	return have;
}

static void
test_write_now(void)
{
	struct event_base	*base = event_base_new();
	struct bufferevent	*bev, *pair[2];
	struct evbuffer		*out;
	char			*big, *back, buf[64];
	size_t			 bigsz = 1 << 20, have = 0, chains;
	int			 sv[2], sndbuf = 4096, i;

	if (base == NULL || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1) {
		ok(0, "setup: %s", strerror(errno));
		return;
	}
	(void)fcntl(sv[0], F_SETFL, O_NONBLOCK);
	bev = bufferevent_socket_new(base, sv[0], BEV_OPT_CLOSE_ON_FREE);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	out = bufferevent_get_output(bev);

	/* Nothing queued: the bytes are on the socket before any loop pass. */
	bev_write_now(bev, "echo", 4);
	is_int(drain_peer(sv[1], buf, sizeof buf), 4,
	    "write now: the peer has the bytes with no loop pass");
	ok(memcmp(buf, "echo", 4) == 0, "write now: the same bytes");
	is_int(evbuffer_get_length(out), 0, "write now: nothing left queued");

	/* Something queued: the new bytes go behind it, never ahead. */
	bufferevent_write(bev, "first,", 6);
	bev_write_now(bev, "second", 6);
	is_int(drain_peer(sv[1], buf, sizeof buf), 0,
	    "queued output: nothing jumps the queue");
	is_int(evbuffer_get_length(out), 12,
	    "queued output: the new bytes wait behind it");
	event_base_loop(base, EVLOOP_NONBLOCK);
	have = drain_peer(sv[1], buf, sizeof buf);
	ok(have == 12 && memcmp(buf, "first,second", 12) == 0,
	    "queued output: the loop sends both, in order (%zu bytes)", have);

	/* More than the socket takes: the rest is queued and sent in order. */
	(void)setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
	big = xmalloc(bigsz);
	back = xmalloc(bigsz);
	for (i = 0; i < (int)bigsz; i++)
		big[i] = (char)(i * 7 + i / 251);
	bev_write_now(bev, big, bigsz);
	have = drain_peer(sv[1], back, bigsz);
	ok(have > 0 && have < bigsz, "a full socket: part written now "
	    "(%zu of %zu)", have, bigsz);
	is_int(evbuffer_get_length(out), bigsz - have,
	    "a full socket: the rest is queued on the bufferevent");
	for (i = 0; i < 10000 && have < bigsz; i++) {
		event_base_loop(base, EVLOOP_NONBLOCK);
		have += drain_peer(sv[1], back + have, bigsz - have);
	}
	ok(have == bigsz && memcmp(big, back, bigsz) == 0,
	    "a full socket: all %zu bytes arrive, in order", have);

	/*
	 * A client that does not read: small writes behind queued output are
	 * packed into the bufferevent's chains, not kept one chain each.
	 */
	bev_write_now(bev, big, bigsz);
	for (i = 0; i < 1000; i++)
		bev_write_now(bev, "0123456789", 10);
	chains = (size_t)evbuffer_peek(out, -1, NULL, NULL, 0);
	ok(chains < 100, "a client that does not read: 1,000 small writes "
	    "behind a full socket take %zu buffer chains", chains);

	/* A peer that is gone: the error is the bufferevent's, as before. */
	bufferevent_free(bev);
	close(sv[1]);
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1) {
		ok(0, "socketpair: %s", strerror(errno));
		return;
	}
	(void)fcntl(sv[0], F_SETFL, O_NONBLOCK);
	bev = bufferevent_socket_new(base, sv[0], BEV_OPT_CLOSE_ON_FREE);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	close(sv[1]);
	bev_write_now(bev, "lost", 4);
	is_int(evbuffer_get_length(bufferevent_get_output(bev)), 4,
	    "a closed peer: the bytes wait for the bufferevent's own error "
	    "(no SIGPIPE: MSG_NOSIGNAL)");
	bufferevent_free(bev);

	/* A pair has no fd: bev_write_now is bufferevent_write. */
	if (bufferevent_pair_new(base, 0, pair) == 0) {
		bufferevent_enable(pair[0], EV_WRITE);
		bufferevent_enable(pair[1], EV_READ);
		bev_write_now(pair[0], "pair", 4);
		have = (size_t)evbuffer_remove(bufferevent_get_input(pair[1]),
		    buf, 8);
		ok(have == 4 && memcmp(buf, "pair", 4) == 0,
		    "a pair: the bytes reach the other end");
		bufferevent_free(pair[0]);
		bufferevent_free(pair[1]);
	} else
		ok(0, "bufferevent_pair_new failed");
	free(big);
	free(back);
	event_base_free(base);
}

int
main(void)
{
	log_init(LOG_TARGET_STDERR, LOG_LEVEL_WARN, NULL);
	test_notices();
	test_escape();
	test_names();
	test_aliases();
	test_write_now();
	return tap_done();
}
