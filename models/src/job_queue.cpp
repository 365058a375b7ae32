// JobQueue and JobThread (see job_queue.hpp).
#include "emmcsim/models/job_queue.hpp"

#include <utility>

namespace emmcsim::models {

JobQueue::JobQueue(const char* name) : sc_prim_channel(name) { async_attach_suspending(); }

void JobQueue::post(Job job) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (closed_) return;  // `job` is destroyed unrun
    jobs_.push_back(std::move(job));
  }
  async_request_update();
}

JobQueue::Job JobQueue::next() {
  for (;;) {
    if (std::optional<Job> job = take()) return std::move(*job);
    sc_core::wait(posted_);
  }
}

std::optional<JobQueue::Job> JobQueue::take() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (closed_ || jobs_.empty()) return std::nullopt;
  Job job = std::move(jobs_.front());
  jobs_.pop_front();
  return job;
}

void JobQueue::close() {
  std::deque<Job> dropped;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (closed_) return;
    closed_ = true;
    dropped.swap(jobs_);
  }
  async_detach_suspending();
}

void JobQueue::update() { posted_.notify(sc_core::SC_ZERO_TIME); }

JobThread::JobThread(sc_core::sc_module_name name) : sc_module(name), jobs_("jobs") {
  SC_HAS_PROCESS(JobThread);
  SC_THREAD(run);
}

void JobThread::run() {
  for (;;) jobs_.next()();
}

}  // namespace emmcsim::models
