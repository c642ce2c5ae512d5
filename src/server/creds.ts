/**
 * The credentials of a real process, read live: the real uid (whose
 * locked_vm iommufd charges in per-user mode) from /proc/<pid>/status, the
 * effective capabilities CAP_IPC_LOCK, CAP_SYS_RESOURCE and CAP_SYS_RAWIO
 * by capget(2), and the soft RLIMIT_MEMLOCK from /proc/<pid>/limits. Each
 * fact is read at its first use after each `refresh()` — the engine calls
 * it before each request of the process — so a capset(2) or setrlimit(2) by
 * the program (the selftest's change_process drops CAP_IPC_LOCK), raw or
 * through libc, counts from its next call on, and one call reads each at
 * most once. Once the process is gone the last values read stay.
 *
 * @example
 * const creds = procCredentials(pid);
 * creds.capIpcLock; // false for an unprivileged program: pins are accounted
 */
import { readFileSync } from 'node:fs';
import { U64_MAX } from '../abi/layout.ts';
import type { Credentials } from '../host/process.ts';

const CAP_IPC_LOCK = 14;
const CAP_SYS_RAWIO = 17;
const CAP_SYS_RESOURCE = 24;

/** RLIMIT_INFINITY as a byte count. */
const UNLIMITED = U64_MAX;

/** Credentials read from the live process, again after each `refresh()`. */
export interface LiveCredentials extends Credentials {
  /** The next property read looks at the process again. */
  refresh(): void;
}

/** What the credentials are read from: e.g. a ProcHandle bound to the process. */
export interface ProcFiles {
  /** The text of /proc/<pid>/`name`. */
  readText(name: string): string;
  /** The effective capability set (bit n: capability n), as capget(2) says. */
  capEffective(): number;
}

/**
 * Live credentials of `pid`, read through `from`: the process's handle, or
 * a directory holding `<pid>/status` and `<pid>/limits` (/proc unless a test
 * says otherwise), whose CapEff line then stands for capget(2).
 */
export function procCredentials(pid: number, from: string | ProcFiles = '/proc'): LiveCredentials {
  if (typeof from !== 'string') return new ProcCredentials(from);
  const readText = (name: string) => readFileSync(`${from}/${pid}/${name}`, 'latin1');
  return new ProcCredentials({ readText, capEffective: () => statusCapEff(readText('status')) });
}

/*
 * Classes, not object literals with getters: V8 keeps such a literal in
 * dictionary mode, and the engine's refresh before every request would be
 * a slow lookup.
 */

/** See procCredentials. */
class ProcCredentials implements LiveCredentials {
  // read apart: IOAS_MAP of a privileged program asks CAP_IPC_LOCK alone, one capget
  private readonly caps: LiveValue<number>;
  private readonly uidNow: LiveValue<number>;
  private readonly memlock: LiveValue<bigint>;

  constructor(files: ProcFiles) {
    this.caps = new LiveValue(() => files.capEffective(), 0);
    this.uidNow = new LiveValue(() => statusUid(files.readText('status')), 0);
    this.memlock = new LiveValue(() => readMemlock(files), 0n);
    this.caps.get();
    this.uidNow.get();
    this.memlock.get();
  }

  refresh(): void {
    this.caps.stale();
    this.uidNow.stale();
    this.memlock.stale();
  }

  get uid(): number {
    return this.uidNow.get();
  }

  get capIpcLock(): boolean {
    return hasCap(this.caps.get(), CAP_IPC_LOCK);
  }

  get capSysResource(): boolean {
    return hasCap(this.caps.get(), CAP_SYS_RESOURCE);
  }

  get capSysRawio(): boolean {
    return hasCap(this.caps.get(), CAP_SYS_RAWIO);
  }

  get rlimitMemlock(): bigint {
    return this.memlock.get();
  }
}

/** Capability `cap` (below 32) is in `set`; `>>>` keeps the set's low 32 bits exactly. */
function hasCap(set: number, cap: number): boolean {
  return ((set >>> cap) & 1) === 1;
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

/** The real uid of a status text. */
function statusUid(status: string): number {
  const uid = /^Uid:\s+(\d+)/m.exec(status);
  if (!uid) throw new Error('unexpected status format');
  return Number(uid[1]);
}

/** The CapEff line of a status text (16 hex digits; exact as a number below bit 53). */
function statusCapEff(status: string): number {
  const cap = /^CapEff:\s+([0-9a-f]+)/m.exec(status);
  if (!cap) throw new Error('unexpected status format');
  return Number.parseInt(cap[1]!, 16);
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
