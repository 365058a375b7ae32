// Adma2Descriptor and Adma2Walker: descriptor bytes as the SD Host Controller specification lays
// them out, and every way a descriptor table can be wrong turned into an error.
#include "emmcsim/models/adma2.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <vector>

namespace emmcsim::models {
namespace {

// A table in a byte array at address 0; `fetches` counts reads.
struct Memory {
  std::vector<std::uint8_t> bytes = std::vector<std::uint8_t>(4096);
  std::size_t reads = 0;
  void put(std::size_t index, const Adma2Descriptor& d) {
    const auto b = d.encode();
    std::memcpy(bytes.data() + 8 * index, b.data(), b.size());
  }
  Adma2Walker::ReadMemory reader() {
    return [this](std::uint64_t address, std::uint8_t* out, std::size_t length) {
      ++reads;
      if (address + length > bytes.size()) return false;
      std::memcpy(out, bytes.data() + address, length);
      return true;
    };
  }
};

Adma2Descriptor transfer(std::uint32_t address, std::uint32_t length, bool end = false, bool interrupt = false) {
  Adma2Descriptor d;
  d.valid = true;
  d.action = Adma2Action::transfer;
  d.address = address;
  d.length = length;
  d.end = end;
  d.interrupt = interrupt;
  return d;
}

Adma2Descriptor of(Adma2Action action, std::uint32_t address = 0, bool end = false) {
  Adma2Descriptor d;
  d.valid = true;
  d.action = action;
  d.address = address;
  d.end = end;
  return d;
}

TEST(Adma2Descriptor, BytesFollowTheSpecification) {
  // attr: valid | end | int | act=tran (0x20); length 0x0200; address 0x12345678.
  const std::array<std::uint8_t, 8> bytes = {0x27, 0x00, 0x00, 0x02, 0x78, 0x56, 0x34, 0x12};
  const Adma2Descriptor d = Adma2Descriptor::decode(bytes);
  EXPECT_TRUE(d.valid);
  EXPECT_TRUE(d.end);
  EXPECT_TRUE(d.interrupt);
  EXPECT_EQ(d.action, Adma2Action::transfer);
  EXPECT_EQ(d.length, 512u);
  EXPECT_EQ(d.address, 0x12345678u);
  EXPECT_EQ(d.encode(), bytes);
  const Adma2Descriptor link = Adma2Descriptor::decode({0x31, 0, 0, 0, 0, 0x10, 0, 0});
  EXPECT_EQ(link.action, Adma2Action::link);
  EXPECT_FALSE(link.end);
  EXPECT_EQ(link.address, 0x1000u);
}

TEST(Adma2Descriptor, ALengthOfZeroIs65536) {
  const Adma2Descriptor d = Adma2Descriptor::decode({0x21, 0, 0, 0, 0, 0, 0, 0});
  EXPECT_EQ(d.length, 65536u);
  EXPECT_EQ(d.encode()[2], 0);
  EXPECT_EQ(d.encode()[3], 0);
}

TEST(Adma2Descriptor, The64BitFormatsCarryTheUpperAddressHalf) {
  // Version 3's 12-byte and version 4's 16-byte descriptors: u16 attr, u16 length, u64 address,
  // and in the 16-byte one a reserved word.
  std::array<std::uint8_t, 16> bytes = {0x21, 0x00, 0x00, 0x10, 0x00, 0x20, 0x00, 0x00,
                                        0x34, 0x12, 0x00, 0x00, 0xEE, 0xEE, 0xEE, 0xEE};
  for (Adma2Format format : {Adma2Format::bits64, Adma2Format::bits64_v4}) {
    const Adma2Descriptor d = Adma2Descriptor::decode(bytes.data(), format);
    EXPECT_EQ(d.action, Adma2Action::transfer);
    EXPECT_EQ(d.length, 4096u);
    EXPECT_EQ(d.address, 0x1234'0000'2000u);
    std::array<std::uint8_t, 16> out{};
    out.fill(0x55);
    d.encode(out.data(), format);
    EXPECT_TRUE(std::equal(out.begin(), out.begin() + 12, bytes.begin()));
    if (format == Adma2Format::bits64_v4) {
      EXPECT_EQ(out[12], 0) << "the reserved word is written as 0";
    } else {
      EXPECT_EQ(out[12], 0x55) << "a 12-byte descriptor ends at 12";
    }
  }
  EXPECT_EQ(Adma2Descriptor::decode(bytes.data(), Adma2Format::bits32).address, 0x2000u);
}

TEST(Adma2Walker, Walks64BitTablesByTheirDescriptorSize) {
  for (Adma2Format format : {Adma2Format::bits64, Adma2Format::bits64_v4}) {
    const std::size_t size = Adma2Descriptor::size(format);
    Memory m;
    auto put = [&](std::size_t i, const Adma2Descriptor& d) { d.encode(m.bytes.data() + 0x100 + size * i, format); };
    put(0, transfer(0, 512));
    put(1, of(Adma2Action::nop));
    put(2, transfer(0, 512, true));
    Adma2Descriptor high = transfer(0, 512);
    high.address = 0x1'0000'0000;
    put(0, high);
    Adma2Descriptor last = transfer(0, 512, true);
    last.address = 0x2'0000'0200;
    put(2, last);
    Adma2Walker w(0x100, format, m.reader());
    const Adma2Walker::Step first = w.next(512);
    ASSERT_EQ(first.error, Adma2Error::none);
    EXPECT_EQ(first.address, 0x1'0000'0000u);
    const Adma2Walker::Step second = w.next(512);
    ASSERT_EQ(second.error, Adma2Error::none);
    EXPECT_EQ(second.address, 0x2'0000'0200u);
    EXPECT_TRUE(w.ended());
    EXPECT_EQ(w.descriptor_address(), 0x100 + 3 * size);
  }
}

TEST(Adma2Walker, WalksTransfersNopsAndLinksInPiecesOfAtMostTheAskedLength) {
  Memory m;
  m.put(0, transfer(0x8000, 700));
  m.put(1, of(Adma2Action::nop));
  m.put(2, of(Adma2Action::link, 0x100));
  m.put(0x100 / 8, of(Adma2Action::reserved));
  m.put(0x100 / 8 + 1, transfer(0x9000, 324, true, true));
  Adma2Walker w(0, m.reader());
  std::vector<std::pair<std::uint64_t, std::uint32_t>> pieces;
  std::uint32_t total = 0;
  bool interrupted = false;
  while (total < 1024) {
    const Adma2Walker::Step s = w.next(512);
    ASSERT_EQ(s.error, Adma2Error::none);
    pieces.emplace_back(s.address, s.length);
    total += s.length;
    interrupted = s.interrupt;
  }
  const std::vector<std::pair<std::uint64_t, std::uint32_t>> expected = {{0x8000, 512}, {0x8200, 188}, {0x9000, 324}};
  EXPECT_EQ(pieces, expected);
  EXPECT_TRUE(interrupted);
  EXPECT_TRUE(w.ended());
  EXPECT_EQ(w.fetches(), 5u);
  // The table has ended: more data is a length mismatch, and stays one.
  EXPECT_EQ(w.next(512).error, Adma2Error::length_mismatch);
  EXPECT_EQ(w.next(512).error, Adma2Error::length_mismatch);
}

TEST(Adma2Walker, AnInvalidDescriptorStopsAtItsAddress) {
  Memory m;
  m.put(0, transfer(0x8000, 512));
  Adma2Descriptor bad = transfer(0x8200, 512);
  bad.valid = false;
  m.put(1, bad);
  Adma2Walker w(0, m.reader());
  EXPECT_EQ(w.next(512).error, Adma2Error::none);
  EXPECT_EQ(w.next(512).error, Adma2Error::invalid_descriptor);
  EXPECT_EQ(w.descriptor_address(), 8u);
}

TEST(Adma2Walker, AFetchTheMemoryRefusesIsAnError) {
  Memory m;
  m.put(0, of(Adma2Action::link, 0xFFFFFFF8));
  Adma2Walker w(0, m.reader());
  EXPECT_EQ(w.next(512).error, Adma2Error::fetch_failed);
  EXPECT_EQ(w.descriptor_address(), 0xFFFFFFF8u);
}

TEST(Adma2Walker, ALinkToItselfIsCaughtNotFollowedForever) {
  Memory m;
  m.put(0, of(Adma2Action::nop));
  m.put(1, of(Adma2Action::link, 0));
  Adma2Walker w(0, m.reader(), 1000);
  EXPECT_EQ(w.next(512).error, Adma2Error::too_many_descriptors);
  EXPECT_EQ(m.reads, 1000u);
}

TEST(Adma2Walker, ATableOfOnlyAnEndNopHasNoData) {
  Memory m;
  m.put(0, of(Adma2Action::nop, 0, true));
  Adma2Walker w(0, m.reader());
  EXPECT_EQ(w.next(512).error, Adma2Error::length_mismatch);
  EXPECT_STRNE(adma2_error_name(Adma2Error::length_mismatch), "?");
}

}  // namespace
}  // namespace emmcsim::models
