/*
 * Device mappings (docs/device-mmap.md): mmap of an engine fd maps the
 * engine's shared file of the BAR (a memfd opened through
 * /proc/<engine>/fd), with the register pages PROT_NONE so that every
 * access to them traps (trap.c) and reaches the device model. Memory pages
 * start PROT_NONE too and come in on first touch (MMIO_FAULT), as vfio-pci
 * faults its pages in; they go back to PROT_NONE whenever the engine
 * reports a zap (Memory decode turned off), so a later touch gets SIGBUS.
 * munmap, mremap, mprotect and a MAP_FIXED mapping over them keep the
 * engine's view (MUNMAP, MREMAP) and ours in step. Each of these, and
 * pkey_mprotect and madvise(MADV_GUARD_INSTALL), also tells the stacks
 * copied without a system call (stack_touched, before and after the real
 * call).
 */
#include "preload.h"

#include <linux/kvm.h>

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102 /* Linux 6.13 */
#endif

struct bar_map g_bar_maps[MAX_BAR_MAPS];
int g_nbar_maps;
static uint32_t g_zaps;

/*
 * The kernel's own calls, not libc's: mmap is called while libc and the
 * loader are still setting up (before dlsym could be used safely).
 */
static void *real_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	return (void *)syscall(SYS_mmap, addr, len, prot, flags, fd, off);
}

static int real_munmap(void *addr, size_t len)
{
	return (int)syscall(SYS_munmap, addr, len);
}

static void *real_mremap(void *old, size_t old_len, size_t new_len, int flags, void *want)
{
	return (void *)syscall(SYS_mremap, old, old_len, new_len, flags, want);
}

static int real_mprotect(void *addr, size_t len, int prot)
{
	return (int)syscall(SYS_mprotect, addr, len, prot);
}

/* Applies the program's protection to the memory pages of `m` (registers stay PROT_NONE). */
static void unprotect_memory(const struct bar_map *m)
{
	uintptr_t at = m->start;
	unsigned i;

	for (i = 0; i <= m->nregs; i++) {
		uintptr_t end = i < m->nregs ? m->regs[i].start : m->end;

		if (end > at)
			real_mprotect((void *)at, end - at, m->prot);
		if (i < m->nregs)
			at = m->regs[i].end;
	}
}

void bar_zaps_seen(uint32_t zaps)
{
	int i;

	if (zaps == g_zaps || !g_nbar_maps)
		return;
	g_zaps = zaps;
	for (i = 0; i < g_nbar_maps; i++) {
		real_mprotect((void *)g_bar_maps[i].start, g_bar_maps[i].end - g_bar_maps[i].start,
			      PROT_NONE);
		g_bar_maps[i].zapped = 1;
	}
}

struct bar_map *bar_map_at(uintptr_t addr)
{
	int i;

	for (i = 0; i < g_nbar_maps; i++)
		if (addr >= g_bar_maps[i].start && addr < g_bar_maps[i].end)
			return &g_bar_maps[i];
	return NULL;
}

int bar_map_is_register(const struct bar_map *m, uintptr_t addr)
{
	unsigned i;

	for (i = 0; i < m->nregs; i++)
		if (addr >= m->regs[i].start && addr < m->regs[i].end)
			return 1;
	return 0;
}

void bar_map_faulted_in(struct bar_map *m)
{
	m->zapped = 0;
	unprotect_memory(m);
}

/* Forgets [start, end) in our table (pieces are cut or split); caller holds the lock. */
static void forget_range(uintptr_t start, uintptr_t end)
{
	int i;

	for (i = 0; i < g_nbar_maps; i++) {
		struct bar_map *m = &g_bar_maps[i];

		if (m->end <= start || m->start >= end)
			continue;
		if (m->start < start && m->end > end && g_nbar_maps < MAX_BAR_MAPS) {
			struct bar_map tail = *m;

			tail.start = end;
			g_bar_maps[g_nbar_maps++] = tail;
			m->end = start;
		} else if (m->start < start) {
			m->end = start;
		} else if (m->end > end) {
			m->start = end;
		} else {
			g_bar_maps[i--] = g_bar_maps[--g_nbar_maps];
		}
	}
}

static int overlaps_any(uintptr_t start, size_t len)
{
	int i;

	for (i = 0; i < g_nbar_maps; i++)
		if (g_bar_maps[i].start < start + len && g_bar_maps[i].end > start)
			return 1;
	return 0;
}

/* munmap of device mappings in [start, start+len): ours and the engine's (caller holds the lock). */
static void unmapped(uintptr_t start, size_t len)
{
	struct uiommu_resp rs;

	if (!overlaps_any(start, len))
		return;
	forget_range(start, start + len);
	call_simple(UIOMMU_OP_MUNMAP, start, len, &rs);
}

/* The engine's pid (SO_PEERCRED of the connection); 0 if unknown. */
static pid_t engine_pid(void)
{
	struct ucred cred;
	socklen_t n = sizeof(cred);

	if (g_sock < 0 || syscall(SYS_getsockopt, g_sock, SOL_SOCKET, SO_PEERCRED, &cred, &n))
		return 0;
	return cred.pid;
}

/* mmap of engine fd `fd` (caller holds the lock). */
static void *engine_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	struct uiommu_req rq = new_req(UIOMMU_OP_MMAP);
	struct uiommu_resp rs;
	struct {
		uint64_t file_offset;
		uint32_t zaps, nr;
		struct {
			uint64_t start, end;
		} regs[MAX_BAR_REGS];
	} ans;
	char path[64];
	struct bar_map m;
	void *p;
	int mfd, saved;
	pid_t epid = engine_pid();
	unsigned i;

	if (g_nbar_maps == MAX_BAR_MAPS) {
		errno = ENOMEM;
		return MAP_FAILED;
	}
	rq.a[0] = (uint64_t)fd;
	rq.a[1] = (uint64_t)off;
	rq.a[2] = len;
	rq.a[3] = (uint64_t)flags;
	rq.a[4] = (uint64_t)prot;
	memset(&ans, 0, sizeof(ans));
	if (call(&rq, NULL, 0, &rs, &ans, sizeof(ans))) {
		errno = EIO;
		return MAP_FAILED;
	}
	if (rs.ret < 0) {
		errno = rs.err;
		return MAP_FAILED;
	}
	if (ans.nr > MAX_BAR_REGS) {
		errno = ENOMEM; /* more register ranges than we track: refuse rather than expose them */
		return MAP_FAILED;
	}
	snprintf(path, sizeof(path), "/proc/%d/fd/%lld", (int)epid, (long long)rs.ret);
	mfd = real.openat(AT_FDCWD, path, ((prot & PROT_WRITE) ? O_RDWR : O_RDONLY) | O_CLOEXEC);
	if (mfd < 0) {
		errno = ENODEV;
		return MAP_FAILED;
	}
	/* everything starts inaccessible: the first touch of a memory page faults it in */
	p = real_mmap(addr, len, PROT_NONE, (flags & ~MAP_TYPE) | MAP_SHARED, mfd,
		      (off_t)ans.file_offset);
	saved = errno;
	real.close(mfd);
	if (p == MAP_FAILED) {
		errno = saved;
		return MAP_FAILED;
	}
	memset(&m, 0, sizeof(m));
	m.start = (uintptr_t)p;
	m.end = m.start + ((len + (size_t)getpagesize() - 1) & ~((size_t)getpagesize() - 1));
	m.prot = prot;
	m.zapped = 1;
	for (i = 0; i < ans.nr && i < MAX_BAR_REGS; i++) {
		m.regs[i].start = m.start + ans.regs[i].start;
		m.regs[i].end = m.start + ans.regs[i].end;
	}
	m.nregs = i;
	if (flags & MAP_FIXED)
		forget_range(m.start, m.end);
	rq = new_req(UIOMMU_OP_MMAP);
	rq.a[0] = (uint64_t)fd;
	rq.a[1] = (uint64_t)off;
	rq.a[2] = len;
	rq.a[3] = (uint64_t)flags;
	rq.a[4] = (uint64_t)prot;
	rq.a[5] = m.start;
	if (call(&rq, NULL, 0, &rs, NULL, 0) || rs.ret < 0) {
		real_munmap(p, len);
		errno = rs.ret < 0 ? rs.err : EIO;
		return MAP_FAILED;
	}
	g_bar_maps[g_nbar_maps++] = m;
	g_zaps = ans.zaps;
	trap_install();
	return p;
}

EXPORT void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	struct guard g;
	void *p;

	if (!(flags & MAP_ANONYMOUS) && lib_fd(fd)) {
		errno = EBADF;
		return MAP_FAILED;
	}
	if (flags & MAP_FIXED)
		stack_touched((uintptr_t)addr, len);
	if (!(flags & MAP_ANONYMOUS) && bit_test(fd)) {
		enter(&g);
		p = engine_mmap(addr, len, prot, flags, fd, off);
		leave(&g);
	} else {
		p = real_mmap(addr, len, prot, flags, fd, off);
		if (p != MAP_FAILED && (flags & (MAP_FIXED | MAP_FIXED_NOREPLACE)) && g_nbar_maps) {
			enter(&g);
			unmapped((uintptr_t)p, len);
			leave(&g);
		}
	}
	if (flags & MAP_FIXED)
		stack_touched((uintptr_t)addr, len);
	if (p != MAP_FAILED)
		mm_changed();
	return p;
}

EXPORT void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	return mmap(addr, len, prot, flags, fd, off);
}

EXPORT int munmap(void *addr, size_t len)
{
	struct guard g;
	int r;

	stack_touched((uintptr_t)addr, len);
	r = real_munmap(addr, len);
	stack_touched((uintptr_t)addr, len);
	if (!r)
		mm_changed();
	if (!r && g_nbar_maps) {
		enter(&g);
		unmapped((uintptr_t)addr, len);
		leave(&g);
	}
	return r;
}

/* mremap() past the stacks' bookkeeping: a device mapping's rules, the engine told. */
static void *mremap_bar(void *old, size_t old_len, size_t new_len, int flags, void *want)
{
	struct uiommu_req rq;
	struct uiommu_resp rs;
	struct bar_map *m;
	struct guard g;
	void *p;

	if (!g_nbar_maps || !overlaps_any((uintptr_t)old, old_len ? old_len : 1)) {
		p = real_mremap(old, old_len, new_len, flags, want);
		if (p != MAP_FAILED)
			mm_changed();
		return p;
	}
	enter(&g);
	m = bar_map_at((uintptr_t)old);
	if (!m || new_len > old_len || (flags & MREMAP_DONTUNMAP)) {
		leave(&g);
		errno = (flags & MREMAP_DONTUNMAP) ? EINVAL : EFAULT;
		return MAP_FAILED;
	}
	p = real_mremap(old, old_len, new_len, flags, want);
	if (p != MAP_FAILED) {
		struct bar_map moved = *m;
		intptr_t shift = (intptr_t)p - (intptr_t)old;
		unsigned i;

		mm_changed();

		moved.start = (uintptr_t)old + shift;
		moved.end = moved.start + new_len;
		for (i = 0; i < moved.nregs; i++) {
			moved.regs[i].start += shift;
			moved.regs[i].end += shift;
		}
		forget_range((uintptr_t)old, (uintptr_t)old + old_len);
		forget_range(moved.start, moved.end);
		if (g_nbar_maps < MAX_BAR_MAPS)
			g_bar_maps[g_nbar_maps++] = moved;
		rq = new_req(UIOMMU_OP_MREMAP);
		rq.a[0] = (uintptr_t)old;
		rq.a[1] = old_len;
		rq.a[2] = (uintptr_t)p;
		rq.a[3] = new_len;
		call(&rq, NULL, 0, &rs, NULL, 0);
	}
	leave(&g);
	return p;
}

/*
 * mremap of a device mapping: growing it is EFAULT (VM_DONTEXPAND |
 * VM_PFNMAP), MREMAP_DONTUNMAP EINVAL; shrinking or moving works and the
 * engine follows.
 */
EXPORT void *mremap(void *old, size_t old_len, size_t new_len, int flags, ...)
{
	void *want = NULL, *p = MAP_FAILED;
	va_list ap;

	if (flags & MREMAP_FIXED) {
		va_start(ap, flags);
		want = va_arg(ap, void *);
		va_end(ap);
	}
	for (int after = 0; after < 2; after++) {
		stack_touched((uintptr_t)old, old_len);
		if (flags & MREMAP_FIXED)
			stack_touched((uintptr_t)want, new_len);
		if (!after)
			p = mremap_bar(old, old_len, new_len, flags, want);
	}
	return p;
}

/* mprotect over a device mapping: the program's protection is kept; register pages stay PROT_NONE. */
static int mprotect_bar(void *addr, size_t len, int prot)
{
	struct guard g;
	int i, r;

	if (!g_nbar_maps || !overlaps_any((uintptr_t)addr, len)) {
		r = real_mprotect(addr, len, prot);
		if (!r)
			mm_changed();
		return r;
	}
	enter(&g);
	r = real_mprotect(addr, len, PROT_NONE);
	if (!r)
		mm_changed();
	for (i = 0; !r && i < g_nbar_maps; i++) {
		struct bar_map *m = &g_bar_maps[i];

		if (m->start >= (uintptr_t)addr + len || m->end <= (uintptr_t)addr)
			continue;
		m->prot = prot;
		if (!m->zapped)
			unprotect_memory(m);
	}
	leave(&g);
	return r;
}

EXPORT int mprotect(void *addr, size_t len, int prot)
{
	int r;

	stack_touched((uintptr_t)addr, len);
	r = mprotect_bar(addr, len, prot);
	stack_touched((uintptr_t)addr, len);
	return r;
}

/* pkey_mprotect: an mprotect whose pages a thread's PKRU may also make inaccessible. */
EXPORT int pkey_mprotect(void *addr, size_t len, int prot, int pkey)
{
	int r;

	stack_touched((uintptr_t)addr, len);
	r = (int)syscall(SYS_pkey_mprotect, addr, len, prot, pkey);
	stack_touched((uintptr_t)addr, len);
	if (!r)
		mm_changed();
	return r;
}

/* madvise: guard pages (MADV_GUARD_INSTALL) fault as if unmapped, with no change of the maps. */
EXPORT int madvise(void *addr, size_t len, int advice)
{
	int r, guard = advice == MADV_GUARD_INSTALL;

	if (guard)
		stack_touched((uintptr_t)addr, len);
	r = (int)syscall(SYS_madvise, addr, len, advice);
	if (guard)
		stack_touched((uintptr_t)addr, len);
	return r;
}

/*
 * KVM reaches a slot's pages without faulting into this process: the
 * memory pages of device mappings in [start, start+size) come in now (as a
 * first touch would bring them), when the device decodes memory.
 */
static void fault_in_for_kvm(uint64_t start, uint64_t size)
{
	struct uiommu_resp rs;
	struct guard g;
	int i;

	enter(&g);
	for (i = 0; i < g_nbar_maps; i++) {
		struct bar_map *m = &g_bar_maps[i];

		if (m->zapped && m->start < start + size && m->end > start &&
		    call_simple(UIOMMU_OP_MMIO_FAULT, m->start, 0, &rs) == 0)
			bar_map_faulted_in(m);
	}
	leave(&g);
}

int kvm_slot_over_registers(int fd, unsigned long request, void *arg)
{
	uint64_t start, size;
	int i;
	unsigned j;

	(void)fd;
	if (!g_nbar_maps || !arg)
		return 0;
	if ((unsigned int)request == (unsigned int)KVM_SET_USER_MEMORY_REGION) {
		struct kvm_userspace_memory_region *r = arg;

		start = r->userspace_addr;
		size = r->memory_size;
#ifdef KVM_SET_USER_MEMORY_REGION2
	} else if ((unsigned int)request == (unsigned int)KVM_SET_USER_MEMORY_REGION2) {
		struct kvm_userspace_memory_region2 *r = arg;

		start = r->userspace_addr;
		size = r->memory_size;
#endif
	} else {
		return 0;
	}
	for (i = 0; i < g_nbar_maps; i++) {
		for (j = 0; j < g_bar_maps[i].nregs; j++) {
			const struct bar_map *m = &g_bar_maps[i];

			if (m->regs[j].start < start + size && m->regs[j].end > start) {
				fprintf(stderr,
					"uiommu: KVM memory slot at 0x%llx+0x%llx covers trapped "
					"device registers at 0x%lx (a uiommu BAR mapping): KVM cannot "
					"run a guest on them (it would answer EFAULT from KVM_RUN); "
					"map the device without BAR mmap (QEMU: -device "
					"vfio-pci,...,x-no-mmap=on). See docs/device-mmap.md.\n",
					(unsigned long long)start, (unsigned long long)size,
					(unsigned long)m->regs[j].start);
				errno = EFAULT;
				return 1;
			}
		}
	}
	fault_in_for_kvm(start, size);
	return 0;
}
