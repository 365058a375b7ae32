// Sdhci's command sequencer (see sdhci.hpp): the SC_THREAD that runs each issued command on the
// card — Auto CMD23, the command, its data by PIO, SDMA or ADMA2, Auto CMD12, the busy — and the
// card side where a phase the card cannot take becomes the status the specification names.
#include "emmcsim/models/sdhci.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <string>

#include "emmcsim/models/simulated_time.hpp"

namespace emmcsim::models {
namespace {

using namespace sdhci;

constexpr std::uint64_t kIdentificationHz = 400'000;

}  // namespace

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

void Sdhci::command_sequencer() {
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
// exception leaves the command sequencer.

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
    warn(fmt::format("CMD{} issued with {}: command timeout", index,
                     card_power_ ? "the SD clock off" : "bus power off"));
    raise_error(kErrCommandTimeout);
    end_command(true);
    return;
  }
  // Auto CMD23's argument is Argument 2 (0x00), in version 4 mode too.
  if (data && auto_command(mode) == kTrnAutoCmd23 && (mode & kTrnMultiBlock)) {
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
    set16(kAutoCmdErrorStatus,
          index == 23 ? static_cast<std::uint16_t>(kAutoCmdTimeout | kAutoCmdNotIssued) : kAutoCmdTimeout);
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

  // DMA: SDMA from the SDMA address (0x00), or in version 4 mode from the ADMA/SDMA address
  // (0x58); ADMA2 with 8-byte descriptors, 12-byte ones for version 3's 64-bit select, 16-byte
  // ones in version 4 mode with 64-bit addressing.
  dma_mode_ = DmaMode::none;
  if (mode & kTrnDmaEnable) {
    const std::uint8_t select = r_[kHostControl1] & kCtrlDmaMask;
    const bool v4 = version4_mode();
    dma_addressing_64_ = addressing_64();
    const auto read_descriptor = [this](std::uint64_t address, std::uint8_t* out, std::size_t length) {
      return memory_access(tlm::TLM_READ_COMMAND, address, out, static_cast<std::uint32_t>(length));
    };
    if (select == kCtrlSdma) {
      dma_mode_ = DmaMode::sdma;
      const std::uint64_t address = !v4                  ? reg32(kSdmaAddress)
                                    : dma_addressing_64_ ? reg64(kAdmaAddress)
                                                         : reg32(kAdmaAddress);
      sdma_.emplace(address, reg16(kBlockSize) >> kSdmaBoundaryShift, dma_addressing_64_);
    } else if (select == kCtrlAdma32 || (select == kCtrlAdma64 && !v4 && capabilities_.addressing_64)) {
      dma_mode_ = DmaMode::adma2;
      Adma2Format format = Adma2Format::bits32;
      if (select == kCtrlAdma64) {
        format = Adma2Format::bits64;
        dma_addressing_64_ = true;
      } else if (dma_addressing_64_) {
        format = Adma2Format::bits64_v4;
      }
      adma_.emplace(dma_addressing_64_ ? reg64(kAdmaAddress) : reg32(kAdmaAddress), format, read_descriptor);
    } else {
      warn(fmt::format("DMA select {} names a mode this controller lacks: ADMA error", select >> 3));
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
  if (multi && auto_command(mode) == kTrnAutoCmd12) {
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
  for (std::uint32_t done = 0; done < block_size;) {
    DmaPiece piece;
    if (!next_dma_piece(block_size - done, piece)) return false;
    if (!still_running()) return false;
    if (!memory_access(command, piece.address, block_.data() + done, piece.length)) {
      dma_access_refused(piece.address);
      return false;
    }
    if (!still_running()) return false;
    done += piece.length;
    if (dma_mode_ == DmaMode::sdma) {
      if (!version4_mode())
        set32(kSdmaAddress, static_cast<std::uint32_t>(sdma_->address()));
      else if (dma_addressing_64_)
        set64(kAdmaAddress, sdma_->address());
      else
        set32(kAdmaAddress, static_cast<std::uint32_t>(sdma_->address()));
      // At a buffer boundary with data still to move: a DMA interrupt, and a pause until the
      // driver writes the address to go on from.
      if (sdma_->at_boundary() && (done < block_size || !last)) {
        sdma_paused_ = true;
        raise(kIntDma);
        if (!wait_for(sdma_resumed_, sdma_paused_)) return false;
      }
    } else if (piece.interrupt) {
      raise(kIntDma);
    }
  }
  return true;
}

bool Sdhci::next_dma_piece(std::uint32_t max_bytes, DmaPiece& piece) {
  if (dma_mode_ == DmaMode::sdma) {
    const SdmaWalker::Step step = sdma_->next(max_bytes);
    piece = {step.address, step.length, false};
    return true;
  }
  const Adma2Walker::Step step = adma_->next(max_bytes);
  if (step.error == Adma2Error::none) {
    piece = {step.address, step.length, step.interrupt};
    return true;
  }
  if (!still_running()) return false;
  SC_REPORT_INFO(kMessageType, fmt::format("{}: ADMA error: {} (descriptor at {:#x})", name(),
                                           adma2_error_name(step.error), adma_->descriptor_address())
                                   .c_str());
  r_[kAdmaErrorStatus] = step.error == Adma2Error::length_mismatch
                             ? static_cast<std::uint8_t>(kAdmaStateTransfer | kAdmaLengthMismatch)
                             : kAdmaStateFetch;
  set_adma_address(adma_->descriptor_address());
  raise_error(kErrAdma);
  return false;
}

// A data access the memory refused: a system bus error for SDMA (a vendor bit; the specification
// has none), an ADMA error in the transfer state for ADMA2.
void Sdhci::dma_access_refused(std::uint64_t address) {
  if (dma_mode_ == DmaMode::sdma) {
    SC_REPORT_INFO(kMessageType,
                   fmt::format("{}: SDMA access at {:#x} refused by the memory", name(), address).c_str());
    raise_error(kErrSystemBus);
    return;
  }
  SC_REPORT_INFO(kMessageType,
                 fmt::format("{}: ADMA data access at {:#x} refused by the memory", name(), address).c_str());
  r_[kAdmaErrorStatus] = kAdmaStateTransfer;
  set_adma_address(adma_->descriptor_address());
  raise_error(kErrAdma);
}

void Sdhci::set_adma_address(std::uint64_t address) {
  if (dma_addressing_64_)
    set64(kAdmaAddress, address);
  else
    set32(kAdmaAddress, static_cast<std::uint32_t>(address));
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
