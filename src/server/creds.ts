/**
 * The credentials of a real process, read live from /proc: the real uid
 * (whose locked_vm iommufd charges in per-user mode), the effective
 * capabilities CAP_IPC_LOCK, CAP_SYS_RESOURCE and CAP_SYS_RAWIO, and the soft
 * RLIMIT_MEMLOCK. /proc is read at the first property asked after each
 * `refresh()` — the engine calls it before each request of the process — so
 * a capset(2) or setrlimit(2) by the program (the selftest's change_process
 * drops CAP_IPC_LOCK) counts from its next call on, and one call reads /proc
 * at most once. Once the process is gone the last values read stay.
 *
 * @example
 * const creds = procCredentials(pid);
 * creds.capIpcLock; // false for an unprivileged program: pins are accounted
 */
import { readFileSync } from 'node:fs';
import { U64_MAX } from '../abi/layout.ts';
import type { Credentials } from '../host/process.ts';

const CAP_IPC_LOCK = 14n;
const CAP_SYS_RAWIO = 17n;
const CAP_SYS_RESOURCE = 24n;

/** RLIMIT_INFINITY as a byte count. */
const UNLIMITED = U64_MAX;

interface Snapshot {
  uid: number;
  capEff: bigint;
  memlock: bigint;
}

/** Credentials read from the live process, again after each `refresh()`. */
export interface LiveCredentials extends Credentials {
  /** The next property read looks at /proc again. */
  refresh(): void;
}

/** Files of one /proc/<pid> directory, e.g. a ProcHandle bound to the process. */
export interface ProcFiles {
  readText(name: string): string;
}

/**
 * Live credentials of `pid`, read through `from`: the process's handle, or
 * a directory holding `<pid>/status` and `<pid>/limits` (/proc unless a test says otherwise).
 */
export function procCredentials(pid: number, from: string | ProcFiles = '/proc'): LiveCredentials {
  const files: ProcFiles =
    typeof from === 'string'
      ? { readText: (name) => readFileSync(`${from}/${pid}/${name}`, 'latin1') }
      : from;
  let last: Snapshot = { uid: 0, capEff: 0n, memlock: 0n };
  let stale = true;
  const now = (): Snapshot => {
    if (!stale) return last;
    stale = false;
    try {
      last = readSnapshot(files);
    } catch {
      // the process is gone: keep what it had
    }
    return last;
  };
  now();
  return {
    refresh() {
      stale = true;
    },
    get uid() {
      return now().uid;
    },
    get capIpcLock() {
      return ((now().capEff >> CAP_IPC_LOCK) & 1n) === 1n;
    },
    get capSysResource() {
      return ((now().capEff >> CAP_SYS_RESOURCE) & 1n) === 1n;
    },
    get capSysRawio() {
      return ((now().capEff >> CAP_SYS_RAWIO) & 1n) === 1n;
    },
    get rlimitMemlock() {
      return now().memlock;
    },
  };
}

function readSnapshot(files: ProcFiles): Snapshot {
  const status = files.readText('status');
  const uid = /^Uid:\s+(\d+)/m.exec(status);
  const cap = /^CapEff:\s+([0-9a-f]+)/m.exec(status);
  const limits = files.readText('limits');
  const memlock = /^Max locked memory\s+(\d+|unlimited)\s/m.exec(limits);
  if (!uid || !cap || !memlock) throw new Error('unexpected status or limits format');
  return {
    uid: Number(uid[1]),
    capEff: BigInt(`0x${cap[1]}`),
    memlock: memlock[1] === 'unlimited' ? UNLIMITED : BigInt(memlock[1]!),
  };
}

/** Capabilities `uiommu run --cap-add` can grant in the emulated kernel's eyes. */
export const GRANTABLE_CAPS = ['sys_resource', 'ipc_lock', 'sys_rawio'] as const;
export type GrantableCap = (typeof GRANTABLE_CAPS)[number];

/**
 * `creds` with `caps` held whatever the real process has: the emulated
 * kernel answers as if the program ran with them (e.g. IOMMU_OPTION
 * RLIMIT_MODE for a program that is not privileged on the real host).
 */
export function withCapabilities(
  creds: LiveCredentials,
  caps: ReadonlySet<GrantableCap>,
): LiveCredentials {
  return {
    refresh() {
      creds.refresh();
    },
    get uid() {
      return creds.uid;
    },
    get rlimitMemlock() {
      return creds.rlimitMemlock;
    },
    get capSysResource() {
      return caps.has('sys_resource') || creds.capSysResource;
    },
    get capIpcLock() {
      return caps.has('ipc_lock') || creds.capIpcLock;
    },
    get capSysRawio() {
      return caps.has('sys_rawio') || (creds.capSysRawio ?? false);
    },
  };
}
