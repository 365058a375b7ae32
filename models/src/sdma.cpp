// SdmaWalker (see sdma.hpp).
#include "emmcsim/models/sdma.hpp"

#include <algorithm>

namespace emmcsim::models {

SdmaWalker::SdmaWalker(std::uint64_t system_address, unsigned boundary_code, bool addressing_64)
    : mask_(addressing_64 ? ~std::uint64_t{0} : 0xFFFF'FFFFu),
      address_(system_address & mask_),
      boundary_(kSmallestBoundary << (boundary_code & 7)) {}

SdmaWalker::Step SdmaWalker::next(std::uint32_t max_bytes) {
  const auto to_boundary = static_cast<std::uint32_t>(boundary_ - address_ % boundary_);
  Step step;
  step.address = address_;
  step.length = std::min(std::max<std::uint32_t>(max_bytes, 1), to_boundary);
  address_ = (address_ + step.length) & mask_;  // wraps as the register does
  return step;
}

}  // namespace emmcsim::models
