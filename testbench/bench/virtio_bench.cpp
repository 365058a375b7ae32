// virtio-rpmb over vhost-user in one process, judged as ratios to bounds measured in the same run.
//
// Set-up (as `emmcsim serve --vhost-user-socket` runs it): one mmc::Card on an mmc::MemoryImage
// (default configuration: 4 MiB RPMB, 32-frame writes), a StrandDevicePort, and on it both a
// VhostUserBackend and a BridgeServer, the io_context run by 2 threads (the daemon's default
// --threads), sockets in a fresh temporary directory. The key is programmed once at set-up.
//
// What is measured (UseRealTime; items = round trips; each iteration is timed with steady_clock
// and p50_us / p99_us are the median and 99th percentile of those latencies):
//   BM_EventfdPingPong   the bound: the notifications one virtqueue request needs and nothing
//          else — the benchmark thread writes a "kick" eventfd, a responder thread blocked in
//          read() on it writes a "call" eventfd, the benchmark thread waits for it with poll().
//   BM_VirtioReadCounter   rpmb::Host::read_counter through VhostUserFrontend and
//          VirtioRpmbChannel: one chain (1 readable frame, 1 writable), kick, the back-end's
//          strand, the device port's strand, the card, the used ring, call.
//   BM_VirtioWrite1   rpmb::Host::write_with_counter of 1 half-sector: one chain (the signed
//          frame and a result read readable, 1 writable). The host signs and verifies.
//   BM_VirtioWrite32   the same with 32 half-sectors (8 KiB, one chain of 33 frames).
//   BM_BridgeReadCounter   the same counter read through the MMC-ioctl bridge (BridgeClient,
//          BridgeRpmbChannel) on the same card: how virtio compares with the ioctl path.
//   ratio_to_pingpong, ratio_to_bridge   rate / the bound's latest rate in this run.
//
// Each benchmark runs 3 repetitions and reports the aggregates (read the medians). Exit status 0
// whatever the figures: a measurement, not a test.

#include <benchmark/benchmark.h>
#include <fmt/core.h>
#include <poll.h>
#include <spdlog/logger.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "emmcsim/mmc/card.hpp"
#include "emmcsim/mmc/device_config.hpp"
#include "emmcsim/mmc/host_bus.hpp"
#include "emmcsim/mmc/image.hpp"
#include "emmcsim/rpmb/host.hpp"
#include "emmcsim/transport/bridge_client.hpp"
#include "emmcsim/transport/bridge_rpmb_channel.hpp"
#include "emmcsim/transport/bridge_server.hpp"
#include "emmcsim/transport/device_port.hpp"
#include "emmcsim/transport/vhost_user_backend.hpp"
#include "emmcsim/transport/vhost_user_frontend.hpp"
#include "emmcsim/transport/virtio_rpmb_device.hpp"
#include "in_process_daemon.hpp"
#include "scratch_directory.hpp"

namespace {

namespace asio = boost::asio;
namespace mmc = emmcsim::mmc;
namespace rpmb = emmcsim::rpmb;
namespace transport = emmcsim::transport;

rpmb::Key bench_key() {
  rpmb::Key key{};
  for (std::size_t i = 0; i < key.size(); ++i) key[i] = static_cast<std::uint8_t>(0xC3 ^ (i * 5));
  return key;
}

// The daemon's stack over one memory card, both fronts on one port (InProcessDaemon), its sockets
// in a scratch directory; it logs warnings only, as the daemon does by default, and prints them.
class Daemon {
 public:
  Daemon() : daemon_(mmc::default_device_config(), "virtio-bench") {
    daemon_.log().set_level(spdlog::level::warn);
    daemon_.add_vhost_user(vhost_socket()).start();
    daemon_.add_bridge(mmc_socket()).start();
    daemon_.start_threads(2);
  }
  ~Daemon() {
    daemon_.shutdown();
    if (daemon_.warnings() > 0) fmt::print(stderr, "{}", daemon_.log_text());
  }
  std::string vhost_socket() const { return directory_.file("vhost.sock"); }
  std::string mmc_socket() const { return directory_.file("mmc.sock"); }

 private:
  emmcsim::testing::ScratchDirectory directory_{"emmcsim-virtio-bench"};  // outlives the daemon
  emmcsim::testing::InProcessDaemon daemon_;
};

Daemon& daemon_instance() {
  static Daemon daemon;
  static const bool keyed = [] {
    transport::VhostUserFrontend vm(daemon.vhost_socket());
    vm.start();
    transport::VirtioRpmbChannel channel(vm);
    rpmb::Host host(channel, bench_key());
    return host.program_key(bench_key()).ok();
  }();
  if (!keyed) throw std::runtime_error("key programming failed");
  return daemon;
}

double g_pingpong_rate = 0;
double g_bridge_rate = 0;

// Latencies of the iterations, into p50_us / p99_us.
class Latencies {
 public:
  void add(std::chrono::steady_clock::duration d) {
    samples_.push_back(std::chrono::duration<double, std::micro>(d).count());
  }
  void report(benchmark::State& state) {
    if (samples_.empty()) return;
    std::sort(samples_.begin(), samples_.end());
    state.counters["p50_us"] = samples_[samples_.size() / 2];
    state.counters["p99_us"] = samples_[std::min(samples_.size() - 1, samples_.size() * 99 / 100)];
  }

 private:
  std::vector<double> samples_;
};

double rate_of(const benchmark::State& state, std::chrono::steady_clock::duration total) {
  const double seconds = std::chrono::duration<double>(total).count();
  return seconds > 0 ? static_cast<double>(state.iterations()) / seconds : 0;
}

void report(benchmark::State& state, Latencies& latencies, std::chrono::steady_clock::duration total,
            bool against_bridge = true) {
  latencies.report(state);
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
  const double rate = rate_of(state, total);
  if (g_pingpong_rate > 0) state.counters["ratio_to_pingpong"] = rate / g_pingpong_rate;
  if (against_bridge && g_bridge_rate > 0) state.counters["ratio_to_bridge"] = rate / g_bridge_rate;
}

// The benchmark loop of counter reads through `host`; returns its wall-clock time.
std::chrono::steady_clock::duration read_counters(benchmark::State& state, rpmb::Host& host, Latencies& latencies) {
  const auto start = std::chrono::steady_clock::now();
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    if (!host.read_counter().ok()) state.SkipWithError("counter read failed");
    latencies.add(std::chrono::steady_clock::now() - t0);
  }
  return std::chrono::steady_clock::now() - start;
}

void BM_EventfdPingPong(benchmark::State& state) {
  const int kick = ::eventfd(0, EFD_CLOEXEC);
  const int call = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  std::atomic<bool> done{false};
  std::thread responder([&] {
    std::uint64_t value;
    while (::read(kick, &value, sizeof value) == sizeof value && !done.load()) {
      const std::uint64_t one = 1;
      if (::write(call, &one, sizeof one) != sizeof one) break;
    }
  });
  Latencies latencies;
  const auto start = std::chrono::steady_clock::now();
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    const std::uint64_t one = 1;
    if (::write(kick, &one, sizeof one) != sizeof one) state.SkipWithError("kick");
    pollfd p{call, POLLIN, 0};
    ::poll(&p, 1, 10000);
    std::uint64_t value;
    if (::read(call, &value, sizeof value) != sizeof value) state.SkipWithError("call");
    latencies.add(std::chrono::steady_clock::now() - t0);
  }
  const auto total = std::chrono::steady_clock::now() - start;
  done = true;
  const std::uint64_t one = 1;
  if (::write(kick, &one, sizeof one) != sizeof one) std::abort();
  responder.join();
  ::close(kick);
  ::close(call);
  latencies.report(state);
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
  g_pingpong_rate = rate_of(state, total);
}

void BM_BridgeReadCounter(benchmark::State& state) {
  transport::bridge::BridgeClient client(daemon_instance().mmc_socket());
  transport::BridgeRpmbChannel channel(client);
  rpmb::Host host(channel, bench_key());
  Latencies latencies;
  const auto total = read_counters(state, host, latencies);
  report(state, latencies, total, false);
  g_bridge_rate = rate_of(state, total);
}

void BM_VirtioReadCounter(benchmark::State& state) {
  transport::VhostUserFrontend vm(daemon_instance().vhost_socket());
  vm.start();
  transport::VirtioRpmbChannel channel(vm);
  rpmb::Host host(channel, bench_key());
  Latencies latencies;
  report(state, latencies, read_counters(state, host, latencies));
}

void virtio_write(benchmark::State& state, std::size_t half_sectors) {
  transport::VhostUserFrontend vm(daemon_instance().vhost_socket());
  vm.start();
  transport::VirtioRpmbChannel channel(vm);
  rpmb::Host host(channel, bench_key());
  const rpmb::HostResult counter = host.read_counter();
  std::uint32_t next = counter.write_counter;
  std::vector<std::uint8_t> data(half_sectors * rpmb::kHalfSectorSize, 0x5A);
  Latencies latencies;
  const auto start = std::chrono::steady_clock::now();
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    const rpmb::HostResult r = host.write_with_counter(0, data.data(), half_sectors, next);
    if (!r.ok()) state.SkipWithError("write failed");
    next = r.write_counter;
    latencies.add(std::chrono::steady_clock::now() - t0);
  }
  report(state, latencies, std::chrono::steady_clock::now() - start);
}
void BM_VirtioWrite1(benchmark::State& state) { virtio_write(state, 1); }
void BM_VirtioWrite32(benchmark::State& state) { virtio_write(state, 32); }

BENCHMARK(BM_EventfdPingPong)->UseRealTime()->Repetitions(3)->ReportAggregatesOnly(true);
BENCHMARK(BM_BridgeReadCounter)->UseRealTime()->Repetitions(3)->ReportAggregatesOnly(true);
BENCHMARK(BM_VirtioReadCounter)->UseRealTime()->Repetitions(3)->ReportAggregatesOnly(true);
BENCHMARK(BM_VirtioWrite1)->UseRealTime()->Repetitions(3)->ReportAggregatesOnly(true);
BENCHMARK(BM_VirtioWrite32)->UseRealTime()->Repetitions(3)->ReportAggregatesOnly(true);

}  // namespace

BENCHMARK_MAIN();
