// VirtioPcidevDevice (see virtio_pcidev_device.hpp).
#include "emmcsim/transport/virtio_pcidev_device.hpp"

#include <spdlog/logger.h>

#include <algorithm>
#include <utility>

namespace emmcsim::transport {
namespace {

namespace pcidev = virtio_pcidev;
constexpr std::size_t kCommandQueue = pcidev::kCommandQueue;
constexpr std::size_t kInterruptQueue = pcidev::kInterruptQueue;
// Refused chains logged per connection before the log goes quiet (a hostile guest must not be
// able to fill the disk); the count is in counters() and in the line at disconnect.
constexpr std::uint64_t kLoggedRefusals = 10;
// Interrupts held for a guest that posts no buffers; identical ones coalesce (an interrupt says
// "look at the status registers", so one pending of each kind is all a driver needs).
constexpr std::size_t kMaxPendingInterrupts = 64;

bool same(const PciInterrupt& a, const PciInterrupt& b) {
  return a.msi == b.msi && (a.msi ? a.data == b.data : a.pin == b.pin);
}

}  // namespace

// The function's handle on the guest: posts interrupts onto the connection's strand while the
// connection lasts.
class VirtioPcidevDevice::Link final : public PciGuestLink {
 public:
  Link(VirtioPcidevDevice& device, const std::shared_ptr<DeviceQueues>& queues) : device_(device), queues_(queues) {}
  void interrupt(const PciInterrupt& interrupt) override {
    std::shared_ptr<DeviceQueues> queues;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      queues = queues_.lock();
    }
    if (!queues) {
      std::lock_guard<std::mutex> lock(device_.counters_mutex_);
      ++device_.counters_.interrupts_dropped;
      return;
    }
    VirtioPcidevDevice* device = &device_;
    Link* self = this;
    queues->post([device, self, interrupt](DeviceQueues& q) {
      if (device->link_.get() != self) return;  // raised for a connection that has ended
      auto& pending = device->pending_;
      if (std::none_of(pending.begin(), pending.end(), [&](const PciInterrupt& p) { return same(p, interrupt); }) &&
          pending.size() < kMaxPendingInterrupts)
        pending.push_back(interrupt);
      device->deliver_interrupts(q);
    });
  }
  void detach() {
    std::lock_guard<std::mutex> lock(mutex_);
    queues_.reset();
  }

 private:
  VirtioPcidevDevice& device_;
  std::mutex mutex_;
  std::weak_ptr<DeviceQueues> queues_;
};

VirtioPcidevDevice::VirtioPcidevDevice(PciFunction& function) : function_(function) {}

VirtioPcidevDevice::~VirtioPcidevDevice() {
  if (link_) link_->detach();
}

std::uint64_t VirtioPcidevDevice::device_features() const { return vhost_user::feature::kVersion1; }

std::uint64_t VirtioPcidevDevice::protocol_features() const {
  namespace pf = vhost_user::protocol_feature;
  return pf::kReplyAck | pf::kBackendReq | pf::kConfig | pf::kInbandNotifications;
}

std::string VirtioPcidevDevice::queue_name(std::size_t queue) const {
  return queue == kCommandQueue ? "cmd" : queue == kInterruptQueue ? "irq" : VhostUserDevice::queue_name(queue);
}

// virtio-pcidev has no config space of its own: reads give zeros (virtio_uml may read it).
std::optional<std::vector<std::uint8_t>> VirtioPcidevDevice::read_config(std::uint32_t offset,
                                                                         std::uint32_t size) const {
  if (offset > vhost_user::kMaxConfigSize || size > vhost_user::kMaxConfigSize - offset) return std::nullopt;
  return std::vector<std::uint8_t>(size, 0);
}

void VirtioPcidevDevice::start(const std::shared_ptr<DeviceQueues>& queues) {
  if (link_) link_->detach();
  link_ = std::make_shared<Link>(*this, queues);
  refusals_logged_ = 0;
  function_.connect(link_);
}

void VirtioPcidevDevice::stop() {
  if (!link_) return;
  link_->detach();
  link_.reset();
  function_.disconnect();
  memory_.reset();
  reading_.reset();
  pending_.clear();
}

void VirtioPcidevDevice::reset(DeviceQueues& queues) {
  // The rings are forgotten: so is a read in flight and every pending interrupt. The function
  // is told, as if the guest had gone and come back.
  stop();
  start(queues.shared_from_this());
}

void VirtioPcidevDevice::queue_event(DeviceQueues& queues, std::size_t queue) {
  if (queue == kCommandQueue) serve_commands(queues);
  if (queue == kInterruptQueue) deliver_interrupts(queues);
}

void VirtioPcidevDevice::note_memory(const DescriptorChain& chain) {
  if (!chain.memory || chain.memory == memory_) return;
  memory_ = chain.memory;
  function_.set_guest_memory(memory_);
}

void VirtioPcidevDevice::serve_commands(DeviceQueues& queues) {
  while (!reading_) {
    std::optional<DescriptorChain> chain = queues.pop(kCommandQueue);
    if (!chain) return;
    note_memory(*chain);
    const std::uint16_t head = chain->head;
    const std::vector<std::uint8_t> bytes = chain->gather(pcidev::kHeaderSize + pcidev::kMaxBarAccess + 8);
    pcidev::Access access;
    try {
      access = pcidev::decode_access(bytes.data(), bytes.size(), chain->writable_bytes);
    } catch (const pcidev::PcidevMessageError& e) {
      {
        std::lock_guard<std::mutex> lock(counters_mutex_);
        ++counters_.refused;
      }
      if (refusals_logged_ < kLoggedRefusals) {
        ++refusals_logged_;
        queues.log().warn("{}: {}{}", queues.name(), e.what(),
                          refusals_logged_ == kLoggedRefusals ? " (further refusals are counted, not logged)" : "");
      }
      queues.complete(kCommandQueue, head, 0);
      continue;
    }
    {
      std::lock_guard<std::mutex> lock(counters_mutex_);
      ++counters_.accesses;
    }
    switch (access.op) {
      case pcidev::Op::cfg_write:
        function_.config_write(static_cast<std::uint32_t>(access.addr), std::move(access.data));
        queues.complete(kCommandQueue, head, 0);
        break;
      case pcidev::Op::mmio_write:
        function_.bar_write(access.bar, access.addr, std::move(access.data));
        queues.complete(kCommandQueue, head, 0);
        break;
      case pcidev::Op::mmio_memset:
        function_.bar_fill(access.bar, access.addr, access.size, access.data.at(0));
        queues.complete(kCommandQueue, head, 0);
        break;
      case pcidev::Op::cfg_read:
      case pcidev::Op::mmio_read: {
        reading_.emplace(std::move(*chain));
        const std::uint32_t size = access.size;
        std::shared_ptr<DeviceQueues> owner = queues.shared_from_this();
        Link* link = link_.get();
        PciFunction::ReadDone done = [this, owner, link, head, size](std::vector<std::uint8_t> answer) {
          owner->post([this, link, head, size, answer = std::move(answer)](DeviceQueues& q) {
            if (link_.get() != link || !reading_ || reading_->head != head) return;  // reset since
            std::size_t written = 0;
            if (answer.size() == size) written = reading_->scatter(answer.data(), answer.size());
            reading_.reset();
            q.complete(kCommandQueue, head, static_cast<std::uint32_t>(written));
            serve_commands(q);
          });
        };
        if (access.op == pcidev::Op::cfg_read)
          function_.config_read(static_cast<std::uint32_t>(access.addr), size, std::move(done));
        else
          function_.bar_read(access.bar, access.addr, size, std::move(done));
        break;
      }
      default:
        queues.complete(kCommandQueue, head, 0);  // decode_access lets nothing else through
        break;
    }
  }
}

void VirtioPcidevDevice::deliver_interrupts(DeviceQueues& queues) {
  while (!pending_.empty()) {
    std::optional<DescriptorChain> chain = queues.pop(kInterruptQueue);
    if (!chain) return;  // held until the guest posts a buffer
    const PciInterrupt next = pending_.front();
    const auto message = next.msi ? pcidev::encode_msi(next.data) : pcidev::encode_intx(next.pin);
    if (chain->writable_bytes < message.size()) {
      queues.log().warn("{}: an interrupt buffer of {} bytes (the message is {}): returned unused", queues.name(),
                        chain->writable_bytes, message.size());
      queues.complete(kInterruptQueue, chain->head, 0);
      continue;
    }
    // Taken off the list before complete(): completing may call queue_event, and so this, again.
    pending_.pop_front();
    const std::size_t written = chain->scatter(message.data(), message.size());
    {
      std::lock_guard<std::mutex> lock(counters_mutex_);
      ++counters_.interrupts;
    }
    queues.complete(kInterruptQueue, chain->head, static_cast<std::uint32_t>(written));
  }
}

VirtioPcidevDevice::Counters VirtioPcidevDevice::counters() const {
  std::lock_guard<std::mutex> lock(counters_mutex_);
  return counters_;
}

}  // namespace emmcsim::transport
