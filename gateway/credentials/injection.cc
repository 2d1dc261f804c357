// Credential injection and placeholder sites (see injection.h).
#include "gateway/credentials/injection.h"

#include "gateway/base/base64.h"

namespace airlock::credentials {
namespace {

constexpr std::string_view kBasic = "Basic ";

bool ReplaceAll(std::string* text, std::string_view from, std::string_view to) {
  bool any = false;
  for (size_t at = text->find(from); !from.empty() && at != std::string::npos;
       at = text->find(from, at + to.size())) {
    text->replace(at, from.size(), to);
    any = true;
  }
  return any;
}

bool IsBasic(std::string_view value) {
  return value.size() > kBasic.size() && http::EqualsIgnoreCase(value.substr(0, 6), kBasic);
}

// Replaces the placeholder inside Basic credentials; false if it is not there.
bool ReplaceInBasic(std::string* value, std::string_view placeholder, std::string_view token) {
  if (!IsBasic(*value)) return false;
  auto decoded = Base64Decode(std::string_view(*value).substr(kBasic.size()));
  if (!decoded || !ReplaceAll(&*decoded, placeholder, token)) return false;
  *value = std::string(kBasic) + Base64Encode(*decoded);
  return true;
}

}  // namespace

std::vector<std::string> InjectCredential(http::HttpHead* head,
                                          const config::CredentialConfig& credential,
                                          std::string_view placeholder, std::string_view token) {
  std::vector<std::string> written;
  for (const auto& injection : credential.inject) {
    bool replaced = false;
    for (auto& h : head->headers) {
      if (!http::EqualsIgnoreCase(h.name, injection.header)) continue;
      replaced |=
          ReplaceAll(&h.value, placeholder, token) || ReplaceInBasic(&h.value, placeholder, token);
    }
    if (!replaced) {
      std::erase_if(head->headers, [&](const http::Header& h) {
        return http::EqualsIgnoreCase(h.name, injection.header);
      });
      head->headers.push_back({injection.header, injection.value.Render(token)});
    }
    written.push_back(injection.header);
  }
  return written;
}

std::vector<ScannedText> PlaceholderSites(const http::HttpHead& head) {
  std::vector<ScannedText> sites{{"url", head.target}};
  for (const auto& h : head.headers) {
    if (http::EqualsIgnoreCase(h.name, "Proxy-Authorization")) continue;
    sites.push_back({"header:" + h.name, h.value});
    if (IsBasic(h.value)) {
      if (auto decoded = Base64Decode(std::string_view(h.value).substr(kBasic.size()))) {
        sites.push_back({"header:" + h.name + " (basic)", *decoded});
      }
    }
  }
  return sites;
}

}  // namespace airlock::credentials
