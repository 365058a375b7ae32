// The MMC-ioctl bridge protocol, version 1 (docs/bridge-protocol.md): the wire layout, round trips
// of every message type, and a decoder that trusts no byte — every malformed header is fatal,
// every malformed payload a non-fatal ProtocolError with the errno the client sees, and no
// truncation or corruption of a valid message does anything but throw ProtocolError.
#include <gtest/gtest.h>

#include <cerrno>
#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "emmcsim/transport/bridge_protocol.hpp"

namespace emmcsim::transport::bridge {
namespace {

using Bytes = std::vector<std::uint8_t>;

// ---------------------------------------------------------------------------------------------
// Helpers

std::uint32_t get_u32(const Bytes& b, std::size_t at) {
  return std::uint32_t{b[at]} | (std::uint32_t{b[at + 1]} << 8) | (std::uint32_t{b[at + 2]} << 16) |
         (std::uint32_t{b[at + 3]} << 24);
}
std::uint64_t get_u64(const Bytes& b, std::size_t at) {
  return std::uint64_t{get_u32(b, at)} | (std::uint64_t{get_u32(b, at + 4)} << 32);
}
void put_u16(Bytes& b, std::size_t at, std::uint16_t v) {
  b[at] = static_cast<std::uint8_t>(v);
  b[at + 1] = static_cast<std::uint8_t>(v >> 8);
}
void put_u32(Bytes& b, std::size_t at, std::uint32_t v) {
  for (std::size_t i = 0; i < 4; ++i) b[at + i] = static_cast<std::uint8_t>(v >> (8 * i));
}
// Makes the header's payload_length agree with the message's size again after an edit.
void fix_length(Bytes& message) { put_u32(message, 12, static_cast<std::uint32_t>(message.size() - kHeaderSize)); }

Bytes pattern(std::size_t n, std::uint8_t seed) {
  Bytes b(n);
  for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::uint8_t>(seed + i * 7 + (i >> 8));
  return b;
}

MessageHeader header_of(const Bytes& message) { return decode_header(message.data(), message.size()); }

Request decode_request_message(const Bytes& message) {
  const MessageHeader h = header_of(message);
  return decode_request(h, message.data() + kHeaderSize, message.size() - kHeaderSize);
}
Reply decode_reply_message(const Bytes& message) {
  const MessageHeader h = header_of(message);
  return decode_reply(h, message.data() + kHeaderSize, message.size() - kHeaderSize);
}

// Runs `f`, which must throw ProtocolError, and returns the error.
ProtocolError protocol_error(const std::function<void()>& f) {
  try {
    f();
  } catch (const ProtocolError& e) {
    return e;
  }
  ADD_FAILURE() << "no ProtocolError thrown";
  return ProtocolError(0, false, "none");
}

void expect_rejected(const Bytes& message, int error, const char* why) {
  const ProtocolError e = protocol_error([&] { decode_request_message(message); });
  EXPECT_EQ(e.error(), error) << why << ": " << e.what();
  EXPECT_FALSE(e.fatal()) << why << ": " << e.what();
}

void expect_fatal_header(const Bytes& message, const char* why) {
  const ProtocolError e = protocol_error([&] { header_of(message); });
  EXPECT_EQ(e.error(), EPROTO) << why << ": " << e.what();
  EXPECT_TRUE(e.fatal()) << why << ": " << e.what();
}

IoctlCommand command(std::uint32_t opcode, std::uint32_t write_flag, std::uint32_t blksz, std::uint32_t blocks,
                     std::uint8_t seed = 0x40) {
  IoctlCommand c;
  c.opcode = opcode;
  c.write_flag = write_flag;
  c.flags = 0xB5;
  c.blksz = blksz;
  c.blocks = blocks;
  if (write_flag != 0) c.data = pattern(std::size_t{blksz} * blocks, seed);
  return c;
}

IoctlRequest multi(Node node, std::vector<IoctlCommand> commands) {
  IoctlRequest q;
  q.node = node;
  q.multi = true;
  q.commands = std::move(commands);
  return q;
}

IoctlRequest single(Node node, IoctlCommand c) {
  IoctlRequest q;
  q.node = node;
  q.multi = false;
  q.commands.push_back(std::move(c));
  return q;
}

void expect_same_command(const IoctlCommand& a, const IoctlCommand& b, std::size_t i) {
  SCOPED_TRACE("command " + std::to_string(i));
  EXPECT_EQ(a.write_flag, b.write_flag);
  EXPECT_EQ(a.is_acmd, b.is_acmd);
  EXPECT_EQ(a.opcode, b.opcode);
  EXPECT_EQ(a.arg, b.arg);
  EXPECT_EQ(a.flags, b.flags);
  EXPECT_EQ(a.blksz, b.blksz);
  EXPECT_EQ(a.blocks, b.blocks);
  EXPECT_EQ(a.postsleep_min_us, b.postsleep_min_us);
  EXPECT_EQ(a.postsleep_max_us, b.postsleep_max_us);
  EXPECT_EQ(a.data_timeout_ns, b.data_timeout_ns);
  EXPECT_EQ(a.cmd_timeout_ms, b.cmd_timeout_ms);
  EXPECT_EQ(a.data, b.data);
}

// A MULTI_CMD whose every field differs from every other: mmc-utils' rpmb write (reliable CMD25,
// result-read CMD25, CMD18) with distinctive values in the fields the driver ignores.
IoctlRequest distinctive_ioctl() {
  IoctlCommand w = command(25, 0x80000001, 512, 2, 0x11);
  w.is_acmd = 0x01020304;
  w.arg = 0xDEADBEEF;
  w.postsleep_min_us = 0x0A0B0C0D;
  w.postsleep_max_us = 0x1A1B1C1D;
  w.data_timeout_ns = 0x2A2B2C2D;
  w.cmd_timeout_ms = 0x3A3B3C3D;
  IoctlCommand r = command(25, 1, 512, 1, 0x22);
  r.arg = 0x00C0FFEE;
  r.flags = 0x15;
  IoctlCommand read = command(18, 0, 512, 3);
  read.arg = 0xFEEDF00D;
  read.cmd_timeout_ms = 77;
  return multi(Node::rpmb, {w, r, read});
}

// One valid message of each request type (for truncation and corruption sweeps).
std::vector<Bytes> valid_request_messages() {
  std::vector<Bytes> out;
  out.push_back(encode_request(1, distinctive_ioctl()));
  out.push_back(encode_request(2, single(Node::user, command(8, 0, 512, 1))));
  out.push_back(encode_request(3, BlockReadRequest{Node::boot0, 4096, 1024}));
  out.push_back(encode_request(4, BlockWriteRequest{Node::boot1, 512, pattern(1024, 3)}));
  out.push_back(encode_request(5, FlushRequest{Node::user}));
  out.push_back(encode_request(6, DescribeRequest{}));
  return out;
}

std::vector<Bytes> valid_reply_messages() {
  std::vector<Bytes> out;
  IoctlReply ioctl;
  ioctl.status = ReplyStatus{0, 0, 0};
  ioctl.results.resize(3);
  ioctl.results[0].response = {0x900, 0, 0, 0};
  ioctl.results[2].response = {0x900, 1, 2, 3};
  ioctl.results[2].data = pattern(1024, 9);
  out.push_back(encode_reply(1, ioctl));
  out.push_back(encode_reply(2, BlockReadReply{ReplyStatus{}, pattern(512, 1)}));
  out.push_back(encode_reply(3, BlockWriteReply{ReplyStatus{EIO, 0, 0}}));
  out.push_back(encode_reply(4, FlushReply{ReplyStatus{}}));
  DescribeReply d;
  d.node_size = {8ULL << 30, 4 << 20, 4 << 20, 4 << 20};
  d.rpmb_size_mult = 32;
  d.rel_sectors = 1;
  out.push_back(encode_reply(5, d));
  out.push_back(encode_reply(6, ErrorReply{ReplyStatus{EINVAL, 0, 0}, "bad"}));
  return out;
}

// ---------------------------------------------------------------------------------------------
// Constants and the wire layout

TEST(BridgeProtocol, LimitsAreLinuxsAndThePayloadLimitIsTheirSum) {
  EXPECT_EQ(kMaxCommands, 255u);
  EXPECT_EQ(kMaxCommandBytes, 524288u);
  EXPECT_EQ(kMaxPayload, 33566680u);  // 8 + 255 x 48 + 32 MiB, as docs/bridge-protocol.md says
  EXPECT_STREQ(node_name(Node::user), "user");
  EXPECT_STREQ(node_name(Node::boot0), "boot0");
  EXPECT_STREQ(node_name(Node::boot1), "boot1");
  EXPECT_STREQ(node_name(Node::rpmb), "rpmb");
}

TEST(BridgeProtocol, IoctlRequestWireLayoutIsTheDocumentedOne) {
  IoctlCommand c = command(25, 0x80000001, 512, 1, 0x5A);
  c.is_acmd = 2;
  c.arg = 0x11223344;
  c.postsleep_min_us = 5;
  c.postsleep_max_us = 6;
  c.data_timeout_ns = 7;
  c.cmd_timeout_ms = 8;
  const Bytes m = encode_request(0xA1B2C3D4, single(Node::rpmb, c));
  ASSERT_EQ(m.size(), kHeaderSize + 8 + 48 + 512);
  EXPECT_EQ(m[0], 'E');
  EXPECT_EQ(m[1], 'M');
  EXPECT_EQ(m[2], 'M');
  EXPECT_EQ(m[3], 'B');
  EXPECT_EQ(get_u32(m, 0), kMagic);
  EXPECT_EQ(m[4], 1);  // version, little-endian u16
  EXPECT_EQ(m[5], 0);
  EXPECT_EQ(m[6], 0x01);  // type ioctl_request
  EXPECT_EQ(m[7], 0x00);
  EXPECT_EQ(get_u32(m, 8), 0xA1B2C3D4u);
  EXPECT_EQ(m[8], 0xD4);  // little-endian request id
  EXPECT_EQ(get_u32(m, 12), 8u + 48u + 512u);
  const std::size_t p = kHeaderSize;
  EXPECT_EQ(m[p + 0], 3);  // rpmb
  EXPECT_EQ(m[p + 1], 0);  // MMC_IOC_CMD
  EXPECT_EQ(m[p + 2], 0);
  EXPECT_EQ(m[p + 3], 0);
  EXPECT_EQ(get_u32(m, p + 4), 1u);
  const std::size_t d = p + 8;
  const std::uint32_t expected[12] = {0x80000001, 2, 25, 0x11223344, 0xB5, 512, 1, 5, 6, 7, 8, 512};
  for (std::size_t i = 0; i < 12; ++i) EXPECT_EQ(get_u32(m, d + 4 * i), expected[i]) << "descriptor word " << i;
  EXPECT_EQ(Bytes(m.begin() + static_cast<std::ptrdiff_t>(d + 48), m.end()), c.data);
}

TEST(BridgeProtocol, BlockAndStatusLayoutsAreTheDocumentedOnes) {
  const Bytes read = encode_request(7, BlockReadRequest{Node::boot1, 0x0000000123456600ULL, 4096});
  ASSERT_EQ(read.size(), kHeaderSize + 16);
  EXPECT_EQ(read[6], 0x02);
  EXPECT_EQ(read[kHeaderSize], 2);
  EXPECT_EQ(get_u32(read, kHeaderSize + 4), 4096u);
  EXPECT_EQ(get_u64(read, kHeaderSize + 8), 0x0000000123456600ULL);

  const Bytes reply =
      encode_reply(7, BlockWriteReply{ReplyStatus{ETIMEDOUT, ReplyStatus::kTimed, 0x0102030405060708ULL}});
  ASSERT_EQ(reply.size(), kHeaderSize + 16);
  EXPECT_EQ(reply[6], 0x83);
  EXPECT_EQ(get_u32(reply, kHeaderSize), static_cast<std::uint32_t>(ETIMEDOUT));
  EXPECT_EQ(get_u32(reply, kHeaderSize + 4), 1u);
  EXPECT_EQ(get_u64(reply, kHeaderSize + 8), 0x0102030405060708ULL);
}

TEST(BridgeProtocol, ReplyTypeForEachRequestType) {
  EXPECT_EQ(reply_type_for(MessageType::ioctl_request), MessageType::ioctl_reply);
  EXPECT_EQ(reply_type_for(MessageType::block_read_request), MessageType::block_read_reply);
  EXPECT_EQ(reply_type_for(MessageType::block_write_request), MessageType::block_write_reply);
  EXPECT_EQ(reply_type_for(MessageType::flush_request), MessageType::flush_reply);
  EXPECT_EQ(reply_type_for(MessageType::describe_request), MessageType::describe_reply);
  EXPECT_EQ(reply_type_for(MessageType::ioctl_reply), MessageType::error_reply);
  EXPECT_EQ(request_type(Request{IoctlRequest{}}), MessageType::ioctl_request);
  EXPECT_EQ(request_type(Request{BlockReadRequest{}}), MessageType::block_read_request);
  EXPECT_EQ(request_type(Request{BlockWriteRequest{}}), MessageType::block_write_request);
  EXPECT_EQ(request_type(Request{FlushRequest{}}), MessageType::flush_request);
  EXPECT_EQ(request_type(Request{DescribeRequest{}}), MessageType::describe_request);
}

// ---------------------------------------------------------------------------------------------
// Round trips: encode → decode_header → decode_*

TEST(BridgeProtocolRoundTrip, IoctlMultiCommand) {
  const IoctlRequest sent = distinctive_ioctl();
  const Bytes m = encode_request(42, sent);
  const MessageHeader h = header_of(m);
  EXPECT_EQ(h.type, MessageType::ioctl_request);
  EXPECT_EQ(h.request_id, 42u);
  EXPECT_EQ(h.payload_length, m.size() - kHeaderSize);
  const Request decoded = decode_request(h, m.data() + kHeaderSize, m.size() - kHeaderSize);
  const auto* q = std::get_if<IoctlRequest>(&decoded);
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->node, Node::rpmb);
  EXPECT_TRUE(q->multi);
  ASSERT_EQ(q->commands.size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) expect_same_command(q->commands[i], sent.commands[i], i);
  EXPECT_EQ(q->commands[0].data.size(), 1024u);
  EXPECT_TRUE(q->commands[2].data.empty());
}

TEST(BridgeProtocolRoundTrip, IoctlSingleCommandOnEveryNode) {
  for (Node node : {Node::user, Node::boot0, Node::boot1, Node::rpmb}) {
    IoctlCommand c = command(13, 0, 0, 0);
    c.arg = 1u << 16;
    c.flags = 0x15;
    const Bytes m = encode_request(0xFFFFFFFF, single(node, c));
    EXPECT_EQ(header_of(m).request_id, 0xFFFFFFFFu);
    const Request decoded = decode_request_message(m);
    const auto& q = std::get<IoctlRequest>(decoded);
    EXPECT_EQ(q.node, node);
    EXPECT_FALSE(q.multi);
    ASSERT_EQ(q.commands.size(), 1u);
    expect_same_command(q.commands[0], c, 0);
  }
}

TEST(BridgeProtocolRoundTrip, IoctlAtTheLimits) {
  // 255 commands; 512 KiB in one command; 32 MiB in all (64 reads of 512 KiB).
  std::vector<IoctlCommand> many(kMaxCommands, command(13, 0, 0, 0));
  for (std::size_t i = 0; i < many.size(); ++i) many[i].arg = static_cast<std::uint32_t>(i);
  const auto q255 = std::get<IoctlRequest>(decode_request_message(encode_request(1, multi(Node::user, many))));
  ASSERT_EQ(q255.commands.size(), 255u);
  EXPECT_EQ(q255.commands[254].arg, 254u);

  const auto big =
      std::get<IoctlRequest>(decode_request_message(encode_request(2, single(Node::user, command(25, 1, 512, 1024)))));
  EXPECT_EQ(big.commands[0].data.size(), kMaxCommandBytes);

  std::vector<IoctlCommand> reads(64, command(18, 0, 512, 1024));
  const auto all = std::get<IoctlRequest>(decode_request_message(encode_request(3, multi(Node::user, reads))));
  EXPECT_EQ(all.commands.size(), 64u);
}

TEST(BridgeProtocolRoundTrip, BlockRead) {
  const BlockReadRequest sent{Node::boot0, 0xFFFFFFFFFFFFFE00ULL, static_cast<std::uint32_t>(kMaxBlockTransfer)};
  const Bytes m = encode_request(9, sent);
  EXPECT_EQ(header_of(m).type, MessageType::block_read_request);
  const auto q = std::get<BlockReadRequest>(decode_request_message(m));
  EXPECT_EQ(q.node, Node::boot0);
  EXPECT_EQ(q.offset, 0xFFFFFFFFFFFFFE00ULL);
  EXPECT_EQ(q.length, kMaxBlockTransfer);
}

TEST(BridgeProtocolRoundTrip, BlockWrite) {
  const BlockWriteRequest sent{Node::boot1, 1ULL << 40, pattern(1536, 0x77)};
  const Bytes m = encode_request(10, sent);
  EXPECT_EQ(header_of(m).type, MessageType::block_write_request);
  const auto q = std::get<BlockWriteRequest>(decode_request_message(m));
  EXPECT_EQ(q.node, Node::boot1);
  EXPECT_EQ(q.offset, 1ULL << 40);
  EXPECT_EQ(q.data, sent.data);
}

TEST(BridgeProtocolRoundTrip, FlushAndDescribe) {
  const Bytes f = encode_request(11, FlushRequest{Node::boot1});
  EXPECT_EQ(header_of(f).type, MessageType::flush_request);
  EXPECT_EQ(header_of(f).payload_length, 4u);
  EXPECT_EQ(std::get<FlushRequest>(decode_request_message(f)).node, Node::boot1);

  const Bytes d = encode_request(12, DescribeRequest{});
  EXPECT_EQ(d.size(), kHeaderSize);
  EXPECT_EQ(header_of(d).type, MessageType::describe_request);
  EXPECT_EQ(header_of(d).request_id, 12u);
  EXPECT_TRUE(std::holds_alternative<DescribeRequest>(decode_request_message(d)));
}

TEST(BridgeProtocolRoundTrip, IoctlReply) {
  IoctlReply sent;
  sent.status = ReplyStatus{EILSEQ, ReplyStatus::kTimed, 0xFEDCBA9876543210ULL};
  sent.results.resize(3);
  sent.results[0].response = {0x00000900, 0x11111111, 0x22222222, 0x33333333};
  sent.results[1].response = {0xA0B0C0D0, 0, 0, 0xFFFFFFFF};
  sent.results[1].data = pattern(1024, 0x31);
  sent.results[2].data = Bytes(512, 0);
  const Bytes m = encode_reply(77, sent);
  const MessageHeader h = header_of(m);
  EXPECT_EQ(h.type, MessageType::ioctl_reply);
  EXPECT_EQ(h.request_id, 77u);
  const auto p = std::get<IoctlReply>(decode_reply_message(m));
  EXPECT_EQ(p.status.error, EILSEQ);
  EXPECT_EQ(p.status.flags, ReplyStatus::kTimed);
  EXPECT_EQ(p.status.simulated_ps, 0xFEDCBA9876543210ULL);
  ASSERT_EQ(p.results.size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(p.results[i].response, sent.results[i].response) << i;
    EXPECT_EQ(p.results[i].data, sent.results[i].data) << i;
  }
}

TEST(BridgeProtocolRoundTrip, BlockReadWriteAndFlushReplies) {
  const BlockReadReply read{ReplyStatus{0, 0, 0}, pattern(kMaxBlockTransfer, 0x12)};
  const Bytes r = encode_reply(1, read);
  EXPECT_EQ(header_of(r).type, MessageType::block_read_reply);
  const auto rp = std::get<BlockReadReply>(decode_reply_message(r));
  EXPECT_EQ(rp.status.error, 0);
  EXPECT_EQ(rp.data, read.data);

  const Bytes empty = encode_reply(2, BlockReadReply{ReplyStatus{EIO, 0, 0}, {}});
  const auto ep = std::get<BlockReadReply>(decode_reply_message(empty));
  EXPECT_EQ(ep.status.error, EIO);
  EXPECT_TRUE(ep.data.empty());

  const Bytes w = encode_reply(3, BlockWriteReply{ReplyStatus{ENXIO, ReplyStatus::kTimed, 99}});
  EXPECT_EQ(header_of(w).type, MessageType::block_write_reply);
  const auto wp = std::get<BlockWriteReply>(decode_reply_message(w));
  EXPECT_EQ(wp.status.error, ENXIO);
  EXPECT_EQ(wp.status.flags, ReplyStatus::kTimed);
  EXPECT_EQ(wp.status.simulated_ps, 99u);

  const Bytes f = encode_reply(4, FlushReply{ReplyStatus{EIO, 0, 5}});
  EXPECT_EQ(header_of(f).type, MessageType::flush_reply);
  const auto fp = std::get<FlushReply>(decode_reply_message(f));
  EXPECT_EQ(fp.status.error, EIO);
  EXPECT_EQ(fp.status.simulated_ps, 5u);
}

TEST(BridgeProtocolRoundTrip, DescribeReply) {
  DescribeReply sent;
  sent.status = ReplyStatus{0, 0, 0};
  sent.node_size = {(8ULL << 30) + 512, 4ULL << 20, 0, 16ULL << 20};
  sent.rpmb_size_mult = 128;
  sent.rel_sectors = 0xDEAD;
  for (std::size_t i = 0; i < sent.cid.size(); ++i) sent.cid[i] = static_cast<std::uint8_t>(0xF0 - i);
  const Bytes m = encode_reply(5, sent);
  EXPECT_EQ(header_of(m).type, MessageType::describe_reply);
  EXPECT_EQ(header_of(m).payload_length, 16u + 4 + 4 + 32 + 4 + 4 + 16);
  const auto p = std::get<DescribeReply>(decode_reply_message(m));
  EXPECT_EQ(p.node_size, sent.node_size);
  EXPECT_EQ(p.rpmb_size_mult, 128u);
  EXPECT_EQ(p.rel_sectors, 0xDEADu);
  EXPECT_EQ(p.cid, sent.cid);
}

TEST(BridgeProtocolRoundTrip, ErrorReply) {
  const ErrorReply sent{ReplyStatus{EOVERFLOW, 0, 0}, "ioctl request: command 0 moves 524800 bytes — zu groß"};
  const Bytes m = encode_reply(6, sent);
  EXPECT_EQ(header_of(m).type, MessageType::error_reply);
  const auto p = std::get<ErrorReply>(decode_reply_message(m));
  EXPECT_EQ(p.status.error, EOVERFLOW);
  EXPECT_EQ(p.message, sent.message);

  const auto e = std::get<ErrorReply>(decode_reply_message(encode_reply(7, ErrorReply{ReplyStatus{EPROTO, 0, 0}, ""})));
  EXPECT_EQ(e.status.error, EPROTO);
  EXPECT_TRUE(e.message.empty());
}

TEST(BridgeProtocol, EncoderRefusesAPayloadOverTheLimit) {
  const BlockWriteRequest huge{Node::user, 0, Bytes(kMaxPayload + 1, 0)};
  const ProtocolError e = protocol_error([&] { encode_request(1, huge); });
  EXPECT_EQ(e.error(), ENOMEM);
}

// ---------------------------------------------------------------------------------------------
// decode_header: anything wrong is fatal (EPROTO)

TEST(BridgeProtocolHeader, TruncatedHeaderIsFatal) {
  const Bytes m = encode_request(1, DescribeRequest{});
  for (std::size_t n = 0; n < kHeaderSize; ++n) {
    const ProtocolError e = protocol_error([&] { decode_header(m.data(), n); });
    EXPECT_EQ(e.error(), EPROTO) << n;
    EXPECT_TRUE(e.fatal()) << n;
  }
}

TEST(BridgeProtocolHeader, BadMagicIsFatal) {
  for (std::size_t byte = 0; byte < 4; ++byte) {
    Bytes m = encode_request(1, DescribeRequest{});
    m[byte] ^= 0x20;  // "eMMB", "EmMB" ...
    expect_fatal_header(m, "magic byte flipped");
  }
  Bytes reversed = encode_request(1, DescribeRequest{});
  put_u32(reversed, 0, 0x454D4D42);  // "BMME": the magic written big-endian
  expect_fatal_header(reversed, "big-endian magic");
}

TEST(BridgeProtocolHeader, OtherVersionsAreFatal) {
  for (std::uint16_t version : {0, 2, 0x0100, 0xFFFF}) {
    Bytes m = encode_request(1, DescribeRequest{});
    put_u16(m, 4, version);
    expect_fatal_header(m, "version");
  }
}

TEST(BridgeProtocolHeader, UnknownTypesAreFatal) {
  for (std::uint16_t type : {0x0000, 0x0006, 0x0080, 0x0086, 0x00FE, 0x0100, 0x0101, 0xFF01, 0xFFFF}) {
    Bytes m = encode_request(1, DescribeRequest{});
    put_u16(m, 6, type);
    expect_fatal_header(m, "type");
  }
  for (std::uint16_t type : {0x0001, 0x0002, 0x0003, 0x0004, 0x0005, 0x0081, 0x0082, 0x0083, 0x0084, 0x0085, 0x00FF}) {
    Bytes m = encode_request(1, DescribeRequest{});
    put_u16(m, 6, type);
    EXPECT_EQ(static_cast<std::uint16_t>(header_of(m).type), type);
  }
}

TEST(BridgeProtocolHeader, PayloadOverTheLimitIsFatal) {
  Bytes m = encode_request(1, DescribeRequest{});
  put_u32(m, 12, static_cast<std::uint32_t>(kMaxPayload));
  EXPECT_EQ(header_of(m).payload_length, kMaxPayload);
  for (std::uint32_t length : {static_cast<std::uint32_t>(kMaxPayload + 1), 0x80000000u, 0xFFFFFFFFu}) {
    put_u32(m, 12, length);
    expect_fatal_header(m, "payload_length");
  }
}

// ---------------------------------------------------------------------------------------------
// decode_request: malformed payloads are non-fatal, with the errno the client sees

TEST(BridgeProtocolRequest, MoreThan255CommandsIsEinval) {
  std::vector<IoctlCommand> many(kMaxCommands + 1, command(13, 0, 0, 0));
  expect_rejected(encode_request(1, multi(Node::user, many)), EINVAL, "256 commands");
  // A count far larger than the payload must fail on the count, before any allocation.
  Bytes m = encode_request(1, multi(Node::user, {command(13, 0, 0, 0)}));
  put_u32(m, kHeaderSize + 4, 0xFFFFFFFF);
  expect_rejected(m, EINVAL, "count 0xffffffff");
}

TEST(BridgeProtocolRequest, MmcIocCmdCarriesExactlyOneCommand) {
  IoctlRequest two = single(Node::user, command(13, 0, 0, 0));
  two.commands.push_back(command(13, 0, 0, 0));
  expect_rejected(encode_request(1, two), EINVAL, "MMC_IOC_CMD with 2");
  IoctlRequest none = single(Node::user, command(13, 0, 0, 0));
  none.commands.clear();
  expect_rejected(encode_request(1, none), EINVAL, "MMC_IOC_CMD with 0");
}

TEST(BridgeProtocolRequest, MultiCmdWithNoCommandsIsEinval) {
  expect_rejected(encode_request(1, multi(Node::rpmb, {})), EINVAL, "MULTI_CMD with 0");
}

TEST(BridgeProtocolRequest, MultiFieldOtherThanZeroOrOneIsEinval) {
  Bytes m = encode_request(1, single(Node::user, command(13, 0, 0, 0)));
  m[kHeaderSize + 1] = 2;
  expect_rejected(m, EINVAL, "multi = 2");
}

TEST(BridgeProtocolRequest, CommandOver512KiBIsEoverflow) {
  expect_rejected(encode_request(1, single(Node::user, command(18, 0, 512, 1025))), EOVERFLOW, "read 512 KiB + 512");
  expect_rejected(encode_request(1, single(Node::user, command(25, 1, 512, 1025))), EOVERFLOW, "write 512 KiB + 512");
  // blksz x blocks = 2^32 wraps to 0 in 32 bits: the decoder must not be fooled.
  expect_rejected(encode_request(1, single(Node::user, command(18, 0, 0x10000, 0x10000))), EOVERFLOW, "2^32 bytes");
  expect_rejected(encode_request(1, single(Node::user, command(18, 0, 0xFFFFFFFF, 0xFFFFFFFF))), EOVERFLOW,
                  "max x max");
  // The third command of a chain is checked too.
  expect_rejected(
      encode_request(1, multi(Node::user, {command(13, 0, 0, 0), command(13, 0, 0, 0), command(18, 0, 1024, 513)})),
      EOVERFLOW, "third command");
}

TEST(BridgeProtocolRequest, MoreThan32MiBInAllIsEnomem) {
  std::vector<IoctlCommand> reads(65, command(18, 0, 512, 1024));
  expect_rejected(encode_request(1, multi(Node::user, reads)), ENOMEM, "65 x 512 KiB");
}

TEST(BridgeProtocolRequest, WriteDataMustBeBlkszTimesBlocks) {
  IoctlCommand short_data = command(25, 1, 512, 2);
  short_data.data.resize(512);
  expect_rejected(encode_request(1, single(Node::rpmb, short_data)), EINVAL, "512 of 1024 bytes");
  IoctlCommand long_data = command(25, 1, 512, 1);
  long_data.data.resize(1024);
  expect_rejected(encode_request(1, single(Node::rpmb, long_data)), EINVAL, "1024 of 512 bytes");
  IoctlCommand no_data = command(25, 0x80000000, 512, 1);
  no_data.data.clear();
  expect_rejected(encode_request(1, single(Node::rpmb, no_data)), EINVAL, "reliable write without data");
}

TEST(BridgeProtocolRequest, ReadWithDataIsEinval) {
  IoctlCommand read = command(18, 0, 512, 1);
  read.data = Bytes(512, 1);
  expect_rejected(encode_request(1, single(Node::rpmb, read)), EINVAL, "read carrying data");
  IoctlCommand no_transfer = command(13, 0, 0, 0);
  no_transfer.data = Bytes(4, 1);
  expect_rejected(encode_request(1, single(Node::user, no_transfer)), EINVAL, "CMD13 carrying data");
}

TEST(BridgeProtocolRequest, DescriptorsThatDoNotFitAreEinval) {
  Bytes m = encode_request(1, multi(Node::user, {command(13, 0, 0, 0), command(13, 0, 0, 0)}));
  put_u32(m, kHeaderSize + 4, 3);  // claims a third descriptor that is not there
  expect_rejected(m, EINVAL, "3 descriptors, 2 present");
}

TEST(BridgeProtocolRequest, TrailingBytesAreEinval) {
  for (const Bytes& valid : valid_request_messages()) {
    Bytes m = valid;
    m.push_back(0);
    fix_length(m);
    expect_rejected(m, EINVAL, "one trailing byte");
  }
}

TEST(BridgeProtocolRequest, NodeAbove3IsEinval) {
  for (const Bytes& valid : valid_request_messages()) {
    if (header_of(valid).type == MessageType::describe_request) continue;  // no node field
    for (std::uint8_t node : {4, 5, 0x80, 0xFF}) {
      Bytes m = valid;
      m[kHeaderSize] = node;
      expect_rejected(m, EINVAL, "node");
    }
  }
}

TEST(BridgeProtocolRequest, NonzeroReservedBytesAreEinval) {
  for (const Bytes& valid : valid_request_messages()) {
    const MessageType type = header_of(valid).type;
    if (type == MessageType::describe_request) continue;
    // ioctl: bytes 2..3 (byte 1 is `multi`); block read/write and flush: bytes 1..3.
    const std::size_t first = type == MessageType::ioctl_request ? 2 : 1;
    for (std::size_t at = first; at < 4; ++at) {
      Bytes m = valid;
      m[kHeaderSize + at] = 1;
      expect_rejected(m, EINVAL, "reserved byte");
    }
  }
}

TEST(BridgeProtocolRequest, BlockReadRangeRules) {
  expect_rejected(encode_request(1, BlockReadRequest{Node::user, 100, 512}), EINVAL, "offset 100");
  expect_rejected(encode_request(1, BlockReadRequest{Node::user, 512, 100}), EINVAL, "length 100");
  expect_rejected(encode_request(1, BlockReadRequest{Node::user, 512, 513}), EINVAL, "length 513");
  expect_rejected(encode_request(1, BlockReadRequest{Node::user, 0, 0}), EINVAL, "length 0");
  expect_rejected(
      encode_request(1, BlockReadRequest{Node::user, 0, static_cast<std::uint32_t>(kMaxBlockTransfer + 512)}), EINVAL,
      "length 512 KiB + 512");
  expect_rejected(encode_request(1, BlockReadRequest{Node::user, 0, 0xFFFFFE00}), EINVAL, "length ~4 GiB");
  EXPECT_NO_THROW(decode_request_message(encode_request(1, BlockReadRequest{Node::user, 512, 512})));
}

TEST(BridgeProtocolRequest, BlockWriteRangeRules) {
  expect_rejected(encode_request(1, BlockWriteRequest{Node::user, 1, Bytes(512)}), EINVAL, "offset 1");
  expect_rejected(encode_request(1, BlockWriteRequest{Node::user, 0, Bytes(511)}), EINVAL, "length 511");
  expect_rejected(encode_request(1, BlockWriteRequest{Node::user, 0, Bytes()}), EINVAL, "length 0");
  expect_rejected(encode_request(1, BlockWriteRequest{Node::user, 0, Bytes(kMaxBlockTransfer + 512)}), EINVAL,
                  "length 512 KiB + 512");
  EXPECT_NO_THROW(
      decode_request_message(encode_request(1, BlockWriteRequest{Node::user, 0, Bytes(kMaxBlockTransfer)})));
}

TEST(BridgeProtocolRequest, BlockWriteLengthMustMatchTheData) {
  const Bytes valid = encode_request(1, BlockWriteRequest{Node::user, 0, Bytes(1024, 1)});
  Bytes says_more = valid;
  put_u32(says_more, kHeaderSize + 4, 1536);
  expect_rejected(says_more, EINVAL, "length 1536, 1024 follow");
  Bytes says_less = valid;
  put_u32(says_less, kHeaderSize + 4, 512);
  expect_rejected(says_less, EINVAL, "length 512, 1024 follow");
}

TEST(BridgeProtocolRequest, PayloadSizeMustEqualTheHeadersLength) {
  for (const Bytes& valid : valid_request_messages()) {
    const MessageHeader h = header_of(valid);
    Bytes longer = valid;
    longer.push_back(0);  // one byte more than the header says
    const ProtocolError more =
        protocol_error([&] { decode_request(h, longer.data() + kHeaderSize, longer.size() - kHeaderSize); });
    EXPECT_EQ(more.error(), EINVAL);
    EXPECT_FALSE(more.fatal());
    if (h.payload_length == 0) continue;
    const ProtocolError less =
        protocol_error([&] { decode_request(h, valid.data() + kHeaderSize, valid.size() - kHeaderSize - 1); });
    EXPECT_EQ(less.error(), EINVAL);
    EXPECT_FALSE(less.fatal());
  }
}

TEST(BridgeProtocolRequest, ReplyTypesAreNotRequests) {
  for (const Bytes& reply : valid_reply_messages()) expect_rejected(reply, EINVAL, "a reply sent as a request");
}

TEST(BridgeProtocolReply, RequestTypesAreNotReplies) {
  for (const Bytes& request : valid_request_messages()) {
    const ProtocolError e = protocol_error([&] { decode_reply_message(request); });
    EXPECT_EQ(e.error(), EINVAL);
    EXPECT_FALSE(e.fatal());
  }
}

TEST(BridgeProtocolReply, MalformedRepliesAreRejected) {
  IoctlReply big;
  big.results.resize(1);
  big.results[0].data = Bytes(kMaxCommandBytes + 512);
  EXPECT_THROW(decode_reply_message(encode_reply(1, big)), ProtocolError);

  IoctlReply many;
  many.results.resize(kMaxCommands + 1);
  EXPECT_THROW(decode_reply_message(encode_reply(1, many)), ProtocolError);

  Bytes describe = encode_reply(1, DescribeReply{});
  put_u32(describe, kHeaderSize + 16, 2);  // version
  EXPECT_THROW(decode_reply_message(describe), ProtocolError);
  describe = encode_reply(1, DescribeReply{});
  put_u32(describe, kHeaderSize + 20, 5);  // node count
  EXPECT_THROW(decode_reply_message(describe), ProtocolError);

  Bytes error = encode_reply(1, ErrorReply{ReplyStatus{EINVAL, 0, 0}, "abc"});
  put_u32(error, kHeaderSize + 16, 4);  // message length beyond the payload
  EXPECT_THROW(decode_reply_message(error), ProtocolError);

  Bytes read = encode_reply(1, BlockReadReply{ReplyStatus{}, Bytes(512)});
  read[kHeaderSize + 20] = 1;  // reserved
  EXPECT_THROW(decode_reply_message(read), ProtocolError);
}

// ---------------------------------------------------------------------------------------------
// Truncation and corruption: ProtocolError, never a crash (run this suite under ASan)

TEST(BridgeProtocolRobustness, EveryPrefixOfAValidRequestIsRejected) {
  for (const Bytes& valid : valid_request_messages()) {
    const MessageType type = header_of(valid).type;
    for (std::size_t n = 0; n < valid.size(); ++n) {
      SCOPED_TRACE("type " + std::to_string(static_cast<int>(type)) + ", prefix " + std::to_string(n));
      // As received: the header still announces the full payload.
      const Bytes prefix(valid.begin(), valid.begin() + static_cast<std::ptrdiff_t>(n));
      if (n < kHeaderSize) {
        const ProtocolError e = protocol_error([&] { decode_header(prefix.data(), prefix.size()); });
        EXPECT_TRUE(e.fatal());
        continue;
      }
      const ProtocolError e = protocol_error([&] { decode_request_message(prefix); });
      EXPECT_FALSE(e.fatal());
      // As a peer could frame it: the header announces exactly the truncated payload.
      Bytes reframed = prefix;
      fix_length(reframed);
      const ProtocolError r = protocol_error([&] { decode_request_message(reframed); });
      EXPECT_EQ(r.error(), EINVAL) << r.what();
      EXPECT_FALSE(r.fatal());
    }
  }
}

TEST(BridgeProtocolRobustness, EveryPrefixOfAValidReplyIsRejected) {
  for (const Bytes& valid : valid_reply_messages()) {
    for (std::size_t n = kHeaderSize; n < valid.size(); ++n) {
      SCOPED_TRACE("prefix " + std::to_string(n));
      Bytes reframed(valid.begin(), valid.begin() + static_cast<std::ptrdiff_t>(n));
      EXPECT_THROW(decode_reply_message(reframed), ProtocolError);
      fix_length(reframed);
      EXPECT_THROW(decode_reply_message(reframed), ProtocolError);
    }
  }
}

// Random corruption of valid messages (header length kept consistent): decoding either succeeds
// or throws ProtocolError; any other exception or a crash fails.
TEST(BridgeProtocolRobustness, CorruptedMessagesDecodeOrThrowProtocolError) {
  std::mt19937 random(20240601);
  std::vector<Bytes> messages = valid_request_messages();
  for (Bytes& reply : valid_reply_messages()) messages.push_back(std::move(reply));
  int decoded = 0;
  int rejected = 0;
  for (int round = 0; round < 4000; ++round) {
    Bytes m = messages[random() % messages.size()];
    const int flips = 1 + static_cast<int>(random() % 4);
    for (int i = 0; i < flips; ++i) {
      // Mostly the payload's first 64 bytes, where the fields are.
      const std::size_t span = std::min<std::size_t>(m.size() - kHeaderSize + 1, 64);
      const std::size_t at = kHeaderSize + random() % span;
      if (at < m.size()) m[at] = static_cast<std::uint8_t>(random());
    }
    if (random() % 8 == 0) m.resize(kHeaderSize + random() % (m.size() - kHeaderSize + 1));
    fix_length(m);
    try {
      const MessageHeader h = header_of(m);
      if (static_cast<std::uint16_t>(h.type) < 0x80) {
        decode_request(h, m.data() + kHeaderSize, m.size() - kHeaderSize);
      } else {
        decode_reply(h, m.data() + kHeaderSize, m.size() - kHeaderSize);
      }
      ++decoded;
    } catch (const ProtocolError&) {
      ++rejected;
    }
  }
  EXPECT_GT(rejected, 0);
  EXPECT_GT(decoded, 0);
}

}  // namespace
}  // namespace emmcsim::transport::bridge
