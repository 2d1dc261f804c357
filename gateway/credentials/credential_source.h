// CredentialSource: where a credential's token comes from. A source produces the token and the
// time it expires; the broker caches it. Only the `static` source exists so far (a file or the
// gateway's environment); the sources that mint or fetch short-lived tokens (exec, jwt, oauth2,
// github_app) implement the same interface. Sources run on the gateway's main thread.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "gateway/base/status.h"
#include "gateway/config/gateway_config.h"

namespace airlock::credentials {

struct Token {
  std::string value;  // never logged, never in an error message
  std::chrono::system_clock::time_point expires_at = std::chrono::system_clock::time_point::max();
};

class CredentialSource {
 public:
  virtual ~CredentialSource() = default;
  virtual Result<Token> Fetch() = 0;
};

// The source a credential's configuration names.
std::unique_ptr<CredentialSource> MakeSource(const config::CredentialConfig& credential);

}  // namespace airlock::credentials
