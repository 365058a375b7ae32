// PciControllerFront (see pci_controller_front.hpp).
#include "pci_controller_front.hpp"

#include <chrono>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <string>
#include <systemc>
#include <tlm>
#include <tlm_utils/simple_initiator_socket.h>
#include <tlm_utils/simple_target_socket.h>
#include <utility>

#include "emmcsim/mmc/linux_block_driver.hpp"
#include "emmcsim/models/gl9763e.hpp"

namespace emmcsim::tools {
namespace {

constexpr std::uint32_t kCommandBusMaster = 1u << 2;
constexpr std::uint32_t kCommandIntxDisable = 1u << 10;
constexpr std::size_t kGuestPort = 1;
constexpr std::size_t kDaemonPort = 0;

// The widest naturally aligned access of at most 8 bytes that starts at `offset` and fits in
// `remaining` (a BAR access of another size is cut into these, as a bus would).
std::uint32_t chunk_at(std::uint64_t offset, std::uint32_t remaining) {
  for (std::uint32_t width = 8; width > 1; width /= 2)
    if (offset % width == 0 && remaining >= width) return width;
  return 1;
}

}  // namespace

// The SystemC side: the controller, its initiators for the guest's accesses, its DMA target and
// its interrupt line. Touched only in the kernel thread.
struct PciControllerFront::Module : sc_core::sc_module {
  models::Gl9763e chip;
  tlm_utils::simple_initiator_socket<Module> to_config;
  tlm_utils::simple_initiator_socket<Module> to_bar0;
  tlm_utils::simple_target_socket<Module> dma;
  sc_core::sc_signal<bool> irq;

  spdlog::logger& log;
  std::shared_ptr<transport::PciGuestLink> link;
  std::shared_ptr<const transport::GuestMemory> memory;
  bool attached = false;
  bool card_with_guest_port = false;  // the bus switch gives the card to the guest's controller
  std::function<void()> interrupt_sent;
  std::uint64_t dma_refusals = 0;
  // The guest's session, for the line at disconnect (docs/linux.md).
  struct Session {
    sc_core::sc_time started;
    std::chrono::steady_clock::time_point wall_started;
    std::uint64_t accesses = 0;
    std::uint64_t interrupts = 0;
    std::uint64_t dma_bytes = 0;
  } session;

  Module(sc_core::sc_module_name name, models::EmmcBusMux& mux, spdlog::logger& log_to)
      : sc_module(name),
        chip("gl9763e"),
        to_config("to_config"),
        to_bar0("to_bar0"),
        dma("dma"),
        irq("irq"),
        log(log_to) {
    to_config.bind(chip.config);
    to_bar0.bind(chip.bar0);
    chip.sdhci.dma.bind(dma);
    chip.sdhci.irq.bind(irq);
    chip.sdhci.card.bind(mux.host[kGuestPort]);
    dma.register_b_transport(this, &Module::dma_transport);
    SC_HAS_PROCESS(Module);
    SC_METHOD(on_irq);
    sensitive << irq.posedge_event();
    dont_initialize();
  }
  const char* kind() const override { return "emmcsim::tools::PciControllerFront"; }

  // One access of 1, 2, 4 or 8 bytes on `socket`; false when the chip refused it.
  bool access(tlm_utils::simple_initiator_socket<Module>& socket, tlm::tlm_command command, std::uint64_t address,
              std::uint8_t* data, std::uint32_t length) {
    tlm::tlm_generic_payload p;
    p.set_command(command);
    p.set_address(address);
    p.set_data_ptr(data);
    p.set_data_length(length);
    p.set_streaming_width(length);
    p.set_byte_enable_ptr(nullptr);
    p.set_dmi_allowed(false);
    p.set_response_status(tlm::TLM_INCOMPLETE_RESPONSE);
    sc_core::sc_time delay = sc_core::SC_ZERO_TIME;
    socket->b_transport(p, delay);
    return p.is_response_ok();
  }

  // A BAR access of any size, cut into aligned accesses.
  bool bar_access(tlm::tlm_command command, std::uint64_t offset, std::uint8_t* data, std::uint32_t size) {
    for (std::uint32_t done = 0; done < size;) {
      const std::uint32_t width = chunk_at(offset + done, size - done);
      if (!access(to_bar0, command, offset + done, data + done, width)) return false;
      done += width;
    }
    return true;
  }

  void dma_transport(tlm::tlm_generic_payload& p, sc_core::sc_time& /*delay*/) {
    p.set_response_status(tlm::TLM_ADDRESS_ERROR_RESPONSE);
    const std::uint64_t address = p.get_address();
    const std::uint32_t length = p.get_data_length();
    const char* refusal = nullptr;
    std::uint8_t* guest = nullptr;
    if (!attached || !memory)
      refusal = "no guest memory";
    else if ((chip.config_dword(0x04) & kCommandBusMaster) == 0)
      refusal = "bus mastering is off in the command register";
    else if (p.get_byte_enable_ptr() != nullptr || p.get_data_ptr() == nullptr)
      refusal = "byte enables";
    else if ((guest = memory->from_guest(address, length)) == nullptr)
      refusal = "outside guest memory";
    if (refusal != nullptr) {
      if (dma_refusals++ < 10)
        log.warn("PCI controller: DMA {} of {} bytes at {:#x} refused: {}", p.is_read() ? "read" : "write", length,
                 address, refusal);
      return;
    }
    if (p.is_read())
      std::memcpy(p.get_data_ptr(), guest, length);
    else if (p.is_write())
      std::memcpy(guest, p.get_data_ptr(), length);
    session.dma_bytes += length;
    p.set_response_status(tlm::TLM_OK_RESPONSE);
  }

  // The controller's line went high: an MSI with the data word the guest programmed, or INTx A
  // when MSI is off and INTx is not disabled.
  // With a time gate, time stops here until the guest has taken the interrupt.
  void on_irq() {
    if (!link) return;
    ++session.interrupts;
    const models::Gl9763e::Msi msi = chip.msi();
    if (msi.enabled) {
      send_interrupt(transport::PciInterrupt{true, msi.data, 1});
    } else if ((chip.config_dword(0x04) & kCommandIntxDisable) == 0) {
      send_interrupt(transport::PciInterrupt{false, 0, 1});
    }
  }
  void send_interrupt(const transport::PciInterrupt& interrupt) {
    if (gate != nullptr) gate->stop_here();
    if (interrupt_sent) interrupt_sent();
    link->interrupt(interrupt);
  }
  models::TimeGate* gate = nullptr;

  // The daemon's driver lets go of the card as Linux does at shutdown (cache flushed, user
  // area), and the guest's controller gets it.
  void give_card_to_guest(mmc::LinuxBlockDriver& driver, models::EmmcBusMux& mux, spdlog::logger& to) {
    if (card_with_guest_port) return;
    const int error = driver.shutdown();
    if (error != 0) to.warn("PCI controller: the daemon's driver could not flush the card ({})", std::strerror(error));
    mux.select(kGuestPort);
    card_with_guest_port = true;
  }
  void give_card_to_daemon(mmc::LinuxBlockDriver& driver, models::EmmcBusMux& mux, spdlog::logger& to) {
    if (!card_with_guest_port) return;
    mux.select(kDaemonPort);
    card_with_guest_port = false;
    try {
      driver.reinitialise();
      to.info("PCI controller: the guest is gone; the daemon's driver has the card again");
    } catch (const std::exception& e) {
      to.error("PCI controller: the guest is gone, and the card does not come up for the daemon's driver: {}",
               e.what());
    }
  }
};

PciControllerFront::PciControllerFront(models::TimedBlockDevice& timed, std::shared_ptr<spdlog::logger> log)
    : timed_(timed), log_(std::move(log)) {
  if (timed_.mux() == nullptr)
    throw std::logic_error("PciControllerFront: the timed device has no bus switch (Options::shared_bus)");
  module_ = std::make_unique<Module>("pci_controller", *timed_.mux(), *log_);
  module_->gate = timed_.time_gate();
}

PciControllerFront::~PciControllerFront() = default;

void PciControllerFront::connect(std::shared_ptr<transport::PciGuestLink> link) {
  timed_.post([this, link = std::move(link)](mmc::LinuxBlockDriver& driver) {
    Module& m = *module_;
    if (!m.attached) {
      m.give_card_to_guest(driver, *timed_.mux(), *log_);
      log_->info("PCI controller: a User-Mode Linux guest connected; the card is its until it goes");
    }
    m.attached = true;
    m.link = link;
    m.dma_refusals = 0;
    m.session = Module::Session{sc_core::sc_time_stamp(), std::chrono::steady_clock::now()};
  });
}

void PciControllerFront::set_guest_memory(std::shared_ptr<const transport::GuestMemory> memory) {
  timed_.post([this, memory = std::move(memory)](mmc::LinuxBlockDriver&) { module_->memory = memory; });
}

void PciControllerFront::disconnect() {
  timed_.post([this](mmc::LinuxBlockDriver& driver) {
    Module& m = *module_;
    if (!m.attached) return;
    m.attached = false;
    m.link.reset();
    m.memory.reset();
    const double simulated_ms = (sc_core::sc_time_stamp() - m.session.started).to_seconds() * 1e3;
    const double wall_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - m.session.wall_started).count();
    log_->info(
        "PCI controller: guest session: {} accesses, {} interrupts, {} bytes of DMA, {:.3f} ms simulated in "
        "{:.3f} ms wall",
        m.session.accesses, m.session.interrupts, m.session.dma_bytes, simulated_ms, wall_ms);
    m.give_card_to_daemon(driver, *timed_.mux(), *log_);
  });
}

void PciControllerFront::take_card_for_guest(std::function<void()> then) {
  timed_.post([this, then = std::move(then)](mmc::LinuxBlockDriver& driver) {
    module_->give_card_to_guest(driver, *timed_.mux(), *log_);
    if (then) then();
  });
}

void PciControllerFront::return_card_if_unused() {
  timed_.post([this](mmc::LinuxBlockDriver& driver) {
    if (!module_->attached) module_->give_card_to_daemon(driver, *timed_.mux(), *log_);
  });
}

void PciControllerFront::on_interrupt_sent(std::function<void()> interrupt_sent) {
  module_->interrupt_sent = std::move(interrupt_sent);
}

void PciControllerFront::config_read(std::uint32_t offset, std::uint32_t size, ReadDone done) {
  timed_.post([this, offset, size, done = std::move(done)](mmc::LinuxBlockDriver&) {
    ++module_->session.accesses;
    std::vector<std::uint8_t> bytes(size);
    if (!module_->access(module_->to_config, tlm::TLM_READ_COMMAND, offset, bytes.data(), size)) bytes.clear();
    done(std::move(bytes));
  });
}

void PciControllerFront::config_write(std::uint32_t offset, std::vector<std::uint8_t> bytes) {
  timed_.post([this, offset, bytes = std::move(bytes)](mmc::LinuxBlockDriver&) mutable {
    ++module_->session.accesses;
    module_->access(module_->to_config, tlm::TLM_WRITE_COMMAND, offset, bytes.data(),
                    static_cast<std::uint32_t>(bytes.size()));
  });
}

void PciControllerFront::bar_read(unsigned bar, std::uint64_t offset, std::uint32_t size, ReadDone done) {
  timed_.post([this, bar, offset, size, done = std::move(done)](mmc::LinuxBlockDriver&) {
    ++module_->session.accesses;
    std::vector<std::uint8_t> bytes(size);
    if (bar != 0 || !module_->bar_access(tlm::TLM_READ_COMMAND, offset, bytes.data(), size)) bytes.clear();
    done(std::move(bytes));
  });
}

void PciControllerFront::bar_write(unsigned bar, std::uint64_t offset, std::vector<std::uint8_t> bytes) {
  timed_.post([this, bar, offset, bytes = std::move(bytes)](mmc::LinuxBlockDriver&) mutable {
    ++module_->session.accesses;
    if (bar == 0)
      module_->bar_access(tlm::TLM_WRITE_COMMAND, offset, bytes.data(), static_cast<std::uint32_t>(bytes.size()));
  });
}

void PciControllerFront::bar_fill(unsigned bar, std::uint64_t offset, std::uint32_t size, std::uint8_t value) {
  bar_write(bar, offset, std::vector<std::uint8_t>(size, value));
}

bool PciControllerFront::guest_attached() const { return module_->attached || module_->card_with_guest_port; }

}  // namespace emmcsim::tools
