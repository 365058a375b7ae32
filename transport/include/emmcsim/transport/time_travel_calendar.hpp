// The calendar of User-Mode Linux's time travel (time_travel.hpp, ../shared/spec/uml-pci.md,
// docs/linux.md "Deterministic runs"): the daemon owns the guest's clock, so that Linux's time is
// the simulated time of the eMMC bus and NAND and a run is a pure function of its inputs.
//
//   UML (time-travel=ext:SOCKET)           TimeTravelCalendar               the simulation
//   ────────────────────────────           ──────────────────               (TimeTravelSimulation)
//   START ─────────────────────────────▶   hold() ──────────────────────▶   stops at instant S0
//         ◀──────────────────── ACK        ◀────────────── rested(S0)
//   GET_TOD, GET ──────────────────────▶   ACK(base + S0), ACK(S0)
//   REQUEST(t), WAIT ──────────────────▶   advance_to(t) ───────────────▶   runs to t, or stops at
//                                                                           an interrupt (t_irq)
//         ◀──────────────────── RUN(t)     ◀─────────────── rested(t)
//   (interrupt at t_irq: the device's call on the vhost-user socket)
//   GET ───────────────────────────────▶   ACK(t_irq), FREE_UNTIL(t_irq)
//   [REQUEST(t_irq)], ACK ─────────────▶   RUN(t_irq), or on to t if no REQUEST came
//
// The rules (TimeTravelScheduler, without I/O, so tests drive it message by message):
//  - The guest's time only moves when the calendar sends RUN; the simulation only moves while
//    the guest WAITs, and never past the guest's REQUEST: the two clocks are one.
//  - While the guest runs, the simulation rests at the guest's instant; the device's register
//    accesses are served there in zero simulated time.
//  - A notification the back-end sent the guest (a vhost-user call) is answered by the guest's
//    GET; the calendar grants no time while one is unanswered, or while an interrupt the
//    controller raised has not yet gone out, so the guest always takes an interrupt at the
//    instant it was raised. A waiting guest's GET (for an interrupt) is answered with the
//    instant the simulation stops at (deferred while it still moves). The guest's REQUEST for
//    that instant follows, or none when its interrupt event is pending already (a handler that
//    delays with interrupts off); the FREE_UNTIL(now) sent after the answer is a barrier: UML
//    acknowledges it only after any REQUEST, and nothing moves until that ACK.
//  - A protocol breach (a message before START, a second START, an ACK of nothing or of another
//    seq, a calendar's message from the guest, a REQUEST in the past while waiting) ends the
//    connection with one error line; the simulation runs freely again, the card consistent.
#pragma once

#include <spdlog/logger.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "emmcsim/transport/time_travel.hpp"
#include "emmcsim/transport/unix_socket.hpp"

namespace emmcsim::transport {

// What the calendar schedules: the daemon composes it of the models' TimeGate. Calls come from
// the calendar's strand; the simulation answers with TimeTravelCalendar::rested() from any thread.
class TimeTravelSimulation {
 public:
  virtual ~TimeTravelSimulation() = default;
  // A guest's clock joins: stop at the next whole nanosecond and report it.
  virtual void hold() = 0;
  // Advance up to `until_ns` (never past it), stopping earlier where the guest must hear of
  // something (an interrupt); report where it stopped.
  virtual void advance_to(std::uint64_t until_ns) = 0;
  // The guest's clock is gone: run freely again.
  virtual void release() = 0;
};

class TimeTravelScheduler {
 public:
  struct Options {
    // The time of day the guest reads (GET_TOD) is this base plus the simulated time; without
    // it, the host's clock at the guest's START.
    std::optional<std::uint64_t> time_of_day_base_ns;
  };
  struct Counters {
    std::uint64_t messages = 0;           // from the guest
    std::uint64_t runs = 0;               // RUNs sent
    std::uint64_t grants = 0;             // advance_to() calls
    std::uint64_t barriers = 0;           // FREE_UNTILs after a waiting guest's GET (answer_get)
    std::uint64_t update_mismatches = 0;  // UPDATEs whose time was not the calendar's
  };

  TimeTravelScheduler(TimeTravelSimulation& simulation, Options options,
                      std::function<void(const time_travel::Message&)> send);

  // A message from the guest. False when it breaks the protocol: error() says how, and the
  // connection must end.
  bool receive(const time_travel::Message& message);
  // The simulation came to rest at `ns`.
  void rested(std::uint64_t ns);
  // The controller raised an interrupt for the guest; the back-end sent the guest a notification
  // (`interrupt`: on the interrupt queue).
  void interrupt_raised();
  void notified(bool interrupt);

  // START was received and the simulation has not yet come to rest: read no further message.
  bool starting() const { return starting_; }
  bool started() const { return started_ && !starting_; }
  std::uint64_t now_ns() const { return now_; }
  const std::string& error() const { return error_; }
  const Counters& counters() const { return counters_; }

 private:
  bool fail(std::string why);
  void ack(const time_travel::Message& message, std::uint64_t time = 0);
  void evaluate();
  void answer_get(std::uint32_t seq);

  TimeTravelSimulation& simulation_;
  Options options_;
  std::function<void(const time_travel::Message&)> send_;
  bool starting_ = false;
  bool started_ = false;
  std::uint32_t start_seq_ = 0;
  std::uint64_t now_ = 0;
  std::uint64_t tod_base_ = 0;
  std::uint32_t waits_ = 0;  // WAITs not yet ended by a RUN (they nest)
  bool moving_ = false;
  bool request_valid_ = false;
  std::optional<std::uint32_t> deferred_get_;  // a GET while the simulation moves
  std::uint64_t request_ = 0;
  std::uint32_t seq_ = 0;
  std::optional<std::uint32_t> awaiting_ack_;  // of a RUN, or of the FREE_UNTIL after a waiting guest's GET
  std::uint64_t unanswered_notifications_ = 0;
  std::uint64_t interrupts_raised_ = 0;
  std::uint64_t interrupts_notified_ = 0;
  Counters counters_;
  std::string error_;
};

// The socket: one guest at a time (a second connection is closed with a log line), 0600 like
// every daemon socket (unix_socket.hpp).
class TimeTravelCalendar {
 public:
  TimeTravelCalendar(boost::asio::io_context& io, TimeTravelSimulation& simulation,
                     TimeTravelScheduler::Options options, std::shared_ptr<spdlog::logger> log,
                     std::string socket_path);
  ~TimeTravelCalendar();
  TimeTravelCalendar(const TimeTravelCalendar&) = delete;
  TimeTravelCalendar& operator=(const TimeTravelCalendar&) = delete;

  // Creates the socket and starts accepting. Throws SocketSetupError.
  void start();
  // Stops accepting, ends the connection (the simulation is released) and removes the socket.
  void stop();

  // Any thread: reports from the simulation and the back-end (see TimeTravelScheduler).
  void rested(std::uint64_t ns);
  void interrupt_raised();
  void notified(bool interrupt);

  const std::string& socket_path() const { return listener_.path(); }
  bool guest_connected() const;

 private:
  class Connection;
  void accepted(boost::asio::local::stream_protocol::socket socket);
  void forget(const Connection* connection);

  boost::asio::io_context& io_;
  TimeTravelSimulation& simulation_;
  TimeTravelScheduler::Options options_;
  std::shared_ptr<spdlog::logger> log_;
  UnixSocketListener listener_;
  mutable std::mutex mutex_;  // guards connection_, stopped_, next_id_
  std::shared_ptr<Connection> connection_;
  std::uint64_t next_id_ = 1;
  bool stopped_ = false;
};

}  // namespace emmcsim::transport
