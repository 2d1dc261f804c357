// JWT signing (see jwt.h).
#include "gateway/credentials/jwt.h"

#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include <cstdio>

#include "gateway/base/base64.h"
#include "gateway/tls/openssl_ptr.h"

namespace airlock::credentials {
namespace {

using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, tls::OpenSslFree<EVP_MD_CTX_free>>;
using EcdsaSigPtr = std::unique_ptr<ECDSA_SIG, tls::OpenSslFree<ECDSA_SIG_free>>;

}  // namespace

Result<std::shared_ptr<const JwtSigner>> JwtSigner::FromPemFile(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "r");
  if (!f) return Status::Error("cannot read the key file " + path);
  // No pass phrase: an encrypted key fails here instead of prompting on a terminal.
  tls::EvpPkeyPtr key(PEM_read_PrivateKey(
      f, nullptr, [](char*, int, int, void*) { return 0; }, nullptr));
  std::fclose(f);
  ERR_clear_error();
  if (!key) return Status::Error(path + " holds no PEM private key");
  std::string algorithm;
  if (EVP_PKEY_is_a(key.get(), "EC")) {
    char group[64] = {};
    size_t len = 0;
    if (EVP_PKEY_get_utf8_string_param(key.get(), "group", group, sizeof(group), &len) != 1 ||
        std::string(group) != "prime256v1") {
      return Status::Error(path + ": an EC key for ES256 must be on P-256");
    }
    algorithm = "ES256";
  } else if (EVP_PKEY_is_a(key.get(), "RSA")) {
    if (EVP_PKEY_get_bits(key.get()) < 2048) {
      return Status::Error(path + ": an RSA key for RS256 needs at least 2048 bits");
    }
    algorithm = "RS256";
  } else {
    return Status::Error(path + ": the key must be P-256 (ES256) or RSA (RS256)");
  }
  return std::shared_ptr<const JwtSigner>(new JwtSigner(key.release(), algorithm));
}

JwtSigner::~JwtSigner() { EVP_PKEY_free(key_); }

Result<std::string> JwtSigner::Sign(const nlohmann::json& claims) const {
  nlohmann::json header = {{"alg", algorithm_}, {"typ", "JWT"}};
  std::string input = Base64UrlEncode(header.dump()) + "." + Base64UrlEncode(claims.dump());
  MdCtxPtr ctx(EVP_MD_CTX_new());
  size_t len = 0;
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key_) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &len, reinterpret_cast<const unsigned char*>(input.data()),
                     input.size()) != 1) {
    return Status::Error("cannot sign a JWT: " + tls::TakeOpenSslErrors());
  }
  std::string sig(len, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len,
                     reinterpret_cast<const unsigned char*>(input.data()), input.size()) != 1) {
    return Status::Error("cannot sign a JWT: " + tls::TakeOpenSslErrors());
  }
  sig.resize(len);
  if (algorithm_ == "ES256") {  // JWS wants r || s, 32 bytes each, not DER
    const unsigned char* p = reinterpret_cast<const unsigned char*>(sig.data());
    EcdsaSigPtr ecdsa(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(sig.size())));
    if (!ecdsa) return Status::Error("cannot sign a JWT: bad ECDSA signature");
    std::string raw(64, '\0');
    BN_bn2binpad(ECDSA_SIG_get0_r(ecdsa.get()), reinterpret_cast<unsigned char*>(raw.data()), 32);
    BN_bn2binpad(ECDSA_SIG_get0_s(ecdsa.get()), reinterpret_cast<unsigned char*>(raw.data()) + 32,
                 32);
    sig = std::move(raw);
  }
  return input + "." + Base64UrlEncode(sig);
}

}  // namespace airlock::credentials
