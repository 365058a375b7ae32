// VhostUserBackend: the card's RPMB partition as a virtio-rpmb device (VirtioRpmbDevice) over
// vhost-user, so a VMM's front-end (QEMU's vhost-user-device, or the tests' own) gives a virtual
// machine the same partition the MMC-ioctl bridge serves (docs/virtio-rpmb.md).
//
// The socket is set up as every daemon socket is (unix_socket.hpp). One front-end is served at a
// time — vhost-user has one owner per device —: a front-end that connects meanwhile (a VMM
// restarting before the back-end noticed the old connection end, say) waits its turn, up to
// kMaxWaiting of them; more are closed with a log line.
// Per connection (Boost.Asio, one strand):
//   messages  read with their SCM_RIGHTS descriptors, decoded (vhost_user_message.hpp), handled,
//             replied to (GET_* always; the rest when REPLY_ACK was negotiated and need_reply set);
//   memory    SET_MEM_TABLE / ADD_MEM_REG / REM_MEM_REG map and unmap GuestMemory regions;
//   the ring  one split virtqueue (index 0), started when it has a size, addresses, memory, a kick
//             fd and is enabled (at once without VHOST_USER_F_PROTOCOL_FEATURES, else by
//             SET_VRING_ENABLE), stopped by GET_VRING_BASE, which returns where it stopped;
//   requests  each kick drains the ring one chain at a time through the device; the used
//             element is pushed when the card has answered, then the call eventfd is signalled.
// A message that changes the ring or the memory waits until the request in flight is answered.
//
// Offered: VIRTIO_F_VERSION_1, VIRTIO_RING_F_INDIRECT_DESC, VHOST_USER_F_PROTOCOL_FEATURES;
// protocol features MQ (one queue), REPLY_ACK, CONFIG, RESET_DEVICE, CONFIGURE_MEM_SLOTS, STATUS.
//
// Bad input: a message that does not decode is refused (a failure reply-ack where one was asked
// for) and the stream goes on; a broken framing, or a bad request that expects a reply, closes
// the connection; a broken ring stops the ring until the front-end resets it. One log line each;
// the card is never touched by a request that did not decode.
#pragma once

#include <spdlog/logger.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>

#include "emmcsim/transport/virtio_rpmb_device.hpp"

namespace emmcsim::transport {

class VhostUserSession;

class VhostUserBackend {
 public:
  static constexpr std::size_t kMaxWaiting = 4;

  VhostUserBackend(boost::asio::io_context& io, VirtioRpmbDevice& device, std::shared_ptr<spdlog::logger> log,
                   std::string socket_path);
  ~VhostUserBackend();

  // Creates the socket and starts accepting. Throws SocketSetupError.
  void start();
  // Stops accepting, closes the connection and removes the socket file. Idempotent.
  void stop();

  const std::string& socket_path() const { return path_; }
  bool front_end_connected() const;
  // Chains served since start (answered or refused), for tests and logs.
  std::uint64_t chains_served() const;

 private:
  friend class VhostUserSession;
  void accept_next();
  void forget(const VhostUserSession* session);

  boost::asio::io_context& io_;
  VirtioRpmbDevice& device_;
  std::shared_ptr<spdlog::logger> log_;
  std::string path_;
  boost::asio::local::stream_protocol::acceptor acceptor_;
  mutable std::mutex mutex_;  // guards acceptor_, session_, waiting_, stopped_, next_id_, chains_served_
  std::shared_ptr<VhostUserSession> session_;
  std::deque<std::pair<std::uint64_t, boost::asio::local::stream_protocol::socket>> waiting_;
  std::uint64_t next_id_ = 1;
  std::uint64_t chains_served_ = 0;
  bool stopped_ = false;
};

}  // namespace emmcsim::transport
