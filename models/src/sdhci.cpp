// Sdhci (see sdhci.hpp).
#include "emmcsim/models/sdhci.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <string>

#include "emmcsim/models/simulated_time.hpp"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "Sdhci keeps its little-endian registers in host byte order: a big-endian host needs byte swapping"
#endif

namespace emmcsim::models {
namespace {

using namespace sdhci;

constexpr std::uint64_t kIdentificationHz = 400'000;

bool covers(std::uint32_t first, std::uint32_t last, std::uint32_t offset) { return first <= offset && offset <= last; }

bool read_only(std::uint32_t offset) {
  return (offset >= kResponse && offset < kResponse + 16) || (offset >= kPresentState && offset < kPresentState + 4) ||
         (offset >= kAutoCmdErrorStatus && offset < kAutoCmdErrorStatus + 2) ||
         (offset >= kCapabilities && offset < kMaxCurrent + 8) || offset == kAdmaErrorStatus ||
         offset >= kSlotIntStatus;
}

}  // namespace

Sdhci::Sdhci(sc_core::sc_module_name name, const SdhciCapabilities& capabilities)
    : sc_module(name), regs("regs"), dma("dma"), card("card"), irq("irq"), capabilities_(capabilities) {
  if (capabilities_.base_clock_mhz == 0 || capabilities_.base_clock_mhz > 255)
    throw std::invalid_argument("Sdhci: base_clock_mhz must be 1..255");
  if (capabilities_.timeout_clock_khz == 0 || capabilities_.timeout_clock_khz > 63'000)
    throw std::invalid_argument("Sdhci: timeout_clock_khz must be 1..63000");
  regs.register_b_transport(this, &Sdhci::b_transport);
  reset_all();
  SC_HAS_PROCESS(Sdhci);
  SC_THREAD(engine);
  SC_METHOD(drive_irq);
  sensitive << irq_changed_;
  dont_initialize();
}

// ---------------------------------------------------------------------------------------------
// Registers

std::uint16_t Sdhci::reg16(std::uint32_t o) const { return static_cast<std::uint16_t>(r_[o] | (r_[o + 1] << 8)); }
std::uint32_t Sdhci::reg32(std::uint32_t o) const { return reg16(o) | (std::uint32_t{reg16(o + 2)} << 16); }
void Sdhci::set16(std::uint32_t o, std::uint16_t v) {
  r_[o] = static_cast<std::uint8_t>(v);
  r_[o + 1] = static_cast<std::uint8_t>(v >> 8);
}
void Sdhci::set32(std::uint32_t o, std::uint32_t v) {
  set16(o, static_cast<std::uint16_t>(v));
  set16(o + 2, static_cast<std::uint16_t>(v >> 16));
}

std::uint64_t Sdhci::sd_clock_hz() const {
  const std::uint16_t clock = reg16(kClockControl);
  if (!(clock & kClockInternalEnable) || !(clock & kClockCardEnable)) return 0;
  const std::uint32_t divider = ((clock >> kDividerShift) & 0xFF) | (((clock >> kDividerHighShift) & 3) << 8);
  const std::uint64_t base = std::uint64_t{capabilities_.base_clock_mhz} * 1'000'000;
  return divider == 0 ? base : base / (2 * divider);
}

std::uint32_t Sdhci::present_state() const {
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

std::uint32_t Sdhci::peek32(std::uint32_t offset) const {
  std::uint32_t v = 0;
  for (std::uint32_t i = 0; i < 4 && offset + i < kRegisterSpace; ++i) {
    const std::uint32_t o = offset + i;
    std::uint8_t b = r_[o];
    if (o >= kPresentState && o < kPresentState + 4) b = static_cast<std::uint8_t>(present_state() >> (8 * (o - kPresentState)));
    if (o == kNormalIntStatus + 1 && reg16(kErrorIntStatus) != 0) b |= kIntErrorSummary >> 8;
    if (o >= kBufferDataPort && o < kBufferDataPort + 4) b = 0;
    v |= std::uint32_t{b} << (8 * i);
  }
  return v;
}
std::uint16_t Sdhci::peek16(std::uint32_t offset) const { return static_cast<std::uint16_t>(peek32(offset)); }

std::uint8_t Sdhci::read_byte(std::uint32_t o) {
  if (o >= kBufferDataPort && o < kBufferDataPort + 4) {
    if (!buffer_read_enable_) return 0;
    const std::uint8_t b = buffer_[buffer_at_++];
    if (buffer_at_ == buffer_.size()) {
      buffer_read_enable_ = false;
      buffer_serviced_.notify(sc_core::SC_ZERO_TIME);
    }
    return b;
  }
  return static_cast<std::uint8_t>(peek32(o));
}

void Sdhci::write_byte(std::uint32_t o, std::uint8_t v) {
  if (read_only(o)) return;
  if (o >= kBufferDataPort && o < kBufferDataPort + 4) {
    if (!buffer_write_enable_) return;
    buffer_[buffer_at_++] = v;
    if (buffer_at_ == buffer_.size()) {
      buffer_write_enable_ = false;
      buffer_serviced_.notify(sc_core::SC_ZERO_TIME);
    }
    return;
  }
  if (o >= kNormalIntStatus && o < kNormalIntStatus + 4) {  // write 1 to clear
    r_[o] = static_cast<std::uint8_t>(r_[o] & ~v);
    return;
  }
  if (o == kSoftwareReset) return;  // acted on in after_write; reads back 0 (done at once)
  if (o == kClockControl) v = static_cast<std::uint8_t>((v & ~kClockInternalStable) | (r_[o] & kClockInternalStable));
  r_[o] = v;
}

void Sdhci::after_write(std::uint32_t first, std::uint32_t last) {
  if (covers(first, last, kClockControl)) {
    if (r_[kClockControl] & kClockInternalEnable)
      r_[kClockControl] |= kClockInternalStable;  // stable at once
    else
      r_[kClockControl] &= static_cast<std::uint8_t>(~kClockInternalStable);
  }
  if (covers(first, last, kPowerControl)) {
    const std::uint8_t power = r_[kPowerControl];
    const std::uint8_t voltage = power & 0x0E;
    const bool on = (power & kPowerOn) && (voltage == kPower180 || voltage == kPower330 || voltage == 0x0C);
    if ((power & kPowerOn) && !on) {
      warn("bus power on without a supported voltage (power control " + fmt::format("{:#04x}", power) + "): power stays off");
      r_[kPowerControl] &= static_cast<std::uint8_t>(~kPowerOn);
    }
    if (on && !card_power_) {
      power_cycle_pending_ = true;
      command_issued_.notify(sc_core::SC_ZERO_TIME);
    }
    card_power_ = on;
  }
  if (covers(first, last, kSoftwareReset + 0)) {
    const std::uint8_t reset = pending_reset_;
    pending_reset_ = 0;
    if (reset & kResetAll) {
      reset_all();
    } else {
      if (reset & kResetCmd) reset_cmd_line();
      if (reset & kResetData) reset_data_line();
    }
  }
  if (covers(first, last, kForceErrorInt + 1)) {
    raise_error(reg16(kForceErrorInt));
    set16(kForceErrorInt, 0);
  }
  if (covers(first, last, kSdmaAddress + 3) && sdma_paused_) {
    sdma_paused_ = false;
    sdma_next_ = reg32(kSdmaAddress);
    sdma_address_written_.notify(sc_core::SC_ZERO_TIME);
  }
  if (covers(first, last, kCommand + 1)) issue_command();
  update_irq();
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
    warn(fmt::format("register access of {} bytes at {:#x} refused (the map is {:#x} bytes of 1-, 2-, 4- and 8-byte "
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
    if (buffer_port && !buffer_read_enable_) warn("buffer data port read with no block ready (buffer read enable clear)");
    for (unsigned i = 0; i < length; ++i) data[i] = read_byte(first + i);
  } else if (p.is_write()) {
    if (buffer_port && !buffer_write_enable_) warn("buffer data port written with no room (buffer write enable clear)");
    if (covers(first, last, kSoftwareReset)) pending_reset_ = data[kSoftwareReset - first];
    for (unsigned i = 0; i < length; ++i) write_byte(first + i, data[i]);
    after_write(first, last);
  }
  p.set_response_status(tlm::TLM_OK_RESPONSE);
}

// ---------------------------------------------------------------------------------------------
// Interrupts and resets

void Sdhci::raise(std::uint16_t normal) {
  set16(kNormalIntStatus, static_cast<std::uint16_t>(reg16(kNormalIntStatus) | (normal & reg16(kNormalIntStatusEnable) & 0x7FFF)));
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

// Registers change from the CPU's thread and the controller's; the port has one driver.
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
  set32(kCapabilities, caps);
  set32(kCapabilities + 4, (capabilities_.sdr104 ? kCap1Sdr104 : 0) | (capabilities_.ddr50 ? kCap1Ddr50 : 0));
  set16(kHostVersion, kSpecVersion300);
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
  set16(kNormalIntStatus, static_cast<std::uint16_t>(reg16(kNormalIntStatus) &
                                                     ~(kIntTransferComplete | kIntBlockGap | kIntDma |
                                                       kIntBufferWriteReady | kIntBufferReadReady)));
}

void Sdhci::warn(const std::string& what) const {
  SC_REPORT_WARNING(kMessageType, (std::string(name()) + ": " + what).c_str());
}

// ---------------------------------------------------------------------------------------------
// Commands

void Sdhci::issue_command() {
  const std::uint16_t command = reg16(kCommand);
  const bool uses_data_line = (command & kCmdDataPresent) || (command & kCmdResponseMask) == kCmdResponseShortBusy;
  const bool abort = (command & kCmdTypeMask) == kCmdTypeAbort;
  if (command_inhibit_ || command_pending_) {
    warn(fmt::format("CMD{} issued while the CMD line is inhibited: ignored", (command >> kCmdIndexShift) & 0x3F));
    return;
  }
  if (uses_data_line && data_inhibit_ && !abort) {
    warn(fmt::format("CMD{} needs the DAT line, which is inhibited: ignored", (command >> kCmdIndexShift) & 0x3F));
    return;
  }
  command_inhibit_ = true;
  if (uses_data_line) data_inhibit_ = true;
  command_pending_ = true;
  command_issued_.notify(sc_core::SC_ZERO_TIME);
}

void Sdhci::engine() {
  bus_.emplace(card, kIdentificationHz);
  for (;;) {
    while (!command_pending_ && !power_cycle_pending_) wait(command_issued_);
    if (power_cycle_pending_) {
      power_cycle_pending_ = false;
      card_power_cycle();
      continue;
    }
    command_pending_ = false;
    running_generation_ = generation_;
    run_command();
    if (!still_running()) {
      // A software reset cancelled it: the lines it held are free.
      command_inhibit_ = data_inhibit_ = data_active_ = read_active_ = write_active_ = card_busy_ = false;
      update_irq();
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The card side: every bus transaction goes through these four, and this is where a phase the
// card cannot take becomes the status the specification names. A phase needs bus power and a
// running SD clock (the driver may stop either at any moment, mid-transfer included); without
// them nothing is sent and the phase fails as the line would: no response (command timeout), no
// data or no CRC status (data timeout). A transaction the device refuses all the same
// (TransactionRefused, a check of the eMMC bus protocol) ends the same way and is reported: no
// exception leaves the controller's thread.

bool Sdhci::card_reachable(const char* phase) const {
  if (card_power_ && sd_clock_hz() != 0) return true;
  warn(fmt::format("{} with {}: the card cannot see it", phase, card_power_ ? "the SD clock off" : "bus power off"));
  return false;
}

template <class Transaction>
bool Sdhci::on_card(const char* phase, Transaction&& transaction) {
  try {
    transaction();
    return true;
  } catch (const TransactionRefused& refused) {
    warn(fmt::format("{}: {}", phase, refused.what()));
    return false;
  }
}

bool Sdhci::card_command(const mmc::Command& command, std::uint16_t response_select, mmc::CommandOutcome& outcome) {
  outcome = {};
  if (!card_reachable("a command")) return false;
  bus_->set_clock(sd_clock_hz());
  if (!on_card("a command", [&] { outcome = bus_->execute(command); })) return false;
  return response_select == kCmdResponseNone || outcome.response.type != mmc::ResponseType::none;
}

Sdhci::BlockResult Sdhci::card_block(bool read, std::uint32_t block_size) {
  const char* phase = read ? "a read block" : "a write block";
  if (!card_reachable(phase)) return BlockResult::no_answer;
  bus_->set_clock(sd_clock_hz());
  mmc::BlockOutcome o;
  const bool sent = on_card(phase, [&] {
    o = read ? bus_->read_blocks(block_.data(), block_size, 1) : bus_->write_blocks(block_.data(), block_size, 1);
  });
  if (!sent) return BlockResult::no_answer;
  if (o.ok) return BlockResult::moved;
  // A read block that never came is a data timeout; one with a bad CRC (or a write block the
  // card's CRC status rejected) is a data CRC error.
  return !read || bus_->data_crc_error() ? BlockResult::crc_error : BlockResult::no_answer;
}

bool Sdhci::card_wait_busy() {
  card_busy_ = true;
  // Busy is DAT0 held low: seeing it end needs no SD clock, but an unpowered card holds nothing.
  const bool released = !card_power_ || on_card("a busy wait", [&] {
    bus_->set_clock(std::max<std::uint64_t>(sd_clock_hz(), 1));
    bus_->wait_while_busy();
  });
  card_busy_ = false;
  return released;
}

void Sdhci::card_power_cycle() {
  on_card("a power cycle", [&] { bus_->power_cycle(); });
}

void Sdhci::end_command(bool release_data_line) {
  command_inhibit_ = false;
  if (release_data_line) data_inhibit_ = false;
  update_irq();
}

void Sdhci::run_command() {
  const std::uint16_t command = reg16(kCommand);
  const auto index = static_cast<std::uint8_t>((command >> kCmdIndexShift) & 0x3F);
  const std::uint16_t response_select = command & kCmdResponseMask;
  const bool data = (command & kCmdDataPresent) != 0;
  const std::uint16_t mode = reg16(kTransferMode);
  const std::uint32_t argument = reg32(kArgument);
  const bool tuning = data && (reg16(kHostControl2) & kCtrl2ExecuteTuning) && index == 21;

  if (sd_clock_hz() == 0 || !card_power_) {
    warn(fmt::format("CMD{} issued with {}: command timeout", index, card_power_ ? "the SD clock off" : "bus power off"));
    raise_error(kErrCommandTimeout);
    end_command(true);
    return;
  }
  if (data && (mode & kTrnAutoCmdMask) == kTrnAutoCmd23 && (mode & kTrnMultiBlock)) {
    if (!run_auto_cmd(23, reg32(kSdmaAddress), false)) {
      if (still_running()) end_command(true);
      return;
    }
  }
  mmc::CommandOutcome outcome;
  const bool answered = card_command({index, argument}, response_select, outcome);
  if (!still_running()) return;
  if (!answered) {
    raise_error(kErrCommandTimeout);
    end_command(true);
    return;
  }
  if (response_select == kCmdResponseLong) {
    for (std::uint32_t j = 0; j < 15; ++j) r_[kResponse + j] = outcome.response.r2[14 - j];
    r_[kResponse + 15] = 0;
  } else if (response_select != kCmdResponseNone) {
    set32(kResponse, outcome.response.value);
  }
  command_inhibit_ = false;
  if (!tuning) raise(kIntCommandComplete);

  if (data) {
    transfer_data(mode, outcome, tuning);
  } else if (response_select == kCmdResponseShortBusy) {
    const bool released = card_wait_busy();
    if (!still_running()) return;
    if (!released) data_timeout();
    if (!still_running()) return;
    data_inhibit_ = false;
    if (released) raise(kIntTransferComplete);
    update_irq();
  }
}

bool Sdhci::run_auto_cmd(std::uint8_t index, std::uint32_t argument, bool busy) {
  mmc::CommandOutcome outcome;
  const bool answered = card_command({index, argument}, kCmdResponseShort, outcome);
  if (!still_running()) return false;
  if (!answered) {
    set16(kAutoCmdErrorStatus, index == 23 ? static_cast<std::uint16_t>(kAutoCmdTimeout | kAutoCmdNotIssued) : kAutoCmdTimeout);
    raise_error(kErrAutoCmd);
    return false;
  }
  set32(kResponse + 12, outcome.response.value);
  if (busy && !card_wait_busy()) {
    if (still_running()) data_timeout();
    return false;
  }
  return still_running();
}


bool Sdhci::wait_for(const sc_core::sc_event& event, const bool& condition_clear) {
  while (condition_clear && still_running()) wait(event | reset_);
  return still_running();
}

void Sdhci::data_timeout() {
  const unsigned n = std::min<unsigned>(r_[kTimeoutControl] & 0xF, 14);
  const Picoseconds timeout = (Picoseconds{1} << (13 + n)) * 1'000'000'000ULL / capabilities_.timeout_clock_khz;
  wait(from_ps(timeout), reset_);
  if (!still_running()) return;
  raise_error(kErrDataTimeout);
}

// ---------------------------------------------------------------------------------------------
// Data

void Sdhci::transfer_data(std::uint16_t mode, const mmc::CommandOutcome& outcome, bool tuning) {
  const bool read = (mode & kTrnRead) != 0;
  const std::uint32_t block_size = reg16(kBlockSize) & kBlockLengthMask;
  const bool multi = (mode & kTrnMultiBlock) != 0;
  std::uint32_t blocks = multi ? reg16(kBlockCount) : 1;
  if (multi && !(mode & kTrnBlockCountEnable))
    warn("a multi-block transfer without block count enable is bounded by the block count register here");
  const std::uint32_t max_block = 512u << ((reg32(kCapabilities) >> kCapMaxBlockShift) & 3);
  data_active_ = true;
  read_active_ = read;
  write_active_ = !read;

  auto finish = [this](bool transfer_complete) {
    data_active_ = read_active_ = write_active_ = false;
    data_inhibit_ = false;
    if (transfer_complete) raise(kIntTransferComplete);
    update_irq();
  };
  const mmc::DataDirection expected = read ? mmc::DataDirection::to_host : mmc::DataDirection::to_card;
  if (block_size == 0 || block_size > max_block || blocks == 0 || outcome.data.direction != expected) {
    if (block_size == 0 || block_size > max_block)
      warn(fmt::format("block size {} outside 1..{}: no data moves", block_size, max_block));
    data_timeout();
    if (still_running()) finish(false);
    return;
  }

  dma_mode_ = DmaMode::none;
  if (mode & kTrnDmaEnable) {
    const std::uint8_t select = r_[kHostControl1] & kCtrlDmaMask;
    if (select == kCtrlSdma) {
      dma_mode_ = DmaMode::sdma;
      sdma_next_ = reg32(kSdmaAddress);
    } else if (select == kCtrlAdma32) {
      dma_mode_ = DmaMode::adma2;
      adma_.emplace(reg32(kAdmaAddress), [this](std::uint64_t address, std::uint8_t* out, std::size_t length) {
        return memory_access(tlm::TLM_READ_COMMAND, address, out, static_cast<std::uint32_t>(length));
      });
    } else {
      warn("DMA select names a mode this controller lacks (64-bit ADMA2 or reserved): ADMA error");
      r_[kAdmaErrorStatus] = kAdmaStateStop;
      raise_error(kErrAdma);
      finish(false);
      return;
    }
  }

  for (std::uint32_t i = 0; i < blocks; ++i) {
    const bool last = i + 1 == blocks;
    if (!move_block(read, block_size, last, tuning)) {
      if (still_running()) finish(false);
      return;
    }
    if (multi && (mode & kTrnBlockCountEnable)) set16(kBlockCount, static_cast<std::uint16_t>(reg16(kBlockCount) - 1));
  }
  if (tuning) {
    set16(kHostControl2, static_cast<std::uint16_t>((reg16(kHostControl2) & ~kCtrl2ExecuteTuning) | kCtrl2TunedClock));
    raise(kIntBufferReadReady);
    finish(false);
    return;
  }
  if (multi && (mode & kTrnAutoCmdMask) == kTrnAutoCmd12) {
    if (!run_auto_cmd(12, 0, true)) {
      if (still_running()) finish(false);
      return;
    }
  } else if (!read && !card_wait_busy()) {
    if (still_running()) data_timeout();
    if (still_running()) finish(false);
    return;
  }
  if (still_running()) finish(true);
}

bool Sdhci::move_block(bool read, std::uint32_t block_size, bool last, bool tuning) {
  block_.assign(block_size, 0);
  if (read) {
    const BlockResult result = card_block(true, block_size);
    if (!still_running()) return false;
    if (result != BlockResult::moved) {
      block_failed(result);
      return false;
    }
    if (tuning) return true;
    if (dma_mode_ != DmaMode::none) return dma_block(true, block_size, last);
    buffer_ = block_;
    buffer_at_ = 0;
    buffer_read_enable_ = true;
    raise(kIntBufferReadReady);
    return wait_for(buffer_serviced_, buffer_read_enable_);
  }
  if (dma_mode_ != DmaMode::none) {
    if (!dma_block(false, block_size, last)) return false;
  } else {
    buffer_.assign(block_size, 0);
    buffer_at_ = 0;
    buffer_write_enable_ = true;
    raise(kIntBufferWriteReady);
    if (!wait_for(buffer_serviced_, buffer_write_enable_)) return false;
    block_ = buffer_;
  }
  const BlockResult result = card_block(false, block_size);
  if (!still_running()) return false;
  if (result != BlockResult::moved) {
    block_failed(result);
    return false;
  }
  return true;
}

void Sdhci::block_failed(BlockResult result) {
  if (result == BlockResult::crc_error)
    raise_error(kErrDataCrc);
  else
    data_timeout();
}

bool Sdhci::dma_block(bool read, std::uint32_t block_size, bool last) {
  const tlm::tlm_command command = read ? tlm::TLM_WRITE_COMMAND : tlm::TLM_READ_COMMAND;
  std::uint32_t done = 0;
  if (dma_mode_ == DmaMode::sdma) {
    while (done < block_size) {
      const std::uint32_t boundary = 4096u << ((reg16(kBlockSize) >> kSdmaBoundaryShift) & 7);
      const std::uint32_t to_boundary = boundary - static_cast<std::uint32_t>(sdma_next_ % boundary);
      const std::uint32_t n = std::min(block_size - done, to_boundary);
      if (!memory_access(command, sdma_next_, block_.data() + done, n)) {
        SC_REPORT_INFO(kMessageType, fmt::format("{}: SDMA access at {:#x} refused by the memory", name(), sdma_next_).c_str());
        raise_error(kErrSystemBus);
        return false;
      }
      if (!still_running()) return false;
      done += n;
      sdma_next_ = (sdma_next_ + n) & 0xFFFF'FFFFu;
      set32(kSdmaAddress, static_cast<std::uint32_t>(sdma_next_));
      const bool more = done < block_size || !last;
      if (sdma_next_ % boundary == 0 && more) {
        sdma_paused_ = true;
        raise(kIntDma);
        if (!wait_for(sdma_address_written_, sdma_paused_)) return false;
      }
    }
    return true;
  }
  while (done < block_size) {
    const Adma2Walker::Step step = adma_->next(block_size - done);
    if (!still_running()) return false;
    if (step.error != Adma2Error::none) {
      SC_REPORT_INFO(kMessageType, fmt::format("{}: ADMA error: {} (descriptor at {:#x})", name(),
                                               adma2_error_name(step.error), adma_->descriptor_address())
                                       .c_str());
      r_[kAdmaErrorStatus] = step.error == Adma2Error::length_mismatch
                                 ? static_cast<std::uint8_t>(kAdmaStateTransfer | kAdmaLengthMismatch)
                                 : kAdmaStateFetch;
      set32(kAdmaAddress, adma_->descriptor_address());
      raise_error(kErrAdma);
      return false;
    }
    if (!memory_access(command, step.address, block_.data() + done, step.length)) {
      SC_REPORT_INFO(kMessageType, fmt::format("{}: ADMA data access at {:#x} refused by the memory", name(), step.address).c_str());
      r_[kAdmaErrorStatus] = kAdmaStateTransfer;
      set32(kAdmaAddress, adma_->descriptor_address());
      raise_error(kErrAdma);
      return false;
    }
    if (!still_running()) return false;
    done += step.length;
    if (step.interrupt) raise(kIntDma);
  }
  return true;
}

bool Sdhci::memory_access(tlm::tlm_command command, std::uint64_t address, std::uint8_t* data, std::uint32_t length) {
  tlm::tlm_generic_payload p;
  p.set_command(command);
  p.set_address(address);
  p.set_data_ptr(data);
  p.set_data_length(length);
  p.set_streaming_width(length);
  p.set_byte_enable_ptr(nullptr);
  p.set_dmi_allowed(false);
  p.set_response_status(tlm::TLM_INCOMPLETE_RESPONSE);
  sc_core::sc_time delay = sc_core::SC_ZERO_TIME;
  dma->b_transport(p, delay);
  if (delay > sc_core::SC_ZERO_TIME) wait(delay);
  return p.is_response_ok();
}

}  // namespace emmcsim::models
