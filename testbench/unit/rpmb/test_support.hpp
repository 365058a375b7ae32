// Helpers shared by the rpmb unit tests.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "emmcsim/rpmb/engine.hpp"
#include "emmcsim/rpmb/frame.hpp"

namespace emmcsim::rpmb::test {

inline std::vector<std::uint8_t> from_hex(const std::string& hex) {
  if (hex.size() % 2 != 0) throw std::invalid_argument("odd-length hex string");
  std::vector<std::uint8_t> out(hex.size() / 2);
  for (std::size_t i = 0; i < out.size(); ++i) {
    out[i] = static_cast<std::uint8_t>(std::stoul(hex.substr(2 * i, 2), nullptr, 16));
  }
  return out;
}

inline Frame frame_from_hex(const std::string& hex) {
  const std::vector<std::uint8_t> bytes = from_hex(hex);
  if (bytes.size() != kFrameSize) throw std::invalid_argument("a frame is 512 bytes");
  return Frame::from_bytes(bytes.data());
}

template <std::size_t N>
std::array<std::uint8_t, N> array_from_hex(const std::string& hex) {
  const std::vector<std::uint8_t> bytes = from_hex(hex);
  if (bytes.size() != N) throw std::invalid_argument("wrong length");
  std::array<std::uint8_t, N> out{};
  std::copy(bytes.begin(), bytes.end(), out.begin());
  return out;
}

inline Key test_key(std::uint8_t seed = 0x41) {
  Key k{};
  for (std::size_t i = 0; i < k.size(); ++i) k[i] = static_cast<std::uint8_t>(seed + i);
  return k;
}

inline std::vector<std::uint8_t> pattern(std::size_t half_sectors, std::uint8_t seed) {
  std::vector<std::uint8_t> data(half_sectors * kHalfSectorSize);
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<std::uint8_t>(seed * 31 + i * 7);
  return data;
}

// One request burst through the engine followed by one response read, as on the bus.
inline std::vector<Frame> exchange(Engine& engine, const std::vector<Frame>& request, bool reliable,
                                   std::size_t response_frames) {
  engine.write_request(request.data(), request.size(), reliable);
  std::vector<Frame> response(response_frames);
  engine.read_response(response.data(), response.size());
  return response;
}

// A write-type request followed by the result read that real clients always send.
inline Frame write_then_result(Engine& engine, const std::vector<Frame>& request, bool reliable = true) {
  engine.write_request(request.data(), request.size(), reliable);
  Frame result_request;
  result_request.set_request(RequestType::result_read);
  return exchange(engine, {result_request}, false, 1)[0];
}

}  // namespace emmcsim::rpmb::test
