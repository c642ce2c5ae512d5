/**
 * VFIO_DEVICE_GET_PCI_HOT_RESET_INFO and VFIO_DEVICE_PCI_HOT_RESET
 * (vfio_pci_core.c, src/vfio/hot-reset.ts) on a host built for them: a
 * root-bus function, a bus of two groups, a hot-plug slot, a bus with a
 * function without IOMMU, and an SR-IOV PF with its VF.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { vfioIoctlNumber } from '../../src/abi/vfio.ts';
import {
  VFIO_PCI_DEVID,
  VFIO_PCI_HOT_RESET_FLAG,
  VfioPciHotResetInfo,
} from '../../src/abi/vfio-device.ts';
import type { HostSpec } from '../../src/host/topology/types.ts';
import { PCI } from '../../src/vfio/pci/config-space.ts';
import { VfioClient } from './client.ts';
import { CONFIG, Dev } from './device-rig.ts';
import { fn, HOST, PF, Rig, VF } from './hot-reset-rig.ts';

const { DEV_ID, DEV_ID_OWNED } = VFIO_PCI_HOT_RESET_FLAG;

describe('VFIO_DEVICE_GET_PCI_HOT_RESET_INFO', () => {
  it('a function on the root bus has no slot or bus reset: ENODEV, after the argsz check', () => {
    const r = new Rig();
    const dev = r.device(r.group(0), '0000:00:02.0');
    assert.equal(r.info(dev, 0, 11).errno, 'EINVAL');
    const none = r.info(dev, 4);
    assert.equal(none.errno, 'ENODEV');
    assert.equal(none.hdr.count, 0x5a5a, 'nothing is written back');
  });

  it('bus scope: every function of the bus with its group; too small an array is ENOSPC with count', () => {
    const r = new Rig();
    const dev = r.device(r.group(1), '0000:01:00.0');
    const small = r.info(dev, 1);
    assert.equal(small.errno, 'ENOSPC');
    assert.deepEqual(small.hdr, { argsz: 20, flags: 0, count: 2 });
    assert.ok(
      small.tail.every((b) => b === 0xa5),
      'no entry is written',
    );
    const ok = r.info(dev, 3);
    assert.equal(ok.errno, undefined);
    assert.deepEqual(ok.hdr, { argsz: 36, flags: 0, count: 2 });
    assert.deepEqual(ok.devices, [
      { id: 1, bdf: '0000:01:00.0' },
      { id: 2, bdf: '0000:01:00.1' },
    ]);
    assert.ok(
      ok.tail.subarray(16).every((b) => b === 0xa5),
      'the spare entry is untouched',
    );
  });

  it('slot scope: the functions of the hot-plug slot only', () => {
    const r = new Rig();
    const dev = r.device(r.group(3), '0000:02:00.1');
    const ok = r.info(dev, 4);
    assert.equal(ok.errno, undefined);
    assert.deepEqual(ok.devices, [
      { id: 3, bdf: '0000:02:00.0' },
      { id: 3, bdf: '0000:02:00.1' },
    ]);
    const other = r.info(r.device(r.group(4), '0000:02:01.0'), 4);
    assert.deepEqual(other.devices, [{ id: 4, bdf: '0000:02:01.0' }]);
  });

  it('a function of the bus in no IOMMU group is EPERM; no-IOMMU mode gives it a fake group', () => {
    const r = new Rig();
    assert.equal(r.info(r.device(r.group(5), '0000:03:00.0'), 4).errno, 'EPERM');
    const n = new Rig({ vfioNoiommu: true });
    const ok = n.info(n.device(n.group(5), '0000:03:00.0'), 4);
    assert.equal(ok.errno, undefined);
    assert.deepEqual(ok.devices, [
      { id: 5, bdf: '0000:03:00.0' },
      { id: 6, bdf: '0000:03:00.1' },
    ]);
  });

  it('a VF lists its bus: the PF and itself', () => {
    const r = new Rig();
    const ok = r.info(r.device(r.group(8), '0000:04:02.0'), 4);
    assert.deepEqual(ok.devices, [
      { id: 7, bdf: '0000:04:00.0' },
      { id: 8, bdf: '0000:04:02.0' },
    ]);
  });

  it('cdev: device IDs, OWNED for a group bound elsewhere in the context, NOT_OWNED clears DEV_ID_OWNED', () => {
    const r = new Rig();
    const iommufd = r.c.open('/dev/iommu').ret;
    const a = r.cdev('0000:02:00.0', iommufd);
    const first = r.info(a.fd, 2);
    assert.equal(first.errno, undefined);
    assert.equal(first.hdr.flags, DEV_ID | DEV_ID_OWNED);
    // 02:00.1 is not open, but its group (3) has a device bound to this iommufd
    assert.deepEqual(first.devices, [
      { id: a.devid, bdf: '0000:02:00.0' },
      { id: VFIO_PCI_DEVID.OWNED, bdf: '0000:02:00.1' },
    ]);
    const b = r.cdev('0000:02:00.1', iommufd);
    assert.deepEqual(
      r.info(a.fd, 2).devices.map((d) => d.id),
      [a.devid, b.devid],
    );
    const x = r.cdev('0000:01:00.0', iommufd);
    const split = r.info(x.fd, 2);
    assert.equal(split.hdr.flags, DEV_ID);
    assert.deepEqual(
      split.devices.map((d) => d.id),
      [x.devid, VFIO_PCI_DEVID.NOT_OWNED],
    );
    // a function outside the device set is NOT_OWNED even when bound here
    const vf = r.cdev('0000:04:02.0', iommufd);
    const pf = r.cdev('0000:04:00.0', iommufd);
    const vfInfo = r.info(vf.fd, 2);
    assert.equal(vfInfo.hdr.flags, DEV_ID);
    assert.deepEqual(
      vfInfo.devices.map((d) => d.id),
      [VFIO_PCI_DEVID.NOT_OWNED, vf.devid],
    );
    assert.deepEqual(
      r.info(pf.fd, 2).devices.map((d) => d.id),
      [pf.devid, VFIO_PCI_DEVID.NOT_OWNED],
    );
  });
});

describe('VFIO_DEVICE_PCI_HOT_RESET', () => {
  it('header checks, then the array form, then the scope, in the kernel order', () => {
    const r = new Rig();
    const g1 = r.group(1);
    const dev = r.device(g1, '0000:01:00.0');
    const g2 = r.group(2);
    assert.equal(r.reset(dev, [g1, g2], { argsz: 11 }), 'EINVAL');
    assert.equal(r.reset(dev, [g1, g2], { flags: 1 }), 'EINVAL');
    assert.equal(r.reset(dev, []), 'EINVAL', 'a group-opened device needs group fds');
    assert.equal(r.reset(dev, [g1, g2, g1]), 'EINVAL', 'more fds than functions');
    assert.equal(r.reset(dev, [g1, 99]), 'EBADF');
    assert.equal(r.reset(dev, [g1, r.container]), 'EINVAL', 'not a group fd');
    assert.equal(r.reset(dev, [g1]), 'EINVAL', 'group 2 is not among the fds');
    const root = r.device(r.group(0), '0000:00:02.0');
    assert.equal(r.reset(root, [g1], { flags: 0 }), 'ENODEV');
    assert.equal(r.reset(root, [], { count: 0 }), 'EINVAL', 'the array check comes first');
    assert.equal(r.reset(dev, [g2, g1]), undefined);
  });

  it("a function the reset reaches outside the device set (not VFIO's, a VF, a PF with VFs) is EINVAL", () => {
    const r = new Rig();
    const g5 = r.group(5);
    // 03:00.1 has no IOMMU and no-IOMMU mode is off: vfio-pci does not have it
    assert.equal(r.reset(r.device(g5, '0000:03:00.0'), [g5]), 'EINVAL');
    const g7 = r.group(7);
    const g8 = r.group(8);
    assert.equal(r.reset(r.device(g7, PF), [g7, g8]), 'EINVAL');
    assert.equal(r.reset(r.device(g8, VF), [g7, g8]), 'EINVAL');
  });

  it('resets every function of the set as a bus reset leaves it', () => {
    const r = new Rig();
    const g1 = r.group(1);
    const g2 = r.group(2);
    const a = new Dev(r.c, r.device(g1, '0000:01:00.0'));
    const b = new Dev(r.c, r.device(g2, '0000:01:00.1'));
    for (const d of [a, b]) {
      d.enableMemory();
      d.set64(0x100, 0x1122334455667788n);
    }
    // the Command register as the driver left it (Memory on)
    const cmdBefore = a.pread(CONFIG + BigInt(PCI.COMMAND), 2);
    const before = [r.pci('0000:01:00.0').resets, r.pci('0000:01:00.1').resets];
    const zaps = r.pci('0000:01:00.0').zaps;
    assert.equal(r.reset(a.fd, [g1, g2]), undefined);
    assert.deepEqual(
      [r.pci('0000:01:00.0').resets, r.pci('0000:01:00.1').resets],
      before.map((n) => n + 1),
    );
    assert.equal(r.pci('0000:01:00.0').zaps, zaps + 1, 'BAR mappings are zapped');
    assert.equal(a.reg64(0x100), 0n, 'BAR contents are gone');
    assert.equal(b.reg64(0x100), 0n);
    assert.deepEqual(a.pread(CONFIG + BigInt(PCI.COMMAND), 2), cmdBefore, 'config is restored');
    assert.equal(r.pci('0000:01:00.0').config.powerState, 0);
  });

  it('cdev: a zero-length array, owned by the context (device ID or group bound there)', () => {
    const r = new Rig();
    const iommufd = r.c.open('/dev/iommu').ret;
    const a = r.cdev('0000:02:00.0', iommufd);
    assert.equal(r.reset(a.fd, [3], { count: 1 }), 'EINVAL', 'cdev takes no group fds');
    // 02:00.1 is unopened, owned through its group
    assert.equal(r.reset(a.fd, []), undefined);
    const x = r.cdev('0000:01:00.0', iommufd);
    assert.equal(r.reset(x.fd, []), 'EINVAL', '01:00.1 (group 2) is not owned');
    const other = r.c.open('/dev/iommu').ret;
    r.cdev('0000:01:00.1', other);
    assert.equal(r.reset(x.fd, []), 'EINVAL', 'bound to another context');
  });
});

describe('PciDeviceSpec.hotReset', () => {
  it('a function on the root bus named bus-resettable answers from its bus', () => {
    const host: HostSpec = { ...HOST, devices: [fn('0000:00:02.0', 0, { hotReset: 'bus' })] };
    const c = new VfioClient({ host });
    const container = c.open('/dev/vfio/vfio').ret;
    const g = c.open('/dev/vfio/0').ret;
    assert.equal(c.setContainer(g, container).ret, 0);
    assert.equal(c.ioctl(container, 'VFIO_SET_IOMMU', 1n).ret, 0);
    const dev = c.getDeviceFd(g, '0000:00:02.0').ret;
    const addr = c.proc.scratch(VfioPciHotResetInfo.encode({ argsz: 20, flags: 0, count: 0 }));
    const num = vfioIoctlNumber(c.kernel.abi, 'VFIO_DEVICE_GET_PCI_HOT_RESET_INFO');
    assert.equal(c.proc.ioctl(dev, num, addr), 0);
    assert.equal(VfioPciHotResetInfo.decode(c.proc.mm.read(addr, 12)).count, 1);
  });
});
