#include "image_command.hpp"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "emmcsim/mmc/device_config.hpp"
#include "emmcsim/mmc/image.hpp"
#include "emmcsim/mmc/nonvolatile_state.hpp"
#include "emmcsim/mmc/partition.hpp"
#include "emmcsim/mmc/registers.hpp"

namespace emmcsim::tools {
namespace {

using namespace emmcsim::mmc;

struct Options {
  std::string image_dir;
  std::string config_file;  // empty: the embedded default
  std::string user_image;   // empty: a new sparse user.img
  bool json = false;
};

const char* yes_no(bool value) { return value ? "yes" : "no"; }

// The JEDEC version an EXT_CSD_REV stands for (JESD84-B51 EXT_CSD[192]).
std::string emmc_version(std::uint8_t ext_csd_rev) {
  switch (ext_csd_rev) {
    case 0: return "MMC 4.0";
    case 1: return "MMC 4.1";
    case 2: return "MMC 4.2";
    case 3: return "MMC 4.3";
    case 5: return "eMMC 4.41";
    case 6: return "eMMC 4.5";
    case 7: return "eMMC 5.0";
    case 8: return "eMMC 5.1";
    default: return "unknown";
  }
}

// The EXT_CSD_REV the card built from `config` reports.
std::uint8_t ext_csd_rev_of(const DeviceConfig& config) { return build_ext_csd(config)[ext_csd::kExtCsdRev]; }

std::string bus_mode_list(const BusModes& modes) {
  std::vector<std::string> names;
  if (modes.hs26) names.push_back("HS26");
  if (modes.hs52) names.push_back("HS52");
  if (modes.ddr52) names.push_back("DDR52");
  if (modes.hs200) names.push_back("HS200");
  if (modes.hs400) names.push_back("HS400");
  if (modes.enhanced_strobe) names.push_back("HS400-enhanced-strobe");
  return names.empty() ? "none" : fmt::format("{}", fmt::join(names, " "));
}

const char* card_type_name(std::uint8_t cbx) {
  switch (cbx) {
    case 0: return "removable";
    case 1: return "BGA";
    case 2: return "POP";
    default: return "reserved";
  }
}

std::size_t group_count(const std::map<Partition, std::set<std::uint32_t>>& groups) {
  std::size_t count = 0;
  for (const auto& entry : groups) count += entry.second.size();
  return count;
}

std::string group_summary(const std::map<Partition, std::set<std::uint32_t>>& groups) {
  std::vector<std::string> parts;
  for (const auto& [partition, indices] : groups) {
    if (!indices.empty()) parts.push_back(fmt::format("{} {}", partition_name(partition), indices.size()));
  }
  return parts.empty() ? "none" : fmt::format("{}", fmt::join(parts, ", "));
}

// The partitions the image has, in the order a host lists them, with their sizes.
std::vector<std::pair<Partition, std::uint64_t>> partitions_of(const DeviceConfig& config) {
  std::vector<std::pair<Partition, std::uint64_t>> list{{Partition::user, config.user_capacity}};
  if (config.boot_partition_size > 0) {
    list.emplace_back(Partition::boot1, config.boot_partition_size);
    list.emplace_back(Partition::boot2, config.boot_partition_size);
  }
  list.emplace_back(Partition::rpmb, config.rpmb_size);
  for (std::size_t i = 0; i < config.general_purpose_partitions.size(); ++i) {
    list.emplace_back(static_cast<Partition>(static_cast<int>(Partition::gp1) + static_cast<int>(i)),
                      config.general_purpose_partitions[i]);
  }
  return list;
}

// Where user.img points when it adopts an existing raw image; empty for a file of its own.
std::string user_link_target(const std::string& dir) {
  std::error_code ec;
  const auto path = std::filesystem::path(dir) / Image::kUserFile;
  if (!std::filesystem::is_symlink(path, ec)) return {};
  return std::filesystem::read_symlink(path, ec).string();
}

int run_create(const Options& o) {
  const DeviceConfig config = o.config_file.empty() ? default_device_config() : read_config_file(o.config_file);
  ImageCreateOptions create_options;
  create_options.existing_user_image = o.user_image;
  const auto image = Image::create(o.image_dir, config, create_options);
  const DeviceConfig& made = image->config();
  fmt::print("created image {}\n", image->directory());
  for (const auto& [partition, size] : partitions_of(made)) {
    fmt::print("  {:<6} {:>10}  {}\n", partition_name(partition), describe_size(size), Image::file_name(partition));
  }
  if (!o.user_image.empty()) fmt::print("  user.img links to {}\n", user_link_target(image->directory()));
  return 0;
}

// One "label  value" line of the readable summary.
template <typename... Args>
void field(const char* label, fmt::format_string<Args...> format, Args&&... args) {
  fmt::print("{:<20}{}\n", label, fmt::format(format, std::forward<Args>(args)...));
}

constexpr const char* kInUseNote = "yes: another process (a running emmcsim) holds the image; these values may change";

void print_info_text(const ImageInfo& info) {
  const DeviceConfig& c = info.config;
  const rpmb::PartitionState& rpmb_state = info.rpmb;
  const NonvolatileState& state = info.nonvolatile;
  const CidConfig& cid = c.cid;
  const std::uint8_t rev = ext_csd_rev_of(c);
  field("image", "{}", info.directory);
  if (info.in_use) field("in use", "{}", kInUseNote);
  field("version", "{} (EXT_CSD_REV {})", emmc_version(rev), rev);
  field("capacity", "{} ({} bytes, {} sectors), {} addressing", describe_size(c.user_capacity), c.user_capacity,
        c.user_capacity / kSectorSize, c.sector_addressing() ? "sector (above 2 GiB)" : "byte (2 GiB or less)");
  fmt::print("partitions\n");
  const std::string link = user_link_target(info.directory);
  for (const auto& [partition, size] : partitions_of(c)) {
    const std::string target = partition == Partition::user && !link.empty() ? " -> " + link : "";
    fmt::print("  {:<6} {:>10}  {}{}\n", partition_name(partition), describe_size(size), Image::file_name(partition),
               target);
  }
  field("CID", "MID 0x{:02X}, OID 0x{:02X}, PNM \"{}\", PRV {}.{}, PSN 0x{:08X}, MDT {:02}/{}, CBX {} ({})",
        cid.manufacturer_id, cid.oem_id, cid.product_name, cid.product_revision >> 4, cid.product_revision & 0xF,
        cid.serial, cid.manufacturing_month, cid.manufacturing_year, cid.device_type, card_type_name(cid.device_type));
  field("bus modes", "{}", bus_mode_list(c.bus_modes));
  field("REL_WR_SEC_C", "{} sector(s) per reliable write", c.reliable_write_sectors);
  field("EN_RPMB_REL_WR", "{} (32-frame RPMB writes {})", yes_no(c.en_rpmb_rel_wr),
        c.en_rpmb_rel_wr ? "allowed" : "refused");
  field("cache", "{}", c.cache_size == 0 ? std::string("none") : describe_size(c.cache_size));
  field("erase group", "{}", describe_size(c.erase_group_size));
  field("write-protect group", "{} ({} erase group(s))", describe_size(c.write_protect_group_bytes()),
        c.write_protect_group_size);
  field("secure erase/trim", "{}", yes_no(c.secure_erase_trim));
  field("command queue", "{}",
        c.command_queue_depth == 0 ? std::string("none") : fmt::format("depth {}", c.command_queue_depth));
  field("RPMB key", "{}", rpmb_state.key_programmed ? "programmed" : "not programmed");
  field("RPMB write counter", "{}{}", rpmb_state.write_counter, rpmb_state.counter_expired() ? " (expired)" : "");
  field("password (CMD42)", "{}", state.password.empty() ? "not set" : "set");
  field("write protection", "temporary: {}; permanent: {}", group_summary(state.temporary_wp_groups),
        group_summary(state.permanent_wp_groups));
}

void print_info_json(const ImageInfo& info) {
  const DeviceConfig& c = info.config;
  const rpmb::PartitionState& rpmb_state = info.rpmb;
  const NonvolatileState& state = info.nonvolatile;
  const std::uint8_t rev = ext_csd_rev_of(c);
  nlohmann::ordered_json out;
  out["directory"] = info.directory;
  out["in_use"] = info.in_use;
  out["version"] = {{"name", emmc_version(rev)}, {"ext_csd_rev", rev}};
  out["config"] = nlohmann::ordered_json::parse(to_json(c));
  out["sector_addressing"] = c.sector_addressing();
  nlohmann::ordered_json partitions = nlohmann::ordered_json::array();
  const std::string link = user_link_target(info.directory);
  for (const auto& [partition, size] : partitions_of(c)) {
    nlohmann::ordered_json entry;
    entry["name"] = std::string(partition_name(partition));
    entry["bytes"] = size;
    entry["file"] = Image::file_name(partition);
    if (partition == Partition::user && !link.empty()) entry["links_to"] = link;
    partitions.push_back(entry);
  }
  out["partitions"] = partitions;
  // The key itself never leaves the store; only whether there is one.
  out["rpmb"] = {{"key_programmed", rpmb_state.key_programmed},
                 {"write_counter", rpmb_state.write_counter},
                 {"counter_expired", rpmb_state.counter_expired()}};
  out["password_set"] = !state.password.empty();
  out["temporary_wp_groups"] = group_count(state.temporary_wp_groups);
  out["permanent_wp_groups"] = group_count(state.permanent_wp_groups);
  std::cout << out.dump(2) << "\n";
}

// Reads the image without locking it: it works on an image `emmcsim serve` is serving.
int run_info(const Options& o) {
  const ImageInfo info = Image::inspect(o.image_dir);
  if (o.json) {
    print_info_json(info);
  } else {
    print_info_text(info);
  }
  return 0;
}

int run_default_config() {
  std::string text = to_json(default_device_config());
  if (text.empty() || text.back() != '\n') text += '\n';
  std::cout << text;
  return 0;
}

}  // namespace

void add_image_command(CLI::App& app, Command& selected) {
  auto options = std::make_shared<Options>();
  CLI::App* image = app.add_subcommand(
      "image",
      "Create and inspect image directories. An image is a directory holding device.json (the device "
      "configuration), user.img, boot0.img/boot1.img, gp1.img..gp4.img (sparse files, one per "
      "partition), rpmb.img (the RPMB store) and, once set, state.json (password, write protection).");
  image->require_subcommand(1);

  auto* create = image->add_subcommand(
      "create",
      "Create a new image directory (it must not exist or be empty). Without --config the embedded "
      "default is used: an 8 GiB eMMC 5.1 with 2 x 4 MiB boot partitions and 4 MiB RPMB.");
  create->add_option("DIR", options->image_dir, "Image directory to create")->required();
  create->add_option("--config", options->config_file,
                     "Device configuration (JSON); fields left out keep their default. "
                     "Start from `emmcsim image default-config`");
  create->add_option("--user-image", options->user_image,
                     "Use this existing raw disk image as the user area: user.img becomes a symlink to it "
                     "and the user capacity becomes its size (a multiple of 512 KiB)");
  create->callback([options, &selected] { selected = [options] { return run_create(*options); }; });

  auto* info = image->add_subcommand(
      "info",
      "Show an image: the eMMC version, capacity and addressing mode, partitions and their files, CID, "
      "bus modes, reliable-write and RPMB settings, cache, erase/write-protect groups, whether an RPMB "
      "key is programmed and the write counter (never the key). Reads the image without locking it, so "
      "it also works on an image `emmcsim serve` is serving (and says so)");
  info->add_option("DIR", options->image_dir, "Image directory")->required();
  info->add_flag("--json", options->json, "Print the same as one JSON object");
  info->callback([options, &selected] { selected = [options] { return run_info(*options); }; });

  auto* default_config = image->add_subcommand(
      "default-config",
      "Print the embedded default device configuration as JSON, every field present: a template for "
      "`image create --config`");
  default_config->callback([&selected] { selected = [] { return run_default_config(); }; });
}

mmc::DeviceConfig read_config_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UsageError(fmt::format("cannot read config file '{}': {}", path, std::strerror(errno)));
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  try {
    return parse_device_config(text);
  } catch (const ConfigError& e) {
    // Keeps the field-naming message and adds which file it came from.
    throw ConfigError(fmt::format("{}: {}", path, e.what()));
  }
}

}  // namespace emmcsim::tools
