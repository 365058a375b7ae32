// SdmaWalker (see sdma.hpp).
#include "emmcsim/models/sdma.hpp"

#include <algorithm>

namespace emmcsim::models {

SdmaWalker::SdmaWalker(std::uint32_t system_address, unsigned boundary_code)
    : address_(system_address), boundary_(kSmallestBoundary << (boundary_code & 7)) {}

SdmaWalker::Step SdmaWalker::next(std::uint32_t max_bytes) {
  const std::uint32_t to_boundary = boundary_ - address_ % boundary_;
  Step step;
  step.address = address_;
  step.length = std::min(std::max<std::uint32_t>(max_bytes, 1), to_boundary);
  address_ += step.length;  // wraps at 32 bits, as the register does
  return step;
}

}  // namespace emmcsim::models
