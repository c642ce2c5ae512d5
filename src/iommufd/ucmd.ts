import { fail } from '../abi/errno.ts';
import type { Layout } from '../abi/layout.ts';
import type { Mm } from '../iommu/mm.ts';

/**
 * One iommufd ioctl call in flight (the kernel's iommufd_ucmd): the caller's
 * memory, the user struct's address and size, and the decoded command.
 */
export class Ucmd<V> {
  constructor(
    readonly mm: Mm,
    readonly addr: bigint,
    /** The `size` the user passed (may be smaller or larger than the kernel's struct). */
    readonly userSize: number,
    readonly layout: Layout<V>,
    /** The kernel's copy of the struct, zero-extended. */
    readonly cmd: V,
  ) {}

  /**
   * copy_struct_from_user(): read `min(userSize, sizeof)` bytes; bytes beyond
   * the kernel's struct must be zero (E2BIG); faults are EFAULT.
   */
  static copyIn<V>(mm: Mm, addr: bigint, userSize: number, layout: Layout<V>): Ucmd<V> {
    const n = Math.min(userSize, layout.size);
    const bytes = mm.read(addr, n);
    if (userSize > layout.size) {
      const tail = mm.read(addr + BigInt(layout.size), userSize - layout.size);
      if (tail.some((b) => b !== 0)) fail('E2BIG');
    }
    return new Ucmd(mm, addr, userSize, layout, layout.decode(bytes));
  }

  /** iommufd_ucmd_respond(): copy `min(userSize, sizeof)` bytes of the whole struct back. */
  respond(): void {
    const bytes = this.layout.encode(this.cmd);
    this.mm.write(this.addr, bytes.subarray(0, Math.min(this.userSize, this.layout.size)));
  }
}
