#!/usr/bin/env bash
# cmake --install into a scratch prefix, then build and run a consumer that uses
# find_package(emmcsim) as a virtual platform would.
#   install_test.sh BUILD_DIR
set -euo pipefail
build_dir=$1
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cmake --install "$build_dir" --prefix "$work/prefix" > "$work/install.log"
for f in include/emmcsim/mmc/card.hpp include/emmcsim/rpmb/engine.hpp include/emmcsim/models/emmc_device.hpp \
         include/emmcsim/models/sdhci.hpp bin/emmcsim \
         lib/cmake/emmcsim/emmcsimConfig.cmake; do
  [ -e "$work/prefix/$f" ] || { echo "FAIL: $f was not installed"; exit 1; }
done
generator=()
command -v ninja > /dev/null && generator=(-G Ninja)
cmake -S "$here/install_consumer" -B "$work/consumer" "${generator[@]}" \
  -DCMAKE_PREFIX_PATH="$work/prefix" -DCMAKE_BUILD_TYPE=Release > "$work/configure.log" \
  || { cat "$work/configure.log"; echo "FAIL: find_package(emmcsim) failed"; exit 1; }
cmake --build "$work/consumer" > "$work/build.log" 2>&1 || { cat "$work/build.log"; echo "FAIL: consumer build"; exit 1; }
out=$("$work/consumer/consumer")
# All at 400 kHz (2.5 us a cycle): CMD0 56 cycles (no response: the command and N_CC), CMD1 x3
# 109 (N_ID), CMD2 197 (N_ID), CMD3, CMD7 and CMD8 106 each, the EXT_CSD block N_AC min 2 + 4114
# at 1 bit: 140 + 817.5 + 492.5 + 265 x 3 + 10290 us. The controller adds no time: register
# accesses take none and its interrupts come as the phases end.
expected="ext_csd_rev=8 rpmb_size_mult=32 at 12535 us"
[ "$out" = "$expected" ] || { echo "FAIL: consumer printed '$out', expected '$expected'"; exit 1; }
echo "ok: installed package found, linked and run ($out)"
