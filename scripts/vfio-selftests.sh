#!/bin/bash
# Build the kernel's VFIO selftests (tools/testing/selftests/vfio) from Debian's
# linux-source package (7.2 by default), outside the repository: the GPL sources and
# the binaries stay in the cache (~/.cache/uiommu, or $UIOMMU_CACHE).
#   usage: scripts/vfio-selftests.sh     prints the directory holding the test programs
# The source tree is the one the reference-kernel build unpacked
# ($CACHE/refkernel/src) when present, else the package is fetched from the Debian
# archive (the mirror of this machine's apt sources) and unpacked into
# $CACHE/linux-source-$SERIES. The build needs a C compiler, make and uuid-dev
# (installed with apt-get when missing).
# Build quirk of 7.2.13: lib/vfio_pci_device.c calls calloc_assert(), which nothing in
# the tree defines; a forced include defines it (calloc, exit on NULL).
set -euo pipefail
CACHE=${UIOMMU_CACHE:-$HOME/.cache/uiommu}
SERIES=${SERIES:-7.2}
OUT=$CACHE/vfio-selftests-$SERIES
MIRROR=${MIRROR:-$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v security | head -1)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
mkdir -p "$CACHE"

SRC=$CACHE/refkernel/src
if [ "$SERIES" != 7.2 ] || [ ! -f "$SRC/tools/testing/selftests/vfio/Makefile" ]; then
  SRC=$CACHE/linux-source-$SERIES
  if [ ! -f "$SRC/tools/testing/selftests/vfio/Makefile" ]; then
    tmp=$(mktemp -d "$CACHE/fetch.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    fn=""
    for suite in trixie-backports sid; do
      curl -fsS -o "$tmp/Packages.xz" "$MIRROR/dists/$suite/main/binary-all/Packages.xz" || continue
      fn=$(xz -dc "$tmp/Packages.xz" | awk -v p="linux-source-$SERIES" '$0=="Package: "p{f=1} f&&/^Filename:/&&!n{print $2; n=1}')
      [ -n "$fn" ] && break
    done
    [ -n "$fn" ] || { echo "linux-source-$SERIES not found in the Debian archive at $MIRROR" >&2; exit 1; }
    curl -fsS -o "$tmp/linux-source.deb" "$MIRROR/$fn"
    dpkg -x "$tmp/linux-source.deb" "$tmp/pkg"
    rm -rf "$SRC" && mkdir -p "$SRC"
    tar -xf "$tmp/pkg/usr/src/linux-source-$SERIES.tar.xz" -C "$SRC" --strip-components=1
  fi
fi

[ -f /usr/include/uuid/uuid.h ] || apt-get install -y -qq uuid-dev >/dev/null
mkdir -p "$OUT"
# the tree's own uapi headers (linux/vfio.h and linux/iommufd.h newer than the system's)
HDR=$OUT/kbuild/usr/include
[ -f "$HDR/linux/vfio.h" ] || nice make -s -C "$SRC" ARCH=x86 O="$OUT/kbuild" headers
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
  KHDR_INCLUDES="-isystem $HDR" EXTRA_CFLAGS="-include $OUT/calloc-assert.h" \
  -j"$(nproc)" >&2
echo "$OUT/bin"
