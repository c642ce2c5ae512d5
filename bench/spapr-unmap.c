/*
 * The pseries boot pattern: a guest clearing its default DMA window makes
 * QEMU issue one 4 KiB VFIO_IOMMU_UNMAP_DMA per TCE of it. This program sets
 * up a SPAPR TCE v2 container with a 1 GiB window of 4 KiB TCEs (2 MiB of it
 * mapped), then times COUNT sequential 4 KiB UNMAP_DMA calls over the window
 * (262,144 covers it once). Prints "unmaps <COUNT>" and "unmap_total_ns <ns>".
 *
 *   uiommu run --host powernv -- native/build/bench/spapr-unmap [COUNT [BDF]]
 */
#define _GNU_SOURCE
#include <sys/mman.h>
#include <time.h>

#include "../examples/example-common.h"

#define WINDOW_SIZE (1ull << 30)
#define PAGE 4096ull
#define RAM_LEN (2ull << 20)

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int main(int argc, char **argv)
{
	long count = argc > 1 ? atol(argv[1]) : (long)(WINDOW_SIZE / PAGE);
	const char *bdf = argc > 2 ? argv[2] : "0000:01:00.0";
	char path[64];
	uint8_t *ram = mmap(NULL, RAM_LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
			    0);

	CHECK(ram != MAP_FAILED && count > 0, "mmap or COUNT");
	memset(ram, 0, RAM_LEN);
	int container = open_or_die("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);
	snprintf(path, sizeof(path), "/dev/vfio/%d", group_of(bdf));
	int group = open_or_die(path, O_RDWR | O_CLOEXEC);
	IOCTL_OK(group, VFIO_GROUP_SET_CONTAINER, &container);
	IOCTL_VAL_OK(container, VFIO_SET_IOMMU, VFIO_SPAPR_TCE_v2_IOMMU);

	struct vfio_iommu_spapr_tce_info info = { .argsz = sizeof(info) };
	IOCTL_OK(container, VFIO_IOMMU_SPAPR_TCE_GET_INFO, &info);
	struct vfio_iommu_spapr_tce_remove remove = {
		.argsz = sizeof(remove),
		.start_addr = info.dma32_window_start,
	};
	IOCTL_OK(container, VFIO_IOMMU_SPAPR_TCE_REMOVE, &remove);
	struct vfio_iommu_spapr_tce_create create = {
		.argsz = sizeof(create),
		.page_shift = 12,
		.window_size = WINDOW_SIZE,
		.levels = 1,
	};
	IOCTL_OK(container, VFIO_IOMMU_SPAPR_TCE_CREATE, &create);
	struct vfio_iommu_spapr_register_memory reg = {
		.argsz = sizeof(reg),
		.vaddr = (uintptr_t)ram,
		.size = RAM_LEN,
	};
	IOCTL_OK(container, VFIO_IOMMU_SPAPR_REGISTER_MEMORY, &reg);
	struct vfio_iommu_type1_dma_map map = {
		.argsz = sizeof(map),
		.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
		.vaddr = (uintptr_t)ram,
		.iova = create.start_addr,
		.size = RAM_LEN,
	};
	IOCTL_OK(container, VFIO_IOMMU_MAP_DMA, &map);

	struct vfio_iommu_type1_dma_unmap unmap = { .argsz = sizeof(unmap), .size = PAGE };
	uint64_t t0 = now_ns();
	for (long i = 0; i < count; i++) {
		unmap.iova = create.start_addr + ((uint64_t)i * PAGE) % WINDOW_SIZE;
		unmap.size = PAGE;
		if (ioctl(container, VFIO_IOMMU_UNMAP_DMA, &unmap))
			die("UNMAP_DMA %ld: %s", i, strerrorname_np(errno));
	}
	uint64_t t = now_ns() - t0;
	printf("unmaps %ld\nunmap_total_ns %llu\n", count, (unsigned long long)t);
	return 0;
}
