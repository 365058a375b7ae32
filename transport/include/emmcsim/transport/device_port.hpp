// DevicePort: where the servers' decoded requests run. Each device has exactly one owner, and a
// port is how other threads reach it: submit() hands a request over and returns at once; the
// reply comes back through the completion, called on the owner.
//
// StrandDevicePort is the untimed owner: an mmc::LinuxBlockDriver over an mmc::HostBus
// (mmc::CardHostBus around mmc::Card), serialized by an Asio strand, so requests from many clients
// reach the card one at a time, in arrival order, as the kernel's block queue would issue them.
// The timed port (tools/, `--timing approximate`) implements the same interface by running the
// same driver over the timed model in the SystemC kernel thread; its replies carry the simulated
// duration (ReplyStatus::kTimed).
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>
#include <functional>
#include <memory>
#include <string>

#include "emmcsim/mmc/host_bus.hpp"
#include "emmcsim/mmc/linux_block_driver.hpp"
#include "emmcsim/transport/bridge_protocol.hpp"

namespace emmcsim::transport {

class DevicePort {
 public:
  using Completion = std::function<void(bridge::Reply)>;
  virtual ~DevicePort() = default;
  virtual void submit(bridge::Request request, Completion done) = 0;
  // Runs the shutdown sequence (back to the user area, cache flushed) after every request
  // submitted before it; calls `done` with 0 or an errno.
  virtual void shutdown(std::function<void(int)> done) = 0;
};

class StrandDevicePort final : public DevicePort {
 public:
  // Probes the card (mmc::LinuxBlockDriver); `bus` must outlive the port. `on_failure` hears about
  // requests that threw (an I/O error under the card): they are answered with EIO.
  StrandDevicePort(boost::asio::io_context& io, mmc::HostBus& bus,
                   std::function<void(const std::string&)> on_failure = {});
  void submit(bridge::Request request, Completion done) override;
  void shutdown(std::function<void(int)> done) override;
  const bridge::DescribeReply& description() const { return description_; }

 private:
  boost::asio::strand<boost::asio::io_context::executor_type> strand_;
  mmc::LinuxBlockDriver driver_;
  bridge::DescribeReply description_;
  std::function<void(const std::string&)> on_failure_;
};

}  // namespace emmcsim::transport
