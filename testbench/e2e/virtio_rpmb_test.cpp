// virtio-rpmb against the real `emmcsim serve --vhost-user-socket` process, with VhostUserFrontend
// playing the VMM and its guest driver:
//   - one RPMB state: what a VM writes over virtio-rpmb, the MMC-ioctl bridge (as mmc-utils and
//     OP-TEE's supplicant use it) reads back with the same counter, and the other way round —
//     untimed, and with the SystemC model behind the daemon (--timing approximate);
//   - durability: authenticated writes acknowledged through the used ring survive kill -9 at
//     random instants, with the counter equal to the acknowledged writes (one more at most, for
//     the write in flight);
//   - the socket is 0600 and a daemon without --vhost-user-socket has none;
//   - garbage, plausible headers over random payloads, stray descriptors and hostile chains from
//     60 connections leave the daemon serving and the card untouched.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <random>
#include <regex>
#include <algorithm>
#include <string>
#include <vector>

#include "daemon_process.hpp"
#include "scratch_directory.hpp"
#include "emmcsim/rpmb/host.hpp"
#include "emmcsim/transport/bridge_client.hpp"
#include "emmcsim/transport/bridge_rpmb_channel.hpp"
#include "emmcsim/transport/vhost_user_frontend.hpp"

namespace emmcsim::e2e {
namespace {

using transport::BridgeRpmbChannel;
using transport::VhostUserFrontend;
using transport::VirtioRpmbChannel;
using Bytes = std::vector<std::uint8_t>;

rpmb::Key test_key() {
  rpmb::Key key{};
  for (std::size_t i = 0; i < key.size(); ++i) key[i] = static_cast<std::uint8_t>(0x30 + 7 * i);
  return key;
}

Bytes block_contents(std::uint32_t generation, std::uint16_t address) {
  Bytes b(rpmb::kHalfSectorSize);
  for (std::size_t i = 0; i < b.size(); ++i) b[i] = static_cast<std::uint8_t>(generation * 13 + address * 7 + i);
  return b;
}

class VirtioRpmbDaemon : public ::testing::Test {
 protected:
  void SetUp() override {
    if (emmcsim_binary().empty()) GTEST_SKIP() << "EMMCSIM_BIN is not set";
    dir_ = scratch_.path();
    mmc_socket_ = dir_ + "/mmc.sock";
    vhost_socket_ = dir_ + "/vhost.sock";
  }
  void TearDown() override {
    daemon_.reset();
    // A sanitizer build of the daemon reports into its log (and, halting, dies): none may appear.
    for (const char* log : {"/daemon.log", "/plain.log"}) {
      std::ifstream in(dir_ + log);
      const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      EXPECT_EQ(text.find("Sanitizer"), std::string::npos) << dir_ + log << ":\n" << text;
    }
  }
  void start(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {
        "serve", "--image", dir_ + "/card", "--mmc-socket", mmc_socket_, "--vhost-user-socket", vhost_socket_};
    if (std::find(extra.begin(), extra.end(), "--log-level") == extra.end())
      args.insert(args.end(), {"--log-level", "info"});
    args.insert(args.end(), extra.begin(), extra.end());
    daemon_ = std::make_unique<DaemonProcess>(emmcsim_binary(), args, dir_ + "/daemon.log");
    daemon_->start();
  }

  // Both fronts on one partition: virtio writes, the bridge reads; the bridge writes, virtio reads.
  void expect_one_rpmb_state() {
    VhostUserFrontend vm(vhost_socket_);
    vm.start();
    EXPECT_EQ(vm.config()[0], 32u);  // the default 4 MiB partition, in 128 KiB units
    VirtioRpmbChannel virtio(vm);
    rpmb::Host guest(virtio, test_key());
    ASSERT_TRUE(guest.program_key(test_key()).ok());
    Bytes eight_k(32 * rpmb::kHalfSectorSize);
    for (std::size_t i = 0; i < eight_k.size(); ++i) eight_k[i] = static_cast<std::uint8_t>(i * 5 + 1);
    ASSERT_TRUE(guest.write(96, eight_k.data(), 32).ok());

    transport::bridge::BridgeClient client(mmc_socket_);
    BridgeRpmbChannel bridge(client);
    rpmb::Host supplicant(bridge, test_key());
    const rpmb::HostResult counter = supplicant.read_counter();
    ASSERT_TRUE(counter.ok());
    EXPECT_EQ(counter.write_counter, 1u);
    const rpmb::HostResult read = supplicant.read(96, 32);
    ASSERT_TRUE(read.ok());
    EXPECT_EQ(read.data, eight_k);

    const Bytes block = block_contents(1, 3);
    ASSERT_TRUE(supplicant.write(3, block.data(), 1).ok());
    const rpmb::HostResult seen = guest.read(3, 1);
    ASSERT_TRUE(seen.ok());
    EXPECT_EQ(seen.data, block);
    EXPECT_EQ(guest.read_counter().write_counter, 2u);
    // The key is the partition's: programming it again fails through either front.
    EXPECT_EQ(guest.program_key(test_key()).result, static_cast<std::uint16_t>(rpmb::ResultCode::general_failure));
  }

  emmcsim::testing::ScratchDirectory scratch_{"emmcsim-virtio"};
  std::string dir_, mmc_socket_, vhost_socket_;
  std::unique_ptr<DaemonProcess> daemon_;
};

TEST_F(VirtioRpmbDaemon, SocketIsPrivateAndOptIn) {
  start();
  struct stat st {};
  ASSERT_EQ(::lstat(vhost_socket_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_NE(daemon_->log_tail().find("virtio-rpmb (vhost-user) on " + vhost_socket_), std::string::npos);
  daemon_.reset();
  const std::string other = dir_ + "/plain.sock";
  DaemonProcess plain(emmcsim_binary(), {"serve", "--image", dir_ + "/card", "--mmc-socket", other},
                      dir_ + "/plain.log");
  plain.start();
  EXPECT_EQ(plain.log_tail().find("virtio-rpmb"), std::string::npos);
}

TEST_F(VirtioRpmbDaemon, OneRpmbStateForTheVmAndTheIoctlBridge) {
  start();
  expect_one_rpmb_state();
}

TEST_F(VirtioRpmbDaemon, OneRpmbStateWithTheTimedModel) {
  start({"--timing", "approximate", "--log-level", "debug"});
  expect_one_rpmb_state();
  // Each chain's simulated duration is in the debug log; a 32-frame write costs more than a
  // counter read (its MACs and the RPMB commit).
  const std::string log = daemon_->log_tail(200000);
  const std::regex line(R"(vhost-user front-end \d+: chain \d+ done: 512 bytes, ([0-9.]+) us simulated)");
  std::vector<double> durations;
  for (auto it = std::sregex_iterator(log.begin(), log.end(), line); it != std::sregex_iterator(); ++it)
    durations.push_back(std::stod((*it)[1]));
  ASSERT_GE(durations.size(), 6u) << log;
  for (double d : durations) EXPECT_GT(d, 0.0);
  EXPECT_GT(*std::max_element(durations.begin(), durations.end()),
            *std::min_element(durations.begin(), durations.end()));
}

TEST_F(VirtioRpmbDaemon, GarbageOnTheSocketLeavesTheDaemonServing) {
  start();
  std::mt19937 random(7);
  namespace vu = transport::vhost_user;
  for (int connection = 0; connection < 60; ++connection) {
    try {
      VhostUserFrontend hostile(vhost_socket_);
      // Some after a proper handshake, with a running ring. (While earlier connections are still
      // being wound up this one may wait its turn, or be turned away: fine either way.)
      const bool handshake = connection % 3 == 0;
      if (handshake) hostile.start();
      std::vector<std::uint8_t> bytes(std::uniform_int_distribution<std::size_t>(1, 600)(random));
      for (auto& b : bytes) b = static_cast<std::uint8_t>(random());
      if (connection % 2 == 0 && bytes.size() >= vu::kHeaderSize) {
        // A plausible header (version 1, a known request, a small size) over random payload.
        const std::uint32_t request = 1 + random() % 40, flags = vu::kVersion | (random() % 2 ? vu::kFlagNeedReply : 0);
        const std::uint32_t size = static_cast<std::uint32_t>(bytes.size() - vu::kHeaderSize);
        std::memcpy(bytes.data(), &request, 4);
        std::memcpy(bytes.data() + 4, &flags, 4);
        std::memcpy(bytes.data() + 8, &size, 4);
      }
      std::vector<int> fds;
      if (connection % 5 == 0) fds = {hostile.memfd()};
      if (handshake) {  // hostile chains on the running ring first
        hostile.set_descriptor(0, random(), static_cast<std::uint32_t>(random()), static_cast<std::uint16_t>(random()),
                               static_cast<std::uint16_t>(random()));
        hostile.publish(0);
      }
      hostile.send_raw(bytes, fds);
    } catch (const transport::VhostUserFrontendError&) {
      // refused, or closed on us: fine
    }
  }
  ASSERT_TRUE(daemon_->running());
  int status = 0;
  ASSERT_FALSE(daemon_->exited(&status)) << describe_wait_status(status);
  VhostUserFrontend vm(vhost_socket_);
  vm.start();
  VirtioRpmbChannel virtio(vm);
  rpmb::Host guest(virtio, test_key());
  EXPECT_EQ(guest.read_counter().result, static_cast<std::uint16_t>(rpmb::ResultCode::key_not_programmed))
      << "nothing the garbage did reached the card";
  ASSERT_TRUE(guest.program_key(test_key()).ok());
  EXPECT_EQ(guest.read_counter().write_counter, 0u);
}

TEST_F(VirtioRpmbDaemon, AcknowledgedWritesSurviveKillDashNine) {
  const int kills =
      std::getenv("EMMCSIM_VIRTIO_KILLS") != nullptr ? std::atoi(std::getenv("EMMCSIM_VIRTIO_KILLS")) : 40;
  std::mt19937 random(20261203);
  constexpr std::uint16_t kBlocks = 16;
  std::vector<std::uint32_t> last_acked(kBlocks, 0);  // generation of each block's last acknowledged write
  std::uint32_t acknowledged = 0;                     // writes whose response came through the used ring
  start();
  {
    VhostUserFrontend vm(vhost_socket_);
    vm.start();
    VirtioRpmbChannel virtio(vm);
    rpmb::Host guest(virtio, test_key());
    ASSERT_TRUE(guest.program_key(test_key()).ok());
  }
  std::uint32_t generation = 0;
  int in_flight_committed = 0;
  for (int round = 0; round < kills; ++round) {
    // A writer in this thread; the kill comes after a random number of acknowledged writes,
    // while the next one is in flight (made available and kicked, its answer not awaited), or
    // just after its answer.
    const int writes = std::uniform_int_distribution<int>(1, 40)(random);
    std::uint32_t counter = 0;
    {
      VhostUserFrontend vm(vhost_socket_);
      vm.start();
      VirtioRpmbChannel virtio(vm);
      rpmb::Host guest(virtio, test_key());
      const rpmb::HostResult c = guest.read_counter();
      ASSERT_TRUE(c.ok());
      counter = c.write_counter;
      ASSERT_EQ(counter, acknowledged);
      for (int w = 0; w < writes; ++w) {
        const std::uint16_t address = static_cast<std::uint16_t>(random() % kBlocks);
        ++generation;
        const Bytes data = block_contents(generation, address);
        const rpmb::HostResult r = guest.write_with_counter(address, data.data(), 1, counter);
        ASSERT_TRUE(r.ok()) << "result " << r.result;
        ++counter;
        ++acknowledged;
        last_acked[address] = generation;
      }
      // One more, made available but not waited for: the kill lands while it is in flight.
      const std::uint16_t address = static_cast<std::uint16_t>(random() % kBlocks);
      std::vector<rpmb::Frame> frames =
          rpmb::requests::authenticated_write(address, counter, block_contents(++generation, address).data(), 1);
      rpmb::FrameAuthenticator authenticator(test_key());
      rpmb::requests::sign(authenticator, frames);
      frames.push_back(rpmb::requests::result_read());
      Bytes readable;
      for (const auto& f : frames) readable.insert(readable.end(), f.bytes(), f.bytes() + rpmb::kFrameSize);
      vm.submit({readable}, {static_cast<std::uint32_t>(rpmb::kFrameSize)});
      // Every other round the kill comes just after the answer: then the write is acknowledged.
      const bool answered = round % 2 == 1;
      if (answered) {
        ASSERT_EQ(vm.wait_used().length, rpmb::kFrameSize);
        const rpmb::Frame response = rpmb::Frame::from_bytes(vm.written().data());
        ASSERT_EQ(response.result(), static_cast<std::uint16_t>(rpmb::ResultCode::ok));
        ++acknowledged;
        last_acked[address] = generation;
      }
      const int status = daemon_->kill_now();
      EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << describe_wait_status(status);
      daemon_->start();
      // Check every block through the bridge: the last acknowledged write, or the one in flight.
      transport::bridge::BridgeClient client(mmc_socket_);
      BridgeRpmbChannel bridge(client);
      rpmb::Host supplicant(bridge, test_key());
      const rpmb::HostResult after = supplicant.read_counter();
      ASSERT_TRUE(after.ok());
      ASSERT_GE(after.write_counter, acknowledged);
      ASSERT_LE(after.write_counter, acknowledged + (answered ? 0 : 1));
      const bool committed = after.write_counter == acknowledged + 1;
      for (std::uint16_t a = 0; a < kBlocks; ++a) {
        const rpmb::HostResult block = supplicant.read(a, 1);
        ASSERT_TRUE(block.ok());
        const std::uint32_t expected = committed && a == address ? generation : last_acked[a];
        if (expected == 0) continue;  // never written
        EXPECT_EQ(block.data, block_contents(expected, a)) << "block " << a << " after round " << round;
      }
      if (committed) {  // committed but never acknowledged: from now on it is the block's contents
        last_acked[address] = generation;
        ++acknowledged;
        ++in_flight_committed;
      }
    }
  }
  EXPECT_GT(acknowledged, static_cast<std::uint32_t>(kills));
  std::printf("%d kills (%d with a write in flight): counter %u, %d in-flight writes committed, %d not\n", kills,
              kills / 2, acknowledged, in_flight_committed, kills / 2 - in_flight_committed);
}

}  // namespace
}  // namespace emmcsim::e2e
