// libFuzzer target: a guest's split virtqueue (transport/split_virtqueue.hpp) and what the
// virtio-rpmb device makes of each chain (plan_virtio_rpmb_request, then the rpmb node's
// MMC_IOC_MULTI_CMD through LinuxBlockDriver on a small card, the response scattered back).
//
// Input: byte 0 the queue size (1 << (b % 9): 1..256), byte 1 flags (bit 0 indirect descriptors
// negotiated, bit 1 ring addresses from the input, bit 2 the harness signs write bursts with the
// card's key so authenticated writes pass), bytes 2-3 the device's next available index, then —
// with bit 1 — three u16 offsets of the descriptor table, available and used ring; the rest is
// the first bytes of 64 KiB of guest RAM (zeros after). By default the descriptor table is at 0,
// the available ring at 0x1000 and the used ring at 0x2000.
//
// Invariants (std::abort with a message on violation):
//   ring      the queue either refuses its layout (VirtqueueError) or pops chains until none is
//             available or the ring is broken (VirtqueueError), at most 64; each has head < size;
//             a chain with a fault has no buffers; every buffer lies inside the guest RAM; the
//             byte totals are the sums of the buffers; the next available index moves by one per
//             chain.
//   device    a plan has 1 or 3 commands for a write type, 2 for a read type, all 512-byte blocks
//             of CMD25/CMD18, a write's data blksz * blocks, the first command reliable exactly for
//             a write type, at most max_wr_cnt frames written and max_rd_cnt read; the driver's
//             reply has a result per command and, on success, the response frames' bytes; the card
//             is back in the user area afterwards; the RPMB write counter never decreases; a write
//             burst over max_wr_cnt is answered by the device (one general-failure frame of the
//             write's response type, with room for it) and never reaches the card.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <optional>
#include <vector>

#include "emmcsim/mmc/card.hpp"
#include "emmcsim/mmc/host_bus.hpp"
#include "emmcsim/mmc/image.hpp"
#include "emmcsim/mmc/linux_block_driver.hpp"
#include "emmcsim/rpmb/frame.hpp"
#include "emmcsim/rpmb/host.hpp"
#include "emmcsim/rpmb/mac.hpp"
#include "emmcsim/transport/guest_memory.hpp"
#include "emmcsim/transport/split_virtqueue.hpp"
#include "emmcsim/transport/virtio_rpmb_device.hpp"
#include "fuzz_support.hpp"

namespace {

using namespace emmcsim;
using transport::DescriptorChain;
using transport::GuestMemory;
using transport::SplitVirtqueue;

constexpr std::uint64_t kGuestBase = 0x100000;
constexpr std::uint64_t kUserBase = 0x7f0000000000;
constexpr std::size_t kRamSize = 64 * 1024;
constexpr int kMaxChains = 64;

void require(bool condition, const char* what) {
  if (!condition) {
    std::fprintf(stderr, "virtqueue_fuzz: invariant violated: %s\n", what);
    std::abort();
  }
}

rpmb::Key fuzz_key() {
  rpmb::Key key{};
  for (std::size_t i = 0; i < key.size(); ++i) key[i] = static_cast<std::uint8_t>(i + 1);
  return key;
}

// The request frames as one byte string.
std::vector<std::uint8_t> bytes_of(std::initializer_list<rpmb::Frame> frames) {
  std::vector<std::uint8_t> out;
  for (const auto& f : frames) out.insert(out.end(), f.bytes(), f.bytes() + rpmb::kFrameSize);
  return out;
}

// The rpmb node's ioctl for these request frames, planned as the device plans a chain.
transport::bridge::IoctlRequest rpmb_ioctl(std::initializer_list<rpmb::Frame> frames) {
  const std::vector<std::uint8_t> bytes = bytes_of(frames);
  return transport::plan_virtio_rpmb_request(transport::VirtioRpmbConfig::for_card(1, true), bytes.data(), bytes.size(),
                                             rpmb::kFrameSize)
      .request;
}

struct Device {
  Device()
      : image(fuzzing::small_device_config()),
        card(fuzzing::small_device_config(), image.backend()),
        bus(card),
        driver(bus) {
    // The key is programmed as mmc-utils would, so that signed writes can pass.
    driver.ioctl(rpmb_ioctl({rpmb::requests::program_key(fuzz_key()), rpmb::requests::result_read()}));
  }
  mmc::MemoryImage image;
  mmc::Card card;
  mmc::CardHostBus bus;
  mmc::LinuxBlockDriver driver;
};

std::uint32_t write_counter(Device& d) {
  const auto reply = d.driver.ioctl(rpmb_ioctl({rpmb::requests::read_counter({})}));
  if (reply.status.error != 0) return 0;
  return rpmb::Frame::from_bytes(reply.results.back().data.data()).write_counter();
}

bool is_write_type(std::uint16_t type) { return type == 0x0001 || type == 0x0003 || type == 0x0006; }

// Puts the key's MAC into the last frame of the leading write burst (the harness plays a host
// that holds the key, so the fuzzer reaches the commit paths).
void sign_burst(std::vector<std::uint8_t>& bytes) {
  const std::size_t frames = bytes.size() / 512;
  if (frames == 0) return;
  const std::uint16_t type = static_cast<std::uint16_t>((bytes[510] << 8) | bytes[511]);
  if (!is_write_type(type) || type == 0x0001) return;
  std::size_t burst = 1;
  while (burst < frames && ((bytes[burst * 512 + 510] << 8) | bytes[burst * 512 + 511]) == type) ++burst;
  std::vector<rpmb::Frame> f;
  for (std::size_t i = 0; i < burst; ++i) f.push_back(rpmb::Frame::from_bytes(bytes.data() + i * 512));
  f.back().set_mac(rpmb::frames_mac(fuzz_key(), f.data(), f.size()));
  std::memcpy(bytes.data() + (burst - 1) * 512, f.back().bytes(), 512);
}

bool inside(const std::uint8_t* ram, const transport::GuestBuffer& b) {
  return b.data >= ram && b.data + b.length <= ram + kRamSize && b.data + b.length >= b.data;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzzing::FuzzInput in(data, size);
  const std::uint32_t queue_size = 1u << (in.byte() % 9);
  const std::uint8_t flags = in.byte();
  const std::uint16_t next_available = static_cast<std::uint16_t>(in.u16());
  SplitVirtqueue::Addresses addresses{kUserBase + 0x0, kUserBase + 0x1000, kUserBase + 0x2000};
  if ((flags & 2) != 0) addresses = {kUserBase + in.u16(), kUserBase + in.u16(), kUserBase + in.u16()};
  auto ram = std::make_shared<std::vector<std::uint8_t>>(kRamSize);
  for (std::size_t i = 0; i < kRamSize && !in.done(); ++i) (*ram)[i] = in.byte();

  GuestMemory::Region region;
  region.guest_address = kGuestBase;
  region.size = kRamSize;
  region.user_address = kUserBase;
  region.host = ram->data();
  region.mapping = ram;
  auto memory = std::make_shared<const GuestMemory>(std::vector<GuestMemory::Region>{region});

  std::unique_ptr<SplitVirtqueue> queue;
  try {
    queue = std::make_unique<SplitVirtqueue>(memory, queue_size, addresses, true, next_available, (flags & 1) != 0);
  } catch (const transport::VirtqueueError&) {
    return 0;
  }
  const transport::VirtioRpmbConfig config = transport::VirtioRpmbConfig::for_card(1, true);
  std::unique_ptr<Device> device;
  std::uint32_t counter = 0;
  for (int n = 0; n < kMaxChains; ++n) {
    const std::uint16_t before = queue->next_available();
    std::optional<DescriptorChain> chain;
    try {
      chain = queue->pop();
    } catch (const transport::VirtqueueError&) {
      break;
    }
    if (!chain) {
      require(queue->next_available() == before, "an empty pop leaves the index");
      break;
    }
    require(queue->next_available() == static_cast<std::uint16_t>(before + 1), "a pop moves the index by one");
    require(chain->head < queue_size, "head inside the table");
    if (!chain->fault.empty()) {
      require(chain->readable.empty() && chain->writable.empty() && chain->readable_bytes == 0 &&
                  chain->writable_bytes == 0,
              "a faulted chain has no buffers");
      queue->push(chain->head, 0);
      continue;
    }
    std::uint64_t readable = 0, writable = 0;
    for (const auto& b : chain->readable) {
      require(inside(ram->data(), b), "readable buffer inside the RAM");
      readable += b.length;
    }
    for (const auto& b : chain->writable) {
      require(inside(ram->data(), b), "writable buffer inside the RAM");
      writable += b.length;
    }
    require(readable == chain->readable_bytes && writable == chain->writable_bytes, "byte totals");
    require(chain->readable.size() + chain->writable.size() <= queue_size + transport::vring::kMaxSize, "chain length");

    std::uint32_t written = 0;
    // As the device gathers: the largest request (33 frames), or one frame more for a write.
    std::vector<std::uint8_t> request = chain->gather(34 * 512);
    const bool writes =
        request.size() >= 512 && is_write_type(static_cast<std::uint16_t>((request[510] << 8) | request[511]));
    if (readable <= 33 * 512 || writes) {
      if ((flags & 4) != 0) sign_burst(request);
      try {
        const transport::VirtioRpmbPlan plan =
            transport::plan_virtio_rpmb_request(config, request.data(), request.size(), chain->writable_bytes);
        const auto& commands = plan.request.commands;
        const std::uint16_t type = static_cast<std::uint16_t>((request[510] << 8) | request[511]);
        if (!plan.device_response.empty()) {
          // A burst over max_wr_cnt: answered by the device, never by the card.
          require(is_write_type(type) && commands.empty() && plan.response_frames == 1,
                  "a device answer is for a write");
          require(plan.device_response.size() == 512 && chain->writable_bytes >= 512, "one response frame, with room");
          const rpmb::Frame response = rpmb::Frame::from_bytes(plan.device_response.data());
          require(response.result() == 0x0001 && response.type() == (type << 8), "a general failure of that write");
          written = static_cast<std::uint32_t>(chain->scatter(plan.device_response.data(), 512));
          queue->push(chain->head, written);
          continue;
        }
        require(plan.request.node == transport::bridge::Node::rpmb && plan.request.multi, "the rpmb node, multi");
        require(is_write_type(type) ? (commands.size() == 1 || commands.size() == 3) : commands.size() == 2,
                "command count");
        for (const auto& c : commands) {
          require(c.blksz == 512 && c.blocks >= 1, "512-byte blocks");
          require(c.opcode == (c.writes() ? 25u : 18u), "CMD25 writes, CMD18 reads");
          require(c.writes() ? c.data.size() == c.data_bytes() : c.data.empty(), "data of the writes");
        }
        require(((commands[0].write_flag >> 31) != 0) == is_write_type(type), "reliable exactly for writes");
        require(!is_write_type(type) || commands[0].blocks <= config.max_wr_cnt, "max_wr_cnt");
        require(plan.response_frames <= config.max_rd_cnt, "max_rd_cnt");
        require(plan.response_frames * 512 <= chain->writable_bytes, "the response fits");
        if (!device) {
          device = std::make_unique<Device>();
          counter = write_counter(*device);
        }
        const auto reply = device->driver.ioctl(plan.request);
        require(reply.results.size() == commands.size(), "a result per command");
        require((device->driver.partition_config() & 0x7) == 0, "back in the user area");
        if (reply.status.error == 0 && plan.response_frames > 0) {
          const auto& bytes = reply.results.back().data;
          require(bytes.size() == plan.response_frames * 512, "the response frames");
          written = static_cast<std::uint32_t>(chain->scatter(bytes.data(), bytes.size()));
          require(written == bytes.size(), "scattered whole");
        }
        const std::uint32_t now = write_counter(*device);
        require(now >= counter, "the write counter never decreases");
        counter = now;
      } catch (const transport::VirtioRpmbRequestError&) {
      }
    }
    queue->push(chain->head, written);
  }
  return 0;
}
