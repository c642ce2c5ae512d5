/**
 * Figures the README states that the code can confirm: the count of
 * IOMMU_TEST_CMD ops the mock serves (the OPS table of
 * src/iommufd/selftest.ts, one `[IOMMU_TEST_OP.X, handler]` row each).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { IOMMU_TEST_OP } from '../src/abi/iommufd-test.ts';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..');

test('README: the number of IOMMU_TEST_CMD ops is the number the selftest serves', () => {
  const readme = readFileSync(join(REPO, 'README.md'), 'utf8');
  const said = /(\d+) IOMMU_TEST_CMD ops/.exec(readme);
  assert.ok(said, 'README names a count of IOMMU_TEST_CMD ops');
  const source = readFileSync(join(REPO, 'src/iommufd/selftest.ts'), 'utf8');
  const served = new Set([...source.matchAll(/^ {2}\[IOMMU_TEST_OP\.(\w+),/gm)].map((m) => m[1]));
  for (const op of served) assert.ok(op! in IOMMU_TEST_OP, `${op} is an IOMMU_TEST_OP`);
  assert.equal(Number(said[1]), served.size);
});
