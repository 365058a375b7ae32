// TimedDevicePort (see timed_device_port.hpp).
#include "timed_device_port.hpp"

#include <cerrno>
#include <exception>
#include <utility>

#include "emmcsim/mmc/linux_block_driver.hpp"

namespace emmcsim::tools {

namespace bridge = transport::bridge;

TimedDevicePort::TimedDevicePort(const mmc::DeviceConfig& config, mmc::CardBackend backend,
                                 const models::TimingProfile& profile,
                                 std::function<void(const std::string&)> on_failure, TimedBusTrace trace,
                                 std::shared_ptr<spdlog::logger> pci_controller_log, bool time_gate)
    : on_failure_(std::move(on_failure)), trace_file_(std::move(trace)) {
  models::TimedBlockDevice::Options options;
  options.shared_bus = pci_controller_log != nullptr;
  options.time_gate = time_gate;
  timed_.emplace(config, backend, profile, options);
  if (pci_controller_log)
    pci_controller_ = std::make_unique<PciControllerFront>(*timed_, std::move(pci_controller_log));
  if (trace_file_.out) {
    trace_.emplace(*trace_file_.out, trace_file_.format);
    models::BusTraceWriter& writer = *trace_;
    timed_->device().on_phase([&writer](const models::BusPhase& phase) { writer.write(phase); });
  }
  timed_->start(on_failure_);
}

TimedDevicePort::~TimedDevicePort() {
  timed_.reset();  // the kernel stops after the requests submitted so far
  if (trace_) trace_->finish();
}

void TimedDevicePort::submit(bridge::Request request, Completion done) {
  timed_->post([this, request = std::move(request), done = std::move(done)](mmc::LinuxBlockDriver& driver) {
    bridge::Reply reply;
    if (pci_controller_ && pci_controller_->guest_attached()) {
      reply = bridge::ErrorReply{bridge::ReplyStatus{EBUSY, 0, 0},
                                 "the card is attached to a User-Mode Linux guest (--uml-pci-socket) until it goes"};
      done(std::move(reply));
      return;
    }
    try {
      reply = driver.handle(request);
    } catch (const std::exception& e) {
      if (on_failure_) on_failure_(e.what());
      reply = bridge::ErrorReply{bridge::ReplyStatus{EIO, 0, 0}, std::string("device failure: ") + e.what()};
    }
    if (trace_) trace_file_.out->flush();  // a kill -9 loses at most the request in flight
    done(std::move(reply));
  });
}

void TimedDevicePort::shutdown(std::function<void(int)> done) {
  timed_->finish([this, done = std::move(done)](mmc::LinuxBlockDriver& driver) {
    int error = EIO;
    if (pci_controller_ && pci_controller_->guest_attached()) {
      done(0);  // the guest's Linux owns the card (and its cache) until it goes
      return;
    }
    try {
      error = driver.shutdown();
    } catch (const std::exception& e) {
      if (on_failure_) on_failure_(e.what());
    }
    done(error);
  });
}

void TimedDevicePort::set_fault_plan(models::FaultPlan plan) {
  models::TimedBlockDevice& timed = *timed_;
  timed.post([&timed, plan = std::move(plan)](mmc::LinuxBlockDriver&) { timed.device().set_fault_plan(plan); });
}

std::string TimedDevicePort::bus_description() const { return timed_->bus_description(); }

}  // namespace emmcsim::tools
