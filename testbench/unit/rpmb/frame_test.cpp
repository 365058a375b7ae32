// Frame layout and accessors, MAC helpers, result descriptions.
#include <gtest/gtest.h>

#include "emmcsim/rpmb/frame.hpp"
#include "emmcsim/rpmb/mac.hpp"
#include "emmcsim/rpmb/protocol.hpp"
#include "test_support.hpp"

namespace emmcsim::rpmb {
namespace {

TEST(Frame, FieldsAreBigEndianAtTheClientStructOffsets) {
  Frame f;
  f.set_write_counter(0x01020304);
  f.set_address(0x0506);
  f.set_block_count(0x0708);
  f.set_result(0x090a);
  f.set_type(0x0b0c);
  const std::uint8_t* b = f.bytes();
  EXPECT_EQ(b[500], 0x01);
  EXPECT_EQ(b[503], 0x04);
  EXPECT_EQ(b[504], 0x05);
  EXPECT_EQ(b[505], 0x06);
  EXPECT_EQ(b[506], 0x07);
  EXPECT_EQ(b[507], 0x08);
  EXPECT_EQ(b[508], 0x09);
  EXPECT_EQ(b[509], 0x0a);
  EXPECT_EQ(b[510], 0x0b);
  EXPECT_EQ(b[511], 0x0c);
  EXPECT_EQ(f.write_counter(), 0x01020304u);
  EXPECT_EQ(f.address(), 0x0506);
  EXPECT_EQ(f.block_count(), 0x0708);
  EXPECT_EQ(f.result(), 0x090a);
  EXPECT_EQ(f.type(), 0x0b0c);
}

TEST(Frame, KeyMacDataAndNonceOccupyTheirRanges) {
  Frame f;
  Key key;
  for (std::size_t i = 0; i < key.size(); ++i) key[i] = static_cast<std::uint8_t>(0x80 + i);
  f.set_key(key);
  EXPECT_EQ(f.bytes()[196], 0x80);
  EXPECT_EQ(f.bytes()[227], 0x80 + 31);
  EXPECT_EQ(f.mac(), Mac(key));
  Nonce n;
  n.fill(0x5a);
  f.set_nonce(n);
  EXPECT_EQ(f.bytes()[483], 0);
  EXPECT_EQ(f.bytes()[484], 0x5a);
  EXPECT_EQ(f.bytes()[499], 0x5a);
  EXPECT_EQ(f.bytes()[500], 0);
  const auto data = test::pattern(1, 3);
  f.set_data(data.data());
  EXPECT_EQ(f.bytes()[228], data[0]);
  EXPECT_EQ(f.bytes()[483], data[255]);
  EXPECT_EQ(f.bytes()[195], 0);  // stuff bytes untouched
}

TEST(Mac, CoversBytes228To511OfEveryFrameInOrder) {
  FrameAuthenticator auth(test::test_key());
  Frame a, b;
  a.set_address(1);
  b.set_address(2);
  const Frame ab[] = {a, b};
  const Frame ba[] = {b, a};
  EXPECT_NE(auth.compute(ab, 2), auth.compute(ba, 2));
  Frame a_stuffed = a;
  a_stuffed.bytes()[0] = 0xff;        // stuff bytes are outside the MAC
  a_stuffed.set_mac(Mac{{1, 2, 3}});  // so is the MAC field itself
  EXPECT_EQ(auth.compute(&a, 1), auth.compute(&a_stuffed, 1));
  Frame a_changed = a;
  a_changed.bytes()[511] ^= 1;
  EXPECT_NE(auth.compute(&a, 1), auth.compute(&a_changed, 1));
  EXPECT_EQ(auth.compute(&a, 1), frames_mac(test::test_key(), &a, 1));
}

TEST(Mac, VerifyRejectsAnyChangedBitAndAcceptsTheRightMac) {
  FrameAuthenticator auth(test::test_key());
  Frame f;
  f.set_write_counter(7);
  f.set_mac(auth.compute(&f, 1));
  EXPECT_TRUE(auth.verify(&f, 1));
  for (std::size_t bit = 0; bit < 8 * kMacSize; bit += 13) {
    Frame g = f;
    g.bytes()[Frame::kKeyMacOffset + bit / 8] ^= static_cast<std::uint8_t>(1u << (bit % 8));
    EXPECT_FALSE(auth.verify(&g, 1)) << "bit " << bit;
  }
  FrameAuthenticator other(test::test_key(0x42));
  EXPECT_FALSE(other.verify(&f, 1));
}

TEST(Mac, EqualityIsByValue) {
  Mac a{}, b{};
  EXPECT_TRUE(mac_equal(a, b));
  b[31] = 1;
  EXPECT_FALSE(mac_equal(a, b));
}

TEST(Protocol, DescribesResultsByName) {
  EXPECT_EQ(describe_result(0x0002), "authentication failure (0x0002)");
  EXPECT_EQ(describe_result(0x0085), "write failure, write counter expired (0x0085)");
  EXPECT_EQ(describe_result(0x0007), "authentication key not yet programmed (0x0007)");
  EXPECT_EQ(describe_result(0x0042), "unknown result (0x0042)");
  EXPECT_EQ(describe_request(0x0006), "authenticated device configuration write");
  EXPECT_EQ(response_to(RequestType::authenticated_read), ResponseType::authenticated_read);
}

}  // namespace
}  // namespace emmcsim::rpmb
