// GuestMemory's translation and SplitVirtqueue's device side over a plain buffer standing in for
// guest RAM: well-formed chains (direct, indirect, index wrap-around) come out as written, every
// hostile one (outside memory, loops, order, nesting, bad indices) is refused the way the header
// promises, and the used ring gets what the device pushes.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <vector>

#include "emmcsim/transport/guest_memory.hpp"
#include "emmcsim/transport/split_virtqueue.hpp"

namespace emmcsim::transport {
namespace {

constexpr std::uint64_t kGuestBase = 0x80000000;
constexpr std::uint64_t kUserBase = 0x7f0000000000;
constexpr std::size_t kRamSize = 64 * 1024;
constexpr std::uint32_t kQueueSize = 8;
constexpr std::uint64_t kDescriptors = 0x0;
constexpr std::uint64_t kAvailable = 0x800;
constexpr std::uint64_t kUsed = 0x1000;

class GuestRam {
 public:
  GuestRam() : bytes_(std::make_shared<std::vector<std::uint8_t>>(kRamSize)) {}

  std::shared_ptr<const GuestMemory> memory() const {
    GuestMemory::Region r;
    r.guest_address = kGuestBase;
    r.size = kRamSize;
    r.user_address = kUserBase;
    r.host = bytes_->data();
    r.mapping = bytes_;
    return std::make_shared<const GuestMemory>(std::vector<GuestMemory::Region>{r});
  }
  std::uint8_t* at(std::uint64_t offset) { return bytes_->data() + offset; }

  void descriptor(std::uint64_t table, std::uint16_t index, std::uint64_t address, std::uint32_t length,
                  std::uint16_t flags, std::uint16_t next) {
    std::uint8_t* p = at(table + 16 * index);
    std::memcpy(p, &address, 8);
    std::memcpy(p + 8, &length, 4);
    std::memcpy(p + 12, &flags, 2);
    std::memcpy(p + 14, &next, 2);
  }
  void make_available(std::uint16_t slot, std::uint16_t head, std::uint16_t new_index) {
    std::memcpy(at(kAvailable + 4 + 2 * (slot % kQueueSize)), &head, 2);
    std::memcpy(at(kAvailable + 2), &new_index, 2);
  }
  std::uint16_t u16(std::uint64_t offset) {
    std::uint16_t v;
    std::memcpy(&v, at(offset), 2);
    return v;
  }
  std::uint32_t u32(std::uint64_t offset) {
    std::uint32_t v;
    std::memcpy(&v, at(offset), 4);
    return v;
  }

 private:
  std::shared_ptr<std::vector<std::uint8_t>> bytes_;
};

SplitVirtqueue queue_over(GuestRam& ram, std::uint16_t next = 0, bool indirect = true) {
  return SplitVirtqueue(ram.memory(), kQueueSize,
                        SplitVirtqueue::Addresses{kUserBase + kDescriptors, kUserBase + kAvailable, kUserBase + kUsed},
                        true, next, indirect);
}

std::uint64_t guest(std::uint64_t offset) { return kGuestBase + offset; }

TEST(GuestMemory, TranslatesOnlyRangesInsideOneRegion) {
  GuestRam ram;
  const auto memory = ram.memory();
  EXPECT_EQ(memory->from_guest(kGuestBase, kRamSize), ram.at(0));
  EXPECT_EQ(memory->from_guest(kGuestBase + 100, 28), ram.at(100));
  EXPECT_EQ(memory->from_user(kUserBase + kRamSize - 1, 1), ram.at(kRamSize - 1));
  EXPECT_EQ(memory->from_guest(kGuestBase + kRamSize - 1, 2), nullptr);  // one byte past the end
  EXPECT_EQ(memory->from_guest(kGuestBase - 1, 2), nullptr);
  EXPECT_EQ(memory->from_guest(kGuestBase + kRamSize, 0), nullptr);
  EXPECT_EQ(memory->from_guest(~std::uint64_t{0}, 2), nullptr);  // wraps
  EXPECT_EQ(memory->from_user(kGuestBase, 1), nullptr);          // guest address is no user address
}

TEST(GuestMemory, RefusesOverlapsAndRemovesByRange) {
  GuestRam ram;
  const auto memory = ram.memory();
  GuestMemory::Region overlapping = memory->regions()[0];
  overlapping.user_address += kRamSize;  // user range apart, guest range the same
  EXPECT_THROW(memory->with(overlapping), GuestMemoryError);
  GuestMemory::Region apart = memory->regions()[0];
  apart.guest_address += kRamSize;
  apart.user_address += kRamSize;
  const GuestMemory two = memory->with(apart);
  EXPECT_EQ(two.regions().size(), 2u);
  EXPECT_NE(two.from_guest(kGuestBase + kRamSize, 16), nullptr);
  EXPECT_EQ(two.from_guest(kGuestBase + kRamSize - 8, 16), nullptr);  // across the two regions
  const GuestMemory one = two.without(kGuestBase, kRamSize);
  EXPECT_EQ(one.from_guest(kGuestBase, 16), nullptr);
  EXPECT_THROW(one.without(kGuestBase, kRamSize), GuestMemoryError);
}

TEST(SplitVirtqueue, RefusesBadSizesAndRingsOutsideMemory) {
  GuestRam ram;
  auto make = [&](std::uint32_t size, std::uint64_t descriptors, std::uint64_t available, std::uint64_t used) {
    return SplitVirtqueue(ram.memory(), size, SplitVirtqueue::Addresses{descriptors, available, used}, true, 0, false);
  };
  EXPECT_THROW(make(0, kUserBase, kUserBase + kAvailable, kUserBase + kUsed), VirtqueueError);
  EXPECT_THROW(make(6, kUserBase, kUserBase + kAvailable, kUserBase + kUsed), VirtqueueError);
  EXPECT_THROW(make(65536, kUserBase, kUserBase + kAvailable, kUserBase + kUsed), VirtqueueError);
  EXPECT_THROW(make(8, kUserBase + 8, kUserBase + kAvailable, kUserBase + kUsed), VirtqueueError);  // misaligned
  EXPECT_THROW(make(8, kUserBase, kUserBase + kAvailable, kUserBase + kRamSize - 8),
               VirtqueueError);  // used ring ends outside
  EXPECT_THROW(make(8, kGuestBase, kGuestBase + kAvailable, kGuestBase + kUsed),
               VirtqueueError);  // guest, not user addresses
  EXPECT_NO_THROW(make(8, kUserBase, kUserBase + kAvailable, kUserBase + kUsed));
}

TEST(SplitVirtqueue, PopsAChainOfReadableThenWritableBuffers) {
  GuestRam ram;
  std::memcpy(ram.at(0x2000), "request!", 8);
  ram.descriptor(kDescriptors, 3, guest(0x2000), 8, vring::kDescNext, 5);
  ram.descriptor(kDescriptors, 5, guest(0x3000), 512, vring::kDescNext | vring::kDescWrite, 1);
  ram.descriptor(kDescriptors, 1, guest(0x4000), 512, vring::kDescWrite, 0);
  ram.make_available(0, 3, 1);
  SplitVirtqueue q = queue_over(ram);
  auto chain = q.pop();
  ASSERT_TRUE(chain.has_value());
  EXPECT_TRUE(chain->fault.empty()) << chain->fault;
  EXPECT_EQ(chain->head, 3);
  ASSERT_EQ(chain->readable.size(), 1u);
  ASSERT_EQ(chain->writable.size(), 2u);
  EXPECT_EQ(chain->readable_bytes, 8u);
  EXPECT_EQ(chain->writable_bytes, 1024u);
  EXPECT_EQ(chain->gather(100), (std::vector<std::uint8_t>{'r', 'e', 'q', 'u', 'e', 's', 't', '!'}));
  EXPECT_EQ(chain->gather(3).size(), 3u);
  std::vector<std::uint8_t> response(700, 0xAB);
  EXPECT_EQ(chain->scatter(response.data(), response.size()), 700u);
  EXPECT_EQ(*ram.at(0x3000 + 511), 0xAB);
  EXPECT_EQ(*ram.at(0x4000 + 187), 0xAB);
  EXPECT_EQ(*ram.at(0x4000 + 188), 0x00);
  EXPECT_FALSE(q.pop().has_value());  // nothing more available

  q.push(chain->head, 700);
  EXPECT_EQ(ram.u16(kUsed + 2), 1);
  EXPECT_EQ(ram.u32(kUsed + 4), 3u);
  EXPECT_EQ(ram.u32(kUsed + 8), 700u);
  EXPECT_EQ(q.next_available(), 1);
}

TEST(SplitVirtqueue, FollowsAnIndirectTable) {
  GuestRam ram;
  const std::uint64_t table = 0x5000;
  ram.descriptor(table, 0, guest(0x2000), 512, vring::kDescNext, 2);
  ram.descriptor(table, 2, guest(0x2200), 512, vring::kDescNext, 1);
  ram.descriptor(table, 1, guest(0x3000), 512, vring::kDescWrite, 0);
  ram.descriptor(kDescriptors, 0, guest(table), 3 * 16, vring::kDescIndirect, 0);
  ram.make_available(0, 0, 1);
  SplitVirtqueue q = queue_over(ram);
  auto chain = q.pop();
  ASSERT_TRUE(chain && chain->fault.empty()) << (chain ? chain->fault : "none");
  EXPECT_EQ(chain->readable.size(), 2u);
  EXPECT_EQ(chain->writable.size(), 1u);
  EXPECT_EQ(chain->readable[1].data, ram.at(0x2200));
}

struct HostileChain {
  const char* name;
  void (*build)(GuestRam&);
  const char* fault;
};

const HostileChain kHostileChains[] = {
    {"buffer outside memory", [](GuestRam& r) { r.descriptor(kDescriptors, 0, guest(kRamSize - 16), 32, 0, 0); },
     "outside the guest's memory"},
    {"buffer at a wrapping address",
     [](GuestRam& r) { r.descriptor(kDescriptors, 0, ~std::uint64_t{0} - 4, 64, 0, 0); }, "outside the guest's memory"},
    {"loop",
     [](GuestRam& r) {
       r.descriptor(kDescriptors, 0, guest(0x2000), 16, vring::kDescNext, 1);
       r.descriptor(kDescriptors, 1, guest(0x2000), 16, vring::kDescNext, 0);
     },
     "longer than 8 descriptors"},
    {"next out of range", [](GuestRam& r) { r.descriptor(kDescriptors, 0, guest(0x2000), 16, vring::kDescNext, 8); },
     "next index 8 of 8"},
    {"readable after writable",
     [](GuestRam& r) {
       r.descriptor(kDescriptors, 0, guest(0x2000), 16, vring::kDescNext | vring::kDescWrite, 1);
       r.descriptor(kDescriptors, 1, guest(0x3000), 16, 0, 0);
     },
     "device-readable buffer after a device-writable one"},
    {"indirect with next",
     [](GuestRam& r) { r.descriptor(kDescriptors, 0, guest(0x5000), 16, vring::kDescIndirect | vring::kDescNext, 1); },
     "indirect descriptor with NEXT"},
    {"nested indirect",
     [](GuestRam& r) {
       r.descriptor(0x5000, 0, guest(0x5000), 16, vring::kDescIndirect, 0);
       r.descriptor(kDescriptors, 0, guest(0x5000), 16, vring::kDescIndirect, 0);
     },
     "inside an indirect table"},
    {"indirect table of odd size",
     [](GuestRam& r) { r.descriptor(kDescriptors, 0, guest(0x5000), 20, vring::kDescIndirect, 0); },
     "indirect table of 20 bytes"},
    {"indirect table outside memory",
     [](GuestRam& r) { r.descriptor(kDescriptors, 0, guest(kRamSize - 16), 32, vring::kDescIndirect, 0); },
     "indirect table outside"},
    {"loop inside an indirect table",
     [](GuestRam& r) {
       r.descriptor(0x5000, 0, guest(0x2000), 16, vring::kDescNext, 1);
       r.descriptor(0x5000, 1, guest(0x2000), 16, vring::kDescNext, 0);
       r.descriptor(kDescriptors, 0, guest(0x5000), 32, vring::kDescIndirect, 0);
     },
     "longer than 2 descriptors"},
};

TEST(SplitVirtqueue, RefusesEveryHostileChainAndGoesOn) {
  for (const HostileChain& c : kHostileChains) {
    SCOPED_TRACE(c.name);
    GuestRam ram;
    c.build(ram);
    ram.make_available(0, 0, 1);
    // A good chain behind it, at descriptor 7.
    ram.descriptor(kDescriptors, 7, guest(0x2000), 16, 0, 0);
    ram.make_available(1, 7, 2);
    SplitVirtqueue q = queue_over(ram);
    auto bad = q.pop();
    ASSERT_TRUE(bad.has_value());
    EXPECT_EQ(bad->head, 0);
    EXPECT_NE(bad->fault.find(c.fault), std::string::npos) << bad->fault;
    EXPECT_TRUE(bad->readable.empty() && bad->writable.empty());
    q.push(bad->head, 0);
    auto good = q.pop();
    ASSERT_TRUE(good.has_value());
    EXPECT_TRUE(good->fault.empty()) << good->fault;
    EXPECT_EQ(good->head, 7);
  }
}

TEST(SplitVirtqueue, IndirectDescriptorsNeedTheFeature) {
  GuestRam ram;
  ram.descriptor(0x5000, 0, guest(0x2000), 16, 0, 0);
  ram.descriptor(kDescriptors, 0, guest(0x5000), 16, vring::kDescIndirect, 0);
  ram.make_available(0, 0, 1);
  SplitVirtqueue q = queue_over(ram, 0, /*indirect=*/false);
  auto chain = q.pop();
  ASSERT_TRUE(chain.has_value());
  EXPECT_NE(chain->fault.find("VIRTIO_RING_F_INDIRECT_DESC"), std::string::npos) << chain->fault;
}

TEST(SplitVirtqueue, ABrokenRingThrows) {
  {
    GuestRam ram;
    ram.make_available(0, 0, kQueueSize + 1);  // more entries than the ring holds
    SplitVirtqueue q = queue_over(ram);
    EXPECT_THROW(q.pop(), VirtqueueError);
  }
  {
    GuestRam ram;
    ram.make_available(0, kQueueSize, 1);  // head out of range
    SplitVirtqueue q = queue_over(ram);
    EXPECT_THROW(q.pop(), VirtqueueError);
  }
}

TEST(SplitVirtqueue, IndicesWrapAround16Bits) {
  GuestRam ram;
  ram.descriptor(kDescriptors, 2, guest(0x2000), 16, 0, 0);
  const std::uint16_t start = 65534;
  std::memcpy(ram.at(kUsed + 2), &start, 2);
  SplitVirtqueue q = queue_over(ram, start);
  for (std::uint16_t i = 0; i < 4; ++i) {
    const std::uint16_t slot = static_cast<std::uint16_t>(start + i);
    ram.make_available(slot, 2, static_cast<std::uint16_t>(slot + 1));
    auto chain = q.pop();
    ASSERT_TRUE(chain.has_value());
    EXPECT_TRUE(chain->fault.empty());
    q.push(chain->head, 16);
  }
  EXPECT_EQ(q.next_available(), 2);
  EXPECT_EQ(ram.u16(kUsed + 2), 2);
  EXPECT_EQ(ram.u32(kUsed + 4 + 8 * (65535 % kQueueSize)), 2u);
}

TEST(SplitVirtqueue, HonoursNoInterrupt) {
  GuestRam ram;
  SplitVirtqueue q = queue_over(ram);
  EXPECT_TRUE(q.wants_interrupt());
  const std::uint16_t no_interrupt = vring::kAvailNoInterrupt;
  std::memcpy(ram.at(kAvailable), &no_interrupt, 2);
  EXPECT_FALSE(q.wants_interrupt());
}

}  // namespace
}  // namespace emmcsim::transport
