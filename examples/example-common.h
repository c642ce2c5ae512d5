/*
 * example-common.h - helpers shared by the uiommu example programs: checked
 * ioctls that print what they do and exit(1) on any unexpected result, a PCI
 * device's IOMMU group from sysfs, and the DMA engine of an emulated device
 * (docs/dma-engine.md) driven through pread/pwrite on its VFIO device fd.
 */
#ifndef UIOMMU_EXAMPLE_COMMON_H
#define UIOMMU_EXAMPLE_COMMON_H

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "uiommu-uapi.h"

/* Print "FAIL: ..." and exit 1. */
__attribute__((format(printf, 1, 2), noreturn)) static inline void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("FAIL: ", stdout);
	vprintf(fmt, ap);
	fputc('\n', stdout);
	va_end(ap);
	fflush(stdout);
	exit(1);
}

/* Print one step that went as expected. */
__attribute__((format(printf, 1, 2))) static inline void ok(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("ok: ", stdout);
	vprintf(fmt, ap);
	fputc('\n', stdout);
	va_end(ap);
	fflush(stdout);
}

#define CHECK(cond, ...)                  \
	do {                              \
		if (!(cond))              \
			die(__VA_ARGS__); \
	} while (0)

/* open(2) that must succeed. */
static inline int open_or_die(const char *path, int flags)
{
	int fd = open(path, flags);
	if (fd < 0)
		die("open(%s): %s", path, strerrorname_np(errno));
	return fd;
}

/* The IOMMU group number of PCI device `bdf`, from its iommu_group link (QEMU: readlink + basename). */
static inline int group_of(const char *bdf)
{
	char path[512], target[512];
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/iommu_group", bdf);
	ssize_t n = readlink(path, target, sizeof(target) - 1);
	if (n < 0)
		die("readlink(%s): %s", path, strerrorname_np(errno));
	target[n] = 0;
	char *end;
	const char *base = basename(target);
	long id = strtol(base, &end, 10);
	CHECK(*base && !*end && id >= 0, "iommu_group link %s does not end in a number", target);
	ok("%s is in IOMMU group %ld", bdf, id);
	return (int)id;
}

/* ioctl that must succeed; returns its (non-negative) result. */
static inline int ioctl_ok(int fd, unsigned long req, void *arg, const char *name)
{
	int ret = ioctl(fd, req, arg);
	if (ret < 0)
		die("ioctl(%d, %s) = -1 %s (%s)", fd, name, strerrorname_np(errno),
		    strerror(errno));
	return ret;
}

/* ioctl with a by-value argument that must succeed. */
static inline int ioctl_val_ok(int fd, unsigned long req, unsigned long val, const char *name)
{
	int ret = ioctl(fd, req, val);
	if (ret < 0)
		die("ioctl(%d, %s, %lu) = -1 %s", fd, name, val, strerrorname_np(errno));
	return ret;
}

/* ioctl that must fail with `want`. */
static inline void ioctl_fails(int fd, unsigned long req, void *arg, const char *name, int want)
{
	int ret = ioctl(fd, req, arg);
	if (ret >= 0)
		die("ioctl(%d, %s) = %d, expected -1 %s", fd, name, ret, strerrorname_np(want));
	if (errno != want)
		die("ioctl(%d, %s) = -1 %s, expected %s", fd, name, strerrorname_np(errno),
		    strerrorname_np(want));
	ok("%s fails with %s as expected", name, strerrorname_np(want));
}

#define IOCTL_OK(fd, req, arg) ioctl_ok((fd), (req), (arg), #req)
#define IOCTL_VAL_OK(fd, req, val) ioctl_val_ok((fd), (req), (val), #req)
#define IOCTL_FAILS(fd, req, arg, err) ioctl_fails((fd), (req), (arg), #req, (err))

/* ------------------------------------------------------------------------
 * The DMA engine behind a VFIO device fd.
 */
struct dma_dev {
	int fd;
	uint64_t bar0;	 /* file offset of BAR0 */
	uint64_t config; /* file offset of config space */
};

static inline void dev_pwrite(const struct dma_dev *d, uint64_t off, const void *buf, size_t n)
{
	ssize_t r = pwrite(d->fd, buf, n, (off_t)off);
	if (r != (ssize_t)n)
		die("pwrite(device, %zu bytes at 0x%" PRIx64 ") = %zd %s", n, off, r,
		    r < 0 ? strerrorname_np(errno) : "(short)");
}

static inline void dev_pread(const struct dma_dev *d, uint64_t off, void *buf, size_t n)
{
	ssize_t r = pread(d->fd, buf, n, (off_t)off);
	if (r != (ssize_t)n)
		die("pread(device, %zu bytes at 0x%" PRIx64 ") = %zd %s", n, off, r,
		    r < 0 ? strerrorname_np(errno) : "(short)");
}

static inline uint32_t reg32(const struct dma_dev *d, unsigned reg)
{
	uint32_t v;
	dev_pread(d, d->bar0 + reg, &v, sizeof(v));
	return v;
}

static inline uint64_t reg64(const struct dma_dev *d, unsigned reg)
{
	uint64_t v;
	dev_pread(d, d->bar0 + reg, &v, sizeof(v));
	return v;
}

static inline void set_reg64(const struct dma_dev *d, unsigned reg, uint64_t v)
{
	dev_pwrite(d, d->bar0 + reg, &v, sizeof(v));
}

/*
 * VFIO_DEVICE_GET_INFO and GET_REGION_INFO (config space, BAR0), Memory
 * Space on in the Command register, then the engine's ID register.
 */
static inline struct dma_dev dma_dev_open(int fd)
{
	struct dma_dev d = { .fd = fd };
	struct vfio_device_info info = { .argsz = sizeof(info) };
	IOCTL_OK(fd, VFIO_DEVICE_GET_INFO, &info);
	CHECK(info.flags & VFIO_DEVICE_FLAGS_PCI, "device is not PCI (flags 0x%x)", info.flags);
	CHECK(info.num_regions >= VFIO_PCI_NUM_REGIONS, "only %u regions", info.num_regions);
	ok("VFIO_DEVICE_GET_INFO: flags 0x%x, %u regions, %u irqs", info.flags, info.num_regions,
	   info.num_irqs);

	struct vfio_region_info cfg = { .argsz = sizeof(cfg),
					.index = VFIO_PCI_CONFIG_REGION_INDEX };
	IOCTL_OK(fd, VFIO_DEVICE_GET_REGION_INFO, &cfg);
	CHECK(cfg.size >= 256 && (cfg.flags & VFIO_REGION_INFO_FLAG_WRITE),
	      "config region: size 0x%" PRIx64 " flags 0x%x", cfg.size, cfg.flags);
	d.config = cfg.offset;

	struct vfio_region_info bar = { .argsz = sizeof(bar), .index = VFIO_PCI_BAR0_REGION_INDEX };
	IOCTL_OK(fd, VFIO_DEVICE_GET_REGION_INFO, &bar);
	CHECK(bar.size >= DMA_BUF_OFFSET + DMA_BUF_SIZE, "BAR0 is only 0x%" PRIx64 " bytes",
	      bar.size);
	CHECK((bar.flags & (VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE)) ==
		      (VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE),
	      "BAR0 flags 0x%x", bar.flags);
	d.bar0 = bar.offset;
	ok("GET_REGION_INFO: config at 0x%" PRIx64 ", BAR0 0x%" PRIx64 " bytes at 0x%" PRIx64,
	   cfg.offset, bar.size, bar.offset);

	uint16_t cmd;
	dev_pread(&d, d.config + UIOMMU_PCI_COMMAND, &cmd, sizeof(cmd));
	cmd |= UIOMMU_PCI_COMMAND_MEMORY;
	dev_pwrite(&d, d.config + UIOMMU_PCI_COMMAND, &cmd, sizeof(cmd));

	uint32_t id = reg32(&d, DMA_REG_ID);
	CHECK(id == DMA_ENGINE_ID, "BAR0 ID register reads 0x%08x, not the DMA engine's 0x%08x", id,
	      DMA_ENGINE_ID);
	uint32_t probe = 0x12345678;
	dev_pwrite(&d, d.bar0 + DMA_REG_LIVENESS, &probe, sizeof(probe));
	CHECK(reg32(&d, DMA_REG_LIVENESS) == ~probe, "liveness register does not invert");
	CHECK(reg32(&d, DMA_REG_BUF_OFFSET) == DMA_BUF_OFFSET, "buffer offset");
	ok("memory decode on; DMA engine found (ID 0x%08x)", id);
	return d;
}

/* One DMA command; returns STATUS. */
static inline uint32_t dma_run(const struct dma_dev *d, uint64_t src, uint64_t dst, uint64_t count,
			       int to_memory)
{
	set_reg64(d, DMA_REG_SRC, src);
	set_reg64(d, DMA_REG_DST, dst);
	set_reg64(d, DMA_REG_COUNT, count);
	set_reg64(d, DMA_REG_CMD, DMA_CMD_START | (to_memory ? DMA_CMD_TO_MEMORY : 0));
	CHECK((reg64(d, DMA_REG_CMD) & DMA_CMD_START) == 0, "START still set after the command");
	return reg32(d, DMA_REG_STATUS);
}

/*
 * Both directions through `iova`, which must map `mem` (at least 2 * `len`
 * bytes, len <= DMA_BUF_SIZE) read/write: buffer -> memory, then memory ->
 * buffer, checking the bytes each time.
 */
static inline void dma_check_both(const struct dma_dev *d, uint64_t iova, uint8_t *mem, size_t len,
				  uint8_t seed)
{
	uint8_t pattern[DMA_BUF_SIZE], back[DMA_BUF_SIZE];
	for (size_t i = 0; i < len; i++)
		pattern[i] = (uint8_t)(seed + i * 7);
	memset(mem, 0, 2 * len);
	dev_pwrite(d, d->bar0 + DMA_BUF_OFFSET, pattern, len);
	uint32_t st = dma_run(d, DMA_BUF_OFFSET, iova, len, 1);
	CHECK(st == DMA_STATUS_DONE, "device->memory DMA to iova 0x%" PRIx64 ": status 0x%x", iova,
	      st);
	CHECK(memcmp(mem, pattern, len) == 0, "device->memory DMA: memory does not hold the bytes");
	ok("DMA device->memory: %zu bytes landed at iova 0x%" PRIx64, len, iova);

	for (size_t i = 0; i < len; i++)
		mem[len + i] = (uint8_t)~pattern[i];
	st = dma_run(d, iova + len, DMA_BUF_OFFSET, len, 0);
	CHECK(st == DMA_STATUS_DONE, "memory->device DMA from iova 0x%" PRIx64 ": status 0x%x",
	      iova + len, st);
	dev_pread(d, d->bar0 + DMA_BUF_OFFSET, back, len);
	CHECK(memcmp(back, mem + len, len) == 0,
	      "memory->device DMA: buffer does not hold the bytes");
	ok("DMA memory->device: %zu bytes read from iova 0x%" PRIx64, len, iova + len);
}

/* A device->memory DMA at `iova` must be refused by the IOMMU. */
static inline void dma_expect_fault(const struct dma_dev *d, uint64_t iova, int to_memory)
{
	uint32_t st = to_memory ? dma_run(d, DMA_BUF_OFFSET, iova, 64, 1)
				: dma_run(d, iova, DMA_BUF_OFFSET, 64, 0);
	CHECK(st == (DMA_STATUS_DONE | DMA_STATUS_FAULT),
	      "DMA at iova 0x%" PRIx64 " should fault: status 0x%x", iova, st);
	uint64_t at = reg64(d, DMA_REG_FAULT_IOVA);
	CHECK(at == iova, "FAULT_IOVA 0x%" PRIx64 ", expected 0x%" PRIx64, at, iova);
	ok("DMA %s iova 0x%" PRIx64 " refused by the IOMMU (status FAULT)",
	   to_memory ? "to" : "from", iova);
}

#endif /* UIOMMU_EXAMPLE_COMMON_H */
