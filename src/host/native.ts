/**
 * The engine's native addon (native/host-addon.c): access to real client
 * processes — their memory (process_vm_readv/writev), copies of their fds
 * (pidfd_getfd), what those fds are (fstat, fstatfs), setting an eventfd's
 * readiness, the pid behind a Unix socket (SO_PEERCRED), the memfds that
 * back mapped BARs, and the engine's socket transport
 * (src/server/transport.ts). Failures
 * arrive as Errno. The addon is loaded on first use, so importing this module never
 * fails; using it without `make -C native` throws a message saying so.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { errnoName, fail } from '../abi/errno.ts';

/** fstat(2) of a file, as far as the engine needs it. */
export interface FileStat {
  dev: bigint;
  devMajor: number;
  devMinor: number;
  ino: bigint;
  mode: number;
  size: bigint;
  rdev: bigint;
}

/** fstatfs(2): the file system's magic and block size (the huge page size on hugetlbfs). */
export interface FsStat {
  type: number;
  bsize: number;
}

/** statfs f_type of tmpfs/shmem (memfd, MAP_SHARED|MAP_ANONYMOUS, /dev/shm). */
export const TMPFS_MAGIC = 0x0102_1994;
/** statfs f_type of hugetlbfs (MAP_HUGETLB, MFD_HUGETLB, hugetlbfs mounts). */
export const HUGETLBFS_MAGIC = 0x9584_58f6;

interface Addon {
  vmRead(pid: number, addr: bigint, length: number): Buffer;
  vmWrite(pid: number, addr: bigint, data: Uint8Array): number;
  pidfdGetfd(pid: number, targetFd: number): number;
  fstatFd(fd: number): FileStat;
  fstatfsFd(fd: number): FsStat;
  eventfdSet(fd: number, ready: boolean): void;
  eventfdSignal(fd: number): void;
  eventfdConsume(fd: number): boolean;
  closeFd(fd: number): void;
  addressOf(buffer: Uint8Array): bigint;
  peerPid(fd: number): number;
  memfdCreate(name: string, size: bigint): number;
  punchHole(fd: number, offset: bigint, length: bigint): void;
  transportOpen(path: string, inBuf: Buffer, outBuf: Buffer, onReady: () => void): TransportHandle;
  transportNext(t: TransportHandle): number;
  transportReply(t: TransportHandle, fd: number, length: number): void;
  transportDrop(t: TransportHandle, fd: number): void;
  transportClose(t: TransportHandle): void;
}

/** An open transport of the addon (native/transport.c); opaque. */
export type TransportHandle = { readonly __transport: unique symbol };

/** The transport functions of the addon (src/server/transport.ts wraps them). */
export type TransportAddon = Pick<
  Addon,
  'transportOpen' | 'transportNext' | 'transportReply' | 'transportDrop' | 'transportClose'
>;

/** Where `make -C native` puts the addon, from the package root. */
const ADDON_PATH = fileURLToPath(new URL('../../native/build/uiommu_host.node', import.meta.url));

let addon: Addon | undefined;

function load(): Addon {
  if (addon) return addon;
  try {
    addon = createRequire(import.meta.url)(ADDON_PATH) as Addon;
  } catch (e) {
    throw new Error(
      `uiommu's native addon is not built (${ADDON_PATH}): run \`make -C native\` ` +
        `(needs a C compiler and Node's headers): ${(e as Error).message}`,
    );
  }
  return addon;
}

/** The addon's socket transport; errors of transportOpen carry `errno` like the others. */
export function transportAddon(): TransportAddon {
  return load();
}

/** Run an addon call, turning its errno-carrying errors into Errno. */
function call<T>(fn: (a: Addon) => T): T {
  const a = load();
  try {
    return fn(a);
  } catch (e) {
    const no = (e as { errno?: unknown }).errno;
    if (typeof no !== 'number') throw e;
    fail(errnoName(no) ?? 'EIO', (e as Error).message);
  }
}

/** Read `length` bytes at `addr` of process `pid`: EFAULT unless every byte is readable, ESRCH for no such process. */
export function vmRead(pid: number, addr: bigint, length: number): Uint8Array {
  const buf = call((a) => a.vmRead(pid, addr, length));
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.length);
}

/**
 * Write `data` at `addr` of process `pid`. EFAULT if some byte is not
 * writable (the bytes before the faulting page may have been written, as
 * with copy_to_user), ESRCH for no such process.
 */
export function vmWrite(pid: number, addr: bigint, data: Uint8Array): void {
  const n = call((a) => a.vmWrite(pid, addr, data));
  if (n < data.length) fail('EFAULT', `process_vm_writev: ${n} of ${data.length} bytes`);
}

/** A local (close-on-exec) copy of fd `targetFd` of process `pid`: ESRCH, EBADF, EPERM. */
export function pidfdGetfd(pid: number, targetFd: number): number {
  return call((a) => a.pidfdGetfd(pid, targetFd));
}

export function fstatFd(fd: number): FileStat {
  return call((a) => a.fstatFd(fd));
}

export function fstatfsFd(fd: number): FsStat {
  return call((a) => a.fstatfsFd(fd));
}

/** Make an eventfd's counter exactly 1 (`ready`) or 0, so poll reports POLLIN iff ready. */
export function eventfdSet(fd: number, ready: boolean): void {
  call((a) => a.eventfdSet(fd, ready));
}

/** eventfd_signal() on a local eventfd: the counter grows by 1 unless that would block. */
export function eventfdSignal(fd: number): void {
  call((a) => a.eventfdSignal(fd));
}

/** Take a local eventfd's counter without blocking; true when it was > 0. */
export function eventfdConsume(fd: number): boolean {
  return call((a) => a.eventfdConsume(fd));
}

export function closeFd(fd: number): void {
  call((a) => a.closeFd(fd));
}

/** The address of a buffer's first byte in this process (for tests against our own pid). */
export function addressOf(buffer: Uint8Array): bigint {
  return call((a) => a.addressOf(buffer));
}

/** The pid at the other end of Unix socket `fd` (SO_PEERCRED): EBADF, ENOTSOCK. */
export function peerPid(fd: number): number {
  return call((a) => a.peerPid(fd));
}

/** memfd_create(name, MFD_CLOEXEC) + ftruncate(size): the engine's fd of a new memory file. */
export function memfdCreate(name: string, size: bigint): number {
  return call((a) => a.memfdCreate(name, size));
}

/** fallocate(PUNCH_HOLE | KEEP_SIZE): `[offset, offset+length)` of a memfd reads zero again. */
export function punchHole(fd: number, offset: bigint, length: bigint): void {
  call((a) => a.punchHole(fd, offset, length));
}
