// A simulated card's storage: the partitions' block storage, the RPMB store and the
// non-volatile state, bundled as CardBackend for mmc::Card.
//
// On disk an image is a directory:
//   device.json   the DeviceConfig it was created with (to_json)
//   user.img      user data area, sparse (or a symlink to an existing raw disk image)
//   boot0.img, boot1.img  the boot partitions, when configured (JEDEC's boot partitions 1 and 2)
//   gp1.img..gp4.img  general-purpose partitions, when configured
//   rpmb.img      the RPMB store (rpmb::FileStore)
//   state.json    non-volatile card state (password, write protection), once something is set
#pragma once

#include <array>
#include <memory>
#include <string>

#include "emmcsim/mmc/block_storage.hpp"
#include "emmcsim/mmc/device_config.hpp"
#include "emmcsim/mmc/nonvolatile_state.hpp"
#include "emmcsim/mmc/partition.hpp"
#include "emmcsim/rpmb/file_store.hpp"
#include "emmcsim/rpmb/store.hpp"

namespace emmcsim::mmc {

// Non-owning view of everything a Card reads and writes. Partitions the configuration does not
// have are null.
struct CardBackend {
  BlockStorage* user = nullptr;
  std::array<BlockStorage*, 2> boot{};
  std::array<BlockStorage*, 4> general_purpose{};
  rpmb::Store* rpmb = nullptr;
  NonvolatileStore* nonvolatile = nullptr;

  // The block storage behind a data partition; null for rpmb or an absent partition.
  BlockStorage* storage(Partition p) const;
};

// The image could not be created or opened: missing or extra files, sizes that disagree with
// device.json, a bad device.json. what() says which file and why.
class ImageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct ImageCreateOptions {
  // Use this existing raw disk image as the user area (user.img becomes a symlink to its
  // absolute path); the configuration's user_capacity is replaced by the file's size, which
  // must be a multiple of 512 KiB.
  std::string existing_user_image;
  rpmb::Durability durability = rpmb::Durability::sync_every_commit;
};

// An image as `emmcsim image info` shows it: read by Image::inspect without locking or changing
// anything, so also while a simulator serves the image.
struct ImageInfo {
  std::string directory;
  DeviceConfig config;  // device.json
  // The RPMB partition as of its last commit, with the key zeroed: only key_programmed says
  // whether there is one.
  rpmb::PartitionState rpmb;
  NonvolatileState nonvolatile;  // state.json
  // Another process (a simulator serving the image) holds it: the values above may change at once.
  bool in_use = false;
};

class Image {
 public:
  // Creates DIR (must not exist, or be an empty directory) with every file of `config`.
  // On failure nothing is left behind.
  static std::unique_ptr<Image> create(const std::string& dir, const DeviceConfig& config,
                                       const ImageCreateOptions& options = {});
  // Opens an existing image; checks every file against device.json.
  static std::unique_ptr<Image> open(const std::string& dir,
                                     rpmb::Durability durability = rpmb::Durability::sync_every_commit);
  // Reads an existing image for inspection, checking every file against device.json as open()
  // does, but takes no lock and writes nothing: it works on an image a running simulator holds
  // (ImageInfo::in_use says so) and reads the RPMB store's last committed state
  // (rpmb::FileStore::open_read_only).
  static ImageInfo inspect(const std::string& dir);
  // The file in an image directory that holds partition `p`: "<partition_name>.img" (user.img,
  // boot0.img, boot1.img, rpmb.img, gp1.img …).
  static std::string file_name(Partition p);

  const std::string& directory() const { return dir_; }
  const DeviceConfig& config() const { return config_; }
  CardBackend backend();
  rpmb::FileStore& rpmb_store() { return *rpmb_; }

  static constexpr const char* kConfigFile = "device.json";
  static constexpr const char* kUserFile = "user.img";
  static constexpr const char* kStateFile = "state.json";

 private:
  Image() = default;
  std::string dir_;
  DeviceConfig config_;
  std::unique_ptr<FileBlockStorage> user_;
  std::array<std::unique_ptr<FileBlockStorage>, 2> boot_;
  std::array<std::unique_ptr<FileBlockStorage>, 4> general_purpose_;
  std::unique_ptr<rpmb::FileStore> rpmb_;
  std::unique_ptr<FileNonvolatileStore> nonvolatile_;
};

// RAM-backed storage for a configuration: tests, fuzzing, benchmarks.
class MemoryImage {
 public:
  explicit MemoryImage(const DeviceConfig& config);
  const DeviceConfig& config() const { return config_; }
  CardBackend backend();
  MemoryNonvolatileStore& nonvolatile() { return nonvolatile_; }
  rpmb::MemoryStore& rpmb_store() { return *rpmb_; }

 private:
  DeviceConfig config_;
  std::unique_ptr<MemoryBlockStorage> user_;
  std::array<std::unique_ptr<MemoryBlockStorage>, 2> boot_;
  std::array<std::unique_ptr<MemoryBlockStorage>, 4> general_purpose_;
  std::unique_ptr<rpmb::MemoryStore> rpmb_;
  MemoryNonvolatileStore nonvolatile_;
};

}  // namespace emmcsim::mmc
