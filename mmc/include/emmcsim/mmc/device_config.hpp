// The device configuration an eMMC is built from: sizes, identity, bus modes and the EXT_CSD
// properties a host reads. Stored as JSON (`device.json` in an image directory); an embedded
// default describes an 8 GiB eMMC 5.1 part. Every register (OCR, CID, CSD, EXT_CSD) is derived
// from it, so they agree with each other by construction.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace emmcsim::mmc {

// An invalid configuration. what() names the offending field, e.g.
// "device config: boot_partition_size: 100000 is not a multiple of 128 KiB".
class ConfigError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// The fields of the CID register (JESD84-B51 §7.2).
struct CidConfig {
  std::uint8_t manufacturer_id = 0xE5;    // MID
  std::uint8_t oem_id = 0x01;             // OID (eMMC: 8 bits)
  std::string product_name = "EMSIM1";    // PNM: 1..6 printable ASCII characters, space-padded
  std::uint8_t product_revision = 0x10;   // PRV: major in [7:4], minor in [3:0]; JSON "1.0"
  std::uint32_t serial = 0x00C0FFEE;      // PSN
  std::uint8_t manufacturing_month = 11;  // MDT [7:4]: 1..12
  // MDT [3:0]: 2013..2028 (EXT_CSD_REV > 4 coding). Linux shows 2026..2028 as 2010..2012: it
  // adds 16 only to decoded years below 2010 — so the default is one Linux shows correctly.
  std::uint16_t manufacturing_year = 2025;
  std::uint8_t device_type = 1;  // CBX: 0 removable, 1 BGA, 2 POP

  friend bool operator==(const CidConfig&, const CidConfig&);
};

// Bus speed modes a device supports, as EXT_CSD[196] DEVICE_TYPE (and [184]) advertise them.
struct BusModes {
  bool hs26 = true;  // legacy / high speed at 26 MHz (always set on real parts)
  bool hs52 = true;
  bool ddr52 = true;            // 1.8 V/3.3 V and 1.2 V DDR at 52 MHz (needs hs52)
  bool hs200 = true;            // 1.8 V HS200 (needs hs52: HS400 is entered through HS timing)
  bool hs400 = true;            // 1.8 V HS400 (needs hs200)
  bool enhanced_strobe = true;  // HS400 enhanced strobe, EXT_CSD[184] (needs hs400)

  friend bool operator==(const BusModes&, const BusModes&);
};

// EXT_CSD timeout fields, in milliseconds as a host computes them; each must be an exact
// multiple of the field's unit, 1..255 times. 0 ("not defined") is accepted only for
// out_of_interrupt_time_ms (the device has no HPI) and, when secure_erase_trim is off, for the
// two secure timeouts.
struct TimeoutConfig {
  std::uint32_t generic_cmd6_time_ms = 250;      // [248] GENERIC_CMD6_TIME, × 10 ms
  std::uint32_t partition_switch_time_ms = 30;   // [199] PARTITION_SWITCH_TIME, × 10 ms
  std::uint32_t out_of_interrupt_time_ms = 100;  // [198] OUT_OF_INTERRUPT_TIME, × 10 ms
  std::uint32_t power_off_long_time_ms = 1000;   // [247] POWER_OFF_LONG_TIME, × 10 ms
  std::uint32_t erase_timeout_ms = 3000;         // [223] ERASE_TIMEOUT_MULT, × 300 ms
  std::uint32_t trim_timeout_ms = 600;           // [232] TRIM_MULT, × 300 ms
  std::uint32_t secure_erase_timeout_ms = 6000;  // [230] SEC_ERASE_MULT, × erase_timeout_ms
  std::uint32_t secure_trim_timeout_ms = 6000;   // [229] SEC_TRIM_MULT, × erase_timeout_ms
  std::uint8_t sleep_awake_timeout_exp = 17;     // [217] S_A_TIMEOUT: 100 ns × 2^N, N 1..23

  friend bool operator==(const TimeoutConfig&, const TimeoutConfig&);
};

struct DeviceConfig {
  // User data area in bytes: a multiple of 512 KiB, at least 1 MiB, below 2 TiB (SEC_COUNT is
  // 32 bits of sectors). Above 2 GiB the device uses sector addressing (OCR bit 30); at or below
  // it, byte addressing, and CSD C_SIZE codes the size exactly (1 KiB READ_BL_LEN above 1 GiB).
  std::uint64_t user_capacity = 8ULL << 30;
  // Each of the two boot partitions, bytes: a multiple of 128 KiB, 0 (none) .. 255 × 128 KiB.
  std::uint64_t boot_partition_size = 4ULL << 20;
  // RPMB partition, bytes: a multiple of 128 KiB, 128 KiB .. 16 MiB.
  std::uint64_t rpmb_size = 4ULL << 20;
  // General-purpose partitions GP1..GP4 (0..4 entries), bytes: each a non-zero multiple of the
  // write-protect group size (erase group size × write_protect_group_size), below 2 TiB (at
  // most 4 GiB when the device is byte addressed and commands carry byte addresses).
  std::vector<std::uint64_t> general_purpose_partitions;
  CidConfig cid;
  BusModes bus_modes;
  // [222] REL_WR_SEC_C: sectors a reliable write makes atomic, 1..255.
  std::uint8_t reliable_write_sectors = 1;
  // [166] WR_REL_PARAM bit 4: RPMB authenticated writes of 32 frames (8 KiB) allowed — eMMC 5.1
  // introduced it and current parts set it; OP-TEE uses it when present.
  bool en_rpmb_rel_wr = true;
  // [249..252] CACHE_SIZE, bytes: a multiple of 1 KiB, at most 2^32 - 1 KiB; 0 means no cache.
  std::uint64_t cache_size = 1ULL << 20;
  // [224] HC_ERASE_GRP_SIZE, bytes: a multiple of 512 KiB, 512 KiB .. 255 × 512 KiB. (The CSD's
  // legacy erase group, used until a host sets ERASE_GROUP_DEF, is always 512 KiB.)
  std::uint64_t erase_group_size = 512ULL << 10;
  // [221] HC_WP_GRP_SIZE: erase groups per write-protect group, 1..255.
  std::uint8_t write_protect_group_size = 1;
  // [231] SEC_FEATURE_SUPPORT: secure erase (bit 0) and trim (SEC_GB_CL_EN, bit 4); discard
  // needs no bit (EXT_CSD_REV >= 6). Sanitize and bad-block management are not offered.
  bool secure_erase_trim = true;
  // [308]/[307] CMDQ_SUPPORT/CMDQ_DEPTH: 0 = no command queue, else depth 1..32.
  std::uint8_t command_queue_depth = 0;
  TimeoutConfig timeouts;
  // How many CMD1 polls after power-up answer with OCR busy (bit 31 clear) before the device
  // reports ready: 0..1000.
  std::uint32_t ocr_busy_polls = 2;

  bool sector_addressing() const { return user_capacity > (2ULL << 30); }
  std::uint64_t write_protect_group_bytes() const { return erase_group_size * write_protect_group_size; }

  friend bool operator==(const DeviceConfig&, const DeviceConfig&);
  friend bool operator!=(const DeviceConfig& a, const DeviceConfig& b) { return !(a == b); }
};

// The embedded default: an 8 GiB eMMC 5.1 part, 2 × 4 MiB boot, 4 MiB RPMB, up to HS400.
DeviceConfig default_device_config();

// Throws ConfigError naming the first field that is out of range or inconsistent.
void validate(const DeviceConfig& config);

// JSON text → configuration. Fields left out keep their default; unknown fields are an error
// (a misspelt key must not be silently ignored). Sizes are either numbers of bytes or strings
// with a binary suffix ("8GiB", "512KiB", "4M"). The result is validated.
DeviceConfig parse_device_config(const std::string& json_text);

// "128 KiB", "8 GiB": a size in the largest binary unit that divides it exactly, else "N bytes".
std::string describe_size(std::uint64_t bytes);

// "8GiB", "512KiB", "4M", "4 MiB", "123" → bytes: a whole number with an optional binary unit
// (K/KiB, M/MiB, G/GiB, T/TiB). Throws std::invalid_argument saying what is wrong with the text;
// configuration readers prefix the field.
std::uint64_t parse_size(const std::string& text);

// Configuration → JSON text (pretty, every field present, sizes as strings such as "8GiB"
// when exact). parse_device_config(to_json(c)) == c.
std::string to_json(const DeviceConfig& config);

}  // namespace emmcsim::mmc
