// `emmcsim timing COMMAND`: timing profiles for the timed model (`serve --timing approximate`):
// print the embedded default, check a profile against a device configuration.
#pragma once

#include <CLI/CLI.hpp>

#include <string>

#include "command.hpp"
#include "emmcsim/models/fault_plan.hpp"
#include "emmcsim/models/timing_profile.hpp"

namespace emmcsim::tools {

void add_timing_command(CLI::App& app, Command& selected);

// Reads a timing profile file; errors name the file and the field (TimingProfileError) or say
// why it could not be read (UsageError). Not validated against a device.
models::TimingProfile read_timing_profile_file(const std::string& path);
// Throws UsageError naming the file for one that cannot be read or is not a fault plan.
models::FaultPlan read_fault_plan_file(const std::string& path);

}  // namespace emmcsim::tools
