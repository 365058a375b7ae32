#include "emmcsim/mmc/registers.hpp"

#include <algorithm>
#include <cstring>

namespace emmcsim::mmc {
namespace {

constexpr std::uint64_t kLegacyEraseGroupBytes = 512 * 1024;  // CSD ERASE_GRP_SIZE/MULT 31/31
constexpr std::uint64_t kEraseGroupUnit = 512 * 1024;         // HC_ERASE_GRP_SIZE unit
constexpr std::uint64_t kBootRpmbUnit = 128 * 1024;           // BOOT_SIZE_MULT, RPMB_SIZE_MULT unit
constexpr std::uint64_t kOneGiB = 1ULL << 30;

// CSD constants of a shipping eMMC 5.1 part: 15 ms access time (TAAC 1.5 × 10 ms) plus 100 clocks
// (NSAC 1), writes up to 8 × that (R2W_FACTOR 3); Linux derives its data timeouts from these.
constexpr std::uint8_t kTaac = 0x27;
constexpr std::uint8_t kNsac = 0x01;
constexpr std::uint8_t kTranSpeed26MHz = 0x32;  // 2.6 × 10 MHz
constexpr std::uint8_t kR2wFactor = csd::kWriteSpeedFactor;
static_assert(csd::kReadAccessTimeNs == 15'000'000, "TAAC 0x27 codes 1.5 x 10 ms");
// Command classes the device implements: 0 basic, 2 block read, 4 block write, 5 erase,
// 6 write protection, 7 lock card.
constexpr std::uint16_t kCommandClasses = (1u << 0) | (1u << 2) | (1u << 4) | (1u << 5) | (1u << 6) | (1u << 7);
constexpr std::uint8_t kVddCurrentClass = 7;  // largest VDD_R/W_CURR_MIN/MAX classes (unused by hosts)

constexpr std::uint8_t kExtCsdRev51 = 8;
constexpr std::uint8_t kExtCsdStructure12 = 2;
constexpr std::uint8_t kPartitioningSupportAll = 0x07;  // PARTITIONING_EN, ENH_ATTRIBUTE_EN, EXT_ATTRIBUTE_EN
constexpr std::uint8_t kBootInfoAltBootMode = 1u << 0;
constexpr std::uint8_t kDriverStrengthTypes0To4 = 0x1F;
constexpr std::uint8_t kPreEolNormal = 0x01;
constexpr std::uint8_t kLifeTimeUsed0To10Percent = 0x01;
constexpr std::uint8_t kStandardCommandSet = 0x01;  // S_CMD_SET bit 0
constexpr char kFirmwareVersionText[9] = "EMSIM010";

// Writes `value` into bits [msb:lsb] of a 128-bit register held in bus order (byte 0 = [127:120]).
void put_bits(std::array<std::uint8_t, 16>& reg, unsigned msb, unsigned lsb, std::uint32_t value) {
  for (unsigned bit = lsb; bit <= msb; ++bit) {
    std::uint8_t& byte = reg[15 - bit / 8];
    const auto mask = static_cast<std::uint8_t>(1u << (bit % 8));
    if ((value >> (bit - lsb)) & 1u) {
      byte = static_cast<std::uint8_t>(byte | mask);
    } else {
      byte = static_cast<std::uint8_t>(byte & ~mask);
    }
  }
}

// Bits [7:1] of the last byte are the CRC7 of bits [127:8]; bit 0 is always 1.
void seal_with_crc(std::array<std::uint8_t, 16>& reg) {
  reg[15] = static_cast<std::uint8_t>(crc7(reg.data(), 15) << 1 | 1u);
}

void put_le(ExtCsd& ext_csd, std::size_t index, std::uint64_t value, std::size_t bytes) {
  for (std::size_t i = 0; i < bytes; ++i) ext_csd[index + i] = static_cast<std::uint8_t>(value >> (8 * i));
}

std::uint8_t saturate_byte(std::uint64_t value) {
  return static_cast<std::uint8_t>(std::min<std::uint64_t>(value, 0xFF));
}

// A byte-addressed device's size as CSD codes it: (C_SIZE + 1) × 2^(C_SIZE_MULT + 2) × 2^READ_BL_LEN.
// With 512-byte blocks the 12-bit C_SIZE reaches 1 GiB; above that (up to 2 GiB) the device
// reports 1 KiB blocks, as 2 GB MMC cards did, and allows 512-byte partial reads.
struct LegacyCapacity {
  unsigned read_bl_len;
  unsigned c_size;
  unsigned c_size_mult;
};

LegacyCapacity legacy_capacity(const DeviceConfig& config) {
  if (config.sector_addressing()) return {9, 0xFFF, 7};  // real size in EXT_CSD SEC_COUNT
  const unsigned read_bl_len = config.user_capacity > kOneGiB ? 10 : 9;
  const std::uint64_t blocks = config.user_capacity >> read_bl_len;
  for (unsigned mult = 0; mult <= 7; ++mult) {
    const std::uint64_t unit = 1ULL << (mult + 2);
    if (blocks % unit == 0 && blocks / unit >= 1 && blocks / unit <= 4096) {
      return {read_bl_len, static_cast<unsigned>(blocks / unit - 1), mult};
    }
  }
  // validate() rules this out (user capacity is a multiple of 512 KiB); round down if not.
  const std::uint64_t c_size_plus_1 = std::clamp<std::uint64_t>(blocks >> 9, 1, 4096);
  return {read_bl_len, static_cast<unsigned>(c_size_plus_1 - 1), 7};
}

}  // namespace

std::uint8_t crc7(const std::uint8_t* data, std::size_t size) {
  std::uint8_t crc = 0;  // the 7-bit shift register in bits [6:0]
  for (std::size_t i = 0; i < size; ++i) {
    for (int bit = 7; bit >= 0; --bit) {
      const bool feedback = (((data[i] >> bit) ^ (crc >> 6)) & 1u) != 0;
      crc = static_cast<std::uint8_t>((crc << 1) & 0x7F);
      if (feedback) crc ^= 0x09;  // x^3 + 1 (x^7 is the bit shifted out)
    }
  }
  return crc;
}

std::uint32_t build_ocr(const DeviceConfig& config) {
  std::uint32_t value = ocr::kVoltage270_360 | ocr::kVoltage170_195 | ocr::kPowerUpDone;
  if (config.sector_addressing()) value |= ocr::kSectorMode;  // byte mode is access mode 0
  return value;
}

Cid build_cid(const DeviceConfig& config) {
  const CidConfig& cid = config.cid;
  Cid reg{};
  put_bits(reg, 127, 120, cid.manufacturer_id);  // MID
  put_bits(reg, 113, 112, cid.device_type);      // CBX
  put_bits(reg, 111, 104, cid.oem_id);           // OID
  for (unsigned i = 0; i < 6; ++i) {             // PNM, space-padded
    const char c = i < cid.product_name.size() ? cid.product_name[i] : ' ';
    put_bits(reg, 103 - 8 * i, 96 - 8 * i, static_cast<std::uint8_t>(c));
  }
  put_bits(reg, 55, 48, cid.product_revision);     // PRV
  put_bits(reg, 47, 16, cid.serial);               // PSN
  put_bits(reg, 15, 12, cid.manufacturing_month);  // MDT month
  // MDT year, coded from 2013 as EXT_CSD_REV > 4 devices do. Linux reads 1997 + y, + 16 if
  // below 2010, so 2026..2028 show there as 2010..2012, as they do for real parts.
  const int year_code = std::clamp(static_cast<int>(cid.manufacturing_year) - 2013, 0, 15);
  put_bits(reg, 11, 8, static_cast<std::uint32_t>(year_code));
  seal_with_crc(reg);
  return reg;
}

Csd build_csd(const DeviceConfig& config) {
  const LegacyCapacity capacity = legacy_capacity(config);
  // The legacy write-protect group counts legacy (512 KiB) erase groups, at most 32 of them;
  // it covers the same bytes as the configured group whenever 5 bits can say so.
  const std::uint64_t legacy_wp_groups =
      std::clamp<std::uint64_t>(config.write_protect_group_bytes() / kLegacyEraseGroupBytes, 1, 32);

  Csd reg{};
  put_bits(reg, 127, 126, 3);                               // CSD_STRUCTURE: version in EXT_CSD[194]
  put_bits(reg, 125, 122, 4);                               // SPEC_VERS: 4.1 and later
  put_bits(reg, 119, 112, kTaac);                           // TAAC
  put_bits(reg, 111, 104, kNsac);                           // NSAC
  put_bits(reg, 103, 96, kTranSpeed26MHz);                  // TRAN_SPEED
  put_bits(reg, 95, 84, kCommandClasses);                   // CCC
  put_bits(reg, 83, 80, capacity.read_bl_len);              // READ_BL_LEN
  put_bits(reg, 79, 79, capacity.read_bl_len > 9 ? 1 : 0);  // READ_BL_PARTIAL
  // WRITE_BLK_MISALIGN [78], READ_BLK_MISALIGN [77], DSR_IMP [76]: 0.
  put_bits(reg, 73, 62, capacity.c_size);       // C_SIZE
  put_bits(reg, 61, 59, kVddCurrentClass);      // VDD_R_CURR_MIN
  put_bits(reg, 58, 56, kVddCurrentClass);      // VDD_R_CURR_MAX
  put_bits(reg, 55, 53, kVddCurrentClass);      // VDD_W_CURR_MIN
  put_bits(reg, 52, 50, kVddCurrentClass);      // VDD_W_CURR_MAX
  put_bits(reg, 49, 47, capacity.c_size_mult);  // C_SIZE_MULT
  put_bits(reg, 46, 42, 31);                    // ERASE_GRP_SIZE: (31 + 1) × (31 + 1) blocks
  put_bits(reg, 41, 37, 31);                    // ERASE_GRP_MULT   = 512 KiB
  put_bits(reg, 36, 32, static_cast<std::uint32_t>(legacy_wp_groups - 1));  // WP_GRP_SIZE
  put_bits(reg, 31, 31, 1);                                                 // WP_GRP_ENABLE
  // DEFAULT_ECC [30:29]: 0.
  put_bits(reg, 28, 26, kR2wFactor);  // R2W_FACTOR
  put_bits(reg, 25, 22, 9);           // WRITE_BL_LEN: 512 bytes
  // WRITE_BL_PARTIAL [21], CONTENT_PROT_APP [16], FILE_FORMAT_GRP [15], COPY [14],
  // PERM/TMP_WRITE_PROTECT [13:12], FILE_FORMAT [11:10] (hard disk-like), ECC [9:8]: 0.
  seal_with_crc(reg);
  return reg;
}

ExtCsd build_ext_csd(const DeviceConfig& config) {
  using namespace ext_csd;
  ExtCsd reg{};
  const std::uint64_t wp_group_bytes = config.write_protect_group_bytes();

  // Properties segment.
  reg[kSupportedCmdSets] = kStandardCommandSet;
  reg[kHpiFeatures] = 0;
  reg[kBkopsSupport] = 0;
  if (config.command_queue_depth > 0) {
    reg[kCmdqSupport] = 1;
    reg[kCmdqDepth] = static_cast<std::uint8_t>((config.command_queue_depth - 1) & 0x1F);  // depth - 1
  }
  reg[kDeviceLifeTimeEstB] = kLifeTimeUsed0To10Percent;
  reg[kDeviceLifeTimeEstA] = kLifeTimeUsed0To10Percent;
  reg[kPreEolInfo] = kPreEolNormal;
  std::memcpy(&reg[kFirmwareVersion], kFirmwareVersionText, 8);
  put_le(reg, kCacheSize, config.cache_size * 8 / 1024, 4);  // kilobits, as mmc-utils reads it
  const TimeoutConfig& t = config.timeouts;
  reg[kGenericCmd6Time] = saturate_byte(t.generic_cmd6_time_ms / 10);
  reg[kPowerOffLongTime] = saturate_byte(t.power_off_long_time_ms / 10);
  reg[kTrimMult] = saturate_byte(t.trim_timeout_ms / 300);
  if (config.secure_erase_trim) reg[kSecFeatureSupport] = kSecFeatureSecureErase | kSecFeatureGbCl;
  if (t.erase_timeout_ms != 0) {
    reg[kSecEraseMult] = saturate_byte(t.secure_erase_timeout_ms / t.erase_timeout_ms);
    reg[kSecTrimMult] = saturate_byte(t.secure_trim_timeout_ms / t.erase_timeout_ms);
  }
  reg[kBootInfo] = kBootInfoAltBootMode;
  reg[kBootSizeMult] = saturate_byte(config.boot_partition_size / kBootRpmbUnit);
  reg[kAccSize] = 0;  // super page size not defined
  reg[kHcEraseGrpSize] = saturate_byte(config.erase_group_size / kEraseGroupUnit);
  reg[kEraseTimeoutMult] = saturate_byte(t.erase_timeout_ms / 300);
  reg[kRelWrSecC] = config.reliable_write_sectors;
  reg[kHcWpGrpSize] = config.write_protect_group_size;
  reg[kSATimeout] = t.sleep_awake_timeout_exp;
  put_le(reg, kSecCount, std::min<std::uint64_t>(config.user_capacity / 512, 0xFFFFFFFF), 4);
  reg[kSecureWpInfo] = 0;
  reg[kPartitionSwitchTime] = saturate_byte(t.partition_switch_time_ms / 10);
  reg[kOutOfInterruptTime] = saturate_byte(t.out_of_interrupt_time_ms / 10);
  reg[kDriverStrength] = kDriverStrengthTypes0To4;

  const BusModes& modes = config.bus_modes;
  std::uint8_t device_type = 0;
  if (modes.hs26) device_type |= kDeviceTypeHs26;
  if (modes.hs52) device_type |= kDeviceTypeHs52;
  if (modes.ddr52) device_type |= kDeviceTypeDdr52;
  if (modes.hs200) device_type |= kDeviceTypeHs200;
  if (modes.hs400) device_type |= kDeviceTypeHs400;
  reg[kDeviceType] = device_type;
  reg[kCsdStructure] = kExtCsdStructure12;
  reg[kExtCsdRev] = kExtCsdRev51;
  reg[kStrobeSupport] = modes.enhanced_strobe ? 1 : 0;

  // Read-only fields inside the modes segment.
  reg[kRpmbSizeMult] = saturate_byte(config.rpmb_size / kBootRpmbUnit);
  reg[kWrRelParam] =
      static_cast<std::uint8_t>(kWrRelParamHsCtrlRel | (config.en_rpmb_rel_wr ? kWrRelParamEnRpmbRelWr : 0));
  reg[kPartitioningSupport] = kPartitioningSupportAll;
  if (wp_group_bytes != 0) {
    put_le(reg, kMaxEnhSizeMult, std::min<std::uint64_t>(config.user_capacity / wp_group_bytes, 0xFFFFFF), 3);
    const auto& gps = config.general_purpose_partitions;
    for (std::size_t i = 0; i < gps.size() && i < 4; ++i) {
      put_le(reg, kGpSizeMult + 3 * i, std::min<std::uint64_t>(gps[i] / wp_group_bytes, 0xFFFFFF), 3);
    }
  }
  // The layout comes from the configuration and is final: hosts cannot repartition, and Linux
  // reads GP sizes and selects the high-capacity erase groups only when this is set.
  reg[kPartitionSettingCompleted] = 1;

  // Writable modes-segment fields (ERASE_GROUP_DEF, PARTITION_CONFIG, BUS_WIDTH, HS_TIMING,
  // CACHE_CTRL, CMDQ_MODE_EN …) and ERASED_MEM_CONT stay 0.
  return reg;
}

}  // namespace emmcsim::mmc
