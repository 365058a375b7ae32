// FaultPlan (see fault_plan.hpp).
#include "emmcsim/models/fault_plan.hpp"

#include <fmt/format.h>

#include <nlohmann/json.hpp>
#include <set>

namespace emmcsim::models {
namespace {

using Json = nlohmann::json;
constexpr Picoseconds kHour = 3'600'000 * kMillisecond;

[[noreturn]] void fail(const std::string& where, const std::string& problem) {
  throw FaultPlanError(fmt::format("fault plan: {}: {}", where, problem));
}

std::uint64_t unsigned_field(const Json& value, const std::string& where, std::uint64_t max) {
  if (!value.is_number_unsigned()) fail(where, fmt::format("{} is not a whole number from 0", value.dump()));
  const auto n = value.get<std::uint64_t>();
  if (n > max) fail(where, fmt::format("{} is above {}", n, max));
  return n;
}

Fault parse_fault(const Json& f, const std::string& where) {
  if (!f.is_object()) fail(where, fmt::format("{} is not an object", f.type_name()));
  Fault fault;
  bool has_kind = false, has_command = false, has_block = false, has_extra = false;
  for (auto it = f.begin(); it != f.end(); ++it) {
    const std::string field = where + "." + it.key();
    const Json& v = it.value();
    if (it.key() == "kind") {
      const std::string kind = v.is_string() ? v.get<std::string>() : v.dump();
      if (kind == "command_timeout")
        fault.kind = FaultKind::command_timeout;
      else if (kind == "data_crc")
        fault.kind = FaultKind::data_crc;
      else if (kind == "extended_busy")
        fault.kind = FaultKind::extended_busy;
      else
        fail(field, fmt::format("{} is not command_timeout, data_crc or extended_busy", v.dump()));
      has_kind = true;
    } else if (it.key() == "command") {
      fault.command = static_cast<std::uint8_t>(unsigned_field(v, field, 63));
      has_command = true;
    } else if (it.key() == "occurrence") {
      fault.occurrence = static_cast<std::uint32_t>(unsigned_field(v, field, UINT32_MAX));
    } else if (it.key() == "block") {
      fault.block = static_cast<std::uint32_t>(unsigned_field(v, field, 65535));
      has_block = true;
    } else if (it.key() == "extra") {
      if (!v.is_string()) fail(field, fmt::format("{} is not a duration (a string such as \"5ms\")", v.dump()));
      try {
        fault.extra = parse_duration(v.get<std::string>());
      } catch (const std::invalid_argument& e) {
        fail(field, e.what());
      }
      if (fault.extra == 0 || fault.extra > kHour) fail(field, "must be more than 0 and at most an hour");
      has_extra = true;
    } else {
      fail(field, "unknown field (the fields are kind, command, occurrence, block, extra)");
    }
  }
  if (!has_kind) fail(where, "no kind");
  if (!has_command) fail(where, "no command");
  if (has_block && fault.kind != FaultKind::data_crc) fail(where + ".block", "only a data_crc fault has a block");
  if (has_extra != (fault.kind == FaultKind::extended_busy))
    fail(where + ".extra", has_extra ? "only an extended_busy fault has an extra" : "an extended_busy fault needs one");
  return fault;
}

}  // namespace

const char* fault_kind_name(FaultKind kind) {
  switch (kind) {
    case FaultKind::command_timeout: return "command_timeout";
    case FaultKind::data_crc: return "data_crc";
    case FaultKind::extended_busy: return "extended_busy";
  }
  return "?";
}

FaultPlan parse_fault_plan(const std::string& json_text) {
  Json doc;
  try {
    doc = Json::parse(json_text);
  } catch (const Json::exception& e) {
    throw FaultPlanError(fmt::format("fault plan: not valid JSON: {}", e.what()));
  }
  if (!doc.is_object()) fail("top level", fmt::format("{} is not an object", doc.type_name()));
  FaultPlan plan;
  for (auto it = doc.begin(); it != doc.end(); ++it) {
    if (it.key() != "faults") fail(it.key(), "unknown field (the plan has one: faults)");
    const Json& faults = it.value();
    if (!faults.is_array()) fail("faults", fmt::format("{} is not an array", faults.type_name()));
    if (faults.size() > FaultPlan::kMaxFaults)
      fail("faults", fmt::format("{} faults; at most {}", faults.size(), FaultPlan::kMaxFaults));
    for (std::size_t i = 0; i < faults.size(); ++i)
      plan.faults.push_back(parse_fault(faults[i], fmt::format("faults[{}]", i)));
  }
  return plan;
}

std::string to_json(const FaultPlan& plan) {
  nlohmann::ordered_json doc;
  doc["faults"] = nlohmann::ordered_json::array();
  for (const Fault& f : plan.faults) {
    nlohmann::ordered_json j;
    j["kind"] = fault_kind_name(f.kind);
    j["command"] = f.command;
    j["occurrence"] = f.occurrence;
    if (f.kind == FaultKind::data_crc) j["block"] = f.block;
    if (f.kind == FaultKind::extended_busy) j["extra"] = format_duration(f.extra);
    doc["faults"].push_back(j);
  }
  return doc.dump(2) + "\n";
}

std::string describe_fault(const Fault& f) {
  const std::string which =
      f.occurrence == 0 ? fmt::format("every CMD{}", f.command) : fmt::format("CMD{} #{}", f.command, f.occurrence);
  switch (f.kind) {
    case FaultKind::command_timeout: return fmt::format("command_timeout of {}", which);
    case FaultKind::data_crc: return fmt::format("data_crc on block {} of {}", f.block, which);
    case FaultKind::extended_busy: return fmt::format("extended_busy of {} after {}", format_duration(f.extra), which);
  }
  return "?";
}

}  // namespace emmcsim::models
