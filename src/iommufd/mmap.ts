/**
 * The mmap regions of an iommufd context (the kernel's `mt_mmap` and
 * iommufd_fops_mmap, since v6.17): a driver offers a region of one of its
 * objects (a vIOMMU's page) at an offset; user space maps exactly that
 * offset and length, MAP_SHARED, through its /dev/iommu fd. Every piece of
 * such a mapping holds the owning object, so DESTROY of it is EBUSY while
 * it is mapped.
 *
 * @example
 * const off = mmaps.alloc(viommu, new Uint8Array(8192)); // 4096n: page 0 is never used
 * mmaps.mmap(off, 8192n, { shared: true, exec: false }, host); // the mapping
 * mmaps.mmap(off + 4096n, 4096n, ...); // ENXIO: not the region's start
 */
import { fail } from '../abi/errno.ts';
import type { DeviceMapping, MmapHost, SharedStore } from '../kernel/file.ts';
import type { IommufdObject } from './object.ts';

/** One region (struct iommufd_mmap): `[offset, offset+length)` of the fd's offset space. */
interface Region {
  readonly owner: IommufdObject;
  readonly offset: bigint;
  readonly length: bigint;
  /** The contents until the first mmap moves them into `store`. */
  bytes: Uint8Array;
  store?: SharedStore;
}

export class IommufdMmaps {
  /** Ascending by offset, never overlapping. */
  private readonly regions: Region[] = [];

  constructor(private readonly pageSize: bigint) {}

  /**
   * _iommufd_alloc_mmap(): the lowest free offset range of `bytes.length`
   * bytes at or above PAGE_SIZE (offset 0 is never handed out), owned by `owner`.
   */
  alloc(owner: IommufdObject, bytes: Uint8Array): bigint {
    const length = BigInt(bytes.length);
    let offset = this.pageSize;
    let i = 0;
    for (; i < this.regions.length; i++) {
      const r = this.regions[i]!;
      if (r.offset - offset >= length) break;
      if (r.offset + r.length > offset) offset = r.offset + r.length;
    }
    this.regions.splice(i, 0, { owner, offset, length, bytes });
    return offset;
  }

  /** _iommufd_destroy_mmap(): the region at `offset` goes away (its shared file is closed). */
  destroy(offset: bigint): void {
    const i = this.regions.findIndex((r) => r.offset === offset);
    if (i < 0) throw new Error(`no iommufd mmap region at ${offset}`);
    this.regions[i]!.store?.close?.();
    this.regions.splice(i, 1);
  }

  /**
   * iommufd_fops_mmap(): EINVAL unless MAP_SHARED, EPERM with PROT_EXEC,
   * ENXIO unless `offset` and `length` (whole pages: mmap(2) rounds it up)
   * are exactly a region's. The region's bytes move into a shared file on its first mmap.
   */
  mmap(
    offset: bigint,
    length: bigint,
    prot: { shared: boolean; exec: boolean },
    host: MmapHost,
  ): DeviceMapping {
    if (!prot.shared)
      fail('EINVAL', 'iommufd regions are mapped MAP_SHARED only', 'iommufd_fops_mmap');
    if (prot.exec) fail('EPERM', 'iommufd regions are not executable', 'iommufd_fops_mmap');
    const r = this.regions.find((x) => offset >= x.offset && offset < x.offset + x.length);
    if (!r) fail('ENXIO', `no region at offset ${offset}`, 'iommufd_fops_mmap');
    if (offset !== r.offset || length !== r.length) {
      fail(
        'ENXIO',
        `the region is ${r.length} bytes at offset ${r.offset}: map exactly that`,
        'iommufd_fops_mmap',
      );
    }
    if (!r.store) {
      r.store = host.share(`uiommu-${r.owner.type}-${r.owner.id}`, r.length);
      r.store.write(0n, r.bytes);
      r.bytes = new Uint8Array(0);
    }
    const owner = r.owner;
    return {
      file: r.store,
      fileOffset: 0n,
      registers: [],
      access: () => fail('EFAULT', 'an iommufd region has no registers', 'uiommu_iommufd_region'),
      fault: () => {},
      zaps: () => 0,
      phys: () =>
        fail('EFAULT', 'DMA to an iommufd region is not modelled', 'uiommu_iommufd_region'),
      open: () => owner.get(),
      close: () => owner.put(),
    };
  }
}
