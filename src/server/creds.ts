/**
 * The credentials of a real process, read live from /proc: the real uid
 * (whose locked_vm iommufd charges in per-user mode), the effective
 * capabilities CAP_IPC_LOCK, CAP_SYS_RESOURCE and CAP_SYS_RAWIO, and the soft
 * RLIMIT_MEMLOCK. Each /proc file (status: uid and capabilities; limits:
 * the memlock limit) is read at the first property it answers after each
 * `refresh()` — the engine calls it before each request of the process — so
 * a capset(2) or setrlimit(2) by the program (the selftest's change_process
 * drops CAP_IPC_LOCK) counts from its next call on, and one call reads each
 * file at most once. Once the process is gone the last values read stay.
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

/** What /proc/<pid>/status says. */
interface StatusFacts {
  uid: number;
  capEff: bigint;
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
  return new ProcCredentials(files);
}

/*
 * Classes, not object literals with getters: V8 keeps such a literal in
 * dictionary mode, and the engine's refresh before every request would be
 * a slow lookup.
 */

/** See procCredentials. */
class ProcCredentials implements LiveCredentials {
  // read apart: a call asking only CAP_IPC_LOCK, as IOAS_MAP of a privileged program does, reads status alone
  private readonly status: LiveValue<StatusFacts>;
  private readonly memlock: LiveValue<bigint>;

  constructor(files: ProcFiles) {
    this.status = new LiveValue(() => readStatus(files), { uid: 0, capEff: 0n });
    this.memlock = new LiveValue(() => readMemlock(files), 0n);
    this.status.get();
    this.memlock.get();
  }

  refresh(): void {
    this.status.stale();
    this.memlock.stale();
  }

  get uid(): number {
    return this.status.get().uid;
  }

  get capIpcLock(): boolean {
    return ((this.status.get().capEff >> CAP_IPC_LOCK) & 1n) === 1n;
  }

  get capSysResource(): boolean {
    return ((this.status.get().capEff >> CAP_SYS_RESOURCE) & 1n) === 1n;
  }

  get capSysRawio(): boolean {
    return ((this.status.get().capEff >> CAP_SYS_RAWIO) & 1n) === 1n;
  }

  get rlimitMemlock(): bigint {
    return this.memlock.get();
  }
}

/**
 * A value read by `read` at the first `get()` after each `stale()` (and the
 * first); while `read` throws (the process is gone) the last value stays.
 */
class LiveValue<T> {
  private isStale = true;

  constructor(
    private readonly read: () => T,
    private value: T,
  ) {}

  get(): T {
    if (this.isStale) {
      this.isStale = false;
      try {
        this.value = this.read();
      } catch {
        // the process is gone: keep what it had
      }
    }
    return this.value;
  }

  stale(): void {
    this.isStale = true;
  }
}

function readStatus(files: ProcFiles): StatusFacts {
  const status = files.readText('status');
  const uid = /^Uid:\s+(\d+)/m.exec(status);
  const cap = /^CapEff:\s+([0-9a-f]+)/m.exec(status);
  if (!uid || !cap) throw new Error('unexpected status format');
  return { uid: Number(uid[1]), capEff: BigInt(`0x${cap[1]}`) };
}

function readMemlock(files: ProcFiles): bigint {
  const m = /^Max locked memory\s+(\d+|unlimited)\s/m.exec(files.readText('limits'));
  if (!m) throw new Error('unexpected limits format');
  return m[1] === 'unlimited' ? UNLIMITED : BigInt(m[1]!);
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
  return new GrantedCredentials(creds, caps);
}

/** See withCapabilities. */
class GrantedCredentials implements LiveCredentials {
  constructor(
    private readonly creds: LiveCredentials,
    private readonly caps: ReadonlySet<GrantableCap>,
  ) {}

  refresh(): void {
    this.creds.refresh();
  }

  get uid(): number {
    return this.creds.uid;
  }

  get rlimitMemlock(): bigint {
    return this.creds.rlimitMemlock;
  }

  get capSysResource(): boolean {
    return this.caps.has('sys_resource') || this.creds.capSysResource;
  }

  get capIpcLock(): boolean {
    return this.caps.has('ipc_lock') || this.creds.capIpcLock;
  }

  get capSysRawio(): boolean {
    return this.caps.has('sys_rawio') || (this.creds.capSysRawio ?? false);
  }
}
