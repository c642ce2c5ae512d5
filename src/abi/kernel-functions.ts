/**
 * The Linux (6.18) function that handles each ioctl request, by request
 * name: what a failure's trace names when the model gives no more precise
 * `where` (see `Errno`). Container ioctls (VFIO_IOMMU_*, SET_IOMMU) are left
 * out: the same request is type1's, SPAPR's or iommufd compat's depending on
 * the container, so their failures name their function themselves.
 */
const HANDLER: Readonly<Record<string, string>> = {
  IOMMU_DESTROY: 'iommufd_destroy',
  IOMMU_IOAS_ALLOC: 'iommufd_ioas_alloc_ioctl',
  IOMMU_IOAS_ALLOW_IOVAS: 'iommufd_ioas_allow_iovas',
  IOMMU_IOAS_COPY: 'iommufd_ioas_copy',
  IOMMU_IOAS_IOVA_RANGES: 'iommufd_ioas_iova_ranges',
  IOMMU_IOAS_MAP: 'iommufd_ioas_map',
  IOMMU_IOAS_MAP_FILE: 'iommufd_ioas_map_file',
  IOMMU_IOAS_UNMAP: 'iommufd_ioas_unmap',
  IOMMU_IOAS_CHANGE_PROCESS: 'iommufd_ioas_change_process',
  IOMMU_OPTION: 'iommufd_option',
  IOMMU_VFIO_IOAS: 'iommufd_vfio_ioas',
  IOMMU_HWPT_ALLOC: 'iommufd_hwpt_alloc',
  IOMMU_GET_HW_INFO: 'iommufd_get_hw_info',
  IOMMU_HWPT_SET_DIRTY_TRACKING: 'iommufd_hwpt_set_dirty_tracking',
  IOMMU_HWPT_GET_DIRTY_BITMAP: 'iommufd_hwpt_get_dirty_bitmap',
  IOMMU_HWPT_INVALIDATE: 'iommufd_hwpt_invalidate',
  IOMMU_FAULT_QUEUE_ALLOC: 'iommufd_fault_alloc',
  IOMMU_VIOMMU_ALLOC: 'iommufd_viommu_alloc_ioctl',
  IOMMU_VDEVICE_ALLOC: 'iommufd_vdevice_alloc_ioctl',
  IOMMU_VEVENTQ_ALLOC: 'iommufd_veventq_alloc',
  IOMMU_HW_QUEUE_ALLOC: 'iommufd_hw_queue_alloc_ioctl',
  IOMMU_TEST_CMD: 'iommufd_test',
  VFIO_GROUP_GET_STATUS: 'vfio_group_ioctl_get_status',
  VFIO_GROUP_SET_CONTAINER: 'vfio_group_ioctl_set_container',
  VFIO_GROUP_UNSET_CONTAINER: 'vfio_group_ioctl_unset_container',
  VFIO_GROUP_GET_DEVICE_FD: 'vfio_group_ioctl_get_device_fd',
  VFIO_DEVICE_BIND_IOMMUFD: 'vfio_df_ioctl_bind_iommufd',
  VFIO_DEVICE_ATTACH_IOMMUFD_PT: 'vfio_df_ioctl_attach_pt',
  VFIO_DEVICE_DETACH_IOMMUFD_PT: 'vfio_df_ioctl_detach_pt',
  VFIO_DEVICE_FEATURE: 'vfio_ioctl_device_feature',
  VFIO_DEVICE_GET_INFO: 'vfio_pci_ioctl_get_info',
  VFIO_DEVICE_GET_REGION_INFO: 'vfio_pci_ioctl_get_region_info',
  VFIO_DEVICE_GET_IRQ_INFO: 'vfio_pci_ioctl_get_irq_info',
  VFIO_DEVICE_SET_IRQS: 'vfio_pci_ioctl_set_irqs',
  VFIO_DEVICE_RESET: 'vfio_pci_ioctl_reset',
  VFIO_DEVICE_GET_PCI_HOT_RESET_INFO: 'vfio_pci_ioctl_get_pci_hot_reset_info',
  VFIO_DEVICE_PCI_HOT_RESET: 'vfio_pci_ioctl_pci_hot_reset',
};

/** The kernel function handling the ioctl named `request`, if the table knows one. */
export function kernelFunctionOf(request: string): string | undefined {
  return HANDLER[request];
}
