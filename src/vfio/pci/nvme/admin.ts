/**
 * Admin commands (NVMe 1.4 §5): Identify, Get/Set Features, Create/Delete
 * I/O SQ and CQ, Get Log Page (error, SMART / health, firmware slot),
 * Abort, Async Event Request, Keep Alive. Each returns DW0 of its
 * completion (undefined: the command stays outstanding) or throws
 * NvmeStatus; data moves through the IOMMU (DmaFaultError).
 */
import { NVME_ADMIN, NVME_CNS, NVME_LOG, NVME_NSID_ALL, NVME_SC } from './abi.ts';
import type { NvmeCommand } from './command.ts';
import type { NvmeController } from './controller.ts';
import {
  activeNamespaceList,
  identifyController,
  identifyNamespace,
  NVME_ELPE,
  namespaceDescriptors,
} from './identify.ts';
import { NVME_MQES } from './limits.ts';
import { prpWrite } from './prp.ts';
import { CompletionQueue, SubmissionQueue } from './queue.ts';
import { nvmeFail } from './status.ts';

/** Run admin command `cmd` on `ctrl`. */
export function adminCommand(ctrl: NvmeController, cmd: NvmeCommand): number | undefined {
  const [cdw10, cdw11] = cmd.cdw;
  switch (cmd.opcode) {
    case NVME_ADMIN.IDENTIFY:
      toHost(ctrl, cmd, identify(ctrl, cmd.nsid, cdw10! & 0xff));
      return 0;
    case NVME_ADMIN.CREATE_CQ:
      return createCq(ctrl, cmd);
    case NVME_ADMIN.CREATE_SQ:
      return createSq(ctrl, cmd);
    case NVME_ADMIN.DELETE_SQ: {
      const qid = cdw10! & 0xffff;
      if (qid === 0 || !ctrl.sqs.delete(qid)) nvmeFail(NVME_SC.INVALID_QID);
      return 0;
    }
    case NVME_ADMIN.DELETE_CQ: {
      const qid = cdw10! & 0xffff;
      if (qid === 0 || !ctrl.cqs.has(qid)) nvmeFail(NVME_SC.INVALID_QID);
      for (const sq of ctrl.sqs.values()) {
        if (sq.cqid === qid) nvmeFail(NVME_SC.INVALID_QUEUE_DELETION);
      }
      ctrl.cqs.delete(qid);
      return 0;
    }
    case NVME_ADMIN.SET_FEATURES:
      if (cdw10! >>> 31) nvmeFail(NVME_SC.FEATURE_NOT_SAVEABLE);
      return ctrl.features.set(cdw10! & 0xff, cdw11!, ctrl.sqs.size > 1 || ctrl.cqs.size > 1);
    case NVME_ADMIN.GET_FEATURES:
      return ctrl.features.get(cdw10! & 0xff, (cdw10! >>> 8) & 7, cdw11!);
    case NVME_ADMIN.GET_LOG_PAGE:
      getLogPage(ctrl, cmd);
      return 0;
    case NVME_ADMIN.ABORT:
      return 1; // commands run to completion when their doorbell rings: nothing is left to abort
    case NVME_ADMIN.ASYNC_EVENT:
      ctrl.holdAer(cmd.cid);
      return undefined;
    case NVME_ADMIN.KEEP_ALIVE:
      return 0;
    default:
      nvmeFail(NVME_SC.INVALID_OPCODE);
  }
}

/** The Identify structure CNS `cns` names for `nsid`. */
function identify(ctrl: NvmeController, nsid: number, cns: number): Uint8Array {
  const count = ctrl.namespaces.length;
  switch (cns) {
    case NVME_CNS.CONTROLLER:
      return identifyController(ctrl.identity, count);
    case NVME_CNS.NAMESPACE: {
      const ns = ctrl.namespace(nsid);
      if (!ns) nvmeFail(NVME_SC.INVALID_NS);
      return identifyNamespace(ns, nguid(ctrl, nsid));
    }
    case NVME_CNS.ACTIVE_NS_LIST:
      if (nsid >= NVME_NSID_ALL - 1) nvmeFail(NVME_SC.INVALID_NS);
      return activeNamespaceList(count, nsid);
    case NVME_CNS.NS_DESCRIPTORS:
      if (!ctrl.namespace(nsid)) nvmeFail(NVME_SC.INVALID_NS);
      return namespaceDescriptors(nguid(ctrl, nsid));
    default:
      nvmeFail(NVME_SC.INVALID_FIELD);
  }
}

/** A namespace's NGUID: the controller's serial and the NSID, stable across runs. */
function nguid(ctrl: NvmeController, nsid: number): Uint8Array {
  const id = new Uint8Array(16);
  const s = ctrl.identity.serial;
  for (let i = 0; i < Math.min(12, s.length); i++) id[i] = s.charCodeAt(i);
  new DataView(id.buffer).setUint32(12, nsid, false);
  return id;
}

/** Create I/O Completion Queue: QID, QSIZE, PC, IEN, IV checked in the device's order. */
function createCq(ctrl: NvmeController, cmd: NvmeCommand): number {
  const [cdw10, cdw11] = cmd.cdw as [number, number];
  const qid = cdw10 & 0xffff;
  const size = (cdw10 >>> 16) + 1;
  const vector = cdw11 >>> 16;
  if (qid === 0 || qid > ctrl.features.ioCqs || ctrl.cqs.has(qid)) nvmeFail(NVME_SC.INVALID_QID);
  if (size < 2 || size > NVME_MQES + 1) nvmeFail(NVME_SC.INVALID_QSIZE);
  if (cmd.prp1 % BigInt(ctrl.pageSize)) nvmeFail(NVME_SC.PRP_OFFSET_INVALID);
  if (!(cdw11 & 1)) nvmeFail(NVME_SC.INVALID_FIELD); // CAP.CQR: contiguous queues only
  if (vector >= ctrl.vectors) nvmeFail(NVME_SC.INVALID_VECTOR);
  ctrl.cqs.set(qid, new CompletionQueue(qid, cmd.prp1, size, (cdw11 & 2) !== 0, vector));
  return 0;
}

/** Create I/O Submission Queue: QID, CQID, QSIZE, PC checked in the device's order. */
function createSq(ctrl: NvmeController, cmd: NvmeCommand): number {
  const [cdw10, cdw11] = cmd.cdw as [number, number];
  const qid = cdw10 & 0xffff;
  const size = (cdw10 >>> 16) + 1;
  const cqid = cdw11 >>> 16;
  if (qid === 0 || qid > ctrl.features.ioSqs || ctrl.sqs.has(qid)) nvmeFail(NVME_SC.INVALID_QID);
  if (cqid === 0 || !ctrl.cqs.has(cqid)) nvmeFail(NVME_SC.INVALID_CQ);
  if (size < 2 || size > NVME_MQES + 1) nvmeFail(NVME_SC.INVALID_QSIZE);
  if (cmd.prp1 % BigInt(ctrl.pageSize)) nvmeFail(NVME_SC.PRP_OFFSET_INVALID);
  if (!(cdw11 & 1)) nvmeFail(NVME_SC.INVALID_FIELD);
  ctrl.sqs.set(qid, new SubmissionQueue(qid, cmd.prp1, size, cqid));
  return 0;
}

/** Get Log Page: NUMD dwords from the dword-aligned offset LPO of page LID. */
function getLogPage(ctrl: NvmeController, cmd: NvmeCommand): void {
  const [cdw10, cdw11, lpol, lpou] = cmd.cdw as [number, number, number, number];
  const numd = ((cdw11 & 0xffff) * 0x10000 + (cdw10 >>> 16) + 1) * 4;
  const offset = lpou * 2 ** 32 + lpol;
  const page = logPage(ctrl, cdw10 & 0xff);
  if (offset & 3 || offset >= page.length) nvmeFail(NVME_SC.INVALID_FIELD);
  if (numd > ctrl.maxTransfer) nvmeFail(NVME_SC.INVALID_FIELD);
  const out = new Uint8Array(numd);
  out.set(page.subarray(offset, offset + numd));
  toHost(ctrl, cmd, out);
}

function logPage(ctrl: NvmeController, lid: number): Uint8Array {
  switch (lid) {
    case NVME_LOG.ERROR:
      return new Uint8Array(64 * (NVME_ELPE + 1));
    case NVME_LOG.SMART: {
      const b = new Uint8Array(512);
      const v = new DataView(b.buffer);
      v.setUint16(1, 0x13c, true); // composite temperature 316 K
      b[3] = 100; // available spare
      b[4] = 10; // available spare threshold
      const units = (n: bigint) => (n + 999n) / 1000n; // thousands of 512-byte units, rounded up
      v.setBigUint64(32, units(ctrl.smart.unitsRead), true);
      v.setBigUint64(48, units(ctrl.smart.unitsWritten), true);
      v.setBigUint64(64, ctrl.smart.reads, true);
      v.setBigUint64(80, ctrl.smart.writes, true);
      return b;
    }
    case NVME_LOG.FW_SLOT: {
      const b = new Uint8Array(512);
      b[0] = 1; // AFI: slot 1 active
      const fr = ctrl.identity.firmware.padEnd(8, ' ');
      for (let i = 0; i < 8; i++) b[8 + i] = fr.charCodeAt(i);
      return b;
    }
    default:
      nvmeFail(NVME_SC.INVALID_LOG_PAGE);
  }
}

/** Write `data` to the memory the command's PRPs describe. */
function toHost(ctrl: NvmeController, cmd: NvmeCommand, data: Uint8Array): void {
  prpWrite(ctrl.dma, cmd.prp1, cmd.prp2, data, ctrl.pageSize);
}
