/**
 * The library's socket, staging memfd and doorbell are invisible to a real process
 * under `uiommu run` (test/server/hidden-sock.c): absent from its /proc fd
 * and fdinfo listings, ENOENT by path, POLLNVAL to poll, EBADF to select and
 * epoll, parked out of the program's fd range and following its
 * RLIMIT_NOFILE; a fork child stages in a file and rings a doorbell of its own.
 *
 * @slow: builds and runs a C program under uiommu run (left out of npm run test:quick)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { runCProgram } from './c-program.ts';

const dir = mkdtempSync(join(tmpdir(), 'uiommu-hidden-sock-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('the library socket, stage and doorbell: not listed, not found, POLLNVAL/EBADF, out of range and following the limit', () => {
  runCProgram(dir, 'hidden-sock', ['--host', 'mock'], 91);
});
