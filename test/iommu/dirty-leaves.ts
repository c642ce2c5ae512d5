import type { DirtySpans } from '../../src/iommu/io-pgtable.ts';

/** Each dirty leaf a readDirtySpans call reports, as `[leafIova, leafSize]`, ascending. */
export function dirtyLeavesOf(read: (visit: DirtySpans) => void): bigint[][] {
  const out: bigint[][] = [];
  read((first, last, size) => {
    for (let leaf = first; leaf < last; leaf += size) out.push([leaf, size]);
  });
  return out;
}
