// TimedDevicePort (see timed_device_port.hpp).
#include "timed_device_port.hpp"

#include <fmt/format.h>

#include <cerrno>
#include <deque>
#include <future>
#include <mutex>
#include <optional>
#include <systemc>
#include <thread>

#include "emmcsim/mmc/linux_block_driver.hpp"
#include "emmcsim/models/emmc_bus_host.hpp"
#include "emmcsim/models/emmc_device.hpp"

namespace emmcsim::tools {
namespace {

namespace bridge = transport::bridge;
using mmc::LinuxBlockDriver;

// Work for the driver thread, handed over from other threads. Attached suspending: while it
// exists, sc_start() waits for work instead of ending when nothing else is scheduled.
class JobQueue : public sc_core::sc_prim_channel {
 public:
  using Job = std::function<void(LinuxBlockDriver&)>;

  JobQueue() : sc_prim_channel(sc_core::sc_gen_unique_name("jobs")) { async_attach_suspending(); }

  // Any thread.
  void push(Job job) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      jobs_.push_back(std::move(job));
    }
    async_request_update();
  }
  // The kernel thread.
  std::optional<Job> pop() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (jobs_.empty()) return std::nullopt;
    Job job = std::move(jobs_.front());
    jobs_.pop_front();
    return job;
  }
  const sc_core::sc_event& arrived() const { return arrived_; }

 private:
  void update() override { arrived_.notify(sc_core::SC_ZERO_TIME); }

  std::mutex mutex_;
  std::deque<Job> jobs_;
  sc_core::sc_event arrived_;
};

// The host: mmc::LinuxBlockDriver over the timed bus (EmmcBusHost is an mmc::HostBus), running the queued jobs in order.
class DriverHost : public sc_core::sc_module {
 public:
  models::EmmcBusInitiatorSocket<DriverHost> bus;

  // `probed` gets the bus mode and clock the probe selected ("HS400 8-bit DDR at 200 MHz"), or
  // the probe's exception.
  DriverHost(sc_core::sc_module_name name, JobQueue& jobs, const models::EmmcDevice& device,
             std::promise<std::string>& probed)
      : sc_module(name), bus("bus"), jobs_(jobs), device_(device), probed_(probed) {
    SC_HAS_PROCESS(DriverHost);
    SC_THREAD(run);
  }
  // Makes the driver thread end after the job it runs (the kernel then stops).
  void stop_after_this_job() { stop_ = true; }

 private:
  void run() {
    models::EmmcBusHost host(bus, LinuxBlockDriver::kIdentificationClockHz);
    std::optional<LinuxBlockDriver> driver;
    try {
      driver.emplace(host);
      probed_.set_value(fmt::format("{} at {} MHz", device_.bus_mode().describe(), host.clock_hz() / 1'000'000));
    } catch (...) {
      probed_.set_exception(std::current_exception());
      sc_core::sc_stop();
      return;
    }
    while (!stop_) {
      if (std::optional<JobQueue::Job> job = jobs_.pop()) {
        (*job)(*driver);
      } else {
        wait(jobs_.arrived());
      }
    }
    sc_core::sc_stop();
  }

  JobQueue& jobs_;
  const models::EmmcDevice& device_;
  std::promise<std::string>& probed_;
  bool stop_ = false;
};

}  // namespace

struct TimedDevicePort::World {
  World(const mmc::DeviceConfig& config, mmc::CardBackend backend, const models::TimingProfile& profile)
      : device("card", config, backend, profile), host("host", jobs, device, probed) {
    host.bus.bind(device.bus);
  }
  JobQueue jobs;
  std::promise<std::string> probed;
  models::EmmcDevice device;
  DriverHost host;
  std::thread kernel;
  std::function<void(const std::string&)> on_failure;
  std::string bus;
  TimedBusTrace trace_file;
  std::optional<models::BusTraceWriter> trace;
};

TimedDevicePort::TimedDevicePort(const mmc::DeviceConfig& config, mmc::CardBackend backend,
                                 const models::TimingProfile& profile,
                                 std::function<void(const std::string&)> on_failure, TimedBusTrace trace)
    : world_(std::make_unique<World>(config, backend, profile)) {
  world_->on_failure = std::move(on_failure);
  if (trace.out) {
    world_->trace_file = std::move(trace);
    world_->trace.emplace(*world_->trace_file.out, world_->trace_file.format);
    models::BusTraceWriter& writer = *world_->trace;
    world_->device.on_phase([&writer](const models::BusPhase& phase) { writer.write(phase); });
  }
  std::future<std::string> probed = world_->probed.get_future();
  World& w = *world_;
  w.kernel = std::thread([&w] {
    try {
      sc_core::sc_start();
    } catch (const std::exception& e) {
      if (w.on_failure) w.on_failure(std::string("SystemC kernel: ") + e.what());
    }
  });
  try {
    w.bus = probed.get();
  } catch (...) {
    w.kernel.join();
    throw;
  }
}

TimedDevicePort::~TimedDevicePort() {
  if (world_->kernel.joinable()) {
    DriverHost& host = world_->host;
    world_->jobs.push([&host](LinuxBlockDriver&) { host.stop_after_this_job(); });
    world_->kernel.join();
  }
  if (world_->trace) world_->trace->finish();
}

void TimedDevicePort::submit(bridge::Request request, Completion done) {
  World& w = *world_;
  w.jobs.push([&w, request = std::move(request), done = std::move(done)](LinuxBlockDriver& driver) {
    bridge::Reply reply;
    try {
      reply = driver.handle(request);
    } catch (const std::exception& e) {
      if (w.on_failure) w.on_failure(e.what());
      reply = bridge::ErrorReply{bridge::ReplyStatus{EIO, 0, 0}, std::string("device failure: ") + e.what()};
    }
    if (w.trace) w.trace_file.out->flush();  // a kill -9 loses at most the request in flight
    done(std::move(reply));
  });
}

void TimedDevicePort::shutdown(std::function<void(int)> done) {
  World& w = *world_;
  w.jobs.push([&w, done = std::move(done)](LinuxBlockDriver& driver) {
    int error = EIO;
    try {
      error = driver.shutdown();
    } catch (const std::exception& e) {
      if (w.on_failure) w.on_failure(e.what());
    }
    w.host.stop_after_this_job();
    done(error);
  });
}

void TimedDevicePort::set_fault_plan(models::FaultPlan plan) {
  World& w = *world_;
  w.jobs.push([&w, plan = std::move(plan)](LinuxBlockDriver&) { w.device.set_fault_plan(plan); });
}

std::string TimedDevicePort::bus_description() const { return world_->bus; }

}  // namespace emmcsim::tools
