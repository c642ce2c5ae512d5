/**
 * A submission queue entry decoded (NVMe 1.4 §4.2): CDW0 (opcode, fused
 * operation, PSDT, command identifier), NSID, PRP1/PRP2 and CDW10..15.
 */
export interface NvmeCommand {
  readonly opcode: number;
  /** FUSE, bits 9:8 of CDW0. */
  readonly fuse: number;
  /** PSDT, bits 15:14 of CDW0: 0 = PRPs. */
  readonly psdt: number;
  readonly cid: number;
  readonly nsid: number;
  readonly prp1: bigint;
  readonly prp2: bigint;
  /** CDW10..CDW15 at [0]..[5]. */
  readonly cdw: readonly number[];
}

/** Decode a 64-byte submission queue entry. */
export function decodeCommand(sqe: Uint8Array): NvmeCommand {
  const v = new DataView(sqe.buffer, sqe.byteOffset, sqe.byteLength);
  const cdw0 = v.getUint32(0, true);
  const cdw: number[] = [];
  for (let i = 0; i < 6; i++) cdw.push(v.getUint32(40 + 4 * i, true));
  return {
    opcode: cdw0 & 0xff,
    fuse: (cdw0 >>> 8) & 3,
    psdt: (cdw0 >>> 14) & 3,
    cid: cdw0 >>> 16,
    nsid: v.getUint32(4, true),
    prp1: v.getBigUint64(24, true),
    prp2: v.getBigUint64(32, true),
    cdw,
  };
}

/**
 * The rest of a command that runs in bounded pieces: each `next()` does one
 * piece (counted against the controller's budget) and the last returns the
 * command's DW0. A throw ends the command with that status. A piece that
 * started work off the engine thread yields a promise (which never
 * rejects): the command waits, its queue parked, until it settles.
 */
export type NvmeWork = Generator<Promise<void> | undefined, number, void>;
