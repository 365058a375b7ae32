// The little-endian reader and writer the store, the bridge protocol and vhost-user messages
// share: fields land least significant byte first, and a reader never reads past its end — it
// either fails softly (ok() false, zeros) or calls the caller's handler, once.
#include <gtest/gtest.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "emmcsim/support/little_endian.hpp"

namespace emmcsim::support {
namespace {

using Bytes = std::vector<std::uint8_t>;

TEST(SupportLittleEndian, LoadsAndStoresLeastSignificantByteFirst) {
  std::uint8_t b[8] = {};
  store_le16(b, 0x1234);
  EXPECT_EQ(Bytes(b, b + 2), (Bytes{0x34, 0x12}));
  store_le32(b, 0x89ABCDEF);
  EXPECT_EQ(Bytes(b, b + 4), (Bytes{0xEF, 0xCD, 0xAB, 0x89}));
  store_le64(b, 0x0102030405060708ULL);
  EXPECT_EQ(Bytes(b, b + 8), (Bytes{8, 7, 6, 5, 4, 3, 2, 1}));
  EXPECT_EQ(load_le64(b), 0x0102030405060708ULL);
  EXPECT_EQ(load_le32(b), 0x05060708u);
  EXPECT_EQ(load_le16(b), 0x0708u);
  const std::uint8_t high[4] = {0xFF, 0xFF, 0xFF, 0xFF};
  EXPECT_EQ(load_le32(high), 0xFFFFFFFFu) << "no sign extension";
}

TEST(SupportLittleEndian, WriterAppendsFieldsAfterWhatTheVectorHeld) {
  Bytes out{0xAA};
  LittleEndianWriter w(out);
  w.u8(1);
  w.u16(0x0302);
  w.u32(0x07060504);
  w.u64(0x0F0E0D0C0B0A0908ULL);
  const std::uint8_t raw[2] = {0x10, 0x11};
  w.bytes(raw, sizeof raw);
  w.bytes(nullptr, 0);
  w.zeros(2);
  EXPECT_EQ(w.size(), 20u);
  EXPECT_EQ(out, (Bytes{0xAA, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 0x10, 0x11, 0, 0}));
}

TEST(SupportLittleEndian, ReaderReadsWhatTheWriterWrote) {
  Bytes buffer;
  LittleEndianWriter w(buffer);
  w.u8(0xFE);
  w.u16(0xBEEF);
  w.u32(0xDEADBEEF);
  w.u64(0x0123456789ABCDEFULL);
  w.bytes("xyz", 3);
  LittleEndianReader r(buffer.data(), buffer.size());
  EXPECT_EQ(r.u8(), 0xFE);
  EXPECT_EQ(r.u16(), 0xBEEF);
  EXPECT_EQ(r.u32(), 0xDEADBEEFu);
  EXPECT_EQ(r.u64(), 0x0123456789ABCDEFULL);
  EXPECT_EQ(r.position(), 15u);
  EXPECT_EQ(r.remaining(), 3u);
  char text[3];
  r.copy_to(text, 3);
  EXPECT_EQ(std::string(text, 3), "xyz");
  EXPECT_EQ(r.remaining(), 0u);
  EXPECT_TRUE(r.ok());
}

TEST(SupportLittleEndian, RunningOutFailsSoftlyWithoutAHandler) {
  const Bytes input{1, 2, 3, 4, 5, 6};
  LittleEndianReader r(input.data(), input.size());
  EXPECT_EQ(r.u32(), 0x04030201u);
  EXPECT_EQ(r.u32(), 0u) << "two bytes left: the read fails, it does not read past the end";
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.position(), 4u) << "a failed read consumes nothing";
  EXPECT_EQ(r.u8(), 0u) << "after a failure every read fails, even one that would fit";
  EXPECT_EQ(r.bytes(1), nullptr);
  std::uint8_t out[4] = {9, 9, 9, 9};
  r.copy_to(out, 4);
  EXPECT_EQ(out[0], 9) << "copy_to copies nothing once out of input";
  EXPECT_FALSE(r.ok());
}

TEST(SupportLittleEndian, ExactlyEnoughInputIsNotRunningOut) {
  const Bytes input{1, 2};
  LittleEndianReader r(input.data(), input.size());
  EXPECT_EQ(r.u16(), 0x0201);
  EXPECT_TRUE(r.ok());
  EXPECT_NE(r.bytes(0), nullptr) << "zero bytes are always there";
  EXPECT_TRUE(r.ok());
  r.skip(1);
  EXPECT_FALSE(r.ok());
}

TEST(SupportLittleEndian, AHandlerThrowsTheCallersErrorWithWhatWasWantedAndLeft) {
  const Bytes input{1, 2, 3};
  std::size_t calls = 0;
  LittleEndianReader r(input.data(), input.size(), [&calls](std::size_t wanted, std::size_t left) {
    ++calls;
    throw std::length_error("wanted " + std::to_string(wanted) + ", " + std::to_string(left) + " left");
  });
  EXPECT_EQ(r.u16(), 0x0201);
  try {
    r.u64();
    FAIL() << "no error thrown";
  } catch (const std::length_error& e) {
    EXPECT_STREQ(e.what(), "wanted 8, 1 left");
  }
  EXPECT_EQ(calls, 1u);
  EXPECT_FALSE(r.ok());
}

TEST(SupportLittleEndian, AHandlerThatReturnsLeavesTheReaderFailedAndIsCalledOnce) {
  const Bytes input{1};
  std::size_t calls = 0;
  LittleEndianReader r(input.data(), input.size(), [&calls](std::size_t, std::size_t) { ++calls; });
  EXPECT_EQ(r.u32(), 0u);
  EXPECT_EQ(r.u32(), 0u);
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(calls, 1u);
}

TEST(SupportLittleEndian, AnEmptyInputIsFine) {
  LittleEndianReader r(nullptr, 0);
  EXPECT_EQ(r.remaining(), 0u);
  r.copy_to(nullptr, 0);
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.u8(), 0u);
  EXPECT_FALSE(r.ok());
}

}  // namespace
}  // namespace emmcsim::support
