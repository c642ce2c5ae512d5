/*
 * Hostile sizes under `uiommu run`: one process makes a call whose size
 * makes the engine do work in proportion to it, while a forked bystander (a
 * connection of its own) keeps making round trips. In Linux only the caller
 * waits; under uiommu the bystander must be served meanwhile. The call, by
 * the first argument:
 *   ioas   (default) IOMMU_IOAS_ALLOC whose `size` makes the engine check a
 *          huge zeroed struct tail; sizes of 2^31 and more answer as Linux
 *          (E2BIG, EFAULT), never EIO;
 *   hwinfo IOMMU_GET_HW_INFO of a mock device (`--host mock`) whose
 *          `data_len` makes the engine clear_user() a huge buffer;
 *   invalidate IOMMU_HWPT_INVALIDATE of a mock nested HWPT (`--host mock`)
 *          with INVALIDATE_ENTRIES zeroed 8-byte entries, each handled (its
 *          IOTLB slot 0 cleared); and a vIOMMU's array too big for the
 *          kernel's kmalloc (ENOMEM, entry_num left as it was).
 * Prints "ok <name>" / "FAIL <name>: ..." and a "figures" line: the
 * bystander's idle and in-flight round trips (median, µs) and how many it
 * made during the call, and the engine's VmRSS (its parent: `uiommu run`)
 * before and after. HOSTILE_SIZE overrides the size (default 0x10000000).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "uiommu-uapi.h"
#include "hostile-check.h"

#define IOMMU_TEST_CMD _IO(UIOMMU_IOCTL_TYPE, 0xa0)
#define IOMMU_TEST_OP_MOCK_DOMAIN 2
#define IOMMU_HWPT_INVALIDATE _IO(UIOMMU_IOCTL_TYPE, 0x8d)
#define IOMMU_HWPT_DATA_SELFTEST 0xdead
#define IOMMU_INVALIDATE_DATA_SELFTEST 0xdeadbeef
#define IOMMU_VIOMMU_TYPE_SELFTEST 0xdeadbeef
#define INVALIDATE_ENTRIES 1000000u

struct iommu_hwpt_invalidate {
	uint32_t size, hwpt_id;
	uint64_t data_uptr;
	uint32_t data_type, entry_len, entry_num, __reserved;
};
#define MAPPING (5UL << 30)
#define IDLE_CALLS 400
#define MAX_SAMPLES 200000

/* IOMMU_TEST_CMD with IOMMU_TEST_OP_MOCK_DOMAIN (72 bytes). */
struct mock_domain_cmd {
	uint32_t size, op, id, __reserved;
	uint32_t out_stdev_id, out_hwpt_id, out_idev_id;
	uint8_t rest[72 - 28];
};

static double now_us(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

/* One engine round trip: IOVA_RANGES of an IOAS id that does not exist (ENOENT). */
static double round_trip(int fd)
{
	struct iommu_ioas_iova_ranges r = { .size = sizeof(r), .ioas_id = 0xdead };
	double t = now_us();

	ioctl(fd, IOMMU_IOAS_IOVA_RANGES, &r);
	return now_us() - t;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median(double *v, int n)
{
	qsort(v, n, sizeof(*v), cmp);
	return n ? v[n / 2] : 0;
}

/* The bystander: idle round trips, then as many as it can while *inflight. */
static int bystander(volatile int *inflight, int ready_fd)
{
	static double idle[IDLE_CALLS], during[MAX_SAMPLES];
	int fd = open("/dev/iommu", O_RDWR), n = 0;

	if (fd < 0)
		return 2;
	for (int i = 0; i < IDLE_CALLS; i++)
		idle[i] = round_trip(fd);
	if (write(ready_fd, "r", 1) != 1)
		return 2;
	while (!*inflight)
		;
	while (*inflight && n < MAX_SAMPLES) {
		double t = round_trip(fd);

		if (*inflight)
			during[n++] = t;
	}
	printf("figures bystander idle_median_us=%.1f inflight_median_us=%.1f inflight_calls=%d\n",
	       median(idle, IDLE_CALLS), median(during, n), n);
	fflush(stdout);
	return n >= 10 ? 0 : 1;
}

/* IOAS_ALLOC at `big` with sizes of 2^31 and more: E2BIG at an early non-zero byte, EFAULT past the mapping. */
static void huge_sizes(int fd, char *big)
{
	struct iommu_ioas_alloc *a = (struct iommu_ioas_alloc *)big;
	char detail[128];
	int ret;

	a->size = 0x80000010;
	big[100] = 1;
	ret = ioctl(fd, IOMMU_IOAS_ALLOC, a);
	snprintf(detail, sizeof(detail), "ret %d %s", ret, strerror(errno));
	check("size 0x80000010, non-zero tail: E2BIG", ret == -1 && errno == E2BIG, detail);
	big[100] = 0;
	a = (struct iommu_ioas_alloc *)(big + MAPPING - 4096);
	a->size = 0xfffffff0;
	ret = ioctl(fd, IOMMU_IOAS_ALLOC, a);
	snprintf(detail, sizeof(detail), "ret %d %s", ret, strerror(errno));
	check("size 0xfffffff0 past the mapping's end: EFAULT", ret == -1 && errno == EFAULT,
	      detail);
}

/* A mock device bound to `fd` (MOCK_DOMAIN on a fresh IOAS): its dev_id, 0 on failure; its IOAS in *ioas. */
static uint32_t mock_device(int fd, uint32_t *ioas)
{
	struct iommu_ioas_alloc a = { .size = sizeof(a) };
	struct mock_domain_cmd m = { .size = sizeof(m), .op = IOMMU_TEST_OP_MOCK_DOMAIN };

	if (ioctl(fd, IOMMU_IOAS_ALLOC, &a))
		return 0;
	m.id = *ioas = a.out_ioas_id;
	return ioctl(fd, IOMMU_TEST_CMD, &m) ? 0 : m.out_idev_id;
}

/*
 * A nesting parent HWPT on `ioas` for `dev_id`, a mock nested HWPT on it
 * (returned) and a selftest vIOMMU (in *viommu); 0 on failure.
 */
static uint32_t mock_nested(int fd, uint32_t ioas, uint32_t dev_id, uint32_t *viommu)
{
	uint32_t data[4] = { 0 };
	struct iommu_hwpt_alloc parent = {
		.size = sizeof(parent),
		.flags = IOMMU_HWPT_ALLOC_NEST_PARENT,
		.dev_id = dev_id,
		.pt_id = ioas,
	};
	struct iommu_hwpt_alloc nested = {
		.size = sizeof(nested),
		.dev_id = dev_id,
		.data_type = IOMMU_HWPT_DATA_SELFTEST,
		.data_len = 4,
		.data_uptr = (uintptr_t)data,
	};
	struct iommu_viommu_alloc va = {
		.size = sizeof(va),
		.type = IOMMU_VIOMMU_TYPE_SELFTEST,
		.dev_id = dev_id,
		.data_len = 8,
		.data_uptr = (uintptr_t)data,
	};

	if (ioctl(fd, IOMMU_HWPT_ALLOC, &parent))
		return 0;
	nested.pt_id = va.hwpt_id = parent.out_hwpt_id;
	if (ioctl(fd, IOMMU_HWPT_ALLOC, &nested) || ioctl(fd, IOMMU_VIOMMU_ALLOC, &va))
		return 0;
	*viommu = va.out_viommu_id;
	return nested.out_hwpt_id;
}

/* HWPT_INVALIDATE of `n` entries of `len` bytes at `at` on `id`: -errno or 0; entry_num back in *done. */
static int invalidate(int fd, uint32_t id, void *at, uint32_t len, uint32_t n, uint32_t *done)
{
	struct iommu_hwpt_invalidate inv = {
		.size = sizeof(inv),
		.hwpt_id = id,
		.data_uptr = (uintptr_t)at,
		.data_type = IOMMU_INVALIDATE_DATA_SELFTEST,
		.entry_len = len,
		.entry_num = n,
	};
	int ret = ioctl(fd, IOMMU_HWPT_INVALIDATE, &inv);

	*done = inv.entry_num;
	return ret ? -errno : 0;
}

/* The hostile call of `mode` over `big`, `size` long: 0 when answered as Linux would. */
static int attack(const char *mode, int fd, char *big, uint32_t size, uint32_t dev_id, char *detail,
		  size_t len)
{
	int ret, err;

	if (!strcmp(mode, "invalidate")) {
		uint32_t done;

		ret = invalidate(fd, dev_id, big, 8, INVALIDATE_ENTRIES, &done);
		snprintf(detail, len, "ret %d entry_num %u", ret, done);
		return !(ret == 0 && done == INVALIDATE_ENTRIES);
	}
	if (!strcmp(mode, "hwinfo")) {
		struct iommu_hw_info h = { .size = sizeof(h), .dev_id = dev_id, .data_len = size };

		h.data_uptr = (uintptr_t)big;
		ret = ioctl(fd, IOMMU_GET_HW_INFO, &h);
		err = errno;
		snprintf(detail, len, "ret %d %s data_len %u bytes %d %d %d", ret, strerror(err),
			 h.data_len, big[h.data_len], big[size / 2], big[size - 1]);
		/* the driver's 8 bytes copied, the rest of the buffer zeroed */
		return !(ret == 0 && h.data_len == 8 && !big[8] && !big[size / 2] &&
			 !big[size - 1]);
	}
	struct iommu_ioas_alloc *a = (struct iommu_ioas_alloc *)big;

	a->size = size;
	ret = ioctl(fd, IOMMU_IOAS_ALLOC, a);
	err = errno;
	snprintf(detail, len, "ret %d %s", ret, strerror(err));
	return !(ret == 0 && a->out_ioas_id != 0);
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "ioas";
	const char *env = getenv("HOSTILE_SIZE");
	uint32_t size = env ? (uint32_t)strtoul(env, NULL, 0) : 0x10000000, dev_id = 0;
	volatile int *inflight = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
				      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	char *big = mmap(NULL, MAPPING, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	int fd = open("/dev/iommu", O_RDWR), pipefd[2], status, bad;
	long rss_before, rss_after;
	char detail[160], c;
	double t;
	pid_t kid;

	if (inflight == MAP_FAILED || big == MAP_FAILED || fd < 0 || pipe(pipefd)) {
		printf("FAIL setup: %s\n", strerror(errno));
		return 1;
	}
	if (!strcmp(mode, "invalidate")) {
		uint32_t ioas, viommu = 0, done, *e = (uint32_t *)big;
		int ret;

		dev_id = mock_device(fd, &ioas);
		dev_id = dev_id ? mock_nested(fd, ioas, dev_id, &viommu) : 0;
		check("a mock nested HWPT and vIOMMU", dev_id != 0, strerror(errno));
		/* a bad entry deep in a long array: the entries before it handled, EOPNOTSUPP */
		e[2 * 600000] = 0x80;
		ret = invalidate(fd, dev_id, big, 8, 600001, &done);
		snprintf(detail, sizeof(detail), "ret %d entry_num %u", ret, done);
		check("unknown flags at entry 600000: EOPNOTSUPP, 600000 handled",
		      ret == -EOPNOTSUPP && done == 600000, detail);
		e[2 * 600000] = 0;
		/* entries running past the mapping: EFAULT at the first unreadable one */
		ret = invalidate(fd, dev_id, big + MAPPING - 8 * 5000, 8, 6000, &done);
		snprintf(detail, sizeof(detail), "ret %d entry_num %u", ret, done);
		check("entries past the mapping: EFAULT, the 5000 before handled",
		      ret == -EFAULT && done == 5000, detail);
		ret = invalidate(fd, viommu, big, 12, 400000, &done);
		snprintf(detail, sizeof(detail), "ret %d entry_num %u", ret, done);
		check("a vIOMMU array above KMALLOC_MAX_SIZE: ENOMEM, entry_num unchanged",
		      ret == -ENOMEM && done == 400000, detail);
	} else if (!strcmp(mode, "hwinfo")) {
		uint32_t ioas;

		dev_id = mock_device(fd, &ioas);
		check("a mock device", dev_id != 0, strerror(errno));
		/* a buffer running past the mapping: EFAULT, its mapped part zeroed */
		struct iommu_hw_info h = { .size = sizeof(h),
					   .dev_id = dev_id,
					   .data_len = 4 << 20 };
		int ret;

		h.data_uptr = (uintptr_t)(big + MAPPING - 4096);
		big[MAPPING - 1] = 1;
		ret = ioctl(fd, IOMMU_GET_HW_INFO, &h);
		snprintf(detail, sizeof(detail), "ret %d %s last byte %d", ret, strerror(errno),
			 big[MAPPING - 1]);
		check("data_len past the mapping: EFAULT, the mapped part zeroed",
		      ret == -1 && errno == EFAULT && !big[MAPPING - 1], detail);
		/* marks where the engine must write zeroes */
		big[8] = big[size / 2] = big[size - 1] = 1;
	} else {
		huge_sizes(fd, big);
	}

	kid = fork();
	if (kid == 0)
		_exit(bystander(inflight, pipefd[1]));
	if (read(pipefd[0], &c, 1) != 1) {
		printf("FAIL bystander did not start\n");
		return 1;
	}
	rss_before = engine_rss_kb();
	*inflight = 1;
	t = now_us();
	bad = attack(mode, fd, big, size, dev_id, detail, sizeof(detail));
	t = now_us() - t;
	*inflight = 0;
	rss_after = engine_rss_kb();
	check(!strcmp(mode, "hwinfo") ? "huge data_len: 0, the rest of the buffer zeroed, as Linux"
	      : !strcmp(mode, "invalidate") ? "1,000,000 entries: 0, every one handled"
					    : "huge zeroed tail: 0, as Linux",
	      !bad, detail);
	waitpid(kid, &status, 0);
	snprintf(detail, sizeof(detail), "status %d", status);
	check("the bystander was answered during the call",
	      WIFEXITED(status) && WEXITSTATUS(status) == 0, detail);
	printf("figures %s size=0x%x call_ms=%.0f engine_rss_kb_before=%ld after=%ld\n", mode, size,
	       t / 1e3, rss_before, rss_after);
	return failures ? 1 : 0;
}
