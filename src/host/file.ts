import { fail } from '../abi/errno.ts';
import type { Caller } from '../kernel/file.ts';
import { type FileOps, POLLIN, POLLOUT } from '../kernel/file.ts';

export { type FileOps, POLLIN, POLLOUT } from '../kernel/file.ts';

/** open(2) flags the host understands (asm-generic values). */
export const O_RDONLY = 0;
export const O_WRONLY = 1;
export const O_RDWR = 2;
export const O_ACCMODE = 3;
export const O_CLOEXEC = 0o2000000;

/** f_mode bits derived from the open flags (OPEN_FMODE). */
const FMODE_READ = 1;
const FMODE_WRITE = 2;

export interface OpenFileOptions {
  /** The device node this file was opened from (fstat answers for it); none for anonymous files. */
  readonly path?: string;
  /** open(2) flags; anonymous files are O_RDWR | O_CLOEXEC. */
  readonly flags?: number;
}

/**
 * An open file description (struct file): shared by every fd that dup() or
 * fork() made from the same open; released when the last one closes.
 * read and write check the access mode first (EBADF), as vfs_read and
 * vfs_write do; ioctl does not.
 */
export class OpenFile {
  private refs = 1;
  readonly path: string | undefined;
  readonly flags: number;
  private readonly fmode: number;

  constructor(
    readonly ops: FileOps,
    opts: OpenFileOptions = {},
  ) {
    this.path = opts.path;
    this.flags = opts.flags ?? O_RDWR | O_CLOEXEC;
    this.fmode = (this.flags + 1) & O_ACCMODE;
  }

  get(): void {
    this.refs++;
  }

  /** Drop one reference; releases the file on the last. */
  put(): void {
    if (--this.refs === 0) this.ops.release();
  }

  ioctl(caller: Caller, request: number, arg: bigint): number {
    if (!this.ops.ioctl) fail('ENOTTY', `${this.ops.kind} has no ioctls`, 'vfs_ioctl');
    return this.ops.ioctl(caller, request, arg);
  }

  read(caller: Caller, length: number, offset?: bigint): Uint8Array {
    if (!(this.fmode & FMODE_READ)) fail('EBADF', 'the file is not open for reading', 'vfs_read');
    if (!this.ops.read) fail('EINVAL', `${this.ops.kind} cannot be read`, 'vfs_read');
    return this.ops.read(caller, length, offset);
  }

  write(caller: Caller, data: Uint8Array, offset?: bigint): number {
    if (!(this.fmode & FMODE_WRITE)) fail('EBADF', 'the file is not open for writing', 'vfs_write');
    if (!this.ops.write) fail('EINVAL', `${this.ops.kind} cannot be written`, 'vfs_write');

    return this.ops.write(caller, data, offset);
  }

  poll(): number {
    return this.ops.poll ? this.ops.poll() : POLLIN | POLLOUT;
  }
}
