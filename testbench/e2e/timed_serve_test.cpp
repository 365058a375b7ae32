// `emmcsim serve --timing approximate` as a process: the SystemC model behind the same bridge.
// Every reply that reached the card carries its simulated duration, and the durations are those
// the formulas give — eMMC bus cycles of spec/emmc.md at the mode the driver selected (HS400,
// 200 MHz, after the kernel's bring-up), plus the timing profile's internal times — written out
// here command by command as LinuxBlockDriver issues them. The same request in the same state
// takes the same simulated time, however fast clients send.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "daemon_process.hpp"
#include "scratch_directory.hpp"
#include "emmcsim/rpmb/host.hpp"
#include "emmcsim/rpmb/protocol.hpp"
#include "emmcsim/transport/bridge_client.hpp"
#include "emmcsim/transport/bridge_protocol.hpp"
#include "emmcsim/transport/bridge_rpmb_channel.hpp"

namespace emmcsim::e2e {
namespace {

namespace bridge = transport::bridge;

constexpr std::uint64_t kNs = 1000;  // ps
// At HS400's 200 MHz one cycle is 5 ns.
constexpr std::uint64_t kCycle = 5 * kNs;
constexpr std::uint64_t kCommand = (48 + 2 + 48 + 8) * kCycle;     // R1/R1b and N_RC: 530 ns
constexpr std::uint64_t kReadBlock = (1 + 256 + 16 + 1) * kCycle;  // 8-bit DDR: 1370 ns
constexpr std::uint64_t kWriteBlock = (2 + 274 + 2 + 5) * kCycle;  // N_WR, block, N_CRC, CRC status
constexpr std::uint64_t kNacMin = 2 * kCycle;
// The profile the daemon runs with (timing_profile.json below).
constexpr std::uint64_t kPageRead = 40'000 * kNs;
constexpr std::uint64_t kCachedSectorWrite = 1'000 * kNs;
constexpr std::uint64_t kExtCsdWrite = 20'000 * kNs;
constexpr std::uint64_t kPartitionSwitch = 70'000 * kNs;
constexpr std::uint64_t kHmacFrame = 3'000 * kNs;
constexpr std::uint64_t kRpmbCommit = 1'100'000 * kNs;
constexpr std::uint64_t kPageProgram = 300'000 * kNs;

const rpmb::Key kKey = {'e', 'm', 'm', 'c', 's', 'i', 'm', '-', 't', 'i', 'm', 'e', 'd', '-', 's', 'e',
                        'r', 'v', 'e', '-', 't', 'e', 's', 't', '-', 'k', 'e', 'y', '-', '0', '0', '1'};

class TimedServe : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = scratch_.path();
    socket_ = dir_ + "/mmc.sock";
    std::ofstream(dir_ + "/timing_profile.json") << R"({
      "nand_page_size": "16KiB", "page_read": "40us", "page_program": "300us",
      "cached_sector_write": "1us", "ext_csd_write": "20us", "partition_switch": "70us",
      "hmac_frame": "3us", "rpmb_commit": "1.1ms" })";
    std::vector<std::string> args = {"serve",
                                     "--image",
                                     dir_ + "/card",
                                     "--mmc-socket",
                                     socket_,
                                     "--timing",
                                     "approximate",
                                     "--timing-profile",
                                     dir_ + "/timing_profile.json",
                                     "--log-level",
                                     "debug",
                                     "--bus-trace",
                                     dir_ + "/bus.jsonl"};
    if (!fault_plan_.empty()) {
      std::ofstream(dir_ + "/faults.json") << fault_plan_;
      args.insert(args.end(), {"--fault-plan", dir_ + "/faults.json"});
    }
    daemon_ = std::make_unique<DaemonProcess>(emmcsim_binary(), args, dir_ + "/daemon.log");
    ASSERT_FALSE(emmcsim_binary().empty()) << "EMMCSIM_BIN is not set (CTest sets it)";
    daemon_->start();
    client_ = std::make_unique<bridge::BridgeClient>(socket_);
  }
  void TearDown() override {
    client_.reset();
    if (daemon_ && daemon_->running()) {
      const int status = daemon_->terminate();
      EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << describe_wait_status(status) << "\n"
                                                                 << daemon_->log_tail();
    }
  }

  static void expect_timed(const bridge::ReplyStatus& s) {
    EXPECT_EQ(s.error, 0);
    EXPECT_NE(s.flags & bridge::ReplyStatus::kTimed, 0u) << "the reply does not carry a simulated duration";
    EXPECT_GT(s.simulated_ps, 0u);
  }

  emmcsim::testing::ScratchDirectory scratch_{"emmcsim-timed"};
  std::string dir_, socket_;
  std::string fault_plan_;  // a derived fixture's --fault-plan
  std::unique_ptr<DaemonProcess> daemon_;
  std::unique_ptr<bridge::BridgeClient> client_;
};

TEST_F(TimedServe, SaysItRunsTimedAndInWhichMode) {
  EXPECT_NE(daemon_->log_tail().find("timed: HS400 8-bit DDR at 200 MHz"), std::string::npos) << daemon_->log_tail();
}

TEST_F(TimedServe, ABlockReadTakesItsCommandsPageReadAndBlocks) {
  // 4 KiB at 1 MiB: sectors 2048..2055, one NAND page. CMD23 + CMD18, then 8 blocks: the first
  // after the page read, the others after N_AC min.
  const bridge::BlockReadReply r = client_->read(bridge::BlockReadRequest{bridge::Node::user, 1 << 20, 4096});
  expect_timed(r.status);
  EXPECT_EQ(r.status.simulated_ps, 2 * kCommand + kPageRead + 7 * kNacMin + 8 * kReadBlock);
  EXPECT_NE(daemon_->log_tail().find("done: ok, 52.090 us simulated"), std::string::npos) << daemon_->log_tail();
  // The same request again: the same time.
  EXPECT_EQ(client_->read(bridge::BlockReadRequest{bridge::Node::user, 1 << 20, 4096}).status.simulated_ps,
            r.status.simulated_ps);
  // Crossing into a second page costs a second page read.
  const bridge::BlockReadReply across =
      client_->read(bridge::BlockReadRequest{bridge::Node::user, (1 << 20) + 14 * 1024, 4096});
  EXPECT_EQ(across.status.simulated_ps, 2 * kCommand + 2 * kPageRead + 6 * kNacMin + 8 * kReadBlock);
}

// --bus-trace: the request's bus phases, one JSON line each, flushed before the reply, and
// spanning exactly the simulated duration the reply carries.
TEST_F(TimedServe, TheBusTraceHoldsEachRequestsPhasesAndTheirTimes) {
  const bridge::BlockReadReply r = client_->read(bridge::BlockReadRequest{bridge::Node::user, 1 << 20, 4096});
  expect_timed(r.status);
  std::ifstream in(dir_ + "/bus.jsonl");
  std::vector<nlohmann::json> phases;
  for (std::string line; std::getline(in, line);) phases.push_back(nlohmann::json::parse(line));
  ASSERT_GE(phases.size(), 3u) << "the probe's phases and the read's";
  for (std::size_t i = 1; i < phases.size(); ++i)
    EXPECT_LE(phases[i - 1]["end_ps"].get<std::uint64_t>(), phases[i]["start_ps"].get<std::uint64_t>()) << i;
  const nlohmann::json& cmd23 = phases[phases.size() - 3];
  const nlohmann::json& cmd18 = phases[phases.size() - 2];
  const nlohmann::json& data = phases.back();
  EXPECT_EQ(cmd23["index"], 23);
  EXPECT_EQ(cmd23["arg"], "0x00000008");
  EXPECT_EQ(cmd18["index"], 18);
  EXPECT_EQ(cmd18["arg"], "0x00000800");
  EXPECT_EQ(data["operation"], "read_data");
  EXPECT_EQ(data["blocks"], 8);
  EXPECT_EQ(data["mode"], "HS400 8-bit DDR");
  EXPECT_EQ(data["end_ps"].get<std::uint64_t>() - cmd23["start_ps"].get<std::uint64_t>(), r.status.simulated_ps);
}

TEST_F(TimedServe, ASectorWriteIsCachedThenPolled) {
  // The driver turned the cache on: CMD24, the block, busy for one cached sector, one CMD13.
  const std::vector<std::uint8_t> data(512, 0xA5);
  const bridge::BlockWriteReply w = client_->write(bridge::BlockWriteRequest{bridge::Node::user, 8192, data});
  expect_timed(w.status);
  EXPECT_EQ(w.status.simulated_ps, kCommand + kWriteBlock + kCachedSectorWrite + kCommand);
  EXPECT_EQ(client_->read(bridge::BlockReadRequest{bridge::Node::user, 8192, 512}).data, data);
}

TEST_F(TimedServe, AnRpmbCounterReadAsMmcUtilsSendsIt) {
  {
    transport::BridgeRpmbChannel channel(*client_);
    rpmb::Host host(channel, kKey);
    ASSERT_TRUE(host.program_key(kKey).ok());
  }
  // mmc rpmb read-counter: one MULTI_CMD on the rpmb node, CMD25 of the request, CMD18 of the
  // response (flags 0xB5, blksz 512).
  const rpmb::Frame request = rpmb::requests::read_counter(rpmb::Nonce{});
  bridge::IoctlRequest q;
  q.node = bridge::Node::rpmb;
  q.multi = true;
  bridge::IoctlCommand send;
  send.write_flag = 1;
  send.opcode = 25;
  send.flags = 0xB5;
  send.blksz = 512;
  send.blocks = 1;
  send.data.assign(request.bytes(), request.bytes() + rpmb::kFrameSize);
  bridge::IoctlCommand receive = send;
  receive.write_flag = 0;
  receive.opcode = 18;
  receive.data.clear();
  q.commands = {send, receive};
  const bridge::IoctlReply r = client_->ioctl(q);
  expect_timed(r.status);
  ASSERT_EQ(r.results.size(), 2u);
  const rpmb::Frame response = rpmb::Frame::from_bytes(r.results[1].data.data());
  EXPECT_EQ(response.result(), 0);
  // Switch in (CMD6 + busy + CMD13), CMD23 + CMD25 + the frame + CMD13, CMD23 + CMD18 + the
  // response MAC + the frame + CMD13, switch back (CMD6 + busy + CMD13).
  const std::uint64_t switch_busy = kExtCsdWrite + kPartitionSwitch;
  const std::uint64_t expected = (2 * kCommand + switch_busy) + (3 * kCommand + kWriteBlock) +
                                 (3 * kCommand + kHmacFrame + kNacMin + kReadBlock) + (2 * kCommand + switch_busy);
  EXPECT_EQ(r.status.simulated_ps, expected);
}

TEST_F(TimedServe, AnAuthenticatedWriteIsBusyForItsMacCommitAndProgram) {
  transport::BridgeRpmbChannel channel(*client_);
  rpmb::Host host(channel, kKey);
  ASSERT_TRUE(host.program_key(kKey).ok());
  // Sign a one-frame write under counter 0 and send it as mmc rpmb write-block does: CMD25 of
  // the request (reliable), CMD25 of a result read, CMD18 of the result.
  const std::vector<std::uint8_t> data(256, 0x3C);
  std::vector<rpmb::Frame> frames = rpmb::requests::authenticated_write(7, 0, data.data(), 1);
  rpmb::FrameAuthenticator authenticator(kKey);
  rpmb::requests::sign(authenticator, frames);
  const rpmb::Frame result_read = rpmb::requests::result_read();
  bridge::IoctlCommand write;
  write.write_flag = 1u | (1u << 31);
  write.opcode = 25;
  write.flags = 0xB5;
  write.blksz = 512;
  write.blocks = 1;
  write.data.assign(frames[0].bytes(), frames[0].bytes() + rpmb::kFrameSize);
  bridge::IoctlCommand ask = write;
  ask.write_flag = 1;
  ask.data.assign(result_read.bytes(), result_read.bytes() + rpmb::kFrameSize);
  bridge::IoctlCommand receive = ask;
  receive.write_flag = 0;
  receive.opcode = 18;
  receive.data.clear();
  bridge::IoctlRequest q;
  q.node = bridge::Node::rpmb;
  q.multi = true;
  q.commands = {write, ask, receive};
  const bridge::IoctlReply r = client_->ioctl(q);
  expect_timed(r.status);
  ASSERT_EQ(r.results.size(), 3u);
  EXPECT_EQ(rpmb::Frame::from_bytes(r.results[2].data.data()).result(), 0);
  const std::uint64_t switch_busy = kExtCsdWrite + kPartitionSwitch;
  const std::uint64_t write_busy = kHmacFrame + kRpmbCommit + kPageProgram;  // one MAC, commit, page
  const std::uint64_t result_mac = kHmacFrame;  // the result's MAC, before its frame goes out
  const std::uint64_t expected = (2 * kCommand + switch_busy) + (3 * kCommand + kWriteBlock + write_busy) +
                                 (3 * kCommand + kWriteBlock) + (3 * kCommand + result_mac + kNacMin + kReadBlock) +
                                 (2 * kCommand + switch_busy);
  EXPECT_EQ(r.status.simulated_ps, expected);
  EXPECT_EQ(host.read_counter().write_counter, 1u);
}

TEST_F(TimedServe, RequestsThatFailAreTimedToo) {
  // A read past the end of the user area is refused by the driver before the bus: no card time.
  const bridge::BlockReadReply past = client_->read(bridge::BlockReadRequest{bridge::Node::user, 8ULL << 30, 512});
  EXPECT_EQ(past.status.error, EINVAL);
  // An illegal command reaches the card, which does not answer: N_CR max, then recovery.
  bridge::IoctlCommand bad;
  bad.opcode = 60;  // reserved
  bad.flags = 0x15;
  bridge::IoctlRequest q;
  q.node = bridge::Node::user;
  q.commands = {bad};
  const bridge::IoctlReply r = client_->ioctl(q);
  EXPECT_EQ(r.status.error, ETIMEDOUT);
  EXPECT_NE(r.status.flags & bridge::ReplyStatus::kTimed, 0u);
  EXPECT_GE(r.status.simulated_ps, (48 + 64 + 8) * kCycle);
}

// --fault-plan: occurrences count from the first request, the faults cost what the plan says,
// and the driver's recovery leaves the card working.
class TimedServeFaults : public TimedServe {
 protected:
  TimedServeFaults() {
    fault_plan_ = R"({ "faults": [
        { "kind": "data_crc", "command": 18, "occurrence": 1, "block": 2 },
        { "kind": "extended_busy", "command": 24, "occurrence": 1, "extra": "5ms" } ] })";
  }
};

TEST_F(TimedServeFaults, ABadCrcFailsTheReadAndExtraBusySlowsTheWrite) {
  EXPECT_NE(daemon_->log_tail().find("2 faults planned"), std::string::npos) << daemon_->log_tail();
  const std::vector<std::uint8_t> data(512, 0x5C);
  const bridge::BlockWriteReply w = client_->write(bridge::BlockWriteRequest{bridge::Node::user, 8192, data});
  expect_timed(w.status);
  EXPECT_EQ(w.status.simulated_ps, kCommand + kWriteBlock + kCachedSectorWrite + 5'000'000 * kNs + kCommand);
  // CMD18 #1: block 2 of 8 arrives with a bad CRC.
  const bridge::BlockReadReply bad = client_->read(bridge::BlockReadRequest{bridge::Node::user, 8192 - 2048, 4096});
  EXPECT_EQ(bad.status.error, EIO);
  EXPECT_TRUE(bad.data.empty());
  const bridge::BlockReadReply good = client_->read(bridge::BlockReadRequest{bridge::Node::user, 8192 - 2048, 4096});
  EXPECT_EQ(good.status.error, 0);
  ASSERT_EQ(good.data.size(), 4096u);
  EXPECT_TRUE(std::equal(data.begin(), data.end(), good.data.begin() + 2048));
  EXPECT_NE(daemon_->log_tail().find("fault injected: data_crc on block 2 of CMD18 #1"), std::string::npos)
      << daemon_->log_tail();
  std::ifstream in(dir_ + "/bus.jsonl");
  unsigned faulted = 0;
  for (std::string line; std::getline(in, line);)
    if (nlohmann::json::parse(line).contains("fault")) ++faulted;
  EXPECT_EQ(faulted, 2u) << "the trace names each injected fault";
}

TEST(TimedServeStartup, ABadProfileIsRefusedAndNothingIsCreated) {
  const emmcsim::testing::ScratchDirectory scratch("emmcsim-timed-bad");
  const std::string& dir = scratch.path();
  std::ofstream(dir + "/profile.json") << R"({ "ext_csd_write": "300ms" })";  // GENERIC_CMD6_TIME is 250 ms
  std::ofstream(dir + "/typo.json") << R"({ "page_raed": "40us" })";
  for (const char* profile : {"profile.json", "typo.json"}) {
    DaemonProcess daemon(emmcsim_binary(),
                         {"serve", "--image", dir + "/card", "--mmc-socket", dir + "/mmc.sock", "--timing",
                          "approximate", "--timing-profile", dir + "/" + profile},
                         dir + "/daemon.log");
    EXPECT_THROW(daemon.start(std::chrono::seconds(10)), std::runtime_error) << profile;
    const std::string log = daemon.log_tail();
    EXPECT_NE(log.find(std::string(profile) == "profile.json" ? "GENERIC_CMD6_TIME" : "page_raed: unknown field"),
              std::string::npos)
        << log;
    EXPECT_FALSE(std::filesystem::exists(dir + "/card")) << "the image was created for a profile that was refused";
  }
}

TEST(TimedServeStartup, TracesAndFaultPlansNeedTheTimedModelAndGoodFiles) {
  const emmcsim::testing::ScratchDirectory scratch("emmcsim-timed-trace");
  const std::string& dir = scratch.path();
  std::ofstream(dir + "/faults.json") << R"({ "faults": [] })";
  std::ofstream(dir + "/bad_faults.json") << R"({ "faults": [ { "kind": "bitrot", "command": 1 } ] })";
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--bus-trace", dir + "/bus.vcd"}, "--bus-trace records the timed model's bus: add --timing approximate"},
      {{"--timing", "approximate", "--bus-trace", dir + "/no/such/dir/bus.vcd"}, "cannot create it"},
      {{"--fault-plan", dir + "/faults.json"}, "--fault-plan injects faults on the timed model's bus"},
      {{"--timing", "approximate", "--fault-plan", dir + "/bad_faults.json"}, "faults[0].kind: \"bitrot\" is not"},
      {{"--timing", "approximate", "--fault-plan", dir + "/none.json"}, "cannot read fault plan"},
  };
  for (const auto& [extra, message] : cases) {
    std::vector<std::string> args = {"serve", "--image", dir + "/card", "--mmc-socket", dir + "/mmc.sock"};
    args.insert(args.end(), extra.begin(), extra.end());
    DaemonProcess daemon(emmcsim_binary(), args, dir + "/daemon.log");
    EXPECT_THROW(daemon.start(std::chrono::seconds(10)), std::runtime_error) << message;
    EXPECT_NE(daemon.log_tail().find(message), std::string::npos) << daemon.log_tail();
    EXPECT_FALSE(std::filesystem::exists(dir + "/card")) << "the image was created though serve refused to start";
  }
}

}  // namespace
}  // namespace emmcsim::e2e
