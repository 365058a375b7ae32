#include "emmcsim/support/file.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace emmcsim::support {

IoError::IoError(const std::string& operation, const std::string& path, int error_number)
    : std::runtime_error("cannot " + operation + " " + path + ": " + std::strerror(error_number)),
      path_(path),
      error_number_(error_number) {}

IoError::IoError(const std::string& path, const std::string& problem)
    : std::runtime_error(path + ": " + problem), path_(path) {}

IoError::IoError(const std::string& message) : std::runtime_error(message) {}

FileInUse::FileInUse(const std::string& path) : IoError(path, "in use by another process (the file is locked)") {}

void UniqueFd::reset(int fd) noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

void UniqueFd::close_checked(const std::string& path) {
  const int fd = release();
  // Linux releases the descriptor even when close fails, so it is never retried.
  if (fd >= 0 && ::close(fd) != 0) throw IoError("close", path, errno);
}

UniqueFd open_locked(const std::string& path, int flags, mode_t mode, FileLock lock) {
  const bool creating = (flags & O_CREAT) != 0;
  UniqueFd fd(::open(path.c_str(), flags | O_CLOEXEC, mode));
  if (!fd) throw IoError(creating ? "create" : "open", path, errno);
  if (lock == FileLock::none) return fd;
  if (::flock(fd.get(), (lock == FileLock::exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) != 0) {
    const int err = errno;
    if (creating && (flags & O_EXCL) != 0) ::unlink(path.c_str());  // ours, just made: leave nothing
    if (err == EWOULDBLOCK) throw FileInUse(path);
    throw IoError("lock", path, err);
  }
  return fd;
}

bool locked_by_another_process(const std::string& path) {
  const UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return false;
  // Closing the descriptor drops the shared lock again when it was granted.
  return ::flock(fd.get(), LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
}

std::size_t read_fully(int fd, const std::string& path, std::uint64_t offset, void* out, std::size_t size) {
  auto* p = static_cast<std::uint8_t*>(out);
  std::size_t done = 0;
  while (done < size) {
    const ssize_t n = ::pread(fd, p + done, size - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      throw IoError("read", path, errno);
    }
    if (n == 0) break;  // end of file
    done += static_cast<std::size_t>(n);
  }
  return done;
}

void read_exactly(int fd, const std::string& path, std::uint64_t offset, void* out, std::size_t size) {
  const std::size_t got = read_fully(fd, path, offset, out, size);
  if (got != size) {
    throw IoError(path, "unexpected end of file (" + std::to_string(got) + " of " + std::to_string(size) +
                            " bytes at offset " + std::to_string(offset) + "; was the file truncated?)");
  }
}

void write_fully(int fd, const std::string& path, std::uint64_t offset, const void* in, std::size_t size) {
  const auto* p = static_cast<const std::uint8_t*>(in);
  std::size_t done = 0;
  while (done < size) {
    const ssize_t n = ::pwrite(fd, p + done, size - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      throw IoError("write", path, errno);
    }
    // A write of a non-zero size that writes nothing makes no progress; looping would spin.
    if (n == 0) throw IoError("write", path, ENOSPC);
    done += static_cast<std::size_t>(n);
  }
}

std::optional<std::string> read_whole_file(const std::string& path) {
  const UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    if (errno == ENOENT) return std::nullopt;
    throw IoError("open", path, errno);
  }
  std::string text;
  char buffer[16 * 1024];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw IoError("read", path, errno);
    }
    if (n == 0) return text;
    text.append(buffer, static_cast<std::size_t>(n));
  }
}

void replace_file_durably(const std::string& path, const std::string& bytes, mode_t mode) {
  const std::string temporary = path + ".tmp";
  ::unlink(temporary.c_str());  // left by a replace that was interrupted
  // O_EXCL after the unlink: the file and its mode are ours, not one someone put there.
  UniqueFd fd = open_locked(temporary, O_WRONLY | O_CREAT | O_EXCL, mode, FileLock::none);
  try {
    write_fully(fd.get(), temporary, 0, bytes.data(), bytes.size());
    if (::fsync(fd.get()) != 0) throw IoError("fsync", temporary, errno);
    fd.close_checked(temporary);
    if (::rename(temporary.c_str(), path.c_str()) != 0) throw IoError("replace", path, errno);
  } catch (...) {
    fd.reset();
    ::unlink(temporary.c_str());
    throw;
  }
  // The rename is durable only once the directory entry is.
  sync_directory(parent_directory(path));
}

void sync_directory(const std::string& directory) {
  const UniqueFd fd(::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) throw IoError("open directory", directory, errno);
  if (::fsync(fd.get()) != 0) throw IoError("fsync directory", directory, errno);
}

std::string parent_directory(const std::string& path) {
  const auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace emmcsim::support
