// mmc::Card error paths (JESD84-B51 §6.13 card status): OUT_OF_RANGE, ADDRESS_MISALIGN,
// BLOCK_LEN_ERROR, erase sequence errors, write protection (temporary, power-on, permanent, boot
// areas), CMD6 SWITCH_ERROR and CMD42 lock/unlock. Every test checks what a host sees: the
// response bits, the state, and the data read back.
#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "card_harness.hpp"
#include "emmcsim/mmc/protocol.hpp"
#include "emmcsim/mmc/registers.hpp"

namespace emmcsim::mmc::testing {
namespace {

using S = CardState;
using R = ResponseType;

constexpr std::uint32_t kRcaArg = std::uint32_t{kTestRca} << 16;

DeviceConfig sector_config() {  // 8 GiB, sector addressing
  DeviceConfig c = default_device_config();
  c.ocr_busy_polls = 0;
  return c;
}

DeviceConfig byte_config() {  // 64 MiB, byte addressing, REL_WR_SEC_C 8
  DeviceConfig c = small_config();
  c.ocr_busy_polls = 0;
  return c;
}

std::vector<std::uint8_t> pattern(std::uint8_t seed, std::size_t sectors = 1) {
  std::vector<std::uint8_t> data(sectors * kSectorSize);
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<std::uint8_t>(seed * 31 + i * 7 + i / 512);
  return data;
}

const std::vector<std::uint8_t> kZeroSector(kSectorSize, 0);

// The bit is carried by exactly one of two consecutive responses (JEDEC's "E X" bits may be
// reported with the command or in the next response, never in both, never dropped).
void expect_exactly_once(std::uint32_t first, std::uint32_t second, std::uint32_t bit) {
  EXPECT_EQ(((first & bit) != 0) + ((second & bit) != 0), 1)
      << "first: " << describe_status(first) << "; second: " << describe_status(second);
}

class CardErrorsTest : public ::testing::Test {
 protected:
  void start(const DeviceConfig& config, CardOptions options = {}) {
    h_ = std::make_unique<CardHarness>(config, options);
    ASSERT_NO_FATAL_FAILURE(drive_to_state(*h_, S::tran));
  }
  CardHarness& h() { return *h_; }
  Card& card() { return h_->card(); }
  std::uint64_t user_sectors() const { return h_->card().config().user_capacity / kSectorSize; }
  std::uint32_t error_bits(const CommandOutcome& o) const { return o.response.value & status::kAnyError; }
  std::uint32_t status() { return h_->status(); }
  // CMD6 write byte, then the busy time; returns the CMD6 outcome.
  CommandOutcome switch_byte(std::uint8_t index, std::uint8_t value) {
    CommandOutcome o = h_->switch_byte(index, value);
    card().finish_busy();
    return o;
  }
  // CMD24 of one sector; true when the data phase opened and the block was accepted.
  bool write_one(std::uint64_t sector, const std::vector<std::uint8_t>& data, CommandOutcome* out = nullptr) {
    const CommandOutcome o = h_->cmd(24, h_->address(sector));
    if (out != nullptr) *out = o;
    if (o.data.direction != DataDirection::to_card) return false;
    const bool ok = card().write_block(data.data(), kSectorSize).ok;
    card().finish_busy();
    return ok;
  }
  std::vector<std::uint8_t> read(std::uint64_t sector, std::uint16_t count = 1) {
    return h_->read_sectors(sector, count);
  }
  // CMD16 to the block's size, CMD42 with the block, CMD13 (its status into *status_after),
  // CMD16 back to 512.
  BlockOutcome lock_unlock(const std::vector<std::uint8_t>& block, std::uint32_t* status_after = nullptr) {
    h_->cmd(16, static_cast<std::uint32_t>(block.size()));
    const CommandOutcome o = h_->cmd(42);
    BlockOutcome b;
    if (o.data.direction == DataDirection::to_card && o.data.block_size == block.size())
      b = card().write_block(block.data(), block.size());
    card().finish_busy();
    const std::uint32_t st = h_->status();
    if (status_after != nullptr) *status_after = st;
    h_->cmd(16, kSectorSize);
    return b;
  }

  std::unique_ptr<CardHarness> h_;
};

// ---------------------------------------------------------------------------------------------
// OUT_OF_RANGE

class CardErrorsOutOfRange : public CardErrorsTest {
 protected:
  void SetUp() override { ASSERT_NO_FATAL_FAILURE(start(sector_config())); }
};

TEST_F(CardErrorsOutOfRange, StartBeyondTheEnd) {
  const std::uint64_t end = user_sectors();
  for (std::uint8_t index : {17, 24}) {
    const CommandOutcome o = h().cmd(index, h().address(end));
    EXPECT_NE(o.response.value & status::kOutOfRange, 0u) << "CMD" << unsigned{index};
    EXPECT_EQ(o.data.direction, DataDirection::none);
    EXPECT_EQ(card().state(), S::tran);
  }
  // The last sector itself is in range.
  const CommandOutcome last = h().cmd(17, h().address(end - 1));
  EXPECT_EQ(error_bits(last), 0u);
  EXPECT_EQ(last.data.direction, DataDirection::to_host);
}

TEST_F(CardErrorsOutOfRange, CountedTransferCrossingTheEnd) {
  const std::uint64_t end = user_sectors();
  for (std::uint8_t index : {18, 25}) {
    h().cmd(23, 4);
    const CommandOutcome o = h().cmd(index, h().address(end - 2));
    EXPECT_NE(o.response.value & status::kOutOfRange, 0u) << "CMD" << unsigned{index};
    EXPECT_EQ(o.data.direction, DataDirection::none);
    EXPECT_EQ(card().state(), S::tran);
  }
  // Ending exactly at the end is fine.
  EXPECT_EQ(read(end - 2, 2).size(), 2 * kSectorSize);
  EXPECT_TRUE(h().write_sectors(end - 2, pattern(1, 2)));
  EXPECT_EQ(read(end - 2, 2), pattern(1, 2));
}

TEST_F(CardErrorsOutOfRange, OpenEndedReadPastTheEndReportedWithCmd12) {
  const std::uint64_t end = user_sectors();
  const CommandOutcome o = h().cmd(18, h().address(end - 2));
  ASSERT_EQ(error_bits(o), 0u);
  ASSERT_EQ(o.data.blocks, 0u) << "open-ended";
  std::vector<std::uint8_t> block(kSectorSize);
  EXPECT_TRUE(card().read_block(block.data(), block.size()).ok);
  EXPECT_TRUE(card().read_block(block.data(), block.size()).ok);
  EXPECT_FALSE(card().read_block(block.data(), block.size()).ok) << "no sector after the last";
  const CommandOutcome stop = h().cmd(12, 0);
  EXPECT_NE(stop.response.value & status::kOutOfRange, 0u) << describe_status(stop.response.value);
  EXPECT_EQ(card().state(), S::tran);
  EXPECT_EQ(status() & status::kOutOfRange, 0u);
}

TEST_F(CardErrorsOutOfRange, OpenEndedWritePastTheEndReportedWithCmd12) {
  const std::uint64_t end = user_sectors();
  const CommandOutcome o = h().cmd(25, h().address(end - 1));
  ASSERT_EQ(error_bits(o), 0u);
  const auto data = pattern(2, 2);
  EXPECT_TRUE(card().write_block(data.data(), kSectorSize).ok);
  EXPECT_FALSE(card().write_block(data.data() + kSectorSize, kSectorSize).ok);
  const CommandOutcome stop = h().cmd(12, 0);
  EXPECT_NE(stop.response.value & status::kOutOfRange, 0u) << describe_status(stop.response.value);
  card().finish_busy();
  EXPECT_EQ(card().state(), S::tran);
  EXPECT_EQ(read(end - 1), std::vector<std::uint8_t>(data.begin(), data.begin() + kSectorSize));
}

TEST_F(CardErrorsOutOfRange, BootPartitionHasItsOwnEnd) {
  switch_byte(ext_csd::kPartitionConfig, ext_csd::partition_config::value(Partition::boot1));
  ASSERT_EQ(card().current_partition(), Partition::boot1);
  const std::uint64_t boot_sectors = card().config().boot_partition_size / kSectorSize;
  EXPECT_NE(h().cmd(17, h().address(boot_sectors)).response.value & status::kOutOfRange, 0u);
  EXPECT_EQ(error_bits(h().cmd(17, h().address(boot_sectors - 1))), 0u);
}

// ---------------------------------------------------------------------------------------------
// ADDRESS_MISALIGN and BLOCK_LEN_ERROR

class CardErrorsByteMode : public CardErrorsTest {
 protected:
  void SetUp() override { ASSERT_NO_FATAL_FAILURE(start(byte_config())); }
};

TEST_F(CardErrorsByteMode, UnalignedByteAddress) {
  for (std::uint8_t index : {17, 18, 24, 25}) {
    for (std::uint32_t arg : {1u, 100u, 513u, 1023u}) {
      const CommandOutcome o = h().cmd(index, arg);
      EXPECT_NE(o.response.value & status::kAddressMisalign, 0u) << "CMD" << unsigned{index} << " arg " << arg;
      EXPECT_EQ(o.data.direction, DataDirection::none);
      EXPECT_EQ(card().state(), S::tran);
    }
  }
  const CommandOutcome aligned = h().cmd(17, 1024);
  EXPECT_EQ(error_bits(aligned), 0u);
}

TEST_F(CardErrorsByteMode, ReliableWriteMisalignedToRelWrSecC) {
  const unsigned unit = card().config().reliable_write_sectors;
  ASSERT_EQ(unit, 8u);
  ASSERT_EQ(h().read_ext_csd()[ext_csd::kRelWrSecC], unit);
  h().cmd(23, unit | set_block_count::kReliableWrite);
  const CommandOutcome o = h().cmd(25, h().address(4));
  EXPECT_NE(o.response.value & status::kAddressMisalign, 0u) << describe_status(o.response.value);
  EXPECT_EQ(o.data.direction, DataDirection::none);
  EXPECT_EQ(read(4, 8), std::vector<std::uint8_t>(8 * kSectorSize, 0));
  // Aligned, and a single reliable sector anywhere, work.
  EXPECT_TRUE(h().write_sectors(8, pattern(3, 8), true));
  EXPECT_EQ(read(8, 8), pattern(3, 8));
  EXPECT_TRUE(h().write_sectors(3, pattern(4, 1), true));
  EXPECT_EQ(read(3), pattern(4, 1));
}

TEST_F(CardErrorsByteMode, ReliableWriteCountNeitherOneNorRelWrSecC) {
  for (std::uint32_t count : {2u, 3u, 7u, 9u, 16u}) {
    h().cmd(23, count | set_block_count::kReliableWrite);
    const CommandOutcome o = h().cmd(25, h().address(0));
    EXPECT_NE(o.response.value & status::kBlockLenError, 0u) << count << " " << describe_status(o.response.value);
    EXPECT_EQ(o.data.direction, DataDirection::none);
  }
  // Without the reliable flag the same counts are plain writes.
  EXPECT_TRUE(h().write_sectors(0, pattern(5, 3)));
}

TEST_F(CardErrorsByteMode, SetBlockLengthOutOfRange) {
  for (std::uint32_t length : {0u, 513u, 1024u, 4096u}) {
    const CommandOutcome o = h().cmd(16, length);
    EXPECT_NE(o.response.value & status::kBlockLenError, 0u) << length;
  }
  // The block length did not change: reads are still 512 bytes.
  const CommandOutcome read_cmd = h().cmd(17, 0);
  EXPECT_EQ(error_bits(read_cmd), 0u);
  EXPECT_EQ(read_cmd.data.block_size, kSectorSize);
}

TEST_F(CardErrorsByteMode, BlockLengthOtherThan512RefusedForData) {
  ASSERT_EQ(error_bits(h().cmd(16, 256)), 0u);
  for (std::uint8_t index : {17, 24}) {
    const CommandOutcome o = h().cmd(index, 0);
    EXPECT_NE(o.response.value & status::kBlockLenError, 0u) << "CMD" << unsigned{index};
    EXPECT_EQ(o.data.direction, DataDirection::none);
  }
  ASSERT_EQ(error_bits(h().cmd(16, 512)), 0u);
  EXPECT_EQ(error_bits(h().cmd(17, 0)), 0u);
}

// In sector mode the block length is fixed at 512 for data: CMD16 only sizes CMD42's block.
TEST(CardErrorsSectorMode, BlockLengthDoesNotAffectData) {
  CardHarness h(sector_config());
  ASSERT_NO_FATAL_FAILURE(drive_to_state(h, S::tran));
  ASSERT_EQ(h.cmd(16, 16).response.value & status::kAnyError, 0u);
  const CommandOutcome o = h.cmd(17, 0);
  EXPECT_EQ(o.response.value & status::kAnyError, 0u);
  EXPECT_EQ(o.data.block_size, kSectorSize);
}

// ---------------------------------------------------------------------------------------------
// Erase sequence errors

class CardErrorsErase : public CardErrorsTest {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(start(sector_config()));
    ASSERT_TRUE(h().write_sectors(0, pattern(6, 4)));
  }
  void expect_data_intact() { EXPECT_EQ(read(0, 4), pattern(6, 4)); }
};

TEST_F(CardErrorsErase, EraseWithoutGroupSelection) {
  const CommandOutcome o = h().cmd(38, 0);
  EXPECT_EQ(o.response.type, R::r1b);
  EXPECT_NE(o.response.value & status::kEraseSeqError, 0u);
  EXPECT_EQ(card().state(), S::tran);
  expect_data_intact();
}

TEST_F(CardErrorsErase, EraseWithoutEnd) {
  ASSERT_EQ(error_bits(h().cmd(35, 0)), 0u);
  EXPECT_NE(h().cmd(38, 0).response.value & status::kEraseSeqError, 0u);
  expect_data_intact();
}

TEST_F(CardErrorsErase, EndWithoutStart) {
  const CommandOutcome o = h().cmd(36, 3);
  EXPECT_NE(o.response.value & status::kEraseSeqError, 0u);
  EXPECT_NE(h().cmd(38, 0).response.value & status::kEraseSeqError, 0u);
  expect_data_intact();
}

TEST_F(CardErrorsErase, UnknownEraseArgument) {
  for (std::uint32_t arg : {0x2u, 0x4u, 0x80000002u, 0x00008000u, 0x40000000u}) {
    h().cmd(35, 0);
    h().cmd(36, 3);
    const CommandOutcome o = h().cmd(38, arg);
    const std::uint32_t next = status();
    expect_exactly_once(o.response.value, next, status::kEraseParam);
    EXPECT_EQ(card().state(), S::tran);
  }
  expect_data_intact();
}

TEST_F(CardErrorsErase, StartAfterEnd) {
  h().cmd(35, 3);
  h().cmd(36, 0);
  const CommandOutcome o = h().cmd(38, 0);
  expect_exactly_once(o.response.value, status(), status::kEraseParam);
  expect_data_intact();
}

TEST_F(CardErrorsErase, GroupAddressBeyondTheEnd) {
  const CommandOutcome o = h().cmd(35, h().address(user_sectors()));
  EXPECT_NE(o.response.value & status::kOutOfRange, 0u);
  EXPECT_NE(h().cmd(38, 0).response.value & status::kEraseSeqError, 0u);
  expect_data_intact();
}

TEST_F(CardErrorsErase, ValidEraseStillWorks) {  // the control for the tests above
  h().cmd(35, 0);
  h().cmd(36, 3);
  const CommandOutcome o = h().cmd(38, 0);
  EXPECT_EQ(error_bits(o), 0u);
  EXPECT_EQ(status() & status::kAnyError, 0u);
  EXPECT_EQ(read(0, 4), std::vector<std::uint8_t>(4 * kSectorSize, 0));
}

TEST(CardErrorsSecureErase, RefusedWithoutSecureEraseSupport) {
  DeviceConfig config = sector_config();
  config.secure_erase_trim = false;
  CardHarness h(config);
  ASSERT_NO_FATAL_FAILURE(drive_to_state(h, S::tran));
  const auto data = pattern(7, 2);
  ASSERT_TRUE(h.write_sectors(0, data));
  EXPECT_EQ(h.read_ext_csd()[ext_csd::kSecFeatureSupport] & ext_csd::kSecFeatureSecureErase, 0);
  for (std::uint32_t arg : {0x80000000u, 0x80000001u}) {
    h.cmd(35, 0);
    h.cmd(36, 1);
    const CommandOutcome o = h.cmd(38, arg);
    expect_exactly_once(o.response.value, h.status(), status::kEraseParam);
  }
  EXPECT_EQ(h.read_sectors(0, 2), data);
}

TEST(CardErrorsSecureErase, AcceptedWithSecureEraseSupport) {
  CardHarness h(sector_config());
  ASSERT_NO_FATAL_FAILURE(drive_to_state(h, S::tran));
  ASSERT_TRUE(h.write_sectors(0, pattern(7, 2)));
  h.cmd(35, 0);
  h.cmd(36, 1);
  const CommandOutcome o = h.cmd(38, 0x80000000u);
  EXPECT_EQ(o.response.value & status::kAnyError, 0u);
  EXPECT_EQ(h.status() & status::kAnyError, 0u);
  EXPECT_EQ(h.read_sectors(0, 2), std::vector<std::uint8_t>(2 * kSectorSize, 0));
}

// ---------------------------------------------------------------------------------------------
// Write protection

// 1 MiB erase groups, write-protect groups of 2 erase groups (2 MiB = 4096 sectors), selected
// with ERASE_GROUP_DEF = 1 as Linux does; the group size is what EXT_CSD tells a host.
class CardErrorsWriteProtect : public CardErrorsTest {
 protected:
  static DeviceConfig wp_config() {
    DeviceConfig c = byte_config();
    c.erase_group_size = 1ULL << 20;
    c.write_protect_group_size = 2;
    return c;
  }
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(start(wp_config()));
    ASSERT_EQ(status::kAnyError & status(), 0u);
    switch_byte(ext_csd::kEraseGroupDef, ext_csd::erase_group_def::kHighCapacity);
    const ExtCsd ext = h().read_ext_csd();
    ASSERT_EQ(ext[ext_csd::kEraseGroupDef], 1);
    group_ = std::uint64_t{ext[ext_csd::kHcWpGrpSize]} * ext[ext_csd::kHcEraseGrpSize] * (512 * 1024 / kSectorSize);
    ASSERT_EQ(group_, 4096u);
  }
  // CMD28/CMD29 with the given USER_WP, then the busy time.
  CommandOutcome protect(std::uint64_t sector, std::uint8_t user_wp = 0) {
    switch_byte(ext_csd::kUserWp, user_wp);
    CommandOutcome o = h().cmd(28, h().address(sector));
    card().finish_busy();
    switch_byte(ext_csd::kUserWp, 0);
    return o;
  }
  CommandOutcome unprotect(std::uint64_t sector) {
    CommandOutcome o = h().cmd(29, h().address(sector));
    card().finish_busy();
    return o;
  }
  // CMD24 must be refused with WP_VIOLATION and leave `expected` in place.
  void expect_write_refused(std::uint64_t sector, const std::vector<std::uint8_t>& expected) {
    CommandOutcome o;
    EXPECT_FALSE(write_one(sector, pattern(99), &o)) << "sector " << sector;
    EXPECT_NE(o.response.value & status::kWpViolation, 0u) << "sector " << sector;
    EXPECT_EQ(card().state(), S::tran);
    EXPECT_EQ(read(sector), expected) << "sector " << sector;
  }
  std::vector<std::uint8_t> send_write_prot(std::uint8_t index, std::uint64_t sector) {
    const CommandOutcome o = h().cmd(index, h().address(sector));
    EXPECT_EQ(o.response.type, R::r1);
    EXPECT_EQ(o.data.direction, DataDirection::to_host);
    EXPECT_EQ(o.data.blocks, 1u);
    EXPECT_EQ(o.data.block_size, index == 30 ? 4u : 8u);
    return h().read_data(o);
  }
  std::uint8_t wp_type(std::uint64_t sector) {  // CMD31, the addressed group's two bits
    const auto bytes = send_write_prot(31, sector);
    return bytes.size() == 8 ? bytes[7] & 3 : 0xFF;
  }

  std::uint64_t group_ = 0;
};

TEST_F(CardErrorsWriteProtect, TemporaryProtectionAndCmd29) {
  const auto a = pattern(10);
  ASSERT_TRUE(write_one(0, a));
  ASSERT_TRUE(write_one(group_ - 1, a));
  const CommandOutcome o = protect(0);
  EXPECT_EQ(o.response.type, R::r1b);
  EXPECT_EQ(error_bits(o), 0u);
  expect_write_refused(0, a);
  expect_write_refused(group_ - 1, a);
  EXPECT_TRUE(write_one(group_, pattern(11))) << "the next group is not protected";
  EXPECT_EQ(wp_type(0), 1);

  EXPECT_EQ(error_bits(unprotect(group_ - 1)), 0u);  // any address in the group
  EXPECT_EQ(wp_type(0), 0);
  EXPECT_TRUE(write_one(0, pattern(12)));
  EXPECT_EQ(read(0), pattern(12));
}

TEST_F(CardErrorsWriteProtect, MultipleBlockWriteIntoAProtectedGroup) {
  const auto a = pattern(13);
  ASSERT_TRUE(write_one(group_, a));
  protect(group_);
  // Starts in an unprotected group, runs into the protected one.
  h().cmd(23, 2);
  const CommandOutcome o = h().cmd(25, h().address(group_ - 1));
  ASSERT_EQ(error_bits(o), 0u);
  const auto data = pattern(14, 2);
  EXPECT_TRUE(card().write_block(data.data(), kSectorSize).ok);
  EXPECT_FALSE(card().write_block(data.data() + kSectorSize, kSectorSize).ok);
  const CommandOutcome stop = h().cmd(12, 0);
  const std::uint32_t next = status();
  expect_exactly_once(stop.response.value, next, status::kWpViolation);
  card().finish_busy();
  EXPECT_EQ(read(group_), a);
}

TEST_F(CardErrorsWriteProtect, PowerOnProtection) {
  const auto a = pattern(15);
  ASSERT_TRUE(write_one(0, a));
  protect(0, ext_csd::user_wp::kPowerOnWpEnable);
  expect_write_refused(0, a);
  EXPECT_EQ(wp_type(0), 2);
  unprotect(0);  // CMD29 clears temporary protection only
  expect_write_refused(0, a);
  EXPECT_EQ(wp_type(0), 2);
  // Gone after a power cycle, and never stored.
  card().power_cycle();
  ASSERT_NO_FATAL_FAILURE(drive_to_state(h(), S::tran));
  EXPECT_TRUE(write_one(0, pattern(16)));
  EXPECT_EQ(read(0), pattern(16));
}

TEST_F(CardErrorsWriteProtect, PowerOnProtectionIsNotNonvolatile) {
  protect(0, ext_csd::user_wp::kPowerOnWpEnable);
  Card fresh(card().config(), h().image().backend());
  fresh.execute({0, 0});
  for (int i = 0; i < 10 && fresh.state() == S::idle; ++i) fresh.execute({1, kHostOcr});
  fresh.execute({2, 0});
  fresh.execute({3, kRcaArg});
  fresh.execute({7, kRcaArg});
  ASSERT_EQ(fresh.state(), S::tran);
  const CommandOutcome o = fresh.execute({24, 0});
  EXPECT_EQ(o.response.value & status::kWpViolation, 0u);
  EXPECT_EQ(o.data.direction, DataDirection::to_card);
}

TEST_F(CardErrorsWriteProtect, PermanentProtection) {
  const auto a = pattern(17);
  ASSERT_TRUE(write_one(0, a));
  protect(0, ext_csd::user_wp::kPermanentWpEnable);
  expect_write_refused(0, a);
  EXPECT_EQ(wp_type(0), 3);
  unprotect(0);
  expect_write_refused(0, a);
  EXPECT_EQ(wp_type(0), 3);

  card().power_cycle();
  ASSERT_NO_FATAL_FAILURE(drive_to_state(h(), S::tran));
  switch_byte(ext_csd::kEraseGroupDef, ext_csd::erase_group_def::kHighCapacity);
  expect_write_refused(0, a);

  // A new card over the same storage reads the protection from the non-volatile store.
  Card fresh(card().config(), h().image().backend());
  fresh.execute({0, 0});
  for (int i = 0; i < 10 && fresh.state() == S::idle; ++i) fresh.execute({1, kHostOcr});
  fresh.execute({2, 0});
  fresh.execute({3, kRcaArg});
  fresh.execute({7, kRcaArg});
  ASSERT_EQ(fresh.state(), S::tran);
  const CommandOutcome o = fresh.execute({24, 0});
  EXPECT_NE(o.response.value & status::kWpViolation, 0u);
  EXPECT_EQ(o.data.direction, DataDirection::none);
  EXPECT_FALSE(h().image().nonvolatile().load().permanent_wp_groups.empty());
}

TEST_F(CardErrorsWriteProtect, TemporaryProtectionIsNonvolatile) {
  const auto a = pattern(18);
  ASSERT_TRUE(write_one(0, a));
  protect(0);
  card().power_cycle();
  ASSERT_NO_FATAL_FAILURE(drive_to_state(h(), S::tran));
  expect_write_refused(0, a);
}

TEST_F(CardErrorsWriteProtect, SendWriteProtBitLayout) {
  protect(0);                                                 // group 0: temporary
  protect(group_, ext_csd::user_wp::kPowerOnWpEnable);        // group 1: power-on
  protect(2 * group_, ext_csd::user_wp::kPermanentWpEnable);  // group 2: permanent
  protect(4 * group_);                                        // group 4: temporary
  // CMD30: 32 bits, MSB first on the bus; the last bit is the addressed group.
  EXPECT_EQ(send_write_prot(30, 0), (std::vector<std::uint8_t>{0, 0, 0, 0x17}));
  EXPECT_EQ(send_write_prot(30, group_), (std::vector<std::uint8_t>{0, 0, 0, 0x0B}));
  EXPECT_EQ(send_write_prot(30, 3 * group_ + 5), (std::vector<std::uint8_t>{0, 0, 0, 0x02}));
  // CMD31: 64 bits, two per group (1 temporary, 2 power-on, 3 permanent), addressed group last.
  EXPECT_EQ(send_write_prot(31, 0), (std::vector<std::uint8_t>{0, 0, 0, 0, 0, 0, 0x01, 0x39}));
  EXPECT_EQ(send_write_prot(31, group_), (std::vector<std::uint8_t>{0, 0, 0, 0, 0, 0, 0x00, 0x4E}));
  EXPECT_EQ(card().state(), S::tran);
}

TEST_F(CardErrorsWriteProtect, SendWriteProtBeyondTheEnd) {
  const std::uint64_t groups = user_sectors() / group_;  // 64 MiB / 2 MiB = 32
  ASSERT_EQ(groups, 32u);
  protect((groups - 1) * group_);
  // From the last group: only bit 0 can be set; groups past the end read as unprotected.
  EXPECT_EQ(send_write_prot(30, (groups - 1) * group_), (std::vector<std::uint8_t>{0, 0, 0, 0x01}));
  const CommandOutcome o = h().cmd(30, h().address(user_sectors()));
  EXPECT_NE(o.response.value & status::kOutOfRange, 0u);
  EXPECT_EQ(o.data.direction, DataDirection::none);
}

TEST_F(CardErrorsWriteProtect, EraseSkipsProtectedGroups) {
  const std::vector<std::uint64_t> probes = {0, group_ - 1, group_, 2 * group_ - 1, 2 * group_, 3 * group_ - 1};
  for (std::uint64_t sector : probes) ASSERT_TRUE(write_one(sector, pattern(static_cast<std::uint8_t>(sector % 251))));
  protect(group_);
  h().cmd(35, h().address(0));
  h().cmd(36, h().address(3 * group_ - 1));
  const CommandOutcome erase = h().cmd(38, 0);
  EXPECT_EQ(erase.response.type, R::r1b);
  const std::uint32_t next = status();
  expect_exactly_once(erase.response.value, next, status::kWpEraseSkip);
  EXPECT_EQ((erase.response.value | next) & status::kAnyError, 0u) << "WP_ERASE_SKIP is not an error";
  for (std::uint64_t sector : probes) {
    const bool protected_group = sector >= group_ && sector < 2 * group_;
    EXPECT_EQ(read(sector), protected_group ? pattern(static_cast<std::uint8_t>(sector % 251)) : kZeroSector)
        << "sector " << sector;
  }
}

TEST_F(CardErrorsWriteProtect, TrimSkipsProtectedGroups) {
  ASSERT_TRUE(write_one(0, pattern(20)));
  ASSERT_TRUE(write_one(group_, pattern(21)));
  protect(0, ext_csd::user_wp::kPowerOnWpEnable);
  h().cmd(35, h().address(0));
  h().cmd(36, h().address(group_));
  const CommandOutcome trim = h().cmd(38, 1);
  expect_exactly_once(trim.response.value, status(), status::kWpEraseSkip);
  EXPECT_EQ(read(0), pattern(20));
  EXPECT_EQ(read(group_), kZeroSector);
}

// ---------------------------------------------------------------------------------------------
// Boot area protection (BOOT_WP, EXT_CSD[173]; status in BOOT_WP_STATUS, [174])

class CardErrorsBootWp : public CardErrorsTest {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(start(sector_config()));
    for (std::uint8_t p : {1, 2}) {
      switch_byte(ext_csd::kPartitionConfig, p);
      ASSERT_TRUE(write_one(0, pattern(p)));
    }
    switch_byte(ext_csd::kPartitionConfig, ext_csd::partition_config::value(Partition::user));
    ASSERT_TRUE(write_one(0, pattern(30)));
  }
  // CMD24 in boot partition `p` (1 or 2): true when accepted; on refusal, checks WP_VIOLATION and
  // that the data is intact.
  bool boot_writable(std::uint8_t p) {
    switch_byte(ext_csd::kPartitionConfig, p);
    CommandOutcome o;
    const bool ok = write_one(0, pattern(p), &o);
    if (!ok) {
      EXPECT_NE(o.response.value & status::kWpViolation, 0u) << "boot" << unsigned{p};
      EXPECT_EQ(read(0), pattern(p)) << "boot" << unsigned{p};
    }
    switch_byte(ext_csd::kPartitionConfig, ext_csd::partition_config::value(Partition::user));
    return ok;
  }
  std::uint8_t boot_wp_status() { return h().read_ext_csd()[ext_csd::kBootWpStatus]; }
};

TEST_F(CardErrorsBootWp, PowerOnProtectionOfBothAreas) {
  const CommandOutcome o = switch_byte(ext_csd::kBootWp, ext_csd::boot_wp::kPowerOnWpEnable);
  EXPECT_EQ(status() & status::kSwitchError, 0u);
  EXPECT_FALSE(o.illegal);
  EXPECT_EQ(boot_wp_status(), 0x05);
  EXPECT_FALSE(boot_writable(1));
  EXPECT_FALSE(boot_writable(2));
  EXPECT_TRUE(write_one(0, pattern(31))) << "the user area is not a boot area";
  // Erase in a protected boot area skips it.
  switch_byte(ext_csd::kPartitionConfig, ext_csd::partition_config::value(Partition::boot1));
  h().cmd(35, 0);
  h().cmd(36, 0);
  const CommandOutcome erase = h().cmd(38, 1);
  expect_exactly_once(erase.response.value, status(), status::kWpEraseSkip);
  EXPECT_EQ(read(0), pattern(1));
  switch_byte(ext_csd::kPartitionConfig, ext_csd::partition_config::value(Partition::user));

  card().power_cycle();
  ASSERT_NO_FATAL_FAILURE(drive_to_state(h(), S::tran));
  EXPECT_EQ(boot_wp_status(), 0x00);
  EXPECT_TRUE(boot_writable(1));
  EXPECT_TRUE(boot_writable(2));
}

TEST_F(CardErrorsBootWp, PowerOnProtectionOfTheSecondAreaOnly) {
  namespace bwp = ext_csd::boot_wp;
  switch_byte(ext_csd::kBootWp, bwp::kSectionSelect | bwp::kPowerOnWpSecondArea | bwp::kPowerOnWpEnable);
  EXPECT_EQ(status() & status::kSwitchError, 0u);
  EXPECT_EQ(boot_wp_status(), 0x04);
  EXPECT_TRUE(boot_writable(1));
  EXPECT_FALSE(boot_writable(2));
}

TEST_F(CardErrorsBootWp, PermanentProtectionSurvivesPowerAndANewCard) {
  switch_byte(ext_csd::kBootWp, ext_csd::boot_wp::kPermanentWpEnable);
  EXPECT_EQ(status() & status::kSwitchError, 0u);
  EXPECT_EQ(boot_wp_status(), 0x0A);
  EXPECT_FALSE(boot_writable(1));
  EXPECT_FALSE(boot_writable(2));
  card().power_cycle();
  ASSERT_NO_FATAL_FAILURE(drive_to_state(h(), S::tran));
  EXPECT_EQ(boot_wp_status(), 0x0A);
  EXPECT_FALSE(boot_writable(1));

  Card fresh(card().config(), h().image().backend());
  fresh.execute({0, 0});
  for (int i = 0; i < 10 && fresh.state() == S::idle; ++i) fresh.execute({1, kHostOcr});
  fresh.execute({2, 0});
  fresh.execute({3, kRcaArg});
  fresh.execute({7, kRcaArg});
  ASSERT_EQ(fresh.state(), S::tran);
  fresh.execute({6, switch_arg(SwitchAccess::write_byte, ext_csd::kPartitionConfig,
                               ext_csd::partition_config::value(Partition::boot2))});
  ASSERT_EQ(fresh.current_partition(), Partition::boot2);
  const CommandOutcome o = fresh.execute({24, 0});
  EXPECT_NE(o.response.value & status::kWpViolation, 0u);
  EXPECT_EQ(o.data.direction, DataDirection::none);
  EXPECT_EQ(fresh.ext_csd()[ext_csd::kBootWpStatus], 0x0A);
}

TEST_F(CardErrorsBootWp, PowerOnDisableBlocksPowerOnProtection) {
  switch_byte(ext_csd::kBootWp, ext_csd::boot_wp::kPowerOnWpDisable);
  EXPECT_EQ(status() & status::kSwitchError, 0u);
  switch_byte(ext_csd::kBootWp, ext_csd::boot_wp::kPowerOnWpEnable);
  EXPECT_NE(status() & status::kSwitchError, 0u);
  EXPECT_TRUE(boot_writable(1));
}

// ---------------------------------------------------------------------------------------------
// CMD6 SWITCH errors: SWITCH_ERROR in the next response, EXT_CSD unchanged

struct SwitchCase {
  const char* name;
  std::uint32_t arg;
  bool no_cache = false;
  std::uint8_t bus_width_first = 0;  // BUS_WIDTH set (successfully) before the bad switch
};

std::uint32_t write_byte(std::size_t index, std::uint8_t value) {
  return switch_arg(SwitchAccess::write_byte, index, value);
}

class CardErrorsSwitch : public ::testing::TestWithParam<SwitchCase> {};

TEST_P(CardErrorsSwitch, SwitchErrorInTheNextResponseAndNoChange) {
  const SwitchCase& c = GetParam();
  DeviceConfig config = sector_config();
  if (c.no_cache) config.cache_size = 0;
  CardHarness h(config);
  ASSERT_NO_FATAL_FAILURE(drive_to_state(h, S::tran));
  if (c.bus_width_first != 0) {
    h.switch_byte(ext_csd::kBusWidth, c.bus_width_first);
    ASSERT_EQ(h.status() & status::kSwitchError, 0u);
  }
  const ExtCsd before = h.read_ext_csd();
  const CommandOutcome o = h.cmd(6, c.arg);
  EXPECT_FALSE(o.illegal);
  EXPECT_EQ(o.response.type, R::r1b);
  EXPECT_EQ(o.response.value & status::kSwitchError, 0u) << "SWITCH_ERROR belongs in the next response";
  EXPECT_EQ(h.card().state(), S::tran);
  const std::uint32_t next = h.status();
  EXPECT_NE(next & status::kSwitchError, 0u) << describe_status(next);
  EXPECT_EQ(h.status() & status::kSwitchError, 0u);
  const ExtCsd after = h.read_ext_csd();
  for (std::size_t i = 0; i < after.size(); ++i) EXPECT_EQ(after[i], before[i]) << "EXT_CSD[" << i << "]";
  EXPECT_EQ(h.card().current_partition(), Partition::user);
}

INSTANTIATE_TEST_SUITE_P(
    CardErrors, CardErrorsSwitch,
    ::testing::Values(SwitchCase{"ExtCsdRev", write_byte(192, 5)}, SwitchCase{"SecCount", write_byte(212, 0)},
                      SwitchCase{"LastIndex", write_byte(255, 1)},
                      SwitchCase{"PropertiesSetBits", switch_arg(SwitchAccess::set_bits, ext_csd::kDeviceType, 0xFF)},
                      SwitchCase{"ReservedIndex100", write_byte(100, 1)},
                      SwitchCase{"ReservedIndex0", write_byte(0, 1)},
                      SwitchCase{"HsTiming4", write_byte(ext_csd::kHsTiming, 4)},
                      SwitchCase{"HsTiming15", write_byte(ext_csd::kHsTiming, 0x0F)},
                      SwitchCase{"BusWidth3", write_byte(ext_csd::kBusWidth, 3)},
                      SwitchCase{"BusWidth7", write_byte(ext_csd::kBusWidth, 7)},
                      SwitchCase{"PartitionConfigAbsentGp1", write_byte(ext_csd::kPartitionConfig, 4)},
                      SwitchCase{"PartitionConfigAbsentGp4", write_byte(ext_csd::kPartitionConfig, 7)},
                      SwitchCase{"CacheCtrlWithoutCache", write_byte(ext_csd::kCacheCtrl, 1), true},
                      SwitchCase{"Hs400On8BitSdr", write_byte(ext_csd::kHsTiming, 3), false, 2},
                      SwitchCase{"Hs400On4BitDdr", write_byte(ext_csd::kHsTiming, 3), false, 5},
                      SwitchCase{"Hs400On1Bit", write_byte(ext_csd::kHsTiming, 3)},
                      SwitchCase{"CommandSetNonzero", 0x00000001u}, SwitchCase{"CommandSetSeven", 0x00000007u}),
    [](const ::testing::TestParamInfo<SwitchCase>& param_info) { return std::string(param_info.param.name); });

TEST(CardErrorsSwitchControl, ValidSwitchesTakeEffect) {
  CardHarness h(sector_config());
  ASSERT_NO_FATAL_FAILURE(drive_to_state(h, S::tran));
  h.switch_byte(ext_csd::kCacheCtrl, ext_csd::cache_ctrl::kOn);
  h.switch_byte(ext_csd::kBusWidth, ext_csd::bus_width::k8BitDdr);
  h.switch_byte(ext_csd::kHsTiming, ext_csd::hs_timing::kHs400);
  h.cmd(6, 0);  // command set 0: the standard one
  EXPECT_EQ(h.status() & status::kAnyError, 0u);
  const ExtCsd ext = h.read_ext_csd();
  EXPECT_EQ(ext[ext_csd::kCacheCtrl], 1);
  EXPECT_EQ(ext[ext_csd::kBusWidth], 6);
  EXPECT_EQ(ext[ext_csd::kHsTiming], 3);
  EXPECT_EQ(ext[ext_csd::kCmdSet], 0);
}

TEST(CardErrorsSwitchControl, HighSpeedTimingOnA26MHzOnlyCard) {
  // DEVICE_TYPE bit 0 is "High-Speed eMMC at 26 MHz": HS_TIMING 1 is its mode too, and Linux's
  // mmc_select_hs() switches to it for EXT_CSD_CARD_TYPE_HS_26 as for HS_52.
  DeviceConfig config = sector_config();
  config.bus_modes.hs52 = config.bus_modes.ddr52 = config.bus_modes.hs200 = config.bus_modes.hs400 = false;
  config.bus_modes.enhanced_strobe = false;
  CardHarness h(config);
  ASSERT_NO_FATAL_FAILURE(drive_to_state(h, S::tran));
  ASSERT_EQ(h.read_ext_csd()[ext_csd::kDeviceType], ext_csd::kDeviceTypeHs26);
  h.switch_byte(ext_csd::kHsTiming, ext_csd::hs_timing::kHighSpeed);
  EXPECT_EQ(h.status() & status::kSwitchError, 0u);
  EXPECT_EQ(h.read_ext_csd()[ext_csd::kHsTiming], 1);
  h.switch_byte(ext_csd::kHsTiming, ext_csd::hs_timing::kHs200);  // which it does not offer
  EXPECT_NE(h.status() & status::kSwitchError, 0u);
}

// ---------------------------------------------------------------------------------------------
// CMD42 lock/unlock

class CardErrorsLock : public CardErrorsTest {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(start(sector_config()));
    ASSERT_TRUE(h().write_sectors(0, pattern(40, 2)));
  }
  static std::vector<std::uint8_t> block(std::uint8_t flags, const std::string& password) {
    std::vector<std::uint8_t> b = {flags, static_cast<std::uint8_t>(password.size())};
    b.insert(b.end(), password.begin(), password.end());
    return b;
  }
  // CMD42 and the status after it: LOCK_UNLOCK_FAILED or not.
  bool lock_cmd(std::uint8_t flags, const std::string& password) {
    std::uint32_t st = 0;
    const BlockOutcome b = lock_unlock(block(flags, password), &st);
    EXPECT_TRUE(b.ok);
    return (st & status::kLockUnlockFailed) == 0;
  }
  bool locked() { return (status() & status::kCardIsLocked) != 0; }
  bool data_reachable() {
    const CommandOutcome o = h().cmd(17, 0);
    if (o.illegal) return false;
    h().read_data(o);
    return true;
  }
  void restart() {
    card().power_cycle();
    ASSERT_NO_FATAL_FAILURE(drive_to_state(h(), S::tran));
  }

  static constexpr std::uint8_t kSet = lock_unlock::kSetPassword, kClear = lock_unlock::kClearPassword,
                                kLock = lock_unlock::kLock, kErase = lock_unlock::kForceErase;
};

TEST_F(CardErrorsLock, SetLockUnlock) {
  EXPECT_TRUE(lock_cmd(kSet, "abcd"));
  EXPECT_FALSE(locked()) << "setting a password does not lock";
  EXPECT_TRUE(data_reachable());
  EXPECT_TRUE(lock_cmd(kLock, "abcd"));
  EXPECT_TRUE(locked());
  EXPECT_FALSE(data_reachable());
  EXPECT_NE(status() & status::kIllegalCommand, 0u);
  EXPECT_TRUE(lock_cmd(0, "abcd"));
  EXPECT_FALSE(locked());
  EXPECT_TRUE(data_reachable());
  EXPECT_EQ(read(0, 2), pattern(40, 2));
}

TEST_F(CardErrorsLock, WrongPasswordFailsOnce) {
  ASSERT_TRUE(lock_cmd(kSet | kLock, "abcd"));
  std::uint32_t first = 0;
  const BlockOutcome b = lock_unlock(block(0, "abce"), &first);
  EXPECT_TRUE(b.ok) << "the block itself was received";
  EXPECT_NE(first & status::kLockUnlockFailed, 0u);
  EXPECT_NE(first & status::kCardIsLocked, 0u);
  EXPECT_EQ(status() & status::kLockUnlockFailed, 0u) << "reported once";
  EXPECT_FALSE(lock_cmd(0, "abc"));    // a prefix is not the password
  EXPECT_FALSE(lock_cmd(0, "abcde"));  // nor is a longer one
  EXPECT_TRUE(locked());
  EXPECT_TRUE(lock_cmd(0, "abcd"));
  EXPECT_FALSE(locked());
}

TEST_F(CardErrorsLock, ReplacePasswordWithOldAndNew) {
  ASSERT_TRUE(lock_cmd(kSet, "old1"));
  EXPECT_FALSE(lock_cmd(kSet, "bad1new2")) << "the old password must come first";
  EXPECT_TRUE(lock_cmd(kSet, "old1new2"));
  EXPECT_FALSE(lock_cmd(kLock, "old1"));
  EXPECT_FALSE(locked());
  EXPECT_TRUE(lock_cmd(kLock, "new2"));
  EXPECT_TRUE(locked());
  EXPECT_FALSE(lock_cmd(0, "old1"));
  EXPECT_TRUE(lock_cmd(0, "new2"));
  EXPECT_FALSE(locked());
}

TEST_F(CardErrorsLock, ClearPassword) {
  ASSERT_TRUE(lock_cmd(kSet | kLock, "abcd"));
  EXPECT_FALSE(lock_cmd(kClear, "abcx"));
  EXPECT_TRUE(locked());
  EXPECT_TRUE(lock_cmd(kClear, "abcd"));
  EXPECT_FALSE(locked()) << "clearing the password unlocks";
  EXPECT_FALSE(lock_cmd(kLock, "abcd")) << "no password to lock with";
  EXPECT_FALSE(lock_cmd(kClear, "abcd")) << "nothing to clear";
  ASSERT_NO_FATAL_FAILURE(restart());
  EXPECT_FALSE(locked());
  EXPECT_TRUE(h().image().nonvolatile().load().password.empty());
}

TEST_F(CardErrorsLock, UnlockingAnUnlockedCardFails) {
  ASSERT_TRUE(lock_cmd(kSet, "abcd"));
  EXPECT_FALSE(lock_cmd(0, "abcd"));
  EXPECT_FALSE(locked());
}

TEST_F(CardErrorsLock, PasswordLongerThan16BytesRefused) {
  EXPECT_FALSE(lock_cmd(kSet, "0123456789abcdefg"));
  EXPECT_TRUE(lock_cmd(kSet, "0123456789abcdef"));
}

TEST_F(CardErrorsLock, SetAndClearTogetherRefused) {
  EXPECT_FALSE(lock_cmd(kSet | kClear, "abcd"));
  EXPECT_FALSE(lock_cmd(kLock, "abcd")) << "no password was set";
}

TEST_F(CardErrorsLock, ForcedEraseErasesDataAndPassword) {
  ASSERT_TRUE(lock_cmd(kSet | kLock, "abcd"));
  std::uint32_t st = 0;
  const BlockOutcome b = lock_unlock({kErase}, &st);
  EXPECT_TRUE(b.ok);
  EXPECT_EQ(st & status::kLockUnlockFailed, 0u);
  EXPECT_FALSE(locked());
  EXPECT_EQ(read(0, 2), std::vector<std::uint8_t>(2 * kSectorSize, 0));
  EXPECT_FALSE(lock_cmd(kLock, "abcd")) << "the password went with the data";
  ASSERT_NO_FATAL_FAILURE(restart());
  EXPECT_FALSE(locked());
}

TEST_F(CardErrorsLock, ForcedEraseOfAnUnlockedCardFails) {
  ASSERT_TRUE(lock_cmd(kSet, "abcd"));
  std::uint32_t st = 0;
  lock_unlock({kErase}, &st);
  EXPECT_NE(st & status::kLockUnlockFailed, 0u);
  EXPECT_EQ(read(0, 2), pattern(40, 2));
  EXPECT_TRUE(lock_cmd(kLock, "abcd")) << "the password is still set";
}

TEST_F(CardErrorsLock, EraseBitWithOtherBitsFails) {
  ASSERT_TRUE(lock_cmd(kSet | kLock, "abcd"));
  EXPECT_FALSE(lock_cmd(kErase | kLock, "abcd"));
  EXPECT_TRUE(locked());
  EXPECT_TRUE(lock_cmd(0, "abcd"));
  EXPECT_EQ(read(0, 2), pattern(40, 2));
}

TEST_F(CardErrorsLock, LockSurvivesPowerCycleAndANewCard) {
  ASSERT_TRUE(lock_cmd(kSet | kLock, "abcd"));
  ASSERT_NO_FATAL_FAILURE(restart());
  EXPECT_TRUE(locked());
  EXPECT_FALSE(data_reachable());

  Card fresh(card().config(), h().image().backend());
  EXPECT_TRUE(fresh.locked());
  fresh.execute({0, 0});
  for (int i = 0; i < 10 && fresh.state() == S::idle; ++i) fresh.execute({1, kHostOcr});
  fresh.execute({2, 0});
  fresh.execute({3, kRcaArg});
  fresh.execute({7, kRcaArg});
  ASSERT_EQ(fresh.state(), S::tran);
  EXPECT_NE(fresh.execute({13, kRcaArg}).response.value & status::kCardIsLocked, 0u);
  EXPECT_TRUE(fresh.execute({17, 0}).illegal);

  EXPECT_TRUE(lock_cmd(0, "abcd"));
  EXPECT_TRUE(data_reachable());
  EXPECT_EQ(read(0, 2), pattern(40, 2));
}

TEST_F(CardErrorsLock, BusyFollowsTheDataBlock) {
  ASSERT_NO_FATAL_FAILURE(start(sector_config(), held_busy_options()));
  const auto b = block(kSet, "abcd");
  h().cmd(16, static_cast<std::uint32_t>(b.size()));
  const CommandOutcome o = h().cmd(42);
  EXPECT_FALSE(o.busy);
  EXPECT_EQ(card().state(), S::rcv);
  const BlockOutcome done = card().write_block(b.data(), b.size());
  EXPECT_TRUE(done.ok);
  EXPECT_TRUE(done.busy);
  EXPECT_TRUE(done.transfer_complete);
  EXPECT_EQ(card().state(), S::prg);
  EXPECT_EQ(status() & status::kReadyForData, 0u);
  card().finish_busy();
  EXPECT_EQ(card().state(), S::tran);
}

TEST_F(CardErrorsLock, WrongBlockSizeMovesNothing) {
  h().cmd(16, 6);
  ASSERT_EQ(h().cmd(42).data.block_size, 6u);
  const auto b = block(kSet, "abcdefgh");  // 10 bytes on a 6-byte block
  EXPECT_FALSE(card().write_block(b.data(), b.size()).ok);
  EXPECT_EQ(card().state(), S::rcv);
  h().cmd(12, 0);
  card().finish_busy();
  EXPECT_EQ(card().state(), S::tran);
  h().cmd(16, kSectorSize);
  EXPECT_FALSE(lock_cmd(kLock, "abcdefgh")) << "no password was set";
}

}  // namespace
}  // namespace emmcsim::mmc::testing
