/*
 * spapr-ddw: the SPAPR TCE v2 container flow of QEMU and DPDK on POWER
 * (pre-registered memory, a dynamic DMA window at 1<<59 replacing the
 * default 32-bit window), checked with real DMA.
 *
 *   uiommu run --host powernv -- native/build/examples/spapr-ddw [BDF [PAGE_SHIFT]]
 *
 * Needs the legacy container (the SPAPR IOMMU driver behind /dev/vfio/vfio;
 * iommufd's compat container has no SPAPR ioctls). BDF defaults to
 * 0000:01:00.0, the powernv preset's device with the DMA engine. TCE pages
 * of 64 KiB (PAGE_SHIFT 16, the default) need memory backed by pages at
 * least that large: the program maps hugetlb memory, and when the host has
 * no huge pages it says so and uses 4 KiB TCEs instead, unless PAGE_SHIFT
 * was given. Exits 0 only if every step gives exactly the expected result.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sys/mman.h>

#include "example-common.h"

#define DDW_BASE (1ull << 59)
#define WINDOW_SIZE (1ull << 30)
#define RAM_LEN (2ull << 20)

int main(int argc, char **argv)
{
	const char *bdf = argc > 1 ? argv[1] : "0000:01:00.0";
	int shift = argc > 2 ? atoi(argv[2]) : 16;
	CHECK(shift >= 12 && shift <= 30, "PAGE_SHIFT %d", shift);

	/* RAM for DMA: hugetlb when possible (2 MiB pages cover any TCE size up to 2 MiB) */
	uint8_t *ram = mmap(NULL, RAM_LEN, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
	if (ram == MAP_FAILED) {
		printf("note: no hugetlb memory (%s)", strerrorname_np(errno));
		if (argc <= 2 && shift > 12) {
			shift = 12;
			printf(": 64 KiB TCEs would need it, using 4 KiB TCEs\n");
		} else {
			printf("\n");
		}
		ram = mmap(NULL, RAM_LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
			   0);
		CHECK(ram != MAP_FAILED, "mmap: %s", strerrorname_np(errno));
	}
	memset(ram, 0, RAM_LEN);
	const uint64_t page = 1ull << shift;

	int container = open_or_die("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);
	int v = IOCTL_VAL_OK(container, VFIO_GET_API_VERSION, 0);
	CHECK(v == VFIO_API_VERSION, "API version %d", v);
	CHECK(IOCTL_VAL_OK(container, VFIO_CHECK_EXTENSION, VFIO_SPAPR_TCE_v2_IOMMU) == 1,
	      "no SPAPR_TCE_v2 IOMMU (is this the powernv host with the legacy container?)");
	ok("/dev/vfio/vfio: API version %d, SPAPR_TCE_v2 supported", v);

	char path[64];
	snprintf(path, sizeof(path), "/dev/vfio/%d", group_of(bdf));
	int group = open_or_die(path, O_RDWR | O_CLOEXEC);
	struct vfio_group_status status = { .argsz = sizeof(status) };
	IOCTL_OK(group, VFIO_GROUP_GET_STATUS, &status);
	CHECK(status.flags & VFIO_GROUP_FLAGS_VIABLE, "group not viable (0x%x)", status.flags);
	IOCTL_OK(group, VFIO_GROUP_SET_CONTAINER, &container);
	IOCTL_VAL_OK(container, VFIO_SET_IOMMU, VFIO_SPAPR_TCE_v2_IOMMU);
	ok("group %s in the container, SET_IOMMU(SPAPR_TCE_v2)", path);

	struct vfio_iommu_spapr_tce_info info = { .argsz = sizeof(info) };
	IOCTL_OK(container, VFIO_IOMMU_SPAPR_TCE_GET_INFO, &info);
	CHECK(info.flags & VFIO_IOMMU_SPAPR_INFO_DDW, "no DDW (flags 0x%x)", info.flags);
	CHECK(info.ddw.pgsizes & page, "TCE page 0x%llx not in pgsizes 0x%llx",
	      (unsigned long long)page, (unsigned long long)info.ddw.pgsizes);
	CHECK(info.ddw.max_dynamic_windows_supported >= 2, "only %u windows",
	      info.ddw.max_dynamic_windows_supported);
	CHECK(info.ddw.levels >= 1, "levels %u", info.ddw.levels);
	ok("SPAPR_TCE_GET_INFO: 32-bit window 0x%x+0x%x, pgsizes 0x%llx, %u windows, %u levels",
	   info.dma32_window_start, info.dma32_window_size, (unsigned long long)info.ddw.pgsizes,
	   info.ddw.max_dynamic_windows_supported, info.ddw.levels);

	/* v2: nothing maps before memory is registered */
	struct vfio_iommu_type1_dma_map map = {
		.argsz = sizeof(map),
		.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
		.vaddr = (uintptr_t)ram,
		.iova = DDW_BASE,
		.size = RAM_LEN,
	};
	IOCTL_FAILS(container, VFIO_IOMMU_MAP_DMA, &map, EPERM);

	struct vfio_iommu_spapr_register_memory reg = {
		.argsz = sizeof(reg),
		.vaddr = (uintptr_t)ram,
		.size = RAM_LEN,
	};
	IOCTL_OK(container, VFIO_IOMMU_SPAPR_REGISTER_MEMORY, &reg);
	ok("SPAPR_REGISTER_MEMORY: %p, 0x%llx bytes", (void *)ram, RAM_LEN);
	IOCTL_FAILS(container, VFIO_IOMMU_SPAPR_REGISTER_MEMORY, &reg, EBUSY);

	/* The DDW goes to slot 1 (at 1<<59) while slot 0 holds the default
	 * window; then the default window goes. */
	struct vfio_iommu_spapr_tce_create create = {
		.argsz = sizeof(create),
		.page_shift = (uint32_t)shift,
		.window_size = WINDOW_SIZE,
		.levels = 1,
	};
	IOCTL_OK(container, VFIO_IOMMU_SPAPR_TCE_CREATE, &create);
	CHECK(create.start_addr == DDW_BASE, "the DDW starts at 0x%llx, not 0x%llx",
	      (unsigned long long)create.start_addr, DDW_BASE);
	ok("SPAPR_TCE_CREATE: %llu KiB TCEs, 1 GiB window at 0x%llx",
	   (unsigned long long)page >> 10, (unsigned long long)create.start_addr);
	IOCTL_FAILS(container, VFIO_IOMMU_SPAPR_TCE_CREATE, &create, ENOSPC);

	struct vfio_iommu_spapr_tce_remove remove = {
		.argsz = sizeof(remove),
		.start_addr = info.dma32_window_start,
	};
	IOCTL_OK(container, VFIO_IOMMU_SPAPR_TCE_REMOVE, &remove);
	ok("SPAPR_TCE_REMOVE: the default window at 0x%x", info.dma32_window_start);
	IOCTL_FAILS(container, VFIO_IOMMU_SPAPR_TCE_REMOVE, &remove, EINVAL);

	IOCTL_OK(container, VFIO_IOMMU_MAP_DMA, &map);
	ok("MAP_DMA: %p -> bus 0x%llx, 0x%llx bytes", (void *)ram, DDW_BASE, RAM_LEN);
	struct vfio_iommu_type1_dma_map low = map;
	low.iova = info.dma32_window_start;
	IOCTL_FAILS(container, VFIO_IOMMU_MAP_DMA, &low, ENXIO);

	int devfd = ioctl(group, VFIO_GROUP_GET_DEVICE_FD, bdf);
	if (devfd < 0)
		die("VFIO_GROUP_GET_DEVICE_FD(%s): %s", bdf, strerrorname_np(errno));
	ok("VFIO_GROUP_GET_DEVICE_FD(%s) = %d", bdf, devfd);

	struct dma_dev dev = dma_dev_open(devfd);
	dma_check_both(&dev, DDW_BASE + 0x20000, ram + 0x20000, 0x1000, 0xc3);
	dma_expect_fault(&dev, (uint64_t)info.dma32_window_start + 0x1000, 1);
	dma_expect_fault(&dev, DDW_BASE + RAM_LEN, 0);

	struct vfio_iommu_type1_dma_unmap unmap = {
		.argsz = sizeof(unmap),
		.iova = DDW_BASE,
		.size = RAM_LEN,
	};
	IOCTL_OK(container, VFIO_IOMMU_UNMAP_DMA, &unmap);
	CHECK(unmap.size == RAM_LEN, "SPAPR UNMAP_DMA changed size to 0x%llx",
	      (unsigned long long)unmap.size);
	ok("UNMAP_DMA: bus 0x%llx, 0x%llx bytes", DDW_BASE, RAM_LEN);
	dma_expect_fault(&dev, DDW_BASE + 0x20000, 1);

	IOCTL_OK(container, VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY, &reg);
	IOCTL_FAILS(container, VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY, &reg, ENOENT);
	remove.start_addr = DDW_BASE;
	IOCTL_OK(container, VFIO_IOMMU_SPAPR_TCE_REMOVE, &remove);
	ok("unregistered the memory, removed the DDW");

	CHECK(close(devfd) == 0, "close(device): %s", strerrorname_np(errno));
	IOCTL_OK(group, VFIO_GROUP_UNSET_CONTAINER, NULL);
	CHECK(close(group) == 0 && close(container) == 0, "close: %s", strerrorname_np(errno));
	munmap(ram, RAM_LEN);
	ok("closed everything");
	printf("PASS: spapr-ddw\n");
	return 0;
}
