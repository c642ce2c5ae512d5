/*
 * A shared library that opens /dev/iommu in its constructor, as libvfn
 * does, and a main that reports what it got (built with -DEARLY_MAIN and
 * linked against the library). The preload library must already work then.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/ioctl.h>

#ifdef EARLY_MAIN
extern int early_fd, early_errno;

int main(void)
{
	printf("early_fd=%d\nearly_errno=%d\n", early_fd, early_errno);
	printf("early_ioctl=%d\n", ioctl(early_fd, 0x3b80UL, 0x5eedUL));
	return 0;
}
#else
int early_fd = -1, early_errno;

__attribute__((constructor(101))) static void early(void)
{
	early_fd = open("/dev/iommu", O_RDWR);
	early_errno = early_fd < 0 ? errno : 0;
}
#endif
