/**
 * The library's copies of the caller's own stack without a system call
 * (native/preload/stack-copy.c; test/server/stack-copy.c): threads, fork, vfork,
 * exec, a sigaltstack handler, a coroutine, wild pointers around the stack,
 * and a thread's stack pages mprotected, unmapped, moved and made guard
 * pages through libc.
 *
 * @slow: builds and runs a C program under uiommu run (left out of npm run test:quick)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { runCProgram } from './c-program.ts';

const dir = mkdtempSync(join(tmpdir(), 'uiommu-stack-copy-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('copies of the caller stack: direct where provably safe, staged elsewhere, EFAULT not SIGSEGV', () => {
  runCProgram(dir, 'stack-copy', ['--host', 'mock'], 30);
});
