// vhost-user message codec: every payload round-trips, and every malformed header or payload
// (sizes, counts, descriptor numbers, reserved bits, wrapping regions) is refused with the right
// fatality.
#include <gtest/gtest.h>

#include <cstring>

#include "emmcsim/transport/vhost_user_message.hpp"

namespace emmcsim::transport::vhost_user {
namespace {

using Bytes = std::vector<std::uint8_t>;

Bytes header(std::uint32_t request, std::uint32_t flags, std::uint32_t size) {
  Bytes b(kHeaderSize);
  std::memcpy(b.data(), &request, 4);
  std::memcpy(b.data() + 4, &flags, 4);
  std::memcpy(b.data() + 8, &size, 4);
  return b;
}

// The payload part of an encoded message.
Bytes payload_of(const Bytes& message) { return Bytes(message.begin() + kHeaderSize, message.end()); }

Payload round_trip(Request request, const Payload& payload, std::size_t fds) {
  const Bytes message = encode_message(static_cast<std::uint32_t>(request), kVersion, payload);
  const Header h = decode_header(message.data(), message.size());
  EXPECT_EQ(h.request, static_cast<std::uint32_t>(request));
  EXPECT_EQ(h.size, message.size() - kHeaderSize);
  const Bytes body = payload_of(message);
  return decode_payload(h.request, body.data(), body.size(), fds);
}

bool fatal_error(const Bytes& bytes) {
  try {
    decode_header(bytes.data(), bytes.size());
  } catch (const MessageError& e) {
    return e.fatal();
  }
  return false;
}

void expect_refused(Request request, const Bytes& payload, std::size_t fds, const std::string& words) {
  try {
    decode_payload(static_cast<std::uint32_t>(request), payload.data(), payload.size(), fds);
    ADD_FAILURE() << request_name(static_cast<std::uint32_t>(request)) << " was accepted";
  } catch (const MessageError& e) {
    EXPECT_FALSE(e.fatal());
    EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << e.what();
  }
}

TEST(VhostUserMessage, HeaderChecksVersionReplyBitAndSize) {
  EXPECT_NO_THROW(decode_header(header(1, kVersion, 0).data(), kHeaderSize));
  EXPECT_NO_THROW(decode_header(header(1, kVersion | kFlagNeedReply, 8).data(), kHeaderSize));
  EXPECT_TRUE(fatal_error(header(1, 0, 0)));                       // version 0
  EXPECT_TRUE(fatal_error(header(1, 2, 0)));                       // version 2
  EXPECT_TRUE(fatal_error(header(1, kVersion | kFlagReply, 0)));   // a reply from the front-end
  EXPECT_TRUE(fatal_error(header(1, kVersion, kMaxPayload + 1)));  // oversized
  EXPECT_FALSE(fatal_error(header(1, kVersion, kMaxPayload)));
  EXPECT_TRUE(fatal_error(Bytes(kHeaderSize - 1)));  // truncated
}

TEST(VhostUserMessage, EveryPayloadRoundTrips) {
  EXPECT_TRUE(std::holds_alternative<NoPayload>(round_trip(Request::get_features, NoPayload{}, 0)));
  EXPECT_EQ(std::get<U64Payload>(round_trip(Request::set_features, U64Payload{0x140000000ull}, 0)).value,
            0x140000000ull);
  const auto state = std::get<VringState>(round_trip(Request::set_vring_num, VringState{0, 256}, 0));
  EXPECT_EQ(state.index, 0u);
  EXPECT_EQ(state.num, 256u);
  const auto address = std::get<VringAddress>(
      round_trip(Request::set_vring_addr, VringAddress{0, 1, 0x1000, 0x3000, 0x2000, 0x9000}, 0));
  EXPECT_EQ(address.descriptor, 0x1000u);
  EXPECT_EQ(address.used, 0x3000u);
  EXPECT_EQ(address.available, 0x2000u);
  EXPECT_EQ(address.log, 0x9000u);
  EXPECT_EQ(address.flags, 1u);
  const auto kick = std::get<VringFile>(round_trip(Request::set_vring_kick, VringFile{0, true}, 1));
  EXPECT_TRUE(kick.has_fd);
  EXPECT_FALSE(std::get<VringFile>(round_trip(Request::set_vring_call, VringFile{0, false}, 0)).has_fd);
  MemoryTable table;
  table.regions.push_back({0x0, 0x80000000, 0x7f0000000000, 0});
  table.regions.push_back({0x100000000, 0x40000000, 0x7f0100000000, 0x80000000});
  const auto decoded = std::get<MemoryTable>(round_trip(Request::set_mem_table, table, 2));
  ASSERT_EQ(decoded.regions.size(), 2u);
  EXPECT_EQ(decoded.regions[1].guest_address, 0x100000000u);
  EXPECT_EQ(decoded.regions[1].size, 0x40000000u);
  EXPECT_EQ(decoded.regions[1].user_address, 0x7f0100000000u);
  EXPECT_EQ(decoded.regions[1].mmap_offset, 0x80000000u);
  const auto one = std::get<SingleMemoryRegion>(
      round_trip(Request::add_mem_reg, SingleMemoryRegion{{0x1000, 0x2000, 0x3000, 0}}, 1));
  EXPECT_EQ(one.region.size, 0x2000u);
  const auto config = std::get<ConfigSpace>(round_trip(Request::get_config, ConfigSpace{0, 0, Bytes(3)}, 0));
  EXPECT_EQ(config.bytes.size(), 3u);
}

TEST(VhostUserMessage, PayloadSizesMustBeExact) {
  expect_refused(Request::get_features, Bytes(8), 0, "payload of 8 bytes, expected 0");
  expect_refused(Request::set_features, Bytes(4), 0, "expected 8");
  expect_refused(Request::set_vring_num, Bytes(12), 0, "expected 8");
  expect_refused(Request::set_vring_addr, Bytes(32), 0, "expected 40");
  expect_refused(Request::add_mem_reg, Bytes(32), 1, "expected 40");
}

TEST(VhostUserMessage, DescriptorCountsMustMatch) {
  expect_refused(Request::set_features, Bytes(8), 1, "1 file descriptors came with it, expected 0");
  expect_refused(Request::set_vring_kick, Bytes(8), 0, "expected 1");
  Bytes no_fd(8);
  no_fd[1] = 0x01;  // bit 8: no fd
  expect_refused(Request::set_vring_kick, no_fd, 1, "expected 0");
  const Bytes table =
      payload_of(encode_message(5, kVersion, MemoryTable{{{0, 4096, 0x10000, 0}, {8192, 4096, 0x20000, 0}}}));
  expect_refused(Request::set_mem_table, table, 1, "expected 2");
  expect_refused(Request::add_mem_reg, payload_of(encode_message(37, kVersion, SingleMemoryRegion{{0, 4096, 0, 0}})), 0,
                 "expected 1");
}

TEST(VhostUserMessage, MemoryTablesAreBounded) {
  Bytes zero(8);
  expect_refused(Request::set_mem_table, zero, 0, "0 memory regions");
  MemoryTable nine;
  for (std::uint64_t i = 0; i < 9; ++i) nine.regions.push_back({i << 20, 4096, i << 24, 0});
  expect_refused(Request::set_mem_table, payload_of(encode_message(5, kVersion, nine)), 9, "9 memory regions");
  // A count that promises more regions than the payload holds.
  Bytes short_table = payload_of(encode_message(5, kVersion, MemoryTable{{{0, 4096, 0, 0}}}));
  short_table[0] = 2;
  expect_refused(Request::set_mem_table, short_table, 2, "expected 72 for 2 regions");
  // Unused slots after the regions are fine (virtio_uml's two-slot table with one region), but
  // slots are whole and at most eight.
  Bytes uml_table = payload_of(encode_message(5, kVersion, MemoryTable{{{0, 4096, 0x10000, 0}}}));
  uml_table.resize(8 + 2 * 32);
  const auto uml = std::get<MemoryTable>(decode_payload(5, uml_table.data(), uml_table.size(), 1));
  ASSERT_EQ(uml.regions.size(), 1u);
  EXPECT_EQ(uml.regions[0].user_address, 0x10000u);
  Bytes ragged = uml_table;
  ragged.resize(8 + 32 + 5);
  expect_refused(Request::set_mem_table, ragged, 1, "not a table of up to 8 32-byte region slots");
  Bytes too_long = uml_table;
  too_long.resize(8 + 9 * 32);
  expect_refused(Request::set_mem_table, too_long, 1, "not a table of up to 8");
  expect_refused(Request::set_mem_table, payload_of(encode_message(5, kVersion, MemoryTable{{{0, 0, 0, 0}}})), 1,
                 "size 0");
  expect_refused(Request::set_mem_table,
                 payload_of(encode_message(5, kVersion, MemoryTable{{{~std::uint64_t{0} - 10, 4096, 0, 0}}})), 1,
                 "wraps");
  expect_refused(Request::add_mem_reg,
                 payload_of(encode_message(37, kVersion, SingleMemoryRegion{{0, 4096, ~std::uint64_t{0}, 0}})), 1,
                 "wraps");
}

TEST(VhostUserMessage, VringFileReservedBitsAndConfigSizes) {
  Bytes file(8);
  file[2] = 0x01;  // bit 16
  expect_refused(Request::set_vring_call, file, 1, "bits other than");
  Bytes config = payload_of(encode_message(24, kVersion, ConfigSpace{0, 0, Bytes(3)}));
  config[4] = 4;  // claims 4 bytes, carries 3
  expect_refused(Request::get_config, config, 0, "expected 16");
  Bytes big(12);
  big[5] = 0x01;  // 256 + ...
  big[4] = 0x01;  // size 257
  expect_refused(Request::set_config, big, 0, "config size 257");
  expect_refused(Request::get_config, Bytes(8), 0, "shorter than its header");
}

TEST(VhostUserMessage, UnknownRequestsAreRefusedByName) {
  expect_refused(static_cast<Request>(77), Bytes(), 0, "request 77: not supported");
  expect_refused(Request::set_log_base, Bytes(16), 0, "VHOST_USER_SET_LOG_BASE: not supported");
}

TEST(VhostUserMessage, BackendChannelAndInbandKicksAsUmlSendsThem) {
  // SET_BACKEND_REQ_FD (SET_SLAVE_REQ_FD): no payload, the channel's descriptor beside it.
  EXPECT_TRUE(std::holds_alternative<NoPayload>(round_trip(Request::set_backend_req_fd, NoPayload{}, 1)));
  expect_refused(Request::set_backend_req_fd, Bytes(), 0, "0 file descriptors came with it, expected 1");
  expect_refused(Request::set_backend_req_fd, Bytes(8), 1, "payload of 8 bytes, expected 0");
  // VRING_KICK: a vring state {index, 0}, no descriptor.
  const auto kick = std::get<VringState>(round_trip(Request::vring_kick, VringState{1, 0}, 0));
  EXPECT_EQ(kick.index, 1u);
  EXPECT_EQ(kick.num, 0u);
  expect_refused(Request::vring_kick, Bytes(8), 1, "expected 0");
  expect_refused(Request::vring_kick, Bytes(16), 0, "expected 8");
  EXPECT_EQ(request_name(21), "VHOST_USER_SET_BACKEND_REQ_FD");
  EXPECT_EQ(request_name(35), "VHOST_USER_VRING_KICK");
  EXPECT_EQ(protocol_feature::kBackendReq, 1ull << 5);
  EXPECT_EQ(protocol_feature::kInbandNotifications, 1ull << 14);
}

TEST(VhostUserMessage, BackendRequestsDecodeAsAFrontEndReadsThem) {
  const Bytes call = encode_message(static_cast<std::uint32_t>(BackendRequest::vring_call), kVersion, VringState{1, 0});
  const Header h = decode_header(call.data(), call.size());
  EXPECT_EQ(h.request, 4u);
  EXPECT_FALSE(h.need_reply());
  const Bytes body = payload_of(call);
  EXPECT_EQ(std::get<VringState>(decode_backend_payload(h.request, body.data(), body.size(), 0)).index, 1u);
  EXPECT_TRUE(std::holds_alternative<NoPayload>(decode_backend_payload(2, nullptr, 0, 0)));
  EXPECT_THROW(decode_backend_payload(4, body.data(), 4, 0), MessageError);            // short
  EXPECT_THROW(decode_backend_payload(4, body.data(), body.size(), 1), MessageError);  // a descriptor
  EXPECT_THROW(decode_backend_payload(2, body.data(), body.size(), 0), MessageError);  // config change carries none
  try {
    decode_backend_payload(9, nullptr, 0, 0);
    ADD_FAILURE() << "back-end request 9 was accepted";
  } catch (const MessageError& e) {
    EXPECT_FALSE(e.fatal());
    EXPECT_NE(std::string(e.what()).find("back-end request 9: not supported"), std::string::npos) << e.what();
  }
  EXPECT_EQ(backend_request_name(4), "VHOST_USER_BACKEND_VRING_CALL");
  EXPECT_EQ(backend_request_name(2), "VHOST_USER_BACKEND_CONFIG_CHANGE_MSG");
}

TEST(VhostUserMessage, RepliesDecodeForTheRequestTheyAnswer) {
  const Bytes features = encode_reply(1, U64Payload{42});
  EXPECT_EQ(std::get<U64Payload>(decode_reply(1, features.data(), features.size())).value, 42u);
  EXPECT_THROW(decode_reply(15, features.data(), features.size()), MessageError);  // answers another request
  const Bytes not_a_reply = encode_message(1, kVersion, U64Payload{42});
  EXPECT_THROW(decode_reply(1, not_a_reply.data(), not_a_reply.size()), MessageError);
  const Bytes base = encode_reply(11, VringState{0, 7});
  EXPECT_EQ(std::get<VringState>(decode_reply(11, base.data(), base.size())).num, 7u);
  const Bytes config = encode_reply(24, ConfigSpace{0, 0, {32, 32, 255}});
  EXPECT_EQ(std::get<ConfigSpace>(decode_reply(24, config.data(), config.size())).bytes, (Bytes{32, 32, 255}));
}

}  // namespace
}  // namespace emmcsim::transport::vhost_user
