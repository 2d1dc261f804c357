// JwtSigner: which PEM keys it takes (P-256, RSA >= 2048) and JWTs that OpenSSL verifies.
#include "gateway/credentials/jwt.h"

#include <gtest/gtest.h>
#include <openssl/ecdsa.h>

#include <string>
#include <vector>

#include "tests/unit/credentials/test_files.h"

namespace airlock::credentials {
namespace {

using test_support::Base64UrlDecode;
using test_support::TempDir;

struct Parts {
  std::string header, claims, signature;  // decoded
  std::string signing_input;              // header.claims as sent
};

// Splits a compact JWS into its three decoded parts.
std::optional<Parts> Split(const std::string& jwt) {
  size_t a = jwt.find('.');
  size_t b = a == std::string::npos ? a : jwt.find('.', a + 1);
  if (b == std::string::npos || jwt.find('.', b + 1) != std::string::npos) return std::nullopt;
  auto header = Base64UrlDecode(jwt.substr(0, a));
  auto claims = Base64UrlDecode(jwt.substr(a + 1, b - a - 1));
  auto signature = Base64UrlDecode(jwt.substr(b + 1));
  if (!header || !claims || !signature) return std::nullopt;
  return Parts{*header, *claims, *signature, jwt.substr(0, b)};
}

// Verifies a JWS signature with `key`: RS256 as is, ES256 from r || s turned back into DER.
bool Verify(EVP_PKEY* key, const std::string& alg, const Parts& p) {
  std::string sig = p.signature;
  if (alg == "ES256") {
    if (sig.size() != 64) return false;
    const auto* raw = reinterpret_cast<const unsigned char*>(sig.data());
    ECDSA_SIG* ecdsa = ECDSA_SIG_new();
    ECDSA_SIG_set0(ecdsa, BN_bin2bn(raw, 32, nullptr), BN_bin2bn(raw + 32, 32, nullptr));
    unsigned char* der = nullptr;
    int len = i2d_ECDSA_SIG(ecdsa, &der);
    ECDSA_SIG_free(ecdsa);
    if (len <= 0) return false;
    sig.assign(reinterpret_cast<const char*>(der), static_cast<size_t>(len));
    OPENSSL_free(der);
  }
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  bool ok = EVP_DigestVerifyInit(ctx, nullptr, EVP_sha256(), nullptr, key) == 1 &&
            EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                             reinterpret_cast<const unsigned char*>(p.signing_input.data()),
                             p.signing_input.size()) == 1;
  EVP_MD_CTX_free(ctx);
  return ok;
}

TEST(JwtSignerTest, SignsVerifiableTokensWithP256AndRsaKeys) {
  TempDir dir;
  struct Case {
    const char* name;
    tls::EvpPkeyPtr key;
    bool traditional;  // "BEGIN EC PRIVATE KEY" / "BEGIN RSA PRIVATE KEY" rather than PKCS#8
    const char* alg;
    size_t signature_size;
  };
  std::vector<Case> cases;
  cases.push_back({"p256.pem", test_support::EcKey("P-256"), false, "ES256", 64});
  cases.push_back({"p256-sec1.pem", test_support::EcKey("P-256"), true, "ES256", 64});
  cases.push_back({"rsa2048.pem", test_support::RsaKey(2048), false, "RS256", 256});
  cases.push_back({"rsa3072-pkcs1.pem", test_support::RsaKey(3072), true, "RS256", 384});
  const nlohmann::json claims = {{"iss", "airlock"},         {"sub", "session-1"},
                                 {"aud", "api.example.com"}, {"iat", 1772368496},
                                 {"exp", 1772368796},        {"groups", {"a", "b"}}};
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    ASSERT_TRUE(c.key);
    const std::string path = dir.Path(c.name);
    ASSERT_TRUE(test_support::WritePrivateKey(c.key.get(), path, c.traditional));
    auto signer = JwtSigner::FromPemFile(path);
    ASSERT_TRUE(signer.ok()) << signer.status().message();
    EXPECT_EQ((*signer)->algorithm(), c.alg);
    // ES256 signatures are random: sign repeatedly so that short r and s values (which need
    // padding to 32 bytes) come up too.
    for (int i = 0; i < 32; ++i) {
      auto jwt = (*signer)->Sign(claims);
      ASSERT_TRUE(jwt.ok()) << jwt.status().message();
      auto parts = Split(*jwt);
      ASSERT_TRUE(parts) << *jwt;
      EXPECT_EQ(parts->header, std::string(R"({"alg":")") + c.alg + R"(","typ":"JWT"})");
      EXPECT_EQ(nlohmann::json::parse(parts->claims), claims);
      EXPECT_EQ(parts->signature.size(), c.signature_size);
      ASSERT_TRUE(Verify(c.key.get(), c.alg, *parts)) << *jwt;
      // A changed claim no longer verifies.
      Parts tampered = *parts;
      tampered.signing_input.back() = tampered.signing_input.back() == 'A' ? 'B' : 'A';
      EXPECT_FALSE(Verify(c.key.get(), c.alg, tampered));
    }
  }
}

TEST(JwtSignerTest, RefusesOtherKeysAndMissingFiles) {
  TempDir dir;
  auto p384 = test_support::EcKey("P-384");
  auto rsa1024 = test_support::RsaKey(1024);
  auto ed25519 = test_support::Ed25519Key();
  auto p256 = test_support::EcKey("P-256");
  ASSERT_TRUE(p384 && rsa1024 && ed25519 && p256);
  ASSERT_TRUE(test_support::WritePrivateKey(p384.get(), dir.Path("p384.pem")));
  ASSERT_TRUE(test_support::WritePrivateKey(rsa1024.get(), dir.Path("rsa1024.pem")));
  ASSERT_TRUE(test_support::WritePrivateKey(ed25519.get(), dir.Path("ed25519.pem")));
  ASSERT_TRUE(test_support::WritePublicKey(p256.get(), dir.Path("public.pem")));
  dir.Write("empty.pem", "");
  dir.Write("garbage.pem", "-----BEGIN PRIVATE KEY-----\nnot base64!\n-----END PRIVATE KEY-----\n");
  struct Case {
    std::string file;
    std::string error;
  };
  for (const Case& c : std::vector<Case>{
           {"p384.pem", dir.Path("p384.pem") + ": an EC key for ES256 must be on P-256"},
           {"rsa1024.pem",
            dir.Path("rsa1024.pem") + ": an RSA key for RS256 needs at least 2048 bits"},
           {"ed25519.pem",
            dir.Path("ed25519.pem") + ": the key must be P-256 (ES256) or RSA (RS256)"},
           {"public.pem", dir.Path("public.pem") + " holds no PEM private key"},
           {"empty.pem", dir.Path("empty.pem") + " holds no PEM private key"},
           {"garbage.pem", dir.Path("garbage.pem") + " holds no PEM private key"},
           {"missing.pem", "cannot read the key file " + dir.Path("missing.pem")},
       }) {
    auto signer = JwtSigner::FromPemFile(dir.Path(c.file));
    ASSERT_FALSE(signer.ok()) << c.file;
    EXPECT_EQ(signer.status().message(), c.error);
    EXPECT_EQ(signer.status().message().find("BEGIN"), std::string::npos);
  }
}

}  // namespace
}  // namespace airlock::credentials
