/**
 * `uiommu run [--host PRESET|FILE] [--cap-add CAP] [--personality NAME=VALUE]
 * [--trace FILE|-] [--trace-json FILE] [--no-warn] [--ui] [--dump-state FILE] -- PROGRAM ARGS...`:
 * run an unmodified program against the emulated kernel. A private 0700
 * directory gets the fake sys/ and dev/ trees and the engine's socket; the
 * engine serves in this Node process while PROGRAM runs with
 * LD_PRELOAD=<package>/native/build/libuiommu-preload.so, UIOMMU_SOCK and
 * UIOMMU_ROOT (docs/engine-protocol.md). The exit status is PROGRAM's
 * (128+n when killed by signal n); the directory is removed afterwards.
 * Under the native launcher (`launched`) PROGRAM runs already: the engine
 * serves in the launcher's directory and learns PROGRAM's status from it.
 *
 * How the engine reaches real processes (their memory, their eventfds) is
 * given by a `BackendFactory`: see `RunBackends`.
 */
import { spawn } from 'node:child_process';
import {
  accessSync,
  closeSync,
  existsSync,
  constants as fsConstants,
  mkdirSync,
  mkdtempSync,
  openSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { constants, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { IoctlAbi } from '../abi/ioctl.ts';
import type { FileOps } from '../host/file.ts';
import { Kernel, type KernelPersonality } from '../host/kernel.ts';
import { ProcHandle } from '../host/proc-handle.ts';
import type { ProcessMm } from '../host/process.ts';
import { kernelState } from '../host/state.ts';
import type { KernelVersion } from '../host/versions.ts';
import { formatWarning, type Warning } from '../host/warnings.ts';
import {
  type GrantableCap,
  type LiveCredentials,
  procCredentials,
  withCapabilities,
} from '../server/creds.ts';
import { createEngine, type PollSync, procParentOf } from '../server/engine.ts';
import type { LiveView } from '../server/live-view.ts';
import { writeOwned } from '../server/owned.ts';
import { serveEngine } from '../server/server.ts';
import { removeTree, rewriteFakeTree, writeFakeTree } from '../server/sysfs.ts';
import { announceReady, type Launched, programStatus } from './launched.ts';

/** The package's root directory (this file is src/cli/run.ts). */
export const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** The preload library the build step produces. */
export const PRELOAD_LIBRARY = join(PACKAGE_ROOT, 'native/build/libuiommu-preload.so');

/** What the engine needs to serve real processes of `kernel`, each reached through its handle. */
export interface RunBackends {
  /** The address space of a process image (its /proc/<pid>/mem and maps). */
  mmFor(handle: ProcHandle): ProcessMm;
  /** Mirrors pollable files' readiness into the process's eventfds (pidfd_getfd). */
  pollSync?: PollSync;
  /** Real fds handed to ioctls (SET_IRQS eventfds, MAP_FILE memfds); without it they are EBADF. */
  foreignFile?(handle: ProcHandle, fd: number): FileOps | undefined;
  /** Credentials of a process (default: read live from its /proc files, see procCredentials). */
  credsFor?(handle: ProcHandle): LiveCredentials;
}

/** The handle of a process the engine serves: connections always come with one here. */
function bound(handle: ProcHandle | undefined): ProcHandle {
  if (!handle) throw new Error('a real process is reached only through its handle');
  return handle;
}

/** Builds the backends for one emulated kernel (its PhysRam identifies the pages). */
export type BackendFactory = (kernel: Kernel) => RunBackends;

export interface RunOptions {
  /** Host topology: a preset name or a JSON config path (default 'x86'). */
  host?: string;
  /** Strace-like trace: a file, or '-' for standard error. */
  trace?: string;
  /** JSON-lines trace file. */
  traceJson?: string;
  /** The preload library (default PRELOAD_LIBRARY). */
  preload?: string;
  /** Capabilities the emulated kernel sees the program hold whatever it really has. */
  capAdd?: readonly GrantableCap[];
  /** The Linux version to answer as (default 6.18). */
  kernel?: KernelVersion;
  /** Settings over that version's profile (docs/personality.md). */
  personality?: Partial<KernelPersonality>;
  /** Receives the strace-like trace instead of `trace`'s file (the demo prints it on stdout). */
  traceTo?: (text: string) => void;
  /** Warnings (docs/warnings.md) in the trace and the live view; default on. */
  warn?: boolean;
  /** Serve the live view (src/server/live-view.ts); its URL goes to stderr. */
  ui?: boolean;
  /** Write the kernel's state as JSON here at exit and on SIGUSR1. */
  dumpState?: string;
  /** Receives the live view's URL instead of stderr (tests). */
  onLiveView?: (url: string) => void;
  /** Serve beside the native launcher, which runs PROGRAM (src/cli/launched.ts). */
  launched?: Launched;
}

/**
 * Where the private directory goes: $TMPDIR when set, else /dev/shm when it
 * is a writable directory (the fake trees are some 350 files and links,
 * written and removed on every run: on tmpfs a few ms, on a disk ~200 ms
 * of the start-up), else the system's temporary directory.
 */
function runtimeParent(): string {
  if (process.env.TMPDIR) return tmpdir();
  try {
    accessSync('/dev/shm', fsConstants.W_OK | fsConstants.X_OK);
    return '/dev/shm';
  } catch {
    return tmpdir();
  }
}

/** How many of the last calls and warnings the live view and the state dump keep. */
const RECENT = 100;

/** Signals `uiommu run` passes on to PROGRAM (SIGINT from a terminal reaches it directly). */
const FORWARDED: NodeJS.Signals[] = ['SIGTERM', 'SIGHUP', 'SIGQUIT'];

/**
 * Run `argv` under the engine; resolves to the exit status `uiommu run`
 * should exit with. Errors of setup (missing preload library, bad host
 * config, unwritable trace file) are reported on stderr with status 1; a PROGRAM that cannot be
 * started gives 127 like a shell.
 */
export async function runProgram(
  argv: readonly string[],
  opts: RunOptions,
  backends: BackendFactory,
): Promise<number> {
  const preload = resolve(opts.preload ?? PRELOAD_LIBRARY);
  if (argv.length === 0) {
    process.stderr.write('uiommu run: no program given\n');
    return 1;
  }
  if (!existsSync(preload)) {
    process.stderr.write(`uiommu run: ${preload} is missing (build it: make -C native)\n`);
    return 1;
  }
  let kernel: Kernel;
  try {
    kernel = new Kernel({
      host: opts.host ?? 'x86',
      abi: hostIoctlAbi(process.arch),
      ...(opts.kernel ? { version: opts.kernel } : {}),
      ...(opts.personality ? { personality: opts.personality } : {}),
    });
  } catch (e) {
    process.stderr.write(`uiommu run: --host ${opts.host}: ${(e as Error).message}\n`);
    return 1;
  }
  const sinks: number[] = [];
  const sink = (path: string | undefined): ((text: string) => void) | undefined => {
    if (path === undefined) return undefined;
    if (path === '-') return (text) => process.stderr.write(text);
    const fd = openSync(path, 'w');
    sinks.push(fd);
    return (text) => writeSync(fd, text);
  };
  let traceOut: ((text: string) => void) | undefined;
  let jsonOut: ((text: string) => void) | undefined;
  try {
    traceOut = opts.traceTo ?? sink(opts.trace);
    jsonOut = sink(opts.traceJson);
  } catch (e) {
    for (const fd of sinks) closeSync(fd);
    process.stderr.write(`uiommu run: ${(e as Error).message}\n`);
    return 1;
  }
  const dir = opts.launched?.dir ?? mkdtempSync(join(runtimeParent(), 'uiommu-'));
  const observed = opts.ui || opts.dumpState !== undefined;
  const calls: string[] = [];
  const warnings: Warning[] = [];
  const keep = <T>(list: T[], item: T) => {
    list.push(item);
    if (list.length > RECENT) list.shift();
  };
  // the unmaps clients posted are done before anyone looks (Engine.settle)
  let settleUnmaps: (() => void) | undefined;
  const state = () => {
    settleUnmaps?.();
    return { ...kernelState(kernel), calls, warnings };
  };
  let dumped = false;
  const dump = () => {
    if (opts.dumpState === undefined) return;
    writeFileSync(
      opts.dumpState,
      JSON.stringify({ time: new Date().toISOString(), ...state() }, null, 1),
    );
    dumped = true;
  };
  let view: LiveView | undefined;
  try {
    const root = join(dir, 'root');
    mkdirSync(root);
    writeFakeTree(kernel, root);
    writeOwned(kernel, root);
    kernel.onTopologyChange = () => rewriteFakeTree(kernel, root);
    const b = backends(kernel);
    const trace =
      traceOut || observed
        ? (line: string) => {
            traceOut?.(`${line}\n`);
            if (observed) keep(calls, line);
          }
        : undefined;
    const engine = createEngine({
      kernel,
      mmFor: (_pid, handle) => b.mmFor(bound(handle)),
      ...(b.pollSync ? { pollSync: b.pollSync } : {}),
      credsFor: (pid, handle) => {
        const h = bound(handle);
        const creds = b.credsFor ? b.credsFor(h) : procCredentials(pid, h);
        return opts.capAdd?.length ? withCapabilities(creds, new Set(opts.capAdd)) : creds;
      },
      parentOf: procParentOf,
      ...(b.foreignFile
        ? {
            foreignFile: (_pid: number, fd: number, handle?: ProcHandle) =>
              b.foreignFile!(bound(handle), fd),
          }
        : {}),
      ...(trace ? { trace } : {}),
      // at exit: the state just before each process's fds close (the last one's stays in the file)
      ...(opts.dumpState !== undefined ? { exiting: dump } : {}),
      ...(jsonOut ? { traceJson: (r: object) => jsonOut(`${JSON.stringify(r)}\n`) } : {}),
      ...(opts.warn === false
        ? {}
        : {
            warn: (w: Warning) => {
              traceOut?.(`[pid ${w.pid}] ${formatWarning(w)}\n`);
              jsonOut?.(
                `${JSON.stringify({ pid: w.pid, warning: w.id, message: w.message, cause: w.cause })}\n`,
              );
              if (observed) keep(warnings, w);
            },
          }),
    });
    settleUnmaps = () => engine.settle();
    const server = await serveEngine(engine, join(dir, 'engine.sock'), {
      peer: (fd) => ProcHandle.ofPeer(fd),
    });
    // the kernel's state (the --dump-state model) as a --trace-json record: on SIGUSR1 and once everything is closed
    const traceState = (at: string) => {
      engine.settle();
      jsonOut?.(`${JSON.stringify({ state: { at, ...kernelState(kernel) } })}\n`);
    };
    const onUsr1 = () => {
      traceState('SIGUSR1');
      dump();
    };
    process.on('SIGUSR1', onUsr1);
    if (opts.ui) {
      // loaded only here: it brings node:crypto and node:http (~10 ms of start-up)
      const { serveLiveView } = await import('../server/live-view.ts');
      view = await serveLiveView({ state, assets: join(PACKAGE_ROOT, 'src/server/live-view') });
      (opts.onLiveView ?? ((url) => process.stderr.write(`uiommu run: live view at ${url}\n`)))(
        view.url,
      );
    }
    try {
      const pageSize = kernel.host.spec.pageSize;
      if (opts.launched) {
        // PROGRAM runs already (ungated) only on the default host: it sees the machine's page size
        if (pageSize !== undefined && !opts.launched.gated) {
          process.stderr.write(
            `uiommu run: the launcher cannot run host ${kernel.host.spec.name}\n`,
          );
          return 1;
        }
        announceReady(opts.launched, pageSize);
        return await programStatus(opts.launched.statusFd);
      }
      const env = {
        ...process.env,
        LD_PRELOAD: process.env.LD_PRELOAD ? `${preload} ${process.env.LD_PRELOAD}` : preload,
        UIOMMU_SOCK: server.path,
        UIOMMU_ROOT: root,
        ...(pageSize !== undefined ? { UIOMMU_PAGE_SIZE: String(pageSize) } : {}),
      };
      return await runChild(argv, env);
    } finally {
      process.off('SIGUSR1', onUsr1);
      await server.close();
      traceState('exit');
      if (!dumped) dump();
      await view?.close();
      for (const bug of kernel.bugs) {
        process.stderr.write(`uiommu run: model bug: ${(bug as Error)?.stack ?? String(bug)}\n`);
      }
    }
  } finally {
    for (const fd of sinks) closeSync(fd);
    removeTree(dir);
  }
}

/**
 * The ioctl encoding the real programs use: the machine's own (powerpc's
 * on ppc and mips, the generic one elsewhere), whatever the emulated host.
 */
export function hostIoctlAbi(arch: string): IoctlAbi {
  return arch.startsWith('ppc') || arch.startsWith('mips') ? 'powerpc' : 'generic';
}

/** Spawn PROGRAM with the terminal and wait: its status, 128+n for signal n, 127 if it cannot start. */
function runChild(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((done) => {
    const [file = '', ...args] = argv;
    const child = spawn(file, args, { stdio: 'inherit', env });
    const forward = (sig: NodeJS.Signals) => child.kill(sig);
    const ignore = () => {};
    const settle = (status: number) => {
      for (const sig of FORWARDED) process.off(sig, forward);
      process.off('SIGINT', ignore);
      done(status);
    };
    for (const sig of FORWARDED) process.on(sig, forward);
    process.on('SIGINT', ignore);
    child.once('error', (e: NodeJS.ErrnoException) => {
      process.stderr.write(`uiommu run: ${file}: ${e.message}\n`);
      settle(127);
    });
    child.once('exit', (code, signal) => {
      settle(code ?? 128 + (signal ? (constants.signals[signal] ?? 0) : 0));
    });
  });
}
