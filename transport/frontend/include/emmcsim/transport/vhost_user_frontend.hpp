// VhostUserFrontend: the VMM's side of vhost-user plus the guest driver's side of its split
// virtqueues — what QEMU (vhost-user-device) or User-Mode Linux (virtio_uml) and a guest's driver
// do together, in one process. `emmcsim rpmb --vhost-user` uses it to act as a VM; the tests and
// the benchmark use it, and its raw pieces (set_descriptor, publish, send_raw) to play a hostile
// one.
//
// Internal (emmcsim::vhost_user_frontend, built but not installed): a test double whose API
// follows the tests; a virtual platform brings its own VMM.
//
//   guest RAM   a memfd of `memory_bytes`, mapped here; the back-end maps the same fd. Guest-
//               physical addresses start at kGuestBase. In QEMU's order ring addresses are sent
//               as this process's virtual addresses (user addresses), as QEMU sends its own; in
//               UML's order user address = guest address, as UML sends physical addresses.
//   QEMU order  GET_FEATURES, GET_PROTOCOL_FEATURES, SET_PROTOCOL_FEATURES, GET_QUEUE_NUM,
//               GET_MAX_MEM_SLOTS, SET_OWNER, GET_CONFIG, SET_FEATURES, SET_MEM_TABLE; per queue
//               SET_VRING_NUM, SET_VRING_BASE, SET_VRING_ADDR, SET_VRING_KICK, SET_VRING_CALL;
//               SET_VRING_ENABLE 1 each, SET_STATUS. Kicks and calls are eventfds.
//   UML order   as Linux 6.1's arch/um/drivers/virtio_uml.c: SET_OWNER, GET_FEATURES,
//               GET/SET_PROTOCOL_FEATURES (REPLY_ACK, BACKEND_REQ, CONFIG, INBAND_NOTIFICATIONS of
//               those offered), SET_BACKEND_REQ_FD, GET_CONFIG, SET_FEATURES, SET_MEM_TABLE; per
//               queue SET_VRING_CALL (none with in-band notifications), NUM, BASE 0, ADDR (log ~0)
//               and SET_VRING_KICK (none in-band); SET_VRING_ENABLE 1 each. The channel and the
//               call descriptors are socketpairs, as UML's os_pipe() makes them; the kick an
//               eventfd. With in-band notifications a kick is a
//               VHOST_USER_VRING_KICK with need_reply whose acknowledgement kick() waits for, and
//               calls come as VHOST_USER_BACKEND_VRING_CALL messages on the channel, read here.
//   Either: with REPLY_ACK negotiated every message without a reply of its own asks for an
//   acknowledgement, which is checked.
//   the rings   queue q's descriptor table at guest offset q × kRingStride, its available ring
//               0x1000 and its used ring 0x2000 above that; buffers from kBufferOffset, each queue
//               its own share. submit() places a chain, kick()s, and wait_used() polls for the
//               used element, waiting on the call descriptor (or the channel) — bounded: a
//               missing interrupt fails the test after `timeout`, it never sleeps for a result.
// Failures throw VhostUserFrontendError.
//
// VirtioRpmbChannel turns rpmb::Host's send/receive pairs into one chain each, as the Linux
// virtio-rpmb driver proposals and NuttX do: the queued request frames readable, room for the
// response frames writable.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
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
  static constexpr std::uint64_t kRingStride = 0x4000;  // queue q's rings at q × kRingStride
  static constexpr std::uint64_t kDescriptorOffset = 0x0;
  static constexpr std::uint64_t kAvailableOffset = 0x1000;
  static constexpr std::uint64_t kUsedOffset = 0x2000;
  static constexpr std::uint64_t kBufferOffset = 0x10000;
  static constexpr std::size_t kMaxQueues = kBufferOffset / kRingStride;

  enum class Order { qemu, uml };

  struct Options {
    Order order = Order::qemu;
    std::size_t queues = 1;  // rings set up, 1 .. kMaxQueues
    std::size_t memory_bytes = 1 << 20;
    std::uint16_t queue_size = 16;  // a power of two, at most 256
    std::uint32_t config_size = 3;  // bytes GET_CONFIG reads at start (0: none)
  };

  struct Used {
    std::uint32_t id = 0;
    std::uint32_t length = 0;
  };

  explicit VhostUserFrontend(const std::string& socket_path, std::size_t memory_bytes = 1 << 20,
                             std::uint16_t queue_size = 16);
  VhostUserFrontend(const std::string& socket_path, const Options& options);
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

  // The handshake and the rings' set-up, in the order chosen.
  void start();
  // One ring's set-up from `base` (QEMU: NUM, BASE, ADDR, KICK, CALL; UML: CALL, NUM, BASE, ADDR,
  // KICK, each where the negotiated features call for it); enabling is the caller's.
  void setup_ring(std::uint16_t base, std::size_t queue = 0);
  std::vector<std::uint8_t> read_config(std::uint32_t offset, std::uint32_t size);
  // GET_VRING_BASE: stops the ring; returns where the back-end stopped.
  std::uint32_t stop_ring(std::size_t queue = 0);

  vhost_user::MemoryRegion memory_region() const {
    return vhost_user::MemoryRegion{kGuestBase, memory_bytes_, ring_address(0), 0};
  }
  std::uint64_t user_address(std::uint64_t offset) const { return reinterpret_cast<std::uintptr_t>(ram_) + offset; }
  std::uint64_t guest_address(std::uint64_t offset) const { return kGuestBase + offset; }
  // An address as SET_VRING_ADDR sends it: a user address (QEMU), a guest address (UML).
  std::uint64_t ring_address(std::uint64_t offset) const {
    return order_ == Order::uml ? guest_address(offset) : user_address(offset);
  }

  // ---- The guest driver's rings -------------------------------------------------------------

  void set_descriptor(std::uint16_t index, std::uint64_t address, std::uint32_t length, std::uint16_t flags,
                      std::uint16_t next, std::size_t queue = 0);
  // Makes `head` available and kicks.
  void publish(std::uint16_t head, std::size_t queue = 0);
  void set_available_index(std::uint16_t index, std::size_t queue = 0);
  // An eventfd write, or in-band a VHOST_USER_VRING_KICK whose acknowledgement is waited for
  // (and must be 0).
  void kick(std::size_t queue = 0);

  // A chain of one descriptor per readable part and one per writable size, from descriptor 0,
  // its buffers from the queue's share of the buffer space; published and kicked.
  void submit(const std::vector<std::vector<std::uint8_t>>& readable, const std::vector<std::uint32_t>& writable,
              std::size_t queue = 0);
  // `count` chains of one writable buffer of `length` bytes each (descriptors 0 .. count-1), made
  // available together with one kick — as a driver posts buffers for the device to fill.
  void post_writable(std::size_t count, std::uint32_t length, std::size_t queue = 0);
  // The next used element, after its notification; throws when nothing comes in `timeout`.
  Used wait_used(std::chrono::milliseconds timeout = std::chrono::seconds(10), std::size_t queue = 0);
  // The next used element if the device has already put one in the ring (no waiting).
  std::optional<Used> take_used(std::size_t queue = 0);
  // The bytes of the last submit()'s writable buffers, concatenated; of a used element's buffer
  // posted by post_writable().
  std::vector<std::uint8_t> written(std::size_t queue = 0) const;
  std::vector<std::uint8_t> posted_buffer(std::uint32_t id, std::size_t queue = 0) const;
  // True when the back-end closed the connection within `timeout`: a read sees EOF, or a reset
  // (the back-end closed with bytes of ours unread).
  bool closed_by_back_end(std::chrono::milliseconds timeout = std::chrono::seconds(10));

  std::uint8_t* ram() { return ram_; }
  int memfd() const { return memfd_; }
  std::uint64_t features() const { return features_; }
  std::uint64_t protocol_features() const { return protocol_features_; }
  bool inband() const;
  std::uint64_t queue_count() const { return queue_count_; }
  std::uint64_t max_mem_slots() const { return max_mem_slots_; }
  const std::vector<std::uint8_t>& config() const { return config_; }
  // Notifications read so far on `queue` (the eventfd adds up the back-end's writes; a call
  // socket carries 8 bytes a call; the channel one VRING_CALL message each), and used elements
  // consumed.
  std::uint64_t interrupts(std::size_t queue = 0) const { return rings_.at(queue).interrupts; }
  std::uint64_t used_elements(std::size_t queue = 0) const { return rings_.at(queue).used_elements; }
  // Reads notifications until `expected` have come on `queue` or `timeout` passed; returns the
  // count. (wait_used() may see a used element before the notification that follows it.)
  std::uint64_t wait_interrupts(std::uint64_t expected, std::chrono::milliseconds timeout = std::chrono::seconds(10),
                                std::size_t queue = 0);
  // Reads what the back-end channel holds now (VRING_CALLs are counted per queue).
  void drain_backend_channel();
  // Our end of the back-end channel (UML order), to fill or shrink it in tests; -1 without one.
  int backend_channel_fd() const { return channel_; }
  std::uint64_t config_changes() const { return config_changes_; }
  std::uint16_t queue_size() const { return queue_size_; }

 private:
  struct DriverRing {
    int kick = -1;                    // eventfd
    int call = -1;                    // our end: an eventfd (QEMU) or a socketpair's (UML)
    int call_peer = -1;               // the socketpair's other end, sent with SET_VRING_CALL
    std::uint32_t posted_length = 0;  // of post_writable()'s buffers
    std::uint16_t avail_index = 0;
    std::uint16_t used_seen = 0;
    std::uint64_t interrupts = 0;
    std::uint64_t used_elements = 0;
    std::vector<std::pair<std::uint64_t, std::uint32_t>> writable;  // of the last submit()
  };

  void open_memory_and_socket(const std::string& socket_path);
  void start_qemu();
  void start_uml();
  std::uint64_t ring_offset(std::size_t queue) const { return kRingStride * queue; }
  std::uint64_t buffer_offset(std::size_t queue) const;
  std::uint64_t buffer_span() const;
  DriverRing& driver_ring(std::size_t queue);
  // Waits up to `timeout` for a notification on `queue` and reads what came.
  void wait_notification(std::size_t queue, std::chrono::milliseconds timeout);
  void read_call(std::size_t queue);
  bool read_channel_message(std::chrono::milliseconds timeout);
  void release();
  [[noreturn]] void release_and_fail(const std::string& what);
  [[noreturn]] static void fail(const std::string& what);
  bool read_exactly(int fd, std::uint8_t* out, std::size_t size, std::chrono::milliseconds timeout);

  Order order_;
  std::size_t memory_bytes_;
  std::uint16_t queue_size_;
  std::uint32_t config_size_;
  int memfd_ = -1;
  std::uint8_t* ram_ = nullptr;
  int socket_ = -1;
  int channel_ = -1;  // our end of the back-end channel
  std::vector<DriverRing> rings_;
  std::uint64_t features_ = 0;
  std::uint64_t protocol_features_ = 0;
  std::uint64_t queue_count_ = 0;
  std::uint64_t max_mem_slots_ = 0;
  std::uint64_t config_changes_ = 0;
  std::vector<std::uint8_t> config_;
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
