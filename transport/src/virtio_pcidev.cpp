// virtio-pcidev messages (see virtio_pcidev.hpp).
#include "emmcsim/transport/virtio_pcidev.hpp"

#include <algorithm>
#include <cstring>

#include "emmcsim/support/little_endian.hpp"

// The header is in the host's byte order (virt-pci runs on the same host): on a little-endian
// host its fields read as little-endian, which is how they are read here.
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "virtio-pcidev headers are in the host's byte order: a big-endian host needs its own decoding"
#endif

namespace emmcsim::transport::virtio_pcidev {
namespace {

[[noreturn]] void refuse(const std::string& what) { throw PcidevMessageError("virtio-pcidev: " + what); }

bool config_size(std::uint32_t size) { return size == 1 || size == 2 || size == 4 || size == 8; }

}  // namespace

std::string op_name(std::uint8_t op) {
  switch (static_cast<Op>(op)) {
    case Op::reserved: return "RESERVED";
    case Op::cfg_read: return "CFG_READ";
    case Op::cfg_write: return "CFG_WRITE";
    case Op::mmio_read: return "MMIO_READ";
    case Op::mmio_write: return "MMIO_WRITE";
    case Op::mmio_memset: return "MMIO_MEMSET";
    case Op::intx: return "INT";
    case Op::msi: return "MSI";
    case Op::pme: return "PME";
  }
  return "op " + std::to_string(op);
}

Access decode_access(const std::uint8_t* readable, std::size_t readable_size, std::size_t writable_size) {
  if (readable == nullptr || readable_size < kHeaderSize)
    refuse("a request of " + std::to_string(readable_size) + " readable bytes (the header is 16)");
  Access a;
  const std::uint8_t op = readable[0];
  a.bar = readable[1];
  a.size = support::load_le32(readable + 4);
  a.addr = support::load_le64(readable + 8);
  const std::uint8_t* data = readable + kHeaderSize;
  const std::size_t data_size = readable_size - kHeaderSize;
  const std::string what = op_name(op);
  switch (static_cast<Op>(op)) {
    case Op::cfg_read:
    case Op::cfg_write: {
      a.op = static_cast<Op>(op);
      if (!config_size(a.size)) refuse(what + " of " + std::to_string(a.size) + " bytes (1, 2, 4 or 8)");
      if (a.addr >= kConfigSpaceSize || a.addr + a.size > kConfigSpaceSize)
        refuse(what + " at offset " + std::to_string(a.addr) + " beyond the 4 KiB config space");
      break;
    }
    case Op::mmio_read:
    case Op::mmio_write:
    case Op::mmio_memset: {
      a.op = static_cast<Op>(op);
      if (a.bar >= kMaxBars) refuse(what + " of BAR " + std::to_string(a.bar) + " (0..5)");
      if (a.size == 0 || a.size > kMaxBarAccess)
        refuse(what + " of " + std::to_string(a.size) + " bytes (1.." + std::to_string(kMaxBarAccess) + ")");
      if (a.addr > UINT64_MAX - a.size) refuse(what + " whose range wraps around");
      break;
    }
    default: refuse(what + " on the command queue (only config and BAR accesses belong there)");
  }
  if (a.is_read()) {
    if (data_size != 0) refuse(what + " with " + std::to_string(data_size) + " data bytes after the header");
    if (writable_size < a.size)
      refuse(what + " of " + std::to_string(a.size) + " bytes with room for " + std::to_string(writable_size));
    return a;
  }
  if (writable_size != 0) refuse(what + " with a writable buffer (writes are posted)");
  const std::size_t needed = a.op == Op::mmio_memset ? 1 : a.size;
  if (data_size < needed)
    refuse(what + " of " + std::to_string(a.size) + " bytes with " + std::to_string(data_size) + " data bytes");
  a.data.assign(data, data + needed);
  return a;
}

std::array<std::uint8_t, kInterruptMessageSize> encode_msi(std::uint32_t data, bool thirty_two_bit) {
  std::array<std::uint8_t, kInterruptMessageSize> m{};
  m[0] = static_cast<std::uint8_t>(Op::msi);
  support::store_le32(m.data() + 4, thirty_two_bit ? 4 : 2);
  if (thirty_two_bit)
    support::store_le32(m.data() + kHeaderSize, data);
  else
    support::store_le16(m.data() + kHeaderSize, static_cast<std::uint16_t>(data));
  return m;
}

std::array<std::uint8_t, kInterruptMessageSize> encode_intx(unsigned pin) {
  std::array<std::uint8_t, kInterruptMessageSize> m{};
  m[0] = static_cast<std::uint8_t>(Op::intx);
  support::store_le64(m.data() + 8, pin);
  return m;
}

std::vector<std::uint8_t> encode_access(const Access& a) {
  std::vector<std::uint8_t> m(kHeaderSize + a.data.size());
  m[0] = static_cast<std::uint8_t>(a.op);
  m[1] = a.bar;
  support::store_le32(m.data() + 4, a.size);
  support::store_le64(m.data() + 8, a.addr);
  std::copy(a.data.begin(), a.data.end(), m.begin() + kHeaderSize);
  return m;
}

}  // namespace emmcsim::transport::virtio_pcidev
