/*
 * SPAPR v2 UNMAP_DMA under unmap leases (docs/engine-protocol.md, *Unmap
 * leases*), from a real process on the powernv preset:
 *
 *   unmap-lease equiv SEED N   N random MAP/UNMAP/CREATE/REMOVE, each answer printed
 *   unmap-lease storm N        N sequential 4 KiB unmaps (past a full ring), then MAP/UNMAP
 *   unmap-lease fork           a fork child's UNMAP is EPERM; the parent's lease goes on
 *   unmap-lease threads        two threads unmapping at once
 *   unmap-lease scribble       garbage in the ring; the answers stay the kernel's
 *   unmap-lease kill           a child killed mid-storm releases its group
 *   unmap-lease failnth        fail-nth armed: an unmap cutting a mapping passes no injection point
 *   unmap-lease race           unmaps of every mapped page while another process revokes the lease
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "example-common.h"
#include "protocol.h"

#define RAM_ADDR 0x7e0000000000ull
#define RAM_LEN (2ull << 20)
#define PAGE 4096ull
#define DDW (1ull << 59)

static int container, group;

/* Container + group 0 (0000:01:00.0), v2, RAM registered and mapped at 0 in the default window. */
static void setup(void)
{
	void *ram = mmap((void *)RAM_ADDR, RAM_LEN, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);

	CHECK(ram == (void *)RAM_ADDR, "mmap at a fixed address");
	container = open_or_die("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);
	group = open_or_die("/dev/vfio/0", O_RDWR | O_CLOEXEC);
	CHECK(!ioctl(group, VFIO_GROUP_SET_CONTAINER, &container), "SET_CONTAINER");
	CHECK(!ioctl(container, VFIO_SET_IOMMU, VFIO_SPAPR_TCE_v2_IOMMU), "SET_IOMMU");
	struct vfio_iommu_spapr_register_memory reg = {
		.argsz = sizeof(reg),
		.vaddr = RAM_ADDR,
		.size = RAM_LEN,
	};
	CHECK(!ioctl(container, VFIO_IOMMU_SPAPR_REGISTER_MEMORY, &reg), "REGISTER");
	struct vfio_iommu_type1_dma_map map = {
		.argsz = sizeof(map),
		.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
		.vaddr = RAM_ADDR,
		.iova = 0,
		.size = RAM_LEN,
	};
	CHECK(!ioctl(container, VFIO_IOMMU_MAP_DMA, &map), "MAP");
}

static int unmap(uint64_t iova, uint64_t size)
{
	struct vfio_iommu_type1_dma_unmap u = { .argsz = sizeof(u), .iova = iova, .size = size };

	return ioctl(container, VFIO_IOMMU_UNMAP_DMA, &u) ? -errno : 0;
}

static int map(uint64_t vaddr, uint64_t iova, uint64_t size)
{
	struct vfio_iommu_type1_dma_map m = {
		.argsz = sizeof(m),
		.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
		.vaddr = vaddr,
		.iova = iova,
		.size = size,
	};

	return ioctl(container, VFIO_IOMMU_MAP_DMA, &m) ? -errno : 0;
}

static uint64_t rng;

static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* An answer: 0, a positive number, or the errno's name. */
static const char *name(int r)
{
	static char buf[4][16];
	static int i;

	if (r < 0)
		return strerrorname_np(-r);
	i = (i + 1) % 4;
	snprintf(buf[i], sizeof(buf[i]), "%d", r);
	return buf[i];
}

/* One random call; prints it and its answer. */
static void random_call(void)
{
	uint64_t base = next() % 8 ? (next() % 2 ? 0 : DDW) : 3ull << 30;
	uint64_t iova = base + (next() % 64) * PAGE + (next() % 16 ? 0 : 0x800);
	uint64_t size = (next() % 5) * PAGE;
	unsigned kind = next() % 20;

	if (kind < 12) {
		struct vfio_iommu_type1_dma_unmap u = { .argsz = sizeof(u),
							.iova = iova,
							.size = size };

		if (kind == 0)
			u.argsz = next() % 2 ? 16 : 32;
		if (kind == 1)
			u.flags = 1;
		int r = ioctl(container, VFIO_IOMMU_UNMAP_DMA, &u) ? -errno : 0;
		printf("unmap argsz=%u flags=%u iova=%#llx size=%#llx = %s\n", u.argsz, u.flags,
		       (unsigned long long)iova, (unsigned long long)size, name(r));
	} else if (kind < 17) {
		uint64_t vaddr = RAM_ADDR + (next() % 64) * PAGE;

		printf("map vaddr=%#llx iova=%#llx size=%#llx = %s\n", (unsigned long long)vaddr,
		       (unsigned long long)iova, (unsigned long long)size,
		       name(map(vaddr, iova, size)));
	} else if (kind < 19) {
		struct vfio_iommu_spapr_tce_create c = {
			.argsz = sizeof(c),
			.page_shift = 12,
			.window_size = next() % 2 ? 1ull << 20 : 1ull << 24,
			.levels = 1,
		};
		int r = ioctl(container, VFIO_IOMMU_SPAPR_TCE_CREATE, &c) ? -errno : 0;

		printf("create size=%#llx = %s start=%#llx\n", (unsigned long long)c.window_size,
		       name(r), (unsigned long long)c.start_addr);
	} else {
		struct vfio_iommu_spapr_tce_remove rm = { .argsz = sizeof(rm), .start_addr = base };
		int r = ioctl(container, VFIO_IOMMU_SPAPR_TCE_REMOVE, &rm) ? -errno : 0;

		printf("remove start=%#llx = %s\n", (unsigned long long)base, name(r));
	}
}

static void storm(long n)
{
	for (long i = 0; i < n; i++) {
		int r = unmap((i * PAGE) % (1ull << 31), PAGE);

		if (r)
			die("UNMAP %ld: %s", i, name(r));
	}
	ok("%ld unmaps answered 0", n);
}

static void *half(void *arg)
{
	uint64_t first = (uintptr_t)arg;

	for (uint64_t i = 0; i < 20000; i++)
		if (unmap((first + i) * PAGE, PAGE))
			return (void *)1;
	return NULL;
}

/* This process's unmap ring, from /proc/self/maps. */
static struct uiommu_lease_head *find_ring(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	unsigned long start = 0;

	CHECK(f, "maps");
	while (fgets(line, sizeof(line), f))
		if (strstr(line, "memfd:uiommu-unmap-ring"))
			sscanf(line, "%lx-", &start);
	fclose(f);
	return (struct uiommu_lease_head *)start;
}

static void expect(int got, int want, const char *what)
{
	if (got != want)
		die("%s: %s, not %s", what, name(got), name(want));
	ok("%s: %s", what, name(got));
}

/* Another process of the same engine: a fresh container answers as usual. */
static void bystander(void)
{
	pid_t pid = fork();

	if (pid == 0) {
		int c = open("/dev/vfio/vfio", O_RDWR);

		_exit(c >= 0 && ioctl(c, VFIO_GET_API_VERSION) == VFIO_API_VERSION &&
				      ioctl(c, VFIO_CHECK_EXTENSION, VFIO_SPAPR_TCE_v2_IOMMU) == 1
			      ? 0
			      : 1);
	}
	int status;

	CHECK(pid > 0 && waitpid(pid, &status, 0) == pid, "fork");
	expect(WIFEXITED(status) && !WEXITSTATUS(status) ? 0 : -EIO, 0, "another process served");
}

static void scribble(void)
{
	struct uiommu_lease_head *h;
	struct uiommu_unmap_rec *recs;

	expect(unmap(0, PAGE), 0, "first unmap (asks for the lease)");
	expect(unmap(PAGE, PAGE), 0, "unmap under the lease");
	h = find_ring();
	CHECK(h && h->gen && h->gen == h->valid_gen, "a lease in a ring");
	recs = (struct uiommu_unmap_rec *)((uint8_t *)h + UIOMMU_LEASE_HEAD_BYTES);
	/* records of another fd and generation, published by hand: dropped */
	for (int i = 0; i < 3; i++) {
		struct uiommu_unmap_rec *r = &recs[(h->tail + i) % UIOMMU_LEASE_RECS];

		*r = (struct uiommu_unmap_rec){ .iova = 2 * PAGE, .size = PAGE, .argsz = 24 };
		r->fd = i == 0 ? 999 : container;
		r->gen = i == 1 ? h->gen + 7 : h->gen;
		r->flags = i == 2 ? 5 : 0;
	}
	__atomic_store_n(&h->tail, h->tail + 3, __ATOMIC_RELEASE);
	expect(unmap(1ull << 40, PAGE), -ENXIO, "unmap outside every window after garbage");
	expect(recs[(h->tail - 3) % UIOMMU_LEASE_RECS].state, UIOMMU_REC_DROPPED, "another fd");
	expect(recs[(h->tail - 2) % UIOMMU_LEASE_RECS].state, UIOMMU_REC_DROPPED, "another gen");
	/* a record the kernel refuses (flags): the lease ends for good */
	expect(recs[(h->tail - 1) % UIOMMU_LEASE_RECS].state, UIOMMU_REC_DONE, "a flags record");
	expect(recs[(h->tail - 1) % UIOMMU_LEASE_RECS].result, -EINVAL, "answered as the kernel");
	expect(h->gen != h->valid_gen ? 0 : -EIO, 0, "lease revoked");
	expect(unmap(3 * PAGE, PAGE), 0, "unmap after (ordinary)");
	expect(h->gen != h->valid_gen ? 0 : -EIO, 0, "no new lease");
	/* a tail far ahead, and gen forged back: ignored */
	h->valid_gen = h->gen;
	h->tail += 1ull << 40;
	expect(unmap(4 * PAGE, 0x800), -EINVAL, "misaligned size");
	expect(unmap(5 * PAGE, PAGE), 0, "unmap");
	bystander();
}

/* This thread's fail-nth file, opened for writing or reading. */
static int fail_nth(int flags)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/self/task/%d/fail-nth", (int)gettid());
	return open_or_die(path, flags);
}

static void failnth(void)
{
	char buf[16] = { 0 };
	int fd;

	expect(unmap(0, PAGE), 0, "first unmap (asks for the lease)");
	fd = fail_nth(O_WRONLY);
	CHECK(write(fd, "1", 1) == 1, "arm fail-nth");
	close(fd);
	/* the kernel's tce_iommu_clear allocates nothing: no point to fail at */
	expect(unmap(8 * PAGE, PAGE), 0, "unmap cutting the mapping, fail-nth armed");
	expect(unmap(16 * PAGE, 2 * PAGE), 0, "another");
	fd = fail_nth(O_RDONLY);
	CHECK(read(fd, buf, sizeof(buf) - 1) > 0, "read fail-nth");
	close(fd);
	expect(atoi(buf), 1, "fail-nth still armed (nothing consumed it)");
	fd = fail_nth(O_WRONLY);
	CHECK(write(fd, "0", 1) == 1, "disarm fail-nth");
	close(fd);
	expect(unmap(24 * PAGE, PAGE), 0, "unmap after");
}

/*
 * Every mapped page unmapped once, amid pages never mapped, while a
 * child opens and closes containers (each CLOSE revokes every lease): all
 * answered 0, and nothing stays mapped (the test reads the final state).
 */
static void race(void)
{
	pid_t pid = fork();
	int status;

	if (pid == 0) {
		for (;;)
			close(open_or_die("/dev/vfio/vfio", O_RDWR));
	}
	CHECK(pid > 0, "fork");
	for (uint64_t i = 0; i < 40960; i++) {
		/* each of the 512 mapped pages once, among pages of the window never mapped */
		uint64_t page = i % 80 ? 512 + (i * 7919) % 200000 : i / 80;

		if (unmap(page * PAGE, PAGE))
			die("UNMAP of page %llu", (unsigned long long)page);
		if (i % 8 == 0)
			usleep(50); /* let the child's CLOSEs land among the posts */
	}
	kill(pid, SIGKILL);
	CHECK(waitpid(pid, &status, 0) == pid, "wait");
	ok("40,960 unmaps answered 0 while another process revoked leases");
}

static void kill_mid_storm(void)
{
	pid_t pid = fork();
	int status;

	if (pid == 0) {
		setup();
		for (long i = 0; i < 30000; i++)
			if (unmap((i * PAGE) % (1ull << 31), PAGE))
				_exit(1);
		raise(SIGKILL);
		_exit(2);
	}
	CHECK(pid > 0 && waitpid(pid, &status, 0) == pid, "fork");
	expect(WIFSIGNALED(status) ? 0 : -EIO, 0, "child killed after its unmaps");
	setup();
	ok("group and container usable again");
	storm(5000);
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!strcmp(mode, "kill")) {
		kill_mid_storm();
		return 0;
	}
	setup();
	if (!strcmp(mode, "equiv")) {
		long n = argc > 3 ? atol(argv[3]) : 1000;

		rng = argc > 2 ? strtoull(argv[2], NULL, 0) | 1 : 1;
		for (long i = 0; i < n; i++)
			random_call();
		struct uiommu_lease_head *h = find_ring();

		printf("lease ring %s\n", h && h->gen ? "mapped" : "none");
	} else if (!strcmp(mode, "storm")) {
		storm(argc > 2 ? atol(argv[2]) : 10000);
		expect(map(RAM_ADDR, 0, RAM_LEN), 0, "MAP after the storm");
		expect(unmap(0, RAM_LEN), 0, "UNMAP of all of it");
	} else if (!strcmp(mode, "fork")) {
		expect(unmap(0, PAGE), 0, "parent unmap");
		expect(unmap(PAGE, PAGE), 0, "parent unmap under the lease");
		pid_t pid = fork();

		if (pid == 0)
			_exit(unmap(2 * PAGE, PAGE) == -EPERM && unmap(3 * PAGE, PAGE) == -EPERM
				      ? 0
				      : 1);
		int status;

		CHECK(pid > 0 && waitpid(pid, &status, 0) == pid, "fork");
		expect(WIFEXITED(status) && !WEXITSTATUS(status) ? 0 : -EIO, 0,
		       "child's unmaps EPERM");
		expect(unmap(4 * PAGE, PAGE), 0, "parent unmap after");
		expect(unmap(1ull << 40, PAGE), -ENXIO, "parent unmap outside every window");
	} else if (!strcmp(mode, "threads")) {
		pthread_t t[2];
		void *r0, *r1;

		pthread_create(&t[0], NULL, half, (void *)0);
		pthread_create(&t[1], NULL, half, (void *)20000);
		pthread_join(t[0], &r0);
		pthread_join(t[1], &r1);
		expect(r0 || r1 ? -EIO : 0, 0, "40,000 unmaps from two threads");
		expect(map(RAM_ADDR, 0, RAM_LEN), 0, "MAP after");
	} else if (!strcmp(mode, "scribble")) {
		scribble();
	} else if (!strcmp(mode, "failnth")) {
		failnth();
	} else if (!strcmp(mode, "race")) {
		race();
	} else {
		die("mode?");
	}
	return 0;
}
