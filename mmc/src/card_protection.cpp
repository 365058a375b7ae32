// mmc::Card: write protection — write-protect groups (temporary, power-on, permanent; CMD28 to
// CMD31, USER_WP), boot-area protection (BOOT_WP, BOOT_WP_STATUS) — and CMD42 LOCK_UNLOCK
// (password, lock, forced erase).
#include "emmcsim/mmc/card.hpp"

#include <algorithm>
#include <cstddef>
#include <utility>

#include "card_internal.hpp"
#include "emmcsim/mmc/protocol.hpp"

namespace emmcsim::mmc {
namespace {

namespace st = status;
namespace ec = ext_csd;

}  // namespace

std::uint64_t Card::wp_group_sectors() const {
  if (ext_csd_[ec::kEraseGroupDef] & ec::erase_group_def::kHighCapacity)
    return config_.write_protect_group_bytes() / kSectorSize;
  // The CSD's WP_GRP_SIZE in legacy erase groups of 512 KiB (1024 sectors).
  return 1024ULL * std::min<std::uint32_t>(config_.write_protect_group_size, 32);
}

bool Card::write_protected(Partition p, std::uint64_t sector) const {
  const auto group = static_cast<std::uint32_t>(sector / wp_group_sectors());
  auto in = [&](const std::map<Partition, std::set<std::uint32_t>>& groups) {
    auto it = groups.find(p);
    return it != groups.end() && it->second.count(group) != 0;
  };
  return in(nonvolatile_.temporary_wp_groups) || in(nonvolatile_.permanent_wp_groups) || in(power_on_wp_groups_);
}

bool Card::boot_write_protected(Partition p) const {
  if (!is_boot(p)) return false;
  namespace bws = ec::boot_wp_status;
  const unsigned shift = bws::shift(p == Partition::boot1 ? 0 : 1);
  return ((nonvolatile_.boot_wp_status_permanent >> shift) & bws::kAreaMask) != bws::kNotProtected ||
         ((boot_wp_status_power_on_ >> shift) & bws::kAreaMask) != bws::kNotProtected;
}

void Card::apply_boot_wp(std::uint8_t value) {
  namespace bwp = ec::boot_wp;
  namespace bws = ec::boot_wp_status;
  // The boot areas a protection applies to: both, or with B_SEC_WP_SEL the one its
  // second-area bit names.
  const bool select = (value & bwp::kSectionSelect) != 0;
  auto protect = [&](std::uint8_t second_area_bit, std::uint8_t kind, std::uint8_t& status) {
    for (unsigned area = 0; area < 2; ++area) {
      const bool second = (value & second_area_bit) != 0;
      if (!select || second == (area == 1)) status = static_cast<std::uint8_t>(status | kind << bws::shift(area));
    }
  };
  if (value & bwp::kPermanentWpEnable)
    protect(bwp::kPermanentWpSecondArea, bws::kPermanent, nonvolatile_.boot_wp_status_permanent);
  if (value & bwp::kPowerOnWpEnable) protect(bwp::kPowerOnWpSecondArea, bws::kPowerOn, boot_wp_status_power_on_);
  // Disable bits stick; enable bits read back as written.
  ext_csd_[ec::kBootWp] = static_cast<std::uint8_t>(ext_csd_[ec::kBootWp] | value);
  nonvolatile_.boot_wp_permanent = ext_csd_[ec::kBootWp] & card_detail::kBootWpPermanentBits;
}

CommandOutcome Card::set_clear_write_prot(const Command& c) {
  std::uint32_t error = 0;
  const auto sector = sector_of(c.arg, error);
  if (error == 0 && *sector >= partition_sectors(partition_)) error |= st::kOutOfRange;
  if (error != 0) return r1(error, ResponseType::r1b);
  CommandOutcome o = r1(0, ResponseType::r1b);
  const auto group = static_cast<std::uint32_t>(*sector / wp_group_sectors());
  const std::uint8_t user_wp = ext_csd_[ec::kUserWp];
  if (c.index == cmd::kSetWriteProt) {
    if (user_wp & ec::user_wp::kPermanentWpEnable) {
      nonvolatile_.permanent_wp_groups[partition_].insert(group);
      save_nonvolatile(o.work);
    } else if (user_wp & ec::user_wp::kPowerOnWpEnable) {
      power_on_wp_groups_[partition_].insert(group);
    } else {
      nonvolatile_.temporary_wp_groups[partition_].insert(group);
      save_nonvolatile(o.work);
    }
  } else {
    // CMD29 clears temporary protection only; power-on and permanent protection stay.
    auto it = nonvolatile_.temporary_wp_groups.find(partition_);
    if (it != nonvolatile_.temporary_wp_groups.end() && it->second.erase(group) != 0) {
      if (it->second.empty()) nonvolatile_.temporary_wp_groups.erase(it);
      save_nonvolatile(o.work);
    }
  }
  enter_busy(o);
  return o;
}

CommandOutcome Card::send_write_prot(const Command& c) {
  std::uint32_t error = 0;
  const auto sector = sector_of(c.arg, error);
  const std::uint64_t size = partition_sectors(partition_);
  if (error == 0 && *sector >= size) error |= st::kOutOfRange;
  if (error != 0) return r1(error);
  const std::uint64_t group_sectors = wp_group_sectors();
  const auto first = static_cast<std::uint32_t>(*sector / group_sectors);
  const auto groups_total = static_cast<std::uint32_t>((size + group_sectors - 1) / group_sectors);
  auto type_of = [&](std::uint32_t group) -> std::uint8_t {
    auto in = [&](const std::map<Partition, std::set<std::uint32_t>>& m) {
      auto it = m.find(partition_);
      return it != m.end() && it->second.count(group) != 0;
    };
    if (group >= groups_total) return write_protect_type::kNone;
    if (in(nonvolatile_.permanent_wp_groups)) return write_protect_type::kPermanent;
    if (in(power_on_wp_groups_)) return write_protect_type::kPowerOn;
    if (in(nonvolatile_.temporary_wp_groups)) return write_protect_type::kTemporary;
    return write_protect_type::kNone;
  };
  std::vector<std::uint8_t> bytes;
  if (c.index == cmd::kSendWriteProt) {
    // 32 bits, MSB first; bit 0 (last on the bus) is the addressed group.
    std::uint32_t bits = 0;
    for (std::uint32_t i = 0; i < 32; ++i)
      if (type_of(first + i) != write_protect_type::kNone) bits |= 1u << i;
    bytes = {static_cast<std::uint8_t>(bits >> 24), static_cast<std::uint8_t>(bits >> 16),
             static_cast<std::uint8_t>(bits >> 8), static_cast<std::uint8_t>(bits)};
  } else {
    // 64 bits, two per group; bits [1:0] (last on the bus) are the addressed group.
    std::uint64_t bits = 0;
    for (std::uint32_t i = 0; i < 32; ++i) bits |= static_cast<std::uint64_t>(type_of(first + i)) << (2 * i);
    for (int i = 0; i < 8; ++i) bytes.push_back(static_cast<std::uint8_t>(bits >> (56 - 8 * i)));
  }
  return send_bytes(std::move(bytes));
}

// ---------------------------------------------------------------------------------------------
// CMD42 LOCK_UNLOCK: password and lock

CommandOutcome Card::lock_unlock(const Command&) {
  CommandOutcome o = r1();
  open_transfer(TransferKind::lock_unlock, block_length_, 1, o);
  return o;
}

void Card::finish_lock_unlock(WorkReport& work) {
  const std::vector<std::uint8_t> block = std::move(transfer_.buffer);
  end_transfer();
  const std::uint8_t flags = block.empty() ? 0 : block[0];
  const std::size_t length = block.size() > 1 ? block[1] : 0;
  auto fail = [this] { pending_status_ |= st::kLockUnlockFailed; };
  namespace lu = lock_unlock;
  if (length + 2 > block.size() && flags != lu::kForceErase) return fail();
  const std::vector<std::uint8_t> given(block.begin() + 2, block.begin() + 2 + std::min(length, block.size() - 2));
  std::vector<std::uint8_t>& password = nonvolatile_.password;

  if (flags == lu::kForceErase) {
    // Forced erase: only a locked card; everything user data goes, with the password.
    if (!locked_) return fail();
    if (backend_.user != nullptr) {
      std::uint32_t ignored = 0;
      const auto saved = std::exchange(nonvolatile_.temporary_wp_groups, {});
      erase_range(Partition::user, 0, partition_sectors(Partition::user) - 1, erase_arg::kErase, work, ignored);
      nonvolatile_.temporary_wp_groups = saved;
    }
    password.clear();
    locked_ = false;
    save_nonvolatile(work);
    return;
  }
  // ERASE must be the only bit set; combined with others the request is rejected.
  if (flags & lu::kForceErase) return fail();
  if ((flags & lu::kSetPassword) && (flags & lu::kClearPassword)) return fail();
  if (flags & lu::kClearPassword) {
    if (password.empty() || given != password) return fail();
    password.clear();
    locked_ = false;
    save_nonvolatile(work);
    return;
  }
  if (flags & lu::kSetPassword) {
    // With a password set, the data carries the old one followed by the new one.
    if (given.size() < password.size() || !std::equal(password.begin(), password.end(), given.begin())) return fail();
    std::vector<std::uint8_t> replacement(given.begin() + static_cast<std::ptrdiff_t>(password.size()), given.end());
    if (replacement.empty() || replacement.size() > lu::kMaxPasswordLength) return fail();
    password = std::move(replacement);
    if (flags & lu::kLock) locked_ = true;
    save_nonvolatile(work);
    return;
  }
  if (password.empty() || given != password) return fail();
  const bool lock = (flags & lu::kLock) != 0;
  if (!lock && !locked_) return fail();  // unlocking an unlocked device fails (JESD84-B51 §6.6.35)
  locked_ = lock;
}

}  // namespace emmcsim::mmc
