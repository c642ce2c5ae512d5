#!/bin/bash
# The reference kernel of one Linux version, built once by ../shared/refkernel/build.sh
# (iommufd, its selftest mock driver, the legacy VFIO container, intel-iommu, fault
# injection) into ~/.cache/uiommu, outside every repository. Prints the bzImage.
#   usage: scripts/refkernel.sh 7.2|6.12
# 7.2: ~/.cache/uiommu/refkernel; build.sh fetches linux-source-7.2 itself.
# 6.12: ~/.cache/uiommu/refkernel-6.12, from the linux-source-6.12 tarball that
# scripts/kernel-source.sh caches. build.sh reads kernel.fragment next to itself and
# refuses a symbol the tree lacks, so it runs through a link in a folder whose
# fragment keeps only the symbols this tree has (6.12 has no GENERIC_PT, IOMMU_PT*:
# the generic page table came with v6.19).
# Measured on the 2-core machine (7 Dec 2026): 6.12 took 61 min at load 7-20 (nice, -j2).
set -euo pipefail
SERIES=${1:?usage: refkernel.sh SERIES}
HERE=$(cd "$(dirname "$0")" && pwd)
SHARED=$(dirname "${UIOMMU_REFKERNEL_BOOT:-/work/shared/refkernel/boot.sh}")
CACHE=${UIOMMU_CACHE:-$HOME/.cache/uiommu}
case "$SERIES" in
  7.2) WORK=$CACHE/refkernel ;;
  *) WORK=$CACHE/refkernel-$SERIES ;;
esac
if [ -f "$WORK/bzImage-legacy" ]; then echo "$WORK/bzImage-legacy"; exit 0; fi
[ -x "$SHARED/build.sh" ] || { echo "refkernel: no $SHARED/build.sh" >&2; exit 2; }
if [ "$SERIES" = 7.2 ]; then exec nice "$SHARED/build.sh" "$WORK" legacy; fi
"$HERE/kernel-source.sh" "$SERIES" >/dev/null
if [ ! -f "$WORK/src/Makefile" ]; then
  rm -rf "$WORK/src" && mkdir -p "$WORK/src"
  tar -xf "$CACHE/linux-source-$SERIES.tar.xz" -C "$WORK/src" --strip-components=1
fi
KIT=$WORK/kit
mkdir -p "$KIT"
ln -sf "$SHARED/build.sh" "$KIT/build.sh"
while IFS= read -r line; do
  sym=$(sed -n 's/^CONFIG_\([A-Z0-9_]*\)=.*/\1/p' <<<"$line")
  if [ -n "$sym" ] && ! grep -rqE "^(menu)?config $sym\$" --include='Kconfig*' "$WORK/src"; then
    continue
  fi
  printf '%s\n' "$line"
done <"$SHARED/kernel.fragment" >"$KIT/kernel.fragment"
SERIES=$SERIES nice "$KIT/build.sh" "$WORK" legacy
