// EmmcBusHost (see emmc_bus_host.hpp).
#include "emmcsim/models/emmc_bus_host.hpp"

#include <limits>
#include <string>

#include "emmcsim/models/simulated_time.hpp"

namespace emmcsim::models {

EmmcBusHost::EmmcBusHost(Socket& socket, std::uint64_t clock_hz) : socket_(socket), clock_hz_(clock_hz) {
  keeper_.reset();
}

void EmmcBusHost::run(EmmcBusTransaction& t) {
  sc_core::sc_time delay = keeper_.get_local_time();
  socket_->b_transport(t.payload(), delay);
  if (!t.ok()) {
    throw TransactionRefused(std::string("eMMC bus: ") + bus_operation_name(t.extension().operation) +
                             " refused by the device (" + t.payload().get_response_string() + ")");
  }
  keeper_.set(delay);
  if (keeper_.need_sync()) keeper_.sync();  // always, with the global quantum at zero
  busy_ = t.extension().busy_after;
  data_crc_error_ = t.extension().data_crc_error;
}

namespace {

std::uint32_t transaction_block_size(std::size_t block_size) {
  if (block_size > std::numeric_limits<std::uint32_t>::max())
    throw TransactionRefused("eMMC bus: a block size of " + std::to_string(block_size) + " bytes");
  return static_cast<std::uint32_t>(block_size);
}

}  // namespace

mmc::CommandOutcome EmmcBusHost::execute(const mmc::Command& command) {
  EmmcBusTransaction t;
  t.set_command(command, clock_hz_);
  run(t);
  return t.extension().command_outcome;
}

mmc::BlockOutcome EmmcBusHost::read_blocks(std::uint8_t* out, std::size_t block_size, std::uint32_t blocks) {
  EmmcBusTransaction t;
  t.set_read(out, transaction_block_size(block_size), blocks, clock_hz_);
  run(t);
  return t.extension().data_outcome;
}

mmc::BlockOutcome EmmcBusHost::write_blocks(const std::uint8_t* in, std::size_t block_size, std::uint32_t blocks) {
  EmmcBusTransaction t;
  t.set_write(in, transaction_block_size(block_size), blocks, clock_hz_);
  run(t);
  return t.extension().data_outcome;
}

void EmmcBusHost::wait_while_busy() {
  EmmcBusTransaction t;
  t.set_wait_while_busy(clock_hz_);
  run(t);
}

void EmmcBusHost::power_cycle() {
  EmmcBusTransaction t;
  t.set_power_cycle();
  run(t);
}

std::optional<std::uint64_t> EmmcBusHost::simulated_time_ps() const { return to_ps(now()); }

}  // namespace emmcsim::models
