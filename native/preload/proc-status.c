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
 * A read-only fd of a memfd holding PROC_STATUS's answer, at the
 * lowest free number. -1 when the engine does not serve pid or anything
 * fails (the caller then opens the real file); errno is preserved.
 */
int status_open(pid_t pid, int flags)
{
	int saved = errno, fd = -1, ro, r, cloexec = flags & O_CLOEXEC;
	struct uiommu_req rq = new_req(UIOMMU_OP_PROC_STATUS);
	struct uiommu_resp rs;
	struct guard g;
	char path[32];
	char *buf;

	if ((flags & O_ACCMODE) != O_RDONLY || (flags & (O_CREAT | O_TRUNC | O_DIRECTORY)))
		return -1;
	buf = mmap(NULL, UIOMMU_MAX_PAYLOAD, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		   -1, 0);
	if (buf == MAP_FAILED)
		goto out;
	rq.a[0] = (uint64_t)(int64_t)pid;
	enter(&g);
	r = call(&rq, NULL, 0, &rs, buf, UIOMMU_MAX_PAYLOAD);
	leave(&g);
	if (r || rs.ret < 0 || rs.len > UIOMMU_MAX_PAYLOAD)
		goto unmap;
	fd = memfd_create("uiommu-status", cloexec ? MFD_CLOEXEC : 0);
	if (fd < 0)
		goto unmap;
	if (real.write(fd, buf, rs.len) != (ssize_t)rs.len || lseek(fd, 0, SEEK_SET)) {
		real.close(fd);
		fd = -1;
		goto unmap;
	}
	/* a read-only open file in the memfd's slot, like the real file's */
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	ro = real.openat(AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
	if (ro >= 0) {
		if (real.dup3(ro, fd, cloexec ? O_CLOEXEC : 0) < 0) {
			real.close(fd);
			fd = -1;
		}
		real.close(ro);
	}
unmap:
	munmap(buf, UIOMMU_MAX_PAYLOAD);
out:
	errno = saved;
	return fd;
}
