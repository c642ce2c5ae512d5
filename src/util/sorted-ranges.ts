/**
 * An ordered set of non-overlapping inclusive ranges `[start, last]` (u64 as
 * bigint), kept in sorted chunks of at most CHUNK items: lookups are a binary
 * search over chunk heads then inside one chunk, inserts and deletes move at
 * most CHUNK references. One array slot per item, no per-node objects, so a
 * million ranges cost a few MiB beyond the items themselves.
 *
 * The caller guarantees that inserted ranges do not overlap.
 */

export interface Range {
  start: bigint;
  last: bigint;
}

const CHUNK = 256;

export class SortedRanges<T extends Range> {
  private chunks: T[][] = [];
  private count = 0;

  get size(): number {
    return this.count;
  }

  /** The item with the highest start, if any. */
  get last(): T | undefined {
    const chunk = this.chunks[this.chunks.length - 1];
    return chunk?.[chunk.length - 1];
  }

  /** Index of the last chunk whose first item starts at or before `addr`, or -1. */
  private chunkFor(addr: bigint): number {
    let lo = 0;
    let hi = this.chunks.length - 1;
    let ans = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (this.chunks[mid]![0]!.start <= addr) {
        ans = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return ans;
  }

  /** Index in `chunk` of the last item starting at or before `addr`, or -1. */
  private static indexIn<T extends Range>(chunk: T[], addr: bigint): number {
    let lo = 0;
    let hi = chunk.length - 1;
    let ans = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (chunk[mid]!.start <= addr) {
        ans = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return ans;
  }

  insert(item: T): void {
    this.count++;
    if (this.chunks.length === 0) {
      this.chunks.push([item]);
      return;
    }
    const c = Math.max(0, this.chunkFor(item.start));
    const chunk = this.chunks[c]!;
    chunk.splice(SortedRanges.indexIn(chunk, item.start) + 1, 0, item);
    // split into fresh arrays: the old one keeps its grown capacity, which for
    // an ascending fill would leave every full chunk half empty
    if (chunk.length > CHUNK * 2) {
      this.chunks.splice(c, 1, chunk.slice(0, CHUNK), chunk.slice(CHUNK));
    }
  }

  /** Remove exactly this item (by identity); returns false if absent. */
  delete(item: T): boolean {
    const c = this.chunkFor(item.start);
    if (c < 0) return false;
    const chunk = this.chunks[c]!;
    const i = SortedRanges.indexIn(chunk, item.start);
    if (i < 0 || chunk[i] !== item) return false;
    chunk.splice(i, 1);
    this.count--;
    this.shrunk(c);
    return true;
  }

  /**
   * Remove every item intersecting `[start, last]` and return them,
   * ascending: one splice per chunk, where deleting them one at a time
   * moves up to CHUNK references each.
   */
  takeOverlapping(start: bigint, last: bigint): T[] {
    const out: T[] = [];
    let { c, i } = this.seek(start);
    while (c < this.chunks.length) {
      const chunk = this.chunks[c]!;
      let j = i;
      while (j < chunk.length && chunk[j]!.start <= last) out.push(chunk[j++]!);
      const toEnd = j === chunk.length;
      chunk.splice(i, j - i);
      this.count -= j - i;
      if (!toEnd) {
        this.shrunk(c);
        break;
      }
      // the chunk's end reached: the next chunk goes on at index 0
      if (chunk.length === 0) this.chunks.splice(c, 1);
      else c++;
      i = 0;
    }
    return out;
  }

  /** Chunk `c` lost items: drop it when empty, or merge it into its successor when small. */
  private shrunk(c: number): void {
    const chunk = this.chunks[c]!;
    if (chunk.length === 0) this.chunks.splice(c, 1);
    else if (chunk.length < CHUNK / 4 && c + 1 < this.chunks.length) {
      const next = this.chunks[c + 1]!;
      if (chunk.length + next.length <= CHUNK * 2) {
        chunk.push(...next);
        this.chunks.splice(c + 1, 1);
      }
    }
  }

  /** The item containing `addr`, if any. */
  find(addr: bigint): T | undefined {
    const c = this.chunkFor(addr);
    if (c < 0) return undefined;
    const chunk = this.chunks[c]!;
    const item = chunk[SortedRanges.indexIn(chunk, addr)];
    return item && item.last >= addr ? item : undefined;
  }

  /** The first item (lowest start) that intersects `[start, last]`. */
  firstIntersecting(start: bigint, last: bigint): T | undefined {
    const at = this.seek(start);
    const item = this.chunks[at.c]?.[at.i];
    return item && item.start <= last ? item : undefined;
  }

  /** True when some item intersects `[start, last]`. */
  intersects(start: bigint, last: bigint): boolean {
    return this.firstIntersecting(start, last) !== undefined;
  }

  /**
   * Items in ascending order, starting with the first one that ends at or
   * after `addr`. Do not modify the set while iterating; collect first.
   */
  *from(addr: bigint): Generator<T> {
    let { c, i } = this.seek(addr);
    for (; c < this.chunks.length; c++, i = 0) {
      const chunk = this.chunks[c]!;
      for (; i < chunk.length; i++) yield chunk[i]!;
    }
  }

  /**
   * Items intersecting `[start, last]`, ascending, as an array (safe to
   * mutate after). A plain loop, not `from()`: it is on every hot path, and
   * a generator costs an object per step.
   */
  overlapping(start: bigint, last: bigint): T[] {
    const out: T[] = [];
    let { c, i } = this.seek(start);
    for (; c < this.chunks.length; c++, i = 0) {
      const chunk = this.chunks[c]!;
      for (; i < chunk.length; i++) {
        const item = chunk[i]!;
        if (item.start > last) return out;
        out.push(item);
      }
    }
    return out;
  }

  /**
   * Where the first item ending at or after `addr` is: chunk `c`, index `i`
   * (`c` past the last chunk when there is none; chunks are never empty).
   */
  private seek(addr: bigint): { c: number; i: number } {
    const c = this.chunkFor(addr);
    if (c < 0) return { c: 0, i: 0 };
    const chunk = this.chunks[c]!;
    const i = SortedRanges.indexIn(chunk, addr);
    if (chunk[i]!.last >= addr) return { c, i };
    return i + 1 < chunk.length ? { c, i: i + 1 } : { c: c + 1, i: 0 };
  }

  *[Symbol.iterator](): Generator<T> {
    for (const chunk of this.chunks) yield* chunk;
  }

  clear(): void {
    this.chunks = [];
    this.count = 0;
  }
}
