/**
 * §2: mapping 4 KiB, 1 GiB and 1 TiB with an intel domain restricted to
 * 4 KiB pages attached. The map pins the pages and fills the domain (checked
 * after the run), so "cost follows mappings, not bytes" means the three
 * should cost about the same in time and heap.
 *
 * A round maps one size REPS times, each from its own sparse SimMm mapping
 * (made before the heap baseline) at its own FIXED IOVA, then unmaps them.
 * Time is the median MAP ioctl over all rounds; heap is the median over
 * rounds of the heapUsed delta after GC divided by REPS.
 */
import type { Device } from '../src/iommu/device.ts';
import type { Domain } from '../src/iommu/domain.ts';
import { type Fixture, mapFixed, PAGE, setup, unmap } from './fixture.ts';
import { heapAfterGc, median, now } from './harness.ts';

export const REPS = 96;
export const ROUNDS = 15;
/** Each mapping gets its own 2 TiB slot of IOVA (the 48-bit aperture holds 128; REPS TiB of VA must fit in the 128 TiB user space). */
const SLOT = 2n << 40n;

export interface BigMapRow {
  label: string;
  bytes: bigint;
  /** Byte offset of the IOVA from a 2 TiB boundary. */
  iovaOffset: bigint;
  usPerMap: number;
  usPerUnmap: number;
  heapBytesPerMap: number;
  /** Page-table objects (nodes + runs) one live map adds to the domain. */
  pgtableObjects: number;
}

export interface BigMapResult {
  rows: BigMapRow[];
  /** The device's domain and the fixture, reused by the translation bench. */
  fixture: Fixture;
  domain: Domain;
  /** The intel device attached to `domain`. */
  device: Device;
  ioas: number;
  /** IOVA of two mapped pages; the first starts with bytes 1, 2, 3, 4. */
  iova: bigint;
}

const SIZES: { label: string; bytes: bigint; iovaOffset: bigint }[] = [
  { label: '4 KiB', bytes: PAGE, iovaOffset: 0n },
  { label: '1 GiB', bytes: 1n << 30n, iovaOffset: 0n },
  { label: '1 TiB', bytes: 1n << 40n, iovaOffset: 0n },
  // worst case for the page table: head and tail cut at every level
  { label: '1 TiB, IOVA 2 TiB + 4 KiB', bytes: 1n << 40n, iovaOffset: PAGE },
];

export function benchBigMap(): BigMapResult {
  const f = setup();
  const idev = f.intelDevice({ pgsizeBitmap: PAGE });
  const ioas = f.ioas();
  const domain = idev.attach(ioas).domain;
  if (domain.pgsizeBitmap !== PAGE) throw new Error('domain is not 4 KiB-only');
  const ram = f.kernel.memory;
  const table = domain.apertures[0]!.table;

  /** One round: REPS live maps of `bytes`; heap delta per map and every MAP/UNMAP time. */
  const round = (bytes: bigint, iovaOffset: bigint, reps: number) => {
    const vas = Array.from({ length: reps }, () => f.mem(bytes));
    const iovas = vas.map((_, i) => BigInt(i + 1) * SLOT + iovaOffset);
    const pinned0 = ram.pinnedPages();
    const objects0 = table.objectCount;
    const h0 = heapAfterGc();
    const mapUs: number[] = [];
    for (let i = 0; i < reps; i++) {
      const t = now();
      mapFixed(f, ioas, vas[i]!, bytes, iovas[i]!);
      mapUs.push((now() - t) * 1000);
    }
    const heap = (heapAfterGc() - h0) / reps;
    const objects = (table.objectCount - objects0) / reps;
    // the map really pinned every page and filled the domain end to end
    if (ram.pinnedPages() - pinned0 !== (BigInt(reps) * bytes) / PAGE) {
      throw new Error('pinned page count does not match the mapped bytes');
    }
    for (let i = 0; i < reps; i++) {
      const phys0 = domain.iovaToPhys(iovas[i]!);
      const physN = domain.iovaToPhys(iovas[i]! + bytes - PAGE);
      if (phys0 === undefined || physN === undefined) throw new Error('domain not filled');
      if (phys0 !== f.proc.mm.resolve(vas[i]!, PAGE, false)[0]!.phys) {
        throw new Error('domain maps the wrong page');
      }
    }
    const unmapUs: number[] = [];
    for (let i = 0; i < reps; i++) {
      const t = now();
      unmap(f, ioas, iovas[i]!, bytes);
      unmapUs.push((now() - t) * 1000);
    }
    for (const va of vas) f.proc.mm.munmap(va, bytes);
    return { heap, objects, mapUs, unmapUs };
  };

  // warm the JIT on every size first, so the first measured size is not the cold one
  for (let w = 0; w < 2; w++) for (const s of SIZES) round(s.bytes, s.iovaOffset, REPS);
  // sizes interleaved round by round; the median round filters out one-off heap
  // growth such as optimised code being installed during a round
  const acc = SIZES.map(() => ({
    heap: [] as number[],
    objects: 0,
    mapUs: [] as number[],
    unmapUs: [] as number[],
  }));
  for (let r = 0; r < ROUNDS; r++) {
    SIZES.forEach((s, i) => {
      const got = round(s.bytes, s.iovaOffset, REPS);
      acc[i]!.heap.push(got.heap);
      acc[i]!.objects = got.objects;
      acc[i]!.mapUs.push(...got.mapUs);
      acc[i]!.unmapUs.push(...got.unmapUs);
    });
  }
  const rows = SIZES.map((s, i) => ({
    ...s,
    usPerMap: median(acc[i]!.mapUs),
    usPerUnmap: median(acc[i]!.unmapUs),
    heapBytesPerMap: median(acc[i]!.heap),
    pgtableObjects: acc[i]!.objects,
  }));

  // leave two pages mapped for the translation bench
  const va = f.mem(2n * PAGE);
  f.proc.mm.write(va, Uint8Array.of(1, 2, 3, 4));
  mapFixed(f, ioas, va, 2n * PAGE, SLOT);
  return { rows, fixture: f, domain, device: idev.dev, ioas, iova: SLOT };
}
