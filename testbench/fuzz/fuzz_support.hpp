// What the fuzz targets of the models share: the input as a stream of bytes and big-endian
// numbers (reads past the end yield zeros), and a small card that keeps each input cheap.
#pragma once

#include <cstddef>
#include <cstdint>

#include "emmcsim/mmc/device_config.hpp"

namespace emmcsim::fuzzing {

class FuzzInput {
 public:
  FuzzInput(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
  bool done() const { return at_ >= size_; }
  std::uint8_t byte() { return at_ < size_ ? data_[at_++] : 0; }
  std::uint32_t u16() {
    const std::uint32_t high = byte();
    return (high << 8) | byte();
  }
  std::uint32_t u32() {
    const std::uint32_t high = u16();
    return (high << 16) | u16();
  }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t at_ = 0;
};

// 64 MiB user area, 256 KiB boot partitions, 128 KiB RPMB, a 64 KiB cache.
inline mmc::DeviceConfig small_device_config() {
  mmc::DeviceConfig c = mmc::default_device_config();
  c.user_capacity = 64ULL << 20;
  c.boot_partition_size = 256ULL << 10;
  c.rpmb_size = 128ULL << 10;
  c.cache_size = 64ULL << 10;
  return c;
}

}  // namespace emmcsim::fuzzing
