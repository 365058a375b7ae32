// The connection of one vhost-user front-end, below the requests (internal to transport/src):
//
//   VhostUserConnection  the Unix socket: reads one whole message at a time — 12-byte header,
//                        payload, the SCM_RIGHTS descriptors that came with it — checking the
//                        framing (vhost_user::decode_header), and writes replies;
//   BackendChannel       the channel the front-end gave with SET_BACKEND_REQ_FD (SET_SLAVE_REQ_FD;
//                        one end of a socketpair in QEMU and User-Mode Linux) for the back-end's own
//                        messages: VRING_CALL, VRING_ERR, CONFIG_CHANGE_MSG, sent without
//                        need_reply and never waited on (a front-end blocked on our acknowledgement
//                        of its kick cannot answer: waiting would deadlock);
//   CloseReason          why a connection ends, named once and logged once.
//
// Both run on the session's strand and never block it: replies are written at once (a front-end
// that does not read them is disconnected), back-end messages are queued and written as the
// channel takes them.
#pragma once

#include <spdlog/logger.h>

#include <array>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/strand.hpp>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "emmcsim/support/file.hpp"
#include "emmcsim/transport/vhost_user_message.hpp"

namespace emmcsim::transport {

using support::UniqueFd;
using VhostUserStrand = boost::asio::strand<boost::asio::io_context::executor_type>;

enum class CloseReason {
  front_end_closed,       // the front-end closed the connection (EOF)
  truncated_message,      // … in the middle of a message
  socket_error,           // reading or writing the socket failed
  front_end_not_reading,  // a reply did not fit: the front-end does not read its replies
  daemon_stopped,         // VhostUserBackend::stop()
  broken_framing,         // a header that does not decode: nothing after it can be trusted
  too_many_descriptors,   // more descriptors than any message carries
  unanswerable_request,   // a bad request that expects a reply: the front-end would wait forever
};
// Words for the log line ("the front-end closed the connection").
const char* describe(CloseReason reason);
// The front-end broke the protocol (logged as a warning); otherwise the end is ordinary.
bool is_protocol_violation(CloseReason reason);

struct VhostUserRequestMessage {
  vhost_user::Header header;
  std::vector<std::uint8_t> payload;
  std::vector<UniqueFd> fds;
};

struct ConnectionEnd {
  CloseReason reason;
  std::string detail;  // what exactly (the decoder's words, the errno text), may be empty
};

class VhostUserConnection {
 public:
  using Received = std::function<void(std::variant<VhostUserRequestMessage, ConnectionEnd>)>;

  VhostUserConnection(boost::asio::local::stream_protocol::socket socket, VhostUserStrand strand);

  // Reads the next whole message and calls `done` on the strand with it, or with why the
  // connection cannot go on. One read at a time; the caller asks for the next when it is ready
  // for it (which is how messages wait while a request is in flight).
  void read(Received done);
  // Writes a reply at once; nothing on success, else why the connection must end.
  std::optional<ConnectionEnd> send(const std::vector<std::uint8_t>& bytes);
  // Shuts the socket down (a pending read completes with nothing).
  void close();

 private:
  void wait_readable();
  void receive();
  void deliver(std::variant<VhostUserRequestMessage, ConnectionEnd> result);

  boost::asio::local::stream_protocol::socket socket_;
  VhostUserStrand strand_;
  Received done_;
  bool closed_ = false;
  std::array<std::uint8_t, vhost_user::kHeaderSize> header_bytes_{};
  std::size_t header_received_ = 0;
  std::size_t payload_received_ = 0;
  VhostUserRequestMessage incoming_;
};

// Held by a shared_ptr: a write waiting for room keeps the channel alive.
class BackendChannel : public std::enable_shared_from_this<BackendChannel> {
 public:
  // `fd` is set non-blocking (the front-end gave it to us and keeps only its other end). A
  // failure is logged once, as `name`: ….
  BackendChannel(boost::asio::io_context& io, VhostUserStrand strand, UniqueFd fd, std::shared_ptr<spdlog::logger> log,
                 std::string name);
  BackendChannel(const BackendChannel&) = delete;
  BackendChannel& operator=(const BackendChannel&) = delete;

  // VHOST_USER_BACKEND_VRING_CALL / _VRING_ERR {index, 0}, _CONFIG_CHANGE_MSG. A message already
  // waiting to be written is not queued again (notifications add up, as on an eventfd).
  void vring_call(std::uint32_t index);
  void vring_err(std::uint32_t index);
  void config_change();
  // Closes the descriptor; what is still queued is dropped.
  void close();
  // The channel failed (the front-end closed its end, say): messages are dropped from then on.
  bool broken() const { return broken_; }

 private:
  void queue(std::uint32_t request, const vhost_user::Payload& payload);
  void flush();
  void fail(const std::string& why);

  boost::asio::posix::stream_descriptor descriptor_;
  VhostUserStrand strand_;
  std::deque<std::vector<std::uint8_t>> outgoing_;
  std::size_t written_ = 0;  // of outgoing_.front()
  bool waiting_ = false;
  bool broken_ = false;
  std::shared_ptr<spdlog::logger> log_;
  std::string name_;
};

}  // namespace emmcsim::transport
