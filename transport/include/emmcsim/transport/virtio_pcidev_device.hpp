// VirtioPcidevDevice: a PCI function served to User-Mode Linux's virt-pci as a virtio-pcidev
// device over vhost-user (virtio_pcidev.hpp, ../shared/spec/uml-pci.md, docs/linux.md). The
// guest's config-space and BAR accesses arrive on the command queue and go to a PciFunction in
// order; the function's interrupts go back on the interrupt queue. transport/ knows no SystemC:
// tools/ binds the PciFunction to models::Gl9763e in the simulation kernel.
//
//   command queue (0)   each chain is decoded (decode_access; a chain that does not decode is
//                       returned unused with one warning, and the guest reads all-ones). Writes
//                       (CFG_WRITE, MMIO_WRITE, MMIO_MEMSET) are posted: handed to the function
//                       and completed at once. Reads (CFG_READ, MMIO_READ) are handed to the
//                       function and completed when it answers, with the answer in the guest's
//                       buffer; the chains after a read wait for it, so the function sees the
//                       guest's accesses in the guest's order and the back-end acknowledges the
//                       in-band kick only when the answer is in guest memory.
//   interrupt queue (1) the guest posts empty buffers; an interrupt from the function fills one
//                       (MSI with its data word, or INTx with its pin) and calls the guest. With
//                       none posted, interrupts wait, in order, until the guest posts some.
//   guest memory        the function's DMA window: the memory the latest chain was read through
//                       (guest-physical addresses, as UML's dma-direct hands them to drivers).
//
// Offered: VIRTIO_F_VERSION_1; protocol features REPLY_ACK, BACKEND_REQ, CONFIG and
// INBAND_NOTIFICATIONS (what virtio_uml asks for; time travel needs the in-band kicks). No
// virtio config space. Threading: every call on the connection's strand (VhostUserDevice), and
// PciGuestLink::interrupt and the read completions from any thread (they post onto the strand).
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "emmcsim/transport/guest_memory.hpp"
#include "emmcsim/transport/vhost_user_device.hpp"
#include "emmcsim/transport/virtio_pcidev.hpp"

namespace emmcsim::transport {

// An interrupt the function raises: an MSI write of `data` (the vector's data word the guest
// programmed), or INTx on `pin` (1..4).
struct PciInterrupt {
  bool msi = true;
  std::uint32_t data = 0;
  unsigned pin = 1;
};

// What a PCI function sees of the guest while it is connected.
class PciGuestLink {
 public:
  virtual ~PciGuestLink() = default;
  // From any thread. Delivered in order; a link whose guest is gone drops them.
  virtual void interrupt(const PciInterrupt& interrupt) = 0;
};

// The function behind the BARs and the config space. Every call comes from the device in the
// guest's order; an implementation that serves them elsewhere (the SystemC kernel) keeps that
// order. A read's answer is exactly `size` bytes, or empty for a failed access (the guest reads
// all-ones); `done` may be called from any thread, once.
class PciFunction {
 public:
  using ReadDone = std::function<void(std::vector<std::uint8_t> bytes)>;
  virtual ~PciFunction() = default;

  // A guest connected (its link), and the guest memory DMA reaches (again each time it changes).
  virtual void connect(std::shared_ptr<PciGuestLink> link) = 0;
  virtual void set_guest_memory(std::shared_ptr<const GuestMemory> memory) = 0;
  // The guest is gone (or reset the device): stop interrupting, forget its memory.
  virtual void disconnect() = 0;

  virtual void config_read(std::uint32_t offset, std::uint32_t size, ReadDone done) = 0;
  virtual void config_write(std::uint32_t offset, std::vector<std::uint8_t> bytes) = 0;
  virtual void bar_read(unsigned bar, std::uint64_t offset, std::uint32_t size, ReadDone done) = 0;
  virtual void bar_write(unsigned bar, std::uint64_t offset, std::vector<std::uint8_t> bytes) = 0;
  virtual void bar_fill(unsigned bar, std::uint64_t offset, std::uint32_t size, std::uint8_t value) = 0;
};

class VirtioPcidevDevice final : public VhostUserDevice {
 public:
  static constexpr std::uint32_t kMaxQueueSize = 1024;

  // `function` must outlive the device.
  explicit VirtioPcidevDevice(PciFunction& function);
  ~VirtioPcidevDevice() override;

  std::uint32_t device_id() const override { return virtio_pcidev::kVirtioDeviceId; }
  std::uint64_t device_features() const override;
  std::uint64_t protocol_features() const override;
  std::size_t queue_count() const override { return 2; }
  std::uint32_t max_queue_size() const override { return kMaxQueueSize; }
  std::string queue_name(std::size_t queue) const override;
  std::optional<std::vector<std::uint8_t>> read_config(std::uint32_t offset, std::uint32_t size) const override;

  void start(const std::shared_ptr<DeviceQueues>& queues) override;
  void queue_event(DeviceQueues& queues, std::size_t queue) override;
  void reset(DeviceQueues& queues) override;
  void stop() override;

  // Counters for tests and logs (read on the strand, or after the connection ended).
  struct Counters {
    std::uint64_t accesses = 0;            // decoded and handed to the function
    std::uint64_t refused = 0;             // chains that did not decode
    std::uint64_t interrupts = 0;          // delivered to the guest
    std::uint64_t interrupts_dropped = 0;  // raised with no guest connected
  };
  Counters counters() const;

 private:
  class Link;
  void serve_commands(DeviceQueues& queues);
  void deliver_interrupts(DeviceQueues& queues);
  void note_memory(const DescriptorChain& chain);

  PciFunction& function_;
  std::shared_ptr<Link> link_;
  std::shared_ptr<const GuestMemory> memory_;
  std::optional<DescriptorChain> reading_;  // the read whose answer the function owes
  std::deque<PciInterrupt> pending_;
  std::uint64_t refusals_logged_ = 0;
  mutable std::mutex counters_mutex_;
  Counters counters_;
};

}  // namespace emmcsim::transport
