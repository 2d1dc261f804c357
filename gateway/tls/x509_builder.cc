// Certificate building blocks (see x509_builder.h).
#include "gateway/tls/x509_builder.h"

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

namespace airlock::tls {

std::string TakeOpenSslErrors() {
  std::string out;
  unsigned long e;
  while ((e = ERR_get_error()) != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? "unknown OpenSSL error" : out;
}

EvpPkeyPtr NewP256Key() {
  // OpenSSL 3.0 encodes a provider key's public half through its encoder machinery on every
  // X509_set_pubkey() (about 150 us); a key backed by an EC_KEY takes the built-in encoder
  // (about 3 us). Leaves are minted on the handshake path, so the key is made the older way.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  EC_KEY* ec = EC_KEY_new_by_curve_name(NID_X9_62_prime256v1);
  EvpPkeyPtr key(EVP_PKEY_new());
  if (!ec || !key || EC_KEY_generate_key(ec) != 1 ||
      EVP_PKEY_assign(key.get(), EVP_PKEY_EC, ec) != 1) {
    EC_KEY_free(ec);
    return nullptr;
  }
#pragma GCC diagnostic pop
  return key;
}

Result<X509Ptr> NewCertificate(EVP_PKEY* key, const X509_NAME* subject, X509* issuer,
                               std::chrono::system_clock::time_point not_before,
                               std::chrono::system_clock::time_point not_after) {
  X509Ptr cert(X509_new());
  unsigned char serial[16];
  if (!cert || RAND_bytes(serial, sizeof(serial)) != 1) {
    return Status::Error("cannot create a certificate: " + TakeOpenSslErrors());
  }
  serial[0] &= 0x7f;  // positive
  serial[0] |= 0x40;  // and full length, so that no encoder trims it
  BignumPtr bn(BN_bin2bn(serial, sizeof(serial), nullptr));
  auto to_time_t = [](std::chrono::system_clock::time_point t) {
    return std::chrono::system_clock::to_time_t(t);
  };
  bool ok =
      bn && X509_set_version(cert.get(), X509_VERSION_3) == 1 &&
      BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert.get())) != nullptr &&
      X509_set_subject_name(cert.get(), subject) == 1 &&
      X509_set_issuer_name(cert.get(), issuer ? X509_get_subject_name(issuer) : subject) == 1 &&
      ASN1_TIME_set(X509_getm_notBefore(cert.get()), to_time_t(not_before)) != nullptr &&
      ASN1_TIME_set(X509_getm_notAfter(cert.get()), to_time_t(not_after)) != nullptr &&
      X509_set_pubkey(cert.get(), key) == 1;
  if (!ok) return Status::Error("cannot fill in a certificate: " + TakeOpenSslErrors());
  return cert;
}

Status AddExtension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer ? issuer : cert, cert, nullptr, nullptr, 0);
  X509ExtPtr ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str()));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1) {
    return Status::Error("cannot add extension " + std::string(OBJ_nid2sn(nid)) + ": " +
                         TakeOpenSslErrors());
  }
  return Status::Ok();
}

Status Sign(X509* cert, EVP_PKEY* key) {
  if (X509_sign(cert, key, EVP_sha256()) <= 0) {
    return Status::Error("cannot sign a certificate: " + TakeOpenSslErrors());
  }
  return Status::Ok();
}

std::string ToPem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) return "";
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

}  // namespace airlock::tls
