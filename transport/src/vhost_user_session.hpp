// VhostUserSession: one front-end's connection to VhostUserBackend (internal to transport/src).
//
//   connection   VhostUserConnection reads one message at a time; BackendChannel carries the
//                back-end's own messages (vhost_user_connection.hpp)
//   requests     one handler per front-end request, found in a table (vhost_user_requests.cpp);
//                each decodes nothing itself (the codec did), changes the session, and says
//                whether it succeeded, was refused, replied itself, or acknowledges later
//   rings        one Vring per device queue (vhost_user_vring.hpp), guest memory shared by all
//   the device   VhostUserDevice, given this session's queues as DeviceQueues (SessionQueues)
//
// Everything runs on the session's strand. The message flow: read a message, handle it, reply or
// acknowledge, read the next — but only while no chain is in flight. While one is, the next
// message waits in the socket, and an in-band kick's acknowledgement waits too, so the device's
// answers are in guest memory before the front-end hears back. The connection ends once, for one
// CloseReason, logged in one line.
#pragma once

#include <spdlog/logger.h>

#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <functional>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "emmcsim/transport/guest_memory.hpp"
#include "emmcsim/transport/vhost_user_backend.hpp"
#include "emmcsim/transport/vhost_user_device.hpp"
#include "emmcsim/transport/vhost_user_message.hpp"
#include "vhost_user_connection.hpp"
#include "vhost_user_vring.hpp"

namespace emmcsim::transport {

class SessionQueues;

class VhostUserSession : public std::enable_shared_from_this<VhostUserSession> {
 public:
  VhostUserSession(VhostUserBackend& backend, boost::asio::local::stream_protocol::socket socket, std::uint64_t id);
  ~VhostUserSession();

  // Starts the device and reads the first message (posted onto the strand).
  void start();
  // Ends the connection (posted onto the strand): VhostUserBackend::stop().
  void close();

  // ---- DeviceQueues, on the strand (see vhost_user_device.hpp) -----------------------------
  std::optional<DescriptorChain> pop(std::size_t queue);
  void complete(std::size_t queue, std::uint16_t head, std::uint32_t written);
  std::size_t in_flight(std::size_t queue) const;
  bool running(std::size_t queue) const;
  void config_changed();
  bool closed() const { return closed_; }

 private:
  // What a request handler made of its message.
  struct Outcome {
    enum class Kind { done, refused, replied, acknowledge_later };
    Kind kind = Kind::done;
    std::string refusal;
  };
  static Outcome done() { return Outcome{}; }
  static Outcome refused(std::string why) { return Outcome{Outcome::Kind::refused, std::move(why)}; }
  static Outcome replied() { return Outcome{Outcome::Kind::replied, {}}; }
  using Message = VhostUserRequestMessage;
  using Handler = Outcome (VhostUserSession::*)(Message&, const vhost_user::Payload&);
  struct RequestHandler {
    vhost_user::Request request;
    Handler handle;
    bool replies;  // the request has a reply of its own (GET_*), sent by the handler
  };
  static const RequestHandler* handler_for(std::uint32_t request);

  // ---- The message flow (vhost_user_session.cpp) ----------------------------------------------
  void read_next();
  void on_read(std::variant<Message, ConnectionEnd> result);
  void dispatch(Message& message);
  void acknowledge(const vhost_user::Header& header, bool ok);
  void reply(std::uint32_t request, const vhost_user::Payload& payload);
  // No chain in flight any more: the acknowledgement held back goes out, the next message is read.
  void resume_if_idle();
  void finish(CloseReason reason, std::string detail = {});

  // ---- The handlers, one per request (vhost_user_requests.cpp) ---------------------------------
  Outcome get_features(Message&, const vhost_user::Payload&);
  Outcome set_features(Message&, const vhost_user::Payload&);
  Outcome get_protocol_features(Message&, const vhost_user::Payload&);
  Outcome set_protocol_features(Message&, const vhost_user::Payload&);
  Outcome set_owner(Message&, const vhost_user::Payload&);
  Outcome reset_owner(Message&, const vhost_user::Payload&);
  Outcome get_queue_num(Message&, const vhost_user::Payload&);
  Outcome get_max_mem_slots(Message&, const vhost_user::Payload&);
  Outcome get_status(Message&, const vhost_user::Payload&);
  Outcome set_status(Message&, const vhost_user::Payload&);
  Outcome set_mem_table(Message&, const vhost_user::Payload&);
  Outcome add_mem_reg(Message&, const vhost_user::Payload&);
  Outcome rem_mem_reg(Message&, const vhost_user::Payload&);
  Outcome set_vring_num(Message&, const vhost_user::Payload&);
  Outcome set_vring_addr(Message&, const vhost_user::Payload&);
  Outcome set_vring_base(Message&, const vhost_user::Payload&);
  Outcome get_vring_base(Message&, const vhost_user::Payload&);
  Outcome set_vring_kick(Message&, const vhost_user::Payload&);
  Outcome set_vring_call(Message&, const vhost_user::Payload&);
  Outcome set_vring_err(Message&, const vhost_user::Payload&);
  Outcome set_vring_enable(Message&, const vhost_user::Payload&);
  Outcome vring_kick(Message&, const vhost_user::Payload&);
  Outcome set_backend_req_fd(Message&, const vhost_user::Payload&);
  Outcome get_config(Message&, const vhost_user::Payload&);
  Outcome set_config(Message&, const vhost_user::Payload&);

  // ---- Rings and the device (vhost_user_session.cpp) --------------------------------------------
  // The ring `index` names, or nullptr with why not.
  Vring* ring(std::uint32_t index, std::string& why);
  bool negotiated(std::uint64_t protocol_feature) const { return (protocol_features_ & protocol_feature) != 0; }
  // Where VRING_CALL / VRING_ERR go when a ring has no eventfd for them (in-band notifications).
  BackendChannel* notification_channel() const;
  // Signals a used buffer of `queue` to the driver and tells the back-end's observer.
  void notify_driver(const Vring& ring, std::size_t queue);
  void set_memory(std::shared_ptr<const GuestMemory> memory);
  GuestMemory::Region map_region(const vhost_user::MemoryRegion& region, int fd) const;
  void try_start(Vring& ring);
  void restart(Vring& ring);
  void stop_ring(Vring& ring);
  void reset_device();
  void arm_kick(Vring& ring);
  // The device hears of `queue` (a kick, a completion, a start), after whatever it is doing now.
  void deliver(std::size_t queue);

  VhostUserBackend& backend_;
  VhostUserDevice& device_;
  std::shared_ptr<spdlog::logger> log_;
  std::string name_;  // "vhost-user front-end 3"
  VhostUserStrand strand_;
  VhostUserConnection connection_;
  std::shared_ptr<SessionQueues> queues_;
  std::shared_ptr<BackendChannel> backend_channel_;

  bool closed_ = false;
  bool reading_ = false;
  bool dispatching_ = false;
  std::optional<vhost_user::Header> acknowledgement_held_;  // an in-band kick's
  std::optional<Message> waiting_message_;                  // read while a chain was in flight

  std::uint64_t features_ = 0;
  std::uint64_t protocol_features_ = 0;
  std::uint8_t status_ = 0;
  std::shared_ptr<const GuestMemory> memory_;
  std::vector<Vring> rings_;
  std::size_t in_flight_ = 0;  // chains in flight on all rings
  std::vector<bool> events_;   // queues the device is to hear of
  bool delivering_ = false;
};

// The session's queues as its device sees them (DeviceQueues). Calls on the strand go straight
// to the session; post() checks that the session still lives and is open when the work runs.
class SessionQueues final : public DeviceQueues {
 public:
  SessionQueues(std::weak_ptr<VhostUserSession> session, VhostUserSession* raw, VhostUserStrand strand,
                std::shared_ptr<spdlog::logger> log, std::string name)
      : session_(std::move(session)),
        raw_(raw),
        strand_(std::move(strand)),
        log_(std::move(log)),
        name_(std::move(name)) {}

  std::optional<DescriptorChain> pop(std::size_t queue) override { return detached_ ? std::nullopt : raw_->pop(queue); }
  void complete(std::size_t queue, std::uint16_t head, std::uint32_t written) override {
    if (!detached_) raw_->complete(queue, head, written);
  }
  void config_changed() override {
    if (!detached_) raw_->config_changed();
  }
  std::size_t in_flight(std::size_t queue) const override { return detached_ ? 0 : raw_->in_flight(queue); }
  bool running(std::size_t queue) const override { return !detached_ && raw_->running(queue); }
  spdlog::logger& log() const override { return *log_; }
  const std::string& name() const override { return name_; }

  void post(std::function<void(DeviceQueues&)> work) override {
    boost::asio::post(strand_, [session = session_, self = shared_from_this(), work = std::move(work)] {
      const std::shared_ptr<VhostUserSession> alive = session.lock();
      if (!alive || alive->closed()) return;
      work(*self);
    });
  }

  // The connection ended (on the strand): nothing reaches the session any more.
  void detach() { detached_ = true; }

 private:
  std::weak_ptr<VhostUserSession> session_;
  VhostUserSession* raw_;
  VhostUserStrand strand_;
  std::shared_ptr<spdlog::logger> log_;
  std::string name_;
  bool detached_ = false;
};

}  // namespace emmcsim::transport
