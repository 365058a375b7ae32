// BridgeServer and its sessions (see bridge_server.hpp).
#include "emmcsim/transport/bridge_server.hpp"

#include <spdlog/spdlog.h>

#include <array>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <cstring>
#include <vector>

namespace emmcsim::transport {

namespace asio = boost::asio;
using stream_protocol = asio::local::stream_protocol;

class BridgeSession : public std::enable_shared_from_this<BridgeSession> {
 public:
  BridgeSession(BridgeServer& server, stream_protocol::socket socket, std::uint64_t id)
      : server_(server), socket_(std::move(socket)), strand_(asio::make_strand(server.io_)), id_(id) {}

  void start() {
    asio::post(strand_, [self = shared_from_this()] { self->read_header(); });
  }
  void close() {
    asio::post(strand_, [self = shared_from_this()] {
      boost::system::error_code ignored;
      self->socket_.shutdown(stream_protocol::socket::shutdown_both, ignored);
      self->socket_.close(ignored);
    });
  }

 private:
  void read_header() {
    asio::async_read(
        socket_, asio::buffer(header_),
        asio::bind_executor(strand_, [self = shared_from_this()](boost::system::error_code ec, std::size_t received) {
          if (ec) {
            if (ec == asio::error::eof && received > 0)
              self->server_.log_->warn(
                  "client {}: message truncated: {} of {} header bytes before the connection closed", self->id_,
                  received, bridge::kHeaderSize);
            return self->finish(ec);
          }
          self->on_header();
        }));
  }

  void on_header() {
    try {
      header_decoded_ = bridge::decode_header(header_.data(), header_.size());
    } catch (const bridge::ProtocolError& e) {
      return reject(0, e);
    }
    payload_.resize(header_decoded_.payload_length);
    asio::async_read(
        socket_, asio::buffer(payload_),
        asio::bind_executor(strand_, [self = shared_from_this()](boost::system::error_code ec, std::size_t received) {
          if (ec) {
            if (ec == asio::error::eof)
              self->server_.log_->warn(
                  "client {}: message truncated: {} of {} payload bytes before the connection closed", self->id_,
                  received, self->header_decoded_.payload_length);
            return self->finish(ec);
          }
          self->on_payload();
        }));
  }

  void on_payload() {
    bridge::Request request;
    try {
      request = bridge::decode_request(header_decoded_, payload_.data(), payload_.size());
    } catch (const bridge::ProtocolError& e) {
      return reject(header_decoded_.request_id, e);
    }
    payload_.clear();
    payload_.shrink_to_fit();
    server_.log_->debug("client {}: request {} ({})", id_, header_decoded_.request_id, describe_request(request));
    const std::uint32_t request_id = header_decoded_.request_id;
    server_.device_.submit(std::move(request), [self = shared_from_this(), request_id](bridge::Reply reply) {
      asio::post(self->strand_, [self, request_id, reply = std::move(reply)]() mutable {
        self->log_reply(request_id, reply);
        self->send(request_id, std::move(reply), false);
      });
    });
  }

  // "client 3: request 7 done: ok, 52.090 us simulated" (debug level).
  void log_reply(std::uint32_t request_id, const bridge::Reply& reply) const {
    if (!server_.log_->should_log(spdlog::level::debug)) return;
    const bridge::ReplyStatus& status =
        std::visit([](const auto& r) -> const bridge::ReplyStatus& { return r.status; }, reply);
    const std::string result = status.error == 0 ? std::string("ok") : std::strerror(status.error);
    if ((status.flags & bridge::ReplyStatus::kTimed) != 0) {
      server_.log_->debug("client {}: request {} done: {}, {:.3f} us simulated", id_, request_id, result,
                          static_cast<double>(status.simulated_ps) / 1e6);
    } else {
      server_.log_->debug("client {}: request {} done: {}", id_, request_id, result);
    }
  }

  // Answers a message that did not decode, then reads on or (fatal) closes.
  void reject(std::uint32_t request_id, const bridge::ProtocolError& e) {
    server_.log_->warn("client {}: {}{}", id_, e.what(), e.fatal() ? "; closing the connection" : "");
    send(request_id, bridge::ErrorReply{bridge::ReplyStatus{e.error(), 0, 0}, e.what()}, e.fatal());
  }

  void send(std::uint32_t request_id, bridge::Reply reply, bool close_after) {
    try {
      out_ = bridge::encode_reply(request_id, reply);
    } catch (const bridge::ProtocolError& e) {
      out_ = bridge::encode_reply(request_id, bridge::ErrorReply{bridge::ReplyStatus{e.error(), 0, 0}, e.what()});
    }
    asio::async_write(socket_, asio::buffer(out_),
                      asio::bind_executor(
                          strand_, [self = shared_from_this(), close_after](boost::system::error_code ec, std::size_t) {
                            self->out_.clear();
                            if (ec || close_after) return self->finish(ec);
                            self->read_header();
                          }));
  }

  void finish(boost::system::error_code ec) {
    if (ec && ec != asio::error::eof && ec != asio::error::operation_aborted && ec != asio::error::connection_reset &&
        ec != asio::error::broken_pipe)
      server_.log_->info("client {}: {}", id_, ec.message());
    server_.log_->debug("client {}: disconnected", id_);
    boost::system::error_code ignored;
    socket_.close(ignored);
    server_.forget(shared_from_this());
  }

  static std::string describe_request(const bridge::Request& request) {
    struct Visitor {
      std::string operator()(const bridge::IoctlRequest& q) const {
        std::string s =
            std::string(q.multi ? "MMC_IOC_MULTI_CMD" : "MMC_IOC_CMD") + " on " + bridge::node_name(q.node) + ":";
        for (const auto& c : q.commands) s += " CMD" + std::to_string(c.opcode);
        return s;
      }
      std::string operator()(const bridge::BlockReadRequest& q) const {
        return "read " + std::to_string(q.length) + " bytes at " + std::to_string(q.offset) + " of " +
               bridge::node_name(q.node);
      }
      std::string operator()(const bridge::BlockWriteRequest& q) const {
        return "write " + std::to_string(q.data.size()) + " bytes at " + std::to_string(q.offset) + " of " +
               bridge::node_name(q.node);
      }
      std::string operator()(const bridge::FlushRequest& q) const {
        return std::string("flush ") + bridge::node_name(q.node);
      }
      std::string operator()(const bridge::DescribeRequest&) const { return "describe"; }
    };
    return std::visit(Visitor{}, request);
  }

  BridgeServer& server_;
  stream_protocol::socket socket_;
  asio::strand<asio::io_context::executor_type> strand_;
  std::uint64_t id_;
  std::array<std::uint8_t, bridge::kHeaderSize> header_{};
  bridge::MessageHeader header_decoded_;
  std::vector<std::uint8_t> payload_;
  std::vector<std::uint8_t> out_;
};

BridgeServer::BridgeServer(asio::io_context& io, DevicePort& device, std::shared_ptr<spdlog::logger> log,
                           std::string socket_path, std::size_t max_clients)
    : io_(io), device_(device), log_(log), max_clients_(max_clients), listener_(io, std::move(socket_path), log) {}

BridgeServer::~BridgeServer() { stop(); }

void BridgeServer::start() {
  listener_.start([this](stream_protocol::socket socket) { accepted(std::move(socket)); });
}

void BridgeServer::accepted(stream_protocol::socket socket) {
  std::shared_ptr<BridgeSession> session;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopped_) return;
    if (sessions_.size() >= max_clients_) {
      log_->warn("refusing a client: {} are connected already", max_clients_);
      return;
    }
    session = std::make_shared<BridgeSession>(*this, std::move(socket), next_client_id_++);
    sessions_.insert(session);
    log_->debug("client connected ({} now)", sessions_.size());
  }
  session->start();
}

void BridgeServer::forget(const std::shared_ptr<BridgeSession>& session) {
  std::lock_guard<std::mutex> lock(mutex_);
  sessions_.erase(session);
}

std::size_t BridgeServer::client_count() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return sessions_.size();
}

void BridgeServer::stop() {
  listener_.stop();  // first, without mutex_: no client is accepted after it
  std::set<std::shared_ptr<BridgeSession>> sessions;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopped_) return;
    stopped_ = true;
    sessions.swap(sessions_);
  }
  for (const auto& session : sessions) session->close();
}

}  // namespace emmcsim::transport
