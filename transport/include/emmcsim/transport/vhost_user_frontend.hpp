// VhostUserFrontend: the VMM's side of vhost-user plus the guest driver's side of one split
// virtqueue — what QEMU (vhost-user-device, virtio-id 28) and a guest's virtio-rpmb driver do
// together, in one process. `emmcsim rpmb --vhost-user` uses it to act as a VM; the tests and the
// benchmark use it, and its raw pieces (set_descriptor, publish, send_raw) to play a hostile one.
//
//   guest RAM   a memfd of `memory_bytes`, mapped here; the back-end maps the same fd. Guest-
//               physical addresses start at kGuestBase; ring addresses are sent as this
//               process's virtual addresses (user addresses), as QEMU sends its own.
//   start()     QEMU's order: GET_FEATURES, GET_PROTOCOL_FEATURES, SET_PROTOCOL_FEATURES,
//               GET_QUEUE_NUM, GET_MAX_MEM_SLOTS, SET_OWNER, GET_CONFIG, SET_FEATURES,
//               SET_MEM_TABLE, SET_VRING_NUM, SET_VRING_BASE, SET_VRING_ADDR, SET_VRING_KICK,
//               SET_VRING_CALL, SET_VRING_ENABLE 1, SET_STATUS; with REPLY_ACK negotiated every
//               message without a reply of its own asks for an acknowledgement, which is checked.
//   the ring    descriptor table at guest offset 0, available ring at 0x1000, used ring at
//               0x2000, buffers from 0x10000; submit() places a chain, kick()s, and
//               wait_used() polls the call eventfd (bounded: a missing interrupt fails the test
//               after `timeout`, it never sleeps for a result).
// Failures throw VhostUserFrontendError.
//
// VirtioRpmbChannel turns rpmb::Host's send/receive pairs into one chain each, as the Linux
// virtio-rpmb driver proposals and NuttX do: the queued request frames readable, room for the
// response frames writable.
#pragma once

#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "emmcsim/rpmb/host.hpp"
#include "emmcsim/transport/split_virtqueue.hpp"
#include "emmcsim/transport/vhost_user_message.hpp"

namespace emmcsim::transport {

class VhostUserFrontendError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class VhostUserFrontend {
 public:
  static constexpr std::uint64_t kGuestBase = 0x40000000;
  static constexpr std::uint64_t kDescriptorOffset = 0x0;
  static constexpr std::uint64_t kAvailableOffset = 0x1000;
  static constexpr std::uint64_t kUsedOffset = 0x2000;
  static constexpr std::uint64_t kBufferOffset = 0x10000;

  struct Used {
    std::uint32_t id = 0;
    std::uint32_t length = 0;
  };

  explicit VhostUserFrontend(const std::string& socket_path, std::size_t memory_bytes = 1 << 20,
                             std::uint16_t queue_size = 16);
  ~VhostUserFrontend() { release(); }
  VhostUserFrontend(const VhostUserFrontend&) = delete;
  VhostUserFrontend& operator=(const VhostUserFrontend&) = delete;

  // ---- The protocol ----------------------------------------------------------------------

  void send(vhost_user::Request request, const vhost_user::Payload& payload, std::vector<int> fds = {},
            bool need_reply = false);
  void send_raw(const std::vector<std::uint8_t>& bytes, const std::vector<int>& fds = {});
  // One reply (header and payload), or empty when the back-end closed the connection or nothing
  // came within `timeout`.
  std::vector<std::uint8_t> receive(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  vhost_user::Payload call(vhost_user::Request request, const vhost_user::Payload& payload = vhost_user::NoPayload{});
  std::uint64_t call_u64(vhost_user::Request request) { return std::get<vhost_user::U64Payload>(call(request)).value; }
  // Sends a message that has no reply of its own; with REPLY_ACK, asks for the acknowledgement
  // and returns it (0 = success), else returns 0.
  std::uint64_t command(vhost_user::Request request, const vhost_user::Payload& payload, std::vector<int> fds = {});
  void require(vhost_user::Request request, const vhost_user::Payload& payload, std::vector<int> fds = {});

  // The handshake and the ring setup, as QEMU does them.
  void start();
  void setup_ring(std::uint16_t base);
  std::vector<std::uint8_t> read_config(std::uint32_t offset, std::uint32_t size);
  // GET_VRING_BASE: stops the ring; returns where the back-end stopped.
  std::uint32_t stop_ring();

  vhost_user::MemoryRegion memory_region() const {
    return vhost_user::MemoryRegion{kGuestBase, memory_bytes_, user_address(0), 0};
  }
  std::uint64_t user_address(std::uint64_t offset) const { return reinterpret_cast<std::uintptr_t>(ram_) + offset; }
  std::uint64_t guest_address(std::uint64_t offset) const { return kGuestBase + offset; }

  // ---- The guest driver's ring --------------------------------------------------------------

  void set_descriptor(std::uint16_t index, std::uint64_t address, std::uint32_t length, std::uint16_t flags,
                      std::uint16_t next);
  // Makes `head` available and kicks.
  void publish(std::uint16_t head);
  void set_available_index(std::uint16_t index);
  void kick();

  // A chain of one descriptor per readable part and one per writable size, from descriptor 0,
  // its buffers from kBufferOffset; published and kicked.
  void submit(const std::vector<std::vector<std::uint8_t>>& readable, const std::vector<std::uint32_t>& writable);
  // The next used element, after the call eventfd fired; throws when nothing comes in `timeout`.
  Used wait_used(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // The bytes of the last submit()'s writable buffers, concatenated.
  std::vector<std::uint8_t> written() const;
  // True when the back-end closed the connection within `timeout`: a read sees EOF, or a reset
  // (the back-end closed with bytes of ours unread).
  bool closed_by_back_end(std::chrono::milliseconds timeout = std::chrono::seconds(10));

  std::uint8_t* ram() { return ram_; }
  int memfd() const { return memfd_; }
  std::uint64_t features() const { return features_; }
  std::uint64_t protocol_features() const { return protocol_features_; }
  std::uint64_t queue_count() const { return queue_count_; }
  std::uint64_t max_mem_slots() const { return max_mem_slots_; }
  const std::vector<std::uint8_t>& config() const { return config_; }
  // Call-eventfd signals read so far (the eventfd adds up the back-end's writes), and used
  // elements consumed by wait_used().
  std::uint64_t interrupts() const { return interrupts_; }
  std::uint64_t used_elements() const { return used_elements_; }
  // Reads the call eventfd until `expected` signals have come or `timeout` passed; returns the
  // signals read. (wait_used() may see a used element before the signal that follows it.)
  std::uint64_t wait_interrupts(std::uint64_t expected, std::chrono::milliseconds timeout = std::chrono::seconds(10));
  std::uint16_t queue_size() const { return queue_size_; }

 private:
  void read_call();
  void release();
  [[noreturn]] void release_and_fail(const std::string& what);
  [[noreturn]] static void fail(const std::string& what);
  bool read_exactly(std::uint8_t* out, std::size_t size, std::chrono::milliseconds timeout);

  std::size_t memory_bytes_;
  std::uint16_t queue_size_;
  int memfd_ = -1;
  std::uint8_t* ram_ = nullptr;
  int kick_ = -1;
  int call_ = -1;
  int socket_ = -1;
  std::uint64_t features_ = 0;
  std::uint64_t protocol_features_ = 0;
  std::uint64_t queue_count_ = 0;
  std::uint64_t max_mem_slots_ = 0;
  std::vector<std::uint8_t> config_;
  std::uint16_t avail_index_ = 0;
  std::uint16_t used_seen_ = 0;
  std::uint64_t interrupts_ = 0;
  std::uint64_t used_elements_ = 0;
  std::vector<std::pair<std::uint64_t, std::uint32_t>> writable_;
};

// rpmb::RequestChannel over virtio-rpmb: each receive() is one chain (the queued frames readable,
// `count` frames writable), waited for; throws when the device returns fewer bytes.
class VirtioRpmbChannel final : public rpmb::RequestChannel {
 public:
  explicit VirtioRpmbChannel(VhostUserFrontend& frontend) : frontend_(frontend) {}
  void send(const rpmb::Frame* frames, std::size_t count, bool /*reliable_write*/) override;
  void receive(rpmb::Frame* frames, std::size_t count) override;
  std::uint32_t last_used_length() const { return last_used_length_; }

 private:
  VhostUserFrontend& frontend_;
  std::vector<std::uint8_t> pending_;
  std::uint32_t last_used_length_ = 0;
};

}  // namespace emmcsim::transport
