// Sdhci — an SD Host Controller (SD Host Controller Simplified Specification v3.00, and the parts
// of v4.00–4.20 Linux uses; register offsets and bits in sdhci_registers.hpp and spec/sdhci.md)
// in front of an eMMC device: the controller Linux's drivers/mmc/host/sdhci.c, U-Boot and SoC
// firmware program. SdhciCapabilities sets the version it reports (3.00 by default).
//
// Ports
//   regs   tlm_utils::simple_target_socket — the 256-byte register map. Blocking transport;
//          accesses of 1, 2, 4 or 8 bytes inside it, aligned to their width; byte enables
//          refused. Register accesses take no simulated time.
//   dma    tlm_utils::simple_initiator_socket — system memory for SDMA and ADMA2 (8-byte
//          descriptors; with addressing_64, 12-byte ones and, in version 4 mode, 16-byte ones),
//          generic-payload reads and writes; the delay the memory annotates is waited out before
//          the next bus phase (no FIFO overlaps memory and card).
//   card   EmmcBusInitiatorSocket — the eMMC bus to an EmmcDevice (emmc_bus.hpp).
//   irq    sc_out<bool> — level: high while a status bit is set whose signal enable is set
//          (driven by one method process, a delta cycle after the change).
//
// Registers
//   One table, Sdhci::kRegisters in sdhci.cpp (register_map() for observers), says for every
//   register its width, access (rw, ro, w1c, wo, reserved, the buffer data port), the bits a
//   write reaches, its reset value or the state it is computed from on read, and the action a
//   write runs. Byte-granular: a 32-bit write at 0x2C writes clock control, timeout control and
//   software reset; any write covering 0x0F issues the command.
//
// Behaviour
//   The command sequencer, the controller's SC_THREAD, runs each issued command on the card with
//   the SD clock the clock control register gives (base clock / 2N, 10-bit divided clock mode):
//   Auto CMD23 with Argument 2 first when the transfer mode asks for it, the command, its data
//   (PIO through the buffer data port, SDMA with buffer-boundary interrupts (SdmaWalker), or
//   ADMA2 (Adma2Walker)), Auto CMD12, and the card's busy. Status bits are raised at the
//   simulated instant the bus phase ends:
//     command complete  after the command's response
//     transfer complete after the last block (writes: once the card's busy has ended), or after
//                       the busy of an R1b command
//     buffer read/write ready, DMA interrupt, and the errors below.
//   Errors as the specification names them: command timeout (no response, or no SD clock or
//   bus power), data timeout (the card sent no data or stopped early, or a block was due with no
//   SD clock or bus power; raised after the data timeout the timeout control register sets,
//   TMCLK × 2^(13+n)), data CRC (a read block's CRC was bad, or the card's CRC status rejected a
//   written block — FaultPlan's data_crc), Auto CMD (with the Auto CMD error status), ADMA (with
//   the ADMA error status and the failing descriptor's address in the ADMA system address
//   register), and a vendor bit (12) for an SDMA access the memory refused. Tuning: with execute
//   tuning set in host control 2, CMD21's block raises buffer read ready, clears execute tuning
//   and sets the sampling clock select.
//   Whatever the driver writes, no exception leaves the command sequencer: the card is reached
//   only through card_command/card_block/card_wait_busy/card_power_cycle, which turn a phase the
//   card cannot see (clock or power off) or a transaction the device refuses into the status
//   above (docs/models.md, "Where a refused transaction becomes status").
//   Turning bus power on (power control bit 0, from off) power-cycles the card. Software reset
//   (all, CMD line, DAT line) takes effect at once and cancels what it covers.
//   Version 4 (from 4.00, when host control 2 enables it): SDMA's address is the ADMA/SDMA
//   address register (0x58, 64 bits with 64-bit addressing) and 0x00 only Argument 2; 64-bit
//   addressing; from 4.10, Auto CMD auto select by host control 2's CMD23 enable. 1.8 V
//   signalling enable stays set when the controller has a UHS mode; the UHS mode select is
//   stored (Linux's HS200, HS400 and GL9763E values alike). The preset values describe the base
//   clock's dividers for each speed.
//
// Reports (sc_report_handler, message type "emmcsim/Sdhci"): SC_WARNING for what a driver should
// not do — a command while the CMD (or, with data, DAT) line is inhibited, the buffer data port
// used with no buffer ready, an access outside the map or of a width the map does not have, a
// command with the SD clock off — and SC_INFO for DMA and ADMA errors.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <systemc>
#include <tlm>
#include <tlm_utils/simple_initiator_socket.h>
#include <tlm_utils/simple_target_socket.h>
#include <vector>

#include "emmcsim/models/adma2.hpp"
#include "emmcsim/models/emmc_bus.hpp"
#include "emmcsim/models/emmc_bus_host.hpp"
#include "emmcsim/models/sdma.hpp"
#include "emmcsim/models/sdhci_registers.hpp"

namespace emmcsim::models {

// The specification version the host controller version register reports (bits 7:0).
enum class SdhciVersion : std::uint8_t { v3_00 = 2, v4_00 = 3, v4_10 = 4, v4_20 = 5 };

// What the controller says it can do (the capabilities and version registers).
struct SdhciCapabilities {
  std::uint32_t base_clock_mhz = 200;      // 1..255
  std::uint32_t timeout_clock_khz = 1000;  // TMCLK; written in MHz when a whole number of MHz
  bool eight_bit = true;
  bool adma2 = true;
  bool sdma = true;
  bool high_speed = true;
  bool sdr104 = true;  // HS200; a UHS mode (this or DDR50) is what makes 1.8 V signalling possible
  bool ddr50 = true;   // DDR52
  // 64-bit system addresses: ADMA2 with 12-byte descriptors (DMA select 11b) outside version 4
  // mode; in version 4 mode with 64-bit addressing (host control 2), SDMA and ADMA2 with 16-byte
  // descriptors. Capabilities bit 28, and bit 27 from version 4.10.
  bool addressing_64 = false;
  SdhciVersion version = SdhciVersion::v3_00;
  std::uint8_t vendor_version = 0;  // host controller version bits 15:8
};

class Sdhci : public sc_core::sc_module {
 public:
  tlm_utils::simple_target_socket<Sdhci> regs;
  tlm_utils::simple_initiator_socket<Sdhci> dma;
  EmmcBusInitiatorSocket<Sdhci> card;
  sc_core::sc_out<bool> irq;

  explicit Sdhci(sc_core::sc_module_name name, const SdhciCapabilities& capabilities = {});

  const char* kind() const override { return "emmcsim::models::Sdhci"; }
  static constexpr const char* kMessageType = "emmcsim/Sdhci";

  // The SD clock the registers select now; 0 when it is off.
  std::uint64_t sd_clock_hz() const;
  // The value a register read would return, without its side effects (the buffer data port
  // reads 0), for observers.
  std::uint32_t peek32(std::uint32_t offset) const;
  std::uint16_t peek16(std::uint32_t offset) const;

  // The register map: one table (sdhci.cpp) that reads, writes and the actions after a write all
  // consult, every byte of 0x00..0xFF in exactly one entry, in offset order. Accesses are
  // byte-granular: a wider access reads or writes each byte by its register's rule, then runs
  // the actions of the registers whose trigger byte it wrote, in offset order.
  enum class RegisterAccess : std::uint8_t {
    rw,    // stored; a write changes the bits of write_mask
    ro,    // a write changes nothing
    w1c,   // a 1 written to a bit of write_mask clears it
    wo,    // reads 0; a write is stored for the register's action, which consumes it
    rsvd,  // reserved: reads 0, a write changes nothing
    port,  // the buffer data port: a read takes the next byte of the PIO buffer, a write puts one
  };
  struct Register {
    std::uint32_t offset;
    std::uint32_t width;  // bytes
    const char* name;
    RegisterAccess access;
    std::uint64_t write_mask;                  // rw, w1c, wo: the bits a write reaches (the rest are read-only)
    std::uint64_t reset;                       // the value after construction and reset all (stored registers)
    std::uint64_t (Sdhci::*computed)() const;  // set: the value is computed on every read
    void (Sdhci::*on_write)();                 // set: runs after a write covering byte `trigger`
    std::uint32_t trigger;                     // the byte that runs on_write (kAnyByte: any)
  };
  static constexpr std::uint32_t kAnyByte = ~std::uint32_t{0};
  struct RegisterMap {
    const Register* first;
    std::size_t size;
    const Register* begin() const { return first; }
    const Register* end() const { return first + size; }
  };
  static RegisterMap register_map();
  // The entry holding byte `offset` (< sdhci::kRegisterSpace).
  static const Register& register_at(std::uint32_t offset);

 private:
  enum class DmaMode : std::uint8_t { none, sdma, adma2 };

  static const Register kRegisters[];
  static const std::array<std::uint8_t, sdhci::kRegisterSpace> kRegisterOfByte;
  static std::array<std::uint8_t, sdhci::kRegisterSpace> map_bytes_to_registers();

  void b_transport(tlm::tlm_generic_payload& payload, sc_core::sc_time& delay);
  void peek_bytes(std::uint32_t first, std::uint32_t length, std::uint8_t* out) const;
  void write_byte(std::uint32_t offset, std::uint8_t value);
  // The actions of the registers a write covering [first, last] triggered, then the irq line.
  void after_write(std::uint32_t first, std::uint32_t last);

  std::uint16_t reg16(std::uint32_t offset) const;
  std::uint32_t reg32(std::uint32_t offset) const;
  std::uint64_t reg64(std::uint32_t offset) const;
  void set16(std::uint32_t offset, std::uint16_t value);
  void set32(std::uint32_t offset, std::uint32_t value);
  void set64(std::uint32_t offset, std::uint64_t value);

  // Values computed on read (the table's `computed`).
  std::uint64_t present_state() const;
  std::uint64_t normal_int_status() const;  // bit 15: any error status bit set
  std::uint64_t capabilities_value() const { return capabilities_register_; }
  std::uint64_t presets_low() const { return presets_[0]; }   // 0x60..0x67
  std::uint64_t presets_high() const { return presets_[1]; }  // 0x68..0x6F
  std::uint64_t host_version() const;
  // Actions after a write (the table's `on_write`).
  void on_sdma_address();         // 0x00: resumes an SDMA transfer paused at a buffer boundary (not v4 mode)
  void on_system_address_low();   // 0x58: the same in version 4 mode with 32-bit addressing
  void on_system_address_high();  // 0x5C: the same in version 4 mode with 64-bit addressing
  void issue_command();
  void on_power_control();
  void on_clock_control();
  void on_software_reset();
  void on_host_control2();
  void on_force_error();
  void resume_sdma(std::uint64_t address);

  // Version 4 mode and the addressing it selects.
  bool version4_mode() const;
  bool addressing_64() const;  // version 4 mode with 64-bit addressing
  unsigned version_number() const { return static_cast<unsigned>(capabilities_.version); }
  // The Auto CMD a transfer mode asks for: kTrnAutoCmd12, kTrnAutoCmd23 or 0 (auto select
  // resolved by host control 2's CMD23 enable from version 4.10).
  std::uint16_t auto_command(std::uint16_t transfer_mode) const;
  // The buffer data port (PIO).
  std::uint8_t take_buffer_byte();
  void put_buffer_byte(std::uint8_t value);

  // Interrupt status: a bit is latched only when its status enable is set.
  void raise(std::uint16_t normal);
  void raise_error(std::uint16_t error);
  bool irq_level() const;
  void update_irq();
  void drive_irq();  // the SC_METHOD that drives `irq`, one delta cycle after a change

  void cancel_running();
  void reset_all();
  void reset_cmd_line();
  void reset_data_line();

  // The SC_THREAD that runs each issued command on the card — Auto CMD23, the command, its data,
  // Auto CMD12, the busy — and the card's power cycles; and the steps of a command on it.
  void command_sequencer();
  void run_command();
  void end_command(bool release_data_line);
  // The card side (the only callers of bus_): each returns how the phase ended on the lines and
  // never throws (see the .cpp).
  enum class BlockResult : std::uint8_t { moved, no_answer, crc_error };
  bool card_reachable(const char* phase) const;
  template <class Transaction>
  bool on_card(const char* phase, Transaction&& transaction);
  bool card_command(const mmc::Command& command, std::uint16_t response_select, mmc::CommandOutcome& outcome);
  BlockResult card_block(bool read, std::uint32_t block_size);  // block_ to or from the card
  bool card_wait_busy();  // false: the busy could not be watched (a data timeout follows)
  void card_power_cycle();
  void block_failed(BlockResult result);
  bool run_auto_cmd(std::uint8_t index, std::uint32_t argument, bool busy);
  void transfer_data(std::uint16_t transfer_mode, const mmc::CommandOutcome& outcome, bool tuning);
  // One block between the card and system memory or the buffer; false ends the transfer.
  bool move_block(bool read, std::uint32_t block_size, bool last, bool tuning);
  // The DMA engine: one block between block_ and system memory, in the pieces the transfer's
  // walker (SdmaWalker or Adma2Walker) gives.
  struct DmaPiece {
    std::uint64_t address = 0;
    std::uint32_t length = 0;
    bool interrupt = false;  // ADMA2: the piece ends a descriptor with the interrupt attribute
  };
  bool dma_block(bool read, std::uint32_t block_size, bool last);
  bool next_dma_piece(std::uint32_t max_bytes, DmaPiece& piece);  // false: an ADMA error (raised)
  void dma_access_refused(std::uint64_t address);
  void set_adma_address(std::uint64_t address);  // the ADMA system address register, as wide as the transfer's
  bool memory_access(tlm::tlm_command command, std::uint64_t address, std::uint8_t* data, std::uint32_t length);
  void data_timeout();
  // Waits for `event` while `condition` holds; false when a software reset cancelled the command.
  bool wait_for(const sc_core::sc_event& event, const bool& condition);
  bool still_running() const { return generation_ == running_generation_; }
  void warn(const std::string& what) const;

  SdhciCapabilities capabilities_;
  std::uint64_t capabilities_register_ = 0;
  std::array<std::uint64_t, 2> presets_{};
  std::array<std::uint8_t, sdhci::kRegisterSpace> r_{};
  bool card_power_ = false;

  // Controller state.
  sc_core::sc_event command_issued_;
  sc_core::sc_event buffer_serviced_;
  sc_core::sc_event sdma_resumed_;
  sc_core::sc_event reset_;
  sc_core::sc_event irq_changed_;
  bool command_pending_ = false;
  bool power_cycle_pending_ = false;
  bool command_inhibit_ = false;
  bool data_inhibit_ = false;
  bool data_active_ = false;
  bool read_active_ = false;
  bool write_active_ = false;
  bool card_busy_ = false;           // DAT0 held low
  unsigned generation_ = 0;          // software resets (of a running command) so far
  unsigned running_generation_ = 0;  // when the running command started
  // PIO: the block in the buffer and where the driver is in it.
  std::vector<std::uint8_t> buffer_;
  std::size_t buffer_at_ = 0;
  bool buffer_read_enable_ = false;
  bool buffer_write_enable_ = false;
  // DMA of the running transfer.
  DmaMode dma_mode_ = DmaMode::none;
  bool dma_addressing_64_ = false;  // the transfer's system address register is 64 bits wide
  std::optional<SdmaWalker> sdma_;
  bool sdma_paused_ = false;
  std::optional<Adma2Walker> adma_;
  std::vector<std::uint8_t> block_;
  std::optional<EmmcBusHost> bus_;
};

}  // namespace emmcsim::models
