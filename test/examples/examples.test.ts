/**
 * The example C clients (examples/*.c, built by `npm ci` into
 * native/build/examples) run unmodified under `uiommu run`: each exits 0
 * only if every ioctl answer, errno and DMA result is the one it expects.
 * The traces decode shared ioctl numbers by fd kind.
 *
 * @slow: builds and runs the example C programs under uiommu run (left out of npm run test:quick)
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, describe, it } from 'node:test';

const ROOT = resolve(import.meta.dirname, '../..');
const UIOMMU = join(ROOT, 'bin/uiommu.js');
const dir = mkdtempSync(join(tmpdir(), 'uiommu-examples-'));
after(() => rmSync(dir, { recursive: true, force: true }));

interface Run {
  status: number | null;
  stdout: string;
  trace: string;
  json: Record<string, unknown>[];
}

function runExample(name: string, host: string, extra: readonly string[] = []): Run {
  const program = join(ROOT, 'native/build/examples', name);
  assert.ok(existsSync(program), `${program} missing: run make -C native`);
  const trace = join(dir, `${name}.trace`);
  const json = join(dir, `${name}.jsonl`);
  const r = spawnSync(
    process.execPath,
    [
      UIOMMU,
      'run',
      '--host',
      host,
      ...extra,
      '--trace',
      trace,
      '--trace-json',
      json,
      '--',
      program,
    ],
    { encoding: 'utf8', timeout: 120_000 },
  );
  return {
    status: r.status,
    stdout: r.stdout,
    trace: readFileSync(trace, 'utf8'),
    json: readFileSync(json, 'utf8')
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

function assertPassed(r: Run, name: string): void {
  assert.equal(r.status, 0, `${name} failed:\n${r.stdout}`);
  assert.match(r.stdout, new RegExp(`^PASS: ${name}$`, 'm'));
  assert.doesNotMatch(r.stdout, /^FAIL/m);
}

describe('examples under uiommu run', () => {
  it('(a) iommufd-cdev: bind, IOAS, HWPT, map, DMA both ways, faults, unmap', () => {
    const r = runExample('iommufd-cdev', 'x86');
    assertPassed(r, 'iommufd-cdev');
    assert.match(
      r.trace,
      /ioctl\(\d+<vfio-device>, VFIO_DEVICE_BIND_IOMMUFD, \{argsz=\d+, flags=0, iommufd=\d+, out_devid=[1-9]/,
    );
    assert.match(r.trace, /ioctl\(\d+, IOMMU_IOAS_MAP, .*\) = -1 EEXIST/);
    const maps = r.json.filter((e) => e.request === 'IOMMU_IOAS_MAP');
    assert.ok(maps.length >= 2, 'IOAS_MAP records in the JSON trace');
    assert.ok(maps.some((e) => e.errno === 'EEXIST'));
    const bind = r.json.find((e) => e.request === 'VFIO_DEVICE_BIND_IOMMUFD');
    assert.equal(bind?.fdKind, 'vfio-device');
  });

  it('(b) type1-container: 0x3b70 decodes as VFIO_IOMMU_GET_INFO on the legacy type1 container (the default)', () => {
    const r = runExample('type1-container', 'x86');
    assertPassed(r, 'type1-container');
    assert.match(r.trace, /ioctl\(\d+<vfio-container>, VFIO_IOMMU_GET_INFO, /);
    assert.doesNotMatch(r.trace, /SPAPR/);
    assert.match(r.stdout, /splitting a mapping fails with EINVAL \(vfio_iommu_type1\)/);
    // the split the program tries on purpose: its reason and kernel function
    assert.match(
      r.trace,
      / = -1 EINVAL \(Invalid argument\) <the range's end bisects the mapping at 0x10000000; vfio_dma_do_unmap>$/m,
    );
    const failed = r.json.find((e) => e.errno === 'EINVAL' && e.where === 'vfio_dma_do_unmap');
    assert.match(String(failed?.reason), /bisects the mapping/);
    assert.match(r.trace, /ioctl\(\d+<vfio-group>, VFIO_GROUP_SET_CONTAINER, \[\d+\]\) = 0/);
    assert.match(
      r.trace,
      /ioctl\(\d+<vfio-group>, VFIO_GROUP_GET_DEVICE_FD, "[0-9a-f:.]+"\) = \d+/,
    );
  });

  it('(b) type1-container on iommufd compat (--personality vfioContainer=iommufd)', () => {
    const r = runExample('type1-container', 'x86', ['--personality', 'vfioContainer=iommufd']);
    assertPassed(r, 'type1-container');
    assert.match(r.stdout, /splitting a mapping fails with ENOENT \(iommufd compat\)/);
    assert.match(r.trace, /ioctl\(\d+<vfio-container>, VFIO_IOMMU_GET_INFO, /);
  });

  it('(b) type1-container: warnings in the trace and JSON (its DMA after unmap), none with --no-warn; --dump-state', () => {
    const state = join(dir, 'state.json');
    const r = runExample('type1-container', 'x86', ['--dump-state', state]);
    assertPassed(r, 'type1-container');
    assert.match(
      r.trace,
      /^\[pid \d+\] --- warning dma-after-unmap: 0000:00:02\.0 DMA at 0x10000000 \(64 bytes, faulted at 0x10000000\) \d+ calls after that IOVA was unmapped; caused by: ioctl\(\d+<vfio-container>, VFIO_IOMMU_UNMAP_DMA, .* = 0 ---$/m,
    );
    assert.ok(r.json.some((e) => e.warning === 'dma-after-unmap' && typeof e.cause === 'string'));
    assert.doesNotMatch(r.stdout, /warning/, 'never in the program’s output');
    const s = JSON.parse(readFileSync(state, 'utf8'));
    assert.equal(s.processes.length, 1);
    assert.ok(s.calls.length > 10, 'the last calls');
    assert.ok(s.warnings.some((w: { id: string }) => w.id === 'dma-after-unmap'));
    assert.ok(
      s.faults.some((f: { iova: string }) => f.iova === '0x10000000'),
      JSON.stringify(s.faults),
    );
    const quiet = runExample('type1-container', 'x86', ['--no-warn']);
    assertPassed(quiet, 'type1-container');
    assert.doesNotMatch(quiet.trace, /--- warning/);
  });

  it('(c) spapr-ddw: 0x3b70 decodes as VFIO_IOMMU_SPAPR_TCE_GET_INFO on a SPAPR container', () => {
    const r = runExample('spapr-ddw', 'powernv');
    assertPassed(r, 'spapr-ddw');
    assert.match(r.trace, /ioctl\(\d+<vfio-container-spapr>, VFIO_IOMMU_SPAPR_TCE_GET_INFO, /);
    assert.match(
      r.trace,
      /ioctl\(\d+<vfio-container-spapr>, VFIO_IOMMU_SPAPR_TCE_CREATE, .*\) = 0/,
    );
  });

  it('(d) fork-torture: inherited fds, closes in both orders, a child killed mid-ioctl', () => {
    const r = runExample('fork-torture', 'x86');
    assertPassed(r, 'fork-torture');
    const pids = new Set(r.json.filter((e) => !('state' in e)).map((e) => e.pid));
    assert.ok(pids.size >= 3, `requests from several processes (${pids.size})`);
  });
});
