// ValueTemplate: how a credential is written into a request header: `Bearer {token}`,
// `token {token}`, or `Basic {base64(x-access-token:{token})}` for git. Exactly one `{token}`,
// optionally inside one `{base64(...)}`. Parsed once from airlock.yaml, rendered per request.
// Pure; plain values; no thread ownership.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace airlock::credentials {

struct ValueTemplate {
  std::string prefix;        // before the token, or before {base64(
  std::string suffix;        // after the token, or after )}
  bool base64 = false;       // the token sits inside {base64(...)}
  std::string inner_prefix;  // inside base64, before the token
  std::string inner_suffix;  // inside base64, after the token

  std::string Render(std::string_view token) const;
  // The token as it stands in the rendered value: itself, or the base64 text that holds it.
  std::string Encoded(std::string_view token) const;
};

// The template, or nullopt with `error` saying what is wrong.
std::optional<ValueTemplate> ParseValueTemplate(std::string_view text, std::string* error);

}  // namespace airlock::credentials
