// The file primitives under every persistent piece of emmcsim: UniqueFd owns and closes, locks
// keep a second writer off a file (and say which file), reads and writes finish or name what
// failed, a short read at the end of a file is reported as the caller asked, and a durable
// replace leaves the new contents with the asked mode and no temporary file behind.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "emmcsim/support/file.hpp"
#include "scratch_directory.hpp"

namespace emmcsim::support {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

bool is_open(int fd) { return ::fcntl(fd, F_GETFD) != -1; }

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

template <typename Body>
std::string error_of(Body body) {
  try {
    body();
  } catch (const IoError& e) {
    return e.what();
  }
  return "(no IoError)";
}

class SupportFile : public ::testing::Test {
 protected:
  emmcsim::testing::ScratchDirectory scratch_{"emmcsim-support"};
  std::string path_ = scratch_.file("data.bin");
};

// ---------------------------------------------------------------------------------------------
// IoError

TEST(SupportIoError, NamesTheOperationThePathAndTheReason) {
  const IoError e("write", "/img/boot0.img", ENOSPC);
  EXPECT_STREQ(e.what(), "cannot write /img/boot0.img: No space left on device");
  EXPECT_EQ(e.path(), "/img/boot0.img");
  EXPECT_EQ(e.error_number(), ENOSPC);
  const IoError problem("/img/rpmb.img", "bad magic");
  EXPECT_STREQ(problem.what(), "/img/rpmb.img: bad magic");
  EXPECT_EQ(problem.error_number(), 0);
  EXPECT_STREQ(IoError("simulated: disk full").what(), "simulated: disk full");
}

// ---------------------------------------------------------------------------------------------
// UniqueFd

TEST_F(SupportFile, UniqueFdClosesItsDescriptorWhenItGoes) {
  int raw = -1;
  {
    UniqueFd fd(::open(scratch_.path().c_str(), O_RDONLY | O_CLOEXEC));
    ASSERT_TRUE(fd.valid());
    raw = fd.get();
    EXPECT_TRUE(is_open(raw));
  }
  EXPECT_FALSE(is_open(raw));
}

TEST_F(SupportFile, UniqueFdMovesOwnershipAndCanGiveItUp) {
  UniqueFd first(::open(scratch_.path().c_str(), O_RDONLY | O_CLOEXEC));
  const int raw = first.get();
  UniqueFd second(std::move(first));
  EXPECT_FALSE(first.valid());  // NOLINT(bugprone-use-after-move): moved-from is empty by contract
  EXPECT_EQ(second.get(), raw);
  UniqueFd third;
  third = std::move(second);
  EXPECT_EQ(third.get(), raw);
  EXPECT_TRUE(is_open(raw));

  const int released = third.release();
  EXPECT_FALSE(third.valid());
  EXPECT_TRUE(is_open(released)) << "release() must not close";
  third.reset(released);
  third.reset();
  EXPECT_FALSE(is_open(raw));
}

TEST_F(SupportFile, CloseCheckedClosesAndLeavesTheObjectEmpty) {
  UniqueFd fd(::open(scratch_.path().c_str(), O_RDONLY | O_CLOEXEC));
  const int raw = fd.get();
  EXPECT_NO_THROW(fd.close_checked(scratch_.path()));
  EXPECT_FALSE(fd.valid());
  EXPECT_FALSE(is_open(raw));
  EXPECT_NO_THROW(fd.close_checked(scratch_.path())) << "an empty UniqueFd has nothing to close";
}

// ---------------------------------------------------------------------------------------------
// Locks

TEST_F(SupportFile, ASecondExclusiveOpenIsRefusedNamingTheFile) {
  UniqueFd first = open_locked(path_, O_RDWR | O_CREAT, 0600, FileLock::exclusive);
  try {
    open_locked(path_, O_RDWR, 0, FileLock::exclusive);
    FAIL() << "the second exclusive open succeeded";
  } catch (const FileInUse& e) {
    EXPECT_THAT(e.what(), AllOf(HasSubstr(path_), HasSubstr("in use by another process")));
    EXPECT_EQ(e.path(), path_);
  }
  EXPECT_THROW(open_locked(path_, O_RDONLY, 0, FileLock::shared), FileInUse) << "a reader meets the writer";
  EXPECT_NO_THROW(open_locked(path_, O_RDONLY, 0, FileLock::none)) << "no lock asked, none checked";
  first.reset();
  EXPECT_NO_THROW(open_locked(path_, O_RDWR, 0, FileLock::exclusive)) << "the lock goes with the descriptor";
}

TEST_F(SupportFile, SharedLocksAgreeWithEachOtherButNotWithAWriter) {
  write_text(path_, "x");
  UniqueFd reader1 = open_locked(path_, O_RDONLY, 0, FileLock::shared);
  UniqueFd reader2 = open_locked(path_, O_RDONLY, 0, FileLock::shared);
  EXPECT_THROW(open_locked(path_, O_RDWR, 0, FileLock::exclusive), FileInUse);
}

TEST_F(SupportFile, LockedByAnotherProcessSeesOnlyAnExclusiveHolder) {
  EXPECT_FALSE(locked_by_another_process(path_)) << "a missing file";
  write_text(path_, "x");
  EXPECT_FALSE(locked_by_another_process(path_));
  {
    UniqueFd reader = open_locked(path_, O_RDONLY, 0, FileLock::shared);
    EXPECT_FALSE(locked_by_another_process(path_));
  }
  UniqueFd writer = open_locked(path_, O_RDWR, 0, FileLock::exclusive);
  EXPECT_TRUE(locked_by_another_process(path_));
  EXPECT_TRUE(locked_by_another_process(path_)) << "the probe must not leave a lock behind";
  writer.reset();
  EXPECT_FALSE(locked_by_another_process(path_));
  EXPECT_NO_THROW(open_locked(path_, O_RDWR, 0, FileLock::exclusive)) << "the probe left no lock";
}

TEST_F(SupportFile, OpenFailuresSayCreateOrOpenAndWhy) {
  write_text(path_, "precious");
  EXPECT_THAT(error_of([&] { open_locked(path_, O_RDWR | O_CREAT | O_EXCL, 0600, FileLock::exclusive); }),
              AllOf(HasSubstr("cannot create " + path_), HasSubstr("File exists")));
  EXPECT_EQ(read_text(path_), "precious");
  const std::string missing = scratch_.file("missing.bin");
  EXPECT_THAT(error_of([&] { open_locked(missing, O_RDWR, 0, FileLock::exclusive); }),
              AllOf(HasSubstr("cannot open " + missing), HasSubstr("No such file")));
}

TEST_F(SupportFile, CreatedFilesGetTheModeAsked) {
  const mode_t old_mask = ::umask(022);
  open_locked(path_, O_RDWR | O_CREAT | O_EXCL, 0600, FileLock::exclusive);
  ::umask(old_mask);
  struct stat st {};
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

// ---------------------------------------------------------------------------------------------
// Reads and writes

TEST_F(SupportFile, WriteFullyAndReadExactlyRoundTripAtAnOffset) {
  UniqueFd fd = open_locked(path_, O_RDWR | O_CREAT, 0600, FileLock::none);
  std::vector<std::uint8_t> data(300000);
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<std::uint8_t>(i * 7);
  write_fully(fd.get(), path_, 4096, data.data(), data.size());
  std::vector<std::uint8_t> back(data.size());
  read_exactly(fd.get(), path_, 4096, back.data(), back.size());
  EXPECT_EQ(back, data);
  std::uint8_t hole[16];
  read_exactly(fd.get(), path_, 0, hole, sizeof hole);
  EXPECT_EQ(hole[0], 0);
}

TEST_F(SupportFile, ReadFullyStopsAtTheEndOfTheFileAndSaysHowMuchItRead) {
  write_text(path_, "0123456789");
  UniqueFd fd = open_locked(path_, O_RDONLY, 0, FileLock::none);
  char out[8] = {};
  EXPECT_EQ(read_fully(fd.get(), path_, 6, out, sizeof out), 4u);
  EXPECT_EQ(std::string(out, 4), "6789");
  EXPECT_EQ(read_fully(fd.get(), path_, 10, out, sizeof out), 0u);
  EXPECT_EQ(read_fully(fd.get(), path_, 0, out, 0), 0u);
}

TEST_F(SupportFile, ReadExactlyCallsAShortReadAnErrorNamingTheFile) {
  write_text(path_, "0123456789");
  UniqueFd fd = open_locked(path_, O_RDONLY, 0, FileLock::none);
  char out[8];
  EXPECT_THAT(error_of([&] { read_exactly(fd.get(), path_, 6, out, sizeof out); }),
              AllOf(HasSubstr(path_), HasSubstr("unexpected end of file"), HasSubstr("4 of 8 bytes at offset 6")));
}

TEST_F(SupportFile, ReadAndWriteErrorsNameTheFileAndTheReason) {
  UniqueFd read_only = open_locked(scratch_.path(), O_RDONLY, 0, FileLock::none);  // a directory
  char byte = 0;
  EXPECT_THAT(error_of([&] { read_fully(read_only.get(), "the-dir", 0, &byte, 1); }),
              AllOf(HasSubstr("cannot read the-dir"), HasSubstr("Is a directory")));
  write_text(path_, "x");
  UniqueFd reader = open_locked(path_, O_RDONLY, 0, FileLock::none);
  try {
    write_fully(reader.get(), path_, 0, &byte, 1);
    FAIL() << "a write through a read-only descriptor succeeded";
  } catch (const IoError& e) {
    EXPECT_EQ(e.error_number(), EBADF);
    EXPECT_THAT(e.what(), HasSubstr("cannot write " + path_));
  }
}

// A write that crosses the file size limit is cut short by the kernel; the next pwrite then
// fails with EFBIG. write_fully must go on after the short write and report that failure.
TEST_F(SupportFile, WriteFullyContinuesAfterAShortWriteAndReportsTheFailureThatStopsIt) {
  UniqueFd fd = open_locked(path_, O_RDWR | O_CREAT, 0600, FileLock::none);
  struct sigaction ignore {};
  struct sigaction previous {};
  ignore.sa_handler = SIG_IGN;
  ASSERT_EQ(::sigaction(SIGXFSZ, &ignore, &previous), 0);
  rlimit old_limit{};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old_limit), 0);
  rlimit limit = old_limit;
  limit.rlim_cur = 5000;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &limit), 0);
  const std::vector<std::uint8_t> data(8192, 0xA5);
  int error_number = 0;
  try {
    write_fully(fd.get(), path_, 0, data.data(), data.size());
  } catch (const IoError& e) {
    error_number = e.error_number();
  }
  ::setrlimit(RLIMIT_FSIZE, &old_limit);
  ::sigaction(SIGXFSZ, &previous, nullptr);
  EXPECT_EQ(error_number, EFBIG) << "the second pwrite's error (the first wrote 5000 bytes)";
  struct stat st {};
  ASSERT_EQ(::fstat(fd.get(), &st), 0);
  EXPECT_EQ(st.st_size, 5000);
}

TEST_F(SupportFile, ReadWholeFileReadsAllOrSaysTheFileIsNotThere) {
  const std::string big(100000, 'q');
  write_text(path_, big);
  EXPECT_EQ(read_whole_file(path_), big);
  write_text(path_, "");
  EXPECT_EQ(read_whole_file(path_), "");
  EXPECT_EQ(read_whole_file(scratch_.file("missing.json")), std::nullopt);
  EXPECT_THAT(error_of([&] { read_whole_file(scratch_.path()); }),
              AllOf(HasSubstr("cannot read " + scratch_.path()), HasSubstr("Is a directory")));
}

// ---------------------------------------------------------------------------------------------
// Durable replace

TEST_F(SupportFile, ReplaceFileDurablyWritesTheContentsWithTheModeAndLeavesNoTemporaryFile) {
  const mode_t old_mask = ::umask(022);
  replace_file_durably(path_, "first\n", 0640);
  EXPECT_EQ(read_text(path_), "first\n");
  struct stat st {};
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640u);

  replace_file_durably(path_, "second, longer\n");
  ::umask(old_mask);
  EXPECT_EQ(read_text(path_), "second, longer\n");
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u) << "the default mode, from the new file";
  EXPECT_FALSE(std::filesystem::exists(path_ + ".tmp"));
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(scratch_.path()), {}), 1) << "only the file";
}

TEST_F(SupportFile, ReplaceFileDurablyTakesOverATemporaryFileLeftByACrash) {
  write_text(path_ + ".tmp", "half-written by a process that died");
  ASSERT_EQ(::chmod((path_ + ".tmp").c_str(), 0666), 0);
  replace_file_durably(path_, "whole");
  EXPECT_EQ(read_text(path_), "whole");
  struct stat st {};
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u) << "a file someone left is never reused with its mode";
  EXPECT_FALSE(std::filesystem::exists(path_ + ".tmp"));
}

TEST_F(SupportFile, AFailedReplaceLeavesTheOldFileAndNoTemporaryFile) {
  // The target is a directory: the rename fails after the temporary file was written.
  const std::string target = scratch_.file("state.json");
  std::filesystem::create_directory(target);
  write_text(target + "/inside", "old");
  EXPECT_THAT(error_of([&] { replace_file_durably(target, "new"); }),
              AllOf(HasSubstr("cannot replace " + target), HasSubstr("Is a directory")));
  EXPECT_EQ(read_text(target + "/inside"), "old");
  EXPECT_FALSE(std::filesystem::exists(target + ".tmp"));

  const std::string nowhere = scratch_.file("missing-dir/state.json");
  EXPECT_THAT(error_of([&] { replace_file_durably(nowhere, "new"); }),
              AllOf(HasSubstr("cannot create " + nowhere + ".tmp"), HasSubstr("No such file")));
}

TEST_F(SupportFile, SyncDirectoryNamesADirectoryItCannotOpen) {
  EXPECT_NO_THROW(sync_directory(scratch_.path()));
  const std::string missing = scratch_.file("missing");
  EXPECT_THAT(error_of([&] { sync_directory(missing); }),
              AllOf(HasSubstr("cannot open directory " + missing), HasSubstr("No such file")));
}

TEST(SupportParentDirectory, IsTheDirectoryPartOfAPath) {
  EXPECT_EQ(parent_directory("card/rpmb.img"), "card");
  EXPECT_EQ(parent_directory("/a/b/state.json"), "/a/b");
  EXPECT_EQ(parent_directory("/state.json"), "/");
  EXPECT_EQ(parent_directory("state.json"), ".");
}

}  // namespace
}  // namespace emmcsim::support
