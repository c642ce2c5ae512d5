#!/bin/bash
# The kernel's own iommufd selftests from Debian's linux-source-SERIES, run under uiommu
# with the same kernel version's profile:
#   npm run kernel-selftest -- 7.2|6.12 [iommufd|iommufd_fail_nth ...]
# Fetches the source once (scripts/kernel-source.sh, cached in ~/.cache/uiommu), builds
# the programs there (gcc, libcap-dev; GPL: never inside the repository), asks for 256
# huge pages if it may, runs each under `uiommu run --host mock --kernel SERIES
# --cap-add sys_resource` and prints the kselftest totals. Exits 0 when every program
# ran to its totals line (the counts are for the caller to judge), 2 when it could not
# build or run.
set -euo pipefail
SERIES=${1:?usage: kernel-selftest.sh SERIES [program...]}; shift
PROGRAMS=("$@"); [ ${#PROGRAMS[@]} -gt 0 ] || PROGRAMS=(iommufd iommufd_fail_nth)
HERE=$(cd "$(dirname "$0")" && pwd); REPO=$(dirname "$HERE")
CACHE=${UIOMMU_CACHE:-$HOME/.cache/uiommu}
TREE=$("$HERE/kernel-source.sh" "$SERIES") || exit 2
BUILD=$CACHE/kselftest-$SERIES
mkdir -p "$BUILD/shim/linux"
case "$(uname -m)" in
  x86_64) ARCH=x86 ;; aarch64) ARCH=arm64 ;; ppc64*) ARCH=powerpc ;; *) ARCH=$(uname -m) ;;
esac
if [ ! -f /usr/include/sys/capability.h ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libcap-dev >/dev/null 2>&1 \
    || { echo "kernel-selftest: needs libcap-dev" >&2; exit 2; }
fi
# headers_install strips these from the uapi headers; the raw tree still has them
: > "$BUILD/shim/linux/compiler_types.h"
# Debian's 6.12.95 selftest (stable backports) uses names its own uapi headers lack; their
# values are the later kernels' (in_data_type shares out_data_type's place). A real 6.12
# kernel refuses what they ask for just as the profile does.
cat > "$BUILD/later-abi.h" <<'H'
#include <linux/iommufd.h>
#ifndef IOMMU_HW_INFO_TYPE_DEFAULT
#define IOMMU_HW_INFO_TYPE_DEFAULT 0
#define IOMMU_HW_INFO_FLAG_INPUT_TYPE 1
#define in_data_type out_data_type
#endif
H
SELF=$TREE/tools/testing/selftests
for p in "${PROGRAMS[@]}"; do
  if [ ! -x "$BUILD/$p" ] || [ "$SELF/iommu/$p.c" -nt "$BUILD/$p" ]; then
    extra=()
    grep -q MOCK_FLAGS_DEVICE_PASID "$TREE/drivers/iommu/iommufd/iommufd_test.h" \
      || extra=(-include "$BUILD/later-abi.h" -DMOCK_FLAGS_DEVICE_PASID=4 -DMOCK_PASID_WIDTH=20)
    (cd "$SELF/iommu" && nice gcc -O2 -w -D_GNU_SOURCE -D__user= "${extra[@]}" \
      -isystem "$BUILD/shim" -isystem "$TREE/include/uapi" -isystem "$TREE/arch/$ARCH/include/uapi" \
      -I.. -I. "$p.c" -o "$BUILD/$p.tmp" -lcap -lpthread) || { echo "kernel-selftest: $p does not build" >&2; exit 2; }
    mv "$BUILD/$p.tmp" "$BUILD/$p"
  fi
done
# the selftest maps 2 MiB huge pages; without them its hugepage variants fail
if [ "$(cat /proc/sys/vm/nr_hugepages)" -lt 256 ] && [ -w /proc/sys/vm/nr_hugepages ]; then
  echo 256 > /proc/sys/vm/nr_hugepages 2>/dev/null || true
fi
status=0
for p in "${PROGRAMS[@]}"; do
  log=$BUILD/$p.log
  start=$(date +%s)
  (cd "$BUILD" && node "$REPO/bin/uiommu.js" run --host mock --kernel "$SERIES" \
    --cap-add sys_resource -- "./$p" > "$log" 2>&1) || true
  totals=$(grep -m1 '^# Totals:' "$log" || true)
  if [ -z "$totals" ]; then
    echo "$p ($SERIES): no totals, see $log" >&2; status=2; continue
  fi
  echo "$p ($SERIES, $(( $(date +%s) - start )) s): ${totals#\# }"
  grep '^not ok' "$log" | sed 's/^/  /' || true
done
exit $status
