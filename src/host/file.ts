import { fail } from '../abi/errno.ts';
import type { FileRef } from '../iommufd/context.ts';
import type { Process } from './process.ts';

/** poll(2) event bits. */
export const POLLIN = 0x1;
export const POLLOUT = 0x4;

/** What a kind of open file does with each syscall (the kernel's file_operations). */
export interface FileOps {
  /** Short name used in traces to decode ioctls by fd kind ("iommufd", "access", ...). */
  readonly kind: string;
  ioctl?(caller: Process, request: number, arg: bigint): number;
  read?(caller: Process, length: number, offset: bigint | undefined): Uint8Array;
  write?(caller: Process, data: Uint8Array, offset: bigint | undefined): number;
  poll?(): number;
  /** The last reference to the open file went away. */
  release(): void;
  /** What iommufd may do with this file when handed its fd (MAP_FILE). */
  readonly ref?: FileRef;
}

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

  ioctl(caller: Process, request: number, arg: bigint): number {
    if (!this.ops.ioctl) fail('ENOTTY');
    return this.ops.ioctl(caller, request, arg);
  }

  read(caller: Process, length: number, offset?: bigint): Uint8Array {
    if (!this.ops.read) fail('EINVAL');
    return this.ops.read(caller, length, offset);
  }

  write(caller: Process, data: Uint8Array, offset?: bigint): number {
    if (!this.ops.write) fail('EINVAL');
    return this.ops.write(caller, data, offset);
  }

  poll(): number {
    return this.ops.poll ? this.ops.poll() : POLLIN | POLLOUT;
  }
}
