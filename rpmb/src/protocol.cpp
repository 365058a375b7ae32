#include "emmcsim/rpmb/protocol.hpp"

#include <fmt/format.h>

namespace emmcsim::rpmb {

std::string describe_result(std::uint16_t result) {
  const char* name = "unknown result";
  switch (result & ~kCounterExpiredBit) {
    case 0x00: name = "ok"; break;
    case 0x01: name = "general failure"; break;
    case 0x02: name = "authentication failure"; break;
    case 0x03: name = "counter failure"; break;
    case 0x04: name = "address failure"; break;
    case 0x05: name = "write failure"; break;
    case 0x06: name = "read failure"; break;
    case 0x07: name = "authentication key not yet programmed"; break;
    default: break;
  }
  if (result & kCounterExpiredBit) {
    return fmt::format("{}, write counter expired (0x{:04x})", name, result);
  }
  return fmt::format("{} (0x{:04x})", name, result);
}

std::string describe_request(std::uint16_t request_type) {
  switch (request_type) {
    case 0x0001: return "authentication key programming";
    case 0x0002: return "read write counter";
    case 0x0003: return "authenticated data write";
    case 0x0004: return "authenticated data read";
    case 0x0005: return "result read";
    case 0x0006: return "authenticated device configuration write";
    case 0x0007: return "authenticated device configuration read";
    default: return fmt::format("unknown request 0x{:04x}", request_type);
  }
}

}  // namespace emmcsim::rpmb
