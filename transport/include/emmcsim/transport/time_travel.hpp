// User-Mode Linux's time-travel protocol (`time-travel=ext:[ID:]SOCKET`, Linux's
// include/uapi/linux/um_timetravel.h, ../shared/spec/uml-pci.md): the messages between a UML
// instance and the calendar that owns its clock. Standard C++ only; decode() checks what came
// from the other process.
//
// Every message is 16 bytes, integers in the host's byte order (little-endian here):
//   u32 op   u32 seq   u64 time (nanoseconds)
// and every message but an ACK is answered by an ACK with the same seq (GET's and GET_TOD's ACK
// carry the answer in `time`).
//
//   UML → calendar   START(id)  REQUEST(t)  WAIT  GET  UPDATE(t)  GET_TOD
//   calendar → UML   RUN(t)  FREE_UNTIL(t)
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace emmcsim::transport::time_travel {

inline constexpr std::size_t kMessageSize = 16;

enum class Op : std::uint32_t {
  ack = 0,
  start = 1,       // UML → calendar: the connection's first message; time = an arbitrary id
  request = 2,     // UML → calendar: run me at `time` (replaces the previous request)
  wait = 3,        // UML → calendar: idle until RUN; requests may still come meanwhile
  get = 4,         // UML → calendar: the ACK carries the calendar's current time
  update = 5,      // UML → calendar: UML's current time (sent before it kicks a device)
  run = 6,         // calendar → UML: the request is granted; `time` is now
  free_until = 7,  // calendar → UML: run freely until `time`
  get_tod = 8,     // UML → calendar: the ACK carries the time of day (ns since the epoch)
};

struct Message {
  Op op = Op::ack;
  std::uint32_t seq = 0;
  std::uint64_t time = 0;
};

// A message that is not one of the protocol's: what() says why.
class ProtocolError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

std::array<std::uint8_t, kMessageSize> encode(const Message& message);
// Throws ProtocolError for an op the protocol does not define.
Message decode(const std::uint8_t* bytes, std::size_t size);

// "REQUEST", "RUN", ...; "op N" for an undefined one.
std::string op_name(std::uint32_t op);
// "REQUEST(seq 12, 1.250000000 s)" for the debug log.
std::string describe(const Message& message);

}  // namespace emmcsim::transport::time_travel
