// BridgeRpmbChannel (see bridge_rpmb_channel.hpp).
#include "emmcsim/transport/bridge_rpmb_channel.hpp"

#include <cerrno>
#include <cstring>

namespace emmcsim::transport {

bridge::IoctlCommand rpmb_write_command(std::vector<std::uint8_t> data, bool reliable_write) {
  bridge::IoctlCommand c;
  c.opcode = 25;
  c.write_flag = 1u | (reliable_write ? 1u << 31 : 0u);
  c.flags = BridgeRpmbChannel::kFlags;
  c.blksz = rpmb::kFrameSize;
  c.blocks = static_cast<std::uint32_t>(data.size() / rpmb::kFrameSize);
  c.data = std::move(data);
  return c;
}

bridge::IoctlCommand rpmb_read_command(std::size_t count) {
  bridge::IoctlCommand c;
  c.opcode = 18;
  c.flags = BridgeRpmbChannel::kFlags;
  c.blksz = rpmb::kFrameSize;
  c.blocks = static_cast<std::uint32_t>(count);
  return c;
}

void BridgeRpmbChannel::send(const rpmb::Frame* frames, std::size_t count, bool reliable_write) {
  std::vector<std::uint8_t> data(count * rpmb::kFrameSize);
  for (std::size_t i = 0; i < count; ++i)
    std::memcpy(data.data() + i * rpmb::kFrameSize, frames[i].bytes(), rpmb::kFrameSize);
  pending_.push_back(rpmb_write_command(std::move(data), reliable_write));
}

void BridgeRpmbChannel::receive(rpmb::Frame* frames, std::size_t count) {
  pending_.push_back(rpmb_read_command(count));

  last_request_ = bridge::IoctlRequest{};
  last_request_.node = bridge::Node::rpmb;
  last_request_.multi = true;
  last_request_.commands.swap(pending_);
  const bridge::IoctlReply reply = client_.ioctl(last_request_);
  if (reply.status.error != 0) {
    throw RpmbIoctlError(
        reply.status.error,
        "MMC_IOC_MULTI_CMD on the rpmb node failed: " + std::string(std::strerror(reply.status.error)) +
            (client_.last_error_message().empty() ? "" : " (" + client_.last_error_message() + ")"));
  }
  if (reply.results.size() != last_request_.commands.size() ||
      reply.results.back().data.size() != count * rpmb::kFrameSize)
    throw RpmbIoctlError(EPROTO, "the daemon's reply does not match the request");
  const std::vector<std::uint8_t>& data = reply.results.back().data;
  for (std::size_t i = 0; i < count; ++i) frames[i] = rpmb::Frame::from_bytes(data.data() + i * rpmb::kFrameSize);
}

}  // namespace emmcsim::transport
