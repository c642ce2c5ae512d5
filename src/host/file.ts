import { fail } from '../abi/errno.ts';
import type { Caller } from '../iommufd/context.ts';
import { type FileOps, POLLIN, POLLOUT } from '../iommufd/file.ts';

export { type FileOps, POLLIN, POLLOUT } from '../iommufd/file.ts';

/**
 * An open file description (struct file): shared by every fd that dup() or
 * fork() made from the same open; released when the last one closes.
 */
export class OpenFile {
  private refs = 1;

  constructor(readonly ops: FileOps) {}

  get(): void {
    this.refs++;
  }

  /** Drop one reference; releases the file on the last. */
  put(): void {
    if (--this.refs === 0) this.ops.release();
  }

  ioctl(caller: Caller, request: number, arg: bigint): number {
    if (!this.ops.ioctl) fail('ENOTTY');
    return this.ops.ioctl(caller, request, arg);
  }

  read(caller: Caller, length: number, offset?: bigint): Uint8Array {
    if (!this.ops.read) fail('EINVAL');
    return this.ops.read(caller, length, offset);
  }

  write(caller: Caller, data: Uint8Array, offset?: bigint): number {
    if (!this.ops.write) fail('EINVAL');
    return this.ops.write(caller, data, offset);
  }

  poll(): number {
    return this.ops.poll ? this.ops.poll() : POLLIN | POLLOUT;
  }
}
