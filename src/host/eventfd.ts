/**
 * An eventfd of the emulated kernel (fs/eventfd.c), for in-process callers
 * that hand one to VFIO_DEVICE_SET_IRQS: a 64-bit counter that `write`
 * adds to and `read` takes whole (EAGAIN at 0: the file is non-blocking),
 * readable while the counter is non-zero. Kernel-side users hold an
 * `EventfdCtx` (signal, consume) that outlives the fd. A real process's
 * eventfds are its own (src/host/remote-file.ts).
 *
 * @example
 * const fd = proc.installFile(new Eventfd());
 * // ... SET_IRQS(MSI-X, TRIGGER|DATA_NONE) on a vector wired to fd
 * proc.read(fd, buf, 8); // 8, counter 1
 */
import { fail } from '../abi/errno.ts';
import { type EventfdCtx, type FileOps, POLLIN, POLLOUT } from '../kernel/file.ts';

/** ULLONG_MAX: the counter never reaches it (a write that would is EAGAIN). */
const COUNTER_MAX = (1n << 64n) - 1n;

export class Eventfd implements FileOps {
  readonly kind = 'eventfd';
  /** The counter. */
  count: bigint;
  /** Times a signal or write woke the readers. */
  private wakes = 0;

  constructor(initval = 0n) {
    this.count = initval;
  }

  read(_caller: unknown, length: number): Uint8Array {
    if (length < 8) fail('EINVAL', `read of ${length} bytes, below 8`, 'eventfd_read');
    if (this.count === 0n) fail('EAGAIN', 'the counter is 0', 'eventfd_read');
    const out = new Uint8Array(8);
    new DataView(out.buffer).setBigUint64(0, this.count, true);
    this.count = 0n;
    return out;
  }

  write(_caller: unknown, data: Uint8Array): number {
    const where = 'eventfd_write';
    if (data.length < 8) fail('EINVAL', `write of ${data.length} bytes, below 8`, where);
    const n = new DataView(data.buffer, data.byteOffset, 8).getBigUint64(0, true);
    if (n === COUNTER_MAX) fail('EINVAL', 'value 0xffffffffffffffff', where);
    if (COUNTER_MAX - this.count <= n) fail('EAGAIN', 'the counter would overflow', where);

    this.add(n);
    return 8;
  }

  poll(): number {
    return (this.count > 0n ? POLLIN : 0) | (this.count < COUNTER_MAX - 1n ? POLLOUT : 0);
  }

  wakeups(): number {
    return this.wakes;
  }

  eventfdCtx(): EventfdCtx {
    return {
      signal: () => this.add(this.count < COUNTER_MAX - 1n ? 1n : 0n),
      consume: () => {
        const had = this.count > 0n;
        this.count = 0n;
        return had;
      },
      put() {},
    };
  }

  release(): void {}

  private add(n: bigint): void {
    this.count += n;
    this.wakes++;
  }
}
