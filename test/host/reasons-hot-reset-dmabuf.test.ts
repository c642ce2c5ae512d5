/**
 * The reasons of VFIO_DEVICE_GET_PCI_HOT_RESET_INFO and
 * VFIO_DEVICE_PCI_HOT_RESET (src/vfio/hot-reset.ts, on the hot-reset rig's
 * host), of Linux 7.2's VFIO_DEVICE_FEATURE_DMA_BUF and the iommufd map of
 * its dma-buf (src/vfio/pci/dmabuf.ts, on the dma-buf rig), and of a cdev's
 * BIND_IOMMUFD argsz check (src/vfio/cdev.ts). Each row goes through the
 * ioctl a client makes; the errnos themselves are tested in
 * test/vfio/hot-reset.test.ts and test/vfio/dmabuf.test.ts.
 */
import type { Process } from '../../src/host/process.ts';
import { client } from '../support.ts';
import { PAGE, RW, rig } from '../vfio/dmabuf-rig.ts';
import { Rig } from '../vfio/hot-reset-rig.ts';
import { onCdev, pin, traced } from './reasons-support.ts';

/** `act` on a traced hot-reset rig; the process to read. */
function onRig(act: (r: Rig) => unknown): () => Process {
  return () => {
    const r = new Rig();
    traced(r.c);
    act(r);
    return r.c.proc;
  };
}

/** `act` on the group-opened 01:00.0 (bus of groups 1 and 2): the rig, its device fd, the two group fds. */
const onBus = (act: (r: Rig, dev: number, g1: number, g2: number) => unknown) =>
  onRig((r) => {
    const g1 = r.group(1);
    const dev = r.device(g1, '0000:01:00.0');
    act(r, dev, g1, r.group(2));
  });

/** `act` on a traced dma-buf rig of `bdf` (7.2 unless `version`). */
function onDmabuf(
  act: (x: ReturnType<typeof rig>) => unknown,
  bdf?: string,
  version?: Parameters<typeof rig>[1],
): () => Process {
  return () => {
    const x = rig(bdf, version);
    traced(x.c);
    act(x);
    return x.c.proc;
  };
}

/** Two ranges of `length` from the BAR's start. */
const twice = (length: bigint): [bigint, bigint][] => [
  [0n, length],
  [0n, length],
];

const INFO = 'vfio_pci_ioctl_get_pci_hot_reset_info';
const RESET = 'vfio_pci_ioctl_pci_hot_reset';
const GROUPS = 'vfio_pci_ioctl_pci_hot_reset_groups';
const SET = 'vfio_pci_dev_set_hot_reset';
const FEATURE = 'vfio_pci_core_feature_dma_buf';
const VALIDATE = 'validate_dmabuf_input';
const FILL = 'vfio_pci_core_fill_phys_vec';

pin('vfio-device.md §hot reset', [
  [
    'GET_PCI_HOT_RESET_INFO with room for fewer functions than the bus has',
    onBus((r, dev) => r.info(dev, 1)),
    'ENOSPC',
    '2 functions, room for 1',
    INFO,
  ],
  [
    'GET_PCI_HOT_RESET_INFO on a bus with a function in no IOMMU group',
    onRig((r) => r.info(r.device(r.group(5), '0000:03:00.0'), 4)),
    'EPERM',
    '0000:03:00.1 is in no IOMMU group',
    'vfio_pci_fill_devs',
  ],
  [
    'PCI_HOT_RESET of a group-opened device with no group fds',
    onBus((r, dev) => r.reset(dev, [])),
    'EINVAL',
    'a group-opened device takes its group fds',
    RESET,
  ],
  [
    'PCI_HOT_RESET of a cdev-opened device with group fds',
    onRig((r) => {
      const a = r.cdev('0000:02:00.0', r.c.open('/dev/iommu').ret);
      r.reset(a.fd, [3], { count: 1 });
    }),
    'EINVAL',
    'a cdev-opened device takes a zero-length array',
    RESET,
  ],
  [
    'PCI_HOT_RESET with more group fds than functions the reset reaches',
    onBus((r, dev, g1, g2) => r.reset(dev, [g1, g2, g1])),
    'EINVAL',
    '3 group fds for a reset of 2 functions',
    GROUPS,
  ],
  [
    'PCI_HOT_RESET with a group fd that is not open',
    onBus((r, dev, g1) => r.reset(dev, [g1, 99])),
    'EBADF',
    'fd 99 is not open',
    GROUPS,
  ],
  [
    'PCI_HOT_RESET with the container fd among the group fds',
    onBus((r, dev, g1) => r.reset(dev, [g1, r.container])),
    'EINVAL',
    'fd 3 is not a VFIO group',
    GROUPS,
  ],
  [
    'PCI_HOT_RESET reaching a function without IOMMU (outside the device set)',
    onRig((r) => {
      const g5 = r.group(5);
      r.reset(r.device(g5, '0000:03:00.0'), [g5]);
    }),
    'EINVAL',
    '0000:03:00.1 is outside the device set',
    SET,
  ],
  [
    "PCI_HOT_RESET without the group fd of the bus's other function",
    onBus((r, dev, g1) => r.reset(dev, [g1])),
    'EINVAL',
    '0000:01:00.1 is not owned by the caller',
    SET,
  ],
]);

pin('vfio-device.md §dma-buf (7.2)', [
  [
    'FEATURE DMA_BUF on 6.18 (no CONFIG_VFIO_PCI_DMABUF)',
    onDmabuf((x) => x.feature({}), '0000:00:03.0', '6.18'),
    'ENOTTY',
    'no CONFIG_VFIO_PCI_DMABUF',
    'vfio_pci_core_ioctl_feature',
  ],
  [
    'FEATURE DMA_BUF with nr_ranges 0',
    onDmabuf((x) => x.feature({ nr_ranges: 0 })),
    'EINVAL',
    'nr_ranges 0 or flags set',
    FEATURE,
  ],
  [
    'FEATURE DMA_BUF of the ROM region',
    onDmabuf((x) => x.feature({ region_index: 6 })),
    'ENODEV',
    'region 6 is no BAR of the function',
    FEATURE,
  ],
  [
    'FEATURE DMA_BUF with more than 4 MiB of ranges',
    onDmabuf((x) => x.feature({ nr_ranges: 262_145 })),
    'ENOMEM',
    '262145 ranges',
    'memdup_array_user',
  ],
  [
    'FEATURE DMA_BUF with an unaligned range',
    onDmabuf((x) => x.feature({}, [[0x800n, PAGE]])),
    'EINVAL',
    'a range is empty or not page-aligned',
    VALIDATE,
  ],
  [
    'FEATURE DMA_BUF with lengths adding up past 2^64',
    onDmabuf((x) => x.feature({}, twice(1n << 63n))),
    'EINVAL',
    'the ranges add up past 2^64',
    VALIDATE,
  ],
  [
    'FEATURE DMA_BUF with lengths adding up to 2^63',
    onDmabuf((x) => x.feature({}, twice(1n << 62n))),
    'EINVAL',
    'the ranges add up to 2^63 or more',
    VALIDATE,
  ],
  [
    'FEATURE DMA_BUF of an I/O BAR',
    onDmabuf((x) => x.feature({ region_index: 1 }), '0000:00:04.0'),
    'EINVAL',
    'an I/O BAR has no peer-to-peer provider',
    'vfio_pci_core_get_dmabuf_phys',
  ],
  [
    'FEATURE DMA_BUF with a range whose bus address wraps',
    onDmabuf((x) => x.feature({}, [[(1n << 64n) - PAGE, PAGE]])),
    'EOVERFLOW',
    'a range wraps the bus address',
    FILL,
  ],
  [
    'FEATURE DMA_BUF with a range past the end of the BAR',
    onDmabuf((x) => x.feature({}, [[1n << 20n, PAGE]])),
    'EINVAL',
    'a range ends past the BAR',
    FILL,
  ],
  [
    'IOAS_MAP_FILE of a two-range dma-buf',
    onDmabuf((x) => {
      const fd = x.feature({}, [
        [0n, PAGE],
        [0x8000n, PAGE],
      ]).ret;
      const f = client(x.c.kernel, x.c.proc);
      const ioas = f.ioas();
      f.call('IOMMU_IOAS_MAP_FILE', { flags: RW, ioas_id: ioas, fd, start: 0n, length: PAGE });
    }),
    'EOPNOTSUPP',
    'iommufd maps a one-range dma-buf only',
    'vfio_pci_dma_buf_iommufd_map',
  ],
]);

pin('vfio-device.md §cdev', [
  [
    "BIND_IOMMUFD with argsz below 16 (6.18's get_user of argsz, before the struct copy)",
    onCdev((c, dev, iommufd) => c.bind(dev, iommufd, { argsz: 8 })),
    'EINVAL',
    'argsz 8 below 16',
    'vfio_df_ioctl_bind_iommufd',
  ],
]);
