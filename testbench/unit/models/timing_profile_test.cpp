// TimingProfile: durations in text, JSON with errors that name the field, pricing of work
// reports, and the EXT_CSD promises validate() keeps.
#include "emmcsim/models/timing_profile.hpp"

#include <gtest/gtest.h>

#include <string>

namespace emmcsim::models {
namespace {

void expect_error(const std::string& json, const std::string& fragment) {
  try {
    parse_timing_profile(json);
    ADD_FAILURE() << json << " parsed";
  } catch (const TimingProfileError& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

void expect_invalid(const TimingProfile& p, const mmc::DeviceConfig& device, const std::string& fragment) {
  try {
    validate(p, device);
    ADD_FAILURE() << "validated";
  } catch (const TimingProfileError& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

TEST(Duration, ParsesEveryUnit) {
  EXPECT_EQ(parse_duration("7ps"), 7u);
  EXPECT_EQ(parse_duration("300ns"), 300'000u);
  EXPECT_EQ(parse_duration("50us"), 50'000'000u);
  EXPECT_EQ(parse_duration("50\xC2\xB5s"), 50'000'000u);
  EXPECT_EQ(parse_duration("1.5ms"), 1'500'000'000u);
  EXPECT_EQ(parse_duration("1.2345ms"), 1'234'500'000u);
  EXPECT_EQ(parse_duration("2s"), 2'000'000'000'000u);
  EXPECT_EQ(parse_duration("5 us"), 5'000'000u);
  EXPECT_EQ(parse_duration("0"), 0u);
  EXPECT_EQ(parse_duration("0us"), 0u);
}

TEST(Duration, RefusesWhatIsNotADuration) {
  for (const char* bad :
       {"", "50", "us", "-5us", "1e3us", "5 minutes", "0.5ps", "1.2.3ms", "99999999999999999999s", "20000000s"}) {
    EXPECT_THROW(parse_duration(bad), std::invalid_argument) << bad;
  }
}

TEST(Duration, FormatsInTheLargestExactUnitAndRoundTrips) {
  EXPECT_EQ(format_duration(0), "0");
  EXPECT_EQ(format_duration(7), "7ps");
  EXPECT_EQ(format_duration(50 * kMicrosecond), "50us");
  EXPECT_EQ(format_duration(1'500 * kMicrosecond), "1.5ms");
  EXPECT_EQ(format_duration(1'234'567), "1234.567ns");
  EXPECT_EQ(format_duration(3 * 1'000 * kMillisecond), "3s");
  for (Picoseconds d : {Picoseconds{1}, Picoseconds{999}, Picoseconds{1'001}, Picoseconds{123'456'789},
                        Picoseconds{2 * kMillisecond + 1}, Picoseconds{18'000'000'000'000'000'000ULL}}) {
    EXPECT_EQ(parse_duration(format_duration(d)), d) << format_duration(d);
  }
}

TEST(TimingProfile, PagesTouched) {
  TimingProfile p;  // 16 KiB pages: 32 sectors
  ASSERT_EQ(p.sectors_per_page(), 32u);
  EXPECT_EQ(p.pages_touched(0, 0), 0u);
  EXPECT_EQ(p.pages_touched(0, 1), 1u);
  EXPECT_EQ(p.pages_touched(0, 32), 1u);
  EXPECT_EQ(p.pages_touched(0, 33), 2u);
  EXPECT_EQ(p.pages_touched(31, 2), 2u);
  EXPECT_EQ(p.pages_touched(32, 1), 1u);
  EXPECT_EQ(p.pages_touched(10, 64), 3u);
  p.nand_page_size = 512;
  EXPECT_EQ(p.pages_touched(5, 7), 7u);
}

TEST(TimingProfile, WorkTimePricesEveryField) {
  TimingProfile p;
  p.page_read = 1 * kMicrosecond;
  p.page_program = 2 * kMicrosecond;
  p.cached_sector_write = 3;
  p.erase_group_erase = 5 * kMicrosecond;
  p.sector_trim = 7;
  p.rpmb_commit = 11 * kMicrosecond;
  p.hmac_frame = 13;
  p.ext_csd_write = 17 * kNanosecond;
  p.partition_switch = 19 * kNanosecond;
  p.cache_flush = 23 * kNanosecond;
  p.sleep_transition = 29 * kNanosecond;
  p.nonvolatile_update = 31 * kNanosecond;
  mmc::WorkReport w;
  w.sectors_read = 33;        // 2 pages
  w.sectors_programmed = 64;  // 2 pages
  w.sectors_cached = 10;
  w.erase_groups = 2;
  w.sectors_trimmed = 100;
  w.rpmb_commits = 1;
  w.hmac_frames = 4;
  w.ext_csd_writes = 1;
  w.partition_switches = 1;
  w.cache_flushes = 1;
  w.sleep_transitions = 1;
  w.nonvolatile_updates = 2;
  const Picoseconds expected = 2 * kMicrosecond + 2 * 2 * kMicrosecond + 10 * 3 + 2 * 5 * kMicrosecond + 100 * 7 +
                               11 * kMicrosecond + 4 * 13 + 17 * kNanosecond + 19 * kNanosecond + 23 * kNanosecond +
                               29 * kNanosecond + 2 * 31 * kNanosecond;
  EXPECT_EQ(p.work_time(w), expected);
  EXPECT_EQ(p.work_time(mmc::WorkReport{}), 0u);
}

TEST(TimingProfile, DefaultFitsTheDefaultDevice) {
  EXPECT_NO_THROW(validate(default_timing_profile(), mmc::default_device_config()));
}

TEST(TimingProfile, ValidateKeepsTheExtCsdPromises) {
  const mmc::DeviceConfig device = mmc::default_device_config();  // GENERIC_CMD6_TIME 250 ms, …
  TimingProfile p;
  p.ext_csd_write = 251 * kMillisecond;
  expect_invalid(p, device, "ext_csd_write: 251ms is longer than GENERIC_CMD6_TIME (250ms)");

  p = TimingProfile{};
  p.partition_switch = 30 * kMillisecond;  // + the 20 us CMD6 write passes 30 ms
  expect_invalid(p, device, "partition_switch:");
  expect_invalid(p, device, "PARTITION_SWITCH_TIME (30ms)");
  p.partition_switch = 30 * kMillisecond - p.ext_csd_write;
  EXPECT_NO_THROW(validate(p, device)) << "exactly the promise is kept";

  p = TimingProfile{};
  p.erase_group_erase = 3001 * kMillisecond;
  expect_invalid(p, device, "ERASE_TIMEOUT_MULT");

  p = TimingProfile{};
  p.sector_trim = 1 * kMillisecond;  // × 1024 sectors per 512 KiB erase group > 600 ms
  expect_invalid(p, device, "sector_trim: 1.024s for an erase group of 1024 sectors");

  p = TimingProfile{};
  p.sleep_transition = 14 * kMillisecond;  // S_A_TIMEOUT 17: 100 ns × 2^17 = 13.1072 ms
  expect_invalid(p, device, "S_A_TIMEOUT (13107.2us)");

  p = TimingProfile{};
  p.page_read = 151 * kMillisecond;
  expect_invalid(p, device, "page_read");
  p = TimingProfile{};
  p.page_program = 1201 * kMillisecond;
  expect_invalid(p, device, "page_program");
}

TEST(TimingProfile, ValidateFollowsTheDevicesOwnFields) {
  mmc::DeviceConfig device = mmc::default_device_config();
  TimingProfile p;
  p.ext_csd_write = 100 * kMillisecond;
  p.partition_switch = 0;
  device.timeouts.partition_switch_time_ms = 200;
  EXPECT_NO_THROW(validate(p, device));
  device.timeouts.generic_cmd6_time_ms = 50;
  expect_invalid(p, device, "GENERIC_CMD6_TIME (50ms)");
}

TEST(TimingProfile, ValidateRefusesBadPageSizes) {
  for (std::uint64_t size : {std::uint64_t{0}, std::uint64_t{256}, std::uint64_t{1000}, std::uint64_t{128 * 1024}}) {
    TimingProfile p;
    p.nand_page_size = size;
    expect_invalid(p, mmc::default_device_config(), "nand_page_size");
  }
}

TEST(TimingProfileJson, FieldsLeftOutKeepTheirDefault) {
  const TimingProfile p = parse_timing_profile(R"({ "page_read": "25us", "nand_page_size": "8KiB" })");
  TimingProfile expected;
  expected.page_read = 25 * kMicrosecond;
  expected.nand_page_size = 8 * 1024;
  EXPECT_EQ(p, expected);
  EXPECT_EQ(parse_timing_profile("{}"), default_timing_profile());
  EXPECT_EQ(parse_timing_profile(R"({ "nand_page_size": 4096 })").nand_page_size, 4096u);
}

TEST(TimingProfileJson, RoundTrips) {
  TimingProfile p;
  p.nand_page_size = 4096;
  p.page_read = 1'234'567;
  p.rpmb_commit = 3 * kMillisecond;
  p.cached_sector_write = 80 * kNanosecond;
  EXPECT_EQ(parse_timing_profile(to_json(p)), p);
  EXPECT_EQ(parse_timing_profile(to_json(default_timing_profile())), default_timing_profile());
  EXPECT_NE(to_json(p).find("\"page_read\": \"1234.567ns\""), std::string::npos) << to_json(p);
}

TEST(TimingProfileJson, ErrorsNameTheField) {
  expect_error(R"({ "page_raed": "25us" })", "timing profile: page_raed: unknown field");
  expect_error(R"({ "page_read": 25 })", "timing profile: page_read: 25 is not a duration");
  expect_error(R"({ "page_read": "25" })", "timing profile: page_read: \"25\" has no unit");
  expect_error(R"({ "nand_page_size": "16 bananas" })", "timing profile: nand_page_size:");
  expect_error(R"({ "nand_page_size": -1 })", "timing profile: nand_page_size:");
  expect_error(R"([1, 2])", "timing profile: top level: array is not an object");
  expect_error(R"({ "page_read": )", "timing profile: not valid JSON");
  expect_error(R"({ "nand_page_size": 12e1225 })", "timing profile: not valid JSON");  // found by timing_profile_fuzz
}

// Found by timing_profile_fuzz: a page of 0 bytes parsed, and pricing work with it divided by zero.
TEST(TimingProfileJson, PageSizesAreCheckedWhenParsed) {
  expect_error(R"({ "nand_page_size": "0KiB" })", "timing profile: nand_page_size: 0 is not a multiple of 512");
  expect_error(R"({ "nand_page_size": 1000 })", "timing profile: nand_page_size: 1000 is not a multiple of 512");
  TimingProfile unvalidated;
  unvalidated.nand_page_size = 0;
  mmc::WorkReport work;
  work.sectors_read = 3;
  EXPECT_EQ(unvalidated.sectors_per_page(), 1u);
  EXPECT_EQ(unvalidated.work_time(work), 3 * unvalidated.page_read);
}

}  // namespace
}  // namespace emmcsim::models
