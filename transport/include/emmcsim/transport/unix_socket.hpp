// The daemon's listening sockets (the MMC-ioctl bridge, vhost-user) are set up one way: the parent
// directory is created 0700 when missing (and refused when another user owns it or others may
// write to it), the socket is created 0600, a stale socket left by a killed daemon is replaced,
// and a path where a daemon still listens is refused.
#pragma once

#include <boost/asio/local/stream_protocol.hpp>
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

}  // namespace emmcsim::transport
