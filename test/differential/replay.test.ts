/**
 * The differential corpus: answers a real Linux 7.2 (the reference guest of
 * ../shared/refkernel, built from Debian's linux-source-7.2) gave to seeded
 * random syscall programs, recorded by `npm run differential -- --record`.
 * CI replays them under `uiommu run --kernel 7.2` and wants every call to
 * answer the same (return value, errno, every byte of the argument region):
 * /dev/iommu with the selftest mock, and the container, group and cdev of
 * each of the reference guest's functions (edu, e1000, nvme on `refguest`).
 * Skipped when the program cannot be built (no gcc or no Debian source).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { it } from 'node:test';

const ROOT = resolve(import.meta.dirname, '../..');

/** Each corpus: the scenario, its seeds (from 1, 200 calls each) and the calls that makes. */
const CORPORA = [
  ['iommufd', 50, '10000'],
  ['edu', 25, '5000'],
  ['e1000', 25, '5000'],
  ['nvme', 25, '5000'],
] as const;

for (const [scenario, seeds, calls] of CORPORA) {
  it(`the recorded ${scenario} corpus (${calls} calls) answers the same under --kernel 7.2`, {
    timeout: 20 * 60_000,
  }, (t) => {
    const r = spawnSync(
      'node',
      [
        '--import',
        'tsx',
        'scripts/differential.ts',
        '--replay',
        '--scenario',
        scenario,
        '--seeds',
        String(seeds),
        '--calls',
        '200',
      ],
      { cwd: ROOT, encoding: 'utf8', maxBuffer: 1 << 26 },
    );
    if (r.status === 2 || /cannot fetch|gcc:/.test(r.stderr)) {
      return t.skip(`cannot build the program: ${r.stderr.trim().split('\n').at(-1)}`);
    }
    assert.match(
      r.stdout,
      new RegExp(
        `^${scenario}: ${calls} calls compared \\(recorded corpus\\), 0 seeds differ$`,
        'm',
      ),
      r.stdout,
    );
    assert.equal(r.status, 0);
  });
}
