// TimeGate (see time_gate.hpp).
#include "emmcsim/models/time_gate.hpp"

#include <algorithm>
#include <limits>

namespace emmcsim::models {
namespace {

std::uint64_t units_per_ns() { return sc_core::sc_time(1, sc_core::SC_NS).value(); }

sc_core::sc_time from_ns(std::uint64_t ns) { return sc_core::sc_time::from_value(ns * units_per_ns()); }

}  // namespace

TimeGate::TimeGate(sc_core::sc_module_name name) : sc_module(name) {
  SC_HAS_PROCESS(TimeGate);
  SC_THREAD(run);
}

std::uint64_t TimeGate::ceil_ns(const sc_core::sc_time& t) {
  const std::uint64_t per = units_per_ns();
  return (t.value() + per - 1) / per;
}

std::uint64_t TimeGate::max_grant_ns() { return std::numeric_limits<std::uint64_t>::max() / units_per_ns() - 1; }

void TimeGate::hold() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    held_ = true;
    limit_ns_ = ceil_ns(sc_core::sc_time_stamp());
    report_next_rest_ = true;
  }
  hold_event_.notify(sc_core::SC_ZERO_TIME);
}

void TimeGate::stop_here() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!held_) return;
    limit_ns_ = ceil_ns(sc_core::sc_time_stamp());
  }
  hold_event_.notify(sc_core::SC_ZERO_TIME);
}

void TimeGate::grant(std::uint64_t until_ns) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    limit_ns_ = std::max(limit_ns_, std::min(until_ns, max_grant_ns()));
    ++grants_;
  }
  changed_.notify_all();
}

void TimeGate::wake() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    ++wakes_;
  }
  changed_.notify_all();
}

void TimeGate::release() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    held_ = false;
  }
  changed_.notify_all();
}

bool TimeGate::held() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return held_;
}

void TimeGate::run() {
  std::uint64_t seen_wakes = 0;
  for (;;) {
    std::unique_lock<std::mutex> lock(mutex_);
    if (!held_) {
      lock.unlock();
      sc_core::wait(hold_event_);
      continue;
    }
    const sc_core::sc_time now = sc_core::sc_time_stamp();
    const sc_core::sc_time limit = from_ns(limit_ns_);
    if (limit > now) {
      lock.unlock();
      sc_core::wait(limit - now, hold_event_);
      continue;
    }
    // At the limit: let everything at this instant happen first.
    if (sc_core::sc_pending_activity_at_current_time()) {
      lock.unlock();
      sc_core::wait(sc_core::SC_ZERO_TIME);
      continue;
    }
    seen_wakes = wakes_;
    const std::uint64_t rest_ns = limit_ns_;
    // Reported once per hold and per grant: a rest after a job at the same instant answers
    // nothing the scheduler asked, and a late report of it would read as the answer to its
    // next grant.
    const bool report = report_next_rest_ || grants_ != reported_grants_;
    report_next_rest_ = false;
    reported_grants_ = grants_;
    if (report && on_rest_) {
      lock.unlock();
      on_rest_(rest_ns);
      lock.lock();
    }
    changed_.wait(lock, [&] { return !held_ || limit_ns_ > rest_ns || wakes_ != seen_wakes; });
    lock.unlock();
    // A job may be waiting in the kernel's asynchronous updates: one delta cycle takes it.
    sc_core::wait(sc_core::SC_ZERO_TIME);
  }
}

}  // namespace emmcsim::models
