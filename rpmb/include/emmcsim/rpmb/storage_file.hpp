// The file operations the persistent store performs. Every write and sync goes through this
// interface so tests can fail or cut power at any operation (testbench/unit/rpmb).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace emmcsim::rpmb {

class StorageFile {
 public:
  virtual ~StorageFile() = default;
  virtual std::uint64_t size() const = 0;
  // All-or-throw; throws StoreError with the path and errno text.
  virtual void read_at(std::uint64_t offset, void* out, std::size_t size) const = 0;
  virtual void write_at(std::uint64_t offset, const void* bytes, std::size_t size) = 0;
  virtual void resize(std::uint64_t size) = 0;
  // Makes every completed write durable (fdatasync).
  virtual void sync() = 0;
  virtual const std::string& path() const = 0;
};

// A regular file, opened read-write, locked exclusively (flock) for the life of the object so
// two processes cannot open one image.
class PosixStorageFile final : public StorageFile {
 public:
  enum class Mode { open_existing, create_new };
  PosixStorageFile(std::string path, Mode mode);
  ~PosixStorageFile() override;
  PosixStorageFile(const PosixStorageFile&) = delete;
  PosixStorageFile& operator=(const PosixStorageFile&) = delete;

  std::uint64_t size() const override;
  void read_at(std::uint64_t offset, void* out, std::size_t size) const override;
  void write_at(std::uint64_t offset, const void* bytes, std::size_t size) override;
  void resize(std::uint64_t size) override;
  void sync() override;
  const std::string& path() const override { return path_; }

 private:
  std::string path_;
  int fd_ = -1;
};

}  // namespace emmcsim::rpmb
