// Test support for mmc::Card: a RAM-backed card and the host-side sequences every test needs
// (identification to tran, block transfers, CMD6), written as a host driver would issue them.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "emmcsim/mmc/card.hpp"
#include "emmcsim/mmc/image.hpp"
#include "emmcsim/mmc/protocol.hpp"

namespace emmcsim::mmc::testing {

constexpr std::uint16_t kTestRca = 1;
constexpr std::uint32_t kHostOcr = 0x40FF8080;  // sector mode request, 2.7–3.6 V and 1.8 V

inline DeviceConfig small_config() {
  DeviceConfig c = default_device_config();
  c.user_capacity = 64ULL << 20;  // byte addressing at or below 2 GiB
  c.boot_partition_size = 1ULL << 20;
  c.rpmb_size = 512ULL << 10;
  c.cache_size = 64ULL << 10;
  c.reliable_write_sectors = 8;
  return c;
}

class CardHarness {
 public:
  explicit CardHarness(const DeviceConfig& config = default_device_config(), CardOptions options = {})
      : image_(std::make_unique<MemoryImage>(config)),
        card_(std::make_unique<Card>(config, image_->backend(), options)) {}

  Card& card() { return *card_; }
  MemoryImage& image() { return *image_; }

  CommandOutcome cmd(std::uint8_t index, std::uint32_t arg = 0) { return card_->execute({index, arg}); }
  std::uint32_t status() { return cmd(13, std::uint32_t{kTestRca} << 16).response.value; }

  // CMD0, CMD1 until ready, CMD2, CMD3 (RCA 1), CMD7: the card ends in tran.
  void identify_and_select() {
    cmd(0, 0);
    for (int i = 0; i < 1000; ++i) {
      auto o = cmd(1, kHostOcr);
      ASSERT_EQ(o.response.type, ResponseType::r3);
      if (o.response.value & ocr::kPowerUpDone) break;
    }
    ASSERT_EQ(card_->state(), CardState::ready);
    cmd(2);
    cmd(3, std::uint32_t{kTestRca} << 16);
    cmd(7, std::uint32_t{kTestRca} << 16);
    ASSERT_EQ(card_->state(), CardState::tran);
  }

  // CMD6 write-byte access.
  CommandOutcome switch_byte(std::size_t index, std::uint8_t value) {
    return cmd(cmd::kSwitch, switch_arg(SwitchAccess::write_byte, index, value));
  }

  // The address argument for `sector` in the card's addressing mode.
  std::uint32_t address(std::uint64_t sector) const {
    return static_cast<std::uint32_t>(card_->config().sector_addressing() ? sector : sector * kSectorSize);
  }

  // Reads every block of the data phase `o` opened; returns the bytes (fewer when a block failed).
  std::vector<std::uint8_t> read_data(const CommandOutcome& o) {
    std::vector<std::uint8_t> out;
    std::vector<std::uint8_t> block(o.data.block_size);
    for (std::uint32_t i = 0; i < o.data.blocks; ++i) {
      if (!card_->read_block(block.data(), block.size()).ok) break;
      out.insert(out.end(), block.begin(), block.end());
    }
    return out;
  }

  // CMD23 + CMD18 of `count` sectors from `sector`.
  std::vector<std::uint8_t> read_sectors(std::uint64_t sector, std::uint16_t count) {
    cmd(23, count);
    return read_data(cmd(18, address(sector)));
  }

  // CMD23 (+ reliable flag) + CMD25 writing `data` (a multiple of 512 bytes); returns whether
  // every block was accepted.
  bool write_sectors(std::uint64_t sector, const std::vector<std::uint8_t>& data, bool reliable = false) {
    const auto count = static_cast<std::uint32_t>(data.size() / kSectorSize);
    cmd(23, count | (reliable ? set_block_count::kReliableWrite : 0));
    auto o = cmd(25, address(sector));
    if (o.data.direction != DataDirection::to_card) return false;
    for (std::uint32_t i = 0; i < count; ++i)
      if (!card_->write_block(data.data() + i * kSectorSize, kSectorSize).ok) return false;
    return true;
  }

  ExtCsd read_ext_csd() {
    auto o = cmd(8);
    auto bytes = read_data(o);
    ExtCsd e{};
    if (bytes.size() == e.size()) std::copy(bytes.begin(), bytes.end(), e.begin());
    return e;
  }

 private:
  std::unique_ptr<MemoryImage> image_;
  std::unique_ptr<Card> card_;
};

// ---------------------------------------------------------------------------------------------
// Reaching every card state by a host sequence (conformance, identification and error suites).

// Options of a card that stays in prg/dis until finish_busy(), as under a timed model.
inline CardOptions held_busy_options() {
  CardOptions options;
  options.complete_busy_immediately = false;
  return options;
}

// Identifier-safe state name for test names: "pre_idle", "tran" …
inline std::string state_test_name(CardState s) {
  std::string name(card_state_name(s));
  std::replace(name.begin(), name.end(), '-', '_');
  return name;
}

// From tran, by a host sequence: tran, data (CMD17 open), rcv (CMD24 open), prg (a completed
// CMD24; the card must hold busy, see held_busy_options), dis (prg, then CMD7 to another RCA),
// btst (CMD19 and its block), stby (CMD7 deselect), slp (deselect, CMD5 sleep), inactive
// (CMD15). Use with ASSERT_NO_FATAL_FAILURE.
inline void drive_from_tran(CardHarness& h, CardState target) {
  Card& card = h.card();
  ASSERT_EQ(card.state(), CardState::tran);
  const std::uint32_t rca_arg = std::uint32_t{kTestRca} << 16;
  const std::uint32_t other_rca_arg = std::uint32_t{kTestRca + 1} << 16;
  switch (target) {
    case CardState::tran: break;
    case CardState::data: ASSERT_EQ(h.cmd(17, h.address(0)).data.direction, DataDirection::to_host); break;
    case CardState::rcv: ASSERT_EQ(h.cmd(24, h.address(0)).data.direction, DataDirection::to_card); break;
    case CardState::prg:
    case CardState::dis: {
      ASSERT_EQ(h.cmd(24, h.address(0)).data.direction, DataDirection::to_card);
      const std::vector<std::uint8_t> block(kSectorSize, 0x5A);
      const BlockOutcome b = card.write_block(block.data(), block.size());
      ASSERT_TRUE(b.ok);
      ASSERT_EQ(card.state(), CardState::prg) << "prg and dis need CardOptions::complete_busy_immediately = false";
      if (target == CardState::dis) h.cmd(7, other_rca_arg);
      break;
    }
    case CardState::btst: {
      const CommandOutcome o = h.cmd(19);
      ASSERT_EQ(o.data.direction, DataDirection::to_card);
      const std::vector<std::uint8_t> pattern(o.data.block_size, 0xA5);
      ASSERT_TRUE(card.write_block(pattern.data(), pattern.size()).ok);
      break;
    }
    case CardState::stby: h.cmd(7, 0); break;
    case CardState::slp:
      h.cmd(7, 0);
      h.cmd(5, rca_arg | sleep_awake::kSleep);
      break;
    case CardState::inactive: h.cmd(15, rca_arg); break;
    default: FAIL() << "drive_from_tran cannot reach " << state_test_name(target);
  }
  ASSERT_EQ(card.state(), target) << "while driving the card to " << state_test_name(target);
}

// From idle (power-up, or after CMD0), by a host sequence, into any state: identification for
// ready/ident/stby (CMD1 until ready, CMD2, CMD3 with kTestRca), CMD7 for tran and what follows
// it (drive_from_tran), CMD0 0xF0F0F0F0 for pre_idle, and for boot: PARTITION_CONFIG boot enable
// (boot partition 1) with CMD6, CMD0, CMD0 0xFFFFFFFA. Use with ASSERT_NO_FATAL_FAILURE.
inline void drive_to_state(CardHarness& h, CardState target) {
  Card& card = h.card();
  ASSERT_EQ(card.state(), CardState::idle);
  const std::uint32_t rca_arg = std::uint32_t{kTestRca} << 16;
  if (target == CardState::idle) return;
  if (target == CardState::pre_idle) {
    h.cmd(0, go_idle::kPreIdle);
    ASSERT_EQ(card.state(), CardState::pre_idle);
    return;
  }
  for (int i = 0; i < 1000 && card.state() == CardState::idle; ++i) {
    ASSERT_EQ(h.cmd(1, kHostOcr).response.type, ResponseType::r3);
  }
  ASSERT_EQ(card.state(), CardState::ready);
  if (target == CardState::ready) return;
  ASSERT_EQ(h.cmd(2).response.type, ResponseType::r2);
  ASSERT_EQ(card.state(), CardState::ident);
  if (target == CardState::ident) return;
  ASSERT_EQ(h.cmd(3, rca_arg).response.type, ResponseType::r1);
  ASSERT_EQ(card.state(), CardState::stby);
  if (target == CardState::stby) return;
  if (target == CardState::slp) {
    h.cmd(5, rca_arg | sleep_awake::kSleep);
    ASSERT_EQ(card.state(), CardState::slp);
    return;
  }
  if (target == CardState::inactive) {
    h.cmd(15, rca_arg);
    ASSERT_EQ(card.state(), CardState::inactive);
    return;
  }
  h.cmd(7, rca_arg);
  ASSERT_EQ(card.state(), CardState::tran);
  if (target == CardState::boot) {
    // PARTITION_CONFIG: BOOT_PARTITION_ENABLE = 1 (boot partition 1), access to the user area.
    h.switch_byte(ext_csd::kPartitionConfig,
                  ext_csd::partition_config::value(Partition::user, ext_csd::partition_config::kBootFromBoot1));
    card.finish_busy();
    ASSERT_EQ(card.state(), CardState::tran);
    h.cmd(0, 0);
    h.cmd(0, go_idle::kBootInitiation);
    ASSERT_EQ(card.state(), CardState::boot);
    return;
  }
  drive_from_tran(h, target);
}

}  // namespace emmcsim::mmc::testing
