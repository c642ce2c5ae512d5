/*
 * What the C test programs of test/server/ that drive IOMMU_TEST_CMD share:
 * the selftest's uAPI (the model's spelling is src/abi/iommufd-test.ts)
 * and one "ok NAME" / "FAIL NAME: ..." line per check (counted in
 * `failures`).
 */
#ifndef UIOMMU_TEST_IOMMUFD_TEST_H
#define UIOMMU_TEST_IOMMUFD_TEST_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "uiommu-uapi.h"

#define IOMMU_TEST_CMD _IO(UIOMMU_IOCTL_TYPE, 0xa0)

#define IOMMU_TEST_OP_MOCK_DOMAIN 2
#define IOMMU_TEST_OP_CREATE_ACCESS 5
#define IOMMU_TEST_OP_ACCESS_PAGES 7
#define IOMMU_TEST_OP_ACCESS_RW 8
#define IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE 10
#define IOMMU_TEST_OP_TRIGGER_IOPF 15
#define IOMMU_TEST_OP_TRIGGER_VEVENT 17
#define IOMMU_TEST_OP_DMABUF_GET 22

/* CREATE_ACCESS and ACCESS_RW flags. */
#define MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES 1
#define MOCK_ACCESS_RW_WRITE 1
#define MOCK_ACCESS_RW_SLOW_PATH 4

struct iommu_test_cmd {
	uint32_t size;
	uint32_t op;
	uint32_t id;
	uint32_t __reserved;
	union {
		struct {
			uint32_t out_stdev_id;
			uint32_t out_hwpt_id;
			uint32_t out_idev_id;
		} mock_domain;
		struct {
			uint32_t pt_id;
		} mock_domain_replace;
		struct {
			uint32_t out_access_fd;
			uint32_t flags;
		} create_access;
		struct {
			uint32_t flags;
			uint32_t out_access_pages_id;
			uint64_t iova;
			uint64_t length;
			uint64_t uptr;
		} access_pages;
		struct {
			uint64_t iova;
			uint64_t length;
			uint64_t uptr;
			uint32_t flags;
		} access_rw;
		struct {
			uint32_t dev_id;
			uint32_t pasid;
			uint32_t grpid;
			uint32_t perm;
			uint64_t addr;
		} trigger_iopf;
		struct {
			uint32_t dev_id;
		} trigger_vevent;
		struct {
			uint32_t length;
			uint32_t open_flags;
		} dmabuf_get;
		uint8_t union_bytes[48];
	};
	uint32_t last;
};
_Static_assert(sizeof(struct iommu_test_cmd) == 72, "iommu_test_cmd");
_Static_assert(offsetof(struct iommu_test_cmd, trigger_iopf.addr) == 32, "trigger_iopf.addr");
_Static_assert(offsetof(struct iommu_test_cmd, last) == 64, "last");

static int failures;

/* A check's line; `ret` (and errno) are shown when it failed. */
static inline void check(const char *name, int ok, int ret)
{
	if (ok)
		printf("ok %s\n", name);
	else
		printf("FAIL %s: ret %d errno %s\n", name, ret, strerror(errno));
	failures += !ok;
}

#endif
