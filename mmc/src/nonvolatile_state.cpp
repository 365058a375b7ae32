#include "emmcsim/mmc/nonvolatile_state.hpp"

#include <limits>
#include <optional>
#include <utility>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "emmcsim/mmc/block_storage.hpp"
#include "emmcsim/support/file.hpp"

namespace emmcsim::mmc {

bool operator==(const NonvolatileState& a, const NonvolatileState& b) {
  return a.password == b.password && a.partition_config_boot == b.partition_config_boot &&
         a.boot_bus_conditions == b.boot_bus_conditions && a.boot_wp_permanent == b.boot_wp_permanent &&
         a.boot_wp_status_permanent == b.boot_wp_status_permanent && a.temporary_wp_groups == b.temporary_wp_groups &&
         a.permanent_wp_groups == b.permanent_wp_groups;
}

namespace {

using Json = nlohmann::json;

// Bumped when the meaning of a field changes; a file of another version is refused, not guessed.
// Format 1 named the boot partitions by JEDEC's numbering ("boot1", "boot2"); format 2 names them
// as Linux and the rest of emmcsim do ("boot0", "boot1"). Format 1 is still read.
constexpr int kFormatVersion = 2;
constexpr int kJedecNamesFormatVersion = 1;
constexpr std::size_t kMaxPasswordBytes = 16;

// A state file that cannot be trusted. The card must not come up with its password or write
// protection silently dropped, so this is an error for the user to look at, never a reset.
[[noreturn]] void corrupt(const std::string& path, const std::string& problem) {
  throw StorageError(path, problem + " (the card's non-volatile state is damaged; fix or remove the file)");
}

std::string to_hex(const std::vector<std::uint8_t>& bytes) {
  std::string hex;
  for (const std::uint8_t b : bytes) hex += fmt::format("{:02x}", b);
  return hex;
}

Json groups_to_json(const std::map<Partition, std::set<std::uint32_t>>& groups) {
  Json object = Json::object();
  for (const auto& [partition, indices] : groups) {
    object[std::string(partition_name(partition))] = indices;
  }
  return object;
}

// Reads one state file, naming the field of every problem it finds.
class StateParser {
 public:
  explicit StateParser(std::string path) : path_(std::move(path)) {}

  NonvolatileState parse(const std::string& text) {
    Json root;
    try {
      root = Json::parse(text);
    } catch (const Json::exception& e) {  // parse_error, or out_of_range for a number like 1e999
      corrupt(path_, std::string("not valid JSON: ") + e.what());
    }
    if (!root.is_object()) corrupt(path_, "the top level is not a JSON object");
    for (const auto& item : root.items()) {
      if (!is_known_key(item.key())) corrupt(path_, fmt::format("unknown field '{}'", item.key()));
    }
    const auto version = root.find("format");
    if (version == root.end()) corrupt(path_, "no 'format' field");
    if (!version->is_number_integer() ||
        (version->get<long long>() != kFormatVersion && version->get<long long>() != kJedecNamesFormatVersion)) {
      corrupt(path_, fmt::format("format: {} is not the supported version {} (or {})", version->dump(), kFormatVersion,
                                 kJedecNamesFormatVersion));
    }
    jedec_names_ = version->get<long long>() == kJedecNamesFormatVersion;

    NonvolatileState state;
    if (const auto field = root.find("password"); field != root.end()) state.password = password(*field);
    state.partition_config_boot = byte_field(root, "partition_config_boot");
    state.boot_bus_conditions = byte_field(root, "boot_bus_conditions");
    state.boot_wp_permanent = byte_field(root, "boot_wp_permanent");
    state.boot_wp_status_permanent = byte_field(root, "boot_wp_status_permanent");
    state.temporary_wp_groups = groups(root, "temporary_wp_groups");
    state.permanent_wp_groups = groups(root, "permanent_wp_groups");
    return state;
  }

 private:
  static bool is_known_key(const std::string& key) {
    static const char* const kKeys[] = {"format",
                                        "password",
                                        "partition_config_boot",
                                        "boot_bus_conditions",
                                        "boot_wp_permanent",
                                        "boot_wp_status_permanent",
                                        "temporary_wp_groups",
                                        "permanent_wp_groups"};
    for (const char* known : kKeys) {
      if (key == known) return true;
    }
    return false;
  }

  std::uint8_t byte_field(const Json& root, const char* name) {
    const auto field = root.find(name);
    if (field == root.end()) return 0;
    if (!field->is_number_unsigned() || field->get<std::uint64_t>() > 0xFF) {
      corrupt(path_, fmt::format("{}: {} is not a number from 0 to 255", name, field->dump()));
    }
    return static_cast<std::uint8_t>(field->get<std::uint64_t>());
  }

  std::vector<std::uint8_t> password(const Json& field) {
    if (!field.is_string()) corrupt(path_, fmt::format("password: {} is not a hex string", field.dump()));
    const std::string hex = field.get<std::string>();
    if (hex.size() % 2 != 0 || hex.size() / 2 > kMaxPasswordBytes ||
        hex.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos) {
      corrupt(path_, fmt::format("password: not a hex string of at most {} bytes", kMaxPasswordBytes));
    }
    std::vector<std::uint8_t> bytes;
    for (std::size_t i = 0; i < hex.size(); i += 2) {
      bytes.push_back(static_cast<std::uint8_t>(std::stoul(hex.substr(i, 2), nullptr, 16)));
    }
    return bytes;
  }

  std::map<Partition, std::set<std::uint32_t>> groups(const Json& root, const char* name) {
    std::map<Partition, std::set<std::uint32_t>> result;
    const auto field = root.find(name);
    if (field == root.end()) return result;
    if (!field->is_object()) corrupt(path_, fmt::format("{}: not an object of partition names", name));
    for (const auto& item : field->items()) {
      const std::optional<Partition> partition = partition_named(item.key());
      if (!partition) corrupt(path_, fmt::format("{}: unknown partition '{}'", name, item.key()));
      if (!item.value().is_array()) {
        corrupt(path_, fmt::format("{}.{}: not an array of group numbers", name, item.key()));
      }
      std::set<std::uint32_t>& indices = result[*partition];
      for (const Json& index : item.value()) {
        if (!index.is_number_unsigned() || index.get<std::uint64_t>() > std::numeric_limits<std::uint32_t>::max()) {
          corrupt(path_, fmt::format("{}.{}: {} is not a write-protect group number", name, item.key(), index.dump()));
        }
        indices.insert(static_cast<std::uint32_t>(index.get<std::uint64_t>()));
      }
    }
    return result;
  }

  std::optional<Partition> partition_named(const std::string& name) const {
    if (jedec_names_) {  // format 1
      if (name == "boot1") return Partition::boot1;
      if (name == "boot2") return Partition::boot2;
      if (name == "boot0") return std::nullopt;
    }
    for (std::uint8_t access = 0; access < 8; ++access) {
      const std::optional<Partition> p = partition_from_access(access);
      if (p && partition_name(*p) == name) return p;
    }
    return std::nullopt;
  }

  std::string path_;
  bool jedec_names_ = false;
};

}  // namespace

FileNonvolatileStore::FileNonvolatileStore(std::string path) : path_(std::move(path)) {}

NonvolatileState FileNonvolatileStore::load() {
  const std::optional<std::string> text = support::read_whole_file(path_);
  if (!text) return {};  // nothing has been set on this card yet
  return StateParser(path_).parse(*text);
}

void FileNonvolatileStore::save(const NonvolatileState& state) {
  nlohmann::ordered_json root;
  root["format"] = kFormatVersion;
  root["password"] = to_hex(state.password);
  root["partition_config_boot"] = state.partition_config_boot;
  root["boot_bus_conditions"] = state.boot_bus_conditions;
  root["boot_wp_permanent"] = state.boot_wp_permanent;
  root["boot_wp_status_permanent"] = state.boot_wp_status_permanent;
  root["temporary_wp_groups"] = groups_to_json(state.temporary_wp_groups);
  root["permanent_wp_groups"] = groups_to_json(state.permanent_wp_groups);
  const std::string text = root.dump(2) + "\n";

  // A crash leaves either the old or the new state, never a torn file.
  support::replace_file_durably(path_, text);
}

}  // namespace emmcsim::mmc
