// TimedDevicePort — the daemon's device with time (`emmcsim serve --timing approximate`).
//
// A SystemC world of its own: models::EmmcDevice (the card with bus and NAND timing) and a host
// module whose SC_THREAD runs mmc::LinuxBlockDriver over the eMMC bus — the same driver the
// untimed port runs, over the timed mmc::HostBus (models::EmmcBusHost). sc_start() runs on a
// kernel thread the port starts.
//
// submit() queues the request and wakes the kernel with async_request_update() (the queue's
// primitive channel is attached suspending, so the kernel waits for work instead of ending);
// the driver thread runs requests one at a time, in arrival order, and completes each with its
// simulated duration (bridge::ReplyStatus::kTimed, simulated_ps). Completions are called on the
// kernel thread; the servers post them back to their own strands. Device state is touched only by
// the kernel thread.
//
// Simulated time advances with bus activity only: wall-clock time between requests is not
// simulated, so a request's duration is the same however fast clients send.
#pragma once

#include <functional>
#include <memory>
#include <ostream>
#include <string>

#include "emmcsim/mmc/device_config.hpp"
#include "emmcsim/mmc/image.hpp"
#include "emmcsim/models/bus_trace.hpp"
#include "emmcsim/models/fault_plan.hpp"
#include "emmcsim/models/timing_profile.hpp"
#include "emmcsim/transport/device_port.hpp"

namespace emmcsim::tools {

// Where the timed port writes every bus phase (`--bus-trace`); nowhere when `out` is null. The
// trace is flushed after each request and finished when the port is destroyed.
struct TimedBusTrace {
  std::unique_ptr<std::ostream> out;
  models::BusTraceFormat format = models::BusTraceFormat::json_lines;
};

class TimedDevicePort final : public transport::DevicePort {
 public:
  // Builds the SystemC world (one per process: SystemC elaborates once), starts the kernel
  // thread and waits for the driver's probe. Throws models::TimingProfileError for a profile the
  // configuration's EXT_CSD does not allow, std::runtime_error when the card does not come up.
  TimedDevicePort(const mmc::DeviceConfig& config, mmc::CardBackend backend, const models::TimingProfile& profile,
                  std::function<void(const std::string&)> on_failure = {}, TimedBusTrace trace = {});
  // Stops the kernel (after a shutdown(), or abandoning queued requests) and joins its thread.
  ~TimedDevicePort() override;
  TimedDevicePort(const TimedDevicePort&) = delete;
  TimedDevicePort& operator=(const TimedDevicePort&) = delete;

  void submit(transport::bridge::Request request, Completion done) override;
  // The driver's shutdown sequence after every request submitted before it; then the kernel stops.
  void shutdown(std::function<void(int)> done) override;

  // Faults to inject into the requests submitted after this (models::FaultPlan; occurrences
  // count from the first of them, not from the probe's commands).
  void set_fault_plan(models::FaultPlan plan);

  // The bus mode and clock the probe left the card in ("HS400 8-bit DDR at 200 MHz").
  std::string bus_description() const;

 private:
  struct World;
  std::unique_ptr<World> world_;
};

}  // namespace emmcsim::tools
