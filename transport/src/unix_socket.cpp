// Unix-socket setup shared by the daemon's servers (see unix_socket.hpp).
#include "emmcsim/transport/unix_socket.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace emmcsim::transport {

namespace asio = boost::asio;
using stream_protocol = asio::local::stream_protocol;

void prepare_socket_directory(const std::string& dir) {
  if (dir.empty()) return;
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0) {
    if (errno != ENOENT) throw SocketSetupError("cannot use " + dir + ": " + std::strerror(errno));
    const std::size_t slash = dir.find_last_of('/');
    if (slash != std::string::npos && slash > 0) {
      const std::string parent = dir.substr(0, slash);
      struct stat pst {};
      if (::stat(parent.c_str(), &pst) != 0) prepare_socket_directory(parent);
    }
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
      throw SocketSetupError("cannot create " + dir + ": " + std::strerror(errno));
    if (::lstat(dir.c_str(), &st) != 0) throw SocketSetupError("cannot use " + dir + ": " + std::strerror(errno));
    if (::chmod(dir.c_str(), 0700) != 0) throw SocketSetupError("cannot chmod " + dir + ": " + std::strerror(errno));
    return;
  }
  if (!S_ISDIR(st.st_mode)) throw SocketSetupError(dir + " is not a directory");
}

namespace {

// A directory the daemon created (or the user's own runtime dir) must not be someone else's.
void check_socket_directory(const std::string& dir) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) throw SocketSetupError("cannot use " + dir + ": " + std::strerror(errno));
  if (st.st_uid != ::getuid())
    throw SocketSetupError("refusing " + dir + ": it belongs to uid " + std::to_string(st.st_uid) + ", not to you");
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0 && (st.st_mode & S_ISVTX) == 0)
    throw SocketSetupError("refusing " + dir + ": other users may write to it (chmod 0700 it)");
}

bool someone_listens(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  const bool connected = ::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) == 0;
  ::close(fd);
  return connected;
}

}  // namespace

void listen_on_unix_socket(stream_protocol::acceptor& acceptor, const std::string& path) {
  if (path.empty() || path.size() >= sizeof(sockaddr_un::sun_path))
    throw SocketSetupError("socket path '" + path + "' is empty or longer than 107 bytes");
  const std::size_t slash = path.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  prepare_socket_directory(dir);
  if (dir != "/" && dir != ".") check_socket_directory(dir);

  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) throw SocketSetupError("refusing " + path + ": it exists and is not a socket");
    if (someone_listens(path)) throw SocketSetupError(path + " is in use: another daemon listens there");
    ::unlink(path.c_str());  // stale, from a daemon that was killed
  }
  // The socket is created 0600: nobody else may drive the card.
  const mode_t old_mask = ::umask(0177);
  boost::system::error_code ec;
  acceptor.open(stream_protocol(), ec);
  if (!ec) acceptor.bind(stream_protocol::endpoint(path), ec);
  ::umask(old_mask);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) throw SocketSetupError("cannot listen on " + path + ": " + ec.message());
  if (::chmod(path.c_str(), 0600) != 0) throw SocketSetupError("cannot chmod " + path + ": " + std::strerror(errno));
}

void remove_socket_file(const std::string& path) { ::unlink(path.c_str()); }

UnixSocketListener::UnixSocketListener(asio::io_context& io, std::string path, std::shared_ptr<spdlog::logger> log)
    : path_(std::move(path)), log_(std::move(log)), acceptor_(io) {}

UnixSocketListener::~UnixSocketListener() { stop(); }

void UnixSocketListener::start(AcceptHandler on_accept) {
  std::lock_guard<std::mutex> lock(mutex_);
  listen_on_unix_socket(acceptor_, path_);
  on_accept_ = std::move(on_accept);
  accept_next();
}

void UnixSocketListener::stop() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (stopped_) return;
  stopped_ = true;
  if (acceptor_.is_open()) {
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    remove_socket_file(path_);
  }
}

void UnixSocketListener::accept_next() {
  acceptor_.async_accept([this](boost::system::error_code ec, stream_protocol::socket socket) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopped_) return;
    if (ec) {
      if (ec != asio::error::operation_aborted) log_->error("accept on {}: {}", path_, ec.message());
    } else {
      on_accept_(std::move(socket));
    }
    if (acceptor_.is_open()) accept_next();
  });
}

}  // namespace emmcsim::transport
