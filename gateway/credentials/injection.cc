// Credential injection and placeholder sites (see injection.h).
#include "gateway/credentials/injection.h"

#include <nlohmann/json.hpp>

#include <cctype>

#include "gateway/base/base64.h"
#include "gateway/base/percent_encoding.h"
#include "gateway/credentials/placeholder.h"

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

// Writes the query parameter `name` = `value` into `target`: a parameter of that name holding
// the placeholder gets the token where it stands; otherwise every parameter of that name is
// dropped and one is appended.
void InjectQuery(std::string* target, std::string_view name, std::string_view placeholder,
                 std::string_view token, std::string_view value) {
  size_t q = target->find('?');
  std::string path = target->substr(0, q);
  std::string query = q == std::string::npos ? "" : target->substr(q + 1);
  std::string out;
  bool replaced = false;
  std::vector<std::string> kept;
  size_t start = 0;
  while (start <= query.size() && !query.empty()) {
    size_t amp = query.find('&', start);
    std::string param = query.substr(start, amp == std::string::npos ? amp : amp - start);
    std::string_view key = std::string_view(param).substr(0, param.find('='));
    if (key == name) {
      if (ReplaceAll(&param, placeholder, PercentEncode(token))) {
        replaced = true;
        kept.push_back(param);
      }
    } else if (!param.empty()) {
      kept.push_back(param);
    }
    if (amp == std::string::npos) break;
    start = amp + 1;
  }
  if (!replaced) kept.push_back(std::string(name) + "=" + PercentEncode(value));
  for (const auto& p : kept) out += (out.empty() ? "" : "&") + p;
  *target = path + "?" + out;
}

}  // namespace

std::vector<std::string> InjectCredential(http::HttpHead* head, std::string* origin_target,
                                          const config::CredentialConfig& credential,
                                          std::string_view placeholder, std::string_view token) {
  std::vector<std::string> written;
  for (const auto& injection : credential.inject) {
    if (!injection.query.empty()) {
      InjectQuery(origin_target, injection.query, placeholder, token,
                  injection.value.Render(token));
      written.push_back("query:" + injection.query);
      continue;
    }
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

std::vector<std::string> InjectJsonFields(std::string* body, const std::vector<std::string>& fields,
                                          std::string_view placeholder, std::string_view token) {
  std::vector<std::string> written;
  auto j = nlohmann::ordered_json::parse(*body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return written;
  for (const auto& field : fields) {
    auto it = j.find(field);
    if (it == j.end() || !it->is_string()) continue;
    std::string value = it->get<std::string>();
    if (ReplaceAll(&value, placeholder, token)) {
      *it = value;
      written.push_back(field);
    }
  }
  if (!written.empty()) *body = j.dump();
  return written;
}

std::vector<std::string> DecodedBase64Runs(std::string_view target) {
  std::vector<std::string> out;
  constexpr size_t kMinRun = kPlaceholderKeyLength * 4 / 3;
  auto is_b64 = [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '/' || c == '-' ||
           c == '_';
  };
  const size_t query = target.find('?');
  // '/' separates path segments, and is a base64 digit in the query.
  auto in_run = [&](size_t i) { return is_b64(target[i]) && (target[i] != '/' || i > query); };
  for (size_t i = 0; i < target.size();) {
    size_t start = i;
    while (i < target.size() && in_run(i)) ++i;
    if (i - start >= kMinRun) {
      std::string run(target.substr(start, i - start));
      for (char& c : run) c = c == '-' ? '+' : c == '_' ? '/' : c;
      for (size_t cut = 0; cut < 4 && run.size() - cut >= kMinRun; ++cut) {
        std::string aligned = run.substr(0, run.size() - cut);
        if (aligned.size() % 4 == 1) continue;
        aligned.append((4 - aligned.size() % 4) % 4, '=');
        if (auto decoded = Base64Decode(aligned)) {
          out.push_back(std::move(*decoded));
          break;
        }
      }
    }
    while (i < target.size() && !in_run(i)) ++i;
  }
  return out;
}

std::vector<ScannedText> PlaceholderSites(const http::HttpHead& head) {
  std::vector<ScannedText> sites{{"url", head.target}};
  for (auto& decoded : DecodedBase64Runs(head.target)) {
    sites.push_back({"url (base64)", std::move(decoded)});
  }
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
