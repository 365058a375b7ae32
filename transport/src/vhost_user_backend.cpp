// VhostUserBackend and its session (see vhost_user_backend.hpp).
#include "emmcsim/transport/vhost_user_backend.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <cerrno>
#include <cstring>
#include <optional>
#include <vector>

#include "emmcsim/transport/guest_memory.hpp"
#include "emmcsim/transport/split_virtqueue.hpp"
#include "emmcsim/transport/unix_socket.hpp"
#include "emmcsim/transport/vhost_user_message.hpp"

namespace emmcsim::transport {

namespace asio = boost::asio;
using stream_protocol = asio::local::stream_protocol;
namespace vu = vhost_user;

namespace {

constexpr std::uint64_t kOfferedFeatures =
    vu::feature::kVersion1 | vu::feature::kRingIndirectDesc | vu::feature::kProtocolFeatures;
constexpr std::uint64_t kOfferedProtocolFeatures = vu::protocol_feature::kMq | vu::protocol_feature::kReplyAck |
                                                   vu::protocol_feature::kConfig | vu::protocol_feature::kResetDevice |
                                                   vu::protocol_feature::kConfigureMemSlots |
                                                   vu::protocol_feature::kStatus;

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : fd_(o.release()) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) reset(o.release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

bool has_natural_reply(std::uint32_t request) {
  switch (static_cast<vu::Request>(request)) {
    case vu::Request::get_features:
    case vu::Request::get_protocol_features:
    case vu::Request::get_queue_num:
    case vu::Request::get_vring_base:
    case vu::Request::get_config:
    case vu::Request::get_max_mem_slots:
    case vu::Request::get_status:
      return true;
    default:
      return false;
  }
}

}  // namespace

class VhostUserSession : public std::enable_shared_from_this<VhostUserSession> {
 public:
  VhostUserSession(VhostUserBackend& backend, stream_protocol::socket socket, std::uint64_t id)
      : backend_(backend), log_(backend.log_), socket_(std::move(socket)), strand_(asio::make_strand(backend.io_)), id_(id) {}

  void start() {
    asio::post(strand_, [self = shared_from_this()] { self->wait_readable(); });
  }
  void close() {
    asio::post(strand_, [self = shared_from_this()] { self->finish("closed by the daemon", false); });
  }

 private:
  struct Message {
    vu::Header header;
    std::vector<std::uint8_t> payload;
    std::vector<UniqueFd> fds;
  };

  // ---- Reading messages (header and payload, with their descriptors) ----------------------

  void wait_readable() {
    if (closed_) return;
    socket_.async_wait(stream_protocol::socket::wait_read,
                       asio::bind_executor(strand_, [self = shared_from_this()](boost::system::error_code ec) {
                         if (ec) return self->finish(ec == asio::error::operation_aborted ? "" : ec.message(), false);
                         self->receive();
                       }));
  }

  void receive() {
    if (closed_) return;
    const bool in_header = header_received_ < vu::kHeaderSize;
    iovec iov{};
    if (in_header) {
      iov.iov_base = header_bytes_.data() + header_received_;
      iov.iov_len = vu::kHeaderSize - header_received_;
    } else {
      iov.iov_base = incoming_.payload.data() + payload_received_;
      iov.iov_len = incoming_.payload.size() - payload_received_;
    }
    alignas(cmsghdr) std::array<char, CMSG_SPACE(sizeof(int) * vu::kMaxFds)> control{};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    const ssize_t n = ::recvmsg(socket_.native_handle(), &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    if (n > 0) {
      for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        const std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (std::size_t i = 0; i < count; ++i) {
          int fd;
          std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
          incoming_.fds.emplace_back(fd);
        }
      }
      if ((msg.msg_flags & MSG_CTRUNC) != 0)
        return finish(fmt::format("a message came with more than {} file descriptors", vu::kMaxFds), true);
    }
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return wait_readable();
      return finish(std::strerror(errno), false);
    }
    if (n == 0) {
      if (header_received_ > 0 || payload_received_ > 0)
        log_->warn("vhost-user front-end {}: message truncated by the connection closing", id_);
      return finish("", false);
    }
    if (in_header) {
      header_received_ += static_cast<std::size_t>(n);
      if (header_received_ < vu::kHeaderSize) return wait_readable();
      try {
        incoming_.header = vu::decode_header(header_bytes_.data(), header_bytes_.size());
      } catch (const vu::MessageError& e) {
        return finish(e.what(), true);
      }
      incoming_.payload.resize(incoming_.header.size);
      payload_received_ = 0;
    } else {
      payload_received_ += static_cast<std::size_t>(n);
    }
    if (payload_received_ < incoming_.payload.size()) return receive();
    Message message = std::move(incoming_);
    incoming_ = Message{};
    header_received_ = 0;
    payload_received_ = 0;
    if (busy_) {
      // Wait for the request in flight: no message changes the ring under it.
      pending_ = std::move(message);
      return;
    }
    if (handle(message)) wait_readable();
  }

  // ---- Handling ----------------------------------------------------------------------------

  // Returns false when the connection was closed.
  bool handle(Message& m) {
    const std::uint32_t request = m.header.request;
    log_->debug("vhost-user front-end {}: {}", id_, vu::request_name(request));
    vu::Payload payload;
    try {
      payload = vu::decode_payload(request, m.payload.data(), m.payload.size(), m.fds.size());
    } catch (const vu::MessageError& e) {
      if (has_natural_reply(request)) {
        finish(std::string(e.what()) + " (the front-end expects a reply)", true);
        return false;
      }
      log_->warn("vhost-user front-end {}: refused: {}", id_, e.what());
      return acknowledge(m.header, false);
    }
    std::optional<std::string> refusal;
    try {
      refusal = apply(m, payload);
    } catch (const std::exception& e) {
      refusal = e.what();
    }
    if (closed_) return false;
    if (refusal && !refusal->empty())
      log_->warn("vhost-user front-end {}: {} refused: {}", id_, vu::request_name(request), *refusal);
    if (has_natural_reply(request)) return true;  // apply() replied
    return acknowledge(m.header, !refusal);
  }

  // Carries out one decoded message; returns a refusal reason, or nothing on success. Requests
  // with a natural reply send it here.
  std::optional<std::string> apply(Message& m, const vu::Payload& payload) {
    const std::uint32_t request = m.header.request;
    switch (static_cast<vu::Request>(request)) {
      case vu::Request::get_features:
        return reply_u64(request, kOfferedFeatures);
      case vu::Request::set_features: {
        const std::uint64_t value = std::get<vu::U64Payload>(payload).value;
        if ((value & ~kOfferedFeatures) != 0) return fmt::format("features {:#x} were not offered", value & ~kOfferedFeatures);
        features_ = value;
        return std::nullopt;
      }
      case vu::Request::get_protocol_features:
        return reply_u64(request, kOfferedProtocolFeatures);
      case vu::Request::set_protocol_features: {
        const std::uint64_t value = std::get<vu::U64Payload>(payload).value;
        if ((value & ~kOfferedProtocolFeatures) != 0)
          return fmt::format("protocol features {:#x} were not offered", value & ~kOfferedProtocolFeatures);
        protocol_features_ = value;
        return std::nullopt;
      }
      case vu::Request::set_owner:
        return std::nullopt;
      case vu::Request::reset_owner:
      case vu::Request::reset_device:
        reset_device();
        return std::nullopt;
      case vu::Request::get_queue_num:
        return reply_u64(request, 1);
      case vu::Request::get_max_mem_slots:
        return reply_u64(request, vu::kMaxMemoryRegions);
      case vu::Request::get_status:
        return reply_u64(request, status_);
      case vu::Request::set_status:
        status_ = static_cast<std::uint8_t>(std::get<vu::U64Payload>(payload).value & 0xFF);
        return std::nullopt;
      case vu::Request::set_mem_table: {
        const auto& table = std::get<vu::MemoryTable>(payload);
        std::vector<GuestMemory::Region> regions;
        for (std::size_t i = 0; i < table.regions.size(); ++i) regions.push_back(map(table.regions[i], m.fds[i].get()));
        set_memory(std::make_shared<const GuestMemory>(std::move(regions)));
        return std::nullopt;
      }
      case vu::Request::add_mem_reg: {
        const auto& r = std::get<vu::SingleMemoryRegion>(payload).region;
        const GuestMemory current = memory_ ? *memory_ : GuestMemory{};
        if (current.regions().size() >= vu::kMaxMemoryRegions)
          return fmt::format("all {} memory slots are in use", vu::kMaxMemoryRegions);
        set_memory(std::make_shared<const GuestMemory>(current.with(map(r, m.fds[0].get()))));
        return std::nullopt;
      }
      case vu::Request::rem_mem_reg: {
        const auto& r = std::get<vu::SingleMemoryRegion>(payload).region;
        if (!memory_) return std::string("no memory table to remove a region from");
        set_memory(std::make_shared<const GuestMemory>(memory_->without(r.guest_address, r.size)));
        return std::nullopt;
      }
      case vu::Request::set_vring_num: {
        const auto& s = std::get<vu::VringState>(payload);
        if (auto bad = check_index(s.index)) return bad;
        if (queue_) return std::string("the ring is running");
        if (s.num == 0 || s.num > vring::kMaxSize || (s.num & (s.num - 1)) != 0)
          return fmt::format("queue size {} is not a power of two from 1 to 32768", s.num);
        ring_size_ = s.num;
        return std::nullopt;
      }
      case vu::Request::set_vring_addr: {
        const auto& a = std::get<vu::VringAddress>(payload);
        if (auto bad = check_index(a.index)) return bad;
        ring_address_ = a;
        if (queue_) rebuild_queue();
        else maybe_start();
        return std::nullopt;
      }
      case vu::Request::set_vring_base: {
        const auto& s = std::get<vu::VringState>(payload);
        if (auto bad = check_index(s.index)) return bad;
        if (queue_) return std::string("the ring is running");
        if (s.num > 0xFFFF) return fmt::format("ring base {} is not a 16-bit index", s.num);
        ring_base_ = static_cast<std::uint16_t>(s.num);
        return std::nullopt;
      }
      case vu::Request::get_vring_base: {
        const auto& s = std::get<vu::VringState>(payload);
        if (auto bad = check_index(s.index)) {
          finish(*bad + " (GET_VRING_BASE expects a reply)", true);
          return std::nullopt;
        }
        stop_ring();
        send(vu::encode_reply(request, vu::VringState{0, ring_base_}));
        return std::nullopt;
      }
      case vu::Request::set_vring_kick: {
        const auto& f = std::get<vu::VringFile>(payload);
        if (auto bad = check_index(f.index)) return bad;
        if (!f.has_fd) return std::string("polling without a kick eventfd is not supported");
        set_kick(std::move(m.fds[0]));
        maybe_start();
        return std::nullopt;
      }
      case vu::Request::set_vring_call: {
        const auto& f = std::get<vu::VringFile>(payload);
        if (auto bad = check_index(f.index)) return bad;
        call_ = f.has_fd ? std::move(m.fds[0]) : UniqueFd{};
        return std::nullopt;
      }
      case vu::Request::set_vring_err: {
        const auto& f = std::get<vu::VringFile>(payload);
        if (auto bad = check_index(f.index)) return bad;
        err_ = f.has_fd ? std::move(m.fds[0]) : UniqueFd{};
        return std::nullopt;
      }
      case vu::Request::set_vring_enable: {
        const auto& s = std::get<vu::VringState>(payload);
        if (auto bad = check_index(s.index)) return bad;
        if (s.num > 1) return fmt::format("enable value {}", s.num);
        ring_enabled_ = s.num == 1;
        if (ring_enabled_) {
          maybe_start();
          process_ring();
        }
        return std::nullopt;
      }
      case vu::Request::get_config: {
        const auto& c = std::get<vu::ConfigSpace>(payload);
        const auto config = backend_.device_.config().bytes();
        vu::ConfigSpace out{c.offset, c.flags, {}};
        if (c.offset <= config.size() && c.bytes.size() <= config.size() - c.offset) {
          out.bytes.assign(config.begin() + c.offset, config.begin() + c.offset + c.bytes.size());
        } else {
          log_->warn("vhost-user front-end {}: GET_CONFIG of {} bytes at {}: the config space has {} bytes", id_,
                     c.bytes.size(), c.offset, config.size());
        }
        send(vu::encode_reply(request, out));
        return std::nullopt;
      }
      case vu::Request::set_config:
        return std::string("the virtio-rpmb config space is read-only");
      default:
        return std::string("not supported by this back-end");
    }
  }

  std::optional<std::string> check_index(std::uint32_t index) const {
    if (index != 0) return fmt::format("virtqueue {} (virtio-rpmb has one, the requestq)", index);
    return std::nullopt;
  }

  GuestMemory::Region map(const vu::MemoryRegion& r, int fd) {
    struct stat st {};
    if (::fstat(fd, &st) != 0) throw GuestMemoryError(std::string("memory region fd: ") + std::strerror(errno));
    if (S_ISREG(st.st_mode) && static_cast<std::uint64_t>(st.st_size) < r.mmap_offset + r.size)
      throw GuestMemoryError(fmt::format("memory region of {} bytes at offset {} in a file of {} bytes", r.size,
                                         r.mmap_offset, st.st_size));
    return GuestMemory::map_file(fd, r.guest_address, r.size, r.user_address, r.mmap_offset);
  }

  // ---- Replies -------------------------------------------------------------------------

  std::optional<std::string> reply_u64(std::uint32_t request, std::uint64_t value) {
    send(vu::encode_reply(request, vu::U64Payload{value}));
    return std::nullopt;
  }

  bool acknowledge(const vu::Header& header, bool ok) {
    if ((protocol_features_ & vu::protocol_feature::kReplyAck) != 0 && header.need_reply())
      send(vu::encode_reply(header.request, vu::U64Payload{ok ? 0u : 1u}));
    return !closed_;
  }

  // Replies are a few hundred bytes at most and the front-end waits for each: a front-end that
  // does not read them (the socket buffer full) is disconnected rather than buffered for.
  void send(const std::vector<std::uint8_t>& bytes) {
    if (closed_) return;
    const ssize_t n = ::send(socket_.native_handle(), bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n != static_cast<ssize_t>(bytes.size()))
      finish(n < 0 ? std::string("reply: ") + std::strerror(errno) : std::string("reply: the front-end does not read"), false);
  }

  // ---- The ring ------------------------------------------------------------------------

  bool ring_enabled() const {
    return (features_ & vu::feature::kProtocolFeatures) == 0 ? true : ring_enabled_;
  }

  void set_memory(std::shared_ptr<const GuestMemory> memory) {
    memory_ = std::move(memory);
    if (queue_) rebuild_queue();
    else maybe_start();
  }

  void set_kick(UniqueFd fd) {
    ++kick_generation_;
    kick_.reset();
    kick_.emplace(backend_.io_, fd.release());
    if (queue_) arm_kick();
  }

  void maybe_start() {
    if (queue_ || ring_size_ == 0 || !ring_address_ || !memory_ || !kick_ || !ring_enabled()) return;
    rebuild_queue();
    if (queue_) {
      log_->debug("vhost-user front-end {}: requestq started ({} entries, at {})", id_, ring_size_, ring_base_);
      arm_kick();
      process_ring();
    }
  }

  void rebuild_queue() {
    const std::uint16_t next = queue_ ? queue_->next_available() : ring_base_;
    queue_.reset();
    ring_broken_ = false;
    try {
      queue_.emplace(memory_, ring_size_,
                     SplitVirtqueue::Addresses{ring_address_->descriptor, ring_address_->available, ring_address_->used},
                     true, next, (features_ & vu::feature::kRingIndirectDesc) != 0);
    } catch (const VirtqueueError& e) {
      ring_base_ = next;
      log_->warn("vhost-user front-end {}: the requestq cannot start: {}", id_, e.what());
    }
  }

  void stop_ring() {
    if (queue_) ring_base_ = queue_->next_available();
    queue_.reset();
    ring_broken_ = false;
    ++kick_generation_;
    kick_.reset();  // the kick fd is the front-end's again only through a new SET_VRING_KICK
  }

  void reset_device() {
    stop_ring();
    ring_size_ = 0;
    ring_address_.reset();
    ring_base_ = 0;
    ring_enabled_ = false;
    call_.reset();
    err_.reset();
    features_ = 0;
    status_ = 0;
  }

  void arm_kick() {
    if (!kick_ || closed_) return;
    const std::uint64_t generation = kick_generation_;
    kick_->async_wait(asio::posix::stream_descriptor::wait_read,
                      asio::bind_executor(strand_, [self = shared_from_this(), generation](boost::system::error_code ec) {
                        if (ec || self->closed_ || generation != self->kick_generation_ || !self->kick_) return;
                        std::uint64_t count = 0;
                        const ssize_t n = ::read(self->kick_->native_handle(), &count, sizeof(count));
                        if (n == 0) {
                          self->log_->warn("vhost-user front-end {}: the kick fd was closed", self->id_);
                          return;
                        }
                        self->process_ring();
                        self->arm_kick();
                      }));
  }

  void process_ring() {
    while (queue_ && !busy_ && !ring_broken_ && ring_enabled() && !closed_) {
      std::optional<DescriptorChain> chain;
      try {
        chain = queue_->pop();
      } catch (const VirtqueueError& e) {
        ring_broken_ = true;
        log_->error("vhost-user front-end {}: requestq stopped until the device is reset: {}", id_, e.what());
        signal(err_);
        return;
      }
      if (!chain) return;
      busy_ = true;
      const std::uint16_t head = chain->head;
      backend_.device_.serve(std::move(*chain), [self = shared_from_this(), head](VirtioRpmbOutcome outcome) {
        asio::post(self->strand_, [self, head, outcome = std::move(outcome)] { self->on_served(head, outcome); });
      });
    }
  }

  void on_served(std::uint16_t head, const VirtioRpmbOutcome& outcome) {
    busy_ = false;
    {
      std::lock_guard<std::mutex> lock(backend_.mutex_);
      ++backend_.chains_served_;
    }
    if (!outcome.error.empty()) {
      log_->warn("vhost-user front-end {}: request (chain {}): {}", id_, head, outcome.error);
    } else if (outcome.simulated_ps) {
      log_->debug("vhost-user front-end {}: chain {} done: {} bytes, {:.3f} us simulated", id_, head, outcome.written,
                  static_cast<double>(*outcome.simulated_ps) / 1e6);
    } else {
      log_->debug("vhost-user front-end {}: chain {} done: {} bytes", id_, head, outcome.written);
    }
    if (closed_) return;
    if (queue_) {
      queue_->push(head, outcome.written);
      if (queue_->wants_interrupt()) signal(call_);
    }
    if (pending_) {
      Message message = std::move(*pending_);
      pending_.reset();
      if (!handle(message)) return;
      wait_readable();
    }
    process_ring();
  }

  static void signal(const UniqueFd& fd) {
    if (!fd.valid()) return;
    const std::uint64_t one = 1;
    [[maybe_unused]] const ssize_t n = ::write(fd.get(), &one, sizeof(one));
  }

  // ---- The end -------------------------------------------------------------------------

  // `fatal`: the front-end broke the protocol (logged as a warning); else an ordinary end.
  void finish(const std::string& why, bool fatal) {
    if (closed_) return;
    closed_ = true;
    if (fatal) log_->warn("vhost-user front-end {}: {}; closing the connection", id_, why);
    else if (!why.empty() && why != "closed by the daemon") log_->info("vhost-user front-end {}: {}", id_, why);
    log_->info("vhost-user front-end {} disconnected", id_);
    // Forgotten before the socket closes: a front-end that sees the end may connect again at once.
    backend_.forget(this);
    boost::system::error_code ignored;
    socket_.shutdown(stream_protocol::socket::shutdown_both, ignored);
    socket_.close(ignored);
    ++kick_generation_;
    kick_.reset();
    queue_.reset();
    pending_.reset();
  }

  VhostUserBackend& backend_;
  std::shared_ptr<spdlog::logger> log_;
  stream_protocol::socket socket_;
  asio::strand<asio::io_context::executor_type> strand_;
  std::uint64_t id_;
  bool closed_ = false;

  std::array<std::uint8_t, vu::kHeaderSize> header_bytes_{};
  std::size_t header_received_ = 0;
  std::size_t payload_received_ = 0;
  Message incoming_;
  std::optional<Message> pending_;

  std::uint64_t features_ = 0;
  std::uint64_t protocol_features_ = 0;
  std::uint8_t status_ = 0;
  std::shared_ptr<const GuestMemory> memory_;

  std::uint32_t ring_size_ = 0;
  std::optional<vu::VringAddress> ring_address_;
  std::uint16_t ring_base_ = 0;
  bool ring_enabled_ = false;
  bool ring_broken_ = false;
  std::optional<SplitVirtqueue> queue_;
  std::optional<asio::posix::stream_descriptor> kick_;
  std::uint64_t kick_generation_ = 0;
  UniqueFd call_;
  UniqueFd err_;
  bool busy_ = false;
};

VhostUserBackend::VhostUserBackend(asio::io_context& io, VirtioRpmbDevice& device, std::shared_ptr<spdlog::logger> log,
                                   std::string socket_path)
    : io_(io), device_(device), log_(std::move(log)), path_(std::move(socket_path)), acceptor_(io) {}

VhostUserBackend::~VhostUserBackend() { stop(); }

void VhostUserBackend::start() {
  listen_on_unix_socket(acceptor_, path_);
  std::lock_guard<std::mutex> lock(mutex_);
  accept_next();
}

void VhostUserBackend::accept_next() {
  acceptor_.async_accept([this](boost::system::error_code ec, stream_protocol::socket socket) {
    std::shared_ptr<VhostUserSession> session;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stopped_) return;
      if (ec) {
        if (ec != asio::error::operation_aborted) log_->error("accept on {}: {}", path_, ec.message());
        if (acceptor_.is_open()) accept_next();
        return;
      }
      if (session_ && waiting_.size() >= kMaxWaiting) {
        log_->warn("refusing a vhost-user front-end: one is connected and {} wait already (a device has one owner)",
                   waiting_.size());
      } else if (session_) {
        log_->info("vhost-user front-end {} waits until the connected one is done (a device has one owner)", next_id_);
        waiting_.emplace_back(next_id_++, std::move(socket));
      } else {
        session = std::make_shared<VhostUserSession>(*this, std::move(socket), next_id_++);
        session_ = session;
        log_->info("vhost-user front-end {} connected", next_id_ - 1);
      }
      accept_next();
    }
    if (session) session->start();
  });
}

void VhostUserBackend::forget(const VhostUserSession* session) {
  std::shared_ptr<VhostUserSession> next;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (session_.get() != session) return;
    session_.reset();
    if (stopped_ || waiting_.empty()) return;
    auto [id, socket] = std::move(waiting_.front());
    waiting_.pop_front();
    next = std::make_shared<VhostUserSession>(*this, std::move(socket), id);
    session_ = next;
    log_->info("vhost-user front-end {} connected", id);
  }
  next->start();
}

bool VhostUserBackend::front_end_connected() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return session_ != nullptr;
}

std::uint64_t VhostUserBackend::chains_served() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return chains_served_;
}

void VhostUserBackend::stop() {
  std::shared_ptr<VhostUserSession> session;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopped_) return;
    stopped_ = true;
    session = session_;
    waiting_.clear();  // closes their sockets
    boost::system::error_code ignored;
    if (acceptor_.is_open()) {
      acceptor_.close(ignored);
      remove_socket_file(path_);
    }
  }
  if (session) session->close();
}

}  // namespace emmcsim::transport
