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
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#define REQ_BYTES sizeof(struct uiommu_req)

static int send_answer(int sock, int64_t ret, int32_t err, int fd)
{
	struct uiommu_resp rs = { .ret = ret, .err = err, .newfd = -1 };
	struct iovec iov = { .iov_base = &rs, .iov_len = sizeof(rs) };
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} ctl;
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	if (fd >= 0) {
		memset(&ctl, 0, sizeof(ctl));
		msg.msg_control = ctl.buf;
		msg.msg_controllen = sizeof(ctl.buf);
		ctl.h.cmsg_level = SOL_SOCKET;
		ctl.h.cmsg_type = SCM_RIGHTS;
		ctl.h.cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(&ctl.h), &fd, sizeof(int));
	}
	do
		n = sendmsg(sock, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	return n == (ssize_t)sizeof(rs) ? 0 : -1;
}

int chan_offer(struct chan_end *e, int sock)
{
	int fd, r;
	void *p;

	if (e->page)
		return send_answer(sock, -1, EBUSY, -1);
	fd = memfd_create("uiommu-channel", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return send_answer(sock, -1, ENOMEM, -1);
	p = MAP_FAILED;
	if (!ftruncate(fd, UIOMMU_CHAN_BYTES) &&
	    !fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL))
		p = mmap(NULL, UIOMMU_CHAN_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		close(fd);
		return send_answer(sock, -1, ENOMEM, -1);
	}
	memset(e, 0, sizeof(*e));
	e->page = p;
	r = send_answer(sock, 0, 0, fd);
	close(fd);
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
	__atomic_store_n(&e->page->engine_cpu, cpu, __ATOMIC_RELAXED);
	__atomic_store_n(&sl->done, e->answering[slot], __ATOMIC_RELEASE);
	/* pairs with the library's store of sleeping before its last look at done */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (__atomic_load_n(&sl->sleeping, __ATOMIC_RELAXED))
		syscall(SYS_futex, &sl->done, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

void chan_release(struct chan_end *e)
{
	if (e->page)
		munmap(e->page, UIOMMU_CHAN_BYTES);
	memset(e, 0, sizeof(*e));
}
