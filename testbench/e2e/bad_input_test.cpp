// Bad input against the real daemon: `emmcsim serve` (the binary named by $EMMCSIM_BIN) on a
// temporary image and socket, fed what a broken or hostile client sends. Every byte that crosses
// the socket is untrusted (DESIGN.md): each bad message must be answered with an ErrorReply
// carrying the errno the kernel would give (or, when the byte stream cannot be trusted any more,
// the connection closed), logged as a warning, and never able to stop or disturb the daemon or
// the card. Afterwards a normal client still works, and SIGTERM still stops the daemon cleanly.
//
// The tests share one daemon and run in declaration order (do not shuffle): the last one stops it.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "emmcsim/rpmb/host.hpp"
#include "emmcsim/rpmb/protocol.hpp"
#include "emmcsim/transport/bridge_client.hpp"
#include "emmcsim/transport/bridge_protocol.hpp"
#include "emmcsim/transport/bridge_rpmb_channel.hpp"
#include "daemon_process.hpp"
#include "scratch_directory.hpp"

namespace {

namespace bridge = emmcsim::transport::bridge;
namespace rpmb = emmcsim::rpmb;
using Bytes = std::vector<std::uint8_t>;

constexpr auto kStartTimeout = std::chrono::seconds(30);
constexpr auto kStopTimeout = std::chrono::seconds(30);
constexpr int kReceiveTimeoutMs = 10000;

// ---- the daemon ----------------------------------------------------------------------------------

// The one daemon the suite shares, in a scratch directory; daemon_process.hpp starts and stops it.
struct Daemon {
  emmcsim::testing::ScratchDirectory scratch{"emmcsim-bad-input"};
  std::string socket = scratch.file("mmc.sock");
  emmcsim::e2e::DaemonProcess process{emmcsim::e2e::emmcsim_binary(),
                                      {"serve", "--image", scratch.file("card"), "--mmc-socket", socket},
                                      scratch.file("daemon.log")};
  bool started = false;
  int exit_status = -1;  // set once reaped

  std::string log() const { return process.log_tail(std::string::npos); }
  bool alive() { return process.running() && !process.exited(&exit_status); }
};

Daemon& daemon_process() {
  static Daemon d;
  return d;
}

// Starts `emmcsim serve` and waits (bounded) until it listens.
void start_daemon(Daemon& d) {
  ASSERT_FALSE(emmcsim::e2e::emmcsim_binary().empty()) << "set EMMCSIM_BIN to the emmcsim executable";
  d.started = true;
  ASSERT_NO_THROW(d.process.start(kStartTimeout));
  EXPECT_NE(d.log().find("emmcsim: listening on " + d.socket), std::string::npos) << d.log();
}

// ---- raw connections -------------------------------------------------------------------------------

class Connection {
 public:
  explicit Connection(const std::string& path) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
    if (fd_ >= 0 && ::connect(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) != 0) {
      ::close(fd_);
      fd_ = -1;
    }
  }
  ~Connection() { close(); }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  bool connected() const { return fd_ >= 0; }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  void shutdown_write() { ::shutdown(fd_, SHUT_WR); }

  // Sends everything it can; false when the daemon closed the connection first.
  bool send(const Bytes& bytes) {
    std::size_t at = 0;
    while (at < bytes.size()) {
      const ssize_t n = ::send(fd_, bytes.data() + at, bytes.size() - at, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      at += static_cast<std::size_t>(n);
    }
    return true;
  }

  enum class Got { data, closed, timeout };
  // Reads exactly n bytes (or up to the close).
  Got receive(std::uint8_t* p, std::size_t n) {
    std::size_t at = 0;
    while (at < n) {
      pollfd pfd{fd_, POLLIN, 0};
      const int ready = ::poll(&pfd, 1, kReceiveTimeoutMs);
      if (ready < 0 && errno == EINTR) continue;
      if (ready == 0) return Got::timeout;
      const ssize_t got = ::recv(fd_, p + at, n - at, 0);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) return Got::closed;  // EOF, or ECONNRESET
      at += static_cast<std::size_t>(got);
    }
    return Got::data;
  }

  // One whole message from the daemon; nullopt-like `closed` when the connection ended first.
  struct Message {
    Got got = Got::closed;
    bridge::MessageHeader header;
    Bytes payload;
  };
  Message receive_message() {
    Message m;
    std::uint8_t header[bridge::kHeaderSize];
    m.got = receive(header, sizeof header);
    if (m.got != Got::data) return m;
    m.header = bridge::decode_header(header, sizeof header);  // the daemon's own bytes: must decode
    m.payload.resize(m.header.payload_length);
    m.got = receive(m.payload.data(), m.payload.size());
    return m;
  }

 private:
  int fd_ = -1;
};

// ---- message building ------------------------------------------------------------------------------

void put32(Bytes& b, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) b.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}
void put16(Bytes& b, std::uint16_t v) {
  for (int i = 0; i < 2; ++i) b.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}

Bytes header_bytes(std::uint16_t type, std::uint32_t request_id, std::uint32_t payload_length,
                   std::uint32_t magic = bridge::kMagic, std::uint16_t version = bridge::kVersion) {
  Bytes b;
  put32(b, magic);
  put16(b, version);
  put16(b, type);
  put32(b, request_id);
  put32(b, payload_length);
  return b;
}

// An ioctl payload with `count` descriptors as given, and `data` appended.
struct Descriptor {
  std::uint32_t write_flag = 0, opcode = 0, arg = 0, flags = 0, blksz = 0, blocks = 0, data_length = 0;
};
Bytes ioctl_payload(std::uint8_t node, bool multi, std::uint32_t count, const std::vector<Descriptor>& commands,
                    const Bytes& data) {
  Bytes b{node, static_cast<std::uint8_t>(multi ? 1 : 0), 0, 0};
  put32(b, count);
  for (const Descriptor& d : commands) {
    for (std::uint32_t v :
         {d.write_flag, 0u, d.opcode, d.arg, d.flags, d.blksz, d.blocks, 0u, 0u, 0u, 0u, d.data_length})
      put32(b, v);
  }
  b.insert(b.end(), data.begin(), data.end());
  return b;
}

Bytes message(bridge::MessageType type, std::uint32_t request_id, const Bytes& payload) {
  Bytes b = header_bytes(static_cast<std::uint16_t>(type), request_id, static_cast<std::uint32_t>(payload.size()));
  b.insert(b.end(), payload.begin(), payload.end());
  return b;
}

// ---- expectations ----------------------------------------------------------------------------------

// The next message is an ErrorReply for `request_id` with `error`.
void expect_error_reply(Connection& c, std::uint32_t request_id, int error) {
  const Connection::Message m = c.receive_message();
  ASSERT_EQ(m.got, Connection::Got::data) << "no reply before the connection ended";
  ASSERT_EQ(m.header.type, bridge::MessageType::error_reply);
  EXPECT_EQ(m.header.request_id, request_id);
  const bridge::Reply reply = bridge::decode_reply(m.header, m.payload.data(), m.payload.size());
  const auto& e = std::get<bridge::ErrorReply>(reply);
  EXPECT_EQ(e.status.error, error) << "message: " << e.message;
  EXPECT_FALSE(e.message.empty());
}

void expect_closed(Connection& c) {
  std::uint8_t byte = 0;
  EXPECT_EQ(c.receive(&byte, 1), Connection::Got::closed) << "the daemon should have closed the connection";
}

// The connection still works: a describe request on it is answered.
void expect_still_serving(Connection& c, std::uint32_t request_id) {
  ASSERT_TRUE(c.send(message(bridge::MessageType::describe_request, request_id, {})));
  const Connection::Message m = c.receive_message();
  ASSERT_EQ(m.got, Connection::Got::data);
  EXPECT_EQ(m.header.type, bridge::MessageType::describe_reply);
  EXPECT_EQ(m.header.request_id, request_id);
}

rpmb::Key test_key() {
  rpmb::Key key{};
  for (std::size_t i = 0; i < key.size(); ++i) key[i] = static_cast<std::uint8_t>('K' + i);
  return key;
}

// ---- the suite -------------------------------------------------------------------------------------

class BadInput : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    Daemon& d = daemon_process();
    if (!d.started) start_daemon(d);
  }
  static void TearDownTestSuite() {
    Daemon& d = daemon_process();
    d.process.kill_now();  // only when the last test did not stop it; the directory goes at exit
  }
  void SetUp() override {
    Daemon& d = daemon_process();
    ASSERT_TRUE(d.alive()) << "the daemon is not running:\n" << d.log();
  }
  void TearDown() override {
    Daemon& d = daemon_process();
    if (d.process.running() || d.exit_status < 0) {
      EXPECT_TRUE(d.alive()) << "the daemon died (status " << d.exit_status << "):\n" << d.log();
    }
  }
  const std::string& socket() const { return daemon_process().socket; }
};

TEST_F(BadInput, GarbageIsAnsweredWithEprotoAndTheConnectionClosed) {
  std::mt19937 random(20240521);
  Bytes garbage(4096);
  for (auto& b : garbage) b = static_cast<std::uint8_t>(random());
  garbage[0] = 'X';  // never the magic by chance
  Connection c(socket());
  ASSERT_TRUE(c.connected());
  c.send(garbage);  // the daemon may close before it has read everything
  expect_error_reply(c, 0, EPROTO);
  expect_closed(c);
}

TEST_F(BadInput, BadMagicAndBadVersionAreFatal) {
  {
    Connection c(socket());
    ASSERT_TRUE(c.connected());
    c.send(header_bytes(0x0005, 1, 0, 0x4D4D4558 /* "XEMM" */));
    expect_error_reply(c, 0, EPROTO);
    expect_closed(c);
  }
  {
    Connection c(socket());
    ASSERT_TRUE(c.connected());
    c.send(header_bytes(0x0005, 1, 0, bridge::kMagic, 2));
    expect_error_reply(c, 0, EPROTO);
    expect_closed(c);
  }
  {
    Connection c(socket());
    ASSERT_TRUE(c.connected());
    c.send(header_bytes(0x0042, 1, 0));  // unknown message type
    expect_error_reply(c, 0, EPROTO);
    expect_closed(c);
  }
}

TEST_F(BadInput, TruncatedHeaderThenCloseEndsTheConnection) {
  Connection c(socket());
  ASSERT_TRUE(c.connected());
  Bytes header = header_bytes(0x0005, 1, 0);
  header.resize(10);
  ASSERT_TRUE(c.send(header));
  c.shutdown_write();
  expect_closed(c);  // nothing to answer: the request never arrived (a warning is logged)
}

TEST_F(BadInput, TruncatedPayloadThenCloseEndsTheConnectionAndOthersAreServed) {
  Connection c(socket());
  ASSERT_TRUE(c.connected());
  Bytes m = message(bridge::MessageType::ioctl_request, 3,
                    ioctl_payload(0, false, 1, {Descriptor{0, 13, 1u << 16, 0x195, 0, 0, 0}}, {}));
  m.resize(m.size() - 20);
  ASSERT_TRUE(c.send(m));
  // While this client hangs mid-message, another one is served.
  {
    bridge::BridgeClient other(socket());
    const bridge::DescribeReply d = other.describe();
    EXPECT_EQ(d.status.error, 0);
  }
  c.shutdown_write();
  expect_closed(c);
}

TEST_F(BadInput, ThreeHundredCommandsAreEinvalAndTheConnectionStays) {
  Connection c(socket());
  ASSERT_TRUE(c.connected());
  const std::vector<Descriptor> commands(300, Descriptor{0, 13, 1u << 16, 0x195, 0, 0, 0});
  ASSERT_TRUE(c.send(message(bridge::MessageType::ioctl_request, 7, ioctl_payload(0, true, 300, commands, {}))));
  expect_error_reply(c, 7, EINVAL);  // MMC_IOC_MULTI_CMD over MMC_IOC_MAX_CMDS: -EINVAL
  expect_still_serving(c, 8);
}

TEST_F(BadInput, A600KiBCommandIsEoverflow) {
  Connection c(socket());
  ASSERT_TRUE(c.connected());
  constexpr std::uint32_t kBlocks = 1200;  // 1200 × 512 = 600 KiB > MMC_IOC_MAX_BYTES
  const Bytes data(std::size_t{kBlocks} * 512, 0xA5);
  ASSERT_TRUE(
      c.send(message(bridge::MessageType::ioctl_request, 11,
                     ioctl_payload(0, false, 1, {Descriptor{1, 25, 0, 0xB5, 512, kBlocks, kBlocks * 512}}, data))));
  expect_error_reply(c, 11, EOVERFLOW);
  // The same size as a read (no data sent).
  ASSERT_TRUE(c.send(message(bridge::MessageType::ioctl_request, 12,
                             ioctl_payload(0, false, 1, {Descriptor{0, 18, 0, 0xB5, 512, kBlocks, 0}}, {}))));
  expect_error_reply(c, 12, EOVERFLOW);
  expect_still_serving(c, 13);
}

TEST_F(BadInput, PayloadLengthOverTheLimitIsFatal) {
  for (const std::uint32_t length : {static_cast<std::uint32_t>(bridge::kMaxPayload + 1), 0xFFFFFFFFu}) {
    Connection c(socket());
    ASSERT_TRUE(c.connected());
    ASSERT_TRUE(c.send(header_bytes(static_cast<std::uint16_t>(bridge::MessageType::block_write_request), 5, length)));
    expect_error_reply(c, 0, EPROTO);
    expect_closed(c);
  }
}

TEST_F(BadInput, InconsistentInnerLengthsAreEinval) {
  Connection c(socket());
  ASSERT_TRUE(c.connected());
  // A write of 512 bytes whose descriptor announces 256, with 256 bytes following.
  ASSERT_TRUE(c.send(message(bridge::MessageType::ioctl_request, 21,
                             ioctl_payload(0, false, 1, {Descriptor{1, 24, 0, 0xB5, 512, 1, 256}}, Bytes(256, 1)))));
  expect_error_reply(c, 21, EINVAL);
  // A read whose descriptor announces data.
  ASSERT_TRUE(c.send(message(bridge::MessageType::ioctl_request, 22,
                             ioctl_payload(0, false, 1, {Descriptor{0, 17, 0, 0xB5, 512, 1, 512}}, Bytes(512, 1)))));
  expect_error_reply(c, 22, EINVAL);
  // Two descriptors announced, one present.
  ASSERT_TRUE(c.send(message(bridge::MessageType::ioctl_request, 23,
                             ioctl_payload(0, true, 2, {Descriptor{0, 13, 1u << 16, 0x195, 0, 0, 0}}, {}))));
  expect_error_reply(c, 23, EINVAL);
  // Bytes after the end of a valid request.
  ASSERT_TRUE(c.send(message(bridge::MessageType::ioctl_request, 24,
                             ioctl_payload(0, false, 1, {Descriptor{0, 13, 1u << 16, 0x195, 0, 0, 0}}, Bytes(9, 0)))));
  expect_error_reply(c, 24, EINVAL);
  // A block write whose length field disagrees with the data that follows.
  Bytes write{0, 0, 0, 0};
  put32(write, 1024);
  put32(write, 0);
  put32(write, 0);
  write.insert(write.end(), 512, 0x5A);
  ASSERT_TRUE(c.send(message(bridge::MessageType::block_write_request, 25, write)));
  expect_error_reply(c, 25, EINVAL);
  expect_still_serving(c, 26);
}

TEST_F(BadInput, AReplyTypeMessageIsEinval) {
  Connection c(socket());
  ASSERT_TRUE(c.connected());
  Bytes status(16, 0);
  put32(status, 0);
  ASSERT_TRUE(c.send(message(bridge::MessageType::ioctl_reply, 31, status)));
  expect_error_reply(c, 31, EINVAL);
  ASSERT_TRUE(c.send(message(bridge::MessageType::error_reply, 32, status)));
  expect_error_reply(c, 32, EINVAL);
  expect_still_serving(c, 33);
}

TEST_F(BadInput, ThousandsOfRapidConnectsAndClosesAreHarmless) {
  const Bytes describe = message(bridge::MessageType::describe_request, 1, {});
  for (int i = 0; i < 3000; ++i) {
    Connection c(socket());
    ASSERT_TRUE(c.connected()) << "connection " << i << " was refused";
    switch (i % 4) {
      case 1: c.send(Bytes(1, 0x45)); break;                 // a byte of a header
      case 2: c.send(describe); break;                       // a request, its reply never read
      case 3: c.send(header_bytes(0x0003, 1, 1024)); break;  // a header, its payload never sent
      default: break;                                        // nothing at all
    }
  }
  bridge::BridgeClient client(socket());
  EXPECT_EQ(client.describe().status.error, 0);
}

// An ioctl the card refuses leaves ILLEGAL_COMMAND pending, reported in the next response (the
// CMD6 that switches back to the user area): the next rpmb-node request must still reach the RPMB
// partition, not the user area's sector 0.
TEST_F(BadInput, AnIllegalIoctlCommandDoesNotMisrouteTheNextRpmbRequest) {
  bridge::BridgeClient client(socket());
  const bridge::BlockWriteRequest sector0{bridge::Node::user, 0, Bytes(512, 0xC3)};
  ASSERT_EQ(client.write(sector0).status.error, 0) << client.last_error_message();

  bridge::IoctlRequest bad;
  bad.node = bridge::Node::rpmb;
  bad.multi = true;
  bridge::IoctlCommand status;
  status.opcode = 13;
  status.arg = 1u << 16;
  status.flags = 0x195;
  status.is_acmd = 1;  // CMD55 first: eMMC has no CMD55, the card does not answer
  bad.commands.push_back(status);
  const bridge::IoctlReply refused = client.ioctl(bad);
  EXPECT_EQ(refused.status.error, ETIMEDOUT) << client.last_error_message();
  EXPECT_EQ(refused.results.size(), 1u);

  emmcsim::transport::BridgeRpmbChannel channel(client);
  rpmb::Host host(channel, std::nullopt);
  const rpmb::HostResult counter = host.read_counter();
  EXPECT_EQ(counter.response_type, static_cast<std::uint16_t>(rpmb::ResponseType::read_counter));

  const bridge::BlockReadReply after = client.read(bridge::BlockReadRequest{bridge::Node::user, 0, 512});
  ASSERT_EQ(after.status.error, 0) << client.last_error_message();
  EXPECT_EQ(after.data, sector0.data) << "an RPMB request reached the user area";
}

TEST_F(BadInput, ANormalClientStillWorks) {
  bridge::BridgeClient client(socket());
  const bridge::DescribeReply d = client.describe();
  ASSERT_EQ(d.status.error, 0) << client.last_error_message();
  EXPECT_EQ(d.node_size[0], 8ULL << 30);  // the default configuration
  EXPECT_EQ(d.node_size[3], 4ULL << 20);

  emmcsim::transport::BridgeRpmbChannel channel(client);
  rpmb::Host host(channel, std::nullopt);
  const rpmb::HostResult programmed = host.program_key(test_key());
  ASSERT_TRUE(programmed.ok()) << rpmb::describe_result(programmed.result);
  const rpmb::HostResult counter = host.read_counter();
  ASSERT_TRUE(counter.ok()) << rpmb::describe_result(counter.result);
  EXPECT_EQ(counter.write_counter, 0u);
  EXPECT_TRUE(counter.mac_valid.value_or(false));

  bridge::BlockWriteRequest write;
  write.node = bridge::Node::user;
  write.offset = 1 << 20;
  write.data.resize(4096);
  for (std::size_t i = 0; i < write.data.size(); ++i) write.data[i] = static_cast<std::uint8_t>(i * 31 + 7);
  ASSERT_EQ(client.write(write).status.error, 0) << client.last_error_message();
  const bridge::BlockReadReply read = client.read(bridge::BlockReadRequest{bridge::Node::user, 1 << 20, 4096});
  ASSERT_EQ(read.status.error, 0) << client.last_error_message();
  EXPECT_EQ(read.data, write.data);
}

TEST_F(BadInput, EveryBadInputWasLoggedAsAWarning) {
  const std::string log = daemon_process().log();
  for (const char* expected : {
           "[warning] client",                            // the level and the client's number
           "bad magic",                                   // garbage, bad magic
           "protocol version 2",                          // bad version
           "unknown message type",                        // type 0x0042
           "payload of",                                  // truncated payload / over the limit
           "payload bytes before the connection closed",  // truncated payload then close
           "header bytes before the connection closed",   // truncated header then close
           "exceed MMC_IOC_MAX_CMDS",                     // 300 commands
           "more than MMC_IOC_MAX_BYTES",                 // 600 KiB
           "exceeds the limit",                           // payload_length over the limit
           "is not a request",                            // reply-type message
           "data bytes but blksz",                        // inconsistent inner lengths
       }) {
    EXPECT_NE(log.find(expected), std::string::npos) << "no warning containing '" << expected << "' in:\n" << log;
  }
  EXPECT_EQ(log.find("[error]"), std::string::npos) << log;
}

// Last: stops the shared daemon.
TEST_F(BadInput, SigtermStopsTheDaemonWithStatusZeroAndRemovesTheSocket) {
  Daemon& d = daemon_process();
  d.exit_status = d.process.terminate(kStopTimeout);  // SIGKILL after the timeout
  ASSERT_FALSE(d.process.running());
  ASSERT_TRUE(WIFEXITED(d.exit_status)) << "status " << d.exit_status << "\n" << d.log();
  EXPECT_EQ(WEXITSTATUS(d.exit_status), 0) << d.log();
  struct stat st {};
  EXPECT_NE(::lstat(d.socket.c_str(), &st), 0) << "the socket file is still there";
  EXPECT_EQ(errno, ENOENT);
}

}  // namespace
