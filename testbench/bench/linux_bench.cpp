// Real Linux on the timed models (docs/linux.md), judged against the MMC-ioctl bridge on the
// same card in the same run. Needs the UML kernel: EMMCSIM_UML_KERNEL=$(scripts/uml-kernel);
// EMMCSIM_BIN and EMMCSIM_GUEST_INIT default to this build's.
//
// What is measured (one iteration each: a guest boot is seconds; manual time = the wall time the
// workload took):
//   BM_BridgeRead64MiB / BM_BridgeWrite64MiB   the bound: `emmcsim serve --timing approximate`
//          and a BridgeClient moving 64 MiB in 512 KiB requests, as the shim splits dd's; the
//          write ends with a cache flush (dd conv=fsync), so what is timed is data programmed.
//          sim_MBps from the replies' simulated durations; us_per_request the wall round trip.
//   BM_LinuxRead64MiB / BM_LinuxWrite64MiB   `scripts/linux` running dd of 64 MiB with O_DIRECT
//          (and conv=fsync for the write) inside the guest: the kernel's mmc block driver, sdhci-pci, virt-pci, the
//          daemon's PCI front, the Gl9763e and the card. The daemon's "guest session" line gives the simulated time and
//          the accesses; a boot without dd, measured once, is subtracted. sim_MBps: 64 MiB / the dd's simulated time;
//          sim_per_wall: that simulated time / dd's own wall time (1 = as fast as real time); us_per_access: dd's wall
//          time / its PCI accesses; us_per_request: dd's wall time per 512 KiB request (Linux's requests are that size
//          here); ratio_sim_MBps_to_bridge and ratio_request_to_bridge: against the bound's latest figures in this run.
//   BM_Determinism/{boot,rpmb_session,read_64MiB,write_64MiB}   the cost of determinism: the same
//          workload through `scripts/linux` on a fresh image, free-running and with
//          --deterministic (the daemon as the guest's time-travel calendar). sim_per_wall: the
//          guest's simulated seconds (the calendar's START to end) per wall second of the
//          deterministic run; wall_s and free_wall_s: both runs' wall time, daemon start to stop;
//          ratio_wall_to_free: the price (manual time = the deterministic run's wall time).
// Exit status 0 whatever the figures: a measurement, not a test.

#include <benchmark/benchmark.h>
#include <fmt/core.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "daemon_process.hpp"
#include "emmcsim/transport/bridge_client.hpp"
#include "emmcsim/transport/bridge_protocol.hpp"
#include "scratch_directory.hpp"

namespace {

namespace bridge = emmcsim::transport::bridge;
constexpr std::uint64_t kTotal = 64ULL << 20;
constexpr std::uint32_t kRequest = bridge::kMaxBlockTransfer;  // 512 KiB, as the shim splits larger ones

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? v : fallback;
}
const std::string kBin = env_or("EMMCSIM_BIN", EMMCSIM_BUILD_BIN "/emmcsim");
const std::string kInit = env_or("EMMCSIM_GUEST_INIT", EMMCSIM_BUILD_BIN "/emmcsim-guest-init");
const std::string kKernel = env_or("EMMCSIM_UML_KERNEL", "");

// The bound's latest figures, for the ratios.
struct Bound {
  double sim_mbps = 0;
  double us_per_request = 0;
};
Bound read_bound, write_bound;

struct Session {
  double accesses = 0, simulated_ms = 0;
};
Session boot_only;  // a boot and power-off without a workload

std::string run_captured(const std::string& command, int& status) {
  std::string out;
  FILE* p = popen(command.c_str(), "r");
  if (p == nullptr) {
    status = -1;
    return out;
  }
  std::array<char, 4096> buffer{};
  for (std::size_t n; (n = std::fread(buffer.data(), 1, buffer.size(), p)) > 0;) out.append(buffer.data(), n);
  status = pclose(p);
  return out;
}

bool parse_session(const std::string& log_file, Session& s) {
  std::ifstream in(log_file);
  std::stringstream text;
  text << in.rdbuf();
  static const std::regex line(
      R"(guest session: (\d+) accesses, \d+ interrupts, \d+ bytes of DMA, ([0-9.]+) ms simulated)");
  std::smatch m;
  const std::string t = text.str();
  if (!std::regex_search(t, m, line)) return false;
  s.accesses = std::stod(m[1]);
  s.simulated_ms = std::stod(m[2]);
  return true;
}

// scripts/linux IMAGE -- sh -c COMMAND; the daemon's session line and dd's own wall seconds.
bool run_guest(const std::string& image, const std::string& work, const std::string& command, Session& s,
               double& dd_seconds, std::string& error, bool deterministic = false) {
  const std::string log = work + "/serve.log";
  int status = 0;
  const std::string out =
      run_captured(fmt::format("EMMCSIM_BIN='{}' EMMCSIM_GUEST_INIT='{}' '{}/scripts/linux' '{}' --quiet --kernel '{}' "
                               "--serve-log '{}' {} -- sh -c '{}' 2>&1",
                               kBin, kInit, EMMCSIM_SOURCE_DIR, image, kKernel, log,
                               deterministic ? "--deterministic" : "", command),
                   status);
  if (status != 0) {
    error = "scripts/linux failed: " + out.substr(out.size() > 600 ? out.size() - 600 : 0);
    return false;
  }
  if (!parse_session(log, s)) {
    error = "no guest session line in the daemon's log";
    return false;
  }
  static const std::regex copied(R"(copied, ([0-9.e+-]+) s)");
  std::smatch m;
  dd_seconds = std::regex_search(out, m, copied) ? std::stod(m[1]) : 0;
  return true;
}

class Scratch {
 public:
  Scratch() : dir_("emmcsim-linux-bench") {}
  const std::string& path() const { return dir_.path(); }

 private:
  emmcsim::testing::ScratchDirectory dir_;
};

void bridge_64mib(benchmark::State& state, bool write, Bound& bound) {
  Scratch scratch;
  const std::string dir = scratch.path();
  emmcsim::e2e::DaemonProcess daemon(
      kBin, {"serve", "--image", dir + "/card", "--mmc-socket", dir + "/mmc.sock", "--timing", "approximate"},
      dir + "/daemon.log");
  daemon.start();
  bridge::BridgeClient client(dir + "/mmc.sock");
  const std::vector<std::uint8_t> data(kRequest, 0x5A);
  for (auto _ : state) {
    std::uint64_t simulated_ps = 0;
    const auto start = std::chrono::steady_clock::now();
    for (std::uint64_t offset = 0; offset < kTotal; offset += kRequest) {
      const bridge::ReplyStatus s =
          write ? client.write(bridge::BlockWriteRequest{bridge::Node::user, offset, data}).status
                : client.read(bridge::BlockReadRequest{bridge::Node::user, offset, kRequest}).status;
      if (s.error != 0) {
        state.SkipWithError(("a bridge request failed: " + client.last_error_message()).c_str());
        return;
      }
      simulated_ps += s.simulated_ps;
    }
    if (write) {  // dd conv=fsync: the cache flushed, so the data is programmed
      const bridge::ReplyStatus s = client.flush(bridge::FlushRequest{bridge::Node::user}).status;
      if (s.error != 0) {
        state.SkipWithError("the flush failed");
        return;
      }
      simulated_ps += s.simulated_ps;
    }
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    state.SetIterationTime(wall);
    const double simulated = static_cast<double>(simulated_ps) * 1e-12;
    bound.sim_mbps = static_cast<double>(kTotal) / simulated / 1e6;
    bound.us_per_request = wall * 1e6 / static_cast<double>(kTotal / kRequest);
    state.counters["sim_MBps"] = bound.sim_mbps;
    state.counters["us_per_request"] = bound.us_per_request;
    state.counters["sim_per_wall"] = simulated / wall;
  }
  daemon.terminate();
}

void linux_64mib(benchmark::State& state, bool write, const Bound& bound) {
  if (kKernel.empty()) {
    state.SkipWithError("EMMCSIM_UML_KERNEL is not set (EMMCSIM_UML_KERNEL=$(scripts/uml-kernel))");
    for (auto _ : state) {
    }
    return;
  }
  Scratch scratch;
  const std::string dir = scratch.path();
  const std::string image = dir + "/card";
  std::string error;
  double unused = 0;
  if (boot_only.simulated_ms == 0 && !run_guest(image, dir, "true", boot_only, unused, error)) {
    state.SkipWithError(error.c_str());
    for (auto _ : state) {
    }
    return;
  }
  const std::string dd = write ? "dd if=/dev/zero of=/dev/mmcblk0 bs=1M count=64 oflag=direct conv=fsync"
                               : "dd if=/dev/mmcblk0 of=/dev/null bs=1M count=64 iflag=direct";
  for (auto _ : state) {
    Session s;
    double dd_seconds = 0;
    if (!run_guest(image, dir, dd, s, dd_seconds, error) || dd_seconds <= 0) {
      state.SkipWithError(error.empty() ? "dd printed no time" : error.c_str());
      continue;
    }
    state.SetIterationTime(dd_seconds);
    const double simulated = (s.simulated_ms - boot_only.simulated_ms) / 1e3;
    const double accesses = s.accesses - boot_only.accesses;
    const double sim_mbps = static_cast<double>(kTotal) / simulated / 1e6;
    const double us_per_access = dd_seconds * 1e6 / accesses;
    state.counters["sim_MBps"] = sim_mbps;
    state.counters["sim_per_wall"] = simulated / dd_seconds;
    state.counters["accesses"] = accesses;
    state.counters["us_per_access"] = us_per_access;
    // Linux's mmc block driver sends 512 KiB requests here (CMD23 of 1024 blocks, the bus
    // trace shows), as many as the bridge's.
    const double us_per_request = dd_seconds * 1e6 / static_cast<double>(kTotal / kRequest);
    state.counters["us_per_request"] = us_per_request;
    if (bound.sim_mbps > 0) state.counters["ratio_sim_MBps_to_bridge"] = sim_mbps / bound.sim_mbps;
    if (bound.us_per_request > 0) state.counters["ratio_request_to_bridge"] = us_per_request / bound.us_per_request;
  }
}

// The guest's own simulated seconds in a deterministic run: the calendar's START to its end.
double guest_clock_seconds(const std::string& log_file) {
  std::ifstream in(log_file);
  std::stringstream text;
  text << in.rdbuf();
  static const std::regex started(R"(time travel: guest \d+ started at ([0-9.]+) ms simulated)");
  static const std::regex gone(R"(time travel: guest \d+ gone at ([0-9.]+) ms simulated)");
  std::smatch a, b;
  const std::string t = text.str();
  if (!std::regex_search(t, a, started) || !std::regex_search(t, b, gone)) return 0;
  return (std::stod(b[1]) - std::stod(a[1])) / 1e3;
}

void determinism(benchmark::State& state, const std::string& workload) {
  if (kKernel.empty()) {
    state.SkipWithError("EMMCSIM_UML_KERNEL is not set (EMMCSIM_UML_KERNEL=$(scripts/uml-kernel))");
    for (auto _ : state) {
    }
    return;
  }
  for (auto _ : state) {
    double wall[2] = {0, 0};
    double simulated = 0;
    for (int deterministic = 0; deterministic < 2; ++deterministic) {
      Scratch scratch;  // a fresh image each time
      Session s;
      double unused = 0;
      std::string error;
      const auto start = std::chrono::steady_clock::now();
      if (!run_guest(scratch.path() + "/card", scratch.path(), workload, s, unused, error, deterministic == 1)) {
        state.SkipWithError(error.c_str());
        return;
      }
      wall[deterministic] = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (deterministic == 1) simulated = guest_clock_seconds(scratch.path() + "/serve.log");
    }
    state.SetIterationTime(wall[1]);
    state.counters["sim_per_wall"] = simulated / wall[1];
    state.counters["sim_s"] = simulated;
    state.counters["wall_s"] = wall[1];
    state.counters["free_wall_s"] = wall[0];
    state.counters["ratio_wall_to_free"] = wall[1] / wall[0];
  }
}

const char* const kRpmbSession =
    "printf emmcsim-bench-key-0123456789abcd > /tmp/emmcsim-bench-key && "
    "mmc rpmb write-key /dev/mmcblk0rpmb /tmp/emmcsim-bench-key && "
    "head -c 256 /dev/zero | mmc rpmb write-block /dev/mmcblk0rpmb 0 - /tmp/emmcsim-bench-key && "
    "mmc rpmb read-counter /dev/mmcblk0rpmb && "
    "mmc rpmb read-block /dev/mmcblk0rpmb 0 1 /dev/null /tmp/emmcsim-bench-key";

void BM_BridgeRead64MiB(benchmark::State& state) { bridge_64mib(state, false, read_bound); }
void BM_LinuxRead64MiB(benchmark::State& state) { linux_64mib(state, false, read_bound); }
void BM_BridgeWrite64MiB(benchmark::State& state) { bridge_64mib(state, true, write_bound); }
void BM_LinuxWrite64MiB(benchmark::State& state) { linux_64mib(state, true, write_bound); }

BENCHMARK(BM_BridgeRead64MiB)->Iterations(1)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_LinuxRead64MiB)->Iterations(1)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_BridgeWrite64MiB)->Iterations(1)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_LinuxWrite64MiB)->Iterations(1)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(determinism, boot, "true")->Iterations(1)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(determinism, rpmb_session, kRpmbSession)
    ->Iterations(1)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(determinism, read_64MiB, "dd if=/dev/mmcblk0 of=/dev/null bs=1M count=64 iflag=direct")
    ->Iterations(1)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(determinism, write_64MiB, "dd if=/dev/zero of=/dev/mmcblk0 bs=1M count=64 oflag=direct conv=fsync")
    ->Iterations(1)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
