// libFuzzer target: the MMC-ioctl bridge protocol (transport/bridge_protocol.hpp) and what the
// daemon does with a decoded request (LinuxBlockDriver over a CardHostBus on a small mmc::Card).
//
// Input: a byte stream as a client would send it over the daemon's socket — messages one after
// the other, each a 16-byte header and payload_length bytes. For each message, as BridgeSession
// reads it:
//   - decode_header; a ProtocolError ends the stream (the server closes the connection);
//   - fewer payload bytes left than the header announces: decoding the short payload must fail,
//     and the stream ends (the server would wait for the rest, then see the connection close);
//   - a request type: decode_request; a reply type: decode_reply (the other one must refuse it);
//     a ProtocolError (never fatal here) goes on to the next message, as the server does.
// At most kMaxMessages messages per input.
//
// Invariants (std::abort with a message on violation):
//   protocol   - decode_header refusals are fatal and EPROTO; payload refusals are not fatal and
//                carry EINVAL, EOVERFLOW or ENOMEM;
//              - a decoded message re-encodes to exactly the bytes it came from (the format has one
//                encoding per value) and the re-encoded message decodes to an equal value;
//              - limits: at most 255 commands (or results), no command moves more than 512 KiB,
//                a writing command carries exactly blksz * blocks data bytes, a reading one none;
//                block transfers 1..512 KiB in whole sectors; at most 32 MiB per ioctl request.
//   driver     each decoded request runs through LinuxBlockDriver on one card (a fresh card per
//              input: 1 MiB user area, byte addressed, 2 × 128 KiB boot, 128 KiB RPMB, 64 KiB
//              cache, RPMB key not programmed). After each:
//              - the reply is the type answering the request; an ioctl reply has one result per
//                command, read data of blksz * blocks bytes for every reading command and none for
//                writing ones; a block read reply has `length` bytes when it succeeded, none when
//                not; a describe reply is the driver's description; errno values are positive;
//              - the reply encodes (the server must be able to send it) and decodes to an equal
//                value;
//              - the card is in tran — unless the request itself asked for a state change the
//                kernel would pass through as well: an ioctl command CMD0, CMD5, CMD7 or CMD15, or
//                a CMD19 bus-test write with its data (the card then waits in btst for CMD14);
//                the card is then rebuilt for the rest of the input. A data command without data
//                and a request that failed must always leave the card in tran;
//              - after a request on the rpmb node the card's current partition is the user area —
//                unless the request's own CMD6 wrote PARTITION_CONFIG (the kernel then trusts the
//                caller's value, whatever the card did with it; the card is rebuilt afterwards);
//              - the RPMB write counter never decreases.
//
// Compile with -DBRIDGE_PROTOCOL_FUZZ_TRACE to print each message and its outcome on stderr.
#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "emmcsim/mmc/card.hpp"
#include "emmcsim/mmc/device_config.hpp"
#include "emmcsim/mmc/host_bus.hpp"
#include "emmcsim/mmc/image.hpp"
#include "emmcsim/mmc/linux_block_driver.hpp"
#include "emmcsim/mmc/partition.hpp"
#include "emmcsim/mmc/registers.hpp"
#include "emmcsim/transport/bridge_protocol.hpp"

namespace {

namespace mmc = emmcsim::mmc;
namespace transport = emmcsim::transport;
namespace bridge = emmcsim::transport::bridge;

constexpr std::size_t kMaxMessages = 64;

[[noreturn]] void violated(const char* what) {
  std::fprintf(stderr, "bridge_protocol_fuzz: invariant violated: %s\n", what);
  std::abort();
}
void require(bool invariant, const char* what) {
  if (!invariant) violated(what);
}

#ifdef BRIDGE_PROTOCOL_FUZZ_TRACE
#define TRACE(...) std::fprintf(stderr, __VA_ARGS__)
#else
#define TRACE(...) static_cast<void>(0)
#endif

// ---- equality of decoded values ------------------------------------------------------------

bool same(const bridge::IoctlCommand& a, const bridge::IoctlCommand& b) {
  return a.write_flag == b.write_flag && a.is_acmd == b.is_acmd && a.opcode == b.opcode && a.arg == b.arg &&
         a.flags == b.flags && a.blksz == b.blksz && a.blocks == b.blocks && a.postsleep_min_us == b.postsleep_min_us &&
         a.postsleep_max_us == b.postsleep_max_us && a.data_timeout_ns == b.data_timeout_ns &&
         a.cmd_timeout_ms == b.cmd_timeout_ms && a.data == b.data;
}

bool same(const bridge::ReplyStatus& a, const bridge::ReplyStatus& b) {
  return a.error == b.error && a.flags == b.flags && a.simulated_ps == b.simulated_ps;
}

bool same(const bridge::Request& a, const bridge::Request& b) {
  if (a.index() != b.index()) return false;
  if (const auto* x = std::get_if<bridge::IoctlRequest>(&a)) {
    const auto& y = std::get<bridge::IoctlRequest>(b);
    if (x->node != y.node || x->multi != y.multi || x->commands.size() != y.commands.size()) return false;
    for (std::size_t i = 0; i < x->commands.size(); ++i)
      if (!same(x->commands[i], y.commands[i])) return false;
    return true;
  }
  if (const auto* x = std::get_if<bridge::BlockReadRequest>(&a)) {
    const auto& y = std::get<bridge::BlockReadRequest>(b);
    return x->node == y.node && x->offset == y.offset && x->length == y.length;
  }
  if (const auto* x = std::get_if<bridge::BlockWriteRequest>(&a)) {
    const auto& y = std::get<bridge::BlockWriteRequest>(b);
    return x->node == y.node && x->offset == y.offset && x->data == y.data;
  }
  if (const auto* x = std::get_if<bridge::FlushRequest>(&a)) return x->node == std::get<bridge::FlushRequest>(b).node;
  return true;  // DescribeRequest
}

bool same(const bridge::Reply& a, const bridge::Reply& b) {
  if (a.index() != b.index()) return false;
  if (const auto* x = std::get_if<bridge::IoctlReply>(&a)) {
    const auto& y = std::get<bridge::IoctlReply>(b);
    if (!same(x->status, y.status) || x->results.size() != y.results.size()) return false;
    for (std::size_t i = 0; i < x->results.size(); ++i)
      if (x->results[i].response != y.results[i].response || x->results[i].data != y.results[i].data) return false;
    return true;
  }
  if (const auto* x = std::get_if<bridge::BlockReadReply>(&a)) {
    const auto& y = std::get<bridge::BlockReadReply>(b);
    return same(x->status, y.status) && x->data == y.data;
  }
  if (const auto* x = std::get_if<bridge::BlockWriteReply>(&a))
    return same(x->status, std::get<bridge::BlockWriteReply>(b).status);
  if (const auto* x = std::get_if<bridge::FlushReply>(&a))
    return same(x->status, std::get<bridge::FlushReply>(b).status);
  if (const auto* x = std::get_if<bridge::DescribeReply>(&a)) {
    const auto& y = std::get<bridge::DescribeReply>(b);
    return same(x->status, y.status) && x->node_size == y.node_size && x->rpmb_size_mult == y.rpmb_size_mult &&
           x->rel_sectors == y.rel_sectors && x->cid == y.cid;
  }
  const auto& x = std::get<bridge::ErrorReply>(a);
  const auto& y = std::get<bridge::ErrorReply>(b);
  return same(x.status, y.status) && x.message == y.message;
}

bool is_request_type(bridge::MessageType t) { return static_cast<std::uint16_t>(t) < 0x80; }

// ---- limits ----------------------------------------------------------------------------------

void check_limits(const bridge::Request& request) {
  if (const auto* q = std::get_if<bridge::IoctlRequest>(&request)) {
    require(!q->commands.empty() && q->commands.size() <= bridge::kMaxCommands, "1..255 commands per ioctl");
    require(q->multi || q->commands.size() == 1, "MMC_IOC_CMD carries one command");
    std::uint64_t total = 0;
    for (const bridge::IoctlCommand& c : q->commands) {
      const std::uint64_t bytes = std::uint64_t{c.blksz} * c.blocks;
      require(bytes <= bridge::kMaxCommandBytes, "no command moves more than 512 KiB");
      require(c.data.size() == (c.writes() ? bytes : 0), "write data is blksz * blocks bytes, reads carry none");
      total += bytes;
    }
    require(total <= bridge::kMaxRequestDataBytes, "an ioctl request moves at most 32 MiB");
  } else if (const auto* r = std::get_if<bridge::BlockReadRequest>(&request)) {
    require(r->length > 0 && r->length <= bridge::kMaxBlockTransfer && r->length % 512 == 0 && r->offset % 512 == 0,
            "block reads: 1..512 KiB in whole sectors");
  } else if (const auto* w = std::get_if<bridge::BlockWriteRequest>(&request)) {
    require(!w->data.empty() && w->data.size() <= bridge::kMaxBlockTransfer && w->data.size() % 512 == 0 &&
                w->offset % 512 == 0,
            "block writes: 1..512 KiB in whole sectors");
  }
}

void check_limits(const bridge::Reply& reply) {
  if (const auto* p = std::get_if<bridge::IoctlReply>(&reply)) {
    require(p->results.size() <= bridge::kMaxCommands, "at most 255 results");
    for (const auto& r : p->results) require(r.data.size() <= bridge::kMaxCommandBytes, "result data at most 512 KiB");
  } else if (const auto* b = std::get_if<bridge::BlockReadReply>(&reply)) {
    require(b->data.size() <= bridge::kMaxBlockTransfer, "block read reply data at most 512 KiB");
  }
}

// decode(encode(value)) == value, and encode(value) is the bytes `value` was decoded from.
template <typename Value, typename Encode, typename Decode>
void check_round_trip(const Value& value, std::uint32_t request_id, const std::uint8_t* original, std::size_t size,
                      Encode encode, Decode decode) {
  const std::vector<std::uint8_t> bytes = encode(request_id, value);
  require(bytes.size() >= bridge::kHeaderSize, "an encoded message has a header");
  if (original != nullptr) {
    require(bytes.size() == size && std::equal(bytes.begin(), bytes.end(), original),
            "a decoded message re-encodes to the same bytes");
  }
  try {
    const bridge::MessageHeader header = bridge::decode_header(bytes.data(), bytes.size());
    require(header.request_id == request_id, "the request id survives the round trip");
    require(header.payload_length == bytes.size() - bridge::kHeaderSize, "payload_length is the payload's size");
    const Value again = decode(header, bytes.data() + bridge::kHeaderSize, header.payload_length);
    require(same(value, again), "a re-encoded message decodes to an equal value");
  } catch (const bridge::ProtocolError& e) {
    std::fprintf(stderr, "bridge_protocol_fuzz: %s\n", e.what());
    violated("a re-encoded message decodes");
  }
}

void check_request_round_trip(const bridge::Request& q, std::uint32_t id, const std::uint8_t* original,
                              std::size_t size) {
  check_round_trip(q, id, original, size, bridge::encode_request, bridge::decode_request);
}

void check_reply_round_trip(const bridge::Reply& p, std::uint32_t id, const std::uint8_t* original, std::size_t size) {
  check_round_trip(p, id, original, size, bridge::encode_reply, bridge::decode_reply);
}

// ---- the device ------------------------------------------------------------------------------

const mmc::DeviceConfig& fuzz_config() {
  static const mmc::DeviceConfig config = [] {
    mmc::DeviceConfig c = mmc::default_device_config();
    c.user_capacity = 1ULL << 20;
    c.boot_partition_size = 128ULL << 10;
    c.rpmb_size = 128ULL << 10;
    c.general_purpose_partitions.clear();
    c.cache_size = 64ULL << 10;
    c.ocr_busy_polls = 1;
    mmc::validate(c);
    return c;
  }();
  return config;
}

// A card and the kernel's driver over it, probed (in tran).
struct Device {
  Device() : image(fuzz_config()), card(fuzz_config(), image.backend()), bus(card), driver(bus) {}
  mmc::MemoryImage image;
  mmc::Card card;
  mmc::CardHostBus bus;
  mmc::LinuxBlockDriver driver;
};

// The request itself moves the card out of tran (see the invariants above).
bool asks_for_state_change(const bridge::IoctlRequest& q) {
  for (const bridge::IoctlCommand& c : q.commands) {
    if (c.opcode == 0 || c.opcode == 5 || c.opcode == 7 || c.opcode == 15) return true;
    if (c.opcode == 19 && c.writes() && c.data_bytes() > 0) return true;  // a bus test: btst until CMD14
  }
  return false;
}

bool writes_partition_config(const bridge::IoctlRequest& q) {
  for (const bridge::IoctlCommand& c : q.commands) {
    if (c.opcode == 6 && ((c.arg >> 24) & 3) != 0 && ((c.arg >> 16) & 0xFF) == mmc::ext_csd::kPartitionConfig)
      return true;
  }
  return false;
}

void check_status(const bridge::ReplyStatus& s) {
  require(s.error >= 0, "errno values are positive");
  require(s.flags == 0 && s.simulated_ps == 0, "an untimed bus reports no simulated time");
}

void run_on_device(std::unique_ptr<Device>& device, const bridge::Request& request, std::uint32_t id) {
  if (!device) device = std::make_unique<Device>();
  const std::uint32_t counter_before = device->image.rpmb_store().state().write_counter;
  const bridge::Reply reply = device->driver.handle(request);
  check_limits(reply);
  check_reply_round_trip(reply, id, nullptr, 0);
  require(std::holds_alternative<bridge::ErrorReply>(reply) == false, "the driver answers with a typed reply");

  bool state_change_asked = false;
  bool partition_config_written = false;
  if (const auto* q = std::get_if<bridge::IoctlRequest>(&request)) {
    const auto* p = std::get_if<bridge::IoctlReply>(&reply);
    require(p != nullptr, "an ioctl request gets an ioctl reply");
    check_status(p->status);
    require(p->results.size() == q->commands.size(), "one result per command");
    for (std::size_t i = 0; i < q->commands.size(); ++i) {
      const bridge::IoctlCommand& c = q->commands[i];
      require(p->results[i].data.size() == (c.writes() ? 0 : c.data_bytes()),
              "read data is blksz * blocks bytes, writes return none");
    }
    state_change_asked = asks_for_state_change(*q);
    partition_config_written = writes_partition_config(*q);
    TRACE("  -> ioctl errno %d%s\n", p->status.error, state_change_asked ? " (state change asked)" : "");
    if (q->node == bridge::Node::rpmb && !state_change_asked && !partition_config_written) {
      require(device->card.current_partition() == mmc::Partition::user,
              "after a request on the rpmb node the card is back on the user area");
    }
  } else if (const auto* r = std::get_if<bridge::BlockReadRequest>(&request)) {
    const auto* p = std::get_if<bridge::BlockReadReply>(&reply);
    require(p != nullptr, "a block read gets a block read reply");
    check_status(p->status);
    require(p->data.size() == (p->status.error == 0 ? r->length : 0), "a block read returns length bytes or none");
    TRACE("  -> read errno %d\n", p->status.error);
  } else if (std::holds_alternative<bridge::BlockWriteRequest>(request)) {
    const auto* p = std::get_if<bridge::BlockWriteReply>(&reply);
    require(p != nullptr, "a block write gets a block write reply");
    check_status(p->status);
    TRACE("  -> write errno %d\n", p->status.error);
  } else if (std::holds_alternative<bridge::FlushRequest>(request)) {
    const auto* p = std::get_if<bridge::FlushReply>(&reply);
    require(p != nullptr, "a flush gets a flush reply");
    check_status(p->status);
  } else {
    const auto* p = std::get_if<bridge::DescribeReply>(&reply);
    require(p != nullptr, "a describe request gets a describe reply");
    require(same(bridge::Reply{*p}, bridge::Reply{device->driver.describe()}), "describe returns the description");
    require(p->node_size[0] == fuzz_config().user_capacity && p->node_size[3] == fuzz_config().rpmb_size,
            "the description has the card's sizes");
  }
  require(device->image.rpmb_store().state().write_counter >= counter_before, "the RPMB write counter never decreases");

  if (device->card.state() != mmc::CardState::tran) {
    if (!state_change_asked) {
      std::fprintf(stderr, "bridge_protocol_fuzz: card left in %s\n",
                   std::string(mmc::card_state_name(device->card.state())).c_str());
      violated("the card is in tran after every request");
    }
    device.reset();  // a fresh card for the rest of the input
  } else if (partition_config_written) {
    device.reset();  // the driver's copy of PARTITION_CONFIG may be the caller's word, not the card's
  }
}

// The errno a decode failure may carry.
void check_refusal(const bridge::ProtocolError& e, bool header) {
  if (header) {
    require(e.fatal() && e.error() == EPROTO, "header refusals are fatal, EPROTO");
  } else {
    require(!e.fatal(), "payload refusals are not fatal");
    require(e.error() == EINVAL || e.error() == EOVERFLOW || e.error() == ENOMEM,
            "payload refusals carry EINVAL, EOVERFLOW or ENOMEM");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::unique_ptr<Device> device;
  std::size_t at = 0;
  for (std::size_t n = 0; n < kMaxMessages && size - at >= bridge::kHeaderSize; ++n) {
    const std::uint8_t* message = data + at;
    bridge::MessageHeader header;
    try {
      header = bridge::decode_header(message, size - at);
    } catch (const bridge::ProtocolError& e) {
      TRACE("header refused: %s\n", e.what());
      check_refusal(e, true);
      break;
    }
    const std::uint8_t* payload = message + bridge::kHeaderSize;
    const std::size_t available = size - at - bridge::kHeaderSize;
    TRACE("message type 0x%04x id %u payload %u\n", static_cast<unsigned>(header.type), header.request_id,
          header.payload_length);
    if (available < header.payload_length) {  // truncated: the connection closed mid-message
      bool refused = false;
      try {
        if (is_request_type(header.type)) {
          static_cast<void>(bridge::decode_request(header, payload, available));
        } else {
          static_cast<void>(bridge::decode_reply(header, payload, available));
        }
      } catch (const bridge::ProtocolError& e) {
        check_refusal(e, false);
        refused = true;
      }
      require(refused, "a truncated payload never decodes");
      break;
    }
    const std::size_t message_size = bridge::kHeaderSize + header.payload_length;
    at += message_size;

    if (is_request_type(header.type)) {
      bool misread = false;
      try {
        static_cast<void>(bridge::decode_reply(header, payload, header.payload_length));
        misread = true;
      } catch (const bridge::ProtocolError& e) {
        check_refusal(e, false);
      }
      require(!misread, "a request never decodes as a reply");
      bridge::Request request;
      try {
        request = bridge::decode_request(header, payload, header.payload_length);
      } catch (const bridge::ProtocolError& e) {
        TRACE("  refused: %s\n", e.what());
        check_refusal(e, false);
        continue;
      }
      require(bridge::request_type(request) == header.type, "a request decodes to its header's type");
      check_limits(request);
      check_request_round_trip(request, header.request_id, message, message_size);
      run_on_device(device, request, header.request_id);
    } else {
      bool misread = false;
      try {
        static_cast<void>(bridge::decode_request(header, payload, header.payload_length));
        misread = true;
      } catch (const bridge::ProtocolError& e) {
        check_refusal(e, false);
      }
      require(!misread, "a reply never decodes as a request");
      bridge::Reply reply;
      try {
        reply = bridge::decode_reply(header, payload, header.payload_length);
      } catch (const bridge::ProtocolError& e) {
        TRACE("  refused: %s\n", e.what());
        check_refusal(e, false);
        continue;
      }
      check_limits(reply);
      check_reply_round_trip(reply, header.request_id, message, message_size);
    }
  }
  return 0;
}
