// HMAC-SHA256 over RPMB frames through OpenSSL's EVP_MAC, and constant-time comparison.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "emmcsim/rpmb/frame.hpp"

namespace emmcsim::rpmb {

// A MAC context keyed once; each compute() re-initialises it with the same key, so a MAC costs
// only the hashing. The key is held by OpenSSL and never exposed again.
class FrameAuthenticator {
 public:
  explicit FrameAuthenticator(const Key& key);
  ~FrameAuthenticator();
  FrameAuthenticator(FrameAuthenticator&&) noexcept;
  FrameAuthenticator& operator=(FrameAuthenticator&&) noexcept;
  FrameAuthenticator(const FrameAuthenticator&) = delete;
  FrameAuthenticator& operator=(const FrameAuthenticator&) = delete;

  // HMAC over bytes 228..511 of each frame, in order.
  Mac compute(const Frame* frames, std::size_t count);
  // HMAC over an arbitrary byte string (benchmarks' raw bound, tests).
  Mac compute_raw(const std::uint8_t* bytes, std::size_t size);
  // Constant-time check of the MAC in the last frame.
  bool verify(const Frame* frames, std::size_t count);

 private:
  struct Context;
  std::unique_ptr<Context> context_;
};

// One-shot helper for callers without a long-lived key.
Mac frames_mac(const Key& key, const Frame* frames, std::size_t count);

// Constant-time equality (CRYPTO_memcmp).
bool mac_equal(const Mac& a, const Mac& b);

// Overwrites a key in memory in a way the compiler cannot drop (OPENSSL_cleanse).
void wipe(Key& key);

}  // namespace emmcsim::rpmb
