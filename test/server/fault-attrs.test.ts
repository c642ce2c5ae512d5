/**
 * debugfs's failslab/ and fail_page_alloc/ attributes under `uiommu run`
 * answer writes as Linux 7.2's do (test/server/fault-attrs.c): every file,
 * its default, and for 32 writes per file (bases, signs, overflow, garbage,
 * a write past the kernel's 23-byte parse buffer, booleans) write()'s answer
 * and the value read back. fault-attrs.expected is that program's output on
 * the reference kernel (/work/shared/refkernel, boot.sh, Linux 7.2.6).
 *
 * @slow: builds and runs a C program under uiommu run (left out of npm run test:quick)
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ROOT } from './c-program.ts';

const dir = mkdtempSync(join(tmpdir(), 'uiommu-fault-attrs-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('failslab and fail_page_alloc attributes parse, keep and show values as Linux 7.2', () => {
  const bin = join(dir, 'fault-attrs');
  execFileSync('cc', ['-O2', '-Wall', '-o', bin, join(import.meta.dirname, 'fault-attrs.c')]);
  const r = spawnSync(process.execPath, [join(ROOT, 'bin/uiommu.js'), 'run', '--', bin], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  assert.equal(r.status, 0, r.stderr);
  const expected = readFileSync(join(import.meta.dirname, 'fault-attrs.expected'), 'utf8');
  assert.equal(r.stdout, expected);
});
