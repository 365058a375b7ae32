// virtio-pcidev messages (virtio_pcidev.hpp): what User-Mode Linux's virt-pci sends on the
// command queue, decoded with every check, and the interrupt messages the device sends back.
// The byte layouts are written out here from uapi/linux/virtio_pcidev.h and virt-pci.c.
#include "emmcsim/transport/virtio_pcidev.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

namespace emmcsim::transport::virtio_pcidev {
namespace {

// A header as virt-pci's struct virtio_pcidev_msg lays it out, then `data`.
std::vector<std::uint8_t> message(std::uint8_t op, std::uint8_t bar, std::uint32_t size, std::uint64_t addr,
                                  std::vector<std::uint8_t> data = {}) {
  std::vector<std::uint8_t> m(16 + data.size(), 0);
  m[0] = op;
  m[1] = bar;
  std::memcpy(m.data() + 4, &size, 4);
  std::memcpy(m.data() + 8, &addr, 8);
  std::copy(data.begin(), data.end(), m.begin() + 16);
  return m;
}

Access decode(const std::vector<std::uint8_t>& m, std::size_t writable) {
  return decode_access(m.data(), m.size(), writable);
}

TEST(VirtioPcidev, ConfigReadsAsVirtPciSendsThem) {
  // um_pci_cfgspace_read: the header alone, and an 8-byte answer buffer whatever the size.
  const Access a = decode(message(1, 0, 4, 0x10), 8);
  EXPECT_EQ(a.op, Op::cfg_read);
  EXPECT_EQ(a.size, 4u);
  EXPECT_EQ(a.addr, 0x10u);
  EXPECT_TRUE(a.is_read());
  EXPECT_TRUE(a.is_config());
  EXPECT_EQ(decode(message(1, 0, 8, 0xFF8), 8).addr, 0xFF8u);
}

TEST(VirtioPcidev, ConfigWritesCarryEightDataBytesOfWhichSizeCount) {
  // um_pci_cfgspace_write: struct { hdr; u8 data[8]; } whatever the size.
  const Access a = decode(message(2, 0, 2, 0x04, {0x06, 0x00, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA}), 0);
  EXPECT_EQ(a.op, Op::cfg_write);
  EXPECT_EQ(a.data, (std::vector<std::uint8_t>{0x06, 0x00}));
}

TEST(VirtioPcidev, BarReadsAndWritesInOneOrTwoReadableBuffers) {
  const Access read = decode(message(3, 0, 4, 0x24), 4);
  EXPECT_EQ(read.op, Op::mmio_read);
  EXPECT_EQ(read.bar, 0);
  EXPECT_EQ(read.addr, 0x24u);
  // A posted write: header and data copied into one buffer (or sent as two; the caller joins
  // the readable descriptors).
  const Access write = decode(message(4, 0, 2, 0x0E, {0x3A, 0x12}), 0);
  EXPECT_EQ(write.op, Op::mmio_write);
  EXPECT_EQ(write.data, (std::vector<std::uint8_t>{0x3A, 0x12}));
  const Access fill = decode(message(5, 0, 64, 0x100, {0x5A}), 0);
  EXPECT_EQ(fill.op, Op::mmio_memset);
  EXPECT_EQ(fill.size, 64u);
  EXPECT_EQ(fill.data, (std::vector<std::uint8_t>{0x5A}));
}

TEST(VirtioPcidev, EncodeAndDecodeAgree) {
  Access a;
  a.op = Op::mmio_write;
  a.bar = 2;
  a.size = 3;
  a.addr = 0x123456789;
  a.data = {1, 2, 3};
  const Access b = decode(encode_access(a), 0);
  EXPECT_EQ(b.op, a.op);
  EXPECT_EQ(b.bar, a.bar);
  EXPECT_EQ(b.size, a.size);
  EXPECT_EQ(b.addr, a.addr);
  EXPECT_EQ(b.data, a.data);
}

// Every malformed request is refused with a message naming what is wrong.
TEST(VirtioPcidev, MalformedRequestsAreRefusedWithTheReason) {
  struct Case {
    std::vector<std::uint8_t> bytes;
    std::size_t writable;
    const char* expected;
  };
  const std::vector<Case> cases = {
      {std::vector<std::uint8_t>(15, 0), 8, "15 readable bytes"},
      {message(0, 0, 4, 0), 8, "RESERVED on the command queue"},
      {message(6, 0, 0, 1), 0, "INT on the command queue"},
      {message(7, 0, 4, 0, {1, 2, 3, 4}), 0, "MSI on the command queue"},
      {message(99, 0, 4, 0), 8, "op 99 on the command queue"},
      {message(1, 0, 3, 0), 8, "CFG_READ of 3 bytes"},
      {message(1, 0, 4, 4096), 8, "beyond the 4 KiB config space"},
      {message(1, 0, 8, 4092), 8, "beyond the 4 KiB config space"},
      {message(1, 0, 4, UINT64_MAX - 1), 8, "beyond the 4 KiB config space"},
      {message(1, 0, 4, 0), 2, "with room for 2"},
      {message(1, 0, 4, 0, {1}), 8, "data bytes after the header"},
      {message(2, 0, 4, 0, {1, 2}), 0, "CFG_WRITE of 4 bytes with 2 data bytes"},
      {message(2, 0, 4, 0, {1, 2, 3, 4}), 4, "with a writable buffer"},
      {message(3, 6, 4, 0), 4, "MMIO_READ of BAR 6"},
      {message(3, 0, 0, 0), 4, "MMIO_READ of 0 bytes"},
      {message(3, 0, 4097, 0), 4097, "MMIO_READ of 4097 bytes"},
      {message(3, 0, 8, UINT64_MAX - 3), 8, "wraps around"},
      {message(4, 0, 4, 0, {1, 2, 3}), 0, "MMIO_WRITE of 4 bytes with 3 data bytes"},
      {message(5, 0, 16, 0), 0, "MMIO_MEMSET of 16 bytes with 0 data bytes"},
      // 6.1's memset_io sends CFG_WRITE with the fill size (a kernel bug): refused, not obeyed.
      {message(2, 0, 64, 0x100, {0x5A}), 0, "CFG_WRITE of 64 bytes"},
  };
  for (const Case& c : cases) {
    try {
      decode(c.bytes, c.writable);
      ADD_FAILURE() << "accepted: expected " << c.expected;
    } catch (const PcidevMessageError& e) {
      EXPECT_NE(std::string(e.what()).find(c.expected), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(decode_access(nullptr, 16, 8), PcidevMessageError);
}

TEST(VirtioPcidev, InterruptMessagesAreWhatUmPciHandleIrqMessageReads) {
  const auto msi = encode_msi(0x2A);
  ASSERT_EQ(msi.size(), 20u);
  EXPECT_EQ(msi[0], 7);
  std::uint32_t size = 0, data = 0;
  std::memcpy(&size, msi.data() + 4, 4);
  std::memcpy(&data, msi.data() + 16, 4);
  EXPECT_EQ(size, 4u);
  EXPECT_EQ(data, 0x2Au);
  const auto msi16 = encode_msi(0x1234, false);
  std::memcpy(&size, msi16.data() + 4, 4);
  EXPECT_EQ(size, 2u);
  EXPECT_EQ(msi16[16] | (msi16[17] << 8), 0x1234);
  EXPECT_EQ(msi16[18], 0);
  const auto intx = encode_intx(1);
  EXPECT_EQ(intx[0], 6);
  std::uint64_t pin = 0;
  std::memcpy(&pin, intx.data() + 8, 8);
  EXPECT_EQ(pin, 1u);
  EXPECT_EQ(op_name(3), "MMIO_READ");
  EXPECT_EQ(op_name(200), "op 200");
}

}  // namespace
}  // namespace emmcsim::transport::virtio_pcidev
