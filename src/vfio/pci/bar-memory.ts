/**
 * The contents behind one emulated BAR: `size` bytes, sparse until the BAR
 * is mapped into a process. Pages are created on first write; unwritten
 * bytes read as zero, so a 64 GiB BAR costs what was written to it. Once
 * `share`d, the bytes live in a shared memory file (a memfd the engine
 * creates, docs/device-mmap.md) that processes map directly: every read and
 * write here goes to that file, so pread, DMA and a mapping see the same
 * bytes.
 *
 * @example
 * const m = new BarMemory(1n << 36n);
 * m.write(0x1000n, Uint8Array.of(1, 2));
 * m.read(0xfffn, 3); // [0, 1, 2]
 */
import type { SharedMemoryProvider, SharedStore } from '../../kernel/file.ts';

const PAGE = 4096n;

export class BarMemory {
  private readonly pages = new Map<bigint, Uint8Array>();
  private store: SharedStore | undefined;

  constructor(readonly size: bigint) {}

  /** The shared file, created (with the bytes written so far) on first use. */
  share(name: string, provider: SharedMemoryProvider): SharedStore {
    if (this.store) return this.store;
    const store = provider(name, this.size);
    for (const [page, bytes] of this.pages) store.write(page * PAGE, bytes);
    this.pages.clear();
    this.store = store;
    return store;
  }

  /** Whether the bytes live in a shared file. */
  get shared(): boolean {
    return this.store !== undefined;
  }

  /** Copy out `length` bytes at `offset` (the caller clips to `size`). */
  read(offset: bigint, length: number): Uint8Array {
    if (this.store) return this.store.read(offset, length);
    const out = new Uint8Array(length);
    this.walk(offset, length, (page, at, pos, n) => {
      const p = this.pages.get(page);
      if (p) out.set(p.subarray(at, at + n), pos);
    });
    return out;
  }

  /** Store `data` at `offset` (the caller clips to `size`). */
  write(offset: bigint, data: Uint8Array): void {
    if (this.store) {
      this.store.write(offset, data);
      return;
    }
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
    this.store?.zero(0n, this.size);
  }

  /** Pages currently materialised (sparse store only). */
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
