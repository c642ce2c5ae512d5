/*
 * The address space: mmap, munmap, mremap, mprotect, shmat and shmdt pass
 * to the kernel and bump g_mm_gen, which every request carries (a5) so the
 * engine knows when the memory map it read from /proc/<pid>/maps may have
 * changed. Memory libc maps behind these entry points (malloc's own mmap,
 * thread stacks) is not counted: the engine reads the map again before it
 * answers EFAULT, so that only costs a re-read. The calls go straight to
 * the kernel: they may come before the library has found libc's symbols.
 */
#include "preload.h"
#include <sys/shm.h>

uint64_t g_mm_gen = 1;

static void changed(void)
{
	__atomic_fetch_add(&g_mm_gen, 1, __ATOMIC_RELEASE);
}

static void *do_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	void *p;

	/* the library's socket is no file of the program's (MAP_ANONYMOUS ignores fd) */
	if (!(flags & MAP_ANONYMOUS) && lib_fd(fd)) {
		errno = EBADF;
		return MAP_FAILED;
	}
	p = (void *)syscall(SYS_mmap, addr, len, prot, flags, fd, off);
	if (p != MAP_FAILED)
		changed();
	return p;
}

EXPORT void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	return do_mmap(addr, len, prot, flags, fd, off);
}

EXPORT void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off64_t off)
{
	return do_mmap(addr, len, prot, flags, fd, off);
}

EXPORT int munmap(void *addr, size_t len)
{
	int r = syscall(SYS_munmap, addr, len);

	if (!r)
		changed();
	return r;
}

EXPORT void *mremap(void *old, size_t old_len, size_t new_len, int flags, ...)
{
	va_list ap;
	void *new_addr, *p;

	va_start(ap, flags);
	new_addr = (flags & MREMAP_FIXED) ? va_arg(ap, void *) : NULL;
	va_end(ap);
	p = (void *)syscall(SYS_mremap, old, old_len, new_len, flags, new_addr);
	if (p != MAP_FAILED)
		changed();
	return p;
}

EXPORT int mprotect(void *addr, size_t len, int prot)
{
	int r = syscall(SYS_mprotect, addr, len, prot);

	if (!r)
		changed();
	return r;
}

EXPORT void *shmat(int id, const void *addr, int flags)
{
	void *p = (void *)syscall(SYS_shmat, id, addr, flags);

	if (p != (void *)-1)
		changed();
	return p;
}

EXPORT int shmdt(const void *addr)
{
	int r = syscall(SYS_shmdt, addr);

	if (!r)
		changed();
	return r;
}
