/* The engine's socket transport (transport.c), registered by the addon's init. */
#ifndef UIOMMU_TRANSPORT_H
#define UIOMMU_TRANSPORT_H

#include <node_api.h>

/* Adds transportOpen, transportNext, transportReply, transportDrop, transportClose to exports. */
void transport_init(napi_env env, napi_value exports);

#endif
