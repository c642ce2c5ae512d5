/*
 * Round-trip cost of one ioctl, measured call by call: FIONREAD on a pipe
 * (a native ioctl, never interposed) and IOMMU_IOAS_IOVA_RANGES on
 * /dev/iommu (served by the engine when run under `uiommu run`).
 * Also the floor of any engine living in another process: a 64-byte
 * request and 24-byte answer over a Unix socketpair to a forked echo
 * process (pinned to CPU `echo_cpu` when given, else where this process
 * may run). Prints "native_ns <median>", "ipc_floor_ns <median>" and
 * "iommufd_ns <median>" (or "iommufd_ns -" when /dev/iommu cannot be used).
 *
 * usage: ioctl-rtt [iterations [echo_cpu]]
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"

/* Our own copies of two iommufd uAPI facts: _IO(';', 0x81) and _IO(';', 0x84). */
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

/* Median of n timed calls of fn(fd, arg); -1 if any call fails. */
static long long median_ns(int n, int fd, unsigned long req, void *arg)
{
	uint64_t *t = calloc((size_t)n, sizeof(*t));
	long long med;

	if (!t)
		return -1;
	for (int i = 0; i < n; i++) {
		uint64_t t0 = now_ns();

		if (ioctl(fd, req, arg) < 0) {
			free(t);
			return -1;
		}
		t[i] = now_ns() - t0;
	}
	med = (long long)median(t, n);
	free(t);
	return med;
}

/* Median round trip of a 64-byte request and a 24-byte answer to a forked echo process. */
static long long ipc_floor_ns(int n, int echo_cpu)
{
	uint64_t *t = calloc((size_t)n, sizeof(*t));
	char buf[64] = { 0 };
	long long med = -1;
	int sv[2];
	pid_t pid;

	if (!t || socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
		goto out;
	pid = fork();
	if (pid == 0) {
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(echo_cpu, &set);
		if (echo_cpu >= 0 && sched_setaffinity(0, sizeof(set), &set))
			_exit(1);
		close(sv[0]);
		while (read(sv[1], buf, sizeof(buf)) > 0)
			if (write(sv[1], buf, 24) != 24)
				break;
		_exit(0);
	}
	close(sv[1]);
	for (int i = 0; i < n; i++) {
		uint64_t t0 = now_ns();

		if (write(sv[0], buf, sizeof(buf)) != sizeof(buf) || read(sv[0], buf, 24) != 24)
			goto done;
		t[i] = now_ns() - t0;
	}
	med = (long long)median(t, n);
done:
	close(sv[0]);
	waitpid(pid, NULL, 0);
out:
	free(t);
	return med;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 10000;
	int echo_cpu = argc > 2 ? atoi(argv[2]) : -1;
	int pipefd[2], avail = 0;
	struct ioas_alloc alloc = { .size = sizeof(alloc) };
	struct iova_range ranges[4];
	struct ioas_iova_ranges q = { .size = sizeof(q), .num_iovas = 4 };
	long long native, iommufd = -1;
	int fd;

	if (n <= 0 || pipe(pipefd))
		return 2;
	native = median_ns(n, pipefd[0], FIONREAD, &avail);
	fd = open("/dev/iommu", O_RDWR);
	if (fd >= 0 && ioctl(fd, IOMMU_IOAS_ALLOC, &alloc) == 0) {
		q.ioas_id = alloc.out_ioas_id;
		q.allowed_iovas = (uintptr_t)ranges;
		iommufd = median_ns(n, fd, IOMMU_IOAS_IOVA_RANGES, &q);
	}
	printf("native_ns %lld\n", native);
	printf("ipc_floor_ns %lld\n", ipc_floor_ns(n, echo_cpu));
	if (iommufd < 0)
		printf("iommufd_ns -\n");
	else
		printf("iommufd_ns %lld\n", iommufd);
	return native < 0;
}
