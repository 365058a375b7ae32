// ADMA2 — the SD Host Controller's scatter-gather DMA (SD Host Controller Simplified
// Specification v3.00 §1.13, v4.10 §1.13.4): a table of descriptors in system memory, each
//   u16 attributes  bit 0 valid, bit 1 end, bit 2 interrupt, bits 5:4 action
//                   (00 nop, 01 reserved, 10 transfer, 11 link)
//   u16 length      bytes of a transfer descriptor; 0 means 65536
//   u32 address     the data (transfer) or the next descriptor (link)
//   u32 address_hi  in the 64-bit formats: the address's upper half
//   u32 reserved    in the 128-bit format of version 4 mode (64-bit addressing)
// little-endian, 8, 12 or 16 bytes (Adma2Format). The 26-bit length mode of version 4.10 is not
// supported (Linux does not use it). Descriptors are untrusted input from the driver under test: Adma2Walker walks
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

// A descriptor's size, which says how wide its address is: 32-bit (ADMA2 with 32-bit addressing),
// 64-bit in version 3 (DMA select 11b) and 64-bit in version 4 mode (64-bit addressing in host
// control 2; the descriptor is 128 bits, its last word reserved).
enum class Adma2Format : std::uint8_t { bits32 = 8, bits64 = 12, bits64_v4 = 16 };

struct Adma2Descriptor {
  bool valid = false;
  bool end = false;
  bool interrupt = false;
  Adma2Action action = Adma2Action::nop;
  std::uint32_t length = 0;  // 1..65536 for a transfer
  std::uint64_t address = 0;

  static constexpr std::size_t kSize = 8;  // the 32-bit format
  static constexpr std::size_t kMaxSize = 16;
  static constexpr std::size_t size(Adma2Format format) { return static_cast<std::size_t>(format); }
  static Adma2Descriptor decode(const std::array<std::uint8_t, kSize>& bytes);
  std::array<std::uint8_t, kSize> encode() const;  // length 65536 is written as 0
  // Any format: size(format) bytes. The 32-bit format keeps the address's low half.
  static Adma2Descriptor decode(const std::uint8_t* bytes, Adma2Format format);
  void encode(std::uint8_t* out, Adma2Format format) const;
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
  // A table of `format` descriptors; with a 64-bit format the addresses are 64 bits wide.
  Adma2Walker(std::uint64_t table_address, Adma2Format format, ReadMemory read_memory,
              std::size_t max_fetches = kMaxFetches);

  // The next piece of the data buffer, 1..max_bytes long (max_bytes > 0), or an error. After an
  // error every call returns it again.
  Step next(std::uint32_t max_bytes);
  // The descriptor being worked on, or the one that failed (the ADMA system address register).
  std::uint64_t descriptor_address() const { return descriptor_address_; }
  // The table has ended: a descriptor with the end attribute has been used up.
  bool ended() const { return ended_ && remaining_ == 0; }
  std::size_t fetches() const { return fetches_; }

 private:
  Step fail(Adma2Error error);
  std::uint64_t next_descriptor(std::size_t size) const;

  ReadMemory read_memory_;
  std::size_t max_fetches_;
  Adma2Format format_;
  std::uint64_t descriptor_address_;  // the next descriptor to fetch (or the failing one)
  std::uint64_t data_address_ = 0;    // the rest of the current transfer descriptor
  std::uint32_t remaining_ = 0;
  bool current_interrupt_ = false;
  bool ended_ = false;
  std::size_t fetches_ = 0;
  Adma2Error error_ = Adma2Error::none;
};

}  // namespace emmcsim::models
