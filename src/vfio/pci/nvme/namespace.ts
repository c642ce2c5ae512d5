/**
 * The storage behind one NVMe namespace: a file (read and written in place,
 * so its bytes are the namespace's at every moment) or sparse memory
 * (64 KiB chunks created on first write; unwritten blocks read zero).
 * Sizes are in bytes; callers keep every access inside `size`.
 *
 * @example
 * const ns = NvmeNamespace.open({ size: 1n << 30n, lbaSize: 512 });
 * ns.write(4096, bytes); ns.read(4096, bytes.length); ns.zero(0, 512);
 */
import {
  closeSync,
  constants,
  fstatSync,
  fsync,
  fsyncSync,
  ftruncateSync,
  openSync,
  readSync,
  writeSync,
} from 'node:fs';

/** One namespace of a controller's host config. */
export interface NvmeNamespaceSpec {
  /** Capacity in bytes, a multiple of `lbaSize`. */
  readonly size: bigint;
  /** Logical block size: 512 or 4096 bytes. */
  readonly lbaSize: 512 | 4096;
  /** A file holding the namespace (created, or grown sparse to `size`); absent: sparse memory. */
  readonly file?: string;
}

/** Bytes per chunk of the memory backing. */
const CHUNK = 0x10000;

export abstract class NvmeNamespace {
  readonly size: bigint;
  readonly lbaSize: number;
  /** Blocks in the namespace (NSZE). */
  readonly blocks: bigint;

  protected constructor(spec: NvmeNamespaceSpec) {
    this.size = spec.size;
    this.lbaSize = spec.lbaSize;
    this.blocks = spec.size / BigInt(spec.lbaSize);
  }

  /** The backing `spec` names (a file is opened now and kept open until `close`). */
  static open(spec: NvmeNamespaceSpec): NvmeNamespace {
    return spec.file !== undefined ? new FileNamespace(spec, spec.file) : new MemoryNamespace(spec);
  }

  /** `length` bytes at byte offset `pos`. */
  abstract read(pos: number, length: number): Uint8Array;
  /** Store `data` at byte offset `pos`. */
  abstract write(pos: number, data: Uint8Array): void;
  /**
   * `length` zero bytes from `pos` (Write Zeroes, deallocate); returns the
   * bytes of work it took (bytes written to a file, bytes of held chunks a
   * memory namespace cleared), which callers count against their budget.
   */
  abstract zero(pos: number, length: number): number;
  /**
   * The longest range one `zero` call should cover so that the call stays
   * bounded: 1 MiB for a file (each byte is written); unlimited for memory,
   * where a call costs at most the chunks held.
   */
  abstract readonly zeroPiece: number;
  /**
   * Deallocated blocks read zero afterwards (DLFEAT): true for memory, where
   * deallocating drops chunks; false for a file, where it would mean writing
   * zeros over the whole range, so Dataset Management's deallocate is a hint
   * there that changes nothing.
   */
  abstract readonly deallocateZeroes: boolean;
  /** Make written data durable, now (shutdown). */
  abstract flush(): void;
  /**
   * Make written data durable off the engine thread (Flush): settles when
   * done, or undefined when there is nothing to wait for (memory).
   */
  abstract flushing(): Promise<void> | undefined;
  /** Release the backing. */
  abstract close(): void;
}

class MemoryNamespace extends NvmeNamespace {
  readonly deallocateZeroes = true;
  readonly zeroPiece = Number.POSITIVE_INFINITY;
  private readonly chunks = new Map<number, Uint8Array>();

  constructor(spec: NvmeNamespaceSpec) {
    super(spec);
  }

  read(pos: number, length: number): Uint8Array {
    const out = new Uint8Array(length);
    this.each(pos, length, (c, off, n, at) => {
      const chunk = this.chunks.get(c);
      if (chunk) out.set(chunk.subarray(off, off + n), at);
    });
    return out;
  }

  write(pos: number, data: Uint8Array): void {
    this.each(pos, data.length, (c, off, n, at) => {
      let chunk = this.chunks.get(c);
      if (!chunk) {
        chunk = new Uint8Array(CHUNK);
        this.chunks.set(c, chunk);
      }
      chunk.set(data.subarray(at, at + n), off);
    });
  }

  /** Costs the smaller of the range's chunks and the chunks in memory. */
  zero(pos: number, length: number): number {
    let work = 0;
    const clear = (c: number, off: number, n: number) => {
      const chunk = this.chunks.get(c);
      if (!chunk) return;
      work += n;
      if (n === CHUNK) this.chunks.delete(c);
      else chunk.fill(0, off, off + n);
    };
    const first = Math.floor(pos / CHUNK);
    const last = Math.floor((pos + length - 1) / CHUNK);
    if (length > 0 && last - first > this.chunks.size) {
      for (const c of [...this.chunks.keys()]) {
        if (c < first || c > last) continue;
        const s = Math.max(pos, c * CHUNK);
        clear(c, s - c * CHUNK, Math.min(pos + length, (c + 1) * CHUNK) - s);
      }
    } else this.each(pos, length, clear);
    return work;
  }

  flush(): void {}

  flushing(): undefined {
    return undefined;
  }

  close(): void {
    this.chunks.clear();
  }

  /** Visit [pos, pos + length) chunk by chunk: (chunk index, offset in it, bytes, offset in the request). */
  private each(
    pos: number,
    length: number,
    f: (c: number, off: number, n: number, at: number) => void,
  ): void {
    for (let at = 0; at < length; ) {
      const p = pos + at;
      const off = p % CHUNK;
      const n = Math.min(CHUNK - off, length - at);
      f(Math.floor(p / CHUNK), off, n, at);
      at += n;
    }
  }
}

class FileNamespace extends NvmeNamespace {
  readonly deallocateZeroes = false;
  readonly zeroPiece = 1 << 20;
  private fd: number;

  constructor(spec: NvmeNamespaceSpec, path: string) {
    super(spec);
    this.fd = openSync(path, constants.O_RDWR | constants.O_CREAT, 0o644);
    if (BigInt(fstatSync(this.fd).size) < spec.size) ftruncateSync(this.fd, Number(spec.size));
  }

  read(pos: number, length: number): Uint8Array {
    const out = new Uint8Array(length);
    for (let at = 0; at < length; ) {
      const n = readSync(this.fd, out, at, length - at, pos + at);
      if (n === 0) break; // past the file's end (it shrank under us): zeros
      at += n;
    }
    return out;
  }

  write(pos: number, data: Uint8Array): void {
    for (let at = 0; at < data.length; )
      at += writeSync(this.fd, data, at, data.length - at, pos + at);
  }

  zero(pos: number, length: number): number {
    const block = new Uint8Array(Math.min(length, this.zeroPiece));
    for (let at = 0; at < length; at += block.length) {
      this.write(pos + at, block.subarray(0, Math.min(block.length, length - at)));
    }
    return length;
  }

  flush(): void {
    fsyncSync(this.fd);
  }

  flushing(): Promise<void> {
    return new Promise((resolve, reject) => fsync(this.fd, (e) => (e ? reject(e) : resolve())));
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}
