/**
 * The differential corpus: answers a real Linux 7.2 (the reference guest of
 * ../shared/refkernel, built from Debian's linux-source-7.2) gave to seeded
 * random syscall programs, recorded by `npm run differential -- --record`.
 * CI replays them under `uiommu run --kernel 7.2` and wants every call to
 * answer the same (return value, errno, every byte of the argument region).
 * Skipped when the program cannot be built (no gcc or no Debian source).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { it } from 'node:test';

const ROOT = resolve(import.meta.dirname, '../..');

it('the recorded /dev/iommu corpus (10,000 calls) answers the same under --kernel 7.2', {
  timeout: 20 * 60_000,
}, (t) => {
  const r = spawnSync(
    'node',
    ['--import', 'tsx', 'scripts/differential.ts', '--replay', '--seeds', '50', '--calls', '200'],
    { cwd: ROOT, encoding: 'utf8', maxBuffer: 1 << 26 },
  );
  if (r.status === 2 || /cannot fetch|gcc:/.test(r.stderr)) {
    return t.skip(`cannot build the program: ${r.stderr.trim().split('\n').at(-1)}`);
  }
  assert.match(
    r.stdout,
    /^iommufd: 10000 calls compared \(recorded corpus\), 0 seeds differ$/m,
    r.stdout,
  );
  assert.equal(r.status, 0);
});
