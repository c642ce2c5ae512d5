/**
 * Unmap leases (docs/engine-protocol.md, *Unmap leases*): the engine's side
 * of the library's SPAPR v2 UNMAP_DMA fast path. A connection that offered
 * a ring (a sealed memfd, native/lease-ring.c) may hold leases on container
 * fds: the container's windows, published in the ring under a generation.
 * While they hold, its library posts plainly valid unmaps as records and
 * answers them itself; the engine performs every posted record, in order,
 * as that process's own UNMAP_DMA (`perform`) before it does anything that
 * could observe them (`drainAll`), and revokes every lease (`revokeAll`)
 * before anything that could change a leased container.
 *
 * Nothing in a ring is trusted: a record names only a fd and an unmap; it is
 * performed only when it carries the generation being accepted and names a
 * leased fd (else dropped); a record the model refuses, or a ring whose
 * tail is out of reach, means the client broke the protocol: its leases
 * end for good (it goes on through ordinary calls). Either only touches the
 * client's own container, as its own ioctl could.
 */
import { type LeaseRing, type LeaseRingAddon, leaseRingAddon } from '../host/native.ts';

/** One posted UNMAP_DMA, as copied out of the ring. */
export interface UnmapRecord {
  readonly arg: bigint;
  readonly iova: bigint;
  readonly size: bigint;
  readonly argsz: number;
  readonly flags: number;
  readonly fd: number;
  readonly tid: number;
  readonly gen: number;
}

/** A window as a lease publishes it. */
export interface LeaseWindow {
  readonly pageShift: number;
  readonly start: bigint;
  readonly last: bigint;
}

/** Record states (UIOMMU_REC_* of native/protocol.h). */
const REC_DONE = 1;
const REC_DROPPED = 2;
const REC_BYTES = 64;
/** UIOMMU_LEASE_FDS, UIOMMU_LEASE_RECS, sizeof(struct uiommu_lease_fd). */
const LEASE_FDS = 4;
const LEASE_RECS = 4096;
const LEASE_FD_BYTES = 48;

interface Lease {
  readonly ring: LeaseRing;
  /** The generation last published. */
  gen: number;
  /** Records of this generation are performed; undefined: none are (revoked). */
  accepted: number | undefined;
  /** Leased fds and their windows, as published. */
  readonly fds: Map<number, readonly LeaseWindow[]>;
  /** The client broke the protocol: no more leases. */
  broken: boolean;
}

/**
 * The leases of every connection (`O`). `perform` makes the records'
 * UNMAP_DMAs, in order, as the owner's process and returns each one's 0 or
 * -errno.
 */
export class UnmapLeases<O> {
  private readonly leases = new Map<O, Lease>();
  private readonly buf = Buffer.alloc(LEASE_RECS * REC_BYTES);
  /** Leases whose generation is accepted (nothing to revoke while 0). */
  private live = 0;

  constructor(
    private readonly perform: (owner: O, recs: readonly UnmapRecord[]) => ArrayLike<number>,
    private readonly addon: LeaseRingAddon = leaseRingAddon(),
  ) {}

  /** Whether `owner` has a ring. */
  has(owner: O): boolean {
    return this.leases.has(owner);
  }

  /** Map `owner`'s ring from our copy `fd` of its memfd (the caller closes it); throws on refusal. */
  attach(owner: O, fd: number): void {
    if (this.leases.has(owner)) return;
    const ring = this.addon.leaseMap(fd);
    const lease: Lease = { ring, gen: 1, accepted: undefined, fds: new Map(), broken: false };
    this.addon.leaseHeader(ring, lease.gen, 0, Buffer.alloc(0));
    this.leases.set(owner, lease);
  }

  /**
   * Lease `fd` to `owner` with `windows` (every posted record was performed
   * already: the caller drained). Other fds already leased keep their
   * lease; a table that is full, or a broken client, gets nothing.
   */
  grant(owner: O, fd: number, windows: readonly LeaseWindow[]): void {
    const lease = this.leases.get(owner);
    if (!lease || lease.broken) return;
    if (lease.accepted === undefined) lease.fds.clear();
    if (!lease.fds.has(fd) && lease.fds.size >= LEASE_FDS) return;
    lease.fds.set(fd, windows);
    if (lease.accepted === undefined) this.live++;
    lease.gen++;
    lease.accepted = lease.gen;
    this.addon.leaseHeader(lease.ring, lease.gen, lease.gen, encodeTable(lease.fds));
  }

  /** Perform every record posted on every ring. */
  drainAll(): void {
    for (const [owner, lease] of this.leases) this.drain(owner, lease);
  }

  /**
   * End every lease: the new generation is published first, then what was
   * posted under the old one is performed, so a library that saw its lease
   * still valid after posting has its record performed now, and one that
   * did not asks (SYNC) and finds it done or dropped.
   */
  revokeAll(): void {
    if (this.live === 0) {
      this.drainAll();
      return;
    }
    for (const [owner, lease] of this.leases) {
      if (lease.accepted === undefined) {
        this.drain(owner, lease);
        continue;
      }
      this.revoke(lease);
      this.drain(owner, lease);
      lease.accepted = undefined;
      this.live--;
    }
  }

  /** `owner`'s connection closed: its records are performed, its ring unmapped. */
  close(owner: O): void {
    const lease = this.leases.get(owner);
    if (!lease) return;
    this.drain(owner, lease);
    if (lease.accepted !== undefined) this.live--;
    this.leases.delete(owner);
    this.addon.leaseUnmap(lease.ring);
  }

  private revoke(lease: Lease): void {
    lease.gen++;
    this.addon.leaseHeader(lease.ring, lease.gen, lease.gen - 1, Buffer.alloc(0));
  }

  /** The client broke the protocol: its leases end for good. */
  private breakLease(lease: Lease): void {
    if (lease.accepted !== undefined) this.live--;
    lease.accepted = undefined;
    lease.broken = true;
    this.revoke(lease);
  }

  private drain(owner: O, lease: Lease): void {
    if (lease.broken) return;
    for (;;) {
      const n = this.addon.leaseTake(lease.ring, this.buf);
      if (n < 0) {
        this.breakLease(lease);
        return;
      }
      if (n === 0) return;
      // pairs of (state, result); records of another generation or fd are dropped
      const results = new Int32Array(2 * n);
      for (let i = 0; i < n; i++) results[2 * i] = REC_DROPPED;
      const valid: UnmapRecord[] = [];
      const at: number[] = [];
      for (let i = 0; i < n; i++) {
        const rec = decodeRecord(this.buf, i * REC_BYTES);
        if (rec.gen !== lease.accepted || !lease.fds.has(rec.fd)) continue;
        valid.push(rec);
        at.push(i);
      }
      const done = valid.length > 0 ? this.perform(owner, valid) : [];
      for (let k = 0; k < at.length; k++) {
        results[2 * at[k]!] = REC_DONE;
        results[2 * at[k]! + 1] = done[k]!;
        if (done[k] !== 0 && !lease.broken) this.breakLease(lease);
      }
      this.addon.leaseDone(lease.ring, results);
      if (lease.broken) return;
    }
  }
}

function decodeRecord(buf: Buffer, at: number): UnmapRecord {
  return {
    arg: buf.readBigUInt64LE(at),
    iova: buf.readBigUInt64LE(at + 8),
    size: buf.readBigUInt64LE(at + 16),
    argsz: buf.readUInt32LE(at + 24),
    flags: buf.readUInt32LE(at + 28),
    fd: buf.readInt32LE(at + 32),
    tid: buf.readInt32LE(at + 36),
    gen: buf.readUInt32LE(at + 40),
  };
}

/** `struct uiommu_lease_fd` entries. */
function encodeTable(fds: ReadonlyMap<number, readonly LeaseWindow[]>): Buffer {
  const out = Buffer.alloc(fds.size * LEASE_FD_BYTES);
  let at = 0;
  for (const [fd, windows] of fds) {
    const w = windows.slice(0, 2);
    out.writeInt32LE(fd, at);
    out.writeUInt32LE(w.length, at + 4);
    w.forEach((win, i) => {
      out.writeUInt32LE(win.pageShift, at + 8 + 4 * i);
      out.writeBigUInt64LE(win.start, at + 16 + 8 * i);
      out.writeBigUInt64LE(win.last, at + 32 + 8 * i);
    });
    at += LEASE_FD_BYTES;
  }
  return out;
}
