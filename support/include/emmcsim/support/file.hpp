// File primitives for everything emmcsim keeps on disk (the RPMB store, the partition files,
// device.json and state.json): an owned descriptor, an open that takes a lock, reads and writes
// that finish or throw, and a durable replace. Every failure is an IoError whose message names
// the operation, the path and the reason, e.g. "cannot write /img/boot0.img: No space left on
// device".
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>

namespace emmcsim::support {

// A file operation failed.
class IoError : public std::runtime_error {
 public:
  // A system call failed: what() is "cannot <operation> <path>: <strerror(error_number)>".
  IoError(const std::string& operation, const std::string& path, int error_number);
  // A problem that is no errno (a file too short, a record damaged): what() is "<path>: <problem>".
  IoError(const std::string& path, const std::string& problem);
  // Anything else: what() is `message`.
  explicit IoError(const std::string& message);

  const std::string& path() const noexcept { return path_; }   // empty when not known
  int error_number() const noexcept { return error_number_; }  // 0 when no system call failed

 private:
  std::string path_;
  int error_number_ = 0;
};

// Another process holds a lock on the file that conflicts with the one asked for (open_locked):
// what() is "<path>: in use by another process (the file is locked)".
class FileInUse : public IoError {
 public:
  explicit FileInUse(const std::string& path);
};

// Owns a file descriptor and closes it on destruction. Move-only.
class UniqueFd {
 public:
  UniqueFd() noexcept = default;
  explicit UniqueFd(int fd) noexcept : fd_(fd) {}
  ~UniqueFd() { reset(); }
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const noexcept { return fd_; }
  bool valid() const noexcept { return fd_ >= 0; }
  explicit operator bool() const noexcept { return valid(); }
  // Gives up ownership: the caller closes the descriptor.
  int release() noexcept {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }
  // Closes the descriptor held (an error from close is ignored: nothing can be done about it
  // here; close_checked reports it) and holds `fd` instead.
  void reset(int fd = -1) noexcept;
  // Closes the descriptor and reports a failure as IoError("close", path, errno): the last
  // chance to hear of a failed write-back on some file systems.
  void close_checked(const std::string& path);

 private:
  int fd_ = -1;
};

// The advisory lock (flock) open_locked takes, for as long as the descriptor stays open.
enum class FileLock {
  none,
  shared,     // readers that must not meet a writer
  exclusive,  // the one process that may change the file
};

// Opens `path` with open(2) `flags` (O_CLOEXEC is added) and `mode`, then takes `lock` without
// waiting. Throws IoError("create" when flags has O_CREAT, else "open", ...) when the file cannot
// be opened, and FileInUse when another open file holds a conflicting lock. A file this call
// created (O_CREAT | O_EXCL) is removed again when the lock cannot be had.
UniqueFd open_locked(const std::string& path, int flags, mode_t mode, FileLock lock);

// True when another open file holds an exclusive lock on `path` (a simulator serving it). Takes a
// shared lock for an instant to find out; false when the file cannot be opened.
bool locked_by_another_process(const std::string& path);

// pread(2) from `offset` until `size` bytes are read or the file ends, retrying after EINTR and
// short reads. Returns the bytes read: less than `size` only at the end of the file. Throws
// IoError("read", path, errno).
std::size_t read_fully(int fd, const std::string& path, std::uint64_t offset, void* out, std::size_t size);
// read_fully, where ending early is an error too: IoError "<path>: unexpected end of file (N of M
// bytes at offset X; was the file truncated?)".
void read_exactly(int fd, const std::string& path, std::uint64_t offset, void* out, std::size_t size);
// pwrite(2) at `offset` until all `size` bytes are written, retrying after EINTR and short writes.
// Throws IoError("write", path, errno) (ENOSPC for a write that makes no progress).
void write_fully(int fd, const std::string& path, std::uint64_t offset, const void* in, std::size_t size);

// A small file's whole contents (a configuration, a state file), read with read(2) to the end;
// nullopt when the file does not exist. Throws IoError for any other failure.
std::optional<std::string> read_whole_file(const std::string& path);

// Replaces `path` with `bytes` so that a crash at any instant leaves the old file or the new one,
// whole: writes `path`.tmp (mode `mode`, created afresh), fsyncs it, renames it over `path`, and
// fsyncs the directory. On failure the temporary file is removed and `path` is untouched.
void replace_file_durably(const std::string& path, const std::string& bytes, mode_t mode = 0600);

// fsync(2) of a directory: makes the creation, removal or renaming of its entries durable.
void sync_directory(const std::string& directory);

// The directory part of `path`: "a/b" for "a/b/c", "/" for "/c", "." for "c".
std::string parent_directory(const std::string& path);

}  // namespace emmcsim::support
