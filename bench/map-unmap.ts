/**
 * §1 and §4: the cost of one IOAS_MAP + IOAS_UNMAP pair as the number of
 * live areas grows, and the heap each live area costs.
 *
 * Areas are one page each at IOVA BASE + i·2·PAGE (FIXED), so a free page
 * sits between every two of them; the measured pair maps one page into such
 * a hole (spread pseudo-randomly over the whole range) and unmaps it again.
 * Every map and unmap, the population included, goes through Process.call.
 */
import type { Domain } from '../src/iommu/domain.ts';
import { type Fixture, ioasObject, mapFixed, PAGE, setup, unmap } from './fixture.ts';
import { heapAfterGc, now, nsPerOp } from './harness.ts';

const BASE = 1n << 32n;
const STRIDE = 2n * PAGE;

export interface PairResult {
  areas: number;
  usPerPair: number;
}

export interface MapUnmapResult {
  noDomain: PairResult[];
  /** µs per MAP when populating (no domain), whole run. */
  populateUsPerMap: number;
  populateSeconds: number;
  /** heapUsed delta after GC / live areas, at the largest count. */
  heapBytesPerArea: number;
  heapAreas: number;
  withDomain: PairResult[];
  /** The domain with many areas, for the translation bench's miss figure. */
  bigDomain?: { domain: Domain; iovas: bigint[] };
}

/** A pair batch: n pairs into holes chosen by a multiplicative walk over `areas` holes. */
function pairBatch(f: Fixture, ioas: number, va: bigint, areas: number): (n: number) => void {
  let k = 0;
  return (n) => {
    for (let i = 0; i < n; i++) {
      const hole = (k++ * 7919) % areas;
      const iova = BASE + BigInt(hole) * STRIDE + PAGE;
      mapFixed(f, ioas, va, PAGE, iova);
      unmap(f, ioas, iova, PAGE);
    }
  };
}

/** Grow the IOAS from `from` to `to` areas; user VA of area i is `va(i)`. */
function populate(f: Fixture, ioas: number, from: number, to: number, va: (i: number) => bigint) {
  for (let i = from; i < to; i++) mapFixed(f, ioas, va(i), PAGE, BASE + BigInt(i) * STRIDE);
}

export function benchMapUnmap(levels: number[], domainLevels: number[]): MapUnmapResult {
  // ---- no domain: nothing is pinned, the cost is the io_pagetable's alone ----
  const f = setup();
  const ioas = f.ioas();
  const va = f.mem(PAGE);
  const h0 = heapAfterGc();
  const noDomain: PairResult[] = [];
  let have = 0;
  let populateMs = 0;
  let heapBytesPerArea = Number.NaN;
  const max = levels[levels.length - 1]!;
  for (const n of levels) {
    const t = now();
    populate(f, ioas, have, n, () => va);
    populateMs += now() - t;
    have = n;
    if (ioasObject(f, ioas).iopt.areas.size !== n) throw new Error('area count mismatch');
    if (n === max) heapBytesPerArea = (heapAfterGc() - h0) / n;
    const ns = nsPerOp(pairBatch(f, ioas, va, n), 500, { minMs: 400, warmup: 2 });
    noDomain.push({ areas: n, usPerPair: ns / 1000 });
  }
  const populateUsPerMap = (populateMs * 1000) / max;
  // drop the big IOAS before the next part so its heap does not weigh on it
  f.call('IOMMU_IOAS_UNMAP', { ioas_id: ioas, iova: 0n, length: (1n << 64n) - 1n });

  // ---- an intel domain attached: every map pins and fills the domain ----
  const withDomain: PairResult[] = [];
  let bigDomain: MapUnmapResult['bigDomain'];
  if (domainLevels.length > 0) {
    const g = setup();
    const dmax = domainLevels[domainLevels.length - 1]!;
    const mem = g.mem(BigInt(dmax + 1) * PAGE);
    const ioasD = g.ioas();
    const hwpt = g.intelDevice().attach(ioasD);
    let haveD = 0;
    for (const n of domainLevels) {
      populate(g, ioasD, haveD, n, (i) => mem + BigInt(i) * PAGE);
      haveD = n;
      const spare = mem + BigInt(dmax) * PAGE;
      const ns = nsPerOp(pairBatch(g, ioasD, spare, n), 500, { minMs: 400, warmup: 2 });
      withDomain.push({ areas: n, usPerPair: ns / 1000 });
    }
    bigDomain = {
      domain: hwpt.domain,
      iovas: [BASE, BASE + BigInt(dmax >> 1) * STRIDE, BASE + BigInt(dmax - 1) * STRIDE],
    };
  }
  return {
    noDomain,
    populateUsPerMap,
    populateSeconds: populateMs / 1000,
    heapBytesPerArea,
    heapAreas: max,
    withDomain,
    ...(bigDomain ? { bigDomain } : {}),
  };
}
