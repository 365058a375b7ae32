// LinuxDriverHost (see linux_driver_host.hpp).
#include "emmcsim/models/linux_driver_host.hpp"

#include <optional>
#include <utility>

#include "emmcsim/models/emmc_bus_host.hpp"

namespace emmcsim::models {

LinuxDriverHost::LinuxDriverHost(sc_core::sc_module_name name, std::function<void(std::exception_ptr)> on_probe)
    : sc_module(name), bus("bus"), on_probe_(std::move(on_probe)), jobs_("jobs") {
  SC_HAS_PROCESS(LinuxDriverHost);
  SC_THREAD(run);
}

void LinuxDriverHost::post(Job job) {
  // driver_ is read in the kernel thread, when the job runs: jobs run only after the probe.
  jobs_.post([this, job = std::move(job)] { job(*driver_); });
}

void LinuxDriverHost::run() {
  EmmcBusHost host(bus, mmc::LinuxBlockDriver::kIdentificationClockHz);
  std::optional<mmc::LinuxBlockDriver> driver;
  try {
    driver.emplace(host);
  } catch (...) {
    jobs_.close();
    if (on_probe_) on_probe_(std::current_exception());
    return;
  }
  driver_ = &*driver;
  clock_hz_ = host.clock_hz();
  if (on_probe_) on_probe_(nullptr);
  for (;;) jobs_.next()();
}

}  // namespace emmcsim::models
