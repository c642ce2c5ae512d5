/**
 * ACCESS_RW on memfd pages in a real process under `uiommu run`
 * (test/server/access-rw-file.c): the engine's mapping of the file gives
 * the bytes the program sees, for pinned and unpinned pages, on a memfd
 * whose seals are final and on one sealed against shrinking; a truncate by
 * the program behind the engine's back is EFAULT past the new end and the
 * engine goes on serving.
 *
 * @slow: builds and runs a C program under uiommu run (left out of npm run test:quick)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { runCProgram } from './c-program.ts';

const dir = mkdtempSync(join(tmpdir(), 'uiommu-access-rw-file-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('ACCESS_RW through the engine mapping of a memfd, and past a truncate', () => {
  runCProgram(dir, 'access-rw-file', ['--host', 'mock', '--kernel', '7.2'], 29);
});
