// StrandDevicePort (see device_port.hpp).
#include "emmcsim/transport/device_port.hpp"

#include <boost/asio/post.hpp>
#include <cerrno>

namespace emmcsim::transport {

StrandDevicePort::StrandDevicePort(boost::asio::io_context& io, mmc::HostBus& bus,
                                   std::function<void(const std::string&)> on_failure)
    : strand_(boost::asio::make_strand(io)),
      driver_(bus),
      description_(driver_.describe()),
      on_failure_(std::move(on_failure)) {}

void StrandDevicePort::submit(bridge::Request request, Completion done) {
  boost::asio::post(strand_, [this, request = std::move(request), done = std::move(done)]() {
    bridge::Reply reply;
    try {
      reply = driver_.handle(request);
    } catch (const std::exception& e) {
      if (on_failure_) on_failure_(e.what());
      reply = bridge::ErrorReply{bridge::ReplyStatus{EIO, 0, 0}, std::string("device failure: ") + e.what()};
    }
    done(std::move(reply));
  });
}

void StrandDevicePort::shutdown(std::function<void(int)> done) {
  boost::asio::post(strand_, [this, done = std::move(done)]() {
    int error = EIO;
    try {
      error = driver_.shutdown();
    } catch (const std::exception& e) {
      if (on_failure_) on_failure_(e.what());
    }
    done(error);
  });
}

}  // namespace emmcsim::transport
