// The file operations the persistent store performs. Every write and sync goes through this
// interface so tests can fail or cut power at any operation (testbench/unit/rpmb).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "emmcsim/support/file.hpp"

namespace emmcsim::rpmb {

class StorageFile {
 public:
  virtual ~StorageFile() = default;
  virtual std::uint64_t size() const = 0;
  // All-or-throw; throws StoreError (support::IoError) naming the operation, the path and why.
  virtual void read_at(std::uint64_t offset, void* out, std::size_t size) const = 0;
  virtual void write_at(std::uint64_t offset, const void* bytes, std::size_t size) = 0;
  virtual void resize(std::uint64_t size) = 0;
  // Makes every completed write durable (fdatasync).
  virtual void sync() = 0;
  virtual const std::string& path() const = 0;
};

// A regular file, locked (flock) for the life of the object: exclusively when opened to be
// written, so two processes cannot open one image; not at all when opened read-only, so an image
// a running simulator holds can be inspected (writes then fail).
class PosixStorageFile final : public StorageFile {
 public:
  enum class Mode {
    open_existing,  // read-write, locked exclusively
    create_new,     // created (mode 0600, must not exist), read-write, locked exclusively
    read_only,      // no lock: another process may be writing it
  };
  PosixStorageFile(std::string path, Mode mode);

  std::uint64_t size() const override;
  void read_at(std::uint64_t offset, void* out, std::size_t size) const override;
  void write_at(std::uint64_t offset, const void* bytes, std::size_t size) override;
  void resize(std::uint64_t size) override;
  void sync() override;
  const std::string& path() const override { return path_; }

 private:
  void check_writable() const;
  std::string path_;
  bool writable_;
  support::UniqueFd fd_;
};

}  // namespace emmcsim::rpmb
