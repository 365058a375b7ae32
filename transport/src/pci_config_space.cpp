// PciConfigSpace (see pci_config_space.hpp).
#include "emmcsim/transport/pci_config_space.hpp"

#include <stdexcept>
#include <utility>

namespace emmcsim::transport {
namespace {

namespace cfg {
constexpr std::uint32_t kVendorId = 0x00;
constexpr std::uint32_t kDeviceId = 0x02;
constexpr std::uint32_t kCommand = 0x04;
constexpr std::uint32_t kStatus = 0x06;
constexpr std::uint32_t kRevision = 0x08;
constexpr std::uint32_t kClassCode = 0x09;
constexpr std::uint32_t kCacheLineSize = 0x0C;
constexpr std::uint32_t kLatencyTimer = 0x0D;
constexpr std::uint32_t kBar0 = 0x10;
constexpr std::uint32_t kSubsystemVendorId = 0x2C;
constexpr std::uint32_t kSubsystemId = 0x2E;
constexpr std::uint32_t kCapabilitiesPointer = 0x34;
constexpr std::uint32_t kInterruptLine = 0x3C;
constexpr std::uint32_t kInterruptPin = 0x3D;
constexpr std::uint32_t kHeaderEnd = 0x40;

constexpr std::uint16_t kCommandMemory = 1u << 1;
constexpr std::uint16_t kCommandBusMaster = 1u << 2;
constexpr std::uint16_t kCommandWritable = kCommandMemory | kCommandBusMaster | (1u << 6) | (1u << 8) | (1u << 10);
constexpr std::uint16_t kCommandIntxDisable = 1u << 10;
constexpr std::uint16_t kStatusCapabilities = 1u << 4;

constexpr std::uint8_t kBarMemory64 = 0x4;
constexpr std::uint8_t kBarPrefetchable = 0x8;

// MSI capability, at PciConfigSpace::kMsiCapability.
constexpr std::uint8_t kMsiCapabilityId = 0x05;
constexpr std::uint32_t kMsiControl = 2;
constexpr std::uint32_t kMsiAddressLow = 4;
constexpr std::uint32_t kMsiAddressHigh = 8;
constexpr std::uint32_t kMsiData = 12;
constexpr std::uint32_t kMsiSize = 16;
constexpr std::uint16_t kMsiEnable = 1u << 0;
constexpr std::uint16_t kMsi64Bit = 1u << 7;
}  // namespace cfg

bool power_of_two(std::uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

}  // namespace

PciIdentity gl9763e_identity() {
  PciIdentity id;
  id.name = "Genesys Logic GL9763E";
  id.vendor_id = 0x17A0;
  id.device_id = 0xE763;
  id.revision = 0x01;
  id.class_code = 0x080501;  // SD host controller, SDHCI with DMA
  id.subsystem_vendor_id = 0x17A0;
  id.subsystem_id = 0xE763;
  id.bars[0] = PciBar{4096, false, false};
  id.interrupt_pin = 1;
  id.msi = true;
  // sdhci-pci-gli.c: PCIE_GLI_9763E_VHS's revision field W (2) unlocks the other vendor
  // registers, R (0) locks them again; MB bit 19 (CMDQ_OFF) tells the driver to leave CQE off.
  id.vendor_registers = {
      {0x884, 0x00000000, 0x000F0000, false, "VHS"},
      {0x888, 0x00080000, 0x00000000, false, "MB"},
      {0x8A0, 0x00000000, 0xFFFFFFFF, true, "CFG"},
      {0x8A4, 0x00000000, 0xFFFFFFFF, true, "CFG2"},
      {0x8E0, 0x00000000, 0xFFFFFFFF, true, "SCR"},
      {0x934, 0x00000000, 0xFFFFFFFF, true, "CLKRXDLY"},
      {0x960, 0x00000008, 0xFFFFFFFF, true, "MMC_CTRL"},
  };
  id.unlock_offset = 0x884;
  id.unlock_mask = 0x000F0000;
  id.unlock_value = 0x00020000;
  return id;
}

PciConfigSpace::PciConfigSpace(PciIdentity identity) : identity_(std::move(identity)) {
  for (unsigned i = 0; i < identity_.bars.size(); ++i) {
    const PciBar& bar = identity_.bars[i];
    if (bar.size == 0) continue;
    if (!power_of_two(bar.size) || bar.size < 16)
      throw std::invalid_argument("PCI identity: BAR " + std::to_string(i) + " size is not a power of two >= 16");
    if (bar.sixty_four_bit && (i == 5 || identity_.bars[i + 1].size != 0))
      throw std::invalid_argument("PCI identity: 64-bit BAR " + std::to_string(i) + " needs the next slot free");
    if (!bar.sixty_four_bit && bar.size > (1ull << 31))
      throw std::invalid_argument("PCI identity: 32-bit BAR " + std::to_string(i) + " larger than 2 GiB");
  }
  if (identity_.interrupt_pin > 4) throw std::invalid_argument("PCI identity: interrupt pin must be 0..4");
  for (std::size_t i = 0; i < identity_.vendor_registers.size(); ++i) {
    const PciVendorRegister& r = identity_.vendor_registers[i];
    const std::uint32_t offset = r.offset;
    const bool in_msi = identity_.msi && offset + 4 > kMsiCapability && offset < kMsiCapability + cfg::kMsiSize;
    if (offset % 4 != 0 || offset < cfg::kHeaderEnd || offset > kSize - 4 || in_msi)
      throw std::invalid_argument("PCI identity: vendor register " + std::string(r.name) + " at a bad offset");
    for (std::size_t j = 0; j < i; ++j)
      if (identity_.vendor_registers[j].offset == r.offset)
        throw std::invalid_argument("PCI identity: two vendor registers at one offset");
  }
  reset();
}

void PciConfigSpace::reset() {
  bytes_.fill(0);
  writable_.fill(0);
  auto put = [this](std::uint32_t offset, std::uint64_t value, unsigned size, std::uint64_t writable) {
    for (unsigned i = 0; i < size; ++i) {
      bytes_[offset + i] = static_cast<std::uint8_t>(value >> (8 * i));
      writable_[offset + i] = static_cast<std::uint8_t>(writable >> (8 * i));
    }
  };
  put(cfg::kVendorId, identity_.vendor_id, 2, 0);
  put(cfg::kDeviceId, identity_.device_id, 2, 0);
  put(cfg::kCommand, 0, 2, cfg::kCommandWritable);
  put(cfg::kStatus, identity_.msi ? cfg::kStatusCapabilities : 0, 2, 0);
  put(cfg::kRevision, identity_.revision, 1, 0);
  put(cfg::kClassCode, identity_.class_code, 3, 0);
  put(cfg::kCacheLineSize, 0, 1, 0xFF);
  put(cfg::kLatencyTimer, 0, 1, 0xFF);
  for (unsigned i = 0; i < identity_.bars.size(); ++i) {
    const PciBar& bar = identity_.bars[i];
    if (bar.size == 0) continue;
    const std::uint64_t address_bits = ~(bar.size - 1) & ~std::uint64_t{0xF};
    std::uint8_t type = 0;
    if (bar.sixty_four_bit) type |= cfg::kBarMemory64;
    if (bar.prefetchable) type |= cfg::kBarPrefetchable;
    put(cfg::kBar0 + 4 * i, type, 4, address_bits & 0xFFFFFFFF);
    if (bar.sixty_four_bit) put(cfg::kBar0 + 4 * (i + 1), 0, 4, address_bits >> 32);
  }
  put(cfg::kSubsystemVendorId, identity_.subsystem_vendor_id, 2, 0);
  put(cfg::kSubsystemId, identity_.subsystem_id, 2, 0);
  put(cfg::kInterruptLine, 0, 1, 0xFF);
  put(cfg::kInterruptPin, identity_.interrupt_pin, 1, 0);
  if (identity_.msi) {
    put(cfg::kCapabilitiesPointer, kMsiCapability, 1, 0);
    put(kMsiCapability, cfg::kMsiCapabilityId, 2, 0);  // next capability: none
    put(kMsiCapability + cfg::kMsiControl, cfg::kMsi64Bit, 2, cfg::kMsiEnable);
    put(kMsiCapability + cfg::kMsiAddressLow, 0, 4, 0xFFFFFFFC);
    put(kMsiCapability + cfg::kMsiAddressHigh, 0, 4, 0xFFFFFFFF);
    put(kMsiCapability + cfg::kMsiData, 0, 2, 0xFFFF);
  }
  for (const PciVendorRegister& r : identity_.vendor_registers) put(r.offset, r.reset, 4, r.writable);
}

std::uint64_t PciConfigSpace::read(std::uint32_t offset, unsigned size) const {
  if (!(size == 1 || size == 2 || size == 4 || size == 8) || offset % size != 0 || offset > kSize - size)
    throw PciConfigAccessError("PCI config read of " + std::to_string(size) + " bytes at " + std::to_string(offset) +
                               " (1, 2, 4 or 8 bytes, aligned, inside 4 KiB)");
  std::uint64_t v = 0;
  for (unsigned i = 0; i < size; ++i) v |= std::uint64_t{bytes_[offset + i]} << (8 * i);
  return v;
}

void PciConfigSpace::write(std::uint32_t offset, unsigned size, std::uint64_t value) {
  if (!(size == 1 || size == 2 || size == 4 || size == 8) || offset % size != 0 || offset > kSize - size)
    throw PciConfigAccessError("PCI config write of " + std::to_string(size) + " bytes at " + std::to_string(offset) +
                               " (1, 2, 4 or 8 bytes, aligned, inside 4 KiB)");
  // Locks are judged by the state before the write, as one bus cycle sees it.
  std::array<bool, 8> locked{};
  for (unsigned i = 0; i < size; ++i) locked[i] = locked_now(offset + i);
  for (unsigned i = 0; i < size; ++i) {
    if (locked[i]) continue;
    const std::uint8_t mask = writable_[offset + i];
    const auto byte = static_cast<std::uint8_t>(value >> (8 * i));
    bytes_[offset + i] = static_cast<std::uint8_t>((bytes_[offset + i] & ~mask) | (byte & mask));
  }
}

bool PciConfigSpace::locked_now(std::uint32_t offset) const {
  for (const PciVendorRegister& r : identity_.vendor_registers) {
    if (offset < r.offset || offset >= r.offset + 4u) continue;
    return r.locked && (dword(identity_.unlock_offset) & identity_.unlock_mask) != identity_.unlock_value;
  }
  return false;
}

std::uint32_t PciConfigSpace::dword(std::uint32_t offset) const { return static_cast<std::uint32_t>(read(offset, 4)); }

bool PciConfigSpace::memory_enabled() const { return (read(cfg::kCommand, 2) & cfg::kCommandMemory) != 0; }
bool PciConfigSpace::bus_master_enabled() const { return (read(cfg::kCommand, 2) & cfg::kCommandBusMaster) != 0; }
bool PciConfigSpace::intx_disabled() const { return (read(cfg::kCommand, 2) & cfg::kCommandIntxDisable) != 0; }

std::optional<std::uint64_t> PciConfigSpace::bar_address(unsigned index) const {
  if (index >= identity_.bars.size() || identity_.bars[index].size == 0) return std::nullopt;
  std::uint64_t address = dword(cfg::kBar0 + 4 * index) & ~std::uint64_t{0xF};
  if (identity_.bars[index].sixty_four_bit) address |= std::uint64_t{dword(cfg::kBar0 + 4 * (index + 1))} << 32;
  return address;
}

PciConfigSpace::Msi PciConfigSpace::msi() const {
  Msi m;
  if (!identity_.msi) return m;
  m.enabled = (read(kMsiCapability + cfg::kMsiControl, 2) & cfg::kMsiEnable) != 0;
  m.address = dword(kMsiCapability + cfg::kMsiAddressLow) |
              (std::uint64_t{dword(kMsiCapability + cfg::kMsiAddressHigh)} << 32);
  m.data = static_cast<std::uint16_t>(read(kMsiCapability + cfg::kMsiData, 2));
  return m;
}

}  // namespace emmcsim::transport
