// `emmcsim timing` (see timing_command.hpp).
#include "timing_command.hpp"

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>

#include "emmcsim/mmc/image.hpp"
#include "image_command.hpp"

namespace emmcsim::tools {
namespace {

struct TimingOptions {
  std::string profile_file;
  std::string config_file;
  std::string image_dir;
};

int run_check(const TimingOptions& o) {
  if (!o.config_file.empty() && !o.image_dir.empty()) throw UsageError("give --config or --image, not both");
  const models::TimingProfile profile = read_timing_profile_file(o.profile_file);
  mmc::DeviceConfig device = mmc::default_device_config();
  std::string against = "the default device configuration";
  if (!o.config_file.empty()) {
    device = read_config_file(o.config_file);
    against = o.config_file;
  } else if (!o.image_dir.empty()) {
    device = mmc::parse_device_config([&] {
      const std::string path = o.image_dir + "/" + mmc::Image::kConfigFile;
      std::ifstream in(path, std::ios::binary);
      if (!in) throw UsageError(fmt::format("cannot read '{}': {}", path, std::strerror(errno)));
      return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    }());
    against = "image " + o.image_dir;
  }
  try {
    models::validate(profile, device);
  } catch (const models::TimingProfileError& e) {
    throw models::TimingProfileError(fmt::format("{}: {}", o.profile_file, e.what()));
  }
  std::cout << fmt::format("{}: fits {} (page {} bytes, page read {}, page program {})\n", o.profile_file, against,
                           profile.nand_page_size, models::format_duration(profile.page_read),
                           models::format_duration(profile.page_program));
  return 0;
}

}  // namespace

void add_timing_command(CLI::App& app, Command& selected) {
  auto options = std::make_shared<TimingOptions>();
  CLI::App* timing = app.add_subcommand(
      "timing",
      "Timing profiles of the timed model (`serve --timing approximate --timing-profile FILE`): what NAND page "
      "reads and programs, erases, RPMB commits and CMD6 switches cost. Durations are strings such as \"50us\".");
  timing->require_subcommand(1);
  auto* default_profile = timing->add_subcommand(
      "default-profile", "Print the embedded default timing profile as JSON, every field present: a template");
  default_profile->callback([&selected] {
    selected = [] {
      std::cout << models::to_json(models::default_timing_profile());
      return 0;
    };
  });
  auto* check = timing->add_subcommand(
      "check",
      "Check a timing profile: its syntax, and that no busy time exceeds what the device's EXT_CSD promises "
      "(GENERIC_CMD6_TIME, PARTITION_SWITCH_TIME, ERASE_TIMEOUT_MULT, TRIM_MULT, S_A_TIMEOUT, the CSD's data "
      "timeouts)");
  check->add_option("PROFILE", options->profile_file, "Timing profile (JSON)")->required();
  check->add_option("--config", options->config_file, "Device configuration to check against (default: the default)");
  check->add_option("--image", options->image_dir, "Image directory whose device.json to check against");
  check->callback([options, &selected] { selected = [options] { return run_check(*options); }; });
}

models::TimingProfile read_timing_profile_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UsageError(fmt::format("cannot read timing profile '{}': {}", path, std::strerror(errno)));
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  try {
    return models::parse_timing_profile(text);
  } catch (const models::TimingProfileError& e) {
    throw models::TimingProfileError(fmt::format("{}: {}", path, e.what()));
  }
}

models::FaultPlan read_fault_plan_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UsageError(fmt::format("cannot read fault plan '{}': {}", path, std::strerror(errno)));
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  try {
    return models::parse_fault_plan(text);
  } catch (const models::FaultPlanError& e) {
    throw UsageError(fmt::format("{}: {}", path, e.what()));
  }
}

}  // namespace emmcsim::tools
