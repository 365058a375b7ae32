// Support for SystemC scenarios under GoogleTest.
//
// SystemC 2.3 elaborates once per process, so each scenario needs a process of its own. CTest
// gives every discovered test one. When the binary is run by hand with several tests selected,
// SystemScenario runs the first in this process and re-executes the binary for each further one
// (--gtest_filter=Suite.Name), reporting its result here.
//
// TestHost is a host with an eMMC bus initiator socket whose SC_THREAD runs the scenario's body
// with an EmmcBusHost; a scenario builds devices and hosts, binds them and calls sc_start().
#pragma once

#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/wait.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <systemc>
#include <vector>

#include "emmcsim/models/emmc_bus.hpp"
#include "emmcsim/models/emmc_bus_host.hpp"

extern char** environ;

namespace emmcsim::testing {

class SystemScenario : public ::testing::Test {
 protected:
  void SetUp() override {
    static bool elaborated_in_this_process = false;
    if (!elaborated_in_this_process) {
      elaborated_in_this_process = true;
      return;
    }
    const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
    const std::string filter = std::string("--gtest_filter=") + info->test_suite_name() + "." + info->name();
    std::vector<char*> argv = {const_cast<char*>("/proc/self/exe"), const_cast<char*>(filter.c_str()), nullptr};
    pid_t child = 0;
    ASSERT_EQ(posix_spawn(&child, "/proc/self/exe", nullptr, nullptr, argv.data(), environ), 0);
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << info->name() << " failed in its own process (output above): SystemC elaborates once per process";
    GTEST_SKIP() << "passed in its own process (SystemC elaborates once per process)";
  }
};

// The host end of an eMMC bus: its thread runs `body` once, from time zero.
class TestHost : public sc_core::sc_module {
 public:
  models::EmmcBusInitiatorSocket<TestHost> bus;

  TestHost(sc_core::sc_module_name name, std::uint64_t clock_hz, std::function<void(models::EmmcBusHost&)> body)
      : sc_module(name), bus("bus"), clock_hz_(clock_hz), body_(std::move(body)) {
    SC_HAS_PROCESS(TestHost);
    SC_THREAD(run);
  }
  bool finished() const { return finished_; }

 private:
  void run() {
    models::EmmcBusHost host(bus, clock_hz_);
    body_(host);
    host.sync();
    finished_ = true;
  }
  std::uint64_t clock_hz_;
  std::function<void(models::EmmcBusHost&)> body_;
  bool finished_ = false;
};

// Picoseconds of `cycles` at `hz`, rounded up: the formula of spec/emmc.md written out here, so
// the scenarios do not take their expectations from the code under test.
inline std::uint64_t cycles_ps(std::uint64_t cycles, std::uint64_t hz) {
  const long double exact = static_cast<long double>(cycles) * 1e12L / static_cast<long double>(hz);
  return static_cast<std::uint64_t>(std::ceil(exact - 1e-9L));
}

inline std::uint64_t now_ps() { return sc_core::sc_time_stamp().value(); }

}  // namespace emmcsim::testing
