// BridgeServer: the MMC-ioctl bridge on a Unix socket (Boost.Asio). It accepts many clients,
// reads each one's requests (docs/bridge-protocol.md), hands them to a DevicePort and writes the
// replies back. One request at a time per connection; any number of connections.
//
// The socket is set up as every daemon socket is (unix_socket.hpp): 0600 in a 0700 directory,
// stale sockets replaced, a live one refused.
//
// Bad input: a request that does not decode is answered with an ErrorReply (the errno and what
// was wrong) and the connection stays; a header that cannot be trusted (magic, version, type,
// length) is answered the same way and the connection is closed. Either way one warning is
// logged; other clients never notice.
#pragma once

#include <spdlog/logger.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>

#include "emmcsim/transport/device_port.hpp"
#include "emmcsim/transport/unix_socket.hpp"

namespace emmcsim::transport {

class BridgeSession;

class BridgeServer {
 public:
  static constexpr std::size_t kDefaultMaxClients = 64;

  BridgeServer(boost::asio::io_context& io, DevicePort& device, std::shared_ptr<spdlog::logger> log,
               std::string socket_path, std::size_t max_clients = kDefaultMaxClients);
  ~BridgeServer();

  // Creates the socket and starts accepting. Throws SocketSetupError.
  void start();
  // Stops accepting, closes every connection and removes the socket file. Idempotent; call it
  // from a thread running the io_context (a signal handler's completion does).
  void stop();

  const std::string& socket_path() const { return listener_.path(); }
  std::size_t client_count() const;

 private:
  friend class BridgeSession;
  void accepted(boost::asio::local::stream_protocol::socket socket);
  void forget(const std::shared_ptr<BridgeSession>& session);

  boost::asio::io_context& io_;
  DevicePort& device_;
  std::shared_ptr<spdlog::logger> log_;
  std::size_t max_clients_;
  UnixSocketListener listener_;
  mutable std::mutex mutex_;  // guards sessions_, next_client_id_ and stopped_
  std::set<std::shared_ptr<BridgeSession>> sessions_;
  std::uint64_t next_client_id_ = 1;
  bool stopped_ = false;
};

}  // namespace emmcsim::transport
