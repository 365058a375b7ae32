#include "emmcsim/mmc/device_config.hpp"

#include <fmt/format.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

namespace emmcsim::mmc {
namespace {

using Json = nlohmann::json;
using OrderedJson = nlohmann::ordered_json;  // keeps to_json() in the order of the structs

constexpr std::uint64_t kKiB = 1ULL << 10;
constexpr std::uint64_t kMiB = 1ULL << 20;
constexpr std::uint64_t kGiB = 1ULL << 30;
constexpr std::uint64_t kTiB = 1ULL << 40;

// SEC_COUNT (and a sector-mode command argument) counts 512-byte sectors in 32 bits.
constexpr std::uint64_t kSectorAddressLimit = 1ULL << 41;  // 2 TiB, exclusive
// A byte-addressed device's 32-bit command argument reaches 4 GiB in any partition.
constexpr std::uint64_t kByteAddressLimit = 1ULL << 32;  // inclusive: last byte 2^32 - 1
constexpr std::uint64_t kUserCapacityUnit = 512 * kKiB;
constexpr std::uint64_t kMinUserCapacity = 1 * kMiB;
constexpr std::uint64_t kBootRpmbUnit = 128 * kKiB;  // BOOT_SIZE_MULT, RPMB_SIZE_MULT
constexpr std::uint64_t kMaxBootMult = 255;
constexpr std::uint64_t kMaxRpmbMult = 128;
constexpr std::size_t kMaxGeneralPurposePartitions = 4;
constexpr std::uint64_t kEraseGroupUnit = 512 * kKiB;
constexpr std::uint64_t kMaxEraseGroupMult = 255;
constexpr std::uint64_t kCacheUnit = kKiB;
constexpr std::uint64_t kMaxCacheKiB = 0xFFFFFFFF / 8;  // CACHE_SIZE: 4 bytes of kilobits
constexpr unsigned kMaxCommandQueueDepth = 32;
constexpr unsigned kMaxTimeoutMult = 255;   // every timeout field is one byte
constexpr unsigned kMaxSleepAwakeExp = 23;  // S_A_TIMEOUT 0x17
constexpr std::uint32_t kMaxOcrBusyPolls = 1000;
constexpr std::uint16_t kFirstManufacturingYear = 2013;  // MDT year 0 when EXT_CSD_REV > 4
constexpr std::uint16_t kLastManufacturingYear = 2028;
constexpr std::size_t kMaxProductNameLength = 6;

struct SizeUnit {
  std::uint64_t bytes;
  const char* suffix;
};
// Largest first: to_json() writes a size in the largest unit that divides it exactly.
constexpr SizeUnit kBinaryUnits[] = {{kTiB, "TiB"}, {kGiB, "GiB"}, {kMiB, "MiB"}, {kKiB, "KiB"}};

}  // namespace

// "8GiB", "512KiB", "4M", "4 MiB", "123": a whole number with an optional binary unit.
std::uint64_t parse_size(const std::string& text) {
  constexpr std::uint64_t kMax = std::numeric_limits<std::uint64_t>::max();
  const std::string units_hint = "a size is bytes or a whole number with K/KiB, M/MiB, G/GiB or T/TiB";
  if (!text.empty() && text[0] == '-') throw std::invalid_argument(fmt::format("\"{}\" is negative", text));
  std::size_t pos = 0;
  std::uint64_t number = 0;
  while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
    const auto digit = static_cast<std::uint64_t>(text[pos] - '0');
    if (number > (kMax - digit) / 10) throw std::invalid_argument(fmt::format("\"{}\" is too large", text));
    number = number * 10 + digit;
    ++pos;
  }
  if (pos == 0) throw std::invalid_argument(fmt::format("\"{}\" is not a size ({})", text, units_hint));
  if (pos < text.size() && (text[pos] == '.' || text[pos] == ',')) {
    throw std::invalid_argument(fmt::format("\"{}\" is not a whole number ({})", text, units_hint));
  }
  const std::size_t digits_end = pos;
  while (pos < text.size() && text[pos] == ' ') ++pos;
  const std::string_view unit = std::string_view(text).substr(pos);
  std::uint64_t multiplier = 0;
  if (unit.empty() && pos == digits_end) {
    multiplier = 1;
  } else {
    for (const SizeUnit& candidate : kBinaryUnits) {
      if (unit == candidate.suffix || unit == std::string_view(candidate.suffix, 1)) {
        multiplier = candidate.bytes;
      }
    }
  }
  if (multiplier == 0) throw std::invalid_argument(fmt::format("\"{}\" has an unknown unit ({})", text, units_hint));
  if (number > kMax / multiplier) throw std::invalid_argument(fmt::format("\"{}\" is too large", text));
  return number * multiplier;
}

namespace {

[[noreturn]] void fail(std::string_view field, std::string_view problem) {
  throw ConfigError(fmt::format("device config: {}: {}", field, problem));
}

// ---------------------------------------------------------------------------------------------
// validate()

void require_multiple(std::string_view field, std::uint64_t bytes, std::uint64_t unit) {
  if (bytes % unit != 0) fail(field, fmt::format("{} is not a multiple of {}", bytes, describe_size(unit)));
}

void require_range(std::string_view field, std::uint64_t value, std::uint64_t min, std::uint64_t max) {
  if (value < min || value > max) fail(field, fmt::format("{} is outside {}..{}", value, min, max));
}

void require_size_range(std::string_view field, std::uint64_t bytes, std::uint64_t min, std::uint64_t max) {
  if (bytes < min || bytes > max) {
    fail(field, fmt::format("{} is outside {} .. {}", bytes, describe_size(min), describe_size(max)));
  }
}

// A timeout field holds ms / unit_ms in one byte. Zero means "not defined" and is accepted only
// where the device does without the operation.
void require_timeout(std::string_view field, std::uint64_t ms, std::uint64_t unit_ms, std::string_view unit_text,
                     bool zero_allowed) {
  if (ms == 0) {
    if (zero_allowed) return;
    fail(field, "must not be 0");
  }
  if (ms % unit_ms != 0) fail(field, fmt::format("{} ms is not a multiple of {}", ms, unit_text));
  if (ms / unit_ms > kMaxTimeoutMult) {
    fail(field, fmt::format("{} ms exceeds {} × {}", ms, kMaxTimeoutMult, unit_text));
  }
}

void validate_cid(const CidConfig& cid) {
  const std::string& name = cid.product_name;
  if (name.empty() || name.size() > kMaxProductNameLength) {
    fail("cid.product_name", fmt::format("has {} characters, must have 1..{}", name.size(), kMaxProductNameLength));
  }
  for (std::size_t i = 0; i < name.size(); ++i) {
    const auto c = static_cast<unsigned char>(name[i]);
    if (c < 0x20 || c > 0x7E) {
      fail("cid.product_name", fmt::format("character {} (0x{:02X}) is not printable ASCII", i, c));
    }
  }
  require_range("cid.manufacturing_month", cid.manufacturing_month, 1, 12);
  require_range("cid.manufacturing_year", cid.manufacturing_year, kFirstManufacturingYear, kLastManufacturingYear);
  require_range("cid.device_type", cid.device_type, 0, 2);
}

void validate_bus_modes(const BusModes& modes) {
  if (!modes.hs26) fail("bus_modes.hs26", "must be true (every eMMC supports 26 MHz)");
  // DDR52, and HS400 on its way up, are entered from high-speed timing.
  if (modes.ddr52 && !modes.hs52) fail("bus_modes.ddr52", "needs bus_modes.hs52");
  if (modes.hs200 && !modes.hs52) fail("bus_modes.hs200", "needs bus_modes.hs52");
  if (modes.hs400 && !modes.hs200) fail("bus_modes.hs400", "needs bus_modes.hs200");
  if (modes.enhanced_strobe && !modes.hs400) fail("bus_modes.enhanced_strobe", "needs bus_modes.hs400");
}

void validate_timeouts(const TimeoutConfig& t, bool secure_erase_trim) {
  require_timeout("timeouts.generic_cmd6_time_ms", t.generic_cmd6_time_ms, 10, "10 ms", false);
  require_timeout("timeouts.partition_switch_time_ms", t.partition_switch_time_ms, 10, "10 ms", false);
  // 0: no HPI, which the device does not offer (HPI_FEATURES 0).
  require_timeout("timeouts.out_of_interrupt_time_ms", t.out_of_interrupt_time_ms, 10, "10 ms", true);
  require_timeout("timeouts.power_off_long_time_ms", t.power_off_long_time_ms, 10, "10 ms", false);
  require_timeout("timeouts.erase_timeout_ms", t.erase_timeout_ms, 300, "300 ms", false);
  require_timeout("timeouts.trim_timeout_ms", t.trim_timeout_ms, 300, "300 ms", false);
  // SEC_ERASE_MULT and SEC_TRIM_MULT multiply the erase timeout (300 ms × ERASE_TIMEOUT_MULT).
  const std::string erase_unit = fmt::format("timeouts.erase_timeout_ms ({} ms)", t.erase_timeout_ms);
  require_timeout("timeouts.secure_erase_timeout_ms", t.secure_erase_timeout_ms, t.erase_timeout_ms, erase_unit,
                  !secure_erase_trim);
  require_timeout("timeouts.secure_trim_timeout_ms", t.secure_trim_timeout_ms, t.erase_timeout_ms, erase_unit,
                  !secure_erase_trim);
  require_range("timeouts.sleep_awake_timeout_exp", t.sleep_awake_timeout_exp, 1, kMaxSleepAwakeExp);
}

// ---------------------------------------------------------------------------------------------
// JSON → configuration

std::string type_problem(std::string_view expected, const Json& value) {
  return fmt::format("expected {}, got {}", expected, value.type_name());
}

bool read_bool(const Json& value, const std::string& field) {
  if (!value.is_boolean()) fail(field, type_problem("true or false", value));
  return value.get<bool>();
}

template <class Unsigned>
Unsigned read_unsigned(const Json& value, const std::string& field) {
  constexpr std::uint64_t kMax = std::numeric_limits<Unsigned>::max();
  std::uint64_t number = 0;
  if (value.is_number_unsigned()) {
    number = value.get<std::uint64_t>();
  } else if (value.is_number_integer()) {
    const auto signed_number = value.get<std::int64_t>();
    if (signed_number < 0) fail(field, fmt::format("{} is negative", signed_number));
    number = static_cast<std::uint64_t>(signed_number);
  } else if (value.is_number_float()) {
    // nlohmann stores fractions, exponents and integers beyond 64 bits as floating point.
    const double d = value.get<double>();
    if (d < 0) fail(field, fmt::format("{} is negative", value.dump()));
    if (std::floor(d) != d) fail(field, fmt::format("{} is not a whole number", value.dump()));
    if (d >= 18446744073709551616.0) fail(field, fmt::format("{} is too large", value.dump()));
    fail(field, fmt::format("{} is not a plain integer", value.dump()));
  } else {
    fail(field, type_problem("a number", value));
  }
  if (number > kMax) fail(field, fmt::format("{} is too large (at most {})", number, kMax));
  return static_cast<Unsigned>(number);
}

std::uint64_t parse_size_text(const std::string& field, const std::string& text) {
  try {
    return parse_size(text);
  } catch (const std::invalid_argument& e) {
    fail(field, e.what());
  }
}

std::uint64_t read_size(const Json& value, const std::string& field) {
  if (value.is_string()) return parse_size_text(field, value.get<std::string>());
  if (value.is_number()) return read_unsigned<std::uint64_t>(value, field);
  fail(field, type_problem("a size (a number of bytes or a string such as \"8GiB\")", value));
}

// "1.0" → 0x10: PRV holds the major revision in [7:4] and the minor one in [3:0].
std::uint8_t read_product_revision(const Json& value, const std::string& field) {
  if (!value.is_string()) fail(field, type_problem("a string \"major.minor\"", value));
  const std::string text = value.get<std::string>();
  const std::size_t dot = text.find('.');
  auto parse_part = [&](std::string_view part) {
    if (part.empty() || part.size() > 2) return -1;
    int number = 0;
    for (char c : part) {
      if (c < '0' || c > '9') return -1;
      number = number * 10 + (c - '0');
    }
    return number <= 15 ? number : -1;
  };
  const int major = dot == std::string::npos ? -1 : parse_part(std::string_view(text).substr(0, dot));
  const int minor = dot == std::string::npos ? -1 : parse_part(std::string_view(text).substr(dot + 1));
  if (major < 0 || minor < 0) {
    fail(field, fmt::format("\"{}\" is not a revision \"major.minor\" with each part 0..15", text));
  }
  return static_cast<std::uint8_t>(major << 4 | minor);
}

// Reads the members of one JSON object; every member must be one the reader asked for.
class ObjectReader {
 public:
  ObjectReader(const Json& object, std::string path) : object_(object), path_(std::move(path)) {
    if (!object_.is_object()) fail(path_.empty() ? "top level" : path_, type_problem("an object", object_));
  }

  void size(const char* key, std::uint64_t& out) {
    if (const Json* value = find(key)) out = read_size(*value, field_path(key));
  }
  void flag(const char* key, bool& out) {
    if (const Json* value = find(key)) out = read_bool(*value, field_path(key));
  }
  template <class Unsigned>
  void number(const char* key, Unsigned& out) {
    if (const Json* value = find(key)) out = read_unsigned<Unsigned>(*value, field_path(key));
  }
  void text(const char* key, std::string& out) {
    if (const Json* value = find(key)) {
      if (!value->is_string()) fail(field_path(key), type_problem("a string", *value));
      out = value->get<std::string>();
    }
  }
  // read(value, field path) for members of another shape.
  template <class Read>
  void custom(const char* key, Read&& read) {
    if (const Json* value = find(key)) read(*value, field_path(key));
  }

  void reject_unknown_members() const {
    for (const auto& member : object_.items()) {
      if (claimed_.count(member.key()) == 0) fail(field_path(member.key()), "unknown field");
    }
  }

 private:
  const Json* find(const char* key) {
    claimed_.insert(key);
    const auto it = object_.find(key);
    return it == object_.end() ? nullptr : &*it;
  }
  std::string field_path(std::string_view key) const {
    return path_.empty() ? std::string(key) : fmt::format("{}.{}", path_, key);
  }

  const Json& object_;
  std::string path_;
  std::set<std::string, std::less<>> claimed_;
};

// nlohmann keeps the last of two equal keys; a config with both would silently lose one.
Json parse_json_rejecting_duplicate_keys(const std::string& text) {
  struct OpenObject {
    std::set<std::string> keys;
    std::string last_key;
  };
  std::vector<OpenObject> open_objects;
  auto check_key = [&open_objects](int /*depth*/, Json::parse_event_t event, Json& parsed) {
    if (event == Json::parse_event_t::object_start) {
      open_objects.emplace_back();
    } else if (event == Json::parse_event_t::object_end) {
      open_objects.pop_back();
    } else if (event == Json::parse_event_t::key && !open_objects.empty()) {
      std::string key = parsed.get<std::string>();
      std::string path;
      for (std::size_t i = 0; i + 1 < open_objects.size(); ++i) path += open_objects[i].last_key + ".";
      path += key;
      if (!open_objects.back().keys.insert(key).second) fail(path, "appears more than once");
      open_objects.back().last_key = std::move(key);
    }
    return true;
  };
  try {
    return Json::parse(text, check_key);
  } catch (const Json::exception& e) {
    throw ConfigError(fmt::format("device config: {}", e.what()));
  }
}

// ---------------------------------------------------------------------------------------------
// configuration → JSON

OrderedJson size_to_json(std::uint64_t bytes) {
  if (bytes != 0) {
    for (const SizeUnit& unit : kBinaryUnits) {
      if (bytes % unit.bytes == 0) return fmt::format("{}{}", bytes / unit.bytes, unit.suffix);
    }
  }
  return bytes;
}

}  // namespace

bool operator==(const CidConfig& a, const CidConfig& b) {
  return std::tie(a.manufacturer_id, a.oem_id, a.product_name, a.product_revision, a.serial, a.manufacturing_month,
                  a.manufacturing_year, a.device_type) == std::tie(b.manufacturer_id, b.oem_id, b.product_name,
                                                                   b.product_revision, b.serial, b.manufacturing_month,
                                                                   b.manufacturing_year, b.device_type);
}

bool operator==(const BusModes& a, const BusModes& b) {
  return std::tie(a.hs26, a.hs52, a.ddr52, a.hs200, a.hs400, a.enhanced_strobe) ==
         std::tie(b.hs26, b.hs52, b.ddr52, b.hs200, b.hs400, b.enhanced_strobe);
}

bool operator==(const TimeoutConfig& a, const TimeoutConfig& b) {
  return std::tie(a.generic_cmd6_time_ms, a.partition_switch_time_ms, a.out_of_interrupt_time_ms,
                  a.power_off_long_time_ms, a.erase_timeout_ms, a.trim_timeout_ms, a.secure_erase_timeout_ms,
                  a.secure_trim_timeout_ms, a.sleep_awake_timeout_exp) ==
         std::tie(b.generic_cmd6_time_ms, b.partition_switch_time_ms, b.out_of_interrupt_time_ms,
                  b.power_off_long_time_ms, b.erase_timeout_ms, b.trim_timeout_ms, b.secure_erase_timeout_ms,
                  b.secure_trim_timeout_ms, b.sleep_awake_timeout_exp);
}

bool operator==(const DeviceConfig& a, const DeviceConfig& b) {
  return std::tie(a.user_capacity, a.boot_partition_size, a.rpmb_size, a.general_purpose_partitions, a.cid, a.bus_modes,
                  a.reliable_write_sectors, a.en_rpmb_rel_wr, a.cache_size, a.erase_group_size,
                  a.write_protect_group_size, a.secure_erase_trim, a.command_queue_depth, a.timeouts,
                  a.ocr_busy_polls) ==
         std::tie(b.user_capacity, b.boot_partition_size, b.rpmb_size, b.general_purpose_partitions, b.cid, b.bus_modes,
                  b.reliable_write_sectors, b.en_rpmb_rel_wr, b.cache_size, b.erase_group_size,
                  b.write_protect_group_size, b.secure_erase_trim, b.command_queue_depth, b.timeouts, b.ocr_busy_polls);
}

DeviceConfig default_device_config() { return DeviceConfig{}; }

void validate(const DeviceConfig& config) {
  require_multiple("user_capacity", config.user_capacity, kUserCapacityUnit);
  if (config.user_capacity < kMinUserCapacity) {
    fail("user_capacity", fmt::format("{} is below {}", config.user_capacity, describe_size(kMinUserCapacity)));
  }
  if (config.user_capacity >= kSectorAddressLimit) {
    fail("user_capacity",
         fmt::format("{} is not below 2 TiB (SEC_COUNT holds 32 bits of sectors)", config.user_capacity));
  }

  require_multiple("boot_partition_size", config.boot_partition_size, kBootRpmbUnit);
  require_size_range("boot_partition_size", config.boot_partition_size, 0, kMaxBootMult * kBootRpmbUnit);
  require_multiple("rpmb_size", config.rpmb_size, kBootRpmbUnit);
  require_size_range("rpmb_size", config.rpmb_size, kBootRpmbUnit, kMaxRpmbMult * kBootRpmbUnit);

  // The GP sizes are counted in write-protect groups, so check those fields first.
  require_multiple("erase_group_size", config.erase_group_size, kEraseGroupUnit);
  require_size_range("erase_group_size", config.erase_group_size, kEraseGroupUnit,
                     kMaxEraseGroupMult * kEraseGroupUnit);
  require_range("write_protect_group_size", config.write_protect_group_size, 1, 255);

  const auto& gps = config.general_purpose_partitions;
  if (gps.size() > kMaxGeneralPurposePartitions) {
    fail("general_purpose_partitions",
         fmt::format("{} partitions, at most {}", gps.size(), kMaxGeneralPurposePartitions));
  }
  // Below 2 TiB, GP_SIZE_MULT (24 bits of groups of at least 512 KiB) cannot overflow.
  const std::uint64_t wp_group = config.write_protect_group_bytes();
  for (std::size_t i = 0; i < gps.size(); ++i) {
    const std::string field = fmt::format("general_purpose_partitions[{}]", i);
    if (gps[i] == 0) fail(field, "must not be 0 (leave the partition out instead)");
    if (gps[i] % wp_group != 0) {
      fail(field, fmt::format("{} is not a multiple of the write-protect group ({})", gps[i], describe_size(wp_group)));
    }
    if (config.sector_addressing() && gps[i] >= kSectorAddressLimit) {
      fail(field, fmt::format("{} is not below 2 TiB (sector addresses are 32 bits)", gps[i]));
    }
    if (!config.sector_addressing() && gps[i] > kByteAddressLimit) {
      fail(field, fmt::format("{} exceeds 4 GiB, more than a byte-addressed device (user_capacity <= 2 GiB) "
                              "can address",
                              gps[i]));
    }
  }

  validate_cid(config.cid);
  validate_bus_modes(config.bus_modes);
  require_range("reliable_write_sectors", config.reliable_write_sectors, 1, 255);
  require_multiple("cache_size", config.cache_size, kCacheUnit);
  require_size_range("cache_size", config.cache_size, 0, kMaxCacheKiB * kCacheUnit);
  require_range("command_queue_depth", config.command_queue_depth, 0, kMaxCommandQueueDepth);
  validate_timeouts(config.timeouts, config.secure_erase_trim);
  require_range("ocr_busy_polls", config.ocr_busy_polls, 0, kMaxOcrBusyPolls);
}

DeviceConfig parse_device_config(const std::string& json_text) {
  const Json document = parse_json_rejecting_duplicate_keys(json_text);
  DeviceConfig config = default_device_config();

  ObjectReader top(document, "");
  top.size("user_capacity", config.user_capacity);
  top.size("boot_partition_size", config.boot_partition_size);
  top.size("rpmb_size", config.rpmb_size);
  top.custom("general_purpose_partitions", [&](const Json& value, const std::string& field) {
    if (!value.is_array()) fail(field, type_problem("an array of sizes", value));
    config.general_purpose_partitions.clear();
    for (std::size_t i = 0; i < value.size(); ++i) {
      config.general_purpose_partitions.push_back(read_size(value[i], fmt::format("{}[{}]", field, i)));
    }
  });
  top.custom("cid", [&](const Json& value, const std::string& field) {
    ObjectReader cid(value, field);
    cid.number("manufacturer_id", config.cid.manufacturer_id);
    cid.number("oem_id", config.cid.oem_id);
    cid.text("product_name", config.cid.product_name);
    cid.custom("product_revision", [&](const Json& revision, const std::string& revision_field) {
      config.cid.product_revision = read_product_revision(revision, revision_field);
    });
    cid.number("serial", config.cid.serial);
    cid.number("manufacturing_month", config.cid.manufacturing_month);
    cid.number("manufacturing_year", config.cid.manufacturing_year);
    cid.number("device_type", config.cid.device_type);
    cid.reject_unknown_members();
  });
  top.custom("bus_modes", [&](const Json& value, const std::string& field) {
    ObjectReader modes(value, field);
    modes.flag("hs26", config.bus_modes.hs26);
    modes.flag("hs52", config.bus_modes.hs52);
    modes.flag("ddr52", config.bus_modes.ddr52);
    modes.flag("hs200", config.bus_modes.hs200);
    modes.flag("hs400", config.bus_modes.hs400);
    modes.flag("enhanced_strobe", config.bus_modes.enhanced_strobe);
    modes.reject_unknown_members();
  });
  top.number("reliable_write_sectors", config.reliable_write_sectors);
  top.flag("en_rpmb_rel_wr", config.en_rpmb_rel_wr);
  top.size("cache_size", config.cache_size);
  top.size("erase_group_size", config.erase_group_size);
  top.number("write_protect_group_size", config.write_protect_group_size);
  top.flag("secure_erase_trim", config.secure_erase_trim);
  top.number("command_queue_depth", config.command_queue_depth);
  top.custom("timeouts", [&](const Json& value, const std::string& field) {
    TimeoutConfig& t = config.timeouts;
    ObjectReader timeouts(value, field);
    timeouts.number("generic_cmd6_time_ms", t.generic_cmd6_time_ms);
    timeouts.number("partition_switch_time_ms", t.partition_switch_time_ms);
    timeouts.number("out_of_interrupt_time_ms", t.out_of_interrupt_time_ms);
    timeouts.number("power_off_long_time_ms", t.power_off_long_time_ms);
    timeouts.number("erase_timeout_ms", t.erase_timeout_ms);
    timeouts.number("trim_timeout_ms", t.trim_timeout_ms);
    timeouts.number("secure_erase_timeout_ms", t.secure_erase_timeout_ms);
    timeouts.number("secure_trim_timeout_ms", t.secure_trim_timeout_ms);
    timeouts.number("sleep_awake_timeout_exp", t.sleep_awake_timeout_exp);
    timeouts.reject_unknown_members();
  });
  top.number("ocr_busy_polls", config.ocr_busy_polls);
  top.reject_unknown_members();

  validate(config);
  return config;
}

std::string to_json(const DeviceConfig& config) {
  OrderedJson gps = OrderedJson::array();
  for (std::uint64_t size : config.general_purpose_partitions) gps.push_back(size_to_json(size));

  const CidConfig& cid = config.cid;
  OrderedJson cid_json;
  cid_json["manufacturer_id"] = cid.manufacturer_id;
  cid_json["oem_id"] = cid.oem_id;
  cid_json["product_name"] = cid.product_name;
  cid_json["product_revision"] = fmt::format("{}.{}", cid.product_revision >> 4, cid.product_revision & 0xF);
  cid_json["serial"] = cid.serial;
  cid_json["manufacturing_month"] = cid.manufacturing_month;
  cid_json["manufacturing_year"] = cid.manufacturing_year;
  cid_json["device_type"] = cid.device_type;

  const BusModes& modes = config.bus_modes;
  OrderedJson modes_json;
  modes_json["hs26"] = modes.hs26;
  modes_json["hs52"] = modes.hs52;
  modes_json["ddr52"] = modes.ddr52;
  modes_json["hs200"] = modes.hs200;
  modes_json["hs400"] = modes.hs400;
  modes_json["enhanced_strobe"] = modes.enhanced_strobe;

  const TimeoutConfig& t = config.timeouts;
  OrderedJson timeouts_json;
  timeouts_json["generic_cmd6_time_ms"] = t.generic_cmd6_time_ms;
  timeouts_json["partition_switch_time_ms"] = t.partition_switch_time_ms;
  timeouts_json["out_of_interrupt_time_ms"] = t.out_of_interrupt_time_ms;
  timeouts_json["power_off_long_time_ms"] = t.power_off_long_time_ms;
  timeouts_json["erase_timeout_ms"] = t.erase_timeout_ms;
  timeouts_json["trim_timeout_ms"] = t.trim_timeout_ms;
  timeouts_json["secure_erase_timeout_ms"] = t.secure_erase_timeout_ms;
  timeouts_json["secure_trim_timeout_ms"] = t.secure_trim_timeout_ms;
  timeouts_json["sleep_awake_timeout_exp"] = t.sleep_awake_timeout_exp;

  OrderedJson document;
  document["user_capacity"] = size_to_json(config.user_capacity);
  document["boot_partition_size"] = size_to_json(config.boot_partition_size);
  document["rpmb_size"] = size_to_json(config.rpmb_size);
  document["general_purpose_partitions"] = std::move(gps);
  document["cid"] = std::move(cid_json);
  document["bus_modes"] = std::move(modes_json);
  document["reliable_write_sectors"] = config.reliable_write_sectors;
  document["en_rpmb_rel_wr"] = config.en_rpmb_rel_wr;
  document["cache_size"] = size_to_json(config.cache_size);
  document["erase_group_size"] = size_to_json(config.erase_group_size);
  document["write_protect_group_size"] = config.write_protect_group_size;
  document["secure_erase_trim"] = config.secure_erase_trim;
  document["command_queue_depth"] = config.command_queue_depth;
  document["timeouts"] = std::move(timeouts_json);
  document["ocr_busy_polls"] = config.ocr_busy_polls;
  // replace: an unvalidated product name with invalid UTF-8 must not make dump() throw.
  return document.dump(2, ' ', false, OrderedJson::error_handler_t::replace) + "\n";
}

std::string describe_size(std::uint64_t bytes) {
  if (bytes != 0) {
    for (const SizeUnit& unit : kBinaryUnits) {
      if (bytes % unit.bytes == 0) return fmt::format("{} {}", bytes / unit.bytes, unit.suffix);
    }
  }
  return fmt::format("{} bytes", bytes);
}

}  // namespace emmcsim::mmc
