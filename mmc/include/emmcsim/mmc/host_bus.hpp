// HostBus: the eMMC bus as a host driver sees it — commands, data blocks, DAT0 busy, the card's
// power and the SD clock — without knowing what answers. Host code is written once against it
// (identify_and_select and RpmbBusChannel in host_sequences.hpp, LinuxBlockDriver) and runs over
// either implementation:
//
//   CardHostBus          (here) the untimed mmc::Card: it answers at once and busy ends at once;
//                        simulated_time_ps() is nullopt.
//   models::EmmcBusHost  the timed eMMC bus of the SystemC models, from an SC_THREAD: each call is
//                        one bus transaction and advances simulated time by what the device says
//                        it took.
//
// Errors are the card's (status bits, no response, a refused block), never exceptions; an
// implementation throws only for what no card could cause (EmmcBusHost: a transaction the device
// refuses as malformed).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

#include "emmcsim/mmc/card.hpp"
#include "emmcsim/mmc/command.hpp"

namespace emmcsim::mmc {

class HostBus {
 public:
  virtual ~HostBus() = default;
  // One command and the card's response; the data phase it opened, if any.
  virtual CommandOutcome execute(const Command& command) = 0;
  // `count` blocks of `block_size` bytes of the open data phase, into or out of one buffer; the
  // same as `count` single blocks (stops at the first that fails; BlockOutcome::blocks says how
  // many moved).
  virtual BlockOutcome read_blocks(std::uint8_t* out, std::size_t block_size, std::uint32_t count) = 0;
  virtual BlockOutcome write_blocks(const std::uint8_t* in, std::size_t block_size, std::uint32_t count) = 0;
  // The card holds DAT0 busy (R1b, end of a write): returns when it has let go; at once when it
  // is not busy.
  virtual void wait_while_busy() = 0;
  // Removes and restores the card's power (the host's hardware reset): volatile state is lost.
  virtual void power_cycle() = 0;
  // The SD clock the host drives from now on (mmc_set_clock()); an untimed bus ignores it.
  virtual void set_clock(std::uint64_t hz) = 0;
  // The host's simulated time in picoseconds (only differences mean anything: a request's
  // duration is the difference before and after it); nullopt on an untimed bus.
  virtual std::optional<std::uint64_t> simulated_time_ps() const = 0;
};

// The untimed bus: mmc::Card answers at once and busy ends immediately.
class CardHostBus final : public HostBus {
 public:
  // `card` must outlive the bus.
  explicit CardHostBus(Card& card) : card_(card) {}
  CommandOutcome execute(const Command& command) override { return card_.execute(command); }
  BlockOutcome read_blocks(std::uint8_t* out, std::size_t block_size, std::uint32_t count) override {
    return card_.read_blocks(out, block_size, count);
  }
  BlockOutcome write_blocks(const std::uint8_t* in, std::size_t block_size, std::uint32_t count) override {
    return card_.write_blocks(in, block_size, count);
  }
  void wait_while_busy() override {
    if (card_.busy()) card_.finish_busy();
  }
  void power_cycle() override { card_.power_cycle(); }
  void set_clock(std::uint64_t /*hz*/) override {}
  std::optional<std::uint64_t> simulated_time_ps() const override { return std::nullopt; }

 private:
  Card& card_;
};

}  // namespace emmcsim::mmc
