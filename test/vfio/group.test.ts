/**
 * /dev/vfio/<group> on the default iommufd-provided container, x86 preset:
 * QEMU's legacy-container sequence (clients.md §1.1) end to end with a
 * device DMA into the process's memory, then each group errno rule of
 * vfio-device.md §2 and the lifetime rules of §2.7.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  VFIO_EXTENSION,
  VFIO_GROUP_FLAGS,
  VFIO_IOMMU_INFO,
  vfioIoctlNumber,
} from '../../src/abi/vfio.ts';
import { DmaFaultError } from '../../src/iommu/device.ts';
import { ctxOfFd } from '../../src/iommufd/fops.ts';
import { VfioDeviceInfo } from '../../src/vfio/pci/abi.ts';
import { COMPAT, capChain, iovaRanges, VfioClient } from './client.ts';

const NIC = '0000:03:00.0'; // group 13, alone
const MIB = 1n << 20n;
const U64_MAX = (1n << 64n) - 1n;

/** Container + group 13 set, SET_IOMMU(TYPE1v2) done. */
function attached(c = new VfioClient({ personality: COMPAT })) {
  const container = c.open('/dev/vfio/vfio').ret;
  const group = c.open('/dev/vfio/13').ret;
  assert.equal(c.setContainer(group, container).ret, 0);
  assert.equal(c.ioctl(container, 'VFIO_SET_IOMMU', BigInt(VFIO_EXTENSION.TYPE1v2_IOMMU)).ret, 0);
  const nic = c.kernel.host.devices.get(NIC)!.device;
  return { c, container, group, nic };
}

describe('QEMU legacy container flow (iommufd backend)', () => {
  it('opens, maps, lets the device DMA, unmaps and tears down', () => {
    const c = new VfioClient(
      { personality: COMPAT },
      { capIpcLock: false, rlimitMemlock: 64n * MIB },
    );
    const container = c.open('/dev/vfio/vfio').ret;
    assert.ok(container >= 3);
    assert.equal(c.ioctl(container, 'VFIO_GET_API_VERSION').ret, 0);
    // QEMU probes TYPE1v2, TYPE1, SPAPR_TCE_v2, SPAPR_TCE: the first nonzero wins
    assert.equal(c.ioctl(container, 'VFIO_CHECK_EXTENSION', 3n).ret, 1);
    assert.equal(c.ioctl(container, 'VFIO_CHECK_EXTENSION', 1n).ret, 1);
    assert.equal(c.ioctl(container, 'VFIO_CHECK_EXTENSION', 7n).ret, 0);
    assert.equal(c.ioctl(container, 'VFIO_CHECK_EXTENSION', 2n).ret, 0);

    const group = c.open('/dev/vfio/13').ret;
    const fresh = c.status(group);
    assert.equal(fresh.ret, 0);
    assert.equal(fresh.flags, VFIO_GROUP_FLAGS.VIABLE); // rust-vmm wants exactly VIABLE
    assert.equal(c.setContainer(group, container).ret, 0);
    assert.equal(c.status(group).flags, VFIO_GROUP_FLAGS.VIABLE | VFIO_GROUP_FLAGS.CONTAINER_SET);
    assert.equal(c.ioctl(container, 'VFIO_SET_IOMMU', 3n).ret, 0);
    // CPR probes: iommufd has no UPDATE_VADDR, has UNMAP_ALL
    assert.equal(c.ioctl(container, 'VFIO_CHECK_EXTENSION', 10n).ret, 0);
    assert.equal(c.ioctl(container, 'VFIO_CHECK_EXTENSION', 9n).ret, 1);

    // GET_INFO argsz-grow loop: DMA_AVAIL then IOVA_RANGE, no MIGRATION
    const info = c.getInfo(container);
    assert.equal(info.ret, 0);
    assert.ok(info.first > 24);
    const v = new DataView(info.bytes.buffer, info.bytes.byteOffset);
    assert.equal(v.getUint32(4, true), VFIO_IOMMU_INFO.PGSIZES | VFIO_IOMMU_INFO.CAPS);
    assert.equal(v.getUint32(16, true), 24);
    const caps = capChain(info.bytes);
    assert.deepEqual([...caps.keys()], [3, 1]);
    assert.equal(v.getUint32(caps.get(3)! + 8, true), 0xffff_ffff);
    // no device is attached yet: the whole IOVA space is valid
    assert.deepEqual(iovaRanges(info.bytes, caps.get(1)!), [{ start: 0n, end: U64_MAX }]);

    const va = c.mem(2n * MIB);
    const iova = 0x1000_0000n;
    assert.equal(c.mapDma(container, va, iova, 2n * MIB).ret, 0);
    assert.equal(c.proc.counters.lockedVm, 0n, 'nothing pinned before a domain exists');

    const dev = c.getDeviceFd(group, NIC);
    assert.ok(dev.ret >= 0, `GET_DEVICE_FD: ${dev.errno}`);
    // the device fd answers as vfio-pci: PCI|RESET, 9 regions, 5 irq indexes
    const devInfo = c.proc.call(
      dev.ret,
      vfioIoctlNumber('generic', 'VFIO_DEVICE_GET_INFO'),
      VfioDeviceInfo,
      {
        argsz: 24,
      },
    );
    assert.equal(devInfo.ret, 0);
    assert.deepEqual([devInfo.out.flags, devInfo.out.num_regions, devInfo.out.num_irqs], [3, 9, 5]);
    // per-mm accounting (the fd is /dev/vfio/vfio): the 2 MiB are now pinned against the mm
    assert.equal(c.proc.counters.lockedVm, 512n);

    const nic = c.kernel.host.devices.get(NIC)!.device;
    const data = new TextEncoder().encode('hello from the NIC');
    nic.dmaWrite(iova + 0x1234n, data);
    assert.deepEqual(c.proc.mm.read(va + 0x1234n, data.length), data);
    assert.deepEqual(nic.dmaRead(iova + 0x1234n, data.length), data);

    // the device narrowed the IOVA space: its MSI window is now reserved
    const after = c.getInfo(container);
    const ranges = iovaRanges(after.bytes, capChain(after.bytes).get(1)!);
    assert.ok(ranges.length >= 2);
    assert.ok(ranges.every((r) => r.end < 0xfee0_0000n || r.start > 0xfeef_ffffn));

    const un = c.unmapDma(container, iova, 2n * MIB);
    assert.equal(un.ret, 0);
    assert.equal(un.size, 2n * MIB);
    assert.throws(() => nic.dmaWrite(iova, data), DmaFaultError);
    assert.equal(c.proc.counters.lockedVm, 0n);

    // teardown as QEMU: device, UNSET_CONTAINER, group, container
    assert.equal(c.proc.close(dev.ret), 0);
    assert.equal(c.ioctl(group, 'VFIO_GROUP_UNSET_CONTAINER').ret, 0);
    assert.equal(c.status(group).flags, VFIO_GROUP_FLAGS.VIABLE);
    assert.equal(c.proc.close(group), 0);
    assert.equal(c.proc.close(container), 0);
    // the group can be opened again
    assert.ok(c.open('/dev/vfio/13').ret >= 0);
  });
});

describe('open /dev/vfio/<group>', () => {
  it('exists for every group of the topology and nothing else', () => {
    const c = new VfioClient({ personality: COMPAT });
    for (const id of [0, 1, 4, 12, 13]) assert.ok(c.open(`/dev/vfio/${id}`).ret >= 0, `${id}`);
    for (const p of ['/dev/vfio/2', '/dev/vfio/013', '/dev/vfio/', '/dev/vfio/13a'])
      assert.equal(c.open(p).errno, 'ENOENT', p);
  });

  it('follows the host preset', () => {
    const c = new VfioClient({ host: 'powernv', personality: COMPAT });
    assert.ok(c.open('/dev/vfio/2').ret >= 0);
    assert.equal(c.open('/dev/vfio/13').errno, 'ENOENT');
  });

  it('allows one opener at a time: EBUSY, also across dup and processes', () => {
    const c = new VfioClient({ personality: COMPAT });
    const g = c.open('/dev/vfio/13').ret;
    assert.equal(c.open('/dev/vfio/13').errno, 'EBUSY');
    const other = c.kernel.spawn();
    assert.equal(other.open('/dev/vfio/13'), -1);
    assert.equal(other.errno, 'EBUSY');
    const d = c.proc.dup(g);
    c.proc.close(g);
    assert.equal(c.open('/dev/vfio/13').errno, 'EBUSY', 'the dup keeps the file open');
    c.proc.close(d);
    assert.ok(c.open('/dev/vfio/13').ret >= 0);
  });
});

describe('group ioctls', () => {
  it('GET_STATUS: argsz < 8 is EINVAL; unknown group ioctls are ENOTTY', () => {
    const c = new VfioClient({ personality: COMPAT });
    const g = c.open('/dev/vfio/13').ret;
    assert.equal(c.status(g, 7).errno, 'EINVAL');
    assert.equal(c.status(g, 64).ret, 0);
    assert.equal(c.ioctl(g, 'VFIO_GET_API_VERSION').errno, 'ENOTTY');
    assert.equal(c.ioctl(g, 'VFIO_IOMMU_MAP_DMA').errno, 'ENOTTY');
  });

  it('SET_CONTAINER: EBADF, EBADFD for other fds, EINVAL when set, EFAULT', () => {
    const c = new VfioClient({ personality: COMPAT });
    const g = c.open('/dev/vfio/13').ret;
    const other = c.open('/dev/vfio/12').ret;
    assert.equal(c.setContainer(g, 77).errno, 'EBADF');
    assert.equal(c.setContainer(g, -1).errno, 'EBADF');
    assert.equal(c.setContainer(g, 0).errno, 'EBADFD'); // a tty
    assert.equal(c.setContainer(g, other).errno, 'EBADFD'); // a group
    assert.equal(c.setContainer(g, c.proc.memfd(4096n)).errno, 'EBADFD');
    assert.equal(c.ioctl(g, 'VFIO_GROUP_SET_CONTAINER', 0n).errno, 'EFAULT');
    const container = c.open('/dev/vfio/vfio').ret;
    assert.equal(c.setContainer(g, container).ret, 0);
    assert.equal(c.setContainer(g, container).errno, 'EINVAL');
    assert.equal(c.setContainer(g, 77).errno, 'EBADF', 'EBADF is checked first');
    // a second group shares the container
    assert.equal(c.setContainer(other, container).ret, 0);
  });

  it('SET_CONTAINER takes a /dev/iommu fd and creates its compat IOAS', () => {
    const c = new VfioClient({ personality: COMPAT });
    const iommufd = c.open('/dev/iommu').ret;
    const ctx = ctxOfFd(c.proc, iommufd);
    assert.equal(ctx.vfioIoas, undefined);
    const g = c.open('/dev/vfio/13').ret;
    assert.equal(c.setContainer(g, iommufd).ret, 0);
    assert.ok(ctx.vfioIoas);
    assert.equal(ctx.accountMode, 'user');
    assert.equal(c.ioctl(iommufd, 'VFIO_SET_IOMMU', 3n).ret, 0);
    const dev = c.getDeviceFd(g, NIC).ret;
    assert.ok(dev >= 0);
    assert.equal(c.kernel.host.groups.get(13)!.domain !== undefined, true);
  });

  it('UNSET_CONTAINER without a container is EINVAL', () => {
    const c = new VfioClient({ personality: COMPAT });
    const g = c.open('/dev/vfio/13').ret;
    assert.equal(c.ioctl(g, 'VFIO_GROUP_UNSET_CONTAINER').errno, 'EINVAL');
    const { c: c2, group } = attached();
    assert.equal(c2.ioctl(group, 'VFIO_GROUP_UNSET_CONTAINER').ret, 0);
    assert.equal(c2.ioctl(group, 'VFIO_GROUP_UNSET_CONTAINER').errno, 'EINVAL');
  });

  it('GET_DEVICE_FD: ENODEV for unknown names, EINVAL before SET_CONTAINER', () => {
    const c = new VfioClient({ personality: COMPAT });
    const g = c.open('/dev/vfio/13').ret;
    assert.equal(c.getDeviceFd(g, '0000:99:00.0').errno, 'ENODEV');
    assert.equal(c.getDeviceFd(g, '0000:02:00.0').errno, 'ENODEV', 'a device of another group');
    assert.equal(c.getDeviceFd(g, NIC).errno, 'EINVAL', 'no container yet');
    const container = c.open('/dev/vfio/vfio').ret;
    assert.equal(c.setContainer(g, container).ret, 0);
    // iommufd's container needs no SET_IOMMU before GET_DEVICE_FD (group.c checks only container || iommufd)
    const dev = c.getDeviceFd(g, NIC);
    assert.ok(dev.ret >= 0, String(dev.errno));
    // the group path allows several opens of one device
    assert.ok(c.getDeviceFd(g, NIC).ret >= 0);
  });

  it('GET_DEVICE_FD: vfio-pci name matching and vf_token', () => {
    const { c, group } = attached();
    const token = 'bd8d9d2b-5a5f-4f5a-a211-f591514ba1f3';
    assert.equal(c.getDeviceFd(group, `${NIC}0`).errno, 'ENODEV', 'no space after the name');
    assert.equal(c.getDeviceFd(group, '0000:03:00').errno, 'ENODEV', 'a prefix is no name');
    assert.equal(c.getDeviceFd(group, `${NIC} foo`).errno, 'EINVAL');
    assert.equal(c.getDeviceFd(group, `${NIC} vf_token=1234`).errno, 'EINVAL');
    // DPDK tries with a token first: no PF/VF here, so EINVAL, then plain
    assert.equal(c.getDeviceFd(group, `${NIC} vf_token=${token}`).errno, 'EINVAL');
    assert.ok(c.getDeviceFd(group, `${NIC}   `).ret >= 0, 'trailing spaces are skipped');
  });

  it('GET_DEVICE_FD: the name is NUL-terminated within a page (EINVAL), readable (EFAULT)', () => {
    const { c, group } = attached();
    const page = c.mem(8192n);
    c.proc.mm.write(page, new Uint8Array(4096).fill(0x41));
    c.proc.mm.munmap(page + 4096n, 4096n); // the string runs into a hole
    // a full page without NUL is EINVAL before the hole is reached; from mid-page it faults
    assert.equal(c.ioctl(group, 'VFIO_GROUP_GET_DEVICE_FD', page).errno, 'EINVAL');
    assert.equal(c.ioctl(group, 'VFIO_GROUP_GET_DEVICE_FD', page + 2048n).errno, 'EFAULT');
    const two = c.mem(8192n);
    c.proc.mm.write(two, new Uint8Array(8192).fill(0x41));
    assert.equal(c.ioctl(group, 'VFIO_GROUP_GET_DEVICE_FD', two).errno, 'EINVAL');
    assert.equal(c.ioctl(group, 'VFIO_GROUP_GET_DEVICE_FD', 0n).errno, 'EFAULT');
  });
});

describe('lifetimes (iommufd backend)', () => {
  it('closing the container under a live group keeps the mappings and the DMA', () => {
    const { c, container, group, nic } = attached();
    const va = c.mem(MIB);
    assert.equal(c.mapDma(container, va, 0n, MIB).ret, 0);
    const dev = c.getDeviceFd(group, NIC).ret;
    const ctx = ctxOfFd(c.proc, container);
    assert.equal(c.proc.close(container), 0);
    assert.equal(c.status(group).flags, VFIO_GROUP_FLAGS.VIABLE | VFIO_GROUP_FLAGS.CONTAINER_SET);
    nic.dmaWrite(0x10n, Uint8Array.of(1, 2, 3));
    assert.deepEqual(c.proc.mm.read(va + 0x10n, 3), Uint8Array.of(1, 2, 3));
    // UNSET drops the group's hold; the open device still holds the context
    assert.equal(c.ioctl(group, 'VFIO_GROUP_UNSET_CONTAINER').ret, 0);
    nic.dmaWrite(0x10n, Uint8Array.of(4));
    assert.ok(ctx.objectCount > 0);
    // the last device close unbinds: the context and its mappings go
    assert.equal(c.proc.close(dev), 0);
    assert.equal(ctx.objectCount, 0);
    assert.throws(() => nic.dmaWrite(0x10n, Uint8Array.of(5)), DmaFaultError);
    assert.equal(c.kernel.host.groups.get(13)!.domain, undefined);
  });

  it('closing the group fd with a device open frees the group node (iommufd does not hold it)', () => {
    const { c, container, group, nic } = attached();
    const va = c.mem(MIB);
    assert.equal(c.mapDma(container, va, 0n, MIB).ret, 0);
    const dev = c.getDeviceFd(group, NIC).ret;
    assert.equal(c.proc.close(group), 0);
    nic.dmaWrite(0n, Uint8Array.of(9));
    const again = c.open('/dev/vfio/13').ret;
    assert.ok(again >= 0);
    // the device is still bound to the iommufd, which owns the group's DMA: not viable
    assert.equal(c.status(again).flags, 0);
    c.proc.close(dev);
    assert.throws(() => nic.dmaWrite(0n, Uint8Array.of(9)), DmaFaultError);
    assert.equal(c.status(again).flags, VFIO_GROUP_FLAGS.VIABLE);
  });

  it('process exit closes everything in fd order', () => {
    const { c, container, group } = attached();
    const ctx = ctxOfFd(c.proc, container);
    assert.equal(c.mapDma(container, c.mem(MIB), 0n, MIB).ret, 0);
    assert.ok(c.getDeviceFd(group, NIC).ret >= 0);
    c.proc.exit();
    assert.equal(ctx.objectCount, 0);
    const next = c.kernel.spawn();
    assert.ok(next.open('/dev/vfio/13') >= 0);
  });
});
