// A small virtual platform for the Sdhci scenarios (sdhci_test.cpp, sdhci_version4_test.cpp,
// gl9763e_test.cpp): a CPU thread with an initiator socket on the controller's registers and its
// interrupt line, running a scenario's body with an SdhciDriver (testbench/common/sdhci_driver.hpp;
// what it does not expect is a test failure); SdhciPlatform, the CPU with an Sdhci, memory and an
// EmmcDevice; the recovery a driver does after an error; and SdhciRpmbChannel, rpmb::Host's
// requests carried over the driver.
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

#include "emmcsim/mmc/card_status.hpp"
#include "emmcsim/mmc/image.hpp"
#include "emmcsim/models/emmc_device.hpp"
#include "emmcsim/models/sdhci.hpp"
#include "emmcsim/models/sdhci_registers.hpp"
#include "emmcsim/rpmb/host.hpp"
#include "sdhci_driver.hpp"
#include "system_memory.hpp"
#include "system_scenario.hpp"

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

inline constexpr auto kTran = static_cast<std::uint32_t>(mmc::CardState::tran);

// Each scenario elaborates in its own process (system_scenario.hpp).
class SdhciScenario : public SystemScenario {};

// Test data: n bytes that differ block to block.
inline std::vector<std::uint8_t> pattern(std::size_t n, std::uint8_t seed) {
  std::vector<std::uint8_t> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::uint8_t>(seed + i * 13 + i / 512);
  return v;
}

// The platform of the Sdhci scenarios: CPU, controller, memory (at memory_base) and card, bound
// and simulated to the end; `phases` records every bus phase the card saw.
struct SdhciPlatform {
  explicit SdhciPlatform(std::function<void(SdhciDriver&)> body,
                         const mmc::DeviceConfig& config = mmc::default_device_config(),
                         const models::SdhciCapabilities& capabilities = {}, std::uint64_t memory_base = 0)
      : image(config),
        device("card", config, image.backend()),
        sdhci("sdhci", capabilities),
        memory("memory", 1u << 20),
        cpu("cpu", memory, std::move(body)),
        irq("irq") {
    memory.base = memory_base;
    cpu.bus.bind(sdhci.regs);
    sdhci.dma.bind(memory.socket);
    sdhci.card.bind(device.bus);
    sdhci.irq(irq);
    cpu.irq(irq);
    device.on_phase([this](const models::BusPhase& p) { phases.push_back(p); });
  }
  void run() {
    sc_core::sc_start();
    EXPECT_TRUE(cpu.finished()) << "the scenario did not run to its end";
  }
  // The last phase the device saw for command `index`.
  const models::BusPhase* last_command(std::uint8_t index) const {
    for (auto it = phases.rbegin(); it != phases.rend(); ++it)
      if (it->operation == models::EmmcBusOperation::command && it->command.index == index) return &*it;
    return nullptr;
  }
  mmc::MemoryImage image;
  models::EmmcDevice device;
  models::Sdhci sdhci;
  SystemMemory memory;
  Cpu cpu;
  sc_core::sc_signal<bool> irq;
  std::vector<models::BusPhase> phases;
};

// A transfer that stops on an error, then the recovery a driver does (sdhci_finish_data): reset
// CMD and DAT, CMD12 if the card is still in a data state.
inline void recover(SdhciDriver& d) {
  d.wr8(reg::kSoftwareReset, reg::kResetCmd | reg::kResetData);
  const CommandResult status = d.command(13, kRcaArg, kRespR1);
  if (mmc::status::current_state(status.response) != kTran) d.command(12, 0, kRespR1b);
  EXPECT_EQ(mmc::status::current_state(d.command(13, kRcaArg, kRespR1).response), kTran);
}

}  // namespace emmcsim::testing
