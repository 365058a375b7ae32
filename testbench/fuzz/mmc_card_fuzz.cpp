// libFuzzer target: mmc::Card over a MemoryImage (4 MiB user, 2 × 256 KiB boot, 128 KiB RPMB, one
// 512 KiB GP partition, byte addressed), driven by a sequence of host steps decoded from the input,
// with the card's invariants checked after every step (__builtin_trap on violation).
//
// Input format (every read past the end yields zeros, so any byte string is a valid input):
//
//   header  1 byte   bit 0  timed busy: CardOptions::complete_busy_immediately = false (the card
//                           stays in prg/dis until a finish_busy step)
//                    bit 1  start with CMD0, CMD1 ×2, CMD2, CMD3 (RCA 1), CMD7: the card in tran
//   then steps until the input ends (at most kMaxSteps), each starting with an op byte:
//   op & 7 = 0..2   command: index byte, argument selector byte, then what the selector needs
//                    index byte: 0xC0..0xFF → CMD(byte & 0x3F); else kIndices[byte % size]
//                    selector s, mode s & 7:
//                      0 zero
//                      1 RCA: (s bit 7 ? byte : 1) << 16, | 1 << 15 when s bit 6 (CMD5 sleep, SQS)
//                      2 address: u16 % kAddressSectors as a byte address (this card is byte
//                        addressed), + 1 byte misalignment when s bit 7
//                      3 CMD6: access = s bits 3-4; index = s bit 5 ? byte : kSwitchIndices[byte %
//                        size]; value byte; command-set bits byte & 7 when s bit 6
//                      4 CMD23: count byte; s bit 3 reliable write, bit 4 forced programming,
//                        bit 5 packed, bit 6 context ID from a byte
//                      5 kSpecialArgs[byte % size] (CMD0/CMD1/CMD38 arguments)
//                      6 u16
//                      7 u32 (4 bytes, big-endian)
//   op & 7 = 3      read_block: size byte (see block_size())
//   op & 7 = 4      write_block: size byte, fill byte f, then per fill mode f & 3:
//                      0 every byte = next input byte
//                      1 u16 length % (size + 1), then that many input bytes copied to the END of
//                        the block (short inputs reach the RPMB type/counter/address fields), or to
//                        its start when f bit 2 is set (CMD42 flags, length and password)
//                      2 RPMB request frame: type 1 + (f >> 2) % 7, flags byte g: bit 0 sign
//                        (program-key: the harness key; other types: correct MAC with the harness
//                        key over the burst so far, when this block completes the burst), bit 1
//                        write counter := the device's, bit 2 block count := the burst's blocks,
//                        bit 3 address := byte, bit 4 nonce := byte pattern, bit 5 data := byte
//                        pattern
//                      3 pattern seeded by one byte
//   op & 7 = 5      finish_busy
//   op & 7 = 6      power_cycle
//   op & 7 = 7      burst: op bit 3 clear: 1 + (op >> 3) blocks of the open data phase (read in
//                   data/boot, written with a pattern otherwise), each a step with its own checks;
//                   op bit 3 set: one read_blocks/write_blocks call of 1 + (op >> 4) blocks
//
// block_size(byte): byte < 0x80 → the block size of the data phase last opened; else
// kOddSizes[byte % size] (0, 1, 4, 8, 64, 128, 511, 512, 513, 1024).
//
// Invariants checked after every step:
//   - state() is one of kAllCardStates;
//   - the RPMB write counter never decreases; it changes only on a write_block that completed an
//     RPMB request burst (the card was in rcv with RPMB selected), and then by at most 1; the RPMB
//     key, once programmed, never changes;
//   - an illegal command leaves state() unchanged, gets no response and sets ILLEGAL_COMMAND;
//   - in slp every command but CMD0 and CMD5 is illegal;
//   - an R1/R1b response carries CURRENT_STATE = the state the command arrived in (0 for the
//     states R1 cannot show), except CMD13 with SQS, whose response is the queue status;
//   - a read_block/write_block whose size differs from the open data phase's block size never
//     succeeds; a block succeeds only in data/boot (reads) or rcv/btst (writes);
//   - with complete_busy_immediately the card is never left busy; finish_busy always ends busy.
//
// Compile with -DMMC_CARD_FUZZ_TRACE to print every step and its outcome on stderr (for reading
// a crash input or checking what a seed reaches).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "emmcsim/mmc/card.hpp"
#include "emmcsim/mmc/card_status.hpp"
#include "emmcsim/mmc/command.hpp"
#include "emmcsim/mmc/device_config.hpp"
#include "emmcsim/mmc/image.hpp"
#include "emmcsim/mmc/partition.hpp"
#include "emmcsim/rpmb/frame.hpp"
#include "emmcsim/rpmb/mac.hpp"
#include "emmcsim/rpmb/protocol.hpp"

namespace {

namespace mmc = emmcsim::mmc;
namespace rpmb = emmcsim::rpmb;
namespace st = mmc::status;
using mmc::CardState;

constexpr std::size_t kMaxSteps = 1024;
constexpr std::size_t kMaxBlockBytes = 1024;
constexpr std::uint32_t kAddressSectors = 8192 + 256;  // the user area and a little beyond
constexpr std::uint32_t kHostOcr = 0x40FF8080;

// Commands the steps pick from (the implemented ones and a few that are not).
constexpr std::uint8_t kIndices[] = {0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 12, 13, 14, 15, 16, 17, 18, 19,
                                     21, 23, 24, 25, 28, 29, 30, 31, 35, 36, 38, 42, 11, 20, 22, 26, 44, 55, 56};
// EXT_CSD modes-segment fields worth switching.
constexpr std::uint8_t kSwitchIndices[] = {15, 32, 33, 34, 162, 167, 171, 173, 175, 177, 178, 179, 183, 185, 187, 191};
constexpr std::uint32_t kSpecialArgs[] = {0x00000000, 0x00000001, 0x00000003, 0x80000000, 0x80000001, 0x80008000,
                                          0xF0F0F0F0, 0xFFFFFFFA, kHostOcr,   0x00FF8000, 0x00000080, 0xFFFFFFFF};
constexpr std::uint32_t kOddSizes[] = {0, 1, 4, 8, 64, 128, 511, 512, 513, 1024};

// The invariant named in `what` did not hold.
[[noreturn]] void violated(const char* what) {
  std::fprintf(stderr, "mmc_card_fuzz: invariant violated: %s\n", what);
  std::abort();
}
void require(bool invariant, const char* what) {
  if (!invariant) violated(what);
}

#ifdef MMC_CARD_FUZZ_TRACE
#define TRACE(...) std::fprintf(stderr, __VA_ARGS__)
#else
#define TRACE(...) static_cast<void>(0)
#endif

class InputReader {
 public:
  InputReader(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
  bool empty() const { return offset_ >= size_; }
  std::uint8_t byte() { return offset_ < size_ ? data_[offset_++] : 0; }
  std::uint16_t u16() {
    const std::uint16_t high = byte();
    return static_cast<std::uint16_t>(high << 8 | byte());
  }
  std::uint32_t u32() {
    const std::uint32_t high = u16();
    return high << 16 | u16();
  }
  void copy(std::uint8_t* out, std::size_t count) {
    const std::size_t available = offset_ < size_ ? size_ - offset_ : 0;
    const std::size_t taken = count < available ? count : available;
    if (taken > 0) std::memcpy(out, data_ + offset_, taken);
    if (taken < count) std::memset(out + taken, 0, count - taken);
    offset_ += taken;
  }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t offset_ = 0;
};

const mmc::DeviceConfig& fuzz_config() {
  static const mmc::DeviceConfig config = [] {
    mmc::DeviceConfig c = mmc::default_device_config();
    c.user_capacity = 4ULL << 20;
    c.boot_partition_size = 256ULL << 10;
    c.rpmb_size = 128ULL << 10;
    c.general_purpose_partitions = {512ULL << 10};
    c.cache_size = 64ULL << 10;
    c.reliable_write_sectors = 4;
    c.en_rpmb_rel_wr = true;
    c.command_queue_depth = 8;
    c.ocr_busy_polls = 1;
    mmc::validate(c);
    return c;
  }();
  return config;
}

rpmb::Key harness_key() {
  rpmb::Key key{};
  for (std::size_t i = 0; i < key.size(); ++i) key[i] = static_cast<std::uint8_t>(0x3C + 11 * i);
  return key;
}

bool is_valid_state(CardState s) {
  for (CardState known : mmc::kAllCardStates)
    if (s == known) return true;
  return false;
}

std::uint32_t visible_state(CardState s) {
  if (s == CardState::pre_idle || s == CardState::boot || s == CardState::inactive) return 0;
  return static_cast<std::uint32_t>(s);
}

class Harness {
 public:
  Harness(mmc::CardOptions options)
      : options_(options), image_(fuzz_config()), card_(fuzz_config(), image_.backend(), options) {
    burst_.reserve(64);
  }

  mmc::Card& card() { return card_; }

  void command(std::uint8_t index, std::uint32_t arg) {
    const Snapshot before = snapshot();
    const mmc::CommandOutcome o = card_.execute({index, arg});
    TRACE("CMD%u arg=0x%08x: %s%s response=0x%08x data=%u×%u state=%s\n", unsigned{index}, arg,
          o.illegal ? "ILLEGAL " : "", o.busy ? "busy" : "", o.response.value, o.data.blocks, o.data.block_size,
          std::string(mmc::card_state_name(card_.state())).c_str());
    check_common(before, false);
    if (o.illegal) {
      require(card_.state() == before.state, "an illegal command leaves the state unchanged");
      require(o.response.type == mmc::ResponseType::none, "an illegal command gets no response");
      require((card_.pending_status() & st::kIllegalCommand) != 0, "an illegal command sets ILLEGAL_COMMAND");
      return;
    }
    require(before.state != CardState::slp || index == 0 || index == 5, "in slp only CMD0 and CMD5 are legal");
    const bool queue_status = index == 13 && (arg & (1u << 15)) != 0;
    if ((o.response.type == mmc::ResponseType::r1 || o.response.type == mmc::ResponseType::r1b) && !queue_status) {
      require(st::current_state(o.response.value) == visible_state(before.state),
              "R1 carries the state the command arrived in");
    }
    if (o.data.direction != mmc::DataDirection::none) {
      phase_ = o.data;
      burst_.clear();
      burst_blocks_ =
          card_.current_partition() == mmc::Partition::rpmb && card_.state() == CardState::rcv ? o.data.blocks : 0;
    }
  }

  void read_block(std::size_t size) {
    const Snapshot before = snapshot();
    const mmc::BlockOutcome b = card_.read_block(block_, size);
    TRACE("  read_block(%zu): ok=%d complete=%d state=%s\n", size, int{b.ok}, int{b.transfer_complete},
          std::string(mmc::card_state_name(card_.state())).c_str());
    check_common(before, false);
    if (b.ok) {
      require(size == phase_.block_size, "a block of the wrong size never succeeds");
      require(before.state == CardState::data || before.state == CardState::boot, "reads succeed only in data/boot");
    }
  }

  void write_block(std::size_t size) {
    const Snapshot before = snapshot();
    const bool rpmb_burst = before.state == CardState::rcv && before.partition == mmc::Partition::rpmb;
    const mmc::BlockOutcome b = card_.write_block(block_, size);
    TRACE("  write_block(%zu): ok=%d complete=%d state=%s rpmb counter=%u key=%d\n", size, int{b.ok},
          int{b.transfer_complete}, std::string(mmc::card_state_name(card_.state())).c_str(),
          image_.rpmb_store().state().write_counter, int{image_.rpmb_store().state().key_programmed});
    check_common(before, rpmb_burst && b.transfer_complete);
    if (b.ok) {
      require(size == phase_.block_size, "a block of the wrong size never succeeds");
      require(before.state == CardState::rcv || before.state == CardState::btst, "writes succeed only in rcv/btst");
      if (rpmb_burst && size == rpmb::kFrameSize && burst_.size() < 64) {
        burst_.push_back(rpmb::Frame::from_bytes(block_));
      }
    }
  }

  // read_blocks/write_blocks of `count` blocks of the phase's size (user-area data takes the
  // one-call path); the same invariants, and never more blocks than asked.
  void burst(std::uint32_t count) {
    const Snapshot before = snapshot();
    const std::size_t size = phase_.block_size;
    if (size == 0 || size * count > burst_buffer_.size()) return;
    const bool reading = before.state == CardState::data || before.state == CardState::boot;
    const bool rpmb_burst = !reading && before.state == CardState::rcv && before.partition == mmc::Partition::rpmb;
    if (!reading) fill_burst(size * count);
    const mmc::BlockOutcome b = reading ? card_.read_blocks(burst_buffer_.data(), size, count)
                                        : card_.write_blocks(burst_buffer_.data(), size, count);
    TRACE("  %s(%zu x %u): ok=%d blocks=%u complete=%d\n", reading ? "read_blocks" : "write_blocks", size, count,
          int{b.ok}, b.blocks, int{b.transfer_complete});
    check_common(before, rpmb_burst && b.transfer_complete);
    require(b.blocks <= count, "a burst moves at most the blocks asked for");
    require(b.ok == (b.blocks == count), "a burst is ok exactly when every block moved");
  }

  void finish_busy() {
    const Snapshot before = snapshot();
    card_.finish_busy();
    check_common(before, false);
    require(!card_.busy(), "finish_busy ends busy");
  }

  void power_cycle() {
    const Snapshot before = snapshot();
    card_.power_cycle();
    check_common(before, false);
    require(card_.state() == CardState::idle, "a power cycle restarts the card in idle");
    phase_ = {};
    burst_.clear();
    burst_blocks_ = 0;
  }

  const mmc::DataPhase& phase() const { return phase_; }
  std::uint8_t* block() { return block_; }

  // Builds an RPMB request frame in the block buffer (fill mode 2).
  void build_frame(std::uint8_t f, InputReader& input) {
    rpmb::Frame frame;
    frame.set_type(static_cast<std::uint16_t>(1 + (f >> 2) % 7));
    const std::uint8_t g = input.byte();
    if (g & 0x02) frame.set_write_counter(image_.rpmb_store().state().write_counter);
    if (g & 0x04) frame.set_block_count(static_cast<std::uint16_t>(burst_blocks_));
    if (g & 0x08) frame.set_address(input.byte());
    if (g & 0x10) {
      const std::uint8_t n = input.byte();
      for (std::size_t i = 0; i < rpmb::kNonceSize; ++i)
        frame.bytes()[rpmb::Frame::kNonceOffset + i] = static_cast<std::uint8_t>(n + i);
    }
    if (g & 0x20) {
      const std::uint8_t d = input.byte();
      for (std::size_t i = 0; i < rpmb::kHalfSectorSize; ++i) frame.data()[i] = static_cast<std::uint8_t>(d ^ i);
    }
    if (g & 0x01) {
      if (frame.type() == static_cast<std::uint16_t>(rpmb::RequestType::program_key)) {
        frame.set_key(harness_key());
      } else if (burst_blocks_ != 0 && burst_.size() + 1 == burst_blocks_) {
        std::vector<rpmb::Frame>& frames = scratch_frames();
        frames.assign(burst_.begin(), burst_.end());
        frames.push_back(frame);
        frame.set_mac(authenticator().compute(frames.data(), frames.size()));
      }
    }
    std::memcpy(block_, frame.bytes(), rpmb::kFrameSize);
  }

 private:
  struct Snapshot {
    CardState state;
    mmc::Partition partition;
    std::uint32_t write_counter;
    bool key_programmed;
    rpmb::Key key;
  };

  Snapshot snapshot() {
    const rpmb::PartitionState& s = image_.rpmb_store().state();
    return {card_.state(), card_.current_partition(), s.write_counter, s.key_programmed, s.key};
  }

  void check_common(const Snapshot& before, bool completed_rpmb_burst) {
    require(is_valid_state(card_.state()), "the state is one of kAllCardStates");
    const rpmb::PartitionState& after = image_.rpmb_store().state();
    require(after.write_counter >= before.write_counter, "the RPMB write counter never decreases");
    if (completed_rpmb_burst) {
      require(after.write_counter - before.write_counter <= 1, "one RPMB burst raises the counter by at most 1");
    } else {
      require(after.write_counter == before.write_counter,
              "the RPMB write counter changes only when an RPMB request burst completes");
    }
    if (before.key_programmed) {
      require(after.key_programmed && after.key == before.key, "the RPMB key never changes once programmed");
    } else if (after.key_programmed) {
      require(completed_rpmb_burst, "the RPMB key is programmed only by an RPMB request burst");
    }
    if (options_.complete_busy_immediately) require(!card_.busy(), "untimed: the card never stays busy");
  }

  static rpmb::FrameAuthenticator& authenticator() {
    static rpmb::FrameAuthenticator instance(harness_key());
    return instance;
  }
  static std::vector<rpmb::Frame>& scratch_frames() {
    static std::vector<rpmb::Frame> frames;
    return frames;
  }

  mmc::CardOptions options_;
  mmc::MemoryImage image_;
  mmc::Card card_;
  mmc::DataPhase phase_;
  std::vector<rpmb::Frame> burst_;  // request frames of the RPMB burst in progress
  std::uint32_t burst_blocks_ = 0;  // its announced length (0: none in progress)
  alignas(8) std::uint8_t block_[kMaxBlockBytes] = {};
  std::vector<std::uint8_t> burst_buffer_ = std::vector<std::uint8_t>(32 * rpmb::kFrameSize);
  std::uint8_t burst_fill_ = 0;
  void fill_burst(std::size_t bytes) { std::memset(burst_buffer_.data(), ++burst_fill_, bytes); }
};

std::uint32_t decode_arg(InputReader& input) {
  const std::uint8_t s = input.byte();
  switch (s & 7) {
    case 0: return 0;
    case 1: {
      const std::uint32_t rca = (s & 0x80) ? input.byte() : 1;
      return rca << 16 | ((s & 0x40) ? 1u << 15 : 0u);
    }
    case 2: {
      std::uint32_t arg = (input.u16() % kAddressSectors) * mmc::kSectorSize;
      if (s & 0x80) arg += input.byte();
      return arg;
    }
    case 3: {
      const std::uint32_t access = (s >> 3) & 3;
      const std::uint32_t index = (s & 0x20) ? input.byte() : kSwitchIndices[input.byte() % sizeof kSwitchIndices];
      const std::uint32_t value = input.byte();
      const std::uint32_t command_set = (s & 0x40) ? (input.byte() & 7u) : 0u;
      return access << 24 | index << 16 | value << 8 | command_set;
    }
    case 4: {
      std::uint32_t arg = input.byte();
      if (s & 0x08) arg |= 1u << 31;
      if (s & 0x10) arg |= 1u << 24;
      if (s & 0x20) arg |= 1u << 30;
      if (s & 0x40) arg |= (input.byte() & 0xFu) << 25;
      return arg;
    }
    case 5: return kSpecialArgs[input.byte() % (sizeof kSpecialArgs / sizeof kSpecialArgs[0])];
    case 6: return input.u16();
    default: return input.u32();
  }
}

std::uint8_t decode_index(InputReader& input) {
  const std::uint8_t b = input.byte();
  if (b >= 0xC0) return b & 0x3F;
  return kIndices[b % sizeof kIndices];
}

std::size_t decode_size(Harness& harness, InputReader& input) {
  const std::uint8_t b = input.byte();
  if (b < 0x80) {
    const std::size_t size = harness.phase().block_size;
    return size <= kMaxBlockBytes ? size : kMaxBlockBytes;
  }
  return kOddSizes[b % (sizeof kOddSizes / sizeof kOddSizes[0])];
}

// Eight bytes per step: this runs for every burst block, and per-byte loops cost the fuzzer a
// coverage callback per byte.
void fill_pattern(std::uint8_t* out, std::size_t size, std::uint32_t seed) {
  std::uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  std::size_t i = 0;
  for (; i + 8 <= size; i += 8) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    std::memcpy(out + i, &x, 8);
  }
  for (; i < size; ++i) out[i] = static_cast<std::uint8_t>(x >> (8 * (i % 8)));
}

void run_write_block(Harness& harness, InputReader& input) {
  const std::size_t size = decode_size(harness, input);
  std::uint8_t* block = harness.block();
  std::memset(block, 0, kMaxBlockBytes);
  const std::uint8_t f = input.byte();
  switch (f & 3) {
    case 0: std::memset(block, input.byte(), size); break;
    case 1: {
      const std::size_t length = input.u16() % (size + 1);
      input.copy((f & 0x04) != 0 ? block : block + size - length, length);
      break;
    }
    case 2: harness.build_frame(f, input); break;
    default: fill_pattern(block, size, input.byte()); break;
  }
  harness.write_block(size);
}

void run_burst(Harness& harness, std::uint8_t op) {
  if ((op >> 3) & 1) {  // one read_blocks/write_blocks call
    harness.burst(1u + (op >> 4));
    return;
  }
  const std::size_t blocks = 1 + (op >> 3);
  const std::size_t size = harness.phase().block_size <= kMaxBlockBytes ? harness.phase().block_size : kMaxBlockBytes;
  for (std::size_t i = 0; i < blocks; ++i) {
    const CardState s = harness.card().state();
    if (s == CardState::data || s == CardState::boot) {
      harness.read_block(size);
    } else {
      fill_pattern(harness.block(), size, static_cast<std::uint32_t>(op * 131 + i));
      harness.write_block(size);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  InputReader input(data, size);
  const std::uint8_t header = input.byte();
  mmc::CardOptions options;
  options.complete_busy_immediately = (header & 0x01) == 0;
  Harness harness(options);
  if (header & 0x02) {
    harness.command(0, 0);
    harness.command(1, kHostOcr);
    harness.command(1, kHostOcr);
    harness.command(2, 0);
    harness.command(3, 1u << 16);
    harness.command(7, 1u << 16);
  }
  for (std::size_t step = 0; step < kMaxSteps && !input.empty(); ++step) {
    const std::uint8_t op = input.byte();
    switch (op & 7) {
      case 0:
      case 1:
      case 2: {
        const std::uint8_t index = decode_index(input);
        harness.command(index, decode_arg(input));
        break;
      }
      case 3: harness.read_block(decode_size(harness, input)); break;
      case 4: run_write_block(harness, input); break;
      case 5: harness.finish_busy(); break;
      case 6: harness.power_cycle(); break;
      default: run_burst(harness, op); break;
    }
  }
  return 0;
}
