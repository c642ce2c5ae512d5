/**
 * PCI hot reset under `uiommu run` answers as Linux 7.2 does
 * (test/server/hot-reset.c): GET_PCI_HOT_RESET_INFO and PCI_HOT_RESET with
 * good and bad headers and arrays, through the legacy type1 container and
 * through the cdev, on two functions of the root bus (no slot or bus reset:
 * ENODEV) and on both functions of an e1000e behind a PCIe root port (a bus
 * reset of two functions in one group). hot-reset.expected is that
 * program's output on the reference kernel (/work/shared/refkernel,
 * boot.sh, Linux 7.2.6) with the refguest preset's functions plus
 * `-device pcie-root-port,id=rp1,chassis=1,addr=06.0,x-speed=5 -device
 * e1000e,bus=rp1,addr=00.0,multifunction=on -device e1000e,bus=rp1,addr=00.1`.
 * At QEMU's default root port speed (16 GT/s) the same kernel answers the
 * reset itself ENOTTY: the port never reports its link active again after
 * the bus reset (pci_bridge_wait_for_secondary_bus); a port that does is
 * what uiommu models.
 *
 * @slow: builds and runs a C program under uiommu run (left out of npm run test:quick)
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { hostSpecToJson, type PciDeviceSpec } from '../../src/host/topology/index.ts';
import { refguest } from '../../src/host/topology/presets.ts';
import { ROOT } from './c-program.ts';

const dir = mkdtempSync(join(tmpdir(), 'uiommu-hot-reset-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** One function of QEMU's e1000e (82574L) behind the root port: bus 01, group 7 as in the guest. */
function e1000e(bdf: string): PciDeviceSpec {
  const K = 1024n;
  return {
    bdf,
    vendor: 0x8086,
    device: 0x10d3,
    class: 0x020000,
    bars: [
      { index: 0, kind: 'mem32', size: 128n * K, prefetchable: false },
      { index: 1, kind: 'mem32', size: 128n * K, prefetchable: false },
      { index: 2, kind: 'io', size: 32n, prefetchable: false },
      { index: 3, kind: 'mem32', size: 16n * K, prefetchable: false },
    ],
    group: 7,
    iommu: 'dmar0',
    irq: { intx: true, msix: 5, msixBar: 3, msixTableOffset: 0n, msixPbaOffset: 0x2000n },
  };
}

test('GET_PCI_HOT_RESET_INFO and PCI_HOT_RESET answer as Linux 7.2 on the root bus and behind a root port', () => {
  const host = join(dir, 'host.json');
  const devices = [...refguest.devices, e1000e('0000:01:00.0'), e1000e('0000:01:00.1')];
  writeFileSync(host, JSON.stringify(hostSpecToJson({ ...refguest, devices })));
  const bin = join(dir, 'hot-reset');
  execFileSync('cc', [
    '-O2',
    '-Wall',
    '-I',
    join(ROOT, 'examples'),
    '-o',
    bin,
    join(import.meta.dirname, 'hot-reset.c'),
  ]);
  const r = spawnSync(
    process.execPath,
    [
      join(ROOT, 'bin/uiommu.js'),
      'run',
      ...['--host', host, '--kernel', '7.2', '--personality', 'vfioContainer=type1'],
      '--',
      bin,
      ...['0000:00:03.0', '0000:00:05.0', '0000:01:00.0', '0000:01:00.1'],
    ],
    { encoding: 'utf8', timeout: 60_000 },
  );
  assert.equal(r.status, 0, r.stderr);
  assert.doesNotMatch(r.stderr, /model bug/);
  const expected = readFileSync(join(import.meta.dirname, 'hot-reset.expected'), 'utf8');
  assert.equal(r.stdout, expected);
});
