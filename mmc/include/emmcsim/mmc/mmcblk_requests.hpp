// What a process asks of a card's Linux device nodes (/dev/mmcblkN, mmcblkNboot0, mmcblkNboot1,
// mmcblkNrpmb) and what it gets back: the MMC ioctls (MMC_IOC_CMD, MMC_IOC_MULTI_CMD) with the
// responses and read data the kernel copies back, block reads and writes, a cache flush, and the
// node sizes. Each reply carries the errno the call fails with and, when the device runs timed,
// the request's simulated duration.
//
// This is the vocabulary between a host driver that serves such requests (mmc::LinuxBlockDriver)
// and whoever forwards them: the MMC-ioctl bridge's wire codec (transport/bridge_protocol.hpp)
// names these same types, and the LD_PRELOAD shim builds them. Header-only standard C++ with no
// link dependency, because the shim is loaded into arbitrary processes.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <variant>
#include <vector>

namespace emmcsim::mmc::mmcblk {

// Linux's limits (include/uapi/linux/mmc/ioctl.h).
inline constexpr std::size_t kMaxCommands = 255;             // MMC_IOC_MAX_CMDS
inline constexpr std::size_t kMaxCommandBytes = 512 * 1024;  // MMC_IOC_MAX_BYTES
// Block reads and writes: whole sectors, at most this many bytes at once (larger requests are
// split by the caller, as the block layer splits them).
inline constexpr std::size_t kSectorSize = 512;
inline constexpr std::size_t kMaxBlockTransfer = 512 * 1024;

// The device nodes of one card, as /dev/mmcblkN, /dev/mmcblkNboot0, boot1 and rpmb.
enum class Node : std::uint8_t { user = 0, boot0 = 1, boot1 = 2, rpmb = 3 };
inline constexpr std::size_t kNodeCount = 4;

// "user", "boot0", "boot1", "rpmb".
inline const char* node_name(Node node) {
  switch (node) {
    case Node::user: return "user";
    case Node::boot0: return "boot0";
    case Node::boot1: return "boot1";
    case Node::rpmb: return "rpmb";
  }
  return "?";
}

// ---- Requests ---------------------------------------------------------------------------

// One struct mmc_ioc_cmd, without response[] (that comes back in IoctlCommandResult) and with
// the data it writes in place of data_ptr.
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
  std::vector<std::uint8_t> data;  // writes only: blksz * blocks bytes

  std::size_t data_bytes() const { return std::size_t{blksz} * blocks; }
  bool writes() const { return write_flag != 0; }
};

// MMC_IOC_CMD (exactly one command) or MMC_IOC_MULTI_CMD on a node.
struct IoctlRequest {
  Node node = Node::user;
  bool multi = false;  // MMC_IOC_MULTI_CMD (else MMC_IOC_CMD: exactly one command)
  std::vector<IoctlCommand> commands;
};

// read()/pread() on a block node: offset and length are multiples of kSectorSize,
// 0 < length <= kMaxBlockTransfer.
struct BlockReadRequest {
  Node node = Node::user;
  std::uint64_t offset = 0;
  std::uint32_t length = 0;
};
// write()/pwrite() on a block node, under the same rules.
struct BlockWriteRequest {
  Node node = Node::user;
  std::uint64_t offset = 0;
  std::vector<std::uint8_t> data;
};
// fsync(): data written to the node is on stable storage afterwards.
struct FlushRequest {
  Node node = Node::user;
};
// The sizes of the nodes and what else the kernel shows of the card (sysfs, BLKGETSIZE64).
struct DescribeRequest {};

using Request = std::variant<IoctlRequest, BlockReadRequest, BlockWriteRequest, FlushRequest, DescribeRequest>;

// ---- Replies ------------------------------------------------------------------------------

// How a request ended: the errno and, for a timed device, its simulated duration.
struct ReplyStatus {
  std::int32_t error = 0;  // 0, or the positive errno the ioctl/read/write fails with
  // Set when the device runs timed: simulated_ps is the simulated duration of the request on
  // the eMMC bus and in the device.
  static constexpr std::uint32_t kTimed = 1u << 0;
  std::uint32_t flags = 0;
  std::uint64_t simulated_ps = 0;
};

struct IoctlCommandResult {
  std::array<std::uint32_t, 4> response{};  // what the kernel copies back to mmc_ioc_cmd
  std::vector<std::uint8_t> data;           // reads (write_flag == 0): blksz * blocks bytes
};
// `results` has one entry per request command (responses of commands never issued are zero,
// read data of commands never issued is zeros — the kernel copies both back the same way).
struct IoctlReply {
  ReplyStatus status;
  std::vector<IoctlCommandResult> results;
};
struct BlockReadReply {
  ReplyStatus status;
  std::vector<std::uint8_t> data;  // empty on error
};
struct BlockWriteReply {
  ReplyStatus status;
};
struct FlushReply {
  ReplyStatus status;
};
// node_size: bytes per node (0: the card has no such node); rpmb_size_mult: EXT_CSD
// RPMB_SIZE_MULT; rel_sectors: REL_WR_SEC_C; cid: the CID as the kernel's sysfs shows it.
struct DescribeReply {
  ReplyStatus status;
  std::array<std::uint64_t, kNodeCount> node_size{};
  std::uint32_t rpmb_size_mult = 0;
  std::uint32_t rel_sectors = 0;
  std::array<std::uint8_t, 16> cid{};
};
// A request that was not served: it could not be decoded (the bridge), or the device failed
// under it (a device port). status.error is the errno; `message` says what was wrong.
struct ErrorReply {
  ReplyStatus status;
  std::string message;
};

using Reply = std::variant<IoctlReply, BlockReadReply, BlockWriteReply, FlushReply, DescribeReply, ErrorReply>;

}  // namespace emmcsim::mmc::mmcblk
