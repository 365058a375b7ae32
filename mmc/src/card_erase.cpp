// mmc::Card: erase, trim, discard, secure erase and secure trim (CMD35, CMD36, CMD38) over
// erase groups or sectors, skipping write-protected groups.
#include "emmcsim/mmc/card.hpp"

#include <algorithm>
#include <utility>

#include "card_internal.hpp"
#include "emmcsim/mmc/protocol.hpp"

namespace emmcsim::mmc {
namespace {

namespace st = status;
namespace ec = ext_csd;

}  // namespace

std::uint64_t Card::erase_group_sectors() const {
  // ERASE_GROUP_DEF = 1 selects the high-capacity sizes; 0 the CSD's legacy 512 KiB group.
  if (ext_csd_[ec::kEraseGroupDef] & ec::erase_group_def::kHighCapacity) return config_.erase_group_size / kSectorSize;
  return 1024;
}

CommandOutcome Card::erase_group_address(const Command& c) {
  if (c.index == cmd::kEraseGroupEnd && erase_stage_ == EraseStage::none) {
    erase_stage_ = EraseStage::none;
    return r1(st::kEraseSeqError);
  }
  std::uint32_t error = 0;
  const auto sector = sector_of(c.arg, error);
  if (error == 0 && *sector >= partition_sectors(partition_)) error |= st::kOutOfRange;
  if (error != 0) {
    erase_stage_ = EraseStage::none;
    return r1(error);
  }
  CommandOutcome o = r1();
  if (c.index == cmd::kEraseGroupStart) {
    erase_start_ = *sector;
    erase_stage_ = EraseStage::start_set;
  } else {
    erase_end_ = *sector;
    erase_stage_ = EraseStage::end_set;
  }
  return o;
}

CommandOutcome Card::erase(const Command& c) {
  if (erase_stage_ != EraseStage::end_set) {
    erase_stage_ = EraseStage::none;
    return r1(st::kEraseSeqError, ResponseType::r1b);
  }
  erase_stage_ = EraseStage::none;
  const std::uint32_t kind = c.arg;
  const bool known = kind == erase_arg::kErase || kind == erase_arg::kTrim || kind == erase_arg::kDiscard ||
                     kind == erase_arg::kSecureErase || kind == erase_arg::kSecureTrimStep1 ||
                     kind == erase_arg::kSecureTrimStep2;
  const bool secure = (kind & erase_arg::kSecureBit) != 0;
  if (!known || (secure && !config_.secure_erase_trim) || erase_start_ > erase_end_)
    return r1(st::kEraseParam, ResponseType::r1b);
  CommandOutcome o = r1(0, ResponseType::r1b);
  std::uint32_t status_bits = 0;
  if (kind == erase_arg::kSecureTrimStep1) {
    secure_trim_marked_.push_back({partition_, {erase_start_, erase_end_}});
    o.work.nonvolatile_updates += 1;  // the marks are kept in the device until step 2
  } else if (kind == erase_arg::kSecureTrimStep2) {
    const auto marked = std::move(secure_trim_marked_);
    secure_trim_marked_.clear();
    for (const auto& [p, range] : marked)
      erase_range(p, range.first, range.second, erase_arg::kTrim, o.work, status_bits);
  } else {
    erase_range(partition_, erase_start_, erase_end_, kind, o.work, status_bits);
  }
  // WP_ERASE_SKIP is found while erasing: the next response carries it.
  pending_status_ |= status_bits;
  enter_busy(o);
  return o;
}

void Card::erase_range(Partition p, std::uint64_t first, std::uint64_t last, std::uint32_t kind, WorkReport& work,
                       std::uint32_t& status_bits) {
  BlockStorage* s = storage(p);
  if (s == nullptr) return;
  const bool whole_groups = kind == erase_arg::kErase || kind == erase_arg::kSecureErase;
  const std::uint64_t unit = whole_groups ? erase_group_sectors() : 1;
  std::uint64_t begin = first / unit * unit;
  const std::uint64_t end = std::min<std::uint64_t>((last / unit + 1) * unit, partition_sectors(p));
  if (boot_write_protected(p)) {
    status_bits |= st::kWpEraseSkip;
    return;
  }
  // Erase what is not write protected, one write-protect group (or less) at a time.
  const std::uint64_t wp_unit = wp_group_sectors();
  try {
    while (begin < end) {
      const std::uint64_t group_end = std::min(end, (begin / wp_unit + 1) * wp_unit);
      if (write_protected(p, begin)) {
        status_bits |= st::kWpEraseSkip;
      } else {
        s->erase(begin, group_end - begin);
        if (whole_groups)
          work.erase_groups += card_detail::sectors_u32((group_end - begin + unit - 1) / unit);
        else
          work.sectors_trimmed += card_detail::sectors_u32(group_end - begin);
      }
      begin = group_end;
    }
  } catch (const StorageError&) {
    status_bits |= st::kError;
  }
}

}  // namespace emmcsim::mmc
