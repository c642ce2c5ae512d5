/*
 * Seeded random syscall programs over /dev/iommu (with the selftest mock's
 * IOMMU_TEST_CMD), /dev/vfio/vfio containers, VFIO groups and device cdevs,
 * for differential testing: the same seed gives the same calls on a real
 * kernel and under `uiommu run`, and each call prints one line
 *
 *   <seed>.<n> <name> ret=<r|Fk> errno=<name|0> out=<fnv-1a 64 of the argument after the call>
 *
 * Arguments are valid structs, valid structs with a mutated field, or
 * garbage. File descriptors a call returns are printed as Fk (the k-th fd
 * the program got) so that the numbering of the two worlds may differ.
 *
 *   usage: syscalls SEED COUNT CALLS [SKIP...]
 *   runs seeds SEED..SEED+COUNT-1 with CALLS calls each; SKIP is a list of
 *   "seed.n" calls to leave out (the shrinker's), their random draws still made.
 *   DIFF_FULL=1 prints the argument bytes after each call as well.
 *
 * Build: gcc -static -O2 -I <uapi include> -I <tree>/drivers/iommu/iommufd syscalls.c
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <linux/iommufd.h>
#include <linux/vfio.h>

#include "iommufd_test.h"

#define ARENA ((uint8_t *)0x200000000ul)
#define ARENA_SIZE (16ul << 20)
#define ARG ((uint8_t *)0x300000000ul)
#define ARG_SIZE 0x2000ul
#define UNMAPPED 0x400000000ul
#define PAGE 4096ul

static uint64_t rng;
static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}
static uint64_t below(uint64_t n) { return n ? next() % n : 0; }
static int chance(int pct) { return (int)below(100) < pct; }

/* The fds this seed opened, in order; index k prints as Fk. */
static int fds[64];
static int nfds;
static int iommufd_fd = -1, container_fd = -1, group_fd = -1, cdev_fd = -1;
static const char *group_path, *cdev_path;

static int fd_index(int fd)
{
	for (int i = 0; i < nfds; i++)
		if (fds[i] == fd)
			return i;
	return -1;
}
static int track(int fd)
{
	if (fd >= 0 && nfds < 64)
		fds[nfds++] = fd;
	return fd;
}
/* Any fd of ours, a closed number, or -1. */
static int pick_fd(void)
{
	if (nfds && chance(85))
		return fds[below(nfds)];
	return chance(50) ? -1 : 1000;
}

static uint32_t pick_id(void)
{
	static const uint32_t odd[] = { 0, 0xffffffff, 0x7fffffff, 1000 };
	return chance(90) ? 1 + below(12) : odd[below(4)];
}
static uint64_t pick_len(void)
{
	static const uint64_t odd[] = { 0, 1, PAGE - 1, PAGE + 1, 1ul << 21, 1ul << 31, ~0ul, ~0ul - PAGE + 1, 1ul << 63 };
	return chance(80) ? PAGE * (1 + below(chance(70) ? 16 : 1024)) : odd[below(9)];
}
static uint64_t pick_iova(void)
{
	static const uint64_t odd[] = { 0, 1, ~0ul, ~0ul - PAGE + 1, 1ul << 63, (uint64_t)MOCK_APERTURE_LAST + 1, (1ul << 39) };
	if (chance(75))
		return MOCK_APERTURE_START + PAGE * below(chance(70) ? 64 : 65536);
	return odd[below(7)];
}
static uint64_t pick_va(void)
{
	static const uint64_t odd[] = { 0, UNMAPPED, ~0ul - PAGE + 1, 1 };
	if (chance(85))
		return (uint64_t)ARENA + PAGE * below(ARENA_SIZE / PAGE / 2);
	return odd[below(4)];
}
static uint32_t pick_flags(uint32_t valid)
{
	if (chance(80))
		return valid & (uint32_t)next();
	return (uint32_t)next() & (chance(50) ? 0xff : 0xffffffff);
}

/* One call kind: its name, request, struct size and how to fill it. */
struct op {
	const char *name;
	unsigned long req;
	unsigned int size;
	int *fd;
	void (*fill)(uint8_t *arg);
	/* offset of an fd the call writes into the struct (0: none) */
	unsigned int out_fd_at;
};

#define F(type, field) (((type *)a)->field)

static void f_ioas_alloc(uint8_t *a) { (void)a; }
static void f_destroy(uint8_t *a) { F(struct iommu_destroy, id) = pick_id(); }
static void f_ioas_map(uint8_t *a)
{
	F(struct iommu_ioas_map, flags) = pick_flags(7);
	F(struct iommu_ioas_map, ioas_id) = pick_id();
	F(struct iommu_ioas_map, user_va) = pick_va();
	F(struct iommu_ioas_map, length) = pick_len();
	F(struct iommu_ioas_map, iova) = pick_iova();
}
static void f_ioas_unmap(uint8_t *a)
{
	F(struct iommu_ioas_unmap, ioas_id) = pick_id();
	F(struct iommu_ioas_unmap, iova) = chance(10) ? 0 : pick_iova();
	F(struct iommu_ioas_unmap, length) = chance(10) ? ~0ul : pick_len();
}
static void f_ioas_copy(uint8_t *a)
{
	F(struct iommu_ioas_copy, flags) = pick_flags(7);
	F(struct iommu_ioas_copy, dst_ioas_id) = pick_id();
	F(struct iommu_ioas_copy, src_ioas_id) = pick_id();
	F(struct iommu_ioas_copy, length) = pick_len();
	F(struct iommu_ioas_copy, dst_iova) = pick_iova();
	F(struct iommu_ioas_copy, src_iova) = pick_iova();
}
static void f_iova_ranges(uint8_t *a)
{
	F(struct iommu_ioas_iova_ranges, ioas_id) = pick_id();
	F(struct iommu_ioas_iova_ranges, num_iovas) = below(6);
	F(struct iommu_ioas_iova_ranges, allowed_iovas) = chance(90) ? (uint64_t)ARG + 0x1000 : UNMAPPED;
}
static void f_allow_iovas(uint8_t *a)
{
	struct iommu_iova_range *r = (void *)(ARG + 0x1000);
	uint32_t n = below(4);
	for (uint32_t i = 0; i < n; i++) {
		r[i].start = pick_iova();
		r[i].last = chance(80) ? r[i].start + pick_len() - 1 : pick_iova();
	}
	F(struct iommu_ioas_allow_iovas, ioas_id) = pick_id();
	F(struct iommu_ioas_allow_iovas, num_iovas) = n;
	F(struct iommu_ioas_allow_iovas, allowed_iovas) = (uint64_t)r;
}
static void f_option(uint8_t *a)
{
	F(struct iommu_option, option_id) = below(3);
	F(struct iommu_option, op) = below(3);
	F(struct iommu_option, object_id) = chance(50) ? 0 : pick_id();
	F(struct iommu_option, val64) = below(3);
}
static void f_hwpt_alloc(uint8_t *a)
{
	F(struct iommu_hwpt_alloc, flags) = pick_flags(0xf);
	F(struct iommu_hwpt_alloc, dev_id) = pick_id();
	F(struct iommu_hwpt_alloc, pt_id) = pick_id();
	if (chance(30)) {
		struct iommu_hwpt_selftest *d = (void *)(ARG + 0x1000);
		d->iotlb = IOMMU_TEST_IOTLB_DEFAULT;
		F(struct iommu_hwpt_alloc, data_type) = IOMMU_HWPT_DATA_SELFTEST;
		F(struct iommu_hwpt_alloc, data_len) = chance(80) ? sizeof(*d) : below(16);
		F(struct iommu_hwpt_alloc, data_uptr) = (uint64_t)d;
	}
}
static void f_hw_info(uint8_t *a)
{
	F(struct iommu_hw_info, dev_id) = pick_id();
	F(struct iommu_hw_info, data_len) = below(24);
	F(struct iommu_hw_info, data_uptr) = (uint64_t)ARG + 0x1000;
}
static void f_set_dirty(uint8_t *a)
{
	F(struct iommu_hwpt_set_dirty_tracking, flags) = pick_flags(1);
	F(struct iommu_hwpt_set_dirty_tracking, hwpt_id) = pick_id();
}
static void f_get_dirty(uint8_t *a)
{
	F(struct iommu_hwpt_get_dirty_bitmap, hwpt_id) = pick_id();
	F(struct iommu_hwpt_get_dirty_bitmap, flags) = pick_flags(1);
	F(struct iommu_hwpt_get_dirty_bitmap, iova) = pick_iova();
	F(struct iommu_hwpt_get_dirty_bitmap, length) = pick_len() & ((1ul << 24) - 1);
	F(struct iommu_hwpt_get_dirty_bitmap, page_size) = chance(80) ? PAGE : pick_len();
	F(struct iommu_hwpt_get_dirty_bitmap, data) = (uint64_t)ARG + 0x1000;
}
static void f_vfio_ioas(uint8_t *a)
{
	F(struct iommu_vfio_ioas, ioas_id) = pick_id();
	F(struct iommu_vfio_ioas, op) = below(4);
}
static void f_test(uint8_t *a)
{
	struct iommu_test_cmd *c = (void *)a;
	static const uint32_t ops[] = { IOMMU_TEST_OP_ADD_RESERVED, IOMMU_TEST_OP_MOCK_DOMAIN, IOMMU_TEST_OP_MOCK_DOMAIN,
					IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS, IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE,
					IOMMU_TEST_OP_MD_CHECK_MAP, IOMMU_TEST_OP_MD_CHECK_REFS, IOMMU_TEST_OP_CREATE_ACCESS,
					IOMMU_TEST_OP_ACCESS_PAGES, IOMMU_TEST_OP_DESTROY_ACCESS_PAGES,
					IOMMU_TEST_OP_ACCESS_RW, IOMMU_TEST_OP_ACCESS_REPLACE_IOAS };
	c->op = chance(95) ? ops[below(12)] : below(40);
	c->id = pick_id();
	switch (c->op) {
	case IOMMU_TEST_OP_ADD_RESERVED:
		c->add_reserved.start = pick_iova();
		c->add_reserved.length = pick_len();
		break;
	case IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS:
		c->mock_domain_flags.dev_flags = pick_flags(MOCK_FLAGS_DEVICE_NO_DIRTY);
		break;
	case IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE:
		c->mock_domain_replace.pt_id = pick_id();
		break;
	case IOMMU_TEST_OP_MD_CHECK_MAP:
		c->check_map.iova = pick_iova();
		c->check_map.length = pick_len() & ((1ul << 22) - 1);
		c->check_map.uptr = pick_va();
		break;
	case IOMMU_TEST_OP_MD_CHECK_REFS:
		c->check_refs.length = pick_len() & ((1ul << 22) - 1);
		c->check_refs.uptr = pick_va();
		c->check_refs.refs = below(3);
		break;
	case IOMMU_TEST_OP_CREATE_ACCESS:
		c->id = chance(80) ? pick_id() : pick_fd();
		c->create_access.flags = pick_flags(MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES);
		break;
	case IOMMU_TEST_OP_ACCESS_PAGES:
		c->id = pick_fd();
		c->access_pages.flags = pick_flags(MOCK_FLAGS_ACCESS_WRITE);
		c->access_pages.iova = pick_iova();
		c->access_pages.length = pick_len() & ((1ul << 22) - 1);
		c->access_pages.uptr = (uint64_t)ARG + 0x1000;
		break;
	case IOMMU_TEST_OP_DESTROY_ACCESS_PAGES:
		c->id = pick_fd();
		c->destroy_access_pages.access_pages_id = below(4);
		break;
	case IOMMU_TEST_OP_ACCESS_RW:
		c->id = pick_fd();
		c->access_rw.iova = pick_iova() + below(64);
		c->access_rw.length = below(2 * PAGE);
		c->access_rw.uptr = (uint64_t)ARG + 0x1000;
		c->access_rw.flags = pick_flags(MOCK_ACCESS_RW_WRITE | MOCK_ACCESS_RW_SLOW_PATH);
		break;
	case IOMMU_TEST_OP_ACCESS_REPLACE_IOAS:
		c->id = pick_fd();
		c->access_replace_ioas.ioas_id = pick_id();
		break;
	}
}
static void f_ext(uint8_t *a) { (void)a; }
static void f_map_dma(uint8_t *a)
{
	F(struct vfio_iommu_type1_dma_map, flags) = pick_flags(3);
	F(struct vfio_iommu_type1_dma_map, vaddr) = pick_va();
	F(struct vfio_iommu_type1_dma_map, iova) = pick_iova();
	F(struct vfio_iommu_type1_dma_map, size) = pick_len();
}
static void f_unmap_dma(uint8_t *a)
{
	F(struct vfio_iommu_type1_dma_unmap, flags) = pick_flags(VFIO_DMA_UNMAP_FLAG_ALL);
	F(struct vfio_iommu_type1_dma_unmap, iova) = pick_iova();
	F(struct vfio_iommu_type1_dma_unmap, size) = chance(10) ? 0 : pick_len();
}
static void f_info(uint8_t *a) { (void)a; }
static void f_group_status(uint8_t *a) { (void)a; }
static const char *bdf;
static void f_device_fd(uint8_t *a)
{
	static const char *odd[] = { "", "0000:00:00.0", "garbage", "0000:00:03.0 " };
	strcpy((char *)a, chance(80) && bdf ? bdf : odd[below(4)]);
}
static void f_bind(uint8_t *a)
{
	F(struct vfio_device_bind_iommufd, flags) = pick_flags(0);
	F(struct vfio_device_bind_iommufd, iommufd) = chance(80) ? iommufd_fd : pick_fd();
}
static void f_attach(uint8_t *a)
{
	F(struct vfio_device_attach_iommufd_pt, flags) = pick_flags(0);
	F(struct vfio_device_attach_iommufd_pt, pt_id) = pick_id();
}
static void f_region(uint8_t *a) { F(struct vfio_region_info, index) = below(12); }
static void f_irq(uint8_t *a) { F(struct vfio_irq_info, index) = below(8); }

/* The VFIO ioctls that take an integer argument, not a pointer. */
static int by_value(unsigned long req)
{
	return req == VFIO_CHECK_EXTENSION || req == VFIO_SET_IOMMU || req == VFIO_GROUP_SET_CONTAINER ||
	       req == VFIO_GET_API_VERSION || req == VFIO_GROUP_UNSET_CONTAINER || req == VFIO_DEVICE_RESET;
}

static const struct op OPS[] = {
	{ "IOAS_ALLOC", IOMMU_IOAS_ALLOC, sizeof(struct iommu_ioas_alloc), &iommufd_fd, f_ioas_alloc, 0 },
	{ "IOAS_ALLOC", IOMMU_IOAS_ALLOC, sizeof(struct iommu_ioas_alloc), &iommufd_fd, f_ioas_alloc, 0 },
	{ "DESTROY", IOMMU_DESTROY, sizeof(struct iommu_destroy), &iommufd_fd, f_destroy, 0 },
	{ "IOAS_MAP", IOMMU_IOAS_MAP, sizeof(struct iommu_ioas_map), &iommufd_fd, f_ioas_map, 0 },
	{ "IOAS_MAP", IOMMU_IOAS_MAP, sizeof(struct iommu_ioas_map), &iommufd_fd, f_ioas_map, 0 },
	{ "IOAS_UNMAP", IOMMU_IOAS_UNMAP, sizeof(struct iommu_ioas_unmap), &iommufd_fd, f_ioas_unmap, 0 },
	{ "IOAS_COPY", IOMMU_IOAS_COPY, sizeof(struct iommu_ioas_copy), &iommufd_fd, f_ioas_copy, 0 },
	{ "IOAS_IOVA_RANGES", IOMMU_IOAS_IOVA_RANGES, sizeof(struct iommu_ioas_iova_ranges), &iommufd_fd,
	  f_iova_ranges, 0 },
	{ "IOAS_ALLOW_IOVAS", IOMMU_IOAS_ALLOW_IOVAS, sizeof(struct iommu_ioas_allow_iovas), &iommufd_fd,
	  f_allow_iovas, 0 },
	{ "OPTION", IOMMU_OPTION, sizeof(struct iommu_option), &iommufd_fd, f_option, 0 },
	{ "HWPT_ALLOC", IOMMU_HWPT_ALLOC, sizeof(struct iommu_hwpt_alloc), &iommufd_fd, f_hwpt_alloc, 0 },
	{ "GET_HW_INFO", IOMMU_GET_HW_INFO, sizeof(struct iommu_hw_info), &iommufd_fd, f_hw_info, 0 },
	{ "HWPT_SET_DIRTY_TRACKING", IOMMU_HWPT_SET_DIRTY_TRACKING, sizeof(struct iommu_hwpt_set_dirty_tracking),
	  &iommufd_fd, f_set_dirty, 0 },
	{ "HWPT_GET_DIRTY_BITMAP", IOMMU_HWPT_GET_DIRTY_BITMAP, sizeof(struct iommu_hwpt_get_dirty_bitmap),
	  &iommufd_fd, f_get_dirty, 0 },
	{ "VFIO_IOAS", IOMMU_VFIO_IOAS, sizeof(struct iommu_vfio_ioas), &iommufd_fd, f_vfio_ioas, 0 },
	{ "TEST_CMD", IOMMU_TEST_CMD, sizeof(struct iommu_test_cmd), &iommufd_fd, f_test,
	  offsetof(struct iommu_test_cmd, create_access.out_access_fd) },
	{ "TEST_CMD", IOMMU_TEST_CMD, sizeof(struct iommu_test_cmd), &iommufd_fd, f_test,
	  offsetof(struct iommu_test_cmd, create_access.out_access_fd) },
	{ "TEST_CMD", IOMMU_TEST_CMD, sizeof(struct iommu_test_cmd), &iommufd_fd, f_test,
	  offsetof(struct iommu_test_cmd, create_access.out_access_fd) },
	{ "VFIO_CHECK_EXTENSION", VFIO_CHECK_EXTENSION, 0, &container_fd, f_ext, 0 },
	{ "VFIO_SET_IOMMU", VFIO_SET_IOMMU, 0, &container_fd, f_ext, 0 },
	{ "VFIO_IOMMU_GET_INFO", VFIO_IOMMU_GET_INFO, 128, &container_fd, f_info, 0 },
	{ "VFIO_IOMMU_MAP_DMA", VFIO_IOMMU_MAP_DMA, sizeof(struct vfio_iommu_type1_dma_map), &container_fd,
	  f_map_dma, 0 },
	{ "VFIO_IOMMU_UNMAP_DMA", VFIO_IOMMU_UNMAP_DMA, sizeof(struct vfio_iommu_type1_dma_unmap), &container_fd,
	  f_unmap_dma, 0 },
	{ "VFIO_GROUP_GET_STATUS", VFIO_GROUP_GET_STATUS, sizeof(struct vfio_group_status), &group_fd,
	  f_group_status, 0 },
	{ "VFIO_GROUP_SET_CONTAINER", VFIO_GROUP_SET_CONTAINER, 0, &group_fd, f_ext, 0 },
	{ "VFIO_GROUP_UNSET_CONTAINER", VFIO_GROUP_UNSET_CONTAINER, 0, &group_fd, f_ext, 0 },
	{ "VFIO_GROUP_GET_DEVICE_FD", VFIO_GROUP_GET_DEVICE_FD, 0, &group_fd, f_device_fd, 0 },
	{ "VFIO_DEVICE_BIND_IOMMUFD", VFIO_DEVICE_BIND_IOMMUFD, sizeof(struct vfio_device_bind_iommufd), &cdev_fd,
	  f_bind, 0 },
	{ "VFIO_DEVICE_ATTACH_IOMMUFD_PT", VFIO_DEVICE_ATTACH_IOMMUFD_PT,
	  sizeof(struct vfio_device_attach_iommufd_pt), &cdev_fd, f_attach, 0 },
	{ "VFIO_DEVICE_DETACH_IOMMUFD_PT", VFIO_DEVICE_DETACH_IOMMUFD_PT,
	  sizeof(struct vfio_device_detach_iommufd_pt), &cdev_fd, f_ext, 0 },
	{ "VFIO_DEVICE_GET_INFO", VFIO_DEVICE_GET_INFO, sizeof(struct vfio_device_info), &cdev_fd, f_ext, 0 },
	{ "VFIO_DEVICE_GET_REGION_INFO", VFIO_DEVICE_GET_REGION_INFO, sizeof(struct vfio_region_info), &cdev_fd,
	  f_region, 0 },
	{ "VFIO_DEVICE_GET_IRQ_INFO", VFIO_DEVICE_GET_IRQ_INFO, sizeof(struct vfio_irq_info), &cdev_fd, f_irq, 0 },
};
#define NOPS (sizeof(OPS) / sizeof(OPS[0]))

static uint64_t fnv(const uint8_t *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}

static char **skips;
static int nskips;
static int skipped(unsigned long seed, int n)
{
	char key[48];
	snprintf(key, sizeof(key), "%lu.%d", seed, n);
	for (int i = 0; i < nskips; i++)
		if (!strcmp(skips[i], key))
			return 1;
	return 0;
}

static void open_all(void)
{
	nfds = 0;
	iommufd_fd = track(open("/dev/iommu", O_RDWR));
	container_fd = track(open("/dev/vfio/vfio", O_RDWR));
	group_fd = group_path ? track(open(group_path, O_RDWR)) : -1;
	cdev_fd = cdev_path ? track(open(cdev_path, O_RDWR)) : -1;
}

static void close_all(void)
{
	for (int i = nfds - 1; i >= 0; i--)
		close(fds[i]);
	nfds = 0;
}

static void one(unsigned long seed, int n, int full)
{
	const struct op *op = &OPS[below(NOPS)];
	unsigned int size = op->size;
	int fd = *op->fd;
	memset(ARG, 0, ARG_SIZE);
	if (size) {
		*(uint32_t *)ARG = size; /* size or argsz */
		op->fill(ARG);
	} else if (op->req == VFIO_GROUP_GET_DEVICE_FD) {
		op->fill(ARG);
	}
	unsigned long arg = (unsigned long)ARG;
	int kind = below(100);
	if (by_value(op->req)) {
		/* extensions and container types 0..12, fds, garbage */
		arg = kind < 60 ? below(13) : kind < 90 ? (unsigned long)(long)pick_fd() : next();
		if (op->req == VFIO_GROUP_SET_CONTAINER) {
			*(int32_t *)ARG = kind < 80 ? container_fd : pick_fd();
			arg = (unsigned long)ARG;
		}
	} else if (size && kind < 12) {
		/* mutated: one random byte */
		ARG[below(size)] = (uint8_t)next();
	} else if (size && kind < 16) {
		/* garbage with a plausible size */
		for (unsigned int i = 4; i < size; i++)
			ARG[i] = (uint8_t)next();
	} else if (size && kind < 19) {
		/* size field off: shorter or longer */
		*(uint32_t *)ARG = (uint32_t)below(2 * size + 16);
	} else if (kind < 20) {
		arg = chance(50) ? 0 : UNMAPPED;
	}
	if (kind >= 97)
		fd = pick_fd();
	if (skipped(seed, n))
		return;
	errno = 0;
	long ret = fd < 0 ? (errno = EBADF, -1) : ioctl(fd, op->req, arg);
	int err = ret < 0 ? errno : 0;
	/* fds written into the struct print as their index */
	uint8_t *fdat = op->out_fd_at && ret == 0 && ((struct iommu_test_cmd *)ARG)->op == IOMMU_TEST_OP_CREATE_ACCESS
				? ARG + op->out_fd_at
				: NULL;
	if (fdat) {
		int got = *(int32_t *)fdat;
		track(got);
		*(int32_t *)fdat = fd_index(got);
	}
	char rets[32];
	if (ret >= 0 && (op->req == VFIO_GROUP_GET_DEVICE_FD))
		snprintf(rets, sizeof(rets), "F%d", fd_index(track((int)ret)));
	else
		snprintf(rets, sizeof(rets), "%ld", ret);
	printf("%lu.%d %s ret=%s errno=%d out=%016llx", seed, n, op->name, rets, err,
	       (unsigned long long)fnv(ARG, ARG_SIZE));
	if (full) {
		printf(" bytes=");
		for (unsigned int i = 0; i < (size ? size : 8); i++)
			printf("%02x", ARG[i]);
	}
	putchar('\n');
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: %s SEED COUNT CALLS [SKIP...]\n", argv[0]);
		return 2;
	}
	unsigned long first = strtoul(argv[1], NULL, 0), count = strtoul(argv[2], NULL, 0);
	int calls = atoi(argv[3]);
	skips = argv + 4;
	nskips = argc - 4;
	group_path = getenv("DIFF_GROUP");
	cdev_path = getenv("DIFF_CDEV");
	bdf = getenv("DIFF_BDF");
	int full = getenv("DIFF_FULL") != NULL;
	if (mmap(ARENA, ARENA_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) !=
		    ARENA ||
	    mmap(ARG, ARG_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != ARG) {
		perror("mmap");
		return 2;
	}
	/* small pages on both sides: THP would make MD_CHECK_REFS skip compound pages on one only */
	madvise(ARENA, ARENA_SIZE, MADV_NOHUGEPAGE);
	for (unsigned long i = 0; i < ARENA_SIZE; i += PAGE)
		ARENA[i] = (uint8_t)(i >> 12);
	for (unsigned long seed = first; seed < first + count; seed++) {
		rng = seed * 0x9e3779b97f4a7c15ull + 1;
		open_all();
		for (int n = 0; n < calls; n++)
			one(seed, n, full);
		close_all();
		fflush(stdout);
	}
	return 0;
}
