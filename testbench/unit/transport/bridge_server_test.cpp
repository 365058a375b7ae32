// BridgeServer + StrandDevicePort in-process on a temporary Unix socket, the io_context on two
// threads, reached with BridgeClient, BridgeRpmbChannel under rpmb::Host, and raw sockets sending
// bad bytes: the requests' effects, the socket's setup (modes, stale and busy paths), bad input
// answered without disturbing other clients, concurrent clients, and stop().
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "emmcsim/mmc/card.hpp"
#include "emmcsim/mmc/device_config.hpp"
#include "emmcsim/rpmb/host.hpp"
#include "emmcsim/transport/bridge_client.hpp"
#include "emmcsim/transport/bridge_protocol.hpp"
#include "emmcsim/transport/bridge_rpmb_channel.hpp"
#include "emmcsim/transport/bridge_server.hpp"
#include "emmcsim/transport/device_port.hpp"
#include "in_process_daemon.hpp"
#include "scratch_directory.hpp"

namespace emmcsim::transport {
namespace {

using bridge::BridgeClient;
using bridge::BridgeClientError;
using bridge::Node;
using Bytes = std::vector<std::uint8_t>;

Bytes pattern(std::size_t n, std::uint32_t seed) {
  Bytes b(n);
  for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::uint8_t>(seed * 131 + i * 17 + (i >> 8));
  return b;
}

mmc::DeviceConfig test_config() {
  mmc::DeviceConfig c = mmc::default_device_config();
  c.user_capacity = 256ULL << 20;
  c.boot_partition_size = 1ULL << 20;
  c.rpmb_size = 512ULL << 10;
  return c;
}

using testing::ScratchDirectory;

mode_t mode_of(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return 0;
  return st.st_mode;
}
bool exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

// ---------------------------------------------------------------------------------------------
// A raw client: whatever bytes we like, and the replies as they come.

class RawClient {
 public:
  explicit RawClient(const std::string& path) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
    if (::connect(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0)
      throw std::runtime_error("connect failed: " + std::string(std::strerror(errno)));
    // A safety net so that a broken server fails the test instead of hanging it.
    timeval timeout{30, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  }
  ~RawClient() { ::close(fd_); }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  bool send(const Bytes& bytes) {
    std::size_t at = 0;
    while (at < bytes.size()) {
      const ssize_t n = ::send(fd_, bytes.data() + at, bytes.size() - at, MSG_NOSIGNAL);
      if (n <= 0) return false;
      at += static_cast<std::size_t>(n);
    }
    return true;
  }
  // Exactly n bytes, or nullopt when the connection ended (or the safety timeout hit).
  std::optional<Bytes> receive(std::size_t n) {
    Bytes out(n);
    std::size_t at = 0;
    while (at < n) {
      const ssize_t got = ::recv(fd_, out.data() + at, n - at, 0);
      if (got <= 0) return std::nullopt;
      at += static_cast<std::size_t>(got);
    }
    return out;
  }
  // One whole reply message: its header and decoded reply.
  std::optional<std::pair<bridge::MessageHeader, bridge::Reply>> receive_reply() {
    const auto header_bytes = receive(bridge::kHeaderSize);
    if (!header_bytes) return std::nullopt;
    const bridge::MessageHeader h = bridge::decode_header(header_bytes->data(), header_bytes->size());
    const auto payload = receive(h.payload_length);
    if (!payload) return std::nullopt;
    return std::make_pair(h, bridge::decode_reply(h, payload->data(), payload->size()));
  }
  // True when the server closed the connection (recv returns 0 or a reset).
  bool closed_by_peer() {
    std::uint8_t byte = 0;
    const ssize_t got = ::recv(fd_, &byte, 1, 0);
    return got == 0 || (got < 0 && errno == ECONNRESET);
  }

 private:
  int fd_ = -1;
};

// ---------------------------------------------------------------------------------------------
// The daemon in-process (testbench/common/in_process_daemon.hpp) with its bridge server.

class Daemon : public testing::InProcessDaemon {
 public:
  explicit Daemon(const std::string& socket_path, std::size_t max_clients = BridgeServer::kDefaultMaxClients)
      : InProcessDaemon(test_config(), "bridge-test", 256) {
    add_bridge(socket_path, max_clients);
  }
  BridgeServer& server() { return bridge(); }
  // server.stop() on an io thread, as a signal handler's completion would call it.
  void stop_server() { stop_servers(); }
};

class BridgeServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    socket_path_ = dir_.path() + "/run/emmcsim/mmc.sock";
    daemon_ = std::make_unique<Daemon>(socket_path_);
    daemon_->server().start();
    daemon_->start_threads();
  }
  void TearDown() override { daemon_.reset(); }

  ScratchDirectory dir_;
  std::string socket_path_;
  std::unique_ptr<Daemon> daemon_;
};

bridge::IoctlRequest status_request() {
  bridge::IoctlRequest q;
  q.node = Node::user;
  bridge::IoctlCommand c;
  c.opcode = 13;
  c.arg = 1u << 16;
  c.flags = 0x15;
  q.commands.push_back(c);
  return q;
}

// ---------------------------------------------------------------------------------------------
// Requests through the socket

TEST_F(BridgeServerTest, DescribeIoctlAndBlockIo) {
  BridgeClient client(socket_path_);
  const bridge::DescribeReply d = client.describe();
  EXPECT_EQ(d.status.error, 0);
  EXPECT_EQ(d.node_size[0], daemon_->config().user_capacity);
  EXPECT_EQ(d.node_size[1], daemon_->config().boot_partition_size);
  EXPECT_EQ(d.node_size[3], daemon_->config().rpmb_size);
  EXPECT_EQ(d.cid, daemon_->card().cid());

  const bridge::IoctlReply status = client.ioctl(status_request());
  EXPECT_EQ(status.status.error, 0);
  ASSERT_EQ(status.results.size(), 1u);
  EXPECT_EQ(mmc::status::current_state(status.results[0].response[0]),
            static_cast<std::uint32_t>(mmc::CardState::tran));

  bridge::IoctlRequest extcsd;
  bridge::IoctlCommand c;
  c.opcode = 8;
  c.flags = 0xB5;
  c.blksz = 512;
  c.blocks = 1;
  extcsd.commands.push_back(c);
  const bridge::IoctlReply ext = client.ioctl(extcsd);
  EXPECT_EQ(ext.status.error, 0);
  ASSERT_EQ(ext.results[0].data.size(), 512u);
  EXPECT_EQ(ext.results[0].data[168], daemon_->config().rpmb_size / (128 * 1024)) << "RPMB_SIZE_MULT";

  const Bytes data = pattern(64 * 1024, 1);
  EXPECT_EQ(client.write(bridge::BlockWriteRequest{Node::user, 1 << 20, data}).status.error, 0);
  const bridge::BlockReadReply r = client.read(bridge::BlockReadRequest{Node::user, 1 << 20, 64 * 1024});
  EXPECT_EQ(r.status.error, 0);
  EXPECT_EQ(r.data, data);
  EXPECT_EQ(client.write(bridge::BlockWriteRequest{Node::boot1, 0, pattern(512, 2)}).status.error, 0);
  EXPECT_EQ(client.read(bridge::BlockReadRequest{Node::boot1, 0, 512}).data, pattern(512, 2));
  EXPECT_EQ(client.flush(bridge::FlushRequest{Node::user}).status.error, 0);

  // Errors of the driver come back as the reply's errno, not as ErrorReply.
  const bridge::BlockReadReply beyond =
      client.read(bridge::BlockReadRequest{Node::user, daemon_->config().user_capacity, 512});
  EXPECT_EQ(beyond.status.error, EINVAL);
  EXPECT_TRUE(client.last_error_message().empty());
}

TEST_F(BridgeServerTest, DebugLogHasOneLineForEachRequestAndItsResult) {
  BridgeClient client(socket_path_);
  EXPECT_EQ(client.ioctl(status_request()).status.error, 0);
  EXPECT_EQ(client.read(bridge::BlockReadRequest{Node::user, 1ULL << 40, 512}).status.error, EINVAL);
  // A reply is logged after it is posted back to the session; the client has it by then, and the
  // log line was written before the reply was sent.
  EXPECT_EQ(daemon_->debug_lines_containing("(MMC_IOC_CMD on user: CMD13)"), 1u);
  EXPECT_EQ(daemon_->debug_lines_containing("request 1 done: ok"), 1u);
  EXPECT_EQ(daemon_->debug_lines_containing("request 2 done: Invalid argument"), 1u);
  EXPECT_EQ(daemon_->debug_lines_containing("simulated"), 0u) << "the untimed card reports no simulated time";
}

TEST_F(BridgeServerTest, RpmbThroughBridgeRpmbChannelAndHost) {
  BridgeClient client(socket_path_);
  BridgeRpmbChannel channel(client);
  rpmb::Key key{};
  for (std::size_t i = 0; i < key.size(); ++i) key[i] = static_cast<std::uint8_t>(i * 3 + 1);
  rpmb::Host host(channel, std::nullopt);

  const rpmb::HostResult programmed = host.program_key(key);
  EXPECT_TRUE(programmed.ok()) << programmed.result;
  // mmc-utils' write-type batch: reliable CMD25 of the request, CMD25 of the result read, CMD18.
  const bridge::IoctlRequest& sent = channel.last_request();
  EXPECT_EQ(sent.node, Node::rpmb);
  EXPECT_TRUE(sent.multi);
  ASSERT_EQ(sent.commands.size(), 3u);
  EXPECT_EQ(sent.commands[0].opcode, 25u);
  EXPECT_EQ(sent.commands[0].write_flag, 0x80000001u);
  EXPECT_EQ(sent.commands[1].opcode, 25u);
  EXPECT_EQ(sent.commands[1].write_flag, 1u);
  EXPECT_EQ(sent.commands[2].opcode, 18u);
  EXPECT_EQ(sent.commands[2].write_flag, 0u);
  for (const auto& c : sent.commands) {
    EXPECT_EQ(c.flags, BridgeRpmbChannel::kFlags);
    EXPECT_EQ(c.blksz, 512u);
    EXPECT_EQ(c.blocks, 1u);
  }

  const rpmb::Nonce nonce{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
  const rpmb::HostResult counter = host.read_counter(nonce);
  EXPECT_TRUE(counter.ok());
  EXPECT_EQ(counter.write_counter, 0u);
  EXPECT_EQ(counter.mac_valid, std::optional<bool>(true));
  EXPECT_EQ(channel.last_request().commands.size(), 2u);

  const Bytes data = pattern(512, 7);
  const rpmb::HostResult written = host.write(3, data.data(), 2);
  EXPECT_TRUE(written.ok()) << written.result;
  EXPECT_EQ(written.write_counter, 1u);
  EXPECT_EQ(channel.last_request().commands[0].blocks, 2u);

  const rpmb::HostResult read = host.read(3, 2);
  EXPECT_TRUE(read.ok());
  EXPECT_EQ(read.data, data);
  ASSERT_EQ(channel.last_request().commands.size(), 2u);
  EXPECT_EQ(channel.last_request().commands[1].blocks, 2u);
  // Back in the user area after all that.
  EXPECT_EQ(client.read(bridge::BlockReadRequest{Node::user, 0, 512}).status.error, 0);
}

TEST_F(BridgeServerTest, RpmbChannelReportsAFailedIoctl) {
  BridgeClient client(socket_path_);
  BridgeRpmbChannel channel(client);
  // A response read of 0 frames: CMD18 with no buffer; the kernel's CMD13 poll never sees tran.
  rpmb::Frame request = rpmb::requests::read_counter(rpmb::Nonce{});
  channel.send(&request, 1, false);
  rpmb::Frame response;
  try {
    channel.receive(&response, 0);
    ADD_FAILURE() << "no RpmbIoctlError";
  } catch (const RpmbIoctlError& e) {
    EXPECT_NE(e.error(), 0);
  }
  // The queue was cleared and the connection still serves.
  rpmb::Host host(channel, std::nullopt);
  EXPECT_EQ(host.read_counter().result, static_cast<std::uint16_t>(rpmb::ResultCode::key_not_programmed));
  EXPECT_EQ(channel.last_request().commands.size(), 2u);
}

// ---------------------------------------------------------------------------------------------
// The socket

TEST_F(BridgeServerTest, SocketIs0600InA0700DirectoryItCreated) {
  const mode_t socket_mode = mode_of(socket_path_);
  EXPECT_TRUE(S_ISSOCK(socket_mode));
  EXPECT_EQ(socket_mode & 07777, 0600u);
  for (const std::string& dir : {dir_.path() + "/run/emmcsim", dir_.path() + "/run"}) {
    const mode_t dir_mode = mode_of(dir);
    EXPECT_TRUE(S_ISDIR(dir_mode)) << dir;
    EXPECT_EQ(dir_mode & 07777, 0700u) << dir;
  }
}

TEST(BridgeServerSocket, AStaleSocketIsReplaced) {
  ScratchDirectory dir;
  const std::string path = dir.path() + "/mmc.sock";
  {  // A socket file nobody listens on: what a killed daemon leaves.
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
    ASSERT_EQ(::bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address), 0);
    ::close(fd);
  }
  ASSERT_TRUE(S_ISSOCK(mode_of(path)));
  EXPECT_THROW(BridgeClient{path}, BridgeClientError) << "stale: connecting is refused";
  Daemon daemon(path);
  ASSERT_NO_THROW(daemon.server().start());
  daemon.start_threads();
  BridgeClient client(path);
  EXPECT_EQ(client.describe().status.error, 0);
  EXPECT_EQ(mode_of(path) & 07777, 0600u);
}

TEST_F(BridgeServerTest, APathWhereAServerListensIsRefused) {
  Daemon second(socket_path_);
  try {
    second.server().start();
    ADD_FAILURE() << "a second server started on a busy socket";
  } catch (const SocketSetupError& e) {
    EXPECT_NE(std::string(e.what()).find(socket_path_), std::string::npos) << e.what();
  }
  // The first server's socket survives, also when the second one is destroyed.
  BridgeClient client(socket_path_);
  EXPECT_EQ(client.describe().status.error, 0);
}

TEST(BridgeServerSocket, ARegularFileAtThePathIsRefusedAndKept) {
  ScratchDirectory dir;
  const std::string path = dir.path() + "/mmc.sock";
  { std::ofstream(path) << "precious"; }
  {
    Daemon daemon(path);
    EXPECT_THROW(daemon.server().start(), SocketSetupError);
  }
  std::ifstream in(path);
  std::string content;
  in >> content;
  EXPECT_EQ(content, "precious");
  EXPECT_TRUE(S_ISREG(mode_of(path)));
}

TEST(BridgeServerSocket, AParentThatIsNotADirectoryIsRefused) {
  ScratchDirectory dir;
  const std::string file = dir.path() + "/file";
  { std::ofstream(file) << "x"; }
  Daemon daemon(file + "/mmc.sock");
  EXPECT_THROW(daemon.server().start(), SocketSetupError);
}

TEST(BridgeServerSocket, ADirectoryOthersMayWriteIsRefused) {
  ScratchDirectory dir;
  const std::string open_dir = dir.path() + "/open";
  ASSERT_EQ(::mkdir(open_dir.c_str(), 0700), 0);
  ASSERT_EQ(::chmod(open_dir.c_str(), 0777), 0);
  Daemon daemon(open_dir + "/mmc.sock");
  EXPECT_THROW(daemon.server().start(), SocketSetupError);
  EXPECT_FALSE(exists(open_dir + "/mmc.sock"));
}

TEST(BridgeServerSocket, ATooLongPathIsRefused) {
  Daemon daemon("/tmp/" + std::string(120, 'x'));
  EXPECT_THROW(daemon.server().start(), SocketSetupError);
}

TEST(BridgeClientSetup, ConnectingWithoutADaemonNamesThePath) {
  ScratchDirectory dir;
  const std::string path = dir.path() + "/nobody.sock";
  try {
    BridgeClient client(path);
    ADD_FAILURE() << "connected to nothing";
  } catch (const BridgeClientError& e) {
    EXPECT_EQ(e.error(), ENOENT);
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos);
  }
  try {
    BridgeClient client("/tmp/" + std::string(120, 'y'));
    ADD_FAILURE() << "accepted a path longer than sun_path";
  } catch (const BridgeClientError& e) {
    EXPECT_EQ(e.error(), ENAMETOOLONG);
  }
}

TEST(BridgeClientSetup, DefaultSocketPath) {
  const char* saved = std::getenv("XDG_RUNTIME_DIR");
  const std::string saved_value = saved != nullptr ? saved : "";
  ::setenv("XDG_RUNTIME_DIR", "/run/user/4242", 1);
  EXPECT_EQ(bridge::default_socket_path(), "/run/user/4242/emmcsim/mmc.sock");
  ::setenv("XDG_RUNTIME_DIR", "relative", 1);
  EXPECT_EQ(bridge::default_socket_path(), "/tmp/emmcsim-" + std::to_string(::getuid()) + "/mmc.sock");
  ::unsetenv("XDG_RUNTIME_DIR");
  EXPECT_EQ(bridge::default_socket_path(), "/tmp/emmcsim-" + std::to_string(::getuid()) + "/mmc.sock");
  if (saved != nullptr) ::setenv("XDG_RUNTIME_DIR", saved_value.c_str(), 1);
}

// ---------------------------------------------------------------------------------------------
// Bad input

TEST_F(BridgeServerTest, AMalformedPayloadGetsAnErrorReplyAndTheConnectionStays) {
  BridgeClient bystander(socket_path_);
  EXPECT_EQ(bystander.describe().status.error, 0);
  const std::size_t warnings_before = daemon_->warnings();

  RawClient raw(socket_path_);
  Bytes bad = bridge::encode_request(77, bridge::BlockReadRequest{Node::user, 0, 512});
  bad[bridge::kHeaderSize] = 9;  // node 9
  ASSERT_TRUE(raw.send(bad));
  auto reply = raw.receive_reply();
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->first.type, bridge::MessageType::error_reply);
  EXPECT_EQ(reply->first.request_id, 77u);
  const auto& error = std::get<bridge::ErrorReply>(reply->second);
  EXPECT_EQ(error.status.error, EINVAL);
  EXPECT_NE(error.message.find("node 9"), std::string::npos) << error.message;
  EXPECT_EQ(daemon_->warnings(), warnings_before + 1) << "one warning per bad message";
  EXPECT_EQ(daemon_->warnings_containing("node 9"), 1u);

  // An over-long command: EOVERFLOW, as the kernel reports it. Same connection.
  bridge::IoctlRequest big;
  bridge::IoctlCommand c;
  c.opcode = 18;
  c.blksz = 512;
  c.blocks = 2048;
  big.commands.push_back(c);
  ASSERT_TRUE(raw.send(bridge::encode_request(78, big)));
  reply = raw.receive_reply();
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(std::get<bridge::ErrorReply>(reply->second).status.error, EOVERFLOW);

  // Still usable: a valid request on the same connection.
  ASSERT_TRUE(raw.send(bridge::encode_request(79, bridge::DescribeRequest{})));
  reply = raw.receive_reply();
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->first.request_id, 79u);
  EXPECT_EQ(std::get<bridge::DescribeReply>(reply->second).node_size[0], daemon_->config().user_capacity);

  EXPECT_EQ(bystander.ioctl(status_request()).status.error, 0);
}

TEST_F(BridgeServerTest, AnUntrustworthyHeaderGetsAnErrorReplyAndTheConnectionCloses) {
  BridgeClient bystander(socket_path_);
  EXPECT_EQ(bystander.describe().status.error, 0);

  RawClient raw(socket_path_);
  Bytes garbage(bridge::kHeaderSize);
  for (std::size_t i = 0; i < garbage.size(); ++i) garbage[i] = static_cast<std::uint8_t>(0xA5 ^ i);
  ASSERT_TRUE(raw.send(garbage));
  const auto reply = raw.receive_reply();
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->first.type, bridge::MessageType::error_reply);
  EXPECT_EQ(std::get<bridge::ErrorReply>(reply->second).status.error, EPROTO);
  EXPECT_TRUE(raw.closed_by_peer());
  EXPECT_EQ(daemon_->warnings_containing("bad magic"), 1u);
  EXPECT_EQ(daemon_->warnings_containing("closing the connection"), 1u);

  // A header announcing more than the limit, from another client.
  RawClient greedy(socket_path_);
  Bytes header = bridge::encode_request(5, bridge::DescribeRequest{});
  const std::uint32_t too_long = static_cast<std::uint32_t>(bridge::kMaxPayload + 1);
  for (std::size_t i = 0; i < 4; ++i) header[12 + i] = static_cast<std::uint8_t>(too_long >> (8 * i));
  ASSERT_TRUE(greedy.send(header));
  const auto greedy_reply = greedy.receive_reply();
  ASSERT_TRUE(greedy_reply.has_value());
  EXPECT_EQ(std::get<bridge::ErrorReply>(greedy_reply->second).status.error, EPROTO);
  EXPECT_TRUE(greedy.closed_by_peer());

  EXPECT_EQ(bystander.ioctl(status_request()).status.error, 0);
  EXPECT_EQ(bystander.read(bridge::BlockReadRequest{Node::user, 0, 512}).status.error, 0);
}

TEST_F(BridgeServerTest, AClientVanishingMidMessageDisturbsNobody) {
  BridgeClient bystander(socket_path_);
  {
    RawClient raw(socket_path_);
    const Bytes m = bridge::encode_request(1, bridge::BlockWriteRequest{Node::user, 0, pattern(4096, 3)});
    ASSERT_TRUE(raw.send(Bytes(m.begin(), m.begin() + 100)));
  }  // closed with the payload incomplete
  EXPECT_EQ(bystander.describe().status.error, 0);
  EXPECT_EQ(bystander.read(bridge::BlockReadRequest{Node::user, 0, 4096}).data, Bytes(4096, 0))
      << "nothing half-written";
}

TEST_F(BridgeServerTest, TheClientSurfacesAnErrorReply) {
  // BridgeClient never sends a bad payload itself; a request the decoder refuses does it.
  BridgeClient client(socket_path_);
  bridge::IoctlRequest none;
  none.multi = true;  // MULTI_CMD with no commands
  const bridge::IoctlReply reply = client.ioctl(none);
  EXPECT_EQ(reply.status.error, EINVAL);
  EXPECT_NE(client.last_error_message().find("no commands"), std::string::npos) << client.last_error_message();
  EXPECT_EQ(client.describe().status.error, 0);
  EXPECT_TRUE(client.last_error_message().empty());
}

// ---------------------------------------------------------------------------------------------
// Many clients

TEST_F(BridgeServerTest, EightConcurrentClientsGetTheirOwnDataBack) {
  constexpr int kClients = 8;
  constexpr int kRounds = 50;
  constexpr std::size_t kChunk = 4096;
  std::atomic<int> mismatches{0};
  std::atomic<int> errors{0};
  std::vector<std::thread> clients;
  for (int id = 0; id < kClients; ++id) {
    clients.emplace_back([&, id] {
      try {
        BridgeClient client(socket_path_);
        const std::uint64_t region = std::uint64_t{static_cast<unsigned>(id)} * (1 << 20);
        for (int round = 0; round < kRounds; ++round) {
          const std::uint64_t offset = region + static_cast<std::uint64_t>(round) * kChunk;
          const Bytes data = pattern(kChunk, static_cast<std::uint32_t>(id * 1000 + round));
          if (client.write(bridge::BlockWriteRequest{Node::user, offset, data}).status.error != 0) ++errors;
          const bridge::BlockReadReply r = client.read(bridge::BlockReadRequest{Node::user, offset, kChunk});
          if (r.status.error != 0) ++errors;
          if (r.data != data) ++mismatches;
        }
      } catch (const std::exception&) {
        errors += 1000;
      }
    });
  }
  for (std::thread& t : clients) t.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(mismatches.load(), 0);

  // Everything is still there, read back by one client afterwards.
  BridgeClient checker(socket_path_);
  for (int id = 0; id < kClients; ++id) {
    const std::uint64_t region = std::uint64_t{static_cast<unsigned>(id)} * (1 << 20);
    const bridge::BlockReadReply r =
        checker.read(bridge::BlockReadRequest{Node::user, region + (kRounds - 1) * kChunk, kChunk});
    EXPECT_EQ(r.data, pattern(kChunk, static_cast<std::uint32_t>(id * 1000 + kRounds - 1))) << id;
  }
}

TEST_F(BridgeServerTest, ClientCountFollowsConnections) {
  std::vector<std::unique_ptr<BridgeClient>> clients;
  for (int i = 0; i < 3; ++i) {
    clients.push_back(std::make_unique<BridgeClient>(socket_path_));
    EXPECT_EQ(clients.back()->describe().status.error, 0);  // answered: the session exists
  }
  EXPECT_EQ(daemon_->server().client_count(), 3u);
}

TEST(BridgeServerLimits, ClientsBeyondTheLimitAreRefused) {
  ScratchDirectory dir;
  const std::string path = dir.path() + "/mmc.sock";
  Daemon daemon(path, 1);
  daemon.server().start();
  daemon.start_threads();
  BridgeClient first(path);
  EXPECT_EQ(first.describe().status.error, 0);
  BridgeClient second(path);  // the kernel accepts the connection; the server drops it
  EXPECT_THROW(second.describe(), BridgeClientError);
  EXPECT_EQ(daemon.warnings_containing("refusing a client"), 1u);
  EXPECT_EQ(first.describe().status.error, 0);
}

// ---------------------------------------------------------------------------------------------
// stop()

TEST_F(BridgeServerTest, StopRemovesTheSocketAndClosesClients) {
  BridgeClient client(socket_path_);
  EXPECT_EQ(client.describe().status.error, 0);
  ASSERT_TRUE(exists(socket_path_));
  daemon_->stop_server();
  EXPECT_FALSE(exists(socket_path_));
  EXPECT_EQ(daemon_->server().client_count(), 0u);
  try {
    client.describe();
    ADD_FAILURE() << "the connection survived stop()";
  } catch (const BridgeClientError& e) {
    EXPECT_TRUE(e.error() == ECONNRESET || e.error() == EPIPE) << e.error();
  }
  EXPECT_THROW(BridgeClient{socket_path_}, BridgeClientError);
  daemon_->stop_server();  // idempotent
  EXPECT_FALSE(exists(socket_path_));
}

TEST(BridgeServerStop, AServerThatNeverStartedRemovesNothing) {
  ScratchDirectory dir;
  const std::string path = dir.path() + "/mmc.sock";
  Daemon owner(path);
  owner.server().start();
  owner.start_threads();
  {
    Daemon intruder(path);
    EXPECT_THROW(intruder.server().start(), SocketSetupError);
  }  // its destructor calls stop()
  EXPECT_TRUE(exists(path));
  BridgeClient client(path);
  EXPECT_EQ(client.describe().status.error, 0);
}

// stop() while clients keep connecting: accept handlers run on one io thread while stop() runs
// on the other. Every client is served or refused cleanly; nothing is left behind.
TEST(BridgeServerStop, StopWhileClientsConnect) {
  ScratchDirectory dir;
  const std::string path = dir.path() + "/mmc.sock";
  Daemon daemon(path);
  daemon.server().start();
  daemon.start_threads();
  std::atomic<bool> running{true};
  std::atomic<int> served{0};
  std::vector<std::thread> connectors;
  for (int i = 0; i < 2; ++i) {
    connectors.emplace_back([&] {
      while (running) {
        try {
          BridgeClient client(path);
          if (client.describe().status.error == 0) ++served;
        } catch (const BridgeClientError&) {
        }
      }
    });
  }
  while (served < 50) std::this_thread::yield();
  daemon.stop_server();
  running = false;
  for (std::thread& t : connectors) t.join();
  EXPECT_FALSE(exists(path));
  EXPECT_EQ(daemon.server().client_count(), 0u);
}

}  // namespace
}  // namespace emmcsim::transport
