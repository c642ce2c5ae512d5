/**
 * The engine protocol's frames (docs/engine-protocol.md): op numbers, the
 * 64-byte request header and the 24-byte response header, little-endian,
 * each followed by `len` payload bytes, and a reader that cuts a byte
 * stream arriving in arbitrary chunks into whole frames.
 *
 * @example
 * const bytes = encodeRequest({ op: OP.CLOSE, pid: 42, tid: 42, args: [3n] });
 * const reader = new FrameReader('request');
 * reader.push(bytes.subarray(0, 10)); // [] (incomplete)
 * reader.push(bytes.subarray(10)); // [bytes]
 */

import type { UserWrite } from '../host/process.ts';

/** Operation numbers. */
export const OP = {
  HELLO: 1,
  FORK_BEGIN: 2,
  FORK_END: 3,
  EXEC_BEGIN: 4,
  EXEC_ABORT: 5,
  OPEN: 10,
  CLOSE: 11,
  DUP: 12,
  IOCTL: 13,
  READ: 14,
  WRITE: 15,
  PREAD: 16,
  PWRITE: 17,
  FSTAT: 18,
  STAT: 19,
  PROC_STATUS: 20,
  SYSFS_READ: 21,
  MMAP: 30,
  MUNMAP: 31,
  MREMAP: 32,
  MMIO: 33,
  MMIO_FAULT: 34,
  SYNC: 35,
  /** Served by the transport (native/transport.c), never handed to the engine: *Channel*. */
  CHANNEL: 36,
  DOORBELL: 37,
} as const;

/** Request `flags`: the library tracks the caller's address-space changes, one happened since its previous request, and an UNMAP_DMA asks for an unmap lease (a4: the ring). */
export const REQ_FLAGS = { MM_TRACKED: 1, MM_CHANGED: 2, LEASE: 4, SPAN: 8 } as const;

/** HELLO `a0`: who is connecting. */
export const HELLO_KIND = { NEW: 0, FORK_CHILD: 1, AFTER_EXEC: 2 } as const;

export const REQUEST_HEADER_SIZE = 64;
export const RESPONSE_HEADER_SIZE = 24;
/** Largest payload accepted in either direction (a path is at most PATH_MAX; an fd list 4 KiB). */
export const MAX_PAYLOAD = 1 << 16;

/** A request: `args` are a0..a5 as unsigned u64 (missing ones are 0). */
export interface Request {
  op: number;
  pid: number;
  tid: number;
  args: readonly bigint[];
  payload?: Uint8Array | undefined;
  /** REQ_FLAGS bits. */
  flags?: number;
  /** The payload was over MAX_PAYLOAD and was not delivered. */
  oversize?: boolean;
}

/** A response: `ret` is the syscall's value (-1 on failure) and `err` the positive errno. */
export interface Response {
  ret: bigint;
  err: number;
  newfd: number;
  payload?: Uint8Array | undefined;
  /**
   * An IOCTL's copy_to_user writes left to the library: when there are
   * any, the answer's payload is their write-back record (encodeResponseInto),
   * and `payload` is not sent.
   */
  writes?: readonly UserWrite[] | undefined;
  /** The zap count of the process's device mappings (the header's last u32; 0 without mappings). */
  zaps?: number;
}

/** The FSTAT/STAT payload: a character device node. */
export interface NodeStat {
  /** st_mode: S_IFCHR | permissions. */
  mode: number;
  major: number;
  minor: number;
}

export function encodeRequest(req: Request): Uint8Array {
  const payload = req.payload ?? new Uint8Array();
  const out = new Uint8Array(REQUEST_HEADER_SIZE + payload.length);
  const v = view(out);
  v.setUint16(0, req.op, true);
  v.setUint16(2, req.flags ?? 0, true);
  v.setUint32(4, payload.length, true);
  v.setInt32(8, req.pid, true);
  v.setInt32(12, req.tid, true);
  for (let i = 0; i < 6; i++)
    v.setBigUint64(16 + 8 * i, BigInt.asUintN(64, req.args[i] ?? 0n), true);
  out.set(payload, REQUEST_HEADER_SIZE);
  return out;
}

/** Decode one whole request frame (header + payload); the payload is a copy. */
export function decodeRequest(frame: Uint8Array): Request {
  const req = new RequestReader(view(frame), frame.subarray(REQUEST_HEADER_SIZE));
  return copyRequest(req.read(emptyRequest()));
}

/** A request with every field present (one object shape for all requests read). */
export function emptyRequest(): Request {
  return {
    op: 0,
    flags: 0,
    pid: 0,
    tid: 0,
    args: [0n, 0n, 0n, 0n, 0n, 0n],
    payload: undefined,
    oversize: false,
  };
}

/**
 * Reads request frames that arrive in one buffer, each into the same
 * request object, allocating nothing in a steady loop: an argument whose
 * bytes are those of the previous frame's in its place is the same bigint
 * (a program's calls repeat their fd, cmd and pointer), and payload views
 * are made once per length. What a request names is valid only until the
 * next `read`; a request kept longer must be copied (`copyRequest`).
 */
export class RequestReader {
  /** Payload views by length (payloads are the same few sizes). */
  private readonly views = new Map<number, Uint8Array>();
  private lastView: Uint8Array;
  /** Each argument's bytes in the previous frame (low and high u32) and its bigint. */
  private readonly words = new Int32Array(12);
  private readonly values: bigint[] = [0n, 0n, 0n, 0n, 0n, 0n];

  /** `v` views the frame buffer; `payloads` is the buffer from the payload's first byte on. */
  constructor(
    private readonly v: DataView,
    private readonly payloads: Uint8Array,
  ) {
    this.lastView = payloads.subarray(0, 0);
  }

  /** Decode the buffer's frame into `req` (every field set); returns `req`. */
  read(req: Request): Request {
    const v = this.v;
    const len = v.getUint32(4, true);
    req.op = v.getUint16(0, true);
    req.flags = v.getUint16(2, true);
    req.pid = v.getInt32(8, true);
    req.tid = v.getInt32(12, true);
    const args = req.args as bigint[];
    const words = this.words;
    const values = this.values;
    for (let i = 0; i < 6; i++) {
      const at = 16 + 8 * i;
      const lo = v.getInt32(at, true);
      const hi = v.getInt32(at + 4, true);
      if (lo !== words[2 * i] || hi !== words[2 * i + 1]) {
        words[2 * i] = lo;
        words[2 * i + 1] = hi;
        values[i] = (lo | hi) === 0 ? 0n : v.getBigUint64(at, true);
      }
      args[i] = values[i]!;
    }
    req.payload = this.viewOf(len);
    req.oversize = false;
    return req;
  }

  private viewOf(len: number): Uint8Array {
    if (this.lastView.length === len) return this.lastView;
    let view = this.views.get(len);
    if (view === undefined) {
      view = this.payloads.subarray(0, len);
      if (this.views.size < MAX_PAYLOAD_VIEWS) this.views.set(len, view);
    }
    this.lastView = view;
    return view;
  }
}

/** Payload views a RequestReader keeps (one per length seen). */
const MAX_PAYLOAD_VIEWS = 64;

/** A request of its own: its args, and its payload copied (or dropped when `payload` is null). */
export function copyRequest(
  req: Request,
  payload: Uint8Array | null = req.payload ?? null,
): Request {
  return { ...req, args: [...req.args], payload: payload ? new Uint8Array(payload) : undefined };
}

export function encodeResponse(res: Response): Uint8Array {
  const out = new Uint8Array(RESPONSE_HEADER_SIZE + MAX_PAYLOAD);
  return out.slice(0, encodeResponseInto(res, out));
}

/**
 * Encode `res` at the start of `out` (which must have room; `v` views it):
 * its payload, or the write-back record of its `writes`; returns the
 * frame's length.
 */
export function encodeResponseInto(res: Response, out: Uint8Array, v = view(out)): number {
  const writes = res.writes;
  const payload = res.payload;
  let len = 0;
  if (writes !== undefined && writes.length > 0)
    len = writebackInto(writes, out, v, RESPONSE_HEADER_SIZE);
  else if (payload !== undefined) {
    out.set(payload, RESPONSE_HEADER_SIZE);
    len = payload.length;
  }
  v.setBigInt64(0, res.ret, true);
  v.setInt32(8, res.err, true);
  v.setInt32(12, res.newfd, true);
  v.setUint32(16, len, true);
  v.setUint32(20, res.zaps ?? 0, true);
  return RESPONSE_HEADER_SIZE + len;
}

/** Decode one whole response frame (header + payload). */
export function decodeResponse(frame: Uint8Array): Response {
  const v = view(frame);
  const len = v.getUint32(16, true);
  return {
    ret: v.getBigInt64(0, true),
    err: v.getInt32(8, true),
    newfd: v.getInt32(12, true),
    payload: frame.slice(RESPONSE_HEADER_SIZE, RESPONSE_HEADER_SIZE + len),
    zaps: v.getUint32(20, true),
  };
}

/**
 * An IOCTL answer's payload (`writes` non-empty), encoded at `at` of `out`
 * (`v` views it): `{ u32 nr; u32 bytes; { u64 addr; u64 len }[nr]; }` then
 * the written bytes back to back, to be written in order. Returns its length.
 */
function writebackInto(
  writes: readonly UserWrite[],
  out: Uint8Array,
  v: DataView,
  at: number,
): number {
  const nr = writes.length;
  let bytes = at + 8 + 16 * nr;
  for (let i = 0; i < nr; i++) {
    const w = writes[i]!;
    const n = w.bytes.length;
    v.setBigUint64(at + 8 + 16 * i, w.va, true);
    v.setUint32(at + 16 + 16 * i, n, true);
    v.setUint32(at + 20 + 16 * i, 0, true);
    out.set(w.bytes, bytes);
    bytes += n;
  }
  v.setUint32(at, nr, true);
  v.setUint32(at + 4, bytes - at - 8 - 16 * nr, true);
  return bytes - at;
}

export function decodeWriteback(b: Uint8Array | undefined): UserWrite[] {
  if (!b?.length) return [];
  const v = view(b);
  const nr = v.getUint32(0, true);
  let at = 8 + 16 * nr;
  return Array.from({ length: nr }, (_, i) => {
    const len = Number(v.getBigUint64(16 + 16 * i, true));
    const bytes = new Uint8Array(b.subarray(at, at + len));
    at += len;
    return { va: v.getBigUint64(8 + 16 * i, true), bytes };
  });
}

/** The FSTAT/STAT payload `{ u32 mode; u32 major; u32 minor; u32 reserved }`. */
export function encodeNodeStat(st: NodeStat): Uint8Array {
  const out = new Uint8Array(16);
  const v = view(out);
  v.setUint32(0, st.mode, true);
  v.setUint32(4, st.major, true);
  v.setUint32(8, st.minor, true);
  return out;
}

export function decodeNodeStat(b: Uint8Array): NodeStat {
  const v = view(b);
  return { mode: v.getUint32(0, true), major: v.getUint32(4, true), minor: v.getUint32(8, true) };
}

/** An i32 array payload (HELLO after exec: the fds the engine holds). */
export function encodeI32s(values: readonly number[]): Uint8Array {
  const out = new Uint8Array(4 * values.length);
  const v = view(out);
  values.forEach((x, i) => {
    v.setInt32(4 * i, x, true);
  });
  return out;
}

export function decodeI32s(b: Uint8Array): number[] {
  const v = view(b);
  return Array.from({ length: b.length >> 2 }, (_, i) => v.getInt32(4 * i, true));
}

/** A NUL-terminated string payload (the bytes up to the first NUL, or all of them). */
export function payloadString(b: Uint8Array | undefined): string {
  if (!b) return '';
  const nul = b.indexOf(0);
  return Buffer.from(b.subarray(0, nul < 0 ? b.length : nul)).toString('utf8');
}

/** An argument as a C `int` (fd numbers, pids: -1 arrives as 2^64-1). */
export function argInt(a: bigint): number {
  // comparisons allocate nothing; asIntN makes a new bigint (-1, "no fd", is common: spared it)
  if (a <= 0x7fff_ffffn) return Number(a);
  if (a === 0xffff_ffff_ffff_ffffn || a === 0xffff_ffffn) return -1;
  return Number(BigInt.asIntN(32, a));
}

/** An argument as a C `unsigned int` (an ioctl's cmd, a token): its low 32 bits. */
export function argU32(a: bigint): number {
  return a <= 0xffff_ffffn ? Number(a) : Number(BigInt.asUintN(32, a));
}

/** Thrown by FrameReader for a frame announcing more than MAX_PAYLOAD bytes. */
export class FrameError extends Error {}

/**
 * Cuts a stream into frames: `push` a chunk as it arrives, get back every
 * frame completed by it (header + payload, copied out).
 */
export class FrameReader {
  private buf = new Uint8Array(0);
  private readonly headerSize: number;
  private readonly lenOffset: number;

  constructor(kind: 'request' | 'response') {
    this.headerSize = kind === 'request' ? REQUEST_HEADER_SIZE : RESPONSE_HEADER_SIZE;
    this.lenOffset = kind === 'request' ? 4 : 16;
  }

  push(chunk: Uint8Array): Uint8Array[] {
    const joined = new Uint8Array(this.buf.length + chunk.length);
    joined.set(this.buf);
    joined.set(chunk, this.buf.length);
    const frames: Uint8Array[] = [];
    let at = 0;
    while (joined.length - at >= this.headerSize) {
      const len = view(joined).getUint32(at + this.lenOffset, true);
      if (len > MAX_PAYLOAD) throw new FrameError(`frame payload of ${len} bytes`);
      const end = at + this.headerSize + len;
      if (joined.length < end) break;
      frames.push(joined.slice(at, end));
      at = end;
    }
    this.buf = joined.slice(at);
    return frames;
  }

  /** Bytes of an incomplete frame held back. */
  get pending(): number {
    return this.buf.length;
  }
}

function view(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}
