#include "emmcsim/rpmb/engine.hpp"

#include <algorithm>
#include <cstring>

namespace emmcsim::rpmb {
namespace {

constexpr std::uint16_t code(ResultCode c) { return static_cast<std::uint16_t>(c); }

bool is_request(std::uint16_t type, RequestType t) { return type == static_cast<std::uint16_t>(t); }

// Every frame of a multi-frame request must carry the same counter, address, count and type.
bool frames_agree(const Frame* frames, std::size_t count) {
  for (std::size_t i = 1; i < count; ++i) {
    if (frames[i].write_counter() != frames[0].write_counter() || frames[i].address() != frames[0].address() ||
        frames[i].block_count() != frames[0].block_count() || frames[i].type() != frames[0].type()) {
      return false;
    }
  }
  return true;
}

}  // namespace

Engine::Engine(Store& store, EngineConfig config) : store_(store), config_(config) {}

const ResultRegister& Engine::result_register() const {
  return unpersisted_result_ ? *unpersisted_result_ : store_.state().result_register;
}

std::uint16_t Engine::with_expiry(std::uint16_t result) const {
  return store_.state().counter_expired() ? static_cast<std::uint16_t>(result | kCounterExpiredBit) : result;
}

FrameAuthenticator* Engine::authenticator() {
  if (!store_.state().key_programmed) return nullptr;
  if (!authenticator_) authenticator_.emplace(store_.state().key);
  return &*authenticator_;
}

bool Engine::allowed_write_count(std::size_t count) const {
  return count == 1 || count == 2 || (count == 32 && config_.en_rpmb_rel_wr);
}

EngineWork Engine::write_request(const Frame* frames, std::size_t count, bool reliable_write) {
  if (count == 0) return {};
  pending_read_.reset();  // a new request cancels a response the host never collected
  const std::uint16_t type = frames[0].type();
  if (is_request(type, RequestType::program_key)) return program_key(frames, count, reliable_write);
  if (is_request(type, RequestType::authenticated_write)) {
    return authenticated_write(frames, count, reliable_write);
  }
  if (is_request(type, RequestType::device_config_write)) {
    return device_config_write(frames, count, reliable_write);
  }
  if (is_request(type, RequestType::read_counter) || is_request(type, RequestType::authenticated_read) ||
      is_request(type, RequestType::device_config_read) || is_request(type, RequestType::result_read)) {
    // Read-type requests take the first frame; OP-TEE sends its result read under CMD23 = N.
    pending_read_ = frames[0];
    return {};
  }
  return reject_unknown_request(frames[0]);
}

EngineWork Engine::reject_unknown_request(const Frame& frame) {
  // Not a request this partition knows: report a general failure, store nothing.
  return reject_write(ResponseType::none, code(ResultCode::general_failure), frame.address());
}

EngineWork Engine::program_key(const Frame* frames, std::size_t count, bool reliable_write) {
  if (!reliable_write || count != 1 || store_.state().key_programmed) {
    // One key for life: a second programming is a general failure (as real devices and
    // OP-TEE's emulator answer; QEMU answers 0x05).
    return reject_write(ResponseType::program_key, code(ResultCode::general_failure), 0);
  }
  PartitionState next = store_.state();
  next.key_programmed = true;
  next.key = frames[0].key();
  EngineWork work = commit_write(ResponseType::program_key, 0, nullptr, 0, next);
  wipe(next.key);
  return work;
}

EngineWork Engine::authenticated_write(const Frame* frames, std::size_t count, bool reliable_write) {
  const PartitionState& now = store_.state();
  const Frame& first = frames[0];
  const std::uint16_t address = first.address();
  EngineWork work;
  const std::uint16_t result = check_authenticated_write(
      frames, count, std::uint64_t{address} + count <= store_.half_sectors(),
      allowed_write_count(count) && first.block_count() == count && reliable_write && frames_agree(frames, count),
      work);
  if (result != code(ResultCode::ok)) {
    work += reject_write(ResponseType::authenticated_write, result, address);
    return work;
  }
  PartitionState next = now;
  next.write_counter = now.write_counter + 1;
  scratch_.resize(count * kHalfSectorSize);
  for (std::size_t i = 0; i < count; ++i) {
    std::memcpy(scratch_.data() + i * kHalfSectorSize, frames[i].data(), kHalfSectorSize);
  }
  work += commit_write(ResponseType::authenticated_write, address, scratch_.data(), static_cast<std::uint16_t>(count),
                       next);
  return work;
}

EngineWork Engine::device_config_write(const Frame* frames, std::size_t count, bool reliable_write) {
  const PartitionState& now = store_.state();
  const Frame& frame = frames[0];
  const std::uint16_t address = frame.address();
  const std::uint8_t value = frame.data()[kConfigDataSecureWpModeEnable];
  EngineWork work;
  const std::uint16_t result = check_authenticated_write(
      frames, count, address == kConfigAddressSecureWpModeEnable || address == kConfigAddressSecureWpModeConfig,
      count == 1 && frame.block_count() <= 1 && reliable_write && value <= 1, work);
  if (result != code(ResultCode::ok)) {
    work += reject_write(ResponseType::device_config_write, result, address);
    return work;
  }
  PartitionState next = now;
  next.write_counter = now.write_counter + 1;
  if (address == kConfigAddressSecureWpModeEnable) {
    next.device_configuration.secure_wp_mode_enable = value;
  } else {
    next.device_configuration.secure_wp_mode_config = value;
  }
  work += commit_write(ResponseType::device_config_write, address, nullptr, 0, next);
  return work;
}

std::uint16_t Engine::check_authenticated_write(const Frame* frames, std::size_t count, bool address_valid,
                                                bool form_valid, EngineWork& work) {
  // JEDEC's order: key, expiry, address, MAC, counter, then the form of the request. The MAC is
  // computed only when the checks before it pass.
  const PartitionState& now = store_.state();
  if (!now.key_programmed) return code(ResultCode::key_not_programmed);
  if (now.counter_expired()) return code(ResultCode::write_failure);
  if (!address_valid) return code(ResultCode::address_failure);
  work.mac_frames = static_cast<std::uint32_t>(count);
  if (!authenticator()->verify(frames, count)) return code(ResultCode::authentication_failure);
  if (frames[0].write_counter() != now.write_counter) return code(ResultCode::counter_failure);
  if (!form_valid) return code(ResultCode::general_failure);
  return code(ResultCode::ok);
}

EngineWork Engine::commit_write(ResponseType type, std::uint16_t address, const std::uint8_t* data, std::uint16_t count,
                                PartitionState next) {
  // The expiry bit reflects the counter after this request: the write that reaches 0xFFFFFFFF
  // already reports it.
  const std::uint16_t result = next.counter_expired() ? kCounterExpiredBit : code(ResultCode::ok);
  next.result_register = ResultRegister{type, result, next.write_counter, address};
  EngineWork work;
  try {
    store_.commit(Commit{&next, address, count, data});
    unpersisted_result_.reset();
    work.commits = 1;
    work.half_sectors_written = count;
  } catch (const StoreError&) {
    // Nothing changed; the host learns of it through the result register.
    reject_write(type, code(ResultCode::write_failure), address);
  }
  wipe(next.key);
  return work;
}

EngineWork Engine::reject_write(ResponseType type, std::uint16_t result, std::uint16_t address) {
  unpersisted_result_ = ResultRegister{type, with_expiry(result), store_.state().write_counter, address};
  return {};
}

EngineWork Engine::read_response(Frame* out, std::size_t count) {
  if (count == 0) return {};
  std::optional<Frame> request;
  request.swap(pending_read_);
  if (!request) {
    fail_response(out, count, ResponseType::none);
    return {};
  }
  const std::uint16_t type = request->type();
  if (is_request(type, RequestType::read_counter)) return respond_counter(*request, out, count);
  if (is_request(type, RequestType::authenticated_read)) return respond_data(*request, out, count);
  if (is_request(type, RequestType::device_config_read)) return respond_config(*request, out, count);
  return respond_result(out, count);
}

void Engine::fail_response(Frame* out, std::size_t count, ResponseType type) {
  for (std::size_t i = 0; i < count; ++i) {
    out[i] = Frame();
    out[i].set_response(type);
    out[i].set_result(with_expiry(code(ResultCode::general_failure)));
  }
}

Frame* Engine::begin_single_response(const Frame& request, Frame* out, std::size_t count, ResponseType type) {
  if (count != 1) {
    fail_response(out, count, type);
    return nullptr;
  }
  Frame& f = out[0];
  f = Frame();
  f.set_response(type);
  f.set_nonce(request.nonce());
  if (authenticator() == nullptr) {
    f.set_result(with_expiry(code(ResultCode::key_not_programmed)));
    return nullptr;
  }
  return &f;
}

EngineWork Engine::sign_single_response(Frame& f) {
  f.set_result(with_expiry(code(ResultCode::ok)));
  f.set_mac(authenticator()->compute(&f, 1));
  EngineWork work;
  work.mac_frames = 1;
  return work;
}

EngineWork Engine::respond_counter(const Frame& request, Frame* out, std::size_t count) {
  Frame* f = begin_single_response(request, out, count, ResponseType::read_counter);
  if (f == nullptr) return {};
  f->set_write_counter(store_.state().write_counter);
  return sign_single_response(*f);
}

EngineWork Engine::respond_data(const Frame& request, Frame* out, std::size_t count) {
  const std::uint16_t address = request.address();
  FrameAuthenticator* auth = authenticator();
  std::uint16_t result = code(ResultCode::ok);
  if (auth == nullptr) {
    result = code(ResultCode::key_not_programmed);
  } else if (std::uint64_t{address} + count > store_.half_sectors() || count > 0xFFFF) {
    result = code(ResultCode::address_failure);
  }
  EngineWork work;
  for (std::size_t i = 0; i < count; ++i) {
    Frame& f = out[i];
    f = Frame();
    f.set_response(ResponseType::authenticated_read);
    f.set_nonce(request.nonce());
    f.set_address(address);
    f.set_block_count(static_cast<std::uint16_t>(count));
    f.set_result(with_expiry(result));
    if (result == code(ResultCode::ok)) store_.read(address + static_cast<std::uint32_t>(i), 1, f.data());
  }
  if (result == code(ResultCode::ok)) work.half_sectors_read = static_cast<std::uint32_t>(count);
  if (auth != nullptr) {
    out[count - 1].set_mac(auth->compute(out, count));
    work.mac_frames = static_cast<std::uint32_t>(count);
  }
  return work;
}

EngineWork Engine::respond_config(const Frame& request, Frame* out, std::size_t count) {
  Frame* f = begin_single_response(request, out, count, ResponseType::device_config_read);
  if (f == nullptr) return {};
  const DeviceConfiguration& config = store_.state().device_configuration;
  f->data()[kConfigDataSecureWpModeEnable] = config.secure_wp_mode_enable;
  f->data()[kConfigDataSecureWpModeConfig] = config.secure_wp_mode_config;
  return sign_single_response(*f);
}

EngineWork Engine::respond_result(Frame* out, std::size_t count) {
  const ResultRegister& r = result_register();
  if (count != 1) {
    fail_response(out, count, r.type);
    return {};
  }
  Frame& f = out[0];
  f = Frame();
  f.set_response(r.type);
  f.set_result(r.result);
  f.set_write_counter(r.write_counter);
  f.set_address(r.address);
  EngineWork work;
  if (FrameAuthenticator* auth = authenticator()) {  // a zero MAC when there is no key
    f.set_mac(auth->compute(&f, 1));
    work.mac_frames = 1;
  }
  return work;
}

}  // namespace emmcsim::rpmb
