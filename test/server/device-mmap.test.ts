/**
 * The engine's device-mapping operations (src/server/device-mmap.ts,
 * docs/device-mmap.md) on a simulated process: MMAP's checks and its
 * description of the mapping, MMIO and MMIO_FAULT against the device model,
 * the zap count in every answer, MUNMAP, fork inheritance, and GUP refusing
 * the mapping (the compat container's MAP_DMA is EFAULT, the legacy one's
 * peer-to-peer).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { VFIO_DMA_MAP_FLAG, VfioIommuType1DmaMap, vfioIoctlNumber } from '../../src/abi/vfio.ts';
import { HELLO_KIND, OP } from '../../src/server/protocol.ts';
import { DMA_ENGINE_ID, DMA_REG } from '../../src/vfio/pci/dma-engine.ts';
import { memStore } from '../support.ts';
import { cstr, type EngineFixture, engineFixture, type TestClient } from './fixture.ts';

const SET_CONTAINER = vfioIoctlNumber('generic', 'VFIO_GROUP_SET_CONTAINER');
const SET_IOMMU = vfioIoctlNumber('generic', 'VFIO_SET_IOMMU');
const GET_DEVICE_FD = vfioIoctlNumber('generic', 'VFIO_GROUP_GET_DEVICE_FD');
const MAP_DMA = vfioIoctlNumber('generic', 'VFIO_IOMMU_MAP_DMA');
const CONFIG = 0x700_0000_0000n;
const MAP_SHARED = 1;
const MAP_PRIVATE = 2;
const PAGE = 0x1000n;

/**
 * Pid 100 with the container (iommufd's compat one, or legacy type1) at fd
 * 3, group 0 at fd 4 and its device (the DMA engine) at fd 5.
 */
function deviceClient(vfioContainer: 'iommufd' | 'type1' = 'iommufd') {
  const f = engineFixture({ sharedMemory: memStore, kernel: { personality: { vfioContainer } } });
  const c = f.client(100);
  c.open(3, '/dev/vfio/vfio');
  c.open(4, '/dev/vfio/0');
  assert.equal(
    c.req(OP.IOCTL, [4, SET_CONTAINER, c.scratch(Uint8Array.of(3, 0, 0, 0)), -1]).ret,
    0,
  );
  assert.equal(c.req(OP.IOCTL, [3, SET_IOMMU, 3, -1]).ret, 0);
  const dev = c.req(OP.IOCTL, [4, GET_DEVICE_FD, c.scratch(cstr('0000:00:02.0')), 5]);
  assert.equal(dev.newfd, 5);
  return { f, c };
}

/** PWRITE of the Command register with Memory decode on or off; the raw answer (with zaps). */
function decode(f: EngineFixture, c: TestClient, on: boolean) {
  const at = c.scratch(Uint8Array.of(on ? 6 : 4, 0));
  return f.engine.handle(c.conn, {
    op: OP.PWRITE,
    pid: c.pid,
    tid: c.pid,
    args: [5n, at, 2n, CONFIG + 4n],
  });
}

const u32 = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset).getUint32(0, true);

describe('engine: device mappings', () => {
  it('MMAP checks like vfio_pci_core_mmap and describes the mapping', () => {
    const { c } = deviceClient();
    // iommufd's compat container is /dev/iommu: offset 0 is no region of it
    assert.equal(c.req(OP.MMAP, [3, 0, PAGE, MAP_SHARED, 3, 0]).errno, 'ENXIO');
    const legacy = deviceClient('type1').c;
    assert.equal(legacy.req(OP.MMAP, [3, 0, PAGE, MAP_SHARED, 3, 0]).errno, 'ENODEV', 'no mmap');
    assert.equal(c.req(OP.MMAP, [99, 0, PAGE, MAP_SHARED, 3, 0]).errno, 'EBADF');
    assert.equal(c.req(OP.MMAP, [5, 0, PAGE, MAP_PRIVATE, 3, 0]).errno, 'EINVAL');
    assert.equal(c.req(OP.MMAP, [5, CONFIG, PAGE, MAP_SHARED, 3, 0]).errno, 'EINVAL');
    const a = c.req(OP.MMAP, [5, 0, 0x80000, MAP_SHARED, 3, 0]);
    assert.equal(a.ret, 42, 'the shared store');
    const v = new DataView(a.payload.buffer, a.payload.byteOffset);
    assert.equal(v.getBigUint64(0, true), 0n, 'file offset');
    assert.equal(v.getUint32(12, true), 1, 'one register range');
    assert.deepEqual([v.getBigUint64(16, true), v.getBigUint64(24, true)], [0n, PAGE]);
  });

  it('MMIO reaches the device, EIO with decode off, EFAULT outside, EINVAL for odd sizes; answers carry zaps', () => {
    const { f, c } = deviceClient();
    const va = c.mem(0x80000n);
    assert.equal(c.req(OP.MMAP, [5, 0, 0x80000, MAP_SHARED, 3, va]).ret, 0);
    decode(f, c, false);
    assert.equal(c.req(OP.MMIO, [va, 4, 0, 0]).errno, 'EIO');
    assert.equal(c.req(OP.MMIO_FAULT, [va + 0x40000n]).errno, 'EIO');
    decode(f, c, true);
    assert.equal(u32(c.req(OP.MMIO, [va + BigInt(DMA_REG.ID), 4, 0, 0]).payload), DMA_ENGINE_ID);
    assert.equal(c.req(OP.MMIO, [va + BigInt(DMA_REG.LIVENESS), 4, 1, 0x0f]).ret, 0);
    assert.equal(u32(c.req(OP.MMIO, [va + BigInt(DMA_REG.LIVENESS), 4, 0, 0]).payload), 0xfffffff0);
    assert.equal(c.req(OP.MMIO, [va, 3, 0, 0]).errno, 'EINVAL');
    assert.equal(c.req(OP.MMIO, [va + 0x80000n, 4, 0, 0]).errno, 'EFAULT');
    assert.equal(c.req(OP.MMIO, [va + 0x7fffen, 4, 0, 0]).errno, 'EFAULT', 'past the end');
    assert.equal(c.req(OP.MMIO_FAULT, [va + 0x40000n]).ret, 0);
    assert.equal(decode(f, c, false).zaps, 2, 'decode off zaps the mappings (the second time)');
    assert.equal(decode(f, c, true).zaps, 2);
    c.req(OP.MUNMAP, [va + 0x1000n, 0x7f000]);
    assert.equal(c.req(OP.MMIO_FAULT, [va + 0x40000n]).errno, 'EFAULT');
    assert.equal(u32(c.req(OP.MMIO, [va, 4, 0, 0]).payload), DMA_ENGINE_ID);
  });

  it('a fork child inherits the mapping; GUP refuses it (compat MAP_DMA EFAULT)', () => {
    const { f, c } = deviceClient();
    const va = c.mem(0x80000n);
    c.req(OP.MMAP, [5, 0, 0x80000, MAP_SHARED, 3, va]);
    decode(f, c, true);
    const token = BigInt(c.req(OP.FORK_BEGIN).ret);
    c.req(OP.FORK_END, [token, 101]);
    const child = f.client(101, HELLO_KIND.FORK_CHILD, token);
    assert.equal(u32(child.req(OP.MMIO, [va, 4, 0, 0]).payload), DMA_ENGINE_ID);
    const map = (vaddr: bigint, iova: bigint) =>
      c.call(3, MAP_DMA, VfioIommuType1DmaMap, {
        argsz: VfioIommuType1DmaMap.size,
        flags: VFIO_DMA_MAP_FLAG.READ | VFIO_DMA_MAP_FLAG.WRITE,
        vaddr,
        iova,
        size: PAGE,
      });
    assert.equal(map(va + 0x40000n, 0x100000n).errno, 'EFAULT');
    assert.equal(map(c.mem(PAGE), 0x100000n).ret, 0);
  });

  it('a mapping alone (every fd closed) still makes FORK_BEGIN snapshot: the child inherits it', () => {
    const { f, c } = deviceClient();
    const va = c.mem(0x80000n);
    c.req(OP.MMAP, [5, 0, 0x80000, MAP_SHARED, 3, va]);
    decode(f, c, true);
    for (const fd of [5, 4, 3]) assert.equal(c.req(OP.CLOSE, [fd]).ret, 0);
    const token = BigInt(c.req(OP.FORK_BEGIN).ret);
    assert.ok(token > 0n);
    c.req(OP.FORK_END, [token, 102]);
    const child = f.client(102, HELLO_KIND.FORK_CHILD, token);
    assert.equal(u32(child.req(OP.MMIO, [va, 4, 0, 0]).payload), DMA_ENGINE_ID);
  });

  it('the legacy type1 container maps the mapping peer-to-peer', () => {
    const { c } = deviceClient('type1');
    const va = c.mem(0x80000n);
    c.req(OP.MMAP, [5, 0, 0x80000, MAP_SHARED, 3, va]);
    const r = c.call(3, MAP_DMA, VfioIommuType1DmaMap, {
      argsz: VfioIommuType1DmaMap.size,
      flags: VFIO_DMA_MAP_FLAG.READ | VFIO_DMA_MAP_FLAG.WRITE,
      vaddr: va + 0x40000n,
      iova: 0x100000n,
      size: PAGE,
    });
    assert.equal(r.ret, 0, r.errno);
  });
});
