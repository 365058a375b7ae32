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
// This code is dependency-free standard C++ (the shim links it into arbitrary processes) and
// never trusts a byte: every decode checks sizes and values and throws ProtocolError.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

namespace emmcsim::transport::bridge {

inline constexpr std::uint32_t kMagic = 0x424D4D45;  // "EMMB" in byte order E M M B
inline constexpr std::uint16_t kVersion = 1;
inline constexpr std::size_t kHeaderSize = 16;

// Linux's limits (include/uapi/linux/mmc/ioctl.h).
inline constexpr std::size_t kMaxCommands = 255;               // MMC_IOC_MAX_CMDS
inline constexpr std::size_t kMaxCommandBytes = 512 * 1024;    // MMC_IOC_MAX_BYTES
// emmcsim's own limits: the data of one request (written and read, all commands together), and
// so the largest payload a peer may announce. The kernel's only bound here is memory.
inline constexpr std::size_t kMaxRequestDataBytes = 32 * 1024 * 1024;
inline constexpr std::size_t kCommandDescriptorSize = 48;
inline constexpr std::size_t kMaxPayload =
    8 + kMaxCommands * kCommandDescriptorSize + kMaxRequestDataBytes;
// Block reads and writes (the shim splits larger ones).
inline constexpr std::size_t kSectorSize = 512;
inline constexpr std::size_t kMaxBlockTransfer = 512 * 1024;

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

// The device nodes of one card, as /dev/mmcblkN, /dev/mmcblkNboot0, boot1 and rpmb.
enum class Node : std::uint8_t { user = 0, boot0 = 1, boot1 = 2, rpmb = 3 };
inline constexpr std::size_t kNodeCount = 4;
const char* node_name(Node node);  // "user", "boot0", "boot1", "rpmb"

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

// ---- Requests ---------------------------------------------------------------------------

// One struct mmc_ioc_cmd (without response[] and data_ptr): 48 bytes on the wire, in this order,
// the last being the number of data bytes that follow for this command (blksz * blocks when
// write_flag is non-zero, else 0).
struct IoctlCommand {
  std::uint32_t write_flag = 0;  // non-zero: data to the card; bit 31: reliable write
  std::uint32_t is_acmd = 0;
  std::uint32_t opcode = 0;
  std::uint32_t arg = 0;
  std::uint32_t flags = 0;  // MMC_RSP_* | MMC_CMD_*
  std::uint32_t blksz = 0;
  std::uint32_t blocks = 0;
  std::uint32_t postsleep_min_us = 0;
  std::uint32_t postsleep_max_us = 0;
  std::uint32_t data_timeout_ns = 0;
  std::uint32_t cmd_timeout_ms = 0;
  std::vector<std::uint8_t> data;  // writes only

  std::size_t data_bytes() const { return std::size_t{blksz} * blocks; }
  bool writes() const { return write_flag != 0; }
};

// Payload: u8 node, u8 multi (0: MMC_IOC_CMD, 1: MMC_IOC_MULTI_CMD), u16 zero, u32 count,
// count × 48-byte descriptors, then the data of every writing command in order.
struct IoctlRequest {
  Node node = Node::user;
  bool multi = false;  // MMC_IOC_MULTI_CMD (else MMC_IOC_CMD: exactly one command)
  std::vector<IoctlCommand> commands;
};

// Payload: u8 node, u8[3] zero, u32 length, u64 offset. Offset and length are multiples of 512;
// 0 < length <= 512 KiB.
struct BlockReadRequest {
  Node node = Node::user;
  std::uint64_t offset = 0;
  std::uint32_t length = 0;
};
// Payload: as BlockReadRequest, then `length` bytes.
struct BlockWriteRequest {
  Node node = Node::user;
  std::uint64_t offset = 0;
  std::vector<std::uint8_t> data;
};
// Payload: u8 node, u8[3] zero. Data written to the node is on stable storage afterwards.
struct FlushRequest {
  Node node = Node::user;
};
// Empty payload.
struct DescribeRequest {};

using Request = std::variant<IoctlRequest, BlockReadRequest, BlockWriteRequest, FlushRequest,
                             DescribeRequest>;

// ---- Replies ------------------------------------------------------------------------------

// Every reply payload starts with this (16 bytes): i32 error, u32 flags, u64 simulated_ps.
struct ReplyStatus {
  std::int32_t error = 0;  // 0, or the positive errno the ioctl/read/write fails with
  // Set when the device runs timed (`--timing approximate`): simulated_ps is the simulated
  // duration of the request on the eMMC bus and in the device.
  static constexpr std::uint32_t kTimed = 1u << 0;
  std::uint32_t flags = 0;
  std::uint64_t simulated_ps = 0;
};

struct IoctlCommandResult {
  std::array<std::uint32_t, 4> response{};  // what the kernel copies back to mmc_ioc_cmd
  std::vector<std::uint8_t> data;           // reads (write_flag == 0): blksz * blocks bytes
};
// Payload: status, u32 count, count × (u32 response[4], u32 data_length), then the data.
// `results` has one entry per request command (responses of commands never issued are zero,
// read data of commands never issued is zeros — the kernel copies both back the same way).
struct IoctlReply {
  ReplyStatus status;
  std::vector<IoctlCommandResult> results;
};
// Payload: status, u32 length, u32 zero, then the data.
struct BlockReadReply {
  ReplyStatus status;
  std::vector<std::uint8_t> data;
};
// Payload: status.
struct BlockWriteReply {
  ReplyStatus status;
};
struct FlushReply {
  ReplyStatus status;
};
// Payload: status, u32 protocol version, u32 node count (4), node count × u64 size in bytes
// (0: the card has no such node), u32 rpmb size multiple (EXT_CSD RPMB_SIZE_MULT), u32 reliable
// write sectors (REL_WR_SEC_C), 16 bytes CID (as the kernel's sysfs shows it).
struct DescribeReply {
  ReplyStatus status;
  std::array<std::uint64_t, kNodeCount> node_size{};
  std::uint32_t rpmb_size_mult = 0;
  std::uint32_t rel_sectors = 0;
  std::array<std::uint8_t, 16> cid{};
};
// Payload: status (error set), u32 length, then a UTF-8 message saying what was wrong.
struct ErrorReply {
  ReplyStatus status;
  std::string message;
};

using Reply = std::variant<IoctlReply, BlockReadReply, BlockWriteReply, FlushReply,
                           DescribeReply, ErrorReply>;

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
