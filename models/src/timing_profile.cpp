// TimingProfile (see timing_profile.hpp).
#include "emmcsim/models/timing_profile.hpp"

#include <fmt/format.h>

#include <limits>
#include <nlohmann/json.hpp>
#include <string_view>
#include <vector>

#include "emmcsim/mmc/registers.hpp"

namespace emmcsim::models {
namespace {

using Json = nlohmann::json;
using OrderedJson = nlohmann::ordered_json;
__extension__ using Wide = unsigned __int128;

constexpr std::uint64_t kSector = 512;
constexpr std::uint64_t kMaxPageSize = 64 * 1024;

struct DurationUnit {
  Picoseconds picoseconds;
  std::string_view suffix;
};
// Largest first: format_duration() takes the first that fits.
constexpr DurationUnit kDurationUnits[] = {
    {1'000 * kMillisecond, "s"}, {kMillisecond, "ms"}, {kMicrosecond, "us"}, {kNanosecond, "ns"}, {1, "ps"}};
constexpr std::string_view kMicroSign = "\xC2\xB5s";  // "µs"

[[noreturn]] void fail(std::string_view field, std::string_view problem) {
  throw TimingProfileError(fmt::format("timing profile: {}: {}", field, problem));
}

// Every duration field, in JSON order, with its member.
struct DurationField {
  const char* name;
  Picoseconds TimingProfile::*member;
};
constexpr DurationField kDurationFields[] = {
    {"page_read", &TimingProfile::page_read},
    {"page_program", &TimingProfile::page_program},
    {"cached_sector_write", &TimingProfile::cached_sector_write},
    {"erase_group_erase", &TimingProfile::erase_group_erase},
    {"sector_trim", &TimingProfile::sector_trim},
    {"rpmb_commit", &TimingProfile::rpmb_commit},
    {"hmac_frame", &TimingProfile::hmac_frame},
    {"ext_csd_write", &TimingProfile::ext_csd_write},
    {"partition_switch", &TimingProfile::partition_switch},
    {"cache_flush", &TimingProfile::cache_flush},
    {"sleep_transition", &TimingProfile::sleep_transition},
    {"nonvolatile_update", &TimingProfile::nonvolatile_update},
};
constexpr const char* kPageSizeField = "nand_page_size";

std::uint64_t ceil_div(std::uint64_t n, std::uint64_t d) { return n / d + (n % d != 0 ? 1 : 0); }

// `limit_ps` is what the EXT_CSD field `promise` allows; `what` is the time the profile gives.
void require_within(std::string_view field, Picoseconds what, std::string_view what_text, Picoseconds limit_ps,
                    std::string_view promise) {
  if (what <= limit_ps) return;
  fail(field, fmt::format("{} is longer than {} ({}), which the device's EXT_CSD promises; a host would time "
                          "out (exceeding it on purpose is fault injection's job)",
                          what_text, promise, format_duration(limit_ps)));
}

}  // namespace

std::uint64_t TimingProfile::pages_touched(std::uint64_t first_sector, std::uint64_t count) const {
  if (count == 0) return 0;
  const std::uint64_t per_page = sectors_per_page();
  return (first_sector + count - 1) / per_page - first_sector / per_page + 1;
}

Picoseconds TimingProfile::work_time(const mmc::WorkReport& w) const {
  const std::uint64_t per_page = sectors_per_page();
  Picoseconds t = 0;
  t += ceil_div(w.sectors_read, per_page) * page_read;
  t += ceil_div(w.sectors_programmed, per_page) * page_program;
  t += std::uint64_t{w.sectors_cached} * cached_sector_write;
  t += std::uint64_t{w.erase_groups} * erase_group_erase;
  t += std::uint64_t{w.sectors_trimmed} * sector_trim;
  t += std::uint64_t{w.hmac_frames} * hmac_frame;
  t += std::uint64_t{w.rpmb_commits} * rpmb_commit;
  t += std::uint64_t{w.ext_csd_writes} * ext_csd_write;
  t += std::uint64_t{w.partition_switches} * partition_switch;
  t += std::uint64_t{w.cache_flushes} * cache_flush;
  t += std::uint64_t{w.sleep_transitions} * sleep_transition;
  t += std::uint64_t{w.nonvolatile_updates} * nonvolatile_update;
  return t;
}

bool operator==(const TimingProfile& a, const TimingProfile& b) {
  if (a.nand_page_size != b.nand_page_size) return false;
  for (const DurationField& f : kDurationFields)
    if (a.*f.member != b.*f.member) return false;
  return true;
}

TimingProfile default_timing_profile() { return TimingProfile{}; }

namespace {
void check_page_size(std::uint64_t page_size) {
  if (page_size < kSector || page_size > kMaxPageSize || page_size % kSector != 0)
    fail(kPageSizeField, fmt::format("{} is not a multiple of 512 bytes from 512 bytes to 64 KiB", page_size));
}
}  // namespace

void validate(const TimingProfile& p, const mmc::DeviceConfig& device) {
  check_page_size(p.nand_page_size);
  // Sums of up to a dozen fields of at most ~10^19 ps cannot be trusted to 64 bits; every field
  // is kept below an hour, which no part needs.
  constexpr Picoseconds kHour = 3'600'000 * kMillisecond;
  for (const DurationField& f : kDurationFields)
    if (p.*f.member > kHour) fail(f.name, fmt::format("{} is longer than an hour", format_duration(p.*f.member)));

  const mmc::TimeoutConfig& limits = device.timeouts;
  const auto ms = [](std::uint64_t milliseconds) { return milliseconds * kMillisecond; };
  require_within("page_read", p.page_read, format_duration(p.page_read), mmc::csd::kReadTimeoutNs * kNanosecond,
                 "the CSD's read timeout, 10 x TAAC");
  require_within("page_program", p.page_program, format_duration(p.page_program),
                 mmc::csd::kWriteTimeoutNs * kNanosecond, "the CSD's write timeout, 10 x TAAC x 2^R2W_FACTOR");
  require_within("ext_csd_write", p.ext_csd_write, format_duration(p.ext_csd_write), ms(limits.generic_cmd6_time_ms),
                 "GENERIC_CMD6_TIME");
  require_within("partition_switch", p.ext_csd_write + p.partition_switch,
                 fmt::format("{} with the CMD6 write ({} + {})", format_duration(p.ext_csd_write + p.partition_switch),
                             format_duration(p.ext_csd_write), format_duration(p.partition_switch)),
                 ms(limits.partition_switch_time_ms), "PARTITION_SWITCH_TIME");
  require_within("erase_group_erase", p.erase_group_erase, format_duration(p.erase_group_erase),
                 ms(limits.erase_timeout_ms), "ERASE_TIMEOUT_MULT per erase group");
  const std::uint64_t sectors_per_group = device.erase_group_size / kSector;
  require_within("sector_trim", Picoseconds{p.sector_trim * sectors_per_group},
                 fmt::format("{} for an erase group of {} sectors", format_duration(p.sector_trim * sectors_per_group),
                             sectors_per_group),
                 ms(limits.trim_timeout_ms), "TRIM_MULT per erase group");
  const Picoseconds sleep_limit = (Picoseconds{100} * kNanosecond) << limits.sleep_awake_timeout_exp;
  require_within("sleep_transition", p.sleep_transition, format_duration(p.sleep_transition), sleep_limit,
                 "S_A_TIMEOUT");
}

TimingProfile parse_timing_profile(const std::string& json_text) {
  Json doc;
  try {
    doc = Json::parse(json_text);
  } catch (const Json::exception& e) {  // parse_error, or out_of_range for a number like 1e999
    throw TimingProfileError(fmt::format("timing profile: not valid JSON: {}", e.what()));
  }
  if (!doc.is_object()) fail("top level", fmt::format("{} is not an object", doc.type_name()));
  TimingProfile p;
  for (auto it = doc.begin(); it != doc.end(); ++it) {
    const std::string& key = it.key();
    const Json& value = it.value();
    if (key == kPageSizeField) {
      if (value.is_number_unsigned()) {
        p.nand_page_size = value.get<std::uint64_t>();
      } else if (value.is_string()) {
        try {
          p.nand_page_size = mmc::parse_size(value.get<std::string>());
        } catch (const std::invalid_argument& e) {
          fail(key, e.what());
        }
      } else {
        fail(key, fmt::format("{} is not a size (bytes, or a string such as \"16KiB\")", value.dump()));
      }
      check_page_size(p.nand_page_size);  // a page of 0 bytes would divide by zero before validate()
      continue;
    }
    const DurationField* field = nullptr;
    for (const DurationField& f : kDurationFields)
      if (key == f.name) field = &f;
    if (field == nullptr) {
      std::string known = kPageSizeField;
      for (const DurationField& f : kDurationFields) known += std::string(", ") + f.name;
      fail(key, fmt::format("unknown field (the fields are {})", known));
    }
    if (!value.is_string()) {
      fail(key, fmt::format("{} is not a duration (a string such as \"50us\")", value.dump()));
    }
    try {
      p.*field->member = parse_duration(value.get<std::string>());
    } catch (const std::invalid_argument& e) {
      fail(key, e.what());
    }
  }
  return p;
}

std::string to_json(const TimingProfile& p) {
  OrderedJson doc;
  if (p.nand_page_size % 1024 == 0)
    doc[kPageSizeField] = fmt::format("{}KiB", p.nand_page_size / 1024);
  else
    doc[kPageSizeField] = p.nand_page_size;
  for (const DurationField& f : kDurationFields) doc[f.name] = format_duration(p.*f.member);
  return doc.dump(2) + "\n";
}

std::string format_duration(Picoseconds d) {
  if (d == 0) return "0";
  for (const DurationUnit& u : kDurationUnits) {
    if (d < u.picoseconds) continue;
    const Picoseconds whole = d / u.picoseconds;
    const Picoseconds rest = d % u.picoseconds;
    if (rest == 0) return fmt::format("{}{}", whole, u.suffix);
    // Up to three decimals when they are exact ("1.5ms"); otherwise a smaller unit.
    const Picoseconds milli = u.picoseconds / 1000;
    if (milli != 0 && rest % milli == 0) {
      std::string fraction = fmt::format("{:03}", rest / milli);
      while (fraction.back() == '0') fraction.pop_back();
      return fmt::format("{}.{}{}", whole, fraction, u.suffix);
    }
  }
  return fmt::format("{}ps", d);
}

Picoseconds parse_duration(const std::string& text) {
  const std::string hint = "a duration is a number with ps, ns, us, ms or s, such as \"50us\" or \"1.5ms\"";
  if (text == "0") return 0;
  std::size_t pos = 0;
  Wide mantissa = 0;
  unsigned fraction_digits = 0;
  bool digits = false, point = false;
  for (; pos < text.size(); ++pos) {
    const char c = text[pos];
    if (c >= '0' && c <= '9') {
      mantissa = mantissa * 10 + static_cast<unsigned>(c - '0');
      digits = true;
      if (point) ++fraction_digits;
      if (mantissa > std::numeric_limits<std::uint64_t>::max() || fraction_digits > 12)
        throw std::invalid_argument(fmt::format("\"{}\" has too many digits", text));
    } else if (c == '.' && !point) {
      point = true;
    } else {
      break;
    }
  }
  if (!digits) throw std::invalid_argument(fmt::format("\"{}\" is not a duration ({})", text, hint));
  while (pos < text.size() && text[pos] == ' ') ++pos;
  const std::string_view unit = std::string_view(text).substr(pos);
  if (unit.empty()) throw std::invalid_argument(fmt::format("\"{}\" has no unit ({})", text, hint));
  Picoseconds unit_ps = 0;
  for (const DurationUnit& u : kDurationUnits)
    if (unit == u.suffix) unit_ps = u.picoseconds;
  if (unit == kMicroSign) unit_ps = kMicrosecond;
  if (unit_ps == 0) throw std::invalid_argument(fmt::format("\"{}\" has an unknown unit ({})", text, hint));
  Wide scale = 1;
  for (unsigned i = 0; i < fraction_digits; ++i) scale *= 10;
  const Wide scaled = mantissa * unit_ps;
  if (scaled % scale != 0)
    throw std::invalid_argument(fmt::format("\"{}\" is not a whole number of picoseconds", text));
  const Wide ps = scaled / scale;
  if (ps > std::numeric_limits<Picoseconds>::max())
    throw std::invalid_argument(fmt::format("\"{}\" is too long", text));
  return static_cast<Picoseconds>(ps);
}

}  // namespace emmcsim::models
