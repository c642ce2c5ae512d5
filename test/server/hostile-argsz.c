/*
 * Hostile sizes under `uiommu run`: one process issues IOMMU_IOAS_ALLOC
 * whose `size` makes the engine check a huge zeroed struct tail, while a
 * forked bystander (a connection of its own) keeps making round trips. In
 * Linux only the caller waits; under uiommu the bystander must be served
 * meanwhile. Prints "ok <name>" / "FAIL <name>: ..." and a "figures" line:
 * the bystander's idle and in-flight round trips (median, µs) and how many
 * it made during the call, and the engine's VmRSS (its parent: `uiommu run`)
 * before and after. HOSTILE_SIZE overrides the size (default 0x10000000).
 * Sizes of 2^31 and more answer as Linux (E2BIG, EFAULT), never EIO.
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

#define IOMMU_IOAS_ALLOC 0x3b81
#define IOMMU_IOAS_IOVA_RANGES 0x3b84
#define MAPPING (5UL << 30)
#define IDLE_CALLS 400
#define MAX_SAMPLES 200000

struct ioas_alloc {
	uint32_t size, flags, out_ioas_id;
};

struct ioas_iova_ranges {
	uint32_t size, ioas_id, num_iovas, reserved;
	uint64_t allowed_iovas, out_iova_alignment;
};

static int failures;

static void check(const char *name, int ok, const char *detail)
{
	printf(ok ? "ok %s\n" : "FAIL %s: %s\n", name, detail);
	fflush(stdout);
	failures += !ok;
}

static double now_us(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

/* The engine's resident size in kB (it is our parent). */
static long engine_rss_kb(void)
{
	char path[64], line[256];
	long kb = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)getppid());
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

/* One engine round trip: IOVA_RANGES of an IOAS id that does not exist (ENOENT). */
static double round_trip(int fd)
{
	struct ioas_iova_ranges r = { .size = sizeof(r), .ioas_id = 0xdead };
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

int main(void)
{
	const char *env = getenv("HOSTILE_SIZE");
	uint32_t size = env ? (uint32_t)strtoul(env, NULL, 0) : 0x10000000;
	volatile int *inflight = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
				      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	char *big = mmap(NULL, MAPPING, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	int fd = open("/dev/iommu", O_RDWR), pipefd[2], status, ret, err;
	struct ioas_alloc *a = (struct ioas_alloc *)big;
	long rss_before, rss_after;
	char detail[128], c;
	double t;
	pid_t kid;

	if (inflight == MAP_FAILED || big == MAP_FAILED || fd < 0 || pipe(pipefd)) {
		printf("FAIL setup: %s\n", strerror(errno));
		return 1;
	}

	/* sizes of 2^31 and more: E2BIG at an early non-zero byte, EFAULT where the tail leaves the mapping */
	a->size = 0x80000010;
	big[100] = 1;
	ret = ioctl(fd, IOMMU_IOAS_ALLOC, a);
	snprintf(detail, sizeof(detail), "ret %d %s", ret, strerror(errno));
	check("size 0x80000010, non-zero tail: E2BIG", ret == -1 && errno == E2BIG, detail);
	big[100] = 0;
	a = (struct ioas_alloc *)(big + MAPPING - 4096);
	a->size = 0xfffffff0;
	ret = ioctl(fd, IOMMU_IOAS_ALLOC, a);
	snprintf(detail, sizeof(detail), "ret %d %s", ret, strerror(errno));
	check("size 0xfffffff0 past the mapping's end: EFAULT", ret == -1 && errno == EFAULT,
	      detail);
	a = (struct ioas_alloc *)big;

	kid = fork();
	if (kid == 0)
		_exit(bystander(inflight, pipefd[1]));
	if (read(pipefd[0], &c, 1) != 1) {
		printf("FAIL bystander did not start\n");
		return 1;
	}
	rss_before = engine_rss_kb();
	a->size = size;
	*inflight = 1;
	t = now_us();
	ret = ioctl(fd, IOMMU_IOAS_ALLOC, a);
	err = errno;
	t = now_us() - t;
	*inflight = 0;
	rss_after = engine_rss_kb();
	snprintf(detail, sizeof(detail), "ret %d %s", ret, strerror(err));
	check("huge zeroed tail: 0, as Linux", ret == 0 && a->out_ioas_id != 0, detail);
	waitpid(kid, &status, 0);
	snprintf(detail, sizeof(detail), "status %d", status);
	check("the bystander was answered during the call",
	      WIFEXITED(status) && WEXITSTATUS(status) == 0, detail);
	printf("figures size=0x%x call_ms=%.0f engine_rss_kb_before=%ld after=%ld\n", size, t / 1e3,
	       rss_before, rss_after);
	return failures ? 1 : 0;
}
