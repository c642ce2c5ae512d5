/* /proc/<pid>/status as the engine shows it (VmLck and VmPin from the model). */
#include "preload.h"

pid_t status_pid(const char *path)
{
	char norm[PATH_MAX];
	const char *p;
	long pid = 0;

	ensure_init();
	if (!g_active || !path || path[0] != '/' || normalize(path, norm) ||
	    !starts(norm, "/proc/"))
		return 0;
	p = norm + 6;
	if (starts(p, "self/"))
		return strcmp(p + 5, "status") ? 0 : getpid();
	if (*p < '1' || *p > '9')
		return 0;
	while (*p >= '0' && *p <= '9' && pid <= INT_MAX)
		pid = pid * 10 + (*p++ - '0');
	return pid <= INT_MAX && !strcmp(p, "/status") ? (pid_t)pid : 0;
}

/*
 * A read-only fd of a memfd holding the engine's answer to `rq` (with
 * `path` as payload when not NULL), at the lowest free number, O_CLOEXEC
 * from `flags`. -1 when the engine refuses (errno = its errno) or anything
 * else fails (errno EIO or the failing call's).
 */
static int engine_snapshot(struct uiommu_req *rq, const char *path, int flags)
{
	int fd = -1, ro, r, err = EIO, cloexec = flags & O_CLOEXEC;
	struct uiommu_resp rs;
	struct guard g;
	char self[32];
	char *buf;

	buf = mmap(NULL, UIOMMU_MAX_PAYLOAD, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		   -1, 0);
	if (buf == MAP_FAILED)
		return -1;
	enter(&g);
	r = call(rq, path, path ? strlen(path) + 1 : 0, &rs, buf, UIOMMU_MAX_PAYLOAD);
	leave(&g);
	if (!r && rs.ret < 0 && rs.err)
		err = rs.err;
	if (r || rs.ret < 0 || rs.len > UIOMMU_MAX_PAYLOAD)
		goto unmap;
	fd = memfd_create("uiommu-snapshot", cloexec ? MFD_CLOEXEC : 0);
	err = errno;
	if (fd < 0)
		goto unmap;
	if (real.write(fd, buf, rs.len) != (ssize_t)rs.len || lseek(fd, 0, SEEK_SET)) {
		err = EIO;
		real.close(fd);
		fd = -1;
		goto unmap;
	}
	/* a read-only open file in the memfd's slot, like the real file's */
	snprintf(self, sizeof(self), "/proc/self/fd/%d", fd);
	ro = real.openat(AT_FDCWD, self, O_RDONLY | O_CLOEXEC);
	if (ro >= 0) {
		if (real.dup3(ro, fd, cloexec ? O_CLOEXEC : 0) < 0) {
			err = errno;
			real.close(fd);
			fd = -1;
		}
		real.close(ro);
	}
unmap:
	munmap(buf, UIOMMU_MAX_PAYLOAD);
	if (fd < 0)
		errno = err;
	return fd;
}

/*
 * A read-only fd of a memfd holding PROC_STATUS's answer, at the
 * lowest free number. -1 when the engine does not serve pid or anything
 * fails (the caller then opens the real file); errno is preserved.
 */
int status_open(pid_t pid, int flags)
{
	int saved = errno, fd;
	struct uiommu_req rq = new_req(UIOMMU_OP_PROC_STATUS);

	if ((flags & O_ACCMODE) != O_RDONLY || (flags & (O_CREAT | O_TRUNC | O_DIRECTORY)))
		return -1;
	if (pid == self_pid() && engine_deferred())
		return -1; /* not connected yet: the engine does not serve us */
	engine_need();
	rq.a[0] = (uint64_t)(int64_t)pid;
	fd = engine_snapshot(&rq, NULL, flags);
	errno = saved;
	return fd;
}

/*
 * A read-only open of a file the engine generates (`norm`, marked by
 * engine_attr): a memfd holding SYSFS_READ's answer, as sysfs and debugfs
 * fill a file at its first read. -1 with the engine's errno on failure.
 */
int attr_open(const char *norm, int flags)
{
	struct uiommu_req rq = new_req(UIOMMU_OP_SYSFS_READ);

	return engine_snapshot(&rq, norm, flags);
}
