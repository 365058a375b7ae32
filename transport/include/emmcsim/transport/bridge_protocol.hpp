// The MMC-ioctl bridge protocol, version 1: what travels over the daemon's Unix socket between a
// client (the LD_PRELOAD shim, a test, a benchmark) and `emmcsim serve`. docs/bridge-protocol.md
// is the reference; this header and the document must agree.
//
// Every message is a 16-byte header followed by `payload_length` bytes, all integers
// little-endian:
//   u32 magic "EMMB"   u16 version (1)   u16 type   u32 request_id   u32 payload_length
// A client sends one request and reads its reply (same request_id) before the next. Requests
// carry what MMC_IOC_CMD / MMC_IOC_MULTI_CMD carry (the node, and per command: opcode, arg,
// flags, write_flag, blksz, blocks, the timeouts, the data written), or a block read/write on a
// node (the shim's read/write/pread/pwrite for dd and blkid), a cache flush (fsync), or a
// request for the device's description (node sizes).
//
// The requests and replies themselves are mmc's (emmcsim/mmc/mmcblk_requests.hpp, header-only);
// this is their wire format. This code is dependency-free standard C++ (the shim links it into
// arbitrary processes) and never trusts a byte: every decode checks sizes and values and throws
// ProtocolError.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "emmcsim/mmc/mmcblk_requests.hpp"

namespace emmcsim::transport::bridge {

inline constexpr std::uint32_t kMagic = 0x424D4D45;  // "EMMB" in byte order E M M B
inline constexpr std::uint16_t kVersion = 1;
inline constexpr std::size_t kHeaderSize = 16;

// The wire carries the requests and replies of emmcsim/mmc/mmcblk_requests.hpp; here they are
// named as the protocol's own.
using mmc::mmcblk::kMaxBlockTransfer;
using mmc::mmcblk::kMaxCommandBytes;
using mmc::mmcblk::kMaxCommands;
using mmc::mmcblk::kNodeCount;
using mmc::mmcblk::kSectorSize;
using mmc::mmcblk::Node;
using mmc::mmcblk::node_name;

// emmcsim's own limits: the data of one request (written and read, all commands together), and
// so the largest payload a peer may announce. The kernel's only bound here is memory.
inline constexpr std::size_t kMaxRequestDataBytes = 32 * 1024 * 1024;
inline constexpr std::size_t kCommandDescriptorSize = 48;
inline constexpr std::size_t kMaxPayload = 8 + kMaxCommands * kCommandDescriptorSize + kMaxRequestDataBytes;

enum class MessageType : std::uint16_t {
  ioctl_request = 0x0001,
  block_read_request = 0x0002,
  block_write_request = 0x0003,
  flush_request = 0x0004,
  describe_request = 0x0005,
  ioctl_reply = 0x0081,
  block_read_reply = 0x0082,
  block_write_reply = 0x0083,
  flush_reply = 0x0084,
  describe_reply = 0x0085,
  error_reply = 0x00FF,  // the request could not be decoded; see ErrorReply
};

struct MessageHeader {
  MessageType type = MessageType::error_reply;
  std::uint32_t request_id = 0;
  std::uint32_t payload_length = 0;
};

// A message could not be decoded. `error` is the errno a client sees (EINVAL for malformed
// input, EOVERFLOW for a command over 512 KiB as the kernel reports it, ENOMEM over emmcsim's
// per-request limit, EPROTO for a bad header). `fatal`: the byte stream cannot be trusted any
// more (bad magic, version or length) and the connection must be closed after the error reply.
class ProtocolError : public std::runtime_error {
 public:
  ProtocolError(int error, bool fatal, const std::string& what)
      : std::runtime_error(what), error_(error), fatal_(fatal) {}
  int error() const { return error_; }
  bool fatal() const { return fatal_; }

 private:
  int error_;
  bool fatal_;
};

// ---- Payloads ----------------------------------------------------------------------------
//
// Requests (node: 0 user, 1 boot0, 2 boot1, 3 rpmb):
//   ioctl_request        u8 node, u8 multi (0: MMC_IOC_CMD, 1: MMC_IOC_MULTI_CMD), u16 zero,
//                        u32 count, count × 48-byte command descriptors, then the data of every
//                        writing command in order. A descriptor is struct mmc_ioc_cmd without
//                        response[] and data_ptr, twelve u32: write_flag, is_acmd, opcode, arg,
//                        flags, blksz, blocks, postsleep_min_us, postsleep_max_us,
//                        data_timeout_ns, cmd_timeout_ms, and the number of data bytes that
//                        follow for it (blksz * blocks when write_flag is non-zero, else 0).
//   block_read_request   u8 node, u8[3] zero, u32 length, u64 offset.
//   block_write_request  as block_read_request, then `length` bytes.
//   flush_request        u8 node, u8[3] zero.
//   describe_request     empty.
// Replies, each starting with the status (16 bytes): i32 error, u32 flags, u64 simulated_ps:
//   ioctl_reply          status, u32 count, count × (u32 response[4], u32 data_length), then the
//                        data.
//   block_read_reply     status, u32 length, u32 zero, then the data.
//   block_write_reply    status.
//   flush_reply          status.
//   describe_reply       status, u32 protocol version, u32 node count (4), node count × u64 size
//                        in bytes, u32 rpmb size multiple, u32 reliable write sectors, 16 bytes
//                        CID.
//   error_reply          status (error set), u32 length, then a UTF-8 message.

using mmc::mmcblk::BlockReadRequest;
using mmc::mmcblk::BlockWriteRequest;
using mmc::mmcblk::DescribeRequest;
using mmc::mmcblk::FlushRequest;
using mmc::mmcblk::IoctlCommand;
using mmc::mmcblk::IoctlRequest;
using mmc::mmcblk::Request;

using mmc::mmcblk::BlockReadReply;
using mmc::mmcblk::BlockWriteReply;
using mmc::mmcblk::DescribeReply;
using mmc::mmcblk::ErrorReply;
using mmc::mmcblk::FlushReply;
using mmc::mmcblk::IoctlCommandResult;
using mmc::mmcblk::IoctlReply;
using mmc::mmcblk::Reply;
using mmc::mmcblk::ReplyStatus;

// ---- Encoding and decoding ---------------------------------------------------------------

// Checks magic, version, the type (any known type) and payload_length <= kMaxPayload.
MessageHeader decode_header(const std::uint8_t* bytes, std::size_t size);

// Whole messages (header + payload).
std::vector<std::uint8_t> encode_request(std::uint32_t request_id, const Request& request);
std::vector<std::uint8_t> encode_reply(std::uint32_t request_id, const Reply& reply);

// Payloads (the header already decoded). Throw ProtocolError (not fatal: the framing held)
// when the payload does not match its type.
Request decode_request(const MessageHeader& header, const std::uint8_t* payload, std::size_t size);
Reply decode_reply(const MessageHeader& header, const std::uint8_t* payload, std::size_t size);

// The reply type that answers a request type (ioctl_request → ioctl_reply ...).
MessageType reply_type_for(MessageType request);
MessageType request_type(const Request& request);

}  // namespace emmcsim::transport::bridge
