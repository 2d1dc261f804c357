// Building X.509 certificates: what the CA generator and the leaf minter share (EC P-256 keys,
// random serials, v3 extensions, validity). For tls/ only. Plain functions; thread-safe.
#pragma once

#include <chrono>
#include <string>

#include "gateway/base/status.h"
#include "gateway/tls/openssl_ptr.h"

namespace airlock::tls {

EvpPkeyPtr NewP256Key();

// A version-3 certificate for `key` with a random positive 128-bit serial, `subject`, validity
// [not_before, not_after] and issuer `issuer` (itself when null).
Result<X509Ptr> NewCertificate(EVP_PKEY* key, const X509_NAME* subject, X509* issuer,
                               std::chrono::system_clock::time_point not_before,
                               std::chrono::system_clock::time_point not_after);

// Adds an extension in OpenSSL's config syntax ("critical,CA:TRUE", "keyid:always", ...), with
// `issuer` as the issuer for authorityKeyIdentifier (the certificate itself when null).
Status AddExtension(X509* cert, X509* issuer, int nid, const std::string& value);

// Signs with ECDSA-SHA256.
Status Sign(X509* cert, EVP_PKEY* key);

std::string ToPem(X509* cert);

}  // namespace airlock::tls
