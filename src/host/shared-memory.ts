/**
 * Shared stores on real memfds: the engine's side of a mapped BAR
 * (docs/device-mmap.md). The engine keeps the memfd open and reads and
 * writes it with pread/pwrite; a client opens the same file through
 * /proc/<engine pid>/fd/<fd> and maps it, so both see the same bytes.
 *
 * @example
 * const store = memfdStore('uiommu-0000:00:02.0-bar0', 16n << 20n);
 * store.write(0x40000n, bytes); // a client's mapping shows them at once
 */
import { closeSync, readSync, writeSync } from 'node:fs';
import type { SharedStore } from '../kernel/file.ts';
import { memfdCreate, punchHole } from './native.ts';

/** A SharedMemoryProvider backed by memfd_create (an fd closes with `close` or the engine). */
export function memfdStore(name: string, size: bigint): SharedStore {
  const fd = memfdCreate(name, size);
  return {
    fd,
    read(offset, length) {
      const out = new Uint8Array(length);
      let done = 0;
      while (done < length) {
        const n = readSync(fd, out, done, length - done, Number(offset) + done);
        if (n === 0) break;
        done += n;
      }
      return out;
    },
    write(offset, data) {
      let done = 0;
      while (done < data.length) {
        done += writeSync(fd, data, done, data.length - done, Number(offset) + done);
      }
    },
    zero(offset, length) {
      punchHole(fd, offset, length);
    },
    close() {
      closeSync(fd);
    },
  };
}
