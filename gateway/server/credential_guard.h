// CredentialGuard: one connection's side of the credential broker (docs/CREDENTIALS.md). For each
// request it finds placeholders that may not go where the request goes (in the head, the
// destination's name, the body as it streams), writes the bound credentials into an allowed
// inspected request (headers, query, and, once the body is read whole, JSON fields or a SigV4
// signature), and says what the response must not show (the reflection filter). It decides and
// rewrites; the connection writes the audit records and the answers. Lives in a ProxyConnection,
// on its worker thread.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gateway/control/session_table.h"
#include "gateway/credentials/broker.h"
#include "gateway/credentials/reflection.h"
#include "gateway/http/http_head.h"
#include "gateway/server/request_checks.h"

namespace airlock::server {

class CredentialGuard {
 public:
  // The request being decided.
  struct Scope {
    const control::Session* session = nullptr;  // null: no session
    // The credentials the allowing rule binds; null unless the request is allowed and inspected.
    const std::vector<std::string>* bound = nullptr;
    const Target* target = nullptr;
  };
  // A placeholder found where it may not go.
  struct Leak {
    std::string credential;
    std::string where;  // "url", "header:NAME", "header:NAME (basic)", "connect", "sni", "body"
    std::string placeholder_session;  // the placeholder's session, when not the request's own
  };

  CredentialGuard(const control::SessionTable& sessions, credentials::CredentialBroker& broker)
      : sessions_(sessions), broker_(broker) {}

  // Starts a request: forgets the last one's injections and body scan.
  void StartRequest();
  // In `head` (may be null) and, for a tunnel, the destination's name (`name_where`: "connect"
  // or "sni"; empty for none).
  std::optional<Leak> FindInHead(const Scope& scope, const http::HttpHead* head,
                                 std::string_view name_where) const;
  // In the next piece of the request body (a placeholder split across pieces is found), up to
  // kBodyScanLimit bytes per request.
  std::optional<Leak> FindInBody(const Scope& scope, std::string_view piece);
  static Refusal LeakRefusal(const Leak& leak, const std::string& host);

  // Writes the bound credentials into the allowed request (`origin_target` is the target it is
  // sent with); a refusal (503 credential_unavailable, 400 for AWS) when one cannot be written.
  std::optional<Refusal> Inject(const Scope& scope, http::HttpHead* head,
                                std::string* origin_target);
  // 0, or the largest body that must be read whole before the head goes (credentials/sigv4.h,
  // JSON fields).
  size_t WholeBodyLimit() const;
  std::optional<Refusal> RewriteBody(const Scope& scope, http::HttpHead* head, std::string* body);

  // "credential:where" of every credential written into the current request (never values).
  const std::vector<std::string>& injected() const { return injected_; }
  // For the response to the current request: null when nothing was injected.
  std::unique_ptr<credentials::ReflectionFilter> ResponseFilter() const;
  // `text` (a path or host name) with any session's placeholder replaced by "_", for the audit
  // log; an encoded placeholder hides the whole text.
  std::string Scrub(std::string text) const;

  static constexpr uint64_t kBodyScanLimit = 64ull << 20;

 private:
  std::optional<Leak> Check(const Scope& scope, const std::set<std::string>& keys,
                            const std::string& where) const;
  static bool Binds(const Scope& scope, std::string_view credential);

  // A credential written into (or signing) the body once it is read whole.
  struct BodyCredential {
    const config::CredentialConfig* config;
    std::string placeholder;
    credentials::Token token;
  };

  const control::SessionTable& sessions_;
  credentials::CredentialBroker& broker_;
  std::vector<std::string> injected_;
  std::vector<std::pair<std::string, std::string>> reflections_;  // (sent, shown instead)
  std::vector<BodyCredential> body_credentials_;
  std::string body_tail_;  // the last bytes scanned: a placeholder split across pieces
  uint64_t body_scanned_ = 0;
};

}  // namespace airlock::server
