/*
 * The engine's transport (part of the uiommu_host addon): the Unix socket
 * the preload library connects to, served by a synchronous loop in C
 * instead of Node's streams.
 *
 * Why: a round trip through libuv and net.Socket (wake-up, 'data' event,
 * Buffer churn, write request) costs more than the engine's work on most
 * requests. Here the engine blocks in epoll_wait over its connections and
 * libuv's own backend fd, and returns to JavaScript with the next whole
 * request; when libuv has something to do (a timer, a child's exit, a test
 * client in the same process) the loop returns to the event loop, which
 * calls back (a uv_poll on the connection epoll) when a client speaks
 * again. An idle engine sleeps in the kernel.
 *
 * A connection may also have a channel (chan.c; docs/engine-protocol.md,
 * *Channel*): its library posts requests in shared slots and finds the
 * answers there. Requests come from a channel when the connection is
 * served (its slots first), its doorbell (an eventfd) rings or a DOORBELL
 * frame says so, and, for a
 * connection served from its channel in the last HOT_NS whose library runs
 * on another CPU, by polling for a bounded, adapted time before sleeping:
 * a request posted meanwhile then costs no wake-up on either side.
 *
 * A request usually arrives whole in one recv (CONN_BUF bytes at a time);
 * bytes that followed it in that read wait in the connection's buffer and
 * are served in its next turn (buffered frames and the sockets alternate).
 *
 * Limits (backpressure): a connection is served one frame at a time and
 * only while its previous answer has left completely. A client that does
 * not read its answers is paused: its further requests stay in its own
 * socket buffer (bounded by the kernel) and in at most CONN_BUF bytes of
 * ours, the engine holds at most one unsent answer for it. A payload over UIOMMU_MAX_PAYLOAD is read and
 * thrown away, and the request handed over without it (flagged), so the
 * engine answers it with an errno; the memory a connection holds is
 * freed when it closes.
 *
 *   transportOpen(path, inBuf, outBuf, onReady) -> handle
 *       listen at path (which must not exist); onReady() is called from
 *       the event loop when connections need service
 *   transportNext(handle) -> event   EV_* below; details in handle.meta
 *   transportReply(handle, fd, len)  send outBuf[0..len) to connection fd
 *   transportDrop(handle, fd)        close connection fd (no EV_CLOSE)
 *   transportClose(handle)           close the listener and every connection
 */
#define _GNU_SOURCE
#define NAPI_VERSION 8
#include "chan.h"
#include "protocol.h"
#include "spin.h"
#include "transport.h"
#include <errno.h>
#include <sched.h>
#include <node_api.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

/* What transportNext reports. */
enum {
	EV_YIELD = 0,	/* back to the event loop */
	EV_REQUEST = 1, /* meta: fd, frame bytes in inBuf, flags */
	EV_CONNECT = 2, /* meta: fd */
	EV_CLOSE = 3,	/* meta: fd; the connection is gone */
};

/* meta[2] of EV_REQUEST: the payload was over the limit and was thrown away. */
#define REQ_OVERSIZE 1

#define HDR sizeof(struct uiommu_req)
#define READY_MAX 32
/*
 * Bytes a connection reads at once: a whole request (header and an ioctl's
 * argument struct) in one recv. What follows the frame in the same read
 * (a client that did not wait for its answer) stays here for the next one.
 */
#define CONN_BUF 1024
/*
 * epoll's word for a connection's doorbell: the connection's fd with this
 * bit (every other entry's word is its own fd).
 */
#define BELL_KEY (1ull << 32)
/* Answers a connection may owe at once: its slots, and frames a restarted call holds back. */
#define ROUTE_MAX 32
/* The answer of a request read from the socket goes back on it (else: to its channel slot). */
#define ROUTE_SOCKET 0xff
/* Connections whose channel is polled before sleeping: served from it within HOT_NS. */
#define HOT_MAX 8
#define HOT_NS 2000000
/* Requests taken from hot channels in a row before the sockets and libuv are looked at. */
#define HOT_STREAK 16
/* Bounds of how long the engine polls channels before it sleeps (learnt: spin.h). */
#define SPIN_MIN_NS 4000
#define SPIN_MAX_NS 200000
/* While polling, how often the sockets and the event loop are looked at (epoll_wait, no wait). */
#define POLL_LOOK_NS 16000

struct conn {
	int fd;
	uint32_t have; /* bytes in buf: the current frame, then any that followed it */
	uint32_t cap;  /* of buf */
	uint32_t skip; /* oversized payload bytes still to throw away */
	int oversize;  /* the frame in buf is a header whose payload is being thrown away */
	int queued;    /* on the transport's list of connections with buffered bytes */
	struct conn *next_queued;
	uint8_t *buf; /* inline, or malloc'ed while a frame is larger than CONN_BUF */
	uint8_t *out; /* unsent answer bytes: the connection is paused while set */
	uint32_t out_len, out_off;
	struct chan_end chan;
	/* where the answers owed go, in the order the requests were handed over */
	uint8_t route[ROUTE_MAX];
	uint32_t route_at, route_len;
	int64_t hot_ns; /* when a request was last taken from its channel */
	uint8_t inline_buf[CONN_BUF];
};

struct transport {
	napi_env env;
	uv_loop_t *loop;
	int listen_fd;
	int ep;		/* the listener and every connection: what libuv watches */
	int wait_ep;	/* the same fds and libuv's backend fd: where the loop sleeps */
	uv_poll_t poll; /* libuv's watch on ep while the loop is not running */
	uv_idle_t idle; /* the loop's next turn, while buffered frames wait */
	int open_handles;
	int polling, closed;
	napi_ref on_ready, in_ref, out_ref, self;
	napi_async_context async;
	uint8_t *in, *out;
	size_t in_cap, out_cap;
	int32_t *meta;
	struct conn **conns; /* by fd */
	size_t nconns;
	/* connections whose buffer may hold a whole frame epoll cannot see, oldest first */
	struct conn *queue_head, *queue_tail;
	int queue_turn; /* the queue's turn is next (else the sockets') */
	struct epoll_event ready[READY_MAX];
	int nready, at;
	int yield;	     /* libuv has work: return to it after the ready list */
	int64_t deadline_ms; /* when libuv's next timer is due; -1: none */
	int hot[HOT_MAX];    /* fds of connections recently served from their channel */
	int nhot;
	int chan_polling; /* polling is set in the channels of hot[] */
	int hot_streak;	  /* requests taken from hot channels since the sockets were looked at */
	int hot_turn;	  /* where take_hot looks first */
	struct spin_learner spin; /* how long the next poll may last */
	int64_t poll_since;	  /* when the poll a channel's request may end began; 0: none */
};

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t now_ms(void)
{
	return now_ns() / 1000000;
}

static struct conn *conn_of(struct transport *t, int fd)
{
	return fd >= 0 && (size_t)fd < t->nconns ? t->conns[fd] : NULL;
}

/* Puts `c` at the end of the list of connections with buffered bytes (once). */
static void enqueue(struct transport *t, struct conn *c)
{
	if (c->queued)
		return;
	c->queued = 1;
	c->next_queued = NULL;
	if (t->queue_tail)
		t->queue_tail->next_queued = c;
	else
		t->queue_head = c;
	t->queue_tail = c;
}

static struct conn *dequeue(struct transport *t)
{
	struct conn *c = t->queue_head;

	if (!c)
		return NULL;
	t->queue_head = c->next_queued;
	if (!t->queue_head)
		t->queue_tail = NULL;
	c->queued = 0;
	return c;
}

static void unqueue(struct transport *t, struct conn *c)
{
	struct conn **p = &t->queue_head, *prev = NULL;

	for (; *p; prev = *p, p = &(*p)->next_queued) {
		if (*p != c)
			continue;
		*p = c->next_queued;
		if (t->queue_tail == c)
			t->queue_tail = prev;
		c->queued = 0;
		return;
	}
}

static void hot_forget(struct transport *t, int fd)
{
	for (int i = 0; i < t->nhot; i++)
		if (t->hot[i] == fd)
			t->hot[i--] = t->hot[--t->nhot];
}

static void conn_free(struct transport *t, struct conn *c)
{
	unqueue(t, c);
	hot_forget(t, c->fd);
	t->conns[c->fd] = NULL;
	if (c->chan.page) {
		/* the library holds the same file: closing ours would not end the watch */
		epoll_ctl(t->ep, EPOLL_CTL_DEL, c->chan.bell, NULL);
		epoll_ctl(t->wait_ep, EPOLL_CTL_DEL, c->chan.bell, NULL);
	}
	chan_release(&c->chan);
	close(c->fd);
	if (c->buf != c->inline_buf)
		free(c->buf);
	free(c->out);
	free(c);
}

/* Wait for input (EPOLLIN) or for room to send the unsent answer (EPOLLOUT). */
static void conn_watch(struct transport *t, struct conn *c)
{
	struct epoll_event ev = { .events = c->out ? EPOLLOUT : EPOLLIN,
				  .data.u64 = (uint32_t)c->fd };

	epoll_ctl(t->ep, EPOLL_CTL_MOD, c->fd, &ev);
	epoll_ctl(t->wait_ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/*
 * Watch `fd` for input in both sets, under the word `key`: one epoll_wait
 * on wait_ep then tells the loop which connection is ready (no second call
 * on ep); ep is what libuv watches while the loop is not running.
 */
static int watch_both(struct transport *t, int fd, uint64_t key)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = key };

	if (epoll_ctl(t->ep, EPOLL_CTL_ADD, fd, &ev))
		return -1;
	if (epoll_ctl(t->wait_ep, EPOLL_CTL_ADD, fd, &ev)) {
		epoll_ctl(t->ep, EPOLL_CTL_DEL, fd, NULL);
		return -1;
	}
	return 0;
}

static int conn_add(struct transport *t, int fd)
{
	struct conn *c;

	if ((size_t)fd >= t->nconns) {
		size_t n = (size_t)fd * 2 + 16;
		struct conn **grown = realloc(t->conns, n * sizeof(*grown));

		if (!grown)
			return -1;
		memset(grown + t->nconns, 0, (n - t->nconns) * sizeof(*grown));
		t->conns = grown;
		t->nconns = n;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return -1;
	c->fd = fd;
	c->buf = c->inline_buf;
	c->cap = CONN_BUF;
	if (watch_both(t, fd, (uint32_t)fd)) {
		free(c);
		return -1;
	}
	t->conns[fd] = c;
	return 0;
}

/*
 * Sends what is unsent; 0 when all of it left (the connection is read
 * again, its buffered bytes first), 1 when the socket is full, -1 when
 * the peer is gone.
 */
static int conn_flush(struct transport *t, struct conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
				 MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 1;
		if (n <= 0)
			return -1;
		c->out_off += (uint32_t)n;
	}
	free(c->out);
	c->out = NULL;
	c->out_len = c->out_off = 0;
	if (c->have)
		enqueue(t, c);
	return 0;
}

/* The payload length the header at the start of buf announces. */
static uint32_t frame_payload(const struct conn *c)
{
	uint32_t len;

	memcpy(&len, c->buf + 4, sizeof(len));
	return len;
}

/* Room for a frame of `need` bytes: buf moves to the heap (back to inline_buf in consume). */
static int conn_grow(struct conn *c, uint32_t need)
{
	uint8_t *grown = malloc(need);

	if (!grown)
		return -1;
	memcpy(grown, c->buf, c->have);
	if (c->buf != c->inline_buf)
		free(c->buf);
	c->buf = grown;
	c->cap = need;
	return 0;
}

/* Drops the first `n` bytes of buf (the frame handed over). */
static void consume(struct conn *c, uint32_t n)
{
	c->have -= n;
	if (c->buf != c->inline_buf) {
		/* a heap buffer was filled up to its frame: nothing follows it */
		free(c->buf);
		c->buf = c->inline_buf;
		c->cap = CONN_BUF;
		c->have = 0;
	} else if (c->have) {
		memmove(c->buf, c->buf + n, c->have);
	}
}

/*
 * Reads toward the current frame without blocking, usually all of it in one
 * recv: 1 when buf starts with it whole (or with its header, an oversized
 * payload thrown away), 0 when more bytes are needed, -1 when the peer is
 * gone (or no buffer can be had). A frame larger than CONN_BUF is read
 * into a buffer of its size, and only it.
 */
static int conn_read(struct conn *c)
{
	for (;;) {
		uint8_t sink[4096];
		uint8_t *dst = c->buf + c->have;
		size_t want = c->cap - c->have;
		ssize_t n;

		if (c->oversize) {
			if (!c->skip)
				return 1;
			dst = sink;
			want = c->skip < sizeof(sink) ? c->skip : sizeof(sink);
		} else if (c->have >= HDR) {
			uint32_t len = frame_payload(c);

			if (len > UIOMMU_MAX_PAYLOAD) {
				/* keep the header; throw the payload away, what is buffered first */
				uint32_t extra = c->have - (uint32_t)HDR;
				uint32_t drop = extra < len ? extra : len;

				memmove(c->buf + HDR, c->buf + HDR + drop, extra - drop);
				c->have -= drop;
				c->skip = len - drop;
				c->oversize = 1;
				continue;
			}
			if (c->have >= HDR + len)
				return 1;
			if (HDR + len > c->cap && conn_grow(c, (uint32_t)HDR + len))
				return -1;
			dst = c->buf + c->have;
			want = c->cap - c->have;
		}
		n = recv(c->fd, dst, want, MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n <= 0)
			return -1;
		if (dst == sink)
			c->skip -= (uint32_t)n;
		else
			c->have += (uint32_t)n;
	}
}

/*
 * Hands the frame at the start of buf to JavaScript (inBuf, meta); what
 * followed it waits on the queue for the connection's next turn.
 */
static int deliver(struct transport *t, struct conn *c)
{
	uint32_t size = c->oversize ? (uint32_t)HDR : (uint32_t)HDR + frame_payload(c);

	memcpy(t->in, c->buf, size);
	if (c->oversize)
		memset(t->in + 4, 0, sizeof(uint32_t)); /* no payload follows */
	t->meta[0] = c->fd;
	t->meta[2] = c->oversize ? REQ_OVERSIZE : 0;
	t->poll_since = 0; /* other work: what comes after it is no gap of the channels' */
	c->oversize = 0;
	consume(c, size);
	if (c->have)
		enqueue(t, c);
	c->route[(c->route_at + c->route_len++) % ROUTE_MAX] = ROUTE_SOCKET;
	return EV_REQUEST;
}

/* Sets a channel's polling word (only when it changes: the library reads its line). */
static void set_polling(struct conn *c, uint32_t on)
{
	if (__atomic_load_n(&c->chan.page->polling, __ATOMIC_RELAXED) != on)
		__atomic_store_n(&c->chan.page->polling, on, __ATOMIC_RELAXED);
}

/*
 * Marks `c` as served from its channel at `now`: hot, so its channel is
 * looked at before the engine sleeps, and polling is set in it while the
 * engine is awake (a request posted meanwhile needs no doorbell: unpoll
 * clears the word and looks once more before any sleep).
 */
static void hot_touch(struct transport *t, struct conn *c, int64_t now)
{
	int i, oldest = 0;

	c->hot_ns = now;
	for (i = 0; i < t->nhot; i++) {
		if (t->hot[i] == c->fd)
			goto awake;
		if (conn_of(t, t->hot[i])->hot_ns < conn_of(t, t->hot[oldest])->hot_ns)
			oldest = i;
	}
	if (t->nhot < HOT_MAX)
		oldest = t->nhot++;
	else if (t->chan_polling)
		return; /* the oldest may have polling set: it is forgotten only by unpoll */
	t->hot[oldest] = c->fd;
awake:
	t->chan_polling = 1;
	set_polling(c, 1);
}

/*
 * Hands over the request posted in a slot of `c`'s channel, or -1 when none
 * is. The first one after a poll teaches the poll's learner how long it
 * came after the poll began, whether the poll caught it or a doorbell did.
 */
static int take_posted(struct transport *t, struct conn *c)
{
	int oversize, slot;
	int64_t now;

	if (c->out || c->route_len >= ROUTE_MAX)
		return -1;
	slot = chan_take(&c->chan, t->in, &oversize);
	if (slot < 0)
		return -1;
	t->meta[0] = c->fd;
	t->meta[2] = oversize ? REQ_OVERSIZE : 0;
	c->route[(c->route_at + c->route_len++) % ROUTE_MAX] = (uint8_t)slot;
	now = now_ns();
	if (t->poll_since) {
		spin_learn(&t->spin, now - t->poll_since);
		t->poll_since = 0;
	}
	hot_touch(t, c, now);
	return EV_REQUEST;
}

/* Whether a hot connection's channel holds a request that could be taken. */
static int hot_posted(struct transport *t)
{
	for (int i = 0; i < t->nhot; i++) {
		struct conn *c = conn_of(t, t->hot[i]);

		if (!c->out && c->route_len < ROUTE_MAX && chan_posted(&c->chan))
			return 1;
	}
	return 0;
}

/* The next request posted in a hot connection's channel, or -1; the connections take turns. */
static int take_hot(struct transport *t)
{
	for (int k = 0; k < t->nhot; k++) {
		int i = (t->hot_turn + k) % t->nhot;
		int e = take_posted(t, conn_of(t, t->hot[i]));

		if (e >= 0) {
			t->hot_turn = i + 1;
			return e;
		}
	}
	return -1;
}

/*
 * Stops polling: clears polling in the hot channels; with `take`, then
 * looks at them once more (a library that saw polling set posted without a
 * doorbell, and more than one may have): called before every sleep until
 * it finds nothing. Only then are connections no longer hot forgotten.
 * Without `take` (a return to libuv, which must not wait behind a client
 * that posts without pause), call_ready() looks again on the loop's next
 * turn.
 */
static int unpoll(struct transport *t, int take)
{
	int64_t now = now_ns();
	int e;

	if (t->chan_polling) {
		t->chan_polling = 0;
		for (int i = 0; i < t->nhot; i++)
			set_polling(conn_of(t, t->hot[i]), 0);
		/* pairs with the library's store of posted before its look at polling */
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
	}
	if (!take)
		return -1;
	/* every request posted while polling was set, not only the first */
	e = take_hot(t);
	for (int i = 0; e < 0 && i < t->nhot; i++)
		if (now - conn_of(t, t->hot[i])->hot_ns > HOT_NS)
			t->hot[i--] = t->hot[--t->nhot];
	return e;
}

/*
 * Before sleeping: polls the channels of the hot connections whose library
 * runs on another CPU (their requests then need no doorbell, and no wake-up
 * of the engine), for at most the learnt time and while nothing else is
 * ready (looked at every POLL_LOOK_NS). A connection whose library shares
 * the engine's CPU is never waited for: it could not run. Returns an
 * event, -2 when the sockets or libuv have something, or -1 when nothing
 * came.
 */
static int poll_hot(struct transport *t)
{
	int64_t start = now_ns(), looked = start, now;
	int cpu = sched_getcpu(), n = 0;
	uint32_t awake;

	for (int i = 0; i < t->nhot; i++) {
		struct conn *c = conn_of(t, t->hot[i]);
		struct uiommu_chan *page = c->chan.page;

		/*
		 * a flag cleared here is followed by a look in take_hot or unpoll;
		 * words are stored only when they change (the library reads their line)
		 */
		if (__atomic_load_n(&page->engine_cpu, __ATOMIC_RELAXED) != cpu)
			__atomic_store_n(&page->engine_cpu, cpu, __ATOMIC_RELAXED);
		awake = start - c->hot_ns <= HOT_NS;
		set_polling(c, awake);
		n += awake && __atomic_load_n(&page->client_cpu, __ATOMIC_RELAXED) != cpu;
	}
	t->chan_polling = 1;
	if (!n)
		return -1; /* unpoll clears the words */
	t->poll_since = start;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	for (unsigned iter = 1;; iter++) {
		int e = take_hot(t);

		if (e >= 0)
			return e;
		if (!(iter % 32)) {
			now = now_ns();
			if (now - looked >= POLL_LOOK_NS) {
				looked = now;
				n = epoll_wait(t->wait_ep, t->ready, READY_MAX, 0);
				if (n > 0) {
					/* other work first: what comes after it is no gap of the clients' */
					t->poll_since = 0;
					t->nready = n;
					return -2;
				}
			}
			if (now - start > t->spin.ns)
				return -1;
		}
		__builtin_ia32_pause();
	}
}

/* A transport-level frame (CHANNEL, DOORBELL) at the start of buf: served here. */
static int transport_frame(struct conn *c)
{
	uint16_t op;

	memcpy(&op, c->buf, sizeof(op));
	return !c->oversize && (op == UIOMMU_OP_CHANNEL || op == UIOMMU_OP_DOORBELL) ? op : 0;
}

/* The next event of connection `c`, or -1 when it has none now. */
static int serve_conn(struct transport *t, struct conn *c)
{
	int r;

	if (c->out) {
		r = conn_flush(t, c);
		if (r == 0) {
			conn_watch(t, c);
			/* a doorbell rung while paused was emptied unanswered */
			return take_posted(t, c);
		}
		if (r > 0)
			return -1;
	} else {
		int op = 0;

		r = take_posted(t, c);
		if (r >= 0)
			return r;
		/* more answers owed than the protocol allows: the client is broken */
		r = c->route_len >= ROUTE_MAX ? -1 : conn_read(c);
		if (r == 1 && !(op = transport_frame(c)))
			return deliver(t, c);
		if (r == 1) {
			struct uiommu_chan *had = c->chan.page;

			consume(c, (uint32_t)HDR + frame_payload(c));
			if (c->have)
				enqueue(t, c);
			/* a new channel's doorbell is watched, or the connection is dropped */
			if (op == UIOMMU_OP_DOORBELL ||
			    (!chan_offer(&c->chan, c->fd) &&
			     (had || !c->chan.page ||
			      !watch_both(t, c->chan.bell, BELL_KEY | (uint32_t)c->fd))))
				return take_posted(t, c);
			r = -1;
		}
		if (r == 0)
			return -1;
	}
	t->meta[0] = c->fd;
	conn_free(t, c);
	/* a client's exit: let libuv see its SIGCHLD now (a waiter on the child may be done) */
	t->yield = 1;
	return EV_CLOSE;
}

/* The next event of the ready list, or -1 when the entry needs none. */
static int serve_ready(struct transport *t, struct epoll_event *ev)
{
	int fd = (int)(uint32_t)ev->data.u64;
	struct conn *c;

	if (ev->data.u64 & BELL_KEY) {
		c = conn_of(t, fd);
		if (!c || !c->chan.page)
			return -1;
		chan_bell_drain(&c->chan);
		return take_posted(t, c);
	}
	if (fd == t->listen_fd) {
		int s = accept4(t->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

		if (s < 0)
			return -1;
		if (conn_add(t, s)) {
			close(s);
			return -1;
		}
		t->meta[0] = s;
		return EV_CONNECT;
	}
	c = conn_of(t, fd);
	/* a queued connection is served from its buffer in its turn */
	return c && !c->queued ? serve_conn(t, c) : -1;
}

static int next_event(struct transport *t)
{
	int backend = uv_backend_fd(t->loop);

	for (;;) {
		int n, timeout;

		while (t->at < t->nready) {
			struct epoll_event *ev = &t->ready[t->at++];
			int e;

			/* libuv's turn once the connections that were ready have been served */
			if (ev->data.u64 == (uint32_t)backend) {
				t->yield = 1;
				continue;
			}
			e = serve_ready(t, ev);
			if (e >= 0)
				return e;
		}
		t->at = t->nready = 0;
		if (t->closed || t->yield) {
			unpoll(t, 0);
			t->yield = 0;
			return EV_YIELD;
		}
		timeout = -1;
		if (t->queue_head) {
			/* buffered frames and the sockets take turns: one look at the sockets, then one frame */
			t->queue_turn = !t->queue_turn;
			if (!t->queue_turn) {
				struct conn *c = dequeue(t);
				int e = c->out ? -1 : serve_conn(t, c);

				if (e >= 0)
					return e;
				continue;
			}
			timeout = 0;
		} else if (t->deadline_ms >= 0) {
			int64_t left = t->deadline_ms - now_ms();

			timeout = left < 0 ? 0 : left > 1000 ? 1000 : (int)left;
		}
		if (!timeout && t->queue_head) {
			/*
			 * buffered frames: the hot channels (whose libraries post without a
			 * doorbell while polling is set) get this turn of the sockets', and
			 * the sockets one in HOT_STREAK + 1
			 */
			if (t->hot_streak < HOT_STREAK) {
				int e = take_hot(t);

				if (e >= 0) {
					t->hot_streak++;
					return e;
				}
			}
			t->hot_streak = 0;
		}
		if (timeout && t->hot_streak >= HOT_STREAK) {
			/* the sockets' and libuv's turn: a busy channel does not keep them waiting */
			t->hot_streak = 0;
			n = epoll_wait(t->wait_ep, t->ready, READY_MAX, 0);
			if (n > 0) {
				t->nready = n;
				continue;
			}
		}
		if (timeout) {
			/* the hot channels: what was posted meanwhile, then a while longer, then sleep */
			int e = take_hot(t);

			if (e >= 0) {
				t->hot_streak++;
				return e;
			}
			e = poll_hot(t);
			if (e == -2)
				continue;
			if (e < 0)
				e = unpoll(t, 1);
			if (e >= 0)
				return e;
		}
		/* sleeps here; returns at once when a connection or libuv has something */
		n = epoll_wait(t->wait_ep, t->ready, READY_MAX, timeout);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || (n == 0 && !t->queue_head)) {
			/* back to libuv (a timer is due): no channel is polled meanwhile */
			unpoll(t, 0);
			return EV_YIELD;
		}
		t->nready = n;
	}
}

/* ---- libuv side ------------------------------------------------------------------ */

static void on_poll(uv_poll_t *handle, int status, int events);
static void on_idle(uv_idle_t *handle);

/*
 * Calls onReady (which serves until next() yields), then waits again: for
 * the connections (the poll on ep) and, while frames are buffered that
 * epoll cannot see, for the loop's next turn (the idle handle).
 */
static void call_ready(struct transport *t)
{
	napi_handle_scope scope;
	napi_value fn, recv, result;
	int timeout;

	if (t->polling) {
		uv_poll_stop(&t->poll);
		t->polling = 0;
	}
	timeout = uv_backend_timeout(t->loop);
	t->deadline_ms = timeout < 0 ? -1 : now_ms() + timeout;
	t->yield = 0;
	napi_open_handle_scope(t->env, &scope);
	napi_get_reference_value(t->env, t->on_ready, &fn);
	napi_get_global(t->env, &recv);
	if (napi_make_callback(t->env, t->async, recv, fn, 0, NULL, &result) ==
	    napi_pending_exception) {
		napi_value err;

		napi_get_and_clear_last_exception(t->env, &err);
		napi_fatal_exception(t->env, err);
	}
	napi_close_handle_scope(t->env, scope);
	if (t->closed)
		return;
	if (!t->polling) {
		uv_poll_start(&t->poll, UV_READABLE, on_poll);
		t->polling = 1;
	}
	/* buffered frames, or requests posted while polling was set: the loop's next turn */
	if (t->queue_head || hot_posted(t))
		uv_idle_start(&t->idle, on_idle);
}

static void on_poll(uv_poll_t *handle, int status, int events)
{
	(void)status;
	(void)events;
	call_ready(handle->data);
}

static void on_idle(uv_idle_t *handle)
{
	uv_idle_stop(handle);
	call_ready(handle->data);
}

/* Frees the transport once both of its libuv handles are closed. */
static void on_handle_closed(uv_handle_t *handle)
{
	struct transport *t = handle->data;

	if (--t->open_handles)
		return;
	close(t->ep);
	close(t->wait_ep);
	free(t->conns);
	free(t);
}

/* ---- JavaScript side --------------------------------------------------------------- */

static napi_value throw_errno_(napi_env env, int err, const char *what)
{
	napi_value text, code, error, number;
	const char *name = strerrorname_np(err);

	napi_create_string_utf8(env, what, NAPI_AUTO_LENGTH, &text);
	napi_create_string_utf8(env, name ? name : "EUNKNOWN", NAPI_AUTO_LENGTH, &code);
	napi_create_error(env, code, text, &error);
	napi_create_int32(env, err, &number);
	napi_set_named_property(env, error, "errno", number);
	napi_throw(env, error);
	return NULL;
}

static struct transport *unwrap(napi_env env, napi_value v)
{
	void *p = NULL;

	if (napi_get_value_external(env, v, &p) != napi_ok || !p) {
		napi_throw_type_error(env, NULL, "expected a transport");
		return NULL;
	}
	return p;
}

static int buffer_of(napi_env env, napi_value v, uint8_t **data, size_t *len)
{
	bool ok = false;

	if (napi_is_buffer(env, v, &ok) != napi_ok || !ok ||
	    napi_get_buffer_info(env, v, (void **)data, len) != napi_ok) {
		napi_throw_type_error(env, NULL, "expected a Buffer");
		return 0;
	}
	return 1;
}

static int listen_at(const char *path)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int s;

	if (strlen(path) >= sizeof(addr.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(addr.sun_path, path);
	s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (s < 0)
		return -1;
	if (bind(s, (struct sockaddr *)&addr, sizeof(addr)) || listen(s, 128)) {
		int err = errno;

		close(s);
		errno = err;
		return -1;
	}
	return s;
}

static napi_value transport_open(napi_env env, napi_callback_info info)
{
	size_t argc = 4;
	napi_value argv[4], out, name;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path) + 1];
	size_t plen;
	struct transport *t;
	struct epoll_event ev = { .events = EPOLLIN };

	if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 4 ||
	    napi_get_value_string_utf8(env, argv[0], path, sizeof(path), &plen) != napi_ok) {
		napi_throw_type_error(env, NULL, "transportOpen(path, inBuf, outBuf, onReady)");
		return NULL;
	}
	t = calloc(1, sizeof(*t));
	if (!t)
		return throw_errno_(env, ENOMEM, "transportOpen");
	t->env = env;
	t->ep = t->wait_ep = t->listen_fd = -1;
	spin_init(&t->spin, SPIN_MIN_NS, SPIN_MAX_NS);
	if (!buffer_of(env, argv[1], &t->in, &t->in_cap) ||
	    !buffer_of(env, argv[2], &t->out, &t->out_cap))
		goto fail;
	if (t->in_cap < HDR + UIOMMU_MAX_PAYLOAD + 16 || t->out_cap < 16) {
		napi_throw_range_error(env, NULL, "buffers too small");
		goto fail;
	}
	/* meta lives in the last 16 bytes of inBuf (4 int32) */
	t->meta = (int32_t *)(void *)(t->in + t->in_cap - 16);
	napi_get_uv_event_loop(env, &t->loop);
	t->listen_fd = listen_at(path);
	t->ep = epoll_create1(EPOLL_CLOEXEC);
	t->wait_ep = epoll_create1(EPOLL_CLOEXEC);
	if (t->listen_fd < 0 || t->ep < 0 || t->wait_ep < 0) {
		throw_errno_(env, errno, "transportOpen: listen");
		goto fail;
	}
	watch_both(t, t->listen_fd, (uint32_t)t->listen_fd);
	ev.data.u64 = (uint32_t)uv_backend_fd(t->loop);
	epoll_ctl(t->wait_ep, EPOLL_CTL_ADD, uv_backend_fd(t->loop), &ev);
	napi_create_reference(env, argv[1], 1, &t->in_ref);
	napi_create_reference(env, argv[2], 1, &t->out_ref);
	napi_create_reference(env, argv[3], 1, &t->on_ready);
	napi_create_string_utf8(env, "uiommu-transport", NAPI_AUTO_LENGTH, &name);
	napi_async_init(env, NULL, name, &t->async);
	uv_poll_init(t->loop, &t->poll, t->ep);
	t->poll.data = t;
	uv_idle_init(t->loop, &t->idle);
	t->idle.data = t;
	t->open_handles = 2;
	uv_poll_start(&t->poll, UV_READABLE, on_poll);
	t->polling = 1;
	napi_create_external(env, t, NULL, NULL, &out);
	return out;
fail:
	if (t->listen_fd >= 0)
		close(t->listen_fd);
	if (t->ep >= 0)
		close(t->ep);
	if (t->wait_ep >= 0)
		close(t->wait_ep);
	free(t);
	return NULL;
}

static napi_value transport_next(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value argv[1], out;
	struct transport *t;

	napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
	t = argc ? unwrap(env, argv[0]) : NULL;
	if (!t)
		return NULL;
	napi_create_int32(env, next_event(t), &out);
	return out;
}

static int get_i32(napi_env env, napi_value v, int32_t *x)
{
	if (napi_get_value_int32(env, v, x) != napi_ok) {
		napi_throw_type_error(env, NULL, "expected a number");
		return 0;
	}
	return 1;
}

static napi_value transport_reply(napi_env env, napi_callback_info info)
{
	size_t argc = 3;
	napi_value argv[3];
	struct transport *t;
	struct conn *c;
	int32_t fd, len;
	size_t sent = 0;

	napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
	if (argc < 3 || !(t = unwrap(env, argv[0])) || !get_i32(env, argv[1], &fd) ||
	    !get_i32(env, argv[2], &len))
		return NULL;
	if (len < 0 || (size_t)len > t->out_cap) {
		napi_throw_range_error(env, NULL, "reply length");
		return NULL;
	}
	c = conn_of(t, fd);
	if (c && c->route_len) {
		uint8_t route = c->route[c->route_at];

		c->route_at = (c->route_at + 1) % ROUTE_MAX;
		c->route_len--;
		if (route != ROUTE_SOCKET) {
			chan_answer(&c->chan, route, t->out, (size_t)len, sched_getcpu());
			return NULL;
		}
	}
	if (!c || c->out)
		return NULL; /* gone, or still paused: the protocol allows one answer per request */
	for (;;) {
		ssize_t n = send(fd, t->out + sent, (size_t)len - sent,
				 MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || (sent += (size_t)n) == (size_t)len)
			break;
	}
	/* a broken peer shows up as EV_CLOSE when its socket is next looked at */
	if (sent < (size_t)len) {
		c->out_len = (uint32_t)(len - sent);
		c->out_off = 0;
		c->out = malloc(c->out_len);
		if (!c->out)
			return throw_errno_(env, ENOMEM, "transportReply");
		memcpy(c->out, t->out + sent, c->out_len);
		conn_watch(t, c);
	}
	return NULL;
}

static napi_value transport_drop(napi_env env, napi_callback_info info)
{
	size_t argc = 2;
	napi_value argv[2];
	struct transport *t;
	struct conn *c;
	int32_t fd;

	napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
	if (argc < 2 || !(t = unwrap(env, argv[0])) || !get_i32(env, argv[1], &fd))
		return NULL;
	c = conn_of(t, fd);
	if (c)
		conn_free(t, c);
	return NULL;
}

static napi_value transport_close(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value argv[1];
	struct transport *t;

	napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
	if (!argc || !(t = unwrap(env, argv[0])) || t->closed)
		return NULL;
	t->closed = 1;
	t->nready = t->at = 0;
	for (size_t fd = 0; fd < t->nconns; fd++)
		if (t->conns[fd])
			conn_free(t, t->conns[fd]);
	close(t->listen_fd);
	napi_delete_reference(env, t->on_ready);
	napi_delete_reference(env, t->in_ref);
	napi_delete_reference(env, t->out_ref);
	napi_async_destroy(env, t->async);
	uv_close((uv_handle_t *)&t->poll, on_handle_closed);
	uv_close((uv_handle_t *)&t->idle, on_handle_closed);
	return NULL;
}

void transport_init(napi_env env, napi_value exports)
{
	static const struct {
		const char *name;
		napi_callback fn;
	} fns[] = {
		{ "transportOpen", transport_open },   { "transportNext", transport_next },
		{ "transportReply", transport_reply }, { "transportDrop", transport_drop },
		{ "transportClose", transport_close },
	};

	for (size_t i = 0; i < sizeof(fns) / sizeof(fns[0]); i++) {
		napi_value f;

		napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].fn, NULL, &f);
		napi_set_named_property(env, exports, fns[i].name, f);
	}
}
