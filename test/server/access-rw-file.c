/*
 * IOMMU_TEST_CMD ACCESS_RW on memfd pages, in a real process under `uiommu
 * run --host mock --kernel 7.2`: the engine copies through its own mapping
 * of the file (native/file-map.c). Reads and writes of 1 to 64 bytes at
 * offsets across a page boundary (and one of 300), through an access that
 * pins and one that does not, give the bytes the program sees in its
 * mapping, and a write from an unreadable buffer is EFAULT: on a memfd
 * whose seals are final (mapped shared and writable by the engine) and on
 * one sealed against shrinking whose seals may still change (mapped
 * read-only: writes go through the file). Once the program truncates its
 * memfd behind the engine's back (nothing pinned), ACCESS_RW past the new
 * end is EFAULT (GUP of a page past end-of-file), before it still right,
 * within the last page past the end copies to the page as Linux does, and
 * the engine goes on serving. With pages pinned, then the memfd truncated
 * or new memory mapped at the same address, ACCESS_RW goes through the
 * program's current mapping (not the pinned pages) unless SLOW_PATH asks
 * for several pages (truncate_after_pin, remap_after_pin). Linux 7.2 (the
 * reference kernel) answers every check alike; with the argument
 * --pinned-outlive-truncate it also passes two checks the engine cannot
 * (see truncate_after_pin). Each check prints "ok <name>" or "FAIL <name>: ...".
 *
 * Build: cc -I examples -I native -I test/server -o access-rw-file test/server/access-rw-file.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "iommufd-test.h"

#define PAGE 4096
#define PAGES 4
#define IOVA 0x100000

/* ACCESS_RW of `len` bytes at `iova` between `tmp` and the IOVA with `flags`; its errno (0: success). */
static int rw_flags(int iommufd, int access, uint64_t iova, void *tmp, size_t len, uint32_t flags)
{
	struct iommu_test_cmd cmd = { .size = sizeof(cmd), .op = IOMMU_TEST_OP_ACCESS_RW };

	cmd.id = (uint32_t)access;
	cmd.access_rw.iova = iova;
	cmd.access_rw.length = len;
	cmd.access_rw.uptr = (uintptr_t)tmp;
	cmd.access_rw.flags = flags;
	return ioctl(iommufd, IOMMU_TEST_CMD, &cmd) ? errno : 0;
}

/* ACCESS_RW of `len` bytes at `iova` between `tmp` and the IOVA; its errno (0: success). */
static int access_rw(int iommufd, int access, uint64_t iova, void *tmp, size_t len, int write)
{
	return rw_flags(iommufd, access, iova, tmp, len, write ? MOCK_ACCESS_RW_WRITE : 0);
}

/* Whether `n` bytes at `p` are all `c`. */
static int all(const uint8_t *p, size_t n, uint8_t c)
{
	while (n--)
		if (*p++ != c)
			return 0;
	return 1;
}

#define SLOW MOCK_ACCESS_RW_SLOW_PATH


/* A new access on `ioas`; with `pin`, one that pins all PAGES pages at IOVA. */
static int new_access(int iommufd, uint32_t ioas, int pin)
{
	struct iommu_test_cmd cmd = { .size = sizeof(cmd), .op = IOMMU_TEST_OP_CREATE_ACCESS };
	int ret;

	cmd.id = ioas;
	cmd.create_access.flags = pin ? MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES : 0;
	ret = ioctl(iommufd, IOMMU_TEST_CMD, &cmd);
	check(pin ? "CREATE_ACCESS pinning" : "CREATE_ACCESS", ret == 0, ret);
	if (!pin)
		return (int)cmd.create_access.out_access_fd;
	pin = (int)cmd.create_access.out_access_fd;
	cmd = (struct iommu_test_cmd){ .size = sizeof(cmd), .op = IOMMU_TEST_OP_ACCESS_PAGES };
	cmd.id = (uint32_t)pin;
	cmd.access_pages.iova = IOVA;
	cmd.access_pages.length = PAGES * PAGE;
	ret = ioctl(iommufd, IOMMU_TEST_CMD, &cmd);
	check("ACCESS_PAGES", ret == 0, ret);
	return pin;
}

/*
 * Every length 1..64 at offsets around the first page boundary, written then
 * read back through `access`, against the program's own view in `buf`.
 */
static void round_trips(const char *name, int iommufd, int access, uint8_t *buf)
{
	uint8_t tmp[64];
	int bad = 0, err = 0;

	for (size_t off = PAGE - 70; off < PAGE + 70 && !bad; off += 3) {
		for (size_t len = 1; len <= sizeof(tmp) && !bad; len++) {
			for (size_t i = 0; i < len; i++)
				tmp[i] = (uint8_t)rand();
			err = access_rw(iommufd, access, IOVA + off, tmp, len, 1);
			bad = err || memcmp(buf + off, tmp, len);
			for (size_t i = 0; i < len && !bad; i++)
				buf[off + i] = (uint8_t)rand();
			err = bad ? err : access_rw(iommufd, access, IOVA + off, tmp, len, 0);
			bad = bad || err || memcmp(buf + off, tmp, len);
		}
	}
	errno = err;
	check(name, !bad, -!!bad);
}

/* A memfd of PAGES pages mapped shared at `*buf`, mapped at IOVA in a new IOAS; the IOAS id. */
static uint32_t map_memfd(int iommufd, int mfd, uint8_t **buf)
{
	struct iommu_ioas_alloc alloc = { .size = sizeof(alloc) };
	struct iommu_ioas_map map = { .size = sizeof(map) };
	int ret;

	ret = ftruncate(mfd, PAGES * PAGE);
	check("ftruncate", ret == 0, ret);
	*buf = mmap(NULL, PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	ret = ioctl(iommufd, IOMMU_IOAS_ALLOC, &alloc);
	check("IOAS_ALLOC", ret == 0, ret);
	map.flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE;
	map.ioas_id = alloc.out_ioas_id;
	map.user_va = (uintptr_t)*buf;
	map.length = PAGES * PAGE;
	map.iova = IOVA;
	ret = ioctl(iommufd, IOMMU_IOAS_MAP, &map);
	check("IOAS_MAP", ret == 0, ret);
	return alloc.out_ioas_id;
}

/*
 * Pages pinned, then the program truncates its memfd. Without SLOW_PATH
 * Linux copies through the program's mapping (EFAULT past the end, new
 * zeros once grown again); SLOW_PATH within one page looks the page up in
 * the mapping as well (a write across the end writes the bytes before it,
 * as copy_to_user does); SLOW_PATH across pages copies the pinned pages,
 * which keep their bytes: checked only with `outlive` (the engine's pinned
 * page of a shared file is the file's page at its offset, whatever the
 * file's size: a known limit, src/host/remote-mm.ts).
 */
static void truncate_after_pin(int iommufd, int outlive)
{
	uint8_t *buf, tmp[8];
	int mfd = memfd_create("access-rw-pinned", 0), access;
	uint32_t ioas = map_memfd(iommufd, mfd, &buf);

	memset(buf, 0x5a, PAGES * PAGE);
	access = new_access(iommufd, ioas, 0);
	new_access(iommufd, ioas, 1);
	check("pinned, ftruncate to 2 pages", ftruncate(mfd, 2 * PAGE) == 0, -1);
	errno = access_rw(iommufd, access, IOVA + 3 * PAGE, tmp, 8, 0);
	check("pinned, truncated: a read past the end: EFAULT", errno == EFAULT, -1);
	errno = access_rw(iommufd, access, IOVA + 3 * PAGE, tmp, 8, 1);
	check("pinned, truncated: a write past the end: EFAULT", errno == EFAULT, -1);
	memset(tmp, 0x66, sizeof(tmp));
	errno = access_rw(iommufd, access, IOVA + 2 * PAGE - 4, tmp, 8, 1);
	check("pinned, truncated: a write across the end: EFAULT, the bytes before it written",
	      errno == EFAULT && all(buf + 2 * PAGE - 4, 4, 0x66), -1);
	errno = rw_flags(iommufd, access, IOVA + 3 * PAGE, tmp, 8, SLOW);
	check("pinned, truncated: a SLOW_PATH read in one page past the end: EFAULT",
	      errno == EFAULT, -1);
	memset(tmp, 0, sizeof(tmp));
	errno = rw_flags(iommufd, access, IOVA + 3 * PAGE - 4, tmp, 8, SLOW);
	if (outlive)
		check("pinned, truncated: a SLOW_PATH read across pages: the pinned bytes",
		      !errno && all(tmp, 8, 0x5a), -1);
	check("pinned, ftruncate back to 4 pages", ftruncate(mfd, PAGES * PAGE) == 0, -1);
	memset(tmp, 0xff, sizeof(tmp));
	errno = access_rw(iommufd, access, IOVA + 3 * PAGE - 4, tmp, 8, 0);
	check("pinned, grown again: a read gives the mapping's new zeros", !errno && all(tmp, 8, 0),
	      -1);
	memset(tmp, 0xff, sizeof(tmp));
	errno = rw_flags(iommufd, access, IOVA + 3 * PAGE, tmp, 8, SLOW);
	check("pinned, grown again: a SLOW_PATH read in one page: the mapping's zeros",
	      !errno && all(tmp, 8, 0), -1);
	memset(tmp, 0, sizeof(tmp));
	errno = rw_flags(iommufd, access, IOVA + 3 * PAGE - 4, tmp, 8, SLOW);
	if (outlive)
		check("pinned, grown again: a SLOW_PATH read across pages: still the pinned bytes",
		      !errno && all(tmp, 8, 0x5a), -1);
}

/*
 * Pages of shared anonymous memory pinned, then new shared anonymous
 * memory mapped over them at the same address: without SLOW_PATH, and with
 * it within one page, Linux copies to and from the new pages; SLOW_PATH
 * across pages, the pinned old ones.
 */
static void remap_after_pin(int iommufd)
{
	struct iommu_ioas_alloc alloc = { .size = sizeof(alloc) };
	struct iommu_ioas_map map = { .size = sizeof(map) };
	uint8_t *buf, tmp[8];
	int ret, access;

	buf = mmap(NULL, PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	memset(buf, 0x11, PAGES * PAGE);
	ret = ioctl(iommufd, IOMMU_IOAS_ALLOC, &alloc);
	check("remap: IOAS_ALLOC", ret == 0, ret);
	map.flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE;
	map.ioas_id = alloc.out_ioas_id;
	map.user_va = (uintptr_t)buf;
	map.length = PAGES * PAGE;
	map.iova = IOVA;
	ret = ioctl(iommufd, IOMMU_IOAS_MAP, &map);
	check("remap: IOAS_MAP", ret == 0, ret);
	access = new_access(iommufd, alloc.out_ioas_id, 0);
	new_access(iommufd, alloc.out_ioas_id, 1);
	errno = 0;
	check("remap: new memory at the same address",
	      mmap(buf, PAGES * PAGE, PROT_READ | PROT_WRITE,
		   MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == buf, -1);
	memset(buf, 0x22, PAGES * PAGE);
	memset(tmp, 0, sizeof(tmp));
	errno = access_rw(iommufd, access, IOVA + PAGE - 4, tmp, 8, 0);
	check("remapped: a read gives the new bytes", !errno && all(tmp, 8, 0x22), -1);
	memset(tmp, 0, sizeof(tmp));
	errno = rw_flags(iommufd, access, IOVA + 16, tmp, 8, SLOW);
	check("remapped: a SLOW_PATH read in one page gives the new bytes",
	      !errno && all(tmp, 8, 0x22), -1);
	memset(tmp, 0, sizeof(tmp));
	errno = rw_flags(iommufd, access, IOVA + PAGE - 4, tmp, 8, SLOW);
	check("remapped: a SLOW_PATH read across pages gives the pinned old bytes",
	      !errno && all(tmp, 8, 0x11), -1);
	memset(tmp, 0x33, sizeof(tmp));
	errno = access_rw(iommufd, access, IOVA + 2 * PAGE - 4, tmp, 8, 1);
	check("remapped: a write lands in the new memory",
	      !errno && all(buf + 2 * PAGE - 4, 8, 0x33), -1);
	memset(tmp, 0x44, sizeof(tmp));
	errno = rw_flags(iommufd, access, IOVA + 3 * PAGE - 4, tmp, 8, MOCK_ACCESS_RW_WRITE | SLOW);
	memset(tmp, 0, sizeof(tmp));
	errno = errno ? errno : rw_flags(iommufd, access, IOVA + 3 * PAGE - 4, tmp, 8, SLOW);
	check("remapped: a SLOW_PATH write across pages lands in the pinned pages only",
	      !errno && all(tmp, 8, 0x44) && all(buf + 3 * PAGE - 4, 8, 0x22), -1);
}

int main(int argc, char **argv)
{
	int iommufd, mfd, sealed, plain, pinned;
	uint8_t *buf, *sbuf, tmp[16];
	uint32_t ioas;

	setvbuf(stdout, NULL, _IOLBF, 0);
	srand(7);
	iommufd = open("/dev/iommu", O_RDWR);
	check("open /dev/iommu", iommufd >= 0, iommufd);

	/* seals final (no MFD_ALLOW_SEALING): the engine maps it shared and writable */
	mfd = memfd_create("access-rw", 0);
	ioas = map_memfd(iommufd, mfd, &buf);
	plain = new_access(iommufd, ioas, 0);
	pinned = new_access(iommufd, ioas, 1);
	round_trips("round trips, unpinned", iommufd, plain, buf);
	round_trips("round trips, pinned", iommufd, pinned, buf);
	errno = access_rw(iommufd, plain, IOVA, (void *)8, 8, 1);
	check("a write from an unreadable buffer: EFAULT", errno == EFAULT, -1);
	{
		uint8_t big[300];

		for (size_t i = 0; i < sizeof(big); i++)
			big[i] = (uint8_t)(i * 7 + 1);
		errno = access_rw(iommufd, plain, IOVA + PAGE - 150, big, sizeof(big), 1);
		check("a write of 300 bytes", !errno && !memcmp(buf + PAGE - 150, big, sizeof(big)),
		      -1);
	}

	/* sealed against shrinking, F_SEAL_WRITE still possible: mapped read-only */
	sealed = memfd_create("access-rw-sealed", MFD_ALLOW_SEALING);
	ioas = map_memfd(iommufd, sealed, &sbuf);
	errno = 0;
	check("F_SEAL_SHRINK", fcntl(sealed, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) == 0, -1);
	round_trips("round trips, sealed memfd, unpinned", iommufd, new_access(iommufd, ioas, 0),
		    sbuf);
	round_trips("round trips, sealed memfd, pinned", iommufd, new_access(iommufd, ioas, 1),
		    sbuf);

	/* the program unpins, then truncates its memfd behind the engine's back */
	check("close the pinning access", close(pinned) == 0, -1);
	memset(buf, 0x33, 2 * PAGE);
	check("ftruncate to 2 pages", ftruncate(mfd, 2 * PAGE) == 0, -1);
	errno = access_rw(iommufd, plain, IOVA + 3 * PAGE, tmp, 8, 0);
	check("a read past the new end: EFAULT", errno == EFAULT, -1);
	errno = access_rw(iommufd, plain, IOVA + 2 * PAGE, tmp, 8, 1);
	check("a write past the new end: EFAULT", errno == EFAULT, -1);
	errno = access_rw(iommufd, plain, IOVA + 2 * PAGE - 4, tmp, 8, 0);
	check("a read across the new end: EFAULT", errno == EFAULT, -1);
	memset(tmp, 0, sizeof(tmp));
	errno = access_rw(iommufd, plain, IOVA + 2 * PAGE - 16, tmp, 16, 0);
	check("a read before the new end", !errno && tmp[0] == 0x33 && tmp[15] == 0x33, -1);
	/* Linux copies to and from the page itself: bytes past the end within its page stay */
	check("ftruncate to 2.5 pages", ftruncate(mfd, 2 * PAGE + PAGE / 2) == 0, -1);
	memset(tmp, 0x77, sizeof(tmp));
	errno = access_rw(iommufd, plain, IOVA + 2 * PAGE + PAGE / 2 + 0x100, tmp, 16, 1);
	check("a write past the end within its page", !errno, -1);
	memset(tmp, 0xff, sizeof(tmp));
	errno = access_rw(iommufd, plain, IOVA + 2 * PAGE + PAGE / 2 + 0xf8, tmp, 16, 0);
	check("is kept in the page",
	      !errno && !tmp[0] && !tmp[7] && tmp[8] == 0x77 && tmp[15] == 0x77, -1);
	check("ftruncate back to 4 pages", ftruncate(mfd, PAGES * PAGE) == 0, -1);
	memset(tmp, 0xff, sizeof(tmp));
	errno = access_rw(iommufd, plain, IOVA + 3 * PAGE, tmp, 16, 0);
	check("the page past the old end reads as new zeros", !errno && !tmp[0] && !tmp[15], -1);
	round_trips("round trips after the truncate, unpinned", iommufd, plain, buf);
	truncate_after_pin(iommufd, argc > 1 && !strcmp(argv[1], "--pinned-outlive-truncate"));
	remap_after_pin(iommufd);
	return failures ? 1 : 0;
}
