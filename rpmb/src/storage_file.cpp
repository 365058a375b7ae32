#include "emmcsim/rpmb/storage_file.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "emmcsim/rpmb/store.hpp"

namespace emmcsim::rpmb {
namespace {

[[noreturn]] void fail(const std::string& path, const char* what, int err) {
  throw StoreError(path + ": " + what + ": " + std::strerror(err));
}

}  // namespace

PosixStorageFile::PosixStorageFile(std::string path, Mode mode) : path_(std::move(path)) {
  const int flags = O_RDWR | O_CLOEXEC | (mode == Mode::create_new ? O_CREAT | O_EXCL : 0);
  fd_ = ::open(path_.c_str(), flags, 0600);
  if (fd_ < 0) fail(path_, mode == Mode::create_new ? "cannot create" : "cannot open", errno);
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    ::close(fd_);
    fd_ = -1;
    if (err == EWOULDBLOCK) {
      throw StoreError(path_ + ": in use by another process (the image is locked)");
    }
    fail(path_, "cannot lock", err);
  }
}

PosixStorageFile::~PosixStorageFile() {
  if (fd_ >= 0) ::close(fd_);
}

std::uint64_t PosixStorageFile::size() const {
  struct stat st {};
  if (::fstat(fd_, &st) != 0) fail(path_, "cannot stat", errno);
  return static_cast<std::uint64_t>(st.st_size);
}

void PosixStorageFile::read_at(std::uint64_t offset, void* out, std::size_t size) const {
  auto* p = static_cast<char*>(out);
  while (size > 0) {
    const ssize_t n = ::pread(fd_, p, size, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      fail(path_, "read failed", errno);
    }
    if (n == 0) throw StoreError(path_ + ": unexpected end of file");
    p += n;
    offset += static_cast<std::uint64_t>(n);
    size -= static_cast<std::size_t>(n);
  }
}

void PosixStorageFile::write_at(std::uint64_t offset, const void* bytes, std::size_t size) {
  const auto* p = static_cast<const char*>(bytes);
  while (size > 0) {
    const ssize_t n = ::pwrite(fd_, p, size, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      fail(path_, "write failed", errno);
    }
    p += n;
    offset += static_cast<std::uint64_t>(n);
    size -= static_cast<std::size_t>(n);
  }
}

void PosixStorageFile::resize(std::uint64_t size) {
  if (::ftruncate(fd_, static_cast<off_t>(size)) != 0) fail(path_, "cannot resize", errno);
}

void PosixStorageFile::sync() {
  if (::fdatasync(fd_) != 0) fail(path_, "fdatasync failed", errno);
}

}  // namespace emmcsim::rpmb
