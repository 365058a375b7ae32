// vhost-user message codec (see vhost_user_message.hpp).
#include "emmcsim/transport/vhost_user_message.hpp"

#include "emmcsim/support/little_endian.hpp"

namespace emmcsim::transport::vhost_user {

namespace {

// Fields in the host's byte order, which is little-endian on every host emmcsim builds for.
std::uint32_t get32(const std::uint8_t* p) { return support::load_le32(p); }
std::uint64_t get64(const std::uint8_t* p) { return support::load_le64(p); }
void put32(std::vector<std::uint8_t>& out, std::uint32_t v) { support::LittleEndianWriter(out).u32(v); }
void put64(std::vector<std::uint8_t>& out, std::uint64_t v) { support::LittleEndianWriter(out).u64(v); }

constexpr std::size_t kRegionSize = 32;
constexpr std::size_t kConfigHeaderSize = 12;

[[noreturn]] void refuse(std::uint32_t request, const std::string& what) {
  throw MessageError(false, request_name(request) + ": " + what);
}

void expect_size(std::uint32_t request, std::size_t size, std::size_t expected) {
  if (size != expected)
    refuse(request, "payload of " + std::to_string(size) + " bytes, expected " + std::to_string(expected));
}
void expect_fds(std::uint32_t request, std::size_t fd_count, std::size_t expected) {
  if (fd_count != expected)
    refuse(request, std::to_string(fd_count) + " file descriptors came with it, expected " + std::to_string(expected));
}

MemoryRegion region_at(const std::uint8_t* p) {
  return MemoryRegion{get64(p), get64(p + 8), get64(p + 16), get64(p + 24)};
}

void check_region(std::uint32_t request, const MemoryRegion& r) {
  if (r.size == 0) refuse(request, "a memory region of size 0");
  if (r.guest_address + r.size < r.guest_address || r.user_address + r.size < r.user_address ||
      r.mmap_offset + r.size < r.mmap_offset)
    refuse(request, "a memory region that wraps around the address space");
}

VringState vring_state(std::uint32_t request, const std::uint8_t* payload, std::size_t size) {
  expect_size(request, size, 8);
  return VringState{get32(payload), get32(payload + 4)};
}

}  // namespace

std::string request_name(std::uint32_t request) {
  switch (static_cast<Request>(request)) {
    case Request::get_features: return "VHOST_USER_GET_FEATURES";
    case Request::set_features: return "VHOST_USER_SET_FEATURES";
    case Request::set_owner: return "VHOST_USER_SET_OWNER";
    case Request::reset_owner: return "VHOST_USER_RESET_OWNER";
    case Request::set_mem_table: return "VHOST_USER_SET_MEM_TABLE";
    case Request::set_log_base: return "VHOST_USER_SET_LOG_BASE";
    case Request::set_log_fd: return "VHOST_USER_SET_LOG_FD";
    case Request::set_vring_num: return "VHOST_USER_SET_VRING_NUM";
    case Request::set_vring_addr: return "VHOST_USER_SET_VRING_ADDR";
    case Request::set_vring_base: return "VHOST_USER_SET_VRING_BASE";
    case Request::get_vring_base: return "VHOST_USER_GET_VRING_BASE";
    case Request::set_vring_kick: return "VHOST_USER_SET_VRING_KICK";
    case Request::set_vring_call: return "VHOST_USER_SET_VRING_CALL";
    case Request::set_vring_err: return "VHOST_USER_SET_VRING_ERR";
    case Request::get_protocol_features: return "VHOST_USER_GET_PROTOCOL_FEATURES";
    case Request::set_protocol_features: return "VHOST_USER_SET_PROTOCOL_FEATURES";
    case Request::get_queue_num: return "VHOST_USER_GET_QUEUE_NUM";
    case Request::set_vring_enable: return "VHOST_USER_SET_VRING_ENABLE";
    case Request::get_config: return "VHOST_USER_GET_CONFIG";
    case Request::set_config: return "VHOST_USER_SET_CONFIG";
    case Request::reset_device: return "VHOST_USER_RESET_DEVICE";
    case Request::get_max_mem_slots: return "VHOST_USER_GET_MAX_MEM_SLOTS";
    case Request::add_mem_reg: return "VHOST_USER_ADD_MEM_REG";
    case Request::rem_mem_reg: return "VHOST_USER_REM_MEM_REG";
    case Request::set_status: return "VHOST_USER_SET_STATUS";
    case Request::get_status: return "VHOST_USER_GET_STATUS";
    case Request::set_backend_req_fd: return "VHOST_USER_SET_BACKEND_REQ_FD";
    case Request::vring_kick: return "VHOST_USER_VRING_KICK";
  }
  return "request " + std::to_string(request);
}

std::string backend_request_name(std::uint32_t request) {
  switch (static_cast<BackendRequest>(request)) {
    case BackendRequest::iotlb_msg: return "VHOST_USER_BACKEND_IOTLB_MSG";
    case BackendRequest::config_change_msg: return "VHOST_USER_BACKEND_CONFIG_CHANGE_MSG";
    case BackendRequest::vring_host_notifier_msg: return "VHOST_USER_BACKEND_VRING_HOST_NOTIFIER_MSG";
    case BackendRequest::vring_call: return "VHOST_USER_BACKEND_VRING_CALL";
    case BackendRequest::vring_err: return "VHOST_USER_BACKEND_VRING_ERR";
  }
  return "back-end request " + std::to_string(request);
}

Header decode_header(const std::uint8_t* bytes, std::size_t size) {
  if (size < kHeaderSize) throw MessageError(true, "message header truncated");
  Header h{get32(bytes), get32(bytes + 4), get32(bytes + 8)};
  if ((h.flags & kFlagVersionMask) != kVersion)
    throw MessageError(true, request_name(h.request) + ": protocol version " +
                                 std::to_string(h.flags & kFlagVersionMask) + ", expected 1");
  if ((h.flags & kFlagReply) != 0)
    throw MessageError(true, request_name(h.request) + ": a reply where a request belongs");
  if (h.size > kMaxPayload)
    throw MessageError(true, request_name(h.request) + ": payload of " + std::to_string(h.size) + " bytes (at most " +
                                 std::to_string(kMaxPayload) + ")");
  return h;
}

Payload decode_payload(std::uint32_t request, const std::uint8_t* payload, std::size_t size, std::size_t fd_count) {
  switch (static_cast<Request>(request)) {
    case Request::get_features:
    case Request::set_owner:
    case Request::reset_owner:
    case Request::get_protocol_features:
    case Request::get_queue_num:
    case Request::reset_device:
    case Request::get_max_mem_slots:
    case Request::get_status:
      expect_size(request, size, 0);
      expect_fds(request, fd_count, 0);
      return NoPayload{};
    case Request::set_features:
    case Request::set_protocol_features:
    case Request::set_status:
      expect_size(request, size, 8);
      expect_fds(request, fd_count, 0);
      return U64Payload{get64(payload)};
    case Request::set_vring_num:
    case Request::set_vring_base:
    case Request::get_vring_base:
    case Request::set_vring_enable:
    case Request::vring_kick: expect_fds(request, fd_count, 0); return vring_state(request, payload, size);
    case Request::set_backend_req_fd:
      expect_size(request, size, 0);
      expect_fds(request, fd_count, 1);
      return NoPayload{};
    case Request::set_vring_addr: {
      expect_size(request, size, 40);
      expect_fds(request, fd_count, 0);
      VringAddress a{get32(payload),      get32(payload + 4),  get64(payload + 8),
                     get64(payload + 16), get64(payload + 24), get64(payload + 32)};
      return a;
    }
    case Request::set_vring_kick:
    case Request::set_vring_call:
    case Request::set_vring_err: {
      expect_size(request, size, 8);
      const std::uint64_t v = get64(payload);
      if ((v & ~std::uint64_t{0x1FF}) != 0) refuse(request, "bits other than the index and the no-fd flag are set");
      VringFile f{static_cast<std::uint32_t>(v & 0xFF), (v & 0x100) == 0};
      expect_fds(request, fd_count, f.has_fd ? 1 : 0);
      return f;
    }
    case Request::set_mem_table: {
      if (size < 8) refuse(request, "payload of " + std::to_string(size) + " bytes, shorter than its count");
      const std::uint32_t count = get32(payload);
      if (count == 0 || count > kMaxMemoryRegions)
        refuse(request, std::to_string(count) + " memory regions (1 to " + std::to_string(kMaxMemoryRegions) + ")");
      // The regions in use, then unused slots: User-Mode Linux's virtio_uml always sends a table
      // of two slots (72 bytes) with one region. Slots are whole, and at most kMaxMemoryRegions.
      if (size < 8 + count * kRegionSize)
        refuse(request, "payload of " + std::to_string(size) + " bytes, expected " +
                            std::to_string(8 + count * kRegionSize) + " for " + std::to_string(count) + " regions");
      if ((size - 8) % kRegionSize != 0 || size > 8 + kMaxMemoryRegions * kRegionSize)
        refuse(request, "payload of " + std::to_string(size) + " bytes: not a table of up to " +
                            std::to_string(kMaxMemoryRegions) + " 32-byte region slots");
      expect_fds(request, fd_count, count);
      MemoryTable table;
      for (std::uint32_t i = 0; i < count; ++i) {
        table.regions.push_back(region_at(payload + 8 + i * kRegionSize));
        check_region(request, table.regions.back());
      }
      return table;
    }
    case Request::add_mem_reg:
    case Request::rem_mem_reg: {
      expect_size(request, size, 8 + kRegionSize);
      // QEMU sends the region's fd with REM_MEM_REG too; it is not needed and is closed.
      if (static_cast<Request>(request) == Request::add_mem_reg)
        expect_fds(request, fd_count, 1);
      else if (fd_count > 1)
        expect_fds(request, fd_count, 1);
      SingleMemoryRegion r{region_at(payload + 8)};
      check_region(request, r.region);
      return r;
    }
    case Request::get_config:
    case Request::set_config: {
      if (size < kConfigHeaderSize)
        refuse(request, "payload of " + std::to_string(size) + " bytes, shorter than its header");
      expect_fds(request, fd_count, 0);
      ConfigSpace c;
      c.offset = get32(payload);
      const std::uint32_t length = get32(payload + 4);
      c.flags = get32(payload + 8);
      if (length > kMaxConfigSize)
        refuse(request, "config size " + std::to_string(length) + " (at most " + std::to_string(kMaxConfigSize) + ")");
      expect_size(request, size, kConfigHeaderSize + length);
      c.bytes.assign(payload + kConfigHeaderSize, payload + kConfigHeaderSize + length);
      return c;
    }
    case Request::set_log_base:
    case Request::set_log_fd: break;
  }
  refuse(request, "not supported by this back-end");
}

Payload decode_backend_payload(std::uint32_t request, const std::uint8_t* payload, std::size_t size,
                               std::size_t fd_count) {
  auto refuse_backend = [request](const std::string& what) {
    throw MessageError(false, backend_request_name(request) + ": " + what);
  };
  if (fd_count != 0) refuse_backend(std::to_string(fd_count) + " file descriptors came with it, expected 0");
  switch (static_cast<BackendRequest>(request)) {
    case BackendRequest::vring_call:
    case BackendRequest::vring_err:
      if (size != 8) refuse_backend("payload of " + std::to_string(size) + " bytes, expected 8");
      return VringState{get32(payload), get32(payload + 4)};
    case BackendRequest::config_change_msg:
      if (size != 0) refuse_backend("payload of " + std::to_string(size) + " bytes, expected 0");
      return NoPayload{};
    case BackendRequest::iotlb_msg:
    case BackendRequest::vring_host_notifier_msg: break;
  }
  throw MessageError(false, backend_request_name(request) + ": not supported by this front-end");
}

std::vector<std::uint8_t> encode_message(std::uint32_t request, std::uint32_t flags, const Payload& payload) {
  std::vector<std::uint8_t> body;
  struct Encoder {
    std::vector<std::uint8_t>& out;
    void operator()(const NoPayload&) const {}
    void operator()(const U64Payload& p) const { put64(out, p.value); }
    void operator()(const VringState& p) const {
      put32(out, p.index);
      put32(out, p.num);
    }
    void operator()(const VringAddress& p) const {
      put32(out, p.index);
      put32(out, p.flags);
      put64(out, p.descriptor);
      put64(out, p.used);
      put64(out, p.available);
      put64(out, p.log);
    }
    void operator()(const VringFile& p) const { put64(out, (p.index & 0xFFu) | (p.has_fd ? 0u : 0x100u)); }
    void region(const MemoryRegion& r) const {
      put64(out, r.guest_address);
      put64(out, r.size);
      put64(out, r.user_address);
      put64(out, r.mmap_offset);
    }
    void operator()(const MemoryTable& p) const {
      put32(out, static_cast<std::uint32_t>(p.regions.size()));
      put32(out, 0);
      for (const auto& r : p.regions) region(r);
    }
    void operator()(const SingleMemoryRegion& p) const {
      put64(out, 0);
      region(p.region);
    }
    void operator()(const ConfigSpace& p) const {
      put32(out, p.offset);
      put32(out, static_cast<std::uint32_t>(p.bytes.size()));
      put32(out, p.flags);
      out.insert(out.end(), p.bytes.begin(), p.bytes.end());
    }
  };
  std::visit(Encoder{body}, payload);
  std::vector<std::uint8_t> out;
  out.reserve(kHeaderSize + body.size());
  put32(out, request);
  put32(out, flags);
  put32(out, static_cast<std::uint32_t>(body.size()));
  out.insert(out.end(), body.begin(), body.end());
  return out;
}

Payload decode_reply(std::uint32_t request, const std::uint8_t* message, std::size_t size) {
  if (size < kHeaderSize) throw MessageError(true, "reply header truncated");
  const Header h{get32(message), get32(message + 4), get32(message + 8)};
  if (h.request != request)
    throw MessageError(true, "reply to " + request_name(h.request) + ", expected " + request_name(request));
  if ((h.flags & kFlagReply) == 0 || (h.flags & kFlagVersionMask) != kVersion)
    throw MessageError(true, request_name(request) + ": reply without the reply bit or with a bad version");
  if (h.size != size - kHeaderSize)
    throw MessageError(true, request_name(request) + ": reply size disagrees with its header");
  const std::uint8_t* p = message + kHeaderSize;
  switch (static_cast<Request>(request)) {
    case Request::get_vring_base: return vring_state(request, p, h.size);
    case Request::get_config: {
      if (h.size < kConfigHeaderSize) refuse(request, "reply shorter than its header");
      ConfigSpace c{get32(p), get32(p + 8), {}};
      const std::uint32_t length = get32(p + 4);
      expect_size(request, h.size, kConfigHeaderSize + std::size_t{length});
      c.bytes.assign(p + kConfigHeaderSize, p + kConfigHeaderSize + length);
      return c;
    }
    default:  // a u64: features, protocol features, queue number, slots, status, or a reply-ack
      expect_size(request, h.size, 8);
      return U64Payload{get64(p)};
  }
}

}  // namespace emmcsim::transport::vhost_user
