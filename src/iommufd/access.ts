import { Errno, fail } from '../abi/errno.ts';
import { U64_MAX } from '../abi/layout.ts';
import type { Mm, PhysRun } from '../iommu/mm.ts';
import { IOMMU_READ, IOMMU_WRITE } from '../iommu/prot.ts';
import type { IommufdCtx } from './context.ts';
import type { Area, IoptAccess } from './io-pagetable.ts';
import type { Ioas } from './ioas.ts';
import { IommufdObject } from './object.ts';
import { ACCESS_RW } from './pages.ts';

/** What the in-kernel user of an access provides (iommufd_access_ops). */
export interface AccessOps {
  /** needs_pin_pages: the user pins pages, so the IOAS alignment becomes PAGE_SIZE. */
  readonly needsPinPages: boolean;
  /**
   * `[iova, iova+length-1]` (u64 wrap-around) is being unmapped: unpin every
   * pinned range intersecting it before returning.
   */
  unmap(iova: bigint, length: bigint): void;
}

/** IOVAs up to this take rw()'s Number fast path (any byte of a short copy stays exact). */
const FAST_IOVA_MAX = BigInt(Number.MAX_SAFE_INTEGER - 2 ** 32);

/** Physically contiguous whole pages, as returned by {@link IommufdAccess.pinPages}. */
export interface PinnedRun {
  phys: bigint;
  length: bigint;
}

/** One area's share of an IOVA range: `[cur, end]` of `area`. */
interface Piece {
  area: Area;
  cur: bigint;
  end: bigint;
}

/** check_area_prot(): the area allows a write (or a read). */
function permits(area: Area, write: boolean): boolean {
  return (area.prot & (write ? IOMMU_WRITE : IOMMU_READ)) !== 0;
}

/** Page indexes of the page set behind `[cur, end]` of an area. */
function pageIndexes(p: Piece): [bigint, bigint] {
  return [
    p.area.pages.indexOf(p.area.offsetOf(p.cur)),
    p.area.pages.indexOf(p.area.offsetOf(p.end)),
  ];
}

/**
 * An in-kernel user of an IOAS (the kernel's iommufd_access): emulated
 * devices and the selftest reach IOVA through it, by pinning pages or by
 * copying. It is an ACCESS object whose ID is never reported; its creator
 * holds it (DESTROY is EBUSY) and it holds the context, so the context
 * outlives the /dev/iommu fd while the access exists. While attached it
 * holds its IOAS and is told of every unmap that hits its pins.
 */
export class IommufdAccess extends IommufdObject implements IoptAccess {
  readonly type = 'access';
  readonly iovaAlignment: bigint;
  /** The IOAS that pins and copies use; undefined while detached or changing IOAS. */
  #ioas: Ioas | undefined;
  /** The IOAS that unpins use: still the old one while a change notifies the user. */
  #ioasUnpin: Ioas | undefined;

  private constructor(
    readonly ctx: IommufdCtx,
    private readonly ops: AccessOps,
    /** An iommufd-internal access (HW queues): no context reference; its pins lock their areas. */
    readonly internal: boolean,
  ) {
    super();
    this.iovaAlignment = ops.needsPinPages ? ctx.host.memory.pageSize : 1n;
  }

  /**
   * iommufd_access_create(): a new, unattached access held by its creator.
   * With `internal` (iommufd_access_create_internal) the context is not
   * held, and while pinned an area cannot be unmapped (EBUSY).
   */
  static create(ctx: IommufdCtx, ops: AccessOps, opts = { internal: false }): IommufdAccess {
    const access = ctx.create(new IommufdAccess(ctx, ops, opts.internal), () => {});
    access.get();
    if (!opts.internal) ctx.hold();
    return access;
  }

  /** The attached IOAS, if any. */
  get ioas(): Ioas | undefined {
    return this.#ioas;
  }

  /** iommufd_access_destroy(): the creator is done; detach (unmapping everything) and go. */
  release(): void {
    this.put();
    this.ctx.remove(this);
    if (!this.internal) this.ctx.release();
  }

  destroy(): void {
    if (this.#ioas) this.changeIoas(undefined);
  }

  /** iommufd_access_attach(): ENOENT for a missing IOAS, EADDRINUSE if its areas misalign. */
  attach(ioasId: number): void {
    if (this.#ioas) fail('EINVAL', 'access already attached', 'iommufd_access_attach');
    this.changeIoas(this.ctx.get<Ioas>(ioasId, 'ioas'));
  }

  /**
   * iommufd_access_replace(): ENOENT when not attached or for a missing
   * IOAS. The user is told that everything was unmapped.
   */
  replace(ioasId: number): void {
    if (!this.#ioas) fail('ENOENT', 'access not attached', 'iommufd_access_replace');
    this.changeIoas(this.ctx.get<Ioas>(ioasId, 'ioas'));
  }

  /** Join `next` first (may fail), then unmap everything from the old IOAS and leave it. */
  private changeIoas(next: Ioas | undefined): void {
    const cur = this.#ioas;
    if (cur === next) return;
    this.#ioas = undefined;
    if (next) {
      try {
        next.iopt.addAccess(this);
      } catch (e) {
        this.#ioas = cur;
        throw e;
      }
      next.get();
    }
    if (cur) {
      this.ops.unmap(0n, U64_MAX);
      cur.iopt.removeAccess(this);
      cur.put();
    }
    this.#ioas = next;
    this.#ioasUnpin = next;
  }

  /** IoptAccess: an unmap of `[iova, iova+length)` is under way. */
  notifyUnmap(iova: bigint, length: bigint): void {
    this.ops.unmap(iova, length);
  }

  /**
   * The areas covering `[iova, last]` back to back, each clipped, checked by
   * `check` in order; ENOENT at the first hole (after the pieces before it
   * were checked, as iopt_for_each_contig_area() then _contig_done()).
   * `where` names the caller's kernel function.
   */
  private walk(
    ioas: Ioas,
    iova: bigint,
    last: bigint,
    where: string,
    check: (p: Piece) => void,
  ): void {
    let cur = iova;
    for (;;) {
      const area = ioas.iopt.areas.find(cur);
      if (!area) fail('ENOENT', `hole in the IOVA range at 0x${cur.toString(16)}`, where);
      const end = area.last < last ? area.last : last;
      check({ area, cur, end });
      if (end === last) return;
      cur = end + 1n;
    }
  }

  /**
   * iommufd_access_pin_pages(): pin the pages behind `[iova, iova+length)`
   * until unpinPages() of the same range; returns them in order. Errors, in
   * order: EINVAL (no pinning user, length 0), EOVERFLOW, ENOENT (detached),
   * then per area: EINVAL (piece not starting on a page, or a non-final one
   * not ending on one), EPERM (area lacks the permission), EINVAL (a
   * dma-buf's area), EFAULT/ENOMEM from pinning; ENOENT at a hole. All-or-nothing.
   */
  pinPages(iova: bigint, length: bigint, write: boolean): PinnedRun[] {
    const where = 'iommufd_access_pin_pages';
    if (!this.ops.needsPinPages) fail('EINVAL', 'access does not pin pages', where);
    if (length === 0n) fail('EINVAL', 'length 0', where);
    const last = iova + length - 1n;
    if (last > U64_MAX) fail('EOVERFLOW', 'iova + length - 1 passes U64_MAX', where);
    const ioas = this.#ioas;
    if (!ioas) fail('ENOENT', 'access not attached', where);
    const ps = ioas.iopt.pageSize;
    const done: Piece[] = [];
    try {
      this.walk(ioas, iova, last, where, (p) => {
        const src = p.area.pages.uptr + p.area.offsetOf(p.cur);
        const srcLast = p.area.pages.uptr + p.area.offsetOf(p.area.last);
        if (src % ps !== 0n || (p.end !== last && srcLast % ps !== ps - 1n)) {
          fail('EINVAL', 'area piece not page aligned', where);
        }
        if (!permits(p.area, write)) fail('EPERM', 'the area lacks the permission asked', where);
        if (p.area.pages.dmabuf)
          fail('EINVAL', 'an access cannot pin a dma-buf', 'iopt_area_add_access');
        const [first, lastIndex] = pageIndexes(p);
        p.area.pages.addUser(first, lastIndex);
        p.area.numAccesses++;
        if (this.internal) p.area.numLocks++;
        done.push(p);
      });
    } catch (e) {
      for (const p of done) this.unpinPiece(p);
      throw e;
    }
    return done.flatMap((p) => {
      const [first, lastIndex] = pageIndexes(p);
      const runs = p.area.pages.physRuns(
        p.area.pages.offsetOfPage(first),
        (lastIndex - first + 1n) * ps,
      );
      return runs.map((r) => ({ phys: r.phys, length: r.length }));
    });
  }

  private unpinPiece(p: Piece): void {
    const [first, lastIndex] = pageIndexes(p);
    p.area.pages.removeUser(first, lastIndex);
    p.area.numAccesses--;
    if (this.internal) p.area.numLocks--;
  }

  /** iommufd_access_unpin_pages(): undo a pinPages() of exactly this range. */
  unpinPages(iova: bigint, length: bigint): void {
    const ioas = this.#ioasUnpin;
    if (!ioas || length === 0n || iova + length - 1n > U64_MAX) {
      throw new Error('unpin of a range that was never pinned');
    }
    this.walk(ioas, iova, iova + length - 1n, 'iommufd_access_unpin_pages', (p) =>
      this.unpinPiece(p),
    );
  }

  /**
   * iommufd_access_rw(): copy between `buf` and the live memory behind
   * `[iova, iova+buf.length)` with ACCESS_RW `flags`, for a task of address
   * space `mm` (undefined: none, a kernel thread): each area's share through
   * the source's current mapping or its pinned pages, as
   * IoptPages.rwCurrent chooses. EINVAL for length 0, EOVERFLOW, ENOENT
   * (detached or a hole), EPERM without the area permission, EINVAL for a
   * dma-buf's area, EFAULT when the memory is unreachable. Areas before a
   * failing one have been copied already, and so have a write's pages
   * before the faulting one through the current mapping (copy_to_user).
   */
  rw(iova: bigint, buf: Uint8Array, flags: number, mm: Mm | undefined): void {
    const write = (flags & ACCESS_RW.WRITE) !== 0;
    if (iova <= FAST_IOVA_MAX && this.rwOneArea(iova, buf, write, flags, mm)) return;
    const length = BigInt(buf.length);
    const where = 'iommufd_access_rw';
    if (length === 0n) fail('EINVAL', 'length 0', where);
    const last = iova + length - 1n;
    if (last > U64_MAX) fail('EOVERFLOW', 'iova + length - 1 passes U64_MAX', where);
    const ioas = this.#ioas;
    if (!ioas) fail('ENOENT', 'access not attached', where);
    const memory = this.ctx.host.memory;
    let pos = 0;
    this.walk(ioas, iova, last, where, ({ area, cur, end }) => {
      if (!permits(area, write) || (write && !area.pages.writable)) {
        fail('EPERM', 'the area lacks the permission asked', where);
      }
      if (area.pages.dmabuf)
        fail('EINVAL', 'an access cannot read a dma-buf', 'iopt_pages_rw_access');
      const offset = area.offsetOf(cur);
      const len = end - cur + 1n;
      const current = area.pages.rwCurrent(Number(offset), Number(len), flags, mm);
      let runs: PhysRun[];
      let fault: Errno | undefined;
      try {
        runs = area.pages.liveRuns(offset, len, write, current);
      } catch (e) {
        // copy_to_user() writes the pages before the one it faults on
        if (!current || !write || !(e instanceof Errno) || e.code !== 'EFAULT') throw e;
        runs = area.pages.writablePrefix(offset, len);
        fault = e;
      }
      for (const run of runs) {
        const n = Number(run.length);
        // the whole buffer as a rule (one run): no view to make
        const part = n === buf.length ? buf : buf.subarray(pos, pos + n);
        if (!memory.copy?.(Number(run.phys), part, write)) {
          if (write) memory.write(run.phys, part);
          else part.set(memory.read(run.phys, n));
        }
        pos += n;
      }
      if (fault) throw fault;
    });
  }

  /**
   * rw() of a range inside one area whose page set copies it at once
   * (IoptPages.copyLive), in Numbers: true when done. False when anything
   * else holds: rw() then checks and copies it all.
   */
  private rwOneArea(
    iova: bigint,
    buf: Uint8Array,
    write: boolean,
    flags: number,
    mm: Mm | undefined,
  ): boolean {
    const area = this.#ioas?.iopt.areas.find(iova);
    if (!area || buf.length === 0 || !permits(area, write)) return false;
    const pages = area.pages;
    if ((write && !pages.writable) || pages.dmabuf) return false;
    const at = Number(iova);
    if (at + buf.length - 1 > Number(area.last)) return false;
    const offset = Number(area.pagesOffset) + (at - Number(area.start));
    const current = pages.rwCurrent(offset, buf.length, flags, mm);
    return pages.copyLive(offset, buf, write, current);
  }
}
