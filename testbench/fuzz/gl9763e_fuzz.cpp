// libFuzzer target: models::Gl9763e, the PCI function the User-Mode Linux guest's driver reaches
// through virt-pci — its configuration space and BAR 0 — under any sequence of accesses: any
// offset (inside and outside each space), any width, any value, and simulated time passing.
// One platform serves every input (SystemC elaborates once); each input starts from a software
// reset of the SDHCI and a config write putting the command register and MSI back to zero.
//
// Steps, until the input ends (at most kMaxSteps), each an op byte:
//   op % 5 = 0  config read:  u16 offset (big-endian), width byte (% 4: 1, 2, 4, 8 bytes)
//   op % 5 = 1  config write: u16 offset, width byte, u32 value (repeated to 64 bits)
//   op % 5 = 2  BAR 0 read:   u16 offset, width byte
//   op % 5 = 3  BAR 0 write:  u16 offset, width byte, u32 value
//   op % 5 = 4  time passes:  u16 microseconds
// Invariants (__builtin_trap on violation):
//   - an access is refused exactly when it is misaligned or leaves its 4 KiB space;
//   - the identity never changes: IDs, class, revision, header type, subsystem, interrupt pin,
//     slot info, the capabilities pointer and the MSI capability's ID and flags;
//   - BAR 0 reads back as a 4 KiB 32-bit memory BAR; MSI never enables more than one vector;
//   - MB (0x888) keeps CMDQ_OFF, so Linux never turns CQE on;
//   - the locked vendor registers change only while VHS's revision field unlocks them;
//   - the SDHCI's capabilities and version, read through BAR 0, never change;
//   - simulation always reaches the time asked for.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <systemc>
#include <tlm>
#include <tlm_utils/simple_initiator_socket.h>

#include "emmcsim/mmc/image.hpp"
#include "emmcsim/models/emmc_device.hpp"
#include "emmcsim/models/gl9763e.hpp"
#include "emmcsim/models/sdhci_registers.hpp"
#include "fuzz_support.hpp"
#include "system_memory.hpp"

namespace {

namespace mmc = emmcsim::mmc;
namespace models = emmcsim::models;
namespace gl = emmcsim::models::gl9763e;
namespace reg = emmcsim::models::sdhci;

constexpr std::size_t kMaxSteps = 128;
constexpr std::uint32_t kLocked[] = {gl::kCfg, gl::kCfg2, gl::kScr, gl::kClkRxDelay, gl::kMmcCtrl};

class Cpu : public sc_core::sc_module {
 public:
  tlm_utils::simple_initiator_socket<Cpu> config;
  tlm_utils::simple_initiator_socket<Cpu> bar;
  explicit Cpu(sc_core::sc_module_name name) : sc_module(name), config("config"), bar("bar") {}
  template <class Socket>
  tlm::tlm_response_status access(Socket& socket, bool write, std::uint64_t offset, std::uint8_t* data,
                                  unsigned width) {
    return emmcsim::testing::register_access(socket, write ? tlm::TLM_WRITE_COMMAND : tlm::TLM_READ_COMMAND, offset,
                                             data, width);
  }
  template <class Socket>
  std::uint64_t read(Socket& socket, std::uint32_t offset, unsigned width) {
    std::uint64_t value = 0;
    if (access(socket, false, offset, reinterpret_cast<std::uint8_t*>(&value), width) != tlm::TLM_OK_RESPONSE)
      __builtin_trap();
    return value;
  }
  template <class Socket>
  void write(Socket& socket, std::uint32_t offset, std::uint64_t value, unsigned width) {
    if (access(socket, true, offset, reinterpret_cast<std::uint8_t*>(&value), width) != tlm::TLM_OK_RESPONSE)
      __builtin_trap();
  }
};

struct Platform {
  Platform()
      : config(emmcsim::fuzzing::small_device_config()),
        image(config),
        device("card", config, image.backend()),
        chip("gl9763e"),
        memory("memory", 64 * 1024),
        cpu("cpu"),
        irq("irq") {
    cpu.config.bind(chip.config);
    cpu.bar.bind(chip.bar0);
    chip.sdhci.dma.bind(memory.socket);
    chip.sdhci.card.bind(device.bus);
    chip.sdhci.irq(irq);
    sc_core::sc_report_handler::set_actions(models::Sdhci::kMessageType, sc_core::SC_DO_NOTHING);
    sc_core::sc_report_handler::set_actions(models::Gl9763e::kMessageType, sc_core::SC_DO_NOTHING);
    sc_core::sc_report_handler::set_actions(models::EmmcDevice::kMessageType, sc_core::SC_DO_NOTHING);
    sc_core::sc_start(sc_core::SC_ZERO_TIME);
    capabilities = cpu.read(cpu.bar, reg::kCapabilities, 8);
    version = cpu.read(cpu.bar, reg::kHostVersion, 2);
  }
  void advance(const sc_core::sc_time& t) {
    const sc_core::sc_time until = sc_core::sc_time_stamp() + t;
    sc_core::sc_start(t);
    if (sc_core::sc_time_stamp() != until) __builtin_trap();
  }
  mmc::DeviceConfig config;
  mmc::MemoryImage image;
  models::EmmcDevice device;
  models::Gl9763e chip;
  emmcsim::testing::SystemMemory memory;
  Cpu cpu;
  sc_core::sc_signal<bool> irq;
  std::uint64_t capabilities = 0;
  std::uint64_t version = 0;
};

Platform& platform() {
  static Platform* p = new Platform;  // lives for the process; SystemC cannot tear it down
  return *p;
}

void check(Platform& p) {
  Cpu& c = p.cpu;
  auto cfg = [&](std::uint32_t offset, unsigned width) { return c.read(c.config, offset, width); };
  if (cfg(0x00, 4) != 0xE76317A0u || (cfg(0x08, 4) >> 8) != gl::kClassCode || cfg(0x0E, 1) != 0) __builtin_trap();
  if (cfg(0x2C, 4) != 0xE76317A0u || cfg(0x3D, 1) != 1 || cfg(gl::kConfigSlotInfo, 1) != 0) __builtin_trap();
  if (cfg(gl::kConfigCapabilities, 1) != gl::kConfigMsi || cfg(gl::kConfigMsi, 2) != 0x05) __builtin_trap();
  if ((cfg(gl::kConfigMsi + 2, 2) & 0xFFFE) != (1u << 7)) __builtin_trap();  // 64-bit, one vector
  if ((cfg(gl::kConfigBar0, 4) & (gl::kBarSize - 1)) != 0) __builtin_trap();
  if (!(cfg(gl::kMb, 4) & gl::kMbCommandQueueOff)) __builtin_trap();
  if (c.read(c.bar, reg::kCapabilities, 8) != p.capabilities || c.read(c.bar, reg::kHostVersion, 2) != p.version)
    __builtin_trap();
}

bool unlocked(Platform& p) {
  return (p.cpu.read(p.cpu.config, gl::kVhs, 4) & gl::kVhsRevisionMask) == gl::kVhsWritable;
}

}  // namespace

extern "C" int sc_main(int, char**) { return 0; }

// LeakSanitizer cannot scan SystemC's coroutine stacks (as in sdhci_fuzz).
extern "C" const char* __asan_default_options() { return "detect_leaks=0"; }

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Platform& p = platform();
  Cpu& c = p.cpu;
  c.write(c.bar, reg::kSoftwareReset, reg::kResetAll, 1);
  c.write(c.config, gl::kConfigCommand, 0, 2);
  c.write(c.config, gl::kConfigMsi + 2, 0, 2);
  p.advance(sc_core::sc_time(1, sc_core::SC_US));
  emmcsim::fuzzing::FuzzInput in(data, size);
  for (std::size_t step = 0; step < kMaxSteps && !in.done(); ++step) {
    const std::uint8_t op = in.byte() % 5;
    if (op == 4) {
      p.advance(sc_core::sc_time(static_cast<double>(in.u16()), sc_core::SC_US));
      check(p);
      continue;
    }
    const std::uint32_t offset = in.u16();
    const unsigned width = 1u << (in.byte() % 4);
    const bool write = op == 1 || op == 3;
    std::uint64_t value = 0;
    if (write) {
      value = in.u32();
      value |= value << 32;
    }
    const bool fits = offset % width == 0 && offset + width <= 0x1000;
    std::uint32_t before[5];
    for (int i = 0; i < 5; ++i) before[i] = static_cast<std::uint32_t>(c.read(c.config, kLocked[i], 4));
    const bool was_unlocked = unlocked(p);
    const tlm::tlm_response_status status =
        op <= 1 ? c.access(c.config, write, offset, reinterpret_cast<std::uint8_t*>(&value), width)
                : c.access(c.bar, write, offset, reinterpret_cast<std::uint8_t*>(&value), width);
    if ((status == tlm::TLM_OK_RESPONSE) != fits) __builtin_trap();
    if (!was_unlocked)
      for (int i = 0; i < 5; ++i)
        if (c.read(c.config, kLocked[i], 4) != before[i]) __builtin_trap();
    check(p);
  }
  c.write(c.bar, reg::kSoftwareReset, reg::kResetAll, 1);
  p.advance(sc_core::sc_time(1, sc_core::SC_US));
  return 0;
}
