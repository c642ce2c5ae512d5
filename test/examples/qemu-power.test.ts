/**
 * The POWER scenario with real programs only: QEMU's pseries machine
 * (qemu-system-ppc64, TCG) under `uiommu run`, booting Debian's ppc64el
 * kernel with an initramfs of Debian's busybox and nvme modules
 * (debian-guest.ts, downloaded and cached in ~/.cache/uiommu/power-guest).
 *
 * - `powernv`: the NVMe function 0001:02:00.0 (group 2) is assigned; the
 *   guest's nvme driver sets a 64-bit DMA mask, so the guest asks for a
 *   dynamic DMA window. QEMU must pick SPAPR_TCE_v2 (no type1 on POWER),
 *   and every answer is Linux's: REGISTER_MEMORY, TCE_GET_INFO, REMOVE of
 *   the default window and CREATE at reset, the guest's CREATE at 1<<59
 *   and every MAP_DMA into it; EEH ops too. The function runs uiommu's
 *   NVMe controller on a namespace file: the guest's nvme driver writes
 *   1 MiB and reads it back, and reads 1 MiB the host seeded, all through
 *   the dynamic window (nothing is mapped into the 32-bit window once it
 *   exists); the file holds the guest's bytes. While the guest runs, the
 *   ConnectX port 0000:01:00.0 (group 0, the other PHB) is hot-plugged
 *   (`device_add`) and must join both windows at once; after the guest
 *   powers off, every window is gone and nothing is pinned. All three
 *   checks come from one boot (the boot with a function costs 262,144
 *   UNMAP_DMA calls: the guest clearing its default window), reported as
 *   three tests.
 * - `pseries` (a 64 KiB-page kernel, docs/vfio-containers.md): QEMU sizes
 *   the default window's table at one level, which a PowerVM PE accepts;
 *   the same host with 4 KiB pages makes QEMU ask 2, 3, 4 levels, each
 *   EINVAL, and QEMU fails with its own message (no guest needed: the
 *   machine reset before the first instruction creates the window).
 *
 * The boot times with and without the function are printed as test
 * diagnostics. Skipped with the reason when QEMU's pseries machine or the
 * guest's packages are not available.
 *
 * @slow: boots Linux guests under QEMU (left out of npm run test:quick)
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { hostSpecToJson } from '../../src/host/topology/index.ts';
import { powernv, pseries } from '../../src/host/topology/presets.ts';
import { guestOrReason } from './debian-guest.ts';
import {
  assertNvmeIo,
  calls,
  GuestQemu,
  nvmeHost,
  seedNamespace,
  type TraceRecord,
  unexpectedFailures,
} from './guest-qemu.ts';

const QEMU = 'qemu-system-ppc64';
const DDW_START = 1n << 59n;
/** TCG cannot give the pseries machine's default security capabilities; say so up front (no warnings). */
const MACHINE = 'pseries,cap-cfpc=broken,cap-sbbc=broken,cap-ibs=broken,cap-ccf-assist=off';
const NVME = '0001:02:00.0'; // powernv group 2, phb1
const HOTPLUG = '0000:01:00.0'; // powernv group 0, phb0
const NS_BYTES = 64 << 20;
/** 512-byte blocks (the x86 guest has 4 KiB ones). */
const LBA = 512;

/** Why the test cannot run, or false: QEMU's pseries machine must start and quit. */
function qemuMissing(): string | false {
  const r = spawnSync(
    QEMU,
    ['-M', MACHINE, '-accel', 'tcg', '-display', 'none', '-nodefaults', '-S', '-monitor', 'stdio'],
    { input: 'quit\n', timeout: 60_000, encoding: 'utf8' },
  );
  return r.status === 0 ? false : `${QEMU} -M pseries does not run: ${r.error ?? r.stderr}`;
}

/** QEMU's pseries machine with the guest's memory; `qemuArgs` add the rest. */
const pseriesQemu = (dir: string, name: string, host: string, qemuArgs: string[]) =>
  new GuestQemu(dir, name, host, QEMU, [
    ...['-M', MACHINE, '-accel', 'tcg', '-smp', '1', '-m', '1G,slots=2,maxmem=2G'],
    ...qemuArgs,
  ]);

const startOf = (r: TraceRecord) => BigInt(/start_addr=(0x[0-9a-f]+|0)\b/.exec(r.text ?? '')![1]!);
const iovaOf = (r: TraceRecord) => BigInt(/iova=(0x[0-9a-f]+|0)\b/.exec(r.text ?? '')![1]!);

const { guest, missing } = guestOrReason('ppc64el', qemuMissing());

describe('POWER: QEMU pseries under uiommu run', { skip: missing }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'uiommu-power-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const boot = (extra: string[]) => [
    ...['-kernel', guest!.kernel, '-initrd', guest!.initrd],
    ...['-append', `console=hvc0 ${extra.join(' ')}`],
  ];

  describe('powernv: NVMe function, dynamic DMA window, hot-plug, power-off', () => {
    let recs: TraceRecord[] = [];
    let joined: TraceRecord['state'];
    let q: GuestQemu;
    let failure: unknown;
    /** The NVMe function's namespace, and the sha256 of the bytes the host put there. */
    const ns = join(dir, 'nvme.img');
    let seeded: string;

    before(
      async () => {
        // the reference: the same guest without a function
        const plain = pseriesQemu(dir, 'plain', 'powernv', boot([]));
        let plainMs: number;
        try {
          await plain.until(
            'guest ready',
            () => /UIOMMU-GUEST: ready/.test(plain.guest()),
            600_000,
          );
          plainMs = Date.now() - plain.started;
          await plain.until('guest power-off', () => plain.gone, 300_000, true);
        } finally {
          plain.kill();
        }

        seeded = seedNamespace(ns, NS_BYTES);
        const host = nvmeHost(
          powernv,
          NVME,
          { file: ns, size: NS_BYTES, lbaSize: LBA },
          join(dir, 'powernv-nvme.json'),
        );
        q = pseriesQemu(dir, 'nvme', host, [
          ...boot(['uiommu.wait']),
          ...['-device', `vfio-pci,host=${NVME},id=nvme`],
        ]);
        try {
          await q.until('guest ready', () => /UIOMMU-GUEST: ready/.test(q.guest()), 1_500_000);
          const readyMs = Date.now() - q.started;
          console.log(
            `boot to the end of the guest's init: ${(plainMs / 1000).toFixed(1)} s without the function, ` +
              `${(readyMs / 1000).toFixed(1)} s with it ` +
              `(${calls(q.records(), 'VFIO_IOMMU_UNMAP_DMA').length} UNMAP_DMA)`,
          );
          q.monitor(`device_add vfio-pci,host=${HOTPLUG},id=hp`);
          const setContainer = () =>
            calls(q.records(), 'VFIO_GROUP_SET_CONTAINER').filter((r) => r.ret === 0).length;
          await q.until(
            'hot-plugged group joins the container',
            () => setContainer() === 2,
            120_000,
          );
          process.kill(q.child.pid!, 'SIGUSR1');
          await q.until(
            'state record after the hot-plug',
            () => q.records().some((r) => r.state?.at === 'SIGUSR1'),
            60_000,
          );
          joined = q.records().find((r) => r.state?.at === 'SIGUSR1')!.state;
          q.monitor('system_powerdown');
          await q.until('guest power-off', () => q.gone, 300_000, true);
        } catch (e) {
          failure = e;
        } finally {
          q.kill();
          await q.exited;
        }
        recs = q.records();
      },
      { timeout: 2_400_000 },
    );

    it('QEMU picks SPAPR_TCE_v2; REGISTER, GET_INFO, REMOVE(0) and CREATE at reset answer 0; the guest gets its window at 1<<59 and every MAP into it succeeds; EEH answers; power-off leaves no window and no pin', () => {
      if (failure) throw failure;
      const ext = calls(recs, 'VFIO_CHECK_EXTENSION').map((r) => r.text ?? '');
      assert.ok(
        ext.some((t) => /VFIO_TYPE1v2_IOMMU\) = 0/.test(t)),
        ext.join('\n'),
      );
      assert.ok(
        ext.some((t) => /VFIO_SPAPR_TCE_v2_IOMMU\) = 1/.test(t)),
        ext.join('\n'),
      );
      const setIommu = calls(recs, 'VFIO_SET_IOMMU');
      assert.equal(setIommu.length, 1);
      assert.match(setIommu[0]!.text!, /VFIO_SPAPR_TCE_v2_IOMMU\) = 0/);
      for (const req of ['VFIO_IOMMU_SPAPR_REGISTER_MEMORY', 'VFIO_IOMMU_SPAPR_TCE_GET_INFO']) {
        const rs = calls(recs, req);
        assert.ok(
          rs.length > 0 && rs.every((r) => r.ret === 0),
          `${req}: ${rs.map((r) => r.text)}`,
        );
      }
      const removes = calls(recs, 'VFIO_IOMMU_SPAPR_TCE_REMOVE');
      const creates = calls(recs, 'VFIO_IOMMU_SPAPR_TCE_CREATE');
      assert.equal(startOf(removes[0]!), 0n, 'the default window goes first');
      assert.equal(removes[0]!.ret, 0);
      assert.equal(startOf(creates[0]!), 0n, 'CREATE at reset: the 32-bit window at 0');
      assert.equal(creates[0]!.ret, 0);
      const ddw = creates.find((r) => r.ret === 0 && startOf(r) === DDW_START);
      assert.ok(ddw, `the guest's CREATE at 1<<59:\n${creates.map((r) => r.text).join('\n')}`);
      assert.ok(
        creates.every((r) => r.ret === 0),
        creates.map((r) => r.text).join('\n'),
      );
      const maps = calls(recs, 'VFIO_IOMMU_MAP_DMA').filter((r) => iovaOf(r) >= DDW_START);
      assert.ok(maps.length > 0, 'the guest maps its memory into the window');
      assert.deepEqual(
        maps.filter((r) => r.ret !== 0).map((r) => r.text),
        [],
      );
      const eeh = calls(recs, 'VFIO_EEH_PE_OP');
      assert.ok(eeh.length > 0 && eeh.every((r) => r.ret! >= 0), eeh.map((r) => r.text).join('\n'));
      assert.deepEqual(unexpectedFailures(recs), []);
      assert.doesNotMatch(q.err, /vfio|error/i, `QEMU printed a vfio error:\n${q.err}`);
      assert.match(q.guest(), /UIOMMU-GUEST: ddw/);
      const exit = recs.at(-1)?.state;
      assert.equal(exit?.at, 'exit');
      assert.equal(exit.pinnedPages, '0');
      assert.ok(
        exit.groups.every((g) => g.domain === null),
        JSON.stringify(exit.groups),
      );
      assert.ok(
        exit.users.every((u) => u.lockedPages === '0'),
        JSON.stringify(exit),
      );
      console.log(
        `the guest's window:\n${ddw.text}\n${maps[0]!.text}\n... ${maps.length} MAP_DMA into it`,
      );
    });

    it('a function of another group hot-plugged into the running guest joins both windows at once', () => {
      if (failure) throw failure;
      const sets = calls(recs, 'VFIO_GROUP_SET_CONTAINER');
      assert.deepEqual(
        sets.map((r) => r.ret),
        [0, 0],
      );
      assert.ok(joined);
      const windowsOf = (id: number) =>
        joined!.groups.find((g) => g.id === id)?.domain?.windows?.map((w) => BigInt(w.start));
      assert.deepEqual(windowsOf(2), [0n, DDW_START]);
      assert.deepEqual(windowsOf(0), [0n, DDW_START], 'the hot-plugged group has both windows');
      assert.notEqual(joined!.pinnedPages, '0');
    });

    it("the guest's nvme driver does its I/O through the 64-bit window: it reads back what it wrote, the namespace file holds it, it reads the host's bytes; nothing is mapped below the window once it exists", () => {
      if (failure) throw failure;
      console.log(assertNvmeIo(q.guest(), ns, seeded, LBA));
      const ddw = recs.findIndex(
        (r) =>
          r.request === 'VFIO_IOMMU_SPAPR_TCE_CREATE' && r.ret === 0 && startOf(r) === DDW_START,
      );
      assert.ok(ddw >= 0, "the guest's CREATE at 1<<59");
      const below = calls(recs.slice(ddw), 'VFIO_IOMMU_MAP_DMA').filter(
        (r) => iovaOf(r) < DDW_START,
      );
      assert.deepEqual(
        below.map((r) => r.text),
        [],
        'a MAP_DMA into the 32-bit window: DMA not through the dynamic window',
      );
    });
  });

  describe('pseries: the TCE table levels QEMU asks for', () => {
    /** QEMU paused before the first guest instruction: the reset has created the default window. */
    async function resetOnly(host: string, name: string): Promise<GuestQemu> {
      const q = pseriesQemu(dir, name, host, ['-S', '-device', 'vfio-pci,host=0021:01:00.0']);
      try {
        await q.until('QEMU up or gone', () => q.gone || /\(qemu\)/.test(q.out), 120_000, true);
        q.monitor('quit');
        await q.until('QEMU exit', () => q.gone, 60_000, true);
      } finally {
        q.kill();
      }
      return q;
    }

    it('a 64 KiB-page host (the preset): QEMU asks one level, which the PE accepts', {
      timeout: 300_000,
    }, async () => {
      const q = await resetOnly('pseries', 'pseries-64k');
      const creates = calls(q.records(), 'VFIO_IOMMU_SPAPR_TCE_CREATE');
      assert.ok(creates.length > 0, q.diagnose());
      assert.deepEqual(
        creates.map((r) => [/levels=(\d+)/.exec(r.text!)![1], r.ret]),
        [['1', 0]],
      );
      assert.doesNotMatch(q.err, /vfio|error/i, q.err);
      assert.equal(q.records().at(-1)?.state?.pinnedPages, '0');
    });

    it('the same host with 4 KiB pages: levels 2, 3, 4 are EINVAL and QEMU says it cannot create the window', {
      timeout: 300_000,
    }, async () => {
      const config = join(dir, 'pseries-4k.json');
      writeFileSync(config, JSON.stringify({ ...hostSpecToJson(pseries), pageSize: 4096 }));
      const q = await resetOnly(config, 'pseries-4k');
      const creates = calls(q.records(), 'VFIO_IOMMU_SPAPR_TCE_CREATE');
      assert.deepEqual(
        creates.map((r) => [/levels=(\d+)/.exec(r.text!)![1], r.errno]),
        [
          ['2', 'EINVAL'],
          ['3', 'EINVAL'],
          ['4', 'EINVAL'],
        ],
      );
      assert.match(q.err, /Failed to create a window, ret = -1 \(Invalid argument\)/);
      assert.equal(q.records().at(-1)?.state?.pinnedPages, '0', 'nothing left pinned');
    });
  });
});
