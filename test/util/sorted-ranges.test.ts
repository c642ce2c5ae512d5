import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { type Range, SortedRanges } from '../../src/util/sorted-ranges.ts';

/**
 * Disjoint ranges inserted and deleted at random, past one chunk (512
 * items) so that lookups cross chunk boundaries; every query, random or
 * just past an item, is checked against a plain scan of the live items.
 */
test('overlapping, firstIntersecting, from and last agree with a plain scan across chunks', () => {
  fc.assert(
    fc.property(
      fc.array(fc.nat(3000), { minLength: 600, maxLength: 1500 }),
      fc.array(fc.nat(3000), { maxLength: 700, size: 'max' }),
      fc.array(fc.tuple(fc.nat(16_000), fc.nat(400)), { minLength: 1, maxLength: 40 }),
      (slots, drops, queries) => {
        const set = new SortedRanges<Range>();
        const live = new Map<number, Range>();
        for (const s of slots) {
          if (live.has(s)) continue;
          // slot s is [5s, 5s + s%4]: disjoint, with gaps of 1 to 4
          const r = { start: BigInt(5 * s), last: BigInt(5 * s + (s % 4)) };
          live.set(s, r);
          set.insert(r);
        }
        for (const d of drops) {
          const r = live.get(d);
          if (!r) continue;
          live.delete(d);
          assert.equal(set.delete(r), true);
        }
        const all = [...live.values()].sort((a, b) => (a.start < b.start ? -1 : 1));
        assert.equal(set.last, all[all.length - 1], 'last: the highest start');
        // just past each item (chunk boundaries included): the next items only
        for (let k = 0; k < all.length; k++) {
          const start = all[k]!.last + 1n;
          const last = start + 5n;
          const want: Range[] = [];
          for (let j = k + 1; j < all.length && all[j]!.start <= last; j++) want.push(all[j]!);
          assert.deepEqual(set.overlapping(start, last), want);
          assert.equal(set.firstIntersecting(start, last), want[0]);
        }
        for (const [a, n] of queries) {
          const start = BigInt(a);
          const last = start + BigInt(n);
          const want = all.filter((r) => r.last >= start && r.start <= last);
          assert.deepEqual(set.overlapping(start, last), want);
          assert.equal(set.firstIntersecting(start, last), want[0]);
          assert.equal(set.intersects(start, last), want.length > 0);
          assert.deepEqual(
            [...set.from(start)],
            all.filter((r) => r.last >= start),
          );
        }
      },
    ),
    { numRuns: 60 },
  );
});

test('takeOverlapping removes exactly what overlapping lists, across chunks, and the rest still answers', () => {
  fc.assert(
    fc.property(
      fc.array(fc.nat(3000), { minLength: 600, maxLength: 1500 }),
      fc.array(fc.tuple(fc.nat(16_000), fc.nat(6000)), { minLength: 1, maxLength: 8 }),
      (slots, takes) => {
        const set = new SortedRanges<Range>();
        let live: Range[] = [];
        for (const s of new Set(slots)) {
          const r = { start: BigInt(5 * s), last: BigInt(5 * s + (s % 4)) };
          live.push(r);
          set.insert(r);
        }
        live.sort((a, b) => (a.start < b.start ? -1 : 1));
        for (const [a, n] of takes) {
          const start = BigInt(a);
          const last = start + BigInt(n);
          const hit = (r: Range) => r.last >= start && r.start <= last;
          assert.deepEqual(set.takeOverlapping(start, last), live.filter(hit));
          live = live.filter((r) => !hit(r));
          assert.equal(set.size, live.length);
          assert.deepEqual([...set], live);
          assert.equal(set.last, live[live.length - 1]);
          for (const r of live.slice(0, 50)) assert.equal(set.find(r.start), r);
          // the hole left takes a new item
          const back = { start, last: start };
          set.insert(back);
          assert.equal(set.find(start), back);
          assert.equal(set.delete(back), true);
        }
      },
    ),
    { numRuns: 60 },
  );
});
