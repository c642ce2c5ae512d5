#!/bin/bash
# Build the kernel's VFIO selftests (tools/testing/selftests/vfio) from Debian's
# linux-source package (7.2 by default), outside the repository: the GPL sources and
# the binaries stay in the cache (~/.cache/uiommu, or $UIOMMU_CACHE).
#   usage: scripts/vfio-selftests.sh     prints the directory holding the test programs
# The source comes from scripts/kernel-source.sh (fetched once from the Debian archive,
# cached), plus the two drivers/dma header folders lib/drivers links to. The build needs
# a C compiler, make and uuid-dev (installed with apt-get when missing).
# Build quirk of 7.2.13: lib/vfio_pci_device.c calls calloc_assert(), which nothing in
# the tree defines; a forced include defines it (calloc, exit on NULL).
set -euo pipefail
CACHE=${UIOMMU_CACHE:-$HOME/.cache/uiommu}
SERIES=${SERIES:-7.2}
OUT=$CACHE/vfio-selftests-$SERIES

HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$("$HERE/kernel-source.sh" "$SERIES")
# what the VFIO selftests need beyond it: the drivers/dma register headers and
# include/linux/pci_ids.h (linked from lib/drivers and tools/include), tools/arch's io.h,
# scripts/subarch.include (libvfio.mk)
if [ ! -f "$SRC/include/linux/pci_ids.h" ] || [ ! -f "$SRC/tools/arch/x86/include/asm/io.h" ]; then
  tar -xf "$CACHE/linux-source-$SERIES.tar.xz" -C "$SRC" --strip-components=1 --wildcards \
    '*/drivers/dma/ioat/*' '*/drivers/dma/idxd/*' '*/scripts/subarch.include' '*/tools/arch/*' \
    '*/include/linux/pci_ids.h'
fi

[ -f /usr/include/uuid/uuid.h ] || apt-get install -y -qq uuid-dev >/dev/null
mkdir -p "$OUT/shim/linux"
# the tree's own uapi headers (linux/vfio.h and linux/iommufd.h newer than the system's),
# used raw: headers_install would strip the compiler_types.h include they carry
: > "$OUT/shim/linux/compiler_types.h"
HDR="-isystem $OUT/shim -isystem $SRC/include/uapi"
cat > "$OUT/calloc-assert.h" <<'H'
#include <stdio.h>
#include <stdlib.h>
static inline void *calloc_assert(size_t nmemb, size_t size)
{
	void *p = calloc(nmemb, size);
	if (!p) {
		perror("calloc");
		exit(1);
	}
	return p;
}
H
nice make -s -C "$SRC/tools/testing/selftests/vfio" OUTPUT="$OUT/bin" \
  KHDR_INCLUDES="$HDR" EXTRA_CFLAGS="-include $OUT/calloc-assert.h" \
  -j"$(nproc)" >&2
echo "$OUT/bin"
