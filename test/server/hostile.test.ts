/**
 * The engine under attack by real processes (issue 11): each program
 * asserts the fixed behaviour and prints the engine's memory around each
 * attack ("figures" lines, shown as test diagnostics).
 *   hostile-raw.c   — a second HELLO for a served pid (EBUSY), PROC_STATUS of
 *                     another pid, fork-token theft, and pid recycling through
 *                     a passed-on connection (root with a writable ns_last_pid;
 *                     skipped otherwise);
 *   hostile-argsz.c — a huge zeroed struct tail checked, and a huge
 *                     GET_HW_INFO buffer cleared, and 1,000,000
 *                     invalidation entries copied, while a bystander keeps
 *                     being answered; sizes of 2^31 and more.
 * @slow: builds and runs C programs under uiommu run, one scanning 256 MiB (left out of npm run test:quick)
 */
import { accessSync, constants, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { runCProgram } from './c-program.ts';

const dir = mkdtempSync(join(tmpdir(), 'uiommu-hostile-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function figures(out: string): string[] {
  return out.split('\n').filter((l) => l.startsWith('figures ') || l.startsWith('skip '));
}

/** Whether this process may set the next pid (root in the pid namespace's owner). */
function canRecyclePids(): boolean {
  try {
    accessSync('/proc/sys/kernel/ns_last_pid', constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

test('raw protocol attacks: EBUSY takeover, PROC_STATUS of others, token theft, pid recycling', (t) => {
  const recycle = canRecyclePids();
  if (!recycle) t.diagnostic('pid recycling skipped: /proc/sys/kernel/ns_last_pid is not writable');
  const out = runCProgram(dir, 'hostile-raw', [], 6 + (recycle ? 3 : 0));
  for (const line of figures(out)) t.diagnostic(line);
});

test('a huge zeroed struct tail does not stall another client; sizes >= 2^31 answer as Linux', (t) => {
  const out = runCProgram(dir, 'hostile-argsz', [], 4);
  for (const line of figures(out)) t.diagnostic(line);
});

test('a huge GET_HW_INFO data_len is cleared without stalling another client', (t) => {
  const out = runCProgram(dir, 'hostile-argsz', ['--host', 'mock'], 4, ['hwinfo']);
  for (const line of figures(out)) t.diagnostic(line);
});

test('a long invalidation array is copied without stalling another client', (t) => {
  const out = runCProgram(dir, 'hostile-argsz', ['--host', 'mock'], 6, ['invalidate']);
  for (const line of figures(out)) t.diagnostic(line);
});
