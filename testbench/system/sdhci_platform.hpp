// A small virtual platform for the Sdhci scenarios: a CPU thread with an initiator socket on
// the controller's registers and its interrupt line, running a scenario's body with an
// SdhciDriver (testbench/common/sdhci_driver.hpp; what it does not expect is a test failure), and
// SdhciRpmbChannel, rpmb::Host's requests carried over that driver.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <systemc>
#include <tlm>
#include <tlm_utils/simple_initiator_socket.h>
#include <vector>

#include "emmcsim/mmc/image.hpp"
#include "emmcsim/models/emmc_device.hpp"
#include "emmcsim/models/sdhci.hpp"
#include "emmcsim/models/sdhci_registers.hpp"
#include "emmcsim/rpmb/host.hpp"
#include "sdhci_driver.hpp"
#include "system_memory.hpp"

namespace emmcsim::testing {

// The CPU: its thread runs `body` once, from time zero.
class Cpu : public sc_core::sc_module {
 public:
  tlm_utils::simple_initiator_socket<Cpu> bus;
  sc_core::sc_in<bool> irq;

  Cpu(sc_core::sc_module_name name, SystemMemory& memory, std::function<void(SdhciDriver&)> body)
      : sc_module(name), bus("bus"), irq("irq"), memory_(memory), body_(std::move(body)) {
    SC_HAS_PROCESS(Cpu);
    SC_THREAD(run);
  }
  bool finished() const { return finished_; }

 private:
  void run();
  SystemMemory& memory_;
  std::function<void(SdhciDriver&)> body_;
  bool finished_ = false;
};

inline void Cpu::run() {
  SdhciDriver driver(bus, irq, memory_);
  driver.on_unexpected = [](const std::string& what) { ADD_FAILURE() << "SdhciDriver: " << what; };
  body_(driver);
  finished_ = true;
}

// RPMB over the controller, as Linux's block driver sends it through sdhci: CMD25 or CMD18 with
// Auto CMD23 (the reliable-write bit in Argument 2) and ADMA2.
class SdhciRpmbChannel final : public rpmb::RequestChannel {
 public:
  explicit SdhciRpmbChannel(SdhciDriver& driver) : driver_(driver) {}
  void send(const rpmb::Frame* frames, std::size_t count, bool reliable_write) override {
    Transfer t;
    t.read = false;
    t.blocks = static_cast<std::uint32_t>(count);
    t.auto_cmd23 = static_cast<std::uint32_t>(count) | (reliable_write ? 1u << 31 : 0);
    for (std::size_t i = 0; i < count; ++i)
      std::memcpy(driver_.memory().at(t.memory + 512 * i), frames[i].bytes(), 512);
    last = driver_.transfer(25, 0, t);
    if (last.error != 0 && recover_after_error) recover_after_error();
  }
  void receive(rpmb::Frame* frames, std::size_t count) override {
    Transfer t;
    t.read = true;
    t.blocks = static_cast<std::uint32_t>(count);
    t.auto_cmd23 = static_cast<std::uint32_t>(count);
    last = driver_.transfer(18, 0, t);
    if (last.error != 0 && recover_after_error) recover_after_error();
    for (std::size_t i = 0; i < count; ++i)
      frames[i] = rpmb::Frame::from_bytes(driver_.memory().at(t.memory + 512 * i));
  }
  CommandResult last;
  // What the driver does after a transfer error (reset the lines, CMD12): mmc_blk's recovery.
  std::function<void()> recover_after_error;

 private:
  SdhciDriver& driver_;
};

}  // namespace emmcsim::testing
