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
#include <stdint.h>

struct event_base;

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
void		 log_init(enum log_target, enum log_level, const char *);
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

/* config.c */
enum config_policy {
	POLICY_REFUSE = 0,
	POLICY_TAKEOVER,
};
#define ESCAPE_NONE (-1)
struct config_listen {
	char			*address;	/* numeric IPv4 or IPv6 */
	int			 family;	/* AF_INET or AF_INET6 */
	int			 port;		/* 0: pick a free one */
	int			 tls;
	int			 auth_none;
	int			 line;
	TAILQ_ENTRY(config_listen) entry;
};
TAILQ_HEAD(config_listens, config_listen);
struct config_origin {
	char			*origin;
	TAILQ_ENTRY(config_origin) entry;
};
TAILQ_HEAD(config_origins, config_origin);
struct config {
	char			*path;
	/* foundation */
	char			*uri;
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
	/* web */
	struct config_listens	 listens;
	char			*tls_cert;
	char			*tls_key;
	char			*token_secret_file;
	unsigned int		 token_ttl;
	unsigned int		 session_ttl;
	struct config_origins	 allowed_origins; /* empty: own Host */
	unsigned int		 ping_interval;
	unsigned int		 max_clients;
	unsigned int		 max_clients_per_address;
	unsigned int		 handshake_timeout;
	char			*web_root;
	/* operations */
	char			*control_socket;
	char			*user;
	char			*group;
};
struct config	*config_new(void);
struct config	*config_load(const char *, char *, size_t);
struct config	*config_parse(const char *, const char *, size_t, char *,
		     size_t);
void		 config_free(struct config *);
const char	*config_policy_name(enum config_policy);
const char	*config_escape_name(int);

/* evglue.c */
int		 evglue_register(struct event_base *);
void		 evglue_unregister(void);
unsigned int	 evglue_pending_frees(void);
unsigned int	 evglue_handle_count(void);
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

/* pidfile.c */
struct pidfile;
struct pidfile	*pidfile_acquire(const char *, char *, size_t);
void		 pidfile_release(struct pidfile *);
const char	*pidfile_path(const struct pidfile *);

/* daemon.c */
int		 daemon_detach(void);
void		 daemon_ready(void);

/* hv.c */
enum hv_state {
	HV_DISCONNECTED = 0,
	HV_CONNECTED,
	HV_SHUTDOWN,
};
int		 hv_init(struct event_base *, const struct config *);
void		 hv_reconfigure(const struct config *);
void		 hv_shutdown(void);
enum hv_state	 hv_get_state(void);
const char	*hv_state_name(enum hv_state);

/* util.c */
void		*xmalloc(size_t);
void		*xcalloc(size_t, size_t);
void		*xrealloc(void *, size_t);
char		*xstrdup(const char *);
char		*xstrndup(const char *, size_t);
int		 xasprintf(char **, const char *, ...) VCD_PRINTF(2, 3);
int		 parse_uint(const char *, unsigned long long,
		     unsigned long long *);

#endif /* VIRTCONSOLED_H */
