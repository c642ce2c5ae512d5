/**
 * §3: DMA translations per second through Domain.translate (the device's
 * one-entry cache) and through Device.dmaRead of 4 bytes (translate + copy
 * out of PhysRam). "hit" repeats one IOVA; "miss" alternates two IOVAs in
 * different leaves, so every call finds the cache holding the other leaf and
 * walks the page table again (the cost after an invalidation).
 */
import type { Device } from '../src/iommu/device.ts';
import type { Domain } from '../src/iommu/domain.ts';
import { PAGE } from './fixture.ts';
import { nsPerOp } from './harness.ts';

export interface TranslateResult {
  hitPerSec: number;
  missPerSec: number;
  /** Miss rate on a domain holding many leaves (when given). */
  missBigPerSec?: number;
  bigLeaves?: number;
  dmaReadHitPerSec: number;
  dmaReadMissPerSec: number;
}

const BATCH = 200_000;

function translateBatch(d: Domain, a: bigint, b: bigint): (n: number) => void {
  return (n) => {
    let faults = 0;
    for (let i = 0; i < n; i++) {
      if (d.translate((i & 1) === 0 ? a : b, 4n, 'read') === undefined) faults++;
    }
    if (faults > 0) throw new Error(`${faults} translations faulted`);
  };
}

function dmaReadBatch(dev: Device, a: bigint, b: bigint): (n: number) => void {
  return (n) => {
    let sum = 0;
    for (let i = 0; i < n; i++) sum += dev.dmaRead((i & 1) === 0 ? a : b, 4)[0]!;
    if (sum < 0) throw new Error('unreachable');
  };
}

const perSec = (ns: number): number => 1e9 / ns;

export function benchTranslate(
  domain: Domain,
  device: Device,
  iova: bigint,
  big?: { domain: Domain; iovas: bigint[]; leaves: number },
): TranslateResult {
  const opts = { minMs: 400, warmup: 3 };
  const hit = nsPerOp(translateBatch(domain, iova, iova), BATCH, opts);
  const miss = nsPerOp(translateBatch(domain, iova, iova + PAGE), BATCH, opts);
  const dmaHit = nsPerOp(dmaReadBatch(device, iova, iova), BATCH / 4, opts);
  const dmaMiss = nsPerOp(dmaReadBatch(device, iova, iova + PAGE), BATCH / 4, opts);
  const out: TranslateResult = {
    hitPerSec: perSec(hit),
    missPerSec: perSec(miss),
    dmaReadHitPerSec: perSec(dmaHit),
    dmaReadMissPerSec: perSec(dmaMiss),
  };
  if (big) {
    const [a, b] = [big.iovas[0]!, big.iovas[big.iovas.length - 1]!];
    out.missBigPerSec = perSec(nsPerOp(translateBatch(big.domain, a, b), BATCH, opts));
    out.bigLeaves = big.leaves;
  }
  return out;
}
