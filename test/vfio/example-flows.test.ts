/**
 * The ioctl sequences of examples/iommufd-cdev.c and examples/spapr-ddw.c
 * replayed in-process, step by step with the results the C programs
 * demand, so a model change that would fail them shows here first.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ErrnoName } from '../../src/abi/errno.ts';
import {
  IommuDestroy,
  type IommufdCmdName,
  IommuHwInfo,
  IommuHwptAlloc,
  IommuIoasAlloc,
  IommuIoasIovaRanges,
  IommuIoasMap,
  IommuIoasUnmap,
  iommufdCmdNumber,
} from '../../src/abi/iommufd.ts';
import type { Layout } from '../../src/abi/layout.ts';
import {
  VFIO_EXTENSION,
  VfioDeviceAttachIommufdPt,
  VfioDeviceBindIommufd,
  VfioDeviceDetachIommufdPt,
  VfioGroupStatus,
  type VfioIoctlName,
  VfioIommuSpaprRegisterMemory,
  VfioIommuSpaprTceCreate,
  VfioIommuSpaprTceInfo,
  VfioIommuSpaprTceRemove,
  VfioIommuType1DmaUnmap,
  vfioIoctlNumber,
} from '../../src/abi/vfio.ts';
import { vfioCdevName } from '../../src/vfio/cdev.ts';
import { VfioDeviceInfo, VfioRegionInfo } from '../../src/vfio/pci/abi.ts';
import { PCI } from '../../src/vfio/pci/config-space.ts';
import {
  DMA_BUF_OFFSET,
  DMA_CMD,
  DMA_ENGINE_ID,
  DMA_REG,
  DMA_STATUS,
} from '../../src/vfio/pci/dma-engine.ts';
import { capChain, VfioClient } from './client.ts';

const MIB = 1n << 20n;

/** A client whose calls assert the outcome the C program expects. */
class Replay extends VfioClient {
  iommu<V>(fd: number, name: IommufdCmdName, layout: Layout<V>, v: Partial<V>, want?: ErrnoName) {
    return this.expect(this.proc.call(fd, iommufdCmdNumber(this.kernel.abi, name), layout, v), {
      name,
      want,
    });
  }

  vfio<V>(fd: number, name: VfioIoctlName, layout: Layout<V>, v: Partial<V>, want?: ErrnoName) {
    return this.expect(this.proc.call(fd, vfioIoctlNumber(this.kernel.abi, name), layout, v), {
      name,
      want,
    });
  }

  private expect<R extends { ret: number; errno: ErrnoName | undefined }>(
    r: R,
    o: { name: string; want: ErrnoName | undefined },
  ): R {
    if (o.want) assert.equal(r.errno, o.want, `${o.name}: expected ${o.want}`);
    else assert.ok(r.ret >= 0, `${o.name} = -1 ${r.errno}`);
    return r;
  }

  /** dma_dev_open + dma_check_both + dma_expect_fault of example-common.h. */
  dmaChecks(fd: number, iova: bigint, va: bigint, faultIova: bigint): void {
    const info = this.vfio(fd, 'VFIO_DEVICE_GET_INFO', VfioDeviceInfo, { argsz: 24 });
    assert.ok((info.out.num_regions as number) >= 9);
    const region = (index: number) =>
      this.vfio(fd, 'VFIO_DEVICE_GET_REGION_INFO', VfioRegionInfo, { argsz: 32, index }).out;
    const cfg = region(7).offset;
    const bar0 = region(0).offset;
    const file = this.proc.file(fd)!;
    const pread = (off: bigint, n: number) => file.read!(this.proc, n, off);
    const pwrite = (off: bigint, b: Uint8Array) => file.write!(this.proc, b, off);
    const cmd = pread(cfg + BigInt(PCI.COMMAND), 2);
    cmd[0]! |= PCI.COMMAND_MEMORY;
    pwrite(cfg + BigInt(PCI.COMMAND), cmd);
    const u32 = (off: number) =>
      new DataView(pread(bar0 + BigInt(off), 4).buffer).getUint32(0, true);
    assert.equal(u32(DMA_REG.ID), DMA_ENGINE_ID);
    const run = (src: bigint, dst: bigint, count: bigint, toMemory: boolean) => {
      const b = new Uint8Array(32);
      const v = new DataView(b.buffer);
      v.setBigUint64(0, src, true);
      v.setBigUint64(8, dst, true);
      v.setBigUint64(16, count, true);
      v.setBigUint64(24, DMA_CMD.START | (toMemory ? DMA_CMD.TO_MEMORY : 0n), true);
      pwrite(bar0 + BigInt(DMA_REG.SRC), b);
      return u32(DMA_REG.STATUS);
    };
    const pattern = Uint8Array.from({ length: 0x800 }, (_, i) => (0x5a + i * 7) & 0xff);
    pwrite(bar0 + DMA_BUF_OFFSET, pattern);
    assert.equal(run(DMA_BUF_OFFSET, iova, 0x800n, true), DMA_STATUS.DONE);
    assert.deepEqual(this.proc.mm.read(va, 0x800), pattern);
    this.proc.mm.write(
      va + 0x800n,
      pattern.map((b) => ~b & 0xff),
    );
    assert.equal(run(iova + 0x800n, DMA_BUF_OFFSET, 0x800n, false), DMA_STATUS.DONE);
    assert.deepEqual(pread(bar0 + DMA_BUF_OFFSET, 0x800), this.proc.mm.read(va + 0x800n, 0x800));
    assert.equal(run(DMA_BUF_OFFSET, faultIova, 64n, true), DMA_STATUS.DONE | DMA_STATUS.FAULT);
  }
}

describe('examples replayed in-process', () => {
  it('iommufd-cdev (x86, 0000:00:02.0)', () => {
    const c = new Replay();
    const dev = c.open(`/dev/vfio/devices/${vfioCdevName(c.kernel, '0000:00:02.0')}`).ret;
    const fd = c.open('/dev/iommu').ret;
    c.vfio(dev, 'VFIO_DEVICE_GET_INFO', VfioDeviceInfo, { argsz: 24 }, 'EINVAL');
    const bind = c.vfio(dev, 'VFIO_DEVICE_BIND_IOMMUFD', VfioDeviceBindIommufd, {
      argsz: 24,
      iommufd: fd,
    });
    const devId = bind.out.out_devid;
    assert.notEqual(devId, 0);
    c.vfio(
      dev,
      'VFIO_DEVICE_BIND_IOMMUFD',
      VfioDeviceBindIommufd,
      { argsz: 24, iommufd: fd },
      'EINVAL',
    );
    const ioas = c.iommu(fd, 'IOMMU_IOAS_ALLOC', IommuIoasAlloc, {}).out.out_ioas_id;
    const hw = c.iommu(fd, 'IOMMU_GET_HW_INFO', IommuHwInfo, { dev_id: devId }).out;
    const hwpt = c.iommu(fd, 'IOMMU_HWPT_ALLOC', IommuHwptAlloc, {
      flags: hw.out_capabilities & 1n ? 2 : 0,
      dev_id: devId,
      pt_id: ioas,
    }).out.out_hwpt_id;
    const at = c.vfio(dev, 'VFIO_DEVICE_ATTACH_IOMMUFD_PT', VfioDeviceAttachIommufdPt, {
      argsz: 12,
      pt_id: hwpt,
    });
    assert.equal(at.out.pt_id, hwpt);
    const rq = c.iommu(
      fd,
      'IOMMU_IOAS_IOVA_RANGES',
      IommuIoasIovaRanges,
      { ioas_id: ioas },
      'EMSGSIZE',
    );
    assert.ok(rq.out.num_iovas > 0 && rq.out.num_iovas <= 16);

    const IOVA = 0x1000_0000n;
    const va = c.mem(2n * MIB);
    const F = 1 | 2 | 4;
    c.iommu(fd, 'IOMMU_IOAS_MAP', IommuIoasMap, {
      flags: F,
      ioas_id: ioas,
      user_va: va,
      length: 2n * MIB,
      iova: IOVA,
    });
    c.iommu(
      fd,
      'IOMMU_IOAS_MAP',
      IommuIoasMap,
      { flags: F, ioas_id: ioas, user_va: va, length: 0x1000n, iova: IOVA + 0x1000n },
      'EEXIST',
    );
    c.dmaChecks(dev, IOVA + 0x3000n, va + 0x3000n, 0x4000_0000n);
    const un = c.iommu(fd, 'IOMMU_IOAS_UNMAP', IommuIoasUnmap, {
      ioas_id: ioas,
      iova: IOVA,
      length: 2n * MIB,
    });
    assert.equal(un.out.length, 2n * MIB);
    c.iommu(
      fd,
      'IOMMU_IOAS_UNMAP',
      IommuIoasUnmap,
      { ioas_id: ioas, iova: IOVA, length: 2n * MIB },
      'ENOENT',
    );
    c.iommu(fd, 'IOMMU_DESTROY', IommuDestroy, { id: hwpt }, 'EBUSY');
    c.vfio(dev, 'VFIO_DEVICE_DETACH_IOMMUFD_PT', VfioDeviceDetachIommufdPt, { argsz: 8 });
    c.iommu(fd, 'IOMMU_DESTROY', IommuDestroy, { id: hwpt });
    assert.equal(c.proc.close(dev), 0);
    c.iommu(fd, 'IOMMU_DESTROY', IommuDestroy, { id: ioas });
    assert.equal(c.proc.close(fd), 0);
  });

  for (const personality of ['iommufd', 'type1'] as const) {
    it(`type1-container (x86, 0000:00:02.0, ${personality} container)`, () => {
      const c = new Replay({ personality: { vfioContainer: personality } });
      const ct = c.open('/dev/vfio/vfio').ret;
      assert.equal(c.ioctl(ct, 'VFIO_GET_API_VERSION').ret, 0);
      assert.equal(c.ioctl(ct, 'VFIO_CHECK_EXTENSION', 3n).ret, 1);
      assert.equal(c.ioctl(ct, 'VFIO_CHECK_EXTENSION', 0x7fffn).ret, 0);
      const g = c.open('/dev/vfio/0').ret;
      assert.equal(c.status(g).flags, 1);
      assert.equal(c.getDeviceFd(g, '0000:00:02.0').errno, 'EINVAL');
      assert.equal(c.setContainer(g, ct).ret, 0);
      assert.equal(c.status(g).flags, 3);
      assert.equal(c.ioctl(ct, 'VFIO_SET_IOMMU', 3n).ret, 0);
      const info = c.getInfo(ct);
      assert.equal(info.ret, 0);
      assert.ok(info.first > 24, 'the caps need a second call');
      assert.ok(capChain(info.bytes).has(1), 'IOVA_RANGE');
      const IOVA = 0x1000_0000n;
      const va = c.mem(2n * MIB);
      assert.equal(c.mapDma(ct, va, IOVA, 2n * MIB).ret, 0);
      assert.equal(c.mapDma(ct, va, IOVA + 0x1000n, 0x1000n).errno, 'EEXIST');
      assert.equal(c.getDeviceFd(g, '0000:ff:1f.7').errno, 'ENODEV');
      const dev = c.getDeviceFd(g, '0000:00:02.0').ret;
      assert.ok(dev >= 0);
      c.dmaChecks(dev, IOVA + 0x1_0000n, va + 0x1_0000n, IOVA + 2n * MIB);
      const split = c.unmapDma(ct, IOVA, 0x1000n);
      assert.equal(split.errno, personality === 'type1' ? 'EINVAL' : 'ENOENT');
      const un = c.unmapDma(ct, IOVA, 2n * MIB);
      assert.equal(un.ret, 0);
      assert.equal(un.size, 2n * MIB);
      assert.equal(c.proc.close(dev), 0);
      assert.equal(c.ioctl(g, 'VFIO_GROUP_UNSET_CONTAINER').ret, 0);
    });
  }

  it('spapr-ddw (powernv legacy container, 0000:01:00.0, 64 KiB TCEs on hugetlb memory)', () => {
    const c = new Replay({ host: 'powernv', personality: { vfioContainer: 'legacy' } });
    const ct = c.open('/dev/vfio/vfio').ret;
    assert.equal(
      c.ioctl(ct, 'VFIO_CHECK_EXTENSION', BigInt(VFIO_EXTENSION.SPAPR_TCE_v2_IOMMU)).ret,
      1,
    );
    const g = c.open('/dev/vfio/0').ret;
    c.vfio(g, 'VFIO_GROUP_GET_STATUS', VfioGroupStatus, { argsz: 8 });
    assert.equal(c.setContainer(g, ct).ret, 0);
    assert.equal(c.ioctl(ct, 'VFIO_SET_IOMMU', BigInt(VFIO_EXTENSION.SPAPR_TCE_v2_IOMMU)).ret, 0);
    const info = c.vfio(ct, 'VFIO_IOMMU_SPAPR_TCE_GET_INFO', VfioIommuSpaprTceInfo, {
      argsz: 32,
    }).out;
    assert.ok(info.pgsizes & (1n << 16n));
    const size = 2n * MIB;
    const ram = c.proc.mm.mmap({ length: size, prot: { read: true, write: true }, hugetlb: true });
    assert.equal(c.mapDma(ct, ram, 1n << 59n, size).errno, 'EPERM');
    const reg = { argsz: 24, flags: 0, vaddr: ram, size };
    c.vfio(ct, 'VFIO_IOMMU_SPAPR_REGISTER_MEMORY', VfioIommuSpaprRegisterMemory, reg);
    c.vfio(ct, 'VFIO_IOMMU_SPAPR_REGISTER_MEMORY', VfioIommuSpaprRegisterMemory, reg, 'EBUSY');
    const create = { argsz: 40, page_shift: 16, window_size: 1n << 30n, levels: 1 };
    const cr = c.vfio(ct, 'VFIO_IOMMU_SPAPR_TCE_CREATE', VfioIommuSpaprTceCreate, create);
    assert.equal(cr.out.start_addr, 1n << 59n);
    c.vfio(ct, 'VFIO_IOMMU_SPAPR_TCE_CREATE', VfioIommuSpaprTceCreate, create, 'ENOSPC');
    const rm = { argsz: 16, flags: 0, start_addr: BigInt(info.dma32_window_start) };
    c.vfio(ct, 'VFIO_IOMMU_SPAPR_TCE_REMOVE', VfioIommuSpaprTceRemove, rm);
    c.vfio(ct, 'VFIO_IOMMU_SPAPR_TCE_REMOVE', VfioIommuSpaprTceRemove, rm, 'EINVAL');
    assert.equal(c.mapDma(ct, ram, 1n << 59n, size).ret, 0);
    assert.equal(c.mapDma(ct, ram, 0n, size).errno, 'ENXIO');
    const dev = c.getDeviceFd(g, '0000:01:00.0').ret;
    assert.ok(dev >= 0);
    c.dmaChecks(dev, (1n << 59n) + 0x2_0000n, ram + 0x2_0000n, 0x1000n);
    const un = c.vfio(ct, 'VFIO_IOMMU_UNMAP_DMA', VfioIommuType1DmaUnmap, {
      argsz: 24,
      iova: 1n << 59n,
      size,
    });
    assert.equal(un.out.size, size);
    c.vfio(ct, 'VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY', VfioIommuSpaprRegisterMemory, reg);
    c.vfio(ct, 'VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY', VfioIommuSpaprRegisterMemory, reg, 'ENOENT');
    c.vfio(ct, 'VFIO_IOMMU_SPAPR_TCE_REMOVE', VfioIommuSpaprTceRemove, {
      ...rm,
      start_addr: 1n << 59n,
    });
    assert.equal(c.proc.close(dev), 0);
    assert.equal(c.ioctl(g, 'VFIO_GROUP_UNSET_CONTAINER').ret, 0);
  });
});
