// Where a data partition (user, boot, general purpose) keeps its 512-byte sectors. The card
// checks every address before calling in, so implementations may assume ranges are valid.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "emmcsim/support/file.hpp"

namespace emmcsim::mmc {

// The medium failed (I/O error, disk full) or cannot be used: the one I/O error type of emmcsim
// (what() names the operation, the file and why). The card turns it into an error status bit.
using StorageError = support::IoError;

class BlockStorage {
 public:
  virtual ~BlockStorage() = default;

  virtual std::uint64_t sectors() const = 0;
  virtual void read(std::uint64_t sector, std::uint32_t count, std::uint8_t* out) = 0;
  virtual void write(std::uint64_t sector, std::uint32_t count, const std::uint8_t* in) = 0;
  // Erase/trim/discard: afterwards the range reads as zeros (EXT_CSD[181] ERASED_MEM_CONT = 0).
  virtual void erase(std::uint64_t sector, std::uint64_t count) = 0;
  // Makes every write so far durable against a host crash (fdatasync for files).
  virtual void flush() = 0;
};

// RAM, sparse (only written chunks are allocated): tests, fuzzing, throw-away devices.
class MemoryBlockStorage final : public BlockStorage {
 public:
  explicit MemoryBlockStorage(std::uint64_t sectors);

  std::uint64_t sectors() const override { return sectors_; }
  void read(std::uint64_t sector, std::uint32_t count, std::uint8_t* out) override;
  void write(std::uint64_t sector, std::uint32_t count, const std::uint8_t* in) override;
  void erase(std::uint64_t sector, std::uint64_t count) override;
  void flush() override {}

 private:
  static constexpr std::uint64_t kChunkSectors = 128;  // 64 KiB
  std::uint64_t sectors_;
  std::map<std::uint64_t, std::vector<std::uint8_t>> chunks_;
};

// A (sparse) regular file of exactly sectors × 512 bytes, read and written with pread/pwrite;
// erase punches holes (FALLOC_FL_PUNCH_HOLE, falling back to writing zeros). Written data reaches
// the OS at once (it survives a kill -9 of the process); flush() makes it durable on disk.
// The file is locked (flock) against a second simulator opening it.
class FileBlockStorage final : public BlockStorage {
 public:
  // Creates `path` (mode 0600, sparse, `sectors` × 512 bytes); fails if it exists.
  static std::unique_ptr<FileBlockStorage> create(const std::string& path, std::uint64_t sectors);
  // Opens an existing file; its size must be a multiple of 512. Throws StorageError otherwise.
  static std::unique_ptr<FileBlockStorage> open(const std::string& path);
  FileBlockStorage(const FileBlockStorage&) = delete;
  FileBlockStorage& operator=(const FileBlockStorage&) = delete;

  std::uint64_t sectors() const override { return sectors_; }
  void read(std::uint64_t sector, std::uint32_t count, std::uint8_t* out) override;
  void write(std::uint64_t sector, std::uint32_t count, const std::uint8_t* in) override;
  void erase(std::uint64_t sector, std::uint64_t count) override;
  void flush() override;
  const std::string& path() const { return path_; }

 private:
  FileBlockStorage(support::UniqueFd fd, std::string path, std::uint64_t sectors);
  support::UniqueFd fd_;
  std::string path_;
  std::uint64_t sectors_;
};

}  // namespace emmcsim::mmc
