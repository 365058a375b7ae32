// Host-side command sequences over an mmc::Card, as a host driver issues them: bring-up to the
// transfer state, and the RPMB route Linux takes for an ioctl on the rpmb node (switch to the
// RPMB partition, CMD23 + CMD25 / CMD18, switch back). Used by the CLI, tests and benchmarks;
// the daemon and the bus models issue their own sequences.
#pragma once

#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>

#include "emmcsim/mmc/card.hpp"
#include "emmcsim/rpmb/host.hpp"

namespace emmcsim::mmc {

// The card did not answer a sequence as an eMMC must: what() names the command and the status.
class HostSequenceError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// CMD0, CMD1 (polled until the OCR reports power-up done), CMD2, CMD3 with `rca`, CMD7:
// leaves the card selected in tran. Throws HostSequenceError when the card does not follow.
void identify_and_select(Card& card, std::uint16_t rca = 1);

// rpmb::RequestChannel over the card's bus: every send/receive switches PARTITION_CONFIG to the
// RPMB partition, runs CMD23 + CMD25 (frames as 512-byte blocks) or CMD23 + CMD18, polls CMD13
// until tran, and switches back to the user area — also when a command fails, as the kernel
// does. The card must be selected (tran). Failures throw HostSequenceError.
class RpmbBusChannel final : public rpmb::RequestChannel {
 public:
  RpmbBusChannel(Card& card, std::uint16_t rca = 1) : card_(card), rca_(rca) {}
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

  Card& card_;
  std::uint16_t rca_;
  WorkReport work_;
  std::function<void(const std::string&)> trace_;
};

// "CMD23 SET_BLOCK_COUNT arg 0x80000001 -> R1 state=tran READY_FOR_DATA": for traces and logs.
std::string describe_exchange(const Command& command, const CommandOutcome& outcome);

}  // namespace emmcsim::mmc
