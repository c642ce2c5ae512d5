/**
 * The x86-64 decoder of the BAR trap (native/x86-decode.c): the C unit test
 * in test/native/x86-decode.c generates its cases with the assembler, so
 * it needs `as` and `objcopy` (binutils) next to `cc`.
 *
 * @slow: assembles and runs the decoder's C unit test (left out of npm run test:quick)
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { arch, tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

const HERE = import.meta.dirname;
const haveBinutils = spawnSync('sh', ['-c', 'command -v as && command -v objcopy']).status === 0;
const skip =
  arch() !== 'x64' ? 'the decoder is for x86-64' : !haveBinutils ? 'no as/objcopy' : false;

test('x86_decode agrees with the assembler on every generated form', { skip }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'uiommu-x86-'));
  try {
    const bin = join(dir, 'x86-decode');
    execFileSync('cc', [
      '-O2',
      '-Wall',
      '-Wextra',
      '-o',
      bin,
      join(HERE, 'x86-decode.c'),
      join(HERE, '../../native/preload/x86-decode.c'),
    ]);
    const r = spawnSync(bin, [dir], { encoding: 'utf8' });
    assert.doesNotMatch(r.stdout, /^FAIL/m, r.stdout);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    const m = /^ok (\d+) cases$/m.exec(r.stdout);
    assert.ok(m && Number(m[1]) > 10_000, r.stdout);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
