/*
 * The engine's window into its client processes (a Node-API addon, plain C).
 *
 * The engine serves real processes: it copies ioctl structs in and out of
 * their memory, takes copies of their fds (eventfds to signal poll
 * readiness, memory files handed to IOMMU_IOAS_MAP_FILE) and looks at what
 * those fds are. Every function throws an Error carrying `errno` (the
 * positive errno number) and `code` (its name) when the system call fails;
 * src/host/native.ts turns that into the model's Errno.
 *
 *   vmRead(pid, addr: bigint, len) -> Buffer       EFAULT unless all len bytes were read
 *   vmWrite(pid, addr: bigint, data) -> number     bytes written (short at a fault)
 *   pidfdGetfd(pid, targetFd) -> number            a local O_CLOEXEC copy of the target's fd
 *   fstatFd(fd) -> { dev, ino, mode, size, rdev, devMajor, devMinor }
 *   fstatfsFd(fd) -> { type, bsize }               the file system holding fd's file
 *   eventfdSet(fd, ready)                           counter becomes exactly 1 (ready) or 0
 *   eventfdSignal(fd)                               counter + 1 unless that would block
 *   eventfdConsume(fd) -> boolean                   take the counter; whether it was > 0
 *   closeFd(fd)
 *   addressOf(buffer) -> bigint                     where a Buffer's bytes live (tests)
 *   memfdCreate(name, size: bigint) -> number       an O_CLOEXEC memfd of size zero bytes
 *   punchHole(fd, offset: bigint, len: bigint)      zero a range of a memfd (mapped pages too)
 *
 * and the engine's socket transport (transport.c).
 */
#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <unistd.h>

#include "transport.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif

/* Throw Error(strerror) with .errno and .code set; returns NULL for the caller to return. */
static napi_value throw_errno(napi_env env, int err, const char *what)
{
	char msg[160];
	napi_value text, code, error, number;
	const char *name = strerrorname_np(err);

	snprintf(msg, sizeof(msg), "%s: %s", what, strerror(err));
	napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &text);
	napi_create_string_utf8(env, name ? name : "EUNKNOWN", NAPI_AUTO_LENGTH, &code);
	napi_create_error(env, code, text, &error);
	napi_create_int32(env, err, &number);
	napi_set_named_property(env, error, "errno", number);
	napi_throw(env, error);
	return NULL;
}

static napi_value throw_type(napi_env env, const char *msg)
{
	napi_throw_type_error(env, NULL, msg);
	return NULL;
}

/* Fetch exactly `want` arguments; false (a TypeError thrown) when fewer were passed. */
static int get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv)
{
	size_t argc = want;

	if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < want) {
		throw_type(env, "missing arguments");
		return 0;
	}
	return 1;
}

static int get_int(napi_env env, napi_value v, int32_t *out)
{
	if (napi_get_value_int32(env, v, out) != napi_ok) {
		throw_type(env, "expected a number");
		return 0;
	}
	return 1;
}

static int get_u64(napi_env env, napi_value v, uint64_t *out)
{
	bool lossless;

	if (napi_get_value_bigint_uint64(env, v, out, &lossless) != napi_ok || !lossless) {
		throw_type(env, "expected a u64 bigint");
		return 0;
	}
	return 1;
}

static int get_bytes(napi_env env, napi_value v, void **data, size_t *len)
{
	bool is_typed;
	napi_typedarray_type type;
	napi_value ab;
	size_t off;

	if (napi_is_typedarray(env, v, &is_typed) != napi_ok || !is_typed) {
		throw_type(env, "expected a Uint8Array");
		return 0;
	}
	if (napi_get_typedarray_info(env, v, &type, len, data, &ab, &off) != napi_ok ||
	    type != napi_uint8_array) {
		throw_type(env, "expected a Uint8Array");
		return 0;
	}
	return 1;
}

static napi_value make_u64(napi_env env, uint64_t x)
{
	napi_value v;

	napi_create_bigint_uint64(env, x, &v);
	return v;
}

static napi_value make_num(napi_env env, double x)
{
	napi_value v;

	napi_create_double(env, x, &v);
	return v;
}

static napi_value vm_read(napi_env env, napi_callback_info info)
{
	napi_value argv[3], buf;
	int32_t pid, len;
	uint64_t addr;
	void *data;
	ssize_t n;

	if (!get_args(env, info, 3, argv) || !get_int(env, argv[0], &pid) ||
	    !get_u64(env, argv[1], &addr) || !get_int(env, argv[2], &len))
		return NULL;
	if (len < 0)
		return throw_type(env, "negative length");
	if (napi_create_buffer(env, (size_t)len, &data, &buf) != napi_ok)
		return NULL;
	if (len == 0)
		return buf;
	struct iovec local = { data, (size_t)len };
	struct iovec remote = { (void *)(uintptr_t)addr, (size_t)len };
	n = process_vm_readv(pid, &local, 1, &remote, 1, 0);
	if (n < 0)
		return throw_errno(env, errno, "process_vm_readv");
	if (n < len)
		return throw_errno(env, EFAULT, "process_vm_readv");
	return buf;
}

static napi_value vm_write(napi_env env, napi_callback_info info)
{
	napi_value argv[3];
	int32_t pid;
	uint64_t addr;
	void *data;
	size_t len;
	ssize_t n;

	if (!get_args(env, info, 3, argv) || !get_int(env, argv[0], &pid) ||
	    !get_u64(env, argv[1], &addr) || !get_bytes(env, argv[2], &data, &len))
		return NULL;
	if (len == 0)
		return make_num(env, 0);
	struct iovec local = { data, len };
	struct iovec remote = { (void *)(uintptr_t)addr, len };
	n = process_vm_writev(pid, &local, 1, &remote, 1, 0);
	if (n < 0)
		return throw_errno(env, errno, "process_vm_writev");
	return make_num(env, (double)n);
}

static napi_value pidfd_getfd_(napi_env env, napi_callback_info info)
{
	napi_value argv[2], out;
	int32_t pid, target;
	int pidfd, fd, err;

	if (!get_args(env, info, 2, argv) || !get_int(env, argv[0], &pid) ||
	    !get_int(env, argv[1], &target))
		return NULL;
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pidfd < 0)
		return throw_errno(env, errno, "pidfd_open");
	fd = (int)syscall(SYS_pidfd_getfd, pidfd, target, 0);
	err = errno;
	close(pidfd);
	if (fd < 0)
		return throw_errno(env, err, "pidfd_getfd");
	napi_create_int32(env, fd, &out);
	return out;
}

/* peerPid(fd): the pid of the process at the other end of Unix socket fd (SO_PEERCRED). */
static napi_value peer_pid(napi_env env, napi_callback_info info)
{
	napi_value argv[1], out;
	struct ucred cred;
	socklen_t len = sizeof(cred);
	int32_t fd;

	if (!get_args(env, info, 1, argv) || !get_int(env, argv[0], &fd))
		return NULL;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return throw_errno(env, errno, "getsockopt(SO_PEERCRED)");
	napi_create_int32(env, cred.pid, &out);
	return out;
}

static napi_value fstat_fd(napi_env env, napi_callback_info info)
{
	napi_value argv[1], out;
	int32_t fd;
	struct stat st;

	if (!get_args(env, info, 1, argv) || !get_int(env, argv[0], &fd))
		return NULL;
	if (fstat(fd, &st) < 0)
		return throw_errno(env, errno, "fstat");
	napi_create_object(env, &out);
	napi_set_named_property(env, out, "dev", make_u64(env, st.st_dev));
	napi_set_named_property(env, out, "devMajor", make_num(env, major(st.st_dev)));
	napi_set_named_property(env, out, "devMinor", make_num(env, minor(st.st_dev)));
	napi_set_named_property(env, out, "ino", make_u64(env, st.st_ino));
	napi_set_named_property(env, out, "mode", make_num(env, st.st_mode));
	napi_set_named_property(env, out, "size", make_u64(env, (uint64_t)st.st_size));
	napi_set_named_property(env, out, "rdev", make_u64(env, st.st_rdev));
	return out;
}

static napi_value fstatfs_fd(napi_env env, napi_callback_info info)
{
	napi_value argv[1], out;
	int32_t fd;
	struct statfs sf;

	if (!get_args(env, info, 1, argv) || !get_int(env, argv[0], &fd))
		return NULL;
	if (fstatfs(fd, &sf) < 0)
		return throw_errno(env, errno, "fstatfs");
	napi_create_object(env, &out);
	napi_set_named_property(env, out, "type", make_num(env, (double)(uint32_t)sf.f_type));
	napi_set_named_property(env, out, "bsize", make_num(env, (double)sf.f_bsize));
	return out;
}

static napi_value eventfd_set(napi_env env, napi_callback_info info)
{
	napi_value argv[2];
	int32_t fd;
	bool ready;
	uint64_t count;
	struct pollfd p;

	if (!get_args(env, info, 2, argv) || !get_int(env, argv[0], &fd))
		return NULL;
	if (napi_get_value_bool(env, argv[1], &ready) != napi_ok)
		return throw_type(env, "expected a boolean");
	/* Drain: an eventfd read takes the whole counter. Poll first so a blocking one never waits. */
	p.fd = fd;
	p.events = POLLIN;
	p.revents = 0;
	if (poll(&p, 1, 0) < 0)
		return throw_errno(env, errno, "poll");
	if (p.revents & POLLNVAL)
		return throw_errno(env, EBADF, "poll");
	if ((p.revents & POLLIN) && read(fd, &count, sizeof(count)) < 0 && errno != EAGAIN)
		return throw_errno(env, errno, "eventfd read");
	count = 1;
	if (ready && write(fd, &count, sizeof(count)) < 0)
		return throw_errno(env, errno, "eventfd write");
	return NULL;
}

/* eventfd_signal(): add 1 when the write cannot block (the counter is not at its ceiling). */
static napi_value eventfd_signal_(napi_env env, napi_callback_info info)
{
	napi_value argv[1];
	int32_t fd;
	uint64_t one = 1;
	struct pollfd p;

	if (!get_args(env, info, 1, argv) || !get_int(env, argv[0], &fd))
		return NULL;
	p.fd = fd;
	p.events = POLLOUT;
	p.revents = 0;
	if (poll(&p, 1, 0) < 0)
		return throw_errno(env, errno, "poll");
	if (p.revents & POLLNVAL)
		return throw_errno(env, EBADF, "poll");
	if ((p.revents & POLLOUT) && write(fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		return throw_errno(env, errno, "eventfd write");
	return NULL;
}

/* A kernel-side reader (virqfd): take the whole counter without blocking. */
static napi_value eventfd_consume(napi_env env, napi_callback_info info)
{
	napi_value argv[1], out;
	int32_t fd;
	uint64_t count = 0;
	struct pollfd p;

	if (!get_args(env, info, 1, argv) || !get_int(env, argv[0], &fd))
		return NULL;
	p.fd = fd;
	p.events = POLLIN;
	p.revents = 0;
	if (poll(&p, 1, 0) < 0)
		return throw_errno(env, errno, "poll");
	if (p.revents & POLLNVAL)
		return throw_errno(env, EBADF, "poll");
	if ((p.revents & POLLIN) && read(fd, &count, sizeof(count)) < 0 && errno != EAGAIN)
		return throw_errno(env, errno, "eventfd read");
	napi_get_boolean(env, count > 0, &out);
	return out;
}

static napi_value close_fd(napi_env env, napi_callback_info info)
{
	napi_value argv[1];
	int32_t fd;

	if (!get_args(env, info, 1, argv) || !get_int(env, argv[0], &fd))
		return NULL;
	if (close(fd) < 0)
		return throw_errno(env, errno, "close");
	return NULL;
}

static napi_value address_of(napi_env env, napi_callback_info info)
{
	napi_value argv[1];
	void *data;
	size_t len;

	if (!get_args(env, info, 1, argv) || !get_bytes(env, argv[0], &data, &len))
		return NULL;
	return make_u64(env, (uint64_t)(uintptr_t)data);
}

static napi_value memfd_create_(napi_env env, napi_callback_info info)
{
	napi_value argv[2];
	char name[200];
	size_t n;
	uint64_t size;
	bool lossless;
	int fd;

	if (!get_args(env, info, 2, argv))
		return NULL;
	if (napi_get_value_string_utf8(env, argv[0], name, sizeof(name), &n) != napi_ok ||
	    napi_get_value_bigint_uint64(env, argv[1], &size, &lossless) != napi_ok || !lossless)
		return throw_type(env, "memfdCreate(name, size: bigint)");
	fd = memfd_create(name, MFD_CLOEXEC);
	if (fd < 0)
		return throw_errno(env, errno, "memfd_create");
	if (ftruncate(fd, (off_t)size) < 0) {
		int err = errno;

		close(fd);
		return throw_errno(env, err, "ftruncate");
	}
	return make_num(env, fd);
}

static napi_value punch_hole(napi_env env, napi_callback_info info)
{
	napi_value argv[3];
	int32_t fd;
	uint64_t off, len;
	bool l1, l2;

	if (!get_args(env, info, 3, argv) || !get_int(env, argv[0], &fd))
		return NULL;
	if (napi_get_value_bigint_uint64(env, argv[1], &off, &l1) != napi_ok ||
	    napi_get_value_bigint_uint64(env, argv[2], &len, &l2) != napi_ok || !l1 || !l2)
		return throw_type(env, "punchHole(fd, offset: bigint, length: bigint)");
	if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) < 0)
		return throw_errno(env, errno, "fallocate");
	return NULL;
}

static napi_value init(napi_env env, napi_value exports)
{
	static const struct {
		const char *name;
		napi_callback fn;
	} fns[] = {
		{ "vmRead", vm_read },
		{ "vmWrite", vm_write },
		{ "pidfdGetfd", pidfd_getfd_ },
		{ "fstatFd", fstat_fd },
		{ "fstatfsFd", fstatfs_fd },
		{ "eventfdSet", eventfd_set },
		{ "closeFd", close_fd },
		{ "addressOf", address_of },
		{ "peerPid", peer_pid },
		{ "memfdCreate", memfd_create_ },
		{ "punchHole", punch_hole },
		{ "eventfdSignal", eventfd_signal_ },
		{ "eventfdConsume", eventfd_consume },
	};

	for (size_t i = 0; i < sizeof(fns) / sizeof(fns[0]); i++) {
		napi_value f;

		napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].fn, NULL, &f);
		napi_set_named_property(env, exports, fns[i].name, f);
	}
	transport_init(env, exports);
	return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
