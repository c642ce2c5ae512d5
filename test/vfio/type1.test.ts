import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Errno, type ErrnoName } from '../../src/abi/errno.ts';
import type { Layout } from '../../src/abi/layout.ts';
import {
  VFIO_DMA_MAP_FLAG,
  VFIO_DMA_UNMAP_FLAG,
  VFIO_EXTENSION,
  VFIO_IOMMU_DIRTY_PAGES_FLAG,
  type VfioIoctlName,
  VfioIommuType1DirtyBitmap,
  VfioIommuType1DirtyBitmapGet,
  VfioIommuType1DmaMap,
  VfioIommuType1DmaUnmap,
  vfioIoctlNumber,
} from '../../src/abi/vfio.ts';
import { IntelIommu, intelReservedRegions } from '../../src/drivers/intel/driver.ts';
import { MockIommu } from '../../src/drivers/mock/driver.ts';
import { Kernel } from '../../src/host/kernel.ts';
import type { Process } from '../../src/host/process.ts';
import { Device, DmaFaultError } from '../../src/iommu/device.ts';
import { Group } from '../../src/iommu/group.ts';
import { VfioIommuType1, type VfioIommuType1Options } from '../../src/vfio/type1/type1.ts';
import { VfioClient } from './client.ts';

const PAGE = 0x1000n;
const RW = VFIO_DMA_MAP_FLAG.READ | VFIO_DMA_MAP_FLAG.WRITE;
const PAGE_MASK = ((1n << 64n) - 1n) & ~(PAGE - 1n);

interface Env {
  kernel: Kernel;
  proc: Process;
  t1: VfioIommuType1;
  iommu: IntelIommu;
  group(id: number, iommu?: IntelIommu): { group: Group; dev: Device };
  ioctl(name: VfioIoctlName, arg: bigint): { ret: number; errno: ErrnoName | undefined };
  call<V>(
    name: VfioIoctlName,
    layout: Layout<V>,
    value: Partial<V>,
  ): { ret: number; errno: ErrnoName | undefined; out: V };
  map(iova: bigint, size: bigint, vaddr?: bigint, flags?: number): ErrnoName | undefined;
  unmap(iova: bigint, size: bigint, flags?: number): { errno: ErrnoName | undefined; size: bigint };
  mem(size: bigint): bigint;
  phys(va: bigint): bigint;
}

function env(opts: Partial<VfioIommuType1Options> = {}, proc?: (k: Kernel) => Process): Env {
  const kernel = new Kernel();
  const p = proc ? proc(kernel) : kernel.spawn();
  const t1 = new VfioIommuType1({ memory: kernel.memory, pageSize: PAGE, v2: true, ...opts });
  const iommu = new IntelIommu();
  const e: Env = {
    kernel,
    proc: p,
    t1,
    iommu,
    group(id, unit = iommu) {
      const group = new Group(id);
      const dev = new Device(`dev${id}`, unit, group, kernel.memory, intelReservedRegions());
      return { group, dev };
    },
    ioctl(name, arg) {
      try {
        return { ret: t1.ioctl(p, vfioIoctlNumber('generic', name), arg), errno: undefined };
      } catch (err) {
        if (err instanceof Errno) return { ret: -1, errno: err.code };
        throw err;
      }
    },
    call(name, layout, value) {
      const addr = p.scratch(layout.encode(value));
      const r = e.ioctl(name, addr);
      return { ...r, out: layout.decode(p.mm.read(addr, layout.size)) };
    },
    map(iova, size, vaddr, flags = RW) {
      const va = vaddr ?? e.mem(size);
      return e.call('VFIO_IOMMU_MAP_DMA', VfioIommuType1DmaMap, {
        argsz: 32,
        flags,
        vaddr: va,
        iova,
        size,
      }).errno;
    },
    unmap(iova, size, flags = 0) {
      const r = e.call('VFIO_IOMMU_UNMAP_DMA', VfioIommuType1DmaUnmap, {
        argsz: 24,
        flags,
        iova,
        size,
      });
      return { errno: r.errno, size: r.out.size };
    },
    mem(size) {
      return p.mm.mmap({ length: size, prot: { read: true, write: true } });
    },
    phys(va) {
      return p.mm.resolve(va, PAGE, false)[0]!.phys;
    },
  };
  return e;
}

/** GET_INFO into a buffer pre-filled with 0xAA; returns the whole buffer after the call. */
function getInfo(
  e: Env,
  argsz: number,
  bufLen = 256,
): { errno: ErrnoName | undefined; buf: Uint8Array } {
  const buf = new Uint8Array(bufLen).fill(0xaa);
  new DataView(buf.buffer).setUint32(0, argsz, true);
  const addr = e.proc.scratch(buf);
  const r = e.ioctl('VFIO_IOMMU_GET_INFO', addr);
  return { errno: r.errno, buf: e.proc.mm.read(addr, bufLen) };
}

const u32 = (b: Uint8Array, off: number) =>
  new DataView(b.buffer, b.byteOffset).getUint32(off, true);
const u16 = (b: Uint8Array, off: number) =>
  new DataView(b.buffer, b.byteOffset).getUint16(off, true);
const u64 = (b: Uint8Array, off: number) =>
  new DataView(b.buffer, b.byteOffset).getBigUint64(off, true);

describe('VfioIommuType1 CHECK_EXTENSION', () => {
  it('answers as the type1 driver does', () => {
    const e = env();
    const ext = (n: number) => e.ioctl('VFIO_CHECK_EXTENSION', BigInt(n)).ret;
    assert.equal(ext(VFIO_EXTENSION.TYPE1_IOMMU), 1);
    assert.equal(ext(VFIO_EXTENSION.TYPE1v2_IOMMU), 1);
    assert.equal(ext(VFIO_EXTENSION.TYPE1_NESTING_IOMMU), 1);
    assert.equal(ext(VFIO_EXTENSION.UNMAP_ALL), 1);
    assert.equal(ext(VFIO_EXTENSION.UPDATE_VADDR), 1);
    assert.equal(ext(VFIO_EXTENSION.DMA_CC_IOMMU), 1);
    assert.equal(ext(VFIO_EXTENSION.SPAPR_TCE_IOMMU), 0);
    assert.equal(ext(VFIO_EXTENSION.NOIOMMU_IOMMU), 0);
    assert.equal(e.ioctl('VFIO_IOMMU_ENABLE', 0n).errno, 'ENOTTY');
  });
});

describe('VfioIommuType1 GET_INFO', () => {
  it('argsz < 16 is EINVAL and nothing is written', () => {
    const e = env();
    const r = getInfo(e, 15);
    assert.equal(r.errno, 'EINVAL');
    assert.equal(u32(r.buf, 0), 15);
    assert.equal(r.buf[4], 0xaa);
  });

  it('without a group: MIGRATION + DMA_AVAIL, no IOVA_RANGE; argsz grows, partial copies byte-exact', () => {
    const e = env();
    // 16: only 16 bytes come back; argsz raised to 24 + 32 + 16
    let r = getInfo(e, 16);
    assert.equal(r.errno, undefined);
    assert.equal(u32(r.buf, 0), 72);
    assert.equal(u32(r.buf, 4), 3);
    assert.equal(u64(r.buf, 8), PAGE_MASK);
    assert.deepEqual([...r.buf.subarray(16, 24)], Array(8).fill(0xaa));
    // 20: cap_offset (0) written, pad not
    r = getInfo(e, 20);
    assert.equal(u32(r.buf, 16), 0);
    assert.deepEqual([...r.buf.subarray(20, 24)], Array(4).fill(0xaa));
    // 71: one byte short: no capability written (iommufd compat would write what fits)
    r = getInfo(e, 71);
    assert.equal(u32(r.buf, 0), 72);
    assert.equal(u32(r.buf, 16), 0);
    assert.deepEqual([...r.buf.subarray(24, 72)], Array(48).fill(0xaa));
    // 72: the chain at 24; argsz stays as given
    r = getInfo(e, 72);
    assert.equal(u32(r.buf, 0), 72);
    assert.equal(u32(r.buf, 16), 24);
    assert.equal(u32(r.buf, 20), 0);
    assert.deepEqual([u16(r.buf, 24), u16(r.buf, 26), u32(r.buf, 28)], [2, 1, 56]);
    assert.equal(u32(r.buf, 32), 0);
    assert.equal(u64(r.buf, 40), PAGE);
    assert.equal(u64(r.buf, 48), 1n << 28n);
    assert.deepEqual([u16(r.buf, 56), u16(r.buf, 58), u32(r.buf, 60)], [3, 1, 0]);
    assert.equal(u32(r.buf, 64), 65535);
    assert.deepEqual([...r.buf.subarray(68, 72)], [0, 0, 0, 0]); // padding to 8
    assert.equal(r.buf[72], 0xaa);
    r = getInfo(e, 200);
    assert.equal(u32(r.buf, 0), 200);
    assert.equal(u32(r.buf, 16), 24);
  });

  it('with an intel group: page sizes, IOVA ranges around the MSI window', () => {
    const e = env();
    e.t1.attachGroup(e.group(1).group);
    let r = getInfo(e, 24);
    assert.equal(u32(r.buf, 0), 120);
    assert.equal(u64(r.buf, 8), (1n << 12n) | (1n << 21n) | (1n << 30n));
    r = getInfo(e, 119);
    assert.equal(u32(r.buf, 0), 120);
    assert.equal(u32(r.buf, 16), 0);
    r = getInfo(e, 120);
    assert.equal(u32(r.buf, 16), 24);
    assert.equal(u32(r.buf, 60), 72);
    assert.deepEqual([u16(r.buf, 72), u16(r.buf, 74), u32(r.buf, 76)], [1, 1, 0]);
    assert.equal(u32(r.buf, 80), 2);
    assert.deepEqual(
      [u64(r.buf, 88), u64(r.buf, 96), u64(r.buf, 104), u64(r.buf, 112)],
      [0n, 0xfedf_ffffn, 0xfef0_0000n, (1n << 48n) - 1n],
    );
  });

  it('DMA_AVAIL counts the slots left', () => {
    const e = env({ dmaEntryLimit: 3 });
    assert.equal(e.map(0x10000n, PAGE), undefined);
    const r = getInfo(e, 72);
    assert.equal(u32(r.buf, 64), 2);
  });
});

describe('VfioIommuType1 MAP_DMA errors', () => {
  it('argsz, flags, alignment, wrap, overlap, slots, reserved, bad vaddr', () => {
    const e = env({ dmaEntryLimit: 2 });
    e.t1.attachGroup(e.group(1).group);
    const va = e.mem(0x4000n);
    const m = (
      v: Partial<{ argsz: number; flags: number; vaddr: bigint; iova: bigint; size: bigint }>,
    ) =>
      e.call('VFIO_IOMMU_MAP_DMA', VfioIommuType1DmaMap, {
        argsz: 32,
        flags: RW,
        vaddr: va,
        iova: 0x100000n,
        size: PAGE,
        ...v,
      }).errno;
    assert.equal(m({ argsz: 31 }), 'EINVAL');
    assert.equal(m({ flags: RW | 8 }), 'EINVAL');
    assert.equal(m({ flags: 0 }), 'EINVAL'); // iommufd compat accepts flags 0
    assert.equal(m({ flags: VFIO_DMA_MAP_FLAG.READ | VFIO_DMA_MAP_FLAG.VADDR }), 'EINVAL');
    assert.equal(m({ size: 0n }), 'EINVAL');
    assert.equal(m({ size: 0x800n }), 'EINVAL');
    assert.equal(m({ iova: 0x100800n }), 'EINVAL');
    assert.equal(m({ vaddr: va + 0x800n }), 'EINVAL');
    assert.equal(m({ iova: (1n << 64n) - PAGE, size: 2n * PAGE }), 'EINVAL');
    assert.equal(m({ iova: 0xfee00000n }), 'EINVAL'); // MSI window
    assert.equal(m({ iova: 1n << 48n }), 'EINVAL'); // beyond the 48-bit aperture
    assert.equal(m({ vaddr: 0x1000n }), 'EFAULT'); // nothing mapped there
    assert.equal(e.t1.mappingCount, 0);
    assert.equal(m({}), undefined);
    assert.equal(m({ iova: 0x100000n - PAGE, size: 2n * PAGE }), 'EEXIST');
    assert.equal(m({ iova: 0x200000n }), undefined);
    assert.equal(m({ iova: 0x300000n }), 'ENOSPC');
    // EEXIST is checked before ENOSPC
    assert.equal(m({}), 'EEXIST');
    assert.equal(e.unmap(0x200000n, PAGE).size, PAGE);
    assert.equal(m({ iova: 0x300000n }), undefined);
  });

  it('wrap is EOVERFLOW with the 2025 personality', () => {
    const e = env({ wrapErrno: 'EOVERFLOW' });
    assert.equal(e.map((1n << 64n) - PAGE, 2n * PAGE), 'EOVERFLOW');
    assert.equal(e.unmap((1n << 64n) - PAGE, 2n * PAGE).errno, 'EOVERFLOW');
  });

  it('RLIMIT_MEMLOCK is enforced on the caller mm (ENOMEM) and released on unmap', () => {
    const e = env({}, (k) => k.spawn({ uid: 7, capIpcLock: false, rlimitMemlock: 4n * PAGE }));
    e.t1.attachGroup(e.group(1).group);
    assert.equal(e.map(0x100000n, 8n * PAGE), 'ENOMEM');
    assert.equal(e.proc.counters.lockedVm, 0n);
    assert.equal(e.map(0x100000n, 4n * PAGE), undefined);
    assert.equal(e.proc.counters.lockedVm, 4n);
    assert.equal(e.unmap(0x100000n, 4n * PAGE).size, 4n * PAGE);
    assert.equal(e.proc.counters.lockedVm, 0n);
  });
});

describe('VfioIommuType1 DMA through an intel group', () => {
  it('device writes land in the process memory; pins once per page; released on unmap', () => {
    const e = env();
    const { group, dev } = e.group(1);
    const other = e.group(2);
    e.t1.attachGroup(group);
    e.t1.attachGroup(other.group); // same driver: same domain
    assert.equal(e.t1.iommuDomains.length, 1);
    const va = e.mem(2n * PAGE);
    assert.equal(e.map(0x40000n, 2n * PAGE, va), undefined);
    dev.dmaWrite(
      0x40ff0n,
      new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17]),
    );
    assert.deepEqual(
      [...e.proc.mm.read(va + 0xff0n, 17)],
      [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17],
    );
    assert.deepEqual([...other.dev.dmaRead(0x41000n, 1)], [17]);
    const p0 = e.phys(va);
    const p1 = e.phys(va + PAGE);
    assert.equal(e.kernel.memory.pinCount(p0), 1);
    assert.equal(e.kernel.memory.pinCount(p1), 1);
    assert.equal(e.unmap(0x40000n, 2n * PAGE).size, 2n * PAGE);
    assert.equal(e.kernel.memory.pinCount(p0), 0);
    assert.throws(() => dev.dmaRead(0x40000n, 1), DmaFaultError);
  });

  it('read-only mapping refuses device writes', () => {
    const e = env();
    const { group, dev } = e.group(1);
    e.t1.attachGroup(group);
    assert.equal(e.map(0x40000n, PAGE, undefined, VFIO_DMA_MAP_FLAG.READ), undefined);
    assert.throws(() => dev.dmaWrite(0x40000n, new Uint8Array([1])), DmaFaultError);
  });
});

describe('VfioIommuType1 UNMAP_DMA', () => {
  it('v1: inside a mapping is a 0-byte success; covering its start removes it whole', () => {
    const e = env({ v2: false });
    e.t1.attachGroup(e.group(1).group);
    assert.equal(e.map(0x10000n, 4n * PAGE), undefined);
    assert.deepEqual(e.unmap(0x11000n, PAGE), { errno: undefined, size: 0n });
    assert.equal(e.t1.mappingCount, 1);
    assert.deepEqual(e.unmap(0x10000n, PAGE), { errno: undefined, size: 4n * PAGE });
    assert.equal(e.t1.mappingCount, 0);
    // a range starting inside one mapping stops there even if it covers the next one
    assert.equal(e.map(0x10000n, 2n * PAGE), undefined);
    assert.equal(e.map(0x20000n, PAGE), undefined);
    assert.deepEqual(e.unmap(0x11000n, 0x10000n), { errno: undefined, size: 0n });
    assert.equal(e.t1.mappingCount, 2);
    assert.deepEqual(e.unmap(0x30000n, PAGE), { errno: undefined, size: 0n });
  });

  it('v2: bisecting either end is EINVAL, nothing unmapped, nothing written back', () => {
    const e = env({ v2: true });
    e.t1.attachGroup(e.group(1).group);
    assert.equal(e.map(0x10000n, 4n * PAGE), undefined);
    assert.deepEqual(e.unmap(0x11000n, PAGE), { errno: 'EINVAL', size: PAGE });
    assert.deepEqual(e.unmap(0x10000n, PAGE), { errno: 'EINVAL', size: PAGE });
    assert.deepEqual(e.unmap(0x8000n, 0x9000n), { errno: 'EINVAL', size: 0x9000n });
    assert.equal(e.t1.mappingCount, 1);
    assert.deepEqual(e.unmap(0x30000n, PAGE), { errno: undefined, size: 0n });
    assert.equal(e.map(0x20000n, PAGE), undefined);
    assert.deepEqual(e.unmap(0n, 0x100000n), { errno: undefined, size: 5n * PAGE });
  });

  it('argument errors', () => {
    const e = env();
    const u = (v: Partial<{ argsz: number; flags: number; iova: bigint; size: bigint }>) =>
      e.call('VFIO_IOMMU_UNMAP_DMA', VfioIommuType1DmaUnmap, {
        argsz: 24,
        flags: 0,
        iova: 0x10000n,
        size: PAGE,
        ...v,
      }).errno;
    assert.equal(u({ argsz: 23 }), 'EINVAL');
    assert.equal(u({ flags: 8 }), 'EINVAL');
    assert.equal(u({ iova: 0x10800n }), 'EINVAL');
    assert.equal(u({ size: 0n }), 'EINVAL');
    assert.equal(u({ size: 0x800n }), 'EINVAL');
    assert.equal(u({ flags: VFIO_DMA_UNMAP_FLAG.ALL }), 'EINVAL');
    assert.equal(u({ flags: VFIO_DMA_UNMAP_FLAG.ALL, iova: 0n }), 'EINVAL');
    assert.equal(
      u({
        flags: VFIO_DMA_UNMAP_FLAG.ALL | VFIO_DMA_UNMAP_FLAG.GET_DIRTY_BITMAP,
        iova: 0n,
        size: 0n,
      }),
      'EINVAL',
    );
    assert.equal(u({ flags: VFIO_DMA_UNMAP_FLAG.GET_DIRTY_BITMAP, argsz: 47 }), 'EINVAL');
  });

  it('UNMAP_ALL removes everything and reports the total', () => {
    const e = env();
    e.t1.attachGroup(e.group(1).group);
    assert.equal(e.map(0x10000n, PAGE), undefined);
    assert.equal(e.map(0x7f000000_0000n - PAGE * 16n, 2n * PAGE), undefined);
    assert.deepEqual(e.unmap(0n, 0n, VFIO_DMA_UNMAP_FLAG.ALL), {
      errno: undefined,
      size: 3n * PAGE,
    });
    assert.equal(e.t1.mappingCount, 0);
    assert.equal(e.t1.dmaAvail, 65535);
  });
});

describe('VfioIommuType1 groups', () => {
  it('maps without a domain pin nothing; attach replays and pins; last detach drops all', () => {
    const e = env();
    const va = e.mem(PAGE);
    e.proc.mm.write(va, new Uint8Array([0x5a]));
    assert.equal(e.map(0x80000n, PAGE, va), undefined);
    assert.equal(e.kernel.memory.pinCount(e.phys(va)), 0);
    const a = e.group(1);
    e.t1.attachGroup(a.group);
    assert.equal(e.kernel.memory.pinCount(e.phys(va)), 1);
    assert.deepEqual([...a.dev.dmaRead(0x80000n, 1)], [0x5a]);
    // another IOMMU unit: a second domain, mappings replayed, still one pin
    const b = e.group(2, new IntelIommu());
    e.t1.attachGroup(b.group);
    assert.equal(e.t1.iommuDomains.length, 2);
    assert.deepEqual([...b.dev.dmaRead(0x80000n, 1)], [0x5a]);
    assert.equal(e.kernel.memory.pinCount(e.phys(va)), 1);
    assert.throws(
      () => e.t1.attachGroup(a.group),
      (x: unknown) => x instanceof Errno && x.code === 'EINVAL',
    );
    e.t1.detachGroup(b.group);
    assert.equal(b.group.domain, undefined);
    assert.equal(e.t1.mappingCount, 1);
    e.t1.detachGroup(a.group);
    assert.equal(e.t1.mappingCount, 0);
    assert.equal(e.kernel.memory.pinCount(e.phys(va)), 0);
    assert.deepEqual(e.t1.validIovas, [{ start: 0n, last: (1n << 64n) - 1n }]);
    // reattach after the last detach: the list narrows again
    e.t1.attachGroup(a.group);
    assert.equal(e.t1.validIovas.length, 2);
  });

  it('attach refuses a group whose reserved region or aperture conflicts with a mapping', () => {
    const e = env();
    assert.equal(e.map(0xfee00000n, PAGE), undefined); // allowed: no group yet
    const a = e.group(1);
    assert.throws(
      () => e.t1.attachGroup(a.group),
      (x: unknown) => x instanceof Errno && x.code === 'EINVAL',
    );
    assert.equal(a.group.domain, undefined);
    assert.deepEqual(e.t1.validIovas, []);
    assert.equal(e.unmap(0xfee00000n, PAGE).size, PAGE);
    assert.equal(e.map(1n << 40n, PAGE), undefined);
    const narrow = e.group(2, new IntelIommu({ addressWidth: 39 }));
    assert.throws(
      () => e.t1.attachGroup(narrow.group),
      (x: unknown) => x instanceof Errno && x.code === 'EINVAL',
    );
    assert.throws(
      () => e.t1.attachGroup(new Group(9)),
      (x: unknown) => x instanceof Errno && x.code === 'EIO',
    );
  });
});

describe('VfioIommuType1 VADDR', () => {
  it('invalidate, attach blocked, re-set vaddr, double invalidate rolls back', () => {
    const e = env();
    e.t1.attachGroup(e.group(1).group);
    assert.equal(e.map(0x10000n, PAGE), undefined);
    assert.equal(e.map(0x20000n, PAGE), undefined);
    assert.deepEqual(e.unmap(0x10000n, PAGE, VFIO_DMA_UNMAP_FLAG.VADDR), {
      errno: undefined,
      size: PAGE,
    });
    assert.throws(
      () => e.t1.attachGroup(e.group(2).group),
      (x: unknown) => x instanceof Errno && x.code === 'EBUSY',
    );
    // range covering an invalid one and a valid one: EINVAL, the valid one stays valid
    assert.equal(e.unmap(0n, 0x100000n, VFIO_DMA_UNMAP_FLAG.VADDR).errno, 'EINVAL');
    const V = VFIO_DMA_MAP_FLAG.VADDR;
    assert.equal(e.map(0x30000n, PAGE, undefined, V), 'ENOENT');
    assert.equal(e.map(0x20000n, PAGE, undefined, V), 'EINVAL'); // not invalidated
    assert.equal(e.map(0x10000n, 2n * PAGE, undefined, V), 'EINVAL'); // not the exact range
    assert.equal(e.map(0x10000n, PAGE, undefined, V), undefined);
    e.t1.attachGroup(e.group(3).group);
  });
});

describe('VfioIommuType1 DIRTY_PAGES', () => {
  const dirty = (e: Env, flags: number, argsz = 8) =>
    e.call('VFIO_IOMMU_DIRTY_PAGES', VfioIommuType1DirtyBitmap, { argsz, flags }).errno;

  it('v1 is EACCES; flag rules', () => {
    assert.equal(dirty(env({ v2: false }), VFIO_IOMMU_DIRTY_PAGES_FLAG.START), 'EACCES');
    const e = env();
    assert.equal(dirty(e, VFIO_IOMMU_DIRTY_PAGES_FLAG.START, 7), 'EINVAL');
    assert.equal(dirty(e, 8), 'EINVAL');
    assert.equal(
      dirty(e, VFIO_IOMMU_DIRTY_PAGES_FLAG.START | VFIO_IOMMU_DIRTY_PAGES_FLAG.STOP),
      'EINVAL',
    );
    assert.equal(dirty(e, VFIO_IOMMU_DIRTY_PAGES_FLAG.STOP), undefined);
    assert.equal(dirty(e, VFIO_IOMMU_DIRTY_PAGES_FLAG.START), undefined);
    assert.equal(dirty(e, VFIO_IOMMU_DIRTY_PAGES_FLAG.START), undefined);
  });

  it('GET_BITMAP reports every page of an IOMMU-mapped mapping dirty', () => {
    const e = env();
    e.t1.attachGroup(e.group(1).group);
    assert.equal(e.map(0x10000n, 3n * PAGE), undefined);
    assert.equal(e.map(0x20000n, PAGE), undefined);
    const bm = e.mem(PAGE);
    e.proc.mm.write(bm, new Uint8Array(16).fill(0xff));
    const get = (iova: bigint, size: bigint, pgsize = PAGE) => {
      const head = VfioIommuType1DirtyBitmap.encode({
        argsz: 48,
        flags: VFIO_IOMMU_DIRTY_PAGES_FLAG.GET_BITMAP,
      });
      const body = VfioIommuType1DirtyBitmapGet.encode({
        iova,
        size,
        bitmap_pgsize: pgsize,
        bitmap_size: 8n,
        bitmap_data: bm,
      });
      const buf = new Uint8Array(48);
      buf.set(head);
      buf.set(body, 8);
      return e.ioctl('VFIO_IOMMU_DIRTY_PAGES', e.proc.scratch(buf)).errno;
    };
    assert.equal(get(0x10000n, 0x20000n), 'EINVAL'); // not started
    assert.equal(dirty(e, VFIO_IOMMU_DIRTY_PAGES_FLAG.START), undefined);
    assert.equal(get(0x10000n, 0x20000n, 0x2000n), 'EINVAL');
    assert.equal(get(0x11000n, 0x1000n), 'EINVAL'); // bisects
    assert.equal(get(0x10000n, 0x20000n), undefined);
    const w = e.proc.mm.read(bm, 16);
    // bits 0..2 (first mapping) and 16 (second) set, the rest of the covered words zero
    assert.equal(new DataView(w.buffer).getBigUint64(0, true), 0b111n | (1n << 16n));
    assert.equal(w[8], 0xff); // beyond the covered word: untouched
    assert.equal(dirty(e, VFIO_IOMMU_DIRTY_PAGES_FLAG.STOP), undefined);
    assert.equal(get(0x10000n, 0x20000n), 'EINVAL');
  });
});

describe('VFIO_DMA_CC_IOMMU: a domain without the enforce op does not enforce', () => {
  it('the selftest mock domain (no enforce_cache_coherency op): 0, alone or beside a VT-d domain', () => {
    const cc = (e: Env) => e.ioctl('VFIO_CHECK_EXTENSION', BigInt(VFIO_EXTENSION.DMA_CC_IOMMU)).ret;
    /** A selftest mock device (a group of its own), as MOCK_DOMAIN creates one. */
    const mock = (e: Env) => new MockIommu().createDevice(e.kernel.memory, 0).group;
    const alone = env();
    alone.t1.attachGroup(mock(alone));
    assert.equal(cc(alone), 0);
    const mixed = env();
    mixed.t1.attachGroup(mixed.group(1).group);
    assert.equal(cc(mixed), 1, 'the VT-d domain enforces (snoop control)');
    mixed.t1.attachGroup(mock(mixed));
    assert.equal(mixed.t1.iommuDomains.length, 2);
    assert.equal(cc(mixed), 0, 'every domain must enforce');
  });
});

describe('VFIO_DMA_CC_IOMMU follows the VT-d unit', () => {
  /** CHECK_EXTENSION(DMA_CC) on `host` at each step: SET_CONTAINER, SET_IOMMU, GET_DEVICE_FD. */
  function ccSteps(host: 'refguest' | 'x86', backend: 'type1' | 'iommufd'): (number | string)[] {
    const c = new VfioClient({ host, personality: { vfioContainer: backend } });
    const container = c.open('/dev/vfio/vfio').ret;
    const cc = () => {
      const r = c.ioctl(container, 'VFIO_CHECK_EXTENSION', BigInt(VFIO_EXTENSION.DMA_CC_IOMMU));
      return r.errno ?? r.ret;
    };
    const steps = [cc()];
    const group = [...c.kernel.vfioGroups.keys()][0]!;
    const fd = c.open(`/dev/vfio/${group}`).ret;
    assert.equal(c.setContainer(fd, container).errno, undefined, host);
    steps.push(cc());
    const type1v2 = BigInt(VFIO_EXTENSION.TYPE1v2_IOMMU);
    assert.equal(c.ioctl(container, 'VFIO_SET_IOMMU', type1v2).errno, undefined);
    steps.push(cc());
    const dev = c.kernel.vfioGroups.get(group)!.devices[0]!.name;
    assert.ok(c.getDeviceFd(fd, dev).ret >= 0, `${host} ${backend}: GET_DEVICE_FD`);
    steps.push(cc());
    return steps;
  }

  it('legacy type1: 0 on the reference guest (QEMU VT-d has no snoop control), 1 with snoop control', () => {
    // 0 before SET_IOMMU (no backend instance); the domain is made at SET_IOMMU
    assert.deepEqual(ccSteps('refguest', 'type1'), [0, 0, 0, 0]);
    assert.deepEqual(ccSteps('x86', 'type1'), [0, 0, 1, 1]);
  });

  it('iommufd compat: the HWPT made for a snoop-control device enforces coherency', () => {
    // ENODEV without a compat IOAS; the device is attached (its HWPT made) at GET_DEVICE_FD
    assert.deepEqual(ccSteps('refguest', 'iommufd'), ['ENODEV', 1, 1, 0]);
    assert.deepEqual(ccSteps('x86', 'iommufd'), ['ENODEV', 1, 1, 1]);
  });
});
