// FaultPlan JSON: what parses, what is refused and why, and the round trip.
#include "emmcsim/models/fault_plan.hpp"

#include <gtest/gtest.h>

#include <string>

namespace emmcsim::models {
namespace {

void expect_error(const std::string& json, const std::string& fragment) {
  try {
    parse_fault_plan(json);
    ADD_FAILURE() << json << " parsed";
  } catch (const FaultPlanError& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

TEST(FaultPlan, ParsesEachKind) {
  const FaultPlan plan = parse_fault_plan(R"({ "faults": [
      { "kind": "data_crc", "command": 18, "occurrence": 1, "block": 2 },
      { "kind": "command_timeout", "command": 13, "occurrence": 5 },
      { "kind": "extended_busy", "command": 25, "occurrence": 0, "extra": "5ms" },
      { "kind": "command_timeout", "command": 6 } ] })");
  ASSERT_EQ(plan.faults.size(), 4u);
  EXPECT_EQ(plan.faults[0].kind, FaultKind::data_crc);
  EXPECT_EQ(plan.faults[0].command, 18);
  EXPECT_EQ(plan.faults[0].block, 2u);
  EXPECT_EQ(plan.faults[1].occurrence, 5u);
  EXPECT_EQ(plan.faults[2].extra, 5 * kMillisecond);
  EXPECT_EQ(plan.faults[2].occurrence, 0u);
  EXPECT_EQ(plan.faults[3].occurrence, 1u) << "the first occurrence unless told";
  EXPECT_EQ(describe_fault(plan.faults[0]), "data_crc on block 2 of CMD18 #1");
  EXPECT_EQ(describe_fault(plan.faults[2]), "extended_busy of 5ms after every CMD25");
  EXPECT_EQ(describe_fault(plan.faults[1]), "command_timeout of CMD13 #5");
  EXPECT_TRUE(parse_fault_plan("{}").empty());
}

TEST(FaultPlan, RoundTrips) {
  FaultPlan plan;
  plan.faults.push_back({FaultKind::extended_busy, 38, 2, 0, 1'500 * kMicrosecond});
  plan.faults.push_back({FaultKind::data_crc, 25, 0, 31, 0});
  plan.faults.push_back({FaultKind::command_timeout, 63, 4'000'000'000u, 0, 0});
  EXPECT_EQ(parse_fault_plan(to_json(plan)), plan);
}

TEST(FaultPlan, ErrorsNameTheFaultAndField) {
  expect_error(R"({ "faults": [ { "kind": "bit_flip", "command": 1 } ] })",
               "fault plan: faults[0].kind: \"bit_flip\" is not");
  expect_error(R"({ "faults": [ { "kind": "data_crc" } ] })", "fault plan: faults[0]: no command");
  expect_error(R"({ "faults": [ { "command": 1 } ] })", "faults[0]: no kind");
  expect_error(R"({ "faults": [ { "kind": "data_crc", "command": 64 } ] })", "faults[0].command: 64 is above 63");
  expect_error(R"({ "faults": [ { "kind": "data_crc", "command": -1 } ] })",
               "faults[0].command: -1 is not a whole number");
  expect_error(R"({ "faults": [ {}, { "kind": "extended_busy", "command": 6 } ] })", "faults[0]: no kind");
  expect_error(R"({ "faults": [ { "kind": "extended_busy", "command": 6 } ] })",
               "faults[0].extra: an extended_busy fault needs one");
  expect_error(R"({ "faults": [ { "kind": "command_timeout", "command": 6, "extra": "1ms" } ] })",
               "faults[0].extra: only an extended_busy fault has an extra");
  expect_error(R"({ "faults": [ { "kind": "command_timeout", "command": 6, "block": 1 } ] })",
               "faults[0].block: only a data_crc fault has a block");
  expect_error(R"({ "faults": [ { "kind": "extended_busy", "command": 6, "extra": "2h" } ] })", "faults[0].extra:");
  expect_error(R"({ "faults": [ { "kind": "extended_busy", "command": 6, "extra": "0" } ] })",
               "must be more than 0 and at most an hour");
  expect_error(R"({ "faults": [ { "kind": "extended_busy", "command": 6, "extra": 5 } ] })", "is not a duration");
  expect_error(R"({ "faults": [ { "kind": "data_crc", "command": 6, "blok": 1 } ] })", "faults[0].blok: unknown field");
  expect_error(R"({ "fault": [] })", "fault plan: fault: unknown field");
  expect_error(R"({ "faults": {} })", "faults: object is not an array");
  expect_error(R"([])", "top level: array is not an object");
  expect_error(R"({ "faults": [ )", "not valid JSON");
  std::string many = R"({ "faults": [)";
  for (int i = 0; i < 257; ++i) many += std::string(i ? "," : "") + R"({ "kind": "data_crc", "command": 1 })";
  expect_error(many + "] }", "257 faults; at most 256");
}

}  // namespace
}  // namespace emmcsim::models
