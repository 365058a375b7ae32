#include "emmcsim/mmc/image.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "emmcsim/rpmb/mac.hpp"
#include "emmcsim/support/file.hpp"

namespace emmcsim::mmc {

BlockStorage* CardBackend::storage(Partition p) const {
  switch (p) {
    case Partition::user: return user;
    case Partition::boot1: return boot[0];
    case Partition::boot2: return boot[1];
    case Partition::rpmb: return nullptr;  // RPMB is frames through rpmb::Store, not sectors
    case Partition::gp1:
    case Partition::gp2:
    case Partition::gp3:
    case Partition::gp4: return general_purpose[static_cast<std::size_t>(p) - static_cast<std::size_t>(Partition::gp1)];
  }
  return nullptr;
}

namespace {

namespace fs = std::filesystem;

constexpr std::uint64_t kRpmbSizeUnit = 128 * 1024;      // RPMB_SIZE_MULT unit
constexpr std::uint64_t kUserCapacityUnit = 512 * 1024;  // user area granularity
constexpr std::size_t kMaxGeneralPurpose = 4;

std::string boot_file(std::size_t index) { return Image::file_name(index == 0 ? Partition::boot1 : Partition::boot2); }
std::string general_purpose_file(std::size_t index) {
  return Image::file_name(static_cast<Partition>(static_cast<std::size_t>(Partition::gp1) + index));
}

std::string join(const std::string& dir, const std::string& name) {
  return !dir.empty() && dir.back() == '/' ? dir + name : dir + "/" + name;
}

[[noreturn]] void image_error(const std::string& dir, const std::string& problem) {
  throw ImageError("image " + dir + ": " + problem);
}

// Checks that DIR/name is there (following a symlink) and holds exactly `expected` bytes.
// `what` says what device.json configures, for the message when the file is missing.
void check_data_file(const std::string& dir, const std::string& name, std::uint64_t expected, const std::string& what) {
  const std::string path = join(dir, name);
  struct stat link_stat {};
  if (::lstat(path.c_str(), &link_stat) != 0) {
    if (errno == ENOENT) {
      image_error(dir, fmt::format("{} is missing (device.json configures {})", name, what));
    }
    image_error(dir, fmt::format("{}: {}", name, std::strerror(errno)));
  }
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    const int err = errno;
    std::error_code ec;
    const fs::path target = fs::read_symlink(path, ec);
    image_error(dir, fmt::format("{} links to {}, which cannot be opened: {}", name,
                                 ec ? std::string("?") : target.string(), std::strerror(err)));
  }
  if (!S_ISREG(st.st_mode)) image_error(dir, fmt::format("{} is not a regular file", name));
  const auto size = static_cast<std::uint64_t>(st.st_size);
  if (size != expected) {
    image_error(dir, fmt::format("{} is {} bytes but device.json says {}", name, size, describe_size(expected)));
  }
}

// A partition file the configuration has no partition for: the image was made with another
// device.json (or edited by hand); using it would silently ignore data.
void refuse_extra_file(const std::string& dir, const std::string& name, const std::string& why) {
  struct stat st {};
  if (::lstat(join(dir, name).c_str(), &st) == 0) {
    image_error(dir, fmt::format("{} exists but device.json {}", name, why));
  }
}

std::uint32_t rpmb_size_mult(const DeviceConfig& config) {
  return static_cast<std::uint32_t>(config.rpmb_size / kRpmbSizeUnit);
}

// DIR's device.json, after checking that DIR is a directory.
DeviceConfig read_device_config(const std::string& dir) {
  struct stat dir_stat {};
  if (::stat(dir.c_str(), &dir_stat) != 0) image_error(dir, std::strerror(errno));
  if (!S_ISDIR(dir_stat.st_mode)) image_error(dir, "not a directory");

  const std::optional<std::string> config_text = support::read_whole_file(join(dir, Image::kConfigFile));
  if (!config_text) {
    image_error(dir, fmt::format("{} is missing: not an emmcsim image, or its creation was interrupted "
                                 "(remove the directory and create the image again)",
                                 Image::kConfigFile));
  }
  try {
    return parse_device_config(*config_text);
  } catch (const std::exception& e) {
    image_error(dir, fmt::format("{}: {}", Image::kConfigFile, e.what()));
  }
}

// Checks every partition file of DIR against `config` before any is opened, so the first message
// names the first problem. Returns the path of rpmb.img.
std::string check_partition_files(const std::string& dir, const DeviceConfig& config) {
  check_data_file(dir, Image::kUserFile, config.user_capacity, describe_size(config.user_capacity) + " of user area");
  for (std::size_t i = 0; i < 2; ++i) {
    if (config.boot_partition_size > 0) {
      check_data_file(dir, boot_file(i), config.boot_partition_size,
                      describe_size(config.boot_partition_size) + " boot partitions");
    } else {
      refuse_extra_file(dir, boot_file(i), "configures no boot partitions (boot_partition_size 0)");
    }
  }
  const std::size_t gp_count = config.general_purpose_partitions.size();
  for (std::size_t i = 0; i < kMaxGeneralPurpose; ++i) {
    if (i < gp_count) {
      check_data_file(dir, general_purpose_file(i), config.general_purpose_partitions[i],
                      fmt::format("general-purpose partition {} of {}", i + 1,
                                  describe_size(config.general_purpose_partitions[i])));
    } else {
      refuse_extra_file(dir, general_purpose_file(i),
                        fmt::format("configures {} general-purpose partition{}",
                                    gp_count == 0 ? "no" : fmt::format("only {}", gp_count), gp_count == 1 ? "" : "s"));
    }
  }
  const std::string rpmb_path = join(dir, rpmb::FileStore::kFileName);
  struct stat rpmb_stat {};
  if (::lstat(rpmb_path.c_str(), &rpmb_stat) != 0) {
    image_error(dir, fmt::format("{} is missing (device.json configures a {} RPMB partition)",
                                 rpmb::FileStore::kFileName, describe_size(config.rpmb_size)));
  }
  return rpmb_path;
}

void check_rpmb_size(const std::string& dir, const rpmb::FileStore& store, const DeviceConfig& config) {
  if (store.size_mult() != rpmb_size_mult(config)) {
    image_error(dir, fmt::format("{} holds a {} RPMB partition but device.json says {}", rpmb::FileStore::kFileName,
                                 describe_size(store.size_mult() * kRpmbSizeUnit), describe_size(config.rpmb_size)));
  }
}

// The card's view of an image's stores (Image and MemoryImage hold the same ones, on files or in
// memory).
template <class Storage, std::size_t Boot, std::size_t GeneralPurpose>
CardBackend backend_of(const std::unique_ptr<Storage>& user, const std::array<std::unique_ptr<Storage>, Boot>& boot,
                       const std::array<std::unique_ptr<Storage>, GeneralPurpose>& general_purpose, rpmb::Store* rpmb,
                       NonvolatileStore* nonvolatile) {
  CardBackend backend;
  backend.user = user.get();
  for (std::size_t i = 0; i < boot.size(); ++i) backend.boot[i] = boot[i].get();
  for (std::size_t i = 0; i < general_purpose.size(); ++i) backend.general_purpose[i] = general_purpose[i].get();
  backend.rpmb = rpmb;
  backend.nonvolatile = nonvolatile;
  return backend;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Image

std::unique_ptr<Image> Image::create(const std::string& dir, const DeviceConfig& requested,
                                     const ImageCreateOptions& options) {
  DeviceConfig config = requested;
  validate(config);

  std::string raw_user_image;  // absolute, so the symlink survives moving the image directory
  if (!options.existing_user_image.empty()) {
    const std::string& given = options.existing_user_image;
    raw_user_image = fs::absolute(given).lexically_normal().string();
    struct stat st {};
    if (::stat(raw_user_image.c_str(), &st) != 0) {
      throw ImageError(fmt::format("user image {}: {}", given, std::strerror(errno)));
    }
    if (!S_ISREG(st.st_mode)) throw ImageError(fmt::format("user image {}: not a regular file", given));
    const auto size = static_cast<std::uint64_t>(st.st_size);
    if (size % kUserCapacityUnit != 0) {
      throw ImageError(
          fmt::format("user image {}: {} bytes is not a multiple of 512 KiB, the unit of an eMMC user area "
                      "(extend it, e.g. truncate -s {} {})",
                      given, size, (size / kUserCapacityUnit + 1) * kUserCapacityUnit, given));
    }
    config.user_capacity = size;
    try {
      validate(config);
    } catch (const ConfigError& e) {
      throw ImageError(fmt::format("user image {}: cannot be the user area: {}", given, e.what()));
    }
  }

  bool made_directory = false;
  struct stat dir_stat {};
  if (::stat(dir.c_str(), &dir_stat) == 0) {
    if (!S_ISDIR(dir_stat.st_mode)) image_error(dir, "exists and is not a directory");
    std::error_code ec;
    const bool empty = fs::is_empty(dir, ec);
    if (ec) image_error(dir, "cannot list the directory: " + ec.message());
    if (!empty) image_error(dir, "exists and is not empty (an image is created in a new or empty directory)");
  } else if (errno == ENOENT) {
    if (::mkdir(dir.c_str(), 0700) != 0) {
      image_error(dir, std::string("cannot create: ") + std::strerror(errno));
    }
    made_directory = true;
  } else {
    image_error(dir, std::string("cannot stat: ") + std::strerror(errno));
  }

  // Every name we may create, temporaries included; on failure they all go again. The directory
  // was empty, so nothing here belonged to anyone else.
  std::vector<std::string> created;
  std::unique_ptr<Image> image(new Image());
  try {
    // device.json comes last: until it is in place, open() refuses the directory as an
    // interrupted creation, so a crash part-way never yields an image with missing pieces.
    created.push_back(kUserFile);
    const std::string user_path = join(dir, kUserFile);
    if (raw_user_image.empty()) {
      image->user_ = FileBlockStorage::create(user_path, config.user_capacity / kSectorSize);
    } else {
      if (::symlink(raw_user_image.c_str(), user_path.c_str()) != 0) {
        throw StorageError("link " + user_path + " to", raw_user_image, errno);
      }
      image->user_ = FileBlockStorage::open(user_path);
      if (image->user_->sectors() * kSectorSize != config.user_capacity) {
        throw ImageError(
            fmt::format("user image {}: changed size while the image was being created", options.existing_user_image));
      }
    }
    if (config.boot_partition_size > 0) {
      for (std::size_t i = 0; i < 2; ++i) {
        created.push_back(boot_file(i));
        image->boot_[i] = FileBlockStorage::create(join(dir, boot_file(i)), config.boot_partition_size / kSectorSize);
      }
    }
    for (std::size_t i = 0; i < config.general_purpose_partitions.size(); ++i) {
      created.push_back(general_purpose_file(i));
      image->general_purpose_[i] = FileBlockStorage::create(join(dir, general_purpose_file(i)),
                                                            config.general_purpose_partitions[i] / kSectorSize);
    }
    created.push_back(std::string(rpmb::FileStore::kFileName) + ".creating");  // create_at's temporary
    created.push_back(rpmb::FileStore::kFileName);
    image->rpmb_ =
        rpmb::FileStore::create_at(join(dir, rpmb::FileStore::kFileName), rpmb_size_mult(config), options.durability);

    // The sizes set by ftruncate must be on disk before device.json vouches for them.
    image->user_->flush();
    for (auto& boot : image->boot_) {
      if (boot) boot->flush();
    }
    for (auto& gp : image->general_purpose_) {
      if (gp) gp->flush();
    }
    support::sync_directory(dir);
    // Written whole or not at all (a temporary file renamed into place).
    created.push_back(std::string(kConfigFile) + ".tmp");
    created.push_back(kConfigFile);
    support::replace_file_durably(join(dir, kConfigFile), to_json(config));
  } catch (...) {
    image.reset();  // closes the files and drops their locks first
    for (auto name = created.rbegin(); name != created.rend(); ++name) ::unlink(join(dir, *name).c_str());
    if (made_directory) ::rmdir(dir.c_str());
    throw;
  }
  image->dir_ = dir;
  image->config_ = config;
  image->nonvolatile_ = std::make_unique<FileNonvolatileStore>(join(dir, kStateFile));
  return image;
}

std::unique_ptr<Image> Image::open(const std::string& dir, rpmb::Durability durability) {
  DeviceConfig config = read_device_config(dir);
  const std::string rpmb_path = check_partition_files(dir, config);
  const std::size_t gp_count = config.general_purpose_partitions.size();

  std::unique_ptr<Image> image(new Image());
  image->rpmb_ = rpmb::FileStore::open_at(rpmb_path, durability);
  check_rpmb_size(dir, *image->rpmb_, config);
  // The files were checked above; a size that changed since then is caught here.
  const auto open_data_file = [&dir](const std::string& name, std::uint64_t expected) {
    auto storage = FileBlockStorage::open(join(dir, name));
    if (storage->sectors() * kSectorSize != expected) {
      image_error(dir, fmt::format("{} is {} bytes but device.json says {}", name, storage->sectors() * kSectorSize,
                                   describe_size(expected)));
    }
    return storage;
  };
  image->user_ = open_data_file(kUserFile, config.user_capacity);
  if (config.boot_partition_size > 0) {
    for (std::size_t i = 0; i < 2; ++i) {
      image->boot_[i] = open_data_file(boot_file(i), config.boot_partition_size);
    }
  }
  for (std::size_t i = 0; i < gp_count; ++i) {
    image->general_purpose_[i] = open_data_file(general_purpose_file(i), config.general_purpose_partitions[i]);
  }
  image->nonvolatile_ = std::make_unique<FileNonvolatileStore>(join(dir, kStateFile));
  image->nonvolatile_->load();  // a damaged state.json stops the open, not the first command
  image->dir_ = dir;
  image->config_ = std::move(config);
  return image;
}

ImageInfo Image::inspect(const std::string& dir) {
  ImageInfo info;
  info.config = read_device_config(dir);
  const std::string rpmb_path = check_partition_files(dir, info.config);
  // A simulator that has the image open holds an exclusive lock on every file of it.
  info.in_use = support::locked_by_another_process(rpmb_path);
  const std::unique_ptr<rpmb::FileStore> store = rpmb::FileStore::open_read_only(rpmb_path);
  check_rpmb_size(dir, *store, info.config);
  info.rpmb = store->state();
  rpmb::wipe(info.rpmb.key);  // only whether there is a key leaves the store
  info.nonvolatile = FileNonvolatileStore(join(dir, kStateFile)).load();
  info.directory = dir;
  return info;
}

// Every partition's file is named after it: user.img, boot0.img, boot1.img, rpmb.img, gp1.img …
std::string Image::file_name(Partition p) { return std::string(partition_name(p)) + ".img"; }

CardBackend Image::backend() { return backend_of(user_, boot_, general_purpose_, rpmb_.get(), nonvolatile_.get()); }

// ---------------------------------------------------------------------------------------------
// MemoryImage

MemoryImage::MemoryImage(const DeviceConfig& config) : config_(config) {
  validate(config_);
  user_ = std::make_unique<MemoryBlockStorage>(config_.user_capacity / kSectorSize);
  if (config_.boot_partition_size > 0) {
    for (auto& boot : boot_) {
      boot = std::make_unique<MemoryBlockStorage>(config_.boot_partition_size / kSectorSize);
    }
  }
  for (std::size_t i = 0; i < config_.general_purpose_partitions.size(); ++i) {
    general_purpose_[i] = std::make_unique<MemoryBlockStorage>(config_.general_purpose_partitions[i] / kSectorSize);
  }
  rpmb_ = std::make_unique<rpmb::MemoryStore>(rpmb_size_mult(config_));
}

CardBackend MemoryImage::backend() { return backend_of(user_, boot_, general_purpose_, rpmb_.get(), &nonvolatile_); }

}  // namespace emmcsim::mmc
