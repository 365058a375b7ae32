// VhostUserBackend: serves a virtio device (VhostUserDevice — virtio-rpmb, or the PCI function
// User-Mode Linux reaches through virtio-pcidev) to a vhost-user front-end: a VMM such as QEMU,
// User-Mode Linux's virtio_uml, or the tests' VhostUserFrontend (docs/virtio-rpmb.md).
//
// The socket is set up as every daemon socket is (unix_socket.hpp). One front-end is served at a
// time — vhost-user has one owner per device —: a front-end that connects meanwhile (a VMM
// restarting before the back-end noticed the old connection end, say) waits its turn, up to
// kMaxWaiting of them; more are closed with a log line.
//
// Per connection (a session on one Boost.Asio strand; transport/src/vhost_user_session.hpp):
//   connection  messages read with their SCM_RIGHTS descriptors and decoded
//               (vhost_user_message.hpp); replies (GET_*), acknowledgements (REPLY_ACK with
//               need_reply); the back-end request channel (SET_BACKEND_REQ_FD) for in-band calls
//   requests    one handler per front-end request
//   rings       the device's queues, each started when it has a size, addresses, memory and a
//               kick — an eventfd, or in-band VHOST_USER_VRING_KICK messages — and is enabled
//               (at once without VHOST_USER_F_PROTOCOL_FEATURES, else by SET_VRING_ENABLE),
//               stopped by GET_VRING_BASE, which returns where it stopped
//   memory      SET_MEM_TABLE / ADD_MEM_REG / REM_MEM_REG map and unmap GuestMemory regions
//   the device  hears of kicks and pops and completes chains (vhost_user_device.hpp); a used
//               buffer is signalled on the call eventfd, or as VHOST_USER_BACKEND_VRING_CALL
//               when in-band notifications were negotiated
// While a chain is in flight no further message is read (none changes a ring or the memory
// under a request) and an in-band kick is acknowledged only when the device has answered.
//
// Offered: the device's virtio features and VHOST_USER_F_PROTOCOL_FEATURES; the protocol
// features the device wants of MQ, REPLY_ACK, BACKEND_REQ (SLAVE_REQ), CONFIG, RESET_DEVICE,
// INBAND_NOTIFICATIONS, CONFIGURE_MEM_SLOTS and STATUS.
//
// Bad input: a message that does not decode is refused (a failure reply-ack where one was asked
// for) and the stream goes on; a broken framing, or a bad request that expects a reply, closes
// the connection; a chain that breaks a virtqueue rule is returned unused; a broken ring stops
// until the front-end sets it up again. One log line each; the device never sees a request that
// did not decode.
#pragma once

#include <spdlog/logger.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "emmcsim/transport/unix_socket.hpp"
#include "emmcsim/transport/vhost_user_device.hpp"

namespace emmcsim::transport {

class VhostUserSession;

class VhostUserBackend {
 public:
  static constexpr std::size_t kMaxWaiting = 4;

  // `device` must outlive the back-end. Throws std::invalid_argument for a device the back-end
  // cannot serve (no queues or more than 256, a max queue size that is no power of two up to
  // 32768, VIRTIO_RING_F_EVENT_IDX or VIRTIO_F_RING_PACKED offered).
  VhostUserBackend(boost::asio::io_context& io, VhostUserDevice& device, std::shared_ptr<spdlog::logger> log,
                   std::string socket_path);
  ~VhostUserBackend();

  // Creates the socket and starts accepting. Throws SocketSetupError.
  void start();
  // Stops accepting, closes the connection and removes the socket file. Idempotent.
  void stop();

  const std::string& socket_path() const { return listener_.path(); }
  bool front_end_connected() const;
  // Chains returned to the driver since start (answered, refused or device-initiated).
  std::uint64_t chains_served() const;

  // Before start(): `notified` hears of each notification (a call: on the call eventfd or
  // in-band) sent to the driver for a used buffer of `queue`, on the connection's strand, just
  // before it is sent (so what the observer posts precedes anything the driver does about it). The time-travel calendar
  // counts them (time_travel_calendar.hpp).
  void on_driver_notified(std::function<void(std::size_t queue)> notified) { notified_ = std::move(notified); }

  // What the back-end offers: the device's features and VHOST_USER_F_PROTOCOL_FEATURES; the
  // device's protocol features that the back-end implements.
  std::uint64_t offered_features() const { return offered_features_; }
  std::uint64_t offered_protocol_features() const { return offered_protocol_features_; }

 private:
  friend class VhostUserSession;
  void accepted(boost::asio::local::stream_protocol::socket socket);
  void forget(const VhostUserSession* session);
  void count_chain();
  void driver_notified(std::size_t queue) const {
    if (notified_) notified_(queue);
  }

  boost::asio::io_context& io_;
  VhostUserDevice& device_;
  std::shared_ptr<spdlog::logger> log_;
  std::uint64_t offered_features_;
  std::uint64_t offered_protocol_features_;
  UnixSocketListener listener_;
  mutable std::mutex mutex_;  // guards session_, waiting_, stopped_, next_id_, chains_served_
  std::shared_ptr<VhostUserSession> session_;
  std::deque<std::pair<std::uint64_t, boost::asio::local::stream_protocol::socket>> waiting_;
  std::uint64_t next_id_ = 1;
  std::uint64_t chains_served_ = 0;
  bool stopped_ = false;
  std::function<void(std::size_t)> notified_;
};

}  // namespace emmcsim::transport
