#include "rpmb_command.hpp"

#include <openssl/rand.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "emmcsim/mmc/card.hpp"
#include "emmcsim/mmc/host_bus.hpp"
#include "emmcsim/mmc/host_sequences.hpp"
#include "emmcsim/mmc/image.hpp"
#include "emmcsim/mmc/registers.hpp"
#include "emmcsim/rpmb/file_store.hpp"
#include "emmcsim/rpmb/host.hpp"
#include "emmcsim/transport/bridge_client.hpp"
#include "emmcsim/transport/bridge_rpmb_channel.hpp"
#include "emmcsim/transport/vhost_user_frontend.hpp"

namespace emmcsim::tools {
namespace {

using namespace emmcsim::rpmb;

struct Options {
  std::string image_dir;
  std::string vhost_user_socket;  // act as a VM's virtio-rpmb driver against `emmcsim serve`
  std::string mmc_socket;         // act as mmc-utils on /dev/mmcblkNrpmb against `emmcsim serve`
  std::string rpmb_size;          // empty: 4 MiB for a new image, the image's own size otherwise
  Durability durability = Durability::sync_every_commit;
  bool no_en_rpmb_rel_wr = false;  // refuse 32-frame writes whatever the image says
  bool trace = false;              // print every eMMC command on stderr
  // command arguments
  std::string key_file, data_file, out_file;
  std::string address, count;
  std::optional<std::uint32_t> write_counter;  // write under this counter instead of reading it
  std::uint16_t config_address = 0;            // REGISTER of config-write
  std::string config_value;
  bool stdin_taken = false;
};

std::uint32_t parse_rpmb_size(const std::string& text) {
  std::size_t pos = 0;
  unsigned long long value = 0;
  try {
    value = std::stoull(text, &pos, 0);
  } catch (const std::exception&) {
    throw UsageError(fmt::format("--rpmb-size '{}' is not a size (examples: 4M, 512K, 131072)", text));
  }
  std::string unit = text.substr(pos);
  if (unit == "K" || unit == "KiB" || unit == "k")
    value *= 1024;
  else if (unit == "M" || unit == "MiB")
    value *= 1024 * 1024;
  else if (!unit.empty())
    throw UsageError(fmt::format("--rpmb-size '{}': unknown unit '{}' (use K or M)", text, unit));
  if (value == 0 || value % kSizeMultUnit != 0 || value / kSizeMultUnit > kMaxSizeMult) {
    throw UsageError(fmt::format("--rpmb-size '{}' must be a multiple of 128 KiB from 128K to 16M", text));
  }
  return static_cast<std::uint32_t>(value / kSizeMultUnit);
}

std::uint32_t parse_number(const std::string& what, const std::string& text, std::uint32_t max) {
  std::size_t pos = 0;
  unsigned long value = 0;
  try {
    value = std::stoul(text, &pos, 0);
  } catch (const std::exception&) {
    pos = 0;
  }
  if (pos == 0 || pos != text.size() || value > max) {
    throw UsageError(fmt::format("{} '{}' must be a number from 0 to {} (decimal or 0x hex)", what, text, max));
  }
  return static_cast<std::uint32_t>(value);
}

std::vector<std::uint8_t> read_input(Options& o, const std::string& path, const std::string& what) {
  std::vector<std::uint8_t> bytes;
  if (path == "-") {
    if (o.stdin_taken) throw UsageError("only one of the files can be '-' (standard input)");
    o.stdin_taken = true;
    bytes.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    return bytes;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UsageError(fmt::format("cannot open {} '{}': {}", what, path, std::strerror(errno)));
  bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return bytes;
}

Key read_key(Options& o, const std::string& path) {
  std::vector<std::uint8_t> bytes = read_input(o, path, "key file");
  if (bytes.size() != kKeySize) {
    const std::size_t size = bytes.size();
    std::fill(bytes.begin(), bytes.end(), 0);
    throw UsageError(fmt::format("the key file holds {} bytes; an RPMB key is exactly 32 bytes{}", size,
                                 size == kKeySize + 1 ? " (did echo add a newline? use echo -n)" : ""));
  }
  Key key;
  std::copy(bytes.begin(), bytes.end(), key.begin());
  std::fill(bytes.begin(), bytes.end(), 0);
  return key;
}

// The key when the command was given one (reads then verify their MACs).
std::optional<Key> optional_key(Options& o) {
  if (o.key_file.empty()) return std::nullopt;
  return read_key(o, o.key_file);
}

Nonce random_nonce() {
  Nonce nonce{};
  if (RAND_bytes(nonce.data(), static_cast<int>(nonce.size())) != 1) throw std::runtime_error("no random nonce");
  return nonce;
}

// The image directory, created with the default device configuration (and the requested RPMB
// size) when it does not exist yet.
std::unique_ptr<mmc::Image> open_image(const Options& o) {
  namespace fs = std::filesystem;
  const Durability durability = o.durability;
  std::error_code ec;
  if (fs::exists(fs::path(o.image_dir) / mmc::Image::kConfigFile, ec)) {
    auto image = mmc::Image::open(o.image_dir, durability);
    if (!o.rpmb_size.empty() && parse_rpmb_size(o.rpmb_size) * kSizeMultUnit != image->config().rpmb_size) {
      throw UsageError(fmt::format("{} already holds a {} KiB RPMB partition; --rpmb-size {} disagrees", o.image_dir,
                                   image->config().rpmb_size / 1024, o.rpmb_size));
    }
    return image;
  }
  mmc::DeviceConfig config = mmc::default_device_config();
  if (!o.rpmb_size.empty()) config.rpmb_size = std::uint64_t{parse_rpmb_size(o.rpmb_size)} * kSizeMultUnit;
  mmc::ImageCreateOptions create_options;
  create_options.durability = durability;
  auto image = mmc::Image::create(o.image_dir, config, create_options);
  std::cerr << fmt::format("emmcsim: created image {} ({} KiB RPMB partition; see 'emmcsim image info')\n", o.image_dir,
                           config.rpmb_size / 1024);
  return image;
}

void require_success(const std::string& what, const HostResult& r) {
  if (!result_ok(r.result)) throw RpmbFailure(fmt::format("{}: {}", what, describe_result(r.result)));
  if (r.mac_valid == false) throw RpmbFailure(fmt::format("{}: MAC mismatch: the response is not authentic", what));
  if (!r.nonce_matches) throw RpmbFailure(fmt::format("{}: the response does not echo our nonce", what));
}

void check_target(const Options& o) {
  const int targets = !o.image_dir.empty() + !o.vhost_user_socket.empty() + !o.mmc_socket.empty();
  if (targets != 1)
    throw UsageError(
        "give exactly one of --image DIR (the image itself), --mmc-socket SOCKET (a running "
        "'emmcsim serve', through the MMC-ioctl bridge as mmc-utils) and --vhost-user SOCKET (a "
        "running 'emmcsim serve --vhost-user-socket SOCKET', as a VM's virtio-rpmb driver)");
  if (o.image_dir.empty() && o.trace)
    throw UsageError(
        "--trace shows the eMMC bus of --image; a daemon's bus is its own "
        "(serve --log-level debug shows the requests)");
}

// Either an image, its card brought up to tran, and the host reaching the RPMB partition over the
// card's bus exactly as Linux does for an ioctl on mmcblkNrpmb; or (--mmc-socket) the daemon's
// card through the MMC-ioctl bridge, batched as mmc-utils batches it; or (--vhost-user) a
// vhost-user front-end and virtio-rpmb driver reaching the daemon's card as a virtual machine would.
struct Session {
  bool thirty_two_frame_writes = false;
  std::unique_ptr<mmc::Image> image;
  std::unique_ptr<mmc::Card> card;
  std::unique_ptr<mmc::CardHostBus> card_bus;
  std::unique_ptr<mmc::RpmbBusChannel> bus_channel;
  std::unique_ptr<transport::VhostUserFrontend> frontend;
  std::unique_ptr<transport::VirtioRpmbChannel> virtio_channel;
  std::unique_ptr<transport::bridge::BridgeClient> bridge_client;
  std::unique_ptr<transport::BridgeRpmbChannel> bridge_channel;
  std::unique_ptr<Host> host;

  Session(const Options& o, std::optional<Key> key) {
    check_target(o);
    if (!o.mmc_socket.empty()) {
      bridge_client = std::make_unique<transport::bridge::BridgeClient>(o.mmc_socket);
      // The card's own REL_WR rules decide 32-frame writes; its refusal is reported as such.
      thirty_two_frame_writes = !o.no_en_rpmb_rel_wr;
      bridge_channel = std::make_unique<transport::BridgeRpmbChannel>(*bridge_client);
      host = std::make_unique<Host>(*bridge_channel, std::move(key));
      return;
    }
    if (!o.vhost_user_socket.empty()) {
      frontend = std::make_unique<transport::VhostUserFrontend>(o.vhost_user_socket);
      frontend->start();
      // Config space: capacity, max_wr_cnt, max_rd_cnt.
      thirty_two_frame_writes = frontend->config().size() == 3 &&
                                (frontend->config()[1] == 0 || frontend->config()[1] >= 32) && !o.no_en_rpmb_rel_wr;
      virtio_channel = std::make_unique<transport::VirtioRpmbChannel>(*frontend);
      host = std::make_unique<Host>(*virtio_channel, std::move(key));
      return;
    }
    image = open_image(o);
    mmc::DeviceConfig config = image->config();
    if (o.no_en_rpmb_rel_wr) config.en_rpmb_rel_wr = false;
    thirty_two_frame_writes = config.en_rpmb_rel_wr;
    card = std::make_unique<mmc::Card>(config, image->backend());
    card_bus = std::make_unique<mmc::CardHostBus>(*card);
    mmc::identify_and_select(*card_bus);
    bus_channel = std::make_unique<mmc::RpmbBusChannel>(*card_bus, card->ext_csd()[mmc::ext_csd::kPartitionConfig]);
    if (o.trace) bus_channel->set_trace([](const std::string& line) { std::cerr << "  " << line << "\n"; });
    host = std::make_unique<Host>(*bus_channel, std::move(key));
  }
};

int run_info(Options& o) {
  check_target(o);
  if (o.image_dir.empty())
    throw UsageError("info reads the image directory itself: use --image DIR (read-counter works over a socket)");
  auto image = open_image(o);
  const FileStore& store = image->rpmb_store();
  const PartitionState& s = store.state();
  const ResultRegister& r = s.result_register;
  fmt::print("image            {}\n", store.path());
  fmt::print("size             {} KiB (RPMB_SIZE_MULT {}, {} half-sectors of 256 bytes)\n", store.size_mult() * 128,
             store.size_mult(), store.half_sectors());
  fmt::print("8 KiB writes     {}\n", image->config().en_rpmb_rel_wr && !o.no_en_rpmb_rel_wr
                                          ? "allowed (EN_RPMB_REL_WR)"
                                          : "refused (EN_RPMB_REL_WR clear)");
  fmt::print("key              {}\n", s.key_programmed ? "programmed" : "not programmed");
  fmt::print("write counter    {}{}\n", s.write_counter, s.counter_expired() ? " (expired)" : "");
  if (r.type == ResponseType::none) {
    fmt::print("last committed   none\n");
  } else {
    fmt::print("last committed   {}: {}, counter {}, address {}\n",
               describe_request(static_cast<std::uint16_t>(r.type) >> 8), describe_result(r.result), r.write_counter,
               r.address);
  }
  fmt::print("secure WP        SECURE_WP_MODE_ENABLE 0x{:02x}, SECURE_WP_MODE_CONFIG 0x{:02x}\n",
             s.device_configuration.secure_wp_mode_enable, s.device_configuration.secure_wp_mode_config);
  fmt::print("durability       {}\n",
             store.durability() == Durability::sync_every_commit ? "sync every commit" : "left to the OS");
  return 0;
}

int run_program_key(Options& o) {
  const Key key = read_key(o, o.key_file);
  Session s(o, std::nullopt);
  require_success("key programming", s.host->program_key(key));
  fmt::print("key programmed\n");
  return 0;
}

int run_read_counter(Options& o) {
  const std::optional<Key> key = optional_key(o);
  Session s(o, key);
  const HostResult r = s.host->read_counter(random_nonce());
  require_success("read counter", r);
  fmt::print("counter value: 0x{:08x} ({}){}\n", r.write_counter, r.write_counter,
             r.mac_valid ? " (MAC verified)" : "");
  return 0;
}

int run_write(Options& o) {
  const std::uint16_t address = static_cast<std::uint16_t>(parse_number("ADDR", o.address, 0xFFFF));
  const std::vector<std::uint8_t> data = read_input(o, o.data_file, "data file");
  const std::size_t frames = data.size() / kHalfSectorSize;
  if (data.size() % kHalfSectorSize != 0 || !(frames == 1 || frames == 2 || frames == 32)) {
    throw UsageError(
        fmt::format("the data file holds {} bytes; an authenticated write takes 256, 512 or 8192 bytes (1, 2 or 32 "
                    "half-sectors)",
                    data.size()));
  }
  Session s(o, read_key(o, o.key_file));
  if (frames == 32 && !s.thirty_two_frame_writes) {
    throw UsageError(o.no_en_rpmb_rel_wr ? "32-frame writes need EN_RPMB_REL_WR (drop --no-en-rpmb-rel-wr)"
                     : s.frontend        ? "32-frame writes: the virtio-rpmb device's max_wr_cnt is below 32"
                                         : "32-frame writes need EN_RPMB_REL_WR, which this image's device.json "
                                           "does not set (en_rpmb_rel_wr)");
  }
  const HostResult r = o.write_counter ? s.host->write_with_counter(address, data.data(), frames, *o.write_counter)
                                       : s.host->write(address, data.data(), frames);
  require_success(fmt::format("write of {} half-sector(s) at {}", frames, address), r);
  fmt::print("wrote {} half-sector(s) at address {}; counter now {}\n", frames, address, r.write_counter);
  return 0;
}

int run_read(Options& o) {
  const std::uint16_t address = static_cast<std::uint16_t>(parse_number("ADDR", o.address, 0xFFFF));
  const std::uint32_t count = parse_number("COUNT", o.count, 0xFFFF);
  if (count == 0) throw UsageError("COUNT must be at least 1");
  const std::optional<Key> key = optional_key(o);
  Session s(o, key);
  const Nonce nonce = random_nonce();
  const HostResult r = s.host->read(address, count, nonce);
  require_success(fmt::format("read of {} half-sector(s) at {}", count, address), r);
  if (o.out_file == "-") {
    std::cout.write(reinterpret_cast<const char*>(r.data.data()), static_cast<std::streamsize>(r.data.size()));
    std::cout.flush();
  } else {
    std::ofstream out(o.out_file, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(r.data.data()), static_cast<std::streamsize>(r.data.size()));
    if (!out) throw UsageError(fmt::format("cannot write '{}': {}", o.out_file, std::strerror(errno)));
  }
  std::cerr << fmt::format("read {} half-sector(s) at address {}{}\n", count, address,
                           key ? " (MAC verified)" : " (not verified: no key given)");
  return 0;
}

int run_config_read(Options& o) {
  const std::optional<Key> key = optional_key(o);
  Session s(o, key);
  const HostResult r = s.host->config_read(random_nonce());
  require_success("device configuration read", r);
  fmt::print("SECURE_WP_MODE_ENABLE 0x{:02x}\nSECURE_WP_MODE_CONFIG 0x{:02x}\n", r.data[kConfigDataSecureWpModeEnable],
             r.data[kConfigDataSecureWpModeConfig]);
  return 0;
}

int run_config_write(Options& o) {
  const std::uint16_t config_address = o.config_address;
  const std::uint8_t value = static_cast<std::uint8_t>(parse_number("VALUE", o.config_value, 1));
  Session s(o, read_key(o, o.key_file));
  require_success("device configuration write", s.host->config_write(config_address, value));
  fmt::print("{} set to {}\n",
             config_address == kConfigAddressSecureWpModeEnable ? "SECURE_WP_MODE_ENABLE" : "SECURE_WP_MODE_CONFIG",
             value);
  return 0;
}

}  // namespace

void add_rpmb_command(CLI::App& app, Command& selected) {
  auto options = std::make_shared<Options>();
  CLI::App* rpmb = app.add_subcommand(
      "rpmb", "Use the RPMB partition of an image directory, or of a running daemon as a VM's virtio-rpmb driver");
  rpmb->require_subcommand(1);
  rpmb->add_option("--image", options->image_dir,
                   "Image directory (see 'emmcsim image'); created with the default device when absent");
  rpmb->add_option("--mmc-socket", options->mmc_socket,
                   "Instead of --image: reach 'emmcsim serve' through its MMC-ioctl bridge socket, with the "
                   "MMC_IOC_MULTI_CMD sequences mmc-utils sends to /dev/mmcblkNrpmb");
  rpmb->add_option("--vhost-user", options->vhost_user_socket,
                   "Instead of --image: reach 'emmcsim serve --vhost-user-socket SOCKET' over vhost-user, as a "
                   "virtual machine's virtio-rpmb driver does");
  rpmb->add_option("--rpmb-size", options->rpmb_size,
                   "Partition size of a new image: a multiple of 128K up to 16M (default 4M)");
  rpmb->add_option("--durability", options->durability,
                   "sync: fdatasync every commit (default); os: leave write-back to the OS")
      ->transform(one_of(durability_words()))
      ->type_name("MODE");
  rpmb->add_flag("--no-en-rpmb-rel-wr", options->no_en_rpmb_rel_wr,
                 "Refuse 32-frame writes (EXT_CSD WR_REL_PARAM bit 4 clear) whatever device.json says");
  rpmb->add_flag("--trace", options->trace,
                 "Print every eMMC command the host sends, the card's response and the work it caused");

  auto* info = rpmb->add_subcommand("info", "Show size, key state, counter, last result, secure WP");
  info->callback([options, &selected] { selected = [options] { return run_info(*options); }; });

  auto* program_key = rpmb->add_subcommand("program-key", "Program the authentication key (once in a device's life)");
  program_key->add_option("KEYFILE", options->key_file, "32-byte key file, or - for standard input")->required();
  program_key->callback([options, &selected] { selected = [options] { return run_program_key(*options); }; });

  auto* read_counter = rpmb->add_subcommand("read-counter", "Read the write counter");
  read_counter->add_option("KEYFILE", options->key_file, "Verify the response's MAC with this key");
  read_counter->callback([options, &selected] { selected = [options] { return run_read_counter(*options); }; });

  auto* write = rpmb->add_subcommand("write", "Authenticated write of 1, 2 or 32 half-sectors (by file size)");
  write->add_option("ADDR", options->address, "First half-sector (256-byte unit), decimal or 0x hex")->required();
  write->add_option("DATAFILE", options->data_file, "256, 512 or 8192 bytes, or - for standard input")->required();
  write->add_option("KEYFILE", options->key_file, "32-byte key file, or -")->required();
  write->add_option("--counter", options->write_counter,
                    "Sign under this write counter instead of the device's (replays, tests)");
  write->callback([options, &selected] { selected = [options] { return run_write(*options); }; });

  auto* read = rpmb->add_subcommand("read", "Authenticated read of COUNT half-sectors");
  read->add_option("ADDR", options->address, "First half-sector, decimal or 0x hex")->required();
  read->add_option("COUNT", options->count, "Number of half-sectors")->required();
  read->add_option("OUTFILE", options->out_file, "Output file, or - for standard output")->required();
  read->add_option("KEYFILE", options->key_file, "Verify the MAC with this key");
  read->callback([options, &selected] { selected = [options] { return run_read(*options); }; });

  auto* config_read = rpmb->add_subcommand("config-read", "Authenticated device configuration read (secure WP)");
  config_read->add_option("KEYFILE", options->key_file, "Verify the MAC with this key");
  config_read->callback([options, &selected] { selected = [options] { return run_config_read(*options); }; });

  auto* config_write = rpmb->add_subcommand("config-write", "Authenticated device configuration write (secure WP)");
  config_write
      ->add_option("REGISTER", options->config_address,
                   "enable (SECURE_WP_MODE_ENABLE) or config (SECURE_WP_MODE_CONFIG)")
      ->required()
      ->transform(one_of(Words<std::uint16_t>{{"enable", kConfigAddressSecureWpModeEnable},
                                              {"config", kConfigAddressSecureWpModeConfig}}))
      ->type_name("WORD");
  config_write->add_option("VALUE", options->config_value, "0 or 1")->required();
  config_write->add_option("KEYFILE", options->key_file, "32-byte key file, or -")->required();
  config_write->callback([options, &selected] { selected = [options] { return run_config_write(*options); }; });
}

}  // namespace emmcsim::tools
