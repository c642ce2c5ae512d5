/*
 * VFIO PCI hot reset, asked of each function named on the command line:
 * VFIO_DEVICE_GET_PCI_HOT_RESET_INFO and VFIO_DEVICE_PCI_HOT_RESET with
 * good and bad headers and arrays, through the legacy type1 container and
 * through the device cdev bound to /dev/iommu. Prints every answer (return
 * value, errno, out-fields, entries) so the output can be compared with a
 * real kernel's (hot-reset.test.ts). Needs no DMA.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "uiommu-uapi.h"

struct info {
	uint32_t argsz, flags, count;
	struct {
		uint32_t id;
		uint16_t segment;
		uint8_t bus, devfn;
	} dev[8];
};

struct reset {
	uint32_t argsz, flags, count;
	int32_t fds[9];
};

static const char *err(int ret)
{
	return ret < 0 ? strerrorname_np(errno) : "-";
}

static void info(const char *what, int dev, uint32_t argsz)
{
	struct info i;
	memset(&i, 0xa5, sizeof(i));
	i.argsz = argsz;
	int ret = ioctl(dev, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, &i);
	printf("  %s argsz=%u: ret=%d %s argsz=%u flags=%#x count=%#x", what, argsz, ret, err(ret),
	       i.argsz, i.flags, i.count);
	for (uint32_t n = 0; ret == 0 && n < i.count && n < 8; n++)
		printf(" [%#x %04x:%02x:%02x.%u]", i.dev[n].id, i.dev[n].segment, i.dev[n].bus,
		       i.dev[n].devfn >> 3, i.dev[n].devfn & 7);
	printf("\n");
}

static void reset(const char *what, int dev, uint32_t argsz, uint32_t flags, uint32_t count,
		  const int32_t *fds, unsigned nfds)
{
	struct reset r = { .argsz = argsz, .flags = flags, .count = count };
	memcpy(r.fds, fds, nfds * sizeof(*fds));
	int ret = ioctl(dev, VFIO_DEVICE_PCI_HOT_RESET, &r);
	printf("  %s: ret=%d %s\n", what, ret, err(ret));
}

static int sysfs_group(const char *bdf)
{
	char path[256], link[256];
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/iommu_group", bdf);
	ssize_t n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		return -1;
	link[n] = 0;
	return atoi(strrchr(link, '/') + 1);
}

static int cdev_open(const char *bdf)
{
	char path[256];
	for (int x = 0; x < 64; x++) {
		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/vfio-dev/vfio%d", bdf, x);
		if (access(path, F_OK) == 0) {
			snprintf(path, sizeof(path), "/dev/vfio/devices/vfio%d", x);
			return open(path, O_RDWR);
		}
	}
	return -1;
}

static void probe(const char *bdf)
{
	int gid = sysfs_group(bdf);
	printf("%s group %d\n", bdf, gid);
	char path[64];
	snprintf(path, sizeof(path), "/dev/vfio/%d", gid);
	int container = open("/dev/vfio/vfio", O_RDWR);
	int group = open(path, O_RDWR);
	if (container < 0 || group < 0 || ioctl(group, VFIO_GROUP_SET_CONTAINER, &container) ||
	    ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU)) {
		printf("  group setup failed: %s\n", strerrorname_np(errno));
		return;
	}
	int dev = ioctl(group, VFIO_GROUP_GET_DEVICE_FD, bdf);
	if (dev < 0) {
		printf("  GET_DEVICE_FD: %s\n", strerrorname_np(errno));
		return;
	}
	info("info", dev, 11);
	info("info", dev, 12);
	info("info", dev, sizeof(struct info));
	int32_t nine[9] = { group, group, group, group, group, group, group, group, group };
	int32_t bad = -1;
	reset("reset flags=1", dev, 16, 1, 1, &group, 1);
	reset("reset argsz=11", dev, 11, 0, 1, &group, 1);
	reset("reset count=0", dev, 12, 0, 0, NULL, 0);
	reset("reset count=9", dev, 48, 0, 9, nine, 9);
	reset("reset fd -1", dev, 16, 0, 1, &bad, 1);
	reset("reset container fd", dev, 16, 0, 1, &container, 1);
	reset("reset own group", dev, 16, 0, 1, &group, 1);
	close(dev);
	close(group);
	close(container);

	int iommufd = open("/dev/iommu", O_RDWR);
	int cdev = cdev_open(bdf);
	struct vfio_device_bind_iommufd bind = { .argsz = sizeof(bind), .iommufd = iommufd };
	if (iommufd < 0 || cdev < 0 || ioctl(cdev, VFIO_DEVICE_BIND_IOMMUFD, &bind)) {
		printf("  cdev setup failed: %s\n", strerrorname_np(errno));
		return;
	}
	printf("  cdev devid %u\n", bind.out_devid);
	info("cdev info", cdev, sizeof(struct info));
	reset("cdev reset count=1", cdev, 16, 0, 1, &iommufd, 1);
	reset("cdev reset count=0", cdev, 12, 0, 0, NULL, 0);
	close(cdev);
	close(iommufd);
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (int i = 1; i < argc; i++)
		probe(argv[i]);
	return 0;
}
