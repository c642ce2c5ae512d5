/*
 * A client for the preload library's tests: each scenario (argv[1]) makes
 * ordinary libc calls and prints "key=value" lines; test/native/
 * preload.test.ts runs it under LD_PRELOAD against a fake engine and checks
 * both the printed results and the requests the engine saw.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/kvm.h>

/* `request & 0xffff` is what the library matches; the fake engine answers by it too. */
#define REQ_ECHO 0x3b80UL	   /* fake: ret = arg & 0xffffff */
#define REQ_ENOTTY 0x3b81UL	   /* fake: -1/ENOTTY */
#define REQ_DROP 0x3bffUL	   /* fake: drops the connection */
#define REQ_GET_DEVICE_FD 0x3b6aUL /* fake: installs the spare */
#define REQ_FAULT_ALLOC 0x3b8eUL   /* fake: installs the spare */
#define REQ_VEVENTQ_ALLOC 0x3b93UL /* fake: installs the spare */
#define REQ_TEST_CMD 0x3ba0UL	   /* fake: ret 0, no new file */
#define REQ_FEATURE 0x3b75UL	   /* fake: ret 0, no new file */
#define PPC_IO 0x20000000UL	   /* _IO() direction bits under the powerpc encoding */

static void out(const char *key, long value)
{
	printf("%s=%ld\n", key, value);
}

static void outs(const char *key, const char *value)
{
	printf("%s=%s\n", key, value);
}

/* The lowest free fd, as the kernel would hand out next. */
static int lowest_free(void)
{
	int fd = dup(0);

	close(fd);
	return fd;
}

static long ioctl_errno(int fd, unsigned long req, unsigned long arg)
{
	errno = 0;
	return ioctl(fd, req, arg) < 0 ? -errno : 0;
}

static int scenario_fds(void)
{
	char buf[64];
	struct stat st;
	struct pollfd pfd;
	int fd, fd2, low, spare, d;
	volatile int rdwr = O_RDWR;
	volatile size_t cnt = 5;

	low = lowest_free();
	out("expect_fd", low);
	errno = 4321;
	fd = open("/dev/iommu", O_RDWR);
	out("fd", fd);
	out("open_errno_kept", errno);
	out("fd_cloexec", fcntl(fd, F_GETFD) & FD_CLOEXEC);
	pfd = (struct pollfd){ .fd = fd, .events = POLLIN | POLLOUT };
	out("poll", poll(&pfd, 1, 0));
	out("revents", pfd.revents);

	errno = 0;
	out("enoent_ret", open("/dev/vfio/99", O_RDWR));
	out("enoent_errno", errno);
	out("after_enoent_free", lowest_free());

	fd2 = open("/dev/iommu", O_RDWR | O_CLOEXEC);
	out("fd2", fd2);
	out("fd2_cloexec", fcntl(fd2, F_GETFD) & FD_CLOEXEC);

	/* dup family */
	d = dup(fd);
	out("dup", d);
	out("dup2", dup2(fd, 30));
	out("dupfd_cloexec", fcntl(fd, F_DUPFD_CLOEXEC, 40));
	out("dupfd_cloexec_flag", fcntl(40, F_GETFD) & FD_CLOEXEC);
	out("dup2_onto_engine", dup2(0, fd2));
	out("dup2_bad_old", dup2(12345, d) < 0 ? -errno : 0);
	out("ioctl_after_dup2_onto", ioctl_errno(fd2, REQ_ECHO, 5));
	out("close_dup", close(d));
	out("close_30", close(30));
	out("close_40", close(40));
	close(fd2);

	/* ioctl forwarding and errno */
	errno = 1234;
	out("ioctl_echo", ioctl(fd, REQ_ECHO, 0x123456UL));
	out("errno_kept", errno);
	out("ioctl_enotty", ioctl_errno(fd, REQ_ENOTTY, 0));
	out("fioclex", ioctl(fd, FIOCLEX));
	out("fioclex_flag", fcntl(fd, F_GETFD) & FD_CLOEXEC);
	out("fionclex", ioctl(fd, FIONCLEX));
	out("fionclex_flag", fcntl(fd, F_GETFD) & FD_CLOEXEC);

	/* the argument struct travels with the request: the rest of its page, at most 512 bytes */
	{
		long pg = sysconf(_SC_PAGESIZE);
		uint8_t *two = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE,
				    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		uint32_t head[2] = { 16, 0x11223344 };

		memset(two, 0x5a, 2 * pg);
		memcpy(two, head, sizeof(head));
		out("arg_page_start", ioctl(fd, REQ_ECHO, two));
		memcpy(two + pg - 8, head, sizeof(head));
		out("arg_across", ioctl(fd, REQ_ECHO, two + pg - 8));
		mprotect(two + pg, pg, PROT_NONE);
		out("arg_cut", ioctl(fd, REQ_ECHO, two + pg - 8));
		munmap(two, 2 * pg);
	}

	/* the spare fd of the file-creating ioctls */
	spare = lowest_free();
	out("spare_expect", spare);
	out("fault_alloc", ioctl(fd, REQ_FAULT_ALLOC, 0x1000UL));
	out("spare_open", fcntl(spare, F_GETFD));
	pfd = (struct pollfd){ .fd = spare, .events = POLLIN | POLLOUT };
	poll(&pfd, 1, 0);
	out("spare_revents", pfd.revents);
	out("spare_ioctl", ioctl(spare, REQ_ECHO, 7));
	out("fstat_anon", fstat(spare, &st));
	out("fstat_anon_chr", S_ISCHR(st.st_mode));
	out("close_spare", close(spare));

	{
		/* IOMMU_TEST_CMD: a spare only for the ops that install a file (op at offset 4) */
		uint32_t cmd[18] = { sizeof(cmd), 5 /* CREATE_ACCESS */ };

		out("test_cmd", ioctl(fd, REQ_TEST_CMD, cmd));
		out("test_cmd_spare_open", fcntl(spare, F_GETFD));
		cmd[1] = 8; /* ACCESS_RW */
		out("test_cmd_rw", ioctl(fd, REQ_TEST_CMD, cmd));
		out("test_cmd_unreadable", ioctl(fd, REQ_TEST_CMD, 0x2000UL));
	}
	{
		/* VFIO_DEVICE_FEATURE: a spare only for a GET of DMA_BUF (11; GET is bit 16) */
		uint32_t feat[8] = { sizeof(feat), (1u << 16) | 11 };

		out("feature_dmabuf", ioctl(fd, REQ_FEATURE, feat));
		feat[1] = (1u << 18) | 11; /* PROBE */
		out("feature_probe", ioctl(fd, REQ_FEATURE, feat));
		feat[1] = (1u << 16) | 0; /* GET of PCI_VF_TOKEN */
		out("feature_other", ioctl(fd, REQ_FEATURE, feat));
	}
	out("ppc_fault_alloc", ioctl(fd, PPC_IO | REQ_FAULT_ALLOC, 0x3000UL));
	out("ppc_spare_engine", ioctl(spare, REQ_ECHO, 9));
	close(spare);
	out("get_device_fd", ioctl(fd, REQ_GET_DEVICE_FD, 0x4000UL));
	close(spare);
	out("veventq_alloc", ioctl(fd, REQ_VEVENTQ_ALLOC, 0x5000UL));
	close(spare);

	/* read/write/pread/pwrite */
	out("read", read(fd, buf, sizeof(buf)));
	out("write", write(fd, "abcdefg", 7));
	out("pread", pread(fd, buf, 16, 1L << 40));
	out("pwrite", pwrite(fd, buf, 8, 0x77));

	/* fstat of a device fd */
	out("fstat", fstat(fd, &st));
	out("fstat_chr", S_ISCHR(st.st_mode));
	out("fstat_perm", st.st_mode & 07777);
	out("fstat_major", major(st.st_rdev));
	out("fstat_minor", minor(st.st_rdev));

	out("close", close(fd));
	out("close_again", close(fd) < 0 ? -errno : 0);

	/* run-time flags and sizes: the fortified build calls __open_2, __read_chk, __pread_chk */
	fd = open("/dev/iommu", rdwr);
	out("open_var", fd);
	out("read_var", read(fd, buf, cnt));
	out("pread_var", pread(fd, buf, cnt, 3));
	close(fd);
	out("final_free", lowest_free());
	return 0;
}

static int scenario_paths(void)
{
	char buf[256];
	struct stat st;
	struct statx stx;
	struct dirent *e;
	struct dirent **list;
	DIR *dir;
	FILE *f;
	ssize_t n;
	int fd, i, count;
	const char *dev = "/sys/bus/pci/devices/0000:00:01.0";
	char path[256];
	int (*xstat)(int, const char *, struct stat *);
	char *rp, resolved[PATH_MAX];

	out("stat", stat("/dev/iommu", &st));
	out("stat_chr", S_ISCHR(st.st_mode));
	out("stat_perm", st.st_mode & 07777);
	out("stat_rdev", st.st_rdev == makedev(10, 59));
	out("lstat", lstat("/dev//iommu", &st));
	out("lstat_rdev", st.st_rdev == makedev(10, 59));
	out("statx", statx(AT_FDCWD, "/dev/iommu", 0, STATX_BASIC_STATS, &stx));
	out("statx_chr", S_ISCHR(stx.stx_mode));
	out("statx_rdev", stx.stx_rdev_major * 1000 + stx.stx_rdev_minor);
	xstat = (int (*)(int, const char *, struct stat *))dlsym(RTLD_DEFAULT, "__xstat");
	out("xstat", xstat ? xstat(1, "/dev/iommu", &st) : -999);
	out("xstat_rdev", st.st_rdev == makedev(10, 59));
	errno = 0;
	out("stat_missing", stat("/dev/vfio/99", &st) < 0 ? -errno : 0);
	out("access", access("/dev/iommu", F_OK));
	out("access_missing", access("/dev/vfio/99", F_OK) < 0 ? -errno : 0);
	out("stat_vfio_dir", stat("/dev/vfio", &st));
	out("stat_vfio_isdir", S_ISDIR(st.st_mode));
	out("stat_devices_isdir", stat("/dev/vfio/devices", &st) == 0 && S_ISDIR(st.st_mode));
	out("stat_null", stat("/dev/null", &st));
	out("stat_null_rdev", st.st_rdev == makedev(1, 3));

	snprintf(path, sizeof(path), "%s/iommu_group", dev);
	n = readlink(path, buf, sizeof(buf) - 1);
	buf[n < 0 ? 0 : n] = 0;
	outs("readlink", buf);
	rp = realpath(path, NULL);
	outs("realpath", rp ? rp : "NULL");
	free(rp);
	rp = realpath(dev, resolved);
	outs("realpath_dev", rp ? rp : "NULL");

	snprintf(path, sizeof(path), "%s/vfio-dev", dev);
	dir = opendir(path);
	out("opendir", dir != NULL);
	while (dir && (e = readdir(dir)))
		if (e->d_name[0] != '.')
			outs("entry", e->d_name);
	if (dir)
		closedir(dir);
	count = scandir(path, &list, NULL, alphasort);
	out("scandir", count);
	for (i = 0; i < count; i++)
		free(list[i]);
	if (count > 0)
		free(list);

	snprintf(path, sizeof(path), "%s/vendor", dev);
	f = fopen(path, "r");
	out("fopen", f != NULL);
	if (f && fgets(buf, sizeof(buf), f)) {
		buf[strcspn(buf, "\n")] = 0;
		outs("fopen_vendor", buf);
	}
	if (f)
		fclose(f);
	fd = open(path, O_RDONLY);
	n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
	buf[n < 0 ? 0 : n] = 0;
	buf[strcspn(buf, "\n")] = 0;
	outs("open_vendor", buf);
	close(fd);
	out("access_vendor", access(path, R_OK));

	/* relative paths are not routed */
	if (chdir("/") == 0) {
		snprintf(path, sizeof(path), "%s/vfio-dev", dev + 1);
		out("relative_access", access(path, R_OK) < 0 ? -errno : 0);
	}
	return 0;
}

static int scenario_fork(void)
{
	int fd = open("/dev/iommu", O_RDWR);
	pid_t pid;
	int status;

	out("fd", fd);
	out("parent_pid", getpid());
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		out("child_pid", getpid());
		out("child_ioctl", ioctl(fd, REQ_ECHO, 0xc0deUL));
		fflush(stdout);
		pid = fork(); /* as the selftest harness does: a grandchild uses the fd too */
		if (pid == 0) {
			out("grandchild_pid", getpid());
			out("grandchild_ioctl", ioctl(fd, REQ_ECHO, 0x9a9aUL));
			fflush(stdout);
			_exit(0);
		}
		waitpid(pid, &status, 0);
		out("child_close", close(fd));
		fflush(stdout);
		_exit(0);
	}
	waitpid(pid, &status, 0);
	out("forked", pid);
	out("child_status", status);
	out("parent_ioctl", ioctl(fd, REQ_ECHO, 0xbeefUL));
	out("vfork_child", 0);
	fflush(stdout);
	pid = vfork();
	if (pid == 0) {
		out("vchild_ioctl", ioctl(fd, REQ_ECHO, 0xfeedUL));
		fflush(stdout);
		_exit(0);
	}
	waitpid(pid, &status, 0);
	out("vforked", pid);
	return 0;
}

/*
 * fork() by a parent holding no engine fd: its children connect at their
 * first need (child A opens /dev/iommu, then forks B with that fd open),
 * or never (child C only exits). Then the parent opens one and forks D.
 */
static int scenario_forkbare(void)
{
	pid_t pid;
	int status, fd;

	out("parent_pid", getpid());
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		fd = open("/dev/iommu", O_RDWR);
		out("a_ioctl", ioctl(fd, REQ_ECHO, 0xaaaaUL));
		fflush(stdout);
		pid = fork();
		if (pid == 0) {
			out("b_ioctl", ioctl(fd, REQ_ECHO, 0xbbbbUL));
			fflush(stdout);
			_exit(0);
		}
		waitpid(pid, &status, 0);
		out("b_pid", pid);
		fflush(stdout);
		_exit(0);
	}
	waitpid(pid, &status, 0);
	out("a_pid", pid);
	pid = fork();
	if (pid == 0)
		_exit(0);
	waitpid(pid, &status, 0);
	out("c_pid", pid);
	fd = open("/dev/iommu", O_RDWR);
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		out("d_ioctl", ioctl(fd, REQ_ECHO, 0xddddUL));
		fflush(stdout);
		_exit(0);
	}
	waitpid(pid, &status, 0);
	out("d_pid", pid);
	return 0;
}

/* The answer to REQ_ECHO of `v` (v itself), or -errno. */
static long echo(int fd, unsigned long v)
{
	long r;

	errno = 0;
	r = ioctl(fd, REQ_ECHO, v);
	return r < 0 ? -errno : r;
}

/* An ioctl made by a process sharing our memory (clone CLONE_VM | CLONE_VFORK). */
struct vm_call {
	int fd;
	long result;
};

static int vm_child(void *arg)
{
	struct vm_call *c = arg;

	c->result = echo(c->fd, 0x4444UL);
	return 0;
}

/*
 * Children the library's fork() never saw: one made by a raw clone(2)
 * (no CLONE_VM) must not talk on its parent's connection; one sharing our
 * memory (a raw vfork) is taken for its parent (native/preload/self-pid.c).
 */
static int scenario_rawclone(void)
{
	int fd = open("/dev/iommu", O_RDWR), status;
	static char stack[64 * 1024];
	struct vm_call vm = { .fd = fd };
	pid_t pid;

	out("parent_pid", getpid());
	out("parent_ioctl", echo(fd, 0x1111UL));
	fflush(stdout);
	pid = (pid_t)syscall(SYS_clone, SIGCHLD, 0, NULL, NULL, 0);
	if (pid == 0) {
		out("child_pid", (long)syscall(SYS_getpid));
		out("child_ioctl", echo(fd, 0x2222UL));
		out("child_ioctl_again", echo(fd, 0x2223UL));
		fflush(stdout);
		_exit(0);
	}
	waitpid(pid, &status, 0);
	out("cloned", pid);
	out("parent_ioctl_after", echo(fd, 0x3333UL));
	pid = clone(vm_child, stack + sizeof(stack), CLONE_VM | CLONE_VFORK | SIGCHLD, &vm);
	waitpid(pid, &status, 0);
	out("vm_child_ioctl", vm.result);
	out("parent_ioctl_last", echo(fd, 0x5555UL));
	return 0;
}

static int scenario_exec(const char *how)
{
	char fd3[16], fd4[16];
	char *argv[] = { "client", "exec2", fd3, fd4, NULL };
	int a = open("/dev/iommu", O_RDWR);
	int b = open("/dev/iommu", O_RDWR | O_CLOEXEC);

	snprintf(fd3, sizeof(fd3), "%d", a);
	snprintf(fd4, sizeof(fd4), "%d", b);
	out("pid", getpid());
	out("keep_fd", a);
	out("cloexec_fd", b);
	errno = 0;
	out("exec_missing", execv("/nonexistent/client", argv) < 0 ? -errno : 0);
	out("ioctl_after_abort", ioctl(a, REQ_ECHO, 0xabUL));
	fflush(stdout);
	if (!strcmp(how, "execle")) {
		char *env[] = { "FOO=bar", NULL };

		execle("/proc/self/exe", "client", "exec2", fd3, fd4, (char *)NULL, env);
	} else {
		execv("/proc/self/exe", argv);
	}
	out("exec_failed", errno);
	return 1;
}

static int scenario_exec2(int a, int b)
{
	const char *mark = getenv("UIOMMU_EXEC");

	out("new_pid", getpid());
	outs("exec_env", mark ? mark : "unset");
	outs("foo", getenv("FOO") ? getenv("FOO") : "unset");
	out("keep_open", fcntl(a, F_GETFD) >= 0);
	out("cloexec_open", fcntl(b, F_GETFD) >= 0);
	out("ioctl_kept", ioctl(a, REQ_ECHO, 0xe0eUL));
	return 0;
}

struct worker {
	int fd;
	int id;
	int bad;
};

#define CALLS 300

static void *work(void *p)
{
	struct worker *w = p;
	int i;

	for (i = 0; i < CALLS; i++) {
		unsigned long arg = ((unsigned long)w->id << 16) | i;

		if (ioctl(w->fd, REQ_ECHO, arg) != (int)arg)
			w->bad++;
	}
	return NULL;
}

static int scenario_threads(void)
{
	struct worker w[4];
	pthread_t t[4];
	int fd = open("/dev/iommu", O_RDWR), i, bad = 0;

	for (i = 0; i < 4; i++) {
		w[i] = (struct worker){ .fd = fd, .id = i + 1 };
		pthread_create(&t[i], NULL, work, &w[i]);
	}
	for (i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		bad += w[i].bad;
	}
	out("bad", bad);
	out("calls", 4 * CALLS);
	return 0;
}

static int scenario_lost(void)
{
	char buf[8];
	int fd = open("/dev/iommu", O_RDWR), other;

	out("fd", fd);
	out("drop", ioctl_errno(fd, REQ_DROP, 0));
	out("ioctl_after", ioctl_errno(fd, REQ_ECHO, 1));
	errno = 0;
	out("read_after", read(fd, buf, sizeof(buf)) < 0 ? -errno : 0);
	out("close_after", close(fd));
	errno = 0;
	out("open_after", open("/dev/iommu", O_RDWR) < 0 ? -errno : 0);
	other = open("/proc/self/stat", O_RDONLY);
	out("plain_open", other >= 0);
	out("plain_read", read(other, buf, sizeof(buf)) > 0);
	close(other);
	return 0;
}

/* -errno of a call that returned -1 (or MAP_FAILED), else 0. */
#define ERR(call) ((long)(call) == -1 ? -errno : 0)

/*
 * The library's socket, found by raw system calls (the library hides it from
 * libc's view): the fd >= 900 whose /proc/self/fd link is a socket (-1 if none).
 */
static int find_sock(void)
{
	char path[64], link[64];
	struct rlimit rl;

	getrlimit(RLIMIT_NOFILE, &rl);
	for (int i = 900; i <= (int)rl.rlim_cur && i < 65536; i++) {
		long n;

		snprintf(path, sizeof(path), "/proc/self/fd/%d", i);
		n = syscall(SYS_readlinkat, AT_FDCWD, path, link, sizeof(link) - 1);
		if (n > 0 && (link[n] = 0, !strncmp(link, "socket:", 7)))
			return i;
	}
	return -1;
}

/* O_CLOEXEC of fd `fd`, by raw system calls: its /proc/self/fdinfo "flags:" line, octal. */
static int cloexec_of(int fd)
{
	char path[64], text[512], *flags;
	int f;
	long n;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = syscall(SYS_openat, AT_FDCWD, path, O_RDONLY);
	if (f < 0)
		return -1;
	n = syscall(SYS_read, f, text, sizeof(text) - 1);
	syscall(SYS_close, f);
	text[n > 0 ? n : 0] = 0;
	flags = strstr(text, "flags:");
	return flags && (strtoul(flags + 6, NULL, 8) & O_CLOEXEC) != 0;
}

static int scenario_sock(void)
{
	int s = find_sock(), fd, one = 1;
	char buf[8];
	struct stat st;
	struct iovec iov = { buf, sizeof(buf) };
	socklen_t len = sizeof(one);

	out("sock", s);
	out("sock_cloexec", cloexec_of(s));
	/* every call on it answers as for an fd that is not open */
	out("fcntl_sock", ERR(fcntl(s, F_GETFD)));
	out("read_sock", ERR(read(s, buf, sizeof(buf))));
	out("write_sock", ERR(write(s, buf, sizeof(buf))));
	out("pread_sock", ERR(pread(s, buf, sizeof(buf), 0)));
	out("readv_sock", ERR(readv(s, &iov, 1)));
	out("ioctl_sock", ERR(ioctl(s, FIONREAD, &one)));
	out("mmap_sock", ERR(mmap(NULL, 4096, PROT_READ, MAP_SHARED, s, 0)));
	out("dup_sock", ERR(dup(s)));
	out("dup2_from_sock", ERR(dup2(s, 50)));
	out("fstat_sock", ERR(fstat(s, &st)));
	out("lseek_sock", ERR(lseek(s, 0, SEEK_SET)));
	out("recv_sock", ERR(recv(s, buf, sizeof(buf), MSG_DONTWAIT)));
	out("send_sock", ERR(send(s, buf, sizeof(buf), MSG_DONTWAIT)));
	out("getsockopt_sock", ERR(getsockopt(s, SOL_SOCKET, SO_TYPE, &one, &len)));
	out("close_sock", ERR(close(s)));
	fd = open("/dev/iommu", O_RDWR);
	out("ioctl_before_dup2", ioctl(fd, REQ_ECHO, 2));
	/* the program takes the number: the library moves out of its way */
	out("dup2_onto_sock", dup2(0, s));
	out("fcntl_after_dup2", fcntl(s, F_GETFD));
	out("ioctl_after_dup2", ioctl(fd, REQ_ECHO, 3));
	close(s);
	closefrom(3);
	out("closed_engine", fcntl(fd, F_GETFD) < 0);
	fd = open("/dev/iommu", O_RDWR);
	out("ioctl_after_closefrom", ioctl(fd, REQ_ECHO, 4));
	return 0;
}

/* What a program sees without an engine; run with and without the library. */
/* Prints "<prefix>_Pid", "_VmLck", "_VmPin" (kB) and "_name" as read from a status stream. */
static void show_status(const char *prefix, FILE *f)
{
	char line[512], tag[64], key[80];
	long v;

	if (!f) {
		snprintf(key, sizeof(key), "%s_fopen", prefix);
		out(key, -errno);
		return;
	}
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = 0;
		if (!strncmp(line, "Name:", 5)) {
			snprintf(key, sizeof(key), "%s_name", prefix);
			outs(key, line + 5 + strspn(line + 5, " \t"));
		} else if (sscanf(line, "%63[^:]:%ld", tag, &v) == 2 &&
			   (!strcmp(tag, "Pid") || !strcmp(tag, "VmLck") ||
			    !strcmp(tag, "VmPin"))) {
			snprintf(key, sizeof(key), "%s_%s", prefix, tag);
			out(key, v);
		}
	}
	fclose(f);
}

/* /proc/<pid>/status through the engine (fake: VmLck 8, VmPin 12) for served pids, libc otherwise. */
static int scenario_status(void)
{
	char path[64], buf[4096];
	int low = lowest_free(), fd;
	ssize_t n, total = 0;
	FILE *f;

	out("pid", getpid());
	out("ppid", getppid());
	errno = 4321;
	f = fopen("/proc/self/status", "r");
	out("fopen_errno_kept", errno);
	out("fopen_fd", f ? fileno(f) : -1);
	out("expect_fd", low);
	show_status("self", f);

	snprintf(path, sizeof(path), "/proc/%d/status", getpid());
	fd = open(path, O_RDONLY | O_CLOEXEC);
	out("open_fd", fd);
	out("open_cloexec", (fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
	out("open_write", write(fd, "x", 1) < 0 ? -errno : 0);
	show_status("pid", fdopen(fd, "r"));

	fd = openat(AT_FDCWD, "/proc//./self/../self/status", O_RDONLY);
	out("openat_cloexec", (fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		total += n;
	out("openat_len", total);
	close(fd);
	f = fopen("/proc/self/status", "re");
	out("fopen_e_cloexec", f ? (fcntl(fileno(f), F_GETFD) & FD_CLOEXEC) != 0 : -1);
	show_status("fopen_e", f);

	/* a pid the engine does not serve, and a relative path: the real file */
	snprintf(path, sizeof(path), "/proc/%d/status", getppid());
	show_status("parent", fopen(path, "r"));
	if (!chdir("/proc/self"))
		show_status("relative", fopen("status", "r"));
	out("final_free", lowest_free());
	return 0;
}

static int scenario_inert(void)
{
	char buf[64];
	struct stat st;

	errno = 0;
	out("open", open("/dev/iommu", O_RDWR) < 0 ? -errno : 0);
	out("stat", stat("/dev/vfio", &st) < 0 ? -errno : 0);
	out("readlink",
	    readlink("/sys/bus/pci/devices/0000:00:01.0/iommu_group", buf, sizeof(buf)) < 0 ? -errno
											    : 0);
	out("lowest_free", lowest_free());
	out("pid_is_child", getppid() > 1);
	return 0;
}

/*
 * A KVM-VFIO device told about an engine fd (QEMU with KVM adds its group
 * fds): the library answers; everything else reaches the kernel.
 */
static int scenario_kvm(void)
{
	struct kvm_create_device cd = { .type = KVM_DEV_TYPE_VFIO };
	struct kvm_device_attr attr = { .group = 1, .attr = 1 };
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC), vm = -1, efd, p[2];
	int32_t file;

	if (kvm >= 0)
		vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0 || ioctl(vm, KVM_CREATE_DEVICE, &cd) < 0) {
		outs("kvm", "absent");
		return 0;
	}
	outs("kvm", "present");
	efd = open("/dev/iommu", O_RDWR);
	attr.addr = (uintptr_t)&file;
	file = efd;
	out("add_engine", ioctl_errno(cd.fd, KVM_SET_DEVICE_ATTR, (unsigned long)&attr));
	attr.attr = 2;
	out("del_engine", ioctl_errno(cd.fd, KVM_SET_DEVICE_ATTR, (unsigned long)&attr));
	if (pipe(p))
		return 1;
	file = p[0];
	attr.attr = 1;
	out("add_pipe", ioctl_errno(cd.fd, KVM_SET_DEVICE_ATTR, (unsigned long)&attr));
	file = efd;
	attr.group = 2;
	out("other_group", ioctl_errno(cd.fd, KVM_SET_DEVICE_ATTR, (unsigned long)&attr));
	attr.group = 1;
	attr.addr = 8;
	out("bad_file_ptr", ioctl_errno(cd.fd, KVM_SET_DEVICE_ATTR, (unsigned long)&attr));
	out("bad_attr_ptr", ioctl_errno(cd.fd, KVM_SET_DEVICE_ATTR, 8));
	return 0;
}

int main(int argc, char **argv)
{
	const char *s = argc > 1 ? argv[1] : "";

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!strcmp(s, "fds"))
		return scenario_fds();
	if (!strcmp(s, "paths"))
		return scenario_paths();
	if (!strcmp(s, "fork"))
		return scenario_fork();
	if (!strcmp(s, "forkbare"))
		return scenario_forkbare();
	if (!strcmp(s, "rawclone"))
		return scenario_rawclone();
	if (!strcmp(s, "exec"))
		return scenario_exec(argc > 2 ? argv[2] : "execv");
	if (!strcmp(s, "exec2") && argc > 3)
		return scenario_exec2(atoi(argv[2]), atoi(argv[3]));
	if (!strcmp(s, "threads"))
		return scenario_threads();
	if (!strcmp(s, "lost"))
		return scenario_lost();
	if (!strcmp(s, "sock"))
		return scenario_sock();
	if (!strcmp(s, "status"))
		return scenario_status();
	if (!strcmp(s, "inert"))
		return scenario_inert();
	if (!strcmp(s, "kvm"))
		return scenario_kvm();
	fprintf(stderr, "unknown scenario %s\n", s);
	return 2;
}
