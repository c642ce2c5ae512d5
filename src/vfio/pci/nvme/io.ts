/**
 * NVM command set I/O commands (NVMe 1.4 §6): Flush, Write, Read, Write
 * Zeroes, Dataset Management (deallocate). Each checks the namespace, the
 * LBA range and the transfer size (MDTS), then moves data between the
 * namespace and host memory through the IOMMU. A refused DMA throws
 * DmaFaultError (Data Transfer Error): a Write then stores nothing, a Read
 * may have filled the pages before the refused one.
 */
import { NVME_IO, NVME_NSID_ALL, NVME_SC } from './abi.ts';
import type { NvmeCommand } from './command.ts';
import type { NvmeController } from './controller.ts';
import type { NvmeNamespace } from './namespace.ts';
import { prpRead, prpWrite } from './prp.ts';
import { nvmeFail } from './status.ts';

/** Bytes of one Dataset Management range: attributes, NLB, SLBA. */
const DSM_RANGE_BYTES = 16;

/** Run I/O command `cmd` on `ctrl`; returns DW0 (always 0). */
export function ioCommand(ctrl: NvmeController, cmd: NvmeCommand): number {
  if (cmd.opcode === NVME_IO.FLUSH && cmd.nsid === NVME_NSID_ALL) {
    for (const ns of ctrl.namespaces) ns.flush();
    return 0;
  }
  const ns = ctrl.namespace(cmd.nsid);
  if (!ns) nvmeFail(NVME_SC.INVALID_NS);
  const [cdw10, cdw11, cdw12] = cmd.cdw as [number, number, number];
  switch (cmd.opcode) {
    case NVME_IO.FLUSH:
      ns.flush();
      return 0;
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
      const [pos, bytes] = range(ns, cdw10, cdw11, (cdw12 & 0xffff) + 1);
      ctrl.charge(bytes);
      ns.zero(pos, bytes);
      return 0;
    }
    case NVME_IO.DSM:
      datasetManagement(ctrl, ns, cmd);
      return 0;
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
function datasetManagement(ctrl: NvmeController, ns: NvmeNamespace, cmd: NvmeCommand): void {
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
  if (!(cdw11 & 4) || !ns.deallocateZeroes) return; // hints only: nothing changes
  for (const [pos, bytes] of ranges) {
    ctrl.charge(bytes);
    ns.zero(pos, bytes);
  }
}
