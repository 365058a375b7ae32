// VhostUserConnection, BackendChannel and CloseReason (see vhost_user_connection.hpp).
#include "vhost_user_connection.hpp"

#include <fmt/format.h>
#include <sys/socket.h>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/post.hpp>
#include <cerrno>
#include <cstring>

namespace emmcsim::transport {

namespace asio = boost::asio;
using stream_protocol = asio::local::stream_protocol;
namespace vu = vhost_user;

const char* describe(CloseReason reason) {
  switch (reason) {
    case CloseReason::front_end_closed: return "the front-end closed the connection";
    case CloseReason::truncated_message: return "a message cut short by the end of the connection";
    case CloseReason::socket_error: return "the socket failed";
    case CloseReason::front_end_not_reading: return "the front-end does not read its replies";
    case CloseReason::daemon_stopped: return "the daemon stopped";
    case CloseReason::broken_framing: return "broken framing";
    case CloseReason::too_many_descriptors: return "too many file descriptors";
    case CloseReason::unanswerable_request: return "a request that expects a reply cannot be answered";
  }
  return "closed";
}

bool is_protocol_violation(CloseReason reason) {
  switch (reason) {
    case CloseReason::truncated_message:
    case CloseReason::broken_framing:
    case CloseReason::too_many_descriptors:
    case CloseReason::unanswerable_request: return true;
    case CloseReason::front_end_closed:
    case CloseReason::socket_error:
    case CloseReason::front_end_not_reading:
    case CloseReason::daemon_stopped: return false;
  }
  return false;
}

// ---- VhostUserConnection ----------------------------------------------------------------------

VhostUserConnection::VhostUserConnection(stream_protocol::socket socket, VhostUserStrand strand)
    : socket_(std::move(socket)), strand_(std::move(strand)) {}

void VhostUserConnection::read(Received done) {
  done_ = std::move(done);
  if (closed_) return deliver(ConnectionEnd{CloseReason::daemon_stopped, {}});
  // Through the reactor even when a message is buffered already: the handler of one message asks
  // for the next, and a front-end's burst must not become a recursion.
  wait_readable();
}

void VhostUserConnection::close() {
  if (closed_) return;
  closed_ = true;
  boost::system::error_code ignored;
  socket_.shutdown(stream_protocol::socket::shutdown_both, ignored);
  socket_.close(ignored);
}

void VhostUserConnection::deliver(std::variant<VhostUserRequestMessage, ConnectionEnd> result) {
  Received done = std::move(done_);
  done_ = nullptr;
  if (done) done(std::move(result));
}

void VhostUserConnection::wait_readable() {
  socket_.async_wait(stream_protocol::socket::wait_read,
                     asio::bind_executor(strand_, [this](boost::system::error_code ec) {
                       if (!done_) return;
                       if (ec == asio::error::operation_aborted || closed_)
                         return deliver(ConnectionEnd{CloseReason::daemon_stopped, {}});
                       if (ec) return deliver(ConnectionEnd{CloseReason::socket_error, ec.message()});
                       receive();
                     }));
}

void VhostUserConnection::receive() {
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
      return deliver(ConnectionEnd{CloseReason::too_many_descriptors,
                                   fmt::format("a message came with more than {} file descriptors", vu::kMaxFds)});
  }
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return wait_readable();
    return deliver(ConnectionEnd{CloseReason::socket_error, std::strerror(errno)});
  }
  if (n == 0) {
    if (header_received_ > 0 || payload_received_ > 0)
      return deliver(ConnectionEnd{CloseReason::truncated_message, {}});
    return deliver(ConnectionEnd{CloseReason::front_end_closed, {}});
  }
  if (in_header) {
    header_received_ += static_cast<std::size_t>(n);
    if (header_received_ < vu::kHeaderSize) return wait_readable();
    try {
      incoming_.header = vu::decode_header(header_bytes_.data(), header_bytes_.size());
    } catch (const vu::MessageError& e) {
      return deliver(ConnectionEnd{CloseReason::broken_framing, e.what()});
    }
    incoming_.payload.resize(incoming_.header.size);
    payload_received_ = 0;
  } else {
    payload_received_ += static_cast<std::size_t>(n);
  }
  if (payload_received_ < incoming_.payload.size()) return receive();
  VhostUserRequestMessage message = std::move(incoming_);
  incoming_ = VhostUserRequestMessage{};
  header_received_ = 0;
  payload_received_ = 0;
  deliver(std::move(message));
}

// Replies are a few hundred bytes at most and the front-end waits for each: a front-end that
// does not read them (the socket buffer full) is disconnected rather than buffered for.
std::optional<ConnectionEnd> VhostUserConnection::send(const std::vector<std::uint8_t>& bytes) {
  if (closed_) return ConnectionEnd{CloseReason::daemon_stopped, {}};
  const ssize_t n = ::send(socket_.native_handle(), bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  if (n == static_cast<ssize_t>(bytes.size())) return std::nullopt;
  if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
    return ConnectionEnd{CloseReason::socket_error, std::string("reply: ") + std::strerror(errno)};
  return ConnectionEnd{CloseReason::front_end_not_reading, {}};
}

// ---- BackendChannel ---------------------------------------------------------------------------

BackendChannel::BackendChannel(asio::io_context& io, VhostUserStrand strand, UniqueFd fd,
                               std::shared_ptr<spdlog::logger> log, std::string name)
    : descriptor_(io, fd.release()), strand_(std::move(strand)), log_(std::move(log)), name_(std::move(name)) {
  boost::system::error_code ec;
  descriptor_.non_blocking(true, ec);
  if (ec) fail("cannot make it non-blocking: " + ec.message());
}

void BackendChannel::vring_call(std::uint32_t index) {
  queue(static_cast<std::uint32_t>(vu::BackendRequest::vring_call), vu::VringState{index, 0});
}

void BackendChannel::vring_err(std::uint32_t index) {
  queue(static_cast<std::uint32_t>(vu::BackendRequest::vring_err), vu::VringState{index, 0});
}

void BackendChannel::config_change() {
  queue(static_cast<std::uint32_t>(vu::BackendRequest::config_change_msg), vu::NoPayload{});
}

void BackendChannel::close() {
  broken_ = true;
  outgoing_.clear();
  boost::system::error_code ignored;
  descriptor_.close(ignored);
}

void BackendChannel::queue(std::uint32_t request, const vu::Payload& payload) {
  if (broken_) return;
  std::vector<std::uint8_t> message = vu::encode_message(request, vu::kVersion, payload);
  // The first message may be half written already; the others wait whole, and one waiting is
  // as good as two.
  for (std::size_t i = 1; i < outgoing_.size(); ++i)
    if (outgoing_[i] == message) return;
  if (outgoing_.size() == 1 && written_ == 0 && outgoing_.front() == message) return;
  outgoing_.push_back(std::move(message));
  if (!waiting_) flush();
}

void BackendChannel::flush() {
  while (!outgoing_.empty() && !broken_) {
    const std::vector<std::uint8_t>& front = outgoing_.front();
    // write(2), not send(2): whatever kind of descriptor the front-end gave.
    const ssize_t n = ::write(descriptor_.native_handle(), front.data() + written_, front.size() - written_);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      waiting_ = true;
      descriptor_.async_wait(asio::posix::stream_descriptor::wait_write,
                             asio::bind_executor(strand_, [self = shared_from_this()](boost::system::error_code ec) {
                               self->waiting_ = false;
                               if (ec || self->broken_) return;
                               self->flush();
                             }));
      return;
    }
    if (n <= 0) return fail(n < 0 ? std::strerror(errno) : "nothing written");
    written_ += static_cast<std::size_t>(n);
    if (written_ == front.size()) {
      outgoing_.pop_front();
      written_ = 0;
    }
  }
}

void BackendChannel::fail(const std::string& why) {
  if (broken_) return;
  log_->warn("{}: the back-end request channel failed ({}); notifications through it are dropped", name_, why);
  close();
}

}  // namespace emmcsim::transport
