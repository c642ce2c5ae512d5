/*
 * Credentials follow a process across execve(2) under `uiommu run`: the
 * first image sets up a legacy type1 container and maps a page, then execs
 * itself keeping the container fd. The new image maps while it may lock
 * memory, then drops CAP_IPC_LOCK and lowers RLIMIT_MEMLOCK to 0: the next
 * VFIO_IOMMU_MAP_DMA must fail with ENOMEM (vfio_iommu_type1 charges the
 * new mm, whose limit is now 0). With CAP_IPC_LOCK raised again (when the
 * program holds it) the map succeeds again: the engine reads the new
 * image's credentials live, not those of the image that first said HELLO.
 *
 *   exec-creds            first image
 *   exec-creds FD         after exec, FD the container
 */
#define _GNU_SOURCE
#include <linux/capability.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>

#include "example-common.h"

#define BDF "0000:00:02.0"
#define IOVA 0x10000000ull
#define PAGE 0x1000ull

/* VFIO_IOMMU_MAP_DMA of one fresh page at `iova`: 0, or -errno. */
static int map_page(int container, uint64_t iova)
{
	void *mem = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(mem != MAP_FAILED, "mmap: %s", strerrorname_np(errno));
	struct vfio_iommu_type1_dma_map map = {
		.argsz = sizeof(map),
		.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
		.vaddr = (uintptr_t)mem,
		.iova = iova,
		.size = PAGE,
	};
	return ioctl(container, VFIO_IOMMU_MAP_DMA, &map) < 0 ? -errno : 0;
}

/* Whether CAP_IPC_LOCK is permitted; sets it in or out of the effective set. */
static int ipc_lock_effective(int on)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[2];
	CHECK(syscall(SYS_capget, &h, d) == 0, "capget: %s", strerrorname_np(errno));
	int permitted = (d[0].permitted >> CAP_IPC_LOCK) & 1;
	if (on && permitted)
		d[0].effective |= 1u << CAP_IPC_LOCK;
	else
		d[0].effective &= ~(1u << CAP_IPC_LOCK);
	CHECK(syscall(SYS_capset, &h, d) == 0, "capset: %s", strerrorname_np(errno));
	return permitted;
}

static int first_image(void)
{
	int container = open_or_die("/dev/vfio/vfio", O_RDWR);
	int gid = group_of(BDF);
	char path[64];
	snprintf(path, sizeof(path), "/dev/vfio/%d", gid);
	/* kept across exec: the container keeps its IOMMU while a group is set */
	int group = open_or_die(path, O_RDWR);
	IOCTL_OK(group, VFIO_GROUP_SET_CONTAINER, &container);
	IOCTL_VAL_OK(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU);
	int r = map_page(container, IOVA);
	CHECK(r == 0, "first image: MAP_DMA = %s", strerrorname_np(-r));
	ok("first image: VFIO_IOMMU_MAP_DMA of a page");
	char fd[16];
	snprintf(fd, sizeof(fd), "%d", container);
	execl("/proc/self/exe", "exec-creds", fd, (char *)NULL);
	die("execl: %s", strerrorname_np(errno));
}

static int after_exec(int container)
{
	int r = map_page(container, IOVA + PAGE);
	CHECK(r == 0, "after exec: MAP_DMA = %s", strerrorname_np(-r));
	ok("after exec: VFIO_IOMMU_MAP_DMA of a page");

	int had_ipc_lock = ipc_lock_effective(0);
	struct rlimit none = { 0, 0 };
	CHECK(setrlimit(RLIMIT_MEMLOCK, &none) == 0, "setrlimit: %s", strerrorname_np(errno));
	r = map_page(container, IOVA + 2 * PAGE);
	CHECK(r == -ENOMEM, "MAP_DMA without CAP_IPC_LOCK, RLIMIT_MEMLOCK 0 = %s, want ENOMEM",
	      r ? strerrorname_np(-r) : "0");
	ok("after exec, CAP_IPC_LOCK dropped and RLIMIT_MEMLOCK 0: MAP_DMA fails with ENOMEM");

	if (had_ipc_lock) {
		ipc_lock_effective(1);
		r = map_page(container, IOVA + 3 * PAGE);
		CHECK(r == 0, "MAP_DMA with CAP_IPC_LOCK raised again = %s", strerrorname_np(-r));
		ok("CAP_IPC_LOCK raised again: MAP_DMA succeeds");
	} else {
		ok("CAP_IPC_LOCK not permitted: nothing to raise again");
	}
	return 0;
}

int main(int argc, char **argv)
{
	return argc > 1 ? after_exec(atoi(argv[1])) : first_image();
}
