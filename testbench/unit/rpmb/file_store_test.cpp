// FileStore on real files: an image round-trips the partition state and data, refuses to be
// created twice or opened twice, rejects impossible sizes, and reports every truncated, foreign
// or damaged image as FileStoreCorrupt (leaving the file untouched) instead of resetting it.
// The bit-flip sweep damages one bit at a time in every region of the file and accepts only
// two outcomes: the open throws, or it yields exactly the state and data of the intact image.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <stdlib.h>

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
#include <stdexcept>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "emmcsim/rpmb/file_store.hpp"
#include "emmcsim/rpmb/protocol.hpp"
#include "emmcsim/rpmb/storage_file.hpp"

namespace emmcsim::rpmb {
namespace {

using ::testing::HasSubstr;

// ---------------------------------------------------------------------------------------------
// Scratch files

// A fresh directory under the test temporary directory, removed with its contents afterwards.
class ScratchDirectory {
 public:
  ScratchDirectory() {
    std::string pattern = ::testing::TempDir() + "emmcsim-file-store-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed: " + pattern);
    path_ = pattern;
  }
  ~ScratchDirectory() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  ScratchDirectory(const ScratchDirectory&) = delete;
  ScratchDirectory& operator=(const ScratchDirectory&) = delete;

  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

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

std::uint64_t load_le64(const std::vector<std::uint8_t>& bytes, std::uint64_t offset) {
  return std::uint64_t{load_le32(bytes, offset)} | (std::uint64_t{load_le32(bytes, offset + 4)} << 32);
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

struct ReferenceDevice {
  PartitionState state;
  std::map<std::uint32_t, HalfSector> contents;  // half-sector address -> last contents written
};

std::string describe(const PartitionState& s) {
  return fmt::format(
      "{{key {} ({:02x}..), counter {}, result {:#06x}/{:#04x}/{}/{}, config {}/{}}}", s.key_programmed,
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
}

void commit_state(FileStore& store, ReferenceDevice& reference, const PartitionState& next) {
  store.commit(Commit{&next, 0, 0, nullptr});
  reference.state = next;
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
  next.result_register =
      ResultRegister{ResponseType::device_config_write, 0, next.write_counter, config_address};
  commit_state(store, reference, next);
}

// The store's state and every half-sector equal the reference (unwritten half-sectors are zero).
::testing::AssertionResult holds_exactly(const Store& store, const ReferenceDevice& reference) {
  if (store.state() != reference.state) {
    return ::testing::AssertionFailure()
           << "state " << describe(store.state()) << ", expected " << describe(reference.state);
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
    return ::testing::AssertionFailure()
           << mismatch_count << " half-sector(s) differ from the reference:" << mismatches;
  }
  return ::testing::AssertionSuccess();
}

class FileStoreTest : public ::testing::Test {
 protected:
  std::string image_path() const { return directory_.file(FileStore::kFileName); }

  // An image with a programmed key, a moved counter, a configuration and data in several places.
  ReferenceDevice make_image_with_commits(std::uint32_t size_mult,
                                          Durability durability = Durability::sync_every_commit) {
    ReferenceDevice reference;
    auto store = FileStore::create_at(image_path(), size_mult, durability);
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
  EXPECT_EQ(reopened->state().result_register,
            (ResultRegister{ResponseType::authenticated_write, 0, 7, 511}));
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
    FileStore::create(std::make_unique<PosixStorageFile>(image_path(), PosixStorageFile::Mode::open_existing),
                      1, Durability::sync_every_commit);
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
                      SizeDamage{"truncated_to_a_few_bytes",
                                 [](std::uint64_t) { return std::uint64_t{100}; }},
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
// Single-bit damage anywhere in the file

// The layout of rpmb.img that file_store.cpp documents. BitFlipsAreDetectedOrHarmless first
// checks a real image against it, so a layout change cannot silently misdirect the sweep.
namespace image_layout {
constexpr std::uint64_t kHeaderBytes = 64;
constexpr std::uint64_t kMarkerOffset = 0x1000;
constexpr std::uint64_t kMarkerBytes = 16;
constexpr std::uint64_t kJournalOffset = 0x2000;
constexpr std::uint64_t kJournalSlotBytes = 0x3000;
constexpr std::uint64_t kRecordOverheadBytes = 72 + 4;  // record header and closing CRC-32
constexpr std::uint64_t kChecksumTableOffset = 0x8000;
constexpr std::uint64_t kDataOffsetForSizeMultOne = 0x9000;  // table of 512 CRCs, page aligned

std::uint64_t slot_offset(std::uint64_t sequence) {
  return kJournalOffset + (sequence % 2) * kJournalSlotBytes;
}
}  // namespace image_layout

enum class Region {
  header,
  header_page_padding,
  applied_marker,
  marker_page_padding,
  newest_journal_record,
  newest_slot_padding,
  older_journal_record,
  older_slot_padding,
  checksum_of_journaled_half_sector,
  checksum_of_other_half_sector,
  checksum_table_padding,
  journaled_data,  // half-sectors the retained journal records carry: opening redoes them
  written_data,
  unwritten_data,
};

const char* region_name(Region r) {
  switch (r) {
    case Region::header:
      return "header";
    case Region::header_page_padding:
      return "header page padding";
    case Region::applied_marker:
      return "applied marker";
    case Region::marker_page_padding:
      return "marker page padding";
    case Region::newest_journal_record:
      return "newest journal record";
    case Region::newest_slot_padding:
      return "newest journal slot padding";
    case Region::older_journal_record:
      return "older journal record";
    case Region::older_slot_padding:
      return "older journal slot padding";
    case Region::checksum_of_journaled_half_sector:
      return "checksum of a journaled half-sector";
    case Region::checksum_of_other_half_sector:
      return "checksum of another half-sector";
    case Region::checksum_table_padding:
      return "checksum table padding";
    case Region::journaled_data:
      return "journaled data";
    case Region::written_data:
      return "written data";
    case Region::unwritten_data:
      return "unwritten data";
  }
  return "?";
}

// Damage there must always be detected.
bool must_be_detected(Region r) {
  return r == Region::header || r == Region::newest_journal_record ||
         r == Region::checksum_of_other_half_sector || r == Region::written_data ||
         r == Region::unwritten_data;
}

struct FlipOutcomes {
  int sampled = 0;
  int detected = 0;   // open threw FileStoreCorrupt
  int identical = 0;  // open succeeded with exactly the intact state and data
};

TEST_F(FileStoreTest, BitFlipsAreDetectedOrHarmless) {
  namespace layout = image_layout;
  // The image: the newest record (#9) carries 32 half-sectors, the older one (#8) is state only.
  ReferenceDevice reference;
  std::uint64_t newest_sequence = 0;
  {
    auto store = FileStore::create_at(image_path(), 1);
    commit_key(*store, reference);
    commit_data(*store, reference, 0, 1, 1);
    commit_data(*store, reference, 100, 2, 2);
    commit_data(*store, reference, 480, 32, 3);
    commit_data(*store, reference, 7, 1, 4);
    commit_data(*store, reference, 101, 2, 5);
    commit_data(*store, reference, 470, 32, 6);
    commit_configuration(*store, reference, kConfigAddressSecureWpModeEnable, 1);
    commit_data(*store, reference, 200, 32, 7);
    newest_sequence = store->commit_sequence();
  }
  ASSERT_EQ(newest_sequence, 9u);
  const std::uint32_t journaled_first = 200;
  const std::uint32_t journaled_end = 232;
  const std::uint64_t newest_record_bytes = layout::kRecordOverheadBytes + 32 * kHalfSectorSize;
  const std::uint64_t older_record_bytes = layout::kRecordOverheadBytes;

  // The intact image is what the documented layout says.
  const std::vector<std::uint8_t> intact = read_whole_file(image_path());
  const std::uint64_t data_offset = layout::kDataOffsetForSizeMultOne;
  ASSERT_EQ(intact.size(), data_offset + kSizeMultUnit);
  ASSERT_EQ(std::string(intact.begin(), intact.begin() + 16), "emmcsim-rpmb-img");
  ASSERT_EQ(crc32_of(intact.data(), layout::kHeaderBytes - 4), load_le32(intact, layout::kHeaderBytes - 4));
  ASSERT_EQ(load_le32(intact, layout::kMarkerOffset), 0x444c5041u);  // "APLD"
  ASSERT_EQ(load_le64(intact, layout::kMarkerOffset + 4), newest_sequence);
  const std::uint64_t newest_slot = layout::slot_offset(newest_sequence);
  const std::uint64_t older_slot = layout::slot_offset(newest_sequence - 1);
  ASSERT_EQ(load_le32(intact, newest_slot), 0x4c4e4a52u);  // "RJNL"
  ASSERT_EQ(load_le32(intact, newest_slot + 4), newest_record_bytes);
  ASSERT_EQ(load_le64(intact, newest_slot + 8), newest_sequence);
  ASSERT_EQ(load_le32(intact, older_slot + 4), older_record_bytes);
  ASSERT_EQ(load_le64(intact, older_slot + 8), newest_sequence - 1);
  for (std::uint32_t h = 0; h < 512; ++h) {
    const std::uint8_t* half_sector = intact.data() + data_offset + std::uint64_t{h} * kHalfSectorSize;
    ASSERT_EQ(load_le32(intact, layout::kChecksumTableOffset + 4 * std::uint64_t{h}),
              crc32_of(half_sector, kHalfSectorSize))
        << "checksum table entry " << h;
    const auto it = reference.contents.find(h);
    const HalfSector expected = it == reference.contents.end() ? HalfSector{} : it->second;
    ASSERT_EQ(std::memcmp(half_sector, expected.data(), kHalfSectorSize), 0) << "half-sector " << h;
  }

  const auto region_of = [&](std::uint64_t offset) {
    if (offset < layout::kHeaderBytes) return Region::header;
    if (offset < layout::kMarkerOffset) return Region::header_page_padding;
    if (offset < layout::kMarkerOffset + layout::kMarkerBytes) return Region::applied_marker;
    if (offset < layout::kJournalOffset) return Region::marker_page_padding;
    if (offset >= newest_slot && offset < newest_slot + layout::kJournalSlotBytes) {
      return offset < newest_slot + newest_record_bytes ? Region::newest_journal_record
                                                        : Region::newest_slot_padding;
    }
    if (offset >= older_slot && offset < older_slot + layout::kJournalSlotBytes) {
      return offset < older_slot + older_record_bytes ? Region::older_journal_record
                                                      : Region::older_slot_padding;
    }
    if (offset < data_offset) {
      const std::uint64_t entry = (offset - layout::kChecksumTableOffset) / 4;
      if (entry >= 512) return Region::checksum_table_padding;
      return entry >= journaled_first && entry < journaled_end ? Region::checksum_of_journaled_half_sector
                                                               : Region::checksum_of_other_half_sector;
    }
    const std::uint64_t half_sector = (offset - data_offset) / kHalfSectorSize;
    if (half_sector >= journaled_first && half_sector < journaled_end) return Region::journaled_data;
    return reference.contents.count(static_cast<std::uint32_t>(half_sector)) != 0 ? Region::written_data
                                                                                  : Region::unwritten_data;
  };

  // Every byte of the small structures (header, marker, record headers and closing CRCs), every
  // 37th byte of the metadata, then random bytes of the data region, of the written
  // half-sectors the journal no longer holds, and of the journaled ones.
  std::mt19937 random(0xB17F11B5);
  std::vector<std::uint64_t> positions;
  const auto every_byte = [&positions](std::uint64_t begin, std::uint64_t end) {
    for (std::uint64_t offset = begin; offset < end; ++offset) positions.push_back(offset);
  };
  every_byte(0, layout::kHeaderBytes);
  every_byte(layout::kMarkerOffset, layout::kMarkerOffset + layout::kMarkerBytes);
  every_byte(older_slot, older_slot + older_record_bytes);
  every_byte(newest_slot, newest_slot + 72);
  every_byte(newest_slot + newest_record_bytes - 4, newest_slot + newest_record_bytes);
  for (std::uint64_t offset = 0; offset < data_offset; offset += 37) positions.push_back(offset);
  std::uniform_int_distribution<std::uint64_t> anywhere_in_data(data_offset, intact.size() - 1);
  for (int i = 0; i < 300; ++i) positions.push_back(anywhere_in_data(random));
  std::vector<std::uint32_t> written_not_journaled;
  for (const auto& entry : reference.contents) {
    if (entry.first < journaled_first || entry.first >= journaled_end)
      written_not_journaled.push_back(entry.first);
  }
  std::uniform_int_distribution<std::size_t> pick_written(0, written_not_journaled.size() - 1);
  std::uniform_int_distribution<std::uint64_t> byte_in_half_sector(0, kHalfSectorSize - 1);
  for (int i = 0; i < 150; ++i) {
    positions.push_back(data_offset +
                        std::uint64_t{written_not_journaled[pick_written(random)]} * kHalfSectorSize +
                        byte_in_half_sector(random));
  }
  std::uniform_int_distribution<std::uint64_t> in_journaled(
      data_offset + journaled_first * kHalfSectorSize, data_offset + journaled_end * kHalfSectorSize - 1);
  for (int i = 0; i < 50; ++i) positions.push_back(in_journaled(random));

  std::map<Region, FlipOutcomes> outcomes;
  const std::string damaged_path = directory_.file("damaged.img");
  std::vector<std::uint8_t> damaged = intact;
  for (const std::uint64_t offset : positions) {
    const auto bit = static_cast<std::uint8_t>(1u << (random() % 8));
    const Region region = region_of(offset);
    FlipOutcomes& counts = outcomes[region];
    ++counts.sampled;
    damaged[offset] ^= bit;
    write_whole_file(damaged_path, damaged);
    damaged[offset] ^= bit;
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
  }

  for (const auto& entry : outcomes) {
    const FlipOutcomes& counts = entry.second;
    std::printf("[ bit flips] %-36s sampled %4d  detected %4d  identical %4d\n", region_name(entry.first),
                counts.sampled, counts.detected, counts.identical);
    EXPECT_EQ(counts.detected + counts.identical, counts.sampled) << region_name(entry.first);
    if (must_be_detected(entry.first)) {
      EXPECT_EQ(counts.detected, counts.sampled) << "undetected damage in the " << region_name(entry.first);
    }
  }
  for (const Region r : {Region::header, Region::applied_marker, Region::newest_journal_record,
                         Region::older_journal_record, Region::newest_slot_padding,
                         Region::checksum_of_journaled_half_sector, Region::checksum_of_other_half_sector,
                         Region::journaled_data, Region::written_data, Region::unwritten_data}) {
    EXPECT_GT(outcomes[r].sampled, 0) << "the sweep never reached the " << region_name(r);
  }
  // Damage to what the journal still holds is repaired by the redo, never half-applied.
  EXPECT_GT(outcomes[Region::journaled_data].identical, 0);
  EXPECT_GT(outcomes[Region::checksum_of_journaled_half_sector].identical, 0);

  // The intact image still opens to the reference (the sweep only ever touched copies).
  EXPECT_TRUE(holds_exactly(*FileStore::open_at(image_path()), reference));
}

}  // namespace
}  // namespace emmcsim::rpmb
