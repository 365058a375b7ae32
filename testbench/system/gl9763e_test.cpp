// Gl9763e on its sockets: configuration space read and written in the order Linux 6.1's
// sdhci-pci-core.c and sdhci-pci-gli.c do at probe (docs/linux-sdhci-gl9763e.md), BAR 0 with the
// SDHCI, CQHCI and the enhanced-strobe register, and the HS400ES bring-up and a 64-bit ADMA2 read
// through the BAR. Each test is its own SystemC elaboration (system_scenario.hpp).
#include "emmcsim/models/gl9763e.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <functional>
#include <vector>

#include "emmcsim/mmc/card_status.hpp"
#include "sdhci_platform.hpp"

namespace emmcsim::testing {
namespace {

namespace gl = models::gl9763e;
namespace st = mmc::status;

// An initiator on the function's configuration space (virt-pci's CFG_READ / CFG_WRITE).
class ConfigPort : public sc_core::sc_module {
 public:
  tlm_utils::simple_initiator_socket<ConfigPort> socket;
  explicit ConfigPort(sc_core::sc_module_name name) : sc_module(name), socket("socket") {}
  std::uint32_t read(std::uint32_t offset, unsigned width = 4) {
    std::uint32_t value = 0;
    EXPECT_EQ(register_access(socket, tlm::TLM_READ_COMMAND, offset, reinterpret_cast<std::uint8_t*>(&value), width),
              tlm::TLM_OK_RESPONSE);
    return value;
  }
  void write(std::uint32_t offset, std::uint32_t value, unsigned width = 4) {
    EXPECT_EQ(register_access(socket, tlm::TLM_WRITE_COMMAND, offset, reinterpret_cast<std::uint8_t*>(&value), width),
              tlm::TLM_OK_RESPONSE);
  }
  // pci_read_config_dword, clear, set, pci_write_config_dword.
  void update(std::uint32_t offset, std::uint32_t clear, std::uint32_t set) {
    write(offset, (read(offset) & ~clear) | set);
  }
};

// The CPU on BAR 0 and the configuration space; the Sdhci inside on memory (above 4 GiB: the
// chip's DMA is 64-bit) and an EmmcDevice.
struct GlPlatform {
  explicit GlPlatform(std::function<void(SdhciDriver&, ConfigPort&)> body, const models::Gl9763e::Options& options = {})
      : image(mmc::default_device_config()),
        device("card", mmc::default_device_config(), image.backend()),
        gl("gl9763e", options),
        memory("memory", 1u << 20),
        cpu("cpu", memory, [this, body](SdhciDriver& d) { body(d, port); }),
        port("config_port"),
        irq("irq") {
    memory.base = kMemoryBase;
    cpu.bus.bind(gl.bar0);
    port.socket.bind(gl.config);
    gl.sdhci.dma.bind(memory.socket);
    gl.sdhci.card.bind(device.bus);
    gl.sdhci.irq(irq);
    cpu.irq(irq);
    device.on_phase([this](const models::BusPhase& p) { phases.push_back(p); });
  }
  void run() {
    sc_core::sc_start();
    EXPECT_TRUE(cpu.finished()) << "the scenario did not run to its end";
  }
  static constexpr std::uint64_t kMemoryBase = 0x2'0000'0000;
  mmc::MemoryImage image;
  models::EmmcDevice device;
  models::Gl9763e gl;
  SystemMemory memory;
  Cpu cpu;
  ConfigPort port;
  sc_core::sc_signal<bool> irq;
  std::vector<models::BusPhase> phases;
};

// gl9763e_set_low_power_negotiation: VHS unlock, CFG bit 12, VHS lock.
void set_low_power_negotiation(ConfigPort& c, bool enable) {
  c.update(gl::kVhs, gl::kVhsRevisionMask, gl::kVhsWritable);
  c.update(gl::kCfg, enable ? 1u << 12 : 0, enable ? 0 : 1u << 12);
  c.update(gl::kVhs, gl::kVhsRevisionMask, 0);
}

TEST_F(SdhciScenario, Gl9763eConfigSpaceAnswersSdhciPciProbe) {
  models::Gl9763e::Msi msi;
  GlPlatform* platform = nullptr;
  GlPlatform p([&](SdhciDriver& d, ConfigPort& c) {
    // The PCI core: identity, class, BAR sizing, capabilities.
    EXPECT_EQ(c.read(0x00), 0xE76317A0u);
    EXPECT_EQ(c.read(0x08), 0x08050101u) << "class 0x080501, revision 1";
    EXPECT_EQ(c.read(0x2C), 0xE76317A0u) << "subsystem";
    c.write(gl::kConfigBar0, 0xFFFFFFFF);
    EXPECT_EQ(c.read(gl::kConfigBar0), 0xFFFFF000u) << "32-bit memory BAR of 4 KiB";
    c.write(gl::kConfigBar0, 0xF0001000);
    EXPECT_EQ(c.read(gl::kConfigBar0), 0xF0001000u);
    c.write(gl::kConfigCommand, 0x0006, 2);  // pcim_enable_device, pci_set_master
    EXPECT_EQ(c.read(gl::kConfigCommand, 2), 0x0006u);
    EXPECT_TRUE(c.read(gl::kConfigCommand + 2, 2) & (1u << 4)) << "capability list";
    const std::uint32_t msi_at = c.read(gl::kConfigCapabilities, 1);
    EXPECT_EQ(c.read(msi_at, 1), 0x05u) << "MSI";
    EXPECT_EQ(c.read(msi_at + 1, 1), 0x00u) << "the last capability";
    EXPECT_TRUE(c.read(msi_at + 2, 2) & (1u << 7)) << "64-bit address";
    // sdhci_pci_probe: one slot, first BAR 0.
    EXPECT_EQ(c.read(gl::kConfigSlotInfo, 1), 0u);
    // gli_probe_slot_gl9763e: CQE only if MB says so; it does not.
    const std::uint32_t mb = c.read(gl::kMb);
    EXPECT_TRUE(mb & gl::kMbCommandQueueOff);
    c.write(gl::kMb, 0);
    EXPECT_EQ(c.read(gl::kMb), mb) << "read-only";
    // pci_alloc_irq_vectors: the MSI address and data, then enable.
    c.write(msi_at + 4, 0xFEE00000);
    c.write(msi_at + 8, 0);
    c.write(msi_at + 0xC, 0x4021, 2);
    c.write(msi_at + 2, c.read(msi_at + 2, 2) | 1, 2);
    msi = platform->gl.msi();
    // gl9763e_hw_setting: each vendor dword read-modify-written between VHS unlock and lock.
    c.update(gl::kScr, 0, 1u << 9);
    EXPECT_EQ(c.read(gl::kScr), 0u) << "locked: the write is ignored";
    c.update(gl::kVhs, gl::kVhsRevisionMask, gl::kVhsWritable);
    c.update(gl::kScr, 0, 1u << 9);
    c.update(gl::kMmcCtrl, 1u << 3, 0);
    c.update(gl::kCfg2, 0x3FFu << 19, 0x54u << 19);
    c.update(gl::kClkRxDelay, 0xFu << 28, 5u << 28);
    c.update(gl::kVhs, gl::kVhsRevisionMask, 0);
    EXPECT_EQ(c.read(gl::kScr), 1u << 9);
    EXPECT_EQ(c.read(gl::kCfg2), 0x54u << 19);
    EXPECT_EQ(c.read(gl::kClkRxDelay), 5u << 28);
    c.update(gl::kCfg2, ~0u, 0);
    EXPECT_EQ(c.read(gl::kCfg2), 0x54u << 19) << "locked again";
    set_low_power_negotiation(c, false);
    EXPECT_EQ(c.read(gl::kCfg), 1u << 12);
    // BAR 0: the SDHCI, CQHCI's version, reserved space.
    EXPECT_EQ(d.rd16(models::sdhci::kHostVersion) & 0xFF, models::sdhci::kSpecVersion410);
    EXPECT_TRUE(d.rd32(models::sdhci::kCapabilities) & models::sdhci::kCapAddressing64V4);
    EXPECT_EQ(d.rd32(gl::kCqhciBase), gl::kCqhciVersion);
    d.wr32(gl::kCqhciBase, 0);
    EXPECT_EQ(d.rd32(gl::kCqhciBase), gl::kCqhciVersion) << "read-only";
    EXPECT_EQ(d.rd32(0x800), 0u);
    d.wr32(0x800, 0xFFFFFFFF);
    EXPECT_EQ(d.rd32(0x800), 0u) << "reserved";
    std::uint8_t bytes[4] = {};
    EXPECT_EQ(d.access(tlm::TLM_READ_COMMAND, gl::kBarSize, bytes, 4), tlm::TLM_ADDRESS_ERROR_RESPONSE);
  });
  platform = &p;
  p.run();
  EXPECT_TRUE(msi.enabled);
  EXPECT_EQ(msi.address, 0xFEE00000u);
  EXPECT_EQ(msi.data, 0x4021);
}

TEST_F(SdhciScenario, Gl9763eOffersCommandQueueingOnlyWhenConfiguredTo) {
  models::Gl9763e::Options options;
  options.command_queue = true;
  GlPlatform p(
      [](SdhciDriver&, ConfigPort& c) {
        const std::uint32_t mb = c.read(gl::kMb);
        EXPECT_FALSE(mb & gl::kMbCommandQueueOff);
        EXPECT_TRUE(mb & gl::kMbErpOn);
      },
      options);
  p.run();
}

// Linux's HS400ES bring-up of a GL9763E through BAR 0, with the enhanced strobe bit in the
// vendor register 0x52C, then a read by 64-bit ADMA2 into memory above 4 GiB.
TEST_F(SdhciScenario, Gl9763eBringsUpHs400WithEnhancedStrobeThroughItsBar) {
  std::vector<std::uint8_t> sector(4 * 512);
  bool strobe = false;
  GlPlatform* platform = nullptr;
  GlPlatform p([&](SdhciDriver& d, ConfigPort&) {
    d.enable_v4_mode();
    d.init();
    EXPECT_TRUE(d.dma64());
    d.identify();
    ASSERT_TRUE(d.switch_to_1v8());
    d.set_clock(25'000'000);
    ASSERT_EQ(d.switch_field(183, 2).error, 0);
    d.wr8(models::sdhci::kHostControl1,
          static_cast<std::uint8_t>(d.rd8(models::sdhci::kHostControl1) | models::sdhci::kCtrl8BitBus));
    ASSERT_EQ(d.switch_field(185, 1).error, 0);
    d.set_uhs_mode(models::sdhci::kCtrl2UhsSdr25);
    d.set_clock(50'000'000);
    ASSERT_EQ(d.switch_field(183, 0x86).error, 0);
    ASSERT_EQ(d.switch_field(185, 3).error, 0);
    d.set_uhs_mode(7);
    d.set_clock(200'000'000);
    d.wr32(gl::kHs400EnhancedStrobe, d.rd32(gl::kHs400EnhancedStrobe) | gl::kHs400EnhancedStrobeBit);
    strobe = platform->gl.enhanced_strobe();
    EXPECT_EQ(st::current_state(d.command(13, kRcaArg, kRespR1).response), kTran);
    Transfer r;
    r.blocks = 4;
    r.auto_cmd23 = 4;
    r.memory = GlPlatform::kMemoryBase + 0x20000;
    EXPECT_EQ(d.transfer(18, 0, r).error, 0);
    std::memcpy(sector.data(), d.memory().at(r.memory), sector.size());
  });
  platform = &p;
  p.run();
  EXPECT_TRUE(strobe);
  std::vector<std::uint8_t> expected(sector.size());
  p.image.backend().user->read(0, 4, expected.data());
  EXPECT_EQ(sector, expected);
  EXPECT_EQ(p.phases.back().mode, (models::BusMode{models::BusSpeed::hs400, 8, true}));
}

}  // namespace
}  // namespace emmcsim::testing
