// VirtioRpmbDevice: the ioctl sequence planned for each request (and every chain that is no RPMB
// request refused), then whole RPMB operations through rpmb::Host over descriptor chains built
// in a buffer, served by a real card behind StrandDevicePort — the same state mmc-utils reaches
// through the bridge.
#include <gtest/gtest.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <future>
#include <memory>
#include <thread>

#include "emmcsim/mmc/card.hpp"
#include "emmcsim/mmc/device_config.hpp"
#include "emmcsim/mmc/host_bus.hpp"
#include "emmcsim/mmc/image.hpp"
#include "emmcsim/rpmb/host.hpp"
#include "emmcsim/transport/bridge_rpmb_channel.hpp"
#include "emmcsim/transport/device_port.hpp"
#include "emmcsim/transport/virtio_rpmb_device.hpp"

namespace emmcsim::transport {
namespace {

namespace asio = boost::asio;
using Bytes = std::vector<std::uint8_t>;
using rpmb::RequestType;

Bytes frames_of(std::initializer_list<RequestType> types) {
  Bytes out;
  for (RequestType t : types) {
    rpmb::Frame f;
    f.set_request(t);
    out.insert(out.end(), f.bytes(), f.bytes() + rpmb::kFrameSize);
  }
  return out;
}

const VirtioRpmbConfig kConfig{4, 32, 255};

VirtioRpmbPlan plan(const Bytes& frames, std::uint64_t writable) {
  return plan_virtio_rpmb_request(kConfig, frames.data(), frames.size(), writable);
}

std::string refusal(const Bytes& frames, std::uint64_t writable, const VirtioRpmbConfig& config = kConfig) {
  try {
    plan_virtio_rpmb_request(config, frames.data(), frames.size(), writable);
  } catch (const VirtioRpmbRequestError& e) {
    return e.what();
  }
  return "accepted";
}

TEST(VirtioRpmbPlan, WriteWithResultReadIsTheSequenceMmcUtilsSends) {
  const VirtioRpmbPlan p = plan(
      frames_of({RequestType::authenticated_write, RequestType::authenticated_write, RequestType::result_read}), 512);
  EXPECT_EQ(p.request.node, bridge::Node::rpmb);
  EXPECT_TRUE(p.request.multi);
  ASSERT_EQ(p.request.commands.size(), 3u);
  EXPECT_EQ(p.request.commands[0].opcode, 25u);
  EXPECT_EQ(p.request.commands[0].blocks, 2u);
  EXPECT_EQ(p.request.commands[0].write_flag, 1u | (1u << 31));  // reliable
  EXPECT_EQ(p.request.commands[0].data.size(), 1024u);
  EXPECT_EQ(p.request.commands[1].opcode, 25u);
  EXPECT_EQ(p.request.commands[1].blocks, 1u);
  EXPECT_EQ(p.request.commands[1].write_flag, 1u);
  EXPECT_EQ(p.request.commands[2].opcode, 18u);
  EXPECT_EQ(p.request.commands[2].blocks, 1u);
  EXPECT_EQ(p.request.commands[2].write_flag, 0u);
  EXPECT_EQ(p.request.commands[2].flags, BridgeRpmbChannel::kFlags);
  EXPECT_EQ(p.response_frames, 1u);
}

TEST(VirtioRpmbPlan, WriteWithoutResultReadGetsNoResponse) {
  const VirtioRpmbPlan p = plan(frames_of({RequestType::program_key}), 0);
  ASSERT_EQ(p.request.commands.size(), 1u);
  EXPECT_EQ(p.response_frames, 0u);
}

TEST(VirtioRpmbPlan, AuthenticatedReadReadsAsManyFramesAsThereIsRoomFor) {
  const VirtioRpmbPlan p = plan(frames_of({RequestType::authenticated_read}), 8 * 512);
  ASSERT_EQ(p.request.commands.size(), 2u);
  EXPECT_EQ(p.request.commands[0].write_flag, 1u);  // not reliable
  EXPECT_EQ(p.request.commands[1].blocks, 8u);
  EXPECT_EQ(p.response_frames, 8u);
  // A counter read answers one frame, whatever the room.
  EXPECT_EQ(plan(frames_of({RequestType::read_counter}), 4 * 512).response_frames, 1u);
}

TEST(VirtioRpmbPlan, RefusesWhatIsNoRpmbRequest) {
  EXPECT_NE(refusal(Bytes(), 512).find("not whole 512-byte frames"), std::string::npos);
  EXPECT_NE(refusal(Bytes(511), 512).find("not whole 512-byte frames"), std::string::npos);
  EXPECT_NE(refusal(frames_of({static_cast<RequestType>(0x0009)}), 512).find("request type 0x0009"), std::string::npos);
  EXPECT_NE(refusal(frames_of({RequestType::authenticated_write, RequestType::read_counter}), 512)
                .find("not one result read"),
            std::string::npos);
  EXPECT_NE(
      refusal(frames_of({RequestType::authenticated_write, RequestType::result_read, RequestType::result_read}), 512)
          .find("not one result read"),
      std::string::npos);
  EXPECT_NE(refusal(frames_of({RequestType::read_counter, RequestType::read_counter}), 1024).find("of 2 frames, not 1"),
            std::string::npos);
  EXPECT_NE(refusal(frames_of({RequestType::read_counter}), 511).find("no room"), std::string::npos);
  EXPECT_NE(refusal(frames_of({RequestType::authenticated_write, RequestType::result_read}), 100).find("no room"),
            std::string::npos);
  EXPECT_NE(refusal(frames_of({RequestType::authenticated_read}), 256 * 512).find("more than max_rd_cnt 255"),
            std::string::npos);
  // A write of more than max_wr_cnt frames without room for the response frame.
  const VirtioRpmbConfig two{4, 2, 255};
  EXPECT_NE(refusal(frames_of({RequestType::authenticated_write, RequestType::authenticated_write,
                               RequestType::authenticated_write, RequestType::result_read}),
                    0, two)
                .find("more than max_wr_cnt 2"),
            std::string::npos);
}

// virtio 1.2 §5.12: a write of more than max_wr_cnt frames SHOULD be answered with a general
// failure; with room for the response frame the device answers it itself, without the card.
TEST(VirtioRpmbPlan, WriteOverMaxWrCntIsAnsweredWithAGeneralFailure) {
  const VirtioRpmbConfig two{4, 2, 255};
  const Bytes three = frames_of({RequestType::authenticated_write, RequestType::authenticated_write,
                                 RequestType::authenticated_write, RequestType::result_read});
  const VirtioRpmbPlan p = plan_virtio_rpmb_request(two, three.data(), three.size(), 512);
  EXPECT_TRUE(p.request.commands.empty()) << "the card is not asked";
  EXPECT_EQ(p.response_frames, 1u);
  ASSERT_EQ(p.device_response.size(), rpmb::kFrameSize);
  const rpmb::Frame response = rpmb::Frame::from_bytes(p.device_response.data());
  EXPECT_EQ(response.type(), static_cast<std::uint16_t>(rpmb::ResponseType::authenticated_write));
  EXPECT_EQ(response.result(), static_cast<std::uint16_t>(rpmb::ResultCode::general_failure));
  EXPECT_NE(p.device_response_reason.find("3 frames to write, more than max_wr_cnt 2"), std::string::npos);
  // The same for a configuration write, and without a result read when there is room.
  const Bytes config =
      frames_of({RequestType::device_config_write, RequestType::device_config_write, RequestType::device_config_write});
  const VirtioRpmbPlan c = plan_virtio_rpmb_request(two, config.data(), config.size(), 512);
  EXPECT_EQ(rpmb::Frame::from_bytes(c.device_response.data()).type(),
            static_cast<std::uint16_t>(rpmb::ResponseType::device_config_write));
  // Within max_wr_cnt the card answers, as before.
  EXPECT_TRUE(
      plan(frames_of({RequestType::authenticated_write, RequestType::result_read}), 512).device_response.empty());
}

TEST(VirtioRpmbConfig, ComesFromTheCard) {
  EXPECT_EQ(VirtioRpmbConfig::for_card(32, true).bytes(), (std::array<std::uint8_t, 3>{32, 32, 255}));
  EXPECT_EQ(VirtioRpmbConfig::for_card(128, false).bytes(), (std::array<std::uint8_t, 3>{128, 2, 255}));
}

// ---------------------------------------------------------------------------------------------
// Whole operations on a real card.

mmc::DeviceConfig small_config() {
  mmc::DeviceConfig c = mmc::default_device_config();
  c.user_capacity = 64ULL << 20;
  c.boot_partition_size = 512ULL << 10;
  c.rpmb_size = 512ULL << 10;
  return c;
}

class CardBehindPort {
 public:
  CardBehindPort()
      : config_(small_config()),
        image_(config_),
        card_(config_, image_.backend()),
        bus_(card_),
        port_(io_, bus_),
        work_(asio::make_work_guard(io_)),
        thread_([this] { io_.run(); }) {}
  ~CardBehindPort() {
    work_.reset();
    thread_.join();
  }
  StrandDevicePort& port() { return port_; }

 private:
  mmc::DeviceConfig config_;
  mmc::MemoryImage image_;
  mmc::Card card_;
  mmc::CardHostBus bus_;
  asio::io_context io_;
  StrandDevicePort port_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::thread thread_;
};

// rpmb::RequestChannel that builds each request as a DescriptorChain over its own buffers (the
// readable frames split over one descriptor per frame, to exercise gathering) and waits for the
// device's completion.
class ChainChannel final : public rpmb::RequestChannel {
 public:
  explicit ChainChannel(VirtioRpmbDevice& device) : device_(device) {}
  void send(const rpmb::Frame* frames, std::size_t count, bool) override {
    for (std::size_t i = 0; i < count; ++i) pending_.push_back(frames[i]);
  }
  void receive(rpmb::Frame* frames, std::size_t count) override {
    std::vector<rpmb::Frame> request;
    request.swap(pending_);
    std::vector<rpmb::Frame> response(count);
    DescriptorChain chain;
    for (auto& f : request) {
      chain.readable.push_back(GuestBuffer{f.bytes(), rpmb::kFrameSize});
      chain.readable_bytes += rpmb::kFrameSize;
    }
    for (auto& f : response) {
      chain.writable.push_back(GuestBuffer{f.bytes(), rpmb::kFrameSize});
      chain.writable_bytes += rpmb::kFrameSize;
    }
    std::promise<std::pair<std::uint32_t, std::string>> done;
    device_.serve(std::move(chain), [&](VirtioRpmbOutcome o) { done.set_value({o.written, o.error}); });
    const auto [written, error] = done.get_future().get();
    last_error_ = error;
    if (written != count * rpmb::kFrameSize)
      throw std::runtime_error("device wrote " + std::to_string(written) + ": " + error);
    for (std::size_t i = 0; i < count; ++i) frames[i] = response[i];
  }
  const std::string& last_error() const { return last_error_; }

 private:
  VirtioRpmbDevice& device_;
  std::vector<rpmb::Frame> pending_;
  std::string last_error_;
};

rpmb::Key test_key() {
  rpmb::Key key{};
  for (std::size_t i = 0; i < key.size(); ++i) key[i] = static_cast<std::uint8_t>(0xA0 + i);
  return key;
}

TEST(VirtioRpmbDevice, ServesKeyCounterWritesAndReadsOnTheCard) {
  CardBehindPort card;
  VirtioRpmbDevice device(card.port(), kConfig);
  ChainChannel channel(device);
  rpmb::Host host(channel, test_key());

  EXPECT_EQ(host.read_counter().result, static_cast<std::uint16_t>(rpmb::ResultCode::key_not_programmed));
  ASSERT_TRUE(host.program_key(test_key()).ok());
  EXPECT_EQ(host.read_counter().write_counter, 0u);

  Bytes data(32 * rpmb::kHalfSectorSize);
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<std::uint8_t>(i * 7 + 3);
  ASSERT_TRUE(host.write(0, data.data(), 1).ok());
  ASSERT_TRUE(host.write(2, data.data(), 2).ok());
  ASSERT_TRUE(host.write(64, data.data(), 32).ok());
  EXPECT_EQ(host.read_counter().write_counter, 3u);

  const rpmb::HostResult read = host.read(64, 32);
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(read.data, data);
  const rpmb::HostResult two = host.read(2, 2);
  ASSERT_TRUE(two.ok());
  EXPECT_EQ(Bytes(two.data.begin(), two.data.end()), Bytes(data.begin(), data.begin() + 2 * rpmb::kHalfSectorSize));

  // JEDEC's checks answer in the result, as on the card: a replayed counter, a wrong key.
  const rpmb::HostResult replay = host.write_with_counter(0, data.data(), 1, 1);
  EXPECT_EQ(replay.result, static_cast<std::uint16_t>(rpmb::ResultCode::counter_failure));
  rpmb::Key wrong = test_key();
  wrong[0] ^= 1;
  rpmb::Host intruder(channel, wrong);
  EXPECT_EQ(intruder.write(0, data.data(), 1).result,
            static_cast<std::uint16_t>(rpmb::ResultCode::authentication_failure));
  EXPECT_EQ(host.read_counter().write_counter, 3u);
  EXPECT_EQ(host.program_key(wrong).result, static_cast<std::uint16_t>(rpmb::ResultCode::general_failure));
}

TEST(VirtioRpmbDevice, RefusedChainsNeverReachTheCard) {
  CardBehindPort card;
  VirtioRpmbDevice device(card.port(), kConfig);
  ChainChannel channel(device);
  rpmb::Host host(channel, test_key());
  ASSERT_TRUE(host.program_key(test_key()).ok());

  auto serve = [&](DescriptorChain chain) {
    std::promise<std::pair<std::uint32_t, std::string>> done;
    device.serve(std::move(chain), [&](VirtioRpmbOutcome o) {
      EXPECT_FALSE(o.simulated_ps.has_value()) << "the untimed port reports no simulated time";
      done.set_value({o.written, o.error});
    });
    return done.get_future().get();
  };
  DescriptorChain faulted;
  faulted.fault = "descriptor chain at 0: a loop";
  EXPECT_EQ(serve(faulted), (std::pair<std::uint32_t, std::string>{0, "descriptor chain at 0: a loop"}));

  Bytes huge(34 * rpmb::kFrameSize);
  DescriptorChain oversized;
  oversized.readable.push_back(GuestBuffer{huge.data(), static_cast<std::uint32_t>(huge.size())});
  oversized.readable_bytes = huge.size();
  const auto [written, error] = serve(oversized);
  EXPECT_EQ(written, 0u);
  EXPECT_NE(error.find("more than the largest request"), std::string::npos) << error;

  EXPECT_EQ(host.read_counter().write_counter, 0u);
}

TEST(VirtioRpmbDevice, AWriteOverMaxWrCntGetsAGeneralFailureAndNeverReachesTheCard) {
  CardBehindPort card;
  VirtioRpmbDevice device(card.port(), kConfig);  // max_wr_cnt 32
  ChainChannel channel(device);
  rpmb::Host host(channel, test_key());
  ASSERT_TRUE(host.program_key(test_key()).ok());

  // 33 signed frames and a result read: one frame over max_wr_cnt, and more than the largest
  // request the device gathers whole (32 frames and a result read).
  rpmb::Frame write;
  write.set_request(RequestType::authenticated_write);
  write.set_address(0);
  write.set_block_count(33);
  std::vector<rpmb::Frame> frames(33, write);
  rpmb::Frame result_read;
  result_read.set_request(RequestType::result_read);
  frames.push_back(result_read);
  rpmb::Frame response;
  auto serve = [&](std::uint32_t room) {
    DescriptorChain chain;
    for (auto& f : frames) {
      chain.readable.push_back(GuestBuffer{f.bytes(), rpmb::kFrameSize});
      chain.readable_bytes += rpmb::kFrameSize;
    }
    if (room > 0) {
      chain.writable.push_back(GuestBuffer{response.bytes(), room});
      chain.writable_bytes = room;
    }
    std::promise<VirtioRpmbOutcome> done;
    device.serve(std::move(chain), [&](VirtioRpmbOutcome o) { done.set_value(std::move(o)); });
    return done.get_future().get();
  };
  const VirtioRpmbOutcome answered = serve(rpmb::kFrameSize);
  EXPECT_EQ(answered.written, rpmb::kFrameSize);
  EXPECT_NE(answered.error.find("33 frames to write, more than max_wr_cnt 32: answered with a general failure"),
            std::string::npos)
      << answered.error;
  EXPECT_EQ(response.type(), static_cast<std::uint16_t>(rpmb::ResponseType::authenticated_write));
  EXPECT_EQ(response.result(), static_cast<std::uint16_t>(rpmb::ResultCode::general_failure));
  // Without room for the response: refused, 0 bytes used.
  const VirtioRpmbOutcome refused = serve(0);
  EXPECT_EQ(refused.written, 0u);
  EXPECT_NE(refused.error.find("no room for a response"), std::string::npos) << refused.error;
  // The card saw neither: its result register still holds the key programming's, and the
  // counter did not move.
  const rpmb::HostResult last = host.result_read();
  EXPECT_EQ(last.response_type, static_cast<std::uint16_t>(rpmb::ResponseType::program_key));
  EXPECT_EQ(last.result, static_cast<std::uint16_t>(rpmb::ResultCode::ok));
  EXPECT_EQ(host.read_counter().write_counter, 0u);
}

}  // namespace
}  // namespace emmcsim::transport
