// EmmcBusMux — one card, several hosts: an analog switch on the eMMC bus that connects the card
// to one host at a time (as boards do to let a programmer or a second controller reach the
// eMMC). The daemon uses it to give the card to a User-Mode Linux guest's controller while the
// guest is attached and back to its own Linux-like driver afterwards (docs/linux.md).
//
// Ports
//   host[i]  EmmcBusTargetSocket (tagged with i) — bind each host's initiator here; i < kPorts.
//   card     EmmcBusInitiatorSocket — bind to the EmmcDevice's bus.
//
// The selected host's transactions pass through untouched (delay annotated by the card). Another
// host's are refused with TLM_GENERIC_ERROR_RESPONSE and change nothing: to that host the card
// is not there (EmmcBusHost throws TransactionRefused, which Sdhci turns into a timeout).
// select() is called in the kernel thread (from a process or a job). Reports (message type
// "emmcsim/EmmcBusMux"): SC_INFO for each switch, SC_WARNING once per switch for a host that
// talks to a card it is not connected to.
#pragma once

#include <array>
#include <cstddef>
#include <string>
#include <systemc>
#include <tlm>
#include <tlm_utils/simple_target_socket.h>

#include "emmcsim/models/emmc_bus.hpp"

namespace emmcsim::models {

class EmmcBusMux : public sc_core::sc_module {
 public:
  static constexpr std::size_t kPorts = 2;
  using HostSocket = tlm_utils::simple_target_socket_tagged<EmmcBusMux, 32, EmmcBusProtocol>;

  std::array<HostSocket, kPorts> host;
  EmmcBusInitiatorSocket<EmmcBusMux> card;

  explicit EmmcBusMux(sc_core::sc_module_name name);
  const char* kind() const override { return "emmcsim::models::EmmcBusMux"; }
  static constexpr const char* kMessageType = "emmcsim/EmmcBusMux";

  // Connects the card to host `port` (< kPorts) from now on.
  void select(std::size_t port);
  std::size_t selected() const { return selected_; }
  // Transactions refused since the last select(), for observers and tests.
  std::size_t refused() const { return refused_; }

 private:
  void b_transport(int port, tlm::tlm_generic_payload& payload, sc_core::sc_time& delay);

  std::size_t selected_ = 0;
  std::size_t refused_ = 0;
};

}  // namespace emmcsim::models
