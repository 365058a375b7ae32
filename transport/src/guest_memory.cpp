// GuestMemory (see guest_memory.hpp).
#include "emmcsim/transport/guest_memory.hpp"

#include <sys/mman.h>

#include <cerrno>
#include <cstring>

namespace emmcsim::transport {

namespace {

bool overlaps(std::uint64_t a, std::uint64_t a_size, std::uint64_t b, std::uint64_t b_size) {
  return a < b + b_size && b < a + a_size;
}

// The region's size and addresses do not wrap (the message decoder checked it; direct users
// of GuestMemory get the same check).
void check(const GuestMemory::Region& r) {
  if (r.size == 0) throw GuestMemoryError("guest memory region of size 0");
  if (r.guest_address + r.size < r.guest_address || r.user_address + r.size < r.user_address)
    throw GuestMemoryError("guest memory region wraps around the address space");
  if (r.host == nullptr) throw GuestMemoryError("guest memory region without a mapping");
}

std::uint8_t* lookup(const std::vector<GuestMemory::Region>& regions, std::uint64_t address, std::uint64_t length,
                     bool user) {
  if (address + length < address) return nullptr;
  for (const auto& r : regions) {
    const std::uint64_t base = user ? r.user_address : r.guest_address;
    if (address >= base && address - base < r.size && length <= r.size - (address - base))
      return r.host + (address - base);
  }
  return nullptr;
}

}  // namespace

GuestMemory::GuestMemory(std::vector<Region> regions) : regions_(std::move(regions)) {
  for (std::size_t i = 0; i < regions_.size(); ++i) {
    check(regions_[i]);
    for (std::size_t j = 0; j < i; ++j) {
      if (overlaps(regions_[i].guest_address, regions_[i].size, regions_[j].guest_address, regions_[j].size) ||
          overlaps(regions_[i].user_address, regions_[i].size, regions_[j].user_address, regions_[j].size))
        throw GuestMemoryError("guest memory regions " + std::to_string(j) + " and " + std::to_string(i) + " overlap");
    }
  }
}

GuestMemory::Region GuestMemory::map_file(int fd, std::uint64_t guest_address, std::uint64_t size,
                                          std::uint64_t user_address, std::uint64_t mmap_offset) {
  if (size == 0 || mmap_offset + size < mmap_offset || mmap_offset + size > SIZE_MAX)
    throw GuestMemoryError("guest memory region of " + std::to_string(size) + " bytes at offset " +
                           std::to_string(mmap_offset) + " cannot be mapped");
  // Mapped from offset 0 so that an mmap_offset that is not page-aligned works too.
  const std::size_t length = static_cast<std::size_t>(mmap_offset + size);
  void* base = ::mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED)
    throw GuestMemoryError("cannot map a guest memory region of " + std::to_string(size) +
                           " bytes: " + std::strerror(errno));
  std::shared_ptr<void> mapping(base, [length](void* p) { ::munmap(p, length); });
  Region r;
  r.guest_address = guest_address;
  r.size = size;
  r.user_address = user_address;
  r.host = static_cast<std::uint8_t*>(base) + mmap_offset;
  r.mapping = std::move(mapping);
  check(r);
  return r;
}

std::uint8_t* GuestMemory::from_guest(std::uint64_t address, std::uint64_t length) const {
  return lookup(regions_, address, length, false);
}
std::uint8_t* GuestMemory::from_user(std::uint64_t address, std::uint64_t length) const {
  return lookup(regions_, address, length, true);
}

GuestMemory GuestMemory::with(Region region) const {
  std::vector<Region> regions = regions_;
  regions.push_back(std::move(region));
  return GuestMemory(std::move(regions));
}

GuestMemory GuestMemory::without(std::uint64_t guest_address, std::uint64_t size) const {
  std::vector<Region> regions;
  bool found = false;
  for (const auto& r : regions_) {
    if (!found && r.guest_address == guest_address && r.size == size) {
      found = true;
      continue;
    }
    regions.push_back(r);
  }
  if (!found)
    throw GuestMemoryError("no guest memory region of " + std::to_string(size) + " bytes at guest address " +
                           std::to_string(guest_address));
  return GuestMemory(std::move(regions));
}

}  // namespace emmcsim::transport
