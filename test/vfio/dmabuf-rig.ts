/**
 * The dma-buf rig shared by test/vfio/dmabuf.test.ts and the reason table
 * test/host/reasons-hot-reset-dmabuf.test.ts: a refguest function opened
 * through its group, on Linux 7.2's profile by default.
 */
import assert from 'node:assert/strict';
import { IOMMU_IOAS_MAP_FLAGS } from '../../src/abi/iommufd.ts';
import { VFIO_EXTENSION } from '../../src/abi/vfio.ts';
import {
  VFIO_DEVICE_FEATURE,
  VFIO_DEVICE_FEATURE_ID,
  VfioDeviceFeatureDmaBuf,
  VfioRegionDmaRange,
} from '../../src/abi/vfio-device.ts';
import type { KernelVersion } from '../../src/host/versions.ts';
import { VfioClient } from './client.ts';

const { GET } = VFIO_DEVICE_FEATURE;
const DMA_BUF = VFIO_DEVICE_FEATURE_ID.DMA_BUF;
export const CONFIG = 7n << 40n;
export const PAGE = 0x1000n;
/** IOAS_MAP(_FILE) read and write. */
export const RW = IOMMU_IOAS_MAP_FLAGS.READABLE | IOMMU_IOAS_MAP_FLAGS.WRITEABLE;

/** The refguest function `bdf` opened through its group on a legacy type1 container. */
export function rig(bdf = '0000:00:03.0', version: KernelVersion = '7.2') {
  const c = new VfioClient({ host: 'refguest', version });
  const group = { '0000:00:03.0': 2, '0000:00:04.0': 3, '0000:00:05.0': 4 }[bdf]!;
  const container = c.open('/dev/vfio/vfio').ret;
  const g = c.open(`/dev/vfio/${group}`).ret;
  c.setContainer(g, container);
  c.ioctl(container, 'VFIO_SET_IOMMU', BigInt(VFIO_EXTENSION.TYPE1v2_IOMMU));
  const dev = c.getDeviceFd(g, bdf).ret;
  /** Memory decode on or off (the Command register through the config region). */
  const decode = (on: boolean) => {
    assert.equal(
      c.proc.pwrite(dev, c.proc.scratch(Uint8Array.of(on ? 2 : 0, 0)), 2, CONFIG + 4n),
      2,
    );
  };
  /** DEVICE_FEATURE(DMA_BUF) with `flags`, the header's argsz and the ranges. */
  const feature = (
    req: Partial<{ region_index: number; flags: number; nr_ranges: number }>,
    ranges: [bigint, bigint][] = [[0n, PAGE]],
    op = GET,
    argsz?: number,
  ) => {
    const body = VfioDeviceFeatureDmaBuf.encode({
      region_index: 0,
      open_flags: 0,
      flags: 0,
      nr_ranges: ranges.length,
      ...req,
    });
    const buf = new Uint8Array(8 + 16 + 16 * ranges.length);
    const v = new DataView(buf.buffer);
    v.setUint32(0, argsz ?? buf.length, true);
    v.setUint32(4, op | DMA_BUF, true);
    buf.set(body, 8);
    for (const [i, [offset, length]] of ranges.entries()) {
      buf.set(VfioRegionDmaRange.encode({ offset, length }), 24 + 16 * i);
    }
    return c.ioctl(dev, 'VFIO_DEVICE_FEATURE', c.proc.scratch(buf));
  };
  return { c, dev, decode, feature };
}
