/**
 * IOMMU_TEST_CMD with a full fd table in a real process under `uiommu run`
 * (test/server/full-fd-table.c): the library reserves a spare fd only for
 * the ops that install a file (CREATE_ACCESS, DMABUF_GET), decided from the
 * argument bytes it sends, so ACCESS_RW succeeds as on Linux; the ops that
 * need an fd get the kernel's answer for a failed fd allocation from the
 * engine, after their own argument checks.
 *
 * @slow: builds and runs a C program under uiommu run (left out of npm run test:quick)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { runCProgram } from './c-program.ts';

const dir = mkdtempSync(join(tmpdir(), 'uiommu-full-fd-table-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('IOMMU_TEST_CMD with a full fd table answers as Linux 7.2', () => {
  runCProgram(dir, 'full-fd-table', ['--host', 'mock', '--kernel', '7.2'], 15);
});
