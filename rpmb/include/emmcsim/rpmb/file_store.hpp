// The persistent, crash-safe RPMB store: key, counter, result register, configuration and data
// of one device in one file (DIR/rpmb.img). Layout and recovery: docs/rpmb-store.md.
//
// A commit writes one checksummed journal record (the whole next state plus the half-sectors
// written) into the next slot of a ring and syncs it (Durability::sync_every_commit): one page
// per commit. Every K commits a checkpoint writes the changed half-sectors and their checksums
// in place and records the state. Opening redoes the records newer than the checkpoint, so after
// a crash or power loss at any instant every half-sector holds its old or its new contents and
// the counter matches. A truncated file, a bad header or checksum, or a journal record that went
// missing is a FileStoreCorrupt error, never a reset.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "emmcsim/rpmb/storage_file.hpp"
#include "emmcsim/rpmb/store.hpp"

namespace emmcsim::rpmb {

enum class Durability {
  sync_every_commit,  // fdatasync before a commit returns (default)
  os_managed,         // leave write-back to the OS: survives kill -9, not power loss
};

// The image exists but cannot be trusted: truncated, damaged or from another format.
class FileStoreCorrupt : public StoreError {
 public:
  using StoreError::StoreError;
};

class FileStore final : public Store {
 public:
  static constexpr const char* kFileName = "rpmb.img";
  // Journal slots in the ring: a checkpoint happens every this many commits.
  static constexpr unsigned kDefaultJournalSlots = 32;
  static constexpr unsigned kMinJournalSlots = 4;
  static constexpr unsigned kMaxJournalSlots = 1024;

  // Creates a new, blank image (no key, counter 0, data zero) at `file`, which must be empty.
  static std::unique_ptr<FileStore> create(std::unique_ptr<StorageFile> file, std::uint32_t size_mult,
                                           Durability durability, unsigned journal_slots = kDefaultJournalSlots);
  // Opens an existing image, recovering from an interrupted commit.
  static std::unique_ptr<FileStore> open(std::unique_ptr<StorageFile> file, Durability durability);

  // Path-based conveniences over PosixStorageFile. create_at writes a temporary file and
  // renames it into place, so a crash never leaves a half-created image behind.
  static std::unique_ptr<FileStore> create_at(const std::string& path, std::uint32_t size_mult,
                                              Durability durability = Durability::sync_every_commit,
                                              unsigned journal_slots = kDefaultJournalSlots);
  static std::unique_ptr<FileStore> open_at(const std::string& path,
                                            Durability durability = Durability::sync_every_commit);
  // Opens an image to look at it, without a lock, so also while another process (a running
  // simulator) holds it and commits: the store read is the state and data of the newest commit
  // whose journal record is whole. A commit or checkpoint under way while the file is read can
  // make it look damaged for a moment, so the file is read again, a few milliseconds apart, at
  // least kReadOnlyAttempts times and for at least kReadOnlyPatience, before FileStoreCorrupt is
  // believed. commit() fails (StoreError).
  static std::unique_ptr<FileStore> open_read_only(const std::string& path);
  static constexpr int kReadOnlyAttempts = 20;
  static constexpr std::chrono::milliseconds kReadOnlyPatience{1000};

  ~FileStore() override;

  std::uint32_t half_sectors() const override;
  std::uint32_t size_mult() const { return size_mult_; }
  const PartitionState& state() const override { return state_; }
  void read(std::uint32_t address, std::uint32_t count, std::uint8_t* out) const override;
  void commit(const Commit& commit) override;

  Durability durability() const { return durability_; }
  std::uint64_t commit_sequence() const { return sequence_; }
  std::uint64_t checkpoint_sequence() const { return checkpoint_sequence_; }
  unsigned journal_slots() const { return journal_slots_; }
  const std::string& path() const { return file_->path(); }

 private:
  FileStore(std::unique_ptr<StorageFile> file, std::uint32_t size_mult, Durability durability, unsigned journal_slots);
  void load();
  void apply_in_memory(const Commit& commit);
  void checkpoint();
  void sync_if_durable();

  std::unique_ptr<StorageFile> file_;
  std::uint32_t size_mult_;
  Durability durability_;
  PartitionState state_;
  std::vector<std::uint8_t> data_;        // the whole partition, mirrored in RAM
  std::vector<std::uint32_t> checksums_;  // CRC-32 of each half-sector
  unsigned journal_slots_;
  std::uint64_t sequence_ = 0;                  // sequence number of the newest journal record
  std::uint64_t checkpoint_sequence_ = 0;       // newest commit whose data is in place
  unsigned checkpoint_slot_ = 0;                // which checkpoint slot holds it
  std::vector<bool> changed_since_checkpoint_;  // per half-sector: not yet in place
  bool failed_ = false;                         // a commit failed: refuse further commits
};

}  // namespace emmcsim::rpmb
