// EmmcDevice — an eMMC 5.1 device on the simulated bus: the untimed core (mmc::Card) behind an
// eMMC bus target socket, with bus time from BusTiming and internal time from a TimingProfile.
// One core, two speeds: everything the card does is mmc::Card's; this module only adds time.
//
// Ports
//   bus    EmmcBusTargetSocket — commands, data blocks, busy waits, power cycles (emmc_bus.hpp)
//
// Time (deterministic: the same transactions at the same times give the same delays)
//   command     BusTiming::command_cycles(index, response) in the mode the card is in when the
//               command arrives (identification while it has no RCA; then HS_TIMING and
//               BUS_WIDTH — a CMD6's new values once its busy has ended, as JEDEC applies them).
//   read block  its access time, then BusTiming::data_block_cycles. Access: page_read when the
//               block is the transfer's first or opens a NAND page of the user data, else
//               N_AC min (2 cycles); before the first block of a register or RPMB read, the work
//               of the command that opened it (RPMB: the data read, the response MACs).
//   write block BusTiming::write_block_cycles (N_WR, data, N_CRC, CRC status token).
//   busy        after an R1b command: TimingProfile::work_time(work). After a write transfer
//               (its last block, or the CMD12 that ends it): page_program for every NAND page
//               its sectors touch (reliable writes alike), cached_sector_write per cached
//               sector, and the work time of RPMB requests. Programming is modelled after the
//               last block, not overlapped with the transfer.
//   Busy ends when simulated time reaches it: a CMD13 before then finds the card in prg without
//   READY_FOR_DATA, wait_while_busy returns then.
//
// Faults (set_fault_plan, fault_plan.hpp): a command lost on the bus, a block with a bad CRC
// (EmmcBusExtension::data_crc_error; a read stops after it, a write's block never reaches the
// card), extra busy after a command. Each injected fault is reported (SC_INFO) and named in its
// BusPhase.
//
// Reports (sc_report_handler, message type "emmcsim/EmmcDevice"): SC_WARNING for a clock above
// the mode's maximum (once per mode and clock) and for a transaction the device refuses (with an
// error response status; nothing changes); SC_INFO for each injected fault.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <systemc>
#include <vector>

#include "emmcsim/mmc/card.hpp"
#include "emmcsim/models/bus_timing.hpp"
#include "emmcsim/models/emmc_bus.hpp"
#include "emmcsim/models/fault_plan.hpp"
#include "emmcsim/models/timing_profile.hpp"

namespace emmcsim::models {

// One transaction as the device saw it, for tracing and tests.
struct BusPhase {
  EmmcBusOperation operation = EmmcBusOperation::command;
  Picoseconds start_ps = 0;  // when it reached the device (sc_time_stamp() + the annotated delay)
  Picoseconds end_ps = 0;    // when the bus was free again
  BusMode mode;
  std::uint64_t clock_hz = 0;
  mmc::Command command;           // command
  mmc::CommandOutcome outcome;    // command
  std::uint32_t block_size = 0;   // read_data / write_data
  std::uint32_t blocks = 0;       // blocks moved
  bool busy = false;              // DAT0 busy afterwards
  Picoseconds busy_until_ps = 0;  // when it ends
  std::string fault;              // the fault injected into it (describe_fault), if any
};

class EmmcDevice : public sc_core::sc_module {
 public:
  EmmcBusTargetSocket<EmmcDevice> bus;

  // The backend must outlive the device and match the configuration. Throws
  // TimingProfileError when the profile breaks what the configuration's EXT_CSD promises.
  EmmcDevice(sc_core::sc_module_name name, const mmc::DeviceConfig& config, mmc::CardBackend backend,
             const TimingProfile& profile = default_timing_profile());

  const char* kind() const override { return "emmcsim::models::EmmcDevice"; }

  // The untimed core, for observers (tests, tools). Driving it directly bypasses time.
  const mmc::Card& card() const { return card_; }
  const TimingProfile& profile() const { return profile_; }
  // The bus mode the card's state and EXT_CSD select now; during the busy of an R1b command
  // (a CMD6 switching HS_TIMING or BUS_WIDTH), still the mode the command arrived in.
  BusMode bus_mode() const;
  // When DAT0 busy ends (absolute simulated time); nullopt when the card is not busy.
  std::optional<sc_core::sc_time> busy_until() const;
  // Faults to inject from now on (fault_plan.hpp); occurrences count from this call.
  void set_fault_plan(FaultPlan plan);
  std::uint64_t faults_injected() const { return faults_injected_; }
  // Adds an observer, called with the BusPhase of every transaction the device serves from now
  // on. Observers add up — a bus trace, a test's recorder and a checker can all watch — and are
  // called in the order they were added; none is ever removed, so each must outlive the device
  // or stop touching what it captured. An empty function is ignored.
  void on_phase(std::function<void(const BusPhase&)> observer);

  static constexpr const char* kMessageType = "emmcsim/EmmcDevice";

 private:
  // The user-data transfer in progress: where it is, for pricing by NAND page.
  struct SectorTransfer {
    bool write = false;
    std::uint64_t first_sector = 0;
    std::uint64_t sectors_done = 0;
    mmc::WorkReport work;  // writes: what the blocks so far reported
  };

  void b_transport(tlm::tlm_generic_payload& payload, sc_core::sc_time& delay);
  // Checks what the device needs of a transaction; reports and returns false otherwise.
  bool accept(tlm::tlm_generic_payload& payload, const EmmcBusExtension* extension);
  Picoseconds serve_command(EmmcBusExtension& ext, const BusTiming& timing, Picoseconds start, BusPhase& phase);
  Picoseconds serve_read(tlm::tlm_generic_payload& payload, EmmcBusExtension& ext, const BusTiming& timing,
                         BusPhase& phase);
  Picoseconds serve_write(tlm::tlm_generic_payload& payload, EmmcBusExtension& ext, const BusTiming& timing,
                          Picoseconds start, BusPhase& phase);
  // The busy time of the write transfer that just ended.
  Picoseconds program_time_of_transfer();
  void start_busy(Picoseconds at, Picoseconds duration);
  void settle_busy(Picoseconds now);
  void check_clock(const BusTiming& timing);

  mmc::Card card_;
  TimingProfile profile_;
  Picoseconds busy_until_ps_ = 0;
  std::optional<SectorTransfer> transfer_;
  // The work of the command that opened a register or RPMB read, charged before its first block.
  std::optional<mmc::WorkReport> read_access_work_;
  std::optional<std::pair<BusMode, std::uint64_t>> warned_clock_;
  // The mode the last R1b command arrived in, which holds while its busy lasts.
  std::optional<BusMode> mode_while_busy_;
  std::vector<std::function<void(const BusPhase&)>> phase_observers_;

  // Fault injection.
  const Fault* matching_fault(FaultKind kind, std::uint8_t index, std::uint32_t arrival) const;
  void injected(BusPhase& phase, const std::string& description);
  FaultPlan faults_;
  std::uint64_t faults_injected_ = 0;
  std::array<std::uint32_t, 64> command_arrivals_{};
  std::uint32_t data_blocks_done_ = 0;      // blocks of the current data phase moved so far
  std::optional<std::uint32_t> crc_block_;  // data_crc: the block of the current data phase
  std::string crc_fault_;
  Picoseconds extra_busy_ = 0;  // extended_busy: added to the next busy
};

}  // namespace emmcsim::models
