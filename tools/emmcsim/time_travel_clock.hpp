// TimeTravelClock — what `emmcsim serve --time-travel-socket` schedules a User-Mode Linux
// guest's clock against (docs/linux.md "Deterministic runs"): the timed models' TimeGate and the
// PCI controller the guest drives, as a transport::TimeTravelSimulation.
//
//   TimeTravelCalendar ── hold() ───────▶ the card goes to the guest's controller (the daemon's
//        ▲                                driver flushes and lets go first, in free-running time),
//        │                                then the gate holds: the guest starts at that instant
//        ├── advance_to(t) ─────────────▶ TimeGate::grant(t)
//        ├── release() ─────────────────▶ TimeGate::release(); the card back to the daemon's
//        │                                driver unless a guest still has the PCI front
//        ◀── rested(t)  (gate, kernel thread)   interrupt_raised()  (the controller's line)
//        ◀── notified(queue)  (the PCI front's vhost-user back-end: a call to the guest)
#pragma once

#include "emmcsim/models/time_gate.hpp"
#include "emmcsim/transport/time_travel_calendar.hpp"
#include "emmcsim/transport/vhost_user_backend.hpp"
#include "pci_controller_front.hpp"

namespace emmcsim::tools {

class TimeTravelClock final : public transport::TimeTravelSimulation {
 public:
  TimeTravelClock(models::TimeGate& gate, PciControllerFront& front) : gate_(gate), front_(front) {}

  // Before the calendar starts: the gate's rests, the controller's interrupts and the back-end's
  // notifications go to `calendar` (which must outlive the kernel thread and the back-end).
  void connect(transport::TimeTravelCalendar& calendar, transport::VhostUserBackend& pci_backend);

  void hold() override;
  void advance_to(std::uint64_t until_ns) override { gate_.grant(until_ns); }
  void release() override;

 private:
  models::TimeGate& gate_;
  PciControllerFront& front_;
};

}  // namespace emmcsim::tools
