// TimedBlockDevice — a timed eMMC card as Linux's block layer sees it, in a SystemC world of its
// own, on a thread of its own: an EmmcDevice ("card", bus and NAND timing from a TimingProfile),
// a LinuxDriverHost ("host") whose mmc::LinuxBlockDriver probes it, and the kernel on a
// KernelThread. Any thread posts jobs; each runs with the driver in the kernel thread, one at a
// time, in arrival order. This is what `emmcsim serve --timing approximate` serves its bridge and
// virtio-rpmb requests with, and what tests and benchmarks use to run the driver on the timed
// model from ordinary code:
//
//   models::TimedBlockDevice timed(config, image.backend(), models::default_timing_profile());
//   timed.start();                                  // probe: "HS400 8-bit DDR at 200 MHz"
//   timed.run([&](mmc::LinuxBlockDriver& driver) { reply = driver.read(request); });
//
// With Options::time_gate simulated time can be held by an outside scheduler (TimeGate): the
// daemon's time-travel calendar makes it a User-Mode Linux guest's clock.
//
// With Options::shared_bus the card sits behind an EmmcBusMux: the driver's host on port 0, and
// port 1 free for a platform's own host (the daemon binds the Gl9763e its User-Mode Linux guest
// drives there; a job selects the port, docs/linux.md).
//
// Simulated time advances with bus activity only: wall-clock time between jobs is not simulated,
// so a request's simulated duration is the same however fast jobs are posted. One per process
// (SystemC elaborates once).
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "emmcsim/mmc/device_config.hpp"
#include "emmcsim/mmc/image.hpp"
#include "emmcsim/models/emmc_bus_mux.hpp"
#include "emmcsim/models/emmc_device.hpp"
#include "emmcsim/models/linux_driver_host.hpp"
#include "emmcsim/models/time_gate.hpp"
#include "emmcsim/models/timing_profile.hpp"

namespace emmcsim::models {

class TimedBlockDevice {
 public:
  using Job = LinuxDriverHost::Job;

  struct Options {
    // An EmmcBusMux between the driver's host (port 0, selected) and the card; port 1 is the
    // platform's to bind before start().
    bool shared_bus = false;
    // A TimeGate ("time_gate") an outside scheduler (the daemon's time-travel calendar) can hold
    // simulated time with; it runs freely until held. post() wakes it.
    bool time_gate = false;
  };

  // Elaborates the device and the host, bound together. The backend must outlive this and match
  // the configuration. Throws TimingProfileError for a profile the configuration's EXT_CSD does
  // not allow.
  TimedBlockDevice(const mmc::DeviceConfig& config, mmc::CardBackend backend, const TimingProfile& profile)
      : TimedBlockDevice(config, backend, profile, Options{}) {}
  TimedBlockDevice(const mmc::DeviceConfig& config, mmc::CardBackend backend, const TimingProfile& profile,
                   const Options& options);
  // Stops the kernel after the jobs posted so far (unless finish() did) and joins its thread.
  ~TimedBlockDevice();
  TimedBlockDevice(const TimedBlockDevice&) = delete;
  TimedBlockDevice& operator=(const TimedBlockDevice&) = delete;

  // The device. Before start(): to observe its bus phases (on_phase) or plan faults. After
  // start(), touch it only from jobs (the kernel thread owns it).
  EmmcDevice& device();
  // The bus switch (Options::shared_bus), or nullptr. Same rules as device().
  EmmcBusMux* mux();
  // The time gate (Options::time_gate), or nullptr. grant()/wake()/release() from any thread.
  TimeGate* time_gate();

  // Starts the kernel thread and waits for the driver's probe. Throws what the probe threw
  // (std::runtime_error when the card does not come up; the kernel has stopped then).
  // `on_failure` hears about an exception that ends the kernel (a job's).
  void start(std::function<void(const std::string&)> on_failure = {});

  // After start(), any thread: `job` runs in the kernel thread after the jobs posted before it.
  void post(Job job);
  // After start(), any thread but the kernel's: posts `job` and waits until it has run;
  // rethrows what it threw (std::future_error when it was dropped unrun after finish()).
  void run(Job job);
  // After start(), any thread: `last` (if any) is the last job; the kernel stops after it, and
  // jobs posted later are dropped unrun.
  void finish(Job last = {});

  // The bus mode and clock the probe left the card in ("HS400 8-bit DDR at 200 MHz").
  std::string bus_description() const;

 private:
  struct World;
  std::unique_ptr<World> world_;
};

}  // namespace emmcsim::models
