/**
 * Poll readiness of engine files in a real process under `uiommu run --host
 * mock` (test/server/pollable.c): the fault queue fd and the vEVENTQ fd are
 * not readable while empty, readable after TRIGGER_IOPF / TRIGGER_VEVENT,
 * and not readable again once read or auto-responded, as poll, epoll and
 * select see them; a thread and a forked child blocked in poll wake up, and
 * edge-triggered epoll is woken by each new event.
 *
 * @slow: builds and runs a C program under uiommu run (left out of npm run test:quick)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { runCProgram } from './c-program.ts';

const dir = mkdtempSync(join(tmpdir(), 'uiommu-pollable-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('fault queue and vEVENTQ fds of a real process are pollable (poll, epoll, select)', () => {
  runCProgram(dir, 'pollable', ['--host', 'mock'], 98);
});
