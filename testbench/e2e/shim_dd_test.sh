#!/usr/bin/env bash
# End-to-end check of the LD_PRELOAD shim (libemmcsim-mmcioctl.so) against `emmcsim serve`:
# unmodified dd, blkid, mmc (mmc-utils) and python3 reach the simulated card through /dev/mmcblk0,
# /dev/mmcblk0boot0 and /dev/mmcblk0rpmb. Covers block I/O round trips (user area and boot
# partition, aligned and unaligned, short reads and ENOSPC at the end), data reaching the image,
# blkid on an ext2 superblock, MMC ioctls and their limits, the block-device ioctls, fstat, dup
# sharing the offset, the rpmb node's refusals, the error line without a daemon, EMMCSIM_DEVICE,
# paths the shim leaves alone, and EIO with one line when the daemon goes away.
#
# Usage: shim_dd_test.sh EMMCSIM SHIM.so. Exit 77 (skipped) when the shim is an ASan build and
# the ASan runtime it needs first in the process cannot be found.
set -uo pipefail
emmcsim=$(readlink -f "$1")
shim=$(readlink -f "$2")
work=$(mktemp -d)
daemon=
stop_daemon() {
  if [ -n "$daemon" ]; then
    kill -TERM "$daemon" 2>/dev/null
    wait "$daemon" 2>/dev/null
    daemon=
  fi
}
trap 'stop_daemon; rm -rf "$work"' EXIT
cd "$work" || exit 1
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
pass() { echo "ok: $*"; }

# An ASan build of the shim links libasan, which must be the first object in the process: an
# uninstrumented dd only gets it when it is preloaded ahead of the shim. Leak checking is off for
# the tools (not ours to fix); the daemon keeps it.
preload=$shim
tool_env=()
odd_bs=1000
shim_libraries=$(ldd "$shim" 2>/dev/null)
if grep -q libasan <<<"$shim_libraries"; then
  asan_runtime=$(awk '/libasan\.so/ { print $3; exit }' <<<"$shim_libraries")
  if [ -z "$asan_runtime" ] || [ ! -r "$asan_runtime" ]; then
    echo "SKIP: $shim is an AddressSanitizer build and its runtime (libasan) was not found to preload"
    exit 77
  fi
  preload="$asan_runtime $shim"
  tool_env=(ASAN_OPTIONS=detect_leaks=0)
  # dd allocates its buffer with aligned_alloc(page, bs), which GCC 12's ASan refuses unless bs is
  # a multiple of the page size: the unaligned checks keep unaligned offsets and lengths but use
  # bs=4096 (python3 below still reads and writes at odd offsets with odd lengths).
  odd_bs=4096
  echo "note: ASan build of the shim; preloading $asan_runtime first; dd uses bs=4096 for unaligned I/O"
fi

sock=$work/s/mmc.sock
# Runs a command with the shim, talking to this test's daemon.
shimmed() { env LD_PRELOAD="$preload" EMMCSIM_SOCKET="$sock" ${tool_env[@]+"${tool_env[@]}"} "$@"; }

# The daemon: ready once it says it listens (the socket file exists from bind(), before listen()).
mkdir -m 700 s
"$emmcsim" serve --image card --mmc-socket "$sock" 2>daemon.err &
daemon=$!
for ((tries = 0; ; tries++)); do
  if [ -S "$sock" ] && grep -q "listening on $sock" daemon.err; then break; fi
  if ! kill -0 "$daemon" 2>/dev/null; then
    echo "FAIL: emmcsim serve exited before listening:"; cat daemon.err; daemon=; exit 1
  fi
  if [ "$tries" -ge 600 ]; then
    echo "FAIL: emmcsim serve did not listen on $sock within 60 s:"; cat daemon.err; exit 1
  fi
  sleep 0.1
done
pass "emmcsim serve listens on $sock"

# ---- user area: 2.5 MiB at 1 MiB, read back, and in the image once fsync returned -------------
head -c $((40 * 65536)) /dev/urandom > data.bin
if shimmed dd if=data.bin of=/dev/mmcblk0 bs=64k seek=16 conv=notrunc,fsync status=none 2>err.txt; then
  pass "dd writes 2.5 MiB into /dev/mmcblk0"
else
  fail "dd into /dev/mmcblk0: $(cat err.txt)"
fi
shimmed dd if=/dev/mmcblk0 of=back.bin bs=64k skip=16 count=40 status=none 2>err.txt || fail "dd from /dev/mmcblk0: $(cat err.txt)"
cmp -s data.bin back.bin && pass "dd reads the same 2.5 MiB back" || fail "data read back from /dev/mmcblk0 differs"
dd if=card/user.img bs=64k skip=16 count=40 status=none | cmp -s - data.bin \
  && pass "the data is in card/user.img after conv=fsync" || fail "card/user.img does not hold the data written"

# ---- boot0 (4 MiB): writing past the end, a full round trip, short reads at the end ------------
out=$(shimmed dd if=/dev/zero of=/dev/mmcblk0boot0 bs=1M seek=3 count=2 2>&1)
status=$?
if [ "$status" -ne 0 ] && grep -q "No space left on device" <<<"$out" && grep -q "^1+0 records out" <<<"$out"; then
  pass "writing past the end of boot0 writes up to it, then ENOSPC"
else
  fail "dd past the end of boot0: status $status, output: $out"
fi
head -c $((4 * 1048576)) /dev/urandom > boot.bin
shimmed dd if=boot.bin of=/dev/mmcblk0boot0 bs=1M conv=fsync status=none 2>err.txt || fail "dd into boot0: $(cat err.txt)"
shimmed dd if=/dev/mmcblk0boot0 of=boot-back.bin bs=1M status=none 2>err.txt || fail "dd from boot0: $(cat err.txt)"
cmp -s boot.bin boot-back.bin && pass "boot0 round trip of 4 MiB (read stops at the end)" || fail "boot0 read back differs"
cmp -s boot.bin card/boot0.img && pass "the data is in card/boot0.img" || fail "card/boot0.img does not hold the data written"
shimmed dd if=/dev/mmcblk0boot0 of=tail.bin bs=1M skip=3 count=4 status=none 2>err.txt || fail "dd at the end of boot0: $(cat err.txt)"
size=$(stat -c %s tail.bin)
tail -c 1048576 boot.bin | cmp -s - tail.bin && [ "$size" = 1048576 ] \
  && pass "a read across the end of boot0 is short (1 MiB of 4 asked)" || fail "read across the end of boot0: $size bytes"
shimmed dd if=/dev/mmcblk0boot0 of=none.bin bs=1M skip=4 count=1 status=none 2>err.txt
[ "$(stat -c %s none.bin)" = 0 ] && pass "a read at the end of boot0 returns nothing" || fail "read at the end of boot0 returned data"

# ---- unaligned: 37000 bytes at 8 MiB + 3001 in blocks of 1000, checked against the same dd on a
# regular file; then read back in blocks of 1000 from 8 MiB + 999 ---------------------------------
head -c 65536 /dev/urandom > expected.bin
shimmed dd if=expected.bin of=/dev/mmcblk0 bs=64k seek=128 conv=notrunc status=none 2>err.txt || fail "dd pattern: $(cat err.txt)"
head -c 37000 /dev/urandom > odd.bin
shimmed dd if=odd.bin of=/dev/mmcblk0 bs=$odd_bs seek=$((8388608 + 3001)) oflag=seek_bytes conv=notrunc status=none 2>err.txt \
  || fail "unaligned dd into /dev/mmcblk0: $(cat err.txt)"
dd if=odd.bin of=expected.bin bs=$odd_bs seek=3001 oflag=seek_bytes conv=notrunc status=none
shimmed dd if=/dev/mmcblk0 of=region.bin bs=$odd_bs skip=$((8388608 + 999)) count=$((65536 - 999)) \
  iflag=skip_bytes,count_bytes status=none 2>err.txt || fail "unaligned dd from /dev/mmcblk0: $(cat err.txt)"
tail -c +1000 expected.bin | cmp -s - region.bin && pass "unaligned writes and reads (bs=$odd_bs) merge like a file" \
  || fail "unaligned round trip differs from a regular file given the same dd"

# ---- blkid on an ext2 file system written through the shim -------------------------------------
if command -v mkfs.ext2 >/dev/null && command -v blkid >/dev/null; then
  mkfs.ext2 -q -F -L emmcsim-shim fs.img 1024 >/dev/null 2>&1
  shimmed dd if=fs.img of=/dev/mmcblk0 bs=64k conv=notrunc,fsync status=none 2>err.txt || fail "dd fs.img: $(cat err.txt)"
  # -p: probe the device itself, no cache file (blkid without -p writes /run/blkid/blkid.tab).
  out=$(shimmed blkid -p -o export /dev/mmcblk0 2>&1)
  if grep -q "^TYPE=ext2$" <<<"$out" && grep -q "^LABEL=emmcsim-shim$" <<<"$out"; then
    pass "blkid -p finds the ext2 file system and its label"
  else
    fail "blkid -p /dev/mmcblk0: $out"
  fi
else
  echo "note: mkfs.ext2 or blkid missing, blkid not checked"
fi

# ---- mmc-utils through MMC_IOC_CMD / MMC_IOC_MULTI_CMD -----------------------------------------
if command -v mmc >/dev/null; then
  out=$(shimmed mmc extcsd read /dev/mmcblk0 2>&1)
  grep -q "Extended CSD rev 1.8 (MMC 5.1)" <<<"$out" && pass "mmc extcsd read" || fail "mmc extcsd read: $(head -5 <<<"$out")"
  out=$(shimmed mmc status get /dev/mmcblk0 2>&1)
  grep -q "DEVICE STATE: TRANS" <<<"$out" && pass "mmc status get" || fail "mmc status get: $out"
  out=$(shimmed mmc rpmb read-counter /dev/mmcblk0rpmb 2>&1)
  grep -q "retcode 0x0007" <<<"$out" && pass "mmc rpmb read-counter reaches RPMB (key not programmed: 0x0007)" \
    || fail "mmc rpmb read-counter: $out"
else
  echo "note: mmc (mmc-utils) missing, not checked"
fi

# ---- ioctls, fstat, lseek, dup and the rpmb node, from python3 ---------------------------------
if command -v python3 >/dev/null; then
  cat > probe.py <<'EOF'
import ctypes, errno, fcntl, os, stat, struct, sys
MMC_IOC_CMD, MMC_IOC_MULTI_CMD = 0xC048B300, 0xC008B301
BLKGETSIZE64, BLKGETSIZE, BLKSSZGET, BLKPBSZGET, BLKROGET, BLKFLSBUF = 0x80081272, 0x1260, 0x1268, 0x127B, 0x125E, 0x1261
failures = 0
def check(what, good, detail=""):
    global failures
    print(("ok: " if good else "FAIL: ") + what + ("" if good else " " + str(detail)))
    failures += 0 if good else 1
def fails_with(what, wanted, call):
    try:
        call()
        check(what, False, "succeeded")
    except OSError as e:
        check(what, e.errno == wanted, errno.errorcode.get(e.errno))
def cmd(opcode, arg, flags, blksz=0, blocks=0, write=0, buf=None):
    return struct.pack("<iiII4IIIIIIIIIQ", write, 0, opcode, arg, 0, 0, 0, 0, flags, blksz, blocks,
                       0, 0, 0, 0, 0, ctypes.addressof(buf) if buf is not None else 0)
def response(b, offset=0):
    return struct.unpack_from("<I", b, offset + 16)[0]

fd = os.open("/dev/mmcblk0", os.O_RDWR)
ext_csd = ctypes.create_string_buffer(512)
ic = bytearray(cmd(8, 0, 0x35, 512, 1, 0, ext_csd))
fcntl.ioctl(fd, MMC_IOC_CMD, ic)
check("MMC_IOC_CMD CMD8 returns R1 (tran) and EXT_CSD (rev 8)", response(ic) == 0x900 and ext_csd.raw[192] == 8,
      (hex(response(ic)), ext_csd.raw[192]))
ic = bytearray(cmd(13, 1 << 16, 0x15))
fcntl.ioctl(fd, MMC_IOC_CMD, ic)
check("MMC_IOC_CMD CMD13 copies response[0] back", response(ic) == 0x900, hex(response(ic)))
multi = bytearray(struct.pack("<Q", 2) + cmd(13, 1 << 16, 0x15) + cmd(8, 0, 0x35, 512, 1, 0, ext_csd))
fcntl.ioctl(fd, MMC_IOC_MULTI_CMD, multi)
check("MMC_IOC_MULTI_CMD copies every response back", response(multi, 8) == 0x900 and response(multi, 80) == 0x900)
fails_with("a command over 512 KiB: EOVERFLOW", errno.EOVERFLOW,
           lambda: fcntl.ioctl(fd, MMC_IOC_CMD, bytearray(cmd(18, 0, 0x35, 512, 1025, 0, ext_csd))))
fails_with("256 commands: EINVAL", errno.EINVAL,
           lambda: fcntl.ioctl(fd, MMC_IOC_MULTI_CMD, bytearray(struct.pack("<Q", 256) + cmd(13, 1 << 16, 0x15) * 256)))
check("zero commands: nothing to do", fcntl.ioctl(fd, MMC_IOC_MULTI_CMD, bytearray(struct.pack("<Q", 0) + bytes(72))) == 0)
two_blocks = ctypes.create_string_buffer(1024)  # kept alive: the shim writes read data into it
ic = bytearray(cmd(18, 0xFFFFFFF0, 0x35, 512, 2, 0, two_blocks))
try:
    fcntl.ioctl(fd, MMC_IOC_CMD, ic)
    check("a read beyond the user area fails", False, "succeeded")
except OSError as e:
    # The card answers with OUT_OF_RANGE (R1 bit 31); the kernel copies that back with the errno.
    check("a read beyond the user area fails, its response (OUT_OF_RANGE) copied back",
          response(ic) & 0x80000000 != 0, (errno.errorcode.get(e.errno), hex(response(ic))))

size = struct.unpack("<Q", fcntl.ioctl(fd, BLKGETSIZE64, bytes(8)))[0]
check("BLKGETSIZE64 is 8 GiB", size == 8 << 30, size)
check("BLKGETSIZE in sectors", struct.unpack("<Q", fcntl.ioctl(fd, BLKGETSIZE, bytes(8)))[0] == size // 512)
check("BLKSSZGET 512", struct.unpack("<i", fcntl.ioctl(fd, BLKSSZGET, bytes(4)))[0] == 512)
check("BLKPBSZGET 512", struct.unpack("<I", fcntl.ioctl(fd, BLKPBSZGET, bytes(4)))[0] == 512)
check("BLKROGET 0", struct.unpack("<i", fcntl.ioctl(fd, BLKROGET, bytes(4)))[0] == 0)
check("BLKFLSBUF flushes", fcntl.ioctl(fd, BLKFLSBUF, 0) == 0)
fails_with("another ioctl (TCGETS): EINVAL, as mmc_blk_ioctl", errno.EINVAL, lambda: fcntl.ioctl(fd, 0x5401, bytes(64)))
st = os.fstat(fd)
check("fstat: block device 179:0, st_blksize 4096", stat.S_ISBLK(st.st_mode) and os.major(st.st_rdev) == 179 and
      os.minor(st.st_rdev) == 0 and st.st_blksize == 4096 and st.st_size == 0)
st = os.stat("/dev/mmcblk0boot0")
check("stat of /dev/mmcblk0boot0: block device", stat.S_ISBLK(st.st_mode))
check("lseek SEEK_END is the size", os.lseek(fd, 0, os.SEEK_END) == size)
fails_with("lseek past the end: EINVAL", errno.EINVAL, lambda: os.lseek(fd, 1, os.SEEK_END))
check("pread at the end: 0 bytes", os.pread(fd, 100, size) == b"")
fails_with("pwrite at the end: ENOSPC", errno.ENOSPC, lambda: os.pwrite(fd, b"x", size))
check("pwrite across the end is partial", os.pwrite(fd, b"y" * 1000, size - 300) == 300)
os.pwrite(fd, b"hello, card", 12345)
check("pwrite/pread at an odd offset", os.pread(fd, 11, 12345) == b"hello, card")
other = os.dup(fd)
os.lseek(fd, 4096, os.SEEK_SET)
check("dup shares the file offset", os.lseek(other, 0, os.SEEK_CUR) == 4096)
os.dup2(other, 10)
os.close(fd)
os.close(other)
check("a dup2'ed descriptor outlives the others", os.pread(10, 5, 12345) == b"hello")
check("F_GETFL gives the access mode", fcntl.fcntl(10, fcntl.F_GETFL) & os.O_ACCMODE == os.O_RDWR)
os.close(10)
fails_with("use after close: EBADF", errno.EBADF, lambda: os.pread(10, 5, 0))

ro = os.open("/dev/mmcblk0", os.O_RDONLY)
fails_with("write on a read-only descriptor: EBADF", errno.EBADF, lambda: os.write(ro, b"x"))
os.close(ro)
rpmb = os.open("/dev/mmcblk0rpmb", os.O_RDWR)
check("fstat of the rpmb node: character device", stat.S_ISCHR(os.fstat(rpmb).st_mode))
fails_with("read on the rpmb node: EINVAL", errno.EINVAL, lambda: os.read(rpmb, 512))
fails_with("write on the rpmb node: EINVAL", errno.EINVAL, lambda: os.write(rpmb, bytes(512)))
fails_with("lseek on the rpmb node: ESPIPE", errno.ESPIPE, lambda: os.lseek(rpmb, 0, os.SEEK_SET))
fails_with("BLKGETSIZE64 on the rpmb node: EINVAL", errno.EINVAL, lambda: fcntl.ioctl(rpmb, BLKGETSIZE64, bytes(8)))
os.close(rpmb)
fails_with("O_CREAT|O_EXCL on a node: EEXIST", errno.EEXIST, lambda: os.open("/dev/mmcblk0", os.O_RDWR | os.O_CREAT | os.O_EXCL))
sys.exit(1 if failures else 0)
EOF
  shimmed python3 probe.py > probe.txt 2>&1
  status=$?
  cat probe.txt
  [ "$status" -eq 0 ] || fail "python3 probe ($(grep -c '^FAIL' probe.txt) failed checks)"
else
  echo "note: python3 missing, ioctl details not checked"
fi

# ---- no daemon: open fails and one line names the socket ---------------------------------------
out=$(env LD_PRELOAD="$preload" EMMCSIM_SOCKET="$work/missing.sock" ${tool_env[@]+"${tool_env[@]}"} \
  dd if=/dev/mmcblk0 of=/dev/null count=1 2>&1)
status=$?
if [ "$status" -ne 0 ] && grep -q "emmcsim-mmcioctl: /dev/mmcblk0: cannot reach the daemon at $work/missing.sock" <<<"$out" \
  && grep -q "emmcsim serve" <<<"$out"; then
  pass "without a daemon dd fails and the shim names the socket"
else
  fail "without a daemon: status $status, output: $out"
fi

# ---- EMMCSIM_DEVICE ----------------------------------------------------------------------------
shimmed env EMMCSIM_DEVICE=mmcblk2 dd if=/dev/mmcblk2 bs=64k skip=16 count=40 status=none 2>err.txt | cmp -s - data.bin \
  && pass "EMMCSIM_DEVICE=mmcblk2 maps /dev/mmcblk2" || fail "EMMCSIM_DEVICE=mmcblk2: $(cat err.txt)"
if [ ! -e /dev/mmcblk0 ]; then
  out=$(shimmed env EMMCSIM_DEVICE=mmcblk2 dd if=/dev/mmcblk0 of=/dev/null count=1 2>&1)
  grep -q "No such file or directory" <<<"$out" && ! grep -q emmcsim-mmcioctl <<<"$out" \
    && pass "with EMMCSIM_DEVICE=mmcblk2, /dev/mmcblk0 is left alone" || fail "EMMCSIM_DEVICE=mmcblk2 and /dev/mmcblk0: $out"
fi

# ---- paths the shim leaves alone ---------------------------------------------------------------
shimmed dd if=data.bin of=copy.bin bs=4096 status=none 2>err.txt && cmp -s data.bin copy.bin \
  && pass "dd between regular files is unaffected" || fail "dd between regular files: $(cat err.txt)"
shimmed cat data.bin | cmp -s - data.bin && pass "cat of a regular file is unaffected" || fail "cat through the shim"
if [ ! -e /dev/mmcblk0p1 ]; then
  out=$(shimmed dd if=/dev/mmcblk0p1 of=/dev/null count=1 2>&1)
  grep -q "No such file or directory" <<<"$out" && ! grep -q emmcsim-mmcioctl <<<"$out" \
    && pass "/dev/mmcblk0p1 (no partitions) is not mapped" || fail "/dev/mmcblk0p1: $out"
fi

# ---- the daemon goes away under an open descriptor: EIO and one line ---------------------------
if command -v python3 >/dev/null; then
  cat > lost.py <<'EOF'
import errno, os, signal, sys, time
daemon = int(sys.argv[1])
fd = os.open("/dev/mmcblk0", os.O_RDONLY)
os.pread(fd, 512, 0)
os.kill(daemon, signal.SIGTERM)
for _ in range(600):  # until the daemon has exited (a zombie of the test's shell)
    try:
        with open(f"/proc/{daemon}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                break
    except FileNotFoundError:
        break
    time.sleep(0.05)
results = []
for _ in range(2):
    try:
        os.pread(fd, 512, 0)
        results.append("ok")
    except OSError as e:
        results.append(errno.errorcode.get(e.errno))
os.close(fd)
print(" ".join(results))
EOF
  out=$(shimmed python3 lost.py "$daemon" 2>err.txt)
  if [ "$out" = "EIO EIO" ] && [ "$(grep -c "emmcsim-mmcioctl: /dev/mmcblk0: lost the daemon at $sock" err.txt)" = 1 ]; then
    pass "a lost daemon: EIO, and one line on stderr"
  else
    fail "lost daemon: reads gave '$out', stderr: $(cat err.txt)"
  fi
fi

# ---- SIGTERM stops the daemon cleanly ----------------------------------------------------------
kill -TERM "$daemon" 2>/dev/null
wait "$daemon"
status=$?
daemon=
[ "$status" -eq 0 ] && pass "emmcsim serve exits 0 on SIGTERM" || { fail "emmcsim serve exited $status"; cat daemon.err; }

if [ "$failures" -ne 0 ]; then
  echo "$failures check(s) failed"
  exit 1
fi
echo "all shim checks passed"
