/**
 * The engine's socket transport (native/transport.c): the listening Unix
 * socket and its connections, served by a loop in C that sleeps in
 * epoll_wait (after a bounded poll of the channels of recently active
 * connections whose library runs on another CPU: docs/engine-protocol.md,
 * *Channel*) and hands over one whole request at a time, from a socket or
 * a channel, without Node's streams. `next()` returns the next event;
 * it returns YIELD when the event loop has work (a timer, a child's exit,
 * another socket of this process), and `onReady` is called from the event
 * loop when the connections need service again.
 *
 * Limits: a connection is read one frame at a time, and not while its
 * previous answer is unsent (a client that does not read is paused; its
 * requests wait in its own socket buffer). A payload over MAX_PAYLOAD is
 * thrown away and the request delivered with `oversize` set.
 *
 * @example
 * const t = openTransport(path, () => {
 *   for (let ev = t.next(); ev !== EV.YIELD; ev = t.next()) ...
 * });
 */
import { type TransportHandle, transportAddon } from '../host/native.ts';
import { MAX_PAYLOAD, REQUEST_HEADER_SIZE } from './protocol.ts';

/** Events of `next()`; `fd` names the connection. */
export const EV = { YIELD: 0, REQUEST: 1, CONNECT: 2, CLOSE: 3 } as const;

/** Bytes after the request frame in `in`: four int32 of event details. */
const META_BYTES = 16;

export interface Transport {
  /** The request frame of the last REQUEST (header and payload). */
  readonly in: Uint8Array;
  /** A view of `in`, made once. */
  readonly inView: DataView;
  /** Where an answer is encoded before `reply`. */
  readonly out: Uint8Array;
  /** A view of `out`, made once. */
  readonly outView: DataView;
  /** The connection of the last event. */
  readonly fd: number;
  /** The last REQUEST's payload was over MAX_PAYLOAD and was dropped. */
  readonly oversize: boolean;
  next(): number;
  /** Send `out[0, length)` to connection `fd` (held and sent later if its socket is full). */
  reply(fd: number, length: number): void;
  /** Close connection `fd` without a CLOSE event. */
  drop(fd: number): void;
  /** Close the listener and every connection (no CLOSE events). */
  close(): void;
}

/** Listen at `path` (which must not exist); throws with `errno` when it cannot. */
export function openTransport(path: string, onReady: () => void): Transport {
  return new AddonTransport(path, onReady);
}

/**
 * The addon's transport. A class, not an object literal with getters: V8
 * keeps such a literal in dictionary mode, and every `fd`, `next` and
 * `reply` of the request loop would be a slow lookup.
 */
class AddonTransport implements Transport {
  readonly in: Buffer;
  readonly inView: DataView;
  readonly out: Buffer;
  readonly outView: DataView;
  private readonly meta: Int32Array;
  private readonly addon = transportAddon();
  private readonly handle: TransportHandle;
  private closed = false;

  constructor(path: string, onReady: () => void) {
    const size = REQUEST_HEADER_SIZE + MAX_PAYLOAD + META_BYTES;
    this.in = Buffer.alloc(size);
    this.out = Buffer.alloc(REQUEST_HEADER_SIZE + MAX_PAYLOAD);
    this.inView = new DataView(this.in.buffer, this.in.byteOffset, this.in.byteLength);
    this.outView = new DataView(this.out.buffer, this.out.byteOffset, this.out.byteLength);
    this.meta = new Int32Array(this.in.buffer, this.in.byteOffset + size - META_BYTES, 4);
    this.handle = this.addon.transportOpen(path, this.in, this.out, () => {
      if (!this.closed) onReady();
    });
  }

  get fd(): number {
    return this.meta[0]!;
  }

  get oversize(): boolean {
    return (this.meta[2]! & 1) !== 0;
  }

  next(): number {
    return this.closed ? EV.YIELD : this.addon.transportNext(this.handle);
  }

  reply(fd: number, length: number): void {
    if (!this.closed) this.addon.transportReply(this.handle, fd, length);
  }

  drop(fd: number): void {
    if (!this.closed) this.addon.transportDrop(this.handle, fd);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.addon.transportClose(this.handle);
  }
}
