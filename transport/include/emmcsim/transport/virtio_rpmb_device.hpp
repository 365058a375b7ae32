// VirtioRpmbDevice: virtio-rpmb (virtio 1.2 §5.12, device ID 28) on the card's one RPMB partition,
// a VhostUserDevice for VhostUserBackend.
//
// Config space (3 bytes, read-only): capacity in 128 KiB units (EXT_CSD RPMB_SIZE_MULT),
// max_wr_cnt (frames per authenticated write: 32 with EN_RPMB_REL_WR, else 2) and max_rd_cnt
// (frames per authenticated read: 255 here). One virtqueue, the requestq.
//
// A request is one descriptor chain: device-readable frames, then device-writable room for the
// response frames. Each chain becomes one MMC_IOC_MULTI_CMD on the rpmb node — the same ioctl
// sequence mmc-utils and OP-TEE's supplicant send — and goes to the DevicePort, so it is
// serialized with the bridge's clients, runs timed when the daemon does, and reads and writes the
// same key, counter and data as `mmc rpmb` does:
//   write type (key programming 0x0001, authenticated write 0x0003, config write 0x0006):
//     N frames [+ a result read 0x0005]  →  CMD25 (reliable) N; [CMD25 1, CMD18 1]
//     with the result read, one response frame; without it, none.
//   read type (counter 0x0002, authenticated read 0x0004, config read 0x0007, result read):
//     1 frame  →  CMD25 1, CMD18 M, where M = the writable room in frames for an authenticated
//     read (1 ≤ M ≤ max_rd_cnt) and 1 otherwise.
// As a VhostUserDevice: virtio features VERSION_1 and INDIRECT_DESC, every protocol feature the
// back-end implements (so QEMU and User-Mode Linux alike can drive it), one queue of up to 32768
// entries. The requestq is served one chain at a time, in order: the next is popped when the card
// has answered the one before. Each refusal is one warning in the log, each answer one debug line
// (with the simulated time when the port is timed).
//
// What the checks of JEDEC's RPMB (MAC, counter, address, key) decide is in the response frame's
// result, as on the card. A write of more than max_wr_cnt frames never reaches the card: with room
// for a response frame the device answers it with a general failure (0x0001) itself (virtio 1.2
// §5.12). A chain that is no RPMB request (not whole frames, an unknown type, such a write without
// room for the response, no room for a read's response) is refused: nothing is written and the
// chain is returned with 0 bytes used.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "emmcsim/transport/bridge_protocol.hpp"
#include "emmcsim/transport/device_port.hpp"
#include "emmcsim/transport/split_virtqueue.hpp"
#include "emmcsim/transport/vhost_user_device.hpp"

namespace emmcsim::transport {

inline constexpr std::uint32_t kVirtioRpmbDeviceId = 28;

struct VirtioRpmbConfig {
  std::uint8_t capacity = 0;    // 128 KiB units, 1..128
  std::uint8_t max_wr_cnt = 2;  // frames per authenticated write
  std::uint8_t max_rd_cnt = 255;

  std::array<std::uint8_t, 3> bytes() const { return {capacity, max_wr_cnt, max_rd_cnt}; }
  // From the card's RPMB_SIZE_MULT and whether 32-frame writes are enabled (EN_RPMB_REL_WR).
  static VirtioRpmbConfig for_card(std::uint32_t rpmb_size_mult, bool thirty_two_frame_writes);
};

class VirtioRpmbRequestError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct VirtioRpmbPlan {
  bridge::IoctlRequest request;     // MMC_IOC_MULTI_CMD on the rpmb node (no commands: the card is not asked)
  std::size_t response_frames = 0;  // frames the last command reads (0: a write without result read)
  // A request the device answers itself, without the card (a write of more than max_wr_cnt
  // frames): the response frame, with the general failure result, and why.
  std::vector<std::uint8_t> device_response;
  std::string device_response_reason;
};

// The ioctl sequence for a request of `request_bytes` readable bytes and `writable_bytes` of
// room. Throws VirtioRpmbRequestError, saying why, for a chain that is no RPMB request. A write
// burst of more than max_wr_cnt frames is answered by the device (`device_response`) when there
// is room for a response frame, as virtio 1.2 §5.12 says the device SHOULD, and refused without.
VirtioRpmbPlan plan_virtio_rpmb_request(const VirtioRpmbConfig& config, const std::uint8_t* request_frames,
                                        std::size_t request_bytes, std::uint64_t writable_bytes);

// What became of one chain.
struct VirtioRpmbOutcome {
  std::uint32_t written = 0;  // bytes put into the chain's writable buffers (the used length)
  std::string error;          // why the chain was refused or failed; empty on success
  // With the timed model behind the port: the request's simulated duration on the eMMC bus and
  // in the device, in picoseconds.
  std::optional<std::uint64_t> simulated_ps;
};

class VirtioRpmbDevice final : public VhostUserDevice {
 public:
  using Completion = std::function<void(VirtioRpmbOutcome)>;

  VirtioRpmbDevice(DevicePort& port, VirtioRpmbConfig config) : port_(port), config_(config) {}
  const VirtioRpmbConfig& config() const { return config_; }

  // Serves one chain. `done` runs on the device's owner (or at once for a refused chain); the
  // chain's buffers are written before it runs and stay mapped as long as the chain lives.
  void serve(DescriptorChain chain, Completion done);

  // ---- VhostUserDevice ----
  std::uint32_t device_id() const override { return kVirtioRpmbDeviceId; }
  std::uint64_t device_features() const override;
  std::uint64_t protocol_features() const override { return kSupportedProtocolFeatures; }
  std::size_t queue_count() const override { return 1; }
  std::uint32_t max_queue_size() const override { return vring::kMaxSize; }
  std::string queue_name(std::size_t) const override { return "requestq"; }
  std::optional<std::vector<std::uint8_t>> read_config(std::uint32_t offset, std::uint32_t size) const override;
  std::optional<std::string> write_config(std::uint32_t offset, const std::vector<std::uint8_t>& bytes) override;
  void queue_event(DeviceQueues& queues, std::size_t queue) override;

 private:
  DevicePort& port_;
  VirtioRpmbConfig config_;
};

}  // namespace emmcsim::transport
