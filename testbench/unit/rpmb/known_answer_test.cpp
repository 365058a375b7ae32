// Known-answer vectors from ../shared/vectors/rpmb_kat.json, computed by an implementation
// independent of this project: every MAC case, and the blank-device walkthrough replayed
// through the engine frame by frame.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "emmcsim/rpmb/engine.hpp"
#include "emmcsim/rpmb/mac.hpp"
#include "emmcsim/rpmb/store.hpp"
#include "test_support.hpp"

namespace emmcsim::rpmb {
namespace {

using nlohmann::json;

const json& vectors() {
  static const json v = [] {
    std::ifstream in(EMMCSIM_KAT_PATH);
    if (!in) throw std::runtime_error(std::string("cannot open ") + EMMCSIM_KAT_PATH);
    return json::parse(in);
  }();
  return v;
}

std::vector<Frame> frames_of(const json& hex_frames) {
  std::vector<Frame> out;
  for (const auto& h : hex_frames) out.push_back(test::frame_from_hex(h.get<std::string>()));
  return out;
}

TEST(KnownAnswer, VectorFileHasMacCasesAndAWalkthrough) {
  EXPECT_GE(vectors().at("mac_cases").size(), 9u);
  EXPECT_GE(vectors().at("scenarios").size(), 1u);
}

TEST(KnownAnswer, EveryMacCaseMatches) {
  for (const json& c : vectors().at("mac_cases")) {
    SCOPED_TRACE(c.at("name").get<std::string>());
    const Key key = test::array_from_hex<kKeySize>(c.at("key"));
    const Mac expected = test::array_from_hex<kMacSize>(c.at("mac"));
    const std::vector<Frame> frames = frames_of(c.at("frames"));
    FrameAuthenticator auth(key);
    EXPECT_EQ(auth.compute(frames.data(), frames.size()), expected);
    EXPECT_TRUE(auth.verify(frames.data(), frames.size()));  // the MAC sits in the last frame
    EXPECT_EQ(frames_mac(key, frames.data(), frames.size()), expected);
  }
}

TEST(KnownAnswer, BlankDeviceWalkthroughThroughTheEngine) {
  const json& scenario = vectors().at("scenarios").at(0);
  MemoryStore store(scenario.at("rpmb_size_mult").get<std::uint32_t>());
  Engine engine(store);
  const Key key = test::array_from_hex<kKeySize>(scenario.at("key"));
  FrameAuthenticator auth(key);
  int steps = 0;
  for (const json& step : scenario.at("steps")) {
    SCOPED_TRACE(step.at("do").get<std::string>());
    const std::vector<Frame> request = frames_of(step.at("frames"));
    ASSERT_EQ(request.size(), step.at("cmd23").get<std::size_t>());
    const bool reliable = step.value("reliable", false);
    std::vector<Frame> response;
    if (step.value("then_result_read", false)) {
      response.push_back(test::write_then_result(engine, request, reliable));
    } else {
      response = test::exchange(engine, request, reliable, step.value("read_blocks", 1));
    }
    const json& expect = step.at("expect");
    for (const Frame& f : response) {
      EXPECT_EQ(f.type(), expect.at("type").get<std::uint16_t>());
      EXPECT_EQ(f.result(), expect.at("result").get<std::uint16_t>());
    }
    const Frame& last = response.back();
    if (expect.contains("write_counter")) {
      EXPECT_EQ(last.write_counter(), expect["write_counter"].get<std::uint32_t>());
    }
    if (expect.contains("address")) {
      EXPECT_EQ(last.address(), expect["address"].get<std::uint16_t>());
    }
    if (expect.contains("nonce")) {
      EXPECT_EQ(last.nonce(), test::array_from_hex<kNonceSize>(expect["nonce"]));
    }
    if (expect.contains("mac")) {
      ASSERT_EQ(expect["mac"], "valid");
      EXPECT_TRUE(auth.verify(response.data(), response.size()));
    }
    if (expect.contains("data")) {
      ASSERT_EQ(expect["data"].size(), response.size());
      for (std::size_t i = 0; i < response.size(); ++i) {
        const std::vector<std::uint8_t> want = test::from_hex(expect["data"][i]);
        EXPECT_EQ(std::vector<std::uint8_t>(response[i].data(), response[i].data() + kHalfSectorSize), want)
            << "frame " << i;
      }
    }
    ++steps;
  }
  EXPECT_EQ(steps, 10);
  EXPECT_EQ(engine.state().write_counter, 1u);  // only the one good write moved the counter
}

}  // namespace
}  // namespace emmcsim::rpmb
