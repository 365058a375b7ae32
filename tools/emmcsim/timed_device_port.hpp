// TimedDevicePort — the daemon's device with time (`emmcsim serve --timing approximate`): the
// servers' requests run on a models::TimedBlockDevice, a SystemC world of its own where the same
// mmc::LinuxBlockDriver the untimed port runs drives the timed eMMC model, on a kernel thread of
// its own.
//
// submit() posts the request as a job into the kernel thread; the driver runs requests one at a
// time, in arrival order, and completes each with its simulated duration
// (bridge::ReplyStatus::kTimed, simulated_ps). Completions are called on the kernel thread; the
// servers post them back to their own strands. Device state is touched only by the kernel thread.
//
// With a PCI controller (`--uml-pci-socket`) the card sits behind a bus switch shared with a
// PciControllerFront; while a User-Mode Linux guest has the card, every request gets EBUSY.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <ostream>
#include <string>

#include "emmcsim/mmc/device_config.hpp"
#include "emmcsim/mmc/image.hpp"
#include "emmcsim/models/bus_trace.hpp"
#include "emmcsim/models/fault_plan.hpp"
#include "emmcsim/models/timed_block_device.hpp"
#include "emmcsim/models/timing_profile.hpp"
#include "emmcsim/transport/device_port.hpp"
#include "pci_controller_front.hpp"

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
                  std::function<void(const std::string&)> on_failure = {}, TimedBusTrace trace = {},
                  std::shared_ptr<spdlog::logger> pci_controller_log = nullptr, bool time_gate = false);
  // Stops the kernel (after a shutdown(), or after the requests already submitted) and joins its
  // thread; then finishes the bus trace.
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

  // The PCI function for the guest (built when a pci_controller_log was given), or nullptr.
  PciControllerFront* pci_controller() { return pci_controller_.get(); }
  // The time gate a time-travel calendar holds simulated time with (built when asked), or nullptr.
  models::TimeGate* time_gate() { return timed_->time_gate(); }

 private:
  std::function<void(const std::string&)> on_failure_;
  TimedBusTrace trace_file_;
  std::optional<models::BusTraceWriter> trace_;         // written by the kernel thread; outlives timed_
  std::unique_ptr<PciControllerFront> pci_controller_;  // destroyed after timed_ has stopped the kernel
  std::optional<models::TimedBlockDevice> timed_;
};

}  // namespace emmcsim::tools
