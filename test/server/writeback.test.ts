/**
 * An IOCTL's writes into the caller's memory made by the library from the
 * answer (test/server/writeback.c): out-fields and arrays land as the
 * kernel writes them; a struct made read-only behind the library's back
 * answers EFAULT; the argument bytes a request carries from the program's
 * memory (across a page end, unreadable, an integer).
 *
 * @slow: builds and runs a C program under uiommu run (left out of npm run test:quick)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { runCProgram } from './c-program.ts';

const dir = mkdtempSync(join(tmpdir(), 'uiommu-writeback-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('IOCTL write-back: out-fields land, a stale view of the maps answers EFAULT, per process', () => {
  runCProgram(dir, 'writeback', ['--host', 'mock'], 14);
});
