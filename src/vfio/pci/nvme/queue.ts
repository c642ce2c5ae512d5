/**
 * Submission and completion queues as the controller sees them: rings of
 * `size` entries at an IOVA, a head and a tail. The host owns an SQ's tail
 * and a CQ's head (doorbells); the controller owns the other end and a
 * CQ's phase tag, which flips each time its tail wraps.
 */
import { NVME_CQE_BYTES, NVME_SQE_BYTES } from './abi.ts';
import type { NvmeWork } from './command.ts';

export class SubmissionQueue {
  head = 0;
  tail = 0;
  /**
   * A fetched command whose work goes on in pieces: the queue fetches
   * nothing more until it completes, so its completions stay in order.
   * `waiting`: its last piece started work off the engine thread.
   */
  running?: { readonly cid: number; readonly work: NvmeWork; waiting: boolean };

  constructor(
    readonly id: number,
    readonly base: bigint,
    readonly size: number,
    readonly cqid: number,
  ) {}

  get empty(): boolean {
    return this.head === this.tail;
  }

  /** IOVA of the entry at the head. */
  get headAddress(): bigint {
    return this.base + BigInt(this.head * NVME_SQE_BYTES);
  }

  advance(): void {
    this.head = (this.head + 1) % this.size;
  }
}

export class CompletionQueue {
  head = 0;
  tail = 0;
  /** Phase tag the next posted entry carries. */
  phase = 1;

  constructor(
    readonly id: number,
    readonly base: bigint,
    readonly size: number,
    /** Interrupts enabled (IEN). */
    readonly ien: boolean,
    /** Interrupt vector (IV). */
    readonly vector: number,
  ) {}

  /** One slot is always left empty: full when the tail would meet the head. */
  get full(): boolean {
    return (this.tail + 1) % this.size === this.head;
  }

  /** Entries posted that the host has not consumed. */
  get pending(): boolean {
    return this.head !== this.tail;
  }

  /** IOVA of the slot the next entry goes to. */
  get tailAddress(): bigint {
    return this.base + BigInt(this.tail * NVME_CQE_BYTES);
  }

  advance(): void {
    this.tail = (this.tail + 1) % this.size;
    if (this.tail === 0) this.phase ^= 1;
  }
}
