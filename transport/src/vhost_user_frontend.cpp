// VhostUserFrontend and VirtioRpmbChannel (see vhost_user_frontend.hpp).
#include "emmcsim/transport/vhost_user_frontend.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>

namespace emmcsim::transport {

VhostUserFrontend::VhostUserFrontend(const std::string& socket_path, std::size_t memory_bytes, std::uint16_t queue_size)
    : memory_bytes_(memory_bytes), queue_size_(queue_size) {
  memfd_ = ::memfd_create("emmcsim-guest-ram", MFD_CLOEXEC);
  if (memfd_ < 0 || ::ftruncate(memfd_, static_cast<off_t>(memory_bytes)) != 0) release_and_fail("memfd");
  void* p = ::mmap(nullptr, memory_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, memfd_, 0);
  if (p == MAP_FAILED) release_and_fail("mmap");
  ram_ = static_cast<std::uint8_t*>(p);
  kick_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  call_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (kick_ < 0 || call_ < 0) release_and_fail("eventfd");
  socket_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, socket_path.c_str(), sizeof(address.sun_path) - 1);
  if (socket_ < 0 || ::connect(socket_, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) != 0) {
    const int error = errno;
    release();
    throw VhostUserFrontendError("cannot connect to " + socket_path + ": " + std::strerror(error) +
                                 " (is 'emmcsim serve --vhost-user-socket " + socket_path + "' running?)");
  }
}

void VhostUserFrontend::send(vhost_user::Request request, const vhost_user::Payload& payload, std::vector<int> fds, bool need_reply) {
  const std::uint32_t flags = vhost_user::kVersion | (need_reply ? vhost_user::kFlagNeedReply : 0u);
  send_raw(vhost_user::encode_message(static_cast<std::uint32_t>(request), flags, payload), fds);
}

void VhostUserFrontend::send_raw(const std::vector<std::uint8_t>& bytes, const std::vector<int>& fds) {
  iovec iov{const_cast<std::uint8_t*>(bytes.data()), bytes.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) std::array<char, CMSG_SPACE(sizeof(int) * 16)> control{};
  if (!fds.empty()) {
    msg.msg_control = control.data();
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  if (::sendmsg(socket_, &msg, MSG_NOSIGNAL) != static_cast<ssize_t>(bytes.size())) fail("sendmsg");
}

std::vector<std::uint8_t> VhostUserFrontend::receive(std::chrono::milliseconds timeout) {
  std::vector<std::uint8_t> bytes(vhost_user::kHeaderSize);
  if (!read_exactly(bytes.data(), bytes.size(), timeout)) return {};
  std::uint32_t size;
  std::memcpy(&size, bytes.data() + 8, 4);
  if (size > vhost_user::kMaxPayload) fail("reply too large");
  bytes.resize(vhost_user::kHeaderSize + size);
  if (!read_exactly(bytes.data() + vhost_user::kHeaderSize, size, timeout)) return {};
  return bytes;
}

vhost_user::Payload VhostUserFrontend::call(vhost_user::Request request, const vhost_user::Payload& payload) {
  send(request, payload);
  const std::vector<std::uint8_t> reply = receive();
  if (reply.empty()) fail("no reply to " + vhost_user::request_name(static_cast<std::uint32_t>(request)));
  return vhost_user::decode_reply(static_cast<std::uint32_t>(request), reply.data(), reply.size());
}

std::uint64_t VhostUserFrontend::command(vhost_user::Request request, const vhost_user::Payload& payload, std::vector<int> fds) {
  const bool ack = (protocol_features_ & vhost_user::protocol_feature::kReplyAck) != 0;
  send(request, payload, std::move(fds), ack);
  if (!ack) return 0;
  const std::vector<std::uint8_t> reply = receive();
  if (reply.empty()) fail("no acknowledgement of " + vhost_user::request_name(static_cast<std::uint32_t>(request)));
  return std::get<vhost_user::U64Payload>(
             vhost_user::decode_reply(static_cast<std::uint32_t>(request), reply.data(), reply.size()))
      .value;
}

void VhostUserFrontend::require(vhost_user::Request request, const vhost_user::Payload& payload, std::vector<int> fds) {
  if (command(request, payload, std::move(fds)) != 0)
    fail(vhost_user::request_name(static_cast<std::uint32_t>(request)) + " was refused");
}

void VhostUserFrontend::start() {
  namespace vu = vhost_user;
  features_ = call_u64(vu::Request::get_features);
  if ((features_ & vu::feature::kProtocolFeatures) == 0) fail("no VHOST_USER_F_PROTOCOL_FEATURES");
  const std::uint64_t offered = call_u64(vu::Request::get_protocol_features);
  protocol_features_ = offered & (vu::protocol_feature::kMq | vu::protocol_feature::kReplyAck |
                                  vu::protocol_feature::kConfig | vu::protocol_feature::kStatus |
                                  vu::protocol_feature::kResetDevice | vu::protocol_feature::kConfigureMemSlots);
  send(vu::Request::set_protocol_features, vu::U64Payload{protocol_features_});
  queue_count_ = call_u64(vu::Request::get_queue_num);
  max_mem_slots_ = call_u64(vu::Request::get_max_mem_slots);
  require(vu::Request::set_owner, vu::NoPayload{});
  config_ = read_config(0, 3);
  require(vu::Request::set_features,
          vu::U64Payload{features_ & (vu::feature::kVersion1 | vu::feature::kRingIndirectDesc | vu::feature::kProtocolFeatures)});
  require(vu::Request::set_mem_table, vu::MemoryTable{{memory_region()}}, {memfd_});
  setup_ring(0);
  require(vu::Request::set_vring_enable, vu::VringState{0, 1});
  require(vu::Request::set_status, vu::U64Payload{0x0F});  // ACKNOWLEDGE | DRIVER | DRIVER_OK | FEATURES_OK
}

void VhostUserFrontend::setup_ring(std::uint16_t base) {
  namespace vu = vhost_user;
  std::memset(ram_, 0, kBufferOffset);
  avail_index_ = base;
  used_seen_ = base;
  std::uint16_t used_index = base;
  std::memcpy(ram_ + kUsedOffset + 2, &used_index, 2);
  std::memcpy(ram_ + kAvailableOffset + 2, &avail_index_, 2);
  require(vu::Request::set_vring_num, vu::VringState{0, queue_size_});
  require(vu::Request::set_vring_base, vu::VringState{0, base});
  require(vu::Request::set_vring_addr, vu::VringAddress{0, 0, user_address(kDescriptorOffset), user_address(kUsedOffset),
                                                        user_address(kAvailableOffset), 0});
  require(vu::Request::set_vring_kick, vu::VringFile{0, true}, {kick_});
  require(vu::Request::set_vring_call, vu::VringFile{0, true}, {call_});
}

std::vector<std::uint8_t> VhostUserFrontend::read_config(std::uint32_t offset, std::uint32_t size) {
  vhost_user::ConfigSpace request{offset, 0, std::vector<std::uint8_t>(size)};
  return std::get<vhost_user::ConfigSpace>(call(vhost_user::Request::get_config, request)).bytes;
}

std::uint32_t VhostUserFrontend::stop_ring() {
  return std::get<vhost_user::VringState>(call(vhost_user::Request::get_vring_base, vhost_user::VringState{0, 0})).num;
}

void VhostUserFrontend::set_descriptor(std::uint16_t index, std::uint64_t address, std::uint32_t length, std::uint16_t flags, std::uint16_t next) {
  std::uint8_t* p = ram_ + kDescriptorOffset + vring::kDescriptorSize * index;
  std::memcpy(p, &address, 8);
  std::memcpy(p + 8, &length, 4);
  std::memcpy(p + 12, &flags, 2);
  std::memcpy(p + 14, &next, 2);
}

void VhostUserFrontend::publish(std::uint16_t head) {
  std::memcpy(ram_ + kAvailableOffset + 4 + 2 * (avail_index_ % queue_size_), &head, 2);
  std::atomic_thread_fence(std::memory_order_release);
  ++avail_index_;
  std::memcpy(ram_ + kAvailableOffset + 2, &avail_index_, 2);
  std::atomic_thread_fence(std::memory_order_seq_cst);
  kick();
}

void VhostUserFrontend::set_available_index(std::uint16_t index) {
  avail_index_ = index;
  std::memcpy(ram_ + kAvailableOffset + 2, &avail_index_, 2);
  kick();
}

void VhostUserFrontend::kick() {
  const std::uint64_t one = 1;
  if (::write(kick_, &one, sizeof(one)) != sizeof(one)) fail("kick");
}

void VhostUserFrontend::submit(const std::vector<std::vector<std::uint8_t>>& readable, const std::vector<std::uint32_t>& writable) {
  std::uint64_t offset = kBufferOffset;
  const std::size_t count = readable.size() + writable.size();
  writable_.clear();
  for (std::size_t i = 0; i < count; ++i) {
    const bool is_write = i >= readable.size();
    const std::uint32_t length =
        is_write ? writable[i - readable.size()] : static_cast<std::uint32_t>(readable[i].size());
    if (offset + length > memory_bytes_) fail("chain does not fit the guest memory");
    if (!is_write) std::memcpy(ram_ + offset, readable[i].data(), length);
    else {
      std::memset(ram_ + offset, 0xEE, length);
      writable_.push_back({offset, length});
    }
    const bool last = i + 1 == count;
    set_descriptor(static_cast<std::uint16_t>(i), guest_address(offset), length,
                   static_cast<std::uint16_t>((is_write ? vring::kDescWrite : 0) |
                                              (last ? 0 : vring::kDescNext)),
                   static_cast<std::uint16_t>(last ? 0 : i + 1));
    offset += (length + 15) & ~std::uint64_t{15};
  }
  publish(0);
}

VhostUserFrontend::Used VhostUserFrontend::wait_used(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    std::uint16_t used_index;
    std::memcpy(&used_index, ram_ + kUsedOffset + 2, 2);
    std::atomic_thread_fence(std::memory_order_acquire);
    if (used_index != used_seen_) {
      Used u;
      const std::uint8_t* element = ram_ + kUsedOffset + 4 + 8 * (used_seen_ % queue_size_);
      std::memcpy(&u.id, element, 4);
      std::memcpy(&u.length, element + 4, 4);
      ++used_seen_;
      ++used_elements_;
      return u;
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) fail("no used buffer within the timeout");
    pollfd p{call_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) > 0) read_call();
  }
}

void VhostUserFrontend::read_call() {
  std::uint64_t count = 0;
  if (::read(call_, &count, sizeof(count)) == sizeof(count)) interrupts_ += count;
}

std::uint64_t VhostUserFrontend::wait_interrupts(std::uint64_t expected, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (interrupts_ < expected) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd p{call_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) > 0) read_call();
  }
  return interrupts_;
}

std::vector<std::uint8_t> VhostUserFrontend::written() const {
  std::vector<std::uint8_t> out;
  for (const auto& w : writable_) out.insert(out.end(), ram_ + w.first, ram_ + w.first + w.second);
  return out;
}

bool VhostUserFrontend::closed_by_back_end(std::chrono::milliseconds timeout) {
  pollfd p{socket_, POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return false;
  std::uint8_t byte;
  const ssize_t n = ::recv(socket_, &byte, 1, MSG_DONTWAIT);
  return n == 0 || (n < 0 && errno == ECONNRESET);
}

void VhostUserFrontend::release() {
  if (socket_ >= 0) ::close(socket_);
  if (kick_ >= 0) ::close(kick_);
  if (call_ >= 0) ::close(call_);
  if (ram_ != nullptr) ::munmap(ram_, memory_bytes_);
  if (memfd_ >= 0) ::close(memfd_);
  socket_ = kick_ = call_ = memfd_ = -1;
  ram_ = nullptr;
}

void VhostUserFrontend::release_and_fail(const std::string& what) {
  const int error = errno;
  release();
  errno = error;
  fail(what);
}

void VhostUserFrontend::fail(const std::string& what) {
  throw VhostUserFrontendError("vhost-user front-end: " + what + (errno != 0 ? std::string(": ") + std::strerror(errno) : ""));
}

bool VhostUserFrontend::read_exactly(std::uint8_t* out, std::size_t size, std::chrono::milliseconds timeout) {
  std::size_t done = 0;
  while (done < size) {
    pollfd p{socket_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return false;
    const ssize_t n = ::recv(socket_, out + done, size - done, 0);
    if (n <= 0) return false;
    done += static_cast<std::size_t>(n);
  }
  return true;
}

void VirtioRpmbChannel::send(const rpmb::Frame* frames, std::size_t count, bool /*reliable_write*/) {
  for (std::size_t i = 0; i < count; ++i) pending_.insert(pending_.end(), frames[i].bytes(), frames[i].bytes() + rpmb::kFrameSize);
}

void VirtioRpmbChannel::receive(rpmb::Frame* frames, std::size_t count) {
  std::vector<std::vector<std::uint8_t>> readable{std::move(pending_)};
  pending_.clear();
  frontend_.submit(readable, {static_cast<std::uint32_t>(count * rpmb::kFrameSize)});
  const VhostUserFrontend::Used used = frontend_.wait_used();
  last_used_length_ = used.length;
  if (used.length != count * rpmb::kFrameSize)
    throw VhostUserFrontendError("virtio-rpmb: the device wrote " + std::to_string(used.length) + " bytes, expected " +
                             std::to_string(count * rpmb::kFrameSize));
  const std::vector<std::uint8_t> bytes = frontend_.written();
  for (std::size_t i = 0; i < count; ++i) frames[i] = rpmb::Frame::from_bytes(bytes.data() + i * rpmb::kFrameSize);
}

}  // namespace emmcsim::transport
