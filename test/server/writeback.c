/*
 * The engine's writes into the caller's memory that an IOCTL answer carries
 * for the library to make (docs/engine-protocol.md, IOCTL), under
 * `uiommu run`: IOMMU_IOAS_ALLOC's out_ioas_id and IOMMU_IOAS_IOVA_RANGES'
 * ranges and counts land where the kernel puts them, call after call; a
 * struct in a page made read-only behind the library's back (a raw
 * mprotect the library cannot count, so the engine's view of the maps is
 * stale) answers EFAULT, as copy_to_user's fault does; made writable again
 * (raw), it works again; a struct whose second page is read-only gets the
 * bytes of its first page, then EFAULT. The argument bytes the request
 * carries: a struct across a page end, an unreadable one and an integer for
 * a pointer. A fork child and its parent allocating at once each get only
 * their own ids written back (the library's staging file is per process).
 * Under an RLIMIT_FSIZE of 0 or 100 bytes the calls answer the same, and
 * no SIGXFSZ comes from the library's staged copies.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "../../test/server/hostile-check.h"
#include "uiommu-uapi.h"

/* Allocates `n` IOAS and records their ids in ids[]; 0, or -1 at the first failure. */
static int alloc_ids(int fd, uint32_t *ids, int n)
{
	struct iommu_ioas_alloc a = { .size = sizeof(a) };

	for (int i = 0; i < n; i++) {
		a.out_ioas_id = 0;
		if (ioctl(fd, IOMMU_IOAS_ALLOC, &a))
			return -1;
		ids[i] = a.out_ioas_id;
	}
	return 0;
}

/*
 * A fork child and its parent allocate IOAS at the same time: every id
 * written back to one is one the engine gave it, so no id is seen by both.
 */
static void fork_allocs(int fd)
{
	enum { N = 2000 };
	uint32_t *kid = mmap(NULL, N * sizeof(*kid), PROT_READ | PROT_WRITE,
			     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	static uint32_t mine[N];
	int status = -1, ok, shared = 0;
	char detail[64];
	pid_t pid;

	pid = fork();
	if (pid == 0)
		_exit(alloc_ids(fd, kid, N) ? 1 : 0);
	ok = !alloc_ids(fd, mine, N);
	waitpid(pid, &status, 0);
	for (int i = 0; i < N; i++)
		for (int j = 0; j < N; j++)
			shared += kid[i] == mine[j];
	snprintf(detail, sizeof(detail), "parent ok %d, child status %d, ids in both %d", ok,
		 status, shared);
	check("a fork child and its parent, 2000 IOAS_ALLOC each at once: each its own ids",
	      ok && status == 0 && !shared, detail);
}

/* IOVA_RANGES under an RLIMIT_FSIZE of 0 and of 100 bytes: the same answer, no SIGXFSZ. */
static void fsize_limits(int fd, struct iommu_ioas_iova_ranges *q)
{
	struct rlimit was, lim;
	int ok = 1;

	getrlimit(RLIMIT_FSIZE, &was);
	for (rlim_t cur = 0; cur <= 100 && ok; cur += 100) {
		lim = (struct rlimit){ cur, was.rlim_max };
		ok = !setrlimit(RLIMIT_FSIZE, &lim);
		for (int i = 0; i < 20 && ok; i++) {
			q->num_iovas = 4;
			ok = !ioctl(fd, IOMMU_IOAS_IOVA_RANGES, q) && q->num_iovas == 1;
		}
	}
	setrlimit(RLIMIT_FSIZE, &was);
	check("RLIMIT_FSIZE 0 and 100: IOVA_RANGES answers the same, no SIGXFSZ", ok,
	      strerror(errno));
}

int main(void)
{
	int fd = open("/dev/iommu", O_RDWR), i, same = 1;
	char *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct iommu_ioas_alloc *alloc = (void *)page;
	struct iommu_iova_range *ranges = (void *)(page + 256);
	struct iommu_ioas_iova_ranges *q = (void *)(page + 128);
	struct iommu_ioas_iova_ranges *across;
	uint32_t first;
	char *two;

	if (fd < 0 || page == MAP_FAILED)
		return 1;
	*alloc = (struct iommu_ioas_alloc){ .size = sizeof(*alloc), .out_ioas_id = 77 };
	check("IOAS_ALLOC writes out_ioas_id",
	      !ioctl(fd, IOMMU_IOAS_ALLOC, alloc) && alloc->out_ioas_id != 77, "no id");
	first = alloc->out_ioas_id;
	/* the same calls again and again: the engine's view of the maps is reused */
	for (i = 0; i < 50 && same; i++) {
		memset(ranges, 0xee, 4 * sizeof(*ranges));
		*q = (struct iommu_ioas_iova_ranges){ .size = sizeof(*q),
						      .ioas_id = first,
						      .num_iovas = 4,
						      .allowed_iovas = (uintptr_t)ranges };
		same = !ioctl(fd, IOMMU_IOAS_IOVA_RANGES, q) && q->num_iovas == 1 &&
		       ranges[0].start == 0 && ranges[0].last == UINT64_MAX &&
		       q->out_iova_alignment == 1 && ranges[1].start == 0xeeeeeeeeeeeeeeeeULL;
	}
	check("IOVA_RANGES writes the range, the count and the alignment, 50 times", same,
	      "wrong answer");
	alloc->out_ioas_id = 0;
	check("IOAS_ALLOC again: the next id",
	      !ioctl(fd, IOMMU_IOAS_ALLOC, alloc) && alloc->out_ioas_id == first + 1, "wrong id");
	/* read-only where the library cannot see it */
	syscall(SYS_mprotect, page, 4096, PROT_READ);
	errno = 0;
	check("a struct made read-only behind the library's back: EFAULT",
	      ioctl(fd, IOMMU_IOAS_IOVA_RANGES, q) == -1 && errno == EFAULT, strerror(errno));
	check("nothing was written", q->num_iovas == 1 && ranges[1].start == 0xeeeeeeeeeeeeeeeeULL,
	      "written");
	syscall(SYS_mprotect, page, 4096, PROT_READ | PROT_WRITE);
	q->num_iovas = 4;
	check("writable again: the call works",
	      !ioctl(fd, IOMMU_IOAS_IOVA_RANGES, q) && q->num_iovas == 1, strerror(errno));
	/* a struct across a page end: the request carries the first part only */
	two = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	across = (void *)(two + 4096 - 16);
	*across = *q;
	across->num_iovas = 4;
	across->out_iova_alignment = 0;
	check("a struct across a page end: read and written whole",
	      !ioctl(fd, IOMMU_IOAS_IOVA_RANGES, across) && across->num_iovas == 1 &&
		      across->out_iova_alignment == 1,
	      strerror(errno));
	/* the second page read-only behind the library's back: the first page's bytes, EFAULT */
	across->num_iovas = 4;
	across->out_iova_alignment = 0;
	ranges[0].start = 0xeeeeeeeeeeeeeeeeULL;
	syscall(SYS_mprotect, two + 4096, 4096, PROT_READ);
	errno = 0;
	check("a struct whose second page is read-only: EFAULT",
	      ioctl(fd, IOMMU_IOAS_IOVA_RANGES, across) == -1 && errno == EFAULT,
	      strerror(errno));
	check("its first page and the ranges are written, its second page is not",
	      across->num_iovas == 1 && ranges[0].start == 0 && across->out_iova_alignment == 0,
	      "wrong bytes");
	syscall(SYS_mprotect, two + 4096, 4096, PROT_READ | PROT_WRITE);
	/* an argument the library cannot send: the engine finds it unreadable */
	mprotect(two, 4096, PROT_NONE);
	errno = 0;
	check("an unreadable struct: EFAULT",
	      ioctl(fd, IOMMU_IOAS_ALLOC, two) == -1 && errno == EFAULT, strerror(errno));
	errno = 0;
	check("an integer for a pointer: EFAULT",
	      ioctl(fd, IOMMU_IOAS_ALLOC, (void *)8) == -1 && errno == EFAULT, strerror(errno));
	alloc->out_ioas_id = 0;
	check("and the connection goes on",
	      !ioctl(fd, IOMMU_IOAS_ALLOC, alloc) && alloc->out_ioas_id, strerror(errno));
	fork_allocs(fd);
	fsize_limits(fd, q);
	return failures != 0;
}
