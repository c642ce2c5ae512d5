/*
 * The engine's side of the unmap ring (docs/engine-protocol.md, *Unmap
 * leases*): a sealed memfd a client shares, mapped here. Everything in it is
 * the client's to scribble on, so nothing read from it is trusted: the
 * engine keeps its own count of records done, copies each record before
 * looking at it, and a ring whose tail is out of reach is reported, never
 * followed. The seals (no shrinking, no growing) keep the mapping's pages
 * there for as long as it is mapped, so no access here can fault.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lease-ring.h"
#include "protocol.h"

struct ring {
	uint8_t *base; /* NULL once unmapped */
	uint64_t head; /* records done: the engine's own count */
};

static struct uiommu_lease_head *head_of(struct ring *r)
{
	return (struct uiommu_lease_head *)r->base;
}

static struct uiommu_unmap_rec *rec_at(struct ring *r, uint64_t i)
{
	return (struct uiommu_unmap_rec *)(r->base + UIOMMU_LEASE_HEAD_BYTES) +
	       (i % UIOMMU_LEASE_RECS);
}

static napi_value fail_errno(napi_env env, int err, const char *what)
{
	napi_value code, msg, error, no;

	napi_create_string_utf8(env, what, NAPI_AUTO_LENGTH, &msg);
	napi_create_string_utf8(env, strerrorname_np(err), NAPI_AUTO_LENGTH, &code);
	napi_create_error(env, code, msg, &error);
	napi_create_int32(env, err, &no);
	napi_set_named_property(env, error, "errno", no);
	napi_throw(env, error);
	return NULL;
}

static void ring_finalize(napi_env env, void *data, void *hint)
{
	struct ring *r = data;

	(void)env;
	(void)hint;
	if (r->base)
		munmap(r->base, UIOMMU_LEASE_BYTES);
	free(r);
}

/* Fetch `want` arguments, the first being a ring from leaseMap; NULL (thrown) otherwise. */
static struct ring *ring_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv)
{
	size_t argc = want;
	void *data = NULL;

	if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < want ||
	    napi_get_value_external(env, argv[0], &data) != napi_ok || !data) {
		napi_throw_type_error(env, NULL, "expected a lease ring");
		return NULL;
	}
	if (!((struct ring *)data)->base) {
		fail_errno(env, EBADF, "lease ring unmapped");
		return NULL;
	}
	return data;
}

/*
 * leaseMap(fd): map a client's ring memfd (our copy, from pidfd_getfd). EINVAL
 * unless it is sealed against shrinking and growing at exactly
 * UIOMMU_LEASE_BYTES; the fd may be closed afterwards.
 */
static napi_value lease_map(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value argv[1], out;
	int32_t fd;
	int seals;
	struct stat st;
	struct ring *r;
	void *base;

	if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
	    napi_get_value_int32(env, argv[0], &fd) != napi_ok) {
		napi_throw_type_error(env, NULL, "expected an fd");
		return NULL;
	}
	seals = fcntl(fd, F_GET_SEALS);
	if (seals < 0)
		return fail_errno(env, errno, "F_GET_SEALS");
	if ((seals & (F_SEAL_SHRINK | F_SEAL_GROW)) != (F_SEAL_SHRINK | F_SEAL_GROW))
		return fail_errno(env, EINVAL, "lease ring not sealed");
	if (fstat(fd, &st) < 0)
		return fail_errno(env, errno, "fstat");
	if (st.st_size != UIOMMU_LEASE_BYTES)
		return fail_errno(env, EINVAL, "lease ring size");
	base = mmap(NULL, UIOMMU_LEASE_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (base == MAP_FAILED)
		return fail_errno(env, errno, "mmap");
	r = calloc(1, sizeof(*r));
	if (!r) {
		munmap(base, UIOMMU_LEASE_BYTES);
		return fail_errno(env, ENOMEM, "calloc");
	}
	r->base = base;
	r->head = __atomic_load_n(&head_of(r)->head, __ATOMIC_RELAXED);
	if (napi_create_external(env, r, ring_finalize, NULL, &out) != napi_ok) {
		ring_finalize(env, r, NULL);
		return fail_errno(env, ENOMEM, "napi_create_external");
	}
	return out;
}

/*
 * leaseHeader(ring, gen, validGen, leases): publish the lease table (the
 * bytes of `leases`, at most UIOMMU_LEASE_FDS entries) and the generation.
 * A revocation passes an empty table and a validGen that differs from gen;
 * it is ordered (full barrier) before any later read of the ring's tail.
 */
static napi_value lease_header(napi_env env, napi_callback_info info)
{
	napi_value argv[4];
	struct ring *r = ring_args(env, info, 4, argv);
	uint32_t gen, valid, nfd;
	void *data;
	size_t len;
	struct uiommu_lease_head *h;

	if (!r)
		return NULL;
	if (napi_get_value_uint32(env, argv[1], &gen) != napi_ok ||
	    napi_get_value_uint32(env, argv[2], &valid) != napi_ok ||
	    napi_get_buffer_info(env, argv[3], &data, &len) != napi_ok) {
		napi_throw_type_error(env, NULL, "expected gen, validGen, Buffer");
		return NULL;
	}
	h = head_of(r);
	nfd = len / sizeof(struct uiommu_lease_fd);
	if (nfd > UIOMMU_LEASE_FDS)
		nfd = UIOMMU_LEASE_FDS;
	/* the library reads the table only while gen equals valid_gen: invalidate first */
	__atomic_store_n(&h->gen, gen, __ATOMIC_SEQ_CST);
	if (gen == valid) {
		memcpy(h->leases, data, nfd * sizeof(struct uiommu_lease_fd));
		__atomic_store_n(&h->nfd, nfd, __ATOMIC_RELEASE);
	}
	__atomic_store_n(&h->valid_gen, valid, __ATOMIC_SEQ_CST);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return NULL;
}

/*
 * leaseTake(ring, out): copy the records posted since the last take (at most
 * what `out` holds, 64 bytes each) into `out`; returns how many, or -1 when
 * the tail is behind the engine's count or more than a ring ahead (the
 * client broke the ring).
 */
static napi_value lease_take(napi_env env, napi_callback_info info)
{
	napi_value argv[2], out;
	struct ring *r = ring_args(env, info, 2, argv);
	void *data;
	size_t len;
	uint64_t tail, n, i;

	if (!r)
		return NULL;
	if (napi_get_buffer_info(env, argv[1], &data, &len) != napi_ok) {
		napi_throw_type_error(env, NULL, "expected a Buffer");
		return NULL;
	}
	tail = __atomic_load_n(&head_of(r)->tail, __ATOMIC_ACQUIRE);
	n = tail - r->head;
	if (tail < r->head || n > UIOMMU_LEASE_RECS) {
		napi_create_int32(env, -1, &out);
		return out;
	}
	if (n > len / sizeof(struct uiommu_unmap_rec))
		n = len / sizeof(struct uiommu_unmap_rec);
	for (i = 0; i < n; i++)
		memcpy((struct uiommu_unmap_rec *)data + i, rec_at(r, r->head + i),
		       sizeof(struct uiommu_unmap_rec));
	napi_create_int32(env, (int32_t)n, &out);
	return out;
}

/*
 * leaseDone(ring, results): the next results.length records are done:
 * each one's state and result come from `results` (Int32Array pairs: state,
 * result), then the head moves past them.
 */
static napi_value lease_done(napi_env env, napi_callback_info info)
{
	napi_value argv[2];
	struct ring *r = ring_args(env, info, 2, argv);
	napi_typedarray_type type;
	size_t len, off;
	void *data;
	napi_value ab;
	int32_t *res;

	if (!r)
		return NULL;
	if (napi_get_typedarray_info(env, argv[1], &type, &len, &data, &ab, &off) != napi_ok ||
	    type != napi_int32_array) {
		napi_throw_type_error(env, NULL, "expected an Int32Array");
		return NULL;
	}
	res = data;
	for (size_t i = 0; i + 1 < len; i += 2) {
		struct uiommu_unmap_rec *rec = rec_at(r, r->head);

		__atomic_store_n(&rec->result, res[i + 1], __ATOMIC_RELAXED);
		__atomic_store_n(&rec->state, (uint32_t)res[i], __ATOMIC_RELEASE);
		r->head++;
	}
	__atomic_store_n(&head_of(r)->head, r->head, __ATOMIC_RELEASE);
	return NULL;
}

/* leaseUnmap(ring): unmap now (the finalizer would later). */
static napi_value lease_unmap(napi_env env, napi_callback_info info)
{
	napi_value argv[1];
	struct ring *r = ring_args(env, info, 1, argv);

	if (r) {
		munmap(r->base, UIOMMU_LEASE_BYTES);
		r->base = NULL;
	}
	return NULL;
}

void lease_ring_init(napi_env env, napi_value exports)
{
	static const struct {
		const char *name;
		napi_callback fn;
	} fns[] = {
		{ "leaseMap", lease_map },     { "leaseHeader", lease_header },
		{ "leaseTake", lease_take },   { "leaseDone", lease_done },
		{ "leaseUnmap", lease_unmap },
	};

	for (size_t i = 0; i < sizeof(fns) / sizeof(fns[0]); i++) {
		napi_value f;

		napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].fn, NULL, &f);
		napi_set_named_property(env, exports, fns[i].name, f);
	}
}
