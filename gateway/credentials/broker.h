// CredentialBroker: the gateway's credentials by name: their configuration (placeholder shape,
// injection templates) and their current tokens. Shared tokens (every source but jwt) are fetched
// once at Start() and then by a refresher thread ahead of expiry (at about three quarters of
// their lifetime, with jitter), never on a request's path; a failed fetch is retried with
// exponential back-off while the last good token keeps serving until it expires. jwt tokens are
// minted per session and destination on first use and cached for half their lifetime. Tokens
// live only in this object's memory: never logged, never in an error, never sent anywhere but
// into an allowed, inspected request to a host whose rule binds them.
// Thread-safe: workers call TokenFor() and Find(); the refresher thread owns fetching.
#pragma once

#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "gateway/base/status.h"
#include "gateway/config/credential_config.h"
#include "gateway/credentials/credential_source.h"

namespace airlock::credentials {

// One fetch attempt of a shared token, for the audit log and the operator's log.
struct RefreshEvent {
  std::string credential;
  bool ok = false;
  std::string error;                     // when !ok; never holds a token
  bool serving = false;                  // a valid token is served (the last good one)
  std::optional<TimePoint> expires_at;   // of the token now served, if it expires
  std::chrono::seconds next_attempt{0};  // from now
};

// A credential's health, for metrics.
struct CredentialStatus {
  std::string name;
  uint64_t refreshes = 0;               // tokens fetched or minted
  uint64_t failures = 0;                // failed attempts
  std::optional<TimePoint> expires_at;  // of the token now served; nullopt: none
};

class CredentialBroker {
 public:
  using Listener = std::function<void(const RefreshEvent&)>;

  // Builds every credential's source (reading key files); errors name the credential.
  static Result<std::unique_ptr<CredentialBroker>> Create(
      const std::vector<config::CredentialConfig>& credentials, const SourceOptions& options);
  ~CredentialBroker();

  // Fetches every shared token once, reporting each attempt to `listener`, then starts the
  // refresher thread. A static source that fails is an error (its file or variable is
  // misconfigured); any other failure is reported and retried, and requests needing that
  // credential get 503 until a fetch succeeds.
  Status Start(Listener listener);

  const config::CredentialConfig* Find(std::string_view name) const;
  // The token to use for a request of `audience` with credential `name`, or an error when it
  // has none that is valid at `now`.
  Result<Token> TokenFor(std::string_view name, const Audience& audience, TimePoint now);
  std::vector<CredentialStatus> Statuses() const;

 private:
  struct Entry {
    config::CredentialConfig config;
    std::unique_ptr<CredentialSource> source;
    std::optional<Token> token;                                                // shared tokens
    std::map<std::pair<std::string, std::string>, Token, std::less<>> minted;  // jwt
    TimePoint next_attempt;
    int consecutive_failures = 0;
    uint64_t refreshes = 0;
    uint64_t failures = 0;
  };

  // One fetch of `e`'s shared token; updates it and schedules the next. Called without mu_.
  RefreshEvent Refresh(Entry& e, TimePoint now);
  void RefresherLoop();

  std::map<std::string, std::unique_ptr<Entry>, std::less<>> entries_;
  Listener listener_;
  mutable std::mutex mu_;  // guards every Entry's mutable fields and stop_
  std::condition_variable wake_;
  bool stop_ = false;
  std::thread refresher_;
};

}  // namespace airlock::credentials
