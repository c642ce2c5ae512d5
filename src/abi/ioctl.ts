/**
 * ioctl request numbers. Linux packs (direction, size, type, nr) into 32 bits;
 * the field widths and the direction codes differ between the generic layout
 * (x86, arm64, riscv, s390) and powerpc (also mips, sparc, alpha), so every
 * number is computed for a named ABI.
 */

export type IoctlAbi = 'generic' | 'powerpc';

/** Transfer direction from user space's point of view, as in `_IOC_*`. */
export type IoctlDir = 'none' | 'read' | 'write' | 'readwrite';

interface AbiBits {
  readonly sizeBits: number;
  readonly dirShift: number;
  readonly codes: Record<IoctlDir, number>;
}

const ABIS: Record<IoctlAbi, AbiBits> = {
  generic: { sizeBits: 14, dirShift: 30, codes: { none: 0, write: 1, read: 2, readwrite: 3 } },
  powerpc: { sizeBits: 13, dirShift: 29, codes: { none: 1, read: 2, write: 4, readwrite: 6 } },
};

/** `_IOC(dir, type, nr, size)` for an ABI, as an unsigned 32-bit number. */
export function ioc(abi: IoctlAbi, dir: IoctlDir, type: number, nr: number, size: number): number {
  const a = ABIS[abi];
  if (size >= 1 << a.sizeBits) throw new Error(`ioctl size ${size} too large for ${abi}`);
  return ((a.codes[dir] << a.dirShift) | (size << 16) | ((type & 0xff) << 8) | (nr & 0xff)) >>> 0;
}

/** `_IO(type, nr)`: no direction, no size — how every iommufd and VFIO ioctl is built. */
export function io(abi: IoctlAbi, type: number, nr: number): number {
  return ioc(abi, 'none', type, nr, 0);
}

/** The ioctl type byte of iommufd and VFIO: ';'. */
export const IOMMUFD_TYPE = 0x3b;
/** First iommufd command nr; lower nrs on /dev/iommu are VFIO compat ioctls. */
export const IOMMUFD_CMD_BASE = 0x80;
