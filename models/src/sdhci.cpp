// Sdhci (see sdhci.hpp): construction, the register table and the register accesses, interrupts
// and resets. The command sequencer is in sdhci_sequencer.cpp.
#include "emmcsim/models/sdhci.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <iterator>
#include <stdexcept>
#include <string>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "Sdhci keeps its little-endian registers in host byte order: a big-endian host needs byte swapping"
#endif

namespace emmcsim::models {
namespace {

using namespace sdhci;

constexpr std::uint64_t kAll = ~std::uint64_t{0};

bool covers(std::uint32_t first, std::uint32_t last, std::uint32_t offset) { return first <= offset && offset <= last; }

}  // namespace

// ---------------------------------------------------------------------------------------------
// The register map. This table is the model's register behaviour and its documentation: reads,
// writes and the actions after a write all go through it (docs/models.md, "The registers").
//   access    rw stored, ro read-only, w1c write 1 to clear, wo acted on and read as 0, rsvd
//             reserved (reads 0), port the buffer data port
//   mask      the bits a write reaches (rw, w1c, wo)
//   reset     the value after reset all, for stored registers
//   computed  the value comes from the controller's state on every read
//   on write  the action after a write covering the trigger byte (+n from the offset; kAny: any)

using Access = Sdhci::RegisterAccess;
constexpr Access rw = Access::rw, ro = Access::ro, w1c = Access::w1c, wo = Access::wo, rsvd = Access::rsvd,
                 port = Access::port;
constexpr std::uint32_t kAny = Sdhci::kAnyByte;

// clang-format off
const Sdhci::Register Sdhci::kRegisters[] = {
  // {offset, width (bytes), name, access, write mask, reset, computed on read, on write, trigger byte}
  {0x00, 4,   "SDMA address / argument 2", rw,   kAll,   0,        nullptr,                    &Sdhci::on_sdma_address,   3},
  {0x04, 2,   "block size",                rw,   kAll,   0,        nullptr,                    nullptr,                   0},
  {0x06, 2,   "block count",               rw,   kAll,   0,        nullptr,                    nullptr,                   0},
  {0x08, 4,   "argument",                  rw,   kAll,   0,        nullptr,                    nullptr,                   0},
  {0x0C, 2,   "transfer mode",             rw,   kAll,   0,        nullptr,                    nullptr,                   0},
  {0x0E, 2,   "command",                   rw,   kAll,   0,        nullptr,                    &Sdhci::issue_command,     1},
  {0x10, 16,  "response",                  ro,   0,      0,        nullptr,                    nullptr,                   0},
  {0x20, 4,   "buffer data port",          port, kAll,   0,        nullptr,                    nullptr,                   0},
  {0x24, 4,   "present state",             ro,   0,      0,        &Sdhci::present_state,      nullptr,                   0},
  {0x28, 1,   "host control 1",            rw,   kAll,   0,        nullptr,                    nullptr,                   0},
  {0x29, 1,   "power control",             rw,   kAll,   0,        nullptr,                    &Sdhci::on_power_control,  0},
  {0x2A, 1,   "block gap control",         rw,   kAll,   0,        nullptr,                    nullptr,                   0},
  {0x2B, 1,   "wakeup control",            rw,   kAll,   0,        nullptr,                    nullptr,                   0},
  {0x2C, 2,   "clock control",             rw,   0xFFFD, 0,        nullptr,                    &Sdhci::on_clock_control,  0},
  {0x2E, 1,   "timeout control",           rw,   kAll,   0,        nullptr,                    nullptr,                   0},
  {0x2F, 1,   "software reset",            wo,   kAll,   0,        nullptr,                    &Sdhci::on_software_reset, 0},
  {0x30, 2,   "normal int status",         w1c,  0x7FFF, 0,        &Sdhci::normal_int_status,  nullptr,                   0},
  {0x32, 2,   "error int status",          w1c,  kAll,   0,        nullptr,                    nullptr,                   0},
  {0x34, 2,   "normal int status enable",  rw,   kAll,   0,        nullptr,                    nullptr,                   0},
  {0x36, 2,   "error int status enable",   rw,   kAll,   0,        nullptr,                    nullptr,                   0},
  {0x38, 2,   "normal int signal enable",  rw,   kAll,   0,        nullptr,                    nullptr,                   0},
  {0x3A, 2,   "error int signal enable",   rw,   kAll,   0,        nullptr,                    nullptr,                   0},
  {0x3C, 2,   "Auto CMD error status",     ro,   0,      0,        nullptr,                    nullptr,                   0},
  {0x3E, 2,   "host control 2",            rw,   kAll,   0,        nullptr,                    &Sdhci::on_host_control2,  kAny},
  {0x40, 8,   "capabilities",              ro,   0,      0,        &Sdhci::capabilities_value, nullptr,                   0},
  {0x48, 8,   "maximum current",           ro,   0,      0,        nullptr,                    nullptr,                   0},
  {0x50, 2,   "force Auto CMD error",      wo,   kAll,   0,        nullptr,                    nullptr,                   0},
  {0x52, 2,   "force error interrupt",     wo,   kAll,   0,        nullptr,                    &Sdhci::on_force_error,    1},
  {0x54, 1,   "ADMA error status",         ro,   0,      0,        nullptr,                    nullptr,                   0},
  {0x55, 3,   "reserved",                  rsvd, 0,      0,        nullptr,                    nullptr,                   0},
  {0x58, 4,   "ADMA/SDMA address",         rw,   kAll,   0,        nullptr,                    &Sdhci::on_system_address_low,  3},
  {0x5C, 4,   "ADMA/SDMA address (high)",  rw,   kAll,   0,        nullptr,                    &Sdhci::on_system_address_high, 3},
  {0x60, 8,   "preset values 0x60-0x67",   ro,   0,      0,        &Sdhci::presets_low,        nullptr,                   0},
  {0x68, 8,   "preset values 0x68-0x6F",   ro,   0,      0,        &Sdhci::presets_high,       nullptr,                   0},
  {0x70, 140, "reserved",                  rsvd, 0,      0,        nullptr,                    nullptr,                   0},
  {0xFC, 2,   "slot int status",           ro,   0,      0,        nullptr,                    nullptr,                   0},
  {0xFE, 2,   "host version",              ro,   0,      0,        &Sdhci::host_version,       nullptr,                   0},
};
// clang-format on

std::array<std::uint8_t, kRegisterSpace> Sdhci::map_bytes_to_registers() {
  std::array<std::uint8_t, kRegisterSpace> map{};
  std::uint32_t next = 0;
  std::uint8_t index = 0;
  for (const Register& reg : kRegisters) {
    if (reg.offset != next || reg.width == 0 || reg.offset + reg.width > kRegisterSpace)
      throw std::logic_error("Sdhci: the register table does not tile the map");
    for (std::uint32_t i = 0; i < reg.width; ++i) map[reg.offset + i] = index;
    next = reg.offset + reg.width;
    ++index;
  }
  if (next != kRegisterSpace) throw std::logic_error("Sdhci: the register table does not tile the map");
  return map;
}

const std::array<std::uint8_t, kRegisterSpace> Sdhci::kRegisterOfByte = Sdhci::map_bytes_to_registers();

Sdhci::RegisterMap Sdhci::register_map() { return {kRegisters, std::size(kRegisters)}; }
const Sdhci::Register& Sdhci::register_at(std::uint32_t offset) { return kRegisters[kRegisterOfByte[offset]]; }

Sdhci::Sdhci(sc_core::sc_module_name name, const SdhciCapabilities& capabilities)
    : sc_module(name), regs("regs"), dma("dma"), card("card"), irq("irq"), capabilities_(capabilities) {
  if (capabilities_.base_clock_mhz == 0 || capabilities_.base_clock_mhz > 255)
    throw std::invalid_argument("Sdhci: base_clock_mhz must be 1..255");
  if (capabilities_.timeout_clock_khz == 0 || capabilities_.timeout_clock_khz > 63'000)
    throw std::invalid_argument("Sdhci: timeout_clock_khz must be 1..63000");
  if (version_number() < kSpecVersion300 || version_number() > kSpecVersion420)
    throw std::invalid_argument("Sdhci: version must be 3.00, 4.00, 4.10 or 4.20");
  std::uint32_t caps = (std::uint32_t{capabilities_.base_clock_mhz} << kCapBaseClockShift) | kCapVoltage330 |
                       kCapVoltage180 | kCapSlotEmbedded;
  if (capabilities_.timeout_clock_khz % 1000 == 0)
    caps |= ((capabilities_.timeout_clock_khz / 1000) << kCapTimeoutClockShift) | kCapTimeoutClockMhz;
  else
    caps |= std::min<std::uint32_t>(capabilities_.timeout_clock_khz, 63) << kCapTimeoutClockShift;
  if (capabilities_.eight_bit) caps |= kCap8Bit;
  if (capabilities_.adma2) caps |= kCapAdma2;
  if (capabilities_.sdma) caps |= kCapSdma;
  if (capabilities_.high_speed) caps |= kCapHighSpeed;
  if (capabilities_.addressing_64)
    caps |= kCapAddressing64 | (version_number() >= kSpecVersion410 ? kCapAddressing64V4 : 0);
  const std::uint32_t caps1 = (capabilities_.sdr104 ? kCap1Sdr104 : 0) | (capabilities_.ddr50 ? kCap1Ddr50 : 0);
  capabilities_register_ = caps | (std::uint64_t{caps1} << 32);
  // Preset values: the divider N (SD clock = base / 2N, or the base clock for N = 0) of the
  // fastest clock not above each speed's, driver strength B.
  const std::uint64_t base = std::uint64_t{capabilities_.base_clock_mhz} * 1'000'000;
  const auto preset = [base](std::uint64_t hz) -> std::uint64_t {
    return base <= hz ? 0 : std::min<std::uint64_t>((base + 2 * hz - 1) / (2 * hz), kPresetDividerMask);
  };
  // initialization, default speed, high speed, SDR12; SDR25, SDR50, SDR104, DDR50
  const std::uint64_t speeds[8] = {400'000,    25'000'000,  50'000'000,  25'000'000,
                                   50'000'000, 100'000'000, 200'000'000, 50'000'000};
  for (unsigned i = 0; i < 8; ++i) presets_[i / 4] |= preset(speeds[i]) << (16 * (i % 4));
  regs.register_b_transport(this, &Sdhci::b_transport);
  reset_all();
  SC_HAS_PROCESS(Sdhci);
  SC_THREAD(command_sequencer);
  SC_METHOD(drive_irq);
  sensitive << irq_changed_;
  dont_initialize();
}

// ---------------------------------------------------------------------------------------------
// Registers

std::uint16_t Sdhci::reg16(std::uint32_t o) const { return static_cast<std::uint16_t>(r_[o] | (r_[o + 1] << 8)); }
std::uint32_t Sdhci::reg32(std::uint32_t o) const { return reg16(o) | (std::uint32_t{reg16(o + 2)} << 16); }
std::uint64_t Sdhci::reg64(std::uint32_t o) const { return reg32(o) | (std::uint64_t{reg32(o + 4)} << 32); }
void Sdhci::set16(std::uint32_t o, std::uint16_t v) {
  r_[o] = static_cast<std::uint8_t>(v);
  r_[o + 1] = static_cast<std::uint8_t>(v >> 8);
}
void Sdhci::set32(std::uint32_t o, std::uint32_t v) {
  set16(o, static_cast<std::uint16_t>(v));
  set16(o + 2, static_cast<std::uint16_t>(v >> 16));
}
void Sdhci::set64(std::uint32_t o, std::uint64_t v) {
  set32(o, static_cast<std::uint32_t>(v));
  set32(o + 4, static_cast<std::uint32_t>(v >> 32));
}

std::uint64_t Sdhci::sd_clock_hz() const {
  const std::uint16_t clock = reg16(kClockControl);
  if (!(clock & kClockInternalEnable) || !(clock & kClockCardEnable)) return 0;
  const std::uint32_t divider = ((clock >> kDividerShift) & 0xFF) | (((clock >> kDividerHighShift) & 3) << 8);
  const std::uint64_t base = std::uint64_t{capabilities_.base_clock_mhz} * 1'000'000;
  return divider == 0 ? base : base / (2 * divider);
}

std::uint64_t Sdhci::present_state() const {
  std::uint32_t s = kCardInserted | kCardStateStable | kCardDetectPinLevel | kWriteProtectPinLevel | kCmdLineLevel;
  if (command_inhibit_) s |= kCmdInhibit;
  if (data_inhibit_) s |= kDataInhibit;
  if (data_active_ || card_busy_) s |= kDataLineActive;
  if (write_active_) s |= kWriteTransferActive;
  if (read_active_) s |= kReadTransferActive;
  if (buffer_write_enable_) s |= kBufferWriteEnable;
  if (buffer_read_enable_) s |= kBufferReadEnable;
  s |= (card_busy_ ? 0xEu : 0xFu) << kDataLineLevelShift;
  return s;
}

std::uint64_t Sdhci::host_version() const {
  return version_number() | (std::uint32_t{capabilities_.vendor_version} << 8);
}

bool Sdhci::version4_mode() const { return (reg16(kHostControl2) & kCtrl2Version4Enable) != 0; }
bool Sdhci::addressing_64() const { return version4_mode() && (reg16(kHostControl2) & kCtrl2Addressing64) != 0; }

std::uint16_t Sdhci::auto_command(std::uint16_t mode) const {
  const std::uint16_t select = mode & kTrnAutoCmdMask;
  if (select != kTrnAutoCmdAutoSelect) return select;
  if (version_number() < kSpecVersion410) return 0;  // reserved before 4.10
  return (reg16(kHostControl2) & kCtrl2Cmd23Enable) ? kTrnAutoCmd23 : kTrnAutoCmd12;
}

std::uint64_t Sdhci::normal_int_status() const {
  return reg16(kNormalIntStatus) | (reg16(kErrorIntStatus) != 0 ? kIntErrorSummary : 0);
}

// Bytes [first, first + length) of the map as a read returns them, register by register (a
// computed value is computed once per register the access covers), without a read's side
// effects: the buffer data port reads 0 here.
void Sdhci::peek_bytes(std::uint32_t first, std::uint32_t length, std::uint8_t* out) const {
  for (std::uint32_t o = first, end = first + length; o < end;) {
    const Register& reg = register_at(o);
    const std::uint32_t n = std::min(end, reg.offset + reg.width) - o;
    switch (reg.access) {
      case Access::port:
      case Access::wo:
      case Access::rsvd: std::fill_n(out, n, 0); break;
      default:
        if (reg.computed != nullptr) {
          const std::uint64_t value = (this->*reg.computed)();
          for (std::uint32_t i = 0; i < n; ++i) out[i] = static_cast<std::uint8_t>(value >> (8 * (o + i - reg.offset)));
        } else {
          std::copy_n(r_.data() + o, n, out);
        }
        break;
    }
    o += n;
    out += n;
  }
}

void Sdhci::write_byte(std::uint32_t o, std::uint8_t v) {
  const Register& reg = register_at(o);
  const std::uint32_t byte = o - reg.offset;
  const auto mask = byte < 8 ? static_cast<std::uint8_t>(reg.write_mask >> (8 * byte)) : std::uint8_t{0};
  switch (reg.access) {
    case Access::rw:
    case Access::wo: r_[o] = static_cast<std::uint8_t>((r_[o] & ~mask) | (v & mask)); return;
    case Access::w1c: r_[o] = static_cast<std::uint8_t>(r_[o] & ~(v & mask)); return;
    case Access::port: put_buffer_byte(v); return;
    case Access::ro:
    case Access::rsvd: return;
  }
}

void Sdhci::after_write(std::uint32_t first, std::uint32_t last) {
  for (std::uint32_t o = first; o <= last;) {
    const Register& reg = register_at(o);
    if (reg.on_write != nullptr && (reg.trigger == kAnyByte || covers(first, last, reg.offset + reg.trigger)))
      (this->*reg.on_write)();
    o = reg.offset + reg.width;
  }
  update_irq();
}

std::uint32_t Sdhci::peek32(std::uint32_t offset) const {
  std::uint8_t bytes[4] = {};
  if (offset < kRegisterSpace) peek_bytes(offset, std::min<std::uint32_t>(4, kRegisterSpace - offset), bytes);
  return bytes[0] | (std::uint32_t{bytes[1]} << 8) | (std::uint32_t{bytes[2]} << 16) | (std::uint32_t{bytes[3]} << 24);
}
std::uint16_t Sdhci::peek16(std::uint32_t offset) const { return static_cast<std::uint16_t>(peek32(offset)); }

std::uint8_t Sdhci::take_buffer_byte() {
  if (!buffer_read_enable_) return 0;
  const std::uint8_t b = buffer_[buffer_at_++];
  if (buffer_at_ == buffer_.size()) {
    buffer_read_enable_ = false;
    buffer_serviced_.notify(sc_core::SC_ZERO_TIME);
  }
  return b;
}

void Sdhci::put_buffer_byte(std::uint8_t v) {
  if (!buffer_write_enable_) return;
  buffer_[buffer_at_++] = v;
  if (buffer_at_ == buffer_.size()) {
    buffer_write_enable_ = false;
    buffer_serviced_.notify(sc_core::SC_ZERO_TIME);
  }
}

// SDMA resumes from a buffer-boundary pause when the driver writes the address register's top
// byte: 0x03 outside version 4 mode, 0x5B in it with 32-bit addressing, 0x5F with 64-bit.
void Sdhci::on_sdma_address() {
  if (!version4_mode()) resume_sdma(reg32(kSdmaAddress));
}
void Sdhci::on_system_address_low() {
  if (version4_mode() && !addressing_64()) resume_sdma(reg32(kAdmaAddress));
}
void Sdhci::on_system_address_high() {
  if (addressing_64()) resume_sdma(reg64(kAdmaAddress));
}

void Sdhci::resume_sdma(std::uint64_t address) {
  if (!sdma_paused_) return;
  sdma_paused_ = false;
  sdma_->resume(address);
  sdma_resumed_.notify(sc_core::SC_ZERO_TIME);
}

void Sdhci::on_power_control() {
  const std::uint8_t power = r_[kPowerControl];
  const std::uint8_t voltage = power & 0x0E;
  const bool on = (power & kPowerOn) && (voltage == kPower180 || voltage == kPower330 || voltage == kPower300);
  if ((power & kPowerOn) && !on) {
    warn("bus power on without a supported voltage (power control " + fmt::format("{:#04x}", power) +
         "): power stays off");
    r_[kPowerControl] &= static_cast<std::uint8_t>(~kPowerOn);
  }
  if (on && !card_power_) {
    power_cycle_pending_ = true;
    command_issued_.notify(sc_core::SC_ZERO_TIME);
  }
  card_power_ = on;
}

// The internal clock is stable as soon as it is enabled.
void Sdhci::on_clock_control() {
  if (r_[kClockControl] & kClockInternalEnable)
    r_[kClockControl] |= kClockInternalStable;
  else
    r_[kClockControl] &= static_cast<std::uint8_t>(~kClockInternalStable);
}

// Done at once: the register reads back 0.
void Sdhci::on_software_reset() {
  const std::uint8_t reset = r_[kSoftwareReset];
  r_[kSoftwareReset] = 0;
  if (reset & kResetAll) {
    reset_all();
  } else {
    if (reset & kResetCmd) reset_cmd_line();
    if (reset & kResetData) reset_data_line();
  }
}

// Host control 2 holds only what this controller's version and capabilities have: version 4
// mode and 64-bit addressing from 4.00 (64-bit addressing only with addressing_64), CMD23 enable
// from 4.10; never 26-bit ADMA2 lengths or asynchronous interrupts. 1.8 V signalling stays set,
// as a regulator that became stable, when the controller has a UHS mode (SDR104 or DDR50).
void Sdhci::on_host_control2() {
  std::uint16_t value = reg16(kHostControl2);
  const std::uint16_t requested = value;
  if (version_number() < kSpecVersion400)
    value &= static_cast<std::uint16_t>(~(kCtrl2Version4Enable | kCtrl2Addressing64));
  if (version_number() < kSpecVersion410) value &= static_cast<std::uint16_t>(~kCtrl2Cmd23Enable);
  if (!capabilities_.addressing_64) value &= static_cast<std::uint16_t>(~kCtrl2Addressing64);
  value &= static_cast<std::uint16_t>(~(kCtrl2Adma2LengthMode | kCtrl2AsyncInterrupt));
  if ((value & kCtrl2Signal180) && !capabilities_.sdr104 && !capabilities_.ddr50) {
    warn("1.8 V signalling asked of a controller without a UHS mode: the regulator does not become stable");
    value &= static_cast<std::uint16_t>(~kCtrl2Signal180);
  }
  if (value != requested) set16(kHostControl2, value);
}

void Sdhci::on_force_error() {
  raise_error(reg16(kForceErrorInt));
  set16(kForceErrorInt, 0);
}

void Sdhci::b_transport(tlm::tlm_generic_payload& p, sc_core::sc_time& /*delay*/) {
  const std::uint64_t address = p.get_address();
  const unsigned length = p.get_data_length();
  if (p.get_byte_enable_ptr() != nullptr && p.get_byte_enable_length() != 0) {
    p.set_response_status(tlm::TLM_BYTE_ENABLE_ERROR_RESPONSE);
    return;
  }
  const bool width_ok = length == 1 || length == 2 || length == 4 || length == 8;
  if (!width_ok || address % length != 0 || address + length > kRegisterSpace || p.get_data_ptr() == nullptr ||
      p.get_streaming_width() < length) {
    warn(
        fmt::format("register access of {} bytes at {:#x} refused (the map is {:#x} bytes of 1-, 2-, 4- and 8-byte "
                    "aligned registers)",
                    length, address, kRegisterSpace));
    p.set_response_status(tlm::TLM_ADDRESS_ERROR_RESPONSE);
    return;
  }
  const auto first = static_cast<std::uint32_t>(address);
  const std::uint32_t last = first + length - 1;
  unsigned char* data = p.get_data_ptr();
  const bool buffer_port = first < kBufferDataPort + 4 && last >= kBufferDataPort;
  if (p.is_read()) {
    if (buffer_port && !buffer_read_enable_)
      warn("buffer data port read with no block ready (buffer read enable clear)");
    for (std::uint32_t o = first; o <= last;) {
      const Register& reg = register_at(o);
      const std::uint32_t n = std::min(last + 1, reg.offset + reg.width) - o;
      if (reg.access == Access::port) {  // a read takes its bytes from the PIO buffer
        for (std::uint32_t i = 0; i < n; ++i) data[o - first + i] = take_buffer_byte();
      } else {
        peek_bytes(o, n, data + (o - first));
      }
      o += n;
    }
  } else if (p.is_write()) {
    if (buffer_port && !buffer_write_enable_) warn("buffer data port written with no room (buffer write enable clear)");
    for (unsigned i = 0; i < length; ++i) write_byte(first + i, data[i]);
    after_write(first, last);
  }
  p.set_response_status(tlm::TLM_OK_RESPONSE);
}

// ---------------------------------------------------------------------------------------------
// Interrupts and resets

void Sdhci::raise(std::uint16_t normal) {
  set16(kNormalIntStatus,
        static_cast<std::uint16_t>(reg16(kNormalIntStatus) | (normal & reg16(kNormalIntStatusEnable) & 0x7FFF)));
  update_irq();
}

void Sdhci::raise_error(std::uint16_t error) {
  set16(kErrorIntStatus, static_cast<std::uint16_t>(reg16(kErrorIntStatus) | (error & reg16(kErrorIntStatusEnable))));
  update_irq();
}

bool Sdhci::irq_level() const {
  return (reg16(kNormalIntStatus) & reg16(kNormalIntSignalEnable) & 0x7FFF) != 0 ||
         (reg16(kErrorIntStatus) & reg16(kErrorIntSignalEnable)) != 0;
}

// Registers change from the CPU's thread and the command sequencer; the port has one driver.
void Sdhci::update_irq() { irq_changed_.notify(sc_core::SC_ZERO_TIME); }

void Sdhci::drive_irq() {
  const bool level = irq_level();
  if (irq.read() != level) irq.write(level);
}

void Sdhci::cancel_running() {
  ++generation_;
  command_pending_ = false;
  sdma_paused_ = false;
  buffer_read_enable_ = false;
  buffer_write_enable_ = false;
  reset_.notify(sc_core::SC_ZERO_TIME);
}

void Sdhci::reset_all() {
  cancel_running();
  power_cycle_pending_ = false;
  command_inhibit_ = data_inhibit_ = data_active_ = read_active_ = write_active_ = card_busy_ = false;
  card_power_ = false;
  r_.fill(0);
  for (const Register& reg : kRegisters)
    for (std::uint32_t i = 0; i < reg.width && i < 8 && reg.reset != 0; ++i)
      r_[reg.offset + i] = static_cast<std::uint8_t>(reg.reset >> (8 * i));
  update_irq();
}

void Sdhci::reset_cmd_line() {
  if (command_inhibit_ && !data_inhibit_) cancel_running();
  command_inhibit_ = false;
  command_pending_ = false;
  set16(kNormalIntStatus, static_cast<std::uint16_t>(reg16(kNormalIntStatus) & ~kIntCommandComplete));
}

void Sdhci::reset_data_line() {
  if (data_inhibit_) cancel_running();
  data_inhibit_ = data_active_ = read_active_ = write_active_ = card_busy_ = false;
  set16(kNormalIntStatus,
        static_cast<std::uint16_t>(reg16(kNormalIntStatus) & ~(kIntTransferComplete | kIntBlockGap | kIntDma |
                                                               kIntBufferWriteReady | kIntBufferReadReady)));
}

void Sdhci::warn(const std::string& what) const {
  SC_REPORT_WARNING(kMessageType, (std::string(name()) + ": " + what).c_str());
}

}  // namespace emmcsim::models
