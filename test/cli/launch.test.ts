/**
 * @slow: runs real programs under the native launcher (bin/uiommu → native/build/uiommu)
 *
 * The engine is started through `node` on PATH, so these tests put a
 * stand-in first on PATH: one that holds the engine back until the test
 * opens a gate (what a program does before the engine serves is then
 * certain, not a race), or one that fails. The gated stand-in first writes
 * the engine's directory and NODE_EXTRA_CA_CERTS to a file (it waits then).
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import {
  chmodSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type BackendFactory, runProgram } from '../../src/cli/run.ts';
import { Kernel } from '../../src/host/kernel.ts';
import { PRESETS } from '../../src/host/topology/index.ts';
import { ownedFolders } from '../../src/server/owned.ts';
import { writeFakeTree } from '../../src/server/sysfs.ts';

const ROOT = join(import.meta.dirname, '../..');
const BIN = join(ROOT, 'bin/uiommu');
const NODE_CLI = join(ROOT, 'bin/uiommu.js');
const LAUNCHER = join(ROOT, 'native/build/uiommu');
const built = existsSync(LAUNCHER) && existsSync(join(ROOT, 'native/build/libuiommu-preload.so'));

/** Resolves when `cond` holds (checked every 10 ms). */
async function until(cond: () => boolean): Promise<void> {
  while (!cond()) await new Promise((r) => setTimeout(r, 10));
}

/** The exit status of a spawned child as a shell reports it. */
async function statusOf(child: ChildProcess): Promise<number> {
  const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
  return code ?? 128 + (signal === 'SIGKILL' ? 9 : signal === 'SIGTERM' ? 15 : 0);
}

/** What a program wrote to `path`, once it is there whole (a line). */
async function written(path: string): Promise<string> {
  const line = () => (existsSync(path) ? readFileSync(path, 'utf8') : '');
  await until(() => line().endsWith('\n'));
  return line().trim();
}

/** `bin/uiommu ARGS` in the background, with `node` from `path`: its status and what it printed. */
function launch(args: readonly string[], path = process.env.PATH, detached = false) {
  const child = spawn(BIN, args, {
    env: { ...process.env, PATH: path },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached,
  });
  const out = { stdout: '', stderr: '' };
  child.stdout.on('data', (d) => {
    out.stdout += d;
  });
  child.stderr.on('data', (d) => {
    out.stderr += d;
  });
  return { child, out, status: statusOf(child) };
}

/** A process is gone (reaped: a zombie would still answer). */
function gone(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

describe('the native launcher (uiommu run beside a lazy engine)', {
  skip: !built && 'native/build/uiommu is not built (make -C native)',
}, () => {
  let dir: string;
  let gate: string;
  /** PATH whose `node` starts the engine only once `gate` exists. */
  let gatedPath: string;
  /** Where the gated `node` writes "$UIOMMU_ENGINE_DIR [$NODE_EXTRA_CA_CERTS]" as it starts to wait. */
  let engineEnv: string;
  /** PATH whose `node` fails at once with status 3. */
  let failingPath: string;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'uiommu-launch-test-'));
    gate = join(dir, 'gate');
    engineEnv = join(dir, 'engine-env');
    const gated = join(dir, 'gated');
    const failing = join(dir, 'failing');
    for (const d of [gated, failing]) spawnSync('mkdir', [d]);
    writeFileSync(
      join(gated, 'node'),
      `#!/bin/sh\necho "$UIOMMU_ENGINE_DIR [$NODE_EXTRA_CA_CERTS]" > "${engineEnv}"\nwhile [ ! -e "${gate}" ]; do sleep 0.01; done\nexec "${process.execPath}" "$@"\n`,
    );
    writeFileSync(
      join(failing, 'node'),
      '#!/bin/sh\necho "stand-in node: cannot start" >&2\nexit 3\n',
    );
    chmodSync(join(gated, 'node'), 0o755);
    chmodSync(join(failing, 'node'), 0o755);
    gatedPath = `${gated}:${process.env.PATH}`;
    failingPath = `${failing}:${process.env.PATH}`;
  });

  after(() => rmSync(dir, { recursive: true, force: true }));

  /** A fresh file name in the test directory. */
  let n = 0;
  const file = (name: string) => join(dir, `${name}-${++n}`);

  it('the library waits only for the fake tree’s top folders: every preset’s tree lies in them', () => {
    const source = readFileSync(join(ROOT, 'native/preload/engine-wait.c'), 'utf8');
    const list = /g_served\[\] = \{([^}]*)\}/.exec(source)?.[1];
    assert.ok(list, 'engine-wait.c lists g_served');
    const served = [...list.matchAll(/"([^"]+)"/g)].map((m) => m[1]!);
    const under = (p: string) => served.some((s) => p === s || p.startsWith(`${s}/`));
    for (const name of Object.keys(PRESETS)) {
      const tree = mkdtempSync(join(dir, `tree-${name}-`));
      writeFakeTree(new Kernel({ host: name, abi: 'generic' }), tree);
      for (const top of ['sys', 'dev'])
        for (const e of readdirSync(join(tree, top)))
          assert.ok(under(`/${top}/${e}`), `${name}: /${top}/${e} is outside ${served.join(' ')}`);
      for (const owned of ownedFolders(new Kernel({ host: name, abi: 'generic' })))
        assert.ok(under(owned), `${name}: owned ${owned}`);
    }
    // the launcher runs the default host only, and assumes its programs see the machine's pages
    assert.equal(PRESETS.x86!.pageSize, undefined);
  });

  it('`run -- PROGRAM` that needs no engine ends while the engine cannot even start; it is stopped, the directory removed', async () => {
    const out = file('env');
    const r = spawnSync(
      BIN,
      [
        'run',
        '--',
        'sh',
        '-c',
        'echo "$UIOMMU_READY" > "$1"; cat /dev/null; ls /tmp > /dev/null',
        'sh',
        out,
      ],
      { env: { ...process.env, PATH: gatedPath }, encoding: 'utf8', timeout: 60_000 },
    );
    assert.equal(r.status, 0, r.stderr);
    assert.equal(existsSync(gate), false, 'the engine never started');
    const [pid, ready] = readFileSync(out, 'utf8').trim().split(':');
    assert.equal(gone(Number(pid)), true, 'the engine was stopped');
    assert.equal(existsSync(dirname(ready!)), false, 'the private directory is gone');
  });

  it('a program that stats /dev/iommu at once waits for the engine, then sees the device; its forked child too', async (t) => {
    const started = file('started');
    const trace = file('trace');
    t.after(() => rmSync(gate, { force: true }));
    const script =
      'echo "$UIOMMU_ROOT" > "$1"; ( [ -c /dev/iommu ] && echo child ); [ -c /dev/vfio/vfio ] && echo parent';
    const run = launch(
      ['run', '--trace-json', trace, '--', 'sh', '-c', script, 'sh', started],
      gatedPath,
    );
    const root = await written(started);
    assert.equal(existsSync(join(root, 'sys')), false, 'no tree yet: the engine is held back');
    assert.equal(run.child.exitCode, null, 'the program waits for the engine');
    writeFileSync(gate, '');
    assert.equal(await run.status, 0, run.out.stderr);
    assert.equal(run.out.stdout, 'child\nparent\n');
    const calls = readFileSync(trace, 'utf8')
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l))
      .filter((r) => r.call)
      .map((r) => r.text.replace(/,.*/, ''));
    assert.deepEqual(calls, ['stat("/dev/iommu"', 'stat("/dev/vfio/vfio"']);
    assert.equal(existsSync(dirname(root)), false, 'the private directory is gone');
  });

  it('the example C clients (iommufd cdev flow, fork torture) pass under the launcher', () => {
    for (const name of ['iommufd-cdev', 'fork-torture']) {
      const r = spawnSync(BIN, ['run', '--', join(ROOT, 'native/build/examples', name)], {
        encoding: 'utf8',
      });
      assert.equal(r.status, 0, `${name}: ${r.stdout}${r.stderr}`);
      assert.match(r.stdout, new RegExp(`^PASS: ${name}$`, 'm'));
    }
  });

  it('an exec that drops the environment keeps the wait (UIOMMU_READY is kept like UIOMMU_SOCK)', async (t) => {
    const started = file('started');
    t.after(() => rmSync(gate, { force: true }));
    const script = 'echo > "$1"; exec env -i /bin/sh -c "[ -c /dev/iommu ] && echo char"';
    const run = launch(['run', '--', 'sh', '-c', script, 'sh', started], gatedPath);
    await written(started);
    writeFileSync(gate, '');
    assert.equal(await run.status, 0, run.out.stderr);
    assert.equal(run.out.stdout, 'char\n');
  });

  it('exit status: the program’s code, 128+n for signal n, 127 with Node’s message when it cannot start', () => {
    const run = (...args: string[]) => spawnSync(BIN, ['run', '--', ...args], { encoding: 'utf8' });
    assert.equal(run('sh', '-c', 'exit 3').status, 3);
    assert.equal(run('sh', '-c', 'kill -USR2 $$').status, 128 + 12);
    const missing = run('no-such-program-here');
    const before = spawnSync(process.execPath, [NODE_CLI, 'run', '--', 'no-such-program-here'], {
      encoding: 'utf8',
    });
    assert.equal(missing.status, 127);
    assert.equal(missing.stderr, before.stderr);
    assert.match(
      missing.stderr,
      /^uiommu run: no-such-program-here: spawn no-such-program-here ENOENT\n$/,
    );
  });

  it('SIGTERM goes to the program; a terminal’s Ctrl-C reaches the program only, and the engine still writes its output', async () => {
    for (const [sig, code] of [
      ['SIGTERM', 143],
      ['SIGINT', 130],
    ] as const) {
      const started = file('started');
      const traceJson = file('trace');
      const script = 'echo "$UIOMMU_ROOT" > "$1"; exec sleep 60';
      // its own process group, as a terminal's foreground job: SIGINT goes to the group
      const run = launch(
        ['run', '--trace-json', traceJson, '--', 'sh', '-c', script, 'sh', started],
        process.env.PATH,
        true,
      );
      const root = await written(started);
      // the engine is ready (it installed its handlers): what we check is what it does at the end
      await until(() => existsSync(join(dirname(root), 'ready')));
      if (sig === 'SIGINT') process.kill(-run.child.pid!, sig);
      else run.child.kill(sig);
      assert.equal(await run.status, code, sig);
      const last = readFileSync(traceJson, 'utf8').trimEnd().split('\n').at(-1)!;
      assert.equal(JSON.parse(last).state.at, 'exit', `${sig}: the state at exit is written`);
      assert.equal(existsSync(dirname(root)), false, `${sig}: the directory is gone`);
    }
  });

  it('--dump-state and --trace-json of a program that never touched uiommu: complete, as Node’s run writes them', () => {
    const outputs = (cmd: string[]) => {
      const dump = file('dump');
      const json = file('json');
      const args = ['run', '--dump-state', dump, '--trace-json', json, '--', 'true'];
      const r = spawnSync(cmd[0]!, [...cmd.slice(1), ...args], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      const { time: _, ...state } = JSON.parse(readFileSync(dump, 'utf8'));
      return { state, json: readFileSync(json, 'utf8') };
    };
    const launched = outputs([BIN]);
    const node = outputs([process.execPath, NODE_CLI]);
    // under Node `true` connected at start (the dump, written as it exits, lists it); here it never did
    assert.deepEqual(launched.state.processes, []);
    assert.deepEqual(
      node.state.processes.map((p: { fds: unknown[] }) => p.fds),
      [[]],
    );
    assert.deepEqual({ ...launched.state, processes: [] }, { ...node.state, processes: [] });
    assert.equal(launched.json, node.json);
    assert.match(launched.json, /^\{"state":\{"at":"exit",.*"groups":\[\{/);
  });

  it('an option the engine refuses (--host, --kernel, --cap-add, --personality) is reported with Node’s message and status; the program never runs', () => {
    for (const [option, message] of [
      [['--host', 'no-such-host'], /^uiommu run: --host no-such-host: unknown host preset/],
      [['--kernel=9.9'], /^error: option '--kernel <version>' argument '9\.9' is invalid/],
      [['--cap-add', 'sys_admin'], /^error: option '--cap-add <capability>' argument 'sys_admin'/],
      [['--personality', 'nope=1'], /unknown personality setting 'nope=1'/],
    ] as const) {
      const ran = file('ran');
      const args = [
        'run',
        '--kernel',
        '7.2',
        ...option,
        '--',
        'sh',
        '-c',
        'echo > "$1"',
        'sh',
        ran,
      ];
      const launched = spawnSync(BIN, args, { encoding: 'utf8' });
      const node = spawnSync(process.execPath, [NODE_CLI, ...args], { encoding: 'utf8' });
      assert.equal(launched.status, 1, option[0]);
      assert.equal(launched.status, node.status, option[0]);
      assert.equal(launched.stderr, node.stderr, option[0]);
      assert.match(launched.stderr, message);
      assert.equal(existsSync(ran), false, `${option[0]}: the program never ran`);
    }
  });

  it('with --host, --kernel, --cap-add or --personality the program starts once the engine serves, with the host’s page size', async (t) => {
    const started = file('started');
    t.after(() => rmSync(gate, { force: true }));
    // the ready file exists when the program starts; pseries programs see 64 KiB pages
    const script =
      'r=$(dirname "$UIOMMU_ROOT")/ready; [ -e "$r" ] && echo "served [$UIOMMU_READY] $UIOMMU_PAGE_SIZE"';
    const run = launch(
      [
        'run',
        '--host=pseries',
        '--kernel',
        '6.12',
        '--cap-add',
        'ipc_lock',
        '--personality',
        'unmapEmpty=ENOENT',
        '--',
        'sh',
        '-c',
        `${script}; echo > "$1"`,
        'sh',
        started,
      ],
      gatedPath,
    );
    await written(engineEnv);
    assert.equal(existsSync(started), false, 'held back with the engine');
    writeFileSync(gate, '');
    assert.equal(await run.status, 0, run.out.stderr);
    assert.equal(run.out.stdout, 'served [] 65536\n');
  });

  it('a signal before a gated program starts ends the run with its status; the directory is removed', async (t) => {
    t.after(() => rmSync(gate, { force: true }));
    rmSync(engineEnv, { force: true });
    const ran = file('ran');
    const run = launch(
      ['run', '--host', 'mock', '--', 'sh', '-c', 'echo > "$1"', 'sh', ran],
      gatedPath,
    );
    const [engineDir] = (await written(engineEnv)).split(' ');
    assert.equal(existsSync(engineDir!), true);
    run.child.kill('SIGTERM');
    assert.equal(await run.status, 143);
    assert.equal(existsSync(ran), false, 'the program never ran');
    assert.equal(existsSync(engineDir!), false, 'the directory is gone');
  });

  it('the engine runs without NODE_EXTRA_CA_CERTS (it makes no TLS connection); the program keeps it', async (t) => {
    t.after(() => rmSync(gate, { force: true }));
    for (const options of [[], ['--kernel', '7.2']]) {
      rmSync(engineEnv, { force: true });
      rmSync(gate, { force: true });
      const run = launch(
        ['run', ...options, '--', 'sh', '-c', 'echo "[$NODE_EXTRA_CA_CERTS]"'],
        gatedPath,
      );
      assert.match(await written(engineEnv), / \[\]$/, `${options}: the engine's`);
      writeFileSync(gate, '');
      assert.equal(await run.status, 0, run.out.stderr);
      assert.equal(run.out.stdout, `[${process.env.NODE_EXTRA_CA_CERTS ?? ''}]\n`);
    }
  });

  it('an engine that fails beside a running program: the program is killed, the status is the engine’s, the directory removed', async () => {
    const started = file('started');
    const script = 'echo "$$ $UIOMMU_ROOT" > "$1"; exec sleep 60';
    const run = launch(['run', '--', 'sh', '-c', script, 'sh', started], failingPath);
    assert.equal(await run.status, 3);
    assert.equal(run.out.stderr, 'stand-in node: cannot start\n');
    // killed before it wrote (the file may be empty) or after
    const line = existsSync(started) ? readFileSync(started, 'utf8') : '';
    if (line.endsWith('\n')) {
      const [pid, root] = line.trim().split(' ');
      assert.equal(gone(Number(pid)), true, 'the program was killed');
      assert.equal(existsSync(dirname(root!)), false);
    }
  });

  it('a program waiting for an engine that dies with the launcher gives up instead of hanging', async (t) => {
    const started = file('started');
    const result = file('result');
    const script =
      'echo "$UIOMMU_ROOT" > "$1"; if [ -e /dev/iommu ]; then echo yes; else echo no; fi > "$2"';
    const run = launch(['run', '--', 'sh', '-c', script, 'sh', started, result], gatedPath);
    const root = await written(started);
    t.after(() => rmSync(dirname(root), { recursive: true, force: true }));
    run.child.kill('SIGKILL');
    assert.equal(await written(result), 'no', 'no engine: no /dev/iommu');
    assert.equal(existsSync(gate), false, 'the engine never served');
  });

  it('the engine beside the launcher refuses a host whose programs would need another page size', async () => {
    const engineDir = mkdtempSync(join(dir, 'engine-'));
    const noProcesses: BackendFactory = () => ({
      mmFor: () => assert.fail('no process connects'),
    });
    const said: string[] = [];
    const write = process.stderr.write;
    process.stderr.write = ((text: string) => said.push(text) > 0) as typeof write;
    try {
      const status = await runProgram(
        ['true'],
        { host: 'pseries', launched: { dir: engineDir, statusFd: -1, gated: false } },
        noProcesses,
      );
      assert.equal(status, 1);
    } finally {
      process.stderr.write = write;
    }
    assert.deepEqual(said, ['uiommu run: the launcher cannot run host pseries\n']);
    assert.equal(existsSync(engineDir), false, 'its tree and directory are removed');
  });

  it('the engine gets V8’s flags on its command line; the program inherits none of them', () => {
    const js = file('flags.js');
    writeFileSync(
      js,
      'console.log(JSON.stringify([process.execArgv, process.env.NODE_OPTIONS ?? null]))\n',
    );
    // once the engine serves (the stat waits for it), its command line, then a Node program's flags
    const script =
      '[ -c /dev/iommu ] && tr "\\0" " " < "/proc/$(echo "$UIOMMU_READY" | cut -d: -f1)/cmdline" && echo && "$1" "$2"';
    const { NODE_OPTIONS: _, ...env } = process.env;
    const r = spawnSync(BIN, ['run', '--', 'sh', '-c', script, 'sh', process.execPath, js], {
      encoding: 'utf8',
      env,
    });
    assert.equal(r.status, 0, r.stderr);
    const [engine, program] = r.stdout.split('\n');
    assert.match(engine!, /^node --single-threaded-gc \S*\/bin\/uiommu\.js run -- sh -c /);
    assert.equal(program, '[[],null]');
    // the npm bin without the launcher passes the same flags
    assert.match(
      readFileSync(BIN, 'utf8'),
      /\nexec node --single-threaded-gc "\$root\/bin\/uiommu\.js" "\$@"\n/,
    );
  });

  it('anything but run with the options it knows runs Node’s CLI as before', () => {
    const version = spawnSync(BIN, ['--version'], { encoding: 'utf8' });
    assert.equal(version.stdout, '0.1.0\n');
    // an option without its value: commander's to report; Node runs the program (no UIOMMU_READY)
    const cmd = ['run', '--host', '--', 'sh', '-c', 'echo "[$UIOMMU_READY]"'];
    const r = spawnSync(BIN, cmd, { encoding: 'utf8' });
    const node = spawnSync(process.execPath, [NODE_CLI, ...cmd], { encoding: 'utf8' });
    assert.equal(r.status, node.status);
    assert.equal(r.stderr, node.stderr);
    const launched = spawnSync(BIN, ['run', '--', 'sh', '-c', 'echo "[$UIOMMU_READY]"'], {
      encoding: 'utf8',
    });
    assert.match(launched.stdout, /^\[\d+:\/.*\/ready\]\n$/);
  });
});
