// The github_app source: an app JWT (RS256, `iss` = the app id, valid ten minutes) buys an
// installation access token from POST {api_url}/app/installations/{id}/access_tokens, narrowed to
// the configured repositories and permissions. The token's length and format are GitHub's
// business: nothing here assumes them.
#include <nlohmann/json.hpp>

#include <charconv>

#include "gateway/credentials/credential_source.h"
#include "gateway/credentials/https_client.h"
#include "gateway/credentials/jwt.h"
#include "gateway/credentials/token_json.h"

namespace airlock::credentials {
namespace {

class GitHubAppSource : public CredentialSource {
 public:
  GitHubAppSource(const config::CredentialConfig& c, SourceOptions options,
                  std::shared_ptr<const JwtSigner> signer)
      : c_(c), options_(std::move(options)), signer_(std::move(signer)) {
    std::from_chars(c.app_id.data(), c.app_id.data() + c.app_id.size(), app_id_);
  }

  Result<Token> Fetch(const Audience&, TimePoint now) override {
    int64_t t = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
    // iat a minute back for clock drift; GitHub refuses exp more than ten minutes after iat.
    auto app_jwt = signer_->Sign({{"iss", app_id_}, {"iat", t - 60}, {"exp", t + 540}});
    if (!app_jwt.ok()) return app_jwt.status();
    nlohmann::json body = nlohmann::json::object();
    if (!c_.repositories.empty()) body["repositories"] = c_.repositories;
    if (!c_.permissions.empty()) body["permissions"] = c_.permissions;
    HttpsRequest r;
    r.url = c_.api_url + "/app/installations/" + c_.installation_id + "/access_tokens";
    r.ca_file = options_.ca_file;
    r.timeout = c_.timeout;
    r.headers = {{"Authorization", "Bearer " + app_jwt.value()},
                 {"Accept", "application/vnd.github+json"},
                 {"X-GitHub-Api-Version", "2022-11-28"},
                 {"Content-Type", "application/json"},
                 {"User-Agent", "airlock-gateway"}};
    r.body = body.dump();
    auto response = HttpsCall(r);
    if (!response.ok()) return response.status();
    if (response->status != 201 && response->status != 200) {
      return Status::Error("GitHub answered " + std::to_string(response->status) +
                           " for installation " + c_.installation_id);
    }
    auto j = nlohmann::json::parse(response->body, nullptr, false);
    if (!j.is_object() || !j.contains("token") || !j["token"].is_string() ||
        j["token"].get_ref<const std::string&>().empty()) {
      return Status::Error("GitHub's answer has no token");
    }
    Token token;
    token.value = j["token"].get<std::string>();
    auto expires = j.contains("expires_at") ? ParseExpiry(j["expires_at"]) : std::nullopt;
    if (!expires) return Status::Error("GitHub's answer has no valid expires_at");
    token.expires_at = *expires;
    return token;
  }

 private:
  const config::CredentialConfig c_;
  const SourceOptions options_;
  const std::shared_ptr<const JwtSigner> signer_;
  uint64_t app_id_ = 0;  // the loader checked it is a number
};

}  // namespace

Result<std::unique_ptr<CredentialSource>> MakeGitHubAppSource(
    const config::CredentialConfig& credential, const SourceOptions& options) {
  auto signer = JwtSigner::FromPemFile(credential.key_file);
  if (!signer.ok()) return signer.status();
  if (signer.value()->algorithm() != "RS256") {
    return Status::Error(credential.key_file + ": a GitHub App key is RSA (RS256)");
  }
  return std::unique_ptr<CredentialSource>(
      new GitHubAppSource(credential, options, signer.value()));
}

}  // namespace airlock::credentials
