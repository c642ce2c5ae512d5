/**
 * Files the kernel generates when read (src/host/sysfs-attrs.ts) and the
 * static tree around them (src/server/sysfs.ts): domain_translation_struct
 * in the format of drivers/iommu/intel/debugfs.c, sriov_numvfs read and
 * written through open(2) of the emulated kernel, config/resourceN/iommu/
 * intel-iommu cap and ecap in the fake tree, and the SYSFS_READ op.
 */
import assert from 'node:assert/strict';
import { lstatSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { IntelIommu } from '../../src/drivers/intel/driver.ts';
import { vtdCapReg } from '../../src/drivers/intel/hw-info.ts';
import { O_RDONLY, O_WRONLY } from '../../src/host/file.ts';
import { Kernel } from '../../src/host/kernel.ts';
import { domainTranslationStruct, sysfsAttr } from '../../src/host/sysfs-attrs.ts';
import { ENGINE_MARKERS, rewriteFakeTree, writeFakeTree } from '../../src/server/sysfs.ts';

const ENGINE = '0000:00:02.0';
const PF = '0000:04:00.0';
const M2 = 2n << 20n;
const PLAIN = { nestParent: false, dirtyTracking: false, pasid: false };

const dir = mkdtempSync(join(tmpdir(), 'uiommu-attrs-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('domain_translation_struct', () => {
  it('a header, the column line, then one line per leaf with each level entry', () => {
    const k = new Kernel({ host: 'x86' });
    const empty = domainTranslationStruct(k, ENGINE).split('\n');
    assert.match(empty[0]!, /^Device 0000:00:02\.0 @0x[0-9a-f]+$/);
    assert.equal(
      empty[1],
      'IOVA_PFN         \tPML5E             \tPML4E             \tPDPE              \tPDE               \tPTE',
    );
    assert.equal(empty.length, 3, 'no domain: no leaves');
    const dev = k.host.devices.get(ENGINE)!.device;
    const domain = dev.driver.domainAllocPaging(dev, PLAIN);
    dev.group.attach(domain);
    domain.map(0x10_0000n, 0x5000_0000n, 0x2000n, 3); // two 4 KiB leaves, read/write
    domain.map(0x4000_0000n, 0x8000_0000n, M2, 1); // one 2 MiB superpage, read-only
    const lines = domainTranslationStruct(k, ENGINE).trimEnd().split('\n').slice(2);
    assert.equal(lines.length, 3);
    const cols = lines.map((l) => l.split(/[\s|]+/));
    assert.deepEqual(
      cols.map((c) => c[0]),
      ['0x0000000000100', '0x0000000000101', '0x0000000040000'],
    );
    // 4-level table (48-bit): PML5E 0; 4 KiB leaves have PDE and PTE, the PTE holds phys|R|W
    assert.equal(cols[0]!.length, 6);
    assert.equal(BigInt(cols[0]![1]!), 0n);
    assert.equal(BigInt(cols[0]![5]!), 0x5000_0000n | 3n);
    assert.equal(BigInt(cols[1]![5]!), 0x5000_1000n | 3n);
    assert.equal(BigInt(cols[0]![4]!), BigInt(cols[1]![4]!), 'one page table for both');
    // the 2 MiB leaf ends at the PDE: phys | R | PS
    assert.equal(cols[2]!.length, 5);
    assert.equal(BigInt(cols[2]![4]!), 0x8000_0000n | 1n | 0x80n);
    domain.unmap(0x10_0000n, 0x1000n);
    assert.equal(domainTranslationStruct(k, ENGINE).trimEnd().split('\n').length, 4);
  });

  it('exists only for functions behind a VT-d unit', () => {
    const k = new Kernel({ host: 'x86' });
    assert.ok(sysfsAttr(k, `/sys/kernel/debug/iommu/intel/${ENGINE}/domain_translation_struct`));
    assert.equal(
      sysfsAttr(k, '/sys/kernel/debug/iommu/intel/0000:09:00.0/domain_translation_struct'),
      undefined,
    );
    const power = new Kernel({ host: 'powernv' });
    assert.equal(
      sysfsAttr(power, '/sys/kernel/debug/iommu/intel/0000:01:00.0/domain_translation_struct'),
      undefined,
    );
  });
});

describe('sriov_numvfs through open(2)', () => {
  it('reads the VFs enabled, a write enables them; errnos reach write(2)', () => {
    const k = new Kernel({ host: 'x86', personality: { vfioPciEnableSriov: true } });
    const proc = k.spawn();
    const path = `/sys/bus/pci/devices/${PF}/sriov_numvfs`;
    const buf = proc.scratch(new Uint8Array(16));
    const rd = proc.open(path, O_RDONLY);
    assert.equal(proc.read(rd, buf, 16), 2);
    assert.equal(new TextDecoder().decode(proc.mm.read(buf, 2)), '0\n');
    assert.equal(proc.read(rd, buf, 16), 0, 'then EOF');
    const wr = proc.open(`/sys/devices/pci0000:04/${PF}/sriov_numvfs`, O_WRONLY);
    proc.mm.write(buf, new TextEncoder().encode('2\n'));
    assert.equal(proc.write(wr, buf, 2), 2);
    proc.mm.write(buf, new TextEncoder().encode('3'));
    assert.equal(proc.write(wr, buf, 1), -1);
    assert.equal(proc.errno, 'EBUSY');
    assert.ok(k.host.devices.has('0000:04:02.1'));
    // a read-only debugfs file opens for writing (as root) and refuses the write (Linux 7.2)
    const dts = proc.open(
      `/sys/kernel/debug/iommu/intel/${ENGINE}/domain_translation_struct`,
      O_WRONLY,
    );
    assert.ok(dts >= 0);
    assert.equal(proc.write(dts, buf, 1), -1);
    assert.equal(proc.errno, 'EINVAL');
    assert.equal(proc.open(`/sys/bus/pci/devices/${ENGINE}/sriov_numvfs`, O_RDONLY), -1);
    assert.equal(proc.errno, 'ENOENT');
  });
});

describe('the fake tree', () => {
  it('config, resourceN, driver_override, iommu link, intel-iommu cap/ecap, markers; VFs after a rewrite', () => {
    const k = new Kernel({ host: 'x86', personality: { vfioPciEnableSriov: true } });
    const root = mkdtempSync(join(dir, 'root-'));
    writeFakeTree(k, root);
    const devDir = join(root, `sys/bus/pci/devices/${ENGINE}`);
    const config = readFileSync(join(devDir, 'config'));
    assert.equal(config.length, 4096);
    assert.equal(config.readUInt32LE(0), 0x11e91234);
    assert.equal(statSync(join(devDir, 'resource0')).size, 1 << 20);
    assert.equal(statSync(join(devDir, 'resource2')).size, 16 << 10);
    assert.equal(readFileSync(join(devDir, 'driver_override'), 'utf8'), '(null)\n');
    assert.equal(readlinkSync(join(devDir, 'iommu')), '../../virtual/iommu/dmar0');
    const unit = k.host.iommus.get('dmar0') as IntelIommu;
    assert.equal(
      readFileSync(join(devDir, 'iommu/intel-iommu/cap'), 'utf8'),
      `${vtdCapReg(unit.features).toString(16)}\n`,
    );
    assert.ok(lstatSync(join(root, 'sys/class/iommu/dmar0')).isSymbolicLink());
    const pfDir = join(root, `sys/bus/pci/devices/${PF}`);
    assert.equal(readFileSync(join(pfDir, 'sriov_totalvfs'), 'utf8'), '4\n');
    assert.ok(
      statSync(join(root, ENGINE_MARKERS, `sys/bus/pci/devices/${PF}/sriov_numvfs`)).isFile(),
    );
    assert.ok(
      statSync(
        join(
          root,
          ENGINE_MARKERS,
          `sys/kernel/debug/iommu/intel/${ENGINE}/domain_translation_struct`,
        ),
      ).isFile(),
    );
    assert.equal(
      readFileSync(join(root, 'sys/module/vfio_pci/parameters/enable_sriov'), 'utf8'),
      'Y\n',
    );
    // VFs appear after the rewrite the kernel asks for
    k.onTopologyChange = () => rewriteFakeTree(k, root);
    sysfsAttr(k, `/sys/bus/pci/devices/${PF}/sriov_numvfs`)!.store!('1');
    const vfDir = join(root, 'sys/bus/pci/devices/0000:04:02.0');
    assert.equal(readlinkSync(join(pfDir, 'virtfn0')), '../0000:04:02.0');
    assert.equal(readlinkSync(join(vfDir, 'physfn')), '../0000:04:00.0');
    assert.equal(readFileSync(join(vfDir, 'driver_override'), 'utf8'), 'vfio-pci\n');
    assert.match(readlinkSync(join(vfDir, 'driver')), /vfio-pci$/);
    const g = readlinkSync(join(vfDir, 'iommu_group')).split('/').at(-1);
    assert.ok(statSync(join(root, `dev/vfio/${g}`)).isFile());
  });
});
