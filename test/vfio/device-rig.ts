/**
 * A device fd driven as a C program drives it (pread/pwrite on its BAR0 and
 * config regions), bound through its cdev to a fresh IOAS of /dev/iommu on
 * the x86 host: for device-model tests and benches.
 */
import assert from 'node:assert/strict';
import { IOMMU_IOAS_MAP_FLAGS, IommuIoasMap, iommufdCmdNumber } from '../../src/abi/iommufd.ts';
import {
  VfioDeviceAttachIommufdPt,
  VfioDeviceBindIommufd,
  vfioIoctlNumber,
} from '../../src/abi/vfio.ts';
import { vfioCdevName } from '../../src/vfio/cdev.ts';
import { vfioPciRegionOffset } from '../../src/vfio/pci/abi.ts';
import { PCI } from '../../src/vfio/pci/config-space.ts';
import { VfioClient } from './client.ts';

export const BAR0 = vfioPciRegionOffset(0);
export const CONFIG = vfioPciRegionOffset(7);
const { FIXED_IOVA } = IOMMU_IOAS_MAP_FLAGS;

export const u64le = (v: bigint) => {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, v, true);
  return b;
};

/** pread/pwrite on a device fd of `c`. */
export class Dev {
  constructor(
    readonly c: VfioClient,
    readonly fd: number,
  ) {}

  pread(offset: bigint, length: number): Uint8Array {
    return this.c.proc.file(this.fd)!.read!(this.c.proc, length, offset);
  }

  pwrite(offset: bigint, data: Uint8Array): number {
    return this.c.proc.file(this.fd)!.write!(this.c.proc, data, offset);
  }

  reg32(off: number): number {
    return new DataView(this.pread(BAR0 + BigInt(off), 4).buffer).getUint32(0, true);
  }

  reg64(off: number): bigint {
    return new DataView(this.pread(BAR0 + BigInt(off), 8).buffer).getBigUint64(0, true);
  }

  set64(off: number, v: bigint): void {
    assert.equal(this.pwrite(BAR0 + BigInt(off), u64le(v)), 8);
  }

  /** Memory decode on, as a driver does before touching BARs. */
  enableMemory(): void {
    const cmd = this.pread(CONFIG + BigInt(PCI.COMMAND), 2);
    cmd[0]! |= PCI.COMMAND_MEMORY;
    assert.equal(this.pwrite(CONFIG + BigInt(PCI.COMMAND), cmd), 2);
  }
}

/** x86: /dev/iommu, the cdev of `bdf` bound and attached to a fresh IOAS; `map` maps into it. */
export function cdevRig(bdf: string) {
  const c = new VfioClient();
  const abi = c.kernel.abi;
  const iommufd = c.open('/dev/iommu').ret;
  const fd = c.open(`/dev/vfio/devices/${vfioCdevName(c.kernel, bdf)}`).ret;
  const bind = c.proc.call(
    fd,
    vfioIoctlNumber(abi, 'VFIO_DEVICE_BIND_IOMMUFD'),
    VfioDeviceBindIommufd,
    { argsz: 24, iommufd },
  );
  assert.equal(bind.ret, 0, bind.errno);
  const alloc = c.proc.scratch(Uint8Array.of(12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0));
  assert.equal(c.proc.ioctl(iommufd, iommufdCmdNumber(abi, 'IOMMU_IOAS_ALLOC'), alloc), 0);
  const ioas = new DataView(c.proc.mm.read(alloc + 8n, 4).buffer).getUint32(0, true);
  const at = c.proc.call(
    fd,
    vfioIoctlNumber(abi, 'VFIO_DEVICE_ATTACH_IOMMUFD_PT'),
    VfioDeviceAttachIommufdPt,
    { argsz: 12, pt_id: ioas },
  );
  assert.equal(at.ret, 0, at.errno);
  const map = (va: bigint, iova: bigint, length: bigint, flags: number) =>
    c.proc.call(iommufd, iommufdCmdNumber(abi, 'IOMMU_IOAS_MAP'), IommuIoasMap, {
      flags: flags | FIXED_IOVA,
      ioas_id: ioas,
      user_va: va,
      length,
      iova,
    });
  const dev = new Dev(c, fd);
  dev.enableMemory();
  return { c, dev, map, iommuDev: c.kernel.host.devices.get(bdf)!.device };
}
