import assert from 'node:assert/strict';
import {
  existsSync,
  lstatSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  rmSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Kernel } from '../../src/host/kernel.ts';
import { PRESETS } from '../../src/host/topology/index.ts';
import { charDeviceAt, VFIO_DEV_MAJOR } from '../../src/server/devices.ts';
import { reservedRegionsText, writeFakeTree } from '../../src/server/sysfs.ts';

describe('fake sysfs and /dev tree (x86 preset)', () => {
  let root: string;
  const kernel = new Kernel();
  const sys = (p: string) => join(root, 'sys', p);
  const read = (p: string) => readFileSync(sys(p), 'utf8');

  before(() => {
    root = mkdtempSync(join(tmpdir(), 'uiommu-sysfs-'));
    writeFakeTree(kernel, root);
  });

  after(() => rmSync(root, { recursive: true, force: true }));

  it('every host device has a /sys/bus/pci/devices link to its directory under its PCI root', () => {
    const bdfs = readdirSync(sys('bus/pci/devices')).sort();
    assert.deepEqual(bdfs, [...kernel.host.devices.keys()].sort());
    for (const bdf of bdfs) {
      const target = readlinkSync(sys(`bus/pci/devices/${bdf}`));
      assert.equal(target, `../../../devices/pci${bdf.slice(0, 7)}/${bdf}`);
      assert.ok(lstatSync(realpathSync(sys(`bus/pci/devices/${bdf}`))).isDirectory());
    }
  });

  it('ID files are hex text as the kernel prints them', () => {
    for (const { spec } of kernel.host.devices.values()) {
      const d = `bus/pci/devices/${spec.bdf}`;
      assert.equal(Number.parseInt(read(`${d}/vendor`), 16), spec.vendor);
      assert.match(read(`${d}/vendor`), /^0x[0-9a-f]{4}\n$/);
      assert.equal(Number.parseInt(read(`${d}/device`), 16), spec.device);
      assert.equal(Number.parseInt(read(`${d}/subsystem_vendor`), 16), spec.subsystemVendor ?? 0);
      assert.equal(Number.parseInt(read(`${d}/subsystem_device`), 16), spec.subsystemDevice ?? 0);
      assert.match(read(`${d}/class`), /^0x[0-9a-f]{6}\n$/);
      assert.equal(Number.parseInt(read(`${d}/class`), 16), spec.class);
      assert.equal(read(`${d}/numa_node`), '0\n');
    }
  });

  it('iommu_group names the group (the basename is all clients use) and resolves to it', () => {
    for (const { spec } of kernel.host.devices.values()) {
      const link = sys(`bus/pci/devices/${spec.bdf}/iommu_group`);
      assert.equal(Number(basename(readlinkSync(link))), spec.group);
      assert.equal(realpathSync(link), realpathSync(sys(`kernel/iommu_groups/${spec.group}`)));
      const members = readdirSync(sys(`kernel/iommu_groups/${spec.group}/devices`));
      assert.ok(members.includes(spec.bdf));
      assert.equal(
        realpathSync(sys(`kernel/iommu_groups/${spec.group}/devices/${spec.bdf}`)),
        realpathSync(sys(`bus/pci/devices/${spec.bdf}`)),
      );
    }
    const g1 = readdirSync(sys('kernel/iommu_groups/1/devices')).sort();
    assert.deepEqual(g1, ['0000:01:00.0', '0000:01:00.1']);
  });

  it('driver is vfio-pci, and the driver directory lists the device', () => {
    for (const bdf of kernel.host.devices.keys()) {
      assert.equal(basename(readlinkSync(sys(`bus/pci/devices/${bdf}/driver`))), 'vfio-pci');
      assert.equal(
        realpathSync(sys(`bus/pci/devices/${bdf}/driver`)),
        realpathSync(sys('bus/pci/drivers/vfio-pci')),
      );
      assert.ok(existsSync(sys(`bus/pci/drivers/vfio-pci/${bdf}`)));
    }
  });

  it('vfio-dev has exactly one directory vfioX whose dev matches STAT of /dev/vfio/devices/vfioX', () => {
    [...kernel.host.devices.keys()].forEach((bdf, index) => {
      const entries = readdirSync(sys(`bus/pci/devices/${bdf}/vfio-dev`), { withFileTypes: true });
      assert.deepEqual(
        entries.map((e) => [e.name, e.isDirectory()]),
        [[`vfio${index}`, true]],
      );
      const dev = read(`bus/pci/devices/${bdf}/vfio-dev/vfio${index}/dev`);
      const node = charDeviceAt(kernel, `/dev/vfio/devices/vfio${index}`)!;
      assert.equal(dev, `${node.major}:${node.minor}\n`);
      assert.equal(node.major, VFIO_DEV_MAJOR);
      assert.equal(read(`class/vfio-dev/vfio${index}/dev`), dev);
    });
  });

  it('group dev numbers match STAT of /dev/vfio/N', () => {
    for (const id of kernel.vfioGroups.keys()) {
      const node = charDeviceAt(kernel, `/dev/vfio/${id}`)!;
      assert.equal(read(`class/vfio/${id}/dev`), `${node.major}:${node.minor}\n`);
    }
    const iommu = charDeviceAt(kernel, '/dev/iommu')!;
    assert.equal(read('class/misc/iommu/dev'), `${iommu.major}:${iommu.minor}\n`);
  });

  it('reserved_regions lists the VT-d MSI window and RMRRs, merged and sorted; type is DMA-FQ', () => {
    const text = read('kernel/iommu_groups/0/reserved_regions');
    const lines = text.trimEnd().split('\n');
    assert.ok(lines.includes('0x00000000fee00000 0x00000000feefffff msi'), text);
    const starts = lines.map((l) => BigInt(l.split(' ')[0]!));
    assert.deepEqual(
      starts,
      [...starts].sort((a, b) => (a < b ? -1 : 1)),
    );
    assert.equal(read('kernel/iommu_groups/0/type'), 'DMA-FQ\n');
  });

  it('modules, the noiommu parameter and hpage_pmd_size are there', () => {
    assert.ok(lstatSync(sys('module/vfio')).isDirectory());
    assert.ok(lstatSync(sys('module/vfio_pci')).isDirectory());
    assert.equal(read('module/vfio/parameters/enable_unsafe_noiommu_mode'), 'N\n');
    assert.match(read('kernel/mm/transparent_hugepage/hpage_pmd_size'), /^[1-9][0-9]*\n$/);
  });

  it('resource: 13 lines of three 0x%016llx fields; BARs aligned to their size', () => {
    for (const { spec } of kernel.host.devices.values()) {
      const lines = read(`bus/pci/devices/${spec.bdf}/resource`).trimEnd().split('\n');
      assert.equal(lines.length, 13);
      for (const l of lines) assert.match(l, /^0x[0-9a-f]{16} 0x[0-9a-f]{16} 0x[0-9a-f]{16}$/);
      for (const bar of spec.bars) {
        const [start, end, flags] = lines[bar.index]!.split(' ').map((x) => BigInt(x));
        assert.equal(end! - start! + 1n, bar.size);
        assert.equal(start! % bar.size, 0n);
        assert.equal((flags! & 0x200n) !== 0n, bar.kind !== 'io', 'IORESOURCE_MEM');
        assert.equal((flags! & 0x100000n) !== 0n, bar.kind === 'mem64', 'IORESOURCE_MEM_64');
      }
    }
  });

  it('/dev holds a placeholder file per node', () => {
    assert.ok(lstatSync(join(root, 'dev/iommu')).isFile());
    assert.ok(lstatSync(join(root, 'dev/vfio/vfio')).isFile());
    for (const id of kernel.vfioGroups.keys()) assert.ok(existsSync(join(root, `dev/vfio/${id}`)));
    const cdevs = readdirSync(join(root, 'dev/vfio/devices')).sort();
    assert.deepEqual(cdevs, [...kernel.host.devices.keys()].map((_, i) => `vfio${i}`).sort());
  });
});

describe('reserved_regions text', () => {
  it('merges overlapping or touching regions of one kind only; sw-msi prints as msi', () => {
    const text = reservedRegionsText([
      { start: 0x3000n, last: 0x3fffn, kind: 'reserved' },
      { start: 0x1000n, last: 0x1fffn, kind: 'reserved' },
      { start: 0x2000n, last: 0x2fffn, kind: 'reserved' },
      { start: 0x1800n, last: 0x27ffn, kind: 'direct' },
      { start: 0x8000000n, last: 0x80fffffn, kind: 'sw-msi' },
      { start: 0x5000n, last: 0x5fffn, kind: 'reserved' },
    ]);
    assert.equal(
      text,
      [
        '0x0000000000001000 0x0000000000003fff reserved',
        '0x0000000000001800 0x00000000000027ff direct',
        '0x0000000000005000 0x0000000000005fff reserved',
        '0x0000000008000000 0x00000000080fffff msi',
        '',
      ].join('\n'),
    );
  });

  it('is empty for a group without reserved regions', () => {
    assert.equal(reservedRegionsText([]), '');
  });
});

describe('fake tree for every preset', () => {
  for (const name of Object.keys(PRESETS)) {
    it(`${name}: one link per device, one group directory per group`, () => {
      const kernel = new Kernel({ host: name });
      const root = mkdtempSync(join(tmpdir(), 'uiommu-sysfs-'));
      try {
        writeFakeTree(kernel, root);
        const devices = readdirSync(join(root, 'sys/bus/pci/devices'));
        assert.equal(devices.length, kernel.host.devices.size);
        const groups = readdirSync(join(root, 'sys/kernel/iommu_groups'));
        assert.deepEqual(groups.map(Number).sort(), [...kernel.host.groups.keys()].sort());
      } finally {
        rmSync(root, { recursive: true, force: true });
      }
    });
  }
});
