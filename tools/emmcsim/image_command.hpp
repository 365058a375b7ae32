// `emmcsim image COMMAND`: create and inspect image directories, the on-disk form of a simulated
// eMMC (device.json plus one file per partition; see emmcsim/mmc/image.hpp).
#pragma once

#include <CLI/CLI.hpp>

#include "command.hpp"

namespace emmcsim::tools {

// Adds the `image` subcommand and its own subcommands to `app`; parsing one selects it.
void add_image_command(CLI::App& app, Command& selected);

}  // namespace emmcsim::tools
