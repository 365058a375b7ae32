// virtio-pcidev messages: how User-Mode Linux's virt-pci (arch/um/drivers/virt-pci.c, uapi
// linux/virtio_pcidev.h) reaches a PCI function over a virtio device (../shared/spec/uml-pci.md).
// Standard C++ only; every decode checks sizes and values and throws PcidevMessageError: the
// bytes come from the guest.
//
// Two virtqueues: 0 carries the guest's accesses (config space, BAR memory), 1 carries the
// device's interrupts back in buffers the guest posted. Every message starts with a 16-byte
// header in the host's byte order (little-endian here; the data bytes are little-endian):
//   u8 op   u8 bar   u16 reserved   u32 size   u64 addr   then data
// On queue 0, as 6.1 sends them:
//   CFG_READ    header readable; a writable buffer (8 bytes from virt-pci) receives `size` bytes
//   CFG_WRITE   header + 8 data bytes readable (the first `size` count), nothing writable
//   MMIO_READ   header readable; a writable buffer of `size` bytes
//   MMIO_WRITE  header + `size` data bytes readable (one buffer, or the header and the data in
//               two), nothing writable; posted (the guest does not wait)
//   MMIO_MEMSET header + 1 data byte; `size` bytes of BAR memory set to it (6.1's memset_io
//               sends CFG_WRITE by mistake: that is refused as a config write of a bad size)
// Config accesses are 1, 2, 4 or 8 bytes inside the 4 KiB config space; BAR accesses name BAR
// 0-5 and are bounded by kMaxBarAccess here (the BAR's own size is the device's check).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace emmcsim::transport::virtio_pcidev {

// CONFIG_UML_PCI_OVER_VIRTIO_DEVICE_ID: there is no official virtio ID; emmcsim's kernel
// fragment (linux/uml.config) and the command line scripts/linux builds both use this one.
inline constexpr std::uint32_t kVirtioDeviceId = 1234;
inline constexpr std::size_t kCommandQueue = 0;
inline constexpr std::size_t kInterruptQueue = 1;
inline constexpr std::size_t kHeaderSize = 16;
inline constexpr std::uint32_t kConfigSpaceSize = 4096;  // per device (CFG_SPACE_SIZE)
inline constexpr std::size_t kMaxBars = 6;
// The largest BAR read or write one message may carry (memcpy_fromio/toio split at the caller).
inline constexpr std::uint32_t kMaxBarAccess = 4096;
// An interrupt message: header + a 32-bit MSI payload (MAX_IRQ_MSG_SIZE); the guest's buffers
// on queue 1 are this size.
inline constexpr std::size_t kInterruptMessageSize = kHeaderSize + 4;

enum class Op : std::uint8_t {
  reserved = 0,
  cfg_read = 1,
  cfg_write = 2,
  mmio_read = 3,
  mmio_write = 4,
  mmio_memset = 5,
  intx = 6,  // VIRTIO_PCIDEV_OP_INT: addr = pin 1..4
  msi = 7,   // size 2 or 4: data = the MSI data word (UML: the Linux irq number)
  pme = 8,
};
// "CFG_READ", or "op 42".
std::string op_name(std::uint8_t op);

class PcidevMessageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// One guest access from queue 0, decoded and checked.
struct Access {
  Op op = Op::reserved;
  std::uint8_t bar = 0;            // BAR accesses
  std::uint32_t size = 0;          // bytes read, written or set
  std::uint64_t addr = 0;          // config offset, or offset inside the BAR
  std::vector<std::uint8_t> data;  // CFG_WRITE, MMIO_WRITE: `size` bytes; MMIO_MEMSET: the byte

  bool is_read() const { return op == Op::cfg_read || op == Op::mmio_read; }
  bool is_config() const { return op == Op::cfg_read || op == Op::cfg_write; }
};

// Decodes a queue-0 request from the bytes of its readable descriptors (concatenated, in chain
// order) and the room its writable descriptors give. Throws PcidevMessageError naming what is
// wrong: a short header, an op that does not belong on queue 0, a size or offset out of range,
// data shorter than the size, a read without room for its answer or a write with room.
Access decode_access(const std::uint8_t* readable, std::size_t readable_size, std::size_t writable_size);

// Interrupt messages for queue 1 (kInterruptMessageSize bytes, unused bytes zero).
std::array<std::uint8_t, kInterruptMessageSize> encode_msi(std::uint32_t data, bool thirty_two_bit = true);
std::array<std::uint8_t, kInterruptMessageSize> encode_intx(unsigned pin);

// For tests and front-ends: a queue-0 message as virt-pci builds it.
std::vector<std::uint8_t> encode_access(const Access& access);

}  // namespace emmcsim::transport::virtio_pcidev
