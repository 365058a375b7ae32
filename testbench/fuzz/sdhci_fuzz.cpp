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
//   op % 6 = 2  a kRecipes entry: a well-formed register sequence written with SdhciDriver (power
//               on, clocks, commands with data) so that inputs reach deep states quickly
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
#include <iterator>
#include <memory>
#include <string>
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
#include "sdhci_driver.hpp"
#include "system_memory.hpp"

namespace {

namespace mmc = emmcsim::mmc;
namespace models = emmcsim::models;
namespace reg = emmcsim::models::sdhci;
using emmcsim::testing::kRespR1;
using emmcsim::testing::kRespR1b;
using emmcsim::testing::SdhciDriver;

constexpr std::size_t kMaxSteps = 128;
constexpr std::size_t kMemorySize = 64 * 1024;

// The CPU's sockets; SdhciDriver makes the accesses (from outside any thread: only its steps that
// write registers are used, never those that wait).
class Cpu : public sc_core::sc_module {
 public:
  tlm_utils::simple_initiator_socket<Cpu> bus;
  sc_core::sc_in<bool> irq;
  explicit Cpu(sc_core::sc_module_name name) : sc_module(name), bus("bus"), irq("irq") {}
};

struct Platform {
  Platform()
      : config(emmcsim::fuzzing::small_device_config()),
        image(config),
        device("card", config, image.backend()),
        sdhci("sdhci"),
        memory("memory", kMemorySize),
        cpu("cpu"),
        irq("irq"),
        driver(cpu.bus, cpu.irq, memory) {
    cpu.bus.bind(sdhci.regs);
    sdhci.dma.bind(memory.socket);
    sdhci.card.bind(device.bus);
    sdhci.irq(irq);
    cpu.irq(irq);
    driver.on_unexpected = [](const std::string&) { __builtin_trap(); };  // a refused access inside the map
    sc_core::sc_report_handler::set_actions(models::Sdhci::kMessageType, sc_core::SC_DO_NOTHING);
    sc_core::sc_report_handler::set_actions(models::EmmcDevice::kMessageType, sc_core::SC_DO_NOTHING);
    sc_core::sc_start(sc_core::SC_ZERO_TIME);
    capabilities = driver.rd32(reg::kCapabilities);
    capabilities_high = driver.rd32(reg::kCapabilities + 4);
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
  SdhciDriver driver;
  std::uint32_t capabilities = 0;
  std::uint32_t capabilities_high = 0;
};

Platform& platform() {
  static Platform* p = new Platform;  // lives for the process; SystemC cannot tear it down
  return *p;
}

// Well-formed sequences, each a few of SdhciDriver's register writes. The list's order is part
// of the corpus's meaning (an input picks a recipe by index): add at the end.
using Recipe = void (*)(SdhciDriver&);
constexpr std::uint16_t kReadMulti = reg::kTrnBlockCountEnable | reg::kTrnRead | reg::kTrnMultiBlock;
constexpr std::uint16_t kWriteMulti = reg::kTrnBlockCountEnable | reg::kTrnMultiBlock;
constexpr std::uint16_t kClockOn = reg::kClockInternalEnable | reg::kClockCardEnable;
const Recipe kRecipes[] = {
    // power and a 400 kHz clock, every status enabled and signalled
    [](SdhciDriver& d) {
      d.wr32(reg::kNormalIntStatusEnable, 0xFFFF7FFF);
      d.wr32(reg::kNormalIntSignalEnable, 0xFFFF7FFF);
      d.wr8(reg::kPowerControl, reg::kPower330 | reg::kPowerOn);
      d.wr16(reg::kClockControl, reg::divider_bits(250) | kClockOn);
    },
    // 50 MHz, 8-bit, high speed
    [](SdhciDriver& d) {
      d.wr16(reg::kClockControl, reg::divider_bits(2) | kClockOn);
      d.wr8(reg::kHostControl1, reg::kCtrl8BitBus | reg::kCtrlHighSpeed);
    },
    // CMD0, CMD1, CMD2, CMD3, CMD7 (one each; the card needs CMD1 repeated)
    [](SdhciDriver& d) { d.issue_command(0, 0, 0); },
    [](SdhciDriver& d) { d.issue_command(1, 0x40FF8080, reg::kCmdResponseShort); },
    [](SdhciDriver& d) { d.issue_command(2, 0, reg::kCmdResponseLong); },
    [](SdhciDriver& d) { d.issue_command(3, 1u << 16, kRespR1); },
    [](SdhciDriver& d) { d.issue_command(7, 1u << 16, kRespR1); },
    // CMD6 bus width 8, HS_TIMING 1, PARTITION_CONFIG RPMB
    [](SdhciDriver& d) { d.issue_command(6, SdhciDriver::switch_argument(183, 2), kRespR1b); },
    [](SdhciDriver& d) { d.issue_command(6, SdhciDriver::switch_argument(185, 1), kRespR1b); },
    [](SdhciDriver& d) { d.issue_command(6, SdhciDriver::switch_argument(179, 3), kRespR1b); },
    // CMD8 by PIO
    [](SdhciDriver& d) {
      d.wr16(reg::kBlockSize, 512);
      d.wr16(reg::kBlockCount, 1);
      d.issue_command(8, 0, kRespR1 | reg::kCmdDataPresent, reg::kTrnRead);
    },
    // CMD18 / CMD25 of 4 blocks by ADMA2 (table at 0x100) with Auto CMD23
    [](SdhciDriver& d) {
      d.wr8(reg::kHostControl1, reg::kCtrl8BitBus | reg::kCtrlAdma32);
      d.wr32(reg::kAdmaAddress, 0x100);
      d.wr32(reg::kSdmaAddress, 4);
      d.wr16(reg::kBlockSize, 512);
      d.wr16(reg::kBlockCount, 4);
      d.issue_command(18, 8, kRespR1 | reg::kCmdDataPresent, reg::kTrnDmaEnable | reg::kTrnAutoCmd23 | kReadMulti);
    },
    [](SdhciDriver& d) {
      d.wr8(reg::kHostControl1, reg::kCtrl8BitBus | reg::kCtrlAdma32);
      d.wr32(reg::kAdmaAddress, 0x100);
      d.wr32(reg::kSdmaAddress, 4);
      d.wr16(reg::kBlockSize, 512);
      d.wr16(reg::kBlockCount, 4);
      d.issue_command(25, 8, kRespR1 | reg::kCmdDataPresent, reg::kTrnDmaEnable | reg::kTrnAutoCmd23 | kWriteMulti);
    },
    // CMD18 of 16 blocks by SDMA at 0x2000, 4 KiB boundary, Auto CMD12
    [](SdhciDriver& d) {
      d.wr8(reg::kHostControl1, reg::kCtrl8BitBus);
      d.wr32(reg::kSdmaAddress, 0x2000);
      d.wr16(reg::kBlockSize, 512);
      d.wr16(reg::kBlockCount, 16);
      d.issue_command(18, 0, kRespR1 | reg::kCmdDataPresent, reg::kTrnDmaEnable | reg::kTrnAutoCmd12 | kReadMulti);
    },
    // the SDMA address written again (resumes a paused transfer)
    [](SdhciDriver& d) { d.wr32(reg::kSdmaAddress, 0x3000); },
    // CMD13, CMD12 (abort)
    [](SdhciDriver& d) { d.issue_command(13, 1u << 16, kRespR1); },
    [](SdhciDriver& d) { d.issue_command(12, 0, kRespR1b | reg::kCmdTypeAbort); },
    // resets of the lines, clearing every status
    [](SdhciDriver& d) {
      d.wr8(reg::kSoftwareReset, reg::kResetCmd | reg::kResetData);
      d.wr32(reg::kNormalIntStatus, 0xFFFFFFFF);
    },
};

void check_after_reset(SdhciDriver& d) {
  const std::uint32_t present = d.rd32(reg::kPresentState);
  if (present & (reg::kCmdInhibit | reg::kDataInhibit | reg::kBufferReadEnable | reg::kBufferWriteEnable))
    __builtin_trap();
  if (d.rd32(reg::kNormalIntStatus) != 0) __builtin_trap();
}

}  // namespace

extern "C" int sc_main(int, char**) { return 0; }

// LeakSanitizer's scan faults on, or misreads, SystemC's QuickThreads coroutine stacks (as in the
// system scenarios), so this target runs ASan's other checks without leak detection.
extern "C" const char* __asan_default_options() { return "detect_leaks=0"; }

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Platform& p = platform();
  SdhciDriver& d = p.driver;
  d.wr8(reg::kSoftwareReset, reg::kResetAll);
  check_after_reset(d);
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
        const tlm::tlm_response_status status =
            d.access(op % 6 == 0 ? tlm::TLM_WRITE_COMMAND : tlm::TLM_READ_COMMAND, offset, bytes, width);
        if ((status == tlm::TLM_OK_RESPONSE) != inside) __builtin_trap();
        break;
      }
      case 2: kRecipes[in.byte() % std::size(kRecipes)](d); break;
      case 3: {
        const std::uint32_t address = in.u16();
        const std::uint32_t length = in.byte();
        for (std::uint32_t i = 0; i < length; ++i) {
          const std::uint8_t b = in.byte();
          if (address + i < p.memory.bytes.size()) p.memory.bytes[address + i] = b;
        }
        break;
      }
      case 4: p.advance(sc_core::sc_time(static_cast<double>(in.u16()), sc_core::SC_US)); break;
      case 5: {
        const std::uint32_t address = in.u16() & ~7u;
        models::Adma2Descriptor descriptor = models::Adma2Descriptor::decode({in.byte(), 0, 0, 0, 0, 0, 0, 0});
        descriptor.length = in.u16();
        descriptor.address = in.u16();
        const auto bytes = descriptor.encode();
        if (address + 8 <= p.memory.bytes.size()) std::memcpy(p.memory.bytes.data() + address, bytes.data(), 8);
        break;
      }
    }
    if (d.rd32(reg::kCapabilities) != p.capabilities || d.rd32(reg::kCapabilities + 4) != p.capabilities_high ||
        (d.rd16(reg::kHostVersion) & 0xFF) != reg::kSpecVersion300)
      __builtin_trap();
  }
  d.wr8(reg::kSoftwareReset, reg::kResetAll);
  check_after_reset(d);
  p.advance(sc_core::sc_time(1, sc_core::SC_US));
  return 0;
}
