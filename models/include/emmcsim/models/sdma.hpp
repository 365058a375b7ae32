// SDMA — the SD Host Controller's simple DMA (SD Host Controller Simplified Specification v3.00
// §1.13.1): one contiguous buffer from the SDMA system address, cut at every buffer boundary
// (4 KiB << n, block size bits 14:12). When the address reaches a boundary with data still to
// move, the controller stops with a DMA interrupt until the driver writes the next address
// (Linux's sdhci_data_irq writes the following boundary). The address register counts up with
// the data and wraps at 32 bits, or 64 with version 4 mode's 64-bit addressing.
//
// SdmaWalker keeps that arithmetic without SystemC or time, beside Adma2Walker: the Sdhci model
// asks either walker for the next piece of the data buffer as each block moves, and does the
// memory access, the pause and the interrupt itself.
#pragma once

#include <cstdint>

namespace emmcsim::models {

class SdmaWalker {
 public:
  static constexpr std::uint32_t kSmallestBoundary = 4096;

  struct Step {
    std::uint64_t address = 0;  // the piece of the data buffer
    std::uint32_t length = 0;
  };

  // `boundary_code` is block size bits 14:12 (only its low three bits count): the buffer
  // boundary is 4 KiB << boundary_code, latched when the transfer starts (the specification
  // forbids changing the block size register during a transfer).
  SdmaWalker(std::uint64_t system_address, unsigned boundary_code, bool addressing_64 = false);

  // The next piece, 1..max_bytes long (max_bytes > 0), never crossing a buffer boundary. It is
  // taken at once: address() moves past it.
  Step next(std::uint32_t max_bytes);
  // The address after the last piece: what the SDMA system address register reads.
  std::uint64_t address() const { return address_; }
  // The last piece ended on a buffer boundary: unless the data has ended, the controller pauses.
  bool at_boundary() const { return address_ % boundary_ == 0; }
  // The driver wrote the address to go on from after a pause.
  void resume(std::uint64_t address) { address_ = address & mask_; }
  std::uint32_t boundary() const { return boundary_; }

 private:
  std::uint64_t mask_;  // the register's width
  std::uint64_t address_;
  std::uint32_t boundary_;
};

}  // namespace emmcsim::models
