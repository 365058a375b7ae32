#include <cstring>
#include <stdexcept>
#include <string>

#include "emmcsim/rpmb/store.hpp"

namespace emmcsim::rpmb {

void check_size_mult(std::uint32_t size_mult) {
  if (size_mult < 1 || size_mult > kMaxSizeMult) {
    throw std::invalid_argument("RPMB size multiplier " + std::to_string(size_mult) +
                                " is outside 1..128 (128 KiB units, 16 MiB at most)");
  }
}

MemoryStore::MemoryStore(std::uint32_t size_mult, PartitionState initial) : state_(initial) {
  check_size_mult(size_mult);
  data_.assign(std::size_t{size_mult} * kSizeMultUnit, 0);
}

std::uint32_t MemoryStore::half_sectors() const { return static_cast<std::uint32_t>(data_.size() / kHalfSectorSize); }

void MemoryStore::read(std::uint32_t address, std::uint32_t count, std::uint8_t* out) const {
  if (std::uint64_t{address} + count > half_sectors()) {
    throw std::out_of_range("RPMB read beyond the partition");
  }
  std::memcpy(out, data_.data() + std::size_t{address} * kHalfSectorSize, std::size_t{count} * kHalfSectorSize);
}

void MemoryStore::commit(const Commit& commit) {
  if (std::uint64_t{commit.address} + commit.count > half_sectors()) {
    throw std::out_of_range("RPMB commit beyond the partition");
  }
  if (commit.count > 0) {
    std::memcpy(data_.data() + std::size_t{commit.address} * kHalfSectorSize, commit.data,
                std::size_t{commit.count} * kHalfSectorSize);
  }
  state_ = *commit.next_state;
}

}  // namespace emmcsim::rpmb
