/**
 * NVM command set I/O commands (NVMe 1.4 §6): Flush, Write, Read, Write
 * Zeroes, Dataset Management (deallocate). Each checks the namespace, the
 * LBA range and the transfer size (MDTS), then moves data between the
 * namespace and host memory through the IOMMU. A refused DMA throws
 * DmaFaultError (Data Transfer Error): a Write then stores nothing, a Read
 * may have filled the pages before the refused one.
 */
import { NVME_IO, NVME_NSID_ALL, NVME_SC } from './abi.ts';
import type { NvmeCommand, NvmeWork } from './command.ts';
import type { NvmeController } from './controller.ts';
import type { NvmeNamespace } from './namespace.ts';
import { prpRead, prpWrite } from './prp.ts';
import { nvmeFail } from './status.ts';

/** Bytes of one Dataset Management range: attributes, NLB, SLBA. */
const DSM_RANGE_BYTES = 16;

/**
 * Run I/O command `cmd` on `ctrl`; returns DW0 (always 0), or the pieces
 * still to run of a Write Zeroes or deallocate (checked in full first).
 */
export function ioCommand(ctrl: NvmeController, cmd: NvmeCommand): number | NvmeWork {
  if (cmd.opcode === NVME_IO.FLUSH && cmd.nsid === NVME_NSID_ALL) return flush(ctrl.namespaces);
  const ns = ctrl.namespace(cmd.nsid);
  if (!ns) nvmeFail(NVME_SC.INVALID_NS);
  const [cdw10, cdw11, cdw12] = cmd.cdw as [number, number, number];
  switch (cmd.opcode) {
    case NVME_IO.FLUSH:
      return flush([ns]);
    case NVME_IO.READ:
    case NVME_IO.WRITE: {
      const [pos, bytes] = range(ns, cdw10, cdw11, (cdw12 & 0xffff) + 1);
      if (bytes > ctrl.maxTransfer) nvmeFail(NVME_SC.INVALID_FIELD);
      ctrl.charge(bytes);
      const units = BigInt(bytes / 512);
      if (cmd.opcode === NVME_IO.WRITE) {
        ns.write(pos, prpRead(ctrl.dma, cmd.prp1, cmd.prp2, bytes, ctrl.pageSize));
        ctrl.smart.unitsWritten += units;
        ctrl.smart.writes++;
      } else {
        prpWrite(ctrl.dma, cmd.prp1, cmd.prp2, ns.read(pos, bytes), ctrl.pageSize);
        ctrl.smart.unitsRead += units;
        ctrl.smart.reads++;
      }
      return 0;
    }
    case NVME_IO.WRITE_ZEROES: {
      return zeroRanges(ctrl, ns, [range(ns, cdw10, cdw11, (cdw12 & 0xffff) + 1)]);
    }
    case NVME_IO.DSM:
      return datasetManagement(ctrl, ns, cmd);
    default:
      nvmeFail(NVME_SC.INVALID_OPCODE);
  }
}

/** [byte offset, byte count] of `nlb` blocks from SLBA (cdw10, cdw11); LBA_RANGE past the end. */
function range(ns: NvmeNamespace, lo: number, hi: number, nlb: number): [number, number] {
  const slba = (BigInt(hi) << 32n) | BigInt(lo);
  if (slba + BigInt(nlb) > ns.blocks) nvmeFail(NVME_SC.LBA_RANGE);
  return [Number(slba) * ns.lbaSize, nlb * ns.lbaSize];
}

/**
 * Dataset Management: NR + 1 ranges from the PRPs; with AD (attribute
 * deallocate) each range of a namespace whose deallocated blocks read zero
 * does so afterwards. Every range is checked before any is deallocated.
 */
function datasetManagement(
  ctrl: NvmeController,
  ns: NvmeNamespace,
  cmd: NvmeCommand,
): number | NvmeWork {
  const [cdw10, cdw11] = cmd.cdw as [number, number];
  const count = (cdw10 & 0xff) + 1;
  const raw = prpRead(ctrl.dma, cmd.prp1, cmd.prp2, count * DSM_RANGE_BYTES, ctrl.pageSize);
  const v = new DataView(raw.buffer);
  const ranges: [number, number][] = [];
  for (let i = 0; i < count; i++) {
    const at = i * DSM_RANGE_BYTES;
    const nlb = v.getUint32(at + 4, true);
    const slba = v.getBigUint64(at + 8, true);
    if (slba + BigInt(nlb) > ns.blocks) nvmeFail(NVME_SC.LBA_RANGE);
    ranges.push([Number(slba) * ns.lbaSize, nlb * ns.lbaSize]);
  }
  if (!(cdw11 & 4) || !ns.deallocateZeroes) return 0; // hints only: nothing changes
  return zeroRanges(ctrl, ns, ranges);
}

/** Flush `namespaces`, each file's fsync off the engine thread, one after the other. */
function* flush(namespaces: readonly NvmeNamespace[]): NvmeWork {
  for (const ns of namespaces) {
    const done = ns.flushing();
    if (!done) continue;
    let failure: { e: unknown } | undefined;
    yield done.catch((e: unknown) => {
      failure = { e };
    });
    if (failure) throw failure.e;
  }
  return 0;
}

/**
 * Zero `ranges` ([byte offset, byte count]) in pieces of at most the
 * namespace's `zeroPiece`, each charged to the budget; the controller runs
 * the first piece at once and each later one when its budget allows.
 */
function* zeroRanges(
  ctrl: NvmeController,
  ns: NvmeNamespace,
  ranges: [number, number][],
): NvmeWork {
  let first = true;
  for (const [pos, bytes] of ranges) {
    for (let at = 0; at < bytes; ) {
      if (!first) yield undefined;
      first = false;
      const n = Math.min(ns.zeroPiece, bytes - at);
      ctrl.charge(ns.zero(pos + at, n));
      at += n;
    }
  }
  return 0;
}
