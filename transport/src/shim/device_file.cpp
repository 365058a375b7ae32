// An open simulated device node inside the LD_PRELOAD shim (see device_file.hpp).
//
// What it emulates, from Linux 6.x:
//  * user, boot0, boot1 are block devices (block/fops.c): reads stop at the end of the device
//    (0 at or past it), writes past the end fail with ENOSPC after a partial write up to it,
//    lseek is fixed_size_llseek (EINVAL beyond the end), fsync flushes the card's cache;
//  * rpmb is the character device drivers/mmc/core/block.c creates (mmc_rpmb_fileops): open,
//    release and ioctl only, so read/write fail with EINVAL, lseek with ESPIPE (no_llseek) and
//    fsync with EINVAL;
//  * MMC_IOC_CMD / MMC_IOC_MULTI_CMD as mmc_blk_ioctl_cmd / mmc_blk_ioctl_multi_cmd: EOVERFLOW
//    over 512 KiB per command, EINVAL over 255 commands, nothing sent for zero commands,
//    response[] copied back for every command and data for every read, also when the ioctl fails.
#include "device_file.hpp"

#include <fcntl.h>
#include <linux/blkzoned.h>
#include <linux/fs.h>
#include <linux/mmc/ioctl.h>
#include <sys/sysmacros.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>
#include <utility>

#include "libc.hpp"

namespace emmcsim::transport::shim {
namespace {

using bridge::Node;

constexpr std::uint64_t kSector = bridge::kSectorSize;
// The most one read or write moves (MAX_RW_COUNT: INT_MAX rounded down to a page).
constexpr std::size_t kMaxReadWrite = 0x7ffff000;
// What the kernel reports in F_GETFL on 64-bit (force_o_largefile); glibc defines O_LARGEFILE 0.
constexpr int kKernelLargeFile = 0100000;
// The flags F_SETFL may change (SETFL_MASK in fs/fcntl.c).
constexpr int kSettableFlags = O_APPEND | O_NONBLOCK | O_DIRECT | O_NOATIME | O_ASYNC;
constexpr unsigned kMmcBlockMajor = 179;
constexpr unsigned kRpmbCharMajor = 248;  // a dynamic character major, as Linux allocates one
constexpr unsigned kMinorsPerDisk = 8;    // CONFIG_MMC_BLOCK_MINORS

std::atomic<unsigned long> fork_generation{0};

const char* device_name() {
  const char* device = std::getenv("EMMCSIM_DEVICE");
  if (device == nullptr || device[0] == '\0') return "mmcblk0";
  if (std::strncmp(device, "/dev/", 5) == 0) device += 5;
  return device;
}

// The N of "mmcblkN" (0 for other names), for plausible device numbers.
unsigned device_index() {
  const char* name = device_name();
  const char* digits = name + std::strlen(name);
  while (digits > name && digits[-1] >= '0' && digits[-1] <= '9') --digits;
  const unsigned long value = std::strtoul(digits, nullptr, 10);
  return value < 1000 ? static_cast<unsigned>(value) : 0;
}

std::uint64_t round_up(std::uint64_t value) { return (value + kSector - 1) / kSector * kSector; }
std::uint64_t round_down(std::uint64_t value) { return value / kSector * kSector; }

// "emmcsim: cannot reach ..." from the client becomes "emmcsim-mmcioctl: PATH: cannot reach ...".
void report(const std::string& device_path, const char* what) {
  constexpr const char kClientPrefix[] = "emmcsim: ";
  if (std::strncmp(what, kClientPrefix, sizeof kClientPrefix - 1) == 0) what += sizeof kClientPrefix - 1;
  std::string line = "emmcsim-mmcioctl: " + device_path + ": " + what + "\n";
  write_stderr_line(line.data(), line.size());
}

template <typename T>
long put(void* argument, T value) {
  if (argument == nullptr) return -EFAULT;
  std::memcpy(argument, &value, sizeof value);
  return 0;
}

}  // namespace

bool map_path(const char* path, bridge::Node& node) {
  if (path == nullptr || std::strncmp(path, "/dev/", 5) != 0) return false;
  const char* device = device_name();
  const std::size_t length = std::strlen(device);
  const char* rest = path + 5;
  if (std::strncmp(rest, device, length) != 0) return false;
  rest += length;
  if (rest[0] == '\0') {
    node = Node::user;
  } else if (std::strcmp(rest, "boot0") == 0) {
    node = Node::boot0;
  } else if (std::strcmp(rest, "boot1") == 0) {
    node = Node::boot1;
  } else if (std::strcmp(rest, "rpmb") == 0) {
    node = Node::rpmb;
  } else {
    return false;
  }
  return true;
}

std::string socket_path() {
  const char* socket = std::getenv("EMMCSIM_SOCKET");
  if (socket != nullptr && socket[0] != '\0') return socket;
  return bridge::default_socket_path();
}

DeviceFile::DeviceFile(std::string path, std::string socket, bridge::Node node, int flags)
    : path_(std::move(path)), socket_(std::move(socket)), node_(node), flags_(flags) {
  ::clock_gettime(CLOCK_REALTIME, &opened_at_);
}

DeviceFile::~DeviceFile() {
  const int saved = errno;  // the last close(2) of a descriptor must not see the connection's
  client_.reset();
  errno = saved;
}

void DeviceFile::forked() { fork_generation.fetch_add(1); }

std::shared_ptr<DeviceFile> DeviceFile::open(const char* path, bridge::Node node, int flags, int& error) {
  // A device node exists: O_CREAT|O_EXCL fails, O_CREAT and O_TRUNC alone do nothing.
  if ((flags & (O_CREAT | O_EXCL)) == (O_CREAT | O_EXCL)) {
    error = EEXIST;
    return nullptr;
  }
  if ((flags & O_DIRECTORY) != 0) {
    error = ENOTDIR;
    return nullptr;
  }
  try {
    std::shared_ptr<DeviceFile> file(new DeviceFile(path, socket_path(), node, flags));
    try {
      file->client_ = std::make_unique<bridge::BridgeClient>(file->socket_);
      file->generation_ = fork_generation.load();
      const bridge::DescribeReply description = file->client_->describe();
      if (description.status.error != 0) {
        error = description.status.error;
        return nullptr;
      }
      const std::uint64_t size = description.node_size[static_cast<std::size_t>(node)];
      if (size == 0) {  // the card has no such partition, so Linux has no such node
        error = ENOENT;
        return nullptr;
      }
      file->size_ = round_down(size);
    } catch (const bridge::BridgeClientError& e) {
      report(file->path_, e.what());
      error = e.error() != 0 ? e.error() : EIO;
      return nullptr;
    } catch (const bridge::ProtocolError& e) {
      error = e.error();
      return nullptr;
    }
    return file;
  } catch (const std::bad_alloc&) {
    error = ENOMEM;
  } catch (const std::exception&) {
    error = EIO;
  }
  return nullptr;
}

long DeviceFile::stat_path(const char* path, bridge::Node node, struct stat& st) {
  int error = 0;
  const std::shared_ptr<DeviceFile> file = open(path, node, O_RDONLY, error);
  if (file == nullptr) return -error;
  file->stat(st);
  return 0;
}

bool DeviceFile::readable() const {
  const int mode = flags_ & O_ACCMODE;
  return (flags_ & O_PATH) == 0 && (mode == O_RDONLY || mode == O_RDWR);
}

bool DeviceFile::writable() const {
  const int mode = flags_ & O_ACCMODE;
  return (flags_ & O_PATH) == 0 && (mode == O_WRONLY || mode == O_RDWR);
}

void DeviceFile::lost(const char* what) {
  client_.reset();
  if (!lost_) report(path_, what);
  lost_ = true;
}

// Runs one exchange with the daemon: (re)connects after fork, turns a lost daemon into EIO with
// one line on stderr, and a request the encoder refuses into its errno. Called with mutex_ held.
template <typename Operation>
long DeviceFile::guarded(Operation&& operation) {
  if (lost_) return -EIO;
  try {
    if (client_ == nullptr || generation_ != fork_generation.load()) {
      client_.reset();  // after fork: the child's copy of the parent's connection
      generation_ = fork_generation.load();
      client_ = std::make_unique<bridge::BridgeClient>(socket_);
    }
    return operation(*client_);
  } catch (const bridge::BridgeClientError& e) {
    lost(e.what());
    return -EIO;
  } catch (const bridge::ProtocolError& e) {
    return -e.error();
  } catch (const std::bad_alloc&) {
    return -ENOMEM;
  } catch (const std::exception& e) {
    lost(e.what());
    return -EIO;
  }
}

long DeviceFile::read_sectors(std::uint64_t offset, std::uint32_t length, std::uint8_t* out) {
  return guarded([&](bridge::BridgeClient& client) -> long {
    bridge::BlockReadReply reply = client.read(bridge::BlockReadRequest{node_, offset, length});
    if (reply.status.error != 0) return -reply.status.error;
    if (reply.data.size() != length) {
      lost("the daemon answered a block read with the wrong length");
      return -EIO;
    }
    std::memcpy(out, reply.data.data(), length);
    return 0;
  });
}

long DeviceFile::write_sectors(std::uint64_t offset, std::vector<std::uint8_t> data) {
  return guarded([&](bridge::BridgeClient& client) -> long {
    bridge::BlockWriteRequest request;
    request.node = node_;
    request.offset = offset;
    request.data = std::move(data);
    const bridge::BlockWriteReply reply = client.write(request);
    return -reply.status.error;
  });
}

long DeviceFile::flush() {
  return guarded(
      [&](bridge::BridgeClient& client) -> long { return -client.flush(bridge::FlushRequest{node_}).status.error; });
}

// Reads [position, position + size) in aligned requests of at most 512 KiB.
long DeviceFile::read_at(std::uint8_t* out, std::size_t size, std::uint64_t position) {
  if (position >= size_) return 0;
  size = static_cast<std::size_t>(std::min<std::uint64_t>({size, kMaxReadWrite, size_ - position}));
  const std::uint64_t stop = position + size;
  std::vector<std::uint8_t> bounce;
  std::size_t done = 0;
  while (done < size) {
    const std::uint64_t at = position + done;
    const std::uint64_t start = round_down(at);
    const std::uint64_t end = std::min(round_up(stop), start + bridge::kMaxBlockTransfer);
    const std::size_t take = static_cast<std::size_t>(std::min(end, stop) - at);
    const auto length = static_cast<std::uint32_t>(end - start);
    long result = 0;
    if (start == at && take == length) {
      result = read_sectors(start, length, out + done);
    } else {
      bounce.resize(length);
      result = read_sectors(start, length, bounce.data());
      if (result == 0) std::memcpy(out + done, bounce.data() + (at - start), take);
    }
    if (result < 0) return done > 0 ? static_cast<long>(done) : result;
    done += take;
  }
  return static_cast<long>(done);
}

// Writes [position, position + size) in aligned requests of at most 512 KiB; a partial sector at
// either edge is read first and merged (read-modify-write, as the page cache does).
long DeviceFile::write_at(const std::uint8_t* in, std::size_t size, std::uint64_t position) {
  if (size == 0) return 0;
  if (position >= size_) return -ENOSPC;
  size = static_cast<std::size_t>(std::min<std::uint64_t>({size, kMaxReadWrite, size_ - position}));
  const std::uint64_t stop = position + size;
  std::size_t done = 0;
  while (done < size) {
    const std::uint64_t at = position + done;
    const std::uint64_t start = round_down(at);
    const std::uint64_t end = std::min(round_up(stop), start + bridge::kMaxBlockTransfer);
    const std::uint64_t chunk_stop = std::min(end, stop);
    const auto length = static_cast<std::size_t>(end - start);
    std::vector<std::uint8_t> block(length);
    long result = 0;
    if (at != start) result = read_sectors(start, kSector, block.data());
    const bool tail_shares_head = at != start && length == kSector;
    if (result == 0 && chunk_stop != end && !tail_shares_head) {
      result = read_sectors(end - kSector, kSector, block.data() + length - kSector);
    }
    if (result == 0) {
      std::memcpy(block.data() + (at - start), in + done, static_cast<std::size_t>(chunk_stop - at));
      result = write_sectors(start, std::move(block));
    }
    if (result < 0) return done > 0 ? static_cast<long>(done) : result;
    done += static_cast<std::size_t>(chunk_stop - at);
  }
  if ((flags_ & O_DSYNC) != 0) {  // O_SYNC and O_DSYNC: the data is durable when write returns
    const long synced = flush();
    if (synced < 0) return synced;
  }
  return static_cast<long>(done);
}

long DeviceFile::read(void* buffer, std::size_t size) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!readable()) return -EBADF;
  if (!block_node()) return -EINVAL;
  const long result = read_at(static_cast<std::uint8_t*>(buffer), size, offset_);
  if (result > 0) offset_ += static_cast<std::uint64_t>(result);
  return result;
}

long DeviceFile::write(const void* buffer, std::size_t size) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!writable()) return -EBADF;
  if (!block_node()) return -EINVAL;
  if ((flags_ & O_APPEND) != 0) offset_ = size_;  // appending to a block device: ENOSPC
  const long result = write_at(static_cast<const std::uint8_t*>(buffer), size, offset_);
  if (result > 0) offset_ += static_cast<std::uint64_t>(result);
  return result;
}

long DeviceFile::pread(void* buffer, std::size_t size, std::int64_t offset) {
  if (offset < 0) return -EINVAL;
  std::lock_guard<std::mutex> lock(mutex_);
  if (!readable()) return -EBADF;
  if (!block_node()) return -EINVAL;
  return read_at(static_cast<std::uint8_t*>(buffer), size, static_cast<std::uint64_t>(offset));
}

long DeviceFile::pwrite(const void* buffer, std::size_t size, std::int64_t offset) {
  if (offset < 0) return -EINVAL;
  std::lock_guard<std::mutex> lock(mutex_);
  if (!writable()) return -EBADF;
  if (!block_node()) return -EINVAL;
  // Linux's pwrite appends on an O_APPEND descriptor, whatever the offset.
  const std::uint64_t position = (flags_ & O_APPEND) != 0 ? size_ : static_cast<std::uint64_t>(offset);
  return write_at(static_cast<const std::uint8_t*>(buffer), size, position);
}

std::int64_t DeviceFile::lseek(std::int64_t offset, int whence) {
  std::lock_guard<std::mutex> lock(mutex_);
  if ((flags_ & O_PATH) != 0) return -EBADF;
  if (!block_node()) return -ESPIPE;
  const auto size = static_cast<std::int64_t>(size_);
  std::int64_t base = 0;
  switch (whence) {
    case SEEK_SET: base = 0; break;
    case SEEK_CUR:
      if (offset == 0) return static_cast<std::int64_t>(offset_);
      base = static_cast<std::int64_t>(offset_);
      break;
    case SEEK_END: base = size; break;
    case SEEK_DATA:  // the whole device is data
      if (offset < 0 || offset >= size) return -ENXIO;
      offset_ = static_cast<std::uint64_t>(offset);
      return offset;
    case SEEK_HOLE:  // and its end the only hole
      if (offset < 0 || offset >= size) return -ENXIO;
      offset_ = size_;
      return size;
    default: return -EINVAL;
  }
  if ((offset > 0 && base > std::numeric_limits<std::int64_t>::max() - offset)) return -EINVAL;
  const std::int64_t position = base + offset;
  if (position < 0 || position > size) return -EINVAL;
  offset_ = static_cast<std::uint64_t>(position);
  return position;
}

long DeviceFile::fsync() {
  std::lock_guard<std::mutex> lock(mutex_);
  if ((flags_ & O_PATH) != 0) return -EBADF;
  if (!block_node()) return -EINVAL;
  return flush();
}

long DeviceFile::ioctl(unsigned int request, void* argument) {
  std::lock_guard<std::mutex> lock(mutex_);
  if ((flags_ & O_PATH) != 0) return -EBADF;
  if (request == MMC_IOC_CMD) return mmc_ioctl(false, argument);
  if (request == MMC_IOC_MULTI_CMD) return mmc_ioctl(true, argument);
  if (!block_node()) return -EINVAL;  // mmc_rpmb_ioctl knows only the two above
  switch (request) {
    case BLKGETSIZE64: return put<std::uint64_t>(argument, size_);
    case BLKGETSIZE: return put<unsigned long>(argument, size_ / kSector);
    case BLKSSZGET: return put<int>(argument, kSector);
    case BLKPBSZGET: return put<unsigned int>(argument, kSector);
    case BLKIOMIN: return put<unsigned int>(argument, kSector);
    case BLKIOOPT: return put<unsigned int>(argument, 0);
    case BLKALIGNOFF: return put<int>(argument, 0);
    case BLKROGET: return put<int>(argument, 0);
    case BLKDISCARDZEROES: return put<unsigned int>(argument, 0);
    case BLKGETZONESZ:
    case BLKGETNRZONES: return put<std::uint32_t>(argument, 0);
    case BLKSECTGET: return put<unsigned short>(argument, bridge::kMaxBlockTransfer / kSector);
    case BLKRAGET:
    case BLKFRAGET: return put<long>(argument, 256);
    case BLKBSZGET: {  // set_init_blocksize: the largest power of two up to 4096 dividing the size
      int block = kSector;
      while (block < 4096 && size_ % (2 * static_cast<std::uint64_t>(block)) == 0) block *= 2;
      return put<int>(argument, block);
    }
    case BLKFLSBUF: return flush();
    case BLKZEROOUT: return zero_out(argument);
    case BLKDISCARD:
    case BLKSECDISCARD: return -EOPNOTSUPP;  // the bridge has no erase request (yet)
    default: return -EINVAL;                 // mmc_blk_ioctl's answer to anything else
  }
}

long DeviceFile::zero_out(const void* argument) {
  if (argument == nullptr) return -EFAULT;
  if (!writable()) return -EBADF;
  std::uint64_t range[2];
  std::memcpy(range, argument, sizeof range);
  const std::uint64_t start = range[0];
  const std::uint64_t length = range[1];
  if (start % kSector != 0 || length % kSector != 0) return -EINVAL;
  const std::uint64_t last = start + length - 1;
  if (last >= size_ || last < start) return -EINVAL;
  for (std::uint64_t at = start; at <= last;) {
    const std::uint64_t chunk = std::min<std::uint64_t>(bridge::kMaxBlockTransfer, last + 1 - at);
    const long result = write_sectors(at, std::vector<std::uint8_t>(static_cast<std::size_t>(chunk)));
    if (result < 0) return result;
    at += chunk;
  }
  return 0;
}

long DeviceFile::mmc_ioctl(bool multi, void* argument) {
  if (argument == nullptr) return -EFAULT;
  mmc_ioc_cmd* commands = nullptr;
  std::uint64_t count = 1;
  if (multi) {
    auto* header = static_cast<mmc_ioc_multi_cmd*>(argument);
    std::memcpy(&count, &header->num_of_cmds, sizeof count);
    if (count == 0) return 0;
    if (count > bridge::kMaxCommands) return -EINVAL;
    commands = header->cmds;
  } else {
    commands = static_cast<mmc_ioc_cmd*>(argument);
  }
  bridge::IoctlRequest request;
  request.node = node_;
  request.multi = multi;
  request.commands.resize(static_cast<std::size_t>(count));
  for (std::size_t i = 0; i < count; ++i) {
    mmc_ioc_cmd ic;
    std::memcpy(&ic, &commands[i], sizeof ic);
    const std::uint64_t bytes = std::uint64_t{ic.blksz} * ic.blocks;
    if (bytes > bridge::kMaxCommandBytes) return -EOVERFLOW;
    if (bytes != 0 && ic.data_ptr == 0) return -EFAULT;
    bridge::IoctlCommand& c = request.commands[i];
    c.write_flag = static_cast<std::uint32_t>(ic.write_flag);
    c.is_acmd = static_cast<std::uint32_t>(ic.is_acmd);
    c.opcode = ic.opcode;
    c.arg = ic.arg;
    c.flags = ic.flags;
    c.blksz = ic.blksz;
    c.blocks = ic.blocks;
    c.postsleep_min_us = ic.postsleep_min_us;
    c.postsleep_max_us = ic.postsleep_max_us;
    c.data_timeout_ns = ic.data_timeout_ns;
    c.cmd_timeout_ms = ic.cmd_timeout_ms;
    if (c.writes() && bytes != 0) {
      const auto* data = reinterpret_cast<const std::uint8_t*>(static_cast<std::uintptr_t>(ic.data_ptr));
      c.data.assign(data, data + bytes);
    }
  }
  return guarded([&](bridge::BridgeClient& client) -> long {
    const bridge::IoctlReply reply = client.ioctl(request);
    if (reply.results.size() != request.commands.size()) {
      // An error reply (the daemon refused to decode the request) carries no results.
      if (reply.status.error != 0) return -reply.status.error;
      lost("the daemon answered an ioctl with the wrong number of results");
      return -EIO;
    }
    for (std::size_t i = 0; i < request.commands.size(); ++i) {
      const bridge::IoctlCommand& c = request.commands[i];
      const bridge::IoctlCommandResult& result = reply.results[i];
      std::memcpy(&commands[i].response, result.response.data(), sizeof commands[i].response);
      const std::size_t bytes = c.data_bytes();
      if (!c.writes() && bytes != 0) {
        std::uint64_t data_ptr = 0;
        std::memcpy(&data_ptr, &commands[i].data_ptr, sizeof data_ptr);
        auto* data = reinterpret_cast<std::uint8_t*>(static_cast<std::uintptr_t>(data_ptr));
        std::memcpy(data, result.data.data(), std::min(bytes, result.data.size()));
      }
    }
    return -reply.status.error;
  });
}

void DeviceFile::stat(struct stat& st) const {
  std::memset(&st, 0, sizeof st);
  const unsigned index = device_index();
  st.st_dev = makedev(0, 5);  // devtmpfs
  st.st_ino = 0x454d4d00u + index * 4 + static_cast<unsigned>(node_);
  st.st_nlink = 1;
  st.st_uid = 0;
  st.st_blksize = 4096;
  st.st_atim = opened_at_;
  st.st_mtim = opened_at_;
  st.st_ctim = opened_at_;
  if (block_node()) {  // brw-rw---- root disk, 179:0 / 179:8 / 179:16 for mmcblk0
    st.st_mode = S_IFBLK | 0660;
    st.st_gid = 6;
    const unsigned disk = index * 3 + static_cast<unsigned>(node_);
    st.st_rdev = makedev(kMmcBlockMajor, disk * kMinorsPerDisk);
  } else {  // crw------- root root
    st.st_mode = S_IFCHR | 0600;
    st.st_gid = 0;
    st.st_rdev = makedev(kRpmbCharMajor, index);
  }
}

int DeviceFile::status_flags() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return (flags_ & (O_ACCMODE | O_PATH | O_DSYNC | O_SYNC | kSettableFlags)) | kKernelLargeFile;
}

void DeviceFile::set_status_flags(int flags) {
  std::lock_guard<std::mutex> lock(mutex_);
  flags_ = (flags_ & ~kSettableFlags) | (flags & kSettableFlags);
}

}  // namespace emmcsim::transport::shim
