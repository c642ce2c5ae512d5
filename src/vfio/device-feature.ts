/**
 * VFIO_DEVICE_FEATURE (vfio_main.c): the core's checks of the header, then
 * the feature's own (the driver's hook). Facts: vfio-device.md §4.7.
 *
 * - argsz < 8 → EINVAL; a flag outside id | GET | SET | PROBE → EINVAL;
 *   GET and SET together without PROBE → EINVAL.
 * - migration and DMA-logging features: no emulated device has them →
 *   ENOTTY; any other id goes to the driver (ENOTTY when it has none).
 * - per feature (`checkFeature`, vfio_check_feature()): an op the feature
 *   lacks → EINVAL; PROBE → 0; neither GET nor SET → EINVAL; payload
 *   (argsz − 8) below the feature's minimum → EINVAL.
 *
 * @example
 * vfioDeviceFeature(caller, arg, (c, flags, data, size) => myFeature(c, flags, data, size));
 */
import { fail } from '../abi/errno.ts';
import type { Caller } from '../kernel/file.ts';
import { VFIO_DEVICE_FEATURE, VFIO_DEVICE_FEATURE_ID, VfioDeviceFeature } from './pci/abi.ts';
import { VfioUser } from './user.ts';

/** A driver's device_feature op: `data` is the payload's address, `size` its length (argsz − 8). */
export type DeviceFeatureOp = (caller: Caller, flags: number, data: bigint, size: number) => number;

const { GET, SET, PROBE, MASK } = VFIO_DEVICE_FEATURE;
const ID = VFIO_DEVICE_FEATURE_ID;
/** Features the core serves only for devices with migration or dirty-logging ops. */
const CORE_FEATURES: readonly number[] = [
  ID.MIGRATION,
  ID.MIG_DEVICE_STATE,
  ID.DMA_LOGGING_START,
  ID.DMA_LOGGING_STOP,
  ID.DMA_LOGGING_REPORT,
  ID.MIG_DATA_SIZE,
];

/** vfio_ioctl_device_feature(): the header at `arg`, then the driver's op. */
export function vfioDeviceFeature(caller: Caller, arg: bigint, driver?: DeviceFeatureOp): number {
  const minsz = VfioDeviceFeature.size;
  const { argsz, flags } = VfioUser.copyIn(caller.mm, arg, VfioDeviceFeature, {
    fn: 'vfio_ioctl_device_feature',
  }).cmd;
  const where = 'vfio_ioctl_device_feature';
  if (flags & ~(MASK | GET | SET | PROBE)) fail('EINVAL', 'unknown feature flags', where);
  if (!(flags & PROBE) && flags & SET && flags & GET) fail('EINVAL', 'GET and SET together', where);
  if (CORE_FEATURES.includes(flags & MASK)) fail('ENOTTY', 'no migration or DMA logging', where);
  if (!driver) fail('ENOTTY', 'the driver has no device features', where);

  return driver(caller, flags, arg + BigInt(minsz), argsz - minsz);
}

/**
 * vfio_check_feature(): may the op in `flags` go on? false for a PROBE the
 * feature supports (the ioctl then returns 0); EINVAL for an unsupported
 * op, for neither GET nor SET, or for a payload below `minsz`.
 */
export function checkFeature(
  flags: number,
  size: number,
  supported: number,
  minsz: number,
): boolean {
  if (flags & (GET | SET) & ~supported)
    fail('EINVAL', 'feature op not supported', 'vfio_check_feature');
  if (flags & PROBE) return false;
  if (!(flags & (GET | SET))) fail('EINVAL', 'neither GET nor SET', 'vfio_check_feature');
  if (size < minsz) fail('EINVAL', 'feature payload too small', 'vfio_check_feature');
  return true;
}
