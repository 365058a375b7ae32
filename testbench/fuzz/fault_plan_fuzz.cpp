// libFuzzer target: parse_fault_plan on arbitrary text. It either refuses the text with a
// FaultPlanError or returns a plan that respects its limits, survives to_json and reads back
// equal, and describes every fault (__builtin_trap otherwise).
#include <cstddef>
#include <cstdint>
#include <string>

#include "emmcsim/models/fault_plan.hpp"

extern "C" int sc_main(int, char**) { return 0; }

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace models = emmcsim::models;
  const std::string text(reinterpret_cast<const char*>(data), size);
  models::FaultPlan plan;
  try {
    plan = models::parse_fault_plan(text);
  } catch (const models::FaultPlanError&) {
    return 0;
  }
  if (plan.faults.size() > models::FaultPlan::kMaxFaults) __builtin_trap();
  for (const models::Fault& f : plan.faults) {
    if (f.command > 63) __builtin_trap();
    if ((f.kind == models::FaultKind::extended_busy) != (f.extra != 0)) __builtin_trap();
    if (models::describe_fault(f).empty()) __builtin_trap();
  }
  models::FaultPlan again;
  try {
    again = models::parse_fault_plan(models::to_json(plan));
  } catch (const models::FaultPlanError&) {
    __builtin_trap();  // what to_json wrote must read back
  }
  if (again != plan) __builtin_trap();
  return 0;
}
