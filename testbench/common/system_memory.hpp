// Test-side pieces of a SystemC platform, shared by the system scenarios, fuzz targets and
// benchmarks that put a CPU and memory around the models:
//   SystemMemory     a byte array on a TLM-2.0 target socket at a base address (0 unless set),
//                    with an optional refused window and an access latency;
//   register_access  one generic-payload access of `width` bytes through an initiator socket.
#pragma once

#include <cstdint>
#include <cstring>
#include <systemc>
#include <tlm>
#include <tlm_utils/simple_target_socket.h>
#include <vector>

namespace emmcsim::testing {

class SystemMemory : public sc_core::sc_module {
 public:
  tlm_utils::simple_target_socket<SystemMemory> socket;
  std::vector<std::uint8_t> bytes;
  std::uint64_t base = 0;                  // the bus address of bytes[0]
  std::uint64_t refuse_from = UINT64_MAX;  // accesses reaching this address get an address error
  sc_core::sc_time latency = sc_core::SC_ZERO_TIME;
  std::uint64_t accesses = 0;

  SystemMemory(sc_core::sc_module_name name, std::size_t size) : sc_module(name), socket("socket"), bytes(size) {
    socket.register_b_transport(this, &SystemMemory::b_transport);
  }
  // The byte at bus address `address` (inside the memory).
  std::uint8_t* at(std::uint64_t address) { return bytes.data() + (address - base); }

 private:
  void b_transport(tlm::tlm_generic_payload& p, sc_core::sc_time& delay) {
    ++accesses;
    const std::uint64_t address = p.get_address();
    const unsigned n = p.get_data_length();
    const std::uint64_t a = address - base;  // wraps far out of range below the base
    if (address < base || a >= bytes.size() || n > bytes.size() - a || address + n > refuse_from) {
      p.set_response_status(tlm::TLM_ADDRESS_ERROR_RESPONSE);
      return;
    }
    if (p.is_read()) std::memcpy(p.get_data_ptr(), bytes.data() + a, n);
    if (p.is_write()) std::memcpy(bytes.data() + a, p.get_data_ptr(), n);
    delay += latency;
    p.set_response_status(tlm::TLM_OK_RESPONSE);
  }
};

// One access of `width` bytes at `offset`; returns the response status.
template <class InitiatorSocket>
tlm::tlm_response_status register_access(InitiatorSocket& socket, tlm::tlm_command command, std::uint64_t offset,
                                         std::uint8_t* data, unsigned width, std::uint8_t* byte_enables = nullptr) {
  tlm::tlm_generic_payload p;
  p.set_command(command);
  p.set_address(offset);
  p.set_data_ptr(data);
  p.set_data_length(width);
  p.set_streaming_width(width);
  p.set_byte_enable_ptr(byte_enables);
  p.set_byte_enable_length(byte_enables ? width : 0);
  p.set_response_status(tlm::TLM_INCOMPLETE_RESPONSE);
  sc_core::sc_time delay = sc_core::SC_ZERO_TIME;
  socket->b_transport(p, delay);
  return p.get_response_status();
}

}  // namespace emmcsim::testing
