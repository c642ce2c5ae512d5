/**
 * The preload library (native/preload/) against a fake engine: the C
 * client in test/native/client.c runs under LD_PRELOAD, prints what libc
 * calls returned, and the fake engine records the frames it received.
 * The client is built twice: plain, and with _FORTIFY_SOURCE and 64-bit
 * file offsets (which call __open_2, __read_chk, open64, stat64, fcntl64...).
 *
 * @slow: builds and runs C clients under the preload library (left out of npm run test:quick)
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { iommufdCmdNumber } from '../../src/abi/iommufd.ts';
import { iommuTestCmdNumber } from '../../src/abi/iommufd-test.ts';
import { vfioIoctlNumber } from '../../src/abi/vfio.ts';
import { FakeEngine, OP, procStatus, REQ, type Request } from './fake-engine.ts';

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = join(HERE, '../..');
const LIB = join(REPO, 'native/build/libuiommu-preload.so');
const BDF = '0000:00:01.0';

const tmp = mkdtempSync(join(tmpdir(), 'uiommu-preload-'));
const root = join(tmp, 'root');
const engine = new FakeEngine();
const variants = {
  plain: join(tmp, 'client'),
  fortify64: join(tmp, 'client-fortify64'),
};

/** The fake /sys and /dev tree, laid out like sysfs (relative links). */
function makeRoot(): void {
  const dev = join(root, 'sys/devices/pci0000:00', BDF);
  mkdirSync(join(dev, 'vfio-dev/vfio0'), { recursive: true });
  writeFileSync(join(dev, 'vendor'), '0x1b36\n');
  writeFileSync(join(dev, 'vfio-dev/vfio0/dev'), '511:0\n');
  mkdirSync(join(root, 'sys/kernel/iommu_groups/3/devices'), { recursive: true });
  symlinkSync('../../../kernel/iommu_groups/3', join(dev, 'iommu_group'));
  mkdirSync(join(root, 'sys/bus/pci/devices'), { recursive: true });
  symlinkSync(`../../../devices/pci0000:00/${BDF}`, join(root, 'sys/bus/pci/devices', BDF));
  mkdirSync(join(root, 'dev/vfio/devices'), { recursive: true });
}

before(async () => {
  execFileSync('make', ['-s', '-C', join(REPO, 'native'), 'build/libuiommu-preload.so']);
  const src = join(HERE, 'client.c');
  execFileSync('cc', ['-O2', '-Wall', '-o', variants.plain, src, '-ldl', '-pthread']);
  execFileSync('cc', [
    '-O2',
    '-Wall',
    '-D_FORTIFY_SOURCE=2',
    '-D_FILE_OFFSET_BITS=64',
    '-o',
    variants.fortify64,
    src,
    '-ldl',
    '-pthread',
  ]);
  const early = join(HERE, 'early.c');
  execFileSync('cc', ['-O2', '-shared', '-fPIC', '-o', join(tmp, 'libearly.so'), early]);
  execFileSync('cc', [
    '-O2',
    '-DEARLY_MAIN',
    '-o',
    join(tmp, 'early'),
    early,
    `-L${tmp}`,
    '-learly',
    `-Wl,-rpath,${tmp}`,
  ]);
  makeRoot();
  await engine.listen();
});

after(async () => {
  await engine.close();
  rmSync(tmp, { recursive: true, force: true });
  rmSync(engine.dir, { recursive: true, force: true });
});

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Every value printed for a key, in order. */
  all(key: string): string[];
  /** The single value printed for a key, as a number. */
  n(key: string): number;
  /** The single value printed for a key. */
  s(key: string): string;
}

function baseEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of Object.keys(env)) {
    if (k.startsWith('UIOMMU_') || k === 'LD_PRELOAD') delete env[k];
  }
  return env;
}

/** Runs the client; `engineOn` false leaves UIOMMU_SOCK unset, `preload` false drops the library. */
function run(
  args: string[],
  opts: { bin?: string; engineOn?: boolean; preload?: boolean } = {},
): Promise<Run> {
  const env = baseEnv();
  if (opts.preload ?? true) env.LD_PRELOAD = LIB;
  env.UIOMMU_ROOT = root;
  if (opts.engineOn ?? true) env.UIOMMU_SOCK = engine.path;
  return new Promise((resolve, reject) => {
    const child = spawn(opts.bin ?? variants.plain, args, { env, timeout: 20_000 });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    child.on('error', reject);
    child.on('close', (code) => {
      const lines = stdout.split('\n').filter((l) => l.includes('='));
      const all = (key: string) =>
        lines.filter((l) => l.startsWith(`${key}=`)).map((l) => l.slice(key.length + 1));
      const one = (key: string) => {
        const v = all(key);
        assert.equal(v.length, 1, `one value for ${key} in:\n${stdout}\n${stderr}`);
        return v[0]!;
      };
      resolve({ code, stdout, stderr, all, n: (k) => Number(one(k)), s: one });
    });
  });
}

const ops = (reqs: Request[]) => reqs.map((r) => r.op);
const fdOf = (r: Request) => Number(BigInt.asIntN(64, r.a[0]!));

test('protocol.h names the spare-fd ioctls by the same numbers as src/abi', () => {
  const h = readFileSync(join(REPO, 'native/protocol.h'), 'utf8');
  const def = (name: string) => Number(new RegExp(`#define ${name} (0x[0-9a-f]+)`).exec(h)![1]);
  assert.equal(
    def('UIOMMU_IOC_VFIO_GROUP_GET_DEVICE_FD'),
    vfioIoctlNumber('generic', 'VFIO_GROUP_GET_DEVICE_FD') & 0xffff,
  );
  assert.equal(
    def('UIOMMU_IOC_IOMMU_FAULT_QUEUE_ALLOC'),
    iommufdCmdNumber('generic', 'IOMMU_FAULT_QUEUE_ALLOC') & 0xffff,
  );
  assert.equal(
    def('UIOMMU_IOC_IOMMU_VEVENTQ_ALLOC'),
    iommufdCmdNumber('generic', 'IOMMU_VEVENTQ_ALLOC') & 0xffff,
  );
  assert.equal(def('UIOMMU_IOC_IOMMU_TEST_CMD'), iommuTestCmdNumber('generic') & 0xffff);
  assert.equal(
    def('UIOMMU_IOC_VFIO_DEVICE_FEATURE'),
    vfioIoctlNumber('generic', 'VFIO_DEVICE_FEATURE') & 0xffff,
  );
  assert.equal(REQ.FEATURE, def('UIOMMU_IOC_VFIO_DEVICE_FEATURE'));
  assert.equal(REQ.FAULT_ALLOC, def('UIOMMU_IOC_IOMMU_FAULT_QUEUE_ALLOC'));
  assert.equal(REQ.VEVENTQ_ALLOC, def('UIOMMU_IOC_IOMMU_VEVENTQ_ALLOC'));
  assert.equal(REQ.GET_DEVICE_FD, def('UIOMMU_IOC_VFIO_GROUP_GET_DEVICE_FD'));
  assert.equal(REQ.TEST_CMD, def('UIOMMU_IOC_IOMMU_TEST_CMD'));
});

for (const [variant, bin] of Object.entries(variants)) {
  describe(`client built ${variant}`, () => {
    test('engine fds: open, poll, dup family, ioctl spare fds, read/write, fstat, close', async () => {
      engine.reset();
      const r = await run(['fds'], { bin });
      assert.equal(r.code, 0, r.stderr);
      const pid = engine.requests[0]!.pid;
      const low = r.n('expect_fd');

      // open: the lowest free real fd, OPEN with that fd, the flags and the path
      assert.equal(r.n('fd'), low);
      assert.equal(r.n('open_errno_kept'), 4321);
      const opens = engine.of(OP.OPEN, pid);
      assert.deepEqual(
        opens.map((o) => [fdOf(o), Number(o.a[1]) & 0o3, o.path]),
        [
          [low, 2, '/dev/iommu'],
          [low + 1, 2, '/dev/vfio/99'],
          [low + 1, 2, '/dev/iommu'],
          [low, 2, '/dev/iommu'],
        ],
      );
      assert.equal(r.n('fd_cloexec'), 0);
      assert.equal(r.n('poll'), 1);
      assert.equal(r.n('revents'), 0x1 | 0x4); // POLLIN | POLLOUT
      // a refused open returns the engine's errno and frees the reserved fd
      assert.equal(r.n('enoent_ret'), -1);
      assert.equal(r.n('enoent_errno'), 2);
      assert.equal(r.n('after_enoent_free'), low + 1);
      assert.equal(r.n('fd2'), low + 1);
      assert.equal(r.n('fd2_cloexec'), 1);
      assert.equal(Number(opens[2]!.a[1]) & 0o2000000, 0o2000000); // O_CLOEXEC passed on

      // dup family: DUP after the real call; dup2 of a plain fd onto an engine fd is a CLOSE
      const d = r.n('dup');
      assert.equal(d, low + 2);
      assert.equal(r.n('dup2'), 30);
      assert.equal(r.n('dupfd_cloexec'), 40);
      assert.equal(r.n('dupfd_cloexec_flag'), 1);
      assert.deepEqual(
        engine.of(OP.DUP, pid).map((q) => [fdOf(q), Number(q.a[1])]),
        [
          [low, d],
          [low, 30],
          [low, 40],
        ],
      );
      assert.equal(r.n('dup2_onto_engine'), low + 1);
      assert.equal(r.n('dup2_bad_old'), -9);
      assert.equal(r.n('ioctl_after_dup2_onto'), -25); // fd2 is now a copy of stdin
      const closes = engine.of(OP.CLOSE, pid).map(fdOf);
      assert.deepEqual(closes.slice(0, 4), [low + 1, d, 30, 40]);
      assert.equal(r.n('close_dup'), 0);

      // ioctl: request and arg as passed, errno untouched on success and set on failure
      const ioctls = engine.of(OP.IOCTL, pid);
      const echo = ioctls.find((q) => q.a[2] === 0x123456n)!;
      assert.equal(fdOf(echo), low);
      assert.equal(echo.a[1], 0x3b80n);
      assert.equal(echo.a[3], 0xffffffffffffffffn); // no spare
      assert.equal(r.n('ioctl_echo'), 0x123456);
      assert.equal(echo.payload.length, 0, 'an unreadable argument sends nothing');
      // the argument's bytes: the rest of its page, at most UIOMMU_IOCTL_ARG_MAX (512)
      const argOf = (key: string, nth = 0) =>
        ioctls.filter((q) => Number(q.a[2] & 0xffffffn) === r.n(key) && q.a[2] !== 0x123456n)[nth]!;
      const head = Buffer.from([16, 0, 0, 0, 0x44, 0x33, 0x22, 0x11]);
      assert.deepEqual(
        argOf('arg_page_start').payload,
        Buffer.concat([head, Buffer.alloc(504, 0x5a)]),
      );
      assert.deepEqual(argOf('arg_across').payload, head, 'not past its page, readable or not');
      assert.deepEqual(argOf('arg_cut', 1).payload, head, 'not past a page it cannot read');
      assert.equal(r.n('errno_kept'), 1234);
      assert.equal(r.n('ioctl_enotty'), -25);
      // FIOCLEX/FIONCLEX set the fd's own flag and never reach the engine
      assert.deepEqual(
        [r.n('fioclex'), r.n('fioclex_flag'), r.n('fionclex'), r.n('fionclex_flag')],
        [0, 1, 0, 0],
      );
      assert.ok(ioctls.every((q) => (Number(q.a[1]) & 0xff00) === 0x3b00));

      // the spare: reserved at the lowest free fd for the four file-creating ioctls only
      const spare = r.n('spare_expect');
      const spared = ioctls.filter((q) => q.a[3] !== 0xffffffffffffffffn);
      assert.deepEqual(
        spared.map((q) => [Number(q.a[1]), Number(q.a[3])]),
        [
          [REQ.FAULT_ALLOC, spare],
          [REQ.TEST_CMD, spare],
          [REQ.FEATURE, spare],
          [0x20000000 | REQ.FAULT_ALLOC, spare],
          [REQ.GET_DEVICE_FD, spare],
          [REQ.VEVENTQ_ALLOC, spare],
        ],
      );
      // kept when the engine installed a file there...
      assert.equal(r.n('fault_alloc'), 0);
      assert.ok(r.n('spare_open') >= 0);
      assert.equal(r.n('spare_revents'), 0x5);
      assert.equal(r.n('spare_ioctl'), 7);
      assert.equal(r.n('ppc_spare_engine'), 9);
      // ...an anonymous file keeps the eventfd's own fstat
      assert.equal(r.n('fstat_anon'), 0);
      assert.equal(r.n('fstat_anon_chr'), 0);
      assert.equal(r.n('close_spare'), 0);
      // ...and closed when it did not
      assert.equal(r.n('test_cmd'), 0);
      assert.equal(r.n('test_cmd_spare_open'), -1);
      // IOMMU_TEST_CMD: CREATE_ACCESS gets one, ACCESS_RW and an unreadable argument none;
      // the bytes sent are the copy the library decided from
      const testCmds = ioctls.filter((q) => Number(q.a[1]) === REQ.TEST_CMD);
      assert.deepEqual(
        testCmds.map((q) => [BigInt.asIntN(64, q.a[3]), q.payload.subarray(0, 8).toString('hex')]),
        [
          [BigInt(spare), '4800000005000000'],
          [-1n, '4800000008000000'],
          [-1n, ''],
        ],
      );
      assert.deepEqual([r.n('test_cmd_rw'), r.n('test_cmd_unreadable')], [0, 0]);
      // VFIO_DEVICE_FEATURE: a GET of DMA_BUF gets one, a PROBE of it and another feature none
      const features = ioctls.filter((q) => Number(q.a[1] & 0xffffn) === REQ.FEATURE);
      assert.deepEqual(
        features.map((q) => BigInt.asIntN(64, q.a[3])),
        [BigInt(spare), -1n, -1n],
      );
      assert.deepEqual(
        [r.n('feature_dmabuf'), r.n('feature_probe'), r.n('feature_other')],
        [0, 0, 0],
      );

      // read/write/pread/pwrite go to the engine with the caller's buffer address
      assert.equal(r.n('read'), 42);
      assert.equal(r.n('write'), 7);
      assert.equal(r.n('pread'), 16);
      assert.equal(r.n('pwrite'), 8);
      const [rd] = engine.of(OP.READ, pid);
      assert.equal(rd!.a[2], 64n);
      assert.ok(rd!.a[1] > 0n);
      assert.equal(engine.of(OP.PREAD, pid)[0]!.a[3], 1n << 40n);
      assert.equal(engine.of(OP.PWRITE, pid)[0]!.a[3], 0x77n);

      // fstat of a device fd: S_IFCHR with the engine's numbers
      assert.equal(r.n('fstat'), 0);
      assert.equal(r.n('fstat_chr'), 1);
      assert.equal(r.n('fstat_perm'), 0o660);
      assert.equal(r.n('fstat_major'), 10);
      assert.equal(r.n('fstat_minor'), 59);

      // close sends CLOSE; a second close is the real EBADF; nothing leaks
      assert.equal(r.n('close'), 0);
      assert.equal(engine.of(OP.CLOSE, pid).map(fdOf).at(-1), low);
      assert.equal(r.n('close_again'), -9);
      assert.equal(r.n('open_var'), low);
      assert.equal(r.n('read_var'), 42);
      assert.equal(r.n('pread_var'), 5);
      assert.equal(r.n('final_free'), low);
    });

    test('paths: STAT for engine nodes, the fake tree for /sys and /dev', async () => {
      engine.reset();
      const r = await run(['paths'], { bin });
      assert.equal(r.code, 0, r.stderr);
      for (const k of ['stat', 'lstat', 'statx', 'xstat', 'access', 'stat_vfio_dir', 'stat_null']) {
        assert.equal(r.n(k), 0, k);
      }
      assert.equal(r.n('stat_chr'), 1);
      assert.equal(r.n('stat_perm'), 0o660);
      assert.equal(r.n('stat_rdev'), 1);
      assert.equal(r.n('lstat_rdev'), 1);
      assert.equal(r.n('statx_chr'), 1);
      assert.equal(r.n('statx_rdev'), 10_059);
      assert.equal(r.n('xstat_rdev'), 1);
      assert.equal(r.n('stat_missing'), -2);
      assert.equal(r.n('access_missing'), -2);
      assert.deepEqual(
        engine.requests.filter((q) => q.op === OP.STAT).map((q) => q.path),
        [
          '/dev/iommu',
          '/dev/iommu',
          '/dev/iommu',
          '/dev/iommu',
          '/dev/vfio/99',
          '/dev/iommu',
          '/dev/vfio/99',
        ],
      );
      // /dev/vfio and /dev/vfio/devices are the fake tree's directories; /dev/null is real
      assert.equal(r.n('stat_vfio_isdir'), 1);
      assert.equal(r.n('stat_devices_isdir'), 1);
      assert.equal(r.n('stat_null_rdev'), 1);
      assert.equal(engine.of(OP.OPEN).length, 0);

      assert.equal(r.s('readlink'), '../../../kernel/iommu_groups/3');
      assert.equal(r.s('realpath'), '/sys/kernel/iommu_groups/3');
      assert.equal(r.s('realpath_dev'), `/sys/devices/pci0000:00/${BDF}`);
      assert.equal(r.n('opendir'), 1);
      assert.deepEqual(r.all('entry'), ['vfio0']);
      assert.equal(r.n('scandir'), 3);
      assert.equal(r.n('fopen'), 1);
      assert.equal(r.s('fopen_vendor'), '0x1b36');
      assert.equal(r.s('open_vendor'), '0x1b36');
      assert.equal(r.n('access_vendor'), 0);
      assert.equal(r.n('relative_access'), -2);
    });

    test('/proc/<pid>/status: PROC_STATUS for served pids (open, openat, fopen), libc otherwise', async () => {
      engine.reset();
      const r = await run(['status'], { bin });
      assert.equal(r.code, 0, r.stderr);
      const pid = r.n('pid');
      const ppid = r.n('ppid');
      // /proc/self and /proc/<own pid>: the engine's content, read-only, lowest fd, errno kept
      for (const k of ['self', 'pid', 'fopen_e']) {
        assert.equal(r.s(`${k}_name`), 'fake', k);
        assert.equal(r.n(`${k}_Pid`), pid, k);
        assert.equal(r.n(`${k}_VmLck`), 8, k);
        assert.equal(r.n(`${k}_VmPin`), 12, k);
      }
      assert.equal(r.n('fopen_errno_kept'), 4321);
      assert.equal(r.n('fopen_fd'), r.n('expect_fd'));
      assert.equal(r.n('open_fd'), r.n('expect_fd'));
      assert.equal(r.n('open_cloexec'), 1);
      assert.equal(r.n('open_write'), -9); // EBADF: opened read-only
      assert.equal(r.n('openat_cloexec'), 0);
      assert.equal(r.n('openat_len'), procStatus(pid).length);
      assert.equal(r.n('fopen_e_cloexec'), 1);
      // the parent is no process of the engine (ENOENT): the real file, as is a relative path
      assert.equal(r.n('parent_Pid'), ppid);
      assert.notEqual(r.s('parent_name'), 'fake');
      assert.equal(r.n('relative_Pid'), pid);
      assert.notEqual(r.s('relative_name'), 'fake');
      assert.equal(r.n('final_free'), r.n('expect_fd'));
      assert.deepEqual(
        engine.of(OP.PROC_STATUS).map((q) => Number(q.a[0])),
        [pid, pid, pid, pid, ppid],
      );
      assert.ok(engine.of(OP.PROC_STATUS).every((q) => q.pid === pid));
    });
  });
}

test('fork: FORK_BEGIN/FORK_END around it; the child says HELLO kind 1 on its own connection', async () => {
  engine.reset();
  const r = await run(['fork']);
  assert.equal(r.code, 0, r.stderr);
  const parent = r.n('parent_pid');
  const child = r.n('child_pid');
  assert.equal(r.n('forked'), child);
  const pconn = engine.of(OP.HELLO, parent)[0]!.conn;
  const [begin, vbegin] = engine.of(OP.FORK_BEGIN, parent);
  const [end, vend] = engine.of(OP.FORK_END, parent);
  assert.equal(begin!.conn, pconn);
  assert.ok(end!.a[0] > 0n);
  assert.equal(Number(end!.a[1]), child);
  const [hello] = engine.of(OP.HELLO, child);
  assert.equal(hello!.a[0], 1n);
  assert.equal(hello!.a[1], end!.a[0]);
  assert.notEqual(hello!.conn, pconn);
  // the child uses the inherited fd through its own connection, forks, then closes it
  assert.deepEqual(ops(engine.requests.filter((q) => q.pid === child)), [
    OP.HELLO,
    OP.IOCTL,
    OP.FORK_BEGIN,
    OP.FORK_END,
    OP.CLOSE,
  ]);
  assert.ok(engine.requests.filter((q) => q.pid === child).every((q) => q.conn === hello!.conn));
  assert.equal(r.n('child_ioctl'), 0xc0de);
  assert.equal(r.n('child_close'), 0);
  // the grandchild inherits the child's table
  const grand = r.n('grandchild_pid');
  const [cend] = engine.of(OP.FORK_END, child);
  assert.equal(Number(cend!.a[1]), grand);
  const [ghello] = engine.of(OP.HELLO, grand);
  assert.equal(ghello!.a[0], 1n);
  assert.equal(ghello!.a[1], cend!.a[0]);
  assert.equal(r.n('grandchild_ioctl'), 0x9a9a);
  assert.equal(r.n('parent_ioctl'), 0xbeef);
  // vfork is a fork too
  assert.ok(vbegin && vend);
  const vchild = r.n('vforked');
  assert.equal(Number(vend.a[1]), vchild);
  assert.equal(engine.of(OP.HELLO, vchild)[0]!.a[1], vend.a[0]);
  assert.equal(r.n('vchild_ioctl'), 0xfeed);
});

test('fork with no engine fd: FORK_BEGIN answers 0, no FORK_END; the child connects at its first need with HELLO kind 0, or never', async () => {
  engine.reset();
  const r = await run(['forkbare']);
  assert.equal(r.code, 0, r.stderr);
  const parent = r.n('parent_pid');
  const [a, b, c, d] = ['a_pid', 'b_pid', 'c_pid', 'd_pid'].map((k) => r.n(k));
  // A, C and D were forked; only D's fork (the parent holding /dev/iommu) has a token
  assert.equal(engine.of(OP.FORK_BEGIN, parent).length, 3);
  const [dend, ...more] = engine.of(OP.FORK_END, parent);
  assert.equal(more.length, 0, 'no FORK_END without a token');
  assert.equal(Number(dend!.a[1]), d);
  // A: a new process on its own connection, from its open on
  const [ahello, ...again] = engine.of(OP.HELLO, a!);
  assert.equal(again.length, 0);
  assert.equal(ahello!.a[0], 0n);
  assert.deepEqual(ops(engine.requests.filter((q) => q.pid === a)), [
    OP.HELLO,
    OP.OPEN,
    OP.IOCTL,
    OP.FORK_BEGIN,
    OP.FORK_END,
  ]);
  assert.equal(r.n('a_ioctl'), 0xaaaa);
  // B inherits A's fd by A's token
  const [aend] = engine.of(OP.FORK_END, a!);
  assert.equal(Number(aend!.a[1]), b);
  assert.deepEqual(
    engine.of(OP.HELLO, b!).map((q) => [q.a[0], q.a[1]]),
    [[1n, aend!.a[0]]],
  );
  assert.equal(r.n('b_ioctl'), 0xbbbb);
  // C never needed the engine: not a request from it
  assert.equal(engine.requests.filter((q) => q.pid === c).length, 0);
  // D inherits the parent's fd by its token
  assert.deepEqual(
    engine.of(OP.HELLO, d!).map((q) => [q.a[0], q.a[1]]),
    [[1n, dend!.a[0]]],
  );
  assert.equal(r.n('d_ioctl'), 0xdddd);
});

test("children fork() never saw: a raw clone's asks its own pid and stays off the parent's connection", async () => {
  engine.reset();
  const r = await run(['rawclone']);
  assert.equal(r.code, 0, r.stderr);
  const parent = r.n('parent_pid');
  const child = r.n('child_pid');
  assert.equal(r.n('cloned'), child);
  assert.equal(r.n('parent_ioctl'), 0x1111);
  // the child drops its copy of the connection: EIO, and nothing reaches the engine
  assert.equal(r.n('child_ioctl'), -5);
  assert.equal(r.n('child_ioctl_again'), -5);
  assert.ok(engine.requests.every((q) => q.pid === parent));
  assert.ok(engine.requests.every((q) => q.a[2] !== 0x2222n && q.a[2] !== 0x2223n));
  // the parent's connection is untouched
  assert.equal(r.n('parent_ioctl_after'), 0x3333);
  // a child sharing our memory (CLONE_VM | CLONE_VFORK) is taken for its parent
  assert.equal(r.n('vm_child_ioctl'), 0x4444);
  assert.equal(engine.requests.find((q) => q.a[2] === 0x4444n)?.pid, parent);
  assert.equal(r.n('parent_ioctl_last'), 0x5555);
  const conns = new Set(engine.requests.map((q) => q.conn));
  assert.equal(conns.size, 1);
});

for (const how of ['execv', 'execle']) {
  test(`${how}: EXEC_BEGIN, HELLO kind 2 from the new image, CLOSE for the O_CLOEXEC fds`, async () => {
    engine.reset();
    const r = await run(['exec', how]);
    assert.equal(r.code, 0, r.stderr);
    const pid = r.n('pid');
    assert.equal(r.n('new_pid'), pid);
    const keep = r.n('keep_fd');
    const gone = r.n('cloexec_fd');
    // a failed exec is EXEC_BEGIN + EXEC_ABORT, errno kept, the process goes on
    assert.equal(r.n('exec_missing'), -2);
    assert.equal(r.n('ioctl_after_abort'), 0xab);
    const seq = ops(engine.requests.filter((q) => q.pid === pid));
    assert.deepEqual(seq, [
      OP.HELLO,
      OP.OPEN,
      OP.OPEN,
      OP.EXEC_BEGIN,
      OP.EXEC_ABORT,
      OP.IOCTL,
      OP.EXEC_BEGIN,
      OP.HELLO,
      OP.CLOSE,
      OP.IOCTL,
    ]);
    const hellos = engine.of(OP.HELLO, pid);
    assert.deepEqual(
      hellos.map((h) => h.a[0]),
      [0n, 2n],
    );
    assert.notEqual(hellos[0]!.conn, hellos[1]!.conn);
    assert.equal(fdOf(engine.of(OP.CLOSE, pid)[0]!), gone);
    assert.equal(fdOf(engine.of(OP.IOCTL, pid)[1]!), keep);
    assert.equal(r.n('keep_open'), 1);
    assert.equal(r.n('cloexec_open'), 0);
    assert.equal(r.n('ioctl_kept'), 0xe0e);
    // the marker is gone from the new image's environment
    assert.equal(r.s('exec_env'), 'unset');
    // execle's own environment is used, with the engine's variables put back
    assert.equal(r.s('foo'), how === 'execle' ? 'bar' : 'unset');
  });
}

test("another library's constructor can open /dev/iommu (libvfn does)", async () => {
  engine.reset();
  const r = await run([], { bin: join(tmp, 'early') });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.n('early_errno'), 0);
  const fd = r.n('early_fd');
  assert.ok(fd >= 3);
  assert.deepEqual(ops(engine.requests), [OP.HELLO, OP.OPEN, OP.IOCTL]);
  assert.equal(fdOf(engine.requests[1]!), fd);
  assert.equal(r.n('early_ioctl'), 0x5eed);
});

test('threads: concurrent ioctls on one connection each get their own answer', async () => {
  engine.reset();
  const r = await run(['threads']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.n('bad'), 0);
  const ioctls = engine.of(OP.IOCTL);
  assert.equal(ioctls.length, r.n('calls'));
  assert.ok(ioctls.every((q) => q.a[1] === 0x3b80n));
  assert.ok(new Set(ioctls.map((q) => q.tid)).size > 1);
  assert.equal(new Set(ioctls.map((q) => q.a[2])).size, ioctls.length);
});

test('a lost engine connection: engine fds answer EIO, the program goes on', async () => {
  engine.reset();
  const r = await run(['lost']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.n('drop'), -5);
  assert.equal(r.n('ioctl_after'), -5);
  assert.equal(r.n('read_after'), -5);
  assert.equal(r.n('close_after'), 0);
  assert.equal(r.n('open_after'), -5);
  assert.equal(r.n('plain_open'), 1);
  assert.equal(r.n('plain_read'), 1);
  assert.deepEqual(ops(engine.requests), [OP.HELLO, OP.OPEN, OP.IOCTL]);
});

test('the connection fd: parked high, O_CLOEXEC, invisible to the program (EBADF), moved by a dup2 onto it', async () => {
  engine.reset();
  const r = await run(['sock']);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(r.n('sock') >= 900);
  assert.equal(r.n('sock_cloexec'), 1);
  for (const call of ['fcntl', 'read', 'write', 'pread', 'readv', 'ioctl', 'mmap', 'dup']) {
    assert.equal(r.n(`${call}_sock`), -9, `${call} on the library's fd: EBADF`);
  }
  for (const call of ['dup2_from', 'fstat', 'lseek', 'recv', 'send', 'getsockopt', 'close']) {
    assert.equal(r.n(`${call}_sock`), -9, `${call} on the library's fd: EBADF`);
  }
  assert.equal(r.n('ioctl_before_dup2'), 2);
  assert.equal(r.n('dup2_onto_sock'), r.n('sock'));
  assert.equal(r.n('fcntl_after_dup2'), 0, 'the number is the program’s file now');
  assert.equal(r.n('ioctl_after_dup2'), 3, 'the library moved and still talks');
  assert.equal(r.n('closed_engine'), 1);
  assert.equal(r.n('ioctl_after_closefrom'), 4);
  const closes = engine.of(OP.CLOSE);
  assert.equal(closes.length, 1); // closefrom sent CLOSE for the engine fd
  const untracked = engine.requests.filter((q) => q.op !== OP.HELLO && !(q.flags & 1));
  assert.deepEqual(untracked, [], 'every request says the library tracks mmap and friends');
});

test('KVM-VFIO: adding/removing an engine fd is answered by the library, the rest by KVM', async (t) => {
  engine.reset();
  const r = await run(['kvm']);
  assert.equal(r.code, 0, r.stderr);
  if (r.s('kvm') === 'absent') {
    t.skip('no usable /dev/kvm');
    return;
  }
  assert.equal(r.n('add_engine'), 0); // the kernel would refuse the placeholder: EINVAL
  assert.equal(r.n('del_engine'), 0);
  assert.equal(r.n('add_pipe'), -22); // no VFIO file, no engine fd: the kernel's EINVAL
  assert.equal(r.n('other_group'), -6); // kvm_vfio_set_attr: ENXIO for an unknown group
  assert.equal(r.n('bad_file_ptr'), -14);
  assert.equal(r.n('bad_attr_ptr'), -14);
  assert.deepEqual(ops(engine.requests), [OP.HELLO, OP.OPEN]); // no ioctl reached the engine
});

test('without UIOMMU_SOCK the library is inert', async () => {
  engine.reset();
  const plain = await run(['inert'], { engineOn: false, preload: false });
  const preloaded = await run(['inert'], { engineOn: false });
  assert.equal(plain.code, 0);
  assert.equal(preloaded.stdout, plain.stdout);
  assert.equal(preloaded.n('stat'), -2); // /dev/vfio is not taken from UIOMMU_ROOT
  assert.equal(engine.requests.length, 0);
});
