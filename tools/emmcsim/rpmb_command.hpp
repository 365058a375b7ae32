// `emmcsim rpmb --image DIR COMMAND`: the RPMB partition of an image directory, driven through
// the same host sequences a real client uses (request burst, result read, response read).
#pragma once

#include <CLI/CLI.hpp>

#include "command.hpp"

namespace emmcsim::tools {

// Adds the `rpmb` subcommand and its own subcommands to `app`; parsing one selects it.
void add_rpmb_command(CLI::App& app, Command& selected);

}  // namespace emmcsim::tools
