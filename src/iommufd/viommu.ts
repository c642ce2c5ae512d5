import { fail } from '../abi/errno.ts';
import {
  IOMMU_VIOMMU_TYPE,
  type IommuVdeviceAlloc,
  type IommuViommuAlloc,
} from '../abi/iommufd.ts';
import type { Layout } from '../abi/layout.ts';
import type { Device } from '../iommu/device.ts';
import type { IommuDriver, IommuUserData } from '../iommu/driver.ts';
import type { IommuViommu, ViommuCore } from '../iommu/viommu.ts';
import type { IommufdCtx } from './context.ts';
import type { IommufdDevice } from './device.ts';
import type { HwptPaging } from './hw-pagetable.ts';
import type { IommufdMmaps } from './mmap.ts';
import { IommufdObject } from './object.ts';
import type { Ucmd } from './ucmd.ts';
import type { Veventq } from './veventq.ts';

type V<L> = L extends Layout<infer T> ? T : never;

/**
 * A virtual IOMMU (iommufd_viommu): a driver instance on a nesting-parent
 * paging HWPT, which it holds. Nested HWPTs, vDEVICEs, vEVENTQs and HW
 * queues built on it hold it. Its vDEVICEs are indexed by virt_id; it has
 * at most one vEVENTQ per type.
 */
export class Viommu extends IommufdObject implements ViommuCore {
  readonly type = 'viommu';
  ops!: IommuViommu;
  readonly vdevs = new Map<bigint, Vdevice>();
  readonly veventqs = new Map<number, Veventq>();

  constructor(
    readonly hwpt: HwptPaging,
    /** The driver of the IOMMU instance it virtualises. */
    readonly driver: IommuDriver,
    /** Its context's mmap regions. */
    private readonly mmaps: IommufdMmaps,
    readonly pageSize: bigint,
  ) {
    super();
  }

  allocMmap(bytes: Uint8Array): bigint {
    return this.mmaps.alloc(this, bytes);
  }

  destroyMmap(offset: bigint): void {
    this.mmaps.destroy(offset);
  }

  findDev(virtId: bigint): Device | undefined {
    return this.vdevs.get(virtId)?.idev.dev;
  }

  vdevIdOf(dev: Device): bigint {
    for (const vdev of this.vdevs.values()) if (vdev.idev.dev === dev) return vdev.virtId;
    fail('ENOENT', 'device has no vDEVICE in this vIOMMU', 'iommufd_viommu_get_vdev_id');
  }

  /** iommufd_viommu_report_event(): EOPNOTSUPP without a vEVENTQ of `type`; a full queue still succeeds. */
  reportEvent(type: number, payload: Uint8Array): void {
    const veventq = this.veventqs.get(type);
    if (!veventq) fail('EOPNOTSUPP', 'no vEVENTQ of that type', 'iommufd_viommu_report_event');
    veventq.report(payload);
  }

  destroy(): void {
    this.ops.destroy();
    this.hwpt.put();
  }
}

/**
 * A vDEVICE (iommufd_vdevice): a bound device's identity (`virtId`) in a
 * vIOMMU. It holds the vIOMMU and the device; a device has at most one.
 */
export class Vdevice extends IommufdObject {
  readonly type = 'vdevice';

  constructor(
    readonly viommu: Viommu,
    readonly idev: IommufdDevice,
    readonly virtId: bigint,
  ) {
    super();
  }

  destroy(): void {
    if (this.viommu.vdevs.get(this.virtId) === this) this.viommu.vdevs.delete(this.virtId);
    if (this.idev.vdev === this) this.idev.vdev = undefined;
    this.viommu.put();
    this.idev.put();
  }
}

/**
 * IOMMU_VIOMMU_ALLOC. Errors in order: EOPNOTSUPP (flags, type DEFAULT),
 * ENOENT (no such device), EOPNOTSUPP (type unknown to the driver), ENOENT
 * (hwpt_id not a paging HWPT), EINVAL (not a nesting parent), then the
 * driver's data rules.
 */
export function viommuAlloc(ctx: IommufdCtx, ucmd: Ucmd<V<typeof IommuViommuAlloc>>): number {
  const cmd = ucmd.cmd;
  const where = 'iommufd_viommu_alloc_ioctl';
  if (cmd.flags !== 0 || cmd.type === IOMMU_VIOMMU_TYPE.DEFAULT) {
    fail('EOPNOTSUPP', 'flags not 0, or type DEFAULT', where);
  }
  const idev = ctx.get<IommufdDevice>(cmd.dev_id, 'device');
  const driver = idev.dev.driver;
  const vdriver = driver.viommu;
  if (!vdriver?.viommuSupported(idev.dev, cmd.type)) {
    fail('EOPNOTSUPP', `the IOMMU driver has no vIOMMU of type ${cmd.type}`, where);
  }
  const hwpt = ctx.get<HwptPaging>(cmd.hwpt_id, 'hwpt_paging');
  if (!hwpt.flags.nestParent) fail('EINVAL', 'not a nesting parent', where);
  const mm = ucmd.mm;
  const userData: IommuUserData | undefined =
    cmd.data_len === 0
      ? undefined
      : {
          type: cmd.type,
          len: cmd.data_len,
          copy: () => mm.read(cmd.data_uptr, cmd.data_len),
          write: (data) => mm.write(cmd.data_uptr, data),
        };
  ctx.create(new Viommu(hwpt, driver, ctx.mmaps, ctx.host.memory.pageSize), (viommu) => {
    viommu.ops = vdriver.viommuInit(viommu, hwpt.domain, cmd.type, userData);
    cmd.out_viommu_id = viommu.id;
    try {
      ucmd.respond();
    } catch (e) {
      viommu.ops.destroy();
      throw e;
    }
    hwpt.get();
  });
  return 0;
}

/**
 * IOMMU_VDEVICE_ALLOC. Errors in order: ENOENT (no such vIOMMU, then no
 * such device), EINVAL (device behind another IOMMU), EEXIST (the device
 * has a vDEVICE already, or `virt_id` is taken in this vIOMMU).
 */
export function vdeviceAlloc(ctx: IommufdCtx, ucmd: Ucmd<V<typeof IommuVdeviceAlloc>>): number {
  const cmd = ucmd.cmd;
  const viommu = ctx.get<Viommu>(cmd.viommu_id, 'viommu');
  const idev = ctx.get<IommufdDevice>(cmd.dev_id, 'device');
  const where = 'iommufd_vdevice_alloc_ioctl';
  if (viommu.driver !== idev.dev.driver) fail('EINVAL', 'device behind another IOMMU', where);
  if (idev.vdev) fail('EEXIST', 'device already has a vDEVICE', where);
  if (viommu.vdevs.has(cmd.virt_id)) fail('EEXIST', 'virt_id in use', where);

  ctx.create(new Vdevice(viommu, idev, cmd.virt_id), (vdev) => {
    cmd.out_vdevice_id = vdev.id;
    ucmd.respond();
    viommu.get();
    idev.get();
    idev.vdev = vdev;
    viommu.vdevs.set(vdev.virtId, vdev);
  });
  return 0;
}
