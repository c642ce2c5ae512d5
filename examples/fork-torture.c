/*
 * fork-torture: /dev/iommu fds inherited across fork(). An iommufd is one
 * open file shared by parent and child: either may use it, the context
 * lives until the last fd on it closes, and a child's death (even by
 * SIGKILL in the middle of ioctls) leaves the parent's context working.
 *
 *   uiommu run -- native/build/examples/fork-torture
 *
 * Any host preset works (no device is used). Exits 0 only if every
 * expectation holds, in the parent and in every child.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "example-common.h"

#define MIB (1ull << 20)
#define IOVA_PARENT (1ull * MIB)
#define IOVA_CHILD (4ull * MIB)
#define IOVA_LOOP (8ull * MIB)

static uint32_t ioas_alloc(int fd)
{
	struct iommu_ioas_alloc a = { .size = sizeof(a) };
	IOCTL_OK(fd, IOMMU_IOAS_ALLOC, &a);
	CHECK(a.out_ioas_id != 0, "IOAS id 0");
	return a.out_ioas_id;
}

static void *anon(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(p != MAP_FAILED, "mmap: %s", strerrorname_np(errno));
	memset(p, 0xab, len);
	return p;
}

static int ioas_map(int fd, uint32_t ioas, void *va, uint64_t iova, uint64_t len)
{
	struct iommu_ioas_map m = {
		.size = sizeof(m),
		.flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE |
			 IOMMU_IOAS_MAP_WRITEABLE,
		.ioas_id = ioas,
		.user_va = (uintptr_t)va,
		.length = len,
		.iova = iova,
	};
	return ioctl(fd, IOMMU_IOAS_MAP, &m);
}

/* IOAS_UNMAP; returns the bytes unmapped, or -errno. */
static int64_t ioas_unmap(int fd, uint32_t ioas, uint64_t iova, uint64_t len)
{
	struct iommu_ioas_unmap u = {
		.size = sizeof(u), .ioas_id = ioas, .iova = iova, .length = len
	};
	if (ioctl(fd, IOMMU_IOAS_UNMAP, &u) < 0)
		return -errno;
	return (int64_t)u.length;
}

/* IOAS_IOVA_RANGES the way QEMU calls it: count first (EMSGSIZE), then fetch. */
static unsigned iova_ranges(int fd, uint32_t ioas)
{
	struct iommu_iova_range r[16];
	struct iommu_ioas_iova_ranges q = { .size = sizeof(q), .ioas_id = ioas };
	CHECK(ioctl(fd, IOMMU_IOAS_IOVA_RANGES, &q) == -1 && errno == EMSGSIZE,
	      "IOVA_RANGES with no room: expected EMSGSIZE, got %s", strerrorname_np(errno));
	CHECK(q.num_iovas >= 1 && q.num_iovas <= 16, "num_iovas %u", q.num_iovas);
	q.allowed_iovas = (uintptr_t)r;
	IOCTL_OK(fd, IOMMU_IOAS_IOVA_RANGES, &q);
	CHECK(r[0].start <= IOVA_PARENT, "first usable IOVA 0x%llx",
	      (unsigned long long)r[0].start);
	return q.num_iovas;
}

/* The parent's context still answers: ranges, its own mapping, a fresh map/unmap. */
static void parent_context_ok(int fd, uint32_t ioas, void *scratch, const char *after)
{
	iova_ranges(fd, ioas);
	CHECK(ioas_map(fd, ioas, scratch, IOVA_PARENT, MIB) == -1 && errno == EEXIST,
	      "the parent's mapping at 0x%llx is gone (%s)", IOVA_PARENT, strerrorname_np(errno));
	CHECK(ioas_map(fd, ioas, scratch, IOVA_LOOP, MIB) == 0, "map after %s: %s", after,
	      strerrorname_np(errno));
	CHECK(ioas_unmap(fd, ioas, IOVA_LOOP, MIB) == (int64_t)MIB, "unmap after %s", after);
	ok("the parent's context works after %s", after);
}

static void wait_exit0(pid_t pid, const char *what)
{
	int st;
	CHECK(waitpid(pid, &st, 0) == pid, "waitpid: %s", strerrorname_np(errno));
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s failed (status 0x%x)", what, st);
}

int main(void)
{
	int fd = open_or_die("/dev/iommu", O_RDWR); /* inherited by every child */
	uint32_t ioas = ioas_alloc(fd);
	void *pmem = anon(MIB), *scratch = anon(MIB);
	CHECK(ioas_map(fd, ioas, pmem, IOVA_PARENT, MIB) == 0, "map: %s", strerrorname_np(errno));
	ok("parent: /dev/iommu fd %d, ioas %u, 1 MiB mapped at 0x%llx", fd, ioas, IOVA_PARENT);

	/* 1. the child uses the inherited fd, maps its own memory, closes first */
	pid_t pid = fork();
	CHECK(pid >= 0, "fork: %s", strerrorname_np(errno));
	if (pid == 0) {
		unsigned n = iova_ranges(fd, ioas);
		void *cmem = anon(MIB);
		CHECK(ioas_map(fd, ioas, cmem, IOVA_CHILD, MIB) == 0, "child map: %s",
		      strerrorname_np(errno));
		CHECK(ioas_map(fd, ioas, cmem, IOVA_PARENT, MIB) == -1 && errno == EEXIST,
		      "child does not see the parent's mapping");
		ok("child 1: IOVA_RANGES (%u) and MAP on the inherited fd; sees the parent's map",
		   n);
		CHECK(close(fd) == 0, "child close: %s", strerrorname_np(errno));
		_exit(0);
	}
	wait_exit0(pid, "child 1");
	int64_t r = ioas_unmap(fd, ioas, IOVA_CHILD, MIB);
	CHECK(r == (int64_t)MIB, "the child's mapping did not outlive it (unmap = %lld)",
	      (long long)r);
	ok("parent: the exited child's mapping was still there, unmapped 1 MiB");
	parent_context_ok(fd, ioas, scratch, "child 1 closed and exited");

	/* 2. the parent closes first: the child's inherited fd keeps the context alive */
	int fd2 = open_or_die("/dev/iommu", O_RDWR);
	uint32_t ioas2 = ioas_alloc(fd2);
	int go[2];
	CHECK(pipe(go) == 0, "pipe: %s", strerrorname_np(errno));
	pid = fork();
	CHECK(pid >= 0, "fork: %s", strerrorname_np(errno));
	if (pid == 0) {
		char c;
		close(go[1]);
		CHECK(read(go[0], &c, 1) == 1, "child 2: no go from the parent");
		iova_ranges(fd2, ioas2);
		void *cmem = anon(MIB);
		CHECK(ioas_map(fd2, ioas2, cmem, IOVA_CHILD, MIB) == 0, "child 2 map: %s",
		      strerrorname_np(errno));
		CHECK(ioas_unmap(fd2, ioas2, IOVA_CHILD, MIB) == (int64_t)MIB, "child 2 unmap");
		uint32_t other = ioas_alloc(fd2);
		CHECK(other != ioas2, "a second IOAS got the same id");
		ok("child 2: the context outlived the parent's close (ioas %u, new ioas %u)", ioas2,
		   other);
		_exit(0); /* the last reference goes with the exit */
	}
	close(go[0]);
	CHECK(close(fd2) == 0, "close(fd2): %s", strerrorname_np(errno));
	CHECK(write(go[1], "g", 1) == 1, "pipe write: %s", strerrorname_np(errno));
	close(go[1]);
	wait_exit0(pid, "child 2");
	struct iommu_ioas_alloc a = { .size = sizeof(a) };
	IOCTL_FAILS(fd2, IOMMU_IOAS_ALLOC, &a, EBADF);
	parent_context_ok(fd, ioas, scratch, "child 2 exited");

	/* 3. a child killed by SIGKILL in the middle of a map/unmap loop */
	int ready[2];
	CHECK(pipe(ready) == 0, "pipe: %s", strerrorname_np(errno));
	pid = fork();
	CHECK(pid >= 0, "fork: %s", strerrorname_np(errno));
	if (pid == 0) {
		close(ready[0]);
		void *cmem = anon(MIB);
		for (unsigned long i = 0;; i++) {
			CHECK(ioas_map(fd, ioas, cmem, IOVA_LOOP, MIB) == 0, "loop map: %s",
			      strerrorname_np(errno));
			struct iommu_iova_range rr[4];
			struct iommu_ioas_iova_ranges q = {
				.size = sizeof(q),
				.ioas_id = ioas,
				.num_iovas = 4,
				.allowed_iovas = (uintptr_t)rr,
			};
			CHECK(ioctl(fd, IOMMU_IOAS_IOVA_RANGES, &q) == 0, "loop ranges: %s",
			      strerrorname_np(errno));
			CHECK(ioas_unmap(fd, ioas, IOVA_LOOP, MIB) == (int64_t)MIB, "loop unmap");
			if (i == 0 && write(ready[1], "r", 1) != 1)
				_exit(2);
		}
	}
	close(ready[1]);
	char c;
	CHECK(read(ready[0], &c, 1) == 1, "child 3 never got going");
	close(ready[0]);
	usleep(20000);
	CHECK(kill(pid, SIGKILL) == 0, "kill: %s", strerrorname_np(errno));
	int st;
	CHECK(waitpid(pid, &st, 0) == pid, "waitpid: %s", strerrorname_np(errno));
	CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "child 3 did not die of SIGKILL (0x%x)",
	      st);
	ok("child 3 killed with SIGKILL while looping ioctls");
	/* it may have died between its map and its unmap */
	r = ioas_unmap(fd, ioas, IOVA_LOOP, MIB);
	CHECK(r == (int64_t)MIB || r == -ENOENT, "unmap of the loop range: %lld", (long long)r);
	ok("the loop range was %s",
	   r == -ENOENT ? "unmapped" : "mapped (killed mid-loop): unmapped it");
	parent_context_ok(fd, ioas, scratch, "child 3 was killed");

	/* 4. the fd shared with a killed child that held it last */
	pid = fork();
	CHECK(pid >= 0, "fork: %s", strerrorname_np(errno));
	if (pid == 0) {
		for (;;)
			pause();
	}
	CHECK(close(fd) == 0, "close: %s", strerrorname_np(errno));
	CHECK(kill(pid, SIGKILL) == 0 && waitpid(pid, &st, 0) == pid && WIFSIGNALED(st),
	      "child 4 did not die");
	ok("child 4 held the last fd on the context and was killed");

	/* 5. everything closed: a fresh /dev/iommu works */
	fd = open("/dev/iommu", O_RDWR);
	if (fd < 0)
		die("open(/dev/iommu) again: %s", strerrorname_np(errno));
	ioas = ioas_alloc(fd);
	CHECK(ioas_map(fd, ioas, pmem, IOVA_PARENT, MIB) == 0, "fresh map: %s",
	      strerrorname_np(errno));
	iova_ranges(fd, ioas);
	CHECK(ioas_unmap(fd, ioas, IOVA_PARENT, MIB) == (int64_t)MIB, "fresh unmap");
	CHECK(close(fd) == 0, "close: %s", strerrorname_np(errno));
	ok("a fresh /dev/iommu context works (ioas %u)", ioas);
	printf("PASS: fork-torture\n");
	return 0;
}
