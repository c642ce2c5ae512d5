/**
 * The hot-reset host and rig shared by test/vfio/hot-reset.test.ts and the
 * reason table test/host/reasons-hot-reset-dmabuf.test.ts: a root-bus
 * function, a bus of two groups, a hot-plug slot, a bus with a function
 * without IOMMU, and an SR-IOV PF with its VF, on a type1 container.
 */
import assert from 'node:assert/strict';
import type { ErrnoName } from '../../src/abi/errno.ts';
import { VFIO_DEVICE_BIND_FLAG } from '../../src/abi/vfio.ts';
import {
  VfioPciDependentDevice,
  VfioPciHotReset,
  VfioPciHotResetInfo,
} from '../../src/abi/vfio-device.ts';
import { x86 } from '../../src/host/topology/presets.ts';
import type { HostSpec, PciDeviceSpec } from '../../src/host/topology/types.ts';
import { VfioClient } from './client.ts';

export function fn(bdf: string, group: number, extra: Partial<PciDeviceSpec> = {}): PciDeviceSpec {
  return {
    bdf,
    vendor: 0x8086,
    device: 0x10d3,
    class: 0x020000,
    bars: [{ index: 0, kind: 'mem32', size: 0x20000n, prefetchable: false }],
    group,
    iommu: 'dmar0',
    irq: { intx: true, msi: 1 },
    ...extra,
  };
}

export const HOST: HostSpec = {
  name: 'hot-reset',
  iommus: x86.iommus,
  devices: [
    fn('0000:00:02.0', 0),
    fn('0000:01:00.0', 1),
    fn('0000:01:00.1', 2),
    fn('0000:02:00.0', 3, { hotReset: 'slot' }),
    fn('0000:02:00.1', 3, { hotReset: 'slot' }),
    fn('0000:02:01.0', 4, { hotReset: 'slot' }),
    fn('0000:03:00.0', 5),
    fn('0000:03:00.1', 6, { iommu: '' }),
    fn('0000:04:00.0', 7, { sriov: 1 }),
    fn('0000:04:02.0', 8, { physfn: '0000:04:00.0', irq: { msi: 1 } }),
  ],
};

export const PF = '0000:04:00.0';
export const VF = '0000:04:02.0';
const ZERO_UUID = '00000000-0000-0000-0000-000000000000';

export class Rig {
  readonly c: VfioClient;
  container: number;
  private iommuSet = false;

  constructor(personality = {}) {
    this.c = new VfioClient({ host: HOST, personality });
    this.container = this.c.open('/dev/vfio/vfio').ret;
    // the PF's VF token set to the all-zero UUID, as VFIO_DEVICE_FEATURE(PCI_VF_TOKEN) would
    this.pci(PF).vfToken!.uuid = new Uint8Array(16);
  }

  /** The group fd of `group`, set on the rig's type1 container. */
  group(group: number): number {
    const fd = this.c.open(`/dev/vfio/${group}`).ret;
    assert.equal(this.c.setContainer(fd, this.container).ret, 0);
    if (!this.iommuSet) assert.equal(this.c.ioctl(this.container, 'VFIO_SET_IOMMU', 3n).ret, 0);
    this.iommuSet = true;
    return fd;
  }

  /** A device fd of `bdf` through its group fd (the PF and VF name the VF token). */
  device(groupFd: number, bdf: string): number {
    const name = bdf === VF || bdf === PF ? `${bdf} vf_token=${ZERO_UUID}` : bdf;
    const r = this.c.getDeviceFd(groupFd, name);
    assert.equal(r.errno, undefined);
    return r.ret;
  }

  /** GET_PCI_HOT_RESET_INFO with room for `room` entries (argsz given or 12 + 8 × room). */
  info(dev: number, room: number, argsz = 12 + 8 * room) {
    const buf = new Uint8Array(12 + 8 * room).fill(0xa5);
    buf.set(VfioPciHotResetInfo.encode({ argsz, flags: 0x5a5a, count: 0x5a5a }));
    const addr = this.c.proc.scratch(buf);
    const ret = this.c.ioctl(dev, 'VFIO_DEVICE_GET_PCI_HOT_RESET_INFO', addr);
    const out = this.c.proc.mm.read(addr, buf.length);
    const hdr = VfioPciHotResetInfo.decode(out.subarray(0, 12));
    const devices = Array.from({ length: Math.min(hdr.count, room) }, (_, i) => {
      const d = VfioPciDependentDevice.decode(out.subarray(12 + 8 * i, 20 + 8 * i));
      const bdf = `${d.segment.toString(16).padStart(4, '0')}:${d.bus.toString(16).padStart(2, '0')}:${(d.devfn >> 3).toString(16).padStart(2, '0')}.${d.devfn & 7}`;
      return { id: d.id, bdf };
    });
    return { errno: ret.errno, hdr, devices, tail: out.subarray(12) };
  }

  /** PCI_HOT_RESET with `fds` after the header (`count` defaults to their number). */
  reset(
    dev: number,
    fds: number[],
    opts: { count?: number; flags?: number; argsz?: number } = {},
  ): ErrnoName | undefined {
    const buf = new Uint8Array(12 + 4 * fds.length);
    const count = opts.count ?? fds.length;
    buf.set(
      VfioPciHotReset.encode({ argsz: opts.argsz ?? buf.length, flags: opts.flags ?? 0, count }),
    );
    const view = new DataView(buf.buffer);
    for (const [i, fd] of fds.entries()) view.setInt32(12 + 4 * i, fd, true);
    return this.c.ioctl(dev, 'VFIO_DEVICE_PCI_HOT_RESET', this.c.proc.scratch(buf)).errno;
  }

  /** A cdev fd of `bdf` bound to `iommufd`; its device ID. */
  cdev(bdf: string, iommufd: number): { fd: number; devid: number } {
    const fd = this.c.open(this.c.cdevPath(bdf)).ret;
    const b = this.c.bind(
      fd,
      iommufd,
      bdf === VF || bdf === PF
        ? { flags: VFIO_DEVICE_BIND_FLAG.TOKEN, token: this.c.mem(4096n) }
        : {},
    );
    assert.equal(b.errno, undefined);
    return { fd, devid: b.devid };
  }

  /** The emulated function behind `bdf`. */
  pci(bdf: string) {
    const id = this.c.kernel.host.devices.get(bdf)!.device.group.id;
    const group = this.c.kernel.vfioGroups.get(id)!;
    return group.devices.find((d) => d.name === bdf)!.pci;
  }
}
