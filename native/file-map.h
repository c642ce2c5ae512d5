/* The engine addon's mappings of client memory files (file-map.c). */
#ifndef UIOMMU_FILE_MAP_H
#define UIOMMU_FILE_MAP_H

#include <node_api.h>

/* Adds fileMap, fileMapIo, fileMapScratch and fileUnmap to `exports`. */
void file_map_init(napi_env env, napi_value exports);

#endif
