// Placeholder generation and scanning (see placeholder.h).
#include "gateway/credentials/placeholder.h"

#include <cctype>

#include "gateway/crypto/random.h"

namespace airlock::credentials {
namespace {

bool IsHex(char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; }

void CollectFrom(std::string_view text, std::set<std::string>* keys) {
  size_t i = 0;
  while (i < text.size()) {
    if (!IsHex(text[i])) {
      ++i;
      continue;
    }
    size_t end = i;
    while (end < text.size() && IsHex(text[end])) ++end;
    for (size_t at = i; at + kPlaceholderKeyLength <= end; ++at) {
      std::string key(text.substr(at, kPlaceholderKeyLength));
      for (char& c : key) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      keys->insert(std::move(key));
    }
    i = end;
  }
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

// Decodes %XX escapes (repeatedly: %2561 is %61 is 'a'); other bytes stay as they are.
std::string PercentDecode(std::string_view text) {
  std::string out(text);
  for (int round = 0; round < 3 && out.find('%') != std::string::npos; ++round) {
    std::string next;
    next.reserve(out.size());
    for (size_t i = 0; i < out.size(); ++i) {
      int hi = i + 2 < out.size() && out[i] == '%' ? HexValue(out[i + 1]) : -1;
      int lo = hi >= 0 ? HexValue(out[i + 2]) : -1;
      if (lo >= 0) {
        next.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
      } else {
        next.push_back(out[i]);
      }
    }
    if (next == out) break;
    out = std::move(next);
  }
  return out;
}

}  // namespace

std::string NewPlaceholder(std::string_view prefix) {
  return std::string(prefix) + crypto::RandomHex(kPlaceholderKeyLength / 2);
}

std::string PlaceholderKey(std::string_view placeholder) {
  std::string key(
      placeholder.substr(placeholder.size() - std::min(placeholder.size(), kPlaceholderKeyLength)));
  for (char& c : key) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return key;
}

void CollectPlaceholderKeys(std::string_view text, std::set<std::string>* keys) {
  CollectFrom(text, keys);
  if (text.find('%') != std::string_view::npos) CollectFrom(PercentDecode(text), keys);
}

}  // namespace airlock::credentials
