// The VhostUserDevice trait served by VhostUserBackend, with a small echo device of two queues —
// a requestq that echoes each chain's readable bytes into its writable ones (at once, or later
// from another thread), and an eventq whose buffers the device fills unasked, from any thread —
// driven by VhostUserFrontend in QEMU's order (eventfds) and in User-Mode Linux's (in-band kicks
// acknowledged with REPLY_ACK, calls as VHOST_USER_BACKEND_VRING_CALL on the back-end channel,
// rings without kick descriptors). What a device needs for virtio-pcidev, without the PCI parts.
#include <gtest/gtest.h>
#include <spdlog/logger.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <sys/socket.h>

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <chrono>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "emmcsim/transport/vhost_user_backend.hpp"
#include "emmcsim/transport/vhost_user_device.hpp"
#include "emmcsim/transport/vhost_user_frontend.hpp"
#include "scratch_directory.hpp"

namespace emmcsim::transport {
namespace {

namespace asio = boost::asio;
namespace vu = vhost_user;
using Bytes = std::vector<std::uint8_t>;
using namespace std::chrono_literals;

Bytes bytes_of(const std::string& s) { return Bytes(s.begin(), s.end()); }

// Queue 0 (requestq): each chain's readable bytes are written back into its writable buffers —
// at once, or (asynchronous) from a worker thread after `delay`. Queue 1 (eventq): raise() hands
// the device an event from any thread; the device puts it into the next buffer the driver
// posted, and holds it until there is one.
class EchoDevice final : public VhostUserDevice {
 public:
  static constexpr std::uint32_t kId = 0xEC;
  explicit EchoDevice(std::uint64_t protocol_features = kSupportedProtocolFeatures)
      : protocol_features_(protocol_features) {}
  ~EchoDevice() override { join_workers(); }

  // Waits for every answer still on its way. A worker holds the ring state (and its strand), so
  // this must run while the back-end's io_context still exists: the Harness calls it first.
  void join_workers() {
    std::vector<std::thread> workers;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      workers.swap(workers_);
    }
    for (auto& t : workers) t.join();
  }

  void answer_later(std::chrono::milliseconds delay) { delay_ = delay; }

  // From any thread.
  void raise(Bytes event) {
    std::shared_ptr<DeviceQueues> queues;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      queues = queues_;
    }
    ASSERT_NE(queues, nullptr) << "no front-end";
    queues->post([this, event = std::move(event)](DeviceQueues& q) {
      held_events_.push_back(event);
      deliver_events(q);
    });
  }

  // From any thread: tells the driver the config space changed.
  void change_config() {
    std::lock_guard<std::mutex> lock(mutex_);
    ASSERT_NE(queues_, nullptr) << "no front-end";
    queues_->post([](DeviceQueues& q) { q.config_changed(); });
  }

  int starts() const { return starts_; }
  int stops() const { return stops_; }
  int resets() const { return resets_; }
  int ready_events() const { return ready_; }

  // ---- VhostUserDevice ----
  std::uint32_t device_id() const override { return kId; }
  std::uint64_t device_features() const override { return vu::feature::kVersion1; }
  std::uint64_t protocol_features() const override { return protocol_features_; }
  std::size_t queue_count() const override { return 2; }
  std::uint32_t max_queue_size() const override { return 256; }
  std::string queue_name(std::size_t queue) const override { return queue == 0 ? "requestq" : "eventq"; }
  std::optional<Bytes> read_config(std::uint32_t offset, std::uint32_t size) const override {
    const Bytes config{0xEC, 0x40, 0x00, 0x02};
    if (offset > config.size() || size > config.size() - offset) return std::nullopt;
    return Bytes(config.begin() + offset, config.begin() + offset + size);
  }
  void start(const std::shared_ptr<DeviceQueues>& queues) override {
    std::lock_guard<std::mutex> lock(mutex_);
    queues_ = queues;
    ++starts_;
  }
  void stop() override {
    std::lock_guard<std::mutex> lock(mutex_);
    queues_.reset();
    held_events_.clear();
    ++stops_;
  }
  void reset(DeviceQueues&) override { ++resets_; }
  void queue_ready(DeviceQueues&, std::size_t, bool) override { ++ready_; }

  void queue_event(DeviceQueues& queues, std::size_t queue) override {
    if (queue == 1) return deliver_events(queues);
    while (std::optional<DescriptorChain> chain = queues.pop(0)) {
      if (delay_.count() == 0) {
        queues.complete(0, chain->head, echo(*chain));
        continue;
      }
      // Later, from another thread, back through post().
      auto shared = std::make_shared<DescriptorChain>(std::move(*chain));
      std::lock_guard<std::mutex> lock(mutex_);
      workers_.emplace_back([q = queues.shared_from_this(), shared, delay = delay_] {
        std::this_thread::sleep_for(delay);
        const std::uint32_t written = echo(*shared);
        q->post([shared, written](DeviceQueues& on_strand) { on_strand.complete(0, shared->head, written); });
      });
    }
  }

 private:
  static std::uint32_t echo(const DescriptorChain& chain) {
    const Bytes in = chain.gather(chain.readable_bytes);
    return static_cast<std::uint32_t>(chain.scatter(in.data(), in.size()));
  }
  // On the strand: each held event into the next posted buffer, while there are both.
  void deliver_events(DeviceQueues& queues) {
    while (!held_events_.empty()) {
      std::optional<DescriptorChain> buffer = queues.pop(1);
      if (!buffer) return;  // held until the driver posts one and kicks
      const Bytes& event = held_events_.front();
      const auto written = static_cast<std::uint32_t>(buffer->scatter(event.data(), event.size()));
      held_events_.erase(held_events_.begin());
      queues.complete(1, buffer->head, written);
    }
  }

  std::uint64_t protocol_features_;
  std::chrono::milliseconds delay_{0};
  std::mutex mutex_;  // queues_, workers_ (the strand and the test thread meet there)
  std::shared_ptr<DeviceQueues> queues_;
  std::vector<std::thread> workers_;
  std::vector<Bytes> held_events_;  // on the strand
  std::atomic<int> starts_{0}, stops_{0}, resets_{0}, ready_{0};
};

class Harness {
 public:
  Harness(const std::string& socket_path, EchoDevice& device)
      : device_(device),
        sink_(std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(1024)),
        log_(std::make_shared<spdlog::logger>("vhost-user-device-test", sink_)),
        backend_(io_, device, log_, socket_path),
        work_(asio::make_work_guard(io_)) {
    log_->set_level(spdlog::level::debug);
    backend_.start();
    for (int i = 0; i < 2; ++i) threads_.emplace_back([this] { io_.run(); });
  }
  ~Harness() {
    device_.join_workers();  // before the io_context (and the strands of its ring state) goes
    std::promise<void> stopped;
    asio::post(io_, [&] {
      backend_.stop();
      stopped.set_value();
    });
    stopped.get_future().wait();
    work_.reset();
    for (auto& t : threads_) t.join();
  }
  VhostUserBackend& backend() { return backend_; }
  std::size_t lines_containing(spdlog::level::level_enum level, const std::string& text) const {
    std::size_t n = 0;
    for (const auto& m : sink_->last_raw())
      if (m.level == level && std::string(m.payload.data(), m.payload.size()).find(text) != std::string::npos) ++n;
    return n;
  }

 private:
  EchoDevice& device_;
  asio::io_context io_;
  std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> sink_;
  std::shared_ptr<spdlog::logger> log_;
  VhostUserBackend backend_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::vector<std::thread> threads_;
};

template <typename Condition>
bool eventually(Condition condition) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

VhostUserFrontend::Options two_queues(VhostUserFrontend::Order order) {
  VhostUserFrontend::Options o;
  o.order = order;
  o.queues = 2;
  o.config_size = 4;
  return o;
}

class VhostUserDeviceTest : public ::testing::Test {
 protected:
  void SetUp() override { socket_path_ = dir_.path() + "/vhost.sock"; }
  testing::ScratchDirectory dir_;
  std::string socket_path_;
};

TEST_F(VhostUserDeviceTest, TwoRingsInQemuOrderWithEventfds) {
  EchoDevice device;
  Harness harness(socket_path_, device);
  VhostUserFrontend vm(socket_path_, two_queues(VhostUserFrontend::Order::qemu));
  vm.start();
  EXPECT_EQ(vm.queue_count(), 2u);
  EXPECT_EQ(vm.config(), (Bytes{0xEC, 0x40, 0x00, 0x02}));
  EXPECT_FALSE(vm.inband());
  // requestq: answered at once.
  vm.submit({bytes_of("hello")}, {16}, 0);
  const VhostUserFrontend::Used used = vm.wait_used(10s, 0);
  EXPECT_EQ(used.length, 5u);
  const Bytes echoed = vm.written(0);
  EXPECT_EQ(Bytes(echoed.begin(), echoed.begin() + 5), bytes_of("hello"));
  EXPECT_EQ(vm.wait_interrupts(1, 10s, 0), 1u);
  // eventq: the device fills posted buffers when it has something to say.
  vm.post_writable(4, 8, 1);
  device.raise(bytes_of("irq1"));
  const VhostUserFrontend::Used event = vm.wait_used(10s, 1);
  EXPECT_EQ(event.length, 4u);
  const Bytes posted = vm.posted_buffer(event.id, 1);
  EXPECT_EQ(Bytes(posted.begin(), posted.begin() + 4), bytes_of("irq1"));
  EXPECT_EQ(vm.wait_interrupts(1, 10s, 1), 1u);
  EXPECT_EQ(device.starts(), 1);
  EXPECT_EQ(device.ready_events(), 2);  // both rings started
  EXPECT_EQ(harness.backend().chains_served(), 2u);
}

// User-Mode Linux's way: no kick descriptors (rings start without them), kicks as
// VHOST_USER_VRING_KICK acknowledged only once the device has answered, calls on the channel.
TEST_F(VhostUserDeviceTest, InbandKickIsAcknowledgedOnlyAfterTheDeviceAnswered) {
  EchoDevice device;
  device.answer_later(50ms);  // from another thread, after the kick arrived
  Harness harness(socket_path_, device);
  VhostUserFrontend vm(socket_path_, two_queues(VhostUserFrontend::Order::uml));
  vm.start();
  EXPECT_TRUE(vm.inband());
  EXPECT_NE(vm.protocol_features() & vu::protocol_feature::kBackendReq, 0u);
  EXPECT_NE(vm.backend_channel_fd(), -1);
  EXPECT_EQ(harness.lines_containing(spdlog::level::debug, "requestq started (16 entries, at 0, kicked in-band)"), 1u);
  EXPECT_EQ(harness.lines_containing(spdlog::level::debug, "eventq started (16 entries, at 0, kicked in-band)"), 1u);
  for (int i = 0; i < 3; ++i) {
    const auto before = std::chrono::steady_clock::now();
    vm.submit({bytes_of("read " + std::to_string(i))}, {64}, 0);  // returns once the kick is acknowledged
    EXPECT_GE(std::chrono::steady_clock::now() - before, 50ms) << "acknowledged before the device answered";
    // The answer is in guest memory already, as UML's virt-pci expects when it polls.
    const std::optional<VhostUserFrontend::Used> used = vm.take_used(0);
    ASSERT_TRUE(used.has_value()) << "the kick was acknowledged before the used element was there";
    EXPECT_EQ(used->length, 6u);
    EXPECT_EQ(vm.wait_interrupts(static_cast<std::uint64_t>(i) + 1, 10s, 0), static_cast<std::uint64_t>(i) + 1)
        << "one VHOST_USER_BACKEND_VRING_CALL per used element";
  }
}

TEST_F(VhostUserDeviceTest, DeviceInitiatedUsedBuffersAreCalledOnTheChannel) {
  EchoDevice device;
  Harness harness(socket_path_, device);
  VhostUserFrontend vm(socket_path_, two_queues(VhostUserFrontend::Order::uml));
  vm.start();
  vm.post_writable(2, 8, 1);  // acknowledged at once: the device holds no chain
  std::thread interrupter([&] {
    device.raise(bytes_of("one"));
    device.raise(bytes_of("two"));
    device.raise(bytes_of("three"));  // no buffer left for it: held
  });
  interrupter.join();
  const VhostUserFrontend::Used first = vm.wait_used(10s, 1);
  const VhostUserFrontend::Used second = vm.wait_used(10s, 1);
  const Bytes one = vm.posted_buffer(first.id, 1);
  EXPECT_EQ(Bytes(one.begin(), one.begin() + 3), bytes_of("one"));
  EXPECT_EQ(second.length, 3u);
  EXPECT_EQ(vm.wait_interrupts(2, 10s, 1), 2u);
  EXPECT_FALSE(vm.take_used(1).has_value());
  // The driver posts another buffer and kicks: the held event goes into it.
  vm.post_writable(1, 8, 1);
  const std::optional<VhostUserFrontend::Used> third = vm.take_used(1);
  ASSERT_TRUE(third.has_value()) << "the held event was delivered before the kick's acknowledgement";
  EXPECT_EQ(third->length, 5u);
  const Bytes three = vm.posted_buffer(third->id, 1);
  EXPECT_EQ(Bytes(three.begin(), three.begin() + 5), bytes_of("three"));
  EXPECT_EQ(vm.wait_interrupts(3, 10s, 1), 3u);
  EXPECT_EQ(vm.interrupts(0), 0u);
  // A config change travels the same channel.
  device.change_config();
  EXPECT_TRUE(eventually([&] {
    vm.drain_backend_channel();
    return vm.config_changes() == 1;
  }));
}

// The channel is never waited on: a front-end that does not read its calls for a while (UML
// blocked on a kick's acknowledgement) stalls nothing, and the calls it has not read are
// coalesced rather than queued without bound.
TEST_F(VhostUserDeviceTest, TheBackEndNeverWaitsForTheChannel) {
  EchoDevice device;
  Harness harness(socket_path_, device);
  VhostUserFrontend vm(socket_path_, two_queues(VhostUserFrontend::Order::uml));
  vm.start();
  constexpr int kChains = 4000;
  for (int i = 0; i < kChains; ++i) {
    vm.submit({bytes_of("x")}, {8}, 0);  // each kick acknowledged while nobody reads the channel
    ASSERT_TRUE(vm.take_used(0).has_value());
  }
  vm.drain_backend_channel();
  EXPECT_TRUE(eventually([&] {
    vm.drain_backend_channel();
    return vm.interrupts(0) > 0;
  }));
  // The socket took a few hundred calls (its default send buffer, about 200 KiB of small
  // messages); the rest waited as one and were coalesced.
  const std::uint64_t calls = vm.interrupts(0);
  EXPECT_LT(calls, static_cast<std::uint64_t>(kChains));
  // Drained, the channel carries the next call again.
  vm.submit({bytes_of("y")}, {8}, 0);
  ASSERT_TRUE(vm.take_used(0).has_value());
  EXPECT_TRUE(eventually([&] {
    vm.drain_backend_channel();
    return vm.interrupts(0) > calls;
  }));
  EXPECT_EQ(harness.lines_containing(spdlog::level::warn, "channel failed"), 0u);
}

// The back-end offers what the device wants of what it implements: without BACKEND_REQ and
// INBAND_NOTIFICATIONS, UML's order falls back to kick eventfds and call sockets.
TEST_F(VhostUserDeviceTest, ProtocolFeaturesFollowTheDevice) {
  EchoDevice device(vu::protocol_feature::kReplyAck | vu::protocol_feature::kConfig | (1ull << 40));
  Harness harness(socket_path_, device);
  EXPECT_EQ(harness.backend().offered_protocol_features(),
            vu::protocol_feature::kReplyAck | vu::protocol_feature::kConfig);
  VhostUserFrontend vm(socket_path_, two_queues(VhostUserFrontend::Order::uml));
  vm.start();
  EXPECT_FALSE(vm.inband());
  EXPECT_EQ(vm.backend_channel_fd(), -1);
  vm.submit({bytes_of("fds")}, {8}, 0);
  EXPECT_EQ(vm.wait_used(10s, 0).length, 3u);
  EXPECT_EQ(vm.wait_interrupts(1, 10s, 0), 1u) << "8 bytes on the call socket";
  // What was not negotiated is refused, and the connection goes on.
  int pair[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
  EXPECT_EQ(vm.command(vu::Request::set_backend_req_fd, vu::NoPayload{}, {pair[1]}), 1u);
  ::close(pair[0]);
  ::close(pair[1]);
  EXPECT_EQ(vm.command(vu::Request::vring_kick, vu::VringState{0, 0}), 1u);
  EXPECT_EQ(vm.command(vu::Request::set_vring_kick, vu::VringFile{0, false}), 1u) << "polling is not offered";
  EXPECT_GE(harness.lines_containing(spdlog::level::warn, "was not negotiated"), 2u);
  vm.submit({bytes_of("still")}, {8}, 0);
  EXPECT_EQ(vm.wait_used(10s, 0).length, 5u);
}

TEST_F(VhostUserDeviceTest, BadInbandKicksAreRefused) {
  EchoDevice device;
  Harness harness(socket_path_, device);
  VhostUserFrontend vm(socket_path_, two_queues(VhostUserFrontend::Order::uml));
  vm.start();
  EXPECT_EQ(vm.command(vu::Request::vring_kick, vu::VringState{2, 0}), 1u);  // no such queue
  EXPECT_EQ(vm.command(vu::Request::vring_kick, vu::VringState{0, 1}), 1u);  // num is reserved
  EXPECT_EQ(vm.command(vu::Request::vring_kick, vu::VringState{0, 0}), 0u);  // nothing available: fine
  // With in-band kicks negotiated, SET_VRING_KICK without a descriptor is accepted.
  EXPECT_EQ(vm.command(vu::Request::set_vring_kick, vu::VringFile{1, false}), 0u);
  EXPECT_EQ(harness.lines_containing(spdlog::level::warn, "VHOST_USER_VRING_KICK refused"), 2u);
  vm.submit({bytes_of("ok")}, {8}, 0);
  EXPECT_TRUE(vm.take_used(0).has_value());
}

TEST_F(VhostUserDeviceTest, TheDeviceHearsOfConnectionsAndResets) {
  EchoDevice device;
  Harness harness(socket_path_, device);
  {
    VhostUserFrontend vm(socket_path_, two_queues(VhostUserFrontend::Order::uml));
    vm.start();
    EXPECT_EQ(device.starts(), 1);
    vm.require(vu::Request::reset_device, vu::NoPayload{});
    EXPECT_EQ(device.resets(), 1);
    EXPECT_EQ(vm.command(vu::Request::vring_kick, vu::VringState{0, 0}), 0u) << "a kick of a stopped ring is no error";
  }
  ASSERT_TRUE(eventually([&] { return device.stops() == 1; }));
  EXPECT_EQ(harness.lines_containing(spdlog::level::info, "disconnected (the front-end closed the connection)"), 1u);
  // A new front-end gets a fresh start; work posted for the old one was dropped.
  VhostUserFrontend vm(socket_path_, two_queues(VhostUserFrontend::Order::qemu));
  vm.start();
  EXPECT_EQ(device.starts(), 2);
  vm.submit({bytes_of("again")}, {8}, 0);
  EXPECT_EQ(vm.wait_used(10s, 0).length, 5u);
}

TEST_F(VhostUserDeviceTest, DevicesTheBackEndCannotServeAreRefused) {
  class Bad final : public VhostUserDevice {
   public:
    Bad(std::size_t queues, std::uint32_t max_size, std::uint64_t features)
        : queues_(queues), max_size_(max_size), features_(features) {}
    std::uint32_t device_id() const override { return 1; }
    std::uint64_t device_features() const override { return features_; }
    std::uint64_t protocol_features() const override { return 0; }
    std::size_t queue_count() const override { return queues_; }
    std::uint32_t max_queue_size() const override { return max_size_; }
    std::optional<Bytes> read_config(std::uint32_t, std::uint32_t) const override { return std::nullopt; }
    void queue_event(DeviceQueues&, std::size_t) override {}

   private:
    std::size_t queues_;
    std::uint32_t max_size_;
    std::uint64_t features_;
  };
  asio::io_context io;
  auto log = std::make_shared<spdlog::logger>("bad");
  Bad no_queues(0, 256, 0), odd_size(1, 100, 0), event_idx(1, 256, vu::feature::kRingEventIdx);
  EXPECT_THROW((VhostUserBackend(io, no_queues, log, socket_path_)), std::invalid_argument);
  EXPECT_THROW((VhostUserBackend(io, odd_size, log, socket_path_)), std::invalid_argument);
  EXPECT_THROW((VhostUserBackend(io, event_idx, log, socket_path_)), std::invalid_argument);
}

}  // namespace
}  // namespace emmcsim::transport
