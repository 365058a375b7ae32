// The eMMC bus protocol's transaction helpers (see emmc_bus.hpp).
#include "emmcsim/models/emmc_bus.hpp"

namespace emmcsim::models {

const char* bus_operation_name(EmmcBusOperation operation) {
  switch (operation) {
    case EmmcBusOperation::command: return "command";
    case EmmcBusOperation::read_data: return "read_data";
    case EmmcBusOperation::write_data: return "write_data";
    case EmmcBusOperation::wait_while_busy: return "wait_while_busy";
    case EmmcBusOperation::power_cycle: return "power_cycle";
  }
  return "unknown";
}

void EmmcBusTransaction::reset(EmmcBusOperation operation, std::uint64_t clock_hz) {
  payload_.set_command(tlm::TLM_IGNORE_COMMAND);
  payload_.set_address(0);
  payload_.set_data_ptr(nullptr);
  payload_.set_data_length(0);
  payload_.set_streaming_width(0);
  payload_.set_byte_enable_ptr(nullptr);
  payload_.set_byte_enable_length(0);
  payload_.set_dmi_allowed(false);
  payload_.set_response_status(tlm::TLM_INCOMPLETE_RESPONSE);
  extension_ = EmmcBusExtension{};
  extension_.operation = operation;
  extension_.clock_hz = clock_hz;
}

void EmmcBusTransaction::set_command(const mmc::Command& command, std::uint64_t clock_hz) {
  reset(EmmcBusOperation::command, clock_hz);
  extension_.command = command;
}

void EmmcBusTransaction::set_read(std::uint8_t* out, std::uint32_t block_size, std::uint32_t blocks,
                                  std::uint64_t clock_hz) {
  reset(EmmcBusOperation::read_data, clock_hz);
  payload_.set_command(tlm::TLM_READ_COMMAND);
  payload_.set_data_ptr(out);
  payload_.set_data_length(block_size * blocks);
  payload_.set_streaming_width(block_size);
}

void EmmcBusTransaction::set_write(const std::uint8_t* in, std::uint32_t block_size, std::uint32_t blocks,
                                   std::uint64_t clock_hz) {
  reset(EmmcBusOperation::write_data, clock_hz);
  payload_.set_command(tlm::TLM_WRITE_COMMAND);
  // The generic payload has no const data pointer; a write transaction's data is only read.
  payload_.set_data_ptr(const_cast<std::uint8_t*>(in));
  payload_.set_data_length(block_size * blocks);
  payload_.set_streaming_width(block_size);
}

void EmmcBusTransaction::set_wait_while_busy(std::uint64_t clock_hz) {
  reset(EmmcBusOperation::wait_while_busy, clock_hz);
}

void EmmcBusTransaction::set_power_cycle() { reset(EmmcBusOperation::power_cycle, 0); }

}  // namespace emmcsim::models
