// Every check of every write-type request in JEDEC's order: for each failure condition alone
// and in every combination, the exact result code, and proof that nothing was written and the
// counter did not move.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include "emmcsim/rpmb/engine.hpp"
#include "emmcsim/rpmb/host.hpp"
#include "emmcsim/rpmb/store.hpp"
#include "test_support.hpp"

namespace emmcsim::rpmb {
namespace {

constexpr std::uint32_t kSizeMult = 1;  // 512 half-sectors

PartitionState seeded(bool key, std::uint32_t counter) {
  PartitionState s;
  s.key_programmed = key;
  if (key) s.key = test::test_key();
  s.write_counter = counter;
  return s;
}

std::vector<std::uint8_t> all_data(const Store& store) {
  std::vector<std::uint8_t> out(std::size_t{store.half_sectors()} * kHalfSectorSize);
  store.read(0, store.half_sectors(), out.data());
  return out;
}

// A store whose commits fail, as a full or failing disk would.
class FailingStore final : public Store {
 public:
  explicit FailingStore(PartitionState s) : inner_(kSizeMult, s) {}
  std::uint32_t half_sectors() const override { return inner_.half_sectors(); }
  const PartitionState& state() const override { return inner_.state(); }
  void read(std::uint32_t a, std::uint32_t c, std::uint8_t* out) const override { inner_.read(a, c, out); }
  void commit(const Commit&) override { throw StoreError("simulated: disk full"); }

 private:
  MemoryStore inner_;
};

// The six failure conditions of an authenticated data write, in JEDEC's order.
enum Condition : unsigned {
  kNoKey = 1u << 0,
  kCounterExpired = 1u << 1,
  kAddressOutOfRange = 1u << 2,
  kBadMac = 1u << 3,
  kWrongCounter = 1u << 4,
  kNotReliable = 1u << 5,
};

std::uint16_t expected_result(unsigned conditions) {
  std::uint16_t r = 0;
  if (conditions & kNoKey)
    r = 0x07;
  else if (conditions & kCounterExpired)
    r = 0x05;
  else if (conditions & kAddressOutOfRange)
    r = 0x04;
  else if (conditions & kBadMac)
    r = 0x02;
  else if (conditions & kWrongCounter)
    r = 0x03;
  else if (conditions & kNotReliable)
    r = 0x01;
  if (conditions & kCounterExpired) r |= kCounterExpiredBit;
  return r;
}

TEST(EngineChecks, AuthenticatedWriteEveryConditionAloneAndCombined) {
  for (unsigned conditions = 0; conditions < 64; ++conditions) {
    SCOPED_TRACE(fmt::format("conditions 0x{:02x}", conditions));
    const std::uint32_t counter = (conditions & kCounterExpired) ? kCounterMax : 5;
    MemoryStore store(kSizeMult, seeded(!(conditions & kNoKey), counter));
    Engine engine(store);
    const std::vector<std::uint8_t> before = all_data(store);

    const std::uint16_t address = (conditions & kAddressOutOfRange) ? 512 : 10;
    const std::uint32_t frame_counter = (conditions & kWrongCounter) ? counter - 1 : counter;
    const auto data = test::pattern(1, 9);
    std::vector<Frame> request = requests::authenticated_write(address, frame_counter, data.data(), 1);
    FrameAuthenticator auth(test::test_key());
    requests::sign(auth, request);
    if (conditions & kBadMac) request[0].bytes()[Frame::kKeyMacOffset] ^= 0x01;

    const Frame response = test::write_then_result(engine, request, !(conditions & kNotReliable));
    EXPECT_EQ(response.result(), expected_result(conditions));
    EXPECT_EQ(response.type(), 0x0300);
    EXPECT_EQ(response.address(), address);
    const bool accepted =
        (conditions & (kNoKey | kCounterExpired | kAddressOutOfRange | kBadMac | kWrongCounter | kNotReliable)) == 0;
    EXPECT_EQ(engine.state().write_counter, accepted ? counter + 1 : counter);
    EXPECT_EQ(response.write_counter(), engine.state().write_counter);
    const std::vector<std::uint8_t> after = all_data(store);
    if (accepted) {
      EXPECT_TRUE(std::equal(data.begin(), data.end(), after.begin() + address * kHalfSectorSize));
    } else {
      EXPECT_EQ(after, before) << "a rejected write changed the data";
    }
  }
}

struct FormCase {
  const char* name;
  std::size_t frames;
  bool en_rpmb_rel_wr;
  bool reliable;
  int block_count_delta;  // added to the frame's block count
  bool frames_disagree;   // second frame carries another address
  std::uint16_t expected;
};

class AuthenticatedWriteForm : public ::testing::TestWithParam<FormCase> {};

TEST_P(AuthenticatedWriteForm, CountAndReliabilityRules) {
  const FormCase& c = GetParam();
  MemoryStore store(kSizeMult, seeded(true, 0));
  Engine engine(store, EngineConfig{c.en_rpmb_rel_wr});
  const std::vector<std::uint8_t> before = all_data(store);
  const auto data = test::pattern(c.frames, 4);
  std::vector<Frame> request = requests::authenticated_write(64, 0, data.data(), c.frames);
  for (Frame& f : request) f.set_block_count(static_cast<std::uint16_t>(c.frames + c.block_count_delta));
  if (c.frames_disagree) request[0].set_address(65);
  FrameAuthenticator auth(test::test_key());
  requests::sign(auth, request);
  const Frame response = test::write_then_result(engine, request, c.reliable);
  EXPECT_EQ(response.result(), c.expected);
  if (c.expected == 0) {
    EXPECT_EQ(engine.state().write_counter, 1u);
    std::vector<std::uint8_t> got(data.size());
    store.read(64, static_cast<std::uint32_t>(c.frames), got.data());
    EXPECT_EQ(got, data);
  } else {
    EXPECT_EQ(engine.state().write_counter, 0u);
    EXPECT_EQ(all_data(store), before);
  }
}

INSTANTIATE_TEST_SUITE_P(
    EngineChecks, AuthenticatedWriteForm,
    ::testing::Values(FormCase{"one_frame", 1, false, true, 0, false, 0x00},
                      FormCase{"two_frames", 2, false, true, 0, false, 0x00},
                      FormCase{"three_frames", 3, true, true, 0, false, 0x01},
                      FormCase{"thirty_two_without_en_rpmb_rel_wr", 32, false, true, 0, false, 0x01},
                      FormCase{"thirty_two_with_en_rpmb_rel_wr", 32, true, true, 0, false, 0x00},
                      FormCase{"thirty_three_with_en_rpmb_rel_wr", 33, true, true, 0, false, 0x01},
                      FormCase{"sixteen_with_en_rpmb_rel_wr", 16, true, true, 0, false, 0x01},
                      FormCase{"block_count_field_disagrees_with_cmd23", 2, false, true, -1, false, 0x01},
                      FormCase{"block_count_field_zero", 1, false, true, -1, false, 0x01},
                      FormCase{"not_a_reliable_write", 2, false, false, 0, false, 0x01},
                      FormCase{"frames_disagree_on_address", 2, false, true, 0, true, 0x01}),
    [](const ::testing::TestParamInfo<FormCase>& p) { return std::string(p.param.name); });

TEST(EngineChecks, KeyProgrammingRules) {
  const Key key = test::test_key(0x10);
  {
    MemoryStore store(kSizeMult);
    Engine engine(store);
    const Frame r = test::write_then_result(engine, {requests::program_key(key)}, /*reliable=*/false);
    EXPECT_EQ(r.result(), 0x01) << "key programming must be a reliable write";
    EXPECT_FALSE(engine.state().key_programmed);
  }
  {
    MemoryStore store(kSizeMult);
    Engine engine(store);
    const Frame r = test::write_then_result(engine, {requests::program_key(key), requests::program_key(key)});
    EXPECT_EQ(r.result(), 0x01) << "key programming is exactly one frame";
    EXPECT_FALSE(engine.state().key_programmed);
  }
  MemoryStore store(kSizeMult);
  Engine engine(store);
  const Frame first = test::write_then_result(engine, {requests::program_key(key)});
  EXPECT_EQ(first.result(), 0x00);
  EXPECT_EQ(first.type(), 0x0100);
  EXPECT_EQ(first.write_counter(), 0u);
  EXPECT_TRUE(engine.state().key_programmed);
  EXPECT_EQ(engine.state().key, key);
  FrameAuthenticator auth(key);
  EXPECT_TRUE(auth.verify(&first, 1)) << "the result of a successful key programming is MACed";

  const Frame second = test::write_then_result(engine, {requests::program_key(test::test_key(0x20))});
  EXPECT_EQ(second.result(), 0x01) << "one key for life: a second programming is a general failure";
  EXPECT_EQ(engine.state().key, key);
  EXPECT_EQ(engine.state().write_counter, 0u);
}

TEST(EngineChecks, DeviceConfigurationWriteEveryConditionInOrder) {
  struct Case {
    const char* name;
    bool key;
    std::uint32_t counter;
    std::uint16_t address;
    bool bad_mac;
    bool wrong_counter;
    bool reliable;
    std::uint8_t value;
    std::size_t frames;
    std::uint16_t expected;
  };
  const Case cases[] = {
      {"ok_enable", true, 3, 1, false, false, true, 1, 1, 0x00},
      {"ok_config", true, 3, 2, false, false, true, 1, 1, 0x00},
      {"no_key", false, 3, 1, false, false, true, 1, 1, 0x07},
      {"expired", true, kCounterMax, 1, false, false, true, 1, 1, 0x85},
      {"bad_address", true, 3, 3, false, false, true, 1, 1, 0x04},
      {"bad_address_and_mac", true, 3, 0, true, false, true, 1, 1, 0x04},
      {"bad_mac", true, 3, 1, true, false, true, 1, 1, 0x02},
      {"bad_mac_and_counter", true, 3, 1, true, true, true, 1, 1, 0x02},
      {"wrong_counter", true, 3, 1, false, true, true, 1, 1, 0x03},
      {"wrong_counter_not_reliable", true, 3, 1, false, true, false, 1, 1, 0x03},
      {"not_reliable", true, 3, 1, false, false, false, 1, 1, 0x01},
      {"value_out_of_range", true, 3, 1, false, false, true, 2, 1, 0x01},
      {"two_frames", true, 3, 1, false, false, true, 1, 2, 0x01},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    MemoryStore store(kSizeMult, seeded(c.key, c.counter));
    Engine engine(store);
    const std::uint32_t frame_counter = c.wrong_counter ? c.counter + 1 : c.counter;
    std::vector<Frame> request(c.frames, requests::device_config_write(c.address, c.value, frame_counter));
    FrameAuthenticator auth(test::test_key());
    requests::sign(auth, request);
    if (c.bad_mac) request.back().bytes()[Frame::kKeyMacOffset + 5] ^= 0x40;
    const Frame r = test::write_then_result(engine, request, c.reliable);
    EXPECT_EQ(r.result(), c.expected);
    EXPECT_EQ(r.type(), 0x0600);
    const DeviceConfiguration& cfg = engine.device_configuration();
    if (c.expected == 0) {
      EXPECT_EQ(engine.state().write_counter, c.counter + 1);
      EXPECT_EQ(c.address == 1 ? cfg.secure_wp_mode_enable : cfg.secure_wp_mode_config, c.value);
    } else {
      EXPECT_EQ(engine.state().write_counter, c.counter);
      EXPECT_EQ(cfg, DeviceConfiguration{});
    }
  }
}

TEST(EngineChecks, ReadTypeRequestsWithoutAKey) {
  MemoryStore store(kSizeMult);
  Engine engine(store);
  const Nonce nonce = {1, 2, 3};
  const Frame counter = test::exchange(engine, {requests::read_counter(nonce)}, false, 1)[0];
  EXPECT_EQ(counter.result(), 0x07);
  EXPECT_EQ(counter.type(), 0x0200);
  EXPECT_EQ(counter.mac(), Mac{});
  const auto data = test::exchange(engine, {requests::authenticated_read(0, nonce)}, false, 2);
  for (const Frame& f : data) {
    EXPECT_EQ(f.result(), 0x07);
    EXPECT_EQ(f.type(), 0x0400);
  }
  const Frame config = test::exchange(engine, {requests::device_config_read(nonce)}, false, 1)[0];
  EXPECT_EQ(config.result(), 0x07);
  EXPECT_EQ(config.type(), 0x0700);
  const auto write_data = test::pattern(1, 1);
  std::vector<Frame> write = requests::authenticated_write(0, 0, write_data.data(), 1);
  const Frame r = test::write_then_result(engine, write);
  EXPECT_EQ(r.result(), 0x07);
  EXPECT_EQ(r.mac(), Mac{}) << "with no key the result read carries a zero MAC";
}

TEST(EngineChecks, AuthenticatedReadAddressRange) {
  MemoryStore store(kSizeMult, seeded(true, 0));
  Engine engine(store);
  FrameAuthenticator auth(test::test_key());
  struct Case {
    std::uint16_t address;
    std::size_t n;
    std::uint16_t expected;
  };
  for (const Case c : {Case{0, 1, 0}, Case{511, 1, 0}, Case{510, 2, 0}, Case{511, 2, 4}, Case{512, 1, 4},
                       Case{0xFFFF, 1, 4}, Case{0, 512, 0}, Case{1, 512, 4}}) {
    SCOPED_TRACE(fmt::format("address {} count {}", c.address, c.n));
    const auto r = test::exchange(engine, {requests::authenticated_read(c.address, {})}, false, c.n);
    for (const Frame& f : r) EXPECT_EQ(f.result(), c.expected);
    EXPECT_TRUE(auth.verify(r.data(), r.size()));
  }
}

TEST(EngineChecks, StoreFailureIsAWriteFailureAndChangesNothing) {
  FailingStore store(seeded(true, 9));
  Engine engine(store);
  const auto data = test::pattern(1, 2);
  std::vector<Frame> request = requests::authenticated_write(3, 9, data.data(), 1);
  FrameAuthenticator auth(test::test_key());
  requests::sign(auth, request);
  const Frame r = test::write_then_result(engine, request);
  EXPECT_EQ(r.result(), 0x05);
  EXPECT_EQ(r.write_counter(), 9u);
  EXPECT_EQ(engine.state().write_counter, 9u);
  const Frame key = test::write_then_result(engine, {requests::program_key(test::test_key(1))});
  EXPECT_EQ(key.result(), 0x01) << "already programmed comes before any store access";
}

TEST(EngineChecks, CounterExpiry) {
  MemoryStore store(kSizeMult, seeded(true, kCounterMax - 1));
  Engine engine(store);
  EngineChannel channel(engine);
  Host host(channel, test::test_key());
  const auto data = test::pattern(1, 6);

  const HostResult last_write = host.write(7, data.data(), 1);
  EXPECT_EQ(last_write.result, 0x0080) << "the write that reaches 0xFFFFFFFF reports expiry";
  EXPECT_EQ(last_write.write_counter, kCounterMax);
  EXPECT_EQ(engine.state().write_counter, kCounterMax);

  const HostResult refused = host.write_with_counter(8, data.data(), 1, kCounterMax);
  EXPECT_EQ(refused.result, 0x0085);
  EXPECT_EQ(engine.state().write_counter, kCounterMax);
  std::vector<std::uint8_t> block(kHalfSectorSize);
  store.read(8, 1, block.data());
  EXPECT_EQ(block, std::vector<std::uint8_t>(kHalfSectorSize, 0));

  const HostResult counter = host.read_counter();
  EXPECT_EQ(counter.result, 0x0080);
  EXPECT_EQ(counter.write_counter, kCounterMax);
  EXPECT_EQ(counter.mac_valid, true);
  const HostResult read = host.read(7, 1);
  EXPECT_EQ(read.result, 0x0080);
  EXPECT_EQ(read.data, data) << "reads still work after expiry";
  EXPECT_EQ(host.config_write(1, 1).result, 0x0085);
  EXPECT_EQ(host.config_read().result, 0x0080);
  EXPECT_EQ(host.result_read().result, 0x0085);
  const Frame key = test::write_then_result(engine, {requests::program_key(test::test_key(3))});
  EXPECT_EQ(key.result(), 0x0081);
}

}  // namespace
}  // namespace emmcsim::rpmb
