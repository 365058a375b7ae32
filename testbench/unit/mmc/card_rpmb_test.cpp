// RPMB through mmc::Card, frame by frame, with the raw bus commands the real clients send:
// CMD6 PARTITION_CONFIG to the RPMB partition, CMD23 (count | reliable << 31) + CMD25 request
// frames, CMD23 + CMD18 response frames, CMD13 polls, CMD6 back to the user area.
//
// The sequences are those of mmc-utils (`mmc rpmb write-key | read-counter | write-block |
// read-block`), OP-TEE's tee-supplicant (result read under CMD23 = N) and the known-answer
// walkthrough of ../shared/vectors/rpmb_kat.json. Expected response frames are built here from
// the frame layout of ../shared/spec/rpmb.md and compared byte for byte.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "card_harness.hpp"
#include "emmcsim/mmc/card.hpp"
#include "emmcsim/mmc/host_bus.hpp"
#include "emmcsim/mmc/host_sequences.hpp"
#include "emmcsim/mmc/image.hpp"
#include "emmcsim/mmc/protocol.hpp"
#include "emmcsim/rpmb/engine.hpp"
#include "emmcsim/rpmb/frame.hpp"
#include "emmcsim/rpmb/host.hpp"
#include "emmcsim/rpmb/mac.hpp"
#include "emmcsim/rpmb/protocol.hpp"
#include "emmcsim/rpmb/store.hpp"

namespace emmcsim::mmc {
namespace {

using rpmb::Frame;
using rpmb::Key;
using rpmb::Nonce;
using testing::CardHarness;
using testing::kTestRca;
using testing::small_config;

namespace st = status;
namespace ec = ext_csd;

constexpr std::uint32_t kRcaArg = rca_arg(kTestRca);
constexpr std::uint32_t kReliableWrite = set_block_count::kReliableWrite;
constexpr std::uint16_t kHalf = static_cast<std::uint16_t>(rpmb::kHalfSectorSize);

// Request types as the clients' C code spells them (numbers, not the project's enums).
constexpr std::uint16_t kReqProgramKey = 0x0001;
constexpr std::uint16_t kReqReadCounter = 0x0002;
constexpr std::uint16_t kReqWrite = 0x0003;
constexpr std::uint16_t kReqRead = 0x0004;
constexpr std::uint16_t kReqResultRead = 0x0005;
constexpr std::uint16_t kReqConfigWrite = 0x0006;
constexpr std::uint16_t kRespProgramKey = 0x0100;
constexpr std::uint16_t kRespReadCounter = 0x0200;
constexpr std::uint16_t kRespWrite = 0x0300;
constexpr std::uint16_t kRespRead = 0x0400;

// ---------------------------------------------------------------------------------------------
// Test data

Key make_key(std::uint8_t seed) {
  Key k{};
  for (std::size_t i = 0; i < k.size(); ++i) k[i] = static_cast<std::uint8_t>(seed + 3 * i);
  return k;
}

Nonce make_nonce(std::uint8_t seed) {
  Nonce n{};
  for (std::size_t i = 0; i < n.size(); ++i) n[i] = static_cast<std::uint8_t>(seed ^ (0x11 * i));
  return n;
}

// `half_sectors` × 256 bytes, different in every half-sector and every seed.
std::vector<std::uint8_t> pattern(std::size_t half_sectors, std::uint8_t seed) {
  std::vector<std::uint8_t> out(half_sectors * rpmb::kHalfSectorSize);
  for (std::size_t i = 0; i < out.size(); ++i)
    out[i] = static_cast<std::uint8_t>(seed + 7 * (i / rpmb::kHalfSectorSize) + (i * 13) % 251);
  return out;
}

std::vector<std::uint8_t> from_hex(const std::string& hex) {
  if (hex.size() % 2 != 0) throw std::invalid_argument("odd-length hex string");
  std::vector<std::uint8_t> out(hex.size() / 2);
  for (std::size_t i = 0; i < out.size(); ++i)
    out[i] = static_cast<std::uint8_t>(std::stoul(hex.substr(2 * i, 2), nullptr, 16));
  return out;
}

Nonce nonce_of(const std::string& hex) {
  const std::vector<std::uint8_t> bytes = from_hex(hex);
  if (bytes.size() != rpmb::kNonceSize) throw std::invalid_argument("a nonce is 16 bytes");
  Nonce n{};
  std::copy(bytes.begin(), bytes.end(), n.begin());
  return n;
}

Frame frame_from_hex(const std::string& hex) {
  const std::vector<std::uint8_t> bytes = from_hex(hex);
  if (bytes.size() != rpmb::kFrameSize) throw std::invalid_argument("a frame is 512 bytes");
  return Frame::from_bytes(bytes.data());
}

// ---------------------------------------------------------------------------------------------
// Request frames, built field by field as mmc-utils' and OP-TEE's C code does.

Frame key_frame(const Key& key) {
  Frame f;
  std::copy(key.begin(), key.end(), f.bytes() + 196);
  f.set_type(kReqProgramKey);
  return f;
}

Frame counter_request(const Nonce& nonce) {
  Frame f;
  std::copy(nonce.begin(), nonce.end(), f.bytes() + 484);
  f.set_type(kReqReadCounter);
  return f;
}

Frame result_request() {
  Frame f;
  f.set_type(kReqResultRead);
  return f;
}

// Block count 0, as mmc-utils, OP-TEE and U-Boot send it: N comes from the CMD23 of the CMD18.
Frame read_request(std::uint16_t address, const Nonce& nonce) {
  Frame f;
  std::copy(nonce.begin(), nonce.end(), f.bytes() + 484);
  f.set_address(address);
  f.set_block_count(0);
  f.set_type(kReqRead);
  return f;
}

// A signed authenticated write of data.size() / 256 frames; the MAC in the last frame.
std::vector<Frame> write_request(const Key& key, std::uint16_t address, std::uint32_t counter,
                                 const std::vector<std::uint8_t>& data) {
  const std::size_t n = data.size() / rpmb::kHalfSectorSize;
  std::vector<Frame> frames(n);
  for (std::size_t i = 0; i < n; ++i) {
    Frame& f = frames[i];
    std::copy_n(data.begin() + static_cast<long>(i * rpmb::kHalfSectorSize), rpmb::kHalfSectorSize, f.bytes() + 228);
    f.set_write_counter(counter);
    f.set_address(address);
    f.set_block_count(static_cast<std::uint16_t>(n));
    f.set_type(kReqWrite);
  }
  frames.back().set_mac(rpmb::frames_mac(key, frames.data(), frames.size()));
  return frames;
}

// ---------------------------------------------------------------------------------------------
// Expected responses, from the frame layout: zero stuff bytes, and only the fields named.

Frame expected_result_response(std::uint16_t type, std::uint16_t result, std::uint32_t counter, std::uint16_t address,
                               const std::optional<Key>& key) {
  Frame f;
  f.set_type(type);
  f.set_result(result);
  f.set_write_counter(counter);
  f.set_address(address);
  if (key) f.set_mac(rpmb::frames_mac(*key, &f, 1));
  return f;
}

Frame expected_counter_response(std::uint32_t counter, const Nonce& nonce, const Key& key) {
  Frame f;
  f.set_type(kRespReadCounter);
  f.set_result(0);
  f.set_write_counter(counter);
  f.set_nonce(nonce);
  f.set_mac(rpmb::frames_mac(key, &f, 1));
  return f;
}

std::vector<Frame> expected_read_response(std::uint16_t address, const Nonce& nonce,
                                          const std::vector<std::uint8_t>& data, const Key& key) {
  const std::size_t n = data.size() / rpmb::kHalfSectorSize;
  std::vector<Frame> frames(n);
  for (std::size_t i = 0; i < n; ++i) {
    Frame& f = frames[i];
    f.set_data(data.data() + i * rpmb::kHalfSectorSize);
    f.set_nonce(nonce);
    f.set_address(address);
    f.set_block_count(static_cast<std::uint16_t>(n));
    f.set_result(0);
    f.set_type(kRespRead);
  }
  frames.back().set_mac(rpmb::frames_mac(key, frames.data(), frames.size()));
  return frames;
}

// Names the differing bytes by field, for readable failures.
std::string field_at(std::size_t offset) {
  if (offset < 196) return "stuff";
  if (offset < 228) return "key/MAC";
  if (offset < 484) return "data";
  if (offset < 500) return "nonce";
  if (offset < 504) return "write counter";
  if (offset < 506) return "address";
  if (offset < 508) return "block count";
  if (offset < 510) return "result";
  return "type";
}

// Byte-for-byte comparison; `care` (optional) masks the offsets the expectation defines.
::testing::AssertionResult same_frame(const Frame& actual, const Frame& expected,
                                      const std::vector<bool>* care = nullptr) {
  std::ostringstream diff;
  int differences = 0;
  for (std::size_t i = 0; i < rpmb::kFrameSize; ++i) {
    if (care != nullptr && !(*care)[i]) continue;
    if (actual.bytes()[i] != expected.bytes()[i]) {
      if (++differences <= 8)
        diff << "\n  offset " << i << " (" << field_at(i) << "): got 0x" << std::hex << int{actual.bytes()[i]}
             << ", want 0x" << int{expected.bytes()[i]} << std::dec;
    }
  }
  if (differences == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << differences << " byte(s) differ" << diff.str();
}

// ---------------------------------------------------------------------------------------------
// The host side of the bus: commands as a host driver issues them, every response checked.

struct Burst {
  CommandOutcome cmd23;
  CommandOutcome cmd25;
  std::size_t accepted = 0;  // blocks with CRC status "accepted"
  BlockOutcome last;         // the block that ended the burst
  WorkReport work;           // every block's work
};

class RpmbBus {
 public:
  explicit RpmbBus(Card& card) : card_(card) {}

  CommandOutcome cmd(std::uint8_t index, std::uint32_t arg = 0) { return card_.execute({index, arg}); }
  std::uint32_t status() { return cmd(13, kRcaArg).response.value; }

  // Linux's busy detection: CMD13 until tran with READY_FOR_DATA. Returns the OR of every
  // status seen (so sticky error bits reach the caller).
  std::uint32_t wait_tran() {
    std::uint32_t seen = 0;
    for (int i = 0; i < 100; ++i) {
      const CommandOutcome o = cmd(13, kRcaArg);
      EXPECT_EQ(o.response.type, ResponseType::r1);
      seen |= o.response.value;
      if (st::current_state(o.response.value) == static_cast<std::uint32_t>(CardState::tran) &&
          (o.response.value & st::kReadyForData) != 0)
        return seen;
    }
    ADD_FAILURE() << "the card never returned to tran; last status " << describe_status(status());
    return seen;
  }

  // CMD6 PARTITION_CONFIG (EXT_CSD[179]) PARTITION_ACCESS = the partition, cmd set 1 as Linux
  // sends (0x03B30301 for RPMB), then CMD13 until tran.
  CommandOutcome select(Partition p) {
    const std::uint32_t arg =
        switch_arg(SwitchAccess::write_byte, ec::kPartitionConfig, ec::partition_config::value(p), 1);
    const CommandOutcome o = cmd(6, arg);
    EXPECT_EQ(o.response.type, ResponseType::r1b) << "CMD6 to " << partition_name(p);
    EXPECT_EQ(o.response.value & st::kAnyError, 0u) << describe_status(o.response.value);
    const std::uint32_t seen = wait_tran();
    EXPECT_EQ(seen & st::kSwitchError, 0u) << "SWITCH_ERROR after CMD6 to " << partition_name(p);
    EXPECT_EQ(card_.current_partition(), p);
    return o;
  }
  void enter() { select(Partition::rpmb); }
  void leave() { select(Partition::user); }

  // CMD23 (count | reliable << 31) + CMD25, the frames as 512-byte blocks, CMD13 until tran.
  Burst send(const std::vector<Frame>& frames, bool reliable) {
    Burst b;
    const auto count = static_cast<std::uint32_t>(frames.size());
    b.cmd23 = cmd(23, count | (reliable ? kReliableWrite : 0u));
    EXPECT_EQ(b.cmd23.response.type, ResponseType::r1);
    EXPECT_EQ(b.cmd23.response.value & st::kAnyError, 0u) << describe_status(b.cmd23.response.value);
    b.cmd25 = cmd(25, 0);
    EXPECT_EQ(b.cmd25.response.type, ResponseType::r1);
    EXPECT_EQ(b.cmd25.response.value & st::kAnyError, 0u) << describe_status(b.cmd25.response.value);
    EXPECT_EQ(b.cmd25.data.direction, DataDirection::to_card);
    EXPECT_EQ(b.cmd25.data.block_size, 512u);
    EXPECT_EQ(b.cmd25.data.blocks, count);
    for (std::size_t i = 0; i < frames.size(); ++i) {
      b.last = card_.write_block(frames[i].bytes(), rpmb::kFrameSize);
      b.work += b.last.work;
      if (b.last.ok) ++b.accepted;
      EXPECT_EQ(b.last.transfer_complete, i + 1 == frames.size()) << "block " << i;
    }
    EXPECT_EQ(b.accepted, frames.size());
    const std::uint32_t seen = wait_tran();
    EXPECT_EQ(seen & st::kAnyError, 0u) << describe_status(seen);
    return b;
  }

  // CMD23 (n) + CMD18, n 512-byte blocks.
  std::vector<Frame> receive(std::uint16_t n) {
    const CommandOutcome c23 = cmd(23, n);
    EXPECT_EQ(c23.response.type, ResponseType::r1);
    EXPECT_EQ(c23.response.value & st::kAnyError, 0u) << describe_status(c23.response.value);
    const CommandOutcome c18 = cmd(18, 0);
    EXPECT_EQ(c18.response.type, ResponseType::r1);
    EXPECT_EQ(c18.response.value & st::kAnyError, 0u) << describe_status(c18.response.value);
    EXPECT_EQ(c18.data.direction, DataDirection::to_host);
    EXPECT_EQ(c18.data.block_size, 512u);
    EXPECT_EQ(c18.data.blocks, n);
    std::vector<Frame> out;
    std::vector<std::uint8_t> block(rpmb::kFrameSize);
    for (std::uint16_t i = 0; i < n; ++i) {
      const BlockOutcome b = card_.read_block(block.data(), block.size());
      EXPECT_TRUE(b.ok) << "response block " << i;
      if (!b.ok) break;
      EXPECT_EQ(b.transfer_complete, i + 1 == n) << "block " << i;
      out.push_back(Frame::from_bytes(block.data()));
    }
    const std::uint32_t seen = wait_tran();
    EXPECT_EQ(seen & st::kAnyError, 0u) << describe_status(seen);
    return out;
  }

  // --- The ioctls of mmc-utils, each one MULTI_CMD between the kernel's partition switches. ---

  // Write-type: CMD23|rel + CMD25 request; CMD23 1 + CMD25 result request; CMD23 1 + CMD18.
  Frame write_type(const std::vector<Frame>& request, Burst* burst = nullptr, std::size_t result_request_frames = 1) {
    enter();
    const Burst b = send(request, true);
    if (burst != nullptr) *burst = b;
    send(std::vector<Frame>(result_request_frames, result_request()), false);
    std::vector<Frame> response = receive(1);
    leave();
    return response.empty() ? Frame() : response.front();
  }

  // Read-type: CMD23 1 + CMD25 request; CMD23 n + CMD18.
  std::vector<Frame> read_type(const Frame& request, std::uint16_t n) {
    enter();
    send({request}, false);
    std::vector<Frame> response = receive(n);
    leave();
    return response;
  }

  Frame read_counter(const Nonce& nonce = {}) {
    const std::vector<Frame> r = read_type(counter_request(nonce), 1);
    return r.empty() ? Frame() : r.front();
  }

  // mmc-utils write-block: a read-counter ioctl, then the signed write.
  Frame write_block(const Key& key, std::uint16_t address, const std::vector<std::uint8_t>& data,
                    Burst* burst = nullptr) {
    const Frame counter = read_counter();
    EXPECT_EQ(counter.result(), 0);
    return write_type(write_request(key, address, counter.write_counter(), data), burst);
  }

 private:
  Card& card_;
};

// A card in tran on small_config (RPMB 512 KiB = 2048 half-sectors) unless told otherwise.
class CardRpmbTest : public ::testing::Test {
 protected:
  explicit CardRpmbTest(const DeviceConfig& config = small_config()) : h(config), bus(h.card()) {}
  void SetUp() override { ASSERT_NO_FATAL_FAILURE(h.identify_and_select()); }

  void program_key() {
    const Frame r = bus.write_type({key_frame(key)});
    ASSERT_TRUE(same_frame(r, expected_result_response(kRespProgramKey, 0, 0, 0, key)));
  }
  std::uint32_t counter() {
    const Frame r = bus.read_counter();
    EXPECT_EQ(r.type(), kRespReadCounter);
    EXPECT_EQ(r.result(), 0);
    return r.write_counter();
  }
  std::vector<std::uint8_t> rpmb_data(std::uint16_t address, std::uint16_t n) {
    const std::vector<Frame> r = bus.read_type(read_request(address, Nonce{}), n);
    std::vector<std::uint8_t> out;
    for (const Frame& f : r) {
      EXPECT_EQ(f.result(), 0);
      out.insert(out.end(), f.data(), f.data() + rpmb::kHalfSectorSize);
    }
    return out;
  }

  CardHarness h;
  RpmbBus bus;
  Key key = make_key(0x30);
};

// =============================================================================================
// mmc-utils

using CardRpmbMmcUtils = CardRpmbTest;

TEST_F(CardRpmbMmcUtils, WriteKeyAnswersProgramKeyResponseOk) {
  ASSERT_EQ(h.card().current_partition(), Partition::user);
  Burst key_burst;
  const Frame r = bus.write_type({key_frame(key)}, &key_burst);
  // type 0x0100, result 0, counter 0, address 0, no nonce, MAC with the new key.
  EXPECT_TRUE(same_frame(r, expected_result_response(kRespProgramKey, 0, 0, 0, key)));
  EXPECT_EQ(r.type(), 0x0100);
  EXPECT_EQ(r.result(), 0);
  EXPECT_NE(r.mac(), rpmb::Mac{}) << "the result response after key programming carries a MAC";
  EXPECT_GE(key_burst.last.work.rpmb_commits, 1u) << "the key is stored durably";
  EXPECT_EQ(h.card().current_partition(), Partition::user);
  EXPECT_EQ(h.card().state(), CardState::tran);
}

TEST_F(CardRpmbMmcUtils, WriteKeyTwiceIsAGeneralFailureAndKeepsTheFirstKey) {
  ASSERT_NO_FATAL_FAILURE(program_key());
  const Key other = make_key(0x77);
  const Frame r = bus.write_type({key_frame(other)});
  EXPECT_EQ(r.type(), kRespProgramKey);
  EXPECT_EQ(r.result(), 0x01);
  // The first key still signs: a counter read verifies with it, not with the second.
  const Nonce nonce = make_nonce(0x5C);
  const Frame c = bus.read_counter(nonce);
  EXPECT_TRUE(same_frame(c, expected_counter_response(0, nonce, key)));
}

TEST_F(CardRpmbMmcUtils, WriteKeyWithoutReliableWriteFlagIsAGeneralFailure) {
  bus.enter();
  bus.send({key_frame(key)}, false);  // CMD23 arg 1, no bit 31
  bus.send({result_request()}, false);
  const std::vector<Frame> r = bus.receive(1);
  bus.leave();
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].type(), kRespProgramKey);
  EXPECT_EQ(r[0].result(), 0x01);
  // No key was programmed: a counter read answers "key not programmed".
  const Frame c = bus.read_counter();
  EXPECT_EQ(c.type(), kRespReadCounter);
  EXPECT_EQ(c.result(), 0x07);
}

TEST_F(CardRpmbMmcUtils, ReadCounterBeforeTheKeyIsKeyNotProgrammed) {
  const Frame c = bus.read_counter(make_nonce(0x21));
  EXPECT_EQ(c.type(), kRespReadCounter);
  EXPECT_EQ(c.result(), 0x07);
  EXPECT_EQ(c.mac(), rpmb::Mac{}) << "no key, no MAC";
}

TEST_F(CardRpmbMmcUtils, ReadCounterEchoesTheNonceAndSignsTheResponse) {
  ASSERT_NO_FATAL_FAILURE(program_key());
  const Nonce nonce = make_nonce(0xA7);
  const Frame c = bus.read_counter(nonce);
  EXPECT_TRUE(same_frame(c, expected_counter_response(0, nonce, key)));
  EXPECT_EQ(c.nonce(), nonce);
  // A different nonce gives a different response (the nonce is echoed, not remembered).
  const Nonce nonce2 = make_nonce(0x3B);
  EXPECT_TRUE(same_frame(bus.read_counter(nonce2), expected_counter_response(0, nonce2, key)));
}

TEST_F(CardRpmbMmcUtils, WriteBlockIncrementsTheCounterAndTheResultMacVerifies) {
  ASSERT_NO_FATAL_FAILURE(program_key());
  const std::vector<std::uint8_t> first = pattern(1, 0x10);
  const Frame r1 = bus.write_block(key, 9, first);
  EXPECT_TRUE(same_frame(r1, expected_result_response(kRespWrite, 0, 1, 9, key)));
  EXPECT_TRUE(rpmb::FrameAuthenticator(key).verify(&r1, 1));
  EXPECT_FALSE(rpmb::FrameAuthenticator(make_key(0x31)).verify(&r1, 1)) << "a MAC with another key";
  EXPECT_EQ(counter(), 1u);

  const std::vector<std::uint8_t> second = pattern(1, 0x20);
  const Frame r2 = bus.write_block(key, 10, second);
  EXPECT_TRUE(same_frame(r2, expected_result_response(kRespWrite, 0, 2, 10, key)));
  EXPECT_EQ(counter(), 2u);

  EXPECT_EQ(rpmb_data(9, 1), first);
  EXPECT_EQ(rpmb_data(10, 1), second);
}

TEST_F(CardRpmbMmcUtils, WriteBlockUnderAStaleCounterIsACounterFailure) {
  ASSERT_NO_FATAL_FAILURE(program_key());
  const std::vector<std::uint8_t> data = pattern(1, 0x40);
  ASSERT_EQ(bus.write_block(key, 4, data).result(), 0);
  // The same signed frame again (counter 0): replay.
  const Frame r = bus.write_type(write_request(key, 4, 0, pattern(1, 0x41)));
  EXPECT_TRUE(same_frame(r, expected_result_response(kRespWrite, 0x03, 1, 4, key)));
  EXPECT_EQ(counter(), 1u);
  EXPECT_EQ(rpmb_data(4, 1), data);
}

TEST_F(CardRpmbMmcUtils, ReadBlockOfOneHalfSector) {
  ASSERT_NO_FATAL_FAILURE(program_key());
  const std::vector<std::uint8_t> data = pattern(1, 0x55);
  ASSERT_EQ(bus.write_block(key, 21, data).result(), 0);
  const Nonce nonce = make_nonce(0x99);
  const std::vector<Frame> r = bus.read_type(read_request(21, nonce), 1);
  const std::vector<Frame> want = expected_read_response(21, nonce, data, key);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_TRUE(same_frame(r[0], want[0]));
}

TEST_F(CardRpmbMmcUtils, ReadBlockOfFourHalfSectorsMacInTheLastFrameOverAllFour) {
  ASSERT_NO_FATAL_FAILURE(program_key());
  // Four half-sectors at 20..23, written as two 2-frame writes.
  const std::vector<std::uint8_t> low = pattern(2, 0x61);
  const std::vector<std::uint8_t> high = pattern(2, 0x83);
  ASSERT_EQ(bus.write_type(write_request(key, 20, counter(), low)).result(), 0);
  ASSERT_EQ(bus.write_type(write_request(key, 22, counter(), high)).result(), 0);
  std::vector<std::uint8_t> all = low;
  all.insert(all.end(), high.begin(), high.end());

  const Nonce nonce = make_nonce(0x4E);
  const std::vector<Frame> r = bus.read_type(read_request(20, nonce), 4);
  ASSERT_EQ(r.size(), 4u);
  const std::vector<Frame> want = expected_read_response(20, nonce, all, key);
  for (std::size_t i = 0; i < 4; ++i) {
    EXPECT_TRUE(same_frame(r[i], want[i])) << "frame " << i;
    EXPECT_TRUE(std::equal(r[i].data(), r[i].data() + kHalf, all.begin() + static_cast<long>(i * kHalf)))
        << "frame " << i;
  }
  for (std::size_t i = 0; i < 3; ++i) EXPECT_EQ(r[i].mac(), rpmb::Mac{}) << "frame " << i << " carries no MAC";
  EXPECT_TRUE(rpmb::FrameAuthenticator(key).verify(r.data(), 4));
  EXPECT_FALSE(rpmb::FrameAuthenticator(key).verify(&r[3], 1)) << "the MAC covers all four frames";
}

TEST_F(CardRpmbMmcUtils, ReadBlockPastTheEndIsAnAddressFailure) {
  ASSERT_NO_FATAL_FAILURE(program_key());
  // 512 KiB = 2048 half-sectors: 2046 + 4 runs past the end.
  const std::vector<Frame> r = bus.read_type(read_request(2046, Nonce{}), 4);
  ASSERT_EQ(r.size(), 4u);
  for (const Frame& f : r) {
    EXPECT_EQ(f.type(), kRespRead);
    EXPECT_EQ(f.result(), 0x04);
    EXPECT_TRUE(std::all_of(f.data(), f.data() + kHalf, [](std::uint8_t b) { return b == 0; }));
  }
  // The last two half-sectors themselves are readable.
  EXPECT_EQ(rpmb_data(2046, 2), std::vector<std::uint8_t>(2 * kHalf, 0));
}

// =============================================================================================
// OP-TEE tee-supplicant

using CardRpmbOpTee = CardRpmbTest;

TEST_F(CardRpmbOpTee, ResultReadUnderTheWritesFrameCountAnswersTheWrite) {
  ASSERT_NO_FATAL_FAILURE(program_key());
  const std::vector<std::uint8_t> data = pattern(2, 0xC1);
  const std::vector<Frame> write = write_request(key, 30, counter(), data);

  // CMD23|rel 2 + CMD25 (2 frames); CMD23 2 + CMD25 (2 result-read frames); CMD23 1 + CMD18.
  bus.enter();
  const Burst w = bus.send(write, true);
  const Burst rr = bus.send(std::vector<Frame>(2, result_request()), false);
  EXPECT_EQ(rr.cmd25.data.blocks, 2u);
  const std::vector<Frame> response = bus.receive(1);
  bus.leave();
  ASSERT_EQ(response.size(), 1u);
  EXPECT_TRUE(same_frame(response[0], expected_result_response(kRespWrite, 0, 1, 30, key)));
  EXPECT_GE(w.last.work.hmac_frames, 2u);
  EXPECT_GE(w.last.work.rpmb_commits, 1u);

  // The card passes the frames through unchanged: an engine on its own store, given the same
  // bursts, answers the same bytes.
  rpmb::MemoryStore store(static_cast<std::uint32_t>(small_config().rpmb_size / rpmb::kSizeMultUnit));
  rpmb::Engine engine(store, rpmb::EngineConfig{small_config().en_rpmb_rel_wr});
  const Frame kf = key_frame(key);
  engine.write_request(&kf, 1, true);
  engine.write_request(write.data(), write.size(), true);
  const std::vector<Frame> result_requests(2, result_request());
  engine.write_request(result_requests.data(), result_requests.size(), false);
  Frame reference;
  engine.read_response(&reference, 1);
  EXPECT_TRUE(same_frame(response[0], reference));

  // OP-TEE reads back with a random nonce and checks the echo and the MAC.
  const Nonce nonce = make_nonce(0xE3);
  const std::vector<Frame> back = bus.read_type(read_request(30, nonce), 2);
  ASSERT_EQ(back.size(), 2u);
  const std::vector<Frame> want = expected_read_response(30, nonce, data, key);
  EXPECT_TRUE(same_frame(back[0], want[0]));
  EXPECT_TRUE(same_frame(back[1], want[1]));
}

TEST_F(CardRpmbOpTee, RejectedTwoFrameWriteIsReportedUnderCountTwoAsWell) {
  ASSERT_NO_FATAL_FAILURE(program_key());
  std::vector<Frame> write = write_request(key, 30, counter(), pattern(2, 0xC2));
  write[0].bytes()[300] ^= 0x01;  // a data bit of the first frame: the MAC no longer matches
  const Frame r = bus.write_type(write, nullptr, 2);
  EXPECT_TRUE(same_frame(r, expected_result_response(kRespWrite, 0x02, 0, 30, key)));
  EXPECT_EQ(counter(), 0u);
}

// =============================================================================================
// Known-answer walkthrough (../shared/vectors/rpmb_kat.json) through the card

using nlohmann::json;

const json& kat_vectors() {
  static const json v = [] {
    std::ifstream in(EMMCSIM_KAT_PATH);
    if (!in) throw std::runtime_error(std::string("cannot open ") + EMMCSIM_KAT_PATH);
    return json::parse(in);
  }();
  return v;
}

DeviceConfig config_with_rpmb_mult(std::uint32_t mult) {
  DeviceConfig c = small_config();
  c.rpmb_size = std::uint64_t{mult} * rpmb::kSizeMultUnit;
  return c;
}

TEST(CardRpmbKnownAnswer, BlankDeviceWalkthroughFrameByFrame) {
  const json& scenario = kat_vectors().at("scenarios").at(0);
  CardHarness h(config_with_rpmb_mult(scenario.at("rpmb_size_mult").get<std::uint32_t>()));
  ASSERT_NO_FATAL_FAILURE(h.identify_and_select());
  RpmbBus bus(h.card());
  const std::vector<std::uint8_t> key_bytes = from_hex(scenario.at("key").get<std::string>());
  ASSERT_EQ(key_bytes.size(), rpmb::kKeySize);
  Key key{};
  std::copy(key_bytes.begin(), key_bytes.end(), key.begin());

  bool key_programmed = false;
  std::uint32_t device_counter = 0;  // as the vectors' expectations move it
  int steps = 0;
  for (const json& step : scenario.at("steps")) {
    const std::string name = step.at("do").get<std::string>();
    SCOPED_TRACE("step " + std::to_string(steps) + ": " + name);
    std::vector<Frame> request;
    for (const json& hex : step.at("frames")) request.push_back(frame_from_hex(hex.get<std::string>()));
    ASSERT_EQ(request.size(), step.at("cmd23").get<std::size_t>());
    const bool reliable = step.value("reliable", false);
    const bool result_read = step.value("then_result_read", false);
    const auto read_blocks = step.value("read_blocks", std::uint16_t{1});

    bus.enter();
    bus.send(request, reliable);
    std::vector<Frame> response;
    if (result_read) {
      bus.send({result_request()}, false);
      response = bus.receive(1);
    } else {
      response = bus.receive(read_blocks);
    }
    bus.leave();
    ASSERT_EQ(response.size(), result_read ? 1u : std::size_t{read_blocks});

    const json& expect = step.at("expect");
    const auto type = expect.at("type").get<std::uint16_t>();
    const auto result = expect.at("result").get<std::uint16_t>();
    const Frame& req = request.front();
    const bool is_read = !result_read && req.type() == kReqRead;
    if (result_read && req.type() == kReqProgramKey && result == 0) key_programmed = true;
    if (expect.contains("write_counter")) device_counter = expect["write_counter"].get<std::uint32_t>();

    // The expected frames: stuff, type and result always; the rest where the vector or the
    // spec defines it (other fields are masked and listed in `care`).
    std::vector<bool> care(rpmb::kFrameSize, false);
    auto define = [&care](std::size_t offset, std::size_t size) {
      std::fill(care.begin() + static_cast<long>(offset), care.begin() + static_cast<long>(offset + size), true);
    };
    define(0, 196);  // stuff bytes: zero
    define(508, 4);  // result, type
    std::vector<Frame> want(response.size());
    for (std::size_t i = 0; i < want.size(); ++i) {
      Frame& f = want[i];
      f.set_type(type);
      f.set_result(result);
      if (expect.contains("write_counter")) f.set_write_counter(device_counter);
      if (expect.contains("nonce")) f.set_nonce(nonce_of(expect["nonce"].get<std::string>()));
      if (expect.contains("address")) f.set_address(expect["address"].get<std::uint16_t>());
      if (expect.contains("data")) {
        const std::vector<std::uint8_t> d = from_hex(expect["data"].at(i).get<std::string>());
        ASSERT_EQ(d.size(), rpmb::kHalfSectorSize);
        f.set_data(d.data());
      }
    }
    if (expect.contains("write_counter")) define(500, 4);
    if (expect.contains("nonce")) define(484, 16);
    if (expect.contains("address")) define(504, 2);
    if (expect.contains("data")) {
      ASSERT_EQ(expect["data"].size(), response.size());
      define(228, 256);
    }
    if (result_read) {
      // The result register: the request's address, the device counter, no nonce, no data.
      for (Frame& f : want) {
        f.set_address(req.address());
        f.set_write_counter(device_counter);
      }
      define(228, 256 + 16 + 4 + 2);
    }
    if (is_read && result == 0) {
      // Every frame of a data read: the request's address and nonce, N from CMD23.
      for (Frame& f : want) {
        f.set_address(req.address());
        f.set_nonce(req.nonce());
        f.set_block_count(read_blocks);
      }
      define(484, 16);
      define(504, 4);
    }
    if (is_read) define(228, 256);  // a failed read carries no data either
    // MAC: in the last frame over all frames when the vector says valid, and in every result
    // read once the key exists; zero in every other frame, and zero without a key.
    const bool mac_expected = expect.value("mac", std::string()) == "valid" || (result_read && key_programmed);
    if (expect.contains("mac")) {
      ASSERT_EQ(expect["mac"], "valid");
    }
    if (mac_expected) {
      want.back().set_mac(rpmb::frames_mac(key, want.data(), want.size()));
      define(196, 32);
    } else if (!key_programmed) {
      define(196, 32);  // zero
    }
    for (std::size_t i = 0; i < response.size(); ++i) {
      if (mac_expected && i + 1 < response.size()) {
        EXPECT_EQ(response[i].mac(), rpmb::Mac{}) << "frame " << i << " carries no MAC";
      }
      std::vector<bool> frame_care = care;
      if (mac_expected && i + 1 < response.size()) std::fill(frame_care.begin() + 196, frame_care.begin() + 228, false);
      EXPECT_TRUE(same_frame(response[i], want[i], &frame_care)) << "frame " << i;
    }
    ++steps;
  }
  EXPECT_EQ(steps, 10);
  // Only the one good write moved the counter.
  const Frame c = bus.read_counter();
  EXPECT_TRUE(same_frame(c, expected_counter_response(1, Nonce{}, key)));
}

// =============================================================================================
// Card-level rules in the RPMB partition

using CardRpmbBusRules = CardRpmbTest;

TEST_F(CardRpmbBusRules, SingleBlockReadAndWriteAreIllegal) {
  ASSERT_NO_FATAL_FAILURE(program_key());
  bus.enter();
  for (std::uint8_t index : {std::uint8_t{17}, std::uint8_t{24}}) {
    SCOPED_TRACE("CMD" + std::to_string(index));
    const CommandOutcome o = bus.cmd(index, 0);
    EXPECT_EQ(o.response.type, ResponseType::none);
    EXPECT_TRUE(o.illegal);
    EXPECT_EQ(o.data.direction, DataDirection::none);
    EXPECT_EQ(h.card().state(), CardState::tran);
    // No data phase opened: a block offered now is refused.
    const Frame f = key_frame(make_key(0x90));
    EXPECT_FALSE(h.card().write_block(f.bytes(), rpmb::kFrameSize).ok);
    const std::uint32_t s = bus.status();
    EXPECT_NE(s & st::kIllegalCommand, 0u) << describe_status(s);
    EXPECT_EQ(st::current_state(s), static_cast<std::uint32_t>(CardState::tran));
    EXPECT_EQ(bus.status() & st::kIllegalCommand, 0u) << "ILLEGAL_COMMAND clears once reported";
  }
  bus.leave();
  EXPECT_EQ(counter(), 0u);
  // The key is unchanged: a signed write under it still succeeds.
  EXPECT_TRUE(same_frame(bus.write_block(key, 1, pattern(1, 1)), expected_result_response(kRespWrite, 0, 1, 1, key)));
}

TEST_F(CardRpmbBusRules, MultipleBlockCommandsWithoutCmd23AreIllegal) {
  ASSERT_NO_FATAL_FAILURE(program_key());
  bus.enter();
  for (std::uint8_t index : {std::uint8_t{25}, std::uint8_t{18}}) {
    SCOPED_TRACE("CMD" + std::to_string(index));
    const CommandOutcome o = bus.cmd(index, 0);
    EXPECT_EQ(o.response.type, ResponseType::none);
    EXPECT_TRUE(o.illegal);
    EXPECT_EQ(o.data.direction, DataDirection::none);
    EXPECT_EQ(h.card().state(), CardState::tran);
    const std::uint32_t s = bus.status();
    EXPECT_NE(s & st::kIllegalCommand, 0u) << describe_status(s);
  }
  // An open-ended CMD25 with frames offered anyway moves nothing.
  bus.cmd(25, 0);
  const std::vector<Frame> w = write_request(key, 2, 0, pattern(1, 2));
  EXPECT_FALSE(h.card().write_block(w[0].bytes(), rpmb::kFrameSize).ok);
  bus.status();
  bus.leave();
  EXPECT_EQ(counter(), 0u);
  EXPECT_EQ(rpmb_data(2, 1), std::vector<std::uint8_t>(kHalf, 0));
}

TEST_F(CardRpmbBusRules, Cmd12InTheMiddleOfATwoFrameWriteDropsTheBurst) {
  ASSERT_NO_FATAL_FAILURE(program_key());
  const std::vector<std::uint8_t> before = pattern(1, 0x70);
  ASSERT_EQ(bus.write_block(key, 7, before).result(), 0);  // result register: write, counter 1, address 7

  const std::vector<Frame> burst = write_request(key, 40, 1, pattern(2, 0x71));
  bus.enter();
  ASSERT_EQ(bus.cmd(23, 2u | kReliableWrite).response.type, ResponseType::r1);
  const CommandOutcome c25 = bus.cmd(25, 0);
  ASSERT_EQ(c25.data.direction, DataDirection::to_card);
  const BlockOutcome first = h.card().write_block(burst[0].bytes(), rpmb::kFrameSize);
  EXPECT_TRUE(first.ok);
  EXPECT_FALSE(first.transfer_complete);
  EXPECT_EQ(first.work.rpmb_commits, 0u);
  const CommandOutcome stop = bus.cmd(12, 0);
  EXPECT_EQ(stop.response.type, ResponseType::r1b);
  EXPECT_EQ(st::current_state(stop.response.value), static_cast<std::uint32_t>(CardState::rcv));
  EXPECT_EQ(stop.work.rpmb_commits, 0u);
  bus.wait_tran();
  // The second frame after CMD12 goes nowhere.
  EXPECT_FALSE(h.card().write_block(burst[1].bytes(), rpmb::kFrameSize).ok);
  // The result register still reports the write before.
  bus.send({result_request()}, false);
  const std::vector<Frame> r = bus.receive(1);
  bus.leave();
  ASSERT_EQ(r.size(), 1u);
  EXPECT_TRUE(same_frame(r[0], expected_result_response(kRespWrite, 0, 1, 7, key)));
  EXPECT_EQ(counter(), 1u);
  EXPECT_EQ(rpmb_data(40, 2), std::vector<std::uint8_t>(2 * kHalf, 0));
  EXPECT_EQ(rpmb_data(7, 1), before);
}

class CardRpmbReliableWriteParam : public CardRpmbTest, public ::testing::WithParamInterface<bool> {
 protected:
  static DeviceConfig config() {
    DeviceConfig c = small_config();
    c.en_rpmb_rel_wr = GetParam();
    return c;
  }
  CardRpmbReliableWriteParam() : CardRpmbTest(config()) {}
};

TEST_P(CardRpmbReliableWriteParam, ThirtyTwoFrameWriteFollowsEnRpmbRelWr) {
  const bool enabled = GetParam();
  // EXT_CSD[166] WR_REL_PARAM bit 4 says which rule applies.
  EXPECT_EQ((h.read_ext_csd()[ec::kWrRelParam] & ec::kWrRelParamEnRpmbRelWr) != 0, enabled);
  ASSERT_NO_FATAL_FAILURE(program_key());
  const std::vector<std::uint8_t> data = pattern(32, 0x0F);
  Burst burst;
  const Frame r = bus.write_type(write_request(key, 64, 0, data), &burst);
  EXPECT_EQ(burst.accepted, 32u);
  if (enabled) {
    EXPECT_TRUE(same_frame(r, expected_result_response(kRespWrite, 0, 1, 64, key)));
    EXPECT_EQ(counter(), 1u);
    EXPECT_EQ(rpmb_data(64, 32), data);
  } else {
    EXPECT_TRUE(same_frame(r, expected_result_response(kRespWrite, 0x01, 0, 64, key)));
    EXPECT_EQ(burst.last.work.rpmb_commits, 0u);
    EXPECT_EQ(counter(), 0u);
    EXPECT_EQ(rpmb_data(64, 2), std::vector<std::uint8_t>(2 * kHalf, 0));
  }
  // Two frames are allowed either way.
  const std::uint32_t now = counter();
  const Frame two = bus.write_type(write_request(key, 200, now, pattern(2, 0x1F)));
  EXPECT_TRUE(same_frame(two, expected_result_response(kRespWrite, 0, now + 1, 200, key)));
}

INSTANTIATE_TEST_SUITE_P(CardRpmbEnRpmbRelWr, CardRpmbReliableWriteParam, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& i) { return i.param ? "enabled" : "disabled"; });

TEST_F(CardRpmbBusRules, BackToTheUserAreaAlwaysWorksAndUserDataIsSeparate) {
  const std::vector<std::uint8_t> user(512, 0xAB);
  ASSERT_TRUE(h.write_sectors(0, user));
  bus.wait_tran();
  ASSERT_NO_FATAL_FAILURE(program_key());
  const std::vector<std::uint8_t> secret = pattern(2, 0xCD);
  ASSERT_EQ(bus.write_type(write_request(key, 0, 0, secret)).result(), 0);  // RPMB half-sectors 0..1

  // The user sector at the same offset still holds the user data.
  EXPECT_EQ(h.read_sectors(0, 1), user);
  bus.wait_tran();
  EXPECT_EQ(rpmb_data(0, 2), secret);

  // Back to the user area after an illegal command and after a rejected write.
  bus.enter();
  EXPECT_TRUE(bus.cmd(17, 0).illegal);
  EXPECT_NE(bus.status() & st::kIllegalCommand, 0u);  // the host's CMD13 after the timeout
  bus.leave();
  EXPECT_EQ(h.read_ext_csd()[ec::kPartitionConfig] & 7u, 0u);
  std::vector<Frame> bad = write_request(key, 0, 1, pattern(2, 0xEE));
  bad[1].bytes()[200] ^= 0x80;  // MAC
  EXPECT_EQ(bus.write_type(bad).result(), 0x02);
  EXPECT_EQ(h.card().current_partition(), Partition::user);
  EXPECT_EQ(h.read_ext_csd()[ec::kPartitionConfig] & 7u, 0u);
  // Sector-level writes in the user area do not reach RPMB data, and vice versa.
  ASSERT_TRUE(h.write_sectors(1, std::vector<std::uint8_t>(512, 0x11)));
  bus.wait_tran();
  EXPECT_EQ(h.read_sectors(0, 1), user);
  bus.wait_tran();
  EXPECT_EQ(rpmb_data(0, 2), secret);
  // While in RPMB, EXT_CSD shows access 3.
  bus.enter();
  EXPECT_EQ(h.read_ext_csd()[ec::kPartitionConfig] & 7u, 3u);
  bus.wait_tran();
  bus.leave();
}

TEST_F(CardRpmbBusRules, CounterKeyAndDataSurvivePowerCycleAndANewCard) {
  ASSERT_NO_FATAL_FAILURE(program_key());
  const std::vector<std::uint8_t> data = pattern(1, 0x3C);
  ASSERT_EQ(bus.write_block(key, 3, data).result(), 0);
  ASSERT_EQ(counter(), 1u);

  h.card().power_cycle();
  EXPECT_EQ(h.card().state(), CardState::idle);
  ASSERT_NO_FATAL_FAILURE(h.identify_and_select());
  EXPECT_EQ(h.card().current_partition(), Partition::user);
  const Nonce nonce = make_nonce(0x64);
  EXPECT_TRUE(same_frame(bus.read_counter(nonce), expected_counter_response(1, nonce, key)));
  EXPECT_EQ(rpmb_data(3, 1), data);
  // The key survived too: programming it again fails, a signed write under it succeeds.
  EXPECT_EQ(bus.write_type({key_frame(key)}).result(), 0x01);
  const std::vector<std::uint8_t> more = pattern(1, 0x3D);
  EXPECT_TRUE(same_frame(bus.write_block(key, 4, more), expected_result_response(kRespWrite, 0, 2, 4, key)));

  // A new Card on the same backend.
  Card second(h.card().config(), h.image().backend());
  CardHostBus second_bus(second);
  ASSERT_NO_THROW(identify_and_select(second_bus));
  RpmbBus bus2(second);
  EXPECT_TRUE(same_frame(bus2.read_counter(nonce), expected_counter_response(2, nonce, key)));
  const std::vector<Frame> back = bus2.read_type(read_request(3, nonce), 2);
  std::vector<std::uint8_t> both = data;
  both.insert(both.end(), more.begin(), more.end());
  const std::vector<Frame> want = expected_read_response(3, nonce, both, key);
  ASSERT_EQ(back.size(), 2u);
  EXPECT_TRUE(same_frame(back[0], want[0]));
  EXPECT_TRUE(same_frame(back[1], want[1]));
}

TEST_F(CardRpmbBusRules, DeviceConfigWriteShowsSecureWpEnInExtCsd) {
  const ExtCsd before = h.read_ext_csd();
  ASSERT_GE(before[ec::kExtCsdRev], 7u);
  EXPECT_EQ(before[ec::kSecureWpInfo] & 0x02u, 0u) << "SECURE_WP_EN_STATUS before any configuration";

  CardHostBus card_bus(h.card());
  RpmbBusChannel channel(card_bus, h.card().ext_csd()[ec::kPartitionConfig]);
  rpmb::Host host(channel, key);
  ASSERT_TRUE(host.program_key(key).ok());
  // Signed with another key: authentication failure, nothing set.
  rpmb::Host impostor(channel, make_key(0x01));
  const rpmb::HostResult rejected = impostor.config_write(rpmb::kConfigAddressSecureWpModeEnable, 1);
  EXPECT_EQ(rejected.result, 0x02);
  EXPECT_EQ(h.read_ext_csd()[ec::kSecureWpInfo] & 0x02u, 0u);
  EXPECT_EQ(h.card().current_partition(), Partition::user);

  const rpmb::HostResult r = host.config_write(rpmb::kConfigAddressSecureWpModeEnable, 1);
  EXPECT_TRUE(r.ok()) << rpmb::describe_result(r.result);
  EXPECT_EQ(r.response_type, 0x0600);
  EXPECT_EQ(r.write_counter, 1u);
  EXPECT_EQ(h.card().current_partition(), Partition::user);
  const ExtCsd after = h.read_ext_csd();
  EXPECT_NE(after[ec::kSecureWpInfo] & 0x02u, 0u) << "SECURE_WP_EN_STATUS after the configuration write";
  EXPECT_EQ(after[ec::kSecureWpInfo] & 0x01u, before[ec::kSecureWpInfo] & 0x01u) << "SECURE_WP_SUPPORT unchanged";
  const rpmb::HostResult cfg = host.config_read();
  EXPECT_TRUE(cfg.ok());
  ASSERT_EQ(cfg.data.size(), rpmb::kHalfSectorSize);
  EXPECT_EQ(cfg.data[rpmb::kConfigDataSecureWpModeEnable], 1u);
  // Durable: still set after a power cycle.
  h.card().power_cycle();
  ASSERT_NO_FATAL_FAILURE(h.identify_and_select());
  EXPECT_NE(h.read_ext_csd()[ec::kSecureWpInfo] & 0x02u, 0u);
}

TEST_F(CardRpmbBusRules, DeviceConfigWriteFrameAsUpstreamMmcUtilsBuildsIt) {
  ASSERT_NO_FATAL_FAILURE(program_key());
  // Address 1 (SECURE_WP_MODE_ENABLE), value in the last data byte, counter 0, block count 1.
  Frame f;
  f.bytes()[228 + 255] = 1;
  f.set_write_counter(0);
  f.set_address(1);
  f.set_block_count(1);
  f.set_type(kReqConfigWrite);
  f.set_mac(rpmb::frames_mac(key, &f, 1));
  Burst b;
  const Frame r = bus.write_type({f}, &b);
  EXPECT_TRUE(same_frame(r, expected_result_response(0x0600, 0, 1, 1, key)));
  EXPECT_GE(b.last.work.rpmb_commits, 1u);
  EXPECT_NE(h.read_ext_csd()[ec::kSecureWpInfo] & 0x02u, 0u);
}

TEST_F(CardRpmbBusRules, WorkReportsHmacAndCommitsOnlyForAcceptedWrites) {
  ASSERT_NO_FATAL_FAILURE(program_key());
  // Accepted 2-frame write: the last block's work covers the MAC over both frames and a commit.
  Burst ok;
  ASSERT_EQ(bus.write_type(write_request(key, 12, 0, pattern(2, 0x12)), &ok).result(), 0);
  EXPECT_GE(ok.last.work.hmac_frames, 2u);
  EXPECT_GE(ok.last.work.rpmb_commits, 1u);
  EXPECT_GE(ok.last.work.sectors_programmed, 1u);
  EXPECT_TRUE(ok.last.busy);

  // Single-frame accepted write.
  Burst one;
  ASSERT_EQ(bus.write_type(write_request(key, 14, 1, pattern(1, 0x14)), &one).result(), 0);
  EXPECT_GE(one.last.work.hmac_frames, 1u);
  EXPECT_GE(one.last.work.rpmb_commits, 1u);

  // Wrong MAC: no commit.
  std::vector<Frame> bad = write_request(key, 12, 2, pattern(2, 0x13));
  bad[1].bytes()[196] ^= 0x01;
  Burst rejected;
  const Frame r = bus.write_type(bad, &rejected);
  EXPECT_TRUE(same_frame(r, expected_result_response(kRespWrite, 0x02, 2, 12, key)));
  EXPECT_EQ(rejected.last.work.rpmb_commits, 0u);
  EXPECT_EQ(rejected.work.rpmb_commits, 0u);
  EXPECT_EQ(counter(), 2u);
  EXPECT_EQ(rpmb_data(12, 2), pattern(2, 0x12));

  // Wrong counter: no commit either.
  Burst stale;
  EXPECT_EQ(bus.write_type(write_request(key, 12, 1, pattern(2, 0x15)), &stale).result(), 0x03);
  EXPECT_EQ(stale.work.rpmb_commits, 0u);
}

}  // namespace
}  // namespace emmcsim::mmc
