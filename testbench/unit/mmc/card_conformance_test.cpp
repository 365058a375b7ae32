// Conformance of mmc::Card to the eMMC state machine, generated from the command table: every
// command index 0..63 in every card state, each pair its own test (CMD17_in_tran …). A command
// the table does not list, or lists without the state, must be illegal (no response, nothing
// changes, ILLEGAL_COMMAND in the next response). An accepted one must answer as an independent
// oracle — written here from JESD84-B51 §6.14 (state transitions) and the command tables of
// §6.10.4, not from the table — says: response type, the state right after the command, the
// state once its data phase and busy time are over, and the error bits of the response.
// Further suites: commands addressed to another RCA, a locked card, the RPMB partition selected.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "card_harness.hpp"
#include "emmcsim/mmc/command_table.hpp"
#include "emmcsim/mmc/protocol.hpp"
#include "emmcsim/mmc/registers.hpp"
#include "emmcsim/rpmb/frame.hpp"

namespace emmcsim::mmc::testing {
namespace {

using S = CardState;
using R = ResponseType;

constexpr std::uint32_t kRcaArg = rca_arg(kTestRca);
constexpr std::uint32_t kOtherRcaArg = rca_arg(kTestRca + 1);

// The conformance card: the default 8 GiB part (sector addressing, boot partitions) whose OCR
// reports power-up done at the first CMD1, holding busy until the test calls finish_busy().
DeviceConfig conformance_config() {
  DeviceConfig c = default_device_config();
  c.ocr_busy_polls = 0;
  return c;
}

std::string pair_name(unsigned index, CardState s) {
  return "CMD" + std::to_string(index) + "_in_" + state_test_name(s);
}

bool is_addressed_state(CardState s) {
  // JESD84-B51: the states in which a device has an RCA and answers addressed commands.
  return s == S::stby || s == S::tran || s == S::data || s == S::btst || s == S::rcv || s == S::prg || s == S::dis;
}

// ---------------------------------------------------------------------------------------------
// The oracle (JESD84-B51 Table 61, device state transitions, and the command tables)

struct Expectation {
  bool legal = false;
  R response = R::none;
  CardState next = S::idle;     // right after the command: data phase open, or busy
  CardState settled = S::idle;  // once a bounded data phase is done and busy has ended
  std::uint32_t errors = 0;     // error bits the response itself carries
};

Expectation accept(R response, CardState next, CardState settled, std::uint32_t errors = 0) {
  return {true, response, next, settled, errors};
}

// The argument a host sends: RCA 1 in [31:16] for addressed commands, sector 0 for data
// addresses (0 in byte and sector mode alike), a legal value otherwise.
std::uint32_t canonical_arg(unsigned index, CardState s) {
  switch (index) {
    case 1: return kHostOcr;
    case 3:
    case 7:
    case 9:
    case 10:
    case 12:
    case 13:
    case 15:
    case 39:
    case 55: return kRcaArg;
    case 4: return 0x04040000;                                               // DSR in [31:16]
    case 5: return s == S::slp ? kRcaArg : (kRcaArg | sleep_awake::kSleep);  // awake, else sleep
    case 6: return switch_arg(SwitchAccess::write_byte, ext_csd::kEraseGroupDef, 1);
    case 16: return kSectorSize;
    case 23: return 1;
    default: return 0;
  }
}

// What JESD84-B51 requires of this device (no command queue enabled, legacy timing) for
// CMD`index` with canonical_arg() in state `s`.
Expectation jedec_expectation(unsigned index, CardState s) {
  switch (index) {
    case 0:  // GO_IDLE_STATE: every state but inactive (only a power cycle leaves it)
      if (s != S::inactive) return accept(R::none, S::idle, S::idle);
      break;
    case 1:  // SEND_OP_COND: idle (and pre-idle, where the device waits for CMD1 or boot)
      if (s == S::idle || s == S::pre_idle) return accept(R::r3, S::ready, S::ready);
      break;
    case 2:
      if (s == S::ready) return accept(R::r2, S::ident, S::ident);
      break;
    case 3:
      if (s == S::ident) return accept(R::r1, S::stby, S::stby);
      break;
    case 4:  // SET_DSR: broadcast, no response
      if (s == S::stby) return accept(R::none, S::stby, S::stby);
      break;
    case 5:  // SLEEP_AWAKE: stby -> slp (sleep), slp -> stby (awake), R1b
      if (s == S::stby) return accept(R::r1b, S::slp, S::slp);
      if (s == S::slp) return accept(R::r1b, S::stby, S::stby);
      break;
    case 6:  // SWITCH: tran -> prg -> tran
      if (s == S::tran) return accept(R::r1b, S::prg, S::tran);
      break;
    case 7:  // addressed: stby -> tran (R1), dis -> prg (R1b); "-" in tran, data and prg
      if (s == S::stby) return accept(R::r1, S::tran, S::tran);
      if (s == S::dis) return accept(R::r1b, S::prg, S::tran);
      break;
    case 8:
      if (s == S::tran) return accept(R::r1, S::data, S::tran);
      break;
    case 9:
    case 10:
      if (s == S::stby) return accept(R::r2, S::stby, S::stby);
      break;
    case 12:  // STOP_TRANSMISSION: R1 ending a read, R1b ending a write
      if (s == S::data) return accept(R::r1, S::tran, S::tran);
      if (s == S::rcv) return accept(R::r1b, S::prg, S::tran);
      break;
    case 13:  // SEND_STATUS changes nothing; prg and dis end with the busy time
      if (s == S::prg) return accept(R::r1, s, S::tran);
      if (s == S::dis) return accept(R::r1, s, S::stby);
      if (is_addressed_state(s)) return accept(R::r1, s, s);
      break;
    case 14:  // BUS_TEST_R: btst -> tran; the model shows its data phase as data
      if (s == S::btst) return accept(R::r1, S::data, S::tran);
      break;
    case 15:
      if (is_addressed_state(s)) return accept(R::none, S::inactive, S::inactive);
      break;
    case 16:
    case 23:
    case 35:
      if (s == S::tran) return accept(R::r1, S::tran, S::tran);
      break;
    case 17:
    case 30:
    case 31:
      if (s == S::tran) return accept(R::r1, S::data, S::tran);
      break;
    case 18:  // open-ended: data until CMD12
      if (s == S::tran) return accept(R::r1, S::data, S::data);
      break;
    case 19:  // BUS_TEST_W: tran -> btst; the device stays in btst after the block
      if (s == S::tran) return accept(R::r1, S::btst, S::btst);
      break;
    case 21:  // SEND_TUNING_BLOCK exists only in HS200 (not selected here)
      break;
    case 24:  // tran -> rcv -> prg -> tran
      if (s == S::tran) return accept(R::r1, S::rcv, S::tran);
      break;
    case 25:  // open-ended: rcv until CMD12
      if (s == S::tran) return accept(R::r1, S::rcv, S::rcv);
      break;
    case 28:
    case 29:
      if (s == S::tran) return accept(R::r1b, S::prg, S::tran);
      break;
    case 36:  // ERASE_GROUP_END without ERASE_GROUP_START
      if (s == S::tran) return accept(R::r1, S::tran, S::tran, status::kEraseSeqError);
      break;
    case 38:  // ERASE without a group selected: not executed, no programming
      if (s == S::tran) return accept(R::r1b, S::tran, S::tran, status::kEraseSeqError);
      break;
    case 42:
      // LOCK_UNLOCK: a write-type data command. JEDEC's response column says R1b; the busy
      // follows the data block, and the model reports it with that block (BlockOutcome::busy),
      // so the command's own response is R1 (checked in the CMD42 tests).
      if (s == S::tran) return accept(R::r1, S::rcv, S::tran);
      break;
    default: break;
  }
  return {};
}

// The response column of JESD84-B51's command tables for the commands this device implements.
std::set<R> jedec_response_column(unsigned index) {
  switch (index) {
    case 0:
    case 4:
    case 15: return {R::none};
    case 1: return {R::r3};
    case 2:
    case 9:
    case 10: return {R::r2};
    case 5:
    case 6:
    case 28:
    case 29:
    case 38: return {R::r1b};
    case 7:
    case 12: return {R::r1, R::r1b};
    case 42: return {R::r1, R::r1b};  // see jedec_expectation()
    case 3:
    case 8:
    case 13:
    case 14:
    case 16:
    case 17:
    case 18:
    case 19:
    case 21:
    case 23:
    case 24:
    case 25:
    case 30:
    case 31:
    case 35:
    case 36: return {R::r1};
    default: return {};
  }
}

// JESD84-B51 command classes (Table 39, eMMC numbering: 0 basic, 2 block read, 4 block write,
// 5 erase, 6 write protection, 7 lock). CMD16 and CMD23 belong to several; the table may name any.
std::set<unsigned> jedec_classes(unsigned index) {
  switch (index) {
    case 0:
    case 1:
    case 2:
    case 3:
    case 4:
    case 5:
    case 6:
    case 7:
    case 8:
    case 9:
    case 10:
    case 12:
    case 13:
    case 14:
    case 15:
    case 19: return {0};
    case 16: return {2, 4, 7};
    case 17:
    case 18:
    case 21: return {2};
    case 23: return {2, 4};
    case 24:
    case 25: return {4};
    case 28:
    case 29:
    case 30:
    case 31: return {6};
    case 35:
    case 36:
    case 38: return {5};
    case 42: return {7};
    default: return {};
  }
}

// Commands whose argument carries an RCA (type "ac" with [31:16] RCA) that the device must
// ignore when the RCA is not its own.
const std::set<unsigned> kAddressedCommands = {5, 7, 9, 10, 13, 15};
// A locked device executes the basic class (0), the lock class (7) and CMD16 (JESD84-B51
// §6.6.35: "reset, initialize, select, query for status, etc., but not access data").
bool allowed_when_locked(unsigned index) {
  const auto classes = jedec_classes(index);
  return index == 16 || classes.count(0) != 0 || classes.count(7) != 0;
}

// ---------------------------------------------------------------------------------------------
// Every (command, state) pair

struct PairTestName {
  std::string operator()(const ::testing::TestParamInfo<std::tuple<unsigned, CardState>>& param_info) const {
    return pair_name(std::get<0>(param_info.param), std::get<1>(param_info.param));
  }
};
struct CommandTestName {
  std::string operator()(const ::testing::TestParamInfo<unsigned>& param_info) const {
    return "CMD" + std::to_string(param_info.param);
  }
};

class CardConformanceTable : public ::testing::TestWithParam<std::tuple<unsigned, CardState>> {};

TEST_P(CardConformanceTable, CommandInState) {
  const unsigned index = std::get<0>(GetParam());
  const CardState s = std::get<1>(GetParam());
  const DeviceConfig config = conformance_config();
  CardHarness h(config, held_busy_options());
  Card& card = h.card();
  ASSERT_NO_FATAL_FAILURE(drive_to_state(h, s));
  ASSERT_EQ(card.pending_status() & status::kClearedOnRead, 0u) << describe_status(card.pending_status());
  const std::uint16_t rca_before = card.rca();

  const CommandSpec* spec = find_command(static_cast<std::uint8_t>(index));
  const bool table_accepts = spec != nullptr && spec->accepted_in.contains(s);
  const Expectation expected = jedec_expectation(index, s);
  if (!table_accepts) {
    // The table must not reject what JEDEC requires of this device.
    EXPECT_FALSE(expected.legal) << "the command table rejects CMD" << index << " in " << state_test_name(s)
                                 << ", which JESD84-B51 allows";
  }

  const std::uint32_t arg = canonical_arg(index, s);
  const CommandOutcome o = h.cmd(static_cast<std::uint8_t>(index), arg);

  if (!expected.legal) {
    EXPECT_TRUE(o.illegal);
    EXPECT_EQ(o.response.type, R::none);
    EXPECT_EQ(o.data.direction, DataDirection::none);
    EXPECT_FALSE(o.busy);
    EXPECT_EQ(card.state(), s);
    EXPECT_EQ(card.rca(), rca_before);
    if (is_addressed_state(s)) {
      // CMD13 is legal here: ILLEGAL_COMMAND in its response, once.
      const CommandOutcome first = h.cmd(13, kRcaArg);
      ASSERT_EQ(first.response.type, R::r1);
      EXPECT_NE(first.response.value & status::kIllegalCommand, 0u) << describe_status(first.response.value);
      EXPECT_EQ(status::current_state(first.response.value), static_cast<unsigned>(s));
      const CommandOutcome second = h.cmd(13, kRcaArg);
      EXPECT_EQ(second.response.value & status::kIllegalCommand, 0u) << describe_status(second.response.value);
      EXPECT_EQ(card.state(), s);
    } else {
      EXPECT_NE(card.pending_status() & status::kIllegalCommand, 0u);
    }
    // The open data phase is untouched.
    if (s == S::data) {
      std::vector<std::uint8_t> block(kSectorSize);
      EXPECT_TRUE(card.read_block(block.data(), block.size()).ok);
    } else if (s == S::rcv) {
      const std::vector<std::uint8_t> block(kSectorSize, 0x11);
      EXPECT_TRUE(card.write_block(block.data(), block.size()).ok);
    }
    return;
  }

  ASSERT_TRUE(table_accepts) << "JESD84-B51 allows CMD" << index << " in " << state_test_name(s);
  ASSERT_FALSE(o.illegal) << "CMD" << index << " was refused in " << state_test_name(s);
  EXPECT_EQ(o.response.type, expected.response);
  if (o.response.type == R::r1 || o.response.type == R::r1b) {
    EXPECT_EQ(status::current_state(o.response.value), static_cast<unsigned>(s))
        << "R1 CURRENT_STATE is the state in which the command arrived";
    EXPECT_EQ(o.response.value & (status::kAnyError | status::kEraseReset), expected.errors)
        << describe_status(o.response.value);
  }
  if (o.response.type == R::r2) {
    const auto reg = index == 9 ? build_csd(config) : build_cid(config);
    EXPECT_EQ(o.response.r2, reg);
  }
  if (o.response.type == R::r3) {
    EXPECT_NE(o.response.value & ocr::kPowerUpDone, 0u);
  }
  EXPECT_EQ(card.state(), expected.next) << "right after CMD" << index;
  if (index == 0) {
    EXPECT_EQ(card.rca(), 0u);
  }
  if (index == 3) {
    EXPECT_EQ(card.rca(), kTestRca);
  }

  // Finish a bounded data phase, then the busy time.
  if (o.data.blocks > 0) {
    std::vector<std::uint8_t> block(o.data.block_size, 0);
    for (std::uint32_t i = 0; i < o.data.blocks; ++i) {
      const BlockOutcome b = o.data.direction == DataDirection::to_host ? card.read_block(block.data(), block.size())
                                                                        : card.write_block(block.data(), block.size());
      EXPECT_TRUE(b.ok) << "block " << i;
    }
  }
  card.finish_busy();
  EXPECT_EQ(card.state(), expected.settled) << "after the data phase and busy of CMD" << index;
  if (is_addressed_state(card.state())) {
    const CommandOutcome status = h.cmd(13, kRcaArg);
    EXPECT_EQ(status.response.value & status::kIllegalCommand, 0u) << describe_status(status.response.value);
  }
}

std::vector<std::tuple<unsigned, CardState>> all_pairs() {
  std::vector<std::tuple<unsigned, CardState>> pairs;
  for (unsigned index = 0; index < 64; ++index)
    for (CardState s : kAllCardStates) pairs.emplace_back(index, s);
  return pairs;
}

INSTANTIATE_TEST_SUITE_P(CardConformance, CardConformanceTable, ::testing::ValuesIn(all_pairs()), PairTestName());

// ---------------------------------------------------------------------------------------------
// The table's rows against JESD84-B51

TEST(CardConformanceRows, IndicesAreUniqueAndInOrder) {
  int previous = -1;
  for (const CommandSpec& spec : command_table()) {
    EXPECT_GT(static_cast<int>(spec.index), previous) << spec.name;
    previous = spec.index;
    EXPECT_EQ(find_command(spec.index), &spec);
  }
}

TEST(CardConformanceRows, ResponseFieldIsJedecs) {
  for (const CommandSpec& spec : command_table()) {
    const auto column = jedec_response_column(spec.index);
    EXPECT_FALSE(column.empty()) << "CMD" << unsigned{spec.index} << " is not an eMMC command this device should have";
    EXPECT_EQ(column.count(spec.response), 1u) << "CMD" << unsigned{spec.index} << " " << spec.name;
  }
}

TEST(CardConformanceRows, CommandClassIsJedecs) {
  for (const CommandSpec& spec : command_table()) {
    EXPECT_EQ(jedec_classes(spec.index).count(spec.command_class), 1u)
        << "CMD" << unsigned{spec.index} << " " << spec.name << " class " << unsigned{spec.command_class};
  }
}

TEST(CardConformanceRows, FlagsAgreeWithJedec) {
  for (const CommandSpec& spec : command_table()) {
    EXPECT_EQ(spec.address == CommandAddress::rca, kAddressedCommands.count(spec.index) != 0)
        << "CMD" << unsigned{spec.index};
    EXPECT_EQ(spec.has(kAllowedWhenLocked), allowed_when_locked(spec.index)) << "CMD" << unsigned{spec.index};
    EXPECT_EQ(spec.has(kStatusQuery), spec.index == 13) << "CMD" << unsigned{spec.index};
    const bool erase_sequence = spec.index == 35 || spec.index == 36 || spec.index == 38;
    EXPECT_EQ(spec.has(kEraseSequence), erase_sequence) << "CMD" << unsigned{spec.index};
  }
}

// Every command JEDEC makes legal somewhere (in this device's profile) is in the table.
TEST(CardConformanceRows, EveryRequiredCommandIsImplemented) {
  for (unsigned index = 0; index < 64; ++index) {
    bool legal_somewhere = false;
    for (CardState s : kAllCardStates) legal_somewhere = legal_somewhere || jedec_expectation(index, s).legal;
    if (legal_somewhere) {
      EXPECT_NE(find_command(static_cast<std::uint8_t>(index)), nullptr) << "CMD" << index;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Commands addressed to another RCA

class CardConformanceOtherRca : public ::testing::TestWithParam<std::tuple<unsigned, CardState>> {};

TEST_P(CardConformanceOtherRca, IgnoredExceptDeselect) {
  const unsigned index = std::get<0>(GetParam());
  const CardState s = std::get<1>(GetParam());
  CardHarness h(conformance_config(), held_busy_options());
  Card& card = h.card();
  ASSERT_NO_FATAL_FAILURE(drive_to_state(h, s));

  std::uint32_t arg = kOtherRcaArg;
  if (index == 5 && s != S::slp) arg |= sleep_awake::kSleep;
  const CommandOutcome o = h.cmd(static_cast<std::uint8_t>(index), arg);
  EXPECT_FALSE(o.illegal);
  EXPECT_EQ(o.response.type, R::none);
  EXPECT_EQ(o.data.direction, DataDirection::none);
  EXPECT_EQ(card.pending_status() & status::kClearedOnRead, 0u) << describe_status(card.pending_status());

  // CMD7 with another card's RCA deselects this one (JESD84-B51 Table 61, "card is not
  // addressed"): tran and data -> stby, prg -> dis; stby and dis stay.
  CardState expected = s;
  if (index == 7) {
    if (s == S::tran || s == S::data) expected = S::stby;
    if (s == S::prg) expected = S::dis;
  }
  EXPECT_EQ(card.state(), expected);
  EXPECT_EQ(card.rca(), kTestRca);
  if (is_addressed_state(card.state())) {
    const CommandOutcome status = h.cmd(13, kRcaArg);
    ASSERT_EQ(status.response.type, R::r1);
    EXPECT_EQ(status.response.value & status::kClearedOnRead, 0u) << describe_status(status.response.value);
    EXPECT_EQ(status::current_state(status.response.value), static_cast<unsigned>(expected));
  }
}

std::vector<std::tuple<unsigned, CardState>> addressed_pairs() {
  std::vector<std::tuple<unsigned, CardState>> pairs;
  for (unsigned index : kAddressedCommands) {
    const CommandSpec* spec = find_command(static_cast<std::uint8_t>(index));
    for (CardState s : kAllCardStates) {
      const bool legal = jedec_expectation(index, s).legal ||
                         (index == 7 && (s == S::tran || s == S::data || s == S::prg));  // deselect
      if (legal || (spec != nullptr && spec->accepted_in.contains(s))) pairs.emplace_back(index, s);
    }
  }
  return pairs;
}

INSTANTIATE_TEST_SUITE_P(CardConformance, CardConformanceOtherRca, ::testing::ValuesIn(addressed_pairs()),
                         PairTestName());

// CMD7 with the own RCA where the card is already selected is illegal; with RCA 0 it
// deselects like any other address.
TEST(CardConformanceSelect, DeselectWithRcaZero) {
  CardHarness h(conformance_config(), held_busy_options());
  ASSERT_NO_FATAL_FAILURE(drive_to_state(h, S::data));
  const CommandOutcome o = h.cmd(7, 0);
  EXPECT_FALSE(o.illegal);
  EXPECT_EQ(o.response.type, R::none);
  EXPECT_EQ(h.card().state(), S::stby);
  std::vector<std::uint8_t> block(kSectorSize);
  EXPECT_FALSE(h.card().read_block(block.data(), block.size()).ok) << "the read ended with the deselect";
}

// ---------------------------------------------------------------------------------------------
// A locked card (CMD42 password set and lock)

void lock_with_password(CardHarness& h) {
  const std::vector<std::uint8_t> block = {lock_unlock::kSetPassword | lock_unlock::kLock, 4, 'p', 'a', 's', 's'};
  ASSERT_EQ(h.cmd(16, static_cast<std::uint32_t>(block.size())).response.value & status::kAnyError, 0u);
  const CommandOutcome o = h.cmd(42);
  ASSERT_EQ(o.data.direction, DataDirection::to_card);
  ASSERT_EQ(o.data.block_size, block.size());
  ASSERT_TRUE(h.card().write_block(block.data(), block.size()).ok);
  h.card().finish_busy();
  ASSERT_EQ(h.cmd(16, kSectorSize).response.value & status::kAnyError, 0u);
  const std::uint32_t st = h.status();
  ASSERT_NE(st & status::kCardIsLocked, 0u) << describe_status(st);
  ASSERT_EQ(st & status::kAnyError, 0u) << describe_status(st);
}

class CardConformanceLocked : public ::testing::TestWithParam<unsigned> {};

TEST_P(CardConformanceLocked, OnlyBasicAndLockClassesInTran) {
  const unsigned index = GetParam();
  CardHarness h(conformance_config(), held_busy_options());
  ASSERT_NO_FATAL_FAILURE(drive_to_state(h, S::tran));
  ASSERT_NO_FATAL_FAILURE(lock_with_password(h));
  const Expectation expected = jedec_expectation(index, S::tran);
  const CommandOutcome o = h.cmd(static_cast<std::uint8_t>(index), canonical_arg(index, S::tran));
  if (allowed_when_locked(index)) {
    EXPECT_FALSE(o.illegal);
    EXPECT_EQ(o.response.type, expected.response);
    EXPECT_EQ(h.card().state(), expected.next);
  } else {
    EXPECT_TRUE(o.illegal);
    EXPECT_EQ(o.response.type, R::none);
    EXPECT_EQ(o.data.direction, DataDirection::none);
    EXPECT_EQ(h.card().state(), S::tran);
    const std::uint32_t st = h.status();
    EXPECT_NE(st & status::kIllegalCommand, 0u) << describe_status(st);
    EXPECT_NE(st & status::kCardIsLocked, 0u) << describe_status(st);
  }
}

std::vector<unsigned> commands_legal_in_tran() {
  std::vector<unsigned> commands;
  for (unsigned index = 0; index < 64; ++index)
    if (jedec_expectation(index, S::tran).legal) commands.push_back(index);
  return commands;
}

INSTANTIATE_TEST_SUITE_P(CardConformance, CardConformanceLocked, ::testing::ValuesIn(commands_legal_in_tran()),
                         CommandTestName());

// The data of a locked card stays out of reach through every data command, and comes back
// once unlocked.
TEST(CardConformanceLockedData, UnlockRestoresAccess) {
  CardHarness h(conformance_config());
  ASSERT_NO_FATAL_FAILURE(drive_to_state(h, S::tran));
  std::vector<std::uint8_t> data(kSectorSize, 0x3C);
  ASSERT_TRUE(h.write_sectors(0, data));
  ASSERT_NO_FATAL_FAILURE(lock_with_password(h));
  EXPECT_TRUE(h.cmd(17, 0).illegal);
  EXPECT_TRUE(h.cmd(23, 1).illegal);
  EXPECT_TRUE(h.cmd(18, 0).illegal);
  EXPECT_TRUE(h.cmd(24, 0).illegal);
  EXPECT_TRUE(h.cmd(35, 0).illegal);
  const std::vector<std::uint8_t> unlock = {0x00, 4, 'p', 'a', 's', 's'};  // no flags: unlock
  h.cmd(16, static_cast<std::uint32_t>(unlock.size()));
  ASSERT_EQ(h.cmd(42).data.direction, DataDirection::to_card);
  ASSERT_TRUE(h.card().write_block(unlock.data(), unlock.size()).ok);
  h.cmd(16, kSectorSize);
  const std::uint32_t st = h.status();
  EXPECT_EQ(st & status::kCardIsLocked, 0u) << describe_status(st);
  EXPECT_EQ(h.read_sectors(0, 1), data);
}

// ---------------------------------------------------------------------------------------------
// The RPMB partition selected (PARTITION_CONFIG access 3)

class CardConformanceRpmb : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(drive_to_state(h_, S::tran));
    const CommandOutcome o =
        h_.switch_byte(ext_csd::kPartitionConfig, ext_csd::partition_config::value(Partition::rpmb));
    ASSERT_FALSE(o.illegal);
    ASSERT_EQ(h_.card().current_partition(), Partition::rpmb);
    ASSERT_EQ(h_.status() & status::kAnyError, 0u);
  }
  CardHarness h_{conformance_config()};
};

TEST_F(CardConformanceRpmb, SingleBlockCommandsAreIllegal) {
  for (std::uint8_t index : {17, 24}) {
    SCOPED_TRACE("CMD" + std::to_string(index));
    const CommandOutcome o = h_.cmd(index, 0);
    EXPECT_TRUE(o.illegal);
    EXPECT_EQ(o.response.type, R::none);
    EXPECT_EQ(h_.card().state(), S::tran);
    const std::uint32_t st = h_.status();
    EXPECT_NE(st & status::kIllegalCommand, 0u) << describe_status(st);
  }
}

TEST_F(CardConformanceRpmb, OpenEndedMultipleBlockCommandsAreIllegal) {
  for (std::uint8_t index : {18, 25}) {
    SCOPED_TRACE("CMD" + std::to_string(index));
    const CommandOutcome o = h_.cmd(index, 0);
    EXPECT_TRUE(o.illegal);
    EXPECT_EQ(h_.card().state(), S::tran);
    const std::uint32_t st = h_.status();
    EXPECT_NE(st & status::kIllegalCommand, 0u) << describe_status(st);
  }
}

TEST_F(CardConformanceRpmb, BoundedMultipleBlockCommandsCarryFrames) {
  // Read counter request (CMD23 1 + CMD25), then its response (CMD23 1 + CMD18).
  rpmb::Frame request;
  request.set_request(rpmb::RequestType::read_counter);
  ASSERT_EQ(h_.cmd(23, 1).response.value & status::kAnyError, 0u);
  const CommandOutcome write = h_.cmd(25, 0);
  ASSERT_FALSE(write.illegal);
  EXPECT_EQ(write.response.type, R::r1);
  EXPECT_EQ(write.data.direction, DataDirection::to_card);
  EXPECT_EQ(write.data.blocks, 1u);
  ASSERT_TRUE(h_.card().write_block(request.bytes(), rpmb::kFrameSize).ok);
  h_.card().finish_busy();
  EXPECT_EQ(h_.card().state(), S::tran);

  ASSERT_EQ(h_.cmd(23, 1).response.value & status::kAnyError, 0u);
  const CommandOutcome read = h_.cmd(18, 0);
  ASSERT_FALSE(read.illegal);
  EXPECT_EQ(read.data.direction, DataDirection::to_host);
  EXPECT_EQ(read.data.blocks, 1u);
  rpmb::Frame response;
  ASSERT_TRUE(h_.card().read_block(response.bytes(), rpmb::kFrameSize).ok);
  EXPECT_EQ(response.type(), static_cast<std::uint16_t>(rpmb::ResponseType::read_counter));
  EXPECT_EQ(response.result(), static_cast<std::uint16_t>(rpmb::ResultCode::key_not_programmed));
  EXPECT_EQ(h_.card().state(), S::tran);

  // Back to the user area: single-block commands work again.
  h_.switch_byte(ext_csd::kPartitionConfig, ext_csd::partition_config::value(Partition::user));
  EXPECT_EQ(h_.card().current_partition(), Partition::user);
  EXPECT_FALSE(h_.cmd(17, 0).illegal);
}

}  // namespace
}  // namespace emmcsim::mmc::testing
