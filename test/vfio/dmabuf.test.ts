/**
 * VFIO_DEVICE_FEATURE_DMA_BUF (src/vfio/pci/dmabuf.ts, Linux 7.2's
 * vfio_pci_dmabuf.c) on the refguest functions, and IOMMU_IOAS_MAP_FILE of
 * the dma-buf it returns: every errno rule in the kernel's order, the IOVAs
 * reaching the BAR's bus addresses, revocation (Memory decode off, a
 * reset, device closed) taking the existing mappings away, and what
 * iommufd refuses of a dma-buf's area (access pins and reads, splits,
 * CHANGE_PROCESS).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  IOMMU_IOAS_MAP_FLAGS,
  IOMMU_OPTION_ID,
  IOMMU_OPTION_OP,
  IOMMU_VFIO_IOAS_OP,
  IommuIoasChangeProcess,
  iommufdCmdNumber,
} from '../../src/abi/iommufd.ts';
import {
  IOMMU_TEST_OP,
  iommuTestCmdLayout,
  iommuTestCmdNumber,
  MOCK_ACCESS_RW_FLAGS,
  MOCK_FLAGS_ACCESS,
} from '../../src/abi/iommufd-test.ts';
import { VfioIommuType1DmaUnmap } from '../../src/abi/vfio.ts';
import { VFIO_DEVICE_FEATURE } from '../../src/abi/vfio-device.ts';
import type { HwptPaging } from '../../src/iommufd/hw-pagetable.ts';
import { mockDomain, ok, tc } from '../iommufd/mock.ts';
import { client } from '../support.ts';
import { CONFIG, PAGE, RW, rig } from './dmabuf-rig.ts';

const { GET, SET, PROBE } = VFIO_DEVICE_FEATURE;

describe('VFIO_DEVICE_FEATURE_DMA_BUF', () => {
  it('is ENOTTY before 7.2 (no CONFIG_VFIO_PCI_DMABUF in 6.18)', () => {
    assert.equal(rig('0000:00:03.0', '6.18').feature({}).errno, 'ENOTTY');
  });

  it('refuses bad requests in the kernel order', () => {
    const { feature } = rig();
    assert.equal(feature({}, undefined, SET).errno, 'EINVAL', 'GET only');
    assert.equal(feature({}, undefined, PROBE | GET).ret, 0, 'PROBE');
    assert.equal(feature({}, undefined, GET, 8 + 15).errno, 'EINVAL', 'payload below 16 bytes');
    assert.equal(feature({ nr_ranges: 0 }).errno, 'EINVAL');
    assert.equal(feature({ flags: 1 }).errno, 'EINVAL');
    assert.equal(feature({ region_index: 6 }).errno, 'ENODEV', 'the ROM is no BAR');
    assert.equal(feature({ region_index: 2 }).errno, 'ENODEV', 'an absent BAR');
    assert.equal(feature({ nr_ranges: 262_145 }).errno, 'ENOMEM', 'more than 4 MiB of ranges');
    assert.equal(feature({}, [[0n, 0n]]).errno, 'EINVAL', 'an empty range');
    assert.equal(feature({}, [[0x800n, PAGE]]).errno, 'EINVAL', 'an unaligned offset');
    assert.equal(feature({}, [[0n, 0x800n]]).errno, 'EINVAL', 'an unaligned length');
    assert.equal(
      feature({}, [
        [0n, 1n << 63n],
        [0n, 1n << 63n],
      ]).errno,
      'EINVAL',
      'lengths adding up past 2^64',
    );
    assert.equal(
      feature({}, [[(1n << 64n) - PAGE, PAGE]]).errno,
      'EOVERFLOW',
      'the bus address wraps',
    );
    assert.equal(feature({}, [[1n << 20n, PAGE]]).errno, 'EINVAL', 'past the 1 MiB BAR');
    assert.equal(
      rig('0000:00:05.0').feature({ region_index: 1 }).errno,
      'ENODEV',
      "a mem64 BAR's upper half",
    );
    assert.equal(rig('0000:00:04.0').feature({ region_index: 1 }).errno, 'EINVAL', 'an I/O BAR');
  });

  it('returns a dma-buf fd that IOAS_MAP_FILE maps onto the BAR', () => {
    const { c, dev, decode, feature } = rig();
    decode(true);
    const one = feature({}, [[0x4000n, 0x2000n]]);
    assert.ok(one.ret > dev, `fd ${one.ret}`);
    const two = feature({}, [
      [0n, PAGE],
      [0x8000n, PAGE],
    ]).ret;
    const f = client(c.kernel, c.proc);
    const ioas = f.ioas();
    const { hwpt } = mockDomain(f, ioas);
    const map = (fd: number, start: bigint, length: bigint) =>
      f.call('IOMMU_IOAS_MAP_FILE', { flags: RW, ioas_id: ioas, fd, start, length });
    assert.equal(map(one.ret, PAGE, 0x2000n).errno, 'EINVAL', 'start + length past the buffer');
    assert.equal(map(two, 0n, PAGE).errno, 'EOPNOTSUPP', 'iommufd takes one range only');
    const r = map(one.ret, PAGE, PAGE);
    assert.equal(r.errno, undefined);
    const base = c.kernel.vfioGroups.get(2)!.devices[0]!.pci.barBusAddress(0);
    const domain = f.ctx.get<HwptPaging>(hwpt, 'hwpt_paging').domain;
    assert.equal(
      domain.iovaToPhys(r.out.iova as bigint),
      base + 0x5000n,
      'IOVA → BAR0 + 0x4000 + start',
    );
    assert.equal(c.proc.counters.pinnedVm, 0n, 'a dma-buf charges no pinned pages');
  });

  it('is revoked while Memory decode is off and for good once the device is closed', () => {
    const { c, dev, decode, feature } = rig();
    const fd = feature({}).ret;
    const f = client(c.kernel, c.proc);
    const ioas = f.ioas();
    const map = (buf = fd) =>
      f.call('IOMMU_IOAS_MAP_FILE', { flags: RW, ioas_id: ioas, fd: buf, start: 0n, length: PAGE })
        .errno;
    assert.equal(map(), undefined, 'the device opens with Memory decode on');
    decode(false);
    assert.equal(map(), 'ENODEV');
    const late = feature({}).ret;
    assert.equal(map(late), 'ENODEV', 'exported while decode is off');
    decode(true);
    assert.equal(map(), undefined);
    assert.equal(map(late), undefined);
    c.proc.close(dev);
    assert.equal(map(), 'ENODEV', 'the device was closed');
  });

  it('a move takes the mappings away for good: decode off, RESET, FLR, close', () => {
    // the nvme function: PCI Express, so it has a reset method (edu has none)
    const { c, dev, decode, feature } = rig('0000:00:05.0');
    const fd = feature({}, [[0n, 4n * PAGE]]).ret;
    const f = client(c.kernel, c.proc);
    const ioas = f.ioas();
    const { hwpt } = mockDomain(f, ioas);
    const domain = () => f.ctx.get<HwptPaging>(hwpt, 'hwpt_paging').domain;
    const map = () => {
      const r = f.call('IOMMU_IOAS_MAP_FILE', {
        flags: RW,
        ioas_id: ioas,
        fd,
        start: 0n,
        length: PAGE,
      });
      assert.equal(r.errno, undefined);
      return r.out.iova as bigint;
    };
    const base = c.kernel.vfioGroups.get(4)!.devices[0]!.pci.barBusAddress(0);
    const a = map();
    assert.equal(domain().iovaToPhys(a), base);
    decode(false);
    assert.equal(domain().iovaToPhys(a), undefined, 'decode off unmaps it');
    decode(true);
    assert.equal(domain().iovaToPhys(a), undefined, 'and it stays unmapped');
    const later = mockDomain(f, ioas).hwpt;
    const d2 = f.ctx.get<HwptPaging>(later, 'hwpt_paging').domain;
    assert.equal(d2.iovaToPhys(a), undefined, 'a new domain gets nothing of it');
    const b = map();
    assert.equal(d2.iovaToPhys(b), base, 'a new mapping works');
    assert.equal(c.ioctl(dev, 'VFIO_DEVICE_RESET').errno, undefined);
    assert.equal(d2.iovaToPhys(b), undefined, 'RESET unmaps it');
    // an FLR through the PCI Express capability's Device Control (Initiate FLR, bit 15)
    const flr = map();
    assert.equal(d2.iovaToPhys(flr), base);
    const pcie = c.kernel.vfioGroups.get(4)!.devices[0]!.pci.config.caps.get(0x10)!;
    const ctl = c.proc.scratch(Uint8Array.of(0x80));
    assert.equal(c.proc.pwrite(dev, ctl, 1, CONFIG + BigInt(pcie + 9)), 1);
    assert.equal(d2.iovaToPhys(flr), undefined, 'an FLR unmaps it');
    const unmap = f.call('IOMMU_IOAS_UNMAP', { ioas_id: ioas, iova: a, length: PAGE });
    assert.equal(unmap.out.length, PAGE, 'the revoked area is still there to unmap');
    const d = map();
    c.proc.close(dev);
    assert.equal(d2.iovaToPhys(d), undefined, 'the close unmaps it');
  });

  it('an access can neither pin nor read a dma-buf area: EINVAL after the permission check', () => {
    const { c, feature } = rig();
    const fd = feature({}).ret;
    const f = client(c.kernel, c.proc);
    const ioas = f.ioas();
    const { READABLE } = IOMMU_IOAS_MAP_FLAGS;
    const r = f.call('IOMMU_IOAS_MAP_FILE', {
      flags: READABLE,
      ioas_id: ioas,
      fd,
      start: 0n,
      length: PAGE,
    });
    const iova = r.out.iova as bigint;
    const acc = ok(tc(f, 'CREATE_ACCESS', { id: ioas, flags: 1 })).out_access_fd as number;
    const pin = (flags: number) =>
      tc(f, 'ACCESS_PAGES', { id: acc, iova, length: PAGE, flags }).errno;
    assert.equal(pin(MOCK_FLAGS_ACCESS.WRITE), 'EPERM', 'writing a read-only area');
    assert.equal(pin(0), 'EINVAL');
    const rw = (flags: number) =>
      tc(f, 'ACCESS_RW', { id: acc, iova, length: 16n, uptr: f.mem(PAGE), flags }).errno;
    assert.equal(rw(MOCK_ACCESS_RW_FLAGS.WRITE), 'EPERM');
    assert.equal(rw(0), 'EINVAL');
  });

  it('VFIO compat cannot split a dma-buf area (EOPNOTSUPP); IOAS_CHANGE_PROCESS refuses it (EINVAL)', () => {
    const { c, feature } = rig();
    const fd = feature({}, [[0n, 4n * PAGE]]).ret;
    const f = client(c.kernel, c.proc);
    const ioas = f.ioas();
    assert.equal(
      f.call('IOMMU_VFIO_IOAS', { op: IOMMU_VFIO_IOAS_OP.SET, ioas_id: ioas }).errno,
      undefined,
    );
    const off = {
      option_id: IOMMU_OPTION_ID.HUGE_PAGES,
      op: IOMMU_OPTION_OP.SET,
      object_id: ioas,
      val64: 0n,
    };
    assert.equal(f.call('IOMMU_OPTION', off).errno, undefined);
    const iova = 0x10_0000n;
    const flags = RW | IOMMU_IOAS_MAP_FLAGS.FIXED_IOVA;
    const mapped = f.call('IOMMU_IOAS_MAP_FILE', {
      flags,
      ioas_id: ioas,
      fd,
      start: 0n,
      length: 4n * PAGE,
      iova,
    });
    assert.equal(mapped.errno, undefined);
    const unmap = (at: bigint, size: bigint) => {
      const addr = c.proc.scratch(VfioIommuType1DmaUnmap.encode({ argsz: 24, iova: at, size }));
      return c.ioctl(f.fd, 'VFIO_IOMMU_UNMAP_DMA', addr).errno;
    };
    assert.equal(unmap(iova + PAGE, PAGE), 'EOPNOTSUPP', 'a hole in the middle');
    const nr = iommufdCmdNumber(c.kernel.abi, 'IOMMU_IOAS_CHANGE_PROCESS');
    const change = c.proc.call(f.fd, nr, IommuIoasChangeProcess, { __reserved: 0 });
    assert.equal(change.errno, 'EINVAL');
    assert.equal(unmap(iova, 4n * PAGE), undefined, 'the whole area unmaps');
  });

  it("the selftest's DMABUF_REVOKE takes the mappings away for good, as vfio-pci's moves do", () => {
    const { c } = rig();
    const f = client(c.kernel, c.proc);
    const ioas = f.ioas();
    const { hwpt } = mockDomain(f, ioas);
    const domain = f.ctx.get<HwptPaging>(hwpt, 'hwpt_paging').domain;
    const cmd = (op: 'DMABUF_GET' | 'DMABUF_REVOKE', v: Record<string, number>) =>
      f.proc.call(f.fd, iommuTestCmdNumber(c.kernel.abi), iommuTestCmdLayout(IOMMU_TEST_OP[op])!, {
        ...v,
        op: IOMMU_TEST_OP[op],
      });
    const fd = cmd('DMABUF_GET', { length: Number(4n * PAGE) }).ret;
    assert.ok(fd > 0);
    const r = f.call('IOMMU_IOAS_MAP_FILE', {
      flags: RW,
      ioas_id: ioas,
      fd,
      start: 0n,
      length: PAGE,
    });
    const iova = r.out.iova as bigint;
    assert.notEqual(domain.iovaToPhys(iova), undefined);
    assert.equal(cmd('DMABUF_REVOKE', { dmabuf_fd: fd, revoked: 1 }).errno, undefined);
    assert.equal(domain.iovaToPhys(iova), undefined);
    assert.equal(cmd('DMABUF_REVOKE', { dmabuf_fd: fd, revoked: 0 }).errno, undefined);
    assert.equal(
      domain.iovaToPhys(iova),
      undefined,
      'restoring the buffer does not restore the area',
    );
  });
});
