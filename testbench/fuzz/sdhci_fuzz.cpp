// libFuzzer target: models::Sdhci programmed by an untrusted driver. Register writes and reads
// of every width at any offset, ADMA2 descriptor tables and data written into system memory,
// and simulated time passing, decoded from the input — so the controller's command engine,
// PIO buffer, SDMA pauses, ADMA2 walker, Auto CMD12/CMD23, resets and power switching all see
// sequences no driver would write.
//
// SystemC elaborates once per process and cannot add modules after sc_start(), so one platform
// (Sdhci, an EmmcDevice on a 64 MiB RAM image, 64 KiB of system memory) serves every input. Each
// input begins with a software reset (all), which powers the card off and cancels whatever the
// previous input left running.
//
// Input: a byte choosing the card's faults (bit 0 every CMD13 lost, bit 1/2 a bad CRC on block
// (byte >> 4) of every CMD18/CMD25, bit 3 every CMD6 1 ms busier), then steps until the input
// ends (at most kMaxSteps), each an op byte:
//   op % 6 = 0  register write: offset byte, width byte (% 4: 1, 2, 4, 8 bytes), u32 value
//   op % 6 = 1  register read: offset byte, width byte
//   op % 6 = 2  a kRecipes entry: a well-formed register sequence (power on, clocks, commands
//               with data) so that inputs reach deep states quickly
//   op % 6 = 3  memory write: u16 address, length byte, then that many bytes
//   op % 6 = 4  time passes: u16 microseconds of simulation
//   op % 6 = 5  an ADMA2 descriptor at u16 address: attribute byte, u16 length, u16 data address
//
// Invariants (__builtin_trap on violation):
//   - no access inside the map of a width the map has is refused; accesses outside it are;
//   - the capabilities and version registers never change;
//   - after a software reset (all) the CMD and DAT lines are free and no status is set;
//   - simulation always reaches the time asked for (nothing spins at one instant).
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <systemc>
#include <tlm>
#include <tlm_utils/simple_initiator_socket.h>
#include <vector>

#include "emmcsim/mmc/device_config.hpp"
#include "emmcsim/mmc/image.hpp"
#include "emmcsim/models/adma2.hpp"
#include "emmcsim/models/emmc_device.hpp"
#include "emmcsim/models/fault_plan.hpp"
#include "emmcsim/models/sdhci.hpp"
#include "emmcsim/models/sdhci_registers.hpp"
#include "fuzz_support.hpp"
#include "system_memory.hpp"

namespace {

namespace mmc = emmcsim::mmc;
namespace models = emmcsim::models;
namespace reg = emmcsim::models::sdhci;

constexpr std::size_t kMaxSteps = 128;
constexpr std::size_t kMemorySize = 64 * 1024;

class Cpu : public sc_core::sc_module {
 public:
  tlm_utils::simple_initiator_socket<Cpu> bus;
  explicit Cpu(sc_core::sc_module_name name) : sc_module(name), bus("bus") {}
  tlm::tlm_response_status access(bool write, std::uint64_t offset, std::uint8_t* data, unsigned width) {
    return emmcsim::testing::register_access(bus, write ? tlm::TLM_WRITE_COMMAND : tlm::TLM_READ_COMMAND, offset, data,
                                             width);
  }
  void write(std::uint32_t offset, std::uint32_t value, unsigned width) {
    if (access(true, offset, reinterpret_cast<std::uint8_t*>(&value), width) != tlm::TLM_OK_RESPONSE) __builtin_trap();
  }
  std::uint32_t read(std::uint32_t offset, unsigned width) {
    std::uint32_t value = 0;
    if (access(false, offset, reinterpret_cast<std::uint8_t*>(&value), width) != tlm::TLM_OK_RESPONSE) __builtin_trap();
    return value;
  }
};

struct Platform {
  Platform()
      : config(emmcsim::fuzzing::small_device_config()),
        image(config),
        device("card", config, image.backend()),
        sdhci("sdhci"),
        memory("memory", kMemorySize),
        cpu("cpu"),
        irq("irq") {
    cpu.bus.bind(sdhci.regs);
    sdhci.dma.bind(memory.socket);
    sdhci.card.bind(device.bus);
    sdhci.irq(irq);
    sc_core::sc_report_handler::set_actions(models::Sdhci::kMessageType, sc_core::SC_DO_NOTHING);
    sc_core::sc_report_handler::set_actions(models::EmmcDevice::kMessageType, sc_core::SC_DO_NOTHING);
    sc_core::sc_start(sc_core::SC_ZERO_TIME);
    capabilities = cpu.read(reg::kCapabilities, 4);
    capabilities_high = cpu.read(reg::kCapabilities + 4, 4);
  }
  void advance(const sc_core::sc_time& t) {
    const sc_core::sc_time until = sc_core::sc_time_stamp() + t;
    sc_core::sc_start(t);
    if (sc_core::sc_time_stamp() != until) __builtin_trap();
  }
  mmc::DeviceConfig config;
  mmc::MemoryImage image;
  models::EmmcDevice device;
  models::Sdhci sdhci;
  emmcsim::testing::SystemMemory memory;
  Cpu cpu;
  sc_core::sc_signal<bool> irq;
  std::uint32_t capabilities = 0;
  std::uint32_t capabilities_high = 0;
};

Platform& platform() {
  static Platform* p = new Platform;  // lives for the process; SystemC cannot tear it down
  return *p;
}

// Well-formed sequences: (offset, width, value) triples.
struct Write {
  std::uint32_t offset;
  unsigned width;
  std::uint32_t value;
};
std::uint32_t command(std::uint8_t index, std::uint16_t flags, std::uint16_t mode) {
  return mode | (std::uint32_t{reg::command_word(index, flags)} << 16);
}
constexpr std::uint16_t kR1 = reg::kCmdResponseShort | reg::kCmdCrcCheck | reg::kCmdIndexCheck;
constexpr std::uint16_t kR1b = reg::kCmdResponseShortBusy | reg::kCmdCrcCheck | reg::kCmdIndexCheck;
const std::vector<std::vector<Write>> kRecipes = {
    // power and a 400 kHz clock, every status enabled and signalled
    {{reg::kNormalIntStatusEnable, 4, 0xFFFF7FFF}, {reg::kNormalIntSignalEnable, 4, 0xFFFF7FFF},
     {reg::kPowerControl, 1, reg::kPower330 | reg::kPowerOn},
     {reg::kClockControl, 2, reg::divider_bits(250) | reg::kClockInternalEnable | reg::kClockCardEnable}},
    // 50 MHz, 8-bit, high speed
    {{reg::kClockControl, 2, reg::divider_bits(2) | reg::kClockInternalEnable | reg::kClockCardEnable},
     {reg::kHostControl1, 1, reg::kCtrl8BitBus | reg::kCtrlHighSpeed}},
    // CMD0, CMD1, CMD2, CMD3, CMD7 (one each; the card needs CMD1 repeated)
    {{reg::kArgument, 4, 0}, {reg::kTransferMode, 4, command(0, 0, 0)}},
    {{reg::kArgument, 4, 0x40FF8080}, {reg::kTransferMode, 4, command(1, reg::kCmdResponseShort, 0)}},
    {{reg::kArgument, 4, 0}, {reg::kTransferMode, 4, command(2, reg::kCmdResponseLong, 0)}},
    {{reg::kArgument, 4, 1u << 16}, {reg::kTransferMode, 4, command(3, kR1, 0)}},
    {{reg::kArgument, 4, 1u << 16}, {reg::kTransferMode, 4, command(7, kR1, 0)}},
    // CMD6 bus width 8, HS_TIMING 1, PARTITION_CONFIG RPMB
    {{reg::kArgument, 4, (3u << 24) | (183u << 16) | (2u << 8)}, {reg::kTransferMode, 4, command(6, kR1b, 0)}},
    {{reg::kArgument, 4, (3u << 24) | (185u << 16) | (1u << 8)}, {reg::kTransferMode, 4, command(6, kR1b, 0)}},
    {{reg::kArgument, 4, (3u << 24) | (179u << 16) | (3u << 8)}, {reg::kTransferMode, 4, command(6, kR1b, 0)}},
    // CMD8 by PIO
    {{reg::kBlockSize, 2, 512}, {reg::kBlockCount, 2, 1}, {reg::kArgument, 4, 0},
     {reg::kTransferMode, 4, command(8, kR1 | reg::kCmdDataPresent, reg::kTrnRead)}},
    // CMD18 / CMD25 of 4 blocks by ADMA2 (table at 0x100) with Auto CMD23
    {{reg::kHostControl1, 1, reg::kCtrl8BitBus | reg::kCtrlAdma32}, {reg::kAdmaAddress, 4, 0x100},
     {reg::kSdmaAddress, 4, 4}, {reg::kBlockSize, 2, 512}, {reg::kBlockCount, 2, 4}, {reg::kArgument, 4, 8},
     {reg::kTransferMode, 4,
      command(18, kR1 | reg::kCmdDataPresent,
              reg::kTrnDmaEnable | reg::kTrnBlockCountEnable | reg::kTrnAutoCmd23 | reg::kTrnRead | reg::kTrnMultiBlock)}},
    {{reg::kHostControl1, 1, reg::kCtrl8BitBus | reg::kCtrlAdma32}, {reg::kAdmaAddress, 4, 0x100},
     {reg::kSdmaAddress, 4, 4}, {reg::kBlockSize, 2, 512}, {reg::kBlockCount, 2, 4}, {reg::kArgument, 4, 8},
     {reg::kTransferMode, 4,
      command(25, kR1 | reg::kCmdDataPresent,
              reg::kTrnDmaEnable | reg::kTrnBlockCountEnable | reg::kTrnAutoCmd23 | reg::kTrnMultiBlock)}},
    // CMD18 of 16 blocks by SDMA at 0x2000, 4 KiB boundary, Auto CMD12
    {{reg::kHostControl1, 1, reg::kCtrl8BitBus}, {reg::kSdmaAddress, 4, 0x2000}, {reg::kBlockSize, 2, 512},
     {reg::kBlockCount, 2, 16}, {reg::kArgument, 4, 0},
     {reg::kTransferMode, 4,
      command(18, kR1 | reg::kCmdDataPresent,
              reg::kTrnDmaEnable | reg::kTrnBlockCountEnable | reg::kTrnAutoCmd12 | reg::kTrnRead | reg::kTrnMultiBlock)}},
    // the SDMA address written again (resumes a paused transfer)
    {{reg::kSdmaAddress, 4, 0x3000}},
    // CMD13, CMD12 (abort)
    {{reg::kArgument, 4, 1u << 16}, {reg::kTransferMode, 4, command(13, kR1, 0)}},
    {{reg::kArgument, 4, 0}, {reg::kTransferMode, 4, command(12, kR1b | reg::kCmdTypeAbort, 0)}},
    // resets of the lines, clearing every status
    {{reg::kSoftwareReset, 1, reg::kResetCmd | reg::kResetData}, {reg::kNormalIntStatus, 4, 0xFFFFFFFF}},
};

void check_after_reset(Cpu& cpu) {
  const std::uint32_t present = cpu.read(reg::kPresentState, 4);
  if (present & (reg::kCmdInhibit | reg::kDataInhibit | reg::kBufferReadEnable | reg::kBufferWriteEnable))
    __builtin_trap();
  if (cpu.read(reg::kNormalIntStatus, 4) != 0) __builtin_trap();
}

}  // namespace

extern "C" int sc_main(int, char**) { return 0; }

// LeakSanitizer's scan faults on, or misreads, SystemC's QuickThreads coroutine stacks (as in the
// system scenarios), so this target runs ASan's other checks without leak detection.
extern "C" const char* __asan_default_options() { return "detect_leaks=0"; }

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Platform& p = platform();
  Cpu& cpu = p.cpu;
  cpu.write(reg::kSoftwareReset, reg::kResetAll, 1);
  check_after_reset(cpu);
  p.advance(sc_core::sc_time(1, sc_core::SC_US));
  std::memset(p.memory.bytes.data(), 0, p.memory.bytes.size());
  emmcsim::fuzzing::FuzzInput in(data, size);
  // The first byte picks the faults the card injects this time (none for most inputs).
  const std::uint8_t faults = in.byte();
  const std::uint32_t crc_block = faults >> 4;
  models::FaultPlan plan;
  if (faults & 1) plan.faults.push_back({models::FaultKind::command_timeout, 13, 0, 0, 0});
  if (faults & 2) plan.faults.push_back({models::FaultKind::data_crc, 18, 0, crc_block, 0});
  if (faults & 4) plan.faults.push_back({models::FaultKind::data_crc, 25, 0, crc_block, 0});
  if (faults & 8) plan.faults.push_back({models::FaultKind::extended_busy, 6, 0, 0, models::kMillisecond});
  p.device.set_fault_plan(plan);
  for (std::size_t step = 0; step < kMaxSteps && !in.done(); ++step) {
    const std::uint8_t op = in.byte();
    switch (op % 6) {
      case 0:
      case 1: {
        const std::uint32_t offset = in.byte();
        const unsigned width = 1u << (in.byte() % 4);
        std::uint8_t bytes[8] = {};
        const std::uint32_t value = in.u32();
        std::memcpy(bytes, &value, 4);
        const bool inside = offset % width == 0 && offset + width <= reg::kRegisterSpace;
        const tlm::tlm_response_status status = cpu.access(op % 6 == 0, offset, bytes, width);
        if ((status == tlm::TLM_OK_RESPONSE) != inside) __builtin_trap();
        break;
      }
      case 2:
        for (const Write& w : kRecipes[in.byte() % kRecipes.size()]) cpu.write(w.offset, w.value, w.width);
        break;
      case 3: {
        const std::uint32_t address = in.u16();
        const std::uint32_t length = in.byte();
        for (std::uint32_t i = 0; i < length; ++i) {
          const std::uint8_t b = in.byte();
          if (address + i < p.memory.bytes.size()) p.memory.bytes[address + i] = b;
        }
        break;
      }
      case 4:
        p.advance(sc_core::sc_time(static_cast<double>(in.u16()), sc_core::SC_US));
        break;
      case 5: {
        const std::uint32_t address = in.u16() & ~7u;
        models::Adma2Descriptor d = models::Adma2Descriptor::decode({in.byte(), 0, 0, 0, 0, 0, 0, 0});
        d.length = in.u16();
        d.address = in.u16();
        const auto bytes = d.encode();
        if (address + 8 <= p.memory.bytes.size()) std::memcpy(p.memory.bytes.data() + address, bytes.data(), 8);
        break;
      }
    }
    if (cpu.read(reg::kCapabilities, 4) != p.capabilities || cpu.read(reg::kCapabilities + 4, 4) != p.capabilities_high ||
        (cpu.read(reg::kHostVersion, 2) & 0xFF) != reg::kSpecVersion300)
      __builtin_trap();
  }
  cpu.write(reg::kSoftwareReset, reg::kResetAll, 1);
  check_after_reset(cpu);
  p.advance(sc_core::sc_time(1, sc_core::SC_US));
  return 0;
}
