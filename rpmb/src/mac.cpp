#include "emmcsim/rpmb/mac.hpp"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <stdexcept>

namespace emmcsim::rpmb {
namespace {

// The HMAC implementation is fetched once per process; contexts are per key.
EVP_MAC* hmac_algorithm() {
  static EVP_MAC* const mac = [] {
    EVP_MAC* m = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
    if (m == nullptr) throw std::runtime_error("OpenSSL: HMAC is not available");
    return m;
  }();
  return mac;
}

}  // namespace

struct FrameAuthenticator::Context {
  EVP_MAC_CTX* ctx = nullptr;
  ~Context() { EVP_MAC_CTX_free(ctx); }

  void begin() {
    // A null key re-initialises with the key set at construction.
    if (EVP_MAC_init(ctx, nullptr, 0, nullptr) != 1) {
      throw std::runtime_error("OpenSSL: EVP_MAC_init failed");
    }
  }
  void update(const std::uint8_t* bytes, std::size_t size) {
    if (EVP_MAC_update(ctx, bytes, size) != 1) {
      throw std::runtime_error("OpenSSL: EVP_MAC_update failed");
    }
  }
  Mac finish() {
    Mac out{};
    std::size_t written = 0;
    if (EVP_MAC_final(ctx, out.data(), &written, out.size()) != 1 || written != out.size()) {
      throw std::runtime_error("OpenSSL: EVP_MAC_final failed");
    }
    return out;
  }
};

FrameAuthenticator::FrameAuthenticator(const Key& key) : context_(std::make_unique<Context>()) {
  context_->ctx = EVP_MAC_CTX_new(hmac_algorithm());
  if (context_->ctx == nullptr) throw std::runtime_error("OpenSSL: EVP_MAC_CTX_new failed");
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                         OSSL_PARAM_construct_end()};
  if (EVP_MAC_init(context_->ctx, key.data(), key.size(), params) != 1) {
    throw std::runtime_error("OpenSSL: HMAC-SHA256 key set-up failed");
  }
}

FrameAuthenticator::~FrameAuthenticator() = default;
FrameAuthenticator::FrameAuthenticator(FrameAuthenticator&&) noexcept = default;
FrameAuthenticator& FrameAuthenticator::operator=(FrameAuthenticator&&) noexcept = default;

Mac FrameAuthenticator::compute(const Frame* frames, std::size_t count) {
  context_->begin();
  for (std::size_t i = 0; i < count; ++i) {
    context_->update(frames[i].mac_input(), kMacInputPerFrame);
  }
  return context_->finish();
}

Mac FrameAuthenticator::compute_raw(const std::uint8_t* bytes, std::size_t size) {
  context_->begin();
  context_->update(bytes, size);
  return context_->finish();
}

bool FrameAuthenticator::verify(const Frame* frames, std::size_t count) {
  if (count == 0) return false;
  return mac_equal(compute(frames, count), frames[count - 1].mac());
}

Mac frames_mac(const Key& key, const Frame* frames, std::size_t count) {
  FrameAuthenticator authenticator(key);
  return authenticator.compute(frames, count);
}

bool mac_equal(const Mac& a, const Mac& b) { return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0; }

void wipe(Key& key) { OPENSSL_cleanse(key.data(), key.size()); }

}  // namespace emmcsim::rpmb
