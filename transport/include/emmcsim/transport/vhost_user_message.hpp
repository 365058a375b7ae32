// vhost-user messages: the wire format between a front-end (a VMM such as QEMU) and emmcsim's
// back-end, as QEMU's docs/interop/vhost-user.rst defines it. Standard C++ only, and every decode
// checks sizes, values and the number of file descriptors that came with the message, throwing
// MessageError: the bytes come from another process.
//
// A message is a 12-byte header, all integers in the host's byte order (little-endian here):
//   u32 request   u32 flags (bits 0-1 version = 1, bit 2 reply, bit 3 need_reply)   u32 size
// followed by `size` payload bytes; file descriptors travel beside it as SCM_RIGHTS.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

namespace emmcsim::transport::vhost_user {

inline constexpr std::size_t kHeaderSize = 12;
inline constexpr std::uint32_t kVersion = 0x1;
inline constexpr std::uint32_t kFlagVersionMask = 0x3;
inline constexpr std::uint32_t kFlagReply = 1u << 2;
inline constexpr std::uint32_t kFlagNeedReply = 1u << 3;
// The largest payload accepted. Every message this back-end understands is far smaller (a full
// memory table is 264 bytes); an unknown request's payload is read and dropped up to this size,
// and a larger announced size means the stream cannot be trusted.
inline constexpr std::size_t kMaxPayload = 4096;
inline constexpr std::size_t kMaxFds = 8;  // VHOST_MEMORY_BASELINE_NREGIONS
inline constexpr std::size_t kMaxMemoryRegions = 8;
inline constexpr std::size_t kMaxConfigSize = 256;  // VHOST_USER_MAX_CONFIG_SIZE

// Front-end requests (the ones this back-end knows by name; others are refused).
enum class Request : std::uint32_t {
  get_features = 1,
  set_features = 2,
  set_owner = 3,
  reset_owner = 4,
  set_mem_table = 5,
  set_log_base = 6,
  set_log_fd = 7,
  set_vring_num = 8,
  set_vring_addr = 9,
  set_vring_base = 10,
  get_vring_base = 11,
  set_vring_kick = 12,
  set_vring_call = 13,
  set_vring_err = 14,
  get_protocol_features = 15,
  set_protocol_features = 16,
  get_queue_num = 17,
  set_vring_enable = 18,
  set_backend_req_fd = 21,  // VHOST_USER_SET_SLAVE_REQ_FD in Linux 6.1 and older texts
  get_config = 24,
  set_config = 25,
  reset_device = 34,
  vring_kick = 35,  // an in-band kick (INBAND_NOTIFICATIONS): VringState {index, 0}
  get_max_mem_slots = 36,
  add_mem_reg = 37,
  rem_mem_reg = 38,
  set_status = 39,
  get_status = 40,
};
// "VHOST_USER_GET_FEATURES", or "request 77" for one without a name here.
std::string request_name(std::uint32_t request);

// Back-end requests: what the back-end sends on the channel the front-end gave it with
// SET_BACKEND_REQ_FD (the "slave" channel of older texts). Same header; the front-end answers only
// those that carry need_reply.
enum class BackendRequest : std::uint32_t {
  iotlb_msg = 1,
  config_change_msg = 2,  // no payload: the config space changed
  vring_host_notifier_msg = 3,
  vring_call = 4,  // VringState {index, 0}: used buffers on that ring (INBAND_NOTIFICATIONS)
  vring_err = 5,   // VringState {index, 0}: that ring is broken (INBAND_NOTIFICATIONS)
};
// "VHOST_USER_BACKEND_VRING_CALL", or "back-end request 9".
std::string backend_request_name(std::uint32_t request);

// Virtio feature bits (VHOST_USER_GET_FEATURES) and protocol feature bits.
namespace feature {
inline constexpr std::uint64_t kRingIndirectDesc = 1ull << 28;  // VIRTIO_RING_F_INDIRECT_DESC
inline constexpr std::uint64_t kRingEventIdx = 1ull << 29;      // VIRTIO_RING_F_EVENT_IDX
inline constexpr std::uint64_t kProtocolFeatures = 1ull << 30;  // VHOST_USER_F_PROTOCOL_FEATURES
inline constexpr std::uint64_t kVersion1 = 1ull << 32;          // VIRTIO_F_VERSION_1
}  // namespace feature
namespace protocol_feature {
inline constexpr std::uint64_t kMq = 1ull << 0;
inline constexpr std::uint64_t kReplyAck = 1ull << 3;
inline constexpr std::uint64_t kBackendReq = 1ull << 5;  // SLAVE_REQ: a channel for back-end requests
inline constexpr std::uint64_t kConfig = 1ull << 9;
inline constexpr std::uint64_t kResetDevice = 1ull << 13;
inline constexpr std::uint64_t kInbandNotifications = 1ull << 14;  // VRING_KICK / BACKEND_VRING_CALL messages
inline constexpr std::uint64_t kConfigureMemSlots = 1ull << 15;
inline constexpr std::uint64_t kStatus = 1ull << 16;
}  // namespace protocol_feature

// The message cannot be taken. `fatal`: the framing itself is broken (bad version, a reply bit
// on a request, an oversized length), so nothing after it can be trusted and the connection must
// be closed; otherwise the message is refused and the stream goes on.
class MessageError : public std::runtime_error {
 public:
  MessageError(bool fatal, const std::string& what) : std::runtime_error(what), fatal_(fatal) {}
  bool fatal() const { return fatal_; }

 private:
  bool fatal_;
};

struct Header {
  std::uint32_t request = 0;
  std::uint32_t flags = kVersion;
  std::uint32_t size = 0;
  bool need_reply() const { return (flags & kFlagNeedReply) != 0; }
};

// ---- Payloads ---------------------------------------------------------------------------

struct NoPayload {};
struct U64Payload {  // features, protocol features, status, queue number, reply-ack
  std::uint64_t value = 0;
};
struct VringState {  // SET_VRING_NUM / SET_VRING_BASE / GET_VRING_BASE / SET_VRING_ENABLE / VRING_KICK
  std::uint32_t index = 0;
  std::uint32_t num = 0;
};
struct VringAddress {  // SET_VRING_ADDR: addresses in the front-end's user address space
  std::uint32_t index = 0;
  std::uint32_t flags = 0;  // bit 0: log
  std::uint64_t descriptor = 0;
  std::uint64_t used = 0;
  std::uint64_t available = 0;
  std::uint64_t log = 0;
};
struct VringFile {  // SET_VRING_KICK / CALL / ERR: u64, bits 0-7 the index, bit 8 "no fd"
  std::uint32_t index = 0;
  bool has_fd = true;
};
struct MemoryRegion {
  std::uint64_t guest_address = 0;
  std::uint64_t size = 0;
  std::uint64_t user_address = 0;
  std::uint64_t mmap_offset = 0;
};
struct MemoryTable {  // SET_MEM_TABLE: u32 count, u32 padding, count regions; one fd each
  std::vector<MemoryRegion> regions;
};
struct SingleMemoryRegion {  // ADD_MEM_REG (one fd) / REM_MEM_REG: u64 padding, one region
  MemoryRegion region;
};
struct ConfigSpace {  // GET_CONFIG / SET_CONFIG: u32 offset, u32 size, u32 flags, size bytes
  std::uint32_t offset = 0;
  std::uint32_t flags = 0;
  std::vector<std::uint8_t> bytes;
};

using Payload = std::variant<NoPayload, U64Payload, VringState, VringAddress, VringFile, MemoryTable,
                             SingleMemoryRegion, ConfigSpace>;

// ---- Decoding ---------------------------------------------------------------------------

// Checks the version bits, that no reply bit is set (a front-end sends requests) and
// size <= kMaxPayload; all three failures are fatal.
Header decode_header(const std::uint8_t* bytes, std::size_t size);

// Decodes the payload of a known request, checking its size (exact; a SET_MEM_TABLE may carry
// unused region slots after its regions, as virtio_uml's does), its values and that
// `fd_count` descriptors came with it (as many as regions for SET_MEM_TABLE, one for ADD_MEM_REG
// and SET_BACKEND_REQ_FD, one for SET_VRING_KICK/CALL/ERR unless bit 8 says none, else zero).
// Throws MessageError (not fatal) on a mismatch, and for requests this back-end does not know.
Payload decode_payload(std::uint32_t request, const std::uint8_t* payload, std::size_t size, std::size_t fd_count);

// The payload of a back-end request as a front-end reads it (tests): VringState for VRING_CALL
// and VRING_ERR, NoPayload for CONFIG_CHANGE_MSG; no descriptors. Throws MessageError (not
// fatal) on a mismatch and for the requests not listed here.
Payload decode_backend_payload(std::uint32_t request, const std::uint8_t* payload, std::size_t size,
                               std::size_t fd_count);

// ---- Encoding (replies here, requests for front-ends such as the tests') -----------------

std::vector<std::uint8_t> encode_message(std::uint32_t request, std::uint32_t flags, const Payload& payload);
// A reply to `request` (version 1, the reply bit).
inline std::vector<std::uint8_t> encode_reply(std::uint32_t request, const Payload& payload) {
  return encode_message(request, kVersion | kFlagReply, payload);
}
// The payload of a reply the front-end reads (tests): checks the header's reply bit and request.
Payload decode_reply(std::uint32_t request, const std::uint8_t* message, std::size_t size);

}  // namespace emmcsim::transport::vhost_user
