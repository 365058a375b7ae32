// RPMB protocol constants (JESD84-B51 §6.6.22): request and response types, result codes,
// sizes. Shared by every front end (eMMC bus, MMC ioctl, virtio-rpmb).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace emmcsim::rpmb {

inline constexpr std::size_t kFrameSize = 512;
inline constexpr std::size_t kHalfSectorSize = 256;  // data bytes per frame, the RPMB address unit
inline constexpr std::size_t kKeySize = 32;
inline constexpr std::size_t kMacSize = 32;
inline constexpr std::size_t kNonceSize = 16;
inline constexpr std::size_t kMacInputPerFrame = 284;  // frame bytes 228..511

// RPMB_SIZE_MULT (EXT_CSD[168]) counts 128 KiB units, 1..128.
inline constexpr std::uint32_t kSizeMultUnit = 128 * 1024;
inline constexpr unsigned kMaxSizeMult = 128;

enum class RequestType : std::uint16_t {
  program_key = 0x0001,
  read_counter = 0x0002,
  authenticated_write = 0x0003,
  authenticated_read = 0x0004,
  result_read = 0x0005,
  device_config_write = 0x0006,
  device_config_read = 0x0007,
};

enum class ResponseType : std::uint16_t {
  none = 0x0000,  // result register before any write-type request
  program_key = 0x0100,
  read_counter = 0x0200,
  authenticated_write = 0x0300,
  authenticated_read = 0x0400,
  device_config_write = 0x0600,
  device_config_read = 0x0700,
};

constexpr ResponseType response_to(RequestType request) {
  return static_cast<ResponseType>(static_cast<std::uint16_t>(request) << 8);
}

enum class ResultCode : std::uint16_t {
  ok = 0x00,
  general_failure = 0x01,
  authentication_failure = 0x02,
  counter_failure = 0x03,
  address_failure = 0x04,
  write_failure = 0x05,
  read_failure = 0x06,
  key_not_programmed = 0x07,
};

// ORed into every result once the write counter has reached kCounterMax.
inline constexpr std::uint16_t kCounterExpiredBit = 0x0080;
inline constexpr std::uint32_t kCounterMax = 0xFFFFFFFF;

// Device configuration block (request 0x0006/0x0007). The host selects the register with the
// frame's address field and puts the value in the last data byte (JEDEC byte 28); a read
// returns SECURE_WP_MODE_ENABLE in data[255] and SECURE_WP_MODE_CONFIG in data[254].
inline constexpr std::uint16_t kConfigAddressSecureWpModeEnable = 1;
inline constexpr std::uint16_t kConfigAddressSecureWpModeConfig = 2;
inline constexpr std::size_t kConfigDataSecureWpModeEnable = 255;
inline constexpr std::size_t kConfigDataSecureWpModeConfig = 254;

// The operation succeeded (the expiry bit alone is not a failure).
constexpr bool result_ok(std::uint16_t result) { return (result & ~kCounterExpiredBit) == 0; }

// "authentication failure (0x0002)", "write failure, write counter expired (0x0085)".
std::string describe_result(std::uint16_t result);
std::string describe_request(std::uint16_t request_type);

}  // namespace emmcsim::rpmb
