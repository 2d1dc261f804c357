// JwtSigner: signs JSON Web Tokens (RFC 7519, compact JWS) with a host key: ES256 for a P-256
// key, RS256 for an RSA key (2048 bits or more). Used by the jwt source and for GitHub App JWTs.
// Immutable after FromPemFile(); Sign() is safe from any thread.
#pragma once

#include <nlohmann/json.hpp>

#include <memory>
#include <string>

#include "gateway/base/status.h"

typedef struct evp_pkey_st EVP_PKEY;

namespace airlock::credentials {

class JwtSigner {
 public:
  // Reads a PEM private key. Errors name the file and never hold key material.
  static Result<std::shared_ptr<const JwtSigner>> FromPemFile(const std::string& path);
  ~JwtSigner();

  const std::string& algorithm() const { return algorithm_; }  // "ES256" or "RS256"
  // header.claims.signature
  Result<std::string> Sign(const nlohmann::json& claims) const;

 private:
  JwtSigner(EVP_PKEY* key, std::string algorithm) : key_(key), algorithm_(std::move(algorithm)) {}
  EVP_PKEY* key_;
  std::string algorithm_;
};

}  // namespace airlock::credentials
