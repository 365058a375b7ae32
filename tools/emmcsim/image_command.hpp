// `emmcsim image COMMAND`: create and inspect image directories, the on-disk form of a simulated
// eMMC (device.json plus one file per partition; see emmcsim/mmc/image.hpp).
#pragma once

#include <CLI/CLI.hpp>

#include <string>

#include "command.hpp"
#include "emmcsim/mmc/device_config.hpp"

namespace emmcsim::tools {

// Adds the `image` subcommand and its own subcommands to `app`; parsing one selects it.
void add_image_command(CLI::App& app, Command& selected);

// Reads and validates a device configuration file; errors name the file (ConfigError) or say
// why it could not be read (UsageError).
mmc::DeviceConfig read_config_file(const std::string& path);

}  // namespace emmcsim::tools
