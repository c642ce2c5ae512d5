/*
 * type1-container: the legacy VFIO container flow (QEMU's legacy backend,
 * DPDK group mode, rust-vmm), checked with real DMA.
 *
 *   uiommu run -- native/build/examples/type1-container [BDF]
 *
 * BDF defaults to 0000:00:02.0, the x86 preset's device with the DMA engine
 * (alone in its group). Works with either container personality (type1 or
 * iommufd's compat container). Exits 0 only if every step gives exactly the
 * expected result.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sys/mman.h>

#include "example-common.h"

#define IOVA 0x10000000ull
#define MAP_LEN (2ull << 20)

/* VFIO_IOMMU_GET_INFO as QEMU does it: sizeof first, then the argsz asked for. */
static struct vfio_iommu_type1_info *get_info(int container)
{
	struct vfio_iommu_type1_info *info = calloc(1, sizeof(*info));
	CHECK(info, "calloc");
	info->argsz = sizeof(*info);
	IOCTL_OK(container, VFIO_IOMMU_GET_INFO, info);
	CHECK(info->argsz >= sizeof(*info), "GET_INFO shrank argsz to %u", info->argsz);
	if (info->argsz > sizeof(*info)) {
		uint32_t want = info->argsz;
		ok("VFIO_IOMMU_GET_INFO asks for argsz %u (caps do not fit in %zu)", want,
		   sizeof(*info));
		free(info);
		info = calloc(1, want);
		CHECK(info, "calloc");
		info->argsz = want;
		IOCTL_OK(container, VFIO_IOMMU_GET_INFO, info);
		CHECK(info->argsz == want, "second GET_INFO changed argsz to %u", info->argsz);
	}
	return info;
}

int main(int argc, char **argv)
{
	const char *bdf = argc > 1 ? argv[1] : "0000:00:02.0";

	int container = open_or_die("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);
	int v = IOCTL_VAL_OK(container, VFIO_GET_API_VERSION, 0);
	CHECK(v == VFIO_API_VERSION, "API version %d", v);
	CHECK(IOCTL_VAL_OK(container, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU) == 1,
	      "no TYPE1v2 IOMMU");
	CHECK(IOCTL_VAL_OK(container, VFIO_CHECK_EXTENSION, 0x7fff) == 0,
	      "an unknown extension is reported present");
	ok("/dev/vfio/vfio: API version %d, TYPE1v2 supported", v);

	int gid = group_of(bdf);
	char path[64];
	snprintf(path, sizeof(path), "/dev/vfio/%d", gid);
	int group = open_or_die(path, O_RDWR | O_CLOEXEC);
	struct vfio_group_status status = { .argsz = sizeof(status) };
	IOCTL_OK(group, VFIO_GROUP_GET_STATUS, &status);
	CHECK(status.flags == VFIO_GROUP_FLAGS_VIABLE, "fresh group flags 0x%x", status.flags);
	ok("VFIO_GROUP_GET_STATUS: viable, no container");

	/* no container yet: no device fd */
	IOCTL_FAILS(group, VFIO_GROUP_GET_DEVICE_FD, (void *)bdf, EINVAL);

	IOCTL_OK(group, VFIO_GROUP_SET_CONTAINER, &container);
	status.flags = 0;
	IOCTL_OK(group, VFIO_GROUP_GET_STATUS, &status);
	CHECK(status.flags == (VFIO_GROUP_FLAGS_VIABLE | VFIO_GROUP_FLAGS_CONTAINER_SET),
	      "flags 0x%x after SET_CONTAINER", status.flags);
	ok("VFIO_GROUP_SET_CONTAINER");

	IOCTL_VAL_OK(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU);
	ok("VFIO_SET_IOMMU(TYPE1v2)");

	struct vfio_iommu_type1_info *info = get_info(container);
	CHECK(info->flags & VFIO_IOMMU_INFO_PGSIZES, "no PGSIZES flag (0x%x)", info->flags);
	CHECK(info->iova_pgsizes & 0x1000, "4 KiB pages missing: 0x%llx",
	      (unsigned long long)info->iova_pgsizes);
	CHECK(info->flags & VFIO_IOMMU_INFO_CAPS, "no capability chain");
	int iova_ok = 0, found_range = 0;
	for (uint32_t off = info->cap_offset; off;) {
		CHECK(off >= sizeof(*info) &&
			      off + sizeof(struct vfio_info_cap_header) <= info->argsz,
		      "capability offset %u outside the %u-byte buffer", off, info->argsz);
		struct vfio_info_cap_header *h = (void *)((char *)info + off);
		if (h->id == VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE) {
			struct vfio_iommu_type1_info_cap_iova_range *r = (void *)h;
			found_range = 1;
			for (uint32_t i = 0; i < r->nr_iovas; i++) {
				struct vfio_iova_range *x = &r->iova_ranges[i];
				if (x->start <= IOVA && IOVA + MAP_LEN - 1 <= x->end)
					iova_ok = 1;
			}
			ok("  cap IOVA_RANGE v%u: %u ranges", h->version, r->nr_iovas);
		} else if (h->id == VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL) {
			ok("  cap DMA_AVAIL v%u: %u mappings available", h->version,
			   ((struct vfio_iommu_type1_info_dma_avail *)h)->avail);
		} else {
			ok("  cap id %u v%u", h->id, h->version);
		}
		off = h->next;
	}
	CHECK(found_range, "no IOVA_RANGE capability");
	CHECK(iova_ok, "IOVA 0x%llx is not in a valid range", IOVA);
	ok("VFIO_IOMMU_GET_INFO: pgsizes 0x%llx", (unsigned long long)info->iova_pgsizes);
	free(info);

	uint8_t *mem = mmap(NULL, MAP_LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
			    0);
	CHECK(mem != MAP_FAILED, "mmap: %s", strerrorname_np(errno));
	memset(mem, 0, MAP_LEN);
	struct vfio_iommu_type1_dma_map map = {
		.argsz = sizeof(map),
		.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
		.vaddr = (uintptr_t)mem,
		.iova = IOVA,
		.size = MAP_LEN,
	};
	IOCTL_OK(container, VFIO_IOMMU_MAP_DMA, &map);
	ok("VFIO_IOMMU_MAP_DMA: %p -> iova 0x%llx, 0x%llx bytes", (void *)mem, IOVA, MAP_LEN);
	struct vfio_iommu_type1_dma_map again = map;
	again.iova = IOVA + 0x1000;
	again.size = 0x1000;
	IOCTL_FAILS(container, VFIO_IOMMU_MAP_DMA, &again, EEXIST);

	IOCTL_FAILS(group, VFIO_GROUP_GET_DEVICE_FD, "0000:ff:1f.7", ENODEV);
	int devfd = ioctl(group, VFIO_GROUP_GET_DEVICE_FD, bdf);
	if (devfd < 0)
		die("VFIO_GROUP_GET_DEVICE_FD(%s): %s", bdf, strerrorname_np(errno));
	ok("VFIO_GROUP_GET_DEVICE_FD(%s) = %d", bdf, devfd);

	struct dma_dev dev = dma_dev_open(devfd);
	dma_check_both(&dev, IOVA + 0x10000, mem + 0x10000, 0x800, 0x33);
	dma_expect_fault(&dev, IOVA + MAP_LEN, 1);

	/* an unmap may not split a mapping: vfio_iommu_type1 says EINVAL, iommufd's
	 * compat container ENOENT */
	struct vfio_iommu_type1_dma_unmap unmap = {
		.argsz = sizeof(unmap),
		.iova = IOVA,
		.size = 0x1000,
	};
	int r = ioctl(container, VFIO_IOMMU_UNMAP_DMA, &unmap);
	CHECK(r == -1 && (errno == EINVAL || errno == ENOENT),
	      "UNMAP_DMA splitting a mapping = %d %s, expected -1 EINVAL or ENOENT", r,
	      r < 0 ? strerrorname_np(errno) : "");
	ok("VFIO_IOMMU_UNMAP_DMA splitting a mapping fails with %s (%s)", strerrorname_np(errno),
	   errno == EINVAL ? "vfio_iommu_type1" : "iommufd compat");
	unmap.size = MAP_LEN;
	IOCTL_OK(container, VFIO_IOMMU_UNMAP_DMA, &unmap);
	CHECK(unmap.size == MAP_LEN, "UNMAP_DMA unmapped 0x%llx bytes, not 0x%llx",
	      (unsigned long long)unmap.size, MAP_LEN);
	ok("VFIO_IOMMU_UNMAP_DMA: 0x%llx bytes", (unsigned long long)unmap.size);
	dma_expect_fault(&dev, IOVA, 1);

	CHECK(close(devfd) == 0, "close(device): %s", strerrorname_np(errno));
	IOCTL_OK(group, VFIO_GROUP_UNSET_CONTAINER, NULL);
	CHECK(close(group) == 0 && close(container) == 0, "close: %s", strerrorname_np(errno));
	munmap(mem, MAP_LEN);
	ok("closed everything");
	printf("PASS: type1-container\n");
	return 0;
}
