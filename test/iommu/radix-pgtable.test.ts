import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { Errno } from '../../src/abi/errno.ts';
import type { IoPgtableConfig, IoPte } from '../../src/iommu/io-pgtable.ts';
import { IOMMU_READ, IOMMU_WRITE } from '../../src/iommu/prot.ts';
import { RadixPgtable } from '../../src/iommu/radix-pgtable.ts';
import { dirtyLeavesOf } from './dirty-leaves.ts';

const K4 = 1n << 12n;
const M2 = 1n << 21n;
const G1 = 1n << 30n;
const T1 = 1n << 40n;
const RW = IOMMU_READ | IOMMU_WRITE;

/** A VT-d-like 4-level table (48-bit). */
function vtd(pgsizeBitmap = K4 | M2 | G1, levels = 4): RadixPgtable {
  return new RadixPgtable({ pageShift: 12, bitsPerLevel: 9, levels, base: 0n, pgsizeBitmap });
}

function throwsErrno(fn: () => unknown, code: string): void {
  assert.throws(fn, (e: unknown) => e instanceof Errno && e.code === code);
}

/** Everything observable about a table, for "nothing changed" checks. */
function snapshot(t: RadixPgtable): unknown {
  const dirty = dirtyLeaves(t, t.config.base, 1n << 64n, true).map(([leaf]) => leaf);
  return { runs: t.runs(t.config.base, 1n << 64n), objects: t.objectCount, dirty };
}

function pte(iova: bigint, length: bigint, phys: bigint, pageSize: bigint, prot = RW): IoPte {
  const level = [K4, M2, G1, 1n << 39n].indexOf(pageSize);
  return { iova, length, phys, prot, pageSize, level };
}

function dirtyLeaves(t: RadixPgtable, iova: bigint, length: bigint, keep: boolean): bigint[][] {
  return dirtyLeavesOf((visit) => t.readDirtySpans(iova, length, keep, visit));
}

describe('RadixPgtable config', () => {
  const good: IoPgtableConfig = {
    pageShift: 12,
    bitsPerLevel: 9,
    levels: 4,
    base: 0n,
    pgsizeBitmap: K4 | M2,
  };
  it('accepts a VT-d geometry and a 64-bit one', () => {
    assert.equal(new RadixPgtable(good).objectCount, 1);
    new RadixPgtable({ ...good, pageShift: 10, levels: 6, pgsizeBitmap: 1n << 10n });
  });
  it('rejects impossible geometry and page sizes with EINVAL', () => {
    throwsErrno(() => new RadixPgtable({ ...good, levels: 0 }), 'EINVAL');
    throwsErrno(() => new RadixPgtable({ ...good, bitsPerLevel: 0 }), 'EINVAL');
    throwsErrno(() => new RadixPgtable({ ...good, pageShift: 1.5 }), 'EINVAL');
    throwsErrno(() => new RadixPgtable({ ...good, levels: 6 }), 'EINVAL');
    throwsErrno(() => new RadixPgtable({ ...good, pgsizeBitmap: 0n }), 'EINVAL');
    throwsErrno(() => new RadixPgtable({ ...good, pgsizeBitmap: K4 | (1n << 16n) }), 'EINVAL');
    throwsErrno(() => new RadixPgtable({ ...good, pgsizeBitmap: 1n << 48n }), 'EINVAL');
    throwsErrno(() => new RadixPgtable({ ...good, base: M2 + K4 }), 'EINVAL');
    throwsErrno(() => new RadixPgtable({ ...good, base: (1n << 64n) - (1n << 47n) }), 'EINVAL');
  });
  it('allows a window base aligned to the largest page', () => {
    const base = 1n << 59n;
    const t = new RadixPgtable({ ...good, base });
    t.map(base + M2, 4n * M2, M2, RW);
    assert.deepEqual(t.lookup(base + M2 + 5n), pte(base + M2, M2, 4n * M2, M2));
    throwsErrno(() => t.map(base - K4, 0n, K4, RW), 'EINVAL');
    throwsErrno(() => t.map(base + (1n << 48n) - K4, 0n, 2n * K4, RW), 'EINVAL');
  });
});

describe('RadixPgtable map and lookup', () => {
  it('uses 2 MiB leaves when iova and phys are 2 MiB aligned', () => {
    const t = vtd();
    t.map(M2, 4n * M2, 2n * M2, RW);
    assert.deepEqual(t.lookup(M2 + 12345n), pte(M2, M2, 4n * M2, M2));
    assert.deepEqual(t.lookup(3n * M2 - 1n), pte(2n * M2, M2, 5n * M2, M2));
    assert.equal(t.lookup(M2 - 1n), undefined);
    assert.equal(t.lookup(3n * M2), undefined);
  });

  it('falls back to 4 KiB leaves when phys is not 2 MiB aligned', () => {
    const t = vtd();
    t.map(M2, 4n * M2 + K4, M2, IOMMU_READ);
    assert.deepEqual(t.lookup(M2 + K4), pte(M2 + K4, K4, 4n * M2 + 2n * K4, K4, IOMMU_READ));
    assert.deepEqual(t.runs(0n, G1), [pte(M2, M2, 4n * M2 + K4, K4, IOMMU_READ)]);
  });

  it('uses 1 GiB leaves, and only allowed sizes', () => {
    const t = vtd();
    t.map(G1, 3n * G1, G1, RW);
    assert.deepEqual(t.lookup(G1 + 77n), pte(G1, G1, 3n * G1, G1));
    const only4k = vtd(K4);
    only4k.map(G1, 3n * G1, G1, RW);
    assert.deepEqual(only4k.lookup(G1 + 77n), pte(G1, K4, 3n * G1, K4));
    const no2m = vtd(K4 | G1);
    no2m.map(G1 - M2, G1 - M2, G1 + M2, RW);
    assert.deepEqual(no2m.runs(0n, 4n * G1), [pte(G1 - M2, M2, G1 - M2, K4), pte(G1, G1, G1, G1)]);
  });

  it('grows the page size through the head and shrinks it through the tail', () => {
    const t = vtd();
    const iova = G1 - M2 - 2n * K4;
    const phys = iova + 4n * G1;
    t.map(iova, phys, 2n * K4 + M2 + G1 + M2 + 3n * K4, RW);
    assert.deepEqual(t.runs(0n, 1n << 48n), [
      pte(iova, 2n * K4, phys, K4),
      pte(G1 - M2, M2, phys + 2n * K4, M2),
      pte(G1, G1, 5n * G1, G1),
      pte(2n * G1, M2, 6n * G1, M2),
      pte(2n * G1 + M2, 3n * K4, 6n * G1 + M2, K4),
    ]);
  });

  it('keeps the smaller size when a larger one would not fit after the boundary', () => {
    const t = vtd();
    t.map(M2 - K4, M2 - K4, K4 + M2 - K4, RW);
    assert.deepEqual(t.runs(0n, G1), [pte(M2 - K4, M2, M2 - K4, K4)]);
  });

  it('fails with EEXIST on any overlap and changes nothing', () => {
    const t = vtd();
    t.map(G1 + M2 + K4, 0x1000_0000n, 5n * K4, RW);
    t.map(4n * G1, 4n * G1, G1, IOMMU_READ);
    t.setDirty(4n * G1);
    const before = snapshot(t);
    throwsErrno(() => t.map(G1, 0n, M2 + 2n * K4, RW), 'EEXIST');
    throwsErrno(() => t.map(G1 + M2 + 5n * K4, 0n, K4, RW), 'EEXIST');
    throwsErrno(() => t.map(0n, 0n, 8n * G1, RW), 'EEXIST');
    throwsErrno(() => t.map(5n * G1 - K4, 0n, 2n * K4, RW), 'EEXIST');
    assert.deepEqual(snapshot(t), before);
    t.map(G1 + M2 + 6n * K4, 0n, K4, RW);
    t.map(G1 + M2, 0n, K4, RW);
  });

  it('fails with EINVAL when misaligned or outside the table and changes nothing', () => {
    const t = vtd(K4 | M2 | G1, 3);
    t.map(M2, M2, M2, RW);
    const before = snapshot(t);
    throwsErrno(() => t.map(K4 + 1n, 0n, K4, RW), 'EINVAL');
    throwsErrno(() => t.map(0n, 1n, K4, RW), 'EINVAL');
    throwsErrno(() => t.map(0n, 0n, K4 + 1n, RW), 'EINVAL');
    throwsErrno(() => t.map(0n, 0n, -K4, RW), 'EINVAL');
    throwsErrno(() => t.map(-K4, 0n, K4, RW), 'EINVAL');
    throwsErrno(() => t.map((1n << 39n) - K4, 0n, 2n * K4, RW), 'EINVAL');
    throwsErrno(() => t.map(0n, (1n << 64n) - K4, 2n * K4, RW), 'EINVAL');
    throwsErrno(() => t.unmap(K4, K4 + 1n), 'EINVAL');
    throwsErrno(() => t.unmap(1n << 39n, K4), 'EINVAL');
    assert.deepEqual(snapshot(t), before);
  });

  it('treats a zero length as a no-op', () => {
    const t = vtd();
    t.map(0n, 0n, 0n, RW);
    assert.equal(t.unmap(0n, 0n), 0n);
    assert.equal(t.objectCount, 1);
  });
});

describe('RadixPgtable unmap', () => {
  it('splits a huge leaf, leaving the largest leaves that fit', () => {
    const t = vtd();
    t.map(G1, 8n * G1, G1, RW);
    assert.equal(t.unmap(G1 + M2 + 3n * K4, K4), K4);
    assert.equal(t.lookup(G1 + M2 + 3n * K4), undefined);
    assert.deepEqual(
      t.lookup(G1 + M2 + 4n * K4),
      pte(G1 + M2 + 4n * K4, K4, 8n * G1 + M2 + 4n * K4, K4),
    );
    assert.deepEqual(t.lookup(G1 + 5n), pte(G1, M2, 8n * G1, M2));
    assert.deepEqual(t.runs(0n, 4n * G1), [
      pte(G1, M2, 8n * G1, M2),
      pte(G1 + M2, 3n * K4, 8n * G1 + M2, K4),
      pte(G1 + M2 + 4n * K4, M2 - 4n * K4, 8n * G1 + M2 + 4n * K4, K4),
      pte(G1 + 2n * M2, G1 - 2n * M2, 8n * G1 + 2n * M2, M2),
    ]);
  });

  it('keeps the smaller leaves when the hole in a split leaf is refilled', () => {
    const t = vtd();
    t.map(0n, 0n, 2n * G1, RW);
    t.unmap(G1 + M2, M2);
    t.map(G1 + M2, G1 + M2, M2, RW);
    assert.deepEqual(t.runs(0n, 4n * G1), [pte(0n, G1, 0n, G1), pte(G1, G1, G1, M2)]);
  });

  it('returns only the bytes that were mapped, across holes and partial leaves', () => {
    const t = vtd();
    t.map(0n, 0n, M2, RW);
    t.map(4n * M2, 4n * M2, 3n * K4, RW);
    assert.equal(t.unmap(M2 - 2n * K4, 3n * M2 + 2n * K4 + K4), 3n * K4);
    assert.deepEqual(t.runs(0n, G1), [
      pte(0n, M2 - 2n * K4, 0n, K4),
      pte(4n * M2 + K4, 2n * K4, 4n * M2 + K4, K4),
    ]);
    assert.equal(t.unmap(0n, 1n << 48n), M2);
    assert.equal(t.objectCount, 1);
    assert.equal(t.unmap(0n, G1), 0n);
  });
});

describe('RadixPgtable runs', () => {
  it('clips runs to the query', () => {
    const t = vtd();
    t.map(M2, 0n, 4n * M2, RW);
    assert.deepEqual(t.runs(M2 + K4, 2n * K4), [pte(M2 + K4, 2n * K4, K4, M2)]);
    assert.deepEqual(t.runs(4n * M2, G1), [pte(4n * M2, M2, 3n * M2, M2)]);
    assert.deepEqual(t.runs(0n, M2), []);
  });

  it('joins separately mapped leaves into maximal runs only when compatible', () => {
    const t = vtd();
    t.map(0n, 0x10_0000n, K4, RW);
    t.map(K4, 0x10_1000n, K4, RW);
    t.map(2n * K4, 0x10_2000n, K4, IOMMU_READ);
    t.map(3n * K4, 0x20_0000n, K4, IOMMU_READ);
    assert.deepEqual(t.runs(0n, M2), [
      pte(0n, 2n * K4, 0x10_0000n, K4),
      pte(2n * K4, K4, 0x10_2000n, K4, IOMMU_READ),
      pte(3n * K4, K4, 0x20_0000n, K4, IOMMU_READ),
    ]);
  });

  it('folds full tables built page by page back into one run', () => {
    const t = vtd();
    for (let i = 0n; i < 1024n; i++) t.map(i * K4, 0x4000_0000n + i * K4, K4, RW);
    assert.deepEqual(t.runs(0n, G1), [pte(0n, 2n * M2, 0x4000_0000n, K4)]);
    assert.ok(t.objectCount <= 8, `objectCount ${t.objectCount}`);
  });
});

describe('RadixPgtable dirty bits', () => {
  it('sets, reads, keeps and clears one bit per leaf', () => {
    const t = vtd();
    t.map(0n, 0n, 4n * M2, RW);
    assert.equal(t.setDirty(4n * M2), false);
    assert.equal(t.setDirty(M2 + 5n), true);
    assert.equal(t.setDirty(M2 + 7n), true);
    assert.deepEqual(dirtyLeaves(t, M2 + M2 / 2n, K4, true), [[M2, M2]]);
    assert.deepEqual(dirtyLeaves(t, 0n, G1, false), [[M2, M2]]);
    assert.deepEqual(dirtyLeaves(t, 0n, G1, false), []);
  });

  it('clears only the leaves the read intersects', () => {
    const t = vtd();
    t.map(0n, K4, M2, RW);
    const mapped = t.objectCount;
    for (const i of [1n, 2n, 3n, 7n]) t.setDirty(i * K4);
    assert.equal(t.objectCount, mapped + 2, 'adjacent dirty leaves share one entry');
    assert.deepEqual(dirtyLeaves(t, 2n * K4, K4, false), [[2n * K4, K4]]);
    assert.deepEqual(dirtyLeaves(t, 0n, M2, true), [
      [K4, K4],
      [3n * K4, K4],
      [7n * K4, K4],
    ]);
  });

  it('drops the bits of unmapped leaves', () => {
    const t = vtd();
    t.map(0n, 0n, 8n * K4, RW);
    for (let i = 1n; i < 8n; i++) t.setDirty(i * K4);
    t.unmap(2n * K4, 3n * K4);
    t.map(2n * K4, 0n, 3n * K4, RW);
    assert.deepEqual(
      dirtyLeaves(t, 0n, M2, false).map(([leaf]) => leaf! / K4),
      [1n, 5n, 6n, 7n],
    );
  });

  it('lets the sub-leaves of a split dirty huge leaf inherit its bit', () => {
    const t = vtd();
    t.map(0n, 0n, M2, RW);
    t.setDirty(0n);
    t.unmap(M2 - K4, K4);
    const leaves = dirtyLeaves(t, 0n, M2, false);
    assert.equal(leaves.length, 511);
    assert.deepEqual(leaves[510], [M2 - 2n * K4, K4]);
    assert.deepEqual(dirtyLeaves(t, 0n, M2, false), []);
  });
});

describe('RadixPgtable cost follows mappings', () => {
  it('maps 1 TiB of 4 KiB pages and punches a hole in O(levels) objects', () => {
    const t = vtd(K4);
    const iova = 5n * K4;
    const phys = 0x80_0000_0000n + 3n * K4;
    t.map(iova, phys, T1, RW);
    const mapped = t.objectCount;
    assert.ok(mapped < 100, `objectCount after map ${mapped}`);
    const mid = iova + T1 / 2n + 12345n * K4;
    assert.deepEqual(t.lookup(mid + 7n), pte(mid, K4, phys + (mid - iova), K4));
    assert.equal(t.unmap(mid, K4), K4);
    assert.ok(t.objectCount - mapped <= 4 * 4, `objectCount after hole ${t.objectCount}`);
    assert.deepEqual(t.runs(0n, 1n << 48n), [
      pte(iova, mid - iova, phys, K4),
      pte(mid + K4, T1 - (mid - iova) - K4, phys + (mid - iova) + K4, K4),
    ]);
    t.setDirty(mid + K4);
    assert.deepEqual(dirtyLeaves(t, 0n, 1n << 48n, false), [[mid + K4, K4]]);
    assert.equal(t.unmap(0n, 1n << 48n), T1 - K4);
    assert.equal(t.objectCount, 1);
  });

  it('keeps a 1 TiB map with huge pages tiny', () => {
    const t = vtd();
    t.map(0n, 0n, T1, RW);
    assert.equal(t.objectCount, 2);
    assert.deepEqual(t.lookup(T1 - 1n), pte(T1 - G1, G1, T1 - G1, G1));
  });
});

/** A naive page table: one entry per 4 KiB page, leaves split ARM-style one size at a time. */
class RefTable {
  readonly pages = new Map<bigint, { start: bigint; size: bigint; phys: bigint; prot: number }>();
  readonly dirty = new Set<bigint>();
  constructor(
    readonly base: bigint,
    readonly end: bigint,
    readonly sizes: bigint[],
  ) {}

  private check(iova: bigint, length: bigint): void {
    const min = this.sizes[0]!;
    if (length < 0n || iova % min !== 0n || length % min !== 0n) throw new Errno('EINVAL');
    if (iova < this.base || iova + length > this.end) throw new Errno('EINVAL');
  }

  map(iova: bigint, phys: bigint, length: bigint, prot: number): void {
    this.check(iova, length);
    if (phys % this.sizes[0]! !== 0n) throw new Errno('EINVAL');
    for (let x = iova; x < iova + length; x += K4) if (this.pages.has(x)) throw new Errno('EEXIST');
    while (length > 0n) {
      const size = this.sizes.filter((s) => s <= length && (iova | phys) % s === 0n).pop()!;
      this.setLeaf(iova, size, phys, prot);
      iova += size;
      phys += size;
      length -= size;
    }
  }

  private setLeaf(start: bigint, size: bigint, phys: bigint, prot: number): void {
    const leaf = { start, size, phys, prot };
    for (let x = start; x < start + size; x += K4) this.pages.set(x, leaf);
  }

  private split(x: bigint): void {
    for (;;) {
      const leaf = this.pages.get(x);
      if (!leaf || leaf.start === x) return;
      const sub = this.sizes.filter((s) => s < leaf.size).pop()!;
      const wasDirty = this.dirty.delete(leaf.start);
      for (let off = 0n; off < leaf.size; off += sub) {
        this.setLeaf(leaf.start + off, sub, leaf.phys + off, leaf.prot);
        if (wasDirty) this.dirty.add(leaf.start + off);
      }
    }
  }

  unmap(iova: bigint, length: bigint): bigint {
    this.check(iova, length);
    if (length === 0n) return 0n;
    this.split(iova);
    this.split(iova + length);
    let bytes = 0n;
    for (let x = iova; x < iova + length; x += K4) {
      if (this.pages.delete(x)) bytes += K4;
      this.dirty.delete(x);
    }
    return bytes;
  }

  lookup(iova: bigint): IoPte | undefined {
    const leaf = this.pages.get(iova - (iova % K4));
    if (!leaf) return undefined;
    const { start, size, phys, prot } = leaf;
    return { iova: start, length: size, phys, prot, pageSize: size, level: 0 };
  }

  runs(iova: bigint, length: bigint): IoPte[] {
    const out: IoPte[] = [];
    for (let x = iova; x < iova + length; x += K4) {
      const leaf = this.pages.get(x);
      if (!leaf) continue;
      const phys = leaf.phys + (x - leaf.start);
      const prev = out[out.length - 1];
      if (
        prev &&
        prev.iova + prev.length === x &&
        prev.phys + prev.length === phys &&
        prev.prot === leaf.prot &&
        prev.pageSize === leaf.size
      ) {
        prev.length += K4;
      } else {
        out.push({ iova: x, length: K4, phys, prot: leaf.prot, pageSize: leaf.size, level: 0 });
      }
    }
    return out;
  }

  setDirty(iova: bigint): boolean {
    const leaf = this.pages.get(iova);
    if (leaf) this.dirty.add(leaf.start);
    return leaf !== undefined;
  }

  readDirty(iova: bigint, length: bigint, keep: boolean): bigint[][] {
    const hits = [...this.dirty]
      .sort((a, b) => (a < b ? -1 : 1))
      // a leaf counts when it overlaps [iova, iova + length): an empty range overlaps none
      .filter((s) => length > 0n && s < iova + length && s + this.pages.get(s)!.size > iova);
    if (!keep) for (const s of hits) this.dirty.delete(s);
    return hits.map((s) => [s, this.pages.get(s)!.size]);
  }
}

type Op =
  | {
      op: 'map';
      page: number;
      pages: number;
      phys: { abs: bigint } | { rel: bigint };
      prot: number;
    }
  | { op: 'unmap'; page: number; pages: number }
  | { op: 'setDirty'; page: number }
  | { op: 'readDirty'; page: number; pages: number; keep: boolean };

function outcome<T>(fn: () => T): T | string {
  try {
    return fn();
  } catch (e) {
    if (e instanceof Errno) return e.code;
    throw e;
  }
}

describe('RadixPgtable against a page-by-page reference', () => {
  it('agrees on random map/unmap/dirty sequences', () => {
    // Levels of 4 entries: leaves of 4 KiB, 16 KiB and 64 KiB; 64 pages in all.
    const SPAN_PAGES = 64;
    const page = fc.integer({ min: 0, max: SPAN_PAGES + 1 });
    const count = fc.integer({ min: 0, max: 24 });
    const op: fc.Arbitrary<Op> = fc.oneof(
      fc.record({
        op: fc.constant('map' as const),
        page,
        pages: count,
        // Absolute, or at a fixed offset from the IOVA so that refills join their neighbours.
        phys: fc.oneof(
          fc.integer({ min: 0, max: 1023 }).map((p) => ({ abs: BigInt(p) * K4 })),
          fc.integer({ min: 0, max: 2 }).map((k) => ({ rel: BigInt(k) << 16n })),
        ),
        prot: fc.constantFrom(IOMMU_READ, IOMMU_WRITE, RW),
      }),
      fc.record({ op: fc.constant('unmap' as const), page, pages: count }),
      fc.record({ op: fc.constant('setDirty' as const), page }),
      fc.record({ op: fc.constant('readDirty' as const), page, pages: count, keep: fc.boolean() }),
    );
    const bitmap = fc
      .subarray([K4, 1n << 14n, 1n << 16n], { minLength: 1 })
      .map((s) => s.reduce((a, b) => a | b, 0n));
    fc.assert(
      fc.property(
        bitmap,
        fc.constantFrom(0n, 1n << 18n, 3n << 18n),
        fc.array(op, { maxLength: 30 }),
        (pgsizeBitmap, base, ops) => {
          const t = new RadixPgtable({
            pageShift: 12,
            bitsPerLevel: 2,
            levels: 3,
            base,
            pgsizeBitmap,
          });
          const end = base + BigInt(SPAN_PAGES) * K4;
          const sizes = [K4, 1n << 14n, 1n << 16n].filter((s) => pgsizeBitmap & s);
          const ref = new RefTable(base, end, sizes);
          for (const o of ops) {
            const iova = base + BigInt(o.page) * K4;
            const len = 'pages' in o ? BigInt(o.pages) * K4 : 0n;
            if (o.op === 'map') {
              const phys = 'abs' in o.phys ? o.phys.abs : iova - base + o.phys.rel;
              const got = outcome(() => t.map(iova, phys, len, o.prot));
              assert.equal(
                got,
                outcome(() => ref.map(iova, phys, len, o.prot)),
              );
            } else if (o.op === 'unmap') {
              assert.equal(
                outcome(() => t.unmap(iova, len)),
                outcome(() => ref.unmap(iova, len)),
              );
            } else if (o.op === 'setDirty') {
              assert.equal(t.setDirty(iova), ref.setDirty(iova));
            } else {
              assert.deepEqual(dirtyLeaves(t, iova, len, o.keep), ref.readDirty(iova, len, o.keep));
            }
            for (let x = base; x < end; x += K4) {
              const a = t.lookup(x + 1n);
              const b = ref.lookup(x);
              assert.deepEqual(a && { ...a, level: 0 }, b);
              if (a) assert.equal(a.pageSize, 1n << BigInt(12 + 2 * a.level));
            }
            const runs = t.runs(base, end - base).map((r) => ({ ...r, level: 0 }));
            assert.deepEqual(runs, ref.runs(base, end - base));
          }
          assert.deepEqual(
            dirtyLeaves(t, base, end - base, true),
            ref.readDirty(base, end - base, true),
          );
          t.unmap(base, end - base);
          assert.equal(t.objectCount, 1);
        },
      ),
      { numRuns: 500 },
    );
  });
});
