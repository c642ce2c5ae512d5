/*
 * The channel (docs/engine-protocol.md, *Channel*): a call posts its request
 * in the slot of its nesting depth in a page shared with the engine and
 * finds its answer there. When the engine may be asleep (polling is not
 * set), the post is followed by a ring of the channel's doorbell (an
 * eventfd the engine watches: an 8-byte write, a third of the cost of a
 * DOORBELL frame on the socket, which remains the fallback). No signal mask
 * is needed: a signal handler calling in while a call waits nests in the
 * next slot (the deepest slot blocks signals, so nothing nests deeper).
 *
 * Waiting: when the engine last ran on another CPU, spin on the slot's done
 * word for a while (learnt from how long answers took: spin.h), then sleep in
 * futex_wait; on the engine's CPU, sleep at once (spinning would only keep
 * the engine from running).
 */
#include "preload.h"
#include "../spin.h"
#include <sched.h>

#define SPIN_MIN_NS 2000
#define SPIN_MAX_NS 200000
/* How often a sleeping call looks whether the engine is still there. */
#define ALIVE_CHECK_NS 200000000

int g_bell = -1; /* the doorbell eventfd, one of the library's fds */
static struct uiommu_chan *g_chan;
static int g_chan_refused;		  /* the engine gave none: the socket only */
static uint32_t g_seq[UIOMMU_CHAN_SLOTS]; /* the last sequence number posted, per slot */
static struct spin_learner g_spin = { SPIN_MIN_NS, SPIN_MIN_NS, SPIN_MAX_NS };

void chan_forget(void)
{
	if (g_bell >= 0)
		real.close(g_bell);
	g_bell = -1;
	g_chan = NULL;
	g_chan_refused = 0;
	memset(g_seq, 0, sizeof(g_seq));
}

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The exchange on the socket (signals blocked): as engine_ioctl sent it before the channel. */
static int socket_call(struct uiommu_req *rq, const void *payload, size_t len,
		       struct uiommu_resp *rs, void *out, size_t cap)
{
	int r = call(rq, payload, len, rs, out, cap);

	return r == -2 ? call(rq, NULL, 0, rs, out, cap) : r;
}

/* 0 when the engine's end of the socket is still open. */
static int engine_gone(void)
{
	char b;

	return syscall(SYS_recvfrom, g_sock, &b, 1, MSG_PEEK | MSG_DONTWAIT, NULL, NULL) == 0;
}

void chan_move_bell(void)
{
	int n = g_bell >= 0 ? lib_move(g_bell) : -1;

	if (n < 0 && g_bell >= 0)
		real.close(g_bell); /* no room: DOORBELL frames on the socket instead */
	g_bell = n;
}

void chan_repark(void)
{
	if (g_bell >= 0 && g_conn_pid == self_pid())
		g_bell = lib_park(g_bell, 2);
}

/* Tells the engine to look at the channel: through the doorbell, else a DOORBELL frame. */
static int ring_doorbell(pid_t me)
{
	static const uint64_t one = 1;
	struct uiommu_req rq = new_req(UIOMMU_OP_DOORBELL);
	ssize_t n;

	if (syscall(SYS_write, g_bell, &one, sizeof(one)) == sizeof(one))
		return 0;
	rq.pid = me;
	do
		n = syscall(SYS_sendto, g_sock, &rq, sizeof(rq), MSG_NOSIGNAL, NULL, 0);
	while (n < 0 && errno == EINTR);
	return n == (ssize_t)sizeof(rq) ? 0 : -1;
}

/* Waits for `seq` in the slot's done word: 0, or -1 when the engine is gone. */
static int wait_done(struct uiommu_chan_slot *sl, uint32_t seq, int cpu)
{
	int64_t start = 0;
	uint32_t d;

	if (__atomic_load_n(&g_chan->engine_cpu, __ATOMIC_RELAXED) != cpu) {
		start = now_ns();
		for (unsigned i = 1;; i++) {
			if (__atomic_load_n(&sl->done, __ATOMIC_ACQUIRE) == seq) {
				spin_learn(&g_spin, now_ns() - start);
				return 0;
			}
			if (!(i % 64) && now_ns() - start > g_spin.ns)
				break;
			__builtin_ia32_pause();
		}
	}
	__atomic_store_n(&sl->sleeping, 1, __ATOMIC_RELAXED);
	/* pairs with the engine's store of done before its look at sleeping */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	while ((d = __atomic_load_n(&sl->done, __ATOMIC_ACQUIRE)) != seq) {
		struct timespec ts = { 0, ALIVE_CHECK_NS };

		if (syscall(SYS_futex, &sl->done, FUTEX_WAIT, d, &ts, NULL, 0) < 0 &&
		    errno == ETIMEDOUT && engine_gone()) {
			__atomic_store_n(&sl->sleeping, 0, __ATOMIC_RELAXED);
			return -1;
		}
	}
	__atomic_store_n(&sl->sleeping, 0, __ATOMIC_RELAXED);
	if (start)
		spin_learn(&g_spin, now_ns() - start);
	return 0;
}

int chan_call(struct guard *g, struct uiommu_req *rq, const void *payload, size_t len, int user,
	      struct uiommu_resp *rs, void *out, size_t cap)
{
	pid_t me = rq->pid ? rq->pid : self_pid();
	int slot = lock_depth() - 1, saved = errno, cpu;
	struct uiommu_chan_slot *sl;
	struct uiommu_chan *chan;
	uint32_t seq;

	/* anything but a plain slot call, and the deepest slot, with signals blocked */
	if (me != g_conn_pid || !g_chan || slot >= UIOMMU_CHAN_SLOTS - 1)
		guard_mask(g);
	if (!conn_ready(me))
		return -1;
	if (!g_chan && !g_chan_refused && slot == 0) {
		const char *off = getenv(UIOMMU_ENV_CHANNEL);

		g_chan = off && !strcmp(off, "0") ? NULL : open_channel(&g_bell);
		g_chan_refused = !g_chan;
	}
	chan = g_chan;
	if (!chan || slot < 0 || slot >= UIOMMU_CHAN_SLOTS)
		return socket_call(rq, payload, len, rs, out, cap);
	sl = &chan->slot[slot];
	req_stamp(rq, me);
	memcpy(&sl->req, rq, sizeof(*rq));
	if (len && user) {
		/* unreadable: the request goes without them, as on the socket */
		if (read_user(sl->arg, (uintptr_t)payload, len) != len)
			len = 0;
	} else if (len) {
		memcpy(sl->arg, payload, len);
	}
	sl->req.len = (uint32_t)len;
	seq = ++g_seq[slot];
	cpu = sched_getcpu();
	/* stored only when it changed: the engine's poll reads its line */
	if (__atomic_load_n(&chan->client_cpu, __ATOMIC_RELAXED) != cpu)
		__atomic_store_n(&chan->client_cpu, cpu, __ATOMIC_RELAXED);
	__atomic_store_n(&sl->posted, seq, __ATOMIC_RELEASE);
	/* pairs with the engine's store of polling before its last look at posted */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if ((!__atomic_load_n(&chan->polling, __ATOMIC_RELAXED) && ring_doorbell(me)) ||
	    wait_done(sl, seq, cpu)) {
		lose();
		errno = saved;
		return -1;
	}
	memcpy(rs, &sl->resp, sizeof(*rs));
	if (rs->len > UIOMMU_CHAN_OUT_MAX) {
		rs->ret = -1;
		rs->err = EIO;
		rs->len = 0;
	}
	if (out)
		memcpy(out, sl->out, rs->len < cap ? rs->len : cap);
	bar_zaps_seen(rs->reserved);
	errno = saved;
	return 0;
}
