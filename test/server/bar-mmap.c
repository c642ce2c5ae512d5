/*
 * BAR0 of the x86 preset's DMA-engine function mapped into a real process
 * (docs/device-mmap.md): region flags, mmap's errnos, trapped register
 * accesses of every width (unaligned too), shared memory pages, a function
 * reset seen through the mapping, a DMA driven through the
 * mapping, fork inheritance, the program's own SIGSEGV handler, SIGBUS
 * while Memory decode is off, munmap of half, mremap (grow, shrink, move),
 * MAP_FIXED over a register page, an instruction the
 * trap cannot emulate, a KVM memory slot over a register page (when
 * /dev/kvm works), and MAP_DMA of the mapping (EFAULT on the iommufd
 * compat container, peer-to-peer on the legacy one with argument "type1").
 * Prints one "ok" line per check.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include <linux/kvm.h>

#include "example-common.h"

#define BDF "0000:00:02.0"
#define PAGE 4096UL

static sigjmp_buf g_jump;
static volatile int g_sig, g_code;
static void *volatile g_addr;

static void catcher(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	g_sig = sig;
	g_code = si->si_code;
	g_addr = si->si_addr;
	siglongjmp(g_jump, 1);
}

/* Runs `touch(p)`; returns the signal it raised (0 if none). */
static int faults(void (*touch)(volatile uint8_t *), volatile uint8_t *p)
{
	g_sig = 0;
	if (sigsetjmp(g_jump, 1) == 0)
		touch(p);
	return g_sig;
}

static void read32(volatile uint8_t *p)
{
	(void)*(volatile uint32_t *)p;
}

static void write32(volatile uint8_t *p)
{
	*(volatile uint32_t *)p = 1;
}

int main(int argc, char **argv)
{
	/* argv[1] "type1": the legacy container (peer-to-peer MAP_DMA of the BAR works) */
	int legacy = argc > 1 && !strcmp(argv[1], "type1");
	int container = open_or_die("/dev/vfio/vfio", O_RDWR);
	char gpath[64];
	snprintf(gpath, sizeof(gpath), "/dev/vfio/%d", group_of(BDF));
	int group = open_or_die(gpath, O_RDWR);
	IOCTL_VAL_OK(group, VFIO_GROUP_SET_CONTAINER, (unsigned long)&container);
	IOCTL_VAL_OK(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU);
	int dev = ioctl(group, VFIO_GROUP_GET_DEVICE_FD, BDF);
	CHECK(dev >= 0, "GET_DEVICE_FD: %s", strerrorname_np(errno));
	struct dma_dev d = dma_dev_open(dev);

	struct vfio_region_info bar = { .argsz = sizeof(bar), .index = 0 };
	IOCTL_OK(dev, VFIO_DEVICE_GET_REGION_INFO, &bar);
	CHECK(bar.flags == 0x7, "BAR0 flags 0x%x, Linux 7.2 reports 0x7", bar.flags);
	ok("BAR0: flags 0x7 (READ|WRITE|MMAP), 0x%llx bytes", (unsigned long long)bar.size);

	/* mmap's own errnos (vfio_pci_core_mmap) */
	void *bad = mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE, dev, (off_t)bar.offset);
	CHECK(bad == MAP_FAILED && errno == EINVAL, "private mmap: %s", strerrorname_np(errno));
	bad = mmap(NULL, 2 * PAGE, PROT_READ, MAP_SHARED, dev,
		   (off_t)(bar.offset + bar.size - PAGE));
	CHECK(bad == MAP_FAILED && errno == EINVAL, "mmap past BAR0: %s", strerrorname_np(errno));
	bad = mmap(NULL, PAGE, PROT_READ, MAP_SHARED, dev, (off_t)d.config);
	CHECK(bad == MAP_FAILED && errno == EINVAL, "mmap of config: %s", strerrorname_np(errno));
	ok("mmap: MAP_PRIVATE, past the BAR and the config region are EINVAL");

	size_t len = 0x80000; /* registers, the buffer page at 0x40000, and more */
	volatile uint8_t *b = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, dev,
				   (off_t)bar.offset);
	CHECK(b != MAP_FAILED, "mmap BAR0: %s", strerrorname_np(errno));
	ok("mmap BAR0: 0x%zx bytes at %p", len, (void *)b);

	/* trapped registers: every width, zero and sign extension */
	CHECK(*(volatile uint32_t *)(b + DMA_REG_ID) == DMA_ENGINE_ID, "ID through the mapping");
	*(volatile uint32_t *)(b + DMA_REG_LIVENESS) = 0x0f0f1234;
	CHECK(*(volatile uint32_t *)(b + DMA_REG_LIVENESS) == ~0x0f0f1234u, "liveness inverts");
	*(volatile uint64_t *)(b + DMA_REG_SRC) = 0x8899aabbccddeeffULL;
	CHECK(*(volatile uint64_t *)(b + DMA_REG_SRC) == 0x8899aabbccddeeffULL, "u64 register");
	CHECK(*(volatile uint8_t *)(b + DMA_REG_SRC + 1) == 0xee, "u8 read");
	CHECK(*(volatile uint16_t *)(b + DMA_REG_SRC + 2) == 0xccdd, "u16 read");
	CHECK(*(volatile int8_t *)(b + DMA_REG_SRC) == (int8_t)0xff, "sign-extended u8");
	CHECK(*(volatile int16_t *)(b + DMA_REG_SRC + 6) == (int16_t)0x8899, "sign-extended u16");
	*(volatile uint16_t *)(b + DMA_REG_SRC + 2) = 0x1122;
	*(volatile uint8_t *)(b + DMA_REG_SRC) = 0x33;
	CHECK(reg64(&d, DMA_REG_SRC) == 0x8899aabb1122ee33ULL,
	      "narrow writes reach the device: %llx", (unsigned long long)reg64(&d, DMA_REG_SRC));
	ok("registers through the mapping: 1/2/4/8-byte reads and writes, sign and zero extension");

	/* an unaligned access is split by the device model as the bus would */
	CHECK(*(volatile uint32_t *)(b + DMA_REG_SRC + 1) == (uint32_t)(0x8899aabb1122ee33ULL >> 8),
	      "unaligned 4-byte load: 0x%x", *(volatile uint32_t *)(b + DMA_REG_SRC + 1));
	ok("an unaligned 4-byte load of a register");

	/* the buffer page is memory shared with the engine */
	volatile uint8_t *buf = b + DMA_BUF_OFFSET;
	for (int i = 0; i < 64; i++)
		buf[i] = (uint8_t)(i * 3 + 1);
	uint8_t back[64];
	dev_pread(&d, d.bar0 + DMA_BUF_OFFSET, back, sizeof(back));
	for (int i = 0; i < 64; i++)
		CHECK(back[i] == (uint8_t)(i * 3 + 1), "pread sees the mapping's byte %d", i);
	uint32_t word = 0xdeadbeef;
	dev_pwrite(&d, d.bar0 + DMA_BUF_OFFSET + 128, &word, 4);
	CHECK(*(volatile uint32_t *)(buf + 128) == 0xdeadbeef, "the mapping sees pwrite");
	ok("buffer page: the mapping and pread/pwrite show the same bytes");

	/* a function reset: registers back to their reset values, the buffer page zeroed at once */
	IOCTL_OK(dev, VFIO_DEVICE_RESET, NULL);
	CHECK(*(volatile uint32_t *)(b + DMA_REG_LIVENESS) == 0xffffffffu &&
		      *(volatile uint32_t *)(buf + 128) == 0,
	      "after RESET: liveness 0x%x, buffer 0x%x",
	      *(volatile uint32_t *)(b + DMA_REG_LIVENESS), *(volatile uint32_t *)(buf + 128));
	for (int i = 0; i < 64; i++)
		buf[i] = (uint8_t)(i * 3 + 1);
	ok("VFIO_DEVICE_RESET: the mapping shows the reset registers and a zeroed buffer");

	/* a DMA driven through the mapped registers */
	uint8_t *mem = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
			    0);
	memset(mem, 0, 2 * PAGE);
	struct vfio_iommu_type1_dma_map map = { .argsz = sizeof(map),
						.flags = VFIO_DMA_MAP_FLAG_READ |
							 VFIO_DMA_MAP_FLAG_WRITE,
						.vaddr = (uintptr_t)mem,
						.iova = 0x100000,
						.size = 2 * PAGE };
	IOCTL_OK(container, VFIO_IOMMU_MAP_DMA, &map);
	*(volatile uint64_t *)(b + DMA_REG_SRC) = DMA_BUF_OFFSET;
	*(volatile uint64_t *)(b + DMA_REG_DST) = 0x100000;
	*(volatile uint64_t *)(b + DMA_REG_COUNT) = 64;
	*(volatile uint64_t *)(b + DMA_REG_CMD) = DMA_CMD_START | DMA_CMD_TO_MEMORY;
	CHECK(*(volatile uint32_t *)(b + DMA_REG_STATUS) == DMA_STATUS_DONE, "DMA status 0x%x",
	      *(volatile uint32_t *)(b + DMA_REG_STATUS));
	for (int i = 0; i < 64; i++)
		CHECK(mem[i] == (uint8_t)(i * 3 + 1), "DMA'd byte %d", i);
	ok("DMA device->memory started and checked through the mapping");

	struct vfio_iommu_type1_dma_map bmap = map;
	bmap.vaddr = (uintptr_t)buf;
	bmap.iova = 0x200000;
	bmap.size = PAGE;
	if (!legacy) {
		/* compat container (IOMMU_IOAS_MAP underneath): the BAR mapping cannot be pinned */
		IOCTL_FAILS(container, VFIO_IOMMU_MAP_DMA, &bmap, EFAULT);
		ok("MAP_DMA of the BAR mapping on the iommufd compat container: EFAULT");
	} else {
		/* legacy type1: peer-to-peer, the IOVA reaches the BAR */
		IOCTL_OK(container, VFIO_IOMMU_MAP_DMA, &bmap);
		*(volatile uint64_t *)(b + DMA_REG_SRC) = DMA_BUF_OFFSET;
		*(volatile uint64_t *)(b + DMA_REG_DST) = 0x200000 + 0x100;
		*(volatile uint64_t *)(b + DMA_REG_COUNT) = 64;
		*(volatile uint64_t *)(b + DMA_REG_CMD) = DMA_CMD_START | DMA_CMD_TO_MEMORY;
		CHECK(*(volatile uint32_t *)(b + DMA_REG_STATUS) == DMA_STATUS_DONE,
		      "peer-to-peer DMA status 0x%x", *(volatile uint32_t *)(b + DMA_REG_STATUS));
		for (int i = 0; i < 64; i++)
			CHECK(buf[0x100 + i] == (uint8_t)(i * 3 + 1), "peer-to-peer byte %d", i);
		ok("legacy type1 MAP_DMA of the BAR mapping works: a DMA to its IOVA lands in the BAR");
	}

	/* fork: the child inherits the mapping and its trap */
	pid_t pid = fork();
	if (pid == 0) {
		int good = *(volatile uint32_t *)(b + DMA_REG_ID) == DMA_ENGINE_ID && buf[1] == 4;
		*(volatile uint32_t *)(b + DMA_REG_LIVENESS) = 0x55;
		_exit(good ? 0 : 1);
	}
	int st;
	waitpid(pid, &st, 0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "fork child: status 0x%x", st);
	CHECK(*(volatile uint32_t *)(b + DMA_REG_LIVENESS) == ~0x55u, "the child's write");
	ok("fork: the child reads and writes the inherited mapping");

	/* the program's own SIGSEGV handler still sees its own faults */
	struct sigaction sa = { .sa_sigaction = catcher, .sa_flags = SA_SIGINFO }, old;
	sigemptyset(&sa.sa_mask);
	CHECK(sigaction(SIGSEGV, &sa, NULL) == 0, "sigaction");
	CHECK(sigaction(SIGSEGV, NULL, &old) == 0 && old.sa_sigaction == catcher,
	      "sigaction reads back the program's handler");
	CHECK(sigaction(SIGBUS, &sa, NULL) == 0, "sigaction SIGBUS");
	volatile uint8_t *none = mmap(NULL, PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(faults(read32, none) == SIGSEGV && g_addr == (void *)none,
	      "the program's SIGSEGV handler");
	CHECK(*(volatile uint32_t *)(b + DMA_REG_ID) == DMA_ENGINE_ID, "the trap still works");
	ok("a SIGSEGV of the program reaches its own handler; BAR traps keep working");

	/* Memory decode off: registers and memory pages give SIGBUS */
	uint16_t cmd;
	dev_pread(&d, d.config + UIOMMU_PCI_COMMAND, &cmd, 2);
	uint16_t off = cmd & ~UIOMMU_PCI_COMMAND_MEMORY;
	dev_pwrite(&d, d.config + UIOMMU_PCI_COMMAND, &off, 2);
	CHECK(faults(read32, b + DMA_REG_ID) == SIGBUS && g_code == BUS_ADRERR &&
		      g_addr == (void *)(b + DMA_REG_ID),
	      "register read with decode off: signal %d code %d", g_sig, g_code);
	CHECK(faults(write32, buf) == SIGBUS, "memory page with decode off: signal %d", g_sig);
	dev_pwrite(&d, d.config + UIOMMU_PCI_COMMAND, &cmd, 2);
	CHECK(*(volatile uint32_t *)(b + DMA_REG_ID) == DMA_ENGINE_ID && buf[1] == 4,
	      "decode back on");
	ok("Memory decode off: SIGBUS (BUS_ADRERR) on registers and memory pages; back on: works");

	/* mprotect read-only: a write is the program's SIGSEGV */
	CHECK(mprotect((void *)b, len, PROT_READ) == 0, "mprotect");
	CHECK(faults(write32, b + DMA_REG_LIVENESS) == SIGSEGV, "write to a read-only register");
	CHECK(faults(write32, buf) == SIGSEGV, "write to a read-only memory page");
	CHECK(*(volatile uint32_t *)(b + DMA_REG_ID) == DMA_ENGINE_ID, "reads still work");
	CHECK(mprotect((void *)b, len, PROT_READ | PROT_WRITE) == 0, "mprotect back");
	ok("mprotect(PROT_READ): writes fault to the program, reads work");

	/* mremap: growing is EFAULT (VM_DONTEXPAND) */
	void *grown = mremap((void *)b, len, 2 * len, MREMAP_MAYMOVE);
	CHECK(grown == MAP_FAILED && errno == EFAULT, "mremap grow: %s", strerrorname_np(errno));
	ok("mremap: growing a device mapping is EFAULT");
	void *moved = mremap((void *)b, len, len / 2, MREMAP_MAYMOVE);
	CHECK(moved == (void *)b, "mremap shrink: %p %s", moved, strerrorname_np(errno));
	CHECK(*(volatile uint32_t *)(b + DMA_REG_ID) == DMA_ENGINE_ID, "after the shrink");
	CHECK(faults(read32, buf) == SIGSEGV, "the cut-off part");
	len /= 2;
	void *spot = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	moved = mremap((void *)b, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, spot);
	CHECK(moved == spot, "mremap move: %p %s", moved, strerrorname_np(errno));
	CHECK(faults(read32, b) == SIGSEGV, "the old place");
	b = moved;
	CHECK(*(volatile uint32_t *)(b + DMA_REG_ID) == DMA_ENGINE_ID, "after the move");
	*(volatile uint32_t *)(b + DMA_REG_LIVENESS) = 7;
	CHECK(reg32(&d, DMA_REG_LIVENESS) == ~7u, "a store at the new place reaches the device");
	ok("mremap: shrinking and moving keep the registers working at the new place");

	/* munmap of half: the rest works, the unmapped half faults */
	CHECK(munmap((void *)(b + 0x20000), 0x20000) == 0, "munmap half");
	CHECK(*(volatile uint32_t *)(b + DMA_REG_ID) == DMA_ENGINE_ID, "first half still mapped");
	CHECK(faults(read32, b + 0x20000) == SIGSEGV, "the unmapped half");
	ok("munmap of half the mapping: the rest works, the unmapped half is SIGSEGV");

	/* a KVM memory slot over a register page is refused at once (EFAULT), one over memory is not */
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	int vm = kvm < 0 ? -1 : ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0) {
		ok("KVM slot over registers: not checked, no usable /dev/kvm (%s)",
		   strerrorname_np(errno));
	} else {
		struct kvm_userspace_memory_region slot = { .slot = 0,
							    .guest_phys_addr = 0x100000,
							    .memory_size = PAGE,
							    .userspace_addr = (uintptr_t)b };
		CHECK(ioctl(vm, KVM_SET_USER_MEMORY_REGION, &slot) < 0 && errno == EFAULT,
		      "KVM slot over the register page: %s", strerrorname_np(errno));
		slot.userspace_addr = (uintptr_t)mem;
		CHECK(ioctl(vm, KVM_SET_USER_MEMORY_REGION, &slot) == 0, "KVM slot over memory: %s",
		      strerrorname_np(errno));
		slot.slot = 1;
		slot.guest_phys_addr = 0x200000;
		slot.userspace_addr = (uintptr_t)(b + PAGE);
		CHECK(ioctl(vm, KVM_SET_USER_MEMORY_REGION, &slot) == 0,
		      "KVM slot over a memory page of the BAR: %s", strerrorname_np(errno));
		ok("KVM_SET_USER_MEMORY_REGION: EFAULT with a message over a register page, 0 over "
		   "memory and a BAR's memory page");
		close(vm);
	}
	if (kvm >= 0)
		close(kvm);

	/* an instruction the trap cannot emulate: a message, then SIGSEGV */
	pid = fork();
	if (pid == 0) {
		signal(SIGSEGV, SIG_DFL);
		__asm__ volatile("lock incl (%0)" ::"r"(b + DMA_REG_LIVENESS) : "memory");
		_exit(0);
	}
	waitpid(pid, &st, 0);
	CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV, "unemulated instruction: status 0x%x",
	      st);
	ok("an instruction outside the decoder's set: the child dies of SIGSEGV");

	/* MAP_FIXED over the register page: plain memory there now, the device untouched */
	uint32_t before = reg32(&d, DMA_REG_LIVENESS);
	void *anon = mmap((void *)b, PAGE, PROT_READ | PROT_WRITE,
			  MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(anon == (void *)b, "MAP_FIXED over the mapping: %s", strerrorname_np(errno));
	*(volatile uint32_t *)(b + DMA_REG_LIVENESS) = 0x99;
	CHECK(*(volatile uint32_t *)(b + DMA_REG_LIVENESS) == 0x99 &&
		      reg32(&d, DMA_REG_LIVENESS) == before,
	      "the anonymous page is memory, the device's register unchanged");
	ok("MAP_FIXED over a register page replaces it with plain memory");

	CHECK(munmap((void *)b, 0x20000) == 0, "munmap");
	close(dev);
	close(group);
	close(container);
	ok("done");
	return 0;
}
