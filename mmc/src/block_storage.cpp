#include "emmcsim/mmc/block_storage.hpp"

#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "emmcsim/mmc/partition.hpp"

namespace emmcsim::mmc {
namespace {

[[noreturn]] void fail(const std::string& path, const char* what, int err) {
  throw StorageError(path + ": " + what + ": " + std::strerror(err));
}

// Opens `path` read-write and takes the exclusive lock that keeps a second simulator off it.
// Returns the descriptor; closes it again when the lock cannot be had.
int open_locked(const std::string& path, int extra_flags, const char* what) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC | extra_flags, 0600);
  if (fd < 0) fail(path, what, errno);
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    if ((extra_flags & O_CREAT) != 0) ::unlink(path.c_str());  // ours, just made: leave nothing
    ::close(fd);
    if (err == EWOULDBLOCK) throw StorageError(path + ": in use by another process (the image is locked)");
    fail(path, "cannot lock", err);
  }
  return fd;
}

void pread_all(int fd, const std::string& path, std::uint64_t offset, std::uint8_t* out, std::size_t size) {
  while (size > 0) {
    const ssize_t n = ::pread(fd, out, size, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      fail(path, "read failed", errno);
    }
    // The size was checked when the file was opened: it shrank under us.
    if (n == 0) throw StorageError(path + ": unexpected end of file (was the file truncated?)");
    out += n;
    offset += static_cast<std::uint64_t>(n);
    size -= static_cast<std::size_t>(n);
  }
}

void pwrite_all(int fd, const std::string& path, std::uint64_t offset, const std::uint8_t* in,
                std::size_t size) {
  while (size > 0) {
    const ssize_t n = ::pwrite(fd, in, size, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      fail(path, "write failed", errno);
    }
    // pwrite of a non-zero size returning 0 makes no progress; looping would spin forever.
    if (n == 0) throw StorageError(path + ": write failed: no progress");
    in += n;
    offset += static_cast<std::uint64_t>(n);
    size -= static_cast<std::size_t>(n);
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// MemoryBlockStorage

MemoryBlockStorage::MemoryBlockStorage(std::uint64_t sectors) : sectors_(sectors) {}

void MemoryBlockStorage::read(std::uint64_t sector, std::uint32_t count, std::uint8_t* out) {
  const std::uint64_t end = sector + count;
  while (sector < end) {
    const std::uint64_t chunk = sector / kChunkSectors;
    const std::uint64_t offset = sector % kChunkSectors;
    const std::uint64_t run = std::min(kChunkSectors - offset, end - sector);
    const std::size_t bytes = static_cast<std::size_t>(run * kSectorSize);
    const auto found = chunks_.find(chunk);
    if (found == chunks_.end()) {
      std::memset(out, 0, bytes);  // never written (or erased): reads as zeros
    } else {
      std::memcpy(out, found->second.data() + offset * kSectorSize, bytes);
    }
    out += bytes;
    sector += run;
  }
}

void MemoryBlockStorage::write(std::uint64_t sector, std::uint32_t count, const std::uint8_t* in) {
  const std::uint64_t end = sector + count;
  while (sector < end) {
    const std::uint64_t chunk = sector / kChunkSectors;
    const std::uint64_t offset = sector % kChunkSectors;
    const std::uint64_t run = std::min(kChunkSectors - offset, end - sector);
    const std::size_t bytes = static_cast<std::size_t>(run * kSectorSize);
    std::vector<std::uint8_t>& data = chunks_[chunk];
    if (data.empty()) data.assign(kChunkSectors * kSectorSize, 0);
    std::memcpy(data.data() + offset * kSectorSize, in, bytes);
    in += bytes;
    sector += run;
  }
}

void MemoryBlockStorage::erase(std::uint64_t sector, std::uint64_t count) {
  const std::uint64_t end = sector + count;
  while (sector < end) {
    const std::uint64_t chunk = sector / kChunkSectors;
    const std::uint64_t offset = sector % kChunkSectors;
    const std::uint64_t run = std::min(kChunkSectors - offset, end - sector);
    const auto found = chunks_.find(chunk);
    if (found != chunks_.end()) {
      // The last chunk of a partition whose size is not a multiple of the chunk counts as whole
      // when the erase reaches the partition's end: the tail beyond it is never read.
      const std::uint64_t chunk_end = std::min((chunk + 1) * kChunkSectors, sectors_);
      if (offset == 0 && sector + run >= chunk_end) {
        chunks_.erase(found);  // the memory goes back, as a punched hole would
      } else {
        std::memset(found->second.data() + offset * kSectorSize, 0,
                    static_cast<std::size_t>(run * kSectorSize));
      }
    }
    sector += run;
  }
}

// ---------------------------------------------------------------------------------------------
// FileBlockStorage

FileBlockStorage::FileBlockStorage(int fd, std::string path, std::uint64_t sectors)
    : fd_(fd), path_(std::move(path)), sectors_(sectors) {}

FileBlockStorage::~FileBlockStorage() {
  if (fd_ >= 0) ::close(fd_);
}

std::unique_ptr<FileBlockStorage> FileBlockStorage::create(const std::string& path, std::uint64_t sectors) {
  const int fd = open_locked(path, O_CREAT | O_EXCL, "cannot create");
  // ftruncate extends without allocating: the file is sparse and reads as zeros, like an erased
  // part. A failure leaves no half-made file behind.
  if (::ftruncate(fd, static_cast<off_t>(sectors * kSectorSize)) != 0) {
    const int err = errno;
    ::unlink(path.c_str());
    ::close(fd);
    fail(path, "cannot set the size", err);
  }
  return std::unique_ptr<FileBlockStorage>(new FileBlockStorage(fd, path, sectors));
}

std::unique_ptr<FileBlockStorage> FileBlockStorage::open(const std::string& path) {
  const int fd = open_locked(path, 0, "cannot open");
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    fail(path, "cannot stat", err);
  }
  const auto size = static_cast<std::uint64_t>(st.st_size);
  std::string problem;
  if (!S_ISREG(st.st_mode)) {
    problem = ": not a regular file";
  } else if (size % kSectorSize != 0) {
    problem = ": " + std::to_string(size) + " bytes is not a whole number of 512-byte sectors";
  }
  if (!problem.empty()) {
    ::close(fd);
    throw StorageError(path + problem);
  }
  return std::unique_ptr<FileBlockStorage>(new FileBlockStorage(fd, path, size / kSectorSize));
}

void FileBlockStorage::read(std::uint64_t sector, std::uint32_t count, std::uint8_t* out) {
  pread_all(fd_, path_, sector * kSectorSize, out, static_cast<std::size_t>(count) * kSectorSize);
}

void FileBlockStorage::write(std::uint64_t sector, std::uint32_t count, const std::uint8_t* in) {
  pwrite_all(fd_, path_, sector * kSectorSize, in, static_cast<std::size_t>(count) * kSectorSize);
}

void FileBlockStorage::erase(std::uint64_t sector, std::uint64_t count) {
  if (count == 0) return;  // fallocate rejects an empty range with EINVAL
  const std::uint64_t offset = sector * kSectorSize;
  const std::uint64_t length = count * kSectorSize;
  if (::fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset),
                  static_cast<off_t>(length)) == 0) {
    return;
  }
  const int err = errno;
  // File systems without hole punching (and kernels without fallocate) say so with one of
  // these; anything else is a real failure of the medium.
  if (err != EOPNOTSUPP && err != ENOSYS && err != EINVAL) fail(path_, "cannot erase (punch hole)", err);
  static constexpr std::size_t kZeroBlock = 256 * 1024;
  static const std::vector<std::uint8_t> zeros(kZeroBlock, 0);
  for (std::uint64_t done = 0; done < length;) {
    const std::size_t step = static_cast<std::size_t>(std::min<std::uint64_t>(kZeroBlock, length - done));
    pwrite_all(fd_, path_, offset + done, zeros.data(), step);
    done += step;
  }
}

void FileBlockStorage::flush() {
  if (::fdatasync(fd_) != 0) fail(path_, "fdatasync failed", errno);
}

}  // namespace emmcsim::mmc
