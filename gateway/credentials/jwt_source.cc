// The jwt source: a token minted per session and destination, signed by a host key: `sub` is the
// session id, `aud` the destination host, `iat`/`exp`/`jti` per token, `iss` and extra claims
// from airlock.yaml. No I/O: it runs on the worker that needs it (the broker caches the result).
#include <charconv>

#include "gateway/credentials/credential_source.h"
#include "gateway/credentials/jwt.h"
#include "gateway/crypto/random.h"

namespace airlock::credentials {
namespace {

// A YAML value as JSON: quoted scalars stay strings; true/false and integers become JSON's.
nlohmann::json ToJson(const YAML::Node& node) {
  if (node.IsMap()) {
    nlohmann::json o = nlohmann::json::object();
    for (const auto& kv : node) o[kv.first.as<std::string>("")] = ToJson(kv.second);
    return o;
  }
  if (node.IsSequence()) {
    nlohmann::json a = nlohmann::json::array();
    for (const auto& item : node) a.push_back(ToJson(item));
    return a;
  }
  if (!node.IsScalar()) return nullptr;
  const std::string& s = node.Scalar();
  if (node.Tag() == "!") return s;
  if (s == "true") return true;
  if (s == "false") return false;
  int64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec == std::errc() && end == s.data() + s.size() && !s.empty()) return v;
  return s;
}

class JwtSource : public CredentialSource {
 public:
  JwtSource(const config::CredentialConfig& c, std::shared_ptr<const JwtSigner> signer)
      : ttl_(c.ttl), signer_(std::move(signer)) {
    for (const auto& [name, value] : c.claims) claims_[name] = ToJson(value);
    if (!c.issuer.empty()) claims_["iss"] = c.issuer;
  }

  Result<Token> Fetch(const Audience& audience, TimePoint now) override {
    nlohmann::json claims = claims_;
    int64_t iat = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
    claims["sub"] = std::string(audience.session);
    claims["aud"] = std::string(audience.host);
    claims["iat"] = iat;
    claims["exp"] = iat + ttl_.count();
    claims["jti"] = crypto::RandomHex(16);
    auto jwt = signer_->Sign(claims);
    if (!jwt.ok()) return jwt.status();
    Token t;
    t.value = std::move(jwt).value();
    t.expires_at = std::chrono::system_clock::from_time_t(iat + ttl_.count());
    return t;
  }

 private:
  const std::chrono::seconds ttl_;
  const std::shared_ptr<const JwtSigner> signer_;
  nlohmann::json claims_ = nlohmann::json::object();
};

}  // namespace

Result<std::unique_ptr<CredentialSource>> MakeJwtSource(
    const config::CredentialConfig& credential) {
  auto signer = JwtSigner::FromPemFile(credential.key_file);
  if (!signer.ok()) return signer.status();
  return std::unique_ptr<CredentialSource>(new JwtSource(credential, signer.value()));
}

}  // namespace airlock::credentials
