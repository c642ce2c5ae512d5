/*
 * A bystander's round trip while another client attacks the engine, run
 * under `uiommu run`. This process (the bystander, a connection of its own)
 * times IOMMU_IOAS_IOVA_RANGES round trips: idle, then while a forked client
 * makes one huge call (IOMMU_IOAS_ALLOC whose `size` 0x10000000 makes the
 * engine check 256 MiB of zeroed struct tail), then while a forked client
 * floods the engine's socket with garbage frames (random ops and arguments,
 * no HELLO, 32 in flight at a time). Prints "idle_ns <median>",
 * "huge_ns <median> <calls>" and "flood_ns <median> <calls> <frames>".
 *
 * usage: bystander [idle calls]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../native/protocol.h"
#include "clock.h"

/* Our own copies of two iommufd uAPI facts: _IO(';', 0x81) and _IO(';', 0x84). */
#define IOMMU_IOAS_ALLOC 0x3b81
#define IOMMU_IOAS_IOVA_RANGES 0x3b84
#define TAIL_MAPPING (1UL << 30)
#define HUGE_SIZE 0x10000000u
#define MAX_SAMPLES 200000
#define FLOOD_BATCH 32

struct ioas_iova_ranges {
	uint32_t size, ioas_id, num_iovas, reserved;
	uint64_t allowed_iovas, out_iova_alignment;
};

/* One engine round trip: IOVA_RANGES of an IOAS that does not exist (ENOENT). */
static uint64_t round_trip(int fd)
{
	struct ioas_iova_ranges r = { .size = sizeof(r), .ioas_id = 0xdead };
	uint64_t t = now_ns();

	ioctl(fd, IOMMU_IOAS_IOVA_RANGES, &r);
	return now_ns() - t;
}

/* Round trips while *busy (set by the attacker once it started); their count in *n. */
static uint64_t while_busy(int fd, volatile int *busy, uint64_t *t, int *n)
{
	*n = 0;
	while (!*busy)
		;
	while (*busy == 1 && *n < MAX_SAMPLES) {
		uint64_t d = round_trip(fd);

		if (*busy == 1)
			t[(*n)++] = d;
	}
	return median(t, *n);
}

/* The huge call, from a connection of its own: *busy is 1 while it is in flight, then 2. */
static void huge_call(volatile int *busy)
{
	uint32_t *a = mmap(NULL, TAIL_MAPPING, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	int fd = open("/dev/iommu", O_RDWR);

	if (a == MAP_FAILED || fd < 0)
		_exit(1);
	a[0] = HUGE_SIZE;
	*busy = 1;
	ioctl(fd, IOMMU_IOAS_ALLOC, a);
	*busy = 2;
	_exit(0);
}

/* Garbage frames on a raw connection until killed; the frames answered so far in *frames. */
static void flood(volatile int *busy, volatile long *frames)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	const char *path = getenv(UIOMMU_ENV_SOCK);
	struct uiommu_req rq[FLOOD_BATCH];
	struct uiommu_resp rs[FLOOD_BATCH];
	unsigned seed = 7;
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (!path || s < 0)
		_exit(1);
	strncpy(sa.sun_path, path, sizeof(sa.sun_path) - 1);
	if (connect(s, (struct sockaddr *)&sa, sizeof(sa)))
		_exit(1);
	*busy = 1;
	for (;;) {
		for (int i = 0; i < FLOOD_BATCH; i++) {
			unsigned char *b = (unsigned char *)&rq[i];

			for (size_t k = 0; k < sizeof(rq[i]); k++)
				b[k] = (unsigned char)rand_r(&seed);
			rq[i].len = 0;
		}
		if (send(s, rq, sizeof(rq), MSG_NOSIGNAL) != sizeof(rq) ||
		    recv(s, rs, sizeof(rs), MSG_WAITALL) != sizeof(rs))
			_exit(1);
		*frames += FLOOD_BATCH;
	}
}

int main(int argc, char **argv)
{
	int idle_n = argc > 1 ? atoi(argv[1]) : 2000, n, fd = open("/dev/iommu", O_RDWR);
	volatile int *busy = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
				  -1, 0);
	volatile long *frames = (volatile long *)(busy + 16);
	uint64_t *t = calloc(MAX_SAMPLES, sizeof(*t)), med;
	pid_t kid;

	if (fd < 0 || busy == MAP_FAILED || !t || idle_n <= 0 || idle_n > MAX_SAMPLES) {
		fprintf(stderr, "bystander: setup failed: %s\n", strerror(errno));
		return 2;
	}
	for (int i = 0; i < idle_n; i++)
		t[i] = round_trip(fd);
	printf("idle_ns %llu\n", (unsigned long long)median(t, idle_n));

	*busy = 0;
	kid = fork();
	if (kid == 0)
		huge_call(busy);
	med = while_busy(fd, busy, t, &n);
	waitpid(kid, NULL, 0);
	printf("huge_ns %llu %d\n", (unsigned long long)med, n);

	*busy = 0;
	kid = fork();
	if (kid == 0)
		flood(busy, frames);
	while (!*busy)
		;
	n = 0;
	for (uint64_t end = now_ns() + 1000000000u; now_ns() < end && n < MAX_SAMPLES;)
		t[n++] = round_trip(fd);
	kill(kid, SIGKILL);
	waitpid(kid, NULL, 0);
	printf("flood_ns %llu %d %ld\n", (unsigned long long)median(t, n), n, *frames);
	return 0;
}
