// The host's side of RPMB: builds and signs request frames, runs the bus sequences of each
// operation and verifies the responses. Used by the CLI, the tests and the testbench.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "emmcsim/rpmb/frame.hpp"
#include "emmcsim/rpmb/protocol.hpp"
#include "emmcsim/rpmb/mac.hpp"

namespace emmcsim::rpmb {

class Engine;

// How a host reaches an RPMB partition: the engine directly here; the eMMC bus, the MMC ioctl
// bridge or virtio-rpmb elsewhere.
class RequestChannel {
 public:
  virtual ~RequestChannel() = default;
  // CMD23 (count | reliable << 31) + CMD25.
  virtual void send(const Frame* frames, std::size_t count, bool reliable_write) = 0;
  // CMD23 (count) + CMD18.
  virtual void receive(Frame* frames, std::size_t count) = 0;
};

class EngineChannel final : public RequestChannel {
 public:
  explicit EngineChannel(Engine& engine) : engine_(engine) {}
  void send(const Frame* frames, std::size_t count, bool reliable_write) override;
  void receive(Frame* frames, std::size_t count) override;

 private:
  Engine& engine_;
};

// Request frames as the real clients build them (mmc-utils, OP-TEE, U-Boot).
namespace requests {
Frame program_key(const Key& key);
Frame read_counter(const Nonce& nonce);
Frame authenticated_read(std::uint16_t address, const Nonce& nonce);  // block count 0, as clients send
Frame result_read();
Frame device_config_read(const Nonce& nonce);
// Unsigned frames; sign() puts the MAC in the last one.
std::vector<Frame> authenticated_write(std::uint16_t address, std::uint32_t write_counter, const std::uint8_t* data,
                                       std::size_t half_sectors);
Frame device_config_write(std::uint16_t config_address, std::uint8_t value, std::uint32_t write_counter);
void sign(FrameAuthenticator& authenticator, std::vector<Frame>& frames);
}  // namespace requests

struct HostResult {
  std::uint16_t result = 0;         // result field of the response
  std::uint16_t response_type = 0;  // type field of the response
  std::uint32_t write_counter = 0;
  std::optional<bool> mac_valid;  // set when the host holds the key and a MAC was expected
  bool nonce_matches = true;      // the response echoed the request's nonce
  // The response answers this request: its type, and for an authenticated write the counter
  // one above the one it was signed with. A result read after a write that never reached the
  // device (a bus CRC error, say) returns an earlier request's result, and that is no success.
  bool answers_request = true;
  std::vector<std::uint8_t> data;  // authenticated read: N * 256 bytes

  bool ok() const { return result_ok(result) && mac_valid.value_or(true) && nonce_matches && answers_request; }
};

class Host {
 public:
  Host(RequestChannel& channel, std::optional<Key> key);

  bool has_key() const { return authenticator_.has_value(); }

  HostResult program_key(const Key& key);
  HostResult read_counter(const Nonce& nonce = {});
  // Reads the counter, then writes 1, 2 or 32 half-sectors under it (needs the key). The
  // result's MAC is verified; the counter's is not needed (see host.cpp).
  HostResult write(std::uint16_t address, const std::uint8_t* data, std::size_t half_sectors);
  // Writes under an explicit counter (replays, tests).
  HostResult write_with_counter(std::uint16_t address, const std::uint8_t* data, std::size_t half_sectors,
                                std::uint32_t write_counter);
  HostResult read(std::uint16_t address, std::size_t half_sectors, const Nonce& nonce = {});
  HostResult config_write(std::uint16_t config_address, std::uint8_t value);
  HostResult config_read(const Nonce& nonce = {});
  HostResult result_read();

 private:
  HostResult send_write_type(const std::vector<Frame>& request, RequestType type);
  HostResult collect(const std::vector<Frame>& response, RequestType request, const Nonce* nonce, bool expect_mac);

  RequestChannel& channel_;
  std::optional<FrameAuthenticator> authenticator_;
};

}  // namespace emmcsim::rpmb
