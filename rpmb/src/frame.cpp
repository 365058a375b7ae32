#include "emmcsim/rpmb/frame.hpp"

#include <algorithm>
#include <cstring>

namespace emmcsim::rpmb {

Frame Frame::from_bytes(const std::uint8_t* bytes) {
  Frame f;
  std::memcpy(f.bytes_.data(), bytes, kFrameSize);
  return f;
}

Key Frame::key() const {
  Key k;
  std::copy_n(bytes_.data() + kKeyMacOffset, k.size(), k.begin());
  return k;
}

void Frame::set_key(const Key& key) { std::copy(key.begin(), key.end(), bytes_.data() + kKeyMacOffset); }

Mac Frame::mac() const {
  Mac m;
  std::copy_n(bytes_.data() + kKeyMacOffset, m.size(), m.begin());
  return m;
}

void Frame::set_mac(const Mac& mac) { std::copy(mac.begin(), mac.end(), bytes_.data() + kKeyMacOffset); }

HalfSector Frame::data_block() const {
  HalfSector d;
  std::copy_n(data(), d.size(), d.begin());
  return d;
}

void Frame::set_data(const std::uint8_t* half_sector) { std::memcpy(data(), half_sector, kHalfSectorSize); }

Nonce Frame::nonce() const {
  Nonce n;
  std::copy_n(bytes_.data() + kNonceOffset, n.size(), n.begin());
  return n;
}

void Frame::set_nonce(const Nonce& nonce) { std::copy(nonce.begin(), nonce.end(), bytes_.data() + kNonceOffset); }

std::uint16_t Frame::get16(std::size_t off) const {
  return static_cast<std::uint16_t>((bytes_[off] << 8) | bytes_[off + 1]);
}

std::uint32_t Frame::get32(std::size_t off) const {
  return (std::uint32_t{bytes_[off]} << 24) | (std::uint32_t{bytes_[off + 1]} << 16) |
         (std::uint32_t{bytes_[off + 2]} << 8) | std::uint32_t{bytes_[off + 3]};
}

void Frame::put16(std::size_t off, std::uint16_t v) {
  bytes_[off] = static_cast<std::uint8_t>(v >> 8);
  bytes_[off + 1] = static_cast<std::uint8_t>(v);
}

void Frame::put32(std::size_t off, std::uint32_t v) {
  bytes_[off] = static_cast<std::uint8_t>(v >> 24);
  bytes_[off + 1] = static_cast<std::uint8_t>(v >> 16);
  bytes_[off + 2] = static_cast<std::uint8_t>(v >> 8);
  bytes_[off + 3] = static_cast<std::uint8_t>(v);
}

}  // namespace emmcsim::rpmb
