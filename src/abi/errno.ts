/**
 * Linux errno values (asm-generic numbering, shared by x86, arm64, riscv and
 * powerpc for every errno iommufd and VFIO produce) and the `Errno` error that
 * the model throws internally. The ioctl boundary turns an `Errno` into
 * `-1` + errno; nothing else may cross it.
 */

/** errno name → number. */
export const ERRNO = {
  EPERM: 1,
  ENOENT: 2,
  ESRCH: 3,
  EINTR: 4,
  EIO: 5,
  ENXIO: 6,
  E2BIG: 7,
  ENOEXEC: 8,
  EBADF: 9,
  ECHILD: 10,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EFAULT: 14,
  EBUSY: 16,
  EEXIST: 17,
  EXDEV: 18,
  ENODEV: 19,
  ENOTDIR: 20,
  EISDIR: 21,
  EINVAL: 22,
  ENFILE: 23,
  EMFILE: 24,
  ENOTTY: 25,
  EFBIG: 27,
  ENOSPC: 28,
  ESPIPE: 29,
  EROFS: 30,
  EPIPE: 32,
  ERANGE: 34,
  EDEADLK: 35,
  ENAMETOOLONG: 36,
  ENOSYS: 38,
  EBADE: 52,
  EBADFD: 77,
  EMSGSIZE: 90,
  ENOPROTOOPT: 92,
  EOPNOTSUPP: 95,
  EADDRINUSE: 98,
  EOVERFLOW: 75,
  ETIMEDOUT: 110,
} as const;

export type ErrnoName = keyof typeof ERRNO;

/** strerror(3) text of glibc, for decoded traces. */
const STRERROR: Record<ErrnoName, string> = {
  EPERM: 'Operation not permitted',
  ENOENT: 'No such file or directory',
  ESRCH: 'No such process',
  EINTR: 'Interrupted system call',
  EIO: 'Input/output error',
  ENXIO: 'No such device or address',
  E2BIG: 'Argument list too long',
  ENOEXEC: 'Exec format error',
  EBADF: 'Bad file descriptor',
  ECHILD: 'No child processes',
  EAGAIN: 'Resource temporarily unavailable',
  ENOMEM: 'Cannot allocate memory',
  EACCES: 'Permission denied',
  EFAULT: 'Bad address',
  EBUSY: 'Device or resource busy',
  EEXIST: 'File exists',
  EXDEV: 'Invalid cross-device link',
  ENODEV: 'No such device',
  ENOTDIR: 'Not a directory',
  EISDIR: 'Is a directory',
  EINVAL: 'Invalid argument',
  ENFILE: 'Too many open files in system',
  EMFILE: 'Too many open files',
  ENOTTY: 'Inappropriate ioctl for device',
  EFBIG: 'File too large',
  ENOSPC: 'No space left on device',
  ESPIPE: 'Illegal seek',
  EROFS: 'Read-only file system',
  EPIPE: 'Broken pipe',
  ERANGE: 'Numerical result out of range',
  EDEADLK: 'Resource deadlock avoided',
  ENAMETOOLONG: 'File name too long',
  ENOSYS: 'Function not implemented',
  EBADE: 'Invalid exchange',
  EBADFD: 'File descriptor in bad state',
  EMSGSIZE: 'Message too long',
  ENOPROTOOPT: 'Protocol not available',
  EOPNOTSUPP: 'Operation not supported',
  EADDRINUSE: 'Address already in use',
  EOVERFLOW: 'Value too large for defined data type',
  ETIMEDOUT: 'Connection timed out',
};

const NAME_OF = new Map<number, ErrnoName>(
  Object.entries(ERRNO).map(([name, no]) => [no, name as ErrnoName]),
);

/**
 * A failed kernel operation: what the syscall boundary reports as -1/errno.
 * `reason` says why in words (what the kernel never tells), `where` names
 * the kernel function whose rule it follows (`iopt_map_pages`); traces
 * print both after the errno.
 */
export class Errno extends Error {
  readonly errno: number;
  constructor(
    readonly code: ErrnoName,
    readonly reason?: string,
    readonly where?: string,
  ) {
    // an answer, not a fault: no stack trace (capturing one costs more than most calls),
    // and no message until one is read (most failures are only answered: see `message`)
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super();
    Error.stackTraceLimit = limit;
    this.errno = ERRNO[code];
  }

  /** `CODE: reason` (or `CODE`), built when read: traces and stacks read it, answers do not. */
  override get message(): string {
    return this.reason ? `${this.code}: ${this.reason}` : this.code;
  }
}
// on the prototype, not set per instance (one store less per failure)
Object.defineProperty(Errno.prototype, 'name', {
  value: 'Errno',
  writable: true,
  configurable: true,
});

/**
 * Throw `Errno(code)`; reads like the kernel's `return -EINVAL;`. Every
 * failure says why and names the kernel function whose rule it follows
 * (`uiommu_…` for rules of uiommu's own); test/abi/fail-sites.test.ts
 * checks the names against Linux. Build `reason` only on the failing path
 * (never ahead of the check).
 *
 * @example
 * if (iova & (align - 1n)) fail('EINVAL', `iova ${hex(iova)} not aligned to ${hex(align)}`, 'iopt_map_pages');
 */
export function fail(code: ErrnoName, reason: string, where: string): never {
  throw new Errno(code, reason, where);
}

/** The errno name for a number, e.g. 22 → 'EINVAL'; undefined if unknown. */
export function errnoName(no: number): ErrnoName | undefined {
  return NAME_OF.get(no);
}

/** glibc's strerror text for an errno name. */
export function strerror(code: ErrnoName): string {
  return STRERROR[code];
}
