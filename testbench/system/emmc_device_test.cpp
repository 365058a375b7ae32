// EmmcDevice on its socket, driven by a TestHost: responses and data as the untimed card gives
// them, and every simulated time checked against the cycle counts of spec/emmc.md and the
// timing profile — written out here, not taken from BusTiming. Each test is its own SystemC
// elaboration (system_scenario.hpp).
#include "emmcsim/models/emmc_device.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "emmcsim/mmc/card_status.hpp"
#include "emmcsim/mmc/image.hpp"
#include "emmcsim/mmc/protocol.hpp"
#include "emmcsim/rpmb/host.hpp"
#include "system_scenario.hpp"

namespace emmcsim::testing {
namespace {

using models::EmmcBusHost;
using models::EmmcDevice;
using models::Picoseconds;
using models::TimingProfile;
namespace ec = mmc::ext_csd;
namespace st = mmc::status;

constexpr std::uint64_t kIdentHz = 400'000;
constexpr std::uint64_t kLegacyHz = 26'000'000;
constexpr std::uint64_t kHsHz = 52'000'000;
constexpr std::uint64_t kHs400Hz = 200'000'000;
constexpr std::uint32_t kRcaArg = mmc::rca_arg(1);
// Cycle counts of spec/emmc.md.
constexpr std::uint64_t kShortCommand = 48 + 2 + 48 + 8;       // command, N_CR, R1/R3, N_RC
constexpr std::uint64_t kLongCommand = 48 + 2 + 136 + 8;       // R2
constexpr std::uint64_t kIdentShortCommand = 48 + 5 + 48 + 8;  // CMD1: command, N_ID, R3, N_RC
constexpr std::uint64_t kIdentLongCommand = 48 + 5 + 136 + 8;  // CMD2: command, N_ID, R2, N_RC
constexpr std::uint64_t kBroadcastCommand = 48 + 8;            // CMD0: command, N_CC (no response)
constexpr std::uint64_t kBlock8Sdr = 1 + 512 + 16 + 1;
constexpr std::uint64_t kBlock8Ddr = 1 + 256 + 16 + 1;
constexpr std::uint64_t kWriteBlock8Sdr = 2 + kBlock8Sdr + 2 + 5;  // N_WR, block, N_CRC, CRC status
constexpr std::uint64_t kNacMin = 2;

// A profile with values that are easy to tell apart in sums.
TimingProfile test_profile() {
  TimingProfile p;
  p.nand_page_size = 16 * 1024;  // 32 sectors
  p.page_read = 40 * models::kMicrosecond;
  p.page_program = 300 * models::kMicrosecond;
  p.cached_sector_write = 100 * models::kNanosecond;
  p.ext_csd_write = 20 * models::kMicrosecond;
  p.partition_switch = 70 * models::kMicrosecond;
  p.cache_flush = 55 * models::kMicrosecond;
  p.rpmb_commit = 1'100 * models::kMicrosecond;
  p.hmac_frame = 3 * models::kMicrosecond;
  return p;
}

// CMD6 write-byte access.
std::uint32_t switch_arg(std::size_t index, std::uint8_t value) {
  return mmc::switch_arg(mmc::SwitchAccess::write_byte, index, value);
}

std::uint32_t state_of(std::uint32_t r1) { return st::current_state(r1); }
constexpr auto kTran = static_cast<std::uint32_t>(mmc::CardState::tran);
constexpr auto kPrg = static_cast<std::uint32_t>(mmc::CardState::prg);

// A device on a RAM image and a host running `body`, bound and simulated to the end.
struct Rig {
  explicit Rig(std::function<void(EmmcBusHost&)> body, const TimingProfile& profile = test_profile(),
               const mmc::DeviceConfig& config = mmc::default_device_config())
      : image(config), device("card", config, image.backend(), profile), host("host", kIdentHz, std::move(body)) {
    host.bus.bind(device.bus);
    device.on_phase([this](const models::BusPhase& p) { phases.push_back(p); });
  }
  void run() {
    sc_core::sc_start();
    EXPECT_TRUE(host.finished()) << "the scenario did not run to its end";
  }
  mmc::MemoryImage image;
  EmmcDevice device;
  TestHost host;
  std::vector<models::BusPhase> phases;
};

// Identification at 400 kHz, then select (the card leaves identification mode with its RCA).
void identify(EmmcBusHost& host) {
  host.set_clock(kIdentHz);
  host.execute({0, 0});
  for (int i = 0; i < 100; ++i)
    if (host.execute({1, 0x40FF8080}).response.value & mmc::ocr::kPowerUpDone) break;
  host.execute({2, 0});
  host.execute({3, kRcaArg});
  host.execute({7, kRcaArg});
}

// CMD6 and its busy.
mmc::CommandOutcome switch_and_wait(EmmcBusHost& host, std::size_t index, std::uint8_t value) {
  const mmc::CommandOutcome o = host.execute({6, switch_arg(index, value)});
  host.wait_while_busy();
  return o;
}

// Identification, 8-bit bus, high-speed timing, 52 MHz.
void bring_up_high_speed(EmmcBusHost& host) {
  identify(host);
  host.set_clock(kLegacyHz);
  switch_and_wait(host, ec::kBusWidth, ec::bus_width::k8Bit);
  switch_and_wait(host, ec::kHsTiming, ec::hs_timing::kHighSpeed);
  host.set_clock(kHsHz);
}

std::vector<std::uint8_t> pattern(std::size_t n, std::uint8_t seed) {
  std::vector<std::uint8_t> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::uint8_t>(seed + i * 7 + i / 512);
  return v;
}

class EmmcDeviceScenario : public SystemScenario {};

TEST_F(EmmcDeviceScenario, IdentificationTakesEachCommandsCyclesAt400kHz) {
  std::vector<std::uint64_t> after;
  Rig rig([&](EmmcBusHost& host) {
    host.execute({0, 0});
    after.push_back(now_ps());
    int polls = 0;
    while (!(host.execute({1, 0x40FF8080}).response.value & mmc::ocr::kPowerUpDone)) ++polls;
    EXPECT_EQ(polls, 2) << "the default configuration answers busy twice";
    after.push_back(now_ps());
    EXPECT_EQ(host.execute({2, 0}).response.type, mmc::ResponseType::r2);
    after.push_back(now_ps());
    host.execute({3, kRcaArg});
    after.push_back(now_ps());
    host.execute({7, kRcaArg});
    after.push_back(now_ps());
    EXPECT_EQ(state_of(host.execute({13, kRcaArg}).response.value), kTran);
  });
  rig.run();
  const std::uint64_t cycle = cycles_ps(1, kIdentHz);
  ASSERT_EQ(cycle, 2'500'000u);
  ASSERT_EQ(after.size(), 5u);
  EXPECT_EQ(after[0], kBroadcastCommand * cycle) << "CMD0 has no response, nor does the host wait for one: 140 us";
  EXPECT_EQ(after[1], after[0] + 3 * kIdentShortCommand * cycle) << "three CMD1 with R3 after N_ID";
  EXPECT_EQ(after[2], after[1] + kIdentLongCommand * cycle) << "CMD2 with R2 after N_ID";
  EXPECT_EQ(after[3], after[2] + kShortCommand * cycle);
  EXPECT_EQ(after[4], after[3] + kShortCommand * cycle);
  EXPECT_EQ(after[4], 1'980'000'000u) << "1.98 ms in all";
}

TEST_F(EmmcDeviceScenario, SwitchesAreBusyForTheirWorkAndChangeTheMode) {
  std::uint64_t width_start = 0, width_end = 0, after_wait = 0;
  Rig rig([&](EmmcBusHost& host) {
    identify(host);
    host.set_clock(kLegacyHz);
    width_start = now_ps();
    const mmc::CommandOutcome o = host.execute({6, switch_arg(ec::kBusWidth, ec::bus_width::k8Bit)});
    width_end = now_ps();
    EXPECT_EQ(o.response.type, mmc::ResponseType::r1b);
    EXPECT_TRUE(host.busy());
    const std::uint32_t during = host.execute({13, kRcaArg}).response.value;
    EXPECT_EQ(state_of(during), kPrg);
    EXPECT_EQ(during & st::kReadyForData, 0u);
    host.wait_while_busy();
    after_wait = now_ps();
    EXPECT_FALSE(host.busy());
    EXPECT_EQ(state_of(host.execute({13, kRcaArg}).response.value), kTran);
  });
  rig.run();
  EXPECT_EQ(width_end - width_start, cycles_ps(kShortCommand, kLegacyHz));
  EXPECT_EQ(after_wait, width_end + 20 * models::kMicrosecond) << "busy is ext_csd_write after the response";
  // The mode each command travelled in.
  ASSERT_GE(rig.phases.size(), 3u);
  const models::BusPhase& last = rig.phases.back();
  EXPECT_EQ(last.mode.data_width, 8u);
  EXPECT_EQ(last.mode.speed, models::BusSpeed::legacy);
}

TEST_F(EmmcDeviceScenario, SingleBlockReadAtHighSpeedIsCommandPageReadAndBlock) {
  std::uint64_t start = 0, after_command = 0, after_data = 0;
  std::vector<std::uint8_t> got(512);
  Rig rig([&](EmmcBusHost& host) {
    bring_up_high_speed(host);
    start = now_ps();
    host.execute({17, 0});
    after_command = now_ps();
    const mmc::BlockOutcome b = host.read_blocks(got.data(), 512, 1);
    after_data = now_ps();
    EXPECT_TRUE(b.ok);
    EXPECT_TRUE(b.transfer_complete);
    EXPECT_EQ(state_of(host.execute({13, kRcaArg}).response.value), kTran);
  });
  const std::vector<std::uint8_t> data = pattern(512, 3);
  rig.image.backend().user->write(0, 1, data.data());
  rig.run();
  EXPECT_EQ(got, data);
  EXPECT_EQ(after_command - start, cycles_ps(kShortCommand, kHsHz));
  EXPECT_EQ(after_data - after_command, 40 * models::kMicrosecond + cycles_ps(kBlock8Sdr, kHsHz));
}

TEST_F(EmmcDeviceScenario, MultiBlockReadReadsEachNandPageOnce) {
  std::uint64_t after_command = 0, after_data = 0;
  Rig rig([&](EmmcBusHost& host) {
    bring_up_high_speed(host);
    host.execute({23, 64});
    host.execute({18, 16});  // sectors 16..79: pages 0, 1, 2 of 32 sectors
    after_command = now_ps();
    std::vector<std::uint8_t> buffer(64 * 512);
    // In two bursts: where the host splits the transfer does not change its time.
    EXPECT_EQ(host.read_blocks(buffer.data(), 512, 10).blocks, 10u);
    const mmc::BlockOutcome rest = host.read_blocks(buffer.data() + 10 * 512, 512, 54);
    EXPECT_EQ(rest.blocks, 54u);
    EXPECT_TRUE(rest.transfer_complete);
    after_data = now_ps();
  });
  rig.run();
  const std::uint64_t expected =
      3 * 40 * models::kMicrosecond + 61 * cycles_ps(kNacMin, kHsHz) + 64 * cycles_ps(kBlock8Sdr, kHsHz);
  EXPECT_EQ(after_data - after_command, expected);
}

TEST_F(EmmcDeviceScenario, WriteBusyIsAPageProgramPerPageTouchedAfterTheLastBlock) {
  std::uint64_t before_data = 0, after_data = 0, ready_at = 0;
  int polls = 0;
  Rig rig([&](EmmcBusHost& host) {
    bring_up_high_speed(host);
    host.execute({23, 40});
    host.execute({25, 30});  // sectors 30..69: pages 0, 1, 2
    const std::vector<std::uint8_t> data = pattern(40 * 512, 9);
    before_data = now_ps();
    const mmc::BlockOutcome b = host.write_blocks(data.data(), 512, 40);
    after_data = now_ps();
    EXPECT_TRUE(b.ok);
    EXPECT_TRUE(b.busy);
    // Poll CMD13 until the card is back in tran, as a driver without busy detection does.
    std::uint32_t r1 = 0;
    do {
      r1 = host.execute({13, kRcaArg}).response.value;
      ++polls;
      EXPECT_EQ((r1 & st::kReadyForData) != 0, state_of(r1) == kTran);
    } while (state_of(r1) != kTran && polls < 10'000);
    ready_at = now_ps();
  });
  rig.run();
  EXPECT_EQ(after_data - before_data, 40 * cycles_ps(kWriteBlock8Sdr, kHsHz));
  const std::uint64_t busy = 3 * 300 * models::kMicrosecond;
  const std::uint64_t poll = cycles_ps(kShortCommand, kHsHz);
  // The first poll that starts at or after the busy end answers tran.
  const std::uint64_t expected_polls = (busy + poll - 1) / poll + 1;
  EXPECT_EQ(static_cast<std::uint64_t>(polls), expected_polls);
  EXPECT_EQ(ready_at, after_data + expected_polls * poll);
}

TEST_F(EmmcDeviceScenario, WaitWhileBusyReturnsWhenTheProgramEnds) {
  std::uint64_t after_data = 0, after_wait = 0;
  Rig rig([&](EmmcBusHost& host) {
    bring_up_high_speed(host);
    host.execute({23, 32});
    host.execute({25, 64});  // one whole page
    const std::vector<std::uint8_t> data = pattern(32 * 512, 1);
    host.write_blocks(data.data(), 512, 32);
    after_data = now_ps();
    host.wait_while_busy();
    after_wait = now_ps();
    host.wait_while_busy();  // not busy: returns at once
    EXPECT_EQ(now_ps(), after_wait);
  });
  rig.run();
  EXPECT_EQ(after_wait - after_data, 300 * models::kMicrosecond);
}

TEST_F(EmmcDeviceScenario, OpenEndedWriteIsProgrammedAtCmd12) {
  std::uint64_t after_stop = 0, after_wait = 0;
  Rig rig([&](EmmcBusHost& host) {
    bring_up_high_speed(host);
    host.execute({25, 0});  // no CMD23: open-ended
    const std::vector<std::uint8_t> data = pattern(33 * 512, 5);
    const mmc::BlockOutcome b = host.write_blocks(data.data(), 512, 33);
    EXPECT_FALSE(b.busy) << "the card cannot know the transfer ended";
    const mmc::CommandOutcome stop = host.execute({12, 0});
    after_stop = now_ps();
    EXPECT_EQ(stop.response.type, mmc::ResponseType::r1b);
    host.wait_while_busy();
    after_wait = now_ps();
  });
  rig.run();
  EXPECT_EQ(after_wait - after_stop, 2 * 300 * models::kMicrosecond) << "sectors 0..32 touch two pages";
}

TEST_F(EmmcDeviceScenario, CachedWritesCostTheCacheAndFlushProgramsTheDirtyPages) {
  std::uint64_t after_data = 0, write_ready = 0, after_flush = 0, flush_ready = 0;
  Rig rig([&](EmmcBusHost& host) {
    bring_up_high_speed(host);
    switch_and_wait(host, ec::kCacheCtrl, ec::cache_ctrl::kOn);
    host.execute({23, 64});
    host.execute({25, 0});
    const std::vector<std::uint8_t> data = pattern(64 * 512, 2);
    host.write_blocks(data.data(), 512, 64);
    after_data = now_ps();
    host.wait_while_busy();
    write_ready = now_ps();
    host.execute({6, switch_arg(ec::kFlushCache, ec::flush_cache::kFlush)});
    after_flush = now_ps();
    host.wait_while_busy();
    flush_ready = now_ps();
  });
  rig.run();
  EXPECT_EQ(write_ready - after_data, 64 * 100 * models::kNanosecond);
  EXPECT_EQ(flush_ready - after_flush, 55 * models::kMicrosecond + 2 * 300 * models::kMicrosecond);
}

TEST_F(EmmcDeviceScenario, Hs400MovesABlockIn274Cycles) {
  std::uint64_t after_command = 0, after_data = 0;
  Rig rig([&](EmmcBusHost& host) {
    bring_up_high_speed(host);  // 8-bit, HS timing: the way into HS400 (JESD84-B51 §6.6.2.3)
    switch_and_wait(host, ec::kBusWidth, ec::bus_width::k8BitDdr);
    switch_and_wait(host, ec::kHsTiming, ec::hs_timing::kHs400);
    host.set_clock(kHs400Hz);
    host.execute({17, 0});
    after_command = now_ps();
    std::vector<std::uint8_t> block(512);
    EXPECT_TRUE(host.read_blocks(block.data(), 512, 1).ok);
    after_data = now_ps();
  });
  rig.run();
  EXPECT_EQ(rig.phases.back().mode, (models::BusMode{models::BusSpeed::hs400, 8, true}));
  EXPECT_EQ(after_data - after_command, 40 * models::kMicrosecond + cycles_ps(kBlock8Ddr, kHs400Hz));
}

TEST_F(EmmcDeviceScenario, TurningACleanCacheOffCostsTheSwitchAlone) {
  // The default profile at HS400: a CMD6 is ext_csd_write (20 us); a flush would add cache_flush
  // (50 us), which WorkReport counts only for FLUSH_CACHE or a cache turned off with dirty data.
  std::uint64_t start = 0, end = 0;
  Rig rig(
      [&](EmmcBusHost& host) {
        bring_up_high_speed(host);
        switch_and_wait(host, ec::kBusWidth, ec::bus_width::k8BitDdr);
        switch_and_wait(host, ec::kHsTiming, ec::hs_timing::kHs400);
        host.set_clock(kHs400Hz);
        switch_and_wait(host, ec::kCacheCtrl, ec::cache_ctrl::kOn);
        start = now_ps();
        switch_and_wait(host, ec::kCacheCtrl, ec::cache_ctrl::kOff);
        end = now_ps();
      },
      models::default_timing_profile());
  rig.run();
  EXPECT_EQ(end - start, cycles_ps(kShortCommand, kHs400Hz) + 20 * models::kMicrosecond);
}

TEST_F(EmmcDeviceScenario, TheDefaultProfileAtHs400MovesDataAsPublishedParts) {
  // Published HS400 parts: 166-217 MB/s sequential reads, 40-76 MB/s writes (spec/emmc.md).
  double read_mb_s = 0, write_mb_s = 0;
  Rig rig(
      [&](EmmcBusHost& host) {
        bring_up_high_speed(host);
        switch_and_wait(host, ec::kBusWidth, ec::bus_width::k8BitDdr);
        switch_and_wait(host, ec::kHsTiming, ec::hs_timing::kHs400);
        host.set_clock(kHs400Hz);
        std::vector<std::uint8_t> buffer(1024 * 512, 0x6B);  // 512 KiB, Linux's largest request
        std::uint64_t start = now_ps();
        for (int i = 0; i < 4; ++i) {
          host.execute({23, 1024});
          host.execute({25, static_cast<std::uint32_t>(i * 1024)});
          host.write_blocks(buffer.data(), 512, 1024);
          host.wait_while_busy();
        }
        write_mb_s = 4.0 * buffer.size() / (static_cast<double>(now_ps() - start) * 1e-12) / 1e6;
        start = now_ps();
        for (int i = 0; i < 4; ++i) {
          host.execute({23, 1024});
          host.execute({18, static_cast<std::uint32_t>(i * 1024)});
          host.read_blocks(buffer.data(), 512, 1024);
        }
        read_mb_s = 4.0 * buffer.size() / (static_cast<double>(now_ps() - start) * 1e-12) / 1e6;
      },
      models::default_timing_profile());
  rig.run();
  EXPECT_GE(read_mb_s, 166.0);
  EXPECT_LE(read_mb_s, 217.0);
  EXPECT_GE(write_mb_s, 40.0);
  EXPECT_LE(write_mb_s, 76.0);
  std::printf("[ rates    ] default profile, HS400 200 MHz: read %.1f MB/s, write %.1f MB/s\n", read_mb_s, write_mb_s);
}

// rpmb::RequestChannel over the timed bus: the kernel's route (switch, CMD23, CMD25/CMD18,
// CMD13, switch back), recording the busy of each request burst.
class TimedRpmbChannel final : public rpmb::RequestChannel {
 public:
  explicit TimedRpmbChannel(EmmcBusHost& host) : host_(host) {}
  void send(const rpmb::Frame* frames, std::size_t count, bool reliable) override {
    select(mmc::Partition::rpmb);
    const std::uint32_t reliable_bit = reliable ? mmc::set_block_count::kReliableWrite : 0;
    host_.execute({23, static_cast<std::uint32_t>(count) | reliable_bit});
    host_.execute({25, 0});
    std::vector<std::uint8_t> bytes(count * rpmb::kFrameSize);
    for (std::size_t i = 0; i < count; ++i)
      std::memcpy(&bytes[i * rpmb::kFrameSize], frames[i].bytes(), rpmb::kFrameSize);
    host_.write_blocks(bytes.data(), 512, static_cast<std::uint32_t>(count));
    const std::uint64_t end = now_ps();
    host_.wait_while_busy();
    busy_ps.push_back(now_ps() - end);
    select(mmc::Partition::user);
  }
  void receive(rpmb::Frame* frames, std::size_t count) override {
    select(mmc::Partition::rpmb);
    host_.execute({23, static_cast<std::uint32_t>(count)});
    host_.execute({18, 0});
    std::vector<std::uint8_t> bytes(count * rpmb::kFrameSize);
    const std::uint64_t start = now_ps();
    host_.read_blocks(bytes.data(), 512, static_cast<std::uint32_t>(count));
    read_ps.push_back(now_ps() - start);
    for (std::size_t i = 0; i < count; ++i) frames[i] = rpmb::Frame::from_bytes(&bytes[i * rpmb::kFrameSize]);
    select(mmc::Partition::user);
  }
  std::vector<std::uint64_t> busy_ps;         // after each request burst
  std::vector<std::uint64_t> read_ps;         // each response burst
  std::vector<std::uint64_t> switch_busy_ps;  // after each partition switch

 private:
  void select(mmc::Partition p) {
    host_.execute({6, switch_arg(ec::kPartitionConfig, ec::partition_config::value(p))});
    const std::uint64_t end = now_ps();
    host_.wait_while_busy();
    switch_busy_ps.push_back(now_ps() - end);
  }
  EmmcBusHost& host_;
};

TEST_F(EmmcDeviceScenario, RpmbThroughTheTimedBus) {
  std::vector<std::uint64_t> write_busy;
  std::vector<std::uint64_t> switch_busy;
  std::uint64_t read_time = 0;
  rpmb::HostResult written, read;
  const std::vector<std::uint8_t> data = pattern(256, 4);
  Rig rig([&](EmmcBusHost& host) {
    bring_up_high_speed(host);
    TimedRpmbChannel channel(host);
    rpmb::Key key{};
    for (std::size_t i = 0; i < key.size(); ++i) key[i] = static_cast<std::uint8_t>(i * 3 + 1);
    rpmb::Host rpmb_host(channel, key);
    EXPECT_TRUE(rpmb_host.program_key(key).ok());
    channel.busy_ps.clear();
    written = rpmb_host.write(5, data.data(), 1);
    read = rpmb_host.read(5, 1);
    read_time = channel.read_ps.back();
    write_busy = channel.busy_ps;
    switch_busy = channel.switch_busy_ps;
  });
  rig.run();
  EXPECT_TRUE(written.ok());
  EXPECT_TRUE(read.ok());
  EXPECT_EQ(read.data, data);
  // write(): counter read request, the write, its result read; then read()'s request.
  ASSERT_EQ(write_busy.size(), 4u);
  EXPECT_EQ(write_busy[1], 3 * models::kMicrosecond + 1'100 * models::kMicrosecond + 300 * models::kMicrosecond)
      << "one MAC, one commit, one page programmed";
  // The authenticated read's frame: the data read from its page and the response MAC, then the
  // block.
  EXPECT_EQ(read_time, 40 * models::kMicrosecond + 3 * models::kMicrosecond + cycles_ps(kNacMin, kHsHz) +
                           cycles_ps(kBlock8Sdr, kHsHz));
  // Every switch into and out of the RPMB partition: the CMD6 write and the partition switch.
  for (std::uint64_t b : switch_busy) EXPECT_EQ(b, 20 * models::kMicrosecond + 70 * models::kMicrosecond);
}

TEST_F(EmmcDeviceScenario, MalformedTransactionsAreRefusedAndChangeNothing) {
  std::vector<tlm::tlm_response_status> statuses;
  Rig* rig_of_scenario = nullptr;  // set before the simulation starts
  Rig rig([&](EmmcBusHost& host) {
    bring_up_high_speed(host);
    const std::uint64_t before = now_ps();
    auto send = [&](tlm::tlm_generic_payload& p) {
      sc_core::sc_time delay = sc_core::SC_ZERO_TIME;
      rig_of_scenario->host.bus->b_transport(p, delay);
      EXPECT_EQ(delay, sc_core::SC_ZERO_TIME) << "a refused transaction takes no bus time";
      statuses.push_back(p.get_response_status());
    };
    tlm::tlm_generic_payload bare;  // no extension
    send(bare);
    {
      models::EmmcBusTransaction t;
      t.set_command({13, kRcaArg}, 0);  // no clock
      send(t.payload());
    }
    {
      models::EmmcBusTransaction t;
      t.set_command({64, 0}, kHsHz);
      send(t.payload());
    }
    std::vector<std::uint8_t> buffer(1024);
    {
      models::EmmcBusTransaction t;
      t.set_read(buffer.data(), 512, 2, kHsHz);
      t.payload().set_data_length(700);  // not a multiple of the block
      send(t.payload());
    }
    {
      models::EmmcBusTransaction t;
      t.set_write(buffer.data(), 512, 1, kHsHz);
      t.payload().set_command(tlm::TLM_READ_COMMAND);  // a write that says read
      send(t.payload());
    }
    {
      models::EmmcBusTransaction t;
      t.set_read(buffer.data(), 512, 1, kHsHz);
      std::uint8_t enables[4] = {0xFF, 0, 0xFF, 0};
      t.payload().set_byte_enable_ptr(enables);
      t.payload().set_byte_enable_length(4);
      send(t.payload());
    }
    {
      models::EmmcBusTransaction t;
      t.set_read(nullptr, 512, 1, kHsHz);
      send(t.payload());
    }
    EXPECT_EQ(now_ps(), before);
    EXPECT_THROW(host.execute({64, 0}), models::TransactionRefused);
    // The card never saw any of it: still in tran, nothing pending.
    const std::uint32_t r1 = host.execute({13, kRcaArg}).response.value;
    EXPECT_EQ(state_of(r1), kTran);
    EXPECT_EQ(r1 & st::kIllegalCommand, 0u);
  });
  rig_of_scenario = &rig;
  sc_core::sc_report_handler::set_actions(EmmcDevice::kMessageType, sc_core::SC_WARNING, sc_core::SC_DO_NOTHING);
  rig.run();
  const std::vector<tlm::tlm_response_status> expected = {
      tlm::TLM_GENERIC_ERROR_RESPONSE, tlm::TLM_GENERIC_ERROR_RESPONSE, tlm::TLM_COMMAND_ERROR_RESPONSE,
      tlm::TLM_BURST_ERROR_RESPONSE,   tlm::TLM_COMMAND_ERROR_RESPONSE, tlm::TLM_BYTE_ENABLE_ERROR_RESPONSE,
      tlm::TLM_BURST_ERROR_RESPONSE};
  EXPECT_EQ(statuses, expected);
  EXPECT_EQ(sc_core::sc_report_handler::get_count(EmmcDevice::kMessageType), 8);
}

TEST_F(EmmcDeviceScenario, AClockAboveTheModesMaximumIsReportedOnce) {
  Rig rig([&](EmmcBusHost& host) {
    identify(host);
    host.set_clock(kHsHz);  // legacy timing allows 26 MHz
    for (int i = 0; i < 5; ++i) host.execute({13, kRcaArg});
    switch_and_wait(host, ec::kHsTiming, ec::hs_timing::kHighSpeed);  // now 52 MHz is allowed
    for (int i = 0; i < 5; ++i) host.execute({13, kRcaArg});
  });
  sc_core::sc_report_handler::set_actions(EmmcDevice::kMessageType, sc_core::SC_WARNING, sc_core::SC_DO_NOTHING);
  rig.run();
  EXPECT_EQ(sc_core::sc_report_handler::get_count(EmmcDevice::kMessageType), 1);
  // Timing follows the clock given, over-clocked or not.
  EXPECT_EQ(rig.phases.back().end_ps - rig.phases.back().start_ps, cycles_ps(kShortCommand, kHsHz));
}

TEST_F(EmmcDeviceScenario, LinuxsWayIntoHs400WarnsOfNothing) {
  // mmc_select_hs200() and mmc_select_hs400() (drivers/mmc/core/mmc.c), without enhanced
  // strobe: HS200 at 200 MHz and tuning, then HS_TIMING = high speed with the clock still at
  // 200 MHz while the CMD6 is busy, 52 MHz, the 8-bit DDR bus, HS_TIMING = HS400, 200 MHz.
  // JEDEC applies a switched timing once the switch has completed, so the busy of the
  // HS_TIMING = 1 switch is still HS200's and the correct driver is warned of nothing.
  namespace hs = ec::hs_timing;
  namespace bw = ec::bus_width;
  std::uint64_t hs_switch_at = 0;
  Rig rig([&](EmmcBusHost& host) {
    identify(host);
    host.set_clock(kLegacyHz);
    switch_and_wait(host, ec::kBusWidth, bw::k8Bit);
    switch_and_wait(host, ec::kHsTiming, hs::kHs200);
    host.set_clock(kHs400Hz);
    EXPECT_EQ(host.execute({21, 0}).data.block_size, 128u);
    std::vector<std::uint8_t> tuning(128);
    EXPECT_TRUE(host.read_blocks(tuning.data(), 128, 1).ok);
    hs_switch_at = now_ps();
    switch_and_wait(host, ec::kHsTiming, hs::kHighSpeed);  // its busy at 200 MHz
    host.set_clock(kHsHz);
    EXPECT_EQ(state_of(host.execute({13, kRcaArg}).response.value), kTran);
    switch_and_wait(host, ec::kBusWidth, bw::k8BitDdr);
    switch_and_wait(host, ec::kHsTiming, hs::kHs400);
    host.set_clock(kHs400Hz);
    EXPECT_EQ(state_of(host.execute({13, kRcaArg}).response.value), kTran);
  });
  sc_core::sc_report_handler::set_actions(EmmcDevice::kMessageType, sc_core::SC_WARNING, sc_core::SC_DO_NOTHING);
  rig.run();
  EXPECT_EQ(sc_core::sc_report_handler::get_count(EmmcDevice::kMessageType), 0);
  // The phases of the HS_TIMING = 1 switch: the command and its busy in HS200, the CMD13 after
  // it in high speed.
  std::vector<models::BusPhase> from_switch;
  for (const models::BusPhase& p : rig.phases)
    if (p.start_ps >= hs_switch_at) from_switch.push_back(p);
  ASSERT_GE(from_switch.size(), 3u);
  EXPECT_EQ(from_switch[0].operation, models::EmmcBusOperation::command);
  EXPECT_EQ(from_switch[0].mode.speed, models::BusSpeed::hs200);
  EXPECT_EQ(from_switch[1].operation, models::EmmcBusOperation::wait_while_busy);
  EXPECT_EQ(from_switch[1].mode.speed, models::BusSpeed::hs200);
  EXPECT_EQ(from_switch[2].mode.speed, models::BusSpeed::high_speed);
  EXPECT_EQ(rig.phases.back().mode, (models::BusMode{models::BusSpeed::hs400, 8, true}));
}

TEST_F(EmmcDeviceScenario, PowerCycleEndsBusyAndTheCardStartsOver) {
  Rig rig([&](EmmcBusHost& host) {
    bring_up_high_speed(host);
    host.execute({23, 32});
    host.execute({25, 0});
    const std::vector<std::uint8_t> data = pattern(32 * 512, 8);
    host.write_blocks(data.data(), 512, 32);
    EXPECT_TRUE(host.busy());
    const std::uint64_t at = now_ps();
    host.power_cycle();
    EXPECT_EQ(now_ps(), at);
    EXPECT_FALSE(host.busy());
    host.set_clock(kIdentHz);
    EXPECT_EQ(host.execute({13, kRcaArg}).response.type, mmc::ResponseType::none) << "idle: no RCA";
    identify(host);
    EXPECT_EQ(state_of(host.execute({13, kRcaArg}).response.value), kTran);
  });
  rig.run();
  EXPECT_EQ(rig.device.card().state(), mmc::CardState::tran);
}

TEST_F(EmmcDeviceScenario, TheSameScenarioTakesTheSameTimeOnTwoDevices) {
  // Two devices and two hosts in one simulation, running side by side from time zero.
  auto body = [](EmmcBusHost& host) {
    bring_up_high_speed(host);
    std::vector<std::uint8_t> buffer(64 * 512, 0x5A);
    for (std::uint32_t i = 0; i < 8; ++i) {
      host.execute({23, 8});
      host.execute({25, i * 40});
      host.write_blocks(buffer.data(), 512, 8);
      host.wait_while_busy();
      host.execute({23, 16});
      host.execute({18, i * 24});
      host.read_blocks(buffer.data(), 512, 16);
    }
  };
  mmc::MemoryImage image_a(mmc::default_device_config()), image_b(mmc::default_device_config());
  EmmcDevice a("a", mmc::default_device_config(), image_a.backend(), test_profile());
  EmmcDevice b("b", mmc::default_device_config(), image_b.backend(), test_profile());
  TestHost host_a("host_a", kIdentHz, body), host_b("host_b", kIdentHz, body);
  host_a.bus.bind(a.bus);
  host_b.bus.bind(b.bus);
  std::vector<std::pair<std::uint64_t, std::uint64_t>> times_a, times_b;
  a.on_phase([&](const models::BusPhase& p) { times_a.emplace_back(p.start_ps, p.end_ps); });
  b.on_phase([&](const models::BusPhase& p) { times_b.emplace_back(p.start_ps, p.end_ps); });
  sc_core::sc_start();
  EXPECT_TRUE(host_a.finished() && host_b.finished());
  EXPECT_GT(times_a.size(), 60u);
  EXPECT_EQ(times_a, times_b);
}

TEST_F(EmmcDeviceScenario, PhaseObserversAddUp) {
  // The rig records phases with its own observer; a trace and a counter watch beside it.
  std::vector<std::pair<std::uint64_t, std::uint64_t>> traced;
  std::vector<std::string> order;
  Rig rig([](EmmcBusHost& host) {
    identify(host);
    host.execute({13, kRcaArg});
  });
  rig.device.on_phase([&](const models::BusPhase& p) {
    traced.emplace_back(p.start_ps, p.end_ps);
    order.push_back("trace");
  });
  rig.device.on_phase({});  // ignored
  rig.device.on_phase([&](const models::BusPhase&) { order.push_back("counter"); });
  rig.run();
  ASSERT_EQ(traced.size(), rig.phases.size()) << "every observer sees every phase";
  for (std::size_t i = 0; i < traced.size(); ++i) {
    EXPECT_EQ(traced[i].first, rig.phases[i].start_ps);
    EXPECT_EQ(traced[i].second, rig.phases[i].end_ps);
  }
  ASSERT_EQ(order.size(), 2 * traced.size());
  for (std::size_t i = 0; i < order.size(); i += 2) {
    EXPECT_EQ(order[i], "trace") << "in the order they were added";
    EXPECT_EQ(order[i + 1], "counter");
  }
}

TEST_F(EmmcDeviceScenario, ConstructionRefusesAProfileTheExtCsdDoesNotAllow) {
  mmc::MemoryImage image(mmc::default_device_config());
  TimingProfile p = test_profile();
  p.ext_csd_write = 300 * models::kMillisecond;  // GENERIC_CMD6_TIME is 250 ms
  EXPECT_THROW(EmmcDevice("card", mmc::default_device_config(), image.backend(), p), models::TimingProfileError);
}

}  // namespace
}  // namespace emmcsim::testing

// One scenario per process (see system_scenario.hpp); sc_main is never called.
int sc_main(int, char**) { return 0; }
