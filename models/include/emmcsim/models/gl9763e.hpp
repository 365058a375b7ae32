// Gl9763e — a Genesys Logic GL9763E as Linux 6.1's sdhci-pci-gli.c drives it: an eMMC-only PCI
// SD host controller (17a0:e763) made of an Sdhci (version 4.10, 64-bit addressing, 8-bit bus,
// HS200/DDR50) behind a 4 KiB BAR, plus the PCI configuration space the driver reads, with its
// vendor registers. docs/linux-sdhci-gl9763e.md says what Linux does with each; the datasheet is
// not public, so what is here is what Linux expects, and reset values it never reads are 0.
//
// Ports
//   bar0    tlm_utils::simple_target_socket — memory BAR 0, 4 KiB, offsets from the BAR's base.
//           Accesses of 1, 2, 4 or 8 bytes aligned to their width; byte enables refused; no
//           simulated time.
//             0x000-0x0FF  the Sdhci's registers (forwarded to sdhci.regs)
//             0x200-0x2FF  CQHCI: CQHCI_VER (0x200) reads 0x0510, CQHCI_CAP (0x204) 0 (no
//                          crypto); the other registers are stored. The command queue engine is
//                          not modelled: config 0x888 tells Linux to leave it off.
//             0x52C        vendor: bit 8 enables HS400 enhanced strobe (stored, enhanced_strobe())
//             elsewhere    reserved: reads 0, writes ignored
//   config  tlm_utils::simple_target_socket — the function's 4 KiB configuration space, offsets
//           from 0 (what virt-pci's CFG_READ/CFG_WRITE carry). Same access rules. The registers
//           are in the table in gl9763e.cpp:
//             type 0 header: 17a0:e763, class 0x080501 (SD host, SDHCI with DMA), command
//             (memory space, bus master, INTx disable writable), status (capability list),
//             BAR 0 (32-bit memory, 4 KiB: sizing reads back ~0xFFF), interrupt pin INTA,
//             slot info (0x40) = 0 (one slot, first BAR 0),
//             an MSI capability at 0x80 (64-bit address, one vector),
//             the vendor dwords 0x884 (VHS: bits 19:16 = 2 unlock the others for writing),
//             0x888 (MB: bit 19 CMDQ_OFF set unless command_queue is enabled; read-only),
//             0x8A0, 0x8A4, 0x8E0, 0x934, 0x960 (writable while unlocked, else ignored with a
//             warning); everything else reads 0.
//   The Sdhci's own ports are the platform's to bind: sdhci.dma, sdhci.card, sdhci.irq. MSI
//   delivery is the platform's too: msi() gives what the driver programmed.
//
// Reports: message type "emmcsim/Gl9763e", SC_WARNING for refused accesses and locked writes.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <systemc>
#include <tlm>
#include <tlm_utils/simple_initiator_socket.h>
#include <tlm_utils/simple_target_socket.h>

#include "emmcsim/models/sdhci.hpp"

namespace emmcsim::models {

namespace gl9763e {
inline constexpr std::uint16_t kVendorId = 0x17A0;
inline constexpr std::uint16_t kDeviceId = 0xE763;
inline constexpr std::uint32_t kClassCode = 0x080501;
inline constexpr std::uint32_t kBarSize = 0x1000;
inline constexpr std::uint32_t kConfigSize = 0x1000;
// BAR 0.
inline constexpr std::uint32_t kCqhciBase = 0x200;
inline constexpr std::uint32_t kCqhciVersion = 0x0510;  // CQHCI 5.10 (an assumption: Linux only prints it)
inline constexpr std::uint32_t kHs400EnhancedStrobe = 0x52C;
inline constexpr std::uint32_t kHs400EnhancedStrobeBit = 1u << 8;
// Configuration space.
inline constexpr std::uint32_t kConfigCommand = 0x04;
inline constexpr std::uint32_t kConfigBar0 = 0x10;
inline constexpr std::uint32_t kConfigCapabilities = 0x34;
inline constexpr std::uint32_t kConfigSlotInfo = 0x40;
inline constexpr std::uint32_t kConfigMsi = 0x80;
inline constexpr std::uint32_t kVhs = 0x884;
inline constexpr std::uint32_t kVhsRevisionMask = 0xFu << 16;
inline constexpr std::uint32_t kVhsWritable = 2u << 16;
inline constexpr std::uint32_t kMb = 0x888;
inline constexpr std::uint32_t kMbCommandQueueOff = 1u << 19;
inline constexpr std::uint32_t kMbErpOn = 1u << 7;
inline constexpr std::uint32_t kCfg = 0x8A0;
inline constexpr std::uint32_t kCfg2 = 0x8A4;
inline constexpr std::uint32_t kScr = 0x8E0;
inline constexpr std::uint32_t kClkRxDelay = 0x934;
inline constexpr std::uint32_t kMmcCtrl = 0x960;
}  // namespace gl9763e

class Gl9763e : public sc_core::sc_module {
 public:
  Sdhci sdhci;
  tlm_utils::simple_target_socket<Gl9763e> bar0;
  tlm_utils::simple_target_socket<Gl9763e> config;

  struct Options {
    bool command_queue = false;  // config 0x888 offers CQE (bit 19 clear, bit 7 set); not modelled
    std::uint8_t revision = 0x01;
  };
  // The SDHCI the chip reports: version 4.10, 64-bit addressing, 200 MHz, 8-bit, SDR104, DDR50.
  static SdhciCapabilities sdhci_capabilities();

  explicit Gl9763e(sc_core::sc_module_name name) : Gl9763e(name, Options{}) {}
  Gl9763e(sc_core::sc_module_name name, const Options& options);

  const char* kind() const override { return "emmcsim::models::Gl9763e"; }
  static constexpr const char* kMessageType = "emmcsim/Gl9763e";

  // What the driver programmed into the MSI capability.
  struct Msi {
    bool enabled = false;
    std::uint64_t address = 0;
    std::uint16_t data = 0;
  };
  Msi msi() const;
  bool enhanced_strobe() const;                            // BAR 0x52C bit 8
  std::uint32_t config_dword(std::uint32_t offset) const;  // for observers; offset 4-aligned

  // The configuration space's registers (the table in gl9763e.cpp).
  enum class ConfigAccess : std::uint8_t { rw, ro, vendor /* rw while VHS unlocks it */ };
  struct ConfigRegister {
    std::uint32_t offset;
    std::uint32_t width;
    const char* name;
    ConfigAccess access;
    std::uint32_t write_mask;
  };

 private:
  void bar_transport(tlm::tlm_generic_payload& payload, sc_core::sc_time& delay);
  void config_transport(tlm::tlm_generic_payload& payload, sc_core::sc_time& delay);
  bool access_ok(tlm::tlm_generic_payload& payload, std::uint32_t space, const char* what) const;
  void config_write(std::uint32_t offset, const std::uint8_t* data, std::uint32_t length);
  std::uint32_t get32(const std::uint8_t* bytes) const;
  void warn(const std::string& what) const;

  static const ConfigRegister kConfigRegisters[];

  tlm_utils::simple_initiator_socket<Gl9763e> to_sdhci_;
  std::array<std::uint8_t, gl9763e::kConfigSize> config_{};
  std::array<std::uint8_t, 0x100> cqhci_{};
  std::uint32_t strobe_register_ = 0;
};

}  // namespace emmcsim::models
