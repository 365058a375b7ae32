// EmmcBusMux (see emmc_bus_mux.hpp).
#include "emmcsim/models/emmc_bus_mux.hpp"

#include <stdexcept>

namespace emmcsim::models {

namespace {
std::array<EmmcBusMux::HostSocket, EmmcBusMux::kPorts> make_ports() {
  return {EmmcBusMux::HostSocket("host_0"), EmmcBusMux::HostSocket("host_1")};
}
}  // namespace

EmmcBusMux::EmmcBusMux(sc_core::sc_module_name name) : sc_module(name), host(make_ports()), card("card") {
  for (std::size_t i = 0; i < kPorts; ++i)
    host[i].register_b_transport(this, &EmmcBusMux::b_transport, static_cast<int>(i));
}

void EmmcBusMux::select(std::size_t port) {
  if (port >= kPorts) throw std::out_of_range("EmmcBusMux::select: no such host port");
  if (port == selected_) return;
  selected_ = port;
  refused_ = 0;
  SC_REPORT_INFO(kMessageType,
                 (std::string(name()) + ": the card is connected to host " + std::to_string(port)).c_str());
}

void EmmcBusMux::b_transport(int port, tlm::tlm_generic_payload& payload, sc_core::sc_time& delay) {
  if (static_cast<std::size_t>(port) != selected_) {
    if (refused_++ == 0)
      SC_REPORT_WARNING(kMessageType, (std::string(name()) + ": host " + std::to_string(port) +
                                       " talks to a card connected to host " + std::to_string(selected_) + ": refused")
                                          .c_str());
    payload.set_response_status(tlm::TLM_GENERIC_ERROR_RESPONSE);
    return;
  }
  card->b_transport(payload, delay);
}

}  // namespace emmcsim::models
