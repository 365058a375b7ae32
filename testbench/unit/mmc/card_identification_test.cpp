// mmc::Card identification and card status: the OCR handshake (CMD1), CID/CSD (CMD2, CMD9,
// CMD10), RCA assignment (CMD3), selection (CMD7), CMD0 resets, and the rules by which status
// bits appear in R1 responses (JESD84-B51 §6.4, §6.13).
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "card_harness.hpp"
#include "emmcsim/mmc/protocol.hpp"
#include "emmcsim/mmc/registers.hpp"

namespace emmcsim::mmc::testing {
namespace {

using S = CardState;
using R = ResponseType;

constexpr std::uint32_t kRcaArg = rca_arg(kTestRca);
// OCR voltage window of an eMMC that runs at 1.70–1.95 V and 2.7–3.6 V (bits 7 and 23:15).
constexpr std::uint32_t kDualVoltageWindow = 0x00FF8080;
// The OCR's 2.0–2.6 V bits (14:8): no eMMC supports that range.
constexpr std::uint32_t kLowVoltageRange = 0x00007F00;

unsigned state_code(S s) { return static_cast<unsigned>(s); }
unsigned r1_state(const CommandOutcome& o) { return status::current_state(o.response.value); }

DeviceConfig config_with_polls(std::uint32_t polls) {
  DeviceConfig c = default_device_config();
  c.ocr_busy_polls = polls;
  return c;
}

// ---------------------------------------------------------------------------------------------
// CMD1: OCR busy, queries, voltage, access mode

class CardIdentificationOcrBusy : public ::testing::TestWithParam<std::uint32_t> {};

TEST_P(CardIdentificationOcrBusy, BusyForExactlyTheConfiguredPolls) {
  const std::uint32_t polls = GetParam();
  CardHarness h(config_with_polls(polls));
  Card& card = h.card();
  ASSERT_EQ(card.state(), S::idle);
  for (std::uint32_t i = 0; i < polls; ++i) {
    const CommandOutcome o = h.cmd(1, kHostOcr);
    ASSERT_EQ(o.response.type, R::r3) << "poll " << i;
    EXPECT_EQ(o.response.value & ocr::kPowerUpDone, 0u) << "poll " << i << " must report busy";
    EXPECT_EQ(o.response.value & kDualVoltageWindow, kDualVoltageWindow);
    EXPECT_EQ(card.state(), S::idle) << "poll " << i;
  }
  const CommandOutcome done = h.cmd(1, kHostOcr);
  ASSERT_EQ(done.response.type, R::r3);
  EXPECT_NE(done.response.value & ocr::kPowerUpDone, 0u);
  EXPECT_EQ(card.state(), S::ready);
}

// Every CMD0 restarts the power-up sequence: the device is busy again for as many polls.
TEST_P(CardIdentificationOcrBusy, Cmd0RestartsTheBusyCount) {
  const std::uint32_t polls = GetParam();
  CardHarness h(config_with_polls(polls));
  ASSERT_NO_FATAL_FAILURE(drive_to_state(h, S::tran));
  h.cmd(0, 0);
  std::uint32_t busy = 0;
  while (h.card().state() == S::idle && busy < 100) {
    const CommandOutcome o = h.cmd(1, kHostOcr);
    if ((o.response.value & ocr::kPowerUpDone) == 0) ++busy;
  }
  EXPECT_EQ(busy, polls);
  EXPECT_EQ(h.card().state(), S::ready);
}

INSTANTIATE_TEST_SUITE_P(CardIdentification, CardIdentificationOcrBusy, ::testing::Values(0u, 2u, 5u));

// Linux first sends CMD1 with argument 0 to learn the voltage window; that does not move the
// card out of idle, however often it is asked.
TEST(CardIdentificationOcr, QueryWithArgumentZeroStaysIdle) {
  CardHarness h(config_with_polls(2));
  for (int i = 0; i < 6; ++i) {
    const CommandOutcome o = h.cmd(1, 0);
    ASSERT_EQ(o.response.type, R::r3);
    EXPECT_EQ(o.response.value & kDualVoltageWindow, kDualVoltageWindow);
    EXPECT_EQ(h.card().state(), S::idle) << "query " << i;
  }
  // Once the host offers a voltage window the card proceeds.
  for (int i = 0; i < 10 && h.card().state() == S::idle; ++i) h.cmd(1, kHostOcr);
  EXPECT_EQ(h.card().state(), S::ready);
}

TEST(CardIdentificationOcr, IncompatibleVoltageMakesTheCardInactive) {
  CardHarness h(config_with_polls(0));
  const CommandOutcome o = h.cmd(1, kLowVoltageRange);
  EXPECT_EQ(o.response.type, R::none);
  EXPECT_EQ(h.card().state(), S::inactive);
  // Only a power cycle leaves inactive.
  EXPECT_TRUE(h.cmd(0, 0).illegal);
  EXPECT_TRUE(h.cmd(1, kHostOcr).illegal);
  EXPECT_EQ(h.card().state(), S::inactive);
  h.card().power_cycle();
  EXPECT_EQ(h.card().state(), S::idle);
  EXPECT_EQ(h.cmd(1, kHostOcr).response.type, R::r3);
  EXPECT_EQ(h.card().state(), S::ready);
}

TEST(CardIdentificationOcr, OneCommonWindowIsEnough) {
  for (std::uint32_t window : {ocr::kVoltage170_195, ocr::kVoltage270_360, 1u << 23}) {
    CardHarness h(config_with_polls(0));
    const CommandOutcome o = h.cmd(1, window);
    EXPECT_EQ(o.response.type, R::r3) << std::hex << window;
    EXPECT_EQ(h.card().state(), S::ready) << std::hex << window;
  }
}

struct CapacityCase {
  std::uint64_t capacity;
  std::uint32_t access_mode;  // OCR bits 30:29
};

class CardIdentificationAccessMode : public ::testing::TestWithParam<CapacityCase> {};

TEST_P(CardIdentificationAccessMode, SectorModeAboveTwoGiB) {
  DeviceConfig config = config_with_polls(0);
  config.user_capacity = GetParam().capacity;
  CardHarness h(config);
  const CommandOutcome o = h.cmd(1, kHostOcr);
  ASSERT_EQ(o.response.type, R::r3);
  EXPECT_EQ(o.response.value & ocr::kAccessModeMask, GetParam().access_mode);
  EXPECT_EQ(o.response.value, ocr::kPowerUpDone | GetParam().access_mode | kDualVoltageWindow);

  // The addressing follows: in sector mode CMD17's argument counts sectors, in byte mode bytes.
  ASSERT_NO_FATAL_FAILURE(h.identify_and_select());
  const std::uint64_t last_sector = GetParam().capacity / kSectorSize - 1;
  const bool sector_mode = GetParam().access_mode != 0;
  const std::uint32_t arg = static_cast<std::uint32_t>(sector_mode ? last_sector : last_sector * kSectorSize);
  const CommandOutcome read = h.cmd(17, arg);
  EXPECT_EQ(read.response.value & status::kAnyError, 0u) << describe_status(read.response.value);
  EXPECT_EQ(read.data.direction, DataDirection::to_host);
}

INSTANTIATE_TEST_SUITE_P(CardIdentification, CardIdentificationAccessMode,
                         ::testing::Values(CapacityCase{1ULL << 20, 0}, CapacityCase{64ULL << 20, 0},
                                           CapacityCase{2ULL << 30, 0},
                                           CapacityCase{(2ULL << 30) + (512ULL << 10), 2u << 29},
                                           CapacityCase{8ULL << 30, 2u << 29}));

// ---------------------------------------------------------------------------------------------
// CID, CSD, RCA, selection

TEST(CardIdentificationRegisters, CidAndCsdAreTheBuiltRegisters) {
  DeviceConfig config = config_with_polls(0);
  config.cid.manufacturer_id = 0x15;
  config.cid.oem_id = 0x42;
  config.cid.product_name = "ABC";
  config.cid.serial = 0x12345678;
  CardHarness h(config);
  h.cmd(1, kHostOcr);
  const CommandOutcome cid = h.cmd(2);
  ASSERT_EQ(cid.response.type, R::r2);
  EXPECT_EQ(cid.response.r2, build_cid(config));
  // Independently of the builder: MID, OID, PNM (space padded), PSN, CRC7 with the end bit.
  const auto& r2 = cid.response.r2;
  EXPECT_EQ(r2[0], 0x15);
  EXPECT_EQ(r2[2], 0x42);
  EXPECT_EQ(std::string(r2.begin() + 3, r2.begin() + 9), "ABC   ");
  EXPECT_EQ(r2[10], 0x12);
  EXPECT_EQ(r2[11], 0x34);
  EXPECT_EQ(r2[12], 0x56);
  EXPECT_EQ(r2[13], 0x78);
  EXPECT_EQ(r2[15], static_cast<std::uint8_t>(crc7(r2.data(), 15) << 1 | 1));

  h.cmd(3, kRcaArg);
  const CommandOutcome csd = h.cmd(9, kRcaArg);
  ASSERT_EQ(csd.response.type, R::r2);
  EXPECT_EQ(csd.response.r2, build_csd(config));
  EXPECT_EQ(csd.response.r2[0] >> 6, 3) << "CSD_STRUCTURE: version in EXT_CSD";
  EXPECT_EQ((csd.response.r2[0] >> 2) & 0xF, 4) << "SPEC_VERS 4";
  EXPECT_EQ(csd.response.r2[15], static_cast<std::uint8_t>(crc7(csd.response.r2.data(), 15) << 1 | 1));
  const CommandOutcome cid_again = h.cmd(10, kRcaArg);
  ASSERT_EQ(cid_again.response.type, R::r2);
  EXPECT_EQ(cid_again.response.r2, build_cid(config));
  EXPECT_EQ(h.card().state(), S::stby);
}

TEST(CardIdentificationRca, Cmd3AssignsTheHostsRca) {
  CardHarness h(config_with_polls(0));
  h.cmd(1, kHostOcr);
  h.cmd(2);
  const CommandOutcome o = h.cmd(3, 0x1234u << 16);
  ASSERT_EQ(o.response.type, R::r1);
  EXPECT_EQ(r1_state(o), state_code(S::ident));
  EXPECT_EQ(o.response.value & status::kAnyError, 0u);
  EXPECT_EQ(h.card().rca(), 0x1234);
  EXPECT_EQ(h.card().state(), S::stby);
  // The card answers to its RCA only.
  const CommandOutcome mine = h.cmd(13, 0x1234u << 16);
  ASSERT_EQ(mine.response.type, R::r1);
  EXPECT_EQ(r1_state(mine), state_code(S::stby));
  EXPECT_EQ(h.cmd(13, kRcaArg).response.type, R::none);
  EXPECT_EQ(h.cmd(9, kRcaArg).response.type, R::none);
  EXPECT_EQ(h.cmd(9, 0x1234u << 16).response.type, R::r2);
  EXPECT_EQ(h.cmd(7, 0x1234u << 16).response.type, R::r1);
  EXPECT_EQ(h.card().state(), S::tran);
}

// RCA 0 is reserved (CMD7 with it deselects every card); the device refuses to take it.
TEST(CardIdentificationRca, RcaZeroIsRefused) {
  CardHarness h(config_with_polls(0));
  h.cmd(1, kHostOcr);
  h.cmd(2);
  const CommandOutcome o = h.cmd(3, 0);
  EXPECT_TRUE(o.illegal);
  EXPECT_EQ(o.response.type, R::none);
  EXPECT_EQ(h.card().state(), S::ident);
  EXPECT_EQ(h.cmd(3, kRcaArg).response.type, R::r1);
  EXPECT_EQ(h.card().state(), S::stby);
}

TEST(CardIdentificationSelect, Cmd7SelectsAndDeselects) {
  CardHarness h(config_with_polls(0));
  ASSERT_NO_FATAL_FAILURE(drive_to_state(h, S::stby));
  const CommandOutcome select = h.cmd(7, kRcaArg);
  EXPECT_EQ(select.response.type, R::r1) << "R1 from stby (R1b only from dis)";
  EXPECT_FALSE(select.busy);
  EXPECT_EQ(r1_state(select), state_code(S::stby));
  EXPECT_EQ(h.card().state(), S::tran);
  // Selecting the selected card is illegal.
  EXPECT_TRUE(h.cmd(7, kRcaArg).illegal);
  EXPECT_EQ(h.card().state(), S::tran);
  EXPECT_NE(h.status() & status::kIllegalCommand, 0u);
  // RCA 0 deselects, without a response.
  const CommandOutcome deselect = h.cmd(7, 0);
  EXPECT_FALSE(deselect.illegal);
  EXPECT_EQ(deselect.response.type, R::none);
  EXPECT_EQ(h.card().state(), S::stby);
  // Data commands need a selected card.
  EXPECT_TRUE(h.cmd(17, 0).illegal);
  EXPECT_EQ(h.cmd(7, kRcaArg).response.type, R::r1);
  EXPECT_EQ(h.card().state(), S::tran);
}

TEST(CardIdentificationSelect, CsdAndCidOnlyInStby) {
  CardHarness h(config_with_polls(0));
  ASSERT_NO_FATAL_FAILURE(drive_to_state(h, S::tran));
  for (std::uint8_t index : {9, 10}) {
    const CommandOutcome o = h.cmd(index, kRcaArg);
    EXPECT_TRUE(o.illegal) << "CMD" << unsigned{index} << " in tran";
    EXPECT_EQ(o.response.type, R::none);
    EXPECT_NE(h.status() & status::kIllegalCommand, 0u);
  }
  h.cmd(7, 0);
  ASSERT_EQ(h.card().state(), S::stby);
  EXPECT_EQ(h.cmd(9, kRcaArg).response.type, R::r2);
  EXPECT_EQ(h.cmd(10, kRcaArg).response.type, R::r2);
  EXPECT_EQ(h.card().state(), S::stby);
}

// ---------------------------------------------------------------------------------------------
// CMD0 from every state

class CardIdentificationReset : public ::testing::TestWithParam<CardState> {};

bool reached_from_tran(CardState s) {
  return s == S::tran || s == S::data || s == S::rcv || s == S::prg || s == S::dis || s == S::btst || s == S::stby ||
         s == S::slp;
}

TEST_P(CardIdentificationReset, Cmd0ResetsVolatileStateButKeepsPowerOnWriteProtection) {
  const CardState s = GetParam();
  CardHarness h(config_with_polls(1), held_busy_options());
  Card& card = h.card();
  ASSERT_NO_FATAL_FAILURE(drive_to_state(h, S::tran));
  // Power-on write protection of the first group of the user area.
  h.switch_byte(ext_csd::kUserWp, ext_csd::user_wp::kPowerOnWpEnable);
  card.finish_busy();
  h.cmd(28, h.address(0));
  card.finish_busy();
  ASSERT_NE(h.cmd(24, h.address(0)).response.value & status::kWpViolation, 0u);
  // A bus mode and a partition other than the power-up ones.
  h.switch_byte(ext_csd::kBusWidth, ext_csd::bus_width::k8Bit);
  card.finish_busy();
  h.switch_byte(ext_csd::kHsTiming, ext_csd::hs_timing::kHighSpeed);
  card.finish_busy();
  h.switch_byte(ext_csd::kPartitionConfig, ext_csd::partition_config::value(Partition::boot1));
  card.finish_busy();
  ASSERT_EQ(h.status() & status::kAnyError, 0u);
  ASSERT_EQ(card.current_partition(), Partition::boot1);

  if (reached_from_tran(s)) {
    ASSERT_NO_FATAL_FAILURE(drive_from_tran(h, s));
  } else {
    h.cmd(0, 0);
    ASSERT_NO_FATAL_FAILURE(drive_to_state(h, s));
  }

  const CommandOutcome o = h.cmd(0, 0);
  EXPECT_FALSE(o.illegal);
  EXPECT_EQ(o.response.type, R::none);
  EXPECT_EQ(card.state(), S::idle);
  EXPECT_EQ(card.rca(), 0u);
  EXPECT_EQ(card.current_partition(), Partition::user);
  EXPECT_EQ(card.pending_status() & status::kClearedOnRead, 0u);

  ASSERT_NO_FATAL_FAILURE(drive_to_state(h, S::tran));
  const ExtCsd ext = h.read_ext_csd();
  EXPECT_EQ(ext[ext_csd::kBusWidth], 0) << "1-bit bus after CMD0";
  EXPECT_EQ(ext[ext_csd::kHsTiming], 0) << "legacy timing after CMD0";
  EXPECT_EQ(ext[ext_csd::kPartitionConfig] & 7, 0) << "user area after CMD0";
  const CommandOutcome write = h.cmd(24, h.address(0));
  EXPECT_NE(write.response.value & status::kWpViolation, 0u) << "power-on write protection survives CMD0";
  EXPECT_EQ(write.data.direction, DataDirection::none);

  // A power cycle ends it.
  card.power_cycle();
  EXPECT_EQ(card.state(), S::idle);
  ASSERT_NO_FATAL_FAILURE(drive_to_state(h, S::tran));
  const CommandOutcome after = h.cmd(24, h.address(0));
  EXPECT_EQ(after.response.value & status::kAnyError, 0u) << describe_status(after.response.value);
  EXPECT_EQ(after.data.direction, DataDirection::to_card);
}

std::vector<CardState> states_accepting_cmd0() {
  std::vector<CardState> states;
  for (CardState s : kAllCardStates)
    if (s != S::inactive) states.push_back(s);
  return states;
}

struct StateTestName {
  std::string operator()(const ::testing::TestParamInfo<CardState>& param_info) const {
    return std::string("from_") + state_test_name(param_info.param);
  }
};

INSTANTIATE_TEST_SUITE_P(CardIdentification, CardIdentificationReset, ::testing::ValuesIn(states_accepting_cmd0()),
                         StateTestName());

TEST(CardIdentificationResetInactive, OnlyAPowerCycleLeavesInactive) {
  CardHarness h(config_with_polls(0));
  ASSERT_NO_FATAL_FAILURE(drive_to_state(h, S::inactive));
  const CommandOutcome o = h.cmd(0, 0);
  EXPECT_TRUE(o.illegal);
  EXPECT_EQ(o.response.type, R::none);
  EXPECT_EQ(h.card().state(), S::inactive);
  h.card().power_cycle();
  EXPECT_EQ(h.card().state(), S::idle);
  EXPECT_EQ(h.card().rca(), 0u);
  ASSERT_NO_FATAL_FAILURE(drive_to_state(h, S::tran));
}

TEST(CardIdentificationResetBlockLength, Cmd0RestoresTheDefaultBlockLength) {
  DeviceConfig config = small_config();  // byte addressing: the block length matters for CMD17
  config.ocr_busy_polls = 0;
  CardHarness h(config);
  ASSERT_NO_FATAL_FAILURE(drive_to_state(h, S::tran));
  ASSERT_EQ(h.cmd(16, 16).response.value & status::kAnyError, 0u);
  ASSERT_NE(h.cmd(17, 0).response.value & status::kBlockLenError, 0u);
  h.cmd(0, 0);
  ASSERT_NO_FATAL_FAILURE(drive_to_state(h, S::tran));
  const CommandOutcome o = h.cmd(17, 0);
  EXPECT_EQ(o.response.value & status::kAnyError, 0u) << describe_status(o.response.value);
  EXPECT_EQ(o.data.block_size, kSectorSize);
}

// ---------------------------------------------------------------------------------------------
// R1: CURRENT_STATE and the clearing of status bits

TEST(CardIdentificationStatus, CurrentStateIsTheStateAtReceipt) {
  CardHarness h(config_with_polls(0), held_busy_options());
  Card& card = h.card();
  h.cmd(1, kHostOcr);
  h.cmd(2);
  EXPECT_EQ(r1_state(h.cmd(3, kRcaArg)), state_code(S::ident));
  EXPECT_EQ(r1_state(h.cmd(7, kRcaArg)), state_code(S::stby));
  ASSERT_EQ(card.state(), S::tran);

  EXPECT_EQ(r1_state(h.cmd(17, 0)), state_code(S::tran));
  EXPECT_EQ(r1_state(h.cmd(13, kRcaArg)), state_code(S::data));
  EXPECT_EQ(r1_state(h.cmd(12, 0)), state_code(S::data));
  EXPECT_EQ(card.state(), S::tran);

  EXPECT_EQ(r1_state(h.cmd(25, 0)), state_code(S::tran));
  const std::vector<std::uint8_t> block(kSectorSize, 0x77);
  ASSERT_TRUE(card.write_block(block.data(), block.size()).ok);
  EXPECT_EQ(r1_state(h.cmd(13, kRcaArg)), state_code(S::rcv));
  const CommandOutcome stop = h.cmd(12, 0);
  EXPECT_EQ(stop.response.type, R::r1b);
  EXPECT_EQ(r1_state(stop), state_code(S::rcv));
  EXPECT_EQ(r1_state(h.cmd(13, kRcaArg)), state_code(S::prg));
  h.cmd(7, 0);
  EXPECT_EQ(r1_state(h.cmd(13, kRcaArg)), state_code(S::dis));
  const CommandOutcome reselect = h.cmd(7, kRcaArg);
  EXPECT_EQ(reselect.response.type, R::r1b);
  EXPECT_EQ(r1_state(reselect), state_code(S::dis));
  EXPECT_EQ(r1_state(h.cmd(13, kRcaArg)), state_code(S::prg));
  card.finish_busy();
  EXPECT_EQ(r1_state(h.cmd(13, kRcaArg)), state_code(S::tran));

  const CommandOutcome bus_test = h.cmd(19);
  EXPECT_EQ(r1_state(bus_test), state_code(S::tran));
  const std::vector<std::uint8_t> pattern(bus_test.data.block_size, 0x55);
  ASSERT_TRUE(card.write_block(pattern.data(), pattern.size()).ok);
  EXPECT_EQ(r1_state(h.cmd(14)), state_code(S::btst));

  // After the CMD14 data the card is back in tran; deselect and sleep.
  std::vector<std::uint8_t> reply(pattern.size());
  ASSERT_TRUE(card.read_block(reply.data(), reply.size()).ok);
  EXPECT_EQ(reply, std::vector<std::uint8_t>(pattern.size(), 0xAA)) << "CMD14 returns the pattern inverted";
  h.cmd(7, 0);
  EXPECT_EQ(r1_state(h.cmd(5, kRcaArg | sleep_awake::kSleep)), state_code(S::stby));
  EXPECT_EQ(r1_state(h.cmd(5, kRcaArg)), state_code(S::slp));
  EXPECT_EQ(card.state(), S::stby);
}

// A bit with clear condition B/C is carried by exactly one response.
TEST(CardIdentificationStatus, IllegalCommandInTheNextResponseOnly) {
  CardHarness h(config_with_polls(0));
  ASSERT_NO_FATAL_FAILURE(drive_to_state(h, S::tran));
  EXPECT_TRUE(h.cmd(2).illegal);
  const std::uint32_t first = h.status();
  EXPECT_NE(first & status::kIllegalCommand, 0u);
  EXPECT_EQ(h.status() & status::kIllegalCommand, 0u);
  // Also when the next response is not a CMD13's.
  EXPECT_TRUE(h.cmd(3, kRcaArg).illegal);
  const CommandOutcome read = h.cmd(17, 0);
  EXPECT_NE(read.response.value & status::kIllegalCommand, 0u);
  std::vector<std::uint8_t> block(kSectorSize);
  ASSERT_TRUE(h.card().read_block(block.data(), block.size()).ok);
  EXPECT_EQ(h.status() & status::kIllegalCommand, 0u);
}

TEST(CardIdentificationStatus, ResponseTypeErrorsAreInTheirOwnResponseOnly) {
  CardHarness h(config_with_polls(0));
  ASSERT_NO_FATAL_FAILURE(drive_to_state(h, S::tran));
  const std::uint64_t sectors = h.card().config().user_capacity / kSectorSize;
  const CommandOutcome past_end = h.cmd(17, h.address(sectors));
  EXPECT_NE(past_end.response.value & status::kOutOfRange, 0u);
  EXPECT_EQ(h.status() & status::kOutOfRange, 0u);
  const CommandOutcome bad_length = h.cmd(16, 0);
  EXPECT_NE(bad_length.response.value & status::kBlockLenError, 0u);
  EXPECT_EQ(h.status() & status::kBlockLenError, 0u);
  const CommandOutcome no_sequence = h.cmd(38, 0);
  EXPECT_NE(no_sequence.response.value & status::kEraseSeqError, 0u);
  EXPECT_EQ(h.status() & status::kEraseSeqError, 0u);
}

TEST(CardIdentificationStatus, SwitchErrorInTheNextResponseOnly) {
  CardHarness h(config_with_polls(0));
  ASSERT_NO_FATAL_FAILURE(drive_to_state(h, S::tran));
  const CommandOutcome o = h.switch_byte(ext_csd::kBusWidth, 3);  // no such width
  EXPECT_EQ(o.response.type, R::r1b);
  EXPECT_EQ(o.response.value & status::kSwitchError, 0u);
  EXPECT_NE(h.status() & status::kSwitchError, 0u);
  EXPECT_EQ(h.status() & status::kSwitchError, 0u);
}

TEST(CardIdentificationStatus, CardIsLockedWhileLocked) {
  CardHarness h(config_with_polls(0));
  ASSERT_NO_FATAL_FAILURE(drive_to_state(h, S::tran));
  EXPECT_EQ(h.status() & status::kCardIsLocked, 0u);
  auto cmd42 = [&h](std::vector<std::uint8_t> block) {
    h.cmd(16, static_cast<std::uint32_t>(block.size()));
    ASSERT_EQ(h.cmd(42).data.direction, DataDirection::to_card);
    ASSERT_TRUE(h.card().write_block(block.data(), block.size()).ok);
    h.cmd(16, kSectorSize);
  };
  ASSERT_NO_FATAL_FAILURE(cmd42({lock_unlock::kSetPassword | lock_unlock::kLock, 2, 'p', 'w'}));
  for (int i = 0; i < 3; ++i) EXPECT_NE(h.status() & status::kCardIsLocked, 0u) << i;
  EXPECT_NE(h.cmd(16, kSectorSize).response.value & status::kCardIsLocked, 0u);
  // Also across CMD0 and identification.
  h.cmd(0, 0);
  ASSERT_NO_FATAL_FAILURE(drive_to_state(h, S::stby));
  EXPECT_NE(h.status() & status::kCardIsLocked, 0u);
  h.cmd(7, kRcaArg);
  ASSERT_NO_FATAL_FAILURE(cmd42({0x00, 2, 'p', 'w'}));  // no flags: unlock
  EXPECT_EQ(h.status() & status::kCardIsLocked, 0u);
  EXPECT_EQ(h.status() & status::kCardIsLocked, 0u);
}

TEST(CardIdentificationStatus, ReadyForDataClearWhileProgramming) {
  CardHarness h(config_with_polls(0), held_busy_options());
  Card& card = h.card();
  ASSERT_NO_FATAL_FAILURE(drive_to_state(h, S::tran));
  EXPECT_NE(h.status() & status::kReadyForData, 0u);
  h.cmd(24, 0);
  const std::vector<std::uint8_t> block(kSectorSize, 0x12);
  const BlockOutcome b = card.write_block(block.data(), block.size());
  EXPECT_TRUE(b.ok);
  EXPECT_TRUE(b.busy);
  for (int i = 0; i < 3; ++i) {
    const std::uint32_t st = h.status();
    EXPECT_EQ(st & status::kReadyForData, 0u) << describe_status(st);
    EXPECT_EQ(status::current_state(st), state_code(S::prg));
  }
  EXPECT_TRUE(card.busy());
  card.finish_busy();
  EXPECT_FALSE(card.busy());
  const std::uint32_t st = h.status();
  EXPECT_NE(st & status::kReadyForData, 0u);
  EXPECT_EQ(status::current_state(st), state_code(S::tran));
  // A second finish_busy() changes nothing.
  card.finish_busy();
  EXPECT_EQ(card.state(), S::tran);
}

TEST(CardIdentificationStatus, EraseResetWhenAnotherCommandInterruptsAnEraseSequence) {
  CardHarness h(config_with_polls(0));
  ASSERT_NO_FATAL_FAILURE(drive_to_state(h, S::tran));
  const std::vector<std::uint8_t> data(kSectorSize, 0xE5);
  ASSERT_TRUE(h.write_sectors(0, data));
  EXPECT_EQ(h.cmd(35, 0).response.value & status::kAnyError, 0u);
  const CommandOutcome status_query = h.cmd(13, kRcaArg);
  EXPECT_EQ(status_query.response.value & status::kEraseReset, 0u) << "CMD13 does not end the sequence";
  EXPECT_EQ(h.cmd(36, 0).response.value & status::kAnyError, 0u);
  const CommandOutcome read = h.cmd(17, 0);
  EXPECT_NE(read.response.value & status::kEraseReset, 0u) << describe_status(read.response.value);
  std::vector<std::uint8_t> block(kSectorSize);
  ASSERT_TRUE(h.card().read_block(block.data(), block.size()).ok);
  EXPECT_EQ(h.status() & status::kEraseReset, 0u) << "ERASE_RESET is reported once";
  // The sequence is gone: CMD38 now has nothing to erase.
  const CommandOutcome erase = h.cmd(38, 0);
  EXPECT_NE(erase.response.value & status::kEraseSeqError, 0u);
  EXPECT_EQ(h.read_sectors(0, 1), data);
}

}  // namespace
}  // namespace emmcsim::mmc::testing
