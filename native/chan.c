/*
 * The engine's end of a connection's channel (chan.h). The engine creates
 * the memfd and seals its size before the library sees it, so its own
 * mapping can never fault. Everything in the page is the library's to
 * scribble on: a posted word is only compared with the engine's own record,
 * a request is copied before it is looked at and its length is checked,
 * and the engine writes nothing outside the answer slot and its own words.
 */
#define _GNU_SOURCE
#include "chan.h"
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#define REQ_BYTES sizeof(struct uiommu_req)

/* The answer, with the `nfds` fds of `fds` passed along (SCM_RIGHTS). */
static int send_answer(int sock, int64_t ret, int32_t err, const int *fds, int nfds)
{
	struct uiommu_resp rs = { .ret = ret, .err = err, .newfd = -1 };
	struct iovec iov = { .iov_base = &rs, .iov_len = sizeof(rs) };
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(2 * sizeof(int))];
	} ctl;
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	if (nfds) {
		memset(&ctl, 0, sizeof(ctl));
		msg.msg_control = ctl.buf;
		msg.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
		ctl.h.cmsg_level = SOL_SOCKET;
		ctl.h.cmsg_type = SCM_RIGHTS;
		ctl.h.cmsg_len = CMSG_LEN(nfds * sizeof(int));
		memcpy(CMSG_DATA(&ctl.h), fds, nfds * sizeof(int));
	}
	do
		n = sendmsg(sock, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	return n == (ssize_t)sizeof(rs) ? 0 : -1;
}

int chan_offer(struct chan_end *e, int sock)
{
	int fds[2], r;
	void *p = MAP_FAILED;

	if (e->page)
		return send_answer(sock, -1, EBUSY, NULL, 0);
	fds[0] = memfd_create("uiommu-channel", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	fds[1] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (fds[0] >= 0 && fds[1] >= 0 && !ftruncate(fds[0], UIOMMU_CHAN_BYTES) &&
	    !fcntl(fds[0], F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL))
		p = mmap(NULL, UIOMMU_CHAN_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fds[0], 0);
	if (p == MAP_FAILED) {
		for (int i = 0; i < 2; i++)
			if (fds[i] >= 0)
				close(fds[i]);
		return send_answer(sock, -1, ENOMEM, NULL, 0);
	}
	memset(e, 0, sizeof(*e));
	e->page = p;
	e->bell = fds[1];
	r = send_answer(sock, 0, 0, fds, 2);
	close(fds[0]);
	return r;
}

int chan_posted(const struct chan_end *e)
{
	for (int s = 0; e->page && s < UIOMMU_CHAN_SLOTS; s++)
		if (!(e->busy & (1u << s)) &&
		    __atomic_load_n(&e->page->slot[s].posted, __ATOMIC_ACQUIRE) != e->seen[s])
			return 1;
	return 0;
}

int chan_take(struct chan_end *e, uint8_t *in, int *oversize)
{
	for (int s = 0; e->page && s < UIOMMU_CHAN_SLOTS; s++) {
		struct uiommu_chan_slot *sl = &e->page->slot[s];
		uint32_t posted, len;

		if (e->busy & (1u << s))
			continue;
		posted = __atomic_load_n(&sl->posted, __ATOMIC_ACQUIRE);
		if (posted == e->seen[s])
			continue;
		e->seen[s] = e->answering[s] = posted;
		e->busy |= 1u << s;
		memcpy(in, &sl->req, REQ_BYTES);
		memcpy(&len, in + 4, sizeof(len));
		*oversize = len > UIOMMU_IOCTL_ARG_MAX;
		if (*oversize)
			len = 0;
		memcpy(in + 4, &len, sizeof(len));
		memcpy(in + REQ_BYTES, sl->arg, len);
		return s;
	}
	return -1;
}

void chan_answer(struct chan_end *e, int slot, const uint8_t *out, size_t len, int32_t cpu)
{
	struct uiommu_chan_slot *sl = &e->page->slot[slot];

	e->busy &= ~(1u << slot);
	if (len < sizeof(sl->resp) || len > sizeof(sl->resp) + UIOMMU_CHAN_OUT_MAX) {
		struct uiommu_resp rs = { .ret = -1, .err = EIO, .newfd = -1 };

		memcpy(&sl->resp, &rs, sizeof(rs));
	} else {
		memcpy(&sl->resp, out, sizeof(sl->resp));
		memcpy(sl->out, out + sizeof(sl->resp), len - sizeof(sl->resp));
	}
	/* stored only when it changed: the library reads its line on every call */
	if (__atomic_load_n(&e->page->engine_cpu, __ATOMIC_RELAXED) != cpu)
		__atomic_store_n(&e->page->engine_cpu, cpu, __ATOMIC_RELAXED);
	__atomic_store_n(&sl->done, e->answering[slot], __ATOMIC_RELEASE);
	/* pairs with the library's store of sleeping before its last look at done */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (__atomic_load_n(&sl->sleeping, __ATOMIC_RELAXED))
		syscall(SYS_futex, &sl->done, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

void chan_bell_drain(const struct chan_end *e)
{
	uint64_t rung;

	/* nonblocking: a library that emptied it itself leaves nothing to read */
	while (read(e->bell, &rung, sizeof(rung)) < 0 && errno == EINTR)
		;
}

void chan_release(struct chan_end *e)
{
	if (e->page) {
		munmap(e->page, UIOMMU_CHAN_BYTES);
		close(e->bell);
	}
	memset(e, 0, sizeof(*e));
}
