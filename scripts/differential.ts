/**
 * Differential testing against a real kernel: `npm run differential -- [options]`.
 *
 * scripts/differential/syscalls.c makes seeded random syscall programs
 * (valid, mutated and garbage structs) over /dev/iommu with the selftest
 * mock, /dev/vfio/vfio, a VFIO group and a device cdev. Each program runs
 * under `uiommu run --kernel VERSION` on a host preset mirroring the
 * reference guest, and its answers (return value, errno, a hash of every
 * byte of the argument after the call) are compared with the real kernel's:
 * live, in the reference guest of that version (../shared/refkernel;
 * `--refkernel BZIMAGE`, default ~/.cache/uiommu/refkernel/bzImage-legacy
 * for 7.2 and ~/.cache/uiommu/refkernel-6.12/bzImage-legacy for 6.12, see
 * scripts/refkernel.sh), or as recorded in the corpus
 * test/differential/<scenario>.txt.gz (7.2) or <scenario>-6.12.txt.gz
 * (`--record` writes it from a live run: recorded answers are facts, the
 * kernel is never committed).
 * A difference is shrunk to the shortest program that still shows it when
 * the live kernel is there (calls are left out, their random draws kept).
 *
 *   --kernel 7.2|6.12   --scenario iommufd|edu|e1000|nvme   --from S --seeds N --calls M
 *   --record | --replay   --no-shrink
 *
 * Exit status: 0 when every call compared equal, 1 on differences, 2 when
 * nothing could be compared.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { gunzipSync, gzipSync } from 'node:zlib';

const ROOT = resolve(import.meta.dirname, '..');
const CACHE_ROOT = process.env.UIOMMU_CACHE ?? join(homedir(), '.cache/uiommu');
const CACHE = join(CACHE_ROOT, 'differential');
/** The reference kernels (legacy VFIO container) by version, as scripts/refkernel.sh builds them. */
const REFKERNELS: Readonly<Record<string, string>> = {
  '7.2': join(CACHE_ROOT, 'refkernel/bzImage-legacy'),
  '6.12': join(CACHE_ROOT, 'refkernel-6.12/bzImage-legacy'),
};
const BOOT = process.env.UIOMMU_REFKERNEL_BOOT ?? '/work/shared/refkernel/boot.sh';

/** One world both sides build: the guest's QEMU devices and the uiommu host that mirrors them. */
interface Scenario {
  /** QEMU arguments of the reference guest. */
  readonly qemu: readonly string[];
  /** Functions the guest binds to vfio-pci before the program runs. */
  readonly bind: readonly string[];
  /** DIFF_GROUP, DIFF_CDEV, DIFF_BDF for the program. */
  readonly env: Readonly<Record<string, string>>;
  /** `uiommu run` options of the mirror (the kernel version is added). */
  readonly uiommu: readonly string[];
}

/** The reference kernel is built with the legacy VFIO container (bzImage-legacy). */
const LEGACY = [
  '--personality',
  'vfioContainer=type1',
  // its config has no PCI_P2PDMA, so no CONFIG_VFIO_PCI_DMABUF (Debian's 7.2 has it)
  '--personality',
  'vfioPciDmabuf=false',
  // the guest's program runs as root with every capability
  ...['--cap-add', 'sys_resource', '--cap-add', 'ipc_lock', '--cap-add', 'sys_rawio'],
];

/** The reference guest's functions (the `refguest` preset mirrors them): BDF, group, cdev. */
const REFGUEST_QEMU = [
  ...['-device', 'intel-iommu,intremap=on,caching-mode=on'],
  ...['-device', 'edu,addr=03.0', '-device', 'e1000,addr=04.0'],
  ...['-device', 'nvme,serial=deadbeef,addr=05.0'],
];
const FUNCTIONS = { edu: ['03', 2, 0], e1000: ['04', 3, 1], nvme: ['05', 4, 2] } as const;

/** One function of the reference guest: its group, the container and its cdev. */
function device(name: keyof typeof FUNCTIONS): Scenario {
  const [slot, group, cdev] = FUNCTIONS[name];
  return {
    qemu: REFGUEST_QEMU,
    bind: Object.values(FUNCTIONS).map(([s]) => `0000:00:${s}.0`),
    env: {
      DIFF_GROUP: `/dev/vfio/${group}`,
      DIFF_CDEV: `/dev/vfio/devices/vfio${cdev}`,
      DIFF_BDF: `0000:00:${slot}.0`,
    },
    uiommu: ['--host', 'refguest', ...LEGACY],
  };
}

const SCENARIOS: Readonly<Record<string, Scenario>> = {
  /** /dev/iommu with the selftest mock, and an empty legacy container. */
  iommufd: { qemu: [], bind: [], env: {}, uiommu: ['--host', 'mock', ...LEGACY] },
  edu: device('edu'),
  e1000: device('e1000'),
  nvme: device('nvme'),
};

/** The calls of one run, by "seed.n" key. */
type Answers = Map<string, string>;

function parse(out: string): Answers {
  const m: Answers = new Map();
  for (const line of out.split('\n')) {
    const sp = line.indexOf(' ');
    if (/^\d+\.\d+ /.test(line)) m.set(line.slice(0, sp), line.slice(sp + 1));
  }
  return m;
}

/** Build the program twice from Debian's 7.2 uapi: static for the guest, dynamic for the preload library. */
function build(): { staticBin: string; dynBin: string } {
  mkdirSync(CACHE, { recursive: true });
  const src = join(ROOT, 'scripts/differential/syscalls.c');
  const staticBin = join(CACHE, 'syscalls-static');
  const dynBin = join(CACHE, 'syscalls');
  const fresh = (bin: string) => existsSync(bin) && statSync(bin).mtimeMs > statSync(src).mtimeMs;
  if (fresh(staticBin) && fresh(dynBin)) return { staticBin, dynBin };
  const tree = spawnSync(join(ROOT, 'scripts/kernel-source.sh'), ['7.2'], { encoding: 'utf8' });
  if (tree.status !== 0) throw new Error(`cannot fetch linux-source-7.2: ${tree.stderr.trim()}`);
  const t = tree.stdout.trim();
  const shim = join(CACHE, 'shim/linux');
  mkdirSync(shim, { recursive: true });
  writeFileSync(join(shim, 'compiler_types.h'), '');
  const flags = ['-O2', '-w', '-D__user=', '-isystem', join(CACHE, 'shim')];
  flags.push('-isystem', `${t}/include/uapi`, '-isystem', `${t}/arch/x86/include/uapi`);
  flags.push('-I', `${t}/drivers/iommu/iommufd`, src);
  for (const [bin, extra] of [
    [staticBin, ['-static']],
    [dynBin, []],
  ] as const) {
    const r = spawnSync('gcc', [...flags, ...extra, '-o', bin], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`gcc: ${r.stderr}`);
  }
  return { staticBin, dynBin };
}

/** The program's argument list for `runs` (one run per line of output group). */
function argv(from: number, seeds: number, calls: number, skips: readonly string[]): string[] {
  return [String(from), String(seeds), String(calls), ...skips];
}

/** One real kernel: its version (the profile of the mirror) and its bzImage. */
interface RefKernel {
  readonly version: string;
  readonly bzImage: string;
}

/** Run each argument list in the reference guest (one boot); undefined without a kernel. */
function guest(s: Scenario, bin: string, runs: string[][], ref: RefKernel): string[] | undefined {
  if (!existsSync(ref.bzImage) || !existsSync(BOOT)) return undefined;
  const dir = mkdtempSync(join(tmpdir(), 'uiommu-diff-'));
  try {
    writeFileSync(join(dir, 'syscalls'), readFileSync(bin), { mode: 0o755 });
    const env = Object.entries(s.env).map(([k, v]) => `export ${k}=${v}`);
    const lines = [...s.bind.map((b) => `bind_vfio ${b}`), ...env];
    runs.forEach((a, i) => lines.push(`echo "== run ${i}"`, `./syscalls ${a.join(' ')}`));
    writeFileSync(join(dir, 'run.sh'), `${lines.join('\n')}\n`);
    const r = spawnSync(BOOT, [ref.bzImage, dir, ...s.qemu], {
      encoding: 'utf8',
      maxBuffer: 1 << 30,
      // no_timer_check: under TCG on a loaded host the kernel's IO-APIC timer
      // check can miss its ticks and panic at boot ("IO-APIC + timer doesn't work")
      env: { ...process.env, TIMEOUT: '3600', APPEND: `no_timer_check ${process.env.APPEND ?? ''}` },
    });
    if (!/^REF: END/m.test(r.stdout)) {
      const tail = `${r.stdout}${r.stderr}`.trim().split('\n').slice(-5).join('\n');
      throw new Error(`the reference guest did not finish (status ${r.status}):\n${tail}`);
    }
    return r.stdout.split(/^== run \d+$/m).slice(1);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Run each argument list under `uiommu run --kernel` (one engine, a shell running them in turn). */
function uiommu(s: Scenario, kernel: string, bin: string, runs: string[][]): string[] {
  const script = runs.map((a, i) => `echo "== run ${i}"; ${bin} ${a.join(' ')}`).join('\n');
  const r = spawnSync(
    'node',
    [join(ROOT, 'bin/uiommu.js'), 'run', '--kernel', kernel, ...s.uiommu, '--', '/bin/sh', '-c', script],
    { encoding: 'utf8', maxBuffer: 1 << 30, env: { ...process.env, ...s.env } },
  );
  if (r.status !== 0) throw new Error(`uiommu run: ${r.stderr.trim()}`);
  return r.stdout.split(/^== run \d+$/m).slice(1);
}

/** The first key of `real` whose answer `ours` does not give, per seed. */
function differences(real: Answers, ours: Answers): string[] {
  const bySeed = new Map<string, string>();
  for (const [key, answer] of real) {
    const seed = key.split('.')[0]!;
    if (!bySeed.has(seed) && ours.get(key) !== answer) bySeed.set(seed, key);
  }
  return [...bySeed.values()];
}

/**
 * ddmin over the calls before `key`: drop chunks (all candidates of one
 * chunk size in one guest boot) while the last call still differs.
 */
function shrink(s: Scenario, bins: ReturnType<typeof build>, key: string, ref: RefKernel): string[] {
  const [seed, n] = key.split('.').map(Number) as [number, number];
  let kept = Array.from({ length: n }, (_, i) => i);
  const skipsOf = (k: number[]) =>
    Array.from({ length: n }, (_, i) => i).filter((i) => !k.includes(i)).map((i) => `${seed}.${i}`);
  let chunk = Math.max(1, Math.floor(kept.length / 2));
  while (kept.length > 0) {
    const cands: number[][] = [];
    for (let at = 0; at < kept.length; at += chunk) cands.push([...kept.slice(0, at), ...kept.slice(at + chunk)]);
    const runs = cands.map((c) => argv(seed, 1, n + 1, skipsOf(c)));
    const real = guest(s, bins.staticBin, runs, ref);
    if (!real) break;
    const ours = uiommu(s, ref.version, bins.dynBin, runs);
    const i = cands.findIndex((_, j) => parse(real[j]!).get(key) !== parse(ours[j] ?? '').get(key));
    if (i >= 0) {
      kept = cands[i]!;
      chunk = Math.min(chunk, Math.max(1, Math.floor(kept.length / 2)));
    } else if (chunk > 1) {
      chunk = Math.floor(chunk / 2);
    } else {
      break;
    }
  }
  return skipsOf(kept);
}

function main(): number {
  const { values } = parseArgs({
    options: {
      kernel: { type: 'string', default: '7.2' },
      scenario: { type: 'string', default: 'iommufd' },
      from: { type: 'string', default: '1' },
      seeds: { type: 'string', default: '20' },
      calls: { type: 'string', default: '200' },
      record: { type: 'boolean', default: false },
      replay: { type: 'boolean', default: false },
      'no-shrink': { type: 'boolean', default: false },
      refkernel: { type: 'string' },
    },
  });
  const s = SCENARIOS[values.scenario];
  if (!s) throw new Error(`--scenario: one of ${Object.keys(SCENARIOS).join(', ')}`);
  const version = values.kernel;
  if (!REFKERNELS[version]) throw new Error(`--kernel: one of ${Object.keys(REFKERNELS).join(', ')}`);
  const ref: RefKernel = { version, bzImage: values.refkernel ?? REFKERNELS[version] };
  const from = Number(values.from);
  const seeds = Number(values.seeds);
  const calls = Number(values.calls);
  const bins = build();
  const suffix = version === '7.2' ? '' : `-${version}`;
  const corpus = join(ROOT, 'test/differential', `${values.scenario}${suffix}.txt.gz`);
  const run = [argv(from, seeds, calls, [])];
  let realText = values.replay ? undefined : guest(s, bins.staticBin, run, ref)?.[0];
  const live = realText !== undefined;
  if (values.record) {
    if (!live) throw new Error(`--record needs the reference kernel at ${ref.bzImage}`);
    mkdirSync(join(ROOT, 'test/differential'), { recursive: true });
    writeFileSync(corpus, gzipSync(`# ${run[0]!.join(' ')}\n${realText}`));
  }
  if (!live) {
    if (!existsSync(corpus)) {
      process.stderr.write(`differential: no reference kernel and no corpus ${corpus}\n`);
      return 2;
    }
    realText = gunzipSync(readFileSync(corpus)).toString();
  }
  const real = parse(realText!);
  const ours = parse(uiommu(s, version, bins.dynBin, run)[0] ?? '');
  const keys = [...real.keys()].filter((k) => {
    const [seed, n] = k.split('.').map(Number) as [number, number];
    return seed >= from && seed < from + seeds && n < calls;
  });
  const scoped = new Map(keys.map((k) => [k, real.get(k)!]));
  const diffs = differences(scoped, ours);
  const compared = keys.filter((k) => ours.has(k)).length;
  process.stdout.write(
    `${values.scenario} (${version}): ${compared} calls compared (${live ? 'live kernel' : 'recorded corpus'}), ` +
      `${diffs.length} seeds differ\n`,
  );
  for (const key of diffs) {
    process.stdout.write(`\n${key}: kernel  ${scoped.get(key)}\n${key}: uiommu  ${ours.get(key) ?? '(no answer)'}\n`);
    if (live && !values['no-shrink']) {
      const skips = shrink(s, bins, key, ref);
      const [seed, n] = key.split('.');
      const args = argv(Number(seed), 1, Number(n) + 1, skips);
      process.stdout.write(`shortest program: DIFF_FULL=1 syscalls ${args.join(' ')}\n`);
      const fullEnv = { ...s, env: { ...s.env, DIFF_FULL: '1' } };
      const k = guest(fullEnv, bins.staticBin, [args], ref)?.[0] ?? '';
      const u = uiommu(fullEnv, version, bins.dynBin, [args])[0] ?? '';
      process.stdout.write(`kernel:\n${k.trim()}\nuiommu:\n${u.trim()}\n`);
    }
  }
  if (compared === 0) return 2;
  return diffs.length === 0 ? 0 : 1;
}

process.exitCode = main();
