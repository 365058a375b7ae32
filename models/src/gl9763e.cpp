// Gl9763e (see gl9763e.hpp).
#include "emmcsim/models/gl9763e.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

namespace emmcsim::models {
namespace {

using namespace gl9763e;
using Access = Gl9763e::ConfigAccess;
constexpr Access rw = Access::rw, ro = Access::ro, vendor = Access::vendor;

void put(std::uint8_t* bytes, std::uint32_t value, unsigned width) {
  for (unsigned i = 0; i < width; ++i) bytes[i] = static_cast<std::uint8_t>(value >> (8 * i));
}

}  // namespace

// The configuration space: every register Linux reads or writes. Bytes outside the table read 0
// and ignore writes. `vendor` registers take writes only while VHS (0x884) bits 19:16 are 2.
// clang-format off
const Gl9763e::ConfigRegister Gl9763e::kConfigRegisters[] = {
  // {offset, width, name, access, write mask}
  {0x000, 2, "vendor ID",                ro,     0},
  {0x002, 2, "device ID",                ro,     0},
  {0x004, 2, "command",                  rw,     0x0406},  // memory space, bus master, INTx disable
  {0x006, 2, "status",                   ro,     0},       // bit 4: capability list
  {0x008, 4, "revision, class code",     ro,     0},
  {0x00C, 1, "cache line size",          rw,     0xFF},
  {0x00D, 1, "latency timer",            rw,     0xFF},
  {0x00E, 1, "header type",              ro,     0},
  {0x010, 4, "BAR 0",                    rw,     ~(kBarSize - 1)},  // 32-bit memory, 4 KiB
  {0x02C, 2, "subsystem vendor ID",      ro,     0},
  {0x02E, 2, "subsystem ID",             ro,     0},
  {0x034, 1, "capabilities pointer",     ro,     0},
  {0x03C, 1, "interrupt line",           rw,     0xFF},
  {0x03D, 1, "interrupt pin",            ro,     0},
  {0x040, 1, "slot info",                ro,     0},       // one slot, first BAR 0
  {0x080, 2, "MSI capability header",    ro,     0},
  {0x082, 2, "MSI message control",      rw,     0x0001},  // enable (one vector: MME stays 0)
  {0x084, 4, "MSI message address",      rw,     0xFFFFFFFC},
  {0x088, 4, "MSI message upper address", rw,    0xFFFFFFFF},
  {0x08C, 2, "MSI message data",         rw,     0xFFFF},
  {0x884, 4, "VHS",                      rw,     0xFFFFFFFF},
  {0x888, 4, "MB",                       ro,     0},
  {0x8A0, 4, "CFG",                      vendor, 0xFFFFFFFF},
  {0x8A4, 4, "CFG2",                     vendor, 0xFFFFFFFF},
  {0x8E0, 4, "SCR",                      vendor, 0xFFFFFFFF},
  {0x934, 4, "CLKRXDLY",                 vendor, 0xFFFFFFFF},
  {0x960, 4, "MMC_CTRL",                 vendor, 0xFFFFFFFF},
};
// clang-format on

SdhciCapabilities Gl9763e::sdhci_capabilities() {
  SdhciCapabilities c;
  c.version = SdhciVersion::v4_10;
  c.addressing_64 = true;
  return c;
}

Gl9763e::Gl9763e(sc_core::sc_module_name name, const Options& options)
    : sc_module(name), sdhci("sdhci", sdhci_capabilities()), bar0("bar0"), config("config"), to_sdhci_("to_sdhci") {
  to_sdhci_.bind(sdhci.regs);
  bar0.register_b_transport(this, &Gl9763e::bar_transport);
  config.register_b_transport(this, &Gl9763e::config_transport);
  std::uint8_t* c = config_.data();
  put(c + 0x00, kVendorId, 2);
  put(c + 0x02, kDeviceId, 2);
  put(c + 0x06, 1u << 4, 2);
  put(c + 0x08, options.revision | (kClassCode << 8), 4);
  put(c + 0x2C, kVendorId, 2);
  put(c + 0x2E, kDeviceId, 2);
  put(c + kConfigCapabilities, kConfigMsi, 1);
  put(c + 0x3D, 1, 1);                  // INTA
  put(c + kConfigMsi, 0x05, 2);         // MSI, the last capability
  put(c + kConfigMsi + 2, 1u << 7, 2);  // 64-bit address, one vector
  put(c + kMb, options.command_queue ? kMbErpOn : kMbCommandQueueOff, 4);
  put(cqhci_.data(), kCqhciVersion, 4);
}

bool Gl9763e::access_ok(tlm::tlm_generic_payload& p, std::uint32_t space, const char* what) const {
  if (p.get_byte_enable_ptr() != nullptr && p.get_byte_enable_length() != 0) {
    p.set_response_status(tlm::TLM_BYTE_ENABLE_ERROR_RESPONSE);
    return false;
  }
  const std::uint64_t address = p.get_address();
  const unsigned length = p.get_data_length();
  const bool width_ok = length == 1 || length == 2 || length == 4 || length == 8;
  if (!width_ok || address % length != 0 || address + length > space || p.get_data_ptr() == nullptr ||
      p.get_streaming_width() < length) {
    warn(fmt::format("{} access of {} bytes at {:#x} refused", what, length, address));
    p.set_response_status(tlm::TLM_ADDRESS_ERROR_RESPONSE);
    return false;
  }
  return true;
}

void Gl9763e::bar_transport(tlm::tlm_generic_payload& p, sc_core::sc_time& delay) {
  if (!access_ok(p, kBarSize, "BAR 0")) return;
  const auto offset = static_cast<std::uint32_t>(p.get_address());
  const unsigned length = p.get_data_length();
  std::uint8_t* data = p.get_data_ptr();
  if (offset < sdhci::kRegisterSpace) {  // the SDHCI block: the Sdhci's own socket says the rest
    to_sdhci_->b_transport(p, delay);
    return;
  }
  p.set_response_status(tlm::TLM_OK_RESPONSE);
  if (offset >= kCqhciBase && offset + length <= kCqhciBase + cqhci_.size()) {
    const std::uint32_t at = offset - kCqhciBase;
    if (p.is_read()) {
      std::memcpy(data, cqhci_.data() + at, length);
    } else if (p.is_write()) {
      for (unsigned i = 0; i < length; ++i)
        if (at + i >= 8) cqhci_[at + i] = data[i];  // CQHCI_VER and CQHCI_CAP are read-only
    }
    return;
  }
  if (offset >= kHs400EnhancedStrobe && offset + length <= kHs400EnhancedStrobe + 4) {
    std::uint8_t bytes[4];
    put(bytes, strobe_register_, 4);
    if (p.is_read()) {
      std::memcpy(data, bytes + (offset - kHs400EnhancedStrobe), length);
    } else if (p.is_write()) {
      std::memcpy(bytes + (offset - kHs400EnhancedStrobe), data, length);
      strobe_register_ = get32(bytes);
    }
    return;
  }
  if (p.is_read()) std::fill_n(data, length, 0);  // reserved
}

void Gl9763e::config_transport(tlm::tlm_generic_payload& p, sc_core::sc_time& /*delay*/) {
  if (!access_ok(p, kConfigSize, "configuration space")) return;
  const auto offset = static_cast<std::uint32_t>(p.get_address());
  if (p.is_read()) std::memcpy(p.get_data_ptr(), config_.data() + offset, p.get_data_length());
  if (p.is_write()) config_write(offset, p.get_data_ptr(), p.get_data_length());
  p.set_response_status(tlm::TLM_OK_RESPONSE);
}

// Byte by byte, each by its register's rule. The vendor lock is the one VHS held before this
// write: Linux unlocks, writes and locks in separate dword writes.
void Gl9763e::config_write(std::uint32_t offset, const std::uint8_t* data, std::uint32_t length) {
  const bool unlocked = (get32(config_.data() + kVhs) & kVhsRevisionMask) == kVhsWritable;
  bool refused = false;
  for (std::uint32_t i = 0; i < length; ++i) {
    const std::uint32_t o = offset + i;
    const auto reg = std::find_if(std::begin(kConfigRegisters), std::end(kConfigRegisters),
                                  [o](const ConfigRegister& r) { return r.offset <= o && o < r.offset + r.width; });
    if (reg == std::end(kConfigRegisters) || reg->access == Access::ro) continue;
    if (reg->access == Access::vendor && !unlocked) {
      refused = true;
      continue;
    }
    const auto mask = static_cast<std::uint8_t>(reg->write_mask >> (8 * (o - reg->offset)));
    config_[o] = static_cast<std::uint8_t>((config_[o] & ~mask) | (data[i] & mask));
  }
  if (refused)
    warn(fmt::format("vendor register write at {:#x} while VHS (0x884) bits 19:16 are not 2: ignored", offset));
}

std::uint32_t Gl9763e::get32(const std::uint8_t* b) const {
  return b[0] | (std::uint32_t{b[1]} << 8) | (std::uint32_t{b[2]} << 16) | (std::uint32_t{b[3]} << 24);
}

std::uint32_t Gl9763e::config_dword(std::uint32_t offset) const {
  return offset + 4 <= config_.size() ? get32(config_.data() + offset) : 0;
}

Gl9763e::Msi Gl9763e::msi() const {
  Msi m;
  m.enabled = (config_dword(kConfigMsi) >> 16) & 1;
  m.address = config_dword(kConfigMsi + 4) | (std::uint64_t{config_dword(kConfigMsi + 8)} << 32);
  m.data = static_cast<std::uint16_t>(config_dword(kConfigMsi + 0xC));
  return m;
}

bool Gl9763e::enhanced_strobe() const { return (strobe_register_ & kHs400EnhancedStrobeBit) != 0; }

void Gl9763e::warn(const std::string& what) const {
  SC_REPORT_WARNING(kMessageType, (std::string(name()) + ": " + what).c_str());
}

}  // namespace emmcsim::models
