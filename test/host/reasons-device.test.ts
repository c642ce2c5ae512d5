/**
 * The reasons of VFIO device and group rules that reasons.test.ts does not
 * pin: SR-IOV VF tokens (GET_DEVICE_FD's ` vf_token=`, FEATURE
 * PCI_VF_TOKEN and vfio_check_feature), no-IOMMU groups and their
 * container, a group's device fd refusing BIND_IOMMUFD, BAR, ROM and VGA
 * reads and writes, and mapped BAR accesses while Memory decode is off.
 * Each row goes through the call a client makes: open(2), the ioctl,
 * pread/pwrite, or the engine's MMIO operations for a mapped BAR.
 */
import assert from 'node:assert/strict';
import { Errno } from '../../src/abi/errno.ts';
import { IOMMU_VFIO_IOAS_OP, IommuVfioIoas, iommufdCmdNumber } from '../../src/abi/iommufd.ts';
import { VFIO_EXTENSION } from '../../src/abi/vfio.ts';
import type { Process, ProcessMm } from '../../src/host/process.ts';
import type { MmapHost } from '../../src/kernel/file.ts';
import { deviceMmapOp } from '../../src/server/device-mmap.ts';
import { OP } from '../../src/server/protocol.ts';
import {
  VFIO_DEVICE_FEATURE,
  VFIO_DEVICE_FEATURE_ID,
  vfioPciRegionOffset,
} from '../../src/vfio/pci/abi.ts';
import { parseUuid } from '../../src/vfio/pci/sriov.ts';
import { PAGE } from '../iommufd/util.ts';
import { memStore } from '../support.ts';
import { COMPAT, VfioClient } from '../vfio/client.ts';
import { NOIOMMU_HOST, RAW_NIC } from '../vfio/noiommu-host.ts';
import { IPR, SpaprClient } from '../vfio/spapr-client.ts';
import {
  deviceFeature,
  HOST_VF,
  PF,
  PLAIN,
  SRIOV_HOST,
  sriovGroups,
  VF0,
} from '../vfio/sriov-host.ts';
import {
  ACTION_TRIGGER,
  DATA_NONE,
  type Dev,
  MAP_SHARED,
  NVME,
  onDevice,
  PROT_RW,
  pin,
  type Row,
  scratch,
  setIrqs,
  traced,
  V2,
} from './reasons-support.ts';

const TOKEN = 'bd8d9d2b-5a5f-4f5a-a211-f591514ba1f3';
const OTHER = '00000000-0000-0000-0000-000000000001';
const { GET, SET } = VFIO_DEVICE_FEATURE;
const VF_TOKEN = VFIO_DEVICE_FEATURE_ID.PCI_VF_TOKEN;

/** `act` on a traced client of the SR-IOV host whose `bdfs` groups share one container; `open` opens a device by name. */
function onSriov(
  bdfs: string[],
  act: (c: VfioClient, open: (name: string) => number) => unknown,
): () => Process {
  return () => {
    const c = traced(new VfioClient({ host: SRIOV_HOST, personality: COMPAT }));
    const groups = sriovGroups(c, bdfs);
    act(c, (name) => c.getDeviceFd(groups.get(name.split(' ')[0]!)!, name).ret);
    return c.proc;
  };
}

/** FEATURE(`flags` | PCI_VF_TOKEN) with `payload` on the PF's device fd. */
const onPfToken = (flags: number, payload?: Uint8Array<ArrayBuffer>) =>
  onSriov([PF], (c, open) => deviceFeature(c, open(PF), flags | VF_TOKEN, payload));

const FAKE = '/dev/vfio/noiommu-30';
const NOIOMMU = BigInt(VFIO_EXTENSION.NOIOMMU_IOMMU);

/** `act` on a traced client of the no-IOMMU host (vfioNoiommu on, /dev/vfio/vfio as `container`). */
function onNoiommu(
  act: (c: VfioClient) => unknown,
  container: 'legacy' | 'iommufd' = 'legacy',
): () => Process {
  return () => {
    const c = traced(
      new VfioClient({
        host: NOIOMMU_HOST,
        personality: { vfioNoiommu: true, vfioContainer: container },
      }),
    );
    act(c);
    return c.proc;
  };
}

/** capset(2) dropping CAP_SYS_RAWIO: the fds the process holds stay open. */
function dropRawio(c: VfioClient): void {
  (c.proc.creds as { capSysRawio?: boolean }).capSysRawio = false;
}

/** The fake group set to a legacy container: `{ container, group }`. */
function fakeInContainer(c: VfioClient) {
  const container = c.open('/dev/vfio/vfio').ret;
  const group = c.open(FAKE).ret;
  assert.equal(c.setContainer(group, container).ret, 0);
  return { container, group };
}

/** pread of `count` bytes of the NVMe function's region `index` at `pos`. */
const pread = (d: Dev, index: number, pos = 0n, count = 4) =>
  d.c.proc.pread(d.dev, scratch(d), count, vfioPciRegionOffset(index) + pos);

/** Memory decode off: the Command register written with only Bus Master set. */
const decodeOff = (d: Dev) =>
  assert.equal(
    d.c.proc.pwrite(d.dev, d.c.proc.scratch(Uint8Array.of(4, 0)), 2, vfioPciRegionOffset(7) + 4n),
    2,
  );

/** An in-memory store for a BAR's shared file, and a bus range at 0. */
const HOST: MmapHost = { share: memStore, busRange: () => 0n };
const MAPPED_AT = 0x7f00_0000_0000n;

/**
 * The Errno of engine op `op` (MMIO or MMIO_FAULT, `args` after the
 * address) on the NVMe function's BAR0, mapped at MAPPED_AT, with Memory
 * decode turned off after mapping.
 */
function mappedBarErrno(op: number, args: bigint[]): () => Errno {
  return () => {
    let err: Errno | undefined;
    onDevice((d) => {
      const proc = d.c.proc as Process<ProcessMm>;
      const req = (o: number, a: bigint[]) =>
        deviceMmapOp(proc, { op: o, pid: proc.pid, tid: proc.pid, args: a }, HOST);
      const map = [BigInt(d.dev), 0n, 4n * PAGE, BigInt(MAP_SHARED), BigInt(PROT_RW), MAPPED_AT];
      assert.equal(req(OP.MMAP, map).ret, 0n);
      decodeOff(d);
      try {
        req(op, [MAPPED_AT, ...args]);
      } catch (e) {
        if (!(e instanceof Errno)) throw e;
        err = e;
      }
    })();
    return err ?? assert.fail('the access succeeded');
  };
}

const deviceRows: Row[] = [
  [
    'GET_DEVICE_FD of a VF of a vfio-pci PF without a token',
    onSriov([PF, VF0], (_c, open) => open(VF0)),
    'EACCES',
    'VF token required to access the device',
    'vfio_pci_core_match_token_uuid',
  ],
  [
    'GET_DEVICE_FD of a VF with another token',
    onSriov([PF, VF0], (_c, open) => {
      assert.ok(open(`${PF} vf_token=${TOKEN}`) >= 0);
      open(`${VF0} vf_token=${OTHER}`);
    }),
    'EACCES',
    'incorrect VF token for the device',
    'vfio_pci_core_match_token_uuid',
  ],
  [
    'GET_DEVICE_FD of a PF whose VF is open, without a token',
    onSriov([PF, VF0], (_c, open) => {
      assert.ok(open(`${PF} vf_token=${TOKEN}`) >= 0);
      assert.ok(open(`${VF0} vf_token=${TOKEN}`) >= 0);
      open(PF);
    }),
    'EACCES',
    'VF token required to access the device',
    'vfio_pci_core_match_token_uuid',
  ],
  [
    'GET_DEVICE_FD of a PF whose VF is open, with another token',
    onSriov([PF, VF0], (_c, open) => {
      assert.ok(open(`${PF} vf_token=${TOKEN}`) >= 0);
      assert.ok(open(`${VF0} vf_token=${TOKEN}`) >= 0);
      open(`${PF} vf_token=${OTHER}`);
    }),
    'EACCES',
    'incorrect VF token for the device',
    'vfio_pci_core_match_token_uuid',
  ],
  [
    'GET_DEVICE_FD with a token, the PF is not vfio-pci’s',
    onSriov([HOST_VF], (_c, open) => open(`${HOST_VF} vf_token=${TOKEN}`)),
    'EINVAL',
    'VF token given, the PF is not bound to vfio-pci',
    'vfio_pci_core_match_token_uuid',
  ],
  [
    'GET_DEVICE_FD with a malformed token',
    onSriov([VF0], (_c, open) => open(`${VF0} vf_token=${TOKEN.replace('b', 'g')}`)),
    'EINVAL',
    `bad UUID '${TOKEN.replace('b', 'g')}'`,
    'uuid_parse',
  ],
  [
    'GET_DEVICE_FD with a short token',
    onSriov([VF0], (_c, open) => open(`${VF0} vf_token=${TOKEN.slice(1)}`)),
    'EINVAL',
    'short vf_token',
    'vfio_pci_core_match',
  ],
  [
    'FEATURE PCI_VF_TOKEN on a function that is no PF',
    onSriov([PLAIN], (c, open) => deviceFeature(c, open(PLAIN), SET | VF_TOKEN, parseUuid(TOKEN))),
    'ENOTTY',
    'not an SR-IOV PF',
    'vfio_pci_core_feature_token',
  ],
  [
    'FEATURE PCI_VF_TOKEN GET',
    onPfToken(GET, new Uint8Array(16)),
    'EINVAL',
    'feature op not supported',
    'vfio_check_feature',
  ],
  [
    'FEATURE PCI_VF_TOKEN with neither GET nor SET',
    onPfToken(0, new Uint8Array(16)),
    'EINVAL',
    'neither GET nor SET',
    'vfio_check_feature',
  ],
  [
    'FEATURE PCI_VF_TOKEN SET of 15 bytes',
    onPfToken(SET, new Uint8Array(15)),
    'EINVAL',
    'feature payload too small',
    'vfio_check_feature',
  ],
  [
    'open of a device node that does not exist',
    () => {
      const c = traced(new VfioClient());
      c.open('/dev/vfio/devices/vfio99');
      return c.proc;
    },
    'ENOENT',
    '/dev/vfio/devices/vfio99 is not a device uiommu serves',
    'path_openat',
  ],
  [
    'BIND_IOMMUFD on a device fd from the group',
    onDevice((d) => d.c.bind(d.dev, d.c.open('/dev/iommu').ret)),
    'EINVAL',
    'BIND_IOMMUFD on a group device fd',
    'vfio_df_ioctl_bind_iommufd',
  ],
  [
    'pread of a BAR the function lacks',
    onDevice((d) => pread(d, 2)),
    'EINVAL',
    'BAR2 offset 0',
    'vfio_pci_bar_rw',
  ],
  [
    'pread past the end of a BAR',
    onDevice((d) => pread(d, 0, 0x4000n)),
    'EINVAL',
    'BAR0 offset 16384',
    'vfio_pci_bar_rw',
  ],
  [
    'pread of a memory BAR with Memory decode off',
    onDevice((d) => {
      decodeOff(d);
      pread(d, 0);
    }),
    'EIO',
    'memory decode disabled',
    'vfio_pci_bar_rw',
  ],
  [
    'pread of the ROM of a function without one',
    onDevice((d) => pread(d, 6)),
    'EINVAL',
    'the function has no ROM',
    'vfio_pci_bar_rw',
  ],
  [
    'pread of the VGA region',
    onDevice((d) => pread(d, 8)),
    'EINVAL',
    'no VGA region (VGA access is not modelled)',
    'vfio_pci_vga_rw',
  ],
  [
    'a trapped access to a mapped BAR with Memory decode off',
    mappedBarErrno(OP.MMIO, [4n]),
    'EIO',
    'memory decode disabled',
    'vfio_pci_mmap_huge_fault',
  ],
  [
    'a fault on a zapped BAR mapping with Memory decode off',
    mappedBarErrno(OP.MMIO_FAULT, []),
    'EIO',
    'memory decode disabled',
    'vfio_pci_mmap_huge_fault',
  ],
  [
    'open of a no-IOMMU group without CAP_SYS_RAWIO',
    onNoiommu((c) => {
      dropRawio(c);
      c.open(FAKE);
    }),
    'EPERM',
    'a no-IOMMU group needs CAP_SYS_RAWIO',
    'vfio_group_fops_open',
  ],
  [
    'SET_CONTAINER of a no-IOMMU group without CAP_SYS_RAWIO',
    onNoiommu((c) => {
      const container = c.open('/dev/vfio/vfio').ret;
      const group = c.open(FAKE).ret;
      dropRawio(c);
      c.setContainer(group, container);
    }),
    'EPERM',
    'a no-IOMMU group needs CAP_SYS_RAWIO',
    'vfio_container_attach_group',
  ],
  [
    'a real group joins a no-IOMMU container',
    onNoiommu((c) => {
      const { container } = fakeInContainer(c);
      c.setContainer(c.open('/dev/vfio/31').ret, container);
    }),
    'EPERM',
    'no-IOMMU and IOMMU groups cannot share a container',
    'vfio_container_attach_group',
  ],
  [
    'SET_IOMMU(NOIOMMU) without CAP_SYS_RAWIO',
    onNoiommu((c) => {
      const { container } = fakeInContainer(c);
      dropRawio(c);
      c.ioctl(container, 'VFIO_SET_IOMMU', NOIOMMU);
    }),
    'EPERM',
    'no CAP_SYS_RAWIO',
    'vfio_noiommu_open',
  ],
  [
    'MAP_DMA on a no-IOMMU container',
    onNoiommu((c) => {
      const { container } = fakeInContainer(c);
      assert.equal(c.ioctl(container, 'VFIO_SET_IOMMU', NOIOMMU).ret, 0);
      c.mapDma(container, c.mem(PAGE), 0n, PAGE);
    }),
    'ENOTTY',
    'only CHECK_EXTENSION on a no-IOMMU container',
    'vfio_noiommu_ioctl',
  ],
  [
    'GET_DEVICE_FD of a no-IOMMU device without CAP_SYS_RAWIO',
    onNoiommu((c) => {
      const { container, group } = fakeInContainer(c);
      assert.equal(c.ioctl(container, 'VFIO_SET_IOMMU', NOIOMMU).ret, 0);
      dropRawio(c);
      c.getDeviceFd(group, RAW_NIC);
    }),
    'EPERM',
    'a no-IOMMU device needs CAP_SYS_RAWIO',
    'vfio_df_group_open',
  ],
  [
    'GET_DEVICE_FD of a no-IOMMU device on an iommufd with a compat IOAS',
    onNoiommu((c) => {
      const fd = c.open('/dev/iommu').ret;
      const group = c.open(FAKE).ret;
      assert.equal(c.setContainer(group, fd).ret, 0);
      const alloc = c.proc.scratch(Uint8Array.of(12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0));
      assert.equal(c.proc.ioctl(fd, iommufdCmdNumber(c.kernel.abi, 'IOMMU_IOAS_ALLOC'), alloc), 0);
      const ioasId = new DataView(c.proc.mm.read(alloc + 8n, 4).buffer).getUint32(0, true);
      const cmd = iommufdCmdNumber(c.kernel.abi, 'IOMMU_VFIO_IOAS');
      const set = { size: 12, ioas_id: ioasId, op: IOMMU_VFIO_IOAS_OP.SET };
      assert.equal(c.proc.call(fd, cmd, IommuVfioIoas, set).ret, 0);
      c.getDeviceFd(group, RAW_NIC);
    }),
    'EPERM',
    'no-IOMMU device on an iommufd',
    'vfio_df_group_open',
  ],
  [
    'UNSET_CONTAINER with a device open under an iommufd’s SPAPR backend',
    () => {
      const c = traced(new SpaprClient({ personality: { vfioContainer: 'iommufd' } }));
      c.container = c.open('/dev/vfio/vfio').ret;
      const group = c.addGroup(1);
      assert.equal(c.ioctl(c.container, 'VFIO_SET_IOMMU', BigInt(V2)).ret, 0);
      assert.ok(c.getDeviceFd(group, IPR).ret >= 0);
      c.ioctl(group, 'VFIO_GROUP_UNSET_CONTAINER');
      return c.proc;
    },
    'EBUSY',
    'devices open under the SPAPR container of the iommufd',
    'vfio_group_ioctl_unset_container',
  ],
];

pin('vfio-device.md (VF tokens, no-IOMMU, region reads, mapped BARs)', deviceRows);

pin('vfio-device.md (SET_IRQS header)', [
  [
    'SET_IRQS of an index past the last',
    onDevice((d) => setIrqs(d, DATA_NONE | ACTION_TRIGGER, 5)),
    'EINVAL',
    'short argsz, index past the last, start + count wraps, or unknown flags',
    'vfio_set_irqs_validate_and_prepare',
  ],
]);

pin('vfio-device.md (6.12 cdev BIND_IOMMUFD)', [
  [
    'BIND_IOMMUFD with argsz below the 16-byte struct (6.12 copy)',
    () => {
      const c = traced(new VfioClient({ version: '6.12' }));
      const dev = c.open(c.cdevPath(NVME)).ret;
      c.bind(dev, c.open('/dev/iommu').ret, { argsz: 8 });
      return c.proc;
    },
    'EINVAL',
    'argsz 8 below 16',
    'vfio_df_ioctl_bind_iommufd',
  ],
]);
