import { Errno, fail } from '../abi/errno.ts';
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
import type { Mm } from '../iommu/mm.ts';
import type { IommufdCtx, Personality } from './context.ts';
import type { IommufdDevice } from './device.ts';
import { holdFault, type IommufdFault } from './fault.ts';
import { type HwptNested, hwptNestedAlloc } from './hwpt-nested.ts';
import type { Ioas } from './ioas.ts';
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
 * IOMMU_HWPT_GET_DIRTY_BITMAP: OR one bit per `page_size` (counted from
 * `iova`) into the user bitmap for every dirty leaf over the mapped areas.
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
  if (cmd.iova % cmd.page_size !== 0n || end % cmd.page_size !== 0n)
    fail(
      'EINVAL',
      `iova or iova + length not a multiple of page_size ${hex(cmd.page_size)}`,
      'iommufd_check_iova_range',
    );
  if (!hwpt.domain.dirtyCapable)
    fail('EOPNOTSUPP', 'the domain has no dirty tracking', 'iommu_read_and_clear_dirty');
  // drivers refuse to fill a bitmap while tracking is off; iommufd ignores that error
  if (!hwpt.domain.dirtyTracking) return 0;
  const keep = (cmd.flags & IOMMU_HWPT_GET_DIRTY_BITMAP_FLAGS.NO_CLEAR) !== 0;
  const bits: [bigint, bigint][] = [];
  let cur = cmd.iova;
  while (cur <= last) {
    const area = iopt.areas.find(cur);
    if (!area) break;
    const end = area.last < last ? area.last : last;
    // consecutive leaves make consecutive bits: a span of them is one run
    hwpt.domain.readDirtySpans(cur, end - cur + 1n, keep, (first, lastByte) => {
      const s = first > cur ? first : cur;
      const e = lastByte < end ? lastByte : end;
      const b0 = (s - cmd.iova) / cmd.page_size;
      const b1 = (e - cmd.iova) / cmd.page_size;
      const prev = bits[bits.length - 1];
      if (prev && b0 <= prev[1] + 1n) prev[1] = b1 > prev[1] ? b1 : prev[1];
      else bits.push([b0, b1]);
    });
    if (end === U64_MAX) break;
    cur = end + 1n;
  }
  orBitRuns(ucmd.mm, cmd.data, bits);
  return 0;
}

/** Bytes of user bitmap updated per step. */
const BITMAP_CHUNK = 1n << 16n;

/**
 * OR the ascending, disjoint bit runs `runs` into the user bitmap at `data`.
 * Runs whose bytes lie in the same or adjacent user pages are updated by one
 * read and one write of the bytes from the first to the last: the bytes
 * between them lie in pages the runs touch anyway, so exactly the same pages
 * are reached as run by run. When such a group faults, it is redone run by
 * run (ORing is idempotent), so the EFAULT comes at the same run with the
 * same bits written before it.
 */
function orBitRuns(mm: Mm, data: bigint, runs: readonly [bigint, bigint][]): void {
  const page = mm.pageSize;
  for (let i = 0; i < runs.length; ) {
    const firstByte = runs[i]![0] / 8n;
    let lastByte = runs[i]![1] / 8n;
    let j = i + 1;
    for (; j < runs.length; j++) {
      const next = runs[j]!;
      const nextLast = next[1] / 8n;
      if ((data + next[0] / 8n) / page > (data + lastByte) / page + 1n) break;
      if (nextLast - firstByte >= BITMAP_CHUNK) break;
      lastByte = nextLast;
    }
    if (j === i + 1) orBits(mm, data, runs[i]![0], runs[i]![1]);
    else {
      try {
        const buf = mm.read(data + firstByte, Number(lastByte - firstByte + 1n));
        for (let k = i; k < j; k++) setBits(buf, firstByte, runs[k]![0], runs[k]![1]);
        mm.write(data + firstByte, buf);
      } catch (e) {
        if (!(e instanceof Errno)) throw e;
        for (let k = i; k < j; k++) orBits(mm, data, runs[k]![0], runs[k]![1]);
      }
    }
    i = j;
  }
}

/**
 * OR bits `[b0, b1]` into the user bitmap at `data` (bit n is byte n/8,
 * mask 1 << n%8), a chunk at a time; EFAULT at the first unreachable byte.
 */
function orBits(mm: Mm, data: bigint, b0: bigint, b1: bigint): void {
  const lastByte = b1 / 8n;
  for (let at = b0 / 8n; at <= lastByte; at += BITMAP_CHUNK) {
    const stop = at + BITMAP_CHUNK - 1n < lastByte ? at + BITMAP_CHUNK - 1n : lastByte;
    const buf = mm.read(data + at, Number(stop - at + 1n));
    setBits(buf, at, b0, b1);
    mm.write(data + at, buf);
  }
}

/** Set the bits of `[b0, b1]` that fall in `buf`, which holds bitmap bytes from `at` on. */
function setBits(buf: Uint8Array, at: bigint, b0: bigint, b1: bigint): void {
  const first = b0 / 8n < at ? 0 : Number(b0 / 8n - at);
  const last = Math.min(buf.length - 1, Number(b1 / 8n - at));
  for (let i = first; i <= last; i++) {
    const lo = BigInt(i) + at === b0 / 8n ? Number(b0 % 8n) : 0;
    const hi = BigInt(i) + at === b1 / 8n ? Number(b1 % 8n) : 7;
    buf[i]! |= (0xff << lo) & (0xff >> (7 - hi)) & 0xff;
  }
}
