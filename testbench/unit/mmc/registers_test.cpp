// Registers built from a DeviceConfig, checked by decoding them the way a host does: CID and CSD
// as Linux's mmc_decode_cid()/mmc_decode_csd() read them, EXT_CSD fields by the byte indices of
// include/linux/mmc/mmc.h (spelt out here, independently of registers.hpp), CRC7 against known
// command tokens, a real device's CSD and a bit-by-bit polynomial division.
#include "emmcsim/mmc/registers.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "emmcsim/mmc/partition.hpp"

namespace emmcsim::mmc {
namespace {

constexpr std::uint64_t KiB = 1ULL << 10;
constexpr std::uint64_t MiB = 1ULL << 20;
constexpr std::uint64_t GiB = 1ULL << 30;

// EXT_CSD byte indices as Linux (include/linux/mmc/mmc.h) and mmc-utils name them.
namespace idx {
constexpr std::size_t CMDQ_MODE_EN = 15;
constexpr std::size_t FLUSH_CACHE = 32;
constexpr std::size_t CACHE_CTRL = 33;
constexpr std::size_t POWER_OFF_NOTIFICATION = 34;
constexpr std::size_t GP_SIZE_MULT = 143;
constexpr std::size_t PARTITION_SETTING_COMPLETED = 155;
constexpr std::size_t PARTITION_ATTRIBUTE = 156;
constexpr std::size_t MAX_ENH_SIZE_MULT = 157;
constexpr std::size_t PARTITION_SUPPORT = 160;
constexpr std::size_t HPI_MGMT = 161;
constexpr std::size_t RST_N_FUNCTION = 162;
constexpr std::size_t BKOPS_EN = 163;
constexpr std::size_t WR_REL_PARAM = 166;
constexpr std::size_t WR_REL_SET = 167;
constexpr std::size_t RPMB_MULT = 168;
constexpr std::size_t USER_WP = 171;
constexpr std::size_t BOOT_WP = 173;
constexpr std::size_t BOOT_WP_STATUS = 174;
constexpr std::size_t ERASE_GROUP_DEF = 175;
constexpr std::size_t BOOT_BUS_CONDITIONS = 177;
constexpr std::size_t BOOT_CONFIG_PROT = 178;
constexpr std::size_t PART_CONFIG = 179;
constexpr std::size_t ERASED_MEM_CONT = 181;
constexpr std::size_t BUS_WIDTH = 183;
constexpr std::size_t STROBE_SUPPORT = 184;
constexpr std::size_t HS_TIMING = 185;
constexpr std::size_t POWER_CLASS = 187;
constexpr std::size_t CMD_SET_REV = 189;
constexpr std::size_t CMD_SET = 191;
constexpr std::size_t REV = 192;
constexpr std::size_t STRUCTURE = 194;
constexpr std::size_t CARD_TYPE = 196;
constexpr std::size_t DRIVER_STRENGTH = 197;
constexpr std::size_t OUT_OF_INTERRUPT_TIME = 198;
constexpr std::size_t PART_SWITCH_TIME = 199;
constexpr std::size_t SECURE_WP_INFO = 211;
constexpr std::size_t SEC_CNT = 212;
constexpr std::size_t SLEEP_NOTIFICATION_TIME = 216;
constexpr std::size_t S_A_TIMEOUT = 217;
constexpr std::size_t HC_WP_GRP_SIZE = 221;
constexpr std::size_t REL_WR_SEC_C = 222;
constexpr std::size_t ERASE_TIMEOUT_MULT = 223;
constexpr std::size_t HC_ERASE_GRP_SIZE = 224;
constexpr std::size_t ACC_SIZE = 225;
constexpr std::size_t BOOT_MULT = 226;
constexpr std::size_t BOOT_INFO = 228;
constexpr std::size_t SEC_TRIM_MULT = 229;
constexpr std::size_t SEC_ERASE_MULT = 230;
constexpr std::size_t SEC_FEATURE_SUPPORT = 231;
constexpr std::size_t TRIM_MULT = 232;
constexpr std::size_t POWER_OFF_LONG_TIME = 247;
constexpr std::size_t GENERIC_CMD6_TIME = 248;
constexpr std::size_t CACHE_SIZE = 249;
constexpr std::size_t FIRMWARE_VERSION = 254;
constexpr std::size_t DEVICE_VERSION = 262;
constexpr std::size_t PRE_EOL_INFO = 267;
constexpr std::size_t DEVICE_LIFE_TIME_EST_TYP_A = 268;
constexpr std::size_t DEVICE_LIFE_TIME_EST_TYP_B = 269;
constexpr std::size_t CMDQ_DEPTH = 307;
constexpr std::size_t CMDQ_SUPPORT = 308;
constexpr std::size_t BKOPS_SUPPORT = 502;
constexpr std::size_t HPI_FEATURES = 503;
constexpr std::size_t S_CMD_SET = 504;
}  // namespace idx

// ---------------------------------------------------------------------------------------------
// Decoders written from the specification, not from the implementation.

// UNSTUFF_BITS: bits [start + size - 1 : start] of a 128-bit register in bus order.
std::uint32_t bits(const std::array<std::uint8_t, 16>& reg, unsigned start, unsigned size) {
  std::uint32_t value = 0;
  for (unsigned i = size; i-- > 0;) {
    const unsigned bit = start + i;
    value = value << 1 | ((reg[15 - bit / 8] >> (bit % 8)) & 1u);
  }
  return value;
}

// CRC7 by polynomial long division: the remainder of message · x^7 divided by x^7 + x^3 + 1.
std::uint8_t crc7_by_division(const std::vector<std::uint8_t>& message) {
  std::vector<int> dividend;
  for (std::uint8_t byte : message) {
    for (int bit = 7; bit >= 0; --bit) dividend.push_back((byte >> bit) & 1);
  }
  dividend.insert(dividend.end(), 7, 0);
  const int generator[8] = {1, 0, 0, 0, 1, 0, 0, 1};
  for (std::size_t i = 0; i + 7 < dividend.size(); ++i) {
    if (dividend[i] == 0) continue;
    for (int j = 0; j < 8; ++j) dividend[i + static_cast<std::size_t>(j)] ^= generator[j];
  }
  std::uint8_t remainder = 0;
  for (std::size_t i = dividend.size() - 7; i < dividend.size(); ++i) {
    remainder = static_cast<std::uint8_t>(remainder << 1 | dividend[i]);
  }
  return remainder;
}

std::uint8_t crc7_of(const std::vector<std::uint8_t>& bytes) { return crc7(bytes.data(), bytes.size()); }

// Bits [7:1] of the last byte hold the CRC7 of the first 15; bit 0 is the end bit, 1.
void expect_sealed(const std::array<std::uint8_t, 16>& reg) {
  EXPECT_EQ(reg[15] & 1, 1);
  EXPECT_EQ(reg[15] >> 1, crc7_by_division(std::vector<std::uint8_t>(reg.begin(), reg.begin() + 15)));
}

struct DecodedCid {
  unsigned manfid, cbx, oemid, prv, month, year;
  std::uint32_t serial;
  std::string prod_name;
};

// mmc_decode_cid() for MMCA_VSN 4. The year is JESD84-B51's: MDT [11:8] counts from 2013 when
// EXT_CSD_REV > 4 (from 1997 before).
DecodedCid decode_cid(const Cid& cid, unsigned ext_csd_rev) {
  DecodedCid d{};
  d.manfid = bits(cid, 120, 8);
  d.cbx = bits(cid, 112, 2);
  d.oemid = bits(cid, 104, 8);
  for (unsigned i = 0; i < 6; ++i) d.prod_name += static_cast<char>(bits(cid, 96 - 8 * i, 8));
  d.prv = bits(cid, 48, 8);
  d.serial = bits(cid, 16, 32);
  d.month = bits(cid, 12, 4);
  d.year = bits(cid, 8, 4) + (ext_csd_rev > 4 ? 2013 : 1997);
  return d;
}

// Linux's year: 1997 + MDT[11:8], plus 16 if below 2010 when EXT_CSD_REV >= 5 (mmc_decode_cid()
// and mmc_decode_ext_csd()). Codes 13..15 (2026..2028) therefore read as 2010..2012 there, as
// they do for every real eMMC 5.1 part made in those years.
unsigned linux_cid_year(const Cid& cid, unsigned ext_csd_rev) {
  unsigned year = bits(cid, 8, 4) + 1997;
  if (ext_csd_rev >= 5 && year < 2010) year += 16;
  return year;
}

std::uint64_t little_endian(const ExtCsd& ext_csd, std::size_t index, std::size_t bytes) {
  std::uint64_t value = 0;
  for (std::size_t i = bytes; i-- > 0;) value = value << 8 | ext_csd[index + i];
  return value;
}

// The user area size a host computes: SEC_COUNT when sector addressed (Linux: more than 2 GiB
// of sectors), else CSD (C_SIZE + 1) << (C_SIZE_MULT + 2) blocks of 2^READ_BL_LEN bytes.
std::uint64_t host_user_capacity(const Csd& csd, const ExtCsd& ext_csd) {
  const std::uint64_t sectors = little_endian(ext_csd, idx::SEC_CNT, 4);
  if (sectors > 2 * GiB / 512) return sectors * 512;
  const std::uint64_t blocks = static_cast<std::uint64_t>(1 + bits(csd, 62, 12)) << (bits(csd, 47, 3) + 2);
  return blocks << bits(csd, 80, 4);
}

// ---------------------------------------------------------------------------------------------
// CRC7

TEST(RegistersCrc7, CommandTokens) {
  EXPECT_EQ(crc7_of({0x40, 0x00, 0x00, 0x00, 0x00}), 0x4A);  // CMD0, token ends 0x95
  EXPECT_EQ(crc7_of({0x51, 0x00, 0x00, 0x00, 0x00}), 0x2A);  // CMD17 address 0
  EXPECT_EQ(crc7_of({0x48, 0x00, 0x00, 0x01, 0xAA}), 0x43);  // SD CMD8, token ends 0x87
  EXPECT_EQ(crc7_of({0x77, 0x00, 0x00, 0x00, 0x00}), 0x32);  // CMD55, token ends 0x65
  EXPECT_EQ(crc7_of({0x69, 0x40, 0x00, 0x00, 0x00}), 0x3B);  // ACMD41 HCS, token ends 0x77
  EXPECT_EQ(crc7_of({}), 0x00);
}

// The CSD of a shipping Samsung eMMC 5.x part as sysfs shows it; its last byte is 0x06 << 1 | 1.
TEST(RegistersCrc7, RealDeviceCsd) {
  const Csd csd = {0xD0, 0x27, 0x01, 0x32, 0x0F, 0x59, 0x03, 0xFF, 0xF6, 0xDB, 0xFF, 0xEF, 0x8E, 0x40, 0x40, 0x0D};
  EXPECT_EQ(crc7(csd.data(), 15), 0x06);
  // The test's decoder agrees with what that part is known to report.
  EXPECT_EQ(bits(csd, 126, 2), 3u);
  EXPECT_EQ(bits(csd, 84, 12), 0x0F5u);
  EXPECT_EQ(bits(csd, 80, 4), 9u);
  EXPECT_EQ(bits(csd, 62, 12), 0xFFFu);
  EXPECT_EQ(bits(csd, 22, 4), 9u);
}

TEST(RegistersCrc7, AgreesWithPolynomialDivision) {
  std::mt19937 random(20260111);
  for (int round = 0; round < 500; ++round) {
    std::vector<std::uint8_t> message(random() % 40);
    for (auto& byte : message) byte = static_cast<std::uint8_t>(random());
    ASSERT_EQ(crc7_of(message), crc7_by_division(message)) << "round " << round;
  }
}

// ---------------------------------------------------------------------------------------------
// OCR

TEST(RegistersOcr, SectorModeAbove2GiB) {
  DeviceConfig c = default_device_config();
  EXPECT_EQ(build_ocr(c), 0xC0FF8080u);  // the OCR eMMC parts answer CMD1 with once ready
  c.user_capacity = 2 * GiB + 512 * KiB;
  EXPECT_EQ(build_ocr(c), 0xC0FF8080u);
}

TEST(RegistersOcr, ByteModeUpTo2GiB) {
  DeviceConfig c = default_device_config();
  c.user_capacity = 2 * GiB;
  EXPECT_EQ(build_ocr(c), 0x80FF8080u);
  c.user_capacity = MiB;
  EXPECT_EQ(build_ocr(c), 0x80FF8080u);
}

// ---------------------------------------------------------------------------------------------
// CID

TEST(RegistersCid, FieldsDecodeAsLinuxReadsThem) {
  const DeviceConfig c = default_device_config();
  const Cid cid = build_cid(c);
  const DecodedCid d = decode_cid(cid, build_ext_csd(c)[idx::REV]);
  EXPECT_EQ(d.manfid, c.cid.manufacturer_id);
  EXPECT_EQ(d.cbx, c.cid.device_type);
  EXPECT_EQ(d.oemid, c.cid.oem_id);
  EXPECT_EQ(d.prod_name, c.cid.product_name);
  EXPECT_EQ(d.prv, c.cid.product_revision);
  EXPECT_EQ(d.serial, c.cid.serial);
  EXPECT_EQ(d.month, 11u);
  EXPECT_EQ(d.year, 2025u);
  EXPECT_EQ(linux_cid_year(cid, build_ext_csd(c)[idx::REV]), 2025u);  // the default reads right in Linux
  EXPECT_EQ(bits(cid, 114, 6), 0u);                                   // reserved
  expect_sealed(cid);
}

TEST(RegistersCid, EveryFieldAtOtherValues) {
  DeviceConfig c = default_device_config();
  c.cid = CidConfig{0x15, 0xFE, "Zz 9~", 0x7C, 0x80000001, 1, 2013, 2};
  const DecodedCid d = decode_cid(build_cid(c), build_ext_csd(c)[idx::REV]);
  EXPECT_EQ(d.manfid, 0x15u);
  EXPECT_EQ(d.cbx, 2u);
  EXPECT_EQ(d.oemid, 0xFEu);
  EXPECT_EQ(d.prod_name, "Zz 9~ ");  // space-padded to six characters
  EXPECT_EQ(d.prv, 0x7Cu);
  EXPECT_EQ(d.serial, 0x80000001u);
  EXPECT_EQ(d.month, 1u);
  EXPECT_EQ(d.year, 2013u);
  expect_sealed(build_cid(c));
}

TEST(RegistersCid, SerialsDifferInTheCid) {
  DeviceConfig a = default_device_config();
  DeviceConfig b = a;
  b.cid.serial ^= 0x00010000;
  EXPECT_NE(build_cid(a), build_cid(b));
  EXPECT_NE(build_cid(a)[15], build_cid(b)[15]);  // and so does the CRC
}

class RegistersCidYear : public ::testing::TestWithParam<int> {};

TEST_P(RegistersCidYear, DecodesBack) {
  DeviceConfig c = default_device_config();
  c.cid.manufacturing_year = static_cast<std::uint16_t>(GetParam());
  c.cid.manufacturing_month = static_cast<std::uint8_t>(1 + GetParam() % 12);
  const Cid cid = build_cid(c);
  const unsigned rev = build_ext_csd(c)[idx::REV];
  const DecodedCid d = decode_cid(cid, rev);
  EXPECT_EQ(d.year, static_cast<unsigned>(GetParam()));
  EXPECT_EQ(d.month, static_cast<unsigned>(1 + GetParam() % 12));
  const unsigned linux_year = static_cast<unsigned>(GetParam() <= 2025 ? GetParam() : GetParam() - 16);
  EXPECT_EQ(linux_cid_year(cid, rev), linux_year);
}

INSTANTIATE_TEST_SUITE_P(Registers, RegistersCidYear, ::testing::Range(2013, 2029));

// ---------------------------------------------------------------------------------------------
// CSD

TEST(RegistersCsd, FixedFields) {
  const DeviceConfig c = default_device_config();
  const Csd csd = build_csd(c);
  EXPECT_EQ(bits(csd, 126, 2), 3u);      // CSD_STRUCTURE: see EXT_CSD
  EXPECT_EQ(bits(csd, 122, 4), 4u);      // SPEC_VERS 4.x
  EXPECT_EQ(bits(csd, 96, 8), 0x32u);    // TRAN_SPEED: mantissa 6 (2.6) × 10 MHz = 26 MHz
  EXPECT_EQ(bits(csd, 84, 12), 0x0F5u);  // classes 0, 2, 4, 5, 6, 7
  EXPECT_EQ(bits(csd, 80, 4), 9u);       // READ_BL_LEN 512
  EXPECT_EQ(bits(csd, 62, 12), 0xFFFu);  // C_SIZE: sector addressed, size in EXT_CSD
  EXPECT_EQ(bits(csd, 22, 4), 9u);       // WRITE_BL_LEN 512
  EXPECT_EQ(bits(csd, 31, 1), 1u);       // WP_GRP_ENABLE
  // Legacy erase group: (ERASE_GRP_SIZE + 1) × (ERASE_GRP_MULT + 1) write blocks = 512 KiB.
  EXPECT_EQ((bits(csd, 42, 5) + 1) * (bits(csd, 37, 5) + 1) * 512u, 512 * KiB);
  EXPECT_EQ(bits(csd, 16, 1) | bits(csd, 12, 4) | bits(csd, 8, 2), 0u);  // no protection, no ECC
  // TAAC is a valid code (time value 1..15) and NSAC fits: Linux derives timeouts from them.
  EXPECT_NE(bits(csd, 115, 4), 0u);
  expect_sealed(csd);
}

class RegistersCsdCapacity : public ::testing::TestWithParam<std::uint64_t> {};

TEST_P(RegistersCsdCapacity, DecodesToTheConfiguredSize) {
  DeviceConfig c = default_device_config();
  c.user_capacity = GetParam();
  ASSERT_NO_THROW(validate(c));
  const Csd csd = build_csd(c);
  EXPECT_EQ(host_user_capacity(csd, build_ext_csd(c)), GetParam());
  if (!c.sector_addressing()) {
    const std::uint64_t blocks = static_cast<std::uint64_t>(1 + bits(csd, 62, 12)) << (bits(csd, 47, 3) + 2);
    EXPECT_EQ(blocks << bits(csd, 80, 4), GetParam());
    // Blocks larger than 512 bytes only with partial (512-byte) reads allowed.
    if (bits(csd, 80, 4) > 9) {
      EXPECT_EQ(bits(csd, 79, 1), 1u);
    }
  }
  expect_sealed(csd);
}

INSTANTIATE_TEST_SUITE_P(Registers, RegistersCsdCapacity,
                         ::testing::Values(MiB, 3 * 512 * KiB, 7 * 512 * KiB, 100 * MiB, GiB - 512 * KiB, GiB,
                                           GiB + 512 * KiB, GiB + 3 * 512 * KiB, 3 * GiB / 2 + 512 * KiB,
                                           2 * GiB - 512 * KiB, 2 * GiB, 2 * GiB + 512 * KiB, 8 * GiB,
                                           (2ULL << 40) - 512 * KiB));

// Every capacity validate() accepts in byte mode is exactly representable.
TEST(RegistersCsd, EveryByteAddressedCapacityIsExact) {
  DeviceConfig c = default_device_config();
  for (std::uint64_t capacity = MiB; capacity <= 2 * GiB; capacity += 512 * KiB) {
    c.user_capacity = capacity;
    const Csd csd = build_csd(c);
    const std::uint64_t blocks = static_cast<std::uint64_t>(1 + bits(csd, 62, 12)) << (bits(csd, 47, 3) + 2);
    ASSERT_EQ(blocks << bits(csd, 80, 4), capacity);
  }
}

TEST(RegistersCsd, WriteProtectGroupCoversTheConfiguredBytes) {
  struct Case {
    std::uint64_t erase_group;
    std::uint8_t wp_groups;
    unsigned wp_grp_size;  // legacy groups − 1
  };
  for (const Case& k : {Case{512 * KiB, 1, 0}, Case{512 * KiB, 16, 15}, Case{2 * MiB, 4, 15}, Case{512 * KiB, 32, 31},
                        Case{512 * KiB, 200, 31}, Case{3 * 512 * KiB, 5, 14}}) {
    DeviceConfig c = default_device_config();
    c.erase_group_size = k.erase_group;
    c.write_protect_group_size = k.wp_groups;
    EXPECT_EQ(bits(build_csd(c), 32, 5), k.wp_grp_size) << k.erase_group << " × " << int{k.wp_groups};
  }
}

// ---------------------------------------------------------------------------------------------
// EXT_CSD

TEST(RegistersExtCsd, IdentityOfAnEmmc51Device) {
  const ExtCsd e = build_ext_csd(default_device_config());
  EXPECT_EQ(e[idx::REV], 8);            // eMMC 5.1
  EXPECT_EQ(e[idx::STRUCTURE], 2);      // CSD version 1.2
  EXPECT_EQ(e[idx::S_CMD_SET] & 1, 1);  // standard MMC command set
  const std::string firmware(reinterpret_cast<const char*>(&e[idx::FIRMWARE_VERSION]), 8);
  for (char ch : firmware) EXPECT_TRUE(ch >= 0x20 && ch <= 0x7E) << firmware;
  EXPECT_EQ(e[idx::PRE_EOL_INFO], 1);
  EXPECT_EQ(e[idx::DEVICE_LIFE_TIME_EST_TYP_A], 1);
  EXPECT_EQ(e[idx::DEVICE_LIFE_TIME_EST_TYP_B], 1);
  EXPECT_EQ(e[idx::BOOT_INFO] & 1, 1);  // alternative boot mode
  EXPECT_EQ(e[idx::DRIVER_STRENGTH], 0x1F);
  EXPECT_EQ(e[idx::BKOPS_SUPPORT], 0);
  EXPECT_EQ(e[idx::HPI_FEATURES], 0);
  EXPECT_EQ(e[idx::ERASED_MEM_CONT], 0);
  EXPECT_EQ(e[idx::PARTITION_SUPPORT], 0x07);
  EXPECT_EQ(e[idx::PARTITION_SETTING_COMPLETED] & 1, 1);
}

TEST(RegistersExtCsd, ModesSegmentHoldsPowerUpValues) {
  const ExtCsd e = build_ext_csd(default_device_config());
  for (std::size_t index : {idx::CMDQ_MODE_EN,
                            idx::FLUSH_CACHE,
                            idx::CACHE_CTRL,
                            idx::POWER_OFF_NOTIFICATION,
                            idx::PARTITION_ATTRIBUTE,
                            idx::HPI_MGMT,
                            idx::RST_N_FUNCTION,
                            idx::BKOPS_EN,
                            idx::WR_REL_SET,
                            idx::USER_WP,
                            idx::BOOT_WP,
                            idx::BOOT_WP_STATUS,
                            idx::ERASE_GROUP_DEF,
                            idx::BOOT_BUS_CONDITIONS,
                            idx::BOOT_CONFIG_PROT,
                            idx::PART_CONFIG,
                            idx::BUS_WIDTH,
                            idx::HS_TIMING,
                            idx::POWER_CLASS,
                            idx::CMD_SET_REV,
                            idx::CMD_SET}) {
    EXPECT_EQ(e[index], 0) << "EXT_CSD[" << index << "]";
  }
}

class RegistersExtCsdCapacity : public ::testing::TestWithParam<std::uint64_t> {};

TEST_P(RegistersExtCsdCapacity, SecCountAndAddressingAgree) {
  DeviceConfig c = default_device_config();
  c.user_capacity = GetParam();
  const ExtCsd e = build_ext_csd(c);
  EXPECT_EQ(little_endian(e, idx::SEC_CNT, 4) * 512, GetParam());
  // Linux sector-addresses a device with more than 2 GiB of sectors; OCR must say the same.
  const bool host_sector_mode = little_endian(e, idx::SEC_CNT, 4) > 2 * GiB / 512;
  EXPECT_EQ(host_sector_mode, c.sector_addressing());
  EXPECT_EQ((build_ocr(c) >> 29) & 3u, host_sector_mode ? 2u : 0u);
}

INSTANTIATE_TEST_SUITE_P(Registers, RegistersExtCsdCapacity,
                         ::testing::Values(MiB, GiB, 2 * GiB, 2 * GiB + 512 * KiB, 8 * GiB, 64 * GiB + 512 * KiB,
                                           (2ULL << 40) - 512 * KiB));

TEST(RegistersExtCsd, BootAndRpmbSizes) {
  for (std::uint64_t size : {0 * KiB, 128 * KiB, 4 * MiB, 255 * 128 * KiB}) {
    DeviceConfig c = default_device_config();
    c.boot_partition_size = size;
    EXPECT_EQ(build_ext_csd(c)[idx::BOOT_MULT] * 128 * KiB, size);
  }
  for (std::uint64_t size : {128 * KiB, 4 * MiB, 16 * MiB}) {
    DeviceConfig c = default_device_config();
    c.rpmb_size = size;
    EXPECT_EQ(build_ext_csd(c)[idx::RPMB_MULT] * 128 * KiB, size);
  }
}

TEST(RegistersExtCsd, GeneralPurposePartitionsDecodeAsLinuxComputesThem) {
  DeviceConfig c = default_device_config();
  c.erase_group_size = 2 * 512 * KiB;
  c.write_protect_group_size = 3;  // 3 MiB groups
  c.general_purpose_partitions = {3 * MiB, 300 * MiB, 3 * GiB, 3ULL * 0x10203 * MiB};
  ASSERT_NO_THROW(validate(c));
  const ExtCsd e = build_ext_csd(c);
  ASSERT_EQ(e[idx::PARTITION_SUPPORT] & 1, 1);
  ASSERT_EQ(e[idx::PARTITION_SETTING_COMPLETED] & 1, 1);
  for (std::size_t gp = 0; gp < 4; ++gp) {
    // mmc_decode_ext_csd(): mult × HC_ERASE_GRP_SIZE × HC_WP_GRP_SIZE × 512 KiB.
    const std::uint64_t mult = (std::uint64_t{e[idx::GP_SIZE_MULT + gp * 3 + 2]} << 16) +
                               (std::uint64_t{e[idx::GP_SIZE_MULT + gp * 3 + 1]} << 8) + e[idx::GP_SIZE_MULT + gp * 3];
    const std::uint64_t size = (mult * e[idx::HC_ERASE_GRP_SIZE] * e[idx::HC_WP_GRP_SIZE]) << 19;
    EXPECT_EQ(size, c.general_purpose_partitions[gp]) << "GP" << gp + 1;
  }
}

TEST(RegistersExtCsd, AbsentGeneralPurposePartitionsAreZero) {
  DeviceConfig c = default_device_config();
  c.general_purpose_partitions = {MiB};
  const ExtCsd e = build_ext_csd(c);
  EXPECT_EQ(little_endian(e, idx::GP_SIZE_MULT, 3), 2u);
  for (std::size_t i = idx::GP_SIZE_MULT + 3; i < idx::GP_SIZE_MULT + 12; ++i) EXPECT_EQ(e[i], 0) << i;
  // Without GPs the layout is still final (PARTITION_SETTING_COMPLETED stays set).
  c.general_purpose_partitions.clear();
  EXPECT_EQ(little_endian(build_ext_csd(c), idx::GP_SIZE_MULT, 12), 0u);
  EXPECT_EQ(build_ext_csd(c)[idx::PARTITION_SETTING_COMPLETED] & 1, 1);
}

TEST(RegistersExtCsd, MaxEnhancedAreaFitsTheUserArea) {
  const DeviceConfig c = default_device_config();
  const ExtCsd e = build_ext_csd(c);
  const std::uint64_t max_enh =
      (little_endian(e, idx::MAX_ENH_SIZE_MULT, 3) * e[idx::HC_ERASE_GRP_SIZE] * e[idx::HC_WP_GRP_SIZE]) << 19;
  EXPECT_GT(max_enh, 0u);
  EXPECT_LE(max_enh, c.user_capacity);
}

TEST(RegistersExtCsd, EraseAndWriteProtectGroups) {
  DeviceConfig c = default_device_config();
  c.erase_group_size = 7 * 512 * KiB;
  c.write_protect_group_size = 9;
  const ExtCsd e = build_ext_csd(c);
  EXPECT_EQ(e[idx::HC_ERASE_GRP_SIZE] * 512 * KiB, c.erase_group_size);
  EXPECT_EQ(e[idx::HC_WP_GRP_SIZE], 9);
}

class RegistersDeviceType : public ::testing::TestWithParam<BusModes> {};

TEST_P(RegistersDeviceType, BitsFollowTheBusModes) {
  DeviceConfig c = default_device_config();
  c.bus_modes = GetParam();
  ASSERT_NO_THROW(validate(c));
  const ExtCsd e = build_ext_csd(c);
  const unsigned type = e[idx::CARD_TYPE];
  // EXT_CSD_CARD_TYPE_* of include/linux/mmc/mmc.h.
  EXPECT_EQ((type & 0x01) != 0, GetParam().hs26);
  EXPECT_EQ((type & 0x02) != 0, GetParam().hs52);
  EXPECT_EQ((type & 0x04) != 0, GetParam().ddr52);  // DDR 1.8 V / 3 V
  EXPECT_EQ((type & 0x08) != 0, GetParam().ddr52);  // DDR 1.2 V
  EXPECT_EQ((type & 0x10) != 0, GetParam().hs200);  // HS200 1.8 V
  EXPECT_EQ(type & 0x20, 0u);                       // no 1.2 V HS200
  EXPECT_EQ((type & 0x40) != 0, GetParam().hs400);  // HS400 1.8 V
  EXPECT_EQ(type & 0x80, 0u);                       // no 1.2 V HS400
  EXPECT_EQ(e[idx::STROBE_SUPPORT], GetParam().enhanced_strobe ? 1 : 0);
}

// Every combination validate() accepts (hs26 is always on).
std::vector<BusModes> valid_bus_modes() {
  std::vector<BusModes> all;
  for (unsigned m = 0; m < 32; ++m) {
    DeviceConfig c = default_device_config();
    c.bus_modes = BusModes{true, (m & 1) != 0, (m & 2) != 0, (m & 4) != 0, (m & 8) != 0, (m & 16) != 0};
    try {
      validate(c);
      all.push_back(c.bus_modes);
    } catch (const ConfigError&) {
    }
  }
  return all;
}

std::string bus_modes_name(const ::testing::TestParamInfo<BusModes>& param_info) {
  const BusModes& m = param_info.param;
  std::string name = "Hs26";
  if (m.hs52) name += "Hs52";
  if (m.ddr52) name += "Ddr52";
  if (m.hs200) name += "Hs200";
  if (m.hs400) name += "Hs400";
  if (m.enhanced_strobe) name += "Strobe";
  return name;
}

INSTANTIATE_TEST_SUITE_P(Registers, RegistersDeviceType, ::testing::ValuesIn(valid_bus_modes()), bus_modes_name);

TEST(RegistersDeviceType, AllValidCombinationsAreCovered) {
  // hs52 off: only hs26; hs52 on: ddr52 × (none, hs200, hs200+hs400, hs200+hs400+strobe).
  EXPECT_EQ(valid_bus_modes().size(), 9u);
}

TEST(RegistersExtCsd, CacheSizeInKilobits) {
  for (std::uint64_t size : {0 * KiB, KiB, 3 * KiB, MiB, 0x01234567 * KiB, (0xFFFFFFFF / 8) * KiB}) {
    DeviceConfig c = default_device_config();
    c.cache_size = size;
    EXPECT_EQ(little_endian(build_ext_csd(c), idx::CACHE_SIZE, 4) * 1024 / 8, size);  // kilobits
  }
}

TEST(RegistersExtCsd, ReliableWriteParameters) {
  for (const bool en_rpmb_rel_wr : {false, true}) {
    for (const std::uint8_t sectors : {1, 8, 255}) {
      DeviceConfig c = default_device_config();
      c.reliable_write_sectors = sectors;
      c.en_rpmb_rel_wr = en_rpmb_rel_wr;
      const ExtCsd e = build_ext_csd(c);
      EXPECT_EQ(e[idx::REL_WR_SEC_C], sectors);
      EXPECT_EQ(e[idx::WR_REL_PARAM] & 0x01, 0x01);                   // HS_CTRL_REL: WR_REL_SET is host-writable
      EXPECT_EQ(e[idx::WR_REL_PARAM] & 0x04, 0);                      // EN_REL_WR 0: legacy reliable write
      EXPECT_EQ((e[idx::WR_REL_PARAM] & 0x10) != 0, en_rpmb_rel_wr);  // 8 KiB RPMB writes
    }
  }
}

TEST(RegistersExtCsd, TimeoutsDecodeAsLinuxComputesThem) {
  DeviceConfig c = default_device_config();
  TimeoutConfig& t = c.timeouts;
  t.generic_cmd6_time_ms = 2550;
  t.partition_switch_time_ms = 70;
  t.out_of_interrupt_time_ms = 40;
  t.power_off_long_time_ms = 1230;
  t.erase_timeout_ms = 900;
  t.trim_timeout_ms = 1500;
  t.secure_erase_timeout_ms = 900 * 7;
  t.secure_trim_timeout_ms = 900 * 5;  // 5 erase timeouts, not 15 units of 300 ms
  t.sleep_awake_timeout_exp = 21;
  ASSERT_NO_THROW(validate(c));
  const ExtCsd e = build_ext_csd(c);
  EXPECT_EQ(10u * e[idx::GENERIC_CMD6_TIME], t.generic_cmd6_time_ms);
  EXPECT_EQ(10u * e[idx::PART_SWITCH_TIME], t.partition_switch_time_ms);
  EXPECT_EQ(10u * e[idx::OUT_OF_INTERRUPT_TIME], t.out_of_interrupt_time_ms);
  EXPECT_EQ(10u * e[idx::POWER_OFF_LONG_TIME], t.power_off_long_time_ms);
  const unsigned hc_erase_timeout = 300u * e[idx::ERASE_TIMEOUT_MULT];
  EXPECT_EQ(hc_erase_timeout, t.erase_timeout_ms);
  EXPECT_EQ(300u * e[idx::TRIM_MULT], t.trim_timeout_ms);
  // mmc_mmc_erase_timeout(): secure operations multiply the erase timeout.
  EXPECT_EQ(hc_erase_timeout * e[idx::SEC_ERASE_MULT], t.secure_erase_timeout_ms);
  EXPECT_EQ(hc_erase_timeout * e[idx::SEC_TRIM_MULT], t.secure_trim_timeout_ms);
  EXPECT_EQ(e[idx::S_A_TIMEOUT], 21);
}

TEST(RegistersExtCsd, SecureFeatures) {
  DeviceConfig c = default_device_config();
  c.secure_erase_trim = true;
  const unsigned with = build_ext_csd(c)[idx::SEC_FEATURE_SUPPORT];
  EXPECT_EQ(with & 0x01, 0x01u);  // SECURE_ER_EN: Linux offers secure erase/trim
  EXPECT_EQ(with & 0x10, 0x10u);  // SEC_GB_CL_EN: Linux offers trim
  EXPECT_EQ(with & 0x40, 0u);     // no sanitize
  EXPECT_EQ(with & 0x04, 0u);     // no secure bad-block management
  c.secure_erase_trim = false;
  EXPECT_EQ(build_ext_csd(c)[idx::SEC_FEATURE_SUPPORT], 0);
}

TEST(RegistersExtCsd, CommandQueue) {
  DeviceConfig c = default_device_config();
  c.command_queue_depth = 0;
  EXPECT_EQ(build_ext_csd(c)[idx::CMDQ_SUPPORT] & 1, 0);
  for (const std::uint8_t depth : {1, 16, 32}) {
    c.command_queue_depth = depth;
    const ExtCsd e = build_ext_csd(c);
    EXPECT_EQ(e[idx::CMDQ_SUPPORT] & 1, 1);
    EXPECT_EQ((e[idx::CMDQ_DEPTH] & 0x1F) + 1, depth);  // Linux: (CMDQ_DEPTH & 0x1F) + 1
  }
}

TEST(RegistersExtCsd, OtherPropertiesStayZero) {
  const ExtCsd e = build_ext_csd(default_device_config());
  EXPECT_EQ(e[idx::SECURE_WP_INFO], 0);
  EXPECT_EQ(e[idx::SLEEP_NOTIFICATION_TIME], 0);
  EXPECT_EQ(e[idx::ACC_SIZE], 0);
  EXPECT_EQ(little_endian(e, idx::DEVICE_VERSION, 2), 0u);
}

// The header's named indices are the JEDEC / Linux ones the decoders above use.
TEST(RegistersExtCsd, HeaderIndicesMatchJedec) {
  EXPECT_EQ(ext_csd::kCmdqModeEn, idx::CMDQ_MODE_EN);
  EXPECT_EQ(ext_csd::kFlushCache, idx::FLUSH_CACHE);
  EXPECT_EQ(ext_csd::kCacheCtrl, idx::CACHE_CTRL);
  EXPECT_EQ(ext_csd::kPowerOffNotification, idx::POWER_OFF_NOTIFICATION);
  EXPECT_EQ(ext_csd::kGpSizeMult, idx::GP_SIZE_MULT);
  EXPECT_EQ(ext_csd::kPartitionSettingCompleted, idx::PARTITION_SETTING_COMPLETED);
  EXPECT_EQ(ext_csd::kPartitionsAttribute, idx::PARTITION_ATTRIBUTE);
  EXPECT_EQ(ext_csd::kMaxEnhSizeMult, idx::MAX_ENH_SIZE_MULT);
  EXPECT_EQ(ext_csd::kPartitioningSupport, idx::PARTITION_SUPPORT);
  EXPECT_EQ(ext_csd::kHpiMgmt, idx::HPI_MGMT);
  EXPECT_EQ(ext_csd::kRstNFunction, idx::RST_N_FUNCTION);
  EXPECT_EQ(ext_csd::kBkopsEn, idx::BKOPS_EN);
  EXPECT_EQ(ext_csd::kWrRelParam, idx::WR_REL_PARAM);
  EXPECT_EQ(ext_csd::kWrRelSet, idx::WR_REL_SET);
  EXPECT_EQ(ext_csd::kRpmbSizeMult, idx::RPMB_MULT);
  EXPECT_EQ(ext_csd::kUserWp, idx::USER_WP);
  EXPECT_EQ(ext_csd::kBootWp, idx::BOOT_WP);
  EXPECT_EQ(ext_csd::kBootWpStatus, idx::BOOT_WP_STATUS);
  EXPECT_EQ(ext_csd::kEraseGroupDef, idx::ERASE_GROUP_DEF);
  EXPECT_EQ(ext_csd::kBootBusConditions, idx::BOOT_BUS_CONDITIONS);
  EXPECT_EQ(ext_csd::kBootConfigProt, idx::BOOT_CONFIG_PROT);
  EXPECT_EQ(ext_csd::kPartitionConfig, idx::PART_CONFIG);
  EXPECT_EQ(ext_csd::kErasedMemCont, idx::ERASED_MEM_CONT);
  EXPECT_EQ(ext_csd::kBusWidth, idx::BUS_WIDTH);
  EXPECT_EQ(ext_csd::kStrobeSupport, idx::STROBE_SUPPORT);
  EXPECT_EQ(ext_csd::kHsTiming, idx::HS_TIMING);
  EXPECT_EQ(ext_csd::kPowerClass, idx::POWER_CLASS);
  EXPECT_EQ(ext_csd::kCmdSetRev, idx::CMD_SET_REV);
  EXPECT_EQ(ext_csd::kCmdSet, idx::CMD_SET);
  EXPECT_EQ(ext_csd::kExtCsdRev, idx::REV);
  EXPECT_EQ(ext_csd::kCsdStructure, idx::STRUCTURE);
  EXPECT_EQ(ext_csd::kDeviceType, idx::CARD_TYPE);
  EXPECT_EQ(ext_csd::kDriverStrength, idx::DRIVER_STRENGTH);
  EXPECT_EQ(ext_csd::kOutOfInterruptTime, idx::OUT_OF_INTERRUPT_TIME);
  EXPECT_EQ(ext_csd::kPartitionSwitchTime, idx::PART_SWITCH_TIME);
  EXPECT_EQ(ext_csd::kSecCount, idx::SEC_CNT);
  EXPECT_EQ(ext_csd::kSleepNotificationTime, idx::SLEEP_NOTIFICATION_TIME);
  EXPECT_EQ(ext_csd::kSATimeout, idx::S_A_TIMEOUT);
  EXPECT_EQ(ext_csd::kSecureWpInfo, idx::SECURE_WP_INFO);
  EXPECT_EQ(ext_csd::kHcWpGrpSize, idx::HC_WP_GRP_SIZE);
  EXPECT_EQ(ext_csd::kRelWrSecC, idx::REL_WR_SEC_C);
  EXPECT_EQ(ext_csd::kEraseTimeoutMult, idx::ERASE_TIMEOUT_MULT);
  EXPECT_EQ(ext_csd::kHcEraseGrpSize, idx::HC_ERASE_GRP_SIZE);
  EXPECT_EQ(ext_csd::kAccSize, idx::ACC_SIZE);
  EXPECT_EQ(ext_csd::kBootSizeMult, idx::BOOT_MULT);
  EXPECT_EQ(ext_csd::kBootInfo, idx::BOOT_INFO);
  EXPECT_EQ(ext_csd::kSecTrimMult, idx::SEC_TRIM_MULT);
  EXPECT_EQ(ext_csd::kSecEraseMult, idx::SEC_ERASE_MULT);
  EXPECT_EQ(ext_csd::kSecFeatureSupport, idx::SEC_FEATURE_SUPPORT);
  EXPECT_EQ(ext_csd::kTrimMult, idx::TRIM_MULT);
  EXPECT_EQ(ext_csd::kPowerOffLongTime, idx::POWER_OFF_LONG_TIME);
  EXPECT_EQ(ext_csd::kGenericCmd6Time, idx::GENERIC_CMD6_TIME);
  EXPECT_EQ(ext_csd::kCacheSize, idx::CACHE_SIZE);
  EXPECT_EQ(ext_csd::kFirmwareVersion, idx::FIRMWARE_VERSION);
  EXPECT_EQ(ext_csd::kDeviceVersion, idx::DEVICE_VERSION);
  EXPECT_EQ(ext_csd::kPreEolInfo, idx::PRE_EOL_INFO);
  EXPECT_EQ(ext_csd::kDeviceLifeTimeEstA, idx::DEVICE_LIFE_TIME_EST_TYP_A);
  EXPECT_EQ(ext_csd::kDeviceLifeTimeEstB, idx::DEVICE_LIFE_TIME_EST_TYP_B);
  EXPECT_EQ(ext_csd::kCmdqDepth, idx::CMDQ_DEPTH);
  EXPECT_EQ(ext_csd::kCmdqSupport, idx::CMDQ_SUPPORT);
  EXPECT_EQ(ext_csd::kBkopsSupport, idx::BKOPS_SUPPORT);
  EXPECT_EQ(ext_csd::kHpiFeatures, idx::HPI_FEATURES);
  EXPECT_EQ(ext_csd::kSupportedCmdSets, idx::S_CMD_SET);
}

// ---------------------------------------------------------------------------------------------
// Partition numbering (PARTITION_CONFIG[2:0])

TEST(RegistersPartitionAccess, NamesAndAccessValues) {
  // Linux's names (JEDEC's boot partitions 1 and 2 are boot0 and boot1).
  const char* const names[] = {"user", "boot0", "boot1", "rpmb", "gp1", "gp2", "gp3", "gp4"};
  for (unsigned access = 0; access < 8; ++access) {
    const auto partition = partition_from_access(static_cast<std::uint8_t>(access));
    ASSERT_TRUE(partition.has_value()) << access;
    EXPECT_EQ(static_cast<unsigned>(*partition), access);
    EXPECT_EQ(partition_name(*partition), names[access]);
    EXPECT_EQ(is_general_purpose(*partition), access >= 4);
    EXPECT_EQ(is_boot(*partition), access == 1 || access == 2);
  }
  for (unsigned access = 8; access < 256; ++access) {
    EXPECT_FALSE(partition_from_access(static_cast<std::uint8_t>(access)).has_value()) << access;
  }
}

}  // namespace
}  // namespace emmcsim::mmc
