import { fail } from '../abi/errno.ts';
import type { IommuDriver } from './driver.ts';
import type { DirtySpans, IoPgtable } from './io-pgtable.ts';
import { type DmaAccess, protFor } from './prot.ts';

/**
 * One IOVA window of a domain: `[start, last]` translated by its own page
 * table (with its own page sizes and levels). x86 and the mock have one;
 * a POWER PE has up to two, created at run time.
 */
export interface Aperture {
  readonly start: bigint;
  readonly last: bigint;
  readonly table: IoPgtable;
}

/** A successful translation: the physical address and the leaf it came from. */
interface TranslationCache {
  start: bigint;
  last: bigint;
  phys: bigint;
  prot: number;
}

/**
 * An IOMMU paging domain (the kernel's iommu_domain of type paging), with a
 * list of apertures instead of the kernel's single geometry. Mappings must
 * lie wholly inside one aperture. Translations are cached per leaf run; any
 * unmap invalidates the cache.
 */
export class Domain {
  /** Apertures sorted by start, disjoint. */
  readonly apertures: readonly Aperture[];
  /** The page sizes the domain advertises: OR of the apertures' unless the driver says otherwise. */
  readonly pgsizeBitmap: bigint;
  /** Dirty tracking can be enabled (the driver has dirty ops). */
  readonly dirtyCapable: boolean;
  /** Dirty tracking is on: DMA writes set dirty bits. */
  dirtyTracking = false;
  /**
   * ops->enforce_cache_coherency(): make the domain block no-snoop DMA;
   * true if it now does (idempotent), false if it cannot. Absent: the
   * driver has no such op.
   */
  enforceCacheCoherency?(): boolean;
  private cache: TranslationCache | undefined;

  constructor(
    readonly driver: IommuDriver,
    apertures: readonly Aperture[],
    opts: {
      dirtyCapable: boolean;
      /** Sizes advertised beyond those the tables map with (a format with contiguous entries). */
      pgsizeBitmap?: bigint;
    },
  ) {
    this.apertures = [...apertures].sort((a, b) => (a.start < b.start ? -1 : 1));
    for (let i = 1; i < this.apertures.length; i++) {
      if (this.apertures[i]!.start <= this.apertures[i - 1]!.last) {
        throw new Error('domain apertures overlap');
      }
    }
    this.pgsizeBitmap =
      opts.pgsizeBitmap ?? this.apertures.reduce((m, a) => m | a.table.config.pgsizeBitmap, 0n);
    this.dirtyCapable = opts.dirtyCapable;
  }

  /** The smallest page size any aperture supports. */
  get minPageSize(): bigint {
    return this.pgsizeBitmap & -this.pgsizeBitmap;
  }

  /** The aperture wholly containing `[iova, last]`, if any. */
  apertureOf(iova: bigint, last: bigint): Aperture | undefined {
    return this.apertures.find((a) => a.start <= iova && last <= a.last);
  }

  /**
   * iommu_map(): EINVAL unless the range lies in one aperture, aligned to its
   * page size. `maxPageSize` caps the leaf size (large pages disabled).
   */
  map(iova: bigint, phys: bigint, length: bigint, prot: number, maxPageSize?: bigint): void {
    const ap = this.apertureOf(iova, iova + length - 1n);
    if (!ap) fail('EINVAL', 'map outside every aperture', 'iommu_map');
    ap.table.map(iova, phys, length, prot, maxPageSize);
  }

  /** iommu_unmap(): returns the bytes that were mapped in the range. */
  unmap(iova: bigint, length: bigint): bigint {
    this.cache = undefined;
    let done = 0n;
    this.eachAperture(iova, length, (table, s, len) => {
      done += table.unmap(s, len);
    });
    return done;
  }

  /** iommu_iova_to_phys(); undefined where nothing is mapped. */
  iovaToPhys(iova: bigint): bigint | undefined {
    for (const ap of this.apertures) {
      if (iova < ap.start || iova > ap.last) continue;
      const pte = ap.table.lookup(iova);
      return pte ? pte.phys + (iova - pte.iova) : undefined;
    }
    return undefined;
  }

  /**
   * Translate one device access of `[iova, iova+length)` that must stay in one
   * leaf; returns the physical address or undefined on a fault (unmapped or
   * missing permission). Writes set the leaf's dirty bit while tracking.
   */
  translate(iova: bigint, length: bigint, access: DmaAccess): bigint | undefined {
    const need = protFor(access);
    let c = this.cache;
    if (!c || iova < c.start || iova + length - 1n > c.last) {
      c = this.fill(iova);
      if (!c || iova + length - 1n > c.last) return undefined;
    }
    if ((c.prot & need) === 0) return undefined;
    if (access === 'write' && this.dirtyTracking) this.markDirty(iova);
    return c.phys + (iova - c.start);
  }

  private fill(iova: bigint): TranslationCache | undefined {
    for (const ap of this.apertures) {
      if (iova < ap.start || iova > ap.last) continue;
      const pte = ap.table.lookup(iova);
      if (!pte) return undefined;
      this.cache = {
        start: pte.iova,
        last: pte.iova + pte.pageSize - 1n,
        phys: pte.phys,
        prot: pte.prot,
      };
      return this.cache;
    }
    return undefined;
  }

  /** Set the dirty bit of the leaf containing `iova`; false if unmapped. */
  markDirty(iova: bigint): boolean {
    for (const ap of this.apertures) {
      if (ap.start <= iova && iova <= ap.last) return ap.table.setDirty(iova);
    }
    return false;
  }

  /** The dirty leaves in `[iova, iova+length)` by spans (IoPgtable.readDirtySpans), across apertures; cleared unless `keep`. */
  readDirtySpans(iova: bigint, length: bigint, keep: boolean, visit: DirtySpans): void {
    this.eachAperture(iova, length, (table, s, len) => table.readDirtySpans(s, len, keep, visit));
  }

  /** Call `fn` with each aperture's table and the part of `[iova, iova+length)` inside it. */
  private eachAperture(
    iova: bigint,
    length: bigint,
    fn: (table: IoPgtable, start: bigint, length: bigint) => void,
  ): void {
    const last = iova + length - 1n;
    for (const ap of this.apertures) {
      if (ap.last < iova || ap.start > last) continue;
      const s = iova > ap.start ? iova : ap.start;
      const l = last < ap.last ? last : ap.last;
      fn(ap.table, s, l - s + 1n);
    }
  }
}
