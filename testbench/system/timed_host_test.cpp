// The host layer over the timed model: host code written against mmc::HostBus (the host
// sequences, RpmbBusChannel, LinuxBlockDriver) running over models::EmmcBusHost, and the pieces
// that feed the SystemC kernel from other threads (JobQueue, JobThread, KernelThread,
// LinuxDriverHost, TimedBlockDevice). Times are checked against the cycle counts of spec/emmc.md,
// written out here. Each test is its own SystemC elaboration (system_scenario.hpp).
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <atomic>
#include <cstdint>
#include <exception>
#include <future>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "emmcsim/mmc/host_sequences.hpp"
#include "emmcsim/mmc/image.hpp"
#include "emmcsim/mmc/linux_block_driver.hpp"
#include "emmcsim/models/emmc_device.hpp"
#include "emmcsim/models/job_queue.hpp"
#include "emmcsim/models/kernel_thread.hpp"
#include "emmcsim/models/linux_driver_host.hpp"
#include "emmcsim/models/time_gate.hpp"
#include "emmcsim/models/timed_block_device.hpp"
#include "emmcsim/rpmb/host.hpp"
#include "system_scenario.hpp"

namespace emmcsim::testing {
namespace {

using models::EmmcBusHost;
using models::TimingProfile;
namespace ec = mmc::ext_csd;
namespace mmcblk = mmc::mmcblk;

constexpr std::uint64_t kNs = 1000;  // ps
constexpr std::uint64_t kIdentHz = 400'000;
// Cycle counts of spec/emmc.md.
constexpr std::uint64_t kShortCommand = 48 + 2 + 48 + 8;  // command, N_CR, R1/R3, N_RC
constexpr std::uint64_t kLongCommand = 48 + 2 + 136 + 8;  // R2
constexpr std::uint64_t kNoResponse = 48 + 64 + 8;        // the host waits N_CR max
// CMD1 and CMD2 answer N_ID = 5 cycles after the command; CMD0 costs the command and N_CC.
constexpr std::uint64_t kIdentShortCommand = 48 + 5 + 48 + 8;
constexpr std::uint64_t kIdentLongCommand = 48 + 5 + 136 + 8;
constexpr std::uint64_t kBroadcastCommand = 48 + 8;
constexpr std::uint64_t kBlock1Bit = 2 + 1 + 4096 + 16 + 1;  // N_AC min, start bit, 512 bytes on DAT0, CRC, end bit
// At HS400's 200 MHz one cycle is 5 ns: an R1 command, a block at 8-bit DDR, N_AC min.
constexpr std::uint64_t kHs400Command = kShortCommand * 5 * kNs;
constexpr std::uint64_t kHs400ReadBlock = (1 + 256 + 16 + 1) * 5 * kNs;
constexpr std::uint64_t kHs400NacMin = 2 * 5 * kNs;

TimingProfile test_profile() {
  TimingProfile p;
  p.page_read = 40 * models::kMicrosecond;
  return p;
}

rpmb::Key test_key() {
  rpmb::Key key{};
  for (std::size_t i = 0; i < key.size(); ++i) key[i] = static_cast<std::uint8_t>(0x30 + i);
  return key;
}

std::vector<std::uint8_t> pattern(std::size_t n, std::uint8_t seed) {
  std::vector<std::uint8_t> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::uint8_t>(seed + i * 11 + i / 512);
  return v;
}

// A device on a RAM image and a TestHost running `body`, bound and simulated to the end.
struct Rig {
  explicit Rig(std::function<void(EmmcBusHost&)> body)
      : config(mmc::default_device_config()),
        image(config),
        device("card", config, image.backend(), test_profile()),
        host("host", kIdentHz, std::move(body)) {
    host.bus.bind(device.bus);
  }
  void run() {
    sc_core::sc_start();
    EXPECT_TRUE(host.finished()) << "the scenario did not run to its end";
  }
  mmc::DeviceConfig config;
  mmc::MemoryImage image;
  models::EmmcDevice device;
  TestHost host;
};

class HostBusOverTheTimedModel : public SystemScenario {};

TEST_F(HostBusOverTheTimedModel, BringUpAndExtCsdTakeEachCommandsCyclesAt400kHz) {
  std::uint64_t selected = 0, read = 0;
  mmc::ExtCsd ext_csd{};
  Rig rig([&](EmmcBusHost& host) {
    mmc::identify_and_select(host);
    selected = now_ps();
    ext_csd = mmc::read_ext_csd(host);
    read = now_ps();
  });
  rig.run();
  const std::uint64_t cycle = cycles_ps(1, kIdentHz);
  // CMD0, three CMD1 (the default configuration answers busy twice), CMD2, CMD3, CMD7.
  EXPECT_EQ(selected, (kBroadcastCommand + 3 * kIdentShortCommand + kIdentLongCommand + 2 * kShortCommand) * cycle);
  EXPECT_EQ(read - selected, (kShortCommand + kBlock1Bit) * cycle) << "CMD8 and one block on one data line";
  EXPECT_EQ(read, 12'535'000'000u) << "12.535 ms, as the install consumer's controller takes";
  EXPECT_EQ(ext_csd, rig.device.card().ext_csd());
}

TEST_F(HostBusOverTheTimedModel, TheDriverAndAnRpmbHostShareTheBus) {
  const rpmb::Key key = test_key();
  const std::vector<std::uint8_t> user_data = pattern(4096, 3);
  const std::vector<std::uint8_t> rpmb_data = pattern(256, 9);
  mmcblk::BlockWriteReply written;
  mmcblk::BlockReadReply read_back;
  rpmb::HostResult programmed, rpmb_written, rpmb_read, counter;
  std::uint8_t partition_config_after = 0xFF;
  std::uint64_t rpmb_write_ps = 0;
  Rig rig([&](EmmcBusHost& host) {
    mmc::LinuxBlockDriver driver(host);
    written = driver.write(mmcblk::BlockWriteRequest{mmcblk::Node::user, 1 << 20, user_data});
    mmc::RpmbBusChannel channel(host, driver.partition_config());
    rpmb::Host rpmb_host(channel, key);
    programmed = rpmb_host.program_key(key);
    const std::uint64_t before = now_ps();
    rpmb_written = rpmb_host.write(7, rpmb_data.data(), 1);
    rpmb_write_ps = now_ps() - before;
    rpmb_read = rpmb_host.read(7, 1);
    counter = rpmb_host.read_counter(rpmb::Nonce{});
    partition_config_after = mmc::read_ext_csd(host)[ec::kPartitionConfig];
    read_back = driver.read(mmcblk::BlockReadRequest{mmcblk::Node::user, 1 << 20, 4096});
  });
  rig.run();
  EXPECT_EQ(written.status.error, 0);
  EXPECT_NE(written.status.flags & mmcblk::ReplyStatus::kTimed, 0u);
  EXPECT_TRUE(programmed.ok());
  EXPECT_TRUE(rpmb_written.ok());
  EXPECT_TRUE(rpmb_read.ok());
  EXPECT_EQ(rpmb_read.data, rpmb_data);
  EXPECT_TRUE(counter.ok());
  EXPECT_EQ(counter.write_counter, 1u);
  // The channel switched back to the user area, where the driver believes the card is.
  EXPECT_EQ(partition_config_after & 7u, 0u);
  EXPECT_GT(rpmb_write_ps, 1 * models::kMillisecond) << "an authenticated write waits for its commit";
  EXPECT_EQ(read_back.status.error, 0);
  EXPECT_EQ(read_back.data, user_data);
}

// ---- Jobs from other threads ---------------------------------------------------------------

class JobsFromOtherThreads : public SystemScenario {};

TEST_F(JobsFromOtherThreads, RunInOrderInTheKernelThreadAndMayWait) {
  models::JobThread worker("worker");
  std::vector<int> order;
  std::vector<std::uint64_t> times;
  std::thread::id kernel_thread;
  std::promise<void> all_ran;
  models::KernelThread kernel;
  std::thread poster([&] {
    for (int i = 0; i < 5; ++i) {
      worker.post([&, i] {
        kernel_thread = std::this_thread::get_id();
        order.push_back(i);
        sc_core::wait(10, sc_core::SC_NS);  // a job runs in the worker's SC_THREAD
        times.push_back(now_ps());
      });
    }
    worker.post([&] {
      all_ran.set_value();
      sc_core::sc_stop();
    });
  });
  all_ran.get_future().get();
  poster.join();
  kernel.join();
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4}));
  EXPECT_EQ(times, (std::vector<std::uint64_t>{10 * kNs, 20 * kNs, 30 * kNs, 40 * kNs, 50 * kNs}))
      << "one job at a time: each waits after the one before it";
  EXPECT_NE(kernel_thread, std::this_thread::get_id());
  EXPECT_NE(kernel_thread, std::thread::id());
}

TEST_F(JobsFromOtherThreads, AfterCloseNoJobRunsAndTheSimulationEndsOnItsOwn) {
  models::JobThread worker("worker");
  std::atomic<int> ran{0};
  std::promise<void> closed;
  models::KernelThread kernel;
  worker.post([&] { ++ran; });
  worker.post([&] {
    ++ran;
    worker.close();
    closed.set_value();
  });
  worker.post([&] { ++ran; });  // queued before the close: dropped
  closed.get_future().get();
  worker.post([&] { ++ran; });  // posted after it: dropped
  kernel.join();                // no sc_stop(): nothing is left to do, nothing keeps the kernel waiting
  EXPECT_EQ(ran, 2);
}

TEST_F(JobsFromOtherThreads, AJobThatThrowsEndsTheKernelAndIsReported) {
  models::JobThread worker("worker");
  std::string failure;
  models::KernelThread kernel([&](const std::string& what) { failure = what; });
  worker.post([] { throw std::runtime_error("the job failed"); });
  kernel.join();
  EXPECT_EQ(failure.rfind("SystemC kernel: ", 0), 0u) << failure;
  EXPECT_NE(failure.find("the job failed"), std::string::npos) << failure;
}

// ---- LinuxDriverHost in a platform of its own ----------------------------------------------

class LinuxDriverHostScenario : public SystemScenario {};

TEST_F(LinuxDriverHostScenario, ProbesThenRunsThePostedJobsWithTheDriver) {
  const mmc::DeviceConfig config = mmc::default_device_config();
  mmc::MemoryImage image(config);
  models::EmmcDevice device("card", config, image.backend(), test_profile());
  std::exception_ptr probe_failure;
  bool probed = false;
  std::uint64_t probe_ended = 0;
  models::LinuxDriverHost host("host", [&](std::exception_ptr failure) {
    probed = true;
    probe_failure = failure;
    probe_ended = now_ps();
  });
  host.bus.bind(device.bus);
  mmcblk::DescribeReply described;
  mmcblk::BlockReadReply read;
  std::uint64_t job_started = 0;
  // Posted before the simulation starts: they run after the probe.
  host.post([&](mmc::LinuxBlockDriver& driver) {
    job_started = now_ps();
    described = driver.describe();
  });
  host.post([&](mmc::LinuxBlockDriver& driver) {
    read = driver.read(mmcblk::BlockReadRequest{mmcblk::Node::user, 1 << 20, 4096});
    host.close();  // the simulation ends when nothing is left to do
  });
  sc_core::sc_start();
  ASSERT_TRUE(probed);
  EXPECT_FALSE(probe_failure);
  EXPECT_EQ(host.clock_hz(), 200'000'000u);
  EXPECT_EQ(device.bus_mode().describe(), "HS400 8-bit DDR");
  EXPECT_EQ(job_started, probe_ended);
  EXPECT_EQ(described.node_size[0], config.user_capacity);
  EXPECT_EQ(read.status.error, 0);
  // CMD23, CMD18, the first block after the page read and the others after N_AC min.
  EXPECT_EQ(read.status.simulated_ps,
            2 * kHs400Command + 40 * models::kMicrosecond + 7 * kHs400NacMin + 8 * kHs400ReadBlock);
}

// ---- TimedBlockDevice -----------------------------------------------------------------------

class TimedBlockDeviceScenario : public SystemScenario {};

TEST_F(TimedBlockDeviceScenario, StartProbesAndJobsTimeTheDriversRequests) {
  const mmc::DeviceConfig config = mmc::default_device_config();
  mmc::MemoryImage image(config);
  models::TimedBlockDevice timed(config, image.backend(), test_profile());
  std::vector<models::BusPhase> phases;
  timed.device().on_phase([&](const models::BusPhase& p) { phases.push_back(p); });
  timed.start();
  EXPECT_EQ(timed.bus_description(), "HS400 8-bit DDR at 200 MHz");
  EXPECT_FALSE(phases.empty()) << "the probe's phases were observed";
  const std::vector<std::uint8_t> data = pattern(4096, 5);
  mmcblk::BlockWriteReply written;
  mmcblk::BlockReadReply read;
  timed.run([&](mmc::LinuxBlockDriver& driver) {
    written = driver.write(mmcblk::BlockWriteRequest{mmcblk::Node::user, 1 << 20, data});
  });
  mmcblk::BlockReadReply unwritten;
  timed.run([&](mmc::LinuxBlockDriver& driver) {
    read = driver.read(mmcblk::BlockReadRequest{mmcblk::Node::user, 1 << 20, 4096});
    unwritten = driver.read(mmcblk::BlockReadRequest{mmcblk::Node::user, 2 << 20, 4096});
  });
  EXPECT_EQ(written.status.error, 0);
  EXPECT_NE(written.status.flags & mmcblk::ReplyStatus::kTimed, 0u);
  EXPECT_GT(written.status.simulated_ps, 0u);
  EXPECT_EQ(read.status.error, 0);
  EXPECT_EQ(read.data, data);
  EXPECT_EQ(unwritten.status.error, 0);
  EXPECT_EQ(unwritten.status.simulated_ps,
            2 * kHs400Command + 40 * models::kMicrosecond + 7 * kHs400NacMin + 8 * kHs400ReadBlock)
      << "52.09 us, as the daemon's timed replies say";
}

TEST_F(TimedBlockDeviceScenario, JobsFromManyThreadsRunOneAtATime) {
  const mmc::DeviceConfig config = mmc::default_device_config();
  mmc::MemoryImage image(config);
  models::TimedBlockDevice timed(config, image.backend(), test_profile());
  timed.start();
  struct Span {
    int thread;
    int job;
    std::uint64_t start, end;
  };
  std::vector<Span> spans;  // touched by the kernel thread only
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int j = 0; j < 8; ++j) {
        timed.post([&, t, j](mmc::LinuxBlockDriver& driver) {
          const std::uint64_t start = now_ps();
          driver.read(mmcblk::BlockReadRequest{mmcblk::Node::user, std::uint64_t(t * 8 + j) << 12, 4096});
          spans.push_back(Span{t, j, start, now_ps()});
        });
      }
    });
  }
  for (std::thread& t : threads) t.join();
  timed.run([](mmc::LinuxBlockDriver&) {});  // after every job posted above
  ASSERT_EQ(spans.size(), 32u);
  std::vector<int> next_job(4, 0);
  for (std::size_t i = 0; i < spans.size(); ++i) {
    EXPECT_EQ(spans[i].job, next_job[spans[i].thread]++) << "each thread's jobs in the order it posted them";
    EXPECT_GT(spans[i].end, spans[i].start);
    if (i > 0) {
      EXPECT_GE(spans[i].start, spans[i - 1].end) << "one job at a time";
    }
  }
}

TEST_F(TimedBlockDeviceScenario, RunRethrowsAndFinishEndsTheJobs) {
  const mmc::DeviceConfig config = mmc::default_device_config();
  mmc::MemoryImage image(config);
  models::TimedBlockDevice timed(config, image.backend(), test_profile());
  timed.start();
  EXPECT_THROW(timed.run([](mmc::LinuxBlockDriver&) { throw std::invalid_argument("refused"); }),
               std::invalid_argument);
  int shutdown_error = -1;
  std::promise<void> finished;
  timed.finish([&](mmc::LinuxBlockDriver& driver) {
    shutdown_error = driver.shutdown();
    finished.set_value();
  });
  finished.get_future().get();
  EXPECT_EQ(shutdown_error, 0);
  bool ran = false;
  EXPECT_THROW(timed.run([&](mmc::LinuxBlockDriver&) { ran = true; }), std::future_error)
      << "a job after the last is dropped unrun";
  EXPECT_FALSE(ran);
}

TEST_F(TimedBlockDeviceScenario, AProbeThatFailsIsThrownByStart) {
  const mmc::DeviceConfig config = mmc::default_device_config();
  mmc::MemoryImage image(config);
  models::TimedBlockDevice timed(config, image.backend(), test_profile());
  models::FaultPlan plan;
  plan.faults.push_back(models::Fault{models::FaultKind::command_timeout, 1, 0, 0, 0});  // every CMD1 lost
  timed.device().set_fault_plan(plan);
  try {
    timed.start();
    FAIL() << "the probe succeeded without CMD1";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("CMD1"), std::string::npos) << e.what();
  }
}

// Options::shared_bus: a second host on the bus switch's port 1 reaches the card only while a job
// has selected it; the driver's transactions meanwhile are refused (EmmcBusHost throws
// TransactionRefused: the daemon answers EBUSY before it gets there), and after select(0) and
// reinitialise() the driver finds its data again.
TEST_F(TimedBlockDeviceScenario, ASharedBusGivesTheCardToOneHostAtATime) {
  const mmc::DeviceConfig config = mmc::default_device_config();
  mmc::MemoryImage image(config);
  models::TimedBlockDevice::Options options;
  options.shared_bus = true;
  models::TimedBlockDevice timed(config, image.backend(), test_profile(), options);
  ASSERT_NE(timed.mux(), nullptr);
  sc_core::sc_event given;
  std::promise<mmc::ExtCsd> other_saw;  // the EXT_CSD as the other host read it
  TestHost other("other", kIdentHz, [&](EmmcBusHost& bus) {
    sc_core::wait(given);
    try {
      bus.power_cycle();
      mmc::identify_and_select(bus, 2);
      other_saw.set_value(mmc::read_ext_csd(bus));
    } catch (...) {
      other_saw.set_exception(std::current_exception());
    }
  });
  other.bus.bind(timed.mux()->host[1]);
  timed.start();
  EXPECT_EQ(timed.mux()->selected(), 0u);
  const std::vector<std::uint8_t> data = pattern(4096, 9);
  timed.run([&](mmc::LinuxBlockDriver& driver) {
    ASSERT_EQ(driver.write(mmcblk::BlockWriteRequest{mmcblk::Node::user, 1 << 20, data}).status.error, 0);
    timed.mux()->select(1);
    given.notify(sc_core::SC_ZERO_TIME);
  });
  std::future<mmc::ExtCsd> saw = other_saw.get_future();
  const mmc::ExtCsd expected = mmc::build_ext_csd(config);
  const mmc::ExtCsd got = saw.get();
  EXPECT_EQ(got[ec::kExtCsdRev], expected[ec::kExtCsdRev]) << "the other host identified the card and read its EXT_CSD";
  EXPECT_TRUE(std::equal(got.begin() + 212, got.begin() + 216, expected.begin() + 212)) << "SEC_COUNT";

  EXPECT_THROW(timed.run([&](mmc::LinuxBlockDriver& driver) {
    driver.read(mmcblk::BlockReadRequest{mmcblk::Node::user, 1 << 20, 4096});
  }),
               models::TransactionRefused)
      << "the card is on the other port";
  EXPECT_GT(timed.mux()->refused(), 0u);

  mmcblk::BlockReadReply back;
  std::uint64_t resets = 0;
  timed.run([&](mmc::LinuxBlockDriver& driver) {
    timed.mux()->select(0);
    const std::uint64_t before = driver.card_resets();
    driver.reinitialise();
    resets = driver.card_resets() - before;
    back = driver.read(mmcblk::BlockReadRequest{mmcblk::Node::user, 1 << 20, 4096});
  });
  EXPECT_EQ(resets, 1u);
  EXPECT_EQ(back.status.error, 0);
  EXPECT_EQ(back.data, data);
}

// ---- TimeGate: simulated time held where an outside scheduler grants it -------------------------

// The instants the gate came to rest at, as the calendar hears them (from the kernel thread).
class Rests {
 public:
  void operator()(std::uint64_t ns) {
    std::lock_guard<std::mutex> lock(mutex_);
    rests_.push_back(ns);
    changed_.notify_all();
  }
  // Waits for the next rest not yet taken, and returns its instant (0 after 10 s: a hang fails
  // the test instead of hanging it).
  std::uint64_t next() {
    std::unique_lock<std::mutex> lock(mutex_);
    if (!changed_.wait_for(lock, std::chrono::seconds(10), [&] { return rests_.size() > taken_; })) return 0;
    return rests_[taken_++];
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<std::uint64_t> rests_;
  std::size_t taken_ = 0;
};

class TimeGateScenario : public SystemScenario {};

TEST_F(TimeGateScenario, TimeAdvancesOnlyAsFarAsTheSchedulerGrants) {
  const mmc::DeviceConfig config = mmc::default_device_config();
  mmc::MemoryImage image(config);
  models::TimedBlockDevice::Options options;
  options.time_gate = true;
  models::TimedBlockDevice timed(config, image.backend(), test_profile(), options);
  models::TimeGate& gate = *timed.time_gate();
  Rests rests;
  gate.on_rest([&rests](std::uint64_t ns) { rests(ns); });
  timed.start();  // the probe runs freely: no scheduler yet
  std::uint64_t s0 = 0;
  timed.run([&](mmc::LinuxBlockDriver&) {
    gate.hold();
    s0 = models::TimeGate::ceil_ns(sc_core::sc_time_stamp());
  });
  ASSERT_GT(s0, 0u);
  ASSERT_EQ(rests.next(), s0) << "held where the job left time";

  std::promise<std::pair<mmcblk::BlockReadReply, std::uint64_t>> done;
  std::future<std::pair<mmcblk::BlockReadReply, std::uint64_t>> reply = done.get_future();
  timed.post([&](mmc::LinuxBlockDriver& driver) {
    mmcblk::BlockReadReply r = driver.read(mmcblk::BlockReadRequest{mmcblk::Node::user, 2 << 20, 4096});
    done.set_value({std::move(r), models::TimeGate::ceil_ns(sc_core::sc_time_stamp())});
  });
  gate.grant(s0 + 10'000);
  ASSERT_EQ(rests.next(), s0 + 10'000);
  EXPECT_EQ(reply.wait_for(std::chrono::seconds(0)), std::future_status::timeout) << "a 4 KiB read takes 52 us";
  gate.grant(s0 + 1'000'000);
  ASSERT_EQ(rests.next(), s0 + 1'000'000) << "rests exactly at the grant, not at the read's end";
  ASSERT_EQ(reply.wait_for(std::chrono::seconds(0)), std::future_status::ready);
  const auto [read, ended] = reply.get();
  EXPECT_EQ(read.status.error, 0);
  EXPECT_EQ(read.status.simulated_ps,
            2 * kHs400Command + 40 * models::kMicrosecond + 7 * kHs400NacMin + 8 * kHs400ReadBlock);
  EXPECT_EQ(ended, s0 + 52'090) << "the read ended 52.09 us after the held instant";

  timed.post([](mmc::LinuxBlockDriver&) {});
  gate.grant(s0 + 2'000'000);
  EXPECT_EQ(rests.next(), s0 + 2'000'000) << "a job's rest at the held instant answers no grant: not reported";

  gate.release();
  mmcblk::BlockReadReply free_read;
  timed.run([&](mmc::LinuxBlockDriver& driver) {
    free_read = driver.read(mmcblk::BlockReadRequest{mmcblk::Node::user, 2 << 20, 4096});
  });
  EXPECT_EQ(free_read.status.error, 0) << "released: time runs as the models need it";
}

// A process that stops the gate 30000.5 ns after a job starts it (an interrupt for the guest).
struct Stopper : sc_core::sc_module {
  sc_core::sc_event go;
  models::TimeGate* gate = nullptr;
  explicit Stopper(sc_core::sc_module_name name) : sc_module(name) {
    SC_HAS_PROCESS(Stopper);
    SC_THREAD(run);
  }
  void run() {
    sc_core::wait(go);
    sc_core::wait(sc_core::sc_time(30'000.5, sc_core::SC_NS));
    gate->stop_here();
  }
};

TEST_F(TimeGateScenario, AStopRestsAtTheNextWholeNanosecond) {
  const mmc::DeviceConfig config = mmc::default_device_config();
  mmc::MemoryImage image(config);
  models::TimedBlockDevice::Options options;
  options.time_gate = true;
  models::TimedBlockDevice timed(config, image.backend(), test_profile(), options);
  models::TimeGate& gate = *timed.time_gate();
  Rests rests;
  gate.on_rest([&rests](std::uint64_t ns) { rests(ns); });
  Stopper stopper("stopper");
  stopper.gate = &gate;
  timed.start();
  std::uint64_t s0 = 0;
  timed.run([&](mmc::LinuxBlockDriver&) {
    gate.hold();
    s0 = models::TimeGate::ceil_ns(sc_core::sc_time_stamp());
    stopper.go.notify(sc_core::SC_ZERO_TIME);
  });
  ASSERT_EQ(rests.next(), s0);
  gate.grant(s0 + 1'000'000);
  EXPECT_EQ(rests.next(), s0 + 30'001) << "stopped at the interrupt, rounded up to the guest's nanosecond";
  gate.grant(s0 + 1'000'000);
  EXPECT_EQ(rests.next(), s0 + 1'000'000);
  gate.grant(s0 + 500'000);
  timed.post([](mmc::LinuxBlockDriver&) {});
  EXPECT_EQ(rests.next(), s0 + 1'000'000) << "a grant never takes time back";
}

}  // namespace
}  // namespace emmcsim::testing
