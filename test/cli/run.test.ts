/**
 * @slow: runs real programs under uiommu run (left out of npm run test:quick)
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fail } from '../../src/abi/errno.ts';
import {
  type BackendFactory,
  hostIoctlAbi,
  PRELOAD_LIBRARY,
  runProgram,
} from '../../src/cli/run.ts';

/**
 * Backends that reach no real process: every access to user memory is
 * EFAULT and no readiness is mirrored (these tests' clients pass no pointers).
 */
const unreachableProcesses: BackendFactory = (kernel) => ({
  mmFor: () => {
    let alive = true;
    return {
      pageSize: kernel.memory.pageSize,
      get alive() {
        return alive;
      },
      resolve: () => fail('EFAULT', 'user memory not reachable', 'copy_from_user'),
      read: () => fail('EFAULT', 'user memory not reachable', 'copy_from_user'),
      write: () => fail('EFAULT', 'user memory not reachable', 'copy_from_user'),
      exit() {
        alive = false;
      },
    };
  },
});

/** A client speaking the engine protocol from a child process (plain JS, no preload needed). */
const CLIENT = `
const net = require('node:net');
const fs = require('node:fs');
fs.writeFileSync(process.argv[1], process.env.UIOMMU_ROOT);
const s = net.createConnection(process.env.UIOMMU_SOCK);
function frame(op, args, payload = Buffer.alloc(0)) {
  const b = Buffer.alloc(64 + payload.length);
  b.writeUInt32LE(op, 0); b.writeUInt32LE(payload.length, 4);
  b.writeInt32LE(process.pid, 8); b.writeInt32LE(process.pid, 12);
  args.forEach((a, i) => b.writeBigUInt64LE(BigInt.asUintN(64, BigInt(a)), 16 + 8 * i));
  payload.copy(b, 64);
  return b;
}
const reqs = [
  frame(1, [0]),
  frame(10, [3, 2], Buffer.from('/dev/iommu\\0')),
  frame(19, [], Buffer.from('/dev/vfio/vfio\\0')),
  frame(11, [3]),
];
let buf = Buffer.alloc(0); const rets = [];
s.on('data', (d) => {
  buf = Buffer.concat([buf, d]);
  while (buf.length >= 24 && buf.length >= 24 + buf.readUInt32LE(16)) {
    rets.push(Number(buf.readBigInt64LE(0)));
    buf = buf.subarray(24 + buf.readUInt32LE(16));
  }
  if (rets.length === reqs.length) { s.end(); process.exitCode = rets.join('') === '0010' ? 42 : 1; }
});
s.on('connect', () => s.write(Buffer.concat(reqs)));
`;

describe('uiommu run', () => {
  let dir: string;
  let preload: string | undefined;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'uiommu-run-test-'));
    // an empty shared object stands in for the preload library: the client speaks the protocol itself
    writeFileSync(join(dir, 'empty.c'), 'int uiommu_test_empty;\n');
    try {
      execFileSync('cc', ['-shared', '-fPIC', '-o', join(dir, 'empty.so'), join(dir, 'empty.c')]);
      preload = join(dir, 'empty.so');
    } catch {
      preload = undefined;
    }
  });

  after(() => rmSync(dir, { recursive: true, force: true }));

  it('serves the program over UIOMMU_SOCK, traces, exits with its status, removes its directory', async (t) => {
    if (!preload) return t.skip('no C compiler to build a stand-in preload library');
    const rootFile = join(dir, 'root.txt');
    const trace = join(dir, 'trace.txt');
    const traceJson = join(dir, 'trace.jsonl');
    const status = await runProgram(
      [process.execPath, '-e', CLIENT, rootFile],
      { preload, trace, traceJson },
      unreachableProcesses,
    );
    assert.equal(status, 42);
    const root = readFileSync(rootFile, 'utf8');
    assert.equal(existsSync(root), false, 'the private directory is gone');
    const lines = readFileSync(trace, 'utf8').trimEnd().split('\n');
    assert.match(lines[0]!, /^\[pid \d+\] openat\(AT_FDCWD, "\/dev\/iommu", O_RDWR\) = 3$/);
    assert.match(lines[1]!, /^\[pid \d+\] stat\("\/dev\/vfio\/vfio", \{st_mode=S_IFCHR\|0666, /);
    assert.match(lines[2]!, /^\[pid \d+\] close\(3\) = 0$/);
    const records = readFileSync(traceJson, 'utf8')
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.deepEqual(records.map((r) => [r.call, r.fd, r.ret, r.errno]).slice(0, -1), [
      ['openat', 3, 3, null],
      ['stat', -1, 0, null],
      ['close', 3, 0, null],
    ]);
    assert.equal(records.at(-1).state.at, 'exit', 'the last record is the state at exit');
  });

  it('exit status: the program’s code, 128+n for signal n, 127 when it cannot start', async (t) => {
    if (!preload) return t.skip('no C compiler to build a stand-in preload library');
    assert.equal(await runProgram(['sh', '-c', 'exit 3'], { preload }, unreachableProcesses), 3);
    assert.equal(
      await runProgram(['sh', '-c', 'kill -TERM $$'], { preload }, unreachableProcesses),
      128 + 15,
    );
    assert.equal(
      await runProgram([join(dir, 'no-such-program')], { preload }, unreachableProcesses),
      127,
    );
  });

  it('setup errors are status 1: a missing preload library, an unknown host, a bad trace file', async () => {
    const missing = join(dir, 'missing.so');
    assert.equal(await runProgram(['true'], { preload: missing }, unreachableProcesses), 1);
    if (!preload) return;
    assert.equal(
      await runProgram(['true'], { preload, host: 'no-such-preset' }, unreachableProcesses),
      1,
    );
    const unwritable = join(dir, 'no-such-dir/trace.txt');
    assert.equal(
      await runProgram(['true'], { preload, trace: unwritable }, unreachableProcesses),
      1,
    );
  });

  it('--ui serves the state behind the token while the program runs; --dump-state writes it', async (t) => {
    if (!preload) return t.skip('no C compiler to build a stand-in preload library');
    const go = join(dir, 'ui-go');
    const state = join(dir, 'ui-state.json');
    let checked: Promise<void> | undefined;
    const status = await runProgram(
      // the program waits until the checks are done
      ['sh', '-c', `while [ ! -f ${go} ]; do sleep 0.05; done`],
      {
        preload,
        ui: true,
        dumpState: state,
        onLiveView: (url) => {
          checked = (async () => {
            const u = new URL(url);
            assert.equal(u.hostname, '127.0.0.1');
            assert.equal((await fetch(`${u.origin}/state`)).status, 403);
            const s = await (await fetch(`${u.origin}/state${u.search}`)).json();
            assert.ok(Array.isArray(s.groups) && s.groups.length > 0, 'the x86 preset’s groups');
            assert.deepEqual([s.calls, s.warnings], [[], []]);
            assert.match(await (await fetch(url)).text(), /uiommu live view/);
          })().finally(() => writeFileSync(go, ''));
        },
      },
      unreachableProcesses,
    );
    assert.equal(status, 0);
    await checked;
    const dumped = JSON.parse(readFileSync(state, 'utf8'));
    assert.ok(dumped.time && Array.isArray(dumped.processes) && Array.isArray(dumped.contexts));
    assert.ok(Array.isArray(dumped.containers) && dumped.pinnedPages === '0');
  });

  it('the ioctl encoding is the machine’s: powerpc’s on ppc64 and mips, generic elsewhere', () => {
    assert.equal(hostIoctlAbi('ppc64'), 'powerpc');
    assert.equal(hostIoctlAbi('mipsel'), 'powerpc');
    assert.equal(hostIoctlAbi('x64'), 'generic');
    assert.equal(hostIoctlAbi('arm64'), 'generic');
    assert.equal(hostIoctlAbi('s390x'), 'generic');
  });

  it('`uiommu run -- sh -c "exit 3"` exits 3', (t) => {
    if (!existsSync(PRELOAD_LIBRARY)) return t.skip('native/build/libuiommu-preload.so not built');
    const r = spawnSync(
      process.execPath,
      [join(import.meta.dirname, '../../bin/uiommu.js'), 'run', '--', 'sh', '-c', 'exit 3'],
      { stdio: 'inherit' },
    );
    assert.equal(r.status, 3);
  });

  it('the command line’s --ui (node:http, loaded only then) prints the live view’s URL', (t) => {
    if (!existsSync(PRELOAD_LIBRARY)) return t.skip('native/build/libuiommu-preload.so not built');
    const r = spawnSync(
      process.execPath,
      [join(import.meta.dirname, '../../bin/uiommu.js'), 'run', '--ui', '--', 'true'],
      { encoding: 'utf8' },
    );
    assert.equal(r.status, 0, r.stderr);
    assert.match(
      r.stderr,
      /^uiommu run: live view at http:\/\/127\.0\.0\.1:\d+\/\?token=[0-9a-f]+$/m,
    );
  });

  it('a host with pageSize: the program sees its page size (getconf, i.e. sysconf); others the machine’s', (t) => {
    if (!existsSync(PRELOAD_LIBRARY)) return t.skip('native/build/libuiommu-preload.so not built');
    const pagesize = (host: string) =>
      execFileSync(
        process.execPath,
        [
          join(import.meta.dirname, '../../bin/uiommu.js'),
          'run',
          '--host',
          host,
          '--',
          'getconf',
          'PAGESIZE',
        ],
        { encoding: 'utf8' },
      ).trim();
    assert.equal(pagesize('pseries'), '65536');
    assert.equal(
      pagesize('powernv'),
      execFileSync('getconf', ['PAGESIZE'], { encoding: 'utf8' }).trim(),
    );
  });

  it('--trace-json ends with the kernel’s DMA state at exit: windows gone, nothing pinned', (t) => {
    if (!existsSync(PRELOAD_LIBRARY)) return t.skip('native/build/libuiommu-preload.so not built');
    const dir = mkdtempSync(join(tmpdir(), 'uiommu-state-'));
    try {
      const json = join(dir, 't.json');
      const example = join(import.meta.dirname, '../../native/build/examples/spapr-ddw');
      const r = spawnSync(
        process.execPath,
        [
          join(import.meta.dirname, '../../bin/uiommu.js'),
          'run',
          '--host',
          'powernv',
          '--trace-json',
          json,
          '--',
          example,
        ],
        { encoding: 'utf8' },
      );
      assert.equal(r.status, 0, r.stderr);
      const records = readFileSync(json, 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l));
      assert.ok(records.some((x) => x.request === 'VFIO_IOMMU_SPAPR_TCE_CREATE' && x.ret === 0));
      const last = records.at(-1);
      assert.equal(last.state.at, 'exit');
      assert.equal(last.state.pinnedPages, '0');
      assert.ok(last.state.groups.length > 0);
      assert.deepEqual(
        last.state.groups.filter((g: { domain: unknown }) => g.domain !== null),
        [],
        'every group blocked again',
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
