// A virtual platform's first use of the installed package: a CPU thread programs an Sdhci host
// controller, which drives an EmmcDevice on its eMMC bus — power and clock, identification, then
// the EXT_CSD read by PIO through the buffer data port. install_test.sh checks what it prints.
#include <emmcsim/mmc/image.hpp>
#include <emmcsim/models/emmc_device.hpp>
#include <emmcsim/models/sdhci.hpp>
#include <emmcsim/models/sdhci_registers.hpp>

#include <cstdio>
#include <cstring>
#include <systemc>
#include <tlm>
#include <tlm_utils/simple_initiator_socket.h>
#include <tlm_utils/simple_target_socket.h>
#include <vector>

namespace {

namespace reg = emmcsim::models::sdhci;

// System memory the controller's DMA socket needs bound (PIO here, so nothing reaches it).
struct Memory : sc_core::sc_module {
  tlm_utils::simple_target_socket<Memory> socket;
  Memory(sc_core::sc_module_name name) : sc_module(name), socket("socket") {
    socket.register_b_transport(this, &Memory::b_transport);
  }
  void b_transport(tlm::tlm_generic_payload& p, sc_core::sc_time&) {
    p.set_response_status(tlm::TLM_ADDRESS_ERROR_RESPONSE);
  }
};

struct Cpu : sc_core::sc_module {
  tlm_utils::simple_initiator_socket<Cpu> bus;
  sc_core::sc_in<bool> irq;
  Cpu(sc_core::sc_module_name name) : sc_module(name), bus("bus"), irq("irq") {
    SC_HAS_PROCESS(Cpu);
    SC_THREAD(boot);
  }
  std::uint32_t access(tlm::tlm_command command, std::uint32_t offset, std::uint32_t value, unsigned width) {
    tlm::tlm_generic_payload p;
    p.set_command(command);
    p.set_address(offset);
    p.set_data_ptr(reinterpret_cast<unsigned char*>(&value));
    p.set_data_length(width);
    p.set_streaming_width(width);
    sc_core::sc_time delay = sc_core::SC_ZERO_TIME;
    bus->b_transport(p, delay);
    return value;
  }
  std::uint32_t read(std::uint32_t offset, unsigned width) { return access(tlm::TLM_READ_COMMAND, offset, 0, width); }
  void write(std::uint32_t offset, std::uint32_t value, unsigned width) {
    access(tlm::TLM_WRITE_COMMAND, offset, value, width);
  }
  // Waits on the interrupt line for a status bit in `mask` (or an error), then clears it.
  std::uint16_t wait_for(std::uint16_t mask) {
    write(reg::kNormalIntSignalEnable, mask, 2);
    write(reg::kErrorIntSignalEnable, 0xFFFF, 2);
    std::uint16_t status = 0;
    while (!((status = static_cast<std::uint16_t>(read(reg::kNormalIntStatus, 2))) & (mask | reg::kIntErrorSummary)))
      wait(irq.value_changed_event());
    write(reg::kNormalIntStatus, status & mask, 2);
    return status;
  }
  std::uint32_t command(std::uint8_t index, std::uint32_t arg, std::uint16_t flags, std::uint16_t mode = 0) {
    write(reg::kArgument, arg, 4);
    write(reg::kTransferMode, mode | (std::uint32_t{reg::command_word(index, flags)} << 16), 4);
    wait_for(reg::kIntCommandComplete);
    return read(reg::kResponse, 4);
  }
  void boot() {
    write(reg::kSoftwareReset, reg::kResetAll, 1);
    write(reg::kNormalIntStatusEnable, 0x7FFF, 2);
    write(reg::kErrorIntStatusEnable, 0xFFFF, 2);
    write(reg::kPowerControl, reg::kPower330 | reg::kPowerOn, 1);
    write(reg::kClockControl, reg::divider_bits(250) | reg::kClockInternalEnable | reg::kClockCardEnable,
          2);  // 400 kHz
    const std::uint16_t r1 = reg::kCmdResponseShort | reg::kCmdCrcCheck | reg::kCmdIndexCheck;
    command(0, 0, reg::kCmdResponseNone);
    while (!(command(1, 0x40FF8080, reg::kCmdResponseShort) & (1u << 31))) {
    }
    command(2, 0, reg::kCmdResponseLong | reg::kCmdCrcCheck);
    command(3, 1u << 16, r1);
    command(7, 1u << 16, r1);
    write(reg::kBlockSize, 512, 2);
    write(reg::kBlockCount, 1, 2);
    command(8, 0, r1 | reg::kCmdDataPresent, reg::kTrnRead);
    wait_for(reg::kIntBufferReadReady);
    std::vector<std::uint8_t> ext_csd(512);
    for (std::size_t i = 0; i < ext_csd.size(); i += 4) {
      const std::uint32_t word = read(reg::kBufferDataPort, 4);
      std::memcpy(ext_csd.data() + i, &word, 4);
    }
    wait_for(reg::kIntTransferComplete);
    std::printf("ext_csd_rev=%u rpmb_size_mult=%u at %s\n", ext_csd[192], ext_csd[168],
                sc_core::sc_time_stamp().to_string().c_str());
  }
};

}  // namespace

int sc_main(int, char**) {
  const emmcsim::mmc::DeviceConfig config = emmcsim::mmc::default_device_config();
  emmcsim::mmc::MemoryImage image(config);
  emmcsim::models::EmmcDevice card("card", config, image.backend());
  emmcsim::models::Sdhci sdhci("sdhci");
  Memory memory("memory");
  Cpu cpu("cpu");
  sc_core::sc_signal<bool> irq("irq");
  cpu.bus.bind(sdhci.regs);
  sdhci.dma.bind(memory.socket);
  sdhci.card.bind(card.bus);
  sdhci.irq(irq);
  cpu.irq(irq);
  sc_core::sc_start();
  return 0;
}
