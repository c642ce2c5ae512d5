import { fail } from '../abi/errno.ts';
import type { AccountMode, PinAccount } from '../kernel/pin-account.ts';

/** A user's locked-memory total, shared by all its processes (user_struct.locked_vm). */
export interface UserAccount {
  lockedVm: bigint;
}

/** The per-process counters /proc/<pid>/status shows as VmLck and VmPin, in pages. */
export interface MmCounters {
  lockedVm: bigint;
  pinnedVm: bigint;
}

/**
 * iommufd's pin accounting: per-user mode charges the user's locked_vm,
 * per-mm mode the process's locked_vm, each against RLIMIT_MEMLOCK (pages)
 * with ENOMEM past it; both add to the process's pinned_vm.
 */
export function pinAccount(
  mode: AccountMode,
  user: UserAccount,
  mm: MmCounters,
  limitPages: bigint,
): PinAccount {
  const counter = mode === 'user' ? user : mm;
  return {
    owner: { mode, mm, user },
    charge(n: bigint) {
      if (counter.lockedVm + n > limitPages)
        fail(
          'ENOMEM',
          `${counter.lockedVm + n} pages locked would pass RLIMIT_MEMLOCK (${limitPages} pages)`,
          mode === 'user' ? 'incr_user_locked_vm' : 'update_mm_locked_vm',
        );
      counter.lockedVm += n;
      mm.pinnedVm += n;
    },
    uncharge(n: bigint) {
      counter.lockedVm -= n;
      mm.pinnedVm -= n;
    },
  };
}

/**
 * The VmLck and VmPin lines of /proc/<pid>/status for `counters`, as the
 * kernel prints them: kB, right-aligned in 8 columns after a tab.
 *
 * @example
 * vmStatusLines({ lockedVm: 1n, pinnedVm: 1n }, 4096n); // "VmLck:\t       4 kB\nVmPin:\t       4 kB\n"
 */
export function vmStatusLines(counters: MmCounters, pageSize: bigint): string {
  const kb = (pages: bigint) => `${(pages * pageSize) / 1024n}`.padStart(8);
  return `VmLck:\t${kb(counters.lockedVm)} kB\nVmPin:\t${kb(counters.pinnedVm)} kB\n`;
}
