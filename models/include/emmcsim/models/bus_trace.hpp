// BusTraceWriter — every eMMC bus phase EmmcDevice serves (BusPhase, from on_phase), written as
// it happens to a transaction log or a waveform, with picosecond timestamps:
//
//   json_lines  one JSON object per phase: start_ps, end_ps, operation, mode, clock_hz; for a
//               command its index, arg, response type and value (R2 as 32 hex digits) and
//               whether it was illegal; for data the block size and count; busy_until_ps when
//               the card holds DAT0 busy afterwards; the internal work ("sectors_read=8"); the
//               fault injected into it, if any (FaultPlan).
//   csv         the same fields, one row per phase, under a header row.
//   vcd         a Value Change Dump for GTKWave: wires cmd (a command phase), dat (a data
//               phase) and busy (DAT0 held by the card), and the last command's index and arg.
//
//   std::ofstream file("bus.vcd");
//   BusTraceWriter trace(file, bus_trace_format_for("bus.vcd"));
//   device.on_phase([&](const BusPhase& p) { trace.write(p); });
//
// The device times each transaction when it arrives (blocking transport with annotated delay),
// so phases are written in start order, and SystemC's own sc_trace, which samples signals as
// the kernel runs, would not see the phases inside a transaction; the VCD is written from the
// phases instead, holding back value changes (a busy end) until no earlier change can follow.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <map>
#include <string>

#include "emmcsim/models/emmc_device.hpp"

namespace emmcsim::models {

enum class BusTraceFormat : std::uint8_t { json_lines, csv, vcd };

// ".vcd" → vcd, ".csv" → csv, anything else → json_lines.
BusTraceFormat bus_trace_format_for(const std::string& path);
const char* bus_trace_format_name(BusTraceFormat format);

class BusTraceWriter {
 public:
  BusTraceWriter(std::ostream& out, BusTraceFormat format);
  // Calls finish().
  ~BusTraceWriter();
  BusTraceWriter(const BusTraceWriter&) = delete;
  BusTraceWriter& operator=(const BusTraceWriter&) = delete;

  void write(const BusPhase& phase);
  // Writes what is held back (VCD) and flushes. Later writes are ignored.
  void finish();
  std::uint64_t phases_written() const { return phases_; }

 private:
  struct VcdChange {
    char id;
    std::string value;
  };
  void write_json(const BusPhase& phase);
  void write_csv(const BusPhase& phase);
  void write_vcd(const BusPhase& phase);
  void vcd_at(Picoseconds at, char id, const std::string& value);
  void vcd_flush_until(Picoseconds until);

  std::ostream& out_;
  BusTraceFormat format_;
  bool finished_ = false;
  std::uint64_t phases_ = 0;
  // VCD: changes not yet written, by time; the last value written per signal; the time written.
  std::multimap<Picoseconds, VcdChange> pending_;
  std::map<char, std::string> current_;
  Picoseconds vcd_time_ = 0;
  bool vcd_time_written_ = false;
};

}  // namespace emmcsim::models
