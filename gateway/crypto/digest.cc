// Digests through OpenSSL's EVP and HMAC APIs.
#include "gateway/crypto/digest.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstdlib>
#include <memory>

#include "gateway/base/hex.h"

namespace airlock::crypto {
namespace {

// SHA-256 fetched once: fetching it on every call (what EVP_sha256() leads to) costs more than
// hashing a short line, and the audit log hashes every record.
const EVP_MD* Sha256() {
  static EVP_MD* const md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  if (md == nullptr) std::abort();
  return md;
}

std::string Hex(const unsigned char* d, unsigned int n) {
  return HexEncode(std::string_view(reinterpret_cast<const char*>(d), n));
}

}  // namespace

std::string Sha256Hex(std::string_view data) {
  // One context per thread, reset for each digest: a new one per call is an allocation, an
  // initialisation and a cleansing free for every audit record.
  struct CtxFree {
    void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
  };
  thread_local const std::unique_ptr<EVP_MD_CTX, CtxFree> ctx(EVP_MD_CTX_new());
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (!ctx || EVP_DigestInit_ex2(ctx.get(), Sha256(), nullptr) != 1 ||
      EVP_DigestUpdate(ctx.get(), data.data(), data.size()) != 1 ||
      EVP_DigestFinal_ex(ctx.get(), md, &n) != 1) {
    std::abort();  // out of memory or a broken OpenSSL: no digest to chain with
  }
  return Hex(md, n);
}

std::string HmacSha256(std::string_view key, std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (!HMAC(Sha256(), key.data(), static_cast<int>(key.size()),
            reinterpret_cast<const unsigned char*>(data.data()), data.size(), md, &n)) {
    std::abort();
  }
  return std::string(reinterpret_cast<const char*>(md), n);
}

std::string HmacSha256Hex(std::string_view key, std::string_view data) {
  return HexEncode(HmacSha256(key, data));
}

}  // namespace airlock::crypto
