// What an eMMC remembers across power cycles besides data and RPMB: the CMD42 password,
// temporary and permanent write protection, the permanent boot-area protection and the
// non-volatile bits of PARTITION_CONFIG and BOOT_BUS_CONDITIONS. Power-on write protection is
// volatile and never stored.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "emmcsim/mmc/partition.hpp"

namespace emmcsim::mmc {

struct NonvolatileState {
  std::vector<std::uint8_t> password;  // CMD42 password, 0..16 bytes; empty = none set
  // PARTITION_CONFIG bits [6:3] (BOOT_ACK, BOOT_PARTITION_ENABLE); access bits are volatile.
  std::uint8_t partition_config_boot = 0;
  std::uint8_t boot_bus_conditions = 0;       // EXT_CSD[177]
  std::uint8_t boot_wp_permanent = 0;         // EXT_CSD[173] permanent bits (B_PERM_WP_EN, _SEC_SEL, _DIS)
  std::uint8_t boot_wp_status_permanent = 0;  // EXT_CSD[174] entries that are permanent (2 = perm)
  // Write-protect groups (index = address / write-protect group size) per partition.
  std::map<Partition, std::set<std::uint32_t>> temporary_wp_groups;
  std::map<Partition, std::set<std::uint32_t>> permanent_wp_groups;

  friend bool operator==(const NonvolatileState&, const NonvolatileState&);
};

class NonvolatileStore {
 public:
  virtual ~NonvolatileStore() = default;
  virtual NonvolatileState load() = 0;
  // Durable when it returns (or throws StorageError, leaving the previous state stored).
  virtual void save(const NonvolatileState& state) = 0;
};

class MemoryNonvolatileStore final : public NonvolatileStore {
 public:
  NonvolatileState load() override { return state_; }
  void save(const NonvolatileState& state) override { state_ = state; }

 private:
  NonvolatileState state_;
};

// A JSON file (`state.json` in an image directory), replaced atomically: write a temporary
// file, fsync, rename, fsync the directory. A missing file loads as the empty state.
class FileNonvolatileStore final : public NonvolatileStore {
 public:
  explicit FileNonvolatileStore(std::string path);
  NonvolatileState load() override;
  void save(const NonvolatileState& state) override;

 private:
  std::string path_;
};

}  // namespace emmcsim::mmc
