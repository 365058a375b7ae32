// FaultPlan — faults EmmcDevice injects on the eMMC bus, so that a driver's error paths can be
// exercised on purpose and the same way on every run. Each fault names a command index and which
// of its occurrences it hits (counted from 1 since the plan was set; 0 hits every one):
//
//   command_timeout  the command is lost on the bus: the card never sees it and the host waits
//                    for a response that does not come (N_CR max).
//   data_crc         block `block` (from 0) of the data transfer that command opens arrives with
//                    a bad CRC: a read hands the host that block flagged as corrupt and stops
//                    there; a write's block is refused with a negative CRC status and never
//                    reaches the card (the card waits for CMD12, which drops an unfinished RPMB
//                    burst: nothing is written).
//   extended_busy    the card holds DAT0 busy `extra` longer after that command (its R1b busy, or
//                    the programming at the end of the write transfer it opened) — past what the
//                    EXT_CSD promises, if the plan says so.
//
// Stored as JSON, with durations as in timing profiles:
//   { "faults": [
//       { "kind": "data_crc", "command": 18, "occurrence": 1, "block": 2 },
//       { "kind": "command_timeout", "command": 13, "occurrence": 5 },
//       { "kind": "extended_busy", "command": 25, "occurrence": 0, "extra": "5ms" } ] }
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "emmcsim/models/timing_profile.hpp"

namespace emmcsim::models {

// A bad plan: what() names the fault and field, e.g. "fault plan: faults[1].kind: ...".
class FaultPlanError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

enum class FaultKind : std::uint8_t { command_timeout, data_crc, extended_busy };

const char* fault_kind_name(FaultKind kind);

struct Fault {
  FaultKind kind = FaultKind::command_timeout;
  std::uint8_t command = 0;      // CMD0..CMD63
  std::uint32_t occurrence = 1;  // the nth time that command arrives after the plan was set; 0: every time
  std::uint32_t block = 0;       // data_crc: the block of the transfer, from 0
  Picoseconds extra = 0;         // extended_busy: 1 ps .. 1 hour

  friend bool operator==(const Fault& a, const Fault& b) {
    return a.kind == b.kind && a.command == b.command && a.occurrence == b.occurrence && a.block == b.block &&
           a.extra == b.extra;
  }
};

struct FaultPlan {
  static constexpr std::size_t kMaxFaults = 256;
  std::vector<Fault> faults;
  bool empty() const { return faults.empty(); }
  friend bool operator==(const FaultPlan& a, const FaultPlan& b) { return a.faults == b.faults; }
  friend bool operator!=(const FaultPlan& a, const FaultPlan& b) { return !(a == b); }
};

// Throws FaultPlanError for anything but a plan as above: unknown keys, a field of
// another kind, a command above 63, a missing extra, more than kMaxFaults faults.
FaultPlan parse_fault_plan(const std::string& json_text);
std::string to_json(const FaultPlan& plan);
// "data_crc on block 2 of CMD18 #1", "extended_busy of 5ms after every CMD25".
std::string describe_fault(const Fault& fault);

}  // namespace emmcsim::models
