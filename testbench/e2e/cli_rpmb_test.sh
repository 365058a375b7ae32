#!/usr/bin/env bash
# End-to-end check of `emmcsim rpmb`: exit statuses, messages naming the JEDEC result, file
# permissions, persistence across invocations, and that the key never appears in any output;
# then `rpmb --vhost-user` against `emmcsim serve --vhost-user-socket` (a VM's virtio-rpmb driver)
# and `rpmb --mmc-socket` (the bridge, as mmc-utils) on the same daemon, each reading what the
# other wrote, and the results checked on the image once the daemon has stopped.
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
check "a --durability word it does not know" 2 "'never' is not one of sync[|]os" -- "$emmcsim" rpmb --image card --durability never info
check "the number behind a word is no word" 2 "'1' is not one of sync[|]os" -- "$emmcsim" rpmb --image card --durability 1 info
check "a config-write REGISTER it does not know" 2 "'bogus' is not one of enable[|]config" -- "$emmcsim" rpmb --image card config-write bogus 1 key.bin
check "serve refuses a --timing it does not know" 2 "'fast' is not one of off[|]approximate" -- "$emmcsim" serve --image never-made --timing fast
[ -e never-made ] && { echo "FAIL: serve with a bad --timing created its image"; failures=$((failures + 1)); }
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

# Over virtio-rpmb: the daemon serves a fresh image; the CLI plays the VM.
vhost=$work/run/vhost.sock
"$emmcsim" serve --image vm --mmc-socket "$work/run/mmc.sock" --vhost-user-socket "$vhost" 2>serve.log &
daemon=$!
for _ in $(seq 1 400); do grep -q 'listening on' serve.log && break; sleep 0.05; done
check "the daemon offers virtio-rpmb" 0 "virtio-rpmb \(vhost-user\) on .*max_wr_cnt 32, max_rd_cnt 255" -- cat serve.log
check "vhost-user: counter before the key" 1 "key not yet programmed \(0x0007\)" -- "$emmcsim" rpmb --vhost-user "$vhost" read-counter
check "vhost-user: program the key" 0 "key programmed" -- "$emmcsim" rpmb --vhost-user "$vhost" program-key key.bin
check "vhost-user: second key programming" 1 "general failure \(0x0001\)" -- "$emmcsim" rpmb --vhost-user "$vhost" program-key wrong.bin
check "vhost-user: write 32 half-sectors" 0 "counter now 1" -- "$emmcsim" rpmb --vhost-user "$vhost" write 0x40 many.bin key.bin
check "vhost-user: verified read" 0 "MAC verified" -- "$emmcsim" rpmb --vhost-user "$vhost" read 0x40 32 vback.bin key.bin
cmp -s many.bin vback.bin && echo "ok: vhost-user read back what was written" || { echo "FAIL: vhost-user data differs"; failures=$((failures + 1)); }
check "vhost-user: wrong key on write" 1 "authentication failure \(0x0002\)" -- "$emmcsim" rpmb --vhost-user "$vhost" write 5 one.bin wrong.bin
check "vhost-user: replayed write" 1 "counter failure \(0x0003\)" -- "$emmcsim" rpmb --vhost-user "$vhost" write --counter 0 5 one.bin key.bin
check "vhost-user: config write" 0 "SECURE_WP_MODE_CONFIG set to 1" -- "$emmcsim" rpmb --vhost-user "$vhost" config-write config 1 key.bin
check "bridge: the VM's counter" 0 "counter value: 0x00000002 \(2\) \(MAC verified\)" -- "$emmcsim" rpmb --mmc-socket "$work/run/mmc.sock" read-counter key.bin
check "bridge: the VM's data" 0 "MAC verified" -- "$emmcsim" rpmb --mmc-socket "$work/run/mmc.sock" read 0x40 32 bback.bin key.bin
cmp -s many.bin bback.bin && echo "ok: the bridge reads what the VM wrote" || { echo "FAIL: bridge data differs"; failures=$((failures + 1)); }
check "bridge: a write the VM then reads" 0 "counter now 3" -- "$emmcsim" rpmb --mmc-socket "$work/run/mmc.sock" write 7 one.bin key.bin
check "vhost-user: reads the bridge's write" 0 "MAC verified" -- "$emmcsim" rpmb --vhost-user "$vhost" read 7 1 vone.bin key.bin
cmp -s one.bin vone.bin && echo "ok: the VM reads what the bridge wrote" || { echo "FAIL: virtio data differs"; failures=$((failures + 1)); }
check "both --image and --vhost-user" 2 "exactly one of --image DIR" -- "$emmcsim" rpmb --image card --vhost-user "$vhost" read-counter
check "neither --image nor --vhost-user" 2 "exactly one of --image DIR" -- "$emmcsim" rpmb read-counter
check "info needs the image" 2 "info reads the image directory itself" -- "$emmcsim" rpmb --vhost-user "$vhost" info
check "no daemon there" 2 "cannot connect to .*nowhere.sock.*is 'emmcsim serve --vhost-user-socket" -- "$emmcsim" rpmb --vhost-user "$work/nowhere.sock" read-counter
mode=$(stat -c %a "$vhost")
[ "$mode" = 600 ] && echo "ok: vhost-user socket is mode 0600" || { echo "FAIL: vhost-user socket mode $mode"; failures=$((failures + 1)); }
kill -TERM "$daemon"; wait "$daemon"
check "the VM's writes are on the image" 0 "write counter    3" -- "$emmcsim" rpmb --image vm info
check "and readable without the daemon" 0 "SECURE_WP_MODE_CONFIG 0x01" -- "$emmcsim" rpmb --image vm config-read key.bin

mode=$(stat -c %a small/rpmb.img)
[ "$mode" = 600 ] && echo "ok: image is mode 0600" || { echo "FAIL: image mode $mode"; failures=$((failures + 1)); }
if grep -q SECRETKEY all_output.txt; then echo "FAIL: the key appeared in output"; failures=$((failures + 1)); else echo "ok: the key never appears in output"; fi
echo "$failures failure(s)"
[ "$failures" -eq 0 ]
