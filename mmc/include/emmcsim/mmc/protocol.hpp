// The eMMC bus protocol's named facts (JESD84-B51, eMMC 5.1), for the card and for every host
// that talks to it: command indices, how the arguments of CMD0, CMD5, CMD6, CMD13, CMD23, CMD38
// and the CMD42 data block are laid out, and the values hosts write into the EXT_CSD modes
// segment with CMD6. One place, so that no driver, model or test writes `(3u << 24) | (185u <<
// 16)` by hand:
//
//   host.execute({cmd::kSwitch, switch_arg(SwitchAccess::write_byte, ext_csd::kHsTiming,
//                                          ext_csd::hs_timing::kHs200)});
//   host.execute({cmd::kSetBlockCount, blocks | set_block_count::kReliableWrite});
//   host.execute({cmd::kSendStatus, rca_arg(rca)});
//
// Neighbours: EXT_CSD field indices and the register-building side are in registers.hpp
// (ext_csd::kBusWidth …, ocr::, csd::), R1 card status bits and card states in card_status.hpp,
// partitions (PARTITION_ACCESS values) in partition.hpp, and what the card does with each
// command — bus command type, response, data direction, address, accepting states — in
// command_table.hpp.
#pragma once

#include <cstddef>
#include <cstdint>

#include "emmcsim/mmc/partition.hpp"
#include "emmcsim/mmc/registers.hpp"

namespace emmcsim::mmc {

// ---------------------------------------------------------------------------------------------
// Command indices (JESD84-B51 §6.10.4, Tables 41–52). Bus command types: bc broadcast without
// response, bcr broadcast with response, ac addressed without data, adtc addressed with data.
namespace cmd {
// Class 0, basic.
constexpr std::uint8_t kGoIdleState = 0;         // bc: reset, pre-idle or boot (go_idle:: args)
constexpr std::uint8_t kSendOpCond = 1;          // bcr R3: OCR handshake
constexpr std::uint8_t kAllSendCid = 2;          // bcr R2: the CID of the card(s) in ready
constexpr std::uint8_t kSetRelativeAddr = 3;     // ac R1: the host assigns the RCA (rca_arg)
constexpr std::uint8_t kSetDsr = 4;              // bc: driver stage register
constexpr std::uint8_t kSleepAwake = 5;          // ac R1b: sleep_awake::kSleep | rca_arg
constexpr std::uint8_t kSwitch = 6;              // ac R1b: EXT_CSD write (switch_arg)
constexpr std::uint8_t kSelectDeselectCard = 7;  // ac R1/R1b: select by RCA, deselect others
constexpr std::uint8_t kSendExtCsd = 8;          // adtc R1: 512 bytes of EXT_CSD
constexpr std::uint8_t kSendCsd = 9;             // ac R2
constexpr std::uint8_t kSendCid = 10;            // ac R2
constexpr std::uint8_t kStopTransmission = 12;   // ac R1/R1b: ends an open-ended transfer
constexpr std::uint8_t kSendStatus = 13;         // ac R1: card status (or SQS, send_status::)
constexpr std::uint8_t kBusTestRead = 14;        // adtc R1: the CMD19 pattern, inverted
constexpr std::uint8_t kGoInactiveState = 15;    // ac, no response
constexpr std::uint8_t kBusTestWrite = 19;       // adtc R1: a pattern as wide as the bus
// Class 2, block read.
constexpr std::uint8_t kSetBlocklen = 16;        // ac R1
constexpr std::uint8_t kReadSingleBlock = 17;    // adtc R1: data address
constexpr std::uint8_t kReadMultipleBlock = 18;  // adtc R1: data address
constexpr std::uint8_t kSendTuningBlock = 21;    // adtc R1: HS200 tuning pattern
// Class 4, block write (CMD23 belongs to classes 2 and 4).
constexpr std::uint8_t kSetBlockCount = 23;       // ac R1: set_block_count:: bits
constexpr std::uint8_t kWriteBlock = 24;          // adtc R1: data address
constexpr std::uint8_t kWriteMultipleBlock = 25;  // adtc R1: data address
constexpr std::uint8_t kProgramCid = 26;          // adtc R1 (vendor programming)
constexpr std::uint8_t kProgramCsd = 27;          // adtc R1
// Class 6, write protection.
constexpr std::uint8_t kSetWriteProt = 28;       // ac R1b: data address
constexpr std::uint8_t kClrWriteProt = 29;       // ac R1b: data address
constexpr std::uint8_t kSendWriteProt = 30;      // adtc R1: 32 bits, data address
constexpr std::uint8_t kSendWriteProtType = 31;  // adtc R1: 64 bits, data address
// Class 5, erase.
constexpr std::uint8_t kEraseGroupStart = 35;  // ac R1: data address
constexpr std::uint8_t kEraseGroupEnd = 36;    // ac R1: data address
constexpr std::uint8_t kErase = 38;            // ac R1b: erase_arg::
// Class 9, I/O mode.
constexpr std::uint8_t kFastIo = 39;      // ac R4
constexpr std::uint8_t kGoIrqState = 40;  // bcr R5
// Class 7, lock card.
constexpr std::uint8_t kLockUnlock = 42;  // adtc R1: lock_unlock:: data block
// Class 11, command queue.
constexpr std::uint8_t kQueuedTaskParams = 44;   // ac R1
constexpr std::uint8_t kQueuedTaskAddress = 45;  // ac R1
constexpr std::uint8_t kExecuteReadTask = 46;    // adtc R1
constexpr std::uint8_t kExecuteWriteTask = 47;   // adtc R1
constexpr std::uint8_t kCmdqTaskMgmt = 48;       // ac R1b
// Class 10, security protocols; class 8, application specific.
constexpr std::uint8_t kSetTime = 49;        // adtc R1
constexpr std::uint8_t kProtocolRead = 53;   // adtc R1
constexpr std::uint8_t kProtocolWrite = 54;  // adtc R1
constexpr std::uint8_t kAppCmd = 55;         // ac R1
constexpr std::uint8_t kGenCmd = 56;         // adtc R1
}  // namespace cmd

// ---------------------------------------------------------------------------------------------
// Arguments.

// arg[31:16] of the commands that address a card by its RCA (CMD3, 5, 7, 9, 10, 13, 15).
constexpr std::uint32_t rca_arg(std::uint16_t rca) { return std::uint32_t{rca} << 16; }
constexpr std::uint16_t rca_of(std::uint32_t arg) { return static_cast<std::uint16_t>(arg >> 16); }

// CMD0 arguments.
namespace go_idle {
constexpr std::uint32_t kReset = 0x00000000;           // GO_IDLE_STATE: software reset → idle
constexpr std::uint32_t kPreIdle = 0xF0F0F0F0;         // GO_PRE_IDLE_STATE → pre-idle
constexpr std::uint32_t kBootInitiation = 0xFFFFFFFA;  // alternative boot: stream the boot partition
}  // namespace go_idle

// CMD5: bit 15 chooses sleep (1) or awake (0); the RCA is in [31:16].
namespace sleep_awake {
constexpr std::uint32_t kSleep = 1u << 15;
}  // namespace sleep_awake

// CMD6 SWITCH: arg [25:24] access mode, [23:16] EXT_CSD index, [15:8] value, [2:0] command set.
enum class SwitchAccess : std::uint8_t {
  command_set = 0,  // change the command set ([2:0]); index and value are ignored
  set_bits = 1,     // EXT_CSD[index] |= value
  clear_bits = 2,   // EXT_CSD[index] &= ~value
  write_byte = 3,   // EXT_CSD[index] = value
};
constexpr std::uint32_t switch_arg(SwitchAccess access, std::size_t index, std::uint8_t value,
                                   std::uint8_t command_set = 0) {
  return (static_cast<std::uint32_t>(access) << 24) | ((static_cast<std::uint32_t>(index) & 0xFF) << 16) |
         (std::uint32_t{value} << 8) | (command_set & 7u);
}
// The fields of a CMD6 argument.
constexpr SwitchAccess switch_access(std::uint32_t arg) { return static_cast<SwitchAccess>((arg >> 24) & 3); }
constexpr std::uint8_t switch_index(std::uint32_t arg) { return static_cast<std::uint8_t>(arg >> 16); }
constexpr std::uint8_t switch_value(std::uint32_t arg) { return static_cast<std::uint8_t>(arg >> 8); }
constexpr std::uint8_t switch_command_set(std::uint32_t arg) { return static_cast<std::uint8_t>(arg & 7); }

// CMD13 SEND_STATUS: the RCA in [31:16]; bit 15 (SQS) asks for the queue status register.
namespace send_status {
constexpr std::uint32_t kSendQueueStatus = 1u << 15;  // SQS
}  // namespace send_status

// CMD23 SET_BLOCK_COUNT: the count of the next CMD18/CMD25 and how to write it.
namespace set_block_count {
constexpr std::uint32_t kReliableWrite = 1u << 31;    // reliable write request (CMD25)
constexpr std::uint32_t kPacked = 1u << 30;           // packed command (not supported here)
constexpr std::uint32_t kContextIdMask = 0xFu << 25;  // [28:25] context ID
constexpr unsigned kContextIdShift = 25;
constexpr std::uint32_t kForcedProgramming = 1u << 24;  // bypass the volatile cache
constexpr std::uint32_t kBlockCountMask = 0xFFFF;       // [15:0] blocks; 0 sets no count
}  // namespace set_block_count

// CMD38 ERASE arguments.
namespace erase_arg {
constexpr std::uint32_t kErase = 0x00000000;            // whole erase groups
constexpr std::uint32_t kTrim = 0x00000001;             // sectors
constexpr std::uint32_t kDiscard = 0x00000003;          // sectors, contents undefined after
constexpr std::uint32_t kSecureErase = 0x80000000;      // whole erase groups, securely
constexpr std::uint32_t kSecureTrimStep1 = 0x80000001;  // mark sectors for secure trim
constexpr std::uint32_t kSecureTrimStep2 = 0x80008000;  // erase everything marked
constexpr std::uint32_t kSecureBit = 1u << 31;          // the secure variants
}  // namespace erase_arg

// CMD42 LOCK_UNLOCK: the data block is [0] flags, [1] PWDS_LEN, [2..] password(s).
namespace lock_unlock {
constexpr std::uint8_t kSetPassword = 1u << 0;    // SET_PWD (with an old password: old then new)
constexpr std::uint8_t kClearPassword = 1u << 1;  // CLR_PWD
constexpr std::uint8_t kLock = 1u << 2;           // LOCK_UNLOCK: 1 locks, 0 unlocks
constexpr std::uint8_t kForceErase = 1u << 3;     // ERASE: forced erase of a locked card, alone
constexpr std::size_t kMaxPasswordLength = 16;
}  // namespace lock_unlock

// CMD31 SEND_WRITE_PROT_TYPE: two bits per write-protect group.
namespace write_protect_type {
constexpr std::uint8_t kNone = 0;
constexpr std::uint8_t kTemporary = 1;
constexpr std::uint8_t kPowerOn = 2;
constexpr std::uint8_t kPermanent = 3;
}  // namespace write_protect_type

// ---------------------------------------------------------------------------------------------
// Values of the EXT_CSD modes segment (JESD84-B51 §7.4), by field.
namespace ext_csd {

// FLUSH_CACHE [32].
namespace flush_cache {
constexpr std::uint8_t kFlush = 1u << 0;
constexpr std::uint8_t kBarrier = 1u << 1;  // not supported here
}  // namespace flush_cache

// CACHE_CTRL [33].
namespace cache_ctrl {
constexpr std::uint8_t kOff = 0;
constexpr std::uint8_t kOn = 1;
}  // namespace cache_ctrl

// POWER_OFF_NOTIFICATION [34].
namespace power_off_notification {
constexpr std::uint8_t kNoPowerNotification = 0;
constexpr std::uint8_t kPoweredOn = 1;
constexpr std::uint8_t kPowerOffShort = 2;
constexpr std::uint8_t kPowerOffLong = 3;
constexpr std::uint8_t kSleepNotification = 4;
}  // namespace power_off_notification

// USER_WP [171].
namespace user_wp {
constexpr std::uint8_t kPowerOnWpEnable = 1u << 0;           // US_PWR_WP_EN: CMD28 sets power-on protection
constexpr std::uint8_t kPermanentWpEnable = 1u << 2;         // US_PERM_WP_EN: CMD28 sets permanent protection
constexpr std::uint8_t kPowerOnWpDisable = 1u << 3;          // US_PWR_WP_DIS
constexpr std::uint8_t kPermanentWpDisable = 1u << 4;        // US_PERM_WP_DIS
constexpr std::uint8_t kCdPermanentWpDisable = 1u << 6;      // CD_PERM_WP_DIS
constexpr std::uint8_t kPermanentPasswordDisable = 1u << 7;  // PERM_PSWD_DIS
constexpr std::uint8_t kReserved = (1u << 1) | (1u << 5);
}  // namespace user_wp

// BOOT_WP [173].
namespace boot_wp {
constexpr std::uint8_t kPowerOnWpEnable = 1u << 0;        // B_PWR_WP_EN
constexpr std::uint8_t kPowerOnWpSecondArea = 1u << 1;    // B_PWR_WP_SEC_SEL: boot area 2 (with kSectionSelect)
constexpr std::uint8_t kPermanentWpEnable = 1u << 2;      // B_PERM_WP_EN
constexpr std::uint8_t kPermanentWpSecondArea = 1u << 3;  // B_PERM_WP_SEC_SEL
constexpr std::uint8_t kPermanentWpDisable = 1u << 4;     // B_PERM_WP_DIS
constexpr std::uint8_t kReserved = 1u << 5;
constexpr std::uint8_t kPowerOnWpDisable = 1u << 6;  // B_PWR_WP_DIS
constexpr std::uint8_t kSectionSelect = 1u << 7;     // B_SEC_WP_SEL: one area, not both
}  // namespace boot_wp

// BOOT_WP_STATUS [174], read only: two bits per boot area, area 1 in [1:0], area 2 in [3:2].
namespace boot_wp_status {
constexpr std::uint8_t kNotProtected = 0;
constexpr std::uint8_t kPowerOn = 1;
constexpr std::uint8_t kPermanent = 2;
constexpr std::uint8_t kAreaMask = 3;
// Where boot area `area` (0: boot partition 1, 1: boot partition 2) sits.
constexpr unsigned shift(unsigned area) { return 2 * area; }
}  // namespace boot_wp_status

// ERASE_GROUP_DEF [175].
namespace erase_group_def {
constexpr std::uint8_t kHighCapacity = 1u << 0;  // HC_ERASE_GRP_SIZE and HC_WP_GRP_SIZE apply
}  // namespace erase_group_def

// PARTITION_CONFIG [179]: [2:0] PARTITION_ACCESS (a Partition's value), [5:3]
// BOOT_PARTITION_ENABLE, bit 6 BOOT_ACK; bit 7 reserved.
namespace partition_config {
constexpr std::uint8_t kAccessMask = 0x07;
constexpr unsigned kBootEnableShift = 3;
constexpr std::uint8_t kBootEnableMask = 0x07u << kBootEnableShift;
constexpr std::uint8_t kBootAck = 1u << 6;
constexpr std::uint8_t kReserved = 1u << 7;
// BOOT_PARTITION_ENABLE values.
constexpr std::uint8_t kBootDisabled = 0;
constexpr std::uint8_t kBootFromBoot1 = 1;
constexpr std::uint8_t kBootFromBoot2 = 2;
constexpr std::uint8_t kBootFromUser = 7;

constexpr std::uint8_t value(Partition access, std::uint8_t boot_enable = kBootDisabled, bool boot_ack = false) {
  return static_cast<std::uint8_t>(static_cast<std::uint8_t>(access) | ((boot_enable & 7u) << kBootEnableShift) |
                                   (boot_ack ? kBootAck : 0u));
}
constexpr std::uint8_t access_of(std::uint8_t config) { return config & kAccessMask; }
constexpr std::uint8_t boot_enable_of(std::uint8_t config) {
  return static_cast<std::uint8_t>((config & kBootEnableMask) >> kBootEnableShift);
}
}  // namespace partition_config

// BUS_WIDTH [183]: [3:0] the bus mode, bit 7 enhanced strobe (HS400 only); [6:4] reserved.
namespace bus_width {
constexpr std::uint8_t k1Bit = 0;
constexpr std::uint8_t k4Bit = 1;
constexpr std::uint8_t k8Bit = 2;
constexpr std::uint8_t k4BitDdr = 5;
constexpr std::uint8_t k8BitDdr = 6;
constexpr std::uint8_t kEnhancedStrobe = 1u << 7;
constexpr std::uint8_t kModeMask = 0x0F;

// Data lines of a BUS_WIDTH value: 4 or 8 for JEDEC's 4- and 8-bit modes, else 1.
constexpr unsigned data_lines(std::uint8_t value) {
  const unsigned mode = value & kModeMask;
  return mode == k8Bit || mode == k8BitDdr ? 8 : mode == k4Bit || mode == k4BitDdr ? 4 : 1;
}
// Data on both clock edges (DDR52, HS400).
constexpr bool double_data_rate(std::uint8_t value) {
  const unsigned mode = value & kModeMask;
  return mode == k4BitDdr || mode == k8BitDdr;
}
}  // namespace bus_width

// HS_TIMING [185]: [3:0] timing interface, [7:4] driver strength (0..4, per DRIVER_STRENGTH).
namespace hs_timing {
constexpr std::uint8_t kBackwardCompatible = 0;  // legacy, up to 26 MHz
constexpr std::uint8_t kHighSpeed = 1;           // up to 52 MHz (DDR52 with a DDR bus width)
constexpr std::uint8_t kHs200 = 2;
constexpr std::uint8_t kHs400 = 3;
constexpr std::uint8_t kTimingMask = 0x0F;
constexpr unsigned kDriverStrengthShift = 4;

constexpr std::uint8_t value(std::uint8_t timing, std::uint8_t driver_strength = 0) {
  return static_cast<std::uint8_t>((timing & kTimingMask) | (driver_strength << kDriverStrengthShift));
}
constexpr std::uint8_t timing_of(std::uint8_t value) { return value & kTimingMask; }
constexpr std::uint8_t driver_strength_of(std::uint8_t value) {
  return static_cast<std::uint8_t>(value >> kDriverStrengthShift);
}
}  // namespace hs_timing

}  // namespace ext_csd
}  // namespace emmcsim::mmc
