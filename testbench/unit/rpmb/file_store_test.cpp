// FileStore on real files: an image round-trips the partition state and data, refuses to be
// created twice or opened twice, rejects impossible sizes, and reports every truncated, foreign
// or damaged image as FileStoreCorrupt (leaving the file untouched) instead of resetting it.
// Format version 2: a ring of K journal slots (4..1024, default 32) and a checkpoint every K
// commits; images round-trip across many turns of the ring and opening writes nothing.
// The bit-flip sweep damages one bit at a time in every region of the file and accepts only
// two outcomes: the open throws, or it yields exactly the state and data of the intact image.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "emmcsim/rpmb/file_store.hpp"
#include "emmcsim/rpmb/protocol.hpp"
#include "emmcsim/rpmb/storage_file.hpp"
#include "scratch_directory.hpp"

namespace emmcsim::rpmb {
namespace {

using ::testing::HasSubstr;

// ---------------------------------------------------------------------------------------------
// Scratch files

using emmcsim::testing::ScratchDirectory;

std::vector<std::uint8_t> read_whole_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  return std::vector<std::uint8_t>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_whole_file(const std::string& path, const std::vector<std::uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + path);
}

// CRC-32 (IEEE 802.3, reflected), the checksum the image format names.
std::uint32_t crc32_of(const std::uint8_t* bytes, std::size_t size) {
  std::uint32_t crc = 0xFFFFFFFFu;
  for (std::size_t i = 0; i < size; ++i) {
    crc ^= bytes[i];
    for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

std::uint32_t load_le32(const std::vector<std::uint8_t>& bytes, std::uint64_t offset) {
  std::uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= std::uint32_t{bytes.at(offset + static_cast<std::uint64_t>(i))} << (8 * i);
  return v;
}

void store_le32(std::vector<std::uint8_t>& bytes, std::uint64_t offset, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) {
    bytes.at(offset + static_cast<std::uint64_t>(i)) = static_cast<std::uint8_t>(v >> (8 * i));
  }
}

// ---------------------------------------------------------------------------------------------
// A reference of what the store must hold, kept beside it

Key test_key() {
  Key key{};
  for (std::size_t i = 0; i < key.size(); ++i) key[i] = static_cast<std::uint8_t>(0xA0 + 7 * i);
  return key;
}

// Contents that name the commit (tag) and the half-sector within it, so a mismatch says whose
// data a half-sector holds.
HalfSector tagged_half_sector(std::uint32_t tag, std::uint32_t index) {
  HalfSector hs{};
  for (std::size_t b = 0; b < hs.size(); ++b) hs[b] = static_cast<std::uint8_t>(tag * 29 + index * 13 + b);
  std::memcpy(hs.data(), &tag, sizeof tag);
  return hs;
}

// One commit as the store was given it: what its journal record must hold.
struct Committed {
  PartitionState state;
  std::uint16_t address = 0;
  std::uint16_t count = 0;
  std::vector<std::uint8_t> data;
};

struct ReferenceDevice {
  PartitionState state;
  std::map<std::uint32_t, HalfSector> contents;  // half-sector address -> last contents written
  std::vector<Committed> log;                    // log[s - 1]: commit sequence s
};

// The device after its first `commits` commits.
ReferenceDevice replayed(const ReferenceDevice& reference, std::uint64_t commits) {
  ReferenceDevice device;
  for (std::uint64_t s = 1; s <= commits; ++s) {
    const Committed& c = reference.log.at(s - 1);
    device.state = c.state;
    for (std::uint16_t i = 0; i < c.count; ++i) {
      HalfSector hs{};
      std::memcpy(hs.data(), c.data.data() + std::size_t{i} * kHalfSectorSize, kHalfSectorSize);
      device.contents[std::uint32_t{c.address} + i] = hs;
    }
    device.log.push_back(c);
  }
  return device;
}

std::string describe(const PartitionState& s) {
  return fmt::format("{{key {} ({:02x}..), counter {}, result {:#06x}/{:#04x}/{}/{}, config {}/{}}}", s.key_programmed,
                     s.key[0], s.write_counter, static_cast<unsigned>(s.result_register.type), s.result_register.result,
                     s.result_register.write_counter, s.result_register.address,
                     s.device_configuration.secure_wp_mode_enable, s.device_configuration.secure_wp_mode_config);
}

// An authenticated data write as the engine would commit it.
void commit_data(FileStore& store, ReferenceDevice& reference, std::uint16_t address, std::uint16_t count,
                 std::uint32_t tag) {
  PartitionState next = reference.state;
  next.write_counter += 1;
  next.result_register = ResultRegister{ResponseType::authenticated_write, 0, next.write_counter, address};
  std::vector<std::uint8_t> data(std::size_t{count} * kHalfSectorSize);
  for (std::uint16_t i = 0; i < count; ++i) {
    const HalfSector hs = tagged_half_sector(tag, i);
    std::memcpy(data.data() + std::size_t{i} * kHalfSectorSize, hs.data(), hs.size());
  }
  store.commit(Commit{&next, address, count, data.data()});
  for (std::uint16_t i = 0; i < count; ++i) {
    reference.contents[std::uint32_t{address} + i] = tagged_half_sector(tag, i);
  }
  reference.state = next;
  reference.log.push_back(Committed{next, address, count, std::move(data)});
}

void commit_state(FileStore& store, ReferenceDevice& reference, const PartitionState& next) {
  store.commit(Commit{&next, 0, 0, nullptr});
  reference.state = next;
  reference.log.push_back(Committed{next, 0, 0, {}});
}

void commit_key(FileStore& store, ReferenceDevice& reference) {
  PartitionState next = reference.state;
  next.key_programmed = true;
  next.key = test_key();
  next.result_register = ResultRegister{ResponseType::program_key, 0, next.write_counter, 0};
  commit_state(store, reference, next);
}

void commit_configuration(FileStore& store, ReferenceDevice& reference, std::uint16_t config_address,
                          std::uint8_t value) {
  PartitionState next = reference.state;
  next.write_counter += 1;
  if (config_address == kConfigAddressSecureWpModeEnable) {
    next.device_configuration.secure_wp_mode_enable = value;
  } else {
    next.device_configuration.secure_wp_mode_config = value;
  }
  next.result_register = ResultRegister{ResponseType::device_config_write, 0, next.write_counter, config_address};
  commit_state(store, reference, next);
}

// The store's state and every half-sector equal the reference (unwritten half-sectors are zero).
::testing::AssertionResult holds_exactly(const Store& store, const ReferenceDevice& reference) {
  if (store.state() != reference.state) {
    return ::testing::AssertionFailure() << "state " << describe(store.state()) << ", expected "
                                         << describe(reference.state);
  }
  std::vector<std::uint8_t> all(std::size_t{store.half_sectors()} * kHalfSectorSize);
  store.read(0, store.half_sectors(), all.data());
  const HalfSector zero{};
  std::string mismatches;
  std::size_t mismatch_count = 0;
  for (std::uint32_t h = 0; h < store.half_sectors(); ++h) {
    const auto it = reference.contents.find(h);
    const HalfSector& expected = it == reference.contents.end() ? zero : it->second;
    if (std::memcmp(all.data() + std::size_t{h} * kHalfSectorSize, expected.data(), kHalfSectorSize) != 0) {
      if (++mismatch_count <= 8) mismatches += fmt::format(" {}", h);
    }
  }
  if (mismatch_count != 0) {
    return ::testing::AssertionFailure() << mismatch_count
                                         << " half-sector(s) differ from the reference:" << mismatches;
  }
  return ::testing::AssertionSuccess();
}

class FileStoreTest : public ::testing::Test {
 protected:
  std::string image_path() const { return directory_.file(FileStore::kFileName); }

  // An image with a programmed key, a moved counter, a configuration and data in several places.
  ReferenceDevice make_image_with_commits(std::uint32_t size_mult,
                                          Durability durability = Durability::sync_every_commit,
                                          unsigned journal_slots = FileStore::kDefaultJournalSlots) {
    ReferenceDevice reference;
    auto store = FileStore::create_at(image_path(), size_mult, durability, journal_slots);
    const std::uint32_t last = store->half_sectors() - 1;
    commit_key(*store, reference);
    commit_data(*store, reference, 0, 1, 1);
    commit_data(*store, reference, 5, 2, 2);
    commit_configuration(*store, reference, kConfigAddressSecureWpModeEnable, 1);
    commit_data(*store, reference, static_cast<std::uint16_t>(last - 31), 32, 3);
    commit_data(*store, reference, 6, 1, 4);  // overwrites half of the 2-frame write
    commit_configuration(*store, reference, kConfigAddressSecureWpModeConfig, 1);
    commit_data(*store, reference, static_cast<std::uint16_t>(last), 1, 5);
    EXPECT_TRUE(holds_exactly(*store, reference));
    return reference;
  }

  ScratchDirectory directory_;
};

// ---------------------------------------------------------------------------------------------
// Round trips

TEST_F(FileStoreTest, NewImageIsBlankAndReopensBlank) {
  {
    auto store = FileStore::create_at(image_path(), 1);
    EXPECT_EQ(store->half_sectors(), 512u);
    EXPECT_EQ(store->size_mult(), 1u);
    EXPECT_EQ(store->durability(), Durability::sync_every_commit);
    EXPECT_EQ(store->path(), image_path());
    EXPECT_TRUE(holds_exactly(*store, ReferenceDevice{}));
  }
  auto reopened = FileStore::open_at(image_path());
  EXPECT_EQ(reopened->commit_sequence(), 0u);
  EXPECT_TRUE(holds_exactly(*reopened, ReferenceDevice{}));
  EXPECT_FALSE(std::filesystem::exists(image_path() + ".creating"));
  // The image holds the key in the clear: only its owner may read it.
  EXPECT_EQ(std::filesystem::status(image_path()).permissions(),
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
}

TEST_F(FileStoreTest, CreateThenOpenRoundTripsStateAndData) {
  const ReferenceDevice reference = make_image_with_commits(1);
  auto reopened = FileStore::open_at(image_path());
  EXPECT_EQ(reopened->size_mult(), 1u);
  EXPECT_EQ(reopened->commit_sequence(), 8u);
  EXPECT_TRUE(reopened->state().key_programmed);
  EXPECT_EQ(reopened->state().key, test_key());
  EXPECT_EQ(reopened->state().write_counter, 7u);
  EXPECT_EQ(reopened->state().result_register, (ResultRegister{ResponseType::authenticated_write, 0, 7, 511}));
  EXPECT_EQ(reopened->state().device_configuration, (DeviceConfiguration{1, 1}));
  EXPECT_TRUE(holds_exactly(*reopened, reference));

  // The reopened image goes on committing, and that survives another reopen too.
  ReferenceDevice continued = reference;
  commit_data(*reopened, continued, 300, 2, 6);
  reopened.reset();
  auto again = FileStore::open_at(image_path());
  EXPECT_EQ(again->commit_sequence(), 9u);
  EXPECT_TRUE(holds_exactly(*again, continued));
}

TEST_F(FileStoreTest, RoundTripsAtOtherSizeMultipliers) {
  for (const std::uint32_t size_mult : {2u, 3u, 128u}) {
    SCOPED_TRACE(fmt::format("size multiplier {}", size_mult));
    const ReferenceDevice reference = make_image_with_commits(size_mult);
    {
      auto reopened = FileStore::open_at(image_path());
      EXPECT_EQ(reopened->size_mult(), size_mult);
      EXPECT_EQ(reopened->half_sectors(), size_mult * 512);
      EXPECT_TRUE(holds_exactly(*reopened, reference));
    }
    EXPECT_GE(std::filesystem::file_size(image_path()), std::uint64_t{size_mult} * kSizeMultUnit);
    std::filesystem::remove(image_path());
  }
}

TEST_F(FileStoreTest, OsManagedDurabilityAlsoPersistsAcrossReopen) {
  const ReferenceDevice reference = make_image_with_commits(1, Durability::os_managed);
  auto reopened = FileStore::open_at(image_path(), Durability::os_managed);
  EXPECT_EQ(reopened->durability(), Durability::os_managed);
  EXPECT_TRUE(holds_exactly(*reopened, reference));
  // An os_managed image is the same format: the default policy opens it too.
  reopened.reset();
  EXPECT_TRUE(holds_exactly(*FileStore::open_at(image_path()), reference));
}

TEST_F(FileStoreTest, CommitBeyondThePartitionIsRefusedAndChangesNothing) {
  ReferenceDevice reference;
  auto store = FileStore::create_at(image_path(), 1);
  commit_data(*store, reference, 10, 1, 1);
  PartitionState next = reference.state;
  next.write_counter += 1;
  const std::vector<std::uint8_t> data(33 * kHalfSectorSize, 0x5A);
  EXPECT_THROW(store->commit(Commit{&next, 511, 2, data.data()}), std::out_of_range);
  EXPECT_THROW(store->commit(Commit{&next, 0, 33, data.data()}), std::out_of_range);
  EXPECT_TRUE(holds_exactly(*store, reference));
  // A refused request is not a failed commit: the store goes on working.
  commit_data(*store, reference, 511, 1, 2);
  store.reset();
  EXPECT_TRUE(holds_exactly(*FileStore::open_at(image_path()), reference));
}

// ---------------------------------------------------------------------------------------------
// Creation and opening rules

TEST_F(FileStoreTest, CreateAtRefusesAnExistingImage) {
  const ReferenceDevice reference = make_image_with_commits(1);
  const std::vector<std::uint8_t> before = read_whole_file(image_path());
  try {
    FileStore::create_at(image_path(), 1);
    FAIL() << "create_at replaced an existing image";
  } catch (const StoreError& e) {
    EXPECT_THAT(e.what(), HasSubstr("already exists"));
  }
  EXPECT_EQ(read_whole_file(image_path()), before);
  EXPECT_TRUE(holds_exactly(*FileStore::open_at(image_path()), reference));
}

TEST_F(FileStoreTest, CreateAtRefusesAnyExistingFile) {
  const std::vector<std::uint8_t> unrelated = {'n', 'o', 't', ' ', 'a', 'n', ' ', 'i', 'm', 'a', 'g', 'e'};
  write_whole_file(image_path(), unrelated);
  EXPECT_THROW(FileStore::create_at(image_path(), 1), StoreError);
  EXPECT_EQ(read_whole_file(image_path()), unrelated);
}

TEST_F(FileStoreTest, CreateOverAFileThatHoldsDataIsRefused) {
  const ReferenceDevice reference = make_image_with_commits(1);
  const std::vector<std::uint8_t> before = read_whole_file(image_path());
  try {
    FileStore::create(std::make_unique<PosixStorageFile>(image_path(), PosixStorageFile::Mode::open_existing), 1,
                      Durability::sync_every_commit);
    FAIL() << "create() overwrote an image";
  } catch (const StoreError& e) {
    EXPECT_THAT(e.what(), HasSubstr("existing data"));
  }
  EXPECT_EQ(read_whole_file(image_path()), before);
  EXPECT_TRUE(holds_exactly(*FileStore::open_at(image_path()), reference));
}

TEST_F(FileStoreTest, SecondOpenWhileOpenFailsBecauseTheImageIsInUse) {
  auto first = FileStore::create_at(image_path(), 1);  // create_at hands back an open, locked image
  for (int attempt = 0; attempt < 2; ++attempt) {
    try {
      FileStore::open_at(image_path());
      FAIL() << "a second FileStore opened an image that is in use";
    } catch (const FileStoreCorrupt& e) {
      FAIL() << "an image in use was reported as corrupt: " << e.what();
    } catch (const StoreError& e) {
      EXPECT_THAT(e.what(), HasSubstr("in use"));
      EXPECT_THAT(e.what(), HasSubstr(image_path()));
    }
  }
  // The refused opens did not disturb the open store, and closing it releases the lock.
  ReferenceDevice reference;
  commit_data(*first, reference, 1, 1, 1);
  first.reset();
  auto second = FileStore::open_at(image_path());
  EXPECT_TRUE(holds_exactly(*second, reference));
}

TEST_F(FileStoreTest, SizeMultiplierOutsideOneTo128IsRejected) {
  for (const std::uint32_t size_mult : {0u, 129u}) {
    SCOPED_TRACE(fmt::format("size multiplier {}", size_mult));
    try {
      FileStore::create_at(image_path(), size_mult);
      FAIL() << "an impossible size multiplier was accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_THAT(e.what(), HasSubstr(std::to_string(size_mult)));
    }
    EXPECT_FALSE(std::filesystem::exists(image_path()));
    EXPECT_FALSE(std::filesystem::exists(image_path() + ".creating"));
  }
}

TEST_F(FileStoreTest, OpeningAMissingImageFailsWithoutCreatingIt) {
  try {
    FileStore::open_at(image_path());
    FAIL() << "opened an image that does not exist";
  } catch (const FileStoreCorrupt& e) {
    FAIL() << "a missing image is not a corrupt one: " << e.what();
  } catch (const StoreError& e) {
    EXPECT_THAT(e.what(), HasSubstr(image_path()));
  }
  EXPECT_FALSE(std::filesystem::exists(image_path()));
}

// ---------------------------------------------------------------------------------------------
// Damaged sizes and foreign files

struct SizeDamage {
  const char* name;
  std::uint64_t (*new_size)(std::uint64_t intact_size);
};

class FileStoreSizeDamageTest : public FileStoreTest, public ::testing::WithParamInterface<SizeDamage> {};

TEST_P(FileStoreSizeDamageTest, IsReportedAsCorruptAndLeavesTheFileAlone) {
  make_image_with_commits(1);
  const std::uint64_t intact_size = std::filesystem::file_size(image_path());
  const std::uint64_t damaged_size = GetParam().new_size(intact_size);
  std::filesystem::resize_file(image_path(), damaged_size);
  const std::vector<std::uint8_t> before = read_whole_file(image_path());
  try {
    FileStore::open_at(image_path());
    FAIL() << "opened an image of " << damaged_size << " bytes (intact: " << intact_size << ")";
  } catch (const FileStoreCorrupt& e) {
    const std::string why = e.what();
    if (damaged_size < intact_size) {
      EXPECT_THAT(why, HasSubstr("truncated"));
    } else {
      EXPECT_THAT(why, HasSubstr("wrong size"));
    }
    EXPECT_THAT(why, HasSubstr(image_path()));
  }
  EXPECT_EQ(read_whole_file(image_path()), before) << "a failed open changed the image";
}

INSTANTIATE_TEST_SUITE_P(
    Sizes, FileStoreSizeDamageTest,
    ::testing::Values(SizeDamage{"truncated_by_one_byte", [](std::uint64_t size) { return size - 1; }},
                      SizeDamage{"truncated_to_half", [](std::uint64_t size) { return size / 2; }},
                      SizeDamage{"truncated_to_a_few_bytes", [](std::uint64_t) { return std::uint64_t{100}; }},
                      SizeDamage{"truncated_to_zero", [](std::uint64_t) { return std::uint64_t{0}; }},
                      SizeDamage{"extended_by_one_byte", [](std::uint64_t size) { return size + 1; }},
                      SizeDamage{"extended_by_a_page", [](std::uint64_t size) { return size + 4096; }}),
    [](const ::testing::TestParamInfo<SizeDamage>& damage) { return std::string(damage.param.name); });

TEST_F(FileStoreTest, RandomBytesAreNotAnImage) {
  std::mt19937 random(0x5EED0001);
  for (const std::uint64_t size : {std::uint64_t{0x9000 + kSizeMultUnit}, std::uint64_t{1} << 20}) {
    SCOPED_TRACE(fmt::format("{} random bytes", size));
    std::vector<std::uint8_t> noise(size);
    for (auto& b : noise) b = static_cast<std::uint8_t>(random());
    write_whole_file(image_path(), noise);
    try {
      FileStore::open_at(image_path());
      FAIL() << "random bytes opened as an image";
    } catch (const FileStoreCorrupt& e) {
      EXPECT_THAT(e.what(), HasSubstr("bad magic"));
    }
    EXPECT_EQ(read_whole_file(image_path()), noise) << "a failed open changed the file";
  }
}

TEST_F(FileStoreTest, AFileOfZerosIsNotAnImage) {
  write_whole_file(image_path(), std::vector<std::uint8_t>(0x9000 + kSizeMultUnit, 0));
  try {
    FileStore::open_at(image_path());
    FAIL() << "a file of zeros opened as an image";
  } catch (const FileStoreCorrupt& e) {
    EXPECT_THAT(e.what(), HasSubstr("bad magic"));
  }
}

// ---------------------------------------------------------------------------------------------
// Format version 2, written out here from docs/rpmb-store.md (never taken from file_store.cpp),
// so that the tests below check real images against the documented layout byte for byte.

namespace image_layout {
constexpr std::uint64_t kPage = 0x1000;
constexpr std::uint32_t kFormatVersion = 2;
constexpr std::uint64_t kHeaderBytes = 64;  // CRC-32 of bytes 0..59 at 60; the rest of the page is zero
constexpr std::uint64_t kVersionOffset = 16;
constexpr std::uint64_t kJournalSlotsOffset = 28;
constexpr std::uint64_t kHeaderCrcOffset = 60;
constexpr std::uint64_t kCheckpointOffset = 0x1000;  // checkpoint slot i at 0x1000 + i * 0x1000
constexpr std::uint64_t kJournalOffset = 0x3000;     // journal slot i at 0x3000 + i * 0x3000
constexpr std::uint64_t kJournalSlotBytes = 0x3000;
constexpr std::uint64_t kSealBytes = 16;                // at +0 of a journal slot
constexpr std::uint64_t kRecordInSlot = 64;             // the journal record at +64
constexpr std::uint64_t kRecordOverheadBytes = 72 + 4;  // record header and closing CRC-32
constexpr std::uint32_t kRecordMagic = 0x4c4e4a52;      // "RJNL"
constexpr std::uint32_t kCheckpointMagic = 0x504b4352;  // "RCKP"
constexpr std::uint32_t kSealMagic = 0x4c414553;        // "SEAL"
constexpr std::uint32_t kHalfSectorsForSizeMultOne = 512;

std::uint64_t round_up(std::uint64_t v, std::uint64_t unit) { return (v + unit - 1) / unit * unit; }
std::uint64_t checkpoint_slot(unsigned slot) { return kCheckpointOffset + slot * kPage; }
std::uint64_t journal_slot(std::uint64_t slot) { return kJournalOffset + slot * kJournalSlotBytes; }
std::uint64_t checksum_table(unsigned journal_slots) { return journal_slot(journal_slots); }
std::uint64_t data_offset(unsigned journal_slots, std::uint32_t size_mult) {
  return checksum_table(journal_slots) + round_up(std::uint64_t{size_mult} * 512 * 4, kPage);
}
std::uint64_t file_bytes(unsigned journal_slots, std::uint32_t size_mult) {
  return data_offset(journal_slots, size_mult) + std::uint64_t{size_mult} * kSizeMultUnit;
}
// Commit s checkpoints first when s - K > c: checkpoints land at 0, K, 2K, ... and after n
// commits the newest holds floor((n - 1) / K) * K. Opening writes none.
std::uint64_t checkpoint_after(std::uint64_t commits, unsigned journal_slots) {
  return commits == 0 ? 0 : (commits - 1) / journal_slots * journal_slots;
}
// The j-th checkpoint (sequence j * K) alternates between the two slots, starting in slot 0.
unsigned checkpoint_slot_of(std::uint64_t checkpoint, unsigned journal_slots) {
  return static_cast<unsigned>(checkpoint / journal_slots % 2);
}
// With n >= K commits every journal slot i holds the newest record s <= n with s % K == i, and
// the seal of the newest t <= n with (t + 1) % K == i.
std::uint64_t record_in_slot(std::uint64_t slot, std::uint64_t commits, unsigned journal_slots) {
  return commits - (commits + journal_slots - slot) % journal_slots;
}
std::uint64_t seal_in_slot(std::uint64_t slot, std::uint64_t commits, unsigned journal_slots) {
  return commits - (commits + 1 + journal_slots - slot) % journal_slots;
}
}  // namespace image_layout

class LittleEndian {
 public:
  LittleEndian& u8(std::uint8_t v) {
    bytes_.push_back(v);
    return *this;
  }
  LittleEndian& u16(std::uint16_t v) { return put(v, 2); }
  LittleEndian& u32(std::uint32_t v) { return put(v, 4); }
  LittleEndian& u64(std::uint64_t v) { return put(v, 8); }
  LittleEndian& raw(const std::uint8_t* p, std::size_t n) {
    bytes_.insert(bytes_.end(), p, p + n);
    return *this;
  }
  LittleEndian& zeros_up_to(std::size_t size) {
    bytes_.resize(size, 0);
    return *this;
  }
  LittleEndian& crc() { return u32(crc32_of(bytes_.data(), bytes_.size())); }
  const std::vector<std::uint8_t>& bytes() const { return bytes_; }

 private:
  LittleEndian& put(std::uint64_t v, int n) {
    for (int i = 0; i < n; ++i) bytes_.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
    return *this;
  }
  std::vector<std::uint8_t> bytes_;
};

std::vector<std::uint8_t> encode_header(std::uint32_t size_mult, unsigned journal_slots) {
  const std::string magic = "emmcsim-rpmb-img";
  LittleEndian out;
  out.raw(reinterpret_cast<const std::uint8_t*>(magic.data()), magic.size());
  out.u32(image_layout::kFormatVersion).u32(size_mult).u32(image_layout::kJournalSlotBytes).u32(journal_slots);
  return out.zeros_up_to(image_layout::kHeaderCrcOffset).crc().bytes();
}

// A journal record (magic RJNL) or a checkpoint record (magic RCKP, address 0, count 0).
std::vector<std::uint8_t> encode_record(std::uint32_t magic, std::uint64_t sequence, const PartitionState& s,
                                        std::uint16_t address, std::uint16_t count,
                                        const std::vector<std::uint8_t>& data) {
  LittleEndian out;
  out.u32(magic).u32(static_cast<std::uint32_t>(image_layout::kRecordOverheadBytes + data.size())).u64(sequence);
  out.u8(s.key_programmed ? 1 : 0)
      .u8(s.device_configuration.secure_wp_mode_enable)
      .u8(s.device_configuration.secure_wp_mode_config)
      .u8(0);
  out.raw(s.key.data(), s.key.size()).u32(s.write_counter);
  out.u16(static_cast<std::uint16_t>(s.result_register.type))
      .u16(s.result_register.result)
      .u32(s.result_register.write_counter)
      .u16(s.result_register.address)
      .u16(0);
  out.u16(address).u16(count).raw(data.data(), data.size());
  return out.crc().bytes();
}

std::vector<std::uint8_t> encode_journal_record(std::uint64_t sequence, const Committed& c) {
  return encode_record(image_layout::kRecordMagic, sequence, c.state, c.address, c.count, c.data);
}

std::vector<std::uint8_t> encode_checkpoint(std::uint64_t sequence, const PartitionState& state) {
  return encode_record(image_layout::kCheckpointMagic, sequence, state, 0, 0, {});
}

std::vector<std::uint8_t> encode_seal(std::uint64_t sequence) {
  return LittleEndian().u32(image_layout::kSealMagic).u64(sequence).crc().bytes();
}

// `image` holds `want` at `offset`.
::testing::AssertionResult holds_bytes(const std::vector<std::uint8_t>& image, std::uint64_t offset,
                                       const std::vector<std::uint8_t>& want) {
  if (offset + want.size() > image.size()) {
    return ::testing::AssertionFailure() << "the image ends before " << offset + want.size();
  }
  const auto at = image.begin() + static_cast<std::ptrdiff_t>(offset);
  const auto differs = std::mismatch(want.begin(), want.end(), at);
  if (differs.first != want.end()) {
    return ::testing::AssertionFailure() << "byte " << offset + static_cast<std::uint64_t>(differs.first - want.begin())
                                         << " is " << int{*differs.second} << ", expected " << int{*differs.first};
  }
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult all_zero(const std::vector<std::uint8_t>& image, std::uint64_t begin, std::uint64_t end) {
  for (std::uint64_t offset = begin; offset < end; ++offset) {
    if (image.at(offset) != 0) return ::testing::AssertionFailure() << "byte " << offset << " is not zero";
  }
  return ::testing::AssertionSuccess();
}

// Commit number i (from 1) of the images the format tests examine: the key first, then data
// writes of 1, 2 and 32 half-sectors below half-sector 300 (the rest is never written) and a
// configuration write every sixth commit.
void commit_number(FileStore& store, ReferenceDevice& reference, std::uint32_t i) {
  if (i == 1) return commit_key(store, reference);
  if (i % 6 == 0) {
    const std::uint16_t address =
        (i / 6) % 2 == 1 ? kConfigAddressSecureWpModeEnable : kConfigAddressSecureWpModeConfig;
    return commit_configuration(store, reference, address, static_cast<std::uint8_t>(i));
  }
  const std::uint16_t count = i % 3 == 0 ? 1 : i % 3 == 1 ? 2 : 32;
  commit_data(store, reference, static_cast<std::uint16_t>(i * 71 % (300 - count)), count, i);
}

// Commit number i (from 2) of the long runs: writes anywhere, the last half-sector included.
void commit_anywhere(FileStore& store, ReferenceDevice& reference, std::uint32_t i) {
  if (i % 7 == 0) {
    const std::uint16_t address =
        (i / 7) % 2 == 1 ? kConfigAddressSecureWpModeEnable : kConfigAddressSecureWpModeConfig;
    return commit_configuration(store, reference, address, static_cast<std::uint8_t>((i / 7) % 2));
  }
  const std::uint16_t count = i % 3 == 0 ? 1 : i % 3 == 1 ? 2 : 32;
  const std::uint32_t last_start = store.half_sectors() - count;
  commit_data(store, reference, static_cast<std::uint16_t>(i * 97 % (last_start + 1)), count, i);
}

// ---------------------------------------------------------------------------------------------
// The journal ring and its checkpoints

TEST_F(FileStoreTest, ANewImageRecordsItsJournalSlotsAndHoldsOneBlankCheckpoint) {
  namespace layout = image_layout;
  ASSERT_EQ(FileStore::kDefaultJournalSlots, 32u);
  for (const unsigned slots : {0u, 4u, 7u, 32u, 1024u}) {  // 0: create_at's default
    const unsigned k = slots == 0 ? 32u : slots;
    SCOPED_TRACE(fmt::format("{} journal slots{}", k, slots == 0 ? " (the default)" : ""));
    {
      auto store = slots == 0 ? FileStore::create_at(image_path(), 1)
                              : FileStore::create_at(image_path(), 1, Durability::sync_every_commit, k);
      EXPECT_EQ(store->journal_slots(), k);
      EXPECT_EQ(store->commit_sequence(), 0u);
      EXPECT_EQ(store->checkpoint_sequence(), 0u);
    }
    const std::vector<std::uint8_t> image = read_whole_file(image_path());
    ASSERT_EQ(image.size(), layout::file_bytes(k, 1));
    EXPECT_TRUE(holds_bytes(image, 0, encode_header(1, k))) << "header";
    EXPECT_EQ(load_le32(image, layout::kJournalSlotsOffset), k);
    EXPECT_TRUE(all_zero(image, layout::kHeaderBytes, layout::kPage)) << "header page padding";
    const std::vector<std::uint8_t> blank_checkpoint = encode_checkpoint(0, PartitionState{});
    EXPECT_TRUE(holds_bytes(image, layout::checkpoint_slot(0), blank_checkpoint)) << "checkpoint slot 0";
    EXPECT_TRUE(all_zero(image, layout::checkpoint_slot(0) + blank_checkpoint.size(), layout::checkpoint_slot(1)))
        << "checkpoint slot 0 padding";
    EXPECT_TRUE(all_zero(image, layout::checkpoint_slot(1), layout::journal_slot(0))) << "checkpoint slot 1";
    const std::uint8_t zero_half_sector[kHalfSectorSize] = {};
    const std::uint32_t zero_crc = crc32_of(zero_half_sector, kHalfSectorSize);
    for (std::uint32_t h = 0; h < layout::kHalfSectorsForSizeMultOne; ++h) {
      ASSERT_EQ(load_le32(image, layout::checksum_table(k) + 4 * std::uint64_t{h}), zero_crc) << "entry " << h;
    }
    EXPECT_TRUE(all_zero(image, layout::data_offset(k, 1), image.size())) << "data region";

    auto reopened = FileStore::open_at(image_path());
    EXPECT_EQ(reopened->journal_slots(), k);
    EXPECT_EQ(reopened->commit_sequence(), 0u);
    EXPECT_EQ(reopened->checkpoint_sequence(), 0u);
    EXPECT_TRUE(holds_exactly(*reopened, ReferenceDevice{}));
    reopened.reset();
    std::filesystem::remove(image_path());
  }
}

TEST_F(FileStoreTest, JournalSlotCountsOutsideFourTo1024AreRejected) {
  for (const unsigned slots : {0u, 1u, 3u, 1025u, 4096u}) {
    SCOPED_TRACE(fmt::format("{} journal slots", slots));
    EXPECT_THROW(FileStore::create_at(image_path(), 1, Durability::sync_every_commit, slots), std::invalid_argument);
    EXPECT_FALSE(std::filesystem::exists(image_path()));
    EXPECT_FALSE(std::filesystem::exists(image_path() + ".creating"));
    // create() refuses before it writes anything.
    const std::string direct = directory_.file("direct.img");
    EXPECT_THROW(FileStore::create(std::make_unique<PosixStorageFile>(direct, PosixStorageFile::Mode::create_new), 1,
                                   Durability::sync_every_commit, slots),
                 std::invalid_argument);
    EXPECT_EQ(std::filesystem::file_size(direct), 0u);
    std::filesystem::remove(direct);
  }
}

TEST_F(FileStoreTest, ImagesWithFourAndThirtyTwoJournalSlotsRoundTripAcrossCheckpoints) {
  for (const unsigned k : {4u, 32u}) {
    SCOPED_TRACE(fmt::format("{} journal slots", k));
    ReferenceDevice reference = make_image_with_commits(1, Durability::sync_every_commit, k);
    {
      auto reopened = FileStore::open_at(image_path());
      EXPECT_EQ(reopened->journal_slots(), k);
      EXPECT_EQ(reopened->commit_sequence(), 8u);
      EXPECT_EQ(reopened->checkpoint_sequence(), image_layout::checkpoint_after(8, k));
      EXPECT_TRUE(holds_exactly(*reopened, reference));
      // On past a checkpoint and once around the ring.
      for (std::uint32_t i = 9; i <= 8 + k + 3; ++i) commit_anywhere(*reopened, reference, i);
      EXPECT_EQ(reopened->checkpoint_sequence(), image_layout::checkpoint_after(8 + k + 3, k));
      EXPECT_GT(reopened->checkpoint_sequence(), 0u);
      EXPECT_TRUE(holds_exactly(*reopened, reference));
    }
    auto again = FileStore::open_at(image_path());
    EXPECT_EQ(again->journal_slots(), k);
    EXPECT_EQ(again->commit_sequence(), 8u + k + 3);
    EXPECT_EQ(again->checkpoint_sequence(), image_layout::checkpoint_after(8 + k + 3, k));
    EXPECT_TRUE(holds_exactly(*again, reference));
    again.reset();
    EXPECT_EQ(std::filesystem::file_size(image_path()), image_layout::file_bytes(k, 1));
    std::filesystem::remove(image_path());
  }
}

TEST_F(FileStoreTest, ManyMoreCommitsThanJournalSlotsSurviveReopeningAtRandomPoints) {
  constexpr unsigned kSlots = 4;
  constexpr std::uint32_t kCommits = 50;
  for (const Durability durability : {Durability::sync_every_commit, Durability::os_managed}) {
    SCOPED_TRACE(durability == Durability::os_managed ? "os_managed" : "sync_every_commit");
    std::mt19937 random(0x5107C0DE);
    ReferenceDevice reference;
    auto store = FileStore::create_at(image_path(), 1, durability, kSlots);
    const std::uint64_t file_size = std::filesystem::file_size(image_path());
    std::set<std::uint64_t> reopened_at_ring_position;  // commits since the checkpoint at reopen
    for (std::uint32_t i = 1; i <= kCommits; ++i) {
      if (i == 1) {
        commit_key(*store, reference);
      } else {
        commit_anywhere(*store, reference, i);
      }
      ASSERT_EQ(store->commit_sequence(), i);
      ASSERT_EQ(store->checkpoint_sequence(), image_layout::checkpoint_after(i, kSlots));
      if (random() % 3 != 0 && i != kCommits) continue;
      store.reset();
      store = FileStore::open_at(image_path(), durability);
      ASSERT_EQ(store->journal_slots(), kSlots);
      ASSERT_EQ(store->commit_sequence(), i);
      ASSERT_EQ(store->checkpoint_sequence(), image_layout::checkpoint_after(i, kSlots))
          << "opening after commit " << i << " moved the checkpoint";
      ASSERT_TRUE(holds_exactly(*store, reference)) << "reopened after commit " << i;
      reopened_at_ring_position.insert(i - store->checkpoint_sequence());
    }
    // Reopened with 1, 2, 3 and 4 records above the checkpoint.
    EXPECT_EQ(reopened_at_ring_position, (std::set<std::uint64_t>{1, 2, 3, 4}));
    store.reset();
    EXPECT_EQ(std::filesystem::file_size(image_path()), file_size);
    std::filesystem::remove(image_path());
  }
}

TEST_F(FileStoreTest, OpeningWritesNothing) {
  // Four journal slots, 11 commits: the checkpoint holds #8, records #9..#11 are redone in RAM.
  ReferenceDevice reference;
  {
    auto store = FileStore::create_at(image_path(), 1, Durability::sync_every_commit, 4);
    for (std::uint32_t i = 1; i <= 11; ++i) commit_number(*store, reference, i);
    ASSERT_EQ(store->checkpoint_sequence(), 8u);
  }
  const std::vector<std::uint8_t> before = read_whole_file(image_path());
  for (const Durability durability : {Durability::sync_every_commit, Durability::os_managed}) {
    auto store = FileStore::open_at(image_path(), durability);
    EXPECT_EQ(store->commit_sequence(), 11u);
    EXPECT_EQ(store->checkpoint_sequence(), 8u);
    EXPECT_TRUE(holds_exactly(*store, reference));
  }
  EXPECT_EQ(read_whole_file(image_path()), before) << "opening changed the image";
}

TEST_F(FileStoreTest, OtherFormatVersionsAreRefused) {
  make_image_with_commits(1);
  const std::vector<std::uint8_t> intact = read_whole_file(image_path());
  for (const std::uint32_t version : {0u, 1u, 3u}) {
    SCOPED_TRACE(fmt::format("format version {}", version));
    std::vector<std::uint8_t> other = intact;
    store_le32(other, image_layout::kVersionOffset, version);
    store_le32(other, image_layout::kHeaderCrcOffset, crc32_of(other.data(), image_layout::kHeaderCrcOffset));
    write_whole_file(image_path(), other);
    try {
      FileStore::open_at(image_path());
      FAIL() << "opened an image of format version " << version;
    } catch (const FileStoreCorrupt& e) {
      EXPECT_THAT(e.what(), HasSubstr("unsupported image format version"));
    }
    EXPECT_EQ(read_whole_file(image_path()), other) << "a failed open changed the file";
  }
}

TEST_F(FileStoreTest, AHeaderNamingAnotherJournalSlotCountIsRefused) {
  ReferenceDevice reference = make_image_with_commits(1, Durability::sync_every_commit, 4);
  const std::vector<std::uint8_t> intact = read_whole_file(image_path());
  for (const std::uint32_t slots : {0u, 1u, 3u, 5u, 32u, 1025u, 0xFFFFFFFFu}) {
    SCOPED_TRACE(fmt::format("header says {} journal slots", slots));
    std::vector<std::uint8_t> other = intact;
    store_le32(other, image_layout::kJournalSlotsOffset, slots);
    store_le32(other, image_layout::kHeaderCrcOffset, crc32_of(other.data(), image_layout::kHeaderCrcOffset));
    write_whole_file(image_path(), other);
    EXPECT_THROW(FileStore::open_at(image_path()), FileStoreCorrupt);
    EXPECT_EQ(read_whole_file(image_path()), other) << "a failed open changed the file";
  }
  write_whole_file(image_path(), intact);
  EXPECT_TRUE(holds_exactly(*FileStore::open_at(image_path()), reference));
}

TEST_F(FileStoreTest, JournalRecordsMissingAboveTheCheckpointAreReportedAndAnUnsealedOneRollsBack) {
  namespace layout = image_layout;
  constexpr unsigned kSlots = 4;
  ReferenceDevice reference;
  {
    auto store = FileStore::create_at(image_path(), 1, Durability::sync_every_commit, kSlots);
    for (std::uint32_t i = 1; i <= 11; ++i) commit_number(*store, reference, i);
  }
  // Checkpoint #8 in slot 0 (#4 in slot 1); records #9, #10, #11 in journal slots 1, 2, 3;
  // seal(#11) in journal slot 0.
  const std::vector<std::uint8_t> intact = read_whole_file(image_path());
  const auto open_with = [&](const std::vector<std::uint8_t>& image) {
    write_whole_file(image_path(), image);
    return FileStore::open_at(image_path());
  };
  const auto without = [&](std::vector<std::uint64_t> offsets) {
    std::vector<std::uint8_t> image = intact;
    for (const std::uint64_t offset : offsets) image.at(offset) ^= 0x01;
    return image;
  };
  for (const std::uint64_t missing : {9u, 10u}) {
    SCOPED_TRACE(fmt::format("record #{} damaged", missing));
    try {
      open_with(without({layout::journal_slot(missing % kSlots) + layout::kRecordInSlot + 20}));
      FAIL() << "opened with record #" << missing << " missing";
    } catch (const FileStoreCorrupt& e) {
      EXPECT_THAT(e.what(), HasSubstr(fmt::format("journal record #{} is missing or damaged", missing)));
    }
  }
  // The newest record is sealed: it was durable, so its damage is not a crash to roll back.
  EXPECT_THROW(open_with(without({layout::journal_slot(3) + layout::kRecordInSlot + 20})), FileStoreCorrupt);
  // Without its seal the newest record may be a torn write of a commit never acknowledged: the
  // image opens at #10.
  {
    auto store =
        open_with(without({layout::journal_slot(3) + layout::kRecordInSlot + 20, layout::journal_slot(0) + 4}));
    EXPECT_EQ(store->commit_sequence(), 10u);
    EXPECT_EQ(store->checkpoint_sequence(), 8u);
    EXPECT_TRUE(holds_exactly(*store, replayed(reference, 10)));
  }
  // No intact checkpoint at all.
  EXPECT_THROW(open_with(without({layout::checkpoint_slot(0) + 9, layout::checkpoint_slot(1) + 9})), FileStoreCorrupt);
  // The newest checkpoint damaged: the older one (#4) needs records #5..#8, long overwritten.
  EXPECT_THROW(open_with(without({layout::checkpoint_slot(0) + 9})), FileStoreCorrupt);
  // The older checkpoint damaged: harmless.
  EXPECT_TRUE(holds_exactly(*open_with(without({layout::checkpoint_slot(1) + 9})), reference));
  EXPECT_TRUE(holds_exactly(*open_with(intact), reference));
}

// ---------------------------------------------------------------------------------------------
// Single-bit damage anywhere in the file

enum class Region {
  header,
  header_page_padding,
  newest_checkpoint,
  older_checkpoint,
  checkpoint_slot_padding,
  seal,
  seal_padding,  // +16..+64 of a journal slot
  newest_journal_record,
  journal_record_above_checkpoint,  // older than the newest, newer than the checkpoint: redone
  journal_record_at_or_below_checkpoint,
  journal_slot_padding,
  checksum_of_redone_half_sector,
  checksum_of_other_half_sector,
  checksum_table_padding,
  redone_data,  // half-sectors the records above the checkpoint carry: opening redoes them
  written_data,
  unwritten_data,
};

const char* region_name(Region r) {
  switch (r) {
    case Region::header: return "header";
    case Region::header_page_padding: return "header page padding";
    case Region::newest_checkpoint: return "newest checkpoint";
    case Region::older_checkpoint: return "older checkpoint";
    case Region::checkpoint_slot_padding: return "checkpoint slot padding";
    case Region::seal: return "seal";
    case Region::seal_padding: return "seal padding";
    case Region::newest_journal_record: return "newest journal record";
    case Region::journal_record_above_checkpoint: return "journal record above the checkpoint";
    case Region::journal_record_at_or_below_checkpoint: return "journal record at/below checkpoint";
    case Region::journal_slot_padding: return "journal slot padding";
    case Region::checksum_of_redone_half_sector: return "checksum of a redone half-sector";
    case Region::checksum_of_other_half_sector: return "checksum of another half-sector";
    case Region::checksum_table_padding: return "checksum table padding";
    case Region::redone_data: return "redone data";
    case Region::written_data: return "written data";
    case Region::unwritten_data: return "unwritten data";
  }
  return "?";
}

constexpr Region kAllRegions[] = {
    Region::header,
    Region::header_page_padding,
    Region::newest_checkpoint,
    Region::older_checkpoint,
    Region::checkpoint_slot_padding,
    Region::seal,
    Region::seal_padding,
    Region::newest_journal_record,
    Region::journal_record_above_checkpoint,
    Region::journal_record_at_or_below_checkpoint,
    Region::journal_slot_padding,
    Region::checksum_of_redone_half_sector,
    Region::checksum_of_other_half_sector,
    Region::checksum_table_padding,
    Region::redone_data,
    Region::written_data,
    Region::unwritten_data,
};

// Damage there must always be detected. The newest checkpoint too: the older one is K commits
// behind, and the records it would need have been overwritten in the ring.
bool must_be_detected(Region r) {
  return r == Region::header || r == Region::newest_checkpoint || r == Region::newest_journal_record ||
         r == Region::journal_record_above_checkpoint || r == Region::checksum_of_other_half_sector ||
         r == Region::written_data || r == Region::unwritten_data;
}

// Damage there must never stop the image from opening: the format ignores a damaged older
// checkpoint, a damaged seal (only seal(n + 1) is ever read) and a damaged record the
// checkpoint already covers, and the redo replaces the half-sectors and checksums it covers.
bool must_be_harmless(Region r) {
  return r == Region::older_checkpoint || r == Region::seal || r == Region::journal_record_at_or_below_checkpoint ||
         r == Region::checksum_of_redone_half_sector || r == Region::redone_data;
}

struct FlipOutcomes {
  int sampled = 0;
  int detected = 0;   // open threw FileStoreCorrupt
  int identical = 0;  // open succeeded with exactly the intact state and data
};

// [begin, end) of the image belongs to `region`.
struct Span {
  std::uint64_t begin;
  std::uint64_t end;
  Region region;
};

// One byte of a file changed in place and changed back, without rewriting the rest.
class FilePatcher {
 public:
  explicit FilePatcher(const std::string& path) : fd_(::open(path.c_str(), O_WRONLY | O_CLOEXEC)) {
    if (fd_ < 0) throw std::runtime_error("cannot open " + path);
  }
  ~FilePatcher() { ::close(fd_); }
  FilePatcher(const FilePatcher&) = delete;
  FilePatcher& operator=(const FilePatcher&) = delete;
  void put(std::uint64_t offset, std::uint8_t value) {
    if (::pwrite(fd_, &value, 1, static_cast<off_t>(offset)) != 1) throw std::runtime_error("pwrite failed");
  }

 private:
  int fd_;
};

struct FlipImage {
  const char* name;
  unsigned journal_slots;
  std::uint32_t commits;
};

class FileStoreBitFlipTest : public FileStoreTest, public ::testing::WithParamInterface<FlipImage> {};

TEST_P(FileStoreBitFlipTest, BitFlipsAreDetectedOrHarmless) {
  namespace layout = image_layout;
  const unsigned k = GetParam().journal_slots;
  const std::uint64_t n = GetParam().commits;
  const std::uint64_t c = layout::checkpoint_after(n, k);
  // Every slot of the ring in use, a checkpoint behind, and several records above it.
  ASSERT_GE(n, k);
  ASSERT_GE(c, k);
  ASSERT_GE(n - c, 3u);

  ReferenceDevice reference;
  {
    auto store = FileStore::create_at(image_path(), 1, Durability::sync_every_commit, k);
    for (std::uint32_t i = 1; i <= n; ++i) commit_number(*store, reference, i);
    ASSERT_EQ(store->commit_sequence(), n);
    ASSERT_EQ(store->checkpoint_sequence(), c);
    ASSERT_EQ(store->journal_slots(), k);
  }
  // What the records above the checkpoint carry.
  std::set<std::uint32_t> redone;
  for (std::uint64_t s = c + 1; s <= n; ++s) {
    const Committed& commit = reference.log.at(s - 1);
    for (std::uint16_t i = 0; i < commit.count; ++i) redone.insert(std::uint32_t{commit.address} + i);
  }
  const ReferenceDevice at_checkpoint = replayed(reference, c);
  const ReferenceDevice at_older_checkpoint = replayed(reference, c - k);
  const unsigned newest_checkpoint_slot = layout::checkpoint_slot_of(c, k);
  const std::uint64_t table = layout::checksum_table(k);
  const std::uint64_t data_offset = layout::data_offset(k, 1);
  const std::uint32_t half_sectors = layout::kHalfSectorsForSizeMultOne;

  // The intact image is what the documented layout says, byte for byte: the sweep below cannot
  // be misdirected by a layout change. In place: the data as of the checkpoint.
  const std::vector<std::uint8_t> intact = read_whole_file(image_path());
  ASSERT_EQ(intact.size(), layout::file_bytes(k, 1));
  ASSERT_TRUE(holds_bytes(intact, 0, encode_header(1, k))) << "header";
  ASSERT_TRUE(
      holds_bytes(intact, layout::checkpoint_slot(newest_checkpoint_slot), encode_checkpoint(c, at_checkpoint.state)))
      << "checkpoint #" << c << " in slot " << newest_checkpoint_slot;
  ASSERT_TRUE(holds_bytes(intact, layout::checkpoint_slot(1 - newest_checkpoint_slot),
                          encode_checkpoint(c - k, at_older_checkpoint.state)))
      << "checkpoint #" << c - k << " in slot " << 1 - newest_checkpoint_slot;
  std::vector<std::uint64_t> record_bytes(k);
  for (unsigned slot = 0; slot < k; ++slot) {
    const std::uint64_t s = layout::record_in_slot(slot, n, k);
    const std::uint64_t t = layout::seal_in_slot(slot, n, k);
    ASSERT_EQ(s % k, slot);
    ASSERT_EQ((t + 1) % k, slot);
    const std::vector<std::uint8_t> record = encode_journal_record(s, reference.log.at(s - 1));
    record_bytes[slot] = record.size();
    ASSERT_TRUE(holds_bytes(intact, layout::journal_slot(slot) + layout::kRecordInSlot, record))
        << "record #" << s << " in journal slot " << slot;
    ASSERT_TRUE(holds_bytes(intact, layout::journal_slot(slot), encode_seal(t)))
        << "seal(#" << t << ") in journal slot " << slot;
  }
  for (std::uint32_t h = 0; h < half_sectors; ++h) {
    const std::uint8_t* half_sector = intact.data() + data_offset + std::uint64_t{h} * kHalfSectorSize;
    ASSERT_EQ(load_le32(intact, table + 4 * std::uint64_t{h}), crc32_of(half_sector, kHalfSectorSize))
        << "checksum table entry " << h;
    const auto it = at_checkpoint.contents.find(h);
    const HalfSector expected = it == at_checkpoint.contents.end() ? HalfSector{} : it->second;
    ASSERT_EQ(std::memcmp(half_sector, expected.data(), kHalfSectorSize), 0) << "half-sector " << h;
  }

  // Every byte of the file, by region.
  std::vector<Span> spans;
  const auto add = [&spans](std::uint64_t begin, std::uint64_t end, Region region) {
    if (begin < end) spans.push_back(Span{begin, end, region});
  };
  add(0, layout::kHeaderBytes, Region::header);
  add(layout::kHeaderBytes, layout::kPage, Region::header_page_padding);
  for (unsigned slot = 0; slot < 2; ++slot) {
    const std::uint64_t at = layout::checkpoint_slot(slot);
    add(at, at + layout::kRecordOverheadBytes,
        slot == newest_checkpoint_slot ? Region::newest_checkpoint : Region::older_checkpoint);
    add(at + layout::kRecordOverheadBytes, at + layout::kPage, Region::checkpoint_slot_padding);
  }
  for (unsigned slot = 0; slot < k; ++slot) {
    const std::uint64_t at = layout::journal_slot(slot);
    const std::uint64_t s = layout::record_in_slot(slot, n, k);
    const Region record = s == n  ? Region::newest_journal_record
                          : s > c ? Region::journal_record_above_checkpoint
                                  : Region::journal_record_at_or_below_checkpoint;
    add(at, at + layout::kSealBytes, Region::seal);
    add(at + layout::kSealBytes, at + layout::kRecordInSlot, Region::seal_padding);
    add(at + layout::kRecordInSlot, at + layout::kRecordInSlot + record_bytes[slot], record);
    add(at + layout::kRecordInSlot + record_bytes[slot], at + layout::kJournalSlotBytes, Region::journal_slot_padding);
  }
  for (std::uint32_t h = 0; h < half_sectors; ++h) {
    add(table + 4 * std::uint64_t{h}, table + 4 * std::uint64_t{h} + 4,
        redone.count(h) != 0 ? Region::checksum_of_redone_half_sector : Region::checksum_of_other_half_sector);
  }
  add(table + 4 * std::uint64_t{half_sectors}, data_offset, Region::checksum_table_padding);
  for (std::uint32_t h = 0; h < half_sectors; ++h) {
    const std::uint64_t at = data_offset + std::uint64_t{h} * kHalfSectorSize;
    add(at, at + kHalfSectorSize,
        redone.count(h) != 0               ? Region::redone_data
        : reference.contents.count(h) != 0 ? Region::written_data
                                           : Region::unwritten_data);
  }
  for (std::size_t i = 0; i < spans.size(); ++i) {
    ASSERT_EQ(spans[i].begin, i == 0 ? 0 : spans[i - 1].end) << "the regions leave a gap";
  }
  ASSERT_EQ(spans.back().end, intact.size());
  const auto region_of = [&spans](std::uint64_t offset) {
    const auto it = std::upper_bound(spans.begin(), spans.end(), offset,
                                     [](std::uint64_t o, const Span& span) { return o < span.end; });
    return it->region;
  };

  // Every byte of the small structures (header, both checkpoints, the seals that matter, the
  // header and closing CRC of the newest record, of the oldest record above the checkpoint and
  // of the record at the checkpoint), about a thousand bytes spread over the metadata, then
  // random bytes of every region.
  std::mt19937 random(0xB17F11B5 + k);
  std::vector<std::uint64_t> positions;
  const auto every_byte = [&positions](std::uint64_t begin, std::uint64_t end) {
    for (std::uint64_t offset = begin; offset < end; ++offset) positions.push_back(offset);
  };
  every_byte(0, layout::kHeaderBytes);
  for (unsigned slot = 0; slot < 2; ++slot) {
    every_byte(layout::checkpoint_slot(slot), layout::checkpoint_slot(slot) + layout::kRecordOverheadBytes);
  }
  for (const std::uint64_t s : {n, c + 1, c}) {
    const std::uint64_t slot = s % k;
    const std::uint64_t record = layout::journal_slot(slot) + layout::kRecordInSlot;
    every_byte(record, record + 72);
    every_byte(record + record_bytes[slot] - 4, record + record_bytes[slot]);
  }
  for (const std::uint64_t slot : {(n + 1) % k, (n + 2) % k}) {  // seal(n), and where seal(n + 1) goes
    every_byte(layout::journal_slot(slot), layout::journal_slot(slot) + layout::kSealBytes);
  }
  const std::uint64_t stride = std::max<std::uint64_t>(37, data_offset / 1000) | 1;
  for (std::uint64_t offset = random() % stride; offset < data_offset; offset += stride) {
    positions.push_back(offset);
  }
  std::map<Region, std::vector<Span>> spans_of;
  for (const Span& span : spans) spans_of[span.region].push_back(span);
  constexpr int kRandomPerRegion = 60;
  for (const auto& entry : spans_of) {
    std::vector<std::uint64_t> ends;  // cumulative sizes: pick a byte uniformly over the region
    std::uint64_t total = 0;
    for (const Span& span : entry.second) ends.push_back(total += span.end - span.begin);
    std::uniform_int_distribution<std::uint64_t> pick(0, total - 1);
    for (int i = 0; i < kRandomPerRegion; ++i) {
      const std::uint64_t at = pick(random);
      const std::size_t which = static_cast<std::size_t>(std::upper_bound(ends.begin(), ends.end(), at) - ends.begin());
      const std::uint64_t before = which == 0 ? 0 : ends[which - 1];
      positions.push_back(entry.second[which].begin + (at - before));
    }
  }

  std::map<Region, FlipOutcomes> outcomes;
  const std::string damaged_path = directory_.file("damaged.img");
  write_whole_file(damaged_path, intact);
  FilePatcher patcher(damaged_path);
  for (const std::uint64_t offset : positions) {
    const auto bit = static_cast<std::uint8_t>(1u << (random() % 8));
    const Region region = region_of(offset);
    FlipOutcomes& counts = outcomes[region];
    ++counts.sampled;
    patcher.put(offset, static_cast<std::uint8_t>(intact[offset] ^ bit));
    try {
      // No fsync needed here: this sweep is about what open() accepts, not durability.
      auto store = FileStore::open_at(damaged_path, Durability::os_managed);
      const ::testing::AssertionResult same = holds_exactly(*store, reference);
      if (same) {
        ++counts.identical;
      } else {
        ADD_FAILURE() << "flipping bit " << int{bit} << " at " << offset << " (" << region_name(region)
                      << ") opened silently to a different device: " << same.message();
      }
    } catch (const FileStoreCorrupt&) {
      ++counts.detected;
    } catch (const std::exception& e) {
      ADD_FAILURE() << "flipping bit " << int{bit} << " at " << offset << " (" << region_name(region)
                    << ") failed with something other than FileStoreCorrupt: " << e.what();
    }
    patcher.put(offset, intact[offset]);
  }
  // Opening writes nothing: the copy is the intact image again.
  EXPECT_EQ(read_whole_file(damaged_path), intact) << "an open wrote to the damaged image";

  for (const Region r : kAllRegions) {
    const FlipOutcomes& counts = outcomes[r];
    std::printf("[ bit flips] K=%-4u %-37s sampled %4d  detected %4d  identical %4d\n", k, region_name(r),
                counts.sampled, counts.detected, counts.identical);
    EXPECT_GT(counts.sampled, 0) << "the sweep never reached the " << region_name(r);
    EXPECT_EQ(counts.detected + counts.identical, counts.sampled) << region_name(r);
    if (must_be_detected(r)) {
      EXPECT_EQ(counts.detected, counts.sampled) << "undetected damage in the " << region_name(r);
    }
    if (must_be_harmless(r)) {
      EXPECT_EQ(counts.identical, counts.sampled) << "harmless damage refused in the " << region_name(r);
    }
  }

  // The intact image still opens to the reference (the sweep only ever touched a copy).
  EXPECT_TRUE(holds_exactly(*FileStore::open_at(image_path()), reference));
}

// Four slots and 11 commits: checkpoints #4 (slot 1) and #8 (slot 0, the newest), records #9..#11
// above it. The default 32 slots and 40 commits: checkpoints #0 (slot 0) and #32 (slot 1, the
// newest), records #33..#40 above it and #9..#32 below.
INSTANTIATE_TEST_SUITE_P(Images, FileStoreBitFlipTest,
                         ::testing::Values(FlipImage{"slots_4_commits_11", 4, 11},
                                           FlipImage{"slots_32_commits_40", FileStore::kDefaultJournalSlots, 40}),
                         [](const ::testing::TestParamInfo<FlipImage>& image) {
                           return std::string(image.param.name);
                         });

}  // namespace
}  // namespace emmcsim::rpmb
