// CertificateAuthority: the gateway's CA, which signs the leaf certificates presented to
// sandboxes for inspected TLS. Loaded from files the operator gives (tls.ca_cert, tls.ca_key),
// or generated on first start in the state directory (EC P-256, key mode 0600) and reused on
// every later start. The key never leaves this object and is never logged. Immutable after
// loading; safe to share between threads.
#pragma once

#include <memory>
#include <string>

#include "gateway/base/status.h"
#include "gateway/tls/openssl_ptr.h"

namespace airlock::tls {

struct CaOptions {
  std::string cert_file;  // both set: use these; both empty: generated in state_dir
  std::string key_file;
  std::string state_dir;
};

class CertificateAuthority {
 public:
  // Loads the CA, generating it in options.state_dir first if it is not configured and not
  // there yet. Checks that the key matches the certificate and that it is a CA.
  static Result<std::unique_ptr<CertificateAuthority>> LoadOrCreate(const CaOptions& options);

  const std::string& certificate_pem() const { return pem_; }
  X509* certificate() const { return cert_.get(); }
  EVP_PKEY* key() const { return key_.get(); }

 private:
  CertificateAuthority(X509Ptr cert, EvpPkeyPtr key, std::string pem);

  X509Ptr cert_;
  EvpPkeyPtr key_;
  std::string pem_;
};

// Where a generated CA lives in the state directory.
std::string GeneratedCaCertPath(const std::string& state_dir);
std::string GeneratedCaKeyPath(const std::string& state_dir);

}  // namespace airlock::tls
