// libFuzzer target: the device configuration reader (mmc/device_config.hpp), fed as
// `emmcsim serve --config FILE` and `emmcsim image create --config FILE` read a user's file.
//
// Input: the file's text.
// Invariants (std::abort with a message on violation; any exception other than ConfigError
// escaping parse_device_config also ends the run as a crash):
//   - parse_device_config either throws ConfigError, whose message starts "device config: ", or
//     returns a configuration that validate() accepts;
//   - an accepted configuration writes out (to_json) and reads back equal;
//   - it builds an EXT_CSD whose SEC_COUNT and RPMB_SIZE_MULT match it, and a card on a memory
//     image that a host brings up to tran (CMD0, CMD1, CMD2, CMD3, CMD7) as Linux does.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "emmcsim/mmc/card.hpp"
#include "emmcsim/mmc/device_config.hpp"
#include "emmcsim/mmc/host_bus.hpp"
#include "emmcsim/mmc/host_sequences.hpp"
#include "emmcsim/mmc/image.hpp"
#include "emmcsim/mmc/registers.hpp"

namespace {

using namespace emmcsim::mmc;

void require(bool condition, const char* what) {
  if (!condition) {
    std::fprintf(stderr, "device_config_fuzz: invariant violated: %s\n", what);
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > 64 * 1024) return 0;  // a configuration file is small; keep runs fast
  const std::string text(reinterpret_cast<const char*>(data), size);
  DeviceConfig config;
  try {
    config = parse_device_config(text);
  } catch (const ConfigError& e) {
    require(std::string(e.what()).rfind("device config: ", 0) == 0, "errors name the device config");
    return 0;
  }
  try {
    validate(config);
  } catch (const ConfigError&) {
    require(false, "an accepted configuration validates");
  }
  require(parse_device_config(to_json(config)) == config, "to_json round-trips");
  const ExtCsd ext_csd = build_ext_csd(config);
  // SEC_COUNT (little-endian) is the user area in 512-byte sectors.
  const std::uint64_t sec_count =
      std::uint64_t{ext_csd[ext_csd::kSecCount]} | (std::uint64_t{ext_csd[ext_csd::kSecCount + 1]} << 8) |
      (std::uint64_t{ext_csd[ext_csd::kSecCount + 2]} << 16) | (std::uint64_t{ext_csd[ext_csd::kSecCount + 3]} << 24);
  require(sec_count == config.user_capacity / 512, "SEC_COUNT");
  require(ext_csd[ext_csd::kRpmbSizeMult] == config.rpmb_size / (128 * 1024), "RPMB_SIZE_MULT");
  MemoryImage image(config);
  Card card(config, image.backend());
  CardHostBus bus(card);
  identify_and_select(bus);
  require(card.state() == CardState::tran, "the card comes up to tran");
  return 0;
}
