/**
 * What the benchmarks drive: the test fixture (kernel, process with
 * /dev/iommu, typed ioctls, intel devices) plus MAP/UNMAP shorthands that go
 * through the real syscall path, Process.call → Process.ioctl.
 */
import { IOMMU_IOAS_MAP_FLAGS } from '../src/abi/iommufd.ts';
import type { Ioas } from '../src/iommufd/ioas.ts';
import { type Fixture, setup } from '../test/support.ts';

export { type Fixture, setup };

export const PAGE = 0x1000n;
export const U64_MAX = (1n << 64n) - 1n;
const MAP_FIXED_RW =
  IOMMU_IOAS_MAP_FLAGS.FIXED_IOVA | IOMMU_IOAS_MAP_FLAGS.READABLE | IOMMU_IOAS_MAP_FLAGS.WRITEABLE;

/** IOMMU_IOAS_MAP with FIXED_IOVA, read/write; throws (a bench bug) on failure. */
export function mapFixed(f: Fixture, ioas: number, va: bigint, length: bigint, iova: bigint): void {
  const r = f.call('IOMMU_IOAS_MAP', {
    flags: MAP_FIXED_RW,
    ioas_id: ioas,
    user_va: va,
    length,
    iova,
  });
  if (r.ret !== 0) throw new Error(`IOAS_MAP iova 0x${iova.toString(16)} failed: ${r.errno}`);
}

/** IOMMU_IOAS_UNMAP of exactly `[iova, iova+length)`; throws on failure. */
export function unmap(f: Fixture, ioas: number, iova: bigint, length: bigint): void {
  const r = f.call('IOMMU_IOAS_UNMAP', { ioas_id: ioas, iova, length });
  if (r.ret !== 0) throw new Error(`IOAS_UNMAP iova 0x${iova.toString(16)} failed: ${r.errno}`);
}

/** The IOAS object behind an id (to read its io_pagetable). */
export function ioasObject(f: Fixture, id: number): Ioas {
  return f.ctx.get<Ioas>(id, 'ioas');
}
