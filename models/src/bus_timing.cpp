// BusTiming (see bus_timing.hpp).
#include "emmcsim/models/bus_timing.hpp"

#include <fmt/format.h>

#include <stdexcept>

#include "emmcsim/mmc/command_table.hpp"
#include "emmcsim/mmc/protocol.hpp"

namespace emmcsim::models {
namespace {

// A wide product for cycles × 10^12 / f (cycles of a long transfer times 10^12 leaves 64 bits).
__extension__ using Wide = unsigned __int128;

constexpr std::uint64_t kPicosecondsPerSecond = 1'000'000'000'000ULL;

}  // namespace

const char* bus_speed_name(BusSpeed speed) {
  switch (speed) {
    case BusSpeed::identification: return "identification";
    case BusSpeed::legacy: return "legacy";
    case BusSpeed::high_speed: return "high speed";
    case BusSpeed::ddr52: return "DDR52";
    case BusSpeed::hs200: return "HS200";
    case BusSpeed::hs400: return "HS400";
  }
  return "unknown";
}

std::uint64_t BusMode::max_clock_hz() const {
  switch (speed) {
    case BusSpeed::identification: return 400'000;
    case BusSpeed::legacy: return 26'000'000;
    case BusSpeed::high_speed:
    case BusSpeed::ddr52: return 52'000'000;
    case BusSpeed::hs200:
    case BusSpeed::hs400: return 200'000'000;
  }
  return 0;
}

std::string BusMode::describe() const {
  return fmt::format("{} {}-bit{}", bus_speed_name(speed), data_width, ddr ? " DDR" : "");
}

BusMode bus_mode_of(const mmc::ExtCsd& ext_csd, bool identifying) {
  BusMode mode;
  if (identifying) return mode;  // 1-bit, open drain
  namespace ec = mmc::ext_csd;
  const std::uint8_t width = ext_csd[ec::kBusWidth];
  mode.data_width = ec::bus_width::data_lines(width);
  mode.ddr = ec::bus_width::double_data_rate(width);
  switch (ec::hs_timing::timing_of(ext_csd[ec::kHsTiming])) {
    case ec::hs_timing::kHs400: mode.speed = BusSpeed::hs400; break;
    case ec::hs_timing::kHs200: mode.speed = BusSpeed::hs200; break;
    case ec::hs_timing::kHighSpeed: mode.speed = mode.ddr ? BusSpeed::ddr52 : BusSpeed::high_speed; break;
    default: mode.speed = BusSpeed::legacy; break;
  }
  return mode;
}

BusTiming::BusTiming(BusMode mode, std::uint64_t clock_hz) : mode_(mode), clock_hz_(clock_hz) {
  if (clock_hz == 0) throw std::invalid_argument("bus timing: the bus clock is 0 Hz");
  if (mode.data_width != 1 && mode.data_width != 4 && mode.data_width != 8)
    throw std::invalid_argument(fmt::format("bus timing: {} data lines (1, 4 or 8)", mode.data_width));
}

std::uint64_t BusTiming::command_cycles(mmc::ResponseType response) const {
  switch (response) {
    case mmc::ResponseType::none: return kCommandCycles + kNcrMaxCycles + kNccCycles;
    case mmc::ResponseType::r2: return kCommandCycles + kNcrCycles + kLongResponseCycles + kNrcCycles;
    case mmc::ResponseType::r1:
    case mmc::ResponseType::r1b:
    case mmc::ResponseType::r3: return kCommandCycles + kNcrCycles + kShortResponseCycles + kNrcCycles;
  }
  return 0;
}

std::uint64_t BusTiming::command_cycles(std::uint8_t index, mmc::ResponseType response) const {
  const mmc::CommandSpec* spec = mmc::find_command(index);
  if (spec == nullptr) return command_cycles(response);  // not implemented: the host expects a response
  if (response == mmc::ResponseType::none && spec->response == mmc::ResponseType::none)
    return kCommandCycles + kNccCycles;
  if (response != mmc::ResponseType::none && spec->type == mmc::BusCommandType::bcr) {
    const std::uint32_t length = response == mmc::ResponseType::r2 ? kLongResponseCycles : kShortResponseCycles;
    return kCommandCycles + kNidCycles + length + kNrcCycles;
  }
  return command_cycles(response);
}

std::uint64_t BusTiming::data_block_cycles(std::size_t bytes) const {
  const std::uint64_t bits_per_cycle = std::uint64_t{mode_.data_width} * (mode_.ddr ? 2 : 1);
  const std::uint64_t data_cycles = (std::uint64_t{bytes} * 8 + bits_per_cycle - 1) / bits_per_cycle;
  return 1 + data_cycles + 16 + 1;
}

std::uint64_t BusTiming::write_block_cycles(std::size_t bytes) const {
  return kNwrCycles + data_block_cycles(bytes) + kNcrcCycles + kCrcStatusCycles;
}

std::uint64_t BusTiming::picoseconds(std::uint64_t cycles) const {
  const Wide scaled = Wide{cycles} * kPicosecondsPerSecond;
  return static_cast<std::uint64_t>((scaled + clock_hz_ - 1) / clock_hz_);
}

}  // namespace emmcsim::models
