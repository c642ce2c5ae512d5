/**
 * `uiommu run` as the engine beside the native launcher (native/launch.c):
 * the launcher has made the private directory and started PROGRAM already,
 * or, when an option only the engine can judge was given (`gated`), waits
 * for the engine's word to start it; the engine serves there, says when it
 * is ready (the file PROGRAM's library waits for, docs/engine-protocol.md
 * *Start-up*; a gated launcher also hears it on the status socket, with the
 * page size PROGRAM must see), and learns PROGRAM's exit status from the
 * launcher instead of running it.
 *
 * @example
 * const launched = launchedBy(process.env); // { dir, statusFd: 3 } under the launcher
 */
import { renameSync, writeFileSync, writeSync } from 'node:fs';
import { Socket } from 'node:net';
import { join } from 'node:path';

/** What the launcher gave the engine. */
export interface Launched {
  /** The private directory (empty, 0700): the tree, the socket and the ready file go here. */
  readonly dir: string;
  /** A socket on which the launcher writes PROGRAM's exit status ("<n>\n") when it ends. */
  readonly statusFd: number;
  /** PROGRAM starts only once the engine is ready (UIOMMU_ENGINE_GATED=1), with the host's page size. */
  readonly gated: boolean;
}

/** The launcher's fd for PROGRAM's status (launch.c dups it there). */
const STATUS_FD = 3;

/** Under the launcher (UIOMMU_ENGINE_DIR set): what it gave; else undefined. */
export function launchedBy(env: NodeJS.ProcessEnv): Launched | undefined {
  const dir = env.UIOMMU_ENGINE_DIR;
  return dir ? { dir, statusFd: STATUS_FD, gated: env.UIOMMU_ENGINE_GATED === '1' } : undefined;
}

/**
 * Say the engine serves: `dir/ready` appears (created aside, then renamed:
 * one event); a gated launcher is told on the status socket ("ready
 * <page size, 0 for the machine's>\n") and starts PROGRAM.
 */
export function announceReady(launched: Launched, pageSize: number | undefined): void {
  const ready = join(launched.dir, 'ready');
  writeFileSync(`${ready}.tmp`, '');
  renameSync(`${ready}.tmp`, ready);
  if (launched.gated) writeSync(launched.statusFd, `ready ${pageSize ?? 0}\n`);
}

/**
 * PROGRAM's exit status as the launcher reports it; 1 when the launcher
 * closed the socket without one (it is gone).
 */
export function programStatus(fd: number): Promise<number> {
  return new Promise((done) => {
    const s = new Socket({ fd, readable: true, writable: false });
    let text = '';
    s.setEncoding('latin1');
    s.on('data', (d: string) => {
      text += d;
    });
    s.on('error', () => s.destroy());
    s.on('close', () => {
      const status = /^\d+\n$/.test(text) ? Number.parseInt(text, 10) : 1;
      done(status);
    });
  });
}
