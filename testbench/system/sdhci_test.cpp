// Sdhci on its sockets: a CPU thread programs the registers as a driver does, system memory
// serves its DMA, an EmmcDevice answers on the eMMC bus (sdhci_platform.hpp). Results are checked
// against the card and the specification, and simulated times against the cycle counts of
// spec/emmc.md and the bus phases the device reports: the controller adds no time of its own.
// Each test is its own SystemC elaboration (system_scenario.hpp).
#include "emmcsim/models/sdhci.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "emmcsim/mmc/card_status.hpp"
#include "sdhci_platform.hpp"
#include "system_scenario.hpp"

namespace emmcsim::testing {
namespace {

using models::Sdhci;
namespace st = mmc::status;

constexpr std::uint64_t kIdentHz = 400'000;
constexpr std::uint64_t kShortCommand = 48 + 2 + 48 + 8;
constexpr std::uint64_t kLongCommand = 48 + 2 + 136 + 8;
constexpr std::uint64_t kNoResponse = 48 + 64 + 8;  // N_CR max: what a host waits for a response that never comes
// Identification's CMD1 and CMD2 answer exactly N_ID = 5 cycles after the command; a broadcast
// command without a response costs the command and N_CC before the next.
constexpr std::uint64_t kIdentShortCommand = 48 + 5 + 48 + 8;
constexpr std::uint64_t kIdentLongCommand = 48 + 5 + 136 + 8;
constexpr std::uint64_t kBroadcastCommand = 48 + 8;

using Platform = SdhciPlatform;

// The interrupt line once it has settled: the controller's method drives it in the next delta
// cycle, and the signal shows the value in the one after.
bool irq_high(SdhciDriver& d) {
  sc_core::wait(sc_core::SC_ZERO_TIME);
  sc_core::wait(sc_core::SC_ZERO_TIME);
  return d.irq();
}

TEST_F(SdhciScenario, RegistersAfterResetDescribeAVersion300Controller) {
  Platform p([](SdhciDriver& d) {
    d.wr8(reg::kSoftwareReset, reg::kResetAll);
    EXPECT_EQ(d.rd16(reg::kHostVersion) & 0xFF, reg::kSpecVersion300);
    const std::uint32_t caps = d.rd32(reg::kCapabilities);
    EXPECT_EQ((caps >> 8) & 0xFF, 200u) << "base clock, MHz";
    EXPECT_EQ(caps & 0xBF, (1u << 7) | 1u) << "timeout clock 1 MHz";
    EXPECT_TRUE(caps & reg::kCap8Bit);
    EXPECT_TRUE(caps & reg::kCapAdma2);
    EXPECT_TRUE(caps & reg::kCapSdma);
    EXPECT_TRUE(caps & reg::kCapHighSpeed);
    EXPECT_TRUE(d.rd32(reg::kCapabilities + 4) & reg::kCap1Sdr104);
    const std::uint32_t present = d.rd32(reg::kPresentState);
    EXPECT_TRUE(present & reg::kCardInserted);
    EXPECT_FALSE(present & (reg::kCmdInhibit | reg::kDataInhibit));
    EXPECT_EQ((present >> reg::kDataLineLevelShift) & 0xF, 0xFu);
    // Clock: stable as soon as the internal clock is enabled.
    d.wr16(reg::kClockControl, reg::kClockInternalEnable);
    EXPECT_EQ(d.rd16(reg::kClockControl), reg::kClockInternalEnable | reg::kClockInternalStable);
    // Read-only registers ignore writes.
    d.wr32(reg::kCapabilities, 0);
    EXPECT_EQ(d.rd32(reg::kCapabilities), caps);
    // Status is write-1-to-clear; a status bit latches only when enabled; bit 15 sums the errors.
    d.wr16(reg::kForceErrorInt, reg::kErrDataCrc);
    EXPECT_EQ(d.rd16(reg::kErrorIntStatus), 0) << "error status enable is clear";
    d.wr16(reg::kErrorIntStatusEnable, 0xFFFF);
    d.wr16(reg::kForceErrorInt, reg::kErrDataCrc | reg::kErrAdma);
    EXPECT_EQ(d.rd16(reg::kErrorIntStatus), reg::kErrDataCrc | reg::kErrAdma);
    EXPECT_TRUE(d.rd16(reg::kNormalIntStatus) & reg::kIntErrorSummary);
    EXPECT_FALSE(irq_high(d)) << "no signal enable";
    d.wr16(reg::kErrorIntSignalEnable, reg::kErrAdma);
    EXPECT_TRUE(irq_high(d));
    d.wr16(reg::kErrorIntStatus, reg::kErrAdma);
    EXPECT_EQ(d.rd16(reg::kErrorIntStatus), reg::kErrDataCrc);
    EXPECT_FALSE(irq_high(d)) << "only the cleared bit was signalled";
    // Software reset: self-clearing, and everything but the capabilities back to zero.
    d.wr8(reg::kTimeoutControl, 0x0E);
    d.wr8(reg::kSoftwareReset, reg::kResetAll);
    EXPECT_EQ(d.rd8(reg::kSoftwareReset), 0);
    EXPECT_EQ(d.rd8(reg::kTimeoutControl), 0);
    EXPECT_EQ(d.rd16(reg::kErrorIntStatus), 0);
    EXPECT_EQ(d.rd16(reg::kClockControl), 0);
    EXPECT_EQ(d.rd32(reg::kCapabilities), caps);
  });
  p.run();
}

// The register table covers the map once, in offset order, and says what each byte does.
TEST(SdhciRegisterMap, EveryByteBelongsToExactlyOneRegister) {
  std::uint32_t next = 0;
  for (const Sdhci::Register& r : Sdhci::register_map()) {
    EXPECT_EQ(r.offset, next) << r.name;
    ASSERT_GT(r.width, 0u) << r.name;
    if (r.access != Sdhci::RegisterAccess::rsvd) {
      EXPECT_TRUE(r.width == 1 || r.width == 2 || r.width == 4 || r.width == 8 || r.width == 16) << r.name;
      EXPECT_EQ(r.offset % std::min<std::uint32_t>(r.width, 8), 0u) << r.name << " is aligned to its width";
    }
    if (r.on_write != nullptr) {
      EXPECT_TRUE(r.trigger < r.width || r.trigger == Sdhci::kAnyByte) << r.name;
    }
    if (r.computed != nullptr) {
      EXPECT_LE(r.width, 8u) << r.name;
    }
    for (std::uint32_t b = r.offset; b < r.offset + r.width; ++b) EXPECT_EQ(&Sdhci::register_at(b), &r) << b;
    next = r.offset + r.width;
  }
  EXPECT_EQ(next, reg::kRegisterSpace);
  EXPECT_EQ(Sdhci::register_at(reg::kCommand + 1).on_write, Sdhci::register_at(reg::kCommand).on_write);
  EXPECT_EQ(Sdhci::register_at(reg::kSoftwareReset).access, Sdhci::RegisterAccess::wo);
  EXPECT_EQ(Sdhci::register_at(reg::kNormalIntStatus + 1).access, Sdhci::RegisterAccess::w1c);
  EXPECT_EQ(Sdhci::register_at(reg::kBufferDataPort + 3).access, Sdhci::RegisterAccess::port);
  EXPECT_NE(Sdhci::register_at(reg::kPresentState).computed, nullptr);
}

// Byte-granular registers: a wide write writes each register it covers by its own rule, then
// runs their actions in offset order.
TEST_F(SdhciScenario, OneWriteActsOnEveryRegisterItCovers) {
  Platform p([](SdhciDriver& d) {
    d.init();
    // Clock control, timeout control and a CMD-line reset in one 32-bit write at 0x2C.
    const std::uint16_t clock = reg::divider_bits(250) | reg::kClockInternalEnable | reg::kClockCardEnable;
    d.wr32(reg::kClockControl, clock | (0x0Bu << 16) | (std::uint32_t{reg::kResetCmd} << 24));
    EXPECT_EQ(d.rd16(reg::kClockControl), clock | reg::kClockInternalStable);
    EXPECT_EQ(d.rd8(reg::kTimeoutControl), 0x0B);
    EXPECT_EQ(d.rd8(reg::kSoftwareReset), 0) << "done at once";
    // The same with reset all: it acts last, so it clears what the write just set.
    d.wr32(reg::kClockControl, clock | (0x0Bu << 16) | (std::uint32_t{reg::kResetAll} << 24));
    EXPECT_EQ(d.rd32(reg::kClockControl), 0u);
    // The internal clock stable bit is the controller's: writing it changes nothing.
    d.wr16(reg::kClockControl, reg::kClockInternalStable);
    EXPECT_EQ(d.rd16(reg::kClockControl), 0);
    // Reserved bytes and write-only registers read 0; read-only ones keep their value.
    d.wr8(reg::kAdmaErrorStatus + 1, 0xFF);
    d.wr32(0x70, 0xFFFFFFFF);
    d.wr32(0xF8, 0xFFFFFFFF);
    d.wr16(reg::kForceAutoCmdError, 0xFFFF);
    d.wr16(reg::kHostVersion, 0);
    EXPECT_EQ(d.rd8(reg::kAdmaErrorStatus + 1), 0);
    EXPECT_EQ(d.rd32(0x70), 0u);
    EXPECT_EQ(d.rd32(0xF8), 0u);
    EXPECT_EQ(d.rd16(reg::kForceAutoCmdError), 0);
    EXPECT_EQ(d.rd16(reg::kHostVersion) & 0xFF, reg::kSpecVersion300);
    // Bit 15 of the normal status is the error summary: clearing it takes clearing the errors.
    d.init();
    d.wr16(reg::kForceErrorInt, reg::kErrCommandCrc);
    d.wr16(reg::kNormalIntStatus, 0xFFFF);
    EXPECT_EQ(d.rd16(reg::kNormalIntStatus), reg::kIntErrorSummary);
    d.wr16(reg::kErrorIntStatus, reg::kErrCommandCrc);
    EXPECT_EQ(d.rd16(reg::kNormalIntStatus), 0);
    // A 64-bit write of argument, transfer mode and command issues the command.
    std::uint64_t cmd0 = std::uint64_t{reg::command_word(0, kRespNone)} << 48;
    EXPECT_EQ(d.access(tlm::TLM_WRITE_COMMAND, reg::kArgument, reinterpret_cast<std::uint8_t*>(&cmd0), 8),
              tlm::TLM_OK_RESPONSE);
    EXPECT_TRUE(d.rd32(reg::kPresentState) & reg::kCmdInhibit);
    EXPECT_TRUE(d.wait_irq(reg::kIntCommandComplete) & reg::kIntCommandComplete);
    // A byte write to the command's lower byte alone issues nothing.
    d.clear_status();
    d.wr8(reg::kCommand, 0);
    EXPECT_FALSE(d.rd32(reg::kPresentState) & reg::kCmdInhibit);
  });
  p.run();
}

TEST_F(SdhciScenario, AccessesOutsideTheMapOrWithByteEnablesAreRefused) {
  Platform p([](SdhciDriver& d) {
    std::uint8_t data[8] = {};
    std::uint8_t enables[4] = {0xFF, 0xFF, 0xFF, 0xFF};
    EXPECT_EQ(d.access(tlm::TLM_READ_COMMAND, 0x100, data, 4), tlm::TLM_ADDRESS_ERROR_RESPONSE);
    EXPECT_EQ(d.access(tlm::TLM_READ_COMMAND, 0xFE, data, 4), tlm::TLM_ADDRESS_ERROR_RESPONSE);
    EXPECT_EQ(d.access(tlm::TLM_READ_COMMAND, 0x02, data, 4), tlm::TLM_ADDRESS_ERROR_RESPONSE) << "misaligned";
    EXPECT_EQ(d.access(tlm::TLM_READ_COMMAND, 0x04, data, 3), tlm::TLM_ADDRESS_ERROR_RESPONSE) << "3 bytes";
    EXPECT_EQ(d.access(tlm::TLM_WRITE_COMMAND, 0x08, data, 4, enables), tlm::TLM_BYTE_ENABLE_ERROR_RESPONSE);
    EXPECT_EQ(d.access(tlm::TLM_READ_COMMAND, 0x40, data, 8), tlm::TLM_OK_RESPONSE);
    std::uint64_t caps = 0;
    std::memcpy(&caps, data, 8);
    EXPECT_EQ(caps & 0xFFFFFFFFu, d.rd32(reg::kCapabilities));
    // Byte and halfword accesses see the same little-endian register.
    d.wr32(reg::kArgument, 0x11223344);
    EXPECT_EQ(d.rd8(reg::kArgument + 1), 0x33);
    EXPECT_EQ(d.rd16(reg::kArgument + 2), 0x1122);
  });
  p.run();
}

TEST_F(SdhciScenario, CommandsCompleteWhenTheirResponsesEndOnTheBus) {
  mmc::Cid cid{};
  Platform p([&cid](SdhciDriver& d) {
    d.init();
    const CommandResult cmd0 = d.command(0, 0, kRespNone);
    EXPECT_EQ(cmd0.error, 0);
    EXPECT_EQ(cmd0.completed_ps - cmd0.issued_ps, cycles_ps(kBroadcastCommand, kIdentHz));
    CommandResult cmd1;
    for (int i = 0; i < 100; ++i) {
      cmd1 = d.command(1, 0x40FF8080, kRespR3);
      ASSERT_EQ(cmd1.error, 0);
      if (cmd1.response & (1u << 31)) break;
    }
    EXPECT_EQ(cmd1.completed_ps - cmd1.issued_ps, cycles_ps(kIdentShortCommand, kIdentHz));
    const CommandResult cmd2 = d.command(2, 0, kRespR2);
    EXPECT_EQ(cmd2.completed_ps - cmd2.issued_ps, cycles_ps(kIdentLongCommand, kIdentHz));
    // R2 in the response registers: bits 127:8 of the CID, without the CRC byte.
    for (std::uint32_t j = 0; j < 15; ++j) cid[14 - j] = d.rd8(reg::kResponse + j);
    EXPECT_EQ(d.rd8(reg::kResponse + 15), 0);
    d.command(3, kRcaArg, kRespR1);
    const CommandResult cmd13 = d.command(13, kRcaArg, kRespR1);
    EXPECT_EQ(st::current_state(cmd13.response), static_cast<std::uint32_t>(mmc::CardState::stby));
  });
  p.run();
  for (std::size_t i = 0; i < 15; ++i) EXPECT_EQ(cid[i], p.device.card().cid()[i]) << "CID byte " << i;
}

TEST_F(SdhciScenario, ACommandTheCardDoesNotAnswerTimesOut) {
  Platform p([](SdhciDriver& d) {
    d.init();
    // CMD13 to a card still in idle: illegal there, so no response.
    const CommandResult r = d.command(13, kRcaArg, kRespR1);
    EXPECT_EQ(r.error, reg::kErrCommandTimeout);
    EXPECT_TRUE(r.normal & reg::kIntErrorSummary);
    EXPECT_FALSE(r.normal & reg::kIntCommandComplete);
    EXPECT_EQ(r.completed_ps - r.issued_ps, cycles_ps(kNoResponse, kIdentHz));
    // As sdhci_cmd_irq does: reset the CMD line; the next command works.
    d.wr8(reg::kSoftwareReset, reg::kResetCmd);
    EXPECT_FALSE(d.rd32(reg::kPresentState) & reg::kCmdInhibit);
    d.identify();
    EXPECT_EQ(st::current_state(d.command(13, kRcaArg, kRespR1).response), kTran);
    // With the SD clock off, a command times out at once (and the model says why).
    d.wr16(reg::kClockControl, reg::kClockInternalEnable);
    const CommandResult off = d.command(13, kRcaArg, kRespR1);
    EXPECT_EQ(off.error, reg::kErrCommandTimeout);
    EXPECT_EQ(off.completed_ps, off.issued_ps);
  });
  p.run();
}

TEST_F(SdhciScenario, PioReadsTheExtCsdThroughTheBufferDataPort) {
  std::vector<std::uint8_t> ext_csd(512);
  Platform p([&](SdhciDriver& d) {
    d.init();
    d.identify();
    d.set_clock(25'000'000);
    Transfer t;
    t.mode = DataMode::pio;
    t.pio = &ext_csd;
    const CommandResult r = d.transfer(8, 0, t);
    EXPECT_EQ(r.error, 0);
    EXPECT_TRUE(r.normal & reg::kIntBufferReadReady);
    EXPECT_TRUE(r.normal & reg::kIntTransferComplete);
    EXPECT_FALSE(d.rd32(reg::kPresentState) & (reg::kDataInhibit | reg::kBufferReadEnable));
  });
  p.run();
  const mmc::ExtCsd expected = p.device.card().ext_csd();
  EXPECT_TRUE(std::equal(expected.begin(), expected.end(), ext_csd.begin()));
  ASSERT_FALSE(p.phases.empty());
  EXPECT_EQ(p.phases.back().operation, models::EmmcBusOperation::read_data);
}

TEST_F(SdhciScenario, Adma2WritesWithAutoCmd23AndSdmaReadsBackAcrossABufferBoundary) {
  const std::vector<std::uint8_t> data = pattern(16 * 512, 5);
  std::vector<std::uint8_t> read_back(data.size());
  CommandResult write;
  unsigned dma_interrupts = 0;
  Platform p([&](SdhciDriver& d) {
    d.init();
    d.bring_up_high_speed();
    std::memcpy(d.memory().bytes.data() + 0x10000, data.data(), data.size());
    // Three descriptors of odd lengths: blocks straddle them.
    d.write_descriptors({{0x10000, 1000}, {0x10000 + 1000, 5000}, {0x10000 + 6000, 2192}});
    Transfer w;
    w.read = false;
    w.blocks = 16;
    w.auto_cmd23 = 16;
    write = d.transfer(25, 100, w);
    EXPECT_EQ(write.error, 0);
    EXPECT_EQ(st::current_state(write.response), kTran);
    // Read back with SDMA and Auto CMD12 (SDMA's address register is Auto CMD23's argument),
    // with a 4 KiB boundary: one DMA interrupt halfway.
    Transfer r;
    r.read = true;
    r.blocks = 16;
    r.mode = DataMode::sdma;
    r.memory = 0x20000;
    r.auto_cmd12 = true;
    r.sdma_boundary = 0;
    const CommandResult read = d.transfer(18, 100, r);
    EXPECT_EQ(read.error, 0);
    EXPECT_TRUE(read.normal & reg::kIntTransferComplete);
    dma_interrupts = d.dma_interrupts;
    std::memcpy(read_back.data(), d.memory().bytes.data() + 0x20000, read_back.size());
    EXPECT_EQ(st::current_state(d.command(13, kRcaArg, kRespR1).response), kTran);
  });
  p.run();
  EXPECT_EQ(read_back, data);
  EXPECT_EQ(dma_interrupts, 1u);
  // Auto CMD23 went first with Argument 2, then CMD25; transfer complete came when the card's
  // programming busy ended, nothing added by the controller.
  const models::BusPhase* cmd23 = p.last_command(23);
  const models::BusPhase* cmd25 = p.last_command(25);
  ASSERT_TRUE(cmd23 && cmd25);
  EXPECT_EQ(cmd23->command.arg, 16u);
  EXPECT_EQ(cmd23->end_ps, cmd25->start_ps);
  EXPECT_EQ(write.completed_ps, cmd25->end_ps);
  models::Picoseconds busy_end = 0;
  for (const models::BusPhase& ph : p.phases)
    if (ph.operation == models::EmmcBusOperation::write_data && ph.busy) busy_end = ph.busy_until_ps;
  EXPECT_GT(busy_end, cmd25->end_ps);
  EXPECT_EQ(write.finished_ps, busy_end);
  const models::BusPhase* cmd12 = p.last_command(12);
  ASSERT_NE(cmd12, nullptr) << "Auto CMD12 ended the read";
}

TEST_F(SdhciScenario, RpmbKeyWriteAndReadGoThroughAutoCmd23WithTheReliableWriteBit) {
  rpmb::Key key{};
  for (std::size_t i = 0; i < key.size(); ++i) key[i] = static_cast<std::uint8_t>(0xA0 + i);
  const std::vector<std::uint8_t> secret = pattern(256, 9);
  std::vector<std::uint8_t> read_back;
  std::uint32_t counter = 0;
  Platform p([&](SdhciDriver& d) {
    d.init();
    d.bring_up_high_speed();
    ASSERT_EQ(d.switch_field(179, 3).error, 0);  // PARTITION_CONFIG: RPMB
    SdhciRpmbChannel channel(d);
    rpmb::Host unkeyed(channel, std::nullopt);
    EXPECT_TRUE(unkeyed.program_key(key).ok());
    rpmb::Host host(channel, key);
    EXPECT_TRUE(host.write(7, secret.data(), 1).ok());
    const rpmb::HostResult c = host.read_counter();
    EXPECT_TRUE(c.ok());
    counter = c.write_counter;
    const rpmb::HostResult r = host.read(7, 1);
    EXPECT_TRUE(r.ok());
    read_back = r.data;
    EXPECT_EQ(channel.last.error, 0);
    ASSERT_EQ(d.switch_field(179, 0).error, 0);
  });
  p.run();
  EXPECT_EQ(counter, 1u);
  EXPECT_EQ(read_back, secret);
  unsigned reliable = 0;
  for (const models::BusPhase& ph : p.phases)
    if (ph.operation == models::EmmcBusOperation::command && ph.command.index == 23 && (ph.command.arg >> 31))
      ++reliable;
  EXPECT_EQ(reliable, 2u) << "key programming and the authenticated write";
}

TEST_F(SdhciScenario, ADataTimeoutComesAfterTheTimeoutControlsCount) {
  Platform p([](SdhciDriver& d) {
    d.init();
    d.identify();
    d.set_clock(25'000'000);
    d.wr8(reg::kTimeoutControl, 0);  // TMCLK × 2^13 at 1 MHz: 8.192 ms
    std::vector<std::uint8_t> block(512);
    Transfer t;
    t.mode = DataMode::pio;
    t.pio = &block;
    const CommandResult r = d.transfer(17, 0xFFFFFF00, t);  // past the end: the card sends no data
    EXPECT_TRUE(r.response & st::kOutOfRange);
    EXPECT_EQ(r.error, reg::kErrDataTimeout);
    EXPECT_EQ(r.finished_ps - r.completed_ps, 8'192ULL * 1'000'000'000ULL / 1000);
    EXPECT_FALSE(d.rd32(reg::kPresentState) & reg::kDataInhibit);
  });
  p.run();
}

TEST_F(SdhciScenario, AdmaErrorsNameTheFailingDescriptorAndTheControllerRecovers) {
  Platform p([](SdhciDriver& d) {
    d.init();
    d.bring_up_high_speed();
    Transfer t;
    t.read = true;
    t.blocks = 4;
    t.auto_cmd23 = 4;
    // An invalid second descriptor.
    d.write_descriptors({{0x10000, 512}, {0x10200, 1536}});
    models::Adma2Descriptor bad;
    bad.action = models::Adma2Action::transfer;
    bad.length = 1536;
    d.put_descriptor(1, bad);
    CommandResult r = d.transfer(18, 0, t);
    EXPECT_EQ(r.error, reg::kErrAdma);
    EXPECT_EQ(d.rd8(reg::kAdmaErrorStatus) & reg::kAdmaErrorStateMask, reg::kAdmaStateFetch);
    EXPECT_EQ(d.rd32(reg::kAdmaAddress), SdhciDriver::kDescriptors + 8);
    recover(d);
    // A table that ends before the data.
    d.write_descriptors({{0x10000, 1024}});
    r = d.transfer(18, 0, t);
    EXPECT_EQ(r.error, reg::kErrAdma);
    EXPECT_EQ(d.rd8(reg::kAdmaErrorStatus), reg::kAdmaStateTransfer | reg::kAdmaLengthMismatch);
    recover(d);
    // A link to itself: caught after Adma2Walker::kMaxFetches fetches.
    models::Adma2Descriptor loop;
    loop.valid = true;
    loop.action = models::Adma2Action::link;
    loop.address = SdhciDriver::kDescriptors;
    d.put_descriptor(0, loop);
    const std::uint64_t before = d.memory().accesses;
    r = d.transfer(18, 0, t);
    EXPECT_EQ(r.error, reg::kErrAdma);
    EXPECT_EQ(d.memory().accesses - before, models::Adma2Walker::kMaxFetches);
    recover(d);
    // And a good transfer after all that.
    t.memory = 0x30000;
    r = d.transfer(18, 0, t);
    EXPECT_EQ(r.error, 0);
    EXPECT_TRUE(r.normal & reg::kIntTransferComplete);
  });
  p.run();
}

TEST_F(SdhciScenario, AnSdmaAccessTheMemoryRefusesStopsTheTransfer) {
  Platform p([](SdhciDriver& d) {
    d.init();
    d.bring_up_high_speed();
    d.memory().refuse_from = 0x10000 + 1024;
    Transfer t;
    t.read = true;
    t.blocks = 4;
    t.mode = DataMode::sdma;
    t.auto_cmd12 = true;
    const CommandResult r = d.transfer(18, 0, t);
    EXPECT_EQ(r.error, reg::kErrSystemBus);
    d.memory().refuse_from = UINT64_MAX;
    recover(d);
  });
  p.run();
}

// What a driver may do to the lines mid-transfer (issue 16; the fuzz seed
// testbench/fuzz/corpus/sdhci/clock-stopped-mid-read is the input that found it: a multi-block
// read whose SD clock the driver switched off by a 32-bit write at 0x2C). The card sees nothing
// without a clock or power, so the block never comes: a data timeout after the timeout control's
// count, the lines free, no exception out of the controller's thread, and the usual recovery.
TEST_F(SdhciScenario, StoppingTheSdClockMidReadEndsInADataTimeout) {
  Platform p([](SdhciDriver& d) {
    d.init();
    d.bring_up_high_speed();
    d.wr8(reg::kTimeoutControl, 0);  // 8.192 ms
    d.wr16(reg::kBlockSize, 512);
    d.wr16(reg::kBlockCount, 4);
    d.wr32(reg::kArgument, 0);
    d.wr32(reg::kTransferMode, (reg::kTrnRead | reg::kTrnMultiBlock | reg::kTrnBlockCountEnable) |
                                   (std::uint32_t{reg::command_word(18, kRespR1 | reg::kCmdDataPresent)} << 16));
    EXPECT_TRUE(d.wait_irq(reg::kIntCommandComplete) & reg::kIntCommandComplete);
    d.wr16(reg::kNormalIntStatus, reg::kIntCommandComplete);
    EXPECT_TRUE(d.wait_irq(reg::kIntBufferReadReady) & reg::kIntBufferReadReady);
    d.wr16(reg::kNormalIntStatus, reg::kIntBufferReadReady);
    // Clock control, timeout control and software reset in one write: the SD clock stops.
    d.wr32(reg::kClockControl, reg::kClockInternalEnable | (std::uint32_t{0} << 16));
    EXPECT_EQ(d.rd16(reg::kClockControl) & reg::kClockCardEnable, 0);
    for (int i = 0; i < 128; ++i) d.rd32(reg::kBufferDataPort);  // the block in the buffer, emptied
    const std::uint64_t emptied = d.now_ps();
    const std::uint16_t s = d.wait_irq(reg::kIntBufferReadReady | reg::kIntTransferComplete);
    EXPECT_TRUE(s & reg::kIntErrorSummary);
    EXPECT_EQ(d.rd16(reg::kErrorIntStatus), reg::kErrDataTimeout);
    EXPECT_EQ(d.now_ps() - emptied, 8'192ULL * 1'000'000ULL) << "the timeout control's count, from the next block";
    EXPECT_FALSE(d.rd32(reg::kPresentState) & (reg::kDataInhibit | reg::kCmdInhibit | reg::kReadTransferActive));
    d.clear_status();
    d.set_clock(50'000'000);
    recover(d);  // the card was still sending: CMD12 stops it
    std::vector<std::uint8_t> block(512);
    Transfer t;
    t.mode = DataMode::pio;
    t.pio = &block;
    EXPECT_EQ(d.transfer(17, 0, t).error, 0);
  });
  p.run();
}

// The same with DMA: an SDMA write paused at its buffer boundary resumes with the clock off, and
// a command issued with the clock off never reaches the card.
TEST_F(SdhciScenario, AClockStoppedDuringAnSdmaPauseFailsTheNextBlockAndReachesNoCard) {
  std::size_t phases_before_resume = 0, phases_after_resume = 0;
  Platform* platform = nullptr;
  Platform p([&](SdhciDriver& d) {
    d.init();
    d.bring_up_high_speed();
    d.wr8(reg::kTimeoutControl, 0);
    d.wr32(reg::kSdmaAddress, 0x10000 + 4096 - 512);  // one block before a 4 KiB boundary
    d.wr16(reg::kBlockSize, 512);
    d.wr16(reg::kBlockCount, 4);
    d.wr32(reg::kArgument, 64);
    d.wr32(reg::kTransferMode,
           (reg::kTrnDmaEnable | reg::kTrnMultiBlock | reg::kTrnBlockCountEnable | reg::kTrnAutoCmd12) |
               (std::uint32_t{reg::command_word(25, kRespR1 | reg::kCmdDataPresent)} << 16));
    EXPECT_TRUE(d.wait_irq(reg::kIntDma) & reg::kIntDma);
    d.wr16(reg::kNormalIntStatus, reg::kIntCommandComplete | reg::kIntDma);
    d.wr16(reg::kClockControl, reg::kClockInternalEnable);
    phases_before_resume = platform->phases.size();
    d.wr32(reg::kSdmaAddress, 0x10000 + 4096);
    const std::uint16_t s = d.wait_irq(reg::kIntTransferComplete);
    phases_after_resume = platform->phases.size();
    EXPECT_TRUE(s & reg::kIntErrorSummary);
    EXPECT_EQ(d.rd16(reg::kErrorIntStatus), reg::kErrDataTimeout);
    d.clear_status();
    // A command with the clock still off: a command timeout, and the card sees nothing.
    EXPECT_EQ(d.command(13, kRcaArg, kRespR1).error, reg::kErrCommandTimeout);
    EXPECT_EQ(platform->phases.size(), phases_after_resume);
    d.wr8(reg::kSoftwareReset, reg::kResetCmd);
    d.set_clock(50'000'000);
    recover(d);
  });
  platform = &p;
  p.run();
  EXPECT_EQ(phases_after_resume, phases_before_resume) << "no block went to the card without a clock";
}

// Bus power off in the middle of a PIO write: the block never reaches the card (a data timeout),
// and turning power back on power-cycles it.
TEST_F(SdhciScenario, BusPowerOffMidWriteEndsInADataTimeoutAndPowerOnCyclesTheCard) {
  Platform p([](SdhciDriver& d) {
    d.init();
    d.bring_up_high_speed();
    d.wr8(reg::kTimeoutControl, 0);
    d.wr16(reg::kBlockSize, 512);
    d.wr16(reg::kBlockCount, 2);
    d.wr32(reg::kArgument, 0);
    d.wr32(reg::kTransferMode, (reg::kTrnMultiBlock | reg::kTrnBlockCountEnable | reg::kTrnAutoCmd12) |
                                   (std::uint32_t{reg::command_word(25, kRespR1 | reg::kCmdDataPresent)} << 16));
    EXPECT_TRUE(d.wait_irq(reg::kIntBufferWriteReady) & reg::kIntBufferWriteReady);
    d.wr16(reg::kNormalIntStatus, reg::kIntCommandComplete | reg::kIntBufferWriteReady);
    d.wr8(reg::kPowerControl, 0);
    for (int i = 0; i < 128; ++i) d.wr32(reg::kBufferDataPort, 0x5A5A5A5A);
    const std::uint16_t s = d.wait_irq(reg::kIntTransferComplete | reg::kIntBufferWriteReady);
    EXPECT_TRUE(s & reg::kIntErrorSummary);
    EXPECT_EQ(d.rd16(reg::kErrorIntStatus), reg::kErrDataTimeout);
    d.clear_status();
    d.wr8(reg::kSoftwareReset, reg::kResetCmd | reg::kResetData);
    d.wr8(reg::kPowerControl, reg::kPower330 | reg::kPowerOn);
    d.set_clock(400'000);
    EXPECT_EQ(d.command(13, kRcaArg, kRespR1).error, reg::kErrCommandTimeout) << "the card is in idle";
    d.wr8(reg::kSoftwareReset, reg::kResetCmd);
    d.identify();
    EXPECT_EQ(st::current_state(d.command(13, kRcaArg, kRespR1).response), kTran);
  });
  p.run();
  std::vector<std::uint8_t> sector(512);
  p.image.backend().user->read(0, 1, sector.data());
  EXPECT_EQ(sector, std::vector<std::uint8_t>(512, 0)) << "nothing was written";
}

// Busy is DAT0 held low: watching it needs no SD clock. A driver that stops the clock during a
// CMD6's busy still gets transfer complete when the card releases DAT0.
TEST_F(SdhciScenario, BusyEndsWithTheSdClockStopped) {
  Platform p([](SdhciDriver& d) {
    d.init();
    d.bring_up_high_speed();
    d.wr32(reg::kArgument, (3u << 24) | (33u << 16) | (1u << 8));  // CACHE_CTRL on
    d.wr32(reg::kTransferMode, std::uint32_t{reg::command_word(6, kRespR1b)} << 16);
    EXPECT_TRUE(d.wait_irq(reg::kIntCommandComplete) & reg::kIntCommandComplete);
    d.wr16(reg::kNormalIntStatus, reg::kIntCommandComplete);
    d.wr16(reg::kClockControl, reg::kClockInternalEnable);
    const std::uint16_t s = d.wait_irq(reg::kIntTransferComplete);
    EXPECT_EQ(s, reg::kIntTransferComplete);
    EXPECT_EQ(d.rd16(reg::kErrorIntStatus), 0);
    d.set_clock(50'000'000);
    EXPECT_EQ(st::current_state(d.command(13, kRcaArg, kRespR1).response), kTran);
  });
  p.run();
  EXPECT_EQ(p.device.card().ext_csd()[33], 1);
}

TEST_F(SdhciScenario, TuningSetsTheSampledClockAndRaisesOnlyBufferReadReady) {
  Platform p([](SdhciDriver& d) {
    d.init();
    d.identify();
    d.set_clock(25'000'000);
    d.switch_field(183, 2);
    d.wr8(reg::kHostControl1, reg::kCtrl8BitBus);
    d.switch_field(185, 2);  // HS200
    d.wr16(reg::kHostControl2, reg::kCtrl2UhsSdr104);
    d.set_clock(200'000'000);
    // sdhci_execute_tuning / sdhci_send_tuning: CMD21 reading a 128-byte block.
    d.wr16(reg::kHostControl2, reg::kCtrl2UhsSdr104 | reg::kCtrl2ExecuteTuning);
    d.wr16(reg::kBlockSize, 128);
    d.wr16(reg::kBlockCount, 1);
    d.wr32(reg::kArgument, 0);
    d.wr32(reg::kTransferMode,
           reg::kTrnRead | (std::uint32_t{reg::command_word(21, kRespR1 | reg::kCmdDataPresent)} << 16));
    const std::uint16_t s = d.wait_irq(reg::kIntBufferReadReady);
    EXPECT_EQ(s, reg::kIntBufferReadReady);
    EXPECT_EQ(d.rd16(reg::kHostControl2), reg::kCtrl2UhsSdr104 | reg::kCtrl2TunedClock);
    d.clear_status();
    EXPECT_EQ(st::current_state(d.command(13, kRcaArg, kRespR1).response), kTran);
  });
  p.run();
  ASSERT_NE(p.last_command(21), nullptr);
  EXPECT_EQ(p.device.bus_mode().speed, models::BusSpeed::hs200);
}

TEST_F(SdhciScenario, ASoftwareResetCancelsAPioTransferMidway) {
  Platform p([](SdhciDriver& d) {
    d.init();
    d.bring_up_high_speed();
    d.wr16(reg::kBlockSize, 512);
    d.wr16(reg::kBlockCount, 4);
    d.wr32(reg::kArgument, 0);
    d.wr32(reg::kTransferMode, (reg::kTrnRead | reg::kTrnMultiBlock | reg::kTrnBlockCountEnable) |
                                   (std::uint32_t{reg::command_word(18, kRespR1 | reg::kCmdDataPresent)} << 16));
    EXPECT_TRUE(d.wait_irq(reg::kIntCommandComplete) & reg::kIntCommandComplete);
    d.wr16(reg::kNormalIntStatus, reg::kIntCommandComplete);
    EXPECT_TRUE(d.wait_irq(reg::kIntBufferReadReady) & reg::kIntBufferReadReady);
    EXPECT_TRUE(d.rd32(reg::kPresentState) & (reg::kBufferReadEnable | reg::kDataInhibit));
    d.wr8(reg::kSoftwareReset, reg::kResetData);
    const std::uint32_t present = d.rd32(reg::kPresentState);
    EXPECT_FALSE(present & (reg::kBufferReadEnable | reg::kDataInhibit | reg::kReadTransferActive));
    EXPECT_FALSE(d.rd16(reg::kNormalIntStatus) & reg::kIntBufferReadReady);
    sc_core::wait(1, sc_core::SC_MS);
    EXPECT_EQ(d.rd16(reg::kNormalIntStatus), 0) << "the cancelled transfer raises nothing later";
    // The card is still sending: CMD12 stops it, and the card is back in tran.
    d.command(12, 0, kRespR1b);
    EXPECT_EQ(st::current_state(d.command(13, kRcaArg, kRespR1).response), kTran);
  });
  p.run();
}

TEST_F(SdhciScenario, TurningBusPowerOnPowerCyclesTheCard) {
  Platform p([](SdhciDriver& d) {
    d.init();
    d.identify();
    EXPECT_EQ(st::current_state(d.command(13, kRcaArg, kRespR1).response), kTran);
    d.wr8(reg::kPowerControl, 0);
    d.wr8(reg::kPowerControl, reg::kPower330 | reg::kPowerOn);
    const CommandResult r = d.command(13, kRcaArg, kRespR1);
    EXPECT_EQ(r.error, reg::kErrCommandTimeout) << "the card is in idle without its RCA";
    d.wr8(reg::kSoftwareReset, reg::kResetCmd);
    d.identify();
    EXPECT_EQ(st::current_state(d.command(13, kRcaArg, kRespR1).response), kTran);
    // A voltage the controller lacks leaves the power off.
    d.wr8(reg::kPowerControl, 0);
    d.wr8(reg::kPowerControl, reg::kPowerOn | (1u << 1));
    EXPECT_EQ(d.rd8(reg::kPowerControl) & reg::kPowerOn, 0);
  });
  p.run();
}

models::Fault fault(models::FaultKind kind, std::uint8_t command, std::uint32_t occurrence) {
  models::Fault f;
  f.kind = kind;
  f.command = command;
  f.occurrence = occurrence;
  return f;
}

// Injected faults reach the driver as the controller's errors, at the times they cost, and the
// driver's recovery works.
TEST_F(SdhciScenario, InjectedFaultsBecomeTheControllersErrors) {
  const std::vector<std::uint8_t> data = pattern(4 * 512, 3);
  std::vector<std::uint8_t> corrupt_read, clean_read;
  CommandResult slow_switch;
  Platform p([&](SdhciDriver& d) {
    d.init();
    d.bring_up_high_speed();                                     // CMD6 #1 and #2
    EXPECT_EQ(d.command(13, kRcaArg, kRespR1).error, 0);         // CMD13 #1
    const CommandResult lost = d.command(13, kRcaArg, kRespR1);  // #2: lost on the bus
    EXPECT_EQ(lost.error, reg::kErrCommandTimeout);
    EXPECT_EQ(lost.completed_ps - lost.issued_ps, cycles_ps(kNoResponse, 50'000'000));
    d.wr8(reg::kSoftwareReset, reg::kResetCmd);
    EXPECT_EQ(st::current_state(d.command(13, kRcaArg, kRespR1).response), kTran);  // #3
    slow_switch = d.switch_field(185, 1);                                           // CMD6 #3: 5 ms longer busy
    EXPECT_EQ(slow_switch.error, 0);

    std::memcpy(d.memory().bytes.data() + 0x10000, data.data(), data.size());
    Transfer w;
    w.read = false;
    w.blocks = 4;
    w.auto_cmd23 = 4;
    EXPECT_EQ(d.transfer(25, 64, w).error, 0);
    Transfer r;
    r.blocks = 4;
    r.auto_cmd23 = 4;
    r.memory = 0x20000;
    const CommandResult bad = d.transfer(18, 64, r);  // CMD18 #1: block 1's CRC is bad
    EXPECT_EQ(bad.error, reg::kErrDataCrc);
    corrupt_read.assign(d.memory().bytes.begin() + 0x20000, d.memory().bytes.begin() + 0x20000 + 1024);
    recover(d);
    std::memset(d.memory().bytes.data() + 0x20000, 0, 2048);
    EXPECT_EQ(d.transfer(18, 64, r).error, 0);  // #2
    clean_read.assign(d.memory().bytes.begin() + 0x20000, d.memory().bytes.begin() + 0x20000 + 2048);
  });
  models::FaultPlan plan;
  plan.faults.push_back(fault(models::FaultKind::command_timeout, 13, 2));
  models::Fault crc = fault(models::FaultKind::data_crc, 18, 1);
  crc.block = 1;
  plan.faults.push_back(crc);
  models::Fault busy = fault(models::FaultKind::extended_busy, 6, 3);
  busy.extra = 5 * models::kMillisecond;
  plan.faults.push_back(busy);
  p.device.set_fault_plan(plan);
  p.run();
  EXPECT_EQ(p.device.faults_injected(), 3u);
  EXPECT_EQ(clean_read, data);
  ASSERT_EQ(corrupt_read.size(), 1024u);
  EXPECT_TRUE(std::equal(data.begin(), data.begin() + 512, corrupt_read.begin())) << "block 0 is good";
  EXPECT_TRUE(std::all_of(corrupt_read.begin() + 512, corrupt_read.end(), [](std::uint8_t b) { return b == 0; }))
      << "the block with the bad CRC is not stored in memory";
  // The switch's busy: its work from the profile, and the 5 ms more.
  const models::BusPhase* cmd6 = p.last_command(6);
  ASSERT_NE(cmd6, nullptr);
  EXPECT_EQ(cmd6->fault, "extended_busy of 5ms after CMD6 #3");
  EXPECT_EQ(slow_switch.finished_ps - cmd6->end_ps,
            p.device.profile().work_time(cmd6->outcome.work) + 5 * models::kMillisecond);
}

// A CRC error in the middle of an authenticated write: the frame never reaches the card, CMD12
// drops the burst, the counter does not move, and the retry is written once.
TEST_F(SdhciScenario, AnRpmbWriteWithABadFrameWritesNothing) {
  rpmb::Key key{};
  key.fill(0x5A);
  const std::vector<std::uint8_t> block = pattern(256, 1);
  std::uint32_t counter_after_fault = 99, counter_after_retry = 99;
  bool faulted_write_ok = true;
  Platform p([&](SdhciDriver& d) {
    d.init();
    d.bring_up_high_speed();
    ASSERT_EQ(d.switch_field(179, 3).error, 0);
    SdhciRpmbChannel channel(d);
    channel.recover_after_error = [&d] { recover(d); };
    // CMD25 #1 and #2: the key, then the result read request.
    EXPECT_TRUE(rpmb::Host(channel, std::nullopt).program_key(key).ok());
    rpmb::Host host(channel, key);
    // A counter read (CMD25 #3 and CMD18), then the write: CMD25 #4, whose frame's CRC is bad.
    faulted_write_ok = host.write(3, block.data(), 1).ok();
    counter_after_fault = host.read_counter().write_counter;
    EXPECT_TRUE(host.write(3, block.data(), 1).ok());
    counter_after_retry = host.read_counter().write_counter;
    const rpmb::HostResult r = host.read(3, 1);
    EXPECT_TRUE(r.ok());
    EXPECT_EQ(r.data, block);
  });
  models::FaultPlan plan;
  plan.faults.push_back(fault(models::FaultKind::data_crc, 25, 4));
  p.device.set_fault_plan(plan);
  p.run();
  EXPECT_FALSE(faulted_write_ok);
  EXPECT_EQ(counter_after_fault, 0u);
  EXPECT_EQ(counter_after_retry, 1u);
}

}  // namespace
}  // namespace emmcsim::testing
