import { fail } from '../abi/errno.ts';
import { hex } from '../abi/hex.ts';
import {
  IOMMU_HWPT_ALLOC_FLAGS,
  IOMMU_HWPT_DATA_TYPE,
  IOMMU_HWPT_DIRTY_TRACKING_FLAGS,
  IOMMU_HWPT_GET_DIRTY_BITMAP_FLAGS,
  type IommuHwptAlloc,
  type IommuHwptGetDirtyBitmap,
  type IommuHwptSetDirtyTracking,
} from '../abi/iommufd.ts';
import type { Layout } from '../abi/layout.ts';
import { U64_MAX } from '../abi/layout.ts';
import type { Domain } from '../iommu/domain.ts';
import type { IommuUserData, PagingFlags } from '../iommu/driver.ts';
import type { IommufdCtx, Personality } from './context.ts';
import type { IommufdDevice } from './device.ts';
import { holdFault, type IommufdFault } from './fault.ts';
import { type HwptNested, hwptNestedAlloc } from './hwpt-nested.ts';
import type { Ioas } from './ioas.ts';
import { IovaBitmap } from './iova-bitmap.ts';
import { IommufdObject } from './object.ts';
import type { Ucmd } from './ucmd.ts';

type V<L> = L extends Layout<infer T> ? T : never;

/**
 * A kernel-managed paging HWPT: a domain whose mappings mirror an IOAS.
 * Automatic ones are created by device attach and die with their last
 * device; manual ones (HWPT_ALLOC) live until IOMMU_DESTROY.
 */
export class HwptPaging extends IommufdObject {
  readonly type = 'hwpt_paging';
  /** The FAULT object its I/O page faults go to (HWPT_ALLOC with fault_id); held. */
  fault: IommufdFault | undefined;
  /** enforce_cache_coherency: the domain blocks no-snoop DMA; fixed at allocation. */
  enforceCacheCoherency = false;

  /** Allocated with IOMMU_HWPT_ALLOC_PASID: usable at a PASID, and as the RID's beside PASIDs. */
  get pasidCompat(): boolean {
    return this.flags.pasid;
  }

  constructor(
    readonly ioas: Ioas,
    readonly domain: Domain,
    readonly autoDomain: boolean,
    readonly flags: PagingFlags,
  ) {
    super();
  }

  destroy(): void {
    this.ioas.iopt.removeDomain(this.domain);
    const i = this.ioas.hwpts.indexOf(this);
    if (i >= 0) this.ioas.hwpts.splice(i, 1);
    this.ioas.put();
    this.fault?.put();
  }
}

/** The HWPT_ALLOC flags a paging HWPT may carry in this kernel (6.12: NEST_PARENT and DIRTY_TRACKING only). */
function pagingFlags(p: Personality): number {
  const { NEST_PARENT, DIRTY_TRACKING, FAULT_ID_VALID, PASID } = IOMMU_HWPT_ALLOC_FLAGS;
  return (
    NEST_PARENT |
    DIRTY_TRACKING |
    (p.hwptPagingFault ? FAULT_ID_VALID : 0) |
    (p.hwptAllocPasid ? PASID : 0)
  );
}

/**
 * iommufd_hwpt_paging_alloc(): a domain for `idev` added to `ioas`. With
 * `attach` the device is attached before the domain is filled (the auto
 * domain path). With `userData` (HWPT_ALLOC's data_type/data_len/data_uptr)
 * the driver's domainAllocUser builds the domain, EOPNOTSUPP if it has none.
 * For a device whose IOMMU is ENFORCE_CACHE_COHERENCY-capable the domain is
 * made to enforce coherency first (EINVAL if it cannot: a driver bug);
 * attaching another device later never changes it. The caller publishes
 * the object; on failure nothing remains.
 */
export function hwptPagingAlloc(
  ctx: IommufdCtx,
  ioas: Ioas,
  idev: IommufdDevice,
  flags: number,
  auto: boolean,
  attach?: (hwpt: HwptPaging) => void,
  userData?: IommuUserData,
): HwptPaging {
  const valid = pagingFlags(ctx.host.personality);
  if ((flags & ~valid) !== 0)
    fail('EOPNOTSUPP', `unknown flags ${hex(flags & ~valid)}`, 'iommufd_hwpt_paging_alloc');
  const dev = idev.dev;
  if (flags & IOMMU_HWPT_ALLOC_FLAGS.DIRTY_TRACKING && !dev.driver.dirtyTrackingCapable(dev)) {
    fail(
      'EOPNOTSUPP',
      `the IOMMU of ${dev.name} cannot track dirty pages`,
      'iommufd_hwpt_paging_alloc',
    );
  }
  if (flags & IOMMU_HWPT_ALLOC_FLAGS.FAULT_ID_VALID && flags & IOMMU_HWPT_ALLOC_FLAGS.NEST_PARENT) {
    fail('EOPNOTSUPP', 'FAULT_ID_VALID with NEST_PARENT', 'iommufd_hwpt_paging_alloc');
  }
  const pflags: PagingFlags = {
    nestParent: (flags & IOMMU_HWPT_ALLOC_FLAGS.NEST_PARENT) !== 0,
    dirtyTracking: (flags & IOMMU_HWPT_ALLOC_FLAGS.DIRTY_TRACKING) !== 0,
    pasid: (flags & IOMMU_HWPT_ALLOC_FLAGS.PASID) !== 0,
  };
  let domain: Domain;
  if (userData) {
    if (!dev.driver.domainAllocUser)
      fail(
        'EOPNOTSUPP',
        'the driver takes no data_type for a paging domain',
        'iommufd_hwpt_paging_alloc',
      );
    domain = dev.driver.domainAllocUser(dev, pflags, userData);
  } else {
    domain = dev.driver.domainAllocPaging(dev, pflags);
  }
  const hwpt = new HwptPaging(ioas, domain, auto, pflags);
  ctx.allocId(hwpt);
  try {
    // before any attach or map: a capable device's HWPT enforces coherency
    if (dev.driver.enforceCacheCoherencyCapable?.(dev)) {
      hwpt.enforceCacheCoherency = domain.enforceCacheCoherency?.() ?? false;
      if (!hwpt.enforceCacheCoherency)
        fail(
          'EINVAL',
          'the IOMMU reports ENFORCE_CACHE_COHERENCY but its domain cannot enforce it',
          'iommufd_hwpt_paging_enforce_cc',
        );
    }
    attach?.(hwpt);
    try {
      ioas.iopt.addDomain(hwpt.domain);
    } catch (e) {
      if (attach) idev.detachFrom(hwpt);
      throw e;
    }
  } catch (e) {
    ctx.abort(hwpt);
    throw e;
  }
  ioas.get();
  ioas.hwpts.push(hwpt);
  return hwpt;
}

/**
 * IOMMU_HWPT_ALLOC: a paging HWPT on an IOAS, or a nested HWPT on a
 * nesting-parent paging HWPT or a vIOMMU (see hwptNestedAlloc). A
 * data_type on an IOAS goes to the driver as user_data (e.g. the uiommu
 * extension IOMMU_HWPT_DATA_UIOMMU_SPAPR_WINDOWS).
 */
export function hwptAlloc(ctx: IommufdCtx, ucmd: Ucmd<V<typeof IommuHwptAlloc>>): number {
  const cmd = ucmd.cmd;
  if (cmd.__reserved !== 0) fail('EOPNOTSUPP', '__reserved is not zero', 'iommufd_hwpt_alloc');
  const none = cmd.data_type === IOMMU_HWPT_DATA_TYPE.NONE;
  if ((none && cmd.data_len !== 0) || (!none && cmd.data_len === 0))
    fail(
      'EINVAL',
      `data_type ${cmd.data_type} with data_len ${cmd.data_len}`,
      'iommufd_hwpt_alloc',
    );
  const idev = ctx.get<IommufdDevice>(cmd.dev_id, 'device');
  const pt = ctx.lookup(cmd.pt_id);
  if (!pt) fail('EINVAL', `no object with pt_id ${cmd.pt_id}`, 'iommufd_hwpt_alloc');
  const mm = ucmd.mm;
  const userData: IommuUserData | undefined = none
    ? undefined
    : {
        type: cmd.data_type,
        len: cmd.data_len,
        copy: () => mm.read(cmd.data_uptr, cmd.data_len),
      };
  let hwpt: HwptPaging | HwptNested;
  if (pt.type === 'ioas') {
    hwpt = hwptPagingAlloc(ctx, pt as Ioas, idev, cmd.flags, false, undefined, userData);
  } else if (pt.type === 'hwpt_paging' || pt.type === 'viommu') {
    hwpt = hwptNestedAlloc(ctx, idev, pt, cmd.flags, userData);
  } else {
    fail(
      'EINVAL',
      `pt_id ${cmd.pt_id} is a ${pt.type}, not an IOAS, a paging HWPT or a vIOMMU`,
      'iommufd_hwpt_alloc',
    );
  }
  if (cmd.flags & IOMMU_HWPT_ALLOC_FLAGS.FAULT_ID_VALID) {
    // fault_id is looked up after the domain exists: ENOENT unless a FAULT
    try {
      hwpt.fault = holdFault(ctx, cmd.fault_id);
    } catch (e) {
      ctx.remove(hwpt);
      throw e;
    }
  }
  ctx.finalize(hwpt);
  cmd.out_hwpt_id = hwpt.id;
  try {
    ucmd.respond();
  } catch (e) {
    ctx.remove(hwpt);
    throw e;
  }
  return 0;
}

/** IOMMU_HWPT_SET_DIRTY_TRACKING: enabling clears stale dirty bits first. */
export function hwptSetDirtyTracking(
  ctx: IommufdCtx,
  ucmd: Ucmd<V<typeof IommuHwptSetDirtyTracking>>,
): number {
  const cmd = ucmd.cmd;
  if ((cmd.flags & ~IOMMU_HWPT_DIRTY_TRACKING_FLAGS.ENABLE) !== 0)
    fail('EOPNOTSUPP', `unknown flags ${hex(cmd.flags)}`, 'iommufd_hwpt_set_dirty_tracking');
  const hwpt = ctx.get<HwptPaging>(cmd.hwpt_id, 'hwpt_paging');
  const domain = hwpt.domain;
  if (!domain.dirtyCapable)
    fail('EOPNOTSUPP', 'the domain has no dirty tracking', 'iopt_set_dirty_tracking');
  const enable = (cmd.flags & IOMMU_HWPT_DIRTY_TRACKING_FLAGS.ENABLE) !== 0;
  if (enable && !domain.dirtyTracking) {
    for (const area of hwpt.ioas.iopt.areas)
      domain.readDirtySpans(area.start, area.length, false, () => {});
  }
  domain.dirtyTracking = enable;
  return 0;
}

/**
 * IOMMU_HWPT_GET_DIRTY_BITMAP: OR one bit per 2^pgshift bytes of IOVA
 * (pgshift: page_size's lowest set bit), counted from `iova`, into the user
 * bitmap for every dirty IOPTE over the mapped areas (IovaBitmap: bits the
 * kernel cannot pin are dropped, the answer stays 0).
 */
export function hwptGetDirtyBitmap(
  ctx: IommufdCtx,
  ucmd: Ucmd<V<typeof IommuHwptGetDirtyBitmap>>,
): number {
  const cmd = ucmd.cmd;
  if ((cmd.flags & ~IOMMU_HWPT_GET_DIRTY_BITMAP_FLAGS.NO_CLEAR) !== 0 || cmd.__reserved !== 0) {
    fail('EOPNOTSUPP', 'unknown flags or __reserved not zero', 'iommufd_hwpt_get_dirty_bitmap');
  }
  const hwpt = ctx.get<HwptPaging>(cmd.hwpt_id, 'hwpt_paging');
  const iopt = hwpt.ioas.iopt;
  // iommufd_check_iova_range() in u64: length 0 makes length - 1 all ones,
  // which wraps unless iova is 0 (then the range is the whole space)
  const last = cmd.iova + BigInt.asUintN(64, cmd.length - 1n);
  if (last > U64_MAX) fail('EOVERFLOW', 'iova + length - 1 wraps', 'iommufd_check_iova_range');
  const end = BigInt.asUintN(64, last + 1n);
  const mask = iopt.iovaAlignment - 1n;
  if ((cmd.iova & mask) !== 0n || (end & mask) !== 0n)
    fail(
      'EINVAL',
      `iova or iova + length not aligned to the IOAS alignment ${hex(iopt.iovaAlignment)}`,
      'iommufd_check_iova_range',
    );
  if (cmd.page_size === 0n) fail('EINVAL', 'page_size is zero', 'iommufd_check_iova_range');
  // a mask of page_size - 1, as the kernel tests it (a page_size that is no power of two too)
  const pageMask = cmd.page_size - 1n;
  if ((cmd.iova & pageMask) !== 0n || (end & pageMask) !== 0n)
    fail(
      'EINVAL',
      `iova or iova + length has a bit of page_size - 1 (${hex(pageMask)}) set`,
      'iommufd_check_iova_range',
    );
  if (!hwpt.domain.dirtyCapable)
    fail('EOPNOTSUPP', 'the domain has no dirty tracking', 'iommu_read_and_clear_dirty');
  // drivers refuse to fill a bitmap while tracking is off; iommufd ignores that error
  if (!hwpt.domain.dirtyTracking) return 0;
  const keep = (cmd.flags & IOMMU_HWPT_GET_DIRTY_BITMAP_FLAGS.NO_CLEAR) !== 0;
  const bitmap = new IovaBitmap(ucmd.mm, cmd.data, cmd.iova, cmd.length, cmd.page_size);
  let cur = cmd.iova;
  while (cur <= last) {
    const area = iopt.areas.find(cur);
    if (!area) break;
    const stop = area.last < last ? area.last : last;
    const from = cur;
    hwpt.domain.readDirtySpans(cur, stop - cur + 1n, keep, (first, lastByte, size) =>
      bitmap.record(first > from ? first : from, lastByte < stop ? lastByte : stop, size),
    );
    if (stop === U64_MAX) break;
    cur = stop + 1n;
  }
  bitmap.flush();
  return 0;
}
