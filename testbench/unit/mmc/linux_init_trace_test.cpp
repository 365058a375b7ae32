// Replays, command by command, what the Linux 6.x mmc core sends to an eMMC 5.1 device
// (drivers/mmc/core/core.c, mmc.c, mmc_ops.c, block.c) against mmc::Card, and checks every
// response, data block and work report the way Linux would judge them — plus the register
// contents Linux decodes and then relies on.
//
// The host modelled here: a 3.3 V controller (ocr_avail MMC_VDD_32_33 | MMC_VDD_33_34) with
// MMC_CAP_8_BIT_DATA, MMC_CAP_MMC_HIGHSPEED, MMC_CAP_1_8V_DDR, MMC_CAP2_HS200_1_8V_SDR,
// MMC_CAP2_HS400_1_8V, CMD23 support and MMC_CAP_WAIT_WHILE_BUSY: __mmc_switch() waits for the
// end of busy on DAT0 instead of polling with CMD13 (mmc_poll_for_busy), so each switch is one
// CMD6 followed by the single CMD13 of mmc_switch_status(). Without MMC_CAP_BUS_WIDTH_TEST,
// mmc_select_bus_width() checks a new bus width with mmc_compare_ext_csds(); with it, with
// mmc_bus_test() (CMD19/CMD14). The tests change the capabilities where a path needs it.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "card_harness.hpp"
#include "emmcsim/mmc/card.hpp"
#include "emmcsim/mmc/card_status.hpp"
#include "emmcsim/mmc/command.hpp"
#include "emmcsim/mmc/device_config.hpp"
#include "emmcsim/mmc/protocol.hpp"
#include "emmcsim/mmc/registers.hpp"

namespace emmcsim::mmc {
namespace {

using testing::CardHarness;
namespace st = status;
namespace ec = ext_csd;

// include/linux/mmc/host.h, card.h, mmc.h.
constexpr std::uint32_t kMmcVdd32_33 = 1u << 20;         // MMC_VDD_32_33
constexpr std::uint32_t kMmcVdd33_34 = 1u << 21;         // MMC_VDD_33_34
constexpr std::uint32_t kMmcCardBusy = 1u << 31;         // MMC_CARD_BUSY: OCR bit 31, set when *not* busy
constexpr std::uint16_t kLinuxRca = 1;                   // mmc_alloc_card(): card->rca = 1
constexpr std::uint8_t kExtCsdCmdSetNormal = 0;          // EXT_CSD_CMD_SET_NORMAL (arg bits 2:0)
constexpr std::uint8_t kExtCsdBusWidth1 = 0;             // EXT_CSD_BUS_WIDTH_1
constexpr std::uint8_t kExtCsdBusWidth4 = 1;             // EXT_CSD_BUS_WIDTH_4
constexpr std::uint8_t kExtCsdBusWidth8 = 2;             // EXT_CSD_BUS_WIDTH_8
constexpr std::uint8_t kExtCsdDdrBusWidth4 = 5;          // EXT_CSD_DDR_BUS_WIDTH_4
constexpr std::uint8_t kExtCsdDdrBusWidth8 = 6;          // EXT_CSD_DDR_BUS_WIDTH_8
constexpr std::uint8_t kExtCsdBusWidthStrobe = 1u << 7;  // EXT_CSD_BUS_WIDTH_STROBE
constexpr std::uint8_t kExtCsdTimingBc = 0;              // EXT_CSD_TIMING_BC
constexpr std::uint8_t kExtCsdTimingHs = 1;              // EXT_CSD_TIMING_HS
constexpr std::uint8_t kExtCsdTimingHs200 = 2;           // EXT_CSD_TIMING_HS200
constexpr std::uint8_t kExtCsdTimingHs400 = 3;           // EXT_CSD_TIMING_HS400
constexpr std::uint8_t kExtCsdPowerOn = 1;               // EXT_CSD_POWER_ON
constexpr std::uint8_t kExtCsdPowerOffLong = 3;          // EXT_CSD_POWER_OFF_LONG
// EXT_CSD_CARD_TYPE_* (EXT_CSD[196]).
constexpr std::uint8_t kCardTypeHs26 = 1u << 0;
constexpr std::uint8_t kCardTypeHs52 = 1u << 1;
constexpr std::uint8_t kCardTypeDdr18V = 1u << 2;
constexpr std::uint8_t kCardTypeDdr12V = 1u << 3;
constexpr std::uint8_t kCardTypeHs200_18V = 1u << 4;
constexpr std::uint8_t kCardTypeHs200_12V = 1u << 5;
constexpr std::uint8_t kCardTypeHs400_18V = 1u << 6;
constexpr std::uint8_t kCardTypeHs400_12V = 1u << 7;
constexpr std::uint8_t kCardTypeHs200 = kCardTypeHs200_18V | kCardTypeHs200_12V;
constexpr std::uint8_t kCardTypeHs400 = kCardTypeHs400_18V | kCardTypeHs400_12V;
constexpr std::uint32_t kCardTypeHs400Es = 1u << 8;   // EXT_CSD_CARD_TYPE_HS400ES (host-side only)
constexpr std::uint8_t kPartSupportPartEn = 1u << 0;  // EXT_CSD_PART_SUPPORT_PART_EN
constexpr std::uint8_t kWrRelParamEn = 1u << 2;       // EXT_CSD_WR_REL_PARAM_EN
// EXT_CSD indices Linux reads that registers.hpp does not name.
constexpr std::size_t kExtCsdDataSectorSize = 61;    // EXT_CSD_DATA_SECTOR_SIZE
constexpr std::size_t kExtCsdPwrCl52_360 = 202;      // EXT_CSD_PWR_CL_52_360
constexpr std::size_t kExtCsdPwrCl200_360 = 237;     // EXT_CSD_PWR_CL_200_360
constexpr std::size_t kExtCsdPwrClDdr52_360 = 239;   // EXT_CSD_PWR_CL_DDR_52_360
constexpr std::size_t kExtCsdPwrClDdr200_360 = 253;  // EXT_CSD_PWR_CL_DDR_200_360
// mmc_compare_ext_csds(): the read-only fields compared after a bus width change.
constexpr std::size_t kComparedExtCsdFields[] = {ec::kPartitioningSupport,
                                                 ec::kErasedMemCont,
                                                 ec::kExtCsdRev,
                                                 ec::kCsdStructure,
                                                 ec::kDeviceType,
                                                 ec::kSATimeout,
                                                 ec::kHcWpGrpSize,
                                                 ec::kEraseTimeoutMult,
                                                 ec::kHcEraseGrpSize,
                                                 ec::kSecTrimMult,
                                                 ec::kSecEraseMult,
                                                 ec::kSecFeatureSupport,
                                                 ec::kTrimMult,
                                                 ec::kSecCount,
                                                 ec::kSecCount + 1,
                                                 ec::kSecCount + 2,
                                                 ec::kSecCount + 3,
                                                 200,
                                                 201,
                                                 202,
                                                 203,
                                                 236,
                                                 237,
                                                 238,
                                                 239,
                                                 253};

// drivers/mmc/core/mmc_ops.c: tuning_blk_pattern_8bit (JESD84-B51 Table 44, 8-bit bus).
constexpr std::uint8_t kTuningBlkPattern8Bit[128] = {
    0xff, 0xff, 0x00, 0xff, 0xff, 0xff, 0x00, 0x00, 0xff, 0xff, 0xcc, 0xcc, 0xcc, 0x33, 0xcc, 0xcc, 0xcc, 0x33, 0x33,
    0xcc, 0xcc, 0xcc, 0xff, 0xff, 0xff, 0xee, 0xff, 0xff, 0xff, 0xee, 0xee, 0xff, 0xff, 0xff, 0xdd, 0xff, 0xff, 0xff,
    0xdd, 0xdd, 0xff, 0xff, 0xff, 0xbb, 0xff, 0xff, 0xff, 0xbb, 0xbb, 0xff, 0xff, 0xff, 0x77, 0xff, 0xff, 0xff, 0x77,
    0x77, 0xff, 0x77, 0xbb, 0xdd, 0xee, 0xff, 0xff, 0xff, 0xff, 0x00, 0xff, 0xff, 0xff, 0x00, 0x00, 0xff, 0xff, 0xcc,
    0xcc, 0xcc, 0x33, 0xcc, 0xcc, 0xcc, 0x33, 0x33, 0xcc, 0xcc, 0xcc, 0xff, 0xff, 0xff, 0xee, 0xff, 0xff, 0xff, 0xee,
    0xee, 0xff, 0xff, 0xff, 0xdd, 0xff, 0xff, 0xff, 0xdd, 0xdd, 0xff, 0xff, 0xff, 0xbb, 0xff, 0xff, 0xff, 0xbb, 0xbb,
    0xff, 0xff, 0xff, 0x77, 0xff, 0xff, 0xff, 0x77, 0x77, 0xff, 0x77, 0xbb, 0xdd, 0xee,
};
// mmc_send_bus_test(): testdata_8bit.
constexpr std::uint8_t kBusTestData8Bit[8] = {0x55, 0xaa, 0, 0, 0, 0, 0, 0};
// sdhci.c MAX_TUNING_LOOP: a controller sends up to 40 tuning blocks before it settles.
constexpr int kTuningLoops = 40;

// UNSTUFF_BITS over a 128-bit R2 in bus order (byte 0 holds bits 127:120).
std::uint32_t unstuff_bits(const std::array<std::uint8_t, 16>& r2, unsigned start, unsigned size) {
  std::uint32_t value = 0;
  for (unsigned i = 0; i < size; ++i) {
    const unsigned bit = start + i;
    const unsigned byte = 15 - bit / 8;
    value |= static_cast<std::uint32_t>((r2[byte] >> (bit % 8)) & 1u) << i;
  }
  return value;
}

std::uint32_t le32(const ExtCsd& e, std::size_t index) {
  return static_cast<std::uint32_t>(e[index]) | static_cast<std::uint32_t>(e[index + 1]) << 8 |
         static_cast<std::uint32_t>(e[index + 2]) << 16 | static_cast<std::uint32_t>(e[index + 3]) << 24;
}

std::string state_text(std::uint32_t r1) { return describe_status(r1); }

// Bytes a test writes: different per sector and offset, never all zero.
std::vector<std::uint8_t> pattern(std::uint64_t first_sector, std::uint32_t sectors, std::uint8_t salt) {
  std::vector<std::uint8_t> data(std::size_t{sectors} * kSectorSize);
  for (std::size_t i = 0; i < data.size(); ++i) {
    const std::uint64_t sector = first_sector + i / kSectorSize;
    data[i] = static_cast<std::uint8_t>((sector * 131 + (i % kSectorSize) * 7 + salt) & 0xFF);
  }
  return data;
}

struct HostCaps {
  std::uint32_t ocr_avail = kMmcVdd32_33 | kMmcVdd33_34;
  bool eight_bit = true;        // MMC_CAP_8_BIT_DATA
  bool bus_width_test = false;  // MMC_CAP_BUS_WIDTH_TEST
  bool highspeed = true;        // MMC_CAP_MMC_HIGHSPEED
  bool ddr = true;              // MMC_CAP_1_8V_DDR | MMC_CAP_3_3V_DDR
  bool hs200 = true;            // MMC_CAP2_HS200_1_8V_SDR
  bool hs400 = true;            // MMC_CAP2_HS400_1_8V
  bool hs400es = false;         // MMC_CAP2_HS400_ES
};

enum class Timing { legacy, hs, ddr52, hs200, hs400, hs400es };

// What Linux learned about the card (struct mmc_card / mmc_ext_csd), from the raw responses.
struct LinuxCard {
  std::uint32_t query_ocr = 0;     // mmc_attach_mmc(): mmc_send_op_cond(host, 0, &ocr)
  std::uint32_t selected_ocr = 0;  // mmc_select_voltage()
  std::uint32_t rocr = 0;          // the R3 that ended the busy poll
  unsigned op_cond_polls = 0;      // CMD1 with bit 30 sent until MMC_CARD_BUSY was set
  Cid cid{};
  Csd csd{};
  unsigned csd_structure = 0;
  unsigned mmca_vsn = 0;
  ExtCsd ext_csd{};  // as read by mmc_read_ext_csd(), before any switch
  unsigned rev = 0;
  std::uint32_t sectors = 0;
  bool blockaddr = false;
  std::uint8_t raw_card_type = 0;
  std::uint32_t avail_type = 0;  // card->mmc_avail_type
  std::uint64_t boot_part_size = 0;
  std::uint64_t rpmb_part_size = 0;
  unsigned rel_sectors = 0;
  std::uint8_t rel_param = 0;
  std::uint32_t cache_size_kbit = 0;
  std::uint32_t hc_erase_size = 0;  // sectors
  bool partition_setting_completed = false;
  std::uint8_t partition_support = 0;
  bool hpi = false;
  bool strobe_support = false;
  std::uint8_t power_off_notification = 0;
  bool cache_enabled = false;
  Timing timing = Timing::legacy;
  unsigned bus_width = 1;
  int tuning_commands = 0;
  int bus_tests = 0;
  int ext_csd_compares = 0;
};

// The Linux host side: every command goes through send(); the Linux functions are methods with
// their kernel names. Checks are EXPECTs (a failing response is reported and the replay goes on,
// as far as it still makes sense); ASSERTs stop where continuing would be meaningless.
class LinuxHost {
 public:
  LinuxHost(CardHarness& harness, HostCaps caps) : h_(harness), caps_(caps) {}

  Card& card() { return h_.card(); }
  const LinuxCard& linux_card() const { return lc_; }
  const std::vector<Command>& trace() const { return trace_; }
  std::uint32_t rca_arg() const { return std::uint32_t{kLinuxRca} << 16; }

  CommandOutcome send(std::uint8_t index, std::uint32_t arg) {
    trace_.push_back({index, arg});
    return card().execute({index, arg});
  }

  // An R1/R1b response as Linux wants it: the type, the state the card was in when the command
  // arrived (CURRENT_STATE), no error bit (R1_STATUS / CMD_ERRORS).
  static void expect_r1(const CommandOutcome& o, CardState at_receipt, ResponseType type = ResponseType::r1) {
    EXPECT_FALSE(o.illegal);
    EXPECT_EQ(o.response.type, type);
    EXPECT_EQ(st::current_state(o.response.value), static_cast<std::uint32_t>(at_receipt))
        << state_text(o.response.value);
    EXPECT_EQ(o.response.value & st::kAnyError, 0u) << state_text(o.response.value);
  }

  // ---- core.c / mmc_ops.c --------------------------------------------------------------------

  // mmc_go_idle(): CMD0, argument 0, no response (MMC_RSP_NONE | MMC_CMD_BC).
  void mmc_go_idle() {
    SCOPED_TRACE("mmc_go_idle");
    const CommandOutcome o = send(0, 0);
    EXPECT_FALSE(o.illegal);
    EXPECT_EQ(o.response.type, ResponseType::none);
    EXPECT_EQ(o.data.direction, DataDirection::none);
    EXPECT_EQ(card().state(), CardState::idle);
  }

  // mmc_select_voltage(), the branch without MMC_CAP2_FULL_PWR_CYCLE: the highest common window.
  std::uint32_t mmc_select_voltage(std::uint32_t ocr) const {
    ocr &= ~0x7Fu;  // "card claims to support voltages below defined range"
    ocr &= caps_.ocr_avail;
    if (ocr == 0) return 0;
    unsigned bit = 31;
    while ((ocr & (1u << bit)) == 0) --bit;  // fls(ocr) - 1
    return ocr & (3u << bit);
  }

  // mmc_send_op_cond() → __mmc_poll_for_busy(__mmc_send_op_cond_cb): CMD1 until the R3 has
  // MMC_CARD_BUSY set; a single pass when ocr is 0 (probing). Returns the last R3.
  std::uint32_t mmc_send_op_cond(std::uint32_t ocr, unsigned* polls) {
    SCOPED_TRACE("mmc_send_op_cond");
    std::uint32_t r3 = 0;
    for (unsigned n = 1; n <= 1000; ++n) {
      const CommandOutcome o = send(1, ocr);
      EXPECT_FALSE(o.illegal);
      EXPECT_EQ(o.response.type, ResponseType::r3);
      r3 = o.response.value;
      if (polls != nullptr) *polls = n;
      if (ocr == 0 || (r3 & kMmcCardBusy) != 0) return r3;
    }
    ADD_FAILURE() << "the card stayed busy for 1000 CMD1 polls";
    return r3;
  }

  // mmc_all_send_cid(): CMD2, R2.
  void mmc_all_send_cid() {
    SCOPED_TRACE("mmc_all_send_cid");
    const CommandOutcome o = send(2, 0);
    EXPECT_FALSE(o.illegal);
    ASSERT_EQ(o.response.type, ResponseType::r2);
    lc_.cid = o.response.r2;
  }

  // mmc_set_relative_addr(): CMD3 with the RCA in [31:16], R1 sent from ident.
  void mmc_set_relative_addr() {
    SCOPED_TRACE("mmc_set_relative_addr");
    expect_r1(send(3, rca_arg()), CardState::ident);
    EXPECT_EQ(card().state(), CardState::stby);
  }

  // mmc_send_csd() + mmc_decode_csd().
  void mmc_send_csd() {
    SCOPED_TRACE("mmc_send_csd");
    const CommandOutcome o = send(9, rca_arg());
    EXPECT_FALSE(o.illegal);
    ASSERT_EQ(o.response.type, ResponseType::r2);
    lc_.csd = o.response.r2;
    // mmc_decode_csd(): "csd->structure = UNSTUFF_BITS(resp, 126, 2); if (csd->structure == 0)
    // unrecognised CSD structure version"; mmca_vsn = UNSTUFF_BITS(resp, 122, 4).
    lc_.csd_structure = unstuff_bits(lc_.csd, 126, 2);
    lc_.mmca_vsn = unstuff_bits(lc_.csd, 122, 4);
    ASSERT_NE(lc_.csd_structure, 0u) << "mmc_decode_csd: unrecognised CSD structure version";
  }

  // mmc_select_card(): CMD7 with the RCA (MMC_RSP_R1), sent from stby.
  void mmc_select_card() {
    SCOPED_TRACE("mmc_select_card");
    expect_r1(send(7, rca_arg()), CardState::stby);
    EXPECT_EQ(card().state(), CardState::tran);
  }

  // mmc_get_ext_csd(): CMD8 (R1, ADTC) and one 512-byte block.
  ExtCsd mmc_get_ext_csd() {
    SCOPED_TRACE("mmc_get_ext_csd");
    ExtCsd e{};
    const CommandOutcome o = send(8, 0);
    expect_r1(o, CardState::tran);
    EXPECT_EQ(o.data.direction, DataDirection::to_host);
    EXPECT_EQ(o.data.block_size, 512u);
    EXPECT_EQ(o.data.blocks, 1u);
    if (o.data.block_size != e.size()) return e;
    const BlockOutcome b = card().read_block(e.data(), e.size());
    EXPECT_TRUE(b.ok);
    EXPECT_TRUE(b.transfer_complete);
    EXPECT_EQ(card().state(), CardState::tran);
    return e;
  }

  // mmc_select_card_type(): what the host and the card both support.
  void mmc_select_card_type() {
    const std::uint8_t t = lc_.raw_card_type;
    std::uint32_t avail = 0;
    if (caps_.highspeed && (t & kCardTypeHs26)) avail |= kCardTypeHs26;
    if (caps_.highspeed && (t & kCardTypeHs52)) avail |= kCardTypeHs52;
    if (caps_.ddr && (t & kCardTypeDdr18V)) avail |= kCardTypeDdr18V;
    if (caps_.hs200 && (t & kCardTypeHs200_18V)) avail |= kCardTypeHs200_18V;
    if (caps_.hs400 && (t & kCardTypeHs400_18V)) avail |= kCardTypeHs400_18V;
    if (caps_.hs400es && lc_.strobe_support && (avail & kCardTypeHs400)) avail |= kCardTypeHs400Es;
    lc_.avail_type = avail;
  }

  // mmc_decode_ext_csd(), the fields this device's users depend on.
  void mmc_decode_ext_csd(const ExtCsd& e) {
    SCOPED_TRACE("mmc_decode_ext_csd");
    lc_.ext_csd = e;
    // "if (card->csd.structure == 3) { if (ext_csd[EXT_CSD_STRUCTURE] > 2) unrecognised ..."
    if (lc_.csd_structure == 3) {
      EXPECT_LE(e[ec::kCsdStructure], 2) << "unrecognised EXT_CSD structure";
    }
    lc_.rev = e[ec::kExtCsdRev];
    lc_.sectors = le32(e, ec::kSecCount);
    // "Cards with density > 2GiB are sector addressed"
    lc_.blockaddr = lc_.sectors > (2u * 1024 * 1024 * 1024) / 512;
    lc_.raw_card_type = e[ec::kDeviceType];
    lc_.strobe_support = e[ec::kStrobeSupport] != 0;
    lc_.boot_part_size = std::uint64_t{e[ec::kBootSizeMult]} << 17;
    lc_.rpmb_part_size = std::uint64_t{e[ec::kRpmbSizeMult]} << 17;
    lc_.rel_sectors = e[ec::kRelWrSecC];
    lc_.rel_param = e[ec::kWrRelParam];
    lc_.hc_erase_size = std::uint32_t{e[ec::kHcEraseGrpSize]} << 10;
    lc_.partition_setting_completed = e[ec::kPartitionSettingCompleted] != 0;
    lc_.partition_support = e[ec::kPartitioningSupport];
    lc_.hpi = (e[ec::kHpiFeatures] & 1) != 0;
    lc_.cache_size_kbit = le32(e, ec::kCacheSize);
    mmc_select_card_type();
  }

  // mmc_switch() / __mmc_switch(): CMD6 write byte (R1b); busy ends on DAT0; then, with
  // send_status, mmc_switch_status(): one CMD13 whose SWITCH_ERROR fails the switch (-EBADMSG).
  // Returns that CMD13's status (0 without send_status).
  std::uint32_t raw_switch(std::uint8_t index, std::uint8_t value, bool send_status, WorkReport* work = nullptr) {
    const std::uint32_t arg = switch_arg(SwitchAccess::write_byte, index, value, kExtCsdCmdSetNormal);
    const CommandOutcome o = send(6, arg);
    {
      SCOPED_TRACE("CMD6 response");
      expect_r1(o, CardState::tran, ResponseType::r1b);
    }
    EXPECT_TRUE(o.busy) << "CMD6 is R1b: the card signals busy while it switches";
    if (work != nullptr) *work = o.work;
    if (!send_status) return 0;
    return mmc_switch_status();
  }

  // mmc_switch_status() → __mmc_send_status(): CMD13 with the RCA.
  std::uint32_t mmc_switch_status() {
    const CommandOutcome s = send(13, rca_arg());
    EXPECT_FALSE(s.illegal);
    EXPECT_EQ(s.response.type, ResponseType::r1);
    return s.response.value;
  }

  // A switch Linux needs to succeed: accepted (one EXT_CSD write), the CMD13 after it without
  // SWITCH_ERROR or any other error, in tran and ready for data.
  void mmc_switch(std::uint8_t index, std::uint8_t value, const char* linux_function, bool send_status = true) {
    SCOPED_TRACE(std::string(linux_function) + ": CMD6 EXT_CSD[" + std::to_string(index) +
                 "] = " + std::to_string(value));
    WorkReport work;
    const std::uint32_t status = raw_switch(index, value, send_status, &work);
    EXPECT_EQ(work.ext_csd_writes, 1u) << describe_work(work);
    if (!send_status) return;
    EXPECT_EQ(status & st::kSwitchError, 0u) << state_text(status);
    EXPECT_EQ(status & st::kAnyError, 0u) << state_text(status);
    EXPECT_EQ(st::current_state(status), static_cast<std::uint32_t>(CardState::tran)) << state_text(status);
    EXPECT_NE(status & st::kReadyForData, 0u) << state_text(status);
  }

  // ---- mmc.c: bus width, timing, tuning --------------------------------------------------------

  // mmc_send_tuning(): CMD21, 128 bytes on an 8-bit bus compared with tuning_blk_pattern_8bit.
  void mmc_send_tuning() {
    const CommandOutcome o = send(21, 0);
    expect_r1(o, CardState::tran);
    ASSERT_EQ(o.data.direction, DataDirection::to_host);
    ASSERT_EQ(o.data.block_size, sizeof kTuningBlkPattern8Bit);
    ASSERT_EQ(o.data.blocks, 1u);
    std::array<std::uint8_t, sizeof kTuningBlkPattern8Bit> block{};
    const BlockOutcome b = card().read_block(block.data(), block.size());
    EXPECT_TRUE(b.ok);
    EXPECT_TRUE(b.transfer_complete);
    EXPECT_TRUE(std::equal(block.begin(), block.end(), std::begin(kTuningBlkPattern8Bit)))
        << "mmc_send_tuning: memcmp with tuning_blk_pattern_8bit fails (-EIO)";
    EXPECT_EQ(card().state(), CardState::tran);
    ++lc_.tuning_commands;
  }

  // mmc_execute_tuning() → the controller's execute_tuning (sdhci: up to MAX_TUNING_LOOP blocks).
  void mmc_execute_tuning() {
    SCOPED_TRACE("mmc_execute_tuning");
    for (int i = 0; i < kTuningLoops; ++i) {
      ASSERT_NO_FATAL_FAILURE(mmc_send_tuning()) << "tuning block " << i;
    }
  }

  // mmc_send_bus_test(): CMD19 writes the pattern, CMD14 reads it back; Linux checks
  // (test[i] ^ read[i]) == 0xff for the first len / 4 bytes.
  void mmc_bus_test(unsigned width) {
    SCOPED_TRACE("mmc_bus_test");
    ASSERT_EQ(width, 8u) << "this replay only tests the 8-bit bus";
    const CommandOutcome w = send(19, 0);
    expect_r1(w, CardState::tran);
    ASSERT_EQ(w.data.direction, DataDirection::to_card);
    ASSERT_EQ(w.data.block_size, 8u);
    EXPECT_TRUE(card().write_block(kBusTestData8Bit, sizeof kBusTestData8Bit).ok);
    EXPECT_EQ(card().state(), CardState::btst);
    const CommandOutcome r = send(14, 0);
    expect_r1(r, CardState::btst);
    ASSERT_EQ(r.data.direction, DataDirection::to_host);
    ASSERT_EQ(r.data.block_size, 8u);
    std::array<std::uint8_t, 8> read{};
    EXPECT_TRUE(card().read_block(read.data(), read.size()).ok);
    for (unsigned i = 0; i < width / 4; ++i) {
      EXPECT_EQ(kBusTestData8Bit[i] ^ read[i], 0xff) << "bus test byte " << i;
    }
    EXPECT_EQ(card().state(), CardState::tran);
    ++lc_.bus_tests;
  }

  // mmc_compare_ext_csds(): the read-only fields read at the new width equal those read at 1 bit.
  void mmc_compare_ext_csds(unsigned width) {
    if (width == 1) return;
    SCOPED_TRACE("mmc_compare_ext_csds");
    const ExtCsd bw = mmc_get_ext_csd();
    for (std::size_t index : kComparedExtCsdFields) {
      EXPECT_EQ(bw[index], lc_.ext_csd[index]) << "EXT_CSD[" << index << "]";
    }
    ++lc_.ext_csd_compares;
  }

  // mmc_select_bus_width(): 8-bit first (MMC_CAP_8_BIT_DATA), checked by the bus test or the
  // EXT_CSD comparison. Returns the width.
  unsigned mmc_select_bus_width() {
    SCOPED_TRACE("mmc_select_bus_width");
    if (!caps_.eight_bit) {
      ADD_FAILURE() << "this replay models an 8-bit host";
      return 1;
    }
    mmc_switch(static_cast<std::uint8_t>(ec::kBusWidth), kExtCsdBusWidth8, "mmc_select_bus_width");
    lc_.bus_width = 8;
    if (caps_.bus_width_test)
      mmc_bus_test(8);
    else
      mmc_compare_ext_csds(8);
    return 8;
  }

  // mmc_select_hs(): HS_TIMING = EXT_CSD_TIMING_HS with send_status.
  void mmc_select_hs() {
    mmc_switch(static_cast<std::uint8_t>(ec::kHsTiming), kExtCsdTimingHs, "mmc_select_hs");
    lc_.timing = Timing::hs;
  }

  // mmc_select_hs_ddr(): BUS_WIDTH = EXT_CSD_DDR_BUS_WIDTH_8 (MMC_TIMING_MMC_DDR52).
  void mmc_select_hs_ddr() {
    if (!(lc_.avail_type & (kCardTypeDdr18V | kCardTypeDdr12V)) || lc_.bus_width == 1) return;
    const std::uint8_t bits = lc_.bus_width == 8 ? kExtCsdDdrBusWidth8 : kExtCsdDdrBusWidth4;
    mmc_switch(static_cast<std::uint8_t>(ec::kBusWidth), bits, "mmc_select_hs_ddr");
    lc_.timing = Timing::ddr52;
  }

  // mmc_select_hs200(): bus width, then HS_TIMING = HS200 (drive strength 0: the host has no
  // driver-type capabilities, mmc_select_driver_type()), then mmc_switch_status().
  void mmc_select_hs200() {
    SCOPED_TRACE("mmc_select_hs200");
    if (mmc_select_bus_width() <= 1) return;
    mmc_switch(static_cast<std::uint8_t>(ec::kHsTiming), kExtCsdTimingHs200, "mmc_select_hs200");
    lc_.timing = Timing::hs200;
  }

  // mmc_select_hs400(): from tuned HS200 back to HS, 8-bit DDR, then HS400.
  void mmc_select_hs400() {
    SCOPED_TRACE("mmc_select_hs400");
    if (!(lc_.avail_type & kCardTypeHs400) || lc_.bus_width != 8) return;
    mmc_switch(static_cast<std::uint8_t>(ec::kHsTiming), kExtCsdTimingHs, "mmc_select_hs400 (to HS)");
    mmc_switch(static_cast<std::uint8_t>(ec::kBusWidth), kExtCsdDdrBusWidth8, "mmc_select_hs400 (DDR)");
    mmc_switch(static_cast<std::uint8_t>(ec::kHsTiming), kExtCsdTimingHs400, "mmc_select_hs400");
    lc_.timing = Timing::hs400;
  }

  // mmc_select_hs400es(): 8-bit bus, HS, an extra mmc_switch_status(), 8-bit DDR with enhanced
  // strobe, HS400.
  void mmc_select_hs400es() {
    SCOPED_TRACE("mmc_select_hs400es");
    if (mmc_select_bus_width() != 8) return;
    mmc_select_hs();
    const std::uint32_t status = mmc_switch_status();
    EXPECT_EQ(status & st::kAnyError, 0u) << state_text(status);
    mmc_switch(static_cast<std::uint8_t>(ec::kBusWidth), kExtCsdDdrBusWidth8 | kExtCsdBusWidthStrobe,
               "mmc_select_hs400es (DDR + strobe)");
    mmc_switch(static_cast<std::uint8_t>(ec::kHsTiming), kExtCsdTimingHs400, "mmc_select_hs400es");
    lc_.timing = Timing::hs400es;
  }

  // mmc_select_timing().
  void mmc_select_timing() {
    if (lc_.avail_type & kCardTypeHs400Es) {
      mmc_select_hs400es();
      return;
    }
    if (lc_.avail_type & kCardTypeHs200) {
      mmc_select_hs200();
      return;
    }
    if (lc_.avail_type & (kCardTypeHs26 | kCardTypeHs52)) mmc_select_hs();
  }

  // mmc_select_powerclass() / __mmc_select_powerclass() at 3.3 V: the 8-bit nibble of the
  // PWR_CL field for the selected mode; a switch only when it is not 0.
  void mmc_select_powerclass() {
    if (lc_.bus_width == 1) return;
    std::size_t field = kExtCsdPwrCl52_360;
    switch (lc_.timing) {
      case Timing::ddr52: field = kExtCsdPwrClDdr52_360; break;
      case Timing::hs200: field = kExtCsdPwrCl200_360; break;
      case Timing::hs400:
      case Timing::hs400es: field = kExtCsdPwrClDdr200_360; break;
      default: break;
    }
    const auto value = static_cast<std::uint8_t>((lc_.ext_csd[field] & 0xF0) >> 4);
    if (value > 0) mmc_switch(static_cast<std::uint8_t>(ec::kPowerClass), value, "mmc_select_powerclass");
  }

  // ---- The whole sequence ----------------------------------------------------------------------

  // mmc_rescan_try_freq() → mmc_go_idle(), mmc_attach_mmc() → mmc_init_card(host, rocr, NULL).
  void attach() {
    lc_ = LinuxCard{};
    mmc_go_idle();
    {
      SCOPED_TRACE("mmc_attach_mmc: mmc_send_op_cond(host, 0, &ocr)");
      unsigned polls = 0;
      lc_.query_ocr = mmc_send_op_cond(0, &polls);
      EXPECT_EQ(polls, 1u) << "probing is a single CMD1";
      EXPECT_EQ(card().state(), CardState::idle) << "CMD1 with argument 0 only asks for the OCR";
    }
    lc_.selected_ocr = mmc_select_voltage(lc_.query_ocr);
    ASSERT_NE(lc_.selected_ocr, 0u) << "mmc_select_voltage: no voltage in common with the host";
    ASSERT_NO_FATAL_FAILURE(mmc_init_card(lc_.selected_ocr));
  }

  void mmc_init_card(std::uint32_t ocr) {
    SCOPED_TRACE("mmc_init_card");
    // "Since we're changing the OCR value, we seem to need to tell some cards to go back to the
    // idle state. We wait 1ms to give cards time to respond."
    mmc_go_idle();
    lc_.rocr = mmc_send_op_cond(ocr | (1u << 30), &lc_.op_cond_polls);
    ASSERT_NE(lc_.rocr & kMmcCardBusy, 0u) << "the card never finished powering up";
    EXPECT_EQ(card().state(), CardState::ready);
    ASSERT_NO_FATAL_FAILURE(mmc_all_send_cid());
    EXPECT_EQ(card().state(), CardState::ident);
    mmc_set_relative_addr();
    ASSERT_NO_FATAL_FAILURE(mmc_send_csd());
    mmc_select_card();
    // mmc_read_ext_csd(): only for cards with mmca_vsn >= CSD_SPEC_VER_4 (mmc_can_ext_csd).
    ASSERT_GE(lc_.mmca_vsn, 4u) << "no EXT_CSD: Linux would stay in legacy 1-bit mode";
    mmc_decode_ext_csd(mmc_get_ext_csd());

    // "If enhanced_area_en is TRUE, host needs to enable ERASE_GRP_DEF bit."
    if (lc_.partition_setting_completed)
      mmc_switch(static_cast<std::uint8_t>(ec::kEraseGroupDef), 1, "mmc_init_card: ERASE_GROUP_DEF");
    // "Ensure eMMC user default partition is enabled"
    if ((lc_.ext_csd[ec::kPartitionConfig] & 7) != 0)
      mmc_switch(static_cast<std::uint8_t>(ec::kPartitionConfig), lc_.ext_csd[ec::kPartitionConfig] & ~7u & 0xFF,
                 "mmc_init_card: PARTITION_CONFIG");
    // "Enable power_off_notification byte in the ext_csd register"
    if (lc_.rev >= 6) {
      mmc_switch(static_cast<std::uint8_t>(ec::kPowerOffNotification), kExtCsdPowerOn,
                 "mmc_init_card: POWER_OFF_NOTIFICATION");
      lc_.power_off_notification = kExtCsdPowerOn;
    }

    ASSERT_NO_FATAL_FAILURE(mmc_select_timing());
    if (lc_.timing == Timing::hs200) {
      ASSERT_NO_FATAL_FAILURE(mmc_execute_tuning());  // mmc_hs200_tuning()
      mmc_select_hs400();
    } else if (lc_.timing != Timing::hs400es) {
      // "Select the desired bus width optionally"
      const unsigned width = mmc_select_bus_width();
      if (width > 1 && lc_.timing == Timing::hs) mmc_select_hs_ddr();
    }

    mmc_select_powerclass();
    // "Enable HPI feature (if supported)"
    if (lc_.hpi) mmc_switch(static_cast<std::uint8_t>(ec::kHpiMgmt), 1, "mmc_init_card: HPI_MGMT");
    // "If cache size is higher than 0, this indicates the existence of cache and it can be
    // turned on."
    if (lc_.cache_size_kbit > 0) {
      mmc_switch(static_cast<std::uint8_t>(ec::kCacheCtrl), 1, "mmc_init_card: CACHE_CTRL");
      lc_.cache_enabled = true;
    }
    // Command queue: this host has no MMC_CAP2_CQE, so mmc_cmdq_enable() is not called.
  }

  // ---- block.c -----------------------------------------------------------------------------

  std::uint32_t address(std::uint64_t sector) const {
    return static_cast<std::uint32_t>(lc_.blockaddr ? sector : sector * kSectorSize);
  }

  // Reads the data phase of `o`, `count` blocks of 512 bytes.
  std::vector<std::uint8_t> read_blocks(const CommandOutcome& o, std::uint32_t count) {
    std::vector<std::uint8_t> out;
    EXPECT_EQ(o.data.direction, DataDirection::to_host);
    EXPECT_EQ(o.data.block_size, kSectorSize);
    if (o.data.direction != DataDirection::to_host || o.data.block_size != kSectorSize) return out;
    std::vector<std::uint8_t> block(kSectorSize);
    for (std::uint32_t i = 0; i < count; ++i) {
      const BlockOutcome b = card().read_block(block.data(), block.size());
      EXPECT_TRUE(b.ok) << "block " << i;
      if (!b.ok) break;
      out.insert(out.end(), block.begin(), block.end());
    }
    return out;
  }

  // mmc_blk_rw_rq_prep() without CMD23: CMD18 open-ended, the blocks, then the stop command
  // (CMD12, MMC_RSP_R1 for reads). Returns the data; *stop gets the CMD12 response.
  std::vector<std::uint8_t> read_open_ended(std::uint64_t sector, std::uint32_t count, CommandOutcome* stop) {
    SCOPED_TRACE("mmc_blk: CMD18 + CMD12");
    const CommandOutcome o = send(18, address(sector));
    expect_r1(o, CardState::tran);
    EXPECT_EQ(o.data.blocks, 0u) << "without CMD23 the read is open-ended";
    std::vector<std::uint8_t> data = read_blocks(o, count);
    EXPECT_EQ(card().state(), CardState::data) << "an open-ended read lasts until CMD12";
    *stop = send(12, 0);
    EXPECT_EQ(card().state(), CardState::tran);
    return data;
  }

  // mmc_blk_rw_rq_prep() with MMC_BLK_CMD23: CMD23 (sbc) + CMD18.
  std::vector<std::uint8_t> read_sbc(std::uint64_t sector, std::uint16_t count) {
    SCOPED_TRACE("mmc_blk: CMD23 + CMD18");
    expect_r1(send(23, count), CardState::tran);
    const CommandOutcome o = send(18, address(sector));
    expect_r1(o, CardState::tran);
    EXPECT_EQ(o.data.blocks, count);
    std::vector<std::uint8_t> data = read_blocks(o, count);
    EXPECT_EQ(card().state(), CardState::tran) << "the CMD23 count ends the transfer without CMD12";
    return data;
  }

  // mmc_blk_rw_rq_prep() write with CMD23 (bit 31 for a reliable write, do_rel_wr), CMD25, the
  // blocks, then mmc_blk_card_busy(): CMD13 until READY_FOR_DATA in tran, no CMD_ERRORS.
  WorkReport write_sbc(std::uint64_t sector, const std::vector<std::uint8_t>& data, bool reliable) {
    SCOPED_TRACE(reliable ? "mmc_blk: CMD23 (reliable) + CMD25" : "mmc_blk: CMD23 + CMD25");
    WorkReport work;
    const auto count = static_cast<std::uint32_t>(data.size() / kSectorSize);
    expect_r1(send(23, count | (reliable ? set_block_count::kReliableWrite : 0u)), CardState::tran);
    const CommandOutcome o = send(25, address(sector));
    expect_r1(o, CardState::tran);
    EXPECT_EQ(o.data.direction, DataDirection::to_card);
    EXPECT_EQ(o.data.block_size, kSectorSize);
    EXPECT_EQ(o.data.blocks, count);
    if (o.data.direction != DataDirection::to_card) return work;
    for (std::uint32_t i = 0; i < count; ++i) {
      const BlockOutcome b = card().write_block(data.data() + std::size_t{i} * kSectorSize, kSectorSize);
      EXPECT_TRUE(b.ok) << "block " << i;
      EXPECT_EQ(b.transfer_complete, i + 1 == count) << "block " << i;
      work += b.work;
    }
    const CommandOutcome s = send(13, rca_arg());
    expect_r1(s, CardState::tran);
    EXPECT_NE(s.response.value & st::kReadyForData, 0u) << state_text(s.response.value);
    return work;
  }

  // mmc_shutdown() → _mmc_suspend(host, false): _mmc_flush_cache() (FLUSH_CACHE with
  // send_status), then mmc_poweroff_notify(card, EXT_CSD_POWER_OFF_LONG) (__mmc_switch without
  // send_status), then mmc_power_off().
  void mmc_shutdown() {
    SCOPED_TRACE("mmc_shutdown");
    if (lc_.cache_enabled) {
      WorkReport work;
      const std::uint32_t status = raw_switch(static_cast<std::uint8_t>(ec::kFlushCache), 1, true, &work);
      EXPECT_EQ(status & st::kAnyError, 0u) << state_text(status);
      EXPECT_EQ(work.cache_flushes, 1u) << describe_work(work);
    }
    if (lc_.power_off_notification == kExtCsdPowerOn)  // mmc_can_poweroff_notify()
      mmc_switch(static_cast<std::uint8_t>(ec::kPowerOffNotification), kExtCsdPowerOffLong, "mmc_poweroff_notify",
                 /*send_status=*/false);
    card().power_cycle();
  }

 private:
  CardHarness& h_;
  HostCaps caps_;
  LinuxCard lc_;
  std::vector<Command> trace_;
};

int count_commands(const std::vector<Command>& trace, std::uint8_t index) {
  return static_cast<int>(
      std::count_if(trace.begin(), trace.end(), [&](const Command& c) { return c.index == index; }));
}

// The switches (index, value) in the order Linux sent them.
std::vector<std::pair<int, int>> switches(const std::vector<Command>& trace) {
  std::vector<std::pair<int, int>> out;
  for (const Command& c : trace)
    if (c.index == 6) out.emplace_back(static_cast<int>((c.arg >> 16) & 0xFF), static_cast<int>((c.arg >> 8) & 0xFF));
  return out;
}

DeviceConfig hs200_only_config() {
  DeviceConfig c = default_device_config();
  c.bus_modes.hs400 = false;
  c.bus_modes.enhanced_strobe = false;
  return c;
}

DeviceConfig ddr52_config() {
  DeviceConfig c = default_device_config();
  c.bus_modes.hs200 = false;
  c.bus_modes.hs400 = false;
  c.bus_modes.enhanced_strobe = false;
  return c;
}

// ---------------------------------------------------------------------------------------------
// 1. Identification and the registers Linux decodes.

TEST(LinuxInitTrace, IdentificationAndRegisterDecode) {
  const DeviceConfig config = default_device_config();
  CardHarness h(config);
  LinuxHost host(h, HostCaps{});
  ASSERT_NO_FATAL_FAILURE(host.attach());
  const LinuxCard& lc = host.linux_card();

  // OCR: the query answers busy (the card powers up for ocr_busy_polls CMD1), both voltage
  // ranges of a dual-voltage eMMC, sector access mode for a device above 2 GiB.
  ASSERT_GE(config.ocr_busy_polls, 1u) << "the default part must exercise the busy poll";
  EXPECT_EQ(lc.query_ocr & kMmcCardBusy, 0u) << "the first CMD1 after power-up answers busy";
  EXPECT_EQ(lc.query_ocr & 0x00FF8000u, 0x00FF8000u) << "2.7-3.6 V window";
  EXPECT_NE(lc.query_ocr & (1u << 7), 0u) << "1.70-1.95 V";
  EXPECT_EQ(lc.selected_ocr, kMmcVdd33_34);
  EXPECT_EQ(host.trace()[3].arg, kMmcVdd33_34 | (1u << 30)) << "CMD1 after the go_idle of mmc_init_card";
  // mmc_init_card's CMD0 restarts the power-up: ocr_busy_polls busy answers, then ready.
  EXPECT_EQ(lc.op_cond_polls, config.ocr_busy_polls + 1);
  EXPECT_EQ(lc.rocr & (3u << 29), 2u << 29) << "OCR access mode: sector";
  EXPECT_EQ(lc.rocr & 0x00FF8080u, lc.query_ocr & 0x00FF8080u);

  // The command sequence up to the EXT_CSD read.
  const std::vector<std::uint8_t> expected_prefix = {0, 1, 0, 1, 1, 1, 2, 3, 9, 7, 8};
  ASSERT_GE(host.trace().size(), expected_prefix.size());
  for (std::size_t i = 0; i < expected_prefix.size(); ++i)
    EXPECT_EQ(host.trace()[i].index, expected_prefix[i]) << "command " << i;

  // CID: the R2 is the card's CID, its CRC7 is right, mmc_decode_cid() (mmca_vsn 4) fields.
  EXPECT_EQ(lc.cid, host.card().cid());
  EXPECT_EQ(lc.cid[15], static_cast<std::uint8_t>(crc7(lc.cid.data(), 15) << 1 | 1));
  EXPECT_EQ(unstuff_bits(lc.cid, 120, 8), config.cid.manufacturer_id);
  EXPECT_EQ(unstuff_bits(lc.cid, 104, 8), config.cid.oem_id);
  std::string name;
  for (unsigned i = 0; i < 6; ++i) name += static_cast<char>(unstuff_bits(lc.cid, 96 - 8 * i, 8));
  EXPECT_EQ(name, "EMSIM1");
  EXPECT_EQ(unstuff_bits(lc.cid, 48, 8), config.cid.product_revision);
  EXPECT_EQ(unstuff_bits(lc.cid, 16, 32), config.cid.serial);
  EXPECT_EQ(unstuff_bits(lc.cid, 12, 4), config.cid.manufacturing_month);
  EXPECT_EQ(unstuff_bits(lc.cid, 8, 4) + 2013u, config.cid.manufacturing_year) << "MDT, EXT_CSD_REV > 4 coding";

  // CSD: the R2 is the card's CSD with a valid CRC7; mmc_decode_csd().
  EXPECT_EQ(lc.csd, host.card().csd());
  EXPECT_EQ(lc.csd[15], static_cast<std::uint8_t>(crc7(lc.csd.data(), 15) << 1 | 1));
  EXPECT_EQ(lc.csd_structure, 3u) << "CSD_STRUCTURE: version in EXT_CSD_STRUCTURE";
  EXPECT_EQ(lc.mmca_vsn, 4u) << "SPEC_VERS 4: EXT_CSD present";
  EXPECT_EQ(unstuff_bits(lc.csd, 62, 12), 0xFFFu) << "C_SIZE of a device above 2 GiB";
  EXPECT_EQ(unstuff_bits(lc.csd, 80, 4), 9u) << "READ_BL_LEN 512";
  const std::uint32_t ccc = unstuff_bits(lc.csd, 84, 12);
  EXPECT_NE(ccc & (1u << 2), 0u) << "CCC class 2, block read";
  EXPECT_NE(ccc & (1u << 4), 0u) << "CCC class 4, block write";

  // EXT_CSD: mmc_decode_ext_csd().
  const ExtCsd& e = lc.ext_csd;
  EXPECT_EQ(lc.rev, 8u) << "EXT_CSD_REV 8: eMMC 5.1";
  EXPECT_EQ(e[ec::kCsdStructure], 2);
  EXPECT_EQ(std::uint64_t{lc.sectors} * 512, config.user_capacity);
  EXPECT_EQ(std::uint64_t{lc.sectors} * 512, 8ULL << 30);
  EXPECT_TRUE(lc.blockaddr);
  EXPECT_EQ(e[kExtCsdDataSectorSize], 0) << "512-byte data sectors";
  EXPECT_NE(lc.raw_card_type & kCardTypeHs52, 0);
  EXPECT_NE(lc.raw_card_type & kCardTypeDdr18V, 0);
  EXPECT_NE(lc.raw_card_type & kCardTypeHs200_18V, 0);
  EXPECT_NE(lc.raw_card_type & kCardTypeHs400_18V, 0);
  EXPECT_EQ(lc.avail_type & 0xFFu,
            std::uint32_t{kCardTypeHs26 | kCardTypeHs52 | kCardTypeDdr18V | kCardTypeHs200_18V | kCardTypeHs400_18V});
  EXPECT_EQ(lc.boot_part_size, config.boot_partition_size);
  EXPECT_EQ(lc.boot_part_size, 4ULL << 20);
  EXPECT_EQ(lc.rpmb_part_size, config.rpmb_size);
  EXPECT_EQ(lc.rel_sectors, config.reliable_write_sectors);
  EXPECT_GE(lc.rel_sectors, 1u);
  EXPECT_EQ(std::uint64_t{lc.cache_size_kbit} * 1024 / 8, config.cache_size);
  EXPECT_EQ(std::uint64_t{lc.hc_erase_size} * 512, config.erase_group_size);
  EXPECT_NE(lc.partition_support & kPartSupportPartEn, 0);
  EXPECT_TRUE(lc.partition_setting_completed);
  const unsigned sa_shift = e[ec::kSATimeout];
  EXPECT_TRUE(sa_shift > 0 && sa_shift <= 0x17) << "S_A_TIMEOUT " << sa_shift;
  EXPECT_GT(e[ec::kGenericCmd6Time], 0) << "GENERIC_CMD6_TIME";
  // The modes segment at power-up.
  EXPECT_EQ(e[ec::kHsTiming], 0);
  EXPECT_EQ(e[ec::kBusWidth], 0);
  EXPECT_EQ(e[ec::kCacheCtrl], 0);
  EXPECT_EQ(e[ec::kEraseGroupDef], 0);
  EXPECT_EQ(e[ec::kPowerOffNotification], 0);
  EXPECT_EQ(e[ec::kPartitionConfig] & 7, 0);
}

TEST(LinuxInitTrace, OpCondBusyPollsFollowTheConfiguration) {
  for (std::uint32_t busy : {0u, 1u, 7u}) {
    SCOPED_TRACE("ocr_busy_polls " + std::to_string(busy));
    DeviceConfig config = default_device_config();
    config.ocr_busy_polls = busy;
    CardHarness h(config);
    LinuxHost host(h, HostCaps{});
    host.mmc_go_idle();
    unsigned polls = 0;
    const std::uint32_t query = host.mmc_send_op_cond(0, &polls);
    EXPECT_EQ(query & kMmcCardBusy, busy == 0 ? kMmcCardBusy : 0u);
    EXPECT_EQ(h.card().state(), CardState::idle);
    host.mmc_go_idle();
    std::vector<std::uint32_t> answers;
    for (unsigned n = 0; n < busy + 5; ++n) {
      const CommandOutcome o = host.send(1, kMmcVdd33_34 | (1u << 30));
      ASSERT_EQ(o.response.type, ResponseType::r3);
      answers.push_back(o.response.value);
      if (o.response.value & kMmcCardBusy) break;
    }
    ASSERT_EQ(answers.size(), busy + 1);
    for (unsigned n = 0; n < busy; ++n) EXPECT_EQ(answers[n] & kMmcCardBusy, 0u) << "poll " << n;
    EXPECT_EQ(h.card().state(), CardState::ready);
  }
}

// ---------------------------------------------------------------------------------------------
// 2. The HS400 path through HS200 (no MMC_CAP2_HS400_ES on the host).

TEST(LinuxInitTrace, Hs400ThroughHs200) {
  CardHarness h;
  LinuxHost host(h, HostCaps{});
  ASSERT_NO_FATAL_FAILURE(host.attach());
  const LinuxCard& lc = host.linux_card();
  EXPECT_EQ(lc.timing, Timing::hs400);
  EXPECT_EQ(lc.tuning_commands, kTuningLoops);
  EXPECT_EQ(lc.ext_csd_compares, 1) << "mmc_select_bus_width without MMC_CAP_BUS_WIDTH_TEST";

  const std::vector<std::pair<int, int>> expected = {
      {static_cast<int>(ec::kEraseGroupDef), 1},
      {static_cast<int>(ec::kPowerOffNotification), kExtCsdPowerOn},
      {static_cast<int>(ec::kBusWidth), kExtCsdBusWidth8},
      {static_cast<int>(ec::kHsTiming), kExtCsdTimingHs200},
      {static_cast<int>(ec::kHsTiming), kExtCsdTimingHs},
      {static_cast<int>(ec::kBusWidth), kExtCsdDdrBusWidth8},
      {static_cast<int>(ec::kHsTiming), kExtCsdTimingHs400},
      {static_cast<int>(ec::kCacheCtrl), 1},
  };
  EXPECT_EQ(switches(host.trace()), expected);
  // Every CMD6 is followed by its mmc_switch_status() CMD13.
  const auto& t = host.trace();
  for (std::size_t i = 0; i < t.size(); ++i)
    if (t[i].index == 6) {
      ASSERT_LT(i + 1, t.size());
      EXPECT_EQ(t[i + 1].index, 13) << "after command " << i;
      EXPECT_EQ(t[i + 1].arg, host.rca_arg());
    }
  // CMD21 only between HS_TIMING = HS200 and HS_TIMING = HS.
  std::size_t first21 = t.size(), last21 = 0, hs200_switch = 0, hs_switch = 0;
  for (std::size_t i = 0; i < t.size(); ++i) {
    if (t[i].index == 21) first21 = std::min(first21, i), last21 = i;
    if (t[i].index == 6 && t[i].arg == switch_arg(SwitchAccess::write_byte, ec::kHsTiming, kExtCsdTimingHs200))
      hs200_switch = i;
    if (t[i].index == 6 && t[i].arg == switch_arg(SwitchAccess::write_byte, ec::kHsTiming, kExtCsdTimingHs))
      hs_switch = i;
  }
  EXPECT_LT(hs200_switch, first21);
  EXPECT_LT(last21, hs_switch);

  // The final EXT_CSD.
  const ExtCsd e = host.mmc_get_ext_csd();
  EXPECT_EQ(e[ec::kHsTiming], kExtCsdTimingHs400);
  EXPECT_EQ(e[ec::kBusWidth], kExtCsdDdrBusWidth8);
  EXPECT_EQ(e[ec::kCacheCtrl], 1);
  EXPECT_EQ(e[ec::kEraseGroupDef], 1);
  EXPECT_EQ(e[ec::kPowerOffNotification], kExtCsdPowerOn);
  EXPECT_EQ(h.card().state(), CardState::tran);
  EXPECT_EQ(h.card().pending_status() & st::kAnyError, 0u);
}

TEST(LinuxInitTrace, TuningOnlyInHs200) {
  // Before HS_TIMING = HS200, CMD21 is illegal: no response, ILLEGAL_COMMAND in the next R1.
  CardHarness h;
  LinuxHost host(h, HostCaps{});
  host.mmc_go_idle();
  host.mmc_send_op_cond(0, nullptr);
  host.mmc_go_idle();
  host.mmc_send_op_cond(kMmcVdd33_34 | (1u << 30), nullptr);
  host.mmc_all_send_cid();
  host.mmc_set_relative_addr();
  host.mmc_select_card();
  host.mmc_switch(static_cast<std::uint8_t>(ec::kBusWidth), kExtCsdBusWidth8, "bus width");
  const CommandOutcome o = host.send(21, 0);
  EXPECT_TRUE(o.illegal);
  EXPECT_EQ(o.response.type, ResponseType::none);
  const std::uint32_t status = host.mmc_switch_status();
  EXPECT_NE(status & st::kIllegalCommand, 0u) << state_text(status);
  EXPECT_EQ(st::current_state(status), static_cast<std::uint32_t>(CardState::tran));
}

// ---------------------------------------------------------------------------------------------
// 3. Alternative paths.

TEST(LinuxInitTrace, Hs200OnlyDevice) {
  CardHarness h(hs200_only_config());
  LinuxHost host(h, HostCaps{});
  ASSERT_NO_FATAL_FAILURE(host.attach());
  const LinuxCard& lc = host.linux_card();
  EXPECT_EQ(lc.raw_card_type & kCardTypeHs400, 0) << "DEVICE_TYPE must not advertise HS400";
  EXPECT_NE(lc.raw_card_type & kCardTypeHs200_18V, 0);
  EXPECT_EQ(lc.ext_csd[ec::kStrobeSupport], 0);
  EXPECT_EQ(lc.timing, Timing::hs200);
  EXPECT_EQ(lc.tuning_commands, kTuningLoops);
  const std::vector<std::pair<int, int>> expected = {
      {static_cast<int>(ec::kEraseGroupDef), 1},
      {static_cast<int>(ec::kPowerOffNotification), kExtCsdPowerOn},
      {static_cast<int>(ec::kBusWidth), kExtCsdBusWidth8},
      {static_cast<int>(ec::kHsTiming), kExtCsdTimingHs200},
      {static_cast<int>(ec::kCacheCtrl), 1},
  };
  EXPECT_EQ(switches(host.trace()), expected);
  ExtCsd e = host.mmc_get_ext_csd();
  EXPECT_EQ(e[ec::kHsTiming], kExtCsdTimingHs200);
  EXPECT_EQ(e[ec::kBusWidth], kExtCsdBusWidth8);
  EXPECT_EQ(e[ec::kCacheCtrl], 1);

  // A host that ignored DEVICE_TYPE and tried mmc_select_hs400's sequence: HS and 8-bit DDR are
  // fine (the device has DDR52), HS400 is refused with SWITCH_ERROR in the next CMD13.
  host.mmc_switch(static_cast<std::uint8_t>(ec::kHsTiming), kExtCsdTimingHs, "HS");
  host.mmc_switch(static_cast<std::uint8_t>(ec::kBusWidth), kExtCsdDdrBusWidth8, "DDR");
  WorkReport work;
  const std::uint32_t status =
      host.raw_switch(static_cast<std::uint8_t>(ec::kHsTiming), kExtCsdTimingHs400, true, &work);
  EXPECT_NE(status & st::kSwitchError, 0u) << state_text(status);
  EXPECT_EQ(st::current_state(status), static_cast<std::uint32_t>(CardState::tran)) << state_text(status);
  EXPECT_EQ(work.ext_csd_writes, 0u) << describe_work(work);
  // SWITCH_ERROR is cleared once reported.
  const std::uint32_t again = host.mmc_switch_status();
  EXPECT_EQ(again & st::kSwitchError, 0u) << state_text(again);
  e = host.mmc_get_ext_csd();
  EXPECT_EQ(e[ec::kHsTiming], kExtCsdTimingHs) << "a refused switch leaves the field unchanged";
  EXPECT_EQ(e[ec::kBusWidth], kExtCsdDdrBusWidth8);
}

TEST(LinuxInitTrace, HighSpeedDdr52WithBusTest) {
  CardHarness h(ddr52_config());
  HostCaps caps;
  caps.bus_width_test = true;  // MMC_CAP_BUS_WIDTH_TEST: mmc_bus_test() instead of the EXT_CSD compare
  LinuxHost host(h, caps);
  ASSERT_NO_FATAL_FAILURE(host.attach());
  const LinuxCard& lc = host.linux_card();
  EXPECT_EQ(lc.raw_card_type & (kCardTypeHs200 | kCardTypeHs400), 0);
  EXPECT_NE(lc.raw_card_type & kCardTypeHs52, 0);
  EXPECT_NE(lc.raw_card_type & kCardTypeDdr18V, 0);
  EXPECT_EQ(lc.timing, Timing::ddr52);
  EXPECT_EQ(lc.bus_tests, 1);
  EXPECT_EQ(count_commands(host.trace(), 21), 0);
  const std::vector<std::pair<int, int>> expected = {
      {static_cast<int>(ec::kEraseGroupDef), 1},
      {static_cast<int>(ec::kPowerOffNotification), kExtCsdPowerOn},
      {static_cast<int>(ec::kHsTiming), kExtCsdTimingHs},
      {static_cast<int>(ec::kBusWidth), kExtCsdBusWidth8},
      {static_cast<int>(ec::kBusWidth), kExtCsdDdrBusWidth8},
      {static_cast<int>(ec::kCacheCtrl), 1},
  };
  EXPECT_EQ(switches(host.trace()), expected);
  // CMD19 / CMD14 come right after the 8-bit switch and its CMD13.
  const auto& t = host.trace();
  const auto it = std::find_if(t.begin(), t.end(), [](const Command& c) { return c.index == 19; });
  ASSERT_NE(it, t.end());
  ASSERT_GE(it - t.begin(), 2);
  EXPECT_EQ((it - 2)->index, 6);
  EXPECT_EQ((it - 2)->arg, switch_arg(SwitchAccess::write_byte, ec::kBusWidth, kExtCsdBusWidth8));
  EXPECT_EQ((it + 1)->index, 14);

  ExtCsd e = host.mmc_get_ext_csd();
  EXPECT_EQ(e[ec::kHsTiming], kExtCsdTimingHs);
  EXPECT_EQ(e[ec::kBusWidth], kExtCsdDdrBusWidth8);
  EXPECT_EQ(e[ec::kCacheCtrl], 1);
  EXPECT_EQ(e[ec::kEraseGroupDef], 1);

  // HS200 is not offered: HS_TIMING = 2 is refused.
  const std::uint32_t status = host.raw_switch(static_cast<std::uint8_t>(ec::kHsTiming), kExtCsdTimingHs200, true);
  EXPECT_NE(status & st::kSwitchError, 0u) << state_text(status);
  e = host.mmc_get_ext_csd();
  EXPECT_EQ(e[ec::kHsTiming], kExtCsdTimingHs);
}

TEST(LinuxInitTrace, Hs400EnhancedStrobe) {
  CardHarness h;
  HostCaps caps;
  caps.hs400es = true;
  LinuxHost host(h, caps);
  ASSERT_NO_FATAL_FAILURE(host.attach());
  const LinuxCard& lc = host.linux_card();
  EXPECT_TRUE(lc.strobe_support);
  EXPECT_EQ(lc.timing, Timing::hs400es);
  EXPECT_EQ(count_commands(host.trace(), 21), 0) << "enhanced strobe needs no tuning";
  const ExtCsd e = host.mmc_get_ext_csd();
  EXPECT_EQ(e[ec::kHsTiming], kExtCsdTimingHs400);
  EXPECT_EQ(e[ec::kBusWidth], kExtCsdDdrBusWidth8 | kExtCsdBusWidthStrobe);
  EXPECT_EQ(e[ec::kCacheCtrl], 1);
}

// ---------------------------------------------------------------------------------------------
// 4. The block layer after init.

TEST(LinuxInitTrace, BlockLayerReadsAtTheEndOfTheDevice) {
  CardHarness h;
  LinuxHost host(h, HostCaps{});
  ASSERT_NO_FATAL_FAILURE(host.attach());
  const std::uint64_t last = host.linux_card().sectors - 1;
  ASSERT_EQ(last, (8ULL << 30) / 512 - 1);

  // A 4 KiB page ending at the last sector.
  const std::uint64_t first = last - 7;
  const std::vector<std::uint8_t> data = pattern(first, 8, 0x3C);
  const WorkReport work = host.write_sbc(first, data, false);
  EXPECT_EQ(work.sectors_cached + work.sectors_programmed, 8u) << describe_work(work);
  EXPECT_EQ(work.sectors_cached, 8u) << "CACHE_CTRL is on: " << describe_work(work);

  // Open-ended CMD18 + CMD12 up to and including the last sector: no OUT_OF_RANGE.
  CommandOutcome stop;
  EXPECT_EQ(host.read_open_ended(first, 8, &stop), data);
  LinuxHost::expect_r1(stop, CardState::data);
  EXPECT_EQ(stop.response.value & st::kOutOfRange, 0u) << state_text(stop.response.value);
  // Only the last sector.
  const std::vector<std::uint8_t> last_sector(data.end() - kSectorSize, data.end());
  EXPECT_EQ(host.read_open_ended(last, 1, &stop), last_sector);
  LinuxHost::expect_r1(stop, CardState::data);

  // CMD23 + CMD18 of the same ranges.
  EXPECT_EQ(host.read_sbc(first, 8), data);
  EXPECT_EQ(host.read_sbc(last, 1), last_sector);
  const CommandOutcome s = host.send(13, host.rca_arg());
  LinuxHost::expect_r1(s, CardState::tran);

  // The contrast: going one block past the end fails, and then CMD12 reports OUT_OF_RANGE.
  const CommandOutcome o = host.send(18, host.address(last));
  LinuxHost::expect_r1(o, CardState::tran);
  std::vector<std::uint8_t> block(kSectorSize);
  EXPECT_TRUE(h.card().read_block(block.data(), block.size()).ok);
  EXPECT_EQ(block, last_sector);
  EXPECT_FALSE(h.card().read_block(block.data(), block.size()).ok) << "there is no sector after the last";
  const CommandOutcome beyond = host.send(12, 0);
  EXPECT_EQ(beyond.response.type, ResponseType::r1);
  EXPECT_NE(beyond.response.value & st::kOutOfRange, 0u) << state_text(beyond.response.value);
  EXPECT_EQ(h.card().state(), CardState::tran);
  // A CMD23 + CMD18 that would cross the end is refused at once.
  host.send(23, 2);
  const CommandOutcome crossing = host.send(18, host.address(last));
  EXPECT_NE(crossing.response.value & st::kOutOfRange, 0u) << state_text(crossing.response.value);
  EXPECT_EQ(crossing.data.direction, DataDirection::none);
}

TEST(LinuxInitTrace, BlockLayerWritesAndReliableWrite) {
  CardHarness h;
  LinuxHost host(h, HostCaps{});
  ASSERT_NO_FATAL_FAILURE(host.attach());
  const LinuxCard& lc = host.linux_card();

  // A 64 KiB write in the middle of the device, read back both ways and seen on the medium.
  const std::uint64_t first = 0x123400;
  const std::vector<std::uint8_t> data = pattern(first, 128, 0x11);
  const WorkReport work = host.write_sbc(first, data, false);
  EXPECT_EQ(work.sectors_cached + work.sectors_programmed, 128u) << describe_work(work);
  EXPECT_EQ(host.read_sbc(first, 128), data);
  CommandOutcome stop;
  EXPECT_EQ(host.read_open_ended(first, 128, &stop), data);
  LinuxHost::expect_r1(stop, CardState::data);
  std::vector<std::uint8_t> medium(data.size());
  h.image().backend().user->read(first, 128, medium.data());
  EXPECT_EQ(medium, data);
  EXPECT_EQ(host.read_sbc(first - 1, 1), std::vector<std::uint8_t>(kSectorSize, 0)) << "the sector before";
  EXPECT_EQ(host.read_sbc(first + 128, 1), std::vector<std::uint8_t>(kSectorSize, 0)) << "the sector after";

  // REQ_FUA write as mmc_blk issues it: MMC_BLK_REL_WR since rel_sectors > 0; WR_REL_PARAM_EN
  // clear, so mmc_apply_rel_rw() keeps to the legacy rule: with rel_sectors 1, one block per
  // request, still CMD25 (do_rel_wr), CMD23 = 1 | bit 31.
  ASSERT_TRUE((lc.rel_param & kWrRelParamEn) != 0 || lc.rel_sectors > 0) << "no MMC_BLK_REL_WR";
  ASSERT_EQ(lc.rel_param & kWrRelParamEn, 0) << "this replay covers the legacy reliable write";
  ASSERT_EQ(lc.rel_sectors, 1u);
  const std::uint64_t fua = 0x2000;
  const std::vector<std::uint8_t> fua_data = pattern(fua, 2, 0x77);
  for (std::uint32_t i = 0; i < 2; ++i) {
    const std::vector<std::uint8_t> one(fua_data.begin() + std::ptrdiff_t{i} * kSectorSize,
                                        fua_data.begin() + std::ptrdiff_t{i + 1} * kSectorSize);
    const WorkReport rel = host.write_sbc(fua + i, one, true);
    EXPECT_EQ(rel.sectors_programmed, 1u) << "a reliable write reaches the medium: " << describe_work(rel);
    EXPECT_EQ(rel.sectors_cached, 0u) << describe_work(rel);
  }
  const auto& t = host.trace();
  EXPECT_EQ(count_commands(t, 24), 0) << "do_rel_wr uses CMD25 even for one block";
  int reliable_sbc = 0;
  for (const Command& c : t)
    if (c.index == 23 && c.arg == (1u | set_block_count::kReliableWrite)) ++reliable_sbc;
  EXPECT_EQ(reliable_sbc, 2);
  EXPECT_EQ(host.read_sbc(fua, 2), fua_data);
  std::vector<std::uint8_t> fua_medium(fua_data.size());
  h.image().backend().user->read(fua, 2, fua_medium.data());
  EXPECT_EQ(fua_medium, fua_data);

  // A reliable write of two blocks breaks the legacy rule (rel_sectors 1): BLOCK_LEN_ERROR,
  // nothing written — why mmc_apply_rel_rw() splits the request.
  host.send(23, 2u | set_block_count::kReliableWrite);
  const CommandOutcome bad = host.send(25, host.address(0x3000));
  EXPECT_NE(bad.response.value & st::kAnyError, 0u) << state_text(bad.response.value);
  EXPECT_EQ(bad.data.direction, DataDirection::none);
  EXPECT_EQ(h.card().state(), CardState::tran);
}

// ---------------------------------------------------------------------------------------------
// 5. Shutdown, power cycle, init again.

TEST(LinuxInitTrace, PowerCycleAndInitAgain) {
  CardHarness h;
  LinuxHost host(h, HostCaps{});
  ASSERT_NO_FATAL_FAILURE(host.attach());
  const Cid cid = host.linux_card().cid;
  const std::uint64_t last = host.linux_card().sectors - 1;
  const std::vector<std::uint8_t> head = pattern(0, 8, 0x5A);
  const std::vector<std::uint8_t> tail = pattern(last - 3, 4, 0xA5);
  host.write_sbc(0, head, false);
  host.write_sbc(last - 3, tail, false);
  host.write_sbc(100, pattern(100, 1, 0x42), true);

  ASSERT_NO_FATAL_FAILURE(host.mmc_shutdown());
  EXPECT_EQ(h.card().state(), CardState::idle);
  const auto before = host.trace().size();
  ASSERT_NO_FATAL_FAILURE(host.attach());
  EXPECT_EQ(host.trace()[before].index, 0);
  const LinuxCard& lc = host.linux_card();
  EXPECT_EQ(lc.cid, cid) << "the same card (mmc_init_card compares the CID with oldcard)";
  EXPECT_EQ(lc.op_cond_polls, h.card().config().ocr_busy_polls + 1) << "power-up busy again";
  // The EXT_CSD read before any switch: the volatile modes are back to their power-up values.
  EXPECT_EQ(lc.ext_csd[ec::kHsTiming], 0);
  EXPECT_EQ(lc.ext_csd[ec::kBusWidth], 0);
  EXPECT_EQ(lc.ext_csd[ec::kCacheCtrl], 0);
  EXPECT_EQ(lc.ext_csd[ec::kEraseGroupDef], 0);
  EXPECT_EQ(lc.ext_csd[ec::kPowerOffNotification], 0);
  EXPECT_EQ(lc.timing, Timing::hs400);
  // And the data survived.
  EXPECT_EQ(host.read_sbc(0, 8), head);
  EXPECT_EQ(host.read_sbc(last - 3, 4), tail);
  EXPECT_EQ(host.read_sbc(100, 1), pattern(100, 1, 0x42));
  const ExtCsd e = host.mmc_get_ext_csd();
  EXPECT_EQ(e[ec::kHsTiming], kExtCsdTimingHs400);
  EXPECT_EQ(e[ec::kCacheCtrl], 1);
}

TEST(LinuxInitTrace, PowerCycleWithoutShutdownResetsModes) {
  // An unexpected power loss (no flush, no notification): the modes still reset, the identity
  // and the initialised card are the same again.
  CardHarness h;
  LinuxHost host(h, HostCaps{});
  ASSERT_NO_FATAL_FAILURE(host.attach());
  const std::vector<std::uint8_t> data = pattern(4096, 8, 0x99);
  host.write_sbc(4096, data, false);
  h.card().power_cycle();
  EXPECT_EQ(h.card().state(), CardState::idle);
  EXPECT_EQ(h.card().rca(), 0);
  // Addressed commands to the old RCA are illegal in idle.
  const CommandOutcome o = host.send(13, host.rca_arg());
  EXPECT_EQ(o.response.type, ResponseType::none);
  ASSERT_NO_FATAL_FAILURE(host.attach());
  const LinuxCard& lc = host.linux_card();
  EXPECT_EQ(lc.ext_csd[ec::kHsTiming], 0);
  EXPECT_EQ(lc.ext_csd[ec::kBusWidth], 0);
  EXPECT_EQ(lc.ext_csd[ec::kCacheCtrl], 0);
  // The card keeps unflushed cache contents across power_cycle() (card.hpp).
  EXPECT_EQ(host.read_sbc(4096, 8), data);
}

}  // namespace
}  // namespace emmcsim::mmc
