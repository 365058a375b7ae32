// User-Mode Linux's time-travel messages (see time_travel.hpp).
#include "emmcsim/transport/time_travel.hpp"

#include <cstdio>

#include "emmcsim/support/little_endian.hpp"

namespace emmcsim::transport::time_travel {

std::array<std::uint8_t, kMessageSize> encode(const Message& message) {
  std::array<std::uint8_t, kMessageSize> bytes{};
  support::store_le32(bytes.data(), static_cast<std::uint32_t>(message.op));
  support::store_le32(bytes.data() + 4, message.seq);
  support::store_le64(bytes.data() + 8, message.time);
  return bytes;
}

Message decode(const std::uint8_t* bytes, std::size_t size) {
  if (size != kMessageSize)
    throw ProtocolError("a time-travel message is " + std::to_string(kMessageSize) + " bytes, not " +
                        std::to_string(size));
  const std::uint32_t op = support::load_le32(bytes);
  if (op > static_cast<std::uint32_t>(Op::get_tod)) throw ProtocolError("unknown time-travel op " + std::to_string(op));
  return Message{static_cast<Op>(op), support::load_le32(bytes + 4), support::load_le64(bytes + 8)};
}

std::string op_name(std::uint32_t op) {
  switch (static_cast<Op>(op)) {
    case Op::ack: return "ACK";
    case Op::start: return "START";
    case Op::request: return "REQUEST";
    case Op::wait: return "WAIT";
    case Op::get: return "GET";
    case Op::update: return "UPDATE";
    case Op::run: return "RUN";
    case Op::free_until: return "FREE_UNTIL";
    case Op::get_tod: return "GET_TOD";
  }
  return "op " + std::to_string(op);
}

std::string describe(const Message& message) {
  char time[48];
  std::snprintf(time, sizeof time, "%llu.%09llu s", static_cast<unsigned long long>(message.time / 1'000'000'000),
                static_cast<unsigned long long>(message.time % 1'000'000'000));
  return op_name(static_cast<std::uint32_t>(message.op)) + "(seq " + std::to_string(message.seq) + ", " + time + ")";
}

}  // namespace emmcsim::transport::time_travel
