// Everything an RPMB partition remembers besides its data: the key, the write counter, the
// result register and the device configuration block.
#pragma once

#include <cstdint>

#include "emmcsim/rpmb/frame.hpp"

namespace emmcsim::rpmb {

// What a result read (request 0x0005) reports: the last write-type request and its outcome.
struct ResultRegister {
  ResponseType type = ResponseType::none;
  std::uint16_t result = 0;         // ResultCode, with kCounterExpiredBit when set
  std::uint32_t write_counter = 0;  // after the increment when the request succeeded
  std::uint16_t address = 0;

  friend bool operator==(const ResultRegister& a, const ResultRegister& b) {
    return a.type == b.type && a.result == b.result && a.write_counter == b.write_counter && a.address == b.address;
  }
};

// Authenticated device configuration (eMMC 5.1): the secure write protection registers that
// the eMMC layer shows in EXT_CSD[211] SECURE_WP_INFO.
struct DeviceConfiguration {
  std::uint8_t secure_wp_mode_enable = 0;  // bit 0 SECURE_WP_EN
  std::uint8_t secure_wp_mode_config = 0;  // bit 0 SECURE_WP_MASK

  friend bool operator==(const DeviceConfiguration& a, const DeviceConfiguration& b) {
    return a.secure_wp_mode_enable == b.secure_wp_mode_enable && a.secure_wp_mode_config == b.secure_wp_mode_config;
  }
};

struct PartitionState {
  bool key_programmed = false;
  Key key{};
  std::uint32_t write_counter = 0;
  ResultRegister result_register;
  DeviceConfiguration device_configuration;

  bool counter_expired() const { return write_counter == kCounterMax; }

  friend bool operator==(const PartitionState& a, const PartitionState& b) {
    return a.key_programmed == b.key_programmed && a.key == b.key && a.write_counter == b.write_counter &&
           a.result_register == b.result_register && a.device_configuration == b.device_configuration;
  }
  friend bool operator!=(const PartitionState& a, const PartitionState& b) { return !(a == b); }
};

}  // namespace emmcsim::rpmb
