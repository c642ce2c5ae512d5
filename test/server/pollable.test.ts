/**
 * Poll readiness of engine files in a real process under `uiommu run --host
 * mock` (test/server/pollable.c): the fault queue fd and the vEVENTQ fd are
 * not readable while empty, readable after TRIGGER_IOPF / TRIGGER_VEVENT,
 * and not readable again once read or auto-responded, as poll, epoll and
 * select see them; a thread and a forked child blocked in poll wake up, and
 * edge-triggered epoll is woken by each new event.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, test } from 'node:test';

const ROOT = resolve(import.meta.dirname, '../..');
const dir = mkdtempSync(join(tmpdir(), 'uiommu-pollable-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('fault queue and vEVENTQ fds of a real process are pollable (poll, epoll, select)', () => {
  const bin = join(dir, 'pollable');
  execFileSync('cc', [
    '-O2',
    '-Wall',
    '-I',
    join(ROOT, 'examples'),
    '-o',
    bin,
    join(import.meta.dirname, 'pollable.c'),
    '-pthread',
  ]);
  const r = spawnSync(
    process.execPath,
    [join(ROOT, 'bin/uiommu.js'), 'run', '--host', 'mock', '--', bin],
    { encoding: 'utf8', timeout: 60_000 },
  );
  assert.doesNotMatch(r.stdout, /^FAIL/m, r.stdout);
  assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
  assert.equal(r.stdout.match(/^ok /gm)?.length, 98, r.stdout);
  assert.doesNotMatch(r.stderr, /model bug/);
});
