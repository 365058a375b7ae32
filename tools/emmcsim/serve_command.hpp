// `emmcsim serve`: the daemon. It opens (or creates) an image directory, brings the card up as
// Linux would, and serves the MMC-ioctl bridge on a Unix socket until SIGINT or SIGTERM.
#pragma once

#include <CLI/CLI.hpp>

#include "command.hpp"

namespace emmcsim::tools {

void add_serve_command(CLI::App& app, Command& selected);

}  // namespace emmcsim::tools
