#!/bin/bash
# Fetch the parts of Debian's linux-source-SERIES package that user-space kernel tests need
# (tools/testing/selftests, include/uapi, tools/include, the arch uapi headers and the
# iommufd selftest header), once, into ~/.cache/uiommu/linux-SERIES. GPL input: it stays
# outside the repository. Prints the tree's folder.
#   usage: scripts/kernel-source.sh 7.2|6.12
# Suites searched: 7.2 in trixie-backports then sid, 6.12 in bookworm-backports then trixie
# (binary-all Packages.xz of the configured apt mirror; MIRROR overrides it).
set -euo pipefail
SERIES=${1:?usage: kernel-source.sh SERIES}
case "$SERIES" in
  7.2) SUITES="trixie-backports sid" ;;
  6.12) SUITES="bookworm-backports trixie" ;;
  *) SUITES="sid" ;;
esac
CACHE=${UIOMMU_CACHE:-$HOME/.cache/uiommu}
TREE=$CACHE/linux-$SERIES
if [ -f "$TREE/.complete" ]; then echo "$TREE"; exit 0; fi
MIRROR=${MIRROR:-$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/*.sources /dev/null 2>/dev/null | grep -v security | head -1)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
command -v xz >/dev/null && command -v dpkg-deb >/dev/null || { echo "needs xz and dpkg-deb" >&2; exit 1; }
mkdir -p "$CACHE"
WORK=$(mktemp -d "$CACHE/fetch-$SERIES.XXXXXX"); trap 'rm -rf "$WORK"' EXIT
TARBALL=$CACHE/linux-source-$SERIES.tar.xz
if [ ! -f "$TARBALL" ]; then
  fn=""
  for suite in $SUITES; do
    curl -fsS -o "$WORK/Packages.xz" "$MIRROR/dists/$suite/main/binary-all/Packages.xz" || continue
    fn=$(xz -dc "$WORK/Packages.xz" | awk -v p="linux-source-$SERIES" \
      '$0=="Package: "p{f=1} f&&/^Filename:/&&!n{print $2; n=1}')
    [ -n "$fn" ] && break
  done
  [ -n "$fn" ] || { echo "linux-source-$SERIES not found in $MIRROR ($SUITES)" >&2; exit 1; }
  echo "fetching $MIRROR/$fn" >&2
  curl -fsS -o "$WORK/src.deb" "$MIRROR/$fn"
  dpkg-deb --fsys-tarfile "$WORK/src.deb" | tar -x -C "$WORK" "./usr/src/linux-source-$SERIES.tar.xz"
  mv "$WORK/usr/src/linux-source-$SERIES.tar.xz" "$TARBALL"
  rm -f "$WORK/src.deb"
fi
rm -rf "$TREE.tmp" && mkdir -p "$TREE.tmp"
tar -xf "$TARBALL" -C "$TREE.tmp" --strip-components=1 --wildcards \
  '*/Makefile' '*/tools/testing/selftests/*' '*/include/uapi/*' '*/tools/include/*' \
  '*/drivers/iommu/iommufd/*' '*/drivers/vfio/*'
touch "$TREE.tmp/.complete"
rm -rf "$TREE" && mv "$TREE.tmp" "$TREE"
echo "$TREE"
