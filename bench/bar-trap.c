/*
 * Cost of a trapped register access through a mapped BAR (docs/device-mmap.md),
 * measured call by call under `uiommu run --host x86`: a 4-byte load of the
 * DMA engine's ID register and a 4-byte store to its LIVENESS register
 * (each a SIGSEGV, a decode and an engine round trip), a 4-byte load of a
 * plain memory page of the same mapping, and the engine round trip alone
 * (a 4-byte pread of the same register through the device fd). Prints
 * "trap_read_ns", "trap_write_ns", "mem_read_cns" (a loop's average, in
 * hundredths of ns) and "engine_ns" (medians), or "skip <why>".
 *
 * usage: bar-trap [iterations]
 */
#include <fcntl.h>
#include <linux/vfio.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"

#define BDF "0000:00:02.0"

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 5000;
	int container = open("/dev/vfio/vfio", O_RDWR), group = open("/dev/vfio/0", O_RDWR);
	uint64_t *t = calloc((size_t)n, sizeof(*t));

	if (container < 0 || group < 0 || !t ||
	    ioctl(group, VFIO_GROUP_SET_CONTAINER, &container) ||
	    ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU))
		return puts("skip no VFIO group 0"), 0;
	int dev = ioctl(group, VFIO_GROUP_GET_DEVICE_FD, BDF);
	struct vfio_region_info cfg = { .argsz = sizeof(cfg),
					.index = VFIO_PCI_CONFIG_REGION_INDEX };
	struct vfio_region_info bar = { .argsz = sizeof(bar), .index = VFIO_PCI_BAR0_REGION_INDEX };
	uint16_t cmd = 0;

	if (dev < 0 || ioctl(dev, VFIO_DEVICE_GET_REGION_INFO, &cfg) ||
	    ioctl(dev, VFIO_DEVICE_GET_REGION_INFO, &bar) ||
	    !(bar.flags & VFIO_REGION_INFO_FLAG_MMAP))
		return puts("skip no mappable BAR0"), 0;
	pread(dev, &cmd, 2, (off_t)cfg.offset + 4);
	cmd |= 2; /* Memory Space */
	pwrite(dev, &cmd, 2, (off_t)cfg.offset + 4);
	volatile uint8_t *b = mmap(NULL, 0x80000, PROT_READ | PROT_WRITE, MAP_SHARED, dev,
				   (off_t)bar.offset);
	if (b == MAP_FAILED)
		return puts("skip mmap failed"), 0;
	volatile uint32_t *id = (volatile uint32_t *)b, *live = (volatile uint32_t *)(b + 4);
	volatile uint32_t *mem = (volatile uint32_t *)(b + 0x40000);
	uint32_t v, sum = 0;

	for (int i = 0; i < n; i++) {
		uint64_t t0 = now_ns();
		sum += *id;
		t[i] = now_ns() - t0;
	}
	printf("trap_read_ns %llu\n", (unsigned long long)median(t, n));
	for (int i = 0; i < n; i++) {
		uint64_t t0 = now_ns();
		*live = (uint32_t)i;
		t[i] = now_ns() - t0;
	}
	printf("trap_write_ns %llu\n", (unsigned long long)median(t, n));
	for (int i = 0; i < n; i++) {
		uint64_t t0 = now_ns();
		pread(dev, &v, 4, (off_t)bar.offset);
		t[i] = now_ns() - t0;
		sum += v;
	}
	printf("engine_ns %llu\n", (unsigned long long)median(t, n));
	int loops = 10000000;
	uint64_t t0 = now_ns();
	for (int i = 0; i < loops; i++)
		sum += *mem;
	printf("mem_read_cns %llu\n",
	       (unsigned long long)((now_ns() - t0) * 100 / (uint64_t)loops));
	return sum == 42 ? 2 : 0; /* keep the loads */
}
