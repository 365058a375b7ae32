// mmc::Card data transfers, one 512-byte block at a time: single, counted and open-ended
// transfers in every data partition, CMD23 scope, reliable write atomicity, addressing modes,
// erase/trim/discard/secure trim, the volatile cache, the work reports a timed model prices,
// sleep, boot operation, write-protect status, the tuning block, and a file-backed image.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "card_harness.hpp"
#include "emmcsim/mmc/card.hpp"
#include "emmcsim/mmc/image.hpp"
#include "emmcsim/mmc/protocol.hpp"
#include "scratch_directory.hpp"

namespace emmcsim::mmc {
namespace {

using testing::CardHarness;
using testing::kTestRca;
using testing::small_config;

namespace st = status;
namespace ec = ext_csd;

constexpr std::uint32_t kRcaArg = rca_arg(kTestRca);
constexpr std::uint32_t kCmd23Reliable = set_block_count::kReliableWrite;
constexpr std::uint32_t kCmd23Forced = set_block_count::kForcedProgramming;
// CMD6: PARTITION_CONFIG access to boot partition 1.
constexpr std::uint32_t kSwitchToBoot1 =
    switch_arg(SwitchAccess::write_byte, ec::kPartitionConfig, ec::partition_config::value(Partition::boot1));

// Deterministic, non-zero-looking data; different seeds give different bytes.
std::vector<std::uint8_t> pattern(std::size_t sectors, std::uint32_t seed) {
  std::vector<std::uint8_t> bytes(sectors * kSectorSize);
  std::uint32_t x = seed * 2654435761u + 0x9E3779B9u;
  for (auto& b : bytes) {
    x = x * 1103515245u + 12345u;
    b = static_cast<std::uint8_t>(x >> 23);
  }
  return bytes;
}

std::vector<std::uint8_t> zeros(std::size_t sectors) { return std::vector<std::uint8_t>(sectors * kSectorSize, 0); }

std::vector<std::uint8_t> slice(const std::vector<std::uint8_t>& data, std::size_t first_sector, std::size_t sectors) {
  const auto begin = data.begin() + static_cast<std::ptrdiff_t>(first_sector * kSectorSize);
  return std::vector<std::uint8_t>(begin, begin + static_cast<std::ptrdiff_t>(sectors * kSectorSize));
}

// What the medium under the card holds, read past the card.
std::vector<std::uint8_t> medium(CardHarness& h, Partition p, std::uint64_t sector, std::uint32_t count) {
  std::vector<std::uint8_t> out(std::size_t{count} * kSectorSize);
  BlockStorage* storage = h.image().backend().storage(p);
  if (storage == nullptr) return {};
  storage->read(sector, count, out.data());
  return out;
}

// DeviceConfig with two general-purpose partitions (sector addressed, 8 GiB user area).
DeviceConfig gp_config() {
  DeviceConfig c = default_device_config();
  c.general_purpose_partitions = {1ULL << 20, 2ULL << 20};
  return c;
}

std::uint32_t r1_state(const CommandOutcome& o) { return st::current_state(o.response.value); }
constexpr std::uint32_t state_code(CardState s) { return static_cast<std::uint32_t>(s); }

// CMD24 + one block; returns whether the block was accepted and the transfer completed.
bool write_single(CardHarness& h, std::uint64_t sector, const std::vector<std::uint8_t>& block) {
  const CommandOutcome o = h.cmd(24, h.address(sector));
  if (o.data.direction != DataDirection::to_card || o.data.blocks != 1 || o.data.block_size != kSectorSize)
    return false;
  const BlockOutcome b = h.card().write_block(block.data(), kSectorSize);
  return b.ok && b.transfer_complete;
}

// CMD17 + one block.
std::vector<std::uint8_t> read_single(CardHarness& h, std::uint64_t sector) {
  const CommandOutcome o = h.cmd(17, h.address(sector));
  if (o.data.direction != DataDirection::to_host || o.data.blocks != 1) return {};
  return h.read_data(o);
}

// CMD25 without CMD23, `data` block by block, then CMD12. Returns whether every block was
// accepted and the card reported an open-ended transfer.
bool write_open_ended(CardHarness& h, std::uint64_t sector, const std::vector<std::uint8_t>& data) {
  const CommandOutcome o = h.cmd(25, h.address(sector));
  if (o.data.direction != DataDirection::to_card || o.data.blocks != 0) return false;
  bool ok = true;
  for (std::size_t i = 0; i < data.size() / kSectorSize; ++i) {
    const BlockOutcome b = h.card().write_block(data.data() + i * kSectorSize, kSectorSize);
    ok = ok && b.ok && !b.transfer_complete;
  }
  const CommandOutcome stop = h.cmd(12);
  return ok && stop.response.type == ResponseType::r1b && r1_state(stop) == state_code(CardState::rcv);
}

// CMD18 without CMD23, `sectors` blocks, then CMD12.
std::vector<std::uint8_t> read_open_ended(CardHarness& h, std::uint64_t sector, std::uint32_t sectors) {
  const CommandOutcome o = h.cmd(18, h.address(sector));
  if (o.data.direction != DataDirection::to_host || o.data.blocks != 0) return {};
  std::vector<std::uint8_t> out(std::size_t{sectors} * kSectorSize);
  for (std::uint32_t i = 0; i < sectors; ++i) {
    const BlockOutcome b = h.card().read_block(out.data() + std::size_t{i} * kSectorSize, kSectorSize);
    if (!b.ok || b.transfer_complete) return {};
  }
  const CommandOutcome stop = h.cmd(12);
  if (stop.response.type == ResponseType::none || r1_state(stop) != state_code(CardState::data)) return {};
  return out;
}

void select_partition(CardHarness& h, Partition p) {
  const CommandOutcome o = h.switch_byte(ec::kPartitionConfig, static_cast<std::uint8_t>(p));
  ASSERT_EQ(o.response.type, ResponseType::r1b);
  ASSERT_EQ(h.card().current_partition(), p);
  ASSERT_EQ(h.status() & st::kSwitchError, 0u);
}

// CMD35, CMD36, CMD38 `kind` over [first, last] in the card's addressing mode.
CommandOutcome erase(CardHarness& h, std::uint64_t first, std::uint64_t last, std::uint32_t kind) {
  EXPECT_EQ(h.cmd(35, h.address(first)).response.value & st::kAnyError, 0u);
  EXPECT_EQ(h.cmd(36, h.address(last)).response.value & st::kAnyError, 0u);
  return h.cmd(38, kind);
}

class CardDataTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_NO_FATAL_FAILURE(h.identify_and_select()); }
  CardHarness h;  // default configuration: 8 GiB, sector addressing
};

// ---------------------------------------------------------------------------------------------
// Transfers in the user area

TEST_F(CardDataTest, SingleBlockWriteThenReadReturnsTheData) {
  const auto data = pattern(1, 1);
  ASSERT_TRUE(write_single(h, 77, data));
  EXPECT_EQ(h.card().state(), CardState::tran);
  EXPECT_EQ(read_single(h, 77), data);
  EXPECT_EQ(h.card().state(), CardState::tran);
  EXPECT_EQ(medium(h, Partition::user, 77, 1), data);
  EXPECT_EQ(read_single(h, 78), zeros(1));  // never written
}

TEST_F(CardDataTest, CountedMultiBlockTransfersEndAfterTheCount) {
  const auto data = pattern(16, 2);
  ASSERT_EQ(h.cmd(23, 16).response.value & st::kAnyError, 0u);
  const CommandOutcome w = h.cmd(25, h.address(300));
  ASSERT_EQ(w.data.direction, DataDirection::to_card);
  EXPECT_EQ(w.data.blocks, 16u);
  EXPECT_EQ(w.data.block_size, kSectorSize);
  for (std::uint32_t i = 0; i < 16; ++i) {
    EXPECT_EQ(h.card().state(), CardState::rcv);
    const BlockOutcome b = h.card().write_block(data.data() + i * kSectorSize, kSectorSize);
    EXPECT_TRUE(b.ok) << "block " << i;
    EXPECT_EQ(b.transfer_complete, i == 15) << "block " << i;
  }
  EXPECT_EQ(h.card().state(), CardState::tran);
  // The transfer is over: another block is refused.
  EXPECT_FALSE(h.card().write_block(data.data(), kSectorSize).ok);

  ASSERT_EQ(h.cmd(23, 16).response.value & st::kAnyError, 0u);
  const CommandOutcome r = h.cmd(18, h.address(300));
  ASSERT_EQ(r.data.direction, DataDirection::to_host);
  EXPECT_EQ(r.data.blocks, 16u);
  std::vector<std::uint8_t> back(data.size());
  for (std::uint32_t i = 0; i < 16; ++i) {
    const BlockOutcome b = h.card().read_block(back.data() + i * kSectorSize, kSectorSize);
    EXPECT_TRUE(b.ok) << "block " << i;
    EXPECT_EQ(b.transfer_complete, i == 15) << "block " << i;
  }
  EXPECT_EQ(back, data);
  EXPECT_EQ(h.card().state(), CardState::tran);
  EXPECT_FALSE(h.card().read_block(back.data(), kSectorSize).ok);
}

TEST_F(CardDataTest, OpenEndedTransfersRunUntilCmd12) {
  const auto data = pattern(5, 3);
  ASSERT_TRUE(write_open_ended(h, 1000, data));
  EXPECT_EQ(h.card().state(), CardState::tran);
  EXPECT_EQ(medium(h, Partition::user, 1000, 5), data);
  EXPECT_EQ(read_open_ended(h, 1000, 5), data);
  EXPECT_EQ(h.card().state(), CardState::tran);
  // Counted and single transfers see the same data.
  EXPECT_EQ(h.read_sectors(1002, 2), slice(data, 2, 2));
  EXPECT_EQ(read_single(h, 1004), slice(data, 4, 1));
}

TEST_F(CardDataTest, StoppedWriteKeepsTheBlocksAlreadyAccepted) {
  const auto old_data = pattern(8, 4);
  const auto new_data = pattern(8, 5);
  ASSERT_TRUE(h.write_sectors(40, old_data));
  ASSERT_EQ(h.cmd(23, 8).response.value & st::kAnyError, 0u);
  ASSERT_EQ(h.cmd(25, h.address(40)).data.blocks, 8u);
  for (std::uint32_t i = 0; i < 3; ++i)
    ASSERT_TRUE(h.card().write_block(new_data.data() + i * kSectorSize, kSectorSize).ok);
  const CommandOutcome stop = h.cmd(12);
  EXPECT_EQ(stop.response.type, ResponseType::r1b);
  EXPECT_EQ(h.card().state(), CardState::tran);
  auto expected = slice(new_data, 0, 3);
  const auto rest = slice(old_data, 3, 5);
  expected.insert(expected.end(), rest.begin(), rest.end());
  EXPECT_EQ(h.read_sectors(40, 8), expected);
}

TEST_F(CardDataTest, BlockOfTheWrongSizeMovesNothing) {
  const auto data = pattern(1, 6);
  ASSERT_EQ(h.cmd(24, h.address(9)).data.direction, DataDirection::to_card);
  EXPECT_FALSE(h.card().write_block(data.data(), kSectorSize - 1).ok);
  EXPECT_FALSE(h.card().write_block(data.data(), 8).ok);
  EXPECT_EQ(h.card().state(), CardState::rcv);
  EXPECT_EQ(medium(h, Partition::user, 9, 1), zeros(1));
  EXPECT_TRUE(h.card().write_block(data.data(), kSectorSize).ok);

  ASSERT_EQ(h.cmd(17, h.address(9)).data.direction, DataDirection::to_host);
  std::vector<std::uint8_t> block(kSectorSize, 0xEE);
  EXPECT_FALSE(h.card().read_block(block.data(), 256).ok);
  EXPECT_EQ(h.card().state(), CardState::data);
  EXPECT_TRUE(h.card().read_block(block.data(), kSectorSize).ok);
  EXPECT_EQ(block, data);
}

TEST_F(CardDataTest, BlocksOutsideADataPhaseAreRefused) {
  std::vector<std::uint8_t> block(kSectorSize, 0x5A);
  EXPECT_FALSE(h.card().read_block(block.data(), block.size()).ok);
  EXPECT_FALSE(h.card().write_block(block.data(), block.size()).ok);
  EXPECT_EQ(h.card().state(), CardState::tran);
  EXPECT_EQ(medium(h, Partition::user, 0, 1), zeros(1));
}

// A user area that counts storage calls and fails reads that touch one sector.
class InstrumentedStorage final : public BlockStorage {
 public:
  explicit InstrumentedStorage(std::uint64_t sectors) : inner_(sectors) {}
  std::uint64_t sectors() const override { return inner_.sectors(); }
  void read(std::uint64_t sector, std::uint32_t count, std::uint8_t* out) override {
    ++reads;
    if (failing_sector && *failing_sector >= sector && *failing_sector < sector + count)
      throw StorageError("injected read error");
    inner_.read(sector, count, out);
  }
  void write(std::uint64_t sector, std::uint32_t count, const std::uint8_t* in) override {
    inner_.write(sector, count, in);
  }
  void erase(std::uint64_t sector, std::uint64_t count) override { inner_.erase(sector, count); }
  void flush() override {}

  unsigned reads = 0;
  std::optional<std::uint64_t> failing_sector;

 private:
  MemoryBlockStorage inner_;
};

class CardDataMediumTest : public ::testing::Test {
 protected:
  CardDataMediumTest() : image(small_config()), user(small_config().user_capacity / kSectorSize) {
    CardBackend backend = image.backend();
    backend.user = &user;
    card = std::make_unique<Card>(small_config(), backend);
  }
  void SetUp() override {
    card->execute({0, 0});
    for (int i = 0; i < 100 && card->state() != CardState::ready; ++i) card->execute({1, testing::kHostOcr});
    card->execute({2, 0});
    card->execute({3, kRcaArg});
    card->execute({7, kRcaArg});
    ASSERT_EQ(card->state(), CardState::tran);
  }
  // CMD23 + CMD18 of `count` sectors from `sector` (byte addressed); stops at the first failed block.
  std::vector<std::uint8_t> read(std::uint64_t sector, std::uint16_t count) {
    card->execute({23, count});
    const CommandOutcome o = card->execute({18, static_cast<std::uint32_t>(sector * kSectorSize)});
    std::vector<std::uint8_t> out;
    std::vector<std::uint8_t> block(kSectorSize);
    for (std::uint32_t i = 0; i < o.data.blocks; ++i) {
      if (!card->read_block(block.data(), block.size()).ok) break;
      out.insert(out.end(), block.begin(), block.end());
    }
    return out;
  }

  MemoryImage image;
  InstrumentedStorage user;
  std::unique_ptr<Card> card;
};

TEST_F(CardDataMediumTest, LongReadsReturnEveryBlockAcrossReadAheadRuns) {
  const auto data = pattern(300, 140);
  user.write(1000, 300, data.data());
  EXPECT_EQ(read(1000, 300), data);
  EXPECT_EQ(card->state(), CardState::tran);
  // Open-ended, stopped part-way: what was handed out is right.
  const CommandOutcome o = card->execute({18, 1000 * kSectorSize});
  ASSERT_EQ(o.data.blocks, 0u);
  std::vector<std::uint8_t> block(kSectorSize);
  for (std::uint32_t i = 0; i < 130; ++i) {
    ASSERT_TRUE(card->read_block(block.data(), kSectorSize).ok);
    ASSERT_EQ(block, slice(data, i, 1)) << "block " << i;
  }
  card->execute({12, 0});
  EXPECT_EQ(card->state(), CardState::tran);
}

TEST_F(CardDataMediumTest, ReadsReachTheMediumInRunsNotBlockByBlock) {
  user.reads = 0;
  EXPECT_EQ(read(0, 256).size(), 256 * kSectorSize);
  EXPECT_LE(user.reads, 4u);
  EXPECT_GE(user.reads, 1u);
}

TEST_F(CardDataMediumTest, AMediumErrorIsReportedAtTheBlockItBelongsTo) {
  const auto data = pattern(10, 141);
  user.write(0, 10, data.data());
  user.failing_sector = 5;
  // Blocks 0..4 arrive, block 5 fails with CARD_ECC_FAILED | ERROR reported afterwards.
  EXPECT_EQ(read(0, 10), slice(data, 0, 5));
  EXPECT_EQ(card->state(), CardState::data);
  std::vector<std::uint8_t> block(kSectorSize);
  EXPECT_FALSE(card->read_block(block.data(), kSectorSize).ok);  // the transfer stays failed
  const CommandOutcome stop = card->execute({12, 0});
  EXPECT_NE(stop.response.value & st::kCardEccFailed, 0u);
  EXPECT_NE(stop.response.value & st::kError, 0u);
  EXPECT_EQ(card->state(), CardState::tran);
  // The medium recovers: the same read succeeds.
  user.failing_sector.reset();
  EXPECT_EQ(read(0, 10), data);
}

// Bursts (read_blocks/write_blocks): what a DMA engine or the daemon moves at once.

TEST_F(CardDataMediumTest, BurstReadReturnsWhatSingleBlocksReturnInOneMediumCall) {
  const auto data = pattern(64, 150);
  user.write(40, 64, data.data());
  card->execute({23, 64});
  ASSERT_EQ(card->execute({18, 40 * kSectorSize}).data.blocks, 64u);
  user.reads = 0;
  std::vector<std::uint8_t> out(64 * kSectorSize);
  const BlockOutcome b = card->read_blocks(out.data(), kSectorSize, 64);
  EXPECT_TRUE(b.ok);
  EXPECT_EQ(b.blocks, 64u);
  EXPECT_TRUE(b.transfer_complete);
  EXPECT_EQ(b.work.sectors_read, 64u);
  EXPECT_EQ(user.reads, 1u);
  EXPECT_EQ(out, data);
  EXPECT_EQ(card->state(), CardState::tran);
}

TEST_F(CardDataMediumTest, BurstsAndSingleBlocksInterleaveWithinOneTransfer) {
  const auto data = pattern(20, 151);
  user.write(0, 20, data.data());
  card->execute({23, 20});
  card->execute({18, 0});
  std::vector<std::uint8_t> out(20 * kSectorSize);
  ASSERT_TRUE(card->read_block(out.data(), kSectorSize).ok);  // starts a read-ahead run
  EXPECT_EQ(card->read_blocks(out.data() + kSectorSize, kSectorSize, 7).blocks, 7u);
  ASSERT_TRUE(card->read_block(out.data() + 8 * kSectorSize, kSectorSize).ok);
  const BlockOutcome rest = card->read_blocks(out.data() + 9 * kSectorSize, kSectorSize, 11);
  EXPECT_EQ(rest.blocks, 11u);
  EXPECT_TRUE(rest.transfer_complete);
  EXPECT_EQ(out, data);
}

TEST_F(CardDataMediumTest, BurstReadStopsAtTheFailingBlock) {
  const auto data = pattern(10, 152);
  user.write(0, 10, data.data());
  user.failing_sector = 6;
  card->execute({23, 10});
  card->execute({18, 0});
  std::vector<std::uint8_t> out(10 * kSectorSize);
  const BlockOutcome b = card->read_blocks(out.data(), kSectorSize, 10);
  EXPECT_FALSE(b.ok);
  EXPECT_EQ(b.blocks, 6u);
  EXPECT_EQ(slice(out, 0, 6), slice(data, 0, 6));
  const CommandOutcome stop = card->execute({12, 0});
  EXPECT_NE(stop.response.value & st::kCardEccFailed, 0u);
}

TEST_F(CardDataMediumTest, OpenEndedBurstReadPastTheEndStopsThereWithOutOfRange) {
  const std::uint64_t last = small_config().user_capacity / kSectorSize - 3;
  card->execute({18, static_cast<std::uint32_t>(last * kSectorSize)});
  std::vector<std::uint8_t> out(8 * kSectorSize);
  const BlockOutcome b = card->read_blocks(out.data(), kSectorSize, 8);
  EXPECT_EQ(b.blocks, 3u);
  EXPECT_FALSE(b.ok);
  EXPECT_NE(card->execute({12, 0}).response.value & st::kOutOfRange, 0u);
}

TEST_F(CardDataMediumTest, BurstWriteStopsAtAWriteProtectedGroup) {
  // Protect the group holding sector 1024 (512 KiB groups), then write across its start.
  card->execute({28, 1024 * kSectorSize});
  const auto data = pattern(8, 153);
  card->execute({25, 1020 * kSectorSize});
  const BlockOutcome b = card->write_blocks(data.data(), kSectorSize, 8);
  EXPECT_FALSE(b.ok);
  EXPECT_EQ(b.blocks, 4u);
  EXPECT_EQ(b.work.sectors_programmed, 4u);
  EXPECT_NE(card->execute({12, 0}).response.value & st::kWpViolation, 0u);
  std::vector<std::uint8_t> written(4 * kSectorSize), protected_part(4 * kSectorSize);
  user.read(1020, 4, written.data());
  user.read(1024, 4, protected_part.data());
  EXPECT_EQ(written, slice(data, 0, 4));
  EXPECT_EQ(protected_part, zeros(4));
}

TEST_F(CardDataMediumTest, BurstWriteCompletesACountedTransferWithBusyAndCacheAccounting) {
  card->execute({6, switch_arg(SwitchAccess::write_byte, ec::kCacheCtrl, ec::cache_ctrl::kOn)});
  const auto data = pattern(16, 154);
  card->execute({23, 16});
  card->execute({25, 64 * kSectorSize});
  const BlockOutcome b = card->write_blocks(data.data(), kSectorSize, 16);
  EXPECT_TRUE(b.ok);
  EXPECT_TRUE(b.transfer_complete);
  EXPECT_TRUE(b.busy);
  EXPECT_EQ(b.work.sectors_cached, 16u);
  EXPECT_EQ(b.work.sectors_programmed, 0u);
  EXPECT_EQ(card->state(), CardState::tran);
  const CommandOutcome flush =
      card->execute({6, switch_arg(SwitchAccess::write_byte, ec::kFlushCache, ec::flush_cache::kFlush)});
  EXPECT_EQ(flush.work.sectors_programmed, 16u);
  EXPECT_EQ(read(64, 16), data);
}

TEST_F(CardDataMediumTest, ReliableBurstWriteStaysAllOrNothing) {
  // small_config(): REL_WR_SEC_C = 8. Four of eight blocks, then CMD12: nothing written.
  const auto data = pattern(8, 155);
  card->execute({23, 8 | kCmd23Reliable});
  card->execute({25, 8 * kSectorSize});
  EXPECT_EQ(card->write_blocks(data.data(), kSectorSize, 4).blocks, 4u);
  card->execute({12, 0});
  EXPECT_EQ(read(8, 8), zeros(8));
  card->execute({23, 8 | kCmd23Reliable});
  card->execute({25, 8 * kSectorSize});
  const BlockOutcome b = card->write_blocks(data.data(), kSectorSize, 8);
  EXPECT_TRUE(b.ok && b.transfer_complete);
  EXPECT_EQ(read(8, 8), data);
}

// ---------------------------------------------------------------------------------------------
// CMD23 applies to the next transfer only

TEST_F(CardDataTest, Cmd23AppliesToTheNextTransferOnly) {
  const auto data = pattern(3, 7);
  ASSERT_EQ(h.cmd(23, 4).response.value & st::kAnyError, 0u);
  // CMD24 consumes the count (a single block is a single block).
  const CommandOutcome single = h.cmd(24, h.address(20));
  ASSERT_EQ(single.data.blocks, 1u);
  const BlockOutcome b = h.card().write_block(data.data(), kSectorSize);
  EXPECT_TRUE(b.ok && b.transfer_complete);
  // The next CMD25 has no count left: it is open-ended.
  const CommandOutcome multi = h.cmd(25, h.address(21));
  ASSERT_EQ(multi.data.direction, DataDirection::to_card);
  EXPECT_EQ(multi.data.blocks, 0u);
  for (std::uint32_t i = 1; i < 3; ++i) {
    const BlockOutcome m = h.card().write_block(data.data() + i * kSectorSize, kSectorSize);
    EXPECT_TRUE(m.ok);
    EXPECT_FALSE(m.transfer_complete);
  }
  EXPECT_EQ(h.card().state(), CardState::rcv);
  h.cmd(12);
  EXPECT_EQ(h.card().state(), CardState::tran);
  EXPECT_EQ(h.read_sectors(20, 3), data);
}

TEST_F(CardDataTest, Cmd23CountSurvivesAStatusQuery) {
  ASSERT_EQ(h.cmd(23, 3).response.value & st::kAnyError, 0u);
  EXPECT_EQ(st::current_state(h.status()), state_code(CardState::tran));
  const CommandOutcome o = h.cmd(18, h.address(0));
  EXPECT_EQ(o.data.blocks, 3u);
  EXPECT_EQ(h.read_data(o).size(), 3 * kSectorSize);
  EXPECT_EQ(h.card().state(), CardState::tran);
}

TEST_F(CardDataTest, Cmd23CountIsConsumedByAnUnrelatedCommand) {
  ASSERT_EQ(h.cmd(23, 3).response.value & st::kAnyError, 0u);
  // Any command other than CMD13 consumes the count.
  h.switch_byte(ec::kEraseGroupDef, ec::erase_group_def::kHighCapacity);
  const CommandOutcome o = h.cmd(18, h.address(0));
  EXPECT_EQ(o.data.blocks, 0u);
  h.cmd(12);
  EXPECT_EQ(h.card().state(), CardState::tran);
}

// ---------------------------------------------------------------------------------------------
// Partitions: user, boot1, boot2, GP

class CardDataPartitionTest : public ::testing::TestWithParam<Partition> {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(h.identify_and_select());
    ASSERT_NO_FATAL_FAILURE(select_partition(h, GetParam()));
  }
  CardHarness h{gp_config()};
};

TEST_P(CardDataPartitionTest, EveryTransferKindReadsBackWhatWasWritten) {
  const Partition p = GetParam();
  const auto single = pattern(1, 10 + static_cast<std::uint32_t>(p));
  const auto counted = pattern(6, 20 + static_cast<std::uint32_t>(p));
  const auto open = pattern(4, 30 + static_cast<std::uint32_t>(p));
  ASSERT_TRUE(write_single(h, 1, single));
  ASSERT_TRUE(h.write_sectors(10, counted));
  ASSERT_TRUE(write_open_ended(h, 100, open));
  EXPECT_EQ(read_single(h, 1), single);
  EXPECT_EQ(h.read_sectors(10, 6), counted);
  EXPECT_EQ(read_open_ended(h, 100, 4), open);
  EXPECT_EQ(medium(h, p, 10, 6), counted);
  EXPECT_EQ(h.card().current_partition(), p);
  // The last sector of the partition is reachable; one past it is not.
  const std::uint64_t last = h.image().backend().storage(p)->sectors() - 1;
  const auto tail = pattern(1, 40 + static_cast<std::uint32_t>(p));
  ASSERT_TRUE(write_single(h, last, tail));
  EXPECT_EQ(read_single(h, last), tail);
  EXPECT_NE(h.cmd(17, h.address(last + 1)).response.value & st::kOutOfRange, 0u);
  EXPECT_EQ(h.card().state(), CardState::tran);
}

INSTANTIATE_TEST_SUITE_P(CardData, CardDataPartitionTest,
                         ::testing::Values(Partition::user, Partition::boot1, Partition::boot2, Partition::gp1,
                                           Partition::gp2),
                         [](const ::testing::TestParamInfo<Partition>& param_info) {
                           return std::string(partition_name(param_info.param));
                         });

TEST(CardDataPartitions, PartitionsAreIsolatedFromEachOther) {
  CardHarness h(gp_config());
  ASSERT_NO_FATAL_FAILURE(h.identify_and_select());
  const Partition partitions[] = {Partition::user, Partition::boot1, Partition::boot2, Partition::gp1, Partition::gp2};
  std::uint32_t seed = 50;
  for (Partition p : partitions) {
    ASSERT_NO_FATAL_FAILURE(select_partition(h, p));
    ASSERT_TRUE(h.write_sectors(7, pattern(2, seed++)));
  }
  seed = 50;
  for (Partition p : partitions) {
    ASSERT_NO_FATAL_FAILURE(select_partition(h, p));
    const auto expected = pattern(2, seed++);
    EXPECT_EQ(h.read_sectors(7, 2), expected) << partition_name(p);
    EXPECT_EQ(medium(h, p, 7, 2), expected) << partition_name(p);
  }
  // Erasing one partition leaves the others alone.
  ASSERT_NO_FATAL_FAILURE(select_partition(h, Partition::boot1));
  erase(h, 7, 8, 1);
  EXPECT_EQ(h.read_sectors(7, 2), zeros(2));
  ASSERT_NO_FATAL_FAILURE(select_partition(h, Partition::user));
  EXPECT_EQ(h.read_sectors(7, 2), pattern(2, 50));
  EXPECT_EQ(medium(h, Partition::boot2, 7, 2), pattern(2, 52));
}

// ---------------------------------------------------------------------------------------------
// Reliable write (small_config: REL_WR_SEC_C = 8, byte addressing)

class CardDataReliableTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(h.identify_and_select());
    ASSERT_TRUE(h.write_sectors(16, old_data));
  }
  CardHarness h{small_config()};
  const std::vector<std::uint8_t> old_data = pattern(8, 60);
  const std::vector<std::uint8_t> new_data = pattern(8, 61);
};

TEST_F(CardDataReliableTest, ExtCsdAdvertisesTheReliableWriteUnit) { EXPECT_EQ(h.card().ext_csd()[ec::kRelWrSecC], 8); }

TEST_F(CardDataReliableTest, CompletedReliableWriteWritesEverySectorAtTheEnd) {
  ASSERT_EQ(h.cmd(23, 8 | kCmd23Reliable).response.value & st::kAnyError, 0u);
  const CommandOutcome o = h.cmd(25, h.address(16));
  ASSERT_EQ(o.data.blocks, 8u);
  for (std::uint32_t i = 0; i < 7; ++i) {
    const BlockOutcome b = h.card().write_block(new_data.data() + i * kSectorSize, kSectorSize);
    ASSERT_TRUE(b.ok);
    EXPECT_EQ(b.work.sectors_programmed, 0u);
  }
  // Staged, not yet on the medium.
  EXPECT_EQ(medium(h, Partition::user, 16, 8), old_data);
  const BlockOutcome last = h.card().write_block(new_data.data() + 7 * kSectorSize, kSectorSize);
  EXPECT_TRUE(last.ok);
  EXPECT_TRUE(last.transfer_complete);
  EXPECT_EQ(last.work.sectors_programmed, 8u);
  EXPECT_EQ(h.card().state(), CardState::tran);
  EXPECT_EQ(medium(h, Partition::user, 16, 8), new_data);
  EXPECT_EQ(h.read_sectors(16, 8), new_data);
}

TEST_F(CardDataReliableTest, StoppedReliableWriteLeavesTheOldDataEntirely) {
  ASSERT_EQ(h.cmd(23, 8 | kCmd23Reliable).response.value & st::kAnyError, 0u);
  ASSERT_EQ(h.cmd(25, h.address(16)).data.blocks, 8u);
  for (std::uint32_t i = 0; i < 5; ++i)
    ASSERT_TRUE(h.card().write_block(new_data.data() + i * kSectorSize, kSectorSize).ok);
  const CommandOutcome stop = h.cmd(12);
  EXPECT_EQ(stop.response.type, ResponseType::r1b);
  EXPECT_EQ(h.card().state(), CardState::tran);
  EXPECT_EQ(medium(h, Partition::user, 16, 8), old_data);
  EXPECT_EQ(h.read_sectors(16, 8), old_data);
}

TEST_F(CardDataReliableTest, PowerLossDuringAReliableWriteLeavesTheOldData) {
  ASSERT_EQ(h.cmd(23, 8 | kCmd23Reliable).response.value & st::kAnyError, 0u);
  ASSERT_EQ(h.cmd(25, h.address(16)).data.blocks, 8u);
  for (std::uint32_t i = 0; i < 7; ++i)
    ASSERT_TRUE(h.card().write_block(new_data.data() + i * kSectorSize, kSectorSize).ok);
  h.card().power_cycle();
  ASSERT_NO_FATAL_FAILURE(h.identify_and_select());
  EXPECT_EQ(h.read_sectors(16, 8), old_data);
}

TEST_F(CardDataReliableTest, SingleSectorReliableWrite) {
  ASSERT_EQ(h.cmd(23, 1 | kCmd23Reliable).response.value & st::kAnyError, 0u);
  ASSERT_EQ(h.cmd(25, h.address(19)).data.blocks, 1u);
  const BlockOutcome b = h.card().write_block(new_data.data(), kSectorSize);
  EXPECT_TRUE(b.ok && b.transfer_complete);
  EXPECT_EQ(b.work.sectors_programmed, 1u);
  auto expected = old_data;
  std::copy(new_data.begin(), new_data.begin() + kSectorSize, expected.begin() + 3 * kSectorSize);
  EXPECT_EQ(h.read_sectors(16, 8), expected);
}

// ---------------------------------------------------------------------------------------------
// Addressing

TEST(CardDataAddressing, ByteAddressedCardTakesByteAddresses) {
  CardHarness h(small_config());
  ASSERT_NO_FATAL_FAILURE(h.identify_and_select());
  ASSERT_FALSE(h.card().config().sector_addressing());
  const auto data = pattern(1, 70);
  const CommandOutcome o = h.cmd(24, 5 * kSectorSize);
  ASSERT_EQ(o.data.direction, DataDirection::to_card);
  ASSERT_TRUE(h.card().write_block(data.data(), kSectorSize).ok);
  EXPECT_EQ(medium(h, Partition::user, 5, 1), data);
  EXPECT_EQ(medium(h, Partition::user, 0, 1), zeros(1));
  const CommandOutcome r = h.cmd(17, 5 * kSectorSize);
  EXPECT_EQ(h.read_data(r), data);
}

TEST(CardDataAddressing, ByteAddressedCardRejectsMisalignedAddresses) {
  CardHarness h(small_config());
  ASSERT_NO_FATAL_FAILURE(h.identify_and_select());
  for (std::uint8_t index : std::initializer_list<std::uint8_t>{17, 18, 24, 25}) {
    const CommandOutcome o = h.cmd(index, 5 * kSectorSize + 100);
    EXPECT_NE(o.response.value & st::kAddressMisalign, 0u) << "CMD" << int{index};
    EXPECT_EQ(o.data.direction, DataDirection::none) << "CMD" << int{index};
    EXPECT_EQ(h.card().state(), CardState::tran) << "CMD" << int{index};
  }
}

TEST(CardDataAddressing, SectorAddressedCardTakesSectorNumbers) {
  CardHarness h;
  ASSERT_NO_FATAL_FAILURE(h.identify_and_select());
  ASSERT_TRUE(h.card().config().sector_addressing());
  const auto data = pattern(1, 71);
  ASSERT_EQ(h.cmd(24, 5).data.direction, DataDirection::to_card);
  ASSERT_TRUE(h.card().write_block(data.data(), kSectorSize).ok);
  EXPECT_EQ(medium(h, Partition::user, 5, 1), data);
  // An argument that would be misaligned as a byte address is simply sector 100.
  ASSERT_EQ(h.cmd(24, 100).data.direction, DataDirection::to_card);
  ASSERT_TRUE(h.card().write_block(data.data(), kSectorSize).ok);
  EXPECT_EQ(medium(h, Partition::user, 100, 1), data);
}

TEST(CardDataAddressing, TransfersBeyondTheEndAreOutOfRange) {
  CardHarness h(small_config());
  ASSERT_NO_FATAL_FAILURE(h.identify_and_select());
  const std::uint64_t sectors = h.card().config().user_capacity / kSectorSize;
  EXPECT_NE(h.cmd(17, h.address(sectors)).response.value & st::kOutOfRange, 0u);
  h.cmd(23, 4);
  EXPECT_NE(h.cmd(18, h.address(sectors - 2)).response.value & st::kOutOfRange, 0u);
  EXPECT_EQ(h.card().state(), CardState::tran);
  // Open-ended reads may start at the last sector and fail when they run past it.
  const CommandOutcome o = h.cmd(18, h.address(sectors - 1));
  ASSERT_EQ(o.data.direction, DataDirection::to_host);
  std::vector<std::uint8_t> block(kSectorSize);
  EXPECT_TRUE(h.card().read_block(block.data(), kSectorSize).ok);
  EXPECT_FALSE(h.card().read_block(block.data(), kSectorSize).ok);
  EXPECT_NE(h.cmd(12).response.value & st::kOutOfRange, 0u);
  EXPECT_EQ(h.card().state(), CardState::tran);
}

// ---------------------------------------------------------------------------------------------
// Erase, trim, discard, secure trim (erase group: 1024 sectors in the default configuration)

class CardDataEraseTest : public CardDataTest {
 protected:
  // One marker sector at each of these; the erase group boundary is at 1024.
  static constexpr std::uint64_t kMarks[] = {0, 1000, 1009, 1010, 1020, 1021, 1023, 1024, 1030, 2047, 2048};
  void SetUp() override {
    CardDataTest::SetUp();
    ASSERT_EQ(h.card().ext_csd()[ec::kEraseGroupDef] & 1, 0);
    for (std::uint64_t s : kMarks) ASSERT_TRUE(write_single(h, s, mark(s)));
  }
  static std::vector<std::uint8_t> mark(std::uint64_t sector) {
    return pattern(1, 1000 + static_cast<std::uint32_t>(sector));
  }
  // The marker sectors that read as zeros now.
  std::vector<std::uint64_t> erased_marks() {
    std::vector<std::uint64_t> erased;
    for (std::uint64_t s : kMarks) {
      const auto now = read_single(h, s);
      if (now == zeros(1))
        erased.push_back(s);
      else
        EXPECT_EQ(now, mark(s)) << "sector " << s;
    }
    return erased;
  }
};

TEST_F(CardDataEraseTest, EraseCoversWholeEraseGroups) {
  const CommandOutcome o = erase(h, 1010, 1020, 0);
  EXPECT_EQ(o.response.type, ResponseType::r1b);
  EXPECT_EQ(o.response.value & st::kAnyError, 0u);
  EXPECT_TRUE(o.busy);
  EXPECT_EQ(o.work.erase_groups, 1u);
  EXPECT_EQ(o.work.sectors_trimmed, 0u);
  EXPECT_EQ(h.card().state(), CardState::tran);
  // JEDEC: erase works on whole erase groups, so sectors outside the range but inside the group go too.
  EXPECT_EQ(erased_marks(), (std::vector<std::uint64_t>{0, 1000, 1009, 1010, 1020, 1021, 1023}));
}

TEST_F(CardDataEraseTest, EraseAcrossAGroupBoundaryErasesBothGroups) {
  const CommandOutcome o = erase(h, 1023, 1024, 0);
  EXPECT_EQ(o.work.erase_groups, 2u);
  EXPECT_EQ(erased_marks(), (std::vector<std::uint64_t>{0, 1000, 1009, 1010, 1020, 1021, 1023, 1024, 1030, 2047}));
}

TEST_F(CardDataEraseTest, TrimErasesOnlyTheSectorsInTheRange) {
  const CommandOutcome o = erase(h, 1010, 1020, 1);
  EXPECT_EQ(o.response.value & st::kAnyError, 0u);
  EXPECT_EQ(o.work.sectors_trimmed, 11u);
  EXPECT_EQ(o.work.erase_groups, 0u);
  EXPECT_EQ(erased_marks(), (std::vector<std::uint64_t>{1010, 1020}));
}

TEST_F(CardDataEraseTest, DiscardErasesOnlyTheSectorsInTheRange) {
  const CommandOutcome o = erase(h, 1021, 1030, 3);
  EXPECT_EQ(o.response.value & st::kAnyError, 0u);
  EXPECT_EQ(o.work.sectors_trimmed, 10u);
  EXPECT_EQ(erased_marks(), (std::vector<std::uint64_t>{1021, 1023, 1024, 1030}));
}

TEST_F(CardDataEraseTest, SecureTrimErasesTheMarkedSectorsAtStepTwo) {
  const CommandOutcome step1 = erase(h, 1009, 1010, 0x80000001);
  EXPECT_EQ(step1.response.value & st::kAnyError, 0u);
  EXPECT_EQ(step1.work.sectors_trimmed, 0u);
  const CommandOutcome step1b = erase(h, 2047, 2047, 0x80000001);
  EXPECT_EQ(step1b.response.value & st::kAnyError, 0u);
  // Step 2 erases what step 1 marked, whatever range CMD35/CMD36 give it.
  const CommandOutcome step2 = erase(h, 0, 0, 0x80008000);
  EXPECT_EQ(step2.response.value & st::kAnyError, 0u);
  EXPECT_EQ(step2.work.sectors_trimmed, 3u);
  EXPECT_EQ(erased_marks(), (std::vector<std::uint64_t>{1009, 1010, 2047}));
  // The marks are used up: another step 2 erases nothing.
  EXPECT_EQ(erase(h, 0, 0, 0x80008000).work.sectors_trimmed, 0u);
  EXPECT_EQ(read_single(h, 0), mark(0));
}

TEST_F(CardDataEraseTest, Cmd38WithoutTheAddressesIsASequenceError) {
  const CommandOutcome o = h.cmd(38, 0);
  EXPECT_NE(o.response.value & st::kEraseSeqError, 0u);
  EXPECT_EQ(o.work.erase_groups, 0u);
  EXPECT_TRUE(erased_marks().empty());
}

TEST(CardDataErase, ByteAddressedTrimTakesByteAddresses) {
  CardHarness h(small_config());
  ASSERT_NO_FATAL_FAILURE(h.identify_and_select());
  const auto data = pattern(6, 80);
  ASSERT_TRUE(h.write_sectors(10, data));
  ASSERT_EQ(h.cmd(35, 11 * kSectorSize).response.value & st::kAnyError, 0u);
  ASSERT_EQ(h.cmd(36, 13 * kSectorSize).response.value & st::kAnyError, 0u);
  const CommandOutcome o = h.cmd(38, 1);
  EXPECT_EQ(o.work.sectors_trimmed, 3u);
  auto expected = data;
  std::fill(expected.begin() + kSectorSize, expected.begin() + 4 * kSectorSize, 0);
  EXPECT_EQ(h.read_sectors(10, 6), expected);
  // A misaligned byte address is refused and ends the sequence.
  EXPECT_NE(h.cmd(35, 11 * kSectorSize + 1).response.value & st::kAddressMisalign, 0u);
}

// ---------------------------------------------------------------------------------------------
// Cache (CACHE_CTRL, FLUSH_CACHE, forced programming)

TEST_F(CardDataTest, WithoutTheCacheEveryBlockIsProgrammed) {
  ASSERT_EQ(h.card().ext_csd()[ec::kCacheCtrl], 0);
  const auto data = pattern(3, 90);
  h.cmd(23, 3);
  h.cmd(25, h.address(0));
  for (std::uint32_t i = 0; i < 3; ++i) {
    const BlockOutcome b = h.card().write_block(data.data() + i * kSectorSize, kSectorSize);
    EXPECT_EQ(b.work.sectors_programmed, 1u);
    EXPECT_EQ(b.work.sectors_cached, 0u);
  }
}

TEST_F(CardDataTest, CachedWritesAreProgrammedByFlushCache) {
  const CommandOutcome enable = h.switch_byte(ec::kCacheCtrl, ec::cache_ctrl::kOn);
  EXPECT_EQ(enable.work.ext_csd_writes, 1u);
  EXPECT_EQ(enable.work.cache_flushes, 0u);
  ASSERT_EQ(h.card().ext_csd()[ec::kCacheCtrl], 1);
  const auto data = pattern(6, 91);
  ASSERT_EQ(h.cmd(23, 6).response.value & st::kAnyError, 0u);
  h.cmd(25, h.address(200));
  for (std::uint32_t i = 0; i < 6; ++i) {
    const BlockOutcome b = h.card().write_block(data.data() + i * kSectorSize, kSectorSize);
    ASSERT_TRUE(b.ok);
    EXPECT_EQ(b.work.sectors_cached, 1u);
    EXPECT_EQ(b.work.sectors_programmed, 0u);
  }
  ASSERT_TRUE(write_single(h, 300, pattern(1, 92)));
  // Cached data reads back before the flush.
  EXPECT_EQ(h.read_sectors(200, 6), data);

  const CommandOutcome flush = h.switch_byte(ec::kFlushCache, ec::flush_cache::kFlush);
  EXPECT_EQ(flush.response.type, ResponseType::r1b);
  EXPECT_EQ(flush.work.cache_flushes, 1u);
  EXPECT_EQ(flush.work.sectors_programmed, 7u);
  EXPECT_EQ(h.status() & st::kSwitchError, 0u);
  EXPECT_EQ(h.card().ext_csd()[ec::kFlushCache], 0);  // reads back as 0
  // Nothing dirty any more.
  const CommandOutcome again = h.switch_byte(ec::kFlushCache, ec::flush_cache::kFlush);
  EXPECT_EQ(again.work.cache_flushes, 1u);
  EXPECT_EQ(again.work.sectors_programmed, 0u);
  EXPECT_EQ(h.read_sectors(200, 6), data);
}

TEST_F(CardDataTest, ForcedProgrammingBypassesTheCache) {
  h.switch_byte(ec::kCacheCtrl, ec::cache_ctrl::kOn);
  ASSERT_TRUE(write_single(h, 10, pattern(1, 93)));  // one dirty sector
  const auto data = pattern(4, 94);
  ASSERT_EQ(h.cmd(23, 4 | kCmd23Forced).response.value & st::kAnyError, 0u);
  ASSERT_EQ(h.cmd(25, h.address(20)).data.blocks, 4u);
  for (std::uint32_t i = 0; i < 4; ++i) {
    const BlockOutcome b = h.card().write_block(data.data() + i * kSectorSize, kSectorSize);
    ASSERT_TRUE(b.ok);
    EXPECT_EQ(b.work.sectors_programmed, 1u);
    EXPECT_EQ(b.work.sectors_cached, 0u);
  }
  const CommandOutcome flush = h.switch_byte(ec::kFlushCache, ec::flush_cache::kFlush);
  EXPECT_EQ(flush.work.cache_flushes, 1u);
  EXPECT_EQ(flush.work.sectors_programmed, 1u);
  EXPECT_EQ(h.read_sectors(20, 4), data);
}

TEST_F(CardDataTest, DisablingTheCacheFlushesDirtyData) {
  h.switch_byte(ec::kCacheCtrl, ec::cache_ctrl::kOn);
  ASSERT_TRUE(h.write_sectors(0, pattern(5, 95)));
  const CommandOutcome disable = h.switch_byte(ec::kCacheCtrl, ec::cache_ctrl::kOff);
  EXPECT_EQ(disable.work.cache_flushes, 1u);
  EXPECT_EQ(disable.work.sectors_programmed, 5u);
  EXPECT_EQ(h.card().ext_csd()[ec::kCacheCtrl], 0);
  const auto data = pattern(1, 96);
  ASSERT_EQ(h.cmd(24, h.address(9)).data.blocks, 1u);
  EXPECT_EQ(h.card().write_block(data.data(), kSectorSize).work.sectors_programmed, 1u);
}

TEST_F(CardDataTest, DisablingACleanCacheIsOnlyTheSwitch) {
  // WorkReport::cache_flushes counts FLUSH_CACHE, and turning the cache off with dirty data.
  h.switch_byte(ec::kCacheCtrl, ec::cache_ctrl::kOn);
  ASSERT_TRUE(write_single(h, 10, pattern(1, 97)));
  ASSERT_EQ(h.switch_byte(ec::kFlushCache, ec::flush_cache::kFlush).work.cache_flushes, 1u);  // clean again
  const CommandOutcome disable = h.switch_byte(ec::kCacheCtrl, ec::cache_ctrl::kOff);
  EXPECT_EQ(disable.response.type, ResponseType::r1b);
  EXPECT_EQ(disable.work.cache_flushes, 0u) << describe_work(disable.work);
  EXPECT_EQ(disable.work.sectors_programmed, 0u);
  EXPECT_EQ(disable.work.ext_csd_writes, 1u);
  EXPECT_EQ(h.card().ext_csd()[ec::kCacheCtrl], ec::cache_ctrl::kOff);
  EXPECT_EQ(h.status() & st::kAnyError, 0u);
}

// ---------------------------------------------------------------------------------------------
// Work reports

TEST_F(CardDataTest, ReadsReportOneSectorPerBlock) {
  ASSERT_TRUE(h.write_sectors(0, pattern(4, 100)));
  h.cmd(23, 4);
  const CommandOutcome o = h.cmd(18, h.address(0));
  EXPECT_TRUE(o.work.empty()) << describe_work(o.work);
  std::vector<std::uint8_t> block(kSectorSize);
  WorkReport total;
  for (int i = 0; i < 4; ++i) {
    const BlockOutcome b = h.card().read_block(block.data(), kSectorSize);
    EXPECT_EQ(b.work.sectors_read, 1u);
    EXPECT_EQ(b.work.sectors_programmed, 0u);
    total += b.work;
  }
  EXPECT_EQ(total.sectors_read, 4u);
  const CommandOutcome s = h.cmd(17, h.address(3));
  ASSERT_EQ(s.data.blocks, 1u);
  EXPECT_EQ(h.card().read_block(block.data(), kSectorSize).work.sectors_read, 1u);
}

TEST_F(CardDataTest, Cmd6ReportsOneExtCsdWrite) {
  const CommandOutcome o = h.switch_byte(ec::kEraseGroupDef, ec::erase_group_def::kHighCapacity);
  EXPECT_EQ(o.response.type, ResponseType::r1b);
  EXPECT_TRUE(o.busy);
  EXPECT_EQ(o.work.ext_csd_writes, 1u);
  EXPECT_EQ(o.work.partition_switches, 0u);
  EXPECT_EQ(h.card().ext_csd()[ec::kEraseGroupDef], 1);
  // A rejected switch writes nothing and reports SWITCH_ERROR in the next response.
  const CommandOutcome bad = h.switch_byte(ec::kEraseGroupDef, 7);
  EXPECT_EQ(bad.work.ext_csd_writes, 0u);
  EXPECT_NE(h.status() & st::kSwitchError, 0u);
  EXPECT_EQ(h.card().ext_csd()[ec::kEraseGroupDef], 1);
}

TEST_F(CardDataTest, PartitionSwitchIsReportedOnlyWhenTheAccessChanges) {
  namespace pc = ec::partition_config;
  const CommandOutcome to_boot = h.switch_byte(ec::kPartitionConfig, pc::value(Partition::boot1));
  EXPECT_EQ(to_boot.work.partition_switches, 1u);
  EXPECT_EQ(to_boot.work.ext_csd_writes, 1u);
  EXPECT_EQ(h.card().current_partition(), Partition::boot1);
  const CommandOutcome same = h.switch_byte(ec::kPartitionConfig, pc::value(Partition::boot1));
  EXPECT_EQ(same.work.partition_switches, 0u);
  const CommandOutcome back = h.switch_byte(ec::kPartitionConfig, pc::value(Partition::user));
  EXPECT_EQ(back.work.partition_switches, 1u);
  EXPECT_EQ(h.card().current_partition(), Partition::user);
}

TEST_F(CardDataTest, WritesReportOneProgrammedSectorPerBlockAndNothingForTheCommand) {
  h.cmd(23, 2);
  const CommandOutcome o = h.cmd(25, h.address(0));
  EXPECT_TRUE(o.work.empty()) << describe_work(o.work);
  const auto data = pattern(2, 101);
  const BlockOutcome first = h.card().write_block(data.data(), kSectorSize);
  EXPECT_EQ(first.work.sectors_programmed, 1u);
  EXPECT_FALSE(first.busy);
  const BlockOutcome second = h.card().write_block(data.data() + kSectorSize, kSectorSize);
  EXPECT_EQ(second.work.sectors_programmed, 1u);
  EXPECT_TRUE(second.busy);  // the card programs after the last block
}

// ---------------------------------------------------------------------------------------------
// Sleep (CMD5)

TEST_F(CardDataTest, SleepAndAwakeKeepTheData) {
  const auto data = pattern(2, 110);
  ASSERT_TRUE(h.write_sectors(0, data));
  EXPECT_EQ(h.cmd(7, 0).response.type, ResponseType::none);  // deselect
  ASSERT_EQ(h.card().state(), CardState::stby);
  const CommandOutcome sleep = h.cmd(5, kRcaArg | sleep_awake::kSleep);
  EXPECT_EQ(sleep.response.type, ResponseType::r1b);
  EXPECT_TRUE(sleep.busy);
  EXPECT_EQ(r1_state(sleep), state_code(CardState::stby));
  EXPECT_EQ(sleep.work.sleep_transitions, 1u);
  EXPECT_EQ(h.card().state(), CardState::slp);
  const CommandOutcome awake = h.cmd(5, kRcaArg);
  EXPECT_EQ(awake.response.type, ResponseType::r1b);
  EXPECT_EQ(r1_state(awake), state_code(CardState::slp));
  EXPECT_EQ(awake.work.sleep_transitions, 1u);
  EXPECT_EQ(h.card().state(), CardState::stby);
  h.cmd(7, kRcaArg);
  ASSERT_EQ(h.card().state(), CardState::tran);
  EXPECT_EQ(h.read_sectors(0, 2), data);
}

TEST_F(CardDataTest, OnlyCmd0AndCmd5AreLegalInSleep) {
  h.cmd(7, 0);
  h.cmd(5, kRcaArg | sleep_awake::kSleep);
  ASSERT_EQ(h.card().state(), CardState::slp);
  int checked = 0;
  for (const CommandSpec& spec : command_table()) {
    if (spec.index == 0 || spec.index == 5) continue;
    for (std::uint32_t arg : {0u, kRcaArg, kRcaArg | sleep_awake::kSleep}) {
      const CommandOutcome o = h.cmd(spec.index, arg);
      EXPECT_TRUE(o.illegal) << "CMD" << int{spec.index} << " arg " << arg;
      EXPECT_EQ(o.response.type, ResponseType::none) << "CMD" << int{spec.index};
      ASSERT_EQ(h.card().state(), CardState::slp) << "CMD" << int{spec.index};
    }
    ++checked;
  }
  EXPECT_GT(checked, 20);
  EXPECT_NE(h.card().pending_status() & st::kIllegalCommand, 0u);
  // Sleeping again is not legal either; awake and CMD0 are.
  EXPECT_TRUE(h.cmd(5, kRcaArg | sleep_awake::kSleep).illegal);
  EXPECT_FALSE(h.cmd(5, kRcaArg).illegal);
  EXPECT_EQ(h.card().state(), CardState::stby);
  h.cmd(5, kRcaArg | sleep_awake::kSleep);
  EXPECT_FALSE(h.cmd(0, 0).illegal);
  EXPECT_EQ(h.card().state(), CardState::idle);
}

TEST_F(CardDataTest, SleepIsOnlyReachableFromStandby) {
  EXPECT_TRUE(h.cmd(5, kRcaArg | sleep_awake::kSleep).illegal);
  EXPECT_EQ(h.card().state(), CardState::tran);
}

// ---------------------------------------------------------------------------------------------
// Boot operation (CMD0 0xFFFFFFFA)

class CardDataBootTest : public CardDataTest {
 protected:
  static constexpr std::uint32_t kBootInitiation = go_idle::kBootInitiation;
  void SetUp() override {
    CardDataTest::SetUp();
    ASSERT_NO_FATAL_FAILURE(select_partition(h, Partition::boot1));
    ASSERT_TRUE(h.write_sectors(0, boot1));
    ASSERT_NO_FATAL_FAILURE(select_partition(h, Partition::boot2));
    ASSERT_TRUE(h.write_sectors(0, boot2));
    ASSERT_NO_FATAL_FAILURE(select_partition(h, Partition::user));
    ASSERT_TRUE(h.write_sectors(0, user));
  }
  const std::vector<std::uint8_t> boot1 = pattern(3, 120);
  const std::vector<std::uint8_t> boot2 = pattern(3, 121);
  const std::vector<std::uint8_t> user = pattern(3, 122);
};

TEST_F(CardDataBootTest, BootEnable1StreamsBootPartition1UntilCmd0) {
  namespace pc = ec::partition_config;
  h.switch_byte(ec::kPartitionConfig, pc::value(Partition::user, pc::kBootFromBoot1));
  ASSERT_EQ(h.status() & st::kSwitchError, 0u);
  h.cmd(0, 0);
  ASSERT_EQ(h.card().state(), CardState::idle);
  const CommandOutcome o = h.cmd(0, kBootInitiation);
  EXPECT_FALSE(o.illegal);
  ASSERT_EQ(h.card().state(), CardState::boot);
  EXPECT_EQ(o.data.direction, DataDirection::to_host);
  EXPECT_EQ(o.data.block_size, kSectorSize);
  EXPECT_EQ(o.data.blocks, h.card().config().boot_partition_size / kSectorSize);
  std::vector<std::uint8_t> streamed(3 * kSectorSize);
  for (std::uint32_t i = 0; i < 3; ++i)
    ASSERT_TRUE(h.card().read_block(streamed.data() + i * kSectorSize, kSectorSize).ok);
  EXPECT_EQ(streamed, boot1);
  EXPECT_EQ(h.card().state(), CardState::boot);
  h.cmd(0, 0);  // ends the boot operation
  EXPECT_EQ(h.card().state(), CardState::idle);
  std::vector<std::uint8_t> block(kSectorSize);
  EXPECT_FALSE(h.card().read_block(block.data(), kSectorSize).ok);
  // The card still identifies normally afterwards.
  ASSERT_NO_FATAL_FAILURE(h.identify_and_select());
  EXPECT_EQ(h.read_sectors(0, 3), user);
}

TEST_F(CardDataBootTest, BootEnable2StreamsBootPartition2) {
  namespace pc = ec::partition_config;
  h.switch_byte(ec::kPartitionConfig, pc::value(Partition::user, pc::kBootFromBoot2));
  h.cmd(0, 0);
  const CommandOutcome o = h.cmd(0, kBootInitiation);
  ASSERT_EQ(h.card().state(), CardState::boot);
  std::vector<std::uint8_t> streamed(3 * kSectorSize);
  for (std::uint32_t i = 0; i < 3; ++i)
    ASSERT_TRUE(h.card().read_block(streamed.data() + i * kSectorSize, o.data.block_size).ok);
  EXPECT_EQ(streamed, boot2);
}

TEST_F(CardDataBootTest, WithoutBootEnableTheCardStaysIdle) {
  h.cmd(0, 0);
  const CommandOutcome o = h.cmd(0, kBootInitiation);
  EXPECT_EQ(o.data.direction, DataDirection::none);
  EXPECT_EQ(h.card().state(), CardState::idle);
  std::vector<std::uint8_t> block(kSectorSize);
  EXPECT_FALSE(h.card().read_block(block.data(), kSectorSize).ok);
}

// ---------------------------------------------------------------------------------------------
// CMD30 / CMD31 write-protect status: 4 and 8 bytes

TEST_F(CardDataTest, SendWriteProtSendsFourBytesAndTypeSendsEight) {
  const CommandOutcome set = h.cmd(28, h.address(0));
  ASSERT_EQ(set.response.value & st::kAnyError, 0u);
  const CommandOutcome o30 = h.cmd(30, h.address(0));
  ASSERT_EQ(o30.data.direction, DataDirection::to_host);
  EXPECT_EQ(o30.data.block_size, 4u);
  EXPECT_EQ(o30.data.blocks, 1u);
  std::vector<std::uint8_t> big(kSectorSize);
  EXPECT_FALSE(h.card().read_block(big.data(), kSectorSize).ok);  // wrong size: nothing moves
  std::vector<std::uint8_t> bits(4, 0xEE);
  const BlockOutcome b30 = h.card().read_block(bits.data(), bits.size());
  EXPECT_TRUE(b30.ok && b30.transfer_complete);
  EXPECT_EQ(bits, (std::vector<std::uint8_t>{0, 0, 0, 1}));  // the addressed group is the last bit
  EXPECT_EQ(h.card().state(), CardState::tran);

  const CommandOutcome o31 = h.cmd(31, h.address(0));
  ASSERT_EQ(o31.data.direction, DataDirection::to_host);
  EXPECT_EQ(o31.data.block_size, 8u);
  std::vector<std::uint8_t> types(8, 0xEE);
  EXPECT_FALSE(h.card().read_block(types.data(), 4).ok);
  EXPECT_TRUE(h.card().read_block(types.data(), types.size()).ok);
  EXPECT_EQ(types, (std::vector<std::uint8_t>{0, 0, 0, 0, 0, 0, 0, 1}));  // temporary protection
  EXPECT_EQ(h.card().state(), CardState::tran);
}

// ---------------------------------------------------------------------------------------------
// CMD21 tuning block: HS200 only

TEST_F(CardDataTest, TuningBlockIsIllegalOutsideHs200) {
  const CommandOutcome o = h.cmd(21);
  EXPECT_TRUE(o.illegal);
  EXPECT_EQ(o.data.direction, DataDirection::none);
  EXPECT_EQ(h.card().state(), CardState::tran);
  h.switch_byte(ec::kBusWidth, ec::bus_width::k8Bit);
  h.switch_byte(ec::kHsTiming, ec::hs_timing::kHighSpeed);  // not HS200
  ASSERT_EQ(h.status() & st::kSwitchError, 0u);
  EXPECT_TRUE(h.cmd(21).illegal);
}

TEST_F(CardDataTest, TuningBlockInHs200Is128BytesOn8BitAnd64On4Bit) {
  h.switch_byte(ec::kBusWidth, ec::bus_width::k8Bit);
  h.switch_byte(ec::kHsTiming, ec::hs_timing::kHs200);
  ASSERT_EQ(h.status() & st::kSwitchError, 0u);
  ASSERT_EQ(h.card().ext_csd()[ec::kHsTiming] & 0xF, 2);
  const CommandOutcome o8 = h.cmd(21);
  ASSERT_FALSE(o8.illegal);
  EXPECT_EQ(o8.response.type, ResponseType::r1);
  EXPECT_EQ(o8.data.block_size, 128u);
  EXPECT_EQ(o8.data.blocks, 1u);
  const auto p8 = h.read_data(o8);
  ASSERT_EQ(p8.size(), 128u);
  EXPECT_EQ(p8[0], 0xff);
  EXPECT_EQ(p8[2], 0x00);
  EXPECT_EQ(p8[10], 0xcc);
  EXPECT_EQ(p8[127], 0xee);
  EXPECT_EQ(h.card().state(), CardState::tran);

  h.switch_byte(ec::kBusWidth, ec::bus_width::k4Bit);
  ASSERT_EQ(h.status() & st::kSwitchError, 0u);
  const CommandOutcome o4 = h.cmd(21);
  ASSERT_FALSE(o4.illegal);
  EXPECT_EQ(o4.data.block_size, 64u);
  const auto p4 = h.read_data(o4);
  ASSERT_EQ(p4.size(), 64u);
  EXPECT_EQ((std::vector<std::uint8_t>(p4.begin(), p4.begin() + 4)),
            (std::vector<std::uint8_t>{0xff, 0x0f, 0xff, 0x00}));
  EXPECT_EQ(p4[63], 0xde);
  EXPECT_NE(p4, std::vector<std::uint8_t>(p8.begin(), p8.begin() + 64));
}

// ---------------------------------------------------------------------------------------------
// A file-backed image: data written through a card is there after reopening

using TemporaryDirectory = emmcsim::testing::ScratchDirectory;

// CMD0, CMD1 until ready, CMD2, CMD3, CMD7 on a card without a harness around it.
void identify_and_select(Card& card) {
  card.execute({0, 0});
  for (int i = 0; i < 1000 && card.state() != CardState::ready; ++i) card.execute({1, testing::kHostOcr});
  card.execute({2, 0});
  card.execute({3, kRcaArg});
  card.execute({7, kRcaArg});
}

TEST(CardDataImage, DataWrittenThroughACardSurvivesReopeningTheImage) {
  TemporaryDirectory tmp;
  ASSERT_FALSE(tmp.path().empty());
  const std::string dir = tmp.path() + "/image";
  const DeviceConfig config = small_config();
  const auto user_data = pattern(9, 130);
  const auto boot_data = pattern(2, 131);
  {
    std::unique_ptr<Image> image = Image::create(dir, config);
    Card card(image->config(), image->backend());
    identify_and_select(card);
    ASSERT_EQ(card.state(), CardState::tran);
    // Counted write at sector 3 (byte address), single write at the last sector, boot1 sector 0.
    card.execute({23, 9});
    ASSERT_EQ(card.execute({25, 3 * kSectorSize}).data.blocks, 9u);
    for (std::size_t i = 0; i < 9; ++i)
      ASSERT_TRUE(card.write_block(user_data.data() + i * kSectorSize, kSectorSize).ok);
    const std::uint64_t last = config.user_capacity / kSectorSize - 1;
    ASSERT_EQ(card.execute({24, static_cast<std::uint32_t>(last * kSectorSize)}).data.blocks, 1u);
    ASSERT_TRUE(card.write_block(user_data.data(), kSectorSize).ok);
    card.execute({6, kSwitchToBoot1});
    ASSERT_EQ(card.current_partition(), Partition::boot1);
    card.execute({23, 2});
    card.execute({25, 0});
    for (std::size_t i = 0; i < 2; ++i)
      ASSERT_TRUE(card.write_block(boot_data.data() + i * kSectorSize, kSectorSize).ok);
    ASSERT_EQ(card.state(), CardState::tran);
  }
  std::unique_ptr<Image> image = Image::open(dir);
  ASSERT_EQ(image->config(), config);
  Card card(image->config(), image->backend());
  identify_and_select(card);
  ASSERT_EQ(card.state(), CardState::tran);
  auto read = [&card](std::uint32_t address, std::uint16_t count) {
    card.execute({23, count});
    if (card.execute({18, address}).data.blocks != count) return std::vector<std::uint8_t>{};
    std::vector<std::uint8_t> out(std::size_t{count} * kSectorSize);
    for (std::size_t i = 0; i < count; ++i)
      if (!card.read_block(out.data() + i * kSectorSize, kSectorSize).ok) return std::vector<std::uint8_t>{};
    return out;
  };
  EXPECT_EQ(read(3 * kSectorSize, 9), user_data);
  EXPECT_EQ(read(0, 3), zeros(3));
  const std::uint64_t last = config.user_capacity / kSectorSize - 1;
  EXPECT_EQ(read(static_cast<std::uint32_t>(last * kSectorSize), 1), slice(user_data, 0, 1));
  card.execute({6, kSwitchToBoot1});
  EXPECT_EQ(read(0, 2), boot_data);
}

}  // namespace
}  // namespace emmcsim::mmc
