/**
 * The device mappings of one address space: the vmas a process made by
 * mmap of a device file (vfio-pci BARs, VM_IO | VM_PFNMAP in Linux). The
 * preload library reports every mmap, munmap and mremap that touches them
 * (docs/device-mmap.md); the engine uses them to serve trapped register
 * accesses and to refuse pinning them (GUP fails on VM_PFNMAP: IOAS_MAP
 * is EFAULT). Each piece keeps a reference to its open file, as a vma does,
 * so the device stays open while mapped, and its mapping hears of each
 * piece made and gone (vm_ops open/close).
 *
 * @example
 * maps.add(0x7f00_0000_0000n, 0x10000n, file, mapping);
 * maps.remove(0x7f00_0000_4000n, 0x1000n); // splits it in two
 * maps.find(0x7f00_0000_0004n); // { start, end, file, mapping, delta: 0n }
 */
import { fail } from '../abi/errno.ts';
import { appendRun, type PhysRun } from '../iommu/mm.ts';
import type { DeviceMapping } from '../kernel/file.ts';
import type { OpenFile } from './file.ts';

/** One piece of a device mapping: `[start, end)` shows `mapping` from its offset `delta`. */
export interface IoMap {
  readonly start: bigint;
  readonly end: bigint;
  readonly file: OpenFile;
  readonly mapping: DeviceMapping;
  /** Offset of `start` from the beginning of the original mapping. */
  readonly delta: bigint;
}

/** A piece comes to be: it holds its file (vm_file) and tells the mapping (vm_ops->open). */
function hold(m: IoMap): void {
  m.file.get();
  m.mapping.open?.();
}

/** A piece goes away (vm_ops->close, then the file reference). */
function drop(m: IoMap): void {
  m.mapping.close?.();
  m.file.put();
}

export class IoMaps {
  /** Non-overlapping, ascending by start. */
  private maps: IoMap[] = [];

  /** A new mapping at `[start, start+length)`; whatever was there is gone first (MAP_FIXED). */
  add(start: bigint, length: bigint, file: OpenFile, mapping: DeviceMapping): void {
    this.remove(start, length);
    const m = { start, end: start + length, file, mapping, delta: 0n };
    hold(m);
    this.insert(m);
  }

  /** munmap of `[start, start+length)`: pieces are cut, split or dropped. */
  remove(start: bigint, length: bigint): void {
    const end = start + length;
    const kept: IoMap[] = [];
    for (const m of this.maps) {
      if (m.end <= start || m.start >= end) {
        kept.push(m);
        continue;
      }
      if (m.start < start) kept.push({ ...m, end: start });
      if (m.end > end) kept.push({ ...m, start: end, delta: m.delta + (end - m.start) });
      // the references: one per kept piece of m
      const pieces = (m.start < start ? 1 : 0) + (m.end > end ? 1 : 0);
      if (pieces === 0) drop(m);
      else if (pieces === 2) hold(m);
    }
    this.maps = kept;
  }

  /**
   * mremap of `[oldStart, oldStart+oldLength)` to `newStart` with
   * `newLength` (≤ oldLength: device mappings cannot grow): the first
   * `newLength` bytes move, the rest is unmapped.
   */
  move(oldStart: bigint, oldLength: bigint, newStart: bigint, newLength: bigint): void {
    const moved: IoMap[] = [];
    const keepEnd = oldStart + newLength;
    for (const m of this.maps) {
      if (m.end <= oldStart || m.start >= keepEnd) continue;
      const s = m.start > oldStart ? m.start : oldStart;
      const e = m.end < keepEnd ? m.end : keepEnd;
      const piece = {
        start: newStart + (s - oldStart),
        end: newStart + (e - oldStart),
        file: m.file,
        mapping: m.mapping,
        delta: m.delta + (s - m.start),
      };
      hold(piece);
      moved.push(piece);
    }
    this.remove(oldStart, oldLength);
    for (const m of moved) {
      this.remove(m.start, m.end - m.start);
      this.insert(m);
    }
  }

  /** The piece holding `addr`, if any. */
  find(addr: bigint): IoMap | undefined {
    return this.maps.find((m) => addr >= m.start && addr < m.end);
  }

  /** No device mapping at all. */
  get empty(): boolean {
    return this.maps.length === 0;
  }

  /** Whether any byte of `[start, start+length)` is device-mapped. */
  overlaps(start: bigint, length: bigint): boolean {
    const end = start + length;
    return this.maps.some((m) => m.start < end && m.end > start);
  }

  /**
   * The bus addresses behind `[va, va+length)` (follow_pfn over VM_PFNMAP
   * vmas), ascending and coalesced; EFAULT unless every byte is device-mapped.
   */
  resolve(va: bigint, length: bigint): PhysRun[] {
    const runs: PhysRun[] = [];
    let at = va;
    const end = va + length;
    while (at < end) {
      const m = this.find(at);
      if (!m) fail('EFAULT', 'not device memory', 'follow_pfnmap_start');
      const stop = m.end < end ? m.end : end;
      appendRun(runs, at, stop - at, m.mapping.phys(m.delta + (at - m.start)));
      at = stop;
    }
    return runs;
  }

  /** How many times the mapped devices have zapped their mappings, summed. */
  zaps(): number {
    let n = 0;
    for (const m of this.maps) n += m.mapping.zaps();
    return n;
  }

  get size(): number {
    return this.maps.length;
  }

  /** A copy for a fork child (one more reference per piece). */
  clone(): IoMaps {
    const copy = new IoMaps();
    for (const m of this.maps) hold(m);
    copy.maps = [...this.maps];
    return copy;
  }

  /** Drop every mapping (exit, exec). */
  clear(): void {
    const maps = this.maps;
    this.maps = [];
    for (const m of maps) drop(m);
  }

  private insert(m: IoMap): void {
    const i = this.maps.findIndex((x) => x.start > m.start);
    if (i < 0) this.maps.push(m);
    else this.maps.splice(i, 0, m);
  }
}
