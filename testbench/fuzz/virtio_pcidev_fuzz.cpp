// libFuzzer target: virtio-pcidev command-queue requests as a guest's virt-pci might send them —
// or not. The first two bytes give the room the writable descriptors offer; the rest is the
// readable bytes. decode_access either throws PcidevMessageError or returns an access that
// satisfies every bound the device relies on, and re-encodes to the bytes it came from.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "emmcsim/transport/virtio_pcidev.hpp"

namespace pcidev = emmcsim::transport::virtio_pcidev;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const std::size_t writable = (std::size_t{data[0]} << 8) | data[1];
  const std::uint8_t* readable = data + 2;
  const std::size_t readable_size = size - 2;
  pcidev::Access a;
  try {
    a = pcidev::decode_access(readable, readable_size, writable);
  } catch (const pcidev::PcidevMessageError&) {
    return 0;
  }
  switch (a.op) {
    case pcidev::Op::cfg_read:
    case pcidev::Op::cfg_write:
      if (!(a.size == 1 || a.size == 2 || a.size == 4 || a.size == 8)) __builtin_trap();
      if (a.addr + a.size > pcidev::kConfigSpaceSize) __builtin_trap();
      break;
    case pcidev::Op::mmio_read:
    case pcidev::Op::mmio_write:
    case pcidev::Op::mmio_memset:
      if (a.bar >= pcidev::kMaxBars || a.size == 0 || a.size > pcidev::kMaxBarAccess) __builtin_trap();
      if (a.addr + a.size < a.addr) __builtin_trap();
      break;
    default: __builtin_trap();  // nothing else belongs on the command queue
  }
  if (a.is_read()) {
    if (writable < a.size || !a.data.empty()) __builtin_trap();
  } else {
    if (writable != 0) __builtin_trap();
    if (a.data.size() != (a.op == pcidev::Op::mmio_memset ? 1u : a.size)) __builtin_trap();
  }
  // What was accepted re-encodes to the bytes it was decoded from (up to the data it used).
  const auto again = pcidev::encode_access(a);
  if (again.size() > readable_size) __builtin_trap();
  if (std::memcmp(again.data(), readable, 2) != 0 || std::memcmp(again.data() + 4, readable + 4, again.size() - 4) != 0)
    __builtin_trap();
  return 0;
}
