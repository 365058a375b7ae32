// PciControllerFront — the daemon's PCI SD host controller for a User-Mode Linux guest
// (`emmcsim serve --uml-pci-socket`, docs/linux.md): a models::Gl9763e in the timed world, on
// port 1 of its bus switch, served to the guest as a transport::PciFunction that
// transport::VirtioPcidevDevice reaches over virt-pci.
//
//   guest (UML: sdhci-pci, mmc core)            daemon
//   ─────────────────────────────────           ─────────────────────────────────────────────
//   config / MMIO access ── virtio-pcidev ──▶ VirtioPcidevDevice ──job──▶ config / bar0 initiator
//                                                (asio strand)        (SystemC kernel thread)
//   guest RAM (shared fd) ◀──────── DMA target ◀── Gl9763e.sdhci.dma
//   MSI ◀── irq queue ◀── PciGuestLink ◀── posedge of Gl9763e.sdhci.irq, the data word the guest
//                                          programmed into the MSI capability
//                                          Gl9763e.sdhci.card ──▶ EmmcBusMux host[1] ──▶ card
//
// Every access runs as a job in the kernel thread, after the jobs posted before it (the bridge's
// and virtio-rpmb's requests included), in zero simulated time; the command it starts runs on in
// simulated time, and the interrupt it raises goes to the guest at that simulated instant (as fast
// as the host allows: without time travel the guest's clock is the host's).
//
// Ownership of the card: while a guest is connected the bus switch gives the card to the
// guest's controller, and the daemon's other fronts get EBUSY (guest_attached()). On connect the
// daemon's own driver flushes the card's cache and lets go of it (shutdown); when the guest goes,
// the switch gives the card back and the driver re-initialises it (power cycle, probe) before
// its next request. The card's contents, key and counter are one: what the guest wrote, the
// bridge reads afterwards.
//
// DMA reaches the guest memory of the latest vhost-user memory table, only while the guest has
// set bus mastering in the command register; any other access (no guest, bus master off, an
// address outside guest memory) is refused with TLM_ADDRESS_ERROR_RESPONSE, which the Sdhci turns
// into an ADMA error or a data timeout.
#pragma once

#include <spdlog/logger.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "emmcsim/models/timed_block_device.hpp"
#include "emmcsim/transport/virtio_pcidev_device.hpp"

namespace emmcsim::tools {

class PciControllerFront final : public transport::PciFunction {
 public:
  // Elaborates the controller beside `timed`'s card; `timed` needs Options::shared_bus and must
  // not have started. Both `timed` and `log` outlive this; the kernel must have stopped before it
  // is destroyed.
  PciControllerFront(models::TimedBlockDevice& timed, std::shared_ptr<spdlog::logger> log);
  ~PciControllerFront() override;
  PciControllerFront(const PciControllerFront&) = delete;
  PciControllerFront& operator=(const PciControllerFront&) = delete;

  // transport::PciFunction: each posts a job into the kernel thread.
  void connect(std::shared_ptr<transport::PciGuestLink> link) override;
  void set_guest_memory(std::shared_ptr<const transport::GuestMemory> memory) override;
  void disconnect() override;
  void config_read(std::uint32_t offset, std::uint32_t size, ReadDone done) override;
  void config_write(std::uint32_t offset, std::vector<std::uint8_t> bytes) override;
  void bar_read(unsigned bar, std::uint64_t offset, std::uint32_t size, ReadDone done) override;
  void bar_write(unsigned bar, std::uint64_t offset, std::vector<std::uint8_t> bytes) override;
  void bar_fill(unsigned bar, std::uint64_t offset, std::uint32_t size, std::uint8_t value) override;

  // Kernel thread (a job): a guest has the card (connected, or the card kept for a time-travel
  // guest that has started and not yet connected its PCI bus).
  bool guest_attached() const;

  // Time travel (TimeTravelClock): any thread. take_card_for_guest() gives the card to the
  // guest's controller now (as connect() would: the daemon's driver flushes and lets go), then
  // calls `then` in the kernel thread — before any guest access, so none waits behind the
  // flush's simulated time. return_card_if_unused() gives it back to the daemon's driver when
  // no guest is connected. `interrupt_sent` hears of each interrupt handed to the guest link,
  // in the kernel thread, before the gate rests (set it before the kernel starts).
  void take_card_for_guest(std::function<void()> then);
  void return_card_if_unused();
  void on_interrupt_sent(std::function<void()> interrupt_sent);

 private:
  struct Module;
  models::TimedBlockDevice& timed_;
  std::shared_ptr<spdlog::logger> log_;
  std::unique_ptr<Module> module_;
};

}  // namespace emmcsim::tools
