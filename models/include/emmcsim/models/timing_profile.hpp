// TimingProfile — what the card's internal work costs in time: NAND page reads and programs,
// erases, RPMB commits, CMD6 switches … Stored as JSON (durations as "50us", "1.5ms"); an
// embedded default describes a mid-range eMMC 5.1 part. The untimed card reports each command's
// work (mmc::WorkReport); EmmcDevice prices it with a profile and holds DAT0 busy, or delays the
// first data block, for that long.
//
// The profile must keep what the card's EXT_CSD promises (Linux derives its timeouts from those
// fields): validate() refuses a CMD6 slower than GENERIC_CMD6_TIME, a partition switch slower
// than PARTITION_SWITCH_TIME, an erase group slower than ERASE_TIMEOUT_MULT, and so on. Busy
// times beyond them belong to fault injection, on purpose.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

#include "emmcsim/mmc/command.hpp"
#include "emmcsim/mmc/device_config.hpp"

namespace emmcsim::models {

using Picoseconds = std::uint64_t;

constexpr Picoseconds kNanosecond = 1'000;
constexpr Picoseconds kMicrosecond = 1'000'000;
constexpr Picoseconds kMillisecond = 1'000'000'000;

// A bad profile: what() names the field, e.g.
// "timing profile: page_read: \"50\" has no unit (ps, ns, us, ms or s)".
class TimingProfileError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

struct TimingProfile {
  // Bytes per NAND page: sector reads and programs are priced in whole pages. A multiple of
  // 512, 512 bytes .. 64 KiB.
  std::uint64_t nand_page_size = 16 * 1024;
  Picoseconds page_read = 50 * kMicrosecond;          // a page into the page register (read access)
  Picoseconds page_program = 300 * kMicrosecond;      // a page programmed
  Picoseconds cached_sector_write = 0;                // a sector taken into the volatile cache
  Picoseconds erase_group_erase = 2 * kMillisecond;   // an erase group erased (erase, secure erase)
  Picoseconds sector_trim = 1 * kMicrosecond;         // a sector trimmed (trim, discard, secure trim)
  Picoseconds rpmb_commit = 1 * kMillisecond;         // an authenticated write made durable
  Picoseconds hmac_frame = 2 * kMicrosecond;          // 284 bytes through HMAC-SHA256
  Picoseconds ext_csd_write = 20 * kMicrosecond;      // a CMD6 write to the modes segment
  Picoseconds partition_switch = 100 * kMicrosecond;  // PARTITION_ACCESS changed (on top of the CMD6)
  Picoseconds cache_flush = 50 * kMicrosecond;        // FLUSH_CACHE's own part; dirty pages add programs
  Picoseconds sleep_transition = 1 * kMillisecond;    // CMD5 into or out of sleep
  Picoseconds nonvolatile_update = 5 * kMillisecond;  // password, write protection, boot config stored

  // At least 1, so that an unvalidated profile cannot divide by zero.
  std::uint64_t sectors_per_page() const { return nand_page_size < 512 ? 1 : nand_page_size / 512; }
  // NAND pages that sectors [first_sector, first_sector + count) fall in.
  std::uint64_t pages_touched(std::uint64_t first_sector, std::uint64_t count) const;
  // The time `work` takes. Sector reads and programs whose place the report does not give are
  // priced as consecutive sectors from a page boundary (ceil(n / sectors_per_page) pages);
  // EmmcDevice prices user-area transfers by where they fall instead (pages_touched).
  Picoseconds work_time(const mmc::WorkReport& work) const;

  friend bool operator==(const TimingProfile& a, const TimingProfile& b);
  friend bool operator!=(const TimingProfile& a, const TimingProfile& b) { return !(a == b); }
};

TimingProfile default_timing_profile();

// Throws TimingProfileError for a page size out of range, or a time beyond what the EXT_CSD
// built from `device` promises (see above).
void validate(const TimingProfile& profile, const mmc::DeviceConfig& device);

// JSON text → profile. Fields left out keep their default; unknown fields are an error.
// Durations are strings with a unit: "250ns", "50us" (or "50µs"), "1.5ms", "2s", "0"; the page
// size is bytes or a size string ("16KiB"). Not validated against a device (validate() that).
TimingProfile parse_timing_profile(const std::string& json_text);
// Profile → JSON text with every field; parse_timing_profile(to_json(p)) == p.
std::string to_json(const TimingProfile& profile);

// "50us", "1.5ms", "300ns", "0": the shortest exact text in the largest fitting unit.
std::string format_duration(Picoseconds duration);
// The inverse of format_duration; throws std::invalid_argument saying what is wrong.
Picoseconds parse_duration(const std::string& text);

}  // namespace emmcsim::models
