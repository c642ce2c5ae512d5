/**
 * PRP walking (NVMe 1.4 §4.3): the memory a command's PRP1/PRP2 describe,
 * as IOVA segments. PRP1 may start anywhere dword-aligned in a page; a
 * transfer that ends in the next page has that page in PRP2 (offset 0);
 * a longer one has in PRP2 a qword-aligned pointer to a PRP list, whose
 * entries are pages (offset 0) and whose last entry in each list page, when
 * more entries follow, points to the next list page. The list is fetched
 * through the IOMMU (a refused fetch throws DmaFaultError). Work is bounded
 * by the transfer length the caller has already checked against MDTS.
 *
 * @example
 * prpSegments(dma, 0x10000n, 0x20000n, 8192, 4096); // [[0x10000n, 4096], [0x20000n, 4096]]
 */
import type { DmaPort } from '../device-model.ts';
import { NVME_SC } from './abi.ts';
import { nvmeFail } from './status.ts';

/** A contiguous run of IOVA space: [iova, iova + length). */
export type PrpSegment = [iova: bigint, length: number];

/**
 * The segments of a `length`-byte transfer (length > 0) with memory page
 * size `pageSize`; contiguous pages are merged. Throws NvmeStatus
 * PRP_OFFSET_INVALID when an entry breaks the offset rules.
 */
export function prpSegments(
  dma: DmaPort,
  prp1: bigint,
  prp2: bigint,
  length: number,
  pageSize: number,
): PrpSegment[] {
  const page = BigInt(pageSize);
  if (prp1 & 3n) nvmeFail(NVME_SC.PRP_OFFSET_INVALID);
  const out: PrpSegment[] = [];
  const add = (iova: bigint, n: number) => {
    const last = out[out.length - 1];
    if (last && last[0] + BigInt(last[1]) === iova) last[1] += n;
    else out.push([iova, n]);
  };
  const first = Math.min(length, pageSize - Number(prp1 % page));
  add(prp1, first);
  let left = length - first;
  if (left === 0) return out;
  if (left <= pageSize) {
    if (prp2 % page) nvmeFail(NVME_SC.PRP_OFFSET_INVALID);
    add(prp2, left);
    return out;
  }
  if (prp2 & 7n) nvmeFail(NVME_SC.PRP_OFFSET_INVALID);
  let list = prp2;
  while (left > 0) {
    const slots = Number((page - (list % page)) / 8n);
    const needed = Math.ceil(left / pageSize);
    const chained = needed > slots;
    const take = chained ? slots : needed;
    const raw = dma.dmaRead(list, take * 8);
    const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    const data = chained ? take - 1 : take;
    // a list page whose only slot is the next pointer would never progress
    if (data === 0) nvmeFail(NVME_SC.PRP_OFFSET_INVALID);
    for (let i = 0; i < data; i++) {
      const entry = view.getBigUint64(i * 8, true);
      if (entry % page) nvmeFail(NVME_SC.PRP_OFFSET_INVALID);
      const n = Math.min(pageSize, left);
      add(entry, n);
      left -= n;
    }
    if (chained) {
      list = view.getBigUint64(data * 8, true);
      if (list & 7n) nvmeFail(NVME_SC.PRP_OFFSET_INVALID);
    }
  }
  return out;
}

/** Copy `data` to the memory PRP1/PRP2 describe (the device writes host memory). */
export function prpWrite(
  dma: DmaPort,
  prp1: bigint,
  prp2: bigint,
  data: Uint8Array,
  pageSize: number,
): void {
  let at = 0;
  for (const [iova, n] of prpSegments(dma, prp1, prp2, data.length, pageSize)) {
    dma.dmaWrite(iova, data.subarray(at, at + n));
    at += n;
  }
}

/** `length` bytes from the memory PRP1/PRP2 describe (the device reads host memory). */
export function prpRead(
  dma: DmaPort,
  prp1: bigint,
  prp2: bigint,
  length: number,
  pageSize: number,
): Uint8Array {
  const out = new Uint8Array(length);
  let at = 0;
  for (const [iova, n] of prpSegments(dma, prp1, prp2, length, pageSize)) {
    out.set(dma.dmaRead(iova, n), at);
    at += n;
  }
  return out;
}
