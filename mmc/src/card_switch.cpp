// mmc::Card: CMD6 SWITCH and the EXT_CSD modes segment — the access modes, which fields this
// device lets a host write and which values it accepts, and their side effects (partition
// switches, cache flushes, boot write protection, stored boot configuration); EXT_CSD as CMD8
// sends it.
#include "emmcsim/mmc/card.hpp"

#include "emmcsim/mmc/protocol.hpp"

namespace emmcsim::mmc {
namespace {

namespace st = status;
namespace ec = ext_csd;

}  // namespace

ExtCsd Card::ext_csd() const {
  ExtCsd current = ext_csd_;
  const auto& device_config = rpmb_engine_->device_configuration();
  // SECURE_WP_INFO: bit 0 SECURE_WP_SUPPORT, bit 1 SECURE_WP_EN_STATUS, bit 2 SECURE_WP_MASK_STATUS.
  current[ec::kSecureWpInfo] = static_cast<std::uint8_t>(0x01 | ((device_config.secure_wp_mode_enable & 1) << 1) |
                                                         ((device_config.secure_wp_mode_config & 1) << 2));
  // BOOT_WP_STATUS: permanent protection, else power-on protection, per boot area.
  namespace bws = ec::boot_wp_status;
  std::uint8_t& boot_wp_status = current[ec::kBootWpStatus];
  boot_wp_status = nonvolatile_.boot_wp_status_permanent;
  for (unsigned area = 0; area < 2; ++area) {
    const unsigned shift = bws::shift(area);
    if (((boot_wp_status >> shift) & bws::kAreaMask) == bws::kNotProtected &&
        ((boot_wp_status_power_on_ >> shift) & bws::kAreaMask) != bws::kNotProtected)
      boot_wp_status = static_cast<std::uint8_t>(boot_wp_status | bws::kPowerOn << shift);
  }
  return current;
}

CommandOutcome Card::switch_ext_csd(const Command& c) {
  const SwitchAccess access = switch_access(c.arg);
  const std::uint8_t index = switch_index(c.arg);
  const std::uint8_t value = switch_value(c.arg);
  CommandOutcome o = r1(0, ResponseType::r1b);
  std::uint32_t error = 0;
  if (access == SwitchAccess::command_set) {
    // Only the standard command set (0) exists on this device.
    if (switch_command_set(c.arg) != 0) error = st::kSwitchError;
  } else if (index >= ec::kPropertiesSegment) {
    error = st::kSwitchError;  // the properties segment is read-only
  } else {
    const std::uint8_t old = ext_csd_[index];
    std::uint8_t next = value;
    if (access == SwitchAccess::set_bits)
      next = old | value;
    else if (access == SwitchAccess::clear_bits)
      next = old & static_cast<std::uint8_t>(~value);
    error = apply_switch(index, next, o.work);
  }
  // SWITCH_ERROR is found during execution: the next response (CMD13) reports it.
  pending_status_ |= error;
  enter_busy(o);
  return o;
}

// Validates a new value of a modes-segment field and applies it; returns SWITCH_ERROR when the
// field is not writable or the value not allowed (the register is then unchanged).
std::uint32_t Card::apply_switch(std::uint8_t index, std::uint8_t value, WorkReport& work) {
  const auto reject = st::kSwitchError;
  const std::uint8_t device_type = ext_csd_[ec::kDeviceType];
  switch (index) {
    case ec::kCmdqModeEn:
      if (value > 1 || (value == 1 && config_.command_queue_depth == 0)) return reject;
      break;
    case ec::kFlushCache:
      if (value != ec::flush_cache::kFlush) return reject;  // barriers are not supported
      flush_cache(work);
      return 0;  // FLUSH_CACHE reads back as 0
    case ec::kCacheCtrl:
      if (value > ec::cache_ctrl::kOn || (value == ec::cache_ctrl::kOn && config_.cache_size == 0)) return reject;
      if (value == ec::cache_ctrl::kOff && ext_csd_[ec::kCacheCtrl] == ec::cache_ctrl::kOn) {
        // Dirty data is flushed first; a clean cache is simply turned off (the files are still
        // synced, which costs no simulated time).
        if (dirty_cached_sectors_ != 0)
          flush_cache(work);
        else
          sync_storage();
      }
      break;
    case ec::kPowerOffNotification:
      if (value > ec::power_off_notification::kSleepNotification) return reject;
      break;
    case ec::kUserWp:
      if ((value & ec::user_wp::kReserved) != 0) return reject;
      break;
    case ec::kBootWp: {
      namespace bwp = ec::boot_wp;
      if (config_.boot_partition_size == 0 || (value & bwp::kReserved) != 0) return reject;
      if ((value & bwp::kPowerOnWpEnable) && (ext_csd_[ec::kBootWp] & bwp::kPowerOnWpDisable)) return reject;
      if ((value & bwp::kPermanentWpEnable) && (ext_csd_[ec::kBootWp] & bwp::kPermanentWpDisable)) return reject;
      apply_boot_wp(value);
      work.ext_csd_writes += 1;
      if (value & (bwp::kPermanentWpEnable | bwp::kPermanentWpDisable)) save_nonvolatile(work);
      return 0;
    }
    case ec::kEraseGroupDef:
      if ((value & ~ec::erase_group_def::kHighCapacity) != 0) return reject;
      break;
    case ec::kBootBusConditions:
      // [1:0] BOOT_BUS_WIDTH and [4:3] BOOT_MODE (3 is reserved in both), bit 2
      // RESET_BOOT_BUS_CONDITIONS, [7:5] reserved.
      if ((value & 0xE0) != 0 || (value & 3) == 3 || ((value >> 3) & 3) == 3) return reject;
      ext_csd_[index] = value;
      nonvolatile_.boot_bus_conditions = value;
      work.ext_csd_writes += 1;
      save_nonvolatile(work);
      return 0;
    case ec::kPartitionConfig: {
      namespace pc = ec::partition_config;
      const auto target = partition_from_access(pc::access_of(value));
      const std::uint8_t boot_enable = pc::boot_enable_of(value);
      if ((value & pc::kReserved) != 0 || !target || partition_sectors(*target) == 0) return reject;
      if (boot_enable != pc::kBootDisabled && boot_enable != pc::kBootFromBoot1 && boot_enable != pc::kBootFromBoot2 &&
          boot_enable != pc::kBootFromUser)
        return reject;
      if (*target != partition_) {
        partition_ = *target;
        work.partition_switches += 1;
      }
      // Boot enable and boot acknowledge are stored; the access is volatile.
      const auto boot_bits = static_cast<std::uint8_t>(value & (pc::kBootEnableMask | pc::kBootAck));
      ext_csd_[index] = value;
      work.ext_csd_writes += 1;
      if (boot_bits != nonvolatile_.partition_config_boot) {
        nonvolatile_.partition_config_boot = boot_bits;
        save_nonvolatile(work);
      }
      return 0;
    }
    case ec::kBusWidth: {
      namespace bw = ec::bus_width;
      // Everything but the strobe bit: a reserved bit set makes the width unknown.
      const auto width = static_cast<std::uint8_t>(value & ~bw::kEnhancedStrobe);
      const bool strobe = (value & bw::kEnhancedStrobe) != 0;
      if (width != bw::k1Bit && width != bw::k4Bit && width != bw::k8Bit && width != bw::k4BitDdr &&
          width != bw::k8BitDdr)
        return reject;
      if ((width == bw::k4BitDdr || width == bw::k8BitDdr) && !config_.bus_modes.ddr52 && !config_.bus_modes.hs400)
        return reject;
      if (strobe && (width != bw::k8BitDdr || !config_.bus_modes.enhanced_strobe)) return reject;
      break;
    }
    case ec::kHsTiming: {
      namespace bw = ec::bus_width;
      namespace hs = ec::hs_timing;
      const std::uint8_t timing = hs::timing_of(value);
      const std::uint8_t strength = hs::driver_strength_of(value);
      const auto width = static_cast<std::uint8_t>(ext_csd_[ec::kBusWidth] & ~bw::kEnhancedStrobe);
      // High-speed timing at up to 26 or 52 MHz, whichever DEVICE_TYPE offers.
      if (timing == hs::kHighSpeed && !(device_type & (ec::kDeviceTypeHs26 | ec::kDeviceTypeHs52))) return reject;
      if (timing == hs::kHs200 && (!(device_type & ec::kDeviceTypeHs200) || (width != bw::k4Bit && width != bw::k8Bit)))
        return reject;  // HS200 runs on a 4- or 8-bit SDR bus
      if (timing == hs::kHs400 && (!(device_type & ec::kDeviceTypeHs400) || width != bw::k8BitDdr))
        return reject;  // HS400 needs the 8-bit DDR bus selected first
      if (timing > hs::kHs400) return reject;
      if (strength > 4) return reject;  // driver strength types 0..4
      if (timing != hs::kBackwardCompatible && strength != 0 && !(ext_csd_[ec::kDriverStrength] & (1u << strength)))
        return reject;
      break;
    }
    case ec::kPowerClass:
      if ((value & 0xF0) != 0) return reject;  // [3:0] the class; [7:4] reserved
      break;
    default: return reject;  // reserved, one-time programmable or read-only in this device
  }
  ext_csd_[index] = value;
  work.ext_csd_writes += 1;
  return 0;
}

void Card::flush_cache(WorkReport& work) {
  work.cache_flushes += 1;
  work.sectors_programmed += dirty_cached_sectors_;
  dirty_cached_sectors_ = 0;
  sync_storage();
}

void Card::sync_storage() {
  auto flush = [](BlockStorage* s) {
    if (s != nullptr) s->flush();
  };
  try {
    flush(backend_.user);
    for (BlockStorage* s : backend_.boot) flush(s);
    for (BlockStorage* s : backend_.general_purpose) flush(s);
  } catch (const StorageError&) {
    pending_status_ |= st::kError;
  }
}

}  // namespace emmcsim::mmc
