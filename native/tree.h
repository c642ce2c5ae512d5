/* The engine addon's fake-tree functions (tree.c). */
#ifndef UIOMMU_TREE_H
#define UIOMMU_TREE_H

#include <node_api.h>

/* Adds treeWrite and treeRemove to `exports`. */
void tree_init(napi_env env, napi_value exports);

#endif
