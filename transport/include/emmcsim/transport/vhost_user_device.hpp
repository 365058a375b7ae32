// VhostUserDevice: a virtio device that VhostUserBackend serves to a vhost-user front-end (QEMU,
// User-Mode Linux's virtio_uml, the tests' VhostUserFrontend). The back-end owns the protocol —
// the connection, the messages, the rings' set-up, guest memory, notifications — and asks the
// device only what a virtio device is: its ID, features, config space and queues, and what to do
// when the driver makes buffers available. In the spirit of rust-vmm's `VhostUserBackend` trait.
//
//   identity        device_id(), device_features() (virtio bits: VERSION_1, INDIRECT_DESC, the
//                   device's own), protocol_features() (the vhost-user features the device wants;
//                   the back-end offers those it implements, kSupportedProtocolFeatures),
//                   queue_count(), max_queue_size(), queue_name()
//   config space    read_config() / write_config()
//   lifecycle       start() when a front-end connects (with the handle below), queue_ready() when
//                   a ring starts or stops, reset() on RESET_OWNER / RESET_DEVICE, stop() when the
//                   front-end is gone
//   requests        queue_event(): the driver kicked that queue (an eventfd or an in-band
//                   VHOST_USER_VRING_KICK), or a chain of it was completed. The device pops the
//                   chains it is ready to serve and completes each — at once, or later from any
//                   thread through DeviceQueues::post (virtio-rpmb answers when the card did).
//                   A device may also fill a buffer the driver posted at any time, unasked (an
//                   interrupt queue): post() a function that pops and completes.
//
// Threading: every VhostUserDevice call and every function given to post() runs on the
// connection's strand, one at a time. One front-end is served at a time, so a device sees one
// start() … stop() after another, never two at once.
//
// The contract that keeps the front-end going: every chain popped is completed (at most once),
// soon. While any chain is in flight the back-end reads no further front-end message, so no
// message changes a ring or the memory under a request, and it acknowledges an in-band kick only
// when nothing is in flight any more: the answer is in guest memory before the front-end — UML
// polling for an MMIO read's reply, say — looks. A device that wants to answer later without
// holding up the front-end leaves the buffer in the ring until it has the answer (as an
// interrupt queue does).
#pragma once

#include <spdlog/logger.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "emmcsim/transport/split_virtqueue.hpp"
#include "emmcsim/transport/vhost_user_message.hpp"

namespace emmcsim::transport {

// The vhost-user protocol features VhostUserBackend implements; a device's protocol_features()
// are offered as far as they are in here.
inline constexpr std::uint64_t kSupportedProtocolFeatures =
    vhost_user::protocol_feature::kMq | vhost_user::protocol_feature::kReplyAck |
    vhost_user::protocol_feature::kBackendReq | vhost_user::protocol_feature::kConfig |
    vhost_user::protocol_feature::kResetDevice | vhost_user::protocol_feature::kInbandNotifications |
    vhost_user::protocol_feature::kConfigureMemSlots | vhost_user::protocol_feature::kStatus;

// The virtqueues of one front-end's connection, as the device uses them. Created by the back-end
// for each connection; the device may keep it (a shared_ptr, from start() or shared_from_this())
// to post() work from other threads.
class DeviceQueues : public std::enable_shared_from_this<DeviceQueues> {
 public:
  virtual ~DeviceQueues() = default;

  // ---- On the connection's strand only (in a VhostUserDevice call, or a function posted) -----

  // The next chain the driver made available on `queue`, or nothing (none available, the ring
  // not running, or an index out of range). A chain that breaks a virtqueue rule never reaches
  // the device: the back-end returns it unused with one warning and pops the next; a ring that
  // cannot be trusted at all stops with one error line. A chain handed out is in flight until
  // complete(); its buffers stay mapped as long as the chain lives.
  virtual std::optional<DescriptorChain> pop(std::size_t queue) = 0;
  // Returns a chain popped from `queue` to the driver with `written` bytes in its writable
  // buffers and notifies the driver (the call eventfd, or VHOST_USER_BACKEND_VRING_CALL with
  // in-band notifications) unless it asked for no interrupt. A head that is not in flight is
  // ignored with a warning.
  virtual void complete(std::size_t queue, std::uint16_t head, std::uint32_t written) = 0;
  // Tells the driver that the config space changed (VHOST_USER_BACKEND_CONFIG_CHANGE_MSG on the
  // back-end channel; without the channel the front-end is not told).
  virtual void config_changed() = 0;
  // Chains of `queue` popped and not completed yet.
  virtual std::size_t in_flight(std::size_t queue) const = 0;
  // The ring is started and enabled (chains can be popped from it).
  virtual bool running(std::size_t queue) const = 0;
  // The connection's logger, and its name for log lines ("vhost-user front-end 3").
  virtual spdlog::logger& log() const = 0;
  virtual const std::string& name() const = 0;

  // ---- From any thread -----------------------------------------------------------------------

  // Runs `work` on the connection's strand — or never, when the connection has ended by then.
  virtual void post(std::function<void(DeviceQueues&)> work) = 0;
};

class VhostUserDevice {
 public:
  virtual ~VhostUserDevice() = default;

  virtual std::uint32_t device_id() const = 0;
  // The virtio feature bits offered. The back-end adds VHOST_USER_F_PROTOCOL_FEATURES; it does
  // not implement VIRTIO_RING_F_EVENT_IDX or packed rings, and refuses a device that offers them.
  virtual std::uint64_t device_features() const = 0;
  // The vhost-user protocol features the device wants (of kSupportedProtocolFeatures).
  virtual std::uint64_t protocol_features() const = 0;
  virtual std::size_t queue_count() const = 0;
  // The largest queue size the device takes (a power of two, at most 32768).
  virtual std::uint32_t max_queue_size() const = 0;
  // The queue's name in log lines ("requestq").
  virtual std::string queue_name(std::size_t queue) const { return "virtqueue " + std::to_string(queue); }

  // `size` bytes of the config space from `offset`, or nothing for a range outside it.
  virtual std::optional<std::vector<std::uint8_t>> read_config(std::uint32_t offset, std::uint32_t size) const = 0;
  // Writes the config space; returns why it refuses, or nothing when written.
  virtual std::optional<std::string> write_config(std::uint32_t /*offset*/,
                                                  const std::vector<std::uint8_t>& /*bytes*/) {
    return std::string("the config space is read-only");
  }

  // A front-end connected: its queues, until stop().
  virtual void start(const std::shared_ptr<DeviceQueues>& /*queues*/) {}
  // A ring started (true) or stopped (false).
  virtual void queue_ready(DeviceQueues& /*queues*/, std::size_t /*queue*/, bool /*ready*/) {}
  // The driver kicked `queue`, a chain of it was completed, or the ring started: pop and serve.
  virtual void queue_event(DeviceQueues& queues, std::size_t queue) = 0;
  // RESET_OWNER / RESET_DEVICE: every ring is stopped and forgotten.
  virtual void reset(DeviceQueues& /*queues*/) {}
  // The front-end is gone; posted work will no longer run.
  virtual void stop() {}
};

}  // namespace emmcsim::transport
