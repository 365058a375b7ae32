// ADMA2 — the SD Host Controller's scatter-gather DMA (SD Host Controller Simplified
// Specification v3.00 §1.13): a table of 8-byte descriptors in system memory, each
//   u16 attributes  bit 0 valid, bit 1 end, bit 2 interrupt, bits 5:4 action
//                   (00 nop, 01 reserved, 10 transfer, 11 link)
//   u16 length      bytes of a transfer descriptor; 0 means 65536
//   u32 address     the data (transfer) or the next descriptor (link)
// little-endian. Descriptors are untrusted input from the driver under test: Adma2Walker walks
// them without SystemC or time, through a memory-reader callback, and turns every way a table
// can be wrong into an Adma2Error instead of a hang or a fault. The Sdhci model asks it for the
// next piece of the data buffer as each block moves.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>

namespace emmcsim::models {

enum class Adma2Action : std::uint8_t { nop = 0, reserved = 1, transfer = 2, link = 3 };

struct Adma2Descriptor {
  bool valid = false;
  bool end = false;
  bool interrupt = false;
  Adma2Action action = Adma2Action::nop;
  std::uint32_t length = 0;  // 1..65536 for a transfer
  std::uint32_t address = 0;

  static constexpr std::size_t kSize = 8;
  static Adma2Descriptor decode(const std::array<std::uint8_t, kSize>& bytes);
  std::array<std::uint8_t, kSize> encode() const;  // length 65536 is written as 0
};

enum class Adma2Error : std::uint8_t {
  none,
  fetch_failed,          // the descriptor could not be read from system memory
  invalid_descriptor,    // its valid bit is clear
  length_mismatch,       // the table ended before the data did
  too_many_descriptors,  // more fetches than kMaxFetches without the data ending: a loop
};

const char* adma2_error_name(Adma2Error error);

class Adma2Walker {
 public:
  // Reads `length` bytes at `address`; false when the memory refuses.
  using ReadMemory = std::function<bool(std::uint64_t address, std::uint8_t* out, std::size_t length)>;
  // Descriptor fetches allowed for one transfer: a table that links to itself (or holds a
  // million nops) is an error, not an endless simulation.
  static constexpr std::size_t kMaxFetches = 1u << 20;

  struct Step {
    Adma2Error error = Adma2Error::none;
    std::uint64_t address = 0;  // the piece of the data buffer
    std::uint32_t length = 0;
    bool interrupt = false;  // it finishes a descriptor with the interrupt attribute
  };

  Adma2Walker(std::uint32_t table_address, ReadMemory read_memory, std::size_t max_fetches = kMaxFetches);

  // The next piece of the data buffer, 1..max_bytes long (max_bytes > 0), or an error. After an
  // error every call returns it again.
  Step next(std::uint32_t max_bytes);
  // The descriptor being worked on, or the one that failed (the ADMA system address register).
  std::uint32_t descriptor_address() const { return descriptor_address_; }
  // The table has ended: a descriptor with the end attribute has been used up.
  bool ended() const { return ended_ && remaining_ == 0; }
  std::size_t fetches() const { return fetches_; }

 private:
  Step fail(Adma2Error error);

  ReadMemory read_memory_;
  std::size_t max_fetches_;
  std::uint32_t descriptor_address_;  // the next descriptor to fetch (or the failing one)
  std::uint64_t data_address_ = 0;    // the rest of the current transfer descriptor
  std::uint32_t remaining_ = 0;
  bool current_interrupt_ = false;
  bool ended_ = false;
  std::size_t fetches_ = 0;
  Adma2Error error_ = Adma2Error::none;
};

}  // namespace emmcsim::models
