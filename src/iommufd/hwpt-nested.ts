import { fail } from '../abi/errno.ts';
import { IOMMU_HWPT_ALLOC_FLAGS, type IommuHwptInvalidate, iommufdCmd } from '../abi/iommufd.ts';
import type { Layout } from '../abi/layout.ts';
import type { Domain } from '../iommu/domain.ts';
import type { IommuUserData } from '../iommu/driver.ts';
import { RestartCall } from '../iommu/mm.ts';
import { isUserInvalidatable } from '../iommu/viommu.ts';
import type { IommufdCtx } from './context.ts';
import type { IommufdDevice } from './device.ts';
import type { IommufdFault } from './fault.ts';
import type { HwptPaging } from './hw-pagetable.ts';
import type { Ioas } from './ioas.ts';
import { IommufdObject } from './object.ts';
import { type Ucmd, userDataArray } from './ucmd.ts';
import type { Viommu } from './viommu.ts';

type V<L> = L extends Layout<infer T> ? T : never;

/**
 * A user-managed (nested, stage-1) HWPT: a domain the driver built from
 * user data on top of a nesting-parent paging HWPT, directly or through a
 * vIOMMU. It holds the vIOMMU when it has one, else its parent. Devices
 * attach to it like to a paging HWPT; IOVA reservations go to the
 * parent's IOAS.
 */
export class HwptNested extends IommufdObject {
  readonly type = 'hwpt_nested';
  /** Never created by an attach: only IOMMU_DESTROY removes it. */
  readonly autoDomain = false;
  domain!: Domain;
  /** The FAULT object its I/O page faults go to (HWPT_ALLOC with fault_id); held. */
  fault: IommufdFault | undefined;

  constructor(
    readonly parent: HwptPaging,
    readonly viommu: Viommu | undefined,
    /** Allocated with IOMMU_HWPT_ALLOC_PASID. */
    readonly pasidCompat: boolean,
  ) {
    super();
  }

  /** The parent's IOAS (where attached devices' reserved regions go). */
  get ioas(): Ioas {
    return this.parent.ioas;
  }

  destroy(): void {
    (this.viommu ?? this.parent).put();
    this.fault?.put();
  }
}

/**
 * iommufd_hwpt_nested_alloc() and iommufd_viommu_alloc_hwpt_nested():
 * HWPT_ALLOC on a paging HWPT or a vIOMMU. EOPNOTSUPP for flags other than
 * FAULT_ID_VALID and PASID (FAULT_ID_VALID only without `hwptAllocPasid`), no data, or a driver without nesting; EINVAL
 * for a parent that is automatic, not a nesting parent, or of another
 * driver (or a vIOMMU of another IOMMU). The ID is taken before the
 * driver builds the domain; the caller publishes the object.
 */
export function hwptNestedAlloc(
  ctx: IommufdCtx,
  idev: IommufdDevice,
  pt: IommufdObject,
  flags: number,
  userData: IommuUserData | undefined,
): HwptNested {
  const { FAULT_ID_VALID, PASID } = IOMMU_HWPT_ALLOC_FLAGS;
  const valid = FAULT_ID_VALID | (ctx.host.personality.hwptAllocPasid ? PASID : 0);
  const pasid = (flags & IOMMU_HWPT_ALLOC_FLAGS.PASID) !== 0;
  const dev = idev.dev;
  const checkData = (where: string): IommuUserData => {
    if ((flags & ~valid) !== 0) fail('EOPNOTSUPP', `flags 0x${flags.toString(16)}`, where);
    if (!userData) fail('EOPNOTSUPP', 'no driver data for a nested HWPT', where);
    return userData;
  };
  let hwpt: HwptNested;
  let build: () => Domain;
  if (pt.type === 'viommu') {
    const viommu = pt as Viommu;
    if (viommu.driver !== dev.driver) {
      fail('EINVAL', 'vIOMMU of another IOMMU than the device', 'iommufd_hwpt_alloc');
    }
    const data = checkData('iommufd_viommu_alloc_hwpt_nested');
    hwpt = new HwptNested(viommu.hwpt, viommu, pasid);
    build = () => viommu.ops.allocDomainNested(pasid, data);
  } else {
    const where = 'iommufd_hwpt_nested_alloc';
    const parent = pt as HwptPaging;
    const data = checkData(where);
    const allocNested = dev.driver.domainAllocNested?.bind(dev.driver);
    if (!allocNested) fail('EOPNOTSUPP', 'the IOMMU driver cannot nest', where);
    if (parent.autoDomain || !parent.flags.nestParent || parent.domain.driver !== dev.driver) {
      fail('EINVAL', 'parent is automatic, not a nesting parent, or of another IOMMU', where);
    }
    hwpt = new HwptNested(parent, undefined, pasid);
    build = () => allocNested(dev, parent.domain, pasid, data);
  }
  ctx.allocId(hwpt);
  try {
    hwpt.domain = build();
  } catch (e) {
    ctx.abort(hwpt);
    throw e;
  }
  (hwpt.viommu ?? hwpt.parent).get();
  return hwpt;
}

/** IOMMU_VIOMMU_ALLOC's nr: kernels with it invalidate through vIOMMUs too. */
const VIOMMU_ALLOC_NR = iommufdCmd('IOMMU_VIOMMU_ALLOC').nr;

/** IOMMU_HWPT_INVALIDATE_ENTRY_NUM_MAX (7.2): the most entries one call may carry. */
const INVALIDATE_ENTRY_NUM_MAX = 1 << 19;

/**
 * IOMMU_HWPT_INVALIDATE: hand the request array to a nested HWPT's domain
 * or a vIOMMU. EOPNOTSUPP for a non-zero `__reserved`; EINVAL for entries
 * without a pointer or an entry length (with `requestBounds`, also an
 * entry above PAGE_SIZE or more than 2^19 entries); ENOENT for a missing ID; EINVAL
 * for any other object. `entry_num` is always written back: the entries
 * the driver handled, 0 when it was never called.
 */
export function hwptInvalidate(ctx: IommufdCtx, ucmd: Ucmd<V<typeof IommuHwptInvalidate>>): number {
  const cmd = ucmd.cmd;
  const array = userDataArray(ucmd.mm, cmd.data_type, cmd.data_uptr, cmd.entry_len, cmd.entry_num);
  let done = 0;
  let err: unknown;
  try {
    const where = 'iommufd_hwpt_invalidate';
    if (cmd.__reserved !== 0) fail('EOPNOTSUPP', '__reserved is not 0', where);
    if (cmd.entry_num !== 0 && (cmd.data_uptr === 0n || cmd.entry_len === 0)) {
      fail('EINVAL', 'entries without data_uptr or entry_len', where);
    }
    if (
      ctx.host.personality.requestBounds &&
      cmd.entry_num !== 0 &&
      (BigInt(cmd.entry_len) > ctx.host.memory.pageSize || cmd.entry_num > INVALIDATE_ENTRY_NUM_MAX)
    ) {
      fail('EINVAL', 'entry_len above PAGE_SIZE or entry_num above 2^19', where);
    }
    const pt = ctx.lookup(cmd.hwpt_id);
    if (!pt) fail('ENOENT', `no object ${cmd.hwpt_id}`, 'iommufd_get_object');
    // before vIOMMUs (6.13) only a nested HWPT is looked up: anything else is ENOENT
    const viommus = iommufdCmd(ctx.host.personality.iommufdLastCmd).nr >= VIOMMU_ALLOC_NR;
    if (!viommus && pt.type !== 'hwpt_nested') {
      fail('ENOENT', `object ${cmd.hwpt_id} is not a nested HWPT`, 'iommufd_get_hwpt_nested');
    }
    let invalidate: () => void;
    if (pt.type === 'hwpt_nested') {
      const domain = (pt as HwptNested).domain;
      if (!isUserInvalidatable(domain)) {
        fail('EOPNOTSUPP', 'the domain has no user cache invalidation', where);
      }
      invalidate = () => domain.cacheInvalidateUser(array);
    } else if (pt.type === 'viommu') {
      invalidate = () => (pt as Viommu).ops.cacheInvalidate(array);
    } else {
      fail('EINVAL', `object ${cmd.hwpt_id} is neither a nested HWPT nor a vIOMMU`, where);
    }

    try {
      invalidate();
    } finally {
      done = array.entryNum;
    }
  } catch (e) {
    if (e instanceof RestartCall) throw e; // a window of the array is being copied: nothing answered yet
    err = e;
  }
  cmd.entry_num = done;
  ucmd.respond();
  if (err) throw err;
  return 0;
}
