// TimeTravelScheduler and TimeTravelCalendar (see time_travel_calendar.hpp).
#include "emmcsim/transport/time_travel_calendar.hpp"

#include <array>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <deque>
#include <utility>

#include "emmcsim/transport/unix_socket.hpp"

namespace emmcsim::transport {

namespace asio = boost::asio;
namespace tt = time_travel;
using stream_protocol = asio::local::stream_protocol;

// ---- TimeTravelScheduler ------------------------------------------------------------------------

TimeTravelScheduler::TimeTravelScheduler(TimeTravelSimulation& simulation, Options options,
                                         std::function<void(const tt::Message&)> send)
    : simulation_(simulation), options_(options), send_(std::move(send)) {}

bool TimeTravelScheduler::fail(std::string why) {
  if (error_.empty()) error_ = std::move(why);
  return false;
}

void TimeTravelScheduler::ack(const tt::Message& message, std::uint64_t time) {
  send_(tt::Message{tt::Op::ack, message.seq, time});
}

bool TimeTravelScheduler::receive(const tt::Message& m) {
  if (!error_.empty()) return false;
  ++counters_.messages;
  if (starting_) return fail(tt::describe(m) + " before the START was answered");
  if (!started_ && m.op != tt::Op::start) return fail(tt::describe(m) + " before START");
  switch (m.op) {
    case tt::Op::start:
      if (started_) return fail("a second START");
      started_ = true;
      starting_ = true;
      start_seq_ = m.seq;
      simulation_.hold();
      return true;
    case tt::Op::ack:
      if (!awaiting_ack_) return fail("an ACK (seq " + std::to_string(m.seq) + ") of no message of the calendar's");
      if (*awaiting_ack_ != m.seq)
        return fail("an ACK with seq " + std::to_string(m.seq) + " for the RUN with seq " +
                    std::to_string(*awaiting_ack_));
      awaiting_ack_.reset();
      evaluate();
      return error_.empty();
    case tt::Op::request:
      request_valid_ = true;
      request_ = m.time;
      ack(m);
      evaluate();
      return error_.empty();
    case tt::Op::wait:
      // Waits nest in UML (an interrupt handler that delays while the idle loop waits): each
      // is ended by a RUN of its own.
      ++waits_;
      ack(m);
      evaluate();
      return error_.empty();
    case tt::Op::get:
      if (unanswered_notifications_ > 0) --unanswered_notifications_;
      // While the simulation moves, "now" is where it will stop (the interrupt the guest was
      // just told of): answered when it rests.
      if (moving_) {
        deferred_get_ = m.seq;
        return true;
      }
      answer_get(m.seq);
      return error_.empty();
    case tt::Op::update:
      if (m.time != now_) ++counters_.update_mismatches;
      ack(m);
      return true;
    case tt::Op::get_tod: ack(m, tod_base_ + now_); return true;
    case tt::Op::run:
    case tt::Op::free_until: return fail(tt::describe(m) + " is the calendar's message, not the guest's");
  }
  return fail("unknown op");
}

void TimeTravelScheduler::answer_get(std::uint32_t seq) {
  send_(tt::Message{tt::Op::ack, seq, now_});
  // A waiting guest asks the time to schedule an interrupt at it. A REQUEST for that instant
  // follows, unless the guest asked for it already, or unless its interrupt event is still
  // pending: UML adds an event only once ("first wins"), so a handler that delays with interrupts
  // off (sdhci_irq polling a register) takes a second call without a REQUEST and waits on for its
  // own. Nothing on the wire tells the two apart, so the calendar sends FREE_UNTIL(now), which
  // lets a guest at `now` run no further than before, and lets no time pass until its ACK: UML
  // answers it only after it has sent any REQUEST of its own, so that REQUEST is in by then.
  if (waits_ > 0 && !(request_valid_ && request_ == now_)) {
    awaiting_ack_ = ++seq_;
    ++counters_.barriers;
    send_(tt::Message{tt::Op::free_until, *awaiting_ack_, now_});
    return;
  }
  evaluate();
}

void TimeTravelScheduler::rested(std::uint64_t ns) {
  if (!error_.empty() || !started_) return;
  if (ns > now_) now_ = ns;
  moving_ = false;
  if (starting_) {
    starting_ = false;
    if (options_.time_of_day_base_ns) {
      tod_base_ = *options_.time_of_day_base_ns;
    } else {
      const auto wall = std::chrono::system_clock::now().time_since_epoch();
      const std::uint64_t wall_ns =
          static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(wall).count());
      tod_base_ = wall_ns > now_ ? wall_ns - now_ : 0;
    }
    send_(tt::Message{tt::Op::ack, start_seq_, 0});
    return;
  }
  if (deferred_get_) {
    const std::uint32_t seq = *deferred_get_;
    deferred_get_.reset();
    return answer_get(seq);
  }
  evaluate();
}

void TimeTravelScheduler::interrupt_raised() { ++interrupts_raised_; }

void TimeTravelScheduler::notified(bool interrupt) {
  ++unanswered_notifications_;
  if (interrupt) ++interrupts_notified_;
  evaluate();
}

void TimeTravelScheduler::evaluate() {
  if (!error_.empty() || !started() || waits_ == 0 || moving_ || awaiting_ack_) return;
  // The guest has yet to hear of something that happened at this instant.
  if (unanswered_notifications_ > 0 || interrupts_notified_ < interrupts_raised_) return;
  if (!request_valid_) return;  // nothing to run it for yet: a REQUEST comes
  if (request_ < now_) {
    fail("a REQUEST for " + std::to_string(request_) + " ns, in the past of the simulation (" + std::to_string(now_) +
         " ns)");
    return;
  }
  if (request_ == now_) {
    // UML asks afresh after every RUN (its cached request is dropped when a wait ends): the
    // next grant waits for that REQUEST, which also keeps nested waits in step.
    request_valid_ = false;
    --waits_;
    awaiting_ack_ = ++seq_;
    ++counters_.runs;
    send_(tt::Message{tt::Op::run, *awaiting_ack_, now_});
    return;
  }
  moving_ = true;
  ++counters_.grants;
  simulation_.advance_to(request_);
}

// ---- TimeTravelCalendar -------------------------------------------------------------------------

class TimeTravelCalendar::Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(TimeTravelCalendar& calendar, stream_protocol::socket socket, std::uint64_t id)
      : calendar_(calendar),
        socket_(std::move(socket)),
        strand_(asio::make_strand(calendar.io_)),
        id_(id),
        scheduler_(calendar.simulation_, calendar.options_, [this](const tt::Message& m) { send(m); }) {}

  void start() {
    asio::post(strand_, [self = shared_from_this()] { self->read(); });
  }
  void close() {
    asio::post(strand_, [self = shared_from_this()] { self->finish(""); });
  }
  void rested(std::uint64_t ns) {
    asio::post(strand_, [self = shared_from_this(), ns] {
      self->calendar_.log_->trace("time travel: the simulation rests at {} ns", ns);
      const bool was_starting = self->scheduler_.starting();
      self->scheduler_.rested(ns);
      if (was_starting && !self->scheduler_.starting()) {
        self->calendar_.log_->info(
            "time travel: guest {} started at {:.6f} ms simulated; its clock is the simulation's", self->id_,
            static_cast<double>(ns) / 1e6);
        self->read();
      }
      self->check();
    });
  }
  void interrupt_raised() {
    asio::post(strand_, [self = shared_from_this()] {
      self->calendar_.log_->trace("time travel: the controller raised an interrupt");
      self->scheduler_.interrupt_raised();
    });
  }
  void notified(bool interrupt) {
    asio::post(strand_, [self = shared_from_this(), interrupt] {
      self->calendar_.log_->trace("time travel: a call to the guest ({})", interrupt ? "interrupt" : "command");
      self->scheduler_.notified(interrupt);
      self->check();
    });
  }

 private:
  void read() {
    if (closed_) return;
    asio::async_read(
        socket_, asio::buffer(in_),
        asio::bind_executor(strand_, [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
          if (ec) return self->finish(ec == asio::error::eof ? "" : ec.message());
          self->on_message();
        }));
  }

  void on_message() {
    tt::Message m;
    try {
      m = tt::decode(in_.data(), in_.size());
    } catch (const tt::ProtocolError& e) {
      return finish(e.what());
    }
    if (calendar_.log_->should_log(spdlog::level::trace))
      calendar_.log_->trace("time travel: guest {}: {}", id_, tt::describe(m));
    if (!scheduler_.receive(m)) return finish(scheduler_.error());
    if (!scheduler_.starting()) read();  // after START: once the simulation has stopped
  }

  void check() {
    if (!scheduler_.error().empty()) finish(scheduler_.error());
  }

  void send(const tt::Message& m) {
    if (closed_) return;
    if (calendar_.log_->should_log(spdlog::level::trace))
      calendar_.log_->trace("time travel: to guest {}: {}", id_, tt::describe(m));
    out_.push_back(tt::encode(m));
    if (out_.size() == 1) write_next();
  }

  void write_next() {
    asio::async_write(
        socket_, asio::buffer(out_.front()),
        asio::bind_executor(strand_, [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
          if (ec) return self->finish(ec.message());
          self->out_.pop_front();
          if (!self->out_.empty()) self->write_next();
        }));
  }

  void finish(const std::string& why) {
    if (closed_) return;
    closed_ = true;
    spdlog::logger& log = *calendar_.log_;
    if (!why.empty()) log.error("time travel: guest {}: {}; the connection ends", id_, why);
    const auto& c = scheduler_.counters();
    log.info(
        "time travel: guest {} gone at {:.6f} ms simulated ({} messages, {} RUNs, {} grants); the simulation "
        "runs freely again",
        id_, static_cast<double>(scheduler_.now_ns()) / 1e6, c.messages, c.runs, c.grants);
    if (c.update_mismatches > 0)
      log.warn("time travel: guest {}: {} UPDATEs named a time other than the simulation's", id_, c.update_mismatches);
    boost::system::error_code ignored;
    socket_.shutdown(stream_protocol::socket::shutdown_both, ignored);
    socket_.close(ignored);
    out_.clear();
    if (scheduler_.started() || scheduler_.starting()) calendar_.simulation_.release();
    calendar_.forget(this);
  }

  TimeTravelCalendar& calendar_;
  stream_protocol::socket socket_;
  asio::strand<asio::io_context::executor_type> strand_;
  std::uint64_t id_;
  TimeTravelScheduler scheduler_;
  std::array<std::uint8_t, tt::kMessageSize> in_{};
  std::deque<std::array<std::uint8_t, tt::kMessageSize>> out_;
  bool closed_ = false;
};

TimeTravelCalendar::TimeTravelCalendar(asio::io_context& io, TimeTravelSimulation& simulation,
                                       TimeTravelScheduler::Options options, std::shared_ptr<spdlog::logger> log,
                                       std::string socket_path)
    : io_(io), simulation_(simulation), options_(options), log_(log), listener_(io, std::move(socket_path), log) {}

TimeTravelCalendar::~TimeTravelCalendar() { stop(); }

void TimeTravelCalendar::start() {
  listener_.start([this](stream_protocol::socket socket) { accepted(std::move(socket)); });
}

void TimeTravelCalendar::stop() {
  listener_.stop();  // first, without mutex_: no guest is accepted after it
  std::shared_ptr<Connection> connection;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopped_) return;
    stopped_ = true;
    connection = connection_;
  }
  if (connection) connection->close();
}

void TimeTravelCalendar::accepted(stream_protocol::socket socket) {
  std::shared_ptr<Connection> started;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopped_) return;
    if (connection_) {
      log_->warn("time travel: a second guest connected while guest {} owns the clock; closed", next_id_ - 1);
      return;  // the socket closes as it goes
    }
    connection_ = std::make_shared<Connection>(*this, std::move(socket), next_id_++);
    started = connection_;
  }
  log_->info("time travel: a guest connected to {}", listener_.path());
  started->start();
}

void TimeTravelCalendar::forget(const Connection* connection) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (connection_.get() == connection) connection_.reset();
}

void TimeTravelCalendar::rested(std::uint64_t ns) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (connection_) connection_->rested(ns);
}

void TimeTravelCalendar::interrupt_raised() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (connection_) connection_->interrupt_raised();
}

void TimeTravelCalendar::notified(bool interrupt) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (connection_) connection_->notified(interrupt);
}

bool TimeTravelCalendar::guest_connected() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return connection_ != nullptr;
}

}  // namespace emmcsim::transport
