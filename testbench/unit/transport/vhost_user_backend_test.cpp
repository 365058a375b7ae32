// VhostUserBackend in-process on a temporary socket (io_context on two threads, a real card behind
// StrandDevicePort), driven by testbench/common's VhostUserFrontend as QEMU would drive it: the
// handshake's answers, RPMB through the virtqueue with rpmb::Host, stop and resume of the ring,
// memory slots, and every kind of bad input — malformed messages, hostile chains, a broken ring, a
// second front-end — each answered as the header promises while the card stays untouched and
// the device keeps working.
#include <gtest/gtest.h>
#include <spdlog/logger.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <thread>

#include "emmcsim/mmc/card.hpp"
#include "emmcsim/mmc/device_config.hpp"
#include "emmcsim/rpmb/host.hpp"
#include "emmcsim/transport/device_port.hpp"
#include "emmcsim/transport/vhost_user_backend.hpp"
#include "emmcsim/transport/vhost_user_frontend.hpp"
#include "emmcsim/transport/virtio_rpmb_device.hpp"
#include "in_process_daemon.hpp"
#include "scratch_directory.hpp"

namespace emmcsim::transport {
namespace {

namespace vu = vhost_user;
using Bytes = std::vector<std::uint8_t>;

using testing::ScratchDirectory;

mmc::DeviceConfig test_config() {
  mmc::DeviceConfig c = mmc::default_device_config();
  c.user_capacity = 64ULL << 20;
  c.boot_partition_size = 512ULL << 10;
  c.rpmb_size = 512ULL << 10;  // RPMB_SIZE_MULT 4
  return c;
}

rpmb::Key test_key() {
  rpmb::Key key{};
  for (std::size_t i = 0; i < key.size(); ++i) key[i] = static_cast<std::uint8_t>(0x5A ^ (i * 11));
  return key;
}

// The daemon in-process (testbench/common/in_process_daemon.hpp) serving virtio-rpmb, started.
class Daemon : public testing::InProcessDaemon {
 public:
  explicit Daemon(const std::string& socket_path) : InProcessDaemon(test_config(), "vhost-user-test", 512) {
    log().set_level(spdlog::level::debug);
    add_vhost_user(socket_path).start();
    start_threads();
  }
  VhostUserBackend& backend() { return vhost_user(); }
};

class VhostUserBackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    socket_path_ = dir_.path() + "/run/vhost.sock";
    daemon_ = std::make_unique<Daemon>(socket_path_);
  }
  // The card answers a counter read through the virtqueue: a counter response to this request
  // (key not programmed yet, or the counter `counter`).
  void expect_device_works(VhostUserFrontend& frontend, std::uint32_t counter) {
    VirtioRpmbChannel channel(frontend);
    rpmb::Host host(channel, test_key());
    rpmb::Nonce nonce{};
    nonce[0] = static_cast<std::uint8_t>(++nonces_);
    const rpmb::HostResult r = host.read_counter(nonce);
    EXPECT_EQ(r.response_type, static_cast<std::uint16_t>(rpmb::ResponseType::read_counter));
    EXPECT_TRUE(r.nonce_matches);
    if (r.result == static_cast<std::uint16_t>(rpmb::ResultCode::key_not_programmed)) {
      EXPECT_EQ(counter, 0u) << "the key was expected to be programmed";
    } else {
      EXPECT_TRUE(r.ok()) << "result " << r.result;
      EXPECT_EQ(r.write_counter, counter);
    }
  }
  // Polls `condition` (the back-end runs on its own threads) for at most 10 s.
  template <typename Condition>
  static bool eventually(Condition condition) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!condition()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return true;
  }

  ScratchDirectory dir_;
  std::string socket_path_;
  std::unique_ptr<Daemon> daemon_;
  unsigned nonces_ = 0;
};

TEST_F(VhostUserBackendTest, SocketIsPrivate) {
  struct stat st {};
  ASSERT_EQ(::lstat(socket_path_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat((dir_.path() + "/run").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
}

TEST_F(VhostUserBackendTest, HandshakeAnswersWhatAVirtioRpmbDeviceOffers) {
  VhostUserFrontend frontend(socket_path_);
  frontend.start();
  EXPECT_NE(frontend.features() & vu::feature::kVersion1, 0u);
  EXPECT_NE(frontend.features() & vu::feature::kProtocolFeatures, 0u);
  EXPECT_NE(frontend.features() & vu::feature::kRingIndirectDesc, 0u);
  EXPECT_EQ(frontend.features() & vu::feature::kRingEventIdx, 0u);
  EXPECT_NE(frontend.protocol_features() & vu::protocol_feature::kReplyAck, 0u);
  EXPECT_NE(frontend.protocol_features() & vu::protocol_feature::kConfig, 0u);
  EXPECT_EQ(frontend.queue_count(), 1u);
  EXPECT_EQ(frontend.max_mem_slots(), 8u);
  // capacity 4 × 128 KiB, 32-frame writes (EN_RPMB_REL_WR), 255-frame reads.
  EXPECT_EQ(frontend.config(), (Bytes{4, 32, 255}));
  EXPECT_EQ(frontend.read_config(1, 2), (Bytes{32, 255}));
  EXPECT_TRUE(frontend.read_config(2, 2).empty());  // past the 3 bytes: an empty reply
  EXPECT_EQ(frontend.call_u64(vu::Request::get_status), 0x0Fu);
  EXPECT_TRUE(daemon_->backend().front_end_connected());
}

TEST_F(VhostUserBackendTest, RpmbThroughTheVirtqueue) {
  VhostUserFrontend frontend(socket_path_);
  frontend.start();
  VirtioRpmbChannel channel(frontend);
  rpmb::Host host(channel, test_key());
  EXPECT_EQ(host.read_counter().result, static_cast<std::uint16_t>(rpmb::ResultCode::key_not_programmed));
  ASSERT_TRUE(host.program_key(test_key()).ok());
  Bytes data(32 * rpmb::kHalfSectorSize);
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<std::uint8_t>(i ^ (i >> 7));
  ASSERT_TRUE(host.write(10, data.data(), 1).ok());
  ASSERT_TRUE(host.write(32, data.data(), 32).ok());
  const rpmb::HostResult read = host.read(32, 32);
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(read.data, data);
  EXPECT_EQ(channel.last_used_length(), 32u * 512u);
  EXPECT_EQ(host.read_counter().write_counter, 2u);
  // Out of range: address failure in the result, counter unchanged.
  EXPECT_EQ(host.write(2048, data.data(), 1).result, static_cast<std::uint16_t>(rpmb::ResultCode::address_failure));
  EXPECT_EQ(host.read_counter().write_counter, 2u);
  // One interrupt per used element: no EVENT_IDX, and the driver never set NO_INTERRUPT.
  EXPECT_GE(frontend.used_elements(), 9u);
  EXPECT_EQ(frontend.wait_interrupts(frontend.used_elements()), frontend.used_elements());
  EXPECT_GE(daemon_->backend().chains_served(), 9u);
}

// As User-Mode Linux drives a device: in-band kicks acknowledged once the card has answered,
// calls on the back-end channel, no kick or call descriptors.
TEST_F(VhostUserBackendTest, RpmbInUserModeLinuxOrderWithInbandNotifications) {
  VhostUserFrontend::Options options;
  options.order = VhostUserFrontend::Order::uml;
  VhostUserFrontend frontend(socket_path_, options);
  frontend.start();
  EXPECT_TRUE(frontend.inband());
  EXPECT_EQ(frontend.config(), (Bytes{4, 32, 255}));
  VirtioRpmbChannel channel(frontend);
  rpmb::Host host(channel, test_key());
  ASSERT_TRUE(host.program_key(test_key()).ok());
  Bytes data(32 * rpmb::kHalfSectorSize);
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<std::uint8_t>(i * 3);
  ASSERT_TRUE(host.write(64, data.data(), 32).ok());
  const rpmb::HostResult read = host.read(64, 32);
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(read.data, data);
  EXPECT_EQ(host.read_counter().write_counter, 1u);
  // Each chain's answer was in guest memory when its kick was acknowledged; one call each.
  EXPECT_EQ(frontend.wait_interrupts(frontend.used_elements()), frontend.used_elements());
  EXPECT_EQ(daemon_->lines_containing(spdlog::level::debug, "requestq started (16 entries, at 0, kicked in-band)"), 1u);
}

// virtio 1.2 §5.12: more than max_wr_cnt frames to write, with room for a response: a general
// failure answered by the device, without the card.
TEST_F(VhostUserBackendTest, AWriteOverMaxWrCntIsAnsweredWithAGeneralFailure) {
  VhostUserFrontend frontend(socket_path_);
  frontend.start();
  rpmb::Frame write;
  write.set_request(rpmb::RequestType::authenticated_write);
  write.set_block_count(33);
  rpmb::Frame result_read;
  result_read.set_request(rpmb::RequestType::result_read);
  Bytes frames;
  for (int i = 0; i < 33; ++i) frames.insert(frames.end(), write.bytes(), write.bytes() + rpmb::kFrameSize);
  frames.insert(frames.end(), result_read.bytes(), result_read.bytes() + rpmb::kFrameSize);
  frontend.submit({frames}, {512});
  EXPECT_EQ(frontend.wait_used().length, 512u);
  const rpmb::Frame response = rpmb::Frame::from_bytes(frontend.written().data());
  EXPECT_EQ(response.type(), static_cast<std::uint16_t>(rpmb::ResponseType::authenticated_write));
  EXPECT_EQ(response.result(), static_cast<std::uint16_t>(rpmb::ResultCode::general_failure));
  EXPECT_EQ(daemon_->lines_containing(spdlog::level::warn, "33 frames to write, more than max_wr_cnt 32"), 1u);
  expect_device_works(frontend, 0);
}

TEST_F(VhostUserBackendTest, RingStopsAtItsBaseAndResumesThere) {
  VhostUserFrontend frontend(socket_path_);
  frontend.start();
  {
    VirtioRpmbChannel channel(frontend);
    rpmb::Host host(channel, test_key());
    ASSERT_TRUE(host.program_key(test_key()).ok());
  }
  expect_device_works(frontend, 0);
  const std::uint32_t base = frontend.stop_ring();
  EXPECT_EQ(base, 2u);  // two chains consumed
  // While stopped, a kick does nothing; after a new setup at the same base, requests are served.
  frontend.setup_ring(static_cast<std::uint16_t>(base));
  frontend.require(vu::Request::set_vring_enable, vu::VringState{0, 1});
  expect_device_works(frontend, 0);
}

TEST_F(VhostUserBackendTest, MemorySlotsCanBeAddedAndRemoved) {
  VhostUserFrontend frontend(socket_path_);
  frontend.start();
  const vu::MemoryRegion region = frontend.memory_region();
  EXPECT_NE(frontend.command(vu::Request::add_mem_reg, vu::SingleMemoryRegion{region}, {frontend.memfd()}), 0u)
      << "the same range twice overlaps";
  EXPECT_EQ(frontend.command(vu::Request::rem_mem_reg, vu::SingleMemoryRegion{region}, {frontend.memfd()}), 0u);
  EXPECT_EQ(frontend.command(vu::Request::add_mem_reg, vu::SingleMemoryRegion{region}, {frontend.memfd()}), 0u);
  expect_device_works(frontend, 0);
  EXPECT_NE(frontend.command(vu::Request::rem_mem_reg, vu::SingleMemoryRegion{{0x1000, 0x1000, 0, 0}}, {}), 0u);
}

TEST_F(VhostUserBackendTest, MalformedMessagesAreRefusedAndTheDeviceGoesOn) {
  VhostUserFrontend frontend(socket_path_);
  frontend.start();
  // An unknown request, a queue that does not exist, a bad size, a wrong descriptor count, a
  // write to the read-only config space, features never offered: each acknowledged as failed.
  EXPECT_EQ(frontend.command(static_cast<vu::Request>(99), vu::NoPayload{}), 1u);
  EXPECT_EQ(frontend.command(vu::Request::set_vring_num, vu::VringState{1, 16}), 1u);
  EXPECT_EQ(frontend.command(vu::Request::set_vring_enable, vu::VringState{0, 7}), 1u);
  EXPECT_EQ(frontend.command(vu::Request::set_mem_table, vu::MemoryTable{{frontend.memory_region()}}, {}), 1u);
  EXPECT_EQ(frontend.command(vu::Request::set_config, vu::ConfigSpace{0, 0, {1, 2, 3}}), 1u);
  EXPECT_EQ(frontend.command(vu::Request::set_features, vu::U64Payload{1ull << 29}), 1u);
  EXPECT_EQ(frontend.command(vu::Request::set_vring_num, vu::VringState{0, 16}), 1u) << "the ring is running";
  vu::MemoryRegion beyond = frontend.memory_region();
  beyond.size *= 64;  // more than the memfd holds
  EXPECT_EQ(frontend.command(vu::Request::set_mem_table, vu::MemoryTable{{beyond}}, {frontend.memfd()}), 1u);
  EXPECT_GE(daemon_->lines_containing(spdlog::level::warn, "refused"), 8u);
  expect_device_works(frontend, 0);
}

TEST_F(VhostUserBackendTest, BrokenFramingClosesTheConnectionAndTheNextFrontEndIsServed) {
  {
    VhostUserFrontend frontend(socket_path_);
    frontend.start();
    Bytes bad = vu::encode_message(1, 0x2, vu::NoPayload{});  // version 2
    frontend.send_raw(bad);
    EXPECT_TRUE(frontend.closed_by_back_end());
  }
  {
    VhostUserFrontend frontend(socket_path_);
    frontend.start();
    frontend.send_raw(vu::encode_message(1, vu::kVersion, vu::U64Payload{0}));  // GET_FEATURES with a payload
    EXPECT_TRUE(frontend.closed_by_back_end()) << "a bad request that expects a reply closes the connection";
  }
  {
    VhostUserFrontend frontend(socket_path_);
    Bytes huge = vu::encode_message(2, vu::kVersion, vu::U64Payload{0});
    const std::uint32_t size = 1u << 20;
    std::memcpy(huge.data() + 8, &size, 4);
    frontend.send_raw(huge);
    EXPECT_TRUE(frontend.closed_by_back_end());
  }
  EXPECT_EQ(daemon_->lines_containing(spdlog::level::warn, "protocol version 2, expected 1; closing"), 1u);
  EXPECT_EQ(daemon_->lines_containing(spdlog::level::warn, "(the front-end expects a reply); closing"), 1u);
  EXPECT_EQ(daemon_->lines_containing(spdlog::level::warn, "payload of 1048576 bytes (at most 4096); closing"), 1u);
  EXPECT_EQ(daemon_->lines_containing(spdlog::level::warn, "wait already"), 0u);
  VhostUserFrontend frontend(socket_path_);
  frontend.start();
  expect_device_works(frontend, 0);
}

// A burst of twenty thousand messages in one write is taken one after the other, and the
// back-end answers the next request.
TEST_F(VhostUserBackendTest, ABurstOfMessagesIsTakenOneAfterAnother) {
  VhostUserFrontend frontend(socket_path_);
  frontend.start();
  const Bytes one =
      vu::encode_message(static_cast<std::uint32_t>(vu::Request::set_owner), vu::kVersion, vu::NoPayload{});
  Bytes burst;
  for (int i = 0; i < 20000; ++i) burst.insert(burst.end(), one.begin(), one.end());
  frontend.send_raw(burst);
  EXPECT_EQ(frontend.call_u64(vu::Request::get_queue_num), 1u);
  expect_device_works(frontend, 0);
}

TEST_F(VhostUserBackendTest, HostileChainsAreReturnedUnusedAndTheNextIsServed) {
  VhostUserFrontend frontend(socket_path_);
  frontend.start();
  const std::uint16_t size = frontend.queue_size();
  // A buffer outside guest memory.
  frontend.set_descriptor(0, VhostUserFrontend::kGuestBase + (1 << 20) - 256, 512, 0, 0);
  frontend.publish(0);
  VhostUserFrontend::Used used = frontend.wait_used();
  EXPECT_EQ(used.id, 0u);
  EXPECT_EQ(used.length, 0u);
  // A loop.
  frontend.set_descriptor(0, frontend.guest_address(VhostUserFrontend::kBufferOffset), 512, vring::kDescNext, 1);
  frontend.set_descriptor(1, frontend.guest_address(VhostUserFrontend::kBufferOffset), 512, vring::kDescNext, 0);
  frontend.publish(0);
  EXPECT_EQ(frontend.wait_used().length, 0u);
  // Not an RPMB request: 100 bytes of zeros.
  frontend.submit({Bytes(100)}, {512});
  EXPECT_EQ(frontend.wait_used().length, 0u);
  // 40 frames to write: more than max_wr_cnt.
  frontend.submit({Bytes(40 * 512)}, {512});
  EXPECT_EQ(frontend.wait_used().length, 0u);
  EXPECT_GE(daemon_->lines_containing(spdlog::level::warn, "outside the guest's memory"), 1u);
  EXPECT_GE(daemon_->lines_containing(spdlog::level::warn, "longer than"), 1u);
  EXPECT_GE(daemon_->lines_containing(spdlog::level::warn, "not whole 512-byte frames"), 1u);
  EXPECT_LT(size, 64);
  expect_device_works(frontend, 0);
}

TEST_F(VhostUserBackendTest, ABrokenRingStopsUntilTheFrontEndResetsIt) {
  VhostUserFrontend frontend(socket_path_);
  frontend.start();
  frontend.set_available_index(static_cast<std::uint16_t>(frontend.queue_size() + 5));  // too far ahead
  // The back-end stops the ring (one error line) and still answers messages.
  EXPECT_TRUE(eventually([&] { return daemon_->lines_containing(spdlog::level::err, "requestq stopped") == 1; }));
  EXPECT_EQ(frontend.call_u64(vu::Request::get_queue_num), 1u);
  frontend.stop_ring();
  frontend.setup_ring(0);
  frontend.require(vu::Request::set_vring_enable, vu::VringState{0, 1});
  expect_device_works(frontend, 0);
}

TEST_F(VhostUserBackendTest, ASecondFrontEndWaitsItsTurn) {
  auto first = std::make_unique<VhostUserFrontend>(socket_path_);
  first->start();
  VhostUserFrontend second(socket_path_);
  ASSERT_TRUE(eventually([&] { return daemon_->lines_containing(spdlog::level::info, "front-end 2 waits") == 1; }));
  expect_device_works(*first, 0);  // the first is served meanwhile
  first.reset();
  second.start();  // its handshake is answered once the first is gone
  expect_device_works(second, 0);
  // Beyond kMaxWaiting, front-ends are turned away.
  std::vector<std::unique_ptr<VhostUserFrontend>> queue;
  for (std::size_t i = 0; i < VhostUserBackend::kMaxWaiting; ++i)
    queue.push_back(std::make_unique<VhostUserFrontend>(socket_path_));
  VhostUserFrontend turned_away(socket_path_);
  EXPECT_TRUE(turned_away.closed_by_back_end());
  EXPECT_EQ(daemon_->lines_containing(spdlog::level::warn, "wait already"), 1u);
}

TEST_F(VhostUserBackendTest, StateOutlivesTheFrontEnd) {
  {
    VhostUserFrontend frontend(socket_path_);
    frontend.start();
    VirtioRpmbChannel channel(frontend);
    rpmb::Host host(channel, test_key());
    ASSERT_TRUE(host.program_key(test_key()).ok());
    const Bytes data(rpmb::kHalfSectorSize, 0x42);
    ASSERT_TRUE(host.write(5, data.data(), 1).ok());
  }
  // The VM is gone; the next one finds the key and the counter where they were.
  VhostUserFrontend frontend(socket_path_);
  frontend.start();
  expect_device_works(frontend, 1);
}

}  // namespace
}  // namespace emmcsim::transport
