// VhostUserBackend: the listening socket and the one front-end served at a time (see
// vhost_user_backend.hpp); the connection itself is a VhostUserSession.
#include "emmcsim/transport/vhost_user_backend.hpp"

#include <spdlog/spdlog.h>

#include <stdexcept>

#include "emmcsim/transport/unix_socket.hpp"
#include "vhost_user_session.hpp"

namespace emmcsim::transport {

namespace asio = boost::asio;
using stream_protocol = asio::local::stream_protocol;
namespace vu = vhost_user;

namespace {

constexpr std::uint64_t kRingPacked = 1ull << 34;  // VIRTIO_F_RING_PACKED

VhostUserDevice& checked(VhostUserDevice& device) {
  const std::size_t queues = device.queue_count();
  if (queues == 0 || queues > 256)
    throw std::invalid_argument("a vhost-user device has 1 to 256 queues, not " + std::to_string(queues));
  const std::uint32_t size = device.max_queue_size();
  if (size == 0 || size > vring::kMaxSize || (size & (size - 1)) != 0)
    throw std::invalid_argument("max queue size " + std::to_string(size) + " is not a power of two up to 32768");
  if ((device.device_features() & (vu::feature::kRingEventIdx | kRingPacked)) != 0)
    throw std::invalid_argument("the back-end implements neither VIRTIO_RING_F_EVENT_IDX nor packed rings");
  return device;
}

}  // namespace

VhostUserBackend::VhostUserBackend(asio::io_context& io, VhostUserDevice& device, std::shared_ptr<spdlog::logger> log,
                                   std::string socket_path)
    : io_(io),
      device_(checked(device)),
      log_(log),
      offered_features_(device.device_features() | vu::feature::kProtocolFeatures),
      offered_protocol_features_(device.protocol_features() & kSupportedProtocolFeatures),
      listener_(io, std::move(socket_path), log) {}

VhostUserBackend::~VhostUserBackend() { stop(); }

void VhostUserBackend::start() {
  listener_.start([this](stream_protocol::socket socket) { accepted(std::move(socket)); });
}

void VhostUserBackend::accepted(stream_protocol::socket socket) {
  std::shared_ptr<VhostUserSession> session;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopped_) return;
    if (session_ && waiting_.size() >= kMaxWaiting) {
      log_->warn("refusing a vhost-user front-end: one is connected and {} wait already (a device has one owner)",
                 waiting_.size());
      return;
    }
    if (session_) {
      log_->info("vhost-user front-end {} waits until the connected one is done (a device has one owner)", next_id_);
      waiting_.emplace_back(next_id_++, std::move(socket));
      return;
    }
    session = std::make_shared<VhostUserSession>(*this, std::move(socket), next_id_++);
    session_ = session;
    log_->info("vhost-user front-end {} connected", next_id_ - 1);
  }
  session->start();
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

void VhostUserBackend::count_chain() {
  std::lock_guard<std::mutex> lock(mutex_);
  ++chains_served_;
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
  listener_.stop();  // first, without mutex_: no front-end is accepted after it
  std::shared_ptr<VhostUserSession> session;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopped_) return;
    stopped_ = true;
    session = session_;
    waiting_.clear();  // closes their sockets
  }
  if (session) session->close();
}

}  // namespace emmcsim::transport
