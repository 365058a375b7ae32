// Randomized request sequences checked step by step against a small reference model of RPMB
// semantics written here, independently of the engine. Runs over the memory store and over the
// file store, which is closed and reopened at random points (a restart must keep everything
// that was committed).
#include <gtest/gtest.h>

#include <filesystem>
#include <random>

#include <fmt/format.h>

#include "emmcsim/rpmb/engine.hpp"
#include "emmcsim/rpmb/file_store.hpp"
#include "emmcsim/rpmb/host.hpp"
#include "emmcsim/rpmb/store.hpp"
#include "scratch_directory.hpp"
#include "test_support.hpp"

namespace emmcsim::rpmb {
namespace {

// What the partition must do, in the plainest terms.
struct ReferenceModel {
  std::uint32_t half_sectors;
  bool en_rpmb_rel_wr;
  bool key_programmed = false;
  Key key{};
  std::uint32_t counter = 0;
  std::vector<std::uint8_t> data;
  DeviceConfiguration config;
  std::uint16_t last_type = 0, last_result = 0, last_address = 0;
  std::uint32_t last_counter = 0;
  // The register as of the last accepted request (what survives a restart).
  std::uint16_t committed_type = 0, committed_result = 0, committed_address = 0;
  std::uint32_t committed_counter = 0;

  ReferenceModel(std::uint32_t hs, bool rel) : half_sectors(hs), en_rpmb_rel_wr(rel), data(hs * kHalfSectorSize) {}

  bool expired() const { return counter == 0xFFFFFFFF; }
  std::uint16_t flag(std::uint16_t r) const { return expired() ? (r | 0x80) : r; }

  void record(std::uint16_t type, std::uint16_t result, std::uint16_t address, bool accepted) {
    last_type = type;
    last_result = result;
    last_address = address;
    last_counter = counter;
    if (accepted) {
      committed_type = type;
      committed_result = result;
      committed_address = address;
      committed_counter = counter;
    }
  }
  void restart() {
    last_type = committed_type;
    last_result = committed_result;
    last_address = committed_address;
    last_counter = committed_counter;
  }

  void program_key(const Key& k, std::size_t n, bool reliable) {
    if (!reliable || n != 1 || key_programmed) return record(0x0100, flag(1), 0, false);
    key_programmed = true;
    key = k;
    record(0x0100, flag(0), 0, true);
  }

  void write(const std::vector<Frame>& frames, bool reliable, bool mac_ok) {
    const Frame& f = frames[0];
    const std::size_t n = frames.size();
    std::uint16_t r = 0;
    if (!key_programmed)
      r = 7;
    else if (expired())
      r = 5;
    else if (f.address() + n > half_sectors)
      r = 4;
    else if (!mac_ok)
      r = 2;
    else if (f.write_counter() != counter)
      r = 3;
    else if (!(n == 1 || n == 2 || (n == 32 && en_rpmb_rel_wr)) || f.block_count() != n || !reliable)
      r = 1;
    if (r != 0) return record(0x0300, flag(r), f.address(), false);
    for (std::size_t i = 0; i < n; ++i) {
      std::copy(frames[i].data(), frames[i].data() + kHalfSectorSize,
                data.begin() + static_cast<long>((f.address() + i) * kHalfSectorSize));
    }
    ++counter;
    record(0x0300, flag(0), f.address(), true);
  }

  void config_write(const Frame& f, bool reliable, bool mac_ok) {
    const std::uint8_t value = f.data()[255];
    std::uint16_t r = 0;
    if (!key_programmed)
      r = 7;
    else if (expired())
      r = 5;
    else if (f.address() != 1 && f.address() != 2)
      r = 4;
    else if (!mac_ok)
      r = 2;
    else if (f.write_counter() != counter)
      r = 3;
    else if (!reliable || value > 1)
      r = 1;
    if (r != 0) return record(0x0600, flag(r), f.address(), false);
    (f.address() == 1 ? config.secure_wp_mode_enable : config.secure_wp_mode_config) = value;
    ++counter;
    record(0x0600, flag(0), f.address(), true);
  }
};

void run_random_sequence(std::uint32_t seed, bool file_backed, std::uint32_t start_counter, int steps) {
  SCOPED_TRACE(fmt::format("seed {} file {} start {}", seed, file_backed, start_counter));
  std::mt19937 rng(seed);
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
  const bool rel = (seed & 1) != 0;
  const std::uint32_t size_mult = 1;
  ReferenceModel model(size_mult * 512, rel);

  PartitionState initial;
  initial.write_counter = start_counter;
  model.counter = start_counter;

  const emmcsim::testing::ScratchDirectory dir("emmcsim-refmodel");
  const std::string path = dir.file("rpmb.img");

  std::unique_ptr<Store> store;
  auto open_store = [&] {
    store.reset();
    if (!file_backed) {
      store = std::make_unique<MemoryStore>(size_mult, initial);
    } else if (!std::filesystem::exists(path)) {
      store = FileStore::create_at(path, size_mult, Durability::os_managed);
    } else {
      store = FileStore::open_at(path, Durability::os_managed);
    }
  };
  open_store();
  auto engine = std::make_unique<Engine>(*store, EngineConfig{rel});

  const Key key = test::test_key(static_cast<std::uint8_t>(seed));
  FrameAuthenticator auth(key);
  int accepted_writes = 0;

  for (int step = 0; step < steps; ++step) {
    SCOPED_TRACE(fmt::format("step {}", step));
    const int op = pick(100);
    if (op < 4) {  // (re)program the key, sometimes malformed
      const bool reliable = pick(4) != 0;
      const std::size_t n = pick(5) == 0 ? 2 : 1;
      // Once a key is in, try to replace it with another one: that must fail.
      const Key offered = model.key_programmed ? test::test_key(static_cast<std::uint8_t>(seed + 1)) : key;
      const std::vector<Frame> req(n, requests::program_key(offered));
      model.program_key(offered, n, reliable);
      engine->write_request(req.data(), n, reliable);
    } else if (op < 50) {  // authenticated write
      const std::size_t choices[] = {1, 1, 2, 2, 3, 32};
      const std::size_t n = choices[pick(6)];
      const std::uint16_t address = static_cast<std::uint16_t>(pick(10) == 0 ? 500 + pick(40) : pick(480));
      const std::uint32_t counter =
          pick(8) == 0 ? model.counter + 1 - static_cast<std::uint32_t>(pick(3)) : model.counter;
      const auto data = test::pattern(n, static_cast<std::uint8_t>(rng()));
      std::vector<Frame> req = requests::authenticated_write(address, counter, data.data(), n);
      if (pick(10) == 0) req[0].set_block_count(static_cast<std::uint16_t>(n + 1));
      requests::sign(auth, req);
      bool mac_ok = model.key_programmed;
      if (pick(8) == 0) {
        req.back().bytes()[Frame::kKeyMacOffset + static_cast<std::size_t>(pick(32))] ^= 0x10;
        mac_ok = false;
      }
      if (pick(12) == 0) {  // the host changes data after signing: the MAC must catch it
        req[0].data()[pick(256)] ^= 0x01;
        mac_ok = false;
      }
      const bool reliable = pick(15) != 0;
      model.write(req, reliable, mac_ok);
      engine->write_request(req.data(), n, reliable);
      if (model.last_result == 0 || model.last_result == 0x80) ++accepted_writes;
    } else if (op < 55) {  // device configuration write
      Frame f = requests::device_config_write(static_cast<std::uint16_t>(pick(4)), static_cast<std::uint8_t>(pick(3)),
                                              model.counter);
      std::vector<Frame> req{f};
      requests::sign(auth, req);
      const bool mac_ok = model.key_programmed;
      const bool reliable = pick(10) != 0;
      model.config_write(req[0], reliable, mac_ok);
      engine->write_request(req.data(), 1, reliable);
    } else if (op < 70) {                          // result read
      const std::size_t n = pick(4) == 0 ? 2 : 1;  // OP-TEE style under CMD23 = N
      const std::vector<Frame> req(n, requests::result_read());
      engine->write_request(req.data(), n, false);
      Frame out;
      engine->read_response(&out, 1);
      EXPECT_EQ(out.type(), model.last_type);
      EXPECT_EQ(out.result(), model.last_result);
      EXPECT_EQ(out.write_counter(), model.last_counter);
      EXPECT_EQ(out.address(), model.last_address);
      if (model.key_programmed) {
        EXPECT_TRUE(auth.verify(&out, 1));
      } else {
        EXPECT_EQ(out.mac(), Mac{});
      }
    } else if (op < 78) {  // counter read
      const Nonce nonce = {static_cast<std::uint8_t>(step), static_cast<std::uint8_t>(seed)};
      const auto out = test::exchange(*engine, {requests::read_counter(nonce)}, false, 1);
      EXPECT_EQ(out[0].result(), model.flag(model.key_programmed ? 0 : 7));
      EXPECT_EQ(out[0].nonce(), nonce);
      if (model.key_programmed) {
        EXPECT_EQ(out[0].write_counter(), model.counter);
        EXPECT_TRUE(auth.verify(out.data(), 1));
      }
    } else if (op < 92) {  // authenticated read of N frames
      const std::size_t n = 1 + static_cast<std::size_t>(pick(pick(5) == 0 ? 40 : 4));
      const std::uint16_t address = static_cast<std::uint16_t>(pick(10) == 0 ? 490 + pick(30) : pick(480));
      const auto out = test::exchange(*engine, {requests::authenticated_read(address, {})}, false, n);
      const std::uint16_t expected = model.flag(!model.key_programmed ? 7 : (address + n > model.half_sectors ? 4 : 0));
      for (std::size_t i = 0; i < n; ++i) {
        ASSERT_EQ(out[i].result(), expected);
        if ((expected & 0x7f) == 0) {
          ASSERT_TRUE(std::equal(out[i].data(), out[i].data() + kHalfSectorSize,
                                 model.data.begin() + static_cast<long>((address + i) * kHalfSectorSize)))
              << "half-sector " << address + i;
        }
      }
      if (model.key_programmed) {
        EXPECT_TRUE(auth.verify(out.data(), n));
      }
    } else if (op < 95) {  // device configuration read
      const auto out = test::exchange(*engine, {requests::device_config_read({})}, false, 1);
      if (model.key_programmed) {
        EXPECT_EQ(out[0].data()[255], model.config.secure_wp_mode_enable);
        EXPECT_EQ(out[0].data()[254], model.config.secure_wp_mode_config);
      }
    } else if (op < 97) {  // a response read with no request pending
      Frame out;
      engine->read_response(&out, 1);
      EXPECT_EQ(out.result(), model.flag(1));
    } else if (file_backed) {  // restart: close and reopen the image
      engine.reset();
      open_store();
      engine = std::make_unique<Engine>(*store, EngineConfig{rel});
      model.restart();
    }
    ASSERT_EQ(engine->state().write_counter, model.counter);
    ASSERT_EQ(engine->state().key_programmed, model.key_programmed);
  }
  // Every byte matches at the end.
  std::vector<std::uint8_t> all(model.data.size());
  store->read(0, model.half_sectors, all.data());
  EXPECT_EQ(all, model.data);
  EXPECT_GT(accepted_writes, start_counter == 0 ? 50 : 5) << "the sequence must exercise accepted writes";
  engine.reset();
  store.reset();
}

TEST(ReferenceModel, RandomSequencesOverTheMemoryStore) {
  for (std::uint32_t seed = 1; seed <= 8; ++seed) run_random_sequence(seed, false, 0, 1500);
}

TEST(ReferenceModel, RandomSequencesOverTheFileStoreWithRestarts) {
  for (std::uint32_t seed = 100; seed <= 103; ++seed) run_random_sequence(seed, true, 0, 1500);
}

TEST(ReferenceModel, RandomSequencesThroughCounterExpiry) {
  for (std::uint32_t seed = 200; seed <= 203; ++seed) run_random_sequence(seed, false, 0xFFFFFFF0u, 1500);
}

}  // namespace
}  // namespace emmcsim::rpmb
