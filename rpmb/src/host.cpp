#include "emmcsim/rpmb/host.hpp"

#include <stdexcept>

#include "emmcsim/rpmb/engine.hpp"

namespace emmcsim::rpmb {

void EngineChannel::send(const Frame* frames, std::size_t count, bool reliable_write) {
  engine_.write_request(frames, count, reliable_write);
}

void EngineChannel::receive(Frame* frames, std::size_t count) { engine_.read_response(frames, count); }

namespace requests {

Frame program_key(const Key& key) {
  Frame f;
  f.set_request(RequestType::program_key);
  f.set_key(key);
  return f;
}

Frame read_counter(const Nonce& nonce) {
  Frame f;
  f.set_request(RequestType::read_counter);
  f.set_nonce(nonce);
  return f;
}

Frame authenticated_read(std::uint16_t address, const Nonce& nonce) {
  Frame f;
  f.set_request(RequestType::authenticated_read);
  f.set_address(address);
  f.set_nonce(nonce);
  return f;
}

Frame result_read() {
  Frame f;
  f.set_request(RequestType::result_read);
  return f;
}

Frame device_config_read(const Nonce& nonce) {
  Frame f;
  f.set_request(RequestType::device_config_read);
  f.set_nonce(nonce);
  return f;
}

std::vector<Frame> authenticated_write(std::uint16_t address, std::uint32_t write_counter, const std::uint8_t* data,
                                       std::size_t half_sectors) {
  std::vector<Frame> frames(half_sectors);
  for (std::size_t i = 0; i < half_sectors; ++i) {
    Frame& f = frames[i];
    f.set_request(RequestType::authenticated_write);
    f.set_address(address);
    f.set_block_count(static_cast<std::uint16_t>(half_sectors));
    f.set_write_counter(write_counter);
    f.set_data(data + i * kHalfSectorSize);
  }
  return frames;
}

Frame device_config_write(std::uint16_t config_address, std::uint8_t value, std::uint32_t write_counter) {
  Frame f;
  f.set_request(RequestType::device_config_write);
  f.set_address(config_address);
  f.set_block_count(1);
  f.set_write_counter(write_counter);
  f.data()[kConfigDataSecureWpModeEnable] = value;
  return f;
}

void sign(FrameAuthenticator& authenticator, std::vector<Frame>& frames) {
  if (frames.empty()) return;
  frames.back().set_mac(authenticator.compute(frames.data(), frames.size()));
}

}  // namespace requests

Host::Host(RequestChannel& channel, std::optional<Key> key) : channel_(channel) {
  if (key) {
    authenticator_.emplace(*key);
    wipe(*key);
  }
}

HostResult Host::collect(const std::vector<Frame>& response, RequestType request, const Nonce* nonce, bool expect_mac) {
  HostResult r;
  const Frame& last = response.back();
  r.result = last.result();
  r.response_type = last.type();
  // A bare result read answers with whichever write-type request came last.
  r.answers_request =
      request == RequestType::result_read || r.response_type == static_cast<std::uint16_t>(response_to(request));
  r.write_counter = last.write_counter();
  if (nonce != nullptr) r.nonce_matches = last.nonce() == *nonce;
  if (expect_mac && authenticator_) {
    r.mac_valid = authenticator_->verify(response.data(), response.size());
  }
  return r;
}

HostResult Host::send_write_type(const std::vector<Frame>& request, RequestType type) {
  // CMD23 0x80000000|N + CMD25 (the request), CMD23 1 + CMD25 (result read), CMD23 1 + CMD18.
  channel_.send(request.data(), request.size(), true);
  const Frame result_request = requests::result_read();
  channel_.send(&result_request, 1, false);
  std::vector<Frame> response(1);
  channel_.receive(response.data(), 1);
  // A result with no key carries a zero MAC: nothing to verify then.
  return collect(response, type, nullptr, response[0].mac() != Mac{});
}

HostResult Host::program_key(const Key& key) {
  std::vector<Frame> request{requests::program_key(key)};
  HostResult r = send_write_type(request, RequestType::program_key);
  if (result_ok(r.result) && !authenticator_) {
    authenticator_.emplace(key);
    r.mac_valid.reset();
  }
  return r;
}

HostResult Host::read_counter(const Nonce& nonce) {
  const Frame request = requests::read_counter(nonce);
  channel_.send(&request, 1, false);
  std::vector<Frame> response(1);
  channel_.receive(response.data(), 1);
  return collect(response, RequestType::read_counter, &nonce, result_ok(response[0].result()));
}

HostResult Host::write(std::uint16_t address, const std::uint8_t* data, std::size_t half_sectors) {
  // The counter is used even when its MAC does not verify (as mmc-utils does): it is no secret,
  // a forged one can only earn a counter failure, and a wrong key then shows as the device's
  // authentication failure rather than as a local MAC mismatch.
  const HostResult counter = read_counter();
  if (!result_ok(counter.result)) return counter;
  return write_with_counter(address, data, half_sectors, counter.write_counter);
}

HostResult Host::write_with_counter(std::uint16_t address, const std::uint8_t* data, std::size_t half_sectors,
                                    std::uint32_t write_counter) {
  if (!authenticator_) throw std::logic_error("an authenticated write needs the key");
  std::vector<Frame> request = requests::authenticated_write(address, write_counter, data, half_sectors);
  requests::sign(*authenticator_, request);
  HostResult r = send_write_type(request, RequestType::authenticated_write);
  if (result_ok(r.result) && r.write_counter != write_counter + 1) r.answers_request = false;
  return r;
}

HostResult Host::read(std::uint16_t address, std::size_t half_sectors, const Nonce& nonce) {
  const Frame request = requests::authenticated_read(address, nonce);
  channel_.send(&request, 1, false);
  std::vector<Frame> response(half_sectors);
  channel_.receive(response.data(), response.size());
  HostResult r = collect(response, RequestType::authenticated_read, &nonce, true);
  if (result_ok(response.back().result())) {
    r.data.reserve(half_sectors * kHalfSectorSize);
    for (const Frame& f : response) r.data.insert(r.data.end(), f.data(), f.data() + kHalfSectorSize);
  }
  return r;
}

HostResult Host::config_write(std::uint16_t config_address, std::uint8_t value) {
  if (!authenticator_) throw std::logic_error("a device configuration write needs the key");
  const HostResult counter = read_counter();  // unverified, as in write()
  if (!result_ok(counter.result)) return counter;
  std::vector<Frame> request{requests::device_config_write(config_address, value, counter.write_counter)};
  requests::sign(*authenticator_, request);
  return send_write_type(request, RequestType::device_config_write);
}

HostResult Host::config_read(const Nonce& nonce) {
  const Frame request = requests::device_config_read(nonce);
  channel_.send(&request, 1, false);
  std::vector<Frame> response(1);
  channel_.receive(response.data(), 1);
  HostResult r = collect(response, RequestType::device_config_read, &nonce, result_ok(response[0].result()));
  r.data.assign(response[0].data(), response[0].data() + kHalfSectorSize);
  return r;
}

HostResult Host::result_read() {
  const Frame request = requests::result_read();
  channel_.send(&request, 1, false);
  std::vector<Frame> response(1);
  channel_.receive(response.data(), 1);
  return collect(response, RequestType::result_read, nullptr, response[0].mac() != Mac{});
}

}  // namespace emmcsim::rpmb
