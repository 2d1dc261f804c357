// The oauth2_client_credentials source (RFC 6749 section 4.4): POSTs grant_type=client_credentials
// to the token endpoint (form-encoded, spaces as %20), authenticating with HTTP Basic (section
// 2.3.1), and takes
// access_token/expires_in from the answer. No refresh token: a new token is fetched before the
// old one expires. The client secret is read from its file at every fetch.
#include <cctype>
#include <fstream>

#include <nlohmann/json.hpp>

#include "gateway/base/base64.h"
#include "gateway/base/percent_encoding.h"
#include "gateway/credentials/credential_source.h"
#include "gateway/credentials/https_client.h"

namespace airlock::credentials {
namespace {

// The `error` code of an RFC 6749 error answer when it is a plain code, for the message.
std::string ErrorCode(const std::string& body) {
  auto j = nlohmann::json::parse(body, nullptr, false);
  if (!j.is_object() || !j.contains("error") || !j["error"].is_string()) return "";
  std::string code = j["error"].get<std::string>();
  for (char c : code) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') return "";
  }
  return code.size() <= 64 ? " (" + code + ")" : "";
}

class OAuth2Source : public CredentialSource {
 public:
  OAuth2Source(const config::CredentialConfig& c, SourceOptions options)
      : c_(c), options_(std::move(options)) {}

  Result<Token> Fetch(const Audience&, TimePoint now) override {
    std::ifstream in(c_.client_secret_file);
    std::string secret;
    if (!in || !std::getline(in, secret) || secret.empty()) {
      return Status::Error("cannot read the client secret from " + c_.client_secret_file);
    }
    while (!secret.empty() && (secret.back() == '\r' || secret.back() == ' ')) secret.pop_back();
    HttpsRequest r;
    r.url = c_.token_url;
    r.ca_file = options_.ca_file;
    r.timeout = c_.timeout;
    r.headers = {{"Authorization", "Basic " + Base64Encode(PercentEncode(c_.client_id) + ":" +
                                                           PercentEncode(secret))},
                 {"Content-Type", "application/x-www-form-urlencoded"},
                 {"Accept", "application/json"},
                 {"User-Agent", "airlock-gateway"}};
    r.body = "grant_type=client_credentials";
    if (!c_.scope.empty()) r.body += "&scope=" + PercentEncode(c_.scope);
    if (!c_.audience.empty()) r.body += "&audience=" + PercentEncode(c_.audience);
    auto response = HttpsCall(r);
    if (!response.ok()) return response.status();
    if (response->status != 200) {
      return Status::Error("the token endpoint answered " + std::to_string(response->status) +
                           ErrorCode(response->body));
    }
    auto j = nlohmann::json::parse(response->body, nullptr, false);
    if (!j.is_object() || !j.contains("access_token") || !j["access_token"].is_string() ||
        j["access_token"].get_ref<const std::string&>().empty()) {
      return Status::Error("the token endpoint's answer has no access_token");
    }
    Token t;
    t.value = j["access_token"].get<std::string>();
    int64_t expires_in = 3600;  // RFC 6749 leaves it optional; assume an hour without it
    if (j.contains("expires_in") && j["expires_in"].is_number_integer()) {
      expires_in = j["expires_in"].get<int64_t>();
    }
    if (expires_in <= 0) return Status::Error("the token endpoint's token has already expired");
    t.expires_at = now + std::chrono::seconds(expires_in);
    return t;
  }

 private:
  const config::CredentialConfig c_;
  const SourceOptions options_;
};

}  // namespace

std::unique_ptr<CredentialSource> MakeOAuth2Source(const config::CredentialConfig& credential,
                                                   const SourceOptions& options) {
  return std::make_unique<OAuth2Source>(credential, options);
}

}  // namespace airlock::credentials
