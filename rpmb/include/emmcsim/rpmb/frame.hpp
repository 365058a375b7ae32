// The 512-byte RPMB data frame with typed big-endian accessors (offsets as every client's C
// struct uses them; JEDEC numbers the bytes from the other end).
//
//   offset  size  field
//        0   196  stuff bytes
//      196    32  key (key programming) or MAC (last frame of a burst)
//      228   256  data
//      484    16  nonce
//      500     4  write counter
//      504     2  address (256-byte half-sectors)
//      506     2  block count
//      508     2  result
//      510     2  request / response type
#pragma once

#include <array>
#include <cstdint>

#include "emmcsim/rpmb/protocol.hpp"

namespace emmcsim::rpmb {

using Key = std::array<std::uint8_t, kKeySize>;
using Mac = std::array<std::uint8_t, kMacSize>;
using Nonce = std::array<std::uint8_t, kNonceSize>;
using HalfSector = std::array<std::uint8_t, kHalfSectorSize>;

class Frame {
 public:
  static constexpr std::size_t kStuffOffset = 0;
  static constexpr std::size_t kKeyMacOffset = 196;
  static constexpr std::size_t kDataOffset = 228;
  static constexpr std::size_t kNonceOffset = 484;
  static constexpr std::size_t kWriteCounterOffset = 500;
  static constexpr std::size_t kAddressOffset = 504;
  static constexpr std::size_t kBlockCountOffset = 506;
  static constexpr std::size_t kResultOffset = 508;
  static constexpr std::size_t kTypeOffset = 510;
  static constexpr std::size_t kMacInputOffset = kDataOffset;  // MAC covers 228..511

  Frame() { bytes_.fill(0); }

  static Frame from_bytes(const std::uint8_t* bytes);  // copies kFrameSize bytes

  std::uint8_t* bytes() { return bytes_.data(); }
  const std::uint8_t* bytes() const { return bytes_.data(); }
  const std::uint8_t* mac_input() const { return bytes_.data() + kMacInputOffset; }

  Key key() const;
  void set_key(const Key& key);
  Mac mac() const;
  void set_mac(const Mac& mac);

  std::uint8_t* data() { return bytes_.data() + kDataOffset; }
  const std::uint8_t* data() const { return bytes_.data() + kDataOffset; }
  HalfSector data_block() const;
  void set_data(const std::uint8_t* half_sector);  // copies kHalfSectorSize bytes

  Nonce nonce() const;
  void set_nonce(const Nonce& nonce);

  std::uint32_t write_counter() const { return get32(kWriteCounterOffset); }
  void set_write_counter(std::uint32_t v) { put32(kWriteCounterOffset, v); }
  std::uint16_t address() const { return get16(kAddressOffset); }
  void set_address(std::uint16_t v) { put16(kAddressOffset, v); }
  std::uint16_t block_count() const { return get16(kBlockCountOffset); }
  void set_block_count(std::uint16_t v) { put16(kBlockCountOffset, v); }
  std::uint16_t result() const { return get16(kResultOffset); }
  void set_result(std::uint16_t v) { put16(kResultOffset, v); }
  std::uint16_t type() const { return get16(kTypeOffset); }
  void set_type(std::uint16_t v) { put16(kTypeOffset, v); }
  void set_request(RequestType t) { set_type(static_cast<std::uint16_t>(t)); }
  void set_response(ResponseType t) { set_type(static_cast<std::uint16_t>(t)); }

  friend bool operator==(const Frame& a, const Frame& b) { return a.bytes_ == b.bytes_; }
  friend bool operator!=(const Frame& a, const Frame& b) { return !(a == b); }

 private:
  std::uint16_t get16(std::size_t off) const;
  std::uint32_t get32(std::size_t off) const;
  void put16(std::size_t off, std::uint16_t v);
  void put32(std::size_t off, std::uint32_t v);

  std::array<std::uint8_t, kFrameSize> bytes_;
};

static_assert(sizeof(Frame) == kFrameSize, "Frame must be exactly one 512-byte block");

}  // namespace emmcsim::rpmb
