/*
 * Address-space changes: a counter of the program's mmap, munmap, mremap,
 * mprotect (mmap.c calls mm_changed() after each that succeeds), shmat and
 * shmdt. A request says whether it moved since the previous request
 * (UIOMMU_REQ_MM_CHANGED), so the engine knows when the memory map it read
 * from /proc/<pid>/maps may have changed.
 * Memory libc maps behind these entry points (malloc's own mmap, thread
 * stacks) is not counted: the engine reads the map again before it answers
 * EFAULT, so that only costs a re-read.
 */
#include "preload.h"
#include <sys/shm.h>

static uint64_t g_mm_gen, g_mm_sent;

void mm_changed(void)
{
	__atomic_fetch_add(&g_mm_gen, 1, __ATOMIC_RELEASE);
}

uint16_t mm_changed_since_sent(void)
{
	uint64_t gen = __atomic_load_n(&g_mm_gen, __ATOMIC_ACQUIRE);

	if (gen == g_mm_sent)
		return 0;
	g_mm_sent = gen;
	return UIOMMU_REQ_MM_CHANGED;
}

/* shmat and shmdt go straight to the kernel: libc's are thin wrappers too. */
EXPORT void *shmat(int id, const void *addr, int flags)
{
	void *p = (void *)syscall(SYS_shmat, id, addr, flags);

	if (p != (void *)-1)
		mm_changed();
	return p;
}

EXPORT int shmdt(const void *addr)
{
	int r = syscall(SYS_shmdt, addr);

	if (!r)
		mm_changed();
	return r;
}
