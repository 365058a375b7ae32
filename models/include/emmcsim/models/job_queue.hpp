// JobQueue — work for the SystemC kernel thread, handed in from any other thread: how servers,
// a test's main thread or a guest's front reach the simulation without touching model state
// themselves (one owner per device state). post() queues a job and wakes the kernel with
// async_request_update(); processes of the kernel thread take the jobs in arrival order.
//
// The queue is attached suspending (async_attach_suspending()): until it is closed, sc_start()
// waits for work when nothing else is scheduled instead of ending, so a simulation fed from
// outside keeps running. close() ends that: no job is taken after it, and the simulation ends
// when nothing else is scheduled (or at sc_stop()). Construct the queue during elaboration.
//
// JobThread — a module whose SC_THREAD runs the jobs posted to it, one at a time, in arrival
// order. A job runs inside that thread, so it may wait() (a blocking TLM call does) and later
// jobs wait for it. A job that throws ends the simulation with its exception (out of sc_start()).
#pragma once

#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <systemc>

namespace emmcsim::models {

class JobQueue : public sc_core::sc_prim_channel {
 public:
  using Job = std::function<void()>;

  explicit JobQueue(const char* name = sc_core::sc_gen_unique_name("jobs"));

  // Any thread.
  void post(Job job);
  // An SC_THREAD of the kernel: waits (in simulated time, nothing advancing it) until a job is
  // queued, then takes it.
  Job next();
  // Any process of the kernel thread: the oldest queued job, without waiting.
  std::optional<Job> take();
  // Notified (one delta later) after jobs were posted, for processes that wait on their own.
  const sc_core::sc_event& posted_event() const { return posted_; }
  // Kernel thread: takes no job after this one — take() finds none, next() waits for ever, jobs
  // queued or posted later are dropped unrun — and detaches the queue from the kernel's suspend.
  void close();

 private:
  void update() override;

  std::mutex mutex_;
  std::deque<Job> jobs_;
  bool closed_ = false;
  sc_core::sc_event posted_;
};

class JobThread : public sc_core::sc_module {
 public:
  explicit JobThread(sc_core::sc_module_name name);
  const char* kind() const override { return "emmcsim::models::JobThread"; }

  // Any thread.
  void post(JobQueue::Job job) { jobs_.post(std::move(job)); }
  // From a job: no job runs after it (JobQueue::close()).
  void close() { jobs_.close(); }

 private:
  void run();

  JobQueue jobs_;
};

}  // namespace emmcsim::models
