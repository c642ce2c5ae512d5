/*
 * The engine protocol between the preload library and the engine server:
 * frame layouts and operation numbers. docs/engine-protocol.md is the
 * contract; this header is its C spelling and must match it exactly.
 * All integers are little-endian on the wire (the library only runs on
 * little-endian hosts, where the structs below are the wire format).
 */
#ifndef UIOMMU_PROTOCOL_H
#define UIOMMU_PROTOCOL_H

#include <stdint.h>

/* Operations (request `op`). */
enum uiommu_op {
	UIOMMU_OP_HELLO = 1,
	UIOMMU_OP_FORK_BEGIN = 2,
	UIOMMU_OP_FORK_END = 3,
	UIOMMU_OP_EXEC_BEGIN = 4,
	UIOMMU_OP_EXEC_ABORT = 5,
	UIOMMU_OP_OPEN = 10,
	UIOMMU_OP_CLOSE = 11,
	UIOMMU_OP_DUP = 12,
	UIOMMU_OP_IOCTL = 13,
	UIOMMU_OP_READ = 14,
	UIOMMU_OP_WRITE = 15,
	UIOMMU_OP_PREAD = 16,
	UIOMMU_OP_PWRITE = 17,
	UIOMMU_OP_FSTAT = 18,
	UIOMMU_OP_STAT = 19,
	UIOMMU_OP_PROC_STATUS = 20,
	UIOMMU_OP_SYSFS_READ = 21,
	UIOMMU_OP_MMAP = 30,
	UIOMMU_OP_MUNMAP = 31,
	UIOMMU_OP_MREMAP = 32,
	UIOMMU_OP_MMIO = 33,
	UIOMMU_OP_MMIO_FAULT = 34,
	UIOMMU_OP_SYNC = 35,
	/* Served by the engine's transport itself (docs/engine-protocol.md, *Channel*). */
	UIOMMU_OP_CHANNEL = 36,
	UIOMMU_OP_DOORBELL = 37,
};

/* HELLO a0: who is saying hello. */
enum uiommu_hello_kind {
	UIOMMU_HELLO_NEW = 0,
	UIOMMU_HELLO_FORK_CHILD = 1,
	UIOMMU_HELLO_EXEC = 2,
};

/* Request `flags`: the library counts the program's address-space changes ... */
#define UIOMMU_REQ_MM_TRACKED 1
/* ... and there was one since this connection's previous request. */
#define UIOMMU_REQ_MM_CHANGED 2
/* An UNMAP_DMA IOCTL asking for an unmap lease on its fd (a4: the ring's memfd or -1). */
#define UIOMMU_REQ_LEASE 4
/* An IOCTL whose payload ends with a5 bytes of the program's memory at a4 (docs/engine-protocol.md). */
#define UIOMMU_REQ_SPAN 8

/* A request: this header, then `len` payload bytes. */
struct uiommu_req {
	uint16_t op;
	uint16_t flags;
	uint32_t len;
	int32_t pid;
	int32_t tid;
	uint64_t a[6];
};

/* A response: this header, then `len` payload bytes. */
struct uiommu_resp {
	int64_t ret;
	int32_t err;
	int32_t newfd;
	uint32_t len;
	uint32_t reserved; /* the zap count of the process's device mappings */
};

/* FSTAT/STAT payload when ret is 1 (a device node). */
struct uiommu_stat {
	uint32_t mode;
	uint32_t major;
	uint32_t minor;
	uint32_t reserved;
};

/*
 * `request & 0xffff` of the ioctls that can install a new file, for which the
 * library reserves a spare fd: type ';' (0x3b) and the command nr.
 */
#define UIOMMU_IOC_VFIO_GROUP_GET_DEVICE_FD 0x3b6a /* VFIO_BASE + 6 */
#define UIOMMU_IOC_VFIO_DEVICE_FEATURE 0x3b75	   /* VFIO_BASE + 17 */
#define UIOMMU_IOC_IOMMU_FAULT_QUEUE_ALLOC 0x3b8e
#define UIOMMU_IOC_IOMMU_VEVENTQ_ALLOC 0x3b93
#define UIOMMU_IOC_IOMMU_TEST_CMD 0x3ba0

/* Most bytes of an ioctl's argument struct an IOCTL request carries. */
#define UIOMMU_IOCTL_ARG_MAX 512

/*
 * An IOCTL answer's payload: the engine's writes into the caller's memory
 * that the library makes (in order): this header, `nr` entries, then the
 * `bytes` written, back to back. At most UIOMMU_WRITEBACK_MAX_NR writes of
 * UIOMMU_WRITEBACK_MAX_BYTES in all.
 */
struct uiommu_writeback {
	uint32_t nr;
	uint32_t bytes;
	struct {
		uint64_t addr;
		uint64_t len;
	} w[];
};

#define UIOMMU_WRITEBACK_MAX_NR 8
#define UIOMMU_WRITEBACK_MAX_BYTES 1024

/* Largest payload either side sends (a PROC_STATUS answer is at most this). */
#define UIOMMU_MAX_PAYLOAD (1 << 16)

/* Environment variables. */
#define UIOMMU_ENV_SOCK "UIOMMU_SOCK"
#define UIOMMU_ENV_ROOT "UIOMMU_ROOT"
/* The host page size programs see (a host's `pageSize`); unset: the machine's. */
#define UIOMMU_ENV_PAGE_SIZE "UIOMMU_PAGE_SIZE"
/* "0": the library never asks for unmap leases (every UNMAP_DMA is a request). */
#define UIOMMU_ENV_UNMAP_LEASE "UIOMMU_UNMAP_LEASE"
/* "0": the library never asks for a channel (every call goes on the socket). */
#define UIOMMU_ENV_CHANNEL "UIOMMU_CHANNEL"
/* Set by the library's exec wrappers to the pid that called exec. */
#define UIOMMU_ENV_EXEC "UIOMMU_EXEC"
/*
 * Set by the native launcher (native/launch.c): "<engine pid>:<path>", the
 * file the engine creates once it serves; the library waits for it before
 * its first need of the engine (native/preload/engine-wait.c).
 */
#define UIOMMU_ENV_READY "UIOMMU_READY"

/*
 * The connection fd is parked at the program's RLIMIT_NOFILE soft limit (or
 * just below it); where that fails, and after a dup2 onto its number, it
 * moves to the lowest free fd at or above this.
 */
#define UIOMMU_SOCK_FD_MIN 900

/*
 * The unmap ring (docs/engine-protocol.md, *Unmap leases*): a sealed memfd of
 * UIOMMU_LEASE_BYTES the library shares with the engine. Page 0 is the
 * header, the records follow. The engine writes gen, valid_gen, leases[]
 * and head; the library writes tail and the records' first fields.
 */
#define UIOMMU_LEASE_MAGIC 0x75756c31u /* "1luu" */
#define UIOMMU_LEASE_FDS 4
#define UIOMMU_LEASE_RECS 4096
#define UIOMMU_LEASE_HEAD_BYTES 4096
#define UIOMMU_LEASE_BYTES (UIOMMU_LEASE_HEAD_BYTES + UIOMMU_LEASE_RECS * 64)

/* One leased container fd: its SPAPR windows (page shift, first and last bus address). */
struct uiommu_lease_fd {
	int32_t fd;
	uint32_t nwin;
	uint32_t shift[2];
	uint64_t start[2];
	uint64_t last[2];
};

struct uiommu_lease_head {
	uint32_t magic; /* library: UIOMMU_LEASE_MAGIC */
	uint32_t gen; /* engine: bumped at every grant and revocation; 0 until it mapped the ring */
	uint32_t valid_gen; /* engine: leases[] hold while gen equals this */
	uint32_t nfd;	    /* engine: entries of leases[] in use */
	struct uiommu_lease_fd leases[UIOMMU_LEASE_FDS];
	uint64_t head __attribute__((aligned(64))); /* engine: records done */
	uint64_t tail __attribute__((aligned(64))); /* library: records posted */
};

/* Record states (written by the engine, 0 by the library). */
#define UIOMMU_REC_POSTED 0
#define UIOMMU_REC_DONE 1
#define UIOMMU_REC_DROPPED 2

/* One posted VFIO_IOMMU_UNMAP_DMA: the struct as the program passed it. */
struct uiommu_unmap_rec {
	uint64_t arg;
	uint64_t iova;
	uint64_t size;
	uint32_t argsz;
	uint32_t flags;
	int32_t fd;
	int32_t tid;
	uint32_t gen;	/* the lease generation it was posted under */
	uint32_t state; /* engine: UIOMMU_REC_* */
	int32_t result; /* engine: 0 or -errno (state DONE) */
	uint32_t reserved[3];
};

/*
 * The channel (docs/engine-protocol.md, *Channel*): a sealed memfd of
 * UIOMMU_CHAN_BYTES the engine creates for a connection and passes with the
 * CHANNEL answer. A call posts its request in the slot of its nesting depth
 * and finds its answer there. The engine writes engine_cpu, polling, done
 * and the answers; the library writes client_cpu, posted, sleeping and the
 * requests. Nothing the library writes is trusted by the engine.
 */
#define UIOMMU_CHAN_SLOTS 4
#define UIOMMU_CHAN_OUT_MAX 1280 /* answer payload: an IOCTL's write-back at most */
#define UIOMMU_CHAN_BYTES 12288

struct uiommu_chan_slot {
	uint32_t posted;   /* library: sequence number of the request in req/arg */
	uint32_t sleeping; /* library: 1 while it may wait on done in futex_wait */
	uint32_t done
		__attribute__((aligned(64))); /* engine: sequence number answered (futex word) */
	struct uiommu_req req __attribute__((aligned(64))); /* library: the request header */
	uint8_t arg[UIOMMU_IOCTL_ARG_MAX];		    /* library: its req.len payload bytes */
	struct uiommu_resp resp;			    /* engine: the answer header */
	uint8_t out[UIOMMU_CHAN_OUT_MAX];		    /* engine: its resp.len payload bytes */
};

struct uiommu_chan {
	int32_t engine_cpu; /* engine: the CPU it last ran on */
	uint32_t polling;   /* engine: 1 while awake, to look before sleeping (no doorbell) */
	int32_t client_cpu __attribute__((aligned(64))); /* library: the CPU it last posted from */
	struct uiommu_chan_slot slot[UIOMMU_CHAN_SLOTS] __attribute__((aligned(64)));
};

_Static_assert(sizeof(struct uiommu_chan) <= UIOMMU_CHAN_BYTES, "channel fits");
_Static_assert(UIOMMU_CHAN_OUT_MAX >= sizeof(struct uiommu_writeback) +
					      UIOMMU_WRITEBACK_MAX_NR * 16 +
					      UIOMMU_WRITEBACK_MAX_BYTES,
	       "a write-back fits a slot");

_Static_assert(sizeof(struct uiommu_unmap_rec) == 64, "unmap record is 64 bytes");
_Static_assert(sizeof(struct uiommu_lease_head) <= UIOMMU_LEASE_HEAD_BYTES, "lease header fits");

_Static_assert(sizeof(struct uiommu_req) == 64, "request header is 64 bytes");
_Static_assert(sizeof(struct uiommu_resp) == 24, "response header is 24 bytes");
_Static_assert(sizeof(struct uiommu_stat) == 16, "stat payload is 16 bytes");

#endif
