/*
 * IOMMU_TEST_CMD with a full fd table, in a real process under `uiommu run
 * --host mock --kernel 7.2`: ops that install no file (ACCESS_RW) succeed,
 * as on Linux; CREATE_ACCESS fails ENOMEM (the selftest turns the failed fd
 * allocation into it), DMABUF_GET EMFILE (dma_buf_fd), but only after their
 * own argument checks (EOPNOTSUPP, EINVAL); an unreadable argument is
 * EFAULT; once an fd is free CREATE_ACCESS installs its file there. Each
 * check prints "ok <name>" or "FAIL <name>: ..."; exits non-zero on a
 * failure.
 *
 * Build: cc -I examples -o full-fd-table test/server/full-fd-table.c
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "iommufd-test.h"

/* ---- checks ------------------------------------------------------------ */

#define PAGE 4096
#define IOVA 0x100000
/* The fd limit while the table is full. */
#define NOFILE 64

/* IOMMU_TEST_CMD of `cmd`; expects `want_errno` (0: success). Its return. */
static int test_cmd(const char *name, int iommufd, struct iommu_test_cmd *cmd, int want_errno)
{
	int ret;

	cmd->size = sizeof(*cmd);
	errno = 0;
	ret = ioctl(iommufd, IOMMU_TEST_CMD, cmd);
	check(name, want_errno ? ret == -1 && errno == want_errno : ret == 0, ret);
	return ret;
}

int main(void)
{
	struct rlimit lim = { .rlim_cur = NOFILE, .rlim_max = NOFILE };
	struct iommu_ioas_alloc alloc = { .size = sizeof(alloc) };
	struct iommu_ioas_map map = { .size = sizeof(map) };
	struct iommu_test_cmd cmd;
	uint8_t *buf, back[64];
	int iommufd, access, fd, last = -1, ret;

	setvbuf(stdout, NULL, _IOLBF, 0);
	iommufd = open("/dev/iommu", O_RDWR);
	check("open /dev/iommu", iommufd >= 0, iommufd);
	ret = ioctl(iommufd, IOMMU_IOAS_ALLOC, &alloc);
	check("IOAS_ALLOC", ret == 0, ret);
	buf = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	memset(buf, 0x5a, PAGE);
	map.flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE;
	map.ioas_id = alloc.out_ioas_id;
	map.user_va = (uintptr_t)buf;
	map.length = PAGE;
	map.iova = IOVA;
	ret = ioctl(iommufd, IOMMU_IOAS_MAP, &map);
	check("IOAS_MAP", ret == 0, ret);
	cmd = (struct iommu_test_cmd){ .op = IOMMU_TEST_OP_CREATE_ACCESS, .id = alloc.out_ioas_id };
	test_cmd("CREATE_ACCESS with free fds", iommufd, &cmd, 0);
	access = (int)cmd.create_access.out_access_fd;

	/* fill the table up to the limit */
	ret = setrlimit(RLIMIT_NOFILE, &lim);
	check("setrlimit(RLIMIT_NOFILE)", ret == 0, ret);
	while ((fd = dup(0)) >= 0)
		last = fd;
	check("the fd table is full (dup EMFILE)", errno == EMFILE && last > access, last);

	cmd = (struct iommu_test_cmd){ .op = IOMMU_TEST_OP_ACCESS_RW, .id = (uint32_t)access };
	cmd.access_rw.iova = IOVA + 16;
	cmd.access_rw.length = sizeof(back);
	cmd.access_rw.uptr = (uintptr_t)back;
	memset(back, 0, sizeof(back));
	test_cmd("ACCESS_RW with a full fd table succeeds", iommufd, &cmd, 0);
	check("ACCESS_RW read the IOVA's bytes", back[0] == 0x5a && back[63] == 0x5a, back[0]);

	cmd = (struct iommu_test_cmd){ .op = IOMMU_TEST_OP_CREATE_ACCESS, .id = alloc.out_ioas_id };
	test_cmd("CREATE_ACCESS with a full fd table: ENOMEM", iommufd, &cmd, ENOMEM);
	cmd.create_access.flags = 0x80;
	test_cmd("CREATE_ACCESS bad flags, full table: EOPNOTSUPP first", iommufd, &cmd,
		 EOPNOTSUPP);
	cmd = (struct iommu_test_cmd){ .op = IOMMU_TEST_OP_DMABUF_GET };
	cmd.dmabuf_get.length = PAGE;
	test_cmd("DMABUF_GET with a full fd table: EMFILE", iommufd, &cmd, EMFILE);
	cmd.dmabuf_get.length = 0;
	test_cmd("DMABUF_GET length 0, full table: EINVAL first", iommufd, &cmd, EINVAL);
	errno = 0;
	ret = ioctl(iommufd, IOMMU_TEST_CMD, (void *)8);
	check("an unreadable argument, full table: EFAULT", ret == -1 && errno == EFAULT, ret);

	close(last);
	cmd = (struct iommu_test_cmd){ .op = IOMMU_TEST_OP_CREATE_ACCESS, .id = alloc.out_ioas_id };
	test_cmd("CREATE_ACCESS once an fd is free", iommufd, &cmd, 0);
	check("its access fd is the freed one", (int)cmd.create_access.out_access_fd == last,
	      (int)cmd.create_access.out_access_fd);
	return failures ? 1 : 0;
}
