import { writeSync } from 'node:fs';
import { fail } from '../abi/errno.ts';
import { closeFd, eventfdSet } from './native.ts';
import type { ProcHandle } from './proc-handle.ts';

/** One client eventfd the engine keeps in step with a pollable engine file. */
export interface PollHandle {
  /** The engine's own copy of the client's eventfd. */
  readonly fd: number;
}

/**
 * Poll readiness of engine files in client processes (docs/engine-protocol.md,
 * *Fds*): the client reserves an eventfd for each engine file; the engine
 * takes a copy of it and keeps its counter at 1 while the file has events
 * and 0 while it has none, so poll/select/epoll in the client see POLLIN.
 */
export interface PollSync {
  /** Take a copy of eventfd `fd` of the process of `handle` (`pid`): ESRCH, EBADF, EPERM. */
  attach(pid: number, fd: number, handle?: ProcHandle): PollHandle;
  /** Set the eventfd's readiness. */
  set(handle: PollHandle, ready: boolean): void;
  /**
   * Wake the eventfd's waiters again, leaving it readable (the counter
   * grows by 1): a new event on a file already readable, which
   * edge-triggered epoll reports. Only while set ready.
   */
  wake(handle: PollHandle): void;
  /** Close the engine's copy; later calls with the handle do nothing. */
  release(handle: PollHandle): void;
}

interface EventfdHandle extends PollHandle {
  open: boolean;
}

/** Adding 1 to an eventfd counter: an 8-byte little-endian write. */
const ONE = new Uint8Array([1, 0, 0, 0, 0, 0, 0, 0]);

/** PollSync over real eventfds: pidfd_getfd, then drain/write the counter. */
export const eventfdPollSync: PollSync = {
  attach(pid, fd, proc) {
    if (!proc)
      fail('ESRCH', `process ${pid} is reached only through its handle`, 'uiommu_poll_sync');
    const handle: EventfdHandle = { fd: proc.getfd(fd), open: true };
    return handle;
  },
  set(handle, ready) {
    if ((handle as EventfdHandle).open) eventfdSet(handle.fd, ready);
  },
  wake(handle) {
    // a write never blocks short of a counter near 2^64, and always wakes the waiters
    if ((handle as EventfdHandle).open) writeSync(handle.fd, ONE);
  },
  release(handle) {
    const h = handle as EventfdHandle;
    if (!h.open) return;
    h.open = false;
    closeFd(h.fd);
  },
};
