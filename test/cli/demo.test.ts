import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runDemo } from '../../src/cli/demo.ts';
import { runPowerDemo } from '../../src/cli/demo-power.ts';

test('the x86 demo gets every expected answer, traced', () => {
  const lines: string[] = [];
  assert.equal(
    runDemo((l) => lines.push(l)),
    0,
  );
  assert.ok(
    lines.some(
      (l) =>
        l.startsWith('ioctl(3, IOMMU_IOAS_MAP, {') &&
        l.includes('= -1 EEXIST (File exists) <') &&
        l.endsWith('overlaps an existing mapping; iopt_check_iova>'),
    ),
  );
  assert.ok(lines.includes('# pinned pages left on the host: 0'));
});

test('the POWER demo: a hot-added group joins both windows', () => {
  const lines: string[] = [];
  assert.equal(
    runPowerDemo((l) => lines.push(l)),
    0,
  );
  assert.ok(
    lines.some(
      (l) =>
        l.startsWith('ioctl(3<vfio-container-spapr>, VFIO_IOMMU_SPAPR_TCE_CREATE,') &&
        l.includes('start_addr=0x800000000000000'),
    ),
  );
  assert.ok(
    lines.includes(
      '# group 2 joined: same domain, windows [0x0, 0x3fffffff] [0x800000000000000, 0x80000003fffffff]',
    ),
  );
});
