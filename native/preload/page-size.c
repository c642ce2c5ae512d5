/*
 * The host page size programs see: UIOMMU_PAGE_SIZE (the host's `pageSize`,
 * e.g. the 64 KiB of the pseries preset's kernel) instead of the machine's,
 * through getpagesize(), sysconf(_SC_PAGESIZE) and getauxval(AT_PAGESZ).
 * Unset or not a power of two of 4 KiB or more: the real answers.
 */
#include "preload.h"

#include <sys/auxv.h>

/* The emulated page size, 0 for the machine's; read once (racing readers agree). */
static long emulated(void)
{
	static long size = -1;
	const char *s;
	long v;

	if (size < 0) {
		s = getenv(UIOMMU_ENV_PAGE_SIZE);
		v = s ? atol(s) : 0;
		size = v >= 4096 && !(v & (v - 1)) ? v : 0;
	}
	return size;
}

EXPORT int getpagesize(void)
{
	static int (*next)(void);

	if (emulated())
		return (int)emulated();
	if (!next)
		next = dlsym(RTLD_NEXT, "getpagesize");
	return next();
}

EXPORT long sysconf(int name)
{
	static long (*next)(int);

	if (name == _SC_PAGESIZE && emulated())
		return emulated();
	if (!next)
		next = dlsym(RTLD_NEXT, "sysconf");
	return next(name);
}

EXPORT unsigned long getauxval(unsigned long type)
{
	static unsigned long (*next)(unsigned long);

	if (type == AT_PAGESZ && emulated())
		return (unsigned long)emulated();
	if (!next)
		next = dlsym(RTLD_NEXT, "getauxval");
	return next(type);
}
