// libFuzzer target: the GL9763E's PCI configuration space under any sequence of config reads and
// writes a guest might make (virtio-pcidev CFG_READ/CFG_WRITE: any offset, any width, any value).
// Each step is an op byte (bit 0: write), a big-endian u16 offset, a width byte (% 4: 1, 2, 4, 8
// bytes) and for writes a u32 value repeated to 64 bits.
// Invariants (__builtin_trap on violation):
//   - an access is refused (PciConfigAccessError) exactly when it is misaligned or leaves 4 KiB;
//   - the identity never changes: IDs, class, revision, header type, subsystem, interrupt pin,
//     capabilities pointer and the MSI capability's ID and flags;
//   - BAR 0 always reads as a 4 KiB, 32-bit memory BAR (low 12 bits 0); absent BARs read 0;
//   - MSI never advertises or enables more than one vector; MB keeps CMDQ_OFF;
//   - the locked vendor registers change only while VHS's revision field unlocks them.
#include <cstddef>
#include <cstdint>

#include "emmcsim/transport/pci_config_space.hpp"
#include "fuzz_support.hpp"

namespace {

using emmcsim::transport::PciConfigAccessError;
using emmcsim::transport::PciConfigSpace;

constexpr std::uint32_t kMsi = PciConfigSpace::kMsiCapability;
constexpr std::uint32_t kLocked[] = {0x8A0, 0x8A4, 0x8E0, 0x934, 0x960};

void check_identity(const PciConfigSpace& c) {
  if (c.read(0x00, 4) != 0xE76317A0u || (c.read(0x08, 4) >> 8) != 0x080501u || c.read(0x08, 1) != 0x01) __builtin_trap();
  if (c.read(0x0E, 1) != 0 || c.read(0x2C, 4) != 0xE76317A0u || c.read(0x3D, 1) != 1) __builtin_trap();
  if (c.read(0x34, 1) != kMsi || c.read(kMsi, 2) != 0x05) __builtin_trap();
  const auto control = c.read(kMsi + 2, 2);
  if ((control & 0xFFFE) != (1u << 7)) __builtin_trap();  // 64-bit, one vector, nothing else
  if ((c.read(0x10, 4) & 0xFFF) != 0) __builtin_trap();
  for (std::uint32_t bar = 0x14; bar < 0x28; bar += 4)
    if (c.read(bar, 4) != 0) __builtin_trap();
  if (c.read(0x30, 4) != 0 || c.read(0x40, 4) != 0) __builtin_trap();
  if (!(c.read(0x888, 4) & (1u << 19))) __builtin_trap();
}

bool unlocked(const PciConfigSpace& c) { return (c.read(0x884, 4) & 0xF0000) == 0x20000; }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  PciConfigSpace c(emmcsim::transport::gl9763e_identity());
  emmcsim::fuzzing::FuzzInput in(data, size);
  for (int step = 0; step < 256 && !in.done(); ++step) {
    const std::uint8_t op = in.byte();
    const std::uint32_t offset = in.u16();
    const unsigned width = 1u << (in.byte() % 4);
    const bool fits = offset % width == 0 && offset + width <= PciConfigSpace::kSize;
    std::uint32_t before[5];
    for (int i = 0; i < 5; ++i) before[i] = static_cast<std::uint32_t>(c.read(kLocked[i], 4));
    const bool was_unlocked = unlocked(c);
    bool refused = false;
    try {
      if (op & 1) {
        const std::uint64_t value = in.u32();
        c.write(offset, width, value | (value << 32));
      } else {
        c.read(offset, width);
      }
    } catch (const PciConfigAccessError&) {
      refused = true;
    }
    if (refused == fits) __builtin_trap();
    if (!was_unlocked)
      for (int i = 0; i < 5; ++i)
        if (c.read(kLocked[i], 4) != before[i]) __builtin_trap();
    check_identity(c);
  }
  return 0;
}
