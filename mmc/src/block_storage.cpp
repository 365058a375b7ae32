#include "emmcsim/mmc/block_storage.hpp"

#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <utility>

#include "emmcsim/mmc/partition.hpp"

namespace emmcsim::mmc {

// ---------------------------------------------------------------------------------------------
// MemoryBlockStorage

MemoryBlockStorage::MemoryBlockStorage(std::uint64_t sectors) : sectors_(sectors) {}

namespace {

// Calls visit(chunk, offset, run) for each run of sectors [sector, sector + count) that lies in one
// chunk of `chunk_sectors`: the chunk's index, the first sector's offset in it, the run's length.
template <class Visit>
void for_each_chunk_run(std::uint64_t sector, std::uint64_t count, std::uint64_t chunk_sectors, Visit visit) {
  const std::uint64_t end = sector + count;
  while (sector < end) {
    const std::uint64_t offset = sector % chunk_sectors;
    const std::uint64_t run = std::min(chunk_sectors - offset, end - sector);
    visit(sector / chunk_sectors, offset, run);
    sector += run;
  }
}

}  // namespace

void MemoryBlockStorage::read(std::uint64_t sector, std::uint32_t count, std::uint8_t* out) {
  for_each_chunk_run(sector, count, kChunkSectors, [&](std::uint64_t chunk, std::uint64_t offset, std::uint64_t run) {
    const std::size_t bytes = static_cast<std::size_t>(run * kSectorSize);
    const auto found = chunks_.find(chunk);
    if (found == chunks_.end()) {
      std::memset(out, 0, bytes);  // never written (or erased): reads as zeros
    } else {
      std::memcpy(out, found->second.data() + offset * kSectorSize, bytes);
    }
    out += bytes;
  });
}

void MemoryBlockStorage::write(std::uint64_t sector, std::uint32_t count, const std::uint8_t* in) {
  for_each_chunk_run(sector, count, kChunkSectors, [&](std::uint64_t chunk, std::uint64_t offset, std::uint64_t run) {
    const std::size_t bytes = static_cast<std::size_t>(run * kSectorSize);
    std::vector<std::uint8_t>& data = chunks_[chunk];
    if (data.empty()) data.assign(kChunkSectors * kSectorSize, 0);
    std::memcpy(data.data() + offset * kSectorSize, in, bytes);
    in += bytes;
  });
}

void MemoryBlockStorage::erase(std::uint64_t sector, std::uint64_t count) {
  for_each_chunk_run(sector, count, kChunkSectors, [&](std::uint64_t chunk, std::uint64_t offset, std::uint64_t run) {
    const auto found = chunks_.find(chunk);
    if (found == chunks_.end()) return;
    // The last chunk of a partition whose size is not a multiple of the chunk counts as whole
    // when the erase reaches the partition's end: the tail beyond it is never read.
    const std::uint64_t chunk_end = std::min((chunk + 1) * kChunkSectors, sectors_);
    if (offset == 0 && chunk * kChunkSectors + offset + run >= chunk_end) {
      chunks_.erase(found);  // the memory goes back, as a punched hole would
    } else {
      std::memset(found->second.data() + offset * kSectorSize, 0, static_cast<std::size_t>(run * kSectorSize));
    }
  });
}

// ---------------------------------------------------------------------------------------------
// FileBlockStorage

FileBlockStorage::FileBlockStorage(support::UniqueFd fd, std::string path, std::uint64_t sectors)
    : fd_(std::move(fd)), path_(std::move(path)), sectors_(sectors) {}

std::unique_ptr<FileBlockStorage> FileBlockStorage::create(const std::string& path, std::uint64_t sectors) {
  support::UniqueFd fd = support::open_locked(path, O_RDWR | O_CREAT | O_EXCL, 0600, support::FileLock::exclusive);
  // ftruncate extends without allocating: the file is sparse and reads as zeros, like an erased
  // part. A failure leaves no half-made file behind.
  if (::ftruncate(fd.get(), static_cast<off_t>(sectors * kSectorSize)) != 0) {
    const int err = errno;
    fd.reset();
    ::unlink(path.c_str());
    throw StorageError("set the size of", path, err);
  }
  return std::unique_ptr<FileBlockStorage>(new FileBlockStorage(std::move(fd), path, sectors));
}

std::unique_ptr<FileBlockStorage> FileBlockStorage::open(const std::string& path) {
  support::UniqueFd fd = support::open_locked(path, O_RDWR, 0, support::FileLock::exclusive);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) throw StorageError("stat", path, errno);
  const auto size = static_cast<std::uint64_t>(st.st_size);
  if (!S_ISREG(st.st_mode)) throw StorageError(path, "not a regular file");
  if (size % kSectorSize != 0) {
    throw StorageError(path, std::to_string(size) + " bytes is not a whole number of 512-byte sectors");
  }
  return std::unique_ptr<FileBlockStorage>(new FileBlockStorage(std::move(fd), path, size / kSectorSize));
}

void FileBlockStorage::read(std::uint64_t sector, std::uint32_t count, std::uint8_t* out) {
  // The size was checked when the file was opened: ending early means it shrank under us.
  support::read_exactly(fd_.get(), path_, sector * kSectorSize, out, static_cast<std::size_t>(count) * kSectorSize);
}

void FileBlockStorage::write(std::uint64_t sector, std::uint32_t count, const std::uint8_t* in) {
  support::write_fully(fd_.get(), path_, sector * kSectorSize, in, static_cast<std::size_t>(count) * kSectorSize);
}

void FileBlockStorage::erase(std::uint64_t sector, std::uint64_t count) {
  if (count == 0) return;  // fallocate rejects an empty range with EINVAL
  const std::uint64_t offset = sector * kSectorSize;
  const std::uint64_t length = count * kSectorSize;
  if (::fallocate(fd_.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset),
                  static_cast<off_t>(length)) == 0) {
    return;
  }
  const int err = errno;
  // File systems without hole punching (and kernels without fallocate) say so with one of
  // these; anything else is a real failure of the medium.
  if (err != EOPNOTSUPP && err != ENOSYS && err != EINVAL) {
    throw StorageError("punch a hole (erase) in", path_, err);
  }
  static constexpr std::size_t kZeroBlock = 256 * 1024;
  static const std::vector<std::uint8_t> zeros(kZeroBlock, 0);
  for (std::uint64_t done = 0; done < length;) {
    const std::size_t step = static_cast<std::size_t>(std::min<std::uint64_t>(kZeroBlock, length - done));
    support::write_fully(fd_.get(), path_, offset + done, zeros.data(), step);
    done += step;
  }
}

void FileBlockStorage::flush() {
  if (::fdatasync(fd_.get()) != 0) throw StorageError("fdatasync", path_, errno);
}

}  // namespace emmcsim::mmc
