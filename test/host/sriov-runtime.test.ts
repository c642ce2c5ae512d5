/**
 * SR-IOV at run time (src/host/sriov.ts): the x86 preset's X710 PF
 * (0000:04:00.0, TotalVFs 4, none enabled) creates and removes VFs when its
 * sriov_numvfs is written, with sriov_numvfs_store's and vfio-pci's errnos.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Errno } from '../../src/abi/errno.ts';
import { Kernel } from '../../src/host/kernel.ts';
import { parseU16, sriovNumvfs, sriovTotalvfs, writeSriovNumvfs } from '../../src/host/sriov.ts';
import { charDevices } from '../../src/server/devices.ts';
import { vfioCdevName } from '../../src/vfio/cdev.ts';

const PF = '0000:04:00.0';

const errno = (code: string) => (e: unknown) => e instanceof Errno && e.code === code;

function kernel(enable = true): Kernel {
  return new Kernel({ host: 'x86', personality: { vfioPciEnableSriov: enable } });
}

describe('sriov_numvfs', () => {
  it('kstrtou16: decimal, hex, octal, one trailing newline; anything else EINVAL, above u16 ERANGE', () => {
    assert.equal(parseU16('3\n'), 3);
    assert.equal(parseU16('0x10'), 16);
    assert.equal(parseU16('010'), 8);
    assert.equal(parseU16('+2'), 2);
    for (const bad of ['', 'abc', '-1', '1 ', '2\n\n', '0x', '08', ' 1']) {
      assert.throws(() => parseU16(bad), errno('EINVAL'), JSON.stringify(bad));
    }
    assert.throws(() => parseU16('65536'), errno('ERANGE'));
  });

  it('N creates N VFs with their groups, nodes and cdevs; 0 removes them', () => {
    const k = kernel();
    assert.equal(sriovTotalvfs(k, PF), 4);
    assert.equal(sriovNumvfs(k, PF), 0);
    const groupsBefore = k.vfioGroups.size;
    writeSriovNumvfs(k, PF, '2\n');
    assert.equal(sriovNumvfs(k, PF), 2);
    const vf0 = k.host.devices.get('0000:04:02.0')!;
    const vf1 = k.host.devices.get('0000:04:02.1')!;
    assert.deepEqual([vf0.spec.physfn, vf0.spec.device, vf0.spec.vendor], [PF, 0x154c, 0x8086]);
    assert.notEqual(vf0.device.group, vf1.device.group);
    assert.equal(k.vfioGroups.size, groupsBefore + 2);
    const g = vf0.device.group.id;
    assert.ok(!k.host.spec.devices.some((d) => d.group === g), 'a new group number');
    const nodes = charDevices(k).map((n) => n.path);
    assert.ok(nodes.includes(`/dev/vfio/${g}`));
    const cdev = vfioCdevName(k, '0000:04:02.0')!;
    assert.ok(nodes.includes(`/dev/vfio/devices/${cdev}`));
    // the VF is vfio-pci's and knows its PF (VF token rules)
    const pfPci = k.vfioGroups.get(k.host.devices.get(PF)!.device.group.id)!.devices[0]!.pci;
    assert.equal(k.vfioGroups.get(g)!.devices[0]!.pci.sriovPf, pfPci);
    assert.equal(k.vfioGroups.get(g)!.devices[0]!.pci.irqInfo(0).count, 0, 'a VF has no INTx');
    writeSriovNumvfs(k, PF, '0');
    assert.equal(sriovNumvfs(k, PF), 0);
    assert.equal(k.vfioGroups.size, groupsBefore);
    assert.ok(!charDevices(k).some((n) => n.path === `/dev/vfio/${g}`));
    writeSriovNumvfs(k, PF, '4');
    assert.equal(sriovNumvfs(k, PF), 4);
  });

  it('errnos: ERANGE above TotalVFs, EBUSY for N→M, same count a no-op, ENOENT when disabled', () => {
    const k = kernel();
    assert.throws(() => writeSriovNumvfs(k, PF, '5'), errno('ERANGE'));
    assert.throws(() => writeSriovNumvfs(k, PF, 'x'), errno('EINVAL'));
    writeSriovNumvfs(k, PF, '1');
    assert.throws(() => writeSriovNumvfs(k, PF, '2'), errno('EBUSY'));
    writeSriovNumvfs(k, PF, '1');
    assert.equal(sriovNumvfs(k, PF), 1);
    const off = kernel(false);
    assert.throws(() => writeSriovNumvfs(off, PF, '1'), errno('ENOENT'));
    writeSriovNumvfs(off, PF, '0'); // the count already enabled: nothing to do
    assert.throws(() => writeSriovNumvfs(off, '0000:02:00.0', '1'), errno('ERANGE'), 'no PF');
  });

  it('disabling while a VF is open is EBUSY and signals its REQ eventfd', () => {
    const k = kernel();
    writeSriovNumvfs(k, PF, '1');
    const proc = k.spawn();
    const g = k.host.devices.get('0000:04:02.0')!.device.group.id;
    const fd = proc.open(`/dev/vfio/${g}`);
    assert.ok(fd >= 0);
    assert.throws(() => writeSriovNumvfs(k, PF, '0'), errno('EBUSY'));
    assert.equal(sriovNumvfs(k, PF), 1);
    proc.close(fd);
    writeSriovNumvfs(k, PF, '0');
    assert.equal(sriovNumvfs(k, PF), 0);
  });
});
