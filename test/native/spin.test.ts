/**
 * The spin learner both ends of the channel share (native/spin.h): the C
 * unit test in test/native/spin.c feeds it gaps and checks the budgets.
 *
 * @slow: compiles and runs a C unit test (left out of npm run test:quick)
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

const HERE = import.meta.dirname;

test('spin_learn reaches twice a gap at once, decays slowly toward the usual one, halves past the bound', () => {
  const dir = mkdtempSync(join(tmpdir(), 'uiommu-spin-'));
  try {
    const bin = join(dir, 'spin');
    execFileSync('cc', ['-O2', '-Wall', '-Wextra', '-Werror', '-o', bin, join(HERE, 'spin.c')]);
    const r = spawnSync(bin, [], { encoding: 'utf8' });
    assert.doesNotMatch(r.stdout, /^FAIL/m, r.stdout);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /^ok 10 checks$/m);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
