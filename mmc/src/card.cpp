// mmc::Card: construction, power cycle, command dispatch through the command table, card
// status and busy, and the identification and state commands (JESD84-B51 §6.4, §6.14).
// The rest of the card, by concern: card_transfer.cpp (data phases and block transfers),
// card_switch.cpp (CMD6 and the EXT_CSD modes segment), card_protection.cpp (write protection
// and CMD42), card_erase.cpp (erase, trim, discard).
#include "emmcsim/mmc/card.hpp"

#include <fmt/format.h>

#include <stdexcept>
#include <utility>

#include "card_internal.hpp"
#include "emmcsim/mmc/protocol.hpp"

namespace emmcsim::mmc {
namespace {

namespace st = status;
namespace ec = ext_csd;

}  // namespace

Card::Card(const DeviceConfig& config, CardBackend backend, CardOptions options)
    : config_(config), backend_(backend), options_(options) {
  validate(config_);
  auto check = [](const BlockStorage* s, std::uint64_t bytes, const char* what) {
    if (bytes == 0) return;
    if (s == nullptr) throw std::invalid_argument(fmt::format("card: no storage for the {}", what));
    if (s->sectors() != bytes / kSectorSize)
      throw std::invalid_argument(fmt::format("card: the {} storage has {} sectors, the configuration {}", what,
                                              s->sectors(), bytes / kSectorSize));
  };
  check(backend_.user, config_.user_capacity, "user area");
  check(backend_.boot[0], config_.boot_partition_size, "boot partition 1");
  check(backend_.boot[1], config_.boot_partition_size, "boot partition 2");
  for (std::size_t i = 0; i < 4; ++i) {
    std::uint64_t size = i < config_.general_purpose_partitions.size() ? config_.general_purpose_partitions[i] : 0;
    check(backend_.general_purpose[i], size, "general-purpose partition");
  }
  if (backend_.rpmb == nullptr) throw std::invalid_argument("card: no RPMB store");
  if (backend_.rpmb->half_sectors() != config_.rpmb_size / 256)
    throw std::invalid_argument("card: the RPMB store's size differs from the configuration");
  if (backend_.nonvolatile == nullptr) throw std::invalid_argument("card: no non-volatile state store");

  cid_ = build_cid(config_);
  csd_ = build_csd(config_);
  ocr_ = build_ocr(config_);
  nonvolatile_ = backend_.nonvolatile->load();
  power_cycle();
}

void Card::power_cycle() {
  rpmb_engine_ = std::make_unique<rpmb::Engine>(*backend_.rpmb, rpmb::EngineConfig{config_.en_rpmb_rel_wr});
  ext_csd_ = build_ext_csd(config_);
  ext_csd_[ec::kPartitionConfig] = nonvolatile_.partition_config_boot;
  ext_csd_[ec::kBootBusConditions] = nonvolatile_.boot_bus_conditions;
  ext_csd_[ec::kBootWp] = nonvolatile_.boot_wp_permanent;
  power_on_wp_groups_.clear();
  boot_wp_status_power_on_ = 0;
  locked_ = !nonvolatile_.password.empty();
  op_cond_polls_ = 0;
  state_ = CardState::idle;
  rca_ = 0;
  pending_status_ = 0;
  block_length_ = kSectorSize;
  partition_ = Partition::user;
  block_count_.reset();
  transfer_ = Transfer{};
  erase_stage_ = EraseStage::none;
  secure_trim_marked_.clear();
}

// ---------------------------------------------------------------------------------------------
// Dispatch

CommandOutcome Card::execute(const Command& command) {
  const CommandSpec* spec = find_command(command.index);
  if (spec == nullptr || !spec->accepted_in.contains(state_)) return illegal();
  if (locked_ && !spec->has(kAllowedWhenLocked)) return illegal();
  if (partition_ == Partition::rpmb && !spec->has(kAllowedInRpmb)) return illegal();
  // A command addressed to another card is not for this one: no response, no change. CMD7's
  // handler deselects this card then.
  if (spec->address == CommandAddress::rca && !addressed_to_me(command) && command.index != cmd::kSelectDeselectCard)
    return no_response();

  // CMD23's count applies to the next command only; any command other than a status query
  // consumes it. A command outside an erase sequence cancels the sequence (ERASE_RESET).
  const auto saved_block_count = block_count_;
  const auto saved_erase_stage = erase_stage_;
  if (!spec->has(kStatusQuery) && command.index != cmd::kSetBlockCount) {
    active_block_count_ = std::exchange(block_count_, std::nullopt);
  } else {
    active_block_count_.reset();
  }
  bool erase_reset = false;
  if (erase_stage_ != EraseStage::none && !spec->has(kEraseSequence) && !spec->has(kStatusQuery)) {
    erase_stage_ = EraseStage::none;
    erase_reset = true;
  }

  CommandOutcome outcome = (this->*spec->handler)(command);
  if (outcome.illegal) {
    block_count_ = saved_block_count;
    erase_stage_ = saved_erase_stage;
    return outcome;
  }
  const bool carries_status = outcome.response.type == ResponseType::r1 || outcome.response.type == ResponseType::r1b;
  if (erase_reset && carries_status) {
    outcome.response.value |= st::kEraseReset;
  }
  return outcome;
}

std::uint32_t Card::status_word() const {
  std::uint32_t word = pending_status_;
  const auto visible = static_cast<std::uint32_t>(state_) & 0xFu;
  word |= (state_ == CardState::pre_idle || state_ == CardState::boot || state_ == CardState::inactive ? 0u : visible)
          << st::kCurrentStateShift;
  if (locked_) word |= st::kCardIsLocked;
  if (!busy() && state_ != CardState::slp) word |= st::kReadyForData;
  return word;
}

// An R1 carries the state in which the command arrived and every pending bit; the bits with
// clear condition B or C are then cleared.
CommandOutcome Card::r1(std::uint32_t extra_status, ResponseType type) {
  CommandOutcome o;
  o.response.type = type;
  o.response.value = status_word() | extra_status;
  pending_status_ &= ~st::kClearedOnRead;
  return o;
}

CommandOutcome Card::no_response() { return CommandOutcome{}; }

CommandOutcome Card::illegal() {
  pending_status_ |= st::kIllegalCommand;
  CommandOutcome o;
  o.illegal = true;
  return o;
}

void Card::start_programming() {
  state_ = CardState::prg;
  if (options_.complete_busy_immediately) finish_busy();
}

void Card::enter_busy(CommandOutcome& outcome) {
  outcome.busy = true;
  start_programming();
}

void Card::enter_busy(BlockOutcome& outcome) {
  outcome.busy = true;
  start_programming();
}

void Card::finish_busy() {
  if (!busy()) return;
  state_ = state_ == CardState::dis ? CardState::stby : CardState::tran;
}

// ---------------------------------------------------------------------------------------------
// Identification and state commands

CommandOutcome Card::go_idle_state(const Command& c) {
  if (c.arg == go_idle::kReset || c.arg == go_idle::kPreIdle) {
    // A software reset: like a power cycle for everything volatile except power-on write
    // protection and the lock, which only a real power cycle clears.
    const auto power_on_groups = std::move(power_on_wp_groups_);
    const auto boot_power_on = boot_wp_status_power_on_;
    const bool was_locked = locked_;
    const std::uint8_t boot_wp_volatile = ext_csd_[ec::kBootWp] & ~card_detail::kBootWpPermanentBits;
    power_cycle();
    power_on_wp_groups_ = power_on_groups;
    boot_wp_status_power_on_ = boot_power_on;
    ext_csd_[ec::kBootWp] |= boot_wp_volatile;
    locked_ = was_locked;
    state_ = c.arg == go_idle::kPreIdle ? CardState::pre_idle : CardState::idle;
    return no_response();
  }
  if (c.arg == go_idle::kBootInitiation && (state_ == CardState::idle || state_ == CardState::pre_idle)) {
    namespace pc = ec::partition_config;
    const std::uint8_t enabled = pc::boot_enable_of(ext_csd_[ec::kPartitionConfig]);
    Partition source = Partition::user;
    if (enabled == pc::kBootFromBoot1)
      source = Partition::boot1;
    else if (enabled == pc::kBootFromBoot2)
      source = Partition::boot2;
    else if (enabled != pc::kBootFromUser)
      return no_response();  // boot not enabled: the card stays in idle
    if (partition_sectors(source) == 0) return no_response();
    CommandOutcome o = no_response();
    open_transfer(TransferKind::boot_stream, kSectorSize, card_detail::sectors_u32(partition_sectors(source)), o)
        .partition = source;
    state_ = CardState::boot;
    return o;
  }
  return illegal();
}

CommandOutcome Card::send_op_cond(const Command& c) {
  // The whole voltage field, bits 23:7: a host offering only 2.0–2.6 V (bits 14:8, which no
  // eMMC supports) has no window in common with the device.
  const std::uint32_t host_voltages = c.arg & ocr::kVoltageField;
  const std::uint32_t card_voltages = ocr_ & ocr::kVoltageField;
  if (host_voltages != 0 && (host_voltages & card_voltages) == 0) {
    state_ = CardState::inactive;  // no common voltage window: the card gives up
    return no_response();
  }
  ++op_cond_polls_;
  const bool powered_up = op_cond_polls_ > config_.ocr_busy_polls;
  CommandOutcome o;
  o.response.type = ResponseType::r3;
  o.response.value = powered_up ? ocr_ : (ocr_ & ~ocr::kPowerUpDone);
  // An argument of 0 only asks for the OCR (Linux does this first); the card moves on once it
  // is powered up and the host offered a voltage window.
  if (powered_up && host_voltages != 0) state_ = CardState::ready;
  return o;
}

CommandOutcome Card::all_send_cid(const Command&) {
  CommandOutcome o;
  o.response.type = ResponseType::r2;
  o.response.r2 = cid_;
  state_ = CardState::ident;
  return o;
}

CommandOutcome Card::set_relative_addr(const Command& c) {
  const std::uint16_t rca = rca_of(c.arg);
  if (rca == 0) return illegal();  // RCA 0 is reserved for deselecting all cards with CMD7
  CommandOutcome o = r1();
  rca_ = rca;
  state_ = CardState::stby;
  return o;
}

CommandOutcome Card::set_dsr(const Command&) { return no_response(); }  // DSR_IMP = 0: ignored

CommandOutcome Card::sleep_awake(const Command& c) {
  const bool sleep = (c.arg & sleep_awake::kSleep) != 0;
  if (sleep != (state_ == CardState::stby)) return illegal();
  CommandOutcome o = r1(0, ResponseType::r1b);
  o.busy = true;
  o.work.sleep_transitions = 1;
  state_ = sleep ? CardState::slp : CardState::stby;
  return o;
}

CommandOutcome Card::select_deselect(const Command& c) {
  if (addressed_to_me(c)) {
    if (state_ == CardState::stby) {
      // R1 from stby; R1b only when reselected from dis (JESD84-B51 Table 40, note 1).
      CommandOutcome o = r1();
      state_ = CardState::tran;
      return o;
    }
    if (state_ == CardState::dis) {
      CommandOutcome o = r1(0, ResponseType::r1b);
      enter_busy(o);
      return o;
    }
    return illegal();  // already selected
  }
  // Another card's address (or 0): a selected card deselects itself, silently.
  if (state_ == CardState::tran || state_ == CardState::data) {
    if (state_ == CardState::data) end_transfer();
    state_ = CardState::stby;
  } else if (state_ == CardState::prg) {
    state_ = CardState::dis;
  }
  return no_response();
}

CommandOutcome Card::send_csd(const Command&) {
  CommandOutcome o;
  o.response.type = ResponseType::r2;
  o.response.r2 = csd_;
  return o;
}

CommandOutcome Card::send_cid(const Command&) {
  CommandOutcome o;
  o.response.type = ResponseType::r2;
  o.response.r2 = cid_;
  return o;
}

CommandOutcome Card::send_status(const Command& c) {
  if ((c.arg & send_status::kSendQueueStatus) != 0) {
    // SQS: the queue status register. Only meaningful with the command queue enabled; this
    // device queues no tasks, so every bit is clear.
    if (ext_csd_[ec::kCmdqModeEn] == 0) return illegal();
    CommandOutcome o = r1();
    o.response.value = 0;
    return o;
  }
  return r1();
}

CommandOutcome Card::go_inactive_state(const Command&) {
  end_transfer();
  state_ = CardState::inactive;
  return no_response();
}

CommandOutcome Card::set_blocklen(const Command& c) {
  if (c.arg == 0 || c.arg > kSectorSize) return r1(st::kBlockLenError);
  CommandOutcome o = r1();
  block_length_ = c.arg;
  return o;
}

CommandOutcome Card::set_block_count(const Command& c) {
  namespace sbc = set_block_count;
  if ((c.arg & sbc::kPacked) != 0) return illegal();  // packed commands: not supported
  CommandOutcome o = r1();
  BlockCount count;
  count.blocks = static_cast<std::uint16_t>(c.arg & sbc::kBlockCountMask);
  count.reliable_write = (c.arg & sbc::kReliableWrite) != 0;
  count.forced_programming = (c.arg & sbc::kForcedProgramming) != 0;
  if (count.blocks != 0) block_count_ = count;
  return o;
}

// ---------------------------------------------------------------------------------------------
// Partitions, addresses and the non-volatile state

std::uint64_t Card::partition_sectors(Partition p) const {
  switch (p) {
    case Partition::user: return config_.user_capacity / kSectorSize;
    case Partition::boot1:
    case Partition::boot2: return config_.boot_partition_size / kSectorSize;
    case Partition::rpmb: return config_.rpmb_size / kSectorSize;
    default: {
      const std::size_t i = static_cast<std::size_t>(p) - 4;
      return i < config_.general_purpose_partitions.size() ? config_.general_purpose_partitions[i] / kSectorSize : 0;
    }
  }
}

std::optional<std::uint64_t> Card::sector_of(std::uint32_t arg, std::uint32_t& error) const {
  if (config_.sector_addressing()) return arg;
  if (arg % kSectorSize != 0) {
    error |= st::kAddressMisalign;
    return std::nullopt;
  }
  return arg / kSectorSize;
}

void Card::save_nonvolatile(WorkReport& work) {
  try {
    backend_.nonvolatile->save(nonvolatile_);
    work.nonvolatile_updates += 1;
  } catch (const StorageError&) {
    pending_status_ |= st::kError;
  }
}

}  // namespace emmcsim::mmc
