/* The engine addon's unmap-ring functions (lease-ring.c). */
#ifndef UIOMMU_LEASE_RING_H
#define UIOMMU_LEASE_RING_H

#include <node_api.h>

/* Adds leaseMap, leaseHeader, leaseTake, leaseDone and leaseUnmap to `exports`. */
void lease_ring_init(napi_env env, napi_value exports);

#endif
