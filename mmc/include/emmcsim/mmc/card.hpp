// mmc::Card — an eMMC 5.1 device without time (JESD84-B51): registers built from a DeviceConfig,
// the card state machine, the command set of command_table.hpp, partitions selected with CMD6
// PARTITION_CONFIG, and data one block at a time. The RPMB partition is an rpmb::Engine on the
// same store every other front end uses.
//
// How a host drives it (what a bus model or a daemon does; command names in protocol.hpp):
//   CommandOutcome o = card.execute({cmd::kReadSingleBlock, lba});  // response + the data phase it opened
//   card.read_block(buffer, o.data.block_size);                      // for each block of the data phase
//   card.execute({cmd::kStopTransmission, 0});                       // ends an open-ended transfer
// Errors are card status bits in the responses, never exceptions. Each outcome reports the
// internal work done (WorkReport); a timed model prices it and keeps DAT0 busy meanwhile.
//
// Busy: with CardOptions::complete_busy_immediately (the default, for untimed use) the card
// finishes programming at once and the next command sees tran. A timed model turns it off: the
// card then stays in prg (or dis) answering CMD13 without READY_FOR_DATA until the model calls
// finish_busy() when the busy time has elapsed.
//
// Sources, by concern: card.cpp (dispatch, status, busy, identification and state commands),
// card_transfer.cpp (data phases), card_switch.cpp (CMD6, EXT_CSD), card_protection.cpp (write
// protection, CMD42), card_erase.cpp (erase).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <vector>

#include "emmcsim/mmc/card_status.hpp"
#include "emmcsim/mmc/command.hpp"
#include "emmcsim/mmc/command_table.hpp"
#include "emmcsim/mmc/device_config.hpp"
#include "emmcsim/mmc/image.hpp"
#include "emmcsim/mmc/nonvolatile_state.hpp"
#include "emmcsim/mmc/partition.hpp"
#include "emmcsim/mmc/protocol.hpp"
#include "emmcsim/mmc/registers.hpp"
#include "emmcsim/rpmb/engine.hpp"
#include "emmcsim/rpmb/frame.hpp"

namespace emmcsim::mmc {

struct CardOptions {
  bool complete_busy_immediately = true;
};

class Card {
 public:
  // The backend must outlive the card and match the configuration (Image and MemoryImage do).
  // Throws std::invalid_argument when a configured partition has no storage or a size differs.
  Card(const DeviceConfig& config, CardBackend backend, CardOptions options = {});

  // One command; the response and the data phase it opened.
  CommandOutcome execute(const Command& command);
  // One block of the open data phase; `size` must equal DataPhase::block_size. Outside a data
  // phase, or with another size, nothing moves and ok is false.
  BlockOutcome read_block(std::uint8_t* out, std::size_t size);
  BlockOutcome write_block(const std::uint8_t* in, std::size_t size);
  // A burst of `count` blocks of `size` bytes into or out of one buffer — what a DMA engine or a
  // daemon moves at once. Same semantics as `count` single-block calls (stops at the first block
  // that fails; `blocks` says how many moved), but user-area data goes between the medium and the
  // buffer in one call, without passing through the card.
  BlockOutcome read_blocks(std::uint8_t* out, std::size_t size, std::uint32_t count);
  BlockOutcome write_blocks(const std::uint8_t* in, std::size_t size, std::uint32_t count);

  // The timed model's busy time has elapsed: prg → tran, dis → stby.
  void finish_busy();
  // Power cycle: volatile state (RCA, selected partition, bus mode, power-on write protection,
  // cache contents not flushed — see below) is lost; the card restarts in idle.
  // Unflushed cache contents are kept: the medium under the simulator is the host's file, and
  // losing them on purpose belongs to fault injection in models/.
  void power_cycle();

  // Observers (for tests, models, tools; not bus-visible).
  CardState state() const { return state_; }
  std::uint16_t rca() const { return rca_; }
  Partition current_partition() const { return partition_; }
  bool locked() const { return locked_; }
  bool busy() const { return state_ == CardState::prg || state_ == CardState::dis; }
  // Status bits waiting to be reported in the next response.
  std::uint32_t pending_status() const { return pending_status_; }
  // EXT_CSD as CMD8 would send it now.
  ExtCsd ext_csd() const;
  const Cid& cid() const { return cid_; }
  const Csd& csd() const { return csd_; }
  const DeviceConfig& config() const { return config_; }
  const rpmb::Engine& rpmb_engine() const { return *rpmb_engine_; }

 private:
  friend const CommandTable& command_table();

  enum class TransferKind : std::uint8_t {
    none,
    read_sectors,
    write_sectors,
    register_read,  // EXT_CSD, tuning block, write-protect status: bytes from buffer_
    bus_test_write,
    bus_test_read,
    lock_unlock,
    rpmb_requests,
    rpmb_responses,
    boot_stream,
  };
  struct Transfer {
    TransferKind kind = TransferKind::none;
    Partition partition = Partition::user;
    std::uint64_t next_sector = 0;
    std::uint32_t block_size = 0;
    std::uint32_t blocks_total = 0;  // 0: open-ended
    std::uint32_t blocks_done = 0;
    bool reliable = false;
    bool forced_programming = false;
    bool failed = false;                    // an error stopped the transfer; blocks are refused until CMD12
    std::vector<std::uint8_t> buffer;       // staged data (reliable write, RPMB frames, registers)
    std::uint64_t buffer_first_sector = 0;  // read_sectors: the sector buffer[0] holds (read-ahead)
    std::vector<rpmb::Frame> frames;        // rpmb_responses
  };
  struct BlockCount {  // CMD23
    std::uint16_t blocks = 0;
    bool reliable_write = false;
    bool forced_programming = false;
  };
  enum class EraseStage : std::uint8_t { none, start_set, end_set };

  // Command handlers (the table points at them).
  CommandOutcome go_idle_state(const Command& c);         // CMD0
  CommandOutcome send_op_cond(const Command& c);          // CMD1
  CommandOutcome all_send_cid(const Command& c);          // CMD2
  CommandOutcome set_relative_addr(const Command& c);     // CMD3
  CommandOutcome set_dsr(const Command& c);               // CMD4
  CommandOutcome sleep_awake(const Command& c);           // CMD5
  CommandOutcome switch_ext_csd(const Command& c);        // CMD6
  CommandOutcome select_deselect(const Command& c);       // CMD7
  CommandOutcome send_ext_csd(const Command& c);          // CMD8
  CommandOutcome send_csd(const Command& c);              // CMD9
  CommandOutcome send_cid(const Command& c);              // CMD10
  CommandOutcome stop_transmission(const Command& c);     // CMD12
  CommandOutcome send_status(const Command& c);           // CMD13
  CommandOutcome bus_test_read(const Command& c);         // CMD14
  CommandOutcome go_inactive_state(const Command& c);     // CMD15
  CommandOutcome set_blocklen(const Command& c);          // CMD16
  CommandOutcome read_block_command(const Command& c);    // CMD17, CMD18
  CommandOutcome bus_test_write(const Command& c);        // CMD19
  CommandOutcome send_tuning_block(const Command& c);     // CMD21
  CommandOutcome set_block_count(const Command& c);       // CMD23
  CommandOutcome write_block_command(const Command& c);   // CMD24, CMD25
  CommandOutcome set_clear_write_prot(const Command& c);  // CMD28, CMD29
  CommandOutcome send_write_prot(const Command& c);       // CMD30, CMD31
  CommandOutcome erase_group_address(const Command& c);   // CMD35, CMD36
  CommandOutcome erase(const Command& c);                 // CMD38
  CommandOutcome lock_unlock(const Command& c);           // CMD42

  // Responses and busy (card.cpp).
  CommandOutcome r1(std::uint32_t extra_status = 0, ResponseType type = ResponseType::r1);
  CommandOutcome no_response();
  CommandOutcome illegal();
  std::uint32_t status_word() const;
  bool addressed_to_me(const Command& c) const { return rca_of(c.arg) == rca_; }
  // The card holds DAT0 busy after this outcome (an R1b command, or a block that ended a write)
  // while it programs: prg until finish_busy(), or at once with complete_busy_immediately.
  void enter_busy(CommandOutcome& outcome);
  void enter_busy(BlockOutcome& outcome);
  void start_programming();  // into prg; finish_busy() at once if the options say so

  // Partitions, addresses, the non-volatile state (card.cpp).
  std::uint64_t partition_sectors(Partition p) const;
  BlockStorage* storage(Partition p) const { return backend_.storage(p); }
  // Data address (bytes or sectors per the addressing mode) → sector; nullopt when misaligned.
  std::optional<std::uint64_t> sector_of(std::uint32_t arg, std::uint32_t& error) const;
  void save_nonvolatile(WorkReport& work);

  // Data phases (card_transfer.cpp).
  static DataDirection direction_of(TransferKind kind);
  void end_transfer();
  // Opens the data phase of the command answered by `o`: `blocks` blocks of `block_size` (0
  // blocks: open-ended, until CMD12) in the current partition; the card moves to data or rcv,
  // as the kind's direction says.
  Transfer& open_transfer(TransferKind kind, std::uint32_t block_size, std::uint32_t blocks, CommandOutcome& o);
  // R1 and one block of bytes for the host to read (EXT_CSD, tuning pattern, write-protect bits,
  // bus-test reply).
  CommandOutcome send_bytes(std::vector<std::uint8_t> bytes, TransferKind kind = TransferKind::register_read);
  BlockOutcome read_one_block(std::uint8_t* out, std::size_t size);
  BlockOutcome write_one_block(const std::uint8_t* in, std::size_t size);
  BlockOutcome read_sector_block(std::uint8_t* out);
  // Sectors of the open transfer a burst may move in one storage call (0: go block by block).
  std::uint32_t burst_sectors(std::uint32_t wanted) const;
  void complete_write_transfer(BlockOutcome& b);
  BlockOutcome write_sector_block(const std::uint8_t* in);
  BlockOutcome finish_rpmb_requests();
  bool commit_staged_write(WorkReport& work);

  // EXT_CSD modes-segment writes (CMD6): validation and side effects (card_switch.cpp).
  std::uint32_t apply_switch(std::uint8_t index, std::uint8_t value, WorkReport& work);
  // FLUSH_CACHE: the dirty sectors are programmed (reported) and the files synced.
  void flush_cache(WorkReport& work);
  // User, boot and GP files to the disk (fdatasync); ERROR for the next response on failure.
  void sync_storage();

  // Write protection and CMD42 (card_protection.cpp).
  std::uint64_t wp_group_sectors() const;
  bool write_protected(Partition p, std::uint64_t sector) const;
  bool boot_write_protected(Partition p) const;
  void apply_boot_wp(std::uint8_t value);
  void finish_lock_unlock(WorkReport& work);

  // Erase (card_erase.cpp). `kind` is CMD38's argument (erase_arg::).
  std::uint64_t erase_group_sectors() const;
  void erase_range(Partition p, std::uint64_t first, std::uint64_t last, std::uint32_t kind, WorkReport& work,
                   std::uint32_t& status_bits);

  DeviceConfig config_;
  CardBackend backend_;
  CardOptions options_;
  std::unique_ptr<rpmb::Engine> rpmb_engine_;

  Cid cid_{};
  Csd csd_{};
  ExtCsd ext_csd_{};  // current values of every field
  std::uint32_t ocr_ = 0;
  std::uint32_t op_cond_polls_ = 0;

  CardState state_ = CardState::idle;
  std::uint16_t rca_ = 0;
  std::uint32_t pending_status_ = 0;
  std::uint32_t block_length_ = kSectorSize;
  Partition partition_ = Partition::user;
  bool locked_ = false;
  std::optional<BlockCount> block_count_;         // CMD23 waiting for its command
  std::optional<BlockCount> active_block_count_;  // CMD23 of the command being executed
  Transfer transfer_;
  EraseStage erase_stage_ = EraseStage::none;
  std::uint64_t erase_start_ = 0;
  std::uint64_t erase_end_ = 0;
  // Secure trim step 1 marks ranges; step 2 (0x80008000) erases them.
  std::vector<std::pair<Partition, std::pair<std::uint64_t, std::uint64_t>>> secure_trim_marked_;
  std::uint32_t dirty_cached_sectors_ = 0;

  NonvolatileState nonvolatile_;
  std::map<Partition, std::set<std::uint32_t>> power_on_wp_groups_;
  std::uint8_t boot_wp_status_power_on_ = 0;  // EXT_CSD[174] entries from B_PWR_WP_EN
};

}  // namespace emmcsim::mmc
