// libFuzzer target: rpmb::Engine over a MemoryStore, driven by a sequence of bus bursts decoded from
// the input, with the engine's invariants checked after every step (__builtin_trap on violation).
//
// Input format (every read past the end yields zeros, so any byte string is a valid input):
//
//   header  1 byte   bits 0-1  RPMB_SIZE_MULT - 1 (1..4)
//                    bit  2    EngineConfig::en_rpmb_rel_wr
//                    bit  3    start with the harness key programmed
//                    bit  4    start with the write counter at 0xFFFFFFFF - bits 5-6 (expiry paths)
//   then operations until the input ends (at most kMaxOperations):
//   op      1 byte   bit 0 = 1: read_response, then 1 byte: n = 1 + byte % 70 frames
//                    bit 0 = 0: write_request, then:
//   flags   1 byte   bit 0 reliable write; k = 1 + (bits 1-7) % 40 frames
//   shape   1 byte   bits 0-2  type override: 0 keep the frame's bytes, 1..7 set request type 1..7
//                    bit  3    write counter := the device's counter (every frame)
//                    bit  4    block count := k (every frame)
//                    bit  5    address := u16 from the input % (half-sectors + 8) (every frame)
//                    bit  6    frames agree: copy type, counter, address, count of frame 0 to all
//                    bit  7    sign: key programming puts the harness key in frame 0; any other
//                              request gets a correct MAC in its last frame (key the device holds,
//                              else the harness key)
//   [address 2 bytes, big-endian, when shape bit 5]
//   k frames, each: length 2 bytes big-endian (% 513), then that many bytes copied to the END of
//                   the frame (so short inputs reach the type, counter, address and nonce fields)
//
// Invariants checked after every step:
//   - the write counter never decreases, rises by at most 1 per write_request, never on a read, and
//     rises only for a reliable authenticated data write or device configuration write carrying a
//     correct MAC and the device's counter; an authenticated data write is accepted exactly when
//     JEDEC's checks (key, expiry, range, MAC, counter, count, reliable, frames agree) all pass;
//   - the key never changes once programmed, and is programmed only by a reliable 1-frame key
//     programming request, with the key that request carried;
//   - at most one store commit per write_request and none per read; partition data (read back
//     through the store after every commit and at the end) equals a shadow copy the harness keeps,
//     updated only by accepted data writes, which commit exactly their own range;
//   - response frames: type, result and nonce as the request implies; a data read in range with the
//     key programmed returns the shadow's data and a valid MAC over all frames; counter and result
//     reads with the key carry a valid MAC.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <vector>

#include "emmcsim/rpmb/engine.hpp"
#include "emmcsim/rpmb/frame.hpp"
#include "emmcsim/rpmb/mac.hpp"
#include "emmcsim/rpmb/partition_state.hpp"
#include "emmcsim/rpmb/protocol.hpp"
#include "emmcsim/rpmb/store.hpp"

namespace {

namespace rpmb = emmcsim::rpmb;

constexpr std::size_t kMaxRequestFrames = 40;
constexpr std::size_t kMaxResponseFrames = 70;
constexpr std::size_t kMaxOperations = 256;

constexpr std::uint16_t kResultMask = static_cast<std::uint16_t>(~rpmb::kCounterExpiredBit);

constexpr std::uint16_t type_value(rpmb::RequestType type) { return static_cast<std::uint16_t>(type); }
constexpr std::uint16_t type_value(rpmb::ResponseType type) { return static_cast<std::uint16_t>(type); }
constexpr std::uint16_t code(rpmb::ResultCode result) { return static_cast<std::uint16_t>(result); }

// The invariant named in the comment beside the call did not hold.
[[noreturn]] void violated() { __builtin_trap(); }
void require(bool invariant) {
  if (!invariant) violated();
}

rpmb::Key harness_key() {
  rpmb::Key key{};
  for (std::size_t i = 0; i < key.size(); ++i) key[i] = static_cast<std::uint8_t>(0x5A + 13 * i);
  return key;
}

class InputReader {
 public:
  InputReader(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}

  bool empty() const { return offset_ >= size_; }
  std::uint8_t byte() { return offset_ < size_ ? data_[offset_++] : 0; }
  std::uint16_t u16() {
    const std::uint16_t high = byte();
    return static_cast<std::uint16_t>(high << 8 | byte());
  }
  // Copies up to `count` bytes to `out`, zero-filling what the input no longer has.
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

bool is_read_type(std::uint16_t type) {
  return type == type_value(rpmb::RequestType::read_counter) ||
         type == type_value(rpmb::RequestType::authenticated_read) ||
         type == type_value(rpmb::RequestType::result_read) ||
         type == type_value(rpmb::RequestType::device_config_read);
}

bool frames_agree(const rpmb::Frame* frames, std::size_t count) {
  for (std::size_t i = 1; i < count; ++i) {
    if (frames[i].write_counter() != frames[0].write_counter() || frames[i].address() != frames[0].address() ||
        frames[i].block_count() != frames[0].block_count() || frames[i].type() != frames[0].type()) {
      return false;
    }
  }
  return true;
}

// The MemoryStore as the engine sees it, counting commits: the engine changes partition data only
// through Store::commit(), so the harness reads the whole partition back after any step that
// committed (and once at the end of the input) rather than after every step.
class ObservedStore final : public rpmb::Store {
 public:
  ObservedStore(std::uint32_t size_mult, const rpmb::PartitionState& initial) : memory_(size_mult, initial) {}

  std::uint32_t half_sectors() const override { return memory_.half_sectors(); }
  const rpmb::PartitionState& state() const override { return memory_.state(); }
  void read(std::uint32_t address, std::uint32_t count, std::uint8_t* out) const override {
    memory_.read(address, count, out);
  }
  void commit(const rpmb::Commit& commit) override {
    ++commits_;
    last_commit_address_ = commit.address;
    last_commit_count_ = commit.count;
    memory_.commit(commit);
  }

  unsigned commits() const { return commits_; }
  std::uint16_t last_commit_address() const { return last_commit_address_; }
  std::uint16_t last_commit_count() const { return last_commit_count_; }

 private:
  rpmb::MemoryStore memory_;
  unsigned commits_ = 0;
  std::uint16_t last_commit_address_ = 0;
  std::uint16_t last_commit_count_ = 0;
};

class Harness {
 public:
  Harness(std::uint32_t size_mult, rpmb::EngineConfig config, const rpmb::PartitionState& initial)
      : store_(size_mult, initial), engine_(store_, config), shadow_(reused_buffer(0)), readback_(reused_buffer(1)) {
    // Buffers live across inputs: allocating up to 512 KiB twice per input costs more than the run.
    shadow_.assign(std::size_t{store_.half_sectors()} * rpmb::kHalfSectorSize, 0);
    readback_.resize(shadow_.size());
    if (initial.key_programmed) host_authenticator_.emplace(initial.key);
    require(state_matches_shadow());
  }

  std::uint32_t half_sectors() const { return store_.half_sectors(); }
  std::uint32_t write_counter() const { return engine_.state().write_counter; }

  // The MAC a host holding the device's key computes (the harness key before one is programmed).
  rpmb::Mac host_mac(const rpmb::Frame* frames, std::size_t count) {
    if (host_authenticator_) return host_authenticator_->compute(frames, count);
    rpmb::FrameAuthenticator fallback(harness_key());
    return fallback.compute(frames, count);
  }

  void write_request(const rpmb::Frame* frames, std::size_t count, bool reliable) {
    const rpmb::PartitionState before = engine_.state();
    const std::uint16_t type = frames[0].type();
    const bool mac_valid = host_authenticator_.has_value() && host_authenticator_->verify(frames, count);
    const unsigned commits_before = store_.commits();

    engine_.write_request(frames, count, reliable);
    const rpmb::PartitionState& after = engine_.state();

    // Counter: monotonic, at most +1, only for a correctly MACed, reliable, write-type request.
    require(after.write_counter >= before.write_counter);
    require(after.write_counter - before.write_counter <= 1);
    const bool counter_rose = after.write_counter != before.write_counter;
    // One commit at most per request, and only for a write-type request.
    const unsigned commits = store_.commits() - commits_before;
    require(commits <= 1);
    if (commits == 1) {
      require(type == type_value(rpmb::RequestType::program_key) ||
              type == type_value(rpmb::RequestType::authenticated_write) ||
              type == type_value(rpmb::RequestType::device_config_write));
    }
    if (counter_rose) {
      require(type == type_value(rpmb::RequestType::authenticated_write) ||
              type == type_value(rpmb::RequestType::device_config_write));
      require(before.key_programmed && mac_valid && reliable);
      require(frames[0].write_counter() == before.write_counter);
      require(!before.counter_expired());
    }

    // Key: once programmed, for life; programmed only by a well-formed key programming request.
    if (before.key_programmed) {
      require(after.key_programmed && after.key == before.key);
    } else if (after.key_programmed) {
      require(type == type_value(rpmb::RequestType::program_key) && reliable && count == 1);
      require(after.key == frames[0].key());
      host_authenticator_.emplace(after.key);
    }

    // Authenticated data write: accepted exactly when every JEDEC check passes.
    if (type == type_value(rpmb::RequestType::authenticated_write)) {
      const std::uint16_t address = frames[0].address();
      const bool allowed_count = count == 1 || count == 2 || (count == 32 && engine_.config().en_rpmb_rel_wr);
      const bool acceptable = before.key_programmed && !before.counter_expired() &&
                              std::uint64_t{address} + count <= half_sectors() && mac_valid &&
                              frames[0].write_counter() == before.write_counter && allowed_count &&
                              frames[0].block_count() == count && reliable && frames_agree(frames, count);
      require(counter_rose == acceptable);
      const rpmb::ResultRegister& result = engine_.result_register();
      require(result.type == rpmb::ResponseType::authenticated_write);
      require(result.write_counter == after.write_counter && result.address == address);
      require(((result.result & kResultMask) == code(rpmb::ResultCode::ok)) == acceptable);
      if (acceptable) {
        require(commits == 1 && store_.last_commit_address() == address);
        require(store_.last_commit_count() == count);
        for (std::size_t i = 0; i < count; ++i) {
          std::memcpy(shadow_.data() + (std::size_t{address} + i) * rpmb::kHalfSectorSize, frames[i].data(),
                      rpmb::kHalfSectorSize);
        }
      }
    }
    if (type == type_value(rpmb::RequestType::device_config_write) && counter_rose) {
      require(engine_.result_register().type == rpmb::ResponseType::device_config_write);
      require((engine_.result_register().result & kResultMask) == code(rpmb::ResultCode::ok));
    }

    // Data: nothing outside an accepted data write changed (without a commit, nothing could).
    if (commits > 0) {
      if (type != type_value(rpmb::RequestType::authenticated_write)) {
        require(store_.last_commit_count() == 0);
      }
      require(state_matches_shadow());
    }

    pending_read_.reset();
    if (is_read_type(type)) pending_read_ = frames[0];
  }

  void read_response(rpmb::Frame* out, std::size_t count) {
    const rpmb::PartitionState before = engine_.state();
    const rpmb::ResultRegister result_register = engine_.result_register();
    const unsigned commits_before = store_.commits();
    engine_.read_response(out, count);
    // A read changes nothing the device remembers.
    require(engine_.state() == before && store_.commits() == commits_before);

    std::optional<rpmb::Frame> request;
    request.swap(pending_read_);
    if (!request) {
      for (std::size_t i = 0; i < count; ++i) {
        require(out[i].type() == type_value(rpmb::ResponseType::none));
        require((out[i].result() & kResultMask) == code(rpmb::ResultCode::general_failure));
      }
      return;
    }
    const std::uint16_t type = request->type();
    if (type == type_value(rpmb::RequestType::authenticated_read)) {
      check_data_read(*request, out, count);
    } else if (type == type_value(rpmb::RequestType::read_counter)) {
      check_single_frame_read(*request, out, count, rpmb::ResponseType::read_counter);
      if (count == 1 && before.key_programmed) require(out[0].write_counter() == before.write_counter);
    } else if (type == type_value(rpmb::RequestType::device_config_read)) {
      check_single_frame_read(*request, out, count, rpmb::ResponseType::device_config_read);
    } else if (count == 1) {  // result read
      require(out[0].type() == type_value(result_register.type));
      require(out[0].result() == result_register.result);
      require(out[0].write_counter() == result_register.write_counter);
      if (before.key_programmed) require(host_authenticator_->verify(out, 1));
    }
  }

  bool state_matches_shadow() {
    store_.read(0, half_sectors(), readback_.data());
    return std::memcmp(readback_.data(), shadow_.data(), shadow_.size()) == 0;
  }

 private:
  void check_data_read(const rpmb::Frame& request, const rpmb::Frame* out, std::size_t count) {
    const bool key_programmed = engine_.state().key_programmed;
    const bool in_range = std::uint64_t{request.address()} + count <= half_sectors();
    for (std::size_t i = 0; i < count; ++i) {
      require(out[i].type() == type_value(rpmb::ResponseType::authenticated_read));
      require(out[i].nonce() == request.nonce());
    }
    const std::uint16_t result = out[0].result() & kResultMask;
    if (!key_programmed) {
      require(result == code(rpmb::ResultCode::key_not_programmed));
      return;
    }
    if (!in_range) {
      require(result == code(rpmb::ResultCode::address_failure));
      return;
    }
    require(result == code(rpmb::ResultCode::ok));
    require(host_authenticator_->verify(out, count));
    for (std::size_t i = 0; i < count; ++i) {
      const std::size_t offset = (std::size_t{request.address()} + i) * rpmb::kHalfSectorSize;
      require(std::memcmp(out[i].data(), shadow_.data() + offset, rpmb::kHalfSectorSize) == 0);
    }
  }

  void check_single_frame_read(const rpmb::Frame& request, const rpmb::Frame* out, std::size_t count,
                               rpmb::ResponseType response_type) {
    require(out[0].type() == type_value(response_type));
    if (count != 1) {
      require((out[0].result() & kResultMask) == code(rpmb::ResultCode::general_failure));
      return;
    }
    require(out[0].nonce() == request.nonce());
    if (!engine_.state().key_programmed) {
      require((out[0].result() & kResultMask) == code(rpmb::ResultCode::key_not_programmed));
      return;
    }
    require((out[0].result() & kResultMask) == code(rpmb::ResultCode::ok));
    require(host_authenticator_->verify(out, 1));
  }

  static std::vector<std::uint8_t>& reused_buffer(std::size_t which) {
    static std::vector<std::uint8_t> buffers[2];
    return buffers[which];
  }

  ObservedStore store_;
  rpmb::Engine engine_;
  std::vector<std::uint8_t>& shadow_;                           // what the partition must hold
  std::vector<std::uint8_t>& readback_;                         // the partition as the store reports it
  std::optional<rpmb::FrameAuthenticator> host_authenticator_;  // keyed with the device's key
  std::optional<rpmb::Frame> pending_read_;                     // the read-type request in flight
};

// Frame shape bits (see the input format above).
constexpr std::uint8_t kShapeTypeMask = 0x07;
constexpr std::uint8_t kShapeCounter = 0x08;
constexpr std::uint8_t kShapeBlockCount = 0x10;
constexpr std::uint8_t kShapeAddress = 0x20;
constexpr std::uint8_t kShapeAgree = 0x40;
constexpr std::uint8_t kShapeSign = 0x80;

void run_write_request(Harness& harness, InputReader& input, rpmb::Frame* frames) {
  const std::uint8_t flags = input.byte();
  const bool reliable = (flags & 1) != 0;
  const std::size_t count = 1 + (flags >> 1) % kMaxRequestFrames;
  const std::uint8_t shape = input.byte();
  std::uint16_t address = 0;
  if ((shape & kShapeAddress) != 0) {
    address = static_cast<std::uint16_t>(input.u16() % (harness.half_sectors() + 8));
  }
  for (std::size_t i = 0; i < count; ++i) {
    frames[i] = rpmb::Frame();
    const std::size_t length = input.u16() % (rpmb::kFrameSize + 1);
    input.copy(frames[i].bytes() + rpmb::kFrameSize - length, length);
  }
  for (std::size_t i = 0; i < count; ++i) {
    rpmb::Frame& frame = frames[i];
    if ((shape & kShapeTypeMask) != 0) frame.set_type(shape & kShapeTypeMask);
    if ((shape & kShapeCounter) != 0) frame.set_write_counter(harness.write_counter());
    if ((shape & kShapeBlockCount) != 0) frame.set_block_count(static_cast<std::uint16_t>(count));
    if ((shape & kShapeAddress) != 0) frame.set_address(address);
    if ((shape & kShapeAgree) != 0 && i > 0) {
      frame.set_type(frames[0].type());
      frame.set_write_counter(frames[0].write_counter());
      frame.set_address(frames[0].address());
      frame.set_block_count(frames[0].block_count());
    }
  }
  if ((shape & kShapeSign) != 0) {
    if (frames[0].type() == type_value(rpmb::RequestType::program_key)) {
      frames[0].set_key(harness_key());
    } else {
      frames[count - 1].set_mac(harness.host_mac(frames, count));
    }
  }
  harness.write_request(frames, count, reliable);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static std::vector<rpmb::Frame> request_frames(kMaxRequestFrames);
  static std::vector<rpmb::Frame> response_frames(kMaxResponseFrames);

  InputReader input(data, size);
  const std::uint8_t header = input.byte();
  const std::uint32_t size_mult = 1 + (header & 0x03);
  rpmb::EngineConfig config;
  config.en_rpmb_rel_wr = (header & 0x04) != 0;
  rpmb::PartitionState initial;
  if ((header & 0x08) != 0) {
    initial.key_programmed = true;
    initial.key = harness_key();
  }
  if ((header & 0x10) != 0) initial.write_counter = rpmb::kCounterMax - ((header >> 5) & 0x03);

  Harness harness(size_mult, config, initial);
  for (std::size_t step = 0; step < kMaxOperations && !input.empty(); ++step) {
    const std::uint8_t operation = input.byte();
    if ((operation & 1) != 0) {
      const std::size_t count = 1 + input.byte() % kMaxResponseFrames;
      harness.read_response(response_frames.data(), count);
    } else {
      run_write_request(harness, input, request_frames.data());
    }
  }
  require(harness.state_matches_shadow());
  return 0;
}
