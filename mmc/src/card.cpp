// mmc::Card: the eMMC 5.1 state machine and command set (JESD84-B51 §6), without time.
#include "emmcsim/mmc/card.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <utility>

#include "emmcsim/mmc/protocol.hpp"

namespace emmcsim::mmc {
namespace {

namespace st = status;
namespace ec = ext_csd;

// CMD0 arguments.
constexpr std::uint32_t kGoIdle = 0x00000000;
constexpr std::uint32_t kGoPreIdle = 0xF0F0F0F0;
constexpr std::uint32_t kBootInitiation = 0xFFFFFFFA;

// CMD38 arguments.
constexpr std::uint32_t kEraseArg = 0x00000000;
constexpr std::uint32_t kTrimArg = 0x00000001;
constexpr std::uint32_t kDiscardArg = 0x00000003;
constexpr std::uint32_t kSecureEraseArg = 0x80000000;
constexpr std::uint32_t kSecureTrimStep1Arg = 0x80000001;
constexpr std::uint32_t kSecureTrimStep2Arg = 0x80008000;

// CMD6 access modes (arg [25:24]).
constexpr std::uint8_t kAccessCommandSet = 0;
constexpr std::uint8_t kAccessSetBits = 1;
constexpr std::uint8_t kAccessClearBits = 2;
[[maybe_unused]] constexpr std::uint8_t kAccessWriteByte = 3;  // the remaining case: value as given

// CMD23 argument bits.
constexpr std::uint32_t kReliableWriteRequest = 1u << 31;
constexpr std::uint32_t kPackedCommand = 1u << 30;
constexpr std::uint32_t kForcedProgramming = 1u << 24;

// CMD42 data: flags byte.
constexpr std::uint8_t kLockSetPassword = 1u << 0;
constexpr std::uint8_t kLockClearPassword = 1u << 1;
constexpr std::uint8_t kLockLockUnlock = 1u << 2;
constexpr std::uint8_t kLockForceErase = 1u << 3;
constexpr std::size_t kMaxPasswordLength = 16;

// USER_WP and BOOT_WP bits.
constexpr std::uint8_t kUserPowerOnWpEnable = 1u << 0;
constexpr std::uint8_t kUserPermanentWpEnable = 1u << 2;
constexpr std::uint8_t kBootPowerOnWpEnable = 1u << 0;
constexpr std::uint8_t kBootPowerOnWpSecondArea = 1u << 1;
constexpr std::uint8_t kBootPermanentWpEnable = 1u << 2;
constexpr std::uint8_t kBootPermanentWpSecondArea = 1u << 3;
constexpr std::uint8_t kBootPermanentWpDisable = 1u << 4;
constexpr std::uint8_t kBootPowerOnWpDisable = 1u << 6;
constexpr std::uint8_t kBootWpSectionSelect = 1u << 7;
constexpr std::uint8_t kBootWpPermanentBits =
    kBootPermanentWpEnable | kBootPermanentWpSecondArea | kBootPermanentWpDisable;

// Write-protect types as CMD31 reports them.
constexpr std::uint8_t kWpTypeNone = 0;
constexpr std::uint8_t kWpTypeTemporary = 1;
constexpr std::uint8_t kWpTypePowerOn = 2;
constexpr std::uint8_t kWpTypePermanent = 3;

// HS200 tuning block patterns (JESD84-B51 Table 44): 64 bytes on a 4-bit bus, 128 on 8-bit.
constexpr std::uint8_t kTuningPattern4Bit[64] = {
    0xff, 0x0f, 0xff, 0x00, 0xff, 0xcc, 0xc3, 0xcc, 0xc3, 0x3c, 0xcc, 0xff, 0xfe, 0xff, 0xfe, 0xef,
    0xff, 0xdf, 0xff, 0xdd, 0xff, 0xfb, 0xff, 0xfb, 0xbf, 0xff, 0x7f, 0xff, 0x77, 0xf7, 0xbd, 0xef,
    0xff, 0xf0, 0xff, 0xf0, 0x0f, 0xfc, 0xcc, 0x3c, 0xcc, 0x33, 0xcc, 0xcf, 0xff, 0xef, 0xff, 0xee,
    0xff, 0xfd, 0xff, 0xfd, 0xdf, 0xff, 0xbf, 0xff, 0xbb, 0xff, 0xf7, 0xff, 0xf7, 0x7f, 0x7b, 0xde,
};
constexpr std::uint8_t kTuningPattern8Bit[128] = {
    0xff, 0xff, 0x00, 0xff, 0xff, 0xff, 0x00, 0x00, 0xff, 0xff, 0xcc, 0xcc, 0xcc, 0x33, 0xcc, 0xcc,
    0xcc, 0x33, 0x33, 0xcc, 0xcc, 0xcc, 0xff, 0xff, 0xff, 0xee, 0xff, 0xff, 0xff, 0xee, 0xee, 0xff,
    0xff, 0xff, 0xdd, 0xff, 0xff, 0xff, 0xdd, 0xdd, 0xff, 0xff, 0xff, 0xbb, 0xff, 0xff, 0xff, 0xbb,
    0xbb, 0xff, 0xff, 0xff, 0x77, 0xff, 0xff, 0xff, 0x77, 0x77, 0xff, 0x77, 0xbb, 0xdd, 0xee, 0xff,
    0xff, 0xff, 0xff, 0x00, 0xff, 0xff, 0xff, 0x00, 0x00, 0xff, 0xff, 0xcc, 0xcc, 0xcc, 0x33, 0xcc,
    0xcc, 0xcc, 0x33, 0x33, 0xcc, 0xcc, 0xcc, 0xff, 0xff, 0xff, 0xee, 0xff, 0xff, 0xff, 0xee, 0xee,
    0xff, 0xff, 0xff, 0xdd, 0xff, 0xff, 0xff, 0xdd, 0xdd, 0xff, 0xff, 0xff, 0xbb, 0xff, 0xff, 0xff,
    0xbb, 0xbb, 0xff, 0xff, 0xff, 0x77, 0xff, 0xff, 0xff, 0x77, 0x77, 0xff, 0x77, 0xbb, 0xdd, 0xee,
};

// BUS_WIDTH values.
constexpr std::uint8_t kBusWidth1 = 0;
constexpr std::uint8_t kBusWidth4 = 1;
constexpr std::uint8_t kBusWidth8 = 2;
constexpr std::uint8_t kBusWidth4Ddr = 5;
constexpr std::uint8_t kBusWidth8Ddr = 6;
constexpr std::uint8_t kBusWidthEnhancedStrobe = 0x80;

// HS_TIMING values ([3:0]).
constexpr std::uint8_t kTimingLegacy = 0;
constexpr std::uint8_t kTimingHighSpeed = 1;
constexpr std::uint8_t kTimingHs200 = 2;
constexpr std::uint8_t kTimingHs400 = 3;

// Sectors a read transfer fetches from the medium per storage call (64 KiB): one call per
// 512-byte block made file-backed reads syscall-bound (~0.6 us a block); blocks are then handed
// out from the transfer's buffer.
constexpr std::uint32_t kReadAheadSectors = 128;

std::uint32_t sectors_u32(std::uint64_t n) {
  return static_cast<std::uint32_t>(std::min<std::uint64_t>(n, UINT32_MAX));
}

WorkReport from_engine(const rpmb::EngineWork& e) {
  WorkReport w;
  w.hmac_frames = e.mac_frames;
  w.rpmb_commits = e.commits;
  w.sectors_read = (e.half_sectors_read + 1) / 2;
  w.sectors_programmed = (e.half_sectors_written + 1) / 2;
  return w;
}

}  // namespace

Card::Card(const DeviceConfig& config, CardBackend backend, CardOptions options)
    : config_(config), backend_(backend), options_(options) {
  validate(config_);
  auto check = [](const BlockStorage* s, std::uint64_t bytes, const char* what) {
    if (bytes == 0) return;
    if (s == nullptr) throw std::invalid_argument(fmt::format("card: no storage for the {}", what));
    if (s->sectors() != bytes / kSectorSize)
      throw std::invalid_argument(fmt::format("card: the {} storage has {} sectors, the configuration {}",
                                              what, s->sectors(), bytes / kSectorSize));
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
  if (!spec->has(kStatusQuery) && command.index != 23) {
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
  if (erase_reset && outcome.response.type != ResponseType::none &&
      outcome.response.type != ResponseType::r2 && outcome.response.type != ResponseType::r3) {
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

void Card::enter_busy(CardState busy_state, CommandOutcome& outcome) {
  outcome.busy = true;
  state_after_busy_ = busy_state == CardState::dis ? CardState::stby : CardState::tran;
  state_ = busy_state;
  if (options_.complete_busy_immediately) finish_busy();
}

void Card::finish_busy() {
  if (!busy()) return;
  state_ = state_ == CardState::dis ? CardState::stby : state_after_busy_;
}

// ---------------------------------------------------------------------------------------------
// Identification and state commands

CommandOutcome Card::go_idle_state(const Command& c) {
  if (c.arg == kGoIdle || c.arg == kGoPreIdle) {
    // A software reset: like a power cycle for everything volatile except power-on write
    // protection and the lock, which only a real power cycle clears.
    const auto power_on_groups = std::move(power_on_wp_groups_);
    const auto boot_power_on = boot_wp_status_power_on_;
    const bool was_locked = locked_;
    const std::uint8_t boot_wp_volatile = ext_csd_[ec::kBootWp] & ~kBootWpPermanentBits;
    power_cycle();
    power_on_wp_groups_ = power_on_groups;
    boot_wp_status_power_on_ = boot_power_on;
    ext_csd_[ec::kBootWp] |= boot_wp_volatile;
    locked_ = was_locked;
    state_ = c.arg == kGoPreIdle ? CardState::pre_idle : CardState::idle;
    return no_response();
  }
  if (c.arg == kBootInitiation && (state_ == CardState::idle || state_ == CardState::pre_idle)) {
    const std::uint8_t enabled = (ext_csd_[ec::kPartitionConfig] >> 3) & 7;
    Partition source = Partition::user;
    if (enabled == 1) source = Partition::boot1;
    else if (enabled == 2) source = Partition::boot2;
    else if (enabled != 7) return no_response();  // boot not enabled: the card stays in idle
    if (partition_sectors(source) == 0) return no_response();
    CommandOutcome o = no_response();
    open_transfer(TransferKind::boot_stream, DataDirection::to_host, kSectorSize,
                  sectors_u32(partition_sectors(source)), o)
        .partition = source;
    state_ = CardState::boot;
    return o;
  }
  return illegal();
}

CommandOutcome Card::send_op_cond(const Command& c) {
  // The whole voltage field, bits 23:7: a host offering only 2.0–2.6 V (bits 14:8, which no
  // eMMC supports) has no window in common with the device.
  constexpr std::uint32_t kVoltageField = 0x00FFFF80;
  const std::uint32_t host_voltages = c.arg & kVoltageField;
  const std::uint32_t card_voltages = ocr_ & kVoltageField;
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
  const auto rca = static_cast<std::uint16_t>(c.arg >> 16);
  if (rca == 0) return illegal();  // RCA 0 is reserved for deselecting all cards with CMD7
  CommandOutcome o = r1();
  rca_ = rca;
  state_ = CardState::stby;
  return o;
}

CommandOutcome Card::set_dsr(const Command&) { return no_response(); }  // DSR_IMP = 0: ignored

CommandOutcome Card::sleep_awake(const Command& c) {
  const bool sleep = (c.arg & (1u << 15)) != 0;
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
      enter_busy(CardState::prg, o);
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
  if ((c.arg & (1u << 15)) != 0) {
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
  if ((c.arg & kPackedCommand) != 0) return illegal();  // packed commands: not supported
  CommandOutcome o = r1();
  BlockCount count;
  count.blocks = static_cast<std::uint16_t>(c.arg & 0xFFFF);
  count.reliable_write = (c.arg & kReliableWriteRequest) != 0;
  count.forced_programming = (c.arg & kForcedProgramming) != 0;
  if (count.blocks != 0) block_count_ = count;
  return o;
}

// ---------------------------------------------------------------------------------------------
// Data transfers

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

void Card::end_transfer() { transfer_ = Transfer{}; }

Card::Transfer& Card::open_transfer(TransferKind kind, DataDirection direction, std::uint32_t block_size,
                                    std::uint32_t blocks, CommandOutcome& o) {
  transfer_ = Transfer{};
  transfer_.kind = kind;
  transfer_.partition = partition_;
  transfer_.block_size = block_size;
  transfer_.blocks_total = blocks;
  o.data = {direction, block_size, blocks};
  state_ = direction == DataDirection::to_host ? CardState::data : CardState::rcv;
  return transfer_;
}

CommandOutcome Card::send_bytes(std::vector<std::uint8_t> bytes, TransferKind kind) {
  CommandOutcome o = r1();
  open_transfer(kind, DataDirection::to_host, static_cast<std::uint32_t>(bytes.size()), 1, o).buffer =
      std::move(bytes);
  return o;
}

CommandOutcome Card::read_block_command(const Command& c) {
  const bool multiple = c.index == 18;
  const auto count = active_block_count_;
  if (partition_ == Partition::rpmb) {
    if (!count) return illegal();  // the RPMB partition moves data only in CMD23-bounded bursts
    CommandOutcome o = r1();
    Transfer& t = open_transfer(TransferKind::rpmb_responses, DataDirection::to_host, kSectorSize, count->blocks, o);
    t.frames.resize(count->blocks);
    o.work = from_engine(rpmb_engine_->read_response(t.frames.data(), t.frames.size()));
    return o;
  }
  std::uint32_t error = 0;
  if (!config_.sector_addressing() && block_length_ != kSectorSize) error |= st::kBlockLenError;
  const auto sector = sector_of(c.arg, error);
  const std::uint64_t size = partition_sectors(partition_);
  const std::uint32_t blocks = multiple ? (count ? count->blocks : 0) : 1;
  if (error == 0 && (*sector >= size || *sector + blocks > size)) error |= st::kOutOfRange;
  if (error != 0) return r1(error);

  CommandOutcome o = r1();
  open_transfer(TransferKind::read_sectors, DataDirection::to_host, kSectorSize, blocks, o).next_sector = *sector;
  return o;
}

CommandOutcome Card::write_block_command(const Command& c) {
  const bool multiple = c.index == 25;
  const auto count = active_block_count_;
  if (partition_ == Partition::rpmb) {
    if (!count) return illegal();
    CommandOutcome o = r1();
    open_transfer(TransferKind::rpmb_requests, DataDirection::to_card, kSectorSize, count->blocks, o).reliable =
        count->reliable_write;
    return o;
  }
  std::uint32_t error = 0;
  if (!config_.sector_addressing() && block_length_ != kSectorSize) error |= st::kBlockLenError;
  const auto sector = sector_of(c.arg, error);
  const std::uint64_t size = partition_sectors(partition_);
  const std::uint32_t blocks = multiple ? (count ? count->blocks : 0) : 1;
  const bool reliable = multiple && count && count->reliable_write;
  if (error == 0 && (*sector >= size || *sector + blocks > size)) error |= st::kOutOfRange;
  if (error == 0 && reliable) {
    // Legacy reliable write (WR_REL_PARAM bit 2 clear): one sector, or REL_WR_SEC_C sectors
    // aligned to REL_WR_SEC_C — what Linux's mmc_apply_rel_rw() arranges.
    const std::uint32_t unit = config_.reliable_write_sectors;
    if (blocks != 1 && blocks != unit) error |= st::kBlockLenError;
    else if (blocks == unit && *sector % unit != 0) error |= st::kAddressMisalign;
  }
  if (error == 0 && (boot_write_protected(partition_) || write_protected(partition_, *sector)))
    error |= st::kWpViolation;
  if (error != 0) return r1(error);

  CommandOutcome o = r1();
  Transfer& t = open_transfer(TransferKind::write_sectors, DataDirection::to_card, kSectorSize, blocks, o);
  t.next_sector = *sector;
  t.reliable = reliable;
  t.forced_programming = count && count->forced_programming;
  return o;
}

CommandOutcome Card::send_ext_csd(const Command&) {
  const ExtCsd current = ext_csd();
  return send_bytes({current.begin(), current.end()});
}

CommandOutcome Card::send_tuning_block(const Command&) {
  const std::uint8_t width = ext_csd_[ec::kBusWidth];
  if ((ext_csd_[ec::kHsTiming] & 0xF) != kTimingHs200 || (width != kBusWidth4 && width != kBusWidth8))
    return illegal();  // tuning exists only in HS200 on a 4- or 8-bit bus
  if (width == kBusWidth8) return send_bytes({std::begin(kTuningPattern8Bit), std::end(kTuningPattern8Bit)});
  return send_bytes({std::begin(kTuningPattern4Bit), std::end(kTuningPattern4Bit)});
}

// Bus test: the host writes a pattern as wide as the bus (CMD19), the card returns it inverted
// (CMD14). The block is 8 bytes on an 8-bit bus, 4 on a 4-bit bus and 1 on a 1-bit bus.
CommandOutcome Card::bus_test_write(const Command&) {
  const std::uint8_t width = ext_csd_[ec::kBusWidth] & 0x7F;
  std::uint32_t bytes = 1;
  if (width == kBusWidth8 || width == kBusWidth8Ddr) bytes = 8;
  else if (width == kBusWidth4 || width == kBusWidth4Ddr) bytes = 4;
  CommandOutcome o = r1();
  open_transfer(TransferKind::bus_test_write, DataDirection::to_card, bytes, 1, o);
  state_ = CardState::btst;
  return o;
}

CommandOutcome Card::bus_test_read(const Command&) {
  std::vector<std::uint8_t> reply = std::move(transfer_.buffer);
  if (reply.empty()) reply.assign(transfer_.block_size == 0 ? 1 : transfer_.block_size, 0);
  for (auto& b : reply) b = static_cast<std::uint8_t>(~b);
  return send_bytes(std::move(reply), TransferKind::bus_test_read);
}

CommandOutcome Card::stop_transmission(const Command&) {
  if (state_ == CardState::data) {
    CommandOutcome o = r1();
    end_transfer();
    state_ = CardState::tran;
    return o;
  }
  // rcv: blocks already accepted stay written, except a reliable write or an RPMB burst, which
  // is all or nothing and is dropped when cut short.
  CommandOutcome o = r1(0, ResponseType::r1b);
  end_transfer();
  enter_busy(CardState::prg, o);
  return o;
}

BlockOutcome Card::read_block(std::uint8_t* out, std::size_t size) {
  BlockOutcome b = read_one_block(out, size);
  b.blocks = b.ok ? 1 : 0;
  return b;
}

BlockOutcome Card::read_one_block(std::uint8_t* out, std::size_t size) {
  BlockOutcome b;
  if ((state_ != CardState::data && state_ != CardState::boot) || size != transfer_.block_size ||
      transfer_.failed)
    return b;
  switch (transfer_.kind) {
    case TransferKind::read_sectors:
    case TransferKind::boot_stream:
      return read_sector_block(out);
    case TransferKind::register_read:
    case TransferKind::bus_test_read:
    case TransferKind::rpmb_responses: {
      const std::size_t offset = static_cast<std::size_t>(transfer_.blocks_done) * transfer_.block_size;
      const std::uint8_t* from = transfer_.kind == TransferKind::rpmb_responses
                                     ? transfer_.frames[transfer_.blocks_done].bytes()
                                     : transfer_.buffer.data() + offset;
      std::memcpy(out, from, size);
      b.ok = true;
      if (++transfer_.blocks_done == transfer_.blocks_total) {
        end_transfer();
        state_ = CardState::tran;
        b.transfer_complete = true;
      }
      return b;
    }
    default:
      return b;
  }
}

BlockOutcome Card::read_sector_block(std::uint8_t* out) {
  BlockOutcome b;
  const std::uint64_t partition_end = partition_sectors(transfer_.partition);
  if (transfer_.next_sector >= partition_end) {
    // An open-ended read ran past the end: no data; OUT_OF_RANGE goes with the CMD12 response.
    pending_status_ |= st::kOutOfRange;
    transfer_.failed = true;
    return b;
  }
  // Read ahead: when the next sector is not in the buffered run, fetch the next run (up to the count, or to the
  // partition's end for open-ended reads and boot) with one storage call. A block the run does not
  // hold (a run of one, or a run the medium failed to read) is read on its own, so a medium error
  // is still reported at the block it belongs to. No command that writes is accepted while the
  // transfer is open, so the run cannot go stale.
  const auto buffered = static_cast<std::uint64_t>(transfer_.buffer.size() / kSectorSize);
  const bool in_run = transfer_.next_sector >= transfer_.buffer_first_sector &&
                      transfer_.next_sector < transfer_.buffer_first_sector + buffered;
  if (!in_run) {
    transfer_.buffer_first_sector = transfer_.next_sector;
    std::uint64_t run = std::min<std::uint64_t>(kReadAheadSectors, partition_end - transfer_.next_sector);
    if (transfer_.blocks_total != 0)
      run = std::min<std::uint64_t>(run, transfer_.blocks_total - transfer_.blocks_done);
    if (run > 1) {
      transfer_.buffer.resize(static_cast<std::size_t>(run) * kSectorSize);
      try {
        storage(transfer_.partition)->read(transfer_.next_sector, static_cast<std::uint32_t>(run),
                                           transfer_.buffer.data());
      } catch (const StorageError&) {
        transfer_.buffer.clear();
      }
    } else {
      transfer_.buffer.clear();
    }
  }
  const auto offset = static_cast<std::size_t>(transfer_.next_sector - transfer_.buffer_first_sector) * kSectorSize;
  if (transfer_.next_sector >= transfer_.buffer_first_sector && offset + kSectorSize <= transfer_.buffer.size()) {
    // The length is the transfer's (512): a call to the C library's vector copy, where a constant
    // 512 lets the compiler inline `rep movsq`, several times slower on some CPUs.
    std::memcpy(out, transfer_.buffer.data() + offset, transfer_.block_size);
  } else {
    try {
      storage(transfer_.partition)->read(transfer_.next_sector, 1, out);
    } catch (const StorageError&) {
      pending_status_ |= st::kCardEccFailed | st::kError;
      transfer_.failed = true;
      return b;
    }
  }
  b.ok = true;
  b.work.sectors_read = 1;
  ++transfer_.next_sector;
  if (++transfer_.blocks_done == transfer_.blocks_total && transfer_.kind == TransferKind::read_sectors) {
    end_transfer();
    state_ = CardState::tran;
    b.transfer_complete = true;
  }
  return b;
}

BlockOutcome Card::write_block(const std::uint8_t* in, std::size_t size) {
  BlockOutcome b = write_one_block(in, size);
  b.blocks = b.ok ? 1 : 0;
  return b;
}

BlockOutcome Card::write_one_block(const std::uint8_t* in, std::size_t size) {
  BlockOutcome b;
  if ((state_ != CardState::rcv && state_ != CardState::btst) || size != transfer_.block_size ||
      transfer_.failed)
    return b;
  switch (transfer_.kind) {
    case TransferKind::write_sectors:
      return write_sector_block(in);
    case TransferKind::bus_test_write:
      // The pattern is kept for CMD14; the card stays in btst.
      transfer_.buffer.assign(in, in + size);
      ++transfer_.blocks_done;
      b.ok = true;
      return b;
    case TransferKind::rpmb_requests:
      transfer_.buffer.insert(transfer_.buffer.end(), in, in + size);
      if (++transfer_.blocks_done < transfer_.blocks_total) {
        b.ok = true;
        return b;
      }
      return finish_rpmb_requests();
    case TransferKind::lock_unlock: {
      transfer_.buffer.assign(in, in + size);
      b.ok = true;
      b.transfer_complete = true;
      finish_lock_unlock(b.work);
      CommandOutcome busy_outcome;
      enter_busy(CardState::prg, busy_outcome);
      b.busy = true;
      return b;
    }
    default:
      return b;
  }
}

BlockOutcome Card::finish_rpmb_requests() {
  BlockOutcome b;
  std::vector<rpmb::Frame> frames(transfer_.blocks_total);
  for (std::size_t i = 0; i < frames.size(); ++i)
    frames[i] = rpmb::Frame::from_bytes(transfer_.buffer.data() + i * rpmb::kFrameSize);
  b.work = from_engine(rpmb_engine_->write_request(frames.data(), frames.size(), transfer_.reliable));
  b.ok = true;
  b.transfer_complete = true;
  end_transfer();
  CommandOutcome busy_outcome;
  enter_busy(CardState::prg, busy_outcome);
  b.busy = true;
  return b;
}

BlockOutcome Card::write_sector_block(const std::uint8_t* in) {
  BlockOutcome b;
  const std::uint64_t sector = transfer_.next_sector;
  std::uint32_t error = 0;
  if (sector >= partition_sectors(transfer_.partition)) error = st::kOutOfRange;
  else if (write_protected(transfer_.partition, sector)) error = st::kWpViolation;
  if (error != 0) {
    // CRC status "write error"; the host reads the reason with CMD12/CMD13.
    pending_status_ |= error;
    transfer_.failed = true;
    return b;
  }
  ++transfer_.next_sector;
  ++transfer_.blocks_done;
  const bool last = transfer_.blocks_done == transfer_.blocks_total;
  if (transfer_.reliable) {
    // Reliable write: staged, then committed as a whole once the last sector arrived.
    transfer_.buffer.insert(transfer_.buffer.end(), in, in + kSectorSize);
    b.ok = true;
    if (!last) return b;
    if (!commit_staged_write(b.work)) {
      b.ok = false;
      transfer_.failed = true;
      return b;
    }
  } else {
    try {
      storage(transfer_.partition)->write(sector, 1, in);
    } catch (const StorageError&) {
      pending_status_ |= st::kError;
      transfer_.failed = true;
      return b;
    }
    b.ok = true;
    const bool cached = ext_csd_[ec::kCacheCtrl] != 0 && !transfer_.forced_programming;
    if (cached) {
      b.work.sectors_cached = 1;
      ++dirty_cached_sectors_;
    } else {
      b.work.sectors_programmed = 1;
    }
  }
  if (last) complete_write_transfer(b);
  return b;
}

void Card::complete_write_transfer(BlockOutcome& b) {
  end_transfer();
  b.transfer_complete = true;
  CommandOutcome busy_outcome;
  enter_busy(CardState::prg, busy_outcome);
  b.busy = true;
}

std::uint32_t Card::burst_sectors(std::uint32_t wanted) const {
  const bool reading = transfer_.kind == TransferKind::read_sectors && state_ == CardState::data;
  const bool writing = transfer_.kind == TransferKind::write_sectors && state_ == CardState::rcv &&
                       !transfer_.reliable;
  if ((!reading && !writing) || transfer_.failed) return 0;
  const std::uint64_t end = partition_sectors(transfer_.partition);
  if (transfer_.next_sector >= end) return 0;
  std::uint64_t n = std::min<std::uint64_t>(wanted, end - transfer_.next_sector);
  if (transfer_.blocks_total != 0) n = std::min<std::uint64_t>(n, transfer_.blocks_total - transfer_.blocks_done);
  if (writing) {
    // Up to the first write-protected group; that block is left to write_block to refuse.
    const std::uint64_t group = wp_group_sectors();
    std::uint64_t allowed = 0;
    while (allowed < n && !write_protected(transfer_.partition, transfer_.next_sector + allowed))
      allowed = std::min(n, (transfer_.next_sector + allowed) / group * group + group - transfer_.next_sector);
    n = allowed;
  }
  return n >= 2 ? static_cast<std::uint32_t>(n) : 0;
}

BlockOutcome Card::read_blocks(std::uint8_t* out, std::size_t size, std::uint32_t count) {
  BlockOutcome total;
  while (total.blocks < count) {
    std::uint8_t* to = out + std::size_t{total.blocks} * size;
    if (const std::uint32_t n = size == kSectorSize ? burst_sectors(count - total.blocks) : 0; n != 0) {
      bool moved = true;
      try {
        storage(transfer_.partition)->read(transfer_.next_sector, n, to);
      } catch (const StorageError&) {
        moved = false;  // block by block below, so the error lands on the block it belongs to
      }
      if (moved) {
        transfer_.next_sector += n;
        transfer_.blocks_done += n;
        total.blocks += n;
        total.work.sectors_read += n;
        if (transfer_.blocks_done == transfer_.blocks_total) {
          end_transfer();
          state_ = CardState::tran;
          total.transfer_complete = true;
          break;
        }
        continue;
      }
    }
    const BlockOutcome b = read_block(to, size);
    if (!b.ok) break;
    ++total.blocks;
    total.work += b.work;
    if (b.transfer_complete) {
      total.transfer_complete = true;
      break;
    }
  }
  total.ok = total.blocks == count;
  return total;
}

BlockOutcome Card::write_blocks(const std::uint8_t* in, std::size_t size, std::uint32_t count) {
  BlockOutcome total;
  while (total.blocks < count) {
    const std::uint8_t* from = in + std::size_t{total.blocks} * size;
    if (const std::uint32_t n = size == kSectorSize ? burst_sectors(count - total.blocks) : 0; n != 0) {
      bool moved = true;
      try {
        storage(transfer_.partition)->write(transfer_.next_sector, n, from);
      } catch (const StorageError&) {
        moved = false;
      }
      if (moved) {
        const bool cached = ext_csd_[ec::kCacheCtrl] != 0 && !transfer_.forced_programming;
        (cached ? total.work.sectors_cached : total.work.sectors_programmed) += n;
        if (cached) dirty_cached_sectors_ += n;
        transfer_.next_sector += n;
        transfer_.blocks_done += n;
        total.blocks += n;
        if (transfer_.blocks_done == transfer_.blocks_total) {
          complete_write_transfer(total);
          break;
        }
        continue;
      }
    }
    const BlockOutcome b = write_block(from, size);
    if (!b.ok) break;
    ++total.blocks;
    total.work += b.work;
    total.busy = total.busy || b.busy;
    if (b.transfer_complete) {
      total.transfer_complete = true;
      break;
    }
  }
  total.ok = total.blocks == count;
  return total;
}

bool Card::commit_staged_write(WorkReport& work) {
  const auto count = static_cast<std::uint32_t>(transfer_.buffer.size() / kSectorSize);
  const std::uint64_t first = transfer_.next_sector - count;
  try {
    BlockStorage* s = storage(transfer_.partition);
    s->write(first, count, transfer_.buffer.data());
    s->flush();
  } catch (const StorageError&) {
    pending_status_ |= st::kError;
    return false;
  }
  work.sectors_programmed += count;
  return true;
}

// ---------------------------------------------------------------------------------------------
// CMD6 SWITCH and the EXT_CSD modes segment

ExtCsd Card::ext_csd() const {
  ExtCsd current = ext_csd_;
  const auto& device_config = rpmb_engine_->device_configuration();
  // SECURE_WP_INFO: bit 0 SECURE_WP_SUPPORT, bit 1 SECURE_WP_EN_STATUS, bit 2 SECURE_WP_MASK_STATUS.
  current[ec::kSecureWpInfo] = static_cast<std::uint8_t>(
      0x01 | ((device_config.secure_wp_mode_enable & 1) << 1) | ((device_config.secure_wp_mode_config & 1) << 2));
  current[ec::kBootWpStatus] = static_cast<std::uint8_t>(nonvolatile_.boot_wp_status_permanent);
  for (unsigned area = 0; area < 2; ++area) {
    const unsigned shift = area * 2;
    if (((current[ec::kBootWpStatus] >> shift) & 3) == 0 && ((boot_wp_status_power_on_ >> shift) & 3) != 0)
      current[ec::kBootWpStatus] |= static_cast<std::uint8_t>(1u << shift);
  }
  return current;
}

CommandOutcome Card::switch_ext_csd(const Command& c) {
  const auto access = static_cast<std::uint8_t>((c.arg >> 24) & 3);
  const auto index = static_cast<std::uint8_t>((c.arg >> 16) & 0xFF);
  const auto value = static_cast<std::uint8_t>((c.arg >> 8) & 0xFF);
  CommandOutcome o = r1(0, ResponseType::r1b);
  std::uint32_t error = 0;
  if (access == kAccessCommandSet) {
    // Only the standard command set (0) exists on this device.
    if ((c.arg & 7) != 0) error = st::kSwitchError;
  } else if (index >= 192) {
    error = st::kSwitchError;  // the properties segment is read-only
  } else {
    const std::uint8_t old = ext_csd_[index];
    std::uint8_t next = value;
    if (access == kAccessSetBits) next = old | value;
    else if (access == kAccessClearBits) next = old & static_cast<std::uint8_t>(~value);
    error = apply_switch(index, next, o.work);
  }
  // SWITCH_ERROR is found during execution: the next response (CMD13) reports it.
  pending_status_ |= error;
  enter_busy(CardState::prg, o);
  return o;
}

// Validates a new value of a modes-segment field and applies it; returns SWITCH_ERROR when the
// field is not writable or the value not allowed (the register is then unchanged).
std::uint32_t Card::apply_switch(std::uint8_t index, std::uint8_t value, WorkReport& work) {
  const auto reject = st::kSwitchError;
  const std::uint8_t device_type = ext_csd_[ec::kDeviceType];
  switch (index) {
    case ec::kCmdqModeEn:
      if (value > 1 || (value == 1 && config_.command_queue_depth == 0)) return reject;
      break;
    case ec::kFlushCache:
      if (value != 1) return reject;  // bit 0 FLUSH; barriers are not supported
      flush_cache(work);
      return 0;  // FLUSH_CACHE reads back as 0
    case ec::kCacheCtrl:
      if (value > 1 || (value == 1 && config_.cache_size == 0)) return reject;
      if (value == 0 && ext_csd_[ec::kCacheCtrl] == 1) flush_cache(work);
      break;
    case ec::kPowerOffNotification:
      if (value > 4) return reject;
      break;
    case ec::kUserWp:
      if ((value & 0x22) != 0) return reject;  // reserved bits
      break;
    case ec::kBootWp:
      if (config_.boot_partition_size == 0 || (value & 0x20) != 0) return reject;
      if ((value & kBootPowerOnWpEnable) && (ext_csd_[ec::kBootWp] & kBootPowerOnWpDisable)) return reject;
      if ((value & kBootPermanentWpEnable) && (ext_csd_[ec::kBootWp] & kBootPermanentWpDisable)) return reject;
      apply_boot_wp(value);
      work.ext_csd_writes += 1;
      if (value & (kBootPermanentWpEnable | kBootPermanentWpDisable)) save_nonvolatile(work);
      return 0;
    case ec::kEraseGroupDef:
      if (value > 1) return reject;
      break;
    case ec::kBootBusConditions:
      if ((value & 0xE0) != 0 || (value & 3) == 3 || ((value >> 3) & 3) == 3) return reject;
      ext_csd_[index] = value;
      nonvolatile_.boot_bus_conditions = value;
      work.ext_csd_writes += 1;
      save_nonvolatile(work);
      return 0;
    case ec::kPartitionConfig: {
      const auto target = partition_from_access(value & 7);
      const std::uint8_t boot_enable = (value >> 3) & 7;
      if ((value & 0x80) != 0 || !target || partition_sectors(*target) == 0) return reject;
      if (boot_enable != 0 && boot_enable != 1 && boot_enable != 2 && boot_enable != 7) return reject;
      if (*target != partition_) {
        partition_ = *target;
        work.partition_switches += 1;
      }
      const auto boot_bits = static_cast<std::uint8_t>(value & 0x78);
      ext_csd_[index] = value;
      work.ext_csd_writes += 1;
      if (boot_bits != nonvolatile_.partition_config_boot) {
        nonvolatile_.partition_config_boot = boot_bits;
        save_nonvolatile(work);
      }
      return 0;
    }
    case ec::kBusWidth: {
      const std::uint8_t width = value & 0x7F;
      const bool strobe = (value & kBusWidthEnhancedStrobe) != 0;
      if (width != kBusWidth1 && width != kBusWidth4 && width != kBusWidth8 && width != kBusWidth4Ddr &&
          width != kBusWidth8Ddr)
        return reject;
      if ((width == kBusWidth4Ddr || width == kBusWidth8Ddr) && !config_.bus_modes.ddr52 && !config_.bus_modes.hs400)
        return reject;
      if (strobe && (width != kBusWidth8Ddr || !config_.bus_modes.enhanced_strobe)) return reject;
      break;
    }
    case ec::kHsTiming: {
      const std::uint8_t timing = value & 0x0F;
      const std::uint8_t width = ext_csd_[ec::kBusWidth] & 0x7F;
      // High-speed timing at up to 26 or 52 MHz, whichever DEVICE_TYPE offers.
      if (timing == kTimingHighSpeed && !(device_type & (ec::kDeviceTypeHs26 | ec::kDeviceTypeHs52))) return reject;
      if (timing == kTimingHs200 && (!(device_type & ec::kDeviceTypeHs200) || (width != kBusWidth4 && width != kBusWidth8)))
        return reject;  // HS200 runs on a 4- or 8-bit SDR bus
      if (timing == kTimingHs400 && (!(device_type & ec::kDeviceTypeHs400) || width != kBusWidth8Ddr))
        return reject;  // HS400 needs the 8-bit DDR bus selected first
      if (timing > kTimingHs400) return reject;
      if ((value >> 4) > 4) return reject;  // driver strength types 0..4
      if (timing != kTimingLegacy && (value >> 4) != 0 && !(ext_csd_[ec::kDriverStrength] & (1u << (value >> 4))))
        return reject;
      break;
    }
    case ec::kPowerClass:
      if ((value & 0xF0) != 0) return reject;
      break;
    default:
      return reject;  // reserved, one-time programmable or read-only in this device
  }
  ext_csd_[index] = value;
  work.ext_csd_writes += 1;
  return 0;
}

void Card::flush_cache(WorkReport& work) {
  work.cache_flushes += 1;
  work.sectors_programmed += dirty_cached_sectors_;
  dirty_cached_sectors_ = 0;
  auto flush = [](BlockStorage* s) {
    if (s != nullptr) s->flush();
  };
  try {
    flush(backend_.user);
    for (BlockStorage* s : backend_.boot) flush(s);
    for (BlockStorage* s : backend_.general_purpose) flush(s);
  } catch (const StorageError&) {
    pending_status_ |= st::kError;
  }
}

void Card::save_nonvolatile(WorkReport& work) {
  try {
    backend_.nonvolatile->save(nonvolatile_);
    work.nonvolatile_updates += 1;
  } catch (const StorageError&) {
    pending_status_ |= st::kError;
  }
}

// ---------------------------------------------------------------------------------------------
// Write protection

std::uint64_t Card::erase_group_sectors() const {
  // ERASE_GROUP_DEF = 1 selects the high-capacity sizes; 0 the CSD's legacy 512 KiB group.
  if (ext_csd_[ec::kEraseGroupDef] & 1) return config_.erase_group_size / kSectorSize;
  return 1024;
}

std::uint64_t Card::wp_group_sectors() const {
  if (ext_csd_[ec::kEraseGroupDef] & 1) return config_.write_protect_group_bytes() / kSectorSize;
  return 1024ULL * std::min<std::uint32_t>(config_.write_protect_group_size, 32);
}

bool Card::write_protected(Partition p, std::uint64_t sector) const {
  const auto group = static_cast<std::uint32_t>(sector / wp_group_sectors());
  auto in = [&](const std::map<Partition, std::set<std::uint32_t>>& groups) {
    auto it = groups.find(p);
    return it != groups.end() && it->second.count(group) != 0;
  };
  return in(nonvolatile_.temporary_wp_groups) || in(nonvolatile_.permanent_wp_groups) || in(power_on_wp_groups_);
}

bool Card::boot_write_protected(Partition p) const {
  if (!is_boot(p)) return false;
  const unsigned shift = p == Partition::boot1 ? 0 : 2;
  return ((nonvolatile_.boot_wp_status_permanent >> shift) & 3) != 0 || ((boot_wp_status_power_on_ >> shift) & 3) != 0;
}

void Card::apply_boot_wp(std::uint8_t value) {
  const bool select = (value & kBootWpSectionSelect) != 0;
  auto areas = [&](std::uint8_t second_area_bit) -> std::uint8_t {
    if (!select) return 0x3;  // both areas
    return (value & second_area_bit) ? 0x2 : 0x1;
  };
  if (value & kBootPermanentWpEnable) {
    const std::uint8_t which = areas(kBootPermanentWpSecondArea);
    if (which & 1) nonvolatile_.boot_wp_status_permanent |= 0x2;
    if (which & 2) nonvolatile_.boot_wp_status_permanent |= 0x8;
  }
  if (value & kBootPowerOnWpEnable) {
    const std::uint8_t which = areas(kBootPowerOnWpSecondArea);
    if (which & 1) boot_wp_status_power_on_ |= 0x1;
    if (which & 2) boot_wp_status_power_on_ |= 0x4;
  }
  // Disable bits stick; enable bits read back as written.
  ext_csd_[ec::kBootWp] = static_cast<std::uint8_t>(ext_csd_[ec::kBootWp] | value);
  nonvolatile_.boot_wp_permanent = ext_csd_[ec::kBootWp] & kBootWpPermanentBits;
}

CommandOutcome Card::set_clear_write_prot(const Command& c) {
  std::uint32_t error = 0;
  const auto sector = sector_of(c.arg, error);
  if (error == 0 && *sector >= partition_sectors(partition_)) error |= st::kOutOfRange;
  if (error != 0) return r1(error, ResponseType::r1b);
  CommandOutcome o = r1(0, ResponseType::r1b);
  const auto group = static_cast<std::uint32_t>(*sector / wp_group_sectors());
  const std::uint8_t user_wp = ext_csd_[ec::kUserWp];
  if (c.index == 28) {
    if (user_wp & kUserPermanentWpEnable) {
      nonvolatile_.permanent_wp_groups[partition_].insert(group);
      save_nonvolatile(o.work);
    } else if (user_wp & kUserPowerOnWpEnable) {
      power_on_wp_groups_[partition_].insert(group);
    } else {
      nonvolatile_.temporary_wp_groups[partition_].insert(group);
      save_nonvolatile(o.work);
    }
  } else {
    // CMD29 clears temporary protection only; power-on and permanent protection stay.
    auto it = nonvolatile_.temporary_wp_groups.find(partition_);
    if (it != nonvolatile_.temporary_wp_groups.end() && it->second.erase(group) != 0) {
      if (it->second.empty()) nonvolatile_.temporary_wp_groups.erase(it);
      save_nonvolatile(o.work);
    }
  }
  enter_busy(CardState::prg, o);
  return o;
}

CommandOutcome Card::send_write_prot(const Command& c) {
  std::uint32_t error = 0;
  const auto sector = sector_of(c.arg, error);
  const std::uint64_t size = partition_sectors(partition_);
  if (error == 0 && *sector >= size) error |= st::kOutOfRange;
  if (error != 0) return r1(error);
  const std::uint64_t group_sectors = wp_group_sectors();
  const auto first = static_cast<std::uint32_t>(*sector / group_sectors);
  const auto groups_total = static_cast<std::uint32_t>((size + group_sectors - 1) / group_sectors);
  auto type_of = [&](std::uint32_t group) -> std::uint8_t {
    auto in = [&](const std::map<Partition, std::set<std::uint32_t>>& m) {
      auto it = m.find(partition_);
      return it != m.end() && it->second.count(group) != 0;
    };
    if (group >= groups_total) return kWpTypeNone;
    if (in(nonvolatile_.permanent_wp_groups)) return kWpTypePermanent;
    if (in(power_on_wp_groups_)) return kWpTypePowerOn;
    if (in(nonvolatile_.temporary_wp_groups)) return kWpTypeTemporary;
    return kWpTypeNone;
  };
  std::vector<std::uint8_t> bytes;
  if (c.index == 30) {
    // 32 bits, MSB first; bit 0 (last on the bus) is the addressed group.
    std::uint32_t bits = 0;
    for (std::uint32_t i = 0; i < 32; ++i)
      if (type_of(first + i) != kWpTypeNone) bits |= 1u << i;
    bytes = {static_cast<std::uint8_t>(bits >> 24), static_cast<std::uint8_t>(bits >> 16),
             static_cast<std::uint8_t>(bits >> 8), static_cast<std::uint8_t>(bits)};
  } else {
    // 64 bits, two per group; bits [1:0] (last on the bus) are the addressed group.
    std::uint64_t bits = 0;
    for (std::uint32_t i = 0; i < 32; ++i) bits |= static_cast<std::uint64_t>(type_of(first + i)) << (2 * i);
    for (int i = 0; i < 8; ++i) bytes.push_back(static_cast<std::uint8_t>(bits >> (56 - 8 * i)));
  }
  return send_bytes(std::move(bytes));
}

// ---------------------------------------------------------------------------------------------
// Erase, trim, discard, secure erase and trim

CommandOutcome Card::erase_group_address(const Command& c) {
  if (c.index == 36 && erase_stage_ == EraseStage::none) {
    erase_stage_ = EraseStage::none;
    return r1(st::kEraseSeqError);
  }
  std::uint32_t error = 0;
  const auto sector = sector_of(c.arg, error);
  if (error == 0 && *sector >= partition_sectors(partition_)) error |= st::kOutOfRange;
  if (error != 0) {
    erase_stage_ = EraseStage::none;
    return r1(error);
  }
  CommandOutcome o = r1();
  if (c.index == 35) {
    erase_start_ = *sector;
    erase_stage_ = EraseStage::start_set;
  } else {
    erase_end_ = *sector;
    erase_stage_ = EraseStage::end_set;
  }
  return o;
}

CommandOutcome Card::erase(const Command& c) {
  if (erase_stage_ != EraseStage::end_set) {
    erase_stage_ = EraseStage::none;
    return r1(st::kEraseSeqError, ResponseType::r1b);
  }
  erase_stage_ = EraseStage::none;
  const std::uint32_t kind = c.arg;
  const bool known = kind == kEraseArg || kind == kTrimArg || kind == kDiscardArg || kind == kSecureEraseArg ||
                     kind == kSecureTrimStep1Arg || kind == kSecureTrimStep2Arg;
  const bool secure = (kind & 0x80000000u) != 0;
  if (!known || (secure && !config_.secure_erase_trim) || erase_start_ > erase_end_)
    return r1(st::kEraseParam, ResponseType::r1b);
  CommandOutcome o = r1(0, ResponseType::r1b);
  std::uint32_t status_bits = 0;
  if (kind == kSecureTrimStep1Arg) {
    secure_trim_marked_.push_back({partition_, {erase_start_, erase_end_}});
    o.work.nonvolatile_updates += 1;  // the marks are kept in the device until step 2
  } else if (kind == kSecureTrimStep2Arg) {
    const auto marked = std::move(secure_trim_marked_);
    secure_trim_marked_.clear();
    for (const auto& [p, range] : marked) erase_range(p, range.first, range.second, kTrimArg, o.work, status_bits);
  } else {
    erase_range(partition_, erase_start_, erase_end_, kind, o.work, status_bits);
  }
  // WP_ERASE_SKIP is found while erasing: the next response carries it.
  pending_status_ |= status_bits;
  enter_busy(CardState::prg, o);
  return o;
}

void Card::erase_range(Partition p, std::uint64_t first, std::uint64_t last, std::uint32_t kind,
                       WorkReport& work, std::uint32_t& status_bits) {
  BlockStorage* s = storage(p);
  if (s == nullptr) return;
  const bool whole_groups = kind == kEraseArg || kind == kSecureEraseArg;
  const std::uint64_t unit = whole_groups ? erase_group_sectors() : 1;
  std::uint64_t begin = first / unit * unit;
  const std::uint64_t end = std::min<std::uint64_t>((last / unit + 1) * unit, partition_sectors(p));
  if (boot_write_protected(p)) {
    status_bits |= st::kWpEraseSkip;
    return;
  }
  // Erase what is not write protected, one write-protect group (or less) at a time.
  const std::uint64_t wp_unit = wp_group_sectors();
  try {
    while (begin < end) {
      const std::uint64_t group_end = std::min(end, (begin / wp_unit + 1) * wp_unit);
      if (write_protected(p, begin)) {
        status_bits |= st::kWpEraseSkip;
      } else {
        s->erase(begin, group_end - begin);
        if (whole_groups) work.erase_groups += sectors_u32((group_end - begin + unit - 1) / unit);
        else work.sectors_trimmed += sectors_u32(group_end - begin);
      }
      begin = group_end;
    }
  } catch (const StorageError&) {
    status_bits |= st::kError;
  }
}

// ---------------------------------------------------------------------------------------------
// CMD42 LOCK_UNLOCK

CommandOutcome Card::lock_unlock(const Command&) {
  CommandOutcome o = r1();
  open_transfer(TransferKind::lock_unlock, DataDirection::to_card, block_length_, 1, o);
  return o;
}

void Card::finish_lock_unlock(WorkReport& work) {
  const std::vector<std::uint8_t> block = std::move(transfer_.buffer);
  end_transfer();
  const std::uint8_t flags = block.empty() ? 0 : block[0];
  const std::size_t length = block.size() > 1 ? block[1] : 0;
  auto fail = [this] { pending_status_ |= st::kLockUnlockFailed; };
  if (length + 2 > block.size() && flags != kLockForceErase) return fail();
  const std::vector<std::uint8_t> given(block.begin() + 2, block.begin() + 2 + std::min(length, block.size() - 2));
  std::vector<std::uint8_t>& password = nonvolatile_.password;

  if (flags == kLockForceErase) {
    // Forced erase: only a locked card; everything user data goes, with the password.
    if (!locked_) return fail();
    if (backend_.user != nullptr) {
      std::uint32_t ignored = 0;
      const auto saved = std::exchange(nonvolatile_.temporary_wp_groups, {});
      erase_range(Partition::user, 0, partition_sectors(Partition::user) - 1, kEraseArg, work, ignored);
      nonvolatile_.temporary_wp_groups = saved;
    }
    password.clear();
    locked_ = false;
    save_nonvolatile(work);
    return;
  }
  // ERASE must be the only bit set; combined with others the request is rejected.
  if (flags & kLockForceErase) return fail();
  if ((flags & kLockSetPassword) && (flags & kLockClearPassword)) return fail();
  if (flags & kLockClearPassword) {
    if (password.empty() || given != password) return fail();
    password.clear();
    locked_ = false;
    save_nonvolatile(work);
    return;
  }
  if (flags & kLockSetPassword) {
    // With a password set, the data carries the old one followed by the new one.
    if (given.size() < password.size() || !std::equal(password.begin(), password.end(), given.begin()))
      return fail();
    std::vector<std::uint8_t> replacement(given.begin() + static_cast<std::ptrdiff_t>(password.size()), given.end());
    if (replacement.empty() || replacement.size() > kMaxPasswordLength) return fail();
    password = std::move(replacement);
    if (flags & kLockLockUnlock) locked_ = true;
    save_nonvolatile(work);
    return;
  }
  if (password.empty() || given != password) return fail();
  const bool lock = (flags & kLockLockUnlock) != 0;
  if (!lock && !locked_) return fail();  // unlocking an unlocked device fails (JESD84-B51 §6.6.35)
  locked_ = lock;
}

}  // namespace emmcsim::mmc
