#include "emmcsim/rpmb/storage_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <utility>

#include "emmcsim/rpmb/store.hpp"

namespace emmcsim::rpmb {

PosixStorageFile::PosixStorageFile(std::string path, Mode mode)
    : path_(std::move(path)), writable_(mode != Mode::read_only) {
  switch (mode) {
    case Mode::open_existing: fd_ = support::open_locked(path_, O_RDWR, 0, support::FileLock::exclusive); break;
    case Mode::create_new:
      fd_ = support::open_locked(path_, O_RDWR | O_CREAT | O_EXCL, 0600, support::FileLock::exclusive);
      break;
    case Mode::read_only: fd_ = support::open_locked(path_, O_RDONLY, 0, support::FileLock::none); break;
  }
}

void PosixStorageFile::check_writable() const {
  if (!writable_) throw StoreError(path_, "opened read-only: it cannot be changed");
}

std::uint64_t PosixStorageFile::size() const {
  struct stat st {};
  if (::fstat(fd_.get(), &st) != 0) throw StoreError("stat", path_, errno);
  return static_cast<std::uint64_t>(st.st_size);
}

void PosixStorageFile::read_at(std::uint64_t offset, void* out, std::size_t size) const {
  support::read_exactly(fd_.get(), path_, offset, out, size);
}

void PosixStorageFile::write_at(std::uint64_t offset, const void* bytes, std::size_t size) {
  check_writable();
  support::write_fully(fd_.get(), path_, offset, bytes, size);
}

void PosixStorageFile::resize(std::uint64_t size) {
  check_writable();
  if (::ftruncate(fd_.get(), static_cast<off_t>(size)) != 0) throw StoreError("resize", path_, errno);
}

void PosixStorageFile::sync() {
  check_writable();
  if (::fdatasync(fd_.get()) != 0) throw StoreError("fdatasync", path_, errno);
}

}  // namespace emmcsim::rpmb
