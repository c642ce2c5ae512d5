/*
 * SPAPR v2 VFIO_IOMMU_UNMAP_DMA without a round trip (docs/engine-protocol.md,
 * *Unmap leases*). The engine grants this connection a lease on a container
 * fd: the container's windows, published in a ring this library shares with
 * it (a sealed memfd). While the lease holds, an unmap that is plainly valid
 * by the kernel's rules (argsz exactly the struct, no flags, a non-empty
 * range aligned to its window's page size and inside that window) is posted
 * as a record and answered 0 here; the engine performs the records, in order,
 * before it serves any request of anyone, before any device DMA and before
 * anyone sees its state. Anything else, and every unmap while no lease
 * holds, is an ordinary IOCTL (which asks for the lease). All of it runs
 * under the library's lock.
 */
#include "preload.h"

/* struct vfio_iommu_type1_dma_unmap without a bitmap (the part the kernel reads on SPAPR). */
struct dma_unmap {
	uint32_t argsz;
	uint32_t flags;
	uint64_t iova;
	uint64_t size;
};

/* VFIO_IOMMU_UNMAP_DMA: _IO(';', VFIO_BASE + 14) in this machine's encoding. */
#define UNMAP_DMA ((unsigned int)_IO(';', 100 + 14))

static struct uiommu_lease_head *g_ring; /* this process's ring, once the engine took it */
static pid_t g_ring_pid;		 /* the process that made g_ring (a fork child did not) */
static int g_ring_off; /* no leases: UIOMMU_UNMAP_LEASE=0, or the engine could not take a ring */
static int g_ring_env; /* UIOMMU_UNMAP_LEASE was read */
static int g_ring_fd = -1; /* the memfd, open while a request offers it */

static struct uiommu_unmap_rec *rec_at(uint64_t i)
{
	return (struct uiommu_unmap_rec *)((uint8_t *)g_ring + UIOMMU_LEASE_HEAD_BYTES) +
	       (i % UIOMMU_LEASE_RECS);
}

int lease_is_unmap(unsigned long request)
{
	return (unsigned int)request == UNMAP_DMA;
}

/* The ring of this process, or NULL; a ring inherited over fork is dropped. */
static struct uiommu_lease_head *ring(void)
{
	if (g_ring && g_ring_pid != self_pid()) {
		syscall(SYS_munmap, g_ring, UIOMMU_LEASE_BYTES);
		g_ring = NULL;
		g_ring_off = 0;
	}
	return g_ring;
}

/* The window of a lease entry holding [iova, iova + size): 1 when there is one and both are aligned. */
static int in_window(const struct uiommu_lease_fd *e, uint64_t iova, uint64_t size)
{
	uint32_t n = e->nwin < 2 ? e->nwin : 2;

	for (uint32_t w = 0; w < n; w++) {
		uint64_t mask;

		if (e->shift[w] > 63 || iova < e->start[w] || iova > e->last[w])
			continue;
		mask = (1ull << e->shift[w]) - 1;
		return !((iova | size) & mask) && size - 1 <= e->last[w] - iova;
	}
	return 0;
}

/* The lease entry of `fd` valid under generation *gen, or NULL. */
static const struct uiommu_lease_fd *lease_of(struct uiommu_lease_head *h, int fd, uint32_t *gen)
{
	uint32_t g = __atomic_load_n(&h->gen, __ATOMIC_ACQUIRE);
	uint32_t n = __atomic_load_n(&h->nfd, __ATOMIC_ACQUIRE);

	if (!g || g != __atomic_load_n(&h->valid_gen, __ATOMIC_ACQUIRE))
		return NULL;
	for (uint32_t i = 0; i < n && i < UIOMMU_LEASE_FDS; i++)
		if (h->leases[i].fd == fd) {
			*gen = g;
			return &h->leases[i];
		}
	return NULL;
}

/*
 * Serve UNMAP_DMA of engine fd `fd` from the lease: 1 with *ret (and errno)
 * set when served, 0 when the call must go to the engine.
 */
int lease_unmap(int fd, void *arg, int *ret)
{
	struct uiommu_lease_head *h = ring();
	const struct uiommu_lease_fd *e;
	struct uiommu_unmap_rec *rec;
	struct uiommu_resp rs;
	struct dma_unmap u;
	uint32_t gen = 0;
	uint64_t tail;

	if (!h || !(e = lease_of(h, fd, &gen)))
		return 0;
	if (read_user(&u, (uintptr_t)arg, sizeof(u)) != sizeof(u) || u.argsz != sizeof(u) ||
	    u.flags || !u.size || !in_window(e, u.iova, u.size))
		return 0;
	tail = h->tail;
	if (tail - __atomic_load_n(&h->head, __ATOMIC_ACQUIRE) >= UIOMMU_LEASE_RECS)
		return 0; /* full: the ordinary call makes the engine empty it first */
	rec = rec_at(tail);
	*rec = (struct uiommu_unmap_rec){
		.arg = (uintptr_t)arg,
		.iova = u.iova,
		.size = u.size,
		.argsz = u.argsz,
		.flags = u.flags,
		.fd = fd,
		.tid = self_tid(),
		.gen = gen,
		.state = UIOMMU_REC_POSTED,
	};
	__atomic_store_n(&h->tail, tail + 1, __ATOMIC_RELEASE);
	/* against the engine's revocation: it stores gen, then reads tail */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (__atomic_load_n(&h->gen, __ATOMIC_ACQUIRE) == gen) {
		*ret = 0;
		return 1;
	}
	/* revoked meanwhile: SYNC returns once the engine did the record or dropped it */
	if (call_simple(UIOMMU_OP_SYNC, 0, 0, &rs) < 0) {
		errno = rs.err ? rs.err : EIO;
		*ret = -1;
		return 1;
	}
	if (__atomic_load_n(&rec->state, __ATOMIC_ACQUIRE) != UIOMMU_REC_DONE)
		return 0;
	*ret = rec->result ? -1 : 0;
	if (rec->result)
		errno = -rec->result;
	return 1;
}

/*
 * Before an UNMAP_DMA goes to the engine: ask for a lease (UIOMMU_REQ_LEASE),
 * offering a new ring in a4 when this process has none yet.
 */
void lease_ask(struct uiommu_req *rq)
{
	void *base;
	int fd;

	rq->a[4] = (uint64_t)(int64_t)-1;
	if (!g_ring_env) {
		const char *v = getenv(UIOMMU_ENV_UNMAP_LEASE);

		g_ring_off = v && !strcmp(v, "0");
		g_ring_env = 1;
	}
	if (g_ring_off)
		return;
	rq->flags |= UIOMMU_REQ_LEASE;
	if (ring())
		return;
	fd = (int)syscall(SYS_memfd_create, "uiommu-unmap-ring", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		goto off;
	if (ftruncate(fd, UIOMMU_LEASE_BYTES) ||
	    real.fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL))
		goto close;
	base = (void *)syscall(SYS_mmap, NULL, UIOMMU_LEASE_BYTES, PROT_READ | PROT_WRITE,
			       MAP_SHARED, fd, 0);
	if (base == MAP_FAILED)
		goto close;
	g_ring = base;
	g_ring_pid = self_pid();
	g_ring->magic = UIOMMU_LEASE_MAGIC;
	g_ring_fd = fd;
	rq->a[4] = (uint64_t)fd;
	return;
close:
	real.close(fd);
off:
	g_ring_off = 1;
	rq->flags &= ~UIOMMU_REQ_LEASE;
}

/* After that request: the offered memfd closes; a ring the engine did not take is given up. */
void lease_asked(void)
{
	if (g_ring_fd < 0)
		return;
	real.close(g_ring_fd);
	g_ring_fd = -1;
	if (g_ring && !__atomic_load_n(&g_ring->gen, __ATOMIC_ACQUIRE)) {
		syscall(SYS_munmap, g_ring, UIOMMU_LEASE_BYTES);
		g_ring = NULL;
		g_ring_off = 1;
	}
}
