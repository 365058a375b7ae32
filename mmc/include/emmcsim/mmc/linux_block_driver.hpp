// LinuxBlockDriver: what Linux's MMC block driver (drivers/mmc/core/block.c) does between a
// process and the card, over any HostBus (the untimed card, or the timed bus of the SystemC
// models), so that requests on the device nodes (mmcblk_requests.hpp: what the MMC-ioctl bridge
// and virtio-rpmb carry) reach the card exactly as ioctls and block I/O on /dev/mmcblkN* would
// (spec/mmc-ioctl.md):
//
//  * probe: CMD0, CMD1 until ready, CMD2, CMD3 (RCA 1), CMD7, CMD8 (EXT_CSD) at 400 kHz, then the
//    fastest bus mode the card offers to a host that can do them all (mmc_select_timing():
//    HS400 with enhanced strobe, else HS200 tuned with CMD21 then HS400, else high speed with an
//    8-bit bus and DDR52, else legacy 8-bit), the clock raised to the mode's maximum, and
//    CACHE_CTRL on when the card has a cache. The kernel re-reads EXT_CSD to check a new bus
//    width (mmc_compare_ext_csds()); the driver does not;
//  * MMC_IOC_CMD / MMC_IOC_MULTI_CMD: the node's partition selected first (CMD6 PARTITION_CONFIG,
//    keeping the boot bits), CMD23 before each counted transfer (arg = blocks | write_flag bit 31,
//    unless the caller's previous command was its own CMD23), the command, its data, CMD13 polled
//    until READY_FOR_DATA in tran after R1b commands and on the rpmb node, the first failing
//    command ending the chain, and the switch back to the user area after every rpmb-node request,
//    also on error. Responses come back for every command; read data for every read.
//  * errno as the kernel sets it: ETIMEDOUT when the card does not answer a command (illegal in
//    its state, no data phase opened, data stopped early or busy never ends), EILSEQ when the card
//    refuses a written block (CRC status "error"), EIO for error bits where the kernel checks them
//    (block I/O) and for block I/O whose partition switch failed, EBADMSG for SWITCH_ERROR after a
//    partition switch (the only status a switch is judged by, as in mmc_switch()), EINVAL for
//    malformed requests (the protocol decoder catches most), ENXIO for a node the card lacks.
//  * block reads and writes on user/boot0/boot1 as the block layer issues them: CMD17/CMD24 for one
//    sector, CMD23 + CMD18/CMD25 otherwise, then CMD13 until tran after writes; a flush is
//    CMD6 FLUSH_CACHE.
//
// After a failure the driver stops a transfer the card is still in (CMD12) so the card is in tran
// for the next request, as the kernel's error recovery leaves it. When a request leaves the card
// out of tran anyway (a caller's CMD0, CMD5, CMD7 or CMD15; a bus test), the driver resets it as
// mmc_blk_reset() does: a power cycle and the probe sequence again. Data, key and counter persist.
//
// Not thread-safe: one owner calls it (the daemon's device strand; in the SystemC models, the
// SC_THREAD that owns the bus host — models::LinuxDriverHost).
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "emmcsim/mmc/host_bus.hpp"
#include "emmcsim/mmc/mmcblk_requests.hpp"
#include "emmcsim/mmc/registers.hpp"

namespace emmcsim::mmc {

class LinuxBlockDriver {
 public:
  // Probes the card over `bus` (which must outlive the driver). Throws std::runtime_error when the
  // card does not come up.
  explicit LinuxBlockDriver(HostBus& bus);

  mmcblk::Reply handle(const mmcblk::Request& request);

  mmcblk::IoctlReply ioctl(const mmcblk::IoctlRequest& request);
  mmcblk::BlockReadReply read(const mmcblk::BlockReadRequest& request);
  mmcblk::BlockWriteReply write(const mmcblk::BlockWriteRequest& request);
  mmcblk::FlushReply flush(const mmcblk::FlushRequest& request);
  mmcblk::DescribeReply describe() const { return description_; }

  // What the kernel does at shutdown: back to the user area, cache flushed. Returns 0 or an errno.
  int shutdown();
  // The card was driven by another host meanwhile (the daemon's User-Mode Linux guest), so
  // nothing the driver knows of its state holds: a power cycle and the probe again, as
  // mmc_hw_reset() does. Throws std::runtime_error when the card does not come up.
  void reinitialise();

  // The PARTITION_CONFIG the driver believes the card has: the partition of the last request's
  // node, the user area after an rpmb-node request. A host sequence sharing the bus with the
  // driver (RpmbBusChannel) starts from it.
  std::uint8_t partition_config() const { return part_config_; }
  // How many times the driver reset the card: a request left it unusable, or reinitialise().
  std::uint64_t card_resets() const { return card_resets_; }
  const ExtCsd& ext_csd() const { return ext_csd_; }

  static constexpr std::uint16_t kRca = 1;  // Linux gives the eMMC RCA 1
  // Clocks the driver sets (the host's f_init and each mode's maximum).
  static constexpr std::uint64_t kIdentificationClockHz = 400'000;
  static constexpr std::uint64_t kLegacyClockHz = 26'000'000;
  static constexpr std::uint64_t kHighSpeedClockHz = 52'000'000;
  static constexpr std::uint64_t kHs200ClockHz = 200'000'000;

 private:
  struct CommandResult {
    CommandOutcome outcome;
    int error = 0;  // cmd.error: ETIMEDOUT when no response came
  };

  void probe();
  void select_bus_speed();  // mmc_select_timing() and the bus width / HS400 steps around it
  void switch_during_probe(std::size_t index, std::uint8_t value, const char* what);
  static bool leaves_transfer_state(const mmcblk::IoctlRequest& request);
  CommandResult command(std::uint8_t index, std::uint32_t arg, bool response_expected = true);
  int switch_partition(std::uint8_t access);  // mmc_blk_part_switch
  int poll_until_ready(bool switch_command);  // mmc_poll_for_busy with CMD13
  void recover();  // back to tran: CMD12 (data, rcv), CMD14 (btst), or a power cycle and probe
  int run_ioctl_command(mmcblk::Node node, const mmcblk::IoctlCommand& c, bool caller_sent_cmd23,
                        mmcblk::IoctlCommandResult& result);
  int check_node_range(mmcblk::Node node, std::uint64_t offset, std::size_t length) const;
  int transfer_sectors(bool write, std::uint64_t sector, std::uint8_t* buffer, std::uint32_t sectors);
  void track_switch(std::uint32_t arg);
  mmcblk::ReplyStatus status(int error) const;

  HostBus& bus_;
  bool block_addressing_ = true;
  ExtCsd ext_csd_{};
  std::uint8_t part_config_ = 0;  // the PARTITION_CONFIG the kernel believes the card has
  bool cache_enabled_ = false;
  mmcblk::DescribeReply description_;
  std::uint64_t request_start_ps_ = 0;
  std::uint64_t card_resets_ = 0;
};

// Access value of PARTITION_CONFIG for a node: user 0, boot0 1, boot1 2, rpmb 3.
std::uint8_t partition_access_of(mmcblk::Node node);

}  // namespace emmcsim::mmc
