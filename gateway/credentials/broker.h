// CredentialBroker: the gateway's credentials by name: their configuration (placeholder shape,
// injection templates) and their current tokens, fetched from each one's source when the
// gateway starts. Tokens live only in this object's memory: never logged, never in an error,
// never sent anywhere but into an allowed, inspected request to a host whose rule binds them.
// Immutable after Create(); safe to share between threads.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/base/status.h"
#include "gateway/config/gateway_config.h"
#include "gateway/credentials/credential_source.h"

namespace airlock::credentials {

class CredentialBroker {
 public:
  // Fetches every credential's token; any failure is an error naming the credential.
  static Result<std::unique_ptr<CredentialBroker>> Create(
      const std::vector<config::CredentialConfig>& credentials);

  const config::CredentialConfig* Find(std::string_view name) const;
  // The token to inject for `name`, or nullopt when it has none that is still valid.
  std::optional<std::string> Token(std::string_view name,
                                   std::chrono::system_clock::time_point now) const;

 private:
  struct Entry {
    config::CredentialConfig config;
    credentials::Token token;
  };
  std::map<std::string, Entry, std::less<>> entries_;
};

}  // namespace airlock::credentials
