// Simulated time as whole picoseconds, the unit every model computes in. The models need the
// kernel's time resolution to be 1 ps or finer (SystemC's default is 1 ps) so that every time
// they compute is exact; time_resolution_supported() says whether it is.
#pragma once

#include <cmath>
#include <cstdint>
#include <systemc>

#include "emmcsim/models/timing_profile.hpp"

namespace emmcsim::models {

// Kernel time units per picosecond: 1 at the default resolution, 0 when it is coarser than 1 ps.
inline std::uint64_t time_units_per_ps() {
  const double units = 1e-12 / sc_core::sc_get_time_resolution().to_seconds();
  return units < 1.0 ? 0 : static_cast<std::uint64_t>(std::llround(units));
}
inline bool time_resolution_supported() { return time_units_per_ps() != 0; }

inline Picoseconds to_ps(const sc_core::sc_time& t) { return t.value() / time_units_per_ps(); }
inline sc_core::sc_time from_ps(Picoseconds ps) { return sc_core::sc_time::from_value(ps * time_units_per_ps()); }

}  // namespace emmcsim::models
