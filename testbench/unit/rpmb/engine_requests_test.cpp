// The request types as the bus carries them: multi-frame writes and reads, N taken from CMD23,
// the result register, device configuration, client quirks (OP-TEE's result read under
// CMD23 = N, zero block counts), and the work each burst reports.
#include <gtest/gtest.h>

#include "emmcsim/rpmb/engine.hpp"
#include "emmcsim/rpmb/host.hpp"
#include "emmcsim/rpmb/store.hpp"
#include "test_support.hpp"

namespace emmcsim::rpmb {
namespace {

class EngineRequests : public ::testing::Test {
 protected:
  EngineRequests() { EXPECT_TRUE(host.program_key(test::test_key()).ok()); }
  MemoryStore store{2};  // 1024 half-sectors
  Engine engine{store, EngineConfig{true}};
  EngineChannel channel{engine};
  Host host{channel, std::nullopt};
  FrameAuthenticator auth{test::test_key()};
};

TEST_F(EngineRequests, MultiFrameWritesLandWholeAndBumpTheCounterOnce) {
  for (std::size_t frames : {1u, 2u, 32u}) {
    const std::uint32_t before = engine.state().write_counter;
    const auto data = test::pattern(frames, static_cast<std::uint8_t>(frames));
    const HostResult w = host.write(100, data.data(), frames);
    ASSERT_TRUE(w.ok()) << frames << " frames: " << describe_result(w.result);
    EXPECT_EQ(w.write_counter, before + 1);
    EXPECT_EQ(w.mac_valid, true);
    const HostResult r = host.read(100, frames, Nonce{9, 9});
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r.data, data);
  }
}

TEST_F(EngineRequests, ReadTakesNFromCmd23NotFromTheRequestFrame) {
  const auto data = test::pattern(2, 77);
  ASSERT_TRUE(host.write(40, data.data(), 2).ok());
  Nonce nonce;
  nonce.fill(0xab);
  Frame request = requests::authenticated_read(40, nonce);
  for (std::uint16_t frame_count : {0, 1, 7}) {  // what the frame says must not matter
    request.set_block_count(frame_count);
    const auto response = test::exchange(engine, {request}, false, 2);
    ASSERT_EQ(response.size(), 2u);
    for (std::size_t i = 0; i < 2; ++i) {
      EXPECT_EQ(response[i].type(), 0x0400);
      EXPECT_EQ(response[i].result(), 0);
      EXPECT_EQ(response[i].address(), 40);
      EXPECT_EQ(response[i].block_count(), 2);
      EXPECT_EQ(response[i].nonce(), nonce);
      EXPECT_TRUE(std::equal(response[i].data(), response[i].data() + kHalfSectorSize,
                             data.begin() + static_cast<long>(i * kHalfSectorSize)));
    }
    EXPECT_EQ(response[0].mac(), Mac{}) << "only the last frame carries the MAC";
    EXPECT_TRUE(auth.verify(response.data(), 2));
  }
}

TEST_F(EngineRequests, ResultReadUnderABlockCountAboveOneUsesTheFirstFrame) {
  // OP-TEE's supplicant sends the result-read request under CMD23 = N (its write's count).
  const auto data = test::pattern(2, 5);
  std::vector<Frame> write = requests::authenticated_write(8, engine.state().write_counter, data.data(), 2);
  requests::sign(auth, write);
  engine.write_request(write.data(), 2, true);
  const std::vector<Frame> result_requests(2, requests::result_read());
  engine.write_request(result_requests.data(), 2, false);
  Frame response;
  engine.read_response(&response, 1);
  EXPECT_EQ(response.type(), 0x0300);
  EXPECT_EQ(response.result(), 0);
  EXPECT_EQ(response.address(), 8);
  EXPECT_EQ(response.write_counter(), engine.state().write_counter);
  EXPECT_EQ(response.nonce(), Nonce{}) << "a result read carries no nonce";
  EXPECT_TRUE(auth.verify(&response, 1));
}

TEST_F(EngineRequests, ResultRegisterFollowsWriteTypeRequestsOnly) {
  const auto data = test::pattern(1, 1);
  ASSERT_TRUE(host.write(3, data.data(), 1).ok());
  const HostResult after_write = host.result_read();
  EXPECT_EQ(after_write.response_type, 0x0300);
  // Read-type requests leave the register alone.
  ASSERT_TRUE(host.read_counter().ok());
  ASSERT_TRUE(host.read(3, 1).ok());
  const HostResult still = host.result_read();
  EXPECT_EQ(still.response_type, 0x0300);
  EXPECT_EQ(still.write_counter, after_write.write_counter);
  EXPECT_EQ(still.mac_valid, true);
  // A rejected write is reported, with the counter unchanged.
  const HostResult replay = host.write_with_counter(3, data.data(), 1, after_write.write_counter - 1);
  EXPECT_EQ(replay.result, 0x03);
  EXPECT_EQ(host.result_read().result, 0x03);
  EXPECT_EQ(engine.result_register().write_counter, after_write.write_counter);
}

TEST_F(EngineRequests, ReadingWithoutARequestOrWithTheWrongCountFails) {
  std::vector<Frame> out(3);
  engine.read_response(out.data(), 3);
  for (const Frame& f : out) EXPECT_EQ(f.result(), 0x01);
  // A counter read answers exactly one frame.
  engine.write_request(std::vector<Frame>{requests::read_counter({})}.data(), 1, false);
  engine.read_response(out.data(), 2);
  EXPECT_EQ(out[0].result(), 0x01);
  EXPECT_EQ(out[0].type(), 0x0200);
  // The response is consumed by the read, even a failed one.
  engine.read_response(out.data(), 1);
  EXPECT_EQ(out[0].type(), 0x0000);
  EXPECT_EQ(out[0].result(), 0x01);
}

TEST_F(EngineRequests, ANewRequestCancelsAnUncollectedResponse) {
  engine.write_request(std::vector<Frame>{requests::read_counter({1})}.data(), 1, false);
  engine.write_request(std::vector<Frame>{requests::device_config_read({2})}.data(), 1, false);
  Frame out;
  engine.read_response(&out, 1);
  EXPECT_EQ(out.type(), 0x0700);
  EXPECT_EQ(out.nonce(), Nonce{2});
}

TEST_F(EngineRequests, UnknownRequestTypeIsAGeneralFailureAndStoresNothing) {
  Frame odd;
  odd.set_type(0x0009);
  const std::uint32_t counter = engine.state().write_counter;
  const Frame r = test::write_then_result(engine, {odd});
  EXPECT_EQ(r.result(), 0x01);
  EXPECT_EQ(engine.state().write_counter, counter);
}

TEST_F(EngineRequests, DeviceConfigurationRoundTrip) {
  HostResult before = host.config_read(Nonce{4});
  ASSERT_TRUE(before.ok());
  EXPECT_EQ(before.data[255], 0);
  EXPECT_EQ(before.data[254], 0);
  const std::uint32_t counter = engine.state().write_counter;
  ASSERT_TRUE(host.config_write(kConfigAddressSecureWpModeEnable, 1).ok());
  ASSERT_TRUE(host.config_write(kConfigAddressSecureWpModeConfig, 1).ok());
  EXPECT_EQ(engine.state().write_counter, counter + 2) << "each configuration write counts";
  const HostResult after = host.config_read(Nonce{5});
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after.response_type, 0x0700);
  EXPECT_EQ(after.data[255], 1) << "SECURE_WP_MODE_ENABLE";
  EXPECT_EQ(after.data[254], 1) << "SECURE_WP_MODE_CONFIG";
  EXPECT_EQ(engine.device_configuration().secure_wp_mode_enable, 1);
  EXPECT_EQ(engine.device_configuration().secure_wp_mode_config, 1);
  ASSERT_TRUE(host.config_write(kConfigAddressSecureWpModeEnable, 0).ok());
  EXPECT_EQ(engine.device_configuration().secure_wp_mode_enable, 0);
}

TEST_F(EngineRequests, HostDetectsAForgedResponse) {
  // A host holding another key must see every MAC fail.
  Host stranger(channel, test::test_key(0x77));
  EXPECT_EQ(stranger.read_counter().mac_valid, false);
  EXPECT_EQ(stranger.read(0, 2).mac_valid, false);
  const HostResult w = stranger.write(0, test::pattern(1, 1).data(), 1);
  EXPECT_EQ(w.mac_valid, false);
  EXPECT_FALSE(w.ok());
}

// A channel that loses the next reliable-write burst on the way, as a CRC error on the bus does.
class LosingChannel final : public RequestChannel {
 public:
  explicit LosingChannel(Engine& engine) : inner_(engine) {}
  void send(const Frame* frames, std::size_t count, bool reliable_write) override {
    if (reliable_write && lose_next_write) {
      lose_next_write = false;
      return;
    }
    inner_.send(frames, count, reliable_write);
  }
  void receive(Frame* frames, std::size_t count) override { inner_.receive(frames, count); }
  bool lose_next_write = false;

 private:
  EngineChannel inner_;
};

TEST_F(EngineRequests, AWriteThatNeverArrivedIsNoSuccessThoughTheResultRegisterSaysOk) {
  LosingChannel lossy(engine);
  Host keyed(lossy, test::test_key());
  ASSERT_TRUE(keyed.write(5, test::pattern(1, 2).data(), 1).ok());
  lossy.lose_next_write = true;
  // The result read returns the previous write's result: OK, a good MAC, the same type — but
  // the counter the previous write left, not one above this write's.
  const HostResult stale = keyed.write(5, test::pattern(1, 3).data(), 1);
  EXPECT_TRUE(result_ok(stale.result));
  EXPECT_EQ(stale.response_type, static_cast<std::uint16_t>(ResponseType::authenticated_write));
  EXPECT_EQ(stale.write_counter, 1u);
  EXPECT_FALSE(stale.answers_request);
  EXPECT_FALSE(stale.ok());
  EXPECT_EQ(engine.state().write_counter, 1u) << "nothing was written";
}

TEST(HostResultType, AResultReadAnsweringAnotherRequestIsNotOk) {
  MemoryStore store{2};
  Engine engine{store, EngineConfig{true}};
  LosingChannel lossy(engine);
  Host host(lossy, std::nullopt);
  ASSERT_TRUE(host.program_key(test::test_key()).ok());
  Host keyed(lossy, test::test_key());
  lossy.lose_next_write = true;
  const HostResult w = keyed.write(5, test::pattern(1, 3).data(), 1);
  EXPECT_TRUE(result_ok(w.result)) << "the result register still holds the key programming's OK";
  EXPECT_EQ(w.response_type, static_cast<std::uint16_t>(ResponseType::program_key));
  EXPECT_FALSE(w.answers_request);
  EXPECT_FALSE(w.ok());
  EXPECT_EQ(engine.state().write_counter, 0u);
  EXPECT_TRUE(keyed.write(5, test::pattern(1, 3).data(), 1).ok());
  EXPECT_TRUE(keyed.result_read().ok()) << "a bare result read takes any write-type answer";
}

TEST_F(EngineRequests, NonceIsEchoed) {
  Nonce nonce;
  for (std::size_t i = 0; i < nonce.size(); ++i) nonce[i] = static_cast<std::uint8_t>(i * 3 + 1);
  EXPECT_TRUE(host.read_counter(nonce).nonce_matches);
  const auto response = test::exchange(engine, {requests::read_counter(nonce)}, false, 1);
  EXPECT_EQ(response[0].nonce(), nonce);
}

TEST_F(EngineRequests, WorkReportsCountMacsDataAndCommits) {
  const auto data = test::pattern(2, 3);
  std::vector<Frame> write = requests::authenticated_write(0, engine.state().write_counter, data.data(), 2);
  requests::sign(auth, write);
  const EngineWork w = engine.write_request(write.data(), 2, true);
  EXPECT_EQ(w.mac_frames, 2u);
  EXPECT_EQ(w.half_sectors_written, 2u);
  EXPECT_EQ(w.commits, 1u);
  const EngineWork replay = engine.write_request(write.data(), 2, true);
  EXPECT_EQ(replay.commits, 0u);
  EXPECT_EQ(replay.half_sectors_written, 0u);
  EXPECT_EQ(engine.write_request(std::vector<Frame>{requests::authenticated_read(0, {})}.data(), 1, false).mac_frames,
            0u);
  std::vector<Frame> out(4);
  const EngineWork r = engine.read_response(out.data(), 4);
  EXPECT_EQ(r.mac_frames, 4u);
  EXPECT_EQ(r.half_sectors_read, 4u);
}

}  // namespace
}  // namespace emmcsim::rpmb
