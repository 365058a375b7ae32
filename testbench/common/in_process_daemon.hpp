// InProcessDaemon: what `emmcsim serve` runs, inside a test's own process — a card on a memory
// image, the untimed bus to it, a StrandDevicePort on an io_context, and a log kept in memory —
// with the fronts a test asks for on that one port: a BridgeServer (add_bridge), a
// VhostUserBackend serving virtio-rpmb (add_vhost_user), or both.
//
// A front is created but not started: the test calls its start() (and sees a SocketSetupError
// there). start_threads() runs the io_context on threads; stop_servers() stops the fronts on an
// io thread, as the daemon's signal handler would; shutdown() (also the destructor) stops them
// and joins the threads.
#pragma once

#include <spdlog/logger.h>
#include <spdlog/sinks/ringbuffer_sink.h>

#include <algorithm>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <cstddef>
#include <future>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "emmcsim/mmc/card.hpp"
#include "emmcsim/mmc/device_config.hpp"
#include "emmcsim/mmc/host_bus.hpp"
#include "emmcsim/mmc/image.hpp"
#include "emmcsim/transport/bridge_server.hpp"
#include "emmcsim/transport/device_port.hpp"
#include "emmcsim/transport/vhost_user_backend.hpp"
#include "emmcsim/transport/virtio_rpmb_device.hpp"

namespace emmcsim::testing {

class InProcessDaemon {
 public:
  // The log keeps the last `log_lines` lines, at every level down to trace.
  explicit InProcessDaemon(const mmc::DeviceConfig& config, const std::string& log_name = "daemon",
                           std::size_t log_lines = 1024)
      : config_(config),
        image_(config_),
        card_(config_, image_.backend()),
        bus_(card_),
        sink_(std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(log_lines)),
        log_(std::make_shared<spdlog::logger>(log_name, sink_)),
        port_(io_, bus_),
        work_(boost::asio::make_work_guard(io_)) {
    log_->set_level(spdlog::level::trace);
  }
  ~InProcessDaemon() { shutdown(); }
  InProcessDaemon(const InProcessDaemon&) = delete;
  InProcessDaemon& operator=(const InProcessDaemon&) = delete;

  // The MMC-ioctl bridge on `socket_path`.
  transport::BridgeServer& add_bridge(const std::string& socket_path,
                                      std::size_t max_clients = transport::BridgeServer::kDefaultMaxClients) {
    bridge_ = std::make_unique<transport::BridgeServer>(io_, port_, log_, socket_path, max_clients);
    return *bridge_;
  }
  // The card's RPMB partition as virtio-rpmb, served by a vhost-user back-end on `socket_path`.
  transport::VhostUserBackend& add_vhost_user(const std::string& socket_path) {
    virtio_rpmb_ = std::make_unique<transport::VirtioRpmbDevice>(
        port_, transport::VirtioRpmbConfig::for_card(port_.description().rpmb_size_mult, config_.en_rpmb_rel_wr));
    vhost_user_ = std::make_unique<transport::VhostUserBackend>(io_, *virtio_rpmb_, log_, socket_path);
    return *vhost_user_;
  }

  void start_threads(unsigned count = 2) {
    for (unsigned i = 0; i < count; ++i) threads_.emplace_back([this] { io_.run(); });
  }
  // Stops the fronts on an io thread (or here, when no thread runs the io_context) and waits.
  void stop_servers() {
    const auto stop = [this] {
      if (bridge_) bridge_->stop();
      if (vhost_user_) vhost_user_->stop();
    };
    if (threads_.empty()) {
      stop();
      return;
    }
    std::promise<void> done;
    boost::asio::post(io_, [&] {
      stop();
      done.set_value();
    });
    done.get_future().wait();
  }
  // Stops the fronts and joins the io threads. Without threads there is nothing to do.
  void shutdown() {
    if (threads_.empty()) return;
    stop_servers();
    work_.reset();
    for (std::thread& t : threads_) t.join();
    threads_.clear();
  }

  const mmc::DeviceConfig& config() const { return config_; }
  mmc::Card& card() { return card_; }
  boost::asio::io_context& io() { return io_; }
  transport::StrandDevicePort& port() { return port_; }
  transport::BridgeServer& bridge() { return checked(bridge_, "add_bridge"); }
  transport::VhostUserBackend& vhost_user() { return checked(vhost_user_, "add_vhost_user"); }
  spdlog::logger& log() { return *log_; }

  // Lines logged at `level` that contain `text`.
  std::size_t lines_containing(spdlog::level::level_enum level, const std::string& text) const {
    std::size_t n = 0;
    for (const auto& m : sink_->last_raw()) {
      if (m.level == level && std::string(m.payload.data(), m.payload.size()).find(text) != std::string::npos) ++n;
    }
    return n;
  }
  std::size_t warnings_containing(const std::string& text) const { return lines_containing(spdlog::level::warn, text); }
  std::size_t debug_lines_containing(const std::string& text) const {
    return lines_containing(spdlog::level::debug, text);
  }
  std::size_t warnings() const {
    const auto all = sink_->last_raw();
    return static_cast<std::size_t>(
        std::count_if(all.begin(), all.end(), [](const auto& m) { return m.level == spdlog::level::warn; }));
  }
  // The whole log kept, formatted.
  std::string log_text() const {
    std::string all;
    for (const auto& line : sink_->last_formatted()) all += line;
    return all;
  }

 private:
  template <typename Server>
  static Server& checked(const std::unique_ptr<Server>& server, const char* add) {
    if (!server) throw std::logic_error(std::string("InProcessDaemon: call ") + add + "() first");
    return *server;
  }

  mmc::DeviceConfig config_;
  mmc::MemoryImage image_;
  mmc::Card card_;
  mmc::CardHostBus bus_;
  boost::asio::io_context io_;
  std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> sink_;
  std::shared_ptr<spdlog::logger> log_;
  transport::StrandDevicePort port_;
  std::unique_ptr<transport::VirtioRpmbDevice> virtio_rpmb_;
  std::unique_ptr<transport::VhostUserBackend> vhost_user_;
  std::unique_ptr<transport::BridgeServer> bridge_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  std::vector<std::thread> threads_;
};

}  // namespace emmcsim::testing
