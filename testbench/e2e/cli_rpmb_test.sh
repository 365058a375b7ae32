#!/usr/bin/env bash
# End-to-end check of `emmcsim rpmb`: exit statuses, messages naming the JEDEC result, file
# permissions, persistence across invocations, and that the key never appears in any output.
set -uo pipefail
emmcsim=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
failures=0
check() {  # check DESCRIPTION EXPECTED_STATUS EXPECTED_STDERR_PATTERN -- command...
  local what=$1 want=$2 pattern=$3
  shift 4
  "$@" >out.txt 2>err.txt
  local got=$?
  if [ "$got" -ne "$want" ] || ! grep -Eq -- "$pattern" err.txt out.txt; then
    echo "FAIL: $what: status $got (want $want); output:"; cat out.txt err.txt; failures=$((failures + 1))
  else
    echo "ok: $what"
  fi
  cat out.txt err.txt >> all_output.txt
}
printf 'SECRETKEYSECRETKEYSECRETKEY12345' > key.bin
printf 'OTHERKEYOTHERKEYOTHERKEYOTHERKEY' > wrong.bin
head -c 256 /dev/urandom > one.bin
head -c 8192 /dev/urandom > many.bin
head -c 300 /dev/urandom > odd.bin

check "info creates a 4 MiB image" 0 "4096 KiB" -- "$emmcsim" rpmb --image card info
check "counter before the key" 1 "key not yet programmed \(0x0007\)" -- "$emmcsim" rpmb --image card read-counter
check "program the key from stdin" 0 "key programmed" -- sh -c "\"$emmcsim\" rpmb --image card program-key - < key.bin"
check "second key programming" 1 "general failure \(0x0001\)" -- "$emmcsim" rpmb --image card program-key wrong.bin
check "write one half-sector" 0 "counter now 1" -- "$emmcsim" rpmb --image card write 5 one.bin key.bin
check "write 32 half-sectors" 0 "counter now 2" -- "$emmcsim" rpmb --image card write 0x100 many.bin key.bin
check "32 frames refused without EN_RPMB_REL_WR" 2 "EN_RPMB_REL_WR" -- "$emmcsim" rpmb --image card --no-en-rpmb-rel-wr write 0x100 many.bin key.bin
check "verified read" 0 "MAC verified" -- "$emmcsim" rpmb --image card read 0x100 32 back.bin key.bin
cmp -s many.bin back.bin && echo "ok: read back what was written" || { echo "FAIL: data differs"; failures=$((failures + 1)); }
check "replayed write" 1 "counter failure \(0x0003\)" -- "$emmcsim" rpmb --image card write --counter 0 5 one.bin key.bin
check "wrong key on write" 1 "authentication failure \(0x0002\)" -- "$emmcsim" rpmb --image card write 5 one.bin wrong.bin
check "wrong key on verified read" 1 "MAC mismatch" -- "$emmcsim" rpmb --image card read 5 1 - wrong.bin
check "read out of range" 1 "address failure \(0x0004\)" -- "$emmcsim" rpmb --image card read 16383 2 - key.bin
check "write out of range" 1 "address failure \(0x0004\)" -- "$emmcsim" rpmb --image card write 16384 one.bin key.bin
check "data file of a wrong size" 2 "256, 512 or 8192 bytes" -- "$emmcsim" rpmb --image card write 5 odd.bin key.bin
check "key file of a wrong size" 2 "exactly 32 bytes" -- "$emmcsim" rpmb --image card write 5 one.bin one.bin
check "bad address" 2 "ADDR 'x12'" -- "$emmcsim" rpmb --image card write x12 one.bin key.bin
check "counter persisted" 0 "counter value: 0x00000002" -- "$emmcsim" rpmb --image card read-counter key.bin
check "secure WP write" 0 "SECURE_WP_MODE_ENABLE set to 1" -- "$emmcsim" rpmb --image card config-write enable 1 key.bin
check "secure WP read" 0 "SECURE_WP_MODE_ENABLE 0x01" -- "$emmcsim" rpmb --image card config-read key.bin
check "size of a new image" 0 "128 KiB" -- "$emmcsim" rpmb --image small --rpmb-size 128K info
check "size not a multiple of 128K" 2 "multiple of 128 KiB" -- "$emmcsim" rpmb --image bad --rpmb-size 200K info
check "size above 16M" 2 "multiple of 128 KiB" -- "$emmcsim" rpmb --image bad --rpmb-size 32M info
check "size disagreeing with the image" 2 "disagrees" -- "$emmcsim" rpmb --image card --rpmb-size 8M info
truncate -s -1 card/rpmb.img
check "truncated image" 2 "truncated" -- "$emmcsim" rpmb --image card info
check "help explains the commands" 0 "program-key" -- "$emmcsim" rpmb --help

mode=$(stat -c %a small/rpmb.img)
[ "$mode" = 600 ] && echo "ok: image is mode 0600" || { echo "FAIL: image mode $mode"; failures=$((failures + 1)); }
if grep -q SECRETKEY all_output.txt; then echo "FAIL: the key appeared in output"; failures=$((failures + 1)); else echo "ok: the key never appears in output"; fi
echo "$failures failure(s)"
[ "$failures" -eq 0 ]
