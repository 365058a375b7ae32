// The partitions of an eMMC, numbered as PARTITION_CONFIG[2:0] (EXT_CSD[179]) selects them.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace emmcsim::mmc {

enum class Partition : std::uint8_t {
  user = 0,
  boot1 = 1,  // Linux: mmcblkNboot0, image file boot0.img
  boot2 = 2,  // Linux: mmcblkNboot1, image file boot1.img
  rpmb = 3,
  gp1 = 4,
  gp2 = 5,
  gp3 = 6,
  gp4 = 7,
};

constexpr std::uint32_t kSectorSize = 512;

// "user", "boot1", "rpmb", "gp3" …
std::string_view partition_name(Partition p);
// PARTITION_ACCESS value 0..7 → Partition.
std::optional<Partition> partition_from_access(std::uint8_t access);
constexpr bool is_general_purpose(Partition p) { return static_cast<std::uint8_t>(p) >= 4; }
constexpr bool is_boot(Partition p) { return p == Partition::boot1 || p == Partition::boot2; }

}  // namespace emmcsim::mmc
