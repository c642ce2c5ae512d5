/**
 * VfioSpaprTce.unmapLeased (the engine's untraced path for unmaps the
 * library posted under a lease, docs/engine-protocol.md *Unmap leases*)
 * against the ordinary UNMAP_DMA ioctl: random unmap runs, valid and not,
 * over two windows with mappings, give the same answers and the same TCEs.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { DDW, GIB, MIB, SpaprClient } from './spapr-client.ts';

const KIB = 1024n;
const RAM = 4n * MIB;

/** A v2 container with the default 4K window (2 GiB) and a 64K DDW (1 GiB), both partly mapped. */
function client(): { c: SpaprClient; ram: bigint } {
  const c = new SpaprClient().setup(1);
  const ram = c.ram(RAM);
  assert.equal(c.register(ram, RAM).ret, 0);
  assert.equal(c.create(16, GIB).out.start_addr, DDW);
  assert.equal(c.mapDma(c.container, ram, 0n, 2n * MIB).ret, 0);
  assert.equal(c.mapDma(c.container, ram, DDW, RAM).ret, 0);
  return { c, ram };
}

/** The container's TCE areas: start, last, offset into their pages, prot. */
function tces(c: SpaprClient): string[] {
  return [...c.backend().iopt.areas].map(
    (a) => `${a.start.toString(16)}-${a.last.toString(16)}@${a.pagesOffset}/${a.prot}`,
  );
}

/** An unmap near the mapped parts of either window, aligned or not, empty or past the end. */
const unmapArb = fc.record({
  base: fc.constantFrom(0n, DDW, GIB * 2n - 8n * KIB, DDW + GIB - 128n * KIB, 3n * GIB),
  pages: fc.integer({ min: 0, max: 40 }),
  offset: fc.constantFrom(0n, 0n, 0n, 0x800n),
  len: fc.constantFrom(0n, 4n * KIB, 8n * KIB, 64n * KIB, 128n * KIB, 0x1800n),
});

test('unmapLeased performs the leading unmaps the ioctl answers 0, with the same TCEs left', () => {
  fc.assert(
    fc.property(fc.array(unmapArb, { minLength: 1, maxLength: 40 }), (spec) => {
      const ranges = spec.map((u) => ({
        iova: u.base + BigInt(u.pages) * 4n * KIB + u.offset,
        size: u.len,
      }));
      const byIoctl = client().c;
      const leased = client().c;
      const answers = ranges.map((r) => byIoctl.unmapDma(byIoctl.container, r.iova, r.size));
      let i = 0;
      while (i < ranges.length) {
        const n = leased.backend().unmapLeased(leased.proc.mm, ranges.slice(i));
        for (let k = i; k < i + n; k++) assert.deepEqual(answers[k]!.ret, 0, `record ${k}`);
        i += n;
        if (i === ranges.length) break;
        // the caller makes the ordinary call for the first one it did not perform
        const r = leased.unmapDma(leased.container, ranges[i]!.iova, ranges[i]!.size);
        assert.deepEqual([r.ret, r.errno], [answers[i]!.ret, answers[i]!.errno], `record ${i}`);
        i++;
      }
      assert.deepEqual(tces(leased), tces(byIoctl));
    }),
    { numRuns: 150, seed: 0x1ea5e },
  );
});

test('unmapLeased refuses every unmap of a container that may not lease', () => {
  const v1 = new SpaprClient().setup(0, 2);
  assert.equal(v1.backend().unmapLeased(v1.proc.mm, [{ iova: 0n, size: 4n * KIB }]), 0, 'v1');
  const fresh = new SpaprClient().setup(1);
  assert.equal(
    fresh.backend().unmapLeased(fresh.proc.mm, [{ iova: 0n, size: 4n * KIB }]),
    0,
    'no memory registered',
  );
  assert.equal(fresh.backend().unmapLeaseWindows(fresh.proc.mm), undefined);
  const { c } = client();
  assert.deepEqual(
    c.backend().unmapLeaseWindows(c.proc.mm),
    [
      { pageShift: 12, start: 0n, last: 2n * GIB - 1n },
      { pageShift: 16, start: DDW, last: DDW + GIB - 1n },
    ],
    'both windows',
  );
  const other = new SpaprClient().proc.mm;
  assert.equal(c.backend().unmapLeased(other, [{ iova: 0n, size: 4n * KIB }]), 0, 'another mm');
  assert.equal(c.backend().unmapLeaseWindows(other), undefined);
});

test('a device DMA runs the memory’s beforeDma first: an unmap it completes is seen (Engine.settle)', () => {
  const { c } = client();
  const ipr = c.dev('0001:01:00.0');
  assert.equal(ipr.dmaRead(DDW, 4).length, 4, 'mapped');
  let pending = [{ iova: DDW, size: 64n * KIB }];
  c.kernel.memory.beforeDma = () => {
    c.backend().unmapLeased(c.proc.mm, pending);
    pending = [];
  };
  assert.throws(() => ipr.dmaRead(DDW, 4), /DMA read fault/);
  assert.equal(ipr.dmaRead(DDW + 64n * KIB, 4).length, 4, 'the rest stays mapped');
});
