// Vring (see vhost_user_vring.hpp).
#include "vhost_user_vring.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vhost_user_connection.hpp"

namespace emmcsim::transport {

namespace {

void signal(const UniqueFd& fd) {
  if (!fd.valid()) return;
  const std::uint64_t one = 1;
  // A full socket or pipe (EAGAIN) already tells the front-end to look.
  [[maybe_unused]] const ssize_t n = ::write(fd.get(), &one, sizeof(one));
}

}  // namespace

std::optional<std::string> Vring::set_size(std::uint32_t size, std::uint32_t max_size) {
  if (queue_) return std::string("the ring is running");
  if (size == 0 || size > max_size || (size & (size - 1)) != 0)
    return fmt::format("queue size {} is not a power of two from 1 to {}", size, max_size);
  size_ = size;
  return std::nullopt;
}

std::optional<std::string> Vring::set_base(std::uint32_t base) {
  if (queue_) return std::string("the ring is running");
  if (base > 0xFFFF) return fmt::format("ring base {} is not a 16-bit index", base);
  base_ = static_cast<std::uint16_t>(base);
  return std::nullopt;
}

void Vring::set_kick(boost::asio::io_context& io, UniqueFd fd) {
  ++kick_generation_;
  kick_.reset();
  if (fd.valid()) kick_.emplace(io, fd.release());
}

void Vring::set_call(UniqueFd fd) {
  struct stat st {};
  if (fd.valid() && ::fstat(fd.get(), &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode))) {
    const int flags = ::fcntl(fd.get(), F_GETFL);
    if (flags >= 0) ::fcntl(fd.get(), F_SETFL, flags | O_NONBLOCK);
  }
  call_ = std::move(fd);
}

bool Vring::can_start(bool have_memory, bool inband_kicks, bool enabled_without_message) const {
  return !queue_ && size_ != 0 && address_ && have_memory && (kick_ || inband_kicks) &&
         (enabled_ || enabled_without_message);
}

std::optional<std::string> Vring::start(std::shared_ptr<const GuestMemory> memory, bool indirect_descriptors) {
  const std::uint16_t next = queue_ ? queue_->next_available() : base_;
  queue_.reset();
  broken_ = false;
  try {
    queue_.emplace(std::move(memory), size_,
                   SplitVirtqueue::Addresses{address_->descriptor, address_->available, address_->used}, true, next,
                   indirect_descriptors);
  } catch (const VirtqueueError& e) {
    base_ = next;
    return std::string(e.what());
  }
  return std::nullopt;
}

void Vring::stop() {
  if (queue_) base_ = queue_->next_available();
  queue_.reset();
  broken_ = false;
  ++kick_generation_;
  kick_.reset();
}

void Vring::reset() {
  stop();
  size_ = 0;
  address_.reset();
  base_ = 0;
  enabled_ = false;
  call_.reset();
  err_.reset();
  in_flight_.clear();
}

void Vring::call(BackendChannel* channel) const {
  if (call_.valid()) return signal(call_);
  if (channel != nullptr) channel->vring_call(index_);
}

void Vring::report_error(BackendChannel* channel) const {
  if (err_.valid()) return signal(err_);
  if (channel != nullptr) channel->vring_err(index_);
}

}  // namespace emmcsim::transport
