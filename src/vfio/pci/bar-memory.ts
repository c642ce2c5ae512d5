/**
 * The contents behind one emulated BAR: a sparse byte store of `size`
 * bytes. Pages are created on first write; unwritten bytes read as zero, so
 * a 64 GiB BAR costs what was written to it.
 *
 * @example
 * const m = new BarMemory(1n << 36n);
 * m.write(0x1000n, Uint8Array.of(1, 2));
 * m.read(0xfffn, 3); // [0, 1, 2]
 */
const PAGE = 4096n;

export class BarMemory {
  private readonly pages = new Map<bigint, Uint8Array>();

  constructor(readonly size: bigint) {}

  /** Copy out `length` bytes at `offset` (the caller clips to `size`). */
  read(offset: bigint, length: number): Uint8Array {
    const out = new Uint8Array(length);
    this.walk(offset, length, (page, at, pos, n) => {
      const p = this.pages.get(page);
      if (p) out.set(p.subarray(at, at + n), pos);
    });
    return out;
  }

  /** Store `data` at `offset` (the caller clips to `size`). */
  write(offset: bigint, data: Uint8Array): void {
    this.walk(offset, data.length, (page, at, pos, n) => {
      let p = this.pages.get(page);
      if (!p) {
        p = new Uint8Array(Number(PAGE));
        this.pages.set(page, p);
      }
      p.set(data.subarray(pos, pos + n), at);
    });
  }

  /** Forget every byte (the function was reset). */
  clear(): void {
    this.pages.clear();
  }

  /** Pages currently materialised. */
  get populatedPages(): number {
    return this.pages.size;
  }

  private walk(
    offset: bigint,
    length: number,
    fn: (page: bigint, at: number, pos: number, n: number) => void,
  ): void {
    let pos = 0;
    while (pos < length) {
      const addr = offset + BigInt(pos);
      const page = addr / PAGE;
      const at = Number(addr % PAGE);
      const n = Math.min(length - pos, Number(PAGE) - at);
      fn(page, at, pos, n);
      pos += n;
    }
  }
}
