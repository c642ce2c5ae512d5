/**
 * SPAPR v2 memory pre-registration (arch/powerpc/mm/book3s64/iommu_api.c
 * as VFIO uses it): a region is pinned and accounted once at
 * REGISTER_MEMORY; MAP_DMA then only looks pages up in it. Regions live per
 * process (mm); containers of one process share an identical region by
 * reference. Facts: spapr-tce.md §4.3, §4.4.
 */
import { fail } from '../../abi/errno.ts';
import { faultPoint } from '../../iommu/fault-inject.ts';
import type { Mm } from '../../iommu/mm.ts';
import type { PhysMemory } from '../../iommu/phys-memory.ts';
import { IoptPages } from '../../iommufd/pages.ts';
import type { PinAccount } from '../../kernel/pin-account.ts';

/** One pre-registered region (struct mm_iommu_table_group_mem_t). */
export interface PreregRegion {
  readonly vaddr: bigint;
  readonly size: bigint;
  /** The pinned pages; areas mapping the region add their own users. */
  readonly pages: IoptPages;
  /** Largest IOMMU page shift a MAP from this region may use. */
  readonly maxPageShift: number;
  /** The containers holding a reference. */
  readonly owners: Set<object>;
}

const U64_END = 1n << 64n;
const regionsOf = new WeakMap<Mm, PreregRegion[]>();

function ctz(x: bigint): number {
  if (x === 0n) return 64;
  let n = 0;
  while ((x & 1n) === 0n) {
    x >>= 1n;
    n++;
  }
  return n;
}

/**
 * The largest IOMMU page shift `[vaddr, vaddr+size)` can back: the lowest
 * set bit of (vaddr | size), capped per page by its hugepage shift
 * (compound) or the host PAGE_SHIFT, and (a model rule: simulated RAM is
 * not always naturally aligned) by the alignment of each physically
 * contiguous run. A pre-registered region records it; v1 MAP checks each
 * page against it (tce_page_is_contained). EFAULT for unmapped memory.
 */
export function maxPageShift(
  mm: Mm,
  memory: PhysMemory & { hugePageSize?: bigint },
  vaddr: bigint,
  size: bigint,
  hostPageShift: number,
): number {
  let shift = ctz(vaddr | size);
  let va = vaddr;
  for (const run of mm.resolve(vaddr, size, true)) {
    const rel = va - vaddr;
    shift = Math.min(shift, ctz(rel | run.phys | run.length));
    const huge = memory.isCompound(run.phys) && memory.hugePageSize ? ctz(memory.hugePageSize) : 0;
    shift = Math.min(shift, Math.max(huge, hostPageShift));
    va += run.length;
  }
  return shift;
}

/** The regions of a process (for tests and the container). */
export function preregRegions(mm: Mm): readonly PreregRegion[] {
  return regionsOf.get(mm) ?? [];
}

/**
 * REGISTER_MEMORY for `owner` (a container): EINVAL for misalignment to
 * the host page, a wrap, or an overlap with a different region; EBUSY when
 * `owner` already registered exactly this range; shared when another
 * container did; size 0 → ENOMEM (the kernel's path is UNVERIFIED); pin
 * errors (EFAULT, ENOMEM past RLIMIT_MEMLOCK) as IoptPages gives them.
 */
export function preregRegister(
  owner: object,
  mm: Mm,
  memory: PhysMemory,
  account: PinAccount,
  vaddr: bigint,
  size: bigint,
  hostPageShift: number,
): PreregRegion {
  const mask = (1n << BigInt(hostPageShift)) - 1n;
  if ((vaddr & mask) !== 0n || (size & mask) !== 0n || vaddr + size > U64_END) {
    fail(
      'EINVAL',
      'vaddr or size not page aligned, or the range wraps',
      'tce_iommu_register_pages',
    );
  }
  const list = regionsOf.get(mm) ?? [];
  const same = list.find((r) => r.vaddr === vaddr && r.size === size);
  if (same) {
    if (same.owners.has(owner)) {
      fail('EBUSY', 'region already registered by this container', 'tce_iommu_register_pages');
    }
    same.owners.add(owner);
    return same;
  }
  if (list.some((r) => r.vaddr < vaddr + size && vaddr < r.vaddr + r.size)) {
    fail('EINVAL', 'overlaps a registered region', 'mm_iommu_do_alloc');
  }
  if (size === 0n) fail('ENOMEM', 'size 0: no page array to allocate', 'mm_iommu_do_alloc');
  faultPoint('mm_iommu_new');
  const pages = new IoptPages(mm, vaddr, size, true, account, memory);
  pages.addUser(0n, pages.npages - 1n);
  const region: PreregRegion = {
    vaddr,
    size,
    pages,
    maxPageShift: maxPageShift(mm, memory, vaddr, size, hostPageShift),
    owners: new Set([owner]),
  };
  list.push(region);
  regionsOf.set(mm, list);
  return region;
}

/**
 * UNREGISTER_MEMORY: ENOENT unless `owner` registered exactly (vaddr,
 * size). The last reference unpins the registration; pages still mapped by
 * TCEs stay pinned until unmapped. `busy` is the personality's
 * `spaprUnregisterMapped`: 'success' (≥v5.1) returns 0 even while mappings
 * use the region; 'EBUSY' refuses the last reference's unregister then.
 */
export function preregUnregister(
  owner: object,
  mm: Mm,
  vaddr: bigint,
  size: bigint,
  busy: 'success' | 'EBUSY',
): void {
  const list = regionsOf.get(mm) ?? [];
  const r = list.find((x) => x.vaddr === vaddr && x.size === size);
  if (!r?.owners.has(owner)) {
    fail(
      'ENOENT',
      'no region registered by this container at vaddr/size',
      'tce_iommu_unregister_pages',
    );
  }
  // the registration holds one user of every page: more means TCEs map it
  if (busy === 'EBUSY' && r.owners.size === 1 && r.pages.hasUsersAbove(1)) {
    fail('EBUSY', 'region still mapped', 'mm_iommu_put');
  }
  preregPut(owner, mm, r);
}

/** Drop `owner`'s reference to `r`; the last one unpins it. */
export function preregPut(owner: object, mm: Mm, r: PreregRegion): void {
  r.owners.delete(owner);
  if (r.owners.size > 0) return;
  r.pages.removeUser(0n, r.pages.npages - 1n);
  const list = regionsOf.get(mm) ?? [];
  list.splice(list.indexOf(r), 1);
}

/** The region of `mm` containing `[vaddr, vaddr+size)` (mm_iommu_lookup: any container's), if any. */
export function preregFind(mm: Mm, vaddr: bigint, size: bigint): PreregRegion | undefined {
  return preregRegions(mm).find((r) => r.vaddr <= vaddr && vaddr + size <= r.vaddr + r.size);
}
