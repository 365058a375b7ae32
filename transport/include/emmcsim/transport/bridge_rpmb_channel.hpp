// BridgeRpmbChannel: rpmb::RequestChannel over the MMC-ioctl bridge, batching exactly as
// mmc-utils and OP-TEE's supplicant do: the request bursts (send) are queued and go out with the
// response read (receive) as one MMC_IOC_MULTI_CMD on the rpmb node — CMD25 (write_flag 1, bit 31
// for a reliable write), CMD25 …, CMD18, blksz 512, flags 0xB5 (MMC_RSP_SPI_R1 | MMC_RSP_R1 |
// MMC_CMD_ADTC). With rpmb::Host on top, a C++ program drives the daemon as `mmc rpmb` does.
#pragma once

#include <stdexcept>
#include <vector>

#include "emmcsim/rpmb/host.hpp"
#include "emmcsim/transport/bridge_client.hpp"

namespace emmcsim::transport {

// The ioctl failed: error() is its errno.
class RpmbIoctlError : public std::runtime_error {
 public:
  RpmbIoctlError(int error, const std::string& what) : std::runtime_error(what), error_(error) {}
  int error() const { return error_; }

 private:
  int error_;
};

// The two commands every rpmb-node MMC_IOC_MULTI_CMD is made of, as mmc-utils builds them (blksz
// 512, flags 0xB5): CMD25 writing the frames in `data` (write_flag 1, bit 31 for a reliable
// write), and CMD18 reading `count` response frames.
bridge::IoctlCommand rpmb_write_command(std::vector<std::uint8_t> data, bool reliable_write);
bridge::IoctlCommand rpmb_read_command(std::size_t count);

class BridgeRpmbChannel final : public rpmb::RequestChannel {
 public:
  static constexpr std::uint32_t kFlags = 0xB5;

  explicit BridgeRpmbChannel(bridge::BridgeClient& client) : client_(client) {}
  void send(const rpmb::Frame* frames, std::size_t count, bool reliable_write) override;
  // Issues the queued sends and this read as one MMC_IOC_MULTI_CMD. Throws RpmbIoctlError when
  // the ioctl fails (the queue is cleared either way); BridgeClientError when the daemon is gone.
  void receive(rpmb::Frame* frames, std::size_t count) override;

  // The request of the last receive(), as sent (for tests).
  const bridge::IoctlRequest& last_request() const { return last_request_; }

 private:
  bridge::BridgeClient& client_;
  std::vector<bridge::IoctlCommand> pending_;
  bridge::IoctlRequest last_request_;
};

}  // namespace emmcsim::transport
