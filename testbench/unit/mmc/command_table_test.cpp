// The command table's protocol columns — bus command type, response, data direction, address —
// against JESD84-B51's command tables (§6.10.4, Tables 41–52), written out below by hand from
// the standard, not from the table; then the card's data phases against the table's direction,
// and protocol.hpp's argument helpers against their bit layouts.
#include <gtest/gtest.h>

#include <cstdint>
#include <set>
#include <vector>

#include "card_harness.hpp"
#include "emmcsim/mmc/command_table.hpp"
#include "emmcsim/mmc/protocol.hpp"

namespace emmcsim::mmc::testing {
namespace {

using T = BusCommandType;
using R = ResponseType;
using D = DataDirection;
using A = CommandAddress;

struct JedecCommand {
  unsigned index;
  T type;
  std::set<R> responses;  // R1/R1b where JEDEC allows either
  D data;                 // adtc: which way the data block goes
  A address;              // what JEDEC's argument column names
};

// JESD84-B51 Tables 41 (class 0), 42 (class 2), 44 (class 4), 45 (class 6), 46 (class 5),
// 47 (class 7), 48 (class 8), 49 (class 9), 50 (class 10), 51 (class 11). Argument columns:
// "[31:16] RCA" → rca (CMD3's RCA is assigned, not matched); "[31:0] data address" →
// data_address; anything else → none. CMD12's "[31:16] RCA" goes with its HPI bit 0; a plain
// stop carries stuff bits, and this device has no HPI, so it is listed as none.
const std::vector<JedecCommand> kJedecCommands = {
    {0, T::bc, {R::none}, D::none, A::none},
    {1, T::bcr, {R::r3}, D::none, A::none},
    {2, T::bcr, {R::r2}, D::none, A::none},
    {3, T::ac, {R::r1}, D::none, A::assigned_rca},
    {4, T::bc, {R::none}, D::none, A::none},
    {5, T::ac, {R::r1b}, D::none, A::rca},
    {6, T::ac, {R::r1b}, D::none, A::none},
    {7, T::ac, {R::r1, R::r1b}, D::none, A::rca},
    {8, T::adtc, {R::r1}, D::to_host, A::none},
    {9, T::ac, {R::r2}, D::none, A::rca},
    {10, T::ac, {R::r2}, D::none, A::rca},
    {12, T::ac, {R::r1, R::r1b}, D::none, A::none},
    {13, T::ac, {R::r1}, D::none, A::rca},
    {14, T::adtc, {R::r1}, D::to_host, A::none},
    {15, T::ac, {R::none}, D::none, A::rca},
    {16, T::ac, {R::r1}, D::none, A::none},
    {17, T::adtc, {R::r1}, D::to_host, A::data_address},
    {18, T::adtc, {R::r1}, D::to_host, A::data_address},
    {19, T::adtc, {R::r1}, D::to_card, A::none},
    {21, T::adtc, {R::r1}, D::to_host, A::none},
    {23, T::ac, {R::r1}, D::none, A::none},
    {24, T::adtc, {R::r1}, D::to_card, A::data_address},
    {25, T::adtc, {R::r1}, D::to_card, A::data_address},
    {26, T::adtc, {R::r1}, D::to_card, A::none},
    {27, T::adtc, {R::r1}, D::to_card, A::none},
    {28, T::ac, {R::r1b}, D::none, A::data_address},
    {29, T::ac, {R::r1b}, D::none, A::data_address},
    {30, T::adtc, {R::r1}, D::to_host, A::data_address},
    {31, T::adtc, {R::r1}, D::to_host, A::data_address},
    {35, T::ac, {R::r1}, D::none, A::data_address},
    {36, T::ac, {R::r1}, D::none, A::data_address},
    {38, T::ac, {R::r1b}, D::none, A::none},
    // CMD42's response column says R1b; the card reports the busy with the data block (see
    // card_conformance_test.cpp), so its own response is R1.
    {42, T::adtc, {R::r1, R::r1b}, D::to_card, A::none},
    {55, T::ac, {R::r1}, D::none, A::rca},
};

const JedecCommand* jedec(unsigned index) {
  for (const JedecCommand& c : kJedecCommands)
    if (c.index == index) return &c;
  return nullptr;
}

TEST(CommandTableColumns, AreJedecs) {
  for (const CommandSpec& spec : command_table()) {
    SCOPED_TRACE("CMD" + std::to_string(spec.index) + " " + std::string(spec.name));
    const JedecCommand* expected = jedec(spec.index);
    ASSERT_NE(expected, nullptr) << "not in JESD84-B51's command tables";
    EXPECT_EQ(spec.type, expected->type) << bus_command_type_name(spec.type);
    EXPECT_EQ(expected->responses.count(spec.response), 1u);
    EXPECT_EQ(spec.data, expected->data);
    EXPECT_EQ(spec.address, expected->address) << command_address_name(spec.address);
  }
}

// What JEDEC's type names mean, row by row: data only with adtc, no response with bc, the
// identification responses (R2 CID, R3 OCR) with bcr, an RCA only on addressed commands.
TEST(CommandTableColumns, AgreeWithEachOther) {
  for (const CommandSpec& spec : command_table()) {
    SCOPED_TRACE("CMD" + std::to_string(spec.index));
    EXPECT_EQ(spec.type == T::adtc, spec.data != D::none);
    if (spec.type == T::bc) {
      EXPECT_EQ(spec.response, R::none);
    }
    if (spec.type == T::bcr) {
      EXPECT_TRUE(spec.response == R::r2 || spec.response == R::r3);
    }
    if (spec.type == T::bc || spec.type == T::bcr) {
      EXPECT_EQ(spec.address, A::none);
    }
    if (spec.has(kSectorData)) {
      EXPECT_EQ(spec.address, A::data_address);
      EXPECT_EQ(spec.type, T::adtc);
    }
  }
}

// Every data command of the table opens its data phase in the table's direction.
TEST(CommandTableColumns, DataPhasesGoTheTablesWay) {
  std::set<unsigned> checked;
  auto check = [&checked](const Command& c, const CommandOutcome& o) {
    const CommandSpec* spec = find_command(c.index);
    ASSERT_NE(spec, nullptr);
    ASSERT_FALSE(o.illegal) << "CMD" << unsigned{c.index};
    EXPECT_EQ(o.data.direction, spec->data) << "CMD" << unsigned{c.index};
    checked.insert(c.index);
  };
  auto run = [&check](CardHarness& h, const Command& c) {
    const CommandOutcome o = h.card().execute(c);
    check(c, o);
    return o;
  };
  auto finish = [](CardHarness& h, const CommandOutcome& o) {
    std::vector<std::uint8_t> block(o.data.block_size, 0);
    for (std::uint32_t i = 0; i < o.data.blocks; ++i) {
      if (o.data.direction == D::to_host)
        h.card().read_block(block.data(), block.size());
      else
        h.card().write_block(block.data(), block.size());
    }
  };

  CardHarness h;
  ASSERT_NO_FATAL_FAILURE(h.identify_and_select());
  for (std::uint8_t index : {cmd::kSendExtCsd, cmd::kReadSingleBlock, cmd::kWriteBlock, cmd::kSendWriteProt,
                             cmd::kSendWriteProtType, cmd::kLockUnlock}) {
    finish(h, run(h, {index, 0}));
    h.card().finish_busy();
    ASSERT_EQ(h.card().state(), CardState::tran);
  }
  for (std::uint8_t index : {cmd::kReadMultipleBlock, cmd::kWriteMultipleBlock}) {
    h.cmd(cmd::kSetBlockCount, 1);
    finish(h, run(h, {index, 0}));
    ASSERT_EQ(h.card().state(), CardState::tran);
  }
  finish(h, run(h, {cmd::kBusTestWrite, 0}));
  finish(h, run(h, {cmd::kBusTestRead, 0}));
  // Tuning exists in HS200 only.
  h.switch_byte(ext_csd::kBusWidth, ext_csd::bus_width::k8Bit);
  h.switch_byte(ext_csd::kHsTiming, ext_csd::hs_timing::kHs200);
  finish(h, run(h, {cmd::kSendTuningBlock, 0}));

  for (const CommandSpec& spec : command_table()) {
    if (spec.data != D::none) {
      EXPECT_EQ(checked.count(spec.index), 1u) << "CMD" << unsigned{spec.index} << " untried";
    }
  }
}

TEST(ProtocolFacts, SwitchArgumentLayout) {
  // JESD84-B51 Table 41: [25:24] access, [23:16] index, [15:8] value, [2:0] command set.
  const std::uint32_t arg = switch_arg(SwitchAccess::write_byte, ext_csd::kHsTiming, 0x12, 5);
  EXPECT_EQ(arg, 0x03B91205u);
  EXPECT_EQ(switch_access(arg), SwitchAccess::write_byte);
  EXPECT_EQ(switch_index(arg), 185u);
  EXPECT_EQ(switch_value(arg), 0x12u);
  EXPECT_EQ(switch_command_set(arg), 5u);
  EXPECT_EQ(switch_arg(SwitchAccess::set_bits, ext_csd::kFlushCache, ext_csd::flush_cache::kFlush), 0x01200100u);
  EXPECT_EQ(switch_arg(SwitchAccess::clear_bits, ext_csd::kCacheCtrl, 1), 0x02210100u);
}

TEST(ProtocolFacts, ArgumentBits) {
  EXPECT_EQ(rca_arg(0x1234), 0x12340000u);
  EXPECT_EQ(rca_of(0x1234ABCD), 0x1234u);
  EXPECT_EQ(send_status::kSendQueueStatus, 0x8000u);
  EXPECT_EQ(sleep_awake::kSleep, 0x8000u);
  EXPECT_EQ(set_block_count::kReliableWrite, 0x80000000u);
  EXPECT_EQ(set_block_count::kPacked, 0x40000000u);
  EXPECT_EQ(set_block_count::kForcedProgramming, 0x01000000u);
  EXPECT_EQ(set_block_count::kContextIdMask, 0x1E000000u);
  EXPECT_EQ(set_block_count::kBlockCountMask, 0xFFFFu);
}

TEST(ProtocolFacts, ExtCsdValues) {
  namespace ec = ext_csd;
  EXPECT_EQ(ec::partition_config::value(Partition::rpmb, ec::partition_config::kBootFromBoot1, true), 0x4Bu);
  EXPECT_EQ(ec::partition_config::access_of(0x4B), 3u);
  EXPECT_EQ(ec::partition_config::boot_enable_of(0x4B), 1u);
  EXPECT_EQ(ec::partition_config::value(Partition::user, ec::partition_config::kBootFromUser), 0x38u);
  EXPECT_EQ(ec::hs_timing::value(ec::hs_timing::kHs400, 1), 0x13u);
  EXPECT_EQ(ec::hs_timing::timing_of(0x13), ec::hs_timing::kHs400);
  EXPECT_EQ(ec::hs_timing::driver_strength_of(0x13), 1u);
  EXPECT_EQ(ec::bus_width::k8BitDdr | ec::bus_width::kEnhancedStrobe, 0x86);
  EXPECT_EQ(ec::bus_width::data_lines(0x86), 8u);
  EXPECT_TRUE(ec::bus_width::double_data_rate(0x86));
  EXPECT_EQ(ec::bus_width::data_lines(ec::bus_width::k4Bit), 4u);
  EXPECT_FALSE(ec::bus_width::double_data_rate(ec::bus_width::k4Bit));
  EXPECT_EQ(ec::bus_width::data_lines(ec::bus_width::k1Bit), 1u);
}

}  // namespace
}  // namespace emmcsim::mmc::testing
