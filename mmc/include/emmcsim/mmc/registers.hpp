// The registers a host reads from an eMMC, built from its DeviceConfig (JESD84-B51 §7):
// OCR (R3), CID and CSD (R2, 128 bits each, CRC7 in the last byte) and the 512-byte EXT_CSD.
// Byte arrays are in bus order: byte 0 holds bits [127:120] of CID/CSD; EXT_CSD byte i is
// field index i.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "emmcsim/mmc/device_config.hpp"

namespace emmcsim::mmc {

using Cid = std::array<std::uint8_t, 16>;
using Csd = std::array<std::uint8_t, 16>;
using ExtCsd = std::array<std::uint8_t, 512>;

// CRC7 (x^7 + x^3 + 1) over `size` bytes, as the eMMC bus computes it; returns the 7-bit value.
std::uint8_t crc7(const std::uint8_t* data, std::size_t size);

// OCR bits.
namespace ocr {
constexpr std::uint32_t kVoltage170_195 = 1u << 7;
constexpr std::uint32_t kVoltage270_360 = 0x00FF8000u;  // bits 23:15
constexpr std::uint32_t kVoltageField = 0x00FFFF80u;    // bits 23:7: every voltage window
constexpr std::uint32_t kAccessModeMask = 3u << 29;
constexpr std::uint32_t kSectorMode = 2u << 29;   // bit 30
constexpr std::uint32_t kPowerUpDone = 1u << 31;  // "not busy"
}  // namespace ocr

// The OCR the device reports once powered up (busy bit set): voltage windows and access mode.
std::uint32_t build_ocr(const DeviceConfig& config);

// CID with MID, CBX, OID, PNM, PRV, PSN, MDT and CRC7 (byte 15 = crc7 << 1 | 1).
Cid build_cid(const DeviceConfig& config);

// What the CSD promises about data access, as Linux's mmc_set_data_timeout() reads it: a read
// block within 10 × TAAC, a written block (and its busy) within 10 × 2^R2W_FACTOR × TAAC.
namespace csd {
constexpr std::uint64_t kReadAccessTimeNs = 15'000'000;  // TAAC 0x27: 1.5 × 10 ms
constexpr unsigned kWriteSpeedFactor = 3;                // R2W_FACTOR: writes up to 2^3 × longer
constexpr std::uint64_t kReadTimeoutNs = 10 * kReadAccessTimeNs;
constexpr std::uint64_t kWriteTimeoutNs = kReadTimeoutNs << kWriteSpeedFactor;
}  // namespace csd

// CSD: CSD_STRUCTURE 3 (version in EXT_CSD[194]), SPEC_VERS 4, TAAC/NSAC, TRAN_SPEED 26 MHz,
// CCC 0x0F5 (classes 0, 2, 4, 5, 6, 7), WRITE_BL_LEN 9, READ_BL_LEN 9, C_SIZE (0xFFF when sector
// addressed, else the exact size: (C_SIZE + 1) × 2^(C_SIZE_MULT + 2) × 2^READ_BL_LEN, where
// READ_BL_LEN is 10 with READ_BL_PARTIAL 1 for byte-addressed sizes above 1 GiB), legacy erase
// group 512 KiB (ERASE_GRP_SIZE/MULT 31/31), WP_GRP_SIZE = the write-protect group in 512 KiB
// units − 1 (capped at 31), WP_GRP_ENABLE, CRC7. The config is assumed validate()d.
Csd build_csd(const DeviceConfig& config);

// EXT_CSD named indices (JESD84-B51 §7.4). The values of the modes-segment fields hosts write
// with CMD6 are named in protocol.hpp (ext_csd::bus_width::k8BitDdr …).
namespace ext_csd {
// Indices below are the modes segment (writable with CMD6); from here on the properties segment.
constexpr std::size_t kPropertiesSegment = 192;
constexpr std::size_t kCmdqModeEn = 15;
constexpr std::size_t kFlushCache = 32;
constexpr std::size_t kCacheCtrl = 33;
constexpr std::size_t kPowerOffNotification = 34;
constexpr std::size_t kGpSizeMult = 143;  // 143..154, 3 bytes per GP, little-endian
constexpr std::size_t kPartitionSettingCompleted = 155;
constexpr std::size_t kPartitionsAttribute = 156;
constexpr std::size_t kMaxEnhSizeMult = 157;  // 157..159
constexpr std::size_t kPartitioningSupport = 160;
constexpr std::size_t kHpiMgmt = 161;
constexpr std::size_t kRstNFunction = 162;
constexpr std::size_t kBkopsEn = 163;
constexpr std::size_t kWrRelParam = 166;
constexpr std::size_t kWrRelSet = 167;
constexpr std::size_t kRpmbSizeMult = 168;
constexpr std::size_t kUserWp = 171;
constexpr std::size_t kBootWp = 173;
constexpr std::size_t kBootWpStatus = 174;
constexpr std::size_t kEraseGroupDef = 175;
constexpr std::size_t kBootBusConditions = 177;
constexpr std::size_t kBootConfigProt = 178;
constexpr std::size_t kPartitionConfig = 179;
constexpr std::size_t kErasedMemCont = 181;
constexpr std::size_t kBusWidth = 183;
constexpr std::size_t kStrobeSupport = 184;
constexpr std::size_t kHsTiming = 185;
constexpr std::size_t kPowerClass = 187;
constexpr std::size_t kCmdSetRev = 189;
constexpr std::size_t kCmdSet = 191;
constexpr std::size_t kExtCsdRev = 192;
constexpr std::size_t kCsdStructure = 194;
constexpr std::size_t kDeviceType = 196;
constexpr std::size_t kDriverStrength = 197;
constexpr std::size_t kOutOfInterruptTime = 198;
constexpr std::size_t kPartitionSwitchTime = 199;
constexpr std::size_t kSecCount = 212;  // 212..215, little-endian
constexpr std::size_t kSleepNotificationTime = 216;
constexpr std::size_t kSATimeout = 217;
constexpr std::size_t kSecureWpInfo = 211;
constexpr std::size_t kHcWpGrpSize = 221;
constexpr std::size_t kRelWrSecC = 222;
constexpr std::size_t kEraseTimeoutMult = 223;
constexpr std::size_t kHcEraseGrpSize = 224;
constexpr std::size_t kAccSize = 225;
constexpr std::size_t kBootSizeMult = 226;
constexpr std::size_t kBootInfo = 228;
constexpr std::size_t kSecTrimMult = 229;
constexpr std::size_t kSecEraseMult = 230;
constexpr std::size_t kSecFeatureSupport = 231;
constexpr std::size_t kTrimMult = 232;
constexpr std::size_t kPowerOffLongTime = 247;
constexpr std::size_t kGenericCmd6Time = 248;
constexpr std::size_t kCacheSize = 249;        // 249..252, little-endian, kilobits (Kb)
constexpr std::size_t kFirmwareVersion = 254;  // 254..261
constexpr std::size_t kDeviceVersion = 262;    // 262..263
constexpr std::size_t kPreEolInfo = 267;
constexpr std::size_t kDeviceLifeTimeEstA = 268;
constexpr std::size_t kDeviceLifeTimeEstB = 269;
constexpr std::size_t kCmdqDepth = 307;
constexpr std::size_t kCmdqSupport = 308;
constexpr std::size_t kBkopsSupport = 502;
constexpr std::size_t kHpiFeatures = 503;
constexpr std::size_t kSupportedCmdSets = 504;

// Bits.
constexpr std::uint8_t kWrRelParamHsCtrlRel = 1u << 0;
constexpr std::uint8_t kWrRelParamEnRpmbRelWr = 1u << 4;
constexpr std::uint8_t kSecFeatureSecureErase = 1u << 0;  // SECURE_ER_EN
constexpr std::uint8_t kSecFeatureBadBlock = 1u << 2;     // SEC_BD_BLK_EN
constexpr std::uint8_t kSecFeatureGbCl = 1u << 4;         // SEC_GB_CL_EN (trim)
constexpr std::uint8_t kSecFeatureSanitize = 1u << 6;
constexpr std::uint8_t kDeviceTypeHs26 = 1u << 0;
constexpr std::uint8_t kDeviceTypeHs52 = 1u << 1;
constexpr std::uint8_t kDeviceTypeDdr52 = 3u << 2;  // 1.8/3V and 1.2V
constexpr std::uint8_t kDeviceTypeHs200 = 1u << 4;  // 1.8 V
constexpr std::uint8_t kDeviceTypeHs400 = 1u << 6;  // 1.8 V
}  // namespace ext_csd

// The EXT_CSD as it reads after power-up: EXT_CSD_REV 8 (eMMC 5.1), CSD_STRUCTURE 2, SEC_COUNT,
// boot/RPMB/GP sizes (PARTITION_SETTING_COMPLETED = 1 always: the layout comes from the
// configuration and hosts cannot change it; so Linux sets ERASE_GROUP_DEF = 1), DEVICE_TYPE
// and STROBE_SUPPORT from the bus modes, REL_WR_SEC_C, WR_REL_PARAM (HS_CTRL_REL, EN_RPMB_REL_WR),
// erase/WP group sizes, timeouts, CACHE_SIZE, SEC_FEATURE_SUPPORT, CMDQ fields, firmware version,
// life-time estimates, S_CMD_SET. Modes-segment fields (HS_TIMING, BUS_WIDTH, PARTITION_CONFIG …)
// hold their power-up values (0); the device overlays its current values when it sends EXT_CSD.
ExtCsd build_ext_csd(const DeviceConfig& config);

}  // namespace emmcsim::mmc
