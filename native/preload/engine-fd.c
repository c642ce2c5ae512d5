/* Engine fds: placeholders, and the requests that create, copy, forget or stat them. */
#include "preload.h"

int reserve(int cloexec)
{
	uint64_t one = 1;
	int fd = eventfd(0, EFD_NONBLOCK | (cloexec ? EFD_CLOEXEC : 0));

	if (fd < 0)
		return -1;
	if (fd >= MAX_FDS) {
		real.close(fd);
		errno = EMFILE;
		return -1;
	}
	if (real.write(fd, &one, sizeof(one)) != sizeof(one)) {
		real.close(fd);
		errno = EIO;
		return -1;
	}
	return fd;
}

int engine_open(const char *norm, int flags)
{
	int saved = errno, fd, err;
	struct uiommu_req rq = new_req(UIOMMU_OP_OPEN);
	struct uiommu_resp rs;
	struct guard g;

	fd = reserve(flags & O_CLOEXEC);
	if (fd < 0)
		return -1;
	enter(&g);
	rq.a[0] = fd;
	rq.a[1] = (uint32_t)flags;
	if (call(&rq, norm, strlen(norm) + 1, &rs, NULL, 0))
		err = EIO;
	else
		err = rs.ret < 0 ? (rs.err ? rs.err : EIO) : 0;
	if (!err)
		bit_set(fd);
	leave(&g);
	if (err) {
		real.close(fd);
		errno = err;
		return -1;
	}
	errno = saved;
	return fd;
}

void engine_dup(int oldfd, int newfd)
{
	struct uiommu_resp rs;

	if (newfd >= MAX_FDS)
		return;
	if (call_simple(UIOMMU_OP_DUP, oldfd, newfd, &rs) >= 0 || rs.err == EIO)
		bit_set(newfd);
	else
		bit_clear(newfd);
}

void engine_forget(int fd)
{
	struct uiommu_resp rs;

	bit_clear(fd);
	call_simple(UIOMMU_OP_CLOSE, fd, 0, &rs);
}

int engine_stat(const char *norm, int fd, struct uiommu_stat *out)
{
	int saved = errno;
	struct uiommu_req rq = new_req(norm ? UIOMMU_OP_STAT : UIOMMU_OP_FSTAT);
	struct uiommu_resp rs;
	struct guard g;
	int r;

	memset(out, 0, sizeof(*out));
	rq.a[0] = (uint64_t)(int64_t)fd;
	enter(&g);
	r = call(&rq, norm, norm ? strlen(norm) + 1 : 0, &rs, out, sizeof(*out));
	leave(&g);
	if (r) {
		errno = EIO;
		return -1;
	}
	if (rs.ret < 0) {
		errno = rs.err ? rs.err : EIO;
		return -1;
	}
	errno = saved;
	return rs.ret > 0 && rs.len >= sizeof(*out);
}

int engine_node(const char *norm, struct uiommu_stat *out)
{
	int r = engine_stat(norm, -1, out);

	if (r == 0)
		errno = ENOENT;
	return r > 0 ? 0 : -1;
}
