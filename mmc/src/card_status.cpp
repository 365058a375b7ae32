#include "emmcsim/mmc/card_status.hpp"

#include <fmt/format.h>

#include <iterator>

#include "emmcsim/mmc/command.hpp"

namespace emmcsim::mmc {

std::string_view card_state_name(CardState s) {
  switch (s) {
    case CardState::idle: return "idle";
    case CardState::ready: return "ready";
    case CardState::ident: return "ident";
    case CardState::stby: return "stby";
    case CardState::tran: return "tran";
    case CardState::data: return "data";
    case CardState::rcv: return "rcv";
    case CardState::prg: return "prg";
    case CardState::dis: return "dis";
    case CardState::btst: return "btst";
    case CardState::slp: return "slp";
    case CardState::inactive: return "inactive";
    case CardState::pre_idle: return "pre-idle";
    case CardState::boot: return "boot";
  }
  return "unknown";
}

std::string describe_status(std::uint32_t r1) {
  struct Named {
    std::uint32_t bit;
    const char* name;
  };
  static constexpr Named kBits[] = {
      {status::kOutOfRange, "OUT_OF_RANGE"},
      {status::kAddressMisalign, "ADDRESS_MISALIGN"},
      {status::kBlockLenError, "BLOCK_LEN_ERROR"},
      {status::kEraseSeqError, "ERASE_SEQ_ERROR"},
      {status::kEraseParam, "ERASE_PARAM"},
      {status::kWpViolation, "WP_VIOLATION"},
      {status::kCardIsLocked, "CARD_IS_LOCKED"},
      {status::kLockUnlockFailed, "LOCK_UNLOCK_FAILED"},
      {status::kComCrcError, "COM_CRC_ERROR"},
      {status::kIllegalCommand, "ILLEGAL_COMMAND"},
      {status::kCardEccFailed, "CARD_ECC_FAILED"},
      {status::kCcError, "CC_ERROR"},
      {status::kError, "ERROR"},
      {status::kCidCsdOverwrite, "CID/CSD_OVERWRITE"},
      {status::kWpEraseSkip, "WP_ERASE_SKIP"},
      {status::kEraseReset, "ERASE_RESET"},
      {status::kReadyForData, "READY_FOR_DATA"},
      {status::kSwitchError, "SWITCH_ERROR"},
      {status::kExceptionEvent, "EXCEPTION_EVENT"},
      {status::kAppCmd, "APP_CMD"},
  };
  std::string text;
  for (const Named& n : kBits) {
    if ((r1 & n.bit) == 0) continue;
    if (!text.empty()) text += " | ";
    text += n.name;
  }
  if (!text.empty()) text += " | ";
  text += fmt::format("state={}", card_state_name(static_cast<CardState>(status::current_state(r1))));
  return text;
}

WorkReport& WorkReport::operator+=(const WorkReport& o) {
  sectors_read += o.sectors_read;
  sectors_programmed += o.sectors_programmed;
  sectors_cached += o.sectors_cached;
  erase_groups += o.erase_groups;
  sectors_trimmed += o.sectors_trimmed;
  hmac_frames += o.hmac_frames;
  rpmb_commits += o.rpmb_commits;
  ext_csd_writes += o.ext_csd_writes;
  partition_switches += o.partition_switches;
  cache_flushes += o.cache_flushes;
  sleep_transitions += o.sleep_transitions;
  nonvolatile_updates += o.nonvolatile_updates;
  return *this;
}

bool operator==(const WorkReport& a, const WorkReport& b) {
  return a.sectors_read == b.sectors_read && a.sectors_programmed == b.sectors_programmed &&
         a.sectors_cached == b.sectors_cached && a.erase_groups == b.erase_groups &&
         a.sectors_trimmed == b.sectors_trimmed && a.hmac_frames == b.hmac_frames && a.rpmb_commits == b.rpmb_commits &&
         a.ext_csd_writes == b.ext_csd_writes && a.partition_switches == b.partition_switches &&
         a.cache_flushes == b.cache_flushes && a.sleep_transitions == b.sleep_transitions &&
         a.nonvolatile_updates == b.nonvolatile_updates;
}

bool WorkReport::empty() const { return *this == WorkReport{}; }

std::string describe_work(const WorkReport& w) {
  const std::pair<const char*, std::uint32_t> fields[] = {
      {"sectors_read", w.sectors_read},
      {"sectors_programmed", w.sectors_programmed},
      {"sectors_cached", w.sectors_cached},
      {"erase_groups", w.erase_groups},
      {"sectors_trimmed", w.sectors_trimmed},
      {"hmac_frames", w.hmac_frames},
      {"rpmb_commits", w.rpmb_commits},
      {"ext_csd_writes", w.ext_csd_writes},
      {"partition_switches", w.partition_switches},
      {"cache_flushes", w.cache_flushes},
      {"sleep_transitions", w.sleep_transitions},
      {"nonvolatile_updates", w.nonvolatile_updates},
  };
  std::string text;
  for (const auto& [name, value] : fields) {
    if (value == 0) continue;
    if (!text.empty()) text += ' ';
    text += fmt::format("{}={}", name, value);
  }
  return text.empty() ? "none" : text;
}

}  // namespace emmcsim::mmc
