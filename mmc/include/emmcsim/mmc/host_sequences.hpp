// Host-side command sequences over a HostBus (the untimed card or the timed bus of the models), as
// a host driver issues them: bring-up to the transfer state, the EXT_CSD read, and the RPMB route
// Linux takes for an ioctl on the rpmb node (switch to the RPMB partition, CMD23 + CMD25 / CMD18,
// switch back). Used by the CLI, tests, benchmarks and virtual platforms; LinuxBlockDriver issues
// the kernel's fuller sequences itself.
#pragma once

#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>

#include "emmcsim/mmc/command.hpp"
#include "emmcsim/mmc/host_bus.hpp"
#include "emmcsim/mmc/registers.hpp"
#include "emmcsim/rpmb/host.hpp"

namespace emmcsim::mmc {

// The card did not answer a sequence as an eMMC must: what() names the command and the status.
class HostSequenceError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// CMD0, CMD1 (polled until the OCR reports power-up done), CMD2, CMD3 with `rca`, CMD7, then
// waits while the card is busy: leaves the card selected in tran. Throws HostSequenceError when a
// response is missing or reports an error.
void identify_and_select(HostBus& bus, std::uint16_t rca = 1);

// CMD8 SEND_EXT_CSD and its 512-byte data block, from tran. Throws HostSequenceError when the
// card refuses the command or does not send the block.
ExtCsd read_ext_csd(HostBus& bus);

// rpmb::RequestChannel over a host bus: every send/receive switches PARTITION_CONFIG to the RPMB
// partition, runs CMD23 + CMD25 (frames as 512-byte blocks) or CMD23 + CMD18, polls CMD13 until
// tran, and switches back to the user area — also when a command fails, as the kernel does. The
// switches keep the boot bits of `partition_config`, the card's PARTITION_CONFIG as the host
// knows it (EXT_CSD[179], read_ext_csd(), or LinuxBlockDriver::partition_config() when the driver
// shares the bus). The card must be selected (tran). Failures throw HostSequenceError.
class RpmbBusChannel final : public rpmb::RequestChannel {
 public:
  RpmbBusChannel(HostBus& bus, std::uint8_t partition_config, std::uint16_t rca = 1)
      : bus_(bus), partition_config_(partition_config), rca_(rca) {}
  void send(const rpmb::Frame* frames, std::size_t count, bool reliable_write) override;
  void receive(rpmb::Frame* frames, std::size_t count) override;
  // Internal work of every command so far (for timing estimates and tests).
  const WorkReport& work() const { return work_; }
  // Called with a one-line description of every command, response and data phase (--trace).
  void set_trace(std::function<void(const std::string&)> trace) { trace_ = std::move(trace); }

 private:
  void select_partition(std::uint8_t access);
  CommandOutcome command(std::uint8_t index, std::uint32_t arg);
  void wait_for_tran();

  HostBus& bus_;
  std::uint8_t partition_config_;  // as the last switch left it
  std::uint16_t rca_;
  WorkReport work_;
  std::function<void(const std::string&)> trace_;
};

// "CMD23 SET_BLOCK_COUNT arg 0x80000001 -> R1 state=tran READY_FOR_DATA": for traces and logs.
std::string describe_exchange(const Command& command, const CommandOutcome& outcome);

}  // namespace emmcsim::mmc
