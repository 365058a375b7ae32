// LinuxBlockDriver over mmc::Card on a MemoryImage, through a recording HostBus: the exact command
// sequences Linux's drivers/mmc/core/block.c issues for MMC_IOC_CMD / MMC_IOC_MULTI_CMD and block
// I/O (spec/mmc-ioctl.md, docs/bridge-protocol.md), RPMB frames as mmc-utils sends them, errno
// mapping, the switch back to the user area on every path, and a card left in tran after every
// request, failing ones included.
#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <iomanip>
#include <optional>
#include <ostream>
#include <sstream>
#include <utility>
#include <vector>

#include "emmcsim/mmc/card.hpp"
#include "emmcsim/mmc/card_status.hpp"
#include "emmcsim/mmc/device_config.hpp"
#include "emmcsim/mmc/host_bus.hpp"
#include "emmcsim/mmc/image.hpp"
#include "emmcsim/mmc/linux_block_driver.hpp"
#include "emmcsim/mmc/mmcblk_requests.hpp"
#include "emmcsim/mmc/registers.hpp"
#include "emmcsim/rpmb/frame.hpp"
#include "emmcsim/rpmb/host.hpp"
#include "emmcsim/rpmb/mac.hpp"
#include "emmcsim/rpmb/protocol.hpp"

namespace emmcsim::mmc {
namespace {

using mmcblk::IoctlCommand;
using mmcblk::IoctlReply;
using mmcblk::IoctlRequest;
using mmcblk::Node;
using rpmb::Frame;
using Bytes = std::vector<std::uint8_t>;
namespace st = mmc::status;
namespace ec = mmc::ext_csd;

constexpr std::uint32_t kRcaArg = 1u << 16;
constexpr std::uint32_t kHostOcr = 0x40FF8080;  // sector mode, 2.7-3.6 V, 1.8 V
constexpr std::uint32_t kFlagsR1 = 0x15;        // MMC_RSP_R1 | MMC_CMD_AC
constexpr std::uint32_t kFlagsR1b = 0x1D;       // MMC_RSP_R1B | MMC_CMD_AC
constexpr std::uint32_t kFlagsAdtc = 0xB5;      // MMC_RSP_SPI_R1 | MMC_RSP_R1 | MMC_CMD_ADTC (mmc-utils)
constexpr std::uint32_t kReliable = 1u << 31;

constexpr std::uint32_t switch_arg(std::size_t index, std::uint8_t value) {
  return (3u << 24) | (static_cast<std::uint32_t>(index) << 16) | (std::uint32_t{value} << 8);
}

// ---------------------------------------------------------------------------------------------
// A bus that records every command (and optionally pretends to be timed: 1 µs per command).

struct Cmd {
  int index = 0;
  std::uint32_t arg = 0;
  friend bool operator==(const Cmd& a, const Cmd& b) { return a.index == b.index && a.arg == b.arg; }
  friend void PrintTo(const Cmd& c, std::ostream* os) {
    *os << "CMD" << c.index << "(0x" << std::hex << std::setw(8) << std::setfill('0') << c.arg << std::dec << ")";
  }
};
using Trace = std::vector<Cmd>;

class RecordingBus final : public HostBus {
 public:
  static constexpr std::uint64_t kPsPerCommand = 1000000;
  static constexpr int kPowerCycle = -1;  // recorded in the trace like a command

  explicit RecordingBus(mmc::Card& card) : inner_(card) {}
  mmc::CommandOutcome execute(const mmc::Command& command) override {
    trace_.push_back(Cmd{command.index, command.arg});
    now_ps_ += kPsPerCommand;
    return inner_.execute(command);
  }
  mmc::BlockOutcome read_blocks(std::uint8_t* out, std::size_t block_size, std::uint32_t count) override {
    return inner_.read_blocks(out, block_size, count);
  }
  mmc::BlockOutcome write_blocks(const std::uint8_t* in, std::size_t block_size, std::uint32_t count) override {
    return inner_.write_blocks(in, block_size, count);
  }
  void wait_while_busy() override { inner_.wait_while_busy(); }
  void power_cycle() override {
    trace_.push_back(Cmd{kPowerCycle, 0});
    inner_.power_cycle();
  }
  std::optional<std::uint64_t> simulated_time_ps() const override {
    return timed_ ? std::optional<std::uint64_t>(now_ps_) : std::nullopt;
  }
  void set_clock(std::uint64_t hz) override { clocks_.push_back(hz); }
  const std::vector<std::uint64_t>& clocks() const { return clocks_; }

  Trace take() { return std::exchange(trace_, {}); }
  const Trace& trace() const { return trace_; }
  void set_timed(bool timed) { timed_ = timed; }

 private:
  CardHostBus inner_;
  Trace trace_;
  std::vector<std::uint64_t> clocks_;
  std::uint64_t now_ps_ = 0;
  bool timed_ = false;
};

std::size_t count_of(const Trace& t, int index) {
  return static_cast<std::size_t>(std::count_if(t.begin(), t.end(), [&](const Cmd& c) { return c.index == index; }));
}

// A card, its bus and the driver that probed it; the probe's trace is kept apart.
struct Rig {
  explicit Rig(const mmc::DeviceConfig& c)
      : config(c), image(c), card(c, image.backend()), bus(card), driver(bus), probe(bus.take()) {}
  mmc::DeviceConfig config;
  mmc::MemoryImage image;
  mmc::Card card;
  RecordingBus bus;
  LinuxBlockDriver driver;
  Trace probe;
};

mmc::DeviceConfig small_byte_addressed_config() {
  mmc::DeviceConfig c = mmc::default_device_config();
  c.user_capacity = 64ULL << 20;
  c.boot_partition_size = 1ULL << 20;
  c.rpmb_size = 512ULL << 10;
  c.cache_size = 64ULL << 10;
  return c;
}

Bytes pattern(std::size_t n, std::uint8_t seed) {
  Bytes b(n);
  for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::uint8_t>(seed * 31 + i * 13 + (i >> 9));
  return b;
}

rpmb::Key make_key(std::uint8_t seed) {
  rpmb::Key k{};
  for (std::size_t i = 0; i < k.size(); ++i) k[i] = static_cast<std::uint8_t>(seed + 5 * i);
  return k;
}

rpmb::Nonce make_nonce(std::uint8_t seed) {
  rpmb::Nonce n{};
  for (std::size_t i = 0; i < n.size(); ++i) n[i] = static_cast<std::uint8_t>(seed ^ (0x1D * i));
  return n;
}

// ---------------------------------------------------------------------------------------------
// ioctl requests as the tools build them

IoctlCommand plain(std::uint32_t opcode, std::uint32_t arg, std::uint32_t flags = kFlagsR1) {
  IoctlCommand c;
  c.opcode = opcode;
  c.arg = arg;
  c.flags = flags;
  return c;
}

IoctlCommand read_cmd(std::uint32_t opcode, std::uint32_t arg, std::uint32_t blksz, std::uint32_t blocks) {
  IoctlCommand c = plain(opcode, arg, kFlagsAdtc);
  c.blksz = blksz;
  c.blocks = blocks;
  return c;
}

IoctlCommand write_cmd(std::uint32_t opcode, std::uint32_t arg, std::uint32_t write_flag, Bytes data,
                       std::uint32_t blksz = 512) {
  IoctlCommand c = plain(opcode, arg, kFlagsAdtc);
  c.write_flag = write_flag;
  c.blksz = blksz;
  c.blocks = static_cast<std::uint32_t>(data.size() / blksz);
  c.data = std::move(data);
  return c;
}

IoctlRequest single(Node node, IoctlCommand c) {
  IoctlRequest q;
  q.node = node;
  q.multi = false;
  q.commands.push_back(std::move(c));
  return q;
}

IoctlRequest multi(Node node, std::vector<IoctlCommand> commands) {
  IoctlRequest q;
  q.node = node;
  q.multi = true;
  q.commands = std::move(commands);
  return q;
}

Bytes frame_bytes(const std::vector<Frame>& frames) {
  Bytes out(frames.size() * rpmb::kFrameSize);
  for (std::size_t i = 0; i < frames.size(); ++i)
    std::memcpy(out.data() + i * rpmb::kFrameSize, frames[i].bytes(), rpmb::kFrameSize);
  return out;
}

// mmc-utils' write-type operation (write-key, write-block): CMD25 of the request with
// write_flag 0x80000001, CMD25 of a result-read request with write_flag 1, CMD18 of one frame.
IoctlRequest rpmb_write_type(const std::vector<Frame>& request) {
  return multi(Node::rpmb,
               {write_cmd(25, 0, 1 | kReliable, frame_bytes(request)),
                write_cmd(25, 0, 1, frame_bytes({rpmb::requests::result_read()})), read_cmd(18, 0, 512, 1)});
}

// mmc-utils' read-type operation (read-counter, read-block): CMD25 of the request (write_flag 1),
// CMD18 of `frames` frames.
IoctlRequest rpmb_read_type(const Frame& request, std::uint32_t frames) {
  return multi(Node::rpmb, {write_cmd(25, 0, 1, frame_bytes({request})), read_cmd(18, 0, 512, frames)});
}

std::vector<Frame> response_frames(const IoctlReply& reply) {
  std::vector<Frame> out;
  if (reply.results.empty()) return out;
  const Bytes& data = reply.results.back().data;
  for (std::size_t at = 0; at + rpmb::kFrameSize <= data.size(); at += rpmb::kFrameSize)
    out.push_back(Frame::from_bytes(data.data() + at));
  return out;
}

// The sequence around one rpmb-node request: switch in, `body`, switch back (each switch
// followed by its CMD13 poll).
Trace rpmb_bracketed(std::uint8_t boot_bits, const Trace& body) {
  Trace t{{6, switch_arg(ec::kPartitionConfig, static_cast<std::uint8_t>(boot_bits | 3))}, {13, kRcaArg}};
  t.insert(t.end(), body.begin(), body.end());
  t.push_back({6, switch_arg(ec::kPartitionConfig, boot_bits)});
  t.push_back({13, kRcaArg});
  return t;
}

// ---------------------------------------------------------------------------------------------
// Fixture: the default 8 GiB card (sector addressing, 2 x 4 MiB boot, 4 MiB RPMB, 1 MiB cache).

class DriverTest : public ::testing::Test {
 protected:
  DriverTest() : rig_(mmc::default_device_config()) {}

  mmc::Card& card() { return rig_.card; }
  LinuxBlockDriver& driver() { return rig_.driver; }
  RecordingBus& bus() { return rig_.bus; }

  // After every request: tran, the user area selected, and the driver believes so too.
  void expect_settled() {
    EXPECT_EQ(card().state(), mmc::CardState::tran) << mmc::card_state_name(card().state());
    EXPECT_EQ(card().current_partition(), mmc::Partition::user);
    EXPECT_EQ(driver().partition_config() & 7u, 0u);
  }

  IoctlReply program_key() {
    IoctlReply reply = driver().ioctl(rpmb_write_type({rpmb::requests::program_key(key_)}));
    EXPECT_EQ(reply.status.error, 0);
    const std::vector<Frame> frames = response_frames(reply);
    EXPECT_EQ(frames.size(), 1u);
    if (!frames.empty()) {
      EXPECT_EQ(frames[0].result(), 0);
      EXPECT_EQ(frames[0].type(), 0x0100);
    }
    return reply;
  }

  std::uint32_t read_counter() {
    const IoctlReply reply = driver().ioctl(rpmb_read_type(rpmb::requests::read_counter(make_nonce(9)), 1));
    EXPECT_EQ(reply.status.error, 0);
    const std::vector<Frame> frames = response_frames(reply);
    if (frames.size() != 1) {
      ADD_FAILURE() << "no counter frame";
      return 0;
    }
    EXPECT_EQ(frames[0].result(), 0);
    return frames[0].write_counter();
  }

  IoctlReply authenticated_write(std::uint16_t address, const Bytes& data) {
    std::vector<Frame> request =
        rpmb::requests::authenticated_write(address, read_counter(), data.data(), data.size() / rpmb::kHalfSectorSize);
    rpmb::requests::sign(authenticator_, request);
    return driver().ioctl(rpmb_write_type(request));
  }

  Rig rig_;
  rpmb::Key key_ = make_key(0x42);
  rpmb::FrameAuthenticator authenticator_{key_};
};

// ---------------------------------------------------------------------------------------------
// Probe

TEST_F(DriverTest, ProbeIsLinuxsBringUp) {
  Trace expected{{0, 0}};
  for (std::uint32_t i = 0; i <= rig_.config.ocr_busy_polls; ++i) expected.push_back({1, kHostOcr});
  // Identification and EXT_CSD, then mmc_select_hs400es() (the default card has enhanced
  // strobe), then the cache; every switch followed by its CMD13.
  const Trace rest{{2, 0},
                   {3, kRcaArg},
                   {7, kRcaArg},
                   {8, 0},
                   {6, switch_arg(ec::kBusWidth, 2)},
                   {13, kRcaArg},
                   {6, switch_arg(ec::kHsTiming, 1)},
                   {13, kRcaArg},
                   {6, switch_arg(ec::kBusWidth, 0x86)},
                   {13, kRcaArg},
                   {6, switch_arg(ec::kHsTiming, 3)},
                   {13, kRcaArg},
                   {6, switch_arg(ec::kCacheCtrl, 1)},
                   {13, kRcaArg}};
  expected.insert(expected.end(), rest.begin(), rest.end());
  EXPECT_EQ(rig_.probe, expected);
  EXPECT_EQ(bus().clocks(), (std::vector<std::uint64_t>{400'000, 52'000'000, 200'000'000}));
  expect_settled();
  EXPECT_EQ(card().ext_csd()[ec::kCacheCtrl], 1);
  EXPECT_EQ(card().ext_csd()[ec::kHsTiming], 3);
  EXPECT_EQ(card().ext_csd()[ec::kBusWidth], 0x86);
  EXPECT_EQ(driver().ext_csd()[ec::kSecCount], card().ext_csd()[ec::kSecCount]);
}

// mmc_select_timing() for each set of bus modes a card can offer.
struct BusModeCase {
  const char* name;
  mmc::BusModes modes;
  std::uint8_t hs_timing, bus_width;
  std::vector<std::uint64_t> clocks;
  bool tuned;  // CMD21 in HS200
};

class DriverBusModes : public ::testing::TestWithParam<BusModeCase> {};

TEST_P(DriverBusModes, ProbeSelectsTheFastestModeTheCardOffers) {
  const BusModeCase& c = GetParam();
  mmc::DeviceConfig config = mmc::default_device_config();
  config.bus_modes = c.modes;
  Rig rig(config);
  EXPECT_EQ(rig.card.ext_csd()[ec::kHsTiming], c.hs_timing);
  EXPECT_EQ(rig.card.ext_csd()[ec::kBusWidth], c.bus_width);
  EXPECT_EQ(rig.bus.clocks(), c.clocks);
  EXPECT_EQ(count_of(rig.probe, 21), c.tuned ? 1u : 0u);
  EXPECT_EQ(rig.card.state(), mmc::CardState::tran);
  // And the card works in that mode.
  ASSERT_EQ(rig.driver.write(mmcblk::BlockWriteRequest{Node::user, 4096, pattern(4096, 3)}).status.error, 0);
  EXPECT_EQ(rig.driver.read(mmcblk::BlockReadRequest{Node::user, 4096, 4096}).data, pattern(4096, 3));
}

mmc::BusModes modes(bool hs52, bool ddr52, bool hs200, bool hs400, bool strobe) {
  mmc::BusModes m;
  m.hs52 = hs52;
  m.ddr52 = ddr52;
  m.hs200 = hs200;
  m.hs400 = hs400;
  m.enhanced_strobe = strobe;
  return m;
}

INSTANTIATE_TEST_SUITE_P(
    Modes, DriverBusModes,
    ::testing::Values(
        BusModeCase{"Hs400EnhancedStrobe",
                    modes(true, true, true, true, true),
                    3,
                    0x86,
                    {400'000, 52'000'000, 200'000'000},
                    false},
        BusModeCase{"Hs200TunedThenHs400",
                    modes(true, true, true, true, false),
                    3,
                    6,
                    {400'000, 200'000'000, 52'000'000, 200'000'000},
                    true},
        BusModeCase{"Hs200", modes(true, true, true, false, false), 2, 2, {400'000, 200'000'000}, true},
        BusModeCase{"Ddr52", modes(true, true, false, false, false), 1, 6, {400'000, 52'000'000}, false},
        BusModeCase{"HighSpeed52", modes(true, false, false, false, false), 1, 2, {400'000, 52'000'000}, false},
        BusModeCase{"HighSpeed26", modes(false, false, false, false, false), 1, 2, {400'000, 26'000'000}, false}),
    [](const ::testing::TestParamInfo<BusModeCase>& param) { return std::string(param.param.name); });

TEST(DriverProbe, NoCacheNoCacheCtrl) {
  mmc::DeviceConfig c = mmc::default_device_config();
  c.cache_size = 0;
  Rig rig(c);
  ASSERT_FALSE(rig.probe.empty());
  EXPECT_EQ(rig.probe.back(), (Cmd{13, kRcaArg}));
  EXPECT_EQ(std::count(rig.probe.begin(), rig.probe.end(), Cmd{6, switch_arg(ec::kCacheCtrl, 1)}), 0);
  // A flush has nothing to do.
  EXPECT_EQ(rig.driver.flush(mmcblk::FlushRequest{Node::user}).status.error, 0);
  EXPECT_TRUE(rig.bus.take().empty());
}

TEST_F(DriverTest, DescribeMatchesTheConfiguration) {
  const mmcblk::DescribeReply d = driver().describe();
  const mmc::DeviceConfig& c = rig_.config;
  EXPECT_EQ(d.status.error, 0);
  EXPECT_EQ(d.node_size[0], c.user_capacity);
  EXPECT_EQ(d.node_size[1], c.boot_partition_size);
  EXPECT_EQ(d.node_size[2], c.boot_partition_size);
  EXPECT_EQ(d.node_size[3], c.rpmb_size);
  EXPECT_EQ(d.rpmb_size_mult, c.rpmb_size / (128 * 1024));
  EXPECT_EQ(d.rel_sectors, c.reliable_write_sectors);
  EXPECT_EQ(d.cid, card().cid());
  EXPECT_TRUE(bus().take().empty()) << "describe() is answered from the probe";
}

TEST(DriverProbe, DescribeOfASmallByteAddressedCard) {
  Rig rig(small_byte_addressed_config());
  const mmcblk::DescribeReply d = rig.driver.describe();
  EXPECT_EQ(d.node_size[0], 64ULL << 20);
  EXPECT_EQ(d.node_size[1], 1ULL << 20);
  EXPECT_EQ(d.node_size[3], 512ULL << 10);
  EXPECT_EQ(d.rpmb_size_mult, 4u);
  // CMD1 asked for sector mode; the card answered byte mode.
  EXPECT_EQ(count_of(rig.probe, 1), rig.config.ocr_busy_polls + 1);
}

TEST(DriverProbe, PartitionAccessOfEachNode) {
  EXPECT_EQ(partition_access_of(Node::user), 0);
  EXPECT_EQ(partition_access_of(Node::boot0), 1);
  EXPECT_EQ(partition_access_of(Node::boot1), 2);
  EXPECT_EQ(partition_access_of(Node::rpmb), 3);
}

// ---------------------------------------------------------------------------------------------
// RPMB through ioctls, as mmc-utils sends them

TEST_F(DriverTest, RpmbWriteKeyIsTheKernelsSequence) {
  const IoctlReply reply = program_key();
  const Trace body{{23, 0x80000001}, {25, 0}, {13, kRcaArg},   // the key frame, reliable
                   {23, 1},          {25, 0}, {13, kRcaArg},   // the result read request
                   {23, 1},          {18, 0}, {13, kRcaArg}};  // the result
  EXPECT_EQ(bus().take(), rpmb_bracketed(0, body));
  ASSERT_EQ(reply.results.size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    // R1 of each command: tran (CMD25/CMD18 answered in tran), no error bits.
    EXPECT_EQ(st::current_state(reply.results[i].response[0]), static_cast<std::uint32_t>(mmc::CardState::tran)) << i;
    EXPECT_EQ(reply.results[i].response[0] & st::kAnyError, 0u) << i;
  }
  EXPECT_TRUE(reply.results[0].data.empty());
  EXPECT_TRUE(reply.results[1].data.empty());
  EXPECT_EQ(reply.results[2].data.size(), 512u);
  EXPECT_EQ(reply.status.flags, 0u) << "untimed bus";
  EXPECT_EQ(reply.status.simulated_ps, 0u);
  expect_settled();

  // A second key programming is refused by the device (general failure), not by the driver.
  const IoctlReply again = driver().ioctl(rpmb_write_type({rpmb::requests::program_key(make_key(1))}));
  EXPECT_EQ(again.status.error, 0);
  ASSERT_EQ(response_frames(again).size(), 1u);
  EXPECT_EQ(response_frames(again)[0].result(), static_cast<std::uint16_t>(rpmb::ResultCode::general_failure));
  expect_settled();
}

TEST_F(DriverTest, RpmbReadCounterIsTwoCommands) {
  program_key();
  bus().take();
  const rpmb::Nonce nonce = make_nonce(0x33);
  const IoctlReply reply = driver().ioctl(rpmb_read_type(rpmb::requests::read_counter(nonce), 1));
  EXPECT_EQ(reply.status.error, 0);
  EXPECT_EQ(bus().take(), rpmb_bracketed(0, {{23, 1}, {25, 0}, {13, kRcaArg}, {23, 1}, {18, 0}, {13, kRcaArg}}));
  std::vector<Frame> frames = response_frames(reply);
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].type(), 0x0200);
  EXPECT_EQ(frames[0].result(), 0);
  EXPECT_EQ(frames[0].write_counter(), 0u);
  EXPECT_EQ(frames[0].nonce(), nonce);
  EXPECT_TRUE(authenticator_.verify(frames.data(), 1));
  expect_settled();
}

TEST_F(DriverTest, RpmbReadCounterWithoutAKeyReportsKeyNotProgrammed) {
  const IoctlReply reply = driver().ioctl(rpmb_read_type(rpmb::requests::read_counter(make_nonce(1)), 1));
  EXPECT_EQ(reply.status.error, 0);
  ASSERT_EQ(response_frames(reply).size(), 1u);
  EXPECT_EQ(response_frames(reply)[0].result(), static_cast<std::uint16_t>(rpmb::ResultCode::key_not_programmed));
  expect_settled();
}

TEST_F(DriverTest, RpmbAuthenticatedWriteAndReadOfOneBlock) {
  program_key();
  const Bytes data = pattern(256, 1);
  const IoctlReply w = authenticated_write(7, data);
  EXPECT_EQ(w.status.error, 0);
  std::vector<Frame> result = response_frames(w);
  ASSERT_EQ(result.size(), 1u);
  EXPECT_EQ(result[0].type(), 0x0300);
  EXPECT_EQ(result[0].result(), 0);
  EXPECT_EQ(result[0].write_counter(), 1u);
  EXPECT_EQ(result[0].address(), 7);
  EXPECT_TRUE(authenticator_.verify(result.data(), 1));
  expect_settled();

  const rpmb::Nonce nonce = make_nonce(0x77);
  const IoctlReply r = driver().ioctl(rpmb_read_type(rpmb::requests::authenticated_read(7, nonce), 1));
  EXPECT_EQ(r.status.error, 0);
  std::vector<Frame> frames = response_frames(r);
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].type(), 0x0400);
  EXPECT_EQ(frames[0].result(), 0);
  EXPECT_EQ(frames[0].address(), 7);
  EXPECT_EQ(frames[0].nonce(), nonce);
  EXPECT_TRUE(std::equal(data.begin(), data.end(), frames[0].data()));
  EXPECT_TRUE(authenticator_.verify(frames.data(), 1));
  expect_settled();
}

TEST_F(DriverTest, RpmbAuthenticatedWriteAndReadOfSeveralBlocks) {
  program_key();
  for (std::size_t half_sectors : {std::size_t{2}, std::size_t{32}}) {
    SCOPED_TRACE(std::to_string(half_sectors) + " half-sectors");
    const Bytes data = pattern(half_sectors * 256, static_cast<std::uint8_t>(half_sectors));
    const std::uint32_t before = read_counter();
    bus().take();
    std::vector<Frame> request = rpmb::requests::authenticated_write(16, before, data.data(), half_sectors);
    rpmb::requests::sign(authenticator_, request);
    const IoctlReply w = driver().ioctl(rpmb_write_type(request));
    EXPECT_EQ(w.status.error, 0);
    const Trace trace = bus().take();
    ASSERT_GE(trace.size(), 4u);
    EXPECT_EQ(trace[2], (Cmd{23, kReliable | static_cast<std::uint32_t>(half_sectors)}))
        << "CMD23 carries N and bit 31";
    std::vector<Frame> result = response_frames(w);
    ASSERT_EQ(result.size(), 1u);
    EXPECT_EQ(result[0].result(), 0);
    EXPECT_EQ(result[0].write_counter(), before + 1);
    EXPECT_TRUE(authenticator_.verify(result.data(), 1));
    expect_settled();

    const rpmb::Nonce nonce = make_nonce(static_cast<std::uint8_t>(half_sectors));
    const IoctlReply r = driver().ioctl(
        rpmb_read_type(rpmb::requests::authenticated_read(16, nonce), static_cast<std::uint32_t>(half_sectors)));
    EXPECT_EQ(r.status.error, 0);
    std::vector<Frame> frames = response_frames(r);
    ASSERT_EQ(frames.size(), half_sectors);
    for (std::size_t i = 0; i < half_sectors; ++i) {
      EXPECT_EQ(frames[i].result(), 0) << i;
      EXPECT_TRUE(
          std::equal(frames[i].data(), frames[i].data() + 256, data.begin() + static_cast<std::ptrdiff_t>(256 * i)))
          << "frame " << i;
    }
    EXPECT_EQ(frames.back().nonce(), nonce);
    EXPECT_TRUE(authenticator_.verify(frames.data(), frames.size())) << "MAC over all N frames";
    expect_settled();
  }
  EXPECT_EQ(read_counter(), 2u);
}

TEST_F(DriverTest, RpmbWriteWithAWrongMacIsAnAuthenticationFailureNotAnErrno) {
  program_key();
  const Bytes data = pattern(256, 5);
  std::vector<Frame> request = rpmb::requests::authenticated_write(0, read_counter(), data.data(), 1);
  rpmb::FrameAuthenticator wrong(make_key(0x99));
  rpmb::requests::sign(wrong, request);
  const IoctlReply w = driver().ioctl(rpmb_write_type(request));
  EXPECT_EQ(w.status.error, 0);
  ASSERT_EQ(response_frames(w).size(), 1u);
  EXPECT_EQ(response_frames(w)[0].result(), static_cast<std::uint16_t>(rpmb::ResultCode::authentication_failure));
  EXPECT_EQ(read_counter(), 0u);
  expect_settled();
}

// ---------------------------------------------------------------------------------------------
// Failing commands: the chain ends, the card goes back to the user area and to tran

TEST_F(DriverTest, Cmd18WithAWrongBlockSizeIsEilseqAndEndsTheChain) {
  program_key();
  bus().take();
  IoctlRequest q = multi(Node::rpmb, {write_cmd(25, 0, 1, frame_bytes({rpmb::requests::read_counter(make_nonce(2))})),
                                      read_cmd(18, 0, 256, 2),    // frames are 512 bytes
                                      read_cmd(18, 0, 512, 1)});  // never issued
  const IoctlReply reply = driver().ioctl(q);
  EXPECT_EQ(reply.status.error, EILSEQ);
  ASSERT_EQ(reply.results.size(), 3u);
  EXPECT_NE(reply.results[0].response[0], 0u);
  EXPECT_EQ(reply.results[2].response, (std::array<std::uint32_t, 4>{}));
  EXPECT_EQ(reply.results[1].data.size(), 512u);
  EXPECT_EQ(reply.results[2].data, Bytes(512, 0)) << "a read that never ran returns zeros";
  const Trace trace = bus().take();
  EXPECT_EQ(count_of(trace, 18), 1u) << "the chain ended at the first failure";
  EXPECT_EQ(count_of(trace, 12), 1u) << "the open transfer was stopped";
  ASSERT_GE(trace.size(), 2u);
  EXPECT_EQ(trace[trace.size() - 2], (Cmd{6, switch_arg(ec::kPartitionConfig, 0)})) << "switched back";
  expect_settled();
  EXPECT_EQ(read_counter(), 0u) << "the card still works";
}

TEST_F(DriverTest, Cmd25WithAWrongBlockSizeIsEilseqAndTheCardRecovers) {
  const IoctlReply reply = driver().ioctl(multi(
      Node::rpmb,
      {write_cmd(25, 0, 1, frame_bytes({rpmb::requests::read_counter(make_nonce(3))}), 256), read_cmd(18, 0, 512, 1)}));
  EXPECT_EQ(reply.status.error, EILSEQ);
  EXPECT_EQ(reply.results[1].response, (std::array<std::uint32_t, 4>{}));
  const Trace trace = bus().take();
  EXPECT_EQ(count_of(trace, 18), 0u);
  EXPECT_EQ(count_of(trace, 12), 1u);
  expect_settled();
}

TEST_F(DriverTest, AnIllegalCommandInTheChainIsEtimedoutAndSwitchesBack) {
  program_key();
  bus().take();
  // CMD17 is not allowed in the RPMB partition: the card does not answer.
  IoctlRequest q = multi(Node::rpmb, {write_cmd(25, 0, 1, frame_bytes({rpmb::requests::read_counter(make_nonce(4))})),
                                      read_cmd(17, 0, 512, 1), read_cmd(18, 0, 512, 1)});
  const IoctlReply reply = driver().ioctl(q);
  EXPECT_EQ(reply.status.error, ETIMEDOUT);
  EXPECT_EQ(reply.results[1].response, (std::array<std::uint32_t, 4>{})) << "no response";
  EXPECT_EQ(reply.results[2].response, (std::array<std::uint32_t, 4>{}));
  EXPECT_EQ(reply.results[2].data, Bytes(512, 0));
  const Trace trace = bus().take();
  EXPECT_EQ(count_of(trace, 18), 0u);
  EXPECT_EQ(trace[trace.size() - 2], (Cmd{6, switch_arg(ec::kPartitionConfig, 0)}));
  expect_settled();

  // An opcode the card does not know at all, first in the chain.
  const IoctlReply unknown = driver().ioctl(multi(Node::rpmb, {plain(60, 0), read_cmd(18, 0, 512, 1)}));
  EXPECT_EQ(unknown.status.error, ETIMEDOUT);
  expect_settled();
  // And on the user node.
  EXPECT_EQ(driver().ioctl(single(Node::user, plain(1, kHostOcr))).status.error, ETIMEDOUT) << "CMD1 in tran";
  expect_settled();
  EXPECT_EQ(read_counter(), 0u);
}

TEST_F(DriverTest, AnOpcodeAbove63IsEinval) {
  const IoctlReply reply = driver().ioctl(single(Node::user, plain(64, 0)));
  EXPECT_EQ(reply.status.error, EINVAL);
  EXPECT_TRUE(bus().take().empty()) << "nothing (CMD0 in 6 bits) reached the card";
  expect_settled();
}

TEST_F(DriverTest, PostsleepMaxBelowMinIsEperm) {
  IoctlCommand c = plain(13, kRcaArg);
  c.postsleep_min_us = 100;
  c.postsleep_max_us = 50;
  EXPECT_EQ(driver().ioctl(single(Node::user, c)).status.error, EPERM);
  EXPECT_TRUE(bus().take().empty());
}

TEST_F(DriverTest, AcmdSendsCmd55FirstWhichThisCardRefuses) {
  IoctlCommand c = plain(13, kRcaArg);
  c.is_acmd = 1;
  const IoctlReply reply = driver().ioctl(single(Node::user, c));
  EXPECT_EQ(reply.status.error, ETIMEDOUT);
  EXPECT_EQ(bus().take(), (Trace{{55, kRcaArg}}));
  expect_settled();
}

TEST_F(DriverTest, TheCallersOwnCmd23IsNotDoubled) {
  program_key();
  bus().take();
  const rpmb::Nonce nonce = make_nonce(0x5C);
  IoctlRequest q =
      multi(Node::rpmb, {plain(23, 1), write_cmd(25, 0, 1, frame_bytes({rpmb::requests::read_counter(nonce)})),
                         plain(23, 1), read_cmd(18, 0, 512, 1)});
  const IoctlReply reply = driver().ioctl(q);
  EXPECT_EQ(reply.status.error, 0);
  EXPECT_EQ(bus().take(),
            rpmb_bracketed(
                0, {{23, 1}, {13, kRcaArg}, {25, 0}, {13, kRcaArg}, {23, 1}, {13, kRcaArg}, {18, 0}, {13, kRcaArg}}));
  const std::vector<Frame> frames = response_frames(reply);
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].result(), 0);
  EXPECT_EQ(frames[0].nonce(), nonce);
  expect_settled();
}

TEST_F(DriverTest, CallersCmd23WithALargerCountIsStoppedWithCmd12) {
  const Bytes data = pattern(4 * 512, 7);
  ASSERT_EQ(driver().write(mmcblk::BlockWriteRequest{Node::user, 0, data}).status.error, 0);
  bus().take();
  // The caller announces 4 blocks and reads 2: the host controller stops the transfer.
  const IoctlReply reply = driver().ioctl(multi(Node::user, {plain(23, 4), read_cmd(18, 0, 512, 2)}));
  EXPECT_EQ(reply.status.error, 0);
  EXPECT_EQ(bus().take(), (Trace{{23, 4}, {18, 0}, {12, 0}}));
  EXPECT_EQ(reply.results[1].data, Bytes(data.begin(), data.begin() + 1024));
  expect_settled();
}

TEST_F(DriverTest, UserNodeReadOfMoreBlocksThanTheCardSendsIsEtimedout) {
  // CMD17 moves one block; the caller asked for two.
  const IoctlReply reply = driver().ioctl(single(Node::user, read_cmd(17, 0, 512, 2)));
  EXPECT_EQ(reply.status.error, ETIMEDOUT);
  expect_settled();
}

TEST_F(DriverTest, UserNodeCmd18WithAWrongBlockSizeIsRecoveredWithCmd12) {
  const IoctlReply reply = driver().ioctl(single(Node::user, read_cmd(18, 0, 1024, 2)));
  EXPECT_EQ(reply.status.error, EILSEQ);
  const Trace trace = bus().take();
  EXPECT_EQ(trace, (Trace{{23, 2}, {18, 0}, {13, kRcaArg}, {12, 0}}));
  expect_settled();
  // The next request works.
  EXPECT_EQ(driver().read(mmcblk::BlockReadRequest{Node::user, 0, 512}).status.error, 0);
  expect_settled();
}

TEST_F(DriverTest, UserNodeWriteWithAWrongBlockSizeIsRecoveredWithCmd12) {
  const IoctlReply reply = driver().ioctl(single(Node::user, write_cmd(25, 0, 1, pattern(1024, 1), 1024)));
  EXPECT_EQ(reply.status.error, EILSEQ);
  EXPECT_EQ(count_of(bus().take(), 12), 1u);
  expect_settled();
}

// A data command without a buffer (blocks 0): the card opens a transfer nobody reads. On the rpmb
// node the CMD13 poll never sees tran; either way the card must not be left in data, nor in the
// RPMB partition.
TEST_F(DriverTest, ADataCommandWithoutABufferDoesNotStrandTheCard) {
  const IoctlReply rpmb = driver().ioctl(single(Node::rpmb, plain(18, 0, kFlagsAdtc)));
  EXPECT_EQ(rpmb.status.error, ETIMEDOUT) << "the RPMB partition refuses CMD18 without CMD23";
  expect_settled();
  // With the caller's CMD23 the card opens the response transfer; nobody reads it.
  const IoctlReply counted = driver().ioctl(multi(Node::rpmb, {plain(23, 1), plain(18, 0, kFlagsAdtc)}));
  (void)counted;
  expect_settled();
  EXPECT_EQ(driver().read(mmcblk::BlockReadRequest{Node::user, 0, 1024}).status.error, 0);
  expect_settled();
  for (std::uint32_t opcode : {17u, 18u, 24u, 25u}) {
    SCOPED_TRACE("CMD" + std::to_string(opcode) + " without a buffer on the user node");
    const IoctlReply user = driver().ioctl(single(Node::user, plain(opcode, 0, kFlagsAdtc)));
    (void)user;
    expect_settled();
    EXPECT_EQ(driver().read(mmcblk::BlockReadRequest{Node::user, 0, 1024}).status.error, 0);
    expect_settled();
  }
}

// ---------------------------------------------------------------------------------------------
// PARTITION_CONFIG: boot bits kept, caller's switches tracked

TEST_F(DriverTest, PartitionSwitchesKeepTheBootEnableBits) {
  // BOOT_ACK (bit 6) and BOOT_PARTITION_ENABLE = boot partition 1 (bits 5:3 = 1), access user.
  const std::uint8_t boot_bits = 0x48;
  const IoctlReply set =
      driver().ioctl(single(Node::user, plain(6, switch_arg(ec::kPartitionConfig, boot_bits), kFlagsR1b)));
  EXPECT_EQ(set.status.error, 0);
  EXPECT_EQ(driver().partition_config(), boot_bits) << "the driver tracks the caller's CMD6";
  EXPECT_EQ(bus().take(), (Trace{{6, switch_arg(ec::kPartitionConfig, boot_bits)}, {13, kRcaArg}}));

  program_key();
  const Trace trace = bus().take();
  ASSERT_GE(trace.size(), 2u);
  EXPECT_EQ(trace.front(), (Cmd{6, switch_arg(ec::kPartitionConfig, boot_bits | 3)}));
  EXPECT_EQ(trace[trace.size() - 2], (Cmd{6, switch_arg(ec::kPartitionConfig, boot_bits)}));
  expect_settled();

  // Block I/O on boot1 and back, then read EXT_CSD as `mmc extcsd read` does.
  ASSERT_EQ(driver().read(mmcblk::BlockReadRequest{Node::boot1, 0, 512}).status.error, 0);
  EXPECT_EQ(card().current_partition(), mmc::Partition::boot2);
  const IoctlReply ext = driver().ioctl(single(Node::user, read_cmd(8, 0, 512, 1)));
  EXPECT_EQ(ext.status.error, 0);
  ASSERT_EQ(ext.results[0].data.size(), 512u);
  EXPECT_EQ(ext.results[0].data[ec::kPartitionConfig], boot_bits) << "boot bits survived, access back to user";
  EXPECT_EQ(card().ext_csd()[ec::kPartitionConfig], boot_bits);
  expect_settled();
}

TEST_F(DriverTest, ACallersPartitionSwitchHoldsForTheRestOfItsChain) {
  // mmc_blk_mq_issue_rq() switches to the node's partition once per request; a CMD6 in the chain
  // that selects boot0 holds for the commands after it, and the next request switches back.
  ASSERT_EQ(driver().write(mmcblk::BlockWriteRequest{Node::user, 0, pattern(512, 1)}).status.error, 0);
  ASSERT_EQ(driver().write(mmcblk::BlockWriteRequest{Node::boot0, 0, pattern(512, 2)}).status.error, 0);
  bus().take();

  const IoctlReply chain = driver().ioctl(
      multi(Node::user, {plain(6, switch_arg(ec::kPartitionConfig, 1), kFlagsR1b), read_cmd(17, 0, 512, 1)}));
  ASSERT_EQ(chain.status.error, 0);
  EXPECT_EQ(chain.results[1].data, pattern(512, 2)) << "CMD17 read boot0, which the chain's CMD6 selected";
  EXPECT_EQ(bus().take(), (Trace{{6, switch_arg(ec::kPartitionConfig, 0)},
                                 {13, kRcaArg},  // boot0 -> user
                                 {6, switch_arg(ec::kPartitionConfig, 1)},
                                 {13, kRcaArg},  // the caller's
                                 {17, 0}}))
      << "one switch for the request, none between the chain's commands";
  EXPECT_EQ(driver().partition_config(), 1u);

  const IoctlReply next = driver().ioctl(single(Node::user, read_cmd(17, 0, 512, 1)));
  ASSERT_EQ(next.status.error, 0);
  EXPECT_EQ(next.results[0].data, pattern(512, 1)) << "the next request is on the user area again";
  expect_settled();
}

TEST_F(DriverTest, CallersCacheCtrlOffMeansFlushSendsNothing) {
  ASSERT_EQ(driver().ioctl(single(Node::user, plain(6, switch_arg(ec::kCacheCtrl, 0), kFlagsR1b))).status.error, 0);
  bus().take();
  EXPECT_EQ(driver().flush(mmcblk::FlushRequest{Node::user}).status.error, 0);
  EXPECT_TRUE(bus().take().empty());
}

// ---------------------------------------------------------------------------------------------
// Single commands as the tools send them

TEST_F(DriverTest, Cmd8ReturnsTheCardsExtCsd) {
  const IoctlReply reply = driver().ioctl(single(Node::user, read_cmd(8, 0, 512, 1)));
  EXPECT_EQ(reply.status.error, 0);
  EXPECT_EQ(bus().take(), (Trace{{8, 0}}));
  const mmc::ExtCsd expected = card().ext_csd();
  ASSERT_EQ(reply.results[0].data.size(), expected.size());
  EXPECT_TRUE(std::equal(expected.begin(), expected.end(), reply.results[0].data.begin()));
  EXPECT_EQ(st::current_state(reply.results[0].response[0]), static_cast<std::uint32_t>(mmc::CardState::tran));
  expect_settled();
}

TEST_F(DriverTest, Cmd8OnTheRpmbNodeIsBracketedBySwitches) {
  const IoctlReply reply = driver().ioctl(single(Node::rpmb, read_cmd(8, 0, 512, 1)));
  EXPECT_EQ(reply.status.error, 0);
  // On the rpmb node every data command gets CMD23 and a CMD13 poll.
  EXPECT_EQ(bus().take(), rpmb_bracketed(0, {{23, 1}, {8, 0}, {13, kRcaArg}}));
  EXPECT_EQ(reply.results[0].data[ec::kPartitionConfig], 3) << "EXT_CSD read while the RPMB partition was selected";
  expect_settled();
}

TEST_F(DriverTest, Cmd13OfTheCardIsTranAndReady) {
  const IoctlReply reply = driver().ioctl(single(Node::user, plain(13, kRcaArg)));
  EXPECT_EQ(reply.status.error, 0);
  EXPECT_EQ(bus().take(), (Trace{{13, kRcaArg}}));
  const std::uint32_t r1 = reply.results[0].response[0];
  EXPECT_EQ(st::current_state(r1), static_cast<std::uint32_t>(mmc::CardState::tran));
  EXPECT_NE(r1 & st::kReadyForData, 0u);
  EXPECT_EQ(r1 & st::kAnyError, 0u);
}

TEST_F(DriverTest, Cmd13OfAnotherRcaTimesOut) {
  const IoctlReply reply = driver().ioctl(single(Node::user, plain(13, 2u << 16)));
  EXPECT_EQ(reply.status.error, ETIMEDOUT);
  EXPECT_EQ(reply.results[0].response, (std::array<std::uint32_t, 4>{}));
  expect_settled();
}

TEST_F(DriverTest, Cmd9ResponseIsTheCsdAsR2Words) {
  // CMD9 needs stby: CMD7 deselect, CMD9, CMD7 select again, as one MULTI_CMD.
  const IoctlReply reply =
      driver().ioctl(multi(Node::user, {plain(7, 0, 0), plain(9, kRcaArg, 0x07), plain(7, kRcaArg, kFlagsR1b)}));
  EXPECT_EQ(reply.status.error, 0);
  const mmc::Csd& csd = card().csd();
  for (std::size_t i = 0; i < 4; ++i) {
    const std::uint32_t word = (std::uint32_t{csd[4 * i]} << 24) | (std::uint32_t{csd[4 * i + 1]} << 16) |
                               (std::uint32_t{csd[4 * i + 2]} << 8) | csd[4 * i + 3];
    EXPECT_EQ(reply.results[1].response[i], word) << "response[" << i << "] holds CSD bits " << 127 - 32 * i << "..";
  }
  expect_settled();
}

TEST_F(DriverTest, TimedBusReportsTheSimulatedDuration) {
  bus().set_timed(true);
  const IoctlReply reply = driver().ioctl(single(Node::user, plain(13, kRcaArg)));
  EXPECT_EQ(reply.status.flags, mmcblk::ReplyStatus::kTimed);
  EXPECT_EQ(reply.status.simulated_ps, RecordingBus::kPsPerCommand);
  const mmcblk::BlockWriteReply w = driver().write(mmcblk::BlockWriteRequest{Node::user, 0, pattern(1024, 1)});
  EXPECT_EQ(w.status.flags, mmcblk::ReplyStatus::kTimed);
  EXPECT_EQ(w.status.simulated_ps, 3 * RecordingBus::kPsPerCommand) << "CMD23, CMD25, CMD13";
}

// ---------------------------------------------------------------------------------------------
// Block I/O

TEST_F(DriverTest, BlockWriteAndReadCommandSequences) {
  const Bytes one = pattern(512, 1);
  ASSERT_EQ(driver().write(mmcblk::BlockWriteRequest{Node::user, 10 * 512, one}).status.error, 0);
  EXPECT_EQ(bus().take(), (Trace{{24, 10}, {13, kRcaArg}}));
  const Bytes four = pattern(2048, 2);
  ASSERT_EQ(driver().write(mmcblk::BlockWriteRequest{Node::user, 20 * 512, four}).status.error, 0);
  EXPECT_EQ(bus().take(), (Trace{{23, 4}, {25, 20}, {13, kRcaArg}}));

  const mmcblk::BlockReadReply r1 = driver().read(mmcblk::BlockReadRequest{Node::user, 10 * 512, 512});
  EXPECT_EQ(r1.status.error, 0);
  EXPECT_EQ(r1.data, one);
  EXPECT_EQ(bus().take(), (Trace{{17, 10}}));
  const mmcblk::BlockReadReply r4 = driver().read(mmcblk::BlockReadRequest{Node::user, 20 * 512, 2048});
  EXPECT_EQ(r4.status.error, 0);
  EXPECT_EQ(r4.data, four);
  EXPECT_EQ(bus().take(), (Trace{{23, 4}, {18, 20}}));
  expect_settled();
}

TEST_F(DriverTest, BlockIoOnEachNodeRoundTripsAndIsIsolated) {
  const std::uint64_t offset = 64 * 1024;
  const Node nodes[] = {Node::user, Node::boot0, Node::boot1};
  for (std::size_t i = 0; i < 3; ++i) {
    ASSERT_EQ(driver()
                  .write(mmcblk::BlockWriteRequest{nodes[i], offset, pattern(8192, static_cast<std::uint8_t>(i + 1))})
                  .status.error,
              0);
  }
  for (std::size_t i = 0; i < 3; ++i) {
    const mmcblk::BlockReadReply r = driver().read(mmcblk::BlockReadRequest{nodes[i], offset, 8192});
    EXPECT_EQ(r.status.error, 0);
    EXPECT_EQ(r.data, pattern(8192, static_cast<std::uint8_t>(i + 1))) << mmcblk::node_name(nodes[i]);
  }
  // Last sector of boot1, the largest transfer on user.
  const std::uint64_t boot_end = rig_.config.boot_partition_size;
  ASSERT_EQ(driver().write(mmcblk::BlockWriteRequest{Node::boot1, boot_end - 512, pattern(512, 9)}).status.error, 0);
  EXPECT_EQ(driver().read(mmcblk::BlockReadRequest{Node::boot1, boot_end - 512, 512}).data, pattern(512, 9));
  const Bytes big = pattern(mmcblk::kMaxBlockTransfer, 4);
  ASSERT_EQ(driver().write(mmcblk::BlockWriteRequest{Node::user, 1ULL << 32, big}).status.error, 0);
  EXPECT_EQ(
      driver().read(mmcblk::BlockReadRequest{Node::user, 1ULL << 32, static_cast<std::uint32_t>(big.size())}).data,
      big);
  // The user area's data went through the boot partitions' switches untouched.
  EXPECT_EQ(driver().read(mmcblk::BlockReadRequest{Node::user, offset, 8192}).data, pattern(8192, 1));
  EXPECT_EQ(card().current_partition(), mmc::Partition::user);
  expect_settled();
}

TEST_F(DriverTest, BlockIoOutOfRangeIsEinvalAndTouchesNothing) {
  const std::uint64_t user = rig_.config.user_capacity;
  const std::uint64_t boot = rig_.config.boot_partition_size;
  EXPECT_EQ(driver().read(mmcblk::BlockReadRequest{Node::user, user, 512}).status.error, EINVAL);
  EXPECT_EQ(driver().read(mmcblk::BlockReadRequest{Node::user, user - 512, 1024}).status.error, EINVAL);
  EXPECT_EQ(driver().read(mmcblk::BlockReadRequest{Node::user, 0xFFFFFFFFFFFFFE00ULL, 1024}).status.error, EINVAL);
  EXPECT_EQ(driver().write(mmcblk::BlockWriteRequest{Node::boot0, boot, Bytes(512)}).status.error, EINVAL);
  EXPECT_EQ(driver().write(mmcblk::BlockWriteRequest{Node::boot1, boot - 512, Bytes(1024)}).status.error, EINVAL);
  EXPECT_TRUE(bus().take().empty());
  // The last sector is in range.
  EXPECT_EQ(driver().read(mmcblk::BlockReadRequest{Node::user, user - 512, 512}).status.error, 0);
  const mmcblk::BlockReadReply failed = driver().read(mmcblk::BlockReadRequest{Node::user, user, 512});
  EXPECT_TRUE(failed.data.empty()) << "no data on error";
  expect_settled();
}

TEST_F(DriverTest, BlockIoOnTheRpmbNodeIsEinval) {
  EXPECT_EQ(driver().read(mmcblk::BlockReadRequest{Node::rpmb, 0, 512}).status.error, EINVAL);
  EXPECT_EQ(driver().write(mmcblk::BlockWriteRequest{Node::rpmb, 0, Bytes(512)}).status.error, EINVAL);
  EXPECT_TRUE(bus().take().empty());
  expect_settled();
}

TEST_F(DriverTest, FlushIssuesFlushCache) {
  ASSERT_EQ(driver().write(mmcblk::BlockWriteRequest{Node::user, 0, pattern(512, 3)}).status.error, 0);
  bus().take();
  EXPECT_EQ(driver().flush(mmcblk::FlushRequest{Node::user}).status.error, 0);
  EXPECT_EQ(bus().take(), (Trace{{6, switch_arg(ec::kFlushCache, 1)}, {13, kRcaArg}}));
  // Flushing a boot node flushes the same cache.
  EXPECT_EQ(driver().flush(mmcblk::FlushRequest{Node::boot0}).status.error, 0);
  EXPECT_EQ(bus().take(), (Trace{{6, switch_arg(ec::kFlushCache, 1)}, {13, kRcaArg}}));
  expect_settled();
}

TEST_F(DriverTest, ShutdownSwitchesBackAndFlushes) {
  ASSERT_EQ(driver().read(mmcblk::BlockReadRequest{Node::boot0, 0, 512}).status.error, 0);
  EXPECT_EQ(card().current_partition(), mmc::Partition::boot1);
  bus().take();
  EXPECT_EQ(driver().shutdown(), 0);
  EXPECT_EQ(bus().take(), (Trace{{6, switch_arg(ec::kPartitionConfig, 0)},
                                 {13, kRcaArg},
                                 {6, switch_arg(ec::kFlushCache, 1)},
                                 {13, kRcaArg}}));
  expect_settled();
}

TEST_F(DriverTest, HandleDispatchesEveryRequestType) {
  EXPECT_TRUE(std::holds_alternative<IoctlReply>(driver().handle(single(Node::user, plain(13, kRcaArg)))));
  EXPECT_TRUE(std::holds_alternative<mmcblk::BlockWriteReply>(
      driver().handle(mmcblk::BlockWriteRequest{Node::user, 0, Bytes(512, 1)})));
  const mmcblk::Reply read = driver().handle(mmcblk::BlockReadRequest{Node::user, 0, 512});
  ASSERT_TRUE(std::holds_alternative<mmcblk::BlockReadReply>(read));
  EXPECT_EQ(std::get<mmcblk::BlockReadReply>(read).data, Bytes(512, 1));
  EXPECT_TRUE(std::holds_alternative<mmcblk::FlushReply>(driver().handle(mmcblk::FlushRequest{Node::user})));
  const mmcblk::Reply d = driver().handle(mmcblk::DescribeRequest{});
  ASSERT_TRUE(std::holds_alternative<mmcblk::DescribeReply>(d));
  EXPECT_EQ(std::get<mmcblk::DescribeReply>(d).node_size[0], rig_.config.user_capacity);
}

// Requests that bypass the protocol decoder (a caller of the driver's API) must not make it read
// or write outside their buffers or leave the card in a data phase.
TEST_F(DriverTest, MalformedDirectRequestsAreRefused) {
  IoctlCommand short_write = write_cmd(25, 0, 1, pattern(1024, 1));
  short_write.data.resize(512);  // blocks says 2
  EXPECT_EQ(driver().ioctl(single(Node::user, short_write)).status.error, EINVAL);
  IoctlCommand huge_read = read_cmd(18, 0, 512, 2048);  // 1 MiB
  EXPECT_EQ(driver().ioctl(single(Node::user, huge_read)).status.error, EOVERFLOW);
  EXPECT_EQ(driver().write(mmcblk::BlockWriteRequest{Node::user, 0, Bytes(700, 1)}).status.error, EINVAL);
  EXPECT_EQ(driver().write(mmcblk::BlockWriteRequest{Node::user, 0, Bytes()}).status.error, EINVAL);
  EXPECT_EQ(driver().write(mmcblk::BlockWriteRequest{Node::user, 100, Bytes(512)}).status.error, EINVAL);
  EXPECT_EQ(driver().read(mmcblk::BlockReadRequest{Node::user, 0, 0}).status.error, EINVAL);
  EXPECT_EQ(driver().read(mmcblk::BlockReadRequest{Node::user, 0, 700}).status.error, EINVAL);
  EXPECT_EQ(driver().read(mmcblk::BlockReadRequest{Node::user, 0, 1024 * 1024}).status.error, EINVAL);
  EXPECT_TRUE(bus().take().empty());
  expect_settled();
}

// ---------------------------------------------------------------------------------------------
// Cards of other shapes

TEST(DriverShapes, ByteAddressedCardBlockIo) {
  Rig rig(small_byte_addressed_config());
  ASSERT_FALSE(rig.config.sector_addressing());
  const Bytes data = pattern(2048, 5);
  ASSERT_EQ(rig.driver.write(mmcblk::BlockWriteRequest{Node::user, 100 * 512, data}).status.error, 0);
  EXPECT_EQ(rig.bus.take(), (Trace{{23, 4}, {25, 100 * 512}, {13, kRcaArg}})) << "byte addresses";
  const mmcblk::BlockReadReply r = rig.driver.read(mmcblk::BlockReadRequest{Node::user, 100 * 512, 2048});
  EXPECT_EQ(r.status.error, 0);
  EXPECT_EQ(r.data, data);
  const std::uint64_t last = rig.config.user_capacity - 512;
  ASSERT_EQ(rig.driver.write(mmcblk::BlockWriteRequest{Node::user, last, pattern(512, 6)}).status.error, 0);
  EXPECT_EQ(rig.driver.read(mmcblk::BlockReadRequest{Node::user, last, 512}).data, pattern(512, 6));
  ASSERT_EQ(rig.driver.write(mmcblk::BlockWriteRequest{Node::boot0, 512, pattern(512, 7)}).status.error, 0);
  EXPECT_EQ(rig.driver.read(mmcblk::BlockReadRequest{Node::boot0, 512, 512}).data, pattern(512, 7));
  EXPECT_EQ(rig.driver.read(mmcblk::BlockReadRequest{Node::user, 512, 512}).data, Bytes(512, 0));
  EXPECT_EQ(rig.card.state(), mmc::CardState::tran);
}

TEST(DriverShapes, AbsentBootNodesAreEnxio) {
  mmc::DeviceConfig c = mmc::default_device_config();
  c.boot_partition_size = 0;
  ASSERT_NO_THROW(mmc::validate(c)) << "a card without boot partitions is a valid configuration";
  Rig rig(c);
  EXPECT_EQ(rig.driver.describe().node_size[1], 0u);
  EXPECT_EQ(rig.driver.describe().node_size[2], 0u);
  EXPECT_EQ(rig.driver.ioctl(single(Node::boot0, plain(13, kRcaArg))).status.error, ENXIO);
  EXPECT_EQ(rig.driver.read(mmcblk::BlockReadRequest{Node::boot1, 0, 512}).status.error, ENXIO);
  EXPECT_EQ(rig.driver.write(mmcblk::BlockWriteRequest{Node::boot0, 0, Bytes(512)}).status.error, ENXIO);
  EXPECT_EQ(rig.driver.flush(mmcblk::FlushRequest{Node::boot1}).status.error, ENXIO);
  EXPECT_TRUE(rig.bus.take().empty()) << "nothing reached the card";
  // The nodes it has still work.
  EXPECT_EQ(rig.driver.ioctl(single(Node::user, plain(13, kRcaArg))).status.error, 0);
  EXPECT_EQ(rig.card.state(), mmc::CardState::tran);
}

// ---------------------------------------------------------------------------------------------
// A request that leaves the card out of tran: the driver resets it (mmc_blk_reset), so the next
// client finds a working card with its data, key and counter.

TEST_F(DriverTest, ACallersCmd0IsFollowedByAResetAndTheCardKeepsWorking) {
  program_key();
  ASSERT_EQ(driver().write(mmcblk::BlockWriteRequest{Node::user, 4096, pattern(4096, 7)}).status.error, 0);
  bus().take();
  const IoctlReply reply = driver().ioctl(single(Node::user, plain(0, 0, 0)));
  EXPECT_EQ(reply.status.error, 0);
  EXPECT_EQ(driver().card_resets(), 1u);
  EXPECT_EQ(count_of(bus().take(), RecordingBus::kPowerCycle), 1u);
  expect_settled();
  EXPECT_EQ(driver().read(mmcblk::BlockReadRequest{Node::user, 4096, 4096}).data, pattern(4096, 7));
  EXPECT_EQ(read_counter(), 0u);  // the key survived: the counter reads with result 0
}

TEST_F(DriverTest, SleepAndInactiveStateFromAnIoctlAreUndone) {
  for (const std::vector<IoctlCommand>& chain :
       {std::vector<IoctlCommand>{plain(7, 0, 0), plain(5, kRcaArg | (1u << 15), kFlagsR1b)},  // sleep
        std::vector<IoctlCommand>{plain(15, kRcaArg, 0)}}) {                                   // inactive
    const std::uint64_t before = driver().card_resets();
    driver().ioctl(multi(Node::user, chain));
    EXPECT_EQ(driver().card_resets(), before + 1);
    expect_settled();
    EXPECT_EQ(driver().read(mmcblk::BlockReadRequest{Node::user, 0, 512}).status.error, 0);
  }
}

TEST_F(DriverTest, OrdinaryRequestsNeverResetTheCard) {
  program_key();
  read_counter();
  driver().ioctl(single(Node::user, plain(13, kRcaArg)));
  driver().ioctl(single(Node::user, plain(13, 2u << 16)));  // fails: no response, still tran
  driver().write(mmcblk::BlockWriteRequest{Node::boot0, 0, pattern(512, 1)});
  EXPECT_EQ(driver().card_resets(), 0u);
  EXPECT_EQ(count_of(bus().trace(), RecordingBus::kPowerCycle), 0u);
}

TEST_F(DriverTest, AStaleIllegalCommandBitDoesNotFailTheNextBlockIo) {
  // CMD9 is illegal in tran: no response, and ILLEGAL_COMMAND waits for the next response. Sent
  // with flags 0 (no response expected) the ioctl succeeds and no recovery reads the bit away.
  EXPECT_EQ(driver().ioctl(single(Node::user, plain(9, kRcaArg, 0))).status.error, 0);
  EXPECT_NE(card().pending_status() & mmc::status::kIllegalCommand, 0u);
  EXPECT_EQ(driver().write(mmcblk::BlockWriteRequest{Node::user, 0, pattern(1024, 3)}).status.error, 0);
  EXPECT_EQ(driver().read(mmcblk::BlockReadRequest{Node::user, 0, 1024}).data, pattern(1024, 3));
}

}  // namespace
}  // namespace emmcsim::mmc
