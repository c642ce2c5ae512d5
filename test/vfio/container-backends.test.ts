/**
 * The two /dev/vfio/vfio implementations side by side: every difference
 * docs/vfio-containers.md lists, as one call run against the legacy type1
 * container and against iommufd's compat, with the answer expected from
 * each. Plus iommufd's RLIMIT_MODE default for /dev/vfio/vfio (per-mm,
 * iommufd_fops_open).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  IOMMU_OPTION_ID,
  IOMMU_OPTION_OP,
  IommuOption,
  iommufdCmdNumber,
} from '../../src/abi/iommufd.ts';
import {
  VFIO_DMA_MAP_FLAG,
  VFIO_DMA_UNMAP_FLAG,
  VFIO_EXTENSION,
  VFIO_IOMMU_DIRTY_PAGES_FLAG,
  VfioIommuType1DirtyBitmap,
  VfioIommuType1DmaUnmap,
  vfioIoctlNumber,
} from '../../src/abi/vfio.ts';
import type { VfioContainerBackend } from '../../src/vfio/container.ts';
import { capChain, VfioClient } from './client.ts';

const NVME = '0000:02:00.0'; // group 12
const PAGE = 0x1000n;
const MIB = 1n << 20n;
const IOVA = 0x100_0000n;

/** A container of one backend; `type` SET_IOMMU'd with group 12, its device opened unless `device` is false. */
interface Env {
  readonly c: VfioClient;
  readonly fd: number;
  readonly group: number;
  /** RW memory of `size` bytes mapped at `iova`; the MAP answer's errno. */
  map(iova: bigint, size: bigint, vaddr?: bigint, flags?: number): string | undefined;
  unmap(iova: bigint, size: bigint, flags?: number): { ret: number; errno?: string; size: bigint };
  /** GET_INFO into a 0xAA-filled buffer of `len` bytes; the buffer after the call. */
  info(argsz: number, len?: number): Uint8Array;
}

interface Setup {
  /** SET_IOMMU type (default TYPE1v2); 0 = no group at all. */
  type?: number;
  device?: boolean;
}

function env(backend: VfioContainerBackend, s: Setup = {}): Env {
  const c = new VfioClient(
    { personality: { vfioContainer: backend } },
    { capIpcLock: false, rlimitMemlock: 1n << 30n },
  );
  const fd = c.open('/dev/vfio/vfio').ret;
  const type = s.type ?? VFIO_EXTENSION.TYPE1v2_IOMMU;
  let group = -1;
  if (type !== 0) {
    group = c.open('/dev/vfio/12').ret;
    assert.equal(c.setContainer(group, fd).ret, 0);
    assert.equal(c.ioctl(fd, 'VFIO_SET_IOMMU', BigInt(type)).ret, 0);
    if (s.device !== false) assert.ok(c.getDeviceFd(group, NVME).ret >= 0);
  }
  return {
    c,
    fd,
    group,
    map: (iova, size, vaddr, flags = 3) =>
      c.mapDma(fd, vaddr ?? c.mem(size), iova, size, flags).errno,
    unmap: (iova, size, flags = 0) => {
      const r = c.proc.call(
        fd,
        vfioIoctlNumber('generic', 'VFIO_IOMMU_UNMAP_DMA'),
        VfioIommuType1DmaUnmap,
        {
          argsz: 24,
          flags,
          iova,
          size,
        },
      );
      return { ret: r.ret, errno: r.errno, size: r.out.size };
    },
    info: (argsz, len = 256) => {
      const buf = new Uint8Array(len).fill(0xaa);
      new DataView(buf.buffer).setUint32(0, argsz, true);
      const addr = c.proc.scratch(buf);
      assert.equal(c.ioctl(fd, 'VFIO_IOMMU_GET_INFO', addr).ret, 0);
      return c.proc.mm.read(addr, len);
    },
  };
}

const u32 = (b: Uint8Array, off: number) =>
  new DataView(b.buffer, b.byteOffset).getUint32(off, true);
const u16 = (b: Uint8Array, off: number) =>
  new DataView(b.buffer, b.byteOffset).getUint16(off, true);

interface Row {
  /** The docs/vfio-containers.md row. */
  readonly what: string;
  readonly setup?: Setup;
  /** The observed answer (compared with deepEqual). */
  run(e: Env): unknown;
  readonly type1: unknown;
  readonly iommufd: unknown;
}

const ROWS: Row[] = [
  {
    what: 'GET_INFO when the capability chain does not fit (argsz 40): what lands at offset 24',
    run: (e) => u16(e.info(40), 24),
    type1: 0xaaaa, // nothing of the chain (MIGRATION is 32 bytes)
    iommufd: 3, // DMA_AVAIL (12 bytes) fits
  },
  {
    what: 'GET_INFO argsz when the chain fits',
    run: (e) => u32(e.info(4096, 4096), 0),
    type1: 4096,
    iommufd: 88, // 24 + DMA_AVAIL 16 + IOVA_RANGE 16 + 2 ranges (around the MSI window)
  },
  {
    what: 'GET_INFO capabilities (ids in chain order) and DMA_AVAIL',
    run: (e) => {
      const b = e.info(4096, 4096);
      const caps = capChain(b);
      return { ids: [...caps.keys()], avail: u32(b, caps.get(3)! + 8) };
    },
    type1: { ids: [2, 3, 1], avail: 65535 },
    iommufd: { ids: [3, 1], avail: 0xffff_ffff },
  },
  {
    what: 'MAP_DMA with flags 0 (no READ/WRITE)',
    run: (e) => e.map(IOVA, PAGE, undefined, 0),
    type1: 'EINVAL',
    iommufd: undefined,
  },
  {
    what: 'MAP_DMA VADDR (live update) of an unmapped iova',
    run: (e) => e.map(IOVA, PAGE, undefined, VFIO_DMA_MAP_FLAG.VADDR),
    type1: 'ENOENT', // supported: nothing to update there
    iommufd: 'EINVAL',
  },
  {
    what: 'MAP_DMA alignment before any device is opened (iova and vaddr 2 KiB off a page)',
    setup: { device: false },
    run: (e) => e.map(IOVA + 0x800n, PAGE, e.c.mem(2n * PAGE) + 0x800n),
    type1: 'EINVAL', // smallest IOMMU page
    iommufd: undefined, // iova_alignment is 1 until a domain exists
  },
  {
    what: 'UNMAP_DMA inside a mapping, TYPE1',
    setup: { type: VFIO_EXTENSION.TYPE1_IOMMU },
    run: (e) => {
      assert.equal(e.map(IOVA, 4n * PAGE), undefined);
      return e.unmap(IOVA + PAGE, PAGE);
    },
    type1: { ret: 0, errno: undefined, size: 0n },
    iommufd: { ret: 0, errno: undefined, size: PAGE }, // the area is cut exactly
  },
  {
    what: 'UNMAP_DMA inside a mapping, TYPE1v2 (and `size` on error)',
    run: (e) => {
      assert.equal(e.map(IOVA, 4n * PAGE), undefined);
      return e.unmap(IOVA + PAGE, PAGE);
    },
    type1: { ret: -1, errno: 'EINVAL', size: PAGE }, // nothing written back
    iommufd: { ret: -1, errno: 'ENOENT', size: 0n }, // written back: 0 so far
  },
  {
    what: 'UNMAP_DMA of an empty range',
    run: (e) => e.unmap(IOVA, PAGE),
    type1: { ret: 0, errno: undefined, size: 0n },
    iommufd: { ret: 0, errno: undefined, size: 0n },
  },
  {
    what: 'UNMAP_DMA VADDR flag',
    run: (e) => {
      assert.equal(e.map(IOVA, PAGE), undefined);
      return e.unmap(IOVA, PAGE, VFIO_DMA_UNMAP_FLAG.VADDR).errno;
    },
    type1: undefined,
    iommufd: 'EINVAL',
  },
  {
    what: 'VFIO_IOMMU_DIRTY_PAGES START, TYPE1v2 and TYPE1',
    run: (e) => {
      const start = (x: Env) =>
        x.c.proc.call(
          x.fd,
          vfioIoctlNumber('generic', 'VFIO_IOMMU_DIRTY_PAGES'),
          VfioIommuType1DirtyBitmap,
          {
            argsz: 8,
            flags: VFIO_IOMMU_DIRTY_PAGES_FLAG.START,
          },
        ).errno;
      return [start(e), start(env(backendOf(e), { type: VFIO_EXTENSION.TYPE1_IOMMU }))];
    },
    type1: [undefined, 'EACCES'],
    iommufd: ['ENOTTY', 'ENOTTY'],
  },
  {
    what: 'CHECK_EXTENSION UPDATE_VADDR / TYPE1_NESTING',
    run: (e) =>
      [VFIO_EXTENSION.UPDATE_VADDR, VFIO_EXTENSION.TYPE1_NESTING_IOMMU].map(
        (x) => e.c.ioctl(e.fd, 'VFIO_CHECK_EXTENSION', BigInt(x)).ret,
      ),
    // TYPE1_NESTING is 0 since v6.13 (personality type1Nesting)
    type1: [1, 0],
    iommufd: [0, 0],
  },
  {
    what: 'CHECK_EXTENSION DMA_CC before any group (no SET_IOMMU)',
    setup: { type: 0 },
    run: (e) =>
      e.c.ioctl(e.fd, 'VFIO_CHECK_EXTENSION', BigInt(VFIO_EXTENSION.DMA_CC_IOMMU)).errno ?? 'ok',
    type1: 'ok',
    iommufd: 'ENODEV',
  },
  {
    what: 'pinned-page accounting: the same 4 pages mapped twice count twice in both (locked_vm pages)',
    run: (e) => {
      const va = e.c.mem(4n * PAGE);
      assert.equal(e.map(IOVA, 4n * PAGE, va), undefined);
      assert.equal(e.map(IOVA + MIB, 4n * PAGE, va), undefined);
      return e.c.proc.counters.lockedVm;
    },
    type1: 8n, // one charge per vfio_dma
    iommufd: 8n, // one charge per MAP's page set
  },
  {
    what: 'device DMA after SET_IOMMU + MAP, before GET_DEVICE_FD',
    setup: { device: false },
    run: (e) => {
      assert.equal(e.map(IOVA, PAGE), undefined);
      try {
        e.c.kernel.host.devices.get(NVME)!.device.dmaWrite(IOVA, Uint8Array.of(1));
        return 'reaches memory';
      } catch {
        return 'faults';
      }
    },
    type1: 'reaches memory',
    iommufd: 'faults',
  },
];

/** Which backend an env runs (for rows that build a second env). */
function backendOf(e: Env): VfioContainerBackend {
  return e.c.kernel.personality.vfioContainer;
}

describe('docs/vfio-containers.md: each difference, both backends', () => {
  for (const row of ROWS) {
    for (const backend of ['type1', 'iommufd'] as const) {
      it(`${backend}: ${row.what}`, () => {
        const e = env(backend, row.setup);
        assert.deepEqual(row.run(e), row[backend]);
      });
    }
  }
});

describe('RLIMIT_MODE of an iommufd-served /dev/vfio/vfio', () => {
  const rlimitMode = (c: VfioClient, fd: number) =>
    c.proc.call(fd, iommufdCmdNumber('generic', 'IOMMU_OPTION'), IommuOption, {
      option_id: IOMMU_OPTION_ID.RLIMIT_MODE,
      op: IOMMU_OPTION_OP.GET,
    }).out.val64;

  it('defaults to 1 (per-mm) on /dev/vfio/vfio and 0 (per-user) on /dev/iommu; compat MAP charges accordingly', () => {
    for (const [path, mode] of [
      ['/dev/vfio/vfio', 1n],
      ['/dev/iommu', 0n],
    ] as const) {
      const c = new VfioClient({}, { uid: 42, capIpcLock: false, rlimitMemlock: 1n << 30n });
      const fd = c.open(path).ret;
      assert.equal(rlimitMode(c, fd), mode, path);
      const g = c.open('/dev/vfio/12').ret;
      assert.equal(c.setContainer(g, fd).ret, 0);
      assert.equal(c.ioctl(fd, 'VFIO_SET_IOMMU', 3n).ret, 0);
      assert.ok(c.getDeviceFd(g, NVME).ret >= 0);
      assert.equal(c.mapDma(fd, c.mem(4n * PAGE), IOVA, 4n * PAGE).ret, 0);
      const perMm = c.proc.counters.lockedVm;
      const perUser = c.kernel.userAccount(42).lockedVm;
      assert.deepEqual([perMm, perUser], mode === 1n ? [4n, 0n] : [0n, 4n], path);
    }
  });
});
