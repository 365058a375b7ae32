// What the source files of mmc::Card share (card.cpp, card_transfer.cpp, card_switch.cpp,
// card_protection.cpp, card_erase.cpp) and nothing else needs. Not installed.
#pragma once

#include <algorithm>
#include <cstdint>

#include "emmcsim/mmc/protocol.hpp"

namespace emmcsim::mmc::card_detail {

// A sector count as WorkReport holds it, saturating.
inline std::uint32_t sectors_u32(std::uint64_t n) {
  return static_cast<std::uint32_t>(std::min<std::uint64_t>(n, UINT32_MAX));
}

// The BOOT_WP bits that are stored in the device and survive power cycles and CMD0.
constexpr std::uint8_t kBootWpPermanentBits = ext_csd::boot_wp::kPermanentWpEnable |
                                              ext_csd::boot_wp::kPermanentWpSecondArea |
                                              ext_csd::boot_wp::kPermanentWpDisable;

}  // namespace emmcsim::mmc::card_detail
