// The bridge client (see bridge_client.hpp).
#include "emmcsim/transport/bridge_client.hpp"

#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace emmcsim::transport::bridge {
namespace {

// close(2) without going through the (possibly interposed) libc symbol.
void raw_close(int fd) { ::syscall(SYS_close, fd); }

}  // namespace

std::string default_socket_path() {
  const char* runtime = std::getenv("XDG_RUNTIME_DIR");
  if (runtime != nullptr && runtime[0] == '/') {
    return std::string(runtime) + "/emmcsim/mmc.sock";
  }
  return "/tmp/emmcsim-" + std::to_string(::getuid()) + "/mmc.sock";
}

BridgeClient::BridgeClient(const std::string& socket_path) : path_(socket_path) {
  sockaddr_un address{};
  if (path_.empty() || path_.size() >= sizeof(address.sun_path)) {
    throw BridgeClientError(ENAMETOOLONG, "emmcsim: socket path '" + path_ + "' is empty or longer than 107 bytes");
  }
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, path_.c_str(), path_.size() + 1);
  fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) {
    throw BridgeClientError(errno, std::string("emmcsim: socket(): ") + std::strerror(errno));
  }
  if (::connect(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) != 0) {
    const int error = errno;
    raw_close(fd_);
    fd_ = -1;
    throw BridgeClientError(error, "emmcsim: cannot reach the daemon at " + path_ + ": " + std::strerror(error) +
                                       " (start it with 'emmcsim serve --image DIR', or set EMMCSIM_SOCKET)");
  }
}

BridgeClient::~BridgeClient() {
  if (fd_ >= 0) raw_close(fd_);
}

void BridgeClient::send_all(const std::uint8_t* p, std::size_t n) {
  while (n > 0) {
    const ssize_t sent = ::send(fd_, p, n, MSG_NOSIGNAL);
    if (sent < 0 && errno == EINTR) continue;
    if (sent <= 0) {
      const int error = sent < 0 ? errno : EPIPE;
      throw BridgeClientError(error, "emmcsim: lost the daemon at " + path_ + ": " + std::strerror(error));
    }
    p += sent;
    n -= static_cast<std::size_t>(sent);
  }
}

void BridgeClient::receive_all(std::uint8_t* p, std::size_t n) {
  while (n > 0) {
    const ssize_t got = ::recv(fd_, p, n, 0);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      const int error = got < 0 ? errno : ECONNRESET;
      throw BridgeClientError(error, "emmcsim: lost the daemon at " + path_ + ": " +
                                         (got == 0 ? std::string("connection closed") : std::strerror(error)));
    }
    p += got;
    n -= static_cast<std::size_t>(got);
  }
}

Reply BridgeClient::call(const Request& request) {
  if (fd_ < 0) throw BridgeClientError(ENOTCONN, "emmcsim: not connected to the daemon");
  const std::uint32_t id = next_request_id_++;
  const std::vector<std::uint8_t> message = encode_request(id, request);
  send_all(message.data(), message.size());
  std::uint8_t header_bytes[kHeaderSize];
  receive_all(header_bytes, sizeof header_bytes);
  try {
    const MessageHeader header = decode_header(header_bytes, sizeof header_bytes);
    std::vector<std::uint8_t> payload(header.payload_length);
    receive_all(payload.data(), payload.size());
    if (header.request_id != id) {
      throw BridgeClientError(EPROTO, "emmcsim: the daemon answered request " + std::to_string(header.request_id) +
                                          " instead of " + std::to_string(id));
    }
    if (header.type != MessageType::error_reply && header.type != reply_type_for(request_type(request))) {
      throw BridgeClientError(EPROTO, "emmcsim: the daemon sent a reply of the wrong type");
    }
    return decode_reply(header, payload.data(), payload.size());
  } catch (const ProtocolError& e) {
    raw_close(fd_);
    fd_ = -1;
    throw BridgeClientError(EPROTO, std::string("emmcsim: bad reply from the daemon: ") + e.what());
  }
}

template <typename Typed>
Typed BridgeClient::typed(const Request& request) {
  Reply reply = call(request);
  if (auto* error = std::get_if<ErrorReply>(&reply)) {
    last_error_message_ = error->message;
    Typed t{};
    t.status = error->status;
    return t;
  }
  last_error_message_.clear();
  return std::get<Typed>(std::move(reply));
}

IoctlReply BridgeClient::ioctl(const IoctlRequest& request) { return typed<IoctlReply>(request); }
BlockReadReply BridgeClient::read(const BlockReadRequest& request) { return typed<BlockReadReply>(request); }
BlockWriteReply BridgeClient::write(const BlockWriteRequest& request) { return typed<BlockWriteReply>(request); }
FlushReply BridgeClient::flush(const FlushRequest& request) { return typed<FlushReply>(request); }
DescribeReply BridgeClient::describe() { return typed<DescribeReply>(DescribeRequest{}); }

}  // namespace emmcsim::transport::bridge
