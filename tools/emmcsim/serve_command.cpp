// `emmcsim serve` (see serve_command.hpp).
#include "serve_command.hpp"

#include <fmt/format.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <csignal>
#include <filesystem>
#include <iostream>
#include <memory>
#include <thread>
#include <vector>

#include "emmcsim/mmc/card.hpp"
#include "emmcsim/mmc/image.hpp"
#include "emmcsim/transport/bridge_client.hpp"
#include "emmcsim/transport/bridge_server.hpp"
#include "emmcsim/transport/device_port.hpp"
#include "emmcsim/transport/mmc_bus.hpp"
#include "image_command.hpp"

namespace emmcsim::tools {
namespace {

namespace asio = boost::asio;

struct ServeOptions {
  std::string image_dir;
  std::string config_file;
  std::string socket_path;
  std::string log_level = "warn";
  std::string timing = "off";
  std::string durability = "sync";
  unsigned threads = 2;
};

std::unique_ptr<mmc::Image> open_or_create_image(const ServeOptions& o, spdlog::logger& log) {
  namespace fs = std::filesystem;
  const rpmb::Durability durability =
      o.durability == "os" ? rpmb::Durability::os_managed : rpmb::Durability::sync_every_commit;
  std::error_code ec;
  if (fs::exists(fs::path(o.image_dir) / mmc::Image::kConfigFile, ec)) {
    if (!o.config_file.empty())
      throw UsageError(fmt::format("{} exists already; --config only applies when serve creates the image",
                                   o.image_dir));
    return mmc::Image::open(o.image_dir, durability);
  }
  const mmc::DeviceConfig config = o.config_file.empty() ? mmc::default_device_config() : read_config_file(o.config_file);
  mmc::ImageCreateOptions create;
  create.durability = durability;
  auto image = mmc::Image::create(o.image_dir, config, create);
  log.info("created image {} ({})", o.image_dir, o.config_file.empty() ? "default configuration" : o.config_file);
  return image;
}

int run_serve(const ServeOptions& o) {
  if (o.timing == "approximate") {
    throw UsageError(
        "--timing approximate needs the timed SystemC device model (models/), which this build does not have "
        "yet; use --timing off. The daemon's DevicePort is where it will plug in.");
  }
  auto log = std::make_shared<spdlog::logger>("emmcsim", std::make_shared<spdlog::sinks::stderr_sink_mt>());
  log->set_pattern("emmcsim: [%l] %v");
  log->set_level(spdlog::level::from_str(o.log_level));
  log->flush_on(spdlog::level::trace);

  const std::string socket_path = o.socket_path.empty() ? transport::bridge::default_socket_path() : o.socket_path;
  std::unique_ptr<mmc::Image> image = open_or_create_image(o, *log);
  mmc::Card card(image->config(), image->backend());
  transport::CardBus bus(card);

  asio::io_context io;
  transport::StrandDevicePort device(io, bus, [log](const std::string& what) { log->error("device: {}", what); });
  transport::BridgeServer server(io, device, log, socket_path);
  server.start();
  std::cerr << fmt::format("emmcsim: listening on {} (image {})\n", socket_path, image->directory()) << std::flush;

  int exit_status = 0;
  auto work = asio::make_work_guard(io);
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& ec, int signal_number) {
    if (ec) return;
    log->info("{}: shutting down", signal_number == SIGINT ? "SIGINT" : "SIGTERM");
    server.stop();
    device.shutdown([&](int error) {
      if (error != 0) {
        log->error("flushing the card's cache failed: {}", std::strerror(error));
        exit_status = 1;
      }
      work.reset();
      io.stop();
    });
  });

  std::vector<std::thread> threads;
  for (unsigned i = 1; i < o.threads; ++i) threads.emplace_back([&io] { io.run(); });
  io.run();
  for (std::thread& t : threads) t.join();
  log->info("stopped");
  return exit_status;
}

}  // namespace

void add_serve_command(CLI::App& app, Command& selected) {
  auto options = std::make_shared<ServeOptions>();
  CLI::App* serve = app.add_subcommand(
      "serve",
      "Run the simulated card as a daemon: unmodified tools reach it through the MMC-ioctl bridge "
      "(LD_PRELOAD=build/lib/libemmcsim-mmcioctl.so mmc extcsd read /dev/mmcblk0). Stops cleanly on SIGINT/SIGTERM.");
  serve->add_option("--image", options->image_dir, "Image directory; created with the default configuration when absent")
      ->required();
  serve->add_option("--config", options->config_file, "Device configuration (JSON) for a new image");
  serve->add_option("--mmc-socket", options->socket_path,
                    "Unix socket of the MMC-ioctl bridge (default: $XDG_RUNTIME_DIR/emmcsim/mmc.sock, or "
                    "/tmp/emmcsim-$UID/mmc.sock)");
  serve->add_option("--log-level", options->log_level, "trace, debug, info, warn (default), error or off")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}));
  serve->add_option("--timing", options->timing,
                    "off (default): the untimed card; approximate: the timed SystemC model (not built yet)")
      ->check(CLI::IsMember({"off", "approximate"}));
  serve->add_option("--durability", options->durability,
                    "sync (default): every RPMB commit reaches the disk before it is acknowledged; os: left to the OS")
      ->check(CLI::IsMember({"sync", "os"}));
  serve->add_option("--threads", options->threads, "Threads serving sockets (the card itself has one owner)")
      ->check(CLI::Range(1u, 64u));
  serve->callback([&selected, options] { selected = [options] { return run_serve(*options); }; });
}

}  // namespace emmcsim::tools
