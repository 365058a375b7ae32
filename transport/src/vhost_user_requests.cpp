// VhostUserSession's request handlers: one per front-end request, and the table that finds them
// (see vhost_user_session.hpp). A handler gets a payload the codec decoded and checked; it returns
// done, refused (why), replied (the GET_* requests send their reply here) or acknowledge_later
// (an in-band kick, acknowledged once the device has answered what it kicked).
#include <fmt/format.h>

#include <array>

#include "vhost_user_session.hpp"

namespace emmcsim::transport {

namespace vu = vhost_user;

const VhostUserSession::RequestHandler* VhostUserSession::handler_for(std::uint32_t request) {
  using R = vu::Request;
  using S = VhostUserSession;
  static const std::array<RequestHandler, 26> kHandlers{{
      {R::get_features, &S::get_features, true},
      {R::set_features, &S::set_features, false},
      {R::set_owner, &S::set_owner, false},
      {R::reset_owner, &S::reset_owner, false},
      {R::set_mem_table, &S::set_mem_table, false},
      {R::set_vring_num, &S::set_vring_num, false},
      {R::set_vring_addr, &S::set_vring_addr, false},
      {R::set_vring_base, &S::set_vring_base, false},
      {R::get_vring_base, &S::get_vring_base, true},
      {R::set_vring_kick, &S::set_vring_kick, false},
      {R::set_vring_call, &S::set_vring_call, false},
      {R::set_vring_err, &S::set_vring_err, false},
      {R::get_protocol_features, &S::get_protocol_features, true},
      {R::set_protocol_features, &S::set_protocol_features, false},
      {R::get_queue_num, &S::get_queue_num, true},
      {R::set_vring_enable, &S::set_vring_enable, false},
      {R::set_backend_req_fd, &S::set_backend_req_fd, false},
      {R::get_config, &S::get_config, true},
      {R::set_config, &S::set_config, false},
      {R::reset_device, &S::reset_owner, false},
      {R::vring_kick, &S::vring_kick, false},
      {R::get_max_mem_slots, &S::get_max_mem_slots, true},
      {R::add_mem_reg, &S::add_mem_reg, false},
      {R::rem_mem_reg, &S::rem_mem_reg, false},
      {R::set_status, &S::set_status, false},
      {R::get_status, &S::get_status, true},
  }};
  for (const RequestHandler& h : kHandlers)
    if (static_cast<std::uint32_t>(h.request) == request) return &h;
  return nullptr;
}

// ---- Features and ownership ----------------------------------------------------------------------

VhostUserSession::Outcome VhostUserSession::get_features(Message& m, const vu::Payload&) {
  reply(m.header.request, vu::U64Payload{backend_.offered_features()});
  return replied();
}

VhostUserSession::Outcome VhostUserSession::set_features(Message&, const vu::Payload& payload) {
  const std::uint64_t value = std::get<vu::U64Payload>(payload).value;
  const std::uint64_t unknown = value & ~backend_.offered_features();
  if (unknown != 0) return refused(fmt::format("features {:#x} were not offered", unknown));
  features_ = value;
  // Without VHOST_USER_F_PROTOCOL_FEATURES the rings are enabled at once.
  for (Vring& r : rings_) try_start(r);
  return done();
}

VhostUserSession::Outcome VhostUserSession::get_protocol_features(Message& m, const vu::Payload&) {
  reply(m.header.request, vu::U64Payload{backend_.offered_protocol_features()});
  return replied();
}

VhostUserSession::Outcome VhostUserSession::set_protocol_features(Message&, const vu::Payload& payload) {
  const std::uint64_t value = std::get<vu::U64Payload>(payload).value;
  const std::uint64_t unknown = value & ~backend_.offered_protocol_features();
  if (unknown != 0) return refused(fmt::format("protocol features {:#x} were not offered", unknown));
  protocol_features_ = value;
  return done();
}

VhostUserSession::Outcome VhostUserSession::set_owner(Message&, const vu::Payload&) { return done(); }

// RESET_OWNER and RESET_DEVICE: the rings stop and their set-up, the features and the status are
// forgotten; the memory, the protocol features and the back-end channel stay.
VhostUserSession::Outcome VhostUserSession::reset_owner(Message&, const vu::Payload&) {
  reset_device();
  return done();
}

VhostUserSession::Outcome VhostUserSession::get_queue_num(Message& m, const vu::Payload&) {
  reply(m.header.request, vu::U64Payload{rings_.size()});
  return replied();
}

VhostUserSession::Outcome VhostUserSession::get_max_mem_slots(Message& m, const vu::Payload&) {
  reply(m.header.request, vu::U64Payload{vu::kMaxMemoryRegions});
  return replied();
}

VhostUserSession::Outcome VhostUserSession::get_status(Message& m, const vu::Payload&) {
  reply(m.header.request, vu::U64Payload{status_});
  return replied();
}

VhostUserSession::Outcome VhostUserSession::set_status(Message&, const vu::Payload& payload) {
  status_ = static_cast<std::uint8_t>(std::get<vu::U64Payload>(payload).value & 0xFF);
  return done();
}

// ---- Memory -----------------------------------------------------------------------------------------

VhostUserSession::Outcome VhostUserSession::set_mem_table(Message& m, const vu::Payload& payload) {
  const auto& table = std::get<vu::MemoryTable>(payload);
  std::vector<GuestMemory::Region> regions;
  for (std::size_t i = 0; i < table.regions.size(); ++i)
    regions.push_back(map_region(table.regions[i], m.fds[i].get()));
  set_memory(std::make_shared<const GuestMemory>(std::move(regions)));
  return done();
}

VhostUserSession::Outcome VhostUserSession::add_mem_reg(Message& m, const vu::Payload& payload) {
  const auto& r = std::get<vu::SingleMemoryRegion>(payload).region;
  const GuestMemory current = memory_ ? *memory_ : GuestMemory{};
  if (current.regions().size() >= vu::kMaxMemoryRegions)
    return refused(fmt::format("all {} memory slots are in use", vu::kMaxMemoryRegions));
  set_memory(std::make_shared<const GuestMemory>(current.with(map_region(r, m.fds[0].get()))));
  return done();
}

VhostUserSession::Outcome VhostUserSession::rem_mem_reg(Message&, const vu::Payload& payload) {
  const auto& r = std::get<vu::SingleMemoryRegion>(payload).region;
  if (!memory_) return refused("no memory table to remove a region from");
  set_memory(std::make_shared<const GuestMemory>(memory_->without(r.guest_address, r.size)));
  return done();
}

// ---- Ring set-up ------------------------------------------------------------------------------------

VhostUserSession::Outcome VhostUserSession::set_vring_num(Message&, const vu::Payload& payload) {
  const auto& s = std::get<vu::VringState>(payload);
  std::string why;
  Vring* r = ring(s.index, why);
  if (r == nullptr) return refused(why);
  if (auto bad = r->set_size(s.num, device_.max_queue_size())) return refused(*bad);
  return done();
}

VhostUserSession::Outcome VhostUserSession::set_vring_addr(Message&, const vu::Payload& payload) {
  const auto& a = std::get<vu::VringAddress>(payload);
  std::string why;
  Vring* r = ring(a.index, why);
  if (r == nullptr) return refused(why);
  r->set_addresses(a);
  if (r->started())
    restart(*r);
  else
    try_start(*r);
  return done();
}

VhostUserSession::Outcome VhostUserSession::set_vring_base(Message&, const vu::Payload& payload) {
  const auto& s = std::get<vu::VringState>(payload);
  std::string why;
  Vring* r = ring(s.index, why);
  if (r == nullptr) return refused(why);
  if (auto bad = r->set_base(s.num)) return refused(*bad);
  return done();
}

// Stops the ring and answers where it stopped: the next available index.
VhostUserSession::Outcome VhostUserSession::get_vring_base(Message& m, const vu::Payload& payload) {
  const auto& s = std::get<vu::VringState>(payload);
  std::string why;
  Vring* r = ring(s.index, why);
  if (r == nullptr) {
    finish(CloseReason::unanswerable_request, why + " (GET_VRING_BASE expects a reply)");
    return replied();
  }
  stop_ring(*r);
  reply(m.header.request, vu::VringState{s.index, r->base()});
  return replied();
}

// A kick eventfd; without one (bit 8) the ring is kicked in-band, which needs
// INBAND_NOTIFICATIONS (polling is not offered).
VhostUserSession::Outcome VhostUserSession::set_vring_kick(Message& m, const vu::Payload& payload) {
  const auto& f = std::get<vu::VringFile>(payload);
  std::string why;
  Vring* r = ring(f.index, why);
  if (r == nullptr) return refused(why);
  if (!f.has_fd && !negotiated(vu::protocol_feature::kInbandNotifications))
    return refused("polling without a kick eventfd is not supported (in-band kicks need INBAND_NOTIFICATIONS)");
  r->set_kick(backend_.io_, f.has_fd ? std::move(m.fds[0]) : UniqueFd{});
  if (r->started())
    arm_kick(*r);
  else
    try_start(*r);
  return done();
}

VhostUserSession::Outcome VhostUserSession::set_vring_call(Message& m, const vu::Payload& payload) {
  const auto& f = std::get<vu::VringFile>(payload);
  std::string why;
  Vring* r = ring(f.index, why);
  if (r == nullptr) return refused(why);
  r->set_call(f.has_fd ? std::move(m.fds[0]) : UniqueFd{});
  return done();
}

VhostUserSession::Outcome VhostUserSession::set_vring_err(Message& m, const vu::Payload& payload) {
  const auto& f = std::get<vu::VringFile>(payload);
  std::string why;
  Vring* r = ring(f.index, why);
  if (r == nullptr) return refused(why);
  r->set_err(f.has_fd ? std::move(m.fds[0]) : UniqueFd{});
  return done();
}

// Enabled, a started ring is served; disabled, it keeps its place and waits.
VhostUserSession::Outcome VhostUserSession::set_vring_enable(Message&, const vu::Payload& payload) {
  const auto& s = std::get<vu::VringState>(payload);
  std::string why;
  Vring* r = ring(s.index, why);
  if (r == nullptr) return refused(why);
  if (s.num > 1) return refused(fmt::format("enable value {}", s.num));
  const bool was_running = r->running();
  r->set_enabled(s.num == 1);
  if (!r->started()) {
    try_start(*r);
  } else if (r->running() != was_running) {
    device_.queue_ready(*queues_, r->index(), r->running());
    if (r->running()) deliver(r->index());
  }
  return done();
}

// ---- Notifications -----------------------------------------------------------------------------------

// An in-band kick: the device serves the ring now, and the kick is acknowledged once nothing is
// in flight any more (the answers are in guest memory when the front-end hears back).
VhostUserSession::Outcome VhostUserSession::vring_kick(Message&, const vu::Payload& payload) {
  const auto& s = std::get<vu::VringState>(payload);
  if (!negotiated(vu::protocol_feature::kInbandNotifications))
    return refused("in-band kicks need INBAND_NOTIFICATIONS, which was not negotiated");
  std::string why;
  Vring* r = ring(s.index, why);
  if (r == nullptr) return refused(why);
  if (s.num != 0) return refused(fmt::format("num {} (reserved, 0)", s.num));
  if (!r->running()) {
    log_->debug("{}: a kick of the {}, which is not running", name_, r->name());
    return done();
  }
  deliver(r->index());
  return Outcome{Outcome::Kind::acknowledge_later, {}};
}

// The channel for the back-end's own messages (VRING_CALL with in-band notifications).
VhostUserSession::Outcome VhostUserSession::set_backend_req_fd(Message& m, const vu::Payload&) {
  if (!negotiated(vu::protocol_feature::kBackendReq)) return refused("BACKEND_REQ (SLAVE_REQ) was not negotiated");
  if (backend_channel_) backend_channel_->close();
  backend_channel_ = std::make_shared<BackendChannel>(backend_.io_, strand_, std::move(m.fds[0]), log_, name_);
  return done();
}

// ---- Config space ------------------------------------------------------------------------------------

VhostUserSession::Outcome VhostUserSession::get_config(Message& m, const vu::Payload& payload) {
  const auto& c = std::get<vu::ConfigSpace>(payload);
  vu::ConfigSpace out{c.offset, c.flags, {}};
  if (auto bytes = device_.read_config(c.offset, static_cast<std::uint32_t>(c.bytes.size()))) {
    out.bytes = std::move(*bytes);
  } else {
    log_->warn("{}: GET_CONFIG of {} bytes at {}: outside the config space", name_, c.bytes.size(), c.offset);
  }
  reply(m.header.request, out);
  return replied();
}

VhostUserSession::Outcome VhostUserSession::set_config(Message&, const vu::Payload& payload) {
  const auto& c = std::get<vu::ConfigSpace>(payload);
  if (auto refusal = device_.write_config(c.offset, c.bytes)) return refused(*refusal);
  return done();
}

}  // namespace emmcsim::transport
