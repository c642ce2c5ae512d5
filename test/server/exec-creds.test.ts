/**
 * A real process's credentials follow it across execve(2) under `uiommu run`
 * (test/server/exec-creds.c): after the new image drops CAP_IPC_LOCK and
 * lowers RLIMIT_MEMLOCK, the legacy type1 container's MAP_DMA is ENOMEM,
 * and succeeds again once CAP_IPC_LOCK is back.
 *
 * @slow: builds and runs a C program under uiommu run (left out of npm run test:quick)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { runCProgram } from './c-program.ts';

const dir = mkdtempSync(join(tmpdir(), 'uiommu-exec-creds-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('after exec, capset and setrlimit of the new image decide MAP_DMA', () => {
  runCProgram(dir, 'exec-creds', ['--host', 'x86'], 5);
});
