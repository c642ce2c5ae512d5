/**
 * Reasons of the iommu-core rules iommufd relies on (iommufd-uapi.md §4,
 * vfio-device.md's cdev rules): DMA ownership of a multi-device group by two
 * iommufd contexts, one group on two HWPTs, the RID replace at PASID 0 of a
 * detached cdev, and GUP's refusal of device memory. Each row triggers its
 * rule through a syscall and pins errno, reason and where.
 */
import assert from 'node:assert/strict';
import { type IommufdCmdName, iommufdCmd, iommufdCmdNumber } from '../../src/abi/iommufd.ts';
import {
  VFIO_DEVICE_PT_FLAG,
  VfioDeviceAttachIommufdPt,
  VfioDeviceDetachIommufdPt,
  vfioIoctlNumber,
} from '../../src/abi/vfio.ts';
import type { Process } from '../../src/host/process.ts';
import { deviceMmapOp } from '../../src/server/device-mmap.ts';
import { OP } from '../../src/server/protocol.ts';
import { PAGE } from '../iommufd/util.ts';
import { VfioClient } from '../vfio/client.ts';
import {
  BAR_MMAP_HOST as HOST,
  MAP_SHARED,
  onDevice,
  PROT_RW,
  pin,
  type Row,
  traced,
} from './reasons-support.ts';

/** The two functions of IOMMU group 1 in the x86 preset. */
const GPU = '0000:01:00.0';
const AUDIO = '0000:01:00.1';

/** A traced client, with `bdf`'s cdev bound to a /dev/iommu of its own unless `iommufd` is given. */
function bound(c: VfioClient, bdf: string, iommufd = c.open('/dev/iommu').ret) {
  const dev = c.open(c.cdevPath(bdf)).ret;
  const devid = c.bind(dev, iommufd).devid;
  return { dev, devid, iommufd };
}
/** An iommufd ioctl of `c` on `fd`: its out fields. */
function ioctl(
  c: VfioClient,
  fd: number,
  name: IommufdCmdName,
  v: Record<string, number | bigint>,
) {
  return c.proc.call(fd, iommufdCmdNumber(c.kernel.abi, name), iommufdCmd(name).layout, v).out;
}
const ioasOf = (c: VfioClient, iommufd: number) =>
  ioctl(c, iommufd, 'IOMMU_IOAS_ALLOC', {}).out_ioas_id as number;
function attachPt(c: VfioClient, dev: number, ptId: number, pasid?: number) {
  const flags = pasid === undefined ? 0 : VFIO_DEVICE_PT_FLAG.PASID;
  const nr = vfioIoctlNumber(c.kernel.abi, 'VFIO_DEVICE_ATTACH_IOMMUFD_PT');
  return c.proc.call(dev, nr, VfioDeviceAttachIommufdPt, {
    argsz: 16,
    flags,
    pt_id: ptId,
    pasid: pasid ?? 0,
  });
}

const BAR_VA = 0x5000_0000n;

const rows: Row[] = [
  [
    'cdev bind of a device whose group another iommufd owns',
    () => {
      const c = traced(new VfioClient());
      bound(c, GPU);
      bound(c, AUDIO);
      return c.proc;
    },
    'EPERM',
    'group 1 is owned by another DMA owner',
    'iommu_device_claim_dma_owner',
  ],
  [
    'attach of a device whose group is attached to another HWPT',
    () => {
      const c = traced(new VfioClient());
      const gpu = bound(c, GPU);
      const audio = bound(c, AUDIO, gpu.iommufd);
      assert.equal(attachPt(c, gpu.dev, ioasOf(c, gpu.iommufd)).ret, 0);
      attachPt(c, audio.dev, ioasOf(c, gpu.iommufd));
      return c.proc;
    },
    'EINVAL',
    'the group is attached to another HWPT',
    'iommufd_hw_pagetable_attach',
  ],
  [
    'PASID 0 attach of a cdev whose RID was detached (a replace)',
    () => {
      const c = traced(new VfioClient());
      const gpu = bound(c, GPU);
      const ioas = ioasOf(c, gpu.iommufd);
      assert.equal(attachPt(c, gpu.dev, ioas, 0).ret, 0);
      const nr = vfioIoctlNumber(c.kernel.abi, 'VFIO_DEVICE_DETACH_IOMMUFD_PT');
      assert.equal(c.proc.call(gpu.dev, nr, VfioDeviceDetachIommufdPt, { argsz: 12 }).ret, 0);
      attachPt(c, gpu.dev, ioas, 0);
      return c.proc;
    },
    'EINVAL',
    'not attached',
    'iommufd_device_do_replace',
  ],
  [
    'MAP_DMA of a mmap of a BAR',
    () => {
      let proc: Process | undefined;
      onDevice((d) => {
        const args = [BigInt(d.dev), 0n, PAGE, BigInt(MAP_SHARED), BigInt(PROT_RW), BAR_VA];
        deviceMmapOp(d.c.proc, { op: OP.MMAP, pid: d.c.proc.pid, tid: d.c.proc.pid, args }, HOST);
        d.c.mapDma(3, BAR_VA, 0x10_0000n, PAGE); // fd 3: the container, opened first
        proc = d.c.proc;
      })();
      return proc!;
    },
    'EFAULT',
    'device memory (VM_PFNMAP) cannot be pinned',
    'check_vma_flags',
  ],
];

pin('iommu core (DMA ownership, group attachment, PASID 0, GUP of device memory)', rows);
