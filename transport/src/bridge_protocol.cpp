// The bridge protocol's encoder and decoder (see bridge_protocol.hpp, docs/bridge-protocol.md).
#include "emmcsim/transport/bridge_protocol.hpp"

#include <cerrno>
#include <cstring>

#include "emmcsim/support/little_endian.hpp"

namespace emmcsim::transport::bridge {
namespace {

using support::LittleEndianWriter;

void write_status(LittleEndianWriter& w, const ReplyStatus& s) {
  w.u32(static_cast<std::uint32_t>(s.error));
  w.u32(s.flags);
  w.u64(s.simulated_ps);
}

// The header, then the payload.
std::vector<std::uint8_t> message(MessageType type, std::uint32_t request_id,
                                  const std::vector<std::uint8_t>& payload) {
  if (payload.size() > kMaxPayload) {
    throw ProtocolError(ENOMEM, false, "message payload exceeds the protocol's limit");
  }
  std::vector<std::uint8_t> out;
  out.reserve(kHeaderSize + payload.size());
  LittleEndianWriter w(out);
  w.u32(kMagic);
  w.u16(kVersion);
  w.u16(static_cast<std::uint16_t>(type));
  w.u32(request_id);
  w.u32(static_cast<std::uint32_t>(payload.size()));
  w.bytes(payload.data(), payload.size());
  return out;
}

// Reads the fields of one message part; a part that ends early, or any other problem fail()
// names, is a ProtocolError (EINVAL) that starts with `what` ("ioctl request: …").
class Reader {
 public:
  Reader(const std::uint8_t* p, std::size_t n, const char* what)
      : what_(what), in_(p, n, [this, n](std::size_t, std::size_t) {
          fail("payload of " + std::to_string(n) + " bytes is truncated");
        }) {}
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;

  std::uint8_t u8() { return in_.u8(); }
  std::uint16_t u16() { return in_.u16(); }
  std::uint32_t u32() { return in_.u32(); }
  std::uint64_t u64() { return in_.u64(); }
  std::vector<std::uint8_t> bytes(std::size_t n) {
    const std::uint8_t* b = in_.bytes(n);
    return std::vector<std::uint8_t>(b, b + n);
  }
  void zeros(std::size_t n, const char* field) {
    const std::uint8_t* b = in_.bytes(n);
    for (std::size_t i = 0; i < n; ++i) {
      if (b[i] != 0) fail(std::string(field) + " must be zero");
    }
  }
  ReplyStatus status() {
    ReplyStatus s;
    s.error = static_cast<std::int32_t>(u32());
    s.flags = u32();
    s.simulated_ps = u64();
    return s;
  }
  std::size_t remaining() const { return in_.remaining(); }
  void end() {
    if (remaining() != 0) fail(std::to_string(remaining()) + " bytes after the end of the message");
  }
  [[noreturn]] void fail(const std::string& why) const {
    throw ProtocolError(EINVAL, false, std::string(what_) + ": " + why);
  }

 private:
  const char* what_;
  support::LittleEndianReader in_;  // never returns from running out: the handler throws
};

Node read_node(Reader& r) {
  const std::uint8_t v = r.u8();
  if (v >= kNodeCount) r.fail("node " + std::to_string(v) + " is not user (0), boot0 (1), boot1 (2) or rpmb (3)");
  return static_cast<Node>(v);
}

bool known_type(std::uint16_t t) {
  switch (static_cast<MessageType>(t)) {
    case MessageType::ioctl_request:
    case MessageType::block_read_request:
    case MessageType::block_write_request:
    case MessageType::flush_request:
    case MessageType::describe_request:
    case MessageType::ioctl_reply:
    case MessageType::block_read_reply:
    case MessageType::block_write_reply:
    case MessageType::flush_reply:
    case MessageType::describe_reply:
    case MessageType::error_reply: return true;
  }
  return false;
}

std::string hex(std::uint32_t v) {
  static const char digits[] = "0123456789abcdef";
  std::string s = "0x";
  for (int i = 7; i >= 0; --i) s += digits[(v >> (4 * i)) & 0xF];
  return s;
}

// Offset/length rules shared by block reads and writes.
void check_block_range(Reader& r, std::uint64_t offset, std::size_t length) {
  if (length == 0 || length > kMaxBlockTransfer) {
    r.fail("length " + std::to_string(length) + " is not between 1 and 524288 bytes");
  }
  if (offset % kSectorSize != 0 || length % kSectorSize != 0) {
    r.fail("offset " + std::to_string(offset) + " and length " + std::to_string(length) + " must be multiples of 512");
  }
}

IoctlRequest decode_ioctl(Reader& r) {
  IoctlRequest q;
  q.node = read_node(r);
  const std::uint8_t multi = r.u8();
  if (multi > 1) r.fail("multi must be 0 (MMC_IOC_CMD) or 1 (MMC_IOC_MULTI_CMD)");
  q.multi = multi == 1;
  r.zeros(2, "reserved field");
  const std::uint32_t count = r.u32();
  if (count > kMaxCommands) {
    r.fail(std::to_string(count) + " commands exceed MMC_IOC_MAX_CMDS (255)");
  }
  if (!q.multi && count != 1) r.fail("MMC_IOC_CMD carries exactly one command, not " + std::to_string(count));
  if (count == 0) r.fail("MMC_IOC_MULTI_CMD with no commands");
  if (r.remaining() < std::size_t{count} * kCommandDescriptorSize) {
    r.fail(std::to_string(count) + " command descriptors do not fit in the payload");
  }
  q.commands.resize(count);
  std::vector<std::uint32_t> data_lengths(count);
  std::size_t total = 0;
  for (std::uint32_t i = 0; i < count; ++i) {
    IoctlCommand& c = q.commands[i];
    c.write_flag = r.u32();
    c.is_acmd = r.u32();
    c.opcode = r.u32();
    c.arg = r.u32();
    c.flags = r.u32();
    c.blksz = r.u32();
    c.blocks = r.u32();
    c.postsleep_min_us = r.u32();
    c.postsleep_max_us = r.u32();
    c.data_timeout_ns = r.u32();
    c.cmd_timeout_ms = r.u32();
    data_lengths[i] = r.u32();
    const std::uint64_t bytes = std::uint64_t{c.blksz} * c.blocks;
    if (bytes > kMaxCommandBytes) {
      throw ProtocolError(EOVERFLOW, false,
                          "ioctl request: command " + std::to_string(i) + " moves " + std::to_string(bytes) +
                              " bytes, more than MMC_IOC_MAX_BYTES (524288)");
    }
    const std::uint64_t expected = c.writes() ? bytes : 0;
    if (data_lengths[i] != expected) {
      r.fail("command " + std::to_string(i) + " carries " + std::to_string(data_lengths[i]) + " data bytes but blksz " +
             std::to_string(c.blksz) + " x blocks " + std::to_string(c.blocks) +
             (c.writes() ? " needs " : " (a read) needs ") + std::to_string(expected));
    }
    total += static_cast<std::size_t>(bytes);
    if (total > kMaxRequestDataBytes) {
      throw ProtocolError(ENOMEM, false, "ioctl request: the commands move more than emmcsim's 32 MiB per request");
    }
  }
  for (std::uint32_t i = 0; i < count; ++i) {
    if (data_lengths[i] != 0) q.commands[i].data = r.bytes(data_lengths[i]);
  }
  r.end();
  return q;
}

}  // namespace

MessageHeader decode_header(const std::uint8_t* bytes, std::size_t size) {
  if (size < kHeaderSize) {
    throw ProtocolError(EPROTO, true, "message header truncated at " + std::to_string(size) + " bytes");
  }
  Reader r(bytes, kHeaderSize, "message header");
  const std::uint32_t magic = r.u32();
  if (magic != kMagic) {
    throw ProtocolError(EPROTO, true, "bad magic " + hex(magic) + " (not an emmcsim bridge client?)");
  }
  const std::uint16_t version = r.u16();
  if (version != kVersion) {
    throw ProtocolError(
        EPROTO, true,
        "protocol version " + std::to_string(version) + " is not supported (this daemon speaks version 1)");
  }
  const std::uint16_t type = r.u16();
  if (!known_type(type)) {
    throw ProtocolError(EPROTO, true, "unknown message type " + hex(type));
  }
  MessageHeader h;
  h.type = static_cast<MessageType>(type);
  h.request_id = r.u32();
  h.payload_length = r.u32();
  if (h.payload_length > kMaxPayload) {
    throw ProtocolError(EPROTO, true,
                        "payload of " + std::to_string(h.payload_length) + " bytes exceeds the limit of " +
                            std::to_string(kMaxPayload));
  }
  return h;
}

MessageType request_type(const Request& request) {
  struct Visitor {
    MessageType operator()(const IoctlRequest&) const { return MessageType::ioctl_request; }
    MessageType operator()(const BlockReadRequest&) const { return MessageType::block_read_request; }
    MessageType operator()(const BlockWriteRequest&) const { return MessageType::block_write_request; }
    MessageType operator()(const FlushRequest&) const { return MessageType::flush_request; }
    MessageType operator()(const DescribeRequest&) const { return MessageType::describe_request; }
  };
  return std::visit(Visitor{}, request);
}

MessageType reply_type_for(MessageType request) {
  switch (request) {
    case MessageType::ioctl_request: return MessageType::ioctl_reply;
    case MessageType::block_read_request: return MessageType::block_read_reply;
    case MessageType::block_write_request: return MessageType::block_write_reply;
    case MessageType::flush_request: return MessageType::flush_reply;
    case MessageType::describe_request: return MessageType::describe_reply;
    default: return MessageType::error_reply;
  }
}

std::vector<std::uint8_t> encode_request(std::uint32_t request_id, const Request& request) {
  std::vector<std::uint8_t> payload;
  LittleEndianWriter w(payload);
  struct Visitor {
    LittleEndianWriter& w;
    void operator()(const IoctlRequest& q) const {
      w.u8(static_cast<std::uint8_t>(q.node));
      w.u8(q.multi ? 1 : 0);
      w.u16(0);
      w.u32(static_cast<std::uint32_t>(q.commands.size()));
      for (const IoctlCommand& c : q.commands) {
        for (std::uint32_t v : {c.write_flag, c.is_acmd, c.opcode, c.arg, c.flags, c.blksz, c.blocks,
                                c.postsleep_min_us, c.postsleep_max_us, c.data_timeout_ns, c.cmd_timeout_ms}) {
          w.u32(v);
        }
        w.u32(static_cast<std::uint32_t>(c.data.size()));
      }
      for (const IoctlCommand& c : q.commands) w.bytes(c.data.data(), c.data.size());
    }
    void operator()(const BlockReadRequest& q) const {
      w.u8(static_cast<std::uint8_t>(q.node));
      w.zeros(3);
      w.u32(q.length);
      w.u64(q.offset);
    }
    void operator()(const BlockWriteRequest& q) const {
      w.u8(static_cast<std::uint8_t>(q.node));
      w.zeros(3);
      w.u32(static_cast<std::uint32_t>(q.data.size()));
      w.u64(q.offset);
      w.bytes(q.data.data(), q.data.size());
    }
    void operator()(const FlushRequest& q) const {
      w.u8(static_cast<std::uint8_t>(q.node));
      w.zeros(3);
    }
    void operator()(const DescribeRequest&) const {}
  };
  std::visit(Visitor{w}, request);
  return message(request_type(request), request_id, payload);
}

Request decode_request(const MessageHeader& header, const std::uint8_t* payload, std::size_t size) {
  if (size != header.payload_length) {
    throw ProtocolError(
        EINVAL, false,
        "payload is " + std::to_string(size) + " bytes, header says " + std::to_string(header.payload_length));
  }
  switch (header.type) {
    case MessageType::ioctl_request: {
      Reader r(payload, size, "ioctl request");
      return decode_ioctl(r);
    }
    case MessageType::block_read_request: {
      Reader r(payload, size, "block read request");
      BlockReadRequest q;
      q.node = read_node(r);
      r.zeros(3, "reserved field");
      q.length = r.u32();
      q.offset = r.u64();
      check_block_range(r, q.offset, q.length);
      r.end();
      return q;
    }
    case MessageType::block_write_request: {
      Reader r(payload, size, "block write request");
      BlockWriteRequest q;
      q.node = read_node(r);
      r.zeros(3, "reserved field");
      const std::uint32_t length = r.u32();
      q.offset = r.u64();
      check_block_range(r, q.offset, length);
      if (r.remaining() != length) {
        r.fail("length says " + std::to_string(length) + " bytes but " + std::to_string(r.remaining()) + " follow");
      }
      q.data = r.bytes(length);
      return q;
    }
    case MessageType::flush_request: {
      Reader r(payload, size, "flush request");
      FlushRequest q;
      q.node = read_node(r);
      r.zeros(3, "reserved field");
      r.end();
      return q;
    }
    case MessageType::describe_request: {
      Reader r(payload, size, "describe request");
      r.end();
      return DescribeRequest{};
    }
    default:
      throw ProtocolError(EINVAL, false,
                          "message type " + hex(static_cast<std::uint16_t>(header.type)) + " is not a request");
  }
}

std::vector<std::uint8_t> encode_reply(std::uint32_t request_id, const Reply& reply) {
  std::vector<std::uint8_t> payload;
  LittleEndianWriter w(payload);
  MessageType type = MessageType::error_reply;
  struct Visitor {
    LittleEndianWriter& w;
    MessageType& type;
    void operator()(const IoctlReply& p) const {
      type = MessageType::ioctl_reply;
      write_status(w, p.status);
      w.u32(static_cast<std::uint32_t>(p.results.size()));
      for (const IoctlCommandResult& c : p.results) {
        for (std::uint32_t v : c.response) w.u32(v);
        w.u32(static_cast<std::uint32_t>(c.data.size()));
      }
      for (const IoctlCommandResult& c : p.results) w.bytes(c.data.data(), c.data.size());
    }
    void operator()(const BlockReadReply& p) const {
      type = MessageType::block_read_reply;
      write_status(w, p.status);
      w.u32(static_cast<std::uint32_t>(p.data.size()));
      w.u32(0);
      w.bytes(p.data.data(), p.data.size());
    }
    void operator()(const BlockWriteReply& p) const {
      type = MessageType::block_write_reply;
      write_status(w, p.status);
    }
    void operator()(const FlushReply& p) const {
      type = MessageType::flush_reply;
      write_status(w, p.status);
    }
    void operator()(const DescribeReply& p) const {
      type = MessageType::describe_reply;
      write_status(w, p.status);
      w.u32(kVersion);
      w.u32(static_cast<std::uint32_t>(kNodeCount));
      for (std::uint64_t s : p.node_size) w.u64(s);
      w.u32(p.rpmb_size_mult);
      w.u32(p.rel_sectors);
      w.bytes(p.cid.data(), p.cid.size());
    }
    void operator()(const ErrorReply& p) const {
      type = MessageType::error_reply;
      write_status(w, p.status);
      w.u32(static_cast<std::uint32_t>(p.message.size()));
      w.bytes(reinterpret_cast<const std::uint8_t*>(p.message.data()), p.message.size());
    }
  };
  std::visit(Visitor{w, type}, reply);
  return message(type, request_id, payload);
}

Reply decode_reply(const MessageHeader& header, const std::uint8_t* payload, std::size_t size) {
  if (size != header.payload_length) {
    throw ProtocolError(
        EINVAL, false,
        "payload is " + std::to_string(size) + " bytes, header says " + std::to_string(header.payload_length));
  }
  switch (header.type) {
    case MessageType::ioctl_reply: {
      Reader r(payload, size, "ioctl reply");
      IoctlReply p;
      p.status = r.status();
      const std::uint32_t count = r.u32();
      if (count > kMaxCommands) r.fail(std::to_string(count) + " results exceed 255");
      if (r.remaining() < std::size_t{count} * 20) r.fail("result descriptors truncated");
      p.results.resize(count);
      std::vector<std::uint32_t> lengths(count);
      for (std::uint32_t i = 0; i < count; ++i) {
        for (std::uint32_t& v : p.results[i].response) v = r.u32();
        lengths[i] = r.u32();
        if (lengths[i] > kMaxCommandBytes) r.fail("result data over 512 KiB");
      }
      for (std::uint32_t i = 0; i < count; ++i) p.results[i].data = r.bytes(lengths[i]);
      r.end();
      return p;
    }
    case MessageType::block_read_reply: {
      Reader r(payload, size, "block read reply");
      BlockReadReply p;
      p.status = r.status();
      const std::uint32_t length = r.u32();
      r.zeros(4, "reserved field");
      if (length > kMaxBlockTransfer) r.fail("data over 512 KiB");
      p.data = r.bytes(length);
      r.end();
      return p;
    }
    case MessageType::block_write_reply: {
      Reader r(payload, size, "block write reply");
      BlockWriteReply p;
      p.status = r.status();
      r.end();
      return p;
    }
    case MessageType::flush_reply: {
      Reader r(payload, size, "flush reply");
      FlushReply p;
      p.status = r.status();
      r.end();
      return p;
    }
    case MessageType::describe_reply: {
      Reader r(payload, size, "describe reply");
      DescribeReply p;
      p.status = r.status();
      const std::uint32_t version = r.u32();
      if (version != kVersion) r.fail("version " + std::to_string(version));
      const std::uint32_t nodes = r.u32();
      if (nodes != kNodeCount) r.fail(std::to_string(nodes) + " nodes, expected 4");
      for (std::uint64_t& s : p.node_size) s = r.u64();
      p.rpmb_size_mult = r.u32();
      p.rel_sectors = r.u32();
      for (std::uint8_t& b : p.cid) b = r.u8();
      r.end();
      return p;
    }
    case MessageType::error_reply: {
      Reader r(payload, size, "error reply");
      ErrorReply p;
      p.status = r.status();
      const std::uint32_t length = r.u32();
      if (length != r.remaining()) r.fail("message length disagrees with the payload");
      const std::vector<std::uint8_t> text = r.bytes(length);
      p.message.assign(text.begin(), text.end());
      return p;
    }
    default:
      throw ProtocolError(EINVAL, false,
                          "message type " + hex(static_cast<std::uint16_t>(header.type)) + " is not a reply");
  }
}

}  // namespace emmcsim::transport::bridge
