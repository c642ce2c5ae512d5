/**
 * ACCESS_RW on memfd pages in a real process under `uiommu run`
 * (test/server/access-rw-file.c): the engine's mapping of the file gives
 * the bytes the program sees, for pinned and unpinned pages, on a memfd
 * whose seals are final and on one sealed against shrinking; a truncate by
 * the program behind the engine's back is EFAULT past the new end, bytes
 * past it within its last page stay in the page (as on Linux 7.2, which
 * answers the program alike), and the engine goes on serving. With pages
 * pinned, then the memfd truncated or shared memory mapped anew at the same
 * address: without SLOW_PATH the copy goes through the program's current
 * mapping (EFAULT past the new end, the bytes before it written; the new
 * memory's bytes), with SLOW_PATH within one page too, across pages through
 * the pinned (old) pages.
 * Checked on the reference kernel (/work/shared/refkernel, boot.sh,
 * Linux 7.2.6, 7 Dec 2026): the same static binary printed 59 "ok" lines
 * and no FAIL with --pinned-outlive-truncate, 57 without (its two extra
 * checks — a pinned page keeps its bytes after the file is truncated — are
 * a known limit of the engine, src/host/remote-mm.ts).
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
  runCProgram(dir, 'access-rw-file', ['--host', 'mock', '--kernel', '7.2'], 57);
});
