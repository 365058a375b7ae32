#!/usr/bin/env bash
# Real Linux on the timed models: a User-Mode Linux 6.1 kernel's own sdhci-pci, mmc core and mmc
# block drivers drive the daemon's GL9763E and card (scripts/linux, docs/linux.md), and Debian's
# tools run inside the guest. Then the same image through the MMC-ioctl bridge's shim, after the
# guest is gone: one card, one RPMB state.
#   linux_test.sh EMMCSIM_BINARY GUEST_INIT SHIM_LIBRARY
# The kernel comes from EMMCSIM_UML_KERNEL (scripts/test builds it with scripts/uml-kernel).
# Without it the test is skipped (77), unless EMMCSIM_REQUIRE_UML=1 (CI), where that fails.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
export EMMCSIM_BIN=$(realpath "$1") EMMCSIM_GUEST_INIT=$(realpath "$2")
shim=$(realpath "$3")
source "$here/uml_guest_checks.sh"
require_uml_kernel
for tool in mmc mkfs.ext4 fsck.ext4 debugfs; do
  command -v "$tool" >/dev/null || { echo "SKIP: $tool is not installed"; exit 77; }
done
# An ASan-built shim needs the ASan runtime loaded first in the uninstrumented tool.
preload=$shim
if asan=$(ldd "$shim" | awk '/libasan/ {print $3}') && [ -n "$asan" ]; then preload="$asan:$shim"; fi
export ASAN_OPTIONS=${ASAN_OPTIONS:-}:detect_leaks=0:verify_asan_link_order=0

work=$(mktemp -d /tmp/emmcsim-linux-test.XXXXXX)
daemon=
cleanup() {
  [ -n "$daemon" ] && kill -TERM "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

cd "$work"
printf 'emmcsim-e2e-key-0123456789abcdef' > key.bin
printf 'NOT-THE-KEY-0123456789abcdefghij' > wrong.bin
head -c 256 /dev/urandom > rpmb.bin
head -c $((3 * 1024 * 1024)) /dev/urandom > user.bin
head -c $((1024 * 1024)) /dev/urandom > boot.bin
head -c 100000 /dev/urandom > file.bin
mkdir mnt

# --- inside the guest: one boot, every step's result in a file ------------------------------
cat > guest.sh <<'GUEST'
w=$1
cd "$w"
r() { echo "$1 $2" >> results; }
mmc extcsd read /dev/mmcblk0 > extcsd.guest 2>&1; r extcsd $?
mmc rpmb read-counter /dev/mmcblk0rpmb > counter.before 2>&1; r counter_no_key $?
mmc rpmb write-key /dev/mmcblk0rpmb key.bin > /dev/null 2>&1; r write_key $?
mmc rpmb write-block /dev/mmcblk0rpmb 0x10 rpmb.bin key.bin > /dev/null 2>&1; r write_block $?
mmc rpmb write-block /dev/mmcblk0rpmb 0x11 rpmb.bin wrong.bin > wrong.out 2>&1; r write_wrong_key $?
mmc rpmb write-key /dev/mmcblk0rpmb wrong.bin > /dev/null 2>&1; r second_key $?
mmc rpmb read-counter /dev/mmcblk0rpmb > counter.after 2>&1; r counter $?
mmc rpmb read-block /dev/mmcblk0rpmb 0x10 1 rpmb.guest key.bin > /dev/null 2>&1; r read_block $?
dd if=user.bin of=/dev/mmcblk0 bs=1M seek=64 oflag=direct 2> /dev/null; r dd_user_write $?
dd if=/dev/mmcblk0 of=user.back bs=1M skip=64 count=3 iflag=direct 2> /dev/null; r dd_user_read $?
echo 0 > /sys/block/mmcblk0boot0/force_ro; r force_ro $?
dd if=boot.bin of=/dev/mmcblk0boot0 bs=1M oflag=direct 2> /dev/null; r dd_boot0_write $?
dd if=/dev/mmcblk0boot0 of=boot.back bs=1M count=1 iflag=direct 2> /dev/null; r dd_boot0_read $?
mkfs.ext4 -q -F -E nodiscard /dev/mmcblk0 > mkfs.out 2>&1; r mkfs $?
mount -t ext4 /dev/mmcblk0 mnt; r mount $?
cp file.bin mnt/file.bin && echo 'written by Linux on emmcsim' > mnt/hello.txt; r write_files $?
umount mnt; r umount $?
fsck.ext4 -n /dev/mmcblk0 > fsck.out 2>&1; r fsck $?
GUEST
"$root/scripts/linux" "$work/card" --quiet --kernel "$EMMCSIM_UML_KERNEL" --kernel-log kernel.log \
  --serve-log serve.log -- sh "$work/guest.sh" "$work" > guest.out 2>&1
status=$?
if [ $status -eq 0 ]; then pass "the guest booted, ran the workload and powered off"; else
  fail "scripts/linux exited $status"; cat guest.out; tail -n 40 serve.log; fi
result() { awk -v k="$1" '$1 == k {print $2}' results 2>/dev/null; }
expect_result() {  # name expected-status what
  local got; got=$(result "$1")
  if [ "$got" = "$2" ]; then pass "$3"; else fail "$3: exit '${got:-none}', expected $2"; fi
}

# The bus mode Linux chose, from its own log.
if grep -qE 'mmc0: new HS400 Enhanced strobe MMC card at address 0001' kernel.log; then
  pass "Linux brought the card up in HS400 with enhanced strobe"
else fail "no HS400 enhanced strobe line in the kernel log: $(grep -E 'mmc0' kernel.log | tail -n 5)"; fi
for node in mmcblk0: mmcblk0boot0: mmcblk0boot1: mmcblk0rpmb:; do
  grep -q " $node mmc0:0001" kernel.log && pass "Linux created $node" || fail "no $node in the kernel log"
done
grep -q 'sdhci-pci 0000:00:00.0: SDHCI controller found \[17a0:e763\]' kernel.log \
  && pass "sdhci-pci matched the GL9763E" || fail "sdhci-pci did not find the GL9763E"
expect_result extcsd 0 "mmc extcsd read inside the guest"
[ "$(result counter_no_key)" != 0 ] && pass "read-counter before the key fails" || fail "read-counter before the key succeeded"
grep -q 'key not programmed\|Key not programmed\|0x0007' counter.before \
  && pass "before the key the card answers 'authentication key not yet programmed'" \
  || fail "read-counter before the key: $(cat counter.before)"
expect_result write_key 0 "mmc rpmb write-key"
expect_result write_block 0 "mmc rpmb write-block with the key"
[ "$(result write_wrong_key)" != 0 ] && pass "write-block with the wrong key is refused" \
  || fail "write-block with the wrong key succeeded"
[ "$(result second_key)" != 0 ] && pass "a second write-key is refused (one key for life)" \
  || fail "a second key was accepted"
grep -q 'Counter value: 0x00000001' counter.after && pass "the counter is 1 (one authenticated write)" \
  || fail "counter after one write: $(cat counter.after)"
expect_result read_block 0 "mmc rpmb read-block with verification"
cmp -s rpmb.guest rpmb.bin && pass "the RPMB block reads back" || fail "the RPMB block differs"
for step in dd_user_write dd_user_read force_ro dd_boot0_write dd_boot0_read mkfs mount write_files umount fsck; do
  expect_result "$step" 0 "guest: $step"
done
cmp -s user.back user.bin && pass "3 MiB through the user area with O_DIRECT, identical" || fail "user area data differs"
cmp -s boot.back boot.bin && pass "1 MiB through boot0 with O_DIRECT, identical" || fail "boot0 data differs"
grep -q 'clean' fsck.out && pass "fsck -n: clean" || fail "fsck: $(cat fsck.out)"

# --- after the guest: the same image through the MMC-ioctl bridge ---------------------------
socket=$work/mmc.sock
"$EMMCSIM_BIN" serve --image "$work/card" --mmc-socket "$socket" 2> daemon.log &
daemon=$!
for _ in $(seq 1 200); do [ -S "$socket" ] && break; sleep 0.05; done
[ -S "$socket" ] || { echo "daemon did not start"; cat daemon.log; exit 1; }
shimmed() { LD_PRELOAD=$preload EMMCSIM_SOCKET=$socket "$@"; }
shimmed mmc extcsd read /dev/mmcblk0 > extcsd.bridge 2>&1
# The whole EXT_CSD reads the same on both sides, but for the two fields Linux set in the guest
# that a power cycle clears (R/W/E_P: ERASE_GROUP_DEF, POWER_OFF_NOTIFICATION) — the card went
# through one when it came back to the daemon's driver.
volatile='ERASE_GROUP_DEF|POWER_OFF_NOTIFICATION'
lines=$(grep -cvE "$volatile" extcsd.guest)
if [ "$lines" -gt 200 ] && diff -q <(grep -vE "$volatile" extcsd.guest) <(grep -vE "$volatile" extcsd.bridge) > /dev/null; then
  pass "mmc extcsd read in the guest equals the bridge's ($lines lines)"
else fail "EXT_CSD differs: $(diff <(grep -vE "$volatile" extcsd.guest) <(grep -vE "$volatile" extcsd.bridge) | head)"; fi
grep -q 'ERASE_GROUP_DEF: 0x01' extcsd.guest && grep -q 'ERASE_GROUP_DEF: 0x00' extcsd.bridge \
  && pass "ERASE_GROUP_DEF: set by the guest's Linux, cleared by the power cycle" \
  || fail "ERASE_GROUP_DEF: $(grep ERASE_GROUP_DEF extcsd.guest extcsd.bridge)"
out=$(shimmed mmc rpmb read-counter /dev/mmcblk0rpmb 2>&1)
grep -q 'Counter value: 0x00000001' <<<"$out" && pass "the bridge sees the guest's RPMB counter (1)" \
  || fail "bridge counter: $out"
shimmed mmc rpmb read-block /dev/mmcblk0rpmb 0x10 1 rpmb.bridge key.bin > /dev/null 2>&1
cmp -s rpmb.bridge rpmb.bin && pass "the bridge reads the guest's RPMB block with the same key" \
  || fail "the bridge's RPMB block differs"
shimmed debugfs -R 'cat /hello.txt' /dev/mmcblk0 > hello.bridge 2>/dev/null
grep -q 'written by Linux on emmcsim' hello.bridge && pass "debugfs through the shim reads the guest's ext4 file" \
  || fail "hello.txt through the shim: $(cat hello.bridge)"
shimmed debugfs -R 'dump /file.bin file.bridge' /dev/mmcblk0 > /dev/null 2>&1
cmp -s file.bridge file.bin && pass "a 100 kB file the guest wrote reads back identical through the shim" \
  || fail "file.bin differs through the shim"

kill -TERM "$daemon" 2>/dev/null; wait "$daemon" 2>/dev/null; daemon=

# --- one RPMB state with virtio-rpmb, both ways -------------------------------------------------
vhost=$work/vhost.sock
"$EMMCSIM_BIN" serve --image "$work/card" --mmc-socket "$socket" --vhost-user-socket "$vhost" 2> daemon.log &
daemon=$!
for _ in $(seq 1 200); do [ -S "$vhost" ] && break; sleep 0.05; done
out=$("$EMMCSIM_BIN" rpmb --vhost-user "$vhost" read-counter key.bin 2>&1)
grep -qE 'counter value: 0x00000001' <<<"$out" && pass "virtio-rpmb sees the guest's counter (1)" || fail "virtio-rpmb counter: $out"
"$EMMCSIM_BIN" rpmb --vhost-user "$vhost" read 0x10 1 rpmb.vhost key.bin > /dev/null 2>&1
cmp -s rpmb.vhost rpmb.bin && pass "virtio-rpmb reads the guest's RPMB block" || fail "virtio-rpmb block differs"
head -c 256 /dev/urandom > rpmb2.bin
"$EMMCSIM_BIN" rpmb --vhost-user "$vhost" write 0x20 rpmb2.bin key.bin > /dev/null 2>&1 \
  && pass "virtio-rpmb writes block 0x20 (counter 2)" || fail "virtio-rpmb write failed"
kill -TERM "$daemon" 2>/dev/null; wait "$daemon" 2>/dev/null; daemon=
cat > guest2.sh <<'GUEST'
cd "$1"
mmc rpmb read-counter /dev/mmcblk0rpmb > counter.guest2 2>&1
mmc rpmb read-block /dev/mmcblk0rpmb 0x20 1 rpmb2.guest key.bin > /dev/null 2>&1
GUEST
"$root/scripts/linux" "$work/card" --quiet -- sh "$work/guest2.sh" "$work" > guest2.out 2>&1 \
  || fail "the second boot failed: $(tail -n 5 guest2.out)"
grep -q 'Counter value: 0x00000002' counter.guest2 && pass "the guest, booted again, sees virtio-rpmb's write (counter 2)" \
  || fail "second boot counter: $(cat counter.guest2)"
cmp -s rpmb2.guest rpmb2.bin && pass "the guest reads virtio-rpmb's block with mmc rpmb read-block" \
  || fail "the guest's read of virtio-rpmb's block differs"

# --- kill -9 mid-write: of the guest, then of the daemon ------------------------------------
# The guest writes 64 KiB chunks with O_DIRECT|O_SYNC (each acknowledged after Linux's cache
# flush) and notes each acknowledged one; after the kill every acknowledged chunk is on the card.
head -c $((400 * 65536)) /dev/urandom > chunks.bin
cat > writer.sh <<'WRITER'
w=$1 out=$2
sed -n 's/.*emmcsim.run=\([^ ]*\).*/\1/p' /proc/cmdline > "$w/$out.run"
i=0
while [ $i -lt 400 ]; do
  dd if="$w/chunks.bin" of=/dev/mmcblk0 bs=64k skip=$i seek=$i count=1 oflag=direct,sync conv=notrunc 2>/dev/null || break
  echo $i >> "$w/$out.acked"
  i=$((i + 1))
done
WRITER
# Waits (bounded) until the guest has acknowledged 20 chunks.
wait_acked() { for _ in $(seq 1 600); do [ -f "$1" ] && [ "$(wc -l < "$1")" -ge 20 ] && return 0; sleep 0.1; done; return 1; }
# Every acknowledged chunk of image $1 reads back identical through a fresh daemon and the shim.
check_acked() {  # image acked-file what
  local socket=$work/check.sock n=0 bad=0 i
  "$EMMCSIM_BIN" serve --image "$1" --mmc-socket "$socket" 2> check.log &
  daemon=$!
  for _ in $(seq 1 200); do [ -S "$socket" ] && break; sleep 0.05; done
  while read -r i; do
    n=$((n + 1))
    cmp -s <(LD_PRELOAD=$preload EMMCSIM_SOCKET=$socket dd if=/dev/mmcblk0 bs=64k skip="$i" count=1 2>/dev/null) \
      <(dd if=chunks.bin bs=64k skip="$i" count=1 2>/dev/null) || bad=$((bad + 1))
  done < "$2"
  kill -TERM "$daemon" 2>/dev/null; wait "$daemon" 2>/dev/null; daemon=
  if [ "$n" -ge 20 ] && [ "$bad" -eq 0 ]; then pass "$3: all $n acknowledged chunks are on the card"
  else fail "$3: $bad of $n acknowledged chunks differ"; fi
}

"$root/scripts/linux" "$work/card_guest_killed" --quiet --serve-log serve_guest_killed.log \
  -- sh "$work/writer.sh" "$work" guest_killed > guest_killed.out 2>&1 &
runner=$!
if wait_acked guest_killed.acked; then
  pkill -KILL -f "emmcsim.run=$(cat guest_killed.run) " && pass "kill -9 of the UML guest mid-write"
else fail "the guest did not start writing: $(tail -n 5 guest_killed.out)"; fi
wait "$runner"; status=$?
[ $status -eq 4 ] && pass "scripts/linux reports the guest's death (exit 4)" || fail "scripts/linux exited $status"
grep -q "the daemon's driver has the card again" serve_guest_killed.log \
  && pass "the daemon took the card back when the guest died" || fail "no take-back: $(tail -n 5 serve_guest_killed.log)"
check_acked "$work/card_guest_killed" guest_killed.acked "after kill -9 of the guest"

"$root/scripts/linux" "$work/card_daemon_killed" --quiet -- sh "$work/writer.sh" "$work" daemon_killed \
  > daemon_killed.out 2>&1 &
runner=$!
if wait_acked daemon_killed.acked; then
  pkill -KILL -f "serve --image $work/card_daemon_killed " && pass "kill -9 of the daemon under a writing guest"
else fail "the guest did not start writing: $(tail -n 5 daemon_killed.out)"; fi
wait "$runner"; status=$?
[ $status -eq 4 ] && grep -q "emmcsim serve ended during the run" daemon_killed.out \
  && pass "scripts/linux reports the daemon's death (exit 4)" || fail "scripts/linux exited $status: $(tail -n 3 daemon_killed.out)"
check_acked "$work/card_daemon_killed" daemon_killed.acked "after kill -9 of the daemon"

report_checks
