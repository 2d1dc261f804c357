// A connection's credential checks and injection (see credential_guard.h).
#include "gateway/server/credential_guard.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <set>

#include "gateway/base/percent_encoding.h"
#include "gateway/credentials/injection.h"
#include "gateway/credentials/placeholder.h"
#include "gateway/credentials/sigv4.h"

namespace airlock::server {
namespace {

// SigV4 signed again with the real keys now (over `body` when it was read whole); a 400 when
// the request cannot be.
std::optional<Refusal> Resign(http::HttpHead* head, std::string_view origin_target,
                              const credentials::Token& keys, const std::string* body) {
  auto refusal =
      credentials::ResignSigV4(head, origin_target, keys, std::chrono::system_clock::now(),
                               body ? std::optional<std::string_view>(*body) : std::nullopt);
  if (!refusal) return std::nullopt;
  return Refusal{400, refusal->reason, refusal->message,
                 "sign with the placeholder keys the sandbox was given"};
}

}  // namespace

void CredentialGuard::StartRequest() {
  injected_.clear();
  reflections_.clear();
  body_credentials_.clear();
  body_tail_.clear();
  body_scanned_ = 0;
}

bool CredentialGuard::Binds(const Scope& scope, std::string_view credential) {
  return scope.bound &&
         std::find(scope.bound->begin(), scope.bound->end(), credential) != scope.bound->end();
}

std::optional<CredentialGuard::Leak> CredentialGuard::Check(const Scope& scope,
                                                            const std::set<std::string>& keys,
                                                            const std::string& where) const {
  auto owner = sessions_.FindPlaceholder(keys);
  if (!owner) return std::nullopt;
  const bool own = scope.session && owner->session == scope.session->id;
  // A session's own placeholder, to a host whose rule binds its credential: injected there.
  if (own && Binds(scope, owner->credential)) return std::nullopt;
  return Leak{owner->credential, where, own ? "" : owner->session};
}

std::optional<CredentialGuard::Leak> CredentialGuard::FindInHead(
    const Scope& scope, const http::HttpHead* head, std::string_view name_where) const {
  std::vector<credentials::ScannedText> sites;
  if (head) sites = credentials::PlaceholderSites(*head);
  if (!name_where.empty()) sites.push_back({std::string(name_where), scope.target->host});
  for (const auto& site : sites) {
    std::set<std::string> keys;
    credentials::CollectPlaceholderKeys(site.text, &keys);
    if (auto leak = Check(scope, keys, site.where)) return leak;
  }
  return std::nullopt;
}

std::optional<CredentialGuard::Leak> CredentialGuard::FindInBody(const Scope& scope,
                                                                 std::string_view piece) {
  if (body_scanned_ >= kBodyScanLimit) return std::nullopt;
  piece = piece.substr(0, std::min<uint64_t>(piece.size(), kBodyScanLimit - body_scanned_));
  body_scanned_ += piece.size();
  std::string text = body_tail_;
  text.append(piece);
  std::set<std::string> keys;
  credentials::CollectPlaceholderKeys(text, &keys, &sessions_.placeholder_filter());
  // Keep enough to find a placeholder split across pieces, percent-encoded at worst.
  constexpr size_t kTail = 3 * credentials::kPlaceholderKeyLength;
  body_tail_ = text.substr(text.size() - std::min(text.size(), kTail));
  return Check(scope, keys, "body");
}

Refusal CredentialGuard::LeakRefusal(const Leak& leak, const std::string& host) {
  return Refusal{403, "credential_leak_blocked",
                 "the request carries the placeholder of credential '" + leak.credential +
                     "', which may not go to " + host,
                 "placeholders are swapped for credentials only on requests to the hosts "
                 "whose rule binds them; send it nowhere else"};
}

std::optional<Refusal> CredentialGuard::Inject(const Scope& scope, http::HttpHead* head,
                                               std::string* origin_target) {
  if (!scope.bound || !scope.session) return std::nullopt;
  const bool has_body = head->framing == http::BodyFraming::kChunked ||
                        (head->framing == http::BodyFraming::kLength && head->content_length > 0);
  for (const auto& name : *scope.bound) {
    const control::Placeholder* placeholder = scope.session->PlaceholderFor(name);
    const config::CredentialConfig* c = broker_.Find(name);
    auto token = broker_.TokenFor(name, {scope.session->id, scope.target->host},
                                  std::chrono::system_clock::now());
    if (!placeholder || !c || !token.ok()) {
      return Refusal{503, "credential_unavailable",
                     "credential '" + name + "' has no valid token right now",
                     "retry later; operators: check the credential's source"};
    }
    if (c->signs_requests()) {
      if (has_body && !head->Find("X-Amz-Content-Sha256")) {
        if (c->max_signed_body == 0) {
          return Refusal{
              400, "aws_payload_hash_required",
              "credential '" + name + "' hashes no request bodies (max_signed_body_bytes: 0)",
              "send an X-Amz-Content-Sha256 header (the body's SHA-256, or "
              "UNSIGNED-PAYLOAD)"};
        }
        body_credentials_.push_back({c, placeholder->value, token.value()});  // signed once read
      } else if (auto refusal = Resign(head, *origin_target, token.value(), nullptr)) {
        return refusal;
      }
      injected_.push_back(name + ":Authorization");
      // An echo shows the placeholder key id; a session token is not the sandbox's to see.
      reflections_.emplace_back(token->key_id, placeholder->value);
      if (!token->session_token.empty()) reflections_.emplace_back(token->session_token, "");
      continue;
    }
    for (const auto& where :
         credentials::InjectCredential(head, origin_target, *c, placeholder->value, token->value)) {
      injected_.push_back(name + ":" + where);
    }
    if (!c->body_json_fields.empty() && has_body) {
      const std::string* type = head->Find("Content-Type");
      if (type && type->find("json") != std::string::npos && !head->Find("Content-Encoding")) {
        body_credentials_.push_back({c, placeholder->value, token.value()});
      }
    }
    reflections_.emplace_back(token->value, placeholder->value);
    for (const auto& injection : c->inject) {
      if (!injection.query.empty()) {
        std::string encoded = PercentEncode(token->value);
        if (encoded != token->value) reflections_.emplace_back(encoded, placeholder->value);
      }
      if (injection.value.base64) {
        reflections_.emplace_back(injection.value.Encoded(token->value),
                                  injection.value.Encoded(placeholder->value));
      }
    }
  }
  return std::nullopt;
}

size_t CredentialGuard::WholeBodyLimit() const {
  size_t limit = 0;
  for (const auto& b : body_credentials_) {
    limit = std::max(limit,
                     b.config->signs_requests() ? b.config->max_signed_body : b.config->max_body);
  }
  return limit;
}

std::optional<Refusal> CredentialGuard::RewriteBody(const Scope& scope, http::HttpHead* head,
                                                    std::string* body) {
  for (const auto& b : body_credentials_) {
    if (b.config->signs_requests()) {
      if (auto refusal = Resign(head, scope.target->origin_target, b.token, body)) {
        return refusal;
      }
      continue;
    }
    for (const auto& field : credentials::InjectJsonFields(body, b.config->body_json_fields,
                                                           b.placeholder, b.token.value)) {
      injected_.push_back(b.config->name + ":body:" + field);
    }
  }
  body_credentials_.clear();
  return std::nullopt;
}

std::unique_ptr<credentials::ReflectionFilter> CredentialGuard::ResponseFilter() const {
  if (reflections_.empty()) return nullptr;
  return std::make_unique<credentials::ReflectionFilter>(reflections_);
}

std::string CredentialGuard::Scrub(std::string text) const {
  std::set<std::string> keys;
  credentials::CollectPlaceholderKeys(text, &keys);
  std::set<std::string> encoded;
  for (const auto& decoded : credentials::DecodedBase64Runs(text)) {
    credentials::CollectPlaceholderKeys(decoded, &encoded);
  }
  if (!encoded.empty() && sessions_.FindPlaceholder(encoded)) {
    return "/[redacted: carries a placeholder]";
  }
  for (const auto& key : keys) {
    if (!sessions_.FindPlaceholder({key})) continue;
    // Case-insensitively, where it stands; an encoded form hides the whole text.
    std::string lower = text;
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    size_t at = lower.find(key);
    if (at == std::string::npos) return "/[redacted: carries a placeholder]";
    text = text.substr(0, at) + "_" + text.substr(at + key.size());
    return Scrub(std::move(text));
  }
  return text;
}

}  // namespace airlock::server
