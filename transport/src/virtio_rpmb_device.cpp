// VirtioRpmbDevice (see virtio_rpmb_device.hpp).
#include "emmcsim/transport/virtio_rpmb_device.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <memory>

#include "emmcsim/rpmb/frame.hpp"
#include "emmcsim/rpmb/protocol.hpp"
#include "emmcsim/transport/bridge_rpmb_channel.hpp"

namespace emmcsim::transport {

namespace {

using rpmb::kFrameSize;
using rpmb::RequestType;

std::uint16_t frame_type(const std::uint8_t* frame) {
  return static_cast<std::uint16_t>((frame[510] << 8) | frame[511]);
}

bool is_write_type(std::uint16_t type) {
  return type == static_cast<std::uint16_t>(RequestType::program_key) ||
         type == static_cast<std::uint16_t>(RequestType::authenticated_write) ||
         type == static_cast<std::uint16_t>(RequestType::device_config_write);
}
bool is_read_type(std::uint16_t type) {
  return type == static_cast<std::uint16_t>(RequestType::read_counter) ||
         type == static_cast<std::uint16_t>(RequestType::authenticated_read) ||
         type == static_cast<std::uint16_t>(RequestType::result_read) ||
         type == static_cast<std::uint16_t>(RequestType::device_config_read);
}

std::vector<std::uint8_t> frames_at(const std::uint8_t* frames, std::size_t count) {
  return std::vector<std::uint8_t>(frames, frames + count * kFrameSize);
}

}  // namespace

VirtioRpmbConfig VirtioRpmbConfig::for_card(std::uint32_t rpmb_size_mult, bool thirty_two_frame_writes) {
  VirtioRpmbConfig c;
  c.capacity = static_cast<std::uint8_t>(std::min<std::uint32_t>(rpmb_size_mult, rpmb::kMaxSizeMult));
  c.max_wr_cnt = thirty_two_frame_writes ? 32 : 2;
  c.max_rd_cnt = 255;
  return c;
}

VirtioRpmbPlan plan_virtio_rpmb_request(const VirtioRpmbConfig& config, const std::uint8_t* request_frames,
                                        std::size_t request_bytes, std::uint64_t writable_bytes) {
  if (request_bytes == 0 || request_bytes % kFrameSize != 0)
    throw VirtioRpmbRequestError(fmt::format("the request is {} bytes, not whole 512-byte frames", request_bytes));
  const std::size_t frames = request_bytes / kFrameSize;
  const std::uint16_t type = frame_type(request_frames);
  VirtioRpmbPlan plan;
  plan.request.node = bridge::Node::rpmb;
  plan.request.multi = true;
  if (is_write_type(type)) {
    std::size_t burst = 1;
    while (burst < frames && frame_type(request_frames + burst * kFrameSize) == type) ++burst;
    const std::size_t rest = frames - burst;
    if (rest > 1 || (rest == 1 && frame_type(request_frames + burst * kFrameSize) !=
                                      static_cast<std::uint16_t>(RequestType::result_read)))
      throw VirtioRpmbRequestError(
          fmt::format("{} frames of type {:#06x} are followed by {} frames that are not one result read (0x0005)",
                      burst, type, rest));
    if (config.max_wr_cnt != 0 && burst > config.max_wr_cnt) {
      // virtio 1.2 §5.12: the device SHOULD answer with a general failure. It does so itself,
      // without the card, when the driver gave room for the response frame.
      if (writable_bytes < kFrameSize)
        throw VirtioRpmbRequestError(fmt::format(
            "{} frames to write, more than max_wr_cnt {} (and no room for a response)", burst, config.max_wr_cnt));
      rpmb::Frame response;
      response.set_type(static_cast<std::uint16_t>(type << 8));  // the response type of the request
      response.set_result(static_cast<std::uint16_t>(rpmb::ResultCode::general_failure));
      plan.device_response.assign(response.bytes(), response.bytes() + kFrameSize);
      plan.device_response_reason = fmt::format(
          "{} frames to write, more than max_wr_cnt {}: answered with a general failure", burst, config.max_wr_cnt);
      plan.response_frames = 1;
      return plan;
    }
    plan.request.commands.push_back(rpmb_write_command(frames_at(request_frames, burst), true));
    if (rest == 1) {
      if (writable_bytes < kFrameSize)
        throw VirtioRpmbRequestError(fmt::format("{} writable bytes: no room for the response frame", writable_bytes));
      plan.request.commands.push_back(rpmb_write_command(frames_at(request_frames + burst * kFrameSize, 1), false));
      plan.request.commands.push_back(rpmb_read_command(1));
      plan.response_frames = 1;
    }
    return plan;
  }
  if (!is_read_type(type)) throw VirtioRpmbRequestError(fmt::format("request type {:#06x} is no RPMB request", type));
  if (frames != 1)
    throw VirtioRpmbRequestError(fmt::format("a read-type request ({:#06x}) of {} frames, not 1", type, frames));
  std::uint64_t response = 1;
  if (type == static_cast<std::uint16_t>(RequestType::authenticated_read)) {
    response = writable_bytes / kFrameSize;
    if (config.max_rd_cnt != 0 && response > config.max_rd_cnt)
      throw VirtioRpmbRequestError(
          fmt::format("room for {} response frames, more than max_rd_cnt {}", response, config.max_rd_cnt));
  }
  if (response == 0 || writable_bytes < kFrameSize)
    throw VirtioRpmbRequestError(fmt::format("{} writable bytes: no room for a response frame", writable_bytes));
  plan.request.commands.push_back(rpmb_write_command(frames_at(request_frames, 1), false));
  plan.request.commands.push_back(rpmb_read_command(static_cast<std::size_t>(response)));
  plan.response_frames = static_cast<std::size_t>(response);
  return plan;
}

void VirtioRpmbDevice::serve(DescriptorChain chain, Completion done) {
  auto refuse = [&done](std::string why) { done(VirtioRpmbOutcome{0, std::move(why), std::nullopt}); };
  if (!chain.fault.empty()) return refuse(chain.fault);
  // Never gather more than the largest request (max_wr_cnt frames and a result read), or one
  // frame more for a write: enough to see that its burst is over max_wr_cnt.
  const std::size_t largest =
      (std::size_t{config_.max_wr_cnt == 0 ? std::uint8_t{32} : config_.max_wr_cnt} + 1) * kFrameSize;
  std::vector<std::uint8_t> request = chain.gather(largest + kFrameSize);
  if (chain.readable_bytes > largest && (request.size() < kFrameSize || !is_write_type(frame_type(request.data()))))
    return refuse(
        fmt::format("{} readable bytes, more than the largest request ({} bytes)", chain.readable_bytes, largest));
  VirtioRpmbPlan plan;
  try {
    plan = plan_virtio_rpmb_request(config_, request.data(), request.size(), chain.writable_bytes);
  } catch (const VirtioRpmbRequestError& e) {
    return refuse(e.what());
  }
  if (!plan.device_response.empty()) {
    const auto written =
        static_cast<std::uint32_t>(chain.scatter(plan.device_response.data(), plan.device_response.size()));
    return done(VirtioRpmbOutcome{written, std::move(plan.device_response_reason), std::nullopt});
  }
  const std::size_t response_frames = plan.response_frames;
  auto shared_chain = std::make_shared<DescriptorChain>(std::move(chain));
  port_.submit(std::move(plan.request), [shared_chain, response_frames, done = std::move(done)](bridge::Reply reply) {
    VirtioRpmbOutcome outcome;
    const auto* ioctl = std::get_if<bridge::IoctlReply>(&reply);
    if (ioctl == nullptr) {
      outcome.error = "the device answered with something other than an ioctl reply";
      return done(std::move(outcome));
    }
    if ((ioctl->status.flags & bridge::ReplyStatus::kTimed) != 0) outcome.simulated_ps = ioctl->status.simulated_ps;
    if (ioctl->status.error != 0) {
      outcome.error = fmt::format("MMC_IOC_MULTI_CMD on the rpmb node failed: {}", std::strerror(ioctl->status.error));
    } else if (response_frames > 0) {
      const std::vector<std::uint8_t>& data = ioctl->results.back().data;
      if (data.size() != response_frames * kFrameSize)
        outcome.error = "the device's reply does not match the request";
      else
        outcome.written = static_cast<std::uint32_t>(shared_chain->scatter(data.data(), data.size()));
    }
    done(std::move(outcome));
  });
}

std::uint64_t VirtioRpmbDevice::device_features() const {
  return vhost_user::feature::kVersion1 | vhost_user::feature::kRingIndirectDesc;
}

std::optional<std::vector<std::uint8_t>> VirtioRpmbDevice::read_config(std::uint32_t offset, std::uint32_t size) const {
  const auto bytes = config_.bytes();
  if (offset > bytes.size() || size > bytes.size() - offset) return std::nullopt;
  return std::vector<std::uint8_t>(bytes.begin() + offset, bytes.begin() + offset + size);
}

std::optional<std::string> VirtioRpmbDevice::write_config(std::uint32_t, const std::vector<std::uint8_t>&) {
  return std::string("the virtio-rpmb config space is read-only");
}

// One chain at a time: the completion, back on the connection's strand, returns the chain; the
// back-end then calls queue_event again, which pops the next.
void VirtioRpmbDevice::queue_event(DeviceQueues& queues, std::size_t queue) {
  if (queue != 0 || queues.in_flight(0) > 0) return;
  std::optional<DescriptorChain> chain = queues.pop(0);
  if (!chain) return;
  const std::uint16_t head = chain->head;
  serve(std::move(*chain), [queues = queues.shared_from_this(), head](VirtioRpmbOutcome outcome) {
    queues->post([head, outcome = std::move(outcome)](DeviceQueues& q) {
      if (!outcome.error.empty()) {
        q.log().warn("{}: request (chain {}): {}", q.name(), head, outcome.error);
      } else if (outcome.simulated_ps) {
        q.log().debug("{}: chain {} done: {} bytes, {:.3f} us simulated", q.name(), head, outcome.written,
                      static_cast<double>(*outcome.simulated_ps) / 1e6);
      } else {
        q.log().debug("{}: chain {} done: {} bytes", q.name(), head, outcome.written);
      }
      q.complete(0, head, outcome.written);
    });
  });
}

}  // namespace emmcsim::transport
