// TimeTravelClock (see time_travel_clock.hpp).
#include "time_travel_clock.hpp"

#include "emmcsim/transport/virtio_pcidev.hpp"

namespace emmcsim::tools {

void TimeTravelClock::connect(transport::TimeTravelCalendar& calendar, transport::VhostUserBackend& pci_backend) {
  gate_.on_rest([&calendar](std::uint64_t ns) { calendar.rested(ns); });
  front_.on_interrupt_sent([&calendar] { calendar.interrupt_raised(); });
  pci_backend.on_driver_notified(
      [&calendar](std::size_t queue) { calendar.notified(queue == transport::virtio_pcidev::kInterruptQueue); });
}

void TimeTravelClock::hold() {
  models::TimeGate& gate = gate_;
  front_.take_card_for_guest([&gate] { gate.hold(); });
}

void TimeTravelClock::release() {
  gate_.release();
  front_.return_card_if_unused();
}

}  // namespace emmcsim::tools
