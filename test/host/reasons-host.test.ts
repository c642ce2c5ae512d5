/**
 * The reasons of the host layer's rules a client meets with ordinary
 * system calls (src/host/): the fd table (fdget, alloc_fd, replace_fd,
 * dup3, pwrite64), open(2) of paths uiommu does not serve, read/write/ioctl
 * on files that lack them or were opened without the access, the sysfs
 * files it generates, and SR-IOV's `sriov_numvfs`.
 */
import assert from 'node:assert/strict';
import { IommuFaultAlloc, iommufdCmdNumber } from '../../src/abi/iommufd.ts';
import { O_RDONLY, O_WRONLY } from '../../src/host/file.ts';
import type { KernelOptions } from '../../src/host/kernel.ts';
import type { Process } from '../../src/host/process.ts';
import { x86 } from '../../src/host/topology/index.ts';
import type { PciDeviceSpec } from '../../src/vfio/pci/spec.ts';
import { VfioClient } from '../vfio/client.ts';
import { NVME, pin, type Row, traced } from './reasons-support.ts';

const FAULT_QUEUE_ALLOC = iommufdCmdNumber('generic', 'IOMMU_FAULT_QUEUE_ALLOC');
const X710 = '0000:04:00.0'; // an SR-IOV PF alone in group 14 of the x86 preset, up to 4 VFs
const NUMVFS = `/sys/bus/pci/devices/${X710}/sriov_numvfs`;
/** A read-only debugfs file the engine generates (intel/debugfs.c's page-table dump). */
const DUMP = `/sys/kernel/debug/iommu/intel/${NVME}/domain_translation_struct`;
const SRIOV: KernelOptions = { personality: { vfioPciEnableSriov: true } };

/** SRIOV's kernel with the X710 changed by `change`. */
function x710(change: Partial<PciDeviceSpec>): KernelOptions {
  const devices = x86.devices.map((d) => (d.bdf === X710 ? { ...d, ...change } : d));
  return { ...SRIOV, host: { ...x86, devices } };
}

/** `act` on a traced process of a kernel made with `opts`. */
function onProc(act: (p: Process) => unknown, opts: KernelOptions = {}): () => Process {
  return () => {
    const c = traced(new VfioClient(opts));
    act(c.proc);
    return c.proc;
  };
}

/** write(2) of `text` to `path` opened write-only; returns the write's answer. */
function writeFile(p: Process, path: string, text: string): number {
  const fd = p.open(path, O_WRONLY);
  assert.ok(fd >= 0, `open ${path}`);
  const bytes = new TextEncoder().encode(text);
  return p.write(fd, p.scratch(bytes), bytes.length);
}

const hostRows: Row[] = [
  [
    'an ioctl on an fd that is not open',
    onProc((p) => p.ioctl(77, 0x3b80, 0n)),
    'EBADF',
    'fd 77 is not open',
    'fdget',
  ],
  [
    'pwrite64 at a negative offset',
    onProc((p) => p.pwrite(p.open('/dev/iommu'), p.scratch(new Uint8Array(4)), 4, -1n)),
    'EINVAL',
    'negative offset',
    'ksys_pwrite64',
  ],
  [
    'dup2 to an fd past the table',
    onProc((p) => p.dup2(p.open('/dev/iommu'), 5000)),
    'EBADF',
    'newfd 5000 outside 0..1023',
    'ksys_dup3',
  ],
  [
    'an open the preload installs at an fd past the table',
    onProc((p) => p.openAt(2000, '/dev/iommu')),
    'EBADF',
    'fd 2000 outside 0..1023',
    'replace_fd',
  ],
  [
    'open with every fd taken',
    onProc((p) => {
      while (p.open('/dev/iommu') >= 0);
    }),
    'EMFILE',
    'no free fd up to 1023',
    'alloc_fd',
  ],
  [
    'a new file of a served process with no spare fd reserved (IOMMU_FAULT_QUEUE_ALLOC)',
    onProc((p) => {
      p.sparesOnly = true;
      p.call(p.open('/dev/iommu'), FAULT_QUEUE_ALLOC, IommuFaultAlloc, {});
    }),
    'EMFILE',
    'no spare fd reserved in the process',
    'get_unused_fd_flags',
  ],
  [
    'open of a device node uiommu does not serve',
    onProc((p) => p.open('/dev/vfio/77')),
    'ENOENT',
    '/dev/vfio/77 is not a node uiommu serves',
    'path_openat',
  ],
  [
    'open of another process’s fail-nth',
    onProc((p) => p.open(`/proc/${p.pid + 1}/task/${p.pid + 1}/fail-nth`)),
    'ENOENT',
    'another process’s fail-nth is not served',
    'path_openat',
  ],
  [
    'open of a sysfs attribute uiommu does not generate',
    onProc((p) => p.open(`/sys/bus/pci/devices/${NVME}/nosuch`, O_RDONLY)),
    'ENOENT',
    `/sys/bus/pci/devices/${NVME}/nosuch is not an attribute uiommu serves`,
    'path_openat',
  ],
  [
    'write of a read-only debugfs file',
    onProc((p) => writeFile(p, DUMP, '1')),
    'EINVAL',
    'a read-only debugfs file has no write',
    'vfs_write',
  ],
  [
    'an ioctl on a generated sysfs/debugfs file',
    onProc((p) => p.ioctl(p.open(DUMP, O_RDONLY), 0x5401, 0n)),
    'ENOTTY',
    'sysfs has no ioctls',
    'vfs_ioctl',
  ],
  [
    'read of a file opened write-only',
    onProc((p) => p.read(p.open(NUMVFS, O_WRONLY), p.scratch(new Uint8Array(8)), 8)),
    'EBADF',
    'the file is not open for reading',
    'vfs_read',
  ],
  [
    'write of a file opened read-only',
    onProc((p) => p.write(p.open(DUMP, O_RDONLY), p.scratch(new Uint8Array(2)), 2)),
    'EBADF',
    'the file is not open for writing',
    'vfs_write',
  ],
  [
    'read of /dev/iommu',
    onProc((p) => p.read(p.open('/dev/iommu'), p.scratch(new Uint8Array(8)), 8)),
    'EINVAL',
    'iommufd cannot be read',
    'vfs_read',
  ],
  [
    'write of /dev/iommu',
    onProc((p) => p.write(p.open('/dev/iommu'), p.scratch(new Uint8Array(8)), 8)),
    'EINVAL',
    'iommufd cannot be written',
    'vfs_write',
  ],
  [
    'sriov_numvfs without vfio_pci.enable_sriov',
    onProc((p) => writeFile(p, NUMVFS, '2')),
    'ENOENT',
    'vfio_pci.enable_sriov is off',
    'vfio_pci_sriov_configure',
  ],
  [
    'sriov_numvfs above TotalVFs',
    onProc((p) => writeFile(p, NUMVFS, '9'), SRIOV),
    'ERANGE',
    '9 VFs, TotalVFs is 4',
    'sriov_numvfs_store',
  ],
  [
    'sriov_numvfs changed without going through 0',
    onProc((p) => {
      assert.equal(writeFile(p, NUMVFS, '2'), 1);
      writeFile(p, NUMVFS, '3');
    }, SRIOV),
    'EBUSY',
    '2 VFs already enabled; disable before enabling 3',
    'sriov_numvfs_store',
  ],
  [
    'sriov_numvfs 0 while a VF is open',
    onProc((p) => {
      assert.equal(writeFile(p, NUMVFS, '1'), 1);
      const groups = [...p.kernel.vfioGroups.keys()];
      assert.ok(p.open(`/dev/vfio/${Math.max(...groups)}`) >= 0);
      writeFile(p, NUMVFS, '0');
    }, SRIOV),
    'EBUSY',
    'a VF is in use',
    'vfio_pci_core_sriov_configure',
  ],
  [
    'sriov_numvfs of a PF no VFIO driver has (no IOMMU, no no-IOMMU mode)',
    onProc((p) => writeFile(p, NUMVFS, '1'), x710({ iommu: '' })),
    'ENOENT',
    'no driver bound to the PF',
    'sriov_numvfs_store',
  ],
];

pin('host (fd table, open, read/write/ioctl, sysfs, SR-IOV)', hostRows);
