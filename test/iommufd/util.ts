/**
 * Helpers shared by the iommufd ioctl tests: fixed-address memory, MAP/UNMAP
 * shorthands, IOVA_RANGES as a list, and raw structs placed at chosen
 * addresses (e.g. next to a read-only page) for copy-in/copy-out rules.
 */
import assert from 'node:assert/strict';
import type { ErrnoName } from '../../src/abi/errno.ts';
import {
  IOMMU_IOAS_MAP_FLAGS,
  type IommufdCmdName,
  IommuIovaRange,
  iommufdCmd,
  iommufdCmdNumber,
} from '../../src/abi/iommufd.ts';
import type { Fixture } from '../support.ts';

export const PAGE = 0x1000n;
export const SZ_2M = 0x20_0000n;
export const U64_MAX = (1n << 64n) - 1n;
export const R = IOMMU_IOAS_MAP_FLAGS.READABLE;
export const W = IOMMU_IOAS_MAP_FLAGS.WRITEABLE;
export const RW = R | W;
export const FIXED = IOMMU_IOAS_MAP_FLAGS.FIXED_IOVA;

/** Anonymous memory mapped at exactly `va`. */
export function memAt(f: Fixture, va: bigint, length: bigint, write = true): bigint {
  return f.proc.mm.mmap({ addr: va, fixed: true, length, prot: { read: true, write } });
}

/** IOMMU_IOAS_MAP that must succeed; FIXED_IOVA when `iova` is given. Returns the IOVA. */
export function map(
  f: Fixture,
  ioas: number,
  va: bigint,
  length: bigint,
  o: { iova?: bigint; flags?: number } = {},
): bigint {
  const flags = (o.flags ?? RW) | (o.iova === undefined ? 0 : FIXED);
  const r = f.call('IOMMU_IOAS_MAP', {
    flags,
    ioas_id: ioas,
    user_va: va,
    length,
    iova: o.iova ?? 0n,
  });
  assert.equal(r.errno, undefined, `MAP of ${length} bytes at va 0x${va.toString(16)}`);
  return r.out.iova as bigint;
}

/** IOMMU_IOAS_UNMAP of everything; returns the bytes unmapped. */
export function unmapAll(f: Fixture, ioas: number): bigint {
  const r = f.call('IOMMU_IOAS_UNMAP', { ioas_id: ioas, iova: 0n, length: U64_MAX });
  assert.equal(r.errno, undefined);
  return r.out.length as bigint;
}

/** IOMMU_IOAS_IOVA_RANGES with room for 16 ranges. */
export function ranges(f: Fixture, ioas: number): { ranges: [bigint, bigint][]; align: bigint } {
  const buf = f.mem(PAGE);
  const r = f.call('IOMMU_IOAS_IOVA_RANGES', { ioas_id: ioas, num_iovas: 16, allowed_iovas: buf });
  assert.equal(r.errno, undefined);
  return {
    ranges: readRanges(f, buf, r.out.num_iovas as number),
    align: r.out.out_iova_alignment as bigint,
  };
}

/** `n` iommu_iova_range entries read from `addr`. */
export function readRanges(f: Fixture, addr: bigint, n: number): [bigint, bigint][] {
  const out: [bigint, bigint][] = [];
  for (let i = 0; i < n; i++) {
    const e = IommuIovaRange.decode(f.proc.mm.read(addr + BigInt(16 * i), 16));
    out.push([e.start, e.last]);
  }
  return out;
}

/** Write iommu_iova_range entries to fresh memory; returns their address. */
export function writeRanges(f: Fixture, list: [bigint, bigint][]): bigint {
  const buf = f.mem(PAGE);
  list.forEach(([start, last], i) => {
    f.proc.mm.write(buf + BigInt(16 * i), IommuIovaRange.encode({ start, last }));
  });
  return buf;
}

/** IOMMU_IOAS_ALLOW_IOVAS with the given ranges; returns the errno (undefined on success). */
export function allow(f: Fixture, ioas: number, list: [bigint, bigint][]): ErrnoName | undefined {
  return f.call('IOMMU_IOAS_ALLOW_IOVAS', {
    ioas_id: ioas,
    num_iovas: list.length,
    allowed_iovas: writeRanges(f, list),
  }).errno;
}

/** Encode a command's struct (size defaults to sizeof) into bytes. */
export function encode(name: IommufdCmdName, value: Record<string, number | bigint>): Uint8Array {
  const layout = iommufdCmd(name).layout;
  return layout.encode({ size: layout.size, ...value });
}

/** ioctl of a command with the argument at `addr`; returns the errno (undefined on success). */
export function ioctlAt(f: Fixture, name: IommufdCmdName, addr: bigint): ErrnoName | undefined {
  const ret = f.proc.ioctl(f.fd, iommufdCmdNumber(f.kernel.abi, name), addr);
  return ret === 0 ? undefined : f.proc.errno;
}

/**
 * Two pages of memory, the second read-only; returns the address of the
 * boundary. Bytes written before the boundary stay writable; `tail` is put
 * right after the boundary before it is write-protected.
 */
export function roBoundary(f: Fixture, tail?: Uint8Array): bigint {
  const base = f.mem(2n * PAGE);
  if (tail) f.proc.mm.write(base + PAGE, tail);
  f.proc.mm.mprotect(base + PAGE, PAGE, { read: true, write: false });
  return base + PAGE;
}

/** Physical address behind a user VA (the page GUP would pin). */
export function physOf(f: Fixture, va: bigint): bigint {
  return f.proc.mm.resolve(va, 1n, false)[0]!.phys;
}

/** Pin counts of `n` pages from `va`. */
export function pinCounts(f: Fixture, va: bigint, n: number): number[] {
  return Array.from({ length: n }, (_, i) =>
    f.kernel.memory.pinCount(physOf(f, va + BigInt(i) * PAGE)),
  );
}
