// LinuxBlockDriver (see linux_block_driver.hpp): the kernel's side of the MMC ioctls and of block
// I/O, over a HostBus.
#include "emmcsim/mmc/linux_block_driver.hpp"

#include <array>
#include <cerrno>
#include <stdexcept>
#include <vector>

#include "emmcsim/mmc/card_status.hpp"

namespace emmcsim::mmc {
namespace {

using mmcblk::Node;

// MMC_RSP_* flags of struct mmc_ioc_cmd (include/linux/mmc/core.h).
constexpr std::uint32_t kRspPresent = 1u << 0;
constexpr std::uint32_t kRspBusy = 1u << 3;
constexpr std::uint32_t kRspR1b = 0x1D;  // PRESENT | CRC | OPCODE | BUSY

constexpr std::uint32_t kHostOcr = ocr::kSectorMode | ocr::kVoltage270_360 | ocr::kVoltage170_195;
constexpr int kMaxOpCondPolls = 10000;
constexpr int kMaxStatusPolls = 64;  // untimed: the card is ready at the first poll
constexpr std::uint32_t kReliableWrite = 1u << 31;
// The R1 bits the block layer treats as a failed read or write (CMD_ERRORS in block.c); a stale
// ILLEGAL_COMMAND left by someone's refused ioctl is not one of them.
constexpr std::uint32_t kBlockIoErrors = status::kOutOfRange | status::kAddressMisalign | status::kBlockLenError |
                                         status::kWpViolation | status::kCardEccFailed | status::kCcError |
                                         status::kError;

constexpr std::uint8_t kCmdSwitch = 6;
constexpr std::uint8_t kCmdStop = 12;
constexpr std::uint8_t kCmdSendStatus = 13;
constexpr std::uint8_t kCmdBusTestRead = 14;
constexpr std::uint8_t kCmdSendTuningBlock = 21;
constexpr std::uint8_t kCmdSetBlockCount = 23;

// EXT_CSD BUS_WIDTH[183] and HS_TIMING[185] values (include/linux/mmc/mmc.h).
constexpr std::uint8_t kBusWidth8 = 2;
constexpr std::uint8_t kBusWidth8Ddr = 6;
constexpr std::uint8_t kBusWidthStrobe = 0x80;
constexpr std::uint8_t kTimingHighSpeed = 1;
constexpr std::uint8_t kTimingHs200 = 2;
constexpr std::uint8_t kTimingHs400 = 3;

constexpr std::uint32_t switch_arg(std::size_t index, std::uint8_t value) {
  return (3u << 24) | (static_cast<std::uint32_t>(index) << 16) | (std::uint32_t{value} << 8);
}

bool in_tran_and_ready(std::uint32_t r1) {
  return status::current_state(r1) == static_cast<std::uint32_t>(CardState::tran) && (r1 & status::kReadyForData) != 0;
}

std::size_t node_index(Node node) { return static_cast<std::size_t>(node); }

// What the protocol decoder refuses, refused here too for callers that build requests
// themselves: more than MMC_IOC_MAX_CMDS commands, a command over MMC_IOC_MAX_BYTES, and a write
// whose buffer is not blksz x blocks bytes (the card would read past its end).
int check_ioctl(const mmcblk::IoctlRequest& request) {
  if (request.commands.size() > mmcblk::kMaxCommands) return EINVAL;
  for (const mmcblk::IoctlCommand& c : request.commands) {
    if (c.data_bytes() > mmcblk::kMaxCommandBytes) return EOVERFLOW;
    if (c.writes() && c.data.size() != c.data_bytes()) return EINVAL;
  }
  return 0;
}

}  // namespace

std::uint8_t partition_access_of(Node node) {
  switch (node) {
    case Node::user: return 0;
    case Node::boot0: return 1;
    case Node::boot1: return 2;
    case Node::rpmb: return 3;
  }
  return 0;
}

LinuxBlockDriver::LinuxBlockDriver(HostBus& bus) : bus_(bus) { probe(); }

void LinuxBlockDriver::reinitialise() {
  ++card_resets_;
  bus_.power_cycle();
  probe();
}

void LinuxBlockDriver::probe() {
  cache_enabled_ = false;
  bus_.set_clock(kIdentificationClockHz);
  auto must = [](const CommandResult& r, const char* what) {
    if (r.error != 0 || (r.outcome.response.value & status::kAnyError) != 0)
      throw std::runtime_error(std::string("card probe: ") + what + " failed");
    return r;
  };
  command(0, 0, false);
  bool ready = false;
  for (int i = 0; i < kMaxOpCondPolls && !ready; ++i) {
    const CommandResult r = command(1, kHostOcr);
    if (r.error != 0) throw std::runtime_error("card probe: CMD1 SEND_OP_COND got no response");
    ready = (r.outcome.response.value & ocr::kPowerUpDone) != 0;
    block_addressing_ = (r.outcome.response.value & ocr::kSectorMode) != 0;
  }
  if (!ready) throw std::runtime_error("card probe: the OCR stayed busy");
  const CommandResult cid = command(2, 0);
  if (cid.error != 0) throw std::runtime_error("card probe: CMD2 ALL_SEND_CID got no response");
  description_.cid = cid.outcome.response.r2;
  must(command(3, std::uint32_t{kRca} << 16), "CMD3 SET_RELATIVE_ADDR");
  must(command(7, std::uint32_t{kRca} << 16), "CMD7 SELECT_CARD");
  bus_.wait_while_busy();

  const CommandResult ext = must(command(8, 0), "CMD8 SEND_EXT_CSD");
  if (ext.outcome.data.direction != DataDirection::to_host || !bus_.read_blocks(ext_csd_.data(), ext_csd_.size(), 1).ok)
    throw std::runtime_error("card probe: CMD8 sent no EXT_CSD");
  part_config_ = ext_csd_[ext_csd::kPartitionConfig];
  select_bus_speed();

  const std::uint32_t cache_kbit = ext_csd_[ext_csd::kCacheSize] |
                                   (std::uint32_t{ext_csd_[ext_csd::kCacheSize + 1]} << 8) |
                                   (std::uint32_t{ext_csd_[ext_csd::kCacheSize + 2]} << 16) |
                                   (std::uint32_t{ext_csd_[ext_csd::kCacheSize + 3]} << 24);
  if (cache_kbit > 0) {  // mmc_init_card(): "Enable the cache if supported"
    must(command(kCmdSwitch, switch_arg(ext_csd::kCacheCtrl, 1)), "CMD6 CACHE_CTRL");
    bus_.wait_while_busy();
    if (poll_until_ready(true) != 0) throw std::runtime_error("card probe: enabling the cache failed");
    cache_enabled_ = true;
  }

  std::uint64_t sectors = 0;
  for (int i = 3; i >= 0; --i) sectors = (sectors << 8) | ext_csd_[ext_csd::kSecCount + i];
  const std::uint64_t boot = std::uint64_t{ext_csd_[ext_csd::kBootSizeMult]} * 128 * 1024;
  description_.node_size = {sectors * 512, boot, boot, std::uint64_t{ext_csd_[ext_csd::kRpmbSizeMult]} * 128 * 1024};
  description_.rpmb_size_mult = ext_csd_[ext_csd::kRpmbSizeMult];
  description_.rel_sectors = ext_csd_[ext_csd::kRelWrSecC];
}

void LinuxBlockDriver::switch_during_probe(std::size_t index, std::uint8_t value, const char* what) {
  const CommandResult r = command(kCmdSwitch, switch_arg(index, value));
  if (r.error != 0) throw std::runtime_error(std::string("card probe: CMD6 ") + what + " got no response");
  bus_.wait_while_busy();
  if (poll_until_ready(true) != 0) throw std::runtime_error(std::string("card probe: CMD6 ") + what + " failed");
}

void LinuxBlockDriver::select_bus_speed() {
  namespace ec = ext_csd;
  const std::uint8_t type = ext_csd_[ec::kDeviceType];
  const bool strobe = (ext_csd_[ec::kStrobeSupport] & 1) != 0;
  const bool hs400 = (type & ec::kDeviceTypeHs400) != 0;
  if (hs400 && strobe) {  // mmc_select_hs400es()
    switch_during_probe(ec::kBusWidth, kBusWidth8, "BUS_WIDTH 8-bit");
    switch_during_probe(ec::kHsTiming, kTimingHighSpeed, "HS_TIMING high speed");
    bus_.set_clock(kHighSpeedClockHz);
    switch_during_probe(ec::kBusWidth, kBusWidth8Ddr | kBusWidthStrobe, "BUS_WIDTH 8-bit DDR, enhanced strobe");
    switch_during_probe(ec::kHsTiming, kTimingHs400, "HS_TIMING HS400");
    bus_.set_clock(kHs200ClockHz);
    return;
  }
  if ((type & ec::kDeviceTypeHs200) != 0) {  // mmc_select_hs200(), mmc_hs200_tuning()
    switch_during_probe(ec::kBusWidth, kBusWidth8, "BUS_WIDTH 8-bit");
    switch_during_probe(ec::kHsTiming, kTimingHs200, "HS_TIMING HS200");
    bus_.set_clock(kHs200ClockHz);
    const CommandResult tuning = command(kCmdSendTuningBlock, 0);
    std::array<std::uint8_t, 128> pattern{};
    if (tuning.error != 0 || tuning.outcome.data.block_size != pattern.size() ||
        !bus_.read_blocks(pattern.data(), pattern.size(), 1).ok)
      throw std::runtime_error("card probe: CMD21 SEND_TUNING_BLOCK sent no tuning block");
    if (hs400) {  // mmc_select_hs400(): back to high speed, 8-bit DDR, then HS400
      switch_during_probe(ec::kHsTiming, kTimingHighSpeed, "HS_TIMING high speed");
      bus_.set_clock(kHighSpeedClockHz);
      switch_during_probe(ec::kBusWidth, kBusWidth8Ddr, "BUS_WIDTH 8-bit DDR");
      switch_during_probe(ec::kHsTiming, kTimingHs400, "HS_TIMING HS400");
      bus_.set_clock(kHs200ClockHz);
    }
    return;
  }
  if ((type & (ec::kDeviceTypeHs52 | ec::kDeviceTypeHs26)) != 0) {  // mmc_select_hs()
    switch_during_probe(ec::kHsTiming, kTimingHighSpeed, "HS_TIMING high speed");
    bus_.set_clock((type & ec::kDeviceTypeHs52) != 0 ? kHighSpeedClockHz : kLegacyClockHz);
  } else {
    bus_.set_clock(kLegacyClockHz);
  }
  switch_during_probe(ec::kBusWidth, kBusWidth8, "BUS_WIDTH 8-bit");            // mmc_select_bus_width()
  if ((type & ec::kDeviceTypeHs52) != 0 && (type & ec::kDeviceTypeDdr52) != 0)  // mmc_select_hs_ddr()
    switch_during_probe(ec::kBusWidth, kBusWidth8Ddr, "BUS_WIDTH 8-bit DDR");
}

LinuxBlockDriver::CommandResult LinuxBlockDriver::command(std::uint8_t index, std::uint32_t arg,
                                                          bool response_expected) {
  CommandResult r;
  r.outcome = bus_.execute(Command{index, arg});
  if (response_expected && (r.outcome.illegal || r.outcome.response.type == ResponseType::none)) r.error = ETIMEDOUT;
  return r;
}

int LinuxBlockDriver::poll_until_ready(bool switch_command) {
  for (int i = 0; i < kMaxStatusPolls; ++i) {
    const CommandResult r = command(kCmdSendStatus, std::uint32_t{kRca} << 16);
    if (r.error != 0) return r.error;
    const std::uint32_t r1 = r.outcome.response.value;
    if (switch_command && (r1 & status::kSwitchError) != 0) return EBADMSG;  // mmc_switch_status_error
    if (in_tran_and_ready(r1)) return 0;
    bus_.wait_while_busy();
  }
  return ETIMEDOUT;
}

void LinuxBlockDriver::recover() {
  const CommandResult r = command(kCmdSendStatus, std::uint32_t{kRca} << 16);
  const auto state = static_cast<CardState>(status::current_state(r.outcome.response.value));
  if (r.error == 0 && state == CardState::tran) return;
  if (r.error == 0 && (state == CardState::prg || state == CardState::dis)) {
    bus_.wait_while_busy();
    return;
  }
  if (r.error == 0 && (state == CardState::data || state == CardState::rcv)) {
    command(kCmdStop, 0);
    bus_.wait_while_busy();
    return;
  }
  if (r.error == 0 && state == CardState::btst) {
    // A bus test (CMD19) that failed half way: CMD12 does not end it, CMD14 does (the card sends
    // the pattern back and returns to tran). Without this every later request would fail.
    const CommandResult r14 = command(kCmdBusTestRead, 0);
    if (r14.error == 0 && r14.outcome.data.direction == DataDirection::to_host) {
      std::vector<std::uint8_t> pattern(r14.outcome.data.block_size);
      bus_.read_blocks(pattern.data(), pattern.size(), 1);
    }
    return;
  }
  // No answer to CMD13 (idle, ready, ident, sleep, inactive) or a deselected card: as
  // mmc_blk_reset() → mmc_hw_reset(), power-cycle it and bring it up again, so one client's CMD0,
  // CMD5 or CMD15 cannot leave the card unusable for everyone else.
  reinitialise();
}

int LinuxBlockDriver::switch_partition(std::uint8_t access) {
  if ((part_config_ & 7u) == access) return 0;
  const auto value = static_cast<std::uint8_t>((part_config_ & ~7u) | access);
  const CommandResult r = command(kCmdSwitch, switch_arg(ext_csd::kPartitionConfig, value));
  if (r.error != 0) return r.error;
  // Error bits in CMD6's own response belong to the command before it (ILLEGAL_COMMAND is
  // reported one command late); the card reports a refused switch as SWITCH_ERROR in the CMD13
  // that follows, which is all mmc_switch() checks. Failing on them would leave part_config_ on
  // the old partition while the card has switched.
  bus_.wait_while_busy();
  if (const int error = poll_until_ready(true); error != 0) return error;
  part_config_ = value;
  return 0;
}

void LinuxBlockDriver::track_switch(std::uint32_t arg) {
  // __mmc_blk_ioctl_cmd() keeps its copies of PARTITION_CONFIG and CACHE_CTRL current when an
  // ioctl writes them.
  const std::uint8_t access = static_cast<std::uint8_t>((arg >> 24) & 3);
  const auto index = static_cast<std::size_t>((arg >> 16) & 0xFF);
  const auto value = static_cast<std::uint8_t>((arg >> 8) & 0xFF);
  if (access == 0) return;  // command set change
  std::uint8_t* field = nullptr;
  if (index == ext_csd::kPartitionConfig) field = &part_config_;
  std::uint8_t cache = cache_enabled_ ? 1 : 0;
  if (index == ext_csd::kCacheCtrl) field = &cache;
  if (field == nullptr) return;
  switch (access) {
    case 1: *field = static_cast<std::uint8_t>(*field | value); break;   // set bits
    case 2: *field = static_cast<std::uint8_t>(*field & ~value); break;  // clear bits
    case 3: *field = value; break;                                       // write byte
  }
  cache_enabled_ = (cache & 1) != 0;
}

int LinuxBlockDriver::run_ioctl_command(Node node, const mmcblk::IoctlCommand& c, bool caller_sent_cmd23,
                                        mmcblk::IoctlCommandResult& result) {
  if (c.postsleep_max_us < c.postsleep_min_us) return EPERM;  // the kernel's own check
  if (c.is_acmd != 0) {
    if (const CommandResult app = command(55, std::uint32_t{kRca} << 16); app.error != 0) return app.error;
  }
  const bool has_data = c.data_bytes() > 0;
  const bool counted = has_data && (node == Node::rpmb || c.opcode == 18 || c.opcode == 25);
  if (counted && !caller_sent_cmd23) {  // mrq.sbc
    const CommandResult sbc = command(kCmdSetBlockCount, c.blocks | (c.write_flag & kReliableWrite));
    if (sbc.error != 0) return sbc.error;
  }
  if (c.opcode > 63) return EINVAL;
  const CommandResult r = command(static_cast<std::uint8_t>(c.opcode), c.arg, (c.flags & kRspPresent) != 0);
  const Response& response = r.outcome.response;
  if (response.type == ResponseType::r2) {
    for (std::size_t i = 0; i < 4; ++i) {
      result.response[i] = (std::uint32_t{response.r2[4 * i]} << 24) | (std::uint32_t{response.r2[4 * i + 1]} << 16) |
                           (std::uint32_t{response.r2[4 * i + 2]} << 8) | response.r2[4 * i + 3];
    }
  } else if (response.type != ResponseType::none) {
    result.response[0] = response.value;
  }
  if (r.error != 0) {
    recover();
    return r.error;
  }
  if (!has_data && r.outcome.data.direction != DataDirection::none) {
    // The card opened a data phase the caller gave no buffer for (blocks 0): nothing will move,
    // so stop it now rather than leave the card in data or rcv for the next request.
    recover();
  }
  bool busy = r.outcome.busy;
  if (has_data) {
    const DataPhase& phase = r.outcome.data;
    const auto wanted = c.writes() ? DataDirection::to_card : DataDirection::to_host;
    if (phase.direction != wanted) {  // the card sends nothing / takes nothing: data timeout
      recover();
      return ETIMEDOUT;
    }
    if (phase.block_size != c.blksz) {  // blocks framed at the wrong size fail their CRC
      recover();
      return EILSEQ;
    }
    const std::uint32_t available = phase.blocks == 0 ? c.blocks : std::min(phase.blocks, c.blocks);
    const BlockOutcome b = c.writes() ? bus_.write_blocks(c.data.data(), c.blksz, available)
                                      : bus_.read_blocks(result.data.data(), c.blksz, available);
    busy = busy || b.busy;
    if (b.blocks < available) {
      recover();
      return c.writes() ? EILSEQ : ETIMEDOUT;
    }
    if (available < c.blocks) {  // the card's count ran out before the host's
      recover();
      return ETIMEDOUT;
    }
    if (!b.transfer_complete) {  // open-ended: the host controller stops it
      const CommandResult stop = command(kCmdStop, 0);
      busy = busy || stop.outcome.busy;
    }
  }
  if (busy || (c.flags & kRspBusy) != 0) bus_.wait_while_busy();
  if (c.opcode == kCmdSwitch) track_switch(c.arg);
  if (node == Node::rpmb || (c.flags & kRspR1b) == kRspR1b) return poll_until_ready(false);
  return 0;
}

mmcblk::IoctlReply LinuxBlockDriver::ioctl(const mmcblk::IoctlRequest& request) {
  request_start_ps_ = bus_.simulated_time_ps().value_or(0);
  mmcblk::IoctlReply reply;
  reply.results.resize(request.commands.size());
  if (const int invalid = check_ioctl(request); invalid != 0) {
    reply.status = status(invalid);
    return reply;
  }
  for (std::size_t i = 0; i < request.commands.size(); ++i) {
    const mmcblk::IoctlCommand& c = request.commands[i];
    if (!c.writes()) reply.results[i].data.assign(c.data_bytes(), 0);
  }
  int error = 0;
  if (description_.node_size[node_index(request.node)] == 0) {
    error = ENXIO;
  } else {
    // mmc_blk_part_switch() once per request, as mmc_blk_mq_issue_rq() does: a CMD6 in the chain
    // that selects another partition holds for the commands after it (track_switch).
    error = switch_partition(partition_access_of(request.node));
    for (std::size_t i = 0; i < request.commands.size() && error == 0; ++i) {
      const bool caller_sent_cmd23 = i > 0 && request.commands[i - 1].opcode == kCmdSetBlockCount;
      error = run_ioctl_command(request.node, request.commands[i], caller_sent_cmd23, reply.results[i]);
    }
    if (request.node == Node::rpmb) switch_partition(0);  // "Always switch back to main area"
    if (leaves_transfer_state(request)) recover();
  }
  reply.status = status(error);
  return reply;
}

bool LinuxBlockDriver::leaves_transfer_state(const mmcblk::IoctlRequest& request) {
  // Commands that take a card out of tran by design: reset, identification, sleep, deselect,
  // inactive, bus test.
  for (const mmcblk::IoctlCommand& c : request.commands) {
    switch (c.opcode) {
      case 0:
      case 1:
      case 2:
      case 3:
      case 4:
      case 5:
      case 7:
      case 14:
      case 15:
      case 19: return true;
      default: break;
    }
  }
  return false;
}

int LinuxBlockDriver::check_node_range(Node node, std::uint64_t offset, std::size_t length) const {
  if (node == Node::rpmb) return EINVAL;  // the rpmb node has no block interface
  const std::uint64_t size = description_.node_size[node_index(node)];
  if (size == 0) return ENXIO;
  // Whole sectors, 1 .. 512 KiB, as the decoder demands (for callers that skip it).
  if (length == 0 || length > mmcblk::kMaxBlockTransfer || offset % mmcblk::kSectorSize != 0 ||
      length % mmcblk::kSectorSize != 0)
    return EINVAL;
  if (offset > size || length > size - offset) return EINVAL;
  return 0;
}

int LinuxBlockDriver::transfer_sectors(bool write, std::uint64_t sector, std::uint8_t* buffer, std::uint32_t sectors) {
  const std::uint64_t address = block_addressing_ ? sector : sector * 512;
  if (address > 0xFFFFFFFFu) return EINVAL;
  if (sectors > 1) {
    const CommandResult sbc = command(kCmdSetBlockCount, sectors);
    if (sbc.error != 0 || (sbc.outcome.response.value & kBlockIoErrors) != 0) {
      recover();
      return EIO;
    }
  }
  const std::uint8_t opcode = write ? (sectors > 1 ? 25 : 24) : (sectors > 1 ? 18 : 17);
  const CommandResult r = command(opcode, static_cast<std::uint32_t>(address));
  const auto wanted = write ? DataDirection::to_card : DataDirection::to_host;
  if (r.error != 0 || (r.outcome.response.value & kBlockIoErrors) != 0 || r.outcome.data.direction != wanted) {
    recover();
    return EIO;
  }
  const BlockOutcome b = write ? bus_.write_blocks(buffer, 512, sectors) : bus_.read_blocks(buffer, 512, sectors);
  if (b.blocks < sectors) {
    recover();
    return EIO;
  }
  if (b.busy) bus_.wait_while_busy();
  if (write) return poll_until_ready(false) == 0 ? 0 : EIO;  // mmc_blk_rw_wait()
  return 0;
}

mmcblk::BlockReadReply LinuxBlockDriver::read(const mmcblk::BlockReadRequest& request) {
  request_start_ps_ = bus_.simulated_time_ps().value_or(0);
  mmcblk::BlockReadReply reply;
  int error = check_node_range(request.node, request.offset, request.length);
  if (error == 0) error = switch_partition(partition_access_of(request.node)) == 0 ? 0 : EIO;
  if (error == 0) {
    reply.data.assign(request.length, 0);
    error = transfer_sectors(false, request.offset / 512, reply.data.data(), request.length / 512);
    if (error != 0) reply.data.clear();
  }
  reply.status = status(error);
  return reply;
}

mmcblk::BlockWriteReply LinuxBlockDriver::write(const mmcblk::BlockWriteRequest& request) {
  request_start_ps_ = bus_.simulated_time_ps().value_or(0);
  mmcblk::BlockWriteReply reply;
  int error = check_node_range(request.node, request.offset, request.data.size());
  if (error == 0) error = switch_partition(partition_access_of(request.node)) == 0 ? 0 : EIO;
  if (error == 0) {
    error = transfer_sectors(true, request.offset / 512, const_cast<std::uint8_t*>(request.data.data()),
                             static_cast<std::uint32_t>(request.data.size() / 512));
  }
  reply.status = status(error);
  return reply;
}

mmcblk::FlushReply LinuxBlockDriver::flush(const mmcblk::FlushRequest& request) {
  request_start_ps_ = bus_.simulated_time_ps().value_or(0);
  mmcblk::FlushReply reply;
  int error = description_.node_size[node_index(request.node)] == 0 ? ENXIO : 0;
  if (error == 0 && cache_enabled_) {  // mmc_flush_cache()
    const CommandResult r = command(kCmdSwitch, switch_arg(ext_csd::kFlushCache, 1));
    if (r.error != 0 || (r.outcome.response.value & status::kSwitchError) != 0) {
      error = EIO;
    } else {
      bus_.wait_while_busy();
      error = poll_until_ready(true) == 0 ? 0 : EIO;
    }
  }
  reply.status = status(error);
  return reply;
}

int LinuxBlockDriver::shutdown() {
  const int switched = switch_partition(0);
  const int flushed = flush(mmcblk::FlushRequest{}).status.error;
  return switched != 0 ? switched : flushed;
}

mmcblk::Reply LinuxBlockDriver::handle(const mmcblk::Request& request) {
  struct Visitor {
    LinuxBlockDriver& d;
    mmcblk::Reply operator()(const mmcblk::IoctlRequest& q) const { return d.ioctl(q); }
    mmcblk::Reply operator()(const mmcblk::BlockReadRequest& q) const { return d.read(q); }
    mmcblk::Reply operator()(const mmcblk::BlockWriteRequest& q) const { return d.write(q); }
    mmcblk::Reply operator()(const mmcblk::FlushRequest& q) const { return d.flush(q); }
    mmcblk::Reply operator()(const mmcblk::DescribeRequest&) const { return d.describe(); }
  };
  return std::visit(Visitor{*this}, request);
}

mmcblk::ReplyStatus LinuxBlockDriver::status(int error) const {
  mmcblk::ReplyStatus s;
  s.error = error;
  if (const auto now = bus_.simulated_time_ps()) {
    s.flags |= mmcblk::ReplyStatus::kTimed;
    s.simulated_ps = *now - request_start_ps_;
  }
  return s;
}

}  // namespace emmcsim::mmc
