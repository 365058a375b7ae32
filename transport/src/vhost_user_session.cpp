// VhostUserSession: the message flow, the rings and the device's queues (see
// vhost_user_session.hpp); the request handlers are in vhost_user_requests.cpp.
#include "vhost_user_session.hpp"

#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/post.hpp>
#include <cerrno>
#include <cstring>

namespace emmcsim::transport {

namespace asio = boost::asio;
using stream_protocol = asio::local::stream_protocol;
namespace vu = vhost_user;

VhostUserSession::VhostUserSession(VhostUserBackend& backend, stream_protocol::socket socket, std::uint64_t id)
    : backend_(backend),
      device_(backend.device_),
      log_(backend.log_),
      name_(fmt::format("vhost-user front-end {}", id)),
      strand_(asio::make_strand(backend.io_)),
      connection_(std::move(socket), strand_),
      events_(backend.device_.queue_count(), false) {
  rings_.reserve(device_.queue_count());
  for (std::size_t i = 0; i < device_.queue_count(); ++i)
    rings_.emplace_back(static_cast<std::uint32_t>(i), device_.queue_name(i));
}

VhostUserSession::~VhostUserSession() = default;

void VhostUserSession::start() {
  asio::post(strand_, [self = shared_from_this()] {
    if (self->closed_) return;  // stopped before it started
    self->queues_ = std::make_shared<SessionQueues>(self, self.get(), self->strand_, self->log_, self->name_);
    self->device_.start(self->queues_);
    self->read_next();
  });
}

void VhostUserSession::close() {
  asio::post(strand_, [self = shared_from_this()] { self->finish(CloseReason::daemon_stopped); });
}

// ---- The message flow --------------------------------------------------------------------------

void VhostUserSession::read_next() {
  if (closed_ || reading_ || dispatching_ || in_flight_ > 0 || acknowledgement_held_) return;
  reading_ = true;
  connection_.read(
      [self = shared_from_this()](std::variant<Message, ConnectionEnd> result) { self->on_read(std::move(result)); });
}

void VhostUserSession::on_read(std::variant<Message, ConnectionEnd> result) {
  reading_ = false;
  if (closed_) return;
  if (auto* end = std::get_if<ConnectionEnd>(&result)) return finish(end->reason, std::move(end->detail));
  if (in_flight_ > 0) {
    // A kick made the device busy while this message was on its way: it waits for the answer.
    waiting_message_ = std::move(std::get<Message>(result));
    return;
  }
  dispatching_ = true;
  dispatch(std::get<Message>(result));
  dispatching_ = false;
  read_next();
}

void VhostUserSession::dispatch(Message& m) {
  const std::uint32_t request = m.header.request;
  const RequestHandler* handler = handler_for(request);
  log_->debug("{}: {}", name_, vu::request_name(request));
  vu::Payload payload;
  try {
    payload = vu::decode_payload(request, m.payload.data(), m.payload.size(), m.fds.size());
  } catch (const vu::MessageError& e) {
    if (handler != nullptr && handler->replies)
      return finish(CloseReason::unanswerable_request, std::string(e.what()) + " (the front-end expects a reply)");
    log_->warn("{}: refused: {}", name_, e.what());
    return acknowledge(m.header, false);
  }
  Outcome outcome = refused("not supported by this back-end");
  if (handler != nullptr) {
    try {
      outcome = (this->*handler->handle)(m, payload);
    } catch (const std::exception& e) {
      if (handler->replies)
        return finish(CloseReason::unanswerable_request, std::string(e.what()) + " (the front-end expects a reply)");
      outcome = refused(e.what());
    }
  }
  if (closed_) return;
  if (outcome.kind == Outcome::Kind::refused)
    log_->warn("{}: {} refused: {}", name_, vu::request_name(request), outcome.refusal);
  if (handler != nullptr && handler->replies) return;  // the handler replied
  if (outcome.kind == Outcome::Kind::acknowledge_later && in_flight_ > 0) {
    acknowledgement_held_ = m.header;
    return;
  }
  acknowledge(m.header, outcome.kind != Outcome::Kind::refused);
}

void VhostUserSession::acknowledge(const vu::Header& header, bool ok) {
  if (negotiated(vu::protocol_feature::kReplyAck) && header.need_reply())
    reply(header.request, vu::U64Payload{ok ? 0u : 1u});
}

void VhostUserSession::reply(std::uint32_t request, const vu::Payload& payload) {
  if (closed_) return;
  if (auto end = connection_.send(vu::encode_reply(request, payload))) finish(end->reason, std::move(end->detail));
}

void VhostUserSession::resume_if_idle() {
  if (closed_ || in_flight_ > 0 || delivering_ || dispatching_) return;
  if (acknowledgement_held_) {
    const vu::Header header = *acknowledgement_held_;
    acknowledgement_held_.reset();
    acknowledge(header, true);
  }
  if (waiting_message_ && !closed_) {
    Message message = std::move(*waiting_message_);
    waiting_message_.reset();
    dispatching_ = true;
    dispatch(message);
    dispatching_ = false;
  }
  read_next();
}

void VhostUserSession::finish(CloseReason reason, std::string detail) {
  if (closed_) return;
  closed_ = true;
  if (is_protocol_violation(reason)) {
    log_->warn("{}: {}; closing the connection", name_, detail.empty() ? describe(reason) : detail);
  } else {
    log_->info("{} disconnected ({}{}{})", name_, describe(reason), detail.empty() ? "" : ": ", detail);
  }
  for (Vring& r : rings_) r.reset();
  in_flight_ = 0;
  waiting_message_.reset();
  memory_.reset();
  if (queues_) {
    queues_->detach();
    device_.stop();  // before the next front-end's session can start the device again
  }
  // Forgotten before the socket closes: a front-end that sees the end may connect again at once.
  backend_.forget(this);
  connection_.close();
  if (backend_channel_) backend_channel_->close();
}

// ---- Rings ---------------------------------------------------------------------------------------

Vring* VhostUserSession::ring(std::uint32_t index, std::string& why) {
  if (index < rings_.size()) return &rings_[index];
  why = fmt::format("virtqueue {} (the device has {})", index, rings_.size());
  return nullptr;
}

BackendChannel* VhostUserSession::notification_channel() const {
  if (!negotiated(vu::protocol_feature::kInbandNotifications) || !backend_channel_) return nullptr;
  return backend_channel_.get();
}

GuestMemory::Region VhostUserSession::map_region(const vu::MemoryRegion& r, int fd) const {
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw GuestMemoryError(std::string("memory region fd: ") + std::strerror(errno));
  if (S_ISREG(st.st_mode) && static_cast<std::uint64_t>(st.st_size) < r.mmap_offset + r.size)
    throw GuestMemoryError(
        fmt::format("memory region of {} bytes at offset {} in a file of {} bytes", r.size, r.mmap_offset, st.st_size));
  return GuestMemory::map_file(fd, r.guest_address, r.size, r.user_address, r.mmap_offset);
}

void VhostUserSession::set_memory(std::shared_ptr<const GuestMemory> memory) {
  memory_ = std::move(memory);
  for (Vring& r : rings_) {
    if (r.started())
      restart(r);
    else
      try_start(r);
  }
}

void VhostUserSession::try_start(Vring& r) {
  const bool enabled_without_message = (features_ & vu::feature::kProtocolFeatures) == 0;
  if (!r.can_start(memory_ != nullptr, negotiated(vu::protocol_feature::kInbandNotifications), enabled_without_message))
    return;
  if (enabled_without_message) r.set_enabled(true);
  if (auto why = r.start(memory_, (features_ & vu::feature::kRingIndirectDesc) != 0)) {
    log_->warn("{}: the {} cannot start: {}", name_, r.name(), *why);
    return;
  }
  log_->debug("{}: {} started ({} entries, at {}{})", name_, r.name(), r.queue()->size(), r.base(),
              r.kick() != nullptr ? "" : ", kicked in-band");
  arm_kick(r);
  device_.queue_ready(*queues_, r.index(), true);
  deliver(r.index());
}

// New addresses or memory under a running ring: rebuilt where it is.
void VhostUserSession::restart(Vring& r) {
  if (auto why = r.start(memory_, (features_ & vu::feature::kRingIndirectDesc) != 0)) {
    log_->warn("{}: the {} cannot start: {}", name_, r.name(), *why);
    device_.queue_ready(*queues_, r.index(), false);
  }
}

void VhostUserSession::stop_ring(Vring& r) {
  const bool was_started = r.started();
  r.stop();
  if (was_started) device_.queue_ready(*queues_, r.index(), false);
}

void VhostUserSession::reset_device() {
  for (Vring& r : rings_) {
    stop_ring(r);
    r.reset();
  }
  in_flight_ = 0;
  features_ = 0;
  status_ = 0;
  device_.reset(*queues_);
}

void VhostUserSession::arm_kick(Vring& r) {
  auto* kick = r.kick();
  if (kick == nullptr || closed_) return;
  const std::uint32_t index = r.index();
  const std::uint64_t generation = r.kick_generation();
  kick->async_wait(
      asio::posix::stream_descriptor::wait_read,
      asio::bind_executor(strand_, [self = shared_from_this(), index, generation](boost::system::error_code ec) {
        if (ec || self->closed_) return;
        Vring& ring = self->rings_[index];
        if (generation != ring.kick_generation() || ring.kick() == nullptr) return;
        std::uint64_t count = 0;
        const ssize_t n = ::read(ring.kick()->native_handle(), &count, sizeof(count));
        if (n == 0) {
          self->log_->warn("{}: the kick fd of the {} was closed", self->name_, ring.name());
          return;
        }
        if (ring.running()) self->deliver(index);
        if (!self->closed_ && generation == ring.kick_generation()) self->arm_kick(ring);
      }));
}

void VhostUserSession::deliver(std::size_t queue) {
  events_[queue] = true;
  if (delivering_) return;
  delivering_ = true;
  for (bool again = true; again && !closed_;) {
    again = false;
    for (std::size_t q = 0; q < events_.size() && !closed_; ++q) {
      if (!events_[q]) continue;
      events_[q] = false;
      again = true;
      if (!rings_[q].running()) continue;
      try {
        device_.queue_event(*queues_, q);
      } catch (const std::exception& e) {
        log_->error("{}: the device failed on the {}: {}", name_, rings_[q].name(), e.what());
      }
    }
  }
  delivering_ = false;
  resume_if_idle();
}

// ---- DeviceQueues ----------------------------------------------------------------------------------

std::optional<DescriptorChain> VhostUserSession::pop(std::size_t queue) {
  if (closed_ || queue >= rings_.size() || !rings_[queue].running()) return std::nullopt;
  Vring& r = rings_[queue];
  for (;;) {
    std::optional<DescriptorChain> chain;
    try {
      chain = r.queue()->pop();
    } catch (const VirtqueueError& e) {
      r.mark_broken();
      log_->error("{}: {} stopped until the device is reset: {}", name_, r.name(), e.what());
      r.report_error(notification_channel());
      device_.queue_ready(*queues_, queue, false);
      return std::nullopt;
    }
    if (!chain) return std::nullopt;
    if (chain->fault.empty()) {
      r.in_flight().push_back(chain->head);
      ++in_flight_;
      return chain;
    }
    // A chain that breaks the rules is the back-end's to return; the device never sees it.
    log_->warn("{}: {} (chain {}): {}; returned unused", name_, r.name(), chain->head, chain->fault);
    r.queue()->push(chain->head, 0);
    if (r.queue()->wants_interrupt()) notify_driver(r, queue);
    backend_.count_chain();
  }
}

void VhostUserSession::notify_driver(const Vring& ring, std::size_t queue) {
  // The observer first: what it posts is queued before the driver can possibly react.
  backend_.driver_notified(queue);
  ring.call(notification_channel());
}

void VhostUserSession::complete(std::size_t queue, std::uint16_t head, std::uint32_t written) {
  if (closed_) return;
  std::vector<std::uint16_t>* held = queue < rings_.size() ? &rings_[queue].in_flight() : nullptr;
  const auto it =
      held != nullptr ? std::find(held->begin(), held->end(), head) : std::vector<std::uint16_t>::iterator{};
  if (held == nullptr || it == held->end()) {
    log_->warn("{}: the device completed chain {} of queue {}, which is not in flight", name_, head, queue);
    return;
  }
  held->erase(it);
  --in_flight_;
  backend_.count_chain();
  Vring& r = rings_[queue];
  if (SplitVirtqueue* q = r.queue()) {
    q->push(head, written);
    if (q->wants_interrupt()) notify_driver(r, queue);
  }
  deliver(queue);
}

std::size_t VhostUserSession::in_flight(std::size_t queue) const {
  return queue < rings_.size() ? rings_[queue].in_flight().size() : 0;
}

bool VhostUserSession::running(std::size_t queue) const { return queue < rings_.size() && rings_[queue].running(); }

void VhostUserSession::config_changed() {
  if (!closed_ && backend_channel_) backend_channel_->config_change();
}

}  // namespace emmcsim::transport
