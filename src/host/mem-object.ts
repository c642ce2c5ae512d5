import { fail } from '../abi/errno.ts';
import { type Range, SortedRanges } from '../util/sorted-ranges.ts';
import type { PhysRam } from './phys-ram.ts';

/** Object bytes `[offset, offset+length)` live at physical `[phys, phys+length)`. */
export interface ObjectRun {
  offset: bigint;
  length: bigint;
  phys: bigint;
}

/** `[start, last]` are object offsets backed linearly from `phys`. */
interface Run extends Range {
  phys: bigint;
}

/** Linux's MAX_LFS_FILESIZE on 64-bit. */
const MAX_FILE_SIZE = (1n << 63n) - 1n;

/**
 * A backing object (shmem/hugetlbfs inode): `size` bytes of pages shared by
 * every mapping of it. A private anonymous mapping gets its own object; a
 * memfd is one object mapped MAP_SHARED any number of times. Pages are a
 * few physically contiguous runs (one per growth), so an object costs the
 * same whatever its size; contents live sparsely in the PhysRam.
 *
 * Lifetime is a plain reference count: the creator holds the first
 * reference (an fd, or the mapping that made it), every mapping holds one,
 * and the last `unref` frees the pages. Pages still pinned stay allocated
 * until their last unpin (PhysRam defers the release).
 *
 * @example
 * const memfd = new MemObject(ram, 0x5000n);
 * memfd.resize(0x1000n); // ftruncate: pages past the first are freed
 */
export class MemObject {
  readonly hugetlb: boolean;
  /** Allocation unit: the page size, or the huge page size for hugetlb. */
  readonly granule: bigint;
  private readonly runs = new SortedRanges<Run>();
  private bytes = 0n;
  /** Backed bytes: `size` rounded up to the granule. */
  private backed = 0n;
  private refs = 1;

  /** A new object of `size` bytes holding one reference for the caller. EINVAL/EFBIG as `resize`. */
  constructor(
    readonly ram: PhysRam,
    size: bigint,
    opts: { hugetlb?: boolean } = {},
  ) {
    this.hugetlb = opts.hugetlb ?? false;
    this.granule = this.hugetlb ? ram.hugePageSize : ram.pageSize;
    this.resize(size);
  }

  /** The file size in bytes (i_size). */
  get size(): bigint {
    return this.bytes;
  }

  get refCount(): number {
    return this.refs;
  }

  /** Take a reference; returns this. */
  ref(): this {
    if (this.refs === 0) throw new Error('MemObject used after its last reference');
    this.refs++;
    return this;
  }

  /** Drop a reference; the last one frees every page (pinned ones once unpinned). */
  unref(): void {
    if (this.refs === 0) throw new Error('MemObject released twice');
    if (--this.refs > 0) return;
    for (const r of this.runs) this.ram.free(r.phys, r.last - r.start + 1n);
    this.runs.clear();
    this.backed = 0n;
  }

  /**
   * ftruncate(): growing allocates a new run (reading as zeros); shrinking
   * frees the pages past the new end, and the bytes between the new end and
   * its page boundary become zero. EINVAL on a negative size or, for
   * hugetlb, one that is not a multiple of the huge page size; EFBIG past
   * MAX_LFS_FILESIZE. On failure nothing changes.
   */
  resize(size: bigint): void {
    if (this.refs === 0) throw new Error('MemObject used after its last reference');
    if (size < 0n) fail('EINVAL', 'negative size', 'do_ftruncate');
    if (size > MAX_FILE_SIZE) fail('EFBIG', 'size beyond MAX_LFS_FILESIZE', 'inode_newsize_ok');
    if (this.hugetlb && size % this.granule !== 0n) {
      fail('EINVAL', 'hugetlb size is not a multiple of the huge page size', 'hugetlbfs_setattr');
    }
    const backed = alignUp(size, this.granule);
    if (backed > this.backed) {
      const phys = this.ram.alloc(backed - this.backed, {
        align: this.granule,
        compound: this.hugetlb,
      });
      this.runs.insert({ start: this.backed, last: backed - 1n, phys });
    }
    const keep = size < this.bytes ? size : this.bytes;
    const tail = alignUp(keep, this.ram.pageSize) - keep;
    if (tail > 0n) {
      for (const r of this.physRuns(keep, tail)) {
        this.ram.write(r.phys, new Uint8Array(Number(r.length)));
      }
    }
    if (backed < this.backed) {
      for (const r of this.runs.overlapping(backed, this.backed - 1n)) {
        if (r.start >= backed) {
          this.runs.delete(r);
          this.ram.free(r.phys, r.last - r.start + 1n);
        } else {
          this.ram.free(r.phys + (backed - r.start), r.last - backed + 1n);
          r.last = backed - 1n;
        }
      }
    }
    this.backed = backed;
    this.bytes = size;
  }

  /**
   * The physical runs backing object bytes `[offset, offset+length)`,
   * ascending; `[]` for a zero length. The limit is the size rounded up to
   * the granule, as a mapping reaches the whole page holding end-of-file:
   * EFAULT (SIGBUS for a mapping) if the range goes past it. Callers that
   * need EINVAL for a bad file range check `size` themselves.
   */
  physRuns(offset: bigint, length: bigint): ObjectRun[] {
    if (length === 0n) return [];
    if (offset < 0n || length < 0n || offset + length > this.backed) {
      fail('EFAULT', 'beyond the end of the object', 'uiommu_mem_object');
    }
    const last = offset + length - 1n;
    const out: ObjectRun[] = [];
    for (const r of this.runs.overlapping(offset, last)) {
      const s = r.start > offset ? r.start : offset;
      const l = r.last < last ? r.last : last;
      out.push({ offset: s, length: l - s + 1n, phys: r.phys + (s - r.start) });
    }
    return out;
  }
}

function alignUp(x: bigint, align: bigint): bigint {
  return (x + align - 1n) & ~(align - 1n);
}
