#!/usr/bin/env bash
# cmake --install into a scratch prefix, then build and run consumers that use
# find_package(emmcsim) as a virtual platform and a daemon client would.
#   install_test.sh BUILD_DIR
set -euo pipefail
build_dir=$1
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cmake --install "$build_dir" --prefix "$work/prefix" > "$work/install.log"
for f in include/emmcsim/mmc/card.hpp include/emmcsim/rpmb/engine.hpp include/emmcsim/models/emmc_device.hpp \
         include/emmcsim/models/sdhci.hpp include/emmcsim/mmc/host_bus.hpp include/emmcsim/mmc/linux_block_driver.hpp \
         include/emmcsim/models/timed_block_device.hpp bin/emmcsim \
         lib/cmake/emmcsim/emmcsimConfig.cmake lib/cmake/emmcsim/emmcsimTransportTargets.cmake; do
  [ -e "$work/prefix/$f" ] || { echo "FAIL: $f was not installed"; exit 1; }
done
generator=()
command -v ninja > /dev/null && generator=(-G Ninja)

# The platform links emmcsim::models alone: the package must not need Boost, spdlog, fmt or
# nlohmann-json found for it (they are not part of its link interface).
cmake -S "$here/install_consumer" -B "$work/consumer" "${generator[@]}" \
  -DCMAKE_PREFIX_PATH="$work/prefix" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_DISABLE_FIND_PACKAGE_Boost=ON -DCMAKE_DISABLE_FIND_PACKAGE_spdlog=ON \
  -DCMAKE_DISABLE_FIND_PACKAGE_fmt=ON -DCMAKE_DISABLE_FIND_PACKAGE_nlohmann_json=ON > "$work/configure.log" 2>&1 \
  || { cat "$work/configure.log"; echo "FAIL: find_package(emmcsim) for emmcsim::models failed without Boost, spdlog, fmt and nlohmann-json"; exit 1; }
cmake --build "$work/consumer" > "$work/build.log" 2>&1 || { cat "$work/build.log"; echo "FAIL: consumer build"; exit 1; }

out=$("$work/consumer/consumer")
# All at 400 kHz (2.5 us a cycle): CMD0 120 cycles, CMD1 x3, CMD3, CMD7 and CMD8 106 each, CMD2
# 194, the EXT_CSD block N_AC min 2 + 4114 at 1 bit: 300 + 795 + 485 + 265 x 3 + 10290 us. The
# controller adds no time: register accesses take none and its interrupts come as the phases end.
expected="ext_csd_rev=8 rpmb_size_mult=32 at 12665 us"
[ "$out" = "$expected" ] || { echo "FAIL: consumer printed '$out', expected '$expected'"; exit 1; }
echo "ok: installed package found, linked and run ($out)"

# The Linux-like driver and an RPMB host over the timed model, with the default timing profile.
# HS400 moves a cycle in 5 ns: an R1 command and its N_RC take 530 ns, a read block 1370 ns at
# 8-bit DDR, a written one 1415 ns with N_WR, CRC and CRC status. The 4 KiB write goes to the
# cache (no busy): CMD23, CMD25, 8 blocks and one CMD13, 12.910 us. The read of unwritten sectors:
# CMD23 and CMD18, the 50 us page read, 7 x N_AC min 10 ns and 8 blocks, 62.090 us. The
# authenticated write (counter read, the write with its MAC, commit and page program, the result
# read, each inside two partition switches) and the probe are summed the same way.
out=$("$work/consumer/linux_host")
expected="driver: HS400 8-bit DDR at 200 MHz after 13834.214 us, user 8192 MiB, rpmb 4096 KiB
driver: 4 KiB written in 12.910 us (errno 0), read in 62.090 us (errno 0), read back equal
rpmb: key programmed, block 0x10 written in 2530.495 us, read back verified, counter 1"
[ "$out" = "$expected" ] || { echo "FAIL: linux_host printed"; echo "$out"; echo "expected"; echo "$expected"; exit 1; }
echo "ok: the Linux-like driver and an RPMB host ran on the timed model from the installed package"

# A client of the daemon asks for the transport component: Boost and spdlog are looked for then.
mkdir -p "$work/transport_src"
cat > "$work/transport_src/CMakeLists.txt" <<'CMAKE'
cmake_minimum_required(VERSION 3.25)
project(emmcsim_transport_consumer LANGUAGES CXX)
set(CMAKE_CXX_STANDARD 17)
set(CMAKE_CXX_STANDARD_REQUIRED ON)
find_package(emmcsim 0.1 REQUIRED COMPONENTS transport)
add_executable(transport_client main.cpp)
target_link_libraries(transport_client PRIVATE emmcsim::transport)
CMAKE
cat > "$work/transport_src/main.cpp" <<'CPP'
// The untimed card behind StrandDevicePort, as `emmcsim serve` runs it, asked for its description.
#include <emmcsim/mmc/card.hpp>
#include <emmcsim/mmc/host_bus.hpp>
#include <emmcsim/mmc/image.hpp>
#include <emmcsim/transport/device_port.hpp>

#include <boost/asio/io_context.hpp>
#include <cstdio>
#include <variant>

int main() {
  using namespace emmcsim;
  mmc::DeviceConfig config = mmc::default_device_config();
  config.user_capacity = 64ULL << 20;
  mmc::MemoryImage image(config);
  mmc::Card card(config, image.backend());
  mmc::CardHostBus bus(card);
  boost::asio::io_context io;
  transport::StrandDevicePort port(io, bus);
  port.submit(transport::bridge::DescribeRequest{}, [](transport::bridge::Reply reply) {
    std::printf("user %llu MiB\n",
                static_cast<unsigned long long>(std::get<transport::bridge::DescribeReply>(reply).node_size[0] >> 20));
  });
  io.run();
  return 0;
}
CPP
cmake -S "$work/transport_src" -B "$work/transport" "${generator[@]}" -DCMAKE_PREFIX_PATH="$work/prefix" \
  -DCMAKE_BUILD_TYPE=Release > "$work/transport_configure.log" 2>&1 \
  || { cat "$work/transport_configure.log"; echo "FAIL: find_package(emmcsim COMPONENTS transport) failed"; exit 1; }
cmake --build "$work/transport" > "$work/transport_build.log" 2>&1 \
  || { cat "$work/transport_build.log"; echo "FAIL: transport consumer build"; exit 1; }
out=$("$work/transport/transport_client")
[ "$out" = "user 64 MiB" ] || { echo "FAIL: transport_client printed '$out', expected 'user 64 MiB'"; exit 1; }
echo "ok: emmcsim::transport found with its component, linked and run ($out)"
