// On-disk layout of rpmb.img, format 2 (little-endian; see docs/rpmb-store.md):
//
//   0x0000  header (one page): magic, format version, RPMB_SIZE_MULT, slot size, K, CRC-32
//   0x1000  checkpoint slot 0 ┐ the newest commit whose data is in place, with the whole state
//   0x2000  checkpoint slot 1 ┘ at that commit; they alternate, the newer intact one counts
//   0x3000  journal ring: K slots of 12 KiB. Slot s % K holds, from byte 64, the record of
//           commit s (next state + half-sectors written + CRC-32) and, in bytes 0..15, the seal
//           of commit s - 1 ("that record was synced"), which shares a page with the record
//   ......  checksum table: CRC-32 of every half-sector (page aligned)
//   ......  data region (page aligned): the partition, half-sector after half-sector
#include "emmcsim/rpmb/file_store.hpp"

#include "emmcsim/rpmb/mac.hpp"
#include "emmcsim/support/file.hpp"
#include "emmcsim/support/little_endian.hpp"

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <boost/crc.hpp>
#include <cerrno>
#include <cstring>
#include <optional>
#include <thread>

#include <fmt/format.h>

namespace emmcsim::rpmb {
namespace {

constexpr std::uint64_t kPage = 4096;
constexpr std::array<std::uint8_t, 16> kMagic = {'e', 'm', 'm', 'c', 's', 'i', 'm', '-',
                                                 'r', 'p', 'm', 'b', '-', 'i', 'm', 'g'};
constexpr std::uint32_t kFormatVersion = 2;
constexpr std::uint64_t kHeaderOffset = 0;
constexpr std::size_t kHeaderBytes = 64;                // the rest of the header page is zero
constexpr std::uint64_t kCheckpointOffset = kPage;      // two slots, one page each
constexpr std::uint32_t kCheckpointMagic = 0x504b4352;  // "RCKP"
constexpr std::uint64_t kJournalOffset = 3 * kPage;
constexpr std::uint64_t kJournalSlotBytes = 3 * kPage;
constexpr std::size_t kSealBytes = 16;
constexpr std::uint32_t kSealMagic = 0x4c414553;  // "SEAL"
constexpr std::uint64_t kRecordOffsetInSlot = 64;
constexpr std::uint32_t kRecordMagic = 0x4c4e4a52;  // "RJNL"
constexpr std::size_t kRecordHeaderBytes = 72;
constexpr std::uint16_t kMaxCommitHalfSectors = 32;
constexpr std::size_t kMaxRecordBytes = kRecordHeaderBytes + kMaxCommitHalfSectors * kHalfSectorSize + 4;

static_assert(kRecordOffsetInSlot + kMaxRecordBytes <= kJournalSlotBytes, "a journal record must fit its slot");
static_assert(kSealBytes <= kRecordOffsetInSlot, "the seal sits before the record");

std::uint64_t round_up(std::uint64_t v, std::uint64_t unit) { return (v + unit - 1) / unit * unit; }

std::uint32_t crc32(const void* bytes, std::size_t size) {
  boost::crc_32_type crc;
  crc.process_bytes(bytes, size);
  return crc.checksum();
}

struct Layout {
  std::uint32_t size_mult;
  unsigned journal_slots;
  std::uint32_t half_sectors() const { return size_mult * (kSizeMultUnit / kHalfSectorSize); }
  std::uint64_t data_bytes() const { return std::uint64_t{size_mult} * kSizeMultUnit; }
  std::uint64_t table_bytes() const { return std::uint64_t{half_sectors()} * 4; }
  std::uint64_t table_offset() const { return kJournalOffset + journal_slots * kJournalSlotBytes; }
  std::uint64_t data_offset() const { return table_offset() + round_up(table_bytes(), kPage); }
  std::uint64_t file_bytes() const { return data_offset() + data_bytes(); }
  std::uint64_t slot_offset(std::uint64_t sequence) const {
    return kJournalOffset + (sequence % journal_slots) * kJournalSlotBytes;
  }
  std::uint64_t record_offset(std::uint64_t sequence) const { return slot_offset(sequence) + kRecordOffsetInSlot; }
  // seal(s) lives in the slot of commit s + 1: the page the next record will be written to.
  std::uint64_t seal_offset(std::uint64_t sealed_sequence) const { return slot_offset(sealed_sequence + 1); }
  static std::uint64_t checkpoint_offset(unsigned slot) { return kCheckpointOffset + slot * kPage; }
};

void check_journal_slots(unsigned journal_slots) {
  if (journal_slots < FileStore::kMinJournalSlots || journal_slots > FileStore::kMaxJournalSlots) {
    throw std::invalid_argument(fmt::format("journal slots {} outside {}..{}", journal_slots,
                                            FileStore::kMinJournalSlots, FileStore::kMaxJournalSlots));
  }
}

using support::LittleEndianReader;
using support::LittleEndianWriter;

std::vector<std::uint8_t> encode_header(const Layout& layout) {
  std::vector<std::uint8_t> out;
  LittleEndianWriter w(out);
  w.bytes(kMagic.data(), kMagic.size());
  w.u32(kFormatVersion);
  w.u32(layout.size_mult);
  w.u32(static_cast<std::uint32_t>(kJournalSlotBytes));
  w.u32(layout.journal_slots);
  out.resize(kHeaderBytes - 4, 0);
  w.u32(crc32(out.data(), out.size()));
  return out;
}

std::vector<std::uint8_t> encode_seal(std::uint64_t sequence) {
  std::vector<std::uint8_t> out;
  LittleEndianWriter w(out);
  w.u32(kSealMagic);
  w.u64(sequence);
  w.u32(crc32(out.data(), out.size()));
  return out;
}

std::optional<std::uint64_t> decode_seal(const std::uint8_t* p) {
  LittleEndianReader r(p, kSealBytes);
  const std::uint32_t magic = r.u32();
  const std::uint64_t sequence = r.u64();
  const std::uint32_t crc = r.u32();
  if (magic != kSealMagic || crc != crc32(p, kSealBytes - 4)) return std::nullopt;
  return sequence;
}

struct JournalRecord {
  std::uint64_t sequence = 0;
  PartitionState state;
  std::uint16_t address = 0;
  std::uint16_t count = 0;
  std::vector<std::uint8_t> data;
};

std::vector<std::uint8_t> encode_record(std::uint32_t magic, std::uint64_t sequence, const Commit& c) {
  const PartitionState& s = *c.next_state;
  std::vector<std::uint8_t> out;
  out.reserve(kRecordHeaderBytes + std::size_t{c.count} * kHalfSectorSize + 4);
  LittleEndianWriter w(out);
  w.u32(magic);
  w.u32(static_cast<std::uint32_t>(kRecordHeaderBytes + std::size_t{c.count} * kHalfSectorSize + 4));
  w.u64(sequence);
  w.u8(s.key_programmed ? 1 : 0);
  w.u8(s.device_configuration.secure_wp_mode_enable);
  w.u8(s.device_configuration.secure_wp_mode_config);
  w.u8(0);
  w.bytes(s.key.data(), s.key.size());
  w.u32(s.write_counter);
  w.u16(static_cast<std::uint16_t>(s.result_register.type));
  w.u16(s.result_register.result);
  w.u32(s.result_register.write_counter);
  w.u16(s.result_register.address);
  w.u16(0);
  w.u16(c.address);
  w.u16(c.count);
  if (c.count > 0) w.bytes(c.data, std::size_t{c.count} * kHalfSectorSize);
  w.u32(crc32(out.data(), out.size()));
  return out;
}

// A slot that does not hold an intact record (never written, torn, damaged) decodes to nullopt.
std::optional<JournalRecord> decode_record(std::uint32_t magic, const std::uint8_t* p, std::size_t slot_bytes) {
  LittleEndianReader r(p, slot_bytes);
  if (r.u32() != magic) return std::nullopt;
  const std::uint32_t length = r.u32();
  if (length < kRecordHeaderBytes + 4 || length > slot_bytes) return std::nullopt;
  if (crc32(p, length - 4) != support::load_le32(p + length - 4)) return std::nullopt;
  JournalRecord rec;
  rec.sequence = r.u64();
  rec.state.key_programmed = r.u8() != 0;
  rec.state.device_configuration.secure_wp_mode_enable = r.u8();
  rec.state.device_configuration.secure_wp_mode_config = r.u8();
  r.u8();
  r.copy_to(rec.state.key.data(), kKeySize);
  rec.state.write_counter = r.u32();
  rec.state.result_register.type = static_cast<ResponseType>(r.u16());
  rec.state.result_register.result = r.u16();
  rec.state.result_register.write_counter = r.u32();
  rec.state.result_register.address = r.u16();
  r.u16();
  rec.address = r.u16();
  rec.count = r.u16();
  if (length != kRecordHeaderBytes + std::size_t{rec.count} * kHalfSectorSize + 4) return std::nullopt;
  rec.data.resize(std::size_t{rec.count} * kHalfSectorSize);
  r.copy_to(rec.data.data(), rec.data.size());
  if (!r.ok()) return std::nullopt;
  return rec;
}

[[noreturn]] void corrupt(const std::string& path, const std::string& why) { throw FileStoreCorrupt(path, why); }

}  // namespace

FileStore::FileStore(std::unique_ptr<StorageFile> file, std::uint32_t size_mult, Durability durability,
                     unsigned journal_slots)
    : file_(std::move(file)), size_mult_(size_mult), durability_(durability), journal_slots_(journal_slots) {}

FileStore::~FileStore() { wipe(state_.key); }

std::uint32_t FileStore::half_sectors() const { return Layout{size_mult_, journal_slots_}.half_sectors(); }

void FileStore::sync_if_durable() {
  if (durability_ == Durability::sync_every_commit) file_->sync();
}

std::unique_ptr<FileStore> FileStore::create(std::unique_ptr<StorageFile> file, std::uint32_t size_mult,
                                             Durability durability, unsigned journal_slots) {
  check_size_mult(size_mult);
  check_journal_slots(journal_slots);
  if (file->size() != 0) throw StoreError(file->path(), "refusing to create an image over existing data");
  const Layout layout{size_mult, journal_slots};
  std::unique_ptr<FileStore> store(new FileStore(std::move(file), size_mult, durability, journal_slots));
  StorageFile& f = *store->file_;

  f.resize(layout.file_bytes());  // the journal ring and the data region stay sparse: zeros
  f.write_at(kHeaderOffset, encode_header(layout).data(), kHeaderBytes);
  const PartitionState blank;
  const std::vector<std::uint8_t> checkpoint = encode_record(kCheckpointMagic, 0, Commit{&blank, 0, 0, nullptr});
  f.write_at(Layout::checkpoint_offset(0), checkpoint.data(), checkpoint.size());
  const std::uint8_t zero_block[kHalfSectorSize] = {};
  const std::uint32_t zero_crc = crc32(zero_block, sizeof zero_block);
  std::vector<std::uint8_t> table;
  table.reserve(layout.table_bytes());
  LittleEndianWriter w(table);
  for (std::uint32_t i = 0; i < layout.half_sectors(); ++i) w.u32(zero_crc);
  f.write_at(layout.table_offset(), table.data(), table.size());
  f.sync();  // a new image is always made durable, whatever the policy

  store->data_.assign(layout.data_bytes(), 0);
  store->checksums_.assign(layout.half_sectors(), zero_crc);
  store->changed_since_checkpoint_.assign(layout.half_sectors(), false);
  return store;
}

std::unique_ptr<FileStore> FileStore::open(std::unique_ptr<StorageFile> file, Durability durability) {
  std::unique_ptr<FileStore> store(new FileStore(std::move(file), 0, durability, 0));
  store->load();
  return store;
}

void FileStore::load() {
  StorageFile& f = *file_;
  const std::string& path = f.path();
  const std::uint64_t size = f.size();
  if (size < kJournalOffset) {
    corrupt(path, fmt::format("truncated: {} bytes, too short for an RPMB image", size));
  }

  std::array<std::uint8_t, kHeaderBytes> header{};
  f.read_at(kHeaderOffset, header.data(), header.size());
  if (!std::equal(kMagic.begin(), kMagic.end(), header.begin())) {
    corrupt(path, "not an emmcsim RPMB image (bad magic)");
  }
  if (crc32(header.data(), kHeaderBytes - 4) != support::load_le32(header.data() + kHeaderBytes - 4)) {
    corrupt(path, "header checksum mismatch (the header is damaged)");
  }
  LittleEndianReader hr(header.data() + kMagic.size(), kHeaderBytes - kMagic.size());
  const std::uint32_t version = hr.u32();
  const std::uint32_t size_mult = hr.u32();
  const std::uint32_t slot_bytes = hr.u32();
  const std::uint32_t journal_slots = hr.u32();
  if (version != kFormatVersion || slot_bytes != kJournalSlotBytes) {
    corrupt(path, fmt::format("unsupported image format version {}", version));
  }
  if (size_mult < 1 || size_mult > kMaxSizeMult || journal_slots < kMinJournalSlots ||
      journal_slots > kMaxJournalSlots) {
    corrupt(path, fmt::format("header names an impossible geometry (size multiplier {}, {} journal slots)", size_mult,
                              journal_slots));
  }
  size_mult_ = size_mult;
  journal_slots_ = journal_slots;
  const Layout layout{size_mult, journal_slots};
  if (size != layout.file_bytes()) {
    corrupt(path, fmt::format("{}: {} bytes, expected {} for a {} KiB partition",
                              size < layout.file_bytes() ? "truncated" : "wrong size", size, layout.file_bytes(),
                              layout.data_bytes() / 1024));
  }

  // The newest intact checkpoint: everything up to it is in place.
  std::optional<JournalRecord> checkpoint;
  std::vector<std::uint8_t> page(kPage);
  for (unsigned slot = 0; slot < 2; ++slot) {
    f.read_at(Layout::checkpoint_offset(slot), page.data(), page.size());
    std::optional<JournalRecord> c = decode_record(kCheckpointMagic, page.data(), page.size());
    if (c && c->count == 0 && (!checkpoint || c->sequence > checkpoint->sequence)) {
      checkpoint = std::move(c);
      checkpoint_slot_ = slot;
    }
  }
  if (!checkpoint) corrupt(path, "no intact checkpoint (both checkpoint slots are damaged)");
  checkpoint_sequence_ = checkpoint->sequence;

  // The data in place and its checksums, read before the journal. A process may be committing
  // while the image is opened read-only (open_read_only). It puts data in place only in a
  // checkpoint, for commits up to the one that fills the journal, and reuses the journal slot of
  // the commit after our checkpoint only once that is done. So whatever in-place data was read
  // here, the journal read next either still holds every commit it came from (redoing them gives
  // the state and data of one commit) or lacks the first record after our checkpoint (a gap:
  // refused, and open_read_only reads again).
  std::vector<std::uint8_t> table(layout.table_bytes());
  f.read_at(layout.table_offset(), table.data(), table.size());
  checksums_.resize(layout.half_sectors());
  LittleEndianReader tr(table.data(), table.size());
  for (auto& c : checksums_) c = tr.u32();
  data_.resize(layout.data_bytes());
  f.read_at(layout.data_offset(), data_.data(), data_.size());

  // The journal records after the checkpoint must follow it without a gap.
  std::vector<std::uint8_t> ring(journal_slots * kJournalSlotBytes);
  f.read_at(kJournalOffset, ring.data(), ring.size());
  std::vector<JournalRecord> records;
  for (unsigned slot = 0; slot < journal_slots; ++slot) {
    const std::uint8_t* at = ring.data() + slot * kJournalSlotBytes + kRecordOffsetInSlot;
    std::optional<JournalRecord> rec = decode_record(kRecordMagic, at, kJournalSlotBytes - kRecordOffsetInSlot);
    if (!rec || rec->sequence <= checkpoint_sequence_) continue;
    if (rec->sequence % journal_slots != slot) corrupt(path, "a journal record sits in the wrong slot");
    if (std::uint64_t{rec->address} + rec->count > layout.half_sectors() || rec->count > kMaxCommitHalfSectors) {
      corrupt(path, "a journal record addresses data outside the partition");
    }
    records.push_back(std::move(*rec));
  }
  std::sort(records.begin(), records.end(),
            [](const JournalRecord& a, const JournalRecord& b) { return a.sequence < b.sequence; });
  for (std::size_t i = 0; i < records.size(); ++i) {
    if (records[i].sequence != checkpoint_sequence_ + 1 + i) {
      corrupt(path, fmt::format("journal record #{} is missing or damaged while later ones are intact",
                                checkpoint_sequence_ + 1 + i));
    }
  }
  const std::uint64_t newest = records.empty() ? checkpoint_sequence_ : records.back().sequence;
  // A seal for the commit after the newest says that record was synced: it is damaged, not torn.
  const std::uint8_t* next_seal = ring.data() + (layout.seal_offset(newest + 1) - kJournalOffset);
  if (decode_seal(next_seal) == newest + 1) {
    corrupt(path, fmt::format("journal record #{} had been synced and is now damaged; refusing to roll back "
                              "to #{}",
                              newest + 1, newest));
  }

  changed_since_checkpoint_.assign(layout.half_sectors(), false);

  // Redo, in memory, what the journal holds beyond the checkpoint; the next checkpoint puts it
  // in place. Nothing is written while opening.
  for (const JournalRecord& rec : records) apply_in_memory(Commit{&rec.state, rec.address, rec.count, rec.data.data()});

  std::vector<std::uint32_t> damaged;
  for (std::uint32_t i = 0; i < layout.half_sectors(); ++i) {
    if (crc32(data_.data() + std::size_t{i} * kHalfSectorSize, kHalfSectorSize) != checksums_[i]) {
      damaged.push_back(i);
    }
  }
  if (!damaged.empty()) {
    std::string list;
    for (std::size_t i = 0; i < damaged.size() && i < 8; ++i) list += fmt::format(" {}", damaged[i]);
    corrupt(path, fmt::format("{} half-sector(s) fail their checksum (first:{}); the data region is damaged",
                              damaged.size(), list));
  }
  state_ = records.empty() ? checkpoint->state : records.back().state;
  sequence_ = newest;
  wipe(checkpoint->state.key);
  for (JournalRecord& rec : records) wipe(rec.state.key);
}

void FileStore::read(std::uint32_t address, std::uint32_t count, std::uint8_t* out) const {
  if (std::uint64_t{address} + count > half_sectors()) throw std::out_of_range("RPMB read beyond the partition");
  std::memcpy(out, data_.data() + std::size_t{address} * kHalfSectorSize, std::size_t{count} * kHalfSectorSize);
}

void FileStore::apply_in_memory(const Commit& c) {
  if (c.count == 0) return;
  std::memcpy(data_.data() + std::size_t{c.address} * kHalfSectorSize, c.data, std::size_t{c.count} * kHalfSectorSize);
  for (std::uint16_t i = 0; i < c.count; ++i) {
    checksums_[c.address + i] = crc32(c.data + std::size_t{i} * kHalfSectorSize, kHalfSectorSize);
    changed_since_checkpoint_[c.address + i] = true;
  }
}

void FileStore::checkpoint() {
  // Everything changed since the last checkpoint goes in place and is synced before the
  // checkpoint that says so; that one is synced before any journal slot it frees is reused.
  const Layout layout{size_mult_, journal_slots_};
  std::vector<std::uint8_t> entry;
  for (std::uint32_t i = 0; i < layout.half_sectors(); ++i) {
    if (!changed_since_checkpoint_[i]) continue;
    std::uint32_t end = i;
    while (end < layout.half_sectors() && changed_since_checkpoint_[end]) ++end;
    const std::size_t offset = std::size_t{i} * kHalfSectorSize;
    file_->write_at(layout.data_offset() + offset, data_.data() + offset, std::size_t{end - i} * kHalfSectorSize);
    entry.clear();
    LittleEndianWriter w(entry);
    for (std::uint32_t j = i; j < end; ++j) w.u32(checksums_[j]);
    file_->write_at(layout.table_offset() + std::uint64_t{i} * 4, entry.data(), entry.size());
    i = end;
  }
  sync_if_durable();
  const unsigned slot = 1 - checkpoint_slot_;
  const std::vector<std::uint8_t> record = encode_record(kCheckpointMagic, sequence_, Commit{&state_, 0, 0, nullptr});
  file_->write_at(Layout::checkpoint_offset(slot), record.data(), record.size());
  sync_if_durable();
  checkpoint_slot_ = slot;
  checkpoint_sequence_ = sequence_;
  std::fill(changed_since_checkpoint_.begin(), changed_since_checkpoint_.end(), false);
}

void FileStore::commit(const Commit& c) {
  if (failed_) throw StoreError(path(), "an earlier commit failed; reopen the image");
  if (c.count > kMaxCommitHalfSectors || std::uint64_t{c.address} + c.count > half_sectors()) {
    throw std::out_of_range("RPMB commit beyond the partition or larger than 32 half-sectors");
  }
  const Layout layout{size_mult_, journal_slots_};
  const std::uint64_t sequence = sequence_ + 1;
  const std::vector<std::uint8_t> record = encode_record(kRecordMagic, sequence, c);
  try {
    // The slot this record takes must hold nothing newer than the checkpoint.
    if (sequence > checkpoint_sequence_ + journal_slots_) checkpoint();
    file_->write_at(layout.record_offset(sequence), record.data(), record.size());
    sync_if_durable();
  } catch (...) {
    failed_ = true;  // on disk: the old state, or (if the record landed) the new one
    throw;
  }
  // The commit is durable: the state changes now, whatever happens to the seal.
  state_ = *c.next_state;
  sequence_ = sequence;
  apply_in_memory(c);
  try {
    file_->write_at(layout.seal_offset(sequence), encode_seal(sequence).data(), kSealBytes);
  } catch (const StoreError&) {
    failed_ = true;  // the record is durable; only the damage check for it is lost
  }
}

std::unique_ptr<FileStore> FileStore::create_at(const std::string& path, std::uint32_t size_mult, Durability durability,
                                                unsigned journal_slots) {
  check_size_mult(size_mult);
  check_journal_slots(journal_slots);
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) throw StoreError(path, "already exists");
  const std::string temporary = path + ".creating";
  ::unlink(temporary.c_str());  // left by a creation that was interrupted
  {
    auto store = create(std::make_unique<PosixStorageFile>(temporary, PosixStorageFile::Mode::create_new), size_mult,
                        durability, journal_slots);
  }
  if (::renameat2(AT_FDCWD, temporary.c_str(), AT_FDCWD, path.c_str(), RENAME_NOREPLACE) != 0) {
    const int err = errno;
    ::unlink(temporary.c_str());
    throw StoreError("rename " + temporary + " to", path, err);
  }
  support::sync_directory(support::parent_directory(path));
  return open_at(path, durability);
}

std::unique_ptr<FileStore> FileStore::open_at(const std::string& path, Durability durability) {
  return open(std::make_unique<PosixStorageFile>(path, PosixStorageFile::Mode::open_existing), durability);
}

std::unique_ptr<FileStore> FileStore::open_read_only(const std::string& path) {
  // Opening writes nothing, and load() reads the data in place before the journal (see there).
  // A commit in the middle of the reads is at worst a torn newest record (skipped, as after a
  // crash: the state is the commit before), a seal read without the record it follows, or a
  // journal that moved past a checkpoint made meanwhile; the last two look like damage. The file
  // read again a moment later is consistent.
  // On a loaded host a busy writer can spoil many reads in a row: keep reading for at least
  // kReadOnlyPatience, and at least kReadOnlyAttempts times, before believing the damage.
  const auto give_up = std::chrono::steady_clock::now() + kReadOnlyPatience;
  for (int attempt = 1;; ++attempt) {
    try {
      return open(std::make_unique<PosixStorageFile>(path, PosixStorageFile::Mode::read_only), Durability::os_managed);
    } catch (const FileStoreCorrupt&) {
      if (attempt >= kReadOnlyAttempts && std::chrono::steady_clock::now() >= give_up) throw;
      std::this_thread::sleep_for(std::chrono::milliseconds(std::min(attempt, 5)));
    }
  }
}

}  // namespace emmcsim::rpmb
