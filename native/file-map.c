/*
 * Client memory files (shmem: memfds, MAP_SHARED|MAP_ANONYMOUS memory)
 * mapped into the engine, so that a device's access to their pages is a
 * memcpy rather than a pread or pwrite (src/host/foreign-memory.ts,
 * ForeignFile).
 *
 * The file's owner may shrink it at any time unless it is sealed against
 * that (F_SEAL_SHRINK): a mapped page past its new end then faults with
 * SIGBUS. Every copy runs under a guard: a SIGBUS inside the copy ends it
 * with EFAULT (the caller falls back to pread/pwrite, which answer for
 * bytes past the end), it never kills the engine. A SIGBUS anywhere else
 * goes to whatever handled it before.
 *
 * Mapping a file never changes what its owner can do with it: the mapping
 * is shared and writable only when the file's seals can no longer change
 * (F_SEAL_SEAL) and allow writing, otherwise private and read-only, so that
 * a later F_SEAL_WRITE still succeeds (a shared writable mapping would make
 * it EBUSY).
 *
 *   fileMap(fd, length) -> { id, writable } | undefined
 *       map the first `length` bytes of fd's file; undefined when it is no
 *       shmem file (it has no seals to read) or cannot be mapped
 *   fileMapIo(id, offset, length, write[, buf]) -> number
 *       copy `length` bytes between the mapping at `offset` and the start
 *       of buf (a Uint8Array; by default the scratch buffer): 0, EFAULT for
 *       a page past the file's end (a prefix may have been copied), ERANGE
 *       outside the mapping or buf, EACCES for a write to a read-only one
 *   fileMapScratch() -> ArrayBuffer
 *       fileMapIo's default buffer (SCRATCH bytes, outside V8's heap)
 *   fileUnmap(id)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "file-map.h"

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif

/* Bytes of the scratch buffer: copies up to this size need no buffer of their own. */
#define SCRATCH 4096

struct fmap {
	uint8_t *base; /* NULL: a free slot */
	uint64_t len;
	int writable;
};

static struct fmap *g_maps;
static uint32_t g_nmaps;
static uint8_t g_scratch[SCRATCH] __attribute__((aligned(64)));

/* The copy running on a thread: the bytes it may fault on, and where a fault returns to. */
struct guard {
	sigjmp_buf env;
	const uint8_t *lo, *hi;
};

static __thread struct guard *t_guard;
static struct sigaction g_prev;

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	struct guard *g = t_guard;
	const uint8_t *at = si->si_addr;

	if (g && at >= g->lo && at < g->hi) {
		t_guard = NULL;
		siglongjmp(g->env, 1);
	}
	if (g_prev.sa_flags & SA_SIGINFO) {
		g_prev.sa_sigaction(sig, si, uc);
		return;
	}
	if (g_prev.sa_handler != SIG_DFL && g_prev.sa_handler != SIG_IGN) {
		g_prev.sa_handler(sig);
		return;
	}
	/* not ours: the faulting access runs again under the disposition from before */
	sigaction(SIGBUS, &g_prev, NULL);
}

/*
 * Our handler is SIGBUS's (installed by the first call); 0 when it is not:
 * another handler replaced it since, so no new mapping is made (the one
 * that replaced it may hand its signals to ours: installing ours again
 * over it could make them go round).
 */
static int guard_installed(void)
{
	static int installed;
	struct sigaction cur, sa;

	if (sigaction(SIGBUS, NULL, &cur) < 0)
		return 0;
	if ((cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == on_sigbus)
		return 1;
	if (installed)
		return 0;
	installed = 1;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sigbus;
	/* SA_NODEFER: leaving the handler by siglongjmp leaves SIGBUS unblocked */
	sa.sa_flags = SA_SIGINFO | SA_NODEFER | SA_ONSTACK;
	sigemptyset(&sa.sa_mask);
	return sigaction(SIGBUS, &sa, &g_prev) == 0;
}

/* memcpy that ends with EFAULT instead of a signal when a page of [lo, hi) is gone. */
static int guarded_copy(void *dst, const void *src, size_t n, const uint8_t *lo, const uint8_t *hi)
{
	struct guard g;

	g.lo = lo;
	g.hi = hi;
	if (sigsetjmp(g.env, 0))
		return EFAULT;
	t_guard = &g;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	memcpy(dst, src, n);
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	t_guard = NULL;
	return 0;
}

static napi_value file_map(napi_env env, napi_callback_info info)
{
	size_t argc = 2;
	napi_value argv[2], out, undef;
	int32_t fd;
	double length;
	int seals, fl, writable;
	void *p;
	uint32_t id;

	napi_get_undefined(env, &undef);
	if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 ||
	    napi_get_value_int32(env, argv[0], &fd) != napi_ok ||
	    napi_get_value_double(env, argv[1], &length) != napi_ok || !(length >= 1) ||
	    length > (double)(1ULL << 52)) {
		napi_throw_type_error(env, NULL, "fileMap(fd, length)");
		return NULL;
	}
	seals = fcntl(fd, F_GET_SEALS);
	fl = fcntl(fd, F_GETFL);
	if (seals < 0 || fl < 0 || !guard_installed())
		return undef;
	writable = (fl & O_ACCMODE) == O_RDWR && (seals & F_SEAL_SEAL) &&
		   !(seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE));
	p = mmap(NULL, (size_t)length, writable ? PROT_READ | PROT_WRITE : PROT_READ,
		 writable ? MAP_SHARED : MAP_PRIVATE, fd, 0);
	if (p == MAP_FAILED)
		return undef;
	for (id = 0; id < g_nmaps && g_maps[id].base; id++)
		;
	if (id == g_nmaps) {
		struct fmap *grown = realloc(g_maps, (g_nmaps + 1) * sizeof(*g_maps));

		if (!grown) {
			munmap(p, (size_t)length);
			return undef;
		}
		g_maps = grown;
		g_nmaps++;
	}
	g_maps[id] = (struct fmap){ .base = p, .len = (uint64_t)length, .writable = writable };
	napi_create_object(env, &out);
	napi_create_uint32(env, id, &argv[0]);
	napi_set_named_property(env, out, "id", argv[0]);
	napi_get_boolean(env, writable, &argv[0]);
	napi_set_named_property(env, out, "writable", argv[0]);
	return out;
}

/* The live mapping numbered by a JS value, or NULL (a TypeError thrown). */
static struct fmap *map_arg(napi_env env, napi_value v)
{
	uint32_t id;

	if (napi_get_value_uint32(env, v, &id) != napi_ok || id >= g_nmaps || !g_maps[id].base) {
		napi_throw_type_error(env, NULL, "not a file mapping");
		return NULL;
	}
	return &g_maps[id];
}

static napi_value file_map_io(napi_env env, napi_callback_info info)
{
	size_t argc = 5;
	napi_value argv[5], ret;
	struct fmap *m;
	double offset;
	uint32_t length;
	bool write;
	uint8_t *buf = g_scratch, *at;
	size_t room = SCRATCH;
	napi_valuetype type = napi_undefined;
	int err;

	if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 4 ||
	    !(m = map_arg(env, argv[0])))
		return NULL;
	if (napi_get_value_double(env, argv[1], &offset) != napi_ok ||
	    napi_get_value_uint32(env, argv[2], &length) != napi_ok ||
	    napi_get_value_bool(env, argv[3], &write) != napi_ok) {
		napi_throw_type_error(env, NULL, "fileMapIo(id, offset, length, write[, buf])");
		return NULL;
	}
	if (argc > 4)
		napi_typeof(env, argv[4], &type);
	if (type != napi_undefined) {
		napi_typedarray_type kind;
		napi_value ab;
		size_t off;

		if (napi_get_typedarray_info(env, argv[4], &kind, &room, (void **)&buf, &ab,
					     &off) != napi_ok ||
		    kind != napi_uint8_array) {
			napi_throw_type_error(env, NULL, "expected a Uint8Array");
			return NULL;
		}
	}
	if (!(offset >= 0) || offset + length > (double)m->len || length > room)
		err = ERANGE;
	else if (write && !m->writable)
		err = EACCES;
	else {
		at = m->base + (uint64_t)offset;
		err = write ? guarded_copy(at, buf, length, at, at + length)
			    : guarded_copy(buf, at, length, at, at + length);
	}
	napi_create_int32(env, err, &ret);
	return ret;
}

static napi_value file_map_scratch(napi_env env, napi_callback_info info)
{
	napi_value ab;

	(void)info;
	if (napi_create_external_arraybuffer(env, g_scratch, SCRATCH, NULL, NULL, &ab) != napi_ok)
		return NULL;
	return ab;
}

static napi_value file_unmap(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value argv[1];
	struct fmap *m;

	if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
	    !(m = map_arg(env, argv[0])))
		return NULL;
	munmap(m->base, (size_t)m->len);
	m->base = NULL;
	return NULL;
}

void file_map_init(napi_env env, napi_value exports)
{
	static const struct {
		const char *name;
		napi_callback fn;
	} fns[] = {
		{ "fileMap", file_map },
		{ "fileMapIo", file_map_io },
		{ "fileMapScratch", file_map_scratch },
		{ "fileUnmap", file_unmap },
	};

	for (size_t i = 0; i < sizeof(fns) / sizeof(fns[0]); i++) {
		napi_value f;

		napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].fn, NULL, &f);
		napi_set_named_property(env, exports, fns[i].name, f);
	}
}
