// Where an RPMB partition keeps its state and data. The engine reads through the store and
// changes it only through commit(): one call per write-type request, all or nothing.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "emmcsim/rpmb/partition_state.hpp"
#include "emmcsim/support/file.hpp"

namespace emmcsim::rpmb {

// The store's file failed, or a commit could not be made durable: the one I/O error type of
// emmcsim (what() names the operation, the file and why). After a failed commit the store
// refuses further commits until reopened; what is on disk is then either the state before or
// the state after the failed commit.
using StoreError = support::IoError;

// The change one write-type request makes: the next state and, for a data write, the
// half-sectors it writes.
struct Commit {
  const PartitionState* next_state = nullptr;
  std::uint16_t address = 0;           // first half-sector written
  std::uint16_t count = 0;             // half-sectors written (0: state only)
  const std::uint8_t* data = nullptr;  // count * kHalfSectorSize bytes
};

class Store {
 public:
  virtual ~Store() = default;

  // Capacity in 256-byte half-sectors (RPMB_SIZE_MULT * 512).
  virtual std::uint32_t half_sectors() const = 0;
  virtual const PartitionState& state() const = 0;
  // Copies `count` half-sectors from `address`; the range must be inside the partition.
  virtual void read(std::uint32_t address, std::uint32_t count, std::uint8_t* out) const = 0;
  // Atomically applies the commit; durable (per the store's policy) when it returns.
  // Throws StoreError on failure, leaving state() and the data unchanged.
  virtual void commit(const Commit& commit) = 0;
};

// RAM only: for tests, benchmarks and throw-away devices.
class MemoryStore final : public Store {
 public:
  explicit MemoryStore(std::uint32_t size_mult, PartitionState initial = {});

  std::uint32_t half_sectors() const override;
  const PartitionState& state() const override { return state_; }
  void read(std::uint32_t address, std::uint32_t count, std::uint8_t* out) const override;
  void commit(const Commit& commit) override;

 private:
  PartitionState state_;
  std::vector<std::uint8_t> data_;
};

// Validates RPMB_SIZE_MULT (1..128); throws std::invalid_argument naming the value.
void check_size_mult(std::uint32_t size_mult);

}  // namespace emmcsim::rpmb
