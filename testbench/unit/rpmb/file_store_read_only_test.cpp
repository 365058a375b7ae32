// FileStore::open_read_only: an image that another store holds and commits to (a running
// simulator) can be looked at. The look takes no lock, changes nothing, and always finds the
// state and data of one commit — also while commits and checkpoints go on during the reads —
// while a really damaged image is still reported as FileStoreCorrupt.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "emmcsim/rpmb/file_store.hpp"
#include "emmcsim/rpmb/protocol.hpp"
#include "emmcsim/rpmb/storage_file.hpp"
#include "scratch_directory.hpp"

namespace emmcsim::rpmb {
namespace {

using ::testing::HasSubstr;

constexpr std::uint32_t kHalfSectors = 512;  // RPMB_SIZE_MULT 1
constexpr unsigned kJournalSlots = 4;        // a checkpoint every 4 commits
// At the end of the file: the checksum table (4 bytes a half-sector, page-rounded), then the data.
constexpr std::uint64_t kTableAndDataBytes = 4096 + std::uint64_t{kHalfSectors} * kHalfSectorSize;

// Commit number `counter` (1, 2, …) writes half-sector counter % 512 with a pattern naming the
// counter, and leaves the write counter at `counter`.
PartitionState state_after(std::uint32_t counter) {
  PartitionState s;
  s.key_programmed = true;
  for (std::size_t i = 0; i < s.key.size(); ++i) s.key[i] = static_cast<std::uint8_t>(0x40 + i);
  s.write_counter = counter;
  s.result_register =
      ResultRegister{ResponseType::authenticated_write, 0, counter, static_cast<std::uint16_t>(counter % kHalfSectors)};
  return s;
}

std::vector<std::uint8_t> data_of(std::uint32_t counter) {
  std::vector<std::uint8_t> d(kHalfSectorSize);
  for (std::size_t i = 0; i < d.size(); ++i) d[i] = static_cast<std::uint8_t>(counter * 31 + i);
  std::memcpy(d.data(), &counter, sizeof counter);
  return d;
}

void commit_number(FileStore& store, std::uint32_t counter) {
  const PartitionState next = state_after(counter);
  const std::vector<std::uint8_t> data = data_of(counter);
  store.commit(Commit{&next, static_cast<std::uint16_t>(counter % kHalfSectors), 1, data.data()});
}

// The store holds exactly what commits 1..N left, N being its write counter.
::testing::AssertionResult is_one_commit(const FileStore& store) {
  const std::uint32_t n = store.state().write_counter;
  if (n > 0 && store.state() != state_after(n)) {
    return ::testing::AssertionFailure() << "the state is not that of commit " << n;
  }
  std::vector<std::uint8_t> all(std::size_t{kHalfSectors} * kHalfSectorSize);
  store.read(0, kHalfSectors, all.data());
  for (std::uint32_t h = 0; h < kHalfSectors; ++h) {
    // The newest commit up to N that wrote half-sector h, if any.
    std::uint32_t last = n - (n + kHalfSectors - h) % kHalfSectors;
    const std::vector<std::uint8_t> expected =
        last == 0 || last > n ? std::vector<std::uint8_t>(kHalfSectorSize, 0) : data_of(last);
    if (std::memcmp(all.data() + std::size_t{h} * kHalfSectorSize, expected.data(), kHalfSectorSize) != 0) {
      return ::testing::AssertionFailure() << "half-sector " << h << " does not hold what commits 1.." << n << " left";
    }
  }
  return ::testing::AssertionSuccess();
}

class FileStoreReadOnly : public ::testing::Test {
 protected:
  std::string path() const { return directory_.file(FileStore::kFileName); }
  emmcsim::testing::ScratchDirectory directory_{"emmcsim-rpmb-ro"};
};

TEST_F(FileStoreReadOnly, ReadsTheLastCommitOfAnImageAnotherStoreHolds) {
  auto writer = FileStore::create_at(path(), 1, Durability::os_managed, kJournalSlots);
  for (std::uint32_t c = 1; c <= 10; ++c) commit_number(*writer, c);

  const auto look = FileStore::open_read_only(path());
  EXPECT_EQ(look->state().write_counter, 10u);
  EXPECT_TRUE(is_one_commit(*look));
  EXPECT_THROW(FileStore::open_at(path()), StoreError) << "the writer still holds its lock";

  // The look takes no lock and does not disturb the writer.
  for (std::uint32_t c = 11; c <= 13; ++c) commit_number(*writer, c);
  EXPECT_EQ(look->state().write_counter, 10u) << "a look is a snapshot";
  EXPECT_EQ(FileStore::open_read_only(path())->state().write_counter, 13u);
  writer.reset();
  EXPECT_NO_THROW(FileStore::open_at(path())) << "a read-only store open beside it blocks no writer";
}

TEST_F(FileStoreReadOnly, CannotCommit) {
  FileStore::create_at(path(), 1);
  const auto look = FileStore::open_read_only(path());
  const PartitionState next = state_after(1);
  try {
    look->commit(Commit{&next, 0, 0, nullptr});
    FAIL() << "a read-only store committed";
  } catch (const StoreError& e) {
    EXPECT_THAT(e.what(), HasSubstr("read-only"));
  }
  EXPECT_EQ(FileStore::open_at(path())->state().write_counter, 0u);
}

// A read-only view of the image that runs `before_data` once, just before the first read of the
// checksum table or the data region (the last 4 + 128 KiB of the file): a writer's commits land
// exactly there.
class FileWithPause final : public StorageFile {
 public:
  FileWithPause(const std::string& path, std::function<void()> before_data)
      : file_(path, PosixStorageFile::Mode::read_only), before_data_(std::move(before_data)) {}
  std::uint64_t size() const override { return file_.size(); }
  void read_at(std::uint64_t offset, void* out, std::size_t size) const override {
    if (before_data_ && offset >= file_.size() - kTableAndDataBytes) {
      std::exchange(before_data_, nullptr)();
    }
    file_.read_at(offset, out, size);
  }
  void write_at(std::uint64_t offset, const void* bytes, std::size_t size) override {
    file_.write_at(offset, bytes, size);
  }
  void resize(std::uint64_t size) override { file_.resize(size); }
  void sync() override { file_.sync(); }
  const std::string& path() const override { return file_.path(); }

 private:
  PosixStorageFile file_;
  mutable std::function<void()> before_data_;
};

// Commits made while the view reads, before it reads the data in place: a look must be one
// commit — or, when the writer made a checkpoint meanwhile (data in place that the journal the
// view has not read yet no longer describes), be refused so that open_read_only reads again.
TEST_F(FileStoreReadOnly, CommitsAndACheckpointBetweenTheReadsNeverMixTwoCommits) {
  auto writer = FileStore::create_at(path(), 1, Durability::os_managed, kJournalSlots);
  for (std::uint32_t c = 1; c <= 5; ++c) commit_number(*writer, c);  // checkpoint #4, record #5
  for (const std::uint32_t until : {8u, 13u}) {                      // 6..8: commits only; 9..13: two checkpoints
    SCOPED_TRACE(fmt::format("commits up to {} during the reads", until));
    const std::uint32_t from = writer->state().write_counter + 1;
    auto file = std::make_unique<FileWithPause>(path(), [&] {
      for (std::uint32_t c = from; c <= until; ++c) commit_number(*writer, c);
    });
    try {
      const auto look = FileStore::open(std::move(file), Durability::os_managed);
      EXPECT_TRUE(is_one_commit(*look));
    } catch (const FileStoreCorrupt& e) {
      EXPECT_GT(until, 8u) << "commits alone never make a look fail: " << e.what();
    }
    EXPECT_EQ(writer->state().write_counter, until);
    const auto again = FileStore::open_read_only(path());
    EXPECT_EQ(again->state().write_counter, until);
    EXPECT_TRUE(is_one_commit(*again));
  }
}

// The writer commits (and checkpoints every 4 commits) as fast as a busy simulator; every look
// taken meanwhile must be exactly one commit, never going back.
TEST_F(FileStoreReadOnly, EveryLookWhileAWriterCommitsIsOneCommit) {
  auto writer = FileStore::create_at(path(), 1, Durability::os_managed, kJournalSlots);
  constexpr std::uint32_t kCommits = 3000;
  std::atomic<std::uint32_t> started{0};
  std::atomic<bool> done{false};
  std::thread writing([&] {
    for (std::uint32_t c = 1; c <= kCommits; ++c) {
      started = c;
      commit_number(*writer, c);
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
    done = true;
  });

  unsigned looks = 0;
  std::uint32_t last_seen = 0;
  std::string failure;
  while (!done && failure.empty()) {
    try {
      const auto look = FileStore::open_read_only(path());
      const std::uint32_t counter = look->state().write_counter;
      if (counter < last_seen || counter > started) {
        failure =
            fmt::format("look {} saw counter {} after {} (writer at {})", looks, counter, last_seen, started.load());
      } else if (const auto one = is_one_commit(*look); !one) {
        failure = fmt::format("look {}: {}", looks, one.message());
      }
      last_seen = counter;
      ++looks;
    } catch (const std::exception& e) {
      failure = fmt::format("look {} failed: {}", looks, e.what());
    }
  }
  writing.join();
  EXPECT_EQ(failure, "");
  EXPECT_GE(looks, 10u) << "too few looks to mean anything";
  const auto last = FileStore::open_read_only(path());
  EXPECT_EQ(last->state().write_counter, kCommits);
  EXPECT_TRUE(is_one_commit(*last));
}

TEST_F(FileStoreReadOnly, ADamagedImageIsStillCorrupt) {
  FileStore::create_at(path(), 1);
  {
    std::fstream file(path(), std::ios::binary | std::ios::in | std::ios::out);
    file.seekp(0);
    file.put('X');  // the magic
  }
  try {
    FileStore::open_read_only(path());
    FAIL() << "a damaged image opened";
  } catch (const FileStoreCorrupt& e) {
    EXPECT_THAT(e.what(), HasSubstr("bad magic"));
  }
}

TEST_F(FileStoreReadOnly, AMissingImageIsNamed) {
  try {
    FileStore::open_read_only(path());
    FAIL() << "opened an image that does not exist";
  } catch (const FileStoreCorrupt& e) {
    FAIL() << "a missing image is not a corrupt one: " << e.what();
  } catch (const StoreError& e) {
    EXPECT_THAT(e.what(), HasSubstr(path()));
  }
}

}  // namespace
}  // namespace emmcsim::rpmb
