/**
 * The kernel's iommufd_fail_nth (tools/testing/selftests/iommu, Debian's
 * linux-source-7.2, built outside the repository into ~/.cache/uiommu by
 * `npm run kernel-selftest -- 7.2 iommufd_fail_nth`) under `uiommu run
 * --host mock --kernel 7.2 --cap-add sys_resource`: fault injection is
 * found enabled (debugfs failslab, fail-nth), faults are really injected
 * (the trace shows calls failing with ENOMEM) and all 8 tests pass.
 * Skips when the program has not been built.
 * @slow: runs the kernel selftest under uiommu run (left out of npm run test:quick)
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ROOT } from './c-program.ts';

const CACHE = process.env.UIOMMU_CACHE ?? join(homedir(), '.cache/uiommu');
const PROGRAM = join(CACHE, 'kselftest-7.2/iommufd_fail_nth');
const TESTS = [
  'basic',
  'map_domain',
  'map_file_domain',
  'map_two_domains',
  'access_rw',
  'access_pin',
  'access_pin_domain',
  'device',
];

test('iommufd_fail_nth (Linux 7.2) passes with faults injected', {
  skip:
    !existsSync(PROGRAM) &&
    `${PROGRAM} is not built (npm run kernel-selftest -- 7.2 iommufd_fail_nth)`,
}, (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'uiommu-fail-nth-'));
  const trace = join(dir, 'trace.jsonl');
  const r = spawnSync(
    process.execPath,
    [
      join(ROOT, 'bin/uiommu.js'),
      'run',
      '--host',
      'mock',
      '--kernel',
      '7.2',
      '--trace-json',
      trace,
      '--cap-add',
      'sys_resource',
      '--',
      PROGRAM,
    ],
    { encoding: 'utf8', timeout: 600_000, cwd: join(CACHE, 'kselftest-7.2') },
  );
  assert.doesNotMatch(r.stdout, /SKIP/, 'fault injection found enabled');
  for (const t of TESTS)
    assert.match(r.stdout, new RegExp(`^ok \\d+ basic_fail_nth\\.${t}$`, 'm'), r.stdout);
  assert.match(r.stdout, new RegExp(`# Totals: pass:${TESTS.length} fail:0`));
  assert.doesNotMatch(r.stderr, /model bug/, r.stderr);
  const injected = readFileSync(trace, 'utf8')
    .split('\n')
    .filter((l) => l.includes('"errno":"ENOMEM"')).length;
  rmSync(dir, { recursive: true, force: true });
  t.diagnostic(`${injected} calls failed with an injected ENOMEM`);
  assert.ok(injected > 10, `faults injected: ${injected} calls failed with ENOMEM`);
});
