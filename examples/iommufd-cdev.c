/*
 * iommufd-cdev: the native iommufd flow through a VFIO device cdev, as
 * QEMU's and DPDK's iommufd backends run it, checked with real DMA.
 *
 *   uiommu run -- native/build/examples/iommufd-cdev [BDF]
 *
 * BDF defaults to 0000:00:02.0, the x86 preset's device with the DMA engine.
 * Exits 0 only if every step gives exactly the expected result.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "example-common.h"

#define IOVA 0x10000000ull
#define MAP_LEN (2ull << 20)
#define UNMAPPED_IOVA 0x40000000ull

/* /sys/bus/pci/devices/<bdf>/vfio-dev/vfioX: the cdev name and its "maj:min". */
static void find_cdev(const char *bdf, char *name, size_t len, unsigned *maj, unsigned *min)
{
	char path[1024];
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/vfio-dev", bdf);
	DIR *dir = opendir(path);
	if (!dir)
		die("opendir(%s): %s", path, strerrorname_np(errno));
	struct dirent *e;
	int found = 0;
	while ((e = readdir(dir))) {
		if (strncmp(e->d_name, "vfio", 4) != 0)
			continue;
		CHECK(!found, "more than one vfio-dev entry for %s", bdf);
		snprintf(name, len, "%s", e->d_name);
		found = 1;
	}
	closedir(dir);
	CHECK(found, "no vfioX entry under %s", path);

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/vfio-dev/%s/dev", bdf, name);
	FILE *f = fopen(path, "r");
	if (!f)
		die("fopen(%s): %s", path, strerrorname_np(errno));
	CHECK(fscanf(f, "%u:%u", maj, min) == 2, "%s does not hold maj:min", path);
	fclose(f);
	ok("%s is /dev/vfio/devices/%s (%u:%u)", bdf, name, *maj, *min);
}

int main(int argc, char **argv)
{
	const char *bdf = argc > 1 ? argv[1] : "0000:00:02.0";
	char name[256], path[512];
	unsigned maj, min;
	find_cdev(bdf, name, sizeof(name), &maj, &min);

	snprintf(path, sizeof(path), "/dev/vfio/devices/%s", name);
	int devfd = open_or_die(path, O_RDWR | O_CLOEXEC);
	struct stat st;
	CHECK(fstat(devfd, &st) == 0, "fstat(%s): %s", path, strerrorname_np(errno));
	CHECK(S_ISCHR(st.st_mode), "%s is not a character device (mode 0%o)", path, st.st_mode);
	CHECK(major(st.st_rdev) == maj && minor(st.st_rdev) == min, "%s is %u:%u, sysfs says %u:%u",
	      path, major(st.st_rdev), minor(st.st_rdev), maj, min);
	ok("opened %s: a character device %u:%u", path, maj, min);

	int iommufd = open_or_die("/dev/iommu", O_RDWR | O_CLOEXEC);
	CHECK(fstat(iommufd, &st) == 0 && S_ISCHR(st.st_mode), "/dev/iommu is no char device");
	ok("opened /dev/iommu");

	/* device ioctls other than BIND are refused before BIND */
	struct vfio_device_info info = { .argsz = sizeof(info) };
	IOCTL_FAILS(devfd, VFIO_DEVICE_GET_INFO, &info, EINVAL);

	struct vfio_device_bind_iommufd bind = { .argsz = sizeof(bind), .iommufd = iommufd };
	IOCTL_OK(devfd, VFIO_DEVICE_BIND_IOMMUFD, &bind);
	CHECK(bind.out_devid != 0, "BIND returned dev id 0");
	ok("VFIO_DEVICE_BIND_IOMMUFD: dev_id %u", bind.out_devid);
	IOCTL_FAILS(devfd, VFIO_DEVICE_BIND_IOMMUFD, &bind, EINVAL); /* already bound */

	struct iommu_ioas_alloc alloc = { .size = sizeof(alloc) };
	IOCTL_OK(iommufd, IOMMU_IOAS_ALLOC, &alloc);
	CHECK(alloc.out_ioas_id != 0, "IOAS id 0");
	ok("IOMMU_IOAS_ALLOC: ioas %u", alloc.out_ioas_id);

	struct iommu_hw_info hw = { .size = sizeof(hw), .dev_id = bind.out_devid };
	IOCTL_OK(iommufd, IOMMU_GET_HW_INFO, &hw);
	ok("IOMMU_GET_HW_INFO: type %u, capabilities 0x%llx, max_pasid_log2 %u", hw.out_data_type,
	   (unsigned long long)hw.out_capabilities, hw.out_max_pasid_log2);

	struct iommu_hwpt_alloc hwpt = {
		.size = sizeof(hwpt),
		.flags = (hw.out_capabilities & IOMMU_HW_CAP_DIRTY_TRACKING)
				 ? IOMMU_HWPT_ALLOC_DIRTY_TRACKING
				 : 0,
		.dev_id = bind.out_devid,
		.pt_id = alloc.out_ioas_id,
		.data_type = IOMMU_HWPT_DATA_NONE,
	};
	IOCTL_OK(iommufd, IOMMU_HWPT_ALLOC, &hwpt);
	CHECK(hwpt.out_hwpt_id != 0 && hwpt.out_hwpt_id != alloc.out_ioas_id, "HWPT id %u",
	      hwpt.out_hwpt_id);
	ok("IOMMU_HWPT_ALLOC: hwpt %u (flags 0x%x)", hwpt.out_hwpt_id, hwpt.flags);

	struct vfio_device_attach_iommufd_pt attach = {
		.argsz = offsetof(struct vfio_device_attach_iommufd_pt, pasid),
		.pt_id = hwpt.out_hwpt_id,
	};
	IOCTL_OK(devfd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &attach);
	CHECK(attach.pt_id == hwpt.out_hwpt_id, "ATTACH rewrote pt_id to %u", attach.pt_id);
	ok("VFIO_DEVICE_ATTACH_IOMMUFD_PT: hwpt %u", attach.pt_id);

	/* the IOAS's usable ranges must contain our IOVA */
	struct iommu_iova_range ranges[16];
	struct iommu_ioas_iova_ranges rq = {
		.size = sizeof(rq),
		.ioas_id = alloc.out_ioas_id,
		.num_iovas = 0,
	};
	IOCTL_FAILS(iommufd, IOMMU_IOAS_IOVA_RANGES, &rq, EMSGSIZE);
	CHECK(rq.num_iovas > 0 && rq.num_iovas <= 16, "num_iovas %u", rq.num_iovas);
	rq.allowed_iovas = (uintptr_t)ranges;
	IOCTL_OK(iommufd, IOMMU_IOAS_IOVA_RANGES, &rq);
	int inside = 0;
	for (unsigned i = 0; i < rq.num_iovas; i++)
		if (ranges[i].start <= IOVA && IOVA + MAP_LEN - 1 <= ranges[i].last)
			inside = 1;
	CHECK(inside, "IOVA 0x%llx is not in a usable range", IOVA);
	ok("IOMMU_IOAS_IOVA_RANGES: %u ranges, alignment 0x%llx", rq.num_iovas,
	   (unsigned long long)rq.out_iova_alignment);

	uint8_t *mem = mmap(NULL, MAP_LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
			    0);
	CHECK(mem != MAP_FAILED, "mmap: %s", strerrorname_np(errno));
	memset(mem, 0, MAP_LEN);
	struct iommu_ioas_map map = {
		.size = sizeof(map),
		.flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE |
			 IOMMU_IOAS_MAP_WRITEABLE,
		.ioas_id = alloc.out_ioas_id,
		.user_va = (uintptr_t)mem,
		.length = MAP_LEN,
		.iova = IOVA,
	};
	IOCTL_OK(iommufd, IOMMU_IOAS_MAP, &map);
	CHECK(map.iova == IOVA, "MAP moved the IOVA to 0x%llx", (unsigned long long)map.iova);
	ok("IOMMU_IOAS_MAP: %p -> iova 0x%llx, 0x%llx bytes", (void *)mem, IOVA, MAP_LEN);

	struct iommu_ioas_map overlap = map;
	overlap.iova = IOVA + 0x1000;
	overlap.length = 0x1000;
	IOCTL_FAILS(iommufd, IOMMU_IOAS_MAP, &overlap, EEXIST);

	struct dma_dev dev = dma_dev_open(devfd);
	dma_check_both(&dev, IOVA + 0x3000, mem + 0x3000, 0x1000, 0x5a);
	dma_expect_fault(&dev, UNMAPPED_IOVA, 1);
	dma_expect_fault(&dev, IOVA + MAP_LEN, 0);

	struct iommu_ioas_unmap unmap = {
		.size = sizeof(unmap),
		.ioas_id = alloc.out_ioas_id,
		.iova = IOVA,
		.length = MAP_LEN,
	};
	IOCTL_OK(iommufd, IOMMU_IOAS_UNMAP, &unmap);
	CHECK(unmap.length == MAP_LEN, "IOAS_UNMAP unmapped 0x%llx bytes, not 0x%llx",
	      (unsigned long long)unmap.length, MAP_LEN);
	ok("IOMMU_IOAS_UNMAP: 0x%llx bytes", (unsigned long long)unmap.length);
	dma_expect_fault(&dev, IOVA, 1);
	unmap.length = MAP_LEN;
	IOCTL_FAILS(iommufd, IOMMU_IOAS_UNMAP, &unmap, ENOENT);

	/* the HWPT is in use while the device is attached to it */
	struct iommu_destroy destroy = { .size = sizeof(destroy), .id = hwpt.out_hwpt_id };
	IOCTL_FAILS(iommufd, IOMMU_DESTROY, &destroy, EBUSY);
	struct vfio_device_detach_iommufd_pt detach = { .argsz = sizeof(detach) - 4 };
	IOCTL_OK(devfd, VFIO_DEVICE_DETACH_IOMMUFD_PT, &detach);
	IOCTL_OK(iommufd, IOMMU_DESTROY, &destroy);
	ok("detached; IOMMU_DESTROY hwpt %u", hwpt.out_hwpt_id);

	CHECK(close(devfd) == 0, "close(device): %s", strerrorname_np(errno));
	destroy.id = alloc.out_ioas_id;
	IOCTL_OK(iommufd, IOMMU_DESTROY, &destroy);
	CHECK(close(iommufd) == 0, "close(/dev/iommu): %s", strerrorname_np(errno));
	munmap(mem, MAP_LEN);
	ok("closed everything");
	printf("PASS: iommufd-cdev\n");
	return 0;
}
