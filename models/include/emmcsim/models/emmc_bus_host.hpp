// EmmcBusHost — the host side of the eMMC bus for code running in an SC_THREAD: the timed
// mmc::HostBus. One blocking call per bus transaction (emmc_bus.hpp), each advancing simulated
// time by what the device says it took. Time is kept with a tlm_quantumkeeper: with the global
// quantum at zero (the SystemC default) every call waits for its delay, so sc_time_stamp() is
// exact after it; with a quantum the thread runs ahead and synchronizes when the quantum is used
// up. Host code written against mmc::HostBus (mmc::LinuxBlockDriver, mmc::identify_and_select,
// mmc::RpmbBusChannel) runs over it unchanged.
//
//   EmmcBusHost host(initiator_socket, 52'000'000);   // in a module with the socket bound
//   mmc::CommandOutcome o = host.execute({13, 1u << 16});
//   host.read_blocks(buffer, 512, 8);
//   host.now();                                        // local time, ahead of sc_time_stamp()
//   mmc::LinuxBlockDriver driver(host);                // probes the card at 400 kHz and up
//
// A transaction the device refuses (error response status) throws TransactionRefused: it is a
// bug in the caller, not a card error (those are status bits, as on a real bus). So does a block
// size over 32 bits, which no bus transaction can carry.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <tlm>
#include <tlm_utils/tlm_quantumkeeper.h>

#include "emmcsim/mmc/command.hpp"
#include "emmcsim/mmc/host_bus.hpp"
#include "emmcsim/models/emmc_bus.hpp"

namespace emmcsim::models {

class TransactionRefused : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class EmmcBusHost final : public mmc::HostBus {
 public:
  using Socket = tlm::tlm_initiator_socket<32, EmmcBusProtocol>;

  EmmcBusHost(Socket& socket, std::uint64_t clock_hz);

  // The SD clock for the transactions that follow (a host changes it after CMD6 HS_TIMING).
  void set_clock(std::uint64_t clock_hz) override { clock_hz_ = clock_hz; }
  std::uint64_t clock_hz() const { return clock_hz_; }

  mmc::CommandOutcome execute(const mmc::Command& command) override;
  mmc::BlockOutcome read_blocks(std::uint8_t* out, std::size_t block_size, std::uint32_t blocks) override;
  mmc::BlockOutcome write_blocks(const std::uint8_t* in, std::size_t block_size, std::uint32_t blocks) override;
  // Returns when the card has released DAT0; at once when it is not busy.
  void wait_while_busy() override;
  void power_cycle() override;
  // now() in picoseconds.
  std::optional<std::uint64_t> simulated_time_ps() const override;
  // Whether the card held DAT0 busy after the last transaction.
  bool busy() const { return busy_; }
  // Whether the last transaction's data had a CRC error (FaultPlan's data_crc).
  bool data_crc_error() const { return data_crc_error_; }

  // The host's local time: sc_time_stamp() plus what it ran ahead within the quantum.
  sc_core::sc_time now() const { return keeper_.get_current_time(); }
  // Waits out the local time offset.
  void sync() { keeper_.sync(); }

 private:
  void run(EmmcBusTransaction& transaction);

  Socket& socket_;
  std::uint64_t clock_hz_;
  tlm_utils::tlm_quantumkeeper keeper_;
  bool busy_ = false;
  bool data_crc_error_ = false;
};

}  // namespace emmcsim::models
