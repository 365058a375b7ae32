// GuestMemory: the guest's RAM as the vhost-user back-end sees it — the regions of the front-end's
// memory table (VHOST_USER_SET_MEM_TABLE / ADD_MEM_REG), each mapped from the file descriptor that
// came with it. Addresses from the front-end are in its user (virtual) address space (ring
// addresses) or guest-physical (descriptor buffers); both are translated here, and a range is
// handed out only when it lies wholly inside one region: anything else is nullptr, never a
// pointer past a mapping.
//
// A GuestMemory is immutable once built: a new memory table builds a new one, and the rings and
// the requests in flight hold a shared_ptr to the one they were read through, so a mapping is
// unmapped only when nothing can touch it any more.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace emmcsim::transport {

class GuestMemoryError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class GuestMemory {
 public:
  struct Region {
    std::uint64_t guest_address = 0;
    std::uint64_t size = 0;
    std::uint64_t user_address = 0;
    std::uint8_t* host = nullptr;   // where the region's first byte is mapped here
    std::shared_ptr<void> mapping;  // keeps `host` valid
  };

  GuestMemory() = default;
  explicit GuestMemory(std::vector<Region> regions);  // throws GuestMemoryError on overlaps

  // Maps `size` bytes at `offset` of `fd` (shared, read-write). Throws GuestMemoryError.
  static Region map_file(int fd, std::uint64_t guest_address, std::uint64_t size, std::uint64_t user_address,
                         std::uint64_t mmap_offset);

  // [address, address + length) inside one region, or nullptr. length 0 is a valid empty range
  // only inside a region.
  std::uint8_t* from_guest(std::uint64_t address, std::uint64_t length) const;
  std::uint8_t* from_user(std::uint64_t address, std::uint64_t length) const;

  const std::vector<Region>& regions() const { return regions_; }
  // A copy with one more region / without the region at `guest_address`.
  GuestMemory with(Region region) const;
  GuestMemory without(std::uint64_t guest_address, std::uint64_t size) const;

 private:
  std::vector<Region> regions_;
};

}  // namespace emmcsim::transport
