// The eMMC bus between a host controller and an eMMC device, in TLM-2.0 style.
//
// A protocol traits class of its own (EmmcBusProtocol), so eMMC sockets bind only to eMMC
// sockets, over tlm_generic_payload with a mandatory EmmcBusExtension — the TLM-2.0 way to carry
// a protocol that is not memory-mapped. Blocking transport with annotated delay: the target adds
// the time the bus phases take to `delay`, so loosely-timed hosts (with a quantum keeper) and
// approximately-timed ones both fit.
//
// One transaction is one of:
//   command          extension.command → extension.command_outcome (response, data phase opened,
//                    busy). Generic payload: TLM_IGNORE_COMMAND, no data.
//   read_data        blocks of the open data phase, card → host. TLM_READ_COMMAND, data_ptr with
//                    data_length = block_size × blocks, streaming_width = block_size.
//   write_data       the same, host → card. TLM_WRITE_COMMAND.
//   wait_while_busy  returns when the card releases DAT0 (the host's busy detection).
//   power_cycle      power removed and restored (the host's hardware reset).
// Each carries the SD clock the host drives (clock_hz): the device times phases from it and the
// mode its EXT_CSD selects. A transaction the device cannot take (no extension, a data length
// that is not block_size × blocks, a zero clock) is answered with an error response status and
// changes nothing.
//
// Bus-visible results are the response, the blocks moved and DAT0 busy; the extension also
// carries the card's work reports and the simulated phases, for tracing and tests.
#pragma once

#include <cstdint>
#include <systemc>
#include <tlm>
#include <tlm_utils/simple_initiator_socket.h>
#include <tlm_utils/simple_target_socket.h>

#include "emmcsim/mmc/command.hpp"

namespace emmcsim::models {

struct EmmcBusProtocol {
  using tlm_payload_type = tlm::tlm_generic_payload;
  using tlm_phase_type = tlm::tlm_phase;
};

enum class EmmcBusOperation : std::uint8_t { command, read_data, write_data, wait_while_busy, power_cycle };

const char* bus_operation_name(EmmcBusOperation operation);

class EmmcBusExtension : public tlm::tlm_extension<EmmcBusExtension> {
 public:
  // Set by the host.
  EmmcBusOperation operation = EmmcBusOperation::command;
  std::uint64_t clock_hz = 0;  // the SD clock (CMD and DAT lines)
  mmc::Command command;        // operation == command

  // Set by the device.
  mmc::CommandOutcome command_outcome;  // operation == command
  mmc::BlockOutcome data_outcome;       // read_data / write_data
  bool busy_after = false;              // the card holds DAT0 busy after this transaction
  bool data_crc_error = false;          // a block arrived with a bad CRC (an injected fault)

  tlm::tlm_extension_base* clone() const override { return new EmmcBusExtension(*this); }
  void copy_from(const tlm::tlm_extension_base& other) override { *this = static_cast<const EmmcBusExtension&>(other); }
};

// A payload with its extension, for hosts: the extension is a member, so it is taken back off the
// payload before either is destroyed (the payload would otherwise delete it).
class EmmcBusTransaction {
 public:
  EmmcBusTransaction() { payload_.set_extension(&extension_); }
  ~EmmcBusTransaction() { payload_.clear_extension(&extension_); }
  EmmcBusTransaction(const EmmcBusTransaction&) = delete;
  EmmcBusTransaction& operator=(const EmmcBusTransaction&) = delete;

  void set_command(const mmc::Command& command, std::uint64_t clock_hz);
  void set_read(std::uint8_t* out, std::uint32_t block_size, std::uint32_t blocks, std::uint64_t clock_hz);
  void set_write(const std::uint8_t* in, std::uint32_t block_size, std::uint32_t blocks, std::uint64_t clock_hz);
  void set_wait_while_busy(std::uint64_t clock_hz);
  void set_power_cycle();

  tlm::tlm_generic_payload& payload() { return payload_; }
  EmmcBusExtension& extension() { return extension_; }
  bool ok() const { return payload_.is_response_ok(); }

 private:
  void reset(EmmcBusOperation operation, std::uint64_t clock_hz);
  tlm::tlm_generic_payload payload_;
  EmmcBusExtension extension_;
};

template <class Module>
using EmmcBusInitiatorSocket = tlm_utils::simple_initiator_socket<Module, 32, EmmcBusProtocol>;
template <class Module>
using EmmcBusTargetSocket = tlm_utils::simple_target_socket<Module, 32, EmmcBusProtocol>;

}  // namespace emmcsim::models
