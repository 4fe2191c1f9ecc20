/*
 * virtconsoled: serial consoles of libvirt guests for web clients, from one
 * libevent loop.  This is the one internal header: every object lives in its
 * own source file, and its prototypes are grouped below under that file's
 * name.
 */
#ifndef VIRTCONSOLED_H
#define VIRTCONSOLED_H

#include <sys/types.h>
#include <sys/queue.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

#include <libvirt/libvirt.h>

struct event_base;
struct bufferevent;
struct event;
struct evbuffer;

/* glibc's sys/queue.h lacks the _SAFE iterator. */
#ifndef TAILQ_FOREACH_SAFE
#define TAILQ_FOREACH_SAFE(var, head, field, tvar)			\
	for ((var) = TAILQ_FIRST(head);					\
	    (var) != NULL && ((tvar) = TAILQ_NEXT(var, field), 1);	\
	    (var) = (tvar))
#endif

#define VCD_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define VCD_NORETURN __attribute__((noreturn))

/* log.c */
enum log_level {
	LOG_LEVEL_ERROR = 0,
	LOG_LEVEL_WARN,
	LOG_LEVEL_INFO,
	LOG_LEVEL_DEBUG,
};
enum log_target {
	LOG_TARGET_STDERR,	/* foreground (-d) */
	LOG_TARGET_SYSLOG,	/* daemon without log_file */
	LOG_TARGET_FILE,	/* daemon with log_file */
};
int		 log_init(enum log_target, enum log_level, const char *);
int		 log_reopen(void);
void		 log_set_level(enum log_level);
void		 log_stderr_echo(int);
enum log_level	 log_get_level(void);
int		 log_level_parse(const char *, enum log_level *);
const char	*log_level_name(enum log_level);
void		 log_error(const char *, ...) VCD_PRINTF(1, 2);
void		 log_warn(const char *, ...) VCD_PRINTF(1, 2);
void		 log_warnx(const char *, ...) VCD_PRINTF(1, 2);
void		 log_info(const char *, ...) VCD_PRINTF(1, 2);
void		 log_debug(const char *, ...) VCD_PRINTF(1, 2);
void		 log_vmsg(enum log_level, int, const char *, va_list)
		     VCD_PRINTF(3, 0);
void		 fatal(const char *, ...) VCD_PRINTF(1, 2) VCD_NORETURN;
void		 fatalx(const char *, ...) VCD_PRINTF(1, 2) VCD_NORETURN;
#define LOG_ESC_MAX 256
const char	*log_esc(const char *);
const char	*log_esc_len(const void *, size_t);
size_t		 log_escape(char *, size_t, const void *, size_t);

/*
 * A log line that untrusted peers can trigger at will: at most burst lines
 * per window seconds, then a count of the lines left out.
 */
struct log_limit {
	const char	*what;		/* "web: refusal", ... */
	int		 window;	/* seconds */
	unsigned int	 burst;
	time_t		 start;
	unsigned int	 count;
	unsigned int	 dropped;
};
#define LOG_LIMIT_INIT(what, window, burst)	{ (what), (window), (burst), 0, 0, 0 }
int		 log_limit_allow(struct log_limit *);

/* config.c */
enum config_policy {
	POLICY_REFUSE = 0,
	POLICY_TAKEOVER,
};
enum config_capture {
	CAPTURE_ATTACHED = 0,	/* a console is held while a client uses it */
	CAPTURE_ALWAYS,		/* every console of every running guest */
};
#define ESCAPE_NONE (-1)
struct config_listen {
	char			*address;	/* numeric IPv4 or IPv6 */
	int			 family;	/* AF_INET or AF_INET6 */
	int			 port;		/* 0: pick a free one */
	int			 tls;
	int			 auth_none;
	int			 metrics;	/* metrics_listen */
	int			 line;
	TAILQ_ENTRY(config_listen) entry;
};
TAILQ_HEAD(config_listens, config_listen);
struct config_origin {
	char			*origin;
	TAILQ_ENTRY(config_origin) entry;
};
TAILQ_HEAD(config_origins, config_origin);
/* A hypervisor: `hypervisor = NAME URI`, or `uri = URI` as `default`. */
#define CONFIG_HV_NAME_MAX	32
struct config_hv {
	char			*name;		/* [A-Za-z0-9_-]{1,32} */
	char			*uri;
	int			 line;		/* 0: from `uri` or the default */
	TAILQ_ENTRY(config_hv)	 entry;
};
TAILQ_HEAD(config_hvs, config_hv);
struct config {
	char			*path;
	/* foundation */
	char			*uri;		/* the uri form's; see hvs */
	struct config_hvs	 hvs;		/* never empty after parse */
	int			 hv_form;	/* hypervisor keys, not uri */
	char			*log_file;
	enum log_level		 log_level;
	char			*pid_file;
	/* sessions */
	char			*socket_dir;
	char			*socket_group;
	enum config_policy	 policy;
	int			 force;
	unsigned int		 start_wait;
	unsigned int		 idle_timeout;
	int			 idle_output_resets;
	int			 escape;	/* byte, or ESCAPE_NONE */
	size_t			 max_buffer;
	unsigned int		 max_viewers;	/* per console; 0: none */
	/* history (history.c, kept by console.c) */
	size_t			 history;	/* tail bytes per run */
	size_t			 history_head;	/* first bytes per run */
	unsigned int		 history_runs;	/* runs kept per console */
	enum config_capture	 capture;	/* when consoles are held */
	size_t			 attach_replay;	/* history to unix clients */
	/* web */
	struct config_listens	 listens;
	char			*tls_cert;
	char			*tls_key;
	char			*token_secret_file;
	unsigned int		 token_ttl;
	unsigned int		 session_ttl;
	struct config_origins	 allowed_origins; /* empty: own Host */
	struct config_origins	 server_names;	/* Host values accepted
						   beside the dialled address */
	char			*cookie_name;
	char			*state_dir;	/* audience, replay cache,
						   revocations */
	unsigned int		 ping_interval;
	unsigned int		 max_clients;
	unsigned int		 max_clients_per_address;
	unsigned int		 ipv6_prefix;	/* bits an IPv6 client is */
	unsigned int		 handshake_timeout;
	char			*web_root;
	/* metrics (metrics.c, served by web.c) */
	struct config_listens	 metrics_listens; /* metrics_listen: 0 or 1 */
	int			 metrics_guest_labels;
	/* console logs (clog.c) and recordings (rec.c) */
	char			*console_log_dir;	/* NULL: none */
	int			 console_log_timestamps; /* `line` */
	size_t			 console_log_max;	/* bytes; 0: logrotate */
	unsigned int		 console_log_keep;	/* rotated files */
	char			*record_dir;		/* NULL: none */
	int			 record_input;
	int			 record_required;
	/* operations */
	char			*control_socket;
	char			*attach_socket;	/* NULL: none */
	char			*user;
	char			*group;
};
struct config	*config_new(void);
int		 config_hv_name_ok(const char *);
struct config	*config_load(const char *, char *, size_t);
struct config	*config_parse(const char *, const char *, size_t, char *,
		     size_t);
void		 config_free(struct config *);
const char	*config_policy_name(enum config_policy);
const char	*config_capture_name(enum config_capture);
const char	*config_escape_name(int);
int		 config_parse_size(const char *, unsigned long long,
		     unsigned long long, size_t *);

/*
 * lat.c: residence time histograms and the stamp queues that feed them
 * (pure: no libevent, no allocation).  Buckets of upper bound 2^k us, k =
 * 0 .. LAT_BUCKETS - 1, then one for anything longer (bucket[LAT_BUCKETS]).
 */
#define LAT_BUCKETS	25
#define LAT_STAMPS	8	/* chunks followed per stream at once */
struct lat_hist {
	uint64_t	 bucket[LAT_BUCKETS + 1];	/* not cumulative */
	uint64_t	 count;
	uint64_t	 sum_ns;
};
struct lat_stamp {
	uint64_t	 end;		/* offset of the chunk's last byte + 1 */
	uint64_t	 t0;		/* when it was read, lat_now() */
};
struct lat_fifo {
	struct lat_stamp s[LAT_STAMPS];
	unsigned int	 head, n;
};
uint64_t	 lat_now(void);
unsigned int	 lat_bucket(uint64_t);
double		 lat_bound(unsigned int);
void		 lat_add(struct lat_hist *, uint64_t);
void		 lat_merge(struct lat_hist *, const struct lat_hist *);
double		 lat_quantile(const struct lat_hist *, double);
void		 lat_mark(struct lat_fifo *, uint64_t, uint64_t);
unsigned int	 lat_done(struct lat_fifo *, uint64_t, struct lat_hist *);
int		 lat_take(struct lat_fifo *, uint64_t, uint64_t *);
void		 lat_clear(struct lat_fifo *);
/*
 * A counted byte stream and the chunks in it: `gone` counts the bytes that
 * left (sent, or taken by the socket); a chunk is marked by how many bytes
 * are queued up to its end, and timed into h (NULL: not) once they left.
 */
struct lat_stream {
	struct lat_fifo	 q;
	uint64_t	 gone;
	struct lat_hist	*h;
};
void		 lat_stream_init(struct lat_stream *, struct lat_hist *);
void		 lat_stream_mark(struct lat_stream *, uint64_t, uint64_t);
void		 lat_stream_gone(struct lat_stream *, uint64_t);
void		 lat_stream_drop(struct lat_stream *, uint64_t);

/*
 * clog.c: console log files, DIR/HYPERVISOR/UUID/ALIAS.log (console_log_dir).
 * One object per guest console, kept by console.c; every call is a no-op
 * while console_log_dir is unset.  Writes happen in the loop and never
 * stall it on a local disk; a write that fails is counted and logged
 * (rate-limited), and the file says how many bytes it missed.
 */
struct clog;
struct clog_config {
	const char	*dir;		/* NULL: no console logs */
	int		 timestamps;	/* 1: each line starts with a UTC time */
	uint64_t	 max;		/* rotate past this many bytes; 0: never */
	unsigned int	 keep;		/* rotated files kept: ALIAS.log.1 .. */
};
#define CLOG_KEEP_MAX	100
int		 clog_configure(const struct clog_config *, char *, size_t);
struct clog	*clog_new(const char *, const char *, const char *,
		     const char *);
void		 clog_write(struct clog *, const char *, size_t);
void		 clog_mark(struct clog *, const char *, ...) VCD_PRINTF(2, 3);
void		 clog_close(struct clog *);
void		 clog_free(struct clog *);
void		 clog_reopen(void);
uint64_t	 clog_errors(void);

/*
 * rec.c: session recordings, one asciicast v2 file per writer session
 * (record_dir).  The data of every event is valid UTF-8 JSON whatever the
 * guest prints: a streaming decoder per direction keeps sequences split
 * across reads together and writes U+FFFD for invalid bytes.
 */
struct rec;
struct rec_config {
	const char	*dir;		/* NULL: no recordings */
	int		 input;		/* record_input: "i" events */
};
struct rec_info {
	const char	*hv;
	const char	*uuid;
	const char	*alias;
	const char	*guest;		/* its name */
	const char	*door;		/* unix, attach, ws, wss */
	const char	*label;		/* "" when none */
	unsigned int	 session;
};
int		 rec_configure(const struct rec_config *, char *, size_t);
int		 rec_enabled(void);
struct rec	*rec_open(const struct rec_info *, char *, size_t);
const char	*rec_path(const struct rec *);
void		 rec_output(struct rec *, const char *, size_t);
void		 rec_input(struct rec *, const char *, size_t);
void		 rec_resize(struct rec *, unsigned int, unsigned int);
void		 rec_close(struct rec *);
uint64_t	 rec_errors(void);
/* The streaming decoder, for the tests. */
struct rec_utf8 {
	unsigned char	 part[4];	/* a sequence not yet complete */
	size_t		 len;
};
void		 rec_json_utf8(struct rec_utf8 *, struct evbuffer *,
		     const char *, size_t, int);

/* metrics.c: Prometheus's text format, for web.c and control.c */
struct metrics_proc {
	unsigned long long	 cpu_ticks;	/* user + system */
	unsigned long long	 start_ticks;	/* after boot */
	unsigned long long	 vsize;		/* bytes */
	unsigned long long	 rss_pages;
};
void		 metrics_reconfigure(const struct config *);
void		 metrics_count_response(int);
void		 metrics_render(struct evbuffer *);
void		 metrics_histogram(struct evbuffer *, const char *,
		     const char *, const char *, const struct lat_hist *);
void		 metrics_stats(struct evbuffer *, int);
size_t		 metrics_snake(const char *, char *, size_t);
void		 metrics_add_value(struct evbuffer *, const char *);
int		 metrics_parse_stat(const char *, struct metrics_proc *);

/* evglue.c */
int		 evglue_register(struct event_base *);
void		 evglue_unregister(void);
unsigned int	 evglue_pending_frees(void);
unsigned int	 evglue_handle_count(void);
int		 evglue_tag_new(void);
void		 evglue_tag_set(int);
size_t		 evglue_fds_tagged(int, int *, size_t);
size_t		 evglue_fd_backlog(int);
int		 evglue_fd_ended(int);
unsigned int	 evglue_timeout_count(void);
/* The six callbacks, exposed for unit tests. */
typedef void (*evglue_handle_cb)(int, int, int, void *);
typedef void (*evglue_timeout_cb)(int, void *);
typedef void (*evglue_free_cb)(void *);
int		 evglue_add_handle(int, int, evglue_handle_cb, void *,
		     evglue_free_cb);
void		 evglue_update_handle(int, int);
int		 evglue_remove_handle(int);
int		 evglue_add_timeout(int, evglue_timeout_cb, void *,
		     evglue_free_cb);
void		 evglue_update_timeout(int, int);
int		 evglue_remove_timeout(int);

/*
 * fsm.c: state machines driven by a table of legal transitions.  A table
 * holds FSM_TO(next) at [state * nevents + event], 0 where the pair is
 * illegal; fsm_step() is the only way a machine changes state.
 */
#define FSM_ILLEGAL	(-1)
#define FSM_TO(state)	((signed char)((state) + 1))
struct fsm {
	const char		*name;		/* "session", "console", ... */
	enum log_level		 level;		/* of the transition lines */
	unsigned int		 nstates;
	unsigned int		 nevents;
	const char *const	*states;
	const char *const	*events;
	const signed char	*table;		/* nstates * nevents */
	uint32_t		*taken;		/* counts, for the tests */
};
int		 fsm_step(struct fsm *, int *, int, const char *,
		     const char *, ...) VCD_PRINTF(5, 6);
int		 fsm_next(const struct fsm *, int, int);
const char	*fsm_state_name(const struct fsm *, int);
const char	*fsm_event_name(const struct fsm *, int);
unsigned long long fsm_state_errors(void);
void		 fsm_coverage(const struct fsm *, unsigned int *,
		     unsigned int *);
void		 fsm_untaken(const struct fsm *, FILE *);

/* pidfile.c */
struct pidfile;
struct pidfile	*pidfile_acquire(const char *, char *, size_t);
void		 pidfile_release(struct pidfile *);
const char	*pidfile_path(const struct pidfile *);

/* priv.c */
int		 priv_drop(const struct config *, char *, size_t);
uid_t		 priv_owner(const struct config *);

/* daemon.c */
int		 daemon_detach(void);
void		 daemon_ready(void);

/* guest.c */
#define GUEST_UUID_LEN 37	/* VIR_UUID_STRING_BUFLEN */
struct hv;
struct guest {
	struct hv		*hv;		/* whose guest it is */
	char			 uuid[GUEST_UUID_LEN];
	char			*name;
	int			 persistent;
	int			 active;	/* running or paused */
	unsigned long long	 domid;		/* libvirt's id of this run */
	char			**aliases;	/* console aliases, first = default */
	size_t			 naliases;
	int			 seen;		/* mark for a resync */
	TAILQ_ENTRY(guest)	 entry;
};
TAILQ_HEAD(guests, guest);
enum guest_event {
	GUEST_EV_CHANGED,	/* added, renamed, (un)defined, started,
				   stopped, or any other lifecycle event
				   (paused...): look at it again */
	GUEST_EV_STARTED,	/* it runs (or was found running) */
	GUEST_EV_STOPPED,	/* it stopped */
	GUEST_EV_MIGRATED,	/* it stopped: migrated away */
	GUEST_EV_REMOVED,	/* gone: freed after the subscribers */
	GUEST_EV_LOST,		/* its hypervisor's connection dropped */
	GUEST_EV_HV_REMOVED,	/* a reload removed its hypervisor (then
				   GUEST_EV_REMOVED) */
};
typedef void (*guest_subscriber_fn)(struct guest *, enum guest_event,
    void *);
void		 guest_subscribe(guest_subscriber_fn, void *);
void		 guest_shutdown(void);
struct guest	*guest_find_name(const char *);
struct guest	*guest_find_uuid(const char *);
struct guest	*guest_find(const char *, const char *);
struct guest	*guest_lookup(const char *, const char *, int *);
void		 guest_lookup_hvs(const char *, const char *, char *, size_t);
int		 guest_uuid_shaped(const char *);
struct guests	*guest_list(void);
const char	*guest_hv_name(const struct guest *);
const char	*guest_default_alias(const struct guest *);
int		 guest_has_alias(const struct guest *, const char *);
int		 guest_parse_consoles(const char *, size_t, int, char ***,
		     size_t *);
void		 guest_free_aliases(char **, size_t);

/* stream.c */
#define STREAM_EV_READABLE	0x1
#define STREAM_EV_ERROR		0x2
#define STREAM_EV_HANGUP	0x4
enum stream_open_result {
	STREAM_OPENED = 0,
	STREAM_NO_GUEST,	/* no such guest */
	STREAM_NOT_RUNNING,	/* not running, or no hypervisor connection */
	STREAM_BUSY,		/* another client holds the console */
	STREAM_LINK_LOST,	/* the guest's connection dropped meanwhile */
	STREAM_NO_CONSOLE,	/* libvirt cannot open it at all (no such
				   console, not a pty, unsupported) */
};
enum stream_failure {
	STREAM_FAIL_TAKEN = 0,	/* the console alone: taken with force */
	STREAM_FAIL_LINK_LOST,	/* its connection dropped, hypervisor up */
	STREAM_FAIL_HV_LOST,	/* the hypervisor connection is gone */
};
struct stream;
typedef void (*stream_event_cb)(struct stream *, int, void *);
typedef void (*stream_open_cb)(struct stream *, enum stream_open_result,
    void *);
struct stream_ops {
	/*
	 * Start opening guest uuid's console alias: NULL with *result when
	 * it cannot start; else the stream, whose result comes to the
	 * callback later, from the loop (never inside open).  close() may
	 * come before it: the callback is not called then.
	 */
	/* Guest (hypervisor name, UUID)'s console alias. */
	struct stream	*(*open)(const char *, const char *, const char *,
			    int, stream_open_cb, void *,
			    enum stream_open_result *);
	/* Bytes sent or received; 0 from recv at end of file; -2 when
	 * nothing can move now; -1 on error (see error()). */
	int		 (*send)(struct stream *, const char *, size_t);
	int		 (*recv)(struct stream *, char *, size_t);
	int		 (*watch)(struct stream *, int, stream_event_cb, void *);
	void		 (*unwatch)(struct stream *);
	/* Finish (at end of file) or abort, then free. */
	void		 (*close)(struct stream *, int);
	/* 1 when len more bytes can be sent now without blocking. */
	int		 (*can_send)(struct stream *, size_t);
	/* Why a send or recv failed. */
	enum stream_failure (*failure)(struct stream *);
	const char	*(*error)(void);
};
extern const struct stream_ops	 stream_libvirt_ops;
extern const struct stream_ops	*stream_ops;

/* session.c */
enum session_state {
	SESSION_NEW = 0,
	SESSION_WAITING,	/* guest not running: waiting for STARTED */
	SESSION_OPENING,	/* opening the console stream */
	SESSION_ATTACHED,	/* bytes flow both ways */
	SESSION_LEFT,		/* the client closed while its console was
				   opening: its input goes once it opens */
	SESSION_CLOSING,	/* notice sent, waiting for it to drain */
	SESSION_DRAINING,	/* client gone, its input still going out */
	SESSION_DEAD,		/* destroyed; freed on the next loop pass */
};
enum session_reason {
	REASON_NONE = 0,
	/* disconnected: */
	REASON_ESCAPE,
	REASON_IDLE,
	REASON_GUEST_STOPPED,
	REASON_GUEST_MIGRATED,
	REASON_CONSOLE_TAKEN,
	REASON_TAKEN_OVER,
	REASON_HV_LOST,
	REASON_HV_REMOVED,	/* a reload removed its hypervisor */
	REASON_SHUTDOWN,
	REASON_TOO_SLOW,
	REASON_KICKED,
	REASON_LISTENER_REMOVED,
	REASON_EXPIRED,
	REASON_CONSOLE_LOST,	/* its own libvirt connection dropped */
	/* refused: */
	REASON_BUSY,
	REASON_NOT_RUNNING,
	REASON_UNKNOWN_GUEST,
	REASON_TOO_MANY,
	REASON_RECORDING_FAILED, /* record_required, and it could not */
	/* no notice: the client went away or broke */
	REASON_CLIENT_CLOSED,
	REASON_CLIENT_ERROR,
	REASON_MAX
};
/* The front doors, as metric labels and in `list` (CONTRACTS.md). */
enum session_door_kind {
	SESSION_DOOR_UNIX = 0,		/* the per-guest sockets */
	SESSION_DOOR_ATTACH,		/* the attach socket */
	SESSION_DOOR_WS,		/* WebSocket, plain */
	SESSION_DOOR_WSS,		/* WebSocket over TLS */
	SESSION_NDOORS
};
/* Which way bytes go, for residence times. */
enum session_dir {
	SESSION_TO_CLIENT = 0,		/* stream read .. client write */
	SESSION_TO_GUEST,		/* client read .. virStreamSend() */
	SESSION_NDIRS
};
struct session;
struct session_info {
	unsigned int	 id;
	const char	*guest;
	const char	*uuid;
	const char	*alias;
	const char	*state;
	const char	*peer;
	uint64_t	 bytes_in;
	uint64_t	 bytes_out;
	uint64_t	 bytes_dropped;	/* output past max_buffer */
	size_t		 pending_in;	/* input waiting in the console */
	size_t		 pending_out;	/* output waiting for the client */
	double		 idle;		/* seconds since activity */
	double		 age;		/* seconds since the client came */
	const char	*role;		/* "writer" or "viewer" */
	const char	*label;		/* the credential's label, or "" */
	uint64_t	 bytes_ignored;	/* a viewer's input, not sent */
	const char	*hypervisor;	/* its name */
	const char	*recording;	/* its recording's path, or NULL */
};
/* Since start, for metrics (live: the sessions in the table now). */
struct session_counters {
	uint64_t	 started[SESSION_NDOORS];
	uint64_t	 to_guest[SESSION_NDOORS];	/* bytes */
	uint64_t	 to_client[SESSION_NDOORS];
	uint64_t	 dropped[SESSION_NDOORS];
	uint64_t	 ended[REASON_MAX];	/* refused ones in refused */
	uint64_t	 refused[REASON_MAX];
	unsigned int	 live[SESSION_NDOORS][2];	/* by role */
	/* Residence time by door and direction (docs/OPERATIONS.md). */
	struct lat_hist	 forward[SESSION_NDOORS][SESSION_NDIRS];
	/* Of to_guest: the virStreamSend() calls alone, by door. */
	struct lat_hist	 send_call[SESSION_NDOORS];
};
struct session_door {
	const char	*name;
	enum session_door_kind kind;
	/* Takes bev: say goodbye for the reason, then free it. */
	void		(*close)(struct bufferevent *, enum session_reason,
			    void *);
	/*
	 * A door that frames messages beside the bytes (virtconsole.v1)
	 * takes each here, one JSON object, in order with the bytes: it goes
	 * after the first `at` bytes the session wrote to bev.  NULL: raw
	 * bytes only (gaps and runs are not told).  -1: the door holds too
	 * many; the session ends ("client too slow").
	 */
	int		(*message)(void *, const char *, size_t, uint64_t);
	/*
	 * A door that sends the bytes on itself (the WebSocket door frames
	 * them) times them to the client's socket: the first `at` bytes the
	 * session wrote to bev end with guest output read at t0 (lat_now()).
	 * NULL: the session times them out of bev.
	 */
	void		(*stamp)(void *, uint64_t, uint64_t);
	/*
	 * A door that can send guest output on without bev takes all n bytes
	 * here (returns n) or none (0: they go to bev); asked only while
	 * bev's output is empty, so the order of bytes holds.  NULL: bev.
	 */
	size_t		(*write)(void *, const char *, size_t);
	/*
	 * When the door read from the client what the session now reads from
	 * bev (lat_now()); NULL or 0: the session's own read is the start.
	 */
	uint64_t	(*read_at)(void *);
};
/* Where a new session's output starts (docs/SESSIONS.md, "Replay"). */
enum session_from {
	SESSION_FROM_DEFAULT = 0,	/* live; unix sockets: attach_replay */
	SESSION_FROM_LIVE,		/* the next byte read */
	SESSION_FROM_TAIL,		/* the last `bytes`, from a line start */
	SESSION_FROM_POS,		/* run:offset, then live */
};
/* What a new session asks for: its role, and where its output starts. */
enum session_role {
	SESSION_WRITER = 0,		/* the one client that types */
	SESSION_VIEWER,			/* read-only, up to max_viewers */
};
struct session_start {
	enum session_role	 role;
	const char		*label;		/* the credential's, or NULL */
	enum session_from	 from;
	uint64_t		 bytes;		/* TAIL */
	uint64_t		 run, offset;	/* POS */
	int			 no_history;	/* no `history` claim */
	const char		*resume;	/* a hello's resume id, or NULL */
};
#define SESSION_RESUME_LEN	32	/* hex digits of a resume id */
void		 session_init(struct event_base *, const struct config *);
void		 session_reconfigure(const struct config *);
struct session	*session_open(struct guest *, const char *,
		     struct bufferevent *, const char *,
		     const struct session_door *, void *,
		     const struct session_start *);
void		 session_guest_started(struct guest *);
void		 session_guest_stopped(struct guest *, enum session_reason);
void		 session_guest_removed(struct guest *);
void		 session_end_all(enum session_reason);
void		 session_kick(struct session *, enum session_reason);
void		 session_resize(struct session *, unsigned int, unsigned int);
unsigned int	 session_kick_guest(const char *, const char *, const char *,
		     enum session_reason, int);
void		 session_foreach(void (*)(const struct session_info *,
		     void *), void *);
int		 session_busy(const struct guest *, const char *);
unsigned int	 session_viewers(const struct guest *, const char *);
const char	*session_role_name(enum session_role);
unsigned int	 session_id(const struct session *);
unsigned int	 session_count(void);
void		 session_counters(struct session_counters *);
void		 session_count_refusal(enum session_reason);
const char	*session_door_name(enum session_door_kind);
struct lat_hist	*session_forward_hist(enum session_door_kind, enum session_dir);
unsigned int	 session_live(void);
const char	*session_state_name(enum session_state);
const char	*session_reason_text(enum session_reason);
int		 session_reason_refused(enum session_reason);
size_t		 session_notice(enum session_reason, char *, size_t);
const char	*session_find_escape(const char *, size_t, int);
extern struct fsm session_fsm;

/* console.c: one guest console, its stream, its input and its clients */
enum console_state {
	CONSOLE_CLOSED = 0,	/* no stream */
	CONSOLE_OPENING,	/* opening the stream */
	CONSOLE_OPEN,		/* stream open, read for the clients */
	CONSOLE_PARKED,		/* the guest stops: stream held, see park */
	CONSOLE_STOLEN,		/* captured, another client holds it: the
				   capture retries without force, later */
	CONSOLE_BACKOFF,	/* captured, its connection dropped: the
				   capture retries later */
	CONSOLE_DEAD,		/* unused: freed on the next loop pass */
	CONSOLE_NSTATES
};
struct console;
struct console_client;
struct console_client_ops {
	/* The console is open (after console_open() said 1). */
	void		(*opened)(void *);
	/* Guest output, for every client. */
	void		(*output)(void *, const char *, size_t, uint64_t);
	/* The console ended under the client: it must detach. */
	void		(*ended)(void *, enum session_reason);
	/* The writer's input: n bytes sent, pending still queued. */
	void		(*input_sent)(void *, size_t, size_t);
};
void		 console_init(struct event_base *);
struct console	*console_get(const char *, const char *, const char *,
		     const char *, unsigned long long);
struct console_client *console_attach(struct console *,
		     const struct console_client_ops *, void *, const char *,
		     const char *, struct lat_hist *, struct lat_hist *);
int		 console_open(struct console_client *, int,
		     enum session_reason *);
void		 console_input(struct console_client *, struct evbuffer *,
		     size_t, uint64_t);
size_t		 console_input_pending(const struct console_client *);
void		 console_detach(struct console_client *);
void		 console_guest_stopped(const struct guest *,
		     enum session_reason);
void		 console_guest_removed(const struct guest *);
void		 console_shutdown(void);
void		 console_reconfigure(const struct config *);
const struct history *console_history(const struct guest *, const char *);
size_t		 console_history_held(void);
const struct history *console_client_history(const struct console_client *);
void		 console_close_all(enum session_reason);
void		 console_close_guest(const struct guest *, enum session_reason);
unsigned int	 console_count(void);
void		 console_states(const char *, unsigned int [CONSOLE_NSTATES]);
void		 console_capture_guest(const struct guest *);
unsigned int	 console_captured(void);
int		 console_state_of(const struct guest *, const char *);
unsigned int	 console_backoff_next(unsigned int);
#define CONSOLE_BACKOFF_MAX	60	/* seconds between capture retries */
/* For the unit tests only: the backoff's unit, 1000 ms by default. */
void		 console_test_backoff_unit(unsigned int);
extern struct fsm console_fsm;

/*
 * history.c: one console's output, kept per guest run (pure: no libvirt,
 * no libevent).  The comment at the top of src/history.c says what is
 * kept, and how memory stays bounded.
 */
#define HISTORY_MAX		(1024UL * 1024 * 1024)	/* history, head */
#define HISTORY_RUNS_MAX	16			/* history_runs */
#define HISTORY_CHUNK		(16 * 1024)	/* bytes of one allocation */
#define HISTORY_GAPS_MAX	64		/* unknown gaps kept per run
						   (more: the oldest merged) */
struct history;
enum history_item {
	HISTORY_BYTES = 0,	/* data, len: the bytes from `from` to `to` */
	HISTORY_GAP,		/* bytes `from` to `to` are no longer kept */
	HISTORY_GAP_UNKNOWN,	/* bytes of unknown length lost at `from`
				   (`to` == `from`), or from `from` to `to`
				   (gaps merged: those bytes are not read) */
	HISTORY_END,		/* nothing more yet: `from` is the run's end */
	HISTORY_NO_RUN,		/* error: no such run kept */
	HISTORY_BEYOND,		/* error: the offset is past the run's end */
};
/* Where a reader stands. */
struct history_pos {
	uint64_t		 run;
	uint64_t		 offset;	/* of the next byte it wants */
	int			 gap_told;	/* the unknown gap at offset
						   was reported to it (a
						   merged range is told
						   anyway) */
};
/* What comes next for a reader, and where it stands after it. */
struct history_read {
	enum history_item	 item;
	uint64_t		 from, to;
	const char		*data;		/* BYTES: valid until the
						   history next changes */
	size_t			 len;
	uint64_t		 next_run;	/* END: the run after, 0 none */
	struct history_pos	 next;
};
struct history_run_info {
	uint64_t		 id;
	uint64_t		 total;		/* bytes read: next offset */
	uint64_t		 head_end;	/* kept: [0, head_end) */
	uint64_t		 tail_start;	/* and [tail_start, total) */
	size_t			 gaps;		/* unknown gaps kept */
	uint64_t		 gaps_merged;	/* merges past the max */
	size_t			 held;		/* chunk bytes allocated */
};
struct history	*history_new(size_t, size_t, unsigned int);
void		 history_free(struct history *);
int		 history_set_limits(struct history *, size_t, size_t,
		     unsigned int);
void		 history_append(struct history *, const void *, size_t);
void		 history_gap(struct history *);
uint64_t	 history_run_start(struct history *);
enum history_item history_read(const struct history *,
		     const struct history_pos *, size_t,
		     struct history_read *);
uint64_t	 history_tail_start(const struct history *, uint64_t);
uint64_t	 history_run(const struct history *);
uint64_t	 history_offset(const struct history *);
uint64_t	 history_oldest(const struct history *);
size_t		 history_held(const struct history *);
size_t		 history_runs(const struct history *,
		     struct history_run_info *, size_t);

/* listen.c */
struct listener;
struct stat;
typedef void (*listener_cb)(int, void *);	/* an accepted socket */
int		 listen_group(const struct config *, gid_t *, int *, char *,
		     size_t);
int		 listen_dir(const char *, const char *, uid_t, int *, char **,
		     char *, size_t);
int		 listen_stale(int, const char *, const char *);
int		 listen_unix(int, const char *, const char *, int, gid_t,
		     uid_t, int, struct stat *);
void		 listen_unlink(int, const char *, dev_t, ino_t);
struct listen_path {
	char		*path;
	char		*name;		/* in dfd */
	int		 dfd;		/* of path's directory */
	dev_t		 dev;		/* of the socket bound */
	ino_t		 ino;
};
int		 listen_path_open(struct listen_path *, const char *,
		     const char *, uid_t, int, gid_t, uid_t, int, char *,
		     size_t);
void		 listen_path_close(struct listen_path *);
struct listener	*listener_new(struct event_base *, int,
		     listener_cb, void *, const char *);
void		 listener_free(struct listener *);

/* usock.c */
struct usock;
int		 usock_init(struct event_base *, const struct config *,
		     char *, size_t);
void		 usock_shutdown(void);
int		 usock_name_ok(const char *, const char *);

/* control.c */
typedef int (*control_reload_fn)(char *, size_t);
int		 control_init(struct event_base *, const struct config *,
		     control_reload_fn, char *, size_t);
void		 control_shutdown(void);
int		 control_give(uid_t, char *, size_t);

/* asock.c */
int		 asock_init(struct event_base *, const struct config *, char *,
		     size_t);
void		 asock_shutdown(void);
const char	*asock_parse(char *, const char **, const char **,
		     const char **, struct session_start *);

/* web.c */
int		 web_init(struct event_base *, const struct config *, char *,
		     size_t);
int		 web_reload_check(const struct config *, char *, size_t);
void		 web_reconfigure(const struct config *);
void		 web_shutdown(void);
unsigned int	 web_revoke_guest(const char *, const char *, const char *,
		     int);

/* wsock.c */
#define WSOCK_RAW	0	/* subprotocol binary or none */
#define WSOCK_BASE64	1	/* subprotocol base64 */
#define WSOCK_V1	2	/* subprotocol virtconsole.v1 */
/* What an upgraded connection starts with. */
struct wsock_open {
	const char		*addr;		/* the client's address */
	const char		*peer;		/* address:port, for logs */
	const char		*listener;	/* the listener's bound name */
	struct guest		*guest;
	const char		*alias;		/* NULL: the first console */
	int			 mode;		/* WSOCK_RAW, _BASE64, _V1 */
	const char		*subject;	/* the credential, for logs */
	unsigned int		 ping_interval;
	int64_t			 expires;	/* browser session's end, 0 */
	const uint8_t		*session_id;	/* its cookie's id, or NULL */
	int64_t			 session_exp;	/* the cookie's expiry */
	const struct session_start *start;	/* NULL: live */
};
void		 wsock_start(struct event_base *, struct bufferevent *,
		     const struct wsock_open *);
typedef void (*wsock_credential_cb)(const uint8_t *, int64_t, void *);
void		 wsock_credentials(const char *, const char *, const char *, int,
		     wsock_credential_cb, void *);
unsigned int	 wsock_count(void);
unsigned int	 wsock_count_address(const char *);
uint16_t	 wsock_close_code(enum session_reason);
void		 wsock_listener_removed(const char *);
void		 wsock_shutdown(void);
extern struct fsm	 wsock_fsm;
/* For the unit tests only (tests/unit/test_wsock.c). */
struct wsock;
extern void	(*wsock_test_observer)(struct wsock *, int);
int		 wsock_test_inject(struct wsock *, int, int *);
void		 wsock_test_linger(unsigned int);
/* TLS writes made at once, and those whose record the socket took in part. */
extern unsigned long	 wsock_test_tls_now, wsock_test_tls_requeued;

/* http.c */
#define HTTP_MAX_LINE		8192	/* request line, without CRLF */
#define HTTP_MAX_FIELD		8192	/* one header line, without CRLF */
#define HTTP_MAX_HEAD		16384	/* request line to blank line */
#define HTTP_MAX_HEADERS	64
/* How far http_scan() has looked into a head being received; zero it. */
struct http_scan {
	size_t			 seen;		/* bytes searched for LF */
	size_t			 pos;		/* start of the unfinished line */
	size_t			 nlines;	/* complete lines, checked */
	size_t			 examined;	/* bytes looked at, in all */
	int			 minor;
};
struct http_field {
	char			*name;
	char			*value;		/* OWS trimmed */
};
struct http_request {
	char			*method;	/* any token: the router picks */
	char			*target;	/* as sent, origin-form */
	char			*path;		/* target before '?', raw */
	char			*query;		/* after '?', raw, or NULL */
	int			 minor;		/* HTTP/1.minor */
	struct http_field	*fields;	/* in order received */
	size_t			 nfields;
};
int		 http_scan(struct http_scan *, const char *, size_t, int *);
int		 http_parse(const char *, size_t, struct http_request *,
		     size_t *, int *);
void		 http_request_free(struct http_request *);
const char	*http_header(const struct http_request *, const char *);
int		 http_header_count(const struct http_request *,
		     const char *);
int		 http_query_has(const char *, const char *);
int		 http_header_has_token(const struct http_request *,
		     const char *, const char *);
int		 http_path_decode(const char *, char *, size_t);
int		 http_query_get(const char *, const char *, char *, size_t);
int		 http_cookie_get(const struct http_request *, const char *,
		     char *, size_t);
const char	*http_reason(int);

/* ws.c */
#define WS_OP_CONT	0x0
#define WS_OP_TEXT	0x1
#define WS_OP_BINARY	0x2
#define WS_OP_CLOSE	0x8
#define WS_OP_PING	0x9
#define WS_OP_PONG	0xa
#define WS_HEADER_MAX	10	/* a server frame header */
#define WS_CONTROL_MAX	125	/* a control frame's payload */
#define WS_CHUNK	8192	/* most data bytes in one WS_EV_DATA */
#define WS_ACCEPT_LEN	29	/* Sec-WebSocket-Accept and a NUL */
#define WS_B64_SIZE(n)	(((n) + 2) / 3 * 4 + 1)	/* encoded, and a NUL */
enum ws_event_type {
	WS_EV_NEED_MORE = 0,	/* all input used, nothing to report */
	WS_EV_DATA,		/* a chunk of a text or binary message */
	WS_EV_PING,
	WS_EV_PONG,
	WS_EV_CLOSE,		/* valid close frame: answer and stop */
	WS_EV_ERROR,		/* send a close with code, then drop */
};
struct ws_event {
	enum ws_event_type	 type;
	int			 opcode;	/* DATA: WS_OP_TEXT, _BINARY */
	int			 fin;		/* DATA: the message ends here */
	const uint8_t		*data;		/* DATA, PING, PONG: unmasked */
	size_t			 len;
	uint16_t		 code;		/* CLOSE: 0 if none; ERROR */
	const char		*reason;	/* CLOSE: peer's; ERROR: why */
	size_t			 reason_len;	/* NUL-terminated too */
};
struct ws_utf8 {
	uint8_t			 need;		/* continuation bytes due */
	uint8_t			 lo, hi;	/* range of the next one */
};
struct ws_reader {
	int			 state;
	int			 client;	/* reads a server's frames */
	uint64_t		 max_message;	/* sum of a message's frames */
	/* the frame being read */
	uint8_t			 hdr[14];
	size_t			 hdr_have, hdr_need;
	int			 fin, opcode;
	uint8_t			 mask[4];
	unsigned int		 mask_off;
	uint64_t		 remain;	/* payload still to come */
	/* the data message in progress, across fragments */
	int			 msg_opcode;	/* 0: none */
	uint64_t		 msg_len;
	struct ws_utf8		 utf8;
	/* a control frame, kept whole */
	uint8_t			 ctl[WS_CONTROL_MAX];
	size_t			 ctl_len;
	char			 close_reason[WS_CONTROL_MAX - 1];
	uint16_t		 err_code;
	const char		*err_why;
	uint8_t			 chunk[WS_CHUNK];	/* unmasked data */
};
void		 ws_reader_init(struct ws_reader *, size_t);
void		 ws_reader_init_client(struct ws_reader *, size_t);
int		 ws_reader_feed(struct ws_reader *, const uint8_t *, size_t,
		     size_t *, struct ws_event *);
int		 ws_accept_key(const char *, char [WS_ACCEPT_LEN]);
size_t		 ws_frame_header(uint8_t [WS_HEADER_MAX], int, int, uint64_t);
size_t		 ws_close_payload(uint8_t [WS_CONTROL_MAX], uint16_t,
		     const char *);
int		 ws_close_code_ok(unsigned int);
size_t		 ws_b64_encode(const uint8_t *, size_t, char *);
ssize_t		 ws_b64_decode(const char *, size_t, uint8_t *, size_t);
void		 ws_utf8_init(struct ws_utf8 *);
int		 ws_utf8_feed(struct ws_utf8 *, const uint8_t *, size_t);
int		 ws_utf8_done(const struct ws_utf8 *);
int		 ws_utf8_valid(const void *, size_t);

/* token.c */
#define TOKEN_KIND_TOKEN	1	/* virtconsolectl token: accepted once */
#define TOKEN_KIND_SESSION	2	/* browser-session cookie */
#define TOKEN_KEY_LEN		32	/* the secret file: exactly this, raw */
#define TOKEN_ID_LEN		16
#define TOKEN_ID_HEX_LEN	(2 * TOKEN_ID_LEN + 1)
#define TOKEN_AUD_LEN		16	/* state_dir/audience: exactly this, raw */
#define TOKEN_ALIAS_MAX		32
#define TOKEN_HV_MAX		32	/* [A-Za-z0-9_-]{1,32}, or "any" */
#define TOKEN_LABEL_MAX		64	/* bytes; no control characters */
#define TOKEN_ANY		"any"	/* alias or hv: every one */
#define TOKEN_HV_DEFAULT	"default"	/* the `uri` key's hypervisor */
#define TOKEN_ROLE_WRITER	0
#define TOKEN_ROLE_VIEWER	1
#define TOKEN_TEXT_MAX		308	/* longest token text and its NUL */
#define TOKEN_MAX_LIFETIME	(366 * 86400)	/* verify refuses more */
#define TOKEN_CACHE_MAX		65536	/* live ids in the replay cache */
/* Format version 2 (CONTRACTS.md, docs/WEB.md): the claims. */
struct token {
	int			 kind;		/* TOKEN_KIND_* */
	uint8_t			 id[TOKEN_ID_LEN];	/* random, loggable */
	uint8_t			 aud[TOKEN_AUD_LEN];	/* the daemon's identity */
	char			 hv[TOKEN_HV_MAX + 1];	/* or "any" */
	int			 all_guests;
	char			 uuid[GUEST_UUID_LEN];	/* lowercase, or "" */
	char			 alias[TOKEN_ALIAS_MAX + 1];	/* or "any" */
	int			 role;		/* TOKEN_ROLE_* */
	int			 history;	/* may read history */
	char			 label[TOKEN_LABEL_MAX + 1];	/* or "" */
	int64_t			 iat;		/* issued (a session: login) */
	int64_t			 expires;	/* unix seconds */
	int			 checked;	/* session: its listener checked
						   a token (never auth=none) */
};
struct token_cache_slot;
struct token_cache {
	struct token_cache_slot	*slots;
	size_t			 nslots;
	size_t			 count;
	int64_t			 horizon;	/* latest expiry time */
};
int		 token_secret_load(const char *, uint8_t [TOKEN_KEY_LEN], int,
		     char *, size_t);
int		 token_audience_load(const char *, uint8_t [TOKEN_AUD_LEN],
		     int, char *, size_t);
int		 token_new(struct token *, int, const uint8_t [TOKEN_AUD_LEN],
		     const char *, const char *, const char *, int64_t,
		     int64_t);
int		 token_label_ok(const char *);
int		 token_mint(const uint8_t [TOKEN_KEY_LEN], const struct token *,
		     char *, size_t);
int		 token_verify(const uint8_t [TOKEN_KEY_LEN],
		     const uint8_t [TOKEN_AUD_LEN], const char *, time_t, int,
		     struct token *, const char **);
int		 token_allows(const struct token *, const char *, const char *,
		     const char *);
void		 token_id_hex(const struct token *, char [TOKEN_ID_HEX_LEN]);
int		 token_cookie_header(char *, size_t, const char *,
		     const char *, int, int, const char *);
void		 token_cache_init(struct token_cache *);
void		 token_cache_free(struct token_cache *);
int		 token_cache_use(struct token_cache *, const struct token *,
		     time_t);
void		 token_cache_expire(struct token_cache *, time_t);
size_t		 token_cache_count(const struct token_cache *);
int		 token_cache_has(const struct token_cache *, const uint8_t *);

/* statedb.c: the replay cache and the revocations, kept in state_dir */
struct statedb;
struct statedb	*statedb_open(const char *, time_t, char *, size_t);
void		 statedb_close(struct statedb *);
int		 statedb_use(struct statedb *, const uint8_t [TOKEN_ID_LEN],
		     int64_t, time_t);
int		 statedb_revoke(struct statedb *, const uint8_t [TOKEN_ID_LEN],
		     int64_t, time_t);
int		 statedb_dead(const struct statedb *,
		     const uint8_t [TOKEN_ID_LEN]);
void		 statedb_expire(struct statedb *, time_t);
size_t		 statedb_count(const struct statedb *);

/* notify.c */
int		 notify_init(void);
void		 notify_send(const char *, ...) VCD_PRINTF(1, 2);
void		 notify_ready(const char *);
void		 notify_reloading(void);
void		 notify_stopping(void);

/* hv.c */
enum hv_state {
	HV_DISCONNECTED = 0,
	HV_CONNECTED,
	HV_SHUTDOWN,
};
struct hv;
/* What a hypervisor reports, to callbacks registered at hv_init(). */
struct hv_cbs {
	void		(*connected)(struct hv *, virConnectPtr, void *);
	void		(*disconnected)(struct hv *, void *);
	void		(*lifecycle)(struct hv *, virDomainPtr, int, int,
			    void *);
	/* A reload removed it: nothing of it may stay (it is freed). */
	void		(*removed)(struct hv *, void *);
};
extern const struct hv_cbs guest_hv_cbs;	/* guest.c's */
int		 hv_init(struct event_base *, const struct config *,
		     const struct hv_cbs *, void *);
void		 hv_reconfigure(const struct config *);
void		 hv_shutdown(void);
enum hv_state	 hv_get_state(void);
enum hv_state	 hv_state(const struct hv *);
const char	*hv_name(const struct hv *);
struct hv	*hv_find(const char *);
struct hv	*hv_next(const struct hv *);
int		 hv_settled(void);
const char	*hv_state_name(enum hv_state);
struct hv_link;
struct hv_link	*hv_link_get(struct hv *, const char *);
struct hv	*hv_link_hv(const struct hv_link *);
void		 hv_link_put(struct hv_link *);
void		 hv_link_call(struct hv_link *, void (*)(void *),
		     void (*)(void *), void *);
virConnectPtr	 hv_link_conn(const struct hv_link *);
size_t		 hv_link_backlog(const struct hv_link *);
int		 hv_link_lost_alone(const struct hv_link *);
int		 hv_link_is_lost(const struct hv_link *);
void		 hv_link_on_lost(void (*)(struct hv_link *));
unsigned int	 hv_link_count(void);

/* util.c */
int		 shared_dir(const char *);
int		 dir_open(const char *);
void		*xmalloc(size_t);
void		*xcalloc(size_t, size_t);
void		*xrealloc(void *, size_t);
char		*xstrdup(const char *);
char		*xstrndup(const char *, size_t);
int		 xasprintf(char **, const char *, ...) VCD_PRINTF(2, 3);
void		 timer_arm(struct event *, unsigned int);
size_t		 bev_write_now(struct bufferevent *, const void *, size_t);
struct iovec;
size_t		 bev_writev_now(struct bufferevent *, struct iovec *, int);
struct evbuffer_cb_entry *bev_lat_watch(struct bufferevent *,
		     struct lat_stream *);
void		 bev_lat_unwatch(struct bufferevent *,
		     struct evbuffer_cb_entry **, struct lat_stream *);
#define SOCKET_NAME_BAD		1
#define SOCKET_NAME_LONG	2
int		 socket_name_check(const char *, const char *);
int		 socket_in_use(const char *);
struct stat;
int		 socket_path_at(int, const char *, struct stat *);
size_t		 utf8_len(const unsigned char *, size_t);
struct evbuffer;
void		 random_bytes(void *, size_t);
int		 parse_uint(const char *, unsigned long long,
		     unsigned long long *);
int		 parse_history_pos(const char *, struct history_pos *);

/* json.c */
void		 json_add_string(struct evbuffer *, const char *);
int		 json_object_valid(const char *, size_t);
int		 json_object_member(const char *, size_t, const char *,
		     const char **, size_t *);

#endif /* VIRTCONSOLED_H */
