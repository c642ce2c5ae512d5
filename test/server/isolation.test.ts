/**
 * A real process's bad input under `uiommu run` (test/server/isolation.c):
 * EFAULT for unusable struct pointers, EBADF for closed fds, ENOTTY for an
 * unknown ioctl, concurrent threads each answered, and nothing half-done.
 *
 * @slow: builds and runs a C program under uiommu run (left out of npm run test:quick)
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ROOT, runCProgram } from './c-program.ts';

const dir = mkdtempSync(join(tmpdir(), 'uiommu-isolation-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('bad pointers, closed fds and concurrent threads of a real process get the kernel answers', () => {
  runCProgram(dir, 'isolation', [], 14);
});

test('the engine socket sits in a private 0700 directory of the user running uiommu run', () => {
  const r = spawnSync(
    process.execPath,
    [
      join(ROOT, 'bin/uiommu.js'),
      'run',
      '--',
      'sh',
      '-c',
      'stat -c "%a %u %F" "$(dirname "$UIOMMU_SOCK")" "$UIOMMU_SOCK"',
    ],
    { encoding: 'utf8', timeout: 60_000 },
  );
  assert.equal(r.status, 0, r.stderr);
  const uid = process.getuid?.();
  assert.deepEqual(r.stdout.trim().split('\n'), [`700 ${uid} directory`, `755 ${uid} socket`]);
});
