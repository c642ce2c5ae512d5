/**
 * The channel between the library and the engine (docs/engine-protocol.md,
 * *Channel*) from a real process (test/server/channel.c): the same answers
 * with the channel off (UIOMMU_CHANNEL=0, every call on the socket), on with
 * engine and program on one CPU (nobody spins) and on where they may run
 * apart (both sides may spin); calls from nested signal handlers while the
 * interrupted calls wait; two threads; a fork child; a process scribbling
 * over its own channel beside a sibling; children killed mid-call; calls
 * after the doorbell was closed behind the library's back.
 *
 * @slow: builds and runs a C program under uiommu run (left out of npm run test:quick)
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { buildCProgram, ROOT } from './c-program.ts';

const dir = mkdtempSync(join(tmpdir(), 'uiommu-channel-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const bin = buildCProgram(dir, 'channel');

/** Where the engine and the program run: anywhere, or both pinned to CPU 0. */
type Placement = 'apart' | 'one-cpu';

const taskset = spawnSync('taskset', ['-c', '0', 'true']).status === 0;

/** `channel mode n` under uiommu run; its standard output (exit 0 and no FAIL line asserted). */
function channel(
  mode: string,
  n: number,
  opts: { off?: boolean; at?: Placement; run?: string[] } = {},
): string {
  const args = [
    join(ROOT, 'bin/uiommu.js'),
    'run',
    ...(opts.run ?? []),
    '--',
    bin,
    mode,
    String(n),
  ];
  const pinned = opts.at === 'one-cpu';
  const r = spawnSync(
    pinned ? 'taskset' : process.execPath,
    pinned ? ['-c', '0', process.execPath, ...args] : args,
    {
      encoding: 'utf8',
      timeout: 120_000,
      env: { ...process.env, UIOMMU_CHANNEL: opts.off ? '0' : '1' },
    },
  );
  assert.doesNotMatch(r.stdout, /^FAIL/m, r.stdout);
  assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
  assert.doesNotMatch(r.stderr, /model bug/);
  assert.match(r.stdout, opts.off ? /^channel none$/m : /^channel mapped$/m);
  return r.stdout;
}

const answers = (out: string) => out.replace(/^channel .*\n/m, '');

test('the same answers (errnos, write-backs, EFAULT for wild pointers) with the channel off and on', (t) => {
  const off = answers(channel('answers', 0, { off: true }));
  assert.match(off, /^IOVA_RANGES wild arg = -1 errno 14$/m);
  assert.match(off, /^IOAS_UNMAP = 0 errno 0 length 10000$/m);
  assert.equal(answers(channel('answers', 0)), off);
  if (!taskset) return t.skip('no taskset: the one-CPU placement is not run');
  assert.equal(answers(channel('answers', 0, { at: 'one-cpu' })), off);
});

test('calls from nested signal handlers while the interrupted calls wait: all answered right', (t) => {
  const on = channel('signals', 1000);
  assert.match(on, /nested slot calls some$/m, 'handlers called in while calls were waiting');
  assert.match(on, /^ok signals$/m);
  assert.match(channel('signals', 300, { off: true }), /^ok signals$/m);
  if (!taskset) return t.skip('no taskset: the one-CPU placement is not run');
  assert.match(channel('signals', 500, { at: 'one-cpu' }), /nested slot calls some$/m);
});

test('two threads calling at once: every answer right', () => {
  assert.match(channel('threads', 500), /^ok threads$/m);
});

test('a fork child gets a channel of its own; both answered right', () => {
  const out = channel('fork', 300);
  assert.match(out, /^child channels 1 then 2$/m, 'the inherited one, then its own');
  assert.match(out, /^ok fork$/m);
});

test("a process scribbling over its own channel: its sibling's calls answer right during and after", () => {
  assert.match(channel('scribble', 300), /^ok scribble$/m);
});

test('the doorbell (an eventfd) wakes the engine; closed behind the library, DOORBELL frames do', (t) => {
  assert.match(channel('bell', 300), /^ok bell$/m);
  if (!taskset) return t.skip('no taskset: the one-CPU placement (every call rings) is not run');
  assert.match(channel('bell', 300, { at: 'one-cpu' }), /^ok bell$/m);
});

test('children killed mid-call: the next calls answer right, each child is released', () => {
  const state = join(dir, 'kill-state.json');
  assert.match(channel('kill', 30, { run: ['--dump-state', state] }), /^ok kill$/m);
  const { processes } = JSON.parse(readFileSync(state, 'utf8')) as { processes: unknown[] };
  assert.equal(processes.length, 1, 'only the parent is served at the end');
});
