// PciConfigSpace: the 4 KiB configuration space of one PCI function (a type-0 header) as a guest
// reads and writes it through virt-pci (virtio_pcidev.hpp) — identity, command and status, BARs
// with their sizing, the interrupt pin, an MSI capability, and the vendor registers an identity
// names (PciIdentity). Plain C++, no I/O: the virtio-pcidev device asks it and acts on what it
// says (memory decoding on, the BAR's address, MSI enabled with its data word).
//
// Layout (offsets in bytes):
//   0x00 vendor ID, 0x02 device ID           read-only (the identity)
//   0x04 command                             memory space (1), bus master (2), parity (6),
//                                            SERR (8), INTx disable (10) writable; the rest 0
//   0x06 status                              capabilities list (bit 4) set; nothing else
//   0x08 revision, 0x09 class code (3 bytes) read-only
//   0x0C cache line size, 0x0D latency timer writable bytes
//   0x0E header type 0, 0x0F BIST 0
//   0x10-0x27 BARs                           memory BARs of the identity: the address bits above
//                                            the size are writable, so writing all-ones and
//                                            reading back gives the size (PCI sizing); a 64-bit
//                                            BAR takes two slots, its upper dword all writable
//   0x2C subsystem vendor and ID             read-only
//   0x30 expansion ROM base                  0 (no ROM)
//   0x34 capabilities pointer                kMsiCapability when the identity has MSI, else 0
//   0x3C interrupt line                      writable; 0x3D interrupt pin (1 = INTA) read-only
//   0x40                                     0 (sdhci-pci reads its slot-information byte here:
//                                            one slot, its registers in BAR 0)
//   0x50 MSI capability (kMsiCapability)     ID 5, one vector, 64-bit addresses: message
//                                            control's enable bit (the multiple-message-enable
//                                            field reads 0), address low (bits 1:0 read 0),
//                                            address high and the 16-bit data writable
//   vendor registers                         each a dword at its offset with its reset value and
//                                            writable mask, optionally writable only while an
//                                            unlock field holds a value (PciIdentity)
// Everything else reads 0 and ignores writes, as unimplemented PCI registers do.
// Accesses are 1, 2, 4 or 8 bytes, naturally aligned, inside the 4 KiB; others throw
// PciConfigAccessError (the caller answers the guest with all-ones, as a failed read reads).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace emmcsim::transport {

class PciConfigAccessError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct PciBar {
  std::uint64_t size = 0;  // bytes, a power of two >= 16; 0 = no BAR
  bool sixty_four_bit = false;
  bool prefetchable = false;
};

// A vendor-specific dword in configuration space.
struct PciVendorRegister {
  std::uint16_t offset = 0;  // dword aligned, 0x40..0xFFC, not inside the header or the MSI cap
  std::uint32_t reset = 0;
  std::uint32_t writable = 0;  // bits a write may change
  bool locked = false;         // writable only while the identity's unlock field holds its value
  const char* name = "";
};

struct PciIdentity {
  std::string name;  // "Genesys Logic GL9763E"
  std::uint16_t vendor_id = 0;
  std::uint16_t device_id = 0;
  std::uint8_t revision = 0;
  std::uint32_t class_code = 0;  // 24 bits: base class, subclass, programming interface
  std::uint16_t subsystem_vendor_id = 0;
  std::uint16_t subsystem_id = 0;
  std::array<PciBar, 6> bars{};
  std::uint8_t interrupt_pin = 1;  // 0 none, 1..4 INTA..INTD
  bool msi = true;                 // an MSI capability with one vector
  std::vector<PciVendorRegister> vendor_registers;
  // Writes to locked vendor registers take effect only while (register at unlock_offset &
  // unlock_mask) == unlock_value.
  std::uint16_t unlock_offset = 0;
  std::uint32_t unlock_mask = 0;
  std::uint32_t unlock_value = 0;
};

// The SD host controller Linux drives with MSI on a stock 6.1 UML kernel
// (drivers/mmc/host/sdhci-pci-gli.c, docs/linux.md): Genesys Logic GL9763E, 17a0:e763, class
// 0x080501, a 4 KiB BAR 0 (SDHCI at 0, CQHCI at 0x200, vendor at 0x500+), and the vendor
// configuration registers its driver writes (VHS unlocks the others; MB reports command queueing
// off, so Linux leaves CQE unused).
PciIdentity gl9763e_identity();

class PciConfigSpace {
 public:
  static constexpr std::uint32_t kSize = 4096;
  static constexpr std::uint32_t kMsiCapability = 0x50;

  // Throws std::invalid_argument for an identity that cannot be laid out (a BAR size that is not
  // a power of two >= 16, a 64-bit BAR in slot 5, vendor registers overlapping the header, the
  // MSI capability or each other).
  explicit PciConfigSpace(PciIdentity identity);

  std::uint64_t read(std::uint32_t offset, unsigned size) const;
  void write(std::uint32_t offset, unsigned size, std::uint64_t value);
  // Back to the values at power-on (a function level reset).
  void reset();

  const PciIdentity& identity() const { return identity_; }
  bool memory_enabled() const;
  bool bus_master_enabled() const;
  bool intx_disabled() const;
  // The address the guest gave BAR `index` (0 until it did), or nullopt when there is no BAR.
  std::optional<std::uint64_t> bar_address(unsigned index) const;

  struct Msi {
    bool enabled = false;
    std::uint64_t address = 0;
    std::uint16_t data = 0;
  };
  Msi msi() const;

 private:
  std::uint32_t dword(std::uint32_t offset) const;
  bool locked_now(std::uint32_t offset) const;  // a locked vendor register's byte, while locked

  PciIdentity identity_;
  std::array<std::uint8_t, kSize> bytes_{};   // what reads return
  std::array<std::uint8_t, kSize> writable_{};  // per byte: the bits a write may change
};

}  // namespace emmcsim::transport
