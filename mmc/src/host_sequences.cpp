// Host sequences over a HostBus (see host_sequences.hpp).
#include "emmcsim/mmc/host_sequences.hpp"

#include <fmt/format.h>

#include "emmcsim/mmc/card_status.hpp"
#include "emmcsim/mmc/command_table.hpp"

namespace emmcsim::mmc {
namespace {

constexpr std::uint32_t kHostOcr = ocr::kSectorMode | ocr::kVoltage270_360 | ocr::kVoltage170_195;
constexpr int kMaxOpCondPolls = 10000;

std::string describe(const Command& c, const CommandOutcome& o) {
  if (o.illegal) return fmt::format("CMD{} (arg {:#010x}) was illegal in this state", c.index, c.arg);
  return fmt::format("CMD{} (arg {:#010x}) answered {}", c.index, c.arg, describe_status(o.response.value));
}

}  // namespace

std::string describe_exchange(const Command& c, const CommandOutcome& o) {
  const CommandSpec* spec = find_command(c.index);
  std::string text = fmt::format("CMD{:<2} {:<21} arg {:#010x} -> ", c.index, spec ? spec->name : "(unknown)", c.arg);
  switch (o.response.type) {
    case ResponseType::none: text += o.illegal ? "no response (illegal)" : "no response"; break;
    case ResponseType::r1: text += "R1 " + describe_status(o.response.value); break;
    case ResponseType::r1b: text += "R1b " + describe_status(o.response.value); break;
    case ResponseType::r2: text += "R2"; break;
    case ResponseType::r3: text += fmt::format("R3 OCR {:#010x}", o.response.value); break;
  }
  if (o.data.direction != DataDirection::none)
    text += fmt::format(", {} {} block(s) of {} bytes", o.data.direction == DataDirection::to_host ? "reads" : "takes",
                        o.data.blocks, o.data.block_size);
  if (!o.work.empty()) text += " [" + describe_work(o.work) + "]";
  return text;
}

void identify_and_select(HostBus& bus, std::uint16_t rca) {
  auto run = [&bus](std::uint8_t index, std::uint32_t arg, ResponseType expected) {
    const Command c{index, arg};
    const CommandOutcome o = bus.execute(c);
    if (o.response.type != expected || ((expected == ResponseType::r1 || expected == ResponseType::r1b) &&
                                        (o.response.value & status::kAnyError) != 0))
      throw HostSequenceError("card bring-up: " + describe(c, o));
    return o;
  };
  run(0, 0, ResponseType::none);
  bool ready = false;
  for (int i = 0; i < kMaxOpCondPolls && !ready; ++i)
    ready = (run(1, kHostOcr, ResponseType::r3).response.value & ocr::kPowerUpDone) != 0;
  if (!ready) throw HostSequenceError("card bring-up: the OCR stayed busy");
  run(2, 0, ResponseType::r2);
  run(3, std::uint32_t{rca} << 16, ResponseType::r1);
  run(7, std::uint32_t{rca} << 16, ResponseType::r1);  // R1 from stby (R1b only from dis)
  bus.wait_while_busy();
}

ExtCsd read_ext_csd(HostBus& bus) {
  const Command c{8, 0};
  const CommandOutcome o = bus.execute(c);
  if (o.illegal || o.response.type == ResponseType::none || (o.response.value & status::kAnyError) != 0)
    throw HostSequenceError("EXT_CSD read: " + describe(c, o));
  ExtCsd ext_csd{};
  if (o.data.direction != DataDirection::to_host || o.data.block_size != ext_csd.size() ||
      !bus.read_blocks(ext_csd.data(), ext_csd.size(), 1).ok)
    throw HostSequenceError("EXT_CSD read: CMD8 sent no EXT_CSD");
  return ext_csd;
}

CommandOutcome RpmbBusChannel::command(std::uint8_t index, std::uint32_t arg) {
  const Command c{index, arg};
  CommandOutcome o = bus_.execute(c);
  work_ += o.work;
  if (trace_) trace_(describe_exchange(c, o));
  if (o.illegal || (o.response.value & status::kAnyError) != 0)
    throw HostSequenceError("RPMB access: " + describe(c, o));
  if (o.busy) bus_.wait_while_busy();
  return o;
}

void RpmbBusChannel::wait_for_tran() {
  // mmc_poll_for_busy(): CMD13 until the card is back in tran and ready for data.
  for (int i = 0; i < kMaxOpCondPolls; ++i) {
    const std::uint32_t status = command(13, std::uint32_t{rca_} << 16).response.value;
    if (status::current_state(status) == static_cast<std::uint32_t>(CardState::tran) &&
        (status & status::kReadyForData) != 0)
      return;
    bus_.wait_while_busy();
  }
  throw HostSequenceError("RPMB access: the card stayed busy");
}

void RpmbBusChannel::select_partition(std::uint8_t access) {
  const std::uint8_t value = static_cast<std::uint8_t>((partition_config_ & ~7u) | access);
  command(6, (3u << 24) | (std::uint32_t{ext_csd::kPartitionConfig} << 16) | (std::uint32_t{value} << 8));
  partition_config_ = value;
  wait_for_tran();
}

void RpmbBusChannel::send(const rpmb::Frame* frames, std::size_t count, bool reliable_write) {
  select_partition(3);
  try {
    command(23, static_cast<std::uint32_t>(count) | (reliable_write ? 1u << 31 : 0));
    command(25, 0);
    for (std::size_t i = 0; i < count; ++i) {
      const BlockOutcome b = bus_.write_blocks(frames[i].bytes(), rpmb::kFrameSize, 1);
      work_ += b.work;
      if (trace_ && b.transfer_complete)
        trace_(fmt::format("       {} frame(s) written [{}]", count, describe_work(b.work)));
      if (!b.ok) throw HostSequenceError(fmt::format("RPMB access: frame {} of {} was refused", i + 1, count));
    }
    wait_for_tran();
  } catch (...) {
    select_partition(0);
    throw;
  }
  select_partition(0);
}

void RpmbBusChannel::receive(rpmb::Frame* frames, std::size_t count) {
  select_partition(3);
  try {
    command(23, static_cast<std::uint32_t>(count));
    command(18, 0);
    for (std::size_t i = 0; i < count; ++i) {
      const BlockOutcome b = bus_.read_blocks(frames[i].bytes(), rpmb::kFrameSize, 1);
      work_ += b.work;
      if (trace_ && b.transfer_complete) trace_(fmt::format("       {} frame(s) read", count));
      if (!b.ok) throw HostSequenceError(fmt::format("RPMB access: frame {} of {} was not sent", i + 1, count));
    }
  } catch (...) {
    select_partition(0);
    throw;
  }
  select_partition(0);
}

}  // namespace emmcsim::mmc
