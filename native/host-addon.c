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
 * A client is never reached by its pid number alone (a number is recycled
 * when the process is reaped): the engine holds a pidfd and a /proc/<pid>
 * directory fd opened while the pidfd showed the process alive, and the
 * memory and maps files opened through that directory, which stay bound to
 * the address space they were opened on (reads fail once it is gone).
 *
 *   pidfdOpen(pid) -> number                       a pidfd (O_CLOEXEC)
 *   peerPidfd(sock) -> number                      SO_PEERPIDFD: a pidfd of the socket's peer
 *   procDirOpen(pidfd, pid) -> number              O_PATH fd of /proc/<pid>, ESRCH unless the
 *                                                   pidfd's process still held pid after the open
 *   openAt(dirfd, name, write) -> number           a file under that directory (O_CLOEXEC)
 *   pidfdExited(pidfd) -> boolean                  the process has exited (a zombie has)
 *   capEffective(pidfd, pid) -> number             capget(2): the effective capability set of
 *                                                   pid (bit n: capability n), ESRCH unless the
 *                                                   pidfd's process still held pid afterwards
 *   memRead(mem, maps, addr, len, out)             copy_from_user of len bytes into the start of
 *                                                   out (a Uint8Array): EFAULT unless all lie in
 *                                                   readable VMAs and were read, then ENOMEM
 *                                                   when out is shorter
 *   memWrite(mem, maps, addr, data) -> number      copy_to_user: bytes written, short at the
 *                                                   first byte outside a writable VMA
 *   memZeroed(mem, maps, addr, len: bigint) -> n   check_zeroed_user: 0, E2BIG or EFAULT
 *   memZeroedAsync(same) -> Promise<number>        the same on a worker thread
 *   memClear(mem, maps, addr, len: bigint) -> n    clear_user: 0, or EFAULT at the first byte
 *                                                   outside a writable VMA (those before zeroed)
 *   memClearAsync(same) -> Promise<number>         the same on a worker thread
 *   memGatherAsync(mem, maps, uptr, entryLen, first, ksize, out: Uint8Array)
 *     -> Promise<{ done, err }>                    copy_struct_from_user of entries first,
 *                                                   first+1, ... of a user array into `out`
 *                                                   (ksize bytes each) on a worker thread, up to
 *                                                   the first failing one: its errno in err
 *   pidfdGetfd(pidfd, targetFd) -> number          a local O_CLOEXEC copy of the target's fd
 *   fstatFd(fd) -> { dev, ino, mode, size, rdev, devMajor, devMinor }
 *   fileSize(fd) -> number                         st_size alone (no object: on hot paths)
 *   fstatfsFd(fd) -> { type, bsize }               the file system holding fd's file
 *   eventfdSet(fd, ready)                           counter becomes exactly 1 (ready) or 0
 *   eventfdSignal(fd)                               counter + 1 unless that would block
 *   eventfdConsume(fd) -> boolean                   take the counter; whether it was > 0
 *   closeFd(fd)
 *   addressOf(buffer) -> bigint                     where a Buffer's bytes live (tests)
 *   memfdCreate(name, size: bigint) -> number       an O_CLOEXEC memfd of size zero bytes
 *   punchHole(fd, offset: bigint, len: bigint)      zero a range of a memfd (mapped pages too)
 *
 * the engine's socket transport (transport.c) and its mappings of client
 * memory files (file-map.c).
 */
#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <node_api.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <unistd.h>

#include "file-map.h"
#include "lease-ring.h"
#include "transport.h"
#include "tree.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif
#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif

/* PROCMAP_QUERY (Linux 6.11, <linux/fs.h>): the VMA covering an address, from a maps fd. */
struct procmap_query {
	uint64_t size;
	uint64_t query_flags;
	uint64_t query_addr;
	uint64_t vma_start;
	uint64_t vma_end;
	uint64_t vma_flags;
	uint64_t vma_page_size;
	uint64_t vma_offset;
	uint64_t inode;
	uint32_t dev_major;
	uint32_t dev_minor;
	uint32_t vma_name_size;
	uint32_t build_id_size;
	uint64_t vma_name_addr;
	uint64_t build_id_addr;
};
#define PROCMAP_QUERY _IOWR('f', 17, struct procmap_query)
#define PROCMAP_QUERY_VMA_READABLE 0x01
#define PROCMAP_QUERY_VMA_WRITABLE 0x02

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

static int get_len(napi_env env, napi_value v, uint64_t *out)
{
	double d;

	if (napi_get_value_double(env, v, &d) != napi_ok || d < 0 || d > 9007199254740991.0) {
		throw_type(env, "expected a length");
		return 0;
	}
	*out = (uint64_t)d;
	return 1;
}

/*
 * How many bytes from addr (at most len) lie in VMAs allowing `need`
 * (PROCMAP_QUERY_VMA_*), per the maps fd; maps < 0 allows everything. Sets
 * *err to ENOTTY when the kernel has no PROCMAP_QUERY.
 */
static uint64_t vma_span(int maps, uint64_t addr, uint64_t len, uint64_t need, int *err)
{
	uint64_t done = 0;

	*err = 0;
	if (maps < 0)
		return len;
	while (done < len) {
		struct procmap_query q = { .size = sizeof(q) };

		q.query_flags = need;
		q.query_addr = addr + done;
		if (ioctl(maps, PROCMAP_QUERY, &q) < 0) {
			if (errno == ENOTTY || errno == EINVAL)
				*err = ENOTTY;
			break;
		}
		if (q.vma_start > addr + done)
			break;
		done = q.vma_end - addr >= len ? len : q.vma_end - addr;
	}
	return done;
}

/* pread/pwrite of a /proc/<pid>/mem fd until n bytes or a short transfer; returns bytes moved. */
static uint64_t mem_io(int fd, void *buf, uint64_t n, uint64_t addr, int write)
{
	uint64_t done = 0;

	if (addr >= (1ULL << 63) || n > (1ULL << 63) - addr)
		return 0; /* no user address there; an off_t cannot name it */
	while (done < n) {
		size_t step = n - done > (1 << 30) ? (1 << 30) : (size_t)(n - done);
		ssize_t k = write ? pwrite(fd, (char *)buf + done, step, (off_t)(addr + done))
				  : pread(fd, (char *)buf + done, step, (off_t)(addr + done));
		if (k <= 0)
			break;
		done += (uint64_t)k;
	}
	return done;
}

static napi_value mem_read(napi_env env, napi_callback_info info)
{
	napi_value argv[5];
	int32_t mem, maps;
	uint64_t addr, len, ok;
	void *data;
	size_t room;
	int err;

	if (!get_args(env, info, 5, argv) || !get_int(env, argv[0], &mem) ||
	    !get_int(env, argv[1], &maps) || !get_u64(env, argv[2], &addr) ||
	    !get_len(env, argv[3], &len) || !get_bytes(env, argv[4], &data, &room))
		return NULL;
	ok = vma_span(maps, addr, len, PROCMAP_QUERY_VMA_READABLE, &err);
	if (err)
		return throw_errno(env, err, "PROCMAP_QUERY");
	if (ok < len)
		return throw_errno(env, EFAULT, "copy_from_user");
	/* the caller could not allocate it (a kmalloc of 2 GiB or more fails) */
	if (room < len)
		return throw_errno(env, ENOMEM, "copy_from_user buffer");
	if (mem_io(mem, data, len, addr, 0) < len)
		return throw_errno(env, EFAULT, "copy_from_user");
	return NULL;
}

static napi_value mem_write(napi_env env, napi_callback_info info)
{
	napi_value argv[4];
	int32_t mem, maps;
	uint64_t addr, ok;
	void *data;
	size_t len;
	int err;

	if (!get_args(env, info, 4, argv) || !get_int(env, argv[0], &mem) ||
	    !get_int(env, argv[1], &maps) || !get_u64(env, argv[2], &addr) ||
	    !get_bytes(env, argv[3], &data, &len))
		return NULL;
	ok = vma_span(maps, addr, len, PROCMAP_QUERY_VMA_WRITABLE, &err);
	if (err)
		return throw_errno(env, err, "PROCMAP_QUERY");
	return make_num(env, (double)mem_io(mem, data, ok, addr, 1));
}

/* Bytes per read of a zero check: bounded memory whatever the length. */
#define ZERO_CHUNK (1 << 20)

/* Whether any of the n bytes at b (8-byte aligned) is non-zero, a word at a time. */
static int nonzero(const unsigned char *b, uint64_t n)
{
	const uint64_t *w = (const uint64_t *)b;
	uint64_t i, acc = 0;

	for (i = 0; i < n / 8; i++) {
		acc |= w[i];
		if ((i & 511) == 511 && acc)
			return 1;
	}
	for (i = n & ~7ULL; i < n; i++)
		acc |= b[i];
	return acc != 0;
}

/*
 * A chunk at a time over [addr, addr+len): check_zeroed_user() (`clear` 0:
 * 0, E2BIG at a non-zero byte, EFAULT at an unreadable one before it) or
 * clear_user() (`clear` 1: 0, or EFAULT at the first byte outside a writable
 * VMA, those before it zeroed). ENOTTY when the kernel lacks PROCMAP_QUERY.
 */
static int walk(int mem, int maps, uint64_t addr, uint64_t len, int clear)
{
	unsigned char *chunk = clear ? calloc(1, ZERO_CHUNK) : malloc(ZERO_CHUNK);
	uint64_t need = clear ? PROCMAP_QUERY_VMA_WRITABLE : PROCMAP_QUERY_VMA_READABLE;
	uint64_t done = 0;
	int err = 0, ret = 0;

	if (!chunk)
		return ENOMEM;
	while (done < len && !ret) {
		uint64_t n = len - done > ZERO_CHUNK ? ZERO_CHUNK : len - done;
		uint64_t ok = vma_span(maps, addr + done, n, need, &err);
		uint64_t moved = err ? 0 : mem_io(mem, chunk, ok, addr + done, clear);

		ret = !clear && nonzero(chunk, moved) ? E2BIG : 0;
		if (!ret && (err || moved < n))
			ret = err ? ENOTTY : EFAULT;
		done += n;
	}
	free(chunk);
	return ret;
}

static int zeroed(int mem, int maps, uint64_t addr, uint64_t len)
{
	return walk(mem, maps, addr, len, 0);
}

static int cleared(int mem, int maps, uint64_t addr, uint64_t len)
{
	return walk(mem, maps, addr, len, 1);
}

/* Work on a user range whose length the caller chose: a zero check or a clear. */
typedef int (*range_op)(int mem, int maps, uint64_t addr, uint64_t len);

static int range_args(napi_env env, napi_callback_info info, int32_t *mem, int32_t *maps,
		      uint64_t *addr, uint64_t *len)
{
	napi_value argv[4];

	return get_args(env, info, 4, argv) && get_int(env, argv[0], mem) &&
	       get_int(env, argv[1], maps) && get_u64(env, argv[2], addr) &&
	       get_u64(env, argv[3], len);
}

static napi_value range_now(napi_env env, napi_callback_info info, range_op op)
{
	int32_t mem, maps;
	uint64_t addr, len;

	if (!range_args(env, info, &mem, &maps, &addr, &len))
		return NULL;
	return make_num(env, op(mem, maps, addr, len));
}

static napi_value mem_zeroed(napi_env env, napi_callback_info info)
{
	return range_now(env, info, zeroed);
}

static napi_value mem_clear(napi_env env, napi_callback_info info)
{
	return range_now(env, info, cleared);
}

struct range_work {
	napi_async_work work;
	napi_deferred deferred;
	range_op op;
	int32_t mem, maps;
	uint64_t addr, len;
	int result;
};

static void range_execute(napi_env env, void *data)
{
	struct range_work *w = data;

	(void)env;
	w->result = w->op(w->mem, w->maps, w->addr, w->len);
}

static void range_complete(napi_env env, napi_status status, void *data)
{
	struct range_work *w = data;

	(void)status;
	close(w->mem);
	if (w->maps >= 0)
		close(w->maps);
	napi_resolve_deferred(env, w->deferred, make_num(env, w->result));
	napi_delete_async_work(env, w->work);
	free(w);
}

/* `op` on a libuv worker thread: a promise of its answer. */
static napi_value range_async(napi_env env, napi_callback_info info, range_op op, const char *what)
{
	napi_value promise, name;
	struct range_work *w = calloc(1, sizeof(*w));

	if (!w)
		return throw_errno(env, ENOMEM, what);
	if (!range_args(env, info, &w->mem, &w->maps, &w->addr, &w->len)) {
		free(w);
		return NULL;
	}
	w->op = op;
	/* The worker works through its own copies: the engine may close the originals meanwhile. */
	w->mem = fcntl(w->mem, F_DUPFD_CLOEXEC, 0);
	w->maps = w->maps < 0 ? -1 : fcntl(w->maps, F_DUPFD_CLOEXEC, 0);
	if (w->mem < 0) {
		free(w);
		return throw_errno(env, errno, "dup");
	}
	napi_create_promise(env, &w->deferred, &promise);
	napi_create_string_utf8(env, what, NAPI_AUTO_LENGTH, &name);
	napi_create_async_work(env, NULL, name, range_execute, range_complete, w, &w->work);
	napi_queue_async_work(env, w->work);
	return promise;
}

static napi_value mem_zeroed_async(napi_env env, napi_callback_info info)
{
	return range_async(env, info, zeroed, "uiommu:check_zeroed_user");
}

static napi_value mem_clear_async(napi_env env, napi_callback_info info)
{
	return range_async(env, info, cleared, "uiommu:clear_user");
}

/* copy_struct_from_user() of one entry of `entry_len` bytes at addr into dst (ksize bytes): its errno or 0. */
static int copy_entry(int mem, int maps, uint64_t addr, uint64_t entry_len, uint64_t ksize,
		      unsigned char *dst)
{
	uint64_t take = entry_len < ksize ? entry_len : ksize, ok;
	int err, q;

	if (entry_len > ksize && (err = walk(mem, maps, addr + ksize, entry_len - ksize, 0)))
		return err;
	ok = vma_span(maps, addr, take, PROCMAP_QUERY_VMA_READABLE, &q);
	if (q)
		return ENOTTY;
	return ok < take || mem_io(mem, dst, take, addr, 0) < take ? EFAULT : 0;
}

/* Arrays spanning at most this many bytes are read at once, then split into entries. */
#define GATHER_BULK (16 << 20)

/*
 * copy_struct_from_user() of entries [first, first+n) of the user array at
 * uptr (entry_len bytes each) into out (ksize bytes each, zero-filled by
 * the caller): a tail beyond ksize must be zero (E2BIG, EFAULT), then
 * min(entry_len, ksize) bytes are read (EFAULT). A short array is read in
 * one go; an entry outside what could be read is copied on its own, for its
 * exact errno. Returns how many entries were copied; *err is the errno of
 * the one after them.
 */
static uint64_t gather(int mem, int maps, uint64_t uptr, uint64_t entry_len, uint64_t first,
		       uint64_t ksize, unsigned char *out, uint64_t n, int *err)
{
	uint64_t i, base = uptr + first * entry_len, span = n * entry_len, got = 0;
	uint64_t take = entry_len < ksize ? entry_len : ksize;
	unsigned char *bulk = span <= GATHER_BULK ? malloc(span ? span : 1) : NULL;
	int q = 0;

	if (bulk) {
		uint64_t ok = vma_span(maps, base, span, PROCMAP_QUERY_VMA_READABLE, &q);

		got = q ? 0 : mem_io(mem, bulk, ok, base, 0);
	}
	*err = 0;
	for (i = 0; i < n && !*err; i++) {
		const unsigned char *e = bulk + i * entry_len;
		uint64_t k;

		if (!bulk || (i + 1) * entry_len > got) {
			*err = copy_entry(mem, maps, base + i * entry_len, entry_len, ksize,
					  out + i * ksize);
			continue;
		}
		for (k = ksize; k < entry_len && !e[k]; k++)
			;
		if (k < entry_len)
			*err = E2BIG;
		else
			memcpy(out + i * ksize, e, take);
	}
	free(bulk);
	return *err ? i - 1 : i;
}

struct gather_work {
	napi_async_work work;
	napi_deferred deferred;
	napi_ref out_ref;
	unsigned char *out;
	int32_t mem, maps;
	uint64_t uptr, entry_len, first, ksize, n, done;
	int err;
};

static void gather_execute(napi_env env, void *data)
{
	struct gather_work *w = data;

	(void)env;
	w->done = gather(w->mem, w->maps, w->uptr, w->entry_len, w->first, w->ksize, w->out, w->n,
			 &w->err);
}

static void gather_complete(napi_env env, napi_status status, void *data)
{
	struct gather_work *w = data;
	napi_value result;

	(void)status;
	close(w->mem);
	if (w->maps >= 0)
		close(w->maps);
	napi_create_object(env, &result);
	napi_set_named_property(env, result, "done", make_num(env, (double)w->done));
	napi_set_named_property(env, result, "err", make_num(env, w->err));
	napi_resolve_deferred(env, w->deferred, result);
	napi_delete_reference(env, w->out_ref);
	napi_delete_async_work(env, w->work);
	free(w);
}

static napi_value mem_gather_async(napi_env env, napi_callback_info info)
{
	napi_value argv[7], promise, name;
	struct gather_work *w = calloc(1, sizeof(*w));
	size_t len;
	void *out;

	if (!w)
		return throw_errno(env, ENOMEM, "memGatherAsync");
	if (!get_args(env, info, 7, argv) || !get_int(env, argv[0], &w->mem) ||
	    !get_int(env, argv[1], &w->maps) || !get_u64(env, argv[2], &w->uptr) ||
	    !get_u64(env, argv[3], &w->entry_len) || !get_u64(env, argv[4], &w->first) ||
	    !get_u64(env, argv[5], &w->ksize) || !get_bytes(env, argv[6], &out, &len) ||
	    !w->ksize) {
		free(w);
		return NULL;
	}
	w->out = out;
	w->n = len / w->ksize;
	w->mem = fcntl(w->mem, F_DUPFD_CLOEXEC, 0);
	w->maps = w->maps < 0 ? -1 : fcntl(w->maps, F_DUPFD_CLOEXEC, 0);
	if (w->mem < 0) {
		free(w);
		return throw_errno(env, errno, "dup");
	}
	/* the worker writes into `out`: keep it alive until then */
	napi_create_reference(env, argv[6], 1, &w->out_ref);
	napi_create_promise(env, &w->deferred, &promise);
	napi_create_string_utf8(env, "uiommu:copy_struct_from_user_array", NAPI_AUTO_LENGTH, &name);
	napi_create_async_work(env, NULL, name, gather_execute, gather_complete, w, &w->work);
	napi_queue_async_work(env, w->work);
	return promise;
}

static napi_value pidfd_open_(napi_env env, napi_callback_info info)
{
	napi_value argv[1], out;
	int32_t pid;
	int fd;

	if (!get_args(env, info, 1, argv) || !get_int(env, argv[0], &pid))
		return NULL;
	fd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (fd < 0)
		return throw_errno(env, errno, "pidfd_open");
	napi_create_int32(env, fd, &out);
	return out;
}

static napi_value peer_pidfd(napi_env env, napi_callback_info info)
{
	napi_value argv[1], out;
	int32_t sock;
	int fd;
	socklen_t len = sizeof(fd);

	if (!get_args(env, info, 1, argv) || !get_int(env, argv[0], &sock))
		return NULL;
	if (getsockopt(sock, SOL_SOCKET, SO_PEERPIDFD, &fd, &len) < 0)
		return throw_errno(env, errno, "getsockopt(SO_PEERPIDFD)");
	fcntl(fd, F_SETFD, FD_CLOEXEC);
	napi_create_int32(env, fd, &out);
	return out;
}

/*
 * Open /proc/<pid> and check afterwards that the pidfd's process is not yet
 * reaped: it then held the number during the open, so the directory is its.
 */
static napi_value proc_dir_open(napi_env env, napi_callback_info info)
{
	napi_value argv[2], out;
	int32_t pidfd, pid;
	char path[32];
	int fd;

	if (!get_args(env, info, 2, argv) || !get_int(env, argv[0], &pidfd) ||
	    !get_int(env, argv[1], &pid))
		return NULL;
	snprintf(path, sizeof(path), "/proc/%d", pid);
	fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return throw_errno(env, errno == ENOENT ? ESRCH : errno, "open /proc/<pid>");
	if (syscall(SYS_pidfd_send_signal, pidfd, 0, NULL, 0) < 0) {
		int err = errno;

		close(fd);
		return throw_errno(env, err == EPERM ? EPERM : ESRCH, "pidfd_send_signal");
	}
	napi_create_int32(env, fd, &out);
	return out;
}

static napi_value open_at(napi_env env, napi_callback_info info)
{
	napi_value argv[3], out;
	int32_t dirfd;
	bool write;
	char name[256];
	size_t n;
	int fd;

	if (!get_args(env, info, 3, argv) || !get_int(env, argv[0], &dirfd) ||
	    napi_get_value_string_utf8(env, argv[1], name, sizeof(name), &n) != napi_ok ||
	    napi_get_value_bool(env, argv[2], &write) != napi_ok)
		return throw_type(env, "openAt(dirfd, name, write)");
	fd = openat(dirfd, name, (write ? O_RDWR : O_RDONLY) | O_CLOEXEC);
	if (fd < 0)
		return throw_errno(env, errno, "openat");
	napi_create_int32(env, fd, &out);
	return out;
}

static napi_value pidfd_exited(napi_env env, napi_callback_info info)
{
	napi_value argv[1], out;
	int32_t pidfd;
	struct pollfd p;

	if (!get_args(env, info, 1, argv) || !get_int(env, argv[0], &pidfd))
		return NULL;
	p.fd = pidfd;
	p.events = POLLIN;
	p.revents = 0;
	if (poll(&p, 1, 0) < 0)
		return throw_errno(env, errno, "poll");
	napi_get_boolean(env, (p.revents & (POLLIN | POLLHUP | POLLNVAL)) != 0, &out);
	return out;
}

/*
 * capget(2) of pid, then the pidfd's process checked as in proc_dir_open
 * (so the set read was its, not a later holder's of the number): two system
 * calls where a read of /proc/<pid>/status generated ~1.5 KiB to parse.
 * The set as a double: exact while capabilities stay below 53 (Linux: 40).
 */
static napi_value cap_effective(napi_env env, napi_callback_info info)
{
	napi_value argv[2], out;
	int32_t pidfd, pid;
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3];

	if (!get_args(env, info, 2, argv) || !get_int(env, argv[0], &pidfd) ||
	    !get_int(env, argv[1], &pid))
		return NULL;
	h.pid = pid;
	if (syscall(SYS_capget, &h, d) < 0)
		return throw_errno(env, errno, "capget");
	/* EPERM: alive, not ours to signal */
	if (syscall(SYS_pidfd_send_signal, pidfd, 0, NULL, 0) < 0 && errno != EPERM)
		return throw_errno(env, ESRCH, "pidfd_send_signal");
	napi_create_double(env, (double)d[1].effective * 4294967296.0 + d[0].effective, &out);
	return out;
}

static napi_value pidfd_getfd_(napi_env env, napi_callback_info info)
{
	napi_value argv[2], out;
	int32_t pidfd, target;
	int fd;

	if (!get_args(env, info, 2, argv) || !get_int(env, argv[0], &pidfd) ||
	    !get_int(env, argv[1], &target))
		return NULL;
	fd = (int)syscall(SYS_pidfd_getfd, pidfd, target, 0);
	if (fd < 0)
		return throw_errno(env, errno, "pidfd_getfd");
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

/* fstat of the fd in the call's one argument: 1, or 0 with a JS exception pending. */
static int stat_arg(napi_env env, napi_callback_info info, struct stat *st)
{
	napi_value argv[1];
	int32_t fd;

	if (!get_args(env, info, 1, argv) || !get_int(env, argv[0], &fd))
		return 0;
	if (fstat(fd, st) < 0) {
		throw_errno(env, errno, "fstat");
		return 0;
	}
	return 1;
}

static napi_value fstat_fd(napi_env env, napi_callback_info info)
{
	napi_value out;
	struct stat st;

	if (!stat_arg(env, info, &st))
		return NULL;
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

/* fileSize(fd): st_size alone, without building fstat's object. */
static napi_value file_size(napi_env env, napi_callback_info info)
{
	struct stat st;

	return stat_arg(env, info, &st) ? make_num(env, (double)st.st_size) : NULL;
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

/*
 * The events of `events` that fd is ready for now, without waiting (never
 * blocks, whatever O_NONBLOCK says); -1 with errno set (EBADF when not open).
 */
static int ready_now(int fd, short events)
{
	struct pollfd p = { .fd = fd, .events = events, .revents = 0 };

	if (poll(&p, 1, 0) < 0)
		return -1;
	if (p.revents & POLLNVAL) {
		errno = EBADF;
		return -1;
	}
	return p.revents;
}

static napi_value eventfd_set(napi_env env, napi_callback_info info)
{
	napi_value argv[2];
	int32_t fd;
	bool ready;
	uint64_t count;
	int revents;

	if (!get_args(env, info, 2, argv) || !get_int(env, argv[0], &fd))
		return NULL;
	if (napi_get_value_bool(env, argv[1], &ready) != napi_ok)
		return throw_type(env, "expected a boolean");
	/* Drain: an eventfd read takes the whole counter. Poll first so a blocking one never waits. */
	if ((revents = ready_now(fd, POLLIN)) < 0)
		return throw_errno(env, errno, "poll");
	if ((revents & POLLIN) && read(fd, &count, sizeof(count)) < 0 && errno != EAGAIN)
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
	int revents;

	if (!get_args(env, info, 1, argv) || !get_int(env, argv[0], &fd))
		return NULL;
	if ((revents = ready_now(fd, POLLOUT)) < 0)
		return throw_errno(env, errno, "poll");
	if ((revents & POLLOUT) && write(fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		return throw_errno(env, errno, "eventfd write");
	return NULL;
}

/* A kernel-side reader (virqfd): take the whole counter without blocking. */
static napi_value eventfd_consume(napi_env env, napi_callback_info info)
{
	napi_value argv[1], out;
	int32_t fd;
	uint64_t count = 0;
	int revents;

	if (!get_args(env, info, 1, argv) || !get_int(env, argv[0], &fd))
		return NULL;
	if ((revents = ready_now(fd, POLLIN)) < 0)
		return throw_errno(env, errno, "poll");
	if ((revents & POLLIN) && read(fd, &count, sizeof(count)) < 0 && errno != EAGAIN)
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
		{ "memRead", mem_read },
		{ "memWrite", mem_write },
		{ "memZeroed", mem_zeroed },
		{ "memZeroedAsync", mem_zeroed_async },
		{ "memClear", mem_clear },
		{ "memClearAsync", mem_clear_async },
		{ "memGatherAsync", mem_gather_async },
		{ "pidfdOpen", pidfd_open_ },
		{ "peerPidfd", peer_pidfd },
		{ "procDirOpen", proc_dir_open },
		{ "openAt", open_at },
		{ "pidfdExited", pidfd_exited },
		{ "capEffective", cap_effective },
		{ "pidfdGetfd", pidfd_getfd_ },
		{ "fstatFd", fstat_fd },
		{ "fileSize", file_size },
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
	lease_ring_init(env, exports);
	tree_init(env, exports);
	file_map_init(env, exports);
	return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
