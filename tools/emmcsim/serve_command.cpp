// `emmcsim serve` (see serve_command.hpp).
#include "serve_command.hpp"

#include <fmt/format.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <systemc>
#include <iostream>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "emmcsim/mmc/card.hpp"
#include "emmcsim/mmc/host_bus.hpp"
#include "emmcsim/mmc/image.hpp"
#include "emmcsim/models/bus_trace.hpp"
#include "emmcsim/models/timing_profile.hpp"
#include "emmcsim/rpmb/protocol.hpp"
#include "emmcsim/transport/bridge_client.hpp"
#include "emmcsim/transport/bridge_server.hpp"
#include "emmcsim/transport/device_port.hpp"
#include "emmcsim/transport/time_travel_calendar.hpp"
#include "emmcsim/transport/vhost_user_backend.hpp"
#include "emmcsim/transport/virtio_pcidev.hpp"
#include "emmcsim/transport/virtio_pcidev_device.hpp"
#include "emmcsim/transport/virtio_rpmb_device.hpp"
#include "image_command.hpp"
#include "time_travel_clock.hpp"
#include "timed_device_port.hpp"
#include "timing_command.hpp"

namespace emmcsim::tools {
namespace {

namespace asio = boost::asio;

// --timing: the untimed card, or the SystemC model with bus and NAND timing.
enum class Timing { off, approximate };

// --log-level's words (spdlog's levels).
Words<spdlog::level::level_enum> log_level_words() {
  return {{"trace", spdlog::level::trace}, {"debug", spdlog::level::debug}, {"info", spdlog::level::info},
          {"warn", spdlog::level::warn},   {"error", spdlog::level::err},   {"off", spdlog::level::off}};
}

struct ServeOptions {
  std::string image_dir;
  std::string config_file;
  std::string socket_path;
  std::string vhost_user_socket_path;   // empty: no virtio-rpmb
  std::string uml_pci_socket_path;      // empty: no PCI controller for User-Mode Linux
  std::string time_travel_socket_path;  // empty: the guest's clock is the host's
  std::uint64_t time_of_day = 0;        // seconds since the epoch at simulated time 0 (time_of_day_given)
  bool time_of_day_given = false;
  spdlog::level::level_enum log_level = spdlog::level::warn;
  std::optional<Timing> timing;  // absent: approximate with --uml-pci-socket, else off
  std::string timing_profile_file;
  std::string bus_trace_file;
  std::string fault_plan_file;
  rpmb::Durability durability = rpmb::Durability::sync_every_commit;
  unsigned threads = 2;
};

// `check` sees the device configuration before a new image is created (and after an existing
// one is opened); it throws to refuse it.
std::unique_ptr<mmc::Image> open_or_create_image(const ServeOptions& o, spdlog::logger& log,
                                                 const std::function<void(const mmc::DeviceConfig&)>& check) {
  namespace fs = std::filesystem;
  const rpmb::Durability durability = o.durability;
  std::error_code ec;
  if (fs::exists(fs::path(o.image_dir) / mmc::Image::kConfigFile, ec)) {
    if (!o.config_file.empty())
      throw UsageError(
          fmt::format("{} exists already; --config only applies when serve creates the image", o.image_dir));
    auto image = mmc::Image::open(o.image_dir, durability);
    check(image->config());
    return image;
  }
  const mmc::DeviceConfig config =
      o.config_file.empty() ? mmc::default_device_config() : read_config_file(o.config_file);
  check(config);
  mmc::ImageCreateOptions create;
  create.durability = durability;
  auto image = mmc::Image::create(o.image_dir, config, create);
  log.info("created image {} ({})", o.image_dir, o.config_file.empty() ? "default configuration" : o.config_file);
  return image;
}

// SystemC reports (the timed model's warnings) go to the daemon's log like everything else.
spdlog::logger* systemc_log = nullptr;
void log_systemc_report(const sc_core::sc_report& report, const sc_core::sc_actions& actions) {
  if (systemc_log != nullptr) {
    const auto level = report.get_severity() == sc_core::SC_INFO      ? spdlog::level::info
                       : report.get_severity() == sc_core::SC_WARNING ? spdlog::level::warn
                                                                      : spdlog::level::err;
    systemc_log->log(level, "{}: {}", report.get_msg_type(), report.get_msg());
  }
  if ((actions & sc_core::SC_THROW) != 0) throw report;
}

int run_serve(const ServeOptions& o) {
  const bool pci = !o.uml_pci_socket_path.empty();
  if (pci && o.timing == Timing::off)
    throw UsageError(
        "--uml-pci-socket serves the timed models (a GL9763E SDHCI and the eMMC on its bus): it needs --timing "
        "approximate, the default with it; --timing off is the untimed card, which has no controller to drive");
  const bool time_travel = !o.time_travel_socket_path.empty();
  if (time_travel && !pci)
    throw UsageError(
        "--time-travel-socket schedules the clock of the User-Mode Linux guest of --uml-pci-socket: add it");
  if (o.time_of_day_given && !time_travel)
    throw UsageError("--time-of-day is the time-travel guest's clock at simulated time 0: add --time-travel-socket");
  const bool timed = o.timing.value_or(pci ? Timing::approximate : Timing::off) == Timing::approximate;
  if (!timed && !o.timing_profile_file.empty())
    throw UsageError("--timing-profile applies to the timed model only: add --timing approximate");
  if (!timed && !o.bus_trace_file.empty())
    throw UsageError("--bus-trace records the timed model's bus: add --timing approximate");
  if (!timed && !o.fault_plan_file.empty())
    throw UsageError("--fault-plan injects faults on the timed model's bus: add --timing approximate");
  const models::FaultPlan fault_plan =
      o.fault_plan_file.empty() ? models::FaultPlan{} : read_fault_plan_file(o.fault_plan_file);
  // Read before anything is created, so a bad profile leaves nothing behind.
  const models::TimingProfile profile = o.timing_profile_file.empty() ? models::default_timing_profile()
                                                                      : read_timing_profile_file(o.timing_profile_file);
  std::unique_ptr<std::ofstream> bus_trace;
  if (!o.bus_trace_file.empty()) {
    bus_trace = std::make_unique<std::ofstream>(o.bus_trace_file, std::ios::out | std::ios::trunc);
    if (!*bus_trace)
      throw UsageError(fmt::format("--bus-trace {}: cannot create it: {}", o.bus_trace_file, std::strerror(errno)));
  }
  auto log = std::make_shared<spdlog::logger>("emmcsim", std::make_shared<spdlog::sinks::stderr_sink_mt>());
  log->set_pattern("emmcsim: [%l] %v");
  log->set_level(o.log_level);
  log->flush_on(spdlog::level::trace);

  const std::string socket_path = o.socket_path.empty() ? transport::bridge::default_socket_path() : o.socket_path;
  if (!o.vhost_user_socket_path.empty() && o.vhost_user_socket_path == socket_path)
    throw UsageError("--vhost-user-socket and the MMC-ioctl bridge socket must be different paths (both are " +
                     socket_path + ")");
  if (pci && (o.uml_pci_socket_path == socket_path || o.uml_pci_socket_path == o.vhost_user_socket_path))
    throw UsageError("--uml-pci-socket must be a path of its own (" + o.uml_pci_socket_path +
                     " is another front's socket)");
  if (time_travel &&
      (o.time_travel_socket_path == socket_path || o.time_travel_socket_path == o.vhost_user_socket_path ||
       o.time_travel_socket_path == o.uml_pci_socket_path))
    throw UsageError("--time-travel-socket must be a path of its own (" + o.time_travel_socket_path +
                     " is another front's socket)");
  std::unique_ptr<mmc::Image> image = open_or_create_image(o, *log, [&](const mmc::DeviceConfig& config) {
    if (!timed) return;
    try {
      models::validate(profile, config);
    } catch (const models::TimingProfileError& e) {
      throw UsageError(
          fmt::format("{}{}", o.timing_profile_file.empty() ? "" : o.timing_profile_file + ": ", e.what()));
    }
  });

  asio::io_context io;
  auto on_failure = [log](const std::string& what) { log->error("device: {}", what); };
  // The untimed card with its bus, or the timed SystemC model: the servers see a DevicePort.
  std::unique_ptr<mmc::Card> card;
  std::unique_ptr<mmc::CardHostBus> bus;
  std::unique_ptr<transport::DevicePort> device;
  PciControllerFront* pci_controller = nullptr;  // owned by the timed port
  models::TimeGate* time_gate = nullptr;         // likewise
  std::string timing_text;
  if (timed) {
    systemc_log = log.get();
    sc_core::sc_report_handler::set_handler(&log_systemc_report);
    TimedBusTrace trace;
    if (bus_trace) {
      trace.format = models::bus_trace_format_for(o.bus_trace_file);
      trace.out = std::move(bus_trace);
    }
    auto timed_port = std::make_unique<TimedDevicePort>(image->config(), image->backend(), profile, on_failure,
                                                        std::move(trace), pci ? log : nullptr, time_travel);
    pci_controller = timed_port->pci_controller();
    time_gate = timed_port->time_gate();
    timing_text = ", timed: " + timed_port->bus_description();
    if (!fault_plan.empty()) {
      timing_text +=
          fmt::format(", {} fault{} planned", fault_plan.faults.size(), fault_plan.faults.size() == 1 ? "" : "s");
      for (const models::Fault& f : fault_plan.faults) log->info("fault plan: {}", models::describe_fault(f));
      timed_port->set_fault_plan(fault_plan);
    }
    device = std::move(timed_port);
  } else {
    card = std::make_unique<mmc::Card>(image->config(), image->backend());
    bus = std::make_unique<mmc::CardHostBus>(*card);
    device = std::make_unique<transport::StrandDevicePort>(io, *bus, on_failure);
  }
  transport::BridgeServer server(io, *device, log, socket_path);
  // virtio-rpmb over vhost-user: the same device port, so the same RPMB state as the bridge's.
  const mmc::DeviceConfig& config = image->config();
  transport::VirtioRpmbDevice virtio_rpmb(
      *device, transport::VirtioRpmbConfig::for_card(static_cast<std::uint32_t>(config.rpmb_size / rpmb::kSizeMultUnit),
                                                     config.en_rpmb_rel_wr));
  std::unique_ptr<transport::VhostUserBackend> vhost_user;
  if (!o.vhost_user_socket_path.empty())
    vhost_user = std::make_unique<transport::VhostUserBackend>(io, virtio_rpmb, log, o.vhost_user_socket_path);
  // The PCI SD host controller for a User-Mode Linux guest: virtio-pcidev over vhost-user.
  std::unique_ptr<transport::VirtioPcidevDevice> pcidev;
  std::unique_ptr<transport::VhostUserBackend> uml_pci;
  if (pci_controller != nullptr) {
    pcidev = std::make_unique<transport::VirtioPcidevDevice>(*pci_controller);
    uml_pci = std::make_unique<transport::VhostUserBackend>(io, *pcidev, log, o.uml_pci_socket_path);
  }
  // Time travel: the guest's clock is the simulation's (docs/linux.md "Deterministic runs").
  std::unique_ptr<TimeTravelClock> clock;
  std::unique_ptr<transport::TimeTravelCalendar> calendar;
  if (time_travel) {
    clock = std::make_unique<TimeTravelClock>(*time_gate, *pci_controller);
    transport::TimeTravelScheduler::Options calendar_options;
    if (o.time_of_day_given) calendar_options.time_of_day_base_ns = o.time_of_day * 1'000'000'000ull;
    calendar =
        std::make_unique<transport::TimeTravelCalendar>(io, *clock, calendar_options, log, o.time_travel_socket_path);
    clock->connect(*calendar, *uml_pci);
  }
  int exit_status = 0;
  auto work = asio::make_work_guard(io);
  // The handlers are in place before the line that says where it listens: a client that stops
  // the daemon as soon as it is listening gets a clean shutdown, not the default SIGTERM death.
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& ec, int signal_number) {
    if (ec) return;
    log->info("{}: shutting down", signal_number == SIGINT ? "SIGINT" : "SIGTERM");
    server.stop();
    if (vhost_user) vhost_user->stop();
    if (uml_pci) uml_pci->stop();
    if (calendar) calendar->stop();
    // The port completes on the device's owner (a strand, or the SystemC kernel thread): finish
    // on the io_context, where `work` and `exit_status` live.
    device->shutdown([&](int error) {
      asio::post(io, [&, error] {
        if (error != 0) {
          log->error("flushing the card's cache failed: {}", std::strerror(error));
          exit_status = 1;
        }
        work.reset();
        io.stop();
      });
    });
  });
  server.start();
  if (vhost_user) {
    vhost_user->start();
    const auto c = virtio_rpmb.config();
    std::cerr << fmt::format(
        "emmcsim: virtio-rpmb (vhost-user) on {} (capacity {} KiB, max_wr_cnt {}, max_rd_cnt {})\n",
        o.vhost_user_socket_path, c.capacity * 128, c.max_wr_cnt, c.max_rd_cnt);
  }
  if (uml_pci) {
    uml_pci->start();
    std::cerr << fmt::format(
        "emmcsim: PCI SD host controller (GL9763E 17a0:e763) for User-Mode Linux on {} "
        "(kernel command line: virtio_uml.device={}:{})\n",
        o.uml_pci_socket_path, o.uml_pci_socket_path, transport::virtio_pcidev::kVirtioDeviceId);
  }
  if (calendar) {
    calendar->start();
    std::cerr << fmt::format(
        "emmcsim: time-travel calendar for the guest's clock on {} (kernel command line: time-travel=ext:{})\n",
        o.time_travel_socket_path, o.time_travel_socket_path);
  }
  std::cerr << fmt::format("emmcsim: listening on {} (image {}{})\n", socket_path, image->directory(), timing_text)
            << std::flush;

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
  serve
      ->add_option("--image", options->image_dir, "Image directory; created with the default configuration when absent")
      ->required();
  serve->add_option("--config", options->config_file, "Device configuration (JSON) for a new image");
  serve->add_option("--mmc-socket", options->socket_path,
                    "Unix socket of the MMC-ioctl bridge (default: $XDG_RUNTIME_DIR/emmcsim/mmc.sock, or "
                    "/tmp/emmcsim-$UID/mmc.sock)");
  serve->add_option("--vhost-user-socket", options->vhost_user_socket_path,
                    "Also serve the card's RPMB partition as a virtio-rpmb device (ID 28) to a VMM's vhost-user "
                    "front-end on this Unix socket (docs/virtio-rpmb.md); the same key, counter and data as "
                    "/dev/mmcblk0rpmb");
  serve->add_option("--uml-pci-socket", options->uml_pci_socket_path,
                    "Also serve a PCI SD host controller (a GL9763E with the card on its bus, the timed models) "
                    "to a User-Mode Linux guest's virt-pci on this Unix socket: boot the kernel with "
                    "virtio_uml.device=PATH:1234 (./scripts/linux does; docs/linux.md). While the guest is "
                    "connected the card is its, and the other fronts get EBUSY");
  serve->add_option("--time-travel-socket", options->time_travel_socket_path,
                    "With --uml-pci-socket: own the guest's clock as User-Mode Linux's time-travel calendar on "
                    "this Unix socket (boot it with time-travel=ext:PATH; ./scripts/linux --deterministic does): "
                    "Linux's time is the simulated time of the bus and NAND, and a run is a pure function of its "
                    "inputs (docs/linux.md)");
  CLI::Option* time_of_day =
      serve
          ->add_option("--time-of-day", options->time_of_day,
                       "With --time-travel-socket: the guest's time of day at simulated time 0, in seconds since the "
                       "epoch (default: the host's clock when the guest starts)")
          ->check(CLI::Range(std::uint64_t{0}, std::uint64_t{1} << 33));
  serve->add_option("--log-level", options->log_level, "trace, debug, info, warn (default), error or off")
      ->transform(one_of(log_level_words()))
      ->type_name("LEVEL");
  serve
      ->add_option("--timing", options->timing,
                   "off (default): the untimed card, as fast as the host allows; approximate: the SystemC model "
                   "with eMMC bus and NAND timing, each reply carrying the request's simulated duration "
                   "(the default with --uml-pci-socket, which needs it)")
      ->transform(one_of(Words<Timing>{{"off", Timing::off}, {"approximate", Timing::approximate}}))
      ->type_name("MODE");
  serve->add_option("--timing-profile", options->timing_profile_file,
                    "Timing profile (JSON) for --timing approximate (default: `emmcsim timing default-profile`)");
  serve->add_option("--bus-trace", options->bus_trace_file,
                    "With --timing approximate: write every eMMC bus phase to FILE, with picosecond times — "
                    "FILE.vcd a waveform for GTKWave, FILE.csv a table, anything else JSON lines");
  serve->add_option("--fault-plan", options->fault_plan_file,
                    "With --timing approximate: faults to inject (JSON: command_timeout, data_crc, extended_busy by "
                    "command and occurrence, counted from the first request; docs/models.md)");
  serve
      ->add_option("--durability", options->durability,
                   "sync (default): every RPMB commit reaches the disk before it is acknowledged; os: left to the OS")
      ->transform(one_of(durability_words()))
      ->type_name("MODE");
  serve->add_option("--threads", options->threads, "Threads serving sockets (the card itself has one owner)")
      ->check(CLI::Range(1u, 64u));
  serve->callback([&selected, options, time_of_day] {
    options->time_of_day_given = time_of_day->count() > 0;
    selected = [options] { return run_serve(*options); };
  });
}

}  // namespace emmcsim::tools
