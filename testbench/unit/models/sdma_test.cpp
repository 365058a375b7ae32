// SdmaWalker: pieces cut at the buffer boundary, the boundary code, the address register's
// 32-bit wrap, and resuming from the address the driver writes.
#include "emmcsim/models/sdma.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <utility>
#include <vector>

namespace emmcsim::models {
namespace {

std::vector<std::pair<std::uint64_t, std::uint32_t>> walk(SdmaWalker& w, std::uint32_t bytes, std::uint32_t piece) {
  std::vector<std::pair<std::uint64_t, std::uint32_t>> pieces;
  for (std::uint32_t done = 0; done < bytes;) {
    const SdmaWalker::Step s = w.next(std::min(piece, bytes - done));
    pieces.emplace_back(s.address, s.length);
    done += s.length;
  }
  return pieces;
}

TEST(SdmaWalker, TheBoundaryIs4KiBShiftedByTheBlockSizeCode) {
  EXPECT_EQ(SdmaWalker(0, 0).boundary(), 4096u);
  EXPECT_EQ(SdmaWalker(0, 3).boundary(), 32768u);
  EXPECT_EQ(SdmaWalker(0, 7).boundary(), 512u * 1024);
  EXPECT_EQ(SdmaWalker(0, 8 + 1).boundary(), 8192u) << "only bits 14:12 count";
}

TEST(SdmaWalker, PiecesStopAtTheBoundaryAndTheAddressFollowsTheData) {
  SdmaWalker w(0x10000 + 4096 - 700, 0);
  const auto pieces = walk(w, 1024, 512);
  const std::vector<std::pair<std::uint64_t, std::uint32_t>> expected = {
      {0x10000 + 4096 - 700, 512}, {0x10000 + 4096 - 188, 188}, {0x11000, 324}};
  EXPECT_EQ(pieces, expected);
  EXPECT_EQ(w.address(), 0x11000u + 324);
  EXPECT_FALSE(w.at_boundary());
}

TEST(SdmaWalker, ReachingABoundaryIsSeenUntilTheDriverWritesTheNextAddress) {
  SdmaWalker w(0x2000, 0);
  for (int i = 0; i < 7; ++i) {
    w.next(512);
    EXPECT_FALSE(w.at_boundary()) << i;
  }
  const SdmaWalker::Step last = w.next(512);
  EXPECT_EQ(last.address, 0x2E00u);
  EXPECT_TRUE(w.at_boundary());
  EXPECT_EQ(w.address(), 0x3000u);
  // Linux writes the next boundary; any address is taken.
  w.resume(0x8000 + 100);
  EXPECT_FALSE(w.at_boundary());
  const SdmaWalker::Step after = w.next(4096);
  EXPECT_EQ(after.address, 0x8000u + 100);
  EXPECT_EQ(after.length, 4096u - 100) << "cut at the next boundary from the new address";
}

TEST(SdmaWalker, TheAddressWrapsAt32Bits) {
  SdmaWalker w(0xFFFFFE00, 0);
  const SdmaWalker::Step s = w.next(4096);
  EXPECT_EQ(s.address, 0xFFFFFE00u);
  EXPECT_EQ(s.length, 512u);
  EXPECT_EQ(w.address(), 0u);
  EXPECT_TRUE(w.at_boundary());
  EXPECT_EQ(w.next(100).address, 0u);
}

TEST(SdmaWalker, With64BitAddressingTheAddressGoesPast4GiB) {
  SdmaWalker w(0xFFFFFE00, 0, true);
  w.next(4096);
  EXPECT_EQ(w.address(), 0x1'0000'0000u);
  EXPECT_TRUE(w.at_boundary());
  w.resume(0x12'3456'7000);
  EXPECT_EQ(w.next(8192).address, 0x12'3456'7000u);
  EXPECT_EQ(w.address(), 0x12'3456'8000u);
  EXPECT_EQ(SdmaWalker(0x1'0000'1000, 0).address(), 0x1000u) << "32-bit addressing keeps the low half";
}

TEST(SdmaWalker, APieceIsNeverEmpty) {
  SdmaWalker w(0x1000, 0);
  EXPECT_EQ(w.next(0).length, 1u);
}

}  // namespace
}  // namespace emmcsim::models
