// Vring: one virtqueue's state in a vhost-user session (internal to transport/src) — what the
// front-end set up (size, addresses, base, enable, the kick/call/err descriptors), the split
// virtqueue built from it once it can start, and the chains the device holds.
//
// A ring starts when it has a size, addresses, guest memory and a way to be kicked — a kick
// eventfd, or in-band kicks (VHOST_USER_VRING_KICK) when INBAND_NOTIFICATIONS was negotiated —
// and is enabled (at once without VHOST_USER_F_PROTOCOL_FEATURES, else by SET_VRING_ENABLE 1).
// GET_VRING_BASE stops it and says where; a broken ring (an available index that cannot be true)
// stops too until the front-end sets it up again. The session does the asynchronous part
// (waiting on the kick descriptor); this class only holds and checks.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "emmcsim/transport/guest_memory.hpp"
#include "emmcsim/transport/split_virtqueue.hpp"
#include "emmcsim/support/file.hpp"
#include "emmcsim/transport/vhost_user_message.hpp"

namespace emmcsim::transport {

using support::UniqueFd;
class BackendChannel;

class Vring {
 public:
  Vring(std::uint32_t index, std::string name) : index_(index), name_(std::move(name)) {}

  std::uint32_t index() const { return index_; }
  const std::string& name() const { return name_; }

  // ---- Set-up from the front-end (each returns why it refuses, or nothing) -------------------

  std::optional<std::string> set_size(std::uint32_t size, std::uint32_t max_size);
  void set_addresses(const vhost_user::VringAddress& address) { address_ = address; }
  std::optional<std::string> set_base(std::uint32_t base);
  void set_enabled(bool enabled) { enabled_ = enabled; }
  // A new kick eventfd (or none: in-band kicks); the old one's wait ends.
  void set_kick(boost::asio::io_context& io, UniqueFd fd);
  // The call eventfd — or a socket or pipe (User-Mode Linux gives one end of a socketpair), made
  // non-blocking so that a front-end that does not read its calls cannot stall the session.
  void set_call(UniqueFd fd);
  void set_err(UniqueFd fd) { err_ = std::move(fd); }

  // ---- Running -------------------------------------------------------------------------------

  // Everything the ring needs is there: size, addresses, memory, a kick (an eventfd, or in-band
  // kicks), enabled (or enabled from the start: no VHOST_USER_F_PROTOCOL_FEATURES).
  bool can_start(bool have_memory, bool inband_kicks, bool enabled_without_message) const;
  // Builds the split virtqueue over `memory` from the base (or, when it runs already, from where
  // it is). Returns why it cannot, leaving the ring stopped.
  std::optional<std::string> start(std::shared_ptr<const GuestMemory> memory, bool indirect_descriptors);
  // Stops the ring; the base is where it stopped. The kick descriptor is the front-end's again
  // only through a new SET_VRING_KICK.
  void stop();
  // Forgets the whole set-up (RESET_OWNER / RESET_DEVICE, or the connection ends).
  void reset();
  // The available index could not be trusted: no more chains until the ring is set up again.
  void mark_broken() { broken_ = true; }

  // Started: the split virtqueue is built. Running: started, enabled and not broken — chains
  // are served.
  bool started() const { return queue_.has_value(); }
  bool running() const { return queue_.has_value() && enabled_ && !broken_; }
  bool enabled() const { return enabled_; }
  std::uint16_t base() const { return base_; }
  SplitVirtqueue* queue() { return queue_ ? &*queue_ : nullptr; }
  boost::asio::posix::stream_descriptor* kick() { return kick_ ? &*kick_ : nullptr; }
  std::uint64_t kick_generation() const { return kick_generation_; }

  // Tells the driver about used buffers: the call eventfd if there is one, else a
  // VHOST_USER_BACKEND_VRING_CALL on `channel` (in-band notifications), else nothing (a
  // front-end that polls). Likewise for a broken ring with the err eventfd / VRING_ERR.
  void call(BackendChannel* channel) const;
  void report_error(BackendChannel* channel) const;

  // Chains handed to the device and not completed yet.
  std::vector<std::uint16_t>& in_flight() { return in_flight_; }
  const std::vector<std::uint16_t>& in_flight() const { return in_flight_; }

 private:
  std::uint32_t index_;
  std::string name_;
  std::uint32_t size_ = 0;
  std::optional<vhost_user::VringAddress> address_;
  std::uint16_t base_ = 0;
  bool enabled_ = false;
  bool broken_ = false;
  std::optional<SplitVirtqueue> queue_;
  std::optional<boost::asio::posix::stream_descriptor> kick_;
  std::uint64_t kick_generation_ = 0;
  UniqueFd call_;
  UniqueFd err_;
  std::vector<std::uint16_t> in_flight_;
};

}  // namespace emmcsim::transport
