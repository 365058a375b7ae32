// BusTiming: cycle counts of the bus phases (spec/emmc.md "Bus timing"), the mode a card's
// EXT_CSD selects, and picoseconds from cycles.
#include "emmcsim/models/bus_timing.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <stdexcept>

#include "emmcsim/mmc/protocol.hpp"

namespace emmcsim::models {
namespace {

namespace ec = mmc::ext_csd;

BusMode mode(BusSpeed speed, unsigned width, bool ddr) {
  BusMode m;
  m.speed = speed;
  m.data_width = width;
  m.ddr = ddr;
  return m;
}

mmc::ExtCsd ext_csd_with(std::uint8_t hs_timing, std::uint8_t bus_width) {
  mmc::ExtCsd e{};
  e[ec::kHsTiming] = hs_timing;
  e[ec::kBusWidth] = bus_width;
  return e;
}

// The table of spec/emmc.md: 8-bit bus, 512-byte blocks, each mode at its highest clock.
struct ModeRow {
  BusSpeed speed;
  bool ddr;
  std::uint64_t clock_hz;
  std::uint64_t cycles_per_block;
  double microseconds_per_block;  // as the spec rounds it
  double ceiling_mb_per_s;        // as the spec rounds it
};
constexpr ModeRow kSpecTable[] = {
    {BusSpeed::legacy, false, 26'000'000, 530, 20.4, 25}, {BusSpeed::high_speed, false, 52'000'000, 530, 10.2, 50},
    {BusSpeed::ddr52, true, 52'000'000, 274, 5.27, 97},   {BusSpeed::hs200, false, 200'000'000, 530, 2.65, 193},
    {BusSpeed::hs400, true, 200'000'000, 274, 1.37, 374},
};

TEST(BusTiming, EightBitBlocksMatchTheSpecTable) {
  for (const ModeRow& row : kSpecTable) {
    const BusTiming t(mode(row.speed, 8, row.ddr), row.clock_hz);
    SCOPED_TRACE(t.mode().describe());
    EXPECT_EQ(t.data_block_cycles(512), row.cycles_per_block);
    EXPECT_EQ(t.mode().max_clock_hz(), row.clock_hz);
    const double us = static_cast<double>(t.picoseconds(row.cycles_per_block)) / 1e6;
    // The spec gives three significant digits.
    EXPECT_NEAR(us, row.microseconds_per_block, row.microseconds_per_block * 0.005);
    const double mb_per_s = 512.0 / (us * 1e-6) / 1e6;
    EXPECT_NEAR(mb_per_s, row.ceiling_mb_per_s, 1.0);
  }
}

TEST(BusTiming, DataBlockCyclesForEveryWidth) {
  EXPECT_EQ(BusTiming(mode(BusSpeed::legacy, 1, false), 26'000'000).data_block_cycles(512), 4114u);
  EXPECT_EQ(BusTiming(mode(BusSpeed::high_speed, 4, false), 52'000'000).data_block_cycles(512), 1 + 1024 + 16 + 1u);
  EXPECT_EQ(BusTiming(mode(BusSpeed::ddr52, 4, true), 52'000'000).data_block_cycles(512), 1 + 512 + 16 + 1u);
  EXPECT_EQ(BusTiming(mode(BusSpeed::hs400, 8, true), 200'000'000).data_block_cycles(512), 274u);
  // Blocks that do not fill the last cycle round up (CMD14's 8-byte bus-test block at 8-bit DDR:
  // 64 bits over 16 per cycle; a 3-byte block at 8-bit DDR needs 2 cycles).
  EXPECT_EQ(BusTiming(mode(BusSpeed::hs400, 8, true), 200'000'000).data_block_cycles(8), 1 + 4 + 16 + 1u);
  EXPECT_EQ(BusTiming(mode(BusSpeed::hs400, 8, true), 200'000'000).data_block_cycles(3), 1 + 2 + 16 + 1u);
}

TEST(BusTiming, CommandCyclesByResponse) {
  const BusTiming t(mode(BusSpeed::high_speed, 8, false), 52'000'000);
  EXPECT_EQ(t.command_cycles(mmc::ResponseType::r1), 48 + 2 + 48 + 8u);
  EXPECT_EQ(t.command_cycles(mmc::ResponseType::r1b), 48 + 2 + 48 + 8u);
  EXPECT_EQ(t.command_cycles(mmc::ResponseType::r3), 48 + 2 + 48 + 8u);
  EXPECT_EQ(t.command_cycles(mmc::ResponseType::r2), 48 + 2 + 136 + 8u);
  EXPECT_EQ(t.command_cycles(mmc::ResponseType::none), 48 + 64 + 8u) << "the host waits N_CR max";
}

TEST(BusTiming, CommandCyclesByWhatTheHostWaitsFor) {
  // JESD84-B51 §10.8 (spec/emmc.md): CMD1's R3 and CMD2's R2 start exactly N_ID = 5 cycles after
  // the command; every other response after N_CR (2 at the earliest). A command without a
  // response by definition (CMD0, CMD4, CMD15) lets the host send the next one N_CC = 8 cycles
  // after it; a command that expects one and gets none makes it wait N_CR max = 64 first.
  const BusTiming t(mode(BusSpeed::identification, 1, false), 400'000);
  EXPECT_EQ(t.command_cycles(mmc::cmd::kSendOpCond, mmc::ResponseType::r3), 48 + 5 + 48 + 8u);
  EXPECT_EQ(t.command_cycles(mmc::cmd::kAllSendCid, mmc::ResponseType::r2), 48 + 5 + 136 + 8u);
  EXPECT_EQ(t.command_cycles(mmc::cmd::kGoIdleState, mmc::ResponseType::none), 48 + 8u);
  EXPECT_EQ(t.command_cycles(mmc::cmd::kSetDsr, mmc::ResponseType::none), 48 + 8u);
  EXPECT_EQ(t.command_cycles(mmc::cmd::kGoInactiveState, mmc::ResponseType::none), 48 + 8u);
  // Answered after N_CR.
  EXPECT_EQ(t.command_cycles(mmc::cmd::kSetRelativeAddr, mmc::ResponseType::r1), 48 + 2 + 48 + 8u);
  EXPECT_EQ(t.command_cycles(mmc::cmd::kSendCsd, mmc::ResponseType::r2), 48 + 2 + 136 + 8u);
  EXPECT_EQ(t.command_cycles(mmc::cmd::kSwitch, mmc::ResponseType::r1b), 48 + 2 + 48 + 8u);
  // Expected a response and got none: illegal, another card's RCA, no common voltage window, a
  // command the device does not implement.
  EXPECT_EQ(t.command_cycles(mmc::cmd::kSendStatus, mmc::ResponseType::none), 48 + 64 + 8u);
  EXPECT_EQ(t.command_cycles(mmc::cmd::kSelectDeselectCard, mmc::ResponseType::none), 48 + 64 + 8u);
  EXPECT_EQ(t.command_cycles(mmc::cmd::kSendOpCond, mmc::ResponseType::none), 48 + 64 + 8u);
  EXPECT_EQ(t.command_cycles(mmc::cmd::kAppCmd, mmc::ResponseType::none), 48 + 64 + 8u);
  // At 400 kHz: CMD0 140 us, CMD1 272.5 us, CMD2 492.5 us.
  EXPECT_EQ(t.picoseconds(t.command_cycles(mmc::cmd::kGoIdleState, mmc::ResponseType::none)), 140'000'000u);
  EXPECT_EQ(t.picoseconds(t.command_cycles(mmc::cmd::kSendOpCond, mmc::ResponseType::r3)), 272'500'000u);
  EXPECT_EQ(t.picoseconds(t.command_cycles(mmc::cmd::kAllSendCid, mmc::ResponseType::r2)), 492'500'000u);
}

TEST(BusTiming, CommandCyclesDoNotDependOnTheDataBus) {
  // CMD is a single line at single data rate in every mode, HS400 included.
  const BusTiming one_bit(mode(BusSpeed::legacy, 1, false), 26'000'000);
  const BusTiming hs400(mode(BusSpeed::hs400, 8, true), 26'000'000);
  EXPECT_EQ(one_bit.command_cycles(mmc::ResponseType::r1), hs400.command_cycles(mmc::ResponseType::r1));
  EXPECT_EQ(one_bit.picoseconds(106), hs400.picoseconds(106));
}

TEST(BusTiming, WriteBlockAddsNwrNcrcAndTheCrcStatusToken) {
  const BusTiming t(mode(BusSpeed::hs200, 8, false), 200'000'000);
  EXPECT_EQ(t.write_block_cycles(512), 2 + 530 + 2 + 5u);
}

TEST(BusTiming, IdentificationAtFourHundredKilohertz) {
  const BusTiming t(mode(BusSpeed::identification, 1, false), 400'000);
  EXPECT_FALSE(t.over_clocked());
  // CMD1 with its R3: 106 cycles of 2.5 us.
  EXPECT_EQ(t.picoseconds(t.command_cycles(mmc::ResponseType::r3)), 106 * 2'500'000ULL);
  EXPECT_TRUE(BusTiming(mode(BusSpeed::identification, 1, false), 400'001).over_clocked());
}

TEST(BusTiming, PicosecondsRoundUpAndDoNotOverflow) {
  EXPECT_EQ(BusTiming(mode(BusSpeed::legacy, 1, false), 3).picoseconds(1), 333'333'333'334u);
  EXPECT_EQ(BusTiming(mode(BusSpeed::legacy, 1, false), 1'000'000).picoseconds(7), 7'000'000u) << "exact";
  // 10^9 cycles × 10^12 does not fit in 64 bits; the result does.
  EXPECT_EQ(BusTiming(mode(BusSpeed::identification, 1, false), 400'000).picoseconds(1'000'000'000),
            2'500'000'000'000'000ULL);
  EXPECT_EQ(BusTiming(mode(BusSpeed::hs200, 8, false), 200'000'000).picoseconds(0), 0u);
}

TEST(BusTiming, OverClockedAgainstEachModesMaximum) {
  EXPECT_FALSE(BusTiming(mode(BusSpeed::legacy, 8, false), 26'000'000).over_clocked());
  EXPECT_TRUE(BusTiming(mode(BusSpeed::legacy, 8, false), 52'000'000).over_clocked());
  EXPECT_FALSE(BusTiming(mode(BusSpeed::ddr52, 8, true), 52'000'000).over_clocked());
  EXPECT_TRUE(BusTiming(mode(BusSpeed::high_speed, 8, false), 200'000'000).over_clocked());
  EXPECT_FALSE(BusTiming(mode(BusSpeed::hs400, 8, true), 200'000'000).over_clocked());
}

TEST(BusTiming, RefusesAZeroClockAndOddWidths) {
  EXPECT_THROW(BusTiming(mode(BusSpeed::legacy, 1, false), 0), std::invalid_argument);
  EXPECT_THROW(BusTiming(mode(BusSpeed::legacy, 2, false), 1'000'000), std::invalid_argument);
  EXPECT_THROW(BusTiming(mode(BusSpeed::legacy, 0, false), 1'000'000), std::invalid_argument);
}

TEST(BusModeOf, ExtCsdSelectsTheMode) {
  struct Case {
    std::uint8_t hs_timing, bus_width;
    BusMode expected;
  };
  const Case cases[] = {
      {0, 0, mode(BusSpeed::legacy, 1, false)},     {0, 1, mode(BusSpeed::legacy, 4, false)},
      {0, 2, mode(BusSpeed::legacy, 8, false)},     {1, 0, mode(BusSpeed::high_speed, 1, false)},
      {1, 2, mode(BusSpeed::high_speed, 8, false)}, {1, 5, mode(BusSpeed::ddr52, 4, true)},
      {1, 6, mode(BusSpeed::ddr52, 8, true)},       {2, 1, mode(BusSpeed::hs200, 4, false)},
      {2, 2, mode(BusSpeed::hs200, 8, false)},      {3, 6, mode(BusSpeed::hs400, 8, true)},
      {3, 0x86, mode(BusSpeed::hs400, 8, true)},     // enhanced strobe bit
      {0x13, 6, mode(BusSpeed::hs400, 8, true)},     // driver strength in HS_TIMING[7:4]
      {1, 3, mode(BusSpeed::high_speed, 1, false)},  // reserved width reads as 1 bit
  };
  for (const Case& c : cases) {
    const BusMode got = bus_mode_of(ext_csd_with(c.hs_timing, c.bus_width), false);
    EXPECT_EQ(got, c.expected) << "HS_TIMING " << int{c.hs_timing} << " BUS_WIDTH " << int{c.bus_width} << ": got "
                               << got.describe();
  }
}

TEST(BusModeOf, IdentificationIgnoresExtCsd) {
  EXPECT_EQ(bus_mode_of(ext_csd_with(3, 6), true), mode(BusSpeed::identification, 1, false));
  EXPECT_EQ(bus_mode_of(ext_csd_with(3, 6), true).max_clock_hz(), 400'000u);
}

TEST(BusMode, Describe) {
  EXPECT_EQ(mode(BusSpeed::hs400, 8, true).describe(), "HS400 8-bit DDR");
  EXPECT_EQ(mode(BusSpeed::high_speed, 4, false).describe(), "high speed 4-bit");
}

}  // namespace
}  // namespace emmcsim::models

// libsystemc (linked through emmcsim::models) refers to sc_main; GoogleTest's main runs instead.
extern "C" int sc_main(int, char**) { return 0; }
