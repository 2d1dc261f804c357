// CredentialSource: where a credential's token comes from. A source produces a token and the
// time it expires; the broker caches it and asks again before then. Sources that fetch (exec,
// oauth2_client_credentials, github_app, aws_sigv4 keys) block and run only on the broker's
// refresher thread; jwt mints per session and destination without I/O, on the worker that needs
// it. docs/CREDENTIALS.md describes each source.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "gateway/base/status.h"
#include "gateway/config/credential_config.h"

namespace airlock::credentials {

using TimePoint = std::chrono::system_clock::time_point;

struct Token {
  std::string value;          // never logged, never in an error message
  std::string key_id;         // aws_sigv4: the access key id (value is the secret key)
  std::string session_token;  // aws_sigv4: temporary credentials' session token, if any
  TimePoint expires_at = TimePoint::max();
};

// Whom a minted token is for: jwt's `sub` and `aud`. Sources with one token for everyone
// ignore it.
struct Audience {
  std::string_view session;
  std::string_view host;
};

class CredentialSource {
 public:
  virtual ~CredentialSource() = default;
  virtual Result<Token> Fetch(const Audience& audience, TimePoint now) = 0;
};

struct SourceOptions {
  std::string ca_file;  // trust store for token endpoints (tls.upstream_ca_file); empty: system
};

// The source a credential's configuration names. Errors (an unreadable or unusable key file)
// name the credential and the file.
Result<std::unique_ptr<CredentialSource>> MakeSource(const config::CredentialConfig& credential,
                                                     const SourceOptions& options);

// Sources by kind, for MakeSource.
std::unique_ptr<CredentialSource> MakeStaticSource(const config::CredentialConfig& credential);
std::unique_ptr<CredentialSource> MakeExecSource(const config::CredentialConfig& credential);
Result<std::unique_ptr<CredentialSource>> MakeJwtSource(const config::CredentialConfig& credential);
std::unique_ptr<CredentialSource> MakeOAuth2Source(const config::CredentialConfig& credential,
                                                   const SourceOptions& options);
Result<std::unique_ptr<CredentialSource>> MakeGitHubAppSource(
    const config::CredentialConfig& credential, const SourceOptions& options);
std::unique_ptr<CredentialSource> MakeAwsKeySource(const config::CredentialConfig& credential);

}  // namespace airlock::credentials
