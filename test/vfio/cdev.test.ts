/**
 * /dev/vfio/devices/vfioX, x86 preset: the native iommufd flow (DPDK /
 * QEMU cdev mode) end to end with a device DMA into the process's memory,
 * then the errno rules of vfio-device.md §4.0 and §5.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  IOMMU_HWPT_ALLOC_FLAGS,
  IOMMU_IOAS_MAP_FLAGS,
  IommuHwptAlloc,
  IommuIoasMap,
  iommufdCmdNumber,
} from '../../src/abi/iommufd.ts';
import {
  VfioDeviceAttachIommufdPt,
  VfioDeviceBindIommufd,
  VfioDeviceDetachIommufdPt,
  vfioIoctlNumber,
} from '../../src/abi/vfio.ts';
import { DmaFaultError } from '../../src/iommu/device.ts';
import { ctxOfFd } from '../../src/iommufd/fops.ts';
import { vfioCdevName } from '../../src/vfio/cdev.ts';
import { VfioDeviceInfo } from '../../src/vfio/pci/abi.ts';
import { COMPAT, VfioClient } from './client.ts';

const NIC = '0000:03:00.0'; // group 13, alone
const GPU = '0000:01:00.0'; // group 1 with its audio function
const AUDIO = '0000:01:00.1';
const MIB = 1n << 20n;

function cdevPath(c: VfioClient, bdf: string): string {
  const name = vfioCdevName(c.kernel, bdf);
  assert.ok(name);
  return `/dev/vfio/devices/${name}`;
}

function bind(c: VfioClient, dev: number, iommufd: number, argsz = 24, flags = 0, token = 0n) {
  return c.proc.call(
    dev,
    vfioIoctlNumber(c.kernel.abi, 'VFIO_DEVICE_BIND_IOMMUFD'),
    VfioDeviceBindIommufd,
    { argsz, flags, iommufd, out_devid: 0xdead, token_uuid_ptr: token },
  );
}

function attach(c: VfioClient, dev: number, ptId: number, argsz = 12, flags = 0, pasid = 0) {
  return c.proc.call(
    dev,
    vfioIoctlNumber(c.kernel.abi, 'VFIO_DEVICE_ATTACH_IOMMUFD_PT'),
    VfioDeviceAttachIommufdPt,
    { argsz, flags, pt_id: ptId, pasid },
  );
}

function detach(c: VfioClient, dev: number, argsz = 8, flags = 0, pasid = 0) {
  return c.proc.call(
    dev,
    vfioIoctlNumber(c.kernel.abi, 'VFIO_DEVICE_DETACH_IOMMUFD_PT'),
    VfioDeviceDetachIommufdPt,
    { argsz, flags, pasid },
  );
}

/** HWPT_ALLOC on `pt` for DEVICE `devid` with IOMMU_HWPT_ALLOC_* `flags`; returns the id. */
function hwptAlloc(c: VfioClient, iommufd: number, devid: number, pt: number, flags: number) {
  const r = c.proc.call(
    iommufd,
    iommufdCmdNumber(c.kernel.abi, 'IOMMU_HWPT_ALLOC'),
    IommuHwptAlloc,
    {
      dev_id: devid,
      pt_id: pt,
      flags,
    },
  );
  assert.equal(r.errno, undefined);
  return r.out.out_hwpt_id as number;
}

function ioasAlloc(c: VfioClient, iommufd: number): number {
  const addr = c.proc.scratch(Uint8Array.of(12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0));
  assert.equal(c.proc.ioctl(iommufd, iommufdCmdNumber(c.kernel.abi, 'IOMMU_IOAS_ALLOC'), addr), 0);
  return new DataView(c.proc.mm.read(addr + 8n, 4).buffer).getUint32(0, true);
}

function ioasMap(c: VfioClient, iommufd: number, ioas: number, va: bigint, iova: bigint) {
  const F = IOMMU_IOAS_MAP_FLAGS;
  return c.proc.call(iommufd, iommufdCmdNumber(c.kernel.abi, 'IOMMU_IOAS_MAP'), IommuIoasMap, {
    size: 40,
    flags: F.FIXED_IOVA | F.READABLE | F.WRITEABLE,
    ioas_id: ioas,
    user_va: va,
    length: MIB,
    iova,
  });
}

/** /dev/iommu + the NIC's cdev, bound; `devid` from BIND. */
function bound(c = new VfioClient({ personality: COMPAT }), bdf = NIC) {
  const iommufd = c.open('/dev/iommu').ret;
  const dev = c.open(cdevPath(c, bdf)).ret;
  const r = bind(c, dev, iommufd);
  assert.equal(r.ret, 0, r.errno);
  return { c, iommufd, dev, devid: r.out.out_devid as number };
}

describe('native iommufd flow through the device cdev', () => {
  it('binds, attaches to an IOAS, maps, lets the device DMA, detaches and closes', () => {
    const c = new VfioClient({ personality: COMPAT });
    const iommufd = c.open('/dev/iommu').ret;
    const dev = c.open(cdevPath(c, NIC)).ret;
    assert.ok(dev > iommufd);
    const b = bind(c, dev, iommufd);
    assert.equal(b.ret, 0);
    const devid = b.out.out_devid as number;
    const ctx = ctxOfFd(c.proc, iommufd);
    assert.equal(ctx.lookup(devid)?.type, 'device');

    const ioas = ioasAlloc(c, iommufd);
    const nic = c.kernel.host.devices.get(NIC)!.device;
    const a = attach(c, dev, ioas);
    assert.equal(a.ret, 0);
    const hwptId = a.out.pt_id as number;
    assert.notEqual(hwptId, ioas);
    assert.equal(ctx.lookup(hwptId)?.type, 'hwpt_paging');

    const va = c.mem(MIB);
    assert.equal(ioasMap(c, iommufd, ioas, va, 0x100000n).ret, 0);
    nic.dmaWrite(0x100010n, Uint8Array.of(1, 2, 3, 4));
    assert.deepEqual([...c.proc.mm.read(va + 0x10n, 4)], [1, 2, 3, 4]);

    // device ioctls reach vfio-pci once bound
    const info = c.proc.call(
      dev,
      vfioIoctlNumber(c.kernel.abi, 'VFIO_DEVICE_GET_INFO'),
      VfioDeviceInfo,
      { argsz: 20 },
    );
    assert.equal(info.ret, 0);
    assert.ok((info.out.num_regions as number) >= 9);

    // attaching the HWPT itself keeps its id
    assert.equal(attach(c, dev, hwptId).out.pt_id, hwptId);

    assert.equal(detach(c, dev).ret, 0);
    assert.throws(() => nic.dmaWrite(0x100010n, Uint8Array.of(9)), DmaFaultError);
    assert.equal(ctx.lookup(hwptId), undefined); // the auto domain went with its last device
    assert.equal(detach(c, dev).ret, 0); // detaching again is a no-op

    assert.equal(attach(c, dev, ioas).ret, 0);
    assert.equal(c.proc.close(dev), 0);
    assert.equal(ctx.lookup(devid), undefined); // close unbinds
    assert.throws(() => nic.dmaWrite(0x100010n, Uint8Array.of(9)), DmaFaultError);
    assert.equal(c.proc.close(iommufd), 0);
  });

  it("accepts rust-vmm's 16-byte BIND and /dev/vfio/vfio as the iommufd", () => {
    const c = new VfioClient({ personality: COMPAT });
    const iommufd = c.open('/dev/vfio/vfio').ret;
    const dev = c.open(cdevPath(c, NIC)).ret;
    assert.equal(bind(c, dev, iommufd, 16).ret, 0);
  });

  it('the iommufd stays alive while bound after its fd is closed', () => {
    const { c, iommufd, dev, devid } = bound();
    const ctx = ctxOfFd(c.proc, iommufd);
    assert.equal(c.proc.close(iommufd), 0);
    assert.equal(ctx.lookup(devid)?.type, 'device');
    assert.equal(c.proc.close(dev), 0);
  });
});

describe('device cdev errno rules', () => {
  it('open: ENOENT for unknown nodes; several opens of one device are allowed', () => {
    const c = new VfioClient({ personality: COMPAT });
    assert.equal(c.open('/dev/vfio/devices/vfio99').errno, 'ENOENT');
    assert.equal(c.open('/dev/vfio/devices/vfio01').errno, 'ENOENT');
    assert.equal(c.open('/dev/vfio/devices/foo').errno, 'ENOENT');
    assert.equal(vfioCdevName(c.kernel, '0000:00:02.0'), 'vfio0'); // host order
    assert.ok(c.open(cdevPath(c, NIC)).ret >= 0);
    assert.ok(c.open(cdevPath(c, NIC)).ret >= 0);
  });

  it('before BIND every other ioctl, read and write is EINVAL', () => {
    const c = new VfioClient({ personality: COMPAT });
    const iommufd = c.open('/dev/iommu').ret;
    const dev = c.open(cdevPath(c, NIC)).ret;
    assert.equal(
      c.ioctl(dev, 'VFIO_DEVICE_GET_INFO', c.proc.scratch(new Uint8Array(20))).errno,
      'EINVAL',
    );
    assert.equal(c.ioctl(dev, 'VFIO_DEVICE_RESET').errno, 'EINVAL');
    assert.equal(attach(c, dev, ioasAlloc(c, iommufd)).errno, 'EINVAL');
    assert.equal(detach(c, dev).errno, 'EINVAL');
    assert.equal(c.proc.ioctl(dev, 0x3b99, 0n), -1);
    assert.equal(c.proc.errno, 'EINVAL');
    assert.equal(c.proc.close(dev), 0); // closing an unbound fd is fine
  });

  it('BIND: argsz, flags, fd and extensible-struct rules', () => {
    const c = new VfioClient({ personality: COMPAT });
    const iommufd = c.open('/dev/iommu').ret;
    const dev = c.open(cdevPath(c, NIC)).ret;
    assert.equal(bind(c, dev, iommufd, 15).errno, 'EINVAL');
    assert.equal(bind(c, dev, iommufd, 24, 2).errno, 'EINVAL');
    assert.equal(bind(c, dev, -1).errno, 'EINVAL');
    assert.equal(bind(c, dev, 77).errno, 'EBADF');
    const group = c.open('/dev/vfio/12').ret; // not an iommufd
    assert.equal(bind(c, dev, group).errno, 'EBADFD');
    // TOKEN: the UUID is copied (EFAULT); the NIC is neither PF nor VF (EINVAL)
    assert.equal(bind(c, dev, iommufd, 24, 1, 0n).errno, 'EFAULT');
    assert.equal(bind(c, dev, iommufd, 24, 1, c.mem(4096n)).errno, 'EINVAL');
    // argsz beyond the struct: the tail must be zero
    const buf = new Uint8Array(32);
    const dv = new DataView(buf.buffer);
    dv.setUint32(0, 32, true);
    dv.setInt32(8, iommufd, true);
    buf[28] = 1;
    assert.equal(c.ioctl(dev, 'VFIO_DEVICE_BIND_IOMMUFD', c.proc.scratch(buf)).errno, 'E2BIG');
    buf[28] = 0;
    // an argsz of GiBs (found by npm run differential): EFAULT at the first unmapped page
    dv.setUint32(0, 0xde00_0018, true);
    assert.equal(c.ioctl(dev, 'VFIO_DEVICE_BIND_IOMMUFD', c.proc.scratch(buf)).errno, 'EFAULT');
    dv.setUint32(0, 32, true);
    const addr = c.proc.scratch(buf);
    assert.equal(c.ioctl(dev, 'VFIO_DEVICE_BIND_IOMMUFD', addr).ret, 0);
    assert.ok(new DataView(c.proc.mm.read(addr, 16).buffer).getUint32(12, true) > 0); // out_devid
    // none of the failures left the group blocked or the device open
    assert.equal(bind(c, dev, iommufd).errno, 'EINVAL'); // already bound
  });

  it('BIND: EINVAL when the device is already open (other cdev fd, group path)', () => {
    const { c, iommufd } = bound();
    const second = c.open(cdevPath(c, NIC)).ret;
    assert.equal(bind(c, second, iommufd).errno, 'EINVAL');

    // group path: the device fd is open, the group file closed
    const c2 = new VfioClient({ personality: COMPAT });
    const container = c2.open('/dev/vfio/vfio').ret;
    const group = c2.open('/dev/vfio/13').ret;
    assert.equal(c2.setContainer(group, container).ret, 0);
    const gdev = c2.getDeviceFd(group, NIC).ret;
    assert.ok(gdev >= 0);
    const cdev = c2.open(cdevPath(c2, NIC)).ret;
    const iommufd2 = c2.open('/dev/iommu').ret;
    assert.equal(bind(c2, cdev, iommufd2).errno, 'EBUSY'); // group file open
    assert.equal(c2.proc.close(group), 0);
    assert.equal(bind(c2, cdev, iommufd2).errno, 'EINVAL'); // device open via the group path
    assert.equal(c2.proc.close(gdev), 0);
    assert.equal(bind(c2, cdev, iommufd2).ret, 0);
  });

  it('group exclusion: BIND EBUSY while the group is open; group open EBUSY while bound', () => {
    const c = new VfioClient({ personality: COMPAT });
    const iommufd = c.open('/dev/iommu').ret;
    const audio = c.open(cdevPath(c, AUDIO)).ret;
    const group = c.open('/dev/vfio/1').ret;
    assert.equal(bind(c, audio, iommufd).errno, 'EBUSY');
    assert.equal(c.proc.close(group), 0);
    assert.equal(bind(c, audio, iommufd).ret, 0);
    assert.equal(c.open('/dev/vfio/1').errno, 'EBUSY');
    // the other function of the group can still bind through its cdev
    const gpu = c.open(cdevPath(c, GPU)).ret;
    assert.equal(bind(c, gpu, iommufd).ret, 0);
    assert.equal(c.proc.close(audio), 0);
    assert.equal(c.open('/dev/vfio/1').errno, 'EBUSY');
    assert.equal(c.proc.close(gpu), 0);
    const reopened = c.open('/dev/vfio/1');
    assert.ok(reopened.ret >= 0, reopened.errno);
  });

  it('ATTACH: argsz/flags/PASID rules, iommufd errors pass through, replace', () => {
    const { c, iommufd, dev, devid } = bound();
    const ioas = ioasAlloc(c, iommufd);
    assert.equal(attach(c, dev, ioas, 11).errno, 'EINVAL');
    assert.equal(attach(c, dev, ioas, 12, 2).errno, 'EINVAL');
    assert.equal(attach(c, dev, ioas, 12, 1).errno, 'EINVAL'); // PASID needs argsz 16
    assert.equal(attach(c, dev, ioas, 16, 1, 3).errno, 'EINVAL'); // automatic domains have no PASID
    assert.equal(attach(c, dev, 999).errno, 'ENOENT');
    assert.equal(attach(c, dev, devid).errno, 'EINVAL'); // a DEVICE is no page table
    const first = attach(c, dev, ioas);
    assert.equal(first.ret, 0);
    const other = ioasAlloc(c, iommufd);
    const second = attach(c, dev, other); // replace
    assert.equal(second.ret, 0);
    assert.notEqual(second.out.pt_id, first.out.pt_id);
    const ctx = ctxOfFd(c.proc, iommufd);
    assert.equal(ctx.lookup(first.out.pt_id as number), undefined);
  });

  it('DETACH: argsz/flags/PASID rules; otherwise always 0', () => {
    const { c, dev } = bound();
    assert.equal(detach(c, dev, 7).errno, 'EINVAL');
    assert.equal(detach(c, dev, 8, 2).errno, 'EINVAL');
    assert.equal(detach(c, dev, 8, 1).errno, 'EINVAL');
    assert.equal(detach(c, dev, 12, 1).ret, 0);
    assert.equal(detach(c, dev).ret, 0);
  });

  it('ATTACH with PASID: iommufd rules pass through; EOPNOTSUPP from an IOMMU driver without set_dev_pasid', () => {
    const { c, iommufd, dev, devid } = bound();
    const ioas = ioasAlloc(c, iommufd);
    const { PASID, NEST_PARENT } = IOMMU_HWPT_ALLOC_FLAGS;
    const s2 = hwptAlloc(c, iommufd, devid, ioas, PASID);
    const plain = hwptAlloc(c, iommufd, devid, ioas, NEST_PARENT);
    assert.equal(attach(c, dev, 999, 16, 1, 5).errno, 'ENOENT');
    assert.equal(attach(c, dev, plain, 16, 1, 5).errno, 'EINVAL'); // not PASID-capable
    assert.equal(attach(c, dev, ioas).ret, 0);
    assert.equal(attach(c, dev, s2, 16, 1, 5).errno, 'EINVAL'); // the RID HWPT is not PASID-capable
    assert.equal(attach(c, dev, s2).ret, 0);
    assert.equal(attach(c, dev, s2, 16, 1, 5).errno, 'EOPNOTSUPP'); // the VT-d model has no set_dev_pasid
    assert.equal(detach(c, dev, 12, 1, 5).ret, 0);
  });

  it('ATTACH with PASID on a PASID-capable driver: attach, replace on re-attach, detach, close', () => {
    const { c, iommufd, dev, devid } = bound();
    const driver = c.kernel.host.devices.get(NIC)!.device.driver;
    const calls: (number | undefined)[] = [];
    // a driver that implements set_dev_pasid (the VT-d model does not)
    Object.assign(driver, {
      setDevPasid: (d: unknown, _dev: unknown, pasid: number) => calls.push(d ? pasid : undefined),
    });
    const ioas = ioasAlloc(c, iommufd);
    const { PASID } = IOMMU_HWPT_ALLOC_FLAGS;
    const s2 = hwptAlloc(c, iommufd, devid, ioas, PASID);
    const other = hwptAlloc(c, iommufd, devid, ioas, PASID);
    assert.equal(attach(c, dev, s2).ret, 0);
    const a = attach(c, dev, s2, 16, 1, 5);
    assert.equal(a.ret, 0, a.errno);
    assert.equal(a.out.pt_id, s2);
    const r = attach(c, dev, other, 16, 1, 5); // replace, not EBUSY
    assert.equal(r.ret, 0, r.errno);
    assert.equal(r.out.pt_id, other);
    assert.equal(attach(c, dev, s2, 16, 1, 1 << 20).errno, 'EINVAL'); // past max_pasids
    assert.equal(
      attach(c, dev, ioas).errno,
      'EINVAL',
      'RID to an automatic domain while a PASID is attached',
    );
    assert.equal(attach(c, dev, other).ret, 0, 'RID to a PASID-capable HWPT');
    assert.equal(detach(c, dev, 12, 1, 9).ret, 0, 'not attached: a no-op');
    assert.equal(detach(c, dev, 12, 1, 5).ret, 0);
    assert.deepEqual(calls, [5, 5, undefined]);
    assert.equal(attach(c, dev, s2).ret, 0);
    assert.equal(attach(c, dev, s2, 16, 1, 7).ret, 0);
    const ctx = ctxOfFd(c.proc, iommufd);
    assert.equal(c.proc.close(dev), 0);
    assert.equal(calls.at(-1), undefined, 'close detached PASID 7');
    assert.equal(ctx.lookup(devid), undefined);
  });

  it('group-path device fd: BIND EINVAL, ATTACH/DETACH ENOTTY', () => {
    const c = new VfioClient({ personality: COMPAT });
    const container = c.open('/dev/vfio/vfio').ret;
    const group = c.open('/dev/vfio/13').ret;
    assert.equal(c.setContainer(group, container).ret, 0);
    const gdev = c.getDeviceFd(group, NIC).ret;
    const iommufd = c.open('/dev/iommu').ret;
    assert.equal(bind(c, gdev, iommufd).errno, 'EINVAL');
    assert.equal(attach(c, gdev, 1).errno, 'ENOTTY');
    assert.equal(detach(c, gdev).errno, 'ENOTTY');
  });
});

describe('6.12 cdev: no BIND token, no PASID attach (vfioCdevFlags)', () => {
  it('any flag of BIND_IOMMUFD, ATTACH_ and DETACH_IOMMUFD_PT is EINVAL on 6.12, taken on 6.18', () => {
    for (const [version, errno] of [
      ['6.12', 'EINVAL'],
      ['6.18', undefined],
    ] as const) {
      const c = new VfioClient({ version });
      const iommufd = c.open('/dev/iommu').ret;
      const dev = c.open(cdevPath(c, NIC)).ret;
      // TOKEN with a NULL token pointer: 6.18 goes on to read the token (EFAULT)
      assert.equal(bind(c, dev, iommufd, 24, 1, 0n).errno, errno ?? 'EFAULT', `${version} bind`);
      assert.equal(bind(c, dev, iommufd).errno, undefined);
      assert.equal(attach(c, dev, 999_999, 16, 1, 1).errno, errno ?? 'ENOENT', `${version} attach`);
      assert.equal(detach(c, dev, 12, 1, 1).errno, errno, `${version} detach`);
    }
  });
});

describe('6.12 cdev: BIND_IOMMUFD copies 16 bytes (vfioBindStructCopy)', () => {
  /** BIND with the raw bytes `buf` placed to end `gap` bytes before an unmapped page. */
  function rawBind(c: VfioClient, dev: number, buf: Uint8Array, gap = 0) {
    const page = 0x7000_0000n;
    c.proc.mm.mmap({ addr: page, fixed: true, length: 4096n, prot: { read: true, write: true } });
    const at = page + 4096n - BigInt(buf.length + gap);
    c.proc.mm.write(at, buf);
    return c.ioctl(dev, 'VFIO_DEVICE_BIND_IOMMUFD', at);
  }
  function header(argsz: number, iommufd: number, size = 32): Uint8Array {
    const buf = new Uint8Array(size);
    const dv = new DataView(buf.buffer);
    dv.setUint32(0, argsz, true);
    if (size >= 12) dv.setInt32(8, iommufd, true);
    return buf;
  }

  it('a non-zero tail past 24 bytes: E2BIG on 6.18, not looked at on 6.12', () => {
    for (const [version, errno] of [
      ['6.12', undefined],
      ['6.18', 'E2BIG'],
    ] as const) {
      const c = new VfioClient({ version });
      const iommufd = c.open('/dev/iommu').ret;
      const dev = c.open(cdevPath(c, NIC)).ret;
      const buf = header(32, iommufd);
      buf[28] = 1;
      // 6.12 has no token_uuid_ptr: bytes 16..23 are not read either
      buf[16] = 0xff;
      assert.equal(rawBind(c, dev, buf).errno, errno, version);
    }
  });

  it('what is read first: 6.18 reads argsz alone (EINVAL), 6.12 the 16-byte struct (EFAULT)', () => {
    for (const [version, errno] of [
      ['6.12', 'EFAULT'],
      ['6.18', 'EINVAL'],
    ] as const) {
      const c = new VfioClient({ version });
      const dev = c.open(cdevPath(c, NIC)).ret;
      // argsz 15 in the last 4 bytes of a page: the rest of the struct is unmapped
      assert.equal(rawBind(c, dev, header(15, 3, 4)).errno, errno, version);
    }
  });

  it('a group device fd refuses BIND after the same copy-in: E2BIG on 6.18, EINVAL on 6.12', () => {
    for (const [version, errno] of [
      ['6.12', 'EINVAL'],
      ['6.18', 'E2BIG'],
    ] as const) {
      const c = new VfioClient({ version });
      const container = c.open('/dev/vfio/vfio').ret;
      const g = c.open('/dev/vfio/13').ret;
      assert.equal(c.setContainer(g, container).ret, 0);
      assert.equal(c.ioctl(container, 'VFIO_SET_IOMMU', 3n).ret, 0);
      const dev = c.getDeviceFd(g, NIC).ret;
      const buf = header(32, 3);
      buf[28] = 1;
      assert.equal(rawBind(c, dev, buf).errno, errno, version);
      buf[28] = 0;
      assert.equal(rawBind(c, dev, buf).errno, 'EINVAL', `${version}: a group fd never binds`);
    }
  });
});
