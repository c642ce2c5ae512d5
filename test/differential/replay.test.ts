/**
 * The differential corpora: answers real Linux 7.2 and 6.12 kernels (the
 * reference guests of ../shared/refkernel, built from Debian's
 * linux-source-7.2 and linux-source-6.12 by scripts/refkernel.sh) gave to
 * seeded random syscall programs, recorded by `npm run differential --
 * --kernel V --record`. CI replays them under `uiommu run --kernel V` and
 * wants every call to answer the same (return value, errno, every byte of
 * the argument region):
 * /dev/iommu with the selftest mock, and the container, group and cdev of
 * each of the reference guest's functions (edu, e1000, nvme on `refguest`).
 * Skipped when the program cannot be built (no gcc or no Debian source).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { it } from 'node:test';

const ROOT = resolve(import.meta.dirname, '../..');

/** Each corpus: the kernel, the scenario, its seeds (from 1, 200 calls each) and the calls that makes. */
const CORPORA = [
  ['7.2', 'iommufd', 50, '10000'],
  ['7.2', 'edu', 25, '5000'],
  ['7.2', 'e1000', 25, '5000'],
  ['7.2', 'nvme', 25, '5000'],
  ['6.12', 'iommufd', 50, '10000'],
  ['6.12', 'edu', 25, '5000'],
  ['6.12', 'e1000', 25, '5000'],
  ['6.12', 'nvme', 25, '5000'],
] as const;

for (const [kernel, scenario, seeds, calls] of CORPORA) {
  it(`the recorded ${scenario} corpus (${calls} calls) answers the same under --kernel ${kernel}`, {
    timeout: 20 * 60_000,
  }, (t) => {
    const r = spawnSync(
      'node',
      [
        '--import',
        'tsx',
        'scripts/differential.ts',
        '--replay',
        '--kernel',
        kernel,
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
        `^${scenario} \\(${kernel}\\): ${calls} calls compared \\(recorded corpus\\), 0 seeds differ$`,
        'm',
      ),
      r.stdout,
    );
    assert.equal(r.status, 0);
  });
}
