// PciConfigSpace (pci_config_space.hpp): the GL9763E's configuration space as Linux's PCI core
// and sdhci-pci-gli.c read and write it — identity, BAR sizing, command bits, MSI, and the vendor
// registers behind their unlock. Offsets and values are written out here from the PCI Local Bus
// specification and the 6.1 driver, not taken from the model.
#include "emmcsim/transport/pci_config_space.hpp"

#include <gtest/gtest.h>

#include <stdexcept>

namespace emmcsim::transport {
namespace {

TEST(PciConfigSpace, Gl9763eIdentityAsLinuxMatchesIt) {
  PciConfigSpace c(gl9763e_identity());
  EXPECT_EQ(c.read(0x00, 2), 0x17A0u);  // PCI_VENDOR_ID_GLI
  EXPECT_EQ(c.read(0x02, 2), 0xE763u);  // PCI_DEVICE_ID_GLI_9763E
  EXPECT_EQ(c.read(0x00, 4), 0xE76317A0u);
  EXPECT_EQ(c.read(0x08, 4) >> 8, 0x080501u) << "class: SD host, SDHCI with DMA";
  EXPECT_EQ(c.read(0x0E, 1), 0u) << "header type 0";
  EXPECT_EQ(c.read(0x2C, 4), 0xE76317A0u) << "subsystem";
  EXPECT_EQ(c.read(0x3D, 1), 1u) << "INTA";
  EXPECT_EQ(c.read(0x40, 1), 0u) << "sdhci-pci slot info: one slot, first BAR 0";
  EXPECT_TRUE(c.read(0x06, 2) & (1u << 4)) << "capabilities list";
  EXPECT_EQ(c.read(0x34, 1), PciConfigSpace::kMsiCapability);
  EXPECT_EQ(c.read(PciConfigSpace::kMsiCapability, 1), 0x05u) << "MSI capability ID";
  EXPECT_EQ(c.read(PciConfigSpace::kMsiCapability + 1, 1), 0u) << "the last capability";
  EXPECT_EQ(c.read(PciConfigSpace::kMsiCapability + 2, 2), 1u << 7) << "64-bit, one vector, off";
  EXPECT_EQ(c.read(0x888, 4) & (1u << 19), 1u << 19) << "GLI_9763E_MB_CMDQ_OFF: CQE stays off";
  EXPECT_EQ(c.read(0xFFC, 4), 0u) << "unimplemented registers read 0";
}

TEST(PciConfigSpace, BarSizingAndAssignment) {
  PciConfigSpace c(gl9763e_identity());
  EXPECT_EQ(c.read(0x10, 4), 0u) << "32-bit, non-prefetchable memory, unassigned";
  c.write(0x10, 4, 0xFFFFFFFF);
  EXPECT_EQ(c.read(0x10, 4), 0xFFFFF000u) << "4 KiB";
  c.write(0x10, 4, 0xF0001000);
  EXPECT_EQ(c.read(0x10, 4), 0xF0001000u);
  EXPECT_EQ(c.bar_address(0), 0xF0001000u);
  EXPECT_EQ(c.bar_address(1), std::nullopt);
  EXPECT_EQ(c.bar_address(6), std::nullopt);
  c.write(0x14, 4, 0xFFFFFFFF);
  EXPECT_EQ(c.read(0x14, 4), 0u) << "absent BARs stay 0 when sized";
  c.write(0x30, 4, 0xFFFFFFFF);
  EXPECT_EQ(c.read(0x30, 4), 0u) << "no expansion ROM";
}

TEST(PciConfigSpace, SixtyFourBitPrefetchableBarsTakeTwoSlots) {
  PciIdentity id = gl9763e_identity();
  id.bars[2] = PciBar{1ull << 32, true, true};
  PciConfigSpace c(id);
  EXPECT_EQ(c.read(0x18, 4), 0xCu) << "64-bit, prefetchable";
  c.write(0x18, 8, ~std::uint64_t{0});
  EXPECT_EQ(c.read(0x18, 8), 0xFFFFFFFF0000000Cull) << "4 GiB";
  c.write(0x18, 4, 0x0);
  c.write(0x1C, 4, 0x2);
  EXPECT_EQ(c.bar_address(2), 0x200000000ull);
}

TEST(PciConfigSpace, CommandBitsAndReadOnlyFields) {
  PciConfigSpace c(gl9763e_identity());
  EXPECT_FALSE(c.memory_enabled());
  c.write(0x04, 2, 0xFFFF);
  EXPECT_EQ(c.read(0x04, 2), (1u << 1) | (1u << 2) | (1u << 6) | (1u << 8) | (1u << 10));
  EXPECT_TRUE(c.memory_enabled());
  EXPECT_TRUE(c.bus_master_enabled());
  EXPECT_TRUE(c.intx_disabled());
  c.write(0x00, 4, 0);
  c.write(0x08, 4, 0);
  c.write(0x3D, 1, 3);
  c.write(0x06, 2, 0);
  EXPECT_EQ(c.read(0x00, 4), 0xE76317A0u);
  EXPECT_EQ(c.read(0x08, 4) >> 8, 0x080501u);
  EXPECT_EQ(c.read(0x3D, 1), 1u);
  EXPECT_TRUE(c.read(0x06, 2) & (1u << 4));
  c.write(0x3C, 1, 64);
  c.write(0x0C, 1, 16);
  EXPECT_EQ(c.read(0x3C, 1), 64u);
  EXPECT_EQ(c.read(0x0C, 1), 16u);
  c.reset();
  EXPECT_EQ(c.read(0x04, 2), 0u);
  EXPECT_EQ(c.read(0x3C, 1), 0u);
}

// What the PCI core's MSI code writes (pci_msi_domain_write_msg for a 64-bit capability).
TEST(PciConfigSpace, MsiEnableAddressAndData) {
  PciConfigSpace c(gl9763e_identity());
  const std::uint32_t cap = PciConfigSpace::kMsiCapability;
  c.write(cap + 4, 4, 0xA0003);  // bits 1:0 are reserved
  c.write(cap + 8, 4, 0x1);
  c.write(cap + 12, 2, 42);
  EXPECT_FALSE(c.msi().enabled);
  c.write(cap + 2, 2, 0xFFFF);
  const PciConfigSpace::Msi m = c.msi();
  EXPECT_TRUE(m.enabled);
  EXPECT_EQ(m.address, 0x1000A0000ull);
  EXPECT_EQ(m.data, 42);
  EXPECT_EQ(c.read(cap + 2, 2), (1u << 7) | 1u) << "only the enable bit is writable: one vector";
}

// gl9763e_hw_setting(): VHS revision W unlocks, the writes land, revision R locks again.
TEST(PciConfigSpace, VendorRegistersAreWritableOnlyWhileUnlocked) {
  PciConfigSpace c(gl9763e_identity());
  c.write(0x8E0, 4, 1u << 9);
  EXPECT_EQ(c.read(0x8E0, 4), 0u) << "locked";
  c.write(0x884, 4, 0x2u << 16);  // GLI_9763E_VHS_REV_W
  c.write(0x8E0, 4, 1u << 9);      // GLI_9763E_SCR_AXI_REQ
  c.write(0x960, 4, c.read(0x960, 4) & ~(1u << 3));  // HS400_SLOW off
  c.write(0x934, 4, 0x5u << 28);   // HS400_RXDLY 5
  c.write(0x888, 4, 0);             // MB is read-only
  c.write(0x884, 4, 0x0u << 16);    // GLI_9763E_VHS_REV_R
  EXPECT_EQ(c.read(0x8E0, 4), 1u << 9);
  EXPECT_EQ(c.read(0x960, 4) & (1u << 3), 0u);
  EXPECT_EQ(c.read(0x934, 4), 0x5u << 28);
  EXPECT_EQ(c.read(0x888, 4), 1u << 19);
  c.write(0x8A0, 4, 1u << 12);
  EXPECT_EQ(c.read(0x8A0, 4), 0u) << "locked again";
  EXPECT_EQ(c.read(0x884, 4), 0u);
}

TEST(PciConfigSpace, AccessesOfBadWidthAlignmentOrOffsetThrow) {
  PciConfigSpace c(gl9763e_identity());
  EXPECT_THROW(c.read(0x01, 2), PciConfigAccessError);
  EXPECT_THROW(c.read(0x02, 4), PciConfigAccessError);
  EXPECT_THROW(c.read(0x00, 3), PciConfigAccessError);
  EXPECT_THROW(c.read(4096, 1), PciConfigAccessError);
  EXPECT_THROW(c.read(4092, 8), PciConfigAccessError);
  EXPECT_THROW(c.write(0x11, 2, 0), PciConfigAccessError);
  EXPECT_THROW(c.write(0xFFFFFFFF, 1, 0), PciConfigAccessError);
  EXPECT_EQ(c.read(0x00, 4), 0xE76317A0u) << "nothing changed";
}

TEST(PciConfigSpace, IdentitiesThatCannotBeLaidOutAreRefused) {
  PciIdentity bad_size = gl9763e_identity();
  bad_size.bars[0].size = 3000;
  EXPECT_THROW(PciConfigSpace{bad_size}, std::invalid_argument);
  PciIdentity last_slot = gl9763e_identity();
  last_slot.bars[5] = PciBar{4096, true, false};
  EXPECT_THROW(PciConfigSpace{last_slot}, std::invalid_argument);
  PciIdentity overlap = gl9763e_identity();
  overlap.vendor_registers.push_back({0x54, 0, 0xFFFFFFFF, false, "in the MSI capability"});
  EXPECT_THROW(PciConfigSpace{overlap}, std::invalid_argument);
  PciIdentity header = gl9763e_identity();
  header.vendor_registers.push_back({0x10, 0, 0xFFFFFFFF, false, "over BAR 0"});
  EXPECT_THROW(PciConfigSpace{header}, std::invalid_argument);
  PciIdentity twice = gl9763e_identity();
  twice.vendor_registers.push_back(twice.vendor_registers.front());
  EXPECT_THROW(PciConfigSpace{twice}, std::invalid_argument);
}

}  // namespace
}  // namespace emmcsim::transport
