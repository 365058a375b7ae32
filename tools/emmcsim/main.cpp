// emmcsim: the command-line front door of the simulator.
#include <CLI/CLI.hpp>
#include <iostream>

#include "command.hpp"
#include "image_command.hpp"
#include "rpmb_command.hpp"
#include "serve_command.hpp"
#include "timing_command.hpp"

namespace {

// Every failure becomes one line on stderr and an exit status: 1 when the device refused
// (the JEDEC result is named), 2 for bad input or an unusable image.
int run_guarded(const emmcsim::tools::Command& command) {
  try {
    return command();
  } catch (const emmcsim::tools::RpmbFailure& e) {
    std::cerr << "emmcsim: " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "emmcsim: " << e.what() << "\n";
    return 2;
  }
}

}  // namespace

// libsystemc refers to sc_main; emmcsim has its own main and starts the SystemC kernel itself.
extern "C" int sc_main(int, char**) { return 0; }

int main(int argc, char** argv) {
  CLI::App app{
      "emmcsim - an eMMC 5.1 device simulator with a real, persistent RPMB partition.\n"
      "Example: emmcsim rpmb --image ./card program-key key.bin"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "emmcsim " EMMCSIM_VERSION);
  emmcsim::tools::Command selected;
  emmcsim::tools::add_image_command(app, selected);
  emmcsim::tools::add_rpmb_command(app, selected);
  emmcsim::tools::add_serve_command(app, selected);
  emmcsim::tools::add_timing_command(app, selected);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version exit 0; a bad command line is bad input like any other: status 2.
    return app.exit(e) == 0 ? 0 : 2;
  }
  return selected ? run_guarded(selected) : 0;
}
