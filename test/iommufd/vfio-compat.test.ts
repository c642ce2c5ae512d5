/**
 * VFIO container compatibility on /dev/iommu (vfio-container.md §8, the
 * kernel's vfio_compat.c), through the syscall surface: the selftest's
 * expectations of selftest-mock.md §3.1 (fixture `iommufd`) and §3.6
 * (fixture `vfio_compat_mock_domain`, TYPE1 and TYPE1v2), then every errno
 * and write-back rule one by one, and a model-based check of TYPE1 cutting.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import type { ErrnoName } from '../../src/abi/errno.ts';
import { ioc } from '../../src/abi/ioctl.ts';
import { IOMMU_OPTION_ID, IOMMU_OPTION_OP, IOMMU_VFIO_IOAS_OP } from '../../src/abi/iommufd.ts';
import {
  MOCK_APERTURE_LAST,
  MOCK_APERTURE_START,
  MOCK_FLAGS_DEVICE,
} from '../../src/abi/iommufd-test.ts';
import {
  VFIO_DMA_MAP_FLAG,
  VFIO_DMA_UNMAP_FLAG,
  VFIO_EXTENSION,
  VfioInfoCapHeader,
  type VfioIoctlName,
  VfioIommuType1DmaMap,
  VfioIommuType1DmaUnmap,
  VfioIommuType1Info,
  VfioIommuType1InfoCapIovaRange,
  VfioIommuType1InfoDmaAvail,
  VfioIovaRange,
  vfioIoctlNumber,
} from '../../src/abi/vfio.ts';
import type { KernelOptions } from '../../src/host/kernel.ts';
import type { Ioas } from '../../src/iommufd/ioas.ts';
import {
  vfioCompat,
  vfioCompatIoasCreate,
  vfioCompatIoasGetId,
  vfioCompatSetNoIommu,
} from '../../src/iommufd/vfio-compat.ts';
import type { Caller } from '../../src/kernel/file.ts';
import { type Fixture, setup } from '../support.ts';
import { tc, type Vals } from './mock.ts';
import { map, memAt, PAGE, pinCounts, RW, roBoundary, SZ_2M, U64_MAX } from './util.ts';

const BASE = MOCK_APERTURE_START;
const BUF = 16n * PAGE;
const VA = 0x4000_0000n;
const { READ, WRITE } = VFIO_DMA_MAP_FLAG;
const TYPE1 = VFIO_EXTENSION.TYPE1_IOMMU;
const TYPE1v2 = VFIO_EXTENSION.TYPE1v2_IOMMU;

// ---- helpers ---------------------------------------------------------------------

/** An ioctl with a raw argument (a pointer or an integer). */
function ioctl(f: Fixture, name: VfioIoctlName, arg: bigint): { ret: number; errno?: ErrnoName } {
  const ret = f.proc.ioctl(f.fd, vfioIoctlNumber(f.kernel.abi, name), arg);
  return ret === -1 ? { ret, errno: f.proc.errno } : { ret };
}

/** `bytes` in fresh memory; returns the address. */
function place(f: Fixture, bytes: Uint8Array): bigint {
  const addr = f.mem(PAGE);
  f.proc.mm.write(addr, bytes);
  return addr;
}

function mapDma(f: Fixture, v: Vals): ErrnoName | undefined {
  const bytes = VfioIommuType1DmaMap.encode({ argsz: 32, flags: READ | WRITE, ...v });
  return ioctl(f, 'VFIO_IOMMU_MAP_DMA', place(f, bytes)).errno;
}

/** UNMAP_DMA; returns the errno and the `size` field as it reads afterwards. */
function unmapDma(f: Fixture, v: Vals): { errno?: ErrnoName; size: bigint } {
  const addr = place(f, VfioIommuType1DmaUnmap.encode({ argsz: 24, ...v }));
  const { errno } = ioctl(f, 'VFIO_IOMMU_UNMAP_DMA', addr);
  return { errno, size: VfioIommuType1DmaUnmap.decode(f.proc.mm.read(addr, 24)).size };
}

function setIommu(f: Fixture, type: number | bigint): ErrnoName | undefined {
  return ioctl(f, 'VFIO_SET_IOMMU', BigInt(type)).errno;
}

function checkExt(f: Fixture, ext: number | bigint) {
  return ioctl(f, 'VFIO_CHECK_EXTENSION', BigInt(ext));
}

function vfioIoas(f: Fixture, op: number, ioas = 0) {
  return f.call('IOMMU_VFIO_IOAS', { op, ioas_id: ioas });
}

function hugePages(f: Fixture, ioas: number): bigint {
  const r = f.call('IOMMU_OPTION', {
    option_id: IOMMU_OPTION_ID.HUGE_PAGES,
    op: IOMMU_OPTION_OP.GET,
    object_id: ioas,
    val64: 3n,
  });
  assert.equal(r.errno, undefined);
  return r.out.val64 as bigint;
}

function compatIopt(f: Fixture) {
  return (f.ctx.vfioIoas as Ioas).iopt;
}

interface CompatOptions {
  /** Create a mock device (and its auto domain) on the IOAS first (default true). */
  mock?: boolean;
  devFlags?: number;
  kernel?: KernelOptions;
}

/**
 * The `vfio_compat_mock_domain` fixture: an IOAS, a mock domain on it,
 * IOMMU_VFIO_IOAS SET, then VFIO_SET_IOMMU(version) (skipped when undefined).
 */
function compat(version: number | undefined, o: CompatOptions = {}) {
  const f = setup(o.kernel);
  const ioas = f.ioas();
  let hwpt = 0;
  if (o.mock ?? true) {
    const r = tc(f, o.devFlags ? 'MOCK_DOMAIN_FLAGS' : 'MOCK_DOMAIN', {
      id: ioas,
      dev_flags: o.devFlags ?? 0,
    });
    assert.equal(r.errno, undefined);
    hwpt = r.out.out_hwpt_id as number;
  }
  assert.equal(vfioIoas(f, IOMMU_VFIO_IOAS_OP.SET, ioas).errno, undefined);
  if (version !== undefined) assert.equal(setIommu(f, version), undefined);
  return { f, ioas, hwpt };
}

/** A seeded Fisher–Yates shuffle (the selftest uses rand()). */
function shuffled<T>(items: T[], seed: number): T[] {
  const a = [...items];
  let s = seed >>> 0;
  for (let i = a.length - 1; i > 0; i--) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    const j = s % (i + 1);
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

// ---- §3.1 fixture `iommufd`: no compat IOAS ----------------------------------------

test('simple_ioctls: GET_API_VERSION returns 0, CHECK_EXTENSION(TYPE1v2) returns 1', () => {
  const f = setup();
  assert.deepEqual(ioctl(f, 'VFIO_GET_API_VERSION', 0n), { ret: 0 });
  assert.deepEqual(checkExt(f, TYPE1v2), { ret: 1 });
});

test('unmap_cmd: argsz 1 and unknown flags are EINVAL, a valid struct is ENODEV', () => {
  const f = setup();
  const v = { iova: BASE, size: PAGE };
  assert.equal(unmapDma(f, { ...v, argsz: 1 }).errno, 'EINVAL');
  assert.equal(unmapDma(f, { ...v, flags: 1 << 31 }).errno, 'EINVAL');
  assert.equal(unmapDma(f, v).errno, 'ENODEV');
});

test('map_cmd: argsz 1 and unknown flags are EINVAL, a valid struct is ENODEV', () => {
  const f = setup();
  const buf = memAt(f, VA, BUF);
  const v = { iova: BASE, size: PAGE, vaddr: buf };
  assert.equal(mapDma(f, { ...v, argsz: 1 }), 'EINVAL');
  assert.equal(mapDma(f, { ...v, flags: 1 << 31 }), 'EINVAL');
  assert.equal(mapDma(f, v), 'ENODEV');
});

test('info_cmd: argsz 1 is EINVAL, argsz 24 without a compat IOAS is ENODEV', () => {
  const f = setup();
  const info = (argsz: number) =>
    ioctl(f, 'VFIO_IOMMU_GET_INFO', place(f, VfioIommuType1Info.encode({ argsz }))).errno;
  assert.equal(info(1), 'EINVAL');
  assert.equal(info(24), 'ENODEV');
});

test('set_iommu_cmd: TYPE1v2 and TYPE1 (integer argument) without a compat IOAS are ENODEV', () => {
  const f = setup();
  assert.equal(setIommu(f, TYPE1v2), 'ENODEV');
  assert.equal(setIommu(f, TYPE1), 'ENODEV');
});

test('vfio_ioas: GET ENODEV, SET 0 ENOENT, SET/GET round trip, CLEAR', () => {
  const f = setup();
  assert.equal(vfioIoas(f, IOMMU_VFIO_IOAS_OP.GET).errno, 'ENODEV');
  assert.equal(vfioIoas(f, IOMMU_VFIO_IOAS_OP.SET, 0).errno, 'ENOENT');
  const ioas = f.ioas();
  assert.equal(vfioIoas(f, IOMMU_VFIO_IOAS_OP.SET, ioas).errno, undefined);
  const got = vfioIoas(f, IOMMU_VFIO_IOAS_OP.GET);
  assert.equal(got.errno, undefined);
  assert.equal(got.out.ioas_id, ioas);
  assert.equal(vfioIoas(f, IOMMU_VFIO_IOAS_OP.CLEAR).errno, undefined);
  assert.equal(vfioIoas(f, IOMMU_VFIO_IOAS_OP.GET).errno, 'ENODEV');
});

// ---- §3.6 fixture `vfio_compat_mock_domain`, both variants -------------------------

for (const [variant, version] of [
  ['Ver1v2', TYPE1v2],
  ['Ver1v0', TYPE1],
] as const) {
  const v1 = version === TYPE1;

  test(`${variant} option_huge_pages: HUGE_PAGES reads ${v1 ? 0 : 1}`, () => {
    const { f, ioas } = compat(version);
    assert.equal(hugePages(f, ioas), v1 ? 0n : 1n);
  });

  test(`${variant} get_info: byte-exact for argsz 16..71 with 0xAA sentinels`, () => {
    const { f } = compat(version);
    const buf = memAt(f, VA, BUF);
    const call = (argsz: number) => {
      f.proc.mm.write(buf, VfioIommuType1Info.encode({ argsz }));
      f.proc.mm.write(buf + BigInt(argsz), new Uint8Array(Number(BUF) - argsz).fill(0xaa));
      assert.equal(ioctl(f, 'VFIO_IOMMU_GET_INFO', buf).errno, undefined, `argsz ${argsz}`);
      const tail = f.proc.mm.read(buf + BigInt(argsz), Number(BUF) - argsz);
      assert.ok(
        tail.every((b) => b === 0xaa),
        `nothing written past argsz ${argsz}`,
      );
      return VfioIommuType1Info.decode(f.proc.mm.read(buf, 24));
    };
    // pre-cap ABI: 16 bytes
    let info = call(16);
    assert.equal(info.flags, 3);
    assert.equal(info.iova_pgsizes, PAGE);
    assert.equal(info.argsz, 72);
    // the cap chain size
    info = call(24);
    assert.equal(info.flags, 3);
    assert.notEqual(info.iova_pgsizes, 0n);
    assert.equal(info.cap_offset, 0);
    assert.ok(info.argsz > 24);
    const caplen = info.argsz;
    for (let i = 24; i < caplen; i++) {
      info = call(i);
      assert.equal(info.flags, 3);
      assert.equal(info.cap_offset, 0, `argsz ${i}: the chain is offered only when it all fits`);
    }
    info = call(caplen);
    assert.equal(info.cap_offset, 24);
  });

  test(`${variant} map: map/unmap, empty unmap, UNMAP_ALL, 16 single pages unmapped at random`, () => {
    const { f } = compat(version);
    const buf = memAt(f, VA, BUF);
    const map = { vaddr: buf, size: BUF, iova: BASE };
    assert.equal(mapDma(f, map), undefined);
    assert.deepEqual(unmapDma(f, { iova: BASE, size: BUF }), { errno: undefined, size: BUF });
    // unmap of an empty range is success (6.18)
    assert.deepEqual(unmapDma(f, { iova: BASE, size: BUF }), { errno: undefined, size: 0n });

    assert.equal(mapDma(f, map), undefined);
    const all = VFIO_DMA_UNMAP_FLAG.ALL;
    assert.equal(unmapDma(f, { flags: all, iova: BASE, size: 0n }).errno, 'EINVAL');
    assert.deepEqual(unmapDma(f, { flags: all, iova: 0n, size: 0n }), {
      errno: undefined,
      size: BUF,
    });

    const pages = Array.from({ length: 16 }, (_, i) => BASE + BigInt(i) * PAGE);
    pages.forEach((iova, i) => {
      assert.equal(mapDma(f, { vaddr: buf + BigInt(i) * PAGE, size: PAGE, iova }), undefined);
    });
    for (const iova of shuffled(pages, 7)) {
      assert.deepEqual(unmapDma(f, { iova, size: PAGE }), { errno: undefined, size: PAGE });
    }
    assert.deepEqual(pinCounts(f, buf, 16), new Array(16).fill(0));
  });

  test(`${variant} huge_map: 256 KiB unmaps of a 4 MiB hugetlb map ${v1 ? 'split it' : 'are ENOENT'}`, () => {
    const { f } = compat(version);
    const size = 2n * SZ_2M;
    const buf = f.proc.mm.mmap({ length: size, prot: { read: true, write: true }, hugetlb: true });
    assert.equal(mapDma(f, { vaddr: buf, size, iova: BASE }), undefined);
    const chunk = size / 16n;
    const iovas = Array.from({ length: 16 }, (_, i) => BASE + BigInt(i) * chunk);
    for (const iova of shuffled(iovas, 42)) {
      const r = unmapDma(f, { iova, size: chunk });
      if (v1) assert.deepEqual(r, { errno: undefined, size: chunk });
      else assert.deepEqual(r, { errno: 'ENOENT', size: 0n });
    }
    const pinnedPages = pinCounts(f, buf, Number(size / PAGE)).filter((n) => n > 0).length;
    assert.equal(compatIopt(f).areas.size, v1 ? 0 : 1);
    assert.equal(pinnedPages, v1 ? 0 : Number(size / PAGE));
  });
}

// ---- GET_API_VERSION / CHECK_EXTENSION ------------------------------------------

test('CHECK_EXTENSION answers per extension id, never an error except DMA_CC', () => {
  const f = setup();
  const want: [bigint, number | ErrnoName][] = [
    [0n, 0],
    [1n, 1], // TYPE1
    [2n, 0], // SPAPR_TCE
    [3n, 1], // TYPE1v2
    [4n, 'ENODEV'], // DMA_CC needs the compat IOAS
    [5n, 0], // EEH
    [6n, 0], // TYPE1_NESTING (obsolete)
    [7n, 0], // SPAPR_TCE_v2
    [8n, 0], // NOIOMMU without CONFIG_VFIO_NOIOMMU
    [9n, 1], // UNMAP_ALL
    [10n, 0], // UPDATE_VADDR is not emulated
    [11n, 0],
    [(1n << 32n) | 1n, 0], // the whole unsigned long is compared
  ];
  for (const [ext, answer] of want) {
    const r = checkExt(f, ext);
    if (typeof answer === 'number') assert.deepEqual(r, { ret: answer }, `extension ${ext}`);
    else assert.equal(r.errno, answer, `extension ${ext}`);
  }
  // GET_API_VERSION ignores its argument
  assert.deepEqual(ioctl(f, 'VFIO_GET_API_VERSION', 0xdeadn), { ret: 0 });
});

test('CHECK_EXTENSION(NOIOMMU) is 1 with vfioNoiommu', () => {
  const f = setup({ personality: { vfioNoiommu: true } });
  assert.deepEqual(checkExt(f, VFIO_EXTENSION.NOIOMMU_IOMMU), { ret: 1 });
});

test('CHECK_EXTENSION(DMA_CC): 1 with no HWPT, 0 once a non-enforcing (mock) domain is there', () => {
  const { f, ioas } = compat(undefined, { mock: false });
  assert.deepEqual(checkExt(f, VFIO_EXTENSION.DMA_CC_IOMMU), { ret: 1 });
  assert.equal(tc(f, 'MOCK_DOMAIN', { id: ioas }).errno, undefined);
  assert.deepEqual(checkExt(f, VFIO_EXTENSION.DMA_CC_IOMMU), { ret: 0 });
});

// ---- SET_IOMMU ------------------------------------------------------------------

test('SET_IOMMU: types other than TYPE1/TYPE1v2 are EINVAL, checked before the compat IOAS', () => {
  const f = setup();
  for (const t of [0, 2, 4, 5, 6, 7, 8, 9, 10]) assert.equal(setIommu(f, t), 'EINVAL', `type ${t}`);
  assert.equal(setIommu(f, (1n << 32n) | 1n), 'EINVAL');
  const { f: g } = compat(undefined);
  for (const t of [0, 2, 7, 8]) assert.equal(setIommu(g, t), 'EINVAL', `type ${t}`);
});

test('SET_IOMMU may be repeated; TYPE1 disables large pages, TYPE1v2 leaves them as they are', () => {
  const { f, ioas } = compat(undefined);
  assert.equal(setIommu(f, TYPE1v2), undefined);
  assert.equal(hugePages(f, ioas), 1n);
  assert.equal(setIommu(f, TYPE1), undefined);
  assert.equal(hugePages(f, ioas), 0n);
  assert.equal(setIommu(f, TYPE1v2), undefined);
  assert.equal(hugePages(f, ioas), 0n);
  assert.equal(setIommu(f, TYPE1), undefined);
});

test('SET_IOMMU(TYPE1) is EINVAL once the compat IOAS has a domain and an area', () => {
  const { f, ioas } = compat(TYPE1v2);
  const buf = memAt(f, VA, BUF);
  assert.equal(mapDma(f, { vaddr: buf, size: PAGE, iova: BASE }), undefined);
  assert.equal(setIommu(f, TYPE1), 'EINVAL');
  assert.equal(hugePages(f, ioas), 1n);
  // without a domain the same is fine
  const { f: g, ioas: gi } = compat(TYPE1v2, { mock: false });
  assert.equal(mapDma(g, { vaddr: memAt(g, VA, BUF), size: PAGE, iova: BASE }), undefined);
  assert.equal(setIommu(g, TYPE1), undefined);
  assert.equal(hugePages(g, gi), 0n);
});

test('no-IOMMU mode: SET_IOMMU(NOIOMMU) needs CONFIG and CAP_SYS_RAWIO, other types are EINVAL', () => {
  const f = setup({ personality: { vfioNoiommu: true } });
  vfioCompatSetNoIommu(f.ctx);
  assert.equal(setIommu(f, TYPE1), 'EINVAL');
  assert.equal(setIommu(f, TYPE1v2), 'EINVAL');
  const req = vfioIoctlNumber(f.kernel.abi, 'VFIO_SET_IOMMU');
  const type = BigInt(VFIO_EXTENSION.NOIOMMU_IOMMU);
  const raw = { capSysRawio: true } as unknown as Caller;
  const plain = { capSysRawio: false } as unknown as Caller;
  assert.equal(vfioCompat(f.ctx, raw, req, type), 0);
  assert.throws(() => vfioCompat(f.ctx, plain, req, type), { code: 'EPERM' });
  // without CONFIG_VFIO_NOIOMMU the type is just unknown
  const g = setup();
  vfioCompatSetNoIommu(g.ctx);
  assert.throws(() => vfioCompat(g.ctx, raw, req, type), { code: 'EINVAL' });
});

test('compat IOAS helpers: create at the lowest free ID once, GET_ID, no-IOMMU exclusion', () => {
  const f = setup();
  assert.throws(() => vfioCompatIoasGetId(f.ctx), { code: 'ENODEV' });
  vfioCompatIoasCreate(f.ctx);
  const id = vfioCompatIoasGetId(f.ctx);
  assert.equal(id, 1);
  assert.equal(vfioIoas(f, IOMMU_VFIO_IOAS_OP.GET).out.ioas_id, id);
  vfioCompatIoasCreate(f.ctx);
  assert.equal(f.ctx.objectCount, 1);
  assert.throws(() => vfioCompatSetNoIommu(f.ctx), { code: 'EINVAL' });
  const g = setup();
  vfioCompatSetNoIommu(g.ctx);
  assert.throws(() => vfioCompatIoasCreate(g.ctx), { code: 'EINVAL' });
  assert.equal(g.ctx.objectCount, 0);
});

// ---- dispatch ---------------------------------------------------------------------

test('other container ioctls and non-VFIO words below 0x80 are ENOTTY', () => {
  const { f } = compat(TYPE1v2);
  const arg = place(f, new Uint8Array(64));
  for (const name of [
    'VFIO_IOMMU_DIRTY_PAGES',
    'VFIO_IOMMU_ENABLE',
    'VFIO_IOMMU_DISABLE',
    'VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY',
    'VFIO_IOMMU_SPAPR_TCE_CREATE',
    'VFIO_IOMMU_SPAPR_TCE_REMOVE',
    'VFIO_EEH_PE_OP',
    'VFIO_GROUP_GET_STATUS',
    'VFIO_GROUP_SET_CONTAINER',
  ] as const) {
    assert.equal(ioctl(f, name, arg).errno, 'ENOTTY', name);
  }
  for (const req of [
    0x3b63, // nr 99
    0x3b7f,
    ioc('generic', 'write', 0x3b, 0x71, 32), // MAP_DMA's nr with size bits
    0x3c64, // another type byte
    0x20003b64, // the powerpc word on a generic host
  ]) {
    assert.equal(f.proc.ioctl(f.fd, req, arg), -1);
    assert.equal(f.proc.errno, 'ENOTTY', `0x${req.toString(16)}`);
  }
});

test('powerpc numbering: the powerpc words work, the generic ones are ENOTTY', () => {
  const f = setup({ abi: 'powerpc' });
  assert.equal(vfioIoctlNumber('powerpc', 'VFIO_CHECK_EXTENSION'), 0x20003b65);
  assert.deepEqual(checkExt(f, TYPE1v2), { ret: 1 });
  assert.equal(f.proc.ioctl(f.fd, 0x3b65, 3n), -1);
  assert.equal(f.proc.errno, 'ENOTTY');
});

test('SPAPR_TCE_GET_INFO shares GET_INFO`s number and gets the type1 answer', () => {
  const { f } = compat(TYPE1v2);
  const buf = place(f, new Uint8Array(64).fill(0xaa));
  f.proc.mm.write(buf, VfioIommuType1Info.encode({ argsz: 32 }).subarray(0, 4));
  assert.equal(ioctl(f, 'VFIO_IOMMU_SPAPR_TCE_GET_INFO', buf).errno, undefined);
  const info = VfioIommuType1Info.decode(f.proc.mm.read(buf, 24));
  assert.equal(info.argsz, 72);
  assert.equal(info.flags, 3);
  // bytes 24..31 are within argsz: the DMA_AVAIL cap does not fit (36), so untouched
  assert.ok(f.proc.mm.read(buf + 24n, 40).every((b) => b === 0xaa));
});

// ---- GET_INFO ---------------------------------------------------------------------

/**
 * What the kernel leaves in a 128-byte buffer of 0xAA holding `{argsz}`
 * after GET_INFO, with DMA_AVAIL then IOVA_RANGE (`ranges`), each padded to
 * 8 when `aligned`: written from the rules of vfio-container.md §8.
 */
function expectedInfo(
  argsz: number,
  ranges: [bigint, bigint][],
  pgsizes: bigint,
  aligned = true,
): Uint8Array {
  const out = new Uint8Array(128).fill(0xaa);
  const dmaAt = 24;
  const iovaAt = dmaAt + (aligned ? 16 : 12);
  const iovaSize = 16 + 16 * ranges.length;
  const total = iovaAt + iovaSize; // 16 + 16n is already a multiple of 8
  if (argsz >= dmaAt + 12) {
    out.set(
      VfioIommuType1InfoDmaAvail.encode({
        id: 3,
        version: 1,
        next: argsz >= iovaAt ? iovaAt : 0,
        avail: 0xffffffff,
      }),
      dmaAt,
    );
  }
  ranges.forEach(([start, end], i) => {
    if (argsz - iovaAt >= 16 + 16 * (i + 1)) {
      out.set(VfioIovaRange.encode({ start, end }), iovaAt + 16 + 16 * i);
    }
  });
  if (argsz - iovaAt >= iovaSize) {
    out.set(
      VfioIommuType1InfoCapIovaRange.encode({ id: 1, version: 1, nr_iovas: ranges.length }),
      iovaAt,
    );
  }
  const info = VfioIommuType1Info.encode({
    argsz: total,
    flags: 3,
    iova_pgsizes: pgsizes,
    cap_offset: argsz >= total ? 24 : 0,
  });
  out.set(info.subarray(0, Math.min(argsz, 24)), 0);
  return out;
}

function infoBytes(f: Fixture, argsz: number): { errno?: ErrnoName; bytes: Uint8Array } {
  const buf = f.mem(PAGE);
  f.proc.mm.write(buf, new Uint8Array(128).fill(0xaa));
  f.proc.mm.write(buf, VfioIommuType1Info.encode({ argsz }).subarray(0, 16));
  const { errno } = ioctl(f, 'VFIO_IOMMU_GET_INFO', buf);
  return { errno, bytes: f.proc.mm.read(buf, 128) };
}

test('GET_INFO layout at full size: DMA_AVAIL at 24 (12 bytes, 4 untouched), IOVA_RANGE at 40', () => {
  const { f } = compat(TYPE1v2);
  const { errno, bytes } = infoBytes(f, 72);
  assert.equal(errno, undefined);
  const info = VfioIommuType1Info.decode(bytes.subarray(0, 24));
  assert.deepEqual(info, { argsz: 72, flags: 3, iova_pgsizes: PAGE, cap_offset: 24, pad: 0 });
  assert.deepEqual(VfioIommuType1InfoDmaAvail.decode(bytes.subarray(24, 36)), {
    id: 3,
    version: 1,
    next: 40,
    avail: 0xffffffff,
  });
  assert.deepEqual([...bytes.subarray(36, 40)], [0xaa, 0xaa, 0xaa, 0xaa]);
  assert.deepEqual(VfioIommuType1InfoCapIovaRange.decode(bytes.subarray(40, 56)), {
    id: 1,
    version: 1,
    next: 0,
    nr_iovas: 1,
    reserved: 0,
  });
  assert.deepEqual(VfioIovaRange.decode(bytes.subarray(56, 72)), {
    start: MOCK_APERTURE_START,
    end: MOCK_APERTURE_LAST,
  });
  // walk the chain from cap_offset
  const ids: number[] = [];
  for (let at = info.cap_offset; at !== 0; ) {
    const h = VfioInfoCapHeader.decode(bytes.subarray(at, at + 8));
    ids.push(h.id);
    at = h.next;
  }
  assert.deepEqual(ids, [3, 1]);
});

test('GET_INFO writes exactly what fits, for every argsz 16..100', () => {
  const { f } = compat(TYPE1);
  const ranges: [bigint, bigint][] = [[MOCK_APERTURE_START, MOCK_APERTURE_LAST]];
  for (let argsz = 16; argsz <= 100; argsz++) {
    const got = infoBytes(f, argsz);
    assert.equal(got.errno, undefined);
    assert.deepEqual(got.bytes, expectedInfo(argsz, ranges, PAGE), `argsz ${argsz}`);
  }
});

test('GET_INFO with two IOVA ranges: each range is written when it fits, the header only with all', () => {
  const { f, ioas } = compat(TYPE1v2);
  const hole = 1n << 25n;
  assert.equal(tc(f, 'ADD_RESERVED', { id: ioas, start: hole, length: PAGE }).errno, undefined);
  const ranges: [bigint, bigint][] = [
    [MOCK_APERTURE_START, hole - 1n],
    [hole + PAGE, MOCK_APERTURE_LAST],
  ];
  for (let argsz = 36; argsz <= 96; argsz++) {
    assert.deepEqual(infoBytes(f, argsz).bytes, expectedInfo(argsz, ranges, PAGE), `${argsz}`);
  }
  // 72: the first range (56..71) is there, the second and the header are not
  const b = infoBytes(f, 72).bytes;
  assert.equal(VfioIommuType1Info.decode(b.subarray(0, 24)).argsz, 88);
  assert.deepEqual(VfioIovaRange.decode(b.subarray(56, 72)), {
    start: ranges[0]![0],
    end: hole - 1n,
  });
  assert.ok(b.subarray(40, 56).every((x) => x === 0xaa));
});

test('GET_INFO without capability padding (compatCapsAligned false): total 68, IOVA_RANGE at 36', () => {
  const { f } = compat(TYPE1v2, { kernel: { personality: { compatCapsAligned: false } } });
  const ranges: [bigint, bigint][] = [[MOCK_APERTURE_START, MOCK_APERTURE_LAST]];
  for (let argsz = 16; argsz <= 80; argsz++) {
    assert.deepEqual(
      infoBytes(f, argsz).bytes,
      expectedInfo(argsz, ranges, PAGE, false),
      `${argsz}`,
    );
  }
  assert.equal(VfioIommuType1Info.decode(infoBytes(f, 24).bytes.subarray(0, 24)).argsz, 68);
});

test('GET_INFO iova_pgsizes: all sizes ≥ PAGE without a domain; the AND of domains with sub-page sizes folded', () => {
  const pgsizes = (f: Fixture) =>
    VfioIommuType1Info.decode(infoBytes(f, 24).bytes.subarray(0, 24)).iova_pgsizes;
  const none = compat(TYPE1v2, { mock: false }).f;
  assert.equal(pgsizes(none), U64_MAX & ~(PAGE - 1n));
  // without a domain the IOVA space is all of it
  assert.deepEqual(
    infoBytes(none, 72).bytes.subarray(56, 72),
    VfioIovaRange.encode({ start: 0n, end: U64_MAX }),
  );
  // 2 KiB IOPTEs fold into PAGE_SIZE; a HUGE_IOVA device adds 1 MiB
  assert.equal(pgsizes(compat(TYPE1v2).f), PAGE);
  const huge = compat(TYPE1v2, { devFlags: MOCK_FLAGS_DEVICE.HUGE_IOVA }).f;
  assert.equal(pgsizes(huge), PAGE | (1n << 20n));
});

test('GET_INFO: EFAULT for a bad pointer, before the argsz check; argsz 15 is EINVAL', () => {
  const { f } = compat(TYPE1v2);
  assert.equal(ioctl(f, 'VFIO_IOMMU_GET_INFO', 0n).errno, 'EFAULT');
  // only 8 readable bytes: the 16-byte read faults even though argsz says 1
  const page = f.mem(2n * PAGE);
  f.proc.mm.munmap(page + PAGE, PAGE);
  f.proc.mm.write(page + PAGE - 8n, VfioIommuType1Info.encode({ argsz: 1 }).subarray(0, 8));
  assert.equal(ioctl(f, 'VFIO_IOMMU_GET_INFO', page + PAGE - 8n).errno, 'EFAULT');
  assert.equal(infoBytes(f, 15).errno, 'EINVAL');
});

test('GET_INFO: a capability write that faults is EFAULT with the earlier ones in place', () => {
  const { f } = compat(TYPE1v2);
  // the info struct starts 48 bytes before a read-only page: the IOVA range (56..71) faults
  const boundary = roBoundary(f);
  const buf = boundary - 48n;
  f.proc.mm.write(buf, new Uint8Array(48).fill(0xaa));
  f.proc.mm.write(buf, VfioIommuType1Info.encode({ argsz: 72 }).subarray(0, 16));
  assert.equal(ioctl(f, 'VFIO_IOMMU_GET_INFO', buf).errno, 'EFAULT');
  const b = f.proc.mm.read(buf, 48);
  assert.equal(VfioIommuType1Info.decode(b.subarray(0, 24)).flags, 0, 'info not written');
  assert.equal(VfioIommuType1InfoDmaAvail.decode(b.subarray(24, 36)).avail, 0xffffffff);
});

// ---- MAP_DMA ----------------------------------------------------------------------

test('MAP_DMA: argsz 31, VADDR and unknown flags are EINVAL; a short readable struct is EFAULT', () => {
  const { f } = compat(TYPE1v2);
  const buf = memAt(f, VA, BUF);
  const v = { vaddr: buf, size: PAGE, iova: BASE };
  assert.equal(mapDma(f, { ...v, argsz: 31 }), 'EINVAL');
  assert.equal(mapDma(f, { ...v, flags: VFIO_DMA_MAP_FLAG.VADDR }), 'EINVAL');
  assert.equal(mapDma(f, { ...v, flags: READ | 8 }), 'EINVAL');
  const page = f.mem(2n * PAGE);
  f.proc.mm.munmap(page + PAGE, PAGE);
  const at = page + PAGE - 24n;
  f.proc.mm.write(at, VfioIommuType1DmaMap.encode({ argsz: 1 }).subarray(0, 24));
  assert.equal(ioctl(f, 'VFIO_IOMMU_MAP_DMA', at).errno, 'EFAULT');
  assert.equal(compatIopt(f).areas.size, 0);
});

test('MAP_DMA: flags 0 maps with no permission; READ/WRITE become the area`s protection', () => {
  const { f } = compat(TYPE1v2);
  const buf = memAt(f, VA, BUF);
  assert.equal(mapDma(f, { vaddr: buf, size: PAGE, iova: BASE, flags: 0 }), undefined);
  assert.equal(mapDma(f, { vaddr: buf, size: PAGE, iova: BASE + PAGE, flags: READ }), undefined);
  assert.equal(
    mapDma(f, { vaddr: buf, size: PAGE, iova: BASE + 2n * PAGE, flags: WRITE }),
    undefined,
  );
  const prot = (iova: bigint) => compatIopt(f).areas.find(iova)!.prot;
  assert.deepEqual([prot(BASE), prot(BASE + PAGE), prot(BASE + 2n * PAGE)], [0, 1, 2]);
});

test('MAP_DMA follows IOMMU_IOAS_MAP: EEXIST, reserved EINVAL, alignment EINVAL, size 0 EINVAL, wrap EOVERFLOW', () => {
  const { f } = compat(TYPE1);
  const buf = memAt(f, VA, BUF);
  assert.equal(mapDma(f, { vaddr: buf, size: 4n * PAGE, iova: BASE }), undefined);
  assert.equal(mapDma(f, { vaddr: buf, size: PAGE, iova: BASE + 3n * PAGE }), 'EEXIST');
  assert.equal(mapDma(f, { vaddr: buf, size: PAGE, iova: BASE - PAGE }), 'EINVAL');
  assert.equal(mapDma(f, { vaddr: buf, size: PAGE, iova: MOCK_APERTURE_LAST + 1n }), 'EINVAL');
  // TYPE1: everything PAGE_SIZE aligned
  assert.equal(mapDma(f, { vaddr: buf, size: PAGE / 2n, iova: BASE + 8n * PAGE }), 'EINVAL');
  assert.equal(mapDma(f, { vaddr: buf, size: PAGE, iova: BASE + 8n * PAGE + 0x800n }), 'EINVAL');
  assert.equal(mapDma(f, { vaddr: buf + 0x800n, size: PAGE, iova: BASE + 8n * PAGE }), 'EINVAL');
  assert.equal(mapDma(f, { vaddr: buf, size: 0n, iova: BASE + 8n * PAGE }), 'EINVAL');
  assert.equal(mapDma(f, { vaddr: U64_MAX - PAGE + 1n, size: 2n * PAGE, iova: BASE }), 'EOVERFLOW');
  // without a domain nothing is reserved: the IOVA itself wraps
  const g = compat(TYPE1v2, { mock: false }).f;
  const gbuf = memAt(g, VA, BUF);
  assert.equal(mapDma(g, { vaddr: gbuf, size: 2n * PAGE, iova: U64_MAX - PAGE + 1n }), 'EOVERFLOW');
  // unreadable memory with a domain to fill
  assert.equal(mapDma(f, { vaddr: 0x10_0000_0000n, size: PAGE, iova: BASE + 8n * PAGE }), 'EFAULT');
});

// ---- UNMAP_DMA --------------------------------------------------------------------

test('UNMAP_DMA: argsz 23, GET_DIRTY_BITMAP and VADDR are EINVAL before the compat IOAS', () => {
  const f = setup();
  assert.equal(unmapDma(f, { argsz: 23, iova: BASE, size: PAGE }).errno, 'EINVAL');
  const dirty = VFIO_DMA_UNMAP_FLAG.GET_DIRTY_BITMAP;
  assert.equal(unmapDma(f, { argsz: 48, flags: dirty, iova: BASE, size: PAGE }).errno, 'EINVAL');
  assert.equal(
    unmapDma(f, { flags: VFIO_DMA_UNMAP_FLAG.VADDR, iova: BASE, size: PAGE }).errno,
    'EINVAL',
  );
  assert.equal(unmapDma(f, { flags: VFIO_DMA_UNMAP_FLAG.ALL }).errno, 'ENODEV');
});

test('UNMAP_DMA ALL: nonzero iova or size is EINVAL with nothing written back; empty is success', () => {
  const { f } = compat(TYPE1v2);
  const all = VFIO_DMA_UNMAP_FLAG.ALL;
  assert.deepEqual(unmapDma(f, { flags: all }), { errno: undefined, size: 0n });
  const buf = memAt(f, VA, BUF);
  assert.equal(mapDma(f, { vaddr: buf, size: PAGE, iova: BASE }), undefined);
  assert.deepEqual(unmapDma(f, { flags: all, size: 5n }), { errno: 'EINVAL', size: 5n });
  assert.deepEqual(unmapDma(f, { flags: all, iova: 1n }), { errno: 'EINVAL', size: 0n });
  assert.equal(compatIopt(f).areas.size, 1);
});

test('UNMAP_DMA of an empty range: success with size 0 (6.18), ENOENT with size 0 before', () => {
  const { f } = compat(TYPE1v2);
  assert.deepEqual(unmapDma(f, { iova: BASE, size: PAGE }), { errno: undefined, size: 0n });
  const old = compat(TYPE1v2, { kernel: { personality: { compatUnmapEmpty: 'ENOENT' } } }).f;
  assert.deepEqual(unmapDma(old, { iova: BASE, size: PAGE }), { errno: 'ENOENT', size: 0n });
  // IOMMU_IOAS_UNMAP keeps its own rule
  const ioas = vfioIoas(f, IOMMU_VFIO_IOAS_OP.GET).out.ioas_id as number;
  assert.equal(
    f.call('IOMMU_IOAS_UNMAP', { ioas_id: ioas, iova: BASE, length: PAGE }).errno,
    'ENOENT',
  );
});

test('UNMAP_DMA TYPE1v2: a straddled mapping is ENOENT; not atomic, size counts what went', () => {
  const { f } = compat(TYPE1v2);
  const buf = memAt(f, VA, BUF);
  assert.equal(mapDma(f, { vaddr: buf, size: PAGE, iova: BASE }), undefined);
  assert.equal(mapDma(f, { vaddr: buf, size: 2n * PAGE, iova: BASE + PAGE }), undefined);
  // straddles the start: nothing removed
  assert.deepEqual(unmapDma(f, { iova: BASE + 2n * PAGE, size: PAGE }), {
    errno: 'ENOENT',
    size: 0n,
  });
  // the first area goes, the second straddles the end
  assert.deepEqual(unmapDma(f, { iova: BASE, size: 2n * PAGE }), { errno: 'ENOENT', size: PAGE });
  assert.equal(compatIopt(f).areas.size, 1);
});

test('UNMAP_DMA: size 0 is EINVAL, a wrapping range EOVERFLOW, both with size 0 written back', () => {
  const { f } = compat(TYPE1v2);
  assert.deepEqual(unmapDma(f, { iova: BASE, size: 0n }), { errno: 'EINVAL', size: 0n });
  assert.deepEqual(unmapDma(f, { iova: 1n << 63n, size: (1n << 63n) + PAGE }), {
    errno: 'EOVERFLOW',
    size: 0n,
  });
});

test('UNMAP_DMA: the write-back faulting is EFAULT, with the unmap done', () => {
  const { f } = compat(TYPE1v2);
  const buf = memAt(f, VA, BUF);
  assert.equal(mapDma(f, { vaddr: buf, size: PAGE, iova: BASE }), undefined);
  const at = roBoundary(f, VfioIommuType1DmaUnmap.encode({ argsz: 24, iova: BASE, size: PAGE }));
  assert.equal(ioctl(f, 'VFIO_IOMMU_UNMAP_DMA', at).errno, 'EFAULT');
  assert.equal(compatIopt(f).areas.size, 0);
});

test('UNMAP_DMA TYPE1: a range inside a mapping unmaps exactly itself; pins follow', () => {
  const { f, hwpt } = compat(TYPE1);
  const buf = memAt(f, VA, BUF);
  assert.equal(mapDma(f, { vaddr: buf, size: BUF, iova: BASE }), undefined);
  assert.deepEqual(unmapDma(f, { iova: BASE + 4n * PAGE, size: 4n * PAGE }), {
    errno: undefined,
    size: 4n * PAGE,
  });
  assert.deepEqual(pinCounts(f, buf, 16), [1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1]);
  // a range over a hole and parts of both neighbours
  assert.deepEqual(unmapDma(f, { iova: BASE + 3n * PAGE, size: 6n * PAGE }), {
    errno: undefined,
    size: 2n * PAGE,
  });
  assert.deepEqual(
    [...compatIopt(f).areas].map((a) => [a.start, a.last]),
    [
      [BASE, BASE + 3n * PAGE - 1n],
      [BASE + 9n * PAGE, BASE + BUF - 1n],
    ],
  );
  const check = { id: hwpt, iova: BASE, uptr: buf, length: 3n * PAGE };
  assert.equal(tc(f, 'MD_CHECK_MAP', check).errno, undefined);
  f.proc.close(f.fd);
  assert.deepEqual(pinCounts(f, buf, 16), new Array(16).fill(0));
});

test('UNMAP_DMA TYPE1: a cut off the PAGE_SIZE alignment is EINVAL and nothing is written back', () => {
  const { f } = compat(TYPE1);
  const buf = memAt(f, VA, BUF);
  assert.equal(mapDma(f, { vaddr: buf, size: BUF, iova: BASE }), undefined);
  assert.deepEqual(unmapDma(f, { iova: BASE + 0x800n, size: PAGE }), {
    errno: 'EINVAL',
    size: PAGE,
  });
  assert.equal(compatIopt(f).areas.size, 1);
  // size 0 still cuts before iova, then fails in the unmap with size 0 written back
  assert.deepEqual(unmapDma(f, { iova: BASE + PAGE, size: 0n }), { errno: 'EINVAL', size: 0n });
  assert.equal(compatIopt(f).areas.size, 2);
});

test('UNMAP_DMA TYPE1: cutting an area an access has pinned is EINVAL', () => {
  const { f } = compat(TYPE1);
  const buf = memAt(f, VA, BUF);
  assert.equal(mapDma(f, { vaddr: buf, size: BUF, iova: BASE }), undefined);
  const acc = tc(f, 'CREATE_ACCESS', { id: vfioIoasId(f), flags: 1 }).out.out_access_fd as number;
  assert.equal(tc(f, 'ACCESS_PAGES', { id: acc, iova: BASE, length: PAGE }).errno, undefined);
  assert.deepEqual(unmapDma(f, { iova: BASE + PAGE, size: PAGE }), { errno: 'EINVAL', size: PAGE });
  assert.equal(compatIopt(f).areas.size, 1);
});

function vfioIoasId(f: Fixture): number {
  return vfioIoas(f, IOMMU_VFIO_IOAS_OP.GET).out.ioas_id as number;
}

test('UNMAP_DMA TYPE1 without a domain cuts too; at iova 0 only the end is cut', () => {
  const { f } = compat(TYPE1, { mock: false });
  const buf = memAt(f, VA, BUF);
  assert.equal(mapDma(f, { vaddr: buf, size: BUF, iova: 0n }), undefined);
  assert.deepEqual(unmapDma(f, { iova: 0n, size: PAGE }), { errno: undefined, size: PAGE });
  assert.deepEqual(unmapDma(f, { iova: 2n * PAGE, size: PAGE }), { errno: undefined, size: PAGE });
  assert.equal(compatIopt(f).areas.size, 2);
});

test('iopt_cut_iova: no-op at an area edge; EINVAL in a domain that may hold large pages', () => {
  const { f } = compat(TYPE1v2);
  const buf = memAt(f, VA, BUF);
  map(f, vfioIoasId(f), buf, BUF, { iova: BASE, flags: RW });
  const iopt = compatIopt(f);
  iopt.cutIova([BASE, BASE + BUF - 1n, BASE - 1n]);
  assert.equal(iopt.areas.size, 1);
  assert.throws(() => iopt.cutIova([BASE + PAGE - 1n]), { code: 'EINVAL' });
  assert.equal(iopt.areas.size, 1);
});

// ---- model: TYPE1 unmap = exactly the mapped bytes of the range --------------------

test('TYPE1 model: random page maps and unmaps remove exactly the mapped pages in range', () => {
  const NPAGES = 32;
  const step = fc.record({
    map: fc.boolean(),
    first: fc.nat(NPAGES - 1),
    count: fc.integer({ min: 1, max: 8 }),
  });
  fc.assert(
    fc.property(fc.array(step, { maxLength: 25 }), (steps) => {
      const { f } = compat(TYPE1);
      const buf = memAt(f, VA, BigInt(NPAGES) * PAGE);
      const mapped = new Array<boolean>(NPAGES).fill(false);
      for (const s of steps) {
        const n = Math.min(s.count, NPAGES - s.first);
        const iova = BASE + BigInt(s.first) * PAGE;
        const size = BigInt(n) * PAGE;
        const range = mapped.slice(s.first, s.first + n);
        if (s.map) {
          const errno = mapDma(f, { vaddr: buf + BigInt(s.first) * PAGE, size, iova });
          if (range.some((m) => m)) assert.equal(errno, 'EEXIST');
          else {
            assert.equal(errno, undefined);
            mapped.fill(true, s.first, s.first + n);
          }
        } else {
          const want = BigInt(range.filter((m) => m).length) * PAGE;
          assert.deepEqual(unmapDma(f, { iova, size }), { errno: undefined, size: want });
          mapped.fill(false, s.first, s.first + n);
        }
        assert.deepEqual(
          pinCounts(f, buf, NPAGES),
          mapped.map((m) => (m ? 1 : 0)),
        );
      }
      f.proc.close(f.fd);
      assert.ok(pinCounts(f, buf, NPAGES).every((c) => c === 0));
    }),
    { numRuns: 40, seed: 0x5eed },
  );
});
