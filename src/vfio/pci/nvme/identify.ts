/**
 * The Identify data structures (NVMe 1.4 §5.15.2) the model returns: the
 * controller, a namespace, the active namespace list and a namespace's
 * identification descriptors. Each is 4096 bytes, little-endian.
 */
import { NVME_MDTS } from './limits.ts';
import type { NvmeNamespace } from './namespace.ts';

/** What Identify Controller reports that comes from the host config. */
export interface NvmeIdentity {
  readonly vendor: number;
  readonly subsystemVendor: number;
  /** Serial number (≤ 20 ASCII characters). */
  readonly serial: string;
  /** Model number (≤ 40 ASCII characters). */
  readonly model: string;
  /** Firmware revision (≤ 8 ASCII characters). */
  readonly firmware: string;
}

/** Identify and log page structures are this long. */
export const NVME_IDENTIFY_BYTES = 4096;
/** Version reported in VS and Identify Controller: 1.4.0. */
export const NVME_VERSION = 0x00010400;
/** Async Event Request Limit, 0-based: four may be outstanding. */
export const NVME_AERL = 3;
/** Error Log Page Entries, 0-based. */
export const NVME_ELPE = 0;
/** Optional NVM commands: Dataset Management (bit 2) and Write Zeroes (bit 3). */
export const NVME_ONCS = 0x000c;

function ascii(buf: Uint8Array, at: number, len: number, s: string): void {
  buf.fill(0x20, at, at + len);
  for (let i = 0; i < Math.min(len, s.length); i++) buf[at + i] = s.charCodeAt(i) & 0x7f;
}

/** Identify Controller (CNS 01h) of a controller with `namespaces` namespaces. */
export function identifyController(id: NvmeIdentity, namespaces: number): Uint8Array {
  const b = new Uint8Array(NVME_IDENTIFY_BYTES);
  const v = new DataView(b.buffer);
  v.setUint16(0, id.vendor, true); // VID
  v.setUint16(2, id.subsystemVendor, true); // SSVID
  ascii(b, 4, 20, id.serial); // SN
  ascii(b, 24, 40, id.model); // MN
  ascii(b, 64, 8, id.firmware); // FR
  b[72] = 0; // RAB
  b[77] = NVME_MDTS; // MDTS
  v.setUint16(78, 0, true); // CNTLID
  v.setUint32(80, NVME_VERSION, true); // VER
  v.setUint32(92, 0x100, true); // OAES: namespace attribute notices
  b[111] = 1; // CNTRLTYPE: I/O controller
  v.setUint16(256, 0, true); // OACS: no optional admin commands
  b[258] = 3; // ACL (0-based)
  b[259] = NVME_AERL; // AERL
  b[260] = 0x03; // FRMW: one slot, slot 1 read-only
  b[261] = 0x04; // LPA: extended Get Log Page (offset, NUMDU)
  b[262] = NVME_ELPE; // ELPE
  v.setUint16(266, 0x157, true); // WCTEMP 343 K
  v.setUint16(268, 0x175, true); // CCTEMP 373 K
  v.setUint16(320, 1, true); // KAS: 100 ms granularity
  b[512] = 0x66; // SQES: 64-byte entries
  b[513] = 0x44; // CQES: 16-byte entries
  v.setUint32(516, namespaces, true); // NN
  v.setUint16(520, NVME_ONCS, true); // ONCS
  b[525] = 0x07; // VWC: present, Flush with NSID FFFFFFFFh supported
  b[530] = 1; // NVSCC
  v.setUint32(536, 0, true); // SGLS: none
  const nqn = `nqn.2014-08.org.nvmexpress:uiommu:${id.serial}`;
  for (let i = 0; i < nqn.length; i++) b[768 + i] = nqn.charCodeAt(i); // SUBNQN
  v.setUint16(2048, 0x09c4, true); // PSD0.MP: 25.00 W
  return b;
}

/** Identify Namespace (CNS 00h) for `ns` with NGUID `nguid`. */
export function identifyNamespace(ns: NvmeNamespace, nguid: Uint8Array): Uint8Array {
  const b = new Uint8Array(NVME_IDENTIFY_BYTES);
  const v = new DataView(b.buffer);
  v.setBigUint64(0, ns.blocks, true); // NSZE
  v.setBigUint64(8, ns.blocks, true); // NCAP
  v.setBigUint64(16, ns.blocks, true); // NUSE
  b[24] = 0; // NSFEAT
  b[25] = 0; // NLBAF (0-based): one format
  b[26] = 0; // FLBAS: format 0, no metadata
  // DLFEAT: Write Zeroes takes DEAC; deallocated blocks read zero (memory) or not reported (file)
  b[33] = ns.deallocateZeroes ? 0x09 : 0x08;
  b.set(nguid, 104); // NGUID
  v.setUint16(128, 0, true); // LBAF0.MS
  b[130] = Math.log2(ns.lbaSize); // LBAF0.LBADS
  b[131] = 0; // LBAF0.RP: best
  return b;
}

/** Active Namespace ID list (CNS 02h): NSIDs above `after`, ascending. */
export function activeNamespaceList(count: number, after: number): Uint8Array {
  const b = new Uint8Array(NVME_IDENTIFY_BYTES);
  const v = new DataView(b.buffer);
  let i = 0;
  for (let nsid = after + 1; nsid <= count && i < NVME_IDENTIFY_BYTES / 4; nsid++) {
    v.setUint32(4 * i++, nsid, true);
  }
  return b;
}

/** Namespace Identification Descriptor list (CNS 03h): the NGUID (type 2). */
export function namespaceDescriptors(nguid: Uint8Array): Uint8Array {
  const b = new Uint8Array(NVME_IDENTIFY_BYTES);
  b[0] = 2; // NIDT: NGUID
  b[1] = 16; // NIDL
  b.set(nguid, 4);
  return b;
}
