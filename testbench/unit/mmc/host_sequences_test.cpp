// The host sequences over a HostBus (identify_and_select, read_ext_csd, RpmbBusChannel) on the
// untimed card through CardHostBus: the commands they issue, the state they leave the card in, and
// their failures as HostSequenceError.
#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "card_harness.hpp"
#include "emmcsim/mmc/host_bus.hpp"
#include "emmcsim/mmc/host_sequences.hpp"
#include "emmcsim/mmc/registers.hpp"
#include "emmcsim/rpmb/host.hpp"

namespace emmcsim::mmc::testing {
namespace {

namespace ec = ext_csd;

// CardHostBus that records the index of every command, and answers command `refused` as a card
// that finds it illegal does (no response), without passing it on.
class CountingBus final : public HostBus {
 public:
  explicit CountingBus(Card& card) : inner_(card) {}
  CommandOutcome execute(const Command& command) override {
    commands.push_back(command.index);
    if (refused && *refused == command.index) {
      CommandOutcome o;
      o.illegal = true;
      return o;
    }
    return inner_.execute(command);
  }
  BlockOutcome read_blocks(std::uint8_t* out, std::size_t block_size, std::uint32_t count) override {
    return inner_.read_blocks(out, block_size, count);
  }
  BlockOutcome write_blocks(const std::uint8_t* in, std::size_t block_size, std::uint32_t count) override {
    return inner_.write_blocks(in, block_size, count);
  }
  void wait_while_busy() override { inner_.wait_while_busy(); }
  void power_cycle() override { inner_.power_cycle(); }
  void set_clock(std::uint64_t hz) override { inner_.set_clock(hz); }
  std::optional<std::uint64_t> simulated_time_ps() const override { return inner_.simulated_time_ps(); }

  std::vector<int> commands;
  std::optional<int> refused;

 private:
  CardHostBus inner_;
};

rpmb::Key test_key() {
  rpmb::Key key{};
  for (std::size_t i = 0; i < key.size(); ++i) key[i] = static_cast<std::uint8_t>(0xA0 ^ i);
  return key;
}

TEST(CardHostBus, IsUntimed) {
  CardHarness h;
  CardHostBus bus(h.card());
  EXPECT_EQ(bus.simulated_time_ps(), std::nullopt);
}

TEST(HostSequences, IdentifyAndSelectLeavesTheCardInTran) {
  CardHarness h;
  CountingBus bus(h.card());
  identify_and_select(bus);
  EXPECT_EQ(h.card().state(), CardState::tran);
  EXPECT_EQ(h.card().rca(), 1u);
  // CMD0, CMD1 until ready (the default configuration answers busy twice), CMD2, CMD3, CMD7.
  EXPECT_EQ(bus.commands, (std::vector<int>{0, 1, 1, 1, 2, 3, 7}));
}

TEST(HostSequences, IdentifyAndSelectThrowsForACardThatDoesNotAnswer) {
  CardHarness h;
  CardHostBus bus(h.card());
  identify_and_select(bus);
  h.cmd(15, 1u << 16);  // GO_INACTIVE_STATE: the card answers nothing until power is cycled
  try {
    identify_and_select(bus);
    FAIL() << "an inactive card came up";
  } catch (const HostSequenceError& e) {
    EXPECT_NE(std::string(e.what()).find("CMD1"), std::string::npos) << e.what();
  }
  bus.power_cycle();
  EXPECT_NO_THROW(identify_and_select(bus));
}

TEST(HostSequences, ReadExtCsdIsTheCardsExtCsd) {
  CardHarness h;
  CountingBus bus(h.card());
  identify_and_select(bus);
  bus.commands.clear();
  EXPECT_EQ(read_ext_csd(bus), h.card().ext_csd());
  EXPECT_EQ(bus.commands, (std::vector<int>{8}));
  EXPECT_EQ(h.card().state(), CardState::tran);
}

TEST(HostSequences, ReadExtCsdOutsideTranThrows) {
  CardHarness h;
  CardHostBus bus(h.card());
  EXPECT_THROW(read_ext_csd(bus), HostSequenceError) << "CMD8 is illegal in idle";
}

TEST(HostSequences, RpmbBusChannelKeepsTheBootBitsOfPartitionConfig) {
  CardHarness h;
  CardHostBus bus(h.card());
  identify_and_select(bus);
  // Boot from boot partition 1 with boot ack: BOOT_ACK (bit 6) | BOOT_PARTITION_ENABLE 1 (bits 5:3).
  const std::uint8_t boot_bits = 0x40 | (1u << 3);
  ASSERT_EQ(h.switch_byte(ec::kPartitionConfig, boot_bits).response.type, ResponseType::r1b);
  bus.wait_while_busy();
  const std::uint8_t before = read_ext_csd(bus)[ec::kPartitionConfig];
  ASSERT_EQ(before, boot_bits);

  RpmbBusChannel channel(bus, before);
  rpmb::Host host(channel, test_key());
  ASSERT_TRUE(host.program_key(test_key()).ok());
  const rpmb::HostResult counter = host.read_counter(rpmb::Nonce{});
  EXPECT_TRUE(counter.ok());
  EXPECT_EQ(counter.write_counter, 0u);
  EXPECT_EQ(h.card().current_partition(), Partition::user);
  EXPECT_EQ(read_ext_csd(bus)[ec::kPartitionConfig], boot_bits) << "back in the user area, boot bits kept";
  EXPECT_GT(channel.work().hmac_frames, 0u);
}

TEST(HostSequences, RpmbBusChannelSwitchesBackWhenACommandFails) {
  CardHarness h;
  CountingBus bus(h.card());
  identify_and_select(bus);
  RpmbBusChannel channel(bus, 0);
  std::vector<std::string> trace;
  channel.set_trace([&](const std::string& line) { trace.push_back(line); });
  bus.commands.clear();
  bus.refused = 23;
  std::vector<rpmb::Frame> frames(1);
  EXPECT_THROW(channel.send(frames.data(), frames.size(), true), HostSequenceError);
  // Into the RPMB partition (CMD6, CMD13), the refused CMD23, and back (CMD6, CMD13).
  EXPECT_EQ(bus.commands, (std::vector<int>{6, 13, 23, 6, 13}));
  EXPECT_EQ(h.card().current_partition(), Partition::user);
  EXPECT_EQ(h.card().state(), CardState::tran);
  ASSERT_EQ(trace.size(), 5u);
  EXPECT_EQ(trace[3].rfind("CMD6 ", 0), 0u) << trace[3];
}

}  // namespace
}  // namespace emmcsim::mmc::testing
