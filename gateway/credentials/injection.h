// Writing a credential into a request head, and finding placeholders in one. Pure functions over
// an HTTP head; the connection calls them after the request was allowed (injection) and for
// every request (leak check). No thread ownership.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/config/gateway_config.h"
#include "gateway/http/http_head.h"

namespace airlock::credentials {

// Writes `token` into `head` as `credential` says. In each of its headers, a placeholder the
// client put there (as is, or inside Basic credentials) is replaced where it stands; a header
// without it is set from the template, replacing whatever credential the client sent. A query
// parameter of `origin_target` (the request's target as it is sent on) likewise: replaced where it
// stands, or every one of that name dropped and one appended (percent-encoded). Returns where it
// wrote: header names and "query:NAME".
std::vector<std::string> InjectCredential(http::HttpHead* head, std::string* origin_target,
                                          const config::CredentialConfig& credential,
                                          std::string_view placeholder, std::string_view token);

// Replaces `placeholder` with `token` inside the named top-level string fields of a JSON object
// `body` (key order kept). Returns the fields written; a body that is not a JSON object is left
// as it is.
std::vector<std::string> InjectJsonFields(std::string* body, const std::vector<std::string>& fields,
                                          std::string_view placeholder, std::string_view token);

// The base64 runs (standard or URL-safe, padded or not) in a URL long enough to hold a
// placeholder's 36 digits, decoded: "?state=Z2hwX2Fh..." hides nothing.
std::vector<std::string> DecodedBase64Runs(std::string_view target);

// Where a request head may carry a placeholder, and what stands there, for the leak check: the
// request target ("url") and the base64 runs in it decoded ("url (base64)"), every header value
// ("header:NAME"), Basic credentials decoded ("header:NAME (basic)"). Never holds
// Proxy-Authorization (the session's own token).
struct ScannedText {
  std::string where;
  std::string text;
};
std::vector<ScannedText> PlaceholderSites(const http::HttpHead& head);

}  // namespace airlock::credentials
