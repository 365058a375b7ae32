// Crash consistency of the persistent RPMB store, proven at every file operation.
//
// A SimulatedDisk stands under the FileStore: it keeps the durable image and the writes made
// since the last sync(), and can make the process die (or an operation fail with EIO) at the
// k-th write_at/resize/sync call. A real Engine and Host run a sequence of requests (key
// programming, authenticated writes of 1, 2 and 32 half-sectors at overlapping addresses,
// device configuration writes) over that store; for every k the test derives what a kill -9 or
// a power cut leaves on the disk (each unsynced write whole, lost, or torn), reopens it and
// checks it against a reference kept here: every acknowledged request is there, the request in
// flight is there whole or not at all, and the counter says which.
//
// Every sweep runs twice: with the default ring of 32 journal slots (a sequence long enough to
// checkpoint once and reuse the ring) and with 4 slots (a checkpoint every 4 commits, the ring
// reused many times). Opening writes nothing, so instead of a crash during recovery the tests
// crash at every operation of every checkpoint, on a store just reopened.
#include <gtest/gtest.h>

#include <algorithm>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "emmcsim/rpmb/engine.hpp"
#include "emmcsim/rpmb/file_store.hpp"
#include "emmcsim/rpmb/host.hpp"
#include "emmcsim/rpmb/storage_file.hpp"

namespace emmcsim::rpmb {
namespace {

constexpr std::uint32_t kSizeMult = 1;  // 128 KiB, 512 half-sectors
constexpr std::uint64_t kSectorSize = 512;
constexpr std::uint16_t kWriteFailure = static_cast<std::uint16_t>(ResultCode::write_failure);

// ---------------------------------------------------------------------------------------------
// The simulated disk

// Thrown once the simulated process is dead. Deliberately neither a StoreError nor any
// std::exception: nothing in the code under test can catch it and carry on, just as nothing
// runs after SIGKILL or a power cut.
struct ProcessDied {};

enum class Fault {
  none,
  crash,     // the process dies at the operation; every later call throws ProcessDied too
  io_error,  // the operation fails with StoreError (EIO); the process lives on
};

enum class OperationKind { write, resize, sync };

struct Operation {
  OperationKind kind;
  std::uint64_t offset = 0;  // write: where it goes; resize: the new size
  std::uint64_t size = 0;    // write: the bytes it was asked to write
};

class SimulatedDisk {
 public:
  SimulatedDisk(std::vector<std::uint8_t> durable_image, std::uint32_t seed)
      : durable_(durable_image), visible_(std::move(durable_image)), random_(seed) {}

  // `operation` counts write_at/resize/sync calls over the disk's life, from 1.
  void schedule(Fault fault, std::uint64_t operation) {
    fault_ = fault;
    fault_at_ = operation;
  }
  std::uint64_t operations() const { return trace_.size(); }
  const std::vector<Operation>& trace() const { return trace_; }
  bool process_dead() const { return process_dead_; }
  std::size_t pending_writes() const { return pending_.size(); }

  // What the disk holds once the OS has written back its page cache: a kill -9 loses nothing
  // that a write call had handed over.
  const std::vector<std::uint8_t>& image_after_process_kill() const { return visible_; }
  // A power cut that loses every write since the last sync.
  const std::vector<std::uint8_t>& durable_image() const { return durable_; }
  // A power cut: each write since the last sync independently reached the disk whole, not at
  // all, as a random prefix, or as a random subset of its 512-byte sectors.
  std::vector<std::uint8_t> image_after_power_loss(std::mt19937& random) const {
    std::vector<std::uint8_t> image = durable_;
    std::bernoulli_distribution coin(0.5);
    for (const PendingOperation& op : pending_) {
      if (op.kind == OperationKind::resize) {
        if (coin(random)) image.resize(op.offset);
        continue;
      }
      const std::size_t size = op.bytes.size();
      switch (std::uniform_int_distribution<int>(0, 3)(random)) {
        case 0:  // whole
          apply(image, op, 0, size);
          break;
        case 1:  // lost
          break;
        case 2:  // torn: a prefix
          apply(image, op, 0, std::uniform_int_distribution<std::size_t>(0, size)(random));
          break;
        default:  // torn: some of its sectors
          for (std::uint64_t sector = op.offset / kSectorSize; sector * kSectorSize < op.offset + size; ++sector) {
            const std::uint64_t begin = std::max(op.offset, sector * kSectorSize);
            const std::uint64_t end = std::min(op.offset + size, (sector + 1) * kSectorSize);
            if (coin(random)) apply(image, op, begin - op.offset, end - op.offset);
          }
          break;
      }
    }
    return image;
  }

  // The StorageFile side.
  std::uint64_t size() const {
    throw_if_dead();
    return visible_.size();
  }
  void read(std::uint64_t offset, void* out, std::size_t size) const {
    throw_if_dead();
    if (offset > visible_.size() || size > visible_.size() - offset) {
      throw StoreError("simulated disk: read beyond the end of the file");
    }
    std::memcpy(out, visible_.data() + offset, size);
  }
  void write(std::uint64_t offset, const void* bytes, std::size_t size) {
    const Fault fault = begin_operation(Operation{OperationKind::write, offset, size});
    const auto* begin = static_cast<const std::uint8_t*>(bytes);
    // A call that is cut short may still have handed over part of its bytes.
    const std::size_t handed_over =
        fault == Fault::none ? size : std::uniform_int_distribution<std::size_t>(0, size)(random_);
    if (handed_over > 0) {
      PendingOperation op{OperationKind::write, offset, std::vector<std::uint8_t>(begin, begin + handed_over)};
      apply(visible_, op, 0, handed_over);
      pending_.push_back(std::move(op));
    }
    finish_operation(fault, "write failed");
  }
  void resize(std::uint64_t size) {
    const Fault fault = begin_operation(Operation{OperationKind::resize, size, 0});
    if (fault == Fault::none) {
      visible_.resize(size);
      pending_.push_back(PendingOperation{OperationKind::resize, size, {}});
    }
    finish_operation(fault, "cannot resize");
  }
  void sync() {
    const Fault fault = begin_operation(Operation{OperationKind::sync});
    if (fault == Fault::none) {
      durable_ = visible_;
      pending_.clear();
    }
    finish_operation(fault, "fdatasync failed");
  }

 private:
  struct PendingOperation {
    OperationKind kind;
    std::uint64_t offset;  // write: where it goes; resize: the new size
    std::vector<std::uint8_t> bytes;
  };

  static void apply(std::vector<std::uint8_t>& image, const PendingOperation& op, std::size_t from, std::size_t to) {
    if (to <= from) return;
    if (image.size() < op.offset + to) image.resize(op.offset + to, 0);
    std::memcpy(image.data() + op.offset + from, op.bytes.data() + from, to - from);
  }

  void throw_if_dead() const {
    if (process_dead_) throw ProcessDied{};
  }
  Fault begin_operation(const Operation& op) {
    throw_if_dead();
    trace_.push_back(op);
    if (fault_ == Fault::none || trace_.size() != fault_at_) return Fault::none;
    if (fault_ == Fault::crash) process_dead_ = true;
    return fault_;
  }
  static void finish_operation(Fault fault, const char* what) {
    if (fault == Fault::crash) throw ProcessDied{};
    if (fault == Fault::io_error) {
      throw StoreError(std::string("simulated-disk/rpmb.img: ") + what + ": Input/output error");
    }
  }

  std::vector<std::uint8_t> durable_;
  std::vector<std::uint8_t> visible_;  // durable_ plus the pending operations: the page cache
  std::vector<PendingOperation> pending_;
  std::vector<Operation> trace_;
  Fault fault_ = Fault::none;
  std::uint64_t fault_at_ = 0;
  bool process_dead_ = false;
  std::mt19937 random_;
};

class SimulatedStorageFile final : public StorageFile {
 public:
  explicit SimulatedStorageFile(SimulatedDisk& disk) : disk_(disk) {}
  std::uint64_t size() const override { return disk_.size(); }
  void read_at(std::uint64_t offset, void* out, std::size_t size) const override { disk_.read(offset, out, size); }
  void write_at(std::uint64_t offset, const void* bytes, std::size_t size) override {
    disk_.write(offset, bytes, size);
  }
  void resize(std::uint64_t size) override { disk_.resize(size); }
  void sync() override { disk_.sync(); }
  const std::string& path() const override { return path_; }

 private:
  SimulatedDisk& disk_;
  std::string path_ = "simulated-disk/rpmb.img";
};

// EXT_CSD WR_REL_PARAM EN_RPMB_REL_WR = 1: authenticated writes of 32 frames are allowed.
EngineConfig reliable_writes_of_32() {
  EngineConfig config;
  config.en_rpmb_rel_wr = true;
  return config;
}

std::unique_ptr<FileStore> open_store(SimulatedDisk& disk, Durability durability = Durability::sync_every_commit) {
  return FileStore::open(std::make_unique<SimulatedStorageFile>(disk), durability);
}

std::vector<std::uint8_t> blank_image(unsigned journal_slots) {
  SimulatedDisk disk({}, 0);
  FileStore::create(std::make_unique<SimulatedStorageFile>(disk), kSizeMult, Durability::sync_every_commit,
                    journal_slots);
  EXPECT_EQ(disk.pending_writes(), 0u) << "a new image must be durable when create() returns";
  return disk.durable_image();
}

// ---------------------------------------------------------------------------------------------
// Format version 2 as docs/rpmb-store.md specifies it (RPMB_SIZE_MULT 1)

namespace layout {
constexpr std::uint64_t kPage = 0x1000;
constexpr std::uint64_t kCheckpointOffset = 0x1000;  // checkpoint slot i at 0x1000 + i * 0x1000
constexpr std::uint64_t kCheckpointBytes = 76;
constexpr std::uint64_t kJournalOffset = 0x3000;  // journal slot i at 0x3000 + i * 0x3000
constexpr std::uint64_t kJournalSlotBytes = 0x3000;
constexpr std::uint64_t kSealBytes = 16;     // at +0 of a journal slot
constexpr std::uint64_t kRecordInSlot = 64;  // the journal record at +64
constexpr std::uint64_t kRecordOverheadBytes = 72 + 4;

std::uint64_t checkpoint_slot(std::uint64_t slot) { return kCheckpointOffset + slot * kPage; }
std::uint64_t journal_slot(std::uint64_t slot) { return kJournalOffset + slot * kJournalSlotBytes; }
std::uint64_t checksum_table(unsigned journal_slots) { return journal_slot(journal_slots); }
std::uint64_t data_offset(unsigned journal_slots) { return checksum_table(journal_slots) + kPage; }
std::uint64_t file_bytes(unsigned journal_slots) { return data_offset(journal_slots) + kSizeMultUnit; }
// Commit s checkpoints first when s - K > c: checkpoints land at 0, K, 2K, ...
std::uint64_t checkpoint_after(std::uint64_t commits, unsigned journal_slots) {
  return commits == 0 ? 0 : (commits - 1) / journal_slots * journal_slots;
}
bool checkpoints_first(std::uint64_t sequence, unsigned journal_slots) {
  return sequence > checkpoint_after(sequence - 1, journal_slots) + journal_slots;
}
}  // namespace layout

// ---------------------------------------------------------------------------------------------
// The request sequence and its reference

Key device_key() {
  Key key{};
  for (std::size_t i = 0; i < key.size(); ++i) key[i] = static_cast<std::uint8_t>(0x3C ^ (11 * i));
  return key;
}

struct Step {
  enum class Kind { program_key, data_write, config_write };
  Kind kind;
  std::uint16_t address = 0;  // data: first half-sector; configuration: register address
  std::uint16_t count = 0;    // data: half-sectors
  std::uint8_t value = 0;     // configuration: the register value
};

Step data_write(std::uint16_t address, std::uint16_t count) { return {Step::Kind::data_write, address, count, 0}; }
Step config_write(std::uint16_t config_address, std::uint8_t value) {
  return {Step::Kind::config_write, config_address, 0, value};
}

// Overlapping writes of 1, 2 and 32 half-sectors, including the partition's last ones; at
// least `min_requests` of them (after the first 23, more writes over the same places).
std::vector<Step> request_sequence(std::size_t min_requests) {
  std::vector<Step> steps = {
      {Step::Kind::program_key}, data_write(10, 1),   data_write(10, 2),
      data_write(0, 32),         data_write(31, 1),   data_write(30, 2),
      data_write(16, 32),        data_write(47, 1),   config_write(kConfigAddressSecureWpModeEnable, 1),
      data_write(46, 2),         data_write(40, 32),  data_write(500, 1),
      data_write(510, 2),        data_write(480, 32), data_write(511, 1),
      data_write(0, 2),          data_write(20, 32),  config_write(kConfigAddressSecureWpModeConfig, 1),
      data_write(20, 1),         data_write(21, 2),   data_write(8, 32),
      data_write(8, 1),          data_write(100, 2),
  };
  const std::vector<Step> more = {
      data_write(300, 32), data_write(8, 2),    config_write(kConfigAddressSecureWpModeEnable, 0),
      data_write(331, 1),  data_write(299, 2),  data_write(511, 1),
      data_write(0, 32),   data_write(330, 2),  config_write(kConfigAddressSecureWpModeConfig, 0),
      data_write(16, 1),   data_write(480, 32), data_write(17, 2),
      data_write(100, 32), data_write(131, 1),  data_write(130, 2),
  };
  for (std::size_t i = 0; steps.size() < min_requests; ++i) steps.push_back(more.at(i % more.size()));
  return steps;
}

// The data a request writes names the request (tag) and the half-sector within it, so a
// mismatch can say whose data a half-sector holds.
HalfSector tagged_half_sector(std::uint32_t tag, std::uint32_t index) {
  HalfSector hs{};
  for (std::size_t b = 0; b < hs.size(); ++b) hs[b] = static_cast<std::uint8_t>(tag * 131 + index * 17 + b);
  std::memcpy(hs.data(), &tag, sizeof tag);
  return hs;
}

std::uint32_t tag_of(const std::uint8_t* half_sector) {
  std::uint32_t tag = 0;
  std::memcpy(&tag, half_sector, sizeof tag);
  return tag;
}

std::vector<std::uint8_t> step_data(std::uint32_t tag, std::uint16_t count) {
  std::vector<std::uint8_t> data(std::size_t{count} * kHalfSectorSize);
  for (std::uint16_t i = 0; i < count; ++i) {
    const HalfSector hs = tagged_half_sector(tag, i);
    std::memcpy(data.data() + std::size_t{i} * kHalfSectorSize, hs.data(), hs.size());
  }
  return data;
}

std::uint32_t tag_of_step(std::size_t index) { return static_cast<std::uint32_t>(index + 1); }

// What the partition holds: its state and a reference map of half-sector contents.
struct ExpectedDevice {
  PartitionState state;
  std::map<std::uint32_t, HalfSector> contents;  // absent: never written, zero
};

ExpectedDevice after_step(ExpectedDevice device, const Step& step, std::uint32_t tag) {
  PartitionState& s = device.state;
  switch (step.kind) {
    case Step::Kind::program_key:
      s.key_programmed = true;
      s.key = device_key();
      s.result_register = ResultRegister{ResponseType::program_key, 0, s.write_counter, 0};
      break;
    case Step::Kind::data_write:
      s.write_counter += 1;
      s.result_register = ResultRegister{ResponseType::authenticated_write, 0, s.write_counter, step.address};
      for (std::uint16_t i = 0; i < step.count; ++i) {
        device.contents[std::uint32_t{step.address} + i] = tagged_half_sector(tag, i);
      }
      break;
    case Step::Kind::config_write:
      s.write_counter += 1;
      if (step.address == kConfigAddressSecureWpModeEnable) {
        s.device_configuration.secure_wp_mode_enable = step.value;
      } else {
        s.device_configuration.secure_wp_mode_config = step.value;
      }
      s.result_register = ResultRegister{ResponseType::device_config_write, 0, s.write_counter, step.address};
      break;
  }
  return device;
}

// expected[i]: the device after the first i steps.
std::vector<ExpectedDevice> expected_after_each_step(const std::vector<Step>& steps) {
  std::vector<ExpectedDevice> expected(1);
  for (std::size_t i = 0; i < steps.size(); ++i) {
    expected.push_back(after_step(expected.back(), steps[i], tag_of_step(i)));
  }
  return expected;
}

HostResult perform(Host& host, const Step& step, std::uint32_t tag) {
  switch (step.kind) {
    case Step::Kind::program_key: return host.program_key(device_key());
    case Step::Kind::data_write: {
      const std::vector<std::uint8_t> data = step_data(tag, step.count);
      return host.write(step.address, data.data(), step.count);
    }
    case Step::Kind::config_write: return host.config_write(step.address, step.value);
  }
  return {};
}

std::string describe(const PartitionState& s) {
  return fmt::format("{{key {}, counter {}, result {:#06x}/{:#04x}/{}/{}, config {}/{}}}", s.key_programmed,
                     s.write_counter, static_cast<unsigned>(s.result_register.type), s.result_register.result,
                     s.result_register.write_counter, s.result_register.address,
                     s.device_configuration.secure_wp_mode_enable, s.device_configuration.secure_wp_mode_config);
}

::testing::AssertionResult holds_exactly(const Store& store, const ExpectedDevice& expected) {
  if (store.state() != expected.state) {
    return ::testing::AssertionFailure() << "state " << describe(store.state()) << ", expected "
                                         << describe(expected.state);
  }
  if (store.state().key != expected.state.key) return ::testing::AssertionFailure() << "the key differs";
  std::vector<std::uint8_t> all(std::size_t{store.half_sectors()} * kHalfSectorSize);
  store.read(0, store.half_sectors(), all.data());
  const HalfSector zero{};
  std::string mismatches;
  std::size_t mismatch_count = 0;
  for (std::uint32_t h = 0; h < store.half_sectors(); ++h) {
    const auto it = expected.contents.find(h);
    const HalfSector& want = it == expected.contents.end() ? zero : it->second;
    const std::uint8_t* have = all.data() + std::size_t{h} * kHalfSectorSize;
    if (std::memcmp(have, want.data(), kHalfSectorSize) != 0 && ++mismatch_count <= 6) {
      mismatches +=
          fmt::format(" [{}: holds data of request {}, expected request {}]", h, tag_of(have), tag_of(want.data()));
    }
  }
  if (mismatch_count != 0) {
    return ::testing::AssertionFailure() << mismatch_count << " half-sector(s) differ:" << mismatches;
  }
  return ::testing::AssertionSuccess();
}

// After `acknowledged` requests returned ok and (if `in_flight`) one more was running: the
// counter is that of the acknowledged requests or one more; the key is there iff its
// programming was acknowledged or in flight; if the counter (or, for key programming, the key)
// includes the request in flight, ALL its half-sectors hold its data, otherwise NONE do; every
// other half-sector holds what the last acknowledged write put there.
::testing::AssertionResult recovered_consistently(const FileStore& store, const std::vector<ExpectedDevice>& expected,
                                                  std::size_t acknowledged, bool in_flight, bool& in_flight_landed) {
  const ExpectedDevice& before = expected.at(acknowledged);
  const PartitionState& recovered = store.state();
  in_flight_landed = false;
  if (in_flight) {
    const ExpectedDevice& after = expected.at(acknowledged + 1);
    const bool moves_counter = after.state.write_counter != before.state.write_counter;
    in_flight_landed = moves_counter ? recovered.write_counter == after.state.write_counter
                                     : recovered.key_programmed && !before.state.key_programmed;
  }
  const ExpectedDevice& target = in_flight_landed ? expected.at(acknowledged + 1) : before;
  if (recovered.write_counter != target.state.write_counter) {
    return ::testing::AssertionFailure() << "counter " << recovered.write_counter << " after " << acknowledged
                                         << " acknowledged request(s) (counter " << before.state.write_counter << ")"
                                         << (in_flight ? " and one in flight" : "");
  }
  if (recovered.key_programmed != target.state.key_programmed) {
    return ::testing::AssertionFailure() << "key " << (recovered.key_programmed ? "present" : "absent") << " after "
                                         << acknowledged << " acknowledged request(s)";
  }
  ::testing::AssertionResult same = holds_exactly(store, target);
  if (!same) {
    return ::testing::AssertionFailure() << "after " << acknowledged << " acknowledged request(s), in flight "
                                         << in_flight << ", landed " << in_flight_landed << ": " << same.message();
  }
  return same;
}

// ---------------------------------------------------------------------------------------------
// Running the sequence

struct SequenceRun {
  std::vector<HostResult> results;                    // one per request that returned
  std::vector<std::uint64_t> operations_before_step;  // file operations before each request began
  std::vector<Operation> operations;                  // the file operations the requests caused
  std::uint64_t operations_of_open = 0;               // the file operations opening the image caused
  bool process_died = false;                          // during request results.size()
  std::unique_ptr<FileStore> store;                   // still open unless the process died
};

// Which requests of the sequence to run, and how the store syncs.
struct RunOptions {
  Durability durability = Durability::sync_every_commit;
  std::size_t first = 0;       // steps[first] is the first request run ...
  std::size_t end = SIZE_MAX;  // ... and steps[end - 1] the last
};

// Opens the image on `disk`, arms `fault` at the k-th file operation the requests cause (the
// open's own operations not counted) and runs the sequence. results[i] and
// operations_before_step[i] belong to steps[options.first + i].
SequenceRun run_sequence(SimulatedDisk& disk, const std::vector<Step>& steps, Fault fault, std::uint64_t k,
                         const RunOptions& options = {}) {
  SequenceRun run;
  std::unique_ptr<FileStore> store = open_store(disk, options.durability);
  const std::uint64_t base = disk.operations();
  run.operations_of_open = base;
  disk.schedule(fault, base + k);
  try {
    Engine engine(*store, reliable_writes_of_32());
    EngineChannel channel(engine);
    Host host(channel, device_key());
    for (std::size_t i = options.first; i < std::min(options.end, steps.size()); ++i) {
      run.operations_before_step.push_back(disk.operations() - base);
      run.results.push_back(perform(host, steps[i], tag_of_step(i)));
    }
  } catch (const ProcessDied&) {
    run.process_died = true;
  }
  run.operations.assign(disk.trace().begin() + static_cast<std::ptrdiff_t>(base), disk.trace().end());
  if (!run.process_died) run.store = std::move(store);
  return run;
}

struct RecoveryTally {
  int recoveries = 0;
  int in_flight_landed = 0;
  int in_flight_lost = 0;
};

// Opens a post-crash image and proves it consistent; then proves the recovered store works on:
// one more acknowledged request survives a power cut right after it returns.
void expect_consistent_recovery(const std::vector<std::uint8_t>& image, const std::vector<ExpectedDevice>& expected,
                                std::size_t acknowledged, bool in_flight, const std::string& situation,
                                RecoveryTally& tally) {
  SCOPED_TRACE(situation);
  SimulatedDisk disk(image, 7);
  std::unique_ptr<FileStore> store;
  try {
    store = open_store(disk);
  } catch (const std::exception& e) {
    ADD_FAILURE() << "the image did not open: " << e.what();
    return;
  }
  // Recovery happens in memory: a crash while opening cannot change the image.
  EXPECT_EQ(disk.operations(), 0u) << "opening the image wrote to it";
  bool landed = false;
  const ::testing::AssertionResult consistent =
      recovered_consistently(*store, expected, acknowledged, in_flight, landed);
  EXPECT_TRUE(consistent);
  if (!consistent) return;
  ++tally.recoveries;
  if (in_flight) ++(landed ? tally.in_flight_landed : tally.in_flight_lost);

  ExpectedDevice next = expected.at(acknowledged + (landed ? 1 : 0));
  {
    Engine engine(*store, reliable_writes_of_32());
    EngineChannel channel(engine);
    Host host(channel, device_key());
    constexpr std::uint32_t kContinuationTag = 0xC0DE;
    if (!next.state.key_programmed) {
      const Step key{Step::Kind::program_key};
      ASSERT_TRUE(perform(host, key, kContinuationTag).ok()) << "key programming after recovery";
      next = after_step(next, key, kContinuationTag);
    }
    const Step write = data_write(3, 2);
    const HostResult r = perform(host, write, kContinuationTag);
    ASSERT_TRUE(r.ok()) << "a write after recovery failed with " << describe_result(r.result);
    next = after_step(next, write, kContinuationTag);
  }
  store.reset();
  SimulatedDisk after_power_cut(disk.durable_image(), 8);
  EXPECT_TRUE(holds_exactly(*open_store(after_power_cut), next)) << "the write after recovery was not durable";
}

void print_tally(const std::string& what, const RecoveryTally& tally) {
  std::printf("[ recovery ] %-44s %5d recoveries, request in flight landed %5d, lost %5d\n", what.c_str(),
              tally.recoveries, tally.in_flight_landed, tally.in_flight_lost);
}

// The file operations of every request follow docs/rpmb-store.md: when the ring is full a
// checkpoint first (every half-sector changed since the last one and its checksum in place,
// sync, the checkpoint record into the other checkpoint slot, sync), then the journal record at
// +64 of slot s % K, sync, and the seal at +0 of slot (s + 1) % K. Nothing else: between
// checkpoints no data goes in place. With os_managed, no sync at all.
::testing::AssertionResult operations_follow_the_format(const SequenceRun& run, const std::vector<Step>& steps,
                                                        unsigned k, Durability durability, int& checkpoints) {
  const bool syncs = durability == Durability::sync_every_commit;
  const std::uint64_t table = layout::checksum_table(k);
  const std::uint64_t data = layout::data_offset(k);
  std::set<std::uint32_t> changed;  // half-sectors written since the last checkpoint
  std::uint64_t checkpoint = 0;
  checkpoints = 0;
  if (run.operations_before_step.size() != steps.size()) {
    return ::testing::AssertionFailure() << "the sequence did not run to its end";
  }
  for (std::size_t i = 0; i < steps.size(); ++i) {
    const std::uint64_t s = i + 1;
    const auto begin = run.operations.begin() + static_cast<std::ptrdiff_t>(run.operations_before_step[i]);
    const auto end = i + 1 < steps.size()
                         ? run.operations.begin() + static_cast<std::ptrdiff_t>(run.operations_before_step[i + 1])
                         : run.operations.end();
    const std::vector<Operation> ops(begin, end);
    std::size_t p = 0;
    const auto fail = [&]() {
      return ::testing::AssertionFailure()
             << "request " << i << " (commit #" << s << "), operation " << p + 1 << " of " << ops.size() << ": ";
    };
    const auto next_is = [&](OperationKind kind, std::uint64_t offset, std::uint64_t size) {
      if (p >= ops.size() || ops[p].kind != kind) return false;
      if (kind == OperationKind::write && (ops[p].offset != offset || ops[p].size != size)) return false;
      ++p;
      return true;
    };
    if (s > checkpoint + k) {
      std::vector<bool> covered(layout::file_bytes(k) - table, false);
      // The writes in place, up to the sync (or, without syncs, the checkpoint record).
      for (; p < ops.size() && ops[p].kind == OperationKind::write && ops[p].offset >= layout::journal_slot(0); ++p) {
        if (ops[p].offset < table || ops[p].offset + ops[p].size > layout::file_bytes(k)) {
          return fail() << "a checkpoint wrote " << ops[p].size << " bytes at " << ops[p].offset
                        << ", outside the checksum table and the data region";
        }
        std::fill_n(covered.begin() + static_cast<std::ptrdiff_t>(ops[p].offset - table), ops[p].size, true);
      }
      for (const std::uint32_t h : changed) {
        const auto in_place = [&](std::uint64_t offset, std::uint64_t size) {
          return std::all_of(covered.begin() + static_cast<std::ptrdiff_t>(offset - table),
                             covered.begin() + static_cast<std::ptrdiff_t>(offset - table + size),
                             [](bool b) { return b; });
        };
        if (!in_place(data + std::uint64_t{h} * kHalfSectorSize, kHalfSectorSize) ||
            !in_place(table + 4 * std::uint64_t{h}, 4)) {
          return fail() << "the checkpoint left half-sector " << h << " or its checksum out of place";
        }
      }
      if (syncs && !next_is(OperationKind::sync, 0, 0)) return fail() << "no sync before the checkpoint record";
      const std::uint64_t slot = (checkpoint / k + 1) % 2;
      if (!next_is(OperationKind::write, layout::checkpoint_slot(slot), layout::kCheckpointBytes)) {
        return fail() << "expected checkpoint #" << s - 1 << " written to checkpoint slot " << slot;
      }
      if (syncs && !next_is(OperationKind::sync, 0, 0)) return fail() << "the checkpoint was not synced";
      checkpoint = s - 1;
      changed.clear();
      ++checkpoints;
    }
    const std::uint64_t record_bytes =
        layout::kRecordOverheadBytes +
        (steps[i].kind == Step::Kind::data_write ? std::uint64_t{steps[i].count} * kHalfSectorSize : 0);
    if (!next_is(OperationKind::write, layout::journal_slot(s % k) + layout::kRecordInSlot, record_bytes)) {
      return fail() << "expected the record (" << record_bytes << " bytes) at +64 of journal slot " << s % k;
    }
    if (syncs && !next_is(OperationKind::sync, 0, 0)) return fail() << "the record was not synced";
    if (!next_is(OperationKind::write, layout::journal_slot((s + 1) % k), layout::kSealBytes)) {
      return fail() << "expected the seal at +0 of journal slot " << (s + 1) % k;
    }
    if (p != ops.size()) return fail() << "more file operations than the format asks for";
    if (!syncs &&
        std::any_of(ops.begin(), ops.end(), [](const Operation& op) { return op.kind == OperationKind::sync; })) {
      return fail() << "os_managed durability synced";
    }
    if (steps[i].kind == Step::Kind::data_write) {
      for (std::uint16_t h = 0; h < steps[i].count; ++h) changed.insert(std::uint32_t{steps[i].address} + h);
    }
  }
  return ::testing::AssertionSuccess();
}

std::string slots_name(unsigned k) {
  return k == FileStore::kDefaultJournalSlots ? fmt::format("K={} (default)", k) : fmt::format("K={}", k);
}

class CrashConsistencyTest : public ::testing::TestWithParam<unsigned> {
 protected:
  const unsigned slots_ = GetParam();
  // Long enough to checkpoint at least once and then reuse the ring.
  const std::vector<Step> steps_ = request_sequence(slots_ + 4);
  const std::vector<ExpectedDevice> expected_ = expected_after_each_step(steps_);
  const std::vector<std::uint8_t> blank_ = blank_image(slots_);

  // The number of file operations the whole sequence causes when nothing goes wrong.
  std::uint64_t operations_of_the_sequence(Durability durability = Durability::sync_every_commit) {
    SimulatedDisk disk(blank_, 1);
    const SequenceRun run = run_sequence(disk, steps_, Fault::none, 0, RunOptions{durability});
    return run.operations.size();
  }

  // The requests whose commit checkpoints first.
  std::vector<std::size_t> checkpointing_requests() const {
    std::vector<std::size_t> requests;
    for (std::size_t i = 0; i < steps_.size(); ++i) {
      if (layout::checkpoints_first(i + 1, slots_)) requests.push_back(i);
    }
    return requests;
  }

  // Crashes at every operation k; `images` names the post-crash images to recover from.
  template <typename ImagesAfterCrash>
  void crash_at_every_operation(const ImagesAfterCrash& images, RecoveryTally& tally,
                                Durability durability = Durability::sync_every_commit) {
    const std::uint64_t total = operations_of_the_sequence(durability);
    ASSERT_GT(total, steps_.size() * 2);
    for (std::uint64_t k = 1; k <= total; ++k) {
      SimulatedDisk disk(blank_, static_cast<std::uint32_t>(k));
      const SequenceRun run = run_sequence(disk, steps_, Fault::crash, k, RunOptions{durability});
      ASSERT_TRUE(run.process_died) << "no crash at operation " << k;
      ASSERT_LT(run.results.size(), steps_.size());
      for (std::size_t i = 0; i < run.results.size(); ++i) {
        ASSERT_TRUE(run.results[i].ok()) << "request " << i << " failed before the crash";
      }
      const std::size_t acknowledged = run.results.size();
      const std::vector<std::pair<std::string, std::vector<std::uint8_t>>> post_crash = images(disk, k);
      for (const auto& entry : post_crash) {
        expect_consistent_recovery(entry.second, expected_, acknowledged, true,
                                   fmt::format("{}: crash at operation {} of {} (request {}), {}", slots_name(slots_),
                                               k, total, acknowledged, entry.first),
                                   tally);
      }
      if (HasFatalFailure()) return;
    }
  }
};

// ---------------------------------------------------------------------------------------------
// The tests

TEST_P(CrashConsistencyTest, SequenceWithoutFaultsIsAcknowledgedAndDurable) {
  ASSERT_EQ(blank_.size(), layout::file_bytes(slots_));
  SimulatedDisk disk(blank_, 1);
  SequenceRun run = run_sequence(disk, steps_, Fault::none, 0);
  ASSERT_FALSE(run.process_died);
  ASSERT_EQ(run.results.size(), steps_.size());
  for (std::size_t i = 0; i < steps_.size(); ++i) {
    EXPECT_TRUE(run.results[i].ok()) << "request " << i << ": " << describe_result(run.results[i].result);
  }
  EXPECT_EQ(run.operations_of_open, 0u) << "opening the image wrote to it";
  EXPECT_TRUE(holds_exactly(*run.store, expected_.back()));
  EXPECT_EQ(expected_.back().state.write_counter, steps_.size() - 1);  // every request but the key's
  // Every request syncs its record before it is acknowledged, and a checkpoint comes every K
  // commits: ring reuse happens within the sequence.
  int checkpoints = 0;
  EXPECT_TRUE(operations_follow_the_format(run, steps_, slots_, Durability::sync_every_commit, checkpoints));
  EXPECT_EQ(checkpoints, static_cast<int>(checkpointing_requests().size()));
  EXPECT_GE(checkpoints, slots_ == 4 ? 4 : 1);
  EXPECT_EQ(run.store->commit_sequence(), steps_.size());
  EXPECT_EQ(run.store->checkpoint_sequence(), layout::checkpoint_after(steps_.size(), slots_));
  EXPECT_EQ(run.store->journal_slots(), slots_);
  run.store.reset();
  // A power cut right after the last acknowledgement loses nothing.
  SimulatedDisk after_power_cut(disk.durable_image(), 2);
  auto reopened = open_store(after_power_cut);
  EXPECT_TRUE(holds_exactly(*reopened, expected_.back()));
  EXPECT_EQ(reopened->journal_slots(), slots_);
  EXPECT_EQ(after_power_cut.operations(), 0u) << "opening the image wrote to it";
}

TEST_P(CrashConsistencyTest, ProcessKillAtEveryOperationKeepsOldOrNewState) {
  RecoveryTally tally;
  crash_at_every_operation(
      [](const SimulatedDisk& disk, std::uint64_t) {
        return std::vector<std::pair<std::string, std::vector<std::uint8_t>>>{
            {"kill -9: the page cache survives", disk.image_after_process_kill()}};
      },
      tally);
  print_tally(slots_name(slots_) + " kill -9 at every operation", tally);
  EXPECT_GT(tally.in_flight_landed, 0);
  EXPECT_GT(tally.in_flight_lost, 0);
}

TEST_P(CrashConsistencyTest, PowerLossAtEveryOperationKeepsOldOrNewState) {
  constexpr int kRandomLossPatterns = 12;
  RecoveryTally tally;
  crash_at_every_operation(
      [](const SimulatedDisk& disk, std::uint64_t k) {
        std::vector<std::pair<std::string, std::vector<std::uint8_t>>> images;
        images.emplace_back("power cut: every unsynced write lost", disk.durable_image());
        std::mt19937 random(static_cast<std::uint32_t>(0x9E3779B9u * k + 17));
        for (int pattern = 0; pattern < kRandomLossPatterns; ++pattern) {
          images.emplace_back(fmt::format("power cut: loss pattern {}", pattern), disk.image_after_power_loss(random));
        }
        return images;
      },
      tally);
  print_tally(slots_name(slots_) + " power cut at every operation", tally);
  EXPECT_GT(tally.in_flight_landed, 0);
  EXPECT_GT(tally.in_flight_lost, 0);
}

TEST_P(CrashConsistencyTest, IoErrorAtEveryOperationRefusesLaterCommitsAndKeepsOldOrNewState) {
  const std::uint64_t total = operations_of_the_sequence();
  RecoveryTally tally;
  int acknowledged_despite_error = 0;
  for (std::uint64_t k = 1; k <= total; ++k) {
    SCOPED_TRACE(fmt::format("{}: EIO at operation {} of {}", slots_name(slots_), k, total));
    SimulatedDisk disk(blank_, static_cast<std::uint32_t>(k));
    SequenceRun run = run_sequence(disk, steps_, Fault::io_error, k);
    ASSERT_FALSE(run.process_died);
    ASSERT_EQ(run.results.size(), steps_.size());
    // The request whose commit hit the error.
    const auto failed_at = std::lower_bound(run.operations_before_step.begin(), run.operations_before_step.end(), k);
    const std::size_t failed = static_cast<std::size_t>(failed_at - run.operations_before_step.begin()) - 1;
    ASSERT_LT(failed, steps_.size());
    for (std::size_t i = 0; i < failed; ++i) EXPECT_TRUE(run.results[i].ok()) << "request " << i;
    const bool failed_acknowledged = run.results[failed].ok();
    if (failed_acknowledged) {
      ++acknowledged_despite_error;  // the record was durable; only the seal failed
      EXPECT_EQ(disk.trace().at(k - 1).size, layout::kSealBytes) << "acknowledged although the record failed";
    } else {
      EXPECT_EQ(run.results[failed].result, kWriteFailure) << describe_result(run.results[failed].result);
    }
    for (std::size_t i = failed + 1; i < steps_.size(); ++i) {
      EXPECT_FALSE(run.results[i].ok()) << "request " << i << " was acknowledged after a failed commit";
    }
    EXPECT_EQ(run.operations.size(), k) << "the store touched the file after a failed commit";
    const std::size_t acknowledged = failed + (failed_acknowledged ? 1 : 0);
    // The live store reports what it can stand behind: the old state, or the acknowledged new one.
    EXPECT_TRUE(holds_exactly(*run.store, expected_[acknowledged]));
    run.store.reset();

    expect_consistent_recovery(disk.image_after_process_kill(), expected_, acknowledged, !failed_acknowledged,
                               "reopened with the page cache intact", tally);
    expect_consistent_recovery(disk.durable_image(), expected_, acknowledged, !failed_acknowledged,
                               "reopened after a power cut losing every unsynced write", tally);
    std::mt19937 random(static_cast<std::uint32_t>(k * 7919));
    for (int pattern = 0; pattern < 3; ++pattern) {
      expect_consistent_recovery(disk.image_after_power_loss(random), expected_, acknowledged, !failed_acknowledged,
                                 fmt::format("reopened after a power cut, loss pattern {}", pattern), tally);
    }
    if (HasFatalFailure()) return;
  }
  print_tally(slots_name(slots_) + " EIO at every operation", tally);
  EXPECT_EQ(acknowledged_despite_error, static_cast<int>(steps_.size()));  // one seal per request
}

// A checkpoint overwrites data in place that the current checkpoint vouches for, then replaces
// that checkpoint. A crash, power cut or EIO at every operation of it must lose nothing
// acknowledged, and cannot have landed the request whose commit it precedes. Each checkpoint of
// the sequence runs on a store just reopened from the image the previous requests left, so the
// store must have found the checkpoint slot in use and the half-sectors the redo left to write.
TEST_P(CrashConsistencyTest, CrashOrIoErrorDuringACheckpointOfAReopenedStoreLosesNothing) {
  constexpr int kRandomLossPatterns = 10;
  const std::vector<std::size_t> checkpointing = checkpointing_requests();
  ASSERT_GE(checkpointing.size(), slots_ == 4 ? 4u : 1u);
  RecoveryTally tally;
  int expected_recoveries = 0;
  std::uint64_t checkpoint_operations = 0;
  for (const std::size_t j : checkpointing) {
    // The image requests 0..j-1 left behind, every write on the disk.
    SimulatedDisk before_disk(blank_, 11);
    SequenceRun before =
        run_sequence(before_disk, steps_, Fault::none, 0, RunOptions{Durability::sync_every_commit, 0, j});
    ASSERT_EQ(before.results.size(), j);
    before.store.reset();
    const std::vector<std::uint8_t> image = before_disk.image_after_process_kill();

    // Undisturbed, request j checkpoints #j, then writes its record.
    SimulatedDisk probe(image, 12);
    const SequenceRun undisturbed =
        run_sequence(probe, steps_, Fault::none, 0, RunOptions{Durability::sync_every_commit, j, j + 1});
    ASSERT_EQ(undisturbed.operations_of_open, 0u) << "opening the image wrote to it";
    ASSERT_TRUE(undisturbed.results.at(0).ok());
    ASSERT_EQ(undisturbed.store->checkpoint_sequence(), j);
    ASSERT_TRUE(holds_exactly(*undisturbed.store, expected_[j + 1]));
    const std::vector<Operation>& ops = undisturbed.operations;
    const std::uint64_t record_offset = layout::journal_slot((j + 1) % slots_) + layout::kRecordInSlot;
    const auto record_write = std::find_if(ops.begin(), ops.end(), [&](const Operation& op) {
      return op.kind == OperationKind::write && op.offset == record_offset;
    });
    ASSERT_NE(record_write, ops.end());
    const auto record_operation = static_cast<std::uint64_t>(record_write - ops.begin()) + 1;
    ASSERT_GE(record_operation, 5u) << "a checkpoint writes data and checksums, syncs, writes itself, syncs";
    checkpoint_operations += record_operation - 1;

    for (std::uint64_t k = 1; k <= ops.size(); ++k) {
      for (const Fault fault : {Fault::crash, Fault::io_error}) {
        const std::string situation = fmt::format("{}: {} at operation {} of {} of request {} ({})", slots_name(slots_),
                                                  fault == Fault::crash ? "crash" : "EIO", k, ops.size(), j,
                                                  k < record_operation ? "during the checkpoint" : "record or seal");
        SCOPED_TRACE(situation);
        SimulatedDisk disk(image, static_cast<std::uint32_t>(j * 1000 + k));
        SequenceRun run = run_sequence(disk, steps_, fault, k, RunOptions{Durability::sync_every_commit, j, j + 1});
        std::size_t acknowledged = j;
        bool in_flight = k >= record_operation;  // before its record, the request cannot land
        if (fault == Fault::crash) {
          ASSERT_TRUE(run.process_died);
        } else {
          ASSERT_FALSE(run.process_died);
          ASSERT_EQ(run.results.size(), 1u);
          if (run.results[0].ok()) {
            EXPECT_EQ(k, record_operation + 2) << "acknowledged although the record failed";
            acknowledged = j + 1;
            in_flight = false;
          } else {
            EXPECT_EQ(run.results[0].result, kWriteFailure) << describe_result(run.results[0].result);
          }
          EXPECT_EQ(run.operations.size(), k) << "the store touched the file after a failed commit";
          EXPECT_TRUE(holds_exactly(*run.store, expected_[acknowledged]));
          run.store.reset();
        }
        expect_consistent_recovery(disk.image_after_process_kill(), expected_, acknowledged, in_flight,
                                   "page cache intact", tally);
        expect_consistent_recovery(disk.durable_image(), expected_, acknowledged, in_flight,
                                   "power cut, every unsynced write lost", tally);
        std::mt19937 random(static_cast<std::uint32_t>(k * 104729 + j * 31 + (fault == Fault::crash ? 0 : 1)));
        for (int pattern = 0; pattern < kRandomLossPatterns; ++pattern) {
          expect_consistent_recovery(disk.image_after_power_loss(random), expected_, acknowledged, in_flight,
                                     fmt::format("power cut, loss pattern {}", pattern), tally);
        }
        expected_recoveries += 2 + kRandomLossPatterns;
        if (HasFatalFailure()) return;
      }
    }
  }
  std::printf("[ recovery ] %s: %zu checkpoints of %" PRIu64 " operations in all\n", slots_name(slots_).c_str(),
              checkpointing.size(), checkpoint_operations);
  print_tally(slots_name(slots_) + " crash or EIO in a checkpoint", tally);
  EXPECT_EQ(tally.recoveries, expected_recoveries);
  EXPECT_GT(tally.in_flight_landed, 0);
  EXPECT_GT(tally.in_flight_lost, 0);
}

TEST_P(CrashConsistencyTest, OsManagedDurabilityNeverSyncsAndSurvivesAKillAtEveryOperation) {
  SimulatedDisk disk(blank_, 1);
  const SequenceRun run = run_sequence(disk, steps_, Fault::none, 0, RunOptions{Durability::os_managed});
  ASSERT_EQ(run.results.size(), steps_.size());
  for (std::size_t i = 0; i < steps_.size(); ++i) EXPECT_TRUE(run.results[i].ok()) << "request " << i;
  EXPECT_TRUE(holds_exactly(*run.store, expected_.back()));
  int checkpoints = 0;
  EXPECT_TRUE(operations_follow_the_format(run, steps_, slots_, Durability::os_managed, checkpoints));
  EXPECT_EQ(checkpoints, static_cast<int>(checkpointing_requests().size()));

  RecoveryTally tally;
  crash_at_every_operation(
      [](const SimulatedDisk& crashed, std::uint64_t) {
        return std::vector<std::pair<std::string, std::vector<std::uint8_t>>>{
            {"os_managed, kill -9: the page cache survives", crashed.image_after_process_kill()}};
      },
      tally, Durability::os_managed);
  print_tally(slots_name(slots_) + " os_managed, kill -9 at every operation", tally);
  EXPECT_GT(tally.in_flight_landed, 0);
  EXPECT_GT(tally.in_flight_lost, 0);
}

INSTANTIATE_TEST_SUITE_P(JournalSlots, CrashConsistencyTest, ::testing::Values(FileStore::kDefaultJournalSlots, 4u),
                         [](const ::testing::TestParamInfo<unsigned>& slots) {
                           return fmt::format("slots_{}", slots.param);
                         });

}  // namespace
}  // namespace emmcsim::rpmb
