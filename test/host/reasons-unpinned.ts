/**
 * The known-missing list of the pinned-reason gate (reasons-gate.test.ts):
 * the failure sites, per area, that no row of a reason table pins yet. It
 * may only shrink: pin a site, then remove it here (the gate fails while a
 * pinned site is still listed, and on a new site that is on no list).
 */
export const UNPINNED: Readonly<Record<string, readonly string[]>> = {
  'src/vfio': [
    'src/vfio/hot-reset.ts · vfio_pci_dev_set_hot_reset · {outside.spec.bdf} is outside the device set',
    'src/vfio/hot-reset.ts · vfio_pci_dev_set_hot_reset · {stranger.name} is not owned by the caller',
    'src/vfio/hot-reset.ts · vfio_pci_fill_devs · {f.spec.bdf} is in no IOMMU group',
    'src/vfio/hot-reset.ts · vfio_pci_ioctl_get_pci_hot_reset_info · {walk.length} functions, room for {room}',
    "src/vfio/hot-reset.ts · vfio_pci_ioctl_pci_hot_reset · vdev.cdevOpened ? 'a cdev-opened device takes a zero-length array' : 'a group-opened device takes its group fds'",
    'src/vfio/hot-reset.ts · vfio_pci_ioctl_pci_hot_reset_groups · fd {fd} is not a VFIO group',
    'src/vfio/hot-reset.ts · vfio_pci_ioctl_pci_hot_reset_groups · fd {fd} is not open',
    'src/vfio/hot-reset.ts · vfio_pci_ioctl_pci_hot_reset_groups · {count} group fds for a reset of {max} functions',
  ],
  'src/vfio/pci': [
    'src/vfio/pci/device-fops.ts · uiommu_pci_hot_reset · a function without the VFIO core has no hot reset',
    'src/vfio/pci/device-fops.ts · vfio_pci_core_ioctl_feature · no CONFIG_VFIO_PCI_DMABUF',
    'src/vfio/pci/dmabuf.ts · memdup_array_user · {req.nr_ranges} ranges',
    'src/vfio/pci/dmabuf.ts · validate_dmabuf_input · a range is empty or not page-aligned',
    'src/vfio/pci/dmabuf.ts · validate_dmabuf_input · the ranges add up past 2^64',
    'src/vfio/pci/dmabuf.ts · validate_dmabuf_input · the ranges add up to 2^63 or more',
    'src/vfio/pci/dmabuf.ts · vfio_pci_core_feature_dma_buf · nr_ranges 0 or flags set',
    'src/vfio/pci/dmabuf.ts · vfio_pci_core_feature_dma_buf · region {req.region_index} is no BAR of the function',
    'src/vfio/pci/dmabuf.ts · vfio_pci_core_fill_phys_vec · a range ends past the BAR',
    'src/vfio/pci/dmabuf.ts · vfio_pci_core_fill_phys_vec · a range wraps the bus address',
    'src/vfio/pci/dmabuf.ts · vfio_pci_core_get_dmabuf_phys · an I/O BAR has no peer-to-peer provider',
    'src/vfio/pci/dmabuf.ts · vfio_pci_dma_buf_iommufd_map · iommufd maps a one-range dma-buf only',
  ],
};
