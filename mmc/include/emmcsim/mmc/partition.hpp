// The partitions of an eMMC, numbered as PARTITION_CONFIG[2:0] (EXT_CSD[179]) selects them.
//
// Names: everything users read (the CLI, images, state.json, messages) names the boot partitions
// as Linux does — boot0 and boot1 (/dev/mmcblkNboot0, boot0.img). JEDEC numbers them from 1:
// boot0 is JEDEC's boot partition 1 (PARTITION_ACCESS 1, BOOT_PARTITION_ENABLE 1, Partition::boot1),
// boot1 is boot partition 2 (PARTITION_ACCESS 2, Partition::boot2). The enum keeps JEDEC's
// numbering because it is the register value.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace emmcsim::mmc {

enum class Partition : std::uint8_t {
  user = 0,
  boot1 = 1,  // JEDEC boot partition 1; named boot0 (Linux: mmcblkNboot0, image file boot0.img)
  boot2 = 2,  // JEDEC boot partition 2; named boot1 (Linux: mmcblkNboot1, image file boot1.img)
  rpmb = 3,
  gp1 = 4,
  gp2 = 5,
  gp3 = 6,
  gp4 = 7,
};

constexpr std::uint32_t kSectorSize = 512;

// "user", "boot0", "boot1", "rpmb", "gp1" … "gp4": the name users read (see above).
std::string_view partition_name(Partition p);
// PARTITION_ACCESS value 0..7 → Partition.
std::optional<Partition> partition_from_access(std::uint8_t access);
constexpr bool is_general_purpose(Partition p) { return static_cast<std::uint8_t>(p) >= 4; }
constexpr bool is_boot(Partition p) { return p == Partition::boot1 || p == Partition::boot2; }

}  // namespace emmcsim::mmc
