// VhostUserFrontend and VirtioRpmbChannel (see vhost_user_frontend.hpp).
#include "emmcsim/transport/vhost_user_frontend.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>

namespace emmcsim::transport {

namespace vu = vhost_user;

namespace {

std::chrono::milliseconds left_until(std::chrono::steady_clock::time_point deadline) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
}

bool readable(int fd, std::chrono::milliseconds timeout) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, static_cast<int>(std::max<std::int64_t>(timeout.count(), 0))) > 0;
}

}  // namespace

VhostUserFrontend::VhostUserFrontend(const std::string& socket_path, std::size_t memory_bytes, std::uint16_t queue_size)
    : VhostUserFrontend(socket_path, Options{Order::qemu, 1, memory_bytes, queue_size, 3}) {}

VhostUserFrontend::VhostUserFrontend(const std::string& socket_path, const Options& options)
    : order_(options.order),
      memory_bytes_(options.memory_bytes),
      queue_size_(options.queue_size),
      config_size_(options.config_size),
      rings_(options.queues) {
  if (options.queues == 0 || options.queues > kMaxQueues) fail("1 to 4 queues");
  if (queue_size_ == 0 || queue_size_ > 256 || (queue_size_ & (queue_size_ - 1)) != 0)
    fail("the queue size is a power of two up to 256");
  if (memory_bytes_ < kBufferOffset + 0x1000 * options.queues) fail("too little guest memory");
  open_memory_and_socket(socket_path);
}

void VhostUserFrontend::open_memory_and_socket(const std::string& socket_path) {
  memfd_ = ::memfd_create("emmcsim-guest-ram", MFD_CLOEXEC);
  if (memfd_ < 0 || ::ftruncate(memfd_, static_cast<off_t>(memory_bytes_)) != 0) release_and_fail("memfd");
  void* p = ::mmap(nullptr, memory_bytes_, PROT_READ | PROT_WRITE, MAP_SHARED, memfd_, 0);
  if (p == MAP_FAILED) release_and_fail("mmap");
  ram_ = static_cast<std::uint8_t*>(p);
  for (DriverRing& r : rings_) {
    r.kick = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (r.kick < 0) release_and_fail("eventfd");
    if (order_ == Order::qemu) {
      r.call = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
      if (r.call < 0) release_and_fail("eventfd");
    } else {
      int pair[2];
      if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, pair) != 0)
        release_and_fail("socketpair");
      r.call = pair[0];
      r.call_peer = pair[1];
    }
  }
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

// ---- The protocol ----------------------------------------------------------------------------------

void VhostUserFrontend::send(vu::Request request, const vu::Payload& payload, std::vector<int> fds, bool need_reply) {
  const std::uint32_t flags = vu::kVersion | (need_reply ? vu::kFlagNeedReply : 0u);
  send_raw(vu::encode_message(static_cast<std::uint32_t>(request), flags, payload), fds);
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
  std::vector<std::uint8_t> bytes(vu::kHeaderSize);
  if (!read_exactly(socket_, bytes.data(), bytes.size(), timeout)) return {};
  std::uint32_t size;
  std::memcpy(&size, bytes.data() + 8, 4);
  if (size > vu::kMaxPayload) fail("reply too large");
  bytes.resize(vu::kHeaderSize + size);
  if (!read_exactly(socket_, bytes.data() + vu::kHeaderSize, size, timeout)) return {};
  return bytes;
}

vu::Payload VhostUserFrontend::call(vu::Request request, const vu::Payload& payload) {
  send(request, payload);
  const std::vector<std::uint8_t> reply = receive();
  if (reply.empty()) fail("no reply to " + vu::request_name(static_cast<std::uint32_t>(request)));
  return vu::decode_reply(static_cast<std::uint32_t>(request), reply.data(), reply.size());
}

std::uint64_t VhostUserFrontend::command(vu::Request request, const vu::Payload& payload, std::vector<int> fds) {
  const bool ack = (protocol_features_ & vu::protocol_feature::kReplyAck) != 0;
  send(request, payload, std::move(fds), ack);
  if (!ack) return 0;
  const std::vector<std::uint8_t> reply = receive();
  if (reply.empty()) fail("no acknowledgement of " + vu::request_name(static_cast<std::uint32_t>(request)));
  return std::get<vu::U64Payload>(vu::decode_reply(static_cast<std::uint32_t>(request), reply.data(), reply.size()))
      .value;
}

void VhostUserFrontend::require(vu::Request request, const vu::Payload& payload, std::vector<int> fds) {
  if (command(request, payload, std::move(fds)) != 0)
    fail(vu::request_name(static_cast<std::uint32_t>(request)) + " was refused");
}

bool VhostUserFrontend::inband() const {
  return (protocol_features_ & vu::protocol_feature::kInbandNotifications) != 0;
}

void VhostUserFrontend::start() {
  if (order_ == Order::qemu)
    start_qemu();
  else
    start_uml();
}

void VhostUserFrontend::start_qemu() {
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
  if (config_size_ > 0) config_ = read_config(0, config_size_);
  require(vu::Request::set_features,
          vu::U64Payload{features_ &
                         (vu::feature::kVersion1 | vu::feature::kRingIndirectDesc | vu::feature::kProtocolFeatures)});
  require(vu::Request::set_mem_table, vu::MemoryTable{{memory_region()}}, {memfd_});
  for (std::size_t q = 0; q < rings_.size(); ++q) setup_ring(0, q);
  for (std::size_t q = 0; q < rings_.size(); ++q)
    require(vu::Request::set_vring_enable, vu::VringState{static_cast<std::uint32_t>(q), 1});
  require(vu::Request::set_status, vu::U64Payload{0x0F});  // ACKNOWLEDGE | DRIVER | DRIVER_OK | FEATURES_OK
}

// As Linux 6.1's virtio_uml: vhost_user_init(), then the driver's probe (config, features,
// find_vqs()).
void VhostUserFrontend::start_uml() {
  require(vu::Request::set_owner, vu::NoPayload{});
  features_ = call_u64(vu::Request::get_features);
  if ((features_ & vu::feature::kProtocolFeatures) != 0) {
    protocol_features_ = call_u64(vu::Request::get_protocol_features) &
                         (vu::protocol_feature::kReplyAck | vu::protocol_feature::kBackendReq |
                          vu::protocol_feature::kConfig | vu::protocol_feature::kInbandNotifications);
    // UML has taken the features already, so this one asks for an acknowledgement itself.
    require(vu::Request::set_protocol_features, vu::U64Payload{protocol_features_});
  }
  if ((protocol_features_ & vu::protocol_feature::kBackendReq) != 0) {
    int pair[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, pair) != 0) fail("socketpair");
    channel_ = pair[0];
    try {
      require(vu::Request::set_backend_req_fd, vu::NoPayload{}, {pair[1]});
    } catch (...) {
      ::close(pair[1]);
      throw;
    }
    ::close(pair[1]);
  }
  queue_count_ = rings_.size();
  if (config_size_ > 0 && (protocol_features_ & vu::protocol_feature::kConfig) != 0)
    config_ = read_config(0, config_size_);
  require(vu::Request::set_features,
          vu::U64Payload{features_ &
                         (vu::feature::kVersion1 | vu::feature::kRingIndirectDesc | vu::feature::kProtocolFeatures)});
  require(vu::Request::set_mem_table, vu::MemoryTable{{memory_region()}}, {memfd_});
  for (std::size_t q = 0; q < rings_.size(); ++q) setup_ring(0, q);
  if ((features_ & vu::feature::kProtocolFeatures) != 0)
    for (std::size_t q = 0; q < rings_.size(); ++q)
      require(vu::Request::set_vring_enable, vu::VringState{static_cast<std::uint32_t>(q), 1});
}

void VhostUserFrontend::setup_ring(std::uint16_t base, std::size_t queue) {
  DriverRing& r = driver_ring(queue);
  const auto index = static_cast<std::uint32_t>(queue);
  std::memset(ram_ + ring_offset(queue), 0, kRingStride);
  r.avail_index = base;
  r.used_seen = base;
  std::memcpy(ram_ + ring_offset(queue) + kUsedOffset + 2, &base, 2);
  std::memcpy(ram_ + ring_offset(queue) + kAvailableOffset + 2, &base, 2);
  const vu::VringAddress addresses{index,
                                   0,
                                   ring_address(ring_offset(queue) + kDescriptorOffset),
                                   ring_address(ring_offset(queue) + kUsedOffset),
                                   ring_address(ring_offset(queue) + kAvailableOffset),
                                   order_ == Order::uml ? ~std::uint64_t{0} : 0};
  const bool calls_inband = inband() && channel_ >= 0;
  if (order_ == Order::uml && !calls_inband)
    require(vu::Request::set_vring_call, vu::VringFile{index, true}, {r.call_peer});
  require(vu::Request::set_vring_num, vu::VringState{index, queue_size_});
  require(vu::Request::set_vring_base, vu::VringState{index, base});
  require(vu::Request::set_vring_addr, addresses);
  if (!inband()) require(vu::Request::set_vring_kick, vu::VringFile{index, true}, {r.kick});
  if (order_ == Order::qemu) require(vu::Request::set_vring_call, vu::VringFile{index, true}, {r.call});
}

std::vector<std::uint8_t> VhostUserFrontend::read_config(std::uint32_t offset, std::uint32_t size) {
  vu::ConfigSpace request{offset, 0, std::vector<std::uint8_t>(size)};
  return std::get<vu::ConfigSpace>(call(vu::Request::get_config, request)).bytes;
}

std::uint32_t VhostUserFrontend::stop_ring(std::size_t queue) {
  return std::get<vu::VringState>(
             call(vu::Request::get_vring_base, vu::VringState{static_cast<std::uint32_t>(queue), 0}))
      .num;
}

// ---- The guest driver's rings ------------------------------------------------------------------------

VhostUserFrontend::DriverRing& VhostUserFrontend::driver_ring(std::size_t queue) {
  if (queue >= rings_.size()) fail("no queue " + std::to_string(queue));
  return rings_[queue];
}

std::uint64_t VhostUserFrontend::buffer_span() const {
  return ((memory_bytes_ - kBufferOffset) / rings_.size()) & ~std::uint64_t{15};
}

std::uint64_t VhostUserFrontend::buffer_offset(std::size_t queue) const {
  return kBufferOffset + queue * buffer_span();
}

void VhostUserFrontend::set_descriptor(std::uint16_t index, std::uint64_t address, std::uint32_t length,
                                       std::uint16_t flags, std::uint16_t next, std::size_t queue) {
  driver_ring(queue);
  std::uint8_t* p = ram_ + ring_offset(queue) + kDescriptorOffset + vring::kDescriptorSize * index;
  std::memcpy(p, &address, 8);
  std::memcpy(p + 8, &length, 4);
  std::memcpy(p + 12, &flags, 2);
  std::memcpy(p + 14, &next, 2);
}

void VhostUserFrontend::publish(std::uint16_t head, std::size_t queue) {
  DriverRing& r = driver_ring(queue);
  std::uint8_t* available = ram_ + ring_offset(queue) + kAvailableOffset;
  std::memcpy(available + 4 + 2 * (r.avail_index % queue_size_), &head, 2);
  std::atomic_thread_fence(std::memory_order_release);
  ++r.avail_index;
  std::memcpy(available + 2, &r.avail_index, 2);
  std::atomic_thread_fence(std::memory_order_seq_cst);
  kick(queue);
}

void VhostUserFrontend::set_available_index(std::uint16_t index, std::size_t queue) {
  DriverRing& r = driver_ring(queue);
  r.avail_index = index;
  std::memcpy(ram_ + ring_offset(queue) + kAvailableOffset + 2, &r.avail_index, 2);
  kick(queue);
}

void VhostUserFrontend::kick(std::size_t queue) {
  DriverRing& r = driver_ring(queue);
  if (inband()) {
    // The acknowledgement comes once the back-end has answered what the kick made it serve.
    if (command(vu::Request::vring_kick, vu::VringState{static_cast<std::uint32_t>(queue), 0}) != 0)
      fail("VHOST_USER_VRING_KICK was refused");
    return;
  }
  const std::uint64_t one = 1;
  if (::write(r.kick, &one, sizeof(one)) != sizeof(one)) fail("kick");
}

void VhostUserFrontend::submit(const std::vector<std::vector<std::uint8_t>>& readable,
                               const std::vector<std::uint32_t>& writable, std::size_t queue) {
  DriverRing& r = driver_ring(queue);
  std::uint64_t offset = buffer_offset(queue);
  const std::uint64_t end = offset + buffer_span();
  const std::size_t count = readable.size() + writable.size();
  r.writable.clear();
  for (std::size_t i = 0; i < count; ++i) {
    const bool is_write = i >= readable.size();
    const std::uint32_t length =
        is_write ? writable[i - readable.size()] : static_cast<std::uint32_t>(readable[i].size());
    if (offset + length > end) fail("chain does not fit the guest memory");
    if (!is_write) {
      std::memcpy(ram_ + offset, readable[i].data(), length);
    } else {
      std::memset(ram_ + offset, 0xEE, length);
      r.writable.push_back({offset, length});
    }
    const bool last = i + 1 == count;
    set_descriptor(static_cast<std::uint16_t>(i), guest_address(offset), length,
                   static_cast<std::uint16_t>((is_write ? vring::kDescWrite : 0) | (last ? 0 : vring::kDescNext)),
                   static_cast<std::uint16_t>(last ? 0 : i + 1), queue);
    offset += (length + 15) & ~std::uint64_t{15};
  }
  publish(0, queue);
}

void VhostUserFrontend::post_writable(std::size_t count, std::uint32_t length, std::size_t queue) {
  DriverRing& r = driver_ring(queue);
  const std::uint64_t stride = (std::uint64_t{length} + 15) & ~std::uint64_t{15};
  if (count > queue_size_ || count * stride > buffer_span()) fail("the buffers do not fit");
  r.posted_length = length;
  std::uint8_t* available = ram_ + ring_offset(queue) + kAvailableOffset;
  for (std::size_t i = 0; i < count; ++i) {
    const std::uint64_t offset = buffer_offset(queue) + i * stride;
    std::memset(ram_ + offset, 0xEE, length);
    const auto head = static_cast<std::uint16_t>(i);
    set_descriptor(head, guest_address(offset), length, vring::kDescWrite, 0, queue);
    std::memcpy(available + 4 + 2 * ((r.avail_index + i) % queue_size_), &head, 2);
  }
  std::atomic_thread_fence(std::memory_order_release);
  r.avail_index = static_cast<std::uint16_t>(r.avail_index + count);
  std::memcpy(available + 2, &r.avail_index, 2);
  std::atomic_thread_fence(std::memory_order_seq_cst);
  kick(queue);
}

std::optional<VhostUserFrontend::Used> VhostUserFrontend::take_used(std::size_t queue) {
  DriverRing& r = driver_ring(queue);
  const std::uint8_t* used = ram_ + ring_offset(queue) + kUsedOffset;
  std::uint16_t used_index;
  std::memcpy(&used_index, used + 2, 2);
  std::atomic_thread_fence(std::memory_order_acquire);
  if (used_index == r.used_seen) return std::nullopt;
  Used u;
  const std::uint8_t* element = used + 4 + 8 * (r.used_seen % queue_size_);
  std::memcpy(&u.id, element, 4);
  std::memcpy(&u.length, element + 4, 4);
  ++r.used_seen;
  ++r.used_elements;
  return u;
}

VhostUserFrontend::Used VhostUserFrontend::wait_used(std::chrono::milliseconds timeout, std::size_t queue) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (std::optional<Used> u = take_used(queue)) return *u;
    const auto left = left_until(deadline);
    if (left.count() <= 0) fail("no used buffer within the timeout");
    wait_notification(queue, left);
  }
}

void VhostUserFrontend::wait_notification(std::size_t queue, std::chrono::milliseconds timeout) {
  if (inband() && channel_ >= 0) {
    if (readable(channel_, timeout)) read_channel_message(timeout);
  } else if (readable(driver_ring(queue).call, timeout)) {
    read_call(queue);
  }
}

void VhostUserFrontend::read_call(std::size_t queue) {
  DriverRing& r = driver_ring(queue);
  if (order_ == Order::qemu) {
    std::uint64_t count = 0;
    if (::read(r.call, &count, sizeof(count)) == sizeof(count)) r.interrupts += count;
    return;
  }
  std::array<std::uint8_t, 512> bytes{};
  const ssize_t n = ::read(r.call, bytes.data(), bytes.size());
  if (n > 0) r.interrupts += static_cast<std::uint64_t>(n) / sizeof(std::uint64_t);
}

// One back-end request from the channel: VRING_CALL counts for its queue, CONFIG_CHANGE_MSG is
// counted, anything else fails the test; need_reply is answered (0), as UML answers.
bool VhostUserFrontend::read_channel_message(std::chrono::milliseconds timeout) {
  std::array<std::uint8_t, vu::kHeaderSize> header_bytes{};
  if (!read_exactly(channel_, header_bytes.data(), header_bytes.size(), timeout)) return false;
  const vu::Header h = vu::decode_header(header_bytes.data(), header_bytes.size());
  std::vector<std::uint8_t> payload(h.size);
  if (!read_exactly(channel_, payload.data(), payload.size(), std::chrono::seconds(10)))
    fail("a back-end request cut short");
  const vu::Payload decoded = vu::decode_backend_payload(h.request, payload.data(), payload.size(), 0);
  if (h.request == static_cast<std::uint32_t>(vu::BackendRequest::vring_call)) {
    ++driver_ring(std::get<vu::VringState>(decoded).index).interrupts;
  } else if (h.request == static_cast<std::uint32_t>(vu::BackendRequest::config_change_msg)) {
    ++config_changes_;
  } else {
    fail("unexpected " + vu::backend_request_name(h.request));
  }
  if (h.need_reply()) {
    const std::vector<std::uint8_t> reply = vu::encode_reply(h.request, vu::U64Payload{0});
    if (::send(channel_, reply.data(), reply.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(reply.size()))
      fail("reply on the back-end channel");
  }
  return true;
}

void VhostUserFrontend::drain_backend_channel() {
  if (channel_ < 0) return;
  while (read_channel_message(std::chrono::milliseconds(0))) {
  }
}

std::uint64_t VhostUserFrontend::wait_interrupts(std::uint64_t expected, std::chrono::milliseconds timeout,
                                                 std::size_t queue) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (driver_ring(queue).interrupts < expected) {
    const auto left = left_until(deadline);
    if (left.count() <= 0) break;
    wait_notification(queue, left);
  }
  return driver_ring(queue).interrupts;
}

std::vector<std::uint8_t> VhostUserFrontend::written(std::size_t queue) const {
  std::vector<std::uint8_t> out;
  for (const auto& w : rings_.at(queue).writable) out.insert(out.end(), ram_ + w.first, ram_ + w.first + w.second);
  return out;
}

std::vector<std::uint8_t> VhostUserFrontend::posted_buffer(std::uint32_t id, std::size_t queue) const {
  const std::uint32_t length = rings_.at(queue).posted_length;
  const std::uint64_t offset = buffer_offset(queue) + id * ((std::uint64_t{length} + 15) & ~std::uint64_t{15});
  return std::vector<std::uint8_t>(ram_ + offset, ram_ + offset + length);
}

bool VhostUserFrontend::closed_by_back_end(std::chrono::milliseconds timeout) {
  if (!readable(socket_, timeout)) return false;
  std::uint8_t byte;
  const ssize_t n = ::recv(socket_, &byte, 1, MSG_DONTWAIT);
  return n == 0 || (n < 0 && errno == ECONNRESET);
}

void VhostUserFrontend::release() {
  auto close_fd = [](int& fd) {
    if (fd >= 0) ::close(fd);
    fd = -1;
  };
  close_fd(socket_);
  close_fd(channel_);
  for (DriverRing& r : rings_) {
    close_fd(r.kick);
    close_fd(r.call);
    close_fd(r.call_peer);
  }
  if (ram_ != nullptr) ::munmap(ram_, memory_bytes_);
  ram_ = nullptr;
  close_fd(memfd_);
}

void VhostUserFrontend::release_and_fail(const std::string& what) {
  const int error = errno;
  release();
  errno = error;
  fail(what);
}

void VhostUserFrontend::fail(const std::string& what) {
  throw VhostUserFrontendError("vhost-user front-end: " + what +
                               (errno != 0 ? std::string(": ") + std::strerror(errno) : ""));
}

bool VhostUserFrontend::read_exactly(int fd, std::uint8_t* out, std::size_t size, std::chrono::milliseconds timeout) {
  std::size_t done = 0;
  while (done < size) {
    if (!readable(fd, timeout)) return false;
    const ssize_t n = ::read(fd, out + done, size - done);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (n <= 0) return false;
    done += static_cast<std::size_t>(n);
  }
  return true;
}

void VirtioRpmbChannel::send(const rpmb::Frame* frames, std::size_t count, bool /*reliable_write*/) {
  for (std::size_t i = 0; i < count; ++i)
    pending_.insert(pending_.end(), frames[i].bytes(), frames[i].bytes() + rpmb::kFrameSize);
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
