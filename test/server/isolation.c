/*
 * Bad input from a real process under `uiommu run`: each check prints
 * "ok <name>" or "FAIL <name>: ..." and the program exits non-zero on a
 * failure. The kernel's answers: EFAULT for struct pointers that are NULL,
 * wild, read-only for an out-field, or run into an unmapped page; EBADF for
 * closed fds; ENOTTY for an unknown ioctl; and several threads issuing
 * ioctls at once all get their own answers.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#define IOMMU_IOAS_ALLOC 0x3b81
#define IOMMU_IOAS_IOVA_RANGES 0x3b84

struct ioas_alloc {
	uint32_t size, flags, out_ioas_id;
};

struct ioas_iova_ranges {
	uint32_t size, ioas_id, num_iovas, reserved;
	uint64_t allowed_iovas, out_iova_alignment;
};

struct iova_range {
	uint64_t start, last;
};

static int failures;

static void check(const char *name, int ok, const char *detail)
{
	printf(ok ? "ok %s\n" : "FAIL %s: %s\n", name, detail);
	failures += !ok;
}

static void expect_errno(const char *name, int ret, int err)
{
	char detail[96];

	snprintf(detail, sizeof(detail), "ret %d errno %s, want -1 %s", ret, strerror(errno),
		 strerror(err));
	check(name, ret == -1 && errno == err, detail);
}

static int iommufd;
static uint32_t ioas;

static void *ranges_loop(void *arg)
{
	long bad = 0;

	for (int i = 0; i < 300; i++) {
		struct iova_range r[4];
		struct ioas_iova_ranges q = {
			.size = sizeof(q), .ioas_id = ioas, .num_iovas = 4,
			.allowed_iovas = (uintptr_t)r,
		};

		if (ioctl(iommufd, IOMMU_IOAS_IOVA_RANGES, &q) || q.num_iovas != 1 || r[0].start != 0)
			bad++;
	}
	return (void *)bad;
}

int main(void)
{
	long page = sysconf(_SC_PAGESIZE);
	struct ioas_alloc alloc = { .size = sizeof(alloc) };
	char *pages;
	int fd;

	setvbuf(stdout, NULL, _IOLBF, 0);
	iommufd = open("/dev/iommu", O_RDWR);
	check("open /dev/iommu", iommufd >= 0, strerror(errno));

	expect_errno("NULL struct: EFAULT", ioctl(iommufd, IOMMU_IOAS_ALLOC, NULL), EFAULT);
	expect_errno("wild struct pointer: EFAULT", ioctl(iommufd, IOMMU_IOAS_ALLOC, (void *)16),
		     EFAULT);

	/* two pages: a read-only one, then an unmapped one */
	pages = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	check("mmap", pages != MAP_FAILED, strerror(errno));
	memcpy(pages, &alloc, sizeof(alloc));
	memcpy(pages + page - 8, &alloc, 8); /* size=12: its last 4 bytes are in the hole */
	mprotect(pages, page, PROT_READ);
	munmap(pages + page, page);
	expect_errno("read-only struct with an out-field: EFAULT",
		     ioctl(iommufd, IOMMU_IOAS_ALLOC, pages), EFAULT);
	expect_errno("struct running into an unmapped page: EFAULT",
		     ioctl(iommufd, IOMMU_IOAS_ALLOC, pages + page - 8), EFAULT);

	check("IOAS_ALLOC after the failures", ioctl(iommufd, IOMMU_IOAS_ALLOC, &alloc) == 0,
	      strerror(errno));
	check("failed allocations left no object: first id is 1", alloc.out_ioas_id == 1,
	      "another id");
	ioas = alloc.out_ioas_id;

	expect_errno("unknown ioctl: ENOTTY", ioctl(iommufd, 0x3bff, &alloc), ENOTTY);

	pthread_t t[4];
	long bad = 0;

	for (int i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, ranges_loop, NULL);
	for (int i = 0; i < 4; i++) {
		void *r;

		pthread_join(t[i], &r);
		bad += (long)r;
	}
	check("4 threads x 300 IOVA_RANGES each get their own answer", bad == 0, "wrong answers");

	fd = dup(iommufd);
	check("close", close(fd) == 0, strerror(errno));
	expect_errno("second close: EBADF", close(fd), EBADF);
	expect_errno("ioctl on a closed fd: EBADF", ioctl(fd, IOMMU_IOAS_ALLOC, &alloc), EBADF);
	check("the original fd still works", ioctl(iommufd, IOMMU_IOAS_ALLOC, &alloc) == 0,
	      strerror(errno));
	return failures != 0;
}
