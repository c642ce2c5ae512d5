/**
 * One VFIO ioctl's user struct (the VFIO counterpart of iommufd's Ucmd): the
 * kernel's `copy_from_user(&x, arg, minsz)` then `if (x.argsz < minsz ||
 * x.flags & ~known) return -EINVAL`, the fields past `minsz` that a flag
 * asks for, and the copy-out rules: what fits `argsz`, and a capability
 * chain written whole or not at all.
 *
 * @example
 * const u = VfioUser.copyIn(caller.mm, arg, VfioIommuSpaprTceCreate, { flags: 0 });
 * u.cmd.page_shift; // the struct, zero-extended past minsz
 */
import { fail } from '../abi/errno.ts';
import { hex } from '../abi/hex.ts';
import type { Layout } from '../abi/layout.ts';
import type { Mm } from '../iommu/mm.ts';
import { checkZeroed } from '../iommufd/ucmd.ts';

/** How a handler reads its struct: `minsz` (default: the whole struct) and the flags it knows. */
export interface VfioCopyIn {
  readonly minsz?: number;
  /** The known flags; absent: the struct's flags are not checked here. */
  readonly flags?: number;
  /** The kernel function whose rule an EINVAL follows (for the reason). */
  readonly fn: string;
}

export class VfioUser<V extends { argsz: number }> {
  private constructor(
    readonly mm: Mm,
    readonly addr: bigint,
    readonly layout: Layout<V>,
    readonly minsz: number,
    /** The struct as read: `minsz` bytes (or more, see readTo), zero-extended. */
    public cmd: V,
    private readonly fn: string,
  ) {}

  /** The user's `argsz`. */
  get argsz(): number {
    return this.cmd.argsz;
  }

  /**
   * copy_from_user() of `minsz` bytes (EFAULT), then EINVAL for argsz below
   * minsz or a flag outside `opts.flags`.
   */
  static copyIn<V extends { argsz: number }>(
    mm: Mm,
    addr: bigint,
    layout: Layout<V>,
    opts: VfioCopyIn,
  ): VfioUser<V> {
    const minsz = opts.minsz ?? layout.size;
    const u = new VfioUser(mm, addr, layout, minsz, layout.decode(mm.read(addr, minsz)), opts.fn);
    if (u.argsz < minsz) fail('EINVAL', `argsz ${u.argsz} below ${minsz}`, opts.fn);
    const flags = (u.cmd as { flags?: number }).flags ?? 0;
    if (opts.flags !== undefined && flags & ~opts.flags) {
      fail('EINVAL', `unknown flags ${hex(flags & ~opts.flags)}`, opts.fn);
    }
    return u;
  }

  /** EINVAL unless `argsz` reaches `end`: a part past minsz that the call needs (`what`). */
  need(end: number, what: string): void {
    if (this.argsz < end) fail('EINVAL', `argsz ${this.argsz} has no room for ${what}`, this.fn);
  }

  /** need(end), then copy_from_user() of the struct's bytes up to `end` (EFAULT). */
  readTo(end: number, what: string): V {
    this.need(end, what);
    this.cmd = this.layout.decode(this.mm.read(this.addr, end));
    return this.cmd;
  }

  /** need() room for a `payload` struct right after minsz, then copy_from_user() of it (EFAULT). */
  payload<P>(payload: Layout<P>, what: string): P {
    this.need(this.minsz + payload.size, what);
    return payload.decode(this.mm.read(this.addr + BigInt(this.minsz), payload.size));
  }

  /**
   * copy_struct_from_user() of the whole struct: min(argsz, sizeof) bytes
   * are read (EFAULT), then the bytes past the kernel's struct up to argsz
   * must be zero (check_zeroed_user: E2BIG, or EFAULT at a fault before a
   * non-zero byte). Call it before the handler changes anything: a huge
   * tail may restart the call (RestartCall).
   */
  readStruct(): V {
    const size = this.layout.size;
    this.cmd = this.layout.decode(this.mm.read(this.addr, Math.min(this.argsz, size)));
    if (this.argsz > size)
      checkZeroed(this.mm, this.addr + BigInt(size), BigInt(this.argsz - size), true);
    return this.cmd;
  }

  /**
   * copy_to_user() of `value`: `sizes` lists the lengths the handler may
   * copy (the kernel's minsz, then larger ones it copies when argsz holds
   * them); the largest that argsz holds is written. Default: all of it.
   */
  respond(value: Partial<V>, sizes: readonly number[] = [this.layout.size]): void {
    const fits = sizes.filter((n) => n <= this.argsz);
    const n = fits.length > 0 ? Math.max(...fits) : Math.min(...sizes);
    this.mm.write(this.addr, this.layout.encode(value).subarray(0, n));
  }

  /** copy_to_user() of min(argsz, sizeof) bytes of `value`. */
  respondFitting(value: Partial<V>): void {
    this.mm.write(
      this.addr,
      this.layout.encode(value).subarray(0, Math.min(this.argsz, this.layout.size)),
    );
  }

  /** copy_to_user() of one field of `value` (an out-field written alone). */
  respondField(value: Partial<V>, name: keyof V & string): void {
    const end = this.layout.endOf(name);
    const start = this.layout.fields.find((f) => f.name === name)!.offset;
    this.mm.write(this.addr + BigInt(start), this.layout.encode(value).subarray(start, end));
  }

  /**
   * A capability chain after the fixed struct (vfio_info_add_capability()
   * and its callers): written at `fixed` when argsz holds struct and chain,
   * else nothing is written and argsz is raised to what would hold them.
   * Returns the argsz and cap_offset to report.
   */
  capChain(fixed: number, chain: Uint8Array): { argsz: number; capOffset: number } {
    if (this.argsz < fixed + chain.length) return { argsz: fixed + chain.length, capOffset: 0 };
    this.mm.write(this.addr + BigInt(fixed), chain);
    return { argsz: this.argsz, capOffset: fixed };
  }
}
