// Credential value templates (see value_template.h).
#include "gateway/credentials/value_template.h"

#include "gateway/base/base64.h"

namespace airlock::credentials {
namespace {

constexpr std::string_view kToken = "{token}";
constexpr std::string_view kBase64Open = "{base64(";
constexpr std::string_view kBase64Close = ")}";

size_t Count(std::string_view text, std::string_view what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string_view::npos; at = text.find(what, at + 1)) {
    ++n;
  }
  return n;
}

}  // namespace

std::string ValueTemplate::Encoded(std::string_view token) const {
  if (!base64) return std::string(token);
  return Base64Encode(inner_prefix + std::string(token) + inner_suffix);
}

std::string ValueTemplate::Render(std::string_view token) const {
  return prefix + Encoded(token) + suffix;
}

std::optional<ValueTemplate> ParseValueTemplate(std::string_view text, std::string* error) {
  if (Count(text, kToken) != 1) {
    *error = "a value template needs exactly one {token}";
    return std::nullopt;
  }
  ValueTemplate t;
  size_t open = text.find(kBase64Open);
  if (open == std::string_view::npos) {
    size_t at = text.find(kToken);
    t.prefix = text.substr(0, at);
    t.suffix = text.substr(at + kToken.size());
    if (t.prefix.find_first_of("{}") != std::string::npos ||
        t.suffix.find_first_of("{}") != std::string::npos) {
      *error = "only {token} and {base64(...)} may stand in braces";
      return std::nullopt;
    }
    return t;
  }
  size_t close = text.find(kBase64Close, open);
  size_t token = text.find(kToken);
  if (close == std::string_view::npos || token < open || token > close ||
      Count(text, kBase64Open) != 1) {
    *error = "{base64(...)} must enclose the {token}, once";
    return std::nullopt;
  }
  t.base64 = true;
  t.prefix = text.substr(0, open);
  t.inner_prefix = text.substr(open + kBase64Open.size(), token - open - kBase64Open.size());
  t.inner_suffix = text.substr(token + kToken.size(), close - token - kToken.size());
  t.suffix = text.substr(close + kBase64Close.size());
  for (const std::string* part : {&t.prefix, &t.inner_prefix, &t.inner_suffix, &t.suffix}) {
    if (part->find_first_of("{}") != std::string::npos) {
      *error = "only {token} and {base64(...)} may stand in braces";
      return std::nullopt;
    }
  }
  return t;
}

}  // namespace airlock::credentials
