// SplitVirtqueue: the device side of a split virtqueue (virtio 1.x §2.7) in guest memory.
//
//   descriptor table  size × {le64 addr; le32 len; le16 flags; le16 next}   (16-byte aligned)
//   available ring    {le16 flags; le16 idx; le16 ring[size]; le16 used_event}   (2-byte aligned)
//   used ring         {le16 flags; le16 idx; {le32 id; le32 len}[size]; le16 avail_event} (4)
//
// Everything in guest memory is hostile. Each descriptor is read once (no second fetch that a
// guest could change in between), every buffer must lie inside one guest memory region, a chain
// may visit at most `size` descriptors (an indirect table at most its own entries), indirect
// tables may not nest or carry NEXT, and device-readable buffers must come before device-writable
// ones. A chain that breaks one of these rules is handed out with a `fault` (the device returns
// it unused, so the driver is not left waiting); a ring that cannot be trusted at all (the
// available index more than `size` ahead, a head index out of range) throws VirtqueueError and
// the ring must stop until the front-end resets it.
//
// Not offered: VIRTIO_RING_F_EVENT_IDX (the device interrupts unless the driver set
// VRING_AVAIL_F_NO_INTERRUPT) and packed rings.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "emmcsim/transport/guest_memory.hpp"

namespace emmcsim::transport {

class VirtqueueError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace vring {
inline constexpr std::uint16_t kDescNext = 1;
inline constexpr std::uint16_t kDescWrite = 2;
inline constexpr std::uint16_t kDescIndirect = 4;
inline constexpr std::uint16_t kAvailNoInterrupt = 1;
inline constexpr std::uint32_t kMaxSize = 32768;
inline constexpr std::size_t kDescriptorSize = 16;
inline constexpr std::size_t descriptor_table_bytes(std::uint32_t size) { return kDescriptorSize * size; }
inline constexpr std::size_t available_ring_bytes(std::uint32_t size) { return 6 + 2 * std::size_t{size}; }
inline constexpr std::size_t used_ring_bytes(std::uint32_t size) { return 6 + 8 * std::size_t{size}; }
}  // namespace vring

struct GuestBuffer {
  std::uint8_t* data = nullptr;
  std::uint32_t length = 0;
};

struct DescriptorChain {
  std::uint16_t head = 0;
  std::vector<GuestBuffer> readable;  // device-readable, in chain order
  std::vector<GuestBuffer> writable;  // device-writable, in chain order
  std::uint64_t readable_bytes = 0;
  std::uint64_t writable_bytes = 0;
  std::shared_ptr<const GuestMemory> memory;  // keeps the buffers mapped while the chain is served
  std::string fault;                          // non-empty: the chain broke a rule; return it unused

  // The first `max_bytes` readable bytes, gathered.
  std::vector<std::uint8_t> gather(std::size_t max_bytes) const;
  // Writes `size` bytes into the writable buffers in order; returns how many fit.
  std::size_t scatter(const std::uint8_t* bytes, std::size_t size) const;
};

class SplitVirtqueue {
 public:
  // Ring addresses, translated through `memory` (the front-end's user addresses for vhost-user,
  // see `user_addresses`). Throws VirtqueueError when a ring is misaligned, not wholly inside one
  // region, or the size is not a power of two in 1..32768. `next_available` is where the device
  // resumes (VHOST_USER_SET_VRING_BASE); the used index is read from the ring.
  struct Addresses {
    std::uint64_t descriptor = 0;
    std::uint64_t available = 0;
    std::uint64_t used = 0;
  };
  SplitVirtqueue(std::shared_ptr<const GuestMemory> memory, std::uint32_t size, Addresses addresses,
                 bool user_addresses, std::uint16_t next_available, bool indirect_descriptors);

  // The next available chain, if the driver made one available. Throws VirtqueueError.
  std::optional<DescriptorChain> pop();
  // Returns a chain to the driver with `written` bytes written into its writable buffers.
  void push(std::uint16_t head, std::uint32_t written);
  // The driver wants an interrupt for the used buffers (VRING_AVAIL_F_NO_INTERRUPT clear).
  bool wants_interrupt() const;

  std::uint16_t next_available() const { return next_available_; }
  std::uint32_t size() const { return size_; }

 private:
  void walk(DescriptorChain& chain) const;

  std::shared_ptr<const GuestMemory> memory_;
  std::uint32_t size_;
  std::uint8_t* descriptors_;
  std::uint8_t* available_;
  std::uint8_t* used_;
  std::uint16_t next_available_;
  std::uint16_t used_index_;
  bool indirect_;
};

}  // namespace emmcsim::transport
