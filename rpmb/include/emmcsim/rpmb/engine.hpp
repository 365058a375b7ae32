// The RPMB partition as the bus presents it (JESD84-B51 §6.6.22): the host writes a burst of
// request frames (CMD23 with the count and reliable-write flag, then CMD25) and later reads N
// response frames (CMD23 N, then CMD18). The engine knows nothing of eMMC, virtio or time;
// it reports the internal work each burst caused so a timed model can turn it into busy time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

#include "emmcsim/rpmb/frame.hpp"
#include "emmcsim/rpmb/mac.hpp"
#include "emmcsim/rpmb/partition_state.hpp"
#include "emmcsim/rpmb/store.hpp"

namespace emmcsim::rpmb {

struct EngineConfig {
  // EXT_CSD[166] WR_REL_PARAM bit 4 EN_RPMB_REL_WR: authenticated writes of 32 frames allowed
  // (1 and 2 frames always are).
  bool en_rpmb_rel_wr = false;
};

// Internal work caused by one burst, for timing models (no time here).
struct EngineWork {
  std::uint32_t mac_frames = 0;  // 284-byte units run through HMAC-SHA256
  std::uint32_t half_sectors_read = 0;
  std::uint32_t half_sectors_written = 0;
  std::uint32_t commits = 0;  // durable store commits

  EngineWork& operator+=(const EngineWork& o) {
    mac_frames += o.mac_frames;
    half_sectors_read += o.half_sectors_read;
    half_sectors_written += o.half_sectors_written;
    commits += o.commits;
    return *this;
  }
};

class Engine {
 public:
  explicit Engine(Store& store, EngineConfig config = {});

  // CMD23 (count, reliable) + CMD25 carrying `count` request frames. Write-type requests are
  // executed here and their outcome lands in the result register; read-type requests are
  // remembered until the host reads the response.
  EngineWork write_request(const Frame* frames, std::size_t count, bool reliable_write);

  // CMD23 (count) + CMD18: produces `count` response frames for the pending read-type request.
  // With nothing pending, or a count the response cannot have, every frame carries a general
  // failure and no MAC.
  EngineWork read_response(Frame* out, std::size_t count);

  const PartitionState& state() const { return store_.state(); }
  const DeviceConfiguration& device_configuration() const { return store_.state().device_configuration; }
  // The result register a result read would report now.
  const ResultRegister& result_register() const;
  std::uint32_t half_sectors() const { return store_.half_sectors(); }
  const EngineConfig& config() const { return config_; }

 private:
  struct WriteOutcome {
    PartitionState next;
    std::uint16_t address = 0;
    std::uint16_t count = 0;
    const std::uint8_t* data = nullptr;
  };

  EngineWork program_key(const Frame* frames, std::size_t count, bool reliable_write);
  EngineWork authenticated_write(const Frame* frames, std::size_t count, bool reliable_write);
  EngineWork device_config_write(const Frame* frames, std::size_t count, bool reliable_write);
  EngineWork reject_unknown_request(const Frame& frame);
  // The checks every authenticated write-type request passes, in JEDEC's order; the address
  // and form rules differ per request and come in as their verdicts.
  std::uint16_t check_authenticated_write(const Frame* frames, std::size_t count, bool address_valid, bool form_valid,
                                          EngineWork& work);
  // Commits an accepted request (its next state, data and result register) durably.
  EngineWork commit_write(ResponseType type, std::uint16_t address, const std::uint8_t* data, std::uint16_t count,
                          PartitionState next);
  // A rejected request changes nothing stored; only the result register reports it.
  EngineWork reject_write(ResponseType type, std::uint16_t result, std::uint16_t address);

  EngineWork respond_counter(const Frame& request, Frame* out, std::size_t count);
  EngineWork respond_data(const Frame& request, Frame* out, std::size_t count);
  EngineWork respond_config(const Frame& request, Frame* out, std::size_t count);
  EngineWork respond_result(Frame* out, std::size_t count);
  void fail_response(Frame* out, std::size_t count, ResponseType type);
  // A one-frame keyed response (counter, configuration): the frame to fill, or null when the
  // response was already answered with a failure (wrong count, no key).
  Frame* begin_single_response(const Frame& request, Frame* out, std::size_t count, ResponseType type);
  EngineWork sign_single_response(Frame& f);

  std::uint16_t with_expiry(std::uint16_t result) const;
  FrameAuthenticator* authenticator();
  bool allowed_write_count(std::size_t count) const;

  Store& store_;
  EngineConfig config_;
  std::optional<FrameAuthenticator> authenticator_;  // keyed once the key is programmed
  std::optional<Frame> pending_read_;                // read-type request awaiting CMD18
  // The result register of a rejected request or a failed commit. The store keeps the result
  // register of the last accepted request; this one is newer and lives until the next commit.
  std::optional<ResultRegister> unpersisted_result_;
  std::vector<std::uint8_t> scratch_;
};

}  // namespace emmcsim::rpmb
