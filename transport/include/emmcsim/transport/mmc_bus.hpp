// MmcBus: the eMMC bus as the servers in transport/ see it — commands, data blocks and DAT0
// busy — without knowing what answers. tools/ plugs in CardBus (the untimed mmc::Card) today; a
// timed SystemC device will plug in behind the same interface and report simulated time.
#pragma once

#include <cstdint>
#include <optional>

#include "emmcsim/mmc/card.hpp"
#include "emmcsim/mmc/command.hpp"

namespace emmcsim::transport {

class MmcBus {
 public:
  virtual ~MmcBus() = default;
  // One command and the card's response; the data phase it opened, if any.
  virtual mmc::CommandOutcome execute(const mmc::Command& command) = 0;
  // `count` blocks of `block_size` bytes of the open data phase, into or out of one buffer.
  virtual mmc::BlockOutcome read_blocks(std::uint8_t* out, std::size_t block_size, std::uint32_t count) = 0;
  virtual mmc::BlockOutcome write_blocks(const std::uint8_t* in, std::size_t block_size,
                                         std::uint32_t count) = 0;
  // The card holds DAT0 busy (R1b, end of a write): returns when it has let go.
  virtual void wait_while_busy() = 0;
  // Removes and restores the card's power (the host's hardware reset): volatile state is lost.
  virtual void power_cycle() = 0;
  // The SD clock the host drives from now on (mmc_set_clock()); an untimed bus has no use for it.
  virtual void set_clock(std::uint64_t /*hz*/) {}
  // Simulated time since the bus was created, in picoseconds; nullopt on an untimed bus.
  virtual std::optional<std::uint64_t> simulated_time_ps() const = 0;
};

// The untimed bus: mmc::Card answers at once and busy ends immediately.
class CardBus final : public MmcBus {
 public:
  explicit CardBus(mmc::Card& card) : card_(card) {}
  mmc::CommandOutcome execute(const mmc::Command& command) override { return card_.execute(command); }
  mmc::BlockOutcome read_blocks(std::uint8_t* out, std::size_t block_size, std::uint32_t count) override {
    return card_.read_blocks(out, block_size, count);
  }
  mmc::BlockOutcome write_blocks(const std::uint8_t* in, std::size_t block_size, std::uint32_t count) override {
    return card_.write_blocks(in, block_size, count);
  }
  void wait_while_busy() override {
    if (card_.busy()) card_.finish_busy();
  }
  void power_cycle() override { card_.power_cycle(); }
  std::optional<std::uint64_t> simulated_time_ps() const override { return std::nullopt; }

 private:
  mmc::Card& card_;
};

}  // namespace emmcsim::transport
