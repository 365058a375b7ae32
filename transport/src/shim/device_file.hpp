// One open file description of a simulated device node (/dev/mmcblk0, ...boot0, ...boot1,
// ...rpmb) inside the LD_PRELOAD shim: its own connection to `emmcsim serve`, the node, the file
// offset and the open flags. Every descriptor that dup/dup2/fcntl(F_DUPFD) derives from the
// descriptor open() returned shares one DeviceFile, as they would share one struct file in the
// kernel. docs/shim.md describes the behaviour; each method says what it emulates.
//
// Methods return what the kernel returns: a value >= 0, or -errno. They never throw, never touch
// errno and never call an interposed symbol (the client talks to the socket with send/recv).
// Thread-safe: one mutex per DeviceFile serialises its operations and its connection.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <cstddef>
#include <ctime>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "emmcsim/transport/bridge_client.hpp"
#include "emmcsim/transport/bridge_protocol.hpp"

namespace emmcsim::transport::shim {

// Which node a path names, given the device name (EMMCSIM_DEVICE, "mmcblk0" when unset). Only
// absolute paths "/dev/<device>", "/dev/<device>boot0", "boot1" and "rpmb" match.
bool map_path(const char* path, bridge::Node& node);
// The daemon's socket: $EMMCSIM_SOCKET, else bridge::default_socket_path().
std::string socket_path();

class DeviceFile {
 public:
  // open(2) of `path` (a mapped path naming `node`) with `flags`: connects to the daemon and asks
  // for the node sizes. Returns nullptr and sets `error` (ECONNREFUSED/ENOENT without a daemon,
  // after one line on stderr; ENOENT for a node the card lacks; EEXIST for O_CREAT|O_EXCL).
  static std::shared_ptr<DeviceFile> open(const char* path, bridge::Node node, int flags, int& error);

  // stat(2) of a mapped path: asks the daemon whether the node exists (the same errors as open,
  // including the line on stderr when there is no daemon) and fills `st` as fstat would.
  // Returns 0 or -errno.
  static long stat_path(const char* path, bridge::Node node, struct stat& st);

  ~DeviceFile();
  DeviceFile(const DeviceFile&) = delete;
  DeviceFile& operator=(const DeviceFile&) = delete;

  bridge::Node node() const { return node_; }

  long read(void* buffer, std::size_t size);  // at the file offset, advancing it
  long write(const void* buffer, std::size_t size);
  long pread(void* buffer, std::size_t size, std::int64_t offset);  // at `offset`
  long pwrite(const void* buffer, std::size_t size, std::int64_t offset);
  std::int64_t lseek(std::int64_t offset, int whence);
  long fsync();
  // MMC_IOC_CMD, MMC_IOC_MULTI_CMD and the block-device ioctls; `argument` is the caller's
  // pointer. Anything else fails with EINVAL, as mmc_blk_ioctl and mmc_rpmb_ioctl answer.
  long ioctl(unsigned int request, void* argument);

  void stat(struct stat& st) const;
  int status_flags() const;          // fcntl(F_GETFL)
  void set_status_flags(int flags);  // fcntl(F_SETFL)

  // The identity of the placeholder descriptor open() handed out (st_dev, st_ino of the socket);
  // a descriptor with another identity is not this file any more (closed behind the shim's back,
  // e.g. by fclose of an fdopen'd stream, and reused).
  void set_identity(dev_t device, ino_t inode) {
    identity_device_ = device;
    identity_inode_ = inode;
  }
  bool has_identity(dev_t device, ino_t inode) const { return identity_device_ == device && identity_inode_ == inode; }

  // Called in a child after fork(): the next operation opens a new connection, so parent and
  // child never interleave requests on one socket.
  static void forked();

 private:
  DeviceFile(std::string path, std::string socket, bridge::Node node, int flags);

  bool block_node() const { return node_ != bridge::Node::rpmb; }
  bool readable() const;
  bool writable() const;
  // The connection, reopened after fork; nullptr (and -EIO) after the daemon was lost.
  bridge::BridgeClient* client(long& error);
  void lost(const char* what);  // marks the connection lost, one line on stderr
  template <typename Operation>
  long guarded(Operation&& operation);

  long read_at(std::uint8_t* out, std::size_t size, std::uint64_t position);
  long write_at(const std::uint8_t* in, std::size_t size, std::uint64_t position);
  long read_sectors(std::uint64_t offset, std::uint32_t length, std::uint8_t* out);
  long write_sectors(std::uint64_t offset, std::vector<std::uint8_t> data);
  long flush();
  long mmc_ioctl(bool multi, void* argument);
  long zero_out(const void* argument);

  const std::string path_;    // as opened, for messages
  const std::string socket_;  // the daemon's socket
  const bridge::Node node_;
  mutable std::mutex mutex_;
  int flags_;  // O_ACCMODE, O_PATH and the F_SETFL flags
  std::uint64_t offset_ = 0;
  std::uint64_t size_ = 0;  // the node's size in bytes
  std::unique_ptr<bridge::BridgeClient> client_;
  unsigned long generation_ = 0;  // fork generation the connection belongs to
  bool lost_ = false;
  struct timespec opened_at_ {};
  dev_t identity_device_ = 0;
  ino_t identity_inode_ = 0;
};

}  // namespace emmcsim::transport::shim
