import assert from 'node:assert/strict';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Kernel } from '../../src/host/kernel.ts';
import { treeAddon } from '../../src/host/native.ts';
import { PRESETS } from '../../src/host/topology/index.ts';
import {
  charDeviceAt,
  charDevices,
  VFIO_DEV_MAJOR,
  VFIO_GROUP_MAJOR,
} from '../../src/server/devices.ts';
import { removeTree, reservedRegionsText, writeFakeTree } from '../../src/server/sysfs.ts';
import { NOIOMMU_HOST, NVME, RAW_NIC } from '../vfio/noiommu-host.ts';
import { HOST_VF, PF, PLAIN, SRIOV_HOST, VF0, VF1 } from '../vfio/sriov-host.ts';

/** Write the tree of `kernel` into a fresh directory; `sys(p)` is a path under its `sys/`. */
function tree(kernel: Kernel): {
  root: string;
  sys: (p: string) => string;
  read: (p: string) => string;
} {
  const root = mkdtempSync(join(tmpdir(), 'uiommu-sysfs-'));
  writeFakeTree(kernel, root);
  const sys = (p: string) => join(root, 'sys', p);
  return { root, sys, read: (p) => readFileSync(sys(p), 'utf8') };
}

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
        assert.deepEqual(groups.map(Number).sort(), [...kernel.vfioGroups.keys()].sort());
      } finally {
        rmSync(root, { recursive: true, force: true });
      }
    });
  }
});

describe('the tree writer (native/tree.c)', () => {
  it('writes each kind of entry, and names the path and errno of a failure', () => {
    const dir = mkdtempSync(join(tmpdir(), 'uiommu-tree-'));
    try {
      const tree = treeAddon();
      const ok = tree.treeWrite(
        'dfsld',
        [`${dir}/a`, `${dir}/a/text`, `${dir}/a/sparse`, `${dir}/a/link`, `${dir}/a`],
        [undefined, 'h\u00e9\n', 1 << 20, 'text', undefined],
      );
      assert.equal(ok, undefined);
      assert.equal(readFileSync(join(dir, 'a/text'), 'utf8'), 'h\u00e9\n');
      assert.equal(lstatSync(join(dir, 'a/sparse')).size, 1 << 20);
      assert.equal(readlinkSync(join(dir, 'a/link')), 'text');
      tree.treeWrite('f', [`${dir}/a/bytes`], [Uint8Array.of(0, 1, 255)]);
      assert.deepEqual([...readFileSync(join(dir, 'a/bytes'))], [0, 1, 255]);
      assert.deepEqual(
        tree.treeWrite('ff', [`${dir}/a/ok`, `${dir}/missing/x`], ['1', '2']),
        [1, 2], // the second entry, ENOENT
      );
      assert.equal(readFileSync(join(dir, 'a/ok'), 'utf8'), '1', 'entries before the failure stay');
      assert.throws(() => tree.treeWrite('x', [`${dir}/a/y`], ['']), TypeError);
      assert.throws(() => tree.treeWrite('ff', [`${dir}/a/y`], ['']), TypeError);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('removeTree', () => {
  it('removes a written tree with a socket and what a program added, never what its links point to', async () => {
    const outside = mkdtempSync(join(tmpdir(), 'uiommu-outside-'));
    const dir = mkdtempSync(join(tmpdir(), 'uiommu-remove-'));
    try {
      writeFileSync(join(outside, 'keep'), 'x');
      writeFakeTree(new Kernel(), dir);
      mkdirSync(join(dir, 'sys/bus/pci/devices/extra/deeper'), { recursive: true });
      writeFileSync(join(dir, 'sys/bus/pci/devices/extra/deeper/new_id'), '8086 1234\n');
      symlinkSync(outside, join(dir, 'sys/bus/pci/devices/extra/out'));
      symlinkSync(join(outside, 'keep'), join(dir, 'keep-link'));
      const server = createServer().listen(join(dir, 'engine.sock'));
      await new Promise((ok) => server.once('listening', ok));
      removeTree(dir);
      assert.equal(existsSync(dir), false);
      assert.deepEqual(readdirSync(outside), ['keep']);
      assert.equal(readFileSync(join(outside, 'keep'), 'utf8'), 'x');
      server.close();
      removeTree(dir); // gone already: nothing to do, no error
      assert.throws(() => removeTree(join(outside, 'keep', 'x')), { code: 'ENOTDIR' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
      rmSync(outside, { recursive: true, force: true });
    }
  });
});

describe('fake tree of a host with a device without IOMMU', () => {
  it('no-IOMMU mode: the fake group is noiommu-N, named vfio-noiommu, type unknown, no regions', () => {
    const kernel = new Kernel({ host: NOIOMMU_HOST, personality: { vfioNoiommu: true } });
    const { root, sys, read } = tree(kernel);
    try {
      const group = kernel.vfioGroups.get(30)!;
      assert.equal(group.noiommu, true);
      assert.equal(read('kernel/iommu_groups/30/name'), 'vfio-noiommu\n');
      assert.equal(read('kernel/iommu_groups/30/type'), 'unknown\n');
      assert.equal(read('kernel/iommu_groups/30/reserved_regions'), '');
      assert.deepEqual(readdirSync(sys('kernel/iommu_groups/30/devices')), [RAW_NIC]);
      // a real group has no name file
      assert.equal(existsSync(sys('kernel/iommu_groups/31/name')), false);
      assert.equal(read('kernel/iommu_groups/31/type'), 'DMA-FQ\n');
      // /sys/class/vfio and /dev/vfio use the node name; the numbers agree with STAT
      assert.deepEqual(readdirSync(sys('class/vfio')).sort(), ['31', 'noiommu-30']);
      const node = charDeviceAt(kernel, '/dev/vfio/noiommu-30')!;
      assert.equal(node.major, VFIO_GROUP_MAJOR);
      assert.equal(node.minor, 0);
      assert.equal(read('class/vfio/noiommu-30/dev'), `${node.major}:${node.minor}\n`);
      assert.equal(charDeviceAt(kernel, '/dev/vfio/30'), undefined);
      assert.equal(read('class/vfio/31/dev'), `${VFIO_GROUP_MAJOR}:1\n`);
      assert.ok(lstatSync(join(root, 'dev/vfio/noiommu-30')).isFile());
      assert.equal(existsSync(join(root, 'dev/vfio/30')), false);
      // bound to vfio-pci in its group, but no cdev: no vfio-dev entry and no node
      assert.equal(basename(readlinkSync(sys(`bus/pci/devices/${RAW_NIC}/iommu_group`))), '30');
      assert.equal(basename(readlinkSync(sys(`bus/pci/devices/${RAW_NIC}/driver`))), 'vfio-pci');
      assert.equal(existsSync(sys(`bus/pci/devices/${RAW_NIC}/vfio-dev`)), false);
      assert.deepEqual(readdirSync(sys(`bus/pci/devices/${NVME}/vfio-dev`)), ['vfio1']);
      assert.deepEqual(readdirSync(sys('class/vfio-dev')), ['vfio1']);
      assert.deepEqual(readdirSync(join(root, 'dev/vfio/devices')), ['vfio1']);
      assert.equal(read('module/vfio/parameters/enable_unsafe_noiommu_mode'), 'Y\n');
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it("without no-IOMMU mode the device is not VFIO's: no group, no driver link, no nodes", () => {
    const kernel = new Kernel({ host: NOIOMMU_HOST });
    const { root, sys, read } = tree(kernel);
    try {
      assert.deepEqual(readdirSync(sys('kernel/iommu_groups')), ['31']);
      assert.deepEqual(readdirSync(sys('class/vfio')), ['31']);
      assert.deepEqual(readdirSync(sys('bus/pci/devices')).sort(), [RAW_NIC, NVME].sort());
      assert.equal(read(`bus/pci/devices/${RAW_NIC}/vendor`), '0x8086\n');
      for (const name of ['iommu_group', 'driver', 'vfio-dev']) {
        assert.equal(existsSync(sys(`bus/pci/devices/${RAW_NIC}/${name}`)), false, name);
      }
      assert.deepEqual(readdirSync(sys('bus/pci/drivers/vfio-pci')), [NVME]);
      assert.deepEqual(
        charDevices(kernel).map((n) => n.path),
        ['/dev/iommu', '/dev/vfio/vfio', '/dev/vfio/31', '/dev/vfio/devices/vfio0'],
      );
      assert.equal(read('class/vfio/31/dev'), `${VFIO_GROUP_MAJOR}:0\n`);
      assert.equal(read('module/vfio/parameters/enable_unsafe_noiommu_mode'), 'N\n');
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

describe('fake tree of an SR-IOV host', () => {
  const kernel = new Kernel({ host: SRIOV_HOST });
  let t: ReturnType<typeof tree>;
  before(() => {
    t = tree(kernel);
  });
  after(() => rmSync(t.root, { recursive: true, force: true }));

  it('a PF shows sriov_numvfs and sriov_totalvfs, and virtfnN links to its VFs in BDF order', () => {
    const dev = (bdf: string) => `bus/pci/devices/${bdf}`;
    assert.equal(t.read(`${dev(PF)}/sriov_numvfs`), '2\n');
    assert.equal(t.read(`${dev(PF)}/sriov_totalvfs`), '2\n');
    const links = readdirSync(t.sys(dev(PF))).filter((n) => n.startsWith('virtfn'));
    assert.deepEqual(links.sort(), ['virtfn0', 'virtfn1']);
    assert.equal(readlinkSync(t.sys(`${dev(PF)}/virtfn0`)), `../${VF0}`);
    assert.equal(realpathSync(t.sys(`${dev(PF)}/virtfn0`)), realpathSync(t.sys(dev(VF0))));
    assert.equal(realpathSync(t.sys(`${dev(PF)}/virtfn1`)), realpathSync(t.sys(dev(VF1))));
  });

  it('a VF links its PF as physfn when the PF is a host device; others have no SR-IOV files', () => {
    const dev = (bdf: string) => `bus/pci/devices/${bdf}`;
    for (const vf of [VF0, VF1]) {
      assert.equal(readlinkSync(t.sys(`${dev(vf)}/physfn`)), `../${PF}`);
      assert.equal(realpathSync(t.sys(`${dev(vf)}/physfn`)), realpathSync(t.sys(dev(PF))));
      assert.equal(existsSync(t.sys(`${dev(vf)}/sriov_numvfs`)), false);
    }
    assert.equal(existsSync(t.sys(`${dev(HOST_VF)}/physfn`)), false);
    for (const name of ['physfn', 'sriov_numvfs', 'sriov_totalvfs', 'virtfn0']) {
      assert.equal(existsSync(t.sys(`${dev(PLAIN)}/${name}`)), false, name);
    }
  });
});
