#!/usr/bin/env bash
# Deterministic runs of real Linux on the timed models (scripts/linux --deterministic, docs/linux.md
# "Deterministic runs"): the daemon is User-Mode Linux's time-travel calendar, so the guest's clock
# is the simulated time of the bus and NAND.
#  - Three runs of one workload (boot, an mmc-utils RPMB session, dd both ways, mkfs/mount/ext4
#    files), the third beside two CPU hogs, give byte-identical kernel logs (timestamps included),
#    bus traces and guest output.
#  - The guest's clock is the simulation's: its /proc/uptime at the end is the simulated time the
#    calendar logged from the guest's START to its end.
#  - Rates in simulated time, measured by dd inside Linux: the read rate is the bridge's on the
#    same timing profile within 2 %; doubling page_program adds exactly the 256 pages' extra
#    programming time to a 4 MiB synchronous write.
#   linux_deterministic_test.sh EMMCSIM_BINARY GUEST_INIT SHIM_LIBRARY
# The kernel comes from EMMCSIM_UML_KERNEL; without it the test is skipped (77), unless
# EMMCSIM_REQUIRE_UML=1 (CI), where that fails.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
export EMMCSIM_BIN=$(realpath "$1") EMMCSIM_GUEST_INIT=$(realpath "$2")
shim=$(realpath "$3")
source "$here/uml_guest_checks.sh"
require_uml_kernel
for tool in mmc mkfs.ext4 setarch; do
  command -v "$tool" >/dev/null || { echo "SKIP: $tool is not installed"; exit 77; }
done

work=$(mktemp -d /tmp/emmcsim-deterministic-test.XXXXXX)
daemon= hogs=()
cleanup() {
  [ -n "$daemon" ] && kill -TERM "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null
  for h in "${hogs[@]}"; do kill "$h" 2>/dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT

cd "$work"
printf 'emmcsim-e2e-key-0123456789abcdef' > key.bin
head -c 256 /dev/zero | tr '\0' 'R' > rpmb.bin
head -c $((4 * 1024 * 1024)) /dev/zero | tr '\0' 'W' > data.bin
mkdir mnt
cat > guest.sh <<'GUEST'
w=$1
cd "$w"
echo "uptime-start $(cut -d' ' -f1 /proc/uptime)"
mmc rpmb write-key /dev/mmcblk0rpmb key.bin; echo "write-key $?"
mmc rpmb write-block /dev/mmcblk0rpmb 0x10 rpmb.bin key.bin; echo "write-block $?"
mmc rpmb read-counter /dev/mmcblk0rpmb
mmc rpmb read-block /dev/mmcblk0rpmb 0x10 1 /dev/null key.bin; echo "read-block $?"
dd if=/dev/mmcblk0 of=/dev/null bs=1M count=8 iflag=direct 2>&1 | sed -n 's/^/dd-read /p' | tail -n 1
dd if=data.bin of=/dev/mmcblk0 bs=1M seek=64 oflag=direct conv=fsync 2>&1 | sed -n 's/^/dd-write /p' | tail -n 1
mkfs.ext4 -q -F -E nodiscard /dev/mmcblk0; echo "mkfs $?"
mount -t ext4 /dev/mmcblk0 mnt && echo deterministic > mnt/hello.txt && umount mnt; echo "ext4 $?"
echo "uptime-end $(cut -d' ' -f1 /proc/uptime)"
GUEST

run() {  # name [scripts/linux options...]
  local name=$1; shift
  "$root/scripts/linux" "$work/card-$name" --quiet --deterministic --kernel-log "kernel-$name.log" \
    --bus-trace "trace-$name.csv" --serve-log "serve-$name.log" "$@" -- sh "$work/guest.sh" "$work" > "out-$name.txt" 2>&1
}
for name in a b; do
  run "$name"; status=$?
  [ $status -eq 0 ] && pass "deterministic run $name: the workload ran (exit 0)" \
    || { fail "deterministic run $name exited $status"; tail -n 20 "out-$name.txt"; tail -n 20 "serve-$name.log"; }
done
yes > /dev/null & hogs+=($!)
yes > /dev/null & hogs+=($!)
run c; status=$?
kill "${hogs[@]}" 2>/dev/null; hogs=()
[ $status -eq 0 ] && pass "deterministic run c, beside two CPU hogs: the workload ran" || fail "run c exited $status"

for step in write-key write-block read-block mkfs ext4; do
  grep -q "^$step 0" out-a.txt && pass "guest: $step" || fail "guest: $step: $(grep "^$step" out-a.txt)"
done
grep -q 'Counter value: 0x00000001' out-a.txt && pass "guest: the RPMB counter is 1" || fail "guest: no counter 1"
grep -q 'mmc0: new HS400 Enhanced strobe MMC card' kernel-a.log && pass "Linux brought the card up in HS400 ES" \
  || fail "no HS400 line in the kernel log"
for name in b c; do
  what=$([ $name = c ] && echo "under load" || echo "a second run")
  cmp -s kernel-a.log "kernel-$name.log" && pass "$what: the kernel log is byte-identical ($(wc -l < kernel-a.log) lines, timestamps included)" \
    || fail "$what: the kernel logs differ: $(diff kernel-a.log "kernel-$name.log" | head -n 4)"
  cmp -s trace-a.csv "trace-$name.csv" && pass "$what: the bus trace is byte-identical ($(wc -l < trace-a.csv) phases)" \
    || fail "$what: the bus traces differ"
  cmp -s out-a.txt "out-$name.txt" && pass "$what: the guest's output is identical" \
    || fail "$what: the guest's output differs: $(diff out-a.txt "out-$name.txt" | head -n 4)"
done

# The guest's clock is the simulation's: uptime at its end = simulated time from START to the end.
started=$(sed -n 's/.*time travel: guest 1 started at \([0-9.]*\) ms simulated.*/\1/p' serve-a.log)
gone=$(sed -n 's/.*time travel: guest 1 gone at \([0-9.]*\) ms simulated.*/\1/p' serve-a.log)
uptime_end=$(sed -n 's/^uptime-end //p' out-a.txt)
if [ -n "$started" ] && [ -n "$gone" ] && [ -n "$uptime_end" ] &&
   awk -v s="$started" -v g="$gone" -v u="$uptime_end" 'BEGIN { d = (g - s) / 1000 - u; exit !(d >= 0 && d < 0.02) }'; then
  pass "the guest's uptime at its end (${uptime_end} s) is the simulated time from its START to its end ($(awk -v s="$started" -v g="$gone" 'BEGIN{printf "%.4f", (g-s)/1000}') s)"
else fail "uptime ${uptime_end:-?} s against the calendar's ${started:-?} .. ${gone:-?} ms"; fi

# The read rate in simulated time, against the bridge's driver on the same timed card.
seconds_of() { sed -n "s/^$1 .* copied, \([0-9.e+-]*\) s.*/\1/p" "$2"; }
guest_read=$(seconds_of dd-read out-a.txt)
socket=$work/mmc.sock
"$EMMCSIM_BIN" serve --image "$work/card-a" --mmc-socket "$socket" --timing approximate --log-level debug 2> bridge.log &
daemon=$!
for _ in $(seq 1 200); do [ -S "$socket" ] && break; sleep 0.05; done
LD_PRELOAD=$shim EMMCSIM_SOCKET=$socket dd if=/dev/mmcblk0 of=/dev/null bs=1M count=8 iflag=direct 2> /dev/null
kill -TERM "$daemon"; wait "$daemon" 2>/dev/null; daemon=
# The simulated time of the bridge's read requests ("request N (read ...)" then "request N done: ok, T us").
bridge_read=$(awk '/: request [0-9]+ \(read / { id[$4] = 1 }
  /: request [0-9]+ done: ok, / { if (id[$4]) { t += $(NF - 2) } }
  END { printf "%.9f", t / 1e6 }' bridge.log)
if [ -n "$guest_read" ] && awk -v g="$guest_read" -v b="$bridge_read" 'BEGIN { r = b / g; exit !(b > 0 && r > 0.98 && r < 1.02) }'; then
  pass "8 MiB read in Linux at $(awk -v g="$guest_read" 'BEGIN{printf "%.2f", 8388608/g/1e6}') MB/s simulated, the bridge's $(awk -v b="$bridge_read" 'BEGIN{printf "%.2f", 8388608/b/1e6}') within 2 %"
else fail "guest read ${guest_read:-?} s against the bridge's ${bridge_read:-?} s"; fi

# Twice the page program time: a 4 MiB synchronous write takes 256 pages x 300 us longer.
"$EMMCSIM_BIN" timing default-profile | sed 's/"page_program": "300us"/"page_program": "600us"/' > slow.json
run slow --timing-profile slow.json; status=$?
guest_write=$(seconds_of dd-write out-a.txt)
slow_write=$(seconds_of dd-write out-slow.txt)
if [ $status -eq 0 ] && [ -n "$guest_write" ] && [ -n "$slow_write" ] &&
   awk -v a="$guest_write" -v s="$slow_write" 'BEGIN { d = s - a; exit !(d > 0.0768 * 0.995 && d < 0.0768 * 1.005) }'; then
  pass "page_program 600 us: the 4 MiB write takes $(awk -v a="$guest_write" -v s="$slow_write" 'BEGIN{printf "%.4f", s-a}') s longer (256 pages x 300 us = 0.0768 s); $(awk -v a="$guest_write" 'BEGIN{printf "%.1f", 4194304/a/1e6}') -> $(awk -v s="$slow_write" 'BEGIN{printf "%.1f", 4194304/s/1e6}') MB/s"
else fail "write ${guest_write:-?} s, with page_program 600 us ${slow_write:-?} s (run exit $status)"; fi

report_checks
