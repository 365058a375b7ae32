// TimedBlockDevice (see timed_block_device.hpp).
#include "emmcsim/models/timed_block_device.hpp"

#include <atomic>
#include <exception>
#include <future>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

#include "emmcsim/models/kernel_thread.hpp"

namespace emmcsim::models {

struct TimedBlockDevice::World {
  World(const mmc::DeviceConfig& config, mmc::CardBackend backend, const TimingProfile& profile, const Options& options)
      : device("card", config, backend, profile),
        host("host", [this](std::exception_ptr failure) { probed(failure); }) {
    if (options.shared_bus) {
      mux.emplace("bus_switch");
      host.bus.bind(mux->host[0]);
      mux->card.bind(device.bus);
    } else {
      host.bus.bind(device.bus);
    }
    if (options.time_gate) gate.emplace("time_gate");
  }

  // In the kernel thread, when the probe has ended.
  void probed(std::exception_ptr failure) {
    if (failure) {
      sc_core::sc_stop();
      probe.set_exception(failure);
      return;
    }
    bus = device.bus_mode().describe() + " at " + std::to_string(host.clock_hz() / 1'000'000) + " MHz";
    probe.set_value();
  }

  EmmcDevice device;
  LinuxDriverHost host;
  std::optional<EmmcBusMux> mux;
  std::optional<TimeGate> gate;
  std::promise<void> probe;
  std::string bus;
  std::atomic<bool> finished{false};
  std::optional<KernelThread> kernel;
};

TimedBlockDevice::TimedBlockDevice(const mmc::DeviceConfig& config, mmc::CardBackend backend,
                                   const TimingProfile& profile, const Options& options)
    : world_(std::make_unique<World>(config, backend, profile, options)) {}

TimedBlockDevice::~TimedBlockDevice() {
  if (world_->kernel && !world_->finished) finish();
  world_->kernel.reset();  // joins
}

EmmcDevice& TimedBlockDevice::device() { return world_->device; }

EmmcBusMux* TimedBlockDevice::mux() { return world_->mux ? &*world_->mux : nullptr; }

TimeGate* TimedBlockDevice::time_gate() { return world_->gate ? &*world_->gate : nullptr; }

void TimedBlockDevice::start(std::function<void(const std::string&)> on_failure) {
  if (world_->kernel) throw std::logic_error("TimedBlockDevice::start: already started");
  std::future<void> probed = world_->probe.get_future();
  world_->kernel.emplace(std::move(on_failure));
  try {
    probed.get();
  } catch (...) {
    world_->finished = true;
    world_->kernel->join();
    throw;
  }
}

void TimedBlockDevice::post(Job job) {
  world_->host.post(std::move(job));
  if (world_->gate) world_->gate->wake();
}

void TimedBlockDevice::run(Job job) {
  // The job owns the promise: dropped unrun (after finish()), it breaks it and get() throws.
  auto done = std::make_shared<std::promise<void>>();
  std::future<void> finished = done->get_future();
  post([&job, done = std::move(done)](mmc::LinuxBlockDriver& driver) {
    try {
      job(driver);
      done->set_value();
    } catch (...) {
      done->set_exception(std::current_exception());
    }
  });
  finished.get();
}

void TimedBlockDevice::finish(Job last) {
  world_->finished = true;
  if (world_->gate) world_->gate->release();  // the last job must run, whatever the scheduler granted
  LinuxDriverHost& host = world_->host;
  host.post([&host, last = std::move(last)](mmc::LinuxBlockDriver& driver) {
    if (last) last(driver);
    host.close();
    sc_core::sc_stop();
  });
  if (world_->gate) world_->gate->wake();
}

std::string TimedBlockDevice::bus_description() const { return world_->bus; }

}  // namespace emmcsim::models
