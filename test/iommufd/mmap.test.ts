/**
 * mmap through /dev/iommu (src/iommufd/mmap.ts): the mock vIOMMU allocated
 * with data offers a two-page region whose offset and length VIOMMU_ALLOC
 * writes back; only exactly that offset and length map (ENXIO), MAP_SHARED
 * (EINVAL) and not PROT_EXEC (EPERM); each piece of a mapping holds the
 * vIOMMU (DESTROY EBUSY) until unmapped, also in a fork child.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { IOMMU_VIOMMU_TYPE_SELFTEST, IommuViommuSelftest } from '../../src/abi/iommufd-test.ts';
import { SimMm } from '../../src/host/sim-mm.ts';
import type { SharedStore } from '../../src/kernel/file.ts';
import { deviceMmapOp } from '../../src/server/device-mmap.ts';
import { OP } from '../../src/server/protocol.ts';
import { type Fixture, setup } from '../support.ts';
import { mockDomain } from './mock.ts';
import { PAGE } from './util.ts';

const MAP_SHARED = 1;
const MAP_PRIVATE = 2;
const PROT_RW = 3;
const PROT_EXEC = 4;

/** Shared stores in memory, remembered so a test can read what a mapping shows. */
function stores() {
  const made: { name: string; bytes: Uint8Array; closed: boolean }[] = [];
  const share = (name: string, size: bigint): SharedStore => {
    const s = { name, bytes: new Uint8Array(Number(size)), closed: false };
    made.push(s);
    return {
      fd: 40 + made.length,
      read: (o, n) => s.bytes.slice(Number(o), Number(o) + n),
      write: (o, d) => s.bytes.set(d, Number(o)),
      zero: (o, n) => s.bytes.fill(0, Number(o), Number(o + n)),
      close: () => {
        s.closed = true;
      },
    };
  };
  return { made, host: { share, busRange: () => 0n } };
}

/** A mock device and a nesting-parent HWPT, on the profile `version`. */
function parent(version: '6.18' | '7.2' = '7.2') {
  const f = setup({ version });
  const ioas = f.ioas();
  const { idev } = mockDomain(f, ioas);
  const hwpt = f.call('IOMMU_HWPT_ALLOC', { dev_id: idev, pt_id: ioas, flags: 1 }).out
    .out_hwpt_id as number;
  return { f, idev, hwpt };
}

/** VIOMMU_ALLOC with `len` bytes of iommu_viommu_selftest {in_data}; the errno, id and the data read back. */
function viommu(f: Fixture, idev: number, hwpt: number, len: number, inData = 0xbeef) {
  const data = f.mem(PAGE);
  f.proc.mm.write(data, new Uint8Array(24).fill(0xaa));
  f.proc.mm.write(data, new Uint8Array(new Uint32Array([inData]).buffer));
  const r = f.call('IOMMU_VIOMMU_ALLOC', {
    dev_id: idev,
    hwpt_id: hwpt,
    type: IOMMU_VIOMMU_TYPE_SELFTEST,
    data_len: len,
    data_uptr: data,
  });
  const raw = f.proc.mm.read(data, 24);
  return {
    errno: r.errno,
    id: r.out.out_viommu_id as number,
    raw,
    out: IommuViommuSelftest.decode(raw),
  };
}

describe('mmap of /dev/iommu: the mock vIOMMU region', () => {
  it('VIOMMU_ALLOC writes the offset and length back, as many bytes as given; regions take the lowest free offset', () => {
    for (const version of ['6.18', '7.2'] as const) {
      const { f, idev, hwpt } = parent(version);
      const a = viommu(f, idev, hwpt, 24);
      assert.equal(a.errno, undefined, version);
      assert.deepEqual(
        [a.out.out_data, a.out.out_mmap_offset, a.out.out_mmap_length],
        [0xbeef, PAGE, 2n * PAGE],
        'offset 0 is never handed out',
      );
      const b = viommu(f, idev, hwpt, 16);
      assert.equal(b.out.out_mmap_offset, 3n * PAGE);
      assert.ok(
        b.raw.subarray(16).every((x) => x === 0xaa),
        'the length is past the 16 bytes given',
      );
      const c = viommu(f, idev, hwpt, 8);
      assert.equal(c.out.out_data, 0xbeef);
      assert.ok(
        c.raw.subarray(8).every((x) => x === 0xaa),
        'only in_data/out_data written',
      );
      assert.equal(viommu(f, idev, hwpt, 25).errno, 'EINVAL');
      assert.equal(viommu(f, idev, hwpt, 4).errno, 'EINVAL');
      assert.equal(f.call('IOMMU_DESTROY', { id: a.id }).errno, undefined);
      assert.equal(viommu(f, idev, hwpt, 24).out.out_mmap_offset, PAGE, 'the freed range again');
      assert.equal(viommu(f, idev, hwpt, 24).out.out_mmap_offset, 7n * PAGE, 'c took 5..6');
    }
  });

  it('maps only the exact region, shared and not executable; the first u32 is in_data', () => {
    const { f, idev, hwpt } = parent();
    const { out } = viommu(f, idev, hwpt, 24, 0x1234_5678);
    const { made, host } = stores();
    const mmap = (offset: bigint, length: bigint, flags = MAP_SHARED, prot = PROT_RW, addr = 0n) =>
      deviceMmapOp(
        f.proc,
        {
          op: OP.MMAP,
          pid: 1,
          tid: 1,
          args: [BigInt(f.fd), offset, length, BigInt(flags), BigInt(prot), addr],
        },
        host,
      );
    const errno = (fn: () => unknown) => {
      try {
        fn();
        return undefined;
      } catch (e) {
        return (e as { code?: string }).code;
      }
    };
    const off = out.out_mmap_offset;
    const len = out.out_mmap_length;
    assert.equal(
      errno(() => mmap(off + PAGE, len)),
      'ENXIO',
      'inside the region',
    );
    assert.equal(
      errno(() => mmap(off + 2n * PAGE, len)),
      'ENXIO',
      'past it',
    );
    assert.equal(
      errno(() => mmap(off, len / 2n)),
      'ENXIO',
      'half',
    );
    assert.equal(
      errno(() => mmap(off, len * 2n)),
      'ENXIO',
      'twice',
    );
    assert.equal(
      errno(() => mmap(0n, PAGE)),
      'ENXIO',
      'offset 0',
    );
    assert.equal(
      errno(() => mmap(off, len, MAP_PRIVATE)),
      'EINVAL',
    );
    assert.equal(
      errno(() => mmap(off, len, MAP_SHARED, PROT_RW | PROT_EXEC)),
      'EPERM',
    );
    assert.equal(
      errno(() => mmap(off + 8n, len)),
      'EINVAL',
      'offset inside a page (sys_mmap)',
    );
    assert.equal(
      errno(() => mmap(off, 0n)),
      'EINVAL',
      'length 0 (do_mmap)',
    );
    assert.equal(made.length, 0, 'no check left a shared file behind');
    assert.equal(mmap(off, len - 100n).ret, 41n, 'the length rounds up to whole pages');
    assert.equal(new DataView(made[0]!.bytes.buffer).getUint32(0, true), 0x1234_5678);
    assert.ok(
      made[0]!.bytes.subarray(4).every((x) => x === 0),
      'the rest is zeroed',
    );
  });

  it('every piece of a mapping holds the vIOMMU: DESTROY is EBUSY until the last is unmapped, also in a fork child', () => {
    const { f, idev, hwpt } = parent();
    const v = viommu(f, idev, hwpt, 24);
    const { made, host } = stores();
    const va = f.mem(2n * PAGE);
    const r = deviceMmapOp(
      f.proc,
      {
        op: OP.MMAP,
        pid: 1,
        tid: 1,
        args: [
          BigInt(f.fd),
          v.out.out_mmap_offset,
          2n * PAGE,
          BigInt(MAP_SHARED),
          BigInt(PROT_RW),
          va,
        ],
      },
      host,
    );
    assert.equal(r.ret, 0n);
    const destroy = () => f.call('IOMMU_DESTROY', { id: v.id }).errno;
    assert.equal(destroy(), 'EBUSY');
    f.proc.ioMaps.remove(va, PAGE);
    assert.equal(destroy(), 'EBUSY', 'the second page still maps it');
    const child = f.proc.fork(5000, new SimMm(f.kernel.memory));
    f.proc.ioMaps.remove(va + PAGE, PAGE);
    assert.equal(destroy(), 'EBUSY', "the child's copy holds it");
    child.exit();
    assert.equal(destroy(), undefined);
    assert.equal(made[0]!.closed, true, 'the shared file is let go with the region');
  });
});
