/**
 * The kernel's iommufd_fail_nth (tools/testing/selftests/iommu, Debian's
 * linux-source-7.2, built outside the repository into ~/.cache/uiommu by
 * `npm run kernel-selftest -- 7.2 iommufd_fail_nth`) under `uiommu run
 * --host mock --cap-add sys_resource`: fault injection is found enabled
 * (debugfs failslab, fail-nth), every test sweeps its injection points and
 * passes. `device` needs the 7.2 selftest ABI (an 8-byte
 * iommu_hwpt_selftest) and is left to the 7.2 profile. Skips when the
 * program has not been built.
 * @slow: runs the kernel selftest under uiommu run (left out of npm run test:quick)
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
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
];

test('iommufd_fail_nth (Linux 7.2) passes with faults injected', {
  skip:
    !existsSync(PROGRAM) &&
    `${PROGRAM} is not built (npm run kernel-selftest -- 7.2 iommufd_fail_nth)`,
}, () => {
  const r = spawnSync(
    process.execPath,
    [
      join(ROOT, 'bin/uiommu.js'),
      'run',
      '--host',
      'mock',
      '--cap-add',
      'sys_resource',
      '--',
      PROGRAM,
      ...TESTS.flatMap((t) => ['-t', t]),
    ],
    { encoding: 'utf8', timeout: 600_000, cwd: join(CACHE, 'kselftest-7.2') },
  );
  assert.doesNotMatch(r.stdout, /SKIP/, 'fault injection found enabled');
  for (const t of TESTS)
    assert.match(r.stdout, new RegExp(`^ok \\d+ basic_fail_nth\\.${t}$`, 'm'), r.stdout);
  assert.match(r.stdout, new RegExp(`# Totals: pass:${TESTS.length} fail:0`));
  assert.doesNotMatch(r.stderr, /model bug/, r.stderr);
});
