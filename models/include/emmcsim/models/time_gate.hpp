// TimeGate — holds the SystemC kernel's time where an outside scheduler allows it: the daemon's
// time-travel calendar (transport/time_travel_calendar.hpp), so that a User-Mode Linux guest's
// clock and sc_time_stamp() are one (docs/linux.md "Deterministic runs").
//
//   free      (no scheduler) the gate does nothing; time runs as the models need it
//   held      time advances to the granted instant and no further. There the gate settles the
//             instant (every delta cycle at it runs), reports the rest (on_rest: once per hold()
//             and per grant(), so each report answers the scheduler's latest request) and blocks
//             the kernel thread until a later instant is granted, a job is posted (it runs at the
//             instant, in zero simulated time, and the gate rests again, unreported) or the gate
//             is released.
//
//   kernel thread ─ hold() ─▶ rests at now (rounded up to a whole nanosecond) ─ on_rest(S0)
//   calendar ─ grant(t) ─▶ runs to t ─ on_rest(t)      or      stop_here() at t_irq ─ on_rest(t_irq)
//
// Ports: none; one SC_THREAD ("gate"). Instants are whole nanoseconds (the guest's unit): a grant,
// and a stop between two nanoseconds rests at the next one. Threads: hold() and stop_here() from
// the kernel thread (a job or a process); grant(), wake() and release() from any thread.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <systemc>

namespace emmcsim::models {

class TimeGate : public sc_core::sc_module {
 public:
  explicit TimeGate(sc_core::sc_module_name name);
  const char* kind() const override { return "emmcsim::models::TimeGate"; }

  // Before the kernel starts: called in the kernel thread each time the gate comes to rest.
  void on_rest(std::function<void(std::uint64_t ns)> rested) { on_rest_ = std::move(rested); }

  // Kernel thread: from now on time is granted from outside; rest at the current instant.
  void hold();
  // Kernel thread: rest at the current instant (the next whole nanosecond), whatever was granted
  // (an interrupt the guest must take before time goes on).
  void stop_here();
  // Any thread: time may advance to `until_ns` (grants only ever extend).
  void grant(std::uint64_t until_ns);
  // Any thread: a job was posted (TimedBlockDevice::post); let it run at the resting instant.
  void wake();
  // Any thread: no scheduler any more: free running from the next rest on.
  void release();

  bool held() const;
  // The largest instant a grant may name (SystemC's time range at its resolution).
  static std::uint64_t max_grant_ns();
  static std::uint64_t ceil_ns(const sc_core::sc_time& t);

 private:
  void run();

  mutable std::mutex mutex_;
  std::condition_variable changed_;
  bool held_ = false;
  std::uint64_t limit_ns_ = 0;
  std::uint64_t wakes_ = 0;
  std::uint64_t grants_ = 0;
  std::uint64_t reported_grants_ = 0;
  bool report_next_rest_ = false;
  sc_core::sc_event hold_event_;  // hold()/stop_here(): the gate re-examines its limit
  std::function<void(std::uint64_t)> on_rest_;
};

}  // namespace emmcsim::models
