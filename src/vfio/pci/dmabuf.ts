/**
 * VFIO_DEVICE_FEATURE_DMA_BUF (vfio_pci_dmabuf.c, v6.19 with
 * CONFIG_VFIO_PCI_DMABUF): ranges of a memory BAR exported as a dma-buf
 * fd. iommufd maps such a buffer with IOMMU_IOAS_MAP_FILE when it is one
 * range: the IOVAs then reach the BAR's bus addresses (peer-to-peer).
 * The buffer is revoked while the function's Memory decode is off and for
 * good once the device is closed: MAP_FILE of it is then ENODEV. Each move
 * (decode off, a reset, the close) tells its importers: iommufd then
 * unmaps the areas mapping it, for good.
 *
 * @example
 * // GET of { region_index: 0, nr_ranges: 1, dma_ranges: [{ offset: 0, length: 0x1000 }] }
 * const fd = dmaBufFeature(dev, caller, FEATURE_GET | 11, arg + 8n, 32); // a new fd
 */
import { fail } from '../../abi/errno.ts';
import { U64_MAX } from '../../abi/layout.ts';
import type { PhysRun } from '../../iommu/mm.ts';
import {
  type Caller,
  DmaBufAttachments,
  type DmaBufExporter,
  type FileOps,
  type FileRef,
  type PagesSource,
} from '../../kernel/file.ts';
import { checkFeature } from '../device-feature.ts';
import {
  VFIO_DEVICE_FEATURE,
  VFIO_PCI_REGION,
  VfioDeviceFeatureDmaBuf,
  VfioRegionDmaRange,
} from './abi.ts';
import type { VfioPciDevice } from './device.ts';

/** KMALLOC_MAX_SIZE on x86-64 (order-10 pages): memdup_array_user of more is ENOMEM. */
const KMALLOC_MAX_SIZE = 4n << 20n;
/** DMA_IOVA_USE_SWIOTLB: a total length with bit 63 set is refused. */
const DMA_IOVA_USE_SWIOTLB = 1n << 63n;

/** One range of the buffer: `length` bytes at bus address `phys`. */
interface PhysVec {
  readonly phys: bigint;
  readonly length: bigint;
}

/**
 * vfio_pci_core_feature_dma_buf(). Errors in order: the feature checks
 * (GET only, payload ≥ 16: EINVAL); EFAULT; `nr_ranges` 0 or `flags` ≠ 0
 * EINVAL; `region_index` not a present BAR ENODEV; the ranges (ENOMEM above
 * 4 MiB of them, EFAULT); a range of length 0 or not page-aligned, or a
 * total that wraps or has bit 63, EINVAL; an I/O BAR EINVAL; a range whose
 * bus address wraps EOVERFLOW, or ends past the BAR EINVAL. Returns the new fd.
 */
export function dmaBufFeature(
  dev: VfioPciDevice,
  caller: Caller,
  flags: number,
  data: bigint,
  size: number,
): number {
  if (!checkFeature(flags, size, VFIO_DEVICE_FEATURE.GET, VfioDeviceFeatureDmaBuf.size)) return 0;
  const req = VfioDeviceFeatureDmaBuf.decode(caller.mm.read(data, VfioDeviceFeatureDmaBuf.size));
  if (req.nr_ranges === 0 || req.flags !== 0)
    fail('EINVAL', 'nr_ranges 0 or flags set', 'vfio_pci_core_feature_dma_buf');
  const bar = dev.spec.bars.find((b) => b.index === req.region_index);
  if (req.region_index >= VFIO_PCI_REGION.ROM || !bar) {
    fail(
      'ENODEV',
      `region ${req.region_index} is no BAR of the function`,
      'vfio_pci_core_feature_dma_buf',
    );
  }
  const bytes = BigInt(req.nr_ranges) * BigInt(VfioRegionDmaRange.size);
  if (bytes > KMALLOC_MAX_SIZE) fail('ENOMEM', `${req.nr_ranges} ranges`, 'memdup_array_user');
  const raw = caller.mm.read(data + BigInt(VfioDeviceFeatureDmaBuf.size), Number(bytes));
  const ranges = Array.from({ length: req.nr_ranges }, (_, i) =>
    VfioRegionDmaRange.decode(raw.subarray(i * 16, i * 16 + 16)),
  );
  const page = caller.mm.pageSize;
  let total = 0n;
  for (const r of ranges) {
    if (r.length === 0n || r.offset % page !== 0n || r.length % page !== 0n) {
      fail('EINVAL', 'a range is empty or not page-aligned', 'validate_dmabuf_input');
    }
    total += r.length;
    if (total > U64_MAX) fail('EINVAL', 'the ranges add up past 2^64', 'validate_dmabuf_input');
  }
  if (total & DMA_IOVA_USE_SWIOTLB)
    fail('EINVAL', 'the ranges add up to 2^63 or more', 'validate_dmabuf_input');
  if (bar.kind === 'io')
    fail('EINVAL', 'an I/O BAR has no peer-to-peer provider', 'vfio_pci_core_get_dmabuf_phys');
  const start = dev.barBusAddress(bar.index);
  const vecs = ranges.map((r): PhysVec => {
    const phys = start + r.offset;
    if (phys > U64_MAX || phys + r.length > U64_MAX)
      fail('EOVERFLOW', 'a range wraps the bus address', 'vfio_pci_core_fill_phys_vec');
    if (phys + r.length > start + bar.size)
      fail('EINVAL', 'a range ends past the BAR', 'vfio_pci_core_fill_phys_vec');
    return { phys, length: r.length };
  });
  return caller.installFile(new VfioPciDmaBuf(dev, vecs, total));
}

/** The exported buffer (struct vfio_pci_dma_buf) as an open dma-buf file. */
class VfioPciDmaBuf implements FileOps, DmaBufExporter, PagesSource {
  readonly kind = 'dmabuf';
  readonly ref: FileRef;
  /** The device's close count when exported: a later close revokes it for good. */
  private readonly closes: number;
  private readonly attachments = new DmaBufAttachments();

  constructor(
    private readonly dev: VfioPciDevice,
    private readonly vecs: readonly PhysVec[],
    size: bigint,
  ) {
    this.closes = dev.closes;
    this.ref = { pages: { source: this, size, dmabuf: this } };
    // kept for the device's life: an importer holds the buffer after its fd is closed
    dev.dmabufMoves.attach(() => this.attachments.invalidate());
  }

  attach(invalidate: () => void): () => void {
    return this.attachments.attach(invalidate);
  }

  /** priv->revoked: Memory decode off, or the device closed since. */
  get revoked(): boolean {
    return this.dev.closes !== this.closes || !this.dev.config.memoryEnabled;
  }

  /** vfio_pci_dma_buf_iommufd_map(): iommufd takes a single range only. */
  iommufdMap(): void {
    if (this.vecs.length !== 1)
      fail('EOPNOTSUPP', 'iommufd maps a one-range dma-buf only', 'vfio_pci_dma_buf_iommufd_map');
  }

  /** The bus addresses behind buffer offsets `[start, start+length)`. */
  resolve(start: bigint, length: bigint): PhysRun[] {
    const runs: PhysRun[] = [];
    let at = 0n;
    for (const v of this.vecs) {
      const s = start > at ? start : at;
      const e = start + length < at + v.length ? start + length : at + v.length;
      if (s < e) runs.push({ va: s, length: e - s, phys: v.phys + (s - at) });
      at += v.length;
    }
    return runs;
  }

  release(): void {}
}
