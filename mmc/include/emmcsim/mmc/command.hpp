// What crosses the eMMC bus between a host and mmc::Card, without time: a command (index and
// argument), the card's response, the data phase the command opens, and the internal work the
// card did — which a timed model turns into busy time with a timing profile.
#pragma once

#include <array>
#include <cstdint>
#include <string>

namespace emmcsim::mmc {

struct Command {
  std::uint8_t index = 0;  // CMD0..CMD63
  std::uint32_t arg = 0;
};

enum class ResponseType : std::uint8_t {
  none,  // no response: broadcast commands (CMD0, CMD4, CMD15), another card's address,
         // or an illegal command (the host times out)
  r1,
  r1b,  // R1 followed by busy on DAT0 while the card programs
  r2,   // 136 bits: CID or CSD
  r3,   // OCR
};

struct Response {
  ResponseType type = ResponseType::none;
  std::uint32_t value = 0;            // R1/R1b: card status; R3: OCR
  std::array<std::uint8_t, 16> r2{};  // R2: CID or CSD, CRC7 in the last byte
};

enum class DataDirection : std::uint8_t {
  none,
  to_host,  // reads: the card sends blocks
  to_card,  // writes: the host sends blocks
};

// The data transfer a command opened: blocks of `block_size` bytes, `blocks` of them, or an
// open-ended transfer (blocks == 0) that CMD12 ends.
struct DataPhase {
  DataDirection direction = DataDirection::none;
  std::uint32_t block_size = 0;
  std::uint32_t blocks = 0;
};

// Internal work a command or data block caused, in units a timing profile can price.
struct WorkReport {
  std::uint32_t sectors_read = 0;         // 512-byte sectors read from the medium
  std::uint32_t sectors_programmed = 0;   // sectors programmed into the medium
  std::uint32_t sectors_cached = 0;       // sectors accepted into the volatile cache
  std::uint32_t erase_groups = 0;         // erase groups erased (erase, secure erase)
  std::uint32_t sectors_trimmed = 0;      // trim, discard, secure trim
  std::uint32_t hmac_frames = 0;          // RPMB: 284-byte units through HMAC-SHA256
  std::uint32_t rpmb_commits = 0;         // RPMB: durable commits
  std::uint32_t ext_csd_writes = 0;       // CMD6 writes to the modes segment (GENERIC_CMD6_TIME)
  std::uint32_t partition_switches = 0;   // PARTITION_ACCESS changes (PARTITION_SWITCH_TIME)
  std::uint32_t cache_flushes = 0;        // FLUSH_CACHE, or CACHE_CTRL = 0 with dirty data
  std::uint32_t sleep_transitions = 0;    // CMD5 sleep or awake (S_A_TIMEOUT)
  std::uint32_t nonvolatile_updates = 0;  // password, write protection, boot configuration stored

  WorkReport& operator+=(const WorkReport& o);
  bool empty() const;
  friend bool operator==(const WorkReport& a, const WorkReport& b);
  friend bool operator!=(const WorkReport& a, const WorkReport& b) { return !(a == b); }
};

// "sectors_read=8 hmac_frames=2" — only the non-zero fields.
std::string describe_work(const WorkReport& work);

struct CommandOutcome {
  Response response;
  DataPhase data;
  // The card holds DAT0 busy after the response (R1b, or the end of a write) while it does
  // `work`; in CURRENT_STATE terms it is in prg (or dis) until then.
  bool busy = false;
  // The command was illegal in the card's state: no response, ILLEGAL_COMMAND is set for the
  // next response and nothing else changed.
  bool illegal = false;
  WorkReport work;
};

// The outcome of one data block.
struct BlockOutcome {
  // Reads: the card sent the block. Writes: CRC status "accepted" (false = "write error").
  bool ok = false;
  // The transfer ended with this block (the count was reached); the card left data/rcv.
  bool transfer_complete = false;
  bool busy = false;         // the card programs after this block
  std::uint32_t blocks = 0;  // blocks moved by this call (read_blocks/write_blocks move several)
  WorkReport work;
};

}  // namespace emmcsim::mmc
