// Sdhci's version 4 on its sockets, as Linux 6.1's sdhci.c uses it for a GL9763E
// (docs/linux-sdhci-gl9763e.md): host control 2 and the preset values, version 4 mode's 64-bit
// DMA, SDMA and Auto CMD auto select, 1.8 V signalling, and the bring-ups to HS400. The platform is
// sdhci_platform.hpp's; each test is its own SystemC elaboration (system_scenario.hpp).
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "emmcsim/mmc/card_status.hpp"
#include "emmcsim/models/sdhci.hpp"
#include "sdhci_platform.hpp"

namespace emmcsim::testing {
namespace {

namespace st = mmc::status;
using Platform = SdhciPlatform;

models::SdhciCapabilities version_410() {
  models::SdhciCapabilities c;
  c.version = models::SdhciVersion::v4_10;
  c.vendor_version = 0x01;
  c.addressing_64 = true;
  return c;
}

constexpr std::uint64_t kAbove4GiB = 0x1'0000'0000;  // the memory's base: DMA needs 64-bit addresses

TEST_F(SdhciScenario, AVersion410ControllerKeepsTheHostControl2BitsLinuxWritesAndReadsPresets) {
  Platform p(
      [](SdhciDriver& d) {
        d.wr8(reg::kSoftwareReset, reg::kResetAll);
        EXPECT_EQ(d.rd16(reg::kHostVersion), 0x0100 | reg::kSpecVersion410);
        const std::uint32_t caps = d.rd32(reg::kCapabilities);
        EXPECT_TRUE(caps & reg::kCapAddressing64V4);
        EXPECT_TRUE(caps & reg::kCapAddressing64);
        // Preset values for the 200 MHz base clock: 400 kHz, 25, 50, 25, 50, 100, 200, 50 MHz.
        const std::uint16_t dividers[8] = {250, 4, 2, 4, 2, 1, 0, 2};
        for (std::uint32_t i = 0; i < 8; ++i) EXPECT_EQ(d.rd16(reg::kPresetValues + 2 * i), dividers[i]) << i;
        // What sdhci.c writes stays: version 4 mode, 64-bit addressing, CMD23 enable, 1.8 V
        // signalling (stable), a UHS mode, preset value enable, PLL enable.
        const std::uint16_t linux_bits = reg::kCtrl2Version4Enable | reg::kCtrl2Addressing64 | reg::kCtrl2Cmd23Enable |
                                         reg::kCtrl2Signal180 | reg::kCtrl2UhsSdr104 | reg::kCtrl2PresetEnable;
        d.wr16(reg::kHostControl2, linux_bits);
        EXPECT_EQ(d.rd16(reg::kHostControl2), linux_bits);
        d.wr16(reg::kClockControl, reg::kClockInternalEnable | reg::kClockPllEnable);
        EXPECT_EQ(d.rd16(reg::kClockControl),
                  reg::kClockInternalEnable | reg::kClockPllEnable | reg::kClockInternalStable);
        // What it lacks does not: 26-bit ADMA2 lengths, asynchronous interrupts.
        d.wr16(reg::kHostControl2, reg::kCtrl2Version4Enable | reg::kCtrl2Adma2LengthMode | reg::kCtrl2AsyncInterrupt);
        EXPECT_EQ(d.rd16(reg::kHostControl2), reg::kCtrl2Version4Enable);
        // The GL9763E driver's HS400 (7) and HS (SDR25) are stored as written; a byte write
        // reaches host control 2 too.
        d.wr16(reg::kHostControl2, 7);
        EXPECT_EQ(d.rd16(reg::kHostControl2), 7);
        d.wr8(reg::kHostControl2, reg::kCtrl2UhsSdr25 | reg::kCtrl2Signal180);
        EXPECT_EQ(d.rd16(reg::kHostControl2), reg::kCtrl2UhsSdr25 | reg::kCtrl2Signal180);
        // Reset all clears it: Linux enables version 4 mode again after every reset.
        d.wr8(reg::kSoftwareReset, reg::kResetAll);
        EXPECT_EQ(d.rd16(reg::kHostControl2), 0);
      },
      mmc::default_device_config(), version_410());
  p.run();
}

TEST_F(SdhciScenario, AVersion300ControllerHasNoVersion4Mode) {
  Platform* platform = nullptr;
  Platform p([&](SdhciDriver& d) {
    d.init();
    EXPECT_EQ(d.rd16(reg::kHostVersion), reg::kSpecVersion300);
    EXPECT_FALSE(d.rd32(reg::kCapabilities) & (reg::kCapAddressing64 | reg::kCapAddressing64V4));
    d.enable_v4_mode();  // as Linux would on it: the bits do not stick
    d.wr16(reg::kHostControl2, d.rd16(reg::kHostControl2) | reg::kCtrl2Addressing64 | reg::kCtrl2Cmd23Enable);
    EXPECT_EQ(d.rd16(reg::kHostControl2), 0);
    EXPECT_TRUE(d.switch_to_1v8()) << "SDR104 and DDR50 need 1.8 V: the controller can switch";
    // Auto CMD auto select is reserved before 4.10: a multi-block read with it sends no Auto CMD.
    d.bring_up_high_speed();
    d.write_descriptors({{0x10000, 1024}});
    d.wr8(reg::kHostControl1, static_cast<std::uint8_t>(d.rd8(reg::kHostControl1) | reg::kCtrlAdma32));
    d.wr32(reg::kAdmaAddress, SdhciDriver::kDescriptors);
    d.wr16(reg::kBlockSize, 512);
    d.wr16(reg::kBlockCount, 2);
    const std::size_t before = platform->phases.size();
    d.issue_command(18, 0, kRespR1 | reg::kCmdDataPresent,
                    reg::kTrnDmaEnable | reg::kTrnBlockCountEnable | reg::kTrnMultiBlock | reg::kTrnRead |
                        reg::kTrnAutoCmdAutoSelect);
    EXPECT_TRUE(d.wait_irq(reg::kIntTransferComplete) & reg::kIntTransferComplete);
    d.clear_status();
    for (std::size_t i = before; i < platform->phases.size(); ++i) {
      const models::BusPhase& ph = platform->phases[i];
      if (ph.operation == models::EmmcBusOperation::command) {
        EXPECT_EQ(ph.command.index, 18) << "no Auto CMD";
      }
    }
    d.command(12, 0, kRespR1b);  // the card is still sending
    EXPECT_EQ(st::current_state(d.command(13, kRcaArg, kRespR1).response), kTran);
  });
  platform = &p;
  p.run();
}

TEST_F(SdhciScenario, WithoutAUhsModeTheControllerCannotSignalAt1v8) {
  models::SdhciCapabilities c;
  c.sdr104 = c.ddr50 = false;
  Platform p(
      [](SdhciDriver& d) {
        d.init();
        EXPECT_FALSE(d.switch_to_1v8()) << "sdhci_start_signal_voltage_switch reads the bit back cleared";
      },
      mmc::default_device_config(), c);
  p.run();
}

// Linux's data path on a version 4.10 controller in version 4 mode with 64-bit DMA: 16-byte
// ADMA2 descriptors whose addresses need their upper halves (the memory is above 4 GiB), Auto
// CMD23 through Auto CMD auto select with CMD23 enable (its argument still in 0x00), and Auto
// CMD12 through auto select without it. An ADMA error names its descriptor in all 64 bits.
TEST_F(SdhciScenario, Version4ModeMovesDataAbove4GiBWith16ByteDescriptorsAndAutoCmdAutoSelect) {
  const std::vector<std::uint8_t> data = pattern(16 * 512, 7);
  std::vector<std::uint8_t> read_back(data.size());
  std::uint64_t error_descriptor = 0;
  Platform* platform = nullptr;
  Platform p(
      [&](SdhciDriver& d) {
        d.enable_v4_mode();
        d.init();
        EXPECT_TRUE(d.dma64());
        EXPECT_EQ(d.descriptor_format(), models::Adma2Format::bits64_v4);
        d.bring_up_high_speed();
        std::memcpy(d.memory().at(kAbove4GiB + 0x10000), data.data(), data.size());
        d.write_descriptors(
            {{kAbove4GiB + 0x10000, 1000}, {kAbove4GiB + 0x10000 + 1000, 5000}, {kAbove4GiB + 0x10000 + 6000, 2192}});
        Transfer w;
        w.read = false;
        w.blocks = 16;
        w.auto_cmd23 = 16;
        const CommandResult write = d.transfer(25, 100, w);
        EXPECT_EQ(write.error, 0);
        EXPECT_EQ(
            d.rd16(reg::kHostControl2) & (reg::kCtrl2Version4Enable | reg::kCtrl2Addressing64 | reg::kCtrl2Cmd23Enable),
            reg::kCtrl2Version4Enable | reg::kCtrl2Addressing64 | reg::kCtrl2Cmd23Enable);
        const std::size_t commands_before_read = platform->phases.size();
        Transfer r;
        r.blocks = 16;
        r.memory = kAbove4GiB + 0x20000;
        r.auto_cmd12 = true;
        const CommandResult read = d.transfer(18, 100, r);
        EXPECT_EQ(read.error, 0);
        EXPECT_FALSE(d.rd16(reg::kHostControl2) & reg::kCtrl2Cmd23Enable);
        std::memcpy(read_back.data(), d.memory().at(kAbove4GiB + 0x20000), read_back.size());
        for (std::size_t i = commands_before_read; i < platform->phases.size(); ++i) {
          const models::BusPhase& ph = platform->phases[i];
          if (ph.operation == models::EmmcBusOperation::command) {
            EXPECT_NE(ph.command.index, 23) << "no CMD23 for the read";
          }
        }
        // An invalid second descriptor: the ADMA address register holds its 64-bit address.
        d.write_descriptors({{kAbove4GiB + 0x10000, 512}, {kAbove4GiB + 0x10200, 1536}});
        models::Adma2Descriptor bad;
        bad.action = models::Adma2Action::transfer;
        bad.length = 1536;
        d.put_descriptor(1, bad);
        Transfer e;
        e.blocks = 4;
        e.auto_cmd23 = 4;
        EXPECT_EQ(d.transfer(18, 0, e).error, reg::kErrAdma);
        error_descriptor = d.rd32(reg::kAdmaAddress) | (std::uint64_t{d.rd32(reg::kAdmaAddressHigh)} << 32);
        recover(d);
      },
      mmc::default_device_config(), version_410(), kAbove4GiB);
  platform = &p;
  p.run();
  EXPECT_EQ(read_back, data);
  const models::BusPhase* cmd23 = p.last_command(23);
  ASSERT_NE(cmd23, nullptr);
  EXPECT_EQ(cmd23->command.arg, 4u) << "Argument 2 (0x00) is Auto CMD23's argument in version 4 mode";
  ASSERT_NE(p.last_command(12), nullptr) << "auto select without CMD23 enable is Auto CMD12";
  EXPECT_EQ(error_descriptor, kAbove4GiB + SdhciDriver::kDescriptors + 16);
}

// SDMA in version 4 mode: its address is the ADMA/SDMA address register (0x58, 64 bits with
// 64-bit addressing), which counts up with the data; after a boundary pause only a write of its
// top byte (0x5F) goes on — not Argument 2 at 0x00, not the low half alone.
TEST_F(SdhciScenario, Version4SdmaUsesTheAdmaAddressRegisterAndResumesOnItsTopByte) {
  const std::vector<std::uint8_t> data = pattern(2 * 512, 3);
  std::vector<std::uint8_t> read_back(data.size());
  Platform p(
      [&](SdhciDriver& d) {
        d.enable_v4_mode();
        d.init();
        d.bring_up_high_speed();
        std::memcpy(d.memory().at(kAbove4GiB + 0x10000), data.data(), data.size());
        Transfer w;
        w.read = false;
        w.blocks = 2;
        w.auto_cmd23 = 2;
        w.memory = kAbove4GiB + 0x10000;
        ASSERT_EQ(d.transfer(25, 0, w).error, 0);
        // Two blocks read by SDMA from one block before a 4 KiB boundary, as sdhci.c programs it.
        const std::uint64_t start = kAbove4GiB + 0x20000 + 4096 - 512;
        d.wr16(reg::kHostControl2, d.rd16(reg::kHostControl2) | reg::kCtrl2Addressing64);
        d.wr8(reg::kHostControl1, static_cast<std::uint8_t>(d.rd8(reg::kHostControl1) & ~reg::kCtrlDmaMask));
        d.set_sdma_address(start);
        d.wr16(reg::kBlockSize, 512);
        d.wr16(reg::kBlockCount, 2);
        d.wr16(reg::kHostControl2, d.rd16(reg::kHostControl2) & ~reg::kCtrl2Cmd23Enable);
        d.issue_command(18, 0, kRespR1 | reg::kCmdDataPresent,
                        reg::kTrnDmaEnable | reg::kTrnBlockCountEnable | reg::kTrnMultiBlock | reg::kTrnRead |
                            reg::kTrnAutoCmdAutoSelect);
        EXPECT_TRUE(d.wait_irq(reg::kIntDma) & reg::kIntDma);
        d.wr16(reg::kNormalIntStatus, reg::kIntCommandComplete | reg::kIntDma);
        const std::uint64_t boundary = kAbove4GiB + 0x21000;
        EXPECT_EQ(d.rd32(reg::kAdmaAddress) | (std::uint64_t{d.rd32(reg::kAdmaAddressHigh)} << 32), boundary);
        d.wr32(reg::kSdmaAddress, 0x1234);  // Argument 2: not SDMA's register in version 4 mode
        d.wr32(reg::kAdmaAddress, static_cast<std::uint32_t>(boundary));  // the low half alone
        sc_core::wait(1, sc_core::SC_MS);
        EXPECT_FALSE(d.rd16(reg::kNormalIntStatus) & reg::kIntTransferComplete) << "still paused";
        d.wr32(reg::kAdmaAddressHigh, static_cast<std::uint32_t>(boundary >> 32));
        const std::uint16_t s = d.wait_irq(reg::kIntTransferComplete);
        EXPECT_EQ(s & (reg::kIntTransferComplete | reg::kIntErrorSummary), reg::kIntTransferComplete);
        d.clear_status();
        std::memcpy(read_back.data(), d.memory().at(start), read_back.size());
        // And through the driver's own loop (sdhci_data_irq writes the next boundary).
        Transfer r;
        r.blocks = 16;
        r.mode = DataMode::sdma;
        r.memory = kAbove4GiB + 0x40000 - 1024;
        r.sdma_boundary = 0;
        r.auto_cmd12 = true;
        d.dma_interrupts = 0;
        EXPECT_EQ(d.transfer(18, 0, r).error, 0);
        EXPECT_EQ(d.dma_interrupts, 2u) << "boundaries at 0x40000 and 0x41000";
      },
      mmc::default_device_config(), version_410(), kAbove4GiB);
  p.run();
  EXPECT_EQ(read_back, data);
}

// Version 3.00 with 64-bit DMA: DMA select 11b and 12-byte descriptors (sdhci.c's "ADMA 64-bit").
TEST_F(SdhciScenario, AVersion300ControllerWith64BitDmaUses12ByteDescriptors) {
  const std::vector<std::uint8_t> data = pattern(8 * 512, 11);
  std::vector<std::uint8_t> read_back(data.size());
  models::SdhciCapabilities c;
  c.addressing_64 = true;
  Platform p(
      [&](SdhciDriver& d) {
        d.init();
        EXPECT_EQ(d.descriptor_format(), models::Adma2Format::bits64);
        d.bring_up_high_speed();
        std::memcpy(d.memory().at(kAbove4GiB + 0x10000), data.data(), data.size());
        d.write_descriptors({{kAbove4GiB + 0x10000, 1536}, {kAbove4GiB + 0x10000 + 1536, 2560}});
        Transfer w;
        w.read = false;
        w.blocks = 8;
        w.auto_cmd23 = 8;
        EXPECT_EQ(d.transfer(25, 8, w).error, 0);
        EXPECT_EQ(d.rd8(reg::kHostControl1) & reg::kCtrlDmaMask, reg::kCtrlAdma64);
        Transfer r;
        r.blocks = 8;
        r.auto_cmd23 = 8;
        r.memory = kAbove4GiB + 0x30000;
        EXPECT_EQ(d.transfer(18, 8, r).error, 0);
        std::memcpy(read_back.data(), d.memory().at(kAbove4GiB + 0x30000), read_back.size());
      },
      mmc::default_device_config(), c, kAbove4GiB);
  p.run();
  EXPECT_EQ(read_back, data);
}

// The GL9763E's way to HS400 with enhanced strobe, as Linux 6.1 runs it (mmc_select_hs400es with
// sdhci-pci-gli's set_uhs_signaling): 1.8 V signalling, 8-bit bus, HS timing (UHS mode SDR25),
// DDR 8-bit with strobe, HS400 (UHS mode 7), 200 MHz. The enhanced-strobe bit itself is the
// GL9763E's vendor register (0x52C), not the SDHCI's.
TEST_F(SdhciScenario, Hs400WithEnhancedStrobeAsLinuxBringsUpAGl9763e) {
  CommandResult read;
  Platform p(
      [&](SdhciDriver& d) {
        d.enable_v4_mode();
        d.init();
        d.identify();
        ASSERT_TRUE(d.switch_to_1v8());
        d.set_clock(25'000'000);
        ASSERT_EQ(d.switch_field(183, 2).error, 0);  // 8-bit
        d.wr8(reg::kHostControl1, static_cast<std::uint8_t>(d.rd8(reg::kHostControl1) | reg::kCtrl8BitBus));
        ASSERT_EQ(d.switch_field(185, 1).error, 0);  // HS
        d.wr8(reg::kHostControl1, static_cast<std::uint8_t>(d.rd8(reg::kHostControl1) | reg::kCtrlHighSpeed));
        d.set_uhs_mode(reg::kCtrl2UhsSdr25);
        d.set_clock(50'000'000);
        EXPECT_EQ(st::current_state(d.command(13, kRcaArg, kRespR1).response), kTran);
        ASSERT_EQ(d.switch_field(183, 0x86).error, 0);  // DDR 8-bit with enhanced strobe
        ASSERT_EQ(d.switch_field(185, 3).error, 0);     // HS400
        d.set_uhs_mode(7);
        d.set_clock(200'000'000);
        EXPECT_EQ(st::current_state(d.command(13, kRcaArg, kRespR1).response), kTran);
        EXPECT_EQ(d.rd16(reg::kHostControl2) & (reg::kCtrl2UhsMask | reg::kCtrl2Signal180), 7 | reg::kCtrl2Signal180);
        Transfer r;
        r.blocks = 16;
        r.auto_cmd23 = 16;
        read = d.transfer(18, 0, r);
        EXPECT_EQ(read.error, 0);
      },
      mmc::default_device_config(), version_410());
  p.run();
  ASSERT_FALSE(p.phases.empty());
  EXPECT_EQ(p.phases.back().mode, (models::BusMode{models::BusSpeed::hs400, 8, true}));
  EXPECT_EQ(p.device.card().ext_csd()[183], 0x86);
}

// Without enhanced strobe: HS200 (UHS mode SDR104) at 200 MHz, tuning with CMD21, then HS400
// by way of HS (mmc_select_hs400).
TEST_F(SdhciScenario, Hs200TuningThenHs400) {
  Platform p(
      [&](SdhciDriver& d) {
        d.enable_v4_mode();
        d.init();
        d.identify();
        ASSERT_TRUE(d.switch_to_1v8());
        d.set_clock(25'000'000);
        ASSERT_EQ(d.switch_field(183, 2).error, 0);
        d.wr8(reg::kHostControl1, static_cast<std::uint8_t>(d.rd8(reg::kHostControl1) | reg::kCtrl8BitBus));
        ASSERT_EQ(d.switch_field(185, 2).error, 0);  // HS200
        d.set_uhs_mode(reg::kCtrl2UhsSdr104);
        d.set_clock(200'000'000);
        // sdhci_execute_tuning: execute tuning, CMD21 of 128 bytes, only buffer read ready.
        d.wr16(reg::kHostControl2, d.rd16(reg::kHostControl2) | reg::kCtrl2ExecuteTuning);
        d.wr16(reg::kBlockSize, 128);
        d.wr16(reg::kTransferMode, reg::kTrnRead);
        d.issue_command(21, 0, kRespR1 | reg::kCmdDataPresent, reg::kTrnRead);
        EXPECT_EQ(d.wait_irq(reg::kIntBufferReadReady), reg::kIntBufferReadReady);
        d.clear_status();
        EXPECT_EQ(d.rd16(reg::kHostControl2) & (reg::kCtrl2ExecuteTuning | reg::kCtrl2TunedClock),
                  reg::kCtrl2TunedClock);
        // mmc_select_hs400: HS at 50 MHz, DDR 8-bit, HS400 at 200 MHz.
        ASSERT_EQ(d.switch_field(185, 1).error, 0);
        d.set_uhs_mode(reg::kCtrl2UhsSdr25);
        d.set_clock(50'000'000);
        EXPECT_EQ(st::current_state(d.command(13, kRcaArg, kRespR1).response), kTran);
        ASSERT_EQ(d.switch_field(183, 6).error, 0);
        ASSERT_EQ(d.switch_field(185, 3).error, 0);
        d.set_uhs_mode(7);
        d.set_clock(200'000'000);
        EXPECT_EQ(st::current_state(d.command(13, kRcaArg, kRespR1).response), kTran);
        Transfer r;
        r.blocks = 8;
        r.auto_cmd23 = 8;
        EXPECT_EQ(d.transfer(18, 0, r).error, 0);
      },
      mmc::default_device_config(), version_410());
  p.run();
  ASSERT_NE(p.last_command(21), nullptr);
  EXPECT_EQ(p.phases.back().mode, (models::BusMode{models::BusSpeed::hs400, 8, true}));
}

}  // namespace
}  // namespace emmcsim::testing
