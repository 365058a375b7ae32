// Device configuration: defaults, validation rules (each names its field), JSON round trip,
// strict parsing (unknown keys, wrong types, duplicate keys) and size strings.
#include "emmcsim/mmc/device_config.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

namespace emmcsim::mmc {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr std::uint64_t KiB = 1ULL << 10;
constexpr std::uint64_t MiB = 1ULL << 20;
constexpr std::uint64_t GiB = 1ULL << 30;
constexpr std::uint64_t TiB = 1ULL << 40;

// The message of the ConfigError `action` throws, or a failure if it throws nothing.
std::string config_error_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const ConfigError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no ConfigError thrown";
  return {};
}

std::string field_prefix(const std::string& field) { return "device config: " + field + ": "; }

// A configuration that differs from the default in every field, still valid: byte addressed,
// sizes that are not whole MiB, four GP partitions on a 3 × 1.5 MiB write-protect group.
DeviceConfig customised_config() {
  DeviceConfig c;
  c.user_capacity = 1 * GiB + 3 * 512 * KiB;
  c.boot_partition_size = 3 * 128 * KiB;
  c.rpmb_size = 128 * KiB;
  c.erase_group_size = 3 * 512 * KiB;
  c.write_protect_group_size = 3;
  c.general_purpose_partitions = {c.write_protect_group_bytes(), 7 * c.write_protect_group_bytes(),
                                  4 * GiB - 4 * GiB % c.write_protect_group_bytes(), 2 * c.write_protect_group_bytes()};
  c.cid.manufacturer_id = 0x15;
  c.cid.oem_id = 0xFE;
  c.cid.product_name = "a\"b\\~";  // characters JSON has to escape
  c.cid.product_revision = 0xF9;
  c.cid.serial = 0xFFFFFFFF;
  c.cid.manufacturing_month = 12;
  c.cid.manufacturing_year = 2028;
  c.cid.device_type = 2;
  c.bus_modes = BusModes{true, true, false, true, false, false};
  c.reliable_write_sectors = 255;
  c.en_rpmb_rel_wr = !DeviceConfig{}.en_rpmb_rel_wr;
  c.cache_size = 3 * KiB;
  c.secure_erase_trim = false;
  c.command_queue_depth = 32;
  c.timeouts.generic_cmd6_time_ms = 2550;
  c.timeouts.partition_switch_time_ms = 10;
  c.timeouts.out_of_interrupt_time_ms = 0;
  c.timeouts.power_off_long_time_ms = 20;
  c.timeouts.erase_timeout_ms = 300 * 255;
  c.timeouts.trim_timeout_ms = 300;
  c.timeouts.secure_erase_timeout_ms = 0;
  c.timeouts.secure_trim_timeout_ms = 0;
  c.timeouts.sleep_awake_timeout_exp = 23;
  c.ocr_busy_polls = 1000;
  return c;
}

TEST(DeviceConfig, DefaultIsTheDocumentedPartAndValid) {
  const DeviceConfig c = default_device_config();
  EXPECT_NO_THROW(validate(c));
  EXPECT_EQ(c.user_capacity, 8 * GiB);
  EXPECT_EQ(c.boot_partition_size, 4 * MiB);
  EXPECT_EQ(c.rpmb_size, 4 * MiB);
  EXPECT_TRUE(c.bus_modes.hs400);
  EXPECT_TRUE(c.sector_addressing());
}

TEST(DeviceConfig, CustomisedConfigIsValidAndDiffersEverywhere) {
  const DeviceConfig custom = customised_config();
  EXPECT_NO_THROW(validate(custom));
  EXPECT_FALSE(custom.sector_addressing());
  EXPECT_NE(custom, default_device_config());
}

TEST(DeviceConfig, RoundTripOfDefault) {
  const DeviceConfig c = default_device_config();
  EXPECT_EQ(parse_device_config(to_json(c)), c);
}

TEST(DeviceConfig, RoundTripOfCustomisedConfig) {
  const DeviceConfig c = customised_config();
  const DeviceConfig parsed = parse_device_config(to_json(c));
  EXPECT_EQ(parsed, c);
  EXPECT_EQ(parsed.cid.product_name, c.cid.product_name);
  EXPECT_EQ(parsed.general_purpose_partitions, c.general_purpose_partitions);
}

TEST(DeviceConfig, RoundTripOfSectorAddressedConfigWithPartitions) {
  DeviceConfig c;
  c.user_capacity = 2 * TiB - 512 * KiB;
  c.erase_group_size = 255 * 512 * KiB;
  c.write_protect_group_size = 255;
  c.general_purpose_partitions = {c.write_protect_group_bytes() * 3};
  c.bus_modes = BusModes{true, false, false, false, false, false};
  ASSERT_NO_THROW(validate(c));
  EXPECT_EQ(parse_device_config(to_json(c)), c);
}

// operator== must see every field, or the round-trip tests above could not fail.
TEST(DeviceConfig, EqualitySeesEveryField) {
  const std::vector<std::function<void(DeviceConfig&)>> changes = {
      [](DeviceConfig& c) { c.user_capacity += 512 * KiB; },
      [](DeviceConfig& c) { c.boot_partition_size = 0; },
      [](DeviceConfig& c) { c.rpmb_size = 128 * KiB; },
      [](DeviceConfig& c) { c.general_purpose_partitions.push_back(512 * KiB); },
      [](DeviceConfig& c) { c.cid.manufacturer_id ^= 1; },
      [](DeviceConfig& c) { c.cid.oem_id ^= 1; },
      [](DeviceConfig& c) { c.cid.product_name = "OTHER"; },
      [](DeviceConfig& c) { c.cid.product_revision ^= 1; },
      [](DeviceConfig& c) { c.cid.serial ^= 1; },
      [](DeviceConfig& c) { c.cid.manufacturing_month ^= 1; },
      [](DeviceConfig& c) { c.cid.manufacturing_year ^= 1; },
      [](DeviceConfig& c) { c.cid.device_type ^= 1; },
      [](DeviceConfig& c) { c.bus_modes.hs26 = !c.bus_modes.hs26; },
      [](DeviceConfig& c) { c.bus_modes.hs52 = !c.bus_modes.hs52; },
      [](DeviceConfig& c) { c.bus_modes.ddr52 = !c.bus_modes.ddr52; },
      [](DeviceConfig& c) { c.bus_modes.hs200 = !c.bus_modes.hs200; },
      [](DeviceConfig& c) { c.bus_modes.hs400 = !c.bus_modes.hs400; },
      [](DeviceConfig& c) { c.bus_modes.enhanced_strobe = !c.bus_modes.enhanced_strobe; },
      [](DeviceConfig& c) { c.reliable_write_sectors ^= 1; },
      [](DeviceConfig& c) { c.en_rpmb_rel_wr = !c.en_rpmb_rel_wr; },
      [](DeviceConfig& c) { c.cache_size ^= 1024; },
      [](DeviceConfig& c) { c.erase_group_size *= 2; },
      [](DeviceConfig& c) { c.write_protect_group_size ^= 2; },
      [](DeviceConfig& c) { c.secure_erase_trim = !c.secure_erase_trim; },
      [](DeviceConfig& c) { c.command_queue_depth ^= 1; },
      [](DeviceConfig& c) { c.timeouts.generic_cmd6_time_ms ^= 1; },
      [](DeviceConfig& c) { c.timeouts.partition_switch_time_ms ^= 1; },
      [](DeviceConfig& c) { c.timeouts.out_of_interrupt_time_ms ^= 1; },
      [](DeviceConfig& c) { c.timeouts.power_off_long_time_ms ^= 1; },
      [](DeviceConfig& c) { c.timeouts.erase_timeout_ms ^= 1; },
      [](DeviceConfig& c) { c.timeouts.trim_timeout_ms ^= 1; },
      [](DeviceConfig& c) { c.timeouts.secure_erase_timeout_ms ^= 1; },
      [](DeviceConfig& c) { c.timeouts.secure_trim_timeout_ms ^= 1; },
      [](DeviceConfig& c) { c.timeouts.sleep_awake_timeout_exp ^= 1; },
      [](DeviceConfig& c) { c.ocr_busy_polls ^= 1; },
  };
  for (std::size_t i = 0; i < changes.size(); ++i) {
    DeviceConfig changed = default_device_config();
    changes[i](changed);
    EXPECT_NE(changed, default_device_config()) << "change " << i;
    EXPECT_FALSE(changed == default_device_config()) << "change " << i;
  }
}

TEST(DeviceConfig, JsonHasEveryFieldInTheDocumentedLayout) {
  const auto json = nlohmann::json::parse(to_json(default_device_config()));
  std::set<std::string> top_keys;
  for (const auto& member : json.items()) top_keys.insert(member.key());
  EXPECT_EQ(top_keys,
            (std::set<std::string>{"user_capacity", "boot_partition_size", "rpmb_size", "general_purpose_partitions",
                                   "cid", "bus_modes", "reliable_write_sectors", "en_rpmb_rel_wr", "cache_size",
                                   "erase_group_size", "write_protect_group_size", "secure_erase_trim",
                                   "command_queue_depth", "timeouts", "ocr_busy_polls"}));
  std::set<std::string> cid_keys;
  for (const auto& member : json.at("cid").items()) cid_keys.insert(member.key());
  EXPECT_EQ(cid_keys, (std::set<std::string>{"manufacturer_id", "oem_id", "product_name", "product_revision", "serial",
                                             "manufacturing_month", "manufacturing_year", "device_type"}));
  std::set<std::string> mode_keys;
  for (const auto& member : json.at("bus_modes").items()) mode_keys.insert(member.key());
  EXPECT_EQ(mode_keys, (std::set<std::string>{"hs26", "hs52", "ddr52", "hs200", "hs400", "enhanced_strobe"}));
  std::set<std::string> timeout_keys;
  for (const auto& member : json.at("timeouts").items()) timeout_keys.insert(member.key());
  EXPECT_EQ(timeout_keys,
            (std::set<std::string>{"generic_cmd6_time_ms", "partition_switch_time_ms", "out_of_interrupt_time_ms",
                                   "power_off_long_time_ms", "erase_timeout_ms", "trim_timeout_ms",
                                   "secure_erase_timeout_ms", "secure_trim_timeout_ms", "sleep_awake_timeout_exp"}));
}

TEST(DeviceConfig, JsonWritesSizesInBinaryUnitsAndRevisionAsText) {
  DeviceConfig c = default_device_config();
  c.boot_partition_size = 0;
  c.cache_size = 3 * KiB;
  c.cid.product_revision = 0x2A;
  const auto json = nlohmann::json::parse(to_json(c));
  EXPECT_EQ(json.at("user_capacity"), "8GiB");
  EXPECT_EQ(json.at("rpmb_size"), "4MiB");
  EXPECT_EQ(json.at("erase_group_size"), "512KiB");
  EXPECT_EQ(json.at("cache_size"), "3KiB");
  EXPECT_EQ(json.at("boot_partition_size"), 0);
  EXPECT_TRUE(json.at("general_purpose_partitions").is_array());
  EXPECT_EQ(json.at("cid").at("product_revision"), "2.10");
  EXPECT_EQ(json.at("cid").at("manufacturer_id"), 0xE5);
  EXPECT_EQ(json.at("cid").at("oem_id"), 0x01);
  EXPECT_EQ(json.at("timeouts").at("erase_timeout_ms"), 3000);
}

TEST(DeviceConfig, EmptyObjectGivesTheDefault) { EXPECT_EQ(parse_device_config("{}"), default_device_config()); }

TEST(DeviceConfig, LeftOutFieldsKeepTheirDefaults) {
  const DeviceConfig c =
      parse_device_config(R"({"user_capacity": "16GiB", "cid": {"serial": 7}, "timeouts": {"trim_timeout_ms": 900}})");
  DeviceConfig expected = default_device_config();
  expected.user_capacity = 16 * GiB;
  expected.cid.serial = 7;
  expected.timeouts.trim_timeout_ms = 900;
  EXPECT_EQ(c, expected);
}

TEST(DeviceConfig, ParsesProductRevision) {
  EXPECT_EQ(parse_device_config(R"({"cid": {"product_revision": "0.0"}})").cid.product_revision, 0x00);
  EXPECT_EQ(parse_device_config(R"({"cid": {"product_revision": "15.15"}})").cid.product_revision, 0xFF);
  EXPECT_EQ(parse_device_config(R"({"cid": {"product_revision": "3.7"}})").cid.product_revision, 0x37);
  for (const char* bad : {"16.0", "1.16", "1", "1.", ".1", "a.b", "1.0.0", "-1.0", ""}) {
    const std::string json = std::string(R"({"cid": {"product_revision": ")") + bad + "\"}}";
    EXPECT_THAT(config_error_of([&] { parse_device_config(json); }), StartsWith(field_prefix("cid.product_revision")))
        << bad;
  }
}

TEST(DeviceConfig, UnknownKeysAreRejectedByName) {
  EXPECT_THAT(config_error_of([] { parse_device_config(R"({"user_capacty": "8GiB"})"); }),
              StartsWith(field_prefix("user_capacty") + "unknown field"));
  EXPECT_THAT(config_error_of([] { parse_device_config(R"({"cid": {"prodcut_name": "X"}})"); }),
              StartsWith(field_prefix("cid.prodcut_name") + "unknown field"));
  EXPECT_THAT(config_error_of([] { parse_device_config(R"({"bus_modes": {"hs800": true}})"); }),
              StartsWith(field_prefix("bus_modes.hs800") + "unknown field"));
  EXPECT_THAT(config_error_of([] { parse_device_config(R"({"timeouts": {"erase_timeout": 300}})"); }),
              StartsWith(field_prefix("timeouts.erase_timeout") + "unknown field"));
}

TEST(DeviceConfig, DuplicateKeysAreRejectedByName) {
  EXPECT_THAT(config_error_of([] { parse_device_config(R"({"rpmb_size": "4MiB", "rpmb_size": "8MiB"})"); }),
              StartsWith(field_prefix("rpmb_size")));
  EXPECT_THAT(config_error_of([] { parse_device_config(R"({"cid": {"serial": 1, "serial": 2}})"); }),
              StartsWith(field_prefix("cid.serial")));
}

TEST(DeviceConfig, MalformedJsonReportsTheParserMessage) {
  for (const char* text : {"", "{", R"({"user_capacity": })", "{} trailing", R"({'a': 1})"}) {
    const std::string message = config_error_of([&] { parse_device_config(text); });
    EXPECT_THAT(message, StartsWith("device config: ")) << text;
    EXPECT_THAT(message, HasSubstr("parse error")) << text;
  }
}

struct WrongTypeCase {
  const char* json;
  const char* field;
};

class DeviceConfigWrongType : public ::testing::TestWithParam<WrongTypeCase> {};

TEST_P(DeviceConfigWrongType, IsRejectedNamingTheField) {
  EXPECT_THAT(config_error_of([] { parse_device_config(GetParam().json); }),
              StartsWith(field_prefix(GetParam().field)));
}

INSTANTIATE_TEST_SUITE_P(
    DeviceConfig, DeviceConfigWrongType,
    ::testing::Values(
        WrongTypeCase{R"({"user_capacity": true})", "user_capacity"},
        WrongTypeCase{R"({"user_capacity": null})", "user_capacity"},
        WrongTypeCase{R"({"boot_partition_size": {}})", "boot_partition_size"},
        WrongTypeCase{R"({"general_purpose_partitions": "8MiB"})", "general_purpose_partitions"},
        WrongTypeCase{R"({"general_purpose_partitions": ["1MiB", false]})", "general_purpose_partitions[1]"},
        WrongTypeCase{R"({"cid": []})", "cid"},
        WrongTypeCase{R"({"cid": {"manufacturer_id": "0xE5"}})", "cid.manufacturer_id"},
        WrongTypeCase{R"({"cid": {"manufacturer_id": 256}})", "cid.manufacturer_id"},
        WrongTypeCase{R"({"cid": {"oem_id": -1}})", "cid.oem_id"},
        WrongTypeCase{R"({"cid": {"product_name": 5}})", "cid.product_name"},
        WrongTypeCase{R"({"cid": {"product_revision": 16}})", "cid.product_revision"},
        WrongTypeCase{R"({"cid": {"serial": 4294967296}})", "cid.serial"},
        WrongTypeCase{R"({"cid": {"manufacturing_year": 2026.5}})", "cid.manufacturing_year"},
        WrongTypeCase{R"({"bus_modes": {"hs200": 1}})", "bus_modes.hs200"},
        WrongTypeCase{R"({"bus_modes": {"hs400": "yes"}})", "bus_modes.hs400"},
        WrongTypeCase{R"({"bus_modes": true})", "bus_modes"},
        WrongTypeCase{R"({"reliable_write_sectors": 256})", "reliable_write_sectors"},
        WrongTypeCase{R"({"reliable_write_sectors": "1"})", "reliable_write_sectors"},
        WrongTypeCase{R"({"en_rpmb_rel_wr": 0})", "en_rpmb_rel_wr"},
        WrongTypeCase{R"({"secure_erase_trim": "true"})", "secure_erase_trim"},
        WrongTypeCase{R"({"command_queue_depth": 1e1})", "command_queue_depth"},
        WrongTypeCase{R"({"timeouts": {"erase_timeout_ms": null}})", "timeouts.erase_timeout_ms"},
        WrongTypeCase{R"({"timeouts": {"sleep_awake_timeout_exp": 300}})", "timeouts.sleep_awake_timeout_exp"},
        WrongTypeCase{R"({"timeouts": 5})", "timeouts"}, WrongTypeCase{R"({"ocr_busy_polls": -2})", "ocr_busy_polls"},
        WrongTypeCase{R"({"ocr_busy_polls": 1.5})", "ocr_busy_polls"}, WrongTypeCase{R"([])", "top level"}));

struct SizeCase {
  const char* text;  // JSON value of cache_size
  std::uint64_t bytes;
};

class DeviceConfigSizeText : public ::testing::TestWithParam<SizeCase> {};

TEST_P(DeviceConfigSizeText, Parses) {
  const std::string json = std::string(R"({"cache_size": )") + GetParam().text + "}";
  EXPECT_EQ(parse_device_config(json).cache_size, GetParam().bytes);
}

INSTANTIATE_TEST_SUITE_P(DeviceConfig, DeviceConfigSizeText,
                         ::testing::Values(SizeCase{R"("8GiB")", 8 * GiB}, SizeCase{R"("1G")", GiB},
                                           SizeCase{R"("512KiB")", 512 * KiB}, SizeCase{R"("3K")", 3 * KiB},
                                           SizeCase{R"("4M")", 4 * MiB}, SizeCase{R"("4MiB")", 4 * MiB},
                                           SizeCase{R"("4 MiB")", 4 * MiB}, SizeCase{R"("256G")", 256 * GiB},
                                           SizeCase{R"("3GiB")", 3 * GiB}, SizeCase{R"("2048")", 2048},
                                           SizeCase{R"("0")", 0}, SizeCase{R"("007K")", 7 * KiB},
                                           SizeCase{"4096", 4096}, SizeCase{"0", 0}));

// A plain-digit string is bytes: "123" reaches validation as 123 (not a multiple of 1 KiB).
TEST(DeviceConfig, DigitStringIsBytes) {
  EXPECT_THAT(config_error_of([] { parse_device_config(R"({"cache_size": "123"})"); }),
              StartsWith(field_prefix("cache_size") + "123 "));
}

TEST(DeviceConfig, NegativeSizesAreReportedAsNegative) {
  EXPECT_THAT(config_error_of([] { parse_device_config(R"({"cache_size": "-4M"})"); }), HasSubstr("negative"));
  EXPECT_THAT(config_error_of([] { parse_device_config(R"({"cache_size": -1024})"); }), HasSubstr("negative"));
  EXPECT_THAT(config_error_of([] { parse_device_config(R"({"cid": {"serial": -1}})"); }), HasSubstr("negative"));
}

class DeviceConfigBadSizeText : public ::testing::TestWithParam<const char*> {};

// Every bad text here would be a valid cache size if misread (sign dropped, fraction or suffix
// ignored, decimal unit taken as binary), so only the size parser can reject it.
TEST_P(DeviceConfigBadSizeText, IsRejectedNamingTheField) {
  const std::string json = std::string(R"({"cache_size": )") + GetParam() + "}";
  const std::string message = config_error_of([&] { parse_device_config(json); });
  EXPECT_THAT(message, StartsWith(field_prefix("cache_size")));
  EXPECT_THAT(message, ::testing::Not(HasSubstr("multiple"))) << "rejected by validation, not parsing";
}

INSTANTIATE_TEST_SUITE_P(DeviceConfig, DeviceConfigBadSizeText,
                         ::testing::Values(R"("-4M")", R"("1.5G")", R"("1,5G")", R"("4MB")", R"("4mb")", R"("4kB")",
                                           R"("4KB")", R"("4GB")", R"("4Mi")", R"("GiB")", R"("")", R"(" 4M")",
                                           R"("4M ")", R"("4 ")", R"("+4M")", R"("0x400")", R"("4e3")", R"("4 M iB")",
                                           R"("99999999999999999999")", R"("17179869184G")", R"("16777216T")",
                                           R"("18446744073709551616")", "-1024", "4096.5", "1e30",
                                           "18446744073709551616", "true", "[4096]"));

// ---------------------------------------------------------------------------------------------
// Validation rules: each rejects with a message naming its field.

struct RuleCase {
  const char* name;
  std::function<void(DeviceConfig&)> change;
  const char* field;
};

void PrintTo(const RuleCase& rule, std::ostream* os) { *os << rule.name; }

std::string rule_name(const ::testing::TestParamInfo<RuleCase>& param_info) { return param_info.param.name; }

class DeviceConfigRule : public ::testing::TestWithParam<RuleCase> {};

TEST_P(DeviceConfigRule, RejectsNamingTheField) {
  DeviceConfig c = default_device_config();
  GetParam().change(c);
  EXPECT_THAT(config_error_of([&] { validate(c); }), StartsWith(field_prefix(GetParam().field)));
  // Parsing validates too: the same configuration written as JSON is refused the same way.
  EXPECT_THAT(config_error_of([&] { parse_device_config(to_json(c)); }), StartsWith(field_prefix(GetParam().field)));
}

std::vector<RuleCase> rule_cases() {
  return {
      {"UserNotMultipleOf512K", [](DeviceConfig& c) { c.user_capacity = 8 * GiB + KiB; }, "user_capacity"},
      {"UserZero", [](DeviceConfig& c) { c.user_capacity = 0; }, "user_capacity"},
      {"UserBelow1MiB", [](DeviceConfig& c) { c.user_capacity = 512 * KiB; }, "user_capacity"},
      {"User2TiB", [](DeviceConfig& c) { c.user_capacity = 2 * TiB; }, "user_capacity"},
      {"BootNotMultipleOf128K", [](DeviceConfig& c) { c.boot_partition_size = 100000; }, "boot_partition_size"},
      {"BootAbove255Units", [](DeviceConfig& c) { c.boot_partition_size = 256 * 128 * KiB; }, "boot_partition_size"},
      {"RpmbZero", [](DeviceConfig& c) { c.rpmb_size = 0; }, "rpmb_size"},
      {"RpmbNotMultipleOf128K", [](DeviceConfig& c) { c.rpmb_size = 192 * KiB; }, "rpmb_size"},
      {"RpmbAbove16MiB", [](DeviceConfig& c) { c.rpmb_size = 16 * MiB + 128 * KiB; }, "rpmb_size"},
      {"EraseGroupZero", [](DeviceConfig& c) { c.erase_group_size = 0; }, "erase_group_size"},
      {"EraseGroupNotMultipleOf512K", [](DeviceConfig& c) { c.erase_group_size = 768 * KiB; }, "erase_group_size"},
      {"EraseGroupAbove255Units", [](DeviceConfig& c) { c.erase_group_size = 256 * 512 * KiB; }, "erase_group_size"},
      {"WpGroupZero", [](DeviceConfig& c) { c.write_protect_group_size = 0; }, "write_protect_group_size"},
      {"FiveGpPartitions", [](DeviceConfig& c) { c.general_purpose_partitions.assign(5, MiB); },
       "general_purpose_partitions"},
      {"GpZero",
       [](DeviceConfig& c) {
         c.general_purpose_partitions = {MiB, 0};
       },
       "general_purpose_partitions[1]"},
      {"GpNotMultipleOfWpGroup",
       [](DeviceConfig& c) {
         c.write_protect_group_size = 2;
         c.general_purpose_partitions = {MiB, MiB, 3 * 512 * KiB};
       },
       "general_purpose_partitions[2]"},
      {"Gp2TiB", [](DeviceConfig& c) { c.general_purpose_partitions = {2 * TiB}; }, "general_purpose_partitions[0]"},
      {"GpReaching2TiB",
       [](DeviceConfig& c) {
         c.erase_group_size = 255 * 512 * KiB;
         c.write_protect_group_size = 255;  // the 2^24 group limit is far away
         c.general_purpose_partitions = {2 * TiB - 2 * TiB % c.write_protect_group_bytes() +
                                         c.write_protect_group_bytes()};
       },
       "general_purpose_partitions[0]"},
      {"GpAbove4GiBWhenByteAddressed",
       [](DeviceConfig& c) {
         c.user_capacity = 2 * GiB;
         c.general_purpose_partitions = {4 * GiB + 512 * KiB};
       },
       "general_purpose_partitions[0]"},
      {"ProductNameEmpty", [](DeviceConfig& c) { c.cid.product_name = ""; }, "cid.product_name"},
      {"ProductNameTooLong", [](DeviceConfig& c) { c.cid.product_name = "EMSIM12"; }, "cid.product_name"},
      {"ProductNameControlCharacter", [](DeviceConfig& c) { c.cid.product_name = "AB\x07"; }, "cid.product_name"},
      {"ProductNameNonAscii", [](DeviceConfig& c) { c.cid.product_name = "\xC3\xA9"; }, "cid.product_name"},
      {"ProductNameDelete", [](DeviceConfig& c) { c.cid.product_name = "A\x7F"; }, "cid.product_name"},
      {"MonthZero", [](DeviceConfig& c) { c.cid.manufacturing_month = 0; }, "cid.manufacturing_month"},
      {"Month13", [](DeviceConfig& c) { c.cid.manufacturing_month = 13; }, "cid.manufacturing_month"},
      {"Year2012", [](DeviceConfig& c) { c.cid.manufacturing_year = 2012; }, "cid.manufacturing_year"},
      {"Year2029", [](DeviceConfig& c) { c.cid.manufacturing_year = 2029; }, "cid.manufacturing_year"},
      {"DeviceType3", [](DeviceConfig& c) { c.cid.device_type = 3; }, "cid.device_type"},
      {"NoHs26", [](DeviceConfig& c) { c.bus_modes.hs26 = false; }, "bus_modes.hs26"},
      {"Ddr52WithoutHs52", [](DeviceConfig& c) { c.bus_modes = BusModes{true, false, true, false, false, false}; },
       "bus_modes.ddr52"},
      {"Hs200WithoutHs52", [](DeviceConfig& c) { c.bus_modes = BusModes{true, false, false, true, false, false}; },
       "bus_modes.hs200"},
      {"Hs400WithoutHs200", [](DeviceConfig& c) { c.bus_modes = BusModes{true, true, true, false, true, false}; },
       "bus_modes.hs400"},
      {"StrobeWithoutHs400", [](DeviceConfig& c) { c.bus_modes = BusModes{true, true, true, true, false, true}; },
       "bus_modes.enhanced_strobe"},
      {"ReliableWriteZero", [](DeviceConfig& c) { c.reliable_write_sectors = 0; }, "reliable_write_sectors"},
      {"CacheNotMultipleOf1K", [](DeviceConfig& c) { c.cache_size = 1000; }, "cache_size"},
      {"CacheBeyond32BitKilobits", [](DeviceConfig& c) { c.cache_size = 512 * GiB; }, "cache_size"},
      {"CommandQueue33", [](DeviceConfig& c) { c.command_queue_depth = 33; }, "command_queue_depth"},
      {"Cmd6TimeZero", [](DeviceConfig& c) { c.timeouts.generic_cmd6_time_ms = 0; }, "timeouts.generic_cmd6_time_ms"},
      {"Cmd6TimeNotMultipleOf10", [](DeviceConfig& c) { c.timeouts.generic_cmd6_time_ms = 255; },
       "timeouts.generic_cmd6_time_ms"},
      {"Cmd6TimeAbove255Units", [](DeviceConfig& c) { c.timeouts.generic_cmd6_time_ms = 2560; },
       "timeouts.generic_cmd6_time_ms"},
      {"PartitionSwitchZero", [](DeviceConfig& c) { c.timeouts.partition_switch_time_ms = 0; },
       "timeouts.partition_switch_time_ms"},
      {"PartitionSwitchNotMultiple", [](DeviceConfig& c) { c.timeouts.partition_switch_time_ms = 5; },
       "timeouts.partition_switch_time_ms"},
      {"OutOfInterruptNotMultiple", [](DeviceConfig& c) { c.timeouts.out_of_interrupt_time_ms = 15; },
       "timeouts.out_of_interrupt_time_ms"},
      {"OutOfInterruptAbove255Units", [](DeviceConfig& c) { c.timeouts.out_of_interrupt_time_ms = 2560; },
       "timeouts.out_of_interrupt_time_ms"},
      {"PowerOffLongZero", [](DeviceConfig& c) { c.timeouts.power_off_long_time_ms = 0; },
       "timeouts.power_off_long_time_ms"},
      {"PowerOffLongNotMultiple", [](DeviceConfig& c) { c.timeouts.power_off_long_time_ms = 1001; },
       "timeouts.power_off_long_time_ms"},
      {"EraseTimeoutZero", [](DeviceConfig& c) { c.timeouts.erase_timeout_ms = 0; }, "timeouts.erase_timeout_ms"},
      {"EraseTimeoutNotMultipleOf300", [](DeviceConfig& c) { c.timeouts.erase_timeout_ms = 1000; },
       "timeouts.erase_timeout_ms"},
      {"EraseTimeoutAbove255Units", [](DeviceConfig& c) { c.timeouts.erase_timeout_ms = 300 * 256; },
       "timeouts.erase_timeout_ms"},
      {"TrimTimeoutZero", [](DeviceConfig& c) { c.timeouts.trim_timeout_ms = 0; }, "timeouts.trim_timeout_ms"},
      {"TrimTimeoutNotMultiple", [](DeviceConfig& c) { c.timeouts.trim_timeout_ms = 301; }, "timeouts.trim_timeout_ms"},
      {"SecureEraseZeroWhileSupported", [](DeviceConfig& c) { c.timeouts.secure_erase_timeout_ms = 0; },
       "timeouts.secure_erase_timeout_ms"},
      {"SecureEraseNotMultipleOfErase", [](DeviceConfig& c) { c.timeouts.secure_erase_timeout_ms = 4500; },
       "timeouts.secure_erase_timeout_ms"},
      {"SecureEraseAbove255Erases", [](DeviceConfig& c) { c.timeouts.secure_erase_timeout_ms = 3000 * 256; },
       "timeouts.secure_erase_timeout_ms"},
      {"SecureTrimZeroWhileSupported", [](DeviceConfig& c) { c.timeouts.secure_trim_timeout_ms = 0; },
       "timeouts.secure_trim_timeout_ms"},
      {"SecureTrimNotMultipleOfErase", [](DeviceConfig& c) { c.timeouts.secure_trim_timeout_ms = 3300; },
       "timeouts.secure_trim_timeout_ms"},
      {"SecureTrimNotMultipleEvenWhenUnsupported",
       [](DeviceConfig& c) {
         c.secure_erase_trim = false;
         c.timeouts.secure_trim_timeout_ms = 1;
       },
       "timeouts.secure_trim_timeout_ms"},
      {"SleepAwakeExpZero", [](DeviceConfig& c) { c.timeouts.sleep_awake_timeout_exp = 0; },
       "timeouts.sleep_awake_timeout_exp"},
      {"SleepAwakeExp24", [](DeviceConfig& c) { c.timeouts.sleep_awake_timeout_exp = 24; },
       "timeouts.sleep_awake_timeout_exp"},
      {"OcrBusyPolls1001", [](DeviceConfig& c) { c.ocr_busy_polls = 1001; }, "ocr_busy_polls"},
  };
}

INSTANTIATE_TEST_SUITE_P(DeviceConfig, DeviceConfigRule, ::testing::ValuesIn(rule_cases()), rule_name);

// The limits themselves are accepted: the rules are no stricter than documented.
class DeviceConfigLimit : public ::testing::TestWithParam<RuleCase> {};

TEST_P(DeviceConfigLimit, IsAccepted) {
  DeviceConfig c = default_device_config();
  GetParam().change(c);
  EXPECT_NO_THROW(validate(c));
  EXPECT_EQ(parse_device_config(to_json(c)), c);
}

std::vector<RuleCase> limit_cases() {
  return {
      {"User1MiB", [](DeviceConfig& c) { c.user_capacity = MiB; }, ""},
      {"UserJustBelow2TiB", [](DeviceConfig& c) { c.user_capacity = 2 * TiB - 512 * KiB; }, ""},
      {"UserOddMultipleOf512K", [](DeviceConfig& c) { c.user_capacity = 2 * GiB - 512 * KiB; }, ""},
      {"NoBootPartitions", [](DeviceConfig& c) { c.boot_partition_size = 0; }, ""},
      {"Boot255Units", [](DeviceConfig& c) { c.boot_partition_size = 255 * 128 * KiB; }, ""},
      {"Rpmb128K", [](DeviceConfig& c) { c.rpmb_size = 128 * KiB; }, ""},
      {"Rpmb16MiB", [](DeviceConfig& c) { c.rpmb_size = 16 * MiB; }, ""},
      {"EraseGroup255Units", [](DeviceConfig& c) { c.erase_group_size = 255 * 512 * KiB; }, ""},
      {"WpGroup255", [](DeviceConfig& c) { c.write_protect_group_size = 255; }, ""},
      {"FourGpPartitions",
       [](DeviceConfig& c) {
         c.general_purpose_partitions = {512 * KiB, MiB, 8 * GiB, MiB};
       },
       ""},
      {"GpJustBelow2TiB", [](DeviceConfig& c) { c.general_purpose_partitions = {2 * TiB - 512 * KiB}; }, ""},
      {"Gp4GiBWhenByteAddressed",
       [](DeviceConfig& c) {
         c.user_capacity = 2 * GiB;
         c.general_purpose_partitions = {4 * GiB};
       },
       ""},
      {"ProductName1Char", [](DeviceConfig& c) { c.cid.product_name = "X"; }, ""},
      {"ProductNamePrintableEdges", [](DeviceConfig& c) { c.cid.product_name = " ~!Az}"; }, ""},
      {"Month1", [](DeviceConfig& c) { c.cid.manufacturing_month = 1; }, ""},
      {"Month12", [](DeviceConfig& c) { c.cid.manufacturing_month = 12; }, ""},
      {"Year2013", [](DeviceConfig& c) { c.cid.manufacturing_year = 2013; }, ""},
      {"Year2028", [](DeviceConfig& c) { c.cid.manufacturing_year = 2028; }, ""},
      {"DeviceType0", [](DeviceConfig& c) { c.cid.device_type = 0; }, ""},
      {"DeviceType2", [](DeviceConfig& c) { c.cid.device_type = 2; }, ""},
      {"OnlyHs26", [](DeviceConfig& c) { c.bus_modes = BusModes{true, false, false, false, false, false}; }, ""},
      {"Hs400WithoutStrobe", [](DeviceConfig& c) { c.bus_modes.enhanced_strobe = false; }, ""},
      {"ReliableWrite255", [](DeviceConfig& c) { c.reliable_write_sectors = 255; }, ""},
      {"NoCache", [](DeviceConfig& c) { c.cache_size = 0; }, ""},
      {"LargestCache", [](DeviceConfig& c) { c.cache_size = (0xFFFFFFFFULL / 8) * KiB; }, ""},
      {"CommandQueue32", [](DeviceConfig& c) { c.command_queue_depth = 32; }, ""},
      {"Cmd6Time255Units", [](DeviceConfig& c) { c.timeouts.generic_cmd6_time_ms = 2550; }, ""},
      {"NoOutOfInterruptTime", [](DeviceConfig& c) { c.timeouts.out_of_interrupt_time_ms = 0; }, ""},
      {"EraseTimeout255Units",
       [](DeviceConfig& c) {
         c.timeouts.erase_timeout_ms = 300 * 255;
         c.timeouts.secure_erase_timeout_ms = 300 * 255;
         c.timeouts.secure_trim_timeout_ms = 300 * 255 * 2;
       },
       ""},
      {"SecureErase255Erases", [](DeviceConfig& c) { c.timeouts.secure_erase_timeout_ms = 3000 * 255; }, ""},
      {"NoSecureTimeoutsWithoutSecureErase",
       [](DeviceConfig& c) {
         c.secure_erase_trim = false;
         c.timeouts.secure_erase_timeout_ms = 0;
         c.timeouts.secure_trim_timeout_ms = 0;
       },
       ""},
      {"SleepAwakeExp1", [](DeviceConfig& c) { c.timeouts.sleep_awake_timeout_exp = 1; }, ""},
      {"SleepAwakeExp23", [](DeviceConfig& c) { c.timeouts.sleep_awake_timeout_exp = 23; }, ""},
      {"NoOcrBusyPolls", [](DeviceConfig& c) { c.ocr_busy_polls = 0; }, ""},
      {"OcrBusyPolls1000", [](DeviceConfig& c) { c.ocr_busy_polls = 1000; }, ""},
  };
}

INSTANTIATE_TEST_SUITE_P(DeviceConfig, DeviceConfigLimit, ::testing::ValuesIn(limit_cases()), rule_name);

}  // namespace
}  // namespace emmcsim::mmc
