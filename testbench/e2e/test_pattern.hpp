// Recognisable data for the end-to-end tests: a block of `size` bytes that names who wrote it
// (a magic, a tag such as the block or the writer, a sequence number), filled with bytes derived
// from those, and closed by a checksum. A torn or mixed block fails the check; a stale one names
// its sequence number.
//
// Layout: u32 magic, u32 tag, u64 sequence, filler, u64 FNV-1a of everything before it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

namespace emmcsim::e2e {

struct PatternId {
  std::uint32_t magic = 0;
  std::uint32_t tag = 0;
  std::uint64_t sequence = 0;
  bool operator==(const PatternId& o) const { return magic == o.magic && tag == o.tag && sequence == o.sequence; }
};

inline std::uint64_t pattern_checksum(const std::uint8_t* p, std::size_t n) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (std::size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}

// size >= 24.
inline std::vector<std::uint8_t> make_pattern(const PatternId& id, std::size_t size) {
  std::vector<std::uint8_t> b(size);
  std::memcpy(b.data(), &id.magic, 4);
  std::memcpy(b.data() + 4, &id.tag, 4);
  std::memcpy(b.data() + 8, &id.sequence, 8);
  std::uint64_t x = (std::uint64_t{id.magic} << 32 | id.tag) ^ (id.sequence * 0x9e3779b97f4a7c15ull);
  for (std::size_t i = 16; i < size - 8; ++i) {
    // splitmix64, one byte per step
    x += 0x9e3779b97f4a7c15ull;
    std::uint64_t z = x;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    b[i] = static_cast<std::uint8_t>(z ^ (z >> 31));
  }
  const std::uint64_t sum = pattern_checksum(b.data(), size - 8);
  std::memcpy(b.data() + size - 8, &sum, 8);
  return b;
}

// The pattern's identity when the bytes are exactly a pattern (checksum and filler), else none.
inline std::optional<PatternId> parse_pattern(const std::uint8_t* p, std::size_t size) {
  if (size < 24) return std::nullopt;
  PatternId id;
  std::memcpy(&id.magic, p, 4);
  std::memcpy(&id.tag, p + 4, 4);
  std::memcpy(&id.sequence, p + 8, 8);
  const std::vector<std::uint8_t> again = make_pattern(id, size);
  if (std::memcmp(again.data(), p, size) != 0) return std::nullopt;
  return id;
}

// For failure messages: "tag 3 seq 17", "all zeros" or "not a pattern (torn or foreign)".
inline std::string describe_pattern(const std::uint8_t* p, std::size_t size) {
  bool zeros = true;
  for (std::size_t i = 0; i < size && zeros; ++i) zeros = p[i] == 0;
  if (zeros) return "all zeros";
  const auto id = parse_pattern(p, size);
  if (!id) return "not a pattern (torn, mixed or foreign bytes)";
  return "magic " + std::to_string(id->magic) + " tag " + std::to_string(id->tag) + " seq " +
         std::to_string(id->sequence);
}

}  // namespace emmcsim::e2e
