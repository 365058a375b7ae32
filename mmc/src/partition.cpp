#include "emmcsim/mmc/partition.hpp"

#include <array>

namespace emmcsim::mmc {
namespace {

// Indexed by PARTITION_ACCESS, which is also the enum's value. The boot partitions are named
// as Linux names them (mmcblkNboot0/boot1), not by JEDEC's numbering (boot partition 1/2).
constexpr std::array<std::string_view, 8> kPartitionNames = {"user", "boot0", "boot1", "rpmb",
                                                             "gp1",  "gp2",   "gp3",   "gp4"};

}  // namespace

std::string_view partition_name(Partition p) {
  const auto index = static_cast<std::size_t>(p);
  return index < kPartitionNames.size() ? kPartitionNames[index] : std::string_view("unknown");
}

std::optional<Partition> partition_from_access(std::uint8_t access) {
  if (access >= kPartitionNames.size()) return std::nullopt;
  return static_cast<Partition>(access);
}

}  // namespace emmcsim::mmc
