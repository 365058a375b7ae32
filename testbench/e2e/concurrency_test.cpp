// Many clients at once against one `emmcsim serve`:
//
//  * RPMB writers (4 threads, each its own connection and rpmb::Host) write their own block and
//    one shared block; a write that loses the race for the counter (another client wrote between
//    its counter read and its write) comes back as a counter failure (0x0003) and is retried.
//    The counter ends at the number of successful writes, the counters the writes were granted
//    are exactly 1..total (one per write, none twice), each own block holds its writer's last
//    write and the shared block one writer's last write, whole.
//  * User-area writers in distinct regions beside RPMB writers (whose requests switch the card to
//    the RPMB partition and back): every byte reads back, from the writer and from a new client.
//  * No head-of-line blocking: an idle connection, one stalled inside a header and one stalled
//    inside a payload do not hold up the others, and each still works afterwards.
//  * Two clients interleaving on the counter: a write signed under a counter another client has
//    moved past is refused with a counter failure and changes nothing.
//
// EMMCSIM_CONCURRENCY_WRITES sets the writes per RPMB client and block (default 50).
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <future>
#include <iostream>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "daemon_process.hpp"
#include "scratch_directory.hpp"
#include "emmcsim/rpmb/host.hpp"
#include "emmcsim/rpmb/protocol.hpp"
#include "emmcsim/transport/bridge_client.hpp"
#include "emmcsim/transport/bridge_protocol.hpp"
#include "emmcsim/transport/bridge_rpmb_channel.hpp"
#include "test_pattern.hpp"

namespace emmcsim::e2e {
namespace {

using namespace std::chrono_literals;
namespace bridge = transport::bridge;
using Clock = std::chrono::steady_clock;

const rpmb::Key kKey = {'e', 'm', 'm', 'c', 's', 'i', 'm', '-', 'c', 'o', 'n', 'c', 'u', 'r', 'r', 'e',
                        'n', 'c', 'y', '-', 't', 'e', 's', 't', '-', 'k', 'e', 'y', '-', '0', '0', '1'};
constexpr std::uint32_t kOwnMagic = 0x4F574E42;     // "OWNB"
constexpr std::uint32_t kSharedMagic = 0x53485244;  // "SHRD"
constexpr std::uint32_t kUserMagic = 0x55534552;    // "USER"
constexpr std::uint16_t kSharedBlock = 0;
constexpr std::size_t kHalf = rpmb::kHalfSectorSize;

unsigned env_unsigned(const char* name, unsigned fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  return static_cast<unsigned>(std::strtoul(v, nullptr, 0));
}

double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

struct RpmbConnection {
  explicit RpmbConnection(const std::string& socket) : client(socket), channel(client), host(channel, kKey) {}
  bridge::BridgeClient client;
  transport::BridgeRpmbChannel channel;
  rpmb::Host host;
};

rpmb::Nonce random_nonce(std::mt19937_64& rng) {
  rpmb::Nonce n{};
  for (auto& b : n) b = static_cast<std::uint8_t>(rng());
  return n;
}

bool is_counter_failure(std::uint16_t result) {
  return (result & ~rpmb::kCounterExpiredBit) == static_cast<std::uint16_t>(rpmb::ResultCode::counter_failure);
}

// What one RPMB writer did.
struct WriterLog {
  std::uint64_t successes = 0;
  std::uint64_t counter_failures = 0;
  std::vector<std::uint32_t> counters;  // the counter each successful write was granted, in order
  std::string error;                    // empty unless something other than a counter failure happened
};

// Host::write until it succeeds, retrying counter failures only.
bool write_retrying(rpmb::Host& host, std::uint16_t address, const std::vector<std::uint8_t>& data, WriterLog& log) {
  for (int attempt = 0; attempt < 100000; ++attempt) {
    const rpmb::HostResult r = host.write(address, data.data(), data.size() / kHalf);
    if (r.ok()) {
      ++log.successes;
      log.counters.push_back(r.write_counter);
      return true;
    }
    if (is_counter_failure(r.result)) {
      ++log.counter_failures;
      continue;
    }
    log.error = "write to " + std::to_string(address) + ": " + rpmb::describe_result(r.result) +
                " mac_valid=" + std::to_string(r.mac_valid.value_or(false));
    return false;
  }
  log.error = "write to " + std::to_string(address) + " kept losing the counter race (100000 attempts)";
  return false;
}

// A start line for threads, so they really run at once.
class StartLine {
 public:
  explicit StartLine(unsigned parties) : waiting_(parties) {}
  void arrive_and_wait() {
    std::unique_lock<std::mutex> lock(mutex_);
    if (--waiting_ == 0) cv_.notify_all();
    cv_.wait(lock, [&] { return waiting_ == 0; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  unsigned waiting_;
};

// ---- Raw sockets, for clients that stall mid-message ---------------------------------------

int connect_raw(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error("socket: " + std::string(std::strerror(errno)));
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
    const int error = errno;
    ::close(fd);
    throw std::runtime_error("connect " + path + ": " + std::strerror(error));
  }
  return fd;
}

void send_raw(int fd, const std::uint8_t* p, std::size_t n) {
  while (n > 0) {
    const ssize_t sent = ::send(fd, p, n, MSG_NOSIGNAL);
    if (sent < 0 && errno == EINTR) continue;
    if (sent <= 0) throw std::runtime_error("send: " + std::string(std::strerror(errno)));
    p += sent;
    n -= static_cast<std::size_t>(sent);
  }
}

void receive_raw(int fd, std::uint8_t* p, std::size_t n) {
  while (n > 0) {
    const ssize_t got = ::recv(fd, p, n, 0);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0)
      throw std::runtime_error("recv: " + std::string(got == 0 ? "connection closed" : std::strerror(errno)));
    p += got;
    n -= static_cast<std::size_t>(got);
  }
}

bridge::Reply receive_reply(int fd, std::uint32_t expected_id) {
  std::uint8_t header_bytes[bridge::kHeaderSize];
  receive_raw(fd, header_bytes, sizeof header_bytes);
  const bridge::MessageHeader header = bridge::decode_header(header_bytes, sizeof header_bytes);
  if (header.request_id != expected_id) throw std::runtime_error("reply to another request");
  std::vector<std::uint8_t> payload(header.payload_length);
  receive_raw(fd, payload.data(), payload.size());
  return bridge::decode_reply(header, payload.data(), payload.size());
}

// ---- The fixture: a fresh daemon with the key programmed --------------------------------------

class Concurrency : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(emmcsim_binary().empty()) << "set EMMCSIM_BIN to the emmcsim executable";
    dir_ = scratch_.path();
    socket_ = dir_ + "/mmc.sock";
    daemon_ = std::make_unique<DaemonProcess>(
        emmcsim_binary(), std::vector<std::string>{"serve", "--image", dir_ + "/card", "--mmc-socket", socket_},
        dir_ + "/daemon.log");
    ASSERT_NO_THROW(daemon_->start());
    RpmbConnection c(socket_);
    const rpmb::HostResult k = c.host.program_key(kKey);
    ASSERT_TRUE(k.ok()) << "program key: " << rpmb::describe_result(k.result);
    ASSERT_EQ(read_counter(c.host), 0u);
  }

  void TearDown() override {
    if (daemon_ && daemon_->running()) {
      const int status = daemon_->terminate();
      EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
          << "SIGTERM: the daemon " << describe_wait_status(status) << "; its log:\n"
          << daemon_->log_tail();
    }
    daemon_.reset();
    if (HasFailure()) std::cout << "kept " << scratch_.keep() << " (image and daemon.log)\n";
  }

  std::uint32_t read_counter(rpmb::Host& host) {
    const rpmb::HostResult c = host.read_counter(random_nonce(rng_));
    EXPECT_TRUE(c.ok()) << "read counter: " << rpmb::describe_result(c.result);
    return c.write_counter;
  }

  // Authenticated read of `count` blocks from `address`, MAC and nonce checked.
  std::vector<std::uint8_t> read_rpmb(rpmb::Host& host, std::uint16_t address, std::size_t count) {
    const rpmb::HostResult r = host.read(address, count, random_nonce(rng_));
    EXPECT_TRUE(r.ok()) << "authenticated read at " << address << ": " << rpmb::describe_result(r.result)
                        << " mac_valid=" << r.mac_valid.value_or(false) << " nonce_matches=" << r.nonce_matches;
    return r.data;
  }

  emmcsim::testing::ScratchDirectory scratch_{"emmcsim-conc"};
  std::string dir_;
  std::string socket_;
  std::unique_ptr<DaemonProcess> daemon_;
  std::mt19937_64 rng_{20240611};
};

// Runs `body` on a thread and waits at most `timeout` for it. On timeout the daemon is killed so
// the blocked clients come back, and false is returned.
template <typename Body>
bool finishes_within(DaemonProcess& daemon, std::chrono::seconds timeout, Body body) {
  std::future<void> f = std::async(std::launch::async, std::move(body));
  if (f.wait_for(timeout) == std::future_status::ready) {
    f.get();
    return true;
  }
  daemon.kill_now();
  f.wait();
  return false;
}

TEST_F(Concurrency, RpmbWritersShareTheCounter) {
  constexpr unsigned kClients = 4;
  const unsigned writes = env_unsigned("EMMCSIM_CONCURRENCY_WRITES", 50);
  const auto t0 = Clock::now();
  std::vector<WriterLog> logs(kClients);
  StartLine start(kClients);
  const bool finished = finishes_within(*daemon_, 50s, [&] {
    std::vector<std::thread> threads;
    for (unsigned w = 0; w < kClients; ++w) {
      threads.emplace_back([&, w] {
        WriterLog& log = logs[w];
        try {
          RpmbConnection c(socket_);
          start.arrive_and_wait();
          for (unsigned i = 0; i < writes && log.error.empty(); ++i) {
            if (!write_retrying(c.host, static_cast<std::uint16_t>(1 + w), make_pattern({kOwnMagic, w, i}, kHalf), log))
              break;
            if (!write_retrying(c.host, kSharedBlock, make_pattern({kSharedMagic, w, i}, kHalf), log)) break;
          }
        } catch (const std::exception& e) {
          log.error = e.what();
        }
      });
    }
    for (auto& t : threads) t.join();
  });
  ASSERT_TRUE(finished) << "the writers did not finish within 50 s";

  std::uint64_t total = 0, counter_failures = 0;
  std::vector<std::uint32_t> granted;
  for (unsigned w = 0; w < kClients; ++w) {
    EXPECT_TRUE(logs[w].error.empty()) << "client " << w << ": " << logs[w].error;
    EXPECT_EQ(logs[w].successes, 2u * writes) << "client " << w;
    EXPECT_TRUE(std::is_sorted(logs[w].counters.begin(), logs[w].counters.end())) << "client " << w;
    total += logs[w].successes;
    counter_failures += logs[w].counter_failures;
    granted.insert(granted.end(), logs[w].counters.begin(), logs[w].counters.end());
  }
  ASSERT_FALSE(HasFailure());
  std::sort(granted.begin(), granted.end());
  for (std::size_t i = 0; i < granted.size(); ++i)
    ASSERT_EQ(granted[i], i + 1) << "the counters granted to successful writes are not exactly 1.." << total;

  RpmbConnection check(socket_);
  EXPECT_EQ(read_counter(check.host), total);
  const std::vector<std::uint8_t> blocks = read_rpmb(check.host, 0, kClients + 1);
  ASSERT_EQ(blocks.size(), (kClients + 1) * kHalf);
  for (unsigned w = 0; w < kClients; ++w) {
    const std::uint8_t* got = blocks.data() + (1 + w) * kHalf;
    EXPECT_EQ(make_pattern({kOwnMagic, w, writes - 1}, kHalf), std::vector<std::uint8_t>(got, got + kHalf))
        << "client " << w << "'s block holds " << describe_pattern(got, kHalf);
  }
  const auto shared = parse_pattern(blocks.data(), kHalf);
  ASSERT_TRUE(shared.has_value()) << "the shared block holds " << describe_pattern(blocks.data(), kHalf);
  EXPECT_EQ(shared->magic, kSharedMagic);
  EXPECT_LT(shared->tag, kClients);
  EXPECT_EQ(shared->sequence, writes - 1u) << "the last write to the shared block is its writer's last";
  std::cout << "[ summary  ] " << kClients << " clients, " << total << " successful writes, " << counter_failures
            << " counter failures retried, shared block last written by client " << shared->tag << ", " << ms_since(t0)
            << " ms\n";
}

TEST_F(Concurrency, UserAreaWritersBesideRpmbWriters) {
  constexpr unsigned kBlockWriters = 4;
  constexpr unsigned kRpmbWriters = 2;
  constexpr std::size_t kRegion = 1u << 20;
  constexpr std::uint64_t kRegionBase = 8u << 20;
  constexpr unsigned kBlockWrites = 150;
  const unsigned rpmb_writes = env_unsigned("EMMCSIM_CONCURRENCY_WRITES", 50);
  const auto t0 = Clock::now();

  std::vector<std::vector<std::uint8_t>> shadow(kBlockWriters, std::vector<std::uint8_t>(kRegion, 0));
  std::vector<std::string> block_errors(kBlockWriters);
  std::vector<WriterLog> rpmb_logs(kRpmbWriters);
  std::atomic<std::uint64_t> bytes_written{0};
  StartLine start(kBlockWriters + kRpmbWriters);

  const bool finished = finishes_within(*daemon_, 50s, [&] {
    std::vector<std::thread> threads;
    for (unsigned w = 0; w < kBlockWriters; ++w) {
      threads.emplace_back([&, w] {
        std::mt19937_64 rng(1000 + w);
        std::vector<std::uint8_t>& mine = shadow[w];
        const std::uint64_t base = kRegionBase + w * kRegion;
        try {
          bridge::BridgeClient client(socket_);
          start.arrive_and_wait();
          for (unsigned i = 0; i < kBlockWrites; ++i) {
            const std::size_t sectors = 1 + rng() % 128;  // up to 64 KiB
            const std::size_t first = rng() % (kRegion / 512 - sectors + 1);
            bridge::BlockWriteRequest q;
            q.node = bridge::Node::user;
            q.offset = base + first * 512;
            for (std::size_t s = 0; s < sectors; ++s) {
              const auto sector = make_pattern({kUserMagic, static_cast<std::uint32_t>(w << 16 | (first + s)), i}, 512);
              q.data.insert(q.data.end(), sector.begin(), sector.end());
            }
            const bridge::BlockWriteReply r = client.write(q);
            if (r.status.error != 0)
              throw std::runtime_error("block write: " + std::string(std::strerror(r.status.error)) + " " +
                                       client.last_error_message());
            std::copy(q.data.begin(), q.data.end(), mine.begin() + static_cast<std::ptrdiff_t>(first * 512));
            bytes_written += q.data.size();
            if (i % 10 == 9) {  // read a stretch back while the others write
              bridge::BlockReadRequest rq;
              rq.node = bridge::Node::user;
              rq.offset = base + first * 512;
              rq.length = static_cast<std::uint32_t>(std::min<std::size_t>(kRegion - first * 512, 256 * 1024));
              const bridge::BlockReadReply rr = client.read(rq);
              if (rr.status.error != 0 || rr.data.size() != rq.length ||
                  !std::equal(rr.data.begin(), rr.data.end(), mine.begin() + static_cast<std::ptrdiff_t>(first * 512)))
                throw std::runtime_error("read back after write " + std::to_string(i) + " differs");
            }
          }
        } catch (const std::exception& e) {
          block_errors[w] = e.what();
        }
      });
    }
    for (unsigned w = 0; w < kRpmbWriters; ++w) {
      threads.emplace_back([&, w] {
        WriterLog& log = rpmb_logs[w];
        try {
          RpmbConnection c(socket_);
          start.arrive_and_wait();
          for (unsigned i = 0; i < rpmb_writes; ++i)
            if (!write_retrying(c.host, static_cast<std::uint16_t>(10 + w), make_pattern({kOwnMagic, 10 + w, i}, kHalf),
                                log))
              break;
        } catch (const std::exception& e) {
          log.error = e.what();
        }
      });
    }
    for (auto& t : threads) t.join();
  });
  ASSERT_TRUE(finished) << "the writers did not finish within 50 s";

  std::uint64_t rpmb_total = 0;
  for (unsigned w = 0; w < kBlockWriters; ++w)
    EXPECT_TRUE(block_errors[w].empty()) << "block writer " << w << ": " << block_errors[w];
  for (unsigned w = 0; w < kRpmbWriters; ++w) {
    EXPECT_TRUE(rpmb_logs[w].error.empty()) << "rpmb writer " << w << ": " << rpmb_logs[w].error;
    rpmb_total += rpmb_logs[w].successes;
  }
  ASSERT_FALSE(HasFailure());

  // A new client sees every region as its writer left it.
  bridge::BridgeClient reader(socket_);
  for (unsigned w = 0; w < kBlockWriters; ++w) {
    for (std::size_t part = 0; part < kRegion; part += bridge::kMaxBlockTransfer) {
      bridge::BlockReadRequest rq;
      rq.node = bridge::Node::user;
      rq.offset = kRegionBase + w * kRegion + part;
      rq.length = static_cast<std::uint32_t>(bridge::kMaxBlockTransfer);
      const bridge::BlockReadReply rr = reader.read(rq);
      ASSERT_EQ(rr.status.error, 0) << reader.last_error_message();
      ASSERT_EQ(rr.data.size(), rq.length);
      for (std::size_t s = 0; s < rq.length / 512; ++s) {
        const std::uint8_t* got = rr.data.data() + s * 512;
        const std::uint8_t* want = shadow[w].data() + part + s * 512;
        ASSERT_EQ(0, std::memcmp(got, want, 512))
            << "region " << w << " sector " << (part / 512 + s) << " holds " << describe_pattern(got, 512)
            << ", expected " << describe_pattern(want, 512);
      }
    }
  }
  RpmbConnection check(socket_);
  EXPECT_EQ(read_counter(check.host), rpmb_total);
  const std::vector<std::uint8_t> blocks = read_rpmb(check.host, 10, kRpmbWriters);
  ASSERT_EQ(blocks.size(), kRpmbWriters * kHalf);
  for (unsigned w = 0; w < kRpmbWriters; ++w)
    EXPECT_EQ(0, std::memcmp(blocks.data() + w * kHalf,
                             make_pattern({kOwnMagic, 10 + w, rpmb_writes - 1}, kHalf).data(), kHalf))
        << "rpmb block " << 10 + w << " holds " << describe_pattern(blocks.data() + w * kHalf, kHalf);
  std::cout << "[ summary  ] " << kBlockWriters << " block writers, " << bytes_written.load() / 1024
            << " KiB written and read back; " << kRpmbWriters << " RPMB writers, " << rpmb_total << " writes; "
            << ms_since(t0) << " ms\n";
}

TEST_F(Concurrency, IdleAndStalledConnectionsDoNotBlockOthers) {
  // One client connected and silent, one stopped inside a header, one inside a payload.
  RpmbConnection idle(socket_);
  const int stalled_header = connect_raw(socket_);
  const int stalled_payload = connect_raw(socket_);
  const std::vector<std::uint8_t> describe = bridge::encode_request(7, bridge::DescribeRequest{});
  bridge::BlockWriteRequest stalled_write;
  stalled_write.node = bridge::Node::user;
  stalled_write.offset = 64u << 20;
  stalled_write.data = make_pattern({kUserMagic, 77, 1}, 4096);
  const std::vector<std::uint8_t> write_message = bridge::encode_request(9, stalled_write);
  send_raw(stalled_header, describe.data(), 10);
  send_raw(stalled_payload, write_message.data(), bridge::kHeaderSize + 100);

  // The others get on with it.
  const auto t0 = Clock::now();
  std::string errors;
  std::mutex errors_mutex;
  const bool finished = finishes_within(*daemon_, 30s, [&] {
    std::vector<std::thread> threads;
    for (unsigned w = 0; w < 2; ++w) {
      threads.emplace_back([&, w] {
        try {
          RpmbConnection c(socket_);
          WriterLog log;
          for (unsigned i = 0; i < 20; ++i) {
            if (!write_retrying(c.host, static_cast<std::uint16_t>(30 + w), make_pattern({kOwnMagic, 30 + w, i}, kHalf),
                                log))
              throw std::runtime_error(log.error);
            bridge::BlockWriteRequest q;
            q.node = bridge::Node::user;
            q.offset = (32u << 20) + (w * 20 + i) * 4096;
            q.data = make_pattern({kUserMagic, w, i}, 4096);
            if (c.client.write(q).status.error != 0) throw std::runtime_error("block write failed");
          }
        } catch (const std::exception& e) {
          std::lock_guard<std::mutex> lock(errors_mutex);
          errors += e.what();
        }
      });
    }
    for (auto& t : threads) t.join();
  });
  const double busy_ms = ms_since(t0);
  ASSERT_TRUE(finished) << "clients were held up for 30 s by an idle or stalled connection";
  EXPECT_TRUE(errors.empty()) << errors;

  // Each waiting connection still works.
  EXPECT_EQ(read_counter(idle.host), 40u);
  send_raw(stalled_header, describe.data() + 10, describe.size() - 10);
  const bridge::Reply d = receive_reply(stalled_header, 7);
  ASSERT_TRUE(std::holds_alternative<bridge::DescribeReply>(d));
  EXPECT_EQ(std::get<bridge::DescribeReply>(d).status.error, 0);
  send_raw(stalled_payload, write_message.data() + bridge::kHeaderSize + 100,
           write_message.size() - bridge::kHeaderSize - 100);
  const bridge::Reply w = receive_reply(stalled_payload, 9);
  ASSERT_TRUE(std::holds_alternative<bridge::BlockWriteReply>(w));
  EXPECT_EQ(std::get<bridge::BlockWriteReply>(w).status.error, 0);
  ::close(stalled_header);
  ::close(stalled_payload);
  bridge::BlockReadRequest rq;
  rq.node = bridge::Node::user;
  rq.offset = stalled_write.offset;
  rq.length = 4096;
  const bridge::BlockReadReply rr = idle.client.read(rq);
  ASSERT_EQ(rr.status.error, 0);
  EXPECT_EQ(rr.data, stalled_write.data) << "the stalled write, once finished, reads back";
  std::cout << "[ summary  ] 2 clients did 40 RPMB and 40 block writes in " << busy_ms
            << " ms beside 3 idle or stalled connections\n";
}

TEST_F(Concurrency, InterleavedClientsSeeCounterFailure) {
  RpmbConnection a(socket_);
  RpmbConnection b(socket_);
  const std::uint32_t before = read_counter(a.host);  // a reads the counter ...
  const auto b_data = make_pattern({kOwnMagic, 2, 0}, kHalf);
  const rpmb::HostResult bw = b.host.write(40, b_data.data(), 1);  // ... b writes in between ...
  ASSERT_TRUE(bw.ok()) << rpmb::describe_result(bw.result);
  EXPECT_EQ(bw.write_counter, before + 1);
  const auto a_data = make_pattern({kOwnMagic, 1, 0}, kHalf);
  const rpmb::HostResult stale =
      a.host.write_with_counter(41, a_data.data(), 1, before);  // ... a signs under the old one
  EXPECT_TRUE(is_counter_failure(stale.result)) << rpmb::describe_result(stale.result);
  EXPECT_EQ(stale.write_counter, before + 1) << "a counter failure reports the device's counter";
  EXPECT_EQ(read_counter(b.host), before + 1) << "the refused write did not count";
  EXPECT_EQ(read_rpmb(b.host, 41, 1), std::vector<std::uint8_t>(kHalf, 0)) << "the refused write changed the block";
  const rpmb::HostResult retry = a.host.write(41, a_data.data(), 1);
  ASSERT_TRUE(retry.ok()) << rpmb::describe_result(retry.result);
  EXPECT_EQ(retry.write_counter, before + 2);
  EXPECT_EQ(read_rpmb(b.host, 40, 2), [&] {
    std::vector<std::uint8_t> v(b_data);
    v.insert(v.end(), a_data.begin(), a_data.end());
    return v;
  }());
}

}  // namespace
}  // namespace emmcsim::e2e
