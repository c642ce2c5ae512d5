/**
 * SPAPR v2 UNMAP_DMA under unmap leases (docs/engine-protocol.md, *Unmap
 * leases*) from a real process (test/server/unmap-lease.c) on the powernv
 * preset: random MAP/UNMAP/CREATE/REMOVE programs answer, trace and leave
 * the state exactly as with leases off; a full ring, a fork child, two
 * threads, a client scribbling on its ring and a client killed mid-storm.
 *
 * @slow: builds and runs a C program under uiommu run (left out of npm run test:quick)
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { buildCProgram, ROOT, runCProgram } from './c-program.ts';

const dir = mkdtempSync(join(tmpdir(), 'uiommu-unmap-lease-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const POWERNV = ['--host', 'powernv'];

interface Run {
  out: string;
  trace: string;
  state: string;
}

/** `unmap-lease equiv SEED N` with leases on or off: its answers, trace and final state, pids left out. */
function equiv(bin: string, seed: string, lease: boolean, observed: boolean): Run {
  const tag = `${seed}-${lease}`;
  const files = observed
    ? ['--trace', join(dir, `trace-${tag}`), '--dump-state', join(dir, `state-${tag}`)]
    : [];
  const r = spawnSync(
    process.execPath,
    [join(ROOT, 'bin/uiommu.js'), 'run', ...POWERNV, ...files, '--', bin, 'equiv', seed, '3000'],
    {
      encoding: 'utf8',
      timeout: 120_000,
      env: { ...process.env, UIOMMU_UNMAP_LEASE: lease ? '1' : '0' },
    },
  );
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.doesNotMatch(r.stderr, /model bug/);
  if (!observed) return { out: r.stdout, trace: '', state: '' };
  const state = JSON.parse(readFileSync(join(dir, `state-${tag}`), 'utf8'));
  delete state.time;
  return {
    out: r.stdout,
    trace: readFileSync(join(dir, `trace-${tag}`), 'utf8').replace(/^\[pid \d+\] /gm, ''),
    state: JSON.stringify(state)
      .replace(/"pid":\d+/g, '"pid"')
      .replace(/"\d+:(\d+)"/g, '"pid:$1"')
      .replace(/\[pid \d+\] /g, ''),
  };
}

test('random MAP/UNMAP/CREATE/REMOVE: leases change no answer, trace line or state', () => {
  const bin = buildCProgram(dir, 'unmap-lease');
  for (const seed of ['7', '0x2545f491']) {
    const on = equiv(bin, seed, true, true);
    const off = equiv(bin, seed, false, true);
    assert.match(on.out, /^lease ring mapped$/m, 'the fast path was taken');
    assert.match(off.out, /^lease ring none$/m);
    const answers = (run: Run) => run.out.replace(/^lease ring .*\n/m, '');
    assert.equal(answers(on), answers(off));
    assert.ok((on.out.match(/^unmap .* = 0$/gm)?.length ?? 0) > 500, 'many unmaps succeeded');
    assert.equal(on.trace, off.trace);
    assert.equal(on.state, off.state);
    // untraced, plain records go straight to the container: the same answers
    assert.equal(answers(equiv(bin, seed, true, false)), answers(off));
  }
});

test('10,000 unmaps fill the ring several times; MAP and UNMAP answer after', () => {
  runCProgram(dir, 'unmap-lease', POWERNV, 3, ['storm', '10000']);
});

test("a fork child's unmaps are EPERM (not on its parent's ring); the parent's lease goes on", () => {
  runCProgram(dir, 'unmap-lease', POWERNV, 5, ['fork']);
});

test('two threads unmapping at once are all answered 0', () => {
  runCProgram(dir, 'unmap-lease', POWERNV, 2, ['threads']);
});

test('garbage on the ring is dropped or answered as the kernel; the lease ends; others are served', () => {
  runCProgram(dir, 'unmap-lease', POWERNV, 13, ['scribble']);
});

test('an unmap cutting a mapping while fail-nth is armed passes no injection point, as tce_iommu_clear', () => {
  runCProgram(dir, 'unmap-lease', POWERNV, 5, ['failnth']);
});

test('unmaps while another process revokes the lease again and again: all done, nothing left mapped', () => {
  const state = join(dir, 'race-state');
  runCProgram(dir, 'unmap-lease', [...POWERNV, '--dump-state', state], 1, ['race']);
  const containers: { backend: string | null; mappings: unknown[] }[] = JSON.parse(
    readFileSync(state, 'utf8'),
  ).containers;
  // the killed child's last container may still be listed: the dump is taken as each process
  // exits, and the engine can learn of the child's death after the parent's
  assert.deepEqual(
    containers.filter((c) => c.backend !== null).map((c) => [c.backend, c.mappings]),
    [['spapr', []]],
  );
  assert.deepEqual(
    containers.filter((c) => c.backend === null).map((c) => c.mappings),
    containers.length > 1 ? [[]] : [],
  );
});

test('a client killed mid-storm releases its group and container', () => {
  runCProgram(dir, 'unmap-lease', POWERNV, 3, ['kill']);
});
