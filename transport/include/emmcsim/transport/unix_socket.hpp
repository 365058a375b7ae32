// The daemon's listening sockets (the MMC-ioctl bridge, vhost-user) are set up one way: the parent
// directory is created 0700 when missing (and refused when another user owns it or others may
// write to it), the socket is created 0600, a stale socket left by a killed daemon is replaced,
// and a path where a daemon still listens is refused. UnixSocketListener is that socket and its
// accept loop, one for each server (BridgeServer, VhostUserBackend, TimeTravelCalendar).
#pragma once

#include <spdlog/logger.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>

namespace emmcsim::transport {

// The socket could not be set up: what() names the path and the reason.
class SocketSetupError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Creates `dir` (and missing parents) with mode 0700; refuses one that another user owns or that
// others may write to. Throws SocketSetupError.
void prepare_socket_directory(const std::string& dir);

// Opens, binds (mode 0600) and listens on `path` as described above. Throws SocketSetupError.
void listen_on_unix_socket(boost::asio::local::stream_protocol::acceptor& acceptor, const std::string& path);

// Unlinks the socket file (the servers' stop()).
void remove_socket_file(const std::string& path);

// A server's listening socket and its accept loop: start() listens on the path (as
// listen_on_unix_socket) and hands every accepted connection to on_accept, on an io_context
// thread; a failed accept is logged and accepting goes on. stop() closes the socket and unlinks
// the file.
//
// on_accept runs with the listener's lock held, so once stop() has returned no on_accept runs or
// will run: a server calls stop() on its listener first, without its own lock, and then ends its
// sessions. on_accept may take the server's lock; it must not call stop().
class UnixSocketListener {
 public:
  using AcceptHandler = std::function<void(boost::asio::local::stream_protocol::socket)>;

  UnixSocketListener(boost::asio::io_context& io, std::string path, std::shared_ptr<spdlog::logger> log);
  ~UnixSocketListener();

  // Throws SocketSetupError.
  void start(AcceptHandler on_accept);
  // Idempotent.
  void stop();

  const std::string& path() const { return path_; }

 private:
  void accept_next();

  std::string path_;
  std::shared_ptr<spdlog::logger> log_;
  std::mutex mutex_;  // guards acceptor_, on_accept_, stopped_
  boost::asio::local::stream_protocol::acceptor acceptor_;
  AcceptHandler on_accept_;
  bool stopped_ = false;
};

}  // namespace emmcsim::transport
