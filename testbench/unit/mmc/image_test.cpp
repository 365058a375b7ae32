// Image directories: create() writes every file the configuration calls for (sparse, mode 0600,
// device.json last) and leaves nothing behind when it fails; open() accepts exactly what create()
// made and refuses, naming the file, every mismatch with device.json: missing, resized or extra
// partition files, a bad or missing device.json, a damaged state.json. inspect() reads an image
// as `image info` shows it, without locks, also while another open holds it. An existing raw
// disk image can be adopted as the user area. MemoryImage gives the same backend shape in RAM.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <ostream>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "emmcsim/mmc/block_storage.hpp"
#include "emmcsim/mmc/device_config.hpp"
#include "emmcsim/mmc/image.hpp"
#include "emmcsim/mmc/nonvolatile_state.hpp"
#include "emmcsim/mmc/partition.hpp"
#include "scratch_directory.hpp"

namespace emmcsim::mmc {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::HasSubstr;

constexpr std::uint64_t KiB = 1024;
constexpr std::uint64_t MiB = 1024 * KiB;

using emmcsim::testing::ScratchDirectory;

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out) throw std::runtime_error("cannot write " + path);
}

std::set<std::string> names_in(const std::string& dir) {
  std::set<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) names.insert(entry.path().filename().string());
  return names;
}

template <typename Function>
std::string error_of(Function&& function) {
  try {
    function();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no exception)";
}

// Small enough to create in milliseconds, with every kind of partition.
DeviceConfig small_config() {
  DeviceConfig config = default_device_config();
  config.user_capacity = 4 * MiB;
  config.boot_partition_size = 256 * KiB;
  config.rpmb_size = 128 * KiB;
  config.general_purpose_partitions = {512 * KiB, 1 * MiB};
  return config;
}

std::vector<std::uint8_t> filled(std::uint32_t sectors, std::uint8_t value) {
  return std::vector<std::uint8_t>(static_cast<std::size_t>(sectors) * kSectorSize, value);
}

std::vector<std::uint8_t> read_back(BlockStorage& storage, std::uint64_t sector, std::uint32_t count) {
  std::vector<std::uint8_t> out(static_cast<std::size_t>(count) * kSectorSize);
  storage.read(sector, count, out.data());
  return out;
}

class ImageTest : public ::testing::Test {
 protected:
  ScratchDirectory scratch_;
  std::string dir_ = scratch_.file("card");
};

// ---------------------------------------------------------------------------------------------
// Create

using ImageCreate = ImageTest;

TEST_F(ImageCreate, WritesEveryConfiguredFileAndDeviceJson) {
  const DeviceConfig config = small_config();
  auto image = Image::create(dir_, config);
  EXPECT_EQ(image->directory(), dir_);
  EXPECT_TRUE(image->config() == config);
  EXPECT_EQ(names_in(dir_), (std::set<std::string>{"device.json", "user.img", "boot0.img", "boot1.img", "gp1.img",
                                                   "gp2.img", "rpmb.img"}));
  EXPECT_EQ(fs::file_size(dir_ + "/user.img"), 4 * MiB);
  EXPECT_EQ(fs::file_size(dir_ + "/boot0.img"), 256 * KiB);
  EXPECT_EQ(fs::file_size(dir_ + "/boot1.img"), 256 * KiB);
  EXPECT_EQ(fs::file_size(dir_ + "/gp1.img"), 512 * KiB);
  EXPECT_EQ(fs::file_size(dir_ + "/gp2.img"), 1 * MiB);
  EXPECT_TRUE(parse_device_config(read_text(dir_ + "/device.json")) == config);
  EXPECT_EQ(image->rpmb_store().size_mult(), 1u);
  EXPECT_FALSE(image->rpmb_store().state().key_programmed);
}

TEST_F(ImageCreate, FilesAreMode0600AndTheDirectory0700) {
  auto image = Image::create(dir_, small_config());
  struct stat st {};
  ASSERT_EQ(::stat(dir_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  for (const std::string& name : names_in(dir_)) {
    ASSERT_EQ(::stat((dir_ + "/" + name).c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u) << name;
  }
}

TEST_F(ImageCreate, TheDefaultEightGibImageIsSparse) {
  auto image = Image::create(dir_, default_device_config());
  struct stat st {};
  ASSERT_EQ(::stat((dir_ + "/user.img").c_str(), &st), 0);
  EXPECT_EQ(static_cast<std::uint64_t>(st.st_size), 8ULL << 30);
  EXPECT_LT(static_cast<std::uint64_t>(st.st_blocks) * 512, 1 * MiB);
}

TEST_F(ImageCreate, BootFilesExistOnlyWhenBootPartitionsAreConfigured) {
  DeviceConfig config = small_config();
  config.boot_partition_size = 0;
  config.general_purpose_partitions.clear();
  auto image = Image::create(dir_, config);
  EXPECT_EQ(names_in(dir_), (std::set<std::string>{"device.json", "user.img", "rpmb.img"}));
  const CardBackend backend = image->backend();
  EXPECT_EQ(backend.boot[0], nullptr);
  EXPECT_EQ(backend.boot[1], nullptr);
  EXPECT_EQ(backend.storage(Partition::gp1), nullptr);
}

TEST_F(ImageCreate, IntoAnExistingEmptyDirectory) {
  ASSERT_TRUE(fs::create_directory(dir_));
  auto image = Image::create(dir_, small_config());
  EXPECT_TRUE(fs::exists(dir_ + "/device.json"));
}

TEST_F(ImageCreate, RefusesANonEmptyDirectoryAndTouchesNothing) {
  ASSERT_TRUE(fs::create_directory(dir_));
  write_text(dir_ + "/notes.txt", "mine");
  EXPECT_THAT(error_of([&] { Image::create(dir_, small_config()); }),
              AllOf(HasSubstr("image " + dir_), HasSubstr("not empty")));
  EXPECT_EQ(names_in(dir_), std::set<std::string>{"notes.txt"});
  EXPECT_EQ(read_text(dir_ + "/notes.txt"), "mine");
}

TEST_F(ImageCreate, RefusesAnExistingImage) {
  Image::create(dir_, small_config());
  EXPECT_THROW(Image::create(dir_, small_config()), ImageError);
  EXPECT_NO_THROW(Image::open(dir_));
}

TEST_F(ImageCreate, RefusesAPathThatIsAFile) {
  write_text(dir_, "a file");
  EXPECT_THAT(error_of([&] { Image::create(dir_, small_config()); }), HasSubstr("not a directory"));
  EXPECT_EQ(read_text(dir_), "a file");
}

TEST_F(ImageCreate, AnInvalidConfigurationCreatesNothing) {
  DeviceConfig config = small_config();
  config.boot_partition_size = 100000;  // not a multiple of 128 KiB
  EXPECT_THROW(Image::create(dir_, config), ConfigError);
  EXPECT_FALSE(fs::exists(dir_));
}

// Makes any file grow beyond `limit` bytes fail with EFBIG (instead of killing us with SIGXFSZ)
// for the life of the object: a disk that fills up part-way through a creation.
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t limit) {
    previous_handler_ = ::signal(SIGXFSZ, SIG_IGN);
    ::getrlimit(RLIMIT_FSIZE, &previous_);
    rlimit lowered = previous_;
    lowered.rlim_cur = limit;
    if (::setrlimit(RLIMIT_FSIZE, &lowered) != 0) throw std::runtime_error("setrlimit failed");
  }
  ~FileSizeLimit() {
    ::setrlimit(RLIMIT_FSIZE, &previous_);
    ::signal(SIGXFSZ, previous_handler_);
  }
  FileSizeLimit(const FileSizeLimit&) = delete;
  FileSizeLimit& operator=(const FileSizeLimit&) = delete;

 private:
  rlimit previous_{};
  sighandler_t previous_handler_;
};

TEST_F(ImageCreate, AFailureHalfwayThroughTheDataFilesLeavesNothing) {
  DeviceConfig config = small_config();
  config.general_purpose_partitions = {512 * KiB, 8 * MiB};  // gp2.img cannot be made
  {
    FileSizeLimit limit(6 * MiB);
    EXPECT_THAT(error_of([&] { Image::create(dir_, config); }), HasSubstr("gp2.img"));
  }
  EXPECT_FALSE(fs::exists(dir_)) << "left: " << ::testing::PrintToString(names_in(dir_));
}

TEST_F(ImageCreate, AFailureCreatingTheRpmbStoreLeavesNothing) {
  DeviceConfig config = small_config();
  config.rpmb_size = 16 * MiB;  // every data file fits under the limit, the RPMB store does not
  {
    FileSizeLimit limit(8 * MiB);
    EXPECT_THAT(error_of([&] { Image::create(dir_, config); }), HasSubstr("rpmb.img"));
  }
  EXPECT_FALSE(fs::exists(dir_)) << "left: " << ::testing::PrintToString(names_in(dir_));
}

TEST_F(ImageCreate, AFailureInAnExistingEmptyDirectoryEmptiesItAgain) {
  ASSERT_TRUE(fs::create_directory(dir_));
  DeviceConfig config = small_config();
  config.rpmb_size = 16 * MiB;
  {
    FileSizeLimit limit(8 * MiB);
    EXPECT_ANY_THROW(Image::create(dir_, config));
  }
  ASSERT_TRUE(fs::is_directory(dir_)) << "the directory was the user's; it stays";
  EXPECT_TRUE(names_in(dir_).empty()) << ::testing::PrintToString(names_in(dir_));
}

TEST_F(ImageCreate, AnInterruptedCreationIsRefusedByOpen) {
  // What a crash before the last step leaves: every data file, no device.json.
  Image::create(dir_, small_config());
  fs::remove(dir_ + "/device.json");
  EXPECT_THAT(error_of([&] { Image::open(dir_); }),
              AllOf(HasSubstr("image " + dir_), HasSubstr("device.json is missing"), HasSubstr("interrupted")));
}

TEST_F(ImageCreate, PassesTheDurabilityToTheRpmbStore) {
  ImageCreateOptions options;
  options.durability = rpmb::Durability::os_managed;
  auto image = Image::create(dir_, small_config(), options);
  EXPECT_EQ(image->rpmb_store().durability(), rpmb::Durability::os_managed);
}

// ---------------------------------------------------------------------------------------------
// Open

using ImageOpen = ImageTest;

TEST_F(ImageOpen, GetsBackTheConfigurationDataAndState) {
  NonvolatileState state;
  state.password = {1, 2, 3};
  state.temporary_wp_groups[Partition::gp2] = {1};
  {
    auto image = Image::create(dir_, small_config());
    const CardBackend backend = image->backend();
    backend.user->write(8191, 1, filled(1, 0x11).data());
    backend.boot[1]->write(3, 2, filled(2, 0x22).data());
    backend.storage(Partition::gp2)->write(0, 1, filled(1, 0x33).data());
    backend.nonvolatile->save(state);
  }
  auto image = Image::open(dir_);
  EXPECT_TRUE(image->config() == small_config());
  const CardBackend backend = image->backend();
  EXPECT_EQ(backend.user->sectors(), 8192u);
  EXPECT_EQ(read_back(*backend.user, 8191, 1), filled(1, 0x11));
  EXPECT_EQ(read_back(*backend.boot[1], 3, 2), filled(2, 0x22));
  EXPECT_EQ(read_back(*backend.boot[0], 3, 2), filled(2, 0));
  EXPECT_EQ(read_back(*backend.general_purpose[1], 0, 1), filled(1, 0x33));
  EXPECT_TRUE(backend.nonvolatile->load() == state);
  EXPECT_EQ(backend.rpmb, &image->rpmb_store());
}

TEST_F(ImageOpen, BackendMapsEachPartitionToItsFile) {
  auto image = Image::create(dir_, small_config());
  const CardBackend backend = image->backend();
  EXPECT_EQ(backend.storage(Partition::user), backend.user);
  EXPECT_EQ(backend.storage(Partition::boot1), backend.boot[0]);
  EXPECT_EQ(backend.storage(Partition::boot2), backend.boot[1]);
  EXPECT_EQ(backend.storage(Partition::gp1), backend.general_purpose[0]);
  EXPECT_EQ(backend.storage(Partition::gp2), backend.general_purpose[1]);
  EXPECT_EQ(backend.storage(Partition::gp3), nullptr);
  EXPECT_EQ(backend.storage(Partition::gp4), nullptr);
  EXPECT_EQ(backend.storage(Partition::rpmb), nullptr);
  EXPECT_EQ(backend.boot[0]->sectors(), 512u);
  EXPECT_EQ(backend.general_purpose[0]->sectors(), 1024u);
  EXPECT_EQ(backend.general_purpose[1]->sectors(), 2048u);
  ASSERT_NE(backend.nonvolatile, nullptr);
  // Writes through one partition never show up in another.
  backend.boot[0]->write(0, 1, filled(1, 0x44).data());
  EXPECT_EQ(read_back(*backend.boot[1], 0, 1), filled(1, 0));
  EXPECT_EQ(read_back(*backend.user, 0, 1), filled(1, 0));
}

TEST_F(ImageOpen, ASecondOpenWhileInUseIsRefused) {
  auto image = Image::create(dir_, small_config());
  EXPECT_THAT(error_of([&] { Image::open(dir_); }), HasSubstr("in use by another process"));
  image.reset();
  EXPECT_NO_THROW(Image::open(dir_));
}

TEST_F(ImageOpen, AMissingDirectoryIsNamed) {
  EXPECT_THAT(error_of([&] { Image::open(dir_); }), AllOf(HasSubstr("image " + dir_), HasSubstr("No such file")));
}

// One way to damage an image made from small_config(), and what the refusal must say.
struct Damage {
  const char* name;
  std::function<void(const std::string& dir)> apply;
  const char* message;
};

void PrintTo(const Damage& damage, std::ostream* out) { *out << damage.name; }

void rewrite_config(const std::string& dir, const std::function<void(DeviceConfig&)>& change) {
  DeviceConfig config = small_config();
  change(config);
  write_text(dir + "/device.json", to_json(config));
}

class ImageOpenDamaged : public ::testing::TestWithParam<Damage> {
 protected:
  ScratchDirectory scratch_;
  std::string dir_ = scratch_.file("card");
};

TEST_P(ImageOpenDamaged, IsRefusedWithAMessageNamingTheFile) {
  Image::create(dir_, small_config());
  ASSERT_NO_THROW(Image::open(dir_)) << "the undamaged image must open";
  GetParam().apply(dir_);
  EXPECT_THAT(error_of([&] { Image::open(dir_); }), HasSubstr(GetParam().message));
  EXPECT_THAT(error_of([&] { Image::inspect(dir_); }), HasSubstr(GetParam().message))
      << "inspect checks the files as open does";
}

const Damage kDamages[] = {
    {"MissingDeviceJson", [](const std::string& d) { fs::remove(d + "/device.json"); }, "device.json is missing"},
    {"DeviceJsonNotJson", [](const std::string& d) { write_text(d + "/device.json", "{ not json"); }, "device.json: "},
    {"DeviceJsonUnknownField",
     [](const std::string& d) { write_text(d + "/device.json", "{\"user_capacity\": \"4MiB\", \"bogus_field\": 1}"); },
     "bogus_field"},
    {"DeviceJsonInvalidValue",
     [](const std::string& d) { rewrite_config(d, [](DeviceConfig& c) { c.boot_partition_size = 100000; }); },
     "device.json: "},
    {"MissingUser", [](const std::string& d) { fs::remove(d + "/user.img"); }, "user.img is missing"},
    {"MissingBoot1", [](const std::string& d) { fs::remove(d + "/boot1.img"); }, "boot1.img is missing"},
    {"MissingGp2", [](const std::string& d) { fs::remove(d + "/gp2.img"); }, "gp2.img is missing"},
    {"MissingRpmb", [](const std::string& d) { fs::remove(d + "/rpmb.img"); }, "rpmb.img is missing"},
    {"ShortBoot0", [](const std::string& d) { fs::resize_file(d + "/boot0.img", 128 * KiB); },
     "boot0.img is 131072 bytes but device.json says 256 KiB"},
    {"LongUser", [](const std::string& d) { fs::resize_file(d + "/user.img", 4 * MiB + 512); },
     "user.img is 4194816 bytes but device.json says 4 MiB"},
    {"ShortGp1", [](const std::string& d) { fs::resize_file(d + "/gp1.img", 1000); },
     "gp1.img is 1000 bytes but device.json says 512 KiB"},
    {"ExtraGp3", [](const std::string& d) { write_text(d + "/gp3.img", ""); },
     "gp3.img exists but device.json configures only 2 general-purpose partitions"},
    {"ConfigDropsAGp",
     [](const std::string& d) { rewrite_config(d, [](DeviceConfig& c) { c.general_purpose_partitions.pop_back(); }); },
     "gp2.img exists but device.json configures only 1 general-purpose partition"},
    {"ConfigDropsBoot",
     [](const std::string& d) { rewrite_config(d, [](DeviceConfig& c) { c.boot_partition_size = 0; }); },
     "boot0.img exists but device.json configures no boot partitions"},
    {"ConfigGrowsBoot",
     [](const std::string& d) { rewrite_config(d, [](DeviceConfig& c) { c.boot_partition_size = 512 * KiB; }); },
     "boot0.img is 262144 bytes but device.json says 512 KiB"},
    {"ConfigGrowsRpmb",
     [](const std::string& d) { rewrite_config(d, [](DeviceConfig& c) { c.rpmb_size = 256 * KiB; }); },
     "rpmb.img holds a 128 KiB RPMB partition but device.json says 256 KiB"},
    {"UserIsADirectory",
     [](const std::string& d) {
       fs::remove(d + "/user.img");
       fs::create_directory(d + "/user.img");
     },
     "user.img is not a regular file"},
    {"DanglingUserLink",
     [](const std::string& d) {
       fs::remove(d + "/user.img");
       fs::create_symlink("/nonexistent/raw.img", d + "/user.img");
     },
     "user.img links to /nonexistent/raw.img, which cannot be opened"},
    {"CorruptState", [](const std::string& d) { write_text(d + "/state.json", "{\"format\": 1, \"password\": 7}"); },
     "state.json: password"},
};

INSTANTIATE_TEST_SUITE_P(Image, ImageOpenDamaged, ::testing::ValuesIn(kDamages),
                         [](const ::testing::TestParamInfo<Damage>& param_info) {
                           return std::string(param_info.param.name);
                         });

TEST_F(ImageOpen, MessagesNameTheImageDirectory) {
  Image::create(dir_, small_config());
  fs::remove(dir_ + "/boot1.img");
  const std::string message = error_of([&] { Image::open(dir_); });
  EXPECT_THAT(message, HasSubstr("image " + dir_ + ": boot1.img is missing (device.json configures 256 KiB"));
  EXPECT_THROW(Image::open(dir_), ImageError);
}

// ---------------------------------------------------------------------------------------------
// Inspecting, also while a simulator holds the image

using ImageInspect = ImageTest;

// Moves the RPMB write counter to `counter`, with a key, as accepted writes do.
void commit_counter(rpmb::FileStore& store, std::uint32_t counter) {
  rpmb::PartitionState next = store.state();
  next.key_programmed = true;
  next.key.fill(0x5A);
  next.write_counter = counter;
  store.commit(rpmb::Commit{&next, 0, 0, nullptr});
}

TEST_F(ImageInspect, ReadsAnImageAnotherOpenHoldsWithoutDisturbingIt) {
  const DeviceConfig config = small_config();
  auto holder = Image::create(dir_, config);  // holds every file locked, as `emmcsim serve` does
  commit_counter(holder->rpmb_store(), 2);
  NonvolatileState state;
  state.password = {1, 2, 3};
  state.temporary_wp_groups[Partition::boot2] = {3};
  holder->backend().nonvolatile->save(state);

  const ImageInfo info = Image::inspect(dir_);
  EXPECT_TRUE(info.in_use);
  EXPECT_EQ(info.directory, dir_);
  EXPECT_TRUE(info.config == config);
  EXPECT_TRUE(info.rpmb.key_programmed);
  EXPECT_EQ(info.rpmb.write_counter, 2u);
  EXPECT_EQ(info.rpmb.key, rpmb::Key{}) << "the key never leaves the store";
  EXPECT_TRUE(info.nonvolatile == state);

  // The inspection took no lock: the holder goes on, and what it commits is seen next time.
  EXPECT_THAT(error_of([&] { Image::open(dir_); }), HasSubstr("in use by another process"));
  commit_counter(holder->rpmb_store(), 3);
  EXPECT_EQ(Image::inspect(dir_).rpmb.write_counter, 3u);

  holder.reset();
  const ImageInfo after = Image::inspect(dir_);
  EXPECT_FALSE(after.in_use);
  EXPECT_EQ(after.rpmb.write_counter, 3u);
  EXPECT_NO_THROW(Image::open(dir_));
}

TEST_F(ImageInspect, ChangesNothing) {
  Image::create(dir_, small_config());
  const std::set<std::string> names = names_in(dir_);
  const std::string rpmb_before = read_text(dir_ + "/rpmb.img");
  const ImageInfo info = Image::inspect(dir_);
  EXPECT_FALSE(info.in_use);
  EXPECT_FALSE(info.rpmb.key_programmed);
  EXPECT_TRUE(info.nonvolatile == NonvolatileState{});
  EXPECT_EQ(names_in(dir_), names) << "no state.json, no temporary file";
  EXPECT_EQ(read_text(dir_ + "/rpmb.img"), rpmb_before);
}

TEST(ImageFileNames, AreThePartitionNames) {
  EXPECT_EQ(Image::file_name(Partition::user), "user.img");
  EXPECT_EQ(Image::file_name(Partition::boot1), "boot0.img");  // JEDEC's boot partition 1
  EXPECT_EQ(Image::file_name(Partition::boot2), "boot1.img");
  EXPECT_EQ(Image::file_name(Partition::rpmb), rpmb::FileStore::kFileName);
  EXPECT_EQ(Image::file_name(Partition::gp3), "gp3.img");
}

// ---------------------------------------------------------------------------------------------
// Adopting an existing raw disk image as the user area

using ImageUserAdoption = ImageTest;

TEST_F(ImageUserAdoption, LinksTheRawImageAndTakesItsSize) {
  const std::string raw = scratch_.file("disk.raw");
  {
    std::vector<std::uint8_t> contents(3 * MiB, 0);
    std::fill_n(contents.begin() + 512, 512, std::uint8_t{0xAB});  // sector 1
    std::ofstream out(raw, std::ios::binary);
    out.write(reinterpret_cast<const char*>(contents.data()), static_cast<std::streamsize>(contents.size()));
  }
  ImageCreateOptions options;
  // A relative path: the link must still be absolute so the image directory can move.
  options.existing_user_image = fs::relative(raw, fs::current_path()).string();
  {
    auto image = Image::create(dir_, small_config(), options);
    EXPECT_EQ(image->config().user_capacity, 3 * MiB);
    EXPECT_EQ(image->backend().user->sectors(), 3 * MiB / 512);
    EXPECT_EQ(read_back(*image->backend().user, 1, 1), filled(1, 0xAB));
    image->backend().user->write(2, 1, filled(1, 0xCD).data());
  }
  ASSERT_TRUE(fs::is_symlink(dir_ + "/user.img"));
  const fs::path target = fs::read_symlink(dir_ + "/user.img");
  EXPECT_TRUE(target.is_absolute()) << target;
  EXPECT_TRUE(fs::equivalent(target, raw));
  EXPECT_EQ(parse_device_config(read_text(dir_ + "/device.json")).user_capacity, 3 * MiB);
  // The raw file got the write; the image reopens through the link.
  EXPECT_EQ(read_text(raw).substr(1024, 512), std::string(512, '\xCD'));
  auto reopened = Image::open(dir_);
  EXPECT_EQ(reopened->config().user_capacity, 3 * MiB);
}

TEST_F(ImageUserAdoption, RefusesASizeThatIsNotAMultipleOf512KiB) {
  const std::string raw = scratch_.file("odd.raw");
  write_text(raw, std::string(1 * MiB + 512, '\0'));
  ImageCreateOptions options;
  options.existing_user_image = raw;
  EXPECT_THAT(error_of([&] { Image::create(dir_, small_config(), options); }),
              AllOf(HasSubstr(raw), HasSubstr("1049088 bytes is not a multiple of 512 KiB")));
  EXPECT_THROW(Image::create(dir_, small_config(), options), ImageError);
  EXPECT_FALSE(fs::exists(dir_));
}

TEST_F(ImageUserAdoption, RefusesASizeTheDeviceCannotHave) {
  const std::string raw = scratch_.file("tiny.raw");
  write_text(raw, std::string(512 * KiB, '\0'));  // below the 1 MiB minimum
  ImageCreateOptions options;
  options.existing_user_image = raw;
  EXPECT_THAT(error_of([&] { Image::create(dir_, small_config(), options); }),
              AllOf(HasSubstr(raw), HasSubstr("cannot be the user area")));
  EXPECT_FALSE(fs::exists(dir_));
}

TEST_F(ImageUserAdoption, RefusesAMissingRawImage) {
  ImageCreateOptions options;
  options.existing_user_image = scratch_.file("absent.raw");
  EXPECT_THAT(error_of([&] { Image::create(dir_, small_config(), options); }),
              AllOf(HasSubstr("absent.raw"), HasSubstr("No such file")));
  EXPECT_FALSE(fs::exists(dir_));
}

TEST_F(ImageUserAdoption, ARawImageInUseIsRefusedAndLeftAlone) {
  const std::string raw = scratch_.file("busy.raw");
  auto holder = FileBlockStorage::create(raw, 2 * MiB / 512);
  ImageCreateOptions options;
  options.existing_user_image = raw;
  EXPECT_THAT(error_of([&] { Image::create(dir_, small_config(), options); }), HasSubstr("in use by another process"));
  EXPECT_FALSE(fs::exists(dir_)) << "the symlink and the directory are removed again";
  EXPECT_EQ(fs::file_size(raw), 2 * MiB) << "the raw image itself is never removed";
}

// ---------------------------------------------------------------------------------------------
// In memory

TEST(ImageInMemory, HasTheConfiguredPartitionsAndSizes) {
  MemoryImage image(small_config());
  EXPECT_TRUE(image.config() == small_config());
  const CardBackend backend = image.backend();
  EXPECT_EQ(backend.user->sectors(), 4 * MiB / 512);
  EXPECT_EQ(backend.boot[0]->sectors(), 512u);
  EXPECT_EQ(backend.boot[1]->sectors(), 512u);
  EXPECT_EQ(backend.storage(Partition::gp2)->sectors(), 2048u);
  EXPECT_EQ(backend.storage(Partition::gp3), nullptr);
  EXPECT_EQ(backend.rpmb, &image.rpmb_store());
  EXPECT_EQ(image.rpmb_store().half_sectors(), 512u);  // 128 KiB of 256-byte half-sectors
  EXPECT_EQ(backend.nonvolatile, &image.nonvolatile());
  backend.boot[1]->write(0, 1, filled(1, 9).data());
  EXPECT_EQ(read_back(*backend.boot[0], 0, 1), filled(1, 0));
}

TEST(ImageInMemory, WithoutBootPartitionsTheyAreNull) {
  DeviceConfig config = small_config();
  config.boot_partition_size = 0;
  MemoryImage image(config);
  EXPECT_EQ(image.backend().boot[0], nullptr);
  EXPECT_EQ(image.backend().storage(Partition::boot2), nullptr);
}

TEST(ImageInMemory, RefusesAnInvalidConfiguration) {
  DeviceConfig config = small_config();
  config.rpmb_size = 0;
  EXPECT_THROW(MemoryImage{config}, ConfigError);
}

}  // namespace
}  // namespace emmcsim::mmc
