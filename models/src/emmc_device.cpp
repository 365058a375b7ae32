// EmmcDevice (see emmc_device.hpp).
#include "emmcsim/models/emmc_device.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "emmcsim/mmc/command_table.hpp"
#include "emmcsim/mmc/protocol.hpp"
#include "emmcsim/models/simulated_time.hpp"

namespace emmcsim::models {
namespace {

using sc_core::sc_time;

void report(const std::string& what) { SC_REPORT_WARNING(EmmcDevice::kMessageType, what.c_str()); }

}  // namespace

EmmcDevice::EmmcDevice(sc_core::sc_module_name name, const mmc::DeviceConfig& config, mmc::CardBackend backend,
                       const TimingProfile& profile)
    : sc_module(name), bus("bus"), card_(config, backend, mmc::CardOptions{false}), profile_(profile) {
  validate(profile_, config);
  if (!time_resolution_supported()) {
    SC_REPORT_ERROR(kMessageType, "the simulation's time resolution must be 1 ps or finer (the SystemC default)");
  }
  bus.register_b_transport(this, &EmmcDevice::b_transport);
}

std::optional<sc_time> EmmcDevice::busy_until() const {
  if (!card_.busy()) return std::nullopt;
  return from_ps(busy_until_ps_);
}

BusMode EmmcDevice::bus_mode() const {
  if (mode_while_busy_ && card_.busy()) return *mode_while_busy_;
  return bus_mode_of(card_.ext_csd(), mmc::in_identification_mode(card_.state()));
}

bool EmmcDevice::accept(tlm::tlm_generic_payload& payload, const EmmcBusExtension* ext) {
  auto refuse = [&](tlm::tlm_response_status status, const std::string& why) {
    payload.set_response_status(status);
    report(fmt::format("{}: transaction refused: {}", name(), why));
    return false;
  };
  if (ext == nullptr)
    return refuse(tlm::TLM_GENERIC_ERROR_RESPONSE, "no EmmcBusExtension (not an eMMC bus transaction)");
  if (ext->operation != EmmcBusOperation::power_cycle && ext->clock_hz == 0)
    return refuse(tlm::TLM_GENERIC_ERROR_RESPONSE,
                  fmt::format("{} with a 0 Hz bus clock", bus_operation_name(ext->operation)));
  switch (ext->operation) {
    case EmmcBusOperation::command:
      if (ext->command.index > 63)
        return refuse(tlm::TLM_COMMAND_ERROR_RESPONSE, fmt::format("command index {} (0..63)", ext->command.index));
      return true;
    case EmmcBusOperation::read_data:
    case EmmcBusOperation::write_data: {
      const bool read = ext->operation == EmmcBusOperation::read_data;
      if (payload.get_command() != (read ? tlm::TLM_READ_COMMAND : tlm::TLM_WRITE_COMMAND))
        return refuse(tlm::TLM_COMMAND_ERROR_RESPONSE,
                      fmt::format("{} with a generic-payload command that is not {}",
                                  bus_operation_name(ext->operation), read ? "TLM_READ_COMMAND" : "TLM_WRITE_COMMAND"));
      const unsigned block = payload.get_streaming_width();
      const unsigned length = payload.get_data_length();
      if (payload.get_data_ptr() == nullptr || block == 0 || length == 0 || length % block != 0)
        return refuse(tlm::TLM_BURST_ERROR_RESPONSE,
                      fmt::format("{} of {} bytes in blocks of {} (data_length must be a non-zero multiple of "
                                  "streaming_width, with a data pointer)",
                                  bus_operation_name(ext->operation), length, block));
      if (payload.get_byte_enable_ptr() != nullptr)
        return refuse(tlm::TLM_BYTE_ENABLE_ERROR_RESPONSE, "byte enables (the eMMC bus moves whole blocks)");
      return true;
    }
    case EmmcBusOperation::wait_while_busy:
    case EmmcBusOperation::power_cycle: return true;
  }
  return refuse(tlm::TLM_GENERIC_ERROR_RESPONSE, "unknown operation");
}

void EmmcDevice::check_clock(const BusTiming& timing) {
  if (!timing.over_clocked()) return;
  const auto key = std::make_pair(timing.mode(), timing.clock_hz());
  if (warned_clock_ == key) return;
  warned_clock_ = key;
  report(fmt::format("{}: bus clock {} Hz is above the {} Hz that {} allows; timing follows the clock given", name(),
                     timing.clock_hz(), timing.mode().max_clock_hz(), timing.mode().describe()));
}

void EmmcDevice::settle_busy(Picoseconds now) {
  if (card_.busy() && now >= busy_until_ps_) card_.finish_busy();
}

void EmmcDevice::start_busy(Picoseconds at, Picoseconds duration) {
  duration += extra_busy_;
  extra_busy_ = 0;
  busy_until_ps_ = at + duration;
  if (duration == 0) card_.finish_busy();
}

void EmmcDevice::b_transport(tlm::tlm_generic_payload& payload, sc_time& delay) {
  auto* ext = payload.get_extension<EmmcBusExtension>();
  if (!accept(payload, ext)) return;
  const Picoseconds start = to_ps(sc_core::sc_time_stamp() + delay);

  BusPhase phase;
  phase.operation = ext->operation;
  phase.start_ps = start;
  phase.clock_hz = ext->clock_hz;
  // A busy that has run out ends first: the mode may change with it.
  if (ext->operation != EmmcBusOperation::power_cycle) settle_busy(start);
  phase.mode = bus_mode();
  Picoseconds duration = 0;

  if (ext->operation == EmmcBusOperation::power_cycle) {
    card_.power_cycle();
    transfer_.reset();
    read_access_work_.reset();
    mode_while_busy_.reset();
    busy_until_ps_ = 0;
  } else {
    const BusTiming timing(phase.mode, ext->clock_hz);
    check_clock(timing);
    switch (ext->operation) {
      case EmmcBusOperation::command: duration = serve_command(*ext, timing, start, phase); break;
      case EmmcBusOperation::read_data: duration = serve_read(payload, *ext, timing, phase); break;
      case EmmcBusOperation::write_data: duration = serve_write(payload, *ext, timing, start, phase); break;
      case EmmcBusOperation::wait_while_busy:
        if (card_.busy()) {
          duration = busy_until_ps_ > start ? busy_until_ps_ - start : 0;
          card_.finish_busy();
        }
        break;
      case EmmcBusOperation::power_cycle: break;
    }
  }
  ext->busy_after = card_.busy();
  phase.end_ps = start + duration;
  phase.busy = card_.busy();
  phase.busy_until_ps = phase.busy ? busy_until_ps_ : 0;
  delay += from_ps(duration);
  payload.set_response_status(tlm::TLM_OK_RESPONSE);
  for (const auto& observer : phase_observers_) observer(phase);
}

void EmmcDevice::on_phase(std::function<void(const BusPhase&)> observer) {
  if (observer) phase_observers_.push_back(std::move(observer));
}

void EmmcDevice::set_fault_plan(FaultPlan plan) {
  faults_ = std::move(plan);
  command_arrivals_.fill(0);
  crc_block_.reset();
  extra_busy_ = 0;
}

const Fault* EmmcDevice::matching_fault(FaultKind kind, std::uint8_t index, std::uint32_t arrival) const {
  for (const Fault& f : faults_.faults)
    if (f.kind == kind && f.command == index && (f.occurrence == 0 || f.occurrence == arrival)) return &f;
  return nullptr;
}

void EmmcDevice::injected(BusPhase& phase, const std::string& description) {
  ++faults_injected_;
  phase.fault = description;
  SC_REPORT_INFO(kMessageType, fmt::format("{}: fault injected: {}", name(), description).c_str());
}

Picoseconds EmmcDevice::serve_command(EmmcBusExtension& ext, const BusTiming& timing, Picoseconds start,
                                      BusPhase& phase) {
  const mmc::Command command = ext.command;
  const bool had_transfer = transfer_.has_value();
  std::uint32_t& arrivals = command_arrivals_[command.index & 63];
  if (arrivals != UINT32_MAX) ++arrivals;
  // Extra busy not used by the command it was meant for ends with it (CMD12 still ends its write).
  if (!(command.index == mmc::cmd::kStopTransmission && had_transfer)) extra_busy_ = 0;
  if (const Fault* f = matching_fault(FaultKind::command_timeout, command.index, arrivals)) {
    ext.command_outcome = mmc::CommandOutcome{};  // lost on the bus: the card never sees it
    phase.command = command;
    phase.outcome = ext.command_outcome;
    injected(phase, describe_fault(*f));
    return timing.picoseconds(timing.command_cycles(command.index, mmc::ResponseType::none));
  }
  if (const Fault* f = matching_fault(FaultKind::extended_busy, command.index, arrivals)) {
    extra_busy_ = f->extra;
    injected(phase, describe_fault(*f));
  }
  ext.command_outcome = card_.execute(command);
  const mmc::CommandOutcome& o = ext.command_outcome;
  phase.command = command;
  phase.outcome = o;
  const Picoseconds duration = timing.picoseconds(timing.command_cycles(command.index, o.response.type));

  if (o.data.direction != mmc::DataDirection::none) {
    transfer_.reset();
    read_access_work_.reset();
    data_blocks_done_ = 0;
    crc_block_.reset();
    if (const Fault* f = matching_fault(FaultKind::data_crc, command.index, arrivals)) {
      crc_block_ = f->block;
      crc_fault_ = describe_fault(*f);
    }
    const mmc::CommandSpec* spec = mmc::find_command(command.index);
    if (spec != nullptr && spec->has(mmc::kSectorData) && card_.current_partition() != mmc::Partition::rpmb) {
      SectorTransfer t;
      t.write = o.data.direction == mmc::DataDirection::to_card;
      t.first_sector = card_.config().sector_addressing() ? command.arg : command.arg / mmc::kSectorSize;
      transfer_ = t;
    } else if (o.data.direction == mmc::DataDirection::to_host && !o.busy) {
      // What the card did to prepare the data (RPMB responses: data read, MACs computed) delays
      // the first block.
      read_access_work_ = o.work;
    }
  }
  // JEDEC applies what a CMD6 switched (HS_TIMING, BUS_WIDTH) once the switch has completed:
  // while the command's busy lasts, the bus stays in the mode the command arrived in.
  mode_while_busy_.reset();
  if (o.busy) {
    mode_while_busy_ = phase.mode;
    Picoseconds busy = profile_.work_time(o.work);
    // CMD12 ends an open-ended write: its sectors are programmed now.
    if (had_transfer && transfer_ && transfer_->write) busy += program_time_of_transfer();
    start_busy(start + duration, busy);
  }
  if (!card_.busy() && card_.state() != mmc::CardState::data && card_.state() != mmc::CardState::rcv) {
    transfer_.reset();
    read_access_work_.reset();
  }
  return duration;
}

Picoseconds EmmcDevice::serve_read(tlm::tlm_generic_payload& payload, EmmcBusExtension& ext, const BusTiming& timing,
                                   BusPhase& phase) {
  const std::uint32_t block = payload.get_streaming_width();
  std::uint32_t count = payload.get_data_length() / block;
  // data_crc: the bad block is the last one the host takes.
  const bool crc = crc_block_ && *crc_block_ >= data_blocks_done_ && *crc_block_ - data_blocks_done_ < count;
  if (crc) count = *crc_block_ - data_blocks_done_ + 1;
  mmc::BlockOutcome b = card_.read_blocks(payload.get_data_ptr(), block, count);
  data_blocks_done_ += b.blocks;
  if (crc && b.blocks == count) {
    payload.get_data_ptr()[std::size_t{count - 1} * block] ^= 0xFF;  // what a bad CRC guards against
    b.ok = false;
    ext.data_crc_error = true;
    crc_block_.reset();
    injected(phase, crc_fault_);
  }
  ext.data_outcome = b;
  phase.block_size = block;
  phase.blocks = b.blocks;

  const std::uint64_t nac_min = timing.picoseconds(BusTiming::kNacMinCycles);
  Picoseconds access = 0;
  if (transfer_ && !transfer_->write) {
    // page_read for each block that opens a page (or starts the transfer), N_AC min otherwise.
    const std::uint64_t first = transfer_->first_sector + transfer_->sectors_done;
    std::uint64_t pages = profile_.pages_touched(first, b.blocks);
    if (transfer_->sectors_done > 0 && first % profile_.sectors_per_page() != 0 && pages > 0) --pages;
    access = pages * profile_.page_read + (b.blocks - pages) * nac_min;
    transfer_->sectors_done += b.blocks;
  } else {
    // Registers, tuning blocks, RPMB responses: N_AC min per block, plus the work that prepared
    // them before the first.
    mmc::WorkReport work = b.work;
    if (read_access_work_ && b.blocks > 0) {
      work += *read_access_work_;
      read_access_work_.reset();
    }
    access = std::uint64_t{b.blocks} * nac_min + profile_.work_time(work);
  }
  if (b.transfer_complete) transfer_.reset();
  return access + std::uint64_t{b.blocks} * timing.picoseconds(timing.data_block_cycles(block));
}

Picoseconds EmmcDevice::serve_write(tlm::tlm_generic_payload& payload, EmmcBusExtension& ext, const BusTiming& timing,
                                    Picoseconds start, BusPhase& phase) {
  const std::uint32_t block = payload.get_streaming_width();
  const std::uint32_t count = payload.get_data_length() / block;
  // data_crc: the blocks before the bad one reach the card; the bad one gets a negative CRC status.
  const bool crc = crc_block_ && *crc_block_ >= data_blocks_done_ && *crc_block_ - data_blocks_done_ < count;
  const std::uint32_t delivered = crc ? *crc_block_ - data_blocks_done_ : count;
  mmc::BlockOutcome b;
  b.ok = true;
  if (delivered > 0) b = card_.write_blocks(payload.get_data_ptr(), block, delivered);
  data_blocks_done_ += b.blocks;
  if (crc && b.blocks == delivered) {
    b.ok = false;
    ext.data_crc_error = true;
    crc_block_.reset();
    injected(phase, crc_fault_);
  }
  ext.data_outcome = b;
  phase.block_size = block;
  phase.blocks = b.blocks;
  // The host clocks out every block up to the one the card answered "write error" (or did not
  // answer at all).
  const std::uint32_t sent = b.blocks < count ? b.blocks + 1 : b.blocks;
  const Picoseconds duration = std::uint64_t{sent} * timing.picoseconds(timing.write_block_cycles(block));
  if (transfer_ && transfer_->write) {
    transfer_->sectors_done += b.blocks;
    transfer_->work += b.work;
    if (b.busy) start_busy(start + duration, program_time_of_transfer());
  } else if (b.busy) {
    start_busy(start + duration, profile_.work_time(b.work));  // RPMB requests, CMD42, …
  }
  if (b.transfer_complete) transfer_.reset();
  return duration;
}

Picoseconds EmmcDevice::program_time_of_transfer() {
  SectorTransfer& t = *transfer_;
  mmc::WorkReport placed = t.work;
  // Programmed sectors are priced where they fall; the rest of the work as reported.
  const std::uint64_t programmed = placed.sectors_programmed;
  placed.sectors_programmed = 0;
  const Picoseconds busy =
      profile_.work_time(placed) + profile_.pages_touched(t.first_sector, programmed) * profile_.page_program;
  transfer_.reset();
  return busy;
}

}  // namespace emmcsim::models
