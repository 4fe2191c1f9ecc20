/*
 * vcdload: the benchmark's console client (usage and output: the top of
 * vcdload.c).  What crosses its files:
 *   vcdload.c     options, main
 *   vl_loop.c     the one libvirt event loop: clock, signals, the timer
 *   vl_phase.c    the run's phases: attach, prepare, test, restore, close
 *   vl_target.c   TARGET parsing
 *   vl_sess.c     a session: its end, the bytes it writes and receives,
 *                 its timer
 *   vl_prep.c     the prepare step (the guest's prompt and echo loop)
 *   vl_echo.c     the echo test's keystrokes
 *   vl_sock.c     unix and TCP sockets (unix, ws, wss)
 *   vl_ws.c       the WebSocket client: handshake and frames
 *   vl_tls.c      TLS for wss
 *   vl_virt.c     the libvirt mode: consoles opened with libvirt
 *   vl_report.c   the JSON report, its statistics, the ready/done files
 */
#ifndef VCDLOAD_H
#define VCDLOAD_H

#include <sys/socket.h>
#include <sys/un.h>

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>
#include <libvirt/libvirt.h>
#include <openssl/ssl.h>

#include "virtconsoled.h"

#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#define NS		1000000000LL
#define MS		1000000LL
#define READ_CHUNK	65536
#define SCAN_MAX	4096	/* prepare: bytes kept to look for a text */
#define TAIL_MAX	160	/* last bytes kept for the report */
#define HEAD_MAX	8192	/* a WebSocket handshake answer */
#define PROMPT_EVERY	(500 * MS)
#define SYNC_EVERY	(2 * NS)	/* above QEMU's 1 s pty poll */
#define QUIET		(300 * MS)
#define INTR_WAIT	(300 * MS)
#define CONNECT_RETRY	(10 * MS)
#define CLOSE_WAIT	(2 * NS)
#define RESTORE_WAIT	(300 * MS)

enum mode { MODE_LIBVIRT, MODE_UNIX, MODE_WS, MODE_WSS };
extern const char *const mode_names[];

enum test { TEST_ECHO, TEST_SINK, TEST_IDLE };
extern const char *const test_names[];

enum prep { PREP_NONE, PREP_PROMPT, PREP_ECHO, PREP_DEFAULT };
extern const char *const prep_names[];

enum phase {
	PH_ATTACH = 0,
	PH_PREPARE,
	PH_TEST,
	PH_DRAIN,
	PH_RESTORE,
	PH_HOLD,
	PH_CLOSE,
};
extern const char *const phase_names[];

enum sess_state {
	ST_WAIT = 0,	/* not started */
	ST_CONNECT,	/* connect in progress, or retrying */
	ST_TLS,		/* TLS handshake */
	ST_UPGRADE,	/* WebSocket request sent, reading the answer */
	ST_OPEN,	/* attached: console bytes flow */
	ST_CLOSING,	/* our close frame sent: waiting for the server's */
	ST_DONE,	/* ended, transport released */
};

/* The prepare step of a session. */
enum pr_state {
	PR_NONE = 0,	/* nothing to do (yet) */
	PR_INTR,	/* ^C typed, waiting a moment */
	PR_PROMPT,	/* Enter every 0.5 s until the prompt */
	PR_SYNC,	/* setup typed; marker typed until it echoes */
	PR_QUIET,	/* waiting for silence */
	PR_READY,
	PR_FAILED,
};

enum end_by { END_NONE = 0, END_CLIENT, END_SERVER, END_ERROR };
extern const char *const end_by_names[];

struct target {
	char			*spec;		/* as given */
	char			*shown;		/* for the report: no query */
	/* libvirt */
	char			*guest, *alias;
	/* unix */
	struct sockaddr_un	 sun;
	/* ws, wss */
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;
	char			*host;		/* for SNI and verification */
	char			*hostport;	/* Host: */
	char			*path;		/* with the query */
};

struct sess {
	unsigned int		 id;
	struct target		 t;
	enum sess_state		 state;
	int64_t			 due;		/* next timer work, 0: none */

	/* transport */
	int			 fd;
	int			 watch;
	int			 want_write;
	SSL			*ssl;
	virStreamPtr		 st;
	int			 st_cb;
	uint8_t			*out;		/* bytes not yet written */
	size_t			 outlen, outsize;
	/* WebSocket */
	struct ws_reader	*wr;
	char			 key[WS_B64_SIZE(16)];
	char			*head;
	size_t			 headlen;
	int			 http_status;
	int			 close_code;	/* from the server, 0: none */
	uint64_t		 pings;

	/* times (ns, monotonic) */
	int64_t			 t_start, t_attached, t_ready, t_state;
	int			 attached, ready, counted;

	/* prepare */
	enum pr_state		 pr;
	int64_t			 pr_next;
	char			 marker[16];
	uint8_t			 scan[SCAN_MAX];
	size_t			 scanlen;
	int			 prepared;	/* typed something: restore */

	/* echo */
	int			 waiting;
	uint8_t			 expect;
	unsigned int		 nkey;
	int64_t			 t_sent, next_send;
	uint32_t		*rtt;
	size_t			 nrtt, rttsize;
	uint64_t		 sent, echoed, timeouts, stray;

	/* counts */
	uint64_t		 bytes_in, bytes_out, in_test_start, in_test;
	uint8_t			 tail[TAIL_MAX];
	size_t			 taillen;

	/* end */
	enum end_by		 end_by;
	enum phase		 end_phase;
	char			 end_what[32];
	char			*end_detail;
	char			 notice_kind[16];
	char			*notice_reason;
	int			 refused, protocol_err, io_err, hv_lost;
};

/* The command line, set once by main. */
struct vl_config {
	enum mode		 mode;
	enum test		 test;
	enum prep		 prep;
	double			 seconds;
	double			 rate;
	double			 echo_timeout;
	double			 prepare_timeout;
	double			 attach_timeout;
	double			 settle;
	unsigned int		 parallel;
	const char		*uri;
	int			 force;
	const char		*sink_cmd;
	const char		*prompt;
	const char		*echo_setup;
	const char		*echo_end;
	const char		*subprotocol;	/* NULL: none */
	const char		*origin;
	int			 insecure;
	const char		*cafile;
	const char		*ready_file;
	const char		*done_file;
	int			 hold;
	int			 per_session;
	int			 restore;
	int			 verbose;
};

/* The run: the sessions, the phase, and the phase times the report uses. */
struct vl_run {
	struct sess		*s;
	size_t			 n;
	enum phase		 phase;
	size_t			 next_start;	/* attach: next session */
	unsigned int		 connecting;
	volatile sig_atomic_t	 got_term, got_usr1;
	int			 interrupted;
	int			 hv_lost;
	int64_t			 t0, t_attach_end, t_prep_end, t_test0,
				 t_test1;
};

extern struct vl_config	cfg;
extern struct vl_run	run;

/* vcdload.c */
void		usage(const char *) VCD_NORETURN;

/* vl_loop.c */
int64_t		now_ns(void);
void		rng_seed(void);
uint64_t	rng_next(void);
void		loop_init(void);
void		loop_bury(virStreamPtr);
void		graveyard_empty(void);
void		loop_free(void);
void		run_until(int (*)(const struct sess *), int64_t, int);

/* vl_phase.c */
void		attach_more(void);
void		phase_attach(void);
void		phase_prepare(void);
void		phase_test(void);
void		phase_restore(void);
void		phase_hold(void);
void		phase_close(void);

/* vl_target.c */
void		target_add(const char *);
void		targets_read(const char *);

/* vl_sess.c */
void		sess_log(struct sess *, const char *, ...) VCD_PRINTF(2, 3);
void		keep_last(uint8_t *, size_t *, size_t, const uint8_t *, size_t);
int		scan_has(struct sess *, const char *);
void		sess_end(struct sess *, enum end_by, const char *,
		    const char *, ...) VCD_PRINTF(4, 5);
void		out_append(struct sess *, const void *, size_t);
void		watch_update(struct sess *, int);
int		sess_flush(struct sess *);
void		sess_write(struct sess *, const void *, size_t);
void		sess_type(struct sess *, const char *);
void		sess_data(struct sess *, const uint8_t *, size_t);
void		sess_timer(struct sess *, int64_t);
void		sess_attached(struct sess *);

/* vl_prep.c */
void		prep_ready(struct sess *, int64_t);
void		prep_step(struct sess *, int64_t);
void		prep_start(struct sess *, int64_t);

/* vl_echo.c */
void		echo_next(struct sess *, int64_t);
void		echo_data(struct sess *, const uint8_t *, size_t, int64_t);

/* vl_sock.c */
void		sock_connect(struct sess *);

/* vl_ws.c */
void		ws_send_frame(struct sess *, int, const void *, size_t);
void		ws_request(struct sess *);
void		ws_upgrade_input(struct sess *, const uint8_t *, size_t);
void		ws_input(struct sess *, const uint8_t *, size_t);

/* vl_tls.c */
void		tls_setup(void);
const char	*tls_error_text(void);
void		tls_start(struct sess *);
void		tls_step(struct sess *);
void		tls_free(void);

/* vl_virt.c */
void		virt_connect(void);
void		virt_open_console(struct sess *);
void		virt_close(void);

/* vl_report.c */
uint32_t	us_between(int64_t, int64_t);
void		u32_push(uint32_t **, size_t *, size_t *, uint32_t);
void		write_state_file(const char *, const char *);
int		report(void);

#endif /* VCDLOAD_H */
