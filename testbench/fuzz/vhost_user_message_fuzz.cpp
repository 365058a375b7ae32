// libFuzzer target: the vhost-user message codec (transport/vhost_user_message.hpp), fed as the
// back-end reads a front-end's socket.
//
// Input: messages one after the other, each one byte giving the number of file descriptors that
// came with it (b % 9), then a 12-byte header and its payload. For each, as VhostUserSession
// reads it:
//   - decode_header; a MessageError ends the stream (the back-end closes the connection), and
//     such errors are always fatal;
//   - fewer payload bytes left than the header announces: the stream ends (the back-end would
//     wait for the rest, then see the connection close);
//   - decode_payload with the descriptor count; a MessageError (never fatal here) goes on to
//     the next message, as the back-end does.
// Invariants (std::abort with a message on violation):
//   - decode_header refusals are fatal, decode_payload refusals are not;
//   - an accepted header has version 1, no reply bit and size <= kMaxPayload;
//   - a decoded payload is the alternative its request takes, within the limits (1..8 memory
//     regions, none empty or wrapping; config bytes <= 256; a vring file index <= 255), with as
//     many descriptors as it needs;
//   - it re-encodes to a message that decodes to an equal payload;
//   - the same bytes read as a back-end request (what a front-end reads on the channel of
//     SET_BACKEND_REQ_FD: VRING_CALL, VRING_ERR, CONFIG_CHANGE_MSG) are refused without being
//     fatal, or decode to their payload (a vring state {index, num}, or none) and round-trip.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <variant>
#include <vector>

#include "emmcsim/transport/vhost_user_message.hpp"

namespace {

using namespace emmcsim::transport::vhost_user;

void require(bool condition, const char* what) {
  if (!condition) {
    std::fprintf(stderr, "vhost_user_message_fuzz: invariant violated: %s\n", what);
    std::abort();
  }
}

bool same_region(const MemoryRegion& a, const MemoryRegion& b) {
  return a.guest_address == b.guest_address && a.size == b.size && a.user_address == b.user_address &&
         a.mmap_offset == b.mmap_offset;
}

bool same(const Payload& a, const Payload& b) {
  if (a.index() != b.index()) return false;
  if (auto* x = std::get_if<U64Payload>(&a)) return x->value == std::get<U64Payload>(b).value;
  if (auto* x = std::get_if<VringState>(&a)) {
    const auto& y = std::get<VringState>(b);
    return x->index == y.index && x->num == y.num;
  }
  if (auto* x = std::get_if<VringAddress>(&a)) {
    const auto& y = std::get<VringAddress>(b);
    return x->index == y.index && x->flags == y.flags && x->descriptor == y.descriptor && x->used == y.used &&
           x->available == y.available && x->log == y.log;
  }
  if (auto* x = std::get_if<VringFile>(&a)) {
    const auto& y = std::get<VringFile>(b);
    return x->index == y.index && x->has_fd == y.has_fd;
  }
  if (auto* x = std::get_if<MemoryTable>(&a)) {
    const auto& y = std::get<MemoryTable>(b);
    if (x->regions.size() != y.regions.size()) return false;
    for (std::size_t i = 0; i < x->regions.size(); ++i)
      if (!same_region(x->regions[i], y.regions[i])) return false;
    return true;
  }
  if (auto* x = std::get_if<SingleMemoryRegion>(&a))
    return same_region(x->region, std::get<SingleMemoryRegion>(b).region);
  if (auto* x = std::get_if<ConfigSpace>(&a)) {
    const auto& y = std::get<ConfigSpace>(b);
    return x->offset == y.offset && x->flags == y.flags && x->bytes == y.bytes;
  }
  return true;  // NoPayload
}

void check_region(const MemoryRegion& r) {
  require(r.size > 0, "no empty region");
  require(r.guest_address + r.size > r.guest_address && r.user_address + r.size > r.user_address &&
              r.mmap_offset + r.size > r.mmap_offset,
          "no wrapping region");
}

std::size_t fds_needed(const Payload& p, std::uint32_t request, std::size_t given) {
  if (auto* t = std::get_if<MemoryTable>(&p)) return t->regions.size();
  if (auto* f = std::get_if<VringFile>(&p)) return f->has_fd ? 1 : 0;
  if (request == static_cast<std::uint32_t>(Request::add_mem_reg)) return 1;
  if (request == static_cast<std::uint32_t>(Request::set_backend_req_fd)) return 1;
  if (request == static_cast<std::uint32_t>(Request::rem_mem_reg)) return given;  // 0 or 1, the fd is dropped
  return 0;
}

// The message read by a front-end from the back-end channel.
void check_as_backend_request(const Header& h, const std::uint8_t* payload, std::size_t fds) {
  Payload decoded;
  try {
    decoded = decode_backend_payload(h.request, payload, h.size, fds);
  } catch (const MessageError& e) {
    require(!e.fatal(), "back-end request refusals are not fatal");
    return;
  }
  require(fds == 0, "back-end requests carry no descriptors");
  const bool vring = h.request == static_cast<std::uint32_t>(BackendRequest::vring_call) ||
                     h.request == static_cast<std::uint32_t>(BackendRequest::vring_err);
  require(vring ? std::holds_alternative<VringState>(decoded) && h.size == 8
                : std::holds_alternative<NoPayload>(decoded) && h.size == 0,
          "a back-end request decodes to the payload its request takes");
  const std::vector<std::uint8_t> again = encode_message(h.request, kVersion, decoded);
  const Payload twice = decode_backend_payload(h.request, again.data() + kHeaderSize, again.size() - kHeaderSize, 0);
  require(same(decoded, twice), "a re-encoded back-end request decodes equal");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::size_t at = 0;
  while (at < size) {
    const std::size_t fds = data[at++] % (kMaxFds + 1);
    Header h;
    try {
      h = decode_header(data + at, size - at);
    } catch (const MessageError& e) {
      require(e.fatal(), "header refusals are fatal");
      return 0;
    }
    require((h.flags & kFlagVersionMask) == kVersion && (h.flags & kFlagReply) == 0 && h.size <= kMaxPayload,
            "an accepted header is a version-1 request of bounded size");
    at += kHeaderSize;
    if (size - at < h.size) return 0;
    const std::uint8_t* payload = data + at;
    at += h.size;
    check_as_backend_request(h, payload, fds);
    Payload decoded;
    try {
      decoded = decode_payload(h.request, payload, h.size, fds);
    } catch (const MessageError& e) {
      require(!e.fatal(), "payload refusals are not fatal");
      continue;
    }
    require(fds_needed(decoded, h.request, fds) == fds, "as many descriptors as the payload needs");
    if (auto* t = std::get_if<MemoryTable>(&decoded)) {
      require(!t->regions.empty() && t->regions.size() <= kMaxMemoryRegions, "1..8 regions");
      for (const auto& r : t->regions) check_region(r);
    }
    if (auto* r = std::get_if<SingleMemoryRegion>(&decoded)) check_region(r->region);
    if (auto* c = std::get_if<ConfigSpace>(&decoded)) require(c->bytes.size() <= kMaxConfigSize, "config size");
    if (auto* f = std::get_if<VringFile>(&decoded)) require(f->index <= 0xFF, "vring file index");
    const std::vector<std::uint8_t> again = encode_message(h.request, kVersion, decoded);
    const Header h2 = decode_header(again.data(), again.size());
    require(h2.request == h.request && h2.size == again.size() - kHeaderSize, "re-encoded header");
    const Payload twice = decode_payload(h.request, again.data() + kHeaderSize, h2.size, fds);
    require(same(decoded, twice), "re-encoded payload decodes equal");
  }
  return 0;
}
