// SplitVirtqueue (see split_virtqueue.hpp).
#include "emmcsim/transport/split_virtqueue.hpp"

#include <fmt/format.h>

#include <atomic>
#include <algorithm>
#include <cstring>

namespace emmcsim::transport {

namespace {

// Guest memory is shared with another process: every field is copied out once, with memcpy,
// and the indices are ordered against the ring contents with fences (virtio's memory barriers).
std::uint16_t load16(const std::uint8_t* p) {
  std::uint16_t v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
void store16(std::uint8_t* p, std::uint16_t v) { std::memcpy(p, &v, sizeof(v)); }
void store32(std::uint8_t* p, std::uint32_t v) { std::memcpy(p, &v, sizeof(v)); }

struct Descriptor {
  std::uint64_t address;
  std::uint32_t length;
  std::uint16_t flags;
  std::uint16_t next;
};
Descriptor load_descriptor(const std::uint8_t* table, std::uint32_t index) {
  Descriptor d;
  const std::uint8_t* p = table + vring::kDescriptorSize * index;
  std::memcpy(&d.address, p, 8);
  std::memcpy(&d.length, p + 8, 4);
  std::memcpy(&d.flags, p + 12, 2);
  std::memcpy(&d.next, p + 14, 2);
  return d;
}

}  // namespace

std::vector<std::uint8_t> DescriptorChain::gather(std::size_t max_bytes) const {
  std::vector<std::uint8_t> out;
  out.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(readable_bytes, max_bytes)));
  for (const auto& b : readable) {
    if (out.size() >= max_bytes) break;
    const std::size_t take = std::min<std::size_t>(b.length, max_bytes - out.size());
    out.insert(out.end(), b.data, b.data + take);
  }
  return out;
}

std::size_t DescriptorChain::scatter(const std::uint8_t* bytes, std::size_t size) const {
  std::size_t done = 0;
  for (const auto& b : writable) {
    if (done == size) break;
    const std::size_t take = std::min<std::size_t>(b.length, size - done);
    std::memcpy(b.data, bytes + done, take);
    done += take;
  }
  return done;
}

SplitVirtqueue::SplitVirtqueue(std::shared_ptr<const GuestMemory> memory, std::uint32_t size, Addresses addresses,
                               bool user_addresses, std::uint16_t next_available, bool indirect_descriptors)
    : memory_(std::move(memory)), size_(size), next_available_(next_available), indirect_(indirect_descriptors) {
  if (size == 0 || size > vring::kMaxSize || (size & (size - 1)) != 0)
    throw VirtqueueError("queue size " + std::to_string(size) + " is not a power of two from 1 to 32768");
  if (addresses.descriptor % 16 != 0 || addresses.available % 2 != 0 || addresses.used % 4 != 0)
    throw VirtqueueError("ring addresses misaligned (descriptor table 16, available ring 2, used ring 4 bytes)");
  auto translate = [&](std::uint64_t address, std::size_t length, const char* what) {
    std::uint8_t* p = user_addresses ? memory_->from_user(address, length) : memory_->from_guest(address, length);
    if (p == nullptr)
      throw VirtqueueError(
          fmt::format("{} ({} bytes at {:#x}) is not inside the guest's memory", what, length, address));
    return p;
  };
  descriptors_ = translate(addresses.descriptor, vring::descriptor_table_bytes(size), "the descriptor table");
  available_ = translate(addresses.available, vring::available_ring_bytes(size), "the available ring");
  used_ = translate(addresses.used, vring::used_ring_bytes(size), "the used ring");
  used_index_ = load16(used_ + 2);
}

std::optional<DescriptorChain> SplitVirtqueue::pop() {
  const std::uint16_t available_index = load16(available_ + 2);
  std::atomic_thread_fence(std::memory_order_acquire);  // ring entries after the index
  const std::uint16_t pending = static_cast<std::uint16_t>(available_index - next_available_);
  if (pending == 0) return std::nullopt;
  if (pending > size_)
    throw VirtqueueError("the available index is " + std::to_string(pending) +
                         " entries ahead of the device (queue size " + std::to_string(size_) + ")");
  const std::uint16_t head = load16(available_ + 4 + 2 * (next_available_ % size_));
  if (head >= size_)
    throw VirtqueueError("available ring entry " + std::to_string(next_available_ % size_) + " names descriptor " +
                         std::to_string(head) + " of " + std::to_string(size_));
  ++next_available_;
  DescriptorChain chain;
  chain.head = head;
  chain.memory = memory_;
  walk(chain);
  if (!chain.fault.empty()) {
    chain.readable.clear();
    chain.writable.clear();
    chain.readable_bytes = chain.writable_bytes = 0;
  }
  return chain;
}

void SplitVirtqueue::walk(DescriptorChain& chain) const {
  const std::uint8_t* table = descriptors_;
  std::uint32_t entries = size_;
  std::uint32_t index = chain.head;
  std::uint32_t visited = 0;
  bool in_indirect = false;
  auto fault = [&](const std::string& what) {
    chain.fault = "descriptor chain at " + std::to_string(chain.head) + ": " + what;
  };
  for (;;) {
    if (++visited > entries) return fault("longer than " + std::to_string(entries) + " descriptors (a loop?)");
    const Descriptor d = load_descriptor(table, index);
    if ((d.flags & vring::kDescIndirect) != 0) {
      if (!indirect_) return fault("an indirect descriptor, but VIRTIO_RING_F_INDIRECT_DESC was not negotiated");
      if (in_indirect) return fault("an indirect descriptor inside an indirect table");
      if ((d.flags & vring::kDescNext) != 0) return fault("an indirect descriptor with NEXT set");
      if (d.length == 0 || d.length % vring::kDescriptorSize != 0 ||
          d.length / vring::kDescriptorSize > vring::kMaxSize)
        return fault("an indirect table of " + std::to_string(d.length) + " bytes");
      const std::uint8_t* indirect_table = memory_->from_guest(d.address, d.length);
      if (indirect_table == nullptr) return fault("an indirect table outside the guest's memory");
      table = indirect_table;
      entries = d.length / vring::kDescriptorSize;
      index = 0;
      visited = 0;
      in_indirect = true;
      continue;
    }
    std::uint8_t* data = memory_->from_guest(d.address, d.length);
    if (data == nullptr)
      return fault("a buffer of " + std::to_string(d.length) + " bytes outside the guest's memory (or across regions)");
    if ((d.flags & vring::kDescWrite) != 0) {
      chain.writable.push_back(GuestBuffer{data, d.length});
      chain.writable_bytes += d.length;
    } else {
      if (!chain.writable.empty()) return fault("a device-readable buffer after a device-writable one");
      chain.readable.push_back(GuestBuffer{data, d.length});
      chain.readable_bytes += d.length;
    }
    if ((d.flags & vring::kDescNext) == 0) return;
    if (d.next >= entries) return fault("next index " + std::to_string(d.next) + " of " + std::to_string(entries));
    index = d.next;
  }
}

void SplitVirtqueue::push(std::uint16_t head, std::uint32_t written) {
  std::uint8_t* element = used_ + 4 + 8 * (used_index_ % size_);
  store32(element, head);
  store32(element + 4, written);
  std::atomic_thread_fence(std::memory_order_release);  // the element before the index
  ++used_index_;
  store16(used_ + 2, used_index_);
  std::atomic_thread_fence(std::memory_order_seq_cst);  // the index before reading the flags
}

bool SplitVirtqueue::wants_interrupt() const { return (load16(available_) & vring::kAvailNoInterrupt) == 0; }

}  // namespace emmcsim::transport
