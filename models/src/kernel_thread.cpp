// KernelThread (see kernel_thread.hpp).
#include "emmcsim/models/kernel_thread.hpp"

#include <exception>
#include <systemc>
#include <utility>

namespace emmcsim::models {

KernelThread::KernelThread(std::function<void(const std::string&)> on_failure)
    : thread_([on_failure = std::move(on_failure)] {
        try {
          sc_core::sc_start();
        } catch (const std::exception& e) {
          if (on_failure) on_failure(std::string("SystemC kernel: ") + e.what());
        }
      }) {}

KernelThread::~KernelThread() { join(); }

void KernelThread::join() {
  if (thread_.joinable()) thread_.join();
}

}  // namespace emmcsim::models
