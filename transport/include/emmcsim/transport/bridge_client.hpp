// A blocking client of the MMC-ioctl bridge: one connection to `emmcsim serve`, one request at a
// time. The LD_PRELOAD shim, the tests and the benchmark use it.
//
// It talks to the socket only through socket/connect/send/recv and the raw close system call, so
// it works inside the shim, which replaces read, write and close for the process.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

#include "emmcsim/transport/bridge_protocol.hpp"

namespace emmcsim::transport::bridge {

// The daemon's socket when --mmc-socket / EMMCSIM_SOCKET are not given:
// $XDG_RUNTIME_DIR/emmcsim/mmc.sock, or /tmp/emmcsim-$UID/mmc.sock without XDG_RUNTIME_DIR.
std::string default_socket_path();

// Connecting failed, the daemon went away, or it answered with something that is not the reply.
// error() is an errno for the caller to report (ENOENT / ECONNREFUSED: no daemon; EPIPE,
// ECONNRESET: it went away; EPROTO: a bad reply).
class BridgeClientError : public std::runtime_error {
 public:
  BridgeClientError(int error, const std::string& what) : std::runtime_error(what), error_(error) {}
  int error() const { return error_; }

 private:
  int error_;
};

class BridgeClient {
 public:
  // Connects; throws BridgeClientError with a message naming the path and what to do.
  explicit BridgeClient(const std::string& socket_path);
  ~BridgeClient();
  BridgeClient(const BridgeClient&) = delete;
  BridgeClient& operator=(const BridgeClient&) = delete;

  // Sends the request and waits for its reply. An ErrorReply is returned as it came.
  Reply call(const Request& request);

  // Typed calls: an ErrorReply becomes the typed reply with its status (the message is kept in
  // last_error_message()).
  IoctlReply ioctl(const IoctlRequest& request);
  BlockReadReply read(const BlockReadRequest& request);
  BlockWriteReply write(const BlockWriteRequest& request);
  FlushReply flush(const FlushRequest& request);
  DescribeReply describe();

  const std::string& last_error_message() const { return last_error_message_; }
  const std::string& socket_path() const { return path_; }

 private:
  template <typename Typed>
  Typed typed(const Request& request);
  void send_all(const std::uint8_t* p, std::size_t n);
  void receive_all(std::uint8_t* p, std::size_t n);

  std::string path_;
  int fd_ = -1;
  std::uint32_t next_request_id_ = 1;
  std::string last_error_message_;
};

}  // namespace emmcsim::transport::bridge
