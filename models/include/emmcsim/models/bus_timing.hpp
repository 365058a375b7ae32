// BusTiming — how long each phase takes on the eMMC bus, from the clock cycles the phase takes
// on real hardware (spec/emmc.md "Bus timing"; JESD84-B51 §6.15, §10.8) for the mode the card is
// in and the clock the host drives. Nothing toggles: a phase's time is its cycle count divided
// by the clock, so the same inputs always give the same picoseconds.
//
//   BusMode mode = bus_mode_of(card.ext_csd(), identifying);   // HS_TIMING, BUS_WIDTH
//   BusTiming timing(mode, 52'000'000);
//   timing.picoseconds(timing.command_cycles(mmc::cmd::kSendStatus, mmc::ResponseType::r1));
//
// Command and response tokens always travel on the CMD line at single data rate (in HS400 too);
// data blocks use the data bus width and, in DDR52 and HS400, both clock edges.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "emmcsim/mmc/command.hpp"
#include "emmcsim/mmc/protocol.hpp"
#include "emmcsim/mmc/registers.hpp"

namespace emmcsim::models {

// Bus speed modes (HS_TIMING[185] and BUS_WIDTH[183] together; identification while the card
// has no RCA yet).
enum class BusSpeed : std::uint8_t {
  identification,  // open drain, up to 400 kHz
  legacy,          // backward-compatible timing, up to 26 MHz
  high_speed,      // up to 52 MHz
  ddr52,           // high speed with a DDR bus width, up to 52 MHz
  hs200,           // up to 200 MHz, SDR
  hs400,           // up to 200 MHz, 8-bit DDR data, SDR command line
};

const char* bus_speed_name(BusSpeed speed);

struct BusMode {
  BusSpeed speed = BusSpeed::identification;
  unsigned data_width = 1;  // 1, 4 or 8 data lines
  bool ddr = false;         // data on both clock edges (DDR52, HS400)

  // The highest clock JESD84-B51 allows in this mode.
  std::uint64_t max_clock_hz() const;
  // "HS400 8-bit DDR", "high speed 4-bit".
  std::string describe() const;

  friend bool operator==(const BusMode& a, const BusMode& b) {
    return a.speed == b.speed && a.data_width == b.data_width && a.ddr == b.ddr;
  }
  friend bool operator!=(const BusMode& a, const BusMode& b) { return !(a == b); }
};

// The mode a card's EXT_CSD selects. `identifying`: the card is in idle, ready or ident (open
// drain, 400 kHz), whatever EXT_CSD says. BUS_WIDTH values outside JEDEC's (0, 1, 2, 5, 6) read
// as 1-bit, which a card never accepts anyway.
BusMode bus_mode_of(const mmc::ExtCsd& ext_csd, bool identifying);

class BusTiming {
 public:
  // Cycle counts of the phases (JESD84-B51 §10.8, spec/emmc.md).
  static constexpr std::uint32_t kCommandCycles = 48;        // command token
  static constexpr std::uint32_t kShortResponseCycles = 48;  // R1, R1b, R3
  static constexpr std::uint32_t kLongResponseCycles = 136;  // R2
  // N_CR: command end → response, 2..64 cycles; the model's card answers at the earliest, and a
  // host that gets no response gives up after the latest.
  static constexpr std::uint32_t kNcrCycles = 2;
  static constexpr std::uint32_t kNcrMaxCycles = 64;
  // N_ID: command end → response of the identification commands CMD1 and CMD2 (bcr, open
  // drain), exactly 5 cycles.
  static constexpr std::uint32_t kNidCycles = 5;
  static constexpr std::uint32_t kNrcCycles = 8;        // N_RC: response → next command
  static constexpr std::uint32_t kNccCycles = 8;        // N_CC: a command → the next, no response between
  static constexpr std::uint32_t kNwrCycles = 2;        // response / CRC status → write data
  static constexpr std::uint32_t kNacMinCycles = 2;     // read access when the data is ready
  static constexpr std::uint32_t kNcrcCycles = 2;       // end of write data → CRC status
  static constexpr std::uint32_t kCrcStatusCycles = 5;  // start bit, 3 status bits, end bit

  // Throws std::invalid_argument for a zero clock or a data width other than 1, 4 or 8.
  BusTiming(BusMode mode, std::uint64_t clock_hz);

  const BusMode& mode() const { return mode_; }
  std::uint64_t clock_hz() const { return clock_hz_; }
  bool over_clocked() const { return clock_hz_ > mode_.max_clock_hz(); }

  // A command and its response up to the earliest next command: 48 + N_CR + 48 or 136 + N_RC.
  // Without a response (ResponseType::none) the host waits N_CR max: 48 + 64 + N_CC.
  std::uint64_t command_cycles(mmc::ResponseType response) const;
  // CMD`index`, answered with `response` (none: not answered), up to the earliest next command,
  // by what the command table says the host expects:
  //   - CMD1 and CMD2 (bcr) are answered N_ID after the command: 48 + 5 + 48 or 136 + N_RC;
  //   - a command JEDEC defines without a response (CMD0, CMD4, CMD15) costs the command and
  //     N_CC, as the host waits for nothing: 48 + 8;
  //   - any other command, answered or not, costs command_cycles(response) — an unanswered one
  //     (illegal, another card's RCA, lost) N_CR max, which the host waits before it gives up.
  std::uint64_t command_cycles(std::uint8_t index, mmc::ResponseType response) const;
  // One data block on the data lines: start bit, 8·bytes/(width·edges) data cycles (rounded up),
  // 16 CRC cycles, end bit — 530 at 8-bit SDR, 274 at 8-bit DDR, 4114 at 1 bit for 512 bytes.
  std::uint64_t data_block_cycles(std::size_t bytes) const;
  // One written block from the end of the previous phase to the end of its CRC status token:
  // N_WR + data block + N_CRC + CRC status.
  std::uint64_t write_block_cycles(std::size_t bytes) const;

  // `cycles` at this clock, rounded up to a whole picosecond.
  std::uint64_t picoseconds(std::uint64_t cycles) const;

 private:
  BusMode mode_;
  std::uint64_t clock_hz_;
};

}  // namespace emmcsim::models
