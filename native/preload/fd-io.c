/* I/O on engine fds: ioctl, read, write, pread, pwrite. */
#include "preload.h"

#include <linux/kvm.h>

/* IOMMU_TEST_CMD ops that install a new file (include/uapi iommufd_test.h numbering). */
#define IOMMU_TEST_OP_CREATE_ACCESS 5
#define IOMMU_TEST_OP_DMABUF_GET 22
/* ACCESS_RW: the offsets of access_rw.length, .uptr and .flags, and its WRITE flag. */
#define IOMMU_TEST_OP_ACCESS_RW 8
#define ACCESS_RW_LENGTH 24
#define ACCESS_RW_UPTR 32
#define ACCESS_RW_FLAGS 40
#define MOCK_ACCESS_RW_WRITE 1
/* Most source bytes of an ACCESS_RW write sent with its argument. */
#define ACCESS_RW_SPAN_MAX 256
/* VFIO_DEVICE_FEATURE flags: the feature id in the low 16 bits, GET at bit 16. */
#define VFIO_FEATURE_GET (1u << 16)
#define VFIO_FEATURE_DMA_BUF 11

/*
 * Whether the ioctl may answer a new engine fd (the caller reserves its
 * number). For IOMMU_TEST_CMD only its CREATE_ACCESS and DMABUF_GET ops
 * do, for VFIO_DEVICE_FEATURE only a GET of DMA_BUF: `word1` is the u32 at
 * offset 4 (the test op, the feature flags) of the copy the request sends,
 * or -1 when the argument could not be read (the kernel's copy_from_user
 * fails then, before any fd is allocated).
 */
static int creates_file(unsigned long request, int64_t word1)
{
	switch (request & 0xffff) {
	case UIOMMU_IOC_VFIO_GROUP_GET_DEVICE_FD:
	case UIOMMU_IOC_IOMMU_FAULT_QUEUE_ALLOC:
	case UIOMMU_IOC_IOMMU_VEVENTQ_ALLOC:
		return 1;
	case UIOMMU_IOC_IOMMU_TEST_CMD:
		return word1 == IOMMU_TEST_OP_CREATE_ACCESS || word1 == IOMMU_TEST_OP_DMABUF_GET;
	case UIOMMU_IOC_VFIO_DEVICE_FEATURE:
		return word1 >= 0 && (word1 & 0xffff) == VFIO_FEATURE_DMA_BUF &&
		       (word1 & VFIO_FEATURE_GET);
	}
	return 0;
}

/* The ioctls whose spare is decided from their argument (`word1` of creates_file). */
static int decided_from_arg(unsigned long request)
{
	return (request & 0xffff) == UIOMMU_IOC_IOMMU_TEST_CMD ||
	       (request & 0xffff) == UIOMMU_IOC_VFIO_DEVICE_FEATURE;
}

/* Bytes of an ioctl's argument sent with the request (UIOMMU_IOCTL_ARG_MAX). */
#define ARG_MAX UIOMMU_IOCTL_ARG_MAX
/* No page is smaller: the bytes up to this boundary are in the page of the first. */
#define MIN_PAGE 4096u

size_t read_own(void *dst, uintptr_t src, size_t len)
{
	struct iovec local = { .iov_base = dst, .iov_len = len };
	struct iovec remote = { .iov_base = (void *)src, .iov_len = len };
	ssize_t n = process_vm_readv(self_pid(), &local, 1, &remote, 1, 0);

	return n > 0 ? (size_t)n : 0;
}

/*
 * The bytes at `arg` sent with the request, so that the engine need not read
 * our memory for them (docs/engine-protocol.md, IOCTL): the rest of arg's
 * page, at most ARG_MAX. They go from the program's memory straight into
 * the socket; the kernel reads them without faulting, and when it cannot
 * (an unreadable page, or a plain integer for an argument) the request is
 * sent without them.
 */
static size_t arg_span(uintptr_t arg)
{
	size_t in_page = MIN_PAGE - (arg & (MIN_PAGE - 1));

	return !arg ? 0 : in_page < ARG_MAX ? in_page : ARG_MAX;
}

/*
 * An IOMMU_TEST_CMD ACCESS_RW write copies `length` bytes from `uptr` (the
 * kernel selftest's check_access_rw makes some 120,000 of them): they go
 * after the argument's `sent` bytes in `copy`, cut to make room, as a SPAN
 * request (docs/engine-protocol.md), so that the engine need not read them
 * from our memory. The request is unchanged when they cannot be read
 * without faulting or are too many. Returns the payload's length.
 */
static size_t with_rw_source(struct uiommu_req *rq, uint32_t *copy, size_t sent)
{
	uint8_t src[ACCESS_RW_SPAN_MAX];
	uint64_t len, uptr;
	uint32_t flags;
	size_t keep;

	if (sent < ACCESS_RW_FLAGS + 4 || copy[1] != IOMMU_TEST_OP_ACCESS_RW)
		return sent;
	memcpy(&len, (uint8_t *)copy + ACCESS_RW_LENGTH, sizeof(len));
	memcpy(&uptr, (uint8_t *)copy + ACCESS_RW_UPTR, sizeof(uptr));
	memcpy(&flags, (uint8_t *)copy + ACCESS_RW_FLAGS, sizeof(flags));
	if (!(flags & MOCK_ACCESS_RW_WRITE) || !len || len > ACCESS_RW_SPAN_MAX ||
	    read_user(src, (uintptr_t)uptr, len) != len)
		return sent;
	keep = sent < ARG_MAX - len ? sent : ARG_MAX - len;
	memcpy((uint8_t *)copy + keep, src, len);
	rq->flags |= UIOMMU_REQ_SPAN;
	rq->a[4] = uptr;
	rq->a[5] = len;
	return keep + len;
}

/* An IOCTL answer's payload, as large as the engine sends it. */
union writeback_buf {
	struct uiommu_writeback head;
	uint8_t bytes[sizeof(struct uiommu_writeback) + UIOMMU_WRITEBACK_MAX_NR * 16 +
		      UIOMMU_WRITEBACK_MAX_BYTES];
};

/*
 * Makes the writes an IOCTL answer carries (`len` payload bytes in `wb`)
 * into this process's memory, in order, through write_own(): a page that
 * cannot be written fails it as copy_to_user would (the bytes before it
 * are written). 0, or -1 when not all were made.
 */
static int write_back(const union writeback_buf *wb, uint32_t len)
{
	struct iovec to[UIOMMU_WRITEBACK_MAX_NR];
	uint32_t nr = wb->head.nr, i;
	size_t at = sizeof(wb->head) + (size_t)nr * sizeof(wb->head.w[0]), total = 0;

	if (!len)
		return 0;
	if (len > sizeof(*wb) || len < sizeof(wb->head) || nr > UIOMMU_WRITEBACK_MAX_NR || at > len)
		return -1;
	for (i = 0; i < nr; i++) {
		size_t n = wb->head.w[i].len;

		if (n > len - at - total)
			return -1;
		to[i].iov_base = (void *)(uintptr_t)wb->head.w[i].addr;
		to[i].iov_len = n;
		total += n;
	}
	return nr && write_own(to, (int)nr, wb->bytes + at, total) != (ssize_t)total ? -1 : 0;
}

static int engine_ioctl(int fd, unsigned long request, void *arg)
{
	int saved = errno, spare = -1;
	int64_t word1 = -1;
	uint32_t copy[ARG_MAX / 4];
	const void *sent = arg;
	size_t sent_len = arg_span((uintptr_t)arg);
	struct uiommu_req rq = new_req(UIOMMU_OP_IOCTL);
	struct uiommu_resp rs;
	struct guard g;
	union writeback_buf wb;
	int r;

	enter_unmasked(&g);
	if (!bit_test(fd)) {
		leave(&g);
		return real.ioctl(fd, request, arg);
	}
	if (lease_is_unmap(request)) {
		int ret;

		guard_mask(&g); /* the ring is not posted to from a signal handler */
		if (lease_unmap(fd, arg, &ret)) {
			saved = ret < 0 ? errno : saved;
			leave(&g);
			errno = saved;
			return ret;
		}
		lease_ask(&rq);
	}
	rq.pid = self_pid();
	/*
	 * IOMMU_TEST_CMD, VFIO_DEVICE_FEATURE: the bytes are copied once,
	 * decided from and sent, so the engine sees the op the spare was
	 * reserved for even if another thread changes it meanwhile.
	 */
	if (decided_from_arg(request)) {
		sent_len = read_user(copy, (uintptr_t)arg, arg_span((uintptr_t)arg));
		sent = copy;
		if (sent_len >= 8)
			word1 = (int64_t)copy[1];
		if ((request & 0xffff) == UIOMMU_IOC_IOMMU_TEST_CMD)
			sent_len = with_rw_source(&rq, copy, sent_len);
	}
	if (creates_file(request, word1)) {
		spare = reserve(1);
		/* a full fd table is the engine's to answer, as the kernel's failed fd allocation */
		if (spare < 0 && errno != EMFILE) {
			saved = errno;
			leave(&g);
			errno = saved;
			return -1;
		}
	}
	rq.a[0] = fd;
	rq.a[1] = request;
	rq.a[2] = (uintptr_t)arg;
	rq.a[3] = (uint64_t)(int64_t)spare;
	r = chan_call(&g, &rq, sent, sent_len, sent == arg, &rs, &wb, sizeof(wb));
	if (r) {
		rs.ret = -1;
		rs.err = EIO;
		rs.newfd = -1;
	} else if (write_back(&wb, rs.len)) {
		/* the engine's writes were refused where its view of our maps was stale */
		rs.ret = -1;
		rs.err = EFAULT;
	}
	lease_asked();
	if (spare >= 0) {
		if (rs.newfd == spare)
			bit_set(spare);
		else
			real.close(spare);
	}
	leave(&g);
	errno = rs.ret < 0 ? (rs.err ? rs.err : EIO) : saved;
	return (int)rs.ret;
}

static ssize_t engine_rw(uint32_t op, int fd, uintptr_t buf, size_t count, off_t off)
{
	int saved = errno;
	struct uiommu_req rq = new_req(op);
	struct uiommu_resp rs;
	struct guard g;

	rq.pid = self_pid();
	rq.a[0] = fd;
	rq.a[1] = buf;
	rq.a[2] = count;
	rq.a[3] = (uint64_t)off;
	enter_unmasked(&g);
	if (chan_call(&g, &rq, NULL, 0, 0, &rs, NULL, 0)) {
		rs.ret = -1;
		rs.err = EIO;
	}
	leave(&g);
	errno = rs.ret < 0 ? (rs.err ? rs.err : EIO) : saved;
	return rs.ret;
}

/* The KVM-VFIO device's attribute group and its file commands (KVM_DEV_VFIO_FILE*). */
#define KVM_DEV_VFIO_FILE 1
#define KVM_DEV_VFIO_FILE_ADD 1
#define KVM_DEV_VFIO_FILE_DEL 2

/*
 * KVM_SET_DEVICE_ATTR on a KVM-VFIO device (a real kernel fd) adding or
 * removing a VFIO file that is an engine fd: the kernel would see the
 * placeholder eventfd and refuse it (EINVAL, not a VFIO file). KVM only
 * uses the file for coherency and platform hooks that an emulated device
 * does not need, so the library answers 0 itself. Not modelled: EEXIST for
 * a second ADD, ENOENT for a DEL of a file never added, EINVAL for an
 * engine file that is no VFIO group or device.
 */
static int kvm_vfio_engine_file(int fd, unsigned long request, void *arg)
{
	struct kvm_device_attr attr;
	int32_t file;
	char link[64];

	if ((unsigned int)request != (unsigned int)KVM_SET_DEVICE_ATTR)
		return 0;
	/* the arguments may be bad pointers: read them without faulting */
	if (read_own(&attr, (uintptr_t)arg, sizeof(attr)) != sizeof(attr))
		return 0;
	if (attr.group != KVM_DEV_VFIO_FILE ||
	    (attr.attr != KVM_DEV_VFIO_FILE_ADD && attr.attr != KVM_DEV_VFIO_FILE_DEL))
		return 0;
	if (read_own(&file, (uintptr_t)attr.addr, sizeof(file)) != sizeof(file))
		return 0;
	if (file < 0 || !bit_test(file))
		return 0;
	return fd_link(fd, link, sizeof(link)) >= 0 && strcmp(link, "anon_inode:kvm-vfio") == 0;
}

/*
 * FIOCLEX and FIONCLEX act on the fd, not the file (the kernel answers them
 * before any driver): they stay with the placeholder.
 */
EXPORT int ioctl(int fd, unsigned long request, ...)
{
	va_list ap;
	void *arg;

	va_start(ap, request);
	arg = va_arg(ap, void *);
	va_end(ap);
	if (lib_fd(fd))
		return ebadf();
	if (bit_test(fd) && (unsigned int)request != FIOCLEX && (unsigned int)request != FIONCLEX)
		return engine_ioctl(fd, request, arg);
	ensure_init();
	if (kvm_vfio_engine_file(fd, request, arg))
		return 0;
	if (kvm_slot_over_registers(fd, request, arg))
		return -1;
	return real.ioctl(fd, request, arg);
}

EXPORT ssize_t read(int fd, void *buf, size_t count)
{
	if (lib_fd(fd))
		return ebadf();
	if (bit_test(fd))
		return engine_rw(UIOMMU_OP_READ, fd, (uintptr_t)buf, count, 0);
	ensure_init();
	return real.read(fd, buf, count);
}

EXPORT ssize_t write(int fd, const void *buf, size_t count)
{
	if (lib_fd(fd))
		return ebadf();
	if (bit_test(fd))
		return engine_rw(UIOMMU_OP_WRITE, fd, (uintptr_t)buf, count, 0);
	ensure_init();
	return real.write(fd, buf, count);
}

static ssize_t do_pread(int fd, void *buf, size_t count, off_t off)
{
	if (lib_fd(fd))
		return ebadf();
	if (bit_test(fd))
		return engine_rw(UIOMMU_OP_PREAD, fd, (uintptr_t)buf, count, off);
	ensure_init();
	return real.pread(fd, buf, count, off);
}

static ssize_t do_pwrite(int fd, const void *buf, size_t count, off_t off)
{
	if (lib_fd(fd))
		return ebadf();
	if (bit_test(fd))
		return engine_rw(UIOMMU_OP_PWRITE, fd, (uintptr_t)buf, count, off);
	ensure_init();
	return real.pwrite(fd, buf, count, off);
}

EXPORT ssize_t pread(int fd, void *buf, size_t count, off_t off)
{
	return do_pread(fd, buf, count, off);
}

EXPORT ssize_t pread64(int fd, void *buf, size_t count, off64_t off)
{
	return do_pread(fd, buf, count, off);
}

EXPORT ssize_t pwrite(int fd, const void *buf, size_t count, off_t off)
{
	return do_pwrite(fd, buf, count, off);
}

EXPORT ssize_t pwrite64(int fd, const void *buf, size_t count, off64_t off)
{
	return do_pwrite(fd, buf, count, off);
}

/* _FORTIFY_SOURCE variants: the buffer-size check, then the call above. */
EXPORT ssize_t __read_chk(int fd, void *buf, size_t count, size_t buflen)
{
	if (count > buflen)
		__chk_fail();
	return read(fd, buf, count);
}

EXPORT ssize_t __pread_chk(int fd, void *buf, size_t count, off_t off, size_t buflen)
{
	if (count > buflen)
		__chk_fail();
	return do_pread(fd, buf, count, off);
}

EXPORT ssize_t __pread64_chk(int fd, void *buf, size_t count, off64_t off, size_t buflen)
{
	if (count > buflen)
		__chk_fail();
	return do_pread(fd, buf, count, off);
}
