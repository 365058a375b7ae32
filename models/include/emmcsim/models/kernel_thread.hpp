// KernelThread — the SystemC kernel (sc_start()) on a std::thread of its own, so the process's
// other threads (Asio servers, a test's or benchmark's main thread) go on while the simulation
// runs. They reach it only by posting jobs (job_queue.hpp), never by touching model state.
//
// Start it once elaboration is done (constructing it starts the kernel). sc_start() returns when
// a process calls sc_stop(), or when nothing is left to do and no suspending channel (JobQueue)
// is attached; join() waits for that. An exception out of the kernel ends the thread and is
// reported to `on_failure` ("SystemC kernel: ..."), in the kernel thread.
#pragma once

#include <functional>
#include <string>
#include <thread>

namespace emmcsim::models {

class KernelThread {
 public:
  explicit KernelThread(std::function<void(const std::string&)> on_failure = {});
  // Joins: something must make the kernel stop first (a JobQueue keeps it waiting for work).
  ~KernelThread();
  KernelThread(const KernelThread&) = delete;
  KernelThread& operator=(const KernelThread&) = delete;

  // Waits until sc_start() has returned; at once after the first call.
  void join();

 private:
  std::thread thread_;
};

}  // namespace emmcsim::models
