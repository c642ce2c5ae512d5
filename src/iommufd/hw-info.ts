import { fail } from '../abi/errno.ts';
import {
  IOMMU_HW_CAP,
  IOMMU_HW_INFO_FLAGS,
  IOMMU_HW_INFO_TYPE,
  type IommuHwInfo,
} from '../abi/iommufd.ts';
import type { Layout } from '../abi/layout.ts';
import type { IommufdCtx } from './context.ts';
import type { IommufdDevice } from './device.ts';
import { clearUser, type Ucmd } from './ucmd.ts';

type V<L> = L extends Layout<infer T> ? T : never;

/**
 * IOMMU_GET_HW_INFO: copy min(data_len, driver length) bytes of the driver's
 * info, zero the rest of the user buffer, report the driver's full length,
 * type, capabilities and PASID width.
 */
export function hwInfo(ctx: IommufdCtx, ucmd: Ucmd<V<typeof IommuHwInfo>>): number {
  const cmd = ucmd.cmd;
  const where = 'iommufd_get_hw_info';
  const valid = ctx.host.personality.hwInfoInputType ? IOMMU_HW_INFO_FLAGS.INPUT_TYPE : 0;
  if ((cmd.flags & ~valid) !== 0) {
    fail('EOPNOTSUPP', `unknown flags 0x${cmd.flags.toString(16)}`, where);
  }
  const wanted =
    cmd.flags & IOMMU_HW_INFO_FLAGS.INPUT_TYPE ? cmd.out_data_type : IOMMU_HW_INFO_TYPE.DEFAULT;
  if (cmd.__reserved_0 || cmd.__reserved_1 || cmd.__reserved_2) {
    fail('EOPNOTSUPP', '__reserved is not 0', where);
  }
  const idev = ctx.get<IommufdDevice>(cmd.dev_id, 'device');
  const dev = idev.dev;
  const info = dev.driver.hwInfo(dev);
  const type = info?.type ?? IOMMU_HW_INFO_TYPE.NONE;
  if (wanted !== IOMMU_HW_INFO_TYPE.DEFAULT && wanted !== type) {
    fail('EOPNOTSUPP', `the IOMMU driver has no info of type ${wanted}`, where);
  }

  const data = info?.data ?? new Uint8Array(0);
  const copyLen = Math.min(cmd.data_len, data.length);
  if (copyLen > 0) ucmd.mm.write(cmd.data_uptr, data.subarray(0, copyLen));
  if (copyLen < cmd.data_len) {
    // a huge data_len is cleared off the engine's thread: the call restarts, its copy above redone
    clearUser(ucmd.mm, cmd.data_uptr + BigInt(copyLen), BigInt(cmd.data_len - copyLen), true);
  }
  cmd.data_len = data.length;
  cmd.out_data_type = type;
  let caps = dev.driver.dirtyTrackingCapable(dev) ? IOMMU_HW_CAP.DIRTY_TRACKING : 0;
  if (ctx.host.personality.hwCapAtsNotSupported) caps |= IOMMU_HW_CAP.PCI_ATS_NOT_SUPPORTED;
  cmd.out_capabilities = BigInt(caps);
  cmd.out_max_pasid_log2 = dev.driver.maxPasidLog2(dev);
  ucmd.respond();
  return 0;
}
