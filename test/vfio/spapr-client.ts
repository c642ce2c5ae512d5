/**
 * A SPAPR-aware VFIO client on the powernv preset with the legacy
 * container (QEMU's spapr_pci_vfio / vfio_spapr helpers in miniature).
 */
import assert from 'node:assert/strict';
import type { Layout } from '../../src/abi/layout.ts';
import {
  VFIO_EXTENSION,
  type VfioIoctlName,
  VfioIommuSpaprRegisterMemory,
  VfioIommuSpaprTceCreate,
  VfioIommuSpaprTceInfo,
  VfioIommuSpaprTceRemove,
  vfioIoctlNumber,
} from '../../src/abi/vfio.ts';
import type { KernelOptions } from '../../src/host/kernel.ts';
import type { Credentials } from '../../src/host/process.ts';
import { legacyContainerOf } from '../../src/vfio/container.ts';
import type { VfioSpaprTce } from '../../src/vfio/spapr/tce-container.ts';
import { VfioClient } from './client.ts';

export const MIB = 1n << 20n;
export const GIB = 1n << 30n;
export const DDW = 1n << 59n;
export const IPR = '0001:01:00.0'; // group 1, phb1
export const NVME = '0001:02:00.0'; // group 2, phb1
export const CX5 = '0000:01:00.0'; // group 0, phb0

export class SpaprClient extends VfioClient {
  container = -1;

  constructor(opts: KernelOptions = {}, creds: Partial<Credentials> = {}) {
    super(
      { host: 'powernv', ...opts, personality: { vfioContainer: 'legacy', ...opts.personality } },
      creds,
    );
  }

  call<V>(name: VfioIoctlName, layout: Layout<V>, value: Partial<V>) {
    return this.proc.call(this.container, vfioIoctlNumber(this.kernel.abi, name), layout, value);
  }

  addGroup(id: number): number {
    const g = this.open(`/dev/vfio/${id}`).ret;
    assert.equal(this.setContainer(g, this.container).ret, 0);
    return g;
  }

  /** Container + group `id` + SET_IOMMU(`type`, default v2). */
  setup(id = 1, type: number = VFIO_EXTENSION.SPAPR_TCE_v2_IOMMU): this {
    this.container = this.open('/dev/vfio/vfio').ret;
    this.addGroup(id);
    assert.equal(this.ioctl(this.container, 'VFIO_CHECK_EXTENSION', BigInt(type)).ret, 1);
    assert.equal(this.ioctl(this.container, 'VFIO_SET_IOMMU', BigInt(type)).ret, 0);
    return this;
  }

  info(argsz = 32) {
    return this.call('VFIO_IOMMU_SPAPR_TCE_GET_INFO', VfioIommuSpaprTceInfo, { argsz });
  }

  backend(): VfioSpaprTce {
    return legacyContainerOf(this.proc.file(this.container)!)!.backend as VfioSpaprTce;
  }

  /** Huge-page backed RAM (QEMU -mem-path hugetlbfs). */
  ram(size: bigint): bigint {
    return this.proc.mm.mmap({ length: size, prot: { read: true, write: true }, hugetlb: true });
  }

  register(vaddr: bigint, size: bigint, flags = 0) {
    return this.call('VFIO_IOMMU_SPAPR_REGISTER_MEMORY', VfioIommuSpaprRegisterMemory, {
      argsz: 24,
      flags,
      vaddr,
      size,
    });
  }

  unregister(vaddr: bigint, size: bigint) {
    return this.call('VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY', VfioIommuSpaprRegisterMemory, {
      argsz: 24,
      vaddr,
      size,
    });
  }

  create(page_shift: number, window_size: bigint, levels = 1, argsz = 40) {
    return this.call('VFIO_IOMMU_SPAPR_TCE_CREATE', VfioIommuSpaprTceCreate, {
      argsz,
      page_shift,
      window_size,
      levels,
    });
  }

  remove(start_addr: bigint, flags = 0) {
    return this.call('VFIO_IOMMU_SPAPR_TCE_REMOVE', VfioIommuSpaprTceRemove, {
      argsz: 16,
      flags,
      start_addr,
    });
  }

  dev(name: string) {
    return this.kernel.host.devices.get(name)!.device;
  }
}
