// Block storage and non-volatile state. Both BlockStorage implementations must behave alike:
// unwritten sectors read as zeros, writes land exactly where addressed (also across the memory
// store's 64 KiB chunks), erase leaves exactly its range reading as zeros. The file store adds
// what a disk image needs: sparse creation with mode 0600, an exclusive lock against a second
// simulator, refusal of files that are not whole sectors, and punched holes on erase.
// FileNonvolatileStore round-trips every field through state.json, replaces it atomically with
// mode 0600, and reports any damaged or mistyped file by name instead of resetting the card.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <ostream>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "emmcsim/mmc/block_storage.hpp"
#include "emmcsim/mmc/nonvolatile_state.hpp"
#include "emmcsim/mmc/partition.hpp"
#include "scratch_directory.hpp"

namespace emmcsim::mmc {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

using emmcsim::testing::ScratchDirectory;

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out) throw std::runtime_error("cannot write " + path);
}

struct stat stat_of(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw std::runtime_error("cannot stat " + path);
  return st;
}

// `count` sectors whose every byte says which sector it belongs to and which fill it is.
std::vector<std::uint8_t> pattern(std::uint64_t first_sector, std::uint32_t count, std::uint8_t fill) {
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(count) * kSectorSize);
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    const std::uint64_t sector = first_sector + i / kSectorSize;
    bytes[i] = static_cast<std::uint8_t>(fill ^ (sector * 7) ^ (i % kSectorSize) ^ 0x5A);
  }
  return bytes;
}

std::vector<std::uint8_t> read_sectors(BlockStorage& storage, std::uint64_t sector, std::uint32_t count) {
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(count) * kSectorSize, 0xEE);
  storage.read(sector, count, bytes.data());
  return bytes;
}

bool all_zero(const std::vector<std::uint8_t>& bytes) {
  for (const std::uint8_t b : bytes) {
    if (b != 0) return false;
  }
  return true;
}

template <typename Function>
std::string error_of(Function&& function) {
  try {
    function();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no exception)";
}

// ---------------------------------------------------------------------------------------------
// Both implementations

struct StorageKind {
  const char* name;
  std::function<std::unique_ptr<BlockStorage>(const ScratchDirectory&, std::uint64_t sectors)> make;
};

// gtest prints a parameter that fails by this, not as raw bytes.
void PrintTo(const StorageKind& kind, std::ostream* out) { *out << kind.name; }

class BlockStorageBehaviour : public ::testing::TestWithParam<StorageKind> {
 protected:
  std::unique_ptr<BlockStorage> make(std::uint64_t sectors) { return GetParam().make(scratch_, sectors); }
  ScratchDirectory scratch_;
};

// 200 sectors: one whole 128-sector memory chunk and a partial last one.
constexpr std::uint64_t kOddSize = 200;

TEST_P(BlockStorageBehaviour, ReportsItsSizeAndReadsZerosBeforeAnyWrite) {
  auto storage = make(kOddSize);
  EXPECT_EQ(storage->sectors(), kOddSize);
  EXPECT_TRUE(all_zero(read_sectors(*storage, 0, kOddSize)));
}

TEST_P(BlockStorageBehaviour, WritesReadBackExactlyWhereAddressed) {
  auto storage = make(kOddSize);
  // 120..139 crosses the 128-sector chunk boundary of the memory store.
  const auto data = pattern(120, 20, 1);
  storage->write(120, 20, data.data());
  EXPECT_EQ(read_sectors(*storage, 120, 20), data);
  EXPECT_TRUE(all_zero(read_sectors(*storage, 0, 120)));
  EXPECT_TRUE(all_zero(read_sectors(*storage, 140, kOddSize - 140)));
  // A read that starts inside the written range and ends outside it.
  auto mixed = read_sectors(*storage, 130, 20);
  EXPECT_TRUE(std::equal(mixed.begin(), mixed.begin() + 10 * kSectorSize, data.begin() + 10 * kSectorSize));
  EXPECT_TRUE(all_zero(std::vector<std::uint8_t>(mixed.begin() + 10 * kSectorSize, mixed.end())));
}

TEST_P(BlockStorageBehaviour, FirstAndLastSectorAreUsable) {
  auto storage = make(kOddSize);
  const auto first = pattern(0, 1, 2);
  const auto last = pattern(kOddSize - 1, 1, 3);
  storage->write(0, 1, first.data());
  storage->write(kOddSize - 1, 1, last.data());
  EXPECT_EQ(read_sectors(*storage, 0, 1), first);
  EXPECT_EQ(read_sectors(*storage, kOddSize - 1, 1), last);
}

TEST_P(BlockStorageBehaviour, OverwriteReplacesOnlyTheOverwrittenSectors) {
  auto storage = make(kOddSize);
  const auto old_data = pattern(0, 64, 4);
  storage->write(0, 64, old_data.data());
  const auto new_data = pattern(10, 5, 5);
  storage->write(10, 5, new_data.data());
  auto expected = old_data;
  std::copy(new_data.begin(), new_data.end(), expected.begin() + 10 * kSectorSize);
  EXPECT_EQ(read_sectors(*storage, 0, 64), expected);
}

TEST_P(BlockStorageBehaviour, EraseZerosExactlyItsRange) {
  auto storage = make(kOddSize);
  const auto data = pattern(0, kOddSize, 6);
  storage->write(0, kOddSize, data.data());
  // 100..179: the tail of the first memory chunk and the head of the second, partial in both.
  storage->erase(100, 80);
  auto expected = data;
  std::fill(expected.begin() + 100 * kSectorSize, expected.begin() + 180 * kSectorSize, 0);
  EXPECT_EQ(read_sectors(*storage, 0, kOddSize), expected);
}

TEST_P(BlockStorageBehaviour, EraseOfWholeChunksAndOfThePartialLastChunk) {
  auto storage = make(kOddSize);
  const auto data = pattern(0, kOddSize, 7);
  storage->write(0, kOddSize, data.data());
  storage->erase(0, 128);               // exactly the first memory chunk
  storage->erase(128, kOddSize - 128);  // the partial last chunk, up to the end
  EXPECT_TRUE(all_zero(read_sectors(*storage, 0, kOddSize)));
  // Writing after the chunk was dropped allocates it afresh, zeros around the written sector.
  const auto again = pattern(150, 1, 8);
  storage->write(150, 1, again.data());
  EXPECT_EQ(read_sectors(*storage, 150, 1), again);
  EXPECT_TRUE(all_zero(read_sectors(*storage, 128, 22)));
  EXPECT_TRUE(all_zero(read_sectors(*storage, 151, kOddSize - 151)));
}

TEST_P(BlockStorageBehaviour, EraseOfNothingOrOfUnwrittenSectorsChangesNothing) {
  auto storage = make(kOddSize);
  const auto data = pattern(5, 1, 9);
  storage->write(5, 1, data.data());
  storage->erase(5, 0);
  storage->erase(50, 100);
  EXPECT_EQ(read_sectors(*storage, 5, 1), data);
  EXPECT_TRUE(all_zero(read_sectors(*storage, 50, 100)));
}

TEST_P(BlockStorageBehaviour, MatchesAFlatModelUnderRandomOperations) {
  constexpr std::uint64_t kSectors = 700;  // five and a half memory chunks
  auto storage = make(kSectors);
  std::vector<std::uint8_t> model(kSectors * kSectorSize, 0);
  std::mt19937 random(20240601);
  for (int step = 0; step < 300; ++step) {
    const std::uint64_t sector = random() % kSectors;
    const auto count = static_cast<std::uint32_t>(1 + random() % std::min<std::uint64_t>(300, kSectors - sector));
    switch (random() % 3) {
      case 0: {
        const auto data = pattern(sector, count, static_cast<std::uint8_t>(step));
        storage->write(sector, count, data.data());
        std::copy(data.begin(), data.end(), model.begin() + static_cast<std::ptrdiff_t>(sector * kSectorSize));
        break;
      }
      case 1:
        storage->erase(sector, count);
        std::fill_n(model.begin() + static_cast<std::ptrdiff_t>(sector * kSectorSize), count * kSectorSize, 0);
        break;
      default: {
        const auto got = read_sectors(*storage, sector, count);
        ASSERT_TRUE(
            std::equal(got.begin(), got.end(), model.begin() + static_cast<std::ptrdiff_t>(sector * kSectorSize)))
            << "step " << step << ": read of " << count << " at " << sector;
      }
    }
  }
  storage->flush();
  EXPECT_EQ(read_sectors(*storage, 0, kSectors), model);
}

INSTANTIATE_TEST_SUITE_P(
    BlockStorage, BlockStorageBehaviour,
    ::testing::Values(StorageKind{"Memory",
                                  [](const ScratchDirectory&, std::uint64_t sectors) -> std::unique_ptr<BlockStorage> {
                                    return std::make_unique<MemoryBlockStorage>(sectors);
                                  }},
                      StorageKind{
                          "File",
                          [](const ScratchDirectory& scratch, std::uint64_t sectors) -> std::unique_ptr<BlockStorage> {
                            return FileBlockStorage::create(scratch.file("part.img"), sectors);
                          }}),
    [](const ::testing::TestParamInfo<StorageKind>& param_info) { return std::string(param_info.param.name); });

// ---------------------------------------------------------------------------------------------
// Files

class BlockStorageFile : public ::testing::Test {
 protected:
  ScratchDirectory scratch_;
  std::string path_ = scratch_.file("user.img");
};

TEST_F(BlockStorageFile, CreateMakesASparseFileOfExactlyTheSizeWithMode0600) {
  constexpr std::uint64_t kSectors = 128 * 1024;  // 64 MiB
  auto storage = FileBlockStorage::create(path_, kSectors);
  EXPECT_EQ(storage->path(), path_);
  const struct stat st = stat_of(path_);
  EXPECT_EQ(static_cast<std::uint64_t>(st.st_size), kSectors * kSectorSize);
  EXPECT_LT(static_cast<std::uint64_t>(st.st_blocks) * 512, 1024u * 1024) << "not sparse";
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(BlockStorageFile, CreateRefusesAnExistingFile) {
  write_text(path_, "precious");
  EXPECT_THAT(error_of([&] { FileBlockStorage::create(path_, 8); }),
              AllOf(HasSubstr(path_), HasSubstr("cannot create"), HasSubstr("File exists")));
  EXPECT_EQ(read_text(path_), "precious");
}

TEST_F(BlockStorageFile, WritesReachTheFileAtOnceAndSurviveReopening) {
  const auto data = pattern(3, 2, 10);
  {
    auto storage = FileBlockStorage::create(path_, 16);
    storage->write(3, 2, data.data());
    // No flush: another reader of the file (or the OS after a kill -9) already sees the data.
    const std::string on_disk = read_text(path_);
    ASSERT_EQ(on_disk.size(), 16u * kSectorSize);
    EXPECT_TRUE(
        std::equal(data.begin(), data.end(), reinterpret_cast<const std::uint8_t*>(on_disk.data()) + 3 * kSectorSize));
  }
  auto reopened = FileBlockStorage::open(path_);
  EXPECT_EQ(reopened->sectors(), 16u);
  EXPECT_EQ(read_sectors(*reopened, 3, 2), data);
}

TEST_F(BlockStorageFile, SecondOpenIsRefusedWhileTheFirstHoldsTheLock) {
  auto first = FileBlockStorage::create(path_, 16);
  EXPECT_THAT(error_of([&] { FileBlockStorage::open(path_); }),
              AllOf(HasSubstr(path_), HasSubstr("in use by another process")));
  first.reset();
  EXPECT_NO_THROW(FileBlockStorage::open(path_));
}

TEST_F(BlockStorageFile, OpenRejectsAFileThatIsNotWholeSectors) {
  write_text(path_, std::string(1000, 'x'));
  EXPECT_THAT(error_of([&] { FileBlockStorage::open(path_); }),
              AllOf(HasSubstr(path_), HasSubstr("1000 bytes is not a whole number of 512-byte sectors")));
}

TEST_F(BlockStorageFile, OpenOfAMissingFileNamesItAndTheReason) {
  EXPECT_THAT(error_of([&] { FileBlockStorage::open(path_); }),
              AllOf(HasSubstr(path_), HasSubstr("cannot open"), HasSubstr("No such file")));
}

TEST_F(BlockStorageFile, OpenOfADirectoryIsRefused) {
  EXPECT_THAT(error_of([&] { FileBlockStorage::open(scratch_.path()); }), HasSubstr(scratch_.path()));
}

TEST_F(BlockStorageFile, ErasePunchesHolesAndGivesTheSpaceBack) {
  constexpr std::uint32_t kSectors = 4096;  // 2 MiB
  auto storage = FileBlockStorage::create(path_, kSectors);
  const auto data = pattern(0, kSectors, 11);
  storage->write(0, kSectors, data.data());
  storage->flush();
  const auto allocated_before = static_cast<std::uint64_t>(stat_of(path_).st_blocks) * 512;
  ASSERT_GE(allocated_before, 2u * 1024 * 1024);
  storage->erase(0, kSectors);
  const struct stat after = stat_of(path_);
  EXPECT_LT(static_cast<std::uint64_t>(after.st_blocks) * 512, allocated_before / 4);
  EXPECT_EQ(static_cast<std::uint64_t>(after.st_size), std::uint64_t{kSectors} * kSectorSize) << "size kept";
  EXPECT_TRUE(all_zero(read_sectors(*storage, 0, kSectors)));
}

TEST_F(BlockStorageFile, AFileTruncatedBehindItsBackIsAnErrorNotZeros) {
  auto storage = FileBlockStorage::create(path_, 16);
  ASSERT_EQ(::truncate(path_.c_str(), 4 * kSectorSize), 0);
  std::vector<std::uint8_t> out(kSectorSize);
  EXPECT_THAT(error_of([&] { storage->read(8, 1, out.data()); }),
              AllOf(HasSubstr(path_), HasSubstr("unexpected end of file")));
}

// ---------------------------------------------------------------------------------------------
// Non-volatile state

NonvolatileState full_state() {
  NonvolatileState s;
  s.password = {0x00, 0x01, 0xAB, 0xFF, 0x10};
  s.partition_config_boot = 0x48;
  s.boot_bus_conditions = 0x15;
  s.boot_wp_permanent = 0x85;
  s.boot_wp_status_permanent = 0x0A;
  s.temporary_wp_groups[Partition::user] = {0, 7, 4000000000u};
  s.temporary_wp_groups[Partition::gp2] = {1};
  s.permanent_wp_groups[Partition::boot2] = {0};
  s.permanent_wp_groups[Partition::gp4] = {3, 5};
  return s;
}

TEST(NonvolatileState, EqualityLooksAtEveryField) {
  const NonvolatileState base = full_state();
  EXPECT_TRUE(base == full_state());
  const std::vector<std::function<void(NonvolatileState&)>> changes = {
      [](NonvolatileState& s) { s.password.push_back(1); },
      [](NonvolatileState& s) { s.partition_config_boot ^= 1; },
      [](NonvolatileState& s) { s.boot_bus_conditions ^= 1; },
      [](NonvolatileState& s) { s.boot_wp_permanent ^= 1; },
      [](NonvolatileState& s) { s.boot_wp_status_permanent ^= 1; },
      [](NonvolatileState& s) { s.temporary_wp_groups[Partition::user].insert(8); },
      [](NonvolatileState& s) { s.permanent_wp_groups[Partition::gp1].insert(0); },
  };
  for (std::size_t i = 0; i < changes.size(); ++i) {
    NonvolatileState changed = full_state();
    changes[i](changed);
    EXPECT_FALSE(base == changed) << "change " << i << " went unnoticed";
  }
}

TEST(NonvolatileState, MemoryStoreKeepsWhatWasSaved) {
  MemoryNonvolatileStore store;
  EXPECT_TRUE(store.load() == NonvolatileState{});
  store.save(full_state());
  EXPECT_TRUE(store.load() == full_state());
}

class NonvolatileStateFile : public ::testing::Test {
 protected:
  ScratchDirectory scratch_;
  std::string path_ = scratch_.file("state.json");
};

TEST_F(NonvolatileStateFile, AMissingFileIsTheEmptyState) {
  FileNonvolatileStore store(path_);
  EXPECT_TRUE(store.load() == NonvolatileState{});
  EXPECT_FALSE(std::filesystem::exists(path_)) << "loading must not create the file";
}

TEST_F(NonvolatileStateFile, EveryFieldRoundTripsThroughTheFile) {
  FileNonvolatileStore(path_).save(full_state());
  EXPECT_TRUE(FileNonvolatileStore(path_).load() == full_state());
  // Partitions are keyed by their names (Linux's boot0/boot1), so the file reads naturally.
  const std::string text = read_text(path_);
  EXPECT_THAT(text, AllOf(HasSubstr("\"format\": 2"), HasSubstr("\"user\""), HasSubstr("\"gp2\""),
                          HasSubstr("\"boot1\": ["), HasSubstr("\"gp4\"")));
  EXPECT_THAT(text, ::testing::Not(HasSubstr("boot2")));
}

// Format 1 named the boot partitions by JEDEC's numbering (boot1, boot2); such a file still loads,
// and the next save writes format 2 with Linux's names.
TEST_F(NonvolatileStateFile, AFormat1FileWithJedecBootNamesStillLoads) {
  write_text(path_, R"({"format": 1, "password": "", "temporary_wp_groups": {"boot1": [2], "boot2": [3]},
                       "permanent_wp_groups": {"user": [1]}})");
  FileNonvolatileStore store(path_);
  const NonvolatileState loaded = store.load();
  EXPECT_EQ(loaded.temporary_wp_groups.at(Partition::boot1), std::set<std::uint32_t>{2});
  EXPECT_EQ(loaded.temporary_wp_groups.at(Partition::boot2), std::set<std::uint32_t>{3});
  EXPECT_EQ(loaded.permanent_wp_groups.at(Partition::user), std::set<std::uint32_t>{1});
  store.save(loaded);
  EXPECT_THAT(read_text(path_), AllOf(HasSubstr("\"format\": 2"), HasSubstr("\"boot0\": [\n      2")));
  EXPECT_TRUE(store.load() == loaded);

  write_text(path_, R"({"format": 1, "temporary_wp_groups": {"boot0": [1]}})");
  EXPECT_THROW(store.load(), StorageError) << "boot0 is no name of format 1";
}

TEST_F(NonvolatileStateFile, SaveReplacesTheFileWithMode0600AndLeavesNoTemporary) {
  FileNonvolatileStore store(path_);
  store.save(full_state());
  NonvolatileState second;
  second.password = {'p', 'w'};
  store.save(second);
  EXPECT_TRUE(store.load() == second);
  EXPECT_EQ(stat_of(path_).st_mode & 0777, 0600u);
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(scratch_.path())) {
    names.push_back(entry.path().filename().string());
  }
  EXPECT_EQ(names, std::vector<std::string>{"state.json"});
}

TEST_F(NonvolatileStateFile, AFailedSaveKeepsThePreviousState) {
  FileNonvolatileStore store(path_);
  store.save(full_state());
  // A directory where the temporary file must go makes the save fail before the rename.
  ASSERT_TRUE(std::filesystem::create_directory(path_ + ".tmp"));
  EXPECT_THROW(store.save(NonvolatileState{}), StorageError);
  EXPECT_TRUE(store.load() == full_state());
}

struct DamagedState {
  const char* name;
  const char* text;
  const char* problem;  // expected in the message, beside the file name
};

void PrintTo(const DamagedState& damage, std::ostream* out) { *out << damage.name; }

class NonvolatileStateDamage : public ::testing::TestWithParam<DamagedState> {
 protected:
  ScratchDirectory scratch_;
  std::string path_ = scratch_.file("state.json");
};

TEST_P(NonvolatileStateDamage, IsAnErrorNamingTheFileAndTheProblem) {
  write_text(path_, GetParam().text);
  FileNonvolatileStore store(path_);
  try {
    store.load();
    FAIL() << "loaded a damaged state file";
  } catch (const StorageError& e) {
    EXPECT_THAT(e.what(), AllOf(HasSubstr(path_), HasSubstr(GetParam().problem)));
  }
  EXPECT_EQ(read_text(path_), GetParam().text) << "the damaged file must be left for the user to inspect";
}

INSTANTIATE_TEST_SUITE_P(
    NonvolatileState, NonvolatileStateDamage,
    ::testing::Values(
        DamagedState{"Empty", "", "not valid JSON"},
        DamagedState{"Truncated", "{\"format\": 1, \"password\": \"ab", "not valid JSON"},
        DamagedState{"NumberOutOfRange", "{\"format\": 1e999}", "not valid JSON"},
        DamagedState{"NotAnObject", "[1, 2]", "not a JSON object"},
        DamagedState{"NoFormat", "{\"password\": \"\"}", "no 'format' field"},
        DamagedState{"OtherFormat", "{\"format\": 3}", "format: 3 is not the supported version"},
        DamagedState{"UnknownField", "{\"format\": 1, \"pasword\": \"00\"}", "unknown field 'pasword'"},
        DamagedState{"ByteTooLarge", "{\"format\": 1, \"boot_bus_conditions\": 300}",
                     "boot_bus_conditions: 300 is not a number from 0 to 255"},
        DamagedState{"ByteNegative", "{\"format\": 1, \"boot_wp_permanent\": -1}", "boot_wp_permanent: -1"},
        DamagedState{"ByteAsString", "{\"format\": 1, \"partition_config_boot\": \"8\"}",
                     "partition_config_boot: \"8\""},
        DamagedState{"PasswordNotHex", "{\"format\": 1, \"password\": \"zz\"}", "password: not a hex string"},
        DamagedState{"PasswordOdd", "{\"format\": 1, \"password\": \"abc\"}", "password: not a hex string"},
        DamagedState{"PasswordTooLong", "{\"format\": 1, \"password\": \"00112233445566778899aabbccddeeff00\"}",
                     "at most 16 bytes"},
        DamagedState{"PasswordNumber", "{\"format\": 1, \"password\": 12}", "password: 12 is not a hex string"},
        DamagedState{"UnknownPartition", "{\"format\": 1, \"temporary_wp_groups\": {\"gp9\": [1]}}",
                     "temporary_wp_groups: unknown partition 'gp9'"},
        DamagedState{"GroupsNotObject", "{\"format\": 1, \"permanent_wp_groups\": [1]}",
                     "permanent_wp_groups: not an object"},
        DamagedState{"GroupListNotArray", "{\"format\": 1, \"permanent_wp_groups\": {\"user\": 3}}",
                     "permanent_wp_groups.user: not an array"},
        DamagedState{"GroupTooLarge", "{\"format\": 1, \"temporary_wp_groups\": {\"user\": [4294967296]}}",
                     "temporary_wp_groups.user: 4294967296 is not a write-protect group number"},
        DamagedState{"GroupNegative", "{\"format\": 1, \"temporary_wp_groups\": {\"gp1\": [-2]}}",
                     "temporary_wp_groups.gp1: -2"}),
    [](const ::testing::TestParamInfo<DamagedState>& param_info) { return std::string(param_info.param.name); });

}  // namespace
}  // namespace emmcsim::mmc
