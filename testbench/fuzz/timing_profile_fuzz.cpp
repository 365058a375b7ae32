// libFuzzer target: the timing profile's JSON reader and the duration parser.
//
// The input is tried as a whole JSON document (parse_timing_profile) and, up to its first
// newline, as one duration (parse_duration). Invariants (__builtin_trap on violation):
//   - the only exception either throws is the documented one (TimingProfileError /
//     std::invalid_argument);
//   - a profile that parses survives to_json and parses back equal; validate() against the
//     default device either passes or throws TimingProfileError;
//   - a duration that parses formats back to text that parses to the same duration.
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "emmcsim/mmc/device_config.hpp"
#include "emmcsim/models/timing_profile.hpp"

namespace {

using emmcsim::models::TimingProfile;
using emmcsim::models::TimingProfileError;

void check_profile(const std::string& text) {
  TimingProfile p;
  try {
    p = emmcsim::models::parse_timing_profile(text);
  } catch (const TimingProfileError&) {
    return;
  }
  TimingProfile again;
  try {
    again = emmcsim::models::parse_timing_profile(emmcsim::models::to_json(p));
  } catch (const TimingProfileError&) {
    __builtin_trap();  // what to_json wrote must read back
  }
  if (again != p) __builtin_trap();
  static const emmcsim::mmc::DeviceConfig device = emmcsim::mmc::default_device_config();
  try {
    emmcsim::models::validate(p, device);
  } catch (const TimingProfileError&) {
  }
  (void)p.work_time(emmcsim::mmc::WorkReport{});
}

void check_duration(const std::string& text) {
  emmcsim::models::Picoseconds d = 0;
  try {
    d = emmcsim::models::parse_duration(text);
  } catch (const std::invalid_argument&) {
    return;
  }
  if (emmcsim::models::parse_duration(emmcsim::models::format_duration(d)) != d) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  check_profile(text);
  check_duration(text.substr(0, text.find('\n')));
  return 0;
}
extern "C" int sc_main(int, char**) { return 0; }
