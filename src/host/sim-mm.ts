import { fail } from '../abi/errno.ts';
import { appendRun, type Mm, type PhysRun, refusePfnMaps } from '../iommu/mm.ts';
import { type Range, SortedRanges } from '../util/sorted-ranges.ts';
import { MemObject } from './mem-object.ts';
import type { PhysRam } from './phys-ram.ts';

/** Lowest address a mapping may use (vm.mmap_min_addr). */
export const MMAP_MIN_ADDR = 0x1_0000n;
/** Top-down placement starts below here (mm->mmap_base). */
export const MMAP_BASE = 0x7fff_0000_0000n;
/** End of the user address space (x86-64 TASK_SIZE). */
export const TASK_SIZE = 0x7fff_ffff_f000n;

const U64_END = 1n << 64n;

export interface Prot {
  read: boolean;
  write: boolean;
}

/** A virtual memory area: `[start, last]` maps the object's bytes from `offset` on. */
export interface Vma extends Range {
  prot: Prot;
  object: MemObject;
  offset: bigint;
  /** MAP_SHARED of a caller's object; false for a private anonymous mapping. */
  shared: boolean;
}

export interface MmapOptions {
  /** With `fixed` the exact address; otherwise a hint, used when that range is free. */
  addr?: bigint;
  /** Rounded up to the page size (the huge page size for hugetlb). */
  length: bigint;
  prot: Prot;
  /** Map this object MAP_SHARED; without it the mapping is private anonymous with its own object. */
  object?: MemObject;
  /** Byte offset into `object`: page-aligned (huge-page-aligned for hugetlb). */
  offset?: bigint;
  /** MAP_HUGETLB for an anonymous mapping; with an object, EINVAL unless it is hugetlb. */
  hugetlb?: boolean;
  /** MAP_FIXED: replace whatever is mapped in the range. */
  fixed?: boolean;
}

/**
 * A sparse simulated process address space: VMAs in a sorted range set, each
 * mapping a MemObject whose pages live in a shared PhysRam. Every VMA holds
 * one object reference; split VMAs each hold their own, and adjacent VMAs of
 * the same object with contiguous offsets and equal protection merge.
 *
 * Placement without MAP_FIXED is top-down below MMAP_BASE from a cursor (the
 * kernel's old free_area_cache), restarting from MMAP_BASE when nothing fits
 * below it; deterministic, but not the modern kernel's exact choice (which is
 * randomised anyway). MAP_PRIVATE of an object and copy-on-write after fork
 * are not implemented: a private mapping is always anonymous and exclusive.
 * Pages of a private object stay allocated until its last VMA goes, even
 * where munmap punched a hole (unreachable, so only a memory cost).
 *
 * @example
 * const mm = new SimMm(new PhysRam());
 * const va = mm.mmap({ length: 0x2000n, prot: { read: true, write: true } });
 * mm.write(va + 0xffen, Uint8Array.of(1, 2, 3, 4));
 * mm.resolve(va, 0x2000n, true); // one run: anonymous pages are contiguous
 */
export class SimMm implements Mm {
  readonly pageSize: bigint;
  private live = true;
  private readonly vmas = new SortedRanges<Vma>();
  /** Top-down search starts below this address. */
  private freeAreaCache = MMAP_BASE;

  constructor(readonly ram: PhysRam) {
    this.pageSize = ram.pageSize;
  }

  get alive(): boolean {
    return this.live;
  }

  /** Number of VMAs. */
  get vmaCount(): number {
    return this.vmas.size;
  }

  /**
   * mmap(): returns the start address. EINVAL for a zero length, a misaligned
   * fixed address or offset, a missing fixed address, or MAP_HUGETLB with a
   * non-hugetlb object; EPERM for a fixed address below MMAP_MIN_ADDR;
   * ENOMEM when the range passes TASK_SIZE or nothing fits; EOVERFLOW when
   * offset+length wraps; ESRCH after exit. Nothing changes on failure.
   */
  mmap(opts: MmapOptions): bigint {
    if (!this.live) fail('ESRCH', 'mm has exited', 'uiommu_sim_mm');
    const obj = opts.object;
    if (obj && opts.hugetlb && !obj.hugetlb)
      fail('EINVAL', 'MAP_HUGETLB on a non-hugetlb object', 'ksys_mmap_pgoff');
    const hugetlb = obj ? obj.hugetlb : (opts.hugetlb ?? false);
    const align = hugetlb ? this.ram.hugePageSize : this.pageSize;
    if (opts.length <= 0n) fail('EINVAL', 'zero length', 'do_mmap');
    const len = alignUp(opts.length, align);
    if (len > TASK_SIZE) fail('ENOMEM', 'length beyond TASK_SIZE', 'do_mmap');
    const offset = obj ? (opts.offset ?? 0n) : 0n;
    if (offset < 0n || offset % align !== 0n) fail('EINVAL', 'misaligned offset', 'do_mmap');
    if (offset + len > U64_END) fail('EOVERFLOW', 'offset + length wraps', 'do_mmap');
    let start: bigint;
    if (opts.fixed) {
      const addr = opts.addr ?? fail('EINVAL', 'MAP_FIXED without an address', 'do_mmap');
      if (addr % align !== 0n) fail('EINVAL', 'misaligned fixed address', 'do_mmap');
      if (addr + len > TASK_SIZE) fail('ENOMEM', 'fixed range beyond TASK_SIZE', 'do_mmap');
      if (addr < MMAP_MIN_ADDR) fail('EPERM', 'fixed address below mmap_min_addr', 'do_mmap');
      this.checkCut(addr);
      this.checkCut(addr + len);
      start = addr;
    } else start = this.place(len, align, opts.addr);
    const vma: Vma = {
      start,
      last: start + len - 1n,
      prot: { read: opts.prot.read, write: opts.prot.write },
      object: obj ? obj.ref() : new MemObject(this.ram, len, { hugetlb }),
      offset,
      shared: obj !== undefined,
    };
    if (opts.fixed) this.unmapRange(vma.start, vma.last);
    this.vmas.insert(vma);
    this.merge(vma.start, vma.last);
    return start;
  }

  /**
   * munmap(): length rounded up to pages; unmapping nothing is fine. EINVAL
   * for a misaligned address, a zero length, a range past TASK_SIZE, or a cut
   * inside a hugetlb VMA off a huge page boundary; nothing changes then.
   */
  munmap(va: bigint, length: bigint): void {
    if (va % this.pageSize !== 0n || length <= 0n)
      fail('EINVAL', 'bad munmap range', 'do_vmi_munmap');
    const len = alignUp(length, this.pageSize);
    if (va + len > TASK_SIZE) fail('EINVAL', 'munmap beyond TASK_SIZE', 'do_vmi_munmap');
    this.unmapRange(va, va + len - 1n);
  }

  /**
   * mprotect(): length rounded up to pages; a zero length does nothing.
   * EINVAL for a misaligned address or a hugetlb cut off a huge page
   * boundary; ENOMEM if part of the range is unmapped. Nothing changes on
   * failure (Linux may already have changed the mapped part before a hole).
   */
  mprotect(va: bigint, length: bigint, prot: Prot): void {
    if (va % this.pageSize !== 0n || length < 0n)
      fail('EINVAL', 'bad mprotect range', 'do_mprotect_pkey');
    if (length === 0n) return;
    const last = alignUp(va + length, this.pageSize) - 1n;
    if (last >= TASK_SIZE) fail('ENOMEM', 'mprotect beyond TASK_SIZE', 'do_mprotect_pkey');
    let cursor = va;
    for (const v of this.vmas.overlapping(va, last)) {
      if (v.start > cursor) break;
      cursor = v.last + 1n;
    }
    if (cursor <= last) fail('ENOMEM', 'mprotect of unmapped memory', 'do_mprotect_pkey');
    this.checkCut(va);
    this.checkCut(last + 1n);
    this.split(va);
    this.split(last + 1n);
    for (const v of this.vmas.overlapping(va, last))
      v.prot = { read: prot.read, write: prot.write };
    this.merge(va, last);
  }

  /** memfd_create() + ftruncate(size): a new object; the caller holds its one reference (the fd). */
  memfd(size: bigint, opts: { hugetlb?: boolean } = {}): MemObject {
    return new MemObject(this.ram, size, opts);
  }

  /**
   * GUP: the physical runs behind `[va, va+length)`, ascending and coalesced
   * where both VA and phys are contiguous. EFAULT if the mm has exited, if
   * any byte is unmapped or past its object's end, or lacks read permission
   * (write permission when `write`).
   */
  resolve(va: bigint, length: bigint, write: boolean): PhysRun[] {
    return this.walk(va, length, write, 'pin_user_pages_fast');
  }

  /** `resolve` for the kernel function `where` (GUP, or a user copy). */
  private walk(va: bigint, length: bigint, write: boolean, where: string): PhysRun[] {
    if (!this.live) fail('EFAULT', 'mm has exited', where);
    if (length === 0n) return [];
    if (va < 0n || length < 0n || va + length > U64_END) fail('EFAULT', 'range wraps', where);
    refusePfnMaps(this, va, length);
    const gup = where === 'pin_user_pages_fast';
    const last = va + length - 1n;
    const vmas = this.vmas.overlapping(va, last);
    let cursor = va;
    for (const v of vmas) {
      if (v.start > cursor) break;
      if (!(write ? v.prot.write : v.prot.read))
        fail('EFAULT', `no access at ${hex(cursor)}`, gup ? 'check_vma_flags' : where);
      cursor = v.last + 1n;
    }
    if (cursor <= last) fail('EFAULT', `unmapped address ${hex(cursor)}`, where);
    const out: PhysRun[] = [];
    for (const v of vmas) {
      const s = v.start > va ? v.start : va;
      const l = v.last < last ? v.last : last;
      for (const r of v.object.physRuns(v.offset + (s - v.start), l - s + 1n)) {
        appendRun(out, v.start + (r.offset - v.offset), r.length, r.phys);
      }
    }
    return out;
  }

  /** copy_from_user: EFAULT as `resolve` without write. */
  read(va: bigint, length: number): Uint8Array {
    const out = new Uint8Array(length);
    let pos = 0;
    for (const r of this.walk(va, BigInt(length), false, 'copy_from_user')) {
      out.set(this.ram.read(r.phys, Number(r.length)), pos);
      pos += Number(r.length);
    }
    return out;
  }

  /** copy_to_user: EFAULT as `resolve` with write, checked before any byte is written. */
  write(va: bigint, data: Uint8Array): void {
    let pos = 0;
    for (const r of this.walk(va, BigInt(data.length), true, 'copy_to_user')) {
      const n = Number(r.length);
      this.ram.write(r.phys, data.subarray(pos, pos + n));
      pos += n;
    }
  }

  /** Process exit: drop every mapping (and its object reference); `alive` becomes false. */
  exit(): void {
    if (!this.live) return;
    this.live = false;
    for (const v of this.vmas) v.object.unref();
    this.vmas.clear();
  }

  /** The VMA containing `va`, if any (do not mutate). */
  vmaAt(va: bigint): Readonly<Vma> | undefined {
    return this.vmas.find(va);
  }

  /** A free range of `len` bytes aligned to `align`: the hint if it fits, else top-down. */
  private place(len: bigint, align: bigint, hint: bigint | undefined): bigint {
    if (hint !== undefined) {
      const a = alignUp(hint, align);
      if (a >= MMAP_MIN_ADDR && a + len <= TASK_SIZE && !this.vmas.intersects(a, a + len - 1n)) {
        return a;
      }
    }
    const a =
      this.searchDown(this.freeAreaCache, len, align) ??
      (this.freeAreaCache < MMAP_BASE ? this.searchDown(MMAP_BASE, len, align) : undefined) ??
      fail('ENOMEM', 'no free address range', 'get_unmapped_area');
    this.freeAreaCache = a;
    return a;
  }

  /** The highest free aligned range of `len` bytes ending at or below `bound`. */
  private searchDown(bound: bigint, len: bigint, align: bigint): bigint | undefined {
    while (bound - len >= MMAP_MIN_ADDR) {
      const a = (bound - len) & ~(align - 1n);
      if (a < MMAP_MIN_ADDR) return undefined;
      const hit = this.vmas.firstIntersecting(a, a + len - 1n);
      if (!hit) return a;
      bound = hit.start;
    }
    return undefined;
  }

  /** Remove `[start, last]` from the address space, dropping object references. */
  private unmapRange(start: bigint, last: bigint): void {
    this.checkCut(start);
    this.checkCut(last + 1n);
    this.split(start);
    this.split(last + 1n);
    const gone = this.vmas.overlapping(start, last);
    for (const v of gone) {
      this.vmas.delete(v);
      v.object.unref();
    }
    if (gone.length > 0 && last + 1n > this.freeAreaCache) {
      this.freeAreaCache = last + 1n < MMAP_BASE ? last + 1n : MMAP_BASE;
    }
  }

  /** EINVAL if cutting at `addr` would split a hugetlb VMA off a huge page boundary. */
  private checkCut(addr: bigint): void {
    const v = this.vmas.find(addr);
    if (v && v.start < addr && v.object.hugetlb && addr % this.ram.hugePageSize !== 0n) {
      fail('EINVAL', 'hugetlb VMA cut off a huge page boundary', 'hugetlb_vm_op_split');
    }
  }

  /** Split the VMA containing `addr` so that one starts there. */
  private split(addr: bigint): void {
    const v = this.vmas.find(addr);
    if (!v || v.start === addr) return;
    const right: Vma = {
      ...v,
      start: addr,
      prot: { ...v.prot },
      offset: v.offset + (addr - v.start),
      object: v.object.ref(),
    };
    v.last = addr - 1n;
    this.vmas.insert(right);
  }

  /** Merge mergeable neighbours among the VMAs touching `[start-1, last+1]`. */
  private merge(start: bigint, last: bigint): void {
    let prev: Vma | undefined;
    for (const v of this.vmas.overlapping(start > 0n ? start - 1n : 0n, last + 1n)) {
      if (
        prev &&
        prev.last + 1n === v.start &&
        prev.object === v.object &&
        prev.shared === v.shared &&
        prev.prot.read === v.prot.read &&
        prev.prot.write === v.prot.write &&
        prev.offset + (v.start - prev.start) === v.offset
      ) {
        prev.last = v.last;
        this.vmas.delete(v);
        v.object.unref();
      } else prev = v;
    }
  }
}

function alignUp(x: bigint, align: bigint): bigint {
  return (x + align - 1n) & ~(align - 1n);
}

function hex(x: bigint): string {
  return `0x${x.toString(16)}`;
}
