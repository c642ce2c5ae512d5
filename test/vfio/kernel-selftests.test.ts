/**
 * The yardstick: the kernel's own VFIO selftests (tools/testing/selftests/vfio
 * of Debian's linux-source-7.2), built outside the repository by
 * scripts/vfio-selftests.sh and run unmodified under `uiommu run --host x86`
 * on the legacy container. Each program runs its cases in all five IOMMU
 * modes (vfio_type1_iommu, vfio_type1v2_iommu, iommufd_compat_type1,
 * iommufd_compat_type1v2, iommufd) on the DMA-engine function 0000:00:02.0
 * (INTx, MSI, MSI-X, mappable BARs); sriov_uapi on the X710 PF 0000:04:00.0
 * (TotalVFs 4, no VF enabled); pci_driver on the ioat function 0000:00:04.0,
 * whose driver (lib/drivers/ioat) does memcpys, faults and an MSI-X through
 * the ioat model: all 7 cases in all five modes, 35, none skipped.
 *
 * Every case must pass. The 1 GiB huge page cases may skip, only when this
 * machine has no free 1 GiB huge page. The suite skips when the programs
 * cannot be built (no network, no compiler) or when this build cannot mmap
 * device regions (every program maps the BARs that report MMAP).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, it } from 'node:test';

const ROOT = resolve(import.meta.dirname, '../..');
const UIOMMU = join(ROOT, 'bin/uiommu.js');
const DEVICE = '0000:00:02.0';
const PF = '0000:04:00.0';
const IOAT = '0000:00:04.0';

/** The programs and the BDF each is given. */
const PROGRAMS: readonly [string, string][] = [
  ['dma_mapping', DEVICE],
  ['dma_mapping_mmio', DEVICE],
  ['iommufd_setup', DEVICE],
  ['pci_device', DEVICE],
  ['pci_device_init_perf', DEVICE],
  ['pci_sriov_uapi', PF],
  ['pci_driver', IOAT],
];

/** Programs whose case count is fixed: every case runs and passes (no skip allowed). */
const EXACT: Readonly<Record<string, number>> = { pci_driver: 35 };

/** Build the selftests (cached); the binaries' directory, or why not. */
function build(): { dir?: string; why?: string } {
  const r = spawnSync(join(ROOT, 'scripts/vfio-selftests.sh'), [], {
    encoding: 'utf8',
    timeout: 1_500_000,
  });
  const dir = r.stdout?.trim().split('\n').at(-1);
  if (r.status !== 0 || !dir || !existsSync(join(dir, 'vfio_pci_device_test'))) {
    const why = r.error?.message ?? r.stderr?.trim().split('\n').at(-1);
    return { why: `scripts/vfio-selftests.sh failed: ${why}` };
  }
  return { dir };
}

/** A free 1 GiB huge page exists (the hugetlb_1gb cases may skip otherwise). */
function have1GiBPage(): boolean {
  try {
    const p = '/sys/kernel/mm/hugepages/hugepages-1048576kB/free_hugepages';
    return Number(readFileSync(p, 'utf8')) > 0;
  } catch {
    return false;
  }
}

interface CaseResult {
  name: string;
  status: 'ok' | 'fail' | 'skip';
  note: string;
}

/** The TAP result lines of one kselftest harness run. */
function parseTap(out: string): CaseResult[] {
  const cases: CaseResult[] = [];
  for (const m of out.matchAll(/^(ok|not ok) \d+ (\S+)(?: # (SKIP|XFAIL)\s*(.*))?$/gm)) {
    const status = m[1] === 'not ok' ? 'fail' : m[3] === 'SKIP' ? 'skip' : 'ok';
    cases.push({ name: m[2]!, status, note: m[4] ?? '' });
  }
  return cases;
}

/**
 * The x86 host answering as Linux 7.2 (the selftests' version) with its
 * default legacy container, and SR-IOV enabled for vfio-pci
 * (vfio_pci.enable_sriov=1).
 */
const RUN_ARGS = ['--host', 'x86', '--kernel', '7.2', '--personality', 'vfioPciEnableSriov=true'];

/** Run a program under uiommu run. */
function run(bin: string, bdf: string) {
  return spawnSync(process.execPath, [UIOMMU, 'run', ...RUN_ARGS, '--', bin, bdf], {
    encoding: 'utf8',
    timeout: 540_000,
  });
}

/** Why the suite cannot run here, if it cannot: the build, then a BAR mmap probe. */
function unusable(): string | undefined {
  if (built.why) return built.why;
  const r = run(join(built.dir!, 'vfio_pci_device_test'), DEVICE);
  if (/bar->vaddr != \(\(void \*\) -1\)/.test(r.stdout + r.stderr)) {
    return 'mmap of device regions is not available in this build (issue 12 item 1)';
  }
  return undefined;
}

const built = build();
const why = unusable();

describe('the kernel VFIO selftests (Linux 7.2) under uiommu run', {
  skip: why ?? false,
  timeout: 1_800_000,
}, () => {
  for (const [program, bdf] of PROGRAMS) {
    it(program, { timeout: 600_000 }, () => {
      const bin = join(built.dir!, `vfio_${program}_test`);
      const r = run(bin, bdf);
      const skipped = /^1\.\.0 # SKIP (.*)$/m.exec(r.stdout);
      assert.equal(skipped, null, `the whole program skipped: ${skipped?.[1]}`);
      const cases = parseTap(r.stdout);
      assert.ok(cases.length > 0, `no TAP results:\n${r.stdout}\n${r.stderr}`);
      assert.doesNotMatch(r.stderr, /model bug/);
      const unexpected: string[] = [];
      for (const c of cases) {
        if (c.status === 'fail') unexpected.push(`${c.name} failed`);
        else if (c.status === 'skip' && !(/hugetlb_1gb/.test(c.name) && !have1GiBPage())) {
          unexpected.push(`${c.name} skipped: ${c.note}`);
        }
      }
      assert.deepEqual(unexpected, [], r.stdout);
      const exact = EXACT[program];
      if (exact !== undefined) {
        assert.deepEqual(
          { cases: cases.length, ok: cases.filter((c) => c.status === 'ok').length },
          { cases: exact, ok: exact },
          r.stdout,
        );
      }
    });
  }
});
