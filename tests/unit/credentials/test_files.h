// Test support for the credential tests: a temporary directory, scripts and PEM keys in it.
#pragma once

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>

#include "gateway/base/base64.h"
#include "gateway/tls/openssl_ptr.h"

namespace airlock::credentials::test_support {

// A fresh directory under the system's temporary directory, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "airlock-cred-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) std::abort();
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  std::string Path(std::string_view name) const { return (path_ / name).string(); }

  // Writes `text` to `name` (replacing it) and returns its path.
  std::string Write(std::string_view name, std::string_view text) const {
    std::string p = Path(name);
    std::ofstream(p, std::ios::binary | std::ios::trunc) << text;
    return p;
  }

  // A shell script: "#!/bin/sh\n" + `body`, executable.
  std::string Script(std::string_view name, std::string_view body) const {
    std::string p = Write(name, "#!/bin/sh\n" + std::string(body));
    chmod(p.c_str(), 0755);
    return p;
  }

 private:
  std::filesystem::path path_;
};

// Key generation: "EC" with a curve name ("P-256"), or "RSA" with a size in bits.
inline tls::EvpPkeyPtr EcKey(const char* curve) {
  return tls::EvpPkeyPtr(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", curve));
}
inline tls::EvpPkeyPtr RsaKey(size_t bits) {
  return tls::EvpPkeyPtr(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", bits));
}
inline tls::EvpPkeyPtr Ed25519Key() {
  return tls::EvpPkeyPtr(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
}

// Writes `key`'s private key as PEM (PKCS#8, or the traditional per-algorithm form) to `path`.
inline bool WritePrivateKey(EVP_PKEY* key, const std::string& path, bool traditional = false) {
  tls::BioPtr bio(BIO_new_file(path.c_str(), "w"));
  if (!bio) return false;
  return (traditional ? PEM_write_bio_PrivateKey_traditional(bio.get(), key, nullptr, nullptr, 0,
                                                             nullptr, nullptr)
                      : PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr,
                                                 nullptr)) == 1;
}

inline bool WritePublicKey(EVP_PKEY* key, const std::string& path) {
  tls::BioPtr bio(BIO_new_file(path.c_str(), "w"));
  return bio && PEM_write_bio_PUBKEY(bio.get(), key) == 1;
}

// Base64url without padding, decoded; nullopt when it is not.
inline std::optional<std::string> Base64UrlDecode(std::string_view in) {
  std::string s(in);
  for (char& c : s) {
    if (c == '-') {
      c = '+';
    } else if (c == '_') {
      c = '/';
    } else if (c == '+' || c == '/' || c == '=') {
      return std::nullopt;
    }
  }
  while (s.size() % 4 != 0) s.push_back('=');
  return Base64Decode(s);
}

}  // namespace airlock::credentials::test_support
