import { readFileSync, readlinkSync } from 'node:fs';
import type { EventfdCtx, FileOps, FileRef, PagesSource } from '../kernel/file.ts';
import { foreignMemory } from './foreign-memory.ts';
import {
  closeFd,
  eventfdConsume,
  eventfdSignal,
  fstatFd,
  fstatfsFd,
  HUGETLBFS_MAGIC,
  TMPFS_MAGIC,
} from './native.ts';
import type { PhysRam } from './phys-ram.ts';
import type { ProcHandle } from './proc-handle.ts';

const S_IFMT = 0o170000;
const S_IFREG = 0o100000;

/** What /proc/self/fd/N links to for an eventfd. */
const EVENTFD_LINK = 'anon_inode:[eventfd]';

/**
 * A file of the real process of `handle` at `fd` as the kernel's handlers
 * see it when handed its number: an eventfd gives `eventfdCtx` (SET_IRQS
 * triggers), anything else what `remoteFileRef` finds. EBADF when the
 * process has no such fd, ESRCH when it is gone.
 */
export function remoteFileOps(handle: ProcHandle, fd: number, ram: PhysRam): FileOps {
  if (isEventfd(handle, fd)) {
    return {
      kind: 'eventfd',
      eventfdCtx: () => remoteEventfdCtx(handle.getfd(fd), () => eventfdIdAt(handle, fd)),
      release() {},
    };
  }
  return { kind: 'file', ref: remoteFileRef(handle, fd, ram), release() {} };
}

function isEventfd(handle: ProcHandle, fd: number): boolean {
  const local = handle.getfd(fd);
  try {
    return readlinkSync(`/proc/self/fd/${local}`) === EVENTFD_LINK;
  } finally {
    closeFd(local);
  }
}

/** The `eventfd-id:` of an fdinfo text, undefined when it names no eventfd. */
function eventfdId(fdinfo: string): string | undefined {
  return /^eventfd-id:\s*(\d+)$/m.exec(fdinfo)?.[1];
}

/** The eventfd id of the process's fd `fd` now, undefined when it has none there. */
function eventfdIdAt(handle: ProcHandle, fd: number): string | undefined {
  try {
    return eventfdId(handle.readText(`fdinfo/${fd}`));
  } catch {
    return undefined;
  }
}

/**
 * The engine's copy `local` of a client eventfd as an EventfdCtx (closed on
 * put). `ownerId` reads the id of the eventfd the client now has at the fd
 * number it handed over: another id or none means the client closed it
 * (a dup under another number is not seen).
 */
function remoteEventfdCtx(local: number, ownerId: () => string | undefined): EventfdCtx {
  const id = eventfdId(readFileSync(`/proc/self/fdinfo/${local}`, 'latin1'));
  let open = true;
  const quiet = (fn: () => void) => {
    try {
      if (open) fn();
    } catch {
      // the counter is at its ceiling or the client's file is odd: nothing to do
    }
  };
  return {
    signal: () => quiet(() => eventfdSignal(local)),
    consume() {
      let had = false;
      quiet(() => {
        had = eventfdConsume(local);
      });
      return had;
    },
    put() {
      if (!open) return;
      open = false;
      closeFd(local);
    },
    closed: () => id === undefined || ownerId() !== id,
  };
}

/**
 * What iommufd sees of fd `fd` of the real process of `handle` when handed it by
 * number (IOMMU_IOAS_MAP_FILE). A memory file — a regular file on tmpfs
 * (memfd, shmem) or hugetlbfs — gets a pages source addressed by file
 * offset, on the same physical pages as every mapping of that file
 * (RemoteMm keys them by device and inode alike); `size` is its current
 * st_size. Any other file has no pages (pinning its range gives EINVAL).
 * EBADF when the process has no such fd, ESRCH when it is gone.
 */
export function remoteFileRef(handle: ProcHandle, fd: number, ram: PhysRam): FileRef {
  const local = handle.getfd(fd);
  let keep = false;
  try {
    const st = fstatFd(local);
    const fsType = fstatfsFd(local).type;
    if ((st.mode & S_IFMT) !== S_IFREG || (fsType !== TMPFS_MAGIC && fsType !== HUGETLBFS_MAGIC)) {
      return {};
    }
    const foreign = foreignMemory(ram);
    const kind = foreign.fsKindOf(local);
    const file = foreign.file(`${st.devMajor}:${st.devMinor}:${st.ino}`, () => ({
      kind,
      fd: undefined,
    }));
    keep = true;
    file.adoptFd(local);
    const source: PagesSource = {
      file: true,
      resolve(start, length) {
        if (length === 0n) return [];
        file.checkInFile(start, length);
        return file
          .runs(start, length)
          .map((r) => ({ va: r.offset, length: r.length, phys: r.phys }));
      },
    };
    foreign.holdFile(file, source);
    return {
      pages: {
        source,
        get size() {
          return file.size() ?? 0n;
        },
      },
    };
  } finally {
    if (!keep) closeFd(local);
  }
}
