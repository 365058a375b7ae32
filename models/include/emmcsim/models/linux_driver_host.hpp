// LinuxDriverHost — a host module that runs mmc::LinuxBlockDriver over its eMMC bus: from time
// zero its SC_THREAD probes the card as Linux does (EmmcBusHost, 400 kHz up to the fastest mode
// the card offers), then runs the jobs posted to it, one at a time, in arrival order, each with
// the driver. What a process's ioctls and block I/O on /dev/mmcblk0* do to a timed card.
//
// Ports
//   bus   EmmcBusInitiatorSocket — bind it to an EmmcDevice's bus.
//
// post() may be called from any thread (JobQueue); jobs run in the host's SC_THREAD, so the
// driver calls they make take simulated time, and a job may read simulated time before and after
// them. `on_probe` is called in that thread when the probe has ended: with nullptr, or with the
// probe's exception (std::runtime_error when the card does not come up), after which no job runs
// (the jobs are closed, JobQueue::close()).
// Jobs posted before the probe ends run after it. A job that throws ends the simulation with its
// exception (out of sc_start()); jobs that may fail catch what they throw.
#pragma once

#include <cstdint>
#include <exception>
#include <functional>
#include <systemc>

#include "emmcsim/mmc/linux_block_driver.hpp"
#include "emmcsim/models/emmc_bus.hpp"
#include "emmcsim/models/job_queue.hpp"

namespace emmcsim::models {

class LinuxDriverHost : public sc_core::sc_module {
 public:
  using Job = std::function<void(mmc::LinuxBlockDriver& driver)>;

  EmmcBusInitiatorSocket<LinuxDriverHost> bus;

  explicit LinuxDriverHost(sc_core::sc_module_name name, std::function<void(std::exception_ptr)> on_probe = {});
  const char* kind() const override { return "emmcsim::models::LinuxDriverHost"; }

  // Any thread.
  void post(Job job);
  // From a job: no job runs after it (JobQueue::close()); the thread waits for ever.
  void close() { jobs_.close(); }
  // The SD clock the probe left the bus at (0 until the probe has succeeded). Kernel thread, or
  // after on_probe.
  std::uint64_t clock_hz() const { return clock_hz_; }

 private:
  void run();

  std::function<void(std::exception_ptr)> on_probe_;
  JobQueue jobs_;
  mmc::LinuxBlockDriver* driver_ = nullptr;  // while run() has it
  std::uint64_t clock_hz_ = 0;
};

}  // namespace emmcsim::models
