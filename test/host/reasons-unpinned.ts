/**
 * The known-missing list of the pinned-reason gate (reasons-gate.test.ts):
 * the failure sites, per area, that no row of a reason table pins yet. It
 * may only shrink: pin a site, then remove it here (the gate fails while a
 * pinned site is still listed, and on a new site that is on no list).
 */
export const UNPINNED: Readonly<Record<string, readonly string[]>> = {
  'src/host': [
    'src/host/io-maps.ts · follow_pfnmap_start · not device memory',
    'src/host/native.ts · copy_to_user · copy_to_user: {n} of {data.length} bytes',
    "src/host/remote-mm.ts · access === 'read' ? 'copy_from_user' : 'copy_to_user' · no {access} access at {hex(cursor)}",
    "src/host/remote-mm.ts · access === 'read' ? 'copy_from_user' : 'copy_to_user' · range wraps",
    "src/host/remote-mm.ts · check_zeroed_user · non-zero byte in the struct's tail",
    "src/host/remote-mm.ts · check_zeroed_user · unreadable byte in the struct's tail",
    'src/host/remote-mm.ts · clear_user · clear_user: unwritable byte',
    'src/host/remote-mm.ts · copy_from_user · mm has exited',
    'src/host/remote-mm.ts · copy_struct_from_user · mm has exited',
    'src/host/remote-mm.ts · copy_to_user · mm has exited',
    "src/host/remote-mm.ts · kind === 'cleared' ? 'clear_user' : 'check_zeroed_user' · mm has exited",
    'src/host/remote-mm.ts · pin_user_pages_fast · mm has exited',
    'src/host/remote-mm.ts · pin_user_pages_fast · range wraps',
    'src/host/sriov.ts · sriov_numvfs_store · the PF driver cannot configure VFs',
  ],
  'src/iommufd': [
    'src/iommufd/ucmd.ts · copy_struct_from_user · entry {index} of the user array',
    'src/iommufd/selftest.ts · iommufd_device_bind · the mock device was probed by the first IOMMU driver registered (not the mock) and has no IOMMU',
  ],
  'src/server': ['src/server/engine.ts · getname_long · path longer than PATH_MAX'],
  'src/vfio/type1': [
    'src/vfio/type1/type1.ts · vfio_iommu_type1_attach_group · a TYPE1_NESTING domain must enable nesting, and this one has no enable_nesting op',
  ],
};
