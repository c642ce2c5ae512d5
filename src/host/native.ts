/**
 * The engine's native addon (native/host-addon.c): access to real client
 * processes through handles bound to their lifetime — pidfds, /proc/<pid>
 * directory fds, their memory through /proc/<pid>/mem checked against the
 * VMAs of /proc/<pid>/maps (PROCMAP_QUERY), copies of their fds
 * (pidfd_getfd) — what fds are (fstat, fstatfs), setting an eventfd's
 * readiness, and the process behind a Unix socket (SO_PEERCRED,
 * SO_PEERPIDFD), the memfds that back mapped
 * BARs, the engine's socket transport (src/server/transport.ts), the fake
 * tree's bulk writer (src/server/sysfs.ts) and mappings of client memory
 * files (src/host/file-map.ts). Failures
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
  memRead(mem: number, maps: number, addr: bigint, length: number, out: Uint8Array): void;
  memWrite(mem: number, maps: number, addr: bigint, data: Uint8Array): number;
  memZeroed(mem: number, maps: number, addr: bigint, length: bigint): number;
  memZeroedAsync(mem: number, maps: number, addr: bigint, length: bigint): Promise<number>;
  memClear(mem: number, maps: number, addr: bigint, length: bigint): number;
  memClearAsync(mem: number, maps: number, addr: bigint, length: bigint): Promise<number>;
  memGatherAsync(
    mem: number,
    maps: number,
    uptr: bigint,
    entryLen: bigint,
    first: bigint,
    ksize: bigint,
    out: Uint8Array,
  ): Promise<{ done: number; err: number }>;
  pidfdOpen(pid: number): number;
  peerPidfd(sock: number): number;
  procDirOpen(pidfd: number, pid: number): number;
  openAt(dirfd: number, name: string, write: boolean): number;
  pidfdExited(pidfd: number): boolean;
  capEffective(pidfd: number, pid: number): number;
  pidfdGetfd(pidfd: number, targetFd: number): number;
  fstatFd(fd: number): FileStat;
  fileSize(fd: number): number;
  fstatfsFd(fd: number): FsStat;
  eventfdSet(fd: number, ready: boolean): void;
  eventfdSignal(fd: number): void;
  eventfdConsume(fd: number): boolean;
  closeFd(fd: number): void;
  addressOf(buffer: Uint8Array): bigint;
  peerPid(fd: number): number;
  memfdCreate(name: string, size: bigint): number;
  punchHole(fd: number, offset: bigint, length: bigint): void;
  leaseMap(fd: number): LeaseRing;
  leaseHeader(ring: LeaseRing, gen: number, validGen: number, leases: Buffer): void;
  leaseTake(ring: LeaseRing, out: Buffer): number;
  leaseDone(ring: LeaseRing, results: Int32Array): void;
  leaseUnmap(ring: LeaseRing): void;
  transportOpen(path: string, inBuf: Buffer, outBuf: Buffer, onReady: () => void): TransportHandle;
  transportNext(t: TransportHandle): number;
  transportReply(t: TransportHandle, fd: number, length: number): void;
  transportDrop(t: TransportHandle, fd: number): void;
  transportClose(t: TransportHandle): void;
  treeWrite(
    kinds: string,
    paths: string[],
    data: (string | Uint8Array | number | undefined)[],
  ): [index: number, errno: number] | undefined;
  treeRemove(path: string): number;
  fileMap(fd: number, length: number): { id: number; writable: boolean } | undefined;
  fileMapIo(id: number, offset: number, length: number, write: boolean, buf?: Uint8Array): number;
  fileMapScratch(): ArrayBuffer;
  fileUnmap(id: number): void;
}

/** A client's unmap ring mapped by the addon (native/lease-ring.c); opaque. */
export type LeaseRing = { readonly __leaseRing: unique symbol };

/** The unmap-ring functions of the addon (src/server/unmap-leases.ts uses them). */
export type LeaseRingAddon = Pick<
  Addon,
  'leaseMap' | 'leaseHeader' | 'leaseTake' | 'leaseDone' | 'leaseUnmap'
>;

/** The addon's unmap-ring functions; leaseMap's errors carry `errno`. */
export function leaseRingAddon(): LeaseRingAddon {
  return load();
}

/** An open transport of the addon (native/transport.c); opaque. */
export type TransportHandle = { readonly __transport: unique symbol };

/** The transport functions of the addon (src/server/transport.ts wraps them). */
export type TransportAddon = Pick<
  Addon,
  'transportOpen' | 'transportNext' | 'transportReply' | 'transportDrop' | 'transportClose'
>;

/** The fake tree's bulk writer and remover (native/tree.c; src/server/sysfs.ts uses them). */
export type TreeAddon = Pick<Addon, 'treeWrite' | 'treeRemove'>;

/** Client memory files mapped into the engine (native/file-map.c; src/host/file-map.ts uses them). */
export type FileMapAddon = Pick<Addon, 'fileMap' | 'fileMapIo' | 'fileMapScratch' | 'fileUnmap'>;

/** Where `make -C native` puts the addon, from the package root. */
const ADDON_PATH = fileURLToPath(new URL('../../native/build/uiommu_host.node', import.meta.url));

let addon: Addon | undefined;

function load(): Addon {
  if (addon) return addon;
  try {
    // a copy: the module's own exports object is in dictionary mode (N-API adds its 36
    // functions one by one), so each call's lookup of a function would be a slow load
    addon = { ...(createRequire(import.meta.url)(ADDON_PATH) as Addon) };
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

/** The addon's fake-tree functions (they answer an errno rather than throw). */
export function treeAddon(): TreeAddon {
  return load();
}

/** The addon's file mappings (fileMapIo answers an errno rather than throw). */
export function fileMapAddon(): FileMapAddon {
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
    fail(errnoName(no) ?? 'EIO', (e as Error).message, 'uiommu_native_call');
  }
}

/**
 * copy_from_user through a /proc/<pid>/mem fd: `length` bytes at `addr`.
 * EFAULT unless every byte lies in a readable VMA (per `maps`, a
 * /proc/<pid>/maps fd of the same address space; -1 skips the check) and
 * the address space still exists. ENOTTY when the kernel lacks PROCMAP_QUERY.
 */
export function memRead(mem: number, maps: number, addr: bigint, length: number): Uint8Array {
  // a small read lands in one reused buffer, then an on-heap copy: no backing store per call
  if (length <= SMALL_READ) {
    call((a) => a.memRead(mem, maps, addr, length, smallReads));
    return smallReads.slice(0, length);
  }
  // a buffer we cannot have (as a kmalloc of 2 GiB or more) is ENOMEM, after the VMA check
  let out = smallReads;
  try {
    if (length <= 0x7fff_ffff) out = new Uint8Array(length);
  } catch {}
  call((a) => a.memRead(mem, maps, addr, length, out));
  return out;
}

/** V8 keeps typed arrays up to this many bytes on its heap (no malloc'd backing store). */
const SMALL_READ = 64;
const smallReads = new Uint8Array(new ArrayBuffer(SMALL_READ));

/**
 * copy_to_user through a /proc/<pid>/mem fd: the bytes up to the first one
 * outside a writable VMA are written; EFAULT if that is not all of them.
 * ENOTTY when the kernel lacks PROCMAP_QUERY.
 */
export function memWrite(mem: number, maps: number, addr: bigint, data: Uint8Array): void {
  const n = call((a) => a.memWrite(mem, maps, addr, data));
  if (n < data.length) fail('EFAULT', `copy_to_user: ${n} of ${data.length} bytes`, 'copy_to_user');
}

/** check_zeroed_user's answer as an errno number: 0, E2BIG (7), EFAULT (14), or ENOTTY (no PROCMAP_QUERY). */
export function memZeroed(mem: number, maps: number, addr: bigint, length: bigint): number {
  return call((a) => a.memZeroed(mem, maps, addr, length));
}

/** memZeroed on a worker thread (through copies of the fds), so the engine serves others meanwhile. */
export function memZeroedAsync(
  mem: number,
  maps: number,
  addr: bigint,
  length: bigint,
): Promise<number> {
  return call((a) => a.memZeroedAsync(mem, maps, addr, length));
}

/** clear_user's answer as an errno number: 0, EFAULT (14), or ENOTTY (no PROCMAP_QUERY). */
export function memClear(mem: number, maps: number, addr: bigint, length: bigint): number {
  return call((a) => a.memClear(mem, maps, addr, length));
}

/** memClear on a worker thread (through copies of the fds), so the engine serves others meanwhile. */
export function memClearAsync(
  mem: number,
  maps: number,
  addr: bigint,
  length: bigint,
): Promise<number> {
  return call((a) => a.memClearAsync(mem, maps, addr, length));
}

/**
 * copy_struct_from_user() of entries first, first+1, ... of the user array
 * at `uptr` (`entryLen` bytes each) into `out` (`ksize` bytes each, as many
 * as fit) on a worker thread: how many were copied, and the errno number of
 * the one after them (E2BIG, EFAULT, ENOTTY without PROCMAP_QUERY; 0 when all were).
 */
export function memGatherAsync(
  mem: number,
  maps: number,
  uptr: bigint,
  entryLen: number,
  first: number,
  ksize: number,
  out: Uint8Array,
): Promise<{ done: number; err: number }> {
  return call((a) =>
    a.memGatherAsync(mem, maps, uptr, BigInt(entryLen), BigInt(first), BigInt(ksize), out),
  );
}

/** pidfd_open(2): ESRCH for no such process. */
export function pidfdOpen(pid: number): number {
  return call((a) => a.pidfdOpen(pid));
}

/** A pidfd of Unix socket `sock`'s peer (SO_PEERPIDFD, Linux 6.5): ENOPROTOOPT before. */
export function peerPidfd(sock: number): number {
  return call((a) => a.peerPidfd(sock));
}

/**
 * An O_PATH fd of /proc/<pid>, opened while the process of `pidfd` held
 * `pid` (checked after the open): ESRCH when it was reaped, so the number may name another.
 */
export function procDirOpen(pidfd: number, pid: number): number {
  return call((a) => a.procDirOpen(pidfd, pid));
}

/** openat(2) of `name` under `dirfd`, read-only or read-write, O_CLOEXEC. */
export function openAt(dirfd: number, name: string, write: boolean): number {
  return call((a) => a.openAt(dirfd, name, write));
}

/** The process of `pidfd` has exited (a zombie counts). */
export function pidfdExited(pidfd: number): boolean {
  return call((a) => a.pidfdExited(pidfd));
}

/**
 * capget(2): the effective capability set of `pid` (bit n: capability n),
 * read while the process of `pidfd` held `pid` (checked after): ESRCH when
 * it was reaped, so the number may name another.
 */
export function capEffective(pidfd: number, pid: number): number {
  return call((a) => a.capEffective(pidfd, pid));
}

/** A local (close-on-exec) copy of fd `targetFd` of the process of `pidfd`: ESRCH, EBADF, EPERM. */
export function pidfdGetfd(pidfd: number, targetFd: number): number {
  return call((a) => a.pidfdGetfd(pidfd, targetFd));
}

export function fstatFd(fd: number): FileStat {
  return call((a) => a.fstatFd(fd));
}

/** st_size of fd's file: fstat(2) without building a FileStat (about a third of the cost). */
export function fileSize(fd: number): bigint {
  return BigInt(call((a) => a.fileSize(fd)));
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
