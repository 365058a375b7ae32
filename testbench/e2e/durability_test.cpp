// Durability of `emmcsim serve` under kill -9: a writer keeps the daemon busy while a killer
// thread SIGKILLs it at random instants (seeded; the seed is printed and can be replayed with
// EMMCSIM_DURABILITY_SEED) and restarts it. After every restart the writer reconnects and checks
// what the daemon kept against its own bookkeeping:
//
//  * RPMB: authenticated single-frame writes cycling over 8 blocks. The counter must equal the
//    acknowledged writes plus the in-flight writes that committed; the one write in flight when a
//    kill came (at most one) may have committed or not, and the block shows which: new data
//    exactly when the counter moved (atomicity), old data otherwise. No other result than ok
//    is acceptable from a single writer (a counter failure would mean the counter went back).
//  * User area: 64 KiB block writes over 32 slots. Every acknowledged write reads back after the
//    kill (the daemon writes through to the OS; the page cache outlives the process); the
//    write in flight leaves each of its sectors old or new.
//
// EMMCSIM_DURABILITY_KILLS sets the number of kills per test (default 40).
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "daemon_process.hpp"
#include "scratch_directory.hpp"
#include "emmcsim/rpmb/host.hpp"
#include "emmcsim/rpmb/protocol.hpp"
#include "emmcsim/transport/bridge_client.hpp"
#include "emmcsim/transport/bridge_rpmb_channel.hpp"
#include "test_pattern.hpp"

namespace emmcsim::e2e {
namespace {

using namespace std::chrono_literals;
namespace bridge = transport::bridge;
using Clock = std::chrono::steady_clock;

const rpmb::Key kKey = {'e', 'm', 'm', 'c', 's', 'i', 'm', '-', 'd', 'u', 'r', 'a', 'b', 'i', 'l', 'i',
                        't', 'y', '-', 't', 'e', 's', 't', '-', 'k', 'e', 'y', '-', '0', '0', '0', '1'};
constexpr std::uint32_t kRpmbMagic = 0x44555241;  // "DURA"
constexpr std::uint32_t kUserMagic = 0x55534552;  // "USER"
constexpr std::uint16_t kRpmbBlocks = 8;
constexpr std::size_t kSlots = 32;
constexpr std::size_t kSlotBytes = 64 * 1024;
constexpr std::size_t kSectorsPerSlot = kSlotBytes / 512;
constexpr std::uint64_t kUserBase = 1u << 20;  // 1 MiB into the user area
// Writes after the last kill, before the clean restart.
constexpr unsigned kWritesAfterLastKill = 20;

unsigned env_unsigned(const char* name, unsigned fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  return static_cast<unsigned>(std::strtoul(v, nullptr, 0));
}

std::uint64_t test_seed() {
  const char* v = std::getenv("EMMCSIM_DURABILITY_SEED");
  if (v != nullptr && *v != '\0') return std::strtoull(v, nullptr, 0);
  return (std::uint64_t{std::random_device{}()} << 32) ^ std::random_device{}();
}

double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

// One RPMB connection: client, channel and host, as mmc-utils would hold them.
struct RpmbConnection {
  explicit RpmbConnection(const std::string& socket) : client(socket), channel(client), host(channel, kKey) {}
  bridge::BridgeClient client;
  transport::BridgeRpmbChannel channel;
  rpmb::Host host;
};

// A daemon in a fresh directory.
struct DaemonFixture {
  explicit DaemonFixture(const std::string& prefix)
      : scratch(prefix),
        dir(scratch.path()),
        socket(dir + "/mmc.sock"),
        daemon(emmcsim_binary(), {"serve", "--image", dir + "/card", "--mmc-socket", socket}, dir + "/daemon.log") {}
  emmcsim::testing::ScratchDirectory scratch;  // kept when the test fails
  std::string dir;
  std::string socket;
  DaemonProcess daemon;
};

// The killer: waits until the writer has reconnected to the running daemon and checked it, waits
// a random 5-60 ms while the writer writes, kills the daemon (-9), restarts it and announces the
// new generation. Only the killer touches the daemon while it runs, and it kills only a daemon
// the writer has verified, so every kill interrupts the writer's traffic and no kill lands in
// the middle of a check. A daemon that died on its own (the kill found it dead) or did not
// come back is a failure, reported to the writer through wait_restart().
class Killer {
 public:
  Killer(DaemonProcess& daemon, unsigned kills, std::uint64_t seed) : daemon_(daemon), kills_(kills), rng_(seed) {}
  ~Killer() { stop(); }

  void start() {
    thread_ = std::thread([this] { run(); });
  }
  void stop() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

  unsigned generation() {
    std::lock_guard<std::mutex> lock(mutex_);
    return generation_;
  }
  // The writer connected to `generation` and checked it: the killer may aim.
  void verified(unsigned generation) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      verified_ = generation;
    }
    cv_.notify_all();
  }
  // After losing the daemon of generation `seen`: waits for the restarted one. Returns its
  // generation, or nothing when the killer failed (failure() says why) or nothing came in time.
  std::optional<unsigned> wait_restart(unsigned seen) {
    std::unique_lock<std::mutex> lock(mutex_);
    const bool ok = cv_.wait_for(lock, 60s, [&] { return generation_ != seen || !failure_.empty(); });
    if (!ok) failure_ = "the daemon was lost but the killer did not restart it within 60 s (it died on its own?)";
    if (!failure_.empty()) return std::nullopt;
    return generation_;
  }
  bool done() {
    std::lock_guard<std::mutex> lock(mutex_);
    return done_;
  }
  std::string failure() {
    std::lock_guard<std::mutex> lock(mutex_);
    return failure_;
  }
  unsigned kills_done() {
    std::lock_guard<std::mutex> lock(mutex_);
    return kills_done_;
  }
  double mean_restart_ms() {
    std::lock_guard<std::mutex> lock(mutex_);
    return kills_done_ == 0 ? 0.0 : restart_ms_ / kills_done_;
  }

 private:
  void run() {
    std::uniform_int_distribution<int> delay_ms(5, 60);
    for (unsigned k = 0; k < kills_; ++k) {
      std::unique_lock<std::mutex> lock(mutex_);
      cv_.wait(lock, [&] { return stop_ || verified_ == generation_; });
      if (stop_) break;
      const auto delay = std::chrono::milliseconds(delay_ms(rng_));
      if (cv_.wait_for(lock, delay, [&] { return stop_; })) break;
      const int status = daemon_.kill_now();
      if (!(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)) {
        failure_ = "the daemon had died on its own (" + describe_wait_status(status) + ") before kill " +
                   std::to_string(k + 1) + "; its log:\n" + daemon_.log_tail();
        break;
      }
      ++kills_done_;
      const auto t0 = Clock::now();
      try {
        daemon_.start();
      } catch (const std::exception& e) {
        failure_ = std::string("restart after kill ") + std::to_string(k + 1) + " failed: " + e.what();
        break;
      }
      restart_ms_ += ms_since(t0);
      ++generation_;
      lock.unlock();
      cv_.notify_all();
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      done_ = true;
    }
    cv_.notify_all();
  }

  DaemonProcess& daemon_;
  const unsigned kills_;
  std::mt19937_64 rng_;
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable cv_;
  unsigned generation_ = 0;
  unsigned verified_ = ~0u;
  unsigned kills_done_ = 0;
  double restart_ms_ = 0;
  bool stop_ = false;
  bool done_ = false;
  std::string failure_;
};

rpmb::Nonce random_nonce(std::mt19937_64& rng) {
  rpmb::Nonce n{};
  for (auto& b : n) b = static_cast<std::uint8_t>(rng());
  return n;
}

std::string seed_note(std::uint64_t seed) { return "replay with EMMCSIM_DURABILITY_SEED=" + std::to_string(seed); }

// ---- RPMB ---------------------------------------------------------------------------------

struct RpmbModel {
  std::uint64_t acknowledged = 0;         // Host::write returned ok
  std::uint64_t in_flight_committed = 0;  // interrupted writes the counter showed committed
  std::uint64_t in_flight_lost = 0;       // interrupted writes that had not committed
  std::array<std::vector<std::uint8_t>, kRpmbBlocks> contents;
  struct InFlight {
    std::uint16_t block;
    std::vector<std::uint8_t> data;
  };
  std::optional<InFlight> in_flight;

  std::uint64_t committed() const { return acknowledged + in_flight_committed; }
};

// Reads every block (one authenticated read, MAC and nonce verified) and compares.
void expect_rpmb_blocks(rpmb::Host& host, const RpmbModel& model, std::mt19937_64& rng, const std::string& when) {
  const rpmb::Nonce nonce = random_nonce(rng);
  const rpmb::HostResult r = host.read(0, kRpmbBlocks, nonce);
  ASSERT_TRUE(r.ok()) << when << ": authenticated read: " << rpmb::describe_result(r.result)
                      << " mac_valid=" << r.mac_valid.value_or(false) << " nonce_matches=" << r.nonce_matches;
  ASSERT_EQ(r.data.size(), std::size_t{kRpmbBlocks} * rpmb::kHalfSectorSize);
  for (std::uint16_t b = 0; b < kRpmbBlocks; ++b) {
    const std::uint8_t* got = r.data.data() + std::size_t{b} * rpmb::kHalfSectorSize;
    EXPECT_EQ(0, std::memcmp(got, model.contents[b].data(), rpmb::kHalfSectorSize))
        << when << ": RPMB block " << b << " holds " << describe_pattern(got, rpmb::kHalfSectorSize) << ", expected "
        << describe_pattern(model.contents[b].data(), rpmb::kHalfSectorSize);
  }
}

// After a (re)connection: the counter accounts for every acknowledged write and decides the
// write in flight; the blocks hold the last committed writes.
void check_rpmb_after_restart(rpmb::Host& host, RpmbModel& model, std::mt19937_64& rng, const std::string& when) {
  const rpmb::Nonce nonce = random_nonce(rng);
  const rpmb::HostResult c = host.read_counter(nonce);
  ASSERT_TRUE(c.ok()) << when << ": read counter: " << rpmb::describe_result(c.result)
                      << " mac_valid=" << c.mac_valid.value_or(false) << " nonce_matches=" << c.nonce_matches;
  const std::uint64_t expected = model.committed();
  if (c.write_counter == expected) {
    if (model.in_flight) ++model.in_flight_lost;
  } else if (c.write_counter == expected + 1 && model.in_flight) {
    ++model.in_flight_committed;
    model.contents[model.in_flight->block] = model.in_flight->data;
  } else {
    FAIL() << when << ": counter " << c.write_counter << ", expected " << expected
           << (model.in_flight ? " or one more (a write was in flight)" : " (no write in flight)") << " after "
           << model.acknowledged << " acknowledged writes and " << model.in_flight_committed
           << " interrupted writes that committed";
  }
  model.in_flight.reset();
  expect_rpmb_blocks(host, model, rng, when);
}

TEST(Durability, RpmbWritesSurviveKill9) {
  ASSERT_FALSE(emmcsim_binary().empty()) << "set EMMCSIM_BIN to the emmcsim executable";
  const unsigned kills = env_unsigned("EMMCSIM_DURABILITY_KILLS", 40);
  const std::uint64_t seed = test_seed();
  std::cout << "[ seed     ] " << seed << " (" << seed_note(seed) << ")\n";
  SCOPED_TRACE(seed_note(seed));
  const auto t_start = Clock::now();

  DaemonFixture f("emmcsim-dur");
  ASSERT_NO_THROW(f.daemon.start());
  std::mt19937_64 rng(seed ^ 0x5eed);
  RpmbModel model;
  {
    RpmbConnection conn(f.socket);
    const rpmb::HostResult k = conn.host.program_key(kKey);
    ASSERT_TRUE(k.ok()) << "program key: " << rpmb::describe_result(k.result);
    const rpmb::HostResult c = conn.host.read_counter(random_nonce(rng));
    ASSERT_TRUE(c.ok());
    ASSERT_EQ(c.write_counter, 0u);
    const rpmb::HostResult r = conn.host.read(0, kRpmbBlocks, random_nonce(rng));
    ASSERT_TRUE(r.ok()) << rpmb::describe_result(r.result);
    for (std::uint16_t b = 0; b < kRpmbBlocks; ++b)
      model.contents[b].assign(r.data.begin() + b * rpmb::kHalfSectorSize,
                               r.data.begin() + (b + 1) * rpmb::kHalfSectorSize);
  }

  Killer killer(f.daemon, kills, seed);
  std::unique_ptr<RpmbConnection> conn;
  unsigned generation = killer.generation();
  std::uint64_t sequence = 0;
  unsigned writes_after_last_kill = 0;
  killer.start();
  for (;;) {
    if (!conn) {
      const std::string when = "after restart " + std::to_string(generation);
      try {
        conn = std::make_unique<RpmbConnection>(f.socket);
      } catch (const bridge::BridgeClientError& e) {
        FAIL() << when << ": cannot connect to the restarted daemon: " << e.what();
      }
      check_rpmb_after_restart(conn->host, model, rng, when);
      if (HasFatalFailure() || HasFailure()) return;
      killer.verified(generation);
    }
    if (killer.done()) {
      if (!killer.failure().empty()) FAIL() << killer.failure();
      if (writes_after_last_kill++ == kWritesAfterLastKill) break;
    }
    const auto block = static_cast<std::uint16_t>(sequence % kRpmbBlocks);
    std::vector<std::uint8_t> data = make_pattern({kRpmbMagic, block, sequence}, rpmb::kHalfSectorSize);
    model.in_flight = RpmbModel::InFlight{block, data};
    rpmb::HostResult r;
    try {
      r = conn->host.write(block, data.data(), 1);
    } catch (const bridge::BridgeClientError&) {
      conn.reset();
      const std::optional<unsigned> next = killer.wait_restart(generation);
      if (!next) FAIL() << killer.failure();
      generation = *next;
      continue;
    }
    ASSERT_NE(r.result & ~rpmb::kCounterExpiredBit, static_cast<std::uint16_t>(rpmb::ResultCode::counter_failure))
        << "a counter failure with a single writer: the counter the daemon reported and the one it checks differ";
    ASSERT_TRUE(r.ok()) << "write " << sequence << " to block " << block << ": " << rpmb::describe_result(r.result)
                        << " mac_valid=" << r.mac_valid.value_or(false);
    ++model.acknowledged;
    model.contents[block] = std::move(data);
    model.in_flight.reset();
    ++sequence;
    ASSERT_EQ(r.write_counter, model.committed()) << "the write's result names another counter";
  }
  killer.stop();
  ASSERT_TRUE(killer.failure().empty()) << killer.failure();
  conn.reset();

  // A clean stop and start: everything is still there.
  const int status = f.daemon.terminate();
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << "SIGTERM: the daemon " << describe_wait_status(status) << "; its log:\n"
      << f.daemon.log_tail();
  ASSERT_NO_THROW(f.daemon.start());
  {
    RpmbConnection final_conn(f.socket);
    const rpmb::HostResult c = final_conn.host.read_counter(random_nonce(rng));
    ASSERT_TRUE(c.ok());
    EXPECT_EQ(c.write_counter, model.committed());
    expect_rpmb_blocks(final_conn.host, model, rng, "after the clean restart");
  }
  EXPECT_EQ(killer.kills_done(), kills);
  std::cout << "[ summary  ] " << killer.kills_done() << " kills (mean restart " << killer.mean_restart_ms() << " ms), "
            << model.acknowledged << " acknowledged writes, " << model.in_flight_committed
            << " interrupted writes committed, " << model.in_flight_lost
            << " interrupted writes not committed, counter " << model.committed() << ", " << ms_since(t_start) / 1000.0
            << " s\n";
  const int final_status = f.daemon.terminate();
  EXPECT_TRUE(WIFEXITED(final_status) && WEXITSTATUS(final_status) == 0) << describe_wait_status(final_status);
  if (HasFailure()) std::cout << "kept " << f.scratch.keep() << " (image and daemon.log)\n";
}

// ---- User area ----------------------------------------------------------------------------

std::vector<std::uint8_t> slot_data(std::size_t slot, std::uint64_t sequence) {
  std::vector<std::uint8_t> data;
  data.reserve(kSlotBytes);
  for (std::size_t s = 0; s < kSectorsPerSlot; ++s) {
    const auto sector =
        make_pattern({kUserMagic, static_cast<std::uint32_t>(slot * kSectorsPerSlot + s), sequence}, 512);
    data.insert(data.end(), sector.begin(), sector.end());
  }
  return data;
}

struct UserModel {
  std::uint64_t acknowledged = 0;
  std::uint64_t in_flight_new = 0, in_flight_old = 0, in_flight_mixed = 0;
  std::vector<std::vector<std::uint8_t>> contents = std::vector<std::vector<std::uint8_t>>(kSlots);
  struct InFlight {
    std::size_t slot;
    std::vector<std::uint8_t> data;
  };
  std::optional<InFlight> in_flight;
};

std::vector<std::uint8_t> read_slots(bridge::BridgeClient& client) {
  std::vector<std::uint8_t> all;
  for (std::size_t at = 0; at < kSlots * kSlotBytes; at += bridge::kMaxBlockTransfer) {
    bridge::BlockReadRequest q;
    q.node = bridge::Node::user;
    q.offset = kUserBase + at;
    q.length = static_cast<std::uint32_t>(std::min(bridge::kMaxBlockTransfer, kSlots * kSlotBytes - at));
    const bridge::BlockReadReply r = client.read(q);
    if (r.status.error != 0 || r.data.size() != q.length)
      throw std::runtime_error("block read failed: " + std::string(std::strerror(r.status.error)) + " " +
                               client.last_error_message());
    all.insert(all.end(), r.data.begin(), r.data.end());
  }
  return all;
}

void check_user_area(bridge::BridgeClient& client, UserModel& model, const std::string& when) {
  std::vector<std::uint8_t> now;
  try {
    now = read_slots(client);
  } catch (const std::exception& e) {
    FAIL() << when << ": " << e.what();
  }
  for (std::size_t slot = 0; slot < kSlots; ++slot) {
    const std::uint8_t* got = now.data() + slot * kSlotBytes;
    if (model.in_flight && model.in_flight->slot == slot) {
      // The interrupted write: each sector old or new.
      std::size_t news = 0;
      for (std::size_t s = 0; s < kSectorsPerSlot; ++s) {
        const std::uint8_t* g = got + s * 512;
        const bool is_new = std::memcmp(g, model.in_flight->data.data() + s * 512, 512) == 0;
        const bool is_old = std::memcmp(g, model.contents[slot].data() + s * 512, 512) == 0;
        EXPECT_TRUE(is_new || is_old) << when << ": slot " << slot << " sector " << s
                                      << " of the interrupted write holds " << describe_pattern(g, 512)
                                      << ", neither its old nor its new data";
        news += is_new && !is_old ? 1 : 0;
      }
      if (news == kSectorsPerSlot)
        ++model.in_flight_new;
      else if (news == 0)
        ++model.in_flight_old;
      else
        ++model.in_flight_mixed;
      model.contents[slot].assign(got, got + kSlotBytes);
      continue;
    }
    if (std::memcmp(got, model.contents[slot].data(), kSlotBytes) != 0) {
      ADD_FAILURE() << when << ": slot " << slot << " (acknowledged) holds " << describe_pattern(got, 512)
                    << " in its first sector, expected " << describe_pattern(model.contents[slot].data(), 512);
    }
  }
  model.in_flight.reset();
}

TEST(Durability, UserAreaWritesSurviveKill9) {
  ASSERT_FALSE(emmcsim_binary().empty()) << "set EMMCSIM_BIN to the emmcsim executable";
  const unsigned kills = env_unsigned("EMMCSIM_DURABILITY_KILLS", 40);
  const std::uint64_t seed = test_seed();
  std::cout << "[ seed     ] " << seed << " (" << seed_note(seed) << ")\n";
  SCOPED_TRACE(seed_note(seed));
  const auto t_start = Clock::now();

  DaemonFixture f("emmcsim-dur");
  ASSERT_NO_THROW(f.daemon.start());
  UserModel model;
  {
    bridge::BridgeClient client(f.socket);
    const std::vector<std::uint8_t> initial = read_slots(client);
    for (std::size_t slot = 0; slot < kSlots; ++slot)
      model.contents[slot].assign(initial.begin() + slot * kSlotBytes, initial.begin() + (slot + 1) * kSlotBytes);
  }

  Killer killer(f.daemon, kills, seed);
  std::unique_ptr<bridge::BridgeClient> client;
  unsigned generation = killer.generation();
  std::uint64_t sequence = 0;
  unsigned writes_after_last_kill = 0;
  std::mt19937_64 rng(seed ^ 0x51075);
  killer.start();
  for (;;) {
    if (!client) {
      const std::string when = "after restart " + std::to_string(generation);
      try {
        client = std::make_unique<bridge::BridgeClient>(f.socket);
      } catch (const bridge::BridgeClientError& e) {
        FAIL() << when << ": cannot connect to the restarted daemon: " << e.what();
      }
      check_user_area(*client, model, when);
      if (HasFailure()) return;
      killer.verified(generation);
    }
    if (killer.done()) {
      if (!killer.failure().empty()) FAIL() << killer.failure();
      if (writes_after_last_kill++ == kWritesAfterLastKill) break;
    }
    const std::size_t slot = static_cast<std::size_t>(rng() % kSlots);
    bridge::BlockWriteRequest q;
    q.node = bridge::Node::user;
    q.offset = kUserBase + slot * kSlotBytes;
    q.data = slot_data(slot, sequence);
    model.in_flight = UserModel::InFlight{slot, q.data};
    bridge::BlockWriteReply r;
    try {
      r = client->write(q);
    } catch (const bridge::BridgeClientError&) {
      client.reset();
      const std::optional<unsigned> next = killer.wait_restart(generation);
      if (!next) FAIL() << killer.failure();
      generation = *next;
      continue;
    }
    ASSERT_EQ(r.status.error, 0) << "block write " << sequence << ": " << std::strerror(r.status.error) << " "
                                 << client->last_error_message();
    ++model.acknowledged;
    model.contents[slot] = std::move(q.data);
    model.in_flight.reset();
    ++sequence;
  }
  killer.stop();
  ASSERT_TRUE(killer.failure().empty()) << killer.failure();
  client.reset();

  const int status = f.daemon.terminate();
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << "SIGTERM: the daemon " << describe_wait_status(status) << "; its log:\n"
      << f.daemon.log_tail();
  ASSERT_NO_THROW(f.daemon.start());
  {
    bridge::BridgeClient final_client(f.socket);
    check_user_area(final_client, model, "after the clean restart");
  }
  EXPECT_EQ(killer.kills_done(), kills);
  std::cout << "[ summary  ] " << killer.kills_done() << " kills (mean restart " << killer.mean_restart_ms() << " ms), "
            << model.acknowledged << " acknowledged " << kSlotBytes / 1024
            << " KiB writes; interrupted writes found new " << model.in_flight_new << ", old " << model.in_flight_old
            << ", mixed " << model.in_flight_mixed << ", " << ms_since(t_start) / 1000.0 << " s\n";
  const int final_status = f.daemon.terminate();
  EXPECT_TRUE(WIFEXITED(final_status) && WEXITSTATUS(final_status) == 0) << describe_wait_status(final_status);
  if (HasFailure()) std::cout << "kept " << f.scratch.keep() << " (image and daemon.log)\n";
}

}  // namespace
}  // namespace emmcsim::e2e
