/*
 * The preload library's routing of the emulated /sys and /dev trees
 * (docs/engine-protocol.md, *Paths*): what an emulated device's folder (or
 * another folder the emulated host owns) lacks does not exist, even where
 * the host has a file of that name; the xattr family answers as sysfs and
 * devtmpfs do (root stores a trusted. attribute on sysfs). Prints one "ok" line per check.
 */
#define _GNU_SOURCE
#include <sys/stat.h>
#include <sys/xattr.h>

#include "example-common.h"

#define DEV "/sys/bus/pci/devices/0000:00:02.0"

static void missing(const char *path)
{
	struct stat st;

	errno = 0;
	CHECK(stat(path, &st) < 0 && errno == ENOENT, "stat(%s): %s", path, strerrorname_np(errno));
	CHECK(open(path, O_RDONLY) < 0 && errno == ENOENT, "open(%s): %s", path,
	      strerrorname_np(errno));
	CHECK(access(path, F_OK) < 0 && errno == ENOENT, "access(%s)", path);
	CHECK(lgetxattr(path, "security.selinux", NULL, 0) < 0 && errno == ENOENT,
	      "lgetxattr(%s): %s", path, strerrorname_np(errno));
	ok("%s: ENOENT (stat, open, access, lgetxattr)", path);
}

static void xattr_fails(const char *path, const char *name, int follow, int want)
{
	ssize_t r = follow ? getxattr(path, name, NULL, 0) : lgetxattr(path, name, NULL, 0);

	CHECK(r < 0 && errno == want, "%sgetxattr(%s, %s) = %zd %s, want %s", follow ? "" : "l",
	      path, name, r, strerrorname_np(errno), strerrorname_np(want));
	ok("%sgetxattr(%s, %s): %s", follow ? "" : "l", path, name, strerrorname_np(want));
}

int main(void)
{
	/* the host's files behind an emulated device or a missing host device never show */
	missing(DEV "/broken_parity_status");
	missing(DEV "/modalias");
	missing("/sys/bus/pci/devices/0000:00:01.0");
	missing("/sys/devices/pci0000:00/0000:00:01.0/vendor");
	missing("/sys/kernel/iommu_groups/999");
	missing("/sys/module/vfio_iommu_type1"); /* the compat container: type1 is not loaded */
	int fd = open_or_die(DEV "/vendor", O_RDONLY);
	close(fd);
	ok("%s/vendor opens", DEV);

	/* sysfs: LSM/trusted/user names ENODATA, ACLs EOPNOTSUPP, nothing listed, no setting */
	xattr_fails(DEV, "security.selinux", 0, ENODATA);
	xattr_fails(DEV "/vendor", "user.mime_type", 1, ENODATA);
	xattr_fails(DEV, "system.posix_acl_access", 0, EOPNOTSUPP);
	xattr_fails(DEV "/vendor", "system.posix_acl_access", 1, EOPNOTSUPP);
	char list[64];
	CHECK(llistxattr(DEV, list, sizeof(list)) == 0 && listxattr(DEV "/vendor", NULL, 0) == 0,
	      "listxattr of a sysfs entry is empty");
	ok("llistxattr/listxattr of sysfs entries: 0");
	CHECK(lsetxattr(DEV "/vendor", "user.x", "1", 1, 0) < 0 && errno == EOPNOTSUPP,
	      "lsetxattr(user.x): %s", strerrorname_np(errno));
	ok("lsetxattr(user.x) on sysfs: EOPNOTSUPP");
	/* root may store a trusted. attribute on sysfs, as on Linux (EPERM without CAP_SYS_ADMIN) */
	char v[8] = { 0 };
	if (lsetxattr(DEV "/vendor", "trusted.uiommu", "7", 1, 0) < 0) {
		CHECK(errno == EPERM, "lsetxattr(trusted.): %s", strerrorname_np(errno));
		ok("trusted. on sysfs without CAP_SYS_ADMIN: EPERM");
		xattr_fails(DEV "/vendor", "trusted.uiommu", 0, ENODATA);
	} else {
		CHECK(lgetxattr(DEV "/vendor", "trusted.uiommu", v, sizeof(v)) == 1 && v[0] == '7',
		      "lgetxattr(trusted.) after setting it");
		CHECK(llistxattr(DEV "/vendor", list, sizeof(list)) ==
				      (ssize_t)sizeof("trusted.uiommu") &&
			      !strcmp(list, "trusted.uiommu"),
		      "llistxattr shows the stored name");
		CHECK(lremovexattr(DEV "/vendor", "trusted.uiommu") == 0, "lremovexattr: %s",
		      strerrorname_np(errno));
		xattr_fails(DEV "/vendor", "trusted.uiommu", 0, ENODATA);
		ok("trusted. on sysfs: set, read back, listed, removed");
	}

	/* devtmpfs: ACL names ENODATA too; an engine fd is such a node */
	xattr_fails("/dev/vfio/vfio", "system.posix_acl_access", 1, ENODATA);
	xattr_fails("/dev/iommu", "security.selinux", 0, ENODATA);
	xattr_fails("/dev/vfio/vfio", "os2.x", 1, EOPNOTSUPP);
	int c = open_or_die("/dev/vfio/vfio", O_RDWR);
	CHECK(fgetxattr(c, "system.posix_acl_access", NULL, 0) < 0 && errno == ENODATA,
	      "fgetxattr(engine fd): %s", strerrorname_np(errno));
	CHECK(flistxattr(c, list, sizeof(list)) == 0, "flistxattr(engine fd)");
	ok("fgetxattr/flistxattr of an engine fd: ENODATA, 0");
	close(c);
	ok("done");
	return 0;
}
