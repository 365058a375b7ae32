// User-Mode Linux's time-travel protocol: the message codec, the calendar's rules
// (TimeTravelScheduler driven message by message against a recording simulation), and
// TimeTravelCalendar on a real Unix socket (one guest at a time, a breach ends the connection and
// frees the simulation).
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "emmcsim/transport/time_travel.hpp"
#include "emmcsim/transport/time_travel_calendar.hpp"
#include "scratch_directory.hpp"

namespace emmcsim::testing {
namespace {

namespace tt = transport::time_travel;
using transport::TimeTravelScheduler;

// ---- the codec ----------------------------------------------------------------------------------

TEST(TimeTravelMessage, EncodesOpSeqAndTimeLittleEndian) {
  const auto bytes = tt::encode(tt::Message{tt::Op::run, 0x01020304, 0x1122334455667788ull});
  const std::vector<std::uint8_t> expected = {6, 0, 0, 0, 4, 3, 2, 1, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11};
  EXPECT_EQ(std::vector<std::uint8_t>(bytes.begin(), bytes.end()), expected);
  const tt::Message back = tt::decode(bytes.data(), bytes.size());
  EXPECT_EQ(back.op, tt::Op::run);
  EXPECT_EQ(back.seq, 0x01020304u);
  EXPECT_EQ(back.time, 0x1122334455667788ull);
}

TEST(TimeTravelMessage, RefusesAWrongSizeAndAnUnknownOp) {
  auto bytes = tt::encode(tt::Message{tt::Op::get, 1, 0});
  EXPECT_THROW(tt::decode(bytes.data(), 15), tt::ProtocolError);
  bytes[0] = 9;
  try {
    tt::decode(bytes.data(), bytes.size());
    FAIL() << "op 9 decoded";
  } catch (const tt::ProtocolError& e) {
    EXPECT_NE(std::string(e.what()).find("unknown time-travel op 9"), std::string::npos) << e.what();
  }
}

TEST(TimeTravelMessage, DescribesAMessageForTheLog) {
  EXPECT_EQ(tt::describe(tt::Message{tt::Op::request, 12, 1'250'000'000}), "REQUEST(seq 12, 1.250000000 s)");
  EXPECT_EQ(tt::op_name(42), "op 42");
}

// ---- the scheduler's rules ----------------------------------------------------------------------

struct RecordingSimulation : transport::TimeTravelSimulation {
  int holds = 0;
  int releases = 0;
  std::vector<std::uint64_t> advances;
  void hold() override { ++holds; }
  void advance_to(std::uint64_t until_ns) override { advances.push_back(until_ns); }
  void release() override { ++releases; }
};

class SchedulerTest : public ::testing::Test {
 public:
  static constexpr std::uint64_t kBase = 1'767'225'600'000'000'000ull;
  RecordingSimulation simulation;
  std::vector<tt::Message> sent;
  TimeTravelScheduler scheduler{simulation, TimeTravelScheduler::Options{kBase},
                                [this](const tt::Message& m) { sent.push_back(m); }};
  std::uint32_t seq = 0;

  bool guest(tt::Op op, std::uint64_t time = 0) { return scheduler.receive(tt::Message{op, ++seq, time}); }
  // The last message the calendar sent.
  tt::Message last() const { return sent.empty() ? tt::Message{} : sent.back(); }
  void expect_ack(std::uint64_t time = 0) {
    ASSERT_FALSE(sent.empty());
    EXPECT_EQ(last().op, tt::Op::ack);
    EXPECT_EQ(last().seq, seq);
    EXPECT_EQ(last().time, time);
  }
  // START, answered once the simulation rests at `at`.
  void start_at(std::uint64_t at) {
    ASSERT_TRUE(guest(tt::Op::start, 7));
    ASSERT_EQ(simulation.holds, 1);
    ASSERT_TRUE(sent.empty()) << "START is answered once the simulation has stopped";
    scheduler.rested(at);
    expect_ack();
  }
  // The guest's GET while it waits: answered with `time`, then FREE_UNTIL(time), the barrier the
  // guest acknowledges after any REQUEST it sends. Returns the FREE_UNTIL's seq.
  std::uint32_t expect_get_answer_and_barrier(std::uint64_t time) {
    EXPECT_GE(sent.size(), 2u);
    if (sent.size() < 2) return 0;
    const tt::Message& answer = sent[sent.size() - 2];
    EXPECT_EQ(answer.op, tt::Op::ack);
    EXPECT_EQ(answer.seq, seq);
    EXPECT_EQ(answer.time, time);
    EXPECT_EQ(last().op, tt::Op::free_until) << tt::describe(last());
    EXPECT_EQ(last().time, time);
    return last().seq;
  }
  void ack_barrier(std::uint32_t barrier) {
    ASSERT_TRUE(scheduler.receive(tt::Message{tt::Op::ack, barrier, 0})) << scheduler.error();
  }
  // The calendar sent RUN(at); the guest acknowledges it.
  void expect_run_and_ack(std::uint64_t at) {
    ASSERT_FALSE(sent.empty());
    ASSERT_EQ(last().op, tt::Op::run) << tt::describe(last());
    EXPECT_EQ(last().time, at);
    ASSERT_TRUE(scheduler.receive(tt::Message{tt::Op::ack, last().seq, 0})) << scheduler.error();
  }
};

TEST_F(SchedulerTest, StartHoldsTheSimulationAndTheGuestReadsItsTime) {
  start_at(40'000'000);
  ASSERT_TRUE(guest(tt::Op::get_tod));
  expect_ack(kBase + 40'000'000);
  ASSERT_TRUE(guest(tt::Op::get));
  expect_ack(40'000'000);
  EXPECT_TRUE(simulation.advances.empty()) << "no time passes while the guest runs";
}

TEST_F(SchedulerTest, AWaitRunsTheSimulationToTheRequestThenTheGuest) {
  start_at(1000);
  ASSERT_TRUE(guest(tt::Op::request, 11'000));
  expect_ack();
  EXPECT_TRUE(simulation.advances.empty()) << "a request alone moves nothing: the guest is still running";
  ASSERT_TRUE(guest(tt::Op::wait));
  expect_ack();
  ASSERT_EQ(simulation.advances, std::vector<std::uint64_t>{11'000});
  scheduler.rested(11'000);
  expect_run_and_ack(11'000);
  ASSERT_TRUE(guest(tt::Op::update, 11'000));
  EXPECT_EQ(scheduler.counters().update_mismatches, 0u);
  ASSERT_TRUE(guest(tt::Op::get));
  expect_ack(11'000);
}

TEST_F(SchedulerTest, ARequestForNowRunsAtOnce) {
  start_at(5000);
  ASSERT_TRUE(guest(tt::Op::request, 5000));
  ASSERT_TRUE(guest(tt::Op::wait));
  EXPECT_TRUE(simulation.advances.empty());
  expect_run_and_ack(5000);
}

TEST_F(SchedulerTest, AnInterruptStopsTimeUntilTheGuestHasTakenIt) {
  start_at(1000);
  ASSERT_TRUE(guest(tt::Op::request, 1'000'000));
  ASSERT_TRUE(guest(tt::Op::wait));
  ASSERT_EQ(simulation.advances.size(), 1u);
  // The controller raises its line at 30 us: the gate stops there.
  scheduler.interrupt_raised();
  scheduler.rested(30'000);
  EXPECT_EQ(last().op, tt::Op::ack) << "no RUN and no further grant before the guest heard of the interrupt";
  EXPECT_EQ(simulation.advances.size(), 1u);
  scheduler.notified(true);  // the back-end's call went out
  EXPECT_EQ(simulation.advances.size(), 1u) << "the call is not answered yet";
  ASSERT_TRUE(guest(tt::Op::get));  // the guest's interrupt handler asks the time
  const std::uint32_t barrier = expect_get_answer_and_barrier(30'000);
  ASSERT_TRUE(guest(tt::Op::request, 30'000));  // and runs the interrupt then
  expect_ack();
  EXPECT_EQ(simulation.advances.size(), 1u) << "nothing moves before the barrier's ACK";
  ack_barrier(barrier);
  expect_run_and_ack(30'000);
  EXPECT_EQ(simulation.advances.size(), 1u);
}

// UML adds an interrupt event once ("first wins"): sdhci_irq polling a register with interrupts
// off (an ndelay, a WAIT of its own) takes the next interrupt's call with a GET and no REQUEST,
// and waits on for the instant it asked for. The barrier's ACK says no REQUEST is coming: the
// simulation goes on to that instant (before, the calendar waited for the REQUEST for ever).
TEST_F(SchedulerTest, AGuestWhoseInterruptIsPendingGetsItsOwnRequestAfterTheBarrier) {
  start_at(1000);
  ASSERT_TRUE(guest(tt::Op::request, 1'000'000));  // the handler's ndelay
  ASSERT_TRUE(guest(tt::Op::wait));
  scheduler.interrupt_raised();
  scheduler.rested(30'000);
  scheduler.notified(true);
  ASSERT_TRUE(guest(tt::Op::get));
  const std::uint32_t barrier = expect_get_answer_and_barrier(30'000);
  EXPECT_EQ(simulation.advances.size(), 1u) << "nothing moves before the barrier's ACK";
  ack_barrier(barrier);  // no REQUEST came before it
  ASSERT_EQ(simulation.advances, (std::vector<std::uint64_t>{1'000'000, 1'000'000}));
  scheduler.rested(1'000'000);
  expect_run_and_ack(1'000'000);
  EXPECT_EQ(scheduler.counters().barriers, 1u);
}

TEST_F(SchedulerTest, AGetWhileTheSimulationMovesIsAnsweredWhereItStops) {
  start_at(1000);
  ASSERT_TRUE(guest(tt::Op::request, 1'000'000));
  ASSERT_TRUE(guest(tt::Op::wait));
  // The interrupt's call reached the guest before the gate's rest reached the calendar.
  scheduler.interrupt_raised();
  scheduler.notified(true);
  const std::size_t before = sent.size();
  ASSERT_TRUE(guest(tt::Op::get));
  EXPECT_EQ(sent.size(), before) << "not answered with a time the simulation has already left";
  scheduler.rested(30'000);
  const std::uint32_t barrier = expect_get_answer_and_barrier(30'000);
  ASSERT_TRUE(guest(tt::Op::request, 30'000));
  ack_barrier(barrier);
  expect_run_and_ack(30'000);
}

TEST_F(SchedulerTest, ACallForACommandCompletionHoldsTimeUntilItsGet) {
  start_at(1000);
  scheduler.notified(false);  // an MMIO read's answer, signalled while the guest runs
  ASSERT_TRUE(guest(tt::Op::request, 9000));
  ASSERT_TRUE(guest(tt::Op::wait));
  EXPECT_TRUE(simulation.advances.empty()) << "the guest has a call to take first";
  ASSERT_TRUE(guest(tt::Op::get));
  const std::uint32_t barrier = expect_get_answer_and_barrier(1000);
  EXPECT_TRUE(simulation.advances.empty()) << "the guest's REQUEST for the interrupt comes next";
  ASSERT_TRUE(guest(tt::Op::request, 1000));
  ack_barrier(barrier);
  expect_run_and_ack(1000);  // the guest takes the call now, then asks for 9000 again
  ASSERT_TRUE(guest(tt::Op::request, 9000));
  ASSERT_TRUE(guest(tt::Op::wait));
  EXPECT_EQ(simulation.advances, std::vector<std::uint64_t>{9000});
}

TEST_F(SchedulerTest, TheGuestsBootGetIsNoCreditForALaterCall) {
  start_at(1000);
  ASSERT_TRUE(guest(tt::Op::get));  // set_start's GET, no call behind it
  scheduler.notified(false);
  ASSERT_TRUE(guest(tt::Op::request, 2000));
  ASSERT_TRUE(guest(tt::Op::wait));
  EXPECT_TRUE(simulation.advances.empty());
}

TEST_F(SchedulerTest, NestedWaitsEachEndWithARunOfTheirOwn) {
  start_at(1000);
  ASSERT_TRUE(guest(tt::Op::request, 2000));
  ASSERT_TRUE(guest(tt::Op::wait));
  ASSERT_TRUE(guest(tt::Op::wait));  // an inner wait (a delay in an interrupt handler)
  ASSERT_EQ(simulation.advances, std::vector<std::uint64_t>{2000});
  scheduler.rested(2000);
  expect_run_and_ack(2000);  // ends the inner wait
  ASSERT_TRUE(guest(tt::Op::request, 3000));
  ASSERT_EQ(simulation.advances, (std::vector<std::uint64_t>{2000, 3000})) << "the outer wait goes on";
  scheduler.rested(3000);
  expect_run_and_ack(3000);
  ASSERT_TRUE(guest(tt::Op::request, 4000));
  EXPECT_EQ(simulation.advances.size(), 2u) << "both waits ended: the guest runs";
}

TEST_F(SchedulerTest, AnUpdateThatDisagreesIsCounted) {
  start_at(1000);
  ASSERT_TRUE(guest(tt::Op::update, 999));
  expect_ack();
  EXPECT_EQ(scheduler.counters().update_mismatches, 1u);
}

TEST_F(SchedulerTest, ARequestInThePastEndsTheConnection) {
  start_at(50'000);
  ASSERT_TRUE(guest(tt::Op::request, 10'000));
  EXPECT_FALSE(guest(tt::Op::wait));
  EXPECT_NE(scheduler.error().find("in the past"), std::string::npos) << scheduler.error();
  EXPECT_TRUE(simulation.advances.empty());
  EXPECT_FALSE(guest(tt::Op::get)) << "nothing is served after a breach";
}

TEST_F(SchedulerTest, ProtocolBreachesAreNamed) {
  struct Case {
    const char* name;
    std::function<bool(SchedulerTest&)> breach;
    const char* says;
  };
  const std::vector<Case> cases = {
      {"before START", [](SchedulerTest& t) { return t.guest(tt::Op::get); }, "before START"},
      {"second START",
       [](SchedulerTest& t) {
         t.start_at(1);
         return t.guest(tt::Op::start);
       },
       "a second START"},
      {"message while starting",
       [](SchedulerTest& t) {
         t.guest(tt::Op::start);
         return t.guest(tt::Op::get);
       },
       "before the START was answered"},
      {"ACK of nothing",
       [](SchedulerTest& t) {
         t.start_at(1);
         return t.guest(tt::Op::ack);
       },
       "of no message"},
      {"stale ACK",
       [](SchedulerTest& t) {
         t.start_at(1);
         t.guest(tt::Op::request, 1);
         t.guest(tt::Op::wait);
         return t.scheduler.receive(tt::Message{tt::Op::ack, t.last().seq + 5, 0});
       },
       "for the RUN with seq"},
      {"RUN from the guest",
       [](SchedulerTest& t) {
         t.start_at(1);
         return t.guest(tt::Op::run, 5);
       },
       "the calendar's message"},
  };
  for (const Case& c : cases) {
    struct Fixture : SchedulerTest {
      void TestBody() override {}
    } fixture;
    EXPECT_FALSE(c.breach(fixture)) << c.name;
    EXPECT_NE(fixture.scheduler.error().find(c.says), std::string::npos) << c.name << ": " << fixture.scheduler.error();
  }
}

// ---- the calendar on its socket -----------------------------------------------------------------

// A simulation that rests wherever it is told to go, on a thread of its own, as the gate does.
struct EchoSimulation : transport::TimeTravelSimulation {
  transport::TimeTravelCalendar* calendar = nullptr;
  std::uint64_t now = 123'000;
  std::mutex mutex;
  std::condition_variable changed;
  int releases = 0;
  void hold() override { calendar->rested(now); }
  void advance_to(std::uint64_t until_ns) override {
    now = until_ns;
    calendar->rested(now);
  }
  void release() override {
    std::lock_guard<std::mutex> lock(mutex);
    ++releases;
    changed.notify_all();
  }
  bool wait_released(int n) {
    std::unique_lock<std::mutex> lock(mutex);
    return changed.wait_for(lock, std::chrono::seconds(10), [&] { return releases >= n; });
  }
};

class Guest {
 public:
  explicit Guest(const std::string& path) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, path.c_str(), sizeof(address.sun_path) - 1);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
    timeval timeout{10, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  }
  ~Guest() { ::close(fd_); }
  bool connected() const { return connected_; }
  void send(tt::Op op, std::uint32_t seq, std::uint64_t time = 0) {
    const auto bytes = tt::encode(tt::Message{op, seq, time});
    ASSERT_EQ(::write(fd_, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  }
  // The next message, or nullopt when the calendar closed the connection (or 10 s passed).
  std::optional<tt::Message> receive() {
    std::uint8_t bytes[tt::kMessageSize];
    std::size_t got = 0;
    while (got < sizeof bytes) {
      const ssize_t n = ::read(fd_, bytes + got, sizeof bytes - got);
      if (n <= 0) return std::nullopt;
      got += static_cast<std::size_t>(n);
    }
    return tt::decode(bytes, sizeof bytes);
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
};

class CalendarTest : public ::testing::Test {
 protected:
  void SetUp() override {
    simulation.calendar = &calendar;
    calendar.start();
    thread = std::thread([this] { io.run(); });
  }
  void TearDown() override {
    calendar.stop();
    work.reset();
    io.stop();
    thread.join();
  }
  ScratchDirectory dir{"emmcsim-tt"};
  boost::asio::io_context io;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work = boost::asio::make_work_guard(io);
  EchoSimulation simulation;
  transport::TimeTravelCalendar calendar{io, simulation, TimeTravelScheduler::Options{1'000'000'000},
                                         std::make_shared<spdlog::logger>("tt-test"), dir.file("time.sock")};
  std::thread thread;
};

TEST_F(CalendarTest, ServesAGuestOnAPrivateSocket) {
  struct stat st {};
  ASSERT_EQ(::stat(calendar.socket_path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  Guest guest(calendar.socket_path());
  ASSERT_TRUE(guest.connected());
  guest.send(tt::Op::start, 1, 99);
  auto ack = guest.receive();
  ASSERT_TRUE(ack);
  EXPECT_EQ(ack->op, tt::Op::ack);
  EXPECT_EQ(ack->seq, 1u);
  guest.send(tt::Op::get_tod, 2);
  ack = guest.receive();
  ASSERT_TRUE(ack);
  EXPECT_EQ(ack->time, 1'000'000'000u + 123'000u) << "the fixed time of day plus the simulated time";
  guest.send(tt::Op::request, 3, 200'000);
  ASSERT_TRUE(guest.receive());
  guest.send(tt::Op::wait, 4);
  ASSERT_TRUE(guest.receive());  // WAIT's ACK
  const auto run = guest.receive();
  ASSERT_TRUE(run);
  EXPECT_EQ(run->op, tt::Op::run);
  EXPECT_EQ(run->time, 200'000u);
  guest.send(tt::Op::ack, run->seq);
  guest.send(tt::Op::get, 5);
  ack = guest.receive();
  ASSERT_TRUE(ack);
  EXPECT_EQ(ack->time, 200'000u);
}

TEST_F(CalendarTest, ASecondGuestIsClosedAndTheFirstServedOn) {
  Guest first(calendar.socket_path());
  first.send(tt::Op::start, 1);
  ASSERT_TRUE(first.receive());
  Guest second(calendar.socket_path());
  ASSERT_TRUE(second.connected());
  EXPECT_FALSE(second.receive()) << "closed: one guest owns the clock";
  first.send(tt::Op::get, 2);
  const auto ack = first.receive();
  ASSERT_TRUE(ack);
  EXPECT_EQ(ack->seq, 2u);
}

TEST_F(CalendarTest, ABreachOrAGoneGuestFreesTheSimulation) {
  {
    Guest guest(calendar.socket_path());
    guest.send(tt::Op::start, 1);
    ASSERT_TRUE(guest.receive());
    guest.send(tt::Op::run, 2, 5);  // the calendar's message from the guest
    EXPECT_FALSE(guest.receive()) << "the connection ends";
  }
  ASSERT_TRUE(simulation.wait_released(1));
  {
    Guest guest(calendar.socket_path());
    guest.send(tt::Op::start, 1);
    ASSERT_TRUE(guest.receive()) << "the next guest is served";
  }  // gone without a word
  ASSERT_TRUE(simulation.wait_released(2));
  Guest bad(calendar.socket_path());
  bad.send(tt::Op::start, 1);
  ASSERT_TRUE(bad.receive());
  bad.send(static_cast<tt::Op>(77), 2);
  EXPECT_FALSE(bad.receive()) << "an unknown op ends the connection";
  ASSERT_TRUE(simulation.wait_released(3));
}

}  // namespace
}  // namespace emmcsim::testing
