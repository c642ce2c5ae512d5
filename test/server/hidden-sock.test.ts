/**
 * The library's socket is invisible to a real process under `uiommu run`
 * (test/server/hidden-sock.c): absent from its /proc fd and fdinfo listings,
 * ENOENT by path, POLLNVAL to poll, EBADF to select and epoll, parked out of
 * the program's fd range and following its RLIMIT_NOFILE.
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

test('the library socket: not listed, not found, POLLNVAL/EBADF, out of range and following the limit', () => {
  runCProgram(dir, 'hidden-sock', ['--host', 'mock'], 37);
});
