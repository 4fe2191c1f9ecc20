/*
 * A fake console stream for unit tests (stream_ops): what the session
 * sends to the "guest" collects in in; what the test makes the "guest"
 * print waits in out and is announced as READABLE through the event loop,
 * as libvirt would.
 */
struct fake_stream {
	struct evbuffer	*in;		/* from the session */
	struct evbuffer	*out;		/* to the session */
	int		 eof;		/* the guest's end of file, after out */
	int		 full;		/* send() says "not now" */
	int		 fail;		/* send() and recv() fail */
	int		 stuck;		/* can_send() says no: a stuck guest */
	int		 opening;	/* its open's result not yet told */
	int		 force;		/* opened with force */
	size_t		 packet;	/* recv() gives at most this (0: all),
					   as libvirt gives a packet a time */
	stream_open_cb	 open_cb;
	void		*open_arg;
	int		 events;	/* watched */
	stream_event_cb	 cb;
	void		*arg;
	struct event	*ev;		/* announces events from the loop */
};

extern const struct stream_ops	 fake_stream_ops;
extern struct fake_stream	*fake_last;	/* the last one opened */
extern enum stream_open_result	 fake_open_result;
extern int			 fake_opened, fake_closed;
extern int			 fake_open_null;	/* open() cannot start */
extern int			 fake_open_delay;	/* opens wait while set */
extern int			 fake_held;	/* another client holds the
						   console: an open without
						   force is refused busy */
extern int			 fake_open_calls, fake_open_forced;
extern enum stream_failure	 fake_failure;	/* what a failure was */
extern struct evbuffer		*fake_sent;	/* every byte sent, ever */

void	fake_stream_init(struct event_base *);
void	fake_stream_print(struct fake_stream *, const char *);
void	fake_stream_end(struct fake_stream *);
void	fake_stream_fail(struct fake_stream *);
