// SdhciDriver — the register sequences a driver like Linux's drivers/mmc/host/sdhci.c writes to
// an SD Host Controller, written out here from the specification (spec/sdhci.md), not taken from
// the model: reset, power, clock, commands, and data by PIO, SDMA or ADMA2 with Auto CMD12/CMD23.
// The one driver of the testbench: the Sdhci scenarios, sdhci_fuzz's recipes and models_bench.
//
// Like sdhci.c it reads the controller's version and capabilities at init() and, after
// enable_v4_mode(), uses version 4 mode as Linux does: 64-bit system addresses when the
// capabilities offer them (ADMA2 descriptors of 16 bytes, or 12 in version 3 with 64-bit DMA),
// SDMA's address in 0x58, Auto CMD auto select from version 4.10.
//
// It needs an initiator socket bound to the controller's registers, the controller's interrupt
// line and the system memory on the controller's DMA socket. The steps that only write registers
// (issue_command, the register accessors) may run anywhere; those that wait for an interrupt
// (wait_irq, command, transfer, init's clock, identify, bring_up_high_speed) run in an SC_THREAD.
// What a driver would not expect — a refused register access, a CMD line still inhibited, an
// internal clock that does not become stable — goes to on_unexpected (a test failure, a trap in
// a fuzz target, an exception in a benchmark); by default it is ignored.
#pragma once

#include <cstdint>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <systemc>
#include <tlm>
#include <utility>
#include <vector>

#include "emmcsim/models/adma2.hpp"
#include "emmcsim/models/sdhci_registers.hpp"
#include "system_memory.hpp"

namespace emmcsim::testing {

namespace reg = models::sdhci;

// Command register flags for each response type, as sdhci_send_command sets them.
inline constexpr std::uint16_t kRespNone = 0;
inline constexpr std::uint16_t kRespR1 = reg::kCmdResponseShort | reg::kCmdCrcCheck | reg::kCmdIndexCheck;
inline constexpr std::uint16_t kRespR1b = reg::kCmdResponseShortBusy | reg::kCmdCrcCheck | reg::kCmdIndexCheck;
inline constexpr std::uint16_t kRespR2 = reg::kCmdResponseLong | reg::kCmdCrcCheck;
inline constexpr std::uint16_t kRespR3 = reg::kCmdResponseShort;
inline constexpr std::uint32_t kRcaArg = 1u << 16;  // the RCA identify() gives the card, as an argument

// What a command left in the status registers, and when its interrupt came.
struct CommandResult {
  std::uint16_t normal = 0;
  std::uint16_t error = 0;
  std::uint32_t response = 0;
  std::uint64_t issued_ps = 0;
  std::uint64_t completed_ps = 0;  // command complete (or the error)
  std::uint64_t finished_ps = 0;   // transfer complete (or the error), when there was one
};

enum class DataMode { pio, sdma, adma2 };

// A data transfer for SdhciDriver::transfer.
struct Transfer {
  bool read = true;
  std::uint32_t block_size = 512;
  std::uint32_t blocks = 1;
  DataMode mode = DataMode::adma2;
  std::uint64_t memory = 0x10000;           // where the data is (SDMA, ADMA2), contiguous
  std::optional<std::uint32_t> auto_cmd23;  // Argument 2
  bool auto_cmd12 = false;
  std::uint8_t sdma_boundary = 7;            // 4 KiB << n
  std::vector<std::uint8_t>* pio = nullptr;  // PIO: the data (filled on reads)
};

class SdhciDriver {
 public:
  static constexpr std::uint32_t kDescriptors =
      0x1000;  // where transfer() puts its ADMA2 table (from the memory's base)
  static constexpr std::uint64_t kBaseClockHz = 200'000'000;  // the controller's default base clock

  SdhciDriver(tlm::tlm_initiator_socket<>& regs, sc_core::sc_in<bool>& irq, SystemMemory& memory)
      : regs_(regs), irq_(irq), memory_(memory) {}

  std::function<void(const std::string& what)> on_unexpected;

  // Register accesses.
  std::uint32_t read(std::uint32_t offset, unsigned width) {
    std::uint32_t value = 0;
    checked(tlm::TLM_READ_COMMAND, offset, reinterpret_cast<std::uint8_t*>(&value), width);
    return value;
  }
  std::uint8_t rd8(std::uint32_t o) { return static_cast<std::uint8_t>(read(o, 1)); }
  std::uint16_t rd16(std::uint32_t o) { return static_cast<std::uint16_t>(read(o, 2)); }
  std::uint32_t rd32(std::uint32_t o) { return read(o, 4); }
  void write(std::uint32_t offset, std::uint32_t value, unsigned width) {
    checked(tlm::TLM_WRITE_COMMAND, offset, reinterpret_cast<std::uint8_t*>(&value), width);
  }
  void wr8(std::uint32_t o, std::uint8_t v) { write(o, v, 1); }
  void wr16(std::uint32_t o, std::uint16_t v) { write(o, v, 2); }
  void wr32(std::uint32_t o, std::uint32_t v) { write(o, v, 4); }
  // A raw access of any width, byte enables included; returns the response status.
  tlm::tlm_response_status access(tlm::tlm_command command, std::uint64_t offset, std::uint8_t* data, unsigned width,
                                  std::uint8_t* byte_enables = nullptr) {
    return register_access(regs_, command, offset, data, width, byte_enables);
  }

  // Waits, on the interrupt line, until a status bit in `normal` (or any error) is set, with
  // only those signalled.
  std::uint16_t wait_irq(std::uint16_t normal) {
    wr16(reg::kNormalIntSignalEnable, normal);
    wr16(reg::kErrorIntSignalEnable, 0xFFFF);
    for (;;) {
      const std::uint16_t status = rd16(reg::kNormalIntStatus);
      if (status & (normal | reg::kIntErrorSummary)) return status;
      sc_core::wait(irq_.value_changed_event());  // the line moves a delta cycle after the status
    }
  }
  bool irq() const { return irq_.read(); }
  std::uint64_t now_ps() const { return sc_core::sc_time_stamp().value(); }

  // sdhci_reset(ALL) and __sdhci_read_caps, then power at 3.3 V, 400 kHz, every status enabled,
  // the longest timeout. Version 4 mode, once enabled, is enabled again after the reset.
  void init() {
    wr8(reg::kSoftwareReset, reg::kResetAll);
    if (v4_mode_) wr16(reg::kHostControl2, rd16(reg::kHostControl2) | reg::kCtrl2Version4Enable);
    version_ = rd16(reg::kHostVersion) & 0xFF;
    const std::uint32_t caps = rd32(reg::kCapabilities);
    dma64_ = version_ >= reg::kSpecVersion410 && v4_mode_ ? (caps & reg::kCapAddressing64V4) != 0
                                                          : (caps & reg::kCapAddressing64) != 0;
    wr16(reg::kNormalIntStatusEnable, 0x7FFF);
    wr16(reg::kErrorIntStatusEnable, 0xFFFF);
    wr8(reg::kPowerControl, reg::kPower330 | reg::kPowerOn);
    wr8(reg::kTimeoutControl, 0x0E);
    set_clock(400'000);
  }
  // sdhci_set_clock in 10-bit divided clock mode: the fastest clock not above `hz`.
  void set_clock(std::uint64_t hz) {
    std::uint16_t divider = 0;
    if (hz < kBaseClockHz) divider = static_cast<std::uint16_t>((kBaseClockHz + 2 * hz - 1) / (2 * hz));
    wr16(reg::kClockControl, 0);
    wr16(reg::kClockControl, reg::divider_bits(divider) | reg::kClockInternalEnable);
    if (!(rd16(reg::kClockControl) & reg::kClockInternalStable)) unexpected("the internal clock is not stable");
    wr16(reg::kClockControl, reg::divider_bits(divider) | reg::kClockInternalEnable | reg::kClockCardEnable);
  }
  void clear_status() {
    wr16(reg::kNormalIntStatus, 0xFFFF);
    wr16(reg::kErrorIntStatus, 0xFFFF);
  }

  // sdhci_enable_v4_mode: version 4 mode from the next init() on (and at once).
  void enable_v4_mode() {
    v4_mode_ = true;
    wr16(reg::kHostControl2, rd16(reg::kHostControl2) | reg::kCtrl2Version4Enable);
  }
  bool v4_mode() const { return v4_mode_; }
  bool dma64() const { return dma64_; }  // SDHCI_USE_64_BIT_DMA
  std::uint16_t version() const { return version_; }
  // The ADMA2 descriptor size sdhci_setup_host picks.
  models::Adma2Format descriptor_format() const {
    if (!dma64_) return models::Adma2Format::bits32;
    return v4_mode_ ? models::Adma2Format::bits64_v4 : models::Adma2Format::bits64;
  }
  std::uint64_t descriptors() const { return memory_.base + kDescriptors; }

  // sdhci_start_signal_voltage_switch to 1.8 V: true when the controller keeps 1.8 V signal
  // enable set (the regulator became stable).
  bool switch_to_1v8() {
    wr16(reg::kHostControl2, rd16(reg::kHostControl2) | reg::kCtrl2Signal180);
    return (rd16(reg::kHostControl2) & reg::kCtrl2Signal180) != 0;
  }
  // The UHS mode select field, as set_uhs_signaling writes it.
  void set_uhs_mode(std::uint16_t mode) {
    wr16(reg::kHostControl2, (rd16(reg::kHostControl2) & ~reg::kCtrl2UhsMask) | mode);
  }

  // Writes the argument, then transfer mode and command in one 32-bit write, which issues it.
  void issue_command(std::uint8_t index, std::uint32_t arg, std::uint16_t flags, std::uint16_t mode = 0) {
    wr32(reg::kArgument, arg);
    wr32(reg::kTransferMode, mode | (std::uint32_t{reg::command_word(index, flags)} << 16));
  }

  // A command without data; R1b commands wait for transfer complete too.
  CommandResult command(std::uint8_t index, std::uint32_t arg, std::uint16_t flags) {
    CommandResult r;
    if (rd32(reg::kPresentState) & reg::kCmdInhibit)
      unexpected("CMD" + std::to_string(index) + " issued while the CMD line is inhibited");
    r.issued_ps = now_ps();
    issue_command(index, arg, flags);
    r.normal = wait_irq(reg::kIntCommandComplete);
    r.completed_ps = now_ps();
    r.error = rd16(reg::kErrorIntStatus);
    r.response = rd32(reg::kResponse);
    wr16(reg::kNormalIntStatus, reg::kIntCommandComplete);
    if (r.error == 0 && (flags & reg::kCmdResponseMask) == reg::kCmdResponseShortBusy) {
      r.normal |= wait_irq(reg::kIntTransferComplete);
      r.finished_ps = now_ps();
      r.error = rd16(reg::kErrorIntStatus);
    }
    clear_status();
    return r;
  }

  // A data command: programs the block registers, DMA and transfer mode, issues it and serves
  // the transfer to its end (transfer complete or an error).
  CommandResult transfer(std::uint8_t index, std::uint32_t arg, const Transfer& t) {
    CommandResult r;
    std::uint16_t mode = t.read ? reg::kTrnRead : 0;
    if (t.blocks > 1 || t.auto_cmd23) mode |= reg::kTrnMultiBlock | reg::kTrnBlockCountEnable;
    // sdhci_auto_cmd_select: Auto CMD auto select in version 4 mode from 4.10.
    if ((t.auto_cmd23 || t.auto_cmd12) && v4_mode_ && version_ >= reg::kSpecVersion410) {
      mode |= reg::kTrnAutoCmdAutoSelect;
      std::uint16_t ctrl2 = rd16(reg::kHostControl2);
      ctrl2 = t.auto_cmd23 ? (ctrl2 | reg::kCtrl2Cmd23Enable) : (ctrl2 & ~reg::kCtrl2Cmd23Enable);
      wr16(reg::kHostControl2, ctrl2);
    } else if (t.auto_cmd23) {
      mode |= reg::kTrnAutoCmd23;
    } else if (t.auto_cmd12) {
      mode |= reg::kTrnAutoCmd12;
    }
    // sdhci_config_dma, then the table and the address.
    std::uint8_t control = static_cast<std::uint8_t>(rd8(reg::kHostControl1) & ~reg::kCtrlDmaMask);
    if (t.mode != DataMode::pio) {
      mode |= reg::kTrnDmaEnable;
      if (t.mode == DataMode::adma2) control |= reg::kCtrlAdma32;
      if (dma64_ && v4_mode_)
        wr16(reg::kHostControl2, rd16(reg::kHostControl2) | reg::kCtrl2Addressing64);
      else if (dma64_ && t.mode == DataMode::adma2)
        control |= reg::kCtrlAdma64;
    }
    if (t.mode == DataMode::sdma) {
      set_sdma_address(t.memory);
    } else if (t.mode == DataMode::adma2) {
      if (!custom_descriptors_) write_descriptors({{t.memory, t.block_size * t.blocks}});
      custom_descriptors_ = false;
      set_adma_address(descriptors());
    }
    wr8(reg::kHostControl1, control);
    if (t.auto_cmd23) wr32(reg::kSdmaAddress, *t.auto_cmd23);  // Argument 2, in version 4 mode too
    wr16(reg::kBlockSize,
         static_cast<std::uint16_t>(t.block_size | (std::uint32_t{t.sdma_boundary} << reg::kSdmaBoundaryShift)));
    wr16(reg::kBlockCount, static_cast<std::uint16_t>(t.blocks));
    r.issued_ps = now_ps();
    issue_command(index, arg, kRespR1 | reg::kCmdDataPresent, mode);
    r.normal = wait_irq(reg::kIntCommandComplete);
    r.completed_ps = now_ps();
    r.response = rd32(reg::kResponse);
    wr16(reg::kNormalIntStatus, reg::kIntCommandComplete);
    std::size_t at = 0;
    std::uint64_t next_sdma = t.memory;
    while (rd16(reg::kErrorIntStatus) == 0) {
      const std::uint16_t want =
          reg::kIntTransferComplete | reg::kIntDma | (t.read ? reg::kIntBufferReadReady : reg::kIntBufferWriteReady);
      const std::uint16_t s = wait_irq(want);
      r.normal |= s;
      if (s & reg::kIntErrorSummary) break;
      if (s & (reg::kIntBufferReadReady | reg::kIntBufferWriteReady)) {
        wr16(reg::kNormalIntStatus, s & (reg::kIntBufferReadReady | reg::kIntBufferWriteReady));
        for (std::uint32_t i = 0; i < t.block_size; i += 4, at += 4) {
          if (t.read) {
            const std::uint32_t word = rd32(reg::kBufferDataPort);
            std::memcpy(t.pio->data() + at, &word, 4);
          } else {
            std::uint32_t word = 0;
            std::memcpy(&word, t.pio->data() + at, 4);
            wr32(reg::kBufferDataPort, word);
          }
        }
      }
      if (s & reg::kIntDma) {
        wr16(reg::kNormalIntStatus, reg::kIntDma);
        ++dma_interrupts;
        if (t.mode == DataMode::sdma) {  // sdhci_data_irq: on to the next boundary
          const std::uint64_t boundary = 4096u << t.sdma_boundary;
          next_sdma = (next_sdma & ~(boundary - 1)) + boundary;
          set_sdma_address(next_sdma);
        }
      }
      if (s & reg::kIntTransferComplete) break;
    }
    r.finished_ps = now_ps();
    r.error = rd16(reg::kErrorIntStatus);
    clear_status();
    return r;
  }

  // The ADMA2 table for the next transfer: one transfer descriptor per segment, the last with
  // the end attribute.
  void write_descriptors(const std::vector<std::pair<std::uint64_t, std::uint32_t>>& segments,
                         bool interrupt_last = false) {
    for (std::size_t i = 0; i < segments.size(); ++i) {
      models::Adma2Descriptor d;
      d.valid = true;
      d.action = models::Adma2Action::transfer;
      d.address = segments[i].first;
      d.length = segments[i].second;
      d.end = i + 1 == segments.size();
      d.interrupt = d.end && interrupt_last;
      put_descriptor(i, d);
    }
  }
  void put_descriptor(std::size_t i, const models::Adma2Descriptor& d) {
    const models::Adma2Format format = descriptor_format();
    d.encode(memory_.at(descriptors() + models::Adma2Descriptor::size(format) * i), format);
    custom_descriptors_ = true;
  }
  // sdhci_set_adma_addr: the low half at 0x58, the high half at 0x5C with 64-bit DMA.
  void set_adma_address(std::uint64_t address) {
    wr32(reg::kAdmaAddress, static_cast<std::uint32_t>(address));
    if (dma64_) wr32(reg::kAdmaAddressHigh, static_cast<std::uint32_t>(address >> 32));
  }
  // sdhci_set_sdma_addr: 0x00, or the ADMA address register in version 4 mode.
  void set_sdma_address(std::uint64_t address) {
    if (v4_mode_)
      set_adma_address(address);
    else
      wr32(reg::kSdmaAddress, static_cast<std::uint32_t>(address));
  }

  // Card bring-up as Linux's mmc_attach_mmc does it, over the controller.
  void identify() {
    command(0, 0, kRespNone);
    for (int i = 0; i < 100; ++i)
      if (command(1, 0x40FF8080, kRespR3).response & (1u << 31)) break;
    command(2, 0, kRespR2);
    command(3, kRcaArg, kRespR1);
    command(7, kRcaArg, kRespR1);
  }
  // CMD6's argument writing `value` to EXT_CSD byte `index` (access: write byte).
  static std::uint32_t switch_argument(std::size_t index, std::uint8_t value) {
    return (3u << 24) | (static_cast<std::uint32_t>(index) << 16) | (std::uint32_t{value} << 8);
  }
  CommandResult switch_field(std::size_t index, std::uint8_t value) {
    return command(6, switch_argument(index, value), kRespR1b);
  }
  // 8-bit bus, high-speed timing, 50 MHz.
  void bring_up_high_speed() {
    identify();
    set_clock(25'000'000);
    switch_field(183, 2);
    wr8(reg::kHostControl1, static_cast<std::uint8_t>(rd8(reg::kHostControl1) | reg::kCtrl8BitBus));
    switch_field(185, 1);
    wr8(reg::kHostControl1, static_cast<std::uint8_t>(rd8(reg::kHostControl1) | reg::kCtrlHighSpeed));
    set_clock(50'000'000);
  }

  SystemMemory& memory() { return memory_; }
  unsigned dma_interrupts = 0;

 private:
  void checked(tlm::tlm_command command, std::uint32_t offset, std::uint8_t* data, unsigned width) {
    if (access(command, offset, data, width) != tlm::TLM_OK_RESPONSE)
      unexpected("register " + std::string(command == tlm::TLM_READ_COMMAND ? "read" : "write") + " of " +
                 std::to_string(width) + " bytes at offset " + std::to_string(offset) + " refused");
  }
  void unexpected(const std::string& what) {
    if (on_unexpected) on_unexpected(what);
  }

  tlm::tlm_initiator_socket<>& regs_;
  sc_core::sc_in<bool>& irq_;
  SystemMemory& memory_;
  bool custom_descriptors_ = false;
  bool v4_mode_ = false;
  bool dma64_ = false;
  std::uint16_t version_ = reg::kSpecVersion300;
};

}  // namespace emmcsim::testing
