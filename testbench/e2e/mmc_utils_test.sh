#!/usr/bin/env bash
# Debian's unmodified `mmc` (mmc-utils) against `emmcsim serve` through the LD_PRELOAD shim:
# RPMB key, counter, authenticated writes and reads (with and without verification, several
# blocks), EXT_CSD fields against the device configuration, CMD13 status, boot write protection,
# and the failures a real card gives (wrong key, second key, out-of-range address).
#   mmc_utils_test.sh EMMCSIM_BINARY SHIM_LIBRARY [SERVE OPTIONS...]   (e.g. --timing approximate)
set -uo pipefail
emmcsim=$(realpath "$1")
shim=$(realpath "$2")
shift 2
serve_options=("$@")
MMC=$(command -v mmc || true)
if [ -z "$MMC" ]; then
  echo "SKIP: Debian's mmc-utils is not installed (scripts/test installs it)"
  exit 77
fi
# An ASan-built shim needs the ASan runtime loaded first in the uninstrumented tool.
preload=$shim
if asan=$(ldd "$shim" | awk '/libasan/ {print $3}') && [ -n "$asan" ]; then preload="$asan:$shim"; fi
export ASAN_OPTIONS=${ASAN_OPTIONS:-}:detect_leaks=0:verify_asan_link_order=0

work=$(mktemp -d /tmp/emmcsim-mmc-utils.XXXXXX)
daemon=
cleanup() {
  [ -n "$daemon" ] && kill -TERM "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
socket=$work/run/mmc.sock
# A configuration unlike the default, so EXT_CSD fields prove they come from it.
user_bytes=$((4 * 1024 * 1024 * 1024)); boot_bytes=$((2 * 1024 * 1024)); rpmb_bytes=$((1024 * 1024))
cat > "$work/device.json" <<JSON
{ "user_capacity": "4GiB", "boot_partition_size": "2MiB", "rpmb_size": "1MiB",
  "reliable_write_sectors": 8, "cache_size": "512KiB" }
JSON
"$emmcsim" serve --image "$work/card" --config "$work/device.json" --mmc-socket "$socket" "${serve_options[@]}" \
  2>"$work/daemon.log" &
daemon=$!
for _ in $(seq 1 200); do [ -S "$socket" ] && break; sleep 0.05; done
[ -S "$socket" ] || { echo "daemon did not start"; cat "$work/daemon.log"; exit 1; }

failures=0
checks=0
pass() { checks=$((checks + 1)); echo "ok   $*"; }
fail() { checks=$((checks + 1)); failures=$((failures + 1)); echo "FAIL $*"; }
# mmc with the shim; output in $out, exit status in $status.
mmc() { out=$(LD_PRELOAD=$preload EMMCSIM_SOCKET=$socket "$MMC" "$@" 2>&1); status=$?; }
expect_ok() { local what=$1; shift; mmc "$@"; if [ $status -eq 0 ]; then pass "$what"; else fail "$what (exit $status): $out"; fi; }
expect_fail() { local what=$1; shift; mmc "$@"; if [ $status -ne 0 ]; then pass "$what (refused: $(echo "$out" | tail -n 1))"; else fail "$what succeeded: $out"; fi; }
contains() { local what=$1 pattern=$2; if grep -qE -- "$pattern" <<<"$out"; then pass "$what"; else fail "$what: no /$pattern/ in: $out"; fi; }
counter() { mmc rpmb read-counter /dev/mmcblk0rpmb; sed -nE 's/^Counter value: (0x[0-9a-f]+)$/\1/p' <<<"$out"; }

cd "$work"
printf 'emmcsim-e2e-key-0123456789abcdef' > key.bin
printf 'NOT-THE-KEY-0123456789abcdefghij' > wrong.bin
head -c 256 /dev/urandom > a.bin
head -c 256 /dev/urandom > b.bin
head -c 256 /dev/urandom > c.bin

# --- before the key ------------------------------------------------------------------------
expect_fail "read-counter before the key is programmed" rpmb read-counter /dev/mmcblk0rpmb
contains "  ... reports 'key not programmed' (0x0007)" "0x0007|[Kk]ey"

# --- key -----------------------------------------------------------------------------------
expect_ok "write-key" rpmb write-key /dev/mmcblk0rpmb key.bin
expect_fail "second write-key is refused" rpmb write-key /dev/mmcblk0rpmb wrong.bin
expect_ok "read-counter" rpmb read-counter /dev/mmcblk0rpmb
contains "  ... counter is 0 after the key" "Counter value: 0x0+$"

# --- authenticated writes and reads -----------------------------------------------------------
expect_ok "write-block at 0x10" rpmb write-block /dev/mmcblk0rpmb 0x10 a.bin key.bin
expect_ok "write-block at 0x11" rpmb write-block /dev/mmcblk0rpmb 0x11 b.bin key.bin
expect_ok "write-block at 0x12" rpmb write-block /dev/mmcblk0rpmb 0x12 c.bin key.bin
[ "$(counter)" = "0x00000003" ] && pass "counter is 3 after three writes" || fail "counter after three writes: $out"
expect_ok "read-block 0x10, 1 block, verified" rpmb read-block /dev/mmcblk0rpmb 0x10 1 out1.bin key.bin
cmp -s a.bin out1.bin && pass "  ... data matches" || fail "  ... data differs"
expect_ok "read-block 0x10, 3 blocks, verified" rpmb read-block /dev/mmcblk0rpmb 0x10 3 out3.bin key.bin
cat a.bin b.bin c.bin > abc.bin
cmp -s abc.bin out3.bin && pass "  ... three blocks match" || fail "  ... three blocks differ"
expect_ok "read-block 0x11, 2 blocks, without the key" rpmb read-block /dev/mmcblk0rpmb 0x11 2 out2.bin
cat b.bin c.bin > bc.bin
cmp -s bc.bin out2.bin && pass "  ... data matches" || fail "  ... data differs"
expect_ok "write-block from stdin, key from a file" rpmb write-block /dev/mmcblk0rpmb 0x13 - key.bin < a.bin
[ "$(counter)" = "0x00000004" ] && pass "counter is 4" || fail "counter: $out"

# --- failures --------------------------------------------------------------------------------
expect_fail "write-block with the wrong key" rpmb write-block /dev/mmcblk0rpmb 0x10 b.bin wrong.bin
contains "  ... reports an authentication failure (0x0002)" "0x0002|[Aa]uth"
[ "$(counter)" = "0x00000004" ] && pass "  ... the counter did not move" || fail "  ... counter moved: $out"
expect_ok "read-block 0x10 still holds the first data" rpmb read-block /dev/mmcblk0rpmb 0x10 1 again.bin key.bin
cmp -s a.bin again.bin && pass "  ... unchanged" || fail "  ... changed by a refused write"
expect_fail "read-block verified with the wrong key" rpmb read-block /dev/mmcblk0rpmb 0x10 1 outw.bin wrong.bin
beyond=$(printf '0x%x' $((rpmb_bytes / 256)))  # the first half-sector past the partition
expect_fail "write-block beyond the partition ($beyond)" rpmb write-block /dev/mmcblk0rpmb "$beyond" a.bin key.bin
contains "  ... reports an address failure (0x0004)" "0x0004|[Aa]ddress"
expect_fail "read-block beyond the partition" rpmb read-block /dev/mmcblk0rpmb "$beyond" 1 outx.bin key.bin
last=$(printf '0x%x' $((rpmb_bytes / 256 - 1)))
expect_ok "write-block at the last half-sector ($last)" rpmb write-block /dev/mmcblk0rpmb "$last" b.bin key.bin
[ "$(counter)" = "0x00000005" ] && pass "counter is 5: only the in-range write counted" || fail "counter: $out"

# --- EXT_CSD, status, write protection -----------------------------------------------------
expect_ok "extcsd read" extcsd read /dev/mmcblk0
contains "  ... revision 1.8 (MMC 5.1)" "Extended CSD rev 1\.8 \(MMC 5\.1\)"
contains "  ... SEC_COUNT: 4 GiB in sectors" "SEC_COUNT: $(printf '0x%08x' $((user_bytes / 512)))"
contains "  ... BOOT_SIZE_MULT: 2 MiB in 128 KiB units" "BOOT_SIZE_MULTI: $(printf '0x%02x' $((boot_bytes / 131072)))"
contains "  ... RPMB_SIZE_MULT: 1 MiB in 128 KiB units" "RPMB_SIZE_MULT\]?: $(printf '0x%02x' $((rpmb_bytes / 131072)))"
contains "  ... REL_WR_SEC_C: 8" "REL_WR_SEC_C\]?: 0x08"
contains "  ... cache 512 KiB" "CACHE_SIZE\] is 512 KiB"
contains "  ... cache enabled by the kernel's bring-up" "Cache ON/OFF \[CACHE_CTRL\]: 0x01"
contains "  ... PARTITION_CONFIG back to the user area" "PARTITION_CONFIG: 0x00"
expect_ok "status get" status get /dev/mmcblk0
contains "  ... CMD13 says tran, ready for data" "SEND_STATUS response: 0x00000900"
expect_ok "writeprotect boot get" writeprotect boot get /dev/mmcblk0
contains "  ... no boot write protection" "Boot Area Write protection \[BOOT_WP\]: 0x00"

echo "$checks checks, $failures failed"
[ "$failures" -eq 0 ]
