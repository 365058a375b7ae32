#!/usr/bin/env bash
# End-to-end check of `emmcsim image`: creating image directories from the default, from a
# configuration file and around an existing raw disk image; what `info` shows, also of an image
# `emmcsim serve` is serving; exit status 2 and a message naming the field or file for bad
# configurations and damaged images; file modes.
set -uo pipefail
emmcsim=$1
version=${2:-}  # project(VERSION) of CMakeLists.txt, which --version must say
work=$(mktemp -d)
daemon=
trap '[ -n "$daemon" ] && kill -9 "$daemon" 2>/dev/null; rm -rf "$work"' EXIT
cd "$work"
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
check() {  # check DESCRIPTION EXPECTED_STATUS EXPECTED_OUTPUT_PATTERN -- command...
  local what=$1 want=$2 pattern=$3
  shift 4
  "$@" >out.txt 2>err.txt
  local got=$?
  if [ "$got" -ne "$want" ] || ! grep -Eq -- "$pattern" err.txt out.txt; then
    echo "FAIL: $what: status $got (want $want); output:"; cat out.txt err.txt; failures=$((failures + 1))
  else
    echo "ok: $what"
  fi
}

if [ -n "$version" ]; then
  check "--version says the project's version" 0 "^emmcsim ${version//./\\.}\$" -- "$emmcsim" --version
fi
check "create the default image" 0 "created image card" -- "$emmcsim" image create card
cp out.txt create.txt
check "create names the boot partitions as Linux does" 0 "boot0 +4 MiB +boot0.img" -- cat create.txt
grep -q "boot2" create.txt && fail "create printed a JEDEC-numbered boot partition name"
for f in device.json user.img boot0.img boot1.img rpmb.img; do
  [ -e "card/$f" ] || fail "card/$f was not created"
done
[ -e card/gp1.img ] && fail "gp1.img created without general-purpose partitions"
mode=$(stat -c %a card)
[ "$mode" = 700 ] && echo "ok: directory is mode 0700" || fail "directory mode $mode"
for f in card/*; do
  mode=$(stat -c %a "$f")
  [ "$mode" = 600 ] || fail "$f is mode $mode, not 0600"
done
echo "ok: files checked for mode 0600"
[ "$(stat -c %s card/user.img)" = 8589934592 ] || fail "user.img is not 8 GiB"
[ "$(du -k card/user.img | cut -f1)" -lt 1024 ] && echo "ok: user.img is sparse" || fail "user.img is not sparse"

check "info shows the capacity" 0 "capacity +8 GiB .*sector .*addressing" -- "$emmcsim" image info card
check "info lists the boot partitions" 0 "boot1 +4 MiB +boot1.img" -- "$emmcsim" image info card
check "info shows the eMMC version" 0 "version +eMMC 5.1 \(EXT_CSD_REV 8\)" -- "$emmcsim" image info card
grep -q "in use" out.txt && fail "info says an image nobody holds is in use"
check "info --json shows the version" 0 "\"ext_csd_rev\": 8" -- "$emmcsim" image info --json card
check "info shows the CID" 0 "PNM \"EMSIM1\"" -- "$emmcsim" image info card
check "info shows the bus modes" 0 "bus modes +HS26 HS52 DDR52 HS200 HS400" -- "$emmcsim" image info card
check "info shows REL_WR_SEC_C" 0 "REL_WR_SEC_C +1 " -- "$emmcsim" image info card
check "info shows EN_RPMB_REL_WR" 0 "EN_RPMB_REL_WR +yes" -- "$emmcsim" image info card
check "info shows the cache" 0 "cache +1 MiB" -- "$emmcsim" image info card
check "info shows the erase group" 0 "erase group +512 KiB" -- "$emmcsim" image info card
check "info shows the RPMB key state" 0 "RPMB key +not programmed" -- "$emmcsim" image info card
check "info shows the RPMB counter" 0 "RPMB write counter +0" -- "$emmcsim" image info card
check "info --json" 0 "\"user_capacity\": \"8GiB\"" -- "$emmcsim" image info --json card

# The RPMB partition of an image is the one `emmcsim rpmb` uses; the key is never shown.
printf 'SECRETKEYSECRETKEYSECRETKEY12345' > key.bin
head -c 256 /dev/urandom > one.bin
check "program the key through rpmb" 0 "key programmed" -- "$emmcsim" rpmb --image card program-key key.bin
check "write through rpmb" 0 "counter now 1" -- "$emmcsim" rpmb --image card write 0 one.bin key.bin
check "info shows the key programmed" 0 "RPMB key +programmed" -- "$emmcsim" image info card
check "info shows the new counter" 0 "RPMB write counter +1" -- "$emmcsim" image info card
"$emmcsim" image info card > info.txt 2>&1
"$emmcsim" image info --json card >> info.txt 2>&1
grep -q SECRETKEY info.txt && fail "the key appeared in info output" || echo "ok: the key never appears in info"

# `image info` reads an image `emmcsim serve` is serving (without taking its lock) and says so.
"$emmcsim" serve --image card --mmc-socket "$work/mmc.sock" > serve.log 2>&1 &
daemon=$!
for _ in $(seq 300); do grep -q "listening on" serve.log && break; sleep 0.1; done
if grep -q "listening on" serve.log; then
  check "info on a served image" 0 "in use +yes: another process" -- "$emmcsim" image info card
  check "info on a served image shows the version" 0 "version +eMMC 5.1" -- "$emmcsim" image info card
  check "info --json on a served image" 0 "\"in_use\": true" -- "$emmcsim" image info --json card
  check "write through the daemon" 0 "counter now 2" -- "$emmcsim" rpmb --mmc-socket "$work/mmc.sock" write 1 one.bin key.bin
  check "info sees the daemon's commit" 0 "RPMB write counter +2" -- "$emmcsim" image info card
  check "the daemon still holds the image" 2 "in use by another process" -- "$emmcsim" rpmb --image card info
  kill "$daemon"; wait "$daemon"; daemon=
  check "info after the daemon stopped" 0 "RPMB write counter +2" -- "$emmcsim" image info card
  grep -q "in use" out.txt && fail "info still says in use after the daemon stopped"
else
  fail "emmcsim serve did not start: $(cat serve.log)"
fi

cat > custom.json <<'EOF'
{
  "user_capacity": "1GiB",
  "boot_partition_size": "512KiB",
  "rpmb_size": "128KiB",
  "general_purpose_partitions": ["2MiB", "1MiB"],
  "reliable_write_sectors": 8,
  "en_rpmb_rel_wr": false,
  "cid": {"product_name": "CUSTOM"}
}
EOF
check "create with a configuration file" 0 "gp2 +1 MiB +gp2.img" -- "$emmcsim" image create --config custom.json custom
[ -e custom/gp1.img ] && [ -e custom/gp2.img ] && [ ! -e custom/gp3.img ] && echo "ok: gp files" || fail "gp files"
[ "$(stat -c %s custom/boot0.img)" = 524288 ] || fail "boot0.img is not 512 KiB"
check "custom info: byte addressing" 0 "capacity +1 GiB .*byte .*addressing" -- "$emmcsim" image info custom
check "custom info: REL_WR_SEC_C" 0 "REL_WR_SEC_C +8 " -- "$emmcsim" image info custom
check "custom info: EN_RPMB_REL_WR" 0 "EN_RPMB_REL_WR +no" -- "$emmcsim" image info custom
check "custom info: product name" 0 "PNM \"CUSTOM\"" -- "$emmcsim" image info custom

echo '{"boot_partition_size": "100000"}' > bad_value.json
check "bad config value names the field" 2 "boot_partition_size" -- "$emmcsim" image create --config bad_value.json bad1
[ -e bad1 ] && fail "a bad config left bad1 behind"
echo '{"user_capacty": "1GiB"}' > bad_name.json
check "misspelt config field is named" 2 "user_capacty" -- "$emmcsim" image create --config bad_name.json bad2
check "config file that is not JSON" 2 "bad_json.json" -- sh -c "echo '{ nope' > bad_json.json; \"$emmcsim\" image create --config bad_json.json bad3"
check "missing config file" 2 "cannot read config file 'absent.json'" -- "$emmcsim" image create --config absent.json bad4

mkdir busy && echo mine > busy/notes.txt
check "create into a non-empty directory is refused" 2 "image busy: exists and is not empty" -- "$emmcsim" image create busy
[ "$(ls busy)" = notes.txt ] && echo "ok: the non-empty directory is untouched" || fail "busy/ was changed"
check "create over an existing image is refused" 2 "not empty" -- "$emmcsim" image create card

"$emmcsim" image default-config > default.json
check "default-config parses back through create --config" 0 "created image fromdefault" -- "$emmcsim" image create --config default.json fromdefault
cmp -s default.json fromdefault/device.json && echo "ok: device.json equals default-config" || fail "device.json differs from default-config"

truncate -s 3M raw.img
printf 'BOOTSECTOR' | dd of=raw.img conv=notrunc status=none
check "adopt an existing raw image" 0 "user.img links to $work/raw.img" -- "$emmcsim" image create --user-image raw.img adopted
[ -L adopted/user.img ] && [ "$(readlink adopted/user.img)" = "$work/raw.img" ] && echo "ok: user.img is an absolute symlink" || fail "user.img is not a symlink to raw.img"
check "adopted image takes the raw size" 0 "capacity +3 MiB" -- "$emmcsim" image info adopted
[ "$(head -c 10 raw.img)" = BOOTSECTOR ] && echo "ok: the raw image keeps its contents" || fail "raw image changed"
truncate -s 1000000 odd.img
check "raw image of a size that is not a multiple of 512 KiB" 2 "not a multiple of 512 KiB" -- "$emmcsim" image create --user-image odd.img odd
[ -e odd ] && fail "a refused adoption left odd/ behind"

cp -r --sparse=always custom damaged
truncate -s 1M damaged/boot0.img
check "info on a damaged image names the file" 2 "boot0.img is 1048576 bytes but device.json says 512 KiB" -- "$emmcsim" image info damaged
rm damaged/device.json
check "info on an interrupted creation" 2 "device.json is missing" -- "$emmcsim" image info damaged
check "info on a missing directory" 2 "image nowhere" -- "$emmcsim" image info nowhere

check "help explains create" 0 "--user-image" -- "$emmcsim" image create --help
check "help lists the image commands" 0 "default-config" -- "$emmcsim" image --help
echo "$failures failure(s)"
[ "$failures" -eq 0 ]
