// How fast the timed models simulate, as ratios to a bound measured in the same run (DESIGN.md,
// "How it is tested"), never as absolute times.
//
// One SystemC elaboration holds two platforms, each with its own EmmcDevice on a RAM image:
//   bare   an SC_THREAD drives the device's eMMC bus directly with EmmcBusHost;
//   sdhci  an SC_THREAD programs an Sdhci (registers on a TLM socket, an interrupt line, system
//          memory on its DMA socket) with the testbench's SdhciDriver, the register sequences of
//          Linux's sdhci.c, in front of the other device.
// Both bring their card up to high speed, 8-bit, 50 MHz. Each benchmark iteration sets a job
// for one thread, notifies it and runs sc_start() until the kernel is idle again.
//
// What is measured (wall-clock time per 64 KiB read of sectors 0..127: CMD23 + CMD18 + 128 blocks)
//   bound  BM_BareBus_BlockByBlock: 128 read_data transactions of one block, the transactions
//          Sdhci makes;
//          BM_BareBus_OneBurst: one read_data transaction of 128 blocks (informational: how
//          much a block-by-block controller costs over a burst).
//   Sdhci  BM_Sdhci_Adma2: ADMA2 with Auto CMD23, one descriptor;
//          BM_Sdhci_Pio: the buffer data port, 128 words a block, one interrupt per block.
// Ratios: bound time / this path's time (1.0 would be no overhead). Also printed: the simulated
// time of one read (the same on the block-by-block paths: the controller adds no time) and how
// many times faster than real time each path simulates (simulated time / wall-clock time). The exit status is 0
// whatever the ratios are: this is a measurement, not a test.
#include <benchmark/benchmark.h>
#include <fmt/core.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <set>
#include <stdexcept>
#include <memory>
#include <string>
#include <systemc>
#include <tlm>
#include <tlm_utils/simple_initiator_socket.h>
#include <vector>

#include "emmcsim/mmc/image.hpp"
#include "emmcsim/models/emmc_bus_host.hpp"
#include "emmcsim/models/emmc_device.hpp"
#include "emmcsim/models/sdhci.hpp"
#include "sdhci_driver.hpp"
#include "system_memory.hpp"

extern "C" int sc_main(int, char**) { return 0; }

namespace {

namespace models = emmcsim::models;
namespace mmc = emmcsim::mmc;
using emmcsim::testing::SdhciDriver;

constexpr std::uint32_t kBlocks = 128;
constexpr std::uint32_t kBytes = kBlocks * 512;
constexpr std::uint32_t kData = 0x10000;
constexpr std::uint32_t kRca = 1u << 16;

mmc::DeviceConfig bench_config() {
  mmc::DeviceConfig c = mmc::default_device_config();
  c.user_capacity = 64ULL << 20;
  return c;
}

// A thread that runs one job each time it is woken.
class Worker : public sc_core::sc_module {
 public:
  explicit Worker(sc_core::sc_module_name name) : sc_module(name) {
    SC_HAS_PROCESS(Worker);
    SC_THREAD(loop);
  }
  // Runs `job` in the thread and the simulation until it is done; returns its simulated time.
  std::uint64_t run(std::function<void()> job) {
    job_ = std::move(job);
    const std::uint64_t start = sc_core::sc_time_stamp().value();
    wake_.notify(sc_core::SC_ZERO_TIME);
    sc_core::sc_start();
    return sc_core::sc_time_stamp().value() - start;
  }

 private:
  void loop() {
    for (;;) {
      wait(wake_);
      if (job_) job_();
      job_ = nullptr;
    }
  }
  sc_core::sc_event wake_;
  std::function<void()> job_;
};

// The bare platform: its worker owns an EmmcBusHost on the device's socket.
class BareHost : public Worker {
 public:
  models::EmmcBusInitiatorSocket<BareHost> bus;
  explicit BareHost(sc_core::sc_module_name name) : Worker(name), bus("bus") {}
  models::EmmcBusHost& host() {
    if (!host_) host_ = std::make_unique<models::EmmcBusHost>(bus, 400'000);
    return *host_;
  }

 private:
  std::unique_ptr<models::EmmcBusHost> host_;
};

// The Sdhci platform's CPU: its worker runs SdhciDriver's sequences on the registers.
class Cpu : public Worker {
 public:
  tlm_utils::simple_initiator_socket<Cpu> bus;
  sc_core::sc_in<bool> irq;
  explicit Cpu(sc_core::sc_module_name name) : Worker(name), bus("bus"), irq("irq") {}
};

struct World {
  World()
      : config(bench_config()),
        bare_image(config),
        bare_card("bare_card", config, bare_image.backend()),
        bare("bare"),
        image(config),
        card("card", config, image.backend()),
        sdhci("sdhci"),
        memory("memory", 1u << 20),
        cpu("cpu"),
        irq("irq"),
        driver(cpu.bus, cpu.irq, memory) {
    bare.bus.bind(bare_card.bus);
    cpu.bus.bind(sdhci.regs);
    sdhci.dma.bind(memory.socket);
    sdhci.card.bind(card.bus);
    sdhci.irq(irq);
    cpu.irq(irq);
    driver.on_unexpected = [](const std::string& what) { throw std::runtime_error("SdhciDriver: " + what); };
    sc_core::sc_start(sc_core::SC_ZERO_TIME);  // every thread waits for its first job
    bare.run([this] { bring_up_bare(); });
    cpu.run([this] { bring_up_sdhci(); });
  }

  void bring_up_bare() {
    models::EmmcBusHost& h = bare.host();
    h.execute({0, 0});
    while (!(h.execute({1, 0x40FF8080}).response.value & (1u << 31))) {
    }
    h.execute({2, 0});
    h.execute({3, kRca});
    h.execute({7, kRca});
    h.set_clock(25'000'000);
    h.execute({6, SdhciDriver::switch_argument(183, 2)});
    h.wait_while_busy();
    h.execute({6, SdhciDriver::switch_argument(185, 1)});
    h.wait_while_busy();
    h.set_clock(50'000'000);
  }
  // init, identification, 8-bit high speed at 50 MHz, as the bare platform.
  void bring_up_sdhci() {
    driver.init();
    driver.bring_up_high_speed();
  }

  void read_bare(bool one_burst) {
    models::EmmcBusHost& h = bare.host();
    h.execute({23, kBlocks});
    const mmc::CommandOutcome o = h.execute({18, 0});
    if (o.data.direction != mmc::DataDirection::to_host)
      throw std::runtime_error(fmt::format("the bare CMD18 opened no read (response {:#x}, type {})", o.response.value,
                                           int(o.response.type)));
    std::uint32_t moved = 0;
    if (one_burst) {
      moved = h.read_blocks(buffer.data(), 512, kBlocks).blocks;
    } else {
      for (std::uint32_t i = 0; i < kBlocks; ++i) moved += h.read_blocks(buffer.data() + 512 * i, 512, 1).blocks;
    }
    if (moved != kBlocks) throw std::runtime_error("the bare read moved " + std::to_string(moved) + " blocks");
  }
  void read_sdhci(bool adma) {
    emmcsim::testing::Transfer t;
    t.blocks = kBlocks;
    t.auto_cmd23 = kBlocks;
    t.mode = adma ? emmcsim::testing::DataMode::adma2 : emmcsim::testing::DataMode::pio;
    t.memory = kData;  // ADMA2: one descriptor
    t.pio = &buffer;
    if (driver.transfer(18, 0, t).error != 0) throw std::runtime_error("the Sdhci read failed");
  }

  mmc::DeviceConfig config;
  mmc::MemoryImage bare_image;
  models::EmmcDevice bare_card;
  BareHost bare;
  mmc::MemoryImage image;
  models::EmmcDevice card;
  models::Sdhci sdhci;
  emmcsim::testing::SystemMemory memory;
  Cpu cpu;
  sc_core::sc_signal<bool> irq;
  SdhciDriver driver;
  std::vector<std::uint8_t> buffer = std::vector<std::uint8_t>(kBytes);
};

World& world() {
  static World* w = new World;  // SystemC cannot tear a design down: it lives for the process
  return *w;
}

std::map<std::string, std::uint64_t>& simulated_ps() {
  static std::map<std::string, std::uint64_t> m;
  return m;
}

void run(benchmark::State& state, const std::string& name, Worker& worker, std::function<void()> job) {
  std::uint64_t simulated = 0;
  for (auto _ : state) simulated = worker.run(job);
  simulated_ps()[name] = simulated;
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * kBytes);
}

void BM_BareBus_BlockByBlock(benchmark::State& state) {
  World& w = world();
  run(state, "BM_BareBus_BlockByBlock", w.bare, [&w] { w.read_bare(false); });
}
void BM_BareBus_OneBurst(benchmark::State& state) {
  World& w = world();
  run(state, "BM_BareBus_OneBurst", w.bare, [&w] { w.read_bare(true); });
}
void BM_Sdhci_Adma2(benchmark::State& state) {
  World& w = world();
  run(state, "BM_Sdhci_Adma2", w.cpu, [&w] { w.read_sdhci(true); });
}
void BM_Sdhci_Pio(benchmark::State& state) {
  World& w = world();
  run(state, "BM_Sdhci_Pio", w.cpu, [&w] { w.read_sdhci(false); });
}
BENCHMARK(BM_BareBus_BlockByBlock)->UseRealTime();
BENCHMARK(BM_BareBus_OneBurst)->UseRealTime();
BENCHMARK(BM_Sdhci_Adma2)->UseRealTime();
BENCHMARK(BM_Sdhci_Pio)->UseRealTime();

// Shows the runs as usual and keeps each benchmark's wall-clock seconds per iteration.
class RecordingReporter final : public benchmark::BenchmarkReporter {
 public:
  explicit RecordingReporter(benchmark::BenchmarkReporter* display) : display_(display) {}
  bool ReportContext(const Context& context) override { return display_->ReportContext(context); }
  void ReportRuns(const std::vector<Run>& runs) override {
    // One run, or the median of --benchmark_repetitions.
    for (const Run& run : runs) {
      if (run.error_occurred || run.iterations <= 0) continue;
      const bool median = run.run_type == Run::RT_Aggregate && run.aggregate_name == "median";
      if (run.run_type == Run::RT_Aggregate && !median) continue;
      if (!median && medians_.count(run.run_name.function_name)) continue;
      if (median) medians_.insert(run.run_name.function_name);
      seconds_[run.run_name.function_name] = run.real_accumulated_time / static_cast<double>(run.iterations);
    }
    display_->ReportRuns(runs);
  }
  void Finalize() override { display_->Finalize(); }
  double seconds(const std::string& name) const {
    const auto it = seconds_.find(name);
    return it == seconds_.end() ? NAN : it->second;
  }

 private:
  benchmark::BenchmarkReporter* display_;
  std::map<std::string, double> seconds_;
  std::set<std::string> medians_;
};

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  RecordingReporter reporter(benchmark::CreateDefaultDisplayReporter());
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();

  const double bound = reporter.seconds("BM_BareBus_BlockByBlock");
  fmt::print("\nsummary: a 64 KiB read (CMD23 + CMD18 + 128 blocks, 8-bit high speed at 50 MHz)\n");
  fmt::print("{:<26} {:>10} {:>14} {:>15} {:>14}\n", "path", "wall us", "simulated us", "x real time", "bound / this");
  for (const char* name : {"BM_BareBus_BlockByBlock", "BM_BareBus_OneBurst", "BM_Sdhci_Adma2", "BM_Sdhci_Pio"}) {
    const double wall = reporter.seconds(name);
    const auto sim = simulated_ps().find(name);
    if (std::isnan(wall) || sim == simulated_ps().end()) {
      fmt::print("{:<26} {:>12}\n", name, "not run");
      continue;
    }
    const double simulated_s = static_cast<double>(sim->second) * 1e-12;
    fmt::print("{:<26} {:>10.1f} {:>14.1f} {:>15.2f} {:>14.2f}\n", name, wall * 1e6, simulated_s * 1e6,
               simulated_s / wall, bound / wall);
  }
  return 0;
}
