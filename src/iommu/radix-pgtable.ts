import { fail } from '../abi/errno.ts';
import { SortedRanges } from '../util/sorted-ranges.ts';
import type { DirtySpans, IoPgtable, IoPgtableConfig, IoPte } from './io-pgtable.ts';

/** A node's pointer to the child table of exactly one entry `[start, last]`. */
interface ChildSeg {
  readonly kind: 'child';
  readonly start: bigint;
  readonly last: bigint;
  readonly node: TableNode;
}

/**
 * Whole entries `[start, last]` of a node, mapped by leaves of level
 * `pageLevel` (at most the node's level) with phys rising linearly from
 * `phys` and one `prot`. `last` may grow when neighbours merge.
 */
interface RunSeg {
  readonly kind: 'run';
  readonly start: bigint;
  last: bigint;
  readonly phys: bigint;
  readonly prot: number;
  readonly pageLevel: number;
}

type Seg = ChildSeg | RunSeg;

/** One table of the radix tree: its entries (each `entrySize(level)` bytes) as sorted segments. */
interface TableNode {
  readonly level: number;
  readonly start: bigint;
  readonly segs: SortedRanges<Seg>;
}

/** Every leaf inside `[start, last]` is dirty. */
interface DirtyRange {
  start: bigint;
  last: bigint;
}

/** A piece of a map request that uses one page size throughout. */
interface Piece {
  iova: bigint;
  phys: bigint;
  length: bigint;
  level: number;
}

const U64_END = 1n << 64n;

const min = (a: bigint, b: bigint): bigint => (a < b ? a : b);
const max = (a: bigint, b: bigint): bigint => (a > b ? a : b);

function newNode(level: number, start: bigint): TableNode {
  return { level, start, segs: new SortedRanges<Seg>() };
}

/**
 * A multi-level radix IO page table (see {@link IoPgtable}) whose tables hold
 * compressed entries: each node keeps a sorted list of segments, either a
 * child pointer for one entry or a linear run over whole entries whose leaves
 * (possibly of a lower level) share page size and prot and have linear phys.
 *
 * Costs: map, unmap, lookup and setDirty are O(levels × log segments), plus,
 * for unmap, the objects it frees; runs() and readDirtySpans() add their output
 * size. Splitting at an unmap edge materialises O(levels) nodes and
 * segments. Adjacent compatible runs merge on map, and a child table holding
 * one full run folds back into its parent.
 *
 * Splitting a leaf follows the ARM io-pgtable: the leaf becomes leaves of
 * the next allowed smaller size, and the one holding the edge splits again.
 * The result equals re-mapping the remaining parts with iommu_pgsize().
 *
 * Dirty bits are ranges of leaves ("every leaf in here is dirty"), so a dirty
 * huge leaf that is split leaves all its sub-leaves dirty at no extra cost,
 * and setDirty on adjacent leaves grows one range. Unmap drops the bits of
 * the leaves it removes.
 *
 * `objectCount` = nodes (the root included) + segments + dirty ranges.
 *
 * @example
 * const t = new RadixPgtable({ pageShift: 12, bitsPerLevel: 9, levels: 4, base: 0n, pgsizeBitmap: 0x1000n });
 * t.map(0n, 0n, 1n << 40n, IOMMU_READ); // 1 TiB of 4 KiB leaves
 * t.objectCount; // 2: the root and one run
 */
export class RadixPgtable implements IoPgtable {
  readonly config: IoPgtableConfig;
  /** entrySize[L]: bytes one entry of a level-L table covers; entrySize[levels] is the whole table. */
  private readonly entrySize: readonly bigint[];
  /** entryMask[L] = entrySize[L] - 1; entryAlign[L] its complement (rounds down to an entry). */
  private readonly entryMask: readonly bigint[];
  private readonly entryAlign: readonly bigint[];
  /** Allowed leaf sizes, ascending, with their levels. */
  private readonly sizes: readonly { readonly size: bigint; readonly level: number }[];
  /** lowerLevel[L]: the largest allowed leaf level below L, or -1. */
  private readonly lowerLevel: readonly number[];
  private readonly minPage: bigint;
  /** One past the last IOVA the table covers. */
  private readonly end: bigint;
  private readonly root: TableNode;
  private readonly dirty = new SortedRanges<DirtyRange>();
  private nodes = 1;
  private segments = 0;
  /** The run runAt found last: dirty marking walks IOVAs in order. Map and unmap forget it (runs merge and split). */
  private hot: RunSeg | undefined;

  /** EINVAL unless the geometry fits in 64 bits, every page size is a level's, and base is aligned to the largest. */
  constructor(config: IoPgtableConfig) {
    const { pageShift, bitsPerLevel, levels, base, pgsizeBitmap } = config;
    const whole = (n: number, lo: number): boolean => Number.isInteger(n) && n >= lo;
    if (
      !whole(pageShift, 0) ||
      !whole(bitsPerLevel, 1) ||
      !whole(levels, 1) ||
      pageShift + levels * bitsPerLevel > 64
    ) {
      fail('EINVAL', 'page table geometry exceeds 64 bits', 'uiommu_pgtable_config');
    }
    this.entrySize = Array.from(
      { length: levels + 1 },
      (_, l) => 1n << BigInt(pageShift + l * bitsPerLevel),
    );
    this.entryMask = this.entrySize.map((size) => size - 1n);
    this.entryAlign = this.entryMask.map((mask) => ~mask);
    const sizes: { size: bigint; level: number }[] = [];
    const lowerLevel: number[] = [];
    let levelMask = 0n;
    for (let l = 0; l < levels; l++) {
      const size = this.entrySize[l]!;
      lowerLevel.push(sizes.length > 0 ? sizes[sizes.length - 1]!.level : -1);
      levelMask |= size;
      if (pgsizeBitmap & size) sizes.push({ size, level: l });
    }
    if (pgsizeBitmap <= 0n || (pgsizeBitmap & ~levelMask) !== 0n) {
      fail(
        'EINVAL',
        'pgsizeBitmap holds a size that is no level of the table',
        'uiommu_pgtable_config',
      );
    }
    const largest = sizes[sizes.length - 1]!.size;
    this.end = base + this.entrySize[levels]!;
    if (base < 0n || base % largest !== 0n || this.end > U64_END) {
      fail(
        'EINVAL',
        'base misaligned to the largest page size or table past 2^64',
        'uiommu_pgtable_config',
      );
    }
    this.sizes = sizes;
    this.lowerLevel = lowerLevel;
    this.minPage = sizes[0]!.size;
    this.root = newNode(levels - 1, base);
    this.config = Object.freeze({ ...config });
  }

  get objectCount(): number {
    return this.nodes + this.segments + this.dirty.size;
  }

  /** Length 0 is a no-op (as iommu_map()) once iova and phys pass the checks. */
  map(iova: bigint, phys: bigint, length: bigint, prot: number, maxPageSize?: bigint): void {
    this.hot = undefined;
    this.checkRange(iova, length);
    if (phys < 0n || phys % this.minPage !== 0n || phys + length > U64_END) {
      fail('EINVAL', 'phys misaligned or past 2^64', 'iommu_map');
    }
    if (length === 0n) return;
    if (this.mapped(this.root, iova, iova + length - 1n))
      fail('EEXIST', 'IOVA already mapped', 'iommu_map');
    for (const p of this.pieces(iova, phys, length, maxPageSize)) {
      this.insert(this.root, p.iova, p.iova + p.length - 1n, p.phys, prot, p.level);
    }
  }

  /** EINVAL when the range is misaligned or outside the table. */
  unmap(iova: bigint, length: bigint): bigint {
    this.hot = undefined;
    this.checkRange(iova, length);
    if (length === 0n) return 0n;
    const last = iova + length - 1n;
    this.isolate(this.root, iova);
    this.isolate(this.root, last + 1n);
    const bytes = this.remove(this.root, iova, last);
    for (const d of this.dirty.overlapping(iova, last)) {
      this.dirty.delete(d);
      if (d.start < iova) this.dirty.insert({ start: d.start, last: iova - 1n });
      if (d.last > last) this.dirty.insert({ start: last + 1n, last: d.last });
    }
    return bytes;
  }

  lookup(iova: bigint): IoPte | undefined {
    const run = this.runAt(iova);
    if (!run) return undefined;
    const pageSize = this.entrySize[run.pageLevel]!;
    const start = run.start + ((iova - run.start) / pageSize) * pageSize;
    return {
      iova: start,
      length: pageSize,
      phys: run.phys + (start - run.start),
      prot: run.prot,
      pageSize,
      level: run.pageLevel,
    };
  }

  runs(iova: bigint, length: bigint): IoPte[] {
    const out: IoPte[] = [];
    const a = max(iova, this.config.base);
    const l = min(iova + length, this.end) - 1n;
    if (a > l) return out;
    this.walk(this.root, a, l, (run) => {
      const s = max(run.start, a);
      const len = min(run.last, l) - s + 1n;
      const phys = run.phys + (s - run.start);
      const prev = out[out.length - 1];
      if (
        prev &&
        prev.iova + prev.length === s &&
        prev.phys + prev.length === phys &&
        prev.prot === run.prot &&
        prev.level === run.pageLevel
      ) {
        prev.length += len;
        return;
      }
      const pageSize = this.entrySize[run.pageLevel]!;
      out.push({ iova: s, length: len, phys, prot: run.prot, pageSize, level: run.pageLevel });
    });
    return out;
  }

  setDirty(iova: bigint): boolean {
    const run = this.runAt(iova);
    if (!run) return false;
    // the leaf holding iova (leaves lie on their size's grid)
    const start = iova & this.entryAlign[run.pageLevel]!;
    let last = iova | this.entryMask[run.pageLevel]!;
    // past every dirty range (marking in ascending order): a new one, or the last grows
    const tail = this.dirty.last;
    if (!tail || tail.last + 1n < start) {
      this.dirty.insert({ start, last });
      return true;
    }
    if (tail.last + 1n === start) {
      tail.last = last;
      return true;
    }
    if (this.dirty.find(iova)) return true;
    const next = this.dirty.find(last + 1n);
    if (next) {
      this.dirty.delete(next);
      last = next.last;
    }
    const prev = this.dirty.find(start - 1n);
    if (prev) prev.last = last;
    else this.dirty.insert({ start, last });
    return true;
  }

  /** The bits are cleared before the first visit. */
  readDirtySpans(iova: bigint, length: bigint, keep: boolean, visit: DirtySpans): void {
    const a = max(iova, this.config.base);
    const l = min(iova + length, this.end) - 1n;
    if (a > l) return;
    // (first, last, size) triples: no object per span
    const spans: bigint[] = [];
    // the whole leaves of `run` intersecting [qa, ql]: leaves lie on their size's grid (base is aligned to the largest)
    const leaves = (run: RunSeg, qa: bigint, ql: bigint) => {
      const level = run.pageLevel;
      spans.push(
        max(run.start, qa) & this.entryAlign[level]!,
        min(run.last, ql) | this.entryMask[level]!,
        this.entrySize[level]!,
      );
    };
    // the run the last walk ended in: a dirty range inside it needs no walk
    let known: RunSeg | undefined;
    // clearing: all taken out at once, the parts past the leaves reached put back
    const ds = keep ? this.dirty.overlapping(a, l) : this.dirty.takeOverlapping(a, l);
    for (const d of ds) {
      const first = spans.length;
      const qa = max(d.start, a);
      const ql = min(d.last, l);
      if (known && known.start <= qa && ql <= known.last) leaves(known, qa, ql);
      else
        this.walk(this.root, qa, ql, (run) => {
          leaves(run, qa, ql);
          known = run;
        });
      if (keep) continue;
      const cs = spans[first]!;
      const ce = spans[spans.length - 2]!;
      if (d.start < cs) this.dirty.insert({ start: d.start, last: cs - 1n });
      if (d.last > ce) this.dirty.insert({ start: ce + 1n, last: d.last });
    }
    for (let i = 0; i < spans.length; i += 3) visit(spans[i]!, spans[i + 1]!, spans[i + 2]!);
  }

  /** EINVAL unless `[iova, iova+length)` is aligned to the smallest page and inside the table. */
  private checkRange(iova: bigint, length: bigint): void {
    if (length < 0n || iova % this.minPage !== 0n || length % this.minPage !== 0n) {
      fail('EINVAL', 'IOVA or length misaligned to the smallest page size', 'iommu_map');
    }
    if (iova < this.config.base || iova + length > this.end) {
      fail('EINVAL', 'range outside the page table', 'iommu_map');
    }
  }

  /** Start of the level-`level` entry containing `x`. */
  private entryStart(x: bigint, level: number): bigint {
    return x - ((x - this.config.base) % this.entrySize[level]!);
  }

  /**
   * Split a map request into pieces of one page size each, choosing sizes
   * exactly as iommu_pgsize(): the largest size that the alignment of iova
   * and phys and the remaining length allow, kept until the next larger size
   * becomes usable. Sizes above `maxPageSize` are not used.
   */
  private pieces(iova: bigint, phys: bigint, length: bigint, maxPageSize?: bigint): Piece[] {
    const out: Piece[] = [];
    const sizes =
      maxPageSize === undefined ? this.sizes : this.sizes.filter((s) => s.size <= maxPageSize);
    if (sizes.length === 0) fail('EINVAL', 'no page size at or below the cap', 'iommu_pgsize');
    while (length > 0n) {
      const addrMerge = iova | phys;
      let i = sizes.length - 1;
      while (sizes[i]!.size > length || (addrMerge & (sizes[i]!.size - 1n)) !== 0n) i--;
      const size = sizes[i]!.size;
      let count = length / size;
      const next = sizes[i + 1]?.size;
      if (next !== undefined && ((iova ^ phys) & (next - 1n)) === 0n) {
        const toNext = next - (iova & (next - 1n));
        if (toNext + next <= length) count = toNext / size;
      }
      const len = count * size;
      out.push({ iova, phys, length: len, level: sizes[i]!.level });
      iova += len;
      phys += len;
      length -= len;
    }
    return out;
  }

  /** True if any byte of `[a, l]` under `node` is mapped (child tables are never empty). */
  private mapped(node: TableNode, a: bigint, l: bigint): boolean {
    for (const seg of node.segs.from(a)) {
      if (seg.start > l) return false;
      if (seg.kind === 'run' || (seg.start >= a && seg.last <= l)) return true;
      if (this.mapped(seg.node, a, l)) return true;
    }
    return false;
  }

  /** The run holding `iova`, if mapped. */
  private runAt(iova: bigint): RunSeg | undefined {
    const hot = this.hot;
    if (hot && hot.start <= iova && iova <= hot.last) return hot;
    if (iova < this.config.base || iova >= this.end) return undefined;
    let node = this.root;
    for (;;) {
      const seg = node.segs.find(iova);
      if (!seg) return undefined;
      if (seg.kind === 'run') {
        this.hot = seg;
        return seg;
      }
      node = seg.node;
    }
  }

  /** Visit, ascending, every run under `node` that intersects `[a, l]`. */
  private walk(node: TableNode, a: bigint, l: bigint, visit: (run: RunSeg) => void): void {
    for (const seg of node.segs.from(a)) {
      if (seg.start > l) return;
      if (seg.kind === 'run') visit(seg);
      else this.walk(seg.node, a, l, visit);
    }
  }

  /** Map the unmapped `[a, l]` with leaves of level `level` (≤ node.level), both ends aligned to them. */
  private insert(
    node: TableNode,
    a: bigint,
    l: bigint,
    phys: bigint,
    prot: number,
    level: number,
  ): void {
    const size = this.entrySize[node.level]!;
    const headStart = this.entryStart(a, node.level);
    if (headStart !== a) {
      const headLast = min(l, headStart + size - 1n);
      this.insertBelow(node, a, headLast, phys, prot, level);
      if (headLast === l) return;
      phys += headLast + 1n - a;
      a = headLast + 1n;
    }
    const fullEnd = this.entryStart(l + 1n, node.level);
    if (fullEnd > a) {
      const run: RunSeg = {
        kind: 'run',
        start: a,
        last: fullEnd - 1n,
        phys,
        prot,
        pageLevel: level,
      };
      this.addSeg(node, run);
      this.merge(node, run);
    }
    if (fullEnd <= l) this.insertBelow(node, fullEnd, l, phys + (fullEnd - a), prot, level);
  }

  /** Insert `[a, l]`, inside one entry of `node`, into that entry's child table (created if absent). */
  private insertBelow(
    node: TableNode,
    a: bigint,
    l: bigint,
    phys: bigint,
    prot: number,
    level: number,
  ): void {
    let seg = node.segs.find(a) as ChildSeg | undefined;
    if (!seg) {
      const start = this.entryStart(a, node.level);
      const child = newNode(node.level - 1, start);
      this.nodes++;
      seg = { kind: 'child', start, last: start + this.entrySize[node.level]! - 1n, node: child };
      this.addSeg(node, seg);
    }
    this.insert(seg.node, a, l, phys, prot, level);
    this.fold(node, seg);
  }

  /** Replace a child table that holds one run over its whole span by that run. */
  private fold(node: TableNode, seg: ChildSeg): void {
    const child = seg.node;
    if (child.segs.size !== 1) return;
    const [only] = child.segs;
    if (only?.kind !== 'run' || only.start !== seg.start || only.last !== seg.last) return;
    this.delSeg(child, only);
    this.delSeg(node, seg);
    this.nodes--;
    this.addSeg(node, only);
    this.merge(node, only);
  }

  /** Join `run` with adjacent runs of the same page level and prot whose phys continues linearly. */
  private merge(node: TableNode, run: RunSeg): void {
    const joins = (x: RunSeg, y: RunSeg): boolean =>
      x.prot === y.prot && x.pageLevel === y.pageLevel && x.phys + (y.start - x.start) === y.phys;
    const prev = node.segs.find(run.start - 1n);
    if (prev?.kind === 'run' && joins(prev, run)) {
      this.delSeg(node, run);
      prev.last = run.last;
      run = prev;
    }
    const next = node.segs.find(run.last + 1n);
    if (next?.kind === 'run' && joins(run, next)) {
      this.delSeg(node, next);
      run.last = next.last;
    }
  }

  /**
   * Make `x` a boundary of every segment and leaf under `node`: a run over
   * entries is cut at an entry edge, an entry holding `x` inside becomes a
   * child table (one run of the same leaves, or of the next smaller allowed
   * leaves when the entry was a single leaf), and the walk continues there.
   */
  private isolate(node: TableNode, x: bigint): void {
    const seg = node.segs.find(x);
    if (!seg || seg.start === x) return;
    if (seg.kind === 'child') {
      this.isolate(seg.node, x);
      return;
    }
    const size = this.entrySize[node.level]!;
    const es = this.entryStart(x, node.level);
    const at = (start: bigint, last: bigint, pageLevel: number): RunSeg => ({
      kind: 'run',
      start,
      last,
      phys: seg.phys + (start - seg.start),
      prot: seg.prot,
      pageLevel,
    });
    const oldLast = seg.last;
    if (es === x) {
      seg.last = x - 1n;
      this.addSeg(node, at(x, oldLast, seg.pageLevel));
      return;
    }
    const ee = es + size - 1n;
    if (seg.start < es) seg.last = es - 1n;
    else this.delSeg(node, seg);
    if (oldLast > ee) this.addSeg(node, at(ee + 1n, oldLast, seg.pageLevel));
    const child = newNode(node.level - 1, es);
    this.nodes++;
    const pageLevel = seg.pageLevel < node.level ? seg.pageLevel : this.lowerLevel[seg.pageLevel]!;
    this.addSeg(child, at(es, ee, pageLevel));
    this.addSeg(node, { kind: 'child', start: es, last: ee, node: child });
    this.isolate(child, x);
  }

  /** Remove everything in `[a, l]` (whose edges are isolated) under `node`; returns the bytes. */
  private remove(node: TableNode, a: bigint, l: bigint): bigint {
    let bytes = 0n;
    for (const seg of node.segs.overlapping(a, l)) {
      if (seg.start >= a && seg.last <= l) {
        this.delSeg(node, seg);
        bytes += seg.kind === 'run' ? seg.last - seg.start + 1n : this.free(seg.node);
      } else if (seg.kind === 'child') {
        bytes += this.remove(seg.node, a, l);
        if (seg.node.segs.size === 0) {
          this.delSeg(node, seg);
          this.nodes--;
        }
      }
    }
    return bytes;
  }

  /** Forget a detached subtree; returns the bytes it mapped. */
  private free(node: TableNode): bigint {
    this.nodes--;
    this.segments -= node.segs.size;
    let bytes = 0n;
    for (const seg of node.segs) {
      bytes += seg.kind === 'run' ? seg.last - seg.start + 1n : this.free(seg.node);
    }
    return bytes;
  }

  private addSeg(node: TableNode, seg: Seg): void {
    node.segs.insert(seg);
    this.segments++;
  }

  private delSeg(node: TableNode, seg: Seg): void {
    node.segs.delete(seg);
    this.segments--;
  }
}
